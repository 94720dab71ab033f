/*
 * sim.h - the front door of holdfast's attack simulator: genuine buyers and
 * hoarders in virtual time, against the real guard (engine + policy).
 *
 * A run is a discrete-event simulation: every agent's next step is an event
 * at a virtual instant, taken from one queue in (time, sequence) order, and
 * every decision is the guard's own (guard_hold, guard_apply) at that
 * instant. Nothing sleeps and nothing reads a clock; every random draw comes
 * from one generator seeded by the run's seed, so a seed gives the same run,
 * byte for byte, on any machine with the same build.
 *
 * Agents:
 *   genuine buyer:  arrives (the scenario's curve) -> holds 1..qty_max of a
 *                   sku -> thinks (log-normal) -> pays, abandons, or fails to
 *                   pay; sold out: retries a few times or joins the waitlist
 *                   where the policy has one; solves challenges at a
 *                   browser's speed.
 *   hoarder:        from attack_start_ms holds the most the policy allows,
 *                   again and again as holds expire or are refused, rotating
 *                   identities if told to, paying proofs of work from a CPU
 *                   budget, never buying.
 *   scalper:        a bot that buys to resell: in the attack's window, with
 *                   the hoarders' identities and CPU, it holds the most the
 *                   policy allows and pays within seconds (buys outright
 *                   when carts are full), until it has scalper_units.
 *
 * Policies: "none" sells at payment with no holds (and counts the oversells
 * that causes), every other is a policy_config_t the guard enforces.
 */
#ifndef HF_SIM_H
#define HF_SIM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "policy.h"

#define SIM_SKUS_MAX 64
#define SIM_NAME_BYTES_MAX 32
/* A run's populations: enough for a national sale, bounded for memory
 * (about 40 bytes an agent). */
#define SIM_GENUINE_MAX 10000000u
#define SIM_ATTACKERS_MAX 1000000u
#define SIM_SCALPERS_MAX 100000u
#define SIM_SCALPER_UNITS_MAX 1000u
#define SIM_DURATION_MS_MAX (7LL * 24 * 3600 * 1000)
/* Policies one comparison runs: the built-ins, or a base and its ablation. */
#define SIM_POLICIES_MAX 16
/* A buyer who spent more than this on proofs of work (in all) is burdened,
 * as one refused by a rule is: a second is about what a page may take
 * before a person notices a wait. */
#define SIM_BURDEN_PROOF_S 1.0
/* Bots start within this of the attack's start unless a scenario says
 * otherwise: a coordinated start, spread over a minute. */
#define SIM_ATTACK_RAMP_MS_DEFAULT 60000

typedef enum {
    SIM_CURVE_STEADY = 0, /* arrivals spread evenly */
    SIM_CURVE_FLASH = 1,  /* most arrivals right at the start of the sale */
    SIM_CURVE_VIRAL = 2,  /* a wave that peaks at peak_ms */
} sim_curve_t;

typedef struct {
    char sku[HF_SKU_BYTES_MAX + 1];
    int64_t stock;
    int64_t price_cents;
} sim_sku_t;

