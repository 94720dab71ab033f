/*
 * test_policy.c - the defenses' decisions, as policy.h states them, at their
 * edges: the settings table and its relations, IP prefixes, budgets,
 * reputation, scarcity, challenge prices, the hold decision rule by rule and
 * in order, extensions and automatic escalation.
 *
 * Every function under test is pure, so each test builds its input, asks
 * once and checks the answer. No clock, no randomness: time is a number the
 * test picks. Where the arithmetic is simple the expected value is worked out
 * in a comment and asserted exactly; where it is not (logarithms, decay), the
 * test asserts the relations that the answer must keep.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the four headers above first. */
#include <cmocka.h>

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "policy.h"

/* Any instant far from zero, so that "created at 0" and "now" differ. */
#define NOW_MS INT64_C(1000000000)

/* Tolerance for doubles that went through exp2 or a division. */
#define EPSILON 1e-9
/* A proof issued at the highest price pays for any challenge. */
#define POW_PAID_BITS 32u

/* ------------------------------------------------------------- helpers */

static void check_near(double expected, double actual, double tolerance, const char *file, int line)
{
    if (!(fabs(expected - actual) <= tolerance)) {
        print_error("expected %.17g, got %.17g (tolerance %g)\n", expected, actual, tolerance);
        _fail(file, line);
    }
}
#define assert_near(expected, actual, tolerance)                                                   \
    check_near((expected), (actual), (tolerance), __FILE__, __LINE__)

static const char *verdict_name(policy_verdict_t v)
{
    return v == POLICY_ALLOW ? "allow" : v == POLICY_DENY ? "deny" : "challenge";
}

static void print_decision(const policy_decision_t *d)
{
    print_error("got %s rule=%s limit=%" PRId64 " current=%" PRId64 " retry_after_ms=%" PRId64
                " line_index=%u bits=%u ttl_ms=%" PRId64 " cost_unit_ms=%.17g risk=%.17g\n",
                verdict_name(d->verdict), policy_rule_name(d->rule), d->limit, d->current,
                d->retry_after_ms, (unsigned)d->line_index, (unsigned)d->bits, d->ttl_ms,
                d->cost_unit_ms, d->risk);
}

static void check_denied(policy_decision_t d, policy_rule_t rule, int64_t limit, int64_t current,
                         int64_t retry_after_ms, const char *file, int line)
{
    if (d.verdict != POLICY_DENY || d.rule != rule || d.limit != limit || d.current != current ||
        d.retry_after_ms != retry_after_ms) {
        print_error("expected deny rule=%s limit=%" PRId64 " current=%" PRId64
                    " retry_after_ms=%" PRId64 "\n",
                    policy_rule_name(rule), limit, current, retry_after_ms);
        print_decision(&d);
        _fail(file, line);
    }
}
#define assert_denied(d, rule, limit, current, retry_after_ms)                                     \
    check_denied((d), (rule), (limit), (current), (retry_after_ms), __FILE__, __LINE__)

static void check_allowed(policy_decision_t d, int64_t ttl_ms, const char *file, int line)
{
    if (d.verdict != POLICY_ALLOW || d.rule != POLICY_RULE_NONE || d.ttl_ms != ttl_ms) {
        print_error("expected allow with ttl_ms=%" PRId64 "\n", ttl_ms);
        print_decision(&d);
        _fail(file, line);
    }
}
#define assert_allowed(d, ttl_ms) check_allowed((d), (ttl_ms), __FILE__, __LINE__)

static void check_challenged(policy_decision_t d, policy_rule_t rule, uint32_t bits,
                             const char *file, int line)
{
    if (d.verdict != POLICY_CHALLENGE || d.rule != rule || d.bits != bits ||
        d.limit != (int64_t)bits || d.current != 0 || d.retry_after_ms != -1) {
        print_error("expected challenge rule=%s bits=%u\n", policy_rule_name(rule), bits);
        print_decision(&d);
        _fail(file, line);
    }
}
#define assert_challenged(d, rule, bits) check_challenged((d), (rule), (bits), __FILE__, __LINE__)

static const char *field_name(policy_field_t f, char *buf, size_t size)
{
    if (f >= POLICY_FIELD_COUNT) {
        snprintf(buf, size, "no field");
    } else {
        snprintf(buf, size, "%s.%s", policy_field_info(f)->section, policy_field_info(f)->key);
    }
    return buf;
}

static void check_invalid(const policy_config_t *c, policy_field_t want, const char *why,
                          const char *file, int line)
{
    policy_field_t bad = POLICY_FIELD_COUNT;
    bool valid = policy_config_valid(c, &bad);
    if (valid || bad != want) {
        char want_name[64], bad_name[64];
        print_error("%s %s: expected invalid naming it; valid=%d, named %s\n",
                    field_name(want, want_name, sizeof want_name), why, valid,
                    valid ? "nothing" : field_name(bad, bad_name, sizeof bad_name));
        _fail(file, line);
    }
}
#define assert_invalid_naming(c, field, why) check_invalid((c), (field), (why), __FILE__, __LINE__)

static void check_valid(const policy_config_t *c, const char *why, const char *file, int line)
{
    policy_field_t bad = POLICY_FIELD_COUNT;
    if (!policy_config_valid(c, &bad)) {
        char bad_name[64];
        print_error("%s: expected valid, rejected %s\n", why,
                    field_name(bad, bad_name, sizeof bad_name));
        _fail(file, line);
    }
}
#define assert_config_valid(c, why) check_valid((c), (why), __FILE__, __LINE__)

/* The defaults with the challenge switched off, so that a request that passes
 * every cap is simply allowed and the cap tests see nothing else; a device's
 * and an address's units per sku are tested on their own. */
static policy_config_t caps_config(void)
{
    policy_config_t c = policy_config_default();
    c.challenge_enabled = 0;
    c.quantity_fingerprint_sku_units_max = HF_QTY_MAX;
    c.quantity_ip_prefix_sku_units_max = HF_QTY_MAX;
    return c;
}

/* The defaults with a refill of 20 minutes: the customer's bucket then
 * refills 12e6 / 1.2e6 = 10 unit-ms per ms, the IP prefix's 400 and the
 * fingerprint's 20, all exact in binary, so retry times are exact. */
static policy_config_t budget_config(void)
{
    policy_config_t c = caps_config();
    c.budget_refill_ms = 1200000;
    return c;
}

/* An identity seen for the first time: present, nothing held, a full bucket,
 * no history. */
static policy_identity_t newcomer(const policy_config_t *c, policy_id_kind_t kind)
{
    return (policy_identity_t){.present = true,
                               .budget_unit_ms = policy_budget_capacity_unit_ms(c, kind)};
}

/* An identity that started `holds` holds and committed none of them. */
static policy_identity_t never_buys(const policy_config_t *c, policy_id_kind_t kind, double holds)
{
    policy_identity_t id = newcomer(c, kind);
    id.started = holds;
    return id;
}

/* A request from three newcomer identities for one unit of each of
 * `line_count` plentiful skus (stock 100, nothing held), asking no TTL. */
static void input_init(policy_hold_input_t *in, const policy_config_t *c, uint16_t line_count)
{
    memset(in, 0, sizeof *in);
    in->global = c;
    in->now_ms = NOW_MS;
    in->line_count = line_count;
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        in->ids[k] = newcomer(c, (policy_id_kind_t)k);
    }
    for (uint16_t i = 0; i < line_count; i++) {
        in->lines[i] = (policy_line_t){.config = c, .stock = 100, .available = 100, .qty = 1};
    }
}

static int64_t holds_max(const policy_config_t *c, policy_id_kind_t kind)
{
    return kind == POLICY_ID_CUSTOMER    ? c->identity_customer_holds_max
           : kind == POLICY_ID_IP_PREFIX ? c->identity_ip_prefix_holds_max
                                         : c->identity_fingerprint_holds_max;
}

static int64_t units_max(const policy_config_t *c, policy_id_kind_t kind)
{
    return kind == POLICY_ID_CUSTOMER    ? c->identity_customer_units_max
           : kind == POLICY_ID_IP_PREFIX ? c->identity_ip_prefix_units_max
                                         : c->identity_fingerprint_units_max;
}

static const policy_rule_t holds_rule[POLICY_ID_KINDS] = {
    POLICY_RULE_CUSTOMER_HOLDS, POLICY_RULE_IP_PREFIX_HOLDS, POLICY_RULE_FINGERPRINT_HOLDS};
static const policy_rule_t units_rule[POLICY_ID_KINDS] = {
    POLICY_RULE_CUSTOMER_UNITS, POLICY_RULE_IP_PREFIX_UNITS, POLICY_RULE_FINGERPRINT_UNITS};
static const policy_rule_t budget_rule[POLICY_ID_KINDS] = {
    POLICY_RULE_CUSTOMER_BUDGET, POLICY_RULE_IP_PREFIX_BUDGET, POLICY_RULE_FINGERPRINT_BUDGET};

/* ------------------------------------------------------ the settings table */

static void test_default_config_is_valid_and_is_the_field_tables_defaults(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    assert_config_valid(&c, "the defaults");
    for (int f = 0; f < POLICY_FIELD_COUNT; f++) {
        const policy_field_info_t *info = policy_field_info((policy_field_t)f);
        assert_non_null(info->section);
        assert_non_null(info->key);
        assert_true(info->min <= info->def && info->def <= info->max);
        assert_int_equal(policy_field_get(&c, (policy_field_t)f), info->def);
    }
    assert_string_equal(policy_field_info(POLICY_F_ttl_max_ms)->section, "ttl");
    assert_string_equal(policy_field_info(POLICY_F_ttl_max_ms)->key, "max_ms");
    assert_true(policy_field_info(POLICY_F_ttl_max_ms)->sku);
    assert_false(policy_field_info(POLICY_F_budget_refill_ms)->sku);
}

static void test_field_ptr_and_get_address_the_named_member(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    assert_ptr_equal(policy_field_ptr(&c, POLICY_F_quantity_line_qty_max),
                     &c.quantity_line_qty_max);
    assert_ptr_equal(policy_field_ptr(&c, POLICY_F_ttl_max_ms), &c.ttl_max_ms);
    assert_ptr_equal(policy_field_ptr(&c, POLICY_F_escalation_held_pct_max),
                     &c.escalation_held_pct_max);
    *policy_field_ptr(&c, POLICY_F_challenge_bits_max) = 17;
    assert_int_equal(c.challenge_bits_max, 17);
    assert_int_equal(policy_field_get(&c, POLICY_F_challenge_bits_max), 17);
}

static void test_config_rejects_each_field_one_below_its_min_naming_it(void **state)
{
    (void)state;
    for (int f = 0; f < POLICY_FIELD_COUNT; f++) {
        policy_config_t c = policy_config_default();
        *policy_field_ptr(&c, (policy_field_t)f) = policy_field_info((policy_field_t)f)->min - 1;
        assert_invalid_naming(&c, (policy_field_t)f, "at min - 1");
    }
}

static void test_config_rejects_each_field_one_above_its_max_naming_it(void **state)
{
    (void)state;
    for (int f = 0; f < POLICY_FIELD_COUNT; f++) {
        policy_config_t c = policy_config_default();
        *policy_field_ptr(&c, (policy_field_t)f) = policy_field_info((policy_field_t)f)->max + 1;
        assert_invalid_naming(&c, (policy_field_t)f, "at max + 1");
    }
}

static bool in_a_relation(policy_field_t f)
{
    return f == POLICY_F_ttl_default_ms || f == POLICY_F_ttl_max_ms ||
           f == POLICY_F_ttl_scarce_ms || f == POLICY_F_ttl_plenty_pct ||
           f == POLICY_F_ttl_scarce_pct || f == POLICY_F_challenge_base_bits ||
           f == POLICY_F_challenge_bits_max || f == POLICY_F_escalation_conversion_pct ||
           f == POLICY_F_escalation_recover_pct;
}

