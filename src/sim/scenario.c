/*
 * scenario.c - the built-in scenarios and policies of the simulator.
 *
 * Numbers come from the stories they model where a number is known (a
 * 19,000-seat arena; about 6,000 people came) and are otherwise plain
 * assumptions stated here, so a reader can disagree with one line.
 */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "sim.h"

static void add_sku(sim_scenario_t *s, const char *sku, int64_t stock, int64_t price_cents)
{
    sim_sku_t *k = &s->skus[s->sku_count++];
    snprintf(k->sku, sizeof k->sku, "%s", sku);
    k->stock = stock;
    k->price_cents = price_cents;
}

/* Real buyers, whatever the shop: most carts are abandoned, a few payments
 * fail, and people give a sold-out page a couple more tries. */
static void buyers_common(sim_scenario_t *s)
{
    s->qty_max = 2;
    s->think_ms_median = 4 * 60 * 1000; /* add to cart -> pay: minutes */
    s->think_sigma = 0.8;
    s->abandon_pct = 60;
    s->pay_fail_pct = 5;
    s->retries = 2;
    s->retry_wait_ms = 10 * 60 * 1000;
    s->waitlist_pct = 50;
    /* web/pow/solver.js with its WebAssembly engine in headless Chromium
     * on one core of a server (bench/pow_speed.mjs: 3.6 to 5.9 million; the
     * slowest run taken). A phone is slower: docs/SIM.md. */
    s->browser_hashes_per_s = 3500000;
}

/* July 2020: a campaign's merchandise shop (caps, cufflinks, shirts in
 * sizes, limited runs). A crowd fills carts with the most the page allows
 * and never pays; each troll is a person, with an address and a browser of
 * their own, and makes a fresh account now and then. */
static void merch_2020(sim_scenario_t *s)
{
    snprintf(s->name, sizeof s->name, "merch-2020");
    s->story = "campaign merchandise shop; trolls fill carts to the maximum and never pay";
    add_sku(s, "cap-red", 200, 4000);
    add_sku(s, "cap-white", 150, 4000);
    add_sku(s, "cap-blue", 150, 4000);
    add_sku(s, "cufflinks-gold", 40, 10000);
    add_sku(s, "cufflinks-silver", 60, 10000);
    add_sku(s, "shirt-s", 80, 4500);
    add_sku(s, "shirt-m", 120, 4500);
    add_sku(s, "shirt-l", 120, 4500);
    add_sku(s, "shirt-xl", 60, 4500);
    s->duration_ms = 24LL * 3600 * 1000;
    buyers_common(s);
    s->genuine = 4000; /* fans over a day: about four times the stock */
    s->curve = SIM_CURVE_VIRAL;
    s->peak_ms = 8LL * 3600 * 1000;
    s->spread_ms = 4LL * 3600 * 1000;
    s->attackers = 400;
    s->attack_start_ms = 2LL * 3600 * 1000; /* the post goes viral */
    s->attack_end_ms = s->duration_ms;
    s->rotate_ids = true;
    s->ip_prefixes = 400;  /* a person each: their own network */
    s->fingerprints = 400; /* and their own browser */
    s->attacker_hashes_per_s = 3500000; /* a browser tab, the shop's own solver */
    s->attacker_cpu_s = 3600;         /* an hour of a tab's time each */
}

/* June 2020: free tickets for a 19,000-seat arena; about a million
 * registrations were announced and about 6,000 people came. A ticket was
 * free, so the crowd did not hold seats: it registered, which is a sale
 * (the commit). Each troll is a person with a phone of its own and its own
 * network, registering again and again under fresh names for seats it
 * will never use: bots that "pay", at no price. */
static void rally_2020(sim_scenario_t *s)
{
    snprintf(s->name, sizeof s->name, "rally-2020");
    s->story = "free tickets, 19,000 seats; trolls register en masse for seats they never use";
    add_sku(s, "ticket", 19000, 0);
    s->duration_ms = 24LL * 3600 * 1000;
    buyers_common(s);
    s->qty_max = 2;
    s->abandon_pct = 20; /* a free ticket is mostly claimed once held */
    s->pay_fail_pct = 0;
    s->genuine = 15000; /* more wanted to come than did */
    s->curve = SIM_CURVE_VIRAL;
    s->peak_ms = 6LL * 3600 * 1000;
    s->spread_ms = 6LL * 3600 * 1000;
    s->scalpers = 800;       /* trolls */
    s->scalper_units = 50;   /* forty thousand registrations between them */
    s->attack_start_ms = 1LL * 3600 * 1000;
    s->attack_end_ms = s->duration_ms;
    s->rotate_ids = true;
    s->ip_prefixes = 800;
    s->fingerprints = 800;
    s->attacker_hashes_per_s = 3500000; /* the shop's own solver in a browser */
    s->attacker_cpu_s = 1800;
}

/* A limited sneaker-style drop: five sizes, a hundred pairs each, a crowd
 * at the minute it opens, and bots on proxies with a native solver. */
