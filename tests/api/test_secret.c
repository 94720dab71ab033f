/*
 * test_secret.c - holds only their owner can touch.
 *
 * The promise under test (README, "Hold ids and secrets"): a hold's id on
 * the wire cannot be guessed from another's, and with a shop key a hold is
 * read, extended, committed or released only with the secret that the reply
 * creating it handed out (Hold-Secret); a waitlist entry likewise
 * (Waitlist-Secret), and the hold it offers comes with its secret. A
 * refusal changes nothing. The admin key needs no secret. The key behind
 * ids and secrets is the data directory's (holdfast.key): it survives a
 * crash, differs from one data directory to the next, and a damaged one
 * stops the start.
 *
 * These tests send Hold-Secret themselves (the clients here remember
 * nothing), so every header is checked where it is written.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "hf_test_http.h"

typedef hf_fixture_t fx_t;

#define SHOP "shop-k"
#define ADMIN "admin-k"
#define KEYS "\"api_keys\": [\"" SHOP "\"], \"admin_key\": \"" ADMIN "\""

static int setup(void **state)
{
    return hf_fixture_setup(state, "{" KEYS "}", false);
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

static const char *or_missing(const char *s)
{
    return s != NULL ? s : "(missing)";
}

/* A hold as its create's reply handed it over. */
typedef struct {
    char id[HF_TEST_ID_MAX];
    char secret[HF_TEST_ID_MAX];
    char expires_at[40];
} hold_t;

static hf_client_t as(const fx_t *fx, const char *key)
{
    return (hf_client_t){.port = fx->srv.port, .bearer = key, .secrets = false};
}

static void put_sku(fx_t *fx, const char *sku, long long stock)
{
    hf_client_t admin = as(fx, ADMIN);
    int status = hf_sku_put(&admin, sku, stock);
    assert_true(status == 200 || status == 201);
}

/* POST /v1/holds with the shop key; the reply must be a 201 with an id in
 * the wire's spelling and a secret. */
static void hold_as_shop(fx_t *fx, const char *customer, const char *sku, const char *idem,
                         hold_t *h)
{
    char body[256], headers[128] = "";
    snprintf(body, sizeof body,
             "{\"customer\": \"%s\", \"lines\": [{\"sku\": \"%s\", \"qty\": 1}]}", customer,
             sku);
    if (idem != NULL) {
        snprintf(headers, sizeof headers, "Idempotency-Key: %s\r\n", idem);
    }
    hf_client_t shop = as(fx, SHOP);
    hf_response_t r;
    assert_int_equal(hf_call(&shop, "POST", "/v1/holds", headers, body, &r), 0);
    assert_true(hf_expect_status(&r, 201));
    const char *id = or_missing(hf_json_str(r.json, "id"));
    const char *secret = or_missing(hf_json_str(r.json, "secret"));
    assert_int_equal(strlen(id), 16);
    assert_memory_equal(id, "hold_", 5);
    assert_int_equal(strlen(secret), 25);
    assert_memory_equal(secret, "hs_", 3);
    snprintf(h->id, sizeof h->id, "%s", id);
    snprintf(h->secret, sizeof h->secret, "%s", secret);
    snprintf(h->expires_at, sizeof h->expires_at, "%s",
             or_missing(hf_json_str(r.json, "expires_at")));
    hf_response_free(&r);
}

/* One call about a hold; secret NULL sends no Hold-Secret. */
static hf_response_t on_hold(const hf_client_t *cl, const char *method, const hold_t *h,
                             const char *action, const char *body, const char *secret)
{
    char target[256], headers[256] = "";
    snprintf(target, sizeof target, "/v1/holds/%s%s%s", h->id, action ? "/" : "",
             action ? action : "");
    if (secret != NULL) {
        snprintf(headers, sizeof headers, "Hold-Secret: %s\r\n", secret);
    }
    hf_response_t r;
    assert_int_equal(hf_call(cl, method, target, headers, body, &r), 0);
    return r;
}

static void expect_refused(const hf_client_t *cl, const char *method, const hold_t *h,
                           const char *action, const char *body, const char *secret,
                           const char *code)
{
    hf_response_t r = on_hold(cl, method, h, action, body, secret);
    assert_true(hf_expect_error(&r, 403, code, NULL));
    hf_response_free(&r);
}

