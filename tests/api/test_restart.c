/*
 * test_restart.c - what a client was told survives the server: kill -9 right
 * after the last acknowledged reply, SIGTERM, and the relaxed durability mode.
 *
 * The promise under test (docs/DURABILITY.md): a reply that acknowledges
 * a hold, a commit or a stock change is sent only after the change is
 * durable, and after a crash recovery yields exactly the acknowledged state;
 * holds whose time ran out while the server was down are expired, not
 * resurrected. So every test records what the server acknowledged, stops it,
 * starts a new server on the same data directory, and compares.
 *
 * The only sleeps are for wall time to pass until a hold's expiry.
 */
#include <setjmp.h>
#include <pthread.h>
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

static int setup(void **state)
{
    return hf_fixture_setup(state, NULL, false);
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

/* ---- what the server acknowledged ---- */

/* A hold as acknowledged: its reply, kept whole. */
typedef struct {
    char id[HF_TEST_ID_MAX];
    json_t *reply;
} ack_t;

static void ack_free(ack_t *a)
{
    if (a->reply != NULL) {
        json_decref(a->reply);
        a->reply = NULL;
    }
}

static void ack_keep(ack_t *a, const hf_response_t *r)
{
    ack_free(a);
    a->reply = json_incref(r->json);
    snprintf(a->id, sizeof a->id, "%s", or_missing(hf_json_str(r->json, "id")));
}

static void put(fx_t *fx, const char *sku, long long stock, int status)
{
    assert_int_equal(hf_sku_put(&fx->cl, sku, stock), status);
}

static void hold(fx_t *fx, const char *body, const char *idem, ack_t *a)
{
    hf_response_t r;
    assert_int_equal(hf_hold_create(&fx->cl, body, idem, NULL, &r), 201);
    assert_non_null(hf_json_str(r.json, "id"));
    ack_keep(a, &r);
    hf_response_free(&r);
}

static void act(fx_t *fx, const char *method, ack_t *a, const char *action, const char *body,
                const char *state)
{
    char target[256];
    snprintf(target, sizeof target, "/v1/holds/%s%s%s", a->id, action ? "/" : "",
             action ? action : "");
    hf_response_t r;
    assert_int_equal(hf_call(&fx->cl, method, target, NULL, body, &r), 0);
    assert_true(hf_expect_status(&r, 200));
    assert_string_equal(or_missing(hf_json_str(r.json, "state")), state);
    ack_keep(a, &r);
    hf_response_free(&r);
}

/* GETs the hold and compares it with what was acknowledged: the same id,
 * customer, lines and created_at; state as given; and, for a hold that is
 * still what it was, the same expires_at (and finished_at). */
static void expect_hold(fx_t *fx, const ack_t *a, const char *state)
{
    char target[256];
    snprintf(target, sizeof target, "/v1/holds/%s", a->id);
    hf_response_t r;
    assert_int_equal(hf_call(&fx->cl, "GET", target, NULL, NULL, &r), 0);
    if (r.status != 200) {
        fprintf(stderr, "hold %s after restart: %d %s\n", a->id, r.status, r.body);
    }
    assert_int_equal(r.status, 200);
    assert_string_equal(or_missing(hf_json_str(r.json, "id")), a->id);
    assert_string_equal(or_missing(hf_json_str(r.json, "state")), state);
    const char *same[] = {"customer", "created_at", "expires_at"};
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(or_missing(hf_json_str(r.json, same[i])),
                            or_missing(hf_json_str(a->reply, same[i])));
    }
    assert_true(json_equal(json_object_get(r.json, "lines"), json_object_get(a->reply, "lines")));
    if (hf_json_str(a->reply, "order_ref") != NULL) { /* a sale keeps its order */
        assert_string_equal(or_missing(hf_json_str(r.json, "order_ref")),
                            hf_json_str(a->reply, "order_ref"));
    }
    const char *acked_state = hf_json_str(a->reply, "state");
    if (acked_state != NULL && strcmp(acked_state, state) == 0 && strcmp(state, "active") != 0) {
        assert_string_equal(or_missing(hf_json_str(r.json, "finished_at")),
                            or_missing(hf_json_str(a->reply, "finished_at")));
    }
    hf_response_free(&r);
}

static long long expires_ms(const ack_t *a)
{
    long long ms = hf_parse_instant(hf_json_str(a->reply, "expires_at"));
    assert_true(ms > 0);
    return ms;
}

