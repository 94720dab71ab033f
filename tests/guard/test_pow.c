/*
 * test_pow.c - the proof of work's contract, as pow.h states it: counting
 * zero bits, checking a proof, splitting the header, solving, and the
 * `holdfast solve` command's answers to good and bad arguments.
 *
 * The solver is held to a vector computed outside this code (see
 * VECTOR_NONCE), so that the C solver, the JavaScript one and the wire format
 * all agree on one value; tests/policy/test_pow_js.mjs holds the JavaScript
 * solver to the same vector.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the four headers above first. */
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pow.h"

/*
 * The fixed vector. Found by a Python loop over n = 0, 1, 2, ... that wrote n
 * in base 62 (digits 0-9A-Za-z) and hashed "holdfastPowVector2:" + that with
 * hashlib.sha256, stopping at the first digest with 16 leading zero bits: n =
 * 13858, nonce "3bW". Checked with
 *   printf 'holdfastPowVector2:3bW' | sha256sum
 * which prints 00006196ba6805990fc5a8d46acd9d634bb8b889435101b535d6a1c2377d98dd.
 */
#define VECTOR_PREFIX "holdfastPowVector2"
#define VECTOR_BITS 16u
#define VECTOR_NONCE "3bW"
#define VECTOR_TRIES 13859u
/* That digest begins 0x00 0x00 0x61: 17 zero bits, so 18 is not met. */
#define VECTOR_BITS_EXACT 17u

#define TRIES_PLENTY (UINT64_C(1) << 32)

