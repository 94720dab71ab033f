/*
 * shop_live.c - the simulation's shop as a running server (see shop.h):
 * live.h's requests, played on the wall clock.
 *
 * The whole scenario is played in lo->seconds of wall time, so the agents'
 * clock runs `speed` (scenario ms per wall ms) times faster than the
 * server's, which keeps its own. Hence the conversions below: a duration
 * the server gives is multiplied by speed into scenario time, and a TTL an
 * agent asks is divided by it, so that carts run out on the agents' clock.
 * Events are played at their wall-clock instants; the sku totals are read
 * again every LIVE_REFRESH_MS, and the run stops at its time or its request
 * budget. Nothing here is deterministic: the server's state and clock are
 * real.
 */
#include "shop.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "live.h"

/* How often a live run reads the sku totals again (one request). */
#define LIVE_REFRESH_MS 250

typedef struct {
    live_t *live;
    const sim_scenario_t *s;
    const sim_live_options_t *lo;
    sim_live_report_t *lr;
    double speed; /* scenario ms per wall ms */
    /* wall clock (CLOCK_MONOTONIC ms) */
    int64_t start_ms, end_ms; /* scenario time 0, and the run's last instant */
    int64_t refreshed_ms, reported_ms;
} live_shop_t;

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void pause_ms(int64_t ms)
{
    struct timespec t = {.tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000};
    nanosleep(&t, NULL);
}

static engine_sku_view_t live_shop_sku_view(void *ctx, uint8_t sku)
{
    const live_shop_t *ls = ctx;
    return live_sku_view(ls->live, sku);
}

static const policy_config_t *live_shop_sku_policy(void *ctx, uint8_t sku)
{
    const live_shop_t *ls = ctx;
    return live_sku_policy(ls->live, sku);
}

static int64_t live_shop_scenario_ms(void *ctx, int64_t shop_ms)
{
    const live_shop_t *ls = ctx;
    return (int64_t)((double)shop_ms * ls->speed);
}

/* The hold time an agent asks for: what the policy would give (a bot: what
 * the scenario says it asks, else the same) in the server's time, so that
 * carts run out on the agents' clock; the server still shortens it as its
 * policy says. */
static int64_t ttl_ms(const live_shop_t *ls, uint8_t sku, bool bot)
{
    const policy_config_t *c = live_sku_policy(ls->live, sku);
    int64_t want_ms = bot && ls->s->hoard_ttl_ms > 0 ? ls->s->hoard_ttl_ms : c->ttl_default_ms;
    double ms = (double)want_ms / ls->speed;
    return ms < HF_TTL_MS_MIN ? HF_TTL_MS_MIN : ms > HF_TTL_MS_MAX ? HF_TTL_MS_MAX : (int64_t)ms;
}

static guard_outcome_t live_shop_hold(void *ctx, guard_hold_request_t *req, uint8_t sku,
                                      bool bot, int64_t now_ms, uint32_t *qty,
                                      int64_t *expires_ms)
{
    live_shop_t *ls = ctx;
    (void)now_ms; /* the server's clock, not the agents' */
    int64_t in_ms = 0;
    uint32_t held = 0;
    req->create.ttl_ms = req->buy_now ? 0 : ttl_ms(ls, sku, bot);
    guard_outcome_t o = live_hold(ls->live, req, &held, &in_ms);
    if (bot) {
        *qty = held;
        /* From the reply's instant (the loop may be behind its schedule),
         * a couple of ms after the server's expiry. */
        *expires_ms = (int64_t)((double)(wall_ms() - ls->start_ms) * ls->speed) +
                      live_shop_scenario_ms(ls, in_ms + 2);
    }
    return o;
}

static uint32_t live_shop_proof_tag(void *ctx, bool bot)
{
    live_shop_t *ls = ctx;
    return live_take_challenge(ls->live, bot);
}

static guard_outcome_t live_shop_hold_op(void *ctx, engine_op_kind_t kind, uint64_t hold_id,
                                         int64_t now_ms)
{
    live_shop_t *ls = ctx;
    (void)now_ms;
    return live_hold_op(ls->live, kind, hold_id);
}

