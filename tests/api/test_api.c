/*
 * test_api.c - every route of the core API, every error code the core server
 * produces, and the command line, checked from outside against the contract
 * (docs/API.md; every reply is also checked against docs/openapi.yaml).
 *
 * Each test starts its own server on an ephemeral port and a fresh data
 * directory, and stops it with SIGTERM at the end: a server that does not
 * exit 0, or whose log holds a sanitizer report, fails the test.
 *
 * A refused request must change nothing, so every test of bad input reads
 * the SKU it aimed at afterwards and checks stock, held, sold and available.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cmocka.h>

#include "hf_test_http.h"

/* 2^40: the contract's largest stock. */
#define STOCK_MAX 1099511627776LL

typedef hf_fixture_t fx_t;

static int setup_idle(void **state)
{
    return hf_fixture_setup(state, NULL, false);
}

static int setup_started(void **state)
{
    return hf_fixture_setup(state, NULL, true);
}

static int teardown(void **state)
{
    return hf_fixture_teardown(state);
}

static void start(fx_t *fx, const char *const *extra)
{
    assert_int_equal(hf_server_start(&fx->srv, extra), 0);
    fx->cl.port = fx->srv.port;
}

/* ---- small helpers ---- */

static const char *or_missing(const char *s)
{
    return s != NULL ? s : "(missing)";
}

static hf_response_t call(const hf_client_t *cl, const char *method, const char *target,
                          const char *body)
{
    hf_response_t r;
    assert_int_equal(hf_call(cl, method, target, NULL, body, &r), 0);
    return r;
}

/* Calls and checks the status, then frees the reply. */
static void call_expect(const hf_client_t *cl, const char *method, const char *target,
                        const char *body, int status)
{
    hf_response_t r = call(cl, method, target, body);
    assert_true(hf_expect_status(&r, status));
    hf_response_free(&r);
}

static void call_expect_error(const hf_client_t *cl, const char *method, const char *target,
                              const char *body, int status, const char *code, const char *field)
{
    hf_response_t r = call(cl, method, target, body);
    assert_true(hf_expect_error(&r, status, code, field));
    hf_response_free(&r);
}

/* True if got is one of the '|'-separated words in alts. */
static bool one_of(const char *alts, const char *got)
{
    if (got == NULL) {
        return false;
    }
    size_t n = strlen(got);
    for (const char *p = alts;;) {
        const char *bar = strchr(p, '|');
        size_t len = bar != NULL ? (size_t)(bar - p) : strlen(p);
        if (len == n && memcmp(p, got, n) == 0) {
            return true;
        }
        if (bar == NULL) {
            return false;
        }
        p = bar + 1;
    }
}

static bool expect_error_alt(const hf_response_t *r, int status, const char *codes,
                             const char *fields)
{
    bool ok = r->status == status && one_of(codes, hf_error_code(r)) &&
              (fields == NULL || one_of(fields, hf_error_field(r)));
    if (!ok) {
        fprintf(stderr, "expected %d %s%s%s, got %d: %.1000s\n", status, codes,
                fields ? " field " : "", fields ? fields : "", r->status, r->body);
    }
    return ok;
}

static void put_sku(fx_t *fx, const char *sku, long long stock, int status)
{
    assert_int_equal(hf_sku_put(&fx->cl, sku, stock), status);
}

/* {"customer": "u-1", "lines": [{"sku": SKU, "qty": QTY}] EXTRA} */
static const char *one_line(char *buf, size_t size, const char *sku, long long qty,
                            const char *extra)
{
    snprintf(buf, size, "{\"customer\": \"u-1\", \"lines\": [{\"sku\": \"%s\", \"qty\": %lld}]%s}",
             sku, qty, extra);
    return buf;
}

static void hold_ok(fx_t *fx, const char *body, char *id_out)
{
    hf_response_t r;
    assert_int_equal(hf_hold_create(&fx->cl, body, NULL, id_out, &r), 201);
    assert_non_null(hf_json_str(r.json, "id"));
    hf_response_free(&r);
}

static void hold_target(char *buf, size_t size, const char *id, const char *action)
{
    snprintf(buf, size, "/v1/holds/%s%s%s", id, action ? "/" : "", action ? action : "");
}

/* A hold's reply: expects status and state, returns the reply to free. */
static hf_response_t hold_call(fx_t *fx, const char *method, const char *id, const char *action,
                               const char *body, int status, const char *state)
{
    char target[256];
    hold_target(target, sizeof target, id, action);
    hf_response_t r = call(&fx->cl, method, target, body);
    assert_true(hf_expect_status(&r, status));
    if (state != NULL) {
        assert_string_equal(or_missing(hf_json_str(r.json, "id")), id);
        assert_string_equal(or_missing(hf_json_str(r.json, "state")), state);
    }
    return r;
}

static void hold_expect(fx_t *fx, const char *method, const char *id, const char *action,
                        const char *body, int status, const char *state)
{
    hf_response_t r = hold_call(fx, method, id, action, body, status, state);
    hf_response_free(&r);
}

static void hold_expect_error(fx_t *fx, const char *method, const char *id, const char *action,
                              const char *body, int status, const char *code)
{
    char target[256];
    hold_target(target, sizeof target, id, action);
    call_expect_error(&fx->cl, method, target, body, status, code, NULL);
}

static long long instant_of(const hf_response_t *r, const char *key)
{
    long long ms = hf_parse_instant(hf_json_str(r->json, key));
    if (ms < 0) {
        fprintf(stderr, "%s is not an RFC 3339 instant with ms: %.500s\n", key, r->body);
    }
    return ms;
}

/* ---- bad-input tables ---- */

typedef struct {
    const char *body;
    const char *codes;  /* '|'-separated acceptable codes */
    const char *fields; /* '|'-separated acceptable fields; NULL: unchecked */
} bad_t;

/* Sends each body; each must be refused with 400 and leave sku as it was. */
static void refuse_all(fx_t *fx, const char *method, const char *target, const bad_t *cases,
                       size_t count, const char *sku, const hf_sku_counts_t *before)
{
    for (size_t i = 0; i < count; i++) {
        hf_response_t r = call(&fx->cl, method, target, cases[i].body);
        bool ok = expect_error_alt(&r, 400, cases[i].codes, cases[i].fields);
        if (!ok) {
            fprintf(stderr, "  case %zu: %s %s %.300s\n", i, method, target, cases[i].body);
        }
        hf_response_free(&r);
        assert_true(ok);
        assert_true(hf_expect_sku(&fx->cl, sku, before->stock, before->held, before->sold));
    }
}

/* ======================= operations ======================= */

static void test_healthz_is_ok(void **state)
{
    fx_t *fx = *state;
    hf_response_t r = call(&fx->cl, "GET", "/healthz", NULL);
    assert_true(hf_expect_status(&r, 200));
    assert_non_null(hf_json_str(r.json, "status"));
    assert_string_equal(or_missing(hf_json_str(r.json, "status")), "ok");
    const char *type = hf_response_header(&r, "Content-Type");
    assert_non_null(type);
    assert_true(strncmp(type, "application/json", 16) == 0);
    hf_response_free(&r);
}

/* The value of the first line that is exactly `series VALUE`, or -1. */
static double metric(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *line = text; line != NULL; line = strchr(line, '\n')) {
        line += *line == '\n';
        if (strncmp(line, series, n) == 0 && line[n] == ' ') {
            return strtod(line + n + 1, NULL);
        }
    }
    return -1;
}

/* The sum over every label set of a metric name. */
static double metric_sum(const char *text, const char *name)
{
    size_t n = strlen(name);
    double sum = 0;
    for (const char *line = text; line != NULL; line = strchr(line, '\n')) {
        line += *line == '\n';
        if (strncmp(line, name, n) == 0 && (line[n] == '{' || line[n] == ' ')) {
            /* The value follows the line's last space (label values here
             * have none), looked for within the line only. */
            const char *end = strchr(line, '\n');
            const char *space = NULL;
            for (const char *p = line; p < (end != NULL ? end : line + strlen(line)); p++) {
                space = *p == ' ' ? p : space;
            }
            sum += space != NULL ? strtod(space + 1, NULL) : 0;
        }
    }
    return sum;
}

static char *scrape(fx_t *fx)
{
    hf_response_t r = call(&fx->cl, "GET", "/metrics", NULL);
    assert_true(hf_expect_status(&r, 200));
    const char *type = hf_response_header(&r, "Content-Type");
    assert_non_null(type);
    assert_true(strncmp(type, "text/plain", 10) == 0);
    char *text = strdup(r.body);
    hf_response_free(&r);
    return text;
}

static void test_metrics_follow_holds_and_requests(void **state)
{
    fx_t *fx = *state;
    char *before = scrape(fx);
    const char *names[] = {"holdfast_http_requests_total", "holdfast_holds_total",
                           "holdfast_units{state=\"held\"}", "holdfast_journal_commit_seconds",
                           "# TYPE holdfast_", "holdfast_build_info{version=\""};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strstr(before, names[i]) == NULL) {
            fprintf(stderr, "metrics lack %s:\n%.3000s\n", names[i], before);
        }
        assert_non_null(strstr(before, names[i]));
    }
    /* Every metric says what it is: a # TYPE line has its # HELP. */
    for (const char *t = strstr(before, "# TYPE "); t != NULL; t = strstr(t + 1, "# TYPE ")) {
        char name[128], help[160];
        assert_int_equal(sscanf(t, "# TYPE %127s", name), 1);
        snprintf(help, sizeof help, "# HELP %s ", name);
        if (strstr(before, help) == NULL) {
            fprintf(stderr, "metric %s has no # HELP\n", name);
        }
        assert_non_null(strstr(before, help));
    }
    assert_true(metric(before, "holdfast_units{state=\"held\"}") == 0);
    put_sku(fx, "cap-red", 10, 201);
    char body[256], id[HF_TEST_ID_MAX];
    hold_ok(fx, one_line(body, sizeof body, "cap-red", 3, ""), id);
    char *after = scrape(fx);
    assert_true(metric(after, "holdfast_units{state=\"held\"}") == 3);
    assert_true(metric_sum(after, "holdfast_http_requests_total") >=
                metric_sum(before, "holdfast_http_requests_total") + 3);
    assert_true(metric_sum(after, "holdfast_holds_total") >=
                metric_sum(before, "holdfast_holds_total") + 1);
    /* Two writes were journaled, so the latency histogram counted them. */
    assert_true(metric_sum(after, "holdfast_journal_commit_seconds_count") >= 1);
    free(before);
    free(after);
}

static void test_unknown_path_is_404(void **state)
{
    fx_t *fx = *state;
    put_sku(fx, "cap-red", 10, 201);
    char body[256], id[HF_TEST_ID_MAX], target[256];
    hold_ok(fx, one_line(body, sizeof body, "cap-red", 1, ""), id);
    /* "/" is the demo shop's page (test_web) */
    const char *paths[] = {"/nope",
                           "/shop",
                           "/v1",
                           "/v1/",
                           "/v1/nope",
                           "/v2/skus/cap-red",
                           "/v1/skus/cap-red/frobnicate",
                           "/healthz/x"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        call_expect_error(&fx->cl, "GET", paths[i], NULL, 404, "not_found", NULL);
    }
    hold_target(target, sizeof target, id, "frobnicate");
    call_expect_error(&fx->cl, "POST", target, "{}", 404, "not_found", NULL);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 1, 0));
}

/* A path naming another shop. A cluster's node looks that shop up first,
 * answering 503 not_owner with Retry-After meanwhile (moments): this
 * retries those, boundedly, as a client honouring Retry-After would. */
#define OTHER_SHOP_TRIES 100
#define OTHER_SHOP_PAUSE_MS 20

static bool looking_up(const hf_response_t *r)
{
    const char *code = hf_error_code(r);
    return r->status == 503 && code != NULL && strcmp(code, "not_owner") == 0 &&
           hf_response_header(r, "Retry-After") != NULL;
}

static hf_response_t call_other_shop(const hf_client_t *cl, const char *method,
                                     const char *target, const char *body)
{
    hf_response_t r = call(cl, method, target, body);
    for (int i = 0; i < OTHER_SHOP_TRIES && looking_up(&r); i++) {
        hf_response_free(&r);
        hf_sleep_ms(OTHER_SHOP_PAUSE_MS);
        r = call(cl, method, target, body);
    }
    return r;
}

/* /v1/shops/{shop}/... is /v1/... of the shop a server serves: "default"
 * for one that is no cluster's node; another shop's name is a 404 that
 * says which shop is here, and changes nothing. */