/* The hold as the admin reads it: its state and expiry. */
static void expect_hold(fx_t *fx, const hold_t *h, const char *state, const char *expires_at)
{
    hf_client_t admin = as(fx, ADMIN);
    hf_response_t r = on_hold(&admin, "GET", h, NULL, NULL, NULL);
    assert_true(hf_expect_status(&r, 200));
    assert_string_equal(or_missing(hf_json_str(r.json, "id")), h->id);
    assert_string_equal(or_missing(hf_json_str(r.json, "state")), state);
    if (expires_at != NULL) {
        assert_string_equal(or_missing(hf_json_str(r.json, "expires_at")), expires_at);
    }
    assert_null(json_object_get(r.json, "secret")); /* handed out once, at the create */
    hf_response_free(&r);
}

static long long metric(fx_t *fx, const char *name)
{
    hf_client_t admin = as(fx, ADMIN);
    hf_response_t r;
    assert_int_equal(hf_call(&admin, "GET", "/metrics", NULL, NULL, &r), 0);
    assert_true(hf_expect_status(&r, 200));
    const char *line = strstr(r.body, name);
    long long v = line != NULL ? strtoll(line + strlen(name), NULL, 10) : -1;
    hf_response_free(&r);
    return v;
}

#define HOLD_METRIC(outcome) "holdfast_secret_checks_total{kind=\"hold\",outcome=\"" outcome "\"} "

/* ---- a shop key needs the secret ---- */

static void test_a_shop_key_touches_a_hold_only_with_its_secret(void **state)
{
    fx_t *fx = *state;
    start(fx, NULL);
    put_sku(fx, "cap", 10);
    hold_t mine, other;
    hold_as_shop(fx, "u-1", "cap", NULL, &mine);
    hold_as_shop(fx, "u-2", "cap", NULL, &other);
    hf_client_t shop = as(fx, SHOP);
    static const struct {
        const char *method, *action, *body;
    } ops[] = {{"GET", NULL, NULL},
               {"POST", "extend", "{\"ttl_ms\": 3600000}"},
               {"POST", "commit", "{\"order_ref\": \"o-1\"}"},
               {"DELETE", NULL, NULL}};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        expect_refused(&shop, ops[i].method, &mine, ops[i].action, ops[i].body, NULL,
                       "hold_secret_required");
        expect_refused(&shop, ops[i].method, &mine, ops[i].action, ops[i].body, other.secret,
                       "hold_secret_wrong");
        expect_refused(&shop, ops[i].method, &mine, ops[i].action, ops[i].body, "hs_short",
                       "hold_secret_wrong");
        expect_refused(&shop, ops[i].method, &mine, ops[i].action, ops[i].body, "",
                       "hold_secret_wrong");
    }
    /* Nothing changed. */
    expect_hold(fx, &mine, "active", mine.expires_at);
    assert_true(hf_expect_sku(&shop, "cap", 10, 2, 0));
    assert_int_equal(metric(fx, HOLD_METRIC("missing")), 4);
    assert_int_equal(metric(fx, HOLD_METRIC("wrong")), 12);
    /* With its secret, the owner does all of it. */
    hf_response_t r = on_hold(&shop, "GET", &mine, NULL, NULL, mine.secret);
    assert_true(hf_expect_status(&r, 200));
    assert_string_equal(or_missing(hf_json_str(r.json, "id")), mine.id);
    assert_null(json_object_get(r.json, "secret"));
    hf_response_free(&r);
    r = on_hold(&shop, "POST", &mine, "extend", "{\"ttl_ms\": 3600000}", mine.secret);
    assert_true(hf_expect_status(&r, 200));
    hf_response_free(&r);
    r = on_hold(&shop, "POST", &mine, "commit", "{\"order_ref\": \"o-1\"}", mine.secret);
    assert_true(hf_expect_status(&r, 200));
    assert_string_equal(or_missing(hf_json_str(r.json, "state")), "committed");
    hf_response_free(&r);
    r = on_hold(&shop, "DELETE", &other, NULL, NULL, other.secret);
    assert_true(hf_expect_status(&r, 200));
    assert_string_equal(or_missing(hf_json_str(r.json, "state")), "released");
    hf_response_free(&r);
    assert_true(hf_expect_sku(&shop, "cap", 10, 0, 1));
    assert_int_equal(metric(fx, HOLD_METRIC("good")), 4);
}