static void test_fields_in_no_relation_are_valid_at_both_ends_of_their_range(void **state)
{
    (void)state;
    char name[64];
    for (int f = 0; f < POLICY_FIELD_COUNT; f++) {
        if (in_a_relation((policy_field_t)f)) {
            continue;
        }
        const policy_field_info_t *info = policy_field_info((policy_field_t)f);
        policy_config_t c = policy_config_default();
        *policy_field_ptr(&c, (policy_field_t)f) = info->min;
        assert_config_valid(&c, field_name((policy_field_t)f, name, sizeof name));
        *policy_field_ptr(&c, (policy_field_t)f) = info->max;
        assert_config_valid(&c, field_name((policy_field_t)f, name, sizeof name));
    }
}

static void test_fields_in_a_relation_are_valid_at_the_end_that_keeps_it(void **state)
{
    (void)state;
    const policy_field_t low[] = {POLICY_F_ttl_scarce_ms, POLICY_F_ttl_scarce_pct,
                                  POLICY_F_challenge_base_bits, POLICY_F_escalation_conversion_pct};
    const policy_field_t high[] = {POLICY_F_ttl_max_ms, POLICY_F_ttl_plenty_pct,
                                   POLICY_F_challenge_bits_max, POLICY_F_escalation_recover_pct};
    char name[64];
    for (size_t i = 0; i < sizeof low / sizeof low[0]; i++) {
        policy_config_t c = policy_config_default();
        *policy_field_ptr(&c, low[i]) = policy_field_info(low[i])->min;
        assert_config_valid(&c, field_name(low[i], name, sizeof name));
    }
    for (size_t i = 0; i < sizeof high / sizeof high[0]; i++) {
        policy_config_t c = policy_config_default();
        *policy_field_ptr(&c, high[i]) = policy_field_info(high[i])->max;
        assert_config_valid(&c, field_name(high[i], name, sizeof name));
    }
}

static void test_config_rejects_scarce_ttl_above_default_naming_scarce_ms(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    c.ttl_scarce_ms = c.ttl_default_ms;
    assert_config_valid(&c, "scarce_ms == default_ms");
    c.ttl_scarce_ms = c.ttl_default_ms + 1;
    assert_invalid_naming(&c, POLICY_F_ttl_scarce_ms, "one above default_ms");
}

static void test_config_rejects_default_ttl_above_max_naming_default_ms(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    c.ttl_default_ms = c.ttl_max_ms;
    assert_config_valid(&c, "default_ms == max_ms");
    c.ttl_default_ms = c.ttl_max_ms + 1;
    assert_invalid_naming(&c, POLICY_F_ttl_default_ms, "one above max_ms");
}

static void test_config_rejects_scarce_pct_at_or_above_plenty_naming_scarce_pct(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    c.ttl_scarce_pct = c.ttl_plenty_pct - 1;
    assert_config_valid(&c, "scarce_pct one below plenty_pct");
    c.ttl_scarce_pct = c.ttl_plenty_pct;
    assert_invalid_naming(&c, POLICY_F_ttl_scarce_pct, "equal to plenty_pct");
    c.ttl_scarce_pct = c.ttl_plenty_pct + 1;
    assert_invalid_naming(&c, POLICY_F_ttl_scarce_pct, "above plenty_pct");
}

static void test_config_rejects_base_bits_above_bits_max_naming_base_bits(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    c.challenge_base_bits = c.challenge_bits_max;
    assert_config_valid(&c, "base_bits == bits_max");
    c.challenge_base_bits = c.challenge_bits_max + 1;
    assert_invalid_naming(&c, POLICY_F_challenge_base_bits, "one above bits_max");
}

static void test_config_rejects_recover_below_conversion_naming_recover_pct(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    c.escalation_recover_pct = c.escalation_conversion_pct;
    assert_config_valid(&c, "recover_pct == conversion_pct");
    c.escalation_recover_pct = c.escalation_conversion_pct - 1;
    assert_invalid_naming(&c, POLICY_F_escalation_recover_pct, "one below conversion_pct");
}

static void test_rule_names_are_the_wire_strings_and_unique(void **state)
{
    (void)state;
    assert_string_equal(policy_rule_name(POLICY_RULE_NONE), "none");
    assert_string_equal(policy_rule_name(POLICY_RULE_LINE_QTY), "line_qty");
    assert_string_equal(policy_rule_name(POLICY_RULE_CUSTOMER_UNITS_PER_SKU),
                        "customer_units_per_sku");
    assert_string_equal(policy_rule_name(POLICY_RULE_IP_PREFIX_HOLDS), "ip_prefix_holds");
    assert_string_equal(policy_rule_name(POLICY_RULE_FINGERPRINT_UNITS), "fingerprint_units");
    assert_string_equal(policy_rule_name(POLICY_RULE_HOLD_SHARE), "hold_share");
    assert_string_equal(policy_rule_name(POLICY_RULE_FINGERPRINT_BUDGET), "fingerprint_budget");
    assert_string_equal(policy_rule_name(POLICY_RULE_SCARCITY_CHALLENGE), "scarcity_challenge");
    assert_string_equal(policy_rule_name(POLICY_RULE_ESCALATION_CHALLENGE), "escalation_challenge");
    for (int a = 0; a < POLICY_RULE_COUNT; a++) {
        assert_true(strlen(policy_rule_name((policy_rule_t)a)) > 0);
        for (int b = a + 1; b < POLICY_RULE_COUNT; b++) {
            assert_string_not_equal(policy_rule_name((policy_rule_t)a),
                                    policy_rule_name((policy_rule_t)b));
        }
    }
}

static void test_id_kind_names_round_trip_and_near_misses_are_rejected(void **state)
{
    (void)state;
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        const char *name = policy_id_kind_name((policy_id_kind_t)k);
        policy_id_kind_t parsed = POLICY_ID_KINDS;
        assert_true(policy_id_kind_parse(name, strlen(name), &parsed));
        assert_int_equal(parsed, k);
    }
    assert_string_equal(policy_id_kind_name(POLICY_ID_IP_PREFIX), "ip_prefix");
    policy_id_kind_t out = POLICY_ID_KINDS;
    assert_false(policy_id_kind_parse("custom", 6, &out));
    assert_false(policy_id_kind_parse("customers", 9, &out));
    assert_false(policy_id_kind_parse("Customer", 8, &out));
    assert_false(policy_id_kind_parse("", 0, &out));
    assert_int_equal(out, POLICY_ID_KINDS);
}

/* ------------------------------------------------------------ IP prefixes */

static void expect_prefix(const policy_config_t *c, const char *ip, const char *want)
{
    char out[POLICY_IP_PREFIX_TEXT_MAX];
    uint8_t len = 0;
    memset(out, 'x', sizeof out);
    assert_true(policy_ip_prefix(ip, c, out, &len));
    assert_string_equal(out, want);
    assert_int_equal(len, strlen(want));
}

static void test_ipv4_prefix_masks_to_slash_24_by_default(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    expect_prefix(&c, "203.0.113.7", "203.0.113.0/24");
    expect_prefix(&c, "203.0.113.255", "203.0.113.0/24");
    expect_prefix(&c, "0.0.0.0", "0.0.0.0/24");
    expect_prefix(&c, "255.255.255.255", "255.255.255.0/24");
}

static void test_ipv6_prefix_masks_to_slash_56_by_default(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    /* 56 bits keep seven bytes: 20 01 0d b8 12 34 56, the eighth (78) goes. */
    expect_prefix(&c, "2001:db8:1234:5678:9abc:def0:1234:5678", "2001:db8:1234:5600::/56");
    expect_prefix(&c, "2001:db8:1234:56ff::1", "2001:db8:1234:5600::/56");
    expect_prefix(&c, "::1", "::/56");
}

static void test_ipv4_prefix_follows_custom_prefix_bits(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    c.identity_ipv4_prefix_bits = 16;
    expect_prefix(&c, "203.0.113.7", "203.0.0.0/16");
    c.identity_ipv4_prefix_bits = 32;
    expect_prefix(&c, "203.0.113.7", "203.0.113.7/32");
    c.identity_ipv4_prefix_bits = 8;
    expect_prefix(&c, "203.0.113.7", "203.0.0.0/8");
    /* Not on a byte: 113 is 0111 0001, and /20 keeps its top four bits, 112. */
    c.identity_ipv4_prefix_bits = 20;
    expect_prefix(&c, "203.0.113.7", "203.0.112.0/20");
}

static void test_ipv6_prefix_follows_custom_prefix_bits(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    c.identity_ipv6_prefix_bits = 128;
    expect_prefix(&c, "2001:db8::1", "2001:db8::1/128");
    c.identity_ipv6_prefix_bits = 16;
    expect_prefix(&c, "2001:db8:1234:5678::1", "2001::/16");
    c.identity_ipv6_prefix_bits = 64;
    expect_prefix(&c, "2001:db8:1234:5678:9abc::1", "2001:db8:1234:5678::/64");
    /* Not on a byte: the eighth byte 0x78 keeps its top four bits, 0x70. */
    c.identity_ipv6_prefix_bits = 60;
    expect_prefix(&c, "2001:db8:1234:5678::1", "2001:db8:1234:5670::/60");
}

static void test_ip_prefix_rejects_what_is_not_an_address(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    const char *bad[] = {"",           "not-an-ip", "1.2.3", "1.2.3.4.5",    "256.1.1.1",
                         "1.2.3.4/24", " 1.2.3.4",  "::g",   "2001:db8:::1", "1:2:3:4:5:6:7:8:9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char out[POLICY_IP_PREFIX_TEXT_MAX];
        uint8_t len = 77;
        if (policy_ip_prefix(bad[i], &c, out, &len)) {
            print_error("accepted \"%s\" as %s\n", bad[i], out);
            fail();
        }
        assert_int_equal(len, 77);
    }
}

/* Two customers on unrelated IPv4 networks, as a dual-stack backend reports
 * them (Node.js, for one, gives "::ffff:a.b.c.d"), must not share one
 * ip_prefix identity: if they did, every IPv4 shopper would count against one
 * prefix's caps and budget. */
static void test_ipv4_mapped_addresses_of_different_networks_get_different_prefixes(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    char a[POLICY_IP_PREFIX_TEXT_MAX], b[POLICY_IP_PREFIX_TEXT_MAX];
    uint8_t a_len = 0, b_len = 0;
    assert_true(policy_ip_prefix("::ffff:203.0.113.7", &c, a, &a_len));
    assert_true(policy_ip_prefix("::ffff:198.51.100.9", &c, b, &b_len));
    if (strcmp(a, b) == 0) {
        print_error("::ffff:203.0.113.7 and ::ffff:198.51.100.9 both map to %s\n", a);
        fail();
    }
}

/* ------------------------------------------------------------- budgets */

static void test_budget_capacity_is_unit_seconds_times_1000_per_kind(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    assert_near(12000.0 * 1000.0, policy_budget_capacity_unit_ms(&c, POLICY_ID_CUSTOMER), 0);
    assert_near(480000.0 * 1000.0, policy_budget_capacity_unit_ms(&c, POLICY_ID_IP_PREFIX), 0);
    assert_near(24000.0 * 1000.0, policy_budget_capacity_unit_ms(&c, POLICY_ID_FINGERPRINT), 0);
}

