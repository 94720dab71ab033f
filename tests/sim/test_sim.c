/*
 * test_sim.c - the simulator: the same seed gives the same run; small runs
 * whose outcome follows by hand; the guard's invariants hold throughout;
 * and what the model implies about the naive shop and the defaults under
 * the built-in attacks (the figures docs/SIM.md reports).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

static sim_result_t run(const sim_scenario_t *s, const char *policy, uint64_t seed,
                        bool check, uint32_t samples)
{
    sim_policy_t p;
    assert_true(sim_policy_builtin(policy, &p));
    sim_options_t o = {.seed = seed, .check_invariants = check, .samples = samples};
    sim_result_t r;
    char err[256] = "";
    if (sim_run(s, &p, &o, &r, err, sizeof err) != 0) {
        fail_msg("sim_run: %s", err);
    }
    return r;
}

/* One sku, buyers who all pay at once after exactly a minute, no attack. */
static sim_scenario_t tiny(int64_t stock, uint32_t buyers)
{
    sim_scenario_t s;
    memset(&s, 0, sizeof s);
    snprintf(s.name, sizeof s.name, "tiny");
    s.sku_count = 1;
    snprintf(s.skus[0].sku, sizeof s.skus[0].sku, "item");
    s.skus[0].stock = stock;
    s.skus[0].price_cents = 1000;
    s.duration_ms = 3600000;
    s.genuine = buyers;
    s.curve = SIM_CURVE_STEADY;
    s.qty_max = 1;
    s.think_ms_median = 60000;
    s.think_sigma = 0; /* exactly a minute */
    s.browser_hashes_per_s = 85000;
    return s;
}

static void test_the_same_seed_gives_the_same_run_and_another_seed_another(void **state)
{
    (void)state;
    sim_scenario_t s;
    assert_true(sim_scenario_builtin("merch-2020", &s));
    s.genuine = 1500;
    s.attackers = 150;
    sim_result_t a = run(&s, "default", 7, false, 16);
    sim_result_t b = run(&s, "default", 7, false, 16);
    sim_result_t c = run(&s, "default", 8, false, 16);
    /* Every figure and every point of the series. */
    assert_int_equal(a.events, b.events);
    assert_memory_equal(&a, &b, offsetof(sim_result_t, samples));
    assert_memory_equal(a.sample_sold, b.sample_sold, 16 * sizeof(int64_t));
    assert_memory_equal(a.sample_held, b.sample_held, 16 * sizeof(int64_t));
    assert_true(a.events != c.events || a.genuine_units_bought != c.genuine_units_bought ||
                a.attacker_holds != c.attacker_holds);
    sim_result_free(&a);
    sim_result_free(&b);
    sim_result_free(&c);
}

/* Stock for all: every buyer who pays is served, and pays the price. */
static void test_buyers_who_pay_are_all_served_when_stock_suffices(void **state)
{
    (void)state;
    sim_scenario_t s = tiny(10, 5);
    sim_result_t r = run(&s, "naive", 1, true, 0);
    assert_int_equal(r.genuine_units_wanted, 5);
    assert_int_equal(r.genuine_units_bought, 5);
    assert_int_equal(r.genuine_buyers_served, 5);
    assert_int_equal(r.revenue_cents, 5 * 1000);
    assert_int_equal(r.units_sold, 5);
    assert_int_equal(r.oversells, 0);
    sim_result_free(&r);
}

/* Two units, three buyers who arrive hours apart and pay within a minute:
 * the first two buy, the third finds it sold out, with nothing in a cart. */
static void test_the_third_buyer_of_two_units_finds_them_sold(void **state)
{
    (void)state;
    sim_scenario_t s = tiny(2, 3);
    sim_result_t r = run(&s, "naive", 3, true, 0);
    assert_int_equal(r.genuine_units_bought, 2);
    assert_int_equal(r.genuine_buyers_served, 2);
    assert_int_equal(r.units_sold, 2);
    sim_result_t d = run(&s, "default", 3, true, 0);
    assert_int_equal(d.genuine_units_bought, 2);
    sim_result_free(&r);
    sim_result_free(&d);
}

