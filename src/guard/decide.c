/*
 * decide.c - the live paths: a hold or an extension decided with policy.h
 * on the counters as they are, then applied (guard.h). Nothing here is
 * replayed: the op it writes records what was decided.
 */
#include <assert.h>
#include <string.h>

#include "apply.h"
#include "book.h"
#include "index.h"
#include "offer.h"
#include "proof.h"
#include "sku.h"

uint64_t guard_request_hash(const guard_hold_request_t *req)
{
    const engine_hold_create_t *c = &req->create;
    uint64_t h = 0x6a09e667f3bcc908ull;
    h = index_hash_bytes(h ^ c->customer_len, c->customer, c->customer_len);
    h = index_hash_bytes(h ^ c->ip_len, c->ip, c->ip_len);
    h = index_hash_bytes(h ^ c->fingerprint_len, c->fingerprint, c->fingerprint_len);
    h = index_hash_bytes(h ^ (uint64_t)c->ttl_ms, &c->line_count, sizeof c->line_count);
    for (uint16_t i = 0; i < c->line_count; i++) {
        h = index_hash_bytes(h ^ c->lines[i].qty, c->lines[i].sku, c->lines[i].sku_len);
    }
    h = index_hash_bytes(h ^ (uint64_t)req->buy_now, req->order_ref, req->order_ref_len);
    return h == 0 ? 1 : h; /* 0 tells the engine to hash on its own */
}

/* An identity's units on the sku as its caps count them: held now plus
 * bought in the window, and how long until those bought are forgotten. */
static void line_units(const guard_t *g, uint32_t c, int64_t now_ms, policy_line_t *out, int k)
{
    if (c == GUARD_NONE) {
        return;
    }
    const guard_customer_sku_t *e = &g->cs[c];
    int64_t bought = ident_cs_bought(g, e, now_ms);
    out->id_units[k] = e->units_active + bought;
    out->id_window_left_ms[k] =
        bought > 0 ? e->window_start_ms + g->policy.quantity_customer_sku_window_ms - now_ms : 0;
}

/* Fills line i of the policy's input and n's units entries for it; false
 * if the sku is unknown. */
static bool line_input(const guard_t *g, const engine_line_t *l, ident_names_t *n, uint16_t i,
                       int64_t now_ms, policy_line_t *out)
{
    uint32_t sku;
    if (!engine_sku_find(&g->engine, l->sku, l->sku_len, &sku)) {
        return false;
    }
    engine_sku_view_t v;
    engine_sku_view(&g->engine, sku, &v);
    *out = (policy_line_t){.config = guard_sku_policy(g, sku, NULL),
                           .escalated = sku_escalated_now(g, sku, now_ms),
                           .stock = v.stock,
                           .held = v.held,
                           .available = v.available,
                           .qty = l->qty,
                           .newcomer_held = g->skus[sku].newcomer_held,
                           .pay_ms = sku_pay_ms(g, sku)};
    n->sku[i] = sku;
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        n->cs[k][i] = n->ids[k] == GUARD_NONE ? GUARD_NONE : ident_cs_find(g, n->ids[k], sku);
        line_units(g, n->cs[k][i], now_ms, out, k);
    }
    return true;
}

/* The price a proof sent with the request pays: what it was issued at, if
 * it is good (not expired, not spent); 0 otherwise. */
static uint32_t proof_bits(const guard_t *g, const guard_hold_request_t *req, int64_t now_ms)
{
    bool good =
        req->proof_tag != 0 && req->proof_expires_ms > now_ms && !proof_used(g, req->proof_tag);
    return good ? req->proof_bits : 0;
}

/* An Idempotency-Key seen before answers as the first time, undecided. */
static bool idem_replay(const guard_t *g, const guard_hold_request_t *req, uint64_t hash,
                        guard_outcome_t *out)
{
    const engine_hold_create_t *c = &req->create;
    uint64_t seen_hash, hold_id;
    if (c->idem_key_len == 0 ||
        !engine_idem_lookup(&g->engine, c->idem_key, c->idem_key_len, &seen_hash, &hold_id)) {
        return false;
    }
    bool same = seen_hash == hash;
    *out = (guard_outcome_t){.result = same ? GUARD_OK : GUARD_ENGINE};
    out->engine = (engine_outcome_t){.result = same ? ENGINE_OK : ENGINE_IDEMPOTENCY_MISMATCH,
                                     .replayed = same,
                                     .hold_id = hold_id};
    return true;
}

