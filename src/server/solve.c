/*
 * solve.c - `holdfast solve PREFIX BITS`: answers a challenge as a client
 * would, to try the server by hand and to time what a given bits costs.
 *
 * Arguments are checked here, at the edge, with a message that names the bad
 * one; pow_solve() asserts what is checked here.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "pow.h"

/* At 32 bits a nonce takes 2^32 tries on average; 2^40 is 256 times that, so
 * running out means a bug, not bad luck (the chance is about e^-256). At ten
 * million hashes a second it is also about 30 hours, a bound on a stuck run. */
#define POW_CLI_TRIES_MAX (UINT64_C(1) << 40)

static const char usage_solve[] =
    "usage: holdfast solve PREFIX BITS\n"
    "\n"
    "Answers a proof-of-work challenge (a 428 reply) as a client would: finds a\n"
    "NONCE such that SHA-256(\"PREFIX:NONCE\") begins with BITS zero bits and prints\n"
    "PREFIX:NONCE, the value for the Holdfast-Proof header.\n"
    "\n"
    "  PREFIX   the challenge's prefix: 1-64 characters of [0-9A-Za-z]\n"
    "  BITS     the challenge's bits: a whole number from 0 to 32\n"
    "\n"
    "Prints tries=N ms=M on stderr: how many nonces were hashed, and how long that took.\n";

static int refuse(const char *what, const char *value, const char *why)
{
    fprintf(stderr, "holdfast solve: %s \"%s\": %s\n\n%s", what, value, why, usage_solve);
    return 2;
}

/* Parses BITS: decimal digits only, at most POW_BITS_MAX, so that "16x",
 * "-1" and " 8" are refused rather than read as something else. */
static bool parse_bits(const char *text, unsigned *bits)
{
    if (text[0] == '\0') {
        return false;
    }
    unsigned value = 0;
    for (const char *c = text; *c != '\0'; c++) {
        if (*c < '0' || *c > '9') {
            return false;
        }
        value = value * 10 + (unsigned)(*c - '0');
        if (value > POW_BITS_MAX) {
            return false;
        }
    }
    *bits = value;
    return true;
}

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool wants_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

int pow_cli_solve(int argc, char **argv)
{
    if (argc == 2 && wants_help(argv[1])) {
        fputs(usage_solve, stdout);
        return 0;
    }
    if (argc != 3) {
        fprintf(stderr, "holdfast solve: expected two arguments, PREFIX and BITS\n\n%s",
                usage_solve);
        return 2;
    }
    const char *prefix = argv[1];
    size_t prefix_len = strlen(prefix);
    if (!pow_prefix_valid(prefix, prefix_len)) {
        return refuse("PREFIX", prefix, "expected 1-64 characters of [0-9A-Za-z]");
    }
    unsigned bits = 0;
    if (!parse_bits(argv[2], &bits)) {
        return refuse("BITS", argv[2], "expected a whole number from 0 to 32");
    }

    char nonce[POW_NONCE_BYTES_MAX + 1];
    uint64_t tries = 0;
    int64_t start_ms = monotonic_ms();
    bool found = pow_solve(prefix, prefix_len, bits, POW_CLI_TRIES_MAX, nonce, &tries);
    int64_t elapsed_ms = monotonic_ms() - start_ms;

    if (found) {
        printf("%s:%s\n", prefix, nonce);
    }
    fprintf(stderr, "tries=%" PRIu64 " ms=%" PRId64 "\n", tries, elapsed_ms);
    if (!found) {
        fprintf(stderr, "holdfast solve: no nonce found%s\n",
                tries < POW_CLI_TRIES_MAX ? ": libcrypto could not hash" : "");
        return 1;
    }
    if (fflush(stdout) != 0) {
        perror("holdfast solve: stdout");
        return 1;
    }
    return 0;
}