static void test_full_budget_stays_full(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        double capacity = policy_budget_capacity_unit_ms(&c, (policy_id_kind_t)k);
        assert_near(capacity, policy_budget_refill(&c, (policy_id_kind_t)k, capacity, 0, 0), 0);
        assert_near(capacity, policy_budget_refill(&c, (policy_id_kind_t)k, capacity, 0, 1), 0);
        assert_near(capacity,
                    policy_budget_refill(&c, (policy_id_kind_t)k, capacity, 0, 100 * NOW_MS), 0);
    }
}

static void test_budget_refills_linearly_over_refill_ms(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    /* 12e6 unit-ms over 3.6e6 ms: a quarter of the period is 3e6 unit-ms. */
    assert_near(3e6, policy_budget_refill(&c, POLICY_ID_CUSTOMER, 0, NOW_MS, NOW_MS + 900000),
                EPSILON);
    assert_near(6e6, policy_budget_refill(&c, POLICY_ID_CUSTOMER, 0, NOW_MS, NOW_MS + 1800000),
                EPSILON);
    assert_near(1e6 + 3e6,
                policy_budget_refill(&c, POLICY_ID_CUSTOMER, 1e6, NOW_MS, NOW_MS + 900000),
                EPSILON);
    /* The IP prefix's bucket is 40 times the customer's, over the same time. */
    assert_near(120e6, policy_budget_refill(&c, POLICY_ID_IP_PREFIX, 0, 0, 900000), EPSILON);
    /* Linear: two half steps give the same as one whole. */
    double half = policy_budget_refill(&c, POLICY_ID_FINGERPRINT, 0, 0, 600000);
    double whole = policy_budget_refill(&c, POLICY_ID_FINGERPRINT, 0, 0, 1200000);
    assert_near(whole, policy_budget_refill(&c, POLICY_ID_FINGERPRINT, half, 600000, 1200000),
                EPSILON);
}

static void test_budget_refill_caps_at_capacity(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    double capacity = policy_budget_capacity_unit_ms(&c, POLICY_ID_CUSTOMER);
    /* Exactly one period from empty is exactly full; more stays full. */
    assert_near(capacity, policy_budget_refill(&c, POLICY_ID_CUSTOMER, 0, 0, 3600000), EPSILON);
    assert_near(capacity, policy_budget_refill(&c, POLICY_ID_CUSTOMER, 0, 0, 3600001), 0);
    assert_near(capacity, policy_budget_refill(&c, POLICY_ID_CUSTOMER, capacity - 1, 0, 3600000),
                0);
}

static void test_budget_refill_does_nothing_when_time_stands_still_or_goes_back(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    assert_near(5e6, policy_budget_refill(&c, POLICY_ID_CUSTOMER, 5e6, NOW_MS, NOW_MS), 0);
    assert_near(5e6, policy_budget_refill(&c, POLICY_ID_CUSTOMER, 5e6, NOW_MS, NOW_MS - 1), 0);
    assert_near(5e6, policy_budget_refill(&c, POLICY_ID_CUSTOMER, 5e6, NOW_MS, 0), 0);
    assert_near(0, policy_budget_refill(&c, POLICY_ID_CUSTOMER, 0, NOW_MS, NOW_MS - 3600000), 0);
}

/* ------------------------------------------------------------ reputation */

static void test_decay_halves_after_one_half_life(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    int64_t h = c.reputation_half_life_ms;
    assert_near(50.0, policy_decay(&c, 100.0, NOW_MS, NOW_MS + h), EPSILON);
    assert_near(25.0, policy_decay(&c, 100.0, NOW_MS, NOW_MS + 2 * h), EPSILON);
    c.reputation_half_life_ms = 60000;
    assert_near(3.0, policy_decay(&c, 6.0, 0, 60000), EPSILON);
    /* Between: strictly between the value and its half. */
    double mid = policy_decay(&c, 6.0, 0, 30000);
    assert_true(mid < 6.0 && mid > 3.0);
    assert_near(6.0 / sqrt(2.0), mid, EPSILON);
}

static void test_decay_leaves_the_value_unchanged_at_dt_zero_or_back(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    assert_near(7.25, policy_decay(&c, 7.25, NOW_MS, NOW_MS), 0);
    assert_near(7.25, policy_decay(&c, 7.25, NOW_MS, NOW_MS - 1000), 0);
    assert_near(0.0, policy_decay(&c, 0.0, 0, NOW_MS), 0);
}

static void test_newcomer_risk_is_zero_until_min_holds(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    policy_identity_t absent = {.present = false, .started = 1000};
    assert_near(0.0, policy_risk(&c, &absent, 1000, 300), 0);
    /* Just under min_holds (5) with no commit: still a newcomer. */
    policy_identity_t id = never_buys(&c, POLICY_ID_CUSTOMER, 4.999);
    assert_near(0.0, policy_risk(&c, &id, 1000, 300), 0);
    /* At min_holds with no commit: as suspect as it gets. */
    id.started = 5;
    assert_near(1.0, policy_risk(&c, &id, 1000, 300), 0);
}

static void test_identity_converting_at_the_shops_rate_has_zero_risk(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    policy_identity_t id = newcomer(&c, POLICY_ID_CUSTOMER);
    id.started = 100;
    id.committed = 30;
    assert_near(0.0, policy_risk(&c, &id, 1000, 300), 0);
    /* At exactly suspect_pct (25%) of the shop's rate it is not yet suspect:
     * 1/8 of the shop's 1/2, in powers of two so that the ratio is exact. */
    id.started = 64;
    id.committed = 8; /* 1/8 */
    assert_near(0.0, policy_risk(&c, &id, 64, 32 /* 1/2 */), 0);
    /* Better than the shop is no risk either. */
    id.committed = 64;
    assert_near(0.0, policy_risk(&c, &id, 1000, 300), 0);
}

/* An attack big enough to drag the shop's own rate down must not make its
 * identities look normal: below the baseline, the baseline is the norm. */
static void test_a_shop_rate_dragged_below_the_baseline_counts_as_the_baseline(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    policy_identity_t id = newcomer(&c, POLICY_ID_CUSTOMER);
    id.started = 100;
    id.committed = 5; /* 5%: half the shop's 10%, but a sixth of the 30% baseline */
    assert_true(policy_risk(&c, &id, 1000, 100) > 0.0);
    c.reputation_baseline_conversion_pct = 10; /* a shop that says 10% is normal */
    assert_near(0.0, policy_risk(&c, &id, 1000, 100), 0);
}

/* No one pays a proof for a hold the stock cannot cover: the engine answers
 * 409 insufficient_stock instead. */
static void test_a_line_over_the_available_units_is_not_challenged(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    policy_hold_input_t in;
    input_init(&in, &c, 1);
    in.lines[0].stock = 1;
    in.lines[0].held = 1;
    in.lines[0].available = 0;
    in.lines[0].qty = 1;
    policy_decision_t d = policy_decide_hold(&in);
    assert_int_equal(d.verdict, POLICY_ALLOW);
    assert_int_equal(d.bits, 0);
    in.lines[0].stock = 100; /* 99 sold */
    in.lines[0].held = 0;
    in.lines[0].available = 1;
    d = policy_decide_hold(&in); /* the last unit of a hundred: scarce, so priced */
    assert_int_equal(d.verdict, POLICY_CHALLENGE);
    assert_true(d.bits > 0);
}

static void test_identity_that_never_commits_after_many_holds_has_risk_one(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    policy_identity_t id = never_buys(&c, POLICY_ID_CUSTOMER, 500);
    assert_near(1.0, policy_risk(&c, &id, 1000, 300), 0);
    /* Even when the shop itself barely converts. */
    assert_near(1.0, policy_risk(&c, &id, 1000, 0), 0);
}

static void test_risk_uses_the_baseline_while_the_shop_has_little_history(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    policy_identity_t id = newcomer(&c, POLICY_ID_CUSTOMER);
    id.started = 10;
    id.committed = 0.6; /* 6% converts; the baseline is 30%: ratio 0.2 */
    /* Four shop holds, all committed, is too little to trust: baseline. */
    assert_near(1.0 - 0.2 / 0.25, policy_risk(&c, &id, 4, 4), EPSILON);
    assert_near(1.0 - 0.2 / 0.25, policy_risk(&c, &id, 0, 0), EPSILON);
    /* Five committed of five is history: 100% makes 6% look far worse. */
    assert_near(1.0 - 0.06 / 0.25, policy_risk(&c, &id, 5, 5), EPSILON);
}

static void test_risk_falls_as_conversion_rises_and_stays_in_zero_to_one(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    policy_identity_t id = newcomer(&c, POLICY_ID_CUSTOMER);
    id.started = 100;
    double previous = 2.0;
    for (int committed = 0; committed <= 100; committed++) {
        id.committed = committed;
        double risk = policy_risk(&c, &id, 1000, 300);
        assert_true(risk >= 0.0 && risk <= 1.0);
        assert_true(risk <= previous);
        /* Below suspect_pct of the shop's rate (7.5 of 100) it strictly falls. */
        if (committed > 0 && committed < 7) {
            assert_true(risk < previous);
        }
        previous = risk;
    }
    assert_near(0.0, previous, 0);
}

static void test_risk_is_zero_when_suspect_pct_is_zero(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    c.reputation_suspect_pct = 0;
    policy_identity_t id = never_buys(&c, POLICY_ID_CUSTOMER, 500);
    assert_near(0.0, policy_risk(&c, &id, 1000, 300), 0);
}

/* --------------------------------------------------------------- scarcity */

static void test_scarcity_ttl_is_the_default_while_plenty_is_left(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    assert_int_equal(policy_scarcity_ttl_ms(&c, 100, 100), c.ttl_default_ms);
    assert_int_equal(policy_scarcity_ttl_ms(&c, 100, 50), c.ttl_default_ms);
    assert_true(policy_scarcity_ttl_ms(&c, 100, 49) < c.ttl_default_ms);
}

static void test_scarcity_ttl_is_scarce_at_and_below_scarce_pct(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    assert_int_equal(policy_scarcity_ttl_ms(&c, 100, 5), c.ttl_scarce_ms);
    assert_int_equal(policy_scarcity_ttl_ms(&c, 100, 1), c.ttl_scarce_ms);
    assert_int_equal(policy_scarcity_ttl_ms(&c, 100, 0), c.ttl_scarce_ms);
    assert_true(policy_scarcity_ttl_ms(&c, 100, 6) > c.ttl_scarce_ms);
}

static void test_scarcity_ttl_is_linear_between_scarce_and_plenty(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    /* 55 of 200 is 27.5%, halfway from 5% to 50%: halfway from 120 s to 600 s. */
    assert_int_equal(policy_scarcity_ttl_ms(&c, 200, 55), 360000);
    /* 14 of 100 is a fifth of the way: 120000 + 480000 / 5. */
    assert_int_equal(policy_scarcity_ttl_ms(&c, 100, 14), 216000);
    int64_t previous = 0;
    for (int64_t available = 0; available <= 100; available++) {
        int64_t ttl_ms = policy_scarcity_ttl_ms(&c, 100, available);
        assert_true(ttl_ms >= c.ttl_scarce_ms && ttl_ms <= c.ttl_default_ms);
        assert_true(ttl_ms >= previous);
        previous = ttl_ms;
    }
}

static void test_scarcity_ttl_is_scarce_with_no_stock(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    assert_int_equal(policy_scarcity_ttl_ms(&c, 0, 0), c.ttl_scarce_ms);
}

/* ----------------------------------------------------------- line prices */

/* A line of a sku whose units not available are sold, none held. */
static policy_line_t line_of(const policy_config_t *c, uint32_t qty, int64_t stock,
                             int64_t available)
{
    return (policy_line_t){.config = c, .stock = stock, .available = available, .qty = qty};
}