/* The policy's input for req: n is filled on the way, for the apply. */
static policy_decision_t decide(guard_t *g, const guard_hold_request_t *req, int64_t now_ms,
                                ident_names_t *n, policy_hold_input_t *in, uint16_t *unknown_line)
{
    const engine_hold_create_t *c = &req->create;
    ident_names_find(g, c, n);
    /* Field by field: the struct has room for 64 lines, a request has few. */
    in->global = &g->policy;
    in->now_ms = now_ms;
    in->ttl_ms_requested = c->ttl_ms;
    in->buy_now = req->buy_now;
    in->shop_started = policy_decay(&g->policy, g->shop_started, g->shop_at_ms, now_ms);
    in->shop_committed = policy_decay(&g->policy, g->shop_committed, g->shop_at_ms, now_ms);
    in->line_count = c->line_count;
    in->proof_bits = proof_bits(g, req, now_ms);
    in->newcomer = ident_names_newcomer(g, n);
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        in->ids[k] = ident_policy_view(g, (policy_id_kind_t)k, n->len[k] > 0, n->ids[k], now_ms);
    }
    n->cs_known = true;
    for (uint16_t i = 0; i < c->line_count; i++) {
        if (!line_input(g, &c->lines[i], n, i, now_ms, &in->lines[i])) {
            *unknown_line = i;
            return (policy_decision_t){.verdict = POLICY_DENY, .rule = POLICY_RULE_NONE};
        }
    }
    return policy_decide_hold(in);
}

/* The op a decision to allow req makes: only the lines it has are copied
 * (a hold create has room for 64). */
static void hold_op_fill(guard_op_t *op, const guard_hold_request_t *req, int64_t now_ms,
                         const policy_decision_t *d, const policy_hold_input_t *in,
                         const ident_names_t *n, uint64_t hash)
{
    op->kind = GUARD_OP_ENGINE;
    op->buy_now = req->buy_now;
    op->order_ref_len = req->order_ref_len;
    memcpy(op->order_ref, req->order_ref, req->order_ref_len);
    op->reason_len = 0;
    op->audit.present = false; /* a buyer's hold: never an operator's change */
    op->proof_tag = d->bits > 0 && in->proof_bits > 0 ? req->proof_tag : 0;
    op->proof_expires_ms = op->proof_tag != 0 ? req->proof_expires_ms : 0;
    op->newcomer = in->newcomer;
    op->engine.kind = ENGINE_OP_HOLD_CREATE;
    op->engine.now_ms = now_ms;
    engine_hold_create_t *c = &op->engine.u.hold_create;
    memcpy(c, &req->create,
           offsetof(engine_hold_create_t, lines) + req->create.line_count * sizeof(engine_line_t));
    c->ttl_ms = d->ttl_ms;
    c->request_hash = hash;
    /* Deciding found every line's sku and no kept key like this one. */
    assert(n->cs_known);
    c->looked_up = true;
    memcpy(c->sku_index, n->sku, c->line_count * sizeof c->sku_index[0]);
}

/* The units a request asks of a sku. */
static uint32_t line_qty(const guard_t *g, const guard_hold_request_t *req, uint32_t sku)
{
    for (uint16_t i = 0; i < req->create.line_count; i++) {
        const engine_line_t *l = &req->create.lines[i];
        uint32_t at;
        if (engine_sku_find(&g->engine, l->sku, l->sku_len, &at) && at == sku) {
            return l->qty;
        }
    }
    assert(0 && "the engine's short sku is one of the request's");
    return 0;
}

/* A refusal counts against the sku of the line its rule is about (the
 * first line for the rules about identities). */
static void count_refusal(guard_t *g, const guard_hold_request_t *req, const policy_decision_t *d)
{
    uint32_t sku;
    const engine_line_t *l = &req->create.lines[d->line_index];
    bool found = engine_sku_find(&g->engine, l->sku, l->sku_len, &sku);
    sku_count_refusal(g, found ? sku : GUARD_NONE, d);
}