/* Without holds two buyers who both saw the last unit both pay: one is
 * served, the other refunded (an oversell). Holds make the second wait. */
static void test_a_shop_without_holds_oversells_the_last_unit(void **state)
{
    (void)state;
    sim_scenario_t s = tiny(1, 2);
    s.curve = SIM_CURVE_FLASH;
    s.spread_ms = 1; /* both arrive in the first milliseconds */
    sim_result_t none = run(&s, "none", 5, true, 0);
    assert_int_equal(none.genuine_units_bought, 1);
    assert_int_equal(none.oversells, 1);
    sim_result_t naive = run(&s, "naive", 5, true, 0);
    assert_int_equal(naive.genuine_units_bought, 1);
    assert_int_equal(naive.oversells, 0);
    sim_result_free(&none);
    sim_result_free(&naive);
}

/* The guard's invariants hold after every 1,024 events of an attack, under
 * every policy (the run asserts guard_check()). */
static void test_invariants_hold_throughout_an_attack_under_every_policy(void **state)
{
    (void)state;
    static const char *const policies[] = {"none", "naive", "quantity-cap", "default",
                                           "strict"};
    sim_scenario_t s;
    assert_true(sim_scenario_builtin("merch-2020", &s));
    s.genuine = 800;
    s.attackers = 80;
    for (size_t i = 0; i < sizeof policies / sizeof policies[0]; i++) {
        sim_result_t r = run(&s, policies[i], 11, true, 8);
        assert_true(r.units_sold <= 980); /* the catalog's stock: never oversold */
        assert_true(r.genuine_units_bought <= r.units_sold);
        sim_result_free(&r);
    }
}

/* merch-2020: 400 hoarders asking 10 units each want four times the stock,
 * and under the naive shop re-hold every unit for 30 minutes as soon as it
 * frees, from two hours in until the day ends: genuine buyers get what sells
 * before the attack and what they catch between expiries, far less than the
 * same shop sells without the attack. The defaults price and cap the
 * hoarding (budgets, reputation, proofs, escalation) and sell the rest by
 * buying now, so genuine fill stays close to the control. */
static void test_merch_2020_naive_falls_far_below_control_default_stays_close(void **state)
{
    (void)state;
    sim_scenario_t attack, control;
    assert_true(sim_scenario_builtin("merch-2020", &attack));
    assert_true(sim_scenario_builtin("merch-2020-control", &control));
    uint64_t seed = 2020;
    printf("seed=%llu\n", (unsigned long long)seed);
    sim_result_t na = run(&attack, "naive", seed, false, 0);
    sim_result_t nc = run(&control, "naive", seed, false, 0);
    sim_result_t da = run(&attack, "default", seed, false, 0);
    sim_result_t dc = run(&control, "default", seed, false, 0);
    printf("naive %llu of %llu, default %llu of %llu\n",
           (unsigned long long)na.genuine_units_bought, (unsigned long long)nc.genuine_units_bought,
           (unsigned long long)da.genuine_units_bought, (unsigned long long)dc.genuine_units_bought);
    assert_true(na.genuine_units_bought * 4 < nc.genuine_units_bought * 3); /* < 75% */
    assert_true(da.genuine_units_bought * 10 >= dc.genuine_units_bought * 9); /* >= 90% */
    assert_true(da.attacker_unit_hours * 2 < na.attacker_unit_hours);
    assert_true(na.genuine_saw_sold_out_while_held > da.genuine_saw_sold_out_while_held);
    sim_result_free(&na);
    sim_result_free(&nc);
    sim_result_free(&da);
    sim_result_free(&dc);
}

/* Plots: one per policy with its three series of `samples` points, and
 * the fill chart; writing them does not change the run. */
