/*
 * apply.c - every guard op applied without deciding, and expiry (apply.h,
 * guard.h).
 */
#include "apply.h"

#include <assert.h>
#include <string.h>

#include "audit.h"
#include "book.h"
#include "notice.h"
#include "offer.h"
#include "proof.h"
#include "sku.h"
#include "waitlist.h"

/* ----------------------------------------------------------------- time */

/* Expires every hold due at exactly at_ms, then serves the waitlists of the
 * skus they freed: an offer made at at_ms must not expire a tie unseen. */
static void expire_instant(guard_t *g, int64_t at_ms)
{
    uint32_t marked = 0;
    engine_hold_view_t h;
    while (engine_next_expiry_ms(&g->engine) == at_ms &&
           engine_expire_next(&g->engine, at_ms, &h)) {
        notice_add(g, GUARD_NOTICE_EXPIRED, h.id, at_ms); /* before what it frees */
        book_finish(g, &h, at_ms);
        for (uint16_t i = 0; i < h.line_count; i++) {
            guard_sku_t *s = &g->skus[h.lines[i].sku_index];
            if (s->wait_head != 0 && !s->marked) {
                s->marked = 1;
                g->scratch[marked++] = h.lines[i].sku_index;
            }
        }
    }
    for (uint32_t i = 0; i < marked; i++) {
        g->skus[g->scratch[i]].marked = 0;
        offer_serve(g, g->scratch[i], at_ms);
    }
}

void guard_advance(guard_t *g, int64_t now_ms)
{
    assert(now_ms >= engine_now_ms(&g->engine));
    for (int64_t t = engine_next_expiry_ms(&g->engine); t <= now_ms;
         t = engine_next_expiry_ms(&g->engine)) {
        expire_instant(g, t);
    }
    engine_advance(&g->engine, now_ms);
    proof_forget(g, now_ms);
    offer_serve_starved(g);
}

/* -------------------------------------------------------------- applying */

static guard_outcome_t engine_failed(engine_outcome_t o)
{
    return (guard_outcome_t){.result = o.result == ENGINE_OK ? GUARD_OK : GUARD_ENGINE,
                             .engine = o};
}

/* The units entries a hold would add: one per line and named identity
 * that has none for its sku yet. */
static uint32_t cs_needed(const guard_t *g, const engine_hold_create_t *c, const ident_names_t *n)
{
    uint32_t needed = 0;
    for (uint16_t i = 0; i < c->line_count; i++) {
        uint32_t sku = GUARD_NONE;
        bool sku_known = n->cs_known || engine_sku_find(&g->engine, c->lines[i].sku,
                                                        c->lines[i].sku_len, &sku);
        for (int k = 0; k < POLICY_ID_KINDS; k++) {
            if (n->len[k] == 0) {
                continue;
            }
            /* Deciding found the entries already (n->cs); replay looks. */
            bool known = n->cs_known ? n->cs[k][i] != GUARD_NONE
                                     : sku_known && n->ids[k] != GUARD_NONE &&
                                           ident_cs_find(g, n->ids[k], sku) != GUARD_NONE;
            needed += !known;
        }
    }
    return needed;
}

static guard_result_t room_now(const guard_t *g, const guard_op_t *op, const ident_names_t *n)
{
    if (!ident_room(g, ident_names_new(n))) {
        return GUARD_IDENTITIES_FULL;
    }
    const engine_hold_create_t *c = &op->engine.u.hold_create;
    if (g->stats.customer_skus + cs_needed(g, c, n) > g->config.customer_skus_max) {
        return GUARD_CUSTOMER_SKUS_FULL;
    }
    if (op->proof_tag != 0 && g->proof_count >= g->config.proofs_max) {
        return GUARD_PROOFS_FULL;
    }
    return GUARD_OK;
}

/* Whether the tables have room for what a hold would add. A table full of
 * entries at rest makes room by sweeping it whole (rare: the regular sweep
 * keeps up), at most once a GUARD_FULL_SWEEP_MS so that a full table cannot
 * make every refused request pay for a scan. The sweep changes state even
 * when the hold is refused after it: *swept says so, and the op is then
 * journaled (its replay sweeps and is refused alike). n is found again, as
 * the sweep may free what it named. */
