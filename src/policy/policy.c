/*
 * policy.c - the defenses' decisions (see policy.h). Pure: every input is an
 * argument, so the server and the simulator decide alike.
 */
#include "policy.h"

#include <arpa/inet.h>
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static const policy_field_info_t field_infos[POLICY_FIELD_COUNT] = {
#define POLICY_FIELD_INFO(section, key, def, lo, hi, sku) {#section, #key, def, lo, hi, sku},
    POLICY_FIELDS(POLICY_FIELD_INFO)
#undef POLICY_FIELD_INFO
};

const policy_field_info_t *policy_field_info(policy_field_t f)
{
    assert(f < POLICY_FIELD_COUNT);
    return &field_infos[f];
}

/* The config is a struct of int64_t in table order, so a field is an index. */
int64_t *policy_field_ptr(policy_config_t *c, policy_field_t f)
{
    assert(f < POLICY_FIELD_COUNT);
    _Static_assert(sizeof(policy_config_t) == POLICY_FIELD_COUNT * sizeof(int64_t),
                   "policy_config_t is the field table, nothing else");
    _Static_assert(POLICY_FIELD_COUNT <= 64, "a sku's settings are a 64-bit mask");
    _Static_assert(POLICY_FIELD_COUNT_MIN <= POLICY_FIELD_COUNT, "settings are only added");
    return (int64_t *)c + f;
}

int64_t policy_field_get(const policy_config_t *c, policy_field_t f)
{
    assert(f < POLICY_FIELD_COUNT);
    return ((const int64_t *)c)[f];
}

policy_config_t policy_config_default(void)
{
    policy_config_t c;
    for (int f = 0; f < POLICY_FIELD_COUNT; f++) {
        *policy_field_ptr(&c, (policy_field_t)f) = field_infos[f].def;
    }
    return c;
}

bool policy_config_valid(const policy_config_t *c, policy_field_t *field_out)
{
    for (int f = 0; f < POLICY_FIELD_COUNT; f++) {
        int64_t v = policy_field_get(c, (policy_field_t)f);
        if (v < field_infos[f].min || v > field_infos[f].max) {
            *field_out = (policy_field_t)f;
            return false;
        }
    }
    /* Relations: a scarce TTL above the default would reward scarcity. */
    if (c->ttl_default_ms > c->ttl_max_ms) {
        *field_out = POLICY_F_ttl_default_ms;
        return false;
    }
    if (c->ttl_scarce_ms > c->ttl_default_ms) {
        *field_out = POLICY_F_ttl_scarce_ms;
        return false;
    }
    if (c->ttl_scarce_pct >= c->ttl_plenty_pct) {
        *field_out = POLICY_F_ttl_scarce_pct;
        return false;
    }
    if (c->challenge_base_bits > c->challenge_bits_max) {
        *field_out = POLICY_F_challenge_base_bits;
        return false;
    }
    if (c->escalation_recover_pct < c->escalation_conversion_pct) {
        *field_out = POLICY_F_escalation_recover_pct;
        return false;
    }
    return true;
}

static const char *const rule_names[POLICY_RULE_COUNT] = {
#define POLICY_RULE_NAME(name, text) text,
    POLICY_RULES(POLICY_RULE_NAME)
#undef POLICY_RULE_NAME
};

const char *policy_rule_name(policy_rule_t r)
{
    assert(r < POLICY_RULE_COUNT);
    return rule_names[r];
}

/* ------------------------------------------------------------ identities */

static const char *const id_kind_names[POLICY_ID_KINDS] = {"customer", "ip_prefix",
                                                           "fingerprint"};

const char *policy_id_kind_name(policy_id_kind_t k)
{
    assert(k < POLICY_ID_KINDS);
    return id_kind_names[k];
}

bool policy_id_kind_parse(const char *text, size_t len, policy_id_kind_t *out)
{
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        if (strlen(id_kind_names[k]) == len && memcmp(id_kind_names[k], text, len) == 0) {
            *out = (policy_id_kind_t)k;
            return true;
        }
    }
    return false;
}

/* Zeroes every bit of addr past the first `bits`. */
static void mask_bits(uint8_t *addr, size_t size, unsigned bits)
{
    for (size_t i = 0; i < size; i++) {
        unsigned keep = bits >= 8 * (i + 1) ? 8 : bits > 8 * i ? bits - 8 * (unsigned)i : 0;
        addr[i] &= (uint8_t)(0xff00u >> keep);
    }
}

