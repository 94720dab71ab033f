/*
 * request.h - a request as the server's parts see it (server-private), and
 * the helpers every handler shares: its headers and query, its body read
 * as JSON, and its error replies (errors.h's codes).
 */
#ifndef HF_REQUEST_H
#define HF_REQUEST_H

#include <jansson.h>
#include <microhttpd.h>

#include "errors.h"
#include "validate.h"
#include "server_state.h"

typedef enum { ROLE_NONE = 0, ROLE_SHOP = 1, ROLE_ADMIN = 2 } role_t;

/* The path's '*' (and '+') segments, as the route matched them. */
typedef struct {
    const char *value[2];
    size_t len[2];
} route_args_t;

/* A handler's parsed arguments live on the HTTP thread's stack while the
 * request is handled: no handler's may be larger (each checks its own). */
#define REQUEST_ARGS_BYTES_MAX 16384

/* Where a request's headers and query arguments come from when it has no
 * connection: the HTTP fuzz target (fuzz/fuzz_http.c) calls the handlers
 * directly and answers their lookups from its input. */
typedef const char *(*request_lookup_fn)(void *ctx, enum MHD_ValueKind kind, const char *key);
/* The name of the query's index-th argument, NULL past the last. */
typedef const char *(*request_arg_name_fn)(void *ctx, uint32_t index);

/* A request's state across the library's calls. */
struct request_s {
    server_t *server;
    struct MHD_Connection *conn;
    request_lookup_fn lookup; /* NULL: look in conn */
    request_arg_name_fn arg_name; /* with lookup: the query's argument names */
    void *lookup_ctx;
    char *body;
    size_t body_size;
    bool body_too_large;
    bool counted; /* in inflight */
    int route; /* index into the route table, or -1 */
    const char *url; /* the path, while router_handle runs */
    role_t role; /* what the key allows (ROLE_ADMIN without keys configured) */
    int status;
    json_out_t out;
    const char *replayed; /* Idempotent-Replayed header value, or NULL */
    bool text;            /* the body is text/plain (metrics), not JSON */
    char allow[32];       /* for a 405: the methods the path takes */
    char *location;       /* for a 307: where to (owned; request_redirect) */
    uint64_t seq;         /* the journal must reach this before the reply goes */
    uint64_t generation;  /* the journal's, when seq was taken (store_reopen) */
    bool changed;         /* this request's change was handed to the journal */
    bool ready;  /* resumed: the reply is written, send it */
    event_stream_t *stream; /* GET /v1/events: the reply is this stream */
    const char *content_type; /* NULL: JSON (or text, see above) */
    bool parked; /* on the wait list (changed under wait_lock) */
    request_t *next_waiter;
    conn_t *slot;     /* the connection's in the table (NULL: not in it) */
    bool close;       /* end the connection after this reply */
    bool client_closes; /* the client asked for that itself */
    bool retry_after; /* a 503 that says when to come back */
    /* For the access log and the latency histogram (observe.h). */
    const char *method;     /* the library's, valid for the request */
    const char *error_code; /* the reply's error code (static text), NULL if none */
    int key_slot;           /* the key sent: an index of key_ids, -1 if none */
    int64_t started_us;     /* monotonic: the request complete (or refused) */
};

/* A header (MHD_HEADER_KIND) or query argument (MHD_GET_ARGUMENT_KIND) of
 * the request, NULL if it has none. */
static inline const char *request_value(request_t *r, enum MHD_ValueKind kind, const char *key)
{
    if (r->lookup != NULL) {
        return r->lookup(r->lookup_ctx, kind, key);
    }
    return MHD_lookup_connection_value(r->conn, kind, key);
}


/* Writes the error e (its status and code, errors.h); message NULL: the
 * code's own meaning. _begin/_end bracket one to which the caller adds
 * members. */
void request_error(request_t *r, api_error_t e, const char *message);
/* 307 to base + path + this request's query (re-encoded), with the error
 * e's body; false (nothing written) if out of memory. */
bool request_redirect(request_t *r, api_error_t e, const char *base, const char *path,
                      const char *message);
void request_error_field(request_t *r, api_error_t e, const char *field, const char *message);
void request_error_begin(request_t *r, api_error_t e, const char *message);
void request_error_end(request_t *r);
/* 400 invalid_field, naming the field. */
void request_invalid_field(request_t *r, const char *field, const char *message);

/* The body as a JSON object whose keys are all in allowed (NULL-terminated).
 * An empty body is an empty object unless required. NULL after the error
 * reply. */
json_t *request_body(request_t *r, const char *const *allowed, bool required);
/* Whether key is one of allowed (NULL-terminated). */
bool request_field_allowed(const char *key, const char *const *allowed);
/* An integer member in [lo, hi] (field: its name in the error); absent is
 * fine unless required. false after the error reply. */
bool request_int(request_t *r, json_t *obj, const char *key, const char *field, int64_t lo,
                 int64_t hi, bool required, int64_t *out);
/* The optional Idempotency-Key header, copied to out (HF_IDEM_KEY_BYTES_MAX
 * bytes) with its length, 0 if absent. false after the error reply. */
bool request_idem_key(request_t *r, char *out, uint8_t *len_out);
/* A name member (customer, fingerprint, order_ref, reason): *out NULL if
 * absent and not required. false after the error reply. */
bool request_name(request_t *r, json_t *obj, const char *key, bool required, const char **out,
                  size_t *len_out);

/* The query parameter name as a decimal number, digits only, within
 * [min, max]: absent (out untouched), ok (out set), or bad (nothing sent:
 * the caller answers it, naming what the parameter must be). */
typedef enum { REQUEST_QUERY_ABSENT, REQUEST_QUERY_OK, REQUEST_QUERY_BAD } request_query_t;
request_query_t request_query_number(request_t *r, const char *name, uint64_t min, uint64_t max,
                                     uint64_t *out);
/* ?limit=N in 1..max (def when absent); false after the 400. */
bool request_query_limit(request_t *r, int64_t max, int64_t def, int64_t *limit);

/* Whether the request may touch the hold or waitlist entry id: it sends the
 * secret (Hold-Secret or Waitlist-Secret), or has the admin's powers, or the
 * server lets a missing secret pass (--hold-secret optional). A secret that
 * is sent is always checked. Otherwise replies 403 and returns false. */
bool request_secret_allows(request_t *r, holdkey_kind_t kind, uint64_t id);

#endif
