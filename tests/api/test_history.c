/*
 * test_history.c - GET /v1/history, the dashboard's past, against the real
 * server.
 *
 * The server samples on its own clock (a point a second), which a black-box
 * test cannot move: so these tests make a known sequence of changes, wait
 * (bounded) until the points that must follow from it have appeared, and
 * check what can be known for any timing: the points come a second apart
 * with none missing, every point adds up, the changes show in their order
 * and never before they were made, `since` cuts to the millisecond, at most
 * 64 skus are kept (the most recently active), and the route is the admin's.
 * The exact points of a sequence with the time passed in are in
 * tests/server/test_history_ring.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hf_test_http.h"

typedef hf_fixture_t fx_t;

#define SKUS_MAX 64
/* How long a point that must come may take: bounds a hang, no speed claim. */
#define WAIT_MS 10000

static int setup(void **state)
{
    return hf_fixture_setup(state, "{}", true);
}

static int setup_keys(void **state)
{
    return hf_fixture_setup(state, "{\"api_keys\": [\"s1\"], \"admin_key\": \"a1\"}", true);
}

static int teardown(void **state)
{
    return hf_fixture_teardown(state);
}

static hf_response_t history(fx_t *fx, const char *query)
{
    char target[256];
    snprintf(target, sizeof target, "/v1/history%s", query);
    hf_response_t r;
    assert_int_equal(hf_call(&fx->cl, "GET", target, NULL, NULL, &r), 0);
    return r;
}

static long long member(const json_t *o, const char *key)
{
    long long v = -1;
    assert_true(hf_json_int(o, key, &v));
    return v;
}