static size_t put_decimal(char *out, unsigned v)
{
    char digits[4];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    for (size_t i = 0; i < n; i++) {
        out[i] = digits[n - 1 - i];
    }
    return n;
}

/* "a.b.c.d/bits", as inet_ntop and printf would write it. */
static uint8_t format_v4_prefix(const uint8_t addr[4], unsigned bits, char *out)
{
    size_t n = 0;
    for (int i = 0; i < 4; i++) {
        n += put_decimal(out + n, addr[i]);
        out[n++] = i < 3 ? '.' : '/';
    }
    n += put_decimal(out + n, bits);
    out[n] = '\0';
    assert(n < POLICY_IP_PREFIX_TEXT_MAX);
    return (uint8_t)n;
}

bool policy_ip_prefix(const char *ip, const policy_config_t *c, char *out, uint8_t *len_out)
{
    uint8_t addr[16];
    char text[INET6_ADDRSTRLEN];
    int family = strchr(ip, ':') != NULL ? AF_INET6 : AF_INET;
    if (inet_pton(family, ip, addr) != 1) {
        return false;
    }
    static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (family == AF_INET6 && memcmp(addr, v4_mapped, sizeof v4_mapped) == 0) {
        /* ::ffff:a.b.c.d is an IPv4 client seen through a dual-stack socket:
         * its network is the IPv4 one, not the (all-zero) first 56 bits. */
        memmove(addr, addr + 12, 4);
        family = AF_INET;
    }
    unsigned bits = (unsigned)(family == AF_INET ? c->identity_ipv4_prefix_bits
                                                 : c->identity_ipv6_prefix_bits);
    mask_bits(addr, family == AF_INET ? 4 : 16, bits);
    if (family == AF_INET) {
        *len_out = format_v4_prefix(addr, bits, out); /* every hold: no printf */
        return true;
    }
    if (inet_ntop(family, addr, text, sizeof text) == NULL) {
        return false;
    }
    int n = snprintf(out, POLICY_IP_PREFIX_TEXT_MAX, "%s/%u", text, bits);
    assert(n > 0 && n < POLICY_IP_PREFIX_TEXT_MAX);
    *len_out = (uint8_t)n;
    return true;
}

/* --------------------------------------------------- budgets, reputation */

double policy_budget_capacity_unit_ms(const policy_config_t *c, policy_id_kind_t kind)
{
    int64_t unit_s = kind == POLICY_ID_CUSTOMER    ? c->budget_customer_unit_s
                     : kind == POLICY_ID_IP_PREFIX ? c->budget_ip_prefix_unit_s
                                                   : c->budget_fingerprint_unit_s;
    return (double)unit_s * 1000.0;
}

double policy_budget_refill(const policy_config_t *c, policy_id_kind_t kind, double tokens,
                            int64_t at_ms, int64_t now_ms)
{
    double capacity = policy_budget_capacity_unit_ms(c, kind);
    if (now_ms > at_ms) {
        tokens += capacity * (double)(now_ms - at_ms) / (double)c->budget_refill_ms;
    }
    return tokens > capacity ? capacity : tokens;
}

double policy_decay(const policy_config_t *c, double value, int64_t at_ms, int64_t now_ms)
{
    if (now_ms <= at_ms || value == 0.0) {
        return value;
    }
    return value * exp2(-(double)(now_ms - at_ms) / (double)c->reputation_half_life_ms);
}

/* The conversion taken as normal: the shop's own, but never below the
 * baseline, so that an attack big enough to drag the shop's rate down
 * cannot make itself look normal. A shop whose buyers convert less than the
 * default baseline lowers reputation.baseline_conversion_pct. */
static double shop_conversion(const policy_config_t *c, double started, double committed)
{
    double baseline = (double)c->reputation_baseline_conversion_pct / 100.0;
    if (started < (double)c->reputation_min_holds) {
        return baseline; /* too little history to know the shop's own rate */
    }
    double conv = committed / started;
    return conv > baseline ? conv : baseline;
}

double policy_risk(const policy_config_t *c, const policy_identity_t *id, double shop_started,
                   double shop_committed)
{
    if (!c->reputation_enabled || !id->present || id->started < (double)c->reputation_min_holds ||
        c->reputation_suspect_pct == 0) {
        return 0.0; /* a newcomer is not suspect */
    }
    double ratio = (id->committed / id->started) /
                   shop_conversion(c, shop_started, shop_committed);
    double suspect = (double)c->reputation_suspect_pct / 100.0;
    if (ratio >= suspect) {
        return 0.0;
    }
    return 1.0 - ratio / suspect;
}

