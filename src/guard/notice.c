/*
 * notice.c - the log of what changed (notice.h, guard.h). A ring that the
 * writer never waits on: a reader that falls more than GUARD_NOTICE_LOG_MAX
 * behind learns it from guard_notice() returning false, and must look again
 * at everything (the server rescans its skus then).
 */
#include "notice.h"

#include <assert.h>

void notice_add(guard_t *g, guard_notice_kind_t kind, uint64_t id, int64_t at_ms)
{
    if (g->notices == NULL) {
        return;
    }
    guard_notice_t *n = &g->notices[g->notice_seq % GUARD_NOTICE_LOG_MAX];
    *n = (guard_notice_t){.seq = g->notice_seq + 1, .id = id, .at_ms = at_ms, .kind = kind};
    g->notice_seq++;
}

void notice_hold_skus(guard_t *g, const engine_hold_view_t *h, int64_t at_ms)
{
    if (g->notices == NULL) {
        return;
    }
    for (uint16_t i = 0; i < h->line_count; i++) {
        notice_add(g, GUARD_NOTICE_SKU, h->lines[i].sku_index, at_ms);
    }
}

uint64_t guard_notice_seq(const guard_t *g)
{
    return g->notice_seq;
}

bool guard_notice(const guard_t *g, uint64_t seq, guard_notice_t *out)
{
    if (seq == 0 || seq > g->notice_seq || g->notice_seq - seq >= GUARD_NOTICE_LOG_MAX) {
        return false;
    }
    *out = g->notices[(seq - 1) % GUARD_NOTICE_LOG_MAX];
    assert(out->seq == seq);
    return true;
}