static guard_outcome_t live_shop_wait_join(void *ctx, guard_op_t *join)
{
    live_shop_t *ls = ctx;
    return live_wait_join(ls->live, join);
}

static bool live_shop_wait_state(void *ctx, uint64_t wait_id, guard_wait_state_t *state,
                                 uint64_t *hold_id)
{
    live_shop_t *ls = ctx;
    return live_wait_state(ls->live, wait_id, state, hold_id);
}

/* The sku totals (read every so often) learn of the units now, so a bot
 * finds them again as it would in process. */
static void live_shop_hold_expired(void *ctx, uint8_t sku, uint32_t qty)
{
    live_shop_t *ls = ctx;
    assert(qty > 0);
    live_note_expired(ls->live, sku, qty);
}

static void live_shop_start(void *ctx)
{
    live_shop_t *ls = ctx;
    ls->start_ms = ls->refreshed_ms = ls->reported_ms = wall_ms();
    ls->end_ms = ls->start_ms + (int64_t)ls->lo->seconds * 1000;
}

static void progress(const live_shop_t *ls, int64_t now_ms, int64_t elapsed_ms)
{
    engine_sku_view_t t = {0};
    for (uint32_t i = 0; i < ls->s->sku_count; i++) {
        engine_sku_view_t v = live_sku_view(ls->live, i);
        t.available += v.available;
        t.held += v.held;
        t.sold += v.sold;
    }
    const live_stats_t *st = live_stats(ls->live);
    FILE *out = ls->lo->progress;
    fprintf(out,
            "sim live: %3lld s (scenario %.1f h): %llu requests, %llu failed; units available "
            "%lld, held %lld, sold %lld\n",
            (long long)(elapsed_ms / 1000), (double)now_ms / 3.6e6,
            (unsigned long long)st->requests, (unsigned long long)st->failed,
            (long long)t.available, (long long)t.held, (long long)t.sold);
    fflush(out);
}

/* Each event at its wall-clock instant (scenario time / speed), the sku
 * totals read every LIVE_REFRESH_MS, until the time or the request budget
 * runs out. */
static shop_pace_t live_shop_pace(void *ctx, int64_t now_ms, int64_t next_ms)
{
    live_shop_t *ls = ctx;
    const live_stats_t *st = live_stats(ls->live);
    int64_t now = wall_ms();
    int64_t due = ls->start_ms + (int64_t)((double)next_ms / ls->speed);
    /* One request is kept for the last read (finish). */
    if (now >= ls->end_ms || st->requests + 1 >= ls->lo->requests_max) {
        ls->lr->stopped_at_requests = now < ls->end_ms;
        return SHOP_PACE_STOP;
    }
    if (now - ls->refreshed_ms >= LIVE_REFRESH_MS) {
        int64_t sold;
        live_refresh(ls->live, &sold);
        ls->refreshed_ms = now;
    }
    if (ls->lo->progress != NULL && now - ls->reported_ms >= SIM_LIVE_PROGRESS_MS) {
        progress(ls, now_ms, now - ls->start_ms);
        ls->reported_ms = now;
    }
    if (due > now) { /* the next agent's step is not due yet */
        int64_t refresh = ls->refreshed_ms + LIVE_REFRESH_MS;
        int64_t until = due < refresh ? due : refresh;
        pause_ms((until < ls->end_ms ? until : ls->end_ms) - now);
        return SHOP_PACE_WAIT;
    }
    return SHOP_PACE_GO;
}

/* The server reclaims and offers out of sight: its waiting buyers look. */
static void live_shop_tick(void *ctx, int64_t now_ms, const shop_news_t *news)
{
    (void)ctx;
    (void)now_ms;
    (void)news;
}

/* The server checks its own. */
static bool live_shop_check(void *ctx)
{
    (void)ctx;
    return true;
}