static void test_the_admin_key_needs_no_secret_but_a_wrong_one_is_refused(void **state)
{
    fx_t *fx = *state;
    start(fx, NULL);
    put_sku(fx, "cap", 10);
    hold_t a, b;
    hold_as_shop(fx, "u-1", "cap", NULL, &a);
    hold_as_shop(fx, "u-2", "cap", NULL, &b);
    hf_client_t admin = as(fx, ADMIN);
    /* A secret that is sent is checked, whoever sends it. */
    expect_refused(&admin, "DELETE", &a, NULL, NULL, b.secret, "hold_secret_wrong");
    expect_hold(fx, &a, "active", a.expires_at);
    hf_response_t r = on_hold(&admin, "POST", &a, "extend", "{\"ttl_ms\": 3600000}", NULL);
    assert_true(hf_expect_status(&r, 200));
    hf_response_free(&r);
    r = on_hold(&admin, "POST", &a, "commit", NULL, NULL);
    assert_true(hf_expect_status(&r, 200));
    hf_response_free(&r);
    r = on_hold(&admin, "DELETE", &b, NULL, "{\"reason\": \"an operator's\"}", NULL);
    assert_true(hf_expect_status(&r, 200));
    assert_string_equal(or_missing(hf_json_str(r.json, "state")), "released");
    hf_response_free(&r);
    assert_true(hf_expect_sku(&admin, "cap", 10, 0, 1));
    assert_true(metric(fx, HOLD_METRIC("admin")) >= 3);
}

static void test_an_idempotent_replay_returns_the_same_id_and_secret(void **state)
{
    fx_t *fx = *state;
    start(fx, NULL);
    put_sku(fx, "cap", 10);
    hold_t first, again;
    hold_as_shop(fx, "u-1", "cap", "cart-7", &first);
    hold_as_shop(fx, "u-1", "cap", "cart-7", &again);
    assert_string_equal(again.id, first.id);
    assert_string_equal(again.secret, first.secret);
    hf_client_t shop = as(fx, SHOP);
    assert_true(hf_expect_sku(&shop, "cap", 10, 1, 0));
    hf_response_t r = on_hold(&shop, "DELETE", &first, NULL, NULL, again.secret);
    assert_true(hf_expect_status(&r, 200));
    hf_response_free(&r);
}

/* ---- ids that cannot be guessed ---- */

/* The number an id's 11 base62 digits spell. */
static unsigned long long id_value(const char *id)
{
    static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    unsigned long long v = 0;
    for (const char *p = id + 5; *p != '\0'; p++) {
        const char *d = strchr(digits, *p);
        assert_non_null(d);
        v = v * 62 + (unsigned long long)(d - digits);
    }
    return v;
}

static void spell(unsigned long long v, const char *prefix, int width, char *out)
{
    static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    char rev[16];
    int n = 0;
    do {
        rev[n++] = digits[v % 62];
        v /= 62;
    } while (v > 0 || n < width);
    size_t p = strlen(prefix);
    memcpy(out, prefix, p);
    for (int i = 0; i < n; i++) {
        out[p + (size_t)i] = rev[n - 1 - i];
    }
    out[p + (size_t)n] = '\0';
}

static void test_consecutive_holds_get_unrelated_ids_and_guesses_learn_nothing(void **state)
{
    fx_t *fx = *state;
    start(fx, NULL);
    put_sku(fx, "cap", 100);
    enum { N = 20 };
    hold_t h[N];
    for (int i = 0; i < N; i++) {
        hold_as_shop(fx, "u-1", "cap", NULL, &h[i]);
    }
    /* A counter would make neighbours differ by a little; a keyed
     * permutation by anything (under 2^32 apart: 1 in 2^31 by chance). */
    for (int i = 1; i < N; i++) {
        unsigned long long a = id_value(h[i - 1].id), b = id_value(h[i].id);
        unsigned long long gap = a > b ? a - b : b - a;
        if (gap < (1ull << 32)) {
            fprintf(stderr, "ids %s and %s are %llu apart\n", h[i - 1].id, h[i].id, gap);
        }
        assert_true(gap >= (1ull << 32));
        assert_string_not_equal(h[i].secret, h[i - 1].secret);
    }
    /* The neighbours of a real id: refused alike whether or not they name
     * a hold, so a guess tells nothing; the admin finds nothing there. */
    hf_client_t shop = as(fx, SHOP), admin = as(fx, ADMIN);
    for (int delta = -1; delta <= 1; delta += 2) {
        hold_t guess = {0};
        spell(id_value(h[0].id) + (unsigned long long)delta, "hold_", 11, guess.id);
        expect_refused(&shop, "DELETE", &guess, NULL, NULL, NULL, "hold_secret_required");
        expect_refused(&shop, "DELETE", &guess, NULL, NULL, h[0].secret, "hold_secret_wrong");
        hf_response_t r = on_hold(&admin, "GET", &guess, NULL, NULL, NULL);
        assert_true(hf_expect_error(&r, 404, "not_found", NULL));
        hf_response_free(&r);
    }
    /* The engine's own spelling of the first hold (sequence 1, slot 0):
     * this data directory never gave it out, so it names nothing. */
    hold_t engine = {0};
    spell(1ull << 28, "h_", 1, engine.id);
    hf_response_t r = on_hold(&admin, "GET", &engine, NULL, NULL, NULL);
    assert_true(hf_expect_error(&r, 404, "not_found", NULL));
    hf_response_free(&r);
    r = on_hold(&shop, "DELETE", &engine, NULL, NULL, h[0].secret);
    assert_true(hf_expect_error(&r, 404, "not_found", NULL));
    hf_response_free(&r);
    assert_true(hf_expect_sku(&shop, "cap", 100, N, 0));
}