static guard_result_t hold_room(guard_t *g, const guard_op_t *op, ident_names_t *n, bool *swept)
{
    int64_t now_ms = op->engine.now_ms;
    guard_result_t r = room_now(g, op, n);
    bool full = r == GUARD_IDENTITIES_FULL || r == GUARD_CUSTOMER_SKUS_FULL;
    *swept = full && now_ms >= g->swept_at_ms + GUARD_FULL_SWEEP_MS;
    if (*swept) {
        ident_sweep(g, now_ms, g->id_hwm > g->cs_hwm ? g->id_hwm : g->cs_hwm, true);
        g->swept_at_ms = now_ms;
        ident_names_find(g, &op->engine.u.hold_create, n);
        r = room_now(g, op, n);
    }
    return r;
}

/* Buy now: the hold just made is sold in the same step. */
static void buy_now(guard_t *g, const guard_op_t *op, engine_hold_view_t *h)
{
    int64_t now_ms = op->engine.now_ms;
    engine_op_t commit = {.kind = ENGINE_OP_HOLD_COMMIT, .now_ms = now_ms};
    commit.u.hold.hold_id = h->id;
    memcpy(commit.u.hold.order_ref, op->order_ref, op->order_ref_len);
    commit.u.hold.order_ref_len = op->order_ref_len;
    engine_outcome_t co = engine_apply(&g->engine, &commit);
    assert(co.result == ENGINE_OK && co.changed);
    engine_result_t r = engine_hold_view(&g->engine, h->id, h);
    assert(r == ENGINE_OK);
    book_finish(g, h, now_ms);
    g->stats.buy_now++;
}

guard_outcome_t apply_hold_create(guard_t *g, guard_op_t *op, ident_names_t *n, bool *swept)
{
    int64_t now_ms = op->engine.now_ms;
    engine_hold_create_t *c = &op->engine.u.hold_create;
    ident_names_t found;
    if (n == NULL) {
        ident_names_find(g, c, &found);
        n = &found;
    }
    guard_outcome_t out = {.result = hold_room(g, op, n, swept)};
    if (out.result != GUARD_OK) {
        return out;
    }
    out = engine_failed(engine_apply(&g->engine, &op->engine));
    if (out.result != GUARD_OK || out.engine.replayed) {
        return out;
    }
    c->hold_id = out.engine.hold_id;
    out.changed = true;
    ident_names_add(g, n, now_ms); /* a new identity's entries are GUARD_NONE: found or added */
    guard_hold_t side = {.newcomer = op->newcomer, .buy_now = op->buy_now};
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        side.ids[k] = n->ids[k] == GUARD_NONE ? 0 : n->ids[k] + 1;
    }
    engine_hold_view_t h;
    engine_result_t r = engine_hold_view(&g->engine, out.engine.hold_id, &h);
    assert(r == ENGINE_OK);
    bool charged = !op->buy_now && g->policy.budget_enabled;
    double cost_unit_ms = charged ? (double)book_units(&h) * (double)c->ttl_ms : 0.0;
    book_start(g, &h, &side, cost_unit_ms, now_ms, n->cs_known ? n : NULL);
    if (op->proof_tag != 0) {
        proof_add(g, op->proof_tag, op->proof_expires_ms);
        g->stats.proofs_accepted++;
    }
    if (op->buy_now) {
        buy_now(g, op, &h);
    }
    for (uint16_t i = 0; i < h.line_count; i++) {
        sku_evaluate(g, h.lines[i].sku_index, now_ms);
    }
    ident_sweep(g, now_ms, IDENT_SWEEP_PER_HOLD, false);
    return out;
}

