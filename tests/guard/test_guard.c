/*
 * test_guard.c - the guard (guard.h): the engine with its defenses, driven the
 * way the server drives it, without HTTP.
 *
 * Time is a number each test picks and passes in; tables are small so that
 * they fill. After every call that may change a guard, guard_check() must
 * hold.
 *
 * The randomized drive is the guard's contract as a whole: a mix of sku puts,
 * live holds (with proofs of work when challenged), commits, releases,
 * extensions, buy now, waitlist joins and cancels, revocations and policy
 * changes, with time moving by random steps past expiries and retention. The
 * same inputs go to two live guards, which must answer alike at every step
 * and end alike (determinism). Every op that a live guard reports as changed
 * is journaled and applied with guard_apply() to a replica, as recovery
 * would; every CHECKPOINT_EVERY steps a guard restored from a snapshot of the
 * guard under test joins in and is fed the journal from then on; at the end a
 * fresh guard replays the whole journal. Each must equal the guard under
 * test. Refusals (denials, challenges, refused proofs, idempotent replays)
 * change nothing and are not journaled, so only their counters may differ;
 * a restored engine counts its running totals afresh. When a restored guard
 * cannot follow the journal, the run notes it, goes on without it until the
 * next checkpoint, and fails at its end.
 *
 * Every seed is printed ("seed=N"); HF_SEED=N runs just that one again and
 * HF_GUARD_STEPS=N changes the number of steps.
 *
 * The focused tests below the drive take one defense each: waitlist hand-off
 * at the expiry instant, budgets, reputation, escalation, the sweep, proofs,
 * revocation and snapshots.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the four headers above first. */
#include <cmocka.h>

#include "hf_mix.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "guard.h"
#include "policy.h"
#include "pow.h"
#include "record.h"
/* White-box: the guard's own tables, compared table by table. */
#include "state.h"

/* Any instant far from zero, so that "never touched" (0) and "now" differ. */
#define T0 INT64_C(1000000000)
#define MINUTE_MS INT64_C(60000)
#define DAY_MS INT64_C(86400000)
/* Nonces pow_solve() may try: the tests' challenges cost at most 2^8. */
#define SOLVE_TRIES_MAX (UINT64_C(1) << 24)
#define HEADER_TEXT_MAX (GUARD_PREFIX_TEXT_MAX + 1 + POW_NONCE_BYTES_MAX + 1)

static const guard_config_t small = {
    .engine = {.skus_max = 8, .holds_max = 64, .idem_keys_max = 16},
    .identities_max = 64,
    .customer_skus_max = 64,
    .waitlist_max = 16,
    .sku_policies_max = 4,
    .proofs_max = 16,
};

/* What a failure message says the guard was doing. */
static char where[400];
#define WHERE() snprintf(where, sizeof where, "%s", __func__)

/* ------------------------------------------------------------- helpers */

/* What a test allocated and has not freed yet: a failed assert leaves the
 * test by longjmp, and its teardown frees what was left behind. */
#define OWNED_MAX 32
static struct {
    void *p;
    bool guard;
} owned[OWNED_MAX];

static void own(void *p, bool guard)
{
    for (int i = 0; i < OWNED_MAX; i++) {
        if (owned[i].p == NULL) {
            owned[i].p = p;
            owned[i].guard = guard;
            return;
        }
    }
    fail_msg("more than %d allocations at once", OWNED_MAX);
}

static void disown(void *p)
{
    for (int i = 0; i < OWNED_MAX; i++) {
        if (owned[i].p == p) {
            owned[i].p = NULL;
            return;
        }
    }
}

static int free_owned(void **state)
{
    (void)state;
    for (int i = 0; i < OWNED_MAX; i++) {
        if (owned[i].guard) {
            guard_destroy(owned[i].p);
        } else {
            free(owned[i].p);
        }
        owned[i].p = NULL;
    }
    return 0;
}

/* A store buffer's bytes, owned until buf_free(). */
static void buf_own(store_buf_t *b)
{
    own(b->data, false);
}

static void buf_free(store_buf_t *b)
{
    disown(b->data);
    record_buf_free(b);
}

static void check_guard(const guard_t *g)
{
    if (!guard_check(g)) {
        print_error("guard_check() failed: %s\n", where);
        fail();
    }
}

static guard_t *guard_new(const guard_config_t *c)
{
    guard_t *g = guard_create(c, 0);
    assert_non_null(g);
    own(g, true);
    check_guard(g);
    return g;
}

static void guard_free(guard_t *g)
{
    if (g != NULL) {
        disown(g);
        guard_destroy(g);
    }
}

static void set_text(char *dst, uint8_t *len, const char *src)
{
    size_t n = strlen(src);
    assert_true(n <= UINT8_MAX);
    memcpy(dst, src, n);
    *len = (uint8_t)n;
}

static guard_outcome_t apply(guard_t *g, guard_op_t *op)
{
    guard_outcome_t o = guard_apply(g, op);
    check_guard(g);
    return o;
}

static void apply_ok(guard_t *g, guard_op_t *op)
{
    guard_outcome_t o = apply(g, op);
    if (o.result != GUARD_OK) {
        print_error("op kind %d: %s (engine %s)\n", op->kind, guard_result_name(o.result),
                    engine_result_name(o.engine.result));
    }
    assert_int_equal(o.result, GUARD_OK);
}

static void set_secret(guard_t *g, int64_t now_ms, uint8_t fill)
{
    guard_op_t op = {.kind = GUARD_OP_SECRET, .engine = {.now_ms = now_ms}};
    memset(op.u.secret, fill, GUARD_SECRET_BYTES);
    apply_ok(g, &op);
}

static void put_policy(guard_t *g, int64_t now_ms, const policy_config_t *p)
{
    policy_field_t bad;
    assert_true(policy_config_valid(p, &bad));
    guard_op_t op = {.kind = GUARD_OP_POLICY_PUT, .engine = {.now_ms = now_ms}};
    op.u.policy = *p;
    apply_ok(g, &op);
}

static void put_sku(guard_t *g, int64_t now_ms, const char *sku, int64_t stock)
{
    guard_op_t op = {.kind = GUARD_OP_ENGINE};
    op.engine = (engine_op_t){.kind = ENGINE_OP_SKU_PUT, .now_ms = now_ms};
    set_text(op.engine.u.sku_put.sku, &op.engine.u.sku_put.sku_len, sku);
    op.engine.u.sku_put.stock = stock;
    apply_ok(g, &op);
}

static uint32_t sku_index(const guard_t *g, const char *sku)
{
    uint32_t i;
    assert_true(engine_sku_find(&g->engine, sku, strlen(sku), &i));
    return i;
}

/* A request for qty of one sku; ip and fingerprint may be NULL. */
static guard_hold_request_t request_from(const char *customer, const char *ip,
                                         const char *fingerprint, const char *sku, uint32_t qty,
                                         int64_t ttl_ms)
{
    guard_hold_request_t r;
    memset(&r, 0, sizeof r);
    engine_hold_create_t *c = &r.create;
    set_text(c->customer, &c->customer_len, customer);
    if (ip != NULL) {
        set_text(c->ip, &c->ip_len, ip);
    }
    if (fingerprint != NULL) {
        set_text(c->fingerprint, &c->fingerprint_len, fingerprint);
    }
    c->ttl_ms = ttl_ms;
    c->line_count = 1;
    set_text(c->lines[0].sku, &c->lines[0].sku_len, sku);
    c->lines[0].qty = qty;
    return r;
}

static guard_hold_request_t request(const char *customer, const char *sku, uint32_t qty,
                                    int64_t ttl_ms)
{
    return request_from(customer, NULL, NULL, sku, qty, ttl_ms);
}

static guard_outcome_t hold(guard_t *g, const guard_hold_request_t *req, int64_t now_ms)
{
    guard_op_t op;
    guard_outcome_t o = guard_hold(g, req, now_ms, &op);
    check_guard(g);
    return o;
}

static uint64_t hold_ok(guard_t *g, const guard_hold_request_t *req, int64_t now_ms)
{
    guard_outcome_t o = hold(g, req, now_ms);
    if (o.result != GUARD_OK || !o.changed) {
        print_error("hold for %.*s: %s (engine %s, rule %s)\n", req->create.customer_len,
                    req->create.customer, guard_result_name(o.result),
                    engine_result_name(o.engine.result), policy_rule_name(o.decision.rule));
    }
    assert_int_equal(o.result, GUARD_OK);
    assert_true(o.changed);
    return o.engine.hold_id;
}

/* A hold applied as an op, as replay applies it: no decision, the TTL given. */
static uint64_t apply_hold_req(guard_t *g, int64_t now_ms, const guard_hold_request_t *req)
{
    guard_op_t op = {.kind = GUARD_OP_ENGINE};
    op.engine = (engine_op_t){.kind = ENGINE_OP_HOLD_CREATE, .now_ms = now_ms};
    op.engine.u.hold_create = req->create;
    op.buy_now = req->buy_now;
    guard_outcome_t o = apply(g, &op);
    assert_int_equal(o.result, GUARD_OK);
    assert_true(o.changed);
    return o.engine.hold_id;
}

static uint64_t apply_hold(guard_t *g, int64_t now_ms, const char *customer, const char *sku,
                           uint32_t qty, int64_t ttl_ms)
{
    guard_hold_request_t r = request(customer, sku, qty, ttl_ms);
    return apply_hold_req(g, now_ms, &r);
}

static guard_outcome_t finish(guard_t *g, int64_t now_ms, engine_op_kind_t kind, uint64_t id,
                              const char *text)
{
    guard_op_t op = {.kind = GUARD_OP_ENGINE};
    op.engine = (engine_op_t){.kind = kind, .now_ms = now_ms};
    op.engine.u.hold.hold_id = id;
    if (text != NULL && kind == ENGINE_OP_HOLD_COMMIT) {
        set_text(op.engine.u.hold.order_ref, &op.engine.u.hold.order_ref_len, text);
    } else if (text != NULL) {
        set_text(op.reason, &op.reason_len, text);
    }
    return apply(g, &op);
}

static void finish_ok(guard_t *g, int64_t now_ms, engine_op_kind_t kind, uint64_t id)
{
    guard_outcome_t o = finish(g, now_ms, kind, id, NULL);
    assert_int_equal(o.result, GUARD_OK);
    assert_true(o.changed);
}

static guard_outcome_t join(guard_t *g, int64_t now_ms, const char *sku, const char *customer,
                            uint32_t qty)
{
    guard_op_t op = {.kind = GUARD_OP_WAIT_JOIN, .engine = {.now_ms = now_ms}};
    set_text(op.u.wait_join.sku, &op.u.wait_join.sku_len, sku);
    set_text(op.u.wait_join.customer, &op.u.wait_join.customer_len, customer);
    op.u.wait_join.qty = qty;
    return apply(g, &op);
}

static uint64_t join_ok(guard_t *g, int64_t now_ms, const char *sku, const char *customer,
                        uint32_t qty)
{
    guard_outcome_t o = join(g, now_ms, sku, customer, qty);
    assert_int_equal(o.result, GUARD_OK);
    assert_true(o.changed && o.id != 0);
    return o.id;
}

static guard_outcome_t cancel(guard_t *g, int64_t now_ms, uint64_t wait_id)
{
    guard_op_t op = {.kind = GUARD_OP_WAIT_CANCEL, .engine = {.now_ms = now_ms}};
    op.u.wait_id = wait_id;
    return apply(g, &op);
}

static guard_outcome_t revoke_id(guard_t *g, int64_t now_ms, policy_id_kind_t kind,
                                 const char *value, const char *reason)
{
    guard_op_t op = {.kind = GUARD_OP_REVOKE, .engine = {.now_ms = now_ms}};
    op.u.revoke.kind = kind;
    set_text(op.u.revoke.value, &op.u.revoke.value_len, value);
    set_text(op.reason, &op.reason_len, reason);
    return apply(g, &op);
}

static void advance(guard_t *g, int64_t now_ms)
{
    guard_advance(g, now_ms);
    check_guard(g);
}

static guard_wait_view_t wait_view(const guard_t *g, uint64_t id)
{
    guard_wait_view_t v;
    assert_true(guard_wait_view(g, id, &v));
    return v;
}

static engine_hold_view_t hold_view(const guard_t *g, uint64_t id)
{
    engine_hold_view_t v;
    assert_int_equal(engine_hold_view(&g->engine, id, &v), ENGINE_OK);
    return v;
}

static guard_sku_view_t sku_view(const guard_t *g, const char *sku)
{
    guard_sku_view_t v;
    guard_sku_view(g, sku_index(g, sku), &v);
    return v;
}

static engine_sku_view_t engine_sku(const guard_t *g, const char *sku)
{
    engine_sku_view_t v;
    engine_sku_view(&g->engine, sku_index(g, sku), &v);
    return v;
}

static guard_identity_view_t identity(const guard_t *g, policy_id_kind_t kind, const char *value)
{
    guard_identity_view_t v;
    if (!guard_identity_find(g, kind, value, strlen(value), &v)) {
        print_error("no identity %s %s\n", policy_id_kind_name(kind), value);
        fail();
    }
    return v;
}

static double budget_s(const guard_t *g, const char *customer)
{
    return identity(g, POLICY_ID_CUSTOMER, customer).budget_unit_s;
}

static void check_near(double expected, double actual, double tolerance, const char *file, int line)
{
    if (!(fabs(expected - actual) <= tolerance)) {
        print_error("expected %.17g, got %.17g (tolerance %g)\n", expected, actual, tolerance);
        _fail(file, line);
    }
}
#define assert_near(expected, actual, tolerance)                                                   \
    check_near((expected), (actual), (tolerance), __FILE__, __LINE__)

/* Makes the challenge for a request, solves it and checks it as the server
 * would; the header goes to header_out when not NULL. */
static void solve_proof(const guard_t *g, uint64_t request_hash, uint32_t bits, int64_t now_ms,
                        uint64_t *tag_out, int64_t *expires_ms_out, uint32_t *bits_out,
                        char *header_out)
{
    char prefix[GUARD_PREFIX_TEXT_MAX + 1];
    char nonce[POW_NONCE_BYTES_MAX + 1];
    char header[HEADER_TEXT_MAX];
    uint64_t tries = 0;
    int64_t expires_ms = guard_challenge_make(g, request_hash, bits, now_ms, prefix);
    assert_int_equal(strlen(prefix), GUARD_PREFIX_TEXT_LEN);
    assert_true(pow_solve(prefix, strlen(prefix), bits, SOLVE_TRIES_MAX, nonce, &tries));
    snprintf(header, sizeof header, "%s:%s", prefix, nonce);
    int64_t verified_expires_ms = 0;
    uint32_t verified_bits = 0;
    assert_true(guard_challenge_verify(g, request_hash, header, strlen(header), now_ms, tag_out,
                                       &verified_expires_ms, &verified_bits));
    assert_int_equal(verified_expires_ms, expires_ms);
    assert_int_equal(verified_bits, bits); /* the price it was issued at */
    if (bits_out != NULL) {
        *bits_out = verified_bits;
    }
    *expires_ms_out = expires_ms;
    if (header_out != NULL) {
        memcpy(header_out, header, sizeof header);
    }
}

/* A live hold that is challenged, then made with a proof. */
static uint64_t hold_with_proof(guard_t *g, guard_hold_request_t *r, int64_t now_ms)
{
    guard_outcome_t o = hold(g, r, now_ms);
    if (o.result != GUARD_CHALLENGED) {
        print_error("hold_with_proof: %s rule %s limit %lld current %lld\n",
                    guard_result_name(o.result), policy_rule_name(o.decision.rule),
                    (long long)o.decision.limit, (long long)o.decision.current);
    }
    assert_int_equal(o.result, GUARD_CHALLENGED);
    assert_true(o.decision.bits >= 1);
    solve_proof(g, guard_request_hash(r), o.decision.bits, now_ms, &r->proof_tag,
                &r->proof_expires_ms, &r->proof_bits, NULL);
    return hold_ok(g, r, now_ms);
}

/* ---------------------------------------------------------- comparison
 * Two guards that saw the same changes must be the same, table by table.
 * Refusals change nothing but their counters, and a restored engine starts
 * its running totals afresh; the flags say what the two may differ in. */

enum {
    SAME_ALL = 0,
    SAME_BUT_REFUSAL_COUNTS = 1, /* denials, challenges, refused proofs, idem replays */
    SAME_BUT_ENGINE_TOTALS = 2,  /* holds created, committed, ... since the engine began */
};

static void differ(int line, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void differ(int line, const char *what, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    print_error("GUARDS DIFFER (test_guard.c:%d) %s: %s\n  at: %s\n", line, what, msg, where);
    fail();
}

#define SAME_INT(a, b, what)                                                                       \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_) {                                                                            \
            differ(__LINE__, what, "%lld vs %lld", a_, b_);                                        \
        }                                                                                          \
    } while (0)

#define SAME_F64(a, b, what)                                                                       \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (memcmp(&a_, &b_, sizeof a_) != 0) {                                                    \
            differ(__LINE__, what, "%.17g vs %.17g", a_, b_);                                      \
        }                                                                                          \
    } while (0)

#define SAME_BYTES(a, b, size, what)                                                               \
    do {                                                                                           \
        if (memcmp((a), (b), (size)) != 0) {                                                       \
            differ(__LINE__, what, "bytes differ");                                                \
        }                                                                                          \
    } while (0)

#define SAME_TEXT(a, alen, b, blen, what)                                                          \
    do {                                                                                           \
        SAME_INT(alen, blen, what " length");                                                      \
        if ((alen) > 0) {                                                                          \
            SAME_BYTES(a, b, (size_t)(alen), what);                                                \
        }                                                                                          \
    } while (0)

typedef struct {
    engine_hold_view_t *v;
    size_t count, max;
} hold_list_t;

static void collect_hold(void *ctx, const engine_hold_view_t *h)
{
    hold_list_t *l = ctx;
    assert_true(l->count < l->max);
    l->v[l->count++] = *h;
}

typedef struct {
    engine_idem_t *k;
    size_t count, max;
} idem_list_t;

static void collect_idem(void *ctx, const engine_idem_t *k)
{
    idem_list_t *l = ctx;
    assert_true(l->count < l->max);
    l->k[l->count++] = *k;
}

static void same_hold_view(const engine_hold_view_t *a, const engine_hold_view_t *b)
{
    SAME_INT(a->id, b->id, "hold id");
    SAME_INT(a->state, b->state, "hold state");
    SAME_TEXT(a->customer, a->customer_len, b->customer, b->customer_len, "hold customer");
    SAME_INT(a->created_ms, b->created_ms, "hold created_ms");
    SAME_INT(a->expires_ms, b->expires_ms, "hold expires_ms");
    SAME_INT(a->finished_ms, b->finished_ms, "hold finished_ms");
    SAME_TEXT(a->order_ref, a->order_ref_len, b->order_ref, b->order_ref_len, "hold order_ref");
    SAME_INT(a->line_count, b->line_count, "hold line_count");
    for (uint16_t i = 0; i < a->line_count; i++) {
        SAME_INT(a->lines[i].sku_index, b->lines[i].sku_index, "hold line sku");
        SAME_INT(a->lines[i].qty, b->lines[i].qty, "hold line qty");
    }
}

/* Room for every hold of the configurations here (the largest is small's);
 * static, so that a failed comparison leaves nothing allocated. */
#define LISTED_HOLDS_MAX 64
#define LISTED_KEYS_MAX 16
static engine_hold_view_t listed_a[LISTED_HOLDS_MAX], listed_b[LISTED_HOLDS_MAX];
static engine_idem_t listed_ka[LISTED_KEYS_MAX], listed_kb[LISTED_KEYS_MAX];

static void list_holds(const engine_t *a, const engine_t *b, hold_list_t *la, hold_list_t *lb)
{
    *la = (hold_list_t){listed_a, 0, LISTED_HOLDS_MAX};
    *lb = (hold_list_t){listed_b, 0, LISTED_HOLDS_MAX};
    engine_each_hold(a, collect_hold, la);
    engine_each_hold(b, collect_hold, lb);
}

static void same_engine_holds(const engine_t *a, const engine_t *b)
{
    hold_list_t la, lb;
    list_holds(a, b, &la, &lb);
    SAME_INT(la.count, lb.count, "holds active or retained");
    for (size_t i = 0; i < la.count; i++) {
        same_hold_view(&la.v[i], &lb.v[i]);
    }
}

