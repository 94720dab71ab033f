/*
 * deliver.c - the queue of committed events and the endpoints' threads
 * (webhook.h).
 *
 * The queue holds every committed row not yet done with, in row order; each
 * endpoint walks it with its own position. A row is done with once every
 * endpoint that wants it has delivered or dropped it; rows leave the front
 * only, so the queue stays in order, and each leaving row is acked (its
 * owner deletes it from the outbox).
 *
 * An endpoint's state machine, for the row at its position:
 *
 *   waiting --(a row there)--> attempt --2xx--> finished (next row)
 *                                 |
 *                                 +--otherwise--> backoff --(retry_at)--> attempt
 *                                 |
 *                                 +--attempts_max or age_max_ms reached--> dropped (next row)
 *
 * Invariants (under lock):
 *   1. head <= every endpoint's position <= head + count.
 *   2. A row's pending bits are the endpoints that want it and have not
 *      passed it; the front row has some (else it would have left).
 *   3. reserved + count is what the outbox holds or is about to.
 */
#include <assert.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hf_clock.h"
#include "hf_thread.h"
#include "hf_mix.h"
#include "hf_version.h"
#include "post.h"
#include "webhook.h"


/* The request head: the request line, the Host (72), the path (512) and
 * the event's headers fit with room to spare. */
#define HEAD_BYTES_MAX 1536

typedef struct {
    uint64_t row_id;
    webhook_event_t kind;
    char event_id[48];
    int64_t at_ms;
    char *body;
    size_t size;
    uint32_t pending; /* bit i: endpoint i has yet to deliver or drop it */
} row_t;

typedef struct {
    webhook_t *w;
    uint32_t index;
    pthread_t thread;
    bool started;
    uint64_t next;        /* the queue position of its next row */
    uint32_t attempts;    /* at that row so far */
    int64_t retry_at_ms;  /* monotonic; 0: now */
    int64_t last_success_ms;
    uint64_t rng;
} endpoint_t;

struct webhook_s {
    webhook_config_t config;
    webhook_ack_fn ack;
    void *ack_ctx;
    pthread_mutex_t lock;
    pthread_cond_t more; /* a row was queued, or stop */
    bool stopping;
    int cancel_fds[2]; /* readable once stopping: attempts in flight end */
    row_t **ring;
    uint64_t ring_cap, ring_first; /* slot of the front row */
    uint64_t head, count;          /* queue positions head .. head + count - 1 */
    uint64_t reserved;
    endpoint_t endpoints[WEBHOOK_ENDPOINTS_MAX];
    uint64_t deliveries[WEBHOOK_EVENT_COUNT][WEBHOOK_OUTCOME_COUNT];
    uint64_t drops[WEBHOOK_DROP_REASON_COUNT];
};



uint32_t webhook_backoff_ms(uint32_t min_ms, uint32_t max_ms, uint32_t attempt, uint64_t r)
{
    assert(attempt >= 1 && min_ms <= max_ms);
    uint64_t step = min_ms;
    for (uint32_t i = 1; i < attempt && step < max_ms; i++) {
        step *= 2;
    }
    step = step < max_ms ? step : max_ms;
    uint64_t half = step / 2;
    return (uint32_t)(step - half + (half > 0 ? r % (half + 1) : 0));
}

/* ------------------------------------------------------------- the queue */

static row_t *row_at(const webhook_t *w, uint64_t pos)
{
    if (pos < w->head || pos >= w->head + w->count) {
        return NULL;
    }
    return w->ring[(w->ring_first + (pos - w->head)) % w->ring_cap];
}

static bool ring_grow(webhook_t *w)
{
    uint64_t cap = w->ring_cap == 0 ? 1024 : w->ring_cap * 2;
    row_t **ring = malloc(cap * sizeof *ring);
    if (ring == NULL) {
        return false;
    }
    for (uint64_t i = 0; i < w->count; i++) {
        ring[i] = w->ring[(w->ring_first + i) % w->ring_cap];
    }
    free(w->ring);
    w->ring = ring;
    w->ring_cap = cap;
    w->ring_first = 0;
    return true;
}