static void test_shop_paths_reach_this_servers_shop(void **state)
{
    fx_t *fx = *state;
    char shop[40], path[128], quoted[48];
    snprintf(shop, sizeof shop, "%s", hf_server_shop(&fx->srv));
    snprintf(path, sizeof path, "/v1/shops/%s/skus/cap-red", shop);
    hf_response_t r = call(&fx->cl, "PUT", path, "{\"stock\": 10}");
    assert_true(hf_expect_status(&r, 201));
    hf_response_free(&r);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 0, 0));
    char body[256], id[HF_TEST_ID_MAX];
    hold_ok(fx, one_line(body, sizeof body, "cap-red", 2, ""), id);
    r = call(&fx->cl, "GET", path, NULL);
    assert_true(hf_expect_status(&r, 200));
    long long held = -1;
    assert_true(hf_json_int(r.json, "held", &held) && held == 2);
    hf_response_free(&r);
    r = call_other_shop(&fx->cl, "PUT", "/v1/shops/other/skus/cap-red", "{\"stock\": 99}");
    assert_true(hf_expect_status(&r, 404));
    const char *message = hf_json_str(json_object_get(r.json, "error"), "message");
    snprintf(quoted, sizeof quoted, "\"%s\"", shop);
    assert_non_null(message);
    assert_non_null(strstr(message, quoted));
    hf_response_free(&r);
    char bare[96], slash[96], unknown[128], longer[128];
    snprintf(bare, sizeof bare, "/v1/shops/%s", shop);
    snprintf(slash, sizeof slash, "/v1/shops/%s/", shop);
    snprintf(unknown, sizeof unknown, "/v1/shops/%s/nope", shop);
    snprintf(longer, sizeof longer, "/v1/shops/%sx/skus/cap-red", shop);
    const char *paths[] = {bare, slash, "/v1/shops//skus/cap-red", unknown, longer};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        r = call_other_shop(&fx->cl, "GET", paths[i], NULL);
        assert_true(hf_expect_error(&r, 404, "not_found", NULL));
        hf_response_free(&r);
    }
    /* Past the 2 KiB a shop path may have once its prefix is cut: no route. */
    enum { HUGE_BYTES = 2100 };
    char huge[HUGE_BYTES + 64];
    int n = snprintf(huge, sizeof huge, "/v1/shops/%s/skus/", shop);
    memset(huge + n, 'a', HUGE_BYTES);
    huge[n + HUGE_BYTES] = '\0';
    r = call(&fx->cl, "GET", huge, NULL);
    assert_true(hf_expect_error(&r, 404, "not_found", NULL));
    message = hf_json_str(json_object_get(r.json, "error"), "message");
    assert_non_null(message);
    assert_string_equal(message, "no such route");
    hf_response_free(&r);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 2, 0));
}

static void test_wrong_method_is_405(void **state)
{
    fx_t *fx = *state;
    put_sku(fx, "cap-red", 10, 201);
    char body[256], id[HF_TEST_ID_MAX], target[256];
    hold_ok(fx, one_line(body, sizeof body, "cap-red", 1, ""), id);
    const struct {
        const char *method, *target;
    } cases[] = {{"POST", "/healthz"},          {"DELETE", "/metrics"},
                 {"PATCH", "/v1/holds"},        {"DELETE", "/v1/holds"},
                 {"POST", "/v1/skus/cap-red"},  {"DELETE", "/v1/skus/cap-red"},
                 {"PATCH", "/v1/skus/cap-red"}, {"DELETE", "/v1/skus"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        call_expect_error(&fx->cl, cases[i].method, cases[i].target, "{}", 405,
                          "method_not_allowed", NULL);
    }
    const struct {
        const char *method, *action;
    } on_hold[] = {
        {"PUT", NULL}, {"POST", NULL}, {"GET", "commit"}, {"GET", "extend"}, {"DELETE", "commit"}};
    for (size_t i = 0; i < sizeof on_hold / sizeof on_hold[0]; i++) {
        hold_target(target, sizeof target, id, on_hold[i].action);
        call_expect_error(&fx->cl, on_hold[i].method, target, "{}", 405, "method_not_allowed",
                          NULL);
    }
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 1, 0));
    hold_expect(fx, "GET", id, NULL, NULL, 200, "active");
}

static void test_keep_alive_serves_many_requests(void **state)
{
    fx_t *fx = *state;
    put_sku(fx, "cap-red", 10, 201);
    hf_conn_t c;
    assert_int_equal(hf_conn_open(&c, fx->cl.port, NULL), 0);
    for (int i = 0; i < 40; i++) {
        hf_response_t r;
        int rc =
            hf_conn_exchange(&c, "GET", i % 2 ? "/healthz" : "/v1/skus/cap-red", NULL, NULL, 0, &r);
        assert_int_equal(rc, 0);
        assert_true(hf_expect_status(&r, 200));
        hf_response_free(&r);
    }
    hf_conn_close(&c);
}

/* ======================= SKUs ======================= */

static void expect_sku_reply(const hf_response_t *r, const char *sku, long long stock,
                             long long held, long long sold)
{
    hf_sku_counts_t n = {-1, -1, -1, -1};
    assert_non_null(hf_json_str(r->json, "sku"));
    assert_string_equal(or_missing(hf_json_str(r->json, "sku")), sku);
    assert_true(hf_json_int(r->json, "stock", &n.stock) && n.stock == stock);
    assert_true(hf_json_int(r->json, "held", &n.held) && n.held == held);
    assert_true(hf_json_int(r->json, "sold", &n.sold) && n.sold == sold);
    assert_true(hf_json_int(r->json, "available", &n.available) &&
                n.available == stock - held - sold);
}

static void test_sku_put_creates_201_then_updates_200(void **state)
{
    fx_t *fx = *state;
    hf_response_t r = call(&fx->cl, "PUT", "/v1/skus/cap-red", "{\"stock\": 100}");
    assert_true(hf_expect_status(&r, 201));
    expect_sku_reply(&r, "cap-red", 100, 0, 0);
    hf_response_free(&r);
    r = call(&fx->cl, "PUT", "/v1/skus/cap-red", "{\"stock\": 150}");
    assert_true(hf_expect_status(&r, 200));
    expect_sku_reply(&r, "cap-red", 150, 0, 0);
    hf_response_free(&r);
    r = call(&fx->cl, "GET", "/v1/skus/cap-red", NULL);
    assert_true(hf_expect_status(&r, 200));
    expect_sku_reply(&r, "cap-red", 150, 0, 0);
    hf_response_free(&r);
    put_sku(fx, "cap-red", 0, 200);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 0, 0, 0));
    put_sku(fx, "cap-red", STOCK_MAX, 200);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", STOCK_MAX, 0, 0));
    /* 64 bytes using every character class a sku may have. */
    const char *longest = "AZaz09._:-AZaz09._:-AZaz09._:-AZaz09._:-AZaz09._:-AZaz09._:-abcd";
    assert_int_equal(strlen(longest), 64);
    put_sku(fx, longest, 7, 201);
    assert_true(hf_expect_sku(&fx->cl, longest, 7, 0, 0));
    put_sku(fx, "x", 1, 201);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", STOCK_MAX, 0, 0));
}

static void test_sku_get_unknown_is_404(void **state)
{
    fx_t *fx = *state;
    call_expect_error(&fx->cl, "GET", "/v1/skus/cap-red", NULL, 404, "not_found", NULL);
    put_sku(fx, "cap-red", 1, 201);
    call_expect_error(&fx->cl, "GET", "/v1/skus/cap-blue", NULL, 404, "not_found", NULL);
    call_expect_error(&fx->cl, "GET", "/v1/skus/CAP-RED", NULL, 404, "not_found", NULL);
}

static const bad_t sku_bad_bodies[] = {
    {"", "invalid_json", NULL},
    {"{", "invalid_json", NULL},
    {"{\"stock\": 5", "invalid_json", NULL},
    {"{\"stock\": 5} x", "invalid_json", NULL},
    {"{stock: 5}", "invalid_json", NULL},
    {"[]", "invalid_json", NULL},
    {"[{\"stock\": 5}]", "invalid_json", NULL},
    {"5", "invalid_json", NULL},
    {"null", "invalid_json", NULL},
    {"\"stock\"", "invalid_json", NULL},
    {"{}", "invalid_field", "stock"},
    {"{\"stock\": -1}", "invalid_field", "stock"},
    {"{\"stock\": 1099511627777}", "invalid_field", "stock"},
    {"{\"stock\": 9223372036854775807}", "invalid_field", "stock"},
    {"{\"stock\": 1.5}", "invalid_field", "stock"},
    {"{\"stock\": 1e3}", "invalid_field", "stock"},
    {"{\"stock\": \"5\"}", "invalid_field", "stock"},
    {"{\"stock\": null}", "invalid_field", "stock"},
    {"{\"stock\": true}", "invalid_field", "stock"},
    {"{\"stock\": [5]}", "invalid_field", "stock"},
    {"{\"stock\": 18446744073709551616}", "invalid_json|invalid_field", NULL},
    {"{\"stock\": 99999999999999999999999999999}", "invalid_json|invalid_field", NULL},
    {"{\"stock\": -99999999999999999999999999999}", "invalid_json|invalid_field", NULL},
    {"{\"stock\": 5, \"color\": \"red\"}", "unknown_field", "color"},
    {"{\"Stock\": 5}", "unknown_field|invalid_field", "Stock|stock"},
};

static void test_sku_put_bad_bodies_change_nothing(void **state)
{
    fx_t *fx = *state;
    put_sku(fx, "cap-red", 10, 201);
    char body[256], id[HF_TEST_ID_MAX];
    hold_ok(fx, one_line(body, sizeof body, "cap-red", 3, ""), id);
    const hf_sku_counts_t before = {10, 3, 0, 7};
    size_t count = sizeof sku_bad_bodies / sizeof sku_bad_bodies[0];
    refuse_all(fx, "PUT", "/v1/skus/cap-red", sku_bad_bodies, count, "cap-red", &before);
    /* The same bodies must not create a sku either. */
    refuse_all(fx, "PUT", "/v1/skus/cap-blue", sku_bad_bodies, count, "cap-red", &before);
    call_expect_error(&fx->cl, "GET", "/v1/skus/cap-blue", NULL, 404, "not_found", NULL);
    /* No body at all (no Content-Length) is not an object either. */
    call_expect_error(&fx->cl, "PUT", "/v1/skus/cap-blue", NULL, 400, "invalid_json", NULL);
    call_expect_error(&fx->cl, "GET", "/v1/skus/cap-blue", NULL, 404, "not_found", NULL);
}

static void test_sku_invalid_in_path_is_400(void **state)
{
    fx_t *fx = *state;
    char target[256];
    char long_sku[66];
    memset(long_sku, 'a', 65);
    long_sku[65] = '\0';
    const char *bad[] = {long_sku, "a%20b", "caf%C3%A9", "a!b", "a,b", "a'b", "a*"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(target, sizeof target, "/v1/skus/%s", bad[i]);
        hf_response_t r = call(&fx->cl, "PUT", target, "{\"stock\": 5}");
        bool ok = expect_error_alt(&r, 400, "invalid_field", "sku");
        hf_response_free(&r);
        if (!ok) {
            fprintf(stderr, "  PUT %s\n", target);
        }
        assert_true(ok);
        r = call(&fx->cl, "GET", target, NULL);
        ok = expect_error_alt(&r, 400, "invalid_field", "sku");
        hf_response_free(&r);
        assert_true(ok);
    }
    /* A slash makes it another path: refused as a bad sku or as no route. */
    const char *slashed[] = {"/v1/skus/a/b", "/v1/skus/a%2Fb"};
    hf_response_t r;
    for (size_t i = 0; i < 2; i++) {
        r = call(&fx->cl, "PUT", slashed[i], "{\"stock\": 5}");
        assert_true(r.status == 400 || r.status == 404);
        hf_response_free(&r);
    }
    r = call(&fx->cl, "PUT", "/v1/skus/", "{\"stock\": 5}");
    assert_true(r.status == 400 || r.status == 404 || r.status == 405);
    hf_response_free(&r);
    r = call(&fx->cl, "GET", "/v1/skus", NULL);
    assert_true(hf_expect_status(&r, 200));
    json_t *skus = json_object_get(r.json, "skus");
    assert_true(json_is_array(skus));
    assert_int_equal(json_array_size(skus), 0);
    hf_response_free(&r);
}

static void test_sku_stock_below_held_plus_sold_is_409(void **state)
{
    fx_t *fx = *state;
    put_sku(fx, "cap-red", 10, 201);
    char body[256], held_id[HF_TEST_ID_MAX], sold_id[HF_TEST_ID_MAX];
    hold_ok(fx, one_line(body, sizeof body, "cap-red", 3, ""), held_id);
    hold_ok(fx, one_line(body, sizeof body, "cap-red", 2, ""), sold_id);
    hold_expect(fx, "POST", sold_id, "commit", "{}", 200, "committed");
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 3, 2));
    call_expect_error(&fx->cl, "PUT", "/v1/skus/cap-red", "{\"stock\": 4}", 409,
                      "stock_below_committed", NULL);
    call_expect_error(&fx->cl, "PUT", "/v1/skus/cap-red", "{\"stock\": 0}", 409,
                      "stock_below_committed", NULL);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 3, 2));
    put_sku(fx, "cap-red", 5, 200);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 5, 3, 2));
    hf_response_t r;
    assert_int_equal(
        hf_hold_create(&fx->cl, one_line(body, sizeof body, "cap-red", 1, ""), NULL, NULL, &r),
        409);
    assert_true(hf_expect_error(&r, 409, "insufficient_stock", NULL));
    hf_response_free(&r);
    /* Releasing the held units lets the stock go down to what was sold. */
    hold_expect(fx, "DELETE", held_id, NULL, NULL, 200, "released");
    put_sku(fx, "cap-red", 2, 200);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 2, 0, 2));
}

/* Checks one page: its skus in order, and next (NULL: null). */
static void expect_page(fx_t *fx, const char *query, const char *const *want, size_t want_count,
                        const char *next)
{
    char target[256];
    snprintf(target, sizeof target, "/v1/skus%s", query);
    hf_response_t r = call(&fx->cl, "GET", target, NULL);
    assert_true(hf_expect_status(&r, 200));
    json_t *skus = json_object_get(r.json, "skus");
    assert_true(json_is_array(skus));
    if (json_array_size(skus) != want_count) {
        fprintf(stderr, "GET %s: %s\n", target, r.body);
    }
    assert_int_equal(json_array_size(skus), want_count);
    for (size_t i = 0; i < want_count; i++) {
        json_t *item = json_array_get(skus, i);
        assert_non_null(hf_json_str(item, "sku"));
        assert_string_equal(or_missing(hf_json_str(item, "sku")), want[i]);
        long long stock, available;
        assert_true(hf_json_int(item, "stock", &stock) &&
                    hf_json_int(item, "available", &available));
    }
    json_t *n = json_object_get(r.json, "next");
    assert_non_null(n);
    if (next == NULL) {
        assert_true(json_is_null(n));
    } else {
        assert_true(json_is_string(n));
        assert_string_equal(json_string_value(n), next);
    }
    hf_response_free(&r);
}

