/*
 * policy.h - the front door of holdfast's denial-of-inventory defenses: pure
 * functions from (request, counters, configuration, now) to a decision.
 *
 * Nothing here keeps state, reads a clock or does I/O: the caller (guard.h,
 * which the server and the simulator share) gathers the counters, asks for a
 * decision, and applies it. So the same inputs always give the same decision,
 * and a decision can be unit-tested at every edge.
 *
 * A decision is one of:
 *   allow      - possibly adjusted: a shorter TTL than asked for;
 *   deny       - 429 policy_denied, with the rule and the numbers behind it;
 *   challenge  - 428 challenge_required: retry with a proof of work of `bits`.
 *
 * The rules, in the order they are checked (the first that fails decides):
 *   1. quantity caps: units per line; units per sku, held or bought in a
 *      window, per customer, per fingerprint and per IP prefix; buy now
 *      (which holds nothing) stops here: it is a sale, and these caps are
 *      what limits buyers who pay;
 *   2. identity caps: active holds and held units per customer, IP prefix
 *      and fingerprint (a newcomer is counted as holding nothing);
 *   3. stock share: at most held_pct_max of a sku's stock in holds at once;
 *   4. newcomer pool: past pool_pct of a sku's stock held by identities that
 *      never bought, their lines of more than free_units are sold only
 *      outright;
 *   then the TTL is granted (cut by scarcity, never below the time the
 *   sku's buyers take to pay, and cut by risk), and
 *   5. hold budget: units x TTL, in unit-seconds per identity, refilled over
 *      time;
 *   6. challenge: proof of work priced by units x scarcity x identity risk,
 *      last, so that no one pays for a hold a rule would refuse (nor for one
 *      the stock cannot cover: that is the engine's 409). A proof pays up to
 *      the price it was issued at.
 *
 * Each policy can be switched off (an `enabled` setting, held_pct_max 100 for
 * the stock share, ttl.adaptive 0 for a fixed TTL), so that a shop, a test or
 * the simulator's "naive" shop can run with exactly the defenses it wants.
 */
#ifndef HF_POLICY_H
#define HF_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_limits.h"

/* The settings, in one table so that defaults, ranges, the JSON document and
 * the documentation can never drift apart. Columns: section, key, default,
 * min, max, whether a sku may override it. The journal and snapshots store
 * a policy as its values in this order: a new setting goes at the end, so
 * that a policy written before it was added reads back (with its default). */
