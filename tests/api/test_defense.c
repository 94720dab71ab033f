/*
 * test_defense.c - the denial-of-inventory defenses, checked from outside
 * against the contract (docs/API.md, docs/POLICIES.md) and the documented defaults
 * (POLICY_FIELDS in src/policy/policy.h).
 *
 * Each test starts the real binary on 127.0.0.1 with a fresh data directory
 * and a policy it chooses: usually every defense off but the one under test
 * (HF_POLICY_OFF with a few settings on top), so that a reply can only come
 * from that rule; the default policy where the test is about the defaults.
 *
 * What every test keeps to:
 *   1. A refused request changes nothing: after each 429 or 428 the SKU it
 *      aimed at reads as before.
 *   2. No sleep stands in for synchronisation. The only waits are for wall
 *      time to pass where expiry is what is tested (a challenge, a waitlist
 *      offer), with the smallest settings and a bounded deadline.
 *   3. The randomized buyers print their seed (HF_SEED=N replays a run).
 *
 * Proofs of work are solved with the reference solver (pow_solve), with the
 * difficulty kept small by settings so a proof takes milliseconds.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hf_test_http.h"
#include "policy.h"
#include "pow.h"

typedef hf_fixture_t fx_t;

#define SHOP_KEY "shop-key-1"
#define ADMIN_KEY "admin-key-1"
#define KEYS "\"api_keys\": [\"" SHOP_KEY "\"], \"admin_key\": \"" ADMIN_KEY "\""

/* The hoarders solve a proof up to this hard (2^18 hashes: a tenth of a
 * second) and give up above it, as a script with a time budget would. */
#define PATIENCE_BITS 18

static int setup(void **state)
{
    return hf_fixture_setup(state, NULL, false);
}

static int teardown(void **state)
{
    return hf_fixture_teardown(state);
}

static const char *or_missing(const char *s)
{
    return s != NULL ? s : "(missing)";
}

/* ---- configs ---- */

/* HF_POLICY_OFF with overrides (a policy document) merged on top. */
static char *policy_text(const char *overrides)
{
    json_error_t err;
    json_t *doc = json_loads(HF_POLICY_OFF, 0, &err);
    assert_non_null(doc);
    if (overrides != NULL) {
        json_t *more = json_loads(overrides, 0, &err);
        if (more == NULL) {
            fprintf(stderr, "bad overrides in the test: %s: %s\n", overrides, err.text);
        }
        assert_non_null(more);
        assert_int_equal(json_object_update_recursive(doc, more), 0);
        json_decref(more);
    }
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    assert_non_null(text);
    return text;
}

static void start_raw(fx_t *fx, const char *config)
{
    assert_int_equal(hf_server_write_config_raw(&fx->srv, config), 0);
    assert_int_equal(hf_server_start(&fx->srv, NULL), 0);
    fx->cl.port = fx->srv.port;
}

/* Starts with every defense off but the overrides; extra is more top-level
 * config members ("\"k\": v, ...") or NULL. */
static void start_with(fx_t *fx, const char *overrides, const char *extra)
{
    char *policy = policy_text(overrides);
    size_t size = strlen(policy) + (extra ? strlen(extra) : 0) + 32;
    char *config = malloc(size);
    assert_non_null(config);
    snprintf(config, size, "{\"policy\": %s%s%s}", policy, extra ? ", " : "", extra ? extra : "");
    start_raw(fx, config);
    free(config);
    free(policy);
}

static void restart(fx_t *fx, int sig)
{
    int code = hf_server_stop(&fx->srv, sig);
    assert_int_equal(code, sig == SIGKILL ? 128 + SIGKILL : 0);
    assert_int_equal(hf_server_start(&fx->srv, NULL), 0);
    fx->cl.port = fx->srv.port;
}

/* ---- calls ---- */

static hf_response_t call_h(const hf_client_t *cl, const char *method, const char *target,
                            const char *headers, const char *body)
{
    hf_response_t r;
    assert_int_equal(hf_call(cl, method, target, headers, body, &r), 0);
    return r;
}

static hf_response_t call(const hf_client_t *cl, const char *method, const char *target,
                          const char *body)
{
    return call_h(cl, method, target, NULL, body);
}

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
    if (!hf_expect_error(&r, status, code, field)) {
        fprintf(stderr, "  request: %s %s %.300s\n", method, target, body ? body : "");
    }
    assert_true(hf_expect_error(&r, status, code, field));
    hf_response_free(&r);
}

static void put_sku(fx_t *fx, const char *sku, long long stock)
{
    int status = hf_sku_put(&fx->cl, sku, stock);
    assert_true(status == 200 || status == 201);
}

static void put_sku_body(fx_t *fx, const char *sku, const char *body, int status)
{
    char target[128];
    snprintf(target, sizeof target, "/v1/skus/%s", sku);
    call_expect(&fx->cl, "PUT", target, body, status);
}

/* Replaces the shop's policy by HF_POLICY_OFF with overrides. */
static void put_policy(fx_t *fx, const char *overrides)
{
    char *body = policy_text(overrides);
    call_expect(&fx->cl, "PUT", "/v1/policy", body, 200);
    free(body);
}

/* {"customer": C[, "ip": IP][, "fingerprint": FP], "lines": [{SKU, QTY}] EXTRA} */
static const char *hold_json(char *buf, size_t size, const char *customer, const char *ip,
                             const char *fp, const char *sku, long long qty, const char *extra)
{
    char who[256] = "";
    size_t n = 0;
    if (ip != NULL) {
        n += (size_t)snprintf(who + n, sizeof who - n, ", \"ip\": \"%s\"", ip);
    }
    if (fp != NULL) {
        snprintf(who + n, sizeof who - n, ", \"fingerprint\": \"%s\"", fp);
    }
    snprintf(buf, size, "{\"customer\": \"%s\"%s, \"lines\": [{\"sku\": \"%s\", \"qty\": %lld}]%s}",
             customer, who, sku, qty, extra ? extra : "");
    return buf;
}

static hf_response_t post_hold(fx_t *fx, const char *body, const char *headers)
{
    return call_h(&fx->cl, "POST", "/v1/holds", headers, body);
}

/* A hold that must be granted; its id goes to id_out (may be NULL). */
static void hold_ok(fx_t *fx, const char *body, char *id_out)
{
    hf_response_t r = post_hold(fx, body, NULL);
    if (r.status != 201) {
        fprintf(stderr, "  request: POST /v1/holds %s\n", body);
    }
    assert_true(hf_expect_status(&r, 201));
    assert_string_equal(or_missing(hf_json_str(r.json, "state")), "active");
    if (id_out != NULL) {
        snprintf(id_out, HF_TEST_ID_MAX, "%s", or_missing(hf_json_str(r.json, "id")));
    }
    hf_response_free(&r);
}

/* Buy now: "commit": true with an order_ref; must sell. */
static void buy_now_ok(fx_t *fx, const char *customer, const char *sku, long long qty,
                       const char *order_ref)
{
    char body[512], extra[160];
    snprintf(extra, sizeof extra, ", \"commit\": true, \"order_ref\": \"%s\"", order_ref);
    hf_response_t r =
        post_hold(fx, hold_json(body, sizeof body, customer, NULL, NULL, sku, qty, extra), NULL);
    assert_true(hf_expect_status(&r, 201));
    assert_string_equal(or_missing(hf_json_str(r.json, "state")), "committed");
    assert_string_equal(or_missing(hf_json_str(r.json, "order_ref")), order_ref);
    hf_response_free(&r);
}

static void hold_action(fx_t *fx, const char *method, const char *id, const char *action,
                        const char *body, const char *state)
{
    char target[256];
    snprintf(target, sizeof target, "/v1/holds/%s%s%s", id, action ? "/" : "",
             action ? action : "");
    hf_response_t r = call(&fx->cl, method, target, body);
    assert_true(hf_expect_status(&r, 200));
    assert_string_equal(or_missing(hf_json_str(r.json, "state")), state);
    hf_response_free(&r);
}

static void commit(fx_t *fx, const char *id, const char *order_ref)
{
    char body[160];
    snprintf(body, sizeof body, "{\"order_ref\": \"%s\"}", order_ref);
    hold_action(fx, "POST", id, "commit", body, "committed");
}

static void release(fx_t *fx, const char *id)
{
    hold_action(fx, "DELETE", id, NULL, NULL, "released");
}

/* GET /v1/holds/{id}: state and, when not NULL, reason. */
static void expect_hold(const hf_client_t *cl, const char *id, const char *state,
                        const char *reason)
{
    char target[256];
    snprintf(target, sizeof target, "/v1/holds/%s", id);
    hf_response_t r = call(cl, "GET", target, NULL);
    assert_true(hf_expect_status(&r, 200));
    if (strcmp(or_missing(hf_json_str(r.json, "state")), state) != 0 ||
        (reason != NULL && strcmp(or_missing(hf_json_str(r.json, "reason")), reason) != 0)) {
        fprintf(stderr, "hold %s: want %s (reason %s), got %s\n", id, state, or_missing(reason),
                r.body);
    }
    assert_string_equal(or_missing(hf_json_str(r.json, "state")), state);
    if (reason != NULL) {
        assert_string_equal(or_missing(hf_json_str(r.json, "reason")), reason);
    }
    hf_response_free(&r);
}

/* ---- the defenses' replies ---- */

/* The rules about one line name its sku in the reply. */
static bool rule_is_per_sku(const char *rule)
{
    return strcmp(rule, "line_qty") == 0 || strcmp(rule, "customer_units_per_sku") == 0 ||
           strcmp(rule, "fingerprint_units_per_sku") == 0 ||
           strcmp(rule, "ip_prefix_units_per_sku") == 0 || strcmp(rule, "hold_share") == 0 ||
           strcmp(rule, "newcomer_pool") == 0;
}

/* A 429 policy_denied with rule, limit and current; retry_after_ms present
 * iff retry_out is not NULL (then it is copied there). sku: the "sku" the
 * reply must name, or NULL not to check. */
static void expect_denied(const hf_response_t *r, const char *rule, long long limit,
                          long long current, long long *retry_out, const char *sku)
{
    const json_t *e = json_object_get(r->json, "error");
    long long got_limit = -1, got_current = -1, retry = -1;
    bool has_retry = hf_json_int(e, "retry_after_ms", &retry);
    bool ok = hf_expect_error(r, 429, "policy_denied", NULL) &&
              strcmp(or_missing(hf_json_str(e, "rule")), rule) == 0 &&
              hf_json_int(e, "limit", &got_limit) && got_limit == limit &&
              hf_json_int(e, "current", &got_current) && got_current == current &&
              has_retry == (retry_out != NULL) &&
              (sku == NULL || strcmp(or_missing(hf_json_str(e, "sku")), sku) == 0);
    if (!ok) {
        fprintf(stderr, "expected 429 %s limit %lld current %lld%s%s%s, got %d: %.1000s\n", rule,
                limit, current, retry_out ? " with retry_after_ms" : " without retry_after_ms",
                sku ? " sku " : "", sku ? sku : "", r->status, r->body);
    }
    assert_true(ok);
    if (retry_out != NULL) {
        *retry_out = retry;
    }
}

/* Posts a hold that must be denied, and checks that sku did not move (and
 * that a per-sku rule names it). */
static void hold_denied(fx_t *fx, const char *body, const char *rule, long long limit,
                        long long current, long long *retry_out, const char *sku)
{
    hf_sku_counts_t before = {0};
    assert_int_equal(hf_sku_get(&fx->cl, sku, &before), 200);
    hf_response_t r = post_hold(fx, body, NULL);
    if (r.status != 429) {
        fprintf(stderr, "  request: POST /v1/holds %s\n", body);
    }
    expect_denied(&r, rule, limit, current, retry_out, rule_is_per_sku(rule) ? sku : NULL);
    hf_response_free(&r);
    assert_true(hf_expect_sku(&fx->cl, sku, before.stock, before.held, before.sold));
}

typedef struct {
    char rule[64];
    char prefix[POW_PREFIX_BYTES_MAX + 1];
    long long bits;
    long long expires_ms;
} challenge_t;

/* A 428 challenge_required with its challenge, copied to c. */
static void expect_challenge(const hf_response_t *r, challenge_t *c)
{
    const json_t *e = json_object_get(r->json, "error");
    const json_t *ch = json_object_get(e, "challenge");
    const char *prefix = hf_json_str(ch, "prefix");
    bool ok = hf_expect_error(r, 428, "challenge_required", NULL) && hf_json_str(e, "rule") &&
              strcmp(or_missing(hf_json_str(ch, "alg")), "sha256") == 0 && prefix != NULL &&
              pow_prefix_valid(prefix, strlen(prefix)) && hf_json_int(ch, "bits", &c->bits) &&
              c->bits >= 1 && c->bits <= POW_BITS_MAX &&
              (c->expires_ms = hf_parse_instant(hf_json_str(ch, "expires_at"))) > 0;
    if (!ok) {
        fprintf(stderr, "expected a 428 with a challenge, got %d: %.1000s\n", r->status, r->body);
    }
    assert_true(ok);
    snprintf(c->rule, sizeof c->rule, "%s", hf_json_str(e, "rule"));
    snprintf(c->prefix, sizeof c->prefix, "%s", prefix);
}

static void solve(const char *prefix, long long bits, char nonce[POW_NONCE_BYTES_MAX + 1])
{
    uint64_t tries = 0;
    assert_true(pow_solve(prefix, strlen(prefix), (unsigned)bits, 1ull << 32, nonce, &tries));
}

static void proof_header(char *buf, size_t size, const char *prefix, const char *nonce)
{
    snprintf(buf, size, "Holdfast-Proof: %s:%s\r\n", prefix, nonce);
}

/* The body of a challenged request and a solved proof for it. */
static void challenge_and_solve(fx_t *fx, const char *body, challenge_t *c, char *header,
                                size_t header_size)
{
    hf_response_t r = post_hold(fx, body, NULL);
    expect_challenge(&r, c);
    hf_response_free(&r);
    char nonce[POW_NONCE_BYTES_MAX + 1];
    solve(c->prefix, c->bits, nonce);
    proof_header(header, header_size, c->prefix, nonce);
}

/* Posts body with the proof header (and more headers); expects a 428. */
static void proof_refused(fx_t *fx, const char *body, const char *headers, const char *sku)
{
    hf_sku_counts_t before;
    assert_int_equal(hf_sku_get(&fx->cl, sku, &before), 200);
    hf_response_t r = post_hold(fx, body, headers);
    challenge_t again;
    if (r.status != 428) {
        fprintf(stderr, "  request: POST /v1/holds %s\n  headers: %s", body, headers);
    }
    expect_challenge(&r, &again);
    hf_response_free(&r);
    assert_true(hf_expect_sku(&fx->cl, sku, before.stock, before.held, before.sold));
}

/* ---- metrics, logs ---- */

static char *scrape(fx_t *fx)
{
    hf_response_t r = call(&fx->cl, "GET", "/metrics", NULL);
    assert_true(hf_expect_status(&r, 200));
    char *text = strdup(r.body);
    hf_response_free(&r);
    assert_non_null(text);
    return text;
}

