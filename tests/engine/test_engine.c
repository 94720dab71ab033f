/*
 * test_engine.c - unit tests of the engine's contract, as engine.h states it:
 * every operation, every hold transition and every limit at its edge.
 *
 * The tests are written against the header, not against engine.c, and each is
 * named for what it proves. Every operation goes through apply() or advance()
 * below, which also assert engine_check(), so every step of every test checks
 * the six invariants as well as what the test itself asserts.
 *
 * Readings of the header that these tests rely on where it is not explicit:
 *   - A finished hold is readable for exactly HF_FINISHED_RETENTION_MS: at
 *     finished_ms + retention - 1 it reads, at finished_ms + retention it is
 *     not found. An Idempotency-Key likewise, from the create that stored it.
 *     (The same half-open convention as expiry: active while now < expires.)
 *   - An expired hold's finished_ms is its expires_ms, whenever the expiry was
 *     noticed: replaying the journal must rebuild the same state, and the
 *     timer's own engine_advance() calls are not journaled.
 *   - Releasing an expired hold is harmless (ENGINE_OK, not changed, and it
 *     stays expired), as repeating a release is (docs/API.md: releasing a
 *     released or expired hold returns it unchanged); releasing a committed
 *     one is ENGINE_HOLD_COMMITTED.
 *   - "changed" means the state changed: a replay, a repeated commit or
 *     release, a put of the same stock and an extend that does not move the
 *     expiry are all ok and not changed.
 *
 * Times start at T0, far from zero, so that a timestamp left at zero cannot
 * pass for a real one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the four headers above first. */
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

#define T0 1000000LL
#define HOLD_RETENTION_MS HF_FINISHED_RETENTION_MS
#define IDEM_RETENTION_MS HF_IDEM_RETENTION_MS
#define TTL_LONG_MS 60000LL

/* ---- fixtures ---- */

static const engine_config_t config_small = {.skus_max = 8, .holds_max = 16, .idem_keys_max = 8};
/* 64 skus, for holds of 64 lines. */
static const engine_config_t config_wide = {.skus_max = 64, .holds_max = 16, .idem_keys_max = 8};

static int setup_with(void **state, const engine_config_t *config)
{
    engine_t *e = calloc(1, sizeof *e);
    if (e == NULL) {
        return -1;
    }
    if (engine_init(e, config, T0) != 0) {
        free(e);
        return -1;
    }
    *state = e;
    return 0;
}

static int setup_small(void **state)
{
    return setup_with(state, &config_small);
}

static int setup_wide(void **state)
{
    return setup_with(state, &config_wide);
}

static int teardown(void **state)
{
    engine_t *e = *state;
    engine_deinit(e);
    free(e);
    return 0;
}

/* ---- building operations ---- */

typedef struct {
    const char *sku;
    uint32_t qty;
} line_t;

/* LINES({"a", 1}, {"b", 2}) expands to a count and an array. */
#define LINES(...) (sizeof((line_t[]){__VA_ARGS__}) / sizeof(line_t)), ((line_t[]){__VA_ARGS__})

static void set_text(char *dst, uint8_t *len_out, size_t max, const char *src)
{
    size_t n = strlen(src);
    assert_true(n >= 1 && n <= max);
    memcpy(dst, src, n);
    *len_out = (uint8_t)n;
}

static engine_op_t op_sku_put(int64_t now, const char *sku, int64_t stock)
{
    engine_op_t op;
    memset(&op, 0, sizeof op);
    op.kind = ENGINE_OP_SKU_PUT;
    op.now_ms = now;
    set_text(op.u.sku_put.sku, &op.u.sku_put.sku_len, HF_SKU_BYTES_MAX, sku);
    op.u.sku_put.stock = stock;
    return op;
}

static engine_op_t op_hold_create(int64_t now, const char *customer, int64_t ttl_ms,
                                  const char *key, size_t line_count, const line_t *lines)
{
    engine_op_t op;
    memset(&op, 0, sizeof op);
    op.kind = ENGINE_OP_HOLD_CREATE;
    op.now_ms = now;
    engine_hold_create_t *c = &op.u.hold_create;
    set_text(c->customer, &c->customer_len, HF_NAME_BYTES_MAX, customer);
    if (key != NULL) {
        set_text(c->idem_key, &c->idem_key_len, HF_IDEM_KEY_BYTES_MAX, key);
    }
    c->ttl_ms = ttl_ms;
    assert_true(line_count >= 1 && line_count <= HF_LINES_PER_HOLD_MAX);
    c->line_count = (uint16_t)line_count;
    for (size_t i = 0; i < line_count; i++) {
        set_text(c->lines[i].sku, &c->lines[i].sku_len, HF_SKU_BYTES_MAX, lines[i].sku);
        c->lines[i].qty = lines[i].qty;
    }
    return op;
}

static engine_op_t op_on_hold(engine_op_kind_t kind, int64_t now, uint64_t id, int64_t ttl_ms)
{
    engine_op_t op;
    memset(&op, 0, sizeof op);
    op.kind = kind;
    op.now_ms = now;
    op.u.hold.hold_id = id;
    op.u.hold.ttl_ms = ttl_ms;
    return op;
}

/* ---- applying them, checking the invariants after each ---- */

static engine_outcome_t apply(engine_t *e, const engine_op_t *op)
{
    engine_outcome_t o = engine_apply(e, op);
    assert_true(engine_check(e));
    if (o.result != ENGINE_OK) {
        assert_false(o.changed);
        assert_false(o.replayed);
    }
    return o;
}

static uint32_t advance(engine_t *e, int64_t now)
{
    uint32_t n = engine_advance(e, now);
    assert_true(engine_check(e));
    return n;
}

static engine_outcome_t put(engine_t *e, int64_t now, const char *sku, int64_t stock)
{
    engine_op_t op = op_sku_put(now, sku, stock);
    return apply(e, &op);
}

static engine_outcome_t hold(engine_t *e, int64_t now, const char *customer, int64_t ttl_ms,
                             const char *key, size_t line_count, const line_t *lines)
{
    engine_op_t op = op_hold_create(now, customer, ttl_ms, key, line_count, lines);
    return apply(e, &op);
}

static engine_outcome_t commit(engine_t *e, int64_t now, uint64_t id)
{
    engine_op_t op = op_on_hold(ENGINE_OP_HOLD_COMMIT, now, id, 0);
    return apply(e, &op);
}

static engine_outcome_t release(engine_t *e, int64_t now, uint64_t id)
{
    engine_op_t op = op_on_hold(ENGINE_OP_HOLD_RELEASE, now, id, 0);
    return apply(e, &op);
}

static engine_outcome_t extend(engine_t *e, int64_t now, uint64_t id, int64_t ttl_ms)
{
    engine_op_t op = op_on_hold(ENGINE_OP_HOLD_EXTEND, now, id, ttl_ms);
    return apply(e, &op);
}

/* Names in failure messages read better than numbers. */
#define ASSERT_RESULT(outcome, expected)                                                           \
    assert_string_equal(engine_result_name((outcome).result), engine_result_name(expected))

static uint32_t put_ok(engine_t *e, int64_t now, const char *sku, int64_t stock)
{
    engine_outcome_t o = put(e, now, sku, stock);
    ASSERT_RESULT(o, ENGINE_OK);
    return o.sku_index;
}

static uint64_t hold_ok(engine_t *e, int64_t now, const char *customer, int64_t ttl_ms,
                        const char *key, size_t line_count, const line_t *lines)
{
    engine_outcome_t o = hold(e, now, customer, ttl_ms, key, line_count, lines);
    ASSERT_RESULT(o, ENGINE_OK);
    assert_true(o.changed);
    assert_false(o.replayed);
    assert_true(o.hold_id != 0);
    return o.hold_id;
}

static uint32_t sku_index_of(const engine_t *e, const char *sku)
{
    uint32_t index = UINT32_MAX;
    assert_true(engine_sku_find(e, sku, strlen(sku), &index));
    assert_true(index < engine_sku_count(e));
    return index;
}

static engine_sku_view_t sku_view(const engine_t *e, const char *sku)
{
    engine_sku_view_t v;
    engine_sku_view(e, sku_index_of(e, sku), &v);
    assert_int_equal(v.sku_len, strlen(sku));
    assert_memory_equal(v.sku, sku, v.sku_len);
    return v;
}

#define ASSERT_SKU(e, sku, stock_, held_, sold_)                                                   \
    do {                                                                                           \
        engine_sku_view_t sv_ = sku_view((e), (sku));                                              \
        assert_int_equal(sv_.stock, (stock_));                                                     \
        assert_int_equal(sv_.held, (held_));                                                       \
        assert_int_equal(sv_.sold, (sold_));                                                       \
        assert_int_equal(sv_.available, (int64_t)(stock_) - (held_) - (sold_));                    \
    } while (0)

static engine_hold_view_t hold_view(const engine_t *e, uint64_t id)
{
    engine_hold_view_t v;
    memset(&v, 0, sizeof v);
    assert_string_equal(engine_result_name(engine_hold_view(e, id, &v)),
                        engine_result_name(ENGINE_OK));
    assert_true(v.id == id);
    return v;
}

static bool hold_known(const engine_t *e, uint64_t id)
{
    engine_hold_view_t v;
    engine_result_t r = engine_hold_view(e, id, &v);
    assert_true(r == ENGINE_OK || r == ENGINE_HOLD_NOT_FOUND);
    return r == ENGINE_OK;
}

#define ASSERT_STATE(e, id, expected)                                                              \
    assert_string_equal(engine_hold_state_name(hold_view((e), (id)).state),                        \
                        engine_hold_state_name(expected))

/* ---- init, config, names ---- */

static void test_init_refuses_capacities_beyond_the_ceilings(void **state)
{
    (void)state;
    engine_t e;
    engine_config_t c = config_small;
    c.skus_max = HF_SKUS_MAX_LIMIT + 1;
    assert_int_equal(engine_init(&e, &c, T0), -1);
    c = config_small;
    c.holds_max = HF_HOLDS_MAX_LIMIT + 1;
    assert_int_equal(engine_init(&e, &c, T0), -1);
    c = config_small;
    c.idem_keys_max = HF_IDEM_KEYS_MAX_LIMIT + 1;
    assert_int_equal(engine_init(&e, &c, T0), -1);

    c = config_small;
    assert_int_equal(engine_init(&e, &c, T0), 0);
    assert_true(engine_check(&e));
    engine_deinit(&e);
}

static void test_a_fresh_engine_is_empty(void **state)
{
    engine_t *e = *state;
    engine_stats_t s = engine_stats(e);
    engine_stats_t zero;
    memset(&zero, 0, sizeof zero);
    assert_memory_equal(&s, &zero, sizeof s);
    assert_int_equal(engine_sku_count(e), 0);
    assert_true(engine_next_expiry_ms(e) == INT64_MAX);
    uint32_t index;
    assert_false(engine_sku_find(e, "a", 1, &index));
    assert_int_equal(advance(e, T0 + 1000), 0);
    assert_true(engine_check(e));
}

static void test_default_config_is_the_documented_default(void **state)
{
    (void)state;
    engine_config_t d = engine_config_default();
    assert_int_equal(d.skus_max, HF_SKUS_MAX_DEFAULT);
    assert_int_equal(d.holds_max, HF_HOLDS_MAX_DEFAULT);
    assert_int_equal(d.idem_keys_max, HF_IDEM_KEYS_MAX_DEFAULT);
    assert_true(engine_reserved_bytes(&config_small) > 0);
    assert_true(engine_reserved_bytes(&d) > engine_reserved_bytes(&config_small));
}

static void test_result_names_and_messages_come_from_one_table(void **state)
{
    (void)state;
    static const char *const names[ENGINE_RESULT_COUNT] = {
        "ok",
        "sku_not_found",
        "hold_not_found",
        "insufficient_stock",
        "stock_below_committed",
        "hold_expired",
        "hold_released",
        "hold_committed",
        "duplicate_line",
        "idempotency_mismatch",
        "skus_full",
        "holds_full",
        "lines_full",
        "idempotency_keys_full",
    };
    for (int r = 0; r < ENGINE_RESULT_COUNT; r++) {
        assert_string_equal(engine_result_name((engine_result_t)r), names[r]);
        const char *m = engine_result_message((engine_result_t)r);
        assert_non_null(m);
        assert_true(strlen(m) > 0);
        for (int q = 0; q < r; q++) {
            assert_string_not_equal(m, engine_result_message((engine_result_t)q));
        }
    }
    assert_string_equal(engine_result_message(ENGINE_HOLD_EXPIRED), "the hold has expired");
    assert_string_equal(engine_result_message(ENGINE_OK), "ok");
}