typedef struct {
    char name[SIM_NAME_BYTES_MAX];
    const char *story;
    uint32_t sku_count;
    sim_sku_t skus[SIM_SKUS_MAX];
    int64_t duration_ms;

    /* genuine buyers */
    uint32_t genuine;
    sim_curve_t curve;
    int64_t peak_ms, spread_ms; /* VIRAL: the wave's middle and width */
    uint32_t qty_max;           /* a buyer wants 1..qty_max units (mostly 1) */
    int64_t think_ms_median;    /* add-to-cart to payment, log-normal */
    double think_sigma;
    uint32_t abandon_pct;  /* carts never paid for */
    uint32_t pay_fail_pct; /* payments that fail (the cart is released) */
    uint32_t retries;      /* attempts after seeing "sold out" */
    int64_t retry_wait_ms;
    uint32_t waitlist_pct; /* told "sold out", how many join the waitlist (where there is one) */
    double browser_hashes_per_s;
    /* Carrier-grade NATs: nat_pct of the buyers come from nat_prefixes /24s
     * shared by many (0: every buyer's /24 is shared with 15 neighbours). */
    uint32_t nat_prefixes;
    uint32_t nat_pct;

    /* hoarders */
    uint32_t attackers;
    int64_t attack_start_ms, attack_end_ms;
    int64_t attack_ramp_ms; /* bots start within this after attack_start_ms */
    int64_t hoard_ttl_ms;   /* the TTL hoarders ask for (0: the shop's default) */
    bool rotate_ids;      /* a new customer id for every hold */
    /* /24s the bots' addresses come from (0: none sent, or with nat_prefixes
     * the buyers' carrier NATs) */
    uint32_t ip_prefixes;
    uint32_t fingerprints; /* browser fingerprints they present (0: none sent) */
    double attacker_hashes_per_s; /* each attacker's proof-of-work speed */
    double attacker_cpu_s;        /* each attacker's budget of CPU seconds for proofs */

    /* scalpers: bots that pay (the hoarders' window, identities and CPU) */
    uint32_t scalpers;
    uint32_t scalper_units; /* units each one wants */
} sim_scenario_t;

/* Built-in scenarios by name ("merch-2020", "rally-2020", "flash-sale",
 * "scalper-drop"; each with "-control" for the same without the attack: no
 * hoarders, no scalpers). False if unknown. */
bool sim_scenario_builtin(const char *name, sim_scenario_t *out);
/* The names, for --help. */
const char *sim_scenario_names(void);

typedef struct {
    char name[SIM_NAME_BYTES_MAX];
    bool no_holds; /* "none": sell at payment */
    policy_config_t config;
} sim_policy_t;

/* A scenario from a JSON file ("base" names a built-in to start from; the
 * other keys are the fields above, "skus" an array of {sku, stock,
 * price_cents}, "curve" steady, flash or viral). False with err on any
 * unknown key or bad value. */
bool sim_scenario_file(const char *path, sim_scenario_t *out, char *err, size_t err_size);
/* A policy from a file holding a policy document (docs/POLICIES.md). */
bool sim_policy_file(const char *path, sim_policy_t *out, char *err, size_t err_size);

/* The ablation: base with its i-th defense (of sim_ablation_count()) off,
 * named "-DEFENSE" ("-reclaim", "-hold_share", ...). */
uint32_t sim_ablation_count(void);
void sim_policy_ablated(const sim_policy_t *base, uint32_t i, sim_policy_t *out);

/* Built-in policies by name: none, naive, quantity-cap, default, strict. */
bool sim_policy_builtin(const char *name, sim_policy_t *out);
const char *sim_policy_names(void);

typedef struct {
    char policy[SIM_NAME_BYTES_MAX];
    /* genuine demand */
    uint64_t genuine_buyers, genuine_units_wanted;
    uint64_t genuine_units_bought, genuine_buyers_served;
    uint64_t genuine_saw_sold_out_while_held; /* buyers told "sold out" with units in holds */
    uint64_t genuine_challenged, genuine_denied; /* buyers asked a proof / refused a rule */
    /* buyers who spent more than SIM_BURDEN_PROOF_S on proofs or were refused */
    uint64_t genuine_burdened;
    uint64_t genuine_waitlisted, genuine_served_from_waitlist;
    double genuine_proof_s; /* browser seconds spent on proofs, all buyers */
    /* attack */
    double attacker_unit_hours; /* units held by attackers x hours */
    uint64_t attacker_holds, attacker_identities;
    uint64_t attacker_denied, attacker_challenged;
    double attacker_cpu_s;
    /* scalpers */
    uint64_t scalper_units_bought;
    /* shop */
    uint64_t oversells; /* "none": paid for, then refunded: no stock */
    int64_t revenue_cents;
    uint64_t units_sold;
    uint64_t events;
    /* a time series of the sku totals, for plots */
    uint32_t samples;
    int64_t *sample_ms;
    int64_t *sample_available, *sample_held, *sample_sold;
} sim_result_t;

typedef struct {
    uint64_t seed;
    bool check_invariants; /* guard_check() every so many events (tests) */
    uint32_t samples;      /* points of the time series (0: none) */
} sim_options_t;