static void flash_sale(sim_scenario_t *s)
{
    snprintf(s->name, sizeof s->name, "flash-sale");
    s->story = "limited drop; bots on a few proxy networks hold every size at the opening";
    static const char *const sizes[] = {"size-8", "size-9", "size-10", "size-11", "size-12"};
    for (int i = 0; i < 5; i++) {
        add_sku(s, sizes[i], 100, 20000);
    }
    s->duration_ms = 2LL * 3600 * 1000;
    buyers_common(s);
    s->qty_max = 1;
    s->think_ms_median = 90 * 1000;
    s->abandon_pct = 20; /* people came for this */
    s->genuine = 20000;
    s->curve = SIM_CURVE_FLASH;
    s->spread_ms = 10 * 60 * 1000;
    s->attackers = 200;
    s->attack_start_ms = 0;
    s->attack_end_ms = s->duration_ms;
    s->rotate_ids = true;
    s->ip_prefixes = 20;  /* proxy pools */
    s->fingerprints = 50; /* spoofed browsers */
    s->attacker_hashes_per_s = 10000000; /* `holdfast solve` on a server core */
    s->attacker_cpu_s = 7200;
}

/* The same drop, where the bots buy: a hundred scalpers on the same proxy
 * networks, each after ten pairs to resell (twice the stock between them),
 * paying within seconds. Scalpers are buyers: a hold policy can slow them
 * (caps per identity, proofs) but not tell their money from a fan's. */
static void scalper_drop(sim_scenario_t *s)
{
    flash_sale(s);
    snprintf(s->name, sizeof s->name, "scalper-drop");
    s->story = "limited drop; scalper bots on proxy networks buy to resell";
    s->attackers = 0;
    s->scalpers = 100;
    s->scalper_units = 10;
}

/* A drop that sells out in minutes: six items, 540 units, fifteen buyers a
 * second who mostly pay within seconds, many of them on phones behind a few
 * carriers' NATs. Hoarders strike in the first seconds from 48 devices
 * behind the same NATs, a fresh account for every hold, asking the most
 * the page offers and taking the shop's default hold time; they solve
 * proofs natively and never pay. */
static void quick_drop(sim_scenario_t *s)
{
    snprintf(s->name, sizeof s->name, "quick-drop");
    s->story = "a drop that sells out in minutes; hoarders on the buyers' carrier NATs strike first";
    static const char *const items[] = {"hoodie-s", "hoodie-m", "hoodie-l",
                                        "tee-s",    "tee-m",    "tee-l"};
    for (int i = 0; i < 6; i++) {
        add_sku(s, items[i], 90, i < 3 ? 8000 : 3500);
    }
    s->duration_ms = 10LL * 60 * 1000;
    buyers_common(s);
    s->genuine = 9000; /* fifteen a second for ten minutes */
    s->curve = SIM_CURVE_STEADY;
    s->think_ms_median = 15000; /* card details saved: seconds to pay */
    s->think_sigma = 0.5;
    s->abandon_pct = 15;
    s->pay_fail_pct = 2;
    s->retries = 3;
    s->retry_wait_ms = 30000;
    s->nat_prefixes = 16; /* mobile carriers' shared /24s */
    s->nat_pct = 40;
    s->attackers = 48;
    s->attack_start_ms = 0;
    s->attack_ramp_ms = 5000;
    s->attack_end_ms = s->duration_ms;
    s->rotate_ids = true;
    s->ip_prefixes = 0; /* behind the carriers' NATs, with the buyers */
    s->fingerprints = 48;
    s->attacker_hashes_per_s = 10000000; /* `holdfast solve` on a server core */
    s->attacker_cpu_s = 600;
}

static const struct {
    const char *name;
    void (*make)(sim_scenario_t *s);
} scenarios[] = {
    {"merch-2020", merch_2020},
    {"rally-2020", rally_2020},
    {"flash-sale", flash_sale},
    {"scalper-drop", scalper_drop},
    {"quick-drop", quick_drop},
};

const char *sim_scenario_names(void)
{
    return "merch-2020, rally-2020, flash-sale, scalper-drop, quick-drop (each also "
           "NAME-control: no attack)";
}

bool sim_scenario_builtin(const char *name, sim_scenario_t *out)
{
    char base[SIM_NAME_BYTES_MAX];
    size_t len = strlen(name);
    bool control = len > 8 && strcmp(name + len - 8, "-control") == 0;
    snprintf(base, sizeof base, "%.*s", (int)(control ? len - 8 : len), name);
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
        if (strcmp(base, scenarios[i].name) == 0) {
            memset(out, 0, sizeof *out);
            out->attack_ramp_ms = SIM_ATTACK_RAMP_MS_DEFAULT;
            scenarios[i].make(out);
            if (control) {
                out->attackers = 0;
                out->scalpers = 0;
                snprintf(out->name, sizeof out->name, "%s-control", scenarios[i].name);
            }
            return true;
        }
    }
    return false;
}

