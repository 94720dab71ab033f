/*
 * test_history_ring.c - the dashboard's history (src/server/history.h) driven
 * with the time passed in: the points a known sequence leaves, the hour
 * that rolls on, seconds a late tick skipped, which skus are kept when more
 * are active than there are rings, and that no sku is ever kept twice.
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

#include "hf_mix.h"
#include "history.h"

/* Some instant well after the epoch, on a second's start. */
#define T0_MS 1765432100000LL
#define N HF_HISTORY_SECONDS

static int setup(void **state)
{
    history_t *h = calloc(1, sizeof *h);
    if (h == NULL || history_init(h) != 0) {
        free(h);
        return -1;
    }
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    history_t *h = *state;
    history_deinit(h);
    free(h);
    return 0;
}

static history_point_t point(int64_t stock, int64_t held, int64_t sold)
{
    return (history_point_t){.stock = stock, .held = held, .sold = sold};
}

/* What the server's tick does at now_ms for one sku whose totals are p. */
static void tick(history_t *h, int64_t now_ms, uint32_t sku, history_point_t p)
{
    if (history_due(h, now_ms)) {
        history_record(h, sku, now_ms, &p);
    }
    assert_true(history_check(h));
}

static history_point_t *read_all(const history_t *h, uint32_t sku, int64_t since_ms,
                                 int64_t *first_ms, uint32_t *count)
{
    history_point_t *out = calloc(N, sizeof *out);
    assert_non_null(out);
    *count = history_read(h, sku, since_ms, first_ms, out);
    return out;
}

static void test_a_known_sequence_leaves_a_point_a_second(void **state)
{
    history_t *h = *state;
    history_note(h, 7, T0_MS);
    /* Ticks every 10 ms for 3.5 s: held goes 0, 2 (at 1.2 s), then sold 1 (at 2.5 s). */
    for (int64_t t = 0; t <= 3500; t += 10) {
        history_point_t p = t < 1200 ? point(10, 0, 0) : t < 2500 ? point(10, 2, 0) : point(10, 1, 1);
        p.denials = t >= 2500 ? 3 : 0;
        p.escalated = t >= 3000;
        tick(h, T0_MS + t, 7, p);
    }
    int64_t first_ms;
    uint32_t count;
    history_point_t *pts = read_all(h, 7, 0, &first_ms, &count);
    /* One point a second, at the first tick of each: 0, 1, 2, 3 s. */
    assert_int_equal(count, 4);
    assert_int_equal(first_ms, T0_MS);
    const int64_t held[] = {0, 0, 2, 1}, sold[] = {0, 0, 0, 1}, denials[] = {0, 0, 0, 3};
    for (uint32_t i = 0; i < count; i++) {
        assert_int_equal(pts[i].stock, 10);
        assert_int_equal(pts[i].held, held[i]);
        assert_int_equal(pts[i].sold, sold[i]);
        assert_int_equal(pts[i].denials, denials[i]);
        assert_int_equal(pts[i].escalated, i == 3);
    }
    free(pts);
    /* since: the points at or after it, to the millisecond. */
    pts = read_all(h, 7, T0_MS + 2000, &first_ms, &count);
    assert_int_equal(count, 2);
    assert_int_equal(first_ms, T0_MS + 2000);
    free(pts);
    pts = read_all(h, 7, T0_MS + 2001, &first_ms, &count);
    assert_int_equal(count, 1);
    assert_int_equal(first_ms, T0_MS + 3000);
    free(pts);
    pts = read_all(h, 7, T0_MS + 3001, &first_ms, &count);
    assert_int_equal(count, 0);
    free(pts);
    /* A sku never noted has no points. */
    pts = read_all(h, 8, 0, &first_ms, &count);
    assert_int_equal(count, 0);
    assert_false(history_tracks(h, 8));
    free(pts);
}

static void test_the_hour_rolls_on(void **state)
{
    history_t *h = *state;
    history_note(h, 1, T0_MS);
    /* An hour and a half, a tick a second: held counts the seconds. */
    int64_t seconds = N + N / 2;
    for (int64_t s = 0; s < seconds; s++) {
        tick(h, T0_MS + s * 1000 + 5, 1, point(1000000, s, 0));
    }
    int64_t first_ms;
    uint32_t count;
    history_point_t *pts = read_all(h, 1, 0, &first_ms, &count);
    assert_int_equal(count, N);
    assert_int_equal(first_ms, T0_MS + (seconds - N) * 1000);
    for (uint32_t i = 0; i < count; i++) {
        assert_int_equal(pts[i].held, seconds - N + i); /* in order, none twice, none missing */
    }
    free(pts);
}