static void test_sku_list_pages_in_creation_order(void **state)
{
    fx_t *fx = *state;
    expect_page(fx, "", NULL, 0, NULL);
    const char *order[] = {"m", "c", "x", "a", "k"};
    for (size_t i = 0; i < 5; i++) {
        put_sku(fx, order[i], (long long)i + 1, 201);
    }
    put_sku(fx, "c", 9, 200); /* an update does not move it */
    expect_page(fx, "", order, 5, NULL);
    expect_page(fx, "?limit=1000", order, 5, NULL);
    expect_page(fx, "?limit=2", order, 2, "c");
    expect_page(fx, "?after=c&limit=2", order + 2, 2, "a");
    expect_page(fx, "?limit=2&after=a", order + 4, 1, NULL);
    /* A page that takes exactly what remains has no next. */
    expect_page(fx, "?after=x&limit=2", order + 3, 2, NULL);
    expect_page(fx, "?after=k", NULL, 0, NULL);
    expect_page(fx, "?limit=5", order, 5, NULL);
    expect_page(fx, "?limit=4", order, 4, "a");
    const char *bad_limits[] = {"0", "1001", "-1", "abc", "1.5", "", "99999999999999999999", "2x",
                                "%2B5", "%205", "18446744073709551617"};
    char target[128];
    for (size_t i = 0; i < sizeof bad_limits / sizeof bad_limits[0]; i++) {
        snprintf(target, sizeof target, "/v1/skus?limit=%s", bad_limits[i]);
        call_expect_error(&fx->cl, "GET", target, NULL, 400, "invalid_field", "limit");
    }
    call_expect_error(&fx->cl, "GET", "/v1/skus?after=zzz", NULL, 400, "invalid_field", "after");
    call_expect_error(&fx->cl, "GET", "/v1/skus?after=a%20b&limit=2", NULL, 400, "invalid_field",
                      "after");
}

static void test_sku_list_pages_past_the_default_limit(void **state)
{
    fx_t *fx = *state;
    char sku[32];
    for (int i = 0; i < 105; i++) {
        snprintf(sku, sizeof sku, "s-%03d", i);
        put_sku(fx, sku, 1, 201);
    }
    hf_response_t r = call(&fx->cl, "GET", "/v1/skus", NULL);
    assert_true(hf_expect_status(&r, 200));
    assert_int_equal(json_array_size(json_object_get(r.json, "skus")), 100);
    assert_non_null(hf_json_str(r.json, "next"));
    assert_string_equal(or_missing(hf_json_str(r.json, "next")), "s-099");
    hf_response_free(&r);
    r = call(&fx->cl, "GET", "/v1/skus?after=s-099", NULL);
    assert_true(hf_expect_status(&r, 200));
    assert_int_equal(json_array_size(json_object_get(r.json, "skus")), 5);
    assert_true(json_is_null(json_object_get(r.json, "next")));
    hf_response_free(&r);
}

/* A client pages by passing each page's next as the following page's
 * after, until next is null; it sees every sku once, in order. */
static void test_sku_pages_follow_next_to_the_end(void **state)
{
    fx_t *fx = *state;
    char sku[32], target[128], after[80] = "";
    for (int i = 0; i < 7; i++) {
        snprintf(sku, sizeof sku, "p-%d", i);
        put_sku(fx, sku, 1, 201);
    }
    int seen = 0;
    for (int page = 0; page < 4; page++) { /* 7 skus, 3 a page: 3 pages */
        snprintf(target, sizeof target, "/v1/skus?limit=3%s%s", after[0] ? "&after=" : "", after);
        hf_response_t r = call(&fx->cl, "GET", target, NULL);
        assert_true(hf_expect_status(&r, 200));
        json_t *skus = json_object_get(r.json, "skus");
        for (size_t i = 0; i < json_array_size(skus); i++, seen++) {
            snprintf(sku, sizeof sku, "p-%d", seen);
            assert_string_equal(or_missing(hf_json_str(json_array_get(skus, i), "sku")), sku);
        }
        json_t *next = json_object_get(r.json, "next");
        assert_true(json_is_null(next) || json_is_string(next));
        bool last = json_is_null(next);
        if (!last) {
            snprintf(after, sizeof after, "%s", json_string_value(next));
        }
        hf_response_free(&r);
        if (last) {
            assert_int_equal(page, 2);
            break;
        }
    }
    assert_int_equal(seen, 7);
}

/* Calls and checks for 400 unknown_field naming the parameter, and that the
 * message names the ones the route takes. */
static void expect_unknown_param(fx_t *fx, const char *method, const char *target,
                                 const char *body, const char *param, const char *takes)
{
    hf_response_t r = call(&fx->cl, method, target, body);
    assert_true(hf_expect_error(&r, 400, "unknown_field", param));
    const char *message = hf_json_str(json_object_get(r.json, "error"), "message");
    if (message == NULL || strstr(message, takes) == NULL) {
        fprintf(stderr, "%s %s: the message should name %s: %s\n", method, target, takes, r.body);
    }
    assert_true(message != NULL && strstr(message, takes) != NULL);
    hf_response_free(&r);
}

/* A misspelt query parameter (a cursor called something else, say) would
 * otherwise be ignored, and a client would page the first page forever. */
static void test_unknown_query_parameters_are_refused_and_named(void **state)
{
    fx_t *fx = *state;
    put_sku(fx, "cap-red", 10, 201);
    put_sku(fx, "cap-blue", 10, 201);
    expect_unknown_param(fx, "GET", "/v1/skus?cursor=cap-red", NULL, "cursor", "after, limit");
    expect_unknown_param(fx, "GET", "/v1/skus?after=cap-red&page=2", NULL, "page", "after, limit");
    expect_unknown_param(fx, "GET", "/v1/skus?next=cap-red", NULL, "next", "after, limit");
    expect_unknown_param(fx, "GET", "/v1/skus/cap-red?fields=stock", NULL, "fields", "none");
    expect_unknown_param(fx, "GET", "/v1/identities/top?order=holds", NULL, "order", "by, limit");
    expect_unknown_param(fx, "GET", "/v1/events?sku=cap-red", NULL, "sku", "skus");
    expect_unknown_param(fx, "GET", "/v1/policy?x", NULL, "x", "none");
    /* Refused before anything is done: no hold is made. */
    char body[256];
    expect_unknown_param(fx, "POST", "/v1/holds?dry_run=1",
                         one_line(body, sizeof body, "cap-red", 1, ""), "dry_run", "none");
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 0, 0));
    /* The parameters a route takes still work, and the name is quoted
     * back cut short if it is long. */
    expect_page(fx, "?after=cap-red&limit=1", (const char *const[]){"cap-blue"}, 1, NULL);
    char target[512] = "/v1/skus?";
    memset(target + 9, 'q', 300);
    target[309] = '\0';
    hf_response_t r = call(&fx->cl, "GET", target, NULL);
    assert_true(hf_expect_error(&r, 400, "unknown_field", NULL));
    const char *field = hf_error_field(&r);
    assert_true(field != NULL && strlen(field) == 64);
    hf_response_free(&r);
    /* Health and the pages do not look at the query (probes and caches
     * add their own). */
    call_expect(&fx->cl, "GET", "/healthz?probe=1", NULL, 200);
}

static void test_sku_over_capacity_is_503(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(hf_server_write_config(&fx->srv, "{\"skus_max\": 2}"), 0);
    start(fx, NULL);
    put_sku(fx, "a", 1, 201);
    put_sku(fx, "b", 1, 201);
    hf_response_t r = call(&fx->cl, "PUT", "/v1/skus/c", "{\"stock\": 1}");
    assert_true(hf_expect_error(&r, 503, "overloaded", NULL));
    const json_t *e = json_object_get(r.json, "error");
    assert_non_null(hf_json_str(e, "reason"));
    hf_response_free(&r);
    call_expect_error(&fx->cl, "GET", "/v1/skus/c", NULL, 404, "not_found", NULL);
    put_sku(fx, "a", 5, 200);
    assert_true(hf_expect_sku(&fx->cl, "a", 5, 0, 0));
}

/* ======================= holds ======================= */

static void test_hold_create_returns_201_with_the_hold(void **state)
{
    fx_t *fx = *state;
    put_sku(fx, "cap-red", 10, 201);
    put_sku(fx, "shirt-m", 5, 201);
    const char *body = "{\"customer\": \"u-42\", \"ip\": \"203.0.113.7\", \"fingerprint\": "
                       "\"fp-1\", \"lines\": [{\"sku\": \"cap-red\", \"qty\": 2}, {\"sku\": "
                       "\"shirt-m\", \"qty\": 1}], \"ttl_ms\": 60000}";
    long long wall = hf_wall_ms();
    hf_response_t r;
    char id[HF_TEST_ID_MAX];
    assert_int_equal(hf_hold_create(&fx->cl, body, NULL, id, &r), 201);
    assert_true(strlen(id) > 0);
    assert_string_equal(or_missing(hf_json_str(r.json, "customer")), "u-42");
    assert_string_equal(or_missing(hf_json_str(r.json, "state")), "active");
    json_t *want = json_loads("[{\"sku\": \"cap-red\", \"qty\": 2}, {\"sku\": \"shirt-m\", "
                              "\"qty\": 1}]",
                              0, NULL);
    assert_true(json_equal(json_object_get(r.json, "lines"), want));
    long long created = instant_of(&r, "created_at");
    long long expires = instant_of(&r, "expires_at");
    long long left = -1;
    assert_true(created > 0 && expires > 0);
    assert_true(created >= wall - 5000 && created <= wall + 5000);
    assert_true(expires - created >= 59999 && expires - created <= 60001);
    assert_true(hf_json_int(r.json, "expires_in_ms", &left));
    assert_true(left > 50000 && left <= 60000);
    json_t *finished = json_object_get(r.json, "finished_at");
    assert_true(finished == NULL || json_is_null(finished));
    const char *type = hf_response_header(&r, "Content-Type");
    assert_true(type != NULL && strncmp(type, "application/json", 16) == 0);
    hf_response_t g = hold_call(fx, "GET", id, NULL, NULL, 200, "active");
    assert_true(json_equal(json_object_get(g.json, "lines"), want));
    assert_string_equal(or_missing(hf_json_str(g.json, "customer")), "u-42");
    assert_string_equal(or_missing(hf_json_str(g.json, "created_at")),
                        or_missing(hf_json_str(r.json, "created_at")));
    assert_string_equal(or_missing(hf_json_str(g.json, "expires_at")),
                        or_missing(hf_json_str(r.json, "expires_at")));
    /* A new hold's reply is written apart from the hold's other replies
     * (outside the engine lock): member for member it is what a read shows,
     * but for the secret only the create carries and the time left. */
    json_t *made = json_deep_copy(r.json), *read = json_deep_copy(g.json);
    assert_int_equal(json_object_del(made, "secret"), 0);
    assert_int_equal(json_object_del(made, "expires_in_ms"), 0);
    assert_int_equal(json_object_del(read, "expires_in_ms"), 0);
    assert_true(json_equal(made, read));
    json_decref(made);
    json_decref(read);
    hf_response_free(&g);
    hf_response_free(&r);
    json_decref(want);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 2, 0));
    assert_true(hf_expect_sku(&fx->cl, "shirt-m", 5, 1, 0));
    char other[HF_TEST_ID_MAX];
    hold_ok(fx, body, other);
    assert_string_not_equal(id, other);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 4, 0));
}

/* Instants are wall-clock time (docs/API.md): created_at is when the server took
 * the request, on the same machine's clock as ours, to the millisecond. */
static void test_hold_instants_follow_the_wall_clock(void **state)
{
    fx_t *fx = *state;
    put_sku(fx, "cap-red", 10, 201);
    char body[256];
    for (int i = 0; i < 3; i++) {
        long long before = hf_wall_ms();
        hf_response_t r;
        assert_int_equal(
            hf_hold_create(&fx->cl, one_line(body, sizeof body, "cap-red", 1, ""), NULL, NULL, &r),
            201);
        long long after = hf_wall_ms();
        long long created = instant_of(&r, "created_at");
        hf_response_free(&r);
        if (created < before - 2 || created > after + 2) {
            fprintf(stderr, "created_at is %lld ms from our clock's [%lld, %lld]\n",
                    created < before ? created - before : created - after, before, after);
        }
        assert_true(created >= before - 2 && created <= after + 2);
    }
}

static void test_hold_default_ttl_is_ten_minutes(void **state)
{
    fx_t *fx = *state;
    put_sku(fx, "cap-red", 10, 201);
    char body[256];
    hf_response_t r;
    assert_int_equal(
        hf_hold_create(&fx->cl, one_line(body, sizeof body, "cap-red", 1, ""), NULL, NULL, &r),
        201);
    long long left = -1;
    assert_true(hf_json_int(r.json, "expires_in_ms", &left));
    assert_true(left > 590000 && left <= 600000);
    long long span = instant_of(&r, "expires_at") - instant_of(&r, "created_at");
    assert_true(span >= 599999 && span <= 600001);
    hf_response_free(&r);
}

