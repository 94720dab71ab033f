/*
 * test_audit.c - the audit trail of admin changes (GET /v1/audit,
 * docs/OBSERVABILITY.md): an entry for each kind of change with the key's
 * id, the route and what changed; journaled with the change, so it
 * survives a crash, a restart and a compaction; newest first in pages;
 * bounded by audit_max; for the admin key only.
 *
 * The fixture's configuration file sets a policy (every defense off), which
 * a new data directory applies at its first start: that is the trail's
 * first entry in every test here.
 */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hf_test_http.h"

typedef hf_fixture_t fx_t;

#define SHOP "shop-key-audit"
#define ADMIN "admin-key-audit"
#define KEYS "\"api_keys\": [\"" SHOP "\"], \"admin_key\": \"" ADMIN "\""

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

static hf_client_t as(const fx_t *fx, const char *key)
{
    return (hf_client_t){.port = fx->srv.port, .bearer = key, .secrets = false};
}

/* Starts with the keys and more config members ("\"k\": v, ..." or ""). */
static void start_with(fx_t *fx, const char *more)
{
    char config[512];
    snprintf(config, sizeof config, "{" KEYS "%s%s}", more[0] ? ", " : "", more);
    assert_int_equal(hf_server_write_config(&fx->srv, config), 0);
    assert_int_equal(hf_server_start(&fx->srv, NULL), 0);
    fx->cl.port = fx->srv.port;
}

static void restart(fx_t *fx, int sig)
{
    assert_int_equal(hf_server_stop(&fx->srv, sig), sig == SIGKILL ? 128 + SIGKILL : 0);
    assert_int_equal(hf_server_start(&fx->srv, NULL), 0);
    fx->cl.port = fx->srv.port;
}

static hf_response_t call(const hf_client_t *cl, const char *method, const char *target,
                          const char *headers, const char *body)
{
    hf_response_t r;
    assert_int_equal(hf_call(cl, method, target, headers, body, &r), 0);
    return r;
}

static void expect_call(const hf_client_t *cl, const char *method, const char *target,
                        const char *headers, const char *body, int status)
{
    hf_response_t r = call(cl, method, target, headers, body);
    if (r.status != status) {
        fprintf(stderr, "%s %s: %d %s\n", method, target, r.status, r.body);
    }
    assert_int_equal(r.status, status);
    hf_response_free(&r);
}

static void put_stock(const fx_t *fx, const char *sku, int stock, int status)
{
    char target[64], body[64];
    snprintf(target, sizeof target, "/v1/skus/%s", sku);
    snprintf(body, sizeof body, "{\"stock\": %d}", stock);
    hf_client_t admin = as(fx, ADMIN);
    expect_call(&admin, "PUT", target, NULL, body, status);
}

/* A hold of one unit by customer; its id and secret. */
static void hold(const fx_t *fx, const char *customer, const char *sku, char *id, char *secret)
{
    char body[256];
    snprintf(body, sizeof body, "{\"customer\": \"%s\", \"lines\": [{\"sku\": \"%s\", \"qty\": 1}]}",
             customer, sku);
    hf_client_t shop = as(fx, SHOP);
    hf_response_t r = call(&shop, "POST", "/v1/holds", NULL, body);
    assert_true(hf_expect_status(&r, 201));
    snprintf(id, HF_TEST_ID_MAX, "%s", or_missing(hf_json_str(r.json, "id")));
    snprintf(secret, HF_TEST_ID_MAX, "%s", or_missing(hf_json_str(r.json, "secret")));
    hf_response_free(&r);
}

/* GET /v1/audit with a query ("" for none), as the admin: the reply. */
static hf_response_t audit_page(const fx_t *fx, const char *query)
{
    char target[128];
    snprintf(target, sizeof target, "/v1/audit%s", query);
    hf_client_t admin = as(fx, ADMIN);
    hf_response_t r = call(&admin, "GET", target, NULL, NULL);
    return r;
}

/* The whole trail, newest first (a JSON array the caller frees). */
static json_t *audit_all(const fx_t *fx)
{
    hf_response_t r = audit_page(fx, "?limit=1000");
    assert_true(hf_expect_status(&r, 200));
    json_t *entries = json_object_get(r.json, "entries");
    assert_true(json_is_array(entries));
    assert_true(json_is_null(json_object_get(r.json, "next")));
    json_incref(entries);
    hf_response_free(&r);
    return entries;
}

