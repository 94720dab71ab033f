/*
 * server_internal.h - what the server's own files share (server-private).
 */
#ifndef HF_SERVER_INTERNAL_H
#define HF_SERVER_INTERNAL_H

#include <jansson.h>
#include <microhttpd.h>
#include <openssl/types.h>
#include <pthread.h>
#include <sys/types.h>

#include "conns.h"
#include "errors.h"
#include "history.h"
#include "json_out.h"
#include "server.h"

typedef enum { ROLE_NONE = 0, ROLE_SHOP = 1, ROLE_ADMIN = 2 } role_t;

/* A key's id in the logs: 8 hex digits of a keyed hash (observe.c). */
#define SERVER_KEY_ID_TEXT 8

/* One table of HTTP statuses the server sends, for the metrics' labels. */
#define SERVER_STATUSES(X)                                                                     \
    X(200) X(201) X(202) X(400) X(401) X(403) X(404) X(405) X(409) X(410) X(413) X(422)       \
        X(428) X(429) X(431) X(500) X(503)
#define SERVER_STATUS_COUNT 17
#define SERVER_ROUTE_COUNT_MAX 32

/* holdkey.c: the ids and secrets of holds (and waitlist entries) on the
 * wire, made from the data directory's key (store.h); read-only once made. */
#define HOLDKEY_ID_TEXT_MAX 16     /* "hold_" and 11 base62 digits */
#define HOLDKEY_SECRET_TEXT_MAX 25 /* "hs_" (or "ws_") and 22 base64url digits */
typedef enum { HOLDKEY_HOLD = 0, HOLDKEY_WAIT = 1 } holdkey_kind_t;
typedef enum {
    HOLDKEY_ID_BAD = 0, /* no hold could have it */
    HOLDKEY_ID_WIRE,    /* an id as the server shows them */
    HOLDKEY_ID_LEGACY,  /* the engine's spelling, of a hold made before the key */
} holdkey_id_t;
typedef struct {
    uint64_t id_key[2]; /* SipHash's: the permutation's rounds */
    EVP_MAC_CTX *hmac;  /* keyed with the secret key */
    uint64_t legacy_hold_seq;
} holdkey_t;
/* -1 if this OpenSSL lacks HMAC or SipHash (which ours is checked against). */
int holdkey_init(holdkey_t *k, const store_key_t *sk);
void holdkey_deinit(holdkey_t *k);
/* Writes at most HOLDKEY_ID_TEXT_MAX bytes and a NUL: a hold made before
 * the key keeps its id in the engine's spelling. */
size_t holdkey_id_format(const holdkey_t *k, uint64_t engine_id, char *out);
holdkey_id_t holdkey_id_parse(const holdkey_t *k, const char *text, size_t len,
                              uint64_t *engine_id);
/* Writes HOLDKEY_SECRET_TEXT_MAX bytes and a NUL. */
size_t holdkey_secret(const holdkey_t *k, holdkey_kind_t kind, uint64_t id, char *out);
/* In constant time for a text of the right length. */
bool holdkey_secret_matches(const holdkey_t *k, holdkey_kind_t kind, uint64_t id,
                            const char *text);
/* A key's id for the logs: SERVER_KEY_ID_TEXT hex digits of its MAC and a
 * NUL; the key cannot be had back from it, nor guessed offline without the
 * data directory's key. */
void holdkey_key_id(const holdkey_t *k, const char *key, char *out);

/* What became of a request's secret (routes.c, secret_allows): a metric. */
#define SECRET_OUTCOMES(X)                                                                     \
    X(SECRET_GOOD, "good")                 /* sent, and right */                              \
    X(SECRET_WRONG, "wrong")               /* sent, and wrong: refused */                     \
    X(SECRET_MISSING, "missing")           /* none, with a shop key: refused */               \
    X(SECRET_MISSING_ALLOWED, "missing_allowed") /* none, shop key, --hold-secret optional */ \
    X(SECRET_ADMIN, "admin")               /* none, with the admin's powers */
typedef enum {
#define SECRET_ENUM(name, label) name,
    SECRET_OUTCOMES(SECRET_ENUM)
#undef SECRET_ENUM
        SECRET_OUTCOME_COUNT
} secret_outcome_t;

/* The request latency histogram's buckets (metrics.c): from a tenth of a
 * millisecond, a reply that waited for no journal, to seconds. */
#define METRICS_LATENCY_BUCKETS 15