#define POLICY_FIELDS(X)                                                                   \
    X(quantity, enabled, 1, 0, 1, 1)                                                       \
    X(quantity, line_qty_max, 10, 1, HF_QTY_MAX, 1)                                        \
    X(quantity, customer_sku_units_max, 10, 1, HF_QTY_MAX, 1)                              \
    X(quantity, customer_sku_window_ms, 86400000, 60000, 7LL * 86400000, 0)                \
    X(identity, enabled, 1, 0, 1, 0)                                                       \
    X(identity, customer_holds_max, 5, 1, 1000000, 0)                                      \
    X(identity, customer_units_max, 20, 1, HF_QTY_MAX, 0)                                  \
    X(identity, ip_prefix_holds_max, 200, 1, 1000000, 0)                                   \
    X(identity, ip_prefix_units_max, 400, 1, HF_QTY_MAX, 0)                                \
    X(identity, fingerprint_holds_max, 10, 1, 1000000, 0)                                  \
    X(identity, fingerprint_units_max, 40, 1, HF_QTY_MAX, 0)                               \
    X(identity, ipv4_prefix_bits, 24, 8, 32, 0)                                            \
    X(identity, ipv6_prefix_bits, 56, 16, 128, 0)                                          \
    X(budget, enabled, 1, 0, 1, 0)                                                         \
    X(budget, customer_unit_s, 12000, 1, 1000000000, 0)                                    \
    X(budget, ip_prefix_unit_s, 480000, 1, 1000000000, 0)                                  \
    X(budget, fingerprint_unit_s, 24000, 1, 1000000000, 0)                                 \
    X(budget, refill_ms, 3600000, 60000, 7LL * 86400000, 0)                                \
    X(hold_share, held_pct_max, 80, 0, 100, 1)                                             \
    X(ttl, adaptive, 1, 0, 1, 1)                                                           \
    X(ttl, default_ms, 600000, HF_TTL_MS_MIN, HF_TTL_MS_MAX, 1)                            \
    X(ttl, max_ms, 1800000, HF_TTL_MS_MIN, HF_TTL_MS_MAX, 1)                               \
    X(ttl, scarce_ms, 120000, HF_TTL_MS_MIN, HF_TTL_MS_MAX, 1)                             \
    X(ttl, plenty_pct, 50, 1, 100, 1)                                                      \
    X(ttl, scarce_pct, 5, 0, 99, 1)                                                        \
    X(ttl, life_max_ms, 1800000, HF_TTL_MS_MIN, HF_TTL_MS_MAX, 1)                          \
    X(reputation, enabled, 1, 0, 1, 0)                                                     \
    X(reputation, half_life_ms, 21600000, 60000, 30LL * 86400000, 0)                       \
    X(reputation, min_holds, 5, 1, 1000000, 0)                                             \
    X(reputation, suspect_pct, 25, 0, 100, 0)                                              \
    X(reputation, baseline_conversion_pct, 30, 1, 100, 0)                                  \
    X(challenge, enabled, 1, 0, 1, 1)                                                      \
    X(challenge, free_units, 2, 0, HF_QTY_MAX, 1)                                          \
    X(challenge, base_bits, 10, 1, 32, 1)                                                  \
    X(challenge, bits_max, 22, 1, 32, 1)                                                   \
    X(challenge, risk_bits, 6, 0, 16, 0)                                                   \
    X(challenge, ttl_ms, 120000, 1000, 3600000, 0)                                         \
    X(waitlist, enabled, 1, 0, 1, 1)                                                       \
    X(waitlist, offer_ttl_ms, 120000, HF_TTL_MS_MIN, HF_TTL_MS_MAX, 1)                     \
    X(escalation, enabled, 1, 0, 1, 1)                                                     \
    X(escalation, window_ms, 300000, 60000, 3600000, 0)                                    \
    X(escalation, min_holds, 50, 1, 1000000, 1)                                            \
    X(escalation, conversion_pct, 25, 0, 100, 1)                                           \
    X(escalation, available_pct, 20, 0, 100, 1)                                            \
    X(escalation, recover_pct, 60, 0, 100, 1)                                              \
    X(escalation, ttl_ms, 60000, HF_TTL_MS_MIN, HF_TTL_MS_MAX, 1)                          \
    X(escalation, held_pct_max, 0, 0, 100, 1)                                              \
    X(quantity, fingerprint_sku_units_max, 4, 1, HF_QTY_MAX, 1)                            \
    X(quantity, ip_prefix_sku_units_max, 400, 1, HF_QTY_MAX, 1)                            \
    X(newcomer, enabled, 1, 0, 1, 1)                                                       \
    X(newcomer, pool_pct, 25, 0, 100, 1)                                                   \
    X(newcomer, free_units, 2, 0, HF_QTY_MAX, 1)                                           \
    X(ttl, pay_floor, 1, 0, 1, 1)                                                          \
    X(reclaim, enabled, 1, 0, 1, 1)                                                        \
    X(reclaim, pay_pct, 95, 50, 100, 0)                                                    \
    X(reclaim, floor_ms, 120000, HF_TTL_MS_MIN, HF_TTL_MS_MAX, 1)                          \
    X(reclaim, min_commits, 20, 1, 1000000, 0)                                             \
    X(reclaim, window_ms, 3600000, 60000, 7LL * 86400000, 0)                               \
    X(escalation, newcomer_held_pct, 60, 1, 100, 1)

/* A policy that stored fewer settings than this build has (an older one):
 * the missing ones, at the end of the table, take their defaults. */
#define POLICY_FIELD_COUNT_MIN 47

typedef struct {
#define POLICY_FIELD_MEMBER(section, key, def, lo, hi, sku) int64_t section##_##key;
    POLICY_FIELDS(POLICY_FIELD_MEMBER)
#undef POLICY_FIELD_MEMBER
} policy_config_t;

typedef enum {
#define POLICY_FIELD_ENUM(section, key, def, lo, hi, sku) POLICY_F_##section##_##key,
    POLICY_FIELDS(POLICY_FIELD_ENUM)
#undef POLICY_FIELD_ENUM
        POLICY_FIELD_COUNT
} policy_field_t;

typedef struct {
    const char *section, *key;
    int64_t def, min, max;
    bool sku; /* a sku's own policy may set it */
} policy_field_info_t;

const policy_field_info_t *policy_field_info(policy_field_t f);
int64_t *policy_field_ptr(policy_config_t *c, policy_field_t f);
int64_t policy_field_get(const policy_config_t *c, policy_field_t f);

policy_config_t policy_config_default(void);
/* Ranges and the relations between fields (scarce_ms <= max_ms ...). On
 * failure names the offending field in *field_out and returns false. */
