/*
 * book.c - a hold's bookkeeping as it starts and finishes (book.h).
 */
#include "book.h"

#include <assert.h>

#include "notice.h"
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

/* A hold's reclaim list: its sku's when it has one line, else the shared
 * list of multi-line holds. */
static void list_of(guard_t *g, const engine_hold_view_t *h, uint32_t **head, uint32_t **tail)
{
    if (h->line_count == 1) {
        guard_sku_t *s = &g->skus[h->lines[0].sku_index];
        *head = &s->holds_head;
        *tail = &s->holds_tail;
    } else {
        *head = &g->multi_head;
        *tail = &g->multi_tail;
    }
}

void book_list_link(guard_t *g, const engine_hold_view_t *h, uint32_t slot)
{
    uint32_t *head, *tail;
    list_of(g, h, &head, &tail);
    guard_hold_t *side = &g->holds[slot];
    side->prev = *tail;
    side->next = 0;
    if (*tail == 0) {
        *head = slot + 1;
    } else {
        g->holds[*tail - 1].next = slot + 1;
    }
    *tail = slot + 1;
}

static void list_unlink(guard_t *g, const engine_hold_view_t *h, uint32_t slot)
{
    uint32_t *head, *tail;
    list_of(g, h, &head, &tail);
    const guard_hold_t *side = &g->holds[slot];
    if (side->prev == 0) {
        assert(*head == slot + 1);
        *head = side->next;
    } else {
        g->holds[side->prev - 1].next = side->next;
    }
    if (side->next == 0) {
        assert(*tail == slot + 1);
        *tail = side->prev;
    } else {
        g->holds[side->next - 1].prev = side->prev;
    }
}

/* Until when a hold made now is safe from reclaim: the longest any of its
 * skus' buyers take to pay (0: reclaim is off for all of them). */
static int64_t safe_until_ms(const guard_t *g, const engine_hold_view_t *h, int64_t now_ms)
{
    int64_t safe_ms = 0;
    for (uint16_t i = 0; i < h->line_count; i++) {
        int64_t line_ms = sku_safe_ms(g, h->lines[i].sku_index);
        safe_ms = line_ms > safe_ms ? line_ms : safe_ms;
    }
    return safe_ms > 0 ? now_ms + safe_ms : 0;
}

/* Adds qty to an identity's units on a sku (found while deciding, or
 * found or added now). */
static void units_add(guard_t *g, uint32_t identity, uint32_t sku, uint32_t known, uint32_t qty)
{
    uint32_t c = known != GUARD_NONE ? known : ident_cs_get(g, identity, sku);
    assert(g->cs[c].live && g->cs[c].sku == sku && g->cs[c].customer == identity);
    g->cs[c].units_active += qty;
}

static void start_lines(guard_t *g, const engine_hold_view_t *h, const guard_hold_t *side,
                        int64_t now_ms, const ident_names_t *known)
{
    for (uint16_t i = 0; i < h->line_count; i++) {
        uint32_t sku = h->lines[i].sku_index;
        for (int k = 0; k < POLICY_ID_KINDS; k++) {
            if (side->ids[k] != 0) {
                uint32_t c = known != NULL && known->cs_known ? known->cs[k][i] : GUARD_NONE;
                units_add(g, side->ids[k] - 1, sku, c, h->lines[i].qty);
            }
        }
        guard_sku_t *s = &g->skus[sku];
        sku_bring(s, guard_sku_policy(g, sku, NULL), now_ms);
        s->started += 1.0;
        s->newcomer_held += side->newcomer ? h->lines[i].qty : 0;
    }
}

void book_start(guard_t *g, const engine_hold_view_t *h, const guard_hold_t *side,
                double cost_unit_ms, int64_t now_ms, const ident_names_t *known)
{
    int64_t units = book_units(h);
    uint32_t slot = engine_hold_slot(h->id);
    g->holds[slot] = *side;
    g->holds[slot].charged = cost_unit_ms > 0.0;
    g->holds[slot].safe_until_ms = safe_until_ms(g, h, now_ms);
    g->holds[slot].created_ms = h->created_ms;
    g->holds[slot].units = (uint32_t)units;
    book_list_link(g, h, slot);
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
    start_lines(g, h, side, now_ms, known);
    notice_hold_skus(g, h, now_ms);
}

/* Returns a finished hold's units to its identities: a sale improves their
 * reputation, and time not used is given back to their budgets. */
static void finish_identities(guard_t *g, const engine_hold_view_t *h, const guard_hold_t *side,
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

/* An identity's units on a sku go back; bought ones count in the window. */
static void units_finish(guard_t *g, uint32_t identity, uint32_t sku, uint32_t qty, bool committed,
                         int64_t at_ms)
{
    uint32_t c = ident_cs_find(g, identity, sku);
    assert(c != GUARD_NONE && g->cs[c].units_active >= qty);
    guard_customer_sku_t *e = &g->cs[c];
    e->units_active -= qty;
    if (committed) {
        if (ident_cs_bought(g, e, at_ms) == 0) {
            e->bought = 0;
            e->window_start_ms = at_ms;
        }
        e->bought += qty;
    }
}

static void finish_lines(guard_t *g, const engine_hold_view_t *h, const guard_hold_t *side,
                         int64_t at_ms)
{
    bool committed = h->state == ENGINE_HOLD_COMMITTED_STATE;
    for (uint16_t i = 0; i < h->line_count; i++) {
        uint32_t sku = h->lines[i].sku_index;
        for (int k = 0; k < POLICY_ID_KINDS; k++) {
            if (side->ids[k] != 0) {
                units_finish(g, side->ids[k] - 1, sku, h->lines[i].qty, committed, at_ms);
            }
        }
        guard_sku_t *s = &g->skus[sku];
        sku_bring(s, guard_sku_policy(g, sku, NULL), at_ms);
        s->committed += committed ? 1.0 : 0.0;
        assert(s->newcomer_held >= (side->newcomer ? h->lines[i].qty : 0));
        s->newcomer_held -= side->newcomer ? h->lines[i].qty : 0;
        if (committed && !side->buy_now) { /* buy now teaches nothing of paying */
            sku_pay_learn(g, sku, at_ms > h->created_ms ? at_ms - h->created_ms : 1, at_ms);
        }
    }
}

void book_finish(guard_t *g, const engine_hold_view_t *h, int64_t at_ms)
{
    uint32_t slot = engine_hold_slot(h->id);
    guard_hold_t side = g->holds[slot];
    bool committed = h->state == ENGINE_HOLD_COMMITTED_STATE;
    list_unlink(g, h, slot);
    finish_identities(g, h, &side, at_ms);
    finish_lines(g, h, &side, at_ms);
    sku_shop_bring(g, at_ms);
    g->shop_committed += committed ? 1.0 : 0.0;
    if (side.wait != 0) {
        guard_wait_t *w = &g->waits[side.wait - 1];
        assert(w->state == GUARD_WAIT_OFFERED && w->hold_id == h->id);
        wait_finish(g, side.wait - 1, committed ? GUARD_WAIT_FULFILLED : GUARD_WAIT_EXPIRED, at_ms);
    }
    g->holds[slot] = (guard_hold_t){0};
    notice_hold_skus(g, h, at_ms);
}
