/*
 * proof.c - the proof of work: checking, parsing and solving it (pow.h
 * states the wire format and the contracts); the challenges a guard issues
 * and verifies (guard.h); the proofs it has spent (proof.h). The one file
 * of the guard that uses OpenSSL.
 *
 * Invariants kept here:
 *   1. Nothing is read outside value[0..len), prefix[0..prefix_len) or
 *      nonce[0..nonce_len): a header value from the network carries no NUL.
 *   2. Lengths are checked against their limits before any byte is copied,
 *      so every message fits in POW_MESSAGE_BYTES_MAX on the stack.
 *   3. The solver's nonce is always the base 62 form of its try count minus
 *      one, so it agrees with web/pow/solver.js nonce for nonce.
 */
#include "pow.h"

#include <assert.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "index.h"
#include "proof.h"

_Static_assert(POW_DIGEST_BYTES == SHA256_DIGEST_LENGTH, "a digest is a SHA-256 digest");

/* The digits in base 62 order. Tested by ASCII range, not isalnum(), whose
 * answer depends on the locale. */
static bool base62_digit(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* True iff s[0..len) is 1..len_max base 62 digits. */
static bool base62_valid(const char *s, size_t len, size_t len_max)
{
    if (len == 0 || len > len_max) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!base62_digit(s[i])) {
            return false;
        }
    }
    return true;
}

/* Writes "prefix:" into message and returns where the nonce goes. The caller
 * has checked prefix_len, so the message has room for any nonce. */
static char *message_start(char message[POW_MESSAGE_BYTES_MAX], const char *prefix,
                           size_t prefix_len)
{
    assert(prefix_len <= POW_PREFIX_BYTES_MAX);
    memcpy(message, prefix, prefix_len);
    message[prefix_len] = ':';
    return message + prefix_len + 1;
}

unsigned pow_leading_zero_bits(const uint8_t digest[POW_DIGEST_BYTES])
{
    assert(digest != NULL);
    unsigned bits = 0;
    for (size_t i = 0; i < POW_DIGEST_BYTES; i++) {
        unsigned byte = digest[i];
        if (byte != 0) {
            while ((byte & 0x80u) == 0) {
                bits++;
                byte <<= 1;
            }
            return bits;
        }
        bits += 8;
    }
    return bits;
}

bool pow_prefix_valid(const char *prefix, size_t prefix_len)
{
    assert(prefix != NULL);
    return base62_valid(prefix, prefix_len, POW_PREFIX_BYTES_MAX);
}

bool pow_check(const char *prefix, size_t prefix_len, const char *nonce, size_t nonce_len,
               unsigned bits)
{
    assert(prefix != NULL);
    assert(nonce != NULL);
    assert(bits <= POW_BITS_MAX);
    if (!pow_prefix_valid(prefix, prefix_len) ||
        !base62_valid(nonce, nonce_len, POW_NONCE_BYTES_MAX)) {
        return false;
    }
    char message[POW_MESSAGE_BYTES_MAX];
    memcpy(message_start(message, prefix, prefix_len), nonce, nonce_len);
    size_t message_len = prefix_len + 1 + nonce_len;
    assert(message_len <= POW_MESSAGE_BYTES_MAX);

    uint8_t digest[POW_DIGEST_BYTES];
    if (SHA256((const unsigned char *)message, message_len, digest) == NULL) {
        return false;
    }
    return pow_leading_zero_bits(digest) >= bits;
}

bool pow_parse_header(const char *value, size_t len, const char **prefix, size_t *prefix_len,
                      const char **nonce, size_t *nonce_len)
{
    assert(value != NULL);
    assert(prefix != NULL && prefix_len != NULL);
    assert(nonce != NULL && nonce_len != NULL);
    if (len > POW_MESSAGE_BYTES_MAX) {
        return false;
    }
    const char *colon = memchr(value, ':', len);
    if (colon == NULL) {
        return false;
    }
    size_t p_len = (size_t)(colon - value);
    size_t n_len = len - p_len - 1;
    /* A second colon is not a base 62 digit, so the nonce's check refuses it. */
    if (!pow_prefix_valid(value, p_len) || !base62_valid(colon + 1, n_len, POW_NONCE_BYTES_MAX)) {
        return false;
    }
    *prefix = value;
    *prefix_len = p_len;
    *nonce = colon + 1;
    *nonce_len = n_len;
    return true;
}