/* Rows at the front that every endpoint is done with leave, acked. */
static void pop_done(webhook_t *w)
{
    while (w->count > 0) {
        row_t *row = w->ring[w->ring_first];
        if (row->pending != 0) {
            break;
        }
        w->ring_first = (w->ring_first + 1) % w->ring_cap;
        w->head++;
        w->count--;
        w->ack(w->ack_ctx, row->row_id);
        free(row->body);
        free(row);
    }
}

static uint32_t wanted_by(const webhook_t *w, webhook_event_t kind)
{
    uint32_t mask = 0;
    for (uint32_t i = 0; i < w->config.endpoint_count; i++) {
        uint32_t events = w->config.endpoints[i].events;
        if ((unsigned)kind < WEBHOOK_EVENT_COUNT && (events & (1u << kind))) {
            mask |= 1u << i;
        }
    }
    return mask;
}

void webhook_enqueue(webhook_t *w, uint64_t row_id, uint32_t kind, const char *event_id,
                     int64_t at_ms, const char *body, size_t size, bool loaded)
{
    row_t *row = calloc(1, sizeof *row);
    char *copy = row != NULL ? malloc(size + 1) : NULL;
    pthread_mutex_lock(&w->lock);
    if (!loaded && w->reserved > 0) {
        w->reserved--;
    }
    if (copy == NULL || (w->count == w->ring_cap && !ring_grow(w))) {
        /* Out of memory: the row stays in the outbox, for the next start. */
        pthread_mutex_unlock(&w->lock);
        free(copy);
        free(row);
        return;
    }
    memcpy(copy, body, size);
    copy[size] = '\0';
    *row = (row_t){.row_id = row_id, .kind = (webhook_event_t)kind, .at_ms = at_ms,
                   .body = copy, .size = size, .pending = wanted_by(w, (webhook_event_t)kind)};
    snprintf(row->event_id, sizeof row->event_id, "%s", event_id);
    w->ring[(w->ring_first + w->count) % w->ring_cap] = row;
    w->count++;
    pop_done(w); /* wanted by no endpoint: done with at once */
    pthread_cond_broadcast(&w->more);
    pthread_mutex_unlock(&w->lock);
}

bool webhook_reserve(webhook_t *w)
{
    pthread_mutex_lock(&w->lock);
    bool room = w->reserved + w->count < w->config.outbox_max;
    w->reserved += room;
    pthread_mutex_unlock(&w->lock);
    return room;
}

void webhook_unreserve(webhook_t *w, uint32_t count)
{
    pthread_mutex_lock(&w->lock);
    w->reserved = w->reserved > count ? w->reserved - count : 0;
    pthread_mutex_unlock(&w->lock);
}

void webhook_count_full(webhook_t *w, webhook_event_t e)
{
    pthread_mutex_lock(&w->lock);
    w->deliveries[e][WEBHOOK_DROPPED]++;
    w->drops[WEBHOOK_DROP_OUTBOX_FULL]++;
    pthread_mutex_unlock(&w->lock);
}

void webhook_count_lost(webhook_t *w, uint64_t count)
{
    pthread_mutex_lock(&w->lock);
    w->drops[WEBHOOK_DROP_LOST] += count;
    pthread_mutex_unlock(&w->lock);
}

/* ---------------------------------------------------------- an endpoint */

/* The endpoint is done with its row (delivered, dropped): on to the next. */
static void finish(webhook_t *w, endpoint_t *e, row_t *row)
{
    row->pending &= ~(1u << e->index);
    e->next++;
    e->attempts = 0;
    e->retry_at_ms = 0;
    pop_done(w);
}

static size_t write_head(const webhook_t *w, const endpoint_t *e, const row_t *row,
                         const char *signature, char *head)
{
    const webhook_endpoint_t *ep = &w->config.endpoints[e->index];
    int n = snprintf(head, HEAD_BYTES_MAX,
                     "POST %s HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "User-Agent: holdfast/" HF_VERSION "\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: %zu\r\n"
                     "Connection: close\r\n"
                     "Holdfast-Event-Id: %s\r\n"
                     "Holdfast-Event-Type: %s\r\n"
                     "Holdfast-Delivery-Attempt: %u\r\n"
                     "Holdfast-Signature: %s\r\n"
                     "\r\n",
                     ep->path, ep->host, row->size, row->event_id, webhook_event_name(row->kind),
                     e->attempts + 1, signature);
    assert(n > 0 && n < HEAD_BYTES_MAX);
    return (size_t)n;
}

