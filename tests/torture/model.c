/*
 * model.c - the torture programs' clients, model, settling and checks
 * (model.h).
 */
#include "model.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_mix.h"

/* A checker's request is sent again for at most this long (model.h): a
 * cluster's takeover after a database failover takes seconds. */
#define MODEL_ASK_MS 60000
/* ... pausing this long after a node that does not serve the shop now,
 * so that a cluster whose nodes all wait is asked a few times a second,
 * not in a loop. */
#define MODEL_NOT_SERVING_PAUSE_MS 50

static const char *const state_names[] = {"active", "committed", "released"};
static const char *program = "torture";
static unsigned reports;

void model_init(model_t *m, const char *name)
{
    memset(m, 0, sizeof *m);
    program = name;
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->acked, NULL);
}

void model_free(model_t *m, worker_t *workers, uint32_t worker_count)
{
    for (uint32_t i = 0; i < worker_count; i++) {
        free(workers[i].active);
        workers[i].active = NULL;
    }
    free(m->holds);
    m->holds = NULL;
    pthread_mutex_destroy(&m->lock);
    pthread_cond_destroy(&m->acked);
}

uint32_t model_below(uint64_t *state, uint32_t n)
{
    return (uint32_t)(hf_splitmix64(state) % n);
}

void model_report(const char *fmt, ...)
{
    if (reports++ >= MODEL_REPORTS_MAX) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    printf("%s: ", program);
    vprintf(fmt, ap);
    putchar('\n');
    fflush(stdout);
    va_end(ap);
}

long long model_env_number(const char *name, long long def, long long lo, long long hi)
{
    const char *text = getenv(name);
    if (text == NULL || *text == '\0') {
        return def;
    }
    char *end;
    long long v = strtoll(text, &end, 10);
    if (*end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "%s: %s must be an integer from %lld to %lld\n", program, name, lo, hi);
        exit(2);
    }
    return v;
}

static void *grown(void *p, uint32_t *capacity, uint32_t first, size_t size)
{
    *capacity = *capacity ? 2 * *capacity : first;
    p = realloc(p, *capacity * size);
    if (p == NULL) {
        fprintf(stderr, "%s: out of memory\n", program);
        exit(2);
    }
    return p;
}

/* Adds a hold to the model (lock held); returns its index. */
static uint32_t model_add(model_t *m, const hold_t *h)
{
    if (m->hold_count == m->hold_capacity) {
        m->holds = grown(m->holds, &m->hold_capacity, 1024, sizeof *m->holds);
    }
    m->holds[m->hold_count] = *h;
    m->holds[m->hold_count].round = m->round;
    return m->hold_count++;
}

static void active_add(worker_t *w, uint32_t hold)
{
    if (w->active_count == w->active_capacity) {
        w->active = grown(w->active, &w->active_capacity, 256, sizeof *w->active);
    }
    w->active[w->active_count++] = hold;
}

static void active_remove(worker_t *w, uint32_t hold)
{
    for (uint32_t i = 0; i < w->active_count; i++) {
        if (w->active[i] == hold) {
            w->active[i] = w->active[--w->active_count];
            return;
        }
    }
}

/* One acknowledgement more; the main thread waits for enough of them. */
static void acked(model_t *m)
{
    m->round_acks++;
    pthread_cond_broadcast(&m->acked);
}

/* ---------------------------------------------------------------- workers */

/* Skus are shared by every worker's holds; each sku's stock is changed by
 * one worker only, so the model knows which stock was acknowledged last. */
static bool owns_sku(worker_t *w, uint8_t *sku)
{
    if (w->index >= MODEL_SKUS || w->index >= w->workers) {
        return false;
    }
    uint32_t owned = (MODEL_SKUS - w->index + w->workers - 1) / w->workers;
    *sku = (uint8_t)(w->index + w->workers * model_below(&w->rng, owned));
    return true;
}