static void test_hold_is_all_or_nothing(void **state)
{
    fx_t *fx = *state;
    put_sku(fx, "cap-red", 10, 201);
    put_sku(fx, "shirt-m", 1, 201);
    const char *body = "{\"customer\": \"u-1\", \"lines\": [{\"sku\": \"cap-red\", \"qty\": 2}, "
                       "{\"sku\": \"shirt-m\", \"qty\": 2}]}";
    hf_response_t r;
    assert_int_equal(hf_hold_create(&fx->cl, body, NULL, NULL, &r), 409);
    assert_true(hf_expect_error(&r, 409, "insufficient_stock", NULL));
    const json_t *e = json_object_get(r.json, "error");
    long long available = -1;
    assert_non_null(hf_json_str(e, "sku"));
    assert_string_equal(or_missing(hf_json_str(e, "sku")), "shirt-m");
    assert_true(hf_json_int(e, "available", &available));
    assert_int_equal(available, 1);
    hf_response_free(&r);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 0, 0));
    assert_true(hf_expect_sku(&fx->cl, "shirt-m", 1, 0, 0));
    char one[256];
    assert_int_equal(
        hf_hold_create(&fx->cl, one_line(one, sizeof one, "cap-red", 11, ""), NULL, NULL, &r), 409);
    assert_true(hf_expect_error(&r, 409, "insufficient_stock", NULL));
    assert_true(hf_json_int(json_object_get(r.json, "error"), "available", &available));
    assert_int_equal(available, 10);
    hf_response_free(&r);
    /* Exactly what is there can be held. */
    hold_ok(fx, one_line(one, sizeof one, "cap-red", 10, ""), NULL);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 10, 0));
    put_sku(fx, "empty", 0, 201);
    assert_int_equal(
        hf_hold_create(&fx->cl, one_line(one, sizeof one, "empty", 1, ""), NULL, NULL, NULL), 409);
}

static void test_hold_unknown_sku_is_404(void **state)
{
    fx_t *fx = *state;
    put_sku(fx, "cap-red", 10, 201);
    const char *body = "{\"customer\": \"u-1\", \"lines\": [{\"sku\": \"cap-red\", \"qty\": 2}, "
                       "{\"sku\": \"ghost\", \"qty\": 1}]}";
    hf_response_t r;
    assert_int_equal(hf_hold_create(&fx->cl, body, NULL, NULL, &r), 404);
    assert_true(hf_expect_error(&r, 404, "not_found", NULL));
    const json_t *e = json_object_get(r.json, "error");
    assert_non_null(hf_json_str(e, "sku"));
    assert_string_equal(or_missing(hf_json_str(e, "sku")), "ghost");
    hf_response_free(&r);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 0, 0));
}

static void test_hold_duplicate_sku_lines_is_400(void **state)
{
    fx_t *fx = *state;
    put_sku(fx, "cap-red", 10, 201);
    const char *body = "{\"customer\": \"u-1\", \"lines\": [{\"sku\": \"cap-red\", \"qty\": 1}, "
                       "{\"sku\": \"cap-red\", \"qty\": 2}]}";
    hf_response_t r;
    assert_int_equal(hf_hold_create(&fx->cl, body, NULL, NULL, &r), 400);
    assert_true(hf_expect_error(&r, 400, "invalid_field", "lines"));
    hf_response_free(&r);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 0, 0));
}

#define LINE "{\"sku\": \"cap-red\", \"qty\": 1}"
#define LINES "\"lines\": [" LINE "]"
#define CUST "\"customer\": \"u-1\""

static const bad_t hold_bad_bodies[] = {
    {"", "invalid_json", NULL},
    {"{", "invalid_json", NULL},
    {"{" CUST ", " LINES, "invalid_json", NULL},
    {"{" CUST ", " LINES "} {}", "invalid_json", NULL},
    {"{" CUST ", " LINES ",}", "invalid_json", NULL},
    {"[]", "invalid_json", NULL},
    {"[{" CUST ", " LINES "}]", "invalid_json", NULL},
    {"\"x\"", "invalid_json", NULL},
    {"7", "invalid_json", NULL},
    {"null", "invalid_json", NULL},
    {"{\"customer\": \"u-\xff\", " LINES "}", "invalid_json|invalid_field", NULL},
    /* unknown fields, at the top and inside a line */
    {"{" CUST ", " LINES ", \"extra\": 1}", "unknown_field", "extra"},
    {"{" CUST ", " LINES ", \"ttl\": 1000}", "unknown_field", "ttl"},
    {"{" CUST ", \"lines\": [{\"sku\": \"cap-red\", \"qty\": 1, \"color\": \"red\"}]}",
     "unknown_field", "color|lines[0].color"},
    /* customer */
    {"{" LINES "}", "invalid_field", "customer"},
    {"{\"customer\": \"\", " LINES "}", "invalid_field", "customer"},
    {"{\"customer\": 42, " LINES "}", "invalid_field", "customer"},
    {"{\"customer\": null, " LINES "}", "invalid_field", "customer"},
    {"{\"customer\": [\"u-1\"], " LINES "}", "invalid_field", "customer"},
    {"{\"customer\": \"u\\u0001x\", " LINES "}", "invalid_field", "customer"},
    {"{\"customer\": \"u\\nx\", " LINES "}", "invalid_field", "customer"},
    {"{\"customer\": \"u\\u007fx\", " LINES "}", "invalid_field", "customer"},
    {"{\"customer\": \"u\\u0085x\", " LINES "}", "invalid_field", "customer"},
    {"{\"customer\": \"u\\u0000x\", " LINES "}", "invalid_field|invalid_json", NULL},
    /* lines */
    {"{" CUST "}", "invalid_field", "lines"},
    {"{" CUST ", \"lines\": []}", "invalid_field", "lines"},
    {"{" CUST ", \"lines\": \"cap-red\"}", "invalid_field", "lines"},
    {"{" CUST ", \"lines\": {\"sku\": \"cap-red\", \"qty\": 1}}", "invalid_field", "lines"},
    {"{" CUST ", \"lines\": null}", "invalid_field", "lines"},
    {"{" CUST ", \"lines\": [5]}", "invalid_field", "lines[0]|lines"},
    {"{" CUST ", \"lines\": [" LINE ", []]}", "invalid_field", "lines[1]|lines"},
    {"{" CUST ", \"lines\": [{\"qty\": 1}]}", "invalid_field", "lines[0].sku"},
    {"{" CUST ", \"lines\": [{\"sku\": \"cap-red\"}]}", "invalid_field", "lines[0].qty"},
    {"{" CUST ", \"lines\": [{\"sku\": \"\", \"qty\": 1}]}", "invalid_field", "lines[0].sku"},
    {"{" CUST ", \"lines\": [{\"sku\": \"a b\", \"qty\": 1}]}", "invalid_field", "lines[0].sku"},
    {"{" CUST ", \"lines\": [{\"sku\": \"a/b\", \"qty\": 1}]}", "invalid_field", "lines[0].sku"},
    {"{" CUST ", \"lines\": [{\"sku\": 5, \"qty\": 1}]}", "invalid_field", "lines[0].sku"},
    {"{" CUST
     ", \"lines\": [{\"sku\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaa\", \"qty\": 1}]}",
     "invalid_field", "lines[0].sku"},
    {"{" CUST ", \"lines\": [{\"sku\": \"cap-red\", \"qty\": 0}]}", "invalid_field",
     "lines[0].qty"},
    {"{" CUST ", \"lines\": [{\"sku\": \"cap-red\", \"qty\": -1}]}", "invalid_field",
     "lines[0].qty"},
    {"{" CUST ", \"lines\": [{\"sku\": \"cap-red\", \"qty\": 1000001}]}", "invalid_field",
     "lines[0].qty"},
    {"{" CUST ", \"lines\": [{\"sku\": \"cap-red\", \"qty\": 1.5}]}", "invalid_field",
     "lines[0].qty"},
    {"{" CUST ", \"lines\": [{\"sku\": \"cap-red\", \"qty\": \"1\"}]}", "invalid_field",
     "lines[0].qty"},
    {"{" CUST ", \"lines\": [{\"sku\": \"cap-red\", \"qty\": null}]}", "invalid_field",
     "lines[0].qty"},
    {"{" CUST ", \"lines\": [" LINE ", {\"sku\": \"shirt-m\", \"qty\": 0}]}", "invalid_field",
     "lines[1].qty"},
    {"{" CUST ", \"lines\": [" LINE ", {\"sku\": \"shirt-m\", \"qty\": 4294967297}]}",
     "invalid_field", "lines[1].qty"},
    {"{" CUST ", \"lines\": [{\"sku\": \"cap-red\", \"qty\": 18446744073709551617}]}",
     "invalid_json|invalid_field", NULL},
    {"{" CUST ", \"lines\": [{\"sku\": \"cap-red\", \"qty\": -9223372036854775809}]}",
     "invalid_json|invalid_field", NULL},
    /* ttl_ms */
    {"{" CUST ", " LINES ", \"ttl_ms\": 999}", "invalid_field", "ttl_ms"},
    {"{" CUST ", " LINES ", \"ttl_ms\": 0}", "invalid_field", "ttl_ms"},
    {"{" CUST ", " LINES ", \"ttl_ms\": -1000}", "invalid_field", "ttl_ms"},
    {"{" CUST ", " LINES ", \"ttl_ms\": 86400001}", "invalid_field", "ttl_ms"},
    {"{" CUST ", " LINES ", \"ttl_ms\": 1500.5}", "invalid_field", "ttl_ms"},
    {"{" CUST ", " LINES ", \"ttl_ms\": \"60000\"}", "invalid_field", "ttl_ms"},
    {"{" CUST ", " LINES ", \"ttl_ms\": null}", "invalid_field", "ttl_ms"},
    {"{" CUST ", " LINES ", \"ttl_ms\": 9223372036854775807}", "invalid_field", "ttl_ms"},
    {"{" CUST ", " LINES ", \"ttl_ms\": 36893488147419103232}", "invalid_json|invalid_field", NULL},
    /* ip */
    {"{" CUST ", " LINES ", \"ip\": \"999.1.1.1\"}", "invalid_field", "ip"},
    {"{" CUST ", " LINES ", \"ip\": \"1.2.3\"}", "invalid_field", "ip"},
    {"{" CUST ", " LINES ", \"ip\": \"1.2.3.4.5\"}", "invalid_field", "ip"},
    {"{" CUST ", " LINES ", \"ip\": \"256.0.0.1\"}", "invalid_field", "ip"},
    {"{" CUST ", " LINES ", \"ip\": \"example.com\"}", "invalid_field", "ip"},
    {"{" CUST ", " LINES ", \"ip\": \"\"}", "invalid_field", "ip"},
    {"{" CUST ", " LINES ", \"ip\": \" 1.2.3.4\"}", "invalid_field", "ip"},
    {"{" CUST ", " LINES ", \"ip\": \"1.2.3.4/24\"}", "invalid_field", "ip"},
    {"{" CUST ", " LINES ", \"ip\": \"::g\"}", "invalid_field", "ip"},
    {"{" CUST ", " LINES ", \"ip\": \"1:2:3:4:5:6:7:8:9\"}", "invalid_field", "ip"},
    {"{" CUST ", " LINES ", \"ip\": 16909060}", "invalid_field", "ip"},
    {"{" CUST ", " LINES ", \"ip\": null}", "invalid_field", "ip"},
    /* fingerprint */
    {"{" CUST ", " LINES ", \"fingerprint\": \"\"}", "invalid_field", "fingerprint"},
    {"{" CUST ", " LINES ", \"fingerprint\": 5}", "invalid_field", "fingerprint"},
    {"{" CUST ", " LINES ", \"fingerprint\": \"a\\u001fb\"}", "invalid_field", "fingerprint"},
};

/* Bodies too long to write out: 129-byte names and 65 lines. */
static void refuse_long_hold_bodies(fx_t *fx, const hf_sku_counts_t *before)
{
    char name[260], body[8192];
    /* 64 two-byte characters and one more byte: 129 bytes, 65 characters. */
    name[0] = '\0';
    for (int i = 0; i < 64; i++) {
        strcat(name, "\xc3\xa9");
    }
    strcat(name, "a");
    bad_t cases[3];
    char b0[512], b1[512], b2[512];
    snprintf(b0, sizeof b0, "{\"customer\": \"%s\", " LINES "}", name);
    snprintf(b1, sizeof b1, "{" CUST ", \"fingerprint\": \"%s\", " LINES "}", name);
    /* order_ref goes only with "commit": true (buy now). */
    snprintf(b2, sizeof b2, "{" CUST ", " LINES ", \"order_ref\": \"o-1\"}");
    cases[0] = (bad_t){b0, "invalid_field", "customer"};
    cases[1] = (bad_t){b1, "invalid_field", "fingerprint"};
    cases[2] = (bad_t){b2, "invalid_field", "order_ref"};
    refuse_all(fx, "POST", "/v1/holds", cases, 3, "cap-red", before);
    /* 65 lines of distinct skus. */
    int n = snprintf(body, sizeof body, "{" CUST ", \"lines\": [");
    for (int i = 0; i < 65; i++) {
        n += snprintf(body + n, sizeof body - (size_t)n, "%s{\"sku\": \"s-%02d\", \"qty\": 1}",
                      i ? ", " : "", i);
    }
    snprintf(body + n, sizeof body - (size_t)n, "]}");
    bad_t many = {body, "invalid_field", "lines"};
    refuse_all(fx, "POST", "/v1/holds", &many, 1, "cap-red", before);
    for (int i = 0; i < 65; i++) {
        char sku[16];
        snprintf(sku, sizeof sku, "s-%02d", i);
        assert_true(hf_expect_sku(&fx->cl, sku, 5, 0, 0));
    }
}