/* The digit after c in base 62 order; c is not the last digit, 'z'. */
static char digit_next(char c)
{
    assert(base62_digit(c) && c != 'z');
    if (c == '9') {
        return 'A';
    }
    if (c == 'Z') {
        return 'a';
    }
    return (char)(c + 1);
}

/* Adds one to the base 62 number nonce[0..len), in place, and returns its new
 * length. Counting in place costs a few bytes' work a try, not a division per
 * digit, and gives the same digits as writing the try count out afresh. */
static size_t nonce_increment(char *nonce, size_t len)
{
    for (size_t i = len; i-- > 0;) {
        if (nonce[i] != 'z') {
            nonce[i] = digit_next(nonce[i]);
            return len;
        }
        nonce[i] = '0';
    }
    /* Every digit was z: the number gains a digit, a 1 before the zeros. A
     * 64-bit count needs 11 digits, so this never runs past the limit. */
    assert(len < POW_NONCE_BYTES_MAX);
    nonce[0] = '1';
    nonce[len] = '0';
    return len + 1;
}

/* The search itself, hashing with a context and digest that the caller set up
 * once: in OpenSSL 3 the one-shot SHA256() looks the algorithm up on every
 * call, which makes it about three times slower than reusing a fetched one. */
static bool search(EVP_MD_CTX *ctx, const EVP_MD *md, const char *prefix, size_t prefix_len,
                   unsigned bits, uint64_t tries_max, char nonce_out[POW_NONCE_BYTES_MAX + 1],
                   uint64_t *tries_out)
{
    char message[POW_MESSAGE_BYTES_MAX];
    char *nonce = message_start(message, prefix, prefix_len);
    size_t nonce_len = 1;
    nonce[0] = '0';
    for (uint64_t tries = 0; tries < tries_max; tries++) {
        uint8_t digest[POW_DIGEST_BYTES];
        if (EVP_DigestInit_ex(ctx, md, NULL) != 1 ||
            EVP_DigestUpdate(ctx, message, prefix_len + 1 + nonce_len) != 1 ||
            EVP_DigestFinal_ex(ctx, digest, NULL) != 1) {
            *tries_out = tries;
            return false;
        }
        if (pow_leading_zero_bits(digest) >= bits) {
            memcpy(nonce_out, nonce, nonce_len);
            nonce_out[nonce_len] = '\0';
            *tries_out = tries + 1;
            return true;
        }
        nonce_len = nonce_increment(nonce, nonce_len);
    }
    *tries_out = tries_max;
    return false;
}

bool pow_solve(const char *prefix, size_t prefix_len, unsigned bits, uint64_t tries_max,
               char nonce_out[POW_NONCE_BYTES_MAX + 1], uint64_t *tries_out)
{
    assert(prefix != NULL && pow_prefix_valid(prefix, prefix_len));
    assert(bits <= POW_BITS_MAX);
    assert(nonce_out != NULL && tries_out != NULL);
    nonce_out[0] = '\0';
    *tries_out = 0;

    EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool found = false;
    if (md != NULL && ctx != NULL) {
        found = search(ctx, md, prefix, prefix_len, bits, tries_max, nonce_out, tries_out);
    }
    EVP_MD_CTX_free(ctx);
    EVP_MD_free(md);

    assert(*tries_out <= tries_max);
    assert(!found || pow_check(prefix, prefix_len, nonce_out, strlen(nonce_out), bits));
    return found;
}

/* ------------------------------------------------------------ challenges */