static void test_one_or_two_plentiful_units_from_a_trusted_buyer_cost_no_bits(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    policy_line_t l = line_of(&c, 1, 100, 100);
    assert_int_equal(policy_line_bits(&l, 0.0), 0);
    l.qty = 2; /* free_units */
    assert_int_equal(policy_line_bits(&l, 0.0), 0);
    l.qty = 3;
    assert_true(policy_line_bits(&l, 0.0) > 0);
}

static void test_line_bits_grow_with_quantity(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    /* base 10 + 2 * log2(qty / free_units 2), rounded up. */
    policy_line_t l = line_of(&c, 3, 100, 100);
    assert_int_equal(policy_line_bits(&l, 0.0), 12); /* 10 + 2 * 0.58 */
    l.qty = 4;
    assert_int_equal(policy_line_bits(&l, 0.0), 12);
    l.qty = 8;
    assert_int_equal(policy_line_bits(&l, 0.0), 14);
    l.qty = 16;
    assert_int_equal(policy_line_bits(&l, 0.0), 16);
    uint32_t previous = 0;
    for (uint32_t qty = 1; qty <= 1000; qty++) {
        l.qty = qty;
        uint32_t bits = policy_line_bits(&l, 0.0);
        assert_true(bits >= previous);
        previous = bits;
    }
}

static void test_line_bits_grow_with_scarcity(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    /* Two units at 25% left cost as four plentiful ones (plenty 50% / 25%). */
    policy_line_t l = line_of(&c, 2, 100, 25);
    assert_int_equal(policy_line_bits(&l, 0.0), 12);
    /* None left: the factor is capped at 16, so 2 * 16 / 2 = 16, 10 + 8. */
    l = line_of(&c, 2, 100, 0);
    assert_int_equal(policy_line_bits(&l, 0.0), 18);
    uint32_t previous = UINT32_MAX;
    for (int64_t available = 0; available <= 100; available++) {
        l = line_of(&c, 2, 100, available);
        uint32_t bits = policy_line_bits(&l, 0.0);
        assert_true(bits <= previous);
        previous = bits;
    }
    assert_int_equal(previous, 0);
}

static void test_line_bits_are_capped_at_bits_max(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    policy_line_t l = line_of(&c, (uint32_t)HF_QTY_MAX, 100, 0);
    assert_int_equal(policy_line_bits(&l, 1.0), c.challenge_bits_max);
    c.challenge_bits_max = 15;
    assert_int_equal(policy_line_bits(&l, 1.0), 15);
    l = line_of(&c, 16, 100, 100); /* would be 16 */
    assert_int_equal(policy_line_bits(&l, 0.0), 15);
}

static void test_line_bits_are_zero_when_the_challenge_is_disabled(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    c.challenge_enabled = 0;
    policy_line_t l = line_of(&c, (uint32_t)HF_QTY_MAX, 100, 0);
    l.escalated = true;
    assert_int_equal(policy_line_bits(&l, 1.0), 0);
}

static void test_line_bits_are_nonzero_on_an_escalated_sku_even_for_one_unit(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    policy_line_t l = line_of(&c, 1, 100, 100);
    l.escalated = true;
    assert_int_equal(policy_line_bits(&l, 0.0), c.challenge_base_bits);
}

static void test_line_bits_add_risk_bits_for_a_suspect(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    policy_line_t l = line_of(&c, 1, 100, 100);
    /* risk 1 adds risk_bits (6) to base (10). */
    assert_int_equal(policy_line_bits(&l, 1.0), 16);
    /* Less than one bit of risk (0.1 * 6) leaves a free unit free. */
    assert_int_equal(policy_line_bits(&l, 0.1), 0);
    assert_true(policy_line_bits(&l, 0.5) < policy_line_bits(&l, 1.0));
}

/* ---------------------------------------------------- decide: quantity */

static void test_line_qty_at_the_cap_is_allowed_one_more_is_denied(void **state)
{
    (void)state;
    policy_config_t c = caps_config();
    policy_hold_input_t in;
    input_init(&in, &c, 1);
    in.lines[0].qty = 10;
    assert_allowed(policy_decide_hold(&in), c.ttl_default_ms);
    in.lines[0].qty = 11;
    policy_decision_t d = policy_decide_hold(&in);
    assert_denied(d, POLICY_RULE_LINE_QTY, 10, 11, -1);
    assert_int_equal(d.line_index, 0);
}

static void test_line_qty_denial_names_the_line_over_the_cap(void **state)
{
    (void)state;
    policy_config_t c = caps_config();
    policy_config_t tight = c;
    tight.quantity_line_qty_max = 3; /* a sku's own cap */
    policy_hold_input_t in;
    input_init(&in, &c, 3);
    in.lines[1].config = &tight;
    in.lines[1].qty = 3;
    in.lines[2].qty = 4; /* within the global cap */
    assert_allowed(policy_decide_hold(&in), c.ttl_default_ms);
    in.lines[1].qty = 4;
    policy_decision_t d = policy_decide_hold(&in);
    assert_denied(d, POLICY_RULE_LINE_QTY, 3, 4, -1);
    assert_int_equal(d.line_index, 1);
}

static void test_customer_units_per_sku_at_the_cap_allowed_one_more_waits_the_window(void **state)
{
    (void)state;
    policy_config_t c = caps_config();
    policy_hold_input_t in;
    input_init(&in, &c, 2);
    in.lines[1].id_units[POLICY_ID_CUSTOMER] = 8;
    in.lines[1].id_window_left_ms[POLICY_ID_CUSTOMER] = 3600000;
    in.lines[1].qty = 2;
    assert_allowed(policy_decide_hold(&in), c.ttl_default_ms);
    in.lines[1].qty = 3;
    policy_decision_t d = policy_decide_hold(&in);
    assert_denied(d, POLICY_RULE_CUSTOMER_UNITS_PER_SKU, 10, 8, 3600000);
    assert_int_equal(d.line_index, 1);
}

static void test_customer_units_per_sku_retry_is_never_when_no_window_is_left(void **state)
{
    (void)state;
    policy_config_t c = caps_config();
    policy_hold_input_t in;
    input_init(&in, &c, 1);
    in.lines[0].id_units[POLICY_ID_CUSTOMER] = 10; /* all of it in active holds */
    in.lines[0].id_window_left_ms[POLICY_ID_CUSTOMER] = 0;
    assert_denied(policy_decide_hold(&in), POLICY_RULE_CUSTOMER_UNITS_PER_SKU, 10, 10, -1);
}

static void test_customer_units_per_sku_retry_is_never_when_the_qty_alone_is_over(void **state)
{
    (void)state;
    policy_config_t c = caps_config();
    policy_config_t sku = c;
    sku.quantity_customer_sku_units_max = 5; /* below the line cap of 10 */
    policy_hold_input_t in;
    input_init(&in, &c, 1);
    in.lines[0].config = &sku;
    in.lines[0].id_window_left_ms[POLICY_ID_CUSTOMER] = 60000;
    in.lines[0].qty = 5;
    assert_allowed(policy_decide_hold(&in), c.ttl_default_ms);
    in.lines[0].qty = 6;
    assert_denied(policy_decide_hold(&in), POLICY_RULE_CUSTOMER_UNITS_PER_SKU, 5, 0, -1);
}

/* ---------------------------------------------------- decide: identities */

static void test_identity_holds_at_the_cap_allowed_one_more_denied_per_kind(void **state)
{
    (void)state;
    policy_config_t c = caps_config();
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        int64_t max = holds_max(&c, (policy_id_kind_t)k);
        policy_hold_input_t in;
        input_init(&in, &c, 1);
        in.ids[k].holds_active = (uint32_t)(max - 1); /* this hold is the max-th */
        assert_allowed(policy_decide_hold(&in), c.ttl_default_ms);
        in.ids[k].holds_active = (uint32_t)max;
        assert_denied(policy_decide_hold(&in), holds_rule[k], max, max, -1);
    }
}

static void test_identity_units_at_the_cap_allowed_one_more_denied_per_kind(void **state)
{
    (void)state;
    policy_config_t c = caps_config();
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        int64_t max = units_max(&c, (policy_id_kind_t)k);
        policy_hold_input_t in;
        input_init(&in, &c, 2); /* the cap counts the units of every line */
        in.ids[k].units_held = max - 2;
        assert_allowed(policy_decide_hold(&in), c.ttl_default_ms);
        in.ids[k].units_held = max - 1;
        assert_denied(policy_decide_hold(&in), units_rule[k], max, max - 1, -1);
    }
}

static void test_absent_identities_are_not_capped(void **state)
{
    (void)state;
    policy_config_t c = caps_config();
    policy_hold_input_t in;
    input_init(&in, &c, 1);
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        in.ids[k] = (policy_identity_t){.present = false,
                                        .holds_active = 1000000,
                                        .units_held = HF_QTY_MAX,
                                        .budget_unit_ms = 0,
                                        .started = 1000};
    }
    policy_decision_t d = policy_decide_hold(&in);
    assert_allowed(d, c.ttl_default_ms);
    assert_near(0.0, d.risk, 0);
}

/* ---------------------------------------------------- decide: hold share */

static void test_hold_share_at_the_limit_allowed_one_more_denied(void **state)
{
    (void)state;
    policy_config_t c = caps_config();
    policy_hold_input_t in;
    input_init(&in, &c, 2);
    /* 80% of 10 is 8 units in holds at once. */
    in.lines[1] = line_of(&c, 1, 10, 3);
    in.lines[1].held = 7;
    assert_allowed(policy_decide_hold(&in), policy_scarcity_ttl_ms(&c, 10, 3));
    in.lines[1].qty = 2;
    policy_decision_t d = policy_decide_hold(&in);
    assert_denied(d, POLICY_RULE_HOLD_SHARE, 8, 7, -1);
    assert_int_equal(d.line_index, 1);
}

static void test_hold_share_uses_a_skus_own_held_pct_max(void **state)
{
    (void)state;
    policy_config_t c = caps_config();
    policy_config_t sku = c;
    sku.hold_share_held_pct_max = 50;
    policy_hold_input_t in;
    input_init(&in, &c, 1);
    in.lines[0] = line_of(&sku, 10, 100, 60);
    in.lines[0].held = 40;
    assert_allowed(policy_decide_hold(&in), policy_scarcity_ttl_ms(&sku, 100, 60));
    in.lines[0] = line_of(&sku, 10, 100, 59);
    in.lines[0].held = 41;
    assert_denied(policy_decide_hold(&in), POLICY_RULE_HOLD_SHARE, 50, 41, -1);
}

/* An escalated sku takes escalation.held_pct_max, 0 by default: no holds at
 * all while it is escalated, only buy-now. */
static void test_escalated_sku_takes_no_holds_under_the_default_share(void **state)
{
    (void)state;
    policy_config_t c = caps_config();
    policy_hold_input_t in;
    input_init(&in, &c, 1);
    in.lines[0].escalated = true;
    assert_denied(policy_decide_hold(&in), POLICY_RULE_HOLD_SHARE, 0, 0, -1);
    in.buy_now = true;
    assert_allowed(policy_decide_hold(&in), HF_TTL_MS_MIN);
}

/* ------------------------------------------------------- decide: buy now */

static void test_buy_now_is_exempt_from_share_identity_caps_and_budgets(void **state)
{
    (void)state;
    policy_config_t c = caps_config();
    policy_hold_input_t in;
    input_init(&in, &c, 1);
    in.buy_now = true;
    in.lines[0] = line_of(&c, 10, 100, 20);
    in.lines[0].held = 80; /* the share is full */
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        in.ids[k].holds_active = (uint32_t)holds_max(&c, (policy_id_kind_t)k);
        in.ids[k].units_held = units_max(&c, (policy_id_kind_t)k);
        in.ids[k].budget_unit_ms = 0;
    }
    policy_decision_t d = policy_decide_hold(&in);
    assert_allowed(d, HF_TTL_MS_MIN);
    assert_near(0.0, d.cost_unit_ms, 0);
    /* The same request as a hold is denied. */
    in.buy_now = false;
    assert_int_equal(policy_decide_hold(&in).verdict, POLICY_DENY);
}

