/*
 * book.h - a hold's bookkeeping in the guard: what a hold starting and
 * finishing changes besides the engine.
 *
 * A hold counts against the identities it names (holds, units, budget,
 * reputation) and their units per sku, adds to its skus' and the shop's
 * recent holds and, a newcomer's, to its skus' newcomer pool. When it leaves
 * the active state its units are given back; a sale raises the identities'
 * reputation and the sku's conversion, counts against their units in the
 * window and teaches the sku how long its buyers take to pay; unused time
 * goes back to the budgets it was charged to; an offered waitlist entry is
 * finished with it.
 */
#ifndef HF_GUARD_BOOK_H
#define HF_GUARD_BOOK_H

#include "identity.h"

int64_t book_units(const engine_hold_view_t *h);
/* Counts the new hold h (side: the identities it names, its waitlist entry,
 * whether it is a newcomer's), charging cost_unit_ms to their budgets, and
 * puts it on its reclaim list with the time it is safe until. known: the
 * request's names as deciding found them (their units entries), or NULL to
 * find or add the entries. */
void book_start(guard_t *g, const engine_hold_view_t *h, const guard_hold_t *side,
                double cost_unit_ms, int64_t now_ms, const ident_names_t *known);
/* Puts the active hold h (in slot) at the end of its reclaim list. */
void book_list_link(guard_t *g, const engine_hold_view_t *h, uint32_t slot);
/* Settles h, which has just left the active state at at_ms. */
void book_finish(guard_t *g, const engine_hold_view_t *h, int64_t at_ms);

#endif
