/*
 * shop_guard.c - the simulation's shop in process (see shop.h): the guard
 * itself, called at each event's virtual instant exactly as the server
 * would call it for the request the event stands for.
 *
 * Nothing here reads a clock or draws a random number: time is the
 * agents' (every call is given now_ms), so a run is still a function of
 * its seed. Between events the shop runs its own tick as a server does
 * (reclaim), and reads its offer log so that a waiting buyer is told of an
 * offer as the shop's notice would tell them.
 */
#include "shop.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    guard_t *g;
    const sim_scenario_t *s;
    uint32_t proof_seq;   /* the last proof tag handed out */
    uint64_t offers_seen; /* the offer log read up to here */
} guard_shop_t;

static engine_sku_view_t guard_shop_sku_view(void *ctx, uint8_t sku)
{
    const guard_shop_t *gs = ctx;
    uint32_t index;
    const sim_sku_t *k = &gs->s->skus[sku];
    bool found = engine_sku_find(guard_engine(gs->g), k->sku, strlen(k->sku), &index);
    assert(found);
    engine_sku_view_t v;
    engine_sku_view(guard_engine(gs->g), index, &v);
    return v;
}

static const policy_config_t *guard_shop_sku_policy(void *ctx, uint8_t sku)
{
    const guard_shop_t *gs = ctx;
    return guard_sku_policy(gs->g, sku, NULL);
}

/* A buyer needs neither the units held nor the expiry, and then nothing
 * is looked up. */
static guard_outcome_t guard_shop_hold(void *ctx, guard_hold_request_t *req, uint8_t sku,
                                       bool bot, int64_t now_ms, uint32_t *qty,
                                       int64_t *expires_ms)
{
    guard_shop_t *gs = ctx;
    (void)sku;
    guard_op_t op;
    guard_outcome_t o = guard_hold(gs->g, req, now_ms, &op);
    if (o.result == GUARD_OK && bot) {
        engine_hold_view_t v;
        engine_result_t r = engine_hold_view(guard_engine(gs->g), o.engine.hold_id, &v);
        assert(r == ENGINE_OK);
        *qty = v.lines[0].qty;
        *expires_ms = v.expires_ms;
    }
    return o;
}

/* In process the hashing is skipped, not the rule: each proof is a fresh
 * tag, spent once, as a verified header would be. */
static uint32_t guard_shop_proof_tag(void *ctx, bool bot)
{
    guard_shop_t *gs = ctx;
    (void)bot;
    return ++gs->proof_seq;
}

static guard_outcome_t guard_shop_hold_op(void *ctx, engine_op_kind_t kind, uint64_t hold_id,
                                          int64_t now_ms)
{
    guard_shop_t *gs = ctx;
    guard_op_t op = {.kind = GUARD_OP_ENGINE};
    op.engine = (engine_op_t){.kind = kind, .now_ms = now_ms};
    op.engine.u.hold.hold_id = hold_id;
    return guard_apply(gs->g, &op);
}

static guard_outcome_t guard_shop_wait_join(void *ctx, guard_op_t *join)
{
    guard_shop_t *gs = ctx;
    return guard_apply(gs->g, join);
}

static bool guard_shop_wait_state(void *ctx, uint64_t wait_id, guard_wait_state_t *state,
                                  uint64_t *hold_id)
{
    const guard_shop_t *gs = ctx;
    return guard_wait_state(gs->g, wait_id, state, hold_id);
}

/* The guard expires its holds itself, at the instant. */
static void guard_shop_hold_expired(void *ctx, uint8_t sku, uint32_t qty)
{
    (void)ctx;
    (void)sku;
    (void)qty;
}

/* The guard keeps the agents' clock. */
static int64_t guard_shop_scenario_ms(void *ctx, int64_t shop_ms)
{
    (void)ctx;
    return shop_ms;
}

static void guard_shop_start(void *ctx)
{
    (void)ctx;
}

/* Virtual time: every event is due when it is next. */
static shop_pace_t guard_shop_pace(void *ctx, int64_t now_ms, int64_t next_ms)
{
    (void)ctx;
    (void)now_ms;
    (void)next_ms;
    return SHOP_PACE_GO;
}

/* Carts taken back for buyers who wait (at most once a second of shop
 * time): the bots whose carts went see it. */
static void reclaim(guard_shop_t *gs, int64_t now_ms, const shop_news_t *news)
{
    guard_op_t op;
    guard_outcome_t o = guard_reclaim(gs->g, now_ms, &op);
    for (uint16_t i = 0; o.changed && i < op.u.reclaim.count; i++) {
        engine_hold_view_t v;
        engine_result_t r = engine_hold_view(guard_engine(gs->g), op.u.reclaim.holds[i], &v);
        assert(r == ENGINE_OK);
        news->hold_taken_back(news->agents, v.customer, v.customer_len);
    }
}

/* Offers made since the last look, each told to its entry's customer. */
static void tell_offers(guard_shop_t *gs, const shop_news_t *news)
{
    const guard_t *g = gs->g;
    uint64_t last = guard_offer_seq(g);
    uint64_t first = gs->offers_seen + 1;
    if (last - gs->offers_seen > GUARD_OFFER_LOG_MAX) {
        first = last - GUARD_OFFER_LOG_MAX + 1; /* older ones: the buyers' looks find them */
    }
    for (uint64_t seq = first; seq <= last; seq++) {
        guard_offer_t o;
        bool kept = guard_offer(g, seq, &o);
        assert(kept);
        const char *customer;
        uint8_t len;
        if (guard_wait_customer(g, o.wait_id, &customer, &len)) {
            news->offer_made(news->agents, o.wait_id, customer, len);
        }
    }
    gs->offers_seen = last;
}

