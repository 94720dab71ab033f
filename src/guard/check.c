/*
 * check.c - guard_check(): the invariants of guard.h, walked table by
 * table, on top of engine_check(). O(all): for tests and asserts.
 */
#include <stdlib.h>

#include "audit.h"
#include "book.h"
#include "identity.h"
#include "waitlist.h"

typedef struct {
    uint32_t *holds;
    int64_t *units;
    uint32_t *cs_units;
    int64_t *newcomer_held; /* by sku */
    uint32_t listed;        /* active holds on some reclaim list */
} check_sums_t;

static bool check_hold_side(const guard_t *g, uint32_t slot, check_sums_t *sum)
{
    const guard_hold_t *side = &g->holds[slot];
    engine_slot_view_t eh = engine_slot_view(&g->engine, slot);
    if (eh.state != ENGINE_HOLD_ACTIVE) {
        return side->ids[0] == 0 && side->ids[1] == 0 && side->ids[2] == 0 && side->wait == 0 &&
               side->charged == 0 && side->newcomer == 0 && side->prev == 0 && side->next == 0 &&
               side->safe_until_ms == 0 && side->created_ms == 0 && side->units == 0 &&
               side->buy_now == 0;
    }
    engine_hold_view_t h;
    if (engine_hold_view(&g->engine, eh.id, &h) != ENGINE_OK || side->created_ms != h.created_ms ||
        side->units != book_units(&h)) {
        return false;
    }
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        uint32_t i = side->ids[k];
        if (i != 0 && (i > g->id_hwm || !g->ids[i - 1].live || g->ids[i - 1].kind != k)) {
            return false;
        }
        if (i != 0) {
            sum->holds[i - 1]++;
            sum->units[i - 1] += book_units(&h);
        }
    }
    for (uint16_t l = 0; l < h.line_count; l++) {
        for (int k = 0; k < POLICY_ID_KINDS; k++) {
            if (side->ids[k] == 0) {
                continue;
            }
            uint32_t c = ident_cs_find(g, side->ids[k] - 1, h.lines[l].sku_index);
            if (c == GUARD_NONE) {
                return false;
            }
            sum->cs_units[c] += h.lines[l].qty;
        }
        sum->newcomer_held[h.lines[l].sku_index] += side->newcomer ? h.lines[l].qty : 0;
    }
    if (side->wait != 0) {
        const guard_wait_t *w = &g->waits[side->wait - 1];
        return side->wait <= g->wait_hwm && w->state == GUARD_WAIT_OFFERED && w->hold_id == eh.id;
    }
    return true;
}

/* Walks a reclaim list both ways: active holds that belong on it, in a
 * chain whose links agree. Returns how many, or UINT32_MAX if broken. */
static uint32_t check_list(const guard_t *g, uint32_t head, uint32_t tail, uint32_t sku)
{
    uint32_t n = 0, prev = 0;
    uint32_t slots = engine_hold_slots_used(&g->engine);
    for (uint32_t at = head; at != 0; prev = at, at = g->holds[at - 1].next) {
        if (at > slots || ++n > slots) {
            return UINT32_MAX;
        }
        engine_slot_view_t eh = engine_slot_view(&g->engine, at - 1);
        bool single = eh.line_count == 1;
        engine_hold_view_t h;
        if (g->holds[at - 1].prev != prev || eh.state != ENGINE_HOLD_ACTIVE ||
            engine_hold_view(&g->engine, eh.id, &h) != ENGINE_OK || single != (sku != GUARD_NONE) ||
            (single && h.lines[0].sku_index != sku)) {
            return UINT32_MAX;
        }
    }
    return prev == tail ? n : UINT32_MAX;
}

static bool check_lists(const guard_t *g, const check_sums_t *sum)
{
    uint64_t listed = check_list(g, g->multi_head, g->multi_tail, GUARD_NONE);
    for (uint32_t sku = 0; listed != UINT32_MAX && sku < engine_sku_count(&g->engine); sku++) {
        const guard_sku_t *s = &g->skus[sku];
        uint32_t n = check_list(g, s->holds_head, s->holds_tail, sku);
        if (n == UINT32_MAX || s->newcomer_held != sum->newcomer_held[sku]) {
            return false;
        }
        listed += n;
    }
    return listed == sum->listed;
}