static void sleep_past(long long instant_ms, long long margin_ms)
{
    long long wait = instant_ms + margin_ms - hf_wall_ms();
    if (wait > 0) {
        hf_sleep_ms(wait);
    }
}

static void expect_sku_order(fx_t *fx, const char *const *want, size_t count)
{
    hf_response_t r;
    assert_int_equal(hf_call(&fx->cl, "GET", "/v1/skus", NULL, NULL, &r), 0);
    assert_true(hf_expect_status(&r, 200));
    json_t *skus = json_object_get(r.json, "skus");
    assert_int_equal(json_array_size(skus), count);
    for (size_t i = 0; i < count; i++) {
        assert_string_equal(or_missing(hf_json_str(json_array_get(skus, i), "sku")), want[i]);
    }
    hf_response_free(&r);
}

/* ---- the scenario ---- */

enum { H_SOLD, H_RELEASED, H_ACTIVE, H_EXTENDED, H_LATER, H_SHORT, H_COUNT };

#define ACTIVE_BODY                                                                                \
    "{\"customer\": \"u-active\", \"lines\": [{\"sku\": \"a\", \"qty\": 1}, {\"sku\": \"c\", "     \
    "\"qty\": 2}], \"ttl_ms\": 600000}"

/* Builds the state every restart test checks. Holds, by index:
 *   H_SOLD      a x2, committed          H_RELEASED  b x1, released
 *   H_ACTIVE    a x1 + c x2, 10 min, with an Idempotency-Key
 *   H_EXTENDED  a x1, 60 s then extended to an hour
 *   H_LATER     b x1, ttl later_ms       H_SHORT     b x2, 1000 ms (last)
 * Stocks: a 10, b 5, c 7 then 9. */
static void build(fx_t *fx, ack_t *h, long long later_ms)
{
    put(fx, "a", 10, 201);
    put(fx, "b", 5, 201);
    put(fx, "c", 7, 201);
    put(fx, "c", 9, 200);
    hold(fx, "{\"customer\": \"u-sold\", \"lines\": [{\"sku\": \"a\", \"qty\": 2}]}", NULL,
         &h[H_SOLD]);
    act(fx, "POST", &h[H_SOLD], "commit", "{\"order_ref\": \"o-1\"}", "committed");
    hold(fx, "{\"customer\": \"u-gone\", \"lines\": [{\"sku\": \"b\", \"qty\": 1}]}", NULL,
         &h[H_RELEASED]);
    act(fx, "DELETE", &h[H_RELEASED], NULL, NULL, "released");
    hold(fx, ACTIVE_BODY, "restart-key-1", &h[H_ACTIVE]);
    hold(fx,
         "{\"customer\": \"u-ext\", \"lines\": [{\"sku\": \"a\", \"qty\": 1}], \"ttl_ms\": 60000}",
         NULL, &h[H_EXTENDED]);
    act(fx, "POST", &h[H_EXTENDED], "extend", "{\"ttl_ms\": 3600000}", "active");
    char body[256];
    snprintf(body, sizeof body,
             "{\"customer\": \"u-later\", \"lines\": [{\"sku\": \"b\", \"qty\": 1}], "
             "\"ttl_ms\": %lld}",
             later_ms);
    hold(fx, body, NULL, &h[H_LATER]);
    hold(fx,
         "{\"customer\": \"u-short\", \"lines\": [{\"sku\": \"b\", \"qty\": 2}], \"ttl_ms\": 1000}",
         NULL, &h[H_SHORT]);
}

/* The state after restart once H_SHORT has expired (H_LATER as given). */
static void expect_built(fx_t *fx, const ack_t *h, bool later_active)
{
    assert_true(hf_expect_sku(&fx->cl, "a", 10, 2, 2));
    assert_true(hf_expect_sku(&fx->cl, "b", 5, later_active ? 1 : 0, 0));
    assert_true(hf_expect_sku(&fx->cl, "c", 9, 2, 0));
    expect_hold(fx, &h[H_SOLD], "committed");
    expect_hold(fx, &h[H_RELEASED], "released");
    expect_hold(fx, &h[H_ACTIVE], "active");
    expect_hold(fx, &h[H_EXTENDED], "active");
    expect_hold(fx, &h[H_LATER], later_active ? "active" : "expired");
    expect_hold(fx, &h[H_SHORT], "expired");
    const char *order[] = {"a", "b", "c"};
    expect_sku_order(fx, order, 3);
    /* The Idempotency-Key was journaled with its hold: a retry after the
     * crash is the same hold, applied once. */
    char id[HF_TEST_ID_MAX];
    assert_int_equal(hf_hold_create(&fx->cl, ACTIVE_BODY, "restart-key-1", id, NULL), 201);
    assert_string_equal(id, h[H_ACTIVE].id);
    assert_true(hf_expect_sku(&fx->cl, "a", 10, 2, 2));
}