/* ------------------------------------------------------------- policies */

/* Every defense off; TTL as the policy says. */
static policy_config_t off(int64_t ttl_ms)
{
    policy_config_t c = policy_config_default();
    c.quantity_enabled = 0;
    c.identity_enabled = 0;
    c.budget_enabled = 0;
    c.hold_share_held_pct_max = 100;
    c.ttl_adaptive = 0;
    c.ttl_default_ms = ttl_ms;
    c.ttl_max_ms = ttl_ms;
    c.ttl_life_max_ms = HF_TTL_MS_MAX;
    c.reputation_enabled = 0;
    c.challenge_enabled = 0;
    c.waitlist_enabled = 0;
    c.escalation_enabled = 0;
    c.newcomer_enabled = 0;
    c.ttl_pay_floor = 0;
    c.reclaim_enabled = 0;
    return c;
}

static policy_config_t strict(void)
{
    policy_config_t c = policy_config_default();
    c.quantity_line_qty_max = 4;
    c.quantity_customer_sku_units_max = 4;
    c.identity_customer_holds_max = 3;
    c.identity_customer_units_max = 8;
    c.identity_ip_prefix_holds_max = 50;
    c.identity_ip_prefix_units_max = 100;
    c.budget_customer_unit_s = 4800;
    c.hold_share_held_pct_max = 60;
    c.ttl_default_ms = 300000;
    c.ttl_scarce_ms = 60000;
    c.challenge_free_units = 1;
    c.challenge_base_bits = 12;
    c.escalation_min_holds = 20;
    return c;
}

bool sim_policy_builtin(const char *name, sim_policy_t *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", name);
    if (strcmp(name, "none") == 0) {
        out->no_holds = true;
        out->config = off(HF_TTL_MS_DEFAULT);
    } else if (strcmp(name, "naive") == 0) {
        out->config = off(30 * 60 * 1000); /* the shop in the story: 30-minute carts */
    } else if (strcmp(name, "quantity-cap") == 0) {
        out->config = off(30 * 60 * 1000);
        out->config.quantity_enabled = 1; /* what that shop did: a per-line cap */
        out->config.quantity_line_qty_max = 5;
        out->config.quantity_customer_sku_units_max = HF_QTY_MAX;
    } else if (strcmp(name, "default") == 0) {
        out->config = policy_config_default();
    } else if (strcmp(name, "strict") == 0) {
        out->config = strict();
    } else {
        return false;
    }
    policy_field_t bad;
    return policy_config_valid(&out->config, &bad);
}

const char *sim_policy_names(void)
{
    return "none, naive, quantity-cap, default, strict";
}

/* ------------------------------------------------------------- ablation */

/* Each defense's off switch: the base policy with one of them off shows
 * what that defense buys (and costs) in a scenario. */
static void no_quantity(policy_config_t *c) { c->quantity_enabled = 0; }
static void no_identity(policy_config_t *c) { c->identity_enabled = 0; }
static void no_budget(policy_config_t *c) { c->budget_enabled = 0; }
static void no_hold_share(policy_config_t *c) { c->hold_share_held_pct_max = 100; }
static void no_newcomer(policy_config_t *c) { c->newcomer_enabled = 0; }
static void no_adaptive_ttl(policy_config_t *c) { c->ttl_adaptive = 0; }
static void no_pay_floor(policy_config_t *c) { c->ttl_pay_floor = 0; }
static void no_reputation(policy_config_t *c) { c->reputation_enabled = 0; }
static void no_challenge(policy_config_t *c) { c->challenge_enabled = 0; }
static void no_waitlist(policy_config_t *c) { c->waitlist_enabled = 0; }
static void no_escalation(policy_config_t *c) { c->escalation_enabled = 0; }
static void no_reclaim(policy_config_t *c) { c->reclaim_enabled = 0; }

static const struct {
    const char *name;
    void (*off)(policy_config_t *c);
} defenses[] = {
    {"quantity", no_quantity},     {"identity", no_identity},       {"budget", no_budget},
    {"hold_share", no_hold_share}, {"newcomer", no_newcomer},       {"ttl.adaptive", no_adaptive_ttl},
    {"ttl.pay_floor", no_pay_floor}, {"reputation", no_reputation}, {"challenge", no_challenge},
    {"waitlist", no_waitlist},     {"escalation", no_escalation},   {"reclaim", no_reclaim},
};

uint32_t sim_ablation_count(void)
{
    return sizeof defenses / sizeof defenses[0];
}

void sim_policy_ablated(const sim_policy_t *base, uint32_t i, sim_policy_t *out)
{
    assert(i < sim_ablation_count());
    *out = *base;
    snprintf(out->name, sizeof out->name, "-%s", defenses[i].name);
    defenses[i].off(&out->config);
    policy_field_t bad;
    assert(policy_config_valid(&out->config, &bad));
}
