/*
 * test_store.c - the journal: record formats, group commit, snapshots,
 * recovery, relaxed durability's bound, and the sticky failure.
 *
 * Each test journals ops applied to one engine, closes the store, recovers
 * into a fresh engine and compares the two, table by table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "guard.h"
#include "record.h"
#include "snapshot.h"
#include "store.h"

static const guard_config_t small = {
    .engine = {.skus_max = 16, .holds_max = 64, .idem_keys_max = 16},
    .identities_max = 64,
    .customer_skus_max = 64,
    .waitlist_max = 16,
    .sku_policies_max = 4,
    .proofs_max = 16,
};

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    uint64_t durable;
    bool failed;
} durable_wait_t;

static void on_durable(void *ctx, uint64_t durable_seq, bool failed)
{
    durable_wait_t *w = ctx;
    pthread_mutex_lock(&w->lock);
    w->durable = durable_seq;
    w->failed = failed;
    pthread_cond_broadcast(&w->changed);
    pthread_mutex_unlock(&w->lock);
}

/* Blocks until the journal covers seq or has failed. */
static void wait_durable(durable_wait_t *w, uint64_t seq)
{
    pthread_mutex_lock(&w->lock);
    while (w->durable < seq && !w->failed) {
        pthread_cond_wait(&w->changed, &w->lock);
    }
    pthread_mutex_unlock(&w->lock);
}

typedef struct {
    char dir[64];
    guard_t *guard;
    store_t store;
    durable_wait_t wait;
    uint64_t last_seq;
} fixture_t;

static void fixture_open(fixture_t *f, store_durability_t durability, uint32_t compact)
{
    char err[256];
    store_recovery_t info;
    f->guard = guard_create(&small, 0);
    assert_non_null(f->guard);
    assert_int_equal(store_open(&f->store, f->dir, durability, compact, err, sizeof err), 0);
    assert_int_equal(store_recover(&f->store, f->guard, 0, &info, err, sizeof err), 0);
    pthread_mutex_init(&f->wait.lock, NULL);
    pthread_cond_init(&f->wait.changed, NULL);
    f->wait.durable = store_durable_seq(&f->store);
    f->wait.failed = false;
    assert_int_equal(store_start(&f->store, on_durable, &f->wait), 0);
}

static fixture_t *fixture_new(void)
{
    fixture_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/hf-store-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    fixture_open(f, STORE_DURABLE, 0);
    return f;
}

/* Closes the store; the guard stays, to compare with what recovers. */
static void fixture_close(fixture_t *f)
{
    store_close(&f->store);
}

static void fixture_free(fixture_t *f)
{
    char cmd[128];
    guard_destroy(f->guard);
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
}

/* Applies a guard op and journals it, as the server does. */
static guard_outcome_t apply_guard(fixture_t *f, guard_op_t *op)
{
    guard_outcome_t o = guard_apply(f->guard, op);
    if (o.changed) {
        f->last_seq = store_append(&f->store, op, 0);
    }
    return o;
}

/* An engine op, through the guard. */
static engine_outcome_t apply(fixture_t *f, engine_op_t *op)
{
    guard_op_t g = {.kind = GUARD_OP_ENGINE, .engine = *op};
    guard_outcome_t o = apply_guard(f, &g);
    return o.result == GUARD_OK || o.result == GUARD_ENGINE
               ? o.engine
               : (engine_outcome_t){.result = ENGINE_HOLDS_FULL};
}

static engine_outcome_t put_sku(fixture_t *f, int64_t now_ms, const char *sku, int64_t stock)
{
    engine_op_t op = {.kind = ENGINE_OP_SKU_PUT, .now_ms = now_ms};
    op.u.sku_put.sku_len = (uint8_t)strlen(sku);
    memcpy(op.u.sku_put.sku, sku, op.u.sku_put.sku_len);
    op.u.sku_put.stock = stock;
    return apply(f, &op);
}

static uint64_t hold(fixture_t *f, int64_t now_ms, const char *customer, const char *sku,
                     uint32_t qty, int64_t ttl_ms, const char *key)
{
    engine_op_t op = {.kind = ENGINE_OP_HOLD_CREATE, .now_ms = now_ms};
    engine_hold_create_t *c = &op.u.hold_create;
    c->customer_len = (uint8_t)strlen(customer);
    memcpy(c->customer, customer, c->customer_len);
    c->idem_key_len = key ? (uint8_t)strlen(key) : 0;
    memcpy(c->idem_key, key ? key : "", c->idem_key_len);
    c->ttl_ms = ttl_ms;
    c->line_count = 1;
    c->lines[0].sku_len = (uint8_t)strlen(sku);
    memcpy(c->lines[0].sku, sku, c->lines[0].sku_len);
    c->lines[0].qty = qty;
    engine_outcome_t o = apply(f, &op);
    assert_int_equal(o.result, ENGINE_OK);
    return o.hold_id;
}

static void hold_op(fixture_t *f, engine_op_kind_t kind, int64_t now_ms, uint64_t id)
{
    engine_op_t op = {.kind = kind, .now_ms = now_ms};
    op.u.hold.hold_id = id;
    op.u.hold.ttl_ms = 60000;
    if (kind == ENGINE_OP_HOLD_COMMIT) {
        op.u.hold.order_ref_len = (uint8_t)snprintf(op.u.hold.order_ref, HF_NAME_BYTES_MAX,
                                                    "order-%llu", (unsigned long long)id);
    }
    assert_int_equal(apply(f, &op).result, ENGINE_OK);
}

/* Every sku and every hold of a reads the same in b. */
static void assert_same_state(const engine_t *a, const engine_t *b)
{
    assert_int_equal(engine_sku_count(a), engine_sku_count(b));
    for (uint32_t i = 0; i < engine_sku_count(a); i++) {
        engine_sku_view_t x, y;
        engine_sku_view(a, i, &x);
        engine_sku_view(b, i, &y);
        assert_memory_equal(x.sku, y.sku, x.sku_len);
        assert_int_equal(x.stock, y.stock);
        assert_int_equal(x.held, y.held);
        assert_int_equal(x.sold, y.sold);
    }
    for (uint32_t slot = 0; slot < a->hold_hwm; slot++) {
        if (a->holds[slot].state == ENGINE_HOLD_FREE) {
            continue;
        }
        engine_hold_view_t x, y;
        assert_int_equal(engine_hold_view(a, a->holds[slot].id, &x), ENGINE_OK);
        assert_int_equal(engine_hold_view(b, x.id, &y), ENGINE_OK);
        assert_int_equal(x.state, y.state);
        assert_int_equal(x.expires_ms, y.expires_ms);
        assert_int_equal(x.finished_ms, y.finished_ms);
        assert_int_equal(x.line_count, y.line_count);
        assert_memory_equal(x.customer, y.customer, x.customer_len);
        assert_int_equal(x.order_ref_len, y.order_ref_len);
        if (x.order_ref_len > 0) {
            assert_memory_equal(x.order_ref, y.order_ref, x.order_ref_len);
        }
    }
    engine_stats_t sa = engine_stats(a), sb = engine_stats(b);
    assert_int_equal(sa.holds_active, sb.holds_active);
    assert_int_equal(sa.holds_retained, sb.holds_retained);
    assert_int_equal(sa.idem_keys, sb.idem_keys);
    assert_true(engine_check(b));
}

