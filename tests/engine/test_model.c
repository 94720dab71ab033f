/*
 * test_model.c - the engine against a reference model, on random operations.
 *
 * The model is deliberately plain: arrays, linear scans, one rule of engine.h
 * per few lines, no cleverness. Every operation is applied to the engine and
 * to the model, and every outcome is compared (result, replayed, changed,
 * created, hold id, the short sku and what it had). After every step the test
 * compares every sku's stock, held and sold, all the stats, the next expiry
 * and every hold the step changed; every CHECK_EVERY steps, and after each
 * jump of a day, it compares every hold ever made (a forgotten one must read
 * as not found), checks the snapshot iterators and runs engine_check().
 *
 * Recovery is tested the same way. A replica engine is fed only the ops the
 * engine under test reported as changed, creates with the id they were given
 * (the journal); it must apply each alike. Every CHECKPOINT_EVERY steps the
 * replica, advanced to the same time, must equal the model; then both engines
 * are replaced by fresh ones restored from a snapshot of the engine under
 * test, which must equal the model too, and the run goes on with them.
 *
 * Each seed runs twice: with room for every hold (nothing is ever evicted),
 * and with a table of 24 holds and mostly multi-line requests, so that full
 * tables, a full line pool and eviction happen often. Every seed is printed
 * ("seed=N"); HF_SEED=N runs just that one again, HF_MODEL_OPS=N changes the
 * number of operations and HF_MODEL_TRACE=1 prints each operation.
 *
 * Where engine.h leaves a choice open the model accepts each reading:
 *  - a create wrong in several ways (unknown sku, duplicate line, short line,
 *    key mismatch, a full table) may report any one of them;
 *  - a full table evicts the oldest finished hold; among holds that finished
 *    in the same millisecond the model asks the engine which one went.
 * ENGINE_LINES_FULL is never right here: a request has at most 4 lines, so a
 * hold needs at most one pooled chunk, and the pool has one per hold slot.
 * Elsewhere it takes the readings listed at the top of test_engine.c:
 * retention is half-open (forgotten at exactly finished + retention), an
 * expired hold finishes at its expires_ms, releasing an expired hold is
 * harmless (ok, unchanged, it stays expired), and "changed" is exact: a
 * replay, a repeat, a put of the same stock or an extend that does not move
 * the expiry is not a change.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the four headers above first. */
#include <cmocka.h>

#include "hf_mix.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"

#define T0 1000000LL
#define OPS_DEFAULT 200000L
#define CHECK_EVERY 1000L
#define CHECKPOINT_EVERY 5000L
#define SKU_NAMES 11 /* sku_names[0..9] are put; "ghost" never is */
#define SKU_PUT_NAMES 10
#define GHOST 10
#define CUSTOMERS 4
#define KEYS 12
#define REQ_LINES_MAX 4
#define CLOCK_STEP_MAX_MS 5000

static const char *const sku_names[SKU_NAMES] = {"sku-0", "sku-1", "sku-2", "sku-3",
                                                 "sku-4", "sku-5", "sku-6", "sku-7",
                                                 "sku-8", "sku-9", "ghost"};
/* Two names short enough to live in the hold record, one just past that
 * (37 bytes) and one of the longest allowed (128), which are interned. */
static const char *const customer_names[CUSTOMERS] = {
    "c0",
    "c1",
    "c2-0123456789-0123456789-0123456789ab",
    "c3-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abc",
};
static const char *const key_names[KEYS] = {"key-0", "key-1", "key-2", "key-3", "key-4",  "key-5",
                                            "key-6", "key-7", "key-8", "key-9", "key-10", "key-11"};

/* ---- splitmix64: small, and every seed gives its own stream ---- */

typedef struct {
    uint64_t s;
} rng_t;

static uint64_t rng_next(rng_t *r)
{
    return hf_splitmix64(&r->s);
}

static uint64_t rng_below(rng_t *r, uint64_t n)
{
    return rng_next(r) % n;
}

static bool rng_percent(rng_t *r, unsigned percent)
{
    return rng_below(r, 100) < percent;
}

/* ---- the model ---- */

typedef struct {
    int sku; /* into sku_names */
    uint32_t qty;
} m_line_t;

typedef struct {
    int customer;
    int64_t ttl_ms;
    int line_count;
    m_line_t lines[REQ_LINES_MAX];
} m_request_t;

typedef struct {
    bool exists;
    uint32_t index;
    int64_t stock, held, sold;
} m_sku_t;

typedef struct {
    uint64_t id;
    engine_hold_state_t state;
    bool gone; /* evicted or forgotten: reads as not found */
    m_request_t req;
    int64_t created_ms, expires_ms, finished_ms;
} m_hold_t;

typedef struct {
    int key;
    m_request_t req;
    uint64_t hold_id;
    int64_t at_ms;
} m_key_t;

typedef struct {
    const char *name;
    uint64_t seed;
    engine_config_t config;
    unsigned one_line_percent; /* of requests; the rest have 2..4 lines */
    bool tight;                /* a table small enough to fill */
} run_t;

typedef struct {
    const run_t *run;
    long step;
    char what[200];
    bool trace;
    rng_t rng;
    engine_t *e;                 /* the engine under test */
    engine_t *replica;           /* fed only the journaled ops, as recovery would be */
    engine_stats_t counter_base; /* the model's counters when e was restored */
    int64_t clock;               /* now_ms for the next engine call */

    m_sku_t skus[SKU_NAMES];
    uint32_t sku_count;
    m_hold_t *holds; /* every hold ever made, in order */
    size_t hold_count, hold_max;
    size_t *active; /* indices into holds, any order */
    size_t active_count;
    size_t *finished; /* indices into holds, in finishing order */
    size_t finished_head, finished_tail;
    m_key_t *keys; /* in arrival order */
    size_t key_count;
    engine_stats_t stats;

    size_t *watch; /* holds this step changed: compared after it */
    size_t watch_count, watch_max;

    uint64_t results[ENGINE_OP_HOLD_EXTEND + 1][ENGINE_RESULT_COUNT]; /* for the summary */
    uint64_t evictions_by_room, jumps, timer_advances;

    uint64_t *id_slots; /* open addressing, id -> hold index + 1 */
    size_t *id_holds;
    size_t id_mask;
} model_t;

static void model_fail(const model_t *m, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void model_fail(const model_t *m, int line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    print_error("MODEL MISMATCH seed=%llu run=%s step=%ld now=%lld\n"
                "  op: %s\n  test_model.c:%d: %s\n  replay with HF_SEED=%llu\n",
                (unsigned long long)m->run->seed, m->run->name, m->step, (long long)m->clock,
                m->what, line, msg, (unsigned long long)m->run->seed);
    fail();
}

#define EXPECT(m, cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            model_fail((m), __LINE__, __VA_ARGS__);                                                \
        }                                                                                          \
    } while (0)

