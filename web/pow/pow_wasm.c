/*
 * pow_wasm.c - the browser's proof-of-work search, compiled to WebAssembly
 * (web/pow/pow.wasm, built by web/pow/CMakeLists.txt) and driven by
 * solver.js.
 *
 * Why it exists: WebCrypto hashes one message per promise, about 85 thousand
 * a second in a browser, while a bot's native solver does ten million. The
 * challenge is meant to cost a real shopper a second and a hoarder a fortune;
 * a browser a hundred times slower than the bots turns that around. Here the
 * whole loop runs inside the module, and each try is one or two SHA-256
 * compressions with nothing else around them.
 *
 * The challenge (src/guard/pow.h): find NONCE such that SHA-256("PREFIX:NONCE")
 * begins with BITS zero bits. The nonces are tried in the reference order, the
 * counter 0, 1, 2, ... in base 62 (0-9, A-Z, a-z, no leading zeros), so this
 * search, solver.js's WebCrypto search and pow_solve() in src/guard/proof.c
 * find the same nonce.
 *
 * The interface is two exports and the module's memory. JS writes the prefix's
 * ASCII bytes at pow_prefix_buffer(), then calls
 *
 *     pow_search(prefix_len, bits, start, count)
 *
 * which hashes the counters start, start + 1, ..., start + count - 1 and
 * returns the offset of the first that passes, POW_SEARCH_NONE (-1) if none
 * does, or POW_SEARCH_REFUSED (-2) for arguments outside the limits below.
 * start is a double because JS numbers are; every counter a JS caller can
 * name exactly (below 2^53) is accepted. A call keeps no state between calls,
 * so interleaved solves (two in one page) cannot disturb each other.
 *
 * SHA-256 is written here from FIPS 180-4 (sections 4.1.2, 4.2.2, 5.1.1,
 * 5.3.3 and 6.2.2); there is no libc. What makes it fast:
 *   - The message is at most 64 + 1 + 9 bytes, so at most two blocks. The
 *     blocks and rounds that see no nonce byte are the same for every try:
 *     they are run once per layout (search_layout()) and each try starts from
 *     the saved state, skipping up to 15 rounds and a whole first block.
 *   - The message lives as big-endian words with its padding and length
 *     already in place; a try changes only the nonce's bytes, counting in
 *     place (nonce_increment()) rather than writing the counter out again.
 *   - BITS is at most 32, so the first digest word decides; the others are
 *     never added up, and the compiler drops the work that only they need.
 *
 * Invariants of a search_t between tries (search_check()):
 *   1. nonce[0..nonce_len) is counter in base 62, without leading zeros, and
 *      nonce_len is 1..POW_NONCE_DIGITS_MAX.
 *   2. words[] holds "PREFIX:NONCE", the 0x80 byte, zeros and the bit length,
 *      big-endian, over `blocks` blocks (1 or 2) and zeros after them.
 *   3. No byte of a block before block_first, and no word before round_first
 *      of block block_first, is a nonce byte: chain is the state after the
 *      blocks before block_first, and midround the working variables after
 *      round_first rounds of block block_first, as round_step() leaves them.
 */
#include <stdbool.h>
#include <stdint.h>

/* Wire format (API contract, pow.h): a prefix is 1-64 characters. */
#define POW_PREFIX_BYTES_MAX 64
/* Wire format (API contract, pow.h). */
#define POW_BITS_MAX 32
/* JS numbers are exact integers below 2^53, so no JS caller can count
 * further; the limit keeps the nonce at POW_NONCE_DIGITS_MAX digits. */
#define POW_COUNTER_END (UINT64_C(1) << 53)
/* 62^9 > 2^53 > 62^8: the digits of the largest counter. */
#define POW_NONCE_DIGITS_MAX 9
/* "PREFIX:NONCE" at its longest: 74 bytes, with the 9 bytes of padding at
 * least, is more than one 64-byte block and less than two. */
#define POW_MESSAGE_BYTES_MAX (POW_PREFIX_BYTES_MAX + 1 + POW_NONCE_DIGITS_MAX)
#define POW_BLOCK_BYTES 64
#define POW_BLOCK_WORDS 16
#define POW_BLOCKS_MAX 2
#define POW_ROUNDS 64