static void free_all(ack_t *h, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        ack_free(&h[i]);
    }
}

static void expect_new_id(fx_t *fx, const ack_t *h, size_t count)
{
    char id[HF_TEST_ID_MAX];
    const char *body = "{\"customer\": \"u-new\", \"lines\": [{\"sku\": \"c\", \"qty\": 1}]}";
    assert_int_equal(hf_hold_create(&fx->cl, body, NULL, id, NULL), 201);
    for (size_t i = 0; i < count; i++) {
        assert_string_not_equal(id, h[i].id);
    }
}

/* ---- tests ---- */

static void test_kill9_keeps_every_acknowledged_change(void **state)
{
    fx_t *fx = *state;
    start(fx, NULL);
    ack_t h[H_COUNT + 2] = {0};
    build(fx, h, 4000);
    /* Right after the last acknowledged reply. */
    assert_int_equal(hf_server_stop(&fx->srv, SIGKILL), 128 + SIGKILL);
    /* H_SHORT runs out while the server is down; H_LATER does not. */
    sleep_past(expires_ms(&h[H_SHORT]), 100);
    start(fx, NULL);
    assert_true(hf_wall_ms() < expires_ms(&h[H_LATER]) - 300);
    expect_built(fx, h, true);
    /* H_LATER expires on time after the restart: its timer was restored. */
    sleep_past(expires_ms(&h[H_LATER]), 150);
    expect_built(fx, h, false);
    expect_new_id(fx, h, H_COUNT);
    /* Changes after a recovery survive a second crash too. */
    act(fx, "POST", &h[H_ACTIVE], "commit", NULL, "committed");
    put(fx, "d", 3, 201);
    hold(fx, "{\"customer\": \"u-2\", \"lines\": [{\"sku\": \"d\", \"qty\": 3}]}", "restart-key-2",
         &h[H_COUNT]);
    assert_int_equal(hf_server_stop(&fx->srv, SIGKILL), 128 + SIGKILL);
    start(fx, NULL);
    expect_hold(fx, &h[H_ACTIVE], "committed");
    expect_hold(fx, &h[H_COUNT], "active");
    expect_hold(fx, &h[H_SHORT], "expired");
    expect_hold(fx, &h[H_SOLD], "committed");
    assert_true(hf_expect_sku(&fx->cl, "a", 10, 1, 3));
    assert_true(hf_expect_sku(&fx->cl, "c", 9, 1, 2)); /* expect_new_id held one */
    assert_true(hf_expect_sku(&fx->cl, "d", 3, 3, 0));
    char id[HF_TEST_ID_MAX];
    const char *again = "{\"customer\": \"u-2\", \"lines\": [{\"sku\": \"d\", \"qty\": 3}]}";
    assert_int_equal(hf_hold_create(&fx->cl, again, "restart-key-2", id, NULL), 201);
    assert_string_equal(id, h[H_COUNT].id);
    assert_true(hf_expect_sku(&fx->cl, "d", 3, 3, 0));
    free_all(h, H_COUNT + 2);
}

