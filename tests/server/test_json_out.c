/*
 * test_json_out.c - the reply writer's numbers and separators: integers at
 * their edges and at random (the seed is printed; HF_SEED=N replays one)
 * read back by jansson as the same values.
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
#include <jansson.h>

#include "json_out.h"

#define RANDOM_INTS 10000

static void test_integers_at_their_edges(void **state)
{
    (void)state;
    static const int64_t values[] = {0, 7, -1, 10, -10, 1234567890123, INT64_MAX, INT64_MIN};
    json_out_t j;
    json_out_init(&j);
    jw_arr_begin(&j);
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        jw_int(&j, values[i]);
    }
    jw_arr_end(&j);
    assert_string_equal(j.data, "[0,7,-1,10,-10,1234567890123,9223372036854775807,"
                                "-9223372036854775808]");
    json_out_free(&j);
}

static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void test_random_integers_read_back_as_written(void **state)
{
    (void)state;
    const char *env = getenv("HF_SEED");
    uint64_t seed = env != NULL ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
    printf("test_json_out: seed %llu (HF_SEED=%llu replays it)\n", (unsigned long long)seed,
           (unsigned long long)seed);
    uint64_t s = seed;
    int64_t *values = malloc(RANDOM_INTS * sizeof *values);
    assert_non_null(values);
    json_out_t j;
    json_out_init(&j);
    jw_obj_begin(&j);
    jw_key(&j, "v");
    jw_arr_begin(&j);
    for (int i = 0; i < RANDOM_INTS; i++) {
        /* every length of number, both signs */
        values[i] = (int64_t)(next(&s) >> (next(&s) % 64));
        values[i] = (next(&s) & 1) && values[i] != INT64_MIN ? -values[i] : values[i];
        jw_int(&j, values[i]);
    }
    jw_arr_end(&j);
    jw_kint(&j, "n", RANDOM_INTS);
    jw_obj_end(&j);
    json_error_t err;
    json_t *doc = json_loads(j.data, 0, &err);
    assert_non_null(doc);
    json_t *v = json_object_get(doc, "v");
    assert_int_equal(json_array_size(v), RANDOM_INTS);
    assert_int_equal(json_integer_value(json_object_get(doc, "n")), RANDOM_INTS);
    for (int i = 0; i < RANDOM_INTS; i++) {
        assert_int_equal(json_integer_value(json_array_get(v, (size_t)i)), values[i]);
    }
    json_decref(doc);
    json_out_free(&j);
    free(values);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_integers_at_their_edges),
        cmocka_unit_test(test_random_integers_read_back_as_written),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
