/*
 * chart.c - what the dashboard's chart stands on: the last hour of the most
 * recently active skus, a point a second (history.h), and the route that
 * serves it (admin):
 *
 *   GET /v1/history                  -> the skus tracked, most recently active
 *                                       first, and now_ms
 *   GET /v1/history?sku=S[&since=MS] -> S's points, one column per total:
 *
 *   {"sku": "cap-red", "tracked": true, "interval_ms": 1000, "now_ms": 1765432109876,
 *    "first_ms": 1765432000000, "count": 110,
 *    "stock": [...], "held": [...], "sold": [...], "available": [...],
 *    "denials": [...], "challenges": [...], "waitlist": [...], "escalated": [0, 1, ...]}
 *
 * Point i is the sku at first_ms + i * interval_ms (ms since the epoch, on
 * the server's clock; now_ms is that clock at the reply, so a client can
 * tell its own clock's difference). since: only the points at or after it.
 *
 * Who feeds it. The clock thread's tick records a point a second for every
 * tracked sku (chart_sample), right after expiring what was due; a hold
 * asked for (granted or refused) and a stock set note their skus as active
 * (chart_note); at start the catalog's first skus fill the free rings
 * (chart_seed). The points live in memory only: a restart starts them
 * again.
 *
 * Locks: history_lock is taken inside engine_lock or alone, never around
 * it; the reply's points are copied out under it and written without it.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "chart.h"

/* ?since= at most: the largest integer a JavaScript number holds exactly. */
#define SINCE_MS_MAX 9007199254740991LL

/* ------------------------------------------------------------ the feeding */

int chart_init(server_t *s)
{
    pthread_mutex_init(&s->history_lock, NULL);
    return history_init(&s->history);
}

void chart_deinit(server_t *s)
{
    history_deinit(&s->history);
    pthread_mutex_destroy(&s->history_lock);
}

void chart_seed(server_t *s)
{
    uint32_t n = engine_sku_count(guard_engine(s->guard));
    pthread_mutex_lock(&s->history_lock);
    for (uint32_t i = 0; i < n && history_seed(&s->history, i); i++) {
    }
    pthread_mutex_unlock(&s->history_lock);
}

void chart_forget(server_t *s)
{
    pthread_mutex_lock(&s->history_lock);
    history_clear(&s->history);
    pthread_mutex_unlock(&s->history_lock);
}

void chart_note(server_t *s, uint32_t sku_index, int64_t now_ms)
{
    pthread_mutex_lock(&s->history_lock);
    history_note(&s->history, sku_index, now_ms);
    pthread_mutex_unlock(&s->history_lock);
}

void chart_note_hold(server_t *s, const engine_hold_create_t *c, int64_t now_ms)
{
    const engine_t *e = guard_engine(s->guard);
    pthread_mutex_lock(&s->history_lock);
    for (uint16_t i = 0; i < c->line_count; i++) {
        uint32_t sku;
        if (engine_sku_find(e, c->lines[i].sku, c->lines[i].sku_len, &sku)) {
            history_note(&s->history, sku, now_ms);
        }
    }
    pthread_mutex_unlock(&s->history_lock);
}

static void point_of(const server_t *s, uint32_t sku_index, history_point_t *p)
{
    engine_sku_view_t e;
    guard_sku_view_t g;
    engine_sku_view(guard_engine(s->guard), sku_index, &e);
    guard_sku_view(s->guard, sku_index, &g);
    *p = (history_point_t){.stock = e.stock,
                           .held = e.held,
                           .sold = e.sold,
                           .denials = (int64_t)g.denials,
                           .challenges = (int64_t)g.challenges,
                           .waitlist = g.waiting,
                           .escalated = g.escalated};
}

void chart_sample(server_t *s, int64_t now_ms)
{
    uint32_t skus[HF_HISTORY_SKUS_MAX];
    pthread_mutex_lock(&s->history_lock);
    if (history_due(&s->history, now_ms)) {
        uint32_t n = history_tracked(&s->history, skus);
        for (uint32_t i = 0; i < n; i++) {
            history_point_t p;
            point_of(s, skus[i], &p);
            history_record(&s->history, skus[i], now_ms, &p);
        }
        assert(history_check(&s->history));
    }
    pthread_mutex_unlock(&s->history_lock);
}

/* -------------------------------------------------------------- the route */

/* The names of the tracked skus, most recently active first. */
static void write_tracked(pipe_t *p)
{
    server_t *s = p->s;
    request_t *r = p->r;
    uint32_t skus[HF_HISTORY_SKUS_MAX];
    json_out_t *j = &r->out;
    pthread_mutex_lock(&s->history_lock);
    uint32_t n = history_tracked(&s->history, skus);
    pthread_mutex_unlock(&s->history_lock);
    r->status = 200;
    jw_obj_begin(j);
    jw_key(j, "skus");
    jw_arr_begin(j);
    for (uint32_t i = 0; i < n; i++) {
        engine_sku_view_t v;
        engine_sku_view(guard_engine(s->guard), skus[i], &v);
        jw_str(j, v.sku, v.sku_len);
    }
    jw_arr_end(j);
    jw_kint(j, "skus_max", HF_HISTORY_SKUS_MAX);
    jw_kint(j, "seconds_max", HF_HISTORY_SECONDS);
    jw_kint(j, "interval_ms", HISTORY_INTERVAL_MS);
    jw_kint(j, "now_ms", p->now_ms);
    jw_obj_end(j);
}