static void test_kill9_right_after_a_burst_loses_nothing(void **state)
{
    fx_t *fx = *state;
    start(fx, NULL);
    put(fx, "flash", 1000, 201);
    enum { BURST = 100 };
    char(*ids)[HF_TEST_ID_MAX] = calloc(BURST, HF_TEST_ID_MAX);
    assert_non_null(ids);
    hf_conn_t c;
    assert_int_equal(hf_conn_open(&c, fx->cl.port, NULL), 0);
    char body[256];
    for (int i = 0; i < BURST; i++) {
        snprintf(body, sizeof body,
                 "{\"customer\": \"u-%d\", \"lines\": [{\"sku\": \"flash\", \"qty\": %d}]}", i,
                 1 + i % 3);
        hf_response_t r;
        assert_int_equal(hf_conn_exchange(&c, "POST", "/v1/holds", NULL, body, strlen(body), &r),
                         0);
        assert_true(hf_expect_status(&r, 201));
        snprintf(ids[i], HF_TEST_ID_MAX, "%s", or_missing(hf_json_str(r.json, "id")));
        hf_response_free(&r);
    }
    assert_int_equal(hf_server_stop(&fx->srv, SIGKILL), 128 + SIGKILL);
    hf_conn_close(&c);
    start(fx, NULL);
    long long held = 0;
    for (int i = 0; i < BURST; i++) {
        char st[32];
        assert_int_equal(hf_hold_state(&fx->cl, ids[i], st), 200);
        assert_string_equal(st, "active");
        held += 1 + i % 3;
    }
    assert_true(hf_expect_sku(&fx->cl, "flash", 1000, held, 0));
    free(ids);
}

/* With a tiny compaction threshold the state is snapshotted over and over
 * while it is built, so recovery reads a snapshot plus a journal tail.
 * ("compact_records" is a configuration key of this server, documented by
 * `holdfast serve --help`.) */
static void test_kill9_after_compactions_keeps_every_acknowledged_change(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(hf_server_write_config(&fx->srv, "{\"compact_records\": 3}"), 0);
    start(fx, NULL);
    ack_t h[H_COUNT] = {0};
    build(fx, h, 1000);
    assert_int_equal(hf_server_stop(&fx->srv, SIGKILL), 128 + SIGKILL);
    sleep_past(expires_ms(&h[H_SHORT]), 100);
    start(fx, NULL);
    expect_built(fx, h, false);
    expect_new_id(fx, h, H_COUNT);
    act(fx, "POST", &h[H_EXTENDED], "commit", NULL, "committed");
    assert_int_equal(hf_server_stop(&fx->srv, SIGKILL), 128 + SIGKILL);
    start(fx, NULL);
    expect_hold(fx, &h[H_EXTENDED], "committed");
    expect_hold(fx, &h[H_ACTIVE], "active");
    expect_hold(fx, &h[H_SHORT], "expired");
    assert_true(hf_expect_sku(&fx->cl, "a", 10, 1, 3));
    assert_true(hf_expect_sku(&fx->cl, "c", 9, 3, 0));
    free_all(h, H_COUNT);
}

/* Instants are wall-clock time (docs/API.md), after a recovery too: the time the
 * recovery took must not be lost from the server's clock. */
static void test_instants_follow_the_wall_clock_after_recovery(void **state)
{
    fx_t *fx = *state;
    start(fx, NULL);
    put(fx, "a", 1000000, 201);
    hf_conn_t c;
    assert_int_equal(hf_conn_open(&c, fx->cl.port, NULL), 0);
    const char *body = "{\"customer\": \"u-1\", \"lines\": [{\"sku\": \"a\", \"qty\": 1}]}";
    for (int i = 0; i < 300; i++) {
        hf_response_t r;
        assert_int_equal(hf_conn_exchange(&c, "POST", "/v1/holds", NULL, body, strlen(body), &r),
                         0);
        assert_true(hf_expect_status(&r, 201));
        hf_response_free(&r);
    }
    hf_conn_close(&c);
    assert_int_equal(hf_server_stop(&fx->srv, SIGKILL), 128 + SIGKILL);
    start(fx, NULL);
    assert_true(hf_expect_sku(&fx->cl, "a", 1000000, 300, 0));
    long long before = hf_wall_ms();
    hf_response_t r;
    assert_int_equal(hf_hold_create(&fx->cl, body, NULL, NULL, &r), 201);
    long long after = hf_wall_ms();
    long long created = hf_parse_instant(hf_json_str(r.json, "created_at"));
    hf_response_free(&r);
    if (created < before - 2 || created > after + 2) {
        fprintf(stderr, "after recovery, created_at is %lld ms off our clock\n",
                created < before ? created - before : created - after);
    }
    assert_true(created >= before - 2 && created <= after + 2);
}