/* Names up to 36 bytes live in the hold; longer ones are interned once and
 * forgotten with the last hold that names them. */
static void test_long_customer_names_are_shared_and_forgotten(void **state)
{
    engine_t *e = *state;
    char long_name[HF_NAME_BYTES_MAX + 1];
    memset(long_name, 'x', HF_NAME_BYTES_MAX);
    long_name[HF_NAME_BYTES_MAX] = '\0';
    const char *inline_name = "0123456789abcdef0123456789abcdef0123"; /* 36 bytes */
    put(e, T0, "a", 100);
    uint64_t a = hold_ok(e, T0, long_name, TTL_LONG_MS, NULL, LINES({"a", 1}));
    uint64_t b = hold_ok(e, T0, long_name, TTL_LONG_MS, NULL, LINES({"a", 1}));
    uint64_t c = hold_ok(e, T0, inline_name, TTL_LONG_MS, NULL, LINES({"a", 1}));
    assert_int_equal(e->name_count, 1); /* one interned name, shared */
    engine_hold_view_t v;
    assert_int_equal(engine_hold_view(e, b, &v), ENGINE_OK);
    assert_int_equal(v.customer_len, HF_NAME_BYTES_MAX);
    assert_memory_equal(v.customer, long_name, HF_NAME_BYTES_MAX);
    assert_int_equal(engine_hold_view(e, c, &v), ENGINE_OK);
    assert_int_equal(v.customer_len, 36);
    assert_memory_equal(v.customer, inline_name, 36);
    engine_op_t release = op_on_hold(ENGINE_OP_HOLD_RELEASE, T0 + 1, a, 0);
    apply(e, &release);
    release.u.hold.hold_id = b;
    apply(e, &release);
    /* Retained finished holds still name it; forgetting them frees it. */
    assert_int_equal(e->name_count, 1);
    advance(e, T0 + 1 + HF_FINISHED_RETENTION_MS);
    assert_int_equal(e->name_count, 0);
    assert_int_equal(engine_hold_view(e, a, &v), ENGINE_HOLD_NOT_FOUND);
}

static void test_hold_state_names_are_the_api_states(void **state)
{
    (void)state;
    assert_string_equal(engine_hold_state_name(ENGINE_HOLD_ACTIVE), "active");
    assert_string_equal(engine_hold_state_name(ENGINE_HOLD_COMMITTED_STATE), "committed");
    assert_string_equal(engine_hold_state_name(ENGINE_HOLD_RELEASED_STATE), "released");
    assert_string_equal(engine_hold_state_name(ENGINE_HOLD_EXPIRED_STATE), "expired");
}

/* ---- skus ---- */

static void test_sku_put_creates_then_updates(void **state)
{
    engine_t *e = *state;
    engine_outcome_t o = put(e, T0, "cap-red", 100);
    ASSERT_RESULT(o, ENGINE_OK);
    assert_true(o.created);
    assert_true(o.changed);
    uint32_t cap = o.sku_index;
    assert_int_equal(engine_sku_count(e), 1);
    assert_int_equal(sku_index_of(e, "cap-red"), cap);
    ASSERT_SKU(e, "cap-red", 100, 0, 0);

    o = put(e, T0 + 1, "cap-red", 40);
    ASSERT_RESULT(o, ENGINE_OK);
    assert_false(o.created);
    assert_true(o.changed);
    assert_int_equal(o.sku_index, cap);
    assert_int_equal(engine_sku_count(e), 1);
    ASSERT_SKU(e, "cap-red", 40, 0, 0);
    /* The same stock again changes nothing, so there is nothing to journal. */
    o = put(e, T0 + 1, "cap-red", 40);
    ASSERT_RESULT(o, ENGINE_OK);
    assert_false(o.created);
    assert_false(o.changed);

    o = put(e, T0 + 2, "shirt-m", 0);
    ASSERT_RESULT(o, ENGINE_OK);
    assert_true(o.created);
    assert_int_not_equal(o.sku_index, cap);
    assert_int_equal(engine_sku_count(e), 2);
    ASSERT_SKU(e, "shirt-m", 0, 0, 0);
    ASSERT_SKU(e, "cap-red", 40, 0, 0);

    /* Names are bytes: a prefix or an extension is another sku. */
    uint32_t index;
    assert_false(engine_sku_find(e, "cap-re", 6, &index));
    assert_false(engine_sku_find(e, "cap-red2", 8, &index));
    assert_true(engine_sku_find(e, "cap-red2", 7, &index));
    assert_int_equal(index, cap);

    engine_stats_t s = engine_stats(e);
    assert_int_equal(s.skus, 2);
    assert_int_equal(s.units_stock, 40);
}

static void test_sku_stock_takes_its_edge_values(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 0);
    ASSERT_SKU(e, "a", 0, 0, 0);
    put_ok(e, T0, "a", HF_STOCK_MAX);
    ASSERT_SKU(e, "a", HF_STOCK_MAX, 0, 0);
    hold_ok(e, T0, "u", TTL_LONG_MS, NULL, LINES({"a", (uint32_t)HF_QTY_MAX}));
    ASSERT_SKU(e, "a", HF_STOCK_MAX, HF_QTY_MAX, 0);
    assert_int_equal(engine_stats(e).units_stock, HF_STOCK_MAX);
}

static void test_stock_below_committed_is_refused_and_changes_nothing(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 10);
    uint64_t active = hold_ok(e, T0, "u1", TTL_LONG_MS, NULL, LINES({"a", 3}));
    uint64_t sold = hold_ok(e, T0, "u2", TTL_LONG_MS, NULL, LINES({"a", 2}));
    ASSERT_RESULT(commit(e, T0 + 1, sold), ENGINE_OK);
    ASSERT_SKU(e, "a", 10, 3, 2);

    engine_outcome_t o = put(e, T0 + 2, "a", 4);
    ASSERT_RESULT(o, ENGINE_STOCK_BELOW_COMMITTED);
    assert_false(o.created);
    ASSERT_SKU(e, "a", 10, 3, 2);

    /* Exactly held + sold is allowed: nothing is left available. */
    ASSERT_RESULT(put(e, T0 + 3, "a", 5), ENGINE_OK);
    ASSERT_SKU(e, "a", 5, 3, 2);

    ASSERT_RESULT(release(e, T0 + 4, active), ENGINE_OK);
    ASSERT_RESULT(put(e, T0 + 5, "a", 1), ENGINE_STOCK_BELOW_COMMITTED);
    ASSERT_RESULT(put(e, T0 + 5, "a", 2), ENGINE_OK);
    ASSERT_SKU(e, "a", 2, 0, 2);
}

static void test_sku_table_full_refuses_only_a_new_sku(void **state)
{
    engine_t *e = *state;
    char name[16];
    for (uint32_t i = 0; i < config_small.skus_max; i++) {
        snprintf(name, sizeof name, "s%u", i);
        engine_outcome_t o = put(e, T0, name, i);
        ASSERT_RESULT(o, ENGINE_OK);
        assert_true(o.created);
    }
    engine_outcome_t o = put(e, T0, "s8", 1);
    ASSERT_RESULT(o, ENGINE_SKUS_FULL);
    assert_false(o.created);
    assert_int_equal(engine_sku_count(e), config_small.skus_max);
    uint32_t index;
    assert_false(engine_sku_find(e, "s8", 2, &index));

    o = put(e, T0, "s3", 50);
    ASSERT_RESULT(o, ENGINE_OK);
    assert_false(o.created);
    ASSERT_SKU(e, "s3", 50, 0, 0);
    assert_int_equal(engine_stats(e).skus, config_small.skus_max);
}

/* The sku index starts small and doubles as skus come (rebuilding itself
 * each time); this crosses several doublings up to its full reservation,
 * then finds every sku by name, with its own stock, and no other name. */
static void test_sku_index_grows_and_finds_every_sku(void **state)
{
    (void)state;
    enum { SKUS = 3000 };
    const engine_config_t config = {.skus_max = SKUS, .holds_max = 16, .idem_keys_max = 8};
    engine_t *e = calloc(1, sizeof *e);
    assert_non_null(e);
    assert_int_equal(engine_init(e, &config, T0), 0);
    char name[24];
    for (uint32_t i = 0; i < SKUS; i++) {
        snprintf(name, sizeof name, "grow-%u", i);
        engine_op_t op = op_sku_put(T0, name, i + 1);
        engine_outcome_t o = engine_apply(e, &op); /* engine_check once, below */
        ASSERT_RESULT(o, ENGINE_OK);
        assert_true(o.created);
        assert_int_equal(o.sku_index, i);
    }
    assert_true(engine_check(e));
    for (uint32_t i = 0; i < SKUS; i++) {
        snprintf(name, sizeof name, "grow-%u", i);
        uint32_t index = UINT32_MAX;
        assert_true(engine_sku_find(e, name, strlen(name), &index));
        assert_int_equal(index, i);
        engine_sku_view_t v;
        engine_sku_view(e, index, &v);
        assert_int_equal(v.stock, i + 1);
        assert_int_equal(v.sku_len, strlen(name));
        assert_memory_equal(v.sku, name, v.sku_len);
    }
    uint32_t index;
    assert_false(engine_sku_find(e, "grow-3000", 9, &index));
    assert_false(engine_sku_find(e, "grow-", 5, &index));
    engine_op_t op = op_sku_put(T0, "one-too-many", 1);
    ASSERT_RESULT(engine_apply(e, &op), ENGINE_SKUS_FULL);
    engine_deinit(e);
    free(e);
}

/* ---- creating holds ---- */

static void test_hold_create_holds_every_line(void **state)
{
    engine_t *e = *state;
    uint32_t a = put_ok(e, T0, "a", 10);
    uint32_t b = put_ok(e, T0, "b", 5);
    int64_t t = T0 + 100;
    uint64_t id = hold_ok(e, t, "u-42", TTL_LONG_MS, NULL, LINES({"a", 2}, {"b", 1}));

    engine_hold_view_t v = hold_view(e, id);
    assert_int_equal(v.state, ENGINE_HOLD_ACTIVE);
    assert_int_equal(v.customer_len, 4);
    assert_memory_equal(v.customer, "u-42", 4);
    assert_int_equal(v.created_ms, t);
    assert_int_equal(v.expires_ms, t + TTL_LONG_MS);
    assert_int_equal(v.finished_ms, 0);
    assert_int_equal(v.line_count, 2);
    assert_int_equal(v.lines[0].sku_index, a);
    assert_int_equal(v.lines[0].qty, 2);
    assert_int_equal(v.lines[1].sku_index, b);
    assert_int_equal(v.lines[1].qty, 1);

    ASSERT_SKU(e, "a", 10, 2, 0);
    ASSERT_SKU(e, "b", 5, 1, 0);
    engine_stats_t s = engine_stats(e);
    assert_int_equal(s.holds_created, 1);
    assert_int_equal(s.holds_active, 1);
    assert_int_equal(s.holds_retained, 0);
    assert_int_equal(s.units_held, 3);
    assert_true(engine_next_expiry_ms(e) == t + TTL_LONG_MS);
}

static void test_hold_ids_are_distinct_and_nonzero(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 100);
    uint64_t ids[16];
    for (int i = 0; i < 16; i++) {
        ids[i] = hold_ok(e, T0 + i, "u", TTL_LONG_MS, NULL, LINES({"a", 1}));
        for (int j = 0; j < i; j++) {
            assert_true(ids[i] != ids[j]);
        }
    }
}