/* The shop's own tick, as a server runs it, then its notices. */
static void guard_shop_tick(void *ctx, int64_t now_ms, const shop_news_t *news)
{
    guard_shop_t *gs = ctx;
    reclaim(gs, now_ms, news);
    if (guard_offer_seq(gs->g) != gs->offers_seen) {
        tell_offers(gs, news);
    }
}

static bool guard_shop_check(void *ctx)
{
    const guard_shop_t *gs = ctx;
    return guard_check(gs->g);
}

static uint64_t guard_shop_finish(void *ctx, int64_t end_ms)
{
    guard_shop_t *gs = ctx;
    guard_advance(gs->g, end_ms);
    return (uint64_t)engine_stats(guard_engine(gs->g)).units_sold;
}

static void guard_shop_close(void *ctx)
{
    guard_shop_t *gs = ctx;
    guard_destroy(gs->g);
    free(gs);
}

static const shop_ops_t guard_shop_ops = {
    .sku_view = guard_shop_sku_view,
    .sku_policy = guard_shop_sku_policy,
    .hold = guard_shop_hold,
    .proof_tag = guard_shop_proof_tag,
    .hold_op = guard_shop_hold_op,
    .wait_join = guard_shop_wait_join,
    .wait_state = guard_shop_wait_state,
    .hold_expired = guard_shop_hold_expired,
    .scenario_ms = guard_shop_scenario_ms,
    .start = guard_shop_start,
    .pace = guard_shop_pace,
    .tick = guard_shop_tick,
    .check = guard_shop_check,
    .finish = guard_shop_finish,
    .close = guard_shop_close,
    .tells_offers = true,
};

/* The guard's tables, sized for the run's populations. */
static guard_config_t tables_for(const sim_scenario_t *s)
{
    guard_config_t c = guard_config_default();
    uint64_t bots = (uint64_t)s->attackers + s->scalpers;
    uint64_t agents = s->genuine + bots;
    /* Rotating bots' one-hold accounts are swept when the table fills, as
     * on a server: room for a few each is enough. */
    uint64_t churn = s->rotate_ids ? 4 * bots : bots;
    c.engine.skus_max = s->sku_count;
    c.engine.holds_max = (uint32_t)(agents * 2 + 1024);
    c.engine.idem_keys_max = 16;
    uint64_t ids = 3 * agents + 3 * churn + 1024;
    c.identities_max = (uint32_t)(ids < HF_IDENTITIES_MAX_LIMIT ? ids : HF_IDENTITIES_MAX_LIMIT);
    uint64_t pairs = POLICY_ID_KINDS * (agents + churn) + 1024; /* units per identity and sku */
    c.customer_skus_max =
        (uint32_t)(pairs < HF_CUSTOMER_SKUS_MAX_LIMIT ? pairs : HF_CUSTOMER_SKUS_MAX_LIMIT);
    c.waitlist_max = s->genuine + 16;
    c.sku_policies_max = 4;
    uint64_t proofs = agents * 4 + 1024;
    c.proofs_max = (uint32_t)(proofs < HF_PROOFS_MAX_LIMIT ? proofs : HF_PROOFS_MAX_LIMIT);
    return c;
}

/* The policy, then the catalog, at time 0, as a shop would set them. */
static void open_shop(guard_t *g, const sim_scenario_t *s, const sim_policy_t *p)
{
    guard_op_t op = {.kind = GUARD_OP_POLICY_PUT, .u.policy = p->config};
    guard_outcome_t o = guard_apply(g, &op);
    assert(o.result == GUARD_OK);
    for (uint32_t i = 0; i < s->sku_count; i++) {
        op = (guard_op_t){.kind = GUARD_OP_ENGINE};
        op.engine.kind = ENGINE_OP_SKU_PUT;
        const sim_sku_t *k = &s->skus[i];
        op.engine.u.sku_put.sku_len = (uint8_t)strlen(k->sku);
        memcpy(op.engine.u.sku_put.sku, k->sku, op.engine.u.sku_put.sku_len);
        op.engine.u.sku_put.stock = k->stock;
        o = guard_apply(g, &op);
        assert(o.result == GUARD_OK);
    }
}

int shop_guard_open(shop_t *shop, const sim_scenario_t *s, const sim_policy_t *p, char *err,
                    size_t err_size)
{
    *shop = (shop_t){0};
    guard_config_t tables = tables_for(s);
    guard_shop_t *gs = calloc(1, sizeof *gs);
    if (gs == NULL || (gs->g = guard_create(&tables, 0)) == NULL) {
        free(gs);
        snprintf(err, err_size, "cannot reserve the tables for %u buyers and %u hoarders",
                 s->genuine, s->attackers);
        return -1;
    }
    gs->s = s;
    open_shop(gs->g, s, p);
    *shop = (shop_t){.ops = &guard_shop_ops, .ctx = gs};
    return 0;
}
