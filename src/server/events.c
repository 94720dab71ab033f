/*
 * events.c - GET /v1/events: the totals of some skus as server-sent events,
 * so a storefront shows availability and a dashboard its charts as they
 * change, without polling.
 *
 *   GET /v1/events?skus=cap-red,shirt-m   (at most HF_EVENT_SKUS_MAX; none:
 *                                          the catalog's first skus)
 *
 *   retry: 2000
 *
 *   event: sku
 *   data: {"sku": "cap-red", "stock": 200, "held": 3, ...}   (GET /v1/skus/{sku})
 *
 * Every sku is sent once at the start and again whenever its object
 * changes, compared every HF_EVENT_INTERVAL_MS by the clock thread (a hash
 * of the JSON per sku and stream). A comment line (": ping") every
 * HF_EVENT_PING_MS keeps idle connections open through proxies.
 *
 * Durability: an event is released to the reader only once the journal
 * covers everything the engine had applied when the event was written, as
 * every other reply (so no event shows a sale a crash could undo).
 *
 * The connection is suspended while the stream has nothing to read and
 * resumed when text is released; a reader that falls HF_EVENT_BUFFER_BYTES_MAX
 * behind is cut off (EventSource clients reconnect and get fresh totals).
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "observe.h"
#include "events.h"
#include "skus.h"

/* ------------------------------------------------------------- the stream */

/* Appends text to the stream; false (and the stream closed) if the reader
 * is too far behind. Under events_lock. */
static bool stream_append(event_stream_t *st, const char *text, size_t len)
{
    if (st->read > 0 && st->read == st->len) {
        st->len = st->read = st->ready_len = 0; /* all read: start over */
    }
    if (st->len + len > HF_EVENT_BUFFER_BYTES_MAX) {
        st->closed = true;
        return false;
    }
    char *grown = realloc(st->text, st->len + len);
    if (grown == NULL) {
        st->closed = true;
        return false;
    }
    st->text = grown;
    memcpy(st->text + st->len, text, len);
    st->len += len;
    return true;
}

/* Wakes the reader if it waits. Under events_lock. */
static void stream_wake(event_stream_t *st)
{
    if (st->parked) {
        st->parked = false;
        MHD_resume_connection(st->conn);
    }
}

/* The library asks for the next bytes. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    event_stream_t *st = cls;
    server_t *s = st->server;
    pthread_mutex_lock(&s->events_lock);
    ssize_t n;
    if (st->read < st->ready_len) {
        size_t take = st->ready_len - st->read < max ? st->ready_len - st->read : max;
        memcpy(buf, st->text + st->read, take);
        st->read += take;
        n = (ssize_t)take;
    } else if (st->closed) {
        n = MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        st->parked = true; /* nothing to send: wait, without a thread */
        MHD_suspend_connection(st->conn);
        n = 0;
    }
    pthread_mutex_unlock(&s->events_lock);
    return n;
}

/* The connection is gone: the slot is free again. */
void events_stream_free(void *cls)
{
    event_stream_t *st = cls;
    server_t *s = st->server;
    pthread_mutex_lock(&s->events_lock);
    free(st->text);
    memset(st, 0, sizeof *st);
    pthread_mutex_unlock(&s->events_lock);
}

/* ------------------------------------------------------------ the request */

/* ?skus=a,b,c resolved to engine indexes (the engine lock held); false
 * after an error reply. */
static bool parse_skus(request_t *r, const char *list, uint32_t *skus, uint32_t *count)
{
    const engine_t *e = guard_engine(r->server->guard);
    *count = 0;
    if (list == NULL) {
        uint32_t n = engine_sku_count(e);
        for (uint32_t i = 0; i < n && *count < HF_EVENT_SKUS_MAX; i++) {
            skus[(*count)++] = i;
        }
        return true;
    }
    for (const char *p = list;; p++) {
        size_t len = strcspn(p, ",");
        uint32_t index;
        if (*count == HF_EVENT_SKUS_MAX || !valid_sku(p, len)) {
            request_invalid_field(r, "skus", "skus must be 1 to 64 skus separated by commas");
            return false;
        }
        if (!engine_sku_find(e, p, len, &index)) {
            request_error_begin(r, API_ERR_NOT_FOUND, "no such sku");
            jw_kstr(&r->out, "sku", p, len);
            request_error_end(r);
            return false;
        }
        skus[(*count)++] = index;
        p += len;
        if (*p == '\0') {
            return true;
        }
    }
}

typedef struct {
    const char *list; /* ?skus=, valid while the request is (NULL: all) */
    bool found;       /* reply resolved every name */
    uint32_t count;
    uint32_t skus[HF_EVENT_SKUS_MAX];
} stream_args_t;

static bool stream_parse(request_t *r, const route_args_t *a, void *args)
{
    stream_args_t *st = args;
    (void)a;
    st->list = request_value(r, MHD_GET_ARGUMENT_KIND, "skus");
    st->found = false;
    return true;
}

/* The names, resolved under the engine lock. */
static void stream_reply(pipe_t *p, void *args)
{
    stream_args_t *st = args;
    st->found = parse_skus(p->r, st->list, st->skus, &st->count);
}