static void test_hold_on_an_unknown_sku_holds_nothing(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 10);
    engine_outcome_t o = hold(e, T0, "u", TTL_LONG_MS, NULL, LINES({"a", 1}, {"nope", 1}));
    ASSERT_RESULT(o, ENGINE_SKU_NOT_FOUND);
    o = hold(e, T0, "u", TTL_LONG_MS, NULL, LINES({"nope", 1}, {"a", 1}));
    ASSERT_RESULT(o, ENGINE_SKU_NOT_FOUND);
    ASSERT_SKU(e, "a", 10, 0, 0);
    engine_stats_t s = engine_stats(e);
    assert_int_equal(s.holds_created, 0);
    assert_int_equal(s.holds_active, 0);
    assert_int_equal(engine_sku_count(e), 1);
}

static void test_hold_is_all_or_nothing_across_lines(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 10);
    uint32_t b = put_ok(e, T0, "b", 1);
    put_ok(e, T0, "c", 10);

    engine_outcome_t o = hold(e, T0, "u", TTL_LONG_MS, NULL, LINES({"a", 2}, {"b", 2}, {"c", 2}));
    ASSERT_RESULT(o, ENGINE_INSUFFICIENT_STOCK);
    assert_int_equal(o.sku_index, b);
    assert_int_equal(o.available, 1);
    ASSERT_SKU(e, "a", 10, 0, 0);
    ASSERT_SKU(e, "b", 1, 0, 0);
    ASSERT_SKU(e, "c", 10, 0, 0);
    assert_int_equal(engine_stats(e).holds_created, 0);

    hold_ok(e, T0, "u", TTL_LONG_MS, NULL, LINES({"a", 2}, {"b", 1}, {"c", 2}));
    o = hold(e, T0, "u", TTL_LONG_MS, NULL, LINES({"c", 1}, {"b", 1}));
    ASSERT_RESULT(o, ENGINE_INSUFFICIENT_STOCK);
    assert_int_equal(o.sku_index, b);
    assert_int_equal(o.available, 0);
    ASSERT_SKU(e, "c", 10, 2, 0);
}

static void test_available_counts_held_and_sold_units(void **state)
{
    engine_t *e = *state;
    uint32_t a = put_ok(e, T0, "a", 10);
    hold_ok(e, T0, "u", TTL_LONG_MS, NULL, LINES({"a", 4}));
    uint64_t sold = hold_ok(e, T0, "u", TTL_LONG_MS, NULL, LINES({"a", 3}));
    ASSERT_RESULT(commit(e, T0, sold), ENGINE_OK);

    engine_outcome_t o = hold(e, T0, "u", TTL_LONG_MS, NULL, LINES({"a", 4}));
    ASSERT_RESULT(o, ENGINE_INSUFFICIENT_STOCK);
    assert_int_equal(o.sku_index, a);
    assert_int_equal(o.available, 3);
    /* Exactly what is available can be held, and then nothing more. */
    hold_ok(e, T0, "u", TTL_LONG_MS, NULL, LINES({"a", 3}));
    o = hold(e, T0, "u", TTL_LONG_MS, NULL, LINES({"a", 1}));
    ASSERT_RESULT(o, ENGINE_INSUFFICIENT_STOCK);
    assert_int_equal(o.available, 0);
    ASSERT_SKU(e, "a", 10, 7, 3);
}

static void test_duplicate_sku_lines_are_refused(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 10);
    put_ok(e, T0, "b", 10);
    ASSERT_RESULT(hold(e, T0, "u", TTL_LONG_MS, NULL, LINES({"a", 1}, {"b", 1}, {"a", 1})),
                  ENGINE_DUPLICATE_LINE);
    ASSERT_RESULT(hold(e, T0, "u", TTL_LONG_MS, NULL, LINES({"b", 1}, {"b", 1})),
                  ENGINE_DUPLICATE_LINE);
    ASSERT_SKU(e, "a", 10, 0, 0);
    ASSERT_SKU(e, "b", 10, 0, 0);
    assert_int_equal(engine_stats(e).holds_created, 0);
}

#define NAME_BYTES 16
static void fill_64_lines(line_t *lines, char names[][NAME_BYTES])
{
    for (unsigned i = 0; i < HF_LINES_PER_HOLD_MAX; i++) {
        snprintf(names[i], NAME_BYTES, "s%02u", i);
        lines[i].sku = names[i];
        lines[i].qty = (uint32_t)(i + 1);
    }
}

static void test_hold_takes_64_lines_all_or_nothing(void **state)
{
    engine_t *e = *state;
    char names[HF_LINES_PER_HOLD_MAX][NAME_BYTES];
    line_t lines[HF_LINES_PER_HOLD_MAX];
    fill_64_lines(lines, names);
    uint32_t index[HF_LINES_PER_HOLD_MAX];
    for (int i = 0; i < HF_LINES_PER_HOLD_MAX; i++) {
        index[i] = put_ok(e, T0, names[i], HF_QTY_MAX);
    }
    put_ok(e, T0, "s63", 63);

    /* The last of 64 lines is short: nothing is held on the other 63. */
    engine_outcome_t o = hold(e, T0, "u", TTL_LONG_MS, NULL, HF_LINES_PER_HOLD_MAX, lines);
    ASSERT_RESULT(o, ENGINE_INSUFFICIENT_STOCK);
    assert_int_equal(o.sku_index, index[63]);
    assert_int_equal(o.available, 63);
    /* The last of 64 lines repeats the first. */
    lines[63].sku = names[0];
    ASSERT_RESULT(hold(e, T0, "u", TTL_LONG_MS, NULL, HF_LINES_PER_HOLD_MAX, lines),
                  ENGINE_DUPLICATE_LINE);
    for (int i = 0; i < HF_LINES_PER_HOLD_MAX; i++) {
        assert_int_equal(sku_view(e, names[i]).held, 0);
    }

    lines[63].sku = names[63];
    lines[63].qty = 63;
    lines[10].qty = (uint32_t)HF_QTY_MAX;
    uint64_t id = hold_ok(e, T0, "u", TTL_LONG_MS, NULL, HF_LINES_PER_HOLD_MAX, lines);
    engine_hold_view_t v = hold_view(e, id);
    assert_int_equal(v.line_count, HF_LINES_PER_HOLD_MAX);
    for (int i = 0; i < HF_LINES_PER_HOLD_MAX; i++) {
        assert_int_equal(v.lines[i].sku_index, index[i]);
        assert_int_equal(v.lines[i].qty, lines[i].qty);
        assert_int_equal(sku_view(e, names[i]).held, lines[i].qty);
    }
    ASSERT_SKU(e, "s10", HF_QTY_MAX, HF_QTY_MAX, 0);

    ASSERT_RESULT(commit(e, T0 + 1, id), ENGINE_OK);
    v = hold_view(e, id);
    assert_int_equal(v.line_count, HF_LINES_PER_HOLD_MAX);
    for (int i = 0; i < HF_LINES_PER_HOLD_MAX; i++) {
        assert_int_equal(v.lines[i].qty, lines[i].qty);
        engine_sku_view_t sv = sku_view(e, names[i]);
        assert_int_equal(sv.held, 0);
        assert_int_equal(sv.sold, lines[i].qty);
    }
}

static void test_line_pool_exhaustion_is_an_error_not_a_crash(void **state)
{
    engine_t *e = *state;
    char names[HF_LINES_PER_HOLD_MAX][NAME_BYTES];
    line_t lines[HF_LINES_PER_HOLD_MAX];
    fill_64_lines(lines, names);
    for (int i = 0; i < HF_LINES_PER_HOLD_MAX; i++) {
        lines[i].qty = 1;
        put_ok(e, T0, names[i], HF_QTY_MAX);
    }
    uint64_t ids[16];
    uint32_t made = 0;
    engine_result_t last = ENGINE_OK;
    for (;;) {
        engine_outcome_t o = hold(e, T0, "u", TTL_LONG_MS, NULL, HF_LINES_PER_HOLD_MAX, lines);
        last = o.result;
        if (o.result != ENGINE_OK) {
            break;
        }
        if (made == config_wide.holds_max) {
            fail_msg("more active holds than holds_max");
        }
        ids[made++] = o.hold_id;
    }
    assert_true(last == ENGINE_LINES_FULL || last == ENGINE_HOLDS_FULL);
    assert_int_equal(sku_view(e, "s00").held, made);
    assert_int_equal(engine_stats(e).holds_active, made);
    if (last == ENGINE_LINES_FULL) {
        /* A one-line hold needs no pooled line: it still fits. */
        assert_true(made < config_wide.holds_max);
        hold_ok(e, T0, "u", TTL_LONG_MS, NULL, LINES({"s00", 1}));
    } else {
        assert_int_equal(made, config_wide.holds_max);
    }

    /* Once the finished holds are forgotten, their lines are free again. */
    for (uint32_t i = 0; i < made; i++) {
        ASSERT_RESULT(release(e, T0 + 1, ids[i]), ENGINE_OK);
    }
    advance(e, T0 + 1 + HOLD_RETENTION_MS + TTL_LONG_MS);
    assert_int_equal(engine_stats(e).holds_retained, 0);
    assert_int_equal(engine_stats(e).holds_active, 0);
    hold_ok(e, T0 + 2 + HOLD_RETENTION_MS + TTL_LONG_MS, "u", TTL_LONG_MS, NULL,
            HF_LINES_PER_HOLD_MAX, lines);
}

/* Every slot holds a finished two-line hold, so every pooled chunk belongs to
 * a finished hold. A new two-line hold evicts the oldest of them for its slot,
 * and with it that hold's chunk: there is room for its lines too. */
static void test_a_table_of_finished_holds_makes_room_for_lines_too(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 100);
    put_ok(e, T0, "b", 100);
    uint64_t ids[16];
    for (uint32_t i = 0; i < config_small.holds_max; i++) {
        ids[i] = hold_ok(e, T0, "u", TTL_LONG_MS, NULL, LINES({"a", 1}, {"b", 1}));
    }
    for (uint32_t i = 0; i < config_small.holds_max; i++) {
        ASSERT_RESULT(release(e, T0 + 1 + i, ids[i]), ENGINE_OK);
    }
    assert_int_equal(engine_stats(e).holds_active, 0);
    engine_outcome_t o = hold(e, T0 + 100, "u", TTL_LONG_MS, NULL, LINES({"a", 1}, {"b", 1}));
    ASSERT_RESULT(o, ENGINE_OK);
    assert_false(hold_known(e, ids[0]));
    assert_true(hold_known(e, ids[1]));
    ASSERT_SKU(e, "a", 100, 1, 0);
    ASSERT_SKU(e, "b", 100, 1, 0);
}

/* ---- commit and release ---- */

static void test_commit_moves_held_units_to_sold(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 10);
    put_ok(e, T0, "b", 4);
    uint64_t id = hold_ok(e, T0, "u", 5000, NULL, LINES({"a", 3}, {"b", 4}));
    engine_outcome_t o = commit(e, T0 + 500, id);
    ASSERT_RESULT(o, ENGINE_OK);
    assert_true(o.changed);

    engine_hold_view_t v = hold_view(e, id);
    assert_int_equal(v.state, ENGINE_HOLD_COMMITTED_STATE);
    assert_int_equal(v.finished_ms, T0 + 500);
    assert_int_equal(v.expires_ms, T0 + 5000);
    ASSERT_SKU(e, "a", 10, 0, 3);
    ASSERT_SKU(e, "b", 4, 0, 4);
    engine_stats_t s = engine_stats(e);
    assert_int_equal(s.holds_committed, 1);
    assert_int_equal(s.holds_active, 0);
    assert_int_equal(s.holds_retained, 1);
    assert_int_equal(s.units_held, 0);
    assert_int_equal(s.units_sold, 7);
    assert_true(engine_next_expiry_ms(e) == INT64_MAX);

    /* Its expiry time passing does nothing to a committed hold. */
    assert_int_equal(advance(e, T0 + 5000), 0);
    ASSERT_STATE(e, id, ENGINE_HOLD_COMMITTED_STATE);
    ASSERT_SKU(e, "a", 10, 0, 3);
}

/* The order a sale belongs to stays with the hold, and goes when it does;
 * committing again does not replace it. */