bool policy_config_valid(const policy_config_t *c, policy_field_t *field_out);

/* The rules a denial or a challenge names, in one table. */
#define POLICY_RULES(X)                                                                    \
    X(POLICY_RULE_NONE, "none")                                                            \
    X(POLICY_RULE_LINE_QTY, "line_qty")                                                    \
    X(POLICY_RULE_CUSTOMER_UNITS_PER_SKU, "customer_units_per_sku")                        \
    X(POLICY_RULE_CUSTOMER_HOLDS, "customer_holds")                                        \
    X(POLICY_RULE_CUSTOMER_UNITS, "customer_units")                                        \
    X(POLICY_RULE_IP_PREFIX_HOLDS, "ip_prefix_holds")                                      \
    X(POLICY_RULE_IP_PREFIX_UNITS, "ip_prefix_units")                                      \
    X(POLICY_RULE_FINGERPRINT_HOLDS, "fingerprint_holds")                                  \
    X(POLICY_RULE_FINGERPRINT_UNITS, "fingerprint_units")                                  \
    X(POLICY_RULE_HOLD_SHARE, "hold_share")                                                \
    X(POLICY_RULE_CUSTOMER_BUDGET, "customer_budget")                                      \
    X(POLICY_RULE_IP_PREFIX_BUDGET, "ip_prefix_budget")                                    \
    X(POLICY_RULE_FINGERPRINT_BUDGET, "fingerprint_budget")                                \
    X(POLICY_RULE_SCARCITY_CHALLENGE, "scarcity_challenge")                                \
    X(POLICY_RULE_ESCALATION_CHALLENGE, "escalation_challenge")                            \
    X(POLICY_RULE_FINGERPRINT_UNITS_PER_SKU, "fingerprint_units_per_sku")                  \
    X(POLICY_RULE_IP_PREFIX_UNITS_PER_SKU, "ip_prefix_units_per_sku")                      \
    X(POLICY_RULE_NEWCOMER_POOL, "newcomer_pool")

typedef enum {
#define POLICY_RULE_ENUM(name, text) name,
    POLICY_RULES(POLICY_RULE_ENUM)
#undef POLICY_RULE_ENUM
        POLICY_RULE_COUNT
} policy_rule_t;

const char *policy_rule_name(policy_rule_t r);

/* ---- identities ---- */

typedef enum {
    POLICY_ID_CUSTOMER = 0,
    POLICY_ID_IP_PREFIX = 1,
    POLICY_ID_FINGERPRINT = 2,
    POLICY_ID_KINDS = 3,
} policy_id_kind_t;

const char *policy_id_kind_name(policy_id_kind_t k);
bool policy_id_kind_parse(const char *text, size_t len, policy_id_kind_t *out);

/* "203.0.113.0/24" or "2001:db8:1200::/56" from an address literal, with the
 * configured prefix lengths. False if ip is not an address. out holds at
 * least POLICY_IP_PREFIX_TEXT_MAX bytes. */
#define POLICY_IP_PREFIX_TEXT_MAX 64
bool policy_ip_prefix(const char *ip, const policy_config_t *c, char *out, uint8_t *len_out);

/* What the guard knows of one identity, brought up to now. */
typedef struct {
    bool present;
    uint32_t holds_active;
    int64_t units_held;
    double budget_unit_ms; /* tokens left, refilled to now */
    double started, committed; /* decayed counts of holds started and committed */
} policy_identity_t;

/* Token bucket: the budget an identity has at now_ms, given what it had at
 * at_ms. A newcomer starts full. */
double policy_budget_refill(const policy_config_t *c, policy_id_kind_t kind, double tokens,
                            int64_t at_ms, int64_t now_ms);
double policy_budget_capacity_unit_ms(const policy_config_t *c, policy_id_kind_t kind);
/* Exponential decay by the reputation half-life. */
double policy_decay(const policy_config_t *c, double value, int64_t at_ms, int64_t now_ms);
/* 0 (trusted or new) .. 1 (converts far below the shop): how suspect an
 * identity is, given the shop's own decayed conversion. */
double policy_risk(const policy_config_t *c, const policy_identity_t *id, double shop_started,
                   double shop_committed);

/* ---- one sku line of a request ---- */

typedef struct {
    const policy_config_t *config; /* the sku's effective policy */
    bool escalated;
    int64_t stock, held, available;
    uint32_t qty;
    /* Each identity's units on the sku: held now plus bought in its window
     * (buy now included), and how long until those bought are forgotten. */
    int64_t id_units[POLICY_ID_KINDS];
    int64_t id_window_left_ms[POLICY_ID_KINDS];
    int64_t newcomer_held; /* units held on it by identities that never bought */
    int64_t pay_ms;        /* how long its buyers take to pay (0: not known yet) */
} policy_line_t;