/* A clean stop keeps everything, whatever the durability mode. */
static void sigterm_keeps_state(fx_t *fx, const char *const *extra)
{
    start(fx, extra);
    ack_t h[H_COUNT] = {0};
    build(fx, h, 1000);
    assert_int_equal(hf_server_stop(&fx->srv, SIGTERM), 0);
    assert_true(hf_server_logs_clean(&fx->srv));
    sleep_past(expires_ms(&h[H_SHORT]), 100);
    start(fx, extra);
    expect_built(fx, h, false);
    expect_new_id(fx, h, H_COUNT);
    assert_int_equal(hf_server_stop(&fx->srv, SIGTERM), 0);
    /* And a second start reads the state the first recovery left. */
    start(fx, extra);
    expect_hold(fx, &h[H_SOLD], "committed");
    expect_hold(fx, &h[H_ACTIVE], "active");
    assert_true(hf_expect_sku(&fx->cl, "c", 9, 3, 0));
    free_all(h, H_COUNT);
}

static void test_sigterm_exits_zero_and_keeps_state(void **state)
{
    sigterm_keeps_state(*state, NULL);
}

static void test_relaxed_durability_keeps_state_after_sigterm(void **state)
{
    const char *relaxed[] = {"--durability", "relaxed", NULL};
    sigterm_keeps_state(*state, relaxed);
}

static void test_relaxed_from_the_config_file_keeps_state(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(hf_server_write_config(&fx->srv, "{\"durability\": \"relaxed\"}"), 0);
    start(fx, NULL);
    put(fx, "a", 4, 201);
    ack_t h = {0};
    hold(fx, "{\"customer\": \"u-1\", \"lines\": [{\"sku\": \"a\", \"qty\": 3}]}", NULL, &h);
    act(fx, "POST", &h, "commit", "{}", "committed");
    assert_int_equal(hf_server_stop(&fx->srv, SIGTERM), 0);
    start(fx, NULL);
    expect_hold(fx, &h, "committed");
    assert_true(hf_expect_sku(&fx->cl, "a", 4, 0, 3));
    ack_free(&h);
}


/* ---- data written by an earlier holdfast ---- */

/* A GET that must answer 200; the body parsed. */
static json_t *get_ok(fx_t *fx, const char *target)
{
    hf_response_t r;
    assert_int_equal(hf_call(&fx->cl, "GET", target, NULL, NULL, &r), 0);
    if (r.status != 200) {
        fprintf(stderr, "GET %s: %d %s\n", target, r.status, r.body);
    }
    assert_int_equal(r.status, 200);
    json_t *doc = json_incref(r.json);
    hf_response_free(&r);
    return doc;
}

/* An active hold of the fixture: active until its day is over, expired
 * after (the fixture was written on 2026-12-05 with one-day holds). One in
 * the snapshot was made before reclaim existed and is never taken back
 * (safe until it expires); one replayed from the journal is made again by
 * this build, with its promise. */
static void expect_fixture_hold(fx_t *fx, const char *id, const char *customer)
{
    char target[64];
    snprintf(target, sizeof target, "/v1/holds/%s", id);
    json_t *h = get_ok(fx, target);
    assert_string_equal(or_missing(hf_json_str(h, "customer")), customer);
    long long expires_ms = hf_parse_instant(hf_json_str(h, "expires_at"));
    bool over = expires_ms <= hf_wall_ms();
    assert_string_equal(or_missing(hf_json_str(h, "state")), over ? "expired" : "active");
    if (!over) {
        long long safe_ms = hf_parse_instant(hf_json_str(h, "safe_until"));
        assert_true(safe_ms > 0 && safe_ms <= expires_ms);
    }
    json_decref(h);
}

static long long policy_value(const json_t *doc, const char *section, const char *key)
{
    long long v = -1;
    assert_true(hf_json_int(json_object_get(doc, section), key, &v));
    return v;
}

/* A data directory written by holdfast 0.1.0 at abe2688 (before the newcomer
 * pool, reclaim and the purchase caps): a snapshot in its format (GRD2,
 * policies of 47 settings) and a journal record after it in the hold
 * format of then, and no key file. It recovers; the settings added since
 * take their defaults; it gets a key file, and its holds keep the ids they
 * were given; the next start writes the new format, and it recovers again. */