typedef struct {
    uint64_t requests[SERVER_ROUTE_COUNT_MAX + 1][SERVER_STATUS_COUNT];
    /* [route][bucket]: not cumulative (the page adds them up); last is +Inf */
    uint64_t latency[SERVER_ROUTE_COUNT_MAX + 1][METRICS_LATENCY_BUCKETS + 1];
    uint64_t latency_sum_us[SERVER_ROUTE_COUNT_MAX + 1];
    uint64_t hold_results[ENGINE_RESULT_COUNT];
    uint64_t secrets[2][SECRET_OUTCOME_COUNT]; /* [holdkey_kind_t][outcome] */
} metrics_t;

typedef struct request_s request_t;
typedef struct server_s server_t;

/* One GET /v1/events stream (events.c). Its text is appended by the
 * publisher (the clock thread) and read by the HTTP library; the part past
 * ready_len waits until the journal covers pending_seq, so an event never
 * shows a change that a crash could still undo. Under events_lock. */
typedef struct {
    bool used;
    bool parked; /* the connection is suspended until there is text */
    bool closed; /* end the stream (shutdown, or a reader too far behind) */
    server_t *server;
    struct MHD_Connection *conn;
    uint32_t sku_count;
    uint32_t skus[HF_EVENT_SKUS_MAX];    /* engine sku indexes (never removed) */
    uint64_t sent_hash[HF_EVENT_SKUS_MAX]; /* of the sku's last sent JSON (0: none yet) */
    char *text;
    size_t len, read, ready_len;
    uint64_t pending_seq;
    int64_t pinged_ms;
} event_stream_t;

/* The attack panel's run of `holdfast sim --live` (simrun.c). */
typedef enum {
    SIM_RUN_IDLE = 0,
    SIM_RUN_RUNNING,
    SIM_RUN_STOPPING, /* asked to stop, not yet gone */
    SIM_RUN_FINISHED,
    SIM_RUN_FAILED,
    SIM_RUN_STOPPED,
} sim_run_state_t;

typedef struct {
    pthread_mutex_t lock;
    sim_run_state_t state;
    pid_t pid;
    int out_fd, err_fd; /* the child's stdout and stderr, read by thread */
    pthread_t thread;
    bool joinable;
    char scenario[32];
    int64_t seconds, started_ms, ended_ms;
    char progress[256]; /* its last line on stderr */
    char *report;       /* its stdout once it ended (JSON) */
} sim_run_t;

struct server_s {
    server_config_t config;
    guard_t *guard; /* the engine with its defenses */
    store_t store;
    pthread_mutex_t engine_lock;
    uint64_t events_logged; /* escalation events already logged */
    struct MHD_Daemon *daemon;
    int64_t clock_base_ms; /* engine time = base + monotonic ms since start */
    int64_t mono_start_ms;
    int64_t started_epoch_ms;
    int64_t reopen_at_ms; /* next look for room after a full disk (monotonic) */

    pthread_mutex_t wait_lock; /* replies waiting for the journal */
    request_t *wait_head;
    uint32_t wait_count;

    int inflight; /* requests being handled (atomic) */
    int draining; /* shutting down: answer with Connection: close (atomic) */
    metrics_t metrics;
    store_recovery_t recovery;

    pthread_mutex_t events_lock; /* taken before engine_lock, never after */
    event_stream_t streams[HF_EVENT_STREAMS_MAX];
    int64_t events_published_ms;

    /* refusals by sku (the first HF_SKU_RULE_STATS_MAX), [denied or
     * challenged][rule], since this start; under engine_lock */
    uint64_t (*sku_refusals)[2][POLICY_RULE_COUNT];

    /* The last hour of the most recently active skus, for the dashboard's
     * chart (chart.c); history_lock is taken inside engine_lock or alone. */
    pthread_mutex_t history_lock;
    history_t history;

    sim_run_t sim;
    char loopback_url[80]; /* this server on loopback ("": it listens elsewhere only) */
    holdkey_t holdkey;     /* the ids and secrets on the wire */

    /* The accept loop and the open connections (listener.c, conns.h). */
    conns_t conns;
    bool conns_ready;
    int listen_fd;   /* -1: closed */
    int wake_fds[2]; /* a pipe that stops the accept thread */
    int epoll_fd;    /* the accept thread's: listening socket, pipe, waiting heads */
    pthread_t accept_thread;
    bool accepting;
    json_out_t refusals[CONNS_REFUSAL_COUNT]; /* the 503 replies sent at accept */

