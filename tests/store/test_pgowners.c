/*
 * test_pgowners.c - where other shops of a cluster are served, as a node
 * keeps it for redirects (src/store/pgowners.h): filled on demand, read
 * again when stale, bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "pgowners.h"

#define T0_MS 1000000

static pgowners_answer_t find(pgowners_t *o, const char *shop, int64_t now_ms, char *url,
                              bool *wanted_now)
{
    return pgowners_find(o, shop, now_ms, url, PGOWNERS_URL_BYTES, wanted_now);
}

static void test_an_unknown_shop_is_looked_up_once(void **state)
{
    (void)state;
    pgowners_t *o = pgowners_new();
    assert_non_null(o);
    char url[PGOWNERS_URL_BYTES];
    bool wanted;
    assert_int_equal(find(o, "tees", T0_MS, url, &wanted), PGOWNERS_LOOKING);
    assert_true(wanted);
    assert_int_equal(find(o, "tees", T0_MS + 1, url, &wanted), PGOWNERS_LOOKING);
    assert_false(wanted); /* already wanted: no second wake */
    char names[4][STORE_SHOP_NAME_MAX + 1];
    assert_int_equal(pgowners_wanted(o, names, 4), 1);
    assert_string_equal(names[0], "tees");
    /* A read that failed said nothing: the shop stays wanted, to be read
     * again, though no request marks it anew. */
    assert_true(pgowners_any_wanted(o));
    pgowners_found(o, "tees", "http://b:8080", T0_MS + 10);
    assert_false(pgowners_any_wanted(o));
    assert_int_equal(find(o, "tees", T0_MS + 20, url, &wanted), PGOWNERS_AT);
    assert_string_equal(url, "http://b:8080");
    assert_false(wanted);
    assert_int_equal(pgowners_wanted(o, names, 4), 0);
    pgowners_free(o);
}

static void test_answers_go_stale_and_are_read_again(void **state)
{
    (void)state;
    pgowners_t *o = pgowners_new();
    char url[PGOWNERS_URL_BYTES];
    bool wanted;
    find(o, "a", T0_MS, url, &wanted);
    find(o, "b", T0_MS, url, &wanted);
    pgowners_found(o, "a", "http://a", T0_MS);
    pgowners_found(o, "b", NULL, T0_MS);
    /* A live owner is kept for PGOWNERS_FRESH_MS, "none" for less. */
    assert_int_equal(find(o, "a", T0_MS + PGOWNERS_FRESH_MS - 1, url, &wanted), PGOWNERS_AT);
    assert_false(wanted);
    assert_int_equal(find(o, "b", T0_MS + PGOWNERS_NONE_FRESH_MS - 1, url, &wanted),
                     PGOWNERS_NONE);
    assert_false(wanted);
    assert_int_equal(find(o, "b", T0_MS + PGOWNERS_NONE_FRESH_MS, url, &wanted), PGOWNERS_NONE);
    assert_true(wanted); /* stale: the old answer, and a read */
    assert_int_equal(find(o, "a", T0_MS + PGOWNERS_FRESH_MS, url, &wanted), PGOWNERS_AT);
    assert_true(wanted);
    assert_string_equal(url, "http://a");
    /* The read moves them: a has no owner now, b has one. */
    pgowners_found(o, "a", NULL, T0_MS + PGOWNERS_FRESH_MS + 5);
    pgowners_found(o, "b", "http://b", T0_MS + PGOWNERS_FRESH_MS + 5);
    assert_int_equal(find(o, "a", T0_MS + PGOWNERS_FRESH_MS + 6, url, &wanted), PGOWNERS_NONE);
    assert_int_equal(find(o, "b", T0_MS + PGOWNERS_FRESH_MS + 6, url, &wanted), PGOWNERS_AT);
    assert_string_equal(url, "http://b");
    pgowners_free(o);
}

