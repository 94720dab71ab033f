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
#define SIM_DURATION_MS_MAX (7LL * 24 * 3600 * 1000)
#define SIM_POLICIES_MAX 8

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
    uint32_t waitlist_pct; /* of those who give up, how many join a waitlist */
    double browser_hashes_per_s;

    /* hoarders */
    uint32_t attackers;
    int64_t attack_start_ms, attack_end_ms;
    bool rotate_ids;      /* a new customer id for every hold */
    uint32_t ip_prefixes; /* /24s the attackers' addresses come from (0: no ip sent) */
    uint32_t fingerprints; /* browser fingerprints they present (0: none sent) */
    double attacker_hashes_per_s; /* each attacker's proof-of-work speed */
    double attacker_cpu_s;        /* each attacker's budget of CPU seconds for proofs */
} sim_scenario_t;

/* Built-in scenarios by name ("merch-2020", "rally-2020", "flash-sale"; each
 * with "-control" for the same without the attack). False if unknown. */
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
    uint64_t genuine_waitlisted, genuine_served_from_waitlist;
    double genuine_proof_s; /* browser seconds spent on proofs, all buyers */
    /* attack */
    double attacker_unit_hours; /* units held by attackers x hours */
    uint64_t attacker_holds, attacker_identities;
    uint64_t attacker_denied, attacker_challenged;
    double attacker_cpu_s;
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

/* Writes the comparison of results as a table (text) or as JSON. */
void sim_report_table(FILE *out, const sim_scenario_t *s, const sim_result_t *r, uint32_t count,
                      const sim_result_t *control);
void sim_report_json(FILE *out, const sim_scenario_t *s, uint64_t seed, const sim_result_t *r,
                     uint32_t count, const sim_result_t *control);

/* SVG plots into dir (which must exist): DIR/SCENARIO-POLICY.svg (units
 * available, held and sold over time; the results need samples) and
 * DIR/SCENARIO-fill.svg (genuine fill per policy). 0, or -1 if a file
 * cannot be written. */
int sim_plot(const char *dir, const sim_scenario_t *s, const sim_result_t *r,
             const sim_result_t *control, uint32_t count);

/* `holdfast sim ...`: argv[0] is "sim". Returns the exit code. */
int sim_main(int argc, char **argv);

#endif