static void append_bytes(void *ctx, const void *data, size_t size)
{
    store_buf_t *b = ctx;
    record_buf_reserve(b, size);
    memcpy(b->data + b->size, data, size);
    b->size += size;
}

/* The defenses' state of a reads the same in b: their snapshots, which
 * hold every table field by field, are the same bytes. */
static void assert_same_guard(const guard_t *a, const guard_t *b)
{
    guard_stats_t sa = guard_stats(a), sb = guard_stats(b);
    assert_memory_equal(&sa, &sb, sizeof sa);
    store_buf_t ba = {0}, bb = {0};
    guard_snapshot_write(a, append_bytes, &ba);
    guard_snapshot_write(b, append_bytes, &bb);
    assert_int_equal(ba.size, bb.size);
    assert_memory_equal(ba.data, bb.data, ba.size);
    record_buf_free(&ba);
    record_buf_free(&bb);
    assert_true(guard_check(b));
}

/* Recovers f's directory into a fresh guard at now_ms and compares. */
static void assert_recovers_same(fixture_t *f, int64_t now_ms, store_recovery_t *info)
{
    char err[256];
    guard_t *g = guard_create(&small, 0);
    store_t s;
    assert_non_null(g);
    assert_int_equal(store_open(&s, f->dir, STORE_DURABLE, 0, err, sizeof err), 0);
    assert_int_equal(store_recover(&s, g, now_ms, info, err, sizeof err), 0);
    guard_advance(f->guard, now_ms);
    assert_same_state(guard_engine(f->guard), guard_engine(g));
    assert_same_guard(f->guard, g);
    store_close(&s);
    guard_destroy(g);
}

/* Recovery from dir must fail with an error that says why. */
static void assert_recovery_refused(const char *dir, const char *why)
{
    char err[256] = "";
    guard_t *g = guard_create(&small, 0);
    store_t s;
    store_recovery_t info;
    assert_non_null(g);
    assert_int_equal(store_open(&s, dir, STORE_DURABLE, 0, err, sizeof err), 0);
    assert_int_equal(store_recover(&s, g, 3, &info, err, sizeof err), -1);
    assert_non_null(strstr(err, why));
    store_close(&s);
    guard_destroy(g);
}

/* ------------------------------------------------------------------ tests */

static void test_records_round_trip_every_op_kind(void **state)
{
    (void)state;
    engine_op_t ops[5] = {
        {.kind = ENGINE_OP_SKU_PUT, .now_ms = 7},
        {.kind = ENGINE_OP_HOLD_CREATE, .now_ms = 8},
        {.kind = ENGINE_OP_HOLD_COMMIT, .now_ms = 9},
        {.kind = ENGINE_OP_HOLD_RELEASE, .now_ms = 10},
        {.kind = ENGINE_OP_HOLD_EXTEND, .now_ms = 11},
    };
    memcpy(ops[0].u.sku_put.sku, "cap-red", 7);
    ops[0].u.sku_put.sku_len = 7;
    ops[0].u.sku_put.stock = HF_STOCK_MAX;
    engine_hold_create_t *c = &ops[1].u.hold_create;
    memcpy(c->customer, "u-42", 4);
    c->customer_len = 4;
    memcpy(c->idem_key, "key", 3);
    c->idem_key_len = 3;
    c->ttl_ms = 600000;
    c->hold_id = 12345;
    c->line_count = HF_LINES_PER_HOLD_MAX;
    for (int i = 0; i < HF_LINES_PER_HOLD_MAX; i++) {
        c->lines[i].sku_len = (uint8_t)snprintf(c->lines[i].sku, 8, "s%d", i);
        c->lines[i].qty = (uint32_t)(i + 1);
    }
    for (int i = 2; i < 5; i++) {
        ops[i].u.hold.hold_id = 99;
        ops[i].u.hold.ttl_ms = i == 4 ? 1000 : 0;
    }
    memcpy(ops[2].u.hold.order_ref, "o-9", 3);
    ops[2].u.hold.order_ref_len = 3;
    c->request_hash = 0xfeedULL;
    c->looked_up = true; /* as the guard hands it over live: never journaled */
    c->sku_index[0] = 7;
    store_buf_t b = {0};
    guard_op_t wrapped[5];
    for (int i = 0; i < 5; i++) {
        wrapped[i] = (guard_op_t){.kind = GUARD_OP_ENGINE, .engine = ops[i]};
    }
    wrapped[1].buy_now = true;
    memcpy(wrapped[1].order_ref, "o-1", 3);
    wrapped[1].order_ref_len = 3;
    wrapped[1].proof_tag = 77;
    wrapped[1].proof_expires_ms = 1234;
    memcpy(wrapped[3].reason, "troll", 5);
    wrapped[3].reason_len = 5;
    for (int i = 0; i < 5; i++) {
        record_encode_op(&b, &wrapped[i]);
    }
    record_reader_t r = {.p = b.data, .left = b.size, .ok = true};
    guard_op_t got;
    for (int i = 0; i < 5; i++) {
        assert_true(record_decode_op(&r, &got));
        assert_int_equal(got.kind, GUARD_OP_ENGINE);
        assert_int_equal(got.engine.kind, ops[i].kind);
        assert_int_equal(got.engine.now_ms, ops[i].now_ms);
    }
    assert_int_equal(r.left, 0);
    r = (record_reader_t){.p = b.data, .left = b.size, .ok = true};
    assert_true(record_decode_op(&r, &got));
    assert_int_equal(got.engine.u.sku_put.stock, HF_STOCK_MAX);
    memset(&got, 0xff, sizeof got); /* a decoder must not leave anything of this */
    assert_true(record_decode_op(&r, &got));
    uint8_t looked_up;
    memcpy(&looked_up, &got.engine.u.hold_create.looked_up, 1); /* bytes: 0xff is no bool */
    assert_int_equal(looked_up, 0); /* a replay finds its skus and key itself */
    assert_int_equal(got.engine.u.hold_create.hold_id, 12345);
    assert_int_equal(got.engine.u.hold_create.line_count, HF_LINES_PER_HOLD_MAX);
    assert_int_equal(got.engine.u.hold_create.lines[63].qty, 64);
    assert_memory_equal(got.engine.u.hold_create.idem_key, "key", 3);
    assert_int_equal(got.engine.u.hold_create.request_hash, 0xfeed);
    assert_true(got.buy_now);
    assert_int_equal(got.order_ref_len, 3);
    assert_int_equal(got.proof_tag, 77);
    assert_int_equal(got.proof_expires_ms, 1234);
    assert_true(record_decode_op(&r, &got));
    assert_int_equal(got.engine.kind, ENGINE_OP_HOLD_COMMIT);
    assert_int_equal(got.engine.u.hold.order_ref_len, 3);
    assert_memory_equal(got.engine.u.hold.order_ref, "o-9", 3);
    assert_true(record_decode_op(&r, &got));
    assert_int_equal(got.reason_len, 5);
    assert_memory_equal(got.reason, "troll", 5);
    record_buf_free(&b);
}