/* Commit or release: the engine moves the hold, the guard settles the rest. */
static guard_outcome_t apply_hold_finish(guard_t *g, guard_op_t *op)
{
    int64_t now_ms = op->engine.now_ms;
    if (op->engine.kind == ENGINE_OP_HOLD_RELEASE) {
        memcpy(op->engine.u.hold.order_ref, op->reason, op->reason_len);
        op->engine.u.hold.order_ref_len = op->reason_len;
    }
    guard_outcome_t out = engine_failed(engine_apply(&g->engine, &op->engine));
    if (out.result != GUARD_OK || !out.engine.changed) {
        return out;
    }
    out.changed = true;
    engine_hold_view_t h;
    engine_result_t r = engine_hold_view(&g->engine, op->engine.u.hold.hold_id, &h);
    assert(r == ENGINE_OK);
    book_finish(g, &h, now_ms);
    for (uint16_t i = 0; i < h.line_count; i++) {
        offer_serve(g, h.lines[i].sku_index, now_ms);
        sku_evaluate(g, h.lines[i].sku_index, now_ms);
    }
    return out;
}

/* An extension is charged to the budgets for the time it adds. */
static guard_outcome_t apply_hold_extend(guard_t *g, guard_op_t *op)
{
    engine_hold_view_t before;
    bool found = engine_hold_view(&g->engine, op->engine.u.hold.hold_id, &before) == ENGINE_OK;
    guard_outcome_t out = engine_failed(engine_apply(&g->engine, &op->engine));
    if (out.result != GUARD_OK || !out.engine.changed) {
        return out;
    }
    assert(found);
    out.changed = true;
    engine_hold_view_t h;
    engine_hold_view(&g->engine, before.id, &h);
    double cost_unit_ms = (double)book_units(&h) * (double)(h.expires_ms - before.expires_ms);
    if (!g->policy.budget_enabled) {
        return out; /* nothing charged, nothing to refund later either */
    }
    guard_hold_t *side = &g->holds[engine_hold_slot(h.id)];
    side->charged = 1;
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        if (side->ids[k] != 0) {
            guard_identity_t *id = &g->ids[side->ids[k] - 1];
            ident_bring(g, id, op->engine.now_ms);
            id->budget_unit_ms -= cost_unit_ms;
        }
    }
    return out;
}

static guard_outcome_t apply_sku_put(guard_t *g, guard_op_t *op)
{
    guard_outcome_t out = engine_failed(engine_apply(&g->engine, &op->engine));
    if (out.result == GUARD_OK && out.engine.changed) {
        out.changed = true;
        notice_add(g, GUARD_NOTICE_SKU, out.engine.sku_index, op->engine.now_ms);
        offer_serve(g, out.engine.sku_index, op->engine.now_ms);
    }
    return out;
}

static guard_outcome_t apply_engine(guard_t *g, guard_op_t *op)
{
    switch (op->engine.kind) {
    case ENGINE_OP_SKU_PUT:
        return apply_sku_put(g, op);
    case ENGINE_OP_HOLD_CREATE: {
        bool swept; /* replay: a refused create that swept was journaled as the sweep */
        return apply_hold_create(g, op, NULL, &swept);
    }
    case ENGINE_OP_HOLD_COMMIT:
    case ENGINE_OP_HOLD_RELEASE:
        return apply_hold_finish(g, op);
    case ENGINE_OP_HOLD_EXTEND:
        return apply_hold_extend(g, op);
    }
    assert(0 && "unknown engine op");
    return (guard_outcome_t){.result = GUARD_NOT_FOUND};
}

static guard_outcome_t apply_policy_put(guard_t *g, const guard_op_t *op)
{
    policy_field_t bad;
    assert(policy_config_valid(&op->u.policy, &bad));
    g->policy = op->u.policy;
    g->policy_set = true;
    for (uint32_t i = 0; i < g->sku_policy_count; i++) {
        sku_policy_resolve(&g->policy, &g->sku_policies[i]);
    }
    return (guard_outcome_t){.result = GUARD_OK, .changed = true};
}