static void key_path(const fx_t *fx, char *out, size_t size)
{
    snprintf(out, size, "%s/holdfast.key", fx->srv.data_dir);
}

static void expect_key_file(const fx_t *fx)
{
    char path[256];
    key_path(fx, path, sizeof path);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 64);
    assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_another_data_directory_gives_other_ids_and_secrets(void **state)
{
    HF_SKIP_WITH_PG(); /* the data directory's own */
    fx_t *fx = *state;
    hf_server_t other;
    assert_int_equal(hf_server_init(&other), 0);
    assert_int_equal(hf_server_write_config(&other, "{" KEYS "}"), 0);
    assert_int_equal(hf_server_start(&other, NULL), 0);
    start(fx, NULL);
    fx_t there = {.srv = other};
    there.cl.port = other.port;
    hold_t here_h, there_h;
    put_sku(fx, "cap", 10);
    put_sku(&there, "cap", 10);
    hold_as_shop(fx, "u-1", "cap", NULL, &here_h);
    hold_as_shop(&there, "u-1", "cap", NULL, &there_h);
    /* The same first hold of the same shop: a key of its own each. */
    assert_string_not_equal(here_h.id, there_h.id);
    assert_string_not_equal(here_h.secret, there_h.secret);
    hf_client_t shop_there = as(&there, SHOP);
    expect_refused(&shop_there, "GET", &there_h, NULL, NULL, here_h.secret, "hold_secret_wrong");
    expect_key_file(fx);
    expect_key_file(&there);
    assert_int_equal(hf_server_stop(&other, SIGTERM), 0);
    assert_int_equal(hf_server_deinit(&other), 0);
}

/* ---- the key survives ---- */

static void read_file(const char *path, unsigned char *out, size_t size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(out, 1, size, f), size);
    fclose(f);
}

static void write_file(const char *path, const unsigned char *bytes, size_t size)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, size, f), size);
    assert_int_equal(fclose(f), 0);
}

static void test_ids_and_secrets_survive_kill9(void **state)
{
    HF_SKIP_WITH_PG(); /* the data directory's own */
    fx_t *fx = *state;
    start(fx, NULL);
    put_sku(fx, "cap", 10);
    hold_t a, b;
    hold_as_shop(fx, "u-1", "cap", NULL, &a);
    hold_as_shop(fx, "u-2", "cap", "cart-b", &b);
    char path[256];
    key_path(fx, path, sizeof path);
    unsigned char before[64], after[64];
    read_file(path, before, sizeof before);
    assert_int_equal(hf_server_stop(&fx->srv, SIGKILL), 128 + SIGKILL);
    start(fx, NULL);
    read_file(path, after, sizeof after);
    assert_memory_equal(before, after, sizeof before);
    /* The same id names the same hold, and its secret still opens it. */
    hf_client_t shop = as(fx, SHOP);
    hf_response_t r = on_hold(&shop, "GET", &a, NULL, NULL, a.secret);
    assert_true(hf_expect_status(&r, 200));
    assert_string_equal(or_missing(hf_json_str(r.json, "customer")), "u-1");
    assert_string_equal(or_missing(hf_json_str(r.json, "expires_at")), a.expires_at);
    hf_response_free(&r);
    r = on_hold(&shop, "POST", &b, "commit", NULL, b.secret);
    assert_true(hf_expect_status(&r, 200));
    assert_string_equal(or_missing(hf_json_str(r.json, "customer")), "u-2");
    hf_response_free(&r);
    hold_t replay;
    hold_as_shop(fx, "u-2", "cap", "cart-b", &replay);
    assert_string_equal(replay.id, b.id);
    assert_string_equal(replay.secret, b.secret);
    expect_refused(&shop, "DELETE", &a, NULL, NULL, b.secret, "hold_secret_wrong");
    assert_true(hf_expect_sku(&shop, "cap", 10, 1, 1));
}