static long long seq_of(const json_t *e)
{
    long long seq = -1;
    assert_true(hf_json_int(e, "seq", &seq));
    return seq;
}

/* Entry i (0: newest) has this action, target and change. */
static void expect_entry(const json_t *entries, size_t i, const char *action, const char *target,
                         const char *change)
{
    const json_t *e = json_array_get(entries, i);
    assert_non_null(e);
    const char *got_action = or_missing(hf_json_str(e, "action"));
    const char *got_target = or_missing(hf_json_str(e, "target"));
    const char *got_change = or_missing(hf_json_str(e, "change"));
    if (strcmp(got_action, action) != 0 || (target && strcmp(got_target, target) != 0) ||
        strstr(got_change, change) == NULL) {
        fprintf(stderr, "entry %zu: %s %s \"%s\"; wanted %s %s \"%s\"\n", i, got_action,
                got_target, got_change, action, target ? target : "*", change);
    }
    assert_string_equal(got_action, action);
    if (target != NULL) {
        assert_string_equal(got_target, target);
    }
    assert_non_null(strstr(got_change, change));
    assert_true(hf_parse_instant(hf_json_str(e, "at")) > 0);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)size + 1);
    assert_non_null(text);
    text[fread(text, 1, (size_t)size, f)] = '\0';
    fclose(f);
    return text;
}

/* The admin key's id as the server printed it at start. */
static void admin_key_id(const fx_t *fx, char *out)
{
    char *log = read_text(fx->srv.log_path);
    const char *at = strstr(log, "msg=\"key id\" role=admin key=");
    assert_non_null(at);
    snprintf(out, 9, "%s", at + strlen("msg=\"key id\" role=admin key="));
    free(log);
}

/* ================================ tests ================================ */

static void test_audit_has_an_entry_for_each_kind_of_admin_change(void **state)
{
    fx_t *fx = *state;
    start_with(fx, "");
    hf_client_t admin = as(fx, ADMIN), shop = as(fx, SHOP);
    put_stock(fx, "cap", 5, 201);
    put_stock(fx, "cap", 8, 200);
    expect_call(&admin, "PUT", "/v1/skus/cap", NULL,
                "{\"policy\": {\"escalation\": {\"min_holds\": 7}}}", 200);
    char id[HF_TEST_ID_MAX], secret[HF_TEST_ID_MAX], target[160], headers[160];
    hold(fx, "u-revoked", "cap", id, secret);
    expect_call(&admin, "POST", "/v1/identities/customer/u-revoked/revoke", NULL,
                "{\"reason\": \"hoarding\"}", 200);
    hold(fx, "u-released", "cap", id, secret);
    char released_id[HF_TEST_ID_MAX];
    snprintf(released_id, sizeof released_id, "%s", id);
    snprintf(target, sizeof target, "/v1/holds/%s", id);
    expect_call(&admin, "DELETE", target, NULL, "{\"reason\": \"stuck cart\"}", 200);
    hold(fx, "u-committed", "cap", id, secret);
    snprintf(target, sizeof target, "/v1/holds/%s/commit", id);
    expect_call(&admin, "POST", target, NULL, "{\"order_ref\": \"phone-1\"}", 200);
    /* The owner's own calls, with the secret, are the shop's business. */
    hold(fx, "u-owner", "cap", id, secret);
    snprintf(target, sizeof target, "/v1/holds/%s", id);
    snprintf(headers, sizeof headers, "Hold-Secret: %s\r\n", secret);
    expect_call(&shop, "DELETE", target, headers, NULL, 200);
    /* The shop's policy: the one in force with the waitlist switched on. */
    char policy[1024];
    snprintf(policy, sizeof policy, "%s", HF_POLICY_OFF);
    char *waitlist = strstr(policy, "\"waitlist\": {\"enabled\": 0}");
    assert_non_null(waitlist);
    waitlist[strlen("\"waitlist\": {\"enabled\": ")] = '1';
    expect_call(&admin, "PUT", "/v1/policy", NULL, policy, 200);
    /* A refused change leaves no entry. */
    put_stock(fx, "cap", -1, 400);
    expect_call(&admin, "PUT", "/v1/policy", NULL, "{\"nope\": 1}", 400);

    json_t *all = audit_all(fx);
    assert_int_equal(json_array_size(all), 8);
    expect_entry(all, 0, "policy", "shop", "waitlist.enabled 0 -> 1");
    expect_entry(all, 1, "hold_commit", NULL, "active -> committed; order_ref: phone-1");
    expect_entry(all, 2, "hold_release", released_id, "active -> released; reason: stuck cart");
    expect_entry(all, 3, "revoke", "customer:u-revoked", "1 active holds released; reason: hoarding");
    expect_entry(all, 4, "sku_policy", "cap", "escalation.min_holds ");
    expect_entry(all, 5, "stock", "cap", "stock 5 -> 8");
    expect_entry(all, 6, "stock", "cap", "new sku, stock 5");
    expect_entry(all, 7, "policy", "shop", "");
    char key[16];
    admin_key_id(fx, key);
    const json_t *commit = json_array_get(all, 1);
    assert_string_equal(or_missing(hf_json_str(commit, "key")), key);
    assert_string_equal(or_missing(hf_json_str(commit, "route")), "POST /v1/holds/{id}/commit");
    assert_string_equal(or_missing(hf_json_str(json_array_get(all, 0), "route")), "PUT /v1/policy");
    assert_string_equal(or_missing(hf_json_str(json_array_get(all, 5), "route")),
                        "PUT /v1/skus/{sku}");
    /* The configuration file's policy, applied at the first start, by no key. */
    const json_t *first = json_array_get(all, 7);
    assert_int_equal(seq_of(first), 1);
    assert_true(json_is_null(json_object_get(first, "key")));
    for (size_t i = 0; i < 8; i++) {
        assert_int_equal(seq_of(json_array_get(all, i)), 8 - (long long)i);
    }
    /* Nothing in it lets a reader touch a hold or use a key. */
    char *text = json_dumps(all, 0);
    assert_null(strstr(text, ADMIN));
    assert_null(strstr(text, "hs_"));
    free(text);
    json_decref(all);
}