static guard_outcome_t apply_sku_policy(guard_t *g, const guard_op_t *op)
{
    uint32_t sku;
    policy_field_t bad;
    if (!engine_sku_find(&g->engine, op->u.sku_policy.sku, op->u.sku_policy.sku_len, &sku)) {
        return (guard_outcome_t){.result = GUARD_NOT_FOUND};
    }
    guard_sku_t *s = &g->skus[sku];
    if (s->policy == 0 && op->u.sku_policy.mask == 0) {
        return (guard_outcome_t){.result = GUARD_OK}; /* nothing to clear */
    }
    guard_result_t fits = sku_policy_fits(g, sku, op, &bad);
    if (fits != GUARD_OK) {
        return (guard_outcome_t){.result = fits};
    }
    if (s->policy == 0) {
        s->policy = ++g->sku_policy_count;
    }
    guard_sku_policy_t *sp = &g->sku_policies[s->policy - 1];
    sp->mask = op->u.sku_policy.mask;
    sp->values = op->u.sku_policy.values;
    sku_policy_resolve(&g->policy, sp);
    return (guard_outcome_t){.result = GUARD_OK, .changed = true};
}

/* Releases an active hold at now_ms, giving the reason; for the guard's own
 * ops (a revocation, a reclaim, a cancelled offer), which have checked
 * that the hold is active. */
static void release_active(guard_t *g, uint64_t hold_id, const char *reason, size_t reason_len,
                           int64_t now_ms)
{
    guard_op_t release = {.kind = GUARD_OP_ENGINE};
    release.engine = (engine_op_t){.kind = ENGINE_OP_HOLD_RELEASE, .now_ms = now_ms};
    release.engine.u.hold.hold_id = hold_id;
    assert(reason_len <= sizeof release.reason);
    memcpy(release.reason, reason, reason_len);
    release.reason_len = (uint8_t)reason_len;
    guard_outcome_t o = apply_hold_finish(g, &release);
    assert(o.result == GUARD_OK && o.changed);
}

/* Releases every active hold that names the identity, with the reason. */
static guard_outcome_t apply_revoke(guard_t *g, guard_op_t *op)
{
    uint32_t i = ident_find(g, op->u.revoke.kind, op->u.revoke.value, op->u.revoke.value_len);
    if (i == GUARD_NONE) {
        return (guard_outcome_t){.result = GUARD_NOT_FOUND};
    }
    guard_outcome_t out = {.result = GUARD_OK};
    uint32_t slots = engine_hold_slots_used(&g->engine);
    for (uint32_t slot = 0; slot < slots && g->ids[i].holds_active > 0; slot++) {
        if (g->holds[slot].ids[op->u.revoke.kind] != i + 1) {
            continue;
        }
        release_active(g, engine_slot_view(&g->engine, slot).id, op->reason, op->reason_len,
                       op->engine.now_ms);
        out.revoked++;
    }
    g->stats.revoked_holds += out.revoked;
    out.changed = out.revoked > 0;
    return out;
}

/* Releases the listed holds for the buyers waiting: each one's units go to
 * its skus' lines in the same step. A hold that is no longer active (the
 * journal never lists one) is passed over. */
static guard_outcome_t apply_reclaim(guard_t *g, const guard_op_t *op)
{
    static const char reason[] = "reclaimed for buyers waiting";
    guard_outcome_t out = {.result = GUARD_OK};
    assert(op->u.reclaim.count <= GUARD_RECLAIM_MAX);
    for (uint16_t i = 0; i < op->u.reclaim.count; i++) {
        engine_hold_view_t h;
        uint64_t id = op->u.reclaim.holds[i];
        if (engine_hold_view(&g->engine, id, &h) != ENGINE_OK || h.state != ENGINE_HOLD_ACTIVE) {
            continue;
        }
        release_active(g, id, reason, sizeof reason - 1, op->engine.now_ms);
        g->stats.reclaimed_holds++;
        g->stats.reclaimed_units += (uint64_t)book_units(&h);
        for (uint16_t l = 0; l < h.line_count; l++) {
            g->skus[h.lines[l].sku_index].reclaimed++;
        }
        out.revoked++;
    }
    out.changed = out.revoked > 0;
    return out;
}