/* The last read: the units sold since the start, on the server's word. */
static uint64_t live_shop_finish(void *ctx, int64_t end_ms)
{
    live_shop_t *ls = ctx;
    (void)end_ms;
    int64_t sold = 0;
    live_refresh(ls->live, &sold);
    ls->lr->wall_s = (double)(wall_ms() - ls->start_ms) / 1000.0;
    return (uint64_t)(sold > 0 ? sold : 0);
}

/* What the server was asked and answered goes to the report. */
static void live_shop_close(void *ctx)
{
    live_shop_t *ls = ctx;
    sim_live_report_t *lr = ls->lr;
    const live_stats_t *st = live_stats(ls->live);
    lr->requests = st->requests;
    lr->failed = st->failed;
    memcpy(lr->status, st->status, sizeof lr->status);
    lr->proofs_solved = st->proofs_solved;
    lr->proof_wall_s = st->proof_wall_s;
    snprintf(lr->last_error, sizeof lr->last_error, "%s", st->last_error);
    live_close(ls->live);
    free(ls);
}

static const shop_ops_t live_shop_ops = {
    .sku_view = live_shop_sku_view,
    .sku_policy = live_shop_sku_policy,
    .hold = live_shop_hold,
    .proof_tag = live_shop_proof_tag,
    .hold_op = live_shop_hold_op,
    .wait_join = live_shop_wait_join,
    .wait_state = live_shop_wait_state,
    .hold_expired = live_shop_hold_expired,
    .scenario_ms = live_shop_scenario_ms,
    .start = live_shop_start,
    .pace = live_shop_pace,
    .tick = live_shop_tick,
    .check = live_shop_check,
    .finish = live_shop_finish,
    .close = live_shop_close,
    .tells_offers = false,
};

static int64_t stock_of(const sim_scenario_t *s)
{
    int64_t total = 0;
    for (uint32_t i = 0; i < s->sku_count; i++) {
        total += s->skus[i].stock;
    }
    return total;
}

/* A population in proportion to the server's stock, at least 1 if any. */
static uint32_t scaled(uint32_t n, double scale, uint32_t max)
{
    double x = (double)n * scale + 0.5;
    uint32_t v = x >= (double)max ? max : (uint32_t)x;
    return n > 0 && v == 0 ? 1 : v;
}

/* Demand keeps its proportion to supply: the scenario's populations
 * scaled by the server's units on sale over the scenario's stock. */
static void size_populations(sim_scenario_t *s, int64_t scenario_stock,
                             const sim_live_options_t *lo)
{
    double scale = scenario_stock > 0 ? (double)stock_of(s) / (double)scenario_stock : 1.0;
    s->genuine = lo->genuine >= 0 ? (uint32_t)lo->genuine
                                  : scaled(s->genuine, scale, SIM_LIVE_GENUINE_MAX);
    s->attackers = lo->attackers >= 0 ? (uint32_t)lo->attackers
                                      : scaled(s->attackers, scale, SIM_LIVE_ATTACKERS_MAX);
    s->scalpers = scaled(s->scalpers, scale, SIM_LIVE_ATTACKERS_MAX);
}

int shop_live_open(shop_t *shop, sim_scenario_t *s, policy_config_t *policy,
                   const sim_live_options_t *lo, uint64_t seed, sim_live_report_t *lr, char *err,
                   size_t err_size)
{
    *shop = (shop_t){0};
    live_shop_t *ls = calloc(1, sizeof *ls);
    if (ls == NULL) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    int64_t scenario_stock = stock_of(s);
    uint64_t tag = (uint64_t)time(NULL) * 31 + seed; /* names differ from run to run */
    ls->live = live_open(lo->url, lo->key, lo->requests_max, tag, s, policy, &lr->policy_read,
                         err, err_size);
    if (ls->live == NULL) {
        free(ls);
        return -1;
    }
    size_populations(s, scenario_stock, lo);
    ls->s = s;
    ls->lo = lo;
    ls->lr = lr;
    ls->speed = lr->speed = (double)s->duration_ms / (lo->seconds * 1000.0);
    *shop = (shop_t){.ops = &live_shop_ops, .ctx = ls};
    return 0;
}