    /* The access log and the keys' ids (observe.h): [i] is api_keys[i]'s,
     * [api_key_count] the admin key's. */
    struct access_log_s *access_log; /* NULL: off */
    char key_ids[SERVER_API_KEYS_MAX + 1][SERVER_KEY_ID_TEXT + 1];
    struct webhooks_s *webhooks; /* webhooks.h; NULL: none configured */
};

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
    const char *url; /* the path, while routes_handle runs */
    role_t role; /* what the key allows (ROLE_ADMIN without keys configured) */
    int status;
    json_out_t out;
    const char *replayed; /* Idempotent-Replayed header value, or NULL */
    bool text;            /* the body is text/plain (metrics), not JSON */
    char allow[32];       /* for a 405: the methods the path takes */
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

/* server.c */
int64_t server_now_ms(server_t *s);
int64_t server_mono_ms(void);
/* The server without its network: server_run() listens around these, and
 * the HTTP fuzz target drives the handlers between them. server_new() copies
 * c (NULL if out of memory); server_start() recovers c->data_dir and starts
 * the defenses, and the journal's commit thread if commit_thread (without
 * it, journaled ops wait in memory and never become durable); -1 if it
 * cannot. server_free() undoes both, whatever was reached. */
server_t *server_new(const server_config_t *c);
int server_start(server_t *s, bool commit_thread);
void server_free(server_t *s);
/* The clock thread's step: expire, reclaim, compact when due. */
void server_tick(server_t *s);

/* routes.c: dispatches a complete request and fills r->status and r->out. */
void routes_handle(request_t *r, const char *method, const char *url);
/* Whether the request may use a connection of the operators' reserve:
 * GET /healthz, /metrics, or any request with the admin key. */
bool routes_for_operator(request_t *r, const char *url);
const char *routes_label(int route);
const char *routes_method(int route); /* "other" for an unmatched request */
int routes_count(void);

/* reply helpers (routes.c) */
/* The error e (errors.h: its status and code); message NULL: its meaning. */
void reply_error(request_t *r, api_error_t e, const char *message);
void reply_error_field(request_t *r, api_error_t e, const char *field, const char *message);
void error_begin(request_t *r, api_error_t e, const char *message);
void error_end(request_t *r);
void invalid_field(request_t *r, const char *field, const char *message);
/* A guard result other than OK (or GUARD_ENGINE's engine result). */
void reply_guard_result(request_t *r, const guard_outcome_t *o);
void reply_decision(request_t *r, const policy_decision_t *d, uint64_t request_hash,
                    const guard_hold_request_t *req, int64_t now_ms);

/* request bodies (routes.c) */
json_t *parse_body(request_t *r, const char *const *allowed, bool required);
bool get_int(request_t *r, json_t *obj, const char *key, const char *field, int64_t lo,
             int64_t hi, bool required, int64_t *out);
bool get_name(request_t *r, json_t *obj, const char *key, bool required, const char **out,
              size_t *len_out);
/* ?limit=N in 1..max (def when absent); false after a 400. */
/* The query parameter name as a decimal number, digits only, within
 * [min, max]: absent (out untouched), ok (out set), or bad (nothing sent:
 * the caller answers it, naming what the parameter must be). */
typedef enum { QUERY_ABSENT, QUERY_OK, QUERY_BAD } query_number_t;
query_number_t query_number(request_t *r, const char *name, uint64_t min, uint64_t max,
                            uint64_t *out);
bool query_limit(request_t *r, int64_t max, int64_t def, int64_t *limit);

/* the guard, under the engine lock (routes.c) */
void lock(request_t *r);
void unlock(request_t *r);
/* Journals a changed op; false (and a 503 reply) if the journal refused it. */
bool journal(request_t *r, const guard_op_t *op, const guard_outcome_t *o);
/* Applies op at the current time and journals it if it changed anything. */
bool apply_op(request_t *r, guard_op_t *op, guard_outcome_t *o);
/* with_secret: the reply that hands the hold to its owner (a create, a
 * waitlist's offer) carries its secret. */
void write_hold(request_t *r, const engine_hold_view_t *h, int64_t now_ms, bool with_secret);
/* Whether the request may touch the hold or waitlist entry id: it sends the
 * secret (Hold-Secret or Waitlist-Secret), or has the admin's powers, or the
 * server lets a missing secret pass (--hold-secret optional). A secret that
 * is sent is always checked. Otherwise replies 403 and returns false. */
bool secret_allows(request_t *r, holdkey_kind_t kind, uint64_t id);
void write_policy_doc(json_out_t *j, const policy_config_t *c, uint64_t mask);

