/*
 * server_state.h - what a running server is made of (server-private): one
 * server_t, which every part of the server reads and each part changes
 * only where its own file says. Types and the clock only; no part's
 * functions, so that every file can include it and none depends on
 * another through it.
 */
#ifndef HF_SERVER_STATE_H
#define HF_SERVER_STATE_H

#include <microhttpd.h>
#include <pthread.h>
#include <sys/types.h>

#include "conns.h"
#include "hf_clock.h"
#include "history.h"
#include "holdkey.h"
#include "json_out.h"
#include "server.h"

/* One table of HTTP statuses the server sends, for the metrics' labels. */
#define SERVER_STATUSES(X)                                                                     \
    X(200) X(201) X(202) X(307) X(400) X(401) X(403) X(404) X(405) X(409) X(410) X(413)       \
        X(422) X(428) X(429) X(431) X(500) X(503)
#define SERVER_STATUS_COUNT 18
#define SERVER_ROUTE_COUNT_MAX 32

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
    int64_t journal_failed_ms; /* when the tick saw PostgreSQL's journal fail (0: not) */

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
    /* The route table's names (router.c), for the metrics' and the access
     * log's labels: set before the first request. */
    const char *const *route_patterns;
    const char *const *route_methods;
    int route_count;
    char route_templates[SERVER_ROUTE_COUNT_MAX][64]; /* observe_templates */
};

/* A route's pattern and method as the labels show them (route -1: none
 * matched). */
static inline const char *server_route_label(const server_t *s, int route)
{
    return route >= 0 && route < s->route_count ? s->route_patterns[route] : "unmatched";
}

static inline const char *server_route_method(const server_t *s, int route)
{
    return route >= 0 && route < s->route_count ? s->route_methods[route] : "other";
}

/* Engine time: the journal's clock (recovered at start) plus monotonic time
 * since, so that it never goes back. */
static inline int64_t server_mono_ms(void)
{
    return hf_mono_ms();
}

/* Engine time at monotonic time mono_ms (a caller that needs both reads
 * the clock once). */
static inline int64_t server_now_at_ms(const server_t *s, int64_t mono_ms)
{
    return s->clock_base_ms + (mono_ms - s->mono_start_ms);
}

static inline int64_t server_now_ms(const server_t *s)
{
    return server_now_at_ms(s, server_mono_ms());
}

#endif