static void test_commit_keeps_its_order_ref_until_the_hold_is_forgotten(void **state)
{
    engine_t *e = *state;
    put(e, T0, "a", 10);
    uint64_t id = hold_ok(e, T0, "u", TTL_LONG_MS, NULL, LINES({"a", 2}));
    engine_op_t commit = op_on_hold(ENGINE_OP_HOLD_COMMIT, T0 + 1, id, 0);
    memcpy(commit.u.hold.order_ref, "o-9", 3);
    commit.u.hold.order_ref_len = 3;
    assert_true(apply(e, &commit).changed);
    assert_int_equal(e->name_count, 1);
    memcpy(commit.u.hold.order_ref, "o-X", 3);
    assert_false(apply(e, &commit).changed);
    engine_hold_view_t v;
    assert_int_equal(engine_hold_view(e, id, &v), ENGINE_OK);
    assert_int_equal(v.order_ref_len, 3);
    assert_memory_equal(v.order_ref, "o-9", 3);
    /* A commit without one shows none. */
    uint64_t plain = hold_ok(e, T0 + 2, "u", TTL_LONG_MS, NULL, LINES({"a", 1}));
    engine_op_t bare = op_on_hold(ENGINE_OP_HOLD_COMMIT, T0 + 3, plain, 0);
    apply(e, &bare);
    assert_int_equal(engine_hold_view(e, plain, &v), ENGINE_OK);
    assert_null(v.order_ref);
    assert_int_equal(v.order_ref_len, 0);
    advance(e, T0 + 3 + HF_FINISHED_RETENTION_MS);
    assert_int_equal(e->name_count, 0);
}

static void test_commit_twice_is_ok_and_changes_nothing(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 10);
    uint64_t id = hold_ok(e, T0, "u", 5000, NULL, LINES({"a", 3}));
    ASSERT_RESULT(commit(e, T0 + 1, id), ENGINE_OK);
    engine_outcome_t o = commit(e, T0 + 2, id);
    ASSERT_RESULT(o, ENGINE_OK);
    assert_false(o.changed);
    assert_int_equal(hold_view(e, id).finished_ms, T0 + 1);
    ASSERT_SKU(e, "a", 10, 0, 3);
    assert_int_equal(engine_stats(e).holds_committed, 1);
    /* Still so after its expiry time. */
    o = commit(e, T0 + 9000, id);
    ASSERT_RESULT(o, ENGINE_OK);
    assert_false(o.changed);
    ASSERT_SKU(e, "a", 10, 0, 3);
}

static void test_commit_at_the_last_millisecond_succeeds(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 10);
    uint64_t id = hold_ok(e, T0, "u", 5000, NULL, LINES({"a", 3}));
    ASSERT_RESULT(commit(e, T0 + 5000 - 1, id), ENGINE_OK);
    ASSERT_SKU(e, "a", 10, 0, 3);
}

static void test_commit_of_an_expired_hold_is_refused(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 10);
    uint64_t id = hold_ok(e, T0, "u", 5000, NULL, LINES({"a", 3}));
    /* No advance in between: the commit's own apply expires it first. */
    ASSERT_RESULT(commit(e, T0 + 5000, id), ENGINE_HOLD_EXPIRED);
    ASSERT_STATE(e, id, ENGINE_HOLD_EXPIRED_STATE);
    ASSERT_SKU(e, "a", 10, 0, 0);
    engine_stats_t s = engine_stats(e);
    assert_int_equal(s.holds_expired, 1);
    assert_int_equal(s.holds_committed, 0);
    ASSERT_RESULT(commit(e, T0 + 6000, id), ENGINE_HOLD_EXPIRED);
}

static void test_commit_of_a_released_hold_is_refused(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 10);
    uint64_t id = hold_ok(e, T0, "u", 5000, NULL, LINES({"a", 3}));
    ASSERT_RESULT(release(e, T0 + 1, id), ENGINE_OK);
    ASSERT_RESULT(commit(e, T0 + 2, id), ENGINE_HOLD_RELEASED);
    ASSERT_STATE(e, id, ENGINE_HOLD_RELEASED_STATE);
    ASSERT_SKU(e, "a", 10, 0, 0);
    assert_int_equal(engine_stats(e).holds_committed, 0);
}

static void test_release_returns_units_and_repeating_it_is_harmless(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 10);
    uint64_t id = hold_ok(e, T0, "u", 5000, NULL, LINES({"a", 3}));
    engine_outcome_t o = release(e, T0 + 10, id);
    ASSERT_RESULT(o, ENGINE_OK);
    assert_true(o.changed);
    engine_hold_view_t v = hold_view(e, id);
    assert_int_equal(v.state, ENGINE_HOLD_RELEASED_STATE);
    assert_int_equal(v.finished_ms, T0 + 10);
    ASSERT_SKU(e, "a", 10, 0, 0);
    assert_true(engine_next_expiry_ms(e) == INT64_MAX);

    o = release(e, T0 + 20, id);
    ASSERT_RESULT(o, ENGINE_OK);
    assert_false(o.changed);
    assert_int_equal(hold_view(e, id).finished_ms, T0 + 10);
    engine_stats_t s = engine_stats(e);
    assert_int_equal(s.holds_released, 1);
    assert_int_equal(s.holds_active, 0);
    assert_int_equal(s.holds_retained, 1);
    assert_int_equal(s.units_held, 0);
}

static void test_release_of_a_committed_hold_is_refused(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 10);
    uint64_t id = hold_ok(e, T0, "u", 5000, NULL, LINES({"a", 3}));
    ASSERT_RESULT(commit(e, T0 + 1, id), ENGINE_OK);
    ASSERT_RESULT(release(e, T0 + 2, id), ENGINE_HOLD_COMMITTED);
    ASSERT_STATE(e, id, ENGINE_HOLD_COMMITTED_STATE);
    ASSERT_SKU(e, "a", 10, 0, 3);
    assert_int_equal(engine_stats(e).holds_released, 0);
}

static void test_release_of_an_expired_hold_is_harmless_and_it_stays_expired(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 10);
    uint64_t id = hold_ok(e, T0, "u", 5000, NULL, LINES({"a", 3}));
    engine_outcome_t o = release(e, T0 + 5000, id);
    ASSERT_RESULT(o, ENGINE_OK);
    assert_false(o.changed);
    engine_hold_view_t v = hold_view(e, id);
    assert_int_equal(v.state, ENGINE_HOLD_EXPIRED_STATE);
    assert_int_equal(v.finished_ms, T0 + 5000);
    ASSERT_SKU(e, "a", 10, 0, 0);
    assert_int_equal(engine_stats(e).holds_released, 0);
    assert_int_equal(engine_stats(e).holds_expired, 1);
}

/* ---- extend ---- */

static void test_extend_lengthens_and_never_shortens(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 5);
    uint64_t id = hold_ok(e, T0, "u", 10000, NULL, LINES({"a", 1}));
    engine_outcome_t o = extend(e, T0 + 1000, id, 20000);
    ASSERT_RESULT(o, ENGINE_OK);
    assert_true(o.changed);
    assert_int_equal(hold_view(e, id).expires_ms, T0 + 21000);
    assert_true(engine_next_expiry_ms(e) == T0 + 21000);

    /* now + ttl falls before the current expiry: it stays, nothing changed. */
    o = extend(e, T0 + 2000, id, 5000);
    ASSERT_RESULT(o, ENGINE_OK);
    assert_false(o.changed);
    assert_int_equal(hold_view(e, id).expires_ms, T0 + 21000);
    assert_true(engine_next_expiry_ms(e) == T0 + 21000);

    assert_int_equal(advance(e, T0 + 21000 - 1), 0);
    ASSERT_STATE(e, id, ENGINE_HOLD_ACTIVE);
    assert_int_equal(advance(e, T0 + 21000), 1);
    ASSERT_STATE(e, id, ENGINE_HOLD_EXPIRED_STATE);
    assert_int_equal(hold_view(e, id).finished_ms, T0 + 21000);
    ASSERT_SKU(e, "a", 5, 0, 0);
}

static void test_extend_reorders_the_timer(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 5);
    uint64_t soon = hold_ok(e, T0, "u", 5000, NULL, LINES({"a", 1}));
    uint64_t later = hold_ok(e, T0, "u", 10000, NULL, LINES({"a", 1}));
    uint64_t last = hold_ok(e, T0, "u", 15000, NULL, LINES({"a", 1}));
    assert_true(engine_next_expiry_ms(e) == T0 + 5000);
    ASSERT_RESULT(extend(e, T0 + 1000, soon, 20000), ENGINE_OK);
    assert_true(engine_next_expiry_ms(e) == T0 + 10000);

    assert_int_equal(advance(e, T0 + 10000), 1);
    ASSERT_STATE(e, later, ENGINE_HOLD_EXPIRED_STATE);
    ASSERT_STATE(e, soon, ENGINE_HOLD_ACTIVE);
    assert_true(engine_next_expiry_ms(e) == T0 + 15000);
    assert_int_equal(advance(e, T0 + 15000), 1);
    ASSERT_STATE(e, last, ENGINE_HOLD_EXPIRED_STATE);
    assert_true(engine_next_expiry_ms(e) == T0 + 21000);
    ASSERT_SKU(e, "a", 5, 1, 0);
}

static void test_extend_of_a_finished_hold_is_refused(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 10);
    uint64_t committed = hold_ok(e, T0, "u", 5000, NULL, LINES({"a", 1}));
    uint64_t released = hold_ok(e, T0, "u", 5000, NULL, LINES({"a", 1}));
    uint64_t expired = hold_ok(e, T0, "u", 3000, NULL, LINES({"a", 1}));
    ASSERT_RESULT(commit(e, T0 + 1, committed), ENGINE_OK);
    ASSERT_RESULT(release(e, T0 + 1, released), ENGINE_OK);

    ASSERT_RESULT(extend(e, T0 + 2, committed, 60000), ENGINE_HOLD_COMMITTED);
    ASSERT_RESULT(extend(e, T0 + 2, released, 60000), ENGINE_HOLD_RELEASED);
    /* At the expiry instant it is already too late. */
    ASSERT_RESULT(extend(e, T0 + 3000, expired, 60000), ENGINE_HOLD_EXPIRED);

    assert_int_equal(hold_view(e, committed).expires_ms, T0 + 5000);
    assert_int_equal(hold_view(e, released).expires_ms, T0 + 5000);
    assert_int_equal(hold_view(e, expired).expires_ms, T0 + 3000);
    ASSERT_STATE(e, expired, ENGINE_HOLD_EXPIRED_STATE);
    ASSERT_SKU(e, "a", 10, 0, 1);
    assert_true(engine_next_expiry_ms(e) == INT64_MAX);
}

/* ---- ids that are not there ---- */

static void assert_not_found_everywhere(engine_t *e, int64_t now, uint64_t id)
{
    advance(e, now); /* reads expire and forget nothing by themselves */
    engine_hold_view_t v;
    ASSERT_RESULT((engine_outcome_t){.result = engine_hold_view(e, id, &v)}, ENGINE_HOLD_NOT_FOUND);
    ASSERT_RESULT(commit(e, now, id), ENGINE_HOLD_NOT_FOUND);
    ASSERT_RESULT(release(e, now, id), ENGINE_HOLD_NOT_FOUND);
    ASSERT_RESULT(extend(e, now, id, 5000), ENGINE_HOLD_NOT_FOUND);
}

static void test_unknown_hold_ids_are_not_found(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 10);
    uint64_t id = hold_ok(e, T0, "u", 5000, NULL, LINES({"a", 1}));

    /* Any id that parses is safe to look up, issued or not. */
    const uint64_t guesses[] = {
        id + 1,     id + 2, id - 1,           id + (1ull << 32), id ^ (1ull << 40),
        UINT64_MAX, 1,      (uint64_t)1 << 63};
    for (size_t i = 0; i < sizeof guesses / sizeof guesses[0]; i++) {
        char text[ENGINE_HOLD_ID_TEXT_MAX + 1];
        uint64_t parsed;
        size_t n = engine_hold_id_format(guesses[i], text);
        if (guesses[i] != id && guesses[i] != 0 && engine_hold_id_parse(text, n, &parsed)) {
            assert_not_found_everywhere(e, T0 + 1, guesses[i]);
        }
    }
    ASSERT_STATE(e, id, ENGINE_HOLD_ACTIVE);

    /* A hold forgotten after its retention is not found either. */
    ASSERT_RESULT(release(e, T0 + 2, id), ENGINE_OK);
    assert_not_found_everywhere(e, T0 + 2 + HOLD_RETENTION_MS, id);
    ASSERT_SKU(e, "a", 10, 0, 0);
}