static void test_hold_bad_bodies_change_nothing(void **state)
{
    fx_t *fx = *state;
    put_sku(fx, "cap-red", 10, 201);
    put_sku(fx, "shirt-m", 10, 201);
    char sku[16];
    for (int i = 0; i < 65; i++) {
        snprintf(sku, sizeof sku, "s-%02d", i);
        put_sku(fx, sku, 5, 201);
    }
    char body[256], id[HF_TEST_ID_MAX];
    hold_ok(fx, one_line(body, sizeof body, "cap-red", 2, ""), id);
    const hf_sku_counts_t before = {10, 2, 0, 8};
    refuse_all(fx, "POST", "/v1/holds", hold_bad_bodies,
               sizeof hold_bad_bodies / sizeof hold_bad_bodies[0], "cap-red", &before);
    refuse_long_hold_bodies(fx, &before);
    assert_true(hf_expect_sku(&fx->cl, "shirt-m", 10, 0, 0));
    /* No body at all. */
    call_expect_error(&fx->cl, "POST", "/v1/holds", NULL, 400, "invalid_json", NULL);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 2, 0));
}

static void test_hold_accepts_every_boundary(void **state)
{
    fx_t *fx = *state;
    put_sku(fx, "big", STOCK_MAX, 201);
    char sku[16], body[8192], name[260] = "";
    for (int i = 0; i < 64; i++) {
        snprintf(sku, sizeof sku, "s-%02d", i);
        put_sku(fx, sku, 1, 201);
        strcat(name, "\xc3\xa9");
    }
    /* customer and fingerprint of 128 bytes, 64 lines, qty at both ends. */
    int n = snprintf(body, sizeof body,
                     "{\"customer\": \"%s\", \"fingerprint\": \"%s\", \"lines\": [", name, name);
    for (int i = 0; i < 64; i++) {
        n += snprintf(body + n, sizeof body - (size_t)n, "%s{\"sku\": \"s-%02d\", \"qty\": 1}",
                      i ? ", " : "", i);
    }
    snprintf(body + n, sizeof body - (size_t)n, "], \"ttl_ms\": 86400000}");
    hf_response_t r;
    char id[HF_TEST_ID_MAX];
    assert_int_equal(hf_hold_create(&fx->cl, body, NULL, id, &r), 201);
    assert_string_equal(or_missing(hf_json_str(r.json, "customer")), name);
    assert_int_equal(json_array_size(json_object_get(r.json, "lines")), 64);
    long long left = 0;
    assert_true(hf_json_int(r.json, "expires_in_ms", &left) && left > 86390000);
    hf_response_free(&r);
    assert_true(hf_expect_sku(&fx->cl, "s-63", 1, 1, 0));
    hold_ok(fx, one_line(body, sizeof body, "big", 1000000, ", \"ttl_ms\": 1000"), NULL);
    assert_true(hf_expect_sku(&fx->cl, "big", STOCK_MAX, 1000000, 0));
    const char *ips[] = {
        "203.0.113.7",      "0.0.0.0", "255.255.255.255", "::1", "::", "2001:db8::ff00:42:8329",
        "::ffff:192.0.2.1", "fe80::1"};
    char extra[128];
    for (size_t i = 0; i < sizeof ips / sizeof ips[0]; i++) {
        snprintf(extra, sizeof extra, ", \"ip\": \"%s\"", ips[i]);
        int status =
            hf_hold_create(&fx->cl, one_line(body, sizeof body, "big", 1, extra), NULL, NULL, NULL);
        if (status != 201) {
            fprintf(stderr, "ip %s: %d\n", ips[i], status);
        }
        assert_int_equal(status, 201);
    }
    assert_true(hf_expect_sku(&fx->cl, "big", STOCK_MAX, 1000000 + 8, 0));
}

static void test_hold_unknown_or_malformed_id_is_404(void **state)
{
    fx_t *fx = *state;
    put_sku(fx, "cap-red", 10, 201);
    char body[256], id[HF_TEST_ID_MAX];
    hold_ok(fx, one_line(body, sizeof body, "cap-red", 2, ""), id);
    char huge[300];
    memset(huge, 'z', 299);
    huge[299] = '\0';
    char near[HF_TEST_ID_MAX + 8];
    snprintf(near, sizeof near, "%s9", id);
    const char *ids[] = {"h_zzzzzz", "h_", "nope", "h_0", "h_zzzzzzzzzzzzzzzzzzzzzzzzzz",
                         "h_%2F",    huge, near,   "H_1"};
    const char *actions[] = {NULL, "commit", "extend", NULL};
    const char *methods[] = {"GET", "POST", "POST", "DELETE"};
    const char *bodies[] = {NULL, "{}", "{\"ttl_ms\": 60000}", NULL};
    char target[512];
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        for (size_t m = 0; m < 4; m++) {
            snprintf(target, sizeof target, "/v1/holds/%s%s%s", ids[i], actions[m] ? "/" : "",
                     actions[m] ? actions[m] : "");
            hf_response_t r = call(&fx->cl, methods[m], target, bodies[m]);
            bool ok = hf_expect_error(&r, 404, "not_found", NULL);
            hf_response_free(&r);
            if (!ok) {
                fprintf(stderr, "  %s %.100s\n", methods[m], target);
            }
            assert_true(ok);
        }
    }
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 2, 0));
    hold_expect(fx, "GET", id, NULL, NULL, 200, "active");
}

static void test_hold_commit_moves_units_to_sold(void **state)
{
    fx_t *fx = *state;
    put_sku(fx, "cap-red", 10, 201);
    char body[256], a[HF_TEST_ID_MAX], b[HF_TEST_ID_MAX], c[HF_TEST_ID_MAX];
    hold_ok(fx, one_line(body, sizeof body, "cap-red", 2, ""), a);
    hold_ok(fx, one_line(body, sizeof body, "cap-red", 3, ""), b);
    hold_ok(fx, one_line(body, sizeof body, "cap-red", 1, ""), c);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 6, 0));
    hf_response_t r =
        hold_call(fx, "POST", a, "commit", "{\"order_ref\": \"o-9\"}", 200, "committed");
    long long finished = instant_of(&r, "finished_at");
    assert_true(finished > 0);
    assert_string_equal(or_missing(hf_json_str(r.json, "order_ref")), "o-9");
    const char *lines_a = "[{\"sku\": \"cap-red\", \"qty\": 2}]";
    json_t *want = json_loads(lines_a, 0, NULL);
    assert_true(json_equal(json_object_get(r.json, "lines"), want));
    json_decref(want);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 4, 2));
    /* Again: the same hold, unchanged, and nothing moves. */
    hf_response_t again =
        hold_call(fx, "POST", a, "commit", "{\"order_ref\": \"o-10\"}", 200, "committed");
    assert_string_equal(or_missing(hf_json_str(again.json, "order_ref")), "o-9"); /* kept */
    assert_string_equal(or_missing(hf_json_str(again.json, "finished_at")),
                        or_missing(hf_json_str(r.json, "finished_at")));
    hf_response_free(&again);
    hf_response_free(&r);
    hold_expect(fx, "POST", a, "commit", NULL, 200, "committed");
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 4, 2));
    /* The body is optional: none, empty, or {}. */
    hold_expect(fx, "POST", b, "commit", NULL, 200, "committed");
    hold_expect(fx, "POST", c, "commit", "", 200, "committed");
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 0, 6));
    hold_expect(fx, "GET", b, NULL, NULL, 200, "committed");
    char d[HF_TEST_ID_MAX];
    hold_ok(fx, one_line(body, sizeof body, "cap-red", 4, ""), d);
    hold_expect(fx, "POST", d, "commit", "{}", 200, "committed");
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 0, 10));
}

static void test_hold_commit_bad_bodies_change_nothing(void **state)
{
    fx_t *fx = *state;
    put_sku(fx, "cap-red", 10, 201);
    char body[256], id[HF_TEST_ID_MAX], target[256];
    hold_ok(fx, one_line(body, sizeof body, "cap-red", 2, ""), id);
    char long_ref[200];
    snprintf(long_ref, sizeof long_ref, "{\"order_ref\": \"%0129d\"}", 0);
    const bad_t cases[] = {
        {"{", "invalid_json", NULL},
        {"[]", "invalid_json", NULL},
        {"\"o-9\"", "invalid_json", NULL},
        {"{\"order_ref\": \"\"}", "invalid_field", "order_ref"},
        {"{\"order_ref\": 9}", "invalid_field", "order_ref"},
        {"{\"order_ref\": null}", "invalid_field", "order_ref"},
        {"{\"order_ref\": \"o\\u0007\"}", "invalid_field", "order_ref"},
        {long_ref, "invalid_field", "order_ref"},
        {"{\"order\": \"o-9\"}", "unknown_field", "order"},
        {"{\"order_ref\": \"o-9\", \"ttl_ms\": 1000}", "unknown_field", "ttl_ms"},
    };
    const hf_sku_counts_t before = {10, 2, 0, 8};
    hold_target(target, sizeof target, id, "commit");
    refuse_all(fx, "POST", target, cases, sizeof cases / sizeof cases[0], "cap-red", &before);
    hold_expect(fx, "GET", id, NULL, NULL, 200, "active");
    char ok_ref[200];
    snprintf(ok_ref, sizeof ok_ref, "{\"order_ref\": \"%0128d\"}", 0);
    hold_expect(fx, "POST", id, "commit", ok_ref, 200, "committed");
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 0, 2));
}

static void test_hold_release_returns_units(void **state)
{
    fx_t *fx = *state;
    put_sku(fx, "cap-red", 10, 201);
    char body[256], id[HF_TEST_ID_MAX];
    hold_ok(fx, one_line(body, sizeof body, "cap-red", 4, ""), id);
    hf_response_t r = hold_call(fx, "DELETE", id, NULL, NULL, 200, "released");
    assert_true(instant_of(&r, "finished_at") > 0);
    hf_response_free(&r);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 0, 0));
    hold_expect(fx, "DELETE", id, NULL, NULL, 200, "released");
    hold_expect(fx, "GET", id, NULL, NULL, 200, "released");
    hold_expect_error(fx, "POST", id, "commit", "{}", 410, "hold_released");
    hold_expect_error(fx, "POST", id, "extend", "{\"ttl_ms\": 60000}", 410, "hold_released");
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 0, 0));
    hold_ok(fx, one_line(body, sizeof body, "cap-red", 10, ""), NULL);
}

static void test_hold_delete_of_committed_is_409(void **state)
{
    fx_t *fx = *state;
    put_sku(fx, "cap-red", 10, 201);
    char body[256], id[HF_TEST_ID_MAX];
    hold_ok(fx, one_line(body, sizeof body, "cap-red", 4, ""), id);
    hold_expect(fx, "POST", id, "commit", "{}", 200, "committed");
    hold_expect_error(fx, "DELETE", id, NULL, NULL, 409, "hold_committed");
    hold_expect_error(fx, "POST", id, "extend", "{\"ttl_ms\": 60000}", 409, "hold_committed");
    hold_expect(fx, "GET", id, NULL, NULL, 200, "committed");
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 0, 4));
}

static void test_hold_extend_never_shortens(void **state)
{
    fx_t *fx = *state;
    put_sku(fx, "cap-red", 10, 201);
    char body[256], id[HF_TEST_ID_MAX], target[256];
    hf_response_t r;
    assert_int_equal(
        hf_hold_create(&fx->cl, one_line(body, sizeof body, "cap-red", 1, ", \"ttl_ms\": 60000"),
                       NULL, id, &r),
        201);
    long long first = instant_of(&r, "expires_at");
    hf_response_free(&r);
    long long wall = hf_wall_ms();
    r = hold_call(fx, "POST", id, "extend", "{\"ttl_ms\": 3600000}", 200, "active");
    long long extended = instant_of(&r, "expires_at"), left = 0;
    assert_true(extended > first);
    assert_true(extended >= wall + 3600000 - 5000 && extended <= wall + 3600000 + 5000);
    assert_true(hf_json_int(r.json, "expires_in_ms", &left));
    assert_true(left > 3500000 && left <= 3600000);
    hf_response_free(&r);
    /* A shorter ttl keeps the later expiry. */
    r = hold_call(fx, "POST", id, "extend", "{\"ttl_ms\": 1000}", 200, "active");
    assert_true(instant_of(&r, "expires_at") == extended);
    hf_response_free(&r);
    const bad_t cases[] = {
        {"", "invalid_json|invalid_field", NULL},
        {"{", "invalid_json", NULL},
        {"[]", "invalid_json", NULL},
        {"{}", "invalid_field", "ttl_ms"},
        {"{\"ttl_ms\": 999}", "invalid_field", "ttl_ms"},
        {"{\"ttl_ms\": 86400001}", "invalid_field", "ttl_ms"},
        {"{\"ttl_ms\": -5000}", "invalid_field", "ttl_ms"},
        {"{\"ttl_ms\": \"60000\"}", "invalid_field", "ttl_ms"},
        {"{\"ttl_ms\": 6e4}", "invalid_field", "ttl_ms"},
        {"{\"ttl_ms\": 123456789012345678901234567890}", "invalid_json|invalid_field", NULL},
        {"{\"ttl_ms\": 60000, \"x\": 1}", "unknown_field", "x"},
    };
    const hf_sku_counts_t before = {10, 1, 0, 9};
    hold_target(target, sizeof target, id, "extend");
    refuse_all(fx, "POST", target, cases, sizeof cases / sizeof cases[0], "cap-red", &before);
    r = hold_call(fx, "GET", id, NULL, NULL, 200, "active");
    assert_true(instant_of(&r, "expires_at") == extended);
    hf_response_free(&r);
    r = hold_call(fx, "POST", id, "extend", "{\"ttl_ms\": 86400000}", 200, "active");
    assert_true(instant_of(&r, "expires_at") > extended);
    hf_response_free(&r);
}

/* Sleeps until the wall clock is past instant_ms + margin_ms. */
static void sleep_past(long long instant_ms, long long margin_ms)
{
    long long wait = instant_ms + margin_ms - hf_wall_ms();
    if (wait > 0) {
        hf_sleep_ms(wait);
    }
}