/* Runs scenario s under policy p. Returns 0, or -1 with a message in err if
 * the run cannot start (a table too small). r's series are malloc'd: free
 * them with sim_result_free(). */
int sim_run(const sim_scenario_t *s, const sim_policy_t *p, const sim_options_t *o,
            sim_result_t *r, char *err, size_t err_size);
void sim_result_free(sim_result_t *r);

/*
 * A live run: the same agents against a running holdfast server on this
 * machine, over HTTP, so an attack can be watched on its dashboard.
 *
 * The server's catalog (its first skus with units available) and its policy
 * are used, not the scenario's; the populations are the scenario's scaled
 * by the server's units on sale over the scenario's stock (so demand keeps
 * its proportion to supply), within SIM_LIVE_GENUINE_MAX and
 * SIM_LIVE_ATTACKERS_MAX. The whole scenario is played in `seconds` of wall
 * time: the agents' clock runs duration/seconds times faster than the
 * server's, which keeps its own (a 10-minute hold lasts 10 real minutes).
 * The run stops at `seconds` or `requests_max`, whichever comes first.
 * Nothing here is deterministic: the server's state and clock are real.
 */
#define SIM_LIVE_SECONDS_MAX 600
#define SIM_LIVE_REQUESTS_MAX 1000000u
#define SIM_LIVE_REQUESTS_MIN 10u /* the policy, the catalog, a step, the last read */
#define SIM_LIVE_GENUINE_MAX 20000u
#define SIM_LIVE_ATTACKERS_MAX 2000u

typedef struct {
    const char *url;       /* http://127.0.0.1:PORT: loopback only */
    const char *key;       /* Bearer key (NULL: none); the admin key lets it read the policy */
    uint32_t seconds;      /* 1..SIM_LIVE_SECONDS_MAX */
    uint64_t requests_max; /* SIM_LIVE_REQUESTS_MIN..SIM_LIVE_REQUESTS_MAX */
    int64_t genuine, attackers; /* -1: scaled from the scenario */
    FILE *progress;        /* a line every SIM_LIVE_PROGRESS_MS (NULL: quiet) */
} sim_live_options_t;

#define SIM_LIVE_PROGRESS_MS 2000

typedef struct {
    double speed;        /* scenario ms per wall ms */
    double wall_s;       /* how long the run took */
    bool policy_read;    /* false: no admin key; the agents assumed the defaults */
    bool stopped_at_requests; /* requests_max reached before the end */
    uint64_t requests, failed, status[6];
    uint64_t proofs_solved;
    double proof_wall_s;
    char last_error[160];
} sim_live_report_t;

/* Runs scenario s live. On return s is the scenario as played (the server's
 * skus, the scaled populations). 0, or -1 with err if the run could not
 * start (a bad URL, no server, nothing on sale). */
int sim_live(sim_scenario_t *s, const sim_live_options_t *lo, const sim_options_t *o,
             sim_result_t *r, sim_live_report_t *lr, char *err, size_t err_size);

/* Writes the comparison of results as a table (text) or as JSON. */
void sim_report_table(FILE *out, const sim_scenario_t *s, const sim_result_t *r, uint32_t count,
                      const sim_result_t *control);
void sim_report_json(FILE *out, const sim_scenario_t *s, uint64_t seed, const sim_result_t *r,
                     uint32_t count, const sim_result_t *control);

/* A live run's report: what the server was asked and answered, then the
 * run's row of the table (text) or one JSON document. */
void sim_report_live(FILE *out, bool json, const sim_scenario_t *s, const sim_result_t *r,
                     const sim_live_report_t *lr, const char *url);

/* SVG plots into dir (which must exist): DIR/SCENARIO-POLICY.svg (units
 * available, held and sold over time; the results need samples) and, given
 * controls, DIR/SCENARIO-fill.svg (genuine fill per policy). 0, or -1 if a file
 * cannot be written. */
int sim_plot(const char *dir, const sim_scenario_t *s, const sim_result_t *r,
             const sim_result_t *control, uint32_t count);

/* `holdfast sim ...`: argv[0] is "sim". Returns the exit code. */
int sim_main(int argc, char **argv);

#endif