/* A snapshot child's buffer grows by mapping, not malloc, and keeps its
 * bytes across every growth, moved or not. */
static void test_a_mapped_buffer_grows_and_keeps_its_bytes(void **state)
{
    (void)state;
    store_buf_t b = {.mapped = true};
    enum { STEPS = 5000, CHUNK = 251 }; /* ~1.2 MiB: several doublings */
    uint8_t chunk[CHUNK];
    for (int i = 0; i < STEPS; i++) {
        memset(chunk, (uint8_t)i, sizeof chunk);
        record_buf_reserve(&b, sizeof chunk);
        memcpy(b.data + b.size, chunk, sizeof chunk);
        b.size += sizeof chunk;
    }
    assert_true(b.mapped);
    assert_int_equal(b.size, (size_t)STEPS * CHUNK);
    for (int i = 0; i < STEPS; i++) {
        assert_int_equal(b.data[(size_t)i * CHUNK], (uint8_t)i);
        assert_int_equal(b.data[(size_t)i * CHUNK + CHUNK - 1], (uint8_t)i);
    }
    record_buf_free(&b);
    assert_null(b.data);
}

/* A reclaim carries 1..GUARD_RECLAIM_MAX holds; a hold's newcomer flag
 * rides in its create record. Both come back as written; a count outside
 * the range, or a flag byte with other bits, is refused. */
static void test_reclaim_and_newcomer_records_round_trip_at_their_edges(void **state)
{
    (void)state;
    guard_op_t op = {.kind = GUARD_OP_RECLAIM};
    op.engine.now_ms = 5;
    op.u.reclaim.count = GUARD_RECLAIM_MAX;
    for (uint16_t i = 0; i < GUARD_RECLAIM_MAX; i++) {
        op.u.reclaim.holds[i] = 1000 + i;
    }
    store_buf_t b = {0};
    record_encode_op(&b, &op);
    record_reader_t r = {.p = b.data, .left = b.size, .ok = true};
    guard_op_t got;
    assert_true(record_decode_op(&r, &got));
    assert_int_equal(got.kind, GUARD_OP_RECLAIM);
    assert_int_equal(got.u.reclaim.count, GUARD_RECLAIM_MAX);
    assert_int_equal(got.u.reclaim.holds[GUARD_RECLAIM_MAX - 1], 1000 + GUARD_RECLAIM_MAX - 1);
    assert_int_equal(r.left, 0);
    const uint8_t counts[] = {0, GUARD_RECLAIM_MAX + 1};
    for (size_t i = 0; i < sizeof counts; i++) {
        b.data[9] = counts[i]; /* after the kind and the time */
        r = (record_reader_t){.p = b.data, .left = b.size, .ok = true};
        assert_false(record_decode_op(&r, &got));
    }
    record_buf_free(&b);

    op = (guard_op_t){.kind = GUARD_OP_ENGINE, .newcomer = true};
    op.engine = (engine_op_t){.kind = ENGINE_OP_HOLD_CREATE, .now_ms = 6};
    engine_hold_create_t *c = &op.engine.u.hold_create;
    memcpy(c->customer, "new", 3);
    c->customer_len = 3;
    c->ttl_ms = 1000;
    c->hold_id = 7;
    c->line_count = 1;
    memcpy(c->lines[0].sku, "a", 1);
    c->lines[0].sku_len = 1;
    c->lines[0].qty = 3;
    b = (store_buf_t){0};
    record_encode_op(&b, &op);
    r = (record_reader_t){.p = b.data, .left = b.size, .ok = true};
    assert_true(record_decode_op(&r, &got));
    assert_true(got.newcomer);
    b.data[b.size - 1] = 2; /* the flags byte is the record's last */
    r = (record_reader_t){.p = b.data, .left = b.size, .ok = true};
    assert_false(record_decode_op(&r, &got));
    record_buf_free(&b);
}

/* A join's Idempotency-Key rides in its record; a join without one is
 * written as before (kind 19), so a journal without keys reads everywhere. */
static void test_a_joins_idempotency_key_round_trips_and_only_keyed_joins_change_form(void **state)
{
    (void)state;
    guard_op_t op = {.kind = GUARD_OP_WAIT_JOIN};
    op.engine.now_ms = 5;
    memcpy(op.u.wait_join.sku, "cap", 3);
    op.u.wait_join.sku_len = 3;
    memcpy(op.u.wait_join.customer, "u-1", 3);
    op.u.wait_join.customer_len = 3;
    op.u.wait_join.qty = 2;
    op.u.wait_join.id = 77;
    store_buf_t plain = {0}, keyed = {0};
    record_encode_op(&plain, &op);
    assert_int_equal(plain.data[0], 19);
    memset(op.u.wait_join.idem_key, 'k', HF_IDEM_KEY_BYTES_MAX); /* the longest key */
    op.u.wait_join.idem_key_len = HF_IDEM_KEY_BYTES_MAX;
    record_encode_op(&keyed, &op);
    assert_int_equal(keyed.data[0], 25);
    assert_int_equal(keyed.size, plain.size + 1 + HF_IDEM_KEY_BYTES_MAX);

    guard_op_t got;
    memset(&got, 0xff, sizeof got); /* a decode sets every field a join has */
    record_reader_t r = {.p = plain.data, .left = plain.size, .ok = true};
    assert_true(record_decode_op(&r, &got));
    assert_int_equal(got.u.wait_join.idem_key_len, 0);
    r = (record_reader_t){.p = keyed.data, .left = keyed.size, .ok = true};
    assert_true(record_decode_op(&r, &got));
    assert_int_equal(r.left, 0);
    assert_int_equal(got.kind, GUARD_OP_WAIT_JOIN);
    assert_int_equal(got.u.wait_join.id, 77);
    assert_int_equal(got.u.wait_join.idem_key_len, HF_IDEM_KEY_BYTES_MAX);
    assert_memory_equal(got.u.wait_join.idem_key, op.u.wait_join.idem_key, HF_IDEM_KEY_BYTES_MAX);
    keyed.data[keyed.size - HF_IDEM_KEY_BYTES_MAX - 1] = 0; /* an empty key is no key */
    r = (record_reader_t){.p = keyed.data, .left = keyed.size, .ok = true};
    assert_false(record_decode_op(&r, &got) && r.left == 0);
    record_buf_free(&plain);
    record_buf_free(&keyed);
}

/* A policy written by an older build has fewer settings: it reads with the
 * rest at their defaults, down to POLICY_FIELD_COUNT_MIN and no further. */
