/*
 * webhook.h - the front door of webhook delivery: signed POSTs of events
 * from the outbox to the shop's URLs, retried until they are taken.
 *
 * The server decides what an event is and when it may be queued (only once
 * the journal covers its cause: server/webhooks.c and the store's outbox);
 * this module only delivers what it is handed, and tells its owner (ack)
 * when a row is done with, so that the row can leave the outbox.
 *
 * Delivery. Each endpoint has its own thread and one connection at a time
 * (Connection: close), and takes the events in outbox order: an event is
 * tried until the endpoint answers 2xx, with exponential backoff from
 * retry_min_ms to retry_max_ms, jittered (each wait is drawn between half
 * and all of its step, so receivers that failed together are not retried
 * together), each attempt bounded by
 * timeout_ms; after attempts_max attempts, or once the event is older than
 * age_max_ms, it is dropped for that endpoint and counted. The next event
 * waits for the one before it: a receiver sees the events in the order they
 * happened, at least once each, except those dropped.
 *
 * Nothing here takes the server's engine lock or touches the disk: the
 * request path never waits on a receiver.
 *
 * Wire: POST <url>, Content-Type: application/json, the event as the body,
 *   Holdfast-Event-Id: evt_...        the same on every attempt
 *   Holdfast-Event-Type: sku.sold_out
 *   Holdfast-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
 * (docs/WEBHOOKS.md shows how to check it).
 */
#ifndef HF_WEBHOOK_H
#define HF_WEBHOOK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A handful of receivers is what a shop runs (its backend, a cache, an
 * alerting hook); each has a thread. */
#define WEBHOOK_ENDPOINTS_MAX 8
#define WEBHOOK_URL_BYTES_MAX 512
/* HMAC-SHA256 wants a key of at least its output's 32 bytes of entropy; 16
 * bytes is the floor we accept (a 32-hex-digit random string). */
#define WEBHOOK_SECRET_BYTES_MIN 16
#define WEBHOOK_SECRET_BYTES_MAX 256
/* An event's JSON: a hold of 64 lines of the longest sku is about 7 KiB. */
#define WEBHOOK_BODY_BYTES_MAX (16 * 1024)
/* "evt_" and 24 hex digits. */
#define WEBHOOK_EVENT_ID_MAX 28

/* Events waiting (for the journal, or for delivery): a day of a busy shop's
 * sell-outs and expiries at a few per second; a row is at most 16 KiB. */
#define WEBHOOK_OUTBOX_MAX_DEFAULT 100000u
#define WEBHOOK_OUTBOX_MAX_LIMIT 1000000u
/* Retries: from a second to five minutes apart, for at most a day or 25
 * attempts (about 1.5 hours of backoff once at the cap); an attempt gets
 * ten seconds, as the server's own clients do. */
#define WEBHOOK_RETRY_MIN_MS_DEFAULT 1000u
#define WEBHOOK_RETRY_MAX_MS_DEFAULT 300000u
#define WEBHOOK_ATTEMPTS_MAX_DEFAULT 25u
#define WEBHOOK_AGE_MAX_MS_DEFAULT (24u * 3600 * 1000)
#define WEBHOOK_TIMEOUT_MS_DEFAULT 10000u
/* Bounds of those settings (tests use a few milliseconds). */
#define WEBHOOK_RETRY_MS_LIMIT (24u * 3600 * 1000)
#define WEBHOOK_ATTEMPTS_LIMIT 1000u
#define WEBHOOK_TIMEOUT_MS_MIN 10u
#define WEBHOOK_TIMEOUT_MS_LIMIT 120000u

/* The events, in one table: kind, wire name. */
#define WEBHOOK_EVENTS(X)                                                                      \
    X(WEBHOOK_WAITLIST_OFFERED, "waitlist.offered")                                            \
    X(WEBHOOK_HOLD_EXPIRED, "hold.expired")                                                    \
    X(WEBHOOK_SKU_SOLD_OUT, "sku.sold_out")                                                    \
    X(WEBHOOK_SKU_BACK_IN_STOCK, "sku.back_in_stock")                                          \
    X(WEBHOOK_SKU_ESCALATED, "sku.escalated")                                                  \
    X(WEBHOOK_SKU_DEESCALATED, "sku.deescalated")                                              \
    X(WEBHOOK_IDENTITY_REVOKED, "identity.revoked")

typedef enum {
#define WEBHOOK_EVENT_ENUM(name, text) name,
    WEBHOOK_EVENTS(WEBHOOK_EVENT_ENUM)
#undef WEBHOOK_EVENT_ENUM
        WEBHOOK_EVENT_COUNT
} webhook_event_t;

const char *webhook_event_name(webhook_event_t e);
bool webhook_event_parse(const char *text, webhook_event_t *out);

/* ---- configuration ---- */

typedef struct {
    char url[WEBHOOK_URL_BYTES_MAX + 1]; /* as configured */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char host[72];                        /* the Host header */
    char path[WEBHOOK_URL_BYTES_MAX + 1]; /* the request target */
    uint32_t events;                      /* bit e: wants event e */
    bool loopback;
} webhook_endpoint_t;

