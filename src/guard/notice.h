/*
 * notice.h - the guard's log of what changed (guard_notice_t in guard.h),
 * written where holds start and finish and stock moves.
 */
#ifndef HF_GUARD_NOTICE_H
#define HF_GUARD_NOTICE_H

#include "state.h"

void notice_add(guard_t *g, guard_notice_kind_t kind, uint64_t id, int64_t at_ms);
/* A GUARD_NOTICE_SKU for each of the hold's lines. */
void notice_hold_skus(guard_t *g, const engine_hold_view_t *h, int64_t at_ms);

#endif
