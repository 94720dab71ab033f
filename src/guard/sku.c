/*
 * sku.c - sku policies, conversion, escalation, refusals (sku.h).
 */
#include "sku.h"

#include <assert.h>
#include <math.h>

/* --------------------------------------------------------- sku policies */

const policy_config_t *guard_sku_policy(const guard_t *g, uint32_t sku_index, uint64_t *mask_out)
{
    uint32_t p = g->skus[sku_index].policy;
    if (mask_out != NULL) {
        *mask_out = p == 0 ? 0 : g->sku_policies[p - 1].mask;
    }
    return p == 0 ? &g->policy : &g->sku_policies[p - 1].resolved;
}

void sku_policy_resolve(const policy_config_t *global, guard_sku_policy_t *sp)
{
    sp->resolved = *global;
    for (int f = 0; f < POLICY_FIELD_COUNT; f++) {
        if (sp->mask & (1ull << f)) {
            *policy_field_ptr(&sp->resolved, (policy_field_t)f) =
                policy_field_get(&sp->values, (policy_field_t)f);
        }
    }
}

bool guard_policy_fits(const guard_t *g, const policy_config_t *p, uint32_t *sku_out,
                       policy_field_t *field_out)
{
    for (uint32_t sku = 0; sku < engine_sku_count(&g->engine); sku++) {
        uint32_t own = g->skus[sku].policy;
        if (own == 0 || g->sku_policies[own - 1].mask == 0) {
            continue;
        }
        guard_sku_policy_t sp = g->sku_policies[own - 1];
        sku_policy_resolve(p, &sp);
        if (!policy_config_valid(&sp.resolved, field_out)) {
            *sku_out = sku;
            return false;
        }
    }
    return true;
}

/* ------------------------------------------------------ conversion, escalation */

void sku_bring(guard_sku_t *s, const policy_config_t *c, int64_t now_ms)
{
    /* Recent conversion: counts decay with the escalation window as half-life. */
    if (now_ms > s->conversion_at_ms) {
        double f = exp2(-(double)(now_ms - s->conversion_at_ms) / (double)c->escalation_window_ms);
        s->started *= f;
        s->committed *= f;
        s->conversion_at_ms = now_ms;
    }
}

void sku_shop_bring(guard_t *g, int64_t now_ms)
{
    g->shop_started = policy_decay(&g->policy, g->shop_started, g->shop_at_ms, now_ms);
    g->shop_committed = policy_decay(&g->policy, g->shop_committed, g->shop_at_ms, now_ms);
    g->shop_at_ms = now_ms > g->shop_at_ms ? now_ms : g->shop_at_ms;
}

static void event_add(guard_t *g, uint32_t sku, bool on, int64_t now_ms)
{
    guard_event_t *ev = &g->events[g->event_seq % GUARD_EVENTS_MAX];
    *ev = (guard_event_t){.seq = g->event_seq + 1, .at_ms = now_ms, .sku = sku, .on = on};
    g->event_seq++;
}

/* A sku refusing every hold sees no hold to switch it back: time ends it. */
bool sku_escalated_now(const guard_t *g, uint32_t sku, int64_t now_ms)
{
    guard_sku_t s = g->skus[sku];
    if (!s.escalated) {
        return false;
    }
    const policy_config_t *c = guard_sku_policy(g, sku, NULL);
    engine_sku_view_t v;
    engine_sku_view(&g->engine, sku, &v);
    sku_bring(&s, c, now_ms); /* on the copy */
    double shop_started = policy_decay(&g->policy, g->shop_started, g->shop_at_ms, now_ms);
    double shop_committed = policy_decay(&g->policy, g->shop_committed, g->shop_at_ms, now_ms);
    return policy_escalate(c, true, s.started, s.committed, shop_started, shop_committed, v.stock,
                           v.available);
}

void sku_evaluate(guard_t *g, uint32_t sku, int64_t now_ms)
{
    guard_sku_t *s = &g->skus[sku];
    const policy_config_t *c = guard_sku_policy(g, sku, NULL);
    engine_sku_view_t v;
    engine_sku_view(&g->engine, sku, &v);
    sku_bring(s, c, now_ms);
    bool on = policy_escalate(c, s->escalated, s->started, s->committed, g->shop_started,
                              g->shop_committed, v.stock, v.available);
    if (on == (bool)s->escalated) {
        return;
    }
    s->escalated = on;
    s->escalated_at_ms = now_ms;
    if (on) {
        s->escalations++;
        g->stats.escalations_on++;
        g->stats.skus_escalated++;
    } else {
        g->stats.escalations_off++;
        g->stats.skus_escalated--;
    }
    event_add(g, sku, on, now_ms);
}

guard_result_t sku_policy_fits(const guard_t *g, uint32_t sku, const guard_op_t *op,
                               policy_field_t *bad_out)
{
    bool has_own = sku != GUARD_NONE && g->skus[sku].policy != 0;
    if (op->u.sku_policy.mask != 0 && !has_own &&
        g->sku_policy_count >= g->config.sku_policies_max) {
        return GUARD_SKU_POLICIES_FULL;
    }
    guard_sku_policy_t sp = {.mask = op->u.sku_policy.mask, .values = op->u.sku_policy.values};
    sku_policy_resolve(&g->policy, &sp);
    return policy_config_valid(&sp.resolved, bad_out) ? GUARD_OK : GUARD_POLICY_CONFLICT;
}

guard_result_t guard_sku_policy_check(const guard_t *g, const guard_op_t *op,
                                      policy_field_t *bad_out)
{
    uint32_t sku;
    bool found = engine_sku_find(&g->engine, op->u.sku_policy.sku, op->u.sku_policy.sku_len, &sku);
    return sku_policy_fits(g, found ? sku : GUARD_NONE, op, bad_out);
}

void sku_count_refusal(guard_t *g, uint32_t sku, const policy_decision_t *d)
{
    bool denied = d->verdict == POLICY_DENY;
    assert(d->verdict != POLICY_ALLOW && d->rule < POLICY_RULE_COUNT);
    (denied ? g->stats.denials : g->stats.challenges)[d->rule]++;
    if (sku != GUARD_NONE) {
        uint64_t *count = denied ? &g->skus[sku].denials : &g->skus[sku].challenges;
        (*count)++;
    }
}