#define NAME(r) engine_result_name(r)

static void watch(model_t *m, size_t hold)
{
    assert_true(m->watch_count < m->watch_max);
    m->watch[m->watch_count++] = hold;
}

static void id_insert(model_t *m, uint64_t id, size_t hold)
{
    size_t i = (size_t)(id * 0x9e3779b97f4a7c15ull) & m->id_mask;
    while (m->id_slots[i] != 0) {
        EXPECT(m, m->id_slots[i] != id, "hold id %llu issued twice", (unsigned long long)id);
        i = (i + 1) & m->id_mask;
    }
    m->id_slots[i] = id;
    m->id_holds[i] = hold;
}

static size_t id_lookup(const model_t *m, uint64_t id)
{
    size_t i = (size_t)(id * 0x9e3779b97f4a7c15ull) & m->id_mask;
    while (m->id_slots[i] != 0) {
        if (m->id_slots[i] == id) {
            return m->id_holds[i];
        }
        i = (i + 1) & m->id_mask;
    }
    return SIZE_MAX;
}

static int64_t m_available(const m_sku_t *k)
{
    return k->stock - k->held - k->sold;
}

/* An active hold leaves active: its units leave held, for sold if committed. */
static void m_finish(model_t *m, size_t hi, engine_hold_state_t state, int64_t finished_ms)
{
    m_hold_t *h = &m->holds[hi];
    assert_int_equal(h->state, ENGINE_HOLD_ACTIVE);
    for (int i = 0; i < h->req.line_count; i++) {
        m_sku_t *k = &m->skus[h->req.lines[i].sku];
        int64_t qty = h->req.lines[i].qty;
        k->held -= qty;
        m->stats.units_held -= qty;
        if (state == ENGINE_HOLD_COMMITTED_STATE) {
            k->sold += qty;
            m->stats.units_sold += qty;
        }
    }
    h->state = state;
    h->finished_ms = finished_ms;
    for (size_t i = 0; i < m->active_count; i++) {
        if (m->active[i] == hi) {
            m->active[i] = m->active[--m->active_count];
            break;
        }
    }
    m->finished[m->finished_tail++] = hi;
    m->stats.holds_active--;
    m->stats.holds_retained++;
    if (state == ENGINE_HOLD_COMMITTED_STATE) {
        m->stats.holds_committed++;
    } else if (state == ENGINE_HOLD_RELEASED_STATE) {
        m->stats.holds_released++;
    } else {
        m->stats.holds_expired++;
    }
    watch(m, hi);
}

static void m_forget(model_t *m, size_t hi)
{
    assert_false(m->holds[hi].gone);
    assert_int_not_equal(m->holds[hi].state, ENGINE_HOLD_ACTIVE);
    m->holds[hi].gone = true;
    m->stats.holds_retained--;
    m->stats.holds_evicted++;
    watch(m, hi);
}

/* engine_advance(): expire what is due (earliest first), then forget the
 * finished holds and the keys that have outlived their retention. */
static uint32_t m_advance(model_t *m, int64_t now)
{
    uint32_t expired = 0;
    for (;;) {
        size_t due = SIZE_MAX;
        for (size_t i = 0; i < m->active_count; i++) {
            const m_hold_t *h = &m->holds[m->active[i]];
            if (h->expires_ms <= now &&
                (due == SIZE_MAX || h->expires_ms < m->holds[due].expires_ms)) {
                due = m->active[i];
            }
        }
        if (due == SIZE_MAX) {
            break;
        }
        m_finish(m, due, ENGINE_HOLD_EXPIRED_STATE, m->holds[due].expires_ms);
        expired++;
    }
    while (m->finished_head < m->finished_tail) {
        size_t hi = m->finished[m->finished_head];
        if (!m->holds[hi].gone) {
            if (m->holds[hi].finished_ms + HF_FINISHED_RETENTION_MS > now) {
                break;
            }
            m_forget(m, hi);
        }
        m->finished_head++;
    }
    while (m->key_count > 0 && m->keys[0].at_ms + HF_IDEM_RETENTION_MS <= now) {
        memmove(&m->keys[0], &m->keys[1], (m->key_count - 1) * sizeof m->keys[0]);
        m->key_count--;
        m->stats.idem_keys--;
    }
    return expired;
}

static m_key_t *m_key_find(model_t *m, int key)
{
    for (size_t i = 0; i < m->key_count; i++) {
        if (m->keys[i].key == key) {
            return &m->keys[i];
        }
    }
    return NULL;
}

static bool lines_equal(const m_request_t *a, const m_request_t *b)
{
    if (a->customer != b->customer || a->line_count != b->line_count) {
        return false;
    }
    for (int i = 0; i < a->line_count; i++) {
        if (a->lines[i].sku != b->lines[i].sku || a->lines[i].qty != b->lines[i].qty) {
            return false;
        }
    }
    return true;
}

static bool request_equal(const m_request_t *a, const m_request_t *b)
{
    return lines_equal(a, b) && a->ttl_ms == b->ttl_ms;
}

/* ---- building engine ops from model values ---- */

static void copy_text(char *dst, uint8_t *len_out, const char *src)
{
    size_t n = strlen(src);
    memcpy(dst, src, n);
    *len_out = (uint8_t)n;
}

static void build_create(engine_op_t *op, int64_t now, const m_request_t *r, int key)
{
    memset(op, 0, sizeof *op);
    op->kind = ENGINE_OP_HOLD_CREATE;
    op->now_ms = now;
    engine_hold_create_t *c = &op->u.hold_create;
    copy_text(c->customer, &c->customer_len, customer_names[r->customer]);
    if (key >= 0) {
        copy_text(c->idem_key, &c->idem_key_len, key_names[key]);
    }
    c->ttl_ms = r->ttl_ms;
    c->line_count = (uint16_t)r->line_count;
    for (int i = 0; i < r->line_count; i++) {
        copy_text(c->lines[i].sku, &c->lines[i].sku_len, sku_names[r->lines[i].sku]);
        c->lines[i].qty = r->lines[i].qty;
    }
}

static void describe_request(model_t *m, const char *verb, const m_request_t *r, int key)
{
    int n = snprintf(m->what, sizeof m->what, "%s %s ttl=%lld key=%s [", verb,
                     customer_names[r->customer], (long long)r->ttl_ms,
                     key >= 0 ? key_names[key] : "-");
    for (int i = 0; i < r->line_count && n > 0 && (size_t)n < sizeof m->what; i++) {
        n += snprintf(m->what + n, sizeof m->what - (size_t)n, " %sx%u", sku_names[r->lines[i].sku],
                      r->lines[i].qty);
    }
    if (n > 0 && (size_t)n < sizeof m->what) {
        snprintf(m->what + n, sizeof m->what - (size_t)n, " ]");
    }
}

