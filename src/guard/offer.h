/*
 * offer.h - waitlist offers: units freed on a sku go to its line, first
 * come, first served among the entries the stock can serve, as holds made in
 * the step that frees them (the lifecycle is in guard.h).
 */
#ifndef HF_GUARD_OFFER_H
#define HF_GUARD_OFFER_H

#include "state.h"

/* Offers a sku's available units to its line at at_ms, entry by entry,
 * for as long as they cover the first servable entry. */
void offer_serve(guard_t *g, uint32_t sku, int64_t at_ms);
/* Offers that found the hold table full are made once it has room again. */
void offer_serve_starved(guard_t *g);

#endif