/* ----------------------------------------------------------- per sku line */

/* 1 while at least plenty_pct of the stock is available, 0 at scarce_pct or
 * less, linear between; 1 always when the TTL is not adaptive. */
static double plenty(const policy_config_t *c, int64_t stock, int64_t available)
{
    if (!c->ttl_adaptive) {
        return 1.0;
    }
    if (stock <= 0) {
        return 0.0;
    }
    double pct = 100.0 * (double)available / (double)stock;
    if (pct >= (double)c->ttl_plenty_pct) {
        return 1.0;
    }
    if (pct <= (double)c->ttl_scarce_pct) {
        return 0.0;
    }
    return (pct - (double)c->ttl_scarce_pct) / (double)(c->ttl_plenty_pct - c->ttl_scarce_pct);
}

int64_t policy_scarcity_ttl_ms(const policy_config_t *c, int64_t stock, int64_t available)
{
    double f = plenty(c, stock, available);
    return c->ttl_scarce_ms + (int64_t)(f * (double)(c->ttl_default_ms - c->ttl_scarce_ms));
}

int64_t policy_line_ttl_ms(const policy_config_t *c, int64_t stock, int64_t available,
                           int64_t pay_ms)
{
    int64_t ttl_ms = policy_scarcity_ttl_ms(c, stock, available);
    if (c->ttl_pay_floor && pay_ms > ttl_ms) {
        ttl_ms = pay_ms < c->ttl_default_ms ? pay_ms : c->ttl_default_ms;
    }
    return ttl_ms;
}

int64_t policy_scarcity_ttl_max_ms(const policy_config_t *c, int64_t stock, int64_t available)
{
    double f = plenty(c, stock, available);
    return c->ttl_scarce_ms + (int64_t)(f * (double)(c->ttl_max_ms - c->ttl_scarce_ms));
}

/* How much scarcer than "plenty" a sku is: 1 while plenty is left, rising to
 * 16 as the last units go. */
static double scarcity_factor(const policy_config_t *c, int64_t stock, int64_t available)
{
    if (stock <= 0 || available <= 0) {
        return 16.0;
    }
    double left = (double)available / (double)stock;
    double plenty = (double)c->ttl_plenty_pct / 100.0;
    if (left >= plenty) {
        return 1.0;
    }
    double f = plenty / left;
    return f > 16.0 ? 16.0 : f;
}

uint32_t policy_line_bits(const policy_line_t *l, double risk)
{
    const policy_config_t *c = l->config;
    if (!c->challenge_enabled) {
        return 0;
    }
    double cost = (double)l->qty * scarcity_factor(c, l->stock, l->available);
    double free_units = (double)c->challenge_free_units;
    double risk_bits = risk * (double)c->challenge_risk_bits;
    if (cost <= free_units && risk_bits < 1.0 && !l->escalated) {
        return 0; /* one unit of a plentiful item from a trusted buyer is free */
    }
    double over = cost / (free_units > 1.0 ? free_units : 1.0);
    double bits = (double)c->challenge_base_bits + 2.0 * log2(over > 1.0 ? over : 1.0) +
                  risk_bits;
    bits = ceil(bits);
    return bits > (double)c->challenge_bits_max ? (uint32_t)c->challenge_bits_max
                                                : (uint32_t)bits;
}

int64_t policy_extend_ttl_ms(const policy_config_t *c, int64_t ttl_ms_requested,
                             int64_t created_ms, int64_t now_ms, int64_t stock,
                             int64_t available)
{
    int64_t ttl_ms = ttl_ms_requested;
    int64_t cap_ms = policy_scarcity_ttl_max_ms(c, stock, available);
    if (ttl_ms > cap_ms) {
        ttl_ms = cap_ms;
    }
    int64_t life_left_ms = created_ms + c->ttl_life_max_ms - now_ms;
    if (ttl_ms > life_left_ms) {
        ttl_ms = life_left_ms;
    }
    return ttl_ms > 0 ? ttl_ms : 0;
}

