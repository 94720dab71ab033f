/*
 * shop.h - the shop the simulation's agents talk to: one interface, two
 * shops behind it.
 *
 *   sim.c (the agents) --> shop_t --+--> shop_guard.c: the guard in process,
 *                                   |    in virtual time (a run replays from
 *                                   |    its seed)
 *                                   +--> shop_live.c: a running server over
 *                                        HTTP (live.h), in wall time
 *
 * A shop_t is a table of operations and the context they act on. The
 * agents ask every question through it (a sku's totals and settings, a
 * hold, a commit or a release, a proof, the waitlist) in the guard's own
 * terms, and never learn which shop answers. What genuinely differs
 * between the two is said by the table, not by tests of which shop it is:
 *   1. time: scenario_ms() turns a duration the shop gave (a TTL, a
 *      retry-after) into scenario time; a live server keeps its own clock
 *      while the scenario runs faster;
 *   2. pacing: pace() lets each event go at once (in process) or at its
 *      wall-clock instant, within a live run's time and request budget
 *      (and prints its progress);
 *   3. the shop's own clockwork between events (tick()): the guard's
 *      reclaim and its waitlist offers, told back to the agents as news;
 *      a live server's happen out of sight;
 *   4. offers: tells_offers says whether a waiting buyer is told of an
 *      offer (tick()'s news) or finds one only by looking.
 *
 * A run's calls, in order: open (shop_guard_open or shop_live_open), then
 * start(), then pace()/the agents' questions/tick() for each event, then
 * finish(), then close(). Every operation is set; sku indexes are the
 * scenario's (s->skus), which is the shop's catalog in the same order.
 * Internal to the simulator.
 */
#ifndef HF_SIM_SHOP_H
#define HF_SIM_SHOP_H

#include "guard.h"
#include "sim.h"

typedef enum {
    SHOP_PACE_GO = 0,   /* play the next event now */
    SHOP_PACE_WAIT = 1, /* not due yet: ask again */
    SHOP_PACE_STOP = 2, /* the run is over (its time or its requests are spent) */
} shop_pace_t;

/* What the shop's clockwork did that the agents see: a hold taken back
 * (reclaim) and an offer made to a waiting entry, each with the customer
 * the hold or the entry was made for. */
typedef struct {
    void (*hold_taken_back)(void *agents, const char *customer, uint8_t customer_len);
    void (*offer_made)(void *agents, uint64_t wait_id, const char *customer,
                       uint8_t customer_len);
    void *agents;
} shop_news_t;

typedef struct {
    /* The sku's totals now, and its settings (the shop's, overlaid with
     * the sku's own). */
    engine_sku_view_t (*sku_view)(void *ctx, uint8_t sku);
    const policy_config_t *(*sku_policy)(void *ctx, uint8_t sku);
    /* A hold (or a buy now) of req's one line, of the scenario's sku. A
     * bot (bot true) also learns, on GUARD_OK, the units held (*qty) and
     * when the hold runs out in scenario time (*expires_ms); a buyer's qty
     * and expires_ms are NULL. The shop may set req's TTL to what it
     * should ask. */
    guard_outcome_t (*hold)(void *ctx, guard_hold_request_t *req, uint8_t sku, bool bot,
                            int64_t now_ms, uint32_t *qty, int64_t *expires_ms);
    /* After a challenge the agent pays for: the tag its next request
     * carries, 0 if the proof cannot be had. */
    uint32_t (*proof_tag)(void *ctx, bool bot);
    /* ENGINE_OP_HOLD_COMMIT or ENGINE_OP_HOLD_RELEASE of a hold this run made. */
    guard_outcome_t (*hold_op)(void *ctx, engine_op_kind_t kind, uint64_t hold_id,
                               int64_t now_ms);
    /* GUARD_OP_WAIT_JOIN; the entry's id in .id. */
    guard_outcome_t (*wait_join)(void *ctx, guard_op_t *join);
    /* An entry's state, and an offer's hold in *hold_id; false if it cannot
     * be read. */
    bool (*wait_state)(void *ctx, uint64_t wait_id, guard_wait_state_t *state,
                       uint64_t *hold_id);
    /* One of this run's holds of qty units of sku has run out on the
     * agents' clock. */
    void (*hold_expired)(void *ctx, uint8_t sku, uint32_t qty);
    /* A duration the shop gave, in scenario time. */
    int64_t (*scenario_ms)(void *ctx, int64_t shop_ms);
    /* The run's first event is about to be paced. */
    void (*start)(void *ctx);
    /* Whether the next event, due at next_ms of scenario time, is played
     * now; now_ms is the last event's. */
    shop_pace_t (*pace)(void *ctx, int64_t now_ms, int64_t next_ms);
    /* After each agent's event at now_ms: the shop's own clockwork. */
    void (*tick)(void *ctx, int64_t now_ms, const shop_news_t *news);
    /* The shop's invariants (true if it has none to check). */
    bool (*check)(void *ctx);
    /* The run has ended at end_ms: returns the units sold over the run. */
    uint64_t (*finish)(void *ctx, int64_t end_ms);
    void (*close)(void *ctx);
    bool tells_offers;
} shop_ops_t;

typedef struct {
    const shop_ops_t *ops; /* NULL: not open */
    void *ctx;
} shop_t;

/* The guard in process, its tables sized for s's populations, with p's
 * policy and s's catalog put at time 0, as a shop would set them. 0, or -1
 * with err (and shop not open) if the tables cannot be reserved. */
int shop_guard_open(shop_t *shop, const sim_scenario_t *s, const sim_policy_t *p, char *err,
                    size_t err_size);

/* A running server (see sim_live() in sim.h): connects, reads its policy
 * into *policy and its catalog into s, and scales s's populations to its
 * stock (or sets them from lo). lr is the run's report: its speed and
 * policy_read now, the rest as the run goes and at close(); lo and lr
 * must outlive the shop. 0, or -1 with err (and shop not open) if the
 * server cannot be reached or has nothing on sale. */
int shop_live_open(shop_t *shop, sim_scenario_t *s, policy_config_t *policy,
                   const sim_live_options_t *lo, uint64_t seed, sim_live_report_t *lr, char *err,
                   size_t err_size);

#endif