static void count_result(model_t *m, engine_op_kind_t kind, engine_result_t r)
{
    if ((int)r >= 0 && (int)r < ENGINE_RESULT_COUNT) {
        m->results[kind][r]++;
    }
}

/* Applies op to the engine under test and, if it changed the state, journals
 * it to the replica, a create with the id it was given: the replica must
 * apply it alike. */
static engine_outcome_t apply_live(model_t *m, const engine_op_t *op)
{
    engine_outcome_t o = engine_apply(m->e, op);
    count_result(m, op->kind, o.result);
    if (!o.changed) {
        return o;
    }
    engine_op_t journaled = *op;
    if (op->kind == ENGINE_OP_HOLD_CREATE) {
        journaled.u.hold_create.hold_id = o.hold_id;
    }
    engine_outcome_t r = engine_apply(m->replica, &journaled);
    EXPECT(m, r.result == ENGINE_OK && r.changed, "journal replay: got %s changed=%d",
           NAME(r.result), r.changed);
    EXPECT(m, r.hold_id == o.hold_id && r.created == o.created && r.sku_index == o.sku_index,
           "journal replay: hold %llu created=%d sku_index=%u, want %llu %d %u",
           (unsigned long long)r.hold_id, r.created, r.sku_index, (unsigned long long)o.hold_id,
           o.created, o.sku_index);
    return o;
}

static void expect_refusal(model_t *m, const engine_outcome_t *o)
{
    EXPECT(m, !o->changed, "%s reported changed", NAME(o->result));
    EXPECT(m, !o->replayed, "%s reported replayed", NAME(o->result));
}

/* ---- operations ---- */

static void step_put(model_t *m)
{
    m_advance(m, m->clock);
    int s = (int)rng_below(&m->rng, SKU_PUT_NAMES);
    m_sku_t *k = &m->skus[s];
    int64_t committed = k->exists ? k->held + k->sold : 0;
    unsigned roll = (unsigned)rng_below(&m->rng, 100);
    int64_t stock;
    if (roll < 20 && committed > 0) {
        stock = committed - 1 - (int64_t)rng_below(&m->rng, committed < 3 ? committed : 3);
    } else if (roll < 30) {
        stock = committed;
    } else if (roll < 32) {
        stock = HF_STOCK_MAX;
    } else if (roll < 40 && k->exists) {
        stock = k->stock;
    } else if (roll < 45) {
        stock = (int64_t)rng_below(&m->rng, 31);
    } else {
        stock = committed + 1 + (int64_t)rng_below(&m->rng, 40);
    }
    snprintf(m->what, sizeof m->what, "put %s stock=%lld (held=%lld sold=%lld)", sku_names[s],
             (long long)stock, (long long)k->held, (long long)k->sold);

    engine_op_t op;
    memset(&op, 0, sizeof op);
    op.kind = ENGINE_OP_SKU_PUT;
    op.now_ms = m->clock;
    copy_text(op.u.sku_put.sku, &op.u.sku_put.sku_len, sku_names[s]);
    op.u.sku_put.stock = stock;
    engine_outcome_t o = apply_live(m, &op);

    if (!k->exists) {
        if (m->sku_count == m->run->config.skus_max) {
            EXPECT(m, o.result == ENGINE_SKUS_FULL, "got %s, want skus_full", NAME(o.result));
            expect_refusal(m, &o);
            EXPECT(m, !o.created, "skus_full reported created");
            return;
        }
        EXPECT(m, o.result == ENGINE_OK, "got %s, want ok (new sku)", NAME(o.result));
        EXPECT(m, o.created && o.changed, "new sku: created=%d changed=%d", o.created, o.changed);
        EXPECT(m, o.sku_index == m->sku_count, "new sku index %u, want %u", o.sku_index,
               m->sku_count);
        k->exists = true;
        k->index = o.sku_index;
        k->stock = stock;
        m->sku_count++;
        m->stats.skus++;
        m->stats.units_stock += stock;
        return;
    }
    if (stock < k->held + k->sold) {
        EXPECT(m, o.result == ENGINE_STOCK_BELOW_COMMITTED, "got %s, want stock_below_committed",
               NAME(o.result));
        expect_refusal(m, &o);
        return;
    }
    EXPECT(m, o.result == ENGINE_OK, "got %s, want ok", NAME(o.result));
    EXPECT(m, !o.created, "update reported created");
    EXPECT(m, o.sku_index == k->index, "sku_index %u, want %u", o.sku_index, k->index);
    EXPECT(m, o.changed == (stock != k->stock), "changed=%d for stock %lld -> %lld", o.changed,
           (long long)k->stock, (long long)stock);
    m->stats.units_stock += stock - k->stock;
    k->stock = stock;
}

/* Mostly a sku that exists, so that most holds get as far as the stock. */
static int random_line_sku(model_t *m)
{
    if (rng_percent(&m->rng, 3)) {
        return GHOST;
    }
    if (m->sku_count > 0 && rng_percent(&m->rng, 90)) {
        uint64_t nth = rng_below(&m->rng, m->sku_count);
        for (int s = 0; s < SKU_PUT_NAMES; s++) {
            if (m->skus[s].exists && nth-- == 0) {
                return s;
            }
        }
    }
    return (int)rng_below(&m->rng, SKU_PUT_NAMES);
}

static void random_request(model_t *m, m_request_t *r)
{
    r->customer = (int)rng_below(&m->rng, CUSTOMERS);
    unsigned roll = (unsigned)rng_below(&m->rng, 1000);
    if (roll < 5) {
        r->ttl_ms = HF_TTL_MS_MAX;
    } else if (roll < 60) {
        r->ttl_ms = HF_TTL_MS_MIN;
    } else {
        r->ttl_ms = HF_TTL_MS_MIN + (int64_t)rng_below(&m->rng, 20001);
    }
    r->line_count = rng_percent(&m->rng, m->run->one_line_percent)
                        ? 1
                        : 2 + (int)rng_below(&m->rng, REQ_LINES_MAX - 1);
    for (int i = 0; i < r->line_count; i++) {
        int sku;
        if (i > 0 && rng_percent(&m->rng, 8)) {
            sku = r->lines[rng_below(&m->rng, (uint64_t)i)].sku; /* a duplicate line */
        } else {
            bool taken;
            do {
                sku = random_line_sku(m);
                taken = false;
                for (int j = 0; j < i; j++) {
                    taken = taken || r->lines[j].sku == sku;
                }
            } while (taken);
        }
        unsigned q = (unsigned)rng_below(&m->rng, 100);
        uint32_t qty;
        if (q < 90) {
            qty = 1 + (uint32_t)rng_below(&m->rng, 4);
        } else if (q < 98) {
            qty = 1 + (uint32_t)rng_below(&m->rng, 30);
        } else {
            qty = (uint32_t)HF_QTY_MAX - (uint32_t)rng_below(&m->rng, 2);
        }
        r->lines[i].sku = sku;
        r->lines[i].qty = qty;
    }
}