bool policy_escalate(const policy_config_t *c, bool escalated, const policy_sku_signal_t *sig)
{
    if (!c->escalation_enabled) {
        return false;
    }
    double shop = shop_conversion(c, sig->shop_started, sig->shop_committed);
    double conv = sig->started > 0.0 ? sig->committed / sig->started : shop;
    double ratio = conv / shop;
    /* Units in carts of identities that never bought, as a share of stock:
     * ten hoarders holding ten each are a hundred units, not ten holds. */
    bool hoarded = sig->started >= 1.0 &&
                   100 * sig->newcomer_held >= c->escalation_newcomer_held_pct * sig->stock;
    if (escalated) {
        /* Stay strict until buyers convert again; a quiet sku recovers too. */
        bool busy = sig->started >= (double)c->escalation_min_holds / 4.0 || hoarded;
        return busy && ratio < (double)c->escalation_recover_pct / 100.0;
    }
    bool collapsing =
        sig->stock > 0 && 100 * sig->available <= c->escalation_available_pct * sig->stock;
    bool busy = sig->started >= (double)c->escalation_min_holds || hoarded;
    return collapsing && busy && ratio < (double)c->escalation_conversion_pct / 100.0;
}

/* ------------------------------------------------------------- decisions */

static policy_decision_t deny(policy_rule_t rule, int64_t limit, int64_t current,
                              int64_t retry_after_ms)
{
    return (policy_decision_t){.verdict = POLICY_DENY, .rule = rule, .limit = limit,
                               .current = current, .retry_after_ms = retry_after_ms};
}

/* Suspects get caps cut by up to half; a cap never falls below one. */
static int64_t risk_cap(int64_t cap, double risk)
{
    int64_t cut = (int64_t)((double)cap * (1.0 - risk / 2.0));
    return cut < 1 ? 1 : cut;
}

/* Units per sku of one identity (held now plus bought in the window, buy
 * now included): the customer's, its fingerprint's and its address's. */
static bool check_line_quantity(const policy_line_t *l, const policy_identity_t *ids,
                                policy_decision_t *d)
{
    const policy_config_t *c = l->config;
    if (l->qty > c->quantity_line_qty_max) {
        *d = deny(POLICY_RULE_LINE_QTY, c->quantity_line_qty_max, l->qty, -1);
        return false;
    }
    const int64_t caps[POLICY_ID_KINDS] = {c->quantity_customer_sku_units_max,
                                           c->quantity_ip_prefix_sku_units_max,
                                           c->quantity_fingerprint_sku_units_max};
    static const policy_rule_t rules[POLICY_ID_KINDS] = {
        POLICY_RULE_CUSTOMER_UNITS_PER_SKU, POLICY_RULE_IP_PREFIX_UNITS_PER_SKU,
        POLICY_RULE_FINGERPRINT_UNITS_PER_SKU};
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        if (!ids[k].present || l->id_units[k] + l->qty <= caps[k]) {
            continue; /* a request that does not name it: no cap applies */
        }
        bool waiting_helps = l->id_window_left_ms[k] > 0 && l->qty <= caps[k];
        *d = deny(rules[k], caps[k], l->id_units[k], waiting_helps ? l->id_window_left_ms[k] : -1);
        return false;
    }
    return true;
}

static bool check_quantity(const policy_hold_input_t *in, policy_decision_t *d)
{
    for (uint16_t i = 0; i < in->line_count; i++) {
        const policy_line_t *l = &in->lines[i];
        if (l->config->quantity_enabled && !check_line_quantity(l, in->ids, d)) {
            d->line_index = i;
            return false;
        }
    }
    return true;
}

static bool check_identities(const policy_config_t *c, const policy_identity_t *ids,
                             int64_t units, double risk, policy_decision_t *d)
{
    if (!c->identity_enabled) {
        return true;
    }
    const int64_t holds_max[POLICY_ID_KINDS] = {c->identity_customer_holds_max,
                                                c->identity_ip_prefix_holds_max,
                                                c->identity_fingerprint_holds_max};
    const int64_t units_max[POLICY_ID_KINDS] = {c->identity_customer_units_max,
                                                c->identity_ip_prefix_units_max,
                                                c->identity_fingerprint_units_max};
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        const policy_identity_t *id = &ids[k];
        if (!id->present) {
            continue;
        }
        int64_t hmax = risk_cap(holds_max[k], risk), umax = risk_cap(units_max[k], risk);
        if (id->holds_active + 1 > hmax) {
            *d = deny((policy_rule_t)(POLICY_RULE_CUSTOMER_HOLDS + 2 * k), hmax,
                      id->holds_active, -1);
            return false;
        }
        if (id->units_held + units > umax) {
            *d = deny((policy_rule_t)(POLICY_RULE_CUSTOMER_UNITS + 2 * k), umax, id->units_held,
                      -1);
            return false;
        }
    }
    return true;
}