static void test_plots_are_written_and_leave_the_run_unchanged(void **state)
{
    (void)state;
    sim_scenario_t s = tiny(10, 20);
    sim_result_t with = run(&s, "default", 9, false, 16);
    sim_result_t without = run(&s, "default", 9, false, 0);
    assert_int_equal(with.events, without.events);
    assert_int_equal(with.genuine_units_bought, without.genuine_units_bought);
    char dir[] = "/tmp/hf-sim-plots-XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(sim_plot(dir, &s, &with, &without, 1), 0);
    char path[128], text[65536];
    snprintf(path, sizeof path, "%s/tiny-default.svg", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    assert_non_null(strstr(text, "<svg"));
    assert_non_null(strstr(text, "</svg>"));
    int polylines = 0, points = 0;
    for (const char *p = strstr(text, "points=\""); p != NULL; p = strstr(p + 1, "points=\"")) {
        polylines++;
        for (const char *q = p + 8; *q != '"'; q++) {
            points += *q == ',';
        }
    }
    assert_int_equal(polylines, 3);
    assert_int_equal(points, 3 * 16);
    snprintf(path, sizeof path, "%s/tiny-fill.svg", dir);
    f = fopen(path, "r");
    assert_non_null(f);
    fclose(f);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    sim_result_free(&with);
    sim_result_free(&without);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* A scenario file starts from a built-in and changes what it names; a
 * policy file is a policy document over the defaults; a typo is refused
 * with its name. */
static void test_scenario_and_policy_files_are_read_strictly(void **state)
{
    (void)state;
    char dir[] = "/tmp/hf-sim-files-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], err[256] = "";
    snprintf(path, sizeof path, "%s/shop.json", dir);
    write_file(path, "{\"base\": \"merch-2020\", \"name\": \"mine\", \"genuine\": 50, "
                     "\"curve\": \"flash\", \"skus\": [{\"sku\": \"mug\", \"stock\": 7}]}");
    sim_scenario_t s;
    assert_true(sim_scenario_file(path, &s, err, sizeof err));
    assert_string_equal(s.name, "mine");
    assert_int_equal(s.genuine, 50);
    assert_int_equal(s.attackers, 400); /* from the base */
    assert_int_equal(s.curve, SIM_CURVE_FLASH);
    assert_int_equal(s.sku_count, 1);
    assert_int_equal(s.skus[0].stock, 7);
    write_file(path, "{\"base\": \"merch-2020\", \"genuin\": 5}");
    assert_false(sim_scenario_file(path, &s, err, sizeof err));
    assert_non_null(strstr(err, "genuin"));
    write_file(path, "{\"abandon_pct\": 101}");
    assert_false(sim_scenario_file(path, &s, err, sizeof err));
    assert_non_null(strstr(err, "abandon_pct"));
    snprintf(path, sizeof path, "%s/policy.json", dir);
    write_file(path, "{\"quantity\": {\"line_qty_max\": 3}}");
    sim_policy_t p;
    assert_true(sim_policy_file(path, &p, err, sizeof err));
    assert_int_equal(p.config.quantity_line_qty_max, 3);
    assert_int_equal(p.config.identity_customer_holds_max,
                     policy_config_default().identity_customer_holds_max);
    write_file(path, "{\"ttl\": {\"scarce_ms\": 700000}}");
    assert_false(sim_policy_file(path, &p, err, sizeof err));
    assert_non_null(strstr(err, "scarce_ms"));
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_unknown_names_are_refused(void **state)
{
    (void)state;
    sim_scenario_t s;
    sim_policy_t p;
    assert_false(sim_scenario_builtin("merch-2021", &s));
    assert_false(sim_policy_builtin("lenient", &p));
    assert_true(sim_scenario_builtin("flash-sale-control", &s));
    assert_int_equal(s.attackers, 0);
}

/* Scalpers are buyers: every unit sold went to a genuine buyer or a
 * scalper, none past the stock, none past what the scalpers wanted, and
 * with the guard's invariants checked throughout; the control has none. */
static void test_scalpers_buy_within_the_stock_and_what_they_want(void **state)
{
    (void)state;
    static const char *const policies[] = {"naive", "quantity-cap", "default", "strict"};
    sim_scenario_t s, control;
    assert_true(sim_scenario_builtin("scalper-drop", &s));
    assert_true(sim_scenario_builtin("scalper-drop-control", &control));
    s.genuine = control.genuine = 2000;
    for (size_t i = 0; i < sizeof policies / sizeof policies[0]; i++) {
        sim_result_t r = run(&s, policies[i], 3, true, 0), c = run(&control, policies[i], 3, true, 0);
        assert_int_equal(r.genuine_units_bought + r.scalper_units_bought, r.units_sold);
        assert_true(r.units_sold <= 500);
        assert_true(r.scalper_units_bought > 0);
        assert_true(r.scalper_units_bought <= (uint64_t)s.scalpers * s.scalper_units);
        assert_int_equal(c.scalper_units_bought, 0);
        assert_int_equal(c.genuine_units_bought, c.units_sold);
        sim_result_free(&r);
        sim_result_free(&c);
    }
}

/* By hand: no genuine buyers, one sku of 10. One scalper after 3 gets
 * exactly 3; two after 10 each empty the shelf, and not a unit more. */
static void test_scalpers_by_hand(void **state)
{
    (void)state;
    sim_scenario_t s = tiny(10, 0);
    s.attack_end_ms = s.duration_ms;
    s.attacker_hashes_per_s = 1e7;
    s.attacker_cpu_s = 60;
    s.scalpers = 1;
    s.scalper_units = 3;
    sim_result_t r = run(&s, "naive", 1, true, 0);
    assert_int_equal(r.scalper_units_bought, 3);
    assert_int_equal(r.units_sold, 3);
    assert_int_equal(r.revenue_cents, 3 * 1000);
    sim_result_free(&r);
    s.scalpers = 2;
    s.scalper_units = 10;
    r = run(&s, "naive", 1, true, 0);
    assert_int_equal(r.scalper_units_bought, 10);
    assert_int_equal(r.units_sold, 10);
    sim_result_free(&r);
}


/* Genuine units of the attacked run as a share of its control, in percent. */
static double of_control(const sim_result_t *r, const sim_result_t *c)
{
    assert_true(c->genuine_units_bought > 0);
    return 100.0 * (double)r->genuine_units_bought / (double)c->genuine_units_bought;
}

/* At most one real buyer in a hundred refused or kept a second by proofs. */
static void assert_few_burdened(const sim_result_t *r)
{
    if (r->genuine_burdened * 100 > r->genuine_buyers) {
        fail_msg("%s: %llu of %llu buyers burdened", r->policy,
                 (unsigned long long)r->genuine_burdened, (unsigned long long)r->genuine_buyers);
    }
}

static void test_quick_drop_attack_is_real_and_the_defaults_hold_it(void **state)
{
    (void)state;
    sim_scenario_t s, control;
    assert_true(sim_scenario_builtin("quick-drop", &s));
    assert_true(sim_scenario_builtin("quick-drop-control", &control));
    sim_result_t na = run(&s, "naive", 1, false, 0), nc = run(&control, "naive", 1, false, 0);
    sim_result_t da = run(&s, "default", 1, true, 0), dc = run(&control, "default", 1, true, 0);
    print_message("quick-drop: naive %.0f%%, default %.0f%% of control\n", of_control(&na, &nc),
                  of_control(&da, &dc));
    assert_true(of_control(&na, &nc) <= 40.0); /* the attack works on a shop without defenses */
    assert_true(of_control(&da, &dc) >= 95.0);
    assert_few_burdened(&da);
    assert_few_burdened(&dc);
    assert_true(da.attacker_holds > 0 && da.attacker_denied > 0);
    sim_result_free(&na);
    sim_result_free(&nc);
    sim_result_free(&da);
    sim_result_free(&dc);
}

static void test_rally_trolls_who_register_get_a_small_share_of_the_seats(void **state)
{
    (void)state;
    sim_scenario_t s, control;
    assert_true(sim_scenario_builtin("rally-2020", &s));
    assert_true(sim_scenario_builtin("rally-2020-control", &control));
    sim_result_t na = run(&s, "naive", 1, false, 0);
    sim_result_t da = run(&s, "default", 1, false, 0), dc = run(&control, "default", 1, false, 0);
    int64_t seats = s.skus[0].stock;
    print_message("rally-2020: trolls take %llu seats naive, %llu default; default %.0f%% of "
                  "control\n",
                  (unsigned long long)na.scalper_units_bought,
                  (unsigned long long)da.scalper_units_bought, of_control(&da, &dc));
    assert_true(na.scalper_units_bought * 2 > (uint64_t)seats); /* most, without caps */
    assert_true(da.scalper_units_bought * 5 <= (uint64_t)seats); /* at most a fifth */
    assert_true(of_control(&da, &dc) >= 95.0);
    assert_few_burdened(&da);
    assert_few_burdened(&dc);
    sim_result_free(&na);
    sim_result_free(&da);
    sim_result_free(&dc);
}

static void test_scalper_drop_fans_get_no_fewer_under_the_defaults_than_naive(void **state)
{
    (void)state;
    sim_scenario_t s;
    assert_true(sim_scenario_builtin("scalper-drop", &s));
    sim_result_t na = run(&s, "naive", 1, false, 0), da = run(&s, "default", 1, false, 0);
    print_message("scalper-drop: fans %llu naive, %llu default\n",
                  (unsigned long long)na.genuine_units_bought,
                  (unsigned long long)da.genuine_units_bought);
    assert_true(da.genuine_units_bought >= na.genuine_units_bought);
    assert_true(da.genuine_served_from_waitlist > 0); /* the line serves fans */
    assert_few_burdened(&da);
    sim_result_free(&na);
    sim_result_free(&da);
}

/* The ablation turns exactly one defense off each time, and the one that
 * stops quick-drop's hoarders shows: without reclaim they keep the units. */
static void test_ablation_switches_one_defense_off_at_a_time(void **state)
{
    (void)state;
    sim_policy_t base, off;
    assert_true(sim_policy_builtin("default", &base));
    assert_true(sim_ablation_count() >= 10);
    int reclaim = -1;
    for (uint32_t i = 0; i < sim_ablation_count(); i++) {
        sim_policy_ablated(&base, i, &off);
        int differ = 0;
        for (int f = 0; f < POLICY_FIELD_COUNT; f++) {
            differ += policy_field_get(&off.config, (policy_field_t)f) !=
                      policy_field_get(&base.config, (policy_field_t)f);
        }
        assert_int_equal(differ, 1);
        assert_true(off.name[0] == '-');
        reclaim = strcmp(off.name, "-reclaim") == 0 ? (int)i : reclaim;
    }
    assert_true(reclaim >= 0);
    sim_scenario_t s;
    assert_true(sim_scenario_builtin("quick-drop", &s));
    sim_policy_ablated(&base, (uint32_t)reclaim, &off);
    sim_options_t o = {.seed = 1};
    sim_result_t with, without;
    char err[256];
    assert_int_equal(sim_run(&s, &base, &o, &with, err, sizeof err), 0);
    assert_int_equal(sim_run(&s, &off, &o, &without, err, sizeof err), 0);
    assert_true(without.genuine_units_bought < with.genuine_units_bought);
    assert_true(without.attacker_unit_hours > with.attacker_unit_hours);
    sim_result_free(&with);
    sim_result_free(&without);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_same_seed_gives_the_same_run_and_another_seed_another),
        cmocka_unit_test(test_buyers_who_pay_are_all_served_when_stock_suffices),
        cmocka_unit_test(test_the_third_buyer_of_two_units_finds_them_sold),
        cmocka_unit_test(test_a_shop_without_holds_oversells_the_last_unit),
        cmocka_unit_test(test_invariants_hold_throughout_an_attack_under_every_policy),
        cmocka_unit_test(test_merch_2020_naive_falls_far_below_control_default_stays_close),
        cmocka_unit_test(test_plots_are_written_and_leave_the_run_unchanged),
        cmocka_unit_test(test_scenario_and_policy_files_are_read_strictly),
        cmocka_unit_test(test_unknown_names_are_refused),
        cmocka_unit_test(test_scalpers_buy_within_the_stock_and_what_they_want),
        cmocka_unit_test(test_scalpers_by_hand),
        cmocka_unit_test(test_quick_drop_attack_is_real_and_the_defaults_hold_it),
        cmocka_unit_test(test_rally_trolls_who_register_get_a_small_share_of_the_seats),
        cmocka_unit_test(test_scalper_drop_fans_get_no_fewer_under_the_defaults_than_naive),
        cmocka_unit_test(test_ablation_switches_one_defense_off_at_a_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