/* Changes exactly one thing in r: the customer, a quantity, a line's sku, or
 * the number of lines. Same key, another request: a mismatch. */
static void near_miss(model_t *m, m_request_t *r)
{
    int i = (int)rng_below(&m->rng, (uint64_t)r->line_count);
    switch (rng_below(&m->rng, 4)) {
    case 0:
        r->customer = (r->customer + 1 + (int)rng_below(&m->rng, CUSTOMERS - 1)) % CUSTOMERS;
        return;
    case 1:
        r->lines[i].qty = r->lines[i].qty == 1 ? 2 : r->lines[i].qty - 1;
        return;
    case 2:
    case 3:
        if (r->line_count == REQ_LINES_MAX) {
            r->line_count--;
            return;
        }
        break;
    }
    int sku;
    bool taken;
    do {
        sku = random_line_sku(m);
        taken = false;
        for (int j = 0; j < r->line_count; j++) {
            taken = taken || r->lines[j].sku == sku;
        }
    } while (taken);
    if (r->line_count < REQ_LINES_MAX && rng_percent(&m->rng, 50)) {
        r->lines[r->line_count++] = (m_line_t){.sku = sku, .qty = 1};
    } else {
        r->lines[i].sku = sku;
    }
}

/* Marks in allowed every way r is wrong as a new hold. */
static void request_errors(const model_t *m, const m_request_t *r, bool *allowed)
{
    for (int i = 0; i < r->line_count; i++) {
        const m_sku_t *k = &m->skus[r->lines[i].sku];
        if (!k->exists) {
            allowed[ENGINE_SKU_NOT_FOUND] = true;
        } else if (r->lines[i].qty > m_available(k)) {
            allowed[ENGINE_INSUFFICIENT_STOCK] = true;
        }
        for (int j = 0; j < i; j++) {
            if (r->lines[j].sku == r->lines[i].sku) {
                allowed[ENGINE_DUPLICATE_LINE] = true;
            }
        }
    }
    if (m->active_count == m->run->config.holds_max) {
        allowed[ENGINE_HOLDS_FULL] = true;
    }
}

static void expect_short_line(model_t *m, const m_request_t *r, const engine_outcome_t *o)
{
    for (int i = 0; i < r->line_count; i++) {
        const m_sku_t *k = &m->skus[r->lines[i].sku];
        if (k->exists && k->index == o->sku_index && r->lines[i].qty > m_available(k)) {
            EXPECT(m, o->available == m_available(k), "short %s: available %lld, want %lld",
                   sku_names[r->lines[i].sku], (long long)o->available, (long long)m_available(k));
            return;
        }
    }
    EXPECT(m, false, "insufficient_stock names sku_index %u, which no short line has",
           o->sku_index);
}

/* The table is full: the oldest finished hold goes. Holds that finished in
 * the same millisecond are equally old, so the engine is asked which. */
static void m_evict_oldest(model_t *m)
{
    size_t first = m->finished_head;
    while (first < m->finished_tail && m->holds[m->finished[first]].gone) {
        first++;
    }
    EXPECT(m, first < m->finished_tail, "model: nothing to evict");
    int64_t oldest = m->holds[m->finished[first]].finished_ms;
    size_t gone = SIZE_MAX, candidates = 0;
    for (size_t i = first; i < m->finished_tail; i++) {
        size_t hi = m->finished[i];
        if (m->holds[hi].gone) {
            continue;
        }
        if (m->holds[hi].finished_ms != oldest) {
            break;
        }
        candidates++;
        engine_hold_view_t v;
        if (engine_hold_view(m->e, m->holds[hi].id, &v) == ENGINE_HOLD_NOT_FOUND) {
            EXPECT(m, gone == SIZE_MAX, "evicted two holds to make room for one");
            gone = hi;
        }
    }
    EXPECT(m, gone != SIZE_MAX, "full table: none of the %zu oldest finished holds was evicted",
           candidates);
    m_forget(m, gone);
}

static void step_create(model_t *m)
{
    m_advance(m, m->clock);
    m_request_t r;
    int key = rng_percent(&m->rng, 25) ? (int)rng_below(&m->rng, KEYS) : -1;
    m_key_t *known = key >= 0 ? m_key_find(m, key) : NULL;
    if (known != NULL && rng_percent(&m->rng, 40)) {
        r = known->req;
    } else if (known != NULL && rng_percent(&m->rng, 50)) {
        r = known->req;
        near_miss(m, &r);
    } else {
        random_request(m, &r);
        if (known != NULL && lines_equal(&r, &known->req)) {
            r.ttl_ms = known->req.ttl_ms; /* a replay, never a ttl-only difference */
        }
    }
    describe_request(m, "create", &r, key);

    bool allowed[ENGINE_RESULT_COUNT] = {false};
    bool replay = known != NULL && request_equal(&r, &known->req);
    if (known != NULL && !replay) {
        allowed[ENGINE_IDEMPOTENCY_MISMATCH] = true;
    }
    if (!replay) {
        request_errors(m, &r, allowed);
    }
    if (key >= 0 && known == NULL && m->key_count == m->run->config.idem_keys_max) {
        allowed[ENGINE_IDEM_FULL] = true;
    }

    engine_op_t op;
    build_create(&op, m->clock, &r, key);
    engine_outcome_t o = apply_live(m, &op);

    if (replay) {
        EXPECT(m, o.result == ENGINE_OK && o.replayed && !o.changed,
               "replay: got %s replayed=%d changed=%d", NAME(o.result), o.replayed, o.changed);
        EXPECT(m, o.hold_id == known->hold_id, "replay gave hold %llu, want %llu",
               (unsigned long long)o.hold_id, (unsigned long long)known->hold_id);
        m->stats.idem_replays++;
        return;
    }
    if (o.result != ENGINE_OK) {
        EXPECT(m, (int)o.result < ENGINE_RESULT_COUNT && allowed[o.result],
               "got %s, which does not apply to this request", NAME(o.result));
        expect_refusal(m, &o);
        if (o.result == ENGINE_INSUFFICIENT_STOCK) {
            expect_short_line(m, &r, &o);
        }
        return;
    }
    for (int i = 0; i < ENGINE_RESULT_COUNT; i++) {
        EXPECT(m, !allowed[i], "got ok, want %s", NAME((engine_result_t)i));
    }
    EXPECT(m, o.changed && !o.replayed, "new hold: changed=%d replayed=%d", o.changed, o.replayed);
    EXPECT(m, o.hold_id != 0, "new hold has id 0");

    if (m->active_count + m->stats.holds_retained == m->run->config.holds_max) {
        m_evict_oldest(m);
        m->evictions_by_room++;
    }
    assert_true(m->hold_count < m->hold_max);
    size_t hi = m->hold_count++;
    m_hold_t *h = &m->holds[hi];
    memset(h, 0, sizeof *h);
    h->id = o.hold_id;
    h->state = ENGINE_HOLD_ACTIVE;
    h->req = r;
    h->created_ms = m->clock;
    h->expires_ms = m->clock + r.ttl_ms;
    id_insert(m, h->id, hi);
    m->active[m->active_count++] = hi;
    for (int i = 0; i < r.line_count; i++) {
        m->skus[r.lines[i].sku].held += r.lines[i].qty;
        m->stats.units_held += r.lines[i].qty;
    }
    m->stats.holds_created++;
    m->stats.holds_active++;
    if (key >= 0) {
        assert_true(m->key_count < m->run->config.idem_keys_max);
        m->keys[m->key_count++] =
            (m_key_t){.key = key, .req = r, .hold_id = h->id, .at_ms = m->clock};
        m->stats.idem_keys++;
    }
    watch(m, hi);
}