/* After an attempt that got no 2xx: back off, or give the row up. */
static void failed(webhook_t *w, endpoint_t *e, row_t *row, const char *why)
{
    const webhook_config_t *c = &w->config;
    w->deliveries[row->kind][WEBHOOK_FAILED]++;
    e->attempts++;
    int64_t age_ms = hf_wall_ms() - row->at_ms;
    webhook_drop_t reason = e->attempts >= c->attempts_max ? WEBHOOK_DROP_ATTEMPTS
                            : age_ms >= c->age_max_ms      ? WEBHOOK_DROP_AGE
                                                           : WEBHOOK_DROP_REASON_COUNT;
    if (e->attempts == 1 || reason != WEBHOOK_DROP_REASON_COUNT) {
        fprintf(stderr,
                "level=warn msg=\"webhook delivery failed%s\" endpoint=%u event=%s type=%s "
                "attempts=%u err=\"%s\"\n",
                reason == WEBHOOK_DROP_ATTEMPTS ? "; dropped after the last attempt"
                : reason == WEBHOOK_DROP_AGE    ? "; dropped: too old"
                                                : "; retrying",
                e->index, row->event_id, webhook_event_name(row->kind), e->attempts, why);
    }
    if (reason != WEBHOOK_DROP_REASON_COUNT) {
        w->deliveries[row->kind][WEBHOOK_DROPPED]++;
        w->drops[reason]++;
        finish(w, e, row);
        return;
    }
    e->retry_at_ms = hf_mono_ms() + webhook_backoff_ms(c->retry_min_ms, c->retry_max_ms, e->attempts,
                                                    hf_splitmix64(&e->rng));
}

/* One attempt at the row; the lock is let go while it is on the wire (the
 * row stays: it cannot leave before this endpoint is done with it). */
static void attempt(webhook_t *w, endpoint_t *e, row_t *row)
{
    const webhook_config_t *c = &w->config;
    char signature[128], head[HEAD_BYTES_MAX], err[160] = "";
    int64_t t = hf_wall_ms() / 1000;
    bool signed_ok = webhook_sign(c->secret, c->secret_len, t, row->body, row->size, signature,
                                  sizeof signature);
    assert(signed_ok); /* webhook_create checked this OpenSSL */
    size_t head_len = write_head(w, e, row, signature, head);
    pthread_mutex_unlock(&w->lock);
    int status = webhook_post(&c->endpoints[e->index], head, head_len, row->body, row->size,
                              c->timeout_ms, w->cancel_fds[0], err, sizeof err);
    pthread_mutex_lock(&w->lock);
    if (w->stopping) {
        return; /* cut short: neither delivered nor failed */
    }
    if (status >= 200 && status <= 299) {
        w->deliveries[row->kind][WEBHOOK_OK]++;
        e->last_success_ms = hf_wall_ms();
        finish(w, e, row);
        return;
    }
    if (status > 0) {
        snprintf(err, sizeof err, "HTTP %d", status);
    }
    failed(w, e, row, err);
}

static void wait_until(webhook_t *w, int64_t at_mono_ms)
{
    struct timespec ts = {.tv_sec = at_mono_ms / 1000, .tv_nsec = (at_mono_ms % 1000) * 1000000L};
    pthread_cond_timedwait(&w->more, &w->lock, &ts);
}

