/*
 * server_internal.h - what the server's own files share (server-private).
 */
#ifndef HF_SERVER_INTERNAL_H
#define HF_SERVER_INTERNAL_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>

#include "json_out.h"
#include "server.h"

typedef enum { ROLE_NONE = 0, ROLE_SHOP = 1, ROLE_ADMIN = 2 } role_t;

/* One table of HTTP statuses the server sends, for the metrics' labels. */
#define SERVER_STATUSES(X)                                                                     \
    X(200) X(201) X(400) X(401) X(403) X(404) X(405) X(409) X(410) X(413) X(422) X(431)       \
        X(500) X(503)
#define SERVER_STATUS_COUNT 14
#define SERVER_ROUTE_COUNT_MAX 16

typedef struct {
    uint64_t requests[SERVER_ROUTE_COUNT_MAX + 1][SERVER_STATUS_COUNT];
    uint64_t hold_results[ENGINE_RESULT_COUNT];
} metrics_t;

typedef struct request_s request_t;

typedef struct server_s {
    server_config_t config;
    engine_t engine;
    store_t store;
    pthread_mutex_t engine_lock;
    struct MHD_Daemon *daemon;
    int64_t clock_base_ms; /* engine time = base + monotonic ms since start */
    int64_t mono_start_ms;
    int64_t started_epoch_ms;

    pthread_mutex_t wait_lock; /* replies waiting for the journal */
    request_t *wait_head;
    uint32_t wait_count;

    int inflight; /* requests being handled (atomic) */
    int draining; /* shutting down: answer with Connection: close (atomic) */
    metrics_t metrics;
    store_recovery_t recovery;
} server_t;

/* A request's state across the library's calls. */
struct request_s {
    server_t *server;
    struct MHD_Connection *conn;
    char *body;
    size_t body_size;
    bool body_too_large;
    bool counted; /* in inflight */
    int route; /* index into the route table, or -1 */
    int status;
    json_out_t out;
    const char *replayed; /* Idempotent-Replayed header value, or NULL */
    bool text;            /* the body is text/plain (metrics), not JSON */
    char allow[32];       /* for a 405: the methods the path takes */
    uint64_t seq;         /* the journal must reach this before the reply goes */
    bool ready;  /* resumed: the reply is written, send it */
    bool parked; /* on the wait list (changed under wait_lock) */
    request_t *next_waiter;
};

/* server.c */
int64_t server_now_ms(server_t *s);
int64_t server_mono_ms(void);

/* routes.c: dispatches a complete request and fills r->status and r->out. */
void routes_handle(request_t *r, const char *method, const char *url);
const char *routes_label(int route);
int routes_count(void);

/* reply helpers (routes.c) */
void reply_error(request_t *r, int status, const char *code, const char *message);
void reply_error_field(request_t *r, int status, const char *code, const char *field,
                       const char *message);

/* metrics.c */
void metrics_count(server_t *s, int route, int status);
void metrics_render(server_t *s, json_out_t *out);
int metrics_status_index(int status);

/* validate.c */
bool valid_sku(const char *s, size_t len);
bool valid_name(const char *s, size_t len);
bool valid_ip(const char *s);
bool valid_idem_key(const char *s, size_t len);

#endif