/* Whether entry i was made by this very join request: the same sku,
 * customer, qty, ip and fingerprint. */
static bool wait_same_request(const guard_t *g, uint32_t i, uint32_t sku, const guard_op_t *op)
{
    const guard_wait_t *w = &g->waits[i];
    return w->sku == sku && w->qty == op->u.wait_join.qty &&
           w->customer_len == op->u.wait_join.customer_len &&
           memcmp(w->customer, op->u.wait_join.customer, w->customer_len) == 0 &&
           w->ip_len == op->u.wait_join.ip_len &&
           memcmp(w->ip, op->u.wait_join.ip, w->ip_len) == 0 &&
           w->fingerprint_len == op->u.wait_join.fingerprint_len &&
           memcmp(w->fingerprint, op->u.wait_join.fingerprint, w->fingerprint_len) == 0;
}

/* A join whose Idempotency-Key made an entry before: that entry as it is
 * now (the same request), or idempotency_mismatch. Changes nothing, so it
 * is never journaled; nothing else about the join is checked again. */
static guard_outcome_t wait_join_replay(const guard_t *g, uint32_t i, uint32_t sku,
                                        const guard_op_t *op)
{
    if (!wait_same_request(g, i, sku, op)) {
        return (guard_outcome_t){.result = GUARD_ENGINE,
                                 .engine = {.result = ENGINE_IDEMPOTENCY_MISMATCH}};
    }
    return (guard_outcome_t){.result = GUARD_OK, .id = g->waits[i].id, .replayed = true};
}

static guard_outcome_t apply_wait_join(guard_t *g, guard_op_t *op)
{
    uint32_t sku;
    if (!engine_sku_find(&g->engine, op->u.wait_join.sku, op->u.wait_join.sku_len, &sku)) {
        return (guard_outcome_t){.result = GUARD_ENGINE,
                                 .engine = {.result = ENGINE_SKU_NOT_FOUND}};
    }
    uint32_t made = op->u.wait_join.idem_key_len == 0
                        ? GUARD_NONE
                        : wait_find_key(g, op->u.wait_join.idem_key, op->u.wait_join.idem_key_len);
    if (made != GUARD_NONE) {
        return wait_join_replay(g, made, sku, op);
    }
    const policy_config_t *c = guard_sku_policy(g, sku, NULL);
    if (!c->waitlist_enabled) {
        return (guard_outcome_t){.result = GUARD_WAITLIST_OFF};
    }
    if (c->quantity_enabled && op->u.wait_join.qty > c->quantity_line_qty_max) {
        guard_outcome_t out = {.result = GUARD_DENIED};
        out.decision = (policy_decision_t){.verdict = POLICY_DENY,
                                           .rule = POLICY_RULE_LINE_QTY,
                                           .limit = c->quantity_line_qty_max,
                                           .current = op->u.wait_join.qty,
                                           .retry_after_ms = -1};
        sku_count_refusal(g, sku, &out.decision); /* refused: never journaled, as a hold's */
        return out;
    }

    engine_sku_view_t v;
    engine_sku_view(&g->engine, sku, &v);
    if (v.available >= op->u.wait_join.qty) {
        return (guard_outcome_t){.result = GUARD_WAIT_AVAILABLE};
    }
    guard_sku_t *s = &g->skus[sku];
    if (wait_has_customer(g, sku, op->u.wait_join.customer, op->u.wait_join.customer_len)) {
        return (guard_outcome_t){.result = GUARD_WAIT_DUPLICATE};
    }
    uint32_t i = s->wait_count < HF_WAITLIST_PER_SKU_MAX ? wait_alloc(g) : GUARD_NONE;
    if (i == GUARD_NONE) {
        return (guard_outcome_t){.result = GUARD_WAITLIST_FULL};
    }
    if (!wait_link(g, i, sku, op)) {
        return (guard_outcome_t){.result = GUARD_NOT_FOUND}; /* replay diverged: refused */
    }
    offer_serve(g, sku, op->engine.now_ms); /* units may be there already */
    return (guard_outcome_t){.result = GUARD_OK, .changed = true, .id = op->u.wait_join.id};
}