static int64_t line_held_pct_max(const policy_line_t *l)
{
    return l->escalated ? l->config->escalation_held_pct_max : l->config->hold_share_held_pct_max;
}

/* A line asking for more than is available is the engine's to refuse
 * (409 insufficient_stock), not a policy's. Any share above zero lets at
 * least one unit be held, so a seat (stock 1) can still go to a cart. */
static bool check_share(const policy_hold_input_t *in, policy_decision_t *d)
{
    for (uint16_t i = 0; i < in->line_count; i++) {
        const policy_line_t *l = &in->lines[i];
        int64_t pct = line_held_pct_max(l);
        int64_t limit = (pct * l->stock + 99) / 100;
        if (l->qty <= l->available && l->held + l->qty > limit) {
            *d = deny(POLICY_RULE_HOLD_SHARE, limit, l->held, -1);
            d->line_index = i;
            return false;
        }
    }
    return true;
}

/* Units held by identities that never bought are a shared pool of each
 * sku: past pool_pct of its stock, a newcomer's line of more than
 * free_units is sold only outright (buy now). One or two units, what an
 * ordinary buyer takes, are never refused here. */
static bool check_newcomer(const policy_hold_input_t *in, policy_decision_t *d)
{
    if (!in->newcomer) {
        return true;
    }
    for (uint16_t i = 0; i < in->line_count; i++) {
        const policy_line_t *l = &in->lines[i];
        const policy_config_t *c = l->config;
        int64_t limit = (c->newcomer_pool_pct * l->stock + 99) / 100;
        if (c->newcomer_enabled && l->qty > c->newcomer_free_units && l->qty <= l->available &&
            l->newcomer_held + l->qty > limit) {
            *d = deny(POLICY_RULE_NEWCOMER_POOL, limit, l->newcomer_held, -1);
            d->line_index = i;
            return false;
        }
    }
    return true;
}

/* The shortest TTL any line allows, then cut for a suspect identity. */
static int64_t granted_ttl_ms(const policy_hold_input_t *in, double risk)
{
    int64_t ttl_ms = HF_TTL_MS_MAX;
    for (uint16_t i = 0; i < in->line_count; i++) {
        const policy_line_t *l = &in->lines[i];
        int64_t line_ms = policy_line_ttl_ms(l->config, l->stock, l->available, l->pay_ms);
        if (in->ttl_ms_requested > 0) {
            int64_t cap_ms = policy_scarcity_ttl_max_ms(l->config, l->stock, l->available);
            line_ms = in->ttl_ms_requested < cap_ms ? in->ttl_ms_requested : cap_ms;
        }
        if (line_ms > l->config->ttl_max_ms) {
            line_ms = l->config->ttl_max_ms; /* whatever else the settings say */
        }
        if (l->escalated && line_ms > l->config->escalation_ttl_ms) {
            line_ms = l->config->escalation_ttl_ms;
        }
        ttl_ms = line_ms < ttl_ms ? line_ms : ttl_ms;
    }
    ttl_ms = (int64_t)((double)ttl_ms * (1.0 - risk / 2.0));
    return ttl_ms < HF_TTL_MS_MIN ? HF_TTL_MS_MIN : ttl_ms;
}

static bool check_budgets(const policy_config_t *c, const policy_identity_t *ids,
                          double cost_unit_ms, policy_decision_t *d)
{
    for (int k = 0; c->budget_enabled && k < POLICY_ID_KINDS; k++) {
        const policy_identity_t *id = &ids[k];
        if (!id->present || id->budget_unit_ms >= cost_unit_ms) {
            continue;
        }
        double capacity = policy_budget_capacity_unit_ms(c, (policy_id_kind_t)k);
        double per_ms = capacity / (double)c->budget_refill_ms;
        int64_t retry_ms =
            cost_unit_ms > capacity ? -1
                                    : (int64_t)ceil((cost_unit_ms - id->budget_unit_ms) / per_ms);
        *d = deny((policy_rule_t)(POLICY_RULE_CUSTOMER_BUDGET + k),
                  (int64_t)ceil(cost_unit_ms / 1000.0), (int64_t)(id->budget_unit_ms / 1000.0),
                  retry_ms);
        return false;
    }
    return true;
}

/* A proof pays up to the price it was issued at: if the price rose since,
 * the answer is a new challenge. A request of ordinary lines (free_units or
 * fewer each) is never asked twice. */