static const char base62_digits[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* n in base 62 by division, written apart from pow.c's in-place counter so
 * that the two are checked against each other. */
static void base62(uint64_t n, char out[POW_NONCE_BYTES_MAX + 1])
{
    char reversed[POW_NONCE_BYTES_MAX];
    size_t len = 0;
    do {
        reversed[len++] = base62_digits[n % 62];
        n /= 62;
    } while (n != 0);
    for (size_t i = 0; i < len; i++) {
        out[i] = reversed[len - 1 - i];
    }
    out[len] = '\0';
}

static bool check(const char *prefix, const char *nonce, unsigned bits)
{
    return pow_check(prefix, strlen(prefix), nonce, strlen(nonce), bits);
}

/* ---- pow_leading_zero_bits ---- */

static void test_leading_zero_bits_count_from_the_first_bytes_top_bit(void **state)
{
    (void)state;
    uint8_t digest[POW_DIGEST_BYTES];

    memset(digest, 0xff, sizeof digest);
    assert_int_equal(pow_leading_zero_bits(digest), 0);

    memset(digest, 0, sizeof digest);
    digest[2] = 0x80;
    assert_int_equal(pow_leading_zero_bits(digest), 16);

    memset(digest, 0, sizeof digest);
    digest[0] = 0x01;
    assert_int_equal(pow_leading_zero_bits(digest), 7);

    memset(digest, 0xff, sizeof digest);
    digest[0] = 0x00;
    digest[1] = 0x7f;
    assert_int_equal(pow_leading_zero_bits(digest), 9);

    /* Bits after the first one do not count. */
    memset(digest, 0, sizeof digest);
    digest[3] = 0x10;
    digest[4] = 0xff;
    assert_int_equal(pow_leading_zero_bits(digest), 27);
}

static void test_leading_zero_bits_of_a_zero_digest_is_all_256(void **state)
{
    (void)state;
    uint8_t digest[POW_DIGEST_BYTES];
    memset(digest, 0, sizeof digest);
    assert_int_equal(pow_leading_zero_bits(digest), 256);
    digest[POW_DIGEST_BYTES - 1] = 0x01;
    assert_int_equal(pow_leading_zero_bits(digest), 255);
}

/* ---- pow_check ---- */

static void test_check_accepts_the_vector_up_to_its_exact_bits(void **state)
{
    (void)state;
    for (unsigned bits = 0; bits <= VECTOR_BITS_EXACT; bits++) {
        assert_true(check(VECTOR_PREFIX, VECTOR_NONCE, bits));
    }
    assert_false(check(VECTOR_PREFIX, VECTOR_NONCE, VECTOR_BITS_EXACT + 1));
    assert_false(check(VECTOR_PREFIX, VECTOR_NONCE, POW_BITS_MAX));
}

static void test_check_rejects_a_wrong_nonce(void **state)
{
    (void)state;
    /* The nonce before the vector's fails: the vector is the first to pass. */
    char before[POW_NONCE_BYTES_MAX + 1];
    base62(VECTOR_TRIES - 2, before);
    assert_false(check(VECTOR_PREFIX, before, VECTOR_BITS));
    /* The right nonce for another prefix, and one differing in case. */
    assert_false(check("holdfastPowVector1", VECTOR_NONCE, VECTOR_BITS));
    assert_false(check(VECTOR_PREFIX, "3bw", VECTOR_BITS));
    assert_false(check(VECTOR_PREFIX, "3bW0", VECTOR_BITS));
}

static void test_check_rejects_bad_characters_and_lengths_even_at_zero_bits(void **state)
{
    (void)state;
    static const char *const nonces_bad[] = {
        "", "a-b", "a b", "a:b", "ab=", "\xc3\xa9", "a\tb", "+1", "0x1F.", "_"};
    for (size_t i = 0; i < sizeof nonces_bad / sizeof nonces_bad[0]; i++) {
        assert_false(check("prefix", nonces_bad[i], 0));
    }
    /* A NUL inside the nonce is a bad character, not its end. */
    assert_false(pow_check("prefix", 6, "ab\0cd", 5, 0));

    char nonce_longest[POW_NONCE_BYTES_MAX + 2];
    memset(nonce_longest, 'z', POW_NONCE_BYTES_MAX + 1);
    nonce_longest[POW_NONCE_BYTES_MAX + 1] = '\0';
    assert_false(check("prefix", nonce_longest, 0));
    nonce_longest[POW_NONCE_BYTES_MAX] = '\0';
    assert_true(check("prefix", nonce_longest, 0));

    char prefix_longest[POW_PREFIX_BYTES_MAX + 2];
    memset(prefix_longest, 'P', POW_PREFIX_BYTES_MAX + 1);
    prefix_longest[POW_PREFIX_BYTES_MAX + 1] = '\0';
    assert_false(check(prefix_longest, "0", 0));
    prefix_longest[POW_PREFIX_BYTES_MAX] = '\0';
    assert_true(check(prefix_longest, "0", 0));

    assert_false(check("", "0", 0));
    assert_false(check("pre-fix", "0", 0));
    assert_false(check("pre:fix", "0", 0));
}

static void test_check_never_reads_past_the_lengths(void **state)
{
    (void)state;
    /* Buffers of exactly the given length, with no NUL after them: the
     * address sanitizer stops the test if a byte past them is read. */
    size_t prefix_len = strlen(VECTOR_PREFIX);
    size_t nonce_len = strlen(VECTOR_NONCE);
    char *prefix = malloc(prefix_len);
    char *nonce = malloc(nonce_len);
    assert_non_null(prefix);
    assert_non_null(nonce);
    memcpy(prefix, VECTOR_PREFIX, prefix_len);
    memcpy(nonce, VECTOR_NONCE, nonce_len);
    assert_true(pow_check(prefix, prefix_len, nonce, nonce_len, VECTOR_BITS));
    free(prefix);
    free(nonce);

    /* Bytes past the lengths, even bad ones, change nothing. */
    assert_true(pow_check(VECTOR_PREFIX "-junk", strlen(VECTOR_PREFIX), VECTOR_NONCE ":junk!",
                          strlen(VECTOR_NONCE), VECTOR_BITS));
}

/* ---- pow_parse_header ---- */

static bool parse(const char *value, size_t len, const char **prefix, size_t *prefix_len,
                  const char **nonce, size_t *nonce_len)
{
    return pow_parse_header(value, len, prefix, prefix_len, nonce, nonce_len);
}

static void test_parse_header_splits_prefix_and_nonce(void **state)
{
    (void)state;
    const char *value = VECTOR_PREFIX ":" VECTOR_NONCE;
    const char *prefix = NULL;
    const char *nonce = NULL;
    size_t prefix_len = 0;
    size_t nonce_len = 0;
    assert_true(parse(value, strlen(value), &prefix, &prefix_len, &nonce, &nonce_len));
    assert_ptr_equal(prefix, value);
    assert_int_equal(prefix_len, strlen(VECTOR_PREFIX));
    assert_ptr_equal(nonce, value + prefix_len + 1);
    assert_int_equal(nonce_len, strlen(VECTOR_NONCE));
    assert_true(pow_check(prefix, prefix_len, nonce, nonce_len, VECTOR_BITS));

    assert_true(parse("a:b", 3, &prefix, &prefix_len, &nonce, &nonce_len));
    assert_int_equal(prefix_len, 1);
    assert_int_equal(nonce_len, 1);
}

static void test_parse_header_rejects_malformed_values_and_changes_nothing(void **state)
{
    (void)state;
    static const char *const values_bad[] = {
        "",       ":",        "abc",     ":123",    "abc:",      "a:b:c",   "a::b",
        "::",     "abc:12 ",  " abc:12", "abc :12", "abc: 12",   "ab-c:12", "abc:1-2",
        "abc:1=", "abc:\xc3", "abc;12",  "abc=12",  "abc:12\r\n"};
    const char *prefix = "untouched";
    const char *nonce = "untouched";
    size_t prefix_len = 77;
    size_t nonce_len = 77;
    for (size_t i = 0; i < sizeof values_bad / sizeof values_bad[0]; i++) {
        const char *v = values_bad[i];
        assert_false(parse(v, strlen(v), &prefix, &prefix_len, &nonce, &nonce_len));
    }
    assert_false(parse("abc:1\0002", 7, &prefix, &prefix_len, &nonce, &nonce_len));
    assert_false(parse("a\0c:12", 6, &prefix, &prefix_len, &nonce, &nonce_len));
    assert_string_equal(prefix, "untouched");
    assert_string_equal(nonce, "untouched");
    assert_int_equal(prefix_len, 77);
    assert_int_equal(nonce_len, 77);
}

static void test_parse_header_holds_both_parts_to_their_limits(void **state)
{
    (void)state;
    char value[POW_MESSAGE_BYTES_MAX + 2];
    const char *prefix = NULL;
    const char *nonce = NULL;
    size_t prefix_len = 0;
    size_t nonce_len = 0;

    /* The longest of both: 64 + 1 + 32 bytes. */
    memset(value, 'P', POW_PREFIX_BYTES_MAX);
    value[POW_PREFIX_BYTES_MAX] = ':';
    memset(value + POW_PREFIX_BYTES_MAX + 1, 'n', POW_NONCE_BYTES_MAX);
    assert_true(parse(value, POW_MESSAGE_BYTES_MAX, &prefix, &prefix_len, &nonce, &nonce_len));
    assert_int_equal(prefix_len, POW_PREFIX_BYTES_MAX);
    assert_int_equal(nonce_len, POW_NONCE_BYTES_MAX);

    /* One more nonce byte. */
    value[POW_MESSAGE_BYTES_MAX] = 'n';
    assert_false(parse(value, POW_MESSAGE_BYTES_MAX + 1, &prefix, &prefix_len, &nonce, &nonce_len));

    /* One more prefix byte, with a short nonce. */
    memset(value, 'P', POW_PREFIX_BYTES_MAX + 1);
    value[POW_PREFIX_BYTES_MAX + 1] = ':';
    value[POW_PREFIX_BYTES_MAX + 2] = 'n';
    assert_false(parse(value, POW_PREFIX_BYTES_MAX + 3, &prefix, &prefix_len, &nonce, &nonce_len));
}

static void test_parse_header_never_reads_past_len(void **state)
{
    (void)state;
    const char *prefix = NULL;
    const char *nonce = NULL;
    size_t prefix_len = 0;
    size_t nonce_len = 0;
    /* Cut before the junk: accepted, and the nonce ends at len. */
    assert_true(parse("abc:12:junk", 6, &prefix, &prefix_len, &nonce, &nonce_len));
    assert_int_equal(nonce_len, 2);
    /* Cut before the colon: no colon, whatever follows. */
    assert_false(parse("abc:12", 3, &prefix, &prefix_len, &nonce, &nonce_len));

    char *exact = malloc(6);
    assert_non_null(exact);
    memcpy(exact, "abc:12", 6);
    assert_true(parse(exact, 6, &prefix, &prefix_len, &nonce, &nonce_len));
    free(exact);
}

/* ---- pow_solve ---- */

static void test_solve_at_zero_bits_returns_the_first_nonce(void **state)
{
    (void)state;
    char nonce[POW_NONCE_BYTES_MAX + 1];
    uint64_t tries = 0;
    assert_true(pow_solve("p", 1, 0, 1, nonce, &tries));
    assert_string_equal(nonce, "0");
    assert_int_equal(tries, 1);
}

static void test_solve_then_check_round_trips_for_bits_0_to_16(void **state)
{
    (void)state;
    static const char *const prefixes[] = {"a", "Zz09", VECTOR_PREFIX};
    for (size_t p = 0; p < sizeof prefixes / sizeof prefixes[0]; p++) {
        const char *prefix = prefixes[p];
        for (unsigned bits = 0; bits <= 16; bits++) {
            char nonce[POW_NONCE_BYTES_MAX + 1];
            char expected[POW_NONCE_BYTES_MAX + 1];
            uint64_t tries = 0;
            assert_true(pow_solve(prefix, strlen(prefix), bits, TRIES_PLENTY, nonce, &tries));
            assert_true(check(prefix, nonce, bits));
            /* The nonce is the base 62 form of its try count minus one. */
            assert_true(tries >= 1);
            base62(tries - 1, expected);
            assert_string_equal(nonce, expected);
        }
    }
}

static void test_solve_finds_the_independently_computed_vector(void **state)
{
    (void)state;
    char nonce[POW_NONCE_BYTES_MAX + 1];
    uint64_t tries = 0;
    assert_true(
        pow_solve(VECTOR_PREFIX, strlen(VECTOR_PREFIX), VECTOR_BITS, TRIES_PLENTY, nonce, &tries));
    assert_string_equal(nonce, VECTOR_NONCE);
    assert_int_equal(tries, VECTOR_TRIES);
}

static void test_solve_gives_up_after_tries_max(void **state)
{
    (void)state;
    char nonce[POW_NONCE_BYTES_MAX + 1];
    uint64_t tries = 0;
    /* The vector needs 13859 tries; one fewer is not enough. */
    assert_false(pow_solve(VECTOR_PREFIX, strlen(VECTOR_PREFIX), VECTOR_BITS, VECTOR_TRIES - 1,
                           nonce, &tries));
    assert_string_equal(nonce, "");
    assert_int_equal(tries, VECTOR_TRIES - 1);

    /* 32 bits within a thousand tries: a 1 in 4 million chance, and not so
     * for this prefix (the test is deterministic). */
    assert_false(pow_solve("p", 1, POW_BITS_MAX, 1000, nonce, &tries));
    assert_string_equal(nonce, "");
    assert_int_equal(tries, 1000);

    assert_false(pow_solve("p", 1, 0, 0, nonce, &tries));
    assert_int_equal(tries, 0);
}

static void test_solve_counts_past_three_digits_to_a_second_vector(void **state)
{
    (void)state;
    /* Found as VECTOR_NONCE was, for 20 bits: n = 1884563, nonce "7uGB";
     *   printf 'holdfastPowVector1:7uGB' | sha256sum
     * prints 00000890996d8aba20a5d2124f12e5cf8938862cda507be61a8afb803f9f49f6.
     * Past 62^3 tries, so the counter took every kind of carry on the way:
     * 9 to A, Z to a, and z to a new digit, three times. */
    char nonce[POW_NONCE_BYTES_MAX + 1];
    uint64_t tries = 0;
    assert_true(pow_solve("holdfastPowVector1", 18, 20, TRIES_PLENTY, nonce, &tries));
    assert_string_equal(nonce, "7uGB");
    assert_int_equal(tries, 1884564);
}

/* ---- pow_cli_solve ---- */

/* Runs `holdfast solve` with its output streams sent to files, and returns
 * its status; *out receives what it printed on stdout. */
static int run_cli(int argc, char **argv, char *out, size_t out_size)
{
    FILE *out_file = tmpfile();
    FILE *err_file = tmpfile();
    assert_non_null(out_file);
    assert_non_null(err_file);
    fflush(stdout);
    fflush(stderr);
    int out_saved = dup(STDOUT_FILENO);
    int err_saved = dup(STDERR_FILENO);
    assert_true(out_saved >= 0 && err_saved >= 0);
    assert_true(dup2(fileno(out_file), STDOUT_FILENO) >= 0);
    assert_true(dup2(fileno(err_file), STDERR_FILENO) >= 0);

    int status = pow_cli_solve(argc, argv);

    fflush(stdout);
    fflush(stderr);
    assert_true(dup2(out_saved, STDOUT_FILENO) >= 0);
    assert_true(dup2(err_saved, STDERR_FILENO) >= 0);
    close(out_saved);
    close(err_saved);
    rewind(out_file);
    size_t n = fread(out, 1, out_size - 1, out_file);
    out[n] = '\0';
    fclose(out_file);
    fclose(err_file);
    return status;
}

static void test_cli_prints_the_header_value(void **state)
{
    (void)state;
    char out[256];
    char *argv[] = {"solve", VECTOR_PREFIX, "16", NULL};
    assert_int_equal(run_cli(3, argv, out, sizeof out), 0);
    assert_string_equal(out, VECTOR_PREFIX ":" VECTOR_NONCE "\n");
}

static void test_cli_refuses_bad_arguments_with_status_2(void **state)
{
    (void)state;
    char out[256];
    static const char *const bits_bad[] = {"33", "99999999999", "-1", "", "16x", " 8", "1.5"};
    for (size_t i = 0; i < sizeof bits_bad / sizeof bits_bad[0]; i++) {
        char *argv[] = {"solve", "abc", (char *)bits_bad[i], NULL};
        assert_int_equal(run_cli(3, argv, out, sizeof out), 2);
        assert_string_equal(out, "");
    }
    char *prefix_bad[] = {"solve", "ab-c", "4", NULL};
    assert_int_equal(run_cli(3, prefix_bad, out, sizeof out), 2);
    char *prefix_empty[] = {"solve", "", "4", NULL};
    assert_int_equal(run_cli(3, prefix_empty, out, sizeof out), 2);
    char *too_few[] = {"solve", "abc", NULL};
    assert_int_equal(run_cli(2, too_few, out, sizeof out), 2);
    char *too_many[] = {"solve", "abc", "4", "5", NULL};
    assert_int_equal(run_cli(4, too_many, out, sizeof out), 2);
    char *help[] = {"solve", "--help", NULL};
    assert_int_equal(run_cli(2, help, out, sizeof out), 0);
    assert_non_null(strstr(out, "usage: holdfast solve PREFIX BITS"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_leading_zero_bits_count_from_the_first_bytes_top_bit),
        cmocka_unit_test(test_leading_zero_bits_of_a_zero_digest_is_all_256),
        cmocka_unit_test(test_check_accepts_the_vector_up_to_its_exact_bits),
        cmocka_unit_test(test_check_rejects_a_wrong_nonce),
        cmocka_unit_test(test_check_rejects_bad_characters_and_lengths_even_at_zero_bits),
        cmocka_unit_test(test_check_never_reads_past_the_lengths),
        cmocka_unit_test(test_parse_header_splits_prefix_and_nonce),
        cmocka_unit_test(test_parse_header_rejects_malformed_values_and_changes_nothing),
        cmocka_unit_test(test_parse_header_holds_both_parts_to_their_limits),
        cmocka_unit_test(test_parse_header_never_reads_past_len),
        cmocka_unit_test(test_solve_at_zero_bits_returns_the_first_nonce),
        cmocka_unit_test(test_solve_then_check_round_trips_for_bits_0_to_16),
        cmocka_unit_test(test_solve_finds_the_independently_computed_vector),
        cmocka_unit_test(test_solve_gives_up_after_tries_max),
        cmocka_unit_test(test_solve_counts_past_three_digits_to_a_second_vector),
        cmocka_unit_test(test_cli_prints_the_header_value),
        cmocka_unit_test(test_cli_refuses_bad_arguments_with_status_2),
    };
    return cmocka_run_group_tests_name("pow", tests, NULL, NULL);
}