/* serve on fx's data directory must stop at once, saying why. */
static void expect_start_refused(fx_t *fx, const char *mention)
{
    const char *argv[] = {"serve", "--listen", "127.0.0.1:0", "--data", fx->srv.data_dir,
                          "--config", fx->srv.config_path, NULL};
    hf_run_result_t *res = calloc(1, sizeof *res);
    assert_non_null(res);
    int status = hf_run(argv, HF_TEST_START_MS, res);
    if (status == 0 || status == -1 || strstr(res->err, mention) == NULL) {
        fprintf(stderr, "serve exited %d:\n%s\n", status, res->err);
    }
    assert_true(status > 0 && status < 128);
    assert_non_null(strstr(res->err, mention));
    free(res);
}

static void test_a_damaged_key_file_stops_the_start(void **state)
{
    HF_SKIP_WITH_PG(); /* the data directory's own */
    fx_t *fx = *state;
    start(fx, NULL);
    put_sku(fx, "cap", 10);
    hold_t a;
    hold_as_shop(fx, "u-1", "cap", NULL, &a);
    assert_int_equal(hf_server_stop(&fx->srv, SIGTERM), 0);
    char path[256];
    key_path(fx, path, sizeof path);
    unsigned char good[64], bad[64];
    read_file(path, good, sizeof good);
    /* cut short */
    write_file(path, good, 40);
    expect_start_refused(fx, "holdfast.key is damaged");
    /* one bit off */
    memcpy(bad, good, sizeof bad);
    bad[20] ^= 1;
    write_file(path, bad, sizeof bad);
    expect_start_refused(fx, "holdfast.key is damaged");
    /* not a file that can be read */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(mkdir(path, 0700), 0);
    expect_start_refused(fx, "cannot read");
    assert_int_equal(rmdir(path), 0);
    write_file(path, good, sizeof good);
    assert_int_equal(chmod(path, 0600), 0);
    /* The good one back: nothing was lost, nothing was made anew. */
    start(fx, NULL);
    hf_client_t shop = as(fx, SHOP);
    hf_response_t r = on_hold(&shop, "DELETE", &a, NULL, NULL, a.secret);
    assert_true(hf_expect_status(&r, 200));
    hf_response_free(&r);
    unsigned char now[64];
    read_file(path, now, sizeof now);
    assert_memory_equal(now, good, sizeof good);
}

/* ---- the migration switch ---- */

static void test_optional_secrets_let_old_clients_through_and_count_them(void **state)
{
    fx_t *fx = *state;
    const char *optional[] = {"--hold-secret", "optional", NULL};
    start(fx, optional);
    put_sku(fx, "cap", 10);
    hold_t a, b;
    hold_as_shop(fx, "u-1", "cap", NULL, &a);
    hold_as_shop(fx, "u-2", "cap", NULL, &b);
    hf_client_t shop = as(fx, SHOP);
    hf_response_t r = on_hold(&shop, "GET", &a, NULL, NULL, NULL);
    assert_true(hf_expect_status(&r, 200));
    hf_response_free(&r);
    r = on_hold(&shop, "POST", &a, "commit", NULL, NULL);
    assert_true(hf_expect_status(&r, 200));
    hf_response_free(&r);
    /* A client that sends a secret gets it checked all the same. */
    expect_refused(&shop, "DELETE", &b, NULL, NULL, a.secret, "hold_secret_wrong");
    r = on_hold(&shop, "DELETE", &b, NULL, NULL, b.secret);
    assert_true(hf_expect_status(&r, 200));
    hf_response_free(&r);
    assert_int_equal(metric(fx, HOLD_METRIC("missing_allowed")), 2);
    assert_int_equal(metric(fx, HOLD_METRIC("missing")), 0);
    assert_int_equal(metric(fx, HOLD_METRIC("good")), 1);
    /* Switched to required, the same request is refused. */
    assert_int_equal(hf_server_stop(&fx->srv, SIGTERM), 0);
    start(fx, NULL);
    shop = as(fx, SHOP);
    expect_refused(&shop, "GET", &a, NULL, NULL, NULL, "hold_secret_required");
    assert_true(hf_expect_sku(&shop, "cap", 10, 0, 1));
}