static void test_an_older_policy_record_reads_with_new_settings_at_defaults(void **state)
{
    (void)state;
    guard_op_t op = {.kind = GUARD_OP_POLICY_PUT, .u.policy = policy_config_default()};
    op.engine.now_ms = 1;
    op.u.policy.quantity_line_qty_max = 3; /* a setting the old build had */
    op.u.policy.reclaim_floor_ms = 5000;  /* one it did not: dropped below */
    store_buf_t b = {0};
    record_encode_op(&b, &op);
    const size_t head = 1 + 8 + 1; /* kind, time, field count */
    assert_int_equal(b.size, head + 8 * POLICY_FIELD_COUNT);
    guard_op_t got;
    b.data[head - 1] = POLICY_FIELD_COUNT_MIN;
    record_reader_t r = {.p = b.data, .left = head + 8 * POLICY_FIELD_COUNT_MIN, .ok = true};
    assert_true(record_decode_op(&r, &got));
    assert_int_equal(r.left, 0);
    assert_int_equal(got.u.policy.quantity_line_qty_max, 3);
    assert_int_equal(got.u.policy.reclaim_floor_ms, policy_config_default().reclaim_floor_ms);
    b.data[head - 1] = POLICY_FIELD_COUNT_MIN - 1;
    r = (record_reader_t){.p = b.data, .left = head + 8 * (POLICY_FIELD_COUNT_MIN - 1), .ok = true};
    assert_false(record_decode_op(&r, &got));
    b.data[head - 1] = POLICY_FIELD_COUNT + 1;
    r = (record_reader_t){.p = b.data, .left = b.size, .ok = true};
    assert_false(record_decode_op(&r, &got));
    record_buf_free(&b);
}

static void test_decoder_refuses_damaged_records(void **state)
{
    (void)state;
    guard_op_t op = {.kind = GUARD_OP_ENGINE};
    op.engine = (engine_op_t){.kind = ENGINE_OP_SKU_PUT, .now_ms = 1};
    memcpy(op.engine.u.sku_put.sku, "a", 1);
    op.engine.u.sku_put.sku_len = 1;
    op.engine.u.sku_put.stock = 5;
    store_buf_t b = {0};
    record_encode_op(&b, &op);
    guard_op_t got;
    /* Every truncation is refused. */
    for (size_t n = 0; n < b.size; n++) {
        record_reader_t r = {.p = b.data, .left = n, .ok = true};
        assert_false(record_decode_op(&r, &got));
    }
    /* An unknown kind, an empty sku, and stock past 2^40 are refused. */
    uint8_t saved = b.data[0];
    b.data[0] = 77;
    record_reader_t r = {.p = b.data, .left = b.size, .ok = true};
    assert_false(record_decode_op(&r, &got));
    b.data[0] = saved;
    b.data[9] = 0; /* the sku's length byte */
    r = (record_reader_t){.p = b.data, .left = b.size, .ok = true};
    assert_false(record_decode_op(&r, &got));
    b.data[9] = 1;
    b.data[b.size - 1] = 0xff; /* top byte of stock */
    r = (record_reader_t){.p = b.data, .left = b.size, .ok = true};
    assert_false(record_decode_op(&r, &got));
    record_buf_free(&b);
}

static void test_recovery_rebuilds_the_acknowledged_state(void **state)
{
    (void)state;
    fixture_t *f = fixture_new();
    put_sku(f, 1, "cap-red", 10);
    put_sku(f, 1, "shirt-m", 5);
    uint64_t a = hold(f, 2, "u-1", "cap-red", 3, 60000, "k1");
    uint64_t b = hold(f, 3, "u-2", "cap-red", 2, 60000, NULL);
    uint64_t c = hold(f, 4, "u-1", "shirt-m", 5, 60000, NULL);
    hold_op(f, ENGINE_OP_HOLD_COMMIT, 5, a);
    hold_op(f, ENGINE_OP_HOLD_RELEASE, 6, b);
    hold_op(f, ENGINE_OP_HOLD_EXTEND, 7, c);
    put_sku(f, 8, "cap-red", 12);
    wait_durable(&f->wait, f->last_seq);
    assert_false(f->wait.failed);
    fixture_close(f);
    store_recovery_t info;
    assert_recovers_same(f, 9, &info);
    assert_int_equal(info.journal_records, 9);
    assert_int_equal(info.holds_expired, 0);
    /* The sale keeps its order reference. */
    engine_hold_view_t v;
    char ref[64];
    snprintf(ref, sizeof ref, "order-%llu", (unsigned long long)a);
    assert_int_equal(engine_hold_view(guard_engine(f->guard), a, &v), ENGINE_OK);
    assert_int_equal(v.order_ref_len, strlen(ref));
    assert_memory_equal(v.order_ref, ref, v.order_ref_len);
    fixture_free(f);
}

static void test_recovery_expires_holds_that_ran_out_while_down(void **state)
{
    (void)state;
    fixture_t *f = fixture_new();
    put_sku(f, 0, "cap-red", 10);
    uint64_t short_hold = hold(f, 0, "u-1", "cap-red", 4, 1000, NULL);
    uint64_t long_hold = hold(f, 0, "u-2", "cap-red", 3, 60000, NULL);
    wait_durable(&f->wait, f->last_seq);
    fixture_close(f);
    store_recovery_t info;
    assert_recovers_same(f, 5000, &info);
    assert_int_equal(info.holds_expired, 1);
    engine_hold_view_t v;
    assert_int_equal(engine_hold_view(guard_engine(f->guard), short_hold, &v), ENGINE_OK);
    assert_int_equal(v.state, ENGINE_HOLD_EXPIRED_STATE);
    assert_int_equal(engine_hold_view(guard_engine(f->guard), long_hold, &v), ENGINE_OK);
    assert_int_equal(v.state, ENGINE_HOLD_ACTIVE);
    fixture_free(f);
}