static size_t pick_hold(model_t *m)
{
    if (m->active_count > 0 && rng_percent(&m->rng, 70)) {
        return m->active[rng_below(&m->rng, m->active_count)];
    }
    if (m->hold_count == 0) {
        return SIZE_MAX;
    }
    if (rng_percent(&m->rng, 70)) {
        size_t recent = m->hold_count < 50 ? m->hold_count : 50;
        return m->hold_count - 1 - (size_t)rng_below(&m->rng, recent);
    }
    return (size_t)rng_below(&m->rng, m->hold_count);
}

static const engine_result_t refusal_for_state[] = {
    [ENGINE_HOLD_COMMITTED_STATE] = ENGINE_HOLD_COMMITTED,
    [ENGINE_HOLD_RELEASED_STATE] = ENGINE_HOLD_RELEASED,
    [ENGINE_HOLD_EXPIRED_STATE] = ENGINE_HOLD_EXPIRED,
};

static void step_on_hold(model_t *m, engine_op_kind_t kind)
{
    m_advance(m, m->clock);
    size_t hi = pick_hold(m);
    if (hi == SIZE_MAX) {
        snprintf(m->what, sizeof m->what, "nothing to act on");
        return;
    }
    m_hold_t *h = &m->holds[hi];
    int64_t ttl = 0;
    if (kind == ENGINE_OP_HOLD_EXTEND) {
        ttl = rng_percent(&m->rng, 1) ? HF_TTL_MS_MAX
                                      : HF_TTL_MS_MIN + (int64_t)rng_below(&m->rng, 20001);
    }
    static const char *const verbs[] = {[ENGINE_OP_HOLD_COMMIT] = "commit",
                                        [ENGINE_OP_HOLD_RELEASE] = "release",
                                        [ENGINE_OP_HOLD_EXTEND] = "extend"};
    snprintf(m->what, sizeof m->what, "%s hold #%zu id=%llu (%s%s, expires %lld) ttl=%lld",
             verbs[kind], hi, (unsigned long long)h->id, engine_hold_state_name(h->state),
             h->gone ? ", forgotten" : "", (long long)h->expires_ms, (long long)ttl);

    engine_op_t op;
    memset(&op, 0, sizeof op);
    op.kind = kind;
    op.now_ms = m->clock;
    op.u.hold.hold_id = h->id;
    op.u.hold.ttl_ms = ttl;
    engine_outcome_t o = apply_live(m, &op);
    watch(m, hi);

    engine_result_t want;
    bool change = false;
    if (h->gone) {
        want = ENGINE_HOLD_NOT_FOUND;
    } else if (h->state == ENGINE_HOLD_ACTIVE) {
        want = ENGINE_OK;
        change = true;
    } else if ((kind == ENGINE_OP_HOLD_COMMIT && h->state == ENGINE_HOLD_COMMITTED_STATE) ||
               (kind == ENGINE_OP_HOLD_RELEASE && h->state != ENGINE_HOLD_COMMITTED_STATE)) {
        want = ENGINE_OK; /* repeating it, or releasing what expired, is harmless */
    } else {
        want = refusal_for_state[h->state];
    }
    EXPECT(m, o.result == want, "got %s, want %s", NAME(o.result), NAME(want));
    if (want != ENGINE_OK) {
        expect_refusal(m, &o);
        return;
    }
    EXPECT(m, !o.replayed, "reported replayed");
    if (!change) {
        EXPECT(m, !o.changed, "a repeat reported changed");
        return;
    }
    if (kind == ENGINE_OP_HOLD_COMMIT) {
        EXPECT(m, o.changed, "commit not reported changed");
        m_finish(m, hi, ENGINE_HOLD_COMMITTED_STATE, m->clock);
    } else if (kind == ENGINE_OP_HOLD_RELEASE) {
        EXPECT(m, o.changed, "release not reported changed");
        m_finish(m, hi, ENGINE_HOLD_RELEASED_STATE, m->clock);
    } else {
        bool longer = m->clock + ttl > h->expires_ms;
        EXPECT(m, o.changed == longer, "extend: changed=%d, want %d", o.changed, longer);
        if (longer) {
            h->expires_ms = m->clock + ttl;
        }
    }
}

static int64_t m_next_expiry(const model_t *m)
{
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < m->active_count; i++) {
        if (m->holds[m->active[i]].expires_ms < next) {
            next = m->holds[m->active[i]].expires_ms;
        }
    }
    return next;
}

static void advance_both(model_t *m)
{
    uint32_t want = m_advance(m, m->clock);
    uint32_t got = engine_advance(m->e, m->clock);
    EXPECT(m, got == want, "engine_advance expired %u, want %u", got, want);
}

/* The clock moves 0..5000 ms, often landing exactly on an expiry or a
 * millisecond before it; half the time the timer calls engine_advance(). */
static void step_clock(model_t *m)
{
    int64_t target = -1;
    unsigned roll = (unsigned)rng_below(&m->rng, 100);
    if (roll < 35 && m->active_count > 0) {
        target = m->holds[m->active[rng_below(&m->rng, m->active_count)]].expires_ms;
    } else if (roll < 50 && m->active_count > 0) {
        target = m_next_expiry(m);
    }
    if (target >= 0 && rng_percent(&m->rng, 30)) {
        target--;
    }
    int64_t d = target - m->clock;
    if (target < 0 || d < 0 || d > CLOCK_STEP_MAX_MS) {
        d = (int64_t)rng_below(&m->rng, CLOCK_STEP_MAX_MS + 1);
    }
    m->clock += d;
    bool timer = rng_percent(&m->rng, 50);
    snprintf(m->what, sizeof m->what, "clock +%lld%s", (long long)d,
             timer ? ", engine_advance" : "");
    if (timer) {
        m->timer_advances++;
        advance_both(m);
    }
}

/* Rarely, a day passes: land on the oldest finished hold's or key's last
 * readable millisecond or the one after, or anywhere past a day. */