static bool proof_pays(const policy_hold_input_t *in, uint32_t bits)
{
    if (in->proof_bits == 0) {
        return false;
    }
    if (in->proof_bits >= bits) {
        return true;
    }
    for (uint16_t i = 0; i < in->line_count; i++) {
        if (in->lines[i].qty > in->lines[i].config->challenge_free_units) {
            return false;
        }
    }
    return true;
}

static bool check_challenge(const policy_hold_input_t *in, double risk, policy_decision_t *d)
{
    uint32_t bits = 0;
    bool escalated = false;
    for (uint16_t i = 0; i < in->line_count; i++) {
        if (in->lines[i].qty > in->lines[i].available) {
            d->bits = 0;
            return true; /* the engine refuses it (409): nothing to pay for */
        }
    }
    for (uint16_t i = 0; i < in->line_count; i++) {
        uint32_t b = policy_line_bits(&in->lines[i], risk);
        if (b > bits) {
            bits = b;
            escalated = in->lines[i].escalated;
            d->line_index = i;
        }
    }
    d->bits = bits; /* also when a proof pays for it: the guard spends it then */
    if (bits == 0 || proof_pays(in, bits)) {
        return true;
    }
    d->verdict = POLICY_CHALLENGE;
    d->rule = escalated ? POLICY_RULE_ESCALATION_CHALLENGE : POLICY_RULE_SCARCITY_CHALLENGE;
    d->limit = bits;
    d->current = 0;
    d->retry_after_ms = -1;
    return false;
}

static void decide_hold(const policy_hold_input_t *in, int64_t units, double risk,
                        policy_decision_t *d)
{
    if (!check_quantity(in, d)) {
        return;
    }
    if (in->buy_now) {
        d->ttl_ms = HF_TTL_MS_MIN; /* committed in the same step: holds nothing */
        return;
    }
    if (!check_identities(in->global, in->ids, units, risk, d) || !check_share(in, d) ||
        !check_newcomer(in, d)) {
        return;
    }
    d->ttl_ms = granted_ttl_ms(in, risk);
    d->cost_unit_ms = (double)units * (double)d->ttl_ms;
    if (check_budgets(in->global, in->ids, d->cost_unit_ms, d)) {
        (void)check_challenge(in, risk, d);
    }
}

policy_decision_t policy_decide_hold(const policy_hold_input_t *in)
{
    assert(in->line_count >= 1 && in->line_count <= HF_LINES_PER_HOLD_MAX);
    policy_decision_t d = {.verdict = POLICY_ALLOW, .rule = POLICY_RULE_NONE,
                           .retry_after_ms = -1};
    int64_t units = 0;
    double risk = 0.0;
    for (uint16_t i = 0; i < in->line_count; i++) {
        units += in->lines[i].qty;
    }
    risk = policy_identities_risk(in->global, in->ids, in->shop_started, in->shop_committed);
    decide_hold(in, units, risk, &d);
    d.risk = risk; /* also on a denial: the reply may say how suspect */
    return d;
}

double policy_identities_risk(const policy_config_t *c,
                              const policy_identity_t ids[POLICY_ID_KINDS], double shop_started,
                              double shop_committed)
{
    double risk = 0.0;
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        double r = policy_risk(c, &ids[k], shop_started, shop_committed);
        risk = r > risk ? r : risk;
    }
    return risk;
}

policy_decision_t policy_decide_offer(const policy_config_t *c,
                                      const policy_identity_t ids[POLICY_ID_KINDS],
                                      int64_t units, int64_t ttl_ms, double risk)
{
    policy_decision_t d = {.verdict = POLICY_ALLOW, .rule = POLICY_RULE_NONE,
                           .retry_after_ms = -1, .ttl_ms = ttl_ms, .risk = risk,
                           .cost_unit_ms = (double)units * (double)ttl_ms};
    if (check_identities(c, ids, units, risk, &d)) {
        check_budgets(c, ids, d.cost_unit_ms, &d);
    }
    d.risk = risk;
    return d;
}

policy_decision_t policy_decide_extend(const policy_config_t *c,
                                       const policy_identity_t ids[POLICY_ID_KINDS],
                                       double cost_unit_ms)
{
    policy_decision_t d = {.verdict = POLICY_ALLOW, .rule = POLICY_RULE_NONE,
                           .retry_after_ms = -1, .cost_unit_ms = cost_unit_ms};
    check_budgets(c, ids, cost_unit_ms, &d);
    return d;
}