/* ---- expiry ---- */

static void test_hold_expires_to_the_millisecond(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 5);
    const int64_t t = T0 + 100, ttl = 5000;
    uint64_t id = hold_ok(e, t, "u", ttl, NULL, LINES({"a", 3}));

    assert_int_equal(advance(e, t + ttl - 1), 0);
    ASSERT_STATE(e, id, ENGINE_HOLD_ACTIVE);
    ASSERT_SKU(e, "a", 5, 3, 0);

    assert_int_equal(advance(e, t + ttl), 1);
    engine_hold_view_t v = hold_view(e, id);
    assert_int_equal(v.state, ENGINE_HOLD_EXPIRED_STATE);
    assert_int_equal(v.finished_ms, t + ttl);
    ASSERT_SKU(e, "a", 5, 0, 0);
    engine_stats_t s = engine_stats(e);
    assert_int_equal(s.holds_expired, 1);
    assert_int_equal(s.holds_active, 0);
    assert_int_equal(s.holds_retained, 1);
    assert_true(engine_next_expiry_ms(e) == INT64_MAX);
}

static void test_expired_units_are_available_within_the_same_apply(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 5);
    uint64_t first = hold_ok(e, T0, "u1", 5000, NULL, LINES({"a", 5}));
    engine_outcome_t o = hold(e, T0 + 5000 - 1, "u2", 5000, NULL, LINES({"a", 1}));
    ASSERT_RESULT(o, ENGINE_INSUFFICIENT_STOCK);
    assert_int_equal(o.available, 0);
    uint64_t second = hold_ok(e, T0 + 5000, "u2", 5000, NULL, LINES({"a", 5}));
    ASSERT_STATE(e, first, ENGINE_HOLD_EXPIRED_STATE);
    ASSERT_STATE(e, second, ENGINE_HOLD_ACTIVE);
    ASSERT_SKU(e, "a", 5, 5, 0);
}

static void test_expired_hold_finished_at_its_expiry_not_when_noticed(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 5);
    uint64_t id = hold_ok(e, T0, "u", 5000, NULL, LINES({"a", 1}));
    assert_int_equal(advance(e, T0 + 9000), 1);
    engine_hold_view_t v = hold_view(e, id);
    assert_int_equal(v.state, ENGINE_HOLD_EXPIRED_STATE);
    assert_int_equal(v.finished_ms, T0 + 5000);
    /* So its retention runs from its expiry too. */
    advance(e, T0 + 5000 + HOLD_RETENTION_MS - 1);
    assert_true(hold_known(e, id));
    advance(e, T0 + 5000 + HOLD_RETENTION_MS);
    assert_false(hold_known(e, id));
}

static void test_advance_expires_what_is_due_and_nothing_else(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 10);
    uint64_t h1 = hold_ok(e, T0, "u", 1000, NULL, LINES({"a", 1}));
    uint64_t h2 = hold_ok(e, T0, "u", 2000, NULL, LINES({"a", 1}));
    uint64_t h3 = hold_ok(e, T0, "u", 2000, NULL, LINES({"a", 1}));
    uint64_t h4 = hold_ok(e, T0, "u", 3000, NULL, LINES({"a", 1}));
    assert_int_equal(advance(e, T0 + 999), 0);
    assert_int_equal(advance(e, T0 + 1999), 1);
    ASSERT_STATE(e, h1, ENGINE_HOLD_EXPIRED_STATE);
    ASSERT_SKU(e, "a", 10, 3, 0);
    assert_int_equal(advance(e, T0 + 2000), 2);
    ASSERT_STATE(e, h2, ENGINE_HOLD_EXPIRED_STATE);
    ASSERT_STATE(e, h3, ENGINE_HOLD_EXPIRED_STATE);
    ASSERT_STATE(e, h4, ENGINE_HOLD_ACTIVE);
    assert_int_equal(advance(e, T0 + 2000), 0);
    assert_true(engine_next_expiry_ms(e) == T0 + 3000);
    assert_int_equal(advance(e, T0 + 100000), 1);
    assert_int_equal(engine_stats(e).holds_expired, 4);
    ASSERT_SKU(e, "a", 10, 0, 0);
}

static void test_next_expiry_is_the_earliest_active_hold(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 10);
    assert_true(engine_next_expiry_ms(e) == INT64_MAX);
    uint64_t late = hold_ok(e, T0, "u", 3000, NULL, LINES({"a", 1}));
    assert_true(engine_next_expiry_ms(e) == T0 + 3000);
    uint64_t early = hold_ok(e, T0 + 10, "u", 1000, NULL, LINES({"a", 1}));
    assert_true(engine_next_expiry_ms(e) == T0 + 1010);
    ASSERT_RESULT(commit(e, T0 + 20, early), ENGINE_OK);
    assert_true(engine_next_expiry_ms(e) == T0 + 3000);
    ASSERT_RESULT(release(e, T0 + 30, late), ENGINE_OK);
    assert_true(engine_next_expiry_ms(e) == INT64_MAX);
}

/* ---- retention, eviction, capacity ---- */

static void test_finished_holds_are_forgotten_after_retention(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 10);
    uint64_t released = hold_ok(e, T0, "u", 5000, NULL, LINES({"a", 1}));
    uint64_t committed = hold_ok(e, T0, "u", 5000, NULL, LINES({"a", 2}));
    ASSERT_RESULT(release(e, T0 + 100, released), ENGINE_OK);
    ASSERT_RESULT(commit(e, T0 + 200, committed), ENGINE_OK);

    advance(e, T0 + 100 + HOLD_RETENTION_MS - 1);
    assert_true(hold_known(e, released));
    advance(e, T0 + 100 + HOLD_RETENTION_MS);
    assert_false(hold_known(e, released));
    assert_true(hold_known(e, committed));
    engine_stats_t s = engine_stats(e);
    assert_int_equal(s.holds_evicted, 1);
    assert_int_equal(s.holds_retained, 1);

    advance(e, T0 + 200 + HOLD_RETENTION_MS);
    assert_false(hold_known(e, committed));
    s = engine_stats(e);
    assert_int_equal(s.holds_evicted, 2);
    assert_int_equal(s.holds_retained, 0);
    /* Forgetting a hold forgets no sale. */
    ASSERT_SKU(e, "a", 10, 0, 2);
}

static void test_holds_full_only_when_every_slot_is_active(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 100);
    uint64_t ids[16];
    for (uint32_t i = 0; i < config_small.holds_max; i++) {
        ids[i] = hold_ok(e, T0, "u", TTL_LONG_MS, NULL, LINES({"a", 1}));
    }
    engine_outcome_t o = hold(e, T0, "u", TTL_LONG_MS, NULL, LINES({"a", 1}));
    ASSERT_RESULT(o, ENGINE_HOLDS_FULL);
    ASSERT_SKU(e, "a", 100, 16, 0);
    assert_int_equal(engine_stats(e).holds_active, 16);

    /* One finished hold makes room: its slot is taken, its id forgotten. */
    ASSERT_RESULT(release(e, T0 + 1, ids[7]), ENGINE_OK);
    uint64_t fresh = hold_ok(e, T0 + 2, "u", TTL_LONG_MS, NULL, LINES({"a", 1}));
    assert_false(hold_known(e, ids[7]));
    ASSERT_STATE(e, fresh, ENGINE_HOLD_ACTIVE);
    engine_stats_t s = engine_stats(e);
    assert_int_equal(s.holds_evicted, 1);
    assert_int_equal(s.holds_active, 16);
    assert_int_equal(s.holds_retained, 0);
    ASSERT_SKU(e, "a", 100, 16, 0);
    ASSERT_RESULT(hold(e, T0 + 3, "u", TTL_LONG_MS, NULL, LINES({"a", 1})), ENGINE_HOLDS_FULL);
}

static void test_a_full_table_evicts_the_oldest_finished_hold_first(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 100);
    uint64_t ids[16];
    for (uint32_t i = 0; i < config_small.holds_max; i++) {
        ids[i] = hold_ok(e, T0, "u", (i == 12) ? 1000 : TTL_LONG_MS, NULL, LINES({"a", 1}));
    }
    /* Finish them out of slot order: 5, 2 (committed), 12 (expired), 9. */
    ASSERT_RESULT(release(e, T0 + 10, ids[5]), ENGINE_OK);
    ASSERT_RESULT(commit(e, T0 + 20, ids[2]), ENGINE_OK);
    assert_int_equal(advance(e, T0 + 1000), 1);
    ASSERT_RESULT(release(e, T0 + 1030, ids[9]), ENGINE_OK);
    const int order[] = {5, 2, 12, 9};

    for (int k = 0; k < 4; k++) {
        hold_ok(e, T0 + 2000 + k, "u", TTL_LONG_MS, NULL, LINES({"a", 1}));
        for (int j = 0; j < 4; j++) {
            assert_int_equal(hold_known(e, ids[order[j]]), j > k);
        }
        assert_int_equal(engine_stats(e).holds_evicted, (uint64_t)k + 1);
    }
    for (uint32_t i = 0; i < config_small.holds_max; i++) {
        bool finished = i == 5 || i == 2 || i == 12 || i == 9;
        assert_int_equal(hold_known(e, ids[i]), !finished);
    }
    ASSERT_SKU(e, "a", 100, 16, 1);
    ASSERT_RESULT(hold(e, T0 + 3000, "u", TTL_LONG_MS, NULL, LINES({"a", 1})), ENGINE_HOLDS_FULL);
}

/* ---- idempotency ---- */

static void test_idempotent_retry_is_replayed_and_applied_once(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 10);
    uint64_t id = hold_ok(e, T0, "u1", TTL_LONG_MS, "key-1", LINES({"a", 3}));
    engine_outcome_t o = hold(e, T0 + 100, "u1", TTL_LONG_MS, "key-1", LINES({"a", 3}));
    ASSERT_RESULT(o, ENGINE_OK);
    assert_true(o.replayed);
    assert_false(o.changed);
    assert_true(o.hold_id == id);
    ASSERT_SKU(e, "a", 10, 3, 0);
    engine_stats_t s = engine_stats(e);
    assert_int_equal(s.holds_created, 1);
    assert_int_equal(s.holds_active, 1);
    assert_int_equal(s.idem_replays, 1);
    assert_int_equal(s.idem_keys, 1);
}

static void test_replay_gives_the_same_answer_after_the_hold_finished(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 3);
    uint64_t id = hold_ok(e, T0, "u1", TTL_LONG_MS, "key-1", LINES({"a", 3}));
    ASSERT_RESULT(release(e, T0 + 1, id), ENGINE_OK);
    /* The stock is gone; the answer is still the hold that was made. */
    put_ok(e, T0 + 2, "a", 0);
    engine_outcome_t o = hold(e, T0 + 3, "u1", TTL_LONG_MS, "key-1", LINES({"a", 3}));
    ASSERT_RESULT(o, ENGINE_OK);
    assert_true(o.replayed);
    assert_true(o.hold_id == id);
    ASSERT_STATE(e, id, ENGINE_HOLD_RELEASED_STATE);
    ASSERT_SKU(e, "a", 0, 0, 0);
    assert_int_equal(engine_stats(e).holds_created, 1);
}

static void test_same_key_with_another_request_is_a_mismatch(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 10);
    put_ok(e, T0, "b", 10);
    uint64_t id = hold_ok(e, T0, "u1", TTL_LONG_MS, "key-1", LINES({"a", 3}));
    ASSERT_RESULT(hold(e, T0 + 1, "u1", TTL_LONG_MS, "key-1", LINES({"a", 4})),
                  ENGINE_IDEMPOTENCY_MISMATCH);
    ASSERT_RESULT(hold(e, T0 + 1, "u2", TTL_LONG_MS, "key-1", LINES({"a", 3})),
                  ENGINE_IDEMPOTENCY_MISMATCH);
    ASSERT_RESULT(hold(e, T0 + 1, "u1", TTL_LONG_MS, "key-1", LINES({"b", 3})),
                  ENGINE_IDEMPOTENCY_MISMATCH);
    ASSERT_RESULT(hold(e, T0 + 1, "u1", TTL_LONG_MS, "key-1", LINES({"a", 3}, {"b", 1})),
                  ENGINE_IDEMPOTENCY_MISMATCH);
    ASSERT_SKU(e, "a", 10, 3, 0);
    ASSERT_SKU(e, "b", 10, 0, 0);
    engine_stats_t s = engine_stats(e);
    assert_int_equal(s.holds_created, 1);
    assert_int_equal(s.idem_replays, 0);
    /* The key still answers its own request. */
    engine_outcome_t o = hold(e, T0 + 2, "u1", TTL_LONG_MS, "key-1", LINES({"a", 3}));
    assert_true(o.replayed);
    assert_true(o.hold_id == id);
}