/* The columns of a reply, in order. */
typedef enum {
    COL_STOCK,
    COL_HELD,
    COL_SOLD,
    COL_AVAILABLE,
    COL_DENIALS,
    COL_CHALLENGES,
    COL_WAITLIST,
    COL_ESCALATED,
    COL_COUNT
} column_t;
static const char *const column_names[COL_COUNT] = {
    "stock", "held", "sold", "available", "denials", "challenges", "waitlist", "escalated"};

static int64_t column_value(const history_point_t *p, column_t c)
{
    switch (c) {
    case COL_STOCK:
        return p->stock;
    case COL_HELD:
        return p->held;
    case COL_SOLD:
        return p->sold;
    case COL_AVAILABLE:
        return p->stock - p->held - p->sold;
    case COL_DENIALS:
        return p->denials;
    case COL_CHALLENGES:
        return p->challenges;
    case COL_WAITLIST:
        return p->waitlist;
    default:
        return p->escalated ? 1 : 0;
    }
}

static void write_points(request_t *r, const char *sku, size_t sku_len, bool tracked,
                         int64_t now_ms, int64_t first_ms, const history_point_t *points,
                         uint32_t count)
{
    json_out_t *j = &r->out;
    r->status = 200;
    jw_obj_begin(j);
    jw_kstr(j, "sku", sku, sku_len);
    jw_key(j, "tracked");
    jw_value_raw(j, tracked ? "true" : "false", tracked ? 4 : 5);
    jw_kint(j, "interval_ms", HISTORY_INTERVAL_MS);
    jw_kint(j, "now_ms", now_ms);
    jw_key(j, "first_ms");
    if (count > 0) {
        jw_int(j, first_ms);
    } else {
        jw_null(j);
    }
    jw_kint(j, "count", count);
    for (column_t c = 0; c < COL_COUNT; c++) {
        jw_key(j, column_names[c]);
        jw_arr_begin(j);
        for (uint32_t i = 0; i < count; i++) {
            jw_int(j, column_value(&points[i], c));
        }
        jw_arr_end(j);
    }
    jw_obj_end(j);
}

/* ?since=MS: ms since the epoch, 0 when absent; false after a 400. */
static bool query_since(request_t *r, int64_t *since_ms)
{
    uint64_t v = 0;
    if (request_query_number(r, "since", 0, SINCE_MS_MAX, &v) == REQUEST_QUERY_BAD) {
        request_invalid_field(r, "since", "since must be an instant in ms since the epoch, e.g. "
                                  "a reply's first_ms");
        return false;
    }
    *since_ms = (int64_t)v;
    return true;
}

typedef struct {
    const char *sku; /* ?sku=, valid while the request is (NULL: the list) */
    int64_t since_ms;
    uint32_t index; /* reply's: the sku's */
    bool found;
    int64_t now_ms;
} history_args_t;

static bool history_parse(request_t *r, const route_args_t *a, void *args)
{
    history_args_t *h = args;
    (void)a;
    h->sku = request_value(r, MHD_GET_ARGUMENT_KIND, "sku");
    h->found = false;
    if (!query_since(r, &h->since_ms)) {
        return false;
    }
    if (h->sku != NULL && !valid_sku(h->sku, strlen(h->sku))) {
        request_invalid_field(r, "sku", "sku must be 1-64 bytes of [A-Za-z0-9._:-]");
        return false;
    }
    return true;
}

/* The list, or the sku's index: its points are read after the lock. */
static void history_reply(pipe_t *p, void *args)
{
    history_args_t *h = args;
    if (h->sku == NULL) {
        write_tracked(p);
        return;
    }
    h->now_ms = p->now_ms;
    size_t sku_len = strlen(h->sku);
    h->found = engine_sku_find(guard_engine(p->s->guard), h->sku, sku_len, &h->index);
    if (!h->found) {
        request_error_begin(p->r, API_ERR_NOT_FOUND, "no such sku");
        jw_kstr(&p->r->out, "sku", h->sku, sku_len);
        request_error_end(p->r);
    }
}

/* An hour of points is formatted without the engine lock (history_lock
 * alone): the shop's requests do not wait for a chart. */
static void history_finish(request_t *r, void *args)
{
    const history_args_t *h = args;
    server_t *s = r->server;
    if (h->sku == NULL || !h->found) {
        return;
    }
    history_point_t *points = malloc(HF_HISTORY_SECONDS * sizeof *points);
    if (points == NULL) {
        request_error(r, API_ERR_OVERLOADED, "no memory for the history");
        return;
    }
    int64_t first_ms;
    pthread_mutex_lock(&s->history_lock);
    bool tracked = history_tracks(&s->history, h->index);
    uint32_t count = history_read(&s->history, h->index, h->since_ms, &first_ms, points);
    pthread_mutex_unlock(&s->history_lock);
    write_points(r, h->sku, strlen(h->sku), tracked, h->now_ms, first_ms, points, count);
    free(points);
}

const handler_t chart_history_handler = {history_parse, NULL, history_reply, history_finish};