static void test_buy_now_still_obeys_the_quantity_caps(void **state)
{
    (void)state;
    policy_config_t c = caps_config();
    policy_hold_input_t in;
    input_init(&in, &c, 1);
    in.buy_now = true;
    in.lines[0].qty = 11;
    assert_denied(policy_decide_hold(&in), POLICY_RULE_LINE_QTY, 10, 11, -1);
    in.lines[0].qty = 1;
    in.lines[0].id_units[POLICY_ID_CUSTOMER] = 10;
    in.lines[0].id_window_left_ms[POLICY_ID_CUSTOMER] = 5000;
    assert_denied(policy_decide_hold(&in), POLICY_RULE_CUSTOMER_UNITS_PER_SKU, 10, 10, 5000);
}

/* -------------------------------------------------------- decide: budgets */

static void test_budget_equal_to_the_cost_is_allowed_less_is_denied_per_kind(void **state)
{
    (void)state;
    policy_config_t c = budget_config();
    /* One unit for the default 600 s costs 600000 unit-ms. */
    const int64_t retry_ms[POLICY_ID_KINDS] = {50000 / 10, 50000 / 400, 50000 / 20};
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        policy_hold_input_t in;
        input_init(&in, &c, 1);
        in.ids[k].budget_unit_ms = 600000;
        policy_decision_t d = policy_decide_hold(&in);
        assert_allowed(d, 600000);
        assert_near(600000.0, d.cost_unit_ms, 0);
        in.ids[k].budget_unit_ms = 550000;
        assert_denied(policy_decide_hold(&in), budget_rule[k], 600, 550, retry_ms[k]);
    }
}

static void test_budget_retry_is_the_first_instant_the_refill_covers_the_cost(void **state)
{
    (void)state;
    policy_config_t c = caps_config(); /* the default refill, 3.333... unit-ms per ms */
    policy_hold_input_t in;
    input_init(&in, &c, 1);
    in.lines[0].qty = 3;
    in.ids[POLICY_ID_CUSTOMER].budget_unit_ms = 1234567.0;
    policy_decision_t d = policy_decide_hold(&in);
    assert_int_equal(d.verdict, POLICY_DENY);
    assert_int_equal(d.rule, POLICY_RULE_CUSTOMER_BUDGET);
    assert_int_equal(d.limit, 1800); /* 3 units x 600 s */
    assert_int_equal(d.current, 1234);
    assert_true(d.retry_after_ms > 0);
    double cost = 3.0 * 600000.0;
    assert_true(policy_budget_refill(&c, POLICY_ID_CUSTOMER, 1234567.0, 0, d.retry_after_ms) >=
                cost);
    assert_true(policy_budget_refill(&c, POLICY_ID_CUSTOMER, 1234567.0, 0, d.retry_after_ms - 1) <
                cost);
}

static void test_budget_retry_is_never_when_the_cost_exceeds_the_capacity(void **state)
{
    (void)state;
    policy_config_t c = budget_config();
    c.budget_customer_unit_s = 500; /* 500000 unit-ms: less than one 600 s unit */
    policy_hold_input_t in;
    input_init(&in, &c, 1);
    in.ids[POLICY_ID_CUSTOMER] = newcomer(&c, POLICY_ID_CUSTOMER);
    assert_denied(policy_decide_hold(&in), POLICY_RULE_CUSTOMER_BUDGET, 600, 500, -1);
    /* A shorter hold fits the bucket. */
    in.ttl_ms_requested = 500000;
    assert_allowed(policy_decide_hold(&in), 500000);
}

/* ------------------------------------------------------ decide: challenge */

static void test_challenge_without_proof_names_the_bits_and_with_proof_allows(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    policy_hold_input_t in;
    input_init(&in, &c, 2);
    in.lines[1].qty = 3;
    policy_decision_t d = policy_decide_hold(&in);
    assert_challenged(d, POLICY_RULE_SCARCITY_CHALLENGE, 12);
    assert_int_equal(d.line_index, 1);
    in.proof_bits = POW_PAID_BITS;
    d = policy_decide_hold(&in);
    assert_allowed(d, c.ttl_default_ms);
    assert_int_equal(d.bits, 12); /* recorded, so the guard spends the proof */
    assert_near(4.0 * 600000.0, d.cost_unit_ms, 0);
}

static void test_challenge_on_an_escalated_sku_names_the_escalation_rule(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    c.escalation_held_pct_max = 80;
    policy_hold_input_t in;
    input_init(&in, &c, 1);
    in.lines[0].escalated = true;
    assert_challenged(policy_decide_hold(&in), POLICY_RULE_ESCALATION_CHALLENGE,
                      (uint32_t)c.challenge_base_bits);
    in.proof_bits = POW_PAID_BITS;
    policy_decision_t d = policy_decide_hold(&in);
    assert_allowed(d, c.escalation_ttl_ms);
    assert_int_equal(d.bits, c.challenge_base_bits);
}

static void test_no_challenge_when_nothing_costs_bits_even_with_a_proof(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    policy_hold_input_t in;
    input_init(&in, &c, 1);
    in.proof_bits = POW_PAID_BITS;
    policy_decision_t d = policy_decide_hold(&in);
    assert_allowed(d, c.ttl_default_ms);
    assert_int_equal(d.bits, 0);
}

/* ------------------------------------------------------------ decide: TTL */

static void test_shorter_requested_ttl_wins(void **state)
{
    (void)state;
    policy_config_t c = caps_config();
    policy_hold_input_t in;
    input_init(&in, &c, 1);
    in.ttl_ms_requested = 300000;
    policy_decision_t d = policy_decide_hold(&in);
    assert_allowed(d, 300000);
    assert_near(300000.0, d.cost_unit_ms, 0);
    in.ttl_ms_requested = HF_TTL_MS_MIN;
    assert_allowed(policy_decide_hold(&in), HF_TTL_MS_MIN);
}

static void test_requested_ttl_above_the_default_is_granted_up_to_max_while_plenty(void **state)
{
    (void)state;
    policy_config_t c = caps_config();
    policy_hold_input_t in;
    input_init(&in, &c, 1);
    in.ttl_ms_requested = 0; /* none asked */
    assert_allowed(policy_decide_hold(&in), c.ttl_default_ms);
    in.ttl_ms_requested = c.ttl_default_ms + 1;
    assert_allowed(policy_decide_hold(&in), c.ttl_default_ms + 1);
    in.ttl_ms_requested = HF_TTL_MS_MAX;
    assert_allowed(policy_decide_hold(&in), c.ttl_max_ms);
}

static void test_granted_ttl_is_capped_by_max_ms_even_above_a_skus_default(void **state)
{
    (void)state;
    policy_config_t c = caps_config();
    /* A sku's overrides resolved against a later global change can leave its
     * default above its max; the grant still keeps to the max. */
    policy_config_t sku = c;
    sku.ttl_default_ms = 1800000;
    sku.ttl_max_ms = 900000;
    policy_hold_input_t in;
    input_init(&in, &c, 1);
    in.lines[0].config = &sku;
    assert_allowed(policy_decide_hold(&in), 900000);
}

static void test_granted_ttl_is_shortened_by_the_scarcest_line(void **state)
{
    (void)state;
    policy_config_t c = caps_config();
    policy_hold_input_t in;
    input_init(&in, &c, 3);
    in.lines[1] = line_of(&c, 1, 200, 55); /* 360 s */
    assert_allowed(policy_decide_hold(&in), 360000);
    in.lines[2] = line_of(&c, 1, 100, 5); /* scarce: 120 s */
    assert_allowed(policy_decide_hold(&in), c.ttl_scarce_ms);
    /* A request longer than the scarce TTL does not undo it. */
    in.ttl_ms_requested = 500000;
    assert_allowed(policy_decide_hold(&in), c.ttl_scarce_ms);
}

static void test_escalated_sku_grants_the_escalation_ttl(void **state)
{
    (void)state;
    policy_config_t c = caps_config();
    c.escalation_held_pct_max = 80;
    policy_hold_input_t in;
    input_init(&in, &c, 2);
    in.lines[1].escalated = true;
    assert_allowed(policy_decide_hold(&in), c.escalation_ttl_ms);
    /* A still shorter request wins over it. */
    in.ttl_ms_requested = 30000;
    assert_allowed(policy_decide_hold(&in), 30000);
}

static void test_risky_identity_gets_a_shorter_ttl(void **state)
{
    (void)state;
    policy_config_t c = caps_config();
    policy_hold_input_t in;
    input_init(&in, &c, 1);
    in.ids[POLICY_ID_FINGERPRINT] = never_buys(&c, POLICY_ID_FINGERPRINT, 50);
    policy_decision_t d = policy_decide_hold(&in);
    assert_allowed(d, c.ttl_default_ms / 2); /* risk 1 cuts by half */
    assert_near(1.0, d.risk, 0);
    assert_near(300000.0, d.cost_unit_ms, 0);
    /* Never below the engine's minimum TTL. */
    in.ttl_ms_requested = 1500;
    assert_allowed(policy_decide_hold(&in), HF_TTL_MS_MIN);
}

static void test_risky_identity_gets_lower_caps(void **state)
{
    (void)state;
    policy_config_t c = caps_config();
    policy_hold_input_t in;
    input_init(&in, &c, 1);
    in.ids[POLICY_ID_CUSTOMER].holds_active = 2;
    assert_allowed(policy_decide_hold(&in), c.ttl_default_ms);
    /* Risk 1 halves every cap, whichever identity is suspect: 5 -> 2. */
    in.ids[POLICY_ID_IP_PREFIX] = never_buys(&c, POLICY_ID_IP_PREFIX, 50);
    assert_denied(policy_decide_hold(&in), POLICY_RULE_CUSTOMER_HOLDS, 2, 2, -1);
    in.ids[POLICY_ID_CUSTOMER].holds_active = 0;
    in.ids[POLICY_ID_CUSTOMER].units_held = 9; /* 20 -> 10 */
    assert_allowed(policy_decide_hold(&in), c.ttl_default_ms / 2);
    in.lines[0].qty = 2;
    assert_denied(policy_decide_hold(&in), POLICY_RULE_CUSTOMER_UNITS, 10, 9, -1);
}

/* -------------------------------------------------------- decide: order */

/* A request that breaks every rule at once, then mended one rule at a time:
 * each decision names the first rule still broken, in the documented order,
 * and the challenge comes only when nothing else would deny. */
static void test_rules_apply_in_order_quantity_identity_share_budget_challenge(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    policy_hold_input_t in;
    input_init(&in, &c, 1);
    in.lines[0] = line_of(&c, 11, 100, 20);
    in.lines[0].held = 80;
    in.lines[0].id_units[POLICY_ID_CUSTOMER] = 10;
    in.ids[POLICY_ID_CUSTOMER].holds_active = 5;
    in.ids[POLICY_ID_CUSTOMER].budget_unit_ms = 0;
    assert_int_equal(policy_decide_hold(&in).rule, POLICY_RULE_LINE_QTY);
    in.lines[0].qty = 3;
    assert_int_equal(policy_decide_hold(&in).rule, POLICY_RULE_CUSTOMER_UNITS_PER_SKU);
    in.lines[0].id_units[POLICY_ID_CUSTOMER] = 0;
    assert_int_equal(policy_decide_hold(&in).rule, POLICY_RULE_CUSTOMER_HOLDS);
    in.ids[POLICY_ID_CUSTOMER].holds_active = 0;
    assert_int_equal(policy_decide_hold(&in).rule, POLICY_RULE_HOLD_SHARE);
    in.lines[0] = line_of(&c, 3, 100, 100);
    assert_int_equal(policy_decide_hold(&in).rule, POLICY_RULE_CUSTOMER_BUDGET);
    in.ids[POLICY_ID_CUSTOMER] = newcomer(&c, POLICY_ID_CUSTOMER);
    assert_challenged(policy_decide_hold(&in), POLICY_RULE_SCARCITY_CHALLENGE, 12);
    in.proof_bits = POW_PAID_BITS;
    assert_allowed(policy_decide_hold(&in), c.ttl_default_ms);
}