static bool check_sums(const guard_t *g, const check_sums_t *sum)
{
    uint32_t live = 0, cs_live = 0;
    for (uint32_t i = 0; i < g->id_hwm; i++) {
        const guard_identity_t *id = &g->ids[i];
        live += id->live;
        if (id->live && (id->holds_active != sum->holds[i] || id->units_held != sum->units[i] ||
                         ident_find(g, (policy_id_kind_t)id->kind, id->value, id->len) != i)) {
            return false;
        }
    }
    for (uint32_t c = 0; c < g->cs_hwm; c++) {
        cs_live += g->cs[c].live;
        if (g->cs[c].live && (g->cs[c].customer >= g->id_hwm || !g->ids[g->cs[c].customer].live)) {
            return false;
        }
        if (g->cs[c].live && (g->cs[c].units_active != sum->cs_units[c] ||
                              ident_cs_find(g, g->cs[c].customer, g->cs[c].sku) != c)) {
            return false;
        }
    }
    return live == g->stats.identities && cs_live == g->stats.customer_skus;
}

static bool check_waitlists(const guard_t *g)
{
    uint32_t waiting = 0;
    for (uint32_t sku = 0; sku < engine_sku_count(&g->engine); sku++) {
        const guard_sku_t *s = &g->skus[sku];
        uint32_t n = 0, last = 0;
        if (s->policy > g->sku_policy_count) {
            return false;
        }
        for (uint32_t at = s->wait_head; at != 0; at = g->waits[at - 1].next) {
            if (at > g->wait_hwm || g->waits[at - 1].state != GUARD_WAIT_WAITING ||
                g->waits[at - 1].sku != sku || ++n > s->wait_count) {
                return false;
            }
            last = at;
        }
        if (n != s->wait_count || last != s->wait_tail) {
            return false;
        }
        int64_t units = 0;
        for (uint32_t at = s->wait_head; at != 0; at = g->waits[at - 1].next) {
            units += g->waits[at - 1].qty;
        }
        if (units != s->wait_units) {
            return false;
        }
        engine_sku_view_t v;
        engine_sku_view(&g->engine, sku, &v);
        bool holds_full =
            engine_stats(&g->engine).holds_active >= engine_config(&g->engine).holds_max;
        uint32_t first = wait_first_servable(g, sku, v.stock - v.sold);
        if (first != GUARD_NONE && v.available >= g->waits[first].qty && !holds_full) {
            return false; /* units the first servable entry could have been offered */
        }
        waiting += n;
    }
    return waiting == g->stats.waiting;
}

/* Each join's Idempotency-Key finds its own entry, and only it. */
static bool check_wait_keys(const guard_t *g)
{
    for (uint32_t i = 0; i < g->wait_hwm; i++) {
        const guard_wait_t *w = &g->waits[i];
        if (w->key_len > HF_IDEM_KEY_BYTES_MAX ||
            (w->key_len > 0 && wait_find_key(g, w->key, w->key_len) != i)) {
            return false;
        }
    }
    return true;
}

bool guard_check(const guard_t *g)
{
    if (!engine_check(&g->engine)) {
        return false;
    }
    check_sums_t sum = {calloc(g->id_hwm + 1, sizeof(uint32_t)),
                        calloc(g->id_hwm + 1, sizeof(int64_t)),
                        calloc(g->cs_hwm + 1, sizeof(uint32_t)),
                        calloc(engine_sku_count(&g->engine) + 1, sizeof(int64_t)), 0};
    bool ok =
        sum.holds != NULL && sum.units != NULL && sum.cs_units != NULL && sum.newcomer_held != NULL;
    for (uint32_t slot = 0; ok && slot < engine_hold_slots_used(&g->engine); slot++) {
        ok = check_hold_side(g, slot, &sum);
        sum.listed += engine_slot_view(&g->engine, slot).state == ENGINE_HOLD_ACTIVE;
    }
    ok = ok && check_sums(g, &sum) && check_waitlists(g) && check_wait_keys(g) &&
         check_lists(g, &sum) && audit_check(g);
    free(sum.holds);
    free(sum.units);
    free(sum.cs_units);
    free(sum.newcomer_held);
    return ok;
}