static void choose_create(worker_t *w, op_t *op)
{
    hold_t *h = &op->made;
    h->line_count = (uint8_t)(1 + model_below(&w->rng, MODEL_LINES_MAX));
    h->sku[0] = (uint8_t)model_below(&w->rng, MODEL_SKUS);
    h->sku[1] = (uint8_t)((h->sku[0] + 1 + model_below(&w->rng, MODEL_SKUS - 1)) % MODEL_SKUS);
    h->qty[0] = (uint8_t)(1 + model_below(&w->rng, 3));
    h->qty[1] = (uint8_t)(1 + model_below(&w->rng, 3));
    h->state = HOLD_ACTIVE;
    uint32_t n = w->serial++;
    snprintf(op->key, sizeof op->key, "t%llu-%u-%u", (unsigned long long)w->seed, w->index, n);
    char lines[128];
    int len =
        snprintf(lines, sizeof lines, "{\"sku\": \"t%u\", \"qty\": %u}", h->sku[0], h->qty[0]);
    if (h->line_count == 2) {
        snprintf(lines + len, sizeof lines - (size_t)len, ", {\"sku\": \"t%u\", \"qty\": %u}",
                 h->sku[1], h->qty[1]);
    }
    snprintf(op->body, sizeof op->body,
             "{\"customer\": \"w%u-%u\", \"lines\": [%s], \"ttl_ms\": %d}", w->index, n, lines,
             MODEL_TTL_MS);
    op->kind = OP_CREATE;
}

/* A hold (45%), a commit (25%) or release (20%) of one of the worker's
 * own, or a stock change of one of its skus (10%). */
void model_choose(worker_t *w, op_t *op)
{
    memset(op, 0, sizeof *op);
    uint32_t roll = model_below(&w->rng, 100);
    if (roll < 10 && owns_sku(w, &op->sku)) {
        pthread_mutex_lock(&w->m->lock);
        long long stock = w->m->stock[op->sku];
        pthread_mutex_unlock(&w->m->lock);
        op->stock = stock + (long long)model_below(&w->rng, 151) - 50; /* may go below committed */
        op->stock = op->stock < 0 ? 0 : op->stock;
        op->kind = OP_PUT;
    } else if (roll < 55 || w->active_count == 0) {
        choose_create(w, op);
    } else {
        op->hold = w->active[model_below(&w->rng, w->active_count)];
        op->kind = roll < 80 ? OP_COMMIT : OP_RELEASE;
    }
}

int model_send(worker_t *w, hf_conn_t *c, const op_t *op, hf_response_t *r)
{
    char target[160], text[96], id[HF_TEST_ID_MAX] = "";
    if (op->kind == OP_COMMIT || op->kind == OP_RELEASE) {
        pthread_mutex_lock(&w->m->lock);
        memcpy(id, w->m->holds[op->hold].id, sizeof id);
        pthread_mutex_unlock(&w->m->lock);
    }
    switch (op->kind) {
    case OP_CREATE:
        snprintf(text, sizeof text, "Idempotency-Key: %s\r\n", op->key);
        return hf_conn_exchange(c, "POST", "/v1/holds", text, op->body, strlen(op->body), r);
    case OP_COMMIT:
        snprintf(target, sizeof target, "/v1/holds/%s/commit", id);
        return hf_conn_exchange(c, "POST", target, NULL, NULL, 0, r);
    case OP_RELEASE:
        snprintf(target, sizeof target, "/v1/holds/%s", id);
        return hf_conn_exchange(c, "DELETE", target, NULL, NULL, 0, r);
    default:
        snprintf(target, sizeof target, "/v1/skus/t%u", op->sku);
        snprintf(text, sizeof text, "{\"stock\": %lld}", op->stock);
        return hf_conn_exchange(c, "PUT", target, NULL, text, strlen(text), r);
    }
}

static bool state_is(const hf_response_t *r, hold_state_t state)
{
    const char *s = hf_json_str(r->json, "state");
    return s != NULL && strcmp(s, state_names[state]) == 0;
}

/* A hold the server made (or kept) for op: into the model (lock held). */
static void hold_made(worker_t *w, const op_t *op, const hf_response_t *r)
{
    hold_t h = op->made;
    snprintf(h.id, sizeof h.id, "%s", hf_json_str(r->json, "id"));
    active_add(w, model_add(w->m, &h));
}

void model_record(worker_t *w, const op_t *op, const hf_response_t *r)
{
    model_t *m = w->m;
    bool hold_op = op->kind == OP_COMMIT || op->kind == OP_RELEASE;
    hold_state_t to = op->kind == OP_COMMIT ? HOLD_COMMITTED : HOLD_RELEASED;
    long long stock = -1;
    if (op->kind == OP_CREATE && r->status == 201 && hf_json_str(r->json, "id") != NULL &&
        state_is(r, HOLD_ACTIVE)) {
        hold_made(w, op, r);
        acked(m);
    } else if (hold_op && r->status == 200 && state_is(r, to)) {
        m->holds[op->hold].state = to;
        m->holds[op->hold].round = m->round;
        active_remove(w, op->hold);
        acked(m);
    } else if (op->kind == OP_PUT && (r->status == 200 || r->status == 201) &&
               hf_json_int(r->json, "stock", &stock) && stock == op->stock) {
        m->stock[op->sku] = stock;
        acked(m);
    } else if (r->status != 409 || hold_op) {
        model_report("unexpected reply %d to a %s: %.200s", r->status,
                     op->kind == OP_CREATE ? "hold"
                     : hold_op             ? "commit or release"
                                           : "stock change",
                     r->body ? r->body : "");
        m->unexpected++;
    }
}