typedef struct {
    uint32_t endpoint_count;
    webhook_endpoint_t endpoints[WEBHOOK_ENDPOINTS_MAX];
    char secret[WEBHOOK_SECRET_BYTES_MAX + 1];
    size_t secret_len;
    char secret_file[4096];   /* config key webhook_secret_file ("": none) */
    bool secret_given;        /* config key webhook_secret was given */
    uint32_t retry_min_ms, retry_max_ms, attempts_max, timeout_ms, age_max_ms;
    uint32_t outbox_max;
} webhook_config_t;

void webhook_config_default(webhook_config_t *c);
/* Whether key is one of the configuration file's webhook keys: webhooks,
 * webhook_secret, webhook_secret_file, webhook_retry, webhook_outbox_max. */
bool webhook_config_is_key(const char *key);
/* Reads one of them. 0, or -1 after printing what is wrong to stderr. */
int webhook_config_key(webhook_config_t *c, const char *key, json_t *v);
/* Once every key is read: takes the secret from its file, or from the
 * environment (HOLDFAST_WEBHOOK_SECRET) when the file names none, and
 * checks that endpoints have one. 0, or -1 after printing why. */
int webhook_config_finish(webhook_config_t *c);

/* ---- delivery ---- */

typedef struct webhook_s webhook_t;

/* A row is done with: delivered to every endpoint that wants it, or given up. */
typedef void (*webhook_ack_fn)(void *ctx, uint64_t row_id);

/* NULL if out of memory. Threads start with webhook_start. */
webhook_t *webhook_create(const webhook_config_t *c, webhook_ack_fn ack, void *ack_ctx);
/* 0, or -1 if a thread could not start (webhook_destroy cleans up). */
int webhook_start(webhook_t *w);
/* Ends every attempt in flight at once and joins the threads; what was not
 * delivered stays in the outbox for the next start. */
void webhook_stop(webhook_t *w);
void webhook_destroy(webhook_t *w);

/* Room for one more event, counted as waiting (true), or none (false: the
 * caller drops it and calls webhook_count_full). Any thread. */
bool webhook_reserve(webhook_t *w);
/* A reserved event that will never be committed (the journal refused it). */
void webhook_unreserve(webhook_t *w, uint32_t count);
void webhook_count_full(webhook_t *w, webhook_event_t e);
/* Events the server could not describe (its log of changes overran). */
void webhook_count_lost(webhook_t *w, uint64_t count);

/* A row of the outbox, to deliver: committed (reserved before) or, with
 * loaded, read back at a start. Copies what it needs. */
void webhook_enqueue(webhook_t *w, uint64_t row_id, uint32_t kind, const char *event_id,
                     int64_t at_ms, const char *body, size_t size, bool loaded);

/* The outcomes counted per event. */
typedef enum {
    WEBHOOK_OK = 0,     /* a 2xx from an endpoint */
    WEBHOOK_FAILED = 1, /* an attempt that got no 2xx (retried unless dropped) */
    WEBHOOK_DROPPED = 2, /* given up: attempts, age, or no room in the outbox */
    WEBHOOK_OUTCOME_COUNT = 3,
} webhook_outcome_t;

typedef enum {
    WEBHOOK_DROP_ATTEMPTS = 0,
    WEBHOOK_DROP_AGE = 1,
    WEBHOOK_DROP_OUTBOX_FULL = 2,
    WEBHOOK_DROP_LOST = 3,
    WEBHOOK_DROP_REASON_COUNT = 4,
} webhook_drop_t;

typedef struct {
    uint64_t deliveries[WEBHOOK_EVENT_COUNT][WEBHOOK_OUTCOME_COUNT];
    uint64_t drops[WEBHOOK_DROP_REASON_COUNT];
    uint64_t depth;        /* events waiting for the journal or for delivery */
    uint64_t queued;       /* of those, committed and in delivery */
    int64_t oldest_at_ms;  /* the oldest undelivered event's time (0: none) */
    uint32_t endpoint_count;
    int64_t last_success_ms[WEBHOOK_ENDPOINTS_MAX]; /* wall clock (0: never) */
    uint32_t attempts[WEBHOOK_ENDPOINTS_MAX];       /* of the event at its head */
} webhook_stats_t;

void webhook_stats(webhook_t *w, webhook_stats_t *out);

/* ---- pieces, exported for the tests ---- */

/* Writes "t=<t>,v1=<64 hex digits>" (at most 96 bytes and a NUL); false
 * if this OpenSSL cannot (webhook_create checks that once). */
bool webhook_sign(const char *secret, size_t secret_len, int64_t t, const char *body,
                  size_t body_len, char *out, size_t out_size);
/* Parses an http:// URL whose host is an IP address or localhost (no name
 * is ever looked up). 0, or -1 with why in err. */
int webhook_url_parse(const char *url, webhook_endpoint_t *e, char *err, size_t err_size);
/* The delay before retry `attempt` (1, 2, ...): min * 2^(attempt-1) capped
 * at max, then a uniform draw in [half of it, all of it] from r (0..2^64-1). */
uint32_t webhook_backoff_ms(uint32_t min_ms, uint32_t max_ms, uint32_t attempt, uint64_t r);

#endif