/* The challenge's MAC binds its difficulty, its expiry and the request. */
static uint64_t challenge_tag(const guard_t *g, uint64_t request_hash, uint32_t bits,
                              int64_t expires_ms)
{
    uint8_t msg[17], mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    msg[0] = (uint8_t)bits;
    for (int i = 0; i < 8; i++) {
        msg[1 + i] = (uint8_t)((uint64_t)expires_ms >> (8 * i));
        msg[9 + i] = (uint8_t)(request_hash >> (8 * i));
    }
    HMAC(EVP_sha256(), g->secret, GUARD_SECRET_BYTES, msg, sizeof msg, mac, &mac_len);
    assert(mac_len >= 8);
    uint64_t tag = 0;
    for (int i = 0; i < 8; i++) {
        tag = tag << 8 | mac[i];
    }
    return tag == 0 ? 1 : tag; /* 0 means "no proof" */
}

int64_t guard_challenge_make(const guard_t *g, uint64_t request_hash, uint32_t bits, int64_t now_ms,
                             char *out)
{
    assert(g->has_secret && bits >= 1 && bits <= 32);
    int64_t expires_ms = now_ms + g->policy.challenge_ttl_ms;
    uint64_t tag = challenge_tag(g, request_hash, bits, expires_ms);
    int n = snprintf(out, GUARD_PREFIX_TEXT_MAX + 1, "%02x%012llx%016llx", bits,
                     (unsigned long long)expires_ms, (unsigned long long)tag);
    assert(n == GUARD_PREFIX_TEXT_LEN);
    return expires_ms;
}

static bool parse_hex(const char *text, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = text[i];
        int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        if (d < 0) {
            return false;
        }
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return true;
}

bool guard_challenge_verify(const guard_t *g, uint64_t request_hash, const char *header,
                            size_t header_len, int64_t now_ms, uint64_t *tag_out,
                            int64_t *expires_ms_out, uint32_t *bits_out)
{
    const char *prefix, *nonce;
    size_t prefix_len, nonce_len;
    uint64_t bits, expires_ms, tag;
    if (!g->has_secret ||
        !pow_parse_header(header, header_len, &prefix, &prefix_len, &nonce, &nonce_len) ||
        prefix_len != GUARD_PREFIX_TEXT_LEN || !parse_hex(prefix, 2, &bits) ||
        !parse_hex(prefix + 2, 12, &expires_ms) || !parse_hex(prefix + 14, 16, &tag)) {
        return false;
    }
    if (bits < 1 || bits > 32 || (int64_t)expires_ms <= now_ms ||
        challenge_tag(g, request_hash, (uint32_t)bits, (int64_t)expires_ms) != tag) {
        return false; /* not ours, not for this request, or too late */
    }
    if (!pow_check(prefix, prefix_len, nonce, nonce_len, (unsigned)bits)) {
        return false;
    }
    *tag_out = tag;
    *expires_ms_out = (int64_t)expires_ms;
    *bits_out = (uint32_t)bits;
    return true;
}

/* --------------------------------------------------------- spent proofs */

uint64_t proof_hash_of(const void *g, uint32_t i)
{
    return index_mix64(((const guard_t *)g)->proofs[i].tag);
}

bool proof_used(const guard_t *g, uint64_t tag)
{
    for (uint32_t b = (uint32_t)index_mix64(tag) & g->proof_index_mask; g->proof_index[b] != 0;
         b = (b + 1) & g->proof_index_mask) {
        if (g->proofs[g->proof_index[b] - 1].tag == tag) {
            return true;
        }
    }
    return false;
}

void proof_add(guard_t *g, uint64_t tag, int64_t expires_ms)
{
    assert(g->proof_count < g->config.proofs_max && !proof_used(g, tag));
    uint32_t i = (g->proof_head + g->proof_count) % g->config.proofs_max;
    g->proofs[i] = (guard_proof_t){.tag = tag, .expires_ms = expires_ms};
    index_insert(g->proof_index, g->proof_index_mask, index_mix64(tag), i);
    g->proof_count++;
}

/* Proofs are added in about expiry order, so the head goes first. */
void proof_forget(guard_t *g, int64_t now_ms)
{
    while (g->proof_count > 0 && g->proofs[g->proof_head].expires_ms <= now_ms) {
        uint32_t i = g->proof_head;
        index_delete(g->proof_index, g->proof_index_mask, index_mix64(g->proofs[i].tag), i,
                     proof_hash_of, g);
        g->proof_head = (g->proof_head + 1) % g->config.proofs_max;
        g->proof_count--;
    }
}