/* Cancelling an offer releases its hold, whose units go to the next. */
static guard_outcome_t apply_wait_cancel(guard_t *g, guard_op_t *op)
{
    uint32_t i = wait_find(g, op->u.wait_id);
    if (i == GUARD_NONE) {
        return (guard_outcome_t){.result = GUARD_NOT_FOUND};
    }
    guard_wait_t *w = &g->waits[i];
    if (w->state == GUARD_WAIT_WAITING) {
        wait_unlink(g, i);
        wait_finish(g, i, GUARD_WAIT_CANCELLED, op->engine.now_ms);
        offer_serve(g, w->sku, op->engine.now_ms); /* it may have held up the next */
    } else if (w->state == GUARD_WAIT_OFFERED) {
        static const char reason[] = "waitlist offer cancelled";
        release_active(g, w->hold_id, reason, sizeof reason - 1, op->engine.now_ms);
        w->state = GUARD_WAIT_CANCELLED; /* on_finish called it expired */
        g->stats.wait_expired--;
        g->stats.wait_cancelled++;
    } else {
        return (guard_outcome_t){.result = GUARD_WAIT_FINISHED};
    }
    return (guard_outcome_t){.result = GUARD_OK, .changed = true};
}

static guard_outcome_t apply_id_skip(guard_t *g, const guard_op_t *op)
{
    assert(op->u.id_skip.hold_seq <= ENGINE_HOLD_SEQ_MAX);
    assert(op->u.id_skip.wait_seq <= GUARD_WAIT_SEQ_MAX);
    bool moved = engine_raise_hold_seq(&g->engine, op->u.id_skip.hold_seq);
    if (op->u.id_skip.wait_seq > g->wait_seq) {
        g->wait_seq = op->u.id_skip.wait_seq;
        moved = true;
    }
    return (guard_outcome_t){.result = GUARD_OK, .changed = moved};
}

guard_outcome_t guard_apply(guard_t *g, guard_op_t *op)
{
    guard_advance(g, op->engine.now_ms);
    audit_before_t before;
    if (op->audit.present) {
        audit_before(g, op, &before);
    }
    guard_outcome_t out;
    switch (op->kind) {
    case GUARD_OP_ENGINE:
        out = apply_engine(g, op);
        break;
    case GUARD_OP_POLICY_PUT:
        out = apply_policy_put(g, op);
        break;
    case GUARD_OP_SKU_POLICY:
        out = apply_sku_policy(g, op);
        break;
    case GUARD_OP_REVOKE:
        out = apply_revoke(g, op);
        break;
    case GUARD_OP_WAIT_JOIN:
        out = apply_wait_join(g, op);
        break;
    case GUARD_OP_WAIT_CANCEL:
        out = apply_wait_cancel(g, op);
        break;
    case GUARD_OP_RECLAIM:
        out = apply_reclaim(g, op);
        break;
    case GUARD_OP_SWEEP:
        ident_sweep(g, op->engine.now_ms, g->id_hwm > g->cs_hwm ? g->id_hwm : g->cs_hwm, true);
        g->swept_at_ms = op->engine.now_ms;
        out = (guard_outcome_t){.result = GUARD_OK, .changed = true};
        break;
    case GUARD_OP_ID_SKIP:
        out = apply_id_skip(g, op);
        break;
    case GUARD_OP_SECRET:
        memcpy(g->secret, op->u.secret, GUARD_SECRET_BYTES);
        g->has_secret = true;
        out = (guard_outcome_t){.result = GUARD_OK, .changed = true};
        break;
    default:
        assert(0 && "unknown guard op");
        out = (guard_outcome_t){.result = GUARD_NOT_FOUND};
    }
    offer_serve_starved(g);
    assert(out.result == GUARD_OK || !out.changed);
    if (op->audit.present && out.changed) {
        audit_record(g, op, &before, &out);
    }
    return out;
}
