/*
 * test_sim_live.c - `holdfast sim --live URL` against the real server.
 *
 * A live run cannot be compared with a fixed outcome (the server's clock and
 * the machine's speed are real), so these tests check what must hold for
 * any run: only loopback is ever contacted, the run stays within its
 * request budget, the populations are the scenario's scaled to the server's
 * stock, what the run says it bought is what the server sold, the server
 * never oversells, and the server's policy is what the hoarders meet.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "hf_test_http.h"

typedef hf_fixture_t fx_t;

/* merch-2020's catalog in the scenario: 980 units. The server gets 98 of
 * them, so the populations are a tenth of the scenario's (4000 and 400). */
static const struct {
    const char *sku;
    long long stock;
} catalog[] = {{"cap-red", 20}, {"cap-white", 15}, {"cufflinks-gold", 4}, {"shirt-m", 59}};
#define CATALOG_UNITS 98
#define SCENARIO_UNITS 980

static int setup(void **state)
{
    return hf_fixture_setup(state, NULL, false);
}

static int teardown(void **state)
{
    return hf_fixture_teardown(state);
}

/* Starts the server with config written exactly (and extra flags, or
 * NULL), and the catalog. */
static void start_shop_with(fx_t *fx, const char *config, const char *const *extra)
{
    assert_int_equal(hf_server_write_config_raw(&fx->srv, config), 0);
    assert_int_equal(hf_server_start(&fx->srv, extra), 0);
    fx->cl.port = fx->srv.port;
    for (size_t i = 0; i < sizeof catalog / sizeof catalog[0]; i++) {
        assert_int_equal(hf_sku_put(&fx->cl, catalog[i].sku, catalog[i].stock), 201);
    }
}

static void start_shop(fx_t *fx, const char *config)
{
    start_shop_with(fx, config, NULL);
}

/* A demo server: the attack panel's routes answer. */
static const char *const panel_on[] = {"--attack-panel", "on", NULL};

static void url_of(const fx_t *fx, char *out, size_t size)
{
    snprintf(out, size, "http://127.0.0.1:%u", fx->srv.port);
}

/* Runs `holdfast sim --live URL --json ...extra` and parses its output. */
static json_t *run_live(const fx_t *fx, const char *const *extra, hf_run_result_t *res)
{
    char url[64];
    url_of(fx, url, sizeof url);
    const char *argv[24] = {"sim", "--live", url, "--json", "--seed", "3"};
    size_t n = 6;
    for (size_t i = 0; extra[i] != NULL && n < 23; i++) {
        argv[n++] = extra[i];
    }
    argv[n] = NULL;
    int status = hf_run(argv, 60000, res);
    if (status != 0) {
        fprintf(stderr, "sim --live exited %d:\n%s\n%s\n", status, res->out, res->err);
    }
    assert_int_equal(status, 0);
    json_error_t err;
    json_t *doc = json_loads(res->out, 0, &err);
    assert_non_null(doc);
    return doc;
}

static long long field(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    assert_true(json_is_integer(v));
    return (long long)json_integer_value(v);
}

static const json_t *result_of(const json_t *doc)
{
    const json_t *results = json_object_get(doc, "results");
    assert_int_equal(json_array_size(results), 1);
    return json_array_get(results, 0);
}

/* The server's totals: never more held and sold than stock; units sold. */
static long long server_sold(const fx_t *fx)
{
    long long sold = 0;
    for (size_t i = 0; i < sizeof catalog / sizeof catalog[0]; i++) {
        hf_sku_counts_t c;
        assert_int_equal(hf_sku_get(&fx->cl, catalog[i].sku, &c), 200);
        assert_int_equal(c.stock, catalog[i].stock);
        assert_true(c.held >= 0 && c.sold >= 0 && c.held + c.sold <= c.stock);
        assert_int_equal(c.available, c.stock - c.held - c.sold);
        sold += c.sold;
    }
    return sold;
}

/* ------------------------------------------------------------------ tests */