static void *endpoint_main(void *arg)
{
    endpoint_t *e = arg;
    hf_thread_name("hf-webhook");
    webhook_t *w = e->w;
    pthread_mutex_lock(&w->lock);
    while (!w->stopping) {
        row_t *row = row_at(w, e->next);
        if (row == NULL) {
            pthread_cond_wait(&w->more, &w->lock);
        } else if ((row->pending & (1u << e->index)) == 0) {
            e->next++; /* not an event it wants */
        } else if (hf_mono_ms() < e->retry_at_ms) {
            wait_until(w, e->retry_at_ms);
        } else {
            attempt(w, e, row);
        }
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* ------------------------------------------------------------- life */

/* A known answer (HMAC-SHA256, checked with another implementation): a
 * library without HMAC is found at start, not at the first event. */
static bool sign_works(void)
{
    char out[128];
    return webhook_sign("0123456789abcdef", 16, 1700000000, "{\"a\":1}", 7, out, sizeof out) &&
           strcmp(out, "t=1700000000,v1=9eb18f493f8ec135d9eb2dad817c369bb4e9cbfa818657897a7437c1cd8"
                       "c3a23") == 0;
}

webhook_t *webhook_create(const webhook_config_t *c, webhook_ack_fn ack, void *ack_ctx)
{
    assert(c->endpoint_count <= WEBHOOK_ENDPOINTS_MAX && c->secret_len > 0);
    if (!sign_works()) {
        fprintf(stderr,
                "level=error msg=\"cannot sign webhooks: this OpenSSL lacks HMAC-SHA256\"\n");
        return NULL;
    }
    webhook_t *w = calloc(1, sizeof *w);
    if (w == NULL) {
        return NULL;
    }
    w->config = *c;
    w->ack = ack;
    w->ack_ctx = ack_ctx;
    w->cancel_fds[0] = w->cancel_fds[1] = -1;
    if (pipe(w->cancel_fds) != 0) {
        free(w);
        return NULL;
    }
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->more, &attr);
    pthread_condattr_destroy(&attr);
    for (uint32_t i = 0; i < c->endpoint_count; i++) {
        endpoint_t *e = &w->endpoints[i];
        e->w = w;
        e->index = i;
        if (RAND_bytes((unsigned char *)&e->rng, sizeof e->rng) != 1) {
            e->rng = (uint64_t)hf_mono_ms() ^ ((uint64_t)i << 32);
        }
    }
    return w;
}

int webhook_start(webhook_t *w)
{
    for (uint32_t i = 0; i < w->config.endpoint_count; i++) {
        endpoint_t *e = &w->endpoints[i];
        pthread_mutex_lock(&w->lock);
        e->next = w->head;
        pthread_mutex_unlock(&w->lock);
        if (pthread_create(&e->thread, NULL, endpoint_main, e) != 0) {
            return -1;
        }
        e->started = true;
    }
    return 0;
}

void webhook_stop(webhook_t *w)
{
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_broadcast(&w->more);
    pthread_mutex_unlock(&w->lock);
    ssize_t n = write(w->cancel_fds[1], "x", 1);
    (void)n; /* a full pipe is already readable */
    for (uint32_t i = 0; i < w->config.endpoint_count; i++) {
        if (w->endpoints[i].started) {
            pthread_join(w->endpoints[i].thread, NULL);
            w->endpoints[i].started = false;
        }
    }
}

void webhook_destroy(webhook_t *w)
{
    if (w == NULL) {
        return;
    }
    webhook_stop(w);
    for (uint64_t i = 0; i < w->count; i++) {
        row_t *row = w->ring[(w->ring_first + i) % w->ring_cap];
        free(row->body);
        free(row);
    }
    free(w->ring);
    close(w->cancel_fds[0]);
    close(w->cancel_fds[1]);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->more);
    memset(w->config.secret, 0, sizeof w->config.secret);
    free(w);
}

void webhook_stats(webhook_t *w, webhook_stats_t *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&w->lock);
    memcpy(out->deliveries, w->deliveries, sizeof out->deliveries);
    memcpy(out->drops, w->drops, sizeof out->drops);
    out->depth = w->reserved + w->count;
    out->queued = w->count;
    out->oldest_at_ms = w->count > 0 ? w->ring[w->ring_first]->at_ms : 0;
    out->endpoint_count = w->config.endpoint_count;
    for (uint32_t i = 0; i < w->config.endpoint_count; i++) {
        out->last_success_ms[i] = w->endpoints[i].last_success_ms;
        out->attempts[i] = w->endpoints[i].attempts;
    }
    pthread_mutex_unlock(&w->lock);
}
