/*
 * book.c - a hold's bookkeeping as it starts and finishes (book.h).
 */
#include "book.h"

#include <assert.h>

#include "identity.h"
#include "sku.h"
#include "waitlist.h"

int64_t book_units(const engine_hold_view_t *h)
{
    int64_t units = 0;
    for (uint16_t i = 0; i < h->line_count; i++) {
        units += h->lines[i].qty;
    }
    return units;
}

void book_start(guard_t *g, const engine_hold_view_t *h, const guard_hold_t *side,
                double cost_unit_ms, int64_t now_ms, const uint32_t *cs_known)
{
    int64_t units = book_units(h);
    g->holds[engine_hold_slot(h->id)] = *side;
    g->holds[engine_hold_slot(h->id)].charged = cost_unit_ms > 0.0;
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        if (side->ids[k] != 0) {
            guard_identity_t *id = &g->ids[side->ids[k] - 1];
            ident_bring(g, id, now_ms);
            id->holds_active++;
            id->units_held += units;
            id->budget_unit_ms -= cost_unit_ms;
            id->started += 1.0;
            id->holds_total++;
        }
    }
    sku_shop_bring(g, now_ms);
    g->shop_started += 1.0;
    for (uint16_t i = 0; i < h->line_count; i++) {
        uint32_t sku = h->lines[i].sku_index;
        if (side->ids[POLICY_ID_CUSTOMER] != 0) {
            bool known = cs_known != NULL && cs_known[i] != GUARD_NONE;
            uint32_t c =
                known ? cs_known[i] : ident_cs_get(g, side->ids[POLICY_ID_CUSTOMER] - 1, sku);
            assert(g->cs[c].live && g->cs[c].sku == sku);
            g->cs[c].units_active += h->lines[i].qty;
        }
        guard_sku_t *s = &g->skus[sku];
        sku_bring(s, guard_sku_policy(g, sku, NULL), now_ms);
        s->started += 1.0;
    }
}

/* Returns a finished hold's units to its identities: a sale improves their
 * reputation, and time not used is given back to their budgets. */
static void on_finish_identities(guard_t *g, const engine_hold_view_t *h, const guard_hold_t *side,
                                 int64_t at_ms)
{
    int64_t units = book_units(h);
    bool committed = h->state == ENGINE_HOLD_COMMITTED_STATE;
    /* Time not used is given back, to a hold that was charged for it. */
    bool early = side->charged && h->state != ENGINE_HOLD_EXPIRED_STATE && h->expires_ms > at_ms;
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        if (side->ids[k] == 0) {
            continue;
        }
        guard_identity_t *id = &g->ids[side->ids[k] - 1];
        ident_bring(g, id, at_ms);
        assert(id->holds_active > 0 && id->units_held >= units);
        id->holds_active--;
        id->units_held -= units;
        id->committed += committed ? 1.0 : 0.0;
        id->commits_total += committed;
        if (early) {
            double capacity = policy_budget_capacity_unit_ms(&g->policy, id->kind);
            id->budget_unit_ms += (double)units * (double)(h->expires_ms - at_ms);
            id->budget_unit_ms = id->budget_unit_ms > capacity ? capacity : id->budget_unit_ms;
        }
    }
}

static void on_finish_lines(guard_t *g, const engine_hold_view_t *h, const guard_hold_t *side,
                            int64_t at_ms)
{
    bool committed = h->state == ENGINE_HOLD_COMMITTED_STATE;
    for (uint16_t i = 0; i < h->line_count; i++) {
        uint32_t sku = h->lines[i].sku_index;
        if (side->ids[POLICY_ID_CUSTOMER] != 0) {
            uint32_t c = ident_cs_find(g, side->ids[POLICY_ID_CUSTOMER] - 1, sku);
            assert(c != GUARD_NONE && g->cs[c].units_active >= h->lines[i].qty);
            guard_customer_sku_t *e = &g->cs[c];
            e->units_active -= h->lines[i].qty;
            if (committed) {
                if (ident_cs_bought(g, e, at_ms) == 0) {
                    e->bought = 0;
                    e->window_start_ms = at_ms;
                }
                e->bought += h->lines[i].qty;
            }
        }
        guard_sku_t *s = &g->skus[sku];
        sku_bring(s, guard_sku_policy(g, sku, NULL), at_ms);
        s->committed += committed ? 1.0 : 0.0;
    }
}

void book_finish(guard_t *g, const engine_hold_view_t *h, int64_t at_ms)
{
    uint32_t slot = engine_hold_slot(h->id);
    guard_hold_t side = g->holds[slot];
    bool committed = h->state == ENGINE_HOLD_COMMITTED_STATE;
    on_finish_identities(g, h, &side, at_ms);
    on_finish_lines(g, h, &side, at_ms);
    sku_shop_bring(g, at_ms);
    g->shop_committed += committed ? 1.0 : 0.0;
    if (side.wait != 0) {
        guard_wait_t *w = &g->waits[side.wait - 1];
        assert(w->state == GUARD_WAIT_OFFERED && w->hold_id == h->id);
        wait_finish(g, side.wait - 1, committed ? GUARD_WAIT_FULFILLED : GUARD_WAIT_EXPIRED, at_ms);
    }
    g->holds[slot] = (guard_hold_t){0};
}