static void test_audit_is_for_the_admin_key_only(void **state)
{
    fx_t *fx = *state;
    start_with(fx, "");
    hf_client_t shop = as(fx, SHOP), none = as(fx, NULL);
    hf_response_t r = call(&shop, "GET", "/v1/audit", NULL, NULL);
    assert_true(hf_expect_error(&r, 403, "forbidden", NULL));
    hf_response_free(&r);
    r = call(&none, "GET", "/v1/audit", NULL, NULL);
    assert_true(hf_expect_error(&r, 401, "unauthorized", NULL));
    hf_response_free(&r);
    hf_client_t admin = as(fx, ADMIN);
    expect_call(&admin, "POST", "/v1/audit", NULL, "{}", 405);
}

static bool has_snapshot(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    bool found = false;
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
        found = found || strncmp(e->d_name, "snapshot-", 9) == 0;
    }
    closedir(d);
    return found;
}

/* The trail is journaled with the changes and carried by every snapshot:
 * a compaction that deletes the journal behind a snapshot, a clean stop
 * and a crash all leave it whole. */
static void test_audit_survives_restarts_crashes_and_compaction(void **state)
{
    fx_t *fx = *state;
    start_with(fx, "\"compact_records\": 4");
    for (int i = 1; i <= 12; i++) {
        put_stock(fx, "cap", i, i == 1 ? 201 : 200);
    }
    json_t *before = audit_all(fx);
    assert_int_equal(json_array_size(before), 13);
    restart(fx, SIGTERM);
    assert_true(has_snapshot(fx->srv.data_dir));
    json_t *after = audit_all(fx);
    assert_true(json_equal(before, after));
    json_decref(after);
    put_stock(fx, "cap", 99, 200); /* acknowledged, then the server dies */
    restart(fx, SIGKILL);
    after = audit_all(fx);
    assert_int_equal(json_array_size(after), 14);
    expect_entry(after, 0, "stock", "cap", "stock 12 -> 99");
    assert_int_equal(seq_of(json_array_get(after, 0)), 14);
    assert_true(json_equal(json_array_get(after, 1), json_array_get(before, 0)));
    expect_entry(after, 12, "stock", "cap", "new sku, stock 1");
    json_decref(after);
    json_decref(before);
}