static void same_engine_keys(const engine_t *a, const engine_t *b)
{
    idem_list_t la = {listed_ka, 0, LISTED_KEYS_MAX};
    idem_list_t lb = {listed_kb, 0, LISTED_KEYS_MAX};
    engine_each_idem(a, collect_idem, &la);
    engine_each_idem(b, collect_idem, &lb);
    SAME_INT(la.count, lb.count, "idempotency keys");
    for (size_t i = 0; i < la.count; i++) {
        SAME_TEXT(la.k[i].key, la.k[i].key_len, lb.k[i].key, lb.k[i].key_len, "idem key");
        SAME_INT(la.k[i].request_hash, lb.k[i].request_hash, "idem request_hash");
        SAME_INT(la.k[i].hold_id, lb.k[i].hold_id, "idem hold_id");
        SAME_INT(la.k[i].at_ms, lb.k[i].at_ms, "idem at_ms");
    }
}

static void same_engine(const engine_t *a, const engine_t *b, unsigned flags)
{
    engine_stats_t sa = engine_stats(a), sb = engine_stats(b);
    if (!(flags & SAME_BUT_ENGINE_TOTALS)) {
        SAME_INT(sa.holds_created, sb.holds_created, "engine holds_created");
        SAME_INT(sa.holds_committed, sb.holds_committed, "engine holds_committed");
        SAME_INT(sa.holds_released, sb.holds_released, "engine holds_released");
        SAME_INT(sa.holds_expired, sb.holds_expired, "engine holds_expired");
        SAME_INT(sa.holds_evicted, sb.holds_evicted, "engine holds_evicted");
        if (!(flags & SAME_BUT_REFUSAL_COUNTS)) {
            SAME_INT(sa.idem_replays, sb.idem_replays, "engine idem_replays");
        }
    }
    SAME_INT(sa.holds_active, sb.holds_active, "engine holds_active");
    SAME_INT(sa.holds_retained, sb.holds_retained, "engine holds_retained");
    SAME_INT(sa.skus, sb.skus, "engine skus");
    SAME_INT(sa.idem_keys, sb.idem_keys, "engine idem_keys");
    SAME_INT(sa.units_stock, sb.units_stock, "engine units_stock");
    SAME_INT(sa.units_held, sb.units_held, "engine units_held");
    SAME_INT(sa.units_sold, sb.units_sold, "engine units_sold");
    SAME_INT(a->now_ms, b->now_ms, "engine now_ms");
    SAME_INT(a->hold_seq, b->hold_seq, "engine hold_seq");
    SAME_INT(engine_next_expiry_ms(a), engine_next_expiry_ms(b), "engine next expiry");
    SAME_INT(engine_sku_count(a), engine_sku_count(b), "sku count");
    for (uint32_t i = 0; i < engine_sku_count(a); i++) {
        engine_sku_view_t va, vb;
        engine_sku_view(a, i, &va);
        engine_sku_view(b, i, &vb);
        SAME_TEXT(va.sku, va.sku_len, vb.sku, vb.sku_len, "sku name");
        SAME_INT(va.stock, vb.stock, "sku stock");
        SAME_INT(va.held, vb.held, "sku held");
        SAME_INT(va.sold, vb.sold, "sku sold");
        SAME_INT(va.available, vb.available, "sku available");
    }
    same_engine_holds(a, b);
    same_engine_keys(a, b);
    assert_true(engine_check(a) && engine_check(b));
}

static void same_stats(const guard_t *a, const guard_t *b, unsigned flags)
{
    guard_stats_t sa = guard_stats(a), sb = guard_stats(b);
    if (flags & SAME_BUT_REFUSAL_COUNTS) {
        memset(sa.denials, 0, sizeof sa.denials);
        memset(sb.denials, 0, sizeof sb.denials);
        memset(sa.challenges, 0, sizeof sa.challenges);
        memset(sb.challenges, 0, sizeof sb.challenges);
        sa.proofs_refused = sb.proofs_refused = 0;
    }
    for (int r = 0; r < POLICY_RULE_COUNT; r++) {
        SAME_INT(sa.denials[r], sb.denials[r], "stats denials");
        SAME_INT(sa.challenges[r], sb.challenges[r], "stats challenges");
    }
    SAME_INT(sa.proofs_accepted, sb.proofs_accepted, "stats proofs_accepted");
    SAME_INT(sa.proofs_refused, sb.proofs_refused, "stats proofs_refused");
    SAME_INT(sa.escalations_on, sb.escalations_on, "stats escalations_on");
    SAME_INT(sa.escalations_off, sb.escalations_off, "stats escalations_off");
    SAME_INT(sa.wait_joined, sb.wait_joined, "stats wait_joined");
    SAME_INT(sa.wait_offered, sb.wait_offered, "stats wait_offered");
    SAME_INT(sa.wait_fulfilled, sb.wait_fulfilled, "stats wait_fulfilled");
    SAME_INT(sa.wait_expired, sb.wait_expired, "stats wait_expired");
    SAME_INT(sa.wait_cancelled, sb.wait_cancelled, "stats wait_cancelled");
    SAME_INT(sa.revoked_holds, sb.revoked_holds, "stats revoked_holds");
    SAME_INT(sa.buy_now, sb.buy_now, "stats buy_now");
    SAME_INT(sa.identities, sb.identities, "stats identities");
    SAME_INT(sa.customer_skus, sb.customer_skus, "stats customer_skus");
    SAME_INT(sa.skus_escalated, sb.skus_escalated, "stats skus_escalated");
    SAME_INT(sa.waiting, sb.waiting, "stats waiting");
    /* With nothing masked the whole struct must match, not only the fields
     * named above (guard_stats_t is all 8- and 4-byte counters: no padding). */
    SAME_BYTES(&sa, &sb, sizeof sa, "guard_stats()");
}

static void same_skus(const guard_t *a, const guard_t *b, unsigned flags)
{
    SAME_INT(a->sku_policy_count, b->sku_policy_count, "sku policy count");
    for (uint32_t i = 0; i < engine_sku_count(&a->engine); i++) {
        const guard_sku_t *x = &a->skus[i], *y = &b->skus[i];
        SAME_INT(x->policy, y->policy, "sku policy slot");
        SAME_INT(x->escalated, y->escalated, "sku escalated");
        SAME_INT(x->marked, y->marked, "sku marked");
        SAME_INT(x->escalations, y->escalations, "sku escalations");
        SAME_INT(x->escalated_at_ms, y->escalated_at_ms, "sku escalated_at_ms");
        SAME_F64(x->started, y->started, "sku started");
        SAME_F64(x->committed, y->committed, "sku committed");
        SAME_INT(x->conversion_at_ms, y->conversion_at_ms, "sku conversion_at_ms");
        SAME_INT(x->wait_head, y->wait_head, "sku wait_head");
        SAME_INT(x->wait_tail, y->wait_tail, "sku wait_tail");
        SAME_INT(x->wait_count, y->wait_count, "sku wait_count");
        guard_sku_view_t va, vb;
        guard_sku_view(a, i, &va);
        guard_sku_view(b, i, &vb);
        SAME_INT(va.escalated, vb.escalated, "sku view escalated");
        SAME_INT(va.escalations, vb.escalations, "sku view escalations");
        SAME_INT(va.escalated_at_ms, vb.escalated_at_ms, "sku view escalated_at_ms");
        SAME_F64(va.conversion, vb.conversion, "sku view conversion");
        SAME_F64(va.recent_holds, vb.recent_holds, "sku view recent_holds");
        SAME_INT(va.waiting, vb.waiting, "sku view waiting");
        if (!(flags & SAME_BUT_REFUSAL_COUNTS)) {
            SAME_INT(x->denials, y->denials, "sku denials");
            SAME_INT(x->challenges, y->challenges, "sku challenges");
            SAME_INT(va.denials, vb.denials, "sku view denials");
            SAME_INT(va.challenges, vb.challenges, "sku view challenges");
        }
        uint64_t ma, mb;
        const policy_config_t *pa = guard_sku_policy(a, i, &ma);
        const policy_config_t *pb = guard_sku_policy(b, i, &mb);
        SAME_INT(ma, mb, "sku policy mask");
        SAME_BYTES(pa, pb, sizeof *pa, "sku effective policy");
    }
    for (uint32_t p = 0; p < a->sku_policy_count; p++) {
        SAME_BYTES(&a->sku_policies[p], &b->sku_policies[p], sizeof a->sku_policies[p],
                   "sku policy entry");
    }
}

static void same_identity_view(const guard_identity_view_t *x, const guard_identity_view_t *y)
{
    SAME_INT(x->kind, y->kind, "identity view kind");
    SAME_TEXT(x->value, x->value_len, y->value, y->value_len, "identity view value");
    SAME_INT(x->holds_active, y->holds_active, "identity view holds_active");
    SAME_INT(x->units_held, y->units_held, "identity view units_held");
    SAME_INT(x->holds_total, y->holds_total, "identity view holds_total");
    SAME_INT(x->commits_total, y->commits_total, "identity view commits_total");
    SAME_F64(x->budget_unit_s, y->budget_unit_s, "identity view budget");
    SAME_F64(x->risk, y->risk, "identity view risk");
}

static void same_identities(const guard_t *a, const guard_t *b)
{
    SAME_INT(a->id_hwm, b->id_hwm, "identity hwm");
    SAME_INT(a->id_free, b->id_free, "identity free list");
    SAME_INT(a->id_sweep, b->id_sweep, "identity sweep");
    /* Entries are zeroed before they are filled, so whole records compare. */
    for (uint32_t i = 0; i < a->id_hwm; i++) {
        if (memcmp(&a->ids[i], &b->ids[i], sizeof a->ids[i]) != 0) {
            differ(__LINE__, "identity entry", "slot %u (%s %.*s)", i,
                   a->ids[i].live ? "live" : "free", a->ids[i].len, a->ids[i].value);
        }
    }
    static guard_identity_view_t va[HF_TOP_IDENTITIES_MAX], vb[HF_TOP_IDENTITIES_MAX];
    for (int by = GUARD_TOP_HELD_UNITS; by <= GUARD_TOP_CONVERSION; by++) {
        uint32_t na = guard_identities_top(a, (guard_top_by_t)by, HF_TOP_IDENTITIES_MAX, va);
        uint32_t nb = guard_identities_top(b, (guard_top_by_t)by, HF_TOP_IDENTITIES_MAX, vb);
        SAME_INT(na, nb, "identities top count");
        for (uint32_t k = 0; k < na; k++) {
            same_identity_view(&va[k], &vb[k]);
        }
    }
    SAME_INT(a->cs_hwm, b->cs_hwm, "customer-sku hwm");
    SAME_INT(a->cs_free, b->cs_free, "customer-sku free list");
    SAME_INT(a->cs_sweep, b->cs_sweep, "customer-sku sweep");
    for (uint32_t i = 0; i < a->cs_hwm; i++) {
        SAME_BYTES(&a->cs[i], &b->cs[i], sizeof a->cs[i], "customer-sku entry");
    }
}

static void same_waits(const guard_t *a, const guard_t *b)
{
    SAME_INT(a->wait_hwm, b->wait_hwm, "waitlist hwm");
    SAME_INT(a->wait_done_head, b->wait_done_head, "waitlist finished head");
    SAME_INT(a->wait_done_tail, b->wait_done_tail, "waitlist finished tail");
    SAME_INT(a->wait_seq, b->wait_seq, "waitlist seq");
    for (uint32_t i = 0; i < a->wait_hwm; i++) {
        const guard_wait_t *x = &a->waits[i], *y = &b->waits[i];
        SAME_INT(x->id, y->id, "wait id");
        SAME_INT(x->hold_id, y->hold_id, "wait hold_id");
        SAME_INT(x->created_ms, y->created_ms, "wait created_ms");
        SAME_INT(x->finished_ms, y->finished_ms, "wait finished_ms");
        SAME_INT(x->sku, y->sku, "wait sku");
        SAME_INT(x->qty, y->qty, "wait qty");
        SAME_INT(x->next, y->next, "wait next");
        SAME_INT(x->state, y->state, "wait state");
        SAME_TEXT(x->customer, x->customer_len, y->customer, y->customer_len, "wait customer");
        SAME_TEXT(x->key, x->key_len, y->key, y->key_len, "wait idempotency key");
        guard_wait_view_t va, vb;
        bool fa = guard_wait_view(a, x->id, &va), fb = guard_wait_view(b, y->id, &vb);
        SAME_INT(fa, fb, "wait view found");
        if (fa) {
            SAME_INT(va.state, vb.state, "wait view state");
            SAME_INT(va.position, vb.position, "wait view position");
            SAME_INT(va.hold_id, vb.hold_id, "wait view hold_id");
        }
    }
}

static void same_guards(const guard_t *a, const guard_t *b, unsigned flags)
{
    check_guard(a);
    check_guard(b);
    same_engine(&a->engine, &b->engine, flags);
    SAME_BYTES(&a->policy, &b->policy, sizeof a->policy, "shop policy");
    SAME_INT(a->has_secret, b->has_secret, "has_secret");
    SAME_BYTES(a->secret, b->secret, sizeof a->secret, "secret");
    SAME_F64(a->shop_started, b->shop_started, "shop_started");
    SAME_F64(a->shop_committed, b->shop_committed, "shop_committed");
    SAME_INT(a->shop_at_ms, b->shop_at_ms, "shop_at_ms");
    same_stats(a, b, flags);
    same_skus(a, b, flags);
    same_identities(a, b);
    uint32_t hwm_a = engine_hold_slots_used(&a->engine), hwm_b = engine_hold_slots_used(&b->engine);
    uint32_t hwm = hwm_a > hwm_b ? hwm_a : hwm_b;
    for (uint32_t slot = 0; slot < hwm; slot++) {
        SAME_BYTES(&a->holds[slot], &b->holds[slot], sizeof a->holds[slot], "hold side record");
    }
    same_waits(a, b);
    SAME_INT(a->proof_count, b->proof_count, "used proofs");
    for (uint32_t k = 0; k < a->proof_count; k++) {
        const guard_proof_t *x = &a->proofs[(a->proof_head + k) % a->config.proofs_max];
        const guard_proof_t *y = &b->proofs[(b->proof_head + k) % b->config.proofs_max];
        SAME_INT(x->tag, y->tag, "used proof tag");
        SAME_INT(x->expires_ms, y->expires_ms, "used proof expiry");
    }
    SAME_INT(a->event_seq, b->event_seq, "event seq");
    for (uint32_t k = 0; k < GUARD_EVENTS_MAX && k < a->event_seq; k++) {
        SAME_INT(a->events[k].seq, b->events[k].seq, "event seq");
        SAME_INT(a->events[k].at_ms, b->events[k].at_ms, "event at_ms");
        SAME_INT(a->events[k].sku, b->events[k].sku, "event sku");
        SAME_INT(a->events[k].on, b->events[k].on, "event on");
    }
}

/* A fresh guard restored from g's snapshot, the way the store restores one. */
static guard_t *restore_copy(const guard_t *g)
{
    store_buf_t b = {0};
    record_encode_snapshot(&b, g);
    buf_own(&b);
    guard_t *r = guard_new(&g->config);
    record_reader_t rd = {b.data, b.size, true};
    uint64_t records = 0;
    char err[256] = "";
    bool ok = record_restore_snapshot(&rd, r, &records, err, sizeof err);
    if (!ok) {
        print_error("restore refused: %s\n", err);
    }
    assert_true(ok);
    buf_free(&b);
    check_guard(r);
    return r;
}

/* ------------------------------------------------ splitmix64, as elsewhere */

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

/* ------------------------------------------------------------ the drive */

#define STEPS_DEFAULT 10000L
#define CHECKPOINT_EVERY 1000L
#define RECENT_HOLDS 48
#define RECENT_WAITS 24
#define DRIVE_SKUS 4 /* put; drive_skus[DRIVE_SKUS] ("ghost") never is */
#define DRIVE_CUSTOMERS 6
#define DRIVE_IPS 4
#define DRIVE_PREFIXES 3
#define DRIVE_FINGERPRINTS 3
#define DRIVE_KEYS 6

static const char *const drive_skus[DRIVE_SKUS + 1] = {"sku-a", "sku-b", "sku-c", "sku-d", "ghost"};
/* One name long enough to be interned by the engine. */
static const char *const drive_customers[DRIVE_CUSTOMERS] = {
    "c0", "c1", "c2", "c3", "c4", "c5-0123456789-0123456789-0123456789ab"};
static const char *const drive_ips[DRIVE_IPS] = {"10.0.0.1", "10.0.0.2", "10.0.1.7", "2001:db8::1"};
static const char *const drive_prefixes[DRIVE_PREFIXES] = {"10.0.0.0/24", "10.0.1.0/24",
                                                           "2001:db8::/56"};
static const char *const drive_fingerprints[DRIVE_FINGERPRINTS] = {"fp-0", "fp-1", "fp-2"};
static const char *const drive_keys[DRIVE_KEYS] = {"key-0", "key-1", "key-2",
                                                   "key-3", "key-4", "key-5"};

/* Small enough that every table fills now and then. */
static const guard_config_t drive_config = {
    .engine = {.skus_max = 6, .holds_max = 40, .idem_keys_max = 12},
    .identities_max = 12,
    .customer_skus_max = 30, /* each identity kind has its units per sku */
    .waitlist_max = 10,
    .sku_policies_max = 2,
    .proofs_max = 6,
};

enum {
    STEP_PUT,
    STEP_HOLD,
    STEP_PROOF_AGAIN,
    STEP_COMMIT,
    STEP_RELEASE,
    STEP_EXTEND,
    STEP_JOIN,
    STEP_CANCEL,
    STEP_REVOKE,
    STEP_POLICY,
    STEP_SKU_POLICY,
    STEP_RECLAIM,
    STEP_CLOCK,
    STEP_KINDS
};
static const char *const step_names[STEP_KINDS] = {
    "put",    "hold",   "proof-again", "commit",     "release", "extend", "join",
    "cancel", "revoke", "policy",      "sku-policy", "reclaim", "clock"};

typedef struct {
    uint64_t seed;
    long steps, step;
    rng_t rng;
    int64_t clock;
    char what[200];
    guard_t *live[2];  /* the guard under test and its twin */
    guard_t *replica;  /* fed the journal as it grows */
    guard_t *restored; /* from the last checkpoint's snapshot, then fed the journal */
    guard_op_t *journal;
    size_t journal_count, journal_max;
    uint64_t holds[RECENT_HOLDS];
    uint64_t waits[RECENT_WAITS];
    size_t hold_next, wait_next;
    guard_hold_request_t spent; /* a request whose proof was used */
    bool has_spent;
    uint64_t results[STEP_KINDS][GUARD_RESULT_COUNT];
    uint64_t proofs_solved, restores;
    /* The first time a restored guard could not follow the journal: kept
     * for the end of the run, so that the run still checks the rest. */
    char diverged[700];
} drive_t;

static void drive_where(const drive_t *d)
{
    snprintf(where, sizeof where, "seed=%llu step=%ld now=%lld op: %s (replay with HF_SEED=%llu)",
             (unsigned long long)d->seed, d->step, (long long)d->clock, d->what,
             (unsigned long long)d->seed);
}

static void same_outcome(const guard_outcome_t *a, const guard_outcome_t *b)
{
    SAME_INT(a->result, b->result, "outcome result");
    SAME_INT(a->engine.result, b->engine.result, "outcome engine result");
    SAME_INT(a->engine.changed, b->engine.changed, "outcome engine changed");
    SAME_INT(a->engine.replayed, b->engine.replayed, "outcome engine replayed");
    SAME_INT(a->replayed, b->replayed, "outcome replayed");
    SAME_INT(a->id, b->id, "outcome id");
    SAME_INT(a->engine.created, b->engine.created, "outcome engine created");
    SAME_INT(a->engine.hold_id, b->engine.hold_id, "outcome hold_id");
    SAME_INT(a->engine.sku_index, b->engine.sku_index, "outcome sku_index");
    SAME_INT(a->engine.available, b->engine.available, "outcome available");
    SAME_INT(a->decision.verdict, b->decision.verdict, "decision verdict");
    SAME_INT(a->decision.rule, b->decision.rule, "decision rule");
    SAME_INT(a->decision.limit, b->decision.limit, "decision limit");
    SAME_INT(a->decision.current, b->decision.current, "decision current");
    SAME_INT(a->decision.retry_after_ms, b->decision.retry_after_ms, "decision retry_after_ms");
    SAME_INT(a->decision.line_index, b->decision.line_index, "decision line_index");
    SAME_INT(a->decision.bits, b->decision.bits, "decision bits");
    SAME_INT(a->decision.ttl_ms, b->decision.ttl_ms, "decision ttl_ms");
    SAME_F64(a->decision.cost_unit_ms, b->decision.cost_unit_ms, "decision cost_unit_ms");
    SAME_F64(a->decision.risk, b->decision.risk, "decision risk");
    SAME_INT(a->changed, b->changed, "outcome changed");
    SAME_INT(a->id, b->id, "outcome id");
    SAME_INT(a->revoked, b->revoked, "outcome revoked");
}