static void test_a_late_tick_repeats_what_was_known(void **state)
{
    history_t *h = *state;
    history_note(h, 3, T0_MS);
    tick(h, T0_MS, 3, point(5, 1, 0));
    tick(h, T0_MS + 1000, 3, point(5, 2, 0));
    tick(h, T0_MS + 4200, 3, point(5, 4, 0)); /* seconds 2 and 3 had no tick */
    tick(h, T0_MS + 4900, 3, point(5, 0, 0)); /* the same second again: kept once */
    int64_t first_ms;
    uint32_t count;
    history_point_t *pts = read_all(h, 3, 0, &first_ms, &count);
    assert_int_equal(count, 5);
    const int64_t held[] = {1, 2, 2, 2, 4};
    for (uint32_t i = 0; i < count; i++) {
        assert_int_equal(pts[i].held, held[i]);
    }
    free(pts);
    /* A jump past the hour leaves an hour, all the last known point but the new one. */
    tick(h, T0_MS + 4200 + 2 * N * 1000LL, 3, point(5, 5, 0));
    pts = read_all(h, 3, 0, &first_ms, &count);
    assert_int_equal(count, N);
    assert_int_equal(pts[0].held, 4);
    assert_int_equal(pts[N - 2].held, 4);
    assert_int_equal(pts[N - 1].held, 5);
    free(pts);
}

/* Notes within one ms (a burst of stock puts) keep their order: the later
 * noted is the more recent, so the first of the burst goes first. */
static void test_notes_in_one_ms_keep_their_order(void **state)
{
    history_t *h = *state;
    const uint32_t max = HF_HISTORY_SKUS_MAX;
    for (uint32_t i = 0; i < max + 6; i++) {
        history_note(h, i, T0_MS); /* all in the same ms */
        assert_true(history_check(h));
    }
    uint32_t tracked[HF_HISTORY_SKUS_MAX];
    assert_int_equal(history_tracked(h, tracked), max);
    assert_int_equal(tracked[0], max + 5);
    assert_int_equal(tracked[max - 1], 6);
    assert_false(history_tracks(h, 5));
    assert_true(history_tracks(h, 6));
}

/* More skus active than rings: the least recently noted gives its ring up,
 * seeded ones before any noted one, and never more than the rings. */
static void test_the_most_recently_active_skus_are_kept(void **state)
{
    history_t *h = *state;
    const uint32_t max = HF_HISTORY_SKUS_MAX;
    for (uint32_t i = 0; i < max + 10; i++) {
        history_seed(h, i); /* only the first max fit */
    }
    uint32_t tracked[HF_HISTORY_SKUS_MAX];
    assert_int_equal(history_tracked(h, tracked), max);
    assert_false(history_tracks(h, max));
    /* sku 1000 is noted: the last seeded in catalog order goes first */
    history_note(h, 1000, T0_MS);
    assert_true(history_tracks(h, 1000));
    assert_false(history_tracks(h, max - 1));
    assert_true(history_tracks(h, 0));
    /* notes on skus 2000.. fill every ring; then the oldest note goes */
    for (uint32_t i = 0; i < max; i++) {
        history_note(h, 2000 + i, T0_MS + 1 + i);
        assert_true(history_check(h));
    }
    assert_int_equal(history_tracked(h, tracked), max);
    assert_false(history_tracks(h, 1000));
    assert_false(history_tracks(h, 0));
    assert_int_equal(tracked[0], 2000 + max - 1); /* most recent first */
    assert_int_equal(tracked[max - 1], 2000);
    /* noting 2000 again makes it the most recent: 2001 goes next */
    history_note(h, 2000, T0_MS + 1000);
    history_note(h, 3000, T0_MS + 1001);
    assert_true(history_tracks(h, 2000));
    assert_false(history_tracks(h, 2001));
    /* a sku that comes back starts with no points */
    if (history_due(h, T0_MS + 2000)) {
        history_point_t p = point(1, 0, 0);
        history_record(h, 3000, T0_MS + 2000, &p);
    }
    int64_t first_ms;
    uint32_t count;
    history_point_t *pts = read_all(h, 3000, 0, &first_ms, &count);
    assert_int_equal(count, 1);
    free(pts);
    history_note(h, 2001, T0_MS + 3000);
    pts = read_all(h, 2001, 0, &first_ms, &count);
    assert_int_equal(count, 0);
    free(pts);
}

/* Random notes and ticks: at most the rings' count of skus, each once, the
 * invariants after every step, points never going back. The seed is
 * printed; HF_SEED=N runs that one. */
static void test_random_notes_and_ticks_keep_the_bounds(void **state)
{
    history_t *h = *state;
    const char *env = getenv("HF_SEED");
    uint64_t seed = env != NULL ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
    uint64_t rng = seed;
    printf("test_history: seed %llu\n", (unsigned long long)seed);
    int64_t now_ms = T0_MS;
    for (int step = 0; step < 20000; step++) {
        uint64_t x = hf_splitmix64(&rng);
        now_ms += (int64_t)(x % 700);
        if (x % 3 == 0) {
            history_note(h, (uint32_t)(x >> 32) % 200, now_ms);
        } else if (history_due(h, now_ms)) {
            uint32_t skus[HF_HISTORY_SKUS_MAX];
            uint32_t n = history_tracked(h, skus);
            assert_true(n <= HF_HISTORY_SKUS_MAX);
            for (uint32_t i = 0; i < n; i++) {
                history_point_t p = point(100, (int64_t)(x % 50), 0);
                history_record(h, skus[i], now_ms, &p);
            }
        }
        assert_true(history_check(h));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_known_sequence_leaves_a_point_a_second, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_the_hour_rolls_on, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_late_tick_repeats_what_was_known, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notes_in_one_ms_keep_their_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_the_most_recently_active_skus_are_kept, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_random_notes_and_ticks_keep_the_bounds, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("history", tests, NULL, NULL);
}