static void test_a_url_too_long_to_keep_is_no_owner(void **state)
{
    (void)state;
    pgowners_t *o = pgowners_new();
    char url[PGOWNERS_URL_BYTES], longer[PGOWNERS_URL_BYTES + 8];
    bool wanted;
    memset(longer, 'x', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    find(o, "a", T0_MS, url, &wanted);
    pgowners_found(o, "a", longer, T0_MS);
    assert_int_equal(find(o, "a", T0_MS, url, &wanted), PGOWNERS_NONE);
    /* ... and one that does not fit the caller's buffer is none either. */
    pgowners_found(o, "a", "http://a-long-name", T0_MS);
    assert_int_equal(pgowners_find(o, "a", T0_MS, url, 8, &wanted), PGOWNERS_NONE);
    pgowners_free(o);
}

static void name_of(int i, char *out, size_t size)
{
    snprintf(out, size, "shop-%05d", i);
}

/* Many shops asked for in a random order (the seed is printed), each read
 * with its own URL: each is found with its own. */
static void test_many_shops_each_find_their_own_url(void **state)
{
    (void)state;
    unsigned seed = (unsigned)time(NULL);
    printf("seed %u (test_many_shops_each_find_their_own_url)\n", seed);
    srand(seed);
    enum { N = 500 };
    int order[N];
    for (int i = 0; i < N; i++) {
        order[i] = i;
    }
    for (int i = N - 1; i > 0; i--) {
        int k = rand() % (i + 1), t = order[i];
        order[i] = order[k];
        order[k] = t;
    }
    pgowners_t *o = pgowners_new();
    char name[32], url[PGOWNERS_URL_BYTES], want[64];
    bool wanted;
    for (int i = 0; i < N; i++) {
        name_of(order[i], name, sizeof name);
        assert_int_equal(find(o, name, T0_MS, url, &wanted), PGOWNERS_LOOKING);
        assert_true(wanted);
    }
    /* The wanted ones come in bytewise order: the reader merges them with
     * rows sorted so. */
    static char names[N][STORE_SHOP_NAME_MAX + 1];
    assert_int_equal(pgowners_wanted(o, names, N), N);
    for (int i = 1; i < N; i++) {
        assert_true(strcmp(names[i - 1], names[i]) < 0);
    }
    for (int i = 0; i < N; i++) {
        name_of(i, name, sizeof name);
        snprintf(want, sizeof want, "http://node-%d", i);
        pgowners_found(o, name, i % 7 == 0 ? NULL : want, T0_MS + 1);
    }
    for (int i = 0; i < N; i++) {
        name_of(i, name, sizeof name);
        pgowners_answer_t a = find(o, name, T0_MS + 2, url, &wanted);
        if (i % 7 == 0) {
            assert_int_equal(a, PGOWNERS_NONE);
        } else {
            snprintf(want, sizeof want, "http://node-%d", i);
            assert_int_equal(a, PGOWNERS_AT);
            assert_string_equal(url, want);
        }
    }
    pgowners_free(o);
}

/* At PGOWNERS_MAX shops: while all are wanted, a new one waits (no room,
 * no wake); once they are read, a new one takes the place of the one read
 * longest ago. */
static void test_the_cache_is_bounded(void **state)
{
    (void)state;
    pgowners_t *o = pgowners_new();
    char name[32], url[PGOWNERS_URL_BYTES];
    bool wanted;
    for (int i = 0; i < PGOWNERS_MAX; i++) {
        name_of(i, name, sizeof name);
        find(o, name, T0_MS, url, &wanted);
        assert_true(wanted);
    }
    assert_int_equal(find(o, "newcomer", T0_MS, url, &wanted), PGOWNERS_LOOKING);
    assert_false(wanted);
    static char names[PGOWNERS_MAX + 1][STORE_SHOP_NAME_MAX + 1];
    assert_int_equal(pgowners_wanted(o, names, PGOWNERS_MAX + 1), PGOWNERS_MAX);
    for (int i = 0; i < PGOWNERS_MAX; i++) { /* shop-00007 read first, the rest after */
        name_of(i, name, sizeof name);
        pgowners_found(o, name, "http://x", i == 7 ? T0_MS + 1 : T0_MS + 2);
    }
    assert_int_equal(find(o, "newcomer", T0_MS + 3, url, &wanted), PGOWNERS_LOOKING);
    assert_true(wanted);
    assert_int_equal(pgowners_wanted(o, names, PGOWNERS_MAX + 1), 1);
    assert_string_equal(names[0], "newcomer");
    assert_int_equal(find(o, "shop-00006", T0_MS + 3, url, &wanted), PGOWNERS_AT);
    assert_int_equal(find(o, "shop-00007", T0_MS + 3, url, &wanted), PGOWNERS_LOOKING);
    pgowners_free(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_an_unknown_shop_is_looked_up_once),
        cmocka_unit_test(test_answers_go_stale_and_are_read_again),
        cmocka_unit_test(test_a_url_too_long_to_keep_is_no_owner),
        cmocka_unit_test(test_many_shops_each_find_their_own_url),
        cmocka_unit_test(test_the_cache_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