static void test_hold_expires_on_its_own(void **state)
{
    fx_t *fx = *state;
    put_sku(fx, "cap-red", 10, 201);
    char body[256], id[HF_TEST_ID_MAX];
    hf_response_t r;
    assert_int_equal(hf_hold_create(&fx->cl,
                                    one_line(body, sizeof body, "cap-red", 4, ", \"ttl_ms\": 1000"),
                                    NULL, id, &r),
                     201);
    long long expires = instant_of(&r, "expires_at");
    hf_response_free(&r);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 4, 0));
    sleep_past(expires, 150);
    /* The units come back without anyone touching the hold. */
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 0, 0));
    r = hold_call(fx, "GET", id, NULL, NULL, 200, "expired");
    long long finished = instant_of(&r, "finished_at");
    assert_true(finished >= expires - 1 && finished <= expires + 150);
    hf_response_free(&r);
    hold_expect_error(fx, "POST", id, "commit", "{}", 410, "hold_expired");
    hold_expect_error(fx, "POST", id, "extend", "{\"ttl_ms\": 60000}", 410, "hold_expired");
    hold_expect(fx, "DELETE", id, NULL, NULL, 200, "expired");
    hold_expect(fx, "GET", id, NULL, NULL, 200, "expired");
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 0, 0));
    hold_ok(fx, one_line(body, sizeof body, "cap-red", 10, ""), NULL);
}

/* docs/API.md: expired by the server on its own, to the millisecond. Read just
 * before and just after expires_at. */
static void test_hold_expires_to_the_millisecond(void **state)
{
    fx_t *fx = *state;
    put_sku(fx, "cap-red", 10, 201);
    char body[256], id[HF_TEST_ID_MAX];
    hf_response_t r;
    assert_int_equal(hf_hold_create(&fx->cl,
                                    one_line(body, sizeof body, "cap-red", 3, ", \"ttl_ms\": 1000"),
                                    NULL, id, &r),
                     201);
    long long expires = instant_of(&r, "expires_at");
    hf_response_free(&r);
    sleep_past(expires, -150);
    r = hold_call(fx, "GET", id, NULL, NULL, 200, "active");
    long long left = -1;
    assert_true(hf_json_int(r.json, "expires_in_ms", &left));
    if (left <= 0 || left > 152) {
        fprintf(stderr, "150 ms before expires_at, expires_in_ms is %lld\n", left);
    }
    assert_true(left > 0 && left <= 152); /* 2: each clock rounds to the ms */
    hf_response_free(&r);
    sleep_past(expires, 25);
    hold_expect(fx, "GET", id, NULL, NULL, 200, "expired");
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 0, 0));
}

static int hold_with_key(fx_t *fx, const char *body, const char *key, char *id_out)
{
    return hf_hold_create(&fx->cl, body, key, id_out, NULL);
}

static void test_idempotency_key_applies_once(void **state)
{
    fx_t *fx = *state;
    put_sku(fx, "cap-red", 10, 201);
    char two[256], three[256], twenty[256];
    one_line(two, sizeof two, "cap-red", 2, "");
    one_line(three, sizeof three, "cap-red", 3, "");
    one_line(twenty, sizeof twenty, "cap-red", 20, "");
    char a[HF_TEST_ID_MAX], again[HF_TEST_ID_MAX], b[HF_TEST_ID_MAX];
    assert_int_equal(hold_with_key(fx, two, "k-1", a), 201);
    assert_int_equal(hold_with_key(fx, two, "k-1", again), 201);
    assert_string_equal(a, again);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 2, 0));
    hf_response_t r;
    assert_int_equal(hf_hold_create(&fx->cl, three, "k-1", NULL, &r), 422);
    assert_true(hf_expect_error(&r, 422, "idempotency_mismatch", NULL));
    hf_response_free(&r);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 2, 0));
    assert_int_equal(hold_with_key(fx, two, "k-2", b), 201);
    assert_string_not_equal(a, b);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 4, 0));
    /* A key is 1-64 bytes. */
    char key65[66], key64[65];
    memset(key65, 'k', 65);
    key65[65] = '\0';
    memcpy(key64, key65, 64);
    key64[64] = '\0';
    const char *bad_keys[] = {key65, ""};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(hf_hold_create(&fx->cl, two, bad_keys[i], NULL, &r), 400);
        assert_true(hf_expect_error(&r, 400, "invalid_field", "Idempotency-Key"));
        hf_response_free(&r);
    }
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 4, 0));
    assert_int_equal(hold_with_key(fx, two, key64, NULL), 201);
    assert_int_equal(hold_with_key(fx, two, key64, NULL), 201);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 6, 0));
    /* A refused create is not remembered: the same key works once possible. */
    assert_int_equal(hold_with_key(fx, twenty, "k-3", NULL), 409);
    put_sku(fx, "cap-red", 30, 200);
    assert_int_equal(hold_with_key(fx, twenty, "k-3", b), 201);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 30, 26, 0));
    assert_int_equal(hold_with_key(fx, twenty, "k-3", again), 201);
    assert_string_equal(b, again);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 30, 26, 0));
    /* The replay of a committed hold is still the same hold, applied once. */
    hold_expect(fx, "POST", a, "commit", "{}", 200, "committed");
    assert_int_equal(hold_with_key(fx, two, "k-1", again), 201);
    assert_string_equal(a, again);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 30, 24, 2));
}

/* "Same key, different body" covers every field of the body, not only the
 * ones that decide what is held. */
static void test_idempotency_key_with_another_ip_or_fingerprint_is_422(void **state)
{
    fx_t *fx = *state;
    put_sku(fx, "cap-red", 10, 201);
    const char *first = "{\"customer\": \"u-1\", \"ip\": \"203.0.113.7\", \"fingerprint\": "
                        "\"fp-1\", \"lines\": [{\"sku\": \"cap-red\", \"qty\": 1}]}";
    const char *others[] = {
        "{\"customer\": \"u-1\", \"ip\": \"198.51.100.9\", \"fingerprint\": \"fp-1\", "
        "\"lines\": [{\"sku\": \"cap-red\", \"qty\": 1}]}",
        "{\"customer\": \"u-1\", \"ip\": \"203.0.113.7\", \"fingerprint\": \"fp-2\", "
        "\"lines\": [{\"sku\": \"cap-red\", \"qty\": 1}]}",
        "{\"customer\": \"u-2\", \"ip\": \"203.0.113.7\", \"fingerprint\": \"fp-1\", "
        "\"lines\": [{\"sku\": \"cap-red\", \"qty\": 1}]}",
        "{\"customer\": \"u-1\", \"ip\": \"203.0.113.7\", \"fingerprint\": \"fp-1\", "
        "\"lines\": [{\"sku\": \"cap-red\", \"qty\": 1}], \"ttl_ms\": 5000}",
    };
    assert_int_equal(hold_with_key(fx, first, "k-ip", NULL), 201);
    const char *differs[] = {"ip", "fingerprint", "customer", "ttl_ms"};
    int wrong = 0;
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        hf_response_t r;
        int status = hf_hold_create(&fx->cl, others[i], "k-ip", NULL, &r);
        if (!hf_expect_error(&r, 422, "idempotency_mismatch", NULL)) {
            fprintf(stderr, "  same key, another %s: %d\n", differs[i], status);
            wrong++;
        }
        hf_response_free(&r);
    }
    assert_int_equal(wrong, 0);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 1, 0));
}

static void test_idempotency_keys_over_capacity_is_503(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(hf_server_write_config(&fx->srv, "{\"idempotency_keys_max\": 2}"), 0);
    start(fx, NULL);
    put_sku(fx, "cap-red", 10, 201);
    char body[256], a[HF_TEST_ID_MAX], again[HF_TEST_ID_MAX];
    one_line(body, sizeof body, "cap-red", 1, "");
    assert_int_equal(hold_with_key(fx, body, "k-1", a), 201);
    assert_int_equal(hold_with_key(fx, body, "k-2", NULL), 201);
    hf_response_t r;
    assert_int_equal(hf_hold_create(&fx->cl, body, "k-3", NULL, &r), 503);
    assert_true(hf_expect_error(&r, 503, "overloaded", NULL));
    assert_non_null(hf_json_str(json_object_get(r.json, "error"), "reason"));
    hf_response_free(&r);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 2, 0));
    /* Keys already held still replay, and requests without a key still go. */
    assert_int_equal(hold_with_key(fx, body, "k-1", again), 201);
    assert_string_equal(a, again);
    hold_ok(fx, body, NULL);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 3, 0));
}

/* holds_max 1: the keyed hold's slot is taken by the next hold while its
 * key is still remembered. A retry must not hold the units a second time. */
static void test_idempotent_retry_after_the_hold_was_evicted_applies_nothing(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(hf_server_write_config(&fx->srv, "{\"holds_max\": 1}"), 0);
    start(fx, NULL);
    put_sku(fx, "cap-red", 10, 201);
    char body[256], other[256], a[HF_TEST_ID_MAX], again[HF_TEST_ID_MAX] = "";
    one_line(body, sizeof body, "cap-red", 1, "");
    one_line(other, sizeof other, "cap-red", 2, "");
    assert_int_equal(hold_with_key(fx, body, "k-1", a), 201);
    hold_expect(fx, "DELETE", a, NULL, NULL, 200, "released");
    hold_ok(fx, other, NULL);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 2, 0));
    int status = hold_with_key(fx, body, "k-1", again);
    if (status == 201) {
        assert_string_equal(again, a);
    }
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 2, 0));
}

static void test_hold_over_capacity_is_503(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(hf_server_write_config(&fx->srv, "{\"holds_max\": 2}"), 0);
    start(fx, NULL);
    put_sku(fx, "cap-red", 10, 201);
    char body[256], a[HF_TEST_ID_MAX], b[HF_TEST_ID_MAX];
    one_line(body, sizeof body, "cap-red", 1, "");
    hold_ok(fx, body, a);
    hold_ok(fx, body, b);
    hf_response_t r;
    assert_int_equal(hf_hold_create(&fx->cl, body, NULL, NULL, &r), 503);
    assert_true(hf_expect_error(&r, 503, "overloaded", NULL));
    assert_non_null(hf_json_str(json_object_get(r.json, "error"), "reason"));
    hf_response_free(&r);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 2, 0));
    /* A finished hold's slot is taken back when needed. */
    hold_expect(fx, "DELETE", a, NULL, NULL, 200, "released");
    hold_ok(fx, body, NULL);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 2, 0));
    hold_expect(fx, "GET", b, NULL, NULL, 200, "active");
    /* The released hold gave its slot up, so it reads as gone. */
    hold_expect_error(fx, "GET", a, NULL, NULL, 404, "not_found");
}

/* ======================= the HTTP edge ======================= */

/* A hold request padded with spaces to exactly size bytes. */
static char *padded_hold(size_t size)
{
    const char *head = "{\"customer\": \"u-1\", \"lines\": [{\"sku\": \"cap-red\", \"qty\": 1}]";
    char *body = malloc(size + 1);
    assert_non_null(body);
    size_t n = strlen(head);
    memcpy(body, head, n);
    memset(body + n, ' ', size - n - 1);
    body[size - 1] = '}';
    body[size] = '\0';
    return body;
}

static void expect_refused_as_too_large(fx_t *fx, size_t size)
{
    char *body = padded_hold(size);
    hf_response_t r;
    int rc = hf_call_bytes(&fx->cl, "POST", "/v1/holds", NULL, body, size, &r);
    free(body);
    if (rc != 0) {
        fprintf(stderr, "a %zu-byte body got no reply at all (want 413)\n", size);
    }
    assert_int_equal(rc, 0);
    assert_true(hf_expect_error(&r, 413, "body_too_large", NULL));
    hf_response_free(&r);
}

static void test_body_over_64_kib_is_413(void **state)
{
    fx_t *fx = *state;
    put_sku(fx, "cap-red", 10, 201);
    char *body = padded_hold(65536);
    hf_response_t r;
    assert_int_equal(hf_call_bytes(&fx->cl, "POST", "/v1/holds", NULL, body, 65536, &r), 0);
    free(body);
    assert_true(hf_expect_status(&r, 201));
    hf_response_free(&r);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 1, 0));
    expect_refused_as_too_large(fx, 65537);
    expect_refused_as_too_large(fx, 2 * 1024 * 1024);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 1, 0));
    /* The limit is on the body, not on Content-Length: chunked counts too. */
    hf_conn_t c;
    assert_int_equal(hf_conn_open(&c, fx->cl.port, NULL), 0);
    const char *head = "POST /v1/holds HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                       "application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    hf_conn_send_raw(&c, head, strlen(head));
    char *chunk = padded_hold(70000);
    char size_line[32];
    snprintf(size_line, sizeof size_line, "%x\r\n", 70000);
    if (hf_conn_send_raw(&c, size_line, strlen(size_line)) == 0 &&
        hf_conn_send_raw(&c, chunk, 70000) == 0) {
        hf_conn_send_raw(&c, "\r\n0\r\n\r\n", 7);
    }
    free(chunk);
    assert_int_equal(hf_conn_read(&c, &r), 0);
    assert_true(hf_expect_error(&r, 413, "body_too_large", NULL));
    hf_response_free(&r);
    hf_conn_close(&c);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 1, 0));
    call_expect(&fx->cl, "GET", "/healthz", NULL, 200);
}

/* Sends a request with count extra "X-Pad-N: v" headers on a fresh
 * connection; returns the status, or 0 if the server closed without one. */