static void test_a_failed_create_stores_no_key(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 2);
    ASSERT_RESULT(hold(e, T0, "u1", TTL_LONG_MS, "key-1", LINES({"a", 3})),
                  ENGINE_INSUFFICIENT_STOCK);
    ASSERT_RESULT(hold(e, T0, "u1", TTL_LONG_MS, "key-2", LINES({"nope", 1})),
                  ENGINE_SKU_NOT_FOUND);
    assert_int_equal(engine_stats(e).idem_keys, 0);

    /* So the keys are free for another request, which is then remembered. */
    engine_outcome_t o = hold(e, T0 + 1, "u1", TTL_LONG_MS, "key-1", LINES({"a", 2}));
    ASSERT_RESULT(o, ENGINE_OK);
    assert_false(o.replayed);
    uint64_t id = o.hold_id;
    o = hold(e, T0 + 2, "u1", TTL_LONG_MS, "key-1", LINES({"a", 2}));
    ASSERT_RESULT(o, ENGINE_OK);
    assert_true(o.replayed);
    assert_true(o.hold_id == id);
    assert_int_equal(engine_stats(e).idem_keys, 1);
    ASSERT_SKU(e, "a", 2, 2, 0);
}

static void test_idempotency_key_is_forgotten_after_retention(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 10);
    const int64_t t = T0 + 1000;
    uint64_t id = hold_ok(e, t, "u1", 1000, "key-1", LINES({"a", 1}));

    engine_outcome_t o = hold(e, t + IDEM_RETENTION_MS - 1, "u1", 1000, "key-1", LINES({"a", 1}));
    ASSERT_RESULT(o, ENGINE_OK);
    assert_true(o.replayed);
    assert_true(o.hold_id == id);
    assert_int_equal(engine_stats(e).idem_keys, 1);

    o = hold(e, t + IDEM_RETENTION_MS, "u1", 1000, "key-1", LINES({"a", 1}));
    ASSERT_RESULT(o, ENGINE_OK);
    assert_false(o.replayed);
    assert_true(o.changed);
    assert_true(o.hold_id != id);
    ASSERT_SKU(e, "a", 10, 1, 0);
    engine_stats_t s = engine_stats(e);
    assert_int_equal(s.holds_created, 2);
    assert_int_equal(s.idem_keys, 1);
}

static void test_idempotency_table_full_of_young_keys_refuses_new_keys(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 1000);
    char key[16];
    uint64_t ids[8];
    for (int i = 0; i < 8; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        ids[i] = hold_ok(e, T0 + i, "u", 1000, key, LINES({"a", 1}));
    }
    assert_int_equal(engine_stats(e).idem_keys, 8);
    ASSERT_RESULT(hold(e, T0 + 8, "u", 1000, "key-8", LINES({"a", 1})), ENGINE_IDEM_FULL);
    ASSERT_SKU(e, "a", 1000, 8, 0);
    assert_int_equal(engine_stats(e).holds_created, 8);

    /* Without a key, or with a key it knows, it still answers. */
    hold_ok(e, T0 + 8, "u", 1000, NULL, LINES({"a", 1}));
    engine_outcome_t o = hold(e, T0 + 8, "u", 1000, "key-3", LINES({"a", 1}));
    assert_true(o.replayed);
    assert_true(o.hold_id == ids[3]);

    /* A day after key-0, its place is free; key-1 is a millisecond younger. */
    hold_ok(e, T0 + IDEM_RETENTION_MS, "u", 1000, "key-8", LINES({"a", 1}));
    ASSERT_RESULT(hold(e, T0 + IDEM_RETENTION_MS, "u", 1000, "key-9", LINES({"a", 1})),
                  ENGINE_IDEM_FULL);
    /* key-0 was forgotten: it is a new key now, and there is no room. */
    ASSERT_RESULT(hold(e, T0 + IDEM_RETENTION_MS, "u", 1000, "key-0", LINES({"a", 1})),
                  ENGINE_IDEM_FULL);
    assert_int_equal(engine_stats(e).idem_keys, 8);
    hold_ok(e, T0 + IDEM_RETENTION_MS + 1, "u", 1000, "key-9", LINES({"a", 1}));
}

static void test_request_hash_ignores_bytes_past_the_lengths(void **state)
{
    (void)state;
    engine_op_t x = op_hold_create(T0, "u1", 5000, "k", LINES({"a", 1}, {"bb", 2}));
    engine_op_t y;
    memset(&y, 0xA5, sizeof y);
    engine_hold_create_t *c = &y.u.hold_create;
    memcpy(c->customer, "u1", 2);
    c->customer_len = 2;
    memcpy(c->idem_key, "k", 1);
    c->idem_key_len = 1;
    c->ip_len = 0;
    c->fingerprint_len = 0;
    c->ttl_ms = 5000;
    c->hold_id = 0;
    c->line_count = 2;
    memcpy(c->lines[0].sku, "a", 1);
    c->lines[0].sku_len = 1;
    c->lines[0].qty = 1;
    memcpy(c->lines[1].sku, "bb", 2);
    c->lines[1].sku_len = 2;
    c->lines[1].qty = 2;
    assert_true(engine_hold_request_hash(&x.u.hold_create) ==
                engine_hold_request_hash(&y.u.hold_create));
}

static void test_request_hash_tells_requests_apart(void **state)
{
    (void)state;
    engine_op_t base = op_hold_create(T0, "u1", 5000, "k", LINES({"a", 1}, {"b", 2}));
    uint64_t h = engine_hold_request_hash(&base.u.hold_create);
    engine_op_t other[] = {
        op_hold_create(T0, "u2", 5000, "k", LINES({"a", 1}, {"b", 2})),
        op_hold_create(T0, "u1", 5000, "k", LINES({"a", 2}, {"b", 2})),
        op_hold_create(T0, "u1", 5000, "k", LINES({"a", 1}, {"c", 2})),
        op_hold_create(T0, "u1", 5000, "k", LINES({"a", 1})),
        op_hold_create(T0, "u1", 5000, "k", LINES({"a", 1}, {"b", 2}, {"c", 1})),
        op_hold_create(T0, "u1", 5000, "k", LINES({"ab", 1}, {"b", 2})),
    };
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        assert_true(engine_hold_request_hash(&other[i].u.hold_create) != h);
    }
}

/* ---- hold ids as text ---- */

static void assert_id_round_trips(uint64_t id)
{
    char text[ENGINE_HOLD_ID_TEXT_MAX + 8];
    memset(text, 'X', sizeof text);
    size_t n = engine_hold_id_format(id, text);
    assert_true(n > 2 && n <= ENGINE_HOLD_ID_TEXT_MAX);
    assert_int_equal(text[n], '\0');
    assert_int_equal(strlen(text), n);
    assert_memory_equal(text, "h_", 2);
    for (size_t i = 2; i < n; i++) {
        char ch = text[i];
        assert_true((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
                    (ch >= 'A' && ch <= 'Z'));
    }
    uint64_t back = 0;
    assert_true(engine_hold_id_parse(text, n, &back));
    assert_true(back == id);
    /* Parse reads len bytes, not up to a NUL. */
    text[n] = '!';
    back = 0;
    assert_true(engine_hold_id_parse(text, n, &back));
    assert_true(back == id);
    assert_false(engine_hold_id_parse(text, n + 1, &back));
    /* Damage any one character of the id and it no longer parses as it. */
    for (size_t i = 0; i < n; i++) {
        char saved = text[i];
        text[i] = '-';
        back = 0;
        assert_false(engine_hold_id_parse(text, n, &back));
        text[i] = saved;
    }
}

static void test_hold_id_text_round_trips(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 1000);
    /* Enough creates to reuse every slot many times over. */
    for (int i = 0; i < 200; i++) {
        int64_t now = T0 + i;
        uint64_t id = hold_ok(e, now, "u", 1000, NULL, LINES({"a", 1}));
        assert_id_round_trips(id);
        ASSERT_RESULT(release(e, now, id), ENGINE_OK);
    }
}

static void test_hold_id_parse_rejects_garbage(void **state)
{
    (void)state;
    static const char *const garbage[] = {
        "",
        "h",
        "h_",
        "_1",
        "x_1",
        "H_1",
        "h-1",
        "h__1",
        "h_!",
        "h_1 ",
        " h_1",
        "h_1/",
        "h_\xc3\xa9",
        "h_11111111111111111", /* longer than ENGINE_HOLD_ID_TEXT_MAX */
        "h_zzzzzzzzzzzzzz",    /* 16 bytes, beyond 2^64 */
        "h_ZZZZZZZZZZZZ",      /* beyond 2^64 whatever the alphabet */
        "h_zzzzzzzzzzzz",
        "h_zzzzzzzzzzz", /* 11 digits, beyond 2^64 whatever the alphabet */
        "h_ZZZZZZZZZZZ",
        "h_1111111111111111111111111", /* far too long */
    };
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        uint64_t id = 0;
        if (engine_hold_id_parse(garbage[i], strlen(garbage[i]), &id)) {
            fail_msg("parsed garbage \"%s\"", garbage[i]);
        }
    }
    uint64_t id = 0;
    assert_false(engine_hold_id_parse("h_1\0", 4, &id));
    assert_false(engine_hold_id_parse("h_1", 0, &id));
}

/* ---- journal replay and snapshot ---- */

typedef struct {
    engine_op_t ops[32];
    size_t count;
} journal_t;

/* Applies op to e and journals it as the server would: only if it changed
 * the state, and a create with the id it was given. */
static engine_outcome_t apply_journaled(engine_t *e, journal_t *j, engine_op_t op)
{
    engine_outcome_t o = apply(e, &op);
    if (o.changed) {
        assert_true(j->count < sizeof j->ops / sizeof j->ops[0]);
        if (op.kind == ENGINE_OP_HOLD_CREATE) {
            op.u.hold_create.hold_id = o.hold_id;
        }
        j->ops[j->count++] = op;
    }
    return o;
}

static void assert_same_sku_views(const engine_t *a, const engine_t *b)
{
    assert_int_equal(engine_sku_count(a), engine_sku_count(b));
    for (uint32_t i = 0; i < engine_sku_count(a); i++) {
        engine_sku_view_t x, y;
        engine_sku_view(a, i, &x);
        engine_sku_view(b, i, &y);
        assert_int_equal(x.sku_len, y.sku_len);
        assert_memory_equal(x.sku, y.sku, x.sku_len);
        assert_int_equal(x.stock, y.stock);
        assert_int_equal(x.held, y.held);
        assert_int_equal(x.sold, y.sold);
        assert_int_equal(x.available, y.available);
        uint32_t index;
        assert_true(engine_sku_find(b, x.sku, x.sku_len, &index));
        assert_int_equal(index, i);
    }
}

static void assert_same_hold_view(const engine_t *a, const engine_t *b, uint64_t id)
{
    engine_hold_view_t x, y;
    engine_result_t ra = engine_hold_view(a, id, &x);
    engine_result_t rb = engine_hold_view(b, id, &y);
    assert_string_equal(engine_result_name(ra), engine_result_name(rb));
    if (ra != ENGINE_OK) {
        return;
    }
    assert_true(x.id == y.id);
    assert_int_equal(x.state, y.state);
    assert_int_equal(x.customer_len, y.customer_len);
    assert_memory_equal(x.customer, y.customer, x.customer_len);
    assert_int_equal(x.created_ms, y.created_ms);
    assert_int_equal(x.expires_ms, y.expires_ms);
    assert_int_equal(x.finished_ms, y.finished_ms);
    assert_int_equal(x.line_count, y.line_count);
    for (uint16_t i = 0; i < x.line_count; i++) {
        assert_int_equal(x.lines[i].sku_index, y.lines[i].sku_index);
        assert_int_equal(x.lines[i].qty, y.lines[i].qty);
    }
}