/* Applies a journaled op to a guard that follows the journal. */
static void follow(guard_t *g, const guard_op_t *op, const guard_outcome_t *live)
{
    guard_op_t copy = *op;
    guard_outcome_t o = guard_apply(g, &copy);
    check_guard(g);
    if (o.result != GUARD_OK || !o.changed || o.revoked != live->revoked || o.id != live->id) {
        differ(__LINE__, "journal replay", "%s changed=%d revoked %u vs %u, id %llu vs %llu",
               guard_result_name(o.result), o.changed, o.revoked, live->revoked,
               (unsigned long long)o.id, (unsigned long long)live->id);
    }
    if (op->kind == GUARD_OP_ENGINE && op->engine.kind == ENGINE_OP_HOLD_CREATE) {
        SAME_INT(o.engine.hold_id, live->engine.hold_id, "replayed hold id");
    }
}

static void diverge(drive_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The restored guard went its own way: noted, and dropped until the next
 * checkpoint restores another. */
static void diverge(drive_t *d, const char *fmt, ...)
{
    if (d->diverged[0] == '\0') {
        char msg[200];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        snprintf(d->diverged, sizeof d->diverged, "%s; at: %s", msg, where);
    }
    guard_free(d->restored);
    d->restored = NULL;
}

static uint32_t chunks_for(uint32_t line_count)
{
    return line_count <= 1 ? 0 : (line_count - 1 + ENGINE_CHUNK_LINES - 1) / ENGINE_CHUNK_LINES;
}

/* A create with a recorded id takes that id's slot, after evicting the
 * oldest finished holds its lines need room from; the engine asserts that
 * the slot is then free or the oldest finished hold, as it is when the
 * replaying engine saw what the recording one saw. */
static bool slot_fits(const engine_t *e, uint64_t hold_id, uint16_t line_count)
{
    uint32_t slot = engine_hold_slot(hold_id);
    if (slot >= e->hold_hwm || e->holds[slot].state == ENGINE_HOLD_FREE) {
        return true;
    }
    uint32_t head = e->finished_head;
    uint32_t available = e->chunks_max - e->chunk_hwm + e->chunk_free_count;
    while (available < chunks_for(line_count) && head != ENGINE_NONE) {
        if (head == slot) {
            return true; /* evicted for the lines: free */
        }
        available += chunks_for(e->holds[head].line_count);
        head = e->holds[head].next;
    }
    return head == slot;
}

static void follow_restored(drive_t *d, const guard_op_t *op, const guard_outcome_t *live)
{
    guard_t *g = d->restored;
    bool create = op->kind == GUARD_OP_ENGINE && op->engine.kind == ENGINE_OP_HOLD_CREATE;
    advance(g, op->engine.now_ms); /* as guard_apply() will, before the create */
    if (create && !slot_fits(&g->engine, op->engine.u.hold_create.hold_id,
                             op->engine.u.hold_create.line_count)) {
        diverge(d, "restored guard: the journal creates hold %llu, whose slot holds another",
                (unsigned long long)op->engine.u.hold_create.hold_id);
        return;
    }
    guard_op_t copy = *op;
    guard_outcome_t o = guard_apply(g, &copy);
    check_guard(g);
    if (o.result != GUARD_OK || !o.changed || o.revoked != live->revoked || o.id != live->id ||
        (create && o.engine.hold_id != live->engine.hold_id)) {
        diverge(d, "restored guard: a journaled op answered %s (engine %s)",
                guard_result_name(o.result), engine_result_name(o.engine.result));
    }
}

static void journal(drive_t *d, const guard_op_t *op, const guard_outcome_t *live)
{
    assert_true(live->changed);
    if (d->journal_count == d->journal_max) {
        d->journal_max = d->journal_max == 0 ? 1024 : 2 * d->journal_max;
        d->journal = realloc(d->journal, d->journal_max * sizeof *d->journal);
        assert_non_null(d->journal);
    }
    d->journal[d->journal_count++] = *op;
    follow(d->replica, op, live);
    if (d->restored != NULL) {
        follow_restored(d, op, live);
    }
}

static void tally(drive_t *d, int kind, const guard_outcome_t *o)
{
    d->results[kind][o->result]++;
}

/* The same op to both live guards; a change is journaled. */
static guard_outcome_t live_apply(drive_t *d, int kind, const guard_op_t *op)
{
    guard_op_t ops[2] = {*op, *op};
    guard_outcome_t o[2];
    drive_where(d);
    for (int i = 0; i < 2; i++) {
        o[i] = guard_apply(d->live[i], &ops[i]);
        check_guard(d->live[i]);
    }
    same_outcome(&o[0], &o[1]);
    if (o[0].changed) {
        journal(d, &ops[0], &o[0]);
    }
    tally(d, kind, &o[0]);
    return o[0];
}

static void remember_hold(drive_t *d, uint64_t id)
{
    d->holds[d->hold_next++ % RECENT_HOLDS] = id;
}

static guard_outcome_t live_hold(drive_t *d, int kind, const guard_hold_request_t *req)
{
    guard_op_t ops[2];
    guard_outcome_t o[2];
    drive_where(d);
    for (int i = 0; i < 2; i++) {
        o[i] = guard_hold(d->live[i], req, d->clock, &ops[i]);
        check_guard(d->live[i]);
    }
    same_outcome(&o[0], &o[1]);
    if (o[0].changed && o[0].result != GUARD_OK) {
        /* Refused after sweeping a full table: the op is the sweep. */
        SAME_INT(ops[0].kind, GUARD_OP_SWEEP, "refused hold's op");
        SAME_INT(ops[1].kind, GUARD_OP_SWEEP, "refused hold's op");
        journal(d, &ops[0], &o[0]);
    } else if (o[0].changed) {
        SAME_INT(ops[0].proof_tag, ops[1].proof_tag, "hold op proof");
        SAME_INT(ops[0].engine.u.hold_create.ttl_ms, ops[1].engine.u.hold_create.ttl_ms,
                 "hold op ttl");
        journal(d, &ops[0], &o[0]);
        remember_hold(d, o[0].engine.hold_id);
    }
    tally(d, kind, &o[0]);
    return o[0];
}

static guard_hold_request_t random_request(drive_t *d)
{
    rng_t *r = &d->rng;
    guard_hold_request_t req;
    memset(&req, 0, sizeof req);
    engine_hold_create_t *c = &req.create;
    set_text(c->customer, &c->customer_len, drive_customers[rng_below(r, DRIVE_CUSTOMERS)]);
    if (rng_percent(r, 70)) {
        set_text(c->ip, &c->ip_len, drive_ips[rng_below(r, DRIVE_IPS)]);
    }
    if (rng_percent(r, 50)) {
        set_text(c->fingerprint, &c->fingerprint_len,
                 drive_fingerprints[rng_below(r, DRIVE_FINGERPRINTS)]);
    }
    c->ttl_ms = rng_percent(r, 50) ? 0 : 1000 + (int64_t)rng_below(r, 900000);
    c->line_count = rng_percent(r, 75) ? 1 : 2;
    int first = rng_percent(r, 3) ? DRIVE_SKUS : (int)rng_below(r, DRIVE_SKUS);
    for (uint16_t i = 0; i < c->line_count; i++) {
        int sku = i == 0 ? first : (first + 1 + (int)rng_below(r, DRIVE_SKUS - 1)) % DRIVE_SKUS;
        set_text(c->lines[i].sku, &c->lines[i].sku_len, drive_skus[sku]);
        c->lines[i].qty = 1 + (uint32_t)rng_below(r, 4);
    }
    if (rng_percent(r, 10)) {
        set_text(c->idem_key, &c->idem_key_len, drive_keys[rng_below(r, DRIVE_KEYS)]);
    }
    req.buy_now = rng_percent(r, 8);
    if (req.buy_now && rng_percent(r, 80)) {
        req.order_ref_len =
            (uint8_t)snprintf(req.order_ref, sizeof req.order_ref, "order-%ld", d->step);
    }
    return req;
}

static void step_put(drive_t *d)
{
    int sku = (int)rng_below(&d->rng, DRIVE_SKUS);
    /* Mostly a restock above what is held and sold, so that sales go on;
     * sometimes any stock, which may be refused. */
    int64_t stock = (int64_t)rng_below(&d->rng, 13);
    uint32_t index;
    if (rng_percent(&d->rng, 85) &&
        engine_sku_find(&d->live[0]->engine, drive_skus[sku], strlen(drive_skus[sku]), &index)) {
        engine_sku_view_t v;
        engine_sku_view(&d->live[0]->engine, index, &v);
        stock += v.held + v.sold;
    }
    guard_op_t op = {.kind = GUARD_OP_ENGINE};
    op.engine = (engine_op_t){.kind = ENGINE_OP_SKU_PUT, .now_ms = d->clock};
    set_text(op.engine.u.sku_put.sku, &op.engine.u.sku_put.sku_len, drive_skus[sku]);
    op.engine.u.sku_put.stock = stock;
    snprintf(d->what, sizeof d->what, "put %s stock %lld", drive_skus[sku], (long long)stock);
    live_apply(d, STEP_PUT, &op);
}

static void step_hold(drive_t *d)
{
    guard_hold_request_t req = random_request(d);
    snprintf(d->what, sizeof d->what, "hold %.*s %.*s x%u%s lines=%u ttl=%lld%s",
             req.create.customer_len, req.create.customer, req.create.lines[0].sku_len,
             req.create.lines[0].sku, req.create.lines[0].qty, req.buy_now ? " buy-now" : "",
             req.create.line_count, (long long)req.create.ttl_ms,
             req.create.idem_key_len > 0 ? " keyed" : "");
    guard_outcome_t o = live_hold(d, STEP_HOLD, &req);
    if (o.result != GUARD_CHALLENGED || !rng_percent(&d->rng, 70)) {
        return;
    }
    /* Both live guards hold the same secret, so they issue the same prefix. */
    char pa[GUARD_PREFIX_TEXT_MAX + 1], pb[GUARD_PREFIX_TEXT_MAX + 1];
    uint64_t hash = guard_request_hash(&req);
    int64_t ea = guard_challenge_make(d->live[0], hash, o.decision.bits, d->clock, pa);
    int64_t eb = guard_challenge_make(d->live[1], hash, o.decision.bits, d->clock, pb);
    assert_int_equal(ea, eb);
    assert_string_equal(pa, pb);
    solve_proof(d->live[0], hash, o.decision.bits, d->clock, &req.proof_tag, &req.proof_expires_ms,
                &req.proof_bits, NULL);
    d->proofs_solved++;
    strncat(d->what, " +proof", sizeof d->what - strlen(d->what) - 1);
    o = live_hold(d, STEP_HOLD, &req);
    if (o.changed) {
        d->spent = req;
        d->has_spent = true;
    }
}

static void step_proof_again(drive_t *d)
{
    if (!d->has_spent) {
        return;
    }
    snprintf(d->what, sizeof d->what, "the same proof again");
    live_hold(d, STEP_PROOF_AGAIN, &d->spent);
}

static uint64_t pick_hold(drive_t *d)
{
    if (rng_percent(&d->rng, 25)) {
        uint64_t w = d->waits[rng_below(&d->rng, RECENT_WAITS)];
        guard_wait_view_t v;
        if (w != 0 && guard_wait_view(d->live[0], w, &v) && v.state == GUARD_WAIT_OFFERED) {
            return v.hold_id;
        }
    }
    if (rng_percent(&d->rng, 2)) {
        return 12345; /* never issued */
    }
    if (rng_percent(&d->rng, 60)) { /* one of the last few: likely still active */
        return d->holds[(d->hold_next + RECENT_HOLDS - 1 - rng_below(&d->rng, 4)) % RECENT_HOLDS];
    }
    return d->holds[rng_below(&d->rng, RECENT_HOLDS)];
}

static void step_finish(drive_t *d, engine_op_kind_t kind)
{
    uint64_t id = pick_hold(d);
    if (id == 0) {
        return;
    }
    guard_op_t op = {.kind = GUARD_OP_ENGINE};
    op.engine = (engine_op_t){.kind = kind, .now_ms = d->clock};
    op.engine.u.hold.hold_id = id;
    if (kind == ENGINE_OP_HOLD_COMMIT && rng_percent(&d->rng, 50)) {
        set_text(op.engine.u.hold.order_ref, &op.engine.u.hold.order_ref_len, "order");
    } else if (kind == ENGINE_OP_HOLD_RELEASE && rng_percent(&d->rng, 50)) {
        set_text(op.reason, &op.reason_len, "changed my mind");
    }
    snprintf(d->what, sizeof d->what, "%s hold %llu",
             kind == ENGINE_OP_HOLD_COMMIT ? "commit" : "release", (unsigned long long)id);
    live_apply(d, kind == ENGINE_OP_HOLD_COMMIT ? STEP_COMMIT : STEP_RELEASE, &op);
}

static void step_extend(drive_t *d)
{
    uint64_t id = pick_hold(d);
    int64_t ttl_ms = 1000 + (int64_t)rng_below(&d->rng, 1800000);
    if (id == 0) {
        return;
    }
    snprintf(d->what, sizeof d->what, "extend hold %llu by %lld", (unsigned long long)id,
             (long long)ttl_ms);
    drive_where(d);
    guard_op_t ops[2];
    guard_outcome_t o[2];
    for (int i = 0; i < 2; i++) {
        o[i] = guard_extend(d->live[i], id, ttl_ms, d->clock, &ops[i]);
        check_guard(d->live[i]);
    }
    same_outcome(&o[0], &o[1]);
    if (o[0].changed) {
        journal(d, &ops[0], &o[0]);
    }
    tally(d, STEP_EXTEND, &o[0]);
}

static void step_join(drive_t *d)
{
    int sku = rng_percent(&d->rng, 3) ? DRIVE_SKUS : (int)rng_below(&d->rng, DRIVE_SKUS);
    const char *customer = drive_customers[rng_below(&d->rng, DRIVE_CUSTOMERS)];
    guard_op_t op = {.kind = GUARD_OP_WAIT_JOIN, .engine = {.now_ms = d->clock}};
    set_text(op.u.wait_join.sku, &op.u.wait_join.sku_len, drive_skus[sku]);
    set_text(op.u.wait_join.customer, &op.u.wait_join.customer_len, customer);
    op.u.wait_join.qty = 1 + (uint32_t)rng_below(&d->rng, 4);
    /* Half the joins carry a key from a small pool, so that retries,
     * mismatches and keys forgotten with their slot all happen. */
    char key[8] = "";
    if (rng_percent(&d->rng, 50)) {
        snprintf(key, sizeof key, "k%u", (unsigned)rng_below(&d->rng, 24));
        set_text(op.u.wait_join.idem_key, &op.u.wait_join.idem_key_len, key);
    }
    snprintf(d->what, sizeof d->what, "join %s for %s x%u key %s", drive_skus[sku], customer,
             op.u.wait_join.qty, key);
    guard_outcome_t o = live_apply(d, STEP_JOIN, &op);
    if (o.result == GUARD_OK && !o.replayed) {
        d->waits[d->wait_next++ % RECENT_WAITS] = o.id;
    }
}

static void step_cancel(drive_t *d)
{
    uint64_t id = d->waits[rng_below(&d->rng, RECENT_WAITS)];
    if (id == 0) {
        return;
    }
    guard_op_t op = {.kind = GUARD_OP_WAIT_CANCEL, .engine = {.now_ms = d->clock}};
    op.u.wait_id = id;
    snprintf(d->what, sizeof d->what, "cancel wait %llu", (unsigned long long)id);
    live_apply(d, STEP_CANCEL, &op);
}

static void step_revoke(drive_t *d)
{
    guard_op_t op = {.kind = GUARD_OP_REVOKE, .engine = {.now_ms = d->clock}};
    policy_id_kind_t kind = (policy_id_kind_t)rng_below(&d->rng, POLICY_ID_KINDS);
    const char *value =
        kind == POLICY_ID_CUSTOMER    ? drive_customers[rng_below(&d->rng, DRIVE_CUSTOMERS)]
        : kind == POLICY_ID_IP_PREFIX ? drive_prefixes[rng_below(&d->rng, DRIVE_PREFIXES)]
                                      : drive_fingerprints[rng_below(&d->rng, DRIVE_FINGERPRINTS)];
    op.u.revoke.kind = kind;
    set_text(op.u.revoke.value, &op.u.revoke.value_len, value);
    set_text(op.reason, &op.reason_len, "revoked");
    snprintf(d->what, sizeof d->what, "revoke %s %s", policy_id_kind_name(kind), value);
    live_apply(d, STEP_REVOKE, &op);
}

/* A valid policy whose limits the drive's small numbers reach; proofs stay
 * cheap (at most 2^6 hashes). */
static policy_config_t random_policy(rng_t *r)
{
    policy_config_t p = policy_config_default();
    p.quantity_enabled = rng_percent(r, 85);
    p.quantity_line_qty_max = 2 + (int64_t)rng_below(r, 4);
    p.quantity_customer_sku_units_max = 3 + (int64_t)rng_below(r, 8);
    p.quantity_customer_sku_window_ms = MINUTE_MS + (int64_t)rng_below(r, 600000);
    p.identity_enabled = rng_percent(r, 85);
    p.identity_customer_holds_max = 2 + (int64_t)rng_below(r, 4);
    p.identity_customer_units_max = 4 + (int64_t)rng_below(r, 10);
    p.identity_ip_prefix_holds_max = 4 + (int64_t)rng_below(r, 10);
    p.identity_fingerprint_holds_max = 3 + (int64_t)rng_below(r, 5);
    p.budget_enabled = rng_percent(r, 85);
    p.budget_customer_unit_s = 300 + (int64_t)rng_below(r, 3000);
    p.budget_ip_prefix_unit_s = 1000 + (int64_t)rng_below(r, 6000);
    p.budget_fingerprint_unit_s = 600 + (int64_t)rng_below(r, 3000);
    p.budget_refill_ms = MINUTE_MS + (int64_t)rng_below(r, 3600000);
    p.hold_share_held_pct_max = 40 + (int64_t)rng_below(r, 61);
    p.ttl_adaptive = rng_percent(r, 80);
    p.ttl_default_ms = 5000 + (int64_t)rng_below(r, 600000);
    p.ttl_max_ms = p.ttl_default_ms + (int64_t)rng_below(r, 900000);
    p.ttl_scarce_ms = 1000 + (int64_t)rng_below(r, (uint64_t)p.ttl_default_ms - 1000 + 1);
    p.ttl_life_max_ms = MINUTE_MS + (int64_t)rng_below(r, 1800000);
    p.reputation_enabled = rng_percent(r, 85);
    p.reputation_half_life_ms = MINUTE_MS + (int64_t)rng_below(r, 3600000);
    p.reputation_min_holds = 2 + (int64_t)rng_below(r, 4);
    p.reputation_suspect_pct = 10 + (int64_t)rng_below(r, 41);
    p.challenge_enabled = rng_percent(r, 70);
    p.challenge_free_units = (int64_t)rng_below(r, 4);
    p.challenge_base_bits = 1 + (int64_t)rng_below(r, 3);
    p.challenge_bits_max = p.challenge_base_bits + (int64_t)rng_below(r, 7 - p.challenge_base_bits);
    p.challenge_risk_bits = (int64_t)rng_below(r, 3);
    p.challenge_ttl_ms = 10000 + (int64_t)rng_below(r, 120000);
    p.waitlist_enabled = rng_percent(r, 90);
    p.waitlist_offer_ttl_ms = 1000 + (int64_t)rng_below(r, 120000);
    p.escalation_enabled = rng_percent(r, 80);
    p.escalation_window_ms = MINUTE_MS + (int64_t)rng_below(r, 240000);
    p.escalation_min_holds = 3 + (int64_t)rng_below(r, 8);
    p.escalation_conversion_pct = 10 + (int64_t)rng_below(r, 31);
    p.escalation_recover_pct = p.escalation_conversion_pct + (int64_t)rng_below(r, 41);
    p.escalation_available_pct = 20 + (int64_t)rng_below(r, 41);
    p.escalation_ttl_ms = 1000 + (int64_t)rng_below(r, 120000);
    p.escalation_held_pct_max = (int64_t)rng_below(r, 31);
    p.escalation_newcomer_held_pct = 20 + (int64_t)rng_below(r, 81);
    p.quantity_fingerprint_sku_units_max = 3 + (int64_t)rng_below(r, 10);
    p.quantity_ip_prefix_sku_units_max = 5 + (int64_t)rng_below(r, 16);
    p.newcomer_enabled = rng_percent(r, 85);
    p.newcomer_pool_pct = (int64_t)rng_below(r, 101);
    p.newcomer_free_units = (int64_t)rng_below(r, 4);
    p.ttl_pay_floor = rng_percent(r, 50);
    p.reclaim_enabled = rng_percent(r, 80);
    p.reclaim_pay_pct = 50 + (int64_t)rng_below(r, 51);
    p.reclaim_floor_ms = 10000 + (int64_t)rng_below(r, 110000);
    p.reclaim_min_commits = 1 + (int64_t)rng_below(r, 5);
    p.reclaim_window_ms = MINUTE_MS + (int64_t)rng_below(r, 3600000);
    policy_field_t bad;
    assert_true(policy_config_valid(&p, &bad));
    return p;
}

static void step_policy(drive_t *d)
{
    guard_op_t op = {.kind = GUARD_OP_POLICY_PUT, .engine = {.now_ms = d->clock}};
    op.u.policy = random_policy(&d->rng);
    snprintf(d->what, sizeof d->what, "policy put");
    live_apply(d, STEP_POLICY, &op);
}

/* Fields a sku may set that take part in no relation between fields, so
 * that any mix with any shop policy stays valid. */
static const policy_field_t sku_fields[] = {
    POLICY_F_quantity_enabled,
    POLICY_F_quantity_line_qty_max,
    POLICY_F_quantity_customer_sku_units_max,
    POLICY_F_hold_share_held_pct_max,
    POLICY_F_ttl_adaptive,
    POLICY_F_challenge_enabled,
    POLICY_F_challenge_free_units,
    POLICY_F_waitlist_enabled,
    POLICY_F_waitlist_offer_ttl_ms,
    POLICY_F_escalation_enabled,
    POLICY_F_escalation_min_holds,
    POLICY_F_escalation_available_pct,
    POLICY_F_escalation_ttl_ms,
    POLICY_F_escalation_held_pct_max,
};

static void step_sku_policy(drive_t *d)
{
    int sku = rng_percent(&d->rng, 5) ? DRIVE_SKUS : (int)rng_below(&d->rng, DRIVE_SKUS);
    guard_op_t op = {.kind = GUARD_OP_SKU_POLICY, .engine = {.now_ms = d->clock}};
    set_text(op.u.sku_policy.sku, &op.u.sku_policy.sku_len, drive_skus[sku]);
    op.u.sku_policy.values = random_policy(&d->rng);
    for (size_t i = 0; i < sizeof sku_fields / sizeof sku_fields[0]; i++) {
        assert_true(policy_field_info(sku_fields[i])->sku);
        if (rng_percent(&d->rng, 30)) {
            op.u.sku_policy.mask |= 1ull << sku_fields[i];
        }
    }
    snprintf(d->what, sizeof d->what, "sku policy %s mask %llx", drive_skus[sku],
             (unsigned long long)op.u.sku_policy.mask);
    live_apply(d, STEP_SKU_POLICY, &op);
}

/* The server's tick: carts taken back for buyers who wait. */
static void step_reclaim(drive_t *d)
{
    snprintf(d->what, sizeof d->what, "reclaim");
    drive_where(d);
    guard_op_t ops[2];
    guard_outcome_t o[2];
    for (int i = 0; i < 2; i++) {
        o[i] = guard_reclaim(d->live[i], d->clock, &ops[i]);
        check_guard(d->live[i]);
    }
    same_outcome(&o[0], &o[1]);
    if (o[0].changed) {
        SAME_INT(ops[0].kind, GUARD_OP_RECLAIM, "reclaim op");
        SAME_INT(ops[0].u.reclaim.count, ops[1].u.reclaim.count, "reclaimed holds");
        for (uint16_t k = 0; k < ops[0].u.reclaim.count; k++) {
            SAME_INT(ops[0].u.reclaim.holds[k], ops[1].u.reclaim.holds[k], "reclaimed hold");
        }
        journal(d, &ops[0], &o[0]);
    }
    tally(d, STEP_RECLAIM, &o[0]);
}

static void step_clock(drive_t *d)
{
    unsigned roll = (unsigned)rng_below(&d->rng, 1000);
    int64_t step_ms = roll < 800   ? (int64_t)rng_below(&d->rng, 3000)
                      : roll < 995 ? (int64_t)rng_below(&d->rng, 700000)
                                   : DAY_MS + (int64_t)rng_below(&d->rng, 3600000);
    d->clock += step_ms;
    snprintf(d->what, sizeof d->what, "clock +%lld", (long long)step_ms);
    if (rng_percent(&d->rng, 50)) {
        drive_where(d);
        advance(d->live[0], d->clock); /* as the server's reads do */
        advance(d->live[1], d->clock);
    }
}

static void drive_step(drive_t *d)
{
    unsigned roll = (unsigned)rng_below(&d->rng, 1000);
    if (roll < 50) {
        step_put(d);
    } else if (roll < 450) {
        step_hold(d);
    } else if (roll < 460) {
        step_proof_again(d);
    } else if (roll < 560) {
        step_finish(d, ENGINE_OP_HOLD_COMMIT);
    } else if (roll < 630) {
        step_finish(d, ENGINE_OP_HOLD_RELEASE);
    } else if (roll < 690) {
        step_extend(d);
    } else if (roll < 750) {
        step_join(d);
    } else if (roll < 780) {
        step_cancel(d);
    } else if (roll < 795) {
        step_revoke(d);
    } else if (roll < 805) {
        step_policy(d);
    } else if (roll < 815) {
        step_sku_policy(d);
    } else if (roll < 845) {
        step_reclaim(d);
    } else {
        step_clock(d);
    }
}

/* The first hold (by a's visiting order) that b has under another id or
 * not at all, or 0 when both have the same ids in the same order. */
static uint64_t first_hold_apart(const engine_t *a, const engine_t *b)
{
    hold_list_t la, lb;
    list_holds(a, b, &la, &lb);
    uint64_t apart = 0;
    for (size_t i = 0; i < la.count && apart == 0; i++) {
        apart = i >= lb.count || la.v[i].id != lb.v[i].id ? la.v[i].id : 0;
    }
    return apart;
}

/* Everything that follows the guard under test, brought to its time. */
static void checkpoint(drive_t *d)
{
    snprintf(d->what, sizeof d->what, "checkpoint");
    drive_where(d);
    for (int i = 0; i < 2; i++) {
        advance(d->live[i], d->clock);
    }
    snprintf(d->what, sizeof d->what, "checkpoint: the twin");
    drive_where(d);
    same_guards(d->live[0], d->live[1], SAME_ALL);
    snprintf(d->what, sizeof d->what, "checkpoint: the replica");
    drive_where(d);
    advance(d->replica, d->clock);
    same_guards(d->live[0], d->replica, SAME_BUT_REFUSAL_COUNTS);
    if (d->restored != NULL) {
        snprintf(d->what, sizeof d->what, "checkpoint: restored at the last one, then the journal");
        drive_where(d);
        advance(d->restored, d->clock);
        uint64_t a = first_hold_apart(&d->live[0]->engine, &d->restored->engine);
        for (uint32_t i = 0; a == 0 && i < d->live[0]->wait_hwm && i < d->restored->wait_hwm; i++) {
            uint64_t x = d->live[0]->waits[i].hold_id, y = d->restored->waits[i].hold_id;
            a = x != y ? x : 0; /* an offer's id, kept after its hold is forgotten */
        }
        if (a != 0) {
            diverge(d, "restored guard: hold %llu is not the same hold there",
                    (unsigned long long)a);
        } else {
            same_guards(d->live[0], d->restored, SAME_BUT_REFUSAL_COUNTS | SAME_BUT_ENGINE_TOTALS);
            guard_free(d->restored);
        }
    }
    snprintf(d->what, sizeof d->what, "checkpoint: restored from a snapshot");
    drive_where(d);
    d->restored = restore_copy(d->live[0]);
    d->restores++;
    /* A snapshot carries the refusal counters too. */
    same_guards(d->live[0], d->restored, SAME_BUT_ENGINE_TOTALS);
}

/* A fresh guard fed the whole journal, and nothing else, must end the same. */
static void replay_journal(drive_t *d)
{
    snprintf(d->what, sizeof d->what, "replay of the whole journal");
    drive_where(d);
    guard_t *g = guard_new(&drive_config);
    for (size_t i = 0; i < d->journal_count; i++) {
        guard_op_t op = d->journal[i];
        guard_outcome_t o = guard_apply(g, &op);
        check_guard(g);
        if (o.result != GUARD_OK || !o.changed) {
            differ(__LINE__, "journal replay", "op %zu: %s", i, guard_result_name(o.result));
        }
    }
    advance(g, d->clock);
    same_guards(d->live[0], g, SAME_BUT_REFUSAL_COUNTS);
    guard_free(g);
}

static void print_summary(const drive_t *d)
{
    guard_stats_t s = guard_stats(d->live[0]);
    engine_stats_t e = engine_stats(&d->live[0]->engine);
    printf("drive seed=%llu: %ld steps, %zu journaled, %llu restores, %llu proofs solved\n",
           (unsigned long long)d->seed, d->steps, d->journal_count, (unsigned long long)d->restores,
           (unsigned long long)d->proofs_solved);
    for (int k = 0; k < STEP_CLOCK; k++) {
        printf("  %-11s", step_names[k]);
        for (int r = 0; r < GUARD_RESULT_COUNT; r++) {
            if (d->results[k][r] > 0) {
                printf(" %s=%llu", guard_result_name((guard_result_t)r),
                       (unsigned long long)d->results[k][r]);
            }
        }
        printf("\n");
    }
    uint64_t denials = 0, challenges = 0;
    for (int r = 0; r < POLICY_RULE_COUNT; r++) {
        denials += s.denials[r];
        challenges += s.challenges[r];
    }
    printf("  engine: created=%llu committed=%llu released=%llu expired=%llu evicted=%llu\n",
           (unsigned long long)e.holds_created, (unsigned long long)e.holds_committed,
           (unsigned long long)e.holds_released, (unsigned long long)e.holds_expired,
           (unsigned long long)e.holds_evicted);
    printf("  guard: denials=%llu challenges=%llu proofs=%llu/%llu escalations=%llu/%llu "
           "offers=%llu fulfilled=%llu expired=%llu cancelled=%llu revoked=%llu buy_now=%llu "
           "reclaimed=%llu pool_denials=%llu\n",
           (unsigned long long)denials, (unsigned long long)challenges,
           (unsigned long long)s.proofs_accepted, (unsigned long long)s.proofs_refused,
           (unsigned long long)s.escalations_on, (unsigned long long)s.escalations_off,
           (unsigned long long)s.wait_offered, (unsigned long long)s.wait_fulfilled,
           (unsigned long long)s.wait_expired, (unsigned long long)s.wait_cancelled,
           (unsigned long long)s.revoked_holds, (unsigned long long)s.buy_now,
           (unsigned long long)s.reclaimed_holds,
           (unsigned long long)s.denials[POLICY_RULE_NEWCOMER_POOL]);
    fflush(stdout);
}

typedef struct {
    uint64_t seed;
    char name[64];
} drive_run_t;

static long env_long(const char *name, long fallback)
{
    const char *v = getenv(name);
    return v != NULL && *v != '\0' ? strtol(v, NULL, 0) : fallback;
}

static int drive_setup(void **state)
{
    const drive_run_t *run = *state;
    drive_t *d = calloc(1, sizeof *d);
    assert_non_null(d);
    d->seed = run->seed;
    d->rng.s = run->seed;
    d->steps = env_long("HF_GUARD_STEPS", STEPS_DEFAULT);
    d->clock = T0;
    for (int i = 0; i < 2; i++) {
        d->live[i] = guard_new(&drive_config);
    }
    d->replica = guard_new(&drive_config);
    *state = d;
    return 0;
}

static int drive_teardown(void **state)
{
    drive_t *d = *state;
    guard_free(d->live[0]);
    guard_free(d->live[1]);
    guard_free(d->replica);
    guard_free(d->restored);
    free(d->journal);
    free(d);
    return free_owned(NULL);
}

static void test_drive_replays_to_the_same_guard(void **state)
{
    drive_t *d = *state;
    guard_op_t op = {.kind = GUARD_OP_SECRET, .engine = {.now_ms = d->clock}};
    memset(op.u.secret, 0x42, sizeof op.u.secret);
    snprintf(d->what, sizeof d->what, "secret");
    live_apply(d, STEP_POLICY, &op);
    op = (guard_op_t){.kind = GUARD_OP_POLICY_PUT, .engine = {.now_ms = d->clock}};
    op.u.policy = random_policy(&d->rng);
    live_apply(d, STEP_POLICY, &op);
    for (d->step = 0; d->step < d->steps; d->step++) {
        drive_step(d);
        if ((d->step + 1) % CHECKPOINT_EVERY == 0) {
            checkpoint(d);
        }
    }
    checkpoint(d);
    replay_journal(d);
    print_summary(d);
    /* The drive must have reached what it exists to reach. */
    guard_stats_t s = guard_stats(d->live[0]);
    engine_stats_t e = engine_stats(&d->live[0]->engine);
    assert_true(e.holds_committed > 0 && e.holds_released > 0 && e.holds_expired > 0);
    assert_true(d->results[STEP_HOLD][GUARD_DENIED] > 0);
    assert_true(d->results[STEP_HOLD][GUARD_CHALLENGED] > 0);
    assert_true(s.proofs_accepted > 0 && s.wait_offered > 0 && s.buy_now > 0);
    if (d->diverged[0] != '\0') {
        print_error("a guard restored from a snapshot did not follow the journal: %s\n",
                    d->diverged);
        fail();
    }
}

/* ======================================================== waitlists */

/* Two holds expire at one instant; the entry waiting for both is offered a
 * hold made at that instant, however the time is advanced past it. */
static void test_waitlist_offer_is_made_at_the_expiry_instant(void **state)
{
    (void)state;
    WHERE();
    guard_t *g[2] = {guard_new(&small), guard_new(&small)};
    const int64_t expiry_ms = T0 + MINUTE_MS;
    uint64_t h1 = 0, h2 = 0, w = 0;
    for (int i = 0; i < 2; i++) {
        put_sku(g[i], T0, "seat", 2);
        h1 = apply_hold(g[i], T0, "ann", "seat", 1, MINUTE_MS);
        h2 = apply_hold(g[i], T0, "bob", "seat", 1, MINUTE_MS);
        w = join_ok(g[i], T0 + 10, "seat", "cat", 2);
        assert_int_equal(wait_view(g[i], w).state, GUARD_WAIT_WAITING);
    }
    const int64_t later_ms = expiry_ms + 50000;
    advance(g[0], later_ms); /* once */
    for (int64_t t = T0 + 10; t < later_ms; t += 997) {
        advance(g[1], t); /* in steps that straddle the instant */
    }
    advance(g[1], later_ms);

    guard_wait_view_t v = wait_view(g[0], w);
    assert_int_equal(v.state, GUARD_WAIT_OFFERED);
    assert_int_equal(v.created_ms, T0 + 10);
    engine_hold_view_t offer = hold_view(g[0], v.hold_id);
    assert_int_equal(offer.state, ENGINE_HOLD_ACTIVE);
    assert_int_equal(offer.created_ms, expiry_ms);
    assert_int_equal(offer.expires_ms, expiry_ms + g[0]->policy.waitlist_offer_ttl_ms);
    assert_int_equal(offer.lines[0].qty, 2);
    assert_int_equal(offer.customer_len, 3);
    assert_memory_equal(offer.customer, "cat", 3);
    assert_int_equal(hold_view(g[0], h1).finished_ms, expiry_ms);
    assert_int_equal(hold_view(g[0], h2).finished_ms, expiry_ms);
    snprintf(where, sizeof where, "advanced once vs in steps");
    same_guards(g[0], g[1], SAME_ALL);

    /* Past the offer's own expiry, likewise. */
    const int64_t offer_end_ms = offer.expires_ms;
    advance(g[0], offer_end_ms + 1);
    for (int64_t t = later_ms; t < offer_end_ms + 1; t += 1009) {
        advance(g[1], t);
    }
    advance(g[1], offer_end_ms + 1);
    v = wait_view(g[0], w);
    assert_int_equal(v.state, GUARD_WAIT_EXPIRED);
    assert_int_equal(v.finished_ms, offer_end_ms);
    same_guards(g[0], g[1], SAME_ALL);
    guard_free(g[0]);
    guard_free(g[1]);
}

static void test_an_expired_offer_passes_the_units_to_the_next_entry(void **state)
{
    (void)state;
    WHERE();
    guard_t *g = guard_new(&small);
    put_sku(g, T0, "seat", 1);
    apply_hold(g, T0, "ann", "seat", 1, MINUTE_MS);
    uint64_t w1 = join_ok(g, T0 + 1, "seat", "bob", 1);
    uint64_t w2 = join_ok(g, T0 + 2, "seat", "cat", 1);
    advance(g, T0 + MINUTE_MS + 1);
    guard_wait_view_t v1 = wait_view(g, w1), v2 = wait_view(g, w2);
    assert_int_equal(v1.state, GUARD_WAIT_OFFERED);
    assert_int_equal(v2.state, GUARD_WAIT_WAITING);
    assert_int_equal(v2.position, 1);
    const int64_t offer_end_ms = hold_view(g, v1.hold_id).expires_ms;

    advance(g, offer_end_ms + 5000);
    v1 = wait_view(g, w1);
    v2 = wait_view(g, w2);
    assert_int_equal(v1.state, GUARD_WAIT_EXPIRED);
    assert_int_equal(v1.finished_ms, offer_end_ms);
    assert_int_equal(v2.state, GUARD_WAIT_OFFERED);
    assert_int_equal(hold_view(g, v2.hold_id).created_ms, offer_end_ms);

    finish_ok(g, offer_end_ms + 6000, ENGINE_OP_HOLD_COMMIT, v2.hold_id);
    assert_int_equal(wait_view(g, w2).state, GUARD_WAIT_FULFILLED);
    guard_stats_t s = guard_stats(g);
    assert_int_equal(s.wait_offered, 2);
    assert_int_equal(s.wait_expired, 1);
    assert_int_equal(s.wait_fulfilled, 1);
    assert_int_equal(s.waiting, 0);
    guard_free(g);
}

static void test_cancelling_an_offer_releases_its_hold_to_the_next_entry(void **state)
{
    (void)state;
    WHERE();
    guard_t *g = guard_new(&small);
    put_sku(g, T0, "seat", 1);
    uint64_t h = apply_hold(g, T0, "ann", "seat", 1, MINUTE_MS);
    uint64_t w1 = join_ok(g, T0 + 1, "seat", "bob", 1);
    uint64_t w2 = join_ok(g, T0 + 2, "seat", "cat", 1);
    finish_ok(g, T0 + 5, ENGINE_OP_HOLD_RELEASE, h);
    guard_wait_view_t v1 = wait_view(g, w1);
    assert_int_equal(v1.state, GUARD_WAIT_OFFERED);
    assert_int_equal(hold_view(g, v1.hold_id).created_ms, T0 + 5);

    guard_outcome_t o = cancel(g, T0 + 10, w1);
    assert_int_equal(o.result, GUARD_OK);
    assert_true(o.changed);
    v1 = wait_view(g, w1);
    assert_int_equal(v1.state, GUARD_WAIT_CANCELLED);
    assert_int_equal(v1.finished_ms, T0 + 10);
    engine_hold_view_t released = hold_view(g, v1.hold_id);
    assert_int_equal(released.state, ENGINE_HOLD_RELEASED_STATE);
    assert_int_equal(released.finished_ms, T0 + 10);
    guard_wait_view_t v2 = wait_view(g, w2);
    assert_int_equal(v2.state, GUARD_WAIT_OFFERED);
    assert_int_equal(hold_view(g, v2.hold_id).created_ms, T0 + 10);
    guard_stats_t s = guard_stats(g);
    assert_int_equal(s.wait_cancelled, 1);
    assert_int_equal(s.wait_expired, 0);
    assert_int_equal(s.wait_offered, 2);

    o = cancel(g, T0 + 11, w1);
    assert_int_equal(o.result, GUARD_WAIT_FINISHED);
    assert_false(o.changed);
    o = cancel(g, T0 + 11, w1 + 1);
    assert_int_equal(o.result, GUARD_NOT_FOUND);
    guard_free(g);
}

/* A head waiting for more than is free holds the line; when it leaves, the
 * entry behind it is served if the free units cover it. */
static void test_cancelling_a_waiting_head_serves_the_entry_behind_it(void **state)
{
    (void)state;
    WHERE();
    guard_t *g = guard_new(&small);
    put_sku(g, T0, "seat", 3);
    apply_hold(g, T0, "ann", "seat", 2, 10 * MINUTE_MS);
    uint64_t one = apply_hold(g, T0, "ann", "seat", 1, 10 * MINUTE_MS); /* sold out */
    uint64_t w1 = join_ok(g, T0 + 1, "seat", "bob", 2);
    uint64_t w2 = join_ok(g, T0 + 2, "seat", "cat", 1);
    finish_ok(g, T0 + 3, ENGINE_OP_HOLD_RELEASE, one); /* 1 free: not enough for bob */
    assert_int_equal(wait_view(g, w1).state, GUARD_WAIT_WAITING);
    assert_int_equal(wait_view(g, w2).state, GUARD_WAIT_WAITING);
    assert_int_equal(wait_view(g, w2).position, 2);

    guard_op_t op = {.kind = GUARD_OP_WAIT_CANCEL, .engine = {.now_ms = T0 + 4}};
    op.u.wait_id = w1;
    guard_outcome_t o = guard_apply(g, &op);
    assert_int_equal(o.result, GUARD_OK);
    assert_int_equal(wait_view(g, w1).state, GUARD_WAIT_CANCELLED);
    guard_wait_view_t v2 = wait_view(g, w2);
    if (v2.state != GUARD_WAIT_OFFERED) {
        print_error("the entry behind a cancelled head is %s with %lld free for its 1\n",
                    guard_wait_state_name(v2.state), (long long)engine_sku(g, "seat").available);
    }
    assert_int_equal(v2.state, GUARD_WAIT_OFFERED);
    assert_int_equal(hold_view(g, v2.hold_id).created_ms, T0 + 4);
    check_guard(g);
    guard_free(g);
}

/* A stock cut below what the head waits for leaves it waiting for a restock
 * (guard.h: first come, first served among those the stock can serve), and
 * the line behind it moves on. */
static void test_a_stock_cut_below_the_head_does_not_block_the_line(void **state)
{
    (void)state;
    WHERE();
    guard_t *g = guard_new(&small);
    put_sku(g, T0, "seat", 7);
    finish_ok(g, T0, ENGINE_OP_HOLD_COMMIT, apply_hold(g, T0, "ann", "seat", 3, MINUTE_MS));
    apply_hold(g, T0, "bob", "seat", 2, 10 * MINUTE_MS);
    uint64_t carl = apply_hold(g, T0, "carl", "seat", 2, 10 * MINUTE_MS); /* sold out */
    uint64_t w1 = join_ok(g, T0 + 1, "seat", "cat", 4); /* 4 <= 7 - 3 left to sell */
    uint64_t w2 = join_ok(g, T0 + 2, "seat", "dan", 1); /* behind it */
    finish_ok(g, T0 + 3, ENGINE_OP_HOLD_RELEASE, carl); /* 2 free: cat waits, dan too */
    assert_int_equal(wait_view(g, w1).state, GUARD_WAIT_WAITING);
    assert_int_equal(wait_view(g, w2).position, 2);

    put_sku(g, T0 + 4, "seat", 6); /* 6 - 3 sold = 3 left to sell: not enough for cat */
    guard_wait_view_t v1 = wait_view(g, w1), v2 = wait_view(g, w2);
    assert_int_equal(v1.state, GUARD_WAIT_WAITING);
    assert_int_equal(v1.position, 1);
    assert_int_equal(v2.state, GUARD_WAIT_OFFERED);
    assert_int_equal(hold_view(g, v2.hold_id).created_ms, T0 + 4);
    assert_int_equal(engine_sku(g, "seat").available, 0);

    put_sku(g, T0 + 5, "seat", 10); /* a restock: 4 free, and cat's turn */
    v1 = wait_view(g, w1);
    assert_int_equal(v1.state, GUARD_WAIT_OFFERED);
    assert_int_equal(hold_view(g, v1.hold_id).created_ms, T0 + 5);
    assert_int_equal(hold_view(g, v1.hold_id).lines[0].qty, 4);
    guard_free(g);
}

/* The one offer that did not fit the hold table keeps its place; it must be
 * served when a slot frees, whatever sku that slot's hold was on. */
static void test_a_waiting_entry_is_served_when_the_hold_table_frees(void **state)
{
    (void)state;
    WHERE();
    guard_config_t c = small;
    c.engine.holds_max = 3;
    guard_t *g = guard_new(&c);
    put_sku(g, T0, "seat", 2);
    put_sku(g, T0, "tea", 5);
    apply_hold(g, T0, "ann", "seat", 2, MINUTE_MS);
    uint64_t tea = apply_hold(g, T0, "bob", "tea", 1, 10 * MINUTE_MS);
    apply_hold(g, T0, "cat", "tea", 1, 10 * MINUTE_MS);
    uint64_t w1 = join_ok(g, T0 + 1, "seat", "dan", 1);
    uint64_t w2 = join_ok(g, T0 + 2, "seat", "eve", 1);
    /* ann's hold expires: two seats free, but only its slot for one offer. */
    advance(g, T0 + MINUTE_MS);
    assert_int_equal(wait_view(g, w1).state, GUARD_WAIT_OFFERED);
    assert_int_equal(wait_view(g, w2).state, GUARD_WAIT_WAITING);

    /* A tea hold commits: a slot is free, and a seat still waits for eve. */
    guard_outcome_t o = finish(g, T0 + MINUTE_MS + 1, ENGINE_OP_HOLD_COMMIT, tea, NULL);
    assert_int_equal(o.result, GUARD_OK);
    assert_true(guard_check(g));
    assert_int_equal(wait_view(g, w2).state, GUARD_WAIT_OFFERED);
    guard_free(g);
}

/* An offer counts as a hold started on its sku at the instant it is made. */
static void test_a_waitlist_offer_counts_as_a_recent_hold(void **state)
{
    (void)state;
    WHERE();
    guard_t *g = guard_new(&small);
    const int64_t window_ms = g->policy.escalation_window_ms;
    put_sku(g, T0, "seat", 1);
    apply_hold(g, T0, "ann", "seat", 1, HF_TTL_MS_MAX); /* one hold started at T0 */
    const int64_t later = T0 + 2 * window_ms;
    join_ok(g, later, "seat", "bob", 1);
    put_sku(g, later, "seat", 2); /* the restock is offered to bob at once */
    assert_int_equal(guard_stats(g).wait_offered, 1);
    /* Two windows on, the first hold counts a quarter; the offer, just made,
     * counts one. */
    const double expected = 0.25 + 1.0;
    guard_sku_view_t v = sku_view(g, "seat");
    if (!(fabs(v.recent_holds - expected) <= 1e-9)) {
        print_error("a hold two windows old and an offer made now count %.17g recent holds, "
                    "not %.17g\n",
                    v.recent_holds, expected);
    }
    assert_near(expected, v.recent_holds, 1e-9);
    guard_free(g);
}

/* =========================================================== budgets */

/* Customer budget: 3000 unit-s, refilled over a week, so refills are small
 * and every number below can be worked out. */
#define BUDGET_CAP_UNIT_MS 3e6
#define BUDGET_REFILL_MS (7 * DAY_MS)

static guard_t *budget_guard(void)
{
    guard_t *g = guard_new(&small);
    policy_config_t p = policy_config_default();
    p.challenge_enabled = 0;
    p.budget_customer_unit_s = 3000;
    p.budget_refill_ms = BUDGET_REFILL_MS;
    put_policy(g, T0, &p);
    put_sku(g, T0, "tea", 100);
    return g;
}

static double refilled(double unit_ms, int64_t elapsed_ms)
{
    double b = unit_ms + BUDGET_CAP_UNIT_MS * (double)elapsed_ms / (double)BUDGET_REFILL_MS;
    return b > BUDGET_CAP_UNIT_MS ? BUDGET_CAP_UNIT_MS : b;
}

static void test_budget_charges_units_times_ttl_and_refunds_unused_time(void **state)
{
    (void)state;
    WHERE();
    guard_t *g = budget_guard();
    guard_hold_request_t r = request("ann", "tea", 2, 0);
    guard_outcome_t o = hold(g, &r, T0);
    assert_int_equal(o.result, GUARD_OK);
    assert_int_equal(o.decision.ttl_ms, 600000);
    assert_near(1.2e6, o.decision.cost_unit_ms, 0);
    double b = BUDGET_CAP_UNIT_MS - 1.2e6;
    assert_near(b / 1000, budget_s(g, "ann"), 1e-9);

    /* Committed 100 s in: the 500 s not used come back, 2 units each. */
    int64_t t = T0 + 100000;
    finish_ok(g, t, ENGINE_OP_HOLD_COMMIT, o.engine.hold_id);
    b = refilled(b, 100000) + 2 * 500000.0;
    assert_near(b / 1000, budget_s(g, "ann"), 1e-6);

    /* Expired: nothing comes back. */
    r = request("ann", "tea", 2, 0);
    uint64_t h = hold_ok(g, &r, t);
    b -= 1.2e6;
    assert_near(b / 1000, budget_s(g, "ann"), 1e-6);
    t += 600000;
    advance(g, t);
    assert_int_equal(hold_view(g, h).state, ENGINE_HOLD_EXPIRED_STATE);
    b = refilled(b, 600000);
    assert_near(b / 1000, budget_s(g, "ann"), 1e-6);

    /* Released 200 s in: 400 s x 1 unit come back. */
    r = request("ann", "tea", 1, 0);
    h = hold_ok(g, &r, t);
    b -= 600000;
    finish_ok(g, t + 200000, ENGINE_OP_HOLD_RELEASE, h);
    t += 200000;
    b = refilled(b, 200000) + 400000;
    assert_near(b / 1000, budget_s(g, "ann"), 1e-6);

    /* An extension is charged for the time it adds. */
    r = request("ann", "tea", 2, 0);
    h = hold_ok(g, &r, t);
    b -= 1.2e6;
    guard_op_t op;
    o = guard_extend(g, h, 600000, t + 1000, &op);
    check_guard(g);
    assert_int_equal(o.result, GUARD_OK);
    assert_true(o.changed);
    assert_int_equal(o.decision.ttl_ms, 600000);
    assert_int_equal(hold_view(g, h).expires_ms, t + 1000 + 600000);
    b = refilled(b, 1000) - 2 * 1000.0;
    assert_near(b / 1000, budget_s(g, "ann"), 1e-6);
    /* One that would add nothing charges nothing. */
    o = guard_extend(g, h, 1000, t + 2000, &op);
    check_guard(g);
    assert_int_equal(o.result, GUARD_OK);
    assert_false(o.changed);
    b = refilled(b, 1000);
    assert_near(b / 1000, budget_s(g, "ann"), 1e-6);
    guard_free(g);
}

static void test_budget_short_is_denied_with_the_wait_that_refills_it(void **state)
{
    (void)state;
    WHERE();
    guard_t *g = budget_guard();
    guard_hold_request_t r = request("bob", "tea", 4, 0);
    hold_ok(g, &r, T0); /* 2.4e6 of 3e6: 0.6e6 left */
    r = request("bob", "tea", 2, 0);
    guard_outcome_t o = hold(g, &r, T0);
    assert_int_equal(o.result, GUARD_DENIED);
    assert_false(o.changed);
    assert_int_equal(o.decision.rule, POLICY_RULE_CUSTOMER_BUDGET);
    assert_int_equal(o.decision.limit, 1200);
    assert_int_equal(o.decision.current, 600);
    const double per_ms = BUDGET_CAP_UNIT_MS / (double)BUDGET_REFILL_MS;
    int64_t retry_ms = (int64_t)ceil((1.2e6 - 0.6e6) / per_ms);
    assert_true(retry_ms > 0);
    assert_int_equal(o.decision.retry_after_ms, retry_ms);
    assert_int_equal(guard_stats(g).denials[POLICY_RULE_CUSTOMER_BUDGET], 1);
    /* A moment early is still short; on time is enough. */
    o = hold(g, &r, T0 + retry_ms - 1000);
    assert_int_equal(o.result, GUARD_DENIED);
    hold_ok(g, &r, T0 + retry_ms);
    guard_free(g);
}

/* Buy now holds nothing, so the budgets neither pay for it nor get anything
 * back when it commits in the same step. */
static void test_buy_now_is_neither_charged_nor_refunded(void **state)
{
    (void)state;
    WHERE();
    guard_t *g = budget_guard();
    guard_hold_request_t r = request("cy", "tea", 4, 0);
    hold_ok(g, &r, T0);
    const double before_s = budget_s(g, "cy");
    assert_near(600.0, before_s, 1e-9);
    r = request("cy", "tea", 1, 0);
    r.buy_now = true;
    guard_outcome_t o = hold(g, &r, T0);
    assert_int_equal(o.result, GUARD_OK);
    assert_int_equal(hold_view(g, o.engine.hold_id).state, ENGINE_HOLD_COMMITTED_STATE);
    assert_int_equal(guard_stats(g).buy_now, 1);
    const double after_s = budget_s(g, "cy");
    if (after_s != before_s) {
        print_error("budget %.17g s before a buy now, %.17g s after (same instant)\n", before_s,
                    after_s);
    }
    assert_near(before_s, after_s, 1e-9);
    guard_free(g);
}

/* ======================================================== reputation */

static void test_a_hoarder_gets_risk_and_a_shorter_ttl_than_a_newcomer(void **state)
{
    (void)state;
    WHERE();
    guard_t *g = guard_new(&small);
    policy_config_t p = policy_config_default();
    p.challenge_enabled = 0; /* risk would put a price on the hoarder's holds */
    put_policy(g, T0, &p);
    put_sku(g, T0, "tea", 1000);
    for (int i = 0; i < 20; i++) { /* the shop converts */
        char name[16];
        snprintf(name, sizeof name, "good-%d", i);
        guard_hold_request_t r = request(name, "tea", 1, 0);
        r.buy_now = true;
        hold_ok(g, &r, T0);
    }
    for (int i = 0; i < 6; i++) { /* one customer never does */
        guard_hold_request_t r = request("hoard", "tea", 1, 0);
        finish_ok(g, T0 + 1, ENGINE_OP_HOLD_RELEASE, hold_ok(g, &r, T0 + 1));
    }
    advance(g, T0 + 2);
    guard_identity_view_t h = identity(g, POLICY_ID_CUSTOMER, "hoard");
    assert_int_equal(h.holds_total, 6);
    assert_int_equal(h.commits_total, 0);
    assert_true(h.risk > 0.0);

    guard_hold_request_t r = request("hoard", "tea", 1, 0);
    guard_outcome_t hoarder = hold(g, &r, T0 + 2);
    r = request("new", "tea", 1, 0);
    guard_outcome_t newcomer = hold(g, &r, T0 + 2);
    assert_int_equal(hoarder.result, GUARD_OK);
    assert_int_equal(newcomer.result, GUARD_OK);
    assert_true(hoarder.decision.risk > 0.0);
    assert_near(0.0, newcomer.decision.risk, 0);
    assert_near(0.0, identity(g, POLICY_ID_CUSTOMER, "new").risk, 0);
    assert_true(hoarder.decision.ttl_ms < newcomer.decision.ttl_ms);
    assert_int_equal(newcomer.decision.ttl_ms, p.ttl_default_ms);

    /* The lowest converter with history comes first. */
    guard_identity_view_t top[4];
    assert_true(guard_identities_top(g, GUARD_TOP_CONVERSION, 4, top) >= 1);
    assert_int_equal(top[0].value_len, 5);
    assert_memory_equal(top[0].value, "hoard", 5);
    guard_free(g);
}

/* ======================================================== escalation */

static void test_escalation_switches_on_then_off_with_time(void **state)
{
    (void)state;
    WHERE();
    guard_t *g = guard_new(&small);
    policy_config_t p = policy_config_default();
    p.challenge_enabled = 0;
    p.hold_share_held_pct_max = 100;
    p.escalation_min_holds = 8;
    p.escalation_window_ms = MINUTE_MS;
    p.escalation_newcomer_held_pct = 100; /* holds decide, not what they hold */
    put_policy(g, T0, &p);
    put_sku(g, T0, "plain", 100);
    put_sku(g, T0, "hot", 10);
    char name[16];
    for (int i = 0; i < 10; i++) { /* elsewhere, buyers buy */
        snprintf(name, sizeof name, "buyer-%d", i);
        guard_hold_request_t r = request(name, "plain", 1, 0);
        r.buy_now = true;
        hold_ok(g, &r, T0);
    }
    const int64_t t = T0 + 1;
    for (int i = 0; i < 8; i++) { /* here, holds that never commit */
        assert_false(sku_view(g, "hot").escalated);
        snprintf(name, sizeof name, "hot-%d", i);
        guard_hold_request_t r = request(name, "hot", 1, 0);
        hold_ok(g, &r, t);
    }
    /* 8 holds, none committed, 2 of 10 left: escalated. */
    guard_sku_view_t v = sku_view(g, "hot");
    assert_true(v.escalated);
    assert_int_equal(v.escalations, 1);
    assert_int_equal(v.escalated_at_ms, t);
    assert_int_equal(g->event_seq, 1);
    assert_int_equal(g->events[0].seq, 1);
    assert_int_equal(g->events[0].at_ms, t);
    assert_int_equal(g->events[0].sku, sku_index(g, "hot"));
    assert_true(g->events[0].on);
    assert_int_equal(guard_stats(g).skus_escalated, 1);

    guard_hold_request_t r = request("hot-8", "hot", 1, 0);
    guard_outcome_t o = hold(g, &r, t);
    assert_int_equal(o.result, GUARD_DENIED);
    assert_int_equal(o.decision.rule, POLICY_RULE_HOLD_SHARE);
    assert_int_equal(o.decision.limit, 0);
    assert_int_equal(sku_view(g, "hot").denials, 1);
    r = request("hot-9", "hot", 1, 0);
    r.buy_now = true;
    o = hold(g, &r, t);
    assert_int_equal(o.result, GUARD_OK);
    assert_true(sku_view(g, "hot").escalated);

    /* Five windows on, with no op on the sku, the counts have decayed. */
    const int64_t later = t + 5 * MINUTE_MS;
    assert_true(later < engine_next_expiry_ms(&g->engine)); /* no expiry in between */
    advance(g, later);
    v = sku_view(g, "hot");
    assert_false(v.escalated);
    assert_int_equal(v.escalations, 1);
    assert_int_equal(g->event_seq, 1); /* not recorded until an op on it */

    r = request("hot-10", "hot", 1, 0);
    hold_ok(g, &r, later);
    assert_false(sku_view(g, "hot").escalated);
    assert_int_equal(g->event_seq, 2);
    assert_int_equal(g->events[1].seq, 2);
    assert_int_equal(g->events[1].at_ms, later);
    assert_false(g->events[1].on);
    guard_stats_t s = guard_stats(g);
    assert_int_equal(s.escalations_on, 1);
    assert_int_equal(s.escalations_off, 1);
    assert_int_equal(s.skus_escalated, 0);
    guard_free(g);
}

/* ============================================================ reclaim */

/* The defaults, with no proofs of work (they are tested on their own) and
 * carts that may fill a sku, so that a test sets up exactly the holds it
 * means; reclaim's floor at 10 s and pay times known from one sale. */
static policy_config_t reclaim_policy(void)
{
    policy_config_t p = policy_config_default();
    p.challenge_enabled = 0;
    p.hold_share_held_pct_max = 100;
    p.newcomer_pool_pct = 100;
    p.escalation_enabled = 0;
    p.reclaim_floor_ms = 10000;
    p.reclaim_min_commits = 1;
    return p;
}

/* A guard with "drop" (stock) where a buyer has paid for one unit after
 * pay_ms: the sku's buyers take that long (its bucket's upper edge). */
static guard_t *reclaim_guard(int64_t stock, int64_t pay_ms)
{
    guard_t *g = guard_new(&small);
    policy_config_t p = reclaim_policy();
    put_policy(g, T0, &p);
    put_sku(g, T0, "drop", stock);
    guard_hold_request_t r = request("payer", "drop", 1, 0);
    uint64_t id = hold_ok(g, &r, T0);
    finish_ok(g, T0 + pay_ms, ENGINE_OP_HOLD_COMMIT, id);
    return g;
}

static guard_outcome_t reclaim(guard_t *g, int64_t now_ms, guard_op_t *op)
{
    guard_outcome_t o = guard_reclaim(g, now_ms, op);
    check_guard(g);
    return o;
}

static void test_pay_time_is_learned_from_commits_as_a_bucket_edge(void **state)
{
    (void)state;
    WHERE();
    guard_t *g = reclaim_guard(100, 30000); /* 30 s: in the bucket up to 32 s */
    guard_sku_view_t v;
    guard_sku_view(g, sku_index(g, "drop"), &v);
    assert_int_equal(v.pay_ms, 32000);
    /* Until reclaim.min_commits sales, nothing is known. */
    policy_config_t p = reclaim_policy();
    p.reclaim_min_commits = 2;
    put_policy(g, T0 + 30000, &p);
    guard_sku_view(g, sku_index(g, "drop"), &v);
    assert_int_equal(v.pay_ms, 0);
    /* A buy now takes no time to pay and teaches nothing. */
    guard_hold_request_t r = request("now", "drop", 1, 0);
    r.buy_now = true;
    hold_ok(g, &r, T0 + 30000);
    guard_sku_view(g, sku_index(g, "drop"), &v);
    assert_int_equal(v.pay_ms, 0);
    guard_free(g);
}

static void test_reclaim_takes_a_stale_cart_for_the_waitlist_in_one_step(void **state)
{
    (void)state;
    WHERE();
    guard_t *g = reclaim_guard(10, 2000);
    int64_t t = T0 + 2000;
    guard_hold_request_t r = request("hoarder", "drop", 9, 0);
    uint64_t stale = hold_ok(g, &r, t);
    /* Safe for the floor (the sku's buyers pay within 2 s). */
    assert_int_equal(guard_hold_safe_until_ms(g, stale), t + 10000);
    uint64_t wait = join_ok(g, t + 1, "drop", "fan", 1);
    guard_op_t op;
    guard_outcome_t o = reclaim(g, t + 9000, &op);
    assert_false(o.changed); /* before its safe time */
    o = reclaim(g, t + 10000, &op);
    assert_true(o.changed);
    assert_int_equal(o.result, GUARD_OK);
    assert_int_equal(op.kind, GUARD_OP_RECLAIM);
    assert_int_equal(op.u.reclaim.count, 1);
    assert_int_equal(op.u.reclaim.holds[0], stale);
    engine_hold_view_t h = hold_view(g, stale);
    assert_int_equal(h.state, ENGINE_HOLD_RELEASED_STATE);
    assert_memory_equal(h.order_ref, "reclaimed", 9);
    /* The unit went to the waiting fan in the same step, not to open sale. */
    assert_int_equal(wait_view(g, wait).state, GUARD_WAIT_OFFERED);
    assert_int_equal(guard_stats(g).reclaimed_holds, 1);
    assert_int_equal(guard_stats(g).reclaimed_units, 9);
    guard_sku_view_t v;
    guard_sku_view(g, sku_index(g, "drop"), &v);
    assert_int_equal(v.reclaimed, 1);
    assert_int_equal(v.newcomer_held, 1); /* the fan's offer: a newcomer's */
    guard_free(g);
}

static void test_reclaim_is_quiet_when_nobody_waits_and_decides_once_a_second(void **state)
{
    (void)state;
    WHERE();
    guard_t *g = reclaim_guard(10, 2000);
    int64_t t = T0 + 2000;
    guard_hold_request_t r = request("hoarder", "drop", 4, 0);
    hold_ok(g, &r, t);
    r = request("hoarder-2", "drop", 5, 0);
    hold_ok(g, &r, t);
    guard_op_t op;
    assert_false(reclaim(g, t + 60000, &op).changed); /* stale, but nobody waits */
    join_ok(g, t + 60000, "drop", "fan", 1);
    assert_true(reclaim(g, t + 60000, &op).changed);
    assert_int_equal(op.u.reclaim.count, 1);
    join_ok(g, t + 60001, "drop", "fan-2", 5);
    /* The last decision was at t + 60000: the next may come a second later. */
    assert_false(reclaim(g, t + 60000 + GUARD_RECLAIM_EVERY_MS - 1, &op).changed);
    assert_true(reclaim(g, t + 60000 + GUARD_RECLAIM_EVERY_MS, &op).changed);
    guard_free(g);
}

static void test_reclaim_takes_only_what_the_waiting_need_most_suspicious_first(void **state)
{
    (void)state;
    WHERE();
    guard_t *g = reclaim_guard(20, 2000);
    int64_t t = T0 + 2000;
    /* A returning buyer (bought before) holding the most, two newcomers. */
    guard_hold_request_t r = request("payer", "drop", 5, 0);
    uint64_t known = hold_ok(g, &r, t);
    r = request("old", "drop", 4, 0);
    uint64_t old = hold_ok(g, &r, t);
    r = request("small", "drop", 2, 0);
    uint64_t small_one = hold_ok(g, &r, t + 1);
    r = request("large", "drop", 4, 0);
    uint64_t large = hold_ok(g, &r, t + 2);
    r = request("rest", "drop", 4, 0);
    hold_ok(g, &r, t + 15000); /* too young to take: safe for 10 s */
    join_ok(g, t + 20000, "drop", "fan", 3);
    guard_op_t op;
    assert_true(reclaim(g, t + 20000, &op).changed);
    /* Newcomers before the buyer, the larger first, the older of equals
     * first: "old" (4 units) covers the 3 the fan waits for. */
    assert_int_equal(op.u.reclaim.count, 1);
    assert_int_equal(op.u.reclaim.holds[0], old);
    /* One unit was left over: fan-2's five need four more. */
    join_ok(g, t + 21000, "drop", "fan-2", 5);
    assert_true(reclaim(g, t + 21000, &op).changed);
    assert_int_equal(op.u.reclaim.count, 1);
    assert_int_equal(op.u.reclaim.holds[0], large);
    join_ok(g, t + 22000, "drop", "fan-3", 2);
    assert_true(reclaim(g, t + 22000, &op).changed);
    assert_int_equal(op.u.reclaim.count, 1);
    assert_int_equal(op.u.reclaim.holds[0], small_one);
    assert_int_equal(hold_view(g, known).state, ENGINE_HOLD_ACTIVE);
    guard_free(g);
}

static void test_reclaim_frees_units_for_buyers_just_refused_for_want_of_them(void **state)
{
    (void)state;
    WHERE();
    guard_t *g = reclaim_guard(10, 2000);
    policy_config_t p = reclaim_policy();
    p.waitlist_enabled = 0; /* no line: only the refusals say people want it */
    put_policy(g, T0 + 2000, &p);
    int64_t t = T0 + 2000;
    guard_hold_request_t r = request("hoarder", "drop", 9, 0);
    uint64_t stale = hold_ok(g, &r, t);
    guard_op_t op;
    assert_false(reclaim(g, t + 20000, &op).changed);
    r = request("fan", "drop", 1, 0);
    assert_int_equal(hold(g, &r, t + 20000).engine.result, ENGINE_INSUFFICIENT_STOCK);
    assert_true(reclaim(g, t + 21000, &op).changed);
    assert_int_equal(op.u.reclaim.holds[0], stale);
    hold_ok(g, &r, t + 22000); /* the fan's next try finds the units */
    guard_free(g);
}

static void test_reclaim_spares_offers_and_holds_of_skus_that_turned_it_off(void **state)
{
    (void)state;
    WHERE();
    guard_t *g = reclaim_guard(10, 2000);
    int64_t t = T0 + 2000;
    guard_hold_request_t r = request("hoarder", "drop", 8, 0);
    uint64_t stale = hold_ok(g, &r, t);
    r = request("other", "drop", 1, 0);
    uint64_t first = hold_ok(g, &r, t);
    uint64_t w = join_ok(g, t, "drop", "fan", 1);
    finish_ok(g, t + 1, ENGINE_OP_HOLD_RELEASE, first); /* the fan is offered it */
    assert_int_equal(wait_view(g, w).state, GUARD_WAIT_OFFERED);
    guard_op_t op = {.kind = GUARD_OP_SKU_POLICY, .engine = {.now_ms = t + 2}};
    set_text(op.u.sku_policy.sku, &op.u.sku_policy.sku_len, "drop");
    op.u.sku_policy.mask = 1ull << POLICY_F_reclaim_enabled;
    op.u.sku_policy.values = reclaim_policy();
    op.u.sku_policy.values.reclaim_enabled = 0;
    apply_ok(g, &op);
    join_ok(g, t + 3, "drop", "fan-2", 1);
    guard_op_t rop;
    assert_false(reclaim(g, t + 60000, &rop).changed); /* off for this sku */
    op.u.sku_policy.mask = 0;
    op.engine.now_ms = t + 60000;
    apply_ok(g, &op);
    assert_true(reclaim(g, t + 61000, &rop).changed);
    assert_int_equal(rop.u.reclaim.count, 1);
    assert_int_equal(rop.u.reclaim.holds[0], stale); /* the fan's offer is not taken */
    guard_free(g);
}

/* One decision takes back at most GUARD_RECLAIM_MAX holds; the next, a
 * second later, takes the rest the waiting need. */
static void test_reclaim_takes_at_most_its_op_of_holds_at_a_time(void **state)
{
    (void)state;
    WHERE();
    guard_config_t c = small;
    c.engine.holds_max = 256;
    c.identities_max = 512;
    c.customer_skus_max = 512;
    guard_t *g = guard_new(&c);
    policy_config_t p = reclaim_policy();
    p.identity_enabled = 0;
    p.budget_enabled = 0;
    p.quantity_enabled = 0; /* the fan waits for them all */
    put_policy(g, T0, &p);
    const uint32_t n = GUARD_RECLAIM_MAX + 6;
    put_sku(g, T0, "drop", n + 1);
    guard_hold_request_t r = request("payer", "drop", 1, 0);
    finish_ok(g, T0 + 2000, ENGINE_OP_HOLD_COMMIT, hold_ok(g, &r, T0));
    char name[16];
    for (uint32_t i = 0; i < n; i++) {
        snprintf(name, sizeof name, "h-%u", i);
        r = request(name, "drop", 1, 0);
        hold_ok(g, &r, T0 + 2000);
    }
    join_ok(g, T0 + 60000, "drop", "fan", n);
    guard_op_t op;
    assert_true(reclaim(g, T0 + 60000, &op).changed);
    assert_int_equal(op.u.reclaim.count, GUARD_RECLAIM_MAX);
    assert_true(reclaim(g, T0 + 61000, &op).changed);
    assert_int_equal(op.u.reclaim.count, n - GUARD_RECLAIM_MAX);
    assert_int_equal(guard_stats(g).reclaimed_holds, n);
    assert_int_equal(guard_stats(g).wait_offered, 1); /* all n for the fan at once */
    guard_free(g);
}

/* ====================================================== newcomer pool */

static void test_newcomer_pool_counts_units_of_identities_that_never_bought(void **state)
{
    (void)state;
    WHERE();
    guard_t *g = guard_new(&small);
    policy_config_t p = reclaim_policy();
    p.newcomer_pool_pct = 30;
    p.quantity_fingerprint_sku_units_max = 100; /* a device here may buy more */
    put_policy(g, T0, &p);
    put_sku(g, T0, "drop", 100);
    guard_hold_request_t r = request_from("a", NULL, "dev-a", "drop", 10, 0);
    uint64_t a = hold_ok(g, &r, T0);
    r = request_from("b", NULL, "dev-b", "drop", 10, 0);
    hold_ok(g, &r, T0);
    guard_sku_view_t v;
    guard_sku_view(g, sku_index(g, "drop"), &v);
    assert_int_equal(v.newcomer_held, 20);
    /* 20 + 10 is the pool (30 of 100): allowed; then one unit more is not. */
    r = request_from("c", NULL, "dev-c", "drop", 10, 0);
    hold_ok(g, &r, T0);
    r = request_from("d", NULL, "dev-d", "drop", 3, 0);
    guard_outcome_t o = hold(g, &r, T0);
    assert_int_equal(o.result, GUARD_DENIED);
    assert_int_equal(o.decision.rule, POLICY_RULE_NEWCOMER_POOL);
    assert_int_equal(o.decision.limit, 30);
    assert_int_equal(o.decision.current, 30);
    /* Two units are an ordinary buyer's: never refused here. */
    r.create.lines[0].qty = 2;
    hold_ok(g, &r, T0);
    /* Once "a" has bought, its device is no newcomer any more. */
    finish_ok(g, T0 + 1000, ENGINE_OP_HOLD_COMMIT, a);
    guard_sku_view(g, sku_index(g, "drop"), &v);
    assert_int_equal(v.newcomer_held, 22);
    r = request_from("a-2", NULL, "dev-a", "drop", 5, 0);
    hold_ok(g, &r, T0 + 1000);
    guard_sku_view(g, sku_index(g, "drop"), &v);
    assert_int_equal(v.newcomer_held, 22);
    guard_free(g);
}

/* ============================================================ proofs */

static void test_a_proof_solved_cheaper_than_todays_price_is_asked_again(void **state)
{
    (void)state;
    WHERE();
    guard_t *g = guard_new(&small);
    set_secret(g, T0, 0x11);
    policy_config_t p = policy_config_default();
    p.hold_share_held_pct_max = 100;
    p.newcomer_pool_pct = 100;
    put_policy(g, T0, &p);
    put_sku(g, T0, "tea", 100);
    guard_hold_request_t r = request("ann", "tea", 4, 0);
    guard_outcome_t o = hold(g, &r, T0);
    assert_int_equal(o.result, GUARD_CHALLENGED);
    uint32_t issued = o.decision.bits;
    solve_proof(g, guard_request_hash(&r), issued, T0, &r.proof_tag, &r.proof_expires_ms,
                &r.proof_bits, NULL);
    /* Meanwhile the sku sold down to 10: the price of 4 units rose. */
    guard_hold_request_t b = request("bob", "tea", 90, 0);
    b.buy_now = true;
    p.quantity_enabled = 0;
    p.identity_enabled = 0;
    put_policy(g, T0, &p);
    hold_ok(g, &b, T0);
    o = hold(g, &r, T0 + 1);
    assert_int_equal(o.result, GUARD_CHALLENGED);
    assert_true(o.decision.bits > issued);
    assert_int_equal(guard_stats(g).proofs_stale, 1);
    assert_int_equal(guard_stats(g).proofs_accepted, 0); /* not spent */
    solve_proof(g, guard_request_hash(&r), o.decision.bits, T0 + 1, &r.proof_tag,
                &r.proof_expires_ms, &r.proof_bits, NULL);
    hold_ok(g, &r, T0 + 2);
    assert_int_equal(guard_stats(g).proofs_accepted, 1);
    guard_free(g);
}

/* ===================================================== purchase caps */

static void test_a_device_buying_outright_reaches_its_cap_per_sku(void **state)
{
    (void)state;
    WHERE();
    guard_t *g = guard_new(&small);
    policy_config_t p = reclaim_policy();
    p.quantity_fingerprint_sku_units_max = 4;
    put_policy(g, T0, &p);
    put_sku(g, T0, "pair", 100);
    char name[16];
    for (int i = 0; i < 4; i++) { /* fresh accounts, one device */
        snprintf(name, sizeof name, "acct-%d", i);
        guard_hold_request_t r = request_from(name, NULL, "bot-phone", "pair", 1, 0);
        r.buy_now = true;
        hold_ok(g, &r, T0 + i);
    }
    guard_hold_request_t r = request_from("acct-5", NULL, "bot-phone", "pair", 1, 0);
    r.buy_now = true;
    guard_outcome_t o = hold(g, &r, T0 + 10);
    assert_int_equal(o.result, GUARD_DENIED);
    assert_int_equal(o.decision.rule, POLICY_RULE_FINGERPRINT_UNITS_PER_SKU);
    assert_int_equal(o.decision.limit, 4);
    assert_int_equal(o.decision.current, 4);
    assert_int_equal(o.decision.retry_after_ms, p.quantity_customer_sku_window_ms - 10);
    r.buy_now = false; /* a hold counts the same */
    assert_int_equal(hold(g, &r, T0 + 10).decision.rule, POLICY_RULE_FINGERPRINT_UNITS_PER_SKU);
    /* Another device is not this one; the window's end forgets them. */
    r = request_from("acct-5", NULL, "other-phone", "pair", 1, 0);
    hold_ok(g, &r, T0 + 10);
    r = request_from("acct-6", NULL, "bot-phone", "pair", 1, 0);
    hold_ok(g, &r, T0 + p.quantity_customer_sku_window_ms);
    guard_free(g);
}

/* ============================================================ sweep */

static policy_config_t forgetful_policy(void)
{
    policy_config_t p = policy_config_default();
    p.challenge_enabled = 0;
    p.budget_refill_ms = MINUTE_MS;
    p.reputation_half_life_ms = MINUTE_MS;
    p.quantity_customer_sku_window_ms = MINUTE_MS;
    return p;
}

static void test_idle_entries_are_swept_under_a_stream_of_one_off_customers(void **state)
{
    (void)state;
    WHERE();
    guard_config_t c = small;
    c.identities_max = 12;
    c.customer_skus_max = 8;
    guard_t *g = guard_new(&c);
    policy_config_t p = forgetful_policy();
    put_policy(g, T0, &p);
    put_sku(g, T0, "tea", 1000000);
    int64_t t = T0;
    uint32_t peak = 0;
    for (int i = 0; i < 1500; i++) {
        t += 200000; /* past the refill, and a few half-lives */
        char customer[32], fingerprint[32];
        snprintf(customer, sizeof customer, "once-%d", i);
        snprintf(fingerprint, sizeof fingerprint, "fp-%d", i);
        guard_hold_request_t r = request_from(customer, NULL, fingerprint, "tea", 1, 0);
        guard_outcome_t o = hold(g, &r, t);
        if (o.result != GUARD_OK) {
            print_error("one-off customer %d refused: %s with %u identities, %u customer-skus\n", i,
                        guard_result_name(o.result), guard_stats(g).identities,
                        guard_stats(g).customer_skus);
        }
        assert_int_equal(o.result, GUARD_OK);
        if (i % 3 == 0) {
            finish_ok(g, t, ENGINE_OP_HOLD_COMMIT, o.engine.hold_id);
        } else if (i % 3 == 1) {
            finish_ok(g, t, ENGINE_OP_HOLD_RELEASE, o.engine.hold_id);
        } /* else it expires */
        uint32_t live = guard_stats(g).identities;
        peak = live > peak ? live : peak;
    }
    assert_true(peak <= c.identities_max);
    /* After a quiet day, one regular's holds sweep the rest away. */
    t += DAY_MS;
    for (uint32_t i = 0; i <= c.identities_max / 4 + 2; i++) {
        guard_hold_request_t r = request("regular", "tea", 1, 0);
        finish_ok(g, t, ENGINE_OP_HOLD_RELEASE, hold_ok(g, &r, t));
        t += 1000;
    }
    guard_stats_t s = guard_stats(g);
    assert_int_equal(s.identities, 1);
    assert_true(s.customer_skus <= 1);
    assert_true(
        guard_identity_find(g, POLICY_ID_CUSTOMER, "regular", 7, &(guard_identity_view_t){0}));
    guard_free(g);
}

/* Entries at rest mean the same as no entry, and a full table forgets the
 * customers that hold nothing: neither may turn a newcomer away. Customers
 * with a hold are never forgotten. */
static void test_a_table_full_of_idle_entries_admits_a_newcomer(void **state)
{
    (void)state;
    WHERE();
    guard_config_t c = small;
    c.identities_max = 4;
    guard_t *g = guard_new(&c);
    policy_config_t p = forgetful_policy();
    put_policy(g, T0, &p);
    put_sku(g, T0, "tea", 100);
    const char *const names[4] = {"ann", "bob", "cat", "dan"};
    uint64_t held[4];
    for (int i = 0; i < 4; i++) {
        guard_hold_request_t r = request(names[i], "tea", 1, 0);
        held[i] = hold_ok(g, &r, T0);
    }
    guard_hold_request_t r = request("eve", "tea", 1, 0);
    assert_int_equal(hold(g, &r, T0).result, GUARD_IDENTITIES_FULL); /* all four hold */
    assert_int_equal(guard_stats(g).identities, 4);
    for (int i = 0; i < 4; i++) {
        finish_ok(g, T0 + 1, ENGINE_OP_HOLD_RELEASE, held[i]);
    }
    /* Under pressure, idle customers go at once (at the next full sweep). */
    guard_outcome_t o = hold(g, &r, T0 + 2000);
    assert_int_equal(o.result, GUARD_OK);
    assert_true(
        guard_identity_find(g, POLICY_ID_CUSTOMER, "eve", 3, &(guard_identity_view_t){0}));
    finish_ok(g, T0 + 2001, ENGINE_OP_HOLD_RELEASE, o.engine.hold_id);

    const int64_t later = T0 + 30 * DAY_MS; /* every entry long at rest */
    r = request("fay", "tea", 1, 0);
    o = hold(g, &r, later);
    if (o.result != GUARD_OK) {
        print_error("a newcomer was refused (%s) 30 days after the last hold, with %u entries, "
                    "all at rest\n",
                    guard_result_name(o.result), guard_stats(g).identities);
    }
    assert_int_equal(o.result, GUARD_OK);
    guard_free(g);
}

/* The same for customer-and-sku entries; and a returning customer's hold on
 * a sku it already has an entry for adds no entry at all. */
static void test_a_full_customer_sku_table_of_idle_entries_admits_a_returning_customer(void **state)
{
    (void)state;
    WHERE();
    guard_config_t c = small;
    c.customer_skus_max = 2;
    guard_t *g = guard_new(&c);
    policy_config_t p = forgetful_policy();
    put_policy(g, T0, &p);
    put_sku(g, T0, "tea", 100);
    const char *const names[2] = {"ann", "bob"};
    for (int i = 0; i < 2; i++) { /* bought: their entries count for the window */
        guard_hold_request_t r = request(names[i], "tea", 1, 0);
        finish_ok(g, T0, ENGINE_OP_HOLD_COMMIT, hold_ok(g, &r, T0));
    }
    assert_int_equal(guard_stats(g).customer_skus, 2);
    guard_hold_request_t r = request("ann", "tea", 1, 0);
    guard_outcome_t o = hold(g, &r, T0 + 30 * DAY_MS);
    if (o.result != GUARD_OK) {
        print_error("ann, who has an entry for tea, was refused (%s) 30 days on, with %u "
                    "entries, all at rest\n",
                    guard_result_name(o.result), guard_stats(g).customer_skus);
    }
    assert_int_equal(o.result, GUARD_OK);
    guard_free(g);
}

/* ============================================================ proofs */

static void test_a_proof_verifies_only_for_its_request_until_it_expires(void **state)
{
    (void)state;
    WHERE();
    guard_t *g = guard_new(&small);
    guard_t *other = guard_new(&small);
    guard_t *none = guard_new(&small);
    set_secret(g, T0, 0x11);
    set_secret(other, T0, 0x22);
    guard_hold_request_t r1 = request("ann", "tea", 3, 0);
    guard_hold_request_t r2 = request("ann", "tea", 4, 0);
    uint64_t h1 = guard_request_hash(&r1), h2 = guard_request_hash(&r2);
    assert_true(h1 != h2);

    char header[HEADER_TEXT_MAX];
    uint64_t tag = 0;
    int64_t expires_ms = 0;
    solve_proof(g, h1, 8, T0, &tag, &expires_ms, NULL, header);
    assert_true(tag != 0);
    assert_int_equal(expires_ms, T0 + g->policy.challenge_ttl_ms);
    size_t len = strlen(header);
    uint64_t t;
    int64_t e;
    uint32_t b = 0;
    assert_true(guard_challenge_verify(g, h1, header, len, expires_ms - 1, &t, &e, &b));
    assert_int_equal(t, tag);
    assert_int_equal(b, 8);
    assert_false(guard_challenge_verify(g, h2, header, len, T0, &t, &e, &b));
    assert_false(guard_challenge_verify(g, h1, header, len, expires_ms, &t, &e, &b));
    assert_false(guard_challenge_verify(other, h1, header, len, T0, &t, &e, &b));
    assert_false(guard_challenge_verify(none, h1, header, len, T0, &t, &e, &b));
    /* A cheaper difficulty written over the issued one breaks the MAC. */
    char cheaper[HEADER_TEXT_MAX];
    memcpy(cheaper, header, sizeof cheaper);
    cheaper[0] = '0';
    cheaper[1] = '1';
    assert_false(guard_challenge_verify(g, h1, cheaper, len, T0, &t, &e, &b));
    /* The prefix and its colon without a nonce is no proof. */
    assert_false(guard_challenge_verify(g, h1, header, GUARD_PREFIX_TEXT_LEN + 1, T0, &t, &e, &b));
    guard_free(g);
    guard_free(other);
    guard_free(none);
}

static void test_a_proof_pays_for_one_hold_only(void **state)
{
    (void)state;
    WHERE();
    guard_t *g = guard_new(&small);
    set_secret(g, T0, 0x33);
    policy_config_t p = policy_config_default();
    p.challenge_base_bits = 4; /* 3 units over 2 free: 4 + 2 log2(1.5), so 6 bits */
    put_policy(g, T0, &p);
    put_sku(g, T0, "tea", 100);
    guard_hold_request_t r = request("ann", "tea", 3, 0);
    guard_outcome_t o = hold(g, &r, T0);
    assert_int_equal(o.result, GUARD_CHALLENGED);
    assert_int_equal(o.decision.rule, POLICY_RULE_SCARCITY_CHALLENGE);
    assert_int_equal(o.decision.bits, 6);
    assert_int_equal(guard_stats(g).challenges[POLICY_RULE_SCARCITY_CHALLENGE], 1);

    solve_proof(g, guard_request_hash(&r), o.decision.bits, T0, &r.proof_tag, &r.proof_expires_ms,
                &r.proof_bits, NULL);
    guard_op_t op;
    o = guard_hold(g, &r, T0 + 10, &op);
    check_guard(g);
    assert_int_equal(o.result, GUARD_OK);
    assert_true(o.changed);
    assert_int_equal(op.proof_tag, r.proof_tag);
    assert_int_equal(op.proof_expires_ms, r.proof_expires_ms);
    assert_int_equal(guard_stats(g).proofs_accepted, 1);
    assert_int_equal(g->proof_count, 1);

    o = hold(g, &r, T0 + 20); /* the same request, the same proof */
    assert_int_equal(o.result, GUARD_CHALLENGED);
    assert_int_equal(guard_stats(g).proofs_refused, 1);
    assert_int_equal(guard_stats(g).proofs_accepted, 1);

    /* Past its expiry it is forgotten, and fails on the expiry alone. */
    advance(g, r.proof_expires_ms);
    assert_int_equal(g->proof_count, 0);
    o = hold(g, &r, r.proof_expires_ms + 1);
    assert_int_equal(o.result, GUARD_CHALLENGED);
    assert_int_equal(guard_stats(g).proofs_refused, 2);
    guard_free(g);
}

/* ====================================================== limits at the edge */

static guard_outcome_t sku_policy(guard_t *g, int64_t now_ms, const char *sku, uint64_t mask)
{
    guard_op_t op = {.kind = GUARD_OP_SKU_POLICY, .engine = {.now_ms = now_ms}};
    set_text(op.u.sku_policy.sku, &op.u.sku_policy.sku_len, sku);
    op.u.sku_policy.mask = mask;
    op.u.sku_policy.values = policy_config_default();
    op.u.sku_policy.values.quantity_line_qty_max = 3;
    return apply(g, &op);
}

/* waitlist_max entries fit, one more is refused; a finished entry's slot is
 * then reused. */
static void test_the_waitlist_table_fills_at_its_max_and_reuses_finished_entries(void **state)
{
    (void)state;
    WHERE();
    guard_t *g = guard_new(&small);
    put_sku(g, T0, "gone", 0);
    uint64_t first = 0;
    char name[16];
    for (uint32_t i = 0; i < small.waitlist_max; i++) {
        snprintf(name, sizeof name, "c-%u", i);
        uint64_t id = join_ok(g, T0, "gone", name, 1);
        first = first == 0 ? id : first;
    }
    assert_int_equal(join(g, T0, "gone", "late", 1).result, GUARD_WAITLIST_FULL);
    assert_int_equal(cancel(g, T0 + 1, first).result, GUARD_OK);
    join_ok(g, T0 + 2, "gone", "late", 1); /* the cancelled entry's slot */
    assert_int_equal(join(g, T0 + 2, "gone", "later", 1).result, GUARD_WAITLIST_FULL);
    guard_free(g);
}

static guard_outcome_t join_keyed(guard_t *g, int64_t now_ms, const char *sku,
                                  const char *customer, uint32_t qty, const char *key)
{
    guard_op_t op = {.kind = GUARD_OP_WAIT_JOIN, .engine = {.now_ms = now_ms}};
    set_text(op.u.wait_join.sku, &op.u.wait_join.sku_len, sku);
    set_text(op.u.wait_join.customer, &op.u.wait_join.customer_len, customer);
    op.u.wait_join.qty = qty;
    set_text(op.u.wait_join.idem_key, &op.u.wait_join.idem_key_len, key);
    return apply(g, &op);
}

static void expect_join_replayed(guard_t *g, int64_t now_ms, const char *customer, uint64_t id)
{
    guard_outcome_t o = join_keyed(g, now_ms, "gone", customer, 2, "key-1");
    assert_int_equal(o.result, GUARD_OK);
    assert_true(o.replayed);
    assert_false(o.changed); /* nothing to journal */
    assert_int_equal(o.id, id);
}

/* A join retried with its Idempotency-Key (after a timeout, or an outcome
 * the journal could not tell) answers the entry it made, whatever has
 * happened since; the key with another request is refused. */
static void test_a_join_retried_with_its_key_answers_the_entry_it_made(void **state)
{
    (void)state;
    WHERE();
    guard_t *g = guard_new(&small);
    put_sku(g, T0, "gone", 0);
    guard_outcome_t o = join_keyed(g, T0, "gone", "u-1", 2, "key-1");
    assert_int_equal(o.result, GUARD_OK);
    assert_true(o.changed && !o.replayed);
    uint64_t id = o.id;
    expect_join_replayed(g, T0 + 1, "u-1", id);
    assert_int_equal(guard_stats(g).wait_joined, 1);
    assert_int_equal(join(g, T0 + 1, "gone", "u-1", 2).result, GUARD_WAIT_DUPLICATE); /* no key */

    guard_outcome_t other = join_keyed(g, T0 + 2, "gone", "u-2", 2, "key-1");
    assert_int_equal(other.result, GUARD_ENGINE);
    assert_int_equal(other.engine.result, ENGINE_IDEMPOTENCY_MISMATCH);
    assert_false(other.changed);
    other = join_keyed(g, T0 + 2, "gone", "u-1", 3, "key-1"); /* another qty */
    assert_int_equal(other.engine.result, ENGINE_IDEMPOTENCY_MISMATCH);

    put_sku(g, T0 + 3, "gone", 5); /* the entry is offered a hold: units are there now */
    assert_int_equal(wait_view(g, id).state, GUARD_WAIT_OFFERED);
    expect_join_replayed(g, T0 + 4, "u-1", id);
    guard_t *copy = restore_copy(g); /* the key is in the snapshot */
    expect_join_replayed(copy, T0 + 4, "u-1", id);
    guard_free(copy);
    guard_free(g);
}

/* A finished entry keeps its key until its slot is reused; then the key is
 * free to make a new entry. */
static void test_a_joins_key_is_forgotten_when_its_slot_is_reused(void **state)
{
    (void)state;
    WHERE();
    guard_t *g = guard_new(&small);
    put_sku(g, T0, "gone", 0);
    guard_outcome_t o = join_keyed(g, T0, "gone", "u-1", 2, "key-1");
    uint64_t first = o.id;
    char name[16];
    for (uint32_t i = 1; i < small.waitlist_max; i++) {
        snprintf(name, sizeof name, "c-%u", i);
        join_ok(g, T0, "gone", name, 1);
    }
    assert_int_equal(cancel(g, T0 + 1, first).result, GUARD_OK);
    expect_join_replayed(g, T0 + 2, "u-1", first); /* cancelled, still kept */
    uint64_t late = join_ok(g, T0 + 3, "gone", "late", 1); /* takes first's slot */
    assert_int_equal(cancel(g, T0 + 4, late).result, GUARD_OK);
    o = join_keyed(g, T0 + 5, "gone", "u-1", 2, "key-1");
    assert_int_equal(o.result, GUARD_OK);
    assert_true(o.changed && !o.replayed);
    assert_true(o.id != first);
    guard_free(g);
}

/* One sku's line holds HF_WAITLIST_PER_SKU_MAX; another sku still has room. */
static void test_one_skus_line_fills_at_its_max(void **state)
{
    (void)state;
    WHERE();
    guard_config_t c = small;
    c.waitlist_max = HF_WAITLIST_PER_SKU_MAX + 8;
    guard_t *g = guard_new(&c);
    put_sku(g, T0, "gone", 0);
    put_sku(g, T0, "other", 0);
    char name[24];
    guard_op_t op = {.kind = GUARD_OP_WAIT_JOIN, .engine = {.now_ms = T0}};
    set_text(op.u.wait_join.sku, &op.u.wait_join.sku_len, "gone");
    op.u.wait_join.qty = 1;
    for (uint32_t i = 0; i < HF_WAITLIST_PER_SKU_MAX; i++) {
        snprintf(name, sizeof name, "c-%u", i); /* guard_apply alone: a check each is O(n) */
        set_text(op.u.wait_join.customer, &op.u.wait_join.customer_len, name);
        op.u.wait_join.id = 0;
        assert_int_equal(guard_apply(g, &op).result, GUARD_OK);
    }
    check_guard(g);
    assert_int_equal(join(g, T0, "gone", "one-more", 1).result, GUARD_WAITLIST_FULL);
    join_ok(g, T0, "other", "one-more", 1);
    guard_free(g);
}

/* sku_policies_max skus may have their own policy; clearing one keeps its
 * slot (setting it again needs no room), a new sku finds none. */
static void test_sku_policies_fill_at_their_max(void **state)
{
    (void)state;
    WHERE();
    guard_t *g = guard_new(&small);
    uint64_t mask = 1ull << POLICY_F_quantity_line_qty_max;
    char sku[16];
    for (uint32_t i = 0; i <= small.sku_policies_max; i++) {
        snprintf(sku, sizeof sku, "s-%u", i);
        put_sku(g, T0, sku, 10);
    }
    for (uint32_t i = 0; i < small.sku_policies_max; i++) {
        snprintf(sku, sizeof sku, "s-%u", i);
        assert_int_equal(sku_policy(g, T0, sku, mask).result, GUARD_OK);
    }
    snprintf(sku, sizeof sku, "s-%u", small.sku_policies_max);
    assert_int_equal(sku_policy(g, T0, sku, mask).result, GUARD_SKU_POLICIES_FULL);
    assert_int_equal(sku_policy(g, T0, "s-0", 0).result, GUARD_OK);
    assert_int_equal(sku_policy(g, T0, "s-0", mask).result, GUARD_OK);
    assert_int_equal(guard_sku_policy(g, sku_index(g, "s-0"), NULL)->quantity_line_qty_max, 3);
    guard_free(g);
}

/* proofs_max spent proofs are remembered; a hold paying with one more is
 * refused (and changes nothing) until the oldest expire. */
static void test_spent_proofs_fill_at_their_max_until_they_expire(void **state)
{
    (void)state;
    WHERE();
    guard_config_t c = small;
    c.proofs_max = 2;
    guard_t *g = guard_new(&c);
    set_secret(g, T0, 0x44);
    policy_config_t p = policy_config_default();
    p.challenge_base_bits = 4;
    put_policy(g, T0, &p);
    put_sku(g, T0, "tea", 100);
    int64_t expires_ms = 0;
    char name[16];
    for (uint32_t i = 0; i <= c.proofs_max; i++) {
        snprintf(name, sizeof name, "c-%u", i);
        int64_t t = T0 + 10 * i;
        guard_hold_request_t r = request(name, "tea", 3, 0);
        guard_outcome_t o = hold(g, &r, t);
        assert_int_equal(o.result, GUARD_CHALLENGED);
        solve_proof(g, guard_request_hash(&r), o.decision.bits, t, &r.proof_tag,
                    &r.proof_expires_ms, &r.proof_bits, NULL);
        expires_ms = r.proof_expires_ms;
        o = hold(g, &r, t + 1);
        if (i < c.proofs_max) {
            assert_int_equal(o.result, GUARD_OK);
        } else {
            assert_int_equal(o.result, GUARD_PROOFS_FULL);
            assert_false(o.changed);
            assert_int_equal(engine_stats(&g->engine).holds_active, c.proofs_max);
        }
    }
    advance(g, expires_ms); /* the spent ones are forgotten */
    assert_int_equal(g->proof_count, 0);
    guard_free(g);
}

/* ============================================================ revoke */

static void test_revoke_releases_exactly_the_identitys_active_holds(void **state)
{
    (void)state;
    WHERE();
    guard_t *g = guard_new(&small);
    put_sku(g, T0, "tea", 100);
    put_sku(g, T0, "cake", 10);
    guard_hold_request_t r = request_from("ann", "10.0.0.1", "fp-x", "tea", 1, MINUTE_MS);
    uint64_t a1 = apply_hold_req(g, T0, &r);
    r = request_from("ann", "10.0.1.9", NULL, "cake", 2, MINUTE_MS);
    uint64_t a2 = apply_hold_req(g, T0, &r);
    r = request_from("ann", NULL, NULL, "tea", 1, MINUTE_MS);
    uint64_t a3 = apply_hold_req(g, T0, &r);
    finish_ok(g, T0, ENGINE_OP_HOLD_COMMIT, a3);
    r = request_from("bob", "10.0.0.2", "fp-x", "tea", 1, MINUTE_MS);
    uint64_t b1 = apply_hold_req(g, T0, &r);
    r = request_from("cat", "10.0.0.3", NULL, "cake", 1, MINUTE_MS);
    uint64_t c1 = apply_hold_req(g, T0, &r);

    guard_outcome_t o = revoke_id(g, T0 + 1, POLICY_ID_CUSTOMER, "ann", "fraud");
    assert_int_equal(o.result, GUARD_OK);
    assert_true(o.changed);
    assert_int_equal(o.revoked, 2);
    const uint64_t released[] = {a1, a2};
    for (int i = 0; i < 2; i++) {
        engine_hold_view_t v = hold_view(g, released[i]);
        assert_int_equal(v.state, ENGINE_HOLD_RELEASED_STATE);
        assert_int_equal(v.finished_ms, T0 + 1);
        assert_int_equal(v.order_ref_len, 5);
        assert_memory_equal(v.order_ref, "fraud", 5);
    }
    assert_int_equal(hold_view(g, a3).state, ENGINE_HOLD_COMMITTED_STATE);
    assert_int_equal(hold_view(g, b1).state, ENGINE_HOLD_ACTIVE);
    assert_int_equal(hold_view(g, c1).state, ENGINE_HOLD_ACTIVE);
    guard_identity_view_t ann = identity(g, POLICY_ID_CUSTOMER, "ann");
    assert_int_equal(ann.holds_active, 0);
    assert_int_equal(ann.units_held, 0);
    assert_int_equal(guard_stats(g).revoked_holds, 2);

    o = revoke_id(g, T0 + 2, POLICY_ID_CUSTOMER, "ann", "fraud");
    assert_int_equal(o.result, GUARD_OK);
    assert_false(o.changed);
    assert_int_equal(o.revoked, 0);
    o = revoke_id(g, T0 + 3, POLICY_ID_FINGERPRINT, "fp-x", "bot");
    assert_int_equal(o.revoked, 1);
    assert_int_equal(hold_view(g, b1).state, ENGINE_HOLD_RELEASED_STATE);
    o = revoke_id(g, T0 + 4, POLICY_ID_IP_PREFIX, "10.0.0.0/24", "botnet");
    assert_int_equal(o.revoked, 1);
    assert_int_equal(hold_view(g, c1).state, ENGINE_HOLD_RELEASED_STATE);
    o = revoke_id(g, T0 + 5, POLICY_ID_CUSTOMER, "nobody", "x");
    assert_int_equal(o.result, GUARD_NOT_FOUND);
    assert_false(o.changed);
    assert_int_equal(guard_stats(g).revoked_holds, 4);
    guard_free(g);
}

/* ========================================================== snapshots */

static uint64_t first_offer(const guard_t *g)
{
    for (uint32_t i = 0; i < g->wait_hwm; i++) {
        if (g->waits[i].state == GUARD_WAIT_OFFERED) {
            return g->waits[i].hold_id;
        }
    }
    return 0;
}

/* A guard with something in every table: identities of each kind, bought
 * units, a spent proof, a sku policy, waiting and offered entries. */
static int64_t build_busy(guard_t *g)
{
    int64_t now = T0;
    set_secret(g, now, 0x5a);
    policy_config_t p = policy_config_default();
    p.challenge_base_bits = 4;
    p.challenge_bits_max = 8;
    put_policy(g, now, &p);
    put_sku(g, now, "tea", 50);
    put_sku(g, now, "cake", 4);
    put_sku(g, now, "jam", 3);
    guard_op_t op = {.kind = GUARD_OP_SKU_POLICY, .engine = {.now_ms = now}};
    set_text(op.u.sku_policy.sku, &op.u.sku_policy.sku_len, "cake");
    op.u.sku_policy.mask =
        1ull << POLICY_F_hold_share_held_pct_max | 1ull << POLICY_F_waitlist_offer_ttl_ms;
    op.u.sku_policy.values = p;
    op.u.sku_policy.values.hold_share_held_pct_max = 100;
    op.u.sku_policy.values.waitlist_offer_ttl_ms = 30000;
    apply_ok(g, &op);

    guard_hold_request_t r = request_from("ann", "10.0.0.1", "fp-a", "tea", 2, 0);
    uint64_t a1 = hold_ok(g, &r, now);
    r = request_from("bob", "10.0.0.2", NULL, "tea", 1, 300000);
    hold_ok(g, &r, now);
    now += 1000;
    r = request_from("cat", "2001:db8::7", "fp-c", "tea", 3, 0);
    hold_with_proof(g, &r, now);
    finish(g, now, ENGINE_OP_HOLD_COMMIT, a1, "o-1");
    apply_hold(g, now, "dan", "jam", 1, MINUTE_MS);
    apply_hold(g, now + 1000, "eve", "jam", 1, MINUTE_MS);
    apply_hold(g, now + 2000, "fay", "jam", 1, 5 * MINUTE_MS);
    join_ok(g, now + 3000, "jam", "gus", 1);
    join_ok(g, now + 3000, "jam", "hal", 2);
    apply_hold(g, now + 3000, "ivy", "cake", 4, MINUTE_MS);
    join_ok(g, now + 3000, "cake", "jo", 1);
    now += MINUTE_MS + 500; /* dan's expired: gus has an offer */
    advance(g, now);
    assert_true(first_offer(g) != 0);
    guard_outcome_t o = revoke_id(g, now, POLICY_ID_CUSTOMER, "bob", "test");
    assert_int_equal(o.revoked, 1);
    return now;
}

/* The same live calls, on any guard: each uses the ids it was given. */
static int64_t continue_ops(guard_t *g, int64_t now)
{
    now += 1000;
    guard_hold_request_t r = request_from("kim", "10.0.0.9", NULL, "tea", 1, 0);
    uint64_t k = hold_ok(g, &r, now);
    join_ok(g, now, "jam", "lee", 3);
    now += 30000;
    advance(g, now);
    uint64_t offer = first_offer(g);
    assert_true(offer != 0);
    finish_ok(g, now, ENGINE_OP_HOLD_COMMIT, offer);
    now += 200000;
    advance(g, now);
    r = request_from("mia", NULL, "fp-a", "tea", 2, 0);
    hold_ok(g, &r, now);
    /* Another device: fp-c holds 3 of tea already, over 4 with 3 more. */
    r = request_from("cat", "2001:db8::7", "fp-c2", "tea", 3, 0);
    hold_with_proof(g, &r, now);
    finish_ok(g, now, ENGINE_OP_HOLD_RELEASE, k);
    now += 10 * MINUTE_MS;
    advance(g, now);
    return now;
}

static void test_snapshot_restores_an_equal_guard_that_stays_equal(void **state)
{
    (void)state;
    WHERE();
    guard_t *g = guard_new(&small);
    int64_t now = build_busy(g);
    guard_t *s = restore_copy(g);
    snprintf(where, sizeof where, "restored from a snapshot");
    same_guards(g, s, SAME_BUT_ENGINE_TOTALS);
    int64_t end_g = continue_ops(g, now);
    int64_t end_s = continue_ops(s, now);
    assert_int_equal(end_g, end_s);
    snprintf(where, sizeof where, "restored, then the same ops on both");
    same_guards(g, s, SAME_BUT_ENGINE_TOTALS);
    guard_free(s);
    guard_free(g);
}

/* After a snapshot the journal's ops replay onto the restored guard; the
 * offers the guard makes itself are not journaled with an id, so they must
 * land in the same hold slots there as they did in the guard that wrote the
 * journal, or the ids its clients were given name nothing (or something
 * else) at recovery. Here three finished holds leave the table by age in an
 * order other than their slots'. */
static void test_snapshot_then_journal_gives_an_offer_the_same_hold_id(void **state)
{
    (void)state;
    WHERE();
    guard_t *g = guard_new(&small);
    put_sku(g, T0, "tea", 10);
    put_sku(g, T0, "seat", 1);
    uint64_t h0 = apply_hold(g, T0, "ann", "tea", 1, MINUTE_MS);
    uint64_t h1 = apply_hold(g, T0, "bob", "tea", 1, MINUTE_MS);
    uint64_t h2 = apply_hold(g, T0, "cat", "tea", 1, MINUTE_MS);
    finish_ok(g, T0, ENGINE_OP_HOLD_RELEASE, h0);
    finish_ok(g, T0 + 1, ENGINE_OP_HOLD_RELEASE, h2);
    finish_ok(g, T0 + 2, ENGINE_OP_HOLD_RELEASE, h1);
    const int64_t t = T0 + DAY_MS + 10; /* all three forgotten, oldest first */
    advance(g, t);
    assert_int_equal(engine_stats(&g->engine).holds_evicted, 3);
    uint64_t seat = apply_hold(g, t, "dan", "seat", 1, 10 * MINUTE_MS);
    uint64_t w = join_ok(g, t, "seat", "eve", 1);

    guard_t *s = restore_copy(g);
    same_guards(g, s, SAME_BUT_ENGINE_TOTALS);
    /* The journal goes on: dan lets go of the seat, and eve is offered it. */
    guard_op_t release = {.kind = GUARD_OP_ENGINE};
    release.engine = (engine_op_t){.kind = ENGINE_OP_HOLD_RELEASE, .now_ms = t + 1000};
    release.engine.u.hold.hold_id = seat;
    guard_op_t copy = release;
    assert_int_equal(apply(g, &release).result, GUARD_OK);
    assert_int_equal(apply(s, &copy).result, GUARD_OK);
    uint64_t offer_g = wait_view(g, w).hold_id, offer_s = wait_view(s, w).hold_id;
    if (offer_g != offer_s) {
        print_error("eve's offer is hold %llu (slot %u) in the guard that wrote the journal, "
                    "%llu (slot %u) in the one restored from its snapshot\n",
                    (unsigned long long)offer_g, engine_hold_slot(offer_g),
                    (unsigned long long)offer_s, engine_hold_slot(offer_s));
    }
    assert_int_equal(offer_g, offer_s);
    /* Eve pays with the id she was given. */
    guard_op_t commit = {.kind = GUARD_OP_ENGINE};
    commit.engine = (engine_op_t){.kind = ENGINE_OP_HOLD_COMMIT, .now_ms = t + 2000};
    commit.engine.u.hold.hold_id = offer_g;
    copy = commit;
    assert_int_equal(apply(g, &commit).result, GUARD_OK);
    assert_int_equal(apply(s, &copy).result, GUARD_OK);
    same_guards(g, s, SAME_BUT_ENGINE_TOTALS);
    guard_free(s);
    guard_free(g);
}

/* The guard's snapshot record: scalars (magic, the policy, the secret, the
 * tables' counts and list heads, stats, events), then the tables, then the
 * hold records and an end mark, all as little-endian 64-bit fields except
 * the secret and the names. */
typedef struct {
    store_buf_t full;     /* the whole snapshot, as the store writes it */
    size_t engine_size;   /* its records before the guard's */
    const uint8_t *guard; /* the guard's own bytes, in full */
    size_t guard_size;
} snap_t;

static void snap_take(const guard_t *g, snap_t *s)
{
    memset(s, 0, sizeof *s);
    record_encode_snapshot(&s->full, g);
    buf_own(&s->full);
    /* The guard's record is last: a kind byte, a 64-bit length, the bytes. */
    for (size_t at = 0; at + 9 <= s->full.size; at++) {
        uint64_t len = 0;
        for (int i = 0; i < 8; i++) {
            len |= (uint64_t)s->full.data[at + 1 + (size_t)i] << (8 * i);
        }
        if (s->full.data[at] == RECORD_SNAP_GUARD && at + 9 + len == s->full.size) {
            s->engine_size = at;
            s->guard = s->full.data + at + 9;
            s->guard_size = (size_t)len;
            break;
        }
    }
    assert_non_null(s->guard);
}

static void put_le64(uint8_t *at, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        at[i] = (uint8_t)(v >> (8 * i));
    }
}