/* A hoarder who solves a puzzle must get the hold: whenever a request is
 * challenged, the same request with a proof is allowed with the same price. */
static void test_a_solved_challenge_is_never_followed_by_a_denial(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    c.escalation_held_pct_max = 50;
    for (uint32_t qty = 1; qty <= 10; qty++) {
        for (int64_t available = 0; available <= 100; available += 5) {
            for (int suspect = 0; suspect <= 1; suspect++) {
                for (int escalated = 0; escalated <= 1; escalated++) {
                    policy_hold_input_t in;
                    input_init(&in, &c, 1);
                    in.lines[0] = line_of(&c, qty, 100, available);
                    in.lines[0].escalated = escalated;
                    if (suspect) {
                        in.ids[POLICY_ID_CUSTOMER] = never_buys(&c, POLICY_ID_CUSTOMER, 20);
                    }
                    policy_decision_t d = policy_decide_hold(&in);
                    if (d.verdict != POLICY_CHALLENGE) {
                        continue;
                    }
                    in.proof_bits = POW_PAID_BITS;
                    policy_decision_t paid = policy_decide_hold(&in);
                    if (paid.verdict != POLICY_ALLOW || paid.bits != d.bits) {
                        print_error("qty %u available %" PRId64 " suspect %d escalated %d\n", qty,
                                    available, suspect, escalated);
                        print_decision(&paid);
                        fail();
                    }
                }
            }
        }
    }
}

/* ------------------------------------------------ buyers and hoarders */

static void test_genuine_buyer_is_allowed_without_a_challenge(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    for (uint32_t qty = 1; qty <= 2; qty++) {
        policy_hold_input_t in;
        input_init(&in, &c, 1);
        in.lines[0].qty = qty;
        policy_decision_t d = policy_decide_hold(&in);
        assert_allowed(d, c.ttl_default_ms);
        assert_int_equal(d.bits, 0);
        assert_near(0.0, d.risk, 0);
    }
    /* One unit each of two skus. */
    policy_hold_input_t in;
    input_init(&in, &c, 2);
    policy_decision_t d = policy_decide_hold(&in);
    assert_allowed(d, c.ttl_default_ms);
    assert_int_equal(d.bits, 0);
}

/* Applies an allowed hold to the identities' counters, as the guard would. */
static void hoarder_apply(policy_hold_input_t *in, const policy_decision_t *d)
{
    int64_t units = 0;
    for (uint16_t i = 0; i < in->line_count; i++) {
        units += in->lines[i].qty;
    }
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        in->ids[k].holds_active++;
        in->ids[k].units_held += units;
        in->ids[k].budget_unit_ms -= d->cost_unit_ms;
        in->ids[k].started += 1;
    }
}

/* Holds of the line cap, repeated; the hoarder solves every puzzle. Each hold
 * it gets costs a proof, and it is stopped by `rule` after `granted` holds. */
static void hoard(bool same_sku, policy_rule_t rule, int granted)
{
    policy_config_t c = policy_config_default();
    c.quantity_fingerprint_sku_units_max = HF_QTY_MAX; /* a device of its own each time */
    policy_hold_input_t in;
    input_init(&in, &c, 1);
    int allowed = 0;
    for (int round = 0; round < 20; round++) {
        in.lines[0].qty = (uint32_t)c.quantity_line_qty_max;
        in.proof_bits = 0;
        policy_decision_t d = policy_decide_hold(&in);
        if (d.verdict == POLICY_CHALLENGE) {
            assert_true(d.bits > 0);
            in.proof_bits = POW_PAID_BITS;
            d = policy_decide_hold(&in);
        }
        if (d.verdict == POLICY_DENY) {
            assert_int_equal(d.rule, rule);
            assert_int_equal(allowed, granted);
            return;
        }
        assert_int_equal(d.verdict, POLICY_ALLOW);
        assert_true(d.bits > 0); /* never a free hold */
        hoarder_apply(&in, &d);
        allowed++;
        if (same_sku) {
            in.lines[0].id_units[POLICY_ID_CUSTOMER] += in.lines[0].qty;
            in.lines[0].held += in.lines[0].qty;
            in.lines[0].available -= in.lines[0].qty;
        }
    }
    print_error("the hoarder was never denied in 20 rounds\n");
    fail();
}

static void test_hoarder_of_one_sku_is_challenged_then_denied_per_sku(void **state)
{
    (void)state;
    hoard(true, POLICY_RULE_CUSTOMER_UNITS_PER_SKU, 1);
}

static void test_hoarder_across_skus_is_challenged_then_denied_by_units(void **state)
{
    (void)state;
    hoard(false, POLICY_RULE_CUSTOMER_UNITS, 2);
}

/* ------------------------------------------------------------- extension */

static void test_extend_ttl_is_capped_by_life_max(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    /* Created at 0, life_max 30 min: at 25 min, 5 min are left. */
    assert_int_equal(policy_extend_ttl_ms(&c, 600000, 0, 1500000, 100, 100), 300000);
    assert_int_equal(policy_extend_ttl_ms(&c, 600000, NOW_MS, NOW_MS + 1799999, 100, 100), 1);
    /* Well within the life the request stands. */
    assert_int_equal(policy_extend_ttl_ms(&c, 600000, 0, 60000, 100, 100), 600000);
    assert_int_equal(policy_extend_ttl_ms(&c, 100000, 0, 60000, 100, 100), 100000);
}

static void test_extend_ttl_is_capped_by_scarcity(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    /* Plenty left: up to max_ms; scarce: scarce_ms; between, linear from
     * max_ms down (27.5% left is half way: 120000 + (1800000 - 120000) / 2). */
    assert_int_equal(policy_extend_ttl_ms(&c, 1200000, 0, 0, 100, 100), 1200000);
    assert_int_equal(policy_extend_ttl_ms(&c, HF_TTL_MS_MAX, 0, 0, 100, 100), c.ttl_max_ms);
    assert_int_equal(policy_extend_ttl_ms(&c, 600000, 0, 0, 100, 5), c.ttl_scarce_ms);
    assert_int_equal(policy_extend_ttl_ms(&c, 1200000, 0, 0, 200, 55), 960000);
    assert_int_equal(policy_extend_ttl_ms(&c, 600000, 0, 0, 0, 0), c.ttl_scarce_ms);
}

static void test_extend_ttl_is_zero_once_the_life_is_used_up(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    assert_int_equal(policy_extend_ttl_ms(&c, 600000, 0, c.ttl_life_max_ms, 100, 100), 0);
    assert_int_equal(policy_extend_ttl_ms(&c, 600000, 0, c.ttl_life_max_ms + 1, 100, 100), 0);
    assert_int_equal(policy_extend_ttl_ms(&c, 600000, 0, 10 * c.ttl_life_max_ms, 100, 0), 0);
}

static void test_decide_extend_is_allowed_within_every_budget(void **state)
{
    (void)state;
    policy_config_t c = budget_config();
    policy_identity_t ids[POLICY_ID_KINDS];
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        ids[k] = newcomer(&c, (policy_id_kind_t)k);
        ids[k].budget_unit_ms = 600000;
        ids[k].holds_active = 1000000; /* caps do not apply to an extension */
    }
    policy_decision_t d = policy_decide_extend(&c, ids, 600000);
    assert_int_equal(d.verdict, POLICY_ALLOW);
    assert_int_equal(d.rule, POLICY_RULE_NONE);
    assert_int_equal(d.retry_after_ms, -1);
    assert_near(600000.0, d.cost_unit_ms, 0);
}

static void test_decide_extend_is_denied_by_the_short_budget_with_its_rule(void **state)
{
    (void)state;
    policy_config_t c = budget_config();
    const int64_t retry_ms[POLICY_ID_KINDS] = {50000 / 10, 50000 / 400, 50000 / 20};
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        policy_identity_t ids[POLICY_ID_KINDS];
        for (int j = 0; j < POLICY_ID_KINDS; j++) {
            ids[j] = newcomer(&c, (policy_id_kind_t)j);
        }
        ids[k].budget_unit_ms = 550000;
        assert_denied(policy_decide_extend(&c, ids, 600000), budget_rule[k], 600, 550, retry_ms[k]);
        /* An absent identity's empty bucket does not count. */
        ids[k].present = false;
        assert_int_equal(policy_decide_extend(&c, ids, 600000).verdict, POLICY_ALLOW);
    }
    policy_identity_t ids[POLICY_ID_KINDS];
    for (int j = 0; j < POLICY_ID_KINDS; j++) {
        ids[j] = newcomer(&c, (policy_id_kind_t)j);
    }
    /* More than the customer's whole bucket (12e6) can never be afforded. */
    assert_denied(policy_decide_extend(&c, ids, 12e6 + 1000), POLICY_RULE_CUSTOMER_BUDGET, 12001,
                  12000, -1);
}


/* -------------------------------------- purchase caps per fingerprint, address */

static void test_fingerprint_and_address_units_per_sku_at_the_cap_then_one_more(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    c.challenge_enabled = 0;
    static const policy_id_kind_t kinds[] = {POLICY_ID_FINGERPRINT, POLICY_ID_IP_PREFIX};
    static const policy_rule_t rules[] = {POLICY_RULE_FINGERPRINT_UNITS_PER_SKU,
                                          POLICY_RULE_IP_PREFIX_UNITS_PER_SKU};
    const int64_t caps[] = {c.quantity_fingerprint_sku_units_max,
                            c.quantity_ip_prefix_sku_units_max};
    for (int i = 0; i < 2; i++) {
        policy_hold_input_t in;
        input_init(&in, &c, 2);
        in.lines[1].stock = in.lines[1].available = 100000;
        in.lines[1].id_units[kinds[i]] = caps[i] - 1;
        in.lines[1].id_window_left_ms[kinds[i]] = 3600000;
        assert_allowed(policy_decide_hold(&in), c.ttl_default_ms);
        in.lines[1].id_units[kinds[i]] = caps[i];
        policy_decision_t d = policy_decide_hold(&in);
        assert_denied(d, rules[i], caps[i], caps[i], 3600000);
        assert_int_equal(d.line_index, 1);
        /* A request that does not name it meets no cap of its kind. */
        in.ids[kinds[i]] = (policy_identity_t){0};
        in.lines[1].id_units[kinds[i]] = 0;
        in.lines[1].qty = (uint32_t)caps[i] + 1 < 10 ? (uint32_t)caps[i] + 1 : 10;
        assert_int_equal(policy_decide_hold(&in).rule == rules[i], false);
    }
}