static int64_t count_rows(const char *dir, const char *table)
{
    char path[128], sql[256];
    sqlite3 *db;
    sqlite3_stmt *st;
    snprintf(path, sizeof path, "%s/holdfast.db", dir);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static void test_snapshot_replaces_the_journal_it_covers(void **state)
{
    (void)state;
    fixture_t *f = fixture_new();
    put_sku(f, 0, "cap-red", 100);
    for (int i = 0; i < 10; i++) {
        uint64_t id = hold(f, i, "u-1", "cap-red", 1, 60000, NULL);
        hold_op(f, i % 2 ? ENGINE_OP_HOLD_COMMIT : ENGINE_OP_HOLD_RELEASE, i, id);
    }
    hold(f, 20, "u-9", "cap-red", 7, 60000, "key-9");
    wait_durable(&f->wait, f->last_seq);
    store_snapshot(&f->store, f->guard);
    store_snapshot_poll(&f->store, true, 0);
    /* Ops after the snapshot are replayed on top of it. */
    uint64_t after = hold(f, 30, "u-3", "cap-red", 2, 60000, NULL);
    hold_op(f, ENGINE_OP_HOLD_COMMIT, 31, after);
    wait_durable(&f->wait, f->last_seq);
    fixture_close(f);
    assert_int_equal(count_rows(f->dir, "journal") >= 1, 1);
    /* The rows the snapshot covers were trimmed; the ones after it stay. */
    assert_int_equal(count_rows(f->dir, "journal WHERE first_seq + records - 1 <= "
                                        "(SELECT value FROM meta WHERE key='snapshot_seq')"),
                     0);
    store_recovery_t info;
    assert_recovers_same(f, 40, &info);
    assert_true(info.snapshot_records > 0);
    assert_int_equal(info.journal_records, 2);
    fixture_free(f);
}

/* Adopting a snapshot removes the older files only: a newer one may be a
 * child's finished work that the journal is about to name (removing it made
 * a restart fail on a missing file). */
static void test_adopting_a_snapshot_keeps_a_newer_one(void **state)
{
    (void)state;
    fixture_t *f = fixture_new();
    put_sku(f, 0, "cap-red", 100);
    hold(f, 1, "u-1", "cap-red", 1, 60000, NULL);
    wait_durable(&f->wait, f->last_seq);
    char older[192], newer[192];
    snprintf(older, sizeof older, "%s/snapshot-%020llu.bin", f->dir, 1ull);
    snprintf(newer, sizeof newer, "%s/snapshot-%020llu.bin", f->dir, 1000ull);
    FILE *o = fopen(older, "w"), *n = fopen(newer, "w");
    assert_non_null(o);
    assert_non_null(n);
    fclose(o);
    fclose(n);
    store_snapshot(&f->store, f->guard); /* at seq 2, between the two */
    store_snapshot_poll(&f->store, true, 0);
    hold(f, 2, "u-2", "cap-red", 1, 60000, NULL); /* a commit to adopt it with */
    wait_durable(&f->wait, f->last_seq);
    fixture_close(f);
    assert_int_equal(access(older, F_OK), -1);
    assert_int_equal(access(newer, F_OK), 0);
    unlink(newer);
    fixture_free(f);
}

static void test_recovery_refuses_a_damaged_snapshot(void **state)
{
    (void)state;
    fixture_t *f = fixture_new();
    put_sku(f, 0, "cap-red", 100);
    hold(f, 1, "u-1", "cap-red", 1, 60000, NULL);
    wait_durable(&f->wait, f->last_seq);
    store_snapshot(&f->store, f->guard);
    fixture_close(f); /* waits for the child, adopts its file */
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "f=$(ls %s/snapshot-*.bin) && printf X | dd of=$f bs=1 seek=40 conv=notrunc "
             "status=none",
             f->dir);
    assert_int_equal(system(cmd), 0);
    assert_recovery_refused(f->dir, "damaged");
    fixture_free(f);
}

static void test_failed_journal_refuses_writes_for_good(void **state)
{
    (void)state;
    fixture_t *f = fixture_new();
    put_sku(f, 0, "cap-red", 10);
    wait_durable(&f->wait, f->last_seq);
    store_fail_after(&f->store, f->last_seq);
    hold(f, 1, "u-1", "cap-red", 1, 60000, NULL);
    wait_durable(&f->wait, f->last_seq);
    assert_true(f->wait.failed);
    assert_true(store_failed(&f->store));
    assert_int_equal(f->wait.durable, 1);
    guard_op_t op = {.kind = GUARD_OP_ENGINE};
    op.engine = (engine_op_t){.kind = ENGINE_OP_HOLD_RELEASE, .now_ms = 2};
    assert_int_equal(store_append(&f->store, &op, 0), 0);
    assert_false(store_reply_may_go(&f->store, 2, 0));
    fixture_close(f);
    /* Only what was durable comes back: the hold is not there. */
    char err[256];
    guard_t *g = guard_create(&small, 0);
    store_t s;
    store_recovery_t info;
    assert_non_null(g);
    assert_int_equal(store_open(&s, f->dir, STORE_DURABLE, 0, err, sizeof err), 0);
    assert_int_equal(store_recover(&s, g, 3, &info, err, sizeof err), 0);
    assert_int_equal(info.journal_records, 1);
    assert_int_equal(engine_stats(guard_engine(g)).holds_created, 0);
    store_close(&s);
    guard_destroy(g);
    fixture_free(f);
}

/* A reply's one look at the store: wait until its seq is durable, never
 * for a seq of another generation (a reopened store) or of a failed one;
 * a reply that reveals nothing (seq 0) goes. */
static void test_a_reply_waits_goes_or_is_unknown(void **state)
{
    (void)state;
    fixture_t *f = fixture_new();
    put_sku(f, 0, "cap-red", 10);
    wait_durable(&f->wait, f->last_seq);
    uint64_t gen;
    uint64_t seq = store_appended_seq_of(&f->store, &gen);
    assert_int_equal(store_reply_state(&f->store, seq, gen, 0), STORE_REPLY_GO);
    assert_int_equal(store_reply_state(&f->store, seq, gen + 1, 0), STORE_REPLY_UNKNOWN);
    assert_int_equal(store_reply_state(&f->store, 0, gen + 1, 0), STORE_REPLY_GO);
    assert_int_equal(store_reply_state(&f->store, seq + 1, gen, 0), STORE_REPLY_WAIT);
    store_fail_after(&f->store, seq);
    hold(f, 1, "u-1", "cap-red", 1, 60000, NULL);
    wait_durable(&f->wait, f->last_seq);
    assert_int_equal(store_reply_state(&f->store, f->last_seq, gen, 0), STORE_REPLY_UNKNOWN);
    assert_int_equal(store_reply_state(&f->store, seq, gen, 0), STORE_REPLY_GO);
    fixture_close(f);
    fixture_free(f);
}