/* ------------------------------------------------- settling and checking */

bool model_not_serving(const hf_response_t *r)
{
    const char *code = hf_error_code(r);
    return (r->status == 503 || r->status == 307) && code != NULL &&
           (strcmp(code, "not_owner") == 0 ||
            (r->status == 503 && strcmp(code, "outcome_unknown") == 0));
}

/* A request of the checker, sent again wherever k->reconnect points while
 * no reply comes; false (and counted) once it gives up. */
static bool ask(checker_t *k, const char *method, const char *target, const char *headers,
                const char *body, hf_response_t *r)
{
    long long deadline_ms = hf_now_ms() + MODEL_ASK_MS;
    for (;;) {
        if (hf_conn_exchange(&k->conn, method, target, headers, body, body ? strlen(body) : 0, r) ==
            0) {
            if (!model_not_serving(r)) {
                return true;
            }
            hf_response_free(r); /* a node of a cluster that does not serve it now */
            hf_sleep_ms(MODEL_NOT_SERVING_PAUSE_MS);
        }
        if (hf_now_ms() >= deadline_ms || k->reconnect == NULL ||
            !k->reconnect(k->ctx, &k->conn)) {
            break;
        }
    }
    model_report("%s %s: no server answered", method, target);
    pthread_mutex_lock(&k->m->lock);
    k->m->unexpected++;
    pthread_mutex_unlock(&k->m->lock);
    return false;
}

/* A create in doubt, sent again with its key: the server answers the hold
 * it kept, or makes it now. */
static void settle_create(checker_t *k, worker_t *w, const op_t *op)
{
    hf_response_t r;
    char headers[96];
    snprintf(headers, sizeof headers, "Idempotency-Key: %s\r\n", op->key);
    if (!ask(k, "POST", "/v1/holds", headers, op->body, &r)) {
        return;
    }
    const char *replayed = hf_response_header(&r, "Idempotent-Replayed");
    bool kept = r.status == 201 && replayed != NULL && strcmp(replayed, "true") == 0;
    pthread_mutex_lock(&k->m->lock);
    k->m->settled_kept += kept;
    k->m->settled_dropped += !kept;
    model_record(w, op, &r); /* a 201 is a hold, acknowledged now if not before */
    pthread_mutex_unlock(&k->m->lock);
    hf_response_free(&r);
}

/* A commit or release in doubt: the hold is active still, or it happened. */
static void settle_hold(checker_t *k, worker_t *w, const op_t *op)
{
    model_t *m = k->m;
    char target[160];
    pthread_mutex_lock(&m->lock);
    snprintf(target, sizeof target, "/v1/holds/%s", m->holds[op->hold].id);
    pthread_mutex_unlock(&m->lock);
    hold_state_t to = op->kind == OP_COMMIT ? HOLD_COMMITTED : HOLD_RELEASED;
    hf_response_t r;
    if (!ask(k, "GET", target, NULL, NULL, &r)) {
        return;
    }
    pthread_mutex_lock(&m->lock);
    hold_t *h = &m->holds[op->hold];
    if (r.status == 200 && state_is(&r, to)) {
        h->state = to;
        h->round = m->round;
        active_remove(w, op->hold);
        m->settled_kept++;
    } else if (r.status == 200 && state_is(&r, HOLD_ACTIVE)) {
        m->settled_dropped++;
    } else {
        model_report("hold %s, acknowledged active, is %d %.200s", h->id, r.status, r.body);
        m->lost++;
    }
    pthread_mutex_unlock(&m->lock);
    hf_response_free(&r);
}