#define POW_SEARCH_NONE (-1)
#define POW_SEARCH_REFUSED (-2)

/* Asserts stay on, as everywhere in holdfast. There is no abort() here; a trap stops the
 * call and surfaces in JS as a WebAssembly.RuntimeError. */
#define POW_ASSERT(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

/* FIPS 180-4 5.3.3: the initial hash value. */
static const uint32_t sha256_initial[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

/* FIPS 180-4 4.2.2: the round constants. */
static const uint32_t sha256_k[POW_ROUNDS] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static const char base62_digits[62] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

typedef struct search_s {
    uint32_t words[POW_BLOCKS_MAX * POW_BLOCK_WORDS];
    uint32_t chain[8];
    uint32_t midround[8];
    uint32_t blocks;
    uint32_t block_first;
    uint32_t round_first;
    uint32_t prefix_len;
    uint32_t nonce_len;
    uint64_t counter;
    char nonce[POW_NONCE_DIGITS_MAX];
} search_t;

/* Where JS writes the prefix; read only during pow_search(). */
static char prefix_buffer[POW_PREFIX_BYTES_MAX];

/* ------------------------------------------------------------ SHA-256 */

static inline uint32_t rotr(uint32_t x, unsigned n)
{
    return x >> n | x << (32 - n);
}

/* FIPS 180-4 4.1.2. Ch and Maj in forms with one operation fewer, equal to
 * the standard's bit for bit. */
static inline uint32_t ch(uint32_t x, uint32_t y, uint32_t z)
{
    return z ^ (x & (y ^ z));
}

static inline uint32_t maj(uint32_t x, uint32_t y, uint32_t z)
{
    return (x & y) | (z & (x | y));
}

static inline uint32_t big_sigma0(uint32_t x)
{
    return rotr(x, 2) ^ rotr(x, 13) ^ rotr(x, 22);
}

static inline uint32_t big_sigma1(uint32_t x)
{
    return rotr(x, 6) ^ rotr(x, 11) ^ rotr(x, 25);
}

static inline uint32_t small_sigma0(uint32_t x)
{
    return rotr(x, 7) ^ rotr(x, 18) ^ (x >> 3);
}

static inline uint32_t small_sigma1(uint32_t x)
{
    return rotr(x, 17) ^ rotr(x, 19) ^ (x >> 10);
}

/* Round i of FIPS 180-4 6.2.2 step 3. Instead of moving a..h along one
 * place, the round writes the two that change where h and d were, so the
 * variables rotate through v[]: at round i, a is v[(0 - i) & 7], b is
 * v[(1 - i) & 7] and so on. After 64 rounds (a multiple of 8) a is v[0]
 * again. Unrolled, i is a constant and v[] becomes eight registers. */
static inline __attribute__((always_inline)) void round_step(uint32_t v[8], unsigned i,
                                                             uint32_t w_i)
{
#define V(j) v[((j) - i) & 7]
    uint32_t t1 = V(7) + big_sigma1(V(4)) + ch(V(4), V(5), V(6)) + sha256_k[i] + w_i;
    uint32_t t2 = big_sigma0(V(0)) + maj(V(0), V(1), V(2));
    V(3) += t1;
    V(7) = t1 + t2;
#undef V
}

/* Rounds round_first..63 of block m from the working variables v (as
 * round_step() left them after round_first rounds), fully unrolled: the
 * switch jumps into the unrolled rounds at round_first, so a try does only
 * the rounds that see a nonce byte. The caller adds v to the chaining value. */
static inline __attribute__((always_inline)) void compress_from(uint32_t v[8], unsigned round_first,
                                                                const uint32_t m[POW_BLOCK_WORDS])
{
    uint32_t w[POW_ROUNDS];
#pragma clang loop unroll(full)
    for (unsigned t = 0; t < POW_BLOCK_WORDS; t++) {
        w[t] = m[t];
    }
#pragma clang loop unroll(full)
    for (unsigned t = POW_BLOCK_WORDS; t < POW_ROUNDS; t++) {
        w[t] = small_sigma1(w[t - 2]) + w[t - 7] + small_sigma0(w[t - 15]) + w[t - 16];
    }
    switch (round_first) {
    case 0:
        round_step(v, 0, w[0]);
        __attribute__((fallthrough));
    case 1:
        round_step(v, 1, w[1]);
        __attribute__((fallthrough));
    case 2:
        round_step(v, 2, w[2]);
        __attribute__((fallthrough));
    case 3:
        round_step(v, 3, w[3]);
        __attribute__((fallthrough));
    case 4:
        round_step(v, 4, w[4]);
        __attribute__((fallthrough));
    case 5:
        round_step(v, 5, w[5]);
        __attribute__((fallthrough));
    case 6:
        round_step(v, 6, w[6]);
        __attribute__((fallthrough));
    case 7:
        round_step(v, 7, w[7]);
        __attribute__((fallthrough));
    case 8:
        round_step(v, 8, w[8]);
        __attribute__((fallthrough));
    case 9:
        round_step(v, 9, w[9]);
        __attribute__((fallthrough));
    case 10:
        round_step(v, 10, w[10]);
        __attribute__((fallthrough));
    case 11:
        round_step(v, 11, w[11]);
        __attribute__((fallthrough));
    case 12:
        round_step(v, 12, w[12]);
        __attribute__((fallthrough));
    case 13:
        round_step(v, 13, w[13]);
        __attribute__((fallthrough));
    case 14:
        round_step(v, 14, w[14]);
        __attribute__((fallthrough));
    case 15:
        round_step(v, 15, w[15]);
        break;
    default:
        POW_ASSERT(false);
    }
#pragma clang loop unroll(full)
    for (unsigned t = POW_BLOCK_WORDS; t < POW_ROUNDS; t++) {
        round_step(v, t, w[t]);
    }
}

/* Rounds 0..rounds_count - 1 of block m, rolled: the per-layout work, where
 * code size matters more than speed. rounds_count is 0..64. */
static void rounds_slow(uint32_t v[8], unsigned rounds_count, const uint32_t m[POW_BLOCK_WORDS])
{
    POW_ASSERT(rounds_count <= POW_ROUNDS);
    uint32_t w[POW_ROUNDS];
    for (unsigned t = 0; t < POW_ROUNDS; t++) {
        w[t] = t < POW_BLOCK_WORDS
                   ? m[t]
                   : small_sigma1(w[t - 2]) + w[t - 7] + small_sigma0(w[t - 15]) + w[t - 16];
    }
    for (unsigned t = 0; t < rounds_count; t++) {
        round_step(v, t, w[t]);
    }
}

/* ------------------------------------------------------------ the message */

/* Byte i of the message, in its big-endian word. */
static inline void message_set_byte(search_t *s, unsigned i, uint8_t byte)
{
    unsigned shift = 24 - 8 * (i & 3);
    uint32_t *word = &s->words[i >> 2];
    *word = (*word & ~(UINT32_C(0xff) << shift)) | (uint32_t)byte << shift;
}

static inline unsigned nonce_at(const search_t *s)
{
    return s->prefix_len + 1;
}

/* The digit after c in base 62 order; c is not the last digit, 'z'. */
static inline char digit_next(char c)
{
    return c == '9' ? 'A' : c == 'Z' ? 'a' : (char)(c + 1);
}

/* Adds one to the nonce, in place, in its text and in the message. The
 * caller never counts past nonce_len digits (it lays the message out afresh
 * at 62^nonce_len), so the carry stops inside the nonce. */
static inline void nonce_increment(search_t *s)
{
    for (unsigned i = s->nonce_len; i-- > 0;) {
        char c = s->nonce[i];
        char next = c == 'z' ? '0' : digit_next(c);
        s->nonce[i] = next;
        message_set_byte(s, nonce_at(s) + i, (uint8_t)next);
        if (c != 'z') {
            s->counter++;
            return;
        }
    }
    POW_ASSERT(false);
}

/* 62^digits, the first counter that has more than `digits` digits. */
static uint64_t base62_end(unsigned digits)
{
    POW_ASSERT(digits <= POW_NONCE_DIGITS_MAX);
    uint64_t end = 1;
    for (unsigned i = 0; i < digits; i++) {
        end *= 62;
    }
    return end;
}

/* Writes counter out in base 62 into s->nonce and s->nonce_len. */
static void nonce_write(search_t *s, uint64_t counter)
{
    POW_ASSERT(counter < POW_COUNTER_END);
    char reversed[POW_NONCE_DIGITS_MAX];
    unsigned len = 0;
    do {
        reversed[len++] = base62_digits[counter % 62];
        counter /= 62;
    } while (counter > 0);
    for (unsigned i = 0; i < len; i++) {
        s->nonce[i] = reversed[len - 1 - i];
    }
    s->nonce_len = len;
}

/*
 * Lays out "PREFIX:NONCE" for the counter: the words with their padding and
 * length (FIPS 180-4 5.1.1), how many blocks, and the state before the first
 * nonce byte (invariant 3). Runs once per call and once each time the nonce
 * gains a digit.
 */
static void search_layout(search_t *s, uint64_t counter)
{
    nonce_write(s, counter);
    s->counter = counter;
    unsigned message_len = nonce_at(s) + s->nonce_len;
    POW_ASSERT(message_len <= POW_MESSAGE_BYTES_MAX);
    for (unsigned i = 0; i < POW_BLOCKS_MAX * POW_BLOCK_WORDS; i++) {
        s->words[i] = 0;
    }
    for (unsigned i = 0; i < s->prefix_len; i++) {
        message_set_byte(s, i, (uint8_t)prefix_buffer[i]);
    }
    message_set_byte(s, s->prefix_len, ':');
    for (unsigned i = 0; i < s->nonce_len; i++) {
        message_set_byte(s, nonce_at(s) + i, (uint8_t)s->nonce[i]);
    }
    message_set_byte(s, message_len, 0x80);
    /* A 0x80 byte and a 64-bit length must follow the message. */
    s->blocks = (message_len + 1 + 8 + POW_BLOCK_BYTES - 1) / POW_BLOCK_BYTES;
    POW_ASSERT(s->blocks >= 1 && s->blocks <= POW_BLOCKS_MAX);
    /* The length in bits is under 2^32, so the upper length word stays 0. */
    s->words[s->blocks * POW_BLOCK_WORDS - 1] = message_len * 8;

    s->block_first = nonce_at(s) / POW_BLOCK_BYTES;
    s->round_first = nonce_at(s) % POW_BLOCK_BYTES / 4;
    for (unsigned i = 0; i < 8; i++) {
        s->chain[i] = sha256_initial[i];
    }
    for (unsigned b = 0; b < s->block_first; b++) {
        uint32_t v[8];
        for (unsigned i = 0; i < 8; i++) {
            v[i] = s->chain[i];
        }
        rounds_slow(v, POW_ROUNDS, &s->words[b * POW_BLOCK_WORDS]);
        for (unsigned i = 0; i < 8; i++) {
            s->chain[i] += v[i];
        }
    }
    for (unsigned i = 0; i < 8; i++) {
        s->midround[i] = s->chain[i];
    }
    rounds_slow(s->midround, s->round_first, &s->words[s->block_first * POW_BLOCK_WORDS]);
}

/* Invariant 1, and the part of 2 that tries change: the nonce's bytes in
 * words[]. The rest of 2, and 3, are set by search_layout() alone and are
 * checked by the tests, which compare every layout with node:crypto;
 * recomputing them here would cost what they save. */
static bool search_check(const search_t *s)
{
    if (s->nonce_len < 1 || s->nonce_len > POW_NONCE_DIGITS_MAX ||
        (s->nonce_len > 1 && s->nonce[0] == '0') || s->block_first >= s->blocks ||
        s->round_first >= POW_BLOCK_WORDS) {
        return false;
    }
    uint64_t counter = 0;
    for (unsigned i = 0; i < s->nonce_len; i++) {
        char c = s->nonce[i];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'A' && c <= 'Z' ? (unsigned)(c - 'A' + 10)
                     : c >= 'a' && c <= 'z' ? (unsigned)(c - 'a' + 36)
                                            : 62;
        if (d == 62) {
            return false;
        }
        counter = counter * 62 + d;
        unsigned at = nonce_at(s) + i;
        if ((s->words[at >> 2] >> (24 - 8 * (at & 3)) & 0xff) != (uint8_t)c) {
            return false;
        }
    }
    return counter == s->counter;
}

/* ------------------------------------------------------------ the search */

/* The first word of the digest of the current message. The first block
 * starts from midround; a second, if any, from the first's result. */
static inline __attribute__((always_inline)) uint32_t digest_word0(const search_t *s)
{
    uint32_t v[8];
    for (unsigned i = 0; i < 8; i++) {
        v[i] = s->midround[i];
    }
    compress_from(v, s->round_first, &s->words[s->block_first * POW_BLOCK_WORDS]);
    if (s->block_first + 1 == s->blocks) {
        return s->chain[0] + v[0];
    }
    uint32_t state[8];
    for (unsigned i = 0; i < 8; i++) {
        state[i] = s->chain[i] + v[i];
        v[i] = state[i];
    }
    compress_from(v, 0, &s->words[POW_BLOCK_WORDS]);
    return state[0] + v[0];
}

static bool prefix_valid(unsigned prefix_len)
{
    if (prefix_len < 1 || prefix_len > POW_PREFIX_BYTES_MAX) {
        return false;
    }
    for (unsigned i = 0; i < prefix_len; i++) {
        char c = prefix_buffer[i];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) {
            return false;
        }
    }
    return true;
}