static void test_live_refuses_anything_but_loopback(void **state)
{
    (void)state;
    hf_run_result_t *res = calloc(1, sizeof *res);
    assert_non_null(res);
    /* Refused before any connection is tried: nothing leaves the machine. */
    const char *far[] = {"http://10.1.2.3:8080", "http://192.0.2.1", "http://example.com:80",
                         "http://[2001:db8::1]:80", "http://0.0.0.0:8080", NULL};
    for (size_t i = 0; far[i] != NULL; i++) {
        const char *argv[] = {"sim", "--live", far[i], "--seconds", "1", NULL};
        assert_int_equal(hf_run(argv, 10000, res), 2);
        assert_non_null(strstr(res->err, "loopback"));
    }
    const char *malformed[] = {"https://127.0.0.1:8080", "127.0.0.1:8080",
                               "http://127.0.0.1:8080/v1", "http://127.0.0.1:99999",
                               "http://127.0.0.1:", NULL};
    for (size_t i = 0; malformed[i] != NULL; i++) {
        const char *argv[] = {"sim", "--live", malformed[i], "--seconds", "1", NULL};
        assert_int_equal(hf_run(argv, 10000, res), 2);
        assert_non_null(strstr(res->err, "not a URL"));
    }
    free(res);
}

static void test_live_refuses_bad_options(void **state)
{
    (void)state;
    hf_run_result_t *res = calloc(1, sizeof *res);
    assert_non_null(res);
    const char *const cases[][8] = {
        {"sim", "--live", "http://127.0.0.1:1", "--seconds", "0", NULL},
        {"sim", "--live", "http://127.0.0.1:1", "--seconds", "601", NULL},
        {"sim", "--live", "http://127.0.0.1:1", "--requests", "9", NULL},
        {"sim", "--live", "http://127.0.0.1:1", "--requests", "1000001", NULL},
        {"sim", "--live", "http://127.0.0.1:1", "--genuine", "20001", NULL},
        {"sim", "--live", "http://127.0.0.1:1", "--attackers", "2001", NULL},
        {"sim", "--live", "http://127.0.0.1:1", "--policy", "naive", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(hf_run(cases[i], 10000, res), 2);
        assert_true(strlen(res->err) > 0);
    }
    free(res);
}

/* A port bound to nothing that listens: the connection is refused. */
static void test_live_without_a_server_fails_cleanly(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", ntohs(a.sin_port));
    hf_run_result_t *res = calloc(1, sizeof *res);
    assert_non_null(res);
    const char *argv[] = {"sim", "--live", url, "--seconds", "1", NULL};
    assert_int_equal(hf_run(argv, 10000, res), 1);
    assert_non_null(strstr(res->err, "cannot connect"));
    close(fd);
    free(res);
}

/* The shop's default policy: hoarders are asked to pay (they want more
 * than challenge.free_units), the run's purchases are the server's sales,
 * and the populations are the scenario's scaled to the server's stock. */
static void test_live_run_meets_the_servers_defenses(void **state)
{
    fx_t *fx = *state;
    start_shop(fx, "{}");
    hf_run_result_t *res = calloc(1, sizeof *res);
    assert_non_null(res);
    const char *extra[] = {"--scenario", "merch-2020", "--seconds", "4", NULL};
    json_t *doc = run_live(fx, extra, res);
    const json_t *live = json_object_get(doc, "live");
    const json_t *r = result_of(doc);
    assert_int_equal(field(live, "failed"), 0);
    assert_true(json_is_true(json_object_get(live, "policy_read")));
    assert_true(field(live, "requests") > 0);
    assert_int_equal(field(doc, "genuine"), (4000 * CATALOG_UNITS + SCENARIO_UNITS / 2) / SCENARIO_UNITS);
    assert_int_equal(field(doc, "attackers"), (400 * CATALOG_UNITS + SCENARIO_UNITS / 2) / SCENARIO_UNITS);
    /* Only the run's buyers buy here: their units are the server's sales. */
    long long sold = server_sold(fx);
    assert_int_equal(field(r, "units_sold"), sold);
    assert_int_equal(field(r, "genuine_units_bought"), sold);
    assert_true(field(r, "attacker_challenged") > 0);
    assert_int_equal(field(r, "oversells"), 0);
    /* The server counted the challenges it made. */
    hf_response_t m;
    assert_int_equal(hf_call(&fx->cl, "GET", "/metrics", NULL, NULL, &m), 0);
    assert_int_equal(m.status, 200);
    assert_non_null(strstr(m.body, "holdfast_policy_challenges_total{rule="));
    hf_response_free(&m);
    json_decref(doc);
    free(res);
}

/* With every defense off (the naive shop), hoarders hold and nobody is
 * challenged; the run stops at its request budget, which it never exceeds. */
static void test_live_run_stays_within_its_request_budget(void **state)
{
    fx_t *fx = *state;
    start_shop(fx, "{\"policy\": " HF_POLICY_OFF "}");
    hf_run_result_t *res = calloc(1, sizeof *res);
    assert_non_null(res);
    const char *extra[] = {"--scenario", "flash-sale", "--seconds", "20", "--requests", "60",
                           NULL};
    json_t *doc = run_live(fx, extra, res);
    const json_t *live = json_object_get(doc, "live");
    const json_t *r = result_of(doc);
    assert_int_equal(field(live, "requests"), 60);
    assert_true(json_is_true(json_object_get(live, "stopped_at_requests")));
    assert_true(field(r, "attacker_holds") > 0);
    assert_int_equal(field(r, "attacker_challenged"), 0);
    assert_int_equal(field(r, "genuine_challenged"), 0);
    assert_int_equal(field(r, "units_sold"), server_sold(fx));
    /* The server saw no more hold requests than the budget. */
    hf_response_t m;
    assert_int_equal(hf_call(&fx->cl, "GET", "/metrics", NULL, NULL, &m), 0);
    assert_int_equal(m.status, 200);
    const char *line = strstr(m.body, "holdfast_http_requests_total{route=\"/v1/holds\",");
    long long holds = 0;
    while (line != NULL) {
        const char *value = strchr(line, '}');
        holds += atoll(value + 2);
        line = strstr(value, "holdfast_http_requests_total{route=\"/v1/holds\",");
    }
    assert_true(holds > 0 && holds <= 60);
    hf_response_free(&m);
    json_decref(doc);
    free(res);
}

static long long metric_value(const char *text, const char *name)
{
    const char *line = strstr(text, name);
    return line != NULL ? atoll(line + strlen(name)) : -1;
}

/* With a shop key, every hold and waitlist entry is touched with the
 * secret its reply handed out: none is refused, none goes without. */
static void test_live_run_with_a_shop_key_sends_each_holds_secret(void **state)
{
    fx_t *fx = *state;
    fx->cl.bearer = "a1"; /* the catalog is the admin's to set */
    start_shop(fx, "{\"api_keys\": [\"s1\"], \"admin_key\": \"a1\"}");
    hf_run_result_t *res = calloc(1, sizeof *res);
    assert_non_null(res);
    const char *extra[] = {"--scenario", "merch-2020", "--seconds", "4", "--key", "s1", NULL};
    json_t *doc = run_live(fx, extra, res);
    const json_t *live = json_object_get(doc, "live");
    assert_int_equal(field(live, "failed"), 0);
    assert_false(json_is_true(json_object_get(live, "policy_read"))); /* the admin's to read */
    assert_int_equal(field(result_of(doc), "units_sold"), server_sold(fx));
    assert_true(field(result_of(doc), "units_sold") > 0);
    hf_response_t m;
    assert_int_equal(hf_call(&fx->cl, "GET", "/metrics", NULL, NULL, &m), 0);
    assert_int_equal(m.status, 200);
    const char *checks = "holdfast_secret_checks_total{kind=\"";
    char name[128];
    static const char *const refused[] = {"hold\",outcome=\"missing\"} ",
                                          "hold\",outcome=\"wrong\"} ",
                                          "waitlist\",outcome=\"missing\"} ",
                                          "waitlist\",outcome=\"wrong\"} "};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        snprintf(name, sizeof name, "%s%s", checks, refused[i]);
        assert_int_equal(metric_value(m.body, name), 0);
    }
    snprintf(name, sizeof name, "%shold\",outcome=\"good\"} ", checks);
    assert_true(metric_value(m.body, name) > 0);
    hf_response_free(&m);
    json_decref(doc);
    free(res);
}