static void test_a_bad_hold_secret_mode_stops_the_start(void **state)
{
    (void)state;
    const char *argv[] = {"serve", "--hold-secret", "sometimes", NULL};
    hf_run_result_t *res = calloc(1, sizeof *res);
    assert_non_null(res);
    assert_int_equal(hf_run(argv, HF_TEST_START_MS, res), 2);
    assert_non_null(strstr(res->err, "--hold-secret"));
    free(res);
}

/* ---- the waitlist hands a hold over ---- */

/* Every defense off but the waitlist. */
static char *waitlist_config(void)
{
    const char *off = HF_POLICY_OFF;
    const char *from = "\"waitlist\": {\"enabled\": 0}";
    const char *at = strstr(off, from);
    assert_non_null(at);
    size_t size = strlen(off) + strlen(KEYS) + 64;
    char *config = malloc(size);
    assert_non_null(config);
    snprintf(config, size, "{%s, \"policy\": %.*s\"waitlist\": {\"enabled\": 1}%s}", KEYS,
             (int)(at - off), off, at + strlen(from));
    return config;
}

static hf_response_t on_entry(const hf_client_t *cl, const char *method, const char *id,
                              const char *secret)
{
    char target[256], headers[256] = "";
    snprintf(target, sizeof target, "/v1/waitlist/%s", id);
    if (secret != NULL) {
        snprintf(headers, sizeof headers, "Waitlist-Secret: %s\r\n", secret);
    }
    hf_response_t r;
    assert_int_equal(hf_call(cl, method, target, headers, NULL, &r), 0);
    return r;
}

static void test_a_waitlist_offer_reaches_only_the_buyer_who_waited(void **state)
{
    fx_t *fx = *state;
    char *config = waitlist_config();
    assert_int_equal(hf_server_write_config_raw(&fx->srv, config), 0);
    free(config);
    start(fx, NULL);
    put_sku(fx, "seat", 1);
    hold_t first;
    hold_as_shop(fx, "u-1", "seat", NULL, &first);
    hf_client_t shop = as(fx, SHOP), admin = as(fx, ADMIN);
    hf_response_t r;
    assert_int_equal(hf_call(&shop, "POST", "/v1/skus/seat/waitlist", NULL,
                             "{\"customer\": \"u-2\", \"qty\": 1}", &r),
                     0);
    assert_true(hf_expect_status(&r, 201));
    char id[HF_TEST_ID_MAX], secret[HF_TEST_ID_MAX];
    snprintf(id, sizeof id, "%s", or_missing(hf_json_str(r.json, "id")));
    snprintf(secret, sizeof secret, "%s", or_missing(hf_json_str(r.json, "secret")));
    hf_response_free(&r);
    assert_int_equal(strlen(secret), 25);
    assert_memory_equal(secret, "ws_", 3);
    /* Without the entry's secret, no one reads it or takes the buyer out. */
    r = on_entry(&shop, "GET", id, NULL);
    assert_true(hf_expect_error(&r, 403, "waitlist_secret_required", NULL));
    hf_response_free(&r);
    r = on_entry(&shop, "DELETE", id, first.secret);
    assert_true(hf_expect_error(&r, 403, "waitlist_secret_wrong", NULL));
    hf_response_free(&r);
    r = on_entry(&admin, "GET", id, NULL);
    assert_true(hf_expect_status(&r, 200));
    assert_string_equal(or_missing(hf_json_str(r.json, "state")), "waiting");
    assert_null(json_object_get(r.json, "secret"));
    hf_response_free(&r);
    /* The first buyer lets go: the seat is offered to the one waiting. */
    r = on_hold(&shop, "DELETE", &first, NULL, NULL, first.secret);
    assert_true(hf_expect_status(&r, 200));
    hf_response_free(&r);
    r = on_entry(&shop, "GET", id, secret);
    assert_true(hf_expect_status(&r, 200));
    assert_string_equal(or_missing(hf_json_str(r.json, "state")), "offered");
    const json_t *offer = json_object_get(r.json, "hold");
    hold_t offered = {0};
    snprintf(offered.id, sizeof offered.id, "%s", or_missing(hf_json_str(offer, "id")));
    snprintf(offered.secret, sizeof offered.secret, "%s",
             or_missing(hf_json_str(offer, "secret")));
    hf_response_free(&r);
    assert_int_equal(strlen(offered.secret), 25);
    expect_refused(&shop, "POST", &offered, "commit", NULL, NULL, "hold_secret_required");
    expect_refused(&shop, "POST", &offered, "commit", NULL, first.secret, "hold_secret_wrong");
    r = on_hold(&shop, "POST", &offered, "commit", NULL, offered.secret);
    assert_true(hf_expect_status(&r, 200));
    assert_string_equal(or_missing(hf_json_str(r.json, "customer")), "u-2");
    hf_response_free(&r);
    assert_true(hf_expect_sku(&admin, "seat", 1, 0, 1));
}