/* defense.c: policy, waitlist and identity handlers */
typedef struct {
    const char *value[2];
    size_t len[2];
} route_args_t;
void h_policy_get(request_t *r, const route_args_t *a);
void h_policy_put(request_t *r, const route_args_t *a);
void h_wait_join(request_t *r, const route_args_t *a);
void h_wait_get(request_t *r, const route_args_t *a);
void h_wait_cancel(request_t *r, const route_args_t *a);
void h_identities_top(request_t *r, const route_args_t *a);
void h_identity_revoke(request_t *r, const route_args_t *a);
/* The sku's own policy from PUT /v1/skus/{sku}'s "policy" member: parsed
 * without the lock, checked against the shop's policy under it. */
bool sku_policy_parse(request_t *r, json_t *doc, guard_op_t *op);
bool sku_policy_check(request_t *r, const guard_op_t *op);
void write_sku_defenses(const server_t *s, json_out_t *j, uint32_t sku_index);

/* events.c: GET /v1/events, the sku totals as server-sent events */
void h_events(request_t *r, const route_args_t *a);
enum MHD_Result events_reply(request_t *r); /* queues r->stream's response */
void events_stream_free(void *stream);      /* its reader is gone: the slot is free */
void events_publish(server_t *s);           /* the clock thread, every tick */
void events_close_all(server_t *s);         /* shutdown: end every stream */
/* A sku as GET /v1/skus/{sku} shows it (the engine lock held). */
void write_sku_object(server_t *s, json_out_t *j, uint32_t index);

/* chart.c: GET /v1/history, the last hour of the most recently active skus */
void h_history(request_t *r, const route_args_t *a);
int chart_init(server_t *s); /* -1: no memory for the rings */
void chart_deinit(server_t *s);
void chart_seed(server_t *s);   /* at start: the catalog's first skus, as never active */
void chart_forget(server_t *s); /* the guard was made anew: its sku indexes are others */
/* The engine lock held: the sku (a hold's skus) active at now_ms. */
void chart_note(server_t *s, uint32_t sku_index, int64_t now_ms);
void chart_note_hold(server_t *s, const engine_hold_create_t *c, int64_t now_ms);
/* The clock thread, the engine lock held, after expiring what was due: a
 * point for every tracked sku once a second. */
void chart_sample(server_t *s, int64_t now_ms);

/* static.c: the web pages (the shop at /, the dashboard at /admin) */
void h_static(request_t *r, const route_args_t *a);

/* simrun.c: the attack panel's bounded `holdfast sim --live` run */
void h_sim_start(request_t *r, const route_args_t *a);
void h_sim_get(request_t *r, const route_args_t *a);
void h_sim_stop(request_t *r, const route_args_t *a);
void simrun_init(server_t *s);
void simrun_stop(server_t *s); /* shutdown: stop the run, wait for it */
void simrun_deinit(server_t *s);

/* listener.c: the accept loop, the connection caps and deadlines */
/* Raises the soft RLIMIT_NOFILE to fit the connections; sets *fd_limit.
 * Returns 0, or -1 after logging why they cannot fit. */
int listener_fit_fds(const server_config_t *c, uint32_t *fd_limit);
uint32_t listener_library_limit(const server_config_t *c); /* MHD's connection limit */
/* Accepts on listen_fd (the library must be started). 0, or -1 if the
 * tables or the thread could not be made (listener_deinit cleans up). */
int listener_start(server_t *s, int listen_fd, uint32_t fd_limit);
void listener_stop(server_t *s);   /* stop accepting; close the socket */
void listener_deinit(server_t *s); /* after MHD_stop_daemon */
void listener_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                            enum MHD_ConnectionNotificationCode toe);
void *listener_on_request_line(void *cls, const char *uri, struct MHD_Connection *conn);
conn_t *listener_slot(struct MHD_Connection *conn);
void listener_enter(server_t *s, conn_t *c, conn_phase_t p); /* c may be NULL */

/* metrics.c */
void metrics_count(server_t *s, int route, int status);
/* A reply's time from its complete request (handler and journal wait). */
void metrics_time(server_t *s, int route, int64_t duration_us);
void metrics_render(server_t *s, json_out_t *out);
int metrics_status_index(int status);

/* validate.c */
bool valid_sku(const char *s, size_t len);
bool valid_name(const char *s, size_t len);
bool valid_ip(const char *s);
bool valid_idem_key(const char *s, size_t len);

#endif