static void test_data_written_by_0_1_0_recovers(void **state)
{
    HF_SKIP_WITH_PG(); /* the data directory's own */
    fx_t *fx = *state;
    static const char *const files[] = {"holdfast.db", "holdfast.db-wal",
                                        "snapshot-00000000000000000010.bin"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "cp '%s/%s' '%s/'", HF_FIXTURES "/data-0.1.0-abe2688", files[i],
                 fx->srv.data_dir);
        assert_int_equal(system(cmd), 0);
    }
    char key_path[256];
    snprintf(key_path, sizeof key_path, "%s/holdfast.key", fx->srv.data_dir);
    struct stat key_before;
    for (int run = 0; run < 2; run++) {
        start(fx, NULL);
        struct stat key;
        assert_int_equal(stat(key_path, &key), 0);
        assert_int_equal(key.st_mode & 0777, 0600);
        if (run == 0) {
            key_before = key;
        }
        assert_true(key.st_ino == key_before.st_ino && key.st_size == 64); /* made once */
        /* ann bought 2 caps; bob (3 shirts and a cap), cat (2 shirts) and,
         * after the snapshot, eve (3 caps) held theirs for a day. */
        json_t *h = get_ok(fx, "/v1/holds/h_IAKK8");
        assert_string_equal(or_missing(hf_json_str(h, "id")), "h_IAKK8");
        assert_string_equal(or_missing(hf_json_str(h, "state")), "committed");
        assert_string_equal(or_missing(hf_json_str(h, "order_ref")), "o-1");
        json_decref(h);
        expect_fixture_hold(fx, "h_aKeeH", "bob");
        expect_fixture_hold(fx, "h_sUyyQ", "cat");
        expect_fixture_hold(fx, "h_1AfJIZ", "eve");
        hf_sku_counts_t cap;
        assert_int_equal(hf_sku_get(&fx->cl, "cap", &cap), 200);
        assert_true(cap.stock == 20 && cap.sold == 2 + run && (cap.held == 4 || cap.held == 0));
        json_t *w = get_ok(fx, "/v1/waitlist/w_IAKK8");
        assert_string_equal(or_missing(hf_json_str(w, "customer")), "dan");
        json_decref(w);
        /* Its policy as it was, the new settings at their defaults. */
        json_t *p = get_ok(fx, "/v1/policy");
        assert_int_equal(policy_value(p, "hold_share", "held_pct_max"), 100);
        assert_int_equal(policy_value(p, "challenge", "enabled"), 0);
        assert_int_equal(policy_value(p, "newcomer", "pool_pct"), 25);
        assert_int_equal(policy_value(p, "reclaim", "floor_ms"), 120000);
        json_decref(p);
        json_t *shirt = get_ok(fx, "/v1/skus/shirt");
        assert_int_equal(policy_value(json_object_get(shirt, "policy"), "quantity", "line_qty_max"),
                         3);
        json_decref(shirt);
        if (run == 0) { /* a sale in the new format, then a crash */
            hf_response_t r;
            assert_int_equal(hf_hold_create(&fx->cl,
                                            "{\"customer\": \"fay\", \"lines\": [{\"sku\": \"cap\","
                                            " \"qty\": 1}], \"commit\": true}",
                                            NULL, NULL, &r),
                             201);
            hf_response_free(&r);
            assert_true(hf_server_stop(&fx->srv, SIGKILL) >= 0);
        }
    }
}

/* Starts the server with journal commits failing past record 2
 * (HOLDFAST_FAULT_JOURNAL_AFTER, the server's fault hook): a sku (record
 * 1) and a hold (record 2, its id in kept) are acknowledged, and the next
 * hold, whose commit fails, is answered 503 outcome_unknown (a real failed
 * commit may still have reached the disk; this hook fails before writing,
 * so here it did not). */
static void fail_the_third_record(fx_t *fx, char kept[HF_TEST_ID_MAX])
{
    assert_int_equal(setenv("HOLDFAST_FAULT_JOURNAL_AFTER", "2", 1), 0);
    start(fx, NULL);
    assert_int_equal(unsetenv("HOLDFAST_FAULT_JOURNAL_AFTER"), 0);
    put(fx, "cap", 10, 201);
    const char *body = "{\"customer\": \"u-1\", \"lines\": [{\"sku\": \"cap\", \"qty\": 2}]}";
    assert_int_equal(hf_hold_create(&fx->cl, body, NULL, kept, NULL), 201);
    hf_response_t r;
    assert_int_equal(hf_call(&fx->cl, "POST", "/v1/holds", NULL, body, &r), 0);
    assert_true(hf_expect_error(&r, 503, "outcome_unknown", NULL));
    hf_response_free(&r);
}

