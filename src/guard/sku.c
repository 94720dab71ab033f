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

/* What escalation watches on a sku whose counts are brought to now_ms. */
static policy_sku_signal_t signal_of(const guard_t *g, uint32_t sku, const guard_sku_t *s,
                                     int64_t now_ms)
{
    engine_sku_view_t v;
    engine_sku_view(&g->engine, sku, &v);
    return (policy_sku_signal_t){
        .started = s->started,
        .committed = s->committed,
        .shop_started = policy_decay(&g->policy, g->shop_started, g->shop_at_ms, now_ms),
        .shop_committed = policy_decay(&g->policy, g->shop_committed, g->shop_at_ms, now_ms),
        .stock = v.stock,
        .available = v.available,
        .newcomer_held = s->newcomer_held};
}

/* A sku refusing every hold sees no hold to switch it back: time ends it. */
bool sku_escalated_now(const guard_t *g, uint32_t sku, int64_t now_ms)
{
    guard_sku_t s = g->skus[sku];
    if (!s.escalated) {
        return false;
    }
    const policy_config_t *c = guard_sku_policy(g, sku, NULL);
    sku_bring(&s, c, now_ms); /* on the copy */
    policy_sku_signal_t sig = signal_of(g, sku, &s, now_ms);
    return policy_escalate(c, true, &sig);
}

void sku_evaluate(guard_t *g, uint32_t sku, int64_t now_ms)
{
    guard_sku_t *s = &g->skus[sku];
    const policy_config_t *c = guard_sku_policy(g, sku, NULL);
    sku_bring(s, c, now_ms);
    policy_sku_signal_t sig = signal_of(g, sku, s, now_ms);
    bool on = policy_escalate(c, s->escalated, &sig);
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

/* ------------------------------------------------------------ pay times */

/* Bucket b holds the times below pay_edge_ms[b] (and at or above the one
 * before it): 1 s, then a factor of sqrt(2) each, to 12.9 h (the last
 * bucket also holds anything longer). */
static const int64_t pay_edge_ms[GUARD_PAY_BUCKETS] = {
    1000,    1414,    2000,    2828,     4000,     5657,     8000,     11314,
    16000,   22627,   32000,   45255,    64000,    90510,    128000,   181019,
    256000,  362039,  512000,  724077,   1024000,  1448155,  2048000,  2896309,
    4096000, 5792619, 8192000, 11585238, 16384000, 23170475, 32768000, 46340950};

/* The counts decayed to now_ms (half-life reclaim.window_ms), on a copy. */
static guard_pay_t pay_at(const guard_t *g, uint32_t sku, int64_t now_ms)
{
    guard_pay_t p = g->pay[sku];
    if (now_ms > p.at_ms && p.total > 0.0) {
        double f = exp2(-(double)(now_ms - p.at_ms) / (double)g->policy.reclaim_window_ms);
        for (int b = 0; b < GUARD_PAY_BUCKETS; b++) {
            p.count[b] *= f;
        }
        p.total *= f;
    }
    p.at_ms = now_ms > p.at_ms ? now_ms : p.at_ms;
    return p;
}

void sku_pay_learn(guard_t *g, uint32_t sku, int64_t took_ms, int64_t now_ms)
{
    assert(took_ms > 0);
    guard_pay_t p = pay_at(g, sku, now_ms);
    int b = 0;
    while (b < GUARD_PAY_BUCKETS - 1 && took_ms >= pay_edge_ms[b]) {
        b++;
    }
    p.count[b] += 1.0;
    p.total += 1.0;
    p.seen++;
    g->pay[sku] = p;
}

/* Decay scales every bucket alike, so the percentile is read from the
 * counts as they were last brought up to date: no decay on this path, which
 * every hold takes. */
int64_t sku_pay_ms(const guard_t *g, uint32_t sku)
{
    const guard_pay_t *p = &g->pay[sku];
    if (p->seen < (uint64_t)g->policy.reclaim_min_commits) {
        return 0; /* too few sales to know */
    }
    double want = p->total * (double)g->policy.reclaim_pay_pct / 100.0, seen = 0.0;
    for (int b = 0; b < GUARD_PAY_BUCKETS; b++) {
        seen += p->count[b];
        if (seen >= want) {
            return pay_edge_ms[b];
        }
    }
    return pay_edge_ms[GUARD_PAY_BUCKETS - 1];
}

int64_t sku_safe_ms(const guard_t *g, uint32_t sku)
{
    const policy_config_t *c = guard_sku_policy(g, sku, NULL);
    if (!c->reclaim_enabled) {
        return 0;
    }
    int64_t pay_ms = sku_pay_ms(g, sku);
    return pay_ms > c->reclaim_floor_ms ? pay_ms : c->reclaim_floor_ms;
}

/* ---------------------------------------------------------------- wants */

double sku_want_units(const guard_t *g, uint32_t sku, int64_t now_ms)
{
    const guard_want_t *w = &g->want[sku];
    if (w->units <= 0.0 || now_ms <= w->at_ms) {
        return w->units;
    }
    return w->units * exp2(-(double)(now_ms - w->at_ms) / (double)SKU_WANT_HALF_LIFE_MS);
}

void sku_want_add(guard_t *g, uint32_t sku, uint32_t qty, int64_t now_ms)
{
    guard_want_t *w = &g->want[sku];
    w->units = sku_want_units(g, sku, now_ms) + (double)qty;
    w->at_ms = now_ms > w->at_ms ? now_ms : w->at_ms;
    g->want_at_ms = now_ms > g->want_at_ms ? now_ms : g->want_at_ms;
}