static void test_relaxed_replies_wait_once_the_journal_lags_50_ms(void **state)
{
    (void)state;
    char dir[] = "/tmp/hf-relaxed-XXXXXX";
    char err[256];
    assert_non_null(mkdtemp(dir));
    store_t s;
    assert_int_equal(store_open(&s, dir, STORE_RELAXED, 0, err, sizeof err), 0);
    /* No commit thread: nothing becomes durable, so only the bound decides. */
    guard_op_t op = {.kind = GUARD_OP_ENGINE};
    op.engine = (engine_op_t){.kind = ENGINE_OP_HOLD_RELEASE, .now_ms = 1};
    op.engine.u.hold.hold_id = 1;
    uint64_t seq = store_append(&s, &op, 1000);
    assert_true(store_reply_may_go(&s, seq, 1000));
    assert_true(store_reply_may_go(&s, seq, 1000 + HF_RELAXED_FLUSH_MS / 2 - 1));
    assert_false(store_reply_may_go(&s, seq, 1000 + HF_RELAXED_FLUSH_MS / 2));
    store_close(&s);
    /* Durable mode never replies before the commit. */
    assert_int_equal(store_open(&s, dir, STORE_DURABLE, 0, err, sizeof err), 0);
    seq = store_append(&s, &op, 1000);
    assert_false(store_reply_may_go(&s, seq, 1000));
    store_close(&s);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_recovery_refuses_a_damaged_journal(void **state)
{
    (void)state;
    fixture_t *f = fixture_new();
    put_sku(f, 0, "cap-red", 10);
    hold(f, 1, "u-1", "cap-red", 1, 60000, NULL);
    wait_durable(&f->wait, f->last_seq);
    fixture_close(f);
    char path[128];
    sqlite3 *db;
    snprintf(path, sizeof path, "%s/holdfast.db", f->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "UPDATE journal SET body = substr(body, 1, 5)", NULL, NULL,
                                  NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_recovery_refused(f->dir, "damaged");
    fixture_free(f);
}

/* A snapshot body read back with any one byte changed (to each of a few
 * values) is refused or restores a valid state: never a crash or a broken
 * guard. (The file's checksum catches such damage first; this is the
 * decoder's own guard, the check on the way back in.) */
static void test_snapshot_decoder_survives_every_damaged_byte(void **state)
{
    (void)state;
    fixture_t *f = fixture_new();
    put_sku(f, 1, "cap-red", 10);
    put_sku(f, 1, "shirt-m", 5);
    uint64_t a = hold(f, 2, "u-1", "cap-red", 3, 60000, "k1");
    hold(f, 3, "u-2", "shirt-m", 2, 60000, "k2");
    hold_op(f, ENGINE_OP_HOLD_COMMIT, 4, a);
    store_buf_t b = {0};
    record_encode_snapshot(&b, f->guard);
    static const uint8_t values[] = {0x00, 0x01, 0x7f, 0x80, 0xff};
    uint32_t refused = 0, restored = 0;
    for (size_t at = 0; at < b.size; at++) {
        for (size_t v = 0; v < sizeof values; v++) {
            uint8_t saved = b.data[at];
            b.data[at] = values[v];
            guard_t *g = guard_create(&small, 0);
            assert_non_null(g);
            record_reader_t r = {.p = b.data, .left = b.size, .ok = true};
            uint64_t records;
            char err[256];
            if (record_restore_snapshot(&r, g, &records, err, sizeof err)) {
                assert_true(guard_check(g));
                restored++;
            } else {
                refused++;
            }
            guard_destroy(g);
            b.data[at] = saved;
        }
    }
    assert_true(refused > 0 && restored > 0);
    record_buf_free(&b);
    wait_durable(&f->wait, f->last_seq);
    fixture_close(f);
    fixture_free(f);
}

/* An id skip raises both counters, journaled: the next hold and waitlist
 * entry carry sequence numbers past it, after a recovery too, and a record
 * claiming more than an id can carry is refused. */
static void test_an_id_skip_is_journaled_and_moves_the_next_ids(void **state)
{
    (void)state;
    fixture_t *f = fixture_new();
    put_sku(f, 0, "cap-red", 10);
    guard_op_t skip = {.kind = GUARD_OP_ID_SKIP};
    skip.engine.now_ms = 1;
    skip.u.id_skip.hold_seq = 5000;
    skip.u.id_skip.wait_seq = 7000;
    assert_true(apply_guard(f, &skip).changed);
    assert_false(apply_guard(f, &skip).changed); /* already there: nothing to journal */
    uint64_t id = hold(f, 2, "u-1", "cap-red", 1, 60000, NULL);
    assert_int_equal(engine_hold_id_seq(id), 5001);
    assert_int_equal(guard_wait_seq(f->guard), 7000);
    wait_durable(&f->wait, f->last_seq);
    fixture_close(f);
    store_recovery_t info;
    assert_recovers_same(f, 3, &info);
    fixture_free(f);

    store_buf_t b = {0};
    skip.u.id_skip.hold_seq = ENGINE_HOLD_SEQ_MAX;
    record_encode_op(&b, &skip);
    b.data[b.size - 9] = 0x10; /* hold_seq's top byte: past what an id carries */
    record_reader_t r = {.p = b.data, .left = b.size, .ok = true};
    guard_op_t got;
    assert_false(record_decode_op(&r, &got));
    record_buf_free(&b);
}

/* ------------------------------------------------------- damaged files */

/* A journal of n holds, each its own commit, closed cleanly: the commits
 * stay in the write-ahead log (closing never checkpoints). */
static fixture_t *journal_of_holds(int n)
{
    fixture_t *f = fixture_new();
    put_sku(f, 0, "cap-red", 1000);
    wait_durable(&f->wait, f->last_seq);
    for (int i = 0; i < n; i++) {
        char who[16];
        snprintf(who, sizeof who, "u-%d", i);
        hold(f, 1 + i, who, "cap-red", 1, 600000, NULL);
        wait_durable(&f->wait, f->last_seq);
    }
    fixture_close(f);
    return f;
}

static void db_exec(const char *dir, const char *sql)
{
    char path[128];
    sqlite3 *db;
    snprintf(path, sizeof path, "%s/holdfast.db", dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static int64_t db_int(const char *dir, const char *sql)
{
    char path[128];
    sqlite3 *db;
    sqlite3_stmt *st;
    snprintf(path, sizeof path, "%s/holdfast.db", dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void flip_byte(const char *dir, const char *file, long offset)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, offset, SEEK_SET), 0);
    int c = fgetc(fp);
    assert_true(c != EOF);
    assert_int_equal(fseek(fp, offset, SEEK_SET), 0);
    fputc(c ^ 0x5a, fp);
    fclose(fp);
}

static long file_size(const char *dir, const char *file)
{
    char path[128];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, file);
    assert_int_equal(stat(path, &st), 0);
    return (long)st.st_size;
}

/* The offset of frame i of a write-ahead log with pages of page_bytes. */
static long wal_frame(long i, long page_bytes)
{
    return 32 + i * (24 + page_bytes);
}

static uint64_t holds_active(const char *dir, bool readable, store_recovery_t *info)
{
    char err[512];
    guard_t *g = guard_create(&small, 0);
    store_t s;
    assert_non_null(g);
    assert_int_equal(store_open(&s, dir, STORE_DURABLE, 0, err, sizeof err), 0);
    int rc = readable ? store_recover_readable(&s, g, 0, info, err, sizeof err)
                      : store_recover(&s, g, 0, info, err, sizeof err);
    assert_int_equal(rc, 0);
    uint64_t n = engine_stats(guard_engine(g)).holds_active;
    store_close(&s);
    guard_destroy(g);
    return n;
}

static void test_a_damaged_journal_page_is_refused_not_read_as_the_end(void **state)
{
    (void)state;
    fixture_t *f = journal_of_holds(60);
    db_exec(f->dir, "PRAGMA wal_checkpoint(TRUNCATE)");
    int64_t page = db_int(f->dir, "SELECT pageno FROM dbstat WHERE name='journal' AND "
                                  "pagetype='leaf' ORDER BY pageno LIMIT 1");
    int64_t page_bytes = db_int(f->dir, "PRAGMA page_size");
    flip_byte(f->dir, "holdfast.db", (long)((page - 1) * page_bytes)); /* the page type */
    assert_recovery_refused(f->dir, "cannot be read after record");
    assert_recovery_refused(f->dir, "holdfast recover --data");
    fixture_free(f);
}

static void test_a_changed_byte_in_a_journal_row_is_refused(void **state)
{
    (void)state;
    fixture_t *f = journal_of_holds(5);
    /* A body changed in place, as a disk might: same length, one bit. */
    db_exec(f->dir, "UPDATE journal SET body = zeroblob(length(body)) WHERE batch = 3");
    assert_recovery_refused(f->dir, "checksum mismatch");
    fixture_free(f);
}

static void test_a_damaged_wal_frame_is_refused_by_the_mark(void **state)
{
    (void)state;
    fixture_t *f = journal_of_holds(20);
    long page_bytes = db_int(f->dir, "PRAGMA page_size");
    long frames = (file_size(f->dir, "holdfast.db-wal") - 32) / (24 + page_bytes);
    assert_true(frames > 4);
    flip_byte(f->dir, "holdfast.db-wal", wal_frame(frames - 3, page_bytes) + 24 + 100);
    assert_recovery_refused(f->dir, "holdfast.mark says records up to 21 were durable");
    fixture_free(f);
}

static void test_a_truncated_wal_is_refused_by_the_mark(void **state)
{
    (void)state;
    fixture_t *f = journal_of_holds(20);
    long page_bytes = db_int(f->dir, "PRAGMA page_size");
    long size = file_size(f->dir, "holdfast.db-wal");
    char path[128];
    snprintf(path, sizeof path, "%s/holdfast.db-wal", f->dir);
    assert_int_equal(truncate(path, size - (24 + page_bytes) - 7), 0);
    assert_recovery_refused(f->dir, "were durable");
    fixture_free(f);
}

static void test_a_missing_or_damaged_mark_is_refused(void **state)
{
    (void)state;
    fixture_t *f = journal_of_holds(3);
    flip_byte(f->dir, "holdfast.mark", 9);
    flip_byte(f->dir, "holdfast.mark", 32 + 9);
    assert_recovery_refused(f->dir, "holdfast.mark is damaged");
    char path[128];
    snprintf(path, sizeof path, "%s/holdfast.mark", f->dir);
    assert_int_equal(unlink(path), 0);
    assert_recovery_refused(f->dir, "holdfast.mark is missing");
    fixture_free(f);
}

/* A crash while the first mark was being made leaves an empty file, and
 * meta not yet saying it was made: no mark yet, not damage. */
static void test_an_empty_mark_not_yet_recorded_is_no_mark(void **state)
{
    (void)state;
    fixture_t *f = journal_of_holds(2);
    db_exec(f->dir, "UPDATE meta SET value = 0 WHERE key = 'marked'");
    char path[128];
    snprintf(path, sizeof path, "%s/holdfast.mark", f->dir);
    assert_int_equal(truncate(path, 0), 0);
    store_recovery_t info;
    assert_int_equal(holds_active(f->dir, false, &info), 2);
    assert_int_equal(info.marked_seq, 0);
    assert_int_equal(db_int(f->dir, "SELECT value FROM meta WHERE key = 'marked'"), 1);
    fixture_free(f);
}

/* A torn write of one slot leaves the other, one commit older. */
static void test_a_torn_mark_slot_falls_back_to_the_other(void **state)
{
    (void)state;
    fixture_t *f = journal_of_holds(3);
    flip_byte(f->dir, "holdfast.mark", 9);
    store_recovery_t info;
    assert_int_equal(holds_active(f->dir, false, &info), 3);
    assert_int_equal(info.last_seq, 4);
    fixture_free(f);
}

/* What the journal still holds comes back, the rest is reported lost, and
 * the rebuilt directory starts and takes writes like any other. */
static void test_accept_loss_rebuilds_from_the_last_good_record(void **state)
{
    (void)state;
    fixture_t *f = journal_of_holds(20);
    long page_bytes = db_int(f->dir, "PRAGMA page_size");
    long frames = (file_size(f->dir, "holdfast.db-wal") - 32) / (24 + page_bytes);
    flip_byte(f->dir, "holdfast.db-wal", wal_frame(frames - 3, page_bytes) + 24 + 100);
    store_recovery_t info;
    uint64_t held = holds_active(f->dir, true, &info);
    assert_true(info.damage[0] != '\0');
    assert_int_equal(info.marked_seq, 21);
    assert_true(info.last_seq < 21 && info.last_seq >= 2);
    assert_int_equal(held, info.last_seq - 1); /* record 1 is the sku */

    char err[512], moved[256];
    guard_t *g = guard_create(&small, 0);
    store_t s;
    assert_int_equal(store_open(&s, f->dir, STORE_DURABLE, 0, err, sizeof err), 0);
    assert_int_equal(store_recover_readable(&s, g, 0, &info, err, sizeof err), 0);
    store_close(&s);
    assert_int_equal(store_rebuild(f->dir, g, &info, moved, sizeof moved, err, sizeof err), 0);
    guard_destroy(g);
    assert_non_null(strstr(moved, "/damaged-"));
    char path[300];
    snprintf(path, sizeof path, "%s/holdfast.db-wal", moved);
    assert_int_equal(access(path, F_OK), 0); /* the evidence is kept */

    store_recovery_t again;
    assert_int_equal(holds_active(f->dir, false, &again), held);
    assert_int_equal(again.last_seq, info.last_seq);
    assert_true(again.damage[0] == '\0');
    guard_destroy(f->guard);
    fixture_open(f, STORE_DURABLE, 0);
    hold(f, 100, "u-new", "cap-red", 1, 600000, NULL);
    wait_durable(&f->wait, f->last_seq);
    assert_int_equal(f->last_seq, info.last_seq + 1);
    fixture_close(f);
    assert_int_equal(holds_active(f->dir, false, &again), held + 1);
    fixture_free(f);
}

/* Trimming keeps the chain: the first row left is checked against the
 * chain value of the last row deleted (kept in meta). */
static void test_rows_left_after_a_trim_are_still_checked(void **state)
{
    (void)state;
    fixture_t *f = fixture_new();
    put_sku(f, 0, "cap-red", 1000);
    for (int i = 0; i < 300; i++) {
        uint64_t id = hold(f, 1 + i, "u-1", "cap-red", 1, 600000, NULL);
        hold_op(f, ENGINE_OP_HOLD_RELEASE, 1 + i, id);
        wait_durable(&f->wait, f->last_seq);
    }
    store_snapshot(&f->store, f->guard);
    store_snapshot_poll(&f->store, true, 0);
    hold(f, 400, "u-2", "cap-red", 1, 600000, NULL); /* adopts and trims one step */
    wait_durable(&f->wait, f->last_seq);
    fixture_close(f);
    /* However far the trim got, the rows left start after a deleted one. */
    int64_t left = count_rows(f->dir, "journal");
    assert_true(left >= 1 && left < 300);
    store_recovery_t info;
    assert_recovers_same(f, 500, &info);
    db_exec(f->dir, "UPDATE meta SET value = value + 1 WHERE key = 'trim_chain'");
    assert_recovery_refused(f->dir, "checksum mismatch");
    fixture_free(f);
}

/* A snapshot that fails (here: its directory is not writable) leaves no
 * temporary file behind to fill the disk. */
static void test_a_failed_snapshot_write_leaves_no_temporary_file(void **state)
{
    (void)state;
    fixture_t *f = journal_of_holds(2);
    char sub[128], cmd[200];
    snprintf(sub, sizeof sub, "%s/no-such-dir/x", f->dir);
    assert_int_equal(snapshot_write(sub, f->guard, 3), -1);
    snprintf(cmd, sizeof cmd, "test -z \"$(ls %s | grep tmp)\"", f->dir);
    assert_int_equal(system(cmd), 0);
    fixture_free(f);
}

/* A store that compacts every 2 records, with 2 durable: a snapshot is due. */
static fixture_t *fixture_due_a_snapshot(void)
{
    fixture_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/hf-store-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    fixture_open(f, STORE_DURABLE, 2);
    put_sku(f, 0, "cap-red", 1000);
    hold(f, 1, "u-1", "cap-red", 1, 600000, NULL);
    wait_durable(&f->wait, f->last_seq);
    return f;
}

/* Where the snapshot child of f's next snapshot writes first (snapshot.c). */
static void snapshot_tmp_path(const fixture_t *f, char *out, size_t size)
{
    int n = snprintf(out, size, "%s/snapshot-%020llu.tmp", f->dir, (unsigned long long)f->last_seq);
    assert_true(n > 0 && (size_t)n < size);
}

/* A snapshot child that fails puts the next snapshot off for
 * STORE_SNAPSHOT_RETRY_MS from when it was collected, twice that after a
 * second failure in a row, and so on up to STORE_SNAPSHOT_RETRY_MS_MAX
 * (each try forks the whole server); the records it was to cover still
 * count, so compaction is asked for again, and a success is adopted. */
static void test_a_failed_snapshot_is_tried_again_after_its_pause(void **state)
{
    (void)state;
    fixture_t *f = fixture_due_a_snapshot();
    const int64_t t_ms = 5000; /* the monotonic clock, as the server passes it */
    assert_true(store_wants_snapshot(&f->store, t_ms));
    char blocker[160];
    snapshot_tmp_path(f, blocker, sizeof blocker);
    assert_int_equal(mkdir(blocker, 0700), 0); /* the child cannot create its file */
    /* Each failure in a row doubles the pause, up to its max and no more. */
    int64_t at_ms = t_ms, pause_ms = STORE_SNAPSHOT_RETRY_MS;
    for (int failures = 0; failures < 9; failures++) {
        store_snapshot(&f->store, f->guard);
        store_snapshot_poll(&f->store, true, at_ms);
        assert_false(store_wants_snapshot(&f->store, at_ms + pause_ms - 1));
        assert_true(store_wants_snapshot(&f->store, at_ms + pause_ms));
        at_ms += pause_ms;
        pause_ms = pause_ms * 2 <= STORE_SNAPSHOT_RETRY_MS_MAX ? pause_ms * 2
                                                                : STORE_SNAPSHOT_RETRY_MS_MAX;
    }
    assert_int_equal(pause_ms, STORE_SNAPSHOT_RETRY_MS_MAX); /* the loop reached the max */
    assert_int_equal(rmdir(blocker), 0);
    store_snapshot(&f->store, f->guard);
    store_snapshot_poll(&f->store, true, at_ms);
    hold(f, 2, "u-2", "cap-red", 1, 600000, NULL); /* the commit adopts the snapshot */
    wait_durable(&f->wait, f->last_seq);
    assert_int_equal(store_stats(&f->store).snapshots, 1);
    fixture_close(f);
    fixture_free(f);
}

/* A snapshot child that hangs (here its file is a FIFO that nobody reads,
 * so its open never returns) is killed once a stop has waited
 * SNAPSHOT_WAIT_MS_MAX (30 s) for it: a stop must end, and the journal
 * still has everything. The test takes those 30 s. */
static void test_a_stop_kills_a_snapshot_child_that_hangs(void **state)
{
    (void)state;
    fixture_t *f = fixture_due_a_snapshot();
    char fifo[160];
    snapshot_tmp_path(f, fifo, sizeof fifo);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    store_snapshot(&f->store, f->guard);
    fixture_close(f); /* returns: the child was killed */
    store_recovery_t info;
    assert_recovers_same(f, 500, &info);
    fixture_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_records_round_trip_every_op_kind),
        cmocka_unit_test(test_a_mapped_buffer_grows_and_keeps_its_bytes),
        cmocka_unit_test(test_reclaim_and_newcomer_records_round_trip_at_their_edges),
        cmocka_unit_test(test_a_joins_idempotency_key_round_trips_and_only_keyed_joins_change_form),
        cmocka_unit_test(test_an_older_policy_record_reads_with_new_settings_at_defaults),
        cmocka_unit_test(test_decoder_refuses_damaged_records),
        cmocka_unit_test(test_recovery_rebuilds_the_acknowledged_state),
        cmocka_unit_test(test_recovery_expires_holds_that_ran_out_while_down),
        cmocka_unit_test(test_snapshot_replaces_the_journal_it_covers),
        cmocka_unit_test(test_adopting_a_snapshot_keeps_a_newer_one),
        cmocka_unit_test(test_recovery_refuses_a_damaged_snapshot),
        cmocka_unit_test(test_failed_journal_refuses_writes_for_good),
        cmocka_unit_test(test_a_reply_waits_goes_or_is_unknown),
        cmocka_unit_test(test_relaxed_replies_wait_once_the_journal_lags_50_ms),
        cmocka_unit_test(test_recovery_refuses_a_damaged_journal),
        cmocka_unit_test(test_snapshot_decoder_survives_every_damaged_byte),
        cmocka_unit_test(test_an_id_skip_is_journaled_and_moves_the_next_ids),
        cmocka_unit_test(test_a_damaged_journal_page_is_refused_not_read_as_the_end),
        cmocka_unit_test(test_a_changed_byte_in_a_journal_row_is_refused),
        cmocka_unit_test(test_a_damaged_wal_frame_is_refused_by_the_mark),
        cmocka_unit_test(test_a_truncated_wal_is_refused_by_the_mark),
        cmocka_unit_test(test_a_missing_or_damaged_mark_is_refused),
        cmocka_unit_test(test_a_torn_mark_slot_falls_back_to_the_other),
        cmocka_unit_test(test_an_empty_mark_not_yet_recorded_is_no_mark),
        cmocka_unit_test(test_accept_loss_rebuilds_from_the_last_good_record),
        cmocka_unit_test(test_rows_left_after_a_trim_are_still_checked),
        cmocka_unit_test(test_a_failed_snapshot_write_leaves_no_temporary_file),
        cmocka_unit_test(test_a_failed_snapshot_is_tried_again_after_its_pause),
        cmocka_unit_test(test_a_stop_kills_a_snapshot_child_that_hangs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