static void step_jump(model_t *m)
{
    int64_t target;
    unsigned roll = (unsigned)rng_below(&m->rng, 3);
    size_t first = m->finished_head;
    while (first < m->finished_tail && m->holds[m->finished[first]].gone) {
        first++;
    }
    if (roll == 0 && first < m->finished_tail) {
        target = m->holds[m->finished[first]].finished_ms + HF_FINISHED_RETENTION_MS -
                 (int64_t)rng_below(&m->rng, 2);
    } else if (roll == 1 && m->key_count > 0) {
        target = m->keys[0].at_ms + HF_IDEM_RETENTION_MS - (int64_t)rng_below(&m->rng, 2);
    } else {
        target = m->clock + HF_FINISHED_RETENTION_MS + (int64_t)rng_below(&m->rng, 20000);
    }
    if (target < m->clock) {
        target = m->clock;
    }
    snprintf(m->what, sizeof m->what, "jump +%lld, engine_advance", (long long)(target - m->clock));
    m->clock = target;
    m->jumps++;
    advance_both(m);
}

/* ---- comparing ---- */

static void compare_skus(model_t *m, const engine_t *e)
{
    EXPECT(m, engine_sku_count(e) == m->sku_count, "sku count %u, want %u", engine_sku_count(e),
           m->sku_count);
    for (int s = 0; s < SKU_NAMES; s++) {
        const m_sku_t *k = &m->skus[s];
        uint32_t index = UINT32_MAX;
        bool found = engine_sku_find(e, sku_names[s], strlen(sku_names[s]), &index);
        EXPECT(m, found == k->exists, "%s: found=%d, want %d", sku_names[s], found, k->exists);
        if (!found) {
            continue;
        }
        EXPECT(m, index == k->index, "%s: index %u, want %u", sku_names[s], index, k->index);
        engine_sku_view_t v;
        engine_sku_view(e, index, &v);
        EXPECT(m,
               v.stock == k->stock && v.held == k->held && v.sold == k->sold &&
                   v.available == m_available(k),
               "%s: stock/held/sold/available %lld/%lld/%lld/%lld, want %lld/%lld/%lld/%lld",
               sku_names[s], (long long)v.stock, (long long)v.held, (long long)v.sold,
               (long long)v.available, (long long)k->stock, (long long)k->held, (long long)k->sold,
               (long long)m_available(k));
        EXPECT(m, v.sku_len == strlen(sku_names[s]) && memcmp(v.sku, sku_names[s], v.sku_len) == 0,
               "%s: view names another sku", sku_names[s]);
    }
}

#define STAT(field, base)                                                                          \
    EXPECT(m, got.field + (base).field == want.field, "stats." #field " %lld, want %lld",          \
           (long long)(got.field + (base).field), (long long)want.field)

/* What the engine holds now: the same after a restore or a journal replay. */
static void compare_gauges(model_t *m, const engine_t *e)
{
    static const engine_stats_t zero;
    engine_stats_t got = engine_stats(e), want = m->stats;
    STAT(holds_active, zero);
    STAT(holds_retained, zero);
    STAT(skus, zero);
    STAT(idem_keys, zero);
    STAT(units_stock, zero);
    STAT(units_held, zero);
    STAT(units_sold, zero);
    int64_t next = engine_next_expiry_ms(e);
    EXPECT(m, next == m_next_expiry(m), "next expiry %lld, want %lld", (long long)next,
           (long long)m_next_expiry(m));
}

/* What happened since the engine was made or restored: restoring state does
 * not restore history, so counters are compared from counter_base on. */
static void compare_counters(model_t *m, const engine_t *e)
{
    engine_stats_t got = engine_stats(e), want = m->stats;
    STAT(holds_created, m->counter_base);
    STAT(holds_committed, m->counter_base);
    STAT(holds_released, m->counter_base);
    STAT(holds_expired, m->counter_base);
    STAT(holds_evicted, m->counter_base);
    STAT(idem_replays, m->counter_base);
}

static void compare_hold(model_t *m, const engine_t *e, size_t hi)
{
    const m_hold_t *h = &m->holds[hi];
    engine_hold_view_t v;
    engine_result_t r = engine_hold_view(e, h->id, &v);
    if (h->gone) {
        EXPECT(m, r == ENGINE_HOLD_NOT_FOUND, "hold #%zu id=%llu: got %s, want hold_not_found", hi,
               (unsigned long long)h->id, NAME(r));
        return;
    }
    EXPECT(m, r == ENGINE_OK, "hold #%zu id=%llu (%s): got %s", hi, (unsigned long long)h->id,
           engine_hold_state_name(h->state), NAME(r));
    EXPECT(m, v.id == h->id && v.state == h->state, "hold #%zu id=%llu: state %s, want %s", hi,
           (unsigned long long)h->id, engine_hold_state_name(v.state),
           engine_hold_state_name(h->state));
    int64_t finished = h->state == ENGINE_HOLD_ACTIVE ? 0 : h->finished_ms;
    EXPECT(m,
           v.created_ms == h->created_ms && v.expires_ms == h->expires_ms &&
               v.finished_ms == finished,
           "hold #%zu id=%llu: created/expires/finished %lld/%lld/%lld, want %lld/%lld/%lld", hi,
           (unsigned long long)h->id, (long long)v.created_ms, (long long)v.expires_ms,
           (long long)v.finished_ms, (long long)h->created_ms, (long long)h->expires_ms,
           (long long)finished);
    const char *customer = customer_names[h->req.customer];
    EXPECT(m,
           v.customer_len == strlen(customer) && memcmp(v.customer, customer, v.customer_len) == 0,
           "hold #%zu: wrong customer", hi);
    EXPECT(m, v.line_count == h->req.line_count, "hold #%zu: %u lines, want %d", hi, v.line_count,
           h->req.line_count);
    for (int i = 0; i < h->req.line_count; i++) {
        const m_line_t *l = &h->req.lines[i];
        EXPECT(m, v.lines[i].sku_index == m->skus[l->sku].index && v.lines[i].qty == l->qty,
               "hold #%zu line %d: sku_index %u qty %u, want %u (%s) qty %u", hi, i,
               v.lines[i].sku_index, v.lines[i].qty, m->skus[l->sku].index, sku_names[l->sku],
               l->qty);
    }
}

typedef struct {
    model_t *m;
    size_t count;
    bool in_finished;
    int64_t last_finished_ms;
} visit_t;