/* After a restart, exactly what fail_the_third_record had acknowledged. */
static void expect_only_the_acknowledged(fx_t *fx, const char *kept)
{
    start(fx, NULL);
    char st[32];
    assert_int_equal(hf_hold_state(&fx->cl, kept, st), 200);
    assert_string_equal(st, "active");
    assert_true(hf_expect_sku(&fx->cl, "cap", 10, 2, 0)); /* the third hold is not there */
}

/* After that failure the store fails for good: every later request is 503
 * storage_unavailable, /healthz says so, and after a restart exactly what
 * was acknowledged is there. */
static void test_a_failed_journal_refuses_everything_until_restart(void **state)
{
    HF_SKIP_WITH_PG(); /* there a failed commit ends the node (below) */
    fx_t *fx = *state;
    char kept[HF_TEST_ID_MAX];
    fail_the_third_record(fx, kept);
    hf_response_t r;
    assert_int_equal(hf_call(&fx->cl, "GET", "/v1/skus/cap", NULL, NULL, &r), 0);
    assert_true(hf_expect_error(&r, 503, "storage_unavailable", NULL));
    hf_response_free(&r);
    assert_int_equal(hf_sku_put(&fx->cl, "other", 5), 503);
    assert_int_equal(hf_call(&fx->cl, "GET", "/healthz", NULL, NULL, &r), 0);
    assert_true(hf_expect_status(&r, 503));
    assert_string_equal(or_missing(hf_json_str(r.json, "status")), "storage_unavailable");
    hf_response_free(&r);
    assert_int_equal(hf_server_stop(&fx->srv, SIGTERM), 0);
    expect_only_the_acknowledged(fx, kept);
    hf_sku_counts_t none;
    assert_int_equal(hf_sku_get(&fx->cl, "other", &none), 404);
}

/* The same fault with the journal in PostgreSQL, where a failed commit
 * may mean the shop is another node's already: the failed change is still
 * answered 503 outcome_unknown, what follows is 503 not_owner (go to
 * another node), and the node then ends by itself with status 75 for its
 * supervisor. Restarted, it has exactly what was acknowledged. */
static void test_a_failed_commit_to_postgresql_answers_then_ends(void **state)
{
    if (hf_test_journal_url() == NULL) {
        skip(); /* the data directory's journal fails and stays up (above) */
    }
    fx_t *fx = *state;
    char kept[HF_TEST_ID_MAX];
    fail_the_third_record(fx, kept);
    /* Until it has ended: refused as a node that does not own the shop
     * (or, once it has, no answer at all). */
    hf_response_t r;
    if (hf_call(&fx->cl, "GET", "/v1/skus/cap", NULL, NULL, &r) == 0) {
        assert_true(hf_expect_error(&r, 503, "not_owner", NULL));
        hf_response_free(&r);
    }
    assert_int_equal(hf_server_stop(&fx->srv, 0), HF_EXIT_FOR_RESTART);
    expect_only_the_acknowledged(fx, kept);
}

/* ---- online backup ---- */

#define BACKUP_LOAD_MAX 4000

/* Holds bought one after another by a thread: ids[0..acked) were each
 * acknowledged committed, in order. */
typedef struct {
    hf_client_t cl;
    pthread_mutex_t lock;
    pthread_cond_t more;
    bool stop;
    int acked;
    char (*ids)[HF_TEST_ID_MAX];
} buyer_t;