static long long at(const json_t *o, const char *column, size_t i)
{
    const json_t *v = json_array_get(json_object_get(o, column), i);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

/* The shape every reply of a sku's history has, whatever the timing. */
static void check_shape(const json_t *h, const char *sku)
{
    static const char *const columns[] = {"stock", "held", "sold", "available",
                                          "denials", "challenges", "waitlist", "escalated"};
    assert_string_equal(hf_json_str(h, "sku"), sku);
    assert_int_equal(member(h, "interval_ms"), 1000);
    long long count = member(h, "count");
    assert_true(count >= 0 && count <= 3600);
    for (size_t c = 0; c < sizeof columns / sizeof columns[0]; c++) {
        const json_t *col = json_object_get(h, columns[c]);
        assert_true(json_is_array(col));
        assert_int_equal((long long)json_array_size(col), count);
    }
    for (size_t i = 0; i < (size_t)count; i++) {
        assert_int_equal(at(h, "available", i), at(h, "stock", i) - at(h, "held", i) - at(h, "sold", i));
        assert_true(at(h, "held", i) >= 0 && at(h, "sold", i) >= 0 && at(h, "available", i) >= 0);
        assert_true(at(h, "escalated", i) == 0 || at(h, "escalated", i) == 1);
    }
    if (count > 0) {
        long long first_ms = member(h, "first_ms");
        assert_int_equal(first_ms % 1000, 0); /* a point a second, on the second */
        /* The last point is no later than the server's clock now. */
        assert_true(first_ms + (count - 1) * 1000 <= member(h, "now_ms"));
    } else {
        assert_true(json_is_null(json_object_get(h, "first_ms")));
    }
}

/* Reads the sku's history until its last point has held and sold as
 * given; returns that reply (bounded: a point that never comes fails). */
static hf_response_t wait_for_point(fx_t *fx, const char *sku, long long held, long long sold)
{
    char query[128];
    snprintf(query, sizeof query, "?sku=%s", sku);
    long long deadline = hf_now_ms() + WAIT_MS;
    for (;;) {
        hf_response_t r = history(fx, query);
        assert_int_equal(r.status, 200);
        check_shape(r.json, sku);
        long long n = member(r.json, "count");
        if (n > 0 && at(r.json, "held", n - 1) == held && at(r.json, "sold", n - 1) == sold) {
            return r;
        }
        hf_response_free(&r);
        assert_true(hf_now_ms() < deadline);
        hf_sleep_ms(50); /* the next point comes with the server's next second */
    }
}

/* Which step of the sequence a point shows: 0 before the hold, 1 held, 2 sold. */
static int phase_of(const json_t *h, size_t i)
{
    long long held = at(h, "held", i), sold = at(h, "sold", i);
    assert_int_equal(at(h, "stock", i), 10);
    if (held == 0 && sold == 0) {
        return 0;
    }
    if (held == 2 && sold == 0) {
        return 1;
    }
    assert_true(held == 0 && sold == 2);
    return 2;
}

static void test_history_shows_a_known_sequence_in_order(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(hf_sku_put(&fx->cl, "cap", 10), 201);
    hf_response_t r = wait_for_point(fx, "cap", 0, 0); /* a point from before the hold */
    hf_response_free(&r);

    char id[HF_TEST_ID_MAX], target[256];
    hf_response_t hold;
    assert_int_equal(hf_hold_create(&fx->cl, "{\"customer\": \"u-1\", \"lines\": [{\"sku\": "
                                             "\"cap\", \"qty\": 2}]}",
                                    NULL, id, &hold),
                     201);
    long long held_at_ms = hf_parse_instant(hf_json_str(hold.json, "created_at"));
    assert_true(held_at_ms > 0);
    hf_response_free(&hold);
    r = wait_for_point(fx, "cap", 2, 0);
    hf_response_free(&r);

    snprintf(target, sizeof target, "/v1/holds/%s/commit", id);
    hf_response_t commit;
    assert_int_equal(hf_call(&fx->cl, "POST", target, NULL, "{}", &commit), 0);
    assert_int_equal(commit.status, 200);
    long long sold_at_ms = hf_parse_instant(hf_json_str(commit.json, "finished_at"));
    assert_true(sold_at_ms >= held_at_ms);
    hf_response_free(&commit);
    r = wait_for_point(fx, "cap", 0, 2);

    /* Every step shows, in its order, and no point shows a change before
     * it was made (a point is taken within its second). */
    const json_t *h = r.json;
    long long first_ms = member(h, "first_ms"), count = member(h, "count");
    assert_true(count >= 3);
    int phase = 0;
    bool seen[3] = {false, false, false};
    for (size_t i = 0; i < (size_t)count; i++) {
        int p = phase_of(h, i);
        assert_true(p >= phase);
        phase = p;
        seen[p] = true;
        long long t_ms = first_ms + (long long)i * 1000;
        if (t_ms + 999 < held_at_ms) {
            assert_int_equal(p, 0);
        }
        if (t_ms + 999 < sold_at_ms) {
            assert_true(p <= 1);
        }
        assert_int_equal(at(h, "denials", i), 0);
        assert_int_equal(at(h, "waitlist", i), 0);
    }
    assert_true(seen[0] && seen[1] && seen[2]);

    /* since: the points at or after it, to the millisecond. */
    char query[128];
    snprintf(query, sizeof query, "?sku=cap&since=%lld", first_ms + 1000);
    hf_response_t later = history(fx, query);
    assert_int_equal(later.status, 200);
    check_shape(later.json, "cap");
    assert_int_equal(member(later.json, "first_ms"), first_ms + 1000);
    assert_true(member(later.json, "count") >= count - 1);
    hf_response_free(&later);
    long long last_ms = first_ms + (count - 1) * 1000;
    snprintf(query, sizeof query, "?sku=cap&since=%lld", last_ms + 1);
    later = history(fx, query);
    check_shape(later.json, "cap");
    if (member(later.json, "count") > 0) { /* a second passed meanwhile */
        assert_true(member(later.json, "first_ms") > last_ms);
    }
    hf_response_free(&later);
    hf_response_free(&r);
}

/* 70 skus made one after the other: the 64 most recently active are kept,
 * and a hold asked for on one that was dropped brings it back. */
static void test_history_keeps_the_64_most_recently_active_skus(void **state)
{
    fx_t *fx = *state;
    char sku[32];
    for (int i = 0; i < SKUS_MAX + 6; i++) {
        snprintf(sku, sizeof sku, "s-%02d", i);
        assert_int_equal(hf_sku_put(&fx->cl, sku, 5), 201);
    }
    hf_response_t r = history(fx, "");
    assert_int_equal(r.status, 200);
    assert_int_equal(member(r.json, "skus_max"), SKUS_MAX);
    assert_int_equal(member(r.json, "seconds_max"), 3600);
    assert_true(member(r.json, "now_ms") > 0);
    const json_t *skus = json_object_get(r.json, "skus");
    assert_int_equal((long long)json_array_size(skus), SKUS_MAX);
    assert_string_equal(json_string_value(json_array_get(skus, 0)), "s-69");
    assert_string_equal(json_string_value(json_array_get(skus, SKUS_MAX - 1)), "s-06");
    hf_response_free(&r);
    r = history(fx, "?sku=s-00");
    assert_int_equal(r.status, 200);
    assert_false(json_is_true(json_object_get(r.json, "tracked")));
    assert_int_equal(member(r.json, "count"), 0);
    hf_response_free(&r);

    /* a hold asked for on s-00, refused for want of stock or not, is activity */
    assert_int_equal(hf_hold_create(&fx->cl, "{\"customer\": \"u-1\", \"lines\": [{\"sku\": "
                                             "\"s-00\", \"qty\": 9}]}",
                                    NULL, NULL, NULL),
                     409);
    r = history(fx, "");
    skus = json_object_get(r.json, "skus");
    assert_int_equal((long long)json_array_size(skus), SKUS_MAX);
    assert_string_equal(json_string_value(json_array_get(skus, 0)), "s-00");
    for (size_t i = 0; i < json_array_size(skus); i++) {
        assert_string_not_equal(json_string_value(json_array_get(skus, i)), "s-06");
    }
    hf_response_free(&r);
    r = wait_for_point(fx, "s-00", 0, 0);
    assert_true(json_is_true(json_object_get(r.json, "tracked")));
    hf_response_free(&r);
}

static void test_history_refuses_bad_requests(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(hf_sku_put(&fx->cl, "cap", 10), 201);
    const struct {
        const char *query;
        int status;
        const char *code, *field;
    } cases[] = {
        {"?sku=", 400, "invalid_field", "sku"},
        {"?sku=a%20b", 400, "invalid_field", "sku"},
        {"?sku=nope", 404, "not_found", NULL},
        {"?sku=cap&since=", 400, "invalid_field", "since"},
        {"?sku=cap&since=-1", 400, "invalid_field", "since"},
        {"?sku=cap&since=12x", 400, "invalid_field", "since"},
        {"?sku=cap&since=9007199254740992", 400, "invalid_field", "since"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hf_response_t r = history(fx, cases[i].query);
        assert_true(hf_expect_error(&r, cases[i].status, cases[i].code, cases[i].field));
        hf_response_free(&r);
    }
    hf_response_t r;
    assert_int_equal(hf_call(&fx->cl, "POST", "/v1/history", NULL, "{}", &r), 0);
    assert_true(hf_expect_error(&r, 405, "method_not_allowed", NULL));
    hf_response_free(&r);
    /* and the server is unchanged */
    assert_true(hf_expect_sku(&fx->cl, "cap", 10, 0, 0));
}

static void test_history_is_the_admins(void **state)
{
    fx_t *fx = *state;
    fx->cl.bearer = "a1";
    assert_int_equal(hf_sku_put(&fx->cl, "cap", 10), 201);
    fx->cl.bearer = NULL;
    hf_response_t r = history(fx, "?sku=cap");
    assert_true(hf_expect_error(&r, 401, "unauthorized", NULL));
    hf_response_free(&r);
    fx->cl.bearer = "s1";
    r = history(fx, "?sku=cap");
    assert_true(hf_expect_error(&r, 403, "forbidden", NULL));
    hf_response_free(&r);
    r = history(fx, "");
    assert_true(hf_expect_error(&r, 403, "forbidden", NULL));
    hf_response_free(&r);
    fx->cl.bearer = "a1";
    r = history(fx, "?sku=cap");
    assert_int_equal(r.status, 200);
    check_shape(r.json, "cap");
    hf_response_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_history_shows_a_known_sequence_in_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_history_keeps_the_64_most_recently_active_skus,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_refuses_bad_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_is_the_admins, setup_keys, teardown),
    };
    return hf_tests_done(cmocka_run_group_tests_name("history", tests, NULL, NULL));
}