/* ------------------------------------------------- the attack panel's API */

static hf_response_t sim_call(fx_t *fx, const char *method, const char *body)
{
    hf_response_t r;
    assert_int_equal(hf_call(&fx->cl, method, "/v1/sim", NULL, body, &r), 0);
    return r;
}

/* Reads GET /v1/sim until its state is not `running`/`stopping`; returns
 * the last reply (the run is bounded: a hang fails here). */
static hf_response_t sim_wait(fx_t *fx)
{
    long long deadline = hf_now_ms() + 60000;
    for (;;) {
        hf_response_t r = sim_call(fx, "GET", NULL);
        assert_int_equal(r.status, 200);
        const char *state = hf_json_str(r.json, "state");
        if ((strcmp(state, "running") != 0 && strcmp(state, "stopping") != 0) ||
            hf_now_ms() > deadline) {
            return r;
        }
        hf_response_free(&r);
        hf_sleep_ms(50); /* the child's end is read on the server's own thread */
    }
}

static void test_sim_api_refuses_bad_runs(void **state)
{
    fx_t *fx = *state;
    start_shop_with(fx, "{}", panel_on);
    const struct {
        const char *body;
        int status;
        const char *code, *field;
    } cases[] = {
        {"{}", 400, "invalid_field", "scenario"},
        {"{\"scenario\": \"merch-2021\"}", 400, "invalid_field", "scenario"},
        {"{\"scenario\": 7}", 400, "invalid_field", "scenario"},
        {"{\"scenario\": \"merch-2020\", \"seconds\": 0}", 400, "invalid_field", "seconds"},
        {"{\"scenario\": \"merch-2020\", \"seconds\": 601}", 400, "invalid_field", "seconds"},
        {"{\"scenario\": \"merch-2020\", \"url\": \"http://10.0.0.1\"}", 400, "unknown_field",
         NULL},
        {"not json", 400, "invalid_json", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hf_response_t r = sim_call(fx, "POST", cases[i].body);
        assert_true(hf_expect_error(&r, cases[i].status, cases[i].code, cases[i].field));
        hf_response_free(&r);
    }
    hf_response_t r = sim_call(fx, "GET", NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(hf_json_str(r.json, "state"), "idle");
    hf_response_free(&r);
}

/* One run at a time; it ends on its own; what it says it bought is what
 * the server sold. */
static void test_sim_api_runs_one_bounded_run(void **state)
{
    fx_t *fx = *state;
    start_shop_with(fx, "{}", panel_on);
    hf_response_t r = sim_call(fx, "POST", "{\"scenario\": \"merch-2020\", \"seconds\": 2}");
    assert_int_equal(r.status, 202);
    assert_string_equal(hf_json_str(r.json, "state"), "running");
    hf_response_free(&r);
    r = sim_call(fx, "POST", "{\"scenario\": \"flash-sale\"}");
    assert_true(hf_expect_error(&r, 409, "sim_running", NULL));
    hf_response_free(&r);
    r = sim_wait(fx);
    assert_string_equal(hf_json_str(r.json, "state"), "finished");
    const json_t *result = json_object_get(r.json, "result");
    assert_int_equal(field(json_object_get(result, "live"), "failed"), 0);
    assert_int_equal(field(result_of(result), "units_sold"), server_sold(fx));
    assert_non_null(hf_json_str(r.json, "ended_at"));
    hf_response_free(&r);
}

static void test_sim_api_stops_a_run(void **state)
{
    fx_t *fx = *state;
    start_shop_with(fx, "{}", panel_on);
    hf_response_t r = sim_call(fx, "POST", "{\"scenario\": \"merch-2020\", \"seconds\": 600}");
    assert_int_equal(r.status, 202);
    hf_response_free(&r);
    r = sim_call(fx, "DELETE", NULL);
    assert_int_equal(r.status, 200);
    hf_response_free(&r);
    r = sim_wait(fx);
    assert_string_equal(hf_json_str(r.json, "state"), "stopped");
    assert_true(json_is_null(json_object_get(r.json, "result")));
    hf_response_free(&r);
    /* and another may start */
    r = sim_call(fx, "POST", "{\"scenario\": \"merch-2020\", \"seconds\": 600}");
    assert_int_equal(r.status, 202);
    hf_response_free(&r);
    /* SIGTERM while it runs: the server stops it and exits cleanly */
    assert_int_equal(hf_server_stop(&fx->srv, SIGTERM), 0);
}

/* The panel is the admin's: a shop key may not start a run. */
static void test_sim_api_needs_the_admin_key(void **state)
{
    fx_t *fx = *state;
    fx->cl.bearer = "a1"; /* the catalog is the admin's to set */
    start_shop(fx, "{\"api_keys\": [\"s1\"], \"admin_key\": \"a1\", \"attack_panel\": true}");
    fx->cl.bearer = "s1";
    hf_response_t r = sim_call(fx, "POST", "{\"scenario\": \"merch-2020\", \"seconds\": 1}");
    assert_true(hf_expect_error(&r, 403, "forbidden", NULL));
    hf_response_free(&r);
    r = sim_call(fx, "GET", NULL);
    assert_true(hf_expect_error(&r, 403, "forbidden", NULL));
    hf_response_free(&r);
    /* with the admin key, the run (which gets the key itself) reads the policy */
    fx->cl.bearer = "a1";
    r = sim_call(fx, "POST", "{\"scenario\": \"merch-2020\", \"seconds\": 1}");
    assert_int_equal(r.status, 202);
    hf_response_free(&r);
    r = sim_wait(fx);
    assert_string_equal(hf_json_str(r.json, "state"), "finished");
    const json_t *live = json_object_get(json_object_get(r.json, "result"), "live");
    assert_true(json_is_true(json_object_get(live, "policy_read")));
    assert_int_equal(field(live, "failed"), 0);
    hf_response_free(&r);
}

/* The panel's runs make real sales: a server not started for a demo
 * refuses all three routes, says why, and sells nothing. */
static void test_sim_api_is_off_unless_the_server_is_a_demo(void **state)
{
    fx_t *fx = *state;
    start_shop(fx, "{}");
    const char *const methods[] = {"POST", "GET", "DELETE"};
    for (size_t i = 0; i < 3; i++) {
        hf_response_t r =
            sim_call(fx, methods[i], i == 0 ? "{\"scenario\": \"merch-2020\", \"seconds\": 1}" : NULL);
        assert_true(hf_expect_error(&r, 403, "forbidden", NULL));
        assert_string_equal(hf_json_str(json_object_get(r.json, "error"), "reason"),
                            "attack_panel_off");
        assert_non_null(strstr(hf_json_str(json_object_get(r.json, "error"), "message"),
                               "--attack-panel on"));
        hf_response_free(&r);
    }
    assert_int_equal(server_sold(fx), 0);
    assert_int_equal(hf_server_stop(&fx->srv, SIGTERM), 0);
    /* "attack_panel": false is the same; true (or the flag) turns it on */
    assert_int_equal(hf_server_write_config_raw(&fx->srv, "{\"attack_panel\": false}"), 0);
    assert_int_equal(hf_server_start(&fx->srv, NULL), 0);
    fx->cl.port = fx->srv.port;
    hf_response_t r = sim_call(fx, "GET", NULL);
    assert_true(hf_expect_error(&r, 403, "forbidden", NULL));
    hf_response_free(&r);
    assert_int_equal(hf_server_stop(&fx->srv, SIGTERM), 0);
    assert_int_equal(hf_server_write_config_raw(&fx->srv, "{\"attack_panel\": true}"), 0);
    assert_int_equal(hf_server_start(&fx->srv, NULL), 0);
    fx->cl.port = fx->srv.port;
    r = sim_call(fx, "GET", NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(hf_json_str(r.json, "state"), "idle");
    hf_response_free(&r);
    assert_int_equal(hf_server_stop(&fx->srv, SIGTERM), 0);
    /* a value that is neither stops the start, naming the key */
    hf_run_result_t *res = calloc(1, sizeof *res);
    assert_non_null(res);
    const char *bad_flag[] = {"serve", "--listen", "127.0.0.1:0", "--data", fx->srv.data_dir,
                              "--attack-panel", "yes", NULL};
    assert_int_equal(hf_run(bad_flag, 10000, res), 2);
    assert_non_null(strstr(res->err, "--attack-panel"));
    assert_int_equal(hf_server_write_config_raw(&fx->srv, "{\"attack_panel\": \"on\"}"), 0);
    const char *bad_key[] = {"serve", "--listen", "127.0.0.1:0", "--data", fx->srv.data_dir,
                             "--config", fx->srv.config_path, NULL};
    assert_int_equal(hf_run(bad_key, 10000, res), 2);
    assert_non_null(strstr(res->err, "attack_panel"));
    free(res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_live_refuses_anything_but_loopback),
        cmocka_unit_test(test_live_refuses_bad_options),
        cmocka_unit_test(test_live_without_a_server_fails_cleanly),
        cmocka_unit_test_setup_teardown(test_live_run_meets_the_servers_defenses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_run_stays_within_its_request_budget, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_live_run_with_a_shop_key_sends_each_holds_secret,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_sim_api_refuses_bad_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sim_api_runs_one_bounded_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sim_api_stops_a_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sim_api_needs_the_admin_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sim_api_is_off_unless_the_server_is_a_demo, setup,
                                        teardown),
    };
    return hf_tests_done(cmocka_run_group_tests_name("sim_live", tests, NULL, NULL));
}