typedef struct {
    engine_idem_t entries[16];
    size_t count;
} idem_list_t;

static void collect_idem(void *ctx, const engine_idem_t *entry)
{
    idem_list_t *l = ctx;
    assert_true(l->count < sizeof l->entries / sizeof l->entries[0]);
    l->entries[l->count++] = *entry;
}

static void assert_same_idem(const engine_t *a, const engine_t *b)
{
    idem_list_t x = {.count = 0}, y = {.count = 0};
    engine_each_idem(a, collect_idem, &x);
    engine_each_idem(b, collect_idem, &y);
    assert_int_equal(x.count, y.count);
    for (size_t i = 0; i < x.count; i++) {
        assert_int_equal(x.entries[i].key_len, y.entries[i].key_len);
        assert_memory_equal(x.entries[i].key, y.entries[i].key, x.entries[i].key_len);
        assert_true(x.entries[i].request_hash == y.entries[i].request_hash);
        assert_true(x.entries[i].hold_id == y.entries[i].hold_id);
        assert_int_equal(x.entries[i].at_ms, y.entries[i].at_ms);
        /* Arrival order. */
        if (i > 0) {
            assert_true(x.entries[i - 1].at_ms <= x.entries[i].at_ms);
        }
    }
}

/* The gauges: the counters (created, committed, ...) describe a process's
 * history, and a snapshot restores state, not history. */
static void assert_same_gauges(const engine_t *a, const engine_t *b)
{
    engine_stats_t x = engine_stats(a), y = engine_stats(b);
    assert_int_equal(x.holds_active, y.holds_active);
    assert_int_equal(x.holds_retained, y.holds_retained);
    assert_int_equal(x.skus, y.skus);
    assert_int_equal(x.idem_keys, y.idem_keys);
    assert_int_equal(x.units_stock, y.units_stock);
    assert_int_equal(x.units_held, y.units_held);
    assert_int_equal(x.units_sold, y.units_sold);
    assert_true(engine_next_expiry_ms(a) == engine_next_expiry_ms(b));
}

static void test_journal_replay_rebuilds_the_same_state_and_ids(void **state)
{
    engine_t *a = *state;
    journal_t *j = calloc(1, sizeof *j);
    assert_non_null(j);
    const int64_t t = T0;
    apply_journaled(a, j, op_sku_put(t, "a", 10));
    apply_journaled(a, j, op_sku_put(t, "b", 5));
    engine_op_t k1 = op_hold_create(t + 10, "c1", TTL_LONG_MS, "k1", LINES({"a", 2}, {"b", 1}));
    uint64_t h1 = apply_journaled(a, j, k1).hold_id;
    uint64_t h2 =
        apply_journaled(a, j, op_hold_create(t + 20, "c2", 2000, NULL, LINES({"a", 3}))).hold_id;
    ASSERT_RESULT(apply_journaled(a, j, op_hold_create(t + 30, "c1", 2000, NULL, LINES({"b", 9}))),
                  ENGINE_INSUFFICIENT_STOCK);
    /* The timer notices h2's expiry; that is not journaled. */
    assert_int_equal(advance(a, t + 2500), 1);
    apply_journaled(a, j, op_on_hold(ENGINE_OP_HOLD_COMMIT, t + 3000, h1, 0));
    uint64_t h3 =
        apply_journaled(a, j, op_hold_create(t + 3000, "c3", 10000, "k2", LINES({"a", 1}))).hold_id;
    apply_journaled(a, j, op_on_hold(ENGINE_OP_HOLD_EXTEND, t + 3100, h3, 20000));
    k1.now_ms = t + 3200;
    engine_outcome_t o = apply_journaled(a, j, k1);
    assert_true(o.replayed && o.hold_id == h1);
    uint64_t h4 =
        apply_journaled(a, j, op_hold_create(t + 4000, "c4", 1000, NULL, LINES({"b", 2}))).hold_id;
    apply_journaled(a, j, op_on_hold(ENGINE_OP_HOLD_RELEASE, t + 4100, h4, 0));
    apply_journaled(a, j, op_sku_put(t + 4200, "a", 12));
    assert_int_equal(j->count, 10);

    engine_t *b = calloc(1, sizeof *b);
    assert_non_null(b);
    assert_int_equal(engine_init(b, &config_small, T0), 0);
    for (size_t i = 0; i < j->count; i++) {
        engine_outcome_t r = apply(b, &j->ops[i]);
        ASSERT_RESULT(r, ENGINE_OK);
        assert_true(r.changed);
        if (j->ops[i].kind == ENGINE_OP_HOLD_CREATE) {
            /* The id forced by the op is the id the hold keeps. */
            assert_true(r.hold_id == j->ops[i].u.hold_create.hold_id);
        }
    }
    const uint64_t ids[] = {h1, h2, h3, h4};
    assert_same_sku_views(a, b);
    for (size_t i = 0; i < 4; i++) {
        assert_same_hold_view(a, b, ids[i]);
    }
    assert_int_equal(hold_view(b, h2).finished_ms, t + 2020);
    assert_int_equal(hold_view(b, h3).expires_ms, t + 23100);
    assert_same_idem(a, b);
    assert_same_gauges(a, b);

    /* A client retrying its first request after the restart gets its hold. */
    k1.now_ms = t + 5000;
    engine_outcome_t oa = apply(a, &k1), ob = apply(b, &k1);
    assert_true(oa.replayed && ob.replayed);
    assert_true(oa.hold_id == h1 && ob.hold_id == h1);
    /* And new ids never repeat an old one, and agree across the replay. */
    uint64_t na = hold_ok(a, t + 5000, "c5", 1000, NULL, LINES({"a", 1}));
    uint64_t nb = hold_ok(b, t + 5000, "c5", 1000, NULL, LINES({"a", 1}));
    for (size_t i = 0; i < 4; i++) {
        assert_true(na != ids[i] && nb != ids[i]);
    }
    assert_true(na == nb);
    assert_same_sku_views(a, b);

    engine_deinit(b);
    free(b);
    free(j);
}

typedef struct {
    engine_hold_view_t *views;
    size_t count, max;
} hold_list_t;

static void collect_hold(void *ctx, const engine_hold_view_t *h)
{
    hold_list_t *l = ctx;
    assert_true(l->count < l->max);
    l->views[l->count++] = *h;
}

static void snapshot_into(const engine_t *a, engine_t *b, hold_list_t *holds)
{
    assert_true(engine_restore_time(b, a->now_ms, a->hold_seq));
    for (uint32_t i = 0; i < engine_sku_count(a); i++) {
        engine_sku_view_t v;
        engine_sku_view(a, i, &v);
        assert_string_equal(
            engine_result_name(engine_restore_sku(b, v.sku, v.sku_len, v.stock, v.sold)), "ok");
    }
    engine_each_hold(a, collect_hold, holds);
    for (size_t i = 0; i < holds->count; i++) {
        assert_string_equal(engine_result_name(engine_restore_hold(b, &holds->views[i])), "ok");
    }
    idem_list_t keys = {.count = 0};
    engine_each_idem(a, collect_idem, &keys);
    for (size_t i = 0; i < keys.count; i++) {
        assert_string_equal(engine_result_name(engine_restore_idem(b, &keys.entries[i])), "ok");
    }
    assert_true(engine_check(b));
}

/* A snapshot's free-slot list must name each free slot once: a slot named
 * twice (in place of another) would make the list a circle, and the next
 * walk of it would never end. Such a list is refused, and the engine's
 * free list stays a list. */
static void test_a_free_slot_list_naming_a_slot_twice_is_refused(void **state)
{
    engine_t *e = *state;
    assert_true(engine_restore_time(e, T0, 0));
    const uint32_t twice[] = {1, 1, 2};
    assert_false(engine_restore_free_slots(e, 3, twice, 3));
    const uint32_t outside[] = {0, 1, 3};
    assert_false(engine_restore_free_slots(e, 3, outside, 3));
    const uint32_t each[] = {2, 0, 1};
    assert_true(engine_restore_free_slots(e, 3, each, 3));
    assert_true(engine_check(e));
    assert_false(engine_restore_free_slots(e, 3, twice, 3)); /* a second list, checked alike */
    assert_true(engine_check(e));
}

static void test_snapshot_restores_the_same_engine(void **state)
{
    engine_t *a = *state;
    const int64_t t = T0;
    put_ok(a, t, "a", 10);
    put_ok(a, t, "b", 20);
    put_ok(a, t, "c", 5);
    put_ok(a, t, "d", 0);
    put_ok(a, t, "e", 100);
    uint64_t h1 = hold_ok(a, t, "u1", TTL_LONG_MS, "k1", LINES({"a", 2}, {"b", 3}, {"c", 1}));
    uint64_t h2 = hold_ok(a, t + 1, "u2", 5000, NULL, LINES({"a", 1}));
    uint64_t h3 = hold_ok(a, t + 2, "u1", TTL_LONG_MS, "k2", LINES({"b", 4}));
    uint64_t h4 = hold_ok(a, t + 3, "u3", TTL_LONG_MS, NULL, LINES({"c", 2}, {"a", 1}));
    uint64_t h5 = hold_ok(a, t + 4, "u2", 30000, "k3", LINES({"b", 1}));
    ASSERT_RESULT(commit(a, t + 10, h3), ENGINE_OK);
    ASSERT_RESULT(release(a, t + 20, h4), ENGINE_OK);
    assert_int_equal(advance(a, t + 6000), 1);
    const uint64_t ids[] = {h1, h2, h3, h4, h5};

    engine_t *b = calloc(1, sizeof *b);
    assert_non_null(b);
    assert_int_equal(engine_init(b, &config_small, T0), 0);
    hold_list_t visited = {.views = calloc(16, sizeof(engine_hold_view_t)), .max = 16};
    assert_non_null(visited.views);
    snapshot_into(a, b, &visited);

    /* Visited: the active ones first, then the finished oldest first. */
    assert_int_equal(visited.count, 5);
    assert_int_equal(visited.views[0].state, ENGINE_HOLD_ACTIVE);
    assert_int_equal(visited.views[1].state, ENGINE_HOLD_ACTIVE);
    assert_true(visited.views[2].id == h3);
    assert_true(visited.views[3].id == h4);
    assert_true(visited.views[4].id == h2);

    assert_same_sku_views(a, b);
    for (size_t i = 0; i < 5; i++) {
        assert_same_hold_view(a, b, ids[i]);
    }
    assert_same_idem(a, b);
    assert_same_gauges(a, b);
    hold_list_t again = {.views = calloc(16, sizeof(engine_hold_view_t)), .max = 16};
    assert_non_null(again.views);
    engine_each_hold(b, collect_hold, &again);
    assert_int_equal(again.count, 5);
    for (size_t i = 2; i < 5; i++) {
        assert_true(again.views[i].id == visited.views[i].id);
    }

    /* Both engines go on alike: replays, refusals, expiry, eviction order. */
    engine_op_t retry =
        op_hold_create(t + 7000, "u1", TTL_LONG_MS, "k1", LINES({"a", 2}, {"b", 3}, {"c", 1}));
    engine_outcome_t oa = apply(a, &retry), ob = apply(b, &retry);
    assert_true(oa.replayed && ob.replayed && oa.hold_id == h1 && ob.hold_id == h1);
    engine_op_t short_op = op_hold_create(t + 7000, "u4", TTL_LONG_MS, NULL, LINES({"d", 1}));
    oa = apply(a, &short_op);
    ob = apply(b, &short_op);
    ASSERT_RESULT(oa, ENGINE_INSUFFICIENT_STOCK);
    ASSERT_RESULT(ob, ENGINE_INSUFFICIENT_STOCK);
    assert_int_equal(oa.sku_index, ob.sku_index);
    assert_int_equal(oa.available, ob.available);
    assert_int_equal(advance(a, t + 30004), 1);
    assert_int_equal(advance(b, t + 30004), 1);
    ASSERT_STATE(b, h5, ENGINE_HOLD_EXPIRED_STATE);

    /* 16 slots, 5 used: the 12th new hold evicts h3, then h4, h2, h5. */
    const uint64_t eviction_order[] = {h3, h4, h2, h5};
    for (int k = 0; k < 11 + 4; k++) {
        int64_t now = t + 31000 + k;
        uint64_t na = hold_ok(a, now, "u9", TTL_LONG_MS, NULL, LINES({"e", 1}));
        uint64_t nb = hold_ok(b, now, "u9", TTL_LONG_MS, NULL, LINES({"e", 1}));
        for (size_t i = 0; i < 5; i++) {
            assert_true(na != ids[i] && nb != ids[i]);
        }
        for (int i = 0; i < 4; i++) {
            bool gone = k >= 11 + i;
            assert_int_equal(hold_known(a, eviction_order[i]), !gone);
            assert_int_equal(hold_known(b, eviction_order[i]), !gone);
        }
    }
    assert_same_sku_views(a, b);
    assert_same_gauges(a, b);

    free(again.views);
    free(visited.views);
    engine_deinit(b);
    free(b);
}