/* The first place these 64-bit fields appear in a row. */
static size_t snap_find(const snap_t *s, const uint64_t *values, size_t count)
{
    uint8_t want[16 * 8];
    assert_true(count <= 16);
    for (size_t i = 0; i < count; i++) {
        put_le64(want + 8 * i, values[i]);
    }
    for (size_t at = 0; at + 8 * count <= s->guard_size; at++) {
        if (memcmp(s->guard + at, want, 8 * count) == 0) {
            return at;
        }
    }
    fail_msg("fields not found in the guard's snapshot record");
    return 0;
}

/* Restores the engine's records of s with `bytes` as the guard's record,
 * into a fresh guard. */
static bool snap_restore(const snap_t *s, const uint8_t *bytes, size_t size, char *err,
                         size_t err_size)
{
    store_buf_t b = {0};
    record_buf_reserve(&b, s->engine_size + 9 + size);
    buf_own(&b);
    memcpy(b.data, s->full.data, s->engine_size);
    b.data[s->engine_size] = RECORD_SNAP_GUARD;
    put_le64(b.data + s->engine_size + 1, size);
    if (size > 0) {
        memcpy(b.data + s->engine_size + 9, bytes, size);
    }
    b.size = s->engine_size + 9 + size;
    guard_t *g = guard_new(&small);
    record_reader_t r = {b.data, b.size, true};
    uint64_t records = 0;
    err[0] = '\0';
    bool ok = record_restore_snapshot(&r, g, &records, err, err_size);
    if (ok) {
        check_guard(g);
    }
    guard_free(g);
    buf_free(&b);
    return ok;
}