static void test_purchase_caps_count_against_buy_now_too(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    c.challenge_enabled = 0;
    policy_hold_input_t in;
    input_init(&in, &c, 1);
    in.buy_now = true;
    in.lines[0].id_units[POLICY_ID_FINGERPRINT] = c.quantity_fingerprint_sku_units_max;
    assert_denied(policy_decide_hold(&in), POLICY_RULE_FINGERPRINT_UNITS_PER_SKU,
                  c.quantity_fingerprint_sku_units_max, c.quantity_fingerprint_sku_units_max, -1);
    in.lines[0].id_units[POLICY_ID_FINGERPRINT] = 0;
    assert_allowed(policy_decide_hold(&in), HF_TTL_MS_MIN); /* a sale: holds nothing */
    c.quantity_enabled = 0; /* the whole section's switch */
    in.lines[0].id_units[POLICY_ID_FINGERPRINT] = c.quantity_fingerprint_sku_units_max;
    assert_allowed(policy_decide_hold(&in), HF_TTL_MS_MIN);
}

/* ---------------------------------------------------------- newcomer pool */

/* A newcomer asking for more than free_units of a sku whose pool holds
 * `held` of its 100 units. */
static void pool_input(policy_hold_input_t *in, const policy_config_t *c, int64_t held,
                       uint32_t qty)
{
    input_init(in, c, 1);
    in->newcomer = true;
    in->lines[0].newcomer_held = held;
    in->lines[0].held = held;
    in->lines[0].available = 100 - held;
    in->lines[0].qty = qty;
}

static void test_newcomer_pool_at_its_share_then_one_unit_over(void **state)
{
    (void)state;
    policy_config_t c = caps_config();
    int64_t limit = c.newcomer_pool_pct; /* of a stock of 100 */
    policy_hold_input_t in;
    pool_input(&in, &c, limit - 10, 10);
    assert_int_equal(policy_decide_hold(&in).verdict, POLICY_ALLOW);
    pool_input(&in, &c, limit - 9, 10);
    policy_decision_t d = policy_decide_hold(&in);
    assert_denied(d, POLICY_RULE_NEWCOMER_POOL, limit, limit - 9, -1);
}

static void test_newcomer_pool_never_refuses_an_ordinary_line_nor_a_buyer(void **state)
{
    (void)state;
    policy_config_t c = caps_config();
    policy_hold_input_t in;
    /* Past the pool, free_units are still free for a newcomer... */
    pool_input(&in, &c, 60, (uint32_t)c.newcomer_free_units);
    assert_int_equal(policy_decide_hold(&in).verdict, POLICY_ALLOW);
    /* ...one more is not... */
    pool_input(&in, &c, 60, (uint32_t)c.newcomer_free_units + 1);
    assert_int_equal(policy_decide_hold(&in).rule, POLICY_RULE_NEWCOMER_POOL);
    /* ...unless the customer or the device has bought before, */
    in.newcomer = false;
    assert_int_equal(policy_decide_hold(&in).verdict, POLICY_ALLOW);
    /* or it buys now (a sale, not a hold), */
    in.newcomer = true;
    in.buy_now = true;
    assert_int_equal(policy_decide_hold(&in).verdict, POLICY_ALLOW);
    /* or the pool is switched off. */
    in.buy_now = false;
    c.newcomer_enabled = 0;
    assert_int_equal(policy_decide_hold(&in).verdict, POLICY_ALLOW);
}

static void test_newcomer_pool_leaves_a_line_the_stock_cannot_cover_to_the_engine(void **state)
{
    (void)state;
    policy_config_t c = caps_config();
    policy_hold_input_t in;
    pool_input(&in, &c, c.newcomer_pool_pct - 1, 8);
    assert_int_equal(policy_decide_hold(&in).rule, POLICY_RULE_NEWCOMER_POOL);
    in.lines[0].available = 7; /* the rest sold: the engine's 409 says why */
    assert_int_equal(policy_decide_hold(&in).verdict, POLICY_ALLOW);
}

/* ---------------------------------------------------------- stale proofs */

static void test_a_proof_pays_up_to_its_price_and_a_higher_price_asks_again(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    policy_hold_input_t in;
    input_init(&in, &c, 1);
    in.lines[0].qty = 3; /* over free_units: 12 bits while plenty is left */
    in.proof_bits = 12;
    assert_int_equal(policy_decide_hold(&in).verdict, POLICY_ALLOW);
    /* The price rose since the challenge was issued (stock sold out low). */
    in.lines[0].available = 10;
    policy_decision_t d = policy_decide_hold(&in);
    assert_int_equal(d.verdict, POLICY_CHALLENGE);
    assert_true(d.bits > 12);
    in.proof_bits = d.bits; /* solved at the new price */
    assert_int_equal(policy_decide_hold(&in).verdict, POLICY_ALLOW);
}

static void test_an_ordinary_line_is_never_asked_twice(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    policy_hold_input_t in;
    input_init(&in, &c, 1);
    in.lines[0].qty = (uint32_t)c.challenge_free_units;
    in.lines[0].available = 2; /* scarce (the rest sold): even one unit costs bits */
    policy_decision_t d = policy_decide_hold(&in);
    assert_int_equal(d.verdict, POLICY_CHALLENGE);
    in.proof_bits = 1; /* issued cheaper than today's price */
    assert_int_equal(policy_decide_hold(&in).verdict, POLICY_ALLOW);
    in.lines[0].qty = (uint32_t)c.challenge_free_units + 1;
    in.lines[0].available = 3;
    assert_int_equal(policy_decide_hold(&in).verdict, POLICY_CHALLENGE);
}

/* ------------------------------------------------------------ pay floor */

static void test_scarce_ttl_never_falls_below_the_time_buyers_take_to_pay(void **state)
{
    (void)state;
    policy_config_t c = caps_config();
    /* At scarce_pct the TTL is scarce_ms... */
    assert_int_equal(policy_line_ttl_ms(&c, 100, 5, 0), c.ttl_scarce_ms);
    /* ...unless the sku's buyers take longer to pay; */
    assert_int_equal(policy_line_ttl_ms(&c, 100, 5, c.ttl_scarce_ms + 1), c.ttl_scarce_ms + 1);
    /* never above the default TTL, */
    assert_int_equal(policy_line_ttl_ms(&c, 100, 5, c.ttl_default_ms * 2), c.ttl_default_ms);
    /* nor when plenty is left (default_ms already), nor with the floor off. */
    assert_int_equal(policy_line_ttl_ms(&c, 100, 100, c.ttl_scarce_ms + 1), c.ttl_default_ms);
    c.ttl_pay_floor = 0;
    assert_int_equal(policy_line_ttl_ms(&c, 100, 5, c.ttl_scarce_ms + 1), c.ttl_scarce_ms);
    /* A hold is granted what the line allows. */
    c.ttl_pay_floor = 1;
    policy_hold_input_t in;
    input_init(&in, &c, 1);
    in.lines[0].available = 5; /* the rest sold */
    in.lines[0].pay_ms = 300000;
    assert_allowed(policy_decide_hold(&in), 300000);
}

/* ------------------------------------------------------------ escalation */

/* The shop converts 30% of its holds (300 of 1000). */
#define SHOP_STARTED 1000.0
#define SHOP_COMMITTED 300.0

static bool escalate_sig(const policy_config_t *c, bool escalated, double started,
                         double committed, double shop_started, double shop_committed,
                         int64_t stock, int64_t available)
{
    policy_sku_signal_t sig = {.started = started,
                               .committed = committed,
                               .shop_started = shop_started,
                               .shop_committed = shop_committed,
                               .stock = stock,
                               .available = available};
    return policy_escalate(c, escalated, &sig);
}

static bool escalate(const policy_config_t *c, bool escalated, double started, double committed,
                     int64_t available)
{
    return escalate_sig(c, escalated, started, committed, SHOP_STARTED, SHOP_COMMITTED, 100,
                        available);
}

static void test_escalation_stays_off_with_too_few_holds(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    assert_false(escalate(&c, false, 49, 0, 0));
    assert_false(escalate(&c, false, 0, 0, 0));
    assert_true(escalate(&c, false, 50, 0, 0));
}

static void test_escalation_switches_on_when_conversion_collapses_and_stock_is_low(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    /* 50 holds, 3.6 commits: 7.2% is 0.24 of the shop's 30% (< 0.25). */
    assert_true(escalate(&c, false, 50, 3.6, 20));
    assert_true(escalate(&c, false, 50, 0, 10));
    /* 3.9 commits: 0.26 of the shop's rate, not collapsed. */
    assert_false(escalate(&c, false, 50, 3.9, 20));
}

static void test_escalation_needs_both_collapse_and_low_availability(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    /* Conversion collapsed, but 21% is still available (threshold 20%). */
    assert_false(escalate(&c, false, 50, 0, 21));
    assert_false(escalate(&c, false, 500, 0, 100));
    /* Little available, but buyers convert like the shop does. */
    assert_false(escalate(&c, false, 50, 15, 0));
    /* No stock at all is not a collapse of availability. */
    assert_false(escalate_sig(&c, false, 50, 0, SHOP_STARTED, SHOP_COMMITTED, 0, 0));
}

static void test_escalation_holds_until_conversion_recovers_above_recover_pct(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    /* 0.4 of the shop's rate would not switch on (0.25) and does not switch
     * off (0.6): the state decides. */
    assert_false(escalate(&c, false, 50, 6, 10));
    assert_true(escalate(&c, true, 50, 6, 10));
    /* On stays on even with plenty available again. */
    assert_true(escalate(&c, true, 50, 6, 100));
    assert_true(escalate(&c, true, 50, 8.7, 100));  /* 0.58 */
    assert_false(escalate(&c, true, 50, 9.3, 100)); /* 0.62 */
    assert_false(escalate(&c, true, 50, 15, 0));    /* 1.0 */
}

static void test_escalation_switches_off_when_the_sku_goes_quiet(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    /* Fewer than a quarter of min_holds (12.5) recent holds: off. */
    assert_true(escalate(&c, true, 12.5, 0, 0));
    assert_false(escalate(&c, true, 12, 0, 0));
    assert_false(escalate(&c, true, 0, 0, 0));
}

static void test_escalation_compares_to_the_baseline_while_the_shop_is_new(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    /* The sku converts 12%. Against a shop with 5 holds all committed (100%)
     * that is 0.12: collapse. With 4 holds the shop is too new to know; the
     * 30% baseline makes it 0.4: no collapse. */
    assert_true(escalate_sig(&c, false, 50, 6, 5, 5, 100, 10));
    assert_false(escalate_sig(&c, false, 50, 6, 4, 4, 100, 10));
}


static void test_escalation_counts_units_held_by_non_buyers_not_holds(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    /* Eight holds (far below min_holds), none bought, while units ran out:
     * what trips it is the units held by identities that never bought. */
    policy_sku_signal_t sig = {.started = 8, .committed = 0,
                               .shop_started = SHOP_STARTED, .shop_committed = SHOP_COMMITTED,
                               .stock = 100, .available = 10,
                               .newcomer_held = c.escalation_newcomer_held_pct - 1};
    assert_false(policy_escalate(&c, false, &sig));
    sig.newcomer_held = c.escalation_newcomer_held_pct;
    assert_true(policy_escalate(&c, false, &sig));
    /* Buyers who pay like the shop's are not an attack, whatever they hold. */
    sig.committed = 8 * 0.3;
    assert_false(policy_escalate(&c, false, &sig));
    /* Units held but no hold counted at all: nothing to judge. */
    sig = (policy_sku_signal_t){.shop_started = SHOP_STARTED, .shop_committed = SHOP_COMMITTED,
                                .stock = 100, .available = 0, .newcomer_held = 100};
    assert_false(policy_escalate(&c, false, &sig));
}

static void test_escalation_on_held_units_stays_until_buyers_convert(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    policy_sku_signal_t sig = {.started = 4, .committed = 0,
                               .shop_started = SHOP_STARTED, .shop_committed = SHOP_COMMITTED,
                               .stock = 100, .available = 100,
                               .newcomer_held = c.escalation_newcomer_held_pct};
    /* Fewer than a quarter of min_holds, but the units are still held. */
    assert_true(policy_escalate(&c, true, &sig));
    sig.newcomer_held = 0; /* the carts went: a quiet sku recovers */
    assert_false(policy_escalate(&c, true, &sig));
}

