/*
 * live.h - the shop a live simulation talks to: a running holdfast server on
 * this machine, over HTTP (http_client.h), in the guard's own terms.
 *
 * The simulation's agents ask the same questions of a live server as of the
 * in-process guard (hold, commit, release, join a waitlist, look at an
 * entry, look at a sku, read the policy); this module turns each into a
 * request and each reply back into a guard_outcome_t, so the agents' code is
 * one. What differs:
 *   - the catalog and the policy are the server's (read at the start; the
 *     sku totals are read again on live_refresh());
 *   - a challenge is solved for real (pow_solve) and the same request is
 *     sent again with its proof, as the API asks;
 *   - names carry a run tag ("r3k9x-g12"), so one run's buyers are not
 *     mistaken for an earlier run's by the server's identity caps;
 *   - the server's hold and waitlist ids are opaque text, each with the
 *     secret that its reply handed out: the agents get a handle in their
 *     place (where guard_outcome_t has an id), and every call about a hold
 *     or an entry sends its secret (Hold-Secret, Waitlist-Secret).
 * The wall clock (pacing, converting durations) is shop_live.c's, which
 * puts this module behind the shop interface (shop.h). Internal to the
 * simulator.
 */
#ifndef HF_SIM_LIVE_H
#define HF_SIM_LIVE_H

#include "guard.h"
#include "sim.h"

typedef struct live live_t;

typedef struct {
    uint64_t requests;       /* sent */
    uint64_t failed;         /* no reply, not JSON, a 400, 404 or 5xx (see unexpected) */
    uint64_t status[6];      /* replies by class: [2] 2xx ... [5] 5xx */
    uint64_t proofs_solved;  /* challenges answered with a real proof */
    double proof_wall_s;     /* time spent solving them, on this machine */
    char last_error[160];
} live_stats_t;

/* Connects to url (loopback only) with key (NULL: none) and a budget of
 * requests_max requests (past it nothing is sent and every call fails as
 * if there were no reply), reads the policy
 * (GET /v1/policy; without the admin key the defaults are assumed and
 * *policy_read is false) and the catalog: the first SIM_SKUS_MAX skus with
 * units available become s's skus, their stock the units available now, a
 * price from s's sku of the same name (or s's mean price). NULL with err if
 * the server cannot be reached or has nothing on sale. */
live_t *live_open(const char *url, const char *key, uint64_t requests_max, uint64_t run_tag,
                  sim_scenario_t *s, policy_config_t *policy, bool *policy_read, char *err,
                  size_t err_size);
void live_close(live_t *l);

/* POST /v1/holds. On GUARD_OK, the hold's handle is in .engine.hold_id,
 * *qty_out is the units held and
 * *expires_in_ms_out the server's time to expiry (0 for a buy now). A
 * challenge (GUARD_CHALLENGED) is kept until live_take_challenge(). A request
 * with req->proof_tag set sends that challenge's request again, with its
 * proof, whatever else req says. */
guard_outcome_t live_hold(live_t *l, const guard_hold_request_t *req, uint32_t *qty_out,
                          int64_t *expires_in_ms_out);
/* Solves the challenge of the last refused request; returns the tag that
 * sends it again, or 0 if it was not solved: too hard (LIVE_BITS_MAX), or a
 * hoarder's and the hoarders' share of the run's time is spent. */
uint32_t live_take_challenge(live_t *l, bool hoarder);

/* POST /v1/holds/{id}/commit (ENGINE_OP_HOLD_COMMIT) or DELETE /v1/holds/{id},
 * for the hold of that handle. */
guard_outcome_t live_hold_op(live_t *l, engine_op_kind_t kind, uint64_t hold_id);

/* POST /v1/skus/{sku}/waitlist with the join's names; the entry's handle in .id. */
guard_outcome_t live_wait_join(live_t *l, const guard_op_t *join);
/* GET /v1/waitlist/{id} of the entry's handle; an offer's hold handle in
 * *hold_id. False if it cannot be read. */
bool live_wait_state(live_t *l, uint64_t wait_id, guard_wait_state_t *state, uint64_t *hold_id);

/* The sku's totals as last read, and its settings (the shop's, overlaid
 * with the sku's own). */
engine_sku_view_t live_sku_view(const live_t *l, uint32_t sku);
const policy_config_t *live_sku_policy(const live_t *l, uint32_t sku);
/* One of this run's holds of qty units of sku has run out: until the next
 * read, the totals show the units free again. */
void live_note_expired(live_t *l, uint32_t sku, uint32_t qty);
/* Reads the sku totals again (one GET /v1/skus); units sold since the
 * start, over all the run's skus, in *sold_since_start. */
int live_refresh(live_t *l, int64_t *sold_since_start);

const live_stats_t *live_stats(const live_t *l);

#endif
