/*
 * reclaim.c - guard_reclaim(): the live decision to take back carts for
 * buyers who wait (guard.h). Like decide.c it is never replayed: the op it
 * writes lists the holds, and guard_apply() releases them.
 *
 * Candidates on a sku are its active single-line holds and the multi-line
 * holds with a line on it, older than both the time their reply promised
 * and the time the sku's buyers now take to pay; waitlist offers are not
 * (they serve the waiting). They are taken most suspicious first: holds
 * of identities that never bought, then the largest, then the oldest, until
 * they cover what the waiting need beyond the units available: the units
 * its line waits for (entries waiting for more than is left to sell too:
 * what is freed then goes to the next entry, or to open sale), and those
 * buyers were just refused.
 */
#include <assert.h>
#include <math.h>
#include <stdlib.h>

#include "apply.h"
#include "book.h"
#include "sku.h"
#include "waitlist.h"

/* Wants this old are forgotten (about ten half-lives). */
#define RECLAIM_WANT_FORGET_MS (10 * SKU_WANT_HALF_LIFE_MS)

/* Most suspicious first; a total order, so the pick is the same whatever
 * order the lists are in. */
static int by_suspicion(const void *pa, const void *pb)
{
    const guard_candidate_t *a = pa, *b = pb;
    if (a->newcomer != b->newcomer) {
        return a->newcomer ? -1 : 1;
    }
    if (a->units != b->units) {
        return a->units > b->units ? -1 : 1;
    }
    if (a->created_ms != b->created_ms) {
        return a->created_ms < b->created_ms ? -1 : 1;
    }
    return a->id < b->id ? -1 : a->id > b->id;
}

/* Units the waiting want of a sku beyond what is available to them: its
 * line's, and buyers just refused for want of units. */
static int64_t sku_need(const guard_t *g, uint32_t sku, int64_t now_ms)
{
    engine_sku_view_t v;
    engine_sku_view(&g->engine, sku, &v);
    int64_t waiting = g->skus[sku].wait_units;
    if (now_ms < g->want_at_ms + RECLAIM_WANT_FORGET_MS) {
        waiting += llround(sku_want_units(g, sku, now_ms));
    }
    return waiting - v.available;
}

/* Whether the hold in slot has a line on sku (multi-line holds only). */
static bool has_line(const guard_t *g, uint32_t slot, uint32_t sku)
{
    engine_hold_view_t h;
    engine_result_t r = engine_hold_view(&g->engine, engine_slot_view(&g->engine, slot).id, &h);
    assert(r == ENGINE_OK && h.state == ENGINE_HOLD_ACTIVE);
    for (uint16_t i = 0; i < h.line_count; i++) {
        if (h.lines[i].sku_index == sku) {
            return true;
        }
    }
    return false;
}

/* Adds the holds of a reclaim list that may be taken for sku now to the
 * candidates. A list is in the order holds were made, so the walk stops at
 * the first that is younger than the sku's safe time; holds that were made
 * with reclaim off (safe_until 0) are passed over. */
static uint32_t gather(const guard_t *g, uint32_t head, uint32_t sku, int64_t safe_ms,
                       int64_t now_ms, bool multi, guard_candidate_t *out, uint32_t n)
{
    for (uint32_t at = head; at != 0 && n < GUARD_RECLAIM_CANDIDATES_MAX;
         at = g->holds[at - 1].next) {
        const guard_hold_t *side = &g->holds[at - 1];
        if (side->safe_until_ms == 0 || side->wait != 0) {
            continue; /* never reclaimed; an offer serves the waiting */
        }
        if (now_ms < side->created_ms + safe_ms) {
            break;
        }
        if (now_ms >= side->safe_until_ms && (!multi || has_line(g, at - 1, sku))) {
            out[n++] = (guard_candidate_t){.id = engine_slot_view(&g->engine, at - 1).id,
                                           .created_ms = side->created_ms,
                                           .units = side->units,
                                           .newcomer = side->newcomer};
        }
    }
    return n;
}

/* Adds to op the holds to take back on one sku for `need` units. */
static void pick(const guard_t *g, uint32_t sku, int64_t need, int64_t now_ms, guard_op_t *op,
                 guard_candidate_t *c)
{
    int64_t safe_ms = sku_safe_ms(g, sku);
    if (safe_ms == 0) {
        return; /* reclaim is off for this sku */
    }
    uint32_t n = gather(g, g->skus[sku].holds_head, sku, safe_ms, now_ms, false, c, 0);
    n = gather(g, g->multi_head, sku, safe_ms, now_ms, true, c, n);
    qsort(c, n, sizeof *c, by_suspicion);
    for (uint32_t i = 0; i < n && need > 0 && op->u.reclaim.count < GUARD_RECLAIM_MAX; i++) {
        bool listed = false; /* a multi-line hold may be picked for two skus */
        for (uint16_t k = 0; k < op->u.reclaim.count; k++) {
            listed = listed || op->u.reclaim.holds[k] == c[i].id;
        }
        if (!listed) {
            op->u.reclaim.holds[op->u.reclaim.count++] = c[i].id;
            need -= c[i].units;
        }
    }
}

/* Whether anyone may be waiting anywhere: most of the time nobody is. */
static bool anyone_waits(const guard_t *g, int64_t now_ms)
{
    return g->stats.waiting > 0 || now_ms < g->want_at_ms + RECLAIM_WANT_FORGET_MS;
}

guard_outcome_t guard_reclaim(guard_t *g, int64_t now_ms, guard_op_t *op)
{
    guard_advance(g, now_ms);
    *op = (guard_op_t){.kind = GUARD_OP_RECLAIM};
    op->engine.now_ms = now_ms;
    guard_outcome_t out = {.result = GUARD_OK};
    if (now_ms < g->reclaim_at_ms + GUARD_RECLAIM_EVERY_MS || !anyone_waits(g, now_ms)) {
        return out;
    }
    g->reclaim_at_ms = now_ms;
    uint32_t skus = engine_sku_count(&g->engine);
    for (uint32_t sku = 0; sku < skus && op->u.reclaim.count < GUARD_RECLAIM_MAX; sku++) {
        int64_t need =
            g->skus[sku].wait_units > 0 || g->want[sku].units > 0.0 ? sku_need(g, sku, now_ms) : 0;
        if (need > 0) {
            pick(g, sku, need, now_ms, op, g->candidates);
        }
    }
    return op->u.reclaim.count > 0 ? guard_apply(g, op) : out;
}
