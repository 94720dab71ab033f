/*
 * pow.h - the proof of work of the anti-hoarding challenge: checking a proof,
 * splitting the header that carries it, and finding one.
 *
 * A client that the policy judges to be hoarding gets a 428 with a challenge
 * {"alg": "sha256", "prefix": P, "bits": B, "expires_at": ...} and retries
 * with the header
 *
 *     Holdfast-Proof: P:NONCE
 *
 * The proof holds when the SHA-256 digest of the ASCII bytes "P:NONCE" begins
 * with B zero bits, counted from the most significant bit of the first byte.
 * Checking costs one hash; finding a nonce costs 2^B hashes on average, which
 * is what makes a thousand fake carts expensive and one real cart cheap.
 *
 * The wire format, fixed by the API contract:
 *   1. P is 1-64 characters of [0-9A-Za-z], opaque to the client.
 *   2. NONCE is 1-32 characters of [0-9A-Za-z].
 *   3. B is 0..32.
 *   4. The header value is exactly P, one colon, NONCE: no spaces, no second
 *      colon.
 *
 * The reference solvers (pow_solve() here, web/pow/solver.js in the browser)
 * try the nonces 0, 1, 2, ... written in base 62 with the digits
 * 0-9, A-Z, a-z in that order, most significant digit first and without
 * leading zeros, and return the first that passes. Any nonce that passes is a
 * valid proof; the fixed order only makes the two solvers agree, so each can
 * be tested against the other.
 *
 * Everything here but pow_cli_solve() is pure: no globals, no clock, no I/O.
 * This file does not issue prefixes, expire them or remember spent ones: the
 * caller checks that P is one it issued and has not yet accepted, then calls
 * pow_check().
 */
#ifndef HF_POW_H
#define HF_POW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Wire format (API contract): a nonce is 1-32 characters. The base 62
 * counter needs at most 11 (2^64 < 62^11), so 32 is never the solver's limit. */
#define POW_NONCE_BYTES_MAX 32
/* Wire format (API contract): a prefix is 1-64 characters. */
#define POW_PREFIX_BYTES_MAX 64
/* Wire format (API contract). At 32 bits a proof costs about 4 * 10^9 hashes:
 * minutes for the C solver, hours for a browser, so no real challenge comes
 * near it. */
#define POW_BITS_MAX 32
/* A SHA-256 digest. */
#define POW_DIGEST_BYTES 32
/* "P:NONCE" at its longest. */
#define POW_MESSAGE_BYTES_MAX (POW_PREFIX_BYTES_MAX + 1 + POW_NONCE_BYTES_MAX)

/* Returns the number of leading zero bits of digest, from the most
 * significant bit of digest[0] on: 0..256, 256 for an all-zero digest. */
unsigned pow_leading_zero_bits(const uint8_t digest[POW_DIGEST_BYTES]);

/* Returns true iff prefix is 1..POW_PREFIX_BYTES_MAX characters of
 * [0-9A-Za-z]. Reads only prefix[0..prefix_len). */
bool pow_prefix_valid(const char *prefix, size_t prefix_len);

/* Returns true iff nonce is 1..POW_NONCE_BYTES_MAX characters of
 * [0-9A-Za-z], prefix is valid as pow_prefix_valid() says, and the SHA-256
 * of "prefix:nonce" begins with at least bits zero bits. Reads only
 * prefix[0..prefix_len) and nonce[0..nonce_len); neither needs a terminating
 * NUL. bits must be at most POW_BITS_MAX (the caller chose it).
 *
 * If libcrypto cannot hash (it allocates, so only when out of memory), false
 * is returned: a proof that cannot be checked is not accepted. */
bool pow_check(const char *prefix, size_t prefix_len, const char *nonce, size_t nonce_len,
               unsigned bits);

/* Splits a Holdfast-Proof header value, value[0..len), into its prefix and
 * nonce, which point into value. Returns true iff the value is a valid prefix,
 * exactly one colon and a valid nonce (wire format above). It says nothing
 * about whether the proof holds: that is pow_check().
 *
 * On failure, false is returned and the four outputs are not changed. */
bool pow_parse_header(const char *value, size_t len, const char **prefix, size_t *prefix_len,
                      const char **nonce, size_t *nonce_len);

/* Finds the first nonce, in the base 62 order above, for which
 * pow_check(prefix, prefix_len, nonce, ..., bits) holds, trying at most
 * tries_max nonces. prefix must be valid (pow_prefix_valid()) and bits at
 * most POW_BITS_MAX.
 *
 * On success, true is returned, nonce_out holds the nonce with a terminating
 * NUL and *tries_out the number of nonces hashed, the found one included (so
 * the nonce is tries - 1 written in base 62). On failure, false is returned,
 * nonce_out is the empty string and *tries_out says how many were hashed:
 * tries_max when they ran out, fewer if libcrypto could not hash (out of
 * memory). */
bool pow_solve(const char *prefix, size_t prefix_len, unsigned bits, uint64_t tries_max,
               char nonce_out[POW_NONCE_BYTES_MAX + 1], uint64_t *tries_out);

/*
 * The command `holdfast solve PREFIX BITS` (pow_cli.c), the one function here
 * that does I/O: a reference client and a way to time a challenge. argv is as
 * a command's main() sees it, argv[0] being the command name ("solve"), so the
 * dispatcher calls pow_cli_solve(argc - 1, argv + 1).
 *
 * Prints "PREFIX:NONCE\n" (the header value) on stdout and "tries=N ms=M\n" on
 * stderr and returns 0. On bad arguments it prints the usage on stderr and
 * returns 2; with --help, prints it on stdout and returns 0. Returns 1 if no
 * nonce was found.
 */
int pow_cli_solve(int argc, char **argv);

#endif