/* The TTL a sku grants at this availability: default_ms while at least
 * plenty_pct is available, scarce_ms at scarce_pct or less, linear between;
 * default_ms always when ttl.adaptive is off. */
int64_t policy_scarcity_ttl_ms(const policy_config_t *c, int64_t stock, int64_t available);
/* The same, but with ttl.pay_floor never below pay_ms, the time the sku's
 * buyers take to pay (0: not known), nor above default_ms: a cart that is
 * paid at the usual pace is not given back to open sale because stock ran
 * low while it was being paid for. */
int64_t policy_line_ttl_ms(const policy_config_t *c, int64_t stock, int64_t available,
                           int64_t pay_ms);
/* The longest TTL a request may ask for at this availability: max_ms while
 * plenty is left, down to scarce_ms, as above. */
int64_t policy_scarcity_ttl_max_ms(const policy_config_t *c, int64_t stock, int64_t available);
/* The challenge price of a line, in bits (0: free). */
uint32_t policy_line_bits(const policy_line_t *l, double risk);

typedef struct {
    const policy_config_t *global;
    int64_t now_ms;
    int64_t ttl_ms_requested; /* 0: none asked for */
    bool buy_now;
    /* A good, unused proof issued for this request: the price (bits) it was
     * issued at; 0: none. It pays a challenge up to that price. */
    uint32_t proof_bits;
    /* None of the request's customer and fingerprint has ever bought. */
    bool newcomer;
    policy_identity_t ids[POLICY_ID_KINDS];
    double shop_started, shop_committed;
    uint16_t line_count;
    policy_line_t lines[HF_LINES_PER_HOLD_MAX];
} policy_hold_input_t;

typedef enum {
    POLICY_ALLOW = 0,
    POLICY_DENY = 1,
    POLICY_CHALLENGE = 2,
} policy_verdict_t;

typedef struct {
    policy_verdict_t verdict;
    policy_rule_t rule;
    int64_t limit, current;
    int64_t retry_after_ms; /* -1: waiting does not help */
    uint16_t line_index;    /* the line a per-sku rule is about */
    uint32_t bits;          /* the proof's difficulty (0: none needed) */
    int64_t ttl_ms;         /* ALLOW: the TTL granted */
    double cost_unit_ms;    /* ALLOW: what the budget is charged */
    double risk;
} policy_decision_t;

policy_decision_t policy_decide_hold(const policy_hold_input_t *in);

/* The TTL an extension may have: capped so that the hold's whole life stays
 * within life_max_ms, and by policy_scarcity_ttl_max_ms(). */
int64_t policy_extend_ttl_ms(const policy_config_t *c, int64_t ttl_ms_requested,
                             int64_t created_ms, int64_t now_ms, int64_t stock,
                             int64_t available);

/* The highest risk among a request's identities. */
double policy_identities_risk(const policy_config_t *c,
                              const policy_identity_t ids[POLICY_ID_KINDS], double shop_started,
                              double shop_committed);

/* A waitlist offer of `units` for ttl_ms to the identities that joined:
 * the identity caps and budgets a hold would meet (the shop grants offers in
 * order, so share and challenge do not apply); denied, the entry's turn is
 * over and the next is served. */
policy_decision_t policy_decide_offer(const policy_config_t *c,
                                      const policy_identity_t ids[POLICY_ID_KINDS],
                                      int64_t units, int64_t ttl_ms, double risk);

/* An extension that adds cost_unit_ms to a hold: denied only by the budgets
 * of the identities it names. */
policy_decision_t policy_decide_extend(const policy_config_t *c,
                                       const policy_identity_t ids[POLICY_ID_KINDS],
                                       double cost_unit_ms);

/* ---- automatic escalation ---- */
/* What escalation watches on a sku: its recent holds and commits (decayed),
 * the shop's, its stock and availability, and the units held on it by
 * identities that never bought. */
typedef struct {
    double started, committed;
    double shop_started, shop_committed;
    int64_t stock, available;
    int64_t newcomer_held;
} policy_sku_signal_t;

/* Whether a sku should be escalated; `escalated` is its current state
 * (hysteresis). It escalates when its availability collapses while it is
 * busy (min_holds recent holds, or newcomer_held_pct of its stock in carts
 * of identities that never bought) and converts far below the shop. */
bool policy_escalate(const policy_config_t *c, bool escalated, const policy_sku_signal_t *sig);

#endif