guard_outcome_t guard_hold(guard_t *g, const guard_hold_request_t *req, int64_t now_ms,
                           guard_op_t *op)
{
    guard_advance(g, now_ms);
    /* The caller may have hashed it already (to check a proof). */
    uint64_t hash = req->create.request_hash != 0 ? req->create.request_hash
                                                  : guard_request_hash(req);
    guard_outcome_t out;
    if (idem_replay(g, req, hash, &out)) {
        if (out.engine.replayed) {
            engine_count_idem_replay(&g->engine);
        }
        return out;
    }
    policy_hold_input_t in;
    ident_names_t names;
    uint16_t unknown = UINT16_MAX;
    policy_decision_t d = decide(g, req, now_ms, &names, &in, &unknown);
    if (unknown != UINT16_MAX) {
        return (guard_outcome_t){.result = GUARD_ENGINE,
                                 .engine = {.result = ENGINE_SKU_NOT_FOUND, .sku_index = unknown}};
    }
    g->stats.proofs_refused += req->proof_tag != 0 && in.proof_bits == 0;
    g->stats.proofs_stale += in.proof_bits > 0 && d.verdict == POLICY_CHALLENGE;
    if (d.verdict != POLICY_ALLOW) {
        count_refusal(g, req, &d);
        return (guard_outcome_t){
            .result = d.verdict == POLICY_DENY ? GUARD_DENIED : GUARD_CHALLENGED, .decision = d};
    }
    hold_op_fill(op, req, now_ms, &d, &in, &names, hash);
    /* Applied as guard_apply would (time is already advanced), with what
     * deciding found: the same state, without finding it all again. */
    bool swept = false;
    out = apply_hold_create(g, op, &names, &swept);
    offer_serve_starved(g);
    out.decision = d;
    if (out.result == GUARD_ENGINE && out.engine.result == ENGINE_INSUFFICIENT_STOCK) {
        /* People want what is gone: reclaim may take back stale carts. */
        sku_want_add(g, out.engine.sku_index, line_qty(g, req, out.engine.sku_index), now_ms);
    }
    if (swept && !out.changed) {
        /* Refused, but the whole-table sweep on the way changed state: the
         * op to journal is that sweep, which replays alike. */
        *op = (guard_op_t){.kind = GUARD_OP_SWEEP};
        op->engine.now_ms = now_ms;
        out.changed = true;
    }
    return out;
}

/* The most an extension may add now: the hold's whole life within
 * life_max_ms, and no more than each sku's scarcity TTL. */
static int64_t extend_ttl_ms(const guard_t *g, const engine_hold_view_t *h, int64_t ttl_ms,
                             int64_t now_ms)
{
    for (uint16_t i = 0; i < h->line_count; i++) {
        uint32_t sku = h->lines[i].sku_index;
        engine_sku_view_t v;
        engine_sku_view(&g->engine, sku, &v);
        int64_t line_ms = policy_extend_ttl_ms(guard_sku_policy(g, sku, NULL), ttl_ms,
                                               h->created_ms, now_ms, v.stock, v.available);
        ttl_ms = line_ms < ttl_ms ? line_ms : ttl_ms;
    }
    return ttl_ms;
}

guard_outcome_t guard_extend(guard_t *g, uint64_t hold_id, int64_t ttl_ms, int64_t now_ms,
                             guard_op_t *op)
{
    guard_advance(g, now_ms);
    *op = (guard_op_t){.kind = GUARD_OP_ENGINE};
    op->engine = (engine_op_t){.kind = ENGINE_OP_HOLD_EXTEND, .now_ms = now_ms};
    op->engine.u.hold.hold_id = hold_id;
    op->engine.u.hold.ttl_ms = ttl_ms;
    engine_hold_view_t h;
    if (engine_hold_view(&g->engine, hold_id, &h) != ENGINE_OK || h.state != ENGINE_HOLD_ACTIVE) {
        return guard_apply(g, op); /* the engine says why not */
    }
    int64_t granted_ms = extend_ttl_ms(g, &h, ttl_ms, now_ms);
    guard_outcome_t out = {.result = GUARD_OK, .engine = {.hold_id = hold_id}};
    out.decision =
        (policy_decision_t){.verdict = POLICY_ALLOW, .ttl_ms = granted_ms, .retry_after_ms = -1};
    if (now_ms + granted_ms <= h.expires_ms) {
        return out; /* capped to nothing more: the hold as it is */
    }
    const guard_hold_t *side = &g->holds[engine_hold_slot(hold_id)];
    policy_identity_t ids[POLICY_ID_KINDS];
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        ids[k] = ident_policy_view(g, (policy_id_kind_t)k, side->ids[k] != 0,
                                   side->ids[k] == 0 ? GUARD_NONE : side->ids[k] - 1, now_ms);
    }
    double cost_unit_ms = (double)book_units(&h) * (double)(now_ms + granted_ms - h.expires_ms);
    out.decision = policy_decide_extend(&g->policy, ids, cost_unit_ms);
    if (out.decision.verdict != POLICY_ALLOW) {
        sku_count_refusal(g, GUARD_NONE, &out.decision);
        out.result = GUARD_DENIED;
        return out;
    }
    op->engine.u.hold.ttl_ms = granted_ms;
    out = guard_apply(g, op);
    out.decision.ttl_ms = granted_ms;
    return out;
}