static void expect_refused(const snap_t *s, const uint8_t *bytes, size_t size, const char *what)
{
    char err[256];
    if (snap_restore(s, bytes, size, err, sizeof err)) {
        print_error("a guard snapshot with %s was accepted\n", what);
        fail();
    }
    if (err[0] == '\0') {
        print_error("a guard snapshot with %s was refused without a reason\n", what);
        fail();
    }
}

/* One 64-bit field of the record rewritten. */
typedef struct {
    const char *what;
    size_t at;
    uint64_t value;
} damage_t;

static void expect_damage_refused(const snap_t *s, const damage_t *d)
{
    uint8_t *bad = malloc(s->guard_size);
    assert_non_null(bad);
    own(bad, false);
    memcpy(bad, s->guard, s->guard_size);
    assert_true(d->at + 8 <= s->guard_size);
    put_le64(bad + d->at, d->value);
    expect_refused(s, bad, s->guard_size, d->what);
    disown(bad);
    free(bad);
}

static size_t snap_lists_at(const snap_t *s, const guard_t *g)
{
    const uint64_t lists[] = {g->id_hwm,
                              g->id_free,
                              g->id_sweep,
                              g->cs_hwm,
                              g->cs_free,
                              g->cs_sweep,
                              engine_sku_count(&g->engine)};
    return snap_find(s, lists, sizeof lists / sizeof lists[0]);
}