static void test_audit_pages_newest_first(void **state)
{
    fx_t *fx = *state;
    start_with(fx, "");
    for (int i = 1; i <= 6; i++) {
        put_stock(fx, "cap", i, i == 1 ? 201 : 200); /* seq 2..7 */
    }
    char query[64] = "?limit=3";
    long long want = 7;
    int pages = 0;
    for (;;) {
        hf_response_t r = audit_page(fx, query);
        assert_true(hf_expect_status(&r, 200));
        const json_t *entries = json_object_get(r.json, "entries");
        assert_true(json_array_size(entries) >= 1 && json_array_size(entries) <= 3);
        for (size_t i = 0; i < json_array_size(entries); i++) {
            assert_int_equal(seq_of(json_array_get(entries, i)), want--);
        }
        pages++;
        const char *next = hf_json_str(r.json, "next");
        if (next == NULL) {
            assert_true(json_is_null(json_object_get(r.json, "next")));
            hf_response_free(&r);
            break;
        }
        snprintf(query, sizeof query, "?limit=3&after=%s", next);
        hf_response_free(&r);
        assert_true(pages < 10);
    }
    assert_int_equal(pages, 3);
    assert_int_equal(want, 0);
    /* Without a limit: the default page holds them all. */
    hf_response_t r = audit_page(fx, "");
    assert_true(hf_expect_status(&r, 200));
    assert_int_equal(json_array_size(json_object_get(r.json, "entries")), 7);
    hf_response_free(&r);
    /* Past the oldest: an empty page. */
    r = audit_page(fx, "?after=1");
    assert_true(hf_expect_status(&r, 200));
    assert_int_equal(json_array_size(json_object_get(r.json, "entries")), 0);
    assert_true(json_is_null(json_object_get(r.json, "next")));
    hf_response_free(&r);
}

static void test_audit_keeps_the_last_audit_max_entries(void **state)
{
    fx_t *fx = *state;
    start_with(fx, "\"audit_max\": 4, \"compact_records\": 3");
    for (int i = 1; i <= 6; i++) {
        put_stock(fx, "cap", i, i == 1 ? 201 : 200); /* seq 2..7 */
    }
    json_t *all = audit_all(fx);
    assert_int_equal(json_array_size(all), 4);
    assert_int_equal(seq_of(json_array_get(all, 0)), 7);
    assert_int_equal(seq_of(json_array_get(all, 3)), 4);
    expect_entry(all, 0, "stock", "cap", "stock 5 -> 6");
    hf_response_t r = audit_page(fx, "");
    long long kept_max = 0;
    assert_true(hf_json_int(r.json, "kept_max", &kept_max));
    assert_int_equal(kept_max, 4);
    hf_response_free(&r);
    restart(fx, SIGKILL);
    json_t *after = audit_all(fx);
    assert_true(json_equal(all, after));
    json_decref(after);
    json_decref(all);
}

static void test_audit_bad_params_are_400(void **state)
{
    fx_t *fx = *state;
    start_with(fx, "");
    const struct {
        const char *query, *field;
    } bad[] = {
        {"?limit=0", "limit"},    {"?limit=1001", "limit"}, {"?limit=x", "limit"},
        {"?limit=", "limit"},     {"?after=0", "after"},      {"?after=abc", "after"},
        {"?after=-3", "after"},     {"?after=1e3", "after"},    {"?after=", "after"},
        {"?after=99999999999999999999", "after"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hf_response_t r = audit_page(fx, bad[i].query);
        if (r.status != 400) {
            fprintf(stderr, "%s: %d %s\n", bad[i].query, r.status, r.body);
        }
        assert_true(hf_expect_error(&r, 400, "invalid_field", bad[i].field));
        hf_response_free(&r);
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_audit_has_an_entry_for_each_kind_of_admin_change),
        T(test_audit_is_for_the_admin_key_only),
        T(test_audit_survives_restarts_crashes_and_compaction),
        T(test_audit_pages_newest_first),
        T(test_audit_keeps_the_last_audit_max_entries),
        T(test_audit_bad_params_are_400),
    };
    return hf_tests_done(cmocka_run_group_tests(tests, NULL, NULL));
}