/* ---- ids given out before the key ---- */

/* The 0.1.0 fixture (test_restart.c): holds made before data directories
 * had a key, their ids in the engine's spelling. */
static void copy_fixture(fx_t *fx)
{
    static const char *const files[] = {"holdfast.db", "holdfast.db-wal",
                                        "snapshot-00000000000000000010.bin"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "cp '%s/%s' '%s/'", HF_FIXTURES "/data-0.1.0-abe2688", files[i],
                 fx->srv.data_dir);
        assert_int_equal(system(cmd), 0);
    }
}

static void test_ids_given_out_before_the_key_keep_working(void **state)
{
    HF_SKIP_WITH_PG(); /* the data directory's own */
    fx_t *fx = *state;
    copy_fixture(fx);
    const char *optional[] = {"--hold-secret", "optional", NULL};
    start(fx, optional);
    expect_key_file(fx);
    hf_client_t shop = as(fx, SHOP), admin = as(fx, ADMIN);
    hold_t bob = {.id = "h_aKeeH"}, sold = {.id = "h_IAKK8"};
    /* While clients upgrade, an id from before works as it did. */
    hf_response_t r = on_hold(&shop, "GET", &sold, NULL, NULL, NULL);
    assert_true(hf_expect_status(&r, 200));
    assert_string_equal(or_missing(hf_json_str(r.json, "id")), "h_IAKK8");
    assert_string_equal(or_missing(hf_json_str(r.json, "state")), "committed");
    hf_response_free(&r);
    /* Its new hold gets an id of the new kind. */
    hold_t fresh;
    hold_as_shop(fx, "fay", "cap", NULL, &fresh);
    assert_int_equal(hf_server_stop(&fx->srv, SIGTERM), 0);
    /* Required: a shop key without a secret is refused, the admin is not. */
    start(fx, NULL);
    shop = as(fx, SHOP);
    admin = as(fx, ADMIN);
    expect_refused(&shop, "GET", &bob, NULL, NULL, NULL, "hold_secret_required");
    r = on_hold(&admin, "GET", &bob, NULL, NULL, NULL);
    assert_true(hf_expect_status(&r, 200));
    assert_string_equal(or_missing(hf_json_str(r.json, "customer")), "bob");
    hf_response_free(&r);
    r = on_hold(&shop, "GET", &fresh, NULL, NULL, fresh.secret);
    assert_true(hf_expect_status(&r, 200));
    hf_response_free(&r);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_a_shop_key_touches_a_hold_only_with_its_secret),
        T(test_the_admin_key_needs_no_secret_but_a_wrong_one_is_refused),
        T(test_an_idempotent_replay_returns_the_same_id_and_secret),
        T(test_consecutive_holds_get_unrelated_ids_and_guesses_learn_nothing),
        T(test_another_data_directory_gives_other_ids_and_secrets),
        T(test_ids_and_secrets_survive_kill9),
        T(test_a_damaged_key_file_stops_the_start),
        T(test_optional_secrets_let_old_clients_through_and_count_them),
        cmocka_unit_test(test_a_bad_hold_secret_mode_stops_the_start),
        T(test_a_waitlist_offer_reaches_only_the_buyer_who_waited),
        T(test_ids_given_out_before_the_key_keep_working),
    };
    return hf_tests_done(cmocka_run_group_tests_name("secret", tests, NULL, NULL));
}