static void test_snapshot_truncated_or_damaged_is_refused(void **state)
{
    (void)state;
    WHERE();
    guard_t *g = guard_new(&small);
    build_busy(g);
    snap_t s;
    snap_take(g, &s);
    char err[256];
    assert_true(snap_restore(&s, s.guard, s.guard_size, err, sizeof err));

    for (size_t len = 0; len < s.guard_size; len++) {
        char what[64];
        snprintf(what, sizeof what, "only %zu of its %zu bytes", len, s.guard_size);
        expect_refused(&s, s.guard, len, what);
    }
    uint8_t *longer = calloc(1, s.guard_size + 1);
    assert_non_null(longer);
    own(longer, false);
    memcpy(longer, s.guard, s.guard_size);
    expect_refused(&s, longer, s.guard_size + 1, "a byte too many");
    disown(longer);
    free(longer);

    /* Counts and list heads follow the policy, the secret and the shop's
     * conversion; the hold records (five fields each) end with an end mark,
     * then come the pool, reclaim lists and pay times: four fields, then
     * six and the pay buckets for each sku. */
    size_t lists = snap_lists_at(&s, g);
    const uint64_t ann_head = 1 | (uint64_t)POLICY_ID_CUSTOMER << 8 | (uint64_t)3 << 16;
    const uint64_t ann_at = snap_find(&s, &ann_head, 1);
    assert_memory_equal(s.guard + ann_at + 8, "ann", 3);
    const size_t v3 = 4 * 8 + engine_sku_count(&g->engine) * (6 + GUARD_PAY_BUCKETS) * 8;
    const size_t end_mark = s.guard_size - v3 - 8, last_hold = end_mark - 5 * 8;
    const size_t first_sku = s.guard_size - v3 + 4 * 8;
    const uint32_t slots = engine_hold_slots_used(&g->engine);
    const damage_t damage[] = {
        {"another magic", 0, 0x34445247u},
        {"a policy of another field count", 8, POLICY_FIELD_COUNT + 1},
        {"more identities than the table holds", lists, small.identities_max + 1},
        {"an identity free list past the table", lists + 8, 0x40000000u},
        {"a customer-sku free list past the table", lists + 32, 0x40000000u},
        {"a sku count the engine does not have", lists + 48, engine_sku_count(&g->engine) + 1},
        {"a finished-entry list past the entries", lists + 72, g->wait_hwm + 1},
        {"an identity name longer than names are", ann_at, 1 | (uint64_t)200 << 16},
        {"an identity of no kind", ann_at, 1 | (uint64_t)7 << 8 | (uint64_t)3 << 16},
        {"a hold record for a slot never used", last_hold, slots + 3},
        {"a hold record naming no identity", last_hold + 8, g->id_hwm + 3},
        {"a hold's reclaim link past the holds", last_hold + 24, slots + 1},
        {"no end mark", end_mark, 0},
        {"a multi-line list past the holds", s.guard_size - v3 + 24, 0xffffffffu},
        {"a sku's pool that is not its holds'", first_sku, 1000},
        {"a sku's reclaim list past the holds", first_sku + 8, slots + 1},
        {"a pay count below zero", first_sku + 6 * 8, 0xbff0000000000000u /* -1.0 */},
    };
    for (size_t i = 0; i < sizeof damage / sizeof damage[0]; i++) {
        expect_damage_refused(&s, &damage[i]);
    }
    buf_free(&s.full);
    guard_free(g);
}