static void test_disabled_escalation_never_escalates(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    c.escalation_enabled = 0;
    assert_false(escalate(&c, false, 1000, 0, 0));
    assert_false(escalate(&c, true, 1000, 0, 0));
}

/* ----------------------------------------------------------- determinism */

static void decide_into(const policy_hold_input_t *in, policy_decision_t *out)
{
    memset(out, 0, sizeof *out);
    *out = policy_decide_hold(in);
}

static void expect_same_bytes_twice(const policy_hold_input_t *in)
{
    policy_decision_t a, b;
    decide_into(in, &a);
    decide_into(in, &b);
    if (memcmp(&a, &b, sizeof a) != 0) {
        print_decision(&a);
        print_decision(&b);
        fail();
    }
}

static void test_the_same_input_gives_byte_identical_decisions(void **state)
{
    (void)state;
    policy_config_t c = policy_config_default();
    policy_hold_input_t in;
    input_init(&in, &c, 2); /* allowed */
    expect_same_bytes_twice(&in);
    in.lines[1] = line_of(&c, 7, 100, 9); /* challenged */
    expect_same_bytes_twice(&in);
    in.proof_bits = POW_PAID_BITS; /* allowed with bits and a scarce TTL */
    expect_same_bytes_twice(&in);
    in.ids[POLICY_ID_CUSTOMER] = never_buys(&c, POLICY_ID_CUSTOMER, 12); /* risky */
    expect_same_bytes_twice(&in);
    in.ids[POLICY_ID_CUSTOMER].budget_unit_ms = 1000; /* budget denial */
    expect_same_bytes_twice(&in);
    in.lines[0].qty = 11; /* quantity denial */
    expect_same_bytes_twice(&in);

    policy_identity_t ids[POLICY_ID_KINDS];
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        ids[k] = newcomer(&c, (policy_id_kind_t)k);
    }
    ids[POLICY_ID_FINGERPRINT].budget_unit_ms = 10;
    policy_decision_t a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a = policy_decide_extend(&c, ids, 600000);
    b = policy_decide_extend(&c, ids, 600000);
    assert_memory_equal(&a, &b, sizeof a);

    policy_config_t x = policy_config_default(), y = policy_config_default();
    assert_memory_equal(&x, &y, sizeof x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_config_is_valid_and_is_the_field_tables_defaults),
        cmocka_unit_test(test_field_ptr_and_get_address_the_named_member),
        cmocka_unit_test(test_config_rejects_each_field_one_below_its_min_naming_it),
        cmocka_unit_test(test_config_rejects_each_field_one_above_its_max_naming_it),
        cmocka_unit_test(test_fields_in_no_relation_are_valid_at_both_ends_of_their_range),
        cmocka_unit_test(test_fields_in_a_relation_are_valid_at_the_end_that_keeps_it),
        cmocka_unit_test(test_config_rejects_scarce_ttl_above_default_naming_scarce_ms),
        cmocka_unit_test(test_config_rejects_default_ttl_above_max_naming_default_ms),
        cmocka_unit_test(test_config_rejects_scarce_pct_at_or_above_plenty_naming_scarce_pct),
        cmocka_unit_test(test_config_rejects_base_bits_above_bits_max_naming_base_bits),
        cmocka_unit_test(test_config_rejects_recover_below_conversion_naming_recover_pct),
        cmocka_unit_test(test_rule_names_are_the_wire_strings_and_unique),
        cmocka_unit_test(test_id_kind_names_round_trip_and_near_misses_are_rejected),

        cmocka_unit_test(test_ipv4_prefix_masks_to_slash_24_by_default),
        cmocka_unit_test(test_ipv6_prefix_masks_to_slash_56_by_default),
        cmocka_unit_test(test_ipv4_prefix_follows_custom_prefix_bits),
        cmocka_unit_test(test_ipv6_prefix_follows_custom_prefix_bits),
        cmocka_unit_test(test_ip_prefix_rejects_what_is_not_an_address),
        cmocka_unit_test(test_ipv4_mapped_addresses_of_different_networks_get_different_prefixes),

        cmocka_unit_test(test_budget_capacity_is_unit_seconds_times_1000_per_kind),
        cmocka_unit_test(test_full_budget_stays_full),
        cmocka_unit_test(test_budget_refills_linearly_over_refill_ms),
        cmocka_unit_test(test_budget_refill_caps_at_capacity),
        cmocka_unit_test(test_budget_refill_does_nothing_when_time_stands_still_or_goes_back),

        cmocka_unit_test(test_decay_halves_after_one_half_life),
        cmocka_unit_test(test_decay_leaves_the_value_unchanged_at_dt_zero_or_back),
        cmocka_unit_test(test_newcomer_risk_is_zero_until_min_holds),
        cmocka_unit_test(test_identity_converting_at_the_shops_rate_has_zero_risk),
        cmocka_unit_test(test_identity_that_never_commits_after_many_holds_has_risk_one),
        cmocka_unit_test(test_risk_uses_the_baseline_while_the_shop_has_little_history),
        cmocka_unit_test(test_a_shop_rate_dragged_below_the_baseline_counts_as_the_baseline),
        cmocka_unit_test(test_a_line_over_the_available_units_is_not_challenged),
        cmocka_unit_test(test_risk_falls_as_conversion_rises_and_stays_in_zero_to_one),
        cmocka_unit_test(test_risk_is_zero_when_suspect_pct_is_zero),

        cmocka_unit_test(test_scarcity_ttl_is_the_default_while_plenty_is_left),
        cmocka_unit_test(test_scarcity_ttl_is_scarce_at_and_below_scarce_pct),
        cmocka_unit_test(test_scarcity_ttl_is_linear_between_scarce_and_plenty),
        cmocka_unit_test(test_scarcity_ttl_is_scarce_with_no_stock),

        cmocka_unit_test(test_one_or_two_plentiful_units_from_a_trusted_buyer_cost_no_bits),
        cmocka_unit_test(test_line_bits_grow_with_quantity),
        cmocka_unit_test(test_line_bits_grow_with_scarcity),
        cmocka_unit_test(test_line_bits_are_capped_at_bits_max),
        cmocka_unit_test(test_line_bits_are_zero_when_the_challenge_is_disabled),
        cmocka_unit_test(test_line_bits_are_nonzero_on_an_escalated_sku_even_for_one_unit),
        cmocka_unit_test(test_line_bits_add_risk_bits_for_a_suspect),

        cmocka_unit_test(test_line_qty_at_the_cap_is_allowed_one_more_is_denied),
        cmocka_unit_test(test_line_qty_denial_names_the_line_over_the_cap),
        cmocka_unit_test(test_customer_units_per_sku_at_the_cap_allowed_one_more_waits_the_window),
        cmocka_unit_test(test_customer_units_per_sku_retry_is_never_when_no_window_is_left),
        cmocka_unit_test(test_customer_units_per_sku_retry_is_never_when_the_qty_alone_is_over),
        cmocka_unit_test(test_identity_holds_at_the_cap_allowed_one_more_denied_per_kind),
        cmocka_unit_test(test_identity_units_at_the_cap_allowed_one_more_denied_per_kind),
        cmocka_unit_test(test_absent_identities_are_not_capped),
        cmocka_unit_test(test_hold_share_at_the_limit_allowed_one_more_denied),
        cmocka_unit_test(test_hold_share_uses_a_skus_own_held_pct_max),
        cmocka_unit_test(test_escalated_sku_takes_no_holds_under_the_default_share),
        cmocka_unit_test(test_buy_now_is_exempt_from_share_identity_caps_and_budgets),
        cmocka_unit_test(test_buy_now_still_obeys_the_quantity_caps),
        cmocka_unit_test(test_budget_equal_to_the_cost_is_allowed_less_is_denied_per_kind),
        cmocka_unit_test(test_budget_retry_is_the_first_instant_the_refill_covers_the_cost),
        cmocka_unit_test(test_budget_retry_is_never_when_the_cost_exceeds_the_capacity),
        cmocka_unit_test(test_challenge_without_proof_names_the_bits_and_with_proof_allows),
        cmocka_unit_test(test_challenge_on_an_escalated_sku_names_the_escalation_rule),
        cmocka_unit_test(test_no_challenge_when_nothing_costs_bits_even_with_a_proof),
        cmocka_unit_test(test_shorter_requested_ttl_wins),
        cmocka_unit_test(test_requested_ttl_above_the_default_is_granted_up_to_max_while_plenty),
        cmocka_unit_test(test_granted_ttl_is_capped_by_max_ms_even_above_a_skus_default),
        cmocka_unit_test(test_granted_ttl_is_shortened_by_the_scarcest_line),
        cmocka_unit_test(test_escalated_sku_grants_the_escalation_ttl),
        cmocka_unit_test(test_risky_identity_gets_a_shorter_ttl),
        cmocka_unit_test(test_risky_identity_gets_lower_caps),
        cmocka_unit_test(test_rules_apply_in_order_quantity_identity_share_budget_challenge),
        cmocka_unit_test(test_a_solved_challenge_is_never_followed_by_a_denial),
        cmocka_unit_test(test_genuine_buyer_is_allowed_without_a_challenge),
        cmocka_unit_test(test_hoarder_of_one_sku_is_challenged_then_denied_per_sku),
        cmocka_unit_test(test_hoarder_across_skus_is_challenged_then_denied_by_units),

        cmocka_unit_test(test_extend_ttl_is_capped_by_life_max),
        cmocka_unit_test(test_extend_ttl_is_capped_by_scarcity),
        cmocka_unit_test(test_extend_ttl_is_zero_once_the_life_is_used_up),
        cmocka_unit_test(test_decide_extend_is_allowed_within_every_budget),
        cmocka_unit_test(test_decide_extend_is_denied_by_the_short_budget_with_its_rule),

        cmocka_unit_test(test_escalation_stays_off_with_too_few_holds),
        cmocka_unit_test(test_escalation_switches_on_when_conversion_collapses_and_stock_is_low),
        cmocka_unit_test(test_escalation_needs_both_collapse_and_low_availability),
        cmocka_unit_test(test_escalation_holds_until_conversion_recovers_above_recover_pct),
        cmocka_unit_test(test_escalation_switches_off_when_the_sku_goes_quiet),
        cmocka_unit_test(test_escalation_compares_to_the_baseline_while_the_shop_is_new),
        cmocka_unit_test(test_escalation_counts_units_held_by_non_buyers_not_holds),
        cmocka_unit_test(test_escalation_on_held_units_stays_until_buyers_convert),
        cmocka_unit_test(test_disabled_escalation_never_escalates),
        cmocka_unit_test(test_fingerprint_and_address_units_per_sku_at_the_cap_then_one_more),
        cmocka_unit_test(test_purchase_caps_count_against_buy_now_too),
        cmocka_unit_test(test_newcomer_pool_at_its_share_then_one_unit_over),
        cmocka_unit_test(test_newcomer_pool_never_refuses_an_ordinary_line_nor_a_buyer),
        cmocka_unit_test(test_newcomer_pool_leaves_a_line_the_stock_cannot_cover_to_the_engine),
        cmocka_unit_test(test_a_proof_pays_up_to_its_price_and_a_higher_price_asks_again),
        cmocka_unit_test(test_an_ordinary_line_is_never_asked_twice),
        cmocka_unit_test(test_scarce_ttl_never_falls_below_the_time_buyers_take_to_pay),

        cmocka_unit_test(test_the_same_input_gives_byte_identical_decisions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