/* The value of the line `series VALUE`, or -1. */
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

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *text = calloc(1, 1 << 20);
    assert_non_null(text);
    size_t n = fread(text, 1, (1 << 20) - 1, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

/* ---- small readers ---- */

static long long int_of(const json_t *obj, const char *key)
{
    long long v = -1;
    if (!hf_json_int(obj, key, &v)) {
        char *text = json_dumps(obj, JSON_COMPACT);
        fprintf(stderr, "no integer \"%s\" in %s\n", key, or_missing(text));
        free(text);
    }
    assert_true(hf_json_int(obj, key, &v));
    return v;
}

static json_t *get_json(const hf_client_t *cl, const char *target)
{
    hf_response_t r = call(cl, "GET", target, NULL);
    if (r.status != 200) {
        fprintf(stderr, "GET %s: %d %s\n", target, r.status, r.body);
    }
    assert_true(hf_expect_status(&r, 200));
    assert_non_null(r.json);
    json_t *j = json_incref(r.json);
    hf_response_free(&r);
    return j;
}

static bool json_same(const json_t *a, const json_t *b, const char *what)
{
    if (json_equal(a, b)) {
        return true;
    }
    char *ta = json_dumps(a, JSON_COMPACT | JSON_SORT_KEYS);
    char *tb = json_dumps(b, JSON_COMPACT | JSON_SORT_KEYS);
    fprintf(stderr, "%s differs:\n  before: %s\n  after:  %s\n", what, or_missing(ta),
            or_missing(tb));
    free(ta);
    free(tb);
    return false;
}

/* ================== 1. each deny rule through the API ================== */

/* GET /v1/skus/{sku}'s refusals_by_rule.RULE.KIND (0 when the rule is absent). */
static long long sku_refusals(fx_t *fx, const char *sku, const char *rule, const char *kind)
{
    char target[128];
    snprintf(target, sizeof target, "/v1/skus/%s", sku);
    hf_response_t r;
    assert_int_equal(hf_call(&fx->cl, "GET", target, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    const json_t *by_rule = json_object_get(r.json, "refusals_by_rule");
    assert_true(json_is_object(by_rule));
    const json_t *entry = json_object_get(by_rule, rule);
    long long n = 0;
    if (entry != NULL) {
        assert_true(hf_json_int(entry, kind, &n));
    }
    hf_response_free(&r);
    return n;
}

static void test_line_qty_denies_a_line_over_the_cap(void **state)
{
    fx_t *fx = *state;
    start_with(fx,
               "{\"quantity\": {\"enabled\": 1, \"line_qty_max\": 3, "
               "\"customer_sku_units_max\": 1000000}}",
               NULL);
    put_sku(fx, "cap", 100);
    put_sku(fx, "hat", 100);
    char body[512], id[HF_TEST_ID_MAX];
    hold_denied(fx, hold_json(body, sizeof body, "u-1", NULL, NULL, "cap", 4, NULL), "line_qty", 3,
                4, NULL, "cap");
    hold_ok(fx, hold_json(body, sizeof body, "u-1", NULL, NULL, "cap", 3, NULL), id);
    assert_true(hf_expect_sku(&fx->cl, "cap", 100, 3, 0));
    /* The line over the cap is named, and the hold is all or nothing. */
    const char *two = "{\"customer\": \"u-2\", \"lines\": [{\"sku\": \"cap\", \"qty\": 1}, "
                      "{\"sku\": \"hat\", \"qty\": 9}]}";
    hold_denied(fx, two, "line_qty", 3, 9, NULL, "hat");
    assert_true(hf_expect_sku(&fx->cl, "cap", 100, 3, 0));
    /* Buy now passes the quantity caps too. */
    hold_denied(fx,
                hold_json(body, sizeof body, "u-3", NULL, NULL, "cap", 4,
                          ", \"commit\": true, \"order_ref\": \"o-1\""),
                "line_qty", 3, 4, NULL, "cap");
    assert_true(hf_expect_sku(&fx->cl, "cap", 100, 3, 0));
    /* The sku's refusals by rule (for the dashboard): each counted on the
     * line the rule named. */
    assert_int_equal(sku_refusals(fx, "cap", "line_qty", "denied"), 2);
    assert_int_equal(sku_refusals(fx, "hat", "line_qty", "denied"), 1);
    assert_int_equal(sku_refusals(fx, "hat", "line_qty", "challenged"), 0);
    assert_int_equal(sku_refusals(fx, "cap", "hold_share", "denied"), 0);
}

/* Refusals by rule are counted for the first 4,096 skus (HF_SKU_RULE_STATS_MAX):
 * the 4,096th shows its rules, the 4,097th only its totals. */
static void test_refusals_by_rule_are_kept_for_the_first_4096_skus(void **state)
{
    fx_t *fx = *state;
    /* Relaxed: 4,097 skus are put first, and their fsyncs are not what is
     * tested here (most of this suite's time when each waited for one). */
    start_with(fx, "{\"quantity\": {\"enabled\": 1, \"line_qty_max\": 1}}",
               "\"durability\": \"relaxed\"");
    char target[32], body[512];
    hf_conn_t c; /* one kept-alive connection for them all */
    assert_int_equal(hf_conn_open(&c, fx->srv.port, ADMIN_KEY), 0);
    for (int i = 0; i <= 4096; i++) {
        snprintf(target, sizeof target, "/v1/skus/s-%d", i);
        hf_response_t r;
        assert_int_equal(hf_conn_exchange(&c, "PUT", target, NULL, "{\"stock\": 10}", 13, &r), 0);
        assert_int_equal(r.status, 201);
        hf_response_free(&r);
    }
    hf_conn_close(&c);
    hold_denied(fx, hold_json(body, sizeof body, "u-1", NULL, NULL, "s-4095", 2, NULL),
                "line_qty", 1, 2, NULL, "s-4095");
    hold_denied(fx, hold_json(body, sizeof body, "u-1", NULL, NULL, "s-4096", 2, NULL),
                "line_qty", 1, 2, NULL, "s-4096");
    assert_int_equal(sku_refusals(fx, "s-4095", "line_qty", "denied"), 1);
    hf_response_t r;
    assert_int_equal(hf_call(&fx->cl, "GET", "/v1/skus/s-4096", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_null(json_object_get(r.json, "refusals_by_rule"));
    assert_int_equal(json_integer_value(json_object_get(r.json, "denials")), 1);
    hf_response_free(&r);
}

static void test_customer_units_per_sku_counts_held_then_bought_units(void **state)
{
    fx_t *fx = *state;
    start_with(fx, "{\"quantity\": {\"enabled\": 1, \"customer_sku_units_max\": 3}}", NULL);
    put_sku(fx, "cap", 100);
    put_sku(fx, "hat", 100);
    char body[512], h1[HF_TEST_ID_MAX];
    hold_ok(fx, hold_json(body, sizeof body, "u-1", NULL, NULL, "cap", 2, NULL), h1);
    /* Held units count; nothing was bought, so waiting does not help. */
    hold_denied(fx, hold_json(body, sizeof body, "u-1", NULL, NULL, "cap", 2, NULL),
                "customer_units_per_sku", 3, 2, NULL, "cap");
    /* Per customer and per sku. */
    hold_ok(fx, hold_json(body, sizeof body, "u-2", NULL, NULL, "cap", 2, NULL), NULL);
    hold_ok(fx, hold_json(body, sizeof body, "u-1", NULL, NULL, "hat", 3, NULL), NULL);
    assert_true(hf_expect_sku(&fx->cl, "cap", 100, 4, 0));
    /* Bought units count for the window, which opens at the purchase. */
    commit(fx, h1, "o-1");
    long long retry = -1;
    hold_denied(fx, hold_json(body, sizeof body, "u-1", NULL, NULL, "cap", 2, NULL),
                "customer_units_per_sku", 3, 2, &retry, "cap");
    assert_true(retry > 86400000LL - 60000 && retry <= 86400000LL);
    /* Buy now counts: 2 + 2 is over, 2 + 1 is not. */
    hold_denied(fx,
                hold_json(body, sizeof body, "u-1", NULL, NULL, "cap", 2,
                          ", \"commit\": true, \"order_ref\": \"o-2\""),
                "customer_units_per_sku", 3, 2, &retry, "cap");
    buy_now_ok(fx, "u-1", "cap", 1, "o-3");
    assert_true(hf_expect_sku(&fx->cl, "cap", 100, 2, 3));
    hold_denied(fx, hold_json(body, sizeof body, "u-1", NULL, NULL, "cap", 1, NULL),
                "customer_units_per_sku", 3, 3, &retry, "cap");
    assert_true(retry > 86400000LL - 60000 && retry <= 86400000LL);
    /* A line bigger than the cap itself never fits: no retry_after_ms. */
    hold_denied(fx, hold_json(body, sizeof body, "u-1", NULL, NULL, "cap", 4, NULL),
                "customer_units_per_sku", 3, 3, NULL, "cap");
}

static void test_customer_holds_and_units_caps(void **state)
{
    fx_t *fx = *state;
    start_with(fx,
               "{\"identity\": {\"enabled\": 1, \"customer_holds_max\": 2, "
               "\"customer_units_max\": 5}}",
               NULL);
    put_sku(fx, "a", 100);
    put_sku(fx, "b", 100);
    put_sku(fx, "c", 100);
    char body[512], h1[HF_TEST_ID_MAX];
    hold_ok(fx, hold_json(body, sizeof body, "u-1", NULL, NULL, "a", 1, NULL), h1);
    hold_ok(fx, hold_json(body, sizeof body, "u-1", NULL, NULL, "b", 1, NULL), NULL);
    hold_denied(fx, hold_json(body, sizeof body, "u-1", NULL, NULL, "c", 1, NULL), "customer_holds",
                2, 2, NULL, "c");
    /* Active holds count, finished ones do not. */
    release(fx, h1);
    hold_ok(fx, hold_json(body, sizeof body, "u-1", NULL, NULL, "c", 1, NULL), NULL);
    /* Held units across skus: 3 held, 3 more is over 5, 2 more is not. */
    hold_ok(fx, hold_json(body, sizeof body, "u-2", NULL, NULL, "a", 3, NULL), NULL);
    hold_denied(fx, hold_json(body, sizeof body, "u-2", NULL, NULL, "b", 3, NULL), "customer_units",
                5, 3, NULL, "b");
    hold_ok(fx, hold_json(body, sizeof body, "u-2", NULL, NULL, "b", 2, NULL), NULL);
    assert_true(hf_expect_sku(&fx->cl, "a", 100, 3, 0));
    assert_true(hf_expect_sku(&fx->cl, "b", 100, 3, 0));
}

static void test_ip_prefix_caps_count_a_whole_network_together(void **state)
{
    fx_t *fx = *state;
    const char *holds2 = "{\"identity\": {\"enabled\": 1, \"ip_prefix_holds_max\": 2}}";
    start_with(fx, holds2, NULL);
    put_sku(fx, "a", 100);
    char body[512];
    hold_ok(fx, hold_json(body, sizeof body, "u-1", "203.0.113.7", NULL, "a", 1, NULL), NULL);
    hold_ok(fx, hold_json(body, sizeof body, "u-2", "203.0.113.200", NULL, "a", 1, NULL), NULL);
    hold_denied(fx, hold_json(body, sizeof body, "u-3", "203.0.113.9", NULL, "a", 1, NULL),
                "ip_prefix_holds", 2, 2, NULL, "a");
    /* An IPv4 client seen through a dual-stack socket is the same /24. */
    hold_denied(fx, hold_json(body, sizeof body, "u-3", "::ffff:203.0.113.5", NULL, "a", 1, NULL),
                "ip_prefix_holds", 2, 2, NULL, "a");
    /* The next /24 is another network. */
    hold_ok(fx, hold_json(body, sizeof body, "u-3", "203.0.114.9", NULL, "a", 1, NULL), NULL);
    hold_ok(fx, hold_json(body, sizeof body, "u-4", "198.51.100.7", NULL, "a", 1, NULL), NULL);
    /* IPv6: a /56. */
    hold_ok(fx, hold_json(body, sizeof body, "u-5", "2001:db8:1200:ff00::1", NULL, "a", 1, NULL),
            NULL);
    hold_ok(fx, hold_json(body, sizeof body, "u-6", "2001:db8:1200:ff01::2", NULL, "a", 1, NULL),
            NULL);
    hold_denied(fx,
                hold_json(body, sizeof body, "u-7", "2001:db8:1200:ffaa::3", NULL, "a", 1, NULL),
                "ip_prefix_holds", 2, 2, NULL, "a");
    hold_ok(fx, hold_json(body, sizeof body, "u-7", "2001:db8:1201::3", NULL, "a", 1, NULL), NULL);
    assert_true(hf_expect_sku(&fx->cl, "a", 100, 7, 0));
    /* Units: the /24 holds 2; 2 more is over a cap of 3. */
    put_policy(fx, "{\"identity\": {\"enabled\": 1, \"ip_prefix_units_max\": 3}}");
    hold_denied(fx, hold_json(body, sizeof body, "u-8", "203.0.113.50", NULL, "a", 2, NULL),
                "ip_prefix_units", 3, 2, NULL, "a");
    hold_ok(fx, hold_json(body, sizeof body, "u-8", "203.0.113.50", NULL, "a", 1, NULL), NULL);
}

static void test_fingerprint_caps_follow_a_browser_across_customers(void **state)
{
    fx_t *fx = *state;
    start_with(fx,
               "{\"identity\": {\"enabled\": 1, \"fingerprint_holds_max\": 2, "
               "\"fingerprint_units_max\": 3}}",
               NULL);
    put_sku(fx, "a", 100);
    char body[512];
    hold_ok(fx, hold_json(body, sizeof body, "u-1", NULL, "fp-A", "a", 1, NULL), NULL);
    hold_ok(fx, hold_json(body, sizeof body, "u-2", NULL, "fp-A", "a", 1, NULL), NULL);
    hold_denied(fx, hold_json(body, sizeof body, "u-3", NULL, "fp-A", "a", 1, NULL),
                "fingerprint_holds", 2, 2, NULL, "a");
    hold_ok(fx, hold_json(body, sizeof body, "u-3", NULL, "fp-B", "a", 1, NULL), NULL);
    hold_denied(fx, hold_json(body, sizeof body, "u-4", NULL, "fp-B", "a", 3, NULL),
                "fingerprint_units", 3, 1, NULL, "a");
    hold_ok(fx, hold_json(body, sizeof body, "u-4", NULL, "fp-B", "a", 2, NULL), NULL);
    /* No fingerprint sent: no fingerprint cap. */
    hold_ok(fx, hold_json(body, sizeof body, "u-5", NULL, NULL, "a", 3, NULL), NULL);
    assert_true(hf_expect_sku(&fx->cl, "a", 100, 8, 0));
}

static void test_hold_share_refuses_holds_but_buy_now_still_sells(void **state)
{
    fx_t *fx = *state;
    start_with(fx, "{\"hold_share\": {\"held_pct_max\": 50}}", NULL);
    put_sku(fx, "drop", 10);
    char body[512];
    hold_ok(fx, hold_json(body, sizeof body, "u-1", NULL, NULL, "drop", 3, NULL), NULL);
    hold_ok(fx, hold_json(body, sizeof body, "u-2", NULL, NULL, "drop", 2, NULL), NULL);
    hold_denied(fx, hold_json(body, sizeof body, "u-3", NULL, NULL, "drop", 1, NULL), "hold_share",
                5, 5, NULL, "drop");
    buy_now_ok(fx, "u-3", "drop", 1, "o-1");
    assert_true(hf_expect_sku(&fx->cl, "drop", 10, 5, 1));
    buy_now_ok(fx, "u-4", "drop", 4, "o-2");
    assert_true(hf_expect_sku(&fx->cl, "drop", 10, 5, 5));
    /* Sold out: asking for more than is left is the engine's 409. */
    hf_response_t r =
        post_hold(fx, hold_json(body, sizeof body, "u-5", NULL, NULL, "drop", 1, NULL), NULL);
    assert_true(hf_expect_error(&r, 409, "insufficient_stock", NULL));
    hf_response_free(&r);
    assert_true(hf_expect_sku(&fx->cl, "drop", 10, 5, 5));
}

static void test_customer_budget_denies_with_the_refill_time(void **state)
{
    fx_t *fx = *state;
    /* 100 unit-s, refilled in a minute: 1.667 unit-ms per ms. */
    start_with(fx, "{\"budget\": {\"enabled\": 1, \"customer_unit_s\": 100, \"refill_ms\": 60000}}",
               NULL);
    put_sku(fx, "a", 100);
    char body[512], h1[HF_TEST_ID_MAX];
    const char *minute = ", \"ttl_ms\": 60000";
    long long t0 = hf_now_ms();
    hold_ok(fx, hold_json(body, sizeof body, "u-1", NULL, NULL, "a", 1, minute), h1);
    /* 60 unit-s more with 40 left: back in 12 s (less the time gone by). */
    long long retry = -1;
    hf_response_t r =
        post_hold(fx, hold_json(body, sizeof body, "u-1", NULL, NULL, "a", 1, minute), NULL);
    long long elapsed = hf_now_ms() - t0;
    const json_t *e = json_object_get(r.json, "error");
    long long current = -1;
    assert_true(hf_json_int(e, "current", &current));
    assert_true(current >= 40 && current <= 40 + (elapsed * 100) / 60000 + 1);
    expect_denied(&r, "customer_budget", 60, current, &retry, NULL);
    hf_response_free(&r);
    assert_true(retry <= 12000 && retry >= 12000 - elapsed - 100);
    assert_true(hf_expect_sku(&fx->cl, "a", 100, 1, 0));
    /* A hold costing more than the whole budget: waiting does not help. */
    hold_denied(fx, hold_json(body, sizeof body, "u-1", NULL, NULL, "a", 1, NULL),
                "customer_budget", 600, current, NULL, "a");
    /* Budgets are per identity. */
    hold_ok(fx, hold_json(body, sizeof body, "u-2", NULL, NULL, "a", 1, minute), NULL);
    /* Releasing early refunds the unused time: the hold fits again. */
    release(fx, h1);
    hold_ok(fx, hold_json(body, sizeof body, "u-1", NULL, NULL, "a", 1, minute), NULL);
    assert_true(hf_expect_sku(&fx->cl, "a", 100, 2, 0));
}

/* ======================= 2. the challenge round trip ======================= */

#define CHALLENGE_ON                                                                               \
    "{\"challenge\": {\"enabled\": 1, \"free_units\": 0, \"base_bits\": 8, \"bits_max\": 12}}"

static void test_challenge_round_trip_and_a_proof_is_single_use(void **state)
{
    fx_t *fx = *state;
    start_with(fx, CHALLENGE_ON, NULL);
    put_sku(fx, "a", 100);
    char body[512], header[256], headers[512];
    hold_json(body, sizeof body, "u-1", NULL, NULL, "a", 1, NULL);
    long long before_ms = hf_wall_ms();
    hf_response_t r = post_hold(fx, body, "Idempotency-Key: k1\r\n");
    challenge_t c;
    expect_challenge(&r, &c);
    assert_string_equal(or_missing(hf_json_str(json_object_get(r.json, "error"), "sku")), "a");
    hf_response_free(&r);
    assert_string_equal(c.rule, "scarcity_challenge");
    assert_int_equal(c.bits, 8); /* base_bits: one unit over zero free units */
    assert_true(c.expires_ms >= before_ms + 120000 - 1000 &&
                c.expires_ms <= hf_wall_ms() + 120000 + 1000);
    assert_true(hf_expect_sku(&fx->cl, "a", 100, 0, 0));

    char nonce[POW_NONCE_BYTES_MAX + 1];
    solve(c.prefix, c.bits, nonce);
    proof_header(header, sizeof header, c.prefix, nonce);
    snprintf(headers, sizeof headers, "%sIdempotency-Key: k1\r\n", header);
    r = post_hold(fx, body, headers);
    assert_true(hf_expect_status(&r, 201));
    char id[HF_TEST_ID_MAX];
    snprintf(id, sizeof id, "%s", or_missing(hf_json_str(r.json, "id")));
    hf_response_free(&r);
    assert_true(hf_expect_sku(&fx->cl, "a", 100, 1, 0));
    /* The same key is the same hold, applied once. */
    r = post_hold(fx, body, headers);
    assert_true(hf_expect_status(&r, 201));
    assert_string_equal(or_missing(hf_json_str(r.json, "id")), id);
    hf_response_free(&r);
    /* The proof again, with another key or none: spent. */
    snprintf(headers, sizeof headers, "%sIdempotency-Key: k2\r\n", header);
    proof_refused(fx, body, headers, "a");
    proof_refused(fx, body, header, "a");
    assert_true(hf_expect_sku(&fx->cl, "a", 100, 1, 0));
    /* A new challenge for the same request is a new proof. */
    challenge_and_solve(fx, body, &c, header, sizeof header);
    r = post_hold(fx, body, header);
    assert_true(hf_expect_status(&r, 201));
    hf_response_free(&r);
    assert_true(hf_expect_sku(&fx->cl, "a", 100, 2, 0));
    char *m = scrape(fx);
    assert_true(metric(m, "holdfast_proofs_total{outcome=\"accepted\"}") == 2);
    assert_true(metric(m, "holdfast_policy_challenges_total{rule=\"scarcity_challenge\"}") >= 4);
    free(m);
}

/* The first nonce, in the solver's order from "z", that is NOT a proof. */
static void wrong_nonce(const char *prefix, long long bits, char *out)
{
    for (int i = 0; i < 1000; i++) {
        snprintf(out, 16, "z%d", i);
        if (!pow_check(prefix, strlen(prefix), out, strlen(out), (unsigned)bits)) {
            return;
        }
    }
    fail_msg("no failing nonce found");
}

static void test_challenge_refuses_proofs_for_other_requests_and_bad_proofs(void **state)
{
    fx_t *fx = *state;
    start_with(fx, CHALLENGE_ON, NULL);
    put_sku(fx, "a", 100);
    put_sku(fx, "b", 100);
    char body[512], other[512], header[256];
    challenge_t c;
    hold_json(body, sizeof body, "u-1", "203.0.113.7", "fp-1", "a", 1, NULL);
    challenge_and_solve(fx, body, &c, header, sizeof header);
    /* A good proof is bound to its request: every field of it counts. */
    proof_refused(fx, hold_json(other, sizeof other, "u-1", "203.0.113.7", "fp-1", "a", 2, NULL),
                  header, "a");
    proof_refused(fx, hold_json(other, sizeof other, "u-2", "203.0.113.7", "fp-1", "a", 1, NULL),
                  header, "a");
    proof_refused(fx, hold_json(other, sizeof other, "u-1", "203.0.113.8", "fp-1", "a", 1, NULL),
                  header, "a");
    proof_refused(fx, hold_json(other, sizeof other, "u-1", "203.0.113.7", "fp-2", "a", 1, NULL),
                  header, "a");
    proof_refused(fx, hold_json(other, sizeof other, "u-1", "203.0.113.7", "fp-1", "b", 1, NULL),
                  header, "b");
    proof_refused(
        fx,
        hold_json(other, sizeof other, "u-1", "203.0.113.7", "fp-1", "a", 1, ", \"ttl_ms\": 60000"),
        header, "a");
    /* Refused elsewhere, the proof was not spent: its own request takes it. */
    hf_response_t r = post_hold(fx, body, header);
    assert_true(hf_expect_status(&r, 201));
    hf_response_free(&r);
    assert_true(hf_expect_sku(&fx->cl, "a", 100, 1, 0));

    /* Bad proofs for a fresh challenge. */
    hold_json(body, sizeof body, "u-3", NULL, NULL, "a", 1, NULL);
    challenge_and_solve(fx, body, &c, header, sizeof header);
    char bad[256], nonce[POW_NONCE_BYTES_MAX + 1], prefix[POW_PREFIX_BYTES_MAX + 1];
    wrong_nonce(c.prefix, c.bits, nonce);
    proof_header(bad, sizeof bad, c.prefix, nonce);
    proof_refused(fx, body, bad, "a");
    /* A prefix the client changed (one MAC digit; or its own easier bits),
     * even with a nonce that solves what it changed it to. */
    snprintf(prefix, sizeof prefix, "%s", c.prefix);
    prefix[strlen(prefix) - 1] = prefix[strlen(prefix) - 1] == '0' ? '1' : '0';
    solve(prefix, c.bits, nonce);
    proof_header(bad, sizeof bad, prefix, nonce);
    proof_refused(fx, body, bad, "a");
    snprintf(prefix, sizeof prefix, "%s", c.prefix);
    assert_true(strlen(prefix) > 2);
    prefix[0] = '0';
    prefix[1] = '1';
    solve(prefix, 1, nonce);
    proof_header(bad, sizeof bad, prefix, nonce);
    proof_refused(fx, body, bad, "a");
    /* Malformed header values. */
    const char *malformed[] = {"%s",
                               "%s:",
                               ":%s",
                               "%s:abc:def",
                               "%s:a-b",
                               "%s: 1",
                               "%s:012345678901234567890123456789012"};
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        char value[200];
        snprintf(value, sizeof value, malformed[i], c.prefix);
        snprintf(bad, sizeof bad, "Holdfast-Proof: %s\r\n", value);
        proof_refused(fx, body, bad, "a");
    }
    /* Not one of them spent the good proof. */
    r = post_hold(fx, body, header);
    assert_true(hf_expect_status(&r, 201));
    hf_response_free(&r);
    assert_true(hf_expect_sku(&fx->cl, "a", 100, 2, 0));
}

static void test_challenge_proof_expires(void **state)
{
    fx_t *fx = *state;
    start_with(fx,
               "{\"challenge\": {\"enabled\": 1, \"free_units\": 0, \"base_bits\": 8, "
               "\"bits_max\": 12, \"ttl_ms\": 1000}}",
               NULL);
    put_sku(fx, "a", 100);
    char body[512], header[256];
    challenge_t c;
    hold_json(body, sizeof body, "u-1", NULL, NULL, "a", 1, NULL);
    long long before_ms = hf_wall_ms();
    challenge_and_solve(fx, body, &c, header, sizeof header);
    assert_true(c.expires_ms >= before_ms + 1000 - 200 &&
                c.expires_ms <= hf_wall_ms() + 1000 + 200);
    /* Expiry is what is tested: wait for the wall clock to pass it. */
    long long deadline = hf_now_ms() + 5000;
    while (hf_wall_ms() <= c.expires_ms + 100) {
        assert_true(hf_now_ms() < deadline);
        hf_sleep_ms(20);
    }
    proof_refused(fx, body, header, "a");
    assert_true(hf_expect_sku(&fx->cl, "a", 100, 0, 0));
}

/* ================== 3. genuine buyers and hoarders, defaults ================== */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void rng_seed(const char *test)
{
    const char *env = getenv("HF_SEED");
    uint64_t seed = env != NULL ? strtoull(env, NULL, 10) : (uint64_t)hf_wall_ms();
    fprintf(stderr, "%s: seed=%llu (HF_SEED=%llu replays it)\n", test, (unsigned long long)seed,
            (unsigned long long)seed);
    rng_state = seed != 0 ? seed : 1;
}

/* A buyer: holds 1-2 units, gets the full default TTL, pays. Never a 428
 * nor a 429. */
static long long genuine_purchase(fx_t *fx, const char *customer, const char *ip, const char *fp,
                                  int n)
{
    long long qty = 1 + (long long)(rng_next() % 2);
    char body[512], id[HF_TEST_ID_MAX], order[64];
    hold_json(body, sizeof body, customer, ip, fp, "plenty", qty, NULL);
    hf_response_t r = post_hold(fx, body, NULL);
    if (r.status != 201) {
        fprintf(stderr, "a genuine buyer was refused: POST /v1/holds %s\n -> %d %s\n", body,
                r.status, r.body);
    }
    assert_true(hf_expect_status(&r, 201));
    long long expires_in = -1;
    assert_true(hf_json_int(r.json, "expires_in_ms", &expires_in));
    assert_true(expires_in > 600000 - 10000 && expires_in <= 600000);
    snprintf(id, sizeof id, "%s", or_missing(hf_json_str(r.json, "id")));
    hf_response_free(&r);
    snprintf(order, sizeof order, "o-%s-%d", customer, n);
    commit(fx, id, order);
    return qty;
}

static void test_genuine_buyers_are_never_challenged_or_denied_by_default(void **state)
{
    fx_t *fx = *state;
    start_raw(fx, "{}");
    rng_seed("genuine buyers");
    put_sku(fx, "plenty", 1000);
    long long sold = 0;
    char customer[64], ip[64], fp[64];
    for (int i = 0; i < 20; i++) {
        snprintf(customer, sizeof customer, "buyer-%d", i);
        snprintf(ip, sizeof ip, "203.0.%d.%d", 113 + (int)(rng_next() % 3),
                 1 + (int)(rng_next() % 250));
        snprintf(fp, sizeof fp, "fp-%d", i); /* a browser of their own */
        sold += genuine_purchase(fx, customer, rng_next() % 4 ? ip : NULL,
                                 rng_next() % 2 ? fp : NULL, 0);
    }
    /* One returning customer, five purchases in a row of one sku (at most 10
     * units, the default customer_sku_units_max) from three devices (at most
     * 4 units each, fingerprint_sku_units_max). */
    static const char *const devices[] = {"phone", "phone", "laptop", "laptop", "tablet"};
    for (int n = 0; n < 5; n++) {
        sold += genuine_purchase(fx, "regular", "198.51.100.20", devices[n], n);
    }
    assert_true(hf_expect_sku(&fx->cl, "plenty", 1000, 0, sold));
    char *m = scrape(fx);
    assert_true(strstr(m, "holdfast_policy_denials_total{") == NULL);
    assert_true(strstr(m, "holdfast_policy_challenges_total{") == NULL);
    free(m);
}

/* One attempt of a hoarder that solves any challenge up to PATIENCE_BITS.
 * Returns the final reply (201, or the 429 / 428 that stopped it). */
static hf_response_t hoard_once(fx_t *fx, const char *body, long long *bits_out)
{
    hf_response_t r = post_hold(fx, body, NULL);
    *bits_out = 0;
    if (r.status != 428) {
        return r;
    }
    challenge_t c;
    expect_challenge(&r, &c);
    *bits_out = c.bits;
    if (c.bits > PATIENCE_BITS) {
        return r; /* a 428 it cannot answer */
    }
    hf_response_free(&r);
    char nonce[POW_NONCE_BYTES_MAX + 1], header[256];
    solve(c.prefix, c.bits, nonce);
    proof_header(header, sizeof header, c.prefix, nonce);
    return post_hold(fx, body, header);
}

static void test_hoarder_one_customer_is_stopped_at_the_second_full_line(void **state)
{
    fx_t *fx = *state;
    start_raw(fx, "{}");
    put_sku(fx, "plenty", 1000);
    put_sku(fx, "plenty2", 1000);
    put_sku(fx, "plenty3", 1000);
    char body[512];
    long long bits;
    /* Ten units of a plentiful sku: 10 + 2 log2(10 / 2) = 14.6, so 15 bits. */
    hold_json(body, sizeof body, "hoarder", "203.0.113.66", NULL, "plenty", 10, NULL);
    hf_response_t r = hoard_once(fx, body, &bits);
    assert_int_equal(bits, 15);
    assert_true(hf_expect_status(&r, 201));
    hf_response_free(&r);
    /* customer_sku_units_max 10: the second full line of the sku is refused. */
    r = hoard_once(fx, body, &bits);
    expect_denied(&r, "customer_units_per_sku", 10, 10, NULL, "plenty");
    hf_response_free(&r);
    /* Across skus, customer_units_max 20 stops the third full line. */
    hold_json(body, sizeof body, "hoarder", "203.0.113.66", NULL, "plenty2", 10, NULL);
    r = hoard_once(fx, body, &bits);
    assert_true(hf_expect_status(&r, 201));
    hf_response_free(&r);
    hold_json(body, sizeof body, "hoarder", "203.0.113.66", NULL, "plenty3", 10, NULL);
    r = hoard_once(fx, body, &bits);
    expect_denied(&r, "customer_units", 20, 20, NULL, NULL);
    hf_response_free(&r);
    assert_true(hf_expect_sku(&fx->cl, "plenty", 1000, 10, 0));
    assert_true(hf_expect_sku(&fx->cl, "plenty2", 1000, 10, 0));
    assert_true(hf_expect_sku(&fx->cl, "plenty3", 1000, 0, 0));
}

/* Rotating customer ids from one /24, qty per hold, never paying: stopped
 * before the /24 holds more than ip_prefix_units_max (400) units, i.e. in
 * at most 400 / qty + 1 attempts. Returns the units it got. */
static long long hoard_rotating(fx_t *fx, const char *net, long long qty, const char *tag,
                                char *rule_out, int *attempts_out, long long *bits_out)
{
    long long units = 0;
    char body[512], customer[64], ip[64];
    int max_attempts = (int)(400 / qty) + 1;
    for (int i = 1; i <= max_attempts; i++) {
        snprintf(customer, sizeof customer, "%s-%d", tag, i);
        snprintf(ip, sizeof ip, "%s.%d", net, 1 + i % 250);
        hold_json(body, sizeof body, customer, ip, NULL, "plenty", qty, NULL);
        long long bits;
        hf_response_t r = hoard_once(fx, body, &bits);
        if (r.status == 201) {
            units += qty;
            hf_response_free(&r);
            continue;
        }
        const json_t *e = json_object_get(r.json, "error");
        snprintf(rule_out, 64, "%s", or_missing(hf_json_str(e, "rule")));
        *attempts_out = i;
        *bits_out = bits;
        assert_true(r.status == 429 || (r.status == 428 && bits > PATIENCE_BITS));
        hf_response_free(&r);
        return units;
    }
    fail_msg("a hoarder rotating ids was never stopped in %d attempts", max_attempts);
    return units;
}

static void test_hoarder_rotating_ids_from_one_network_is_stopped_within_400_units(void **state)
{
    fx_t *fx = *state;
    start_raw(fx, "{}");
    put_sku(fx, "plenty", 1000);
    char rule[64];
    int attempts = 0;
    long long bits = 0;
    /* Full lines: stopped by the price of the proofs or by the caps. */
    long long units = hoard_rotating(fx, "203.0.113", 10, "rot10", rule, &attempts, &bits);
    fprintf(stderr, "full lines: stopped at attempt %d by %s (bits %lld) holding %lld units\n",
            attempts, rule, bits, units);
    assert_true(units <= 400);
    /* Two-unit lines, cheap to prove: the /24's caps stop them. */
    units = hoard_rotating(fx, "198.51.100", 2, "rot2", rule, &attempts, &bits);
    fprintf(stderr, "two-unit lines: stopped at attempt %d by %s (bits %lld) holding %lld units\n",
            attempts, rule, bits, units);
    assert_true(units <= 400);
    assert_true(strcmp(rule, "ip_prefix_holds") == 0 || strcmp(rule, "ip_prefix_units") == 0);
    /* A buyer from another network is still served at once. */
    char body[512], id[HF_TEST_ID_MAX];
    hold_ok(fx, hold_json(body, sizeof body, "late-buyer", "192.0.2.10", NULL, "plenty", 1, NULL),
            id);
    commit(fx, id, "o-late");
}

/* ============================ 4. the waitlist ============================ */

#define WAITLIST_ON "{\"waitlist\": {\"enabled\": 1}}"

typedef struct {
    char id[64];
    char state[32];
    long long position; /* -1: none */
    char hold_id[HF_TEST_ID_MAX];
    char hold_state[32];
    char hold_customer[160];
    long long hold_qty;
    long long hold_created_ms, hold_expires_ms, finished_ms;
} wait_t;

static void wait_read(const json_t *j, wait_t *w)
{
    memset(w, 0, sizeof *w);
    snprintf(w->id, sizeof w->id, "%s", or_missing(hf_json_str(j, "id")));
    snprintf(w->state, sizeof w->state, "%s", or_missing(hf_json_str(j, "state")));
    w->position = -1;
    hf_json_int(j, "position", &w->position);
    w->finished_ms = hf_parse_instant(hf_json_str(j, "finished_at"));
    const json_t *h = json_object_get(j, "hold");
    if (h != NULL) {
        snprintf(w->hold_id, sizeof w->hold_id, "%s", or_missing(hf_json_str(h, "id")));
        snprintf(w->hold_state, sizeof w->hold_state, "%s", or_missing(hf_json_str(h, "state")));
        snprintf(w->hold_customer, sizeof w->hold_customer, "%s",
                 or_missing(hf_json_str(h, "customer")));
        const json_t *line = json_array_get(json_object_get(h, "lines"), 0);
        hf_json_int(line, "qty", &w->hold_qty);
        w->hold_created_ms = hf_parse_instant(hf_json_str(h, "created_at"));
        w->hold_expires_ms = hf_parse_instant(hf_json_str(h, "expires_at"));
    }
}

static void wait_join(fx_t *fx, const char *sku, const char *customer, long long qty,
                      long long position, wait_t *w)
{
    char target[128], body[256];
    snprintf(target, sizeof target, "/v1/skus/%s/waitlist", sku);
    snprintf(body, sizeof body, "{\"customer\": \"%s\", \"qty\": %lld}", customer, qty);
    hf_response_t r = call(&fx->cl, "POST", target, body);
    assert_true(hf_expect_status(&r, 201));
    wait_read(r.json, w);
    assert_true(strncmp(w->id, "w_", 2) == 0);
    assert_string_equal(or_missing(hf_json_str(r.json, "sku")), sku);
    assert_string_equal(or_missing(hf_json_str(r.json, "customer")), customer);
    assert_int_equal(int_of(r.json, "qty"), qty);
    assert_string_equal(w->state, "waiting");
    assert_int_equal(w->position, position);
    hf_response_free(&r);
}

static void wait_get(fx_t *fx, const char *id, wait_t *w)
{
    char target[128];
    snprintf(target, sizeof target, "/v1/waitlist/%s", id);
    json_t *j = get_json(&fx->cl, target);
    wait_read(j, w);
    json_decref(j);
}

/* Reads the entry until it leaves `state` (the server's tick moves it),
 * failing if it has not within limit_ms. */
static void wait_leave(fx_t *fx, const char *id, const char *state, long long limit_ms, wait_t *w)
{
    long long deadline = hf_now_ms() + limit_ms;
    do {
        assert_true(hf_now_ms() < deadline);
        hf_sleep_ms(20);
        wait_get(fx, id, w);
    } while (strcmp(w->state, state) == 0);
}

static void wait_cancel(fx_t *fx, const char *id, int status, const char *state)
{
    char target[128];
    snprintf(target, sizeof target, "/v1/waitlist/%s", id);
    hf_response_t r = call(&fx->cl, "DELETE", target, NULL);
    assert_true(hf_expect_status(&r, status));
    if (state != NULL) {
        assert_string_equal(or_missing(hf_json_str(r.json, "state")), state);
    }
    hf_response_free(&r);
}

/* A join with an Idempotency-Key: its reply's id and secret, and whether
 * it said it was replayed. */
static void join_keyed(fx_t *fx, const char *key, const char *customer, int status,
                       char *id, char *secret, bool *replayed)
{
    char headers[128];
    snprintf(headers, sizeof headers, "Idempotency-Key: %s\r\n", key);
    char body[128];
    snprintf(body, sizeof body, "{\"customer\": \"%s\", \"qty\": 1}", customer);
    hf_response_t r = call_h(&fx->cl, "POST", "/v1/skus/gone/waitlist", headers, body);
    if (status != 201) {
        assert_true(hf_expect_error(&r, status, "idempotency_mismatch", NULL));
    } else {
        assert_true(hf_expect_status(&r, status));
        snprintf(id, HF_TEST_ID_MAX, "%s", or_missing(hf_json_str(r.json, "id")));
        snprintf(secret, 128, "%s", or_missing(hf_json_str(r.json, "secret")));
        const char *h = hf_response_header(&r, "Idempotent-Replayed");
        *replayed = h != NULL && strcmp(h, "true") == 0;
    }
    hf_response_free(&r);
}

/* A join retried with its Idempotency-Key, as after 503 outcome_unknown,
 * answers the entry it made with its secret, across a crash too; the key
 * with another join is refused, and a bad key is a 400. */
static void test_a_join_retried_with_its_key_answers_its_entry_and_secret(void **state)
{
    fx_t *fx = *state;
    start_with(fx, WAITLIST_ON, NULL);
    put_sku(fx, "gone", 0);
    char id[HF_TEST_ID_MAX], again[HF_TEST_ID_MAX], secret[128], secret_again[128];
    bool replayed = true;
    join_keyed(fx, "join-1", "u-1", 201, id, secret, &replayed);
    assert_false(replayed);
    assert_true(strncmp(secret, "ws_", 3) == 0);
    join_keyed(fx, "join-1", "u-1", 201, again, secret_again, &replayed);
    assert_true(replayed);
    assert_string_equal(again, id);
    assert_string_equal(secret_again, secret);
    join_keyed(fx, "join-1", "u-2", 422, NULL, NULL, NULL);
    json_t *sku = get_json(&fx->cl, "/v1/skus/gone");
    assert_int_equal(int_of(sku, "waitlist"), 1); /* one entry made in all */
    json_decref(sku);

    restart(fx, SIGKILL); /* the key comes back from the journal */
    join_keyed(fx, "join-1", "u-1", 201, again, secret_again, &replayed);
    assert_true(replayed);
    assert_string_equal(again, id);
    assert_string_equal(secret_again, secret);
    hf_client_t shop = {fx->srv.port, SHOP_KEY, false};
    char target[HF_TEST_ID_MAX + 16], headers[200];
    snprintf(target, sizeof target, "/v1/waitlist/%s", id);
    snprintf(headers, sizeof headers, "Waitlist-Secret: %s\r\n", secret_again);
    hf_response_t r = call_h(&shop, "GET", target, headers, NULL);
    assert_true(hf_expect_status(&r, 200)); /* the secret the retry gave opens the entry */
    hf_response_free(&r);

    char long_key[HF_IDEM_KEY_BYTES_MAX + 2];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    snprintf(headers, sizeof headers, "Idempotency-Key: %s\r\n", long_key);
    r = call_h(&fx->cl, "POST", "/v1/skus/gone/waitlist", headers, "{\"customer\": \"u-3\"}");
    assert_true(hf_expect_error(&r, 400, "invalid_field", "Idempotency-Key"));
    hf_response_free(&r);
}

static void test_waitlist_offers_freed_units_first_in_first_out(void **state)
{
    fx_t *fx = *state;
    start_with(fx, WAITLIST_ON, NULL);
    put_sku(fx, "drop", 2);
    char body[512], h0[HF_TEST_ID_MAX];
    hold_ok(fx, hold_json(body, sizeof body, "u-0", NULL, NULL, "drop", 1, NULL), h0);
    hold_ok(fx, hold_json(body, sizeof body, "u-00", NULL, NULL, "drop", 1, NULL), NULL);
    wait_t w1, w2, w;
    wait_join(fx, "drop", "u-1", 1, 1, &w1);
    wait_join(fx, "drop", "u-2", 1, 2, &w2);
    json_t *sku = get_json(&fx->cl, "/v1/skus/drop");
    assert_int_equal(int_of(sku, "waitlist"), 2);
    json_decref(sku);
    /* The release offers the unit to the head in the same step. */
    release(fx, h0);
    wait_get(fx, w1.id, &w);
    assert_string_equal(w.state, "offered");
    assert_int_equal(w.position, -1);
    assert_string_equal(w.hold_state, "active");
    assert_string_equal(w.hold_customer, "u-1");
    assert_int_equal(w.hold_qty, 1);
    assert_true(hf_expect_sku(&fx->cl, "drop", 2, 2, 0));
    expect_hold(&fx->cl, w.hold_id, "active", NULL);
    char offered[HF_TEST_ID_MAX];
    snprintf(offered, sizeof offered, "%s", w.hold_id);
    wait_get(fx, w2.id, &w);
    assert_string_equal(w.state, "waiting");
    assert_int_equal(w.position, 1);
    /* Paying for the offer fulfils the entry. */
    commit(fx, offered, "o-1");
    wait_get(fx, w1.id, &w);
    assert_string_equal(w.state, "fulfilled");
    assert_string_equal(w.hold_state, "committed");
    assert_true(w.finished_ms > 0);
    assert_true(hf_expect_sku(&fx->cl, "drop", 2, 1, 1));
    wait_get(fx, w2.id, &w);
    assert_string_equal(w.state, "waiting");
    /* Stock raised: the next one is offered by that step. */
    put_sku(fx, "drop", 3);
    wait_get(fx, w2.id, &w);
    assert_string_equal(w.state, "offered");
    assert_string_equal(w.hold_customer, "u-2");
    assert_true(hf_expect_sku(&fx->cl, "drop", 3, 2, 1));
    /* Every unit sold: the line keeps waiting (and more may join) for a
     * restock, which serves it in the step that adds the units. */
    put_sku(fx, "single", 1);
    char last[HF_TEST_ID_MAX];
    hold_ok(fx, hold_json(body, sizeof body, "u-0", NULL, NULL, "single", 1, NULL), last);
    wait_t w3, w4;
    wait_join(fx, "single", "u-3", 1, 1, &w3);
    commit(fx, last, "o-last");
    wait_get(fx, w3.id, &w);
    assert_string_equal(w.state, "waiting");
    assert_int_equal(w.position, 1);
    wait_join(fx, "single", "u-4", 1, 2, &w4);
    put_sku(fx, "single", 2);
    wait_get(fx, w3.id, &w);
    assert_string_equal(w.state, "offered");
    assert_string_equal(w.hold_customer, "u-3");
    wait_get(fx, w4.id, &w);
    assert_string_equal(w.state, "waiting");
    assert_int_equal(w.position, 1);
    assert_true(hf_expect_sku(&fx->cl, "single", 2, 1, 1));
}

static void test_waitlist_offer_that_expires_passes_to_the_next(void **state)
{
    fx_t *fx = *state;
    start_with(fx, WAITLIST_ON, NULL);
    put_sku_body(fx, "fast", "{\"stock\": 1, \"policy\": {\"waitlist\": {\"offer_ttl_ms\": 1000}}}",
                 201);
    char body[512], h0[HF_TEST_ID_MAX];
    hold_ok(fx, hold_json(body, sizeof body, "u-0", NULL, NULL, "fast", 1, NULL), h0);
    wait_t w3, w4, w;
    wait_join(fx, "fast", "u-3", 1, 1, &w3);
    wait_join(fx, "fast", "u-4", 1, 2, &w4);
    release(fx, h0);
    wait_get(fx, w3.id, &w);
    assert_string_equal(w.state, "offered");
    assert_true(w.hold_expires_ms - w.hold_created_ms == 1000);
    long long expires_ms = w.hold_expires_ms;
    char first_hold[HF_TEST_ID_MAX];
    snprintf(first_hold, sizeof first_hold, "%s", w.hold_id);
    /* Expiry is what is tested: poll until the offer has run out. */
    wait_leave(fx, w3.id, "offered", 5000, &w);
    assert_string_equal(w.state, "expired");
    assert_int_equal(w.finished_ms, expires_ms);
    expect_hold(&fx->cl, first_hold, "expired", NULL);
    /* The units went to the next in the step that freed them. */
    wait_get(fx, w4.id, &w);
    assert_string_equal(w.state, "offered");
    assert_string_equal(w.hold_customer, "u-4");
    assert_int_equal(w.hold_created_ms, expires_ms);
    assert_true(hf_expect_sku(&fx->cl, "fast", 1, 1, 0));
    /* Cancelling an offer releases its hold; cancelling again is harmless. */
    char second_hold[HF_TEST_ID_MAX];
    snprintf(second_hold, sizeof second_hold, "%s", w.hold_id);
    wait_cancel(fx, w4.id, 200, "cancelled");
    expect_hold(&fx->cl, second_hold, "released", NULL);
    assert_true(hf_expect_sku(&fx->cl, "fast", 1, 0, 0));
    wait_cancel(fx, w4.id, 200, "cancelled");
    wait_get(fx, w4.id, &w);
    assert_string_equal(w.state, "cancelled");
    assert_true(hf_expect_sku(&fx->cl, "fast", 1, 0, 0));
    /* A finished entry cannot be cancelled. */
    call_expect_error(&fx->cl, "DELETE", "/v1/waitlist/x", NULL, 404, "not_found", NULL);
    char target[128];
    snprintf(target, sizeof target, "/v1/waitlist/%s", w3.id);
    call_expect_error(&fx->cl, "DELETE", target, NULL, 409, "wait_finished", NULL);
}

/* An entry waiting for more than is left to sell keeps its place for a
 * restock but does not hold up a smaller one behind it. */
static void test_waitlist_entry_too_big_to_serve_does_not_block_the_line(void **state)
{
    fx_t *fx = *state;
    start_with(fx, WAITLIST_ON, NULL);
    put_sku(fx, "mixed", 2);
    char body[512], h[HF_TEST_ID_MAX];
    hold_ok(fx, hold_json(body, sizeof body, "u-0", NULL, NULL, "mixed", 1, NULL), h);
    buy_now_ok(fx, "u-9", "mixed", 1, "o-9"); /* stock - sold = 1 */
    wait_t big, small, w;
    wait_join(fx, "mixed", "u-big", 2, 1, &big);
    wait_join(fx, "mixed", "u-small", 1, 2, &small);
    release(fx, h);
    wait_get(fx, small.id, &w);
    assert_string_equal(w.state, "offered");
    assert_string_equal(w.hold_customer, "u-small");
    wait_get(fx, big.id, &w);
    assert_string_equal(w.state, "waiting");
    assert_int_equal(w.position, 1);
    /* A restock that makes it servable serves it once units are free. */
    put_sku(fx, "mixed", 4);
    wait_get(fx, big.id, &w);
    assert_string_equal(w.state, "offered");
    assert_int_equal(w.hold_qty, 2);
    assert_true(hf_expect_sku(&fx->cl, "mixed", 4, 3, 1));
}

/* A customer waits once per sku; when an entry's turn comes, its
 * identities meet the caps a hold would: a network over its cap loses the
 * turn (expired) and the next in line gets the units. */
static void test_waitlist_turn_is_lost_by_a_network_over_its_caps(void **state)
{
    fx_t *fx = *state;
    start_with(fx,
               "{\"waitlist\": {\"enabled\": 1}, \"identity\": {\"enabled\": 1, "
               "\"ip_prefix_holds_max\": 1}}",
               NULL);
    put_sku(fx, "seat", 1);
    put_sku(fx, "other", 5);
    char body[512], h0[HF_TEST_ID_MAX], h1[HF_TEST_ID_MAX];
    hold_ok(fx, hold_json(body, sizeof body, "u-0", "198.51.100.1", NULL, "seat", 1, NULL), h0);
    wait_t troll, fan, w;
    hf_response_t r = call(&fx->cl, "POST", "/v1/skus/seat/waitlist",
                           "{\"customer\": \"troll-1\", \"ip\": \"203.0.113.5\"}");
    assert_true(hf_expect_status(&r, 201));
    wait_read(r.json, &troll);
    hf_response_free(&r);
    call_expect_error(&fx->cl, "POST", "/v1/skus/seat/waitlist",
                      "{\"customer\": \"troll-1\", \"ip\": \"203.0.113.5\"}", 409,
                      "already_waiting", NULL);
    call_expect_error(&fx->cl, "POST", "/v1/skus/seat/waitlist",
                      "{\"customer\": \"fan-1\", \"ip\": \"not-an-ip\"}", 400,
                      "invalid_field", "ip");
    wait_join(fx, "seat", "fan-1", 1, 2, &fan);
    json_t *sku = get_json(&fx->cl, "/v1/skus/seat");
    assert_int_equal(int_of(sku, "waitlist"), 2);
    json_decref(sku);
    /* The troll's /24 now holds its one allowed hold elsewhere. */
    hold_ok(fx, hold_json(body, sizeof body, "troll-2", "203.0.113.6", NULL, "other", 1, NULL),
            h1);
    release(fx, h0);
    /* The troll's turn was lost; the fan is offered the seat in that step. */
    wait_get(fx, troll.id, &w);
    assert_string_equal(w.state, "expired");
    assert_true(w.finished_ms > 0);
    r = call(&fx->cl, "GET", "/v1/skus/seat", NULL);
    assert_true(hf_expect_status(&r, 200));
    assert_int_equal(int_of(r.json, "waitlist"), 0);
    hf_response_free(&r);
    wait_get(fx, fan.id, &w);
    assert_string_equal(w.state, "offered");
    assert_string_equal(w.hold_customer, "fan-1");
    char *text = scrape(fx);
    assert_true(metric(text, "holdfast_waitlist_total{event=\"refused\"}") == 1);
    free(text);
}

static void test_waitlist_cancel_and_refusals(void **state)
{
    fx_t *fx = *state;
    start_with(fx, WAITLIST_ON, NULL);
    put_sku(fx, "drop", 2);
    put_sku_body(fx, "nowait", "{\"stock\": 1, \"policy\": {\"waitlist\": {\"enabled\": 0}}}", 201);
    put_sku_body(fx, "capped",
                 "{\"stock\": 5, \"policy\": {\"quantity\": {\"enabled\": 1, "
                 "\"line_qty_max\": 2}}}",
                 201);
    char body[512], h[HF_TEST_ID_MAX];
    hold_ok(fx, hold_json(body, sizeof body, "u-0", NULL, NULL, "drop", 1, NULL), h);
    buy_now_ok(fx, "u-0", "drop", 1, "o-0");
    /* More than the stock left to sell may wait (a restock may come), and
     * holds up no one behind it; cancelled, it leaves the line. */
    wait_t big;
    wait_join(fx, "drop", "u-1", 2, 1, &big);
    wait_cancel(fx, big.id, 200, "cancelled");
    call_expect_error(&fx->cl, "POST", "/v1/skus/nowait/waitlist",
                      "{\"customer\": \"u-1\", \"qty\": 1}", 409, "waitlist_off", NULL);
    call_expect_error(&fx->cl, "POST", "/v1/skus/nosuch/waitlist",
                      "{\"customer\": \"u-1\", \"qty\": 1}", 404, "not_found", NULL);
    call_expect_error(&fx->cl, "POST", "/v1/skus/drop/waitlist", "{\"qty\": 1}", 400,
                      "invalid_field", "customer");
    call_expect_error(&fx->cl, "POST", "/v1/skus/drop/waitlist",
                      "{\"customer\": \"u-1\", \"qty\": 0}", 400, "invalid_field", "qty");
    call_expect_error(&fx->cl, "POST", "/v1/skus/drop/waitlist",
                      "{\"customer\": \"u-1\", \"why\": 1}", 400, "unknown_field", "why");
    /* The sku's quantity cap holds for the waitlist too. */
    hf_response_t r =
        call(&fx->cl, "POST", "/v1/skus/capped/waitlist", "{\"customer\": \"u-1\", \"qty\": 3}");
    expect_denied(&r, "line_qty", 2, 3, NULL, NULL);
    hf_response_free(&r);
    json_t *sku = get_json(&fx->cl, "/v1/skus/drop");
    assert_int_equal(int_of(sku, "waitlist"), 0);
    json_decref(sku);
    /* A waiting entry cancelled leaves the line; the one behind moves up. */
    wait_t w1, w2, w;
    wait_join(fx, "drop", "u-1", 1, 1, &w1);
    wait_join(fx, "drop", "u-2", 1, 2, &w2);
    wait_cancel(fx, w1.id, 200, "cancelled");
    wait_get(fx, w2.id, &w);
    assert_int_equal(w.position, 1);
    release(fx, h);
    wait_get(fx, w2.id, &w);
    assert_string_equal(w.state, "offered");
    wait_get(fx, w1.id, &w);
    assert_string_equal(w.state, "cancelled");
    /* Unknown ids. */
    const char *ids[] = {"w_zzzzz", "w_1", "w_", "nope", "h_1", "w_0"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        char target[128];
        snprintf(target, sizeof target, "/v1/waitlist/%s", ids[i]);
        call_expect_error(&fx->cl, "GET", target, NULL, 404, "not_found", NULL);
    }
}

/* ========================== 5. the policy document ========================== */


/* ------------------------------------------------------------- reclaim */

#define RECLAIM_ON                                                                                 \
    "{\"waitlist\": {\"enabled\": 1}, \"reclaim\": {\"enabled\": 1, \"floor_ms\": 1000,"            \
    " \"min_commits\": 1}}"

/* A stale cart is taken back for a buyer who waits, and the unit goes to
 * the waiting buyer in the same step: the hold shows why it ended. */
static void test_reclaim_gives_a_stale_cart_to_the_waitlist(void **state)
{
    fx_t *fx = *state;
    start_with(fx, RECLAIM_ON, NULL);
    put_sku(fx, "drop", 10);
    char body[512], paid[HF_TEST_ID_MAX], stale[HF_TEST_ID_MAX];
    /* A buyer pays at once: the sku's buyers pay within a second. */
    hold_ok(fx, hold_json(body, sizeof body, "payer", NULL, NULL, "drop", 1, NULL), paid);
    commit(fx, paid, "o-1");
    long long made_ms = hf_wall_ms();
    hf_response_t r = post_hold(fx, hold_json(body, sizeof body, "hoarder", NULL, NULL, "drop", 9,
                                              NULL),
                                NULL);
    assert_true(hf_expect_status(&r, 201));
    snprintf(stale, sizeof stale, "%s", or_missing(hf_json_str(r.json, "id")));
    /* Its reply says how long it is safe: the floor, not its ten minutes. */
    long long safe_ms = hf_parse_instant(hf_json_str(r.json, "safe_until"));
    long long expires_ms = hf_parse_instant(hf_json_str(r.json, "expires_at"));
    assert_true(safe_ms >= made_ms + 1000 - 50 && safe_ms <= hf_wall_ms() + 1000 + 50);
    assert_true(expires_ms - safe_ms > 500000);
    hf_response_free(&r);
    wait_t w;
    wait_join(fx, "drop", "fan", 1, 1, &w);
    /* The server's tick reclaims: watch for it, bounded. */
    char id[HF_TEST_ID_MAX];
    snprintf(id, sizeof id, "%s", w.id);
    wait_leave(fx, id, "waiting", 10000, &w);
    assert_string_equal(w.state, "offered");
    assert_string_equal(w.hold_customer, "fan");
    expect_hold(&fx->cl, stale, "released", NULL);
    char target[HF_TEST_ID_MAX + 16];
    snprintf(target, sizeof target, "/v1/holds/%s", stale);
    json_t *h = get_json(&fx->cl, target);
    assert_string_equal(or_missing(hf_json_str(h, "reason")), "reclaimed for buyers waiting");
    assert_true(hf_parse_instant(hf_json_str(h, "finished_at")) >= safe_ms);
    json_decref(h);
    /* Eight units back to open sale, one in the fan's cart, one sold. */
    assert_true(hf_expect_sku(&fx->cl, "drop", 10, 1, 1));
    json_t *sku = get_json(&fx->cl, "/v1/skus/drop");
    assert_int_equal(int_of(sku, "reclaimed"), 1);
    assert_int_equal(int_of(sku, "pay_ms"), 1000);
    json_decref(sku);
    char *m = scrape(fx);
    assert_true(metric(m, "holdfast_reclaimed_holds_total") == 1);
    assert_true(metric(m, "holdfast_reclaimed_units_total") == 9);
    free(m);
    /* The reclaim was journaled: after kill -9 the state is the same. */
    restart(fx, SIGKILL);
    expect_hold(&fx->cl, stale, "released", NULL);
    wait_get(fx, w.id, &w);
    assert_string_equal(w.state, "offered");
    assert_true(hf_expect_sku(&fx->cl, "drop", 10, 1, 1));
}

/* A proof pays up to the price it was issued at: after the price rose the
 * same proof gets a new challenge, at the new price. */
static void test_a_stale_proof_is_asked_again_at_todays_price(void **state)
{
    fx_t *fx = *state;
    start_with(fx, "{\"challenge\": {\"enabled\": 1, \"free_units\": 2, \"base_bits\": 6,"
                   " \"bits_max\": 16}}",
               NULL);
    put_sku(fx, "a", 100);
    char body[512], header[256];
    challenge_t first;
    hold_json(body, sizeof body, "u-1", NULL, NULL, "a", 4, NULL);
    challenge_and_solve(fx, body, &first, header, sizeof header);
    /* Another buyer takes most of the stock: four units now cost more. */
    buy_now_ok(fx, "u-2", "a", 90, "o-1");
    hf_response_t r = post_hold(fx, body, header);
    challenge_t again;
    expect_challenge(&r, &again);
    hf_response_free(&r);
    assert_true(again.bits > first.bits);
    assert_true(hf_expect_sku(&fx->cl, "a", 100, 0, 90)); /* nothing held */
    char nonce[POW_NONCE_BYTES_MAX + 1];
    solve(again.prefix, again.bits, nonce);
    proof_header(header, sizeof header, again.prefix, nonce);
    r = post_hold(fx, body, header);
    assert_true(hf_expect_status(&r, 201));
    hf_response_free(&r);
    char *m = scrape(fx);
    assert_true(metric(m, "holdfast_proofs_total{outcome=\"stale\"}") == 1);
    assert_true(metric(m, "holdfast_proofs_total{outcome=\"accepted\"}") == 1);
    free(m);
}

/* Two units are what an ordinary buyer takes: solved once, never again. */
static void test_an_ordinary_cart_is_never_asked_twice(void **state)
{
    fx_t *fx = *state;
    start_with(fx, "{\"challenge\": {\"enabled\": 1, \"free_units\": 2, \"base_bits\": 6,"
                   " \"bits_max\": 16}}",
               NULL);
    put_sku(fx, "a", 100);
    buy_now_ok(fx, "u-0", "a", 80, "o-0"); /* scarce: two units cost bits */
    char body[512], header[256];
    challenge_t c;
    hold_json(body, sizeof body, "u-1", NULL, NULL, "a", 2, NULL);
    challenge_and_solve(fx, body, &c, header, sizeof header);
    buy_now_ok(fx, "u-2", "a", 15, "o-1"); /* scarcer: the price rises */
    hf_response_t r = post_hold(fx, body, header);
    assert_true(hf_expect_status(&r, 201));
    hf_response_free(&r);
}

/* A newcomer's large cart past the pool is sold outright, never held; one
 * or two units still hold. */
static void test_newcomer_pool_refuses_large_first_carts_and_offers_buy_now(void **state)
{
    fx_t *fx = *state;
    start_with(fx, "{\"newcomer\": {\"enabled\": 1, \"pool_pct\": 20, \"free_units\": 2}}", NULL);
    put_sku(fx, "drop", 50);
    char body[512];
    hold_ok(fx, hold_json(body, sizeof body, "a", NULL, "dev-a", "drop", 10, NULL), NULL);
    hf_response_t r = post_hold(fx, hold_json(body, sizeof body, "b", NULL, "dev-b", "drop", 3,
                                              NULL),
                                NULL);
    expect_denied(&r, "newcomer_pool", 10, 10, NULL, "drop");
    assert_true(json_is_true(json_object_get(json_object_get(r.json, "error"), "buy_now")));
    hf_response_free(&r);
    assert_true(hf_expect_sku(&fx->cl, "drop", 50, 10, 0)); /* refused: nothing changed */
    hold_ok(fx, hold_json(body, sizeof body, "b", NULL, "dev-b", "drop", 2, NULL), NULL);
    buy_now_ok(fx, "c", "drop", 3, "o-1");
    json_t *sku = get_json(&fx->cl, "/v1/skus/drop");
    assert_int_equal(int_of(sku, "newcomer_held"), 12);
    json_decref(sku);
}

static void expect_policy_defaults_but(const json_t *doc, const char *section, const char *key,
                                       long long value)
{
    size_t keys = 0;
    const char *s;
    const json_t *sec;
    json_object_foreach((json_t *)doc, s, sec)
    {
        keys += json_object_size(sec);
    }
    assert_int_equal(keys, POLICY_FIELD_COUNT);
    for (int f = 0; f < POLICY_FIELD_COUNT; f++) {
        const policy_field_info_t *info = policy_field_info((policy_field_t)f);
        long long want = info->def;
        if (section != NULL && strcmp(info->section, section) == 0 && strcmp(info->key, key) == 0) {
            want = value;
        }
        long long got = -1;
        bool ok = hf_json_int(json_object_get(doc, info->section), info->key, &got);
        if (!ok || got != want) {
            fprintf(stderr, "policy %s.%s: want %lld, got %lld\n", info->section, info->key, want,
                    got);
        }
        assert_true(ok && got == want);
    }
}

static void test_policy_document_has_every_setting_and_put_resets_omitted_keys(void **state)
{
    fx_t *fx = *state;
    start_raw(fx, "{}");
    json_t *doc = get_json(&fx->cl, "/v1/policy");
    const char *sections[] = {"quantity",  "identity", "budget",     "hold_share",
                              "ttl",       "reputation", "challenge", "waitlist",
                              "escalation", "newcomer", "reclaim"};
    size_t count = sizeof sections / sizeof sections[0];
    assert_int_equal(json_object_size(doc), count);
    for (size_t i = 0; i < count; i++) {
        assert_true(json_is_object(json_object_get(doc, sections[i])));
    }
    expect_policy_defaults_but(doc, NULL, NULL, 0);
    json_decref(doc);
    /* A PUT answers the whole document and applies at once. */
    hf_response_t r = call(&fx->cl, "PUT", "/v1/policy", "{\"quantity\": {\"line_qty_max\": 3}}");
    assert_true(hf_expect_status(&r, 200));
    expect_policy_defaults_but(r.json, "quantity", "line_qty_max", 3);
    hf_response_free(&r);
    put_sku(fx, "a", 100);
    char body[512];
    hold_denied(fx, hold_json(body, sizeof body, "u-1", NULL, NULL, "a", 4, NULL), "line_qty", 3, 4,
                NULL, "a");
    /* What a PUT leaves out goes back to its default. */
    call_expect(&fx->cl, "PUT", "/v1/policy", "{\"identity\": {\"customer_holds_max\": 7}}", 200);
    doc = get_json(&fx->cl, "/v1/policy");
    expect_policy_defaults_but(doc, "identity", "customer_holds_max", 7);
    json_decref(doc);
    call_expect(&fx->cl, "PUT", "/v1/policy", "{}", 200);
    doc = get_json(&fx->cl, "/v1/policy");
    expect_policy_defaults_but(doc, NULL, NULL, 0);
    json_decref(doc);
}

static void test_policy_put_refuses_unknown_out_of_range_and_conflicting_settings(void **state)
{
    fx_t *fx = *state;
    start_raw(fx, "{}");
    call_expect(&fx->cl, "PUT", "/v1/policy", "{\"quantity\": {\"line_qty_max\": 4}}", 200);
    json_t *before = get_json(&fx->cl, "/v1/policy");
    const struct {
        const char *body, *code, *field;
    } cases[] = {
        {"{\"quantity\": {\"bogus\": 1}}", "unknown_field", "quantity.bogus"},
        {"{\"bogus\": {\"line_qty_max\": 1}}", "unknown_field", "bogus"},
        {"{\"quantity\": {\"line_qty_max\": 0}}", "invalid_field", "quantity.line_qty_max"},
        {"{\"quantity\": {\"line_qty_max\": 1000001}}", "invalid_field", "quantity.line_qty_max"},
        {"{\"quantity\": {\"line_qty_max\": \"5\"}}", "invalid_field", "quantity.line_qty_max"},
        {"{\"quantity\": {\"line_qty_max\": 2.5}}", "invalid_field", "quantity.line_qty_max"},
        {"{\"quantity\": {\"enabled\": 2}}", "invalid_field", "quantity.enabled"},
        {"{\"quantity\": 5}", "invalid_field", "quantity"},
        {"{\"challenge\": {\"ttl_ms\": 999}}", "invalid_field", "challenge.ttl_ms"},
        {"{\"ttl\": {\"scarce_ms\": 700000}}", "invalid_field", "ttl.scarce_ms"},
        {"{\"ttl\": {\"default_ms\": 1900000}}", "invalid_field", "ttl.default_ms"},
        {"{\"ttl\": {\"scarce_pct\": 50}}", "invalid_field", "ttl.scarce_pct"},
        {"{\"challenge\": {\"base_bits\": 23}}", "invalid_field", "challenge.base_bits"},
        {"{\"escalation\": {\"conversion_pct\": 70}}", "invalid_field", "escalation.recover_pct"},
        {"[]", "invalid_field", NULL},
        {"{\"quantity\": {}, \"quantity\": {}}", "invalid_json", NULL},
        {"{", "invalid_json", NULL},
        {"", "invalid_json", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        call_expect_error(&fx->cl, "PUT", "/v1/policy", cases[i].body, 400, cases[i].code,
                          cases[i].field);
        json_t *after = get_json(&fx->cl, "/v1/policy");
        assert_true(json_same(before, after, "the policy after a refused PUT"));
        json_decref(after);
    }
    /* A shop-wide policy that breaks a sku's own settings is refused too. */
    put_sku_body(fx, "slow", "{\"stock\": 5, \"policy\": {\"ttl\": {\"scarce_ms\": 300000}}}", 201);
    call_expect_error(&fx->cl, "PUT", "/v1/policy",
                      "{\"ttl\": {\"default_ms\": 200000, \"scarce_ms\": 100000}}", 400,
                      "invalid_field", "ttl.scarce_ms");
    json_t *after = get_json(&fx->cl, "/v1/policy");
    assert_true(json_same(before, after, "the policy after a PUT that broke a sku"));
    json_decref(after);
    json_decref(before);
}

static void test_policy_needs_the_admin_key(void **state)
{
    fx_t *fx = *state;
    char config[256];
    snprintf(config, sizeof config, "{%s}", KEYS);
    start_raw(fx, config);
    hf_client_t admin = {fx->srv.port, ADMIN_KEY, false}, shop = {fx->srv.port, SHOP_KEY, true},
                none = {fx->srv.port, NULL, false};
    json_t *before = get_json(&admin, "/v1/policy");
    call_expect_error(&shop, "GET", "/v1/policy", NULL, 403, "forbidden", NULL);
    call_expect_error(&none, "GET", "/v1/policy", NULL, 401, "unauthorized", NULL);
    call_expect_error(&shop, "PUT", "/v1/policy", "{\"quantity\": {\"line_qty_max\": 1}}", 403,
                      "forbidden", NULL);
    call_expect_error(&shop, "GET", "/v1/identities/top", NULL, 403, "forbidden", NULL);
    call_expect_error(&shop, "POST", "/v1/identities/customer/u-1/revoke", NULL, 403, "forbidden",
                      NULL);
    call_expect_error(&shop, "PUT", "/v1/skus/a",
                      "{\"stock\": 1, \"policy\": {\"quantity\": {\"line_qty_max\": 1}}}", 403,
                      "forbidden", NULL);
    json_t *after = get_json(&admin, "/v1/policy");
    assert_true(json_same(before, after, "the policy after refused PUTs"));
    json_decref(after);
    json_decref(before);
    call_expect(&admin, "PUT", "/v1/policy", "{\"quantity\": {\"line_qty_max\": 1}}", 200);
    /* The waitlist is the shop's (a sold-out sku: one joins what one cannot hold). */
    assert_int_equal(hf_sku_put(&admin, "a", 0), 201);
    call_expect(&shop, "POST", "/v1/skus/a/waitlist", "{\"customer\": \"u-1\"}", 201);
    /* With the units there, a join is told to hold them instead. */
    assert_int_equal(hf_sku_put(&admin, "b", 1), 201);
    call_expect_error(&shop, "POST", "/v1/skus/b/waitlist", "{\"customer\": \"u-1\"}", 409,
                      "units_available", NULL);
}

static void test_sku_policy_applies_to_its_sku_only_and_can_be_cleared(void **state)
{
    fx_t *fx = *state;
    start_with(fx, "{\"quantity\": {\"enabled\": 1, \"customer_sku_units_max\": 1000}}", NULL);
    hf_response_t r = call(&fx->cl, "PUT", "/v1/skus/drop",
                           "{\"stock\": 10, \"policy\": {\"quantity\": {\"line_qty_max\": 2}}}");
    assert_true(hf_expect_status(&r, 201));
    json_t *want = json_pack("{s:{s:i}}", "quantity", "line_qty_max", 2);
    assert_true(json_same(want, json_object_get(r.json, "policy"), "the sku's policy"));
    assert_int_equal(int_of(r.json, "stock"), 10);
    hf_response_free(&r);
    json_t *sku = get_json(&fx->cl, "/v1/skus/drop");
    assert_true(json_same(want, json_object_get(sku, "policy"), "the sku's policy read back"));
    json_decref(sku);
    put_sku(fx, "plain", 10);
    sku = get_json(&fx->cl, "/v1/skus/plain");
    assert_null(json_object_get(sku, "policy"));
    json_decref(sku);
    char body[512];
    hold_denied(fx, hold_json(body, sizeof body, "u-1", NULL, NULL, "drop", 3, NULL), "line_qty", 2,
                3, NULL, "drop");
    hold_ok(fx, hold_json(body, sizeof body, "u-1", NULL, NULL, "plain", 3, NULL), NULL);
    /* Refused sku policies change nothing. */
    const struct {
        const char *body, *code, *field;
    } bad[] = {
        {"{\"stock\": 10, \"policy\": {\"identity\": {\"customer_holds_max\": 1}}}",
         "unknown_field", "policy.identity.customer_holds_max"},
        {"{\"stock\": 10, \"policy\": {\"budget\": {\"enabled\": 0}}}", "unknown_field",
         "policy.budget.enabled"},
        {"{\"stock\": 10, \"policy\": {\"quantity\": {\"bogus\": 1}}}", "unknown_field",
         "policy.quantity.bogus"},
        {"{\"stock\": 10, \"policy\": {\"quantity\": {\"line_qty_max\": 0}}}", "invalid_field",
         "policy.quantity.line_qty_max"},
        {"{\"stock\": 10, \"policy\": 3}", "invalid_field", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        call_expect_error(&fx->cl, "PUT", "/v1/skus/drop", bad[i].body, 400, bad[i].code,
                          bad[i].field);
        sku = get_json(&fx->cl, "/v1/skus/drop");
        assert_true(json_same(want, json_object_get(sku, "policy"), "the sku's policy"));
        assert_int_equal(int_of(sku, "stock"), 10);
        json_decref(sku);
    }
    json_decref(want);
    /* Only the policy: the stock stays. */
    r = call(&fx->cl, "PUT", "/v1/skus/drop",
             "{\"policy\": {\"quantity\": {\"line_qty_max\": 3}}}");
    assert_true(hf_expect_status(&r, 200));
    assert_int_equal(int_of(r.json, "stock"), 10);
    hf_response_free(&r);
    hold_ok(fx, hold_json(body, sizeof body, "u-1", NULL, NULL, "drop", 3, NULL), NULL);
    assert_true(hf_expect_sku(&fx->cl, "drop", 10, 3, 0));
    /* What the sku does not set follows the shop's policy, later changes too. */
    put_policy(fx, NULL); /* quantity off shop-wide */
    hold_ok(fx, hold_json(body, sizeof body, "u-2", NULL, NULL, "drop", 5, NULL), NULL);
    put_policy(fx, "{\"quantity\": {\"enabled\": 1, \"customer_sku_units_max\": 1000}}");
    hold_denied(fx, hold_json(body, sizeof body, "u-3", NULL, NULL, "drop", 2 + 2, NULL),
                "line_qty", 3, 4, NULL, "drop");
    /* null clears it. */
    r = call(&fx->cl, "PUT", "/v1/skus/drop", "{\"policy\": null}");
    assert_true(hf_expect_status(&r, 200));
    assert_null(json_object_get(r.json, "policy"));
    assert_int_equal(int_of(r.json, "stock"), 10);
    hf_response_free(&r);
    sku = get_json(&fx->cl, "/v1/skus/drop");
    assert_null(json_object_get(sku, "policy"));
    json_decref(sku);
    hold_ok(fx, hold_json(body, sizeof body, "u-3", NULL, NULL, "drop", 2, NULL), NULL);
    assert_true(hf_expect_sku(&fx->cl, "drop", 10, 10, 0));
    /* A policy alone cannot create a sku. */
    call_expect_error(&fx->cl, "PUT", "/v1/skus/missing",
                      "{\"policy\": {\"quantity\": {\"line_qty_max\": 2}}}", 400, "invalid_field",
                      "stock");
    call_expect_error(&fx->cl, "GET", "/v1/skus/missing", NULL, 404, "not_found", NULL);
}

/* 400 invalid_field naming ttl.scarce_ms (with or without "policy."). */
static void refuse_sku_relation(fx_t *fx, const char *sku, const char *body)
{
    char target[128];
    snprintf(target, sizeof target, "/v1/skus/%s", sku);
    hf_response_t r = call(&fx->cl, "PUT", target, body);
    const char *field = or_missing(hf_error_field(&r));
    bool ok = hf_expect_error(&r, 400, "invalid_field", NULL) &&
              (strcmp(field, "ttl.scarce_ms") == 0 || strcmp(field, "policy.ttl.scarce_ms") == 0);
    if (!ok) {
        fprintf(stderr, "PUT %s %s: %d %s\n", target, body, r.status, r.body);
    }
    hf_response_free(&r);
    assert_true(ok);
}

/* A PUT whose sku policy breaks a relation is refused as a whole: neither
 * its stock nor a new sku may be applied. */
static void test_sku_put_refused_for_its_policy_changes_nothing(void **state)
{
    fx_t *fx = *state;
    start_raw(fx, "{}");
    put_sku(fx, "drop", 10);
    const char *broken = "\"policy\": {\"ttl\": {\"scarce_ms\": 700000}}";
    char body[256];
    snprintf(body, sizeof body, "{\"stock\": 20, %s}", broken);
    refuse_sku_relation(fx, "drop", body);
    hf_sku_counts_t n;
    assert_int_equal(hf_sku_get(&fx->cl, "drop", &n), 200);
    if (n.stock != 10) {
        fprintf(stderr, "BUG: PUT /v1/skus/drop %s answered 400 but set stock to %lld\n", body,
                n.stock);
    }
    snprintf(body, sizeof body, "{\"stock\": 5, %s}", broken);
    refuse_sku_relation(fx, "fresh", body);
    hf_response_t r = call(&fx->cl, "GET", "/v1/skus/fresh", NULL);
    if (r.status != 404) {
        fprintf(stderr, "BUG: PUT /v1/skus/fresh %s answered 400 but created it: %s\n", body,
                r.body);
    }
    int fresh_status = r.status;
    hf_response_free(&r);
    assert_true(hf_expect_sku(&fx->cl, "drop", 10, 0, 0));
    assert_int_equal(fresh_status, 404);
}

/* ============================ 6. identities ============================ */

static const json_t *find_identity(const json_t *list, const char *kind, const char *value)
{
    size_t i;
    const json_t *e;
    json_array_foreach(list, i, e)
    {
        if (strcmp(or_missing(hf_json_str(e, "kind")), kind) == 0 &&
            strcmp(or_missing(hf_json_str(e, "value")), value) == 0) {
            return e;
        }
    }
    return NULL;
}

static void expect_sorted_by(const json_t *list, const char *key)
{
    long long prev = -1;
    size_t i;
    const json_t *e;
    json_array_foreach(list, i, e)
    {
        long long v = int_of(e, key);
        assert_true(i == 0 || v <= prev);
        assert_true(v > 0);
        prev = v;
    }
}

static void expect_identity(const json_t *list, const char *kind, const char *value,
                            long long held_units, long long holds, long long commits)
{
    const json_t *e = find_identity(list, kind, value);
    if (e == NULL) {
        char *text = json_dumps(list, JSON_COMPACT);
        fprintf(stderr, "no %s %s in %s\n", kind, value, or_missing(text));
        free(text);
    }
    assert_non_null(e);
    assert_int_equal(int_of(e, "held_units"), held_units);
    assert_int_equal(int_of(e, "holds"), holds);
    assert_int_equal(int_of(e, "commits"), commits);
}

/* big: 5 + 3 units in 2 holds from 203.0.113.7 (fp-big); mid: 2 units from
 * 203.0.113.9; small: 1 unit from 198.51.100.1; buyer: 2 units, paid. */
static void build_holders(const hf_client_t *cl, char ids[4][HF_TEST_ID_MAX])
{
    char body[512];
    assert_int_equal(hf_sku_put(cl, "s", 100), 201);
    const struct {
        const char *customer, *ip, *fp;
        long long qty;
    } holds[] = {{"big", "203.0.113.7", "fp-big", 5},
                 {"big", "203.0.113.7", "fp-big", 3},
                 {"mid", "203.0.113.9", NULL, 2},
                 {"small", "198.51.100.1", NULL, 1}};
    for (size_t i = 0; i < 4; i++) {
        hold_json(body, sizeof body, holds[i].customer, holds[i].ip, holds[i].fp, "s", holds[i].qty,
                  NULL);
        assert_int_equal(hf_hold_create(cl, body, NULL, ids[i], NULL), 201);
    }
    char id[HF_TEST_ID_MAX];
    hold_json(body, sizeof body, "buyer", "198.51.100.2", NULL, "s", 2, NULL);
    assert_int_equal(hf_hold_create(cl, body, NULL, id, NULL), 201);
    char target[256];
    snprintf(target, sizeof target, "/v1/holds/%s/commit", id);
    call_expect(cl, "POST", target, NULL, 200);
}

static void test_identities_top_ranks_the_biggest_holders_first(void **state)
{
    fx_t *fx = *state;
    start_with(fx, NULL, NULL);
    char ids[4][HF_TEST_ID_MAX];
    build_holders(&fx->cl, ids);
    json_t *top = get_json(&fx->cl, "/v1/identities/top?by=held_units");
    const json_t *list = json_object_get(top, "identities");
    const json_t *first = json_array_get(list, 0);
    assert_string_equal(or_missing(hf_json_str(first, "kind")), "ip_prefix");
    assert_string_equal(or_missing(hf_json_str(first, "value")), "203.0.113.0/24");
    expect_sorted_by(list, "held_units");
    expect_identity(list, "ip_prefix", "203.0.113.0/24", 10, 3, 0);
    expect_identity(list, "customer", "big", 8, 2, 0);
    expect_identity(list, "fingerprint", "fp-big", 8, 2, 0);
    expect_identity(list, "customer", "mid", 2, 1, 0);
    expect_identity(list, "customer", "small", 1, 1, 0);
    assert_null(find_identity(list, "customer", "buyer")); /* holds nothing now */
    json_decref(top);
    top = get_json(&fx->cl, "/v1/identities/top?by=holds&limit=2");
    list = json_object_get(top, "identities");
    assert_int_equal(json_array_size(list), 2);
    expect_sorted_by(list, "holds");
    expect_identity(list, "ip_prefix", "203.0.113.0/24", 10, 3, 0);
    json_decref(top);
    top = get_json(&fx->cl, "/v1/identities/top?by=holds&limit=1000");
    list = json_object_get(top, "identities");
    expect_sorted_by(list, "holds");
    expect_identity(list, "customer", "small", 1, 1, 0);
    json_decref(top);
    const char *bad[] = {"?by=units",   "?by=",       "?by=HELD_UNITS", "?limit=0",
                         "?limit=1001", "?limit=abc", "?limit="};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char target[128];
        snprintf(target, sizeof target, "/v1/identities/top%s", bad[i]);
        call_expect_error(&fx->cl, "GET", target, NULL, 400, "invalid_field",
                          strstr(bad[i], "by") ? "by" : "limit");
    }
}

static void test_revoke_releases_every_active_hold_with_the_reason(void **state)
{
    fx_t *fx = *state;
    start_with(fx, NULL, KEYS);
    hf_client_t admin = {fx->srv.port, ADMIN_KEY, false}, shop = {fx->srv.port, SHOP_KEY, true};
    char ids[4][HF_TEST_ID_MAX];
    build_holders(&admin, ids);
    assert_true(hf_expect_sku(&admin, "s", 100, 11, 2));
    call_expect_error(&shop, "POST", "/v1/identities/customer/big/revoke",
                      "{\"reason\": \"troll\"}", 403, "forbidden", NULL);
    assert_true(hf_expect_sku(&admin, "s", 100, 11, 2));
    hf_response_t r =
        call(&admin, "POST", "/v1/identities/customer/big/revoke", "{\"reason\": \"troll\"}");
    assert_true(hf_expect_status(&r, 200));
    assert_string_equal(or_missing(hf_json_str(r.json, "kind")), "customer");
    assert_string_equal(or_missing(hf_json_str(r.json, "value")), "big");
    assert_int_equal(int_of(r.json, "revoked"), 2);
    hf_response_free(&r);
    expect_hold(&admin, ids[0], "released", "troll");
    expect_hold(&admin, ids[1], "released", "troll");
    expect_hold(&admin, ids[2], "active", NULL);
    assert_true(hf_expect_sku(&admin, "s", 100, 3, 2));
    json_t *top = get_json(&admin, "/v1/identities/top");
    assert_null(find_identity(json_object_get(top, "identities"), "customer", "big"));
    expect_identity(json_object_get(top, "identities"), "ip_prefix", "203.0.113.0/24", 2, 1, 0);
    json_decref(top);
    /* Revocation is not a ban; a second one finds nothing to release. */
    r = call(&admin, "POST", "/v1/identities/customer/big/revoke", NULL);
    assert_true(hf_expect_status(&r, 200));
    assert_int_equal(int_of(r.json, "revoked"), 0);
    hf_response_free(&r);
    char body[512], id[HF_TEST_ID_MAX];
    hold_json(body, sizeof body, "big", NULL, NULL, "s", 1, NULL);
    assert_int_equal(hf_hold_create(&shop, body, NULL, id, NULL), 201);
    /* Without a reason the holds still say why they ended. */
    call_expect(&admin, "POST", "/v1/identities/fingerprint/fp-big/revoke", NULL, 200);
    call_expect(&admin, "POST", "/v1/identities/customer/big/revoke", "", 200);
    char target[256];
    snprintf(target, sizeof target, "/v1/holds/%s", id);
    json_t *h = get_json(&admin, target);
    assert_string_equal(or_missing(hf_json_str(h, "state")), "released");
    assert_non_null(hf_json_str(h, "reason"));
    json_decref(h);
    /* Refusals. */
    call_expect_error(&admin, "POST", "/v1/identities/customer/nobody/revoke", NULL, 404,
                      "not_found", NULL);
    call_expect_error(&admin, "POST", "/v1/identities/account/big/revoke", NULL, 400,
                      "invalid_field", "kind");
    call_expect_error(&admin, "POST", "/v1/identities/customer/mid/revoke", "{\"why\": \"x\"}", 400,
                      "unknown_field", "why");
    expect_hold(&admin, ids[2], "active", NULL);
    assert_true(hf_expect_sku(&admin, "s", 100, 3, 2));
}

static void test_revoke_of_an_ip_prefix_takes_the_slash_raw_or_encoded(void **state)
{
    fx_t *fx = *state;
    start_with(fx, NULL, NULL);
    char ids[4][HF_TEST_ID_MAX];
    build_holders(&fx->cl, ids);
    hf_response_t r = call(&fx->cl, "POST", "/v1/identities/ip_prefix/203.0.113.0/24/revoke",
                           "{\"reason\": \"network\"}");
    assert_true(hf_expect_status(&r, 200));
    assert_string_equal(or_missing(hf_json_str(r.json, "value")), "203.0.113.0/24");
    assert_int_equal(int_of(r.json, "revoked"), 3);
    hf_response_free(&r);
    expect_hold(&fx->cl, ids[2], "released", "network");
    expect_hold(&fx->cl, ids[3], "active", NULL);
    char body[512], id[HF_TEST_ID_MAX];
    hold_ok(fx, hold_json(body, sizeof body, "new", "203.0.113.77", NULL, "s", 1, NULL), id);
    r = call(&fx->cl, "POST", "/v1/identities/ip_prefix/203.0.113.0%2F24/revoke",
             "{\"reason\": \"encoded\"}");
    if (r.status != 200) {
        fprintf(stderr, "the percent-encoded prefix: %d %s\n", r.status, r.body);
    }
    assert_true(hf_expect_status(&r, 200));
    assert_int_equal(int_of(r.json, "revoked"), 1);
    hf_response_free(&r);
    expect_hold(&fx->cl, id, "released", "encoded");
    r = call(&fx->cl, "POST", "/v1/identities/ip_prefix/198.51.100.0%2f24/revoke", NULL);
    assert_true(hf_expect_status(&r, 200));
    assert_int_equal(int_of(r.json, "revoked"), 1);
    hf_response_free(&r);
    expect_hold(&fx->cl, ids[3], "released", NULL);
    assert_true(hf_expect_sku(&fx->cl, "s", 100, 0, 2));
}

static void test_release_with_a_reason_needs_the_admin_key(void **state)
{
    fx_t *fx = *state;
    start_with(fx, NULL, KEYS);
    hf_client_t admin = {fx->srv.port, ADMIN_KEY, false}, shop = {fx->srv.port, SHOP_KEY, true};
    assert_int_equal(hf_sku_put(&admin, "s", 10), 201);
    char body[512], h1[HF_TEST_ID_MAX], h2[HF_TEST_ID_MAX], target[256];
    hold_json(body, sizeof body, "u-1", NULL, NULL, "s", 2, NULL);
    assert_int_equal(hf_hold_create(&shop, body, NULL, h1, NULL), 201);
    assert_int_equal(hf_hold_create(&shop, body, NULL, h2, NULL), 201);
    snprintf(target, sizeof target, "/v1/holds/%s", h1);
    call_expect_error(&shop, "DELETE", target, "{\"reason\": \"x\"}", 403, "forbidden", NULL);
    expect_hold(&shop, h1, "active", NULL);
    assert_true(hf_expect_sku(&admin, "s", 10, 4, 0));
    hf_response_t r = call(&admin, "DELETE", target, "{\"reason\": \"x\"}");
    assert_true(hf_expect_status(&r, 200));
    assert_string_equal(or_missing(hf_json_str(r.json, "state")), "released");
    assert_string_equal(or_missing(hf_json_str(r.json, "reason")), "x");
    hf_response_free(&r);
    expect_hold(&shop, h1, "released", "x");
    /* The shop releases without a reason, as ever. */
    snprintf(target, sizeof target, "/v1/holds/%s", h2);
    r = call(&shop, "DELETE", target, NULL);
    assert_true(hf_expect_status(&r, 200));
    assert_null(hf_json_str(r.json, "reason"));
    hf_response_free(&r);
    assert_true(hf_expect_sku(&admin, "s", 10, 0, 0));
}

/* ============================ 7. escalation ============================ */

static void test_escalation_refuses_holds_on_a_raided_sku_but_buy_now_sells(void **state)
{
    fx_t *fx = *state;
    start_with(fx, "{\"escalation\": {\"enabled\": 1}}", NULL);
    put_sku(fx, "calm", 1000);
    put_sku_body(fx, "hot",
                 "{\"stock\": 10, \"policy\": {\"escalation\": {\"min_holds\": 5, "
                 "\"conversion_pct\": 25, \"available_pct\": 50}}}",
                 201);
    /* The shop converts well elsewhere. */
    for (int i = 0; i < 10; i++) {
        char customer[32], order[32];
        snprintf(customer, sizeof customer, "calm-%d", i);
        snprintf(order, sizeof order, "o-calm-%d", i);
        buy_now_ok(fx, customer, "calm", 1, order);
    }
    json_t *sku = get_json(&fx->cl, "/v1/skus/hot");
    assert_string_equal(or_missing(hf_json_str(json_object_get(sku, "escalation"), "state")),
                        "normal");
    json_decref(sku);
    /* Carts that never pay, until the sku escalates: at least min_holds of
     * them and half the stock held (5 holds), within the stock (10). */
    char body[512];
    int held = 0;
    hf_response_t r = {0};
    for (int i = 1; i <= 10; i++) {
        char customer[32];
        snprintf(customer, sizeof customer, "raider-%d", i);
        r = post_hold(fx, hold_json(body, sizeof body, customer, NULL, NULL, "hot", 1, NULL), NULL);
        if (r.status != 201) {
            break;
        }
        held++;
        hf_response_free(&r);
    }
    fprintf(stderr, "escalation: %d holds before the first refusal\n", held);
    assert_true(held >= 5 && held <= 8);
    expect_denied(&r, "hold_share", 0, held, NULL, "hot");
    hf_response_free(&r);
    sku = get_json(&fx->cl, "/v1/skus/hot");
    const json_t *esc = json_object_get(sku, "escalation");
    assert_string_equal(or_missing(hf_json_str(esc, "state")), "escalated");
    assert_true(int_of(esc, "switches") >= 1);
    assert_true(hf_parse_instant(hf_json_str(esc, "since")) > 0);
    json_decref(sku);
    /* Buy now still sells; holds stay refused; the calm sku is untouched. */
    buy_now_ok(fx, "payer", "hot", 1, "o-hot-1");
    hold_denied(fx, hold_json(body, sizeof body, "raider-x", NULL, NULL, "hot", 1, NULL),
                "hold_share", 0, held, NULL, "hot");
    assert_true(hf_expect_sku(&fx->cl, "hot", 10, held, 1));
    hold_ok(fx, hold_json(body, sizeof body, "calm-buyer", NULL, NULL, "calm", 1, NULL), NULL);
    sku = get_json(&fx->cl, "/v1/skus/calm");
    assert_string_equal(or_missing(hf_json_str(json_object_get(sku, "escalation"), "state")),
                        "normal");
    json_decref(sku);
    char *m = scrape(fx);
    assert_true(metric(m, "holdfast_escalations_total{to=\"escalated\"}") >= 1);
    assert_true(metric(m, "holdfast_policy_denials_total{rule=\"hold_share\"}") >= 2);
    assert_true(metric(m, "holdfast_skus_escalated") == 1);
    free(m);
    char *log = read_text(fx->srv.log_path);
    assert_non_null(strstr(log, "escalated"));
    assert_non_null(strstr(log, "sku=hot"));
    free(log);
    /* The switch is state: a restart keeps the sku escalated. */
    restart(fx, SIGKILL);
    sku = get_json(&fx->cl, "/v1/skus/hot");
    esc = json_object_get(sku, "escalation");
    assert_string_equal(or_missing(hf_json_str(esc, "state")), "escalated");
    assert_true(int_of(esc, "switches") >= 1);
    json_decref(sku);
    hold_denied(fx, hold_json(body, sizeof body, "raider-y", NULL, NULL, "hot", 1, NULL),
                "hold_share", 0, held, NULL, "hot");
}

/* ======================= 8. durability of the defenses ======================= */

typedef struct {
    char waits[4][64];
    size_t wait_count;
    char holds[6][HF_TEST_ID_MAX];
    size_t hold_count;
} tracked_t;

/* Identities by "kind/value": counts exact, budget and risk apart. */
static void read_identities(const hf_client_t *cl, json_t *counts, json_t *budgets)
{
    const char *bys[] = {"held_units", "holds", "conversion"};
    for (size_t b = 0; b < 3; b++) {
        char target[128];
        snprintf(target, sizeof target, "/v1/identities/top?by=%s&limit=1000", bys[b]);
        json_t *top = get_json(cl, target);
        size_t i;
        const json_t *e;
        json_array_foreach(json_object_get(top, "identities"), i, e)
        {
            char key[300];
            snprintf(key, sizeof key, "%s/%s", or_missing(hf_json_str(e, "kind")),
                     or_missing(hf_json_str(e, "value")));
            json_t *c = json_pack(
                "{s:O,s:O,s:O,s:O}", "held_units", json_object_get(e, "held_units"), "holds",
                json_object_get(e, "holds"), "commits", json_object_get(e, "commits"),
                "holds_total", json_object_get(e, "holds_total"));
            json_object_set_new(counts, key, c);
            json_t *bud =
                json_pack("{s:O,s:O}", "budget_unit_s", json_object_get(e, "budget_unit_s"), "risk",
                          json_object_get(e, "risk"));
            json_object_set_new(budgets, key, bud);
        }
        json_decref(top);
    }
}

static void keep_keys(json_t *dst, const json_t *src, const char *const *keys)
{
    for (size_t i = 0; keys[i] != NULL; i++) {
        json_t *v = json_object_get(src, keys[i]);
        if (v != NULL) {
            json_object_set(dst, keys[i], v);
        }
    }
}

/* Everything the defenses keep, as the API shows it, minus what time moves. */
static json_t *read_defenses(const hf_client_t *cl, const tracked_t *t, json_t *budgets)
{
    json_t *s = json_object();
    json_object_set_new(s, "policy", get_json(cl, "/v1/policy"));
    const char *skus[] = {"plenty", "limited", "soldout"};
    static const char *const sku_keys[] = {"stock",      "held",     "sold",   "available",
                                           "escalation", "waitlist", "policy", NULL};
    for (size_t i = 0; i < 3; i++) {
        char target[128];
        snprintf(target, sizeof target, "/v1/skus/%s", skus[i]);
        json_t *sku = get_json(cl, target);
        json_t *kept = json_object();
        keep_keys(kept, sku, sku_keys);
        json_object_set_new(s, target, kept);
        json_decref(sku);
    }
    static const char *const wait_keys[] = {"id",       "sku",        "customer",    "qty", "state",
                                            "position", "created_at", "finished_at", NULL};
    static const char *const hold_keys[] = {"id",         "customer",   "state",       "lines",
                                            "created_at", "expires_at", "finished_at", "reason",
                                            "order_ref",  NULL};
    for (size_t i = 0; i < t->wait_count; i++) {
        char target[128];
        snprintf(target, sizeof target, "/v1/waitlist/%s", t->waits[i]);
        json_t *w = get_json(cl, target);
        json_t *kept = json_object();
        keep_keys(kept, w, wait_keys);
        json_t *hold = json_object_get(w, "hold");
        if (hold != NULL) {
            json_t *h = json_object();
            keep_keys(h, hold, hold_keys);
            json_object_set_new(kept, "hold", h);
        }
        json_object_set_new(s, target, kept);
        json_decref(w);
    }
    for (size_t i = 0; i < t->hold_count; i++) {
        char target[256];
        snprintf(target, sizeof target, "/v1/holds/%s", t->holds[i]);
        json_t *h = get_json(cl, target);
        json_t *kept = json_object();
        keep_keys(kept, h, hold_keys);
        json_object_set_new(s, target, kept);
        json_decref(h);
    }
    json_t *counts = json_object();
    read_identities(cl, counts, budgets);
    json_object_set_new(s, "identities", counts);
    return s;
}

/* The fastest refill in the durability tests' policy: the IP prefix's
 * 480,000 unit-s an hour, 134 unit-s a second. */
#define REFILL_UNIT_S_PER_S_MAX 134

/* Budgets refill and reputations decay with wall time: close, not equal. */
static void expect_budgets_close(const json_t *before, const json_t *after, long long elapsed_ms)
{
    double slack = (double)(elapsed_ms / 1000 + 1) * REFILL_UNIT_S_PER_S_MAX;
    const char *key;
    const json_t *b;
    json_object_foreach((json_t *)before, key, b)
    {
        const json_t *a = json_object_get(after, key);
        assert_non_null(a);
        double b0 = json_number_value(json_object_get(b, "budget_unit_s"));
        double a0 = json_number_value(json_object_get(a, "budget_unit_s"));
        double r0 = json_number_value(json_object_get(b, "risk"));
        double r1 = json_number_value(json_object_get(a, "risk"));
        if (!(a0 >= b0 - 0.5 && a0 <= b0 + slack) || !(r1 >= r0 - 0.01 && r1 <= r0 + 0.01)) {
            fprintf(stderr, "%s: budget %.3f -> %.3f, risk %.3f -> %.3f\n", key, b0, a0, r0, r1);
        }
        assert_true(a0 >= b0 - 0.5 && a0 <= b0 + slack);
        assert_true(r1 >= r0 - 0.01 && r1 <= r0 + 0.01);
    }
}

static void expect_same_after_restart(fx_t *fx, const tracked_t *t, int sig)
{
    json_t *budgets_before = json_object(), *budgets_after = json_object();
    long long t0 = hf_now_ms();
    json_t *before = read_defenses(&fx->cl, t, budgets_before);
    restart(fx, sig);
    json_t *after = read_defenses(&fx->cl, t, budgets_after);
    assert_true(json_same(before, after, sig == SIGKILL ? "after kill -9" : "after SIGTERM"));
    expect_budgets_close(budgets_before, budgets_after, hf_now_ms() - t0);
    json_decref(before);
    json_decref(after);
    json_decref(budgets_before);
    json_decref(budgets_after);
}

static void track_hold(tracked_t *t, const char *id)
{
    assert_true(t->hold_count < 6);
    snprintf(t->holds[t->hold_count++], HF_TEST_ID_MAX, "%s", id);
}

/* A request for the "limited" sku (every hold there needs a proof), its
 * challenge solved: a proof ready to spend. */
typedef struct {
    char body[512];
    char header[256];
} proof_t;

static void ready_proof(fx_t *fx, const char *customer, proof_t *p)
{
    challenge_t c;
    hold_json(p->body, sizeof p->body, customer, NULL, NULL, "limited", 1, NULL);
    challenge_and_solve(fx, p->body, &c, p->header, sizeof p->header);
}

static void spend_proof(fx_t *fx, const proof_t *p)
{
    hf_response_t r = post_hold(fx, p->body, p->header);
    assert_true(hf_expect_status(&r, 201));
    hf_response_free(&r);
}

static void revoke(fx_t *fx, const char *customer, long long count)
{
    char target[256];
    snprintf(target, sizeof target, "/v1/identities/customer/%s/revoke", customer);
    hf_response_t r = call(&fx->cl, "POST", target, "{\"reason\": \"troll\"}");
    assert_true(hf_expect_status(&r, 200));
    assert_int_equal(int_of(r.json, "revoked"), count);
    hf_response_free(&r);
}

static void defense_state_survives_restarts(fx_t *fx, const char *config)
{
    start_raw(fx, config);
    tracked_t t = {0};
    call_expect(&fx->cl, "PUT", "/v1/policy",
                "{\"quantity\": {\"line_qty_max\": 7}, \"hold_share\": {\"held_pct_max\": 100},"
                " \"budget\": {\"customer_unit_s\": 5000},"
                " \"challenge\": {\"base_bits\": 8, \"bits_max\": 12},"
                " \"waitlist\": {\"offer_ttl_ms\": 300000}}",
                200);
    put_sku(fx, "plenty", 100);
    put_sku(fx, "soldout", 1);
    put_sku_body(fx, "limited",
                 "{\"stock\": 20, \"policy\": {\"quantity\": {\"line_qty_max\": 2},"
                 " \"challenge\": {\"free_units\": 0}}}",
                 201);
    char body[512], id[HF_TEST_ID_MAX], blocker[HF_TEST_ID_MAX];
    hold_ok(fx, hold_json(body, sizeof body, "u-first", NULL, NULL, "soldout", 1, NULL), blocker);
    wait_t w;
    wait_join(fx, "soldout", "u-w1", 1, 1, &w);
    snprintf(t.waits[t.wait_count++], 64, "%s", w.id);
    wait_join(fx, "soldout", "u-w2", 1, 2, &w);
    snprintf(t.waits[t.wait_count++], 64, "%s", w.id);
    /* Part of a budget spent: 2 units x 600 s of 5000 unit-s. */
    hold_ok(fx, hold_json(body, sizeof body, "u-budget", "203.0.113.5", "fp-b", "plenty", 2, NULL),
            id);
    track_hold(&t, id);
    for (int i = 0; i < 2; i++) {
        hold_ok(fx,
                hold_json(body, sizeof body, "u-troll", "198.51.100.9", NULL, "plenty", 1, NULL),
                id);
        track_hold(&t, id);
    }
    revoke(fx, "u-troll", 2);
    proof_t spent, unused;
    ready_proof(fx, "u-pow", &spent);
    spend_proof(fx, &spent);
    ready_proof(fx, "u-pow2", &unused);

    expect_same_after_restart(fx, &t, SIGTERM);
    /* A spent proof stays spent; one issued before the restart still works. */
    proof_refused(fx, spent.body, spent.header, "limited");
    spend_proof(fx, &unused);

    /* More changes, then kill -9 right after the last acknowledged reply. */
    call_expect(&fx->cl, "PUT", "/v1/policy",
                "{\"quantity\": {\"line_qty_max\": 6}, \"hold_share\": {\"held_pct_max\": 100},"
                " \"budget\": {\"customer_unit_s\": 6000},"
                " \"challenge\": {\"base_bits\": 8, \"bits_max\": 12}}",
                200);
    put_sku_body(fx, "limited",
                 "{\"policy\": {\"quantity\": {\"line_qty_max\": 1},"
                 " \"challenge\": {\"free_units\": 0}}}",
                 200);
    wait_cancel(fx, t.waits[0], 200, "cancelled");
    wait_join(fx, "soldout", "u-w3", 1, 2, &w);
    snprintf(t.waits[t.wait_count++], 64, "%s", w.id);
    release(fx, blocker); /* u-w2 is offered the unit */
    hold_ok(fx, hold_json(body, sizeof body, "u-budget", "203.0.113.5", "fp-b", "plenty", 1, NULL),
            id);
    track_hold(&t, id);
    hold_ok(fx, hold_json(body, sizeof body, "u-troll2", "198.51.100.9", NULL, "plenty", 1, NULL),
            id);
    track_hold(&t, id);
    revoke(fx, "u-troll2", 1);
    ready_proof(fx, "u-pow3", &spent);
    spend_proof(fx, &spent);
    ready_proof(fx, "u-pow4", &unused);
    expect_same_after_restart(fx, &t, SIGKILL);
    proof_refused(fx, spent.body, spent.header, "limited");
    spend_proof(fx, &unused);
    wait_get(fx, t.waits[1], &w);
    assert_string_equal(w.state, "offered");
    wait_get(fx, t.waits[2], &w);
    assert_int_equal(w.position, 1);
}

static void test_defense_state_survives_sigterm_and_kill9(void **state)
{
    defense_state_survives_restarts(*state, "{}");
}

/* With a tiny compaction threshold the guard's state is read back from a
 * snapshot plus a journal tail. */
static void test_defense_state_survives_restarts_after_compactions(void **state)
{
    defense_state_survives_restarts(*state, "{\"compact_records\": 3}");
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_line_qty_denies_a_line_over_the_cap),
        T(test_refusals_by_rule_are_kept_for_the_first_4096_skus),
        T(test_customer_units_per_sku_counts_held_then_bought_units),
        T(test_customer_holds_and_units_caps),
        T(test_ip_prefix_caps_count_a_whole_network_together),
        T(test_fingerprint_caps_follow_a_browser_across_customers),
        T(test_hold_share_refuses_holds_but_buy_now_still_sells),
        T(test_customer_budget_denies_with_the_refill_time),
        T(test_challenge_round_trip_and_a_proof_is_single_use),
        T(test_challenge_refuses_proofs_for_other_requests_and_bad_proofs),
        T(test_challenge_proof_expires),
        T(test_genuine_buyers_are_never_challenged_or_denied_by_default),
        T(test_hoarder_one_customer_is_stopped_at_the_second_full_line),
        T(test_hoarder_rotating_ids_from_one_network_is_stopped_within_400_units),
        T(test_waitlist_offers_freed_units_first_in_first_out),
        T(test_a_join_retried_with_its_key_answers_its_entry_and_secret),
        T(test_waitlist_offer_that_expires_passes_to_the_next),
        T(test_waitlist_entry_too_big_to_serve_does_not_block_the_line),
        T(test_waitlist_turn_is_lost_by_a_network_over_its_caps),
        T(test_waitlist_cancel_and_refusals),
        T(test_reclaim_gives_a_stale_cart_to_the_waitlist),
        T(test_a_stale_proof_is_asked_again_at_todays_price),
        T(test_an_ordinary_cart_is_never_asked_twice),
        T(test_newcomer_pool_refuses_large_first_carts_and_offers_buy_now),
        T(test_policy_document_has_every_setting_and_put_resets_omitted_keys),
        T(test_policy_put_refuses_unknown_out_of_range_and_conflicting_settings),
        T(test_policy_needs_the_admin_key),
        T(test_sku_policy_applies_to_its_sku_only_and_can_be_cleared),
        T(test_sku_put_refused_for_its_policy_changes_nothing),
        T(test_identities_top_ranks_the_biggest_holders_first),
        T(test_revoke_releases_every_active_hold_with_the_reason),
        T(test_revoke_of_an_ip_prefix_takes_the_slash_raw_or_encoded),
        T(test_release_with_a_reason_needs_the_admin_key),
        T(test_escalation_refuses_holds_on_a_raided_sku_but_buy_now_sells),
        T(test_defense_state_survives_sigterm_and_kill9),
        T(test_defense_state_survives_restarts_after_compactions),
    };
#undef T
    return hf_tests_done(cmocka_run_group_tests_name("defense", tests, NULL, NULL));
}