/* The finished entries are reused oldest first by following their list: a
 * list that names a waiting entry would hand a queued customer's slot to
 * the next join. */
static void test_snapshot_whose_finished_list_names_a_waiting_entry_is_refused(void **state)
{
    (void)state;
    WHERE();
    guard_t *g = guard_new(&small);
    build_busy(g);
    uint32_t waiting = UINT32_MAX;
    for (uint32_t i = 0; i < g->wait_hwm && waiting == UINT32_MAX; i++) {
        waiting = g->waits[i].state == GUARD_WAIT_WAITING ? i : UINT32_MAX;
    }
    assert_true(waiting != UINT32_MAX);
    snap_t s;
    snap_take(g, &s);
    size_t lists = snap_lists_at(&s, g);
    const damage_t d = {"a finished-entry list that starts at a waiting entry", lists + 72,
                        waiting + 1};
    expect_damage_refused(&s, &d);
    buf_free(&s.full);
    guard_free(g);
}

/* ============================================================== main */

static uint64_t fresh_seed(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    rng_t r = {.s = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec};
    r.s ^= (uint64_t)getpid() << 32;
    return rng_next(&r);
}

#define UNIT(f) cmocka_unit_test_teardown(f, free_owned)

int main(void)
{
    static const struct CMUnitTest units[] = {
        UNIT(test_waitlist_offer_is_made_at_the_expiry_instant),
        UNIT(test_an_expired_offer_passes_the_units_to_the_next_entry),
        UNIT(test_cancelling_an_offer_releases_its_hold_to_the_next_entry),
        UNIT(test_cancelling_a_waiting_head_serves_the_entry_behind_it),
        UNIT(test_a_stock_cut_below_the_head_does_not_block_the_line),
        UNIT(test_a_waiting_entry_is_served_when_the_hold_table_frees),
        UNIT(test_a_waitlist_offer_counts_as_a_recent_hold),
        UNIT(test_budget_charges_units_times_ttl_and_refunds_unused_time),
        UNIT(test_budget_short_is_denied_with_the_wait_that_refills_it),
        UNIT(test_buy_now_is_neither_charged_nor_refunded),
        UNIT(test_a_hoarder_gets_risk_and_a_shorter_ttl_than_a_newcomer),
        UNIT(test_escalation_switches_on_then_off_with_time),
        UNIT(test_pay_time_is_learned_from_commits_as_a_bucket_edge),
        UNIT(test_reclaim_takes_a_stale_cart_for_the_waitlist_in_one_step),
        UNIT(test_reclaim_is_quiet_when_nobody_waits_and_decides_once_a_second),
        UNIT(test_reclaim_takes_only_what_the_waiting_need_most_suspicious_first),
        UNIT(test_reclaim_frees_units_for_buyers_just_refused_for_want_of_them),
        UNIT(test_reclaim_spares_offers_and_holds_of_skus_that_turned_it_off),
        UNIT(test_reclaim_takes_at_most_its_op_of_holds_at_a_time),
        UNIT(test_newcomer_pool_counts_units_of_identities_that_never_bought),
        UNIT(test_a_proof_solved_cheaper_than_todays_price_is_asked_again),
        UNIT(test_a_device_buying_outright_reaches_its_cap_per_sku),
        UNIT(test_idle_entries_are_swept_under_a_stream_of_one_off_customers),
        UNIT(test_a_table_full_of_idle_entries_admits_a_newcomer),
        UNIT(test_a_full_customer_sku_table_of_idle_entries_admits_a_returning_customer),
        UNIT(test_a_proof_verifies_only_for_its_request_until_it_expires),
        UNIT(test_a_proof_pays_for_one_hold_only),
        UNIT(test_the_waitlist_table_fills_at_its_max_and_reuses_finished_entries),
        UNIT(test_a_join_retried_with_its_key_answers_the_entry_it_made),
        UNIT(test_a_joins_key_is_forgotten_when_its_slot_is_reused),
        UNIT(test_one_skus_line_fills_at_its_max),
        UNIT(test_sku_policies_fill_at_their_max),
        UNIT(test_spent_proofs_fill_at_their_max_until_they_expire),
        UNIT(test_revoke_releases_exactly_the_identitys_active_holds),
        UNIT(test_snapshot_restores_an_equal_guard_that_stays_equal),
        UNIT(test_snapshot_then_journal_gives_an_offer_the_same_hold_id),
        UNIT(test_snapshot_truncated_or_damaged_is_refused),
        UNIT(test_snapshot_whose_finished_list_names_a_waiting_entry_is_refused),
    };
    static struct CMUnitTest tests[sizeof units / sizeof units[0] + 4];
    size_t n = sizeof units / sizeof units[0];
    memcpy(tests, units, sizeof units);

    uint64_t seeds[4] = {1, 2, 0x5eedf00dull};
    size_t seed_count = 3;
    const char *replay = getenv("HF_SEED");
    if (replay != NULL && *replay != '\0') {
        seeds[0] = strtoull(replay, NULL, 0);
        seed_count = 1;
    } else {
        seeds[seed_count++] = fresh_seed();
    }
    static drive_run_t runs[4];
    for (size_t i = 0; i < seed_count; i++) {
        printf("seed=%llu\n", (unsigned long long)seeds[i]);
        runs[i].seed = seeds[i];
        snprintf(runs[i].name, sizeof runs[i].name, "drive seed=%llu",
                 (unsigned long long)seeds[i]);
        tests[n++] = (struct CMUnitTest){.name = runs[i].name,
                                         .test_func = test_drive_replays_to_the_same_guard,
                                         .setup_func = drive_setup,
                                         .teardown_func = drive_teardown,
                                         .initial_state = &runs[i]};
    }
    fflush(stdout);
    return _cmocka_run_group_tests("guard", tests, n, NULL, NULL);
}