/* ---- stats and the checker ---- */

static void test_stats_count_every_transition(void **state)
{
    engine_t *e = *state;
    put_ok(e, T0, "a", 10);
    put_ok(e, T0, "b", 10);
    put_ok(e, T0, "b", 7);
    uint64_t h1 = hold_ok(e, T0, "u", 1000, "k1", LINES({"a", 1}, {"b", 2}));
    uint64_t h2 = hold_ok(e, T0, "u", 5000, NULL, LINES({"a", 3}));
    uint64_t h3 = hold_ok(e, T0, "u", 5000, NULL, LINES({"b", 1}));
    hold_ok(e, T0, "u", 5000, NULL, LINES({"a", 1}));
    ASSERT_RESULT(hold(e, T0, "u", 1000, "k1", LINES({"a", 1}, {"b", 2})), ENGINE_OK);
    ASSERT_RESULT(hold(e, T0, "u", 1000, "k1", LINES({"a", 1})), ENGINE_IDEMPOTENCY_MISMATCH);
    ASSERT_RESULT(hold(e, T0, "u", 1000, NULL, LINES({"a", 100})), ENGINE_INSUFFICIENT_STOCK);
    ASSERT_RESULT(commit(e, T0 + 10, h2), ENGINE_OK);
    ASSERT_RESULT(release(e, T0 + 20, h3), ENGINE_OK);
    ASSERT_RESULT(release(e, T0 + 20, h3), ENGINE_OK);

    engine_stats_t s = engine_stats(e);
    assert_int_equal(s.holds_created, 4);
    assert_int_equal(s.holds_committed, 1);
    assert_int_equal(s.holds_released, 1);
    assert_int_equal(s.holds_expired, 0);
    assert_int_equal(s.holds_evicted, 0);
    assert_int_equal(s.idem_replays, 1);
    assert_int_equal(s.holds_active, 2);
    assert_int_equal(s.holds_retained, 2);
    assert_int_equal(s.skus, 2);
    assert_int_equal(s.idem_keys, 1);
    assert_int_equal(s.units_stock, 17);
    assert_int_equal(s.units_held, 1 + 2 + 1);
    assert_int_equal(s.units_sold, 3);

    assert_int_equal(advance(e, T0 + 1000), 1);
    ASSERT_STATE(e, h1, ENGINE_HOLD_EXPIRED_STATE);
    /* h2 and h3 finished at T0+10 and T0+20; h1 and h4 expired later. */
    advance(e, T0 + 20 + HOLD_RETENTION_MS);
    s = engine_stats(e);
    assert_int_equal(s.holds_expired, 2);
    assert_int_equal(s.holds_evicted, 2);
    assert_int_equal(s.holds_active, 0);
    assert_int_equal(s.holds_retained, 2);
    assert_int_equal(s.idem_keys, 0);
    assert_int_equal(s.units_held, 0);
    assert_int_equal(s.units_sold, 3);
    advance(e, T0 + 5000 + HOLD_RETENTION_MS);
    s = engine_stats(e);
    assert_int_equal(s.holds_evicted, 4);
    assert_int_equal(s.holds_retained, 0);
    assert_int_equal(s.holds_created, 4);
}

static void test_check_catches_a_broken_count(void **state)
{
    engine_t *e = *state;
    uint32_t a = put_ok(e, T0, "a", 10);
    hold_ok(e, T0, "u", 5000, NULL, LINES({"a", 3}));
    /* Reaching into the private table on purpose: the checker must see it. */
    assert_int_equal(e->skus[a].held, 3);
    e->skus[a].held = 4;
    assert_false(engine_check(e));
    e->skus[a].held = 3;
    assert_true(engine_check(e));
    /* sold is what is neither held nor available: 10 - 3 - 8 < 0. */
    e->skus[a].available = 8;
    assert_false(engine_check(e));
    /* 10 - 3 - 0 = 7 sold, but nothing was. */
    e->skus[a].available = 0;
    assert_false(engine_check(e));
    e->skus[a].available = 7;
    assert_true(engine_check(e));
}

static void test_check_catches_a_sku_head_that_is_not_its_name(void **state)
{
    engine_t *e = *state;
    uint32_t a = put_ok(e, T0, "abc", 10);
    assert_true(engine_check(e));
    e->skus[a].id_head[1] = 'x';
    assert_false(engine_check(e));
    e->skus[a].id_head[1] = 'b';
    assert_true(engine_check(e));
    e->skus[a].id_head[ENGINE_SKU_HEAD_BYTES - 1] = 'x'; /* past the name: must be 0 */
    assert_false(engine_check(e));
    e->skus[a].id_head[ENGINE_SKU_HEAD_BYTES - 1] = 0;
    assert_true(engine_check(e));
}

/* A sku's first ENGINE_SKU_HEAD_BYTES bytes are kept with its counters and
 * the rest apart: names that share a head, or differ only at the head's
 * edge, are still different skus, and every one of them is found. */
static void test_long_sku_names_are_told_apart_past_their_head(void **state)
{
    engine_t *e = *state;
    char head[ENGINE_SKU_HEAD_BYTES + 1];
    memset(head, 'h', ENGINE_SKU_HEAD_BYTES);
    head[ENGINE_SKU_HEAD_BYTES] = '\0';
    char longest[HF_SKU_BYTES_MAX + 1];
    memset(longest, 'h', HF_SKU_BYTES_MAX);
    longest[HF_SKU_BYTES_MAX] = '\0';
    char names[5][HF_SKU_BYTES_MAX + 1];
    snprintf(names[0], sizeof names[0], "%s", head);     /* exactly the head */
    snprintf(names[1], sizeof names[1], "%sa", head);    /* one byte past it */
    snprintf(names[2], sizeof names[2], "%sb", head);    /* differs past it */
    snprintf(names[3], sizeof names[3], "%s", longest);  /* the longest name */
    snprintf(names[4], sizeof names[4], "%.*sz", HF_SKU_BYTES_MAX - 1, longest);
    uint32_t index[5];
    for (int i = 0; i < 5; i++) {
        index[i] = put_ok(e, T0, names[i], 10 + i);
    }
    assert_int_equal(engine_sku_count(e), 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(sku_index_of(e, names[i]), index[i]);
        engine_sku_view_t v;
        engine_sku_view(e, index[i], &v);
        assert_int_equal(v.stock, 10 + i);
        assert_int_equal(v.sku_len, strlen(names[i]));
        assert_memory_equal(v.sku, names[i], v.sku_len);
    }
    uint32_t found;
    assert_false(engine_sku_find(e, longest, HF_SKU_BYTES_MAX - 1, &found));
    assert_false(engine_sku_find(e, "hhhhhhhhhhhhhhhc", ENGINE_SKU_HEAD_BYTES + 1, &found));
    /* A hold on one of them moves that sku's counters only. */
    hold_ok(e, T0, "u", 5000, NULL, LINES({names[2], 2}));
    ASSERT_SKU(e, names[1], 11, 0, 0);
    ASSERT_SKU(e, names[2], 12, 2, 0);
    assert_true(engine_check(e));
}

int main(void)
{
#define SMALL(f) cmocka_unit_test_setup_teardown(f, setup_small, teardown)
#define WIDE(f) cmocka_unit_test_setup_teardown(f, setup_wide, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_refuses_capacities_beyond_the_ceilings),
        SMALL(test_a_fresh_engine_is_empty),
        cmocka_unit_test(test_default_config_is_the_documented_default),
        cmocka_unit_test(test_result_names_and_messages_come_from_one_table),
        cmocka_unit_test(test_hold_state_names_are_the_api_states),
        SMALL(test_long_customer_names_are_shared_and_forgotten),
        SMALL(test_commit_keeps_its_order_ref_until_the_hold_is_forgotten),
        SMALL(test_sku_put_creates_then_updates),
        SMALL(test_sku_stock_takes_its_edge_values),
        SMALL(test_stock_below_committed_is_refused_and_changes_nothing),
        SMALL(test_sku_table_full_refuses_only_a_new_sku),
        cmocka_unit_test(test_sku_index_grows_and_finds_every_sku),
        SMALL(test_hold_create_holds_every_line),
        SMALL(test_hold_ids_are_distinct_and_nonzero),
        SMALL(test_hold_on_an_unknown_sku_holds_nothing),
        SMALL(test_hold_is_all_or_nothing_across_lines),
        SMALL(test_available_counts_held_and_sold_units),
        SMALL(test_duplicate_sku_lines_are_refused),
        WIDE(test_hold_takes_64_lines_all_or_nothing),
        WIDE(test_line_pool_exhaustion_is_an_error_not_a_crash),
        SMALL(test_a_table_of_finished_holds_makes_room_for_lines_too),
        SMALL(test_commit_moves_held_units_to_sold),
        SMALL(test_commit_twice_is_ok_and_changes_nothing),
        SMALL(test_commit_at_the_last_millisecond_succeeds),
        SMALL(test_commit_of_an_expired_hold_is_refused),
        SMALL(test_commit_of_a_released_hold_is_refused),
        SMALL(test_release_returns_units_and_repeating_it_is_harmless),
        SMALL(test_release_of_a_committed_hold_is_refused),
        SMALL(test_release_of_an_expired_hold_is_harmless_and_it_stays_expired),
        SMALL(test_extend_lengthens_and_never_shortens),
        SMALL(test_extend_reorders_the_timer),
        SMALL(test_extend_of_a_finished_hold_is_refused),
        SMALL(test_unknown_hold_ids_are_not_found),
        SMALL(test_hold_expires_to_the_millisecond),
        SMALL(test_expired_units_are_available_within_the_same_apply),
        SMALL(test_expired_hold_finished_at_its_expiry_not_when_noticed),
        SMALL(test_advance_expires_what_is_due_and_nothing_else),
        SMALL(test_next_expiry_is_the_earliest_active_hold),
        SMALL(test_finished_holds_are_forgotten_after_retention),
        SMALL(test_holds_full_only_when_every_slot_is_active),
        SMALL(test_a_full_table_evicts_the_oldest_finished_hold_first),
        SMALL(test_idempotent_retry_is_replayed_and_applied_once),
        SMALL(test_replay_gives_the_same_answer_after_the_hold_finished),
        SMALL(test_same_key_with_another_request_is_a_mismatch),
        SMALL(test_a_failed_create_stores_no_key),
        SMALL(test_idempotency_key_is_forgotten_after_retention),
        SMALL(test_idempotency_table_full_of_young_keys_refuses_new_keys),
        cmocka_unit_test(test_request_hash_ignores_bytes_past_the_lengths),
        cmocka_unit_test(test_request_hash_tells_requests_apart),
        SMALL(test_hold_id_text_round_trips),
        cmocka_unit_test(test_hold_id_parse_rejects_garbage),
        SMALL(test_journal_replay_rebuilds_the_same_state_and_ids),
        SMALL(test_snapshot_restores_the_same_engine),
        SMALL(test_a_free_slot_list_naming_a_slot_twice_is_refused),
        SMALL(test_stats_count_every_transition),
        SMALL(test_check_catches_a_broken_count),
        SMALL(test_check_catches_a_sku_head_that_is_not_its_name),
        SMALL(test_long_sku_names_are_told_apart_past_their_head),
    };
#undef SMALL
#undef WIDE
    return cmocka_run_group_tests_name("engine", tests, NULL, NULL);
}
