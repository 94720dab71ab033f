/*
 * read.c - what the guard shows: identities, skus, its logs and counters
 * (guard.h). Nothing here changes state: views are brought up to the
 * guard's time on copies.
 */
#include <assert.h>

#include "identity.h"
#include "sku.h"

static guard_identity_view_t id_view(const guard_t *g, uint32_t i)
{
    const guard_identity_t *id = &g->ids[i];
    int64_t now_ms = engine_now_ms(&g->engine);
    policy_identity_t p = ident_policy_view(g, (policy_id_kind_t)id->kind, true, i, now_ms);
    double shop_started = policy_decay(&g->policy, g->shop_started, g->shop_at_ms, now_ms);
    double shop_committed = policy_decay(&g->policy, g->shop_committed, g->shop_at_ms, now_ms);
    return (guard_identity_view_t){.kind = (policy_id_kind_t)id->kind,
                                   .value = id->value,
                                   .value_len = id->len,
                                   .holds_active = id->holds_active,
                                   .units_held = id->units_held,
                                   .holds_total = id->holds_total,
                                   .commits_total = id->commits_total,
                                   .budget_unit_s = p.budget_unit_ms / 1000.0,
                                   .risk =
                                       policy_risk(&g->policy, &p, shop_started, shop_committed)};
}

bool guard_identity_find(const guard_t *g, policy_id_kind_t kind, const char *value, size_t len,
                         guard_identity_view_t *out)
{
    uint32_t i = ident_find(g, kind, value, len);
    if (i == GUARD_NONE) {
        return false;
    }
    *out = id_view(g, i);
    return true;
}

/* Larger is "more in need of a look". Conversion: those with history and few
 * commits first. */
static double top_score(const guard_identity_t *id, guard_top_by_t by)
{
    switch (by) {
    case GUARD_TOP_HELD_UNITS:
        return (double)id->units_held;
    case GUARD_TOP_HOLDS:
        return (double)id->holds_active;
    case GUARD_TOP_CONVERSION:
        if (id->holds_total == 0) {
            return -1.0;
        }
        return (double)id->holds_total *
               (1.0 - (double)id->commits_total / (double)id->holds_total);
    }
    return 0.0;
}

uint32_t guard_identities_top(const guard_t *g, guard_top_by_t by, uint32_t max,
                              guard_identity_view_t *out)
{
    assert(max <= HF_TOP_IDENTITIES_MAX);
    uint32_t best[HF_TOP_IDENTITIES_MAX];
    double score[HF_TOP_IDENTITIES_MAX];
    uint32_t n = 0;
    for (uint32_t i = 0; i < g->id_hwm; i++) {
        double s = g->ids[i].live ? top_score(&g->ids[i], by) : -1.0;
        if (s <= 0.0 || (n == max && s <= score[n - 1])) {
            continue;
        }
        uint32_t at = n < max ? n++ : max - 1; /* insertion into a short sorted list */
        while (at > 0 && score[at - 1] < s) {
            best[at] = best[at - 1];
            score[at] = score[at - 1];
            at--;
        }
        best[at] = i;
        score[at] = s;
    }
    for (uint32_t k = 0; k < n; k++) {
        out[k] = id_view(g, best[k]);
    }
    return n;
}

void guard_sku_view(const guard_t *g, uint32_t sku_index, guard_sku_view_t *out)
{
    const guard_sku_t *s = &g->skus[sku_index];
    const policy_config_t *c = guard_sku_policy(g, sku_index, NULL);
    guard_sku_t copy = *s;
    sku_bring(&copy, c, engine_now_ms(&g->engine));
    /* Both counts decay, and a commit is counted later than its hold's
     * start, so the ratio can pass 1 by a hair: a share is at most 1. */
    double conversion = copy.started >= 1.0 ? copy.committed / copy.started : -1.0;
    *out =
        (guard_sku_view_t){.escalated = sku_escalated_now(g, sku_index, engine_now_ms(&g->engine)),
                           .escalations = s->escalations,
                           .escalated_at_ms = s->escalated_at_ms,
                           .conversion = conversion > 1.0 ? 1.0 : conversion,
                           .recent_holds = copy.started,
                           .waiting = s->wait_count,
                           .denials = s->denials,
                           .challenges = s->challenges,
                           .newcomer_held = s->newcomer_held,
                           .pay_ms = sku_pay_ms(g, sku_index),
                           .reclaimed = s->reclaimed};
}

int64_t guard_hold_safe_until_ms(const guard_t *g, uint64_t hold_id)
{
    engine_hold_view_t h;
    if (engine_hold_view(&g->engine, hold_id, &h) != ENGINE_OK || h.state != ENGINE_HOLD_ACTIVE) {
        return 0;
    }
    return g->holds[engine_hold_slot(hold_id)].safe_until_ms;
}

bool guard_sku_has_holds(const guard_t *g, uint32_t sku)
{
    return g->skus[sku].started > 0.0 || g->skus[sku].escalated;
}

uint32_t guard_skus_escalated_now(const guard_t *g)
{
    uint32_t n = 0;
    for (uint32_t sku = 0; sku < engine_sku_count(&g->engine); sku++) {
        n += g->skus[sku].escalated && sku_escalated_now(g, sku, engine_now_ms(&g->engine));
    }
    return n;
}

guard_stats_t guard_stats(const guard_t *g)
{
    return g->stats;
}

const guard_config_t *guard_config(const guard_t *g)
{
    return &g->config;
}

const engine_t *guard_engine(const guard_t *g)
{
    return &g->engine;
}

engine_t *guard_engine_to_restore(guard_t *g)
{
    assert(g->stats.identities == 0 && g->stats.customer_skus == 0 && !g->has_secret);
    return &g->engine;
}

const policy_config_t *guard_policy(const guard_t *g)
{
    return &g->policy;
}

bool guard_policy_chosen(const guard_t *g)
{
    return g->policy_set;
}

bool guard_has_secret(const guard_t *g)
{
    return g->has_secret;
}

uint64_t guard_event_seq(const guard_t *g)
{
    return g->event_seq;
}

bool guard_event(const guard_t *g, uint64_t seq, guard_event_t *out)
{
    if (seq == 0 || seq > g->event_seq || g->event_seq - seq >= GUARD_EVENTS_MAX) {
        return false;
    }
    *out = g->events[(seq - 1) % GUARD_EVENTS_MAX];
    assert(out->seq == seq);
    return true;
}

uint64_t guard_offer_seq(const guard_t *g)
{
    return g->offer_seq;
}

bool guard_offer(const guard_t *g, uint64_t seq, guard_offer_t *out)
{
    if (seq == 0 || seq > g->offer_seq || g->offer_seq - seq >= GUARD_OFFER_LOG_MAX) {
        return false;
    }
    *out = g->offer_log[(seq - 1) % GUARD_OFFER_LOG_MAX];
    assert(out->seq == seq);
    return true;
}

uint64_t guard_wait_seq(const guard_t *g)
{
    return g->wait_seq;
}