static void *buy_until_stopped(void *arg)
{
    buyer_t *b = arg;
    const char *body = "{\"customer\": \"u-b\", \"lines\": [{\"sku\": \"bk\", \"qty\": 1}]}";
    for (int i = 0; i < BACKUP_LOAD_MAX; i++) {
        pthread_mutex_lock(&b->lock);
        bool stop = b->stop;
        pthread_mutex_unlock(&b->lock);
        char id[HF_TEST_ID_MAX], target[HF_TEST_ID_MAX + 32];
        if (stop || hf_hold_create(&b->cl, body, NULL, id, NULL) != 201) {
            break;
        }
        snprintf(target, sizeof target, "/v1/holds/%s/commit", id);
        hf_response_t r;
        bool ok = hf_call(&b->cl, "POST", target, NULL, NULL, &r) == 0 && r.status == 200;
        hf_response_free(&r);
        if (!ok) {
            break;
        }
        pthread_mutex_lock(&b->lock);
        memcpy(b->ids[b->acked++], id, HF_TEST_ID_MAX);
        pthread_cond_signal(&b->more);
        pthread_mutex_unlock(&b->lock);
    }
    pthread_mutex_lock(&b->lock);
    b->stop = true;
    pthread_cond_signal(&b->more);
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

/* Waits until the buyer has n acknowledged (or stopped); returns acked. */
static int buyer_wait(buyer_t *b, int n)
{
    pthread_mutex_lock(&b->lock);
    while (b->acked < n && !b->stop) {
        pthread_cond_wait(&b->more, &b->lock);
    }
    int acked = b->acked;
    pthread_mutex_unlock(&b->lock);
    return acked;
}

/* `holdfast backup` while a buyer commits holds and snapshots are taken
 * every 50 records: a server started on the copy has every purchase
 * acknowledged before the backup began, and its counts add up. */
static void test_backup_under_load_has_everything_acknowledged_before_it(void **state)
{
    HF_SKIP_WITH_PG(); /* the data directory's own */
    fx_t *fx = *state;
    assert_int_equal(hf_server_write_config(&fx->srv, "{\"compact_records\": 50}"), 0);
    start(fx, NULL);
    put(fx, "bk", 100000, 201);
    buyer_t b = {.cl = fx->cl, .ids = calloc(BACKUP_LOAD_MAX, HF_TEST_ID_MAX)};
    assert_non_null(b.ids);
    pthread_mutex_init(&b.lock, NULL);
    pthread_cond_init(&b.more, NULL);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, buy_until_stopped, &b), 0);
    int before = buyer_wait(&b, 200);
    assert_true(before >= 200);

    hf_server_t copy;
    assert_int_equal(hf_server_init(&copy), 0);
    assert_int_equal(rmdir(copy.data_dir), 0); /* backup makes it */
    const char *argv[] = {"backup", "--data", fx->srv.data_dir, copy.data_dir, NULL};
    hf_run_result_t *res = calloc(1, sizeof *res);
    assert_non_null(res);
    assert_int_equal(hf_run(argv, 60000, res), 0);
    assert_non_null(strstr(res->out, "backup of"));
    int during = buyer_wait(&b, before + 50); /* the load went on meanwhile */
    pthread_mutex_lock(&b.lock);
    b.stop = true;
    pthread_mutex_unlock(&b.lock);
    pthread_join(t, NULL);
    assert_true(during > before);
    assert_int_equal(hf_server_stop(&fx->srv, SIGTERM), 0);

    assert_int_equal(hf_server_start(&copy, NULL), 0);
    hf_client_t cl = {.port = copy.port};
    for (int i = 0; i < before; i++) {
        char st[32];
        assert_int_equal(hf_hold_state(&cl, b.ids[i], st), 200);
        assert_string_equal(st, "committed");
    }
    hf_sku_counts_t c;
    assert_int_equal(hf_sku_get(&cl, "bk", &c), 200);
    assert_true(c.sold >= before && c.sold <= b.acked + 1);
    assert_true(c.held <= 1 && c.available == c.stock - c.held - c.sold);
    assert_int_equal(hf_server_deinit(&copy), 0);
    /* A directory that exists already is refused, and nothing changes. */
    const char *again[] = {"backup", "--data", fx->srv.data_dir, fx->srv.root, NULL};
    assert_int_equal(hf_run(again, 60000, res), 1);
    assert_non_null(strstr(res->err, "does not exist yet"));
    free(res);
    free(b.ids);
    pthread_mutex_destroy(&b.lock);
    pthread_cond_destroy(&b.more);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kill9_keeps_every_acknowledged_change, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_backup_under_load_has_everything_acknowledged_before_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_right_after_a_burst_loses_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_kill9_after_compactions_keeps_every_acknowledged_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_instants_follow_the_wall_clock_after_recovery, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_exits_zero_and_keeps_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_written_by_0_1_0_recovers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_failed_journal_refuses_everything_until_restart,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_failed_commit_to_postgresql_answers_then_ends,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_relaxed_durability_keeps_state_after_sigterm, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_relaxed_from_the_config_file_keeps_state, setup,
                                        teardown),
    };
    return hf_tests_done(cmocka_run_group_tests_name("restart", tests, NULL, NULL));
}