/* A slot for the stream, under events_lock, which is never taken inside the
 * engine lock: so after it. */
static void stream_open(request_t *r, void *args)
{
    const stream_args_t *sa = args;
    server_t *s = r->server;
    if (!sa->found) {
        return; /* the error is written */
    }
    pthread_mutex_lock(&s->events_lock);
    event_stream_t *st = NULL;
    for (uint32_t i = 0; i < HF_EVENT_STREAMS_MAX && st == NULL; i++) {
        st = s->streams[i].used ? NULL : &s->streams[i];
    }
    if (st != NULL && !__atomic_load_n(&s->draining, __ATOMIC_SEQ_CST)) {
        *st = (event_stream_t){.used = true, .server = s, .conn = r->conn,
                               .sku_count = sa->count, .pinged_ms = server_mono_ms()};
        memcpy(st->skus, sa->skus, sa->count * sizeof sa->skus[0]);
        stream_append(st, "retry: 2000\n\n", 13);
        st->ready_len = st->len; /* says nothing of the shop: no need to wait */
        r->stream = st;
        r->status = 200;
    }
    pthread_mutex_unlock(&s->events_lock);
    if (r->stream == NULL) {
        request_error_begin(r, API_ERR_OVERLOADED, "too many event streams are open");
        jw_kcstr(&r->out, "reason", "event_streams_full");
        request_error_end(r);
    }
}

const handler_t events_stream_handler = {stream_parse, NULL, stream_reply, stream_open};

enum MHD_Result events_reply(request_t *r)
{
    event_stream_t *st = r->stream;
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, st,
                                          events_stream_free);
    if (resp == NULL) {
        events_stream_free(st);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    observe_reply(r, 200, 0);
    enum MHD_Result ret = MHD_queue_response(r->conn, 200, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* ------------------------------------------------------------- publishing */

static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
    }
    return h == 0 ? 1 : h; /* 0 means "not sent yet" */
}

/* Appends an event for every sku of st whose object changed (the engine
 * lock held; scratch is reused). */
static void stream_compose(server_t *s, event_stream_t *st, json_out_t *scratch)
{
    for (uint32_t k = 0; k < st->sku_count && !st->closed; k++) {
        json_out_reset(scratch);
        skus_write_object(s, scratch, st->skus[k]);
        uint64_t h = fnv1a(scratch->data, scratch->size);
        if (h == st->sent_hash[k]) {
            continue;
        }
        st->sent_hash[k] = h;
        if (stream_append(st, "event: sku\ndata: ", 17)) {
            stream_append(st, scratch->data, scratch->size);
            stream_append(st, "\n\n", 2);
        }
    }
}

/* Releases what the journal now covers, pings idle streams, wakes readers. */
static void streams_release(server_t *s, int64_t mono_ms)
{
    for (uint32_t i = 0; i < HF_EVENT_STREAMS_MAX; i++) {
        event_stream_t *st = &s->streams[i];
        if (!st->used) {
            continue;
        }
        if (st->ready_len < st->len &&
            store_reply_may_go(&s->store, st->pending_seq, mono_ms)) {
            st->ready_len = st->len;
        }
        if (mono_ms - st->pinged_ms >= HF_EVENT_PING_MS && st->ready_len == st->len) {
            st->pinged_ms = mono_ms;
            stream_append(st, ": ping\n\n", 8);
            st->ready_len = st->len;
        }
        if (st->read < st->ready_len || st->closed) {
            stream_wake(st);
        }
    }
}

void events_publish(server_t *s)
{
    int64_t mono_ms = server_mono_ms();
    pthread_mutex_lock(&s->events_lock);
    bool any = false;
    for (uint32_t i = 0; i < HF_EVENT_STREAMS_MAX && !any; i++) {
        any = s->streams[i].used;
    }
    if (!any) { /* no reader: leave the engine lock to the requests */
        pthread_mutex_unlock(&s->events_lock);
        return;
    }
    if (mono_ms - s->events_published_ms >= HF_EVENT_INTERVAL_MS) {
        s->events_published_ms = mono_ms;
        json_out_t scratch;
        json_out_init(&scratch);
        /* The tick just before on this thread expired what was due. */
        pthread_mutex_lock(&s->engine_lock);
        uint64_t seq = store_appended_seq(&s->store);
        for (uint32_t i = 0; i < HF_EVENT_STREAMS_MAX; i++) {
            event_stream_t *st = &s->streams[i];
            size_t before = st->len;
            if (st->used && !st->closed) {
                stream_compose(s, st, &scratch);
            }
            if (st->used && st->len != before) {
                st->pending_seq = seq; /* the whole unreleased tail waits for it */
            }
        }
        pthread_mutex_unlock(&s->engine_lock);
        json_out_free(&scratch);
    }
    streams_release(s, mono_ms);
    pthread_mutex_unlock(&s->events_lock);
}

void events_close_all(server_t *s)
{
    pthread_mutex_lock(&s->events_lock);
    for (uint32_t i = 0; i < HF_EVENT_STREAMS_MAX; i++) {
        event_stream_t *st = &s->streams[i];
        if (st->used) {
            st->closed = true;
            stream_wake(st);
        }
    }
    pthread_mutex_unlock(&s->events_lock);
}
