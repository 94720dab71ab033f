/*
 * offer.c - waitlist offers (offer.h).
 */
#include "offer.h"

#include <assert.h>
#include <string.h>

#include "book.h"
#include "identity.h"
#include "sku.h"
#include "waitlist.h"

/* The identities a waitlist entry names, as a hold request would. */
static void wait_names(const guard_t *g, const guard_wait_t *w, ident_names_t *n)
{
    engine_hold_create_t c; /* only the names are read */
    memcpy(c.customer, w->customer, w->customer_len);
    c.customer_len = w->customer_len;
    memcpy(c.ip, w->ip, w->ip_len);
    c.ip_len = w->ip_len;
    memcpy(c.fingerprint, w->fingerprint, w->fingerprint_len);
    c.fingerprint_len = w->fingerprint_len;
    ident_names_find(g, &c, n);
    n->value[POLICY_ID_CUSTOMER] = w->customer; /* c goes out of scope */
    n->value[POLICY_ID_FINGERPRINT] = w->fingerprint;
}

/* Whether an entry's identities may take an offer of its qty now: the caps
 * and budgets a hold would meet. A refused entry's turn is over. */
static bool offer_allowed(const guard_t *g, const guard_wait_t *w, ident_names_t *n, int64_t ttl_ms,
                          int64_t at_ms)
{
    policy_identity_t ids[POLICY_ID_KINDS];
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        ids[k] = ident_policy_view(g, (policy_id_kind_t)k, n->len[k] > 0, n->ids[k], at_ms);
    }
    double shop_started = policy_decay(&g->policy, g->shop_started, g->shop_at_ms, at_ms);
    double shop_committed = policy_decay(&g->policy, g->shop_committed, g->shop_at_ms, at_ms);
    double risk = policy_identities_risk(&g->policy, ids, shop_started, shop_committed);
    policy_decision_t d = policy_decide_offer(&g->policy, ids, w->qty, ttl_ms, risk);
    return d.verdict == POLICY_ALLOW;
}

/* An offer is a hold of the entry's identities: counted against them (so
 * caps, reputation and revocation see it) and charged to their budgets,
 * when the tables have room; full tables still let the offer go, uncounted. */
static void offer_start(guard_t *g, uint64_t hold_id, uint32_t entry, ident_names_t *n,
                        int64_t at_ms)
{
    guard_hold_t side = {.wait = entry + 1, .newcomer = ident_names_newcomer(g, n)};
    bool room =
        ident_room(g, ident_names_new(n)) && g->stats.customer_skus < g->config.customer_skus_max;
    if (room) {
        ident_names_add(g, n, at_ms);
        for (int k = 0; k < POLICY_ID_KINDS; k++) {
            side.ids[k] = n->ids[k] == GUARD_NONE ? 0 : n->ids[k] + 1;
        }
    }
    engine_hold_view_t h;
    engine_result_t r = engine_hold_view(&g->engine, hold_id, &h);
    assert(r == ENGINE_OK);
    double cost_unit_ms = room && g->policy.budget_enabled
                              ? (double)book_units(&h) * (double)(h.expires_ms - at_ms)
                              : 0.0;
    book_start(g, &h, &side, cost_unit_ms, at_ms, NULL);
}

/* Offers freed units to the first servable entry of a sku's waitlist, as an
 * active hold made at at_ms, for as long as the available units cover it:
 * first come, first served among those the stock can serve. */
void offer_serve(guard_t *g, uint32_t sku, int64_t at_ms)
{
    guard_sku_t *s = &g->skus[sku];
    for (;;) {
        engine_sku_view_t v;
        engine_sku_view(&g->engine, sku, &v);
        if (s->wait_head == 0 || v.available <= 0) {
            return; /* nothing to offer: no need to look down the line */
        }
        uint32_t i = wait_first_servable(g, sku, v.stock - v.sold);
        if (i == GUARD_NONE || v.available < g->waits[i].qty) {
            return;
        }
        guard_wait_t *w = &g->waits[i];
        int64_t ttl_ms = guard_sku_policy(g, sku, NULL)->waitlist_offer_ttl_ms;
        ident_names_t n;
        wait_names(g, w, &n);
        if (!offer_allowed(g, w, &n, ttl_ms, at_ms)) {
            wait_unlink(g, i); /* over its caps or budget: the next one's turn */
            wait_finish(g, i, GUARD_WAIT_EXPIRED, at_ms);
            g->stats.wait_refused++;
            continue;
        }
        engine_op_t op = {.kind = ENGINE_OP_HOLD_CREATE, .now_ms = at_ms};
        engine_hold_create_t *c = &op.u.hold_create;
        memcpy(c->customer, w->customer, w->customer_len);
        c->customer_len = w->customer_len;
        c->ttl_ms = ttl_ms;
        c->line_count = 1;
        memcpy(c->lines[0].sku, v.sku, v.sku_len);
        c->lines[0].sku_len = v.sku_len;
        c->lines[0].qty = w->qty;
        engine_outcome_t o = engine_apply(&g->engine, &op);
        if (o.result != ENGINE_OK) {
            g->offers_starved = true; /* the hold table is full: served when it is not */
            return;
        }
        wait_unlink(g, i);
        w->state = GUARD_WAIT_OFFERED;
        w->hold_id = o.hold_id;
        offer_start(g, o.hold_id, i, &n, at_ms);
        g->stats.wait_offered++;
        guard_offer_t *log = &g->offer_log[g->offer_seq % GUARD_OFFER_LOG_MAX];
        *log = (guard_offer_t){.seq = ++g->offer_seq, .wait_id = w->id, .hold_id = o.hold_id};
    }
}

/* Every sku with a line is served, in sku order (rare: an overload). */
void offer_serve_starved(guard_t *g)
{
    if (!g->offers_starved ||
        engine_stats(&g->engine).holds_active >= engine_config(&g->engine).holds_max) {
        return;
    }
    g->offers_starved = false;
    for (uint32_t sku = 0; sku < engine_sku_count(&g->engine); sku++) {
        if (g->skus[sku].wait_head != 0) {
            offer_serve(g, sku, engine_now_ms(&g->engine));
        }
    }
}