static int request_with_headers(fx_t *fx, int count, size_t value_bytes)
{
    char *value = malloc(value_bytes + 1);
    assert_non_null(value);
    memset(value, 'v', value_bytes);
    value[value_bytes] = '\0';
    size_t cap = (size_t)count * (value_bytes + 32) + 1;
    char *headers = malloc(cap);
    assert_non_null(headers);
    size_t n = 0;
    headers[0] = '\0';
    for (int i = 0; i < count; i++) {
        n += (size_t)snprintf(headers + n, cap - n, "X-Pad-%d: %s\r\n", i, value);
    }
    hf_response_t r;
    int rc = hf_call(&fx->cl, "GET", "/v1/skus/cap-red", headers, NULL, &r);
    free(headers);
    free(value);
    int status = rc == 0 ? r.status : 0;
    if (rc == 0 && status == 431 && r.json != NULL) {
        assert_true(hf_expect_error(&r, 431, "header_too_large", NULL));
    }
    if (rc == 0) {
        hf_response_free(&r);
    }
    return status;
}

static void test_too_many_headers_are_refused(void **state)
{
    fx_t *fx = *state;
    put_sku(fx, "cap-red", 10, 201);
    /* Host plus 63: exactly 64 headers is allowed. */
    assert_int_equal(request_with_headers(fx, 63, 8), 200);
    int status = request_with_headers(fx, 65, 8);
    assert_true(status == 431 || status == 0);
    status = request_with_headers(fx, 200, 8);
    assert_true(status == 431 || status == 0);
    call_expect(&fx->cl, "GET", "/healthz", NULL, 200);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 0, 0));
}

/* hf_limits.h: HF_HEADER_BYTES_MAX, a 16 KiB header block, enforced at the
 * edge like every limit. */
static void test_header_block_over_16_kib_is_refused(void **state)
{
    fx_t *fx = *state;
    put_sku(fx, "cap-red", 10, 201);
    assert_int_equal(request_with_headers(fx, 1, 15 * 1024), 200);
    const struct {
        int count;
        size_t value_bytes;
    } cases[] = {{1, 20 * 1024}, {20, 1024}, {40, 1024}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int status = request_with_headers(fx, cases[i].count, cases[i].value_bytes);
        if (!(status == 431 || status == 413 || status == 400 || status == 0)) {
            fprintf(stderr, "%d header(s) of %zu bytes: %d, want it refused\n", cases[i].count,
                    cases[i].value_bytes, status);
        }
        assert_true(status == 431 || status == 413 || status == 400 || status == 0);
        call_expect(&fx->cl, "GET", "/healthz", NULL, 200);
    }
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 0, 0));
}

/* Sends raw bytes and returns the reply's status, or 0 if the connection
 * closed without one. */
static int raw_exchange(fx_t *fx, const char *bytes)
{
    hf_conn_t c;
    assert_int_equal(hf_conn_open(&c, fx->cl.port, NULL), 0);
    /* A server may also just wait for the rest; that is a refusal too, and
     * a shorter wait keeps the test quick. */
    struct timeval tv = {.tv_sec = 3};
    setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    hf_conn_send_raw(&c, bytes, strlen(bytes));
    shutdown(c.fd, SHUT_WR);
    hf_response_t r;
    int status = hf_conn_read(&c, &r) == 0 ? r.status : 0;
    if (status != 0) {
        hf_response_free(&r);
    }
    hf_conn_close(&c);
    return status;
}

static void test_malformed_http_is_refused_and_the_server_lives(void **state)
{
    fx_t *fx = *state;
    put_sku(fx, "cap-red", 10, 201);
    const char *garbage[] = {
        "GARBAGE\r\n\r\n",
        "GET\r\n\r\n",
        "GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
        "POST /v1/holds HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}",
        "POST /v1/holds HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n{}",
        "POST /v1/holds HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    };
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        int status = raw_exchange(fx, garbage[i]);
        if (!(status == 0 || (status >= 400 && status < 600))) {
            fprintf(stderr, "case %zu got %d\n", i, status);
        }
        assert_true(status == 0 || (status >= 400 && status < 600));
        call_expect(&fx->cl, "GET", "/healthz", NULL, 200);
    }
    /* A client that goes away mid-request. */
    hf_conn_t c;
    assert_int_equal(hf_conn_open(&c, fx->cl.port, NULL), 0);
    const char *half = "POST /v1/holds HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"cu";
    hf_conn_send_raw(&c, half, strlen(half));
    hf_conn_close(&c);
    assert_true(hf_expect_sku(&fx->cl, "cap-red", 10, 0, 0));
    char body[256];
    hold_ok(fx, one_line(body, sizeof body, "cap-red", 1, ""), NULL);
}

static void test_connections_over_the_limit_are_refused(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(
        hf_server_write_config(&fx->srv, "{\"connections_max\": 4, \"connections_reserve\": 0}"),
        0);
    start(fx, NULL);
    hf_conn_t held[4];
    for (int i = 0; i < 4; i++) {
        assert_int_equal(hf_conn_open(&held[i], fx->cl.port, NULL), 0);
        hf_response_t r;
        assert_int_equal(hf_conn_exchange(&held[i], "GET", "/healthz", NULL, NULL, 0, &r), 0);
        assert_true(hf_expect_status(&r, 200));
        hf_response_free(&r);
    }
    /* A fifth is answered 503 at once and closed (tests/api/test_flood.c
     * has the caps in detail). */
    hf_conn_t extra;
    assert_int_equal(hf_conn_open(&extra, fx->cl.port, NULL), 0);
    hf_response_t refused;
    assert_int_equal(hf_conn_exchange(&extra, "GET", "/healthz", NULL, NULL, 0, &refused), 0);
    assert_true(hf_expect_error(&refused, 503, "overloaded", NULL));
    assert_non_null(hf_response_header(&refused, "Retry-After"));
    hf_response_free(&refused);
    hf_conn_close(&extra);
    for (int i = 0; i < 4; i++) {
        hf_conn_close(&held[i]);
    }
    /* Once they are gone a new client is served; the server notices closed
     * connections asynchronously, so allow it a bounded number of tries. */
    int status = 0;
    for (int attempt = 0; attempt < 100 && status != 200; attempt++) {
        hf_response_t r;
        if (hf_call(&fx->cl, "GET", "/healthz", NULL, NULL, &r) == 0) {
            status = r.status;
            hf_response_free(&r);
        }
        if (status != 200) {
            hf_sleep_ms(20);
        }
    }
    assert_int_equal(status, 200);
}

/* ======================= authentication ======================= */

static int status_as(fx_t *fx, const char *key, const char *method, const char *target,
                     const char *body, const char *code)
{
    hf_client_t cl = {fx->cl.port, key, true}; /* as the hold's owner */
    hf_response_t r;
    assert_int_equal(hf_call(&cl, method, target, NULL, body, &r), 0);
    if (code != NULL) {
        assert_true(hf_expect_error(&r, r.status, code, NULL));
    }
    int status = r.status;
    hf_response_free(&r);
    return status;
}

static int status_with_header(fx_t *fx, const char *header, const char *target)
{
    hf_response_t r;
    assert_int_equal(hf_call(&fx->cl, "GET", target, header, NULL, &r), 0);
    int status = r.status;
    if (status == 401) {
        assert_true(hf_expect_error(&r, 401, "unauthorized", NULL));
    }
    hf_response_free(&r);
    return status;
}

static void expect_key_roles(fx_t *fx, const char *shop, const char *admin)
{
    hf_client_t as_admin = {fx->cl.port, admin, false};
    const char *stock = "{\"stock\": 10}";
    const char *hold = "{\"customer\": \"u-1\", \"lines\": [{\"sku\": \"cap-red\", \"qty\": 1}]}";
    assert_int_equal(status_as(fx, NULL, "PUT", "/v1/skus/cap-red", stock, "unauthorized"), 401);
    assert_int_equal(status_as(fx, "nope", "PUT", "/v1/skus/cap-red", stock, "unauthorized"), 401);
    assert_int_equal(status_as(fx, shop, "PUT", "/v1/skus/cap-red", stock, "forbidden"), 403);
    call_expect_error(&as_admin, "GET", "/v1/skus/cap-red", NULL, 404, "not_found", NULL);
    assert_int_equal(status_as(fx, admin, "PUT", "/v1/skus/cap-red", stock, NULL), 201);
    assert_int_equal(status_as(fx, shop, "PUT", "/v1/skus/cap-red", "{\"stock\": 99}", "forbidden"),
                     403);
    assert_true(hf_expect_sku(&as_admin, "cap-red", 10, 0, 0));
    assert_int_equal(status_as(fx, shop, "GET", "/v1/skus/cap-red", NULL, NULL), 200);
    assert_int_equal(status_as(fx, shop, "GET", "/v1/skus", NULL, NULL), 200);
    assert_int_equal(status_as(fx, NULL, "GET", "/v1/skus/cap-red", NULL, "unauthorized"), 401);
    assert_int_equal(status_as(fx, NULL, "POST", "/v1/holds", hold, "unauthorized"), 401);
    assert_int_equal(status_as(fx, "nope", "POST", "/v1/holds", hold, "unauthorized"), 401);
    assert_true(hf_expect_sku(&as_admin, "cap-red", 10, 0, 0));
    hf_client_t as_shop = {fx->cl.port, shop, true};
    char id[HF_TEST_ID_MAX], target[256];
    assert_int_equal(hf_hold_create(&as_shop, hold, NULL, id, NULL), 201);
    snprintf(target, sizeof target, "/v1/holds/%s", id);
    assert_int_equal(status_as(fx, NULL, "GET", target, NULL, "unauthorized"), 401);
    assert_int_equal(status_as(fx, NULL, "DELETE", target, NULL, "unauthorized"), 401);
    assert_int_equal(status_as(fx, shop, "GET", target, NULL, NULL), 200);
    assert_int_equal(status_as(fx, shop, "DELETE", target, NULL, NULL), 200);
    assert_int_equal(hf_hold_create(&as_admin, hold, NULL, NULL, NULL), 201);
    assert_true(hf_expect_sku(&as_admin, "cap-red", 10, 1, 0));
    assert_int_equal(status_as(fx, NULL, "GET", "/healthz", NULL, NULL), 200);
}

static void test_auth_shop_and_admin_keys(void **state)
{
    fx_t *fx = *state;
    const char *args[] = {"--api-key",   "shop-key-1",  "--api-key", "shop-key-2",
                          "--admin-key", "admin-key-1", NULL};
    start(fx, args);
    expect_key_roles(fx, "shop-key-1", "admin-key-1");
    hf_client_t second = {fx->cl.port, "shop-key-2", true};
    const char *hold = "{\"customer\": \"u-2\", \"lines\": [{\"sku\": \"cap-red\", \"qty\": 1}]}";
    assert_int_equal(hf_hold_create(&second, hold, NULL, NULL, NULL), 201);
    /* Near misses of a good key. */
    const char *headers[] = {"Authorization: Basic shop-key-1\r\n",
                             "Authorization: Bearer\r\n",
                             "Authorization: Bearer shop-key-1x\r\n",
                             "Authorization: Bearer shop-key-\r\n",
                             "Authorization: shop-key-1\r\n",
                             "Authorization: Bearer  \r\n",
                             "X-Api-Key: shop-key-1\r\n"};
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        assert_int_equal(status_with_header(fx, headers[i], "/v1/skus/cap-red"), 401);
    }
}

/* /healthz is open; /metrics is the admin's, and its refusals are the API's
 * JSON errors like any other. */
static void test_auth_metrics_need_the_admin_key(void **state)
{
    fx_t *fx = *state;
    const char *args[] = {"--api-key", "shop-key-1", "--admin-key", "admin-key-1", NULL};
    start(fx, args);
    assert_int_equal(status_as(fx, NULL, "GET", "/healthz", NULL, NULL), 200);
    assert_int_equal(status_as(fx, "nope", "GET", "/healthz", NULL, NULL), 200);
    assert_int_equal(status_as(fx, "admin-key-1", "GET", "/metrics", NULL, NULL), 200);
    int shop_metrics = status_as(fx, "shop-key-1", "GET", "/metrics", NULL, NULL);
    assert_true(shop_metrics == 401 || shop_metrics == 403);
    assert_int_equal(status_as(fx, NULL, "GET", "/metrics", NULL, NULL), 401);
    assert_int_equal(status_as(fx, NULL, "GET", "/metrics", NULL, "unauthorized"), 401);
    assert_int_equal(status_as(fx, "shop-key-1", "GET", "/metrics", NULL,
                               shop_metrics == 401 ? "unauthorized" : "forbidden"),
                     shop_metrics);
}

static void test_auth_keys_from_the_config_file(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(hf_server_write_config(&fx->srv, "{\"api_keys\": [\"cfg-shop\"], "
                                                      "\"admin_key\": \"cfg-admin\"}"),
                     0);
    start(fx, NULL);
    expect_key_roles(fx, "cfg-shop", "cfg-admin");
}

/* ======================= the command line ======================= */

static void test_cli_version_and_help_exit_zero(void **state)
{
    (void)state;
    hf_run_result_t *res = calloc(1, sizeof *res);
    assert_non_null(res);
    const char *version[] = {"--version", NULL};
    assert_int_equal(hf_run(version, 10000, res), 0);
    /* "holdfast MAJOR.MINOR.PATCH (commit C)": a semantic version and the
     * commit it was built from. */
    unsigned major, minor, patch;
    char commit[64];
    assert_int_equal(sscanf(res->out, "holdfast %u.%u.%u (commit %63[^)])", &major, &minor,
                            &patch, commit),
                     4);
    assert_true(strlen(commit) > 0);
    const char *help[] = {"--help", NULL};
    assert_int_equal(hf_run(help, 10000, res), 0);
    assert_true(strstr(res->out, "serve") != NULL || strstr(res->err, "serve") != NULL);
    const char *serve_help[] = {"serve", "--help", NULL};
    assert_int_equal(hf_run(serve_help, 10000, res), 0);
    assert_true(strstr(res->out, "--listen") != NULL || strstr(res->err, "--listen") != NULL);
    /* Every connection flag is documented there. */
    const char *flags[] = {"--connections-max", "--connections-per-address-max",
                           "--connections-reserve", "--keepalive-max", "--head-timeout-ms",
                           "--body-timeout-ms", "--idle-timeout-ms"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        assert_non_null(strstr(res->out, flags[i]));
    }
    free(res);
}