static void visit_hold(void *ctx, const engine_hold_view_t *v)
{
    visit_t *x = ctx;
    model_t *m = x->m;
    size_t hi = id_lookup(m, v->id);
    EXPECT(m, hi != SIZE_MAX, "engine_each_hold visits unknown id %llu", (unsigned long long)v->id);
    EXPECT(m, !m->holds[hi].gone && m->holds[hi].state == v->state,
           "engine_each_hold visits hold #%zu as %s (model: %s%s)", hi,
           engine_hold_state_name(v->state), engine_hold_state_name(m->holds[hi].state),
           m->holds[hi].gone ? ", forgotten" : "");
    if (v->state == ENGINE_HOLD_ACTIVE) {
        EXPECT(m, !x->in_finished, "engine_each_hold: an active hold after a finished one");
    } else {
        EXPECT(m, !x->in_finished || v->finished_ms >= x->last_finished_ms,
               "engine_each_hold: finished holds not oldest first");
        x->in_finished = true;
        x->last_finished_ms = v->finished_ms;
    }
    x->count++;
}

typedef struct {
    model_t *m;
    size_t count;
} idem_visit_t;

static void visit_idem(void *ctx, const engine_idem_t *entry)
{
    idem_visit_t *x = ctx;
    model_t *m = x->m;
    EXPECT(m, x->count < m->key_count, "engine_each_idem visits more keys than the model has");
    const m_key_t *k = &m->keys[x->count];
    const char *name = key_names[k->key];
    EXPECT(m, entry->key_len == strlen(name) && memcmp(entry->key, name, entry->key_len) == 0,
           "engine_each_idem: key %zu is not %s", x->count, name);
    EXPECT(m, entry->hold_id == k->hold_id && entry->at_ms == k->at_ms,
           "engine_each_idem: %s hold/at %llu/%lld, want %llu/%lld", name,
           (unsigned long long)entry->hold_id, (long long)entry->at_ms,
           (unsigned long long)k->hold_id, (long long)k->at_ms);
    engine_op_t op;
    build_create(&op, k->at_ms, &k->req, k->key);
    EXPECT(m, entry->request_hash == engine_hold_request_hash(&op.u.hold_create),
           "engine_each_idem: %s has another request's hash", name);
    x->count++;
}

/* Every hold ever made, the snapshot iterators, and the invariants. */
static void compare_everything(model_t *m, const engine_t *e)
{
    compare_skus(m, e);
    compare_gauges(m, e);
    for (size_t i = 0; i < m->hold_count; i++) {
        compare_hold(m, e, i);
    }
    visit_t holds = {.m = m};
    engine_each_hold(e, visit_hold, &holds);
    EXPECT(m, holds.count == m->stats.holds_active + m->stats.holds_retained,
           "engine_each_hold visited %zu holds, want %llu", holds.count,
           (unsigned long long)(m->stats.holds_active + m->stats.holds_retained));
    idem_visit_t keys = {.m = m};
    engine_each_idem(e, visit_idem, &keys);
    EXPECT(m, keys.count == m->key_count, "engine_each_idem visited %zu keys, want %zu", keys.count,
           m->key_count);
    EXPECT(m, engine_check(e), "engine_check() is false");
}

static void compare_step(model_t *m)
{
    compare_skus(m, m->e);
    compare_gauges(m, m->e);
    compare_counters(m, m->e);
    for (size_t i = 0; i < m->watch_count; i++) {
        compare_hold(m, m->e, m->watch[i]);
    }
    m->watch_count = 0;
}

/* ---- snapshot and journal replay ---- */

typedef struct {
    model_t *m;
    engine_t *into;
} restore_t;

static void restore_hold_into(void *ctx, const engine_hold_view_t *v)
{
    restore_t *x = ctx;
    engine_result_t r = engine_restore_hold(x->into, v);
    EXPECT(x->m, r == ENGINE_OK, "engine_restore_hold: %s", NAME(r));
}

static void restore_idem_into(void *ctx, const engine_idem_t *entry)
{
    restore_t *x = ctx;
    engine_result_t r = engine_restore_idem(x->into, entry);
    EXPECT(x->m, r == ENGINE_OK, "engine_restore_idem: %s", NAME(r));
}

static engine_t *engine_new(const model_t *m)
{
    engine_t *e = calloc(1, sizeof *e);
    assert_non_null(e);
    assert_int_equal(engine_init(e, &m->run->config, T0), 0);
    return e;
}

static void engine_free(engine_t *e)
{
    engine_deinit(e);
    free(e);
}

/* A fresh engine restored from a snapshot of src, as the store would. */
static engine_t *snapshot_of(model_t *m, const engine_t *src)
{
    engine_t *e = engine_new(m);
    assert_true(engine_restore_time(e, src->now_ms, src->hold_seq));
    for (uint32_t i = 0; i < engine_sku_count(src); i++) {
        engine_sku_view_t v;
        engine_sku_view(src, i, &v);
        engine_result_t r = engine_restore_sku(e, v.sku, v.sku_len, v.stock, v.sold);
        EXPECT(m, r == ENGINE_OK, "engine_restore_sku: %s", NAME(r));
    }
    restore_t x = {.m = m, .into = e};
    engine_each_hold(src, restore_hold_into, &x);
    engine_each_idem(src, restore_idem_into, &x);
    return e;
}

/* The replica has seen only the journaled ops since the last checkpoint.
 * Brought to the same time (which expires what ran out meanwhile), it must
 * equal the model. Then both engines are replaced by fresh ones restored
 * from a snapshot of the engine under test, which must equal it too. */
static void checkpoint(model_t *m)
{
    snprintf(m->what, sizeof m->what, "checkpoint: journal replay, then snapshot and restore");
    engine_advance(m->replica, m->e->now_ms);
    compare_everything(m, m->replica);

    engine_t *e = snapshot_of(m, m->e);
    engine_t *replica = snapshot_of(m, m->e);
    engine_free(m->e);
    engine_free(m->replica);
    m->e = e;
    m->replica = replica;
    engine_stats_t restored = engine_stats(e);
    m->counter_base.holds_created = m->stats.holds_created - restored.holds_created;
    m->counter_base.holds_committed = m->stats.holds_committed - restored.holds_committed;
    m->counter_base.holds_released = m->stats.holds_released - restored.holds_released;
    m->counter_base.holds_expired = m->stats.holds_expired - restored.holds_expired;
    m->counter_base.holds_evicted = m->stats.holds_evicted - restored.holds_evicted;
    m->counter_base.idem_replays = m->stats.idem_replays - restored.idem_replays;
    compare_everything(m, m->e);
    compare_everything(m, m->replica);
}

/* ---- a run ---- */

static long env_long(const char *name, long fallback)
{
    const char *text = getenv(name);
    return text != NULL && *text != '\0' ? strtol(text, NULL, 0) : fallback;
}

