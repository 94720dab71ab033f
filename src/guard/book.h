/*
 * book.h - a hold's bookkeeping in the guard: what a hold starting and
 * finishing changes besides the engine.
 *
 * A hold counts against the identities it names (holds, units, budget,
 * reputation) and its customer's units per sku, and adds to its skus' and
 * the shop's recent holds. When it leaves the active state its units are
 * given back; a sale raises the identities' reputation and the sku's
 * conversion and counts against the customer's units in the window; unused
 * time goes back to the budgets it was charged to; an offered waitlist
 * entry is finished with it.
 */
#ifndef HF_GUARD_BOOK_H
#define HF_GUARD_BOOK_H

#include "state.h"

int64_t book_units(const engine_hold_view_t *h);
/* Counts the new hold h (side: the identities it names, its waitlist
 * entry), charging cost_unit_ms to their budgets. cs_known: its customer's
 * entry for each line, found while deciding, or NULL to find or add them. */
void book_start(guard_t *g, const engine_hold_view_t *h, const guard_hold_t *side,
                double cost_unit_ms, int64_t now_ms, const uint32_t *cs_known);
/* Settles h, which has just left the active state at at_ms. */
void book_finish(guard_t *g, const engine_hold_view_t *h, int64_t at_ms);

#endif