/* A stock change in doubt: the sku has the stock before it or after it. */
static void settle_put(checker_t *k, const op_t *op)
{
    model_t *m = k->m;
    char target[64];
    snprintf(target, sizeof target, "/v1/skus/t%u", op->sku);
    hf_response_t r;
    long long stock = -1;
    if (!ask(k, "GET", target, NULL, NULL, &r)) {
        return;
    }
    hf_json_int(r.json, "stock", &stock);
    pthread_mutex_lock(&m->lock);
    if (r.status == 200 && stock == op->stock) {
        m->stock[op->sku] = stock;
        m->settled_kept++;
    } else if (r.status == 200 && stock == m->stock[op->sku]) {
        m->settled_dropped++;
    } else {
        model_report("sku t%u, acknowledged with stock %lld, is %d %.200s", op->sku,
                     m->stock[op->sku], r.status, r.body);
        m->lost++;
    }
    pthread_mutex_unlock(&m->lock);
    hf_response_free(&r);
}

void model_settle_one(checker_t *k, worker_t *w)
{
    op_t *op = &w->doubt;
    if (op->kind == OP_CREATE) {
        settle_create(k, w, op);
    } else if (op->kind == OP_COMMIT || op->kind == OP_RELEASE) {
        settle_hold(k, w, op);
    } else if (op->kind == OP_PUT) {
        settle_put(k, op);
    }
    op->kind = OP_NONE;
}

static void check_hold(checker_t *k, uint32_t index)
{
    model_t *m = k->m;
    const hold_t *h = &m->holds[index];
    char target[160];
    snprintf(target, sizeof target, "/v1/holds/%s", h->id);
    hf_response_t r;
    if (!ask(k, "GET", target, NULL, NULL, &r)) {
        return;
    }
    m->holds_read++;
    if (r.status != 200 || !state_is(&r, h->state)) {
        model_report("hold %s was acknowledged %s; now: %d %.200s", h->id, state_names[h->state],
                     r.status, r.body);
        m->lost++;
    }
    hf_response_free(&r);
}

/* Every sku's counts are the model's and add up. */
static void check_skus(checker_t *k)
{
    model_t *m = k->m;
    long long held[MODEL_SKUS] = {0}, sold[MODEL_SKUS] = {0};
    for (uint32_t i = 0; i < m->hold_count; i++) {
        const hold_t *h = &m->holds[i];
        for (uint8_t j = 0; j < h->line_count; j++) {
            held[h->sku[j]] += h->state == HOLD_ACTIVE ? h->qty[j] : 0;
            sold[h->sku[j]] += h->state == HOLD_COMMITTED ? h->qty[j] : 0;
        }
    }
    for (uint32_t s = 0; s < MODEL_SKUS; s++) {
        char target[64];
        snprintf(target, sizeof target, "/v1/skus/t%u", s);
        hf_response_t r;
        if (!ask(k, "GET", target, NULL, NULL, &r)) {
            continue;
        }
        hf_sku_counts_t got = {-1, -1, -1, -1};
        hf_json_int(r.json, "stock", &got.stock);
        hf_json_int(r.json, "held", &got.held);
        hf_json_int(r.json, "sold", &got.sold);
        hf_json_int(r.json, "available", &got.available);
        m->skus_read++;
        if (r.status != 200 || got.stock != m->stock[s] || got.held != held[s] ||
            got.sold != sold[s] || got.available != got.stock - got.held - got.sold) {
            model_report("sku t%u: %d stock %lld held %lld sold %lld available %lld; "
                         "acknowledged: stock %lld held %lld sold %lld",
                         s, r.status, got.stock, got.held, got.sold, got.available, m->stock[s],
                         held[s], sold[s]);
            m->disagreed++;
        }
        hf_response_free(&r);
    }
}

void model_check(checker_t *k)
{
    model_t *m = k->m;
    for (uint32_t i = 0; i < m->hold_count; i++) {
        if (m->holds[i].round == m->round) {
            check_hold(k, i);
        }
    }
    for (uint32_t n = 0; n < MODEL_SAMPLE && m->hold_count > 0; n++) {
        check_hold(k, model_below(&k->rng, m->hold_count));
    }
    check_skus(k);
    m->acks_checked += m->round_acks;
}

int model_first_stock(checker_t *k)
{
    for (uint32_t s = 0; s < MODEL_SKUS; s++) {
        char target[64], body[64];
        snprintf(target, sizeof target, "/v1/skus/t%u", s);
        snprintf(body, sizeof body, "{\"stock\": %d}", MODEL_STOCK_START);
        hf_response_t r;
        if (!ask(k, "PUT", target, NULL, body, &r)) {
            return -1;
        }
        int status = r.status;
        hf_response_free(&r);
        if (status != 201 && status != 200) {
            model_report("PUT %s answered %d", target, status);
            return -1;
        }
        k->m->stock[s] = MODEL_STOCK_START;
        k->m->round_acks++;
    }
    return 0;
}