/* Runs serve with extra arguments; it must refuse to start: exit non-zero
 * (not killed by us after the timeout) with a message on stderr. */
static void expect_serve_refused(fx_t *fx, const char *const *extra, const char *mention)
{
    const char *argv[32];
    int n = 0;
    argv[n++] = "serve";
    for (int i = 0; extra[i] != NULL; i++) {
        argv[n++] = extra[i];
    }
    argv[n] = NULL;
    hf_run_result_t *res = calloc(1, sizeof *res);
    assert_non_null(res);
    int status = hf_run(argv, 5000, res);
    if (status <= 0 || status >= 128 || res->err[0] == '\0' ||
        (mention != NULL && strstr(res->err, mention) == NULL)) {
        fprintf(stderr,
                "serve %s ...: status %d (want 1-127), want stderr naming \"%s\": %.2000s\n",
                extra[0], status, mention ? mention : "", res->err);
    }
    assert_true(status > 0 && status < 128);
    assert_true(res->err[0] != '\0');
    if (mention != NULL) {
        assert_non_null(strstr(res->err, mention));
    }
    free(res);
    (void)fx;
}

/* `holdfast sim`: the same seed prints the same bytes, table and JSON; a
 * bad option or scenario stops it with a message. */
static void test_sim_prints_the_same_bytes_for_a_seed(void **state)
{
    (void)state;
    hf_run_result_t *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    const char *table[] = {"sim", "--scenario", "flash-sale", "--compare", "naive,default",
                           "--seed", "5", "--genuine", "2000", NULL};
    assert_int_equal(hf_run(table, 60000, a), 0);
    assert_int_equal(hf_run(table, 60000, b), 0);
    assert_non_null(strstr(a->out, "naive"));
    assert_non_null(strstr(a->out, "default"));
    assert_string_equal(a->out, b->out);
    const char *json[] = {"sim", "--scenario", "flash-sale", "--policy", "default",
                          "--seed", "5", "--genuine", "2000", "--json", NULL};
    assert_int_equal(hf_run(json, 60000, a), 0);
    assert_int_equal(hf_run(json, 60000, b), 0);
    assert_string_equal(a->out, b->out);
    json_error_t err;
    json_t *doc = json_loads(a->out, 0, &err);
    assert_non_null(doc);
    assert_int_equal(json_integer_value(json_object_get(doc, "seed")), 5);
    json_decref(doc);
    const char *bad[] = {"sim", "--scenario", "merch-2021", NULL};
    assert_int_equal(hf_run(bad, 10000, a), 2);
    assert_non_null(strstr(a->err, "merch-2021"));
    const char *bad_seed[] = {"sim", "--seed", "x", NULL};
    assert_int_equal(hf_run(bad_seed, 10000, a), 2);
    free(a);
    free(b);
}

/* A cluster's flags: each bad value, and the cluster-only flags without
 * --journal, stop the start with a message naming it; the URI, which may
 * carry a password, is never echoed. Nothing needs PostgreSQL: every case
 * is refused before a connection is tried. */
static void test_cli_refuses_bad_cluster_settings(void **state)
{
    fx_t *fx = *state;
    const char *d = fx->srv.data_dir;
    const char *url = "postgresql://holdfast@127.0.0.1:1/holdfast";
    const struct {
        const char *args[8];
        const char *mention;
    } cases[] = {
        {{"--data", d, "--journal", "mysql://u:hunter2@h/db"}, "--journal: expected a PostgreSQL"},
        {{"--data", d, "--journal", url, "--shop", "Main"}, "--shop Main"},
        {{"--data", d, "--journal", url, "--shop", "a-shop-name-that-is-far-too-long-x"}, "--shop"},
        {{"--data", d, "--journal", url, "--node", "n_1"}, "--node n_1"},
        {{"--data", d, "--journal", url, "--node-url", "ftp://x"}, "--node-url ftp://x"},
        {{"--data", d, "--journal", url, "--lease-ms", "499"}, "--lease-ms 499"},
        {{"--data", d, "--journal", url, "--lease-ms", "60001"}, "--lease-ms 60001"},
        {{"--data", d, "--shop", "main"}, "need --journal"},
        {{"--data", d, "--lease-ms", "1000"}, "need --journal"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        expect_serve_refused(fx, cases[i].args, cases[i].mention);
    }
    hf_run_result_t *res = calloc(1, sizeof *res);
    assert_non_null(res);
    const char *secret[] = {"serve", "--data", d, "--journal", "mysql://u:hunter2@h/db", NULL};
    assert_int_equal(hf_run(secret, 5000, res), 2);
    assert_null(strstr(res->err, "hunter2"));
    free(res);
}

static void test_cli_refuses_non_loopback_without_keys(void **state)
{
    fx_t *fx = *state;
    const char *args[] = {"--listen", "0.0.0.0:0", "--data", fx->srv.data_dir, NULL};
    expect_serve_refused(fx, args, NULL);
    const char *v6[] = {"--listen", "[::]:0", "--data", fx->srv.data_dir, NULL};
    expect_serve_refused(fx, v6, NULL);
    /* The same address from the configuration file. */
    assert_int_equal(hf_server_write_config(&fx->srv, "{\"listen\": \"0.0.0.0:0\"}"), 0);
    const char *from_file[] = {"--data", fx->srv.data_dir, "--config", fx->srv.config_path, NULL};
    expect_serve_refused(fx, from_file, NULL);
}

static void test_cli_refuses_bad_config_and_options(void **state)
{
    fx_t *fx = *state;
    const struct {
        const char *config, *mention;
    } cases[] = {
        {"{\"bogus\": \"x\"}", "bogus"},
        {"{\"bogus\": 1}", "bogus"},
        {"{\"skus_max\": \"many\"}", "skus_max"},
        {"{\"skus_max\": -1}", "skus_max"},
        {"{\"durability\": \"sometimes\"}", "durability"},
        {"{\"api_keys\": \"k\"}", "api_keys"},
        {"{\"connections_max\": 99999999999}", "connections_max"},
        {"{\"head_timeout_ms\": 5}", "head_timeout_ms"},
        {"{\"connections_reserve\": \"few\"}", "connections_reserve"},
        {"{\"api_keys\": [\"s\"], ", NULL},
        {"not json", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(hf_server_write_config(&fx->srv, cases[i].config), 0);
        const char *args[] = {"--listen", "127.0.0.1:0",       "--data", fx->srv.data_dir,
                              "--config", fx->srv.config_path, NULL};
        expect_serve_refused(fx, args, cases[i].mention);
    }
    const char *bogus[] = {"--listen", "127.0.0.1:0", "--data", fx->srv.data_dir, "--bogus", NULL};
    expect_serve_refused(fx, bogus, NULL);
    const char *durability[] = {"--listen",     "127.0.0.1:0", "--data", fx->srv.data_dir,
                                "--durability", "sometimes",   NULL};
    expect_serve_refused(fx, durability, NULL);
    const char *per_address[] = {"--listen", "127.0.0.1:0", "--data", fx->srv.data_dir,
                                 "--connections-per-address-max", "-1", NULL};
    expect_serve_refused(fx, per_address, "--connections-per-address-max");
    const char *idle[] = {"--listen",          "127.0.0.1:0", "--data", fx->srv.data_dir,
                          "--idle-timeout-ms", "15s",         NULL};
    expect_serve_refused(fx, idle, "--idle-timeout-ms");
    const char *no_config[] = {"--listen", "127.0.0.1:0",
                               "--data",   fx->srv.data_dir,
                               "--config", "/nonexistent/holdfast.json",
                               NULL};
    expect_serve_refused(fx, no_config, NULL);
}

/* The message says what is wrong: an unknown key is unknown, whatever the
 * type of its value. */
static void test_cli_calls_an_unknown_config_key_unknown(void **state)
{
    fx_t *fx = *state;
    const char *configs[] = {"{\"bogus\": \"x\"}", "{\"bogus\": 1}", "{\"bogus\": [1]}",
                             "{\"Skus_max\": 5}"};
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) {
        assert_int_equal(hf_server_write_config(&fx->srv, configs[i]), 0);
        const char *args[] = {"--listen", "127.0.0.1:0",       "--data", fx->srv.data_dir,
                              "--config", fx->srv.config_path, NULL};
        expect_serve_refused(fx, args, "unknown");
    }
}

static void test_config_with_every_key_starts(void **state)
{
    fx_t *fx = *state;
    char config[1024];
    snprintf(config, sizeof config,
             "{\"listen\": \"127.0.0.1:0\", \"data\": \"%s\", \"api_keys\": [\"s1\", \"s2\"], "
             "\"admin_key\": \"a1\", \"durability\": \"relaxed\", \"skus_max\": 10, "
             "\"holds_max\": 10, \"idempotency_keys_max\": 10, \"connections_max\": 16, "
             "\"connections_per_address_max\": 8, \"connections_reserve\": 2, "
             "\"keepalive_max\": 8, \"head_timeout_ms\": 5000, \"body_timeout_ms\": 5000, "
             "\"idle_timeout_ms\": 5000, \"web_dir\": \"%s/no-pages\"}",
             fx->srv.data_dir, fx->srv.root);
    assert_int_equal(hf_server_write_config(&fx->srv, config), 0);
    start(fx, NULL);
    hf_client_t admin = {fx->cl.port, "a1", false}, shop = {fx->cl.port, "s2", true};
    assert_int_equal(hf_sku_put(&admin, "cap-red", 5), 201);
    const char *hold = "{\"customer\": \"u-1\", \"lines\": [{\"sku\": \"cap-red\", \"qty\": 2}]}";
    assert_int_equal(hf_hold_create(&shop, hold, NULL, NULL, NULL), 201);
    assert_true(hf_expect_sku(&shop, "cap-red", 5, 2, 0));
    /* web_dir was read: its (missing) pages are not found */
    hf_response_t r;
    assert_int_equal(hf_call(&shop, "GET", "/", NULL, NULL, &r), 0);
    assert_true(hf_expect_error(&r, 404, "not_found", NULL));
    hf_response_free(&r);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
#define T(name) cmocka_unit_test_setup_teardown(name, setup_started, teardown)
#define IDLE(name) cmocka_unit_test_setup_teardown(name, setup_idle, teardown)
    const struct CMUnitTest tests[] = {
        T(test_healthz_is_ok),
        T(test_metrics_follow_holds_and_requests),
        T(test_unknown_path_is_404),
        T(test_shop_paths_reach_this_servers_shop),
        T(test_wrong_method_is_405),
        T(test_keep_alive_serves_many_requests),
        T(test_sku_put_creates_201_then_updates_200),
        T(test_sku_get_unknown_is_404),
        T(test_sku_put_bad_bodies_change_nothing),
        T(test_sku_invalid_in_path_is_400),
        T(test_sku_stock_below_held_plus_sold_is_409),
        T(test_sku_list_pages_in_creation_order),
        T(test_sku_list_pages_past_the_default_limit),
        T(test_sku_pages_follow_next_to_the_end),
        T(test_unknown_query_parameters_are_refused_and_named),
        IDLE(test_sku_over_capacity_is_503),
        T(test_hold_create_returns_201_with_the_hold),
        T(test_hold_instants_follow_the_wall_clock),
        T(test_hold_default_ttl_is_ten_minutes),
        T(test_hold_is_all_or_nothing),
        T(test_hold_unknown_sku_is_404),
        T(test_hold_duplicate_sku_lines_is_400),
        T(test_hold_bad_bodies_change_nothing),
        T(test_hold_accepts_every_boundary),
        T(test_hold_unknown_or_malformed_id_is_404),
        T(test_hold_commit_moves_units_to_sold),
        T(test_hold_commit_bad_bodies_change_nothing),
        T(test_hold_release_returns_units),
        T(test_hold_delete_of_committed_is_409),
        T(test_hold_extend_never_shortens),
        T(test_hold_expires_on_its_own),
        T(test_hold_expires_to_the_millisecond),
        T(test_idempotency_key_applies_once),
        T(test_idempotency_key_with_another_ip_or_fingerprint_is_422),
        IDLE(test_idempotency_keys_over_capacity_is_503),
        IDLE(test_idempotent_retry_after_the_hold_was_evicted_applies_nothing),
        IDLE(test_hold_over_capacity_is_503),
        T(test_body_over_64_kib_is_413),
        T(test_too_many_headers_are_refused),
        T(test_header_block_over_16_kib_is_refused),
        T(test_malformed_http_is_refused_and_the_server_lives),
        IDLE(test_connections_over_the_limit_are_refused),
        IDLE(test_auth_shop_and_admin_keys),
        IDLE(test_auth_keys_from_the_config_file),
        IDLE(test_auth_metrics_need_the_admin_key),
        IDLE(test_cli_version_and_help_exit_zero),
        IDLE(test_sim_prints_the_same_bytes_for_a_seed),
        IDLE(test_cli_refuses_bad_cluster_settings),
        IDLE(test_cli_refuses_non_loopback_without_keys),
        IDLE(test_cli_refuses_bad_config_and_options),
        IDLE(test_cli_calls_an_unknown_config_key_unknown),
        IDLE(test_config_with_every_key_starts),
    };
#undef T
#undef IDLE
    return hf_tests_done(cmocka_run_group_tests_name("api", tests, NULL, NULL));
}