/* Where JS writes the prefix, POW_PREFIX_BYTES_MAX bytes, before each
 * pow_search(). */
__attribute__((export_name("pow_prefix_buffer"))) char *pow_prefix_buffer(void)
{
    return prefix_buffer;
}

/*
 * Hashes "PREFIX:" + base62(counter) for counter = start, start + 1, ...,
 * start + count - 1, PREFIX being prefix_buffer[0..prefix_len), and returns
 * the offset from start of the first counter whose digest begins with `bits`
 * zero bits, or POW_SEARCH_NONE.
 *
 * Returns POW_SEARCH_REFUSED, having hashed nothing, unless the prefix is
 * 1-64 characters of [0-9A-Za-z], bits is 0..32, start is a whole number,
 * count is not negative and start + count <= 2^53. count is an int32 so that
 * every offset fits the result; solver.js asks for 65536 at a time.
 */
__attribute__((export_name("pow_search"))) int32_t pow_search(int32_t prefix_len, int32_t bits,
                                                              double start, int32_t count)
{
    /* Written so that NaN fails every comparison and is refused. */
    if (!prefix_valid((unsigned)prefix_len) || !(bits >= 0 && bits <= POW_BITS_MAX) ||
        !(start >= 0 && start < (double)POW_COUNTER_END) || !(count >= 0) ||
        start != (double)(uint64_t)start || (uint64_t)start + (uint64_t)count > POW_COUNTER_END) {
        return POW_SEARCH_REFUSED;
    }
    /* bits == 0 masks nothing: every digest passes. */
    uint32_t mask = bits == 0 ? 0 : ~UINT32_C(0) << (32 - bits);
    uint64_t first = (uint64_t)start;
    uint64_t end = first + (uint64_t)count;

    if (first == end) {
        return POW_SEARCH_NONE;
    }
    search_t s;
    s.prefix_len = (uint32_t)prefix_len;
    search_layout(&s, first);
    POW_ASSERT(search_check(&s));
    while (s.counter < end) {
        /* Until the nonce gains a digit, the layout holds. */
        uint64_t run_end = base62_end(s.nonce_len);
        run_end = run_end < end ? run_end : end;
        for (;;) {
            if ((digest_word0(&s) & mask) == 0) {
                POW_ASSERT(search_check(&s));
                return (int32_t)(s.counter - first);
            }
            if (s.counter + 1 == run_end) {
                break;
            }
            nonce_increment(&s);
        }
        if (run_end < end) {
            search_layout(&s, run_end);
            POW_ASSERT(search_check(&s));
        } else {
            s.counter = end;
        }
    }
    return POW_SEARCH_NONE;
}