static model_t *model_new(const run_t *run, long ops)
{
    model_t *m = calloc(1, sizeof *m);
    assert_non_null(m);
    m->run = run;
    m->rng.s = run->seed;
    m->clock = T0;
    m->trace = env_long("HF_MODEL_TRACE", 0) != 0;
    m->hold_max = (size_t)ops + 1;
    m->holds = calloc(m->hold_max, sizeof *m->holds);
    m->active = calloc(m->hold_max, sizeof *m->active);
    m->finished = calloc(m->hold_max, sizeof *m->finished);
    m->keys = calloc(run->config.idem_keys_max, sizeof *m->keys);
    m->watch_max = m->hold_max + 16;
    m->watch = calloc(m->watch_max, sizeof *m->watch);
    size_t id_slots = 1;
    while (id_slots < 2 * m->hold_max) {
        id_slots *= 2;
    }
    m->id_mask = id_slots - 1;
    m->id_slots = calloc(id_slots, sizeof *m->id_slots);
    m->id_holds = calloc(id_slots, sizeof *m->id_holds);
    assert_true(m->holds && m->active && m->finished && m->keys && m->watch && m->id_slots &&
                m->id_holds);
    m->e = engine_new(m);
    m->replica = engine_new(m);
    return m;
}

static void model_free(model_t *m)
{
    engine_free(m->replica);
    engine_free(m->e);
    free(m->id_holds);
    free(m->id_slots);
    free(m->watch);
    free(m->keys);
    free(m->finished);
    free(m->active);
    free(m->holds);
    free(m);
}

/* One line per operation kind: how often each result came back. */
static void print_summary(const model_t *m)
{
    static const char *const kinds[] = {[ENGINE_OP_SKU_PUT] = "put",
                                        [ENGINE_OP_HOLD_CREATE] = "create",
                                        [ENGINE_OP_HOLD_COMMIT] = "commit",
                                        [ENGINE_OP_HOLD_RELEASE] = "release",
                                        [ENGINE_OP_HOLD_EXTEND] = "extend"};
    printf("%s: %ld ops, %llu timer advances, %llu day jumps, %llu evictions for room\n",
           m->run->name, m->step, (unsigned long long)m->timer_advances,
           (unsigned long long)m->jumps, (unsigned long long)m->evictions_by_room);
    for (int k = ENGINE_OP_SKU_PUT; k <= ENGINE_OP_HOLD_EXTEND; k++) {
        printf("  %-8s", kinds[k]);
        for (int r = 0; r < ENGINE_RESULT_COUNT; r++) {
            if (m->results[k][r] > 0) {
                printf(" %s=%llu", engine_result_name((engine_result_t)r),
                       (unsigned long long)m->results[k][r]);
            }
        }
        printf("\n");
    }
    printf("  stats: created=%llu committed=%llu released=%llu expired=%llu evicted=%llu "
           "replays=%llu\n",
           (unsigned long long)m->stats.holds_created, (unsigned long long)m->stats.holds_committed,
           (unsigned long long)m->stats.holds_released, (unsigned long long)m->stats.holds_expired,
           (unsigned long long)m->stats.holds_evicted, (unsigned long long)m->stats.idem_replays);
    fflush(stdout);
}

/* The model lives from setup to teardown, so that a failed run, which
 * leaves the test by longjmp, still frees it. */
static int model_setup(void **state)
{
    const run_t *run = *state;
    *state = model_new(run, env_long("HF_MODEL_OPS", OPS_DEFAULT));
    return 0;
}

static int model_teardown(void **state)
{
    model_free(*state);
    return 0;
}

static void test_model_run(void **state)
{
    model_t *m = *state;
    const run_t *run = m->run;
    long ops = (long)m->hold_max - 1;
    for (m->step = 0; m->step < ops; m->step++) {
        unsigned roll = (unsigned)rng_below(&m->rng, 1000);
        bool jumped = false;
        if (roll < 70) {
            step_put(m);
        } else if (roll < 430) {
            step_create(m);
        } else if (roll < 550) {
            step_on_hold(m, ENGINE_OP_HOLD_COMMIT);
        } else if (roll < 650) {
            step_on_hold(m, ENGINE_OP_HOLD_RELEASE);
        } else if (roll < 730) {
            step_on_hold(m, ENGINE_OP_HOLD_EXTEND);
        } else if (roll < 999 || rng_percent(&m->rng, 50)) {
            step_clock(m);
        } else {
            step_jump(m);
            jumped = true;
        }
        if (m->trace) {
            printf("%ld @%lld: %s\n", m->step, (long long)m->clock, m->what);
        }
        compare_step(m);
        if ((m->step + 1) % CHECKPOINT_EVERY == 0) {
            checkpoint(m);
        } else if (jumped || (m->step + 1) % CHECK_EVERY == 0) {
            compare_everything(m, m->e);
        }
    }
    checkpoint(m);
    print_summary(m);
    /* The run must have exercised what it exists to exercise. */
    assert_true(m->stats.holds_committed > 0 && m->stats.holds_released > 0 &&
                m->stats.holds_expired > 0 && m->stats.idem_replays > 0);
    if (run->tight) {
        assert_true(m->evictions_by_room > 0);
    }
}

static uint64_t fresh_seed(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    rng_t r = {.s = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec};
    r.s ^= (uint64_t)getpid() << 32;
    return rng_next(&r);
}

int main(void)
{
    /* Room for every hold (nothing evicted), and a tight table (eviction). */
    static const engine_config_t roomy = {.skus_max = 8, .holds_max = 1u << 17, .idem_keys_max = 8};
    static const engine_config_t tight = {.skus_max = 8, .holds_max = 24, .idem_keys_max = 8};
    uint64_t seeds[4] = {1, 2, 0x5eedf00dull};
    size_t seed_count = 3;
    const char *replay = getenv("HF_SEED");
    if (replay != NULL && *replay != '\0') {
        seeds[0] = strtoull(replay, NULL, 0);
        seed_count = 1;
    } else {
        seeds[seed_count++] = fresh_seed();
    }

    static run_t runs[8];
    static char names[8][64];
    static struct CMUnitTest tests[8];
    size_t n = 0;
    for (size_t i = 0; i < seed_count; i++) {
        printf("seed=%llu\n", (unsigned long long)seeds[i]);
        for (int tight_table = 0; tight_table < 2; tight_table++) {
            runs[n].seed = seeds[i];
            runs[n].config = tight_table ? tight : roomy;
            /* The tight table fills with multi-line holds, and so its pool. */
            runs[n].one_line_percent = tight_table ? 5 : 30;
            runs[n].tight = tight_table;
            snprintf(names[n], sizeof names[n], "model seed=%llu holds_max=%u",
                     (unsigned long long)seeds[i], runs[n].config.holds_max);
            runs[n].name = names[n];
            tests[n] = (struct CMUnitTest){.name = names[n],
                                           .test_func = test_model_run,
                                           .setup_func = model_setup,
                                           .teardown_func = model_teardown,
                                           .initial_state = &runs[n]};
            n++;
        }
    }
    fflush(stdout);
    return _cmocka_run_group_tests("engine_model", tests, n, NULL, NULL);
}
