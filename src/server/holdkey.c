/*
 * holdkey.c - hold ids and secrets at the server's edge.
 *
 * The engine numbers its holds (sequence << 28 | slot); the journal, the
 * guard and the simulator depend on those numbers, and whoever sees one can
 * guess the next. So the server never shows them. On the wire:
 *
 *   id      "hold_" and 11 base62 digits of P(engine id), where P is a
 *           permutation of the 64-bit numbers keyed by the data directory's
 *           key: a 4-round Feistel network over the two 32-bit halves, its
 *           round function SipHash-2-4 (a keyed hash made for short inputs).
 *           Consecutive holds get unrelated ids, and another data directory
 *           gives the same engine hold another id.
 *   secret  "hs_" and the base64url of the first 16 bytes of
 *           HMAC-SHA256(secret key, 'h' || engine id): derived, so nothing
 *           is stored and an idempotent replay of the create gets the same
 *           secret again. A waitlist entry's is "ws_", with 'w'.
 *
 * The id key and the secret key are derived from the file's key (store.h)
 * with HMAC under two labels, so one use can never reveal the other's key.
 *
 * A hold made before the data directory had its key (the key file records
 * the engine's hold sequence then) keeps the id it was given, in the
 * engine's spelling ("h_..."): a holdfast that knew no other gave it out,
 * and its clients may still hold it. For any later hold that spelling was
 * never given out, only guessed, and names nothing; so every hold has
 * exactly one id.
 *
 * Everything here is read-only after holdkey_init, so the HTTP threads call
 * it without a lock. HMAC is OpenSSL's: holdkey_init keys one context and
 * each call copies it (EVP_MAC_CTX_dup takes it const, which OpenSSL allows
 * concurrently), a tenth of the cost of keying a new one. SipHash is our
 * own few lines, because the permutation runs it 4 times for every id shown
 * or read and a copied OpenSSL context costs ten times the hash; at start
 * it must agree with OpenSSL's SipHash (siphash_agrees), or the server
 * does not start.
 */
#include <assert.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "holdkey.h"
#include "server.h"

#define ID_PREFIX "hold_"
#define ID_PREFIX_BYTES 5
#define ID_DIGITS 11 /* 62^11 > 2^64 */
#define SECRET_MAC_BYTES 16 /* 128 bits */
#define SECRET_PREFIX_BYTES 3
#define FEISTEL_ROUNDS 4 /* 4 rounds: a strong pseudo-random permutation (Luby-Rackoff) */
_Static_assert(ID_PREFIX_BYTES + ID_DIGITS == HOLDKEY_ID_TEXT_MAX, "the id's length");
_Static_assert(ENGINE_HOLD_ID_TEXT_MAX <= HOLDKEY_ID_TEXT_MAX, "an id from before fits too");
_Static_assert(SECRET_PREFIX_BYTES + (SECRET_MAC_BYTES * 8 + 5) / 6 == HOLDKEY_SECRET_TEXT_MAX,
               "the secret's length");

static const char base62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
static const char base64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* OpenSSL fails here only when it cannot allocate a few hundred bytes: the
 * process cannot answer anything sensible then. */
static void must(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "level=error msg=\"%s failed\"\n", what);
        abort();
    }
}

/* ---------------------------------------------------------------- SipHash */

static uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

static void sip_round(uint64_t v[4])
{
    v[0] += v[1], v[1] = rotl(v[1], 13), v[1] ^= v[0], v[0] = rotl(v[0], 32);
    v[2] += v[3], v[3] = rotl(v[3], 16), v[3] ^= v[2];
    v[0] += v[3], v[3] = rotl(v[3], 21), v[3] ^= v[0];
    v[2] += v[1], v[1] = rotl(v[1], 17), v[1] ^= v[2], v[2] = rotl(v[2], 32);
}

static uint64_t load_le64(const uint8_t *p, size_t n)
{
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        x |= (uint64_t)p[i] << (8 * i);
    }
    return x;
}

/* SipHash-2-4 with a 64-bit result (Aumasson and Bernstein, 2012). */
static uint64_t siphash24(const uint64_t key[2], const uint8_t *msg, size_t len)
{
    uint64_t v[4] = {key[0] ^ 0x736f6d6570736575ull, key[1] ^ 0x646f72616e646f6dull,
                     key[0] ^ 0x6c7967656e657261ull, key[1] ^ 0x7465646279746573ull};
    size_t whole = len - len % 8;
    for (size_t i = 0; i <= whole; i += 8) {
        /* the last block: what is left, and the length in its top byte */
        uint64_t m = i < whole ? load_le64(msg + i, 8)
                               : load_le64(msg + i, len - whole) | (uint64_t)len << 56;
        v[3] ^= m;
        sip_round(v);
        sip_round(v);
        v[0] ^= m;
    }
    v[2] ^= 0xff;
    for (int i = 0; i < 4; i++) {
        sip_round(v);
    }
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* A context of mac keyed with key (HMAC: over SHA-256; SipHash: 8 bytes
 * out), or NULL. */
static EVP_MAC_CTX *keyed(EVP_MAC *mac, bool hmac, const uint8_t *key, size_t key_len)
{
    char digest[] = "SHA256";
    size_t size = 8;
    OSSL_PARAM params[2] = {hmac ? OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                                    digest, 0)
                                 : OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size),
                            OSSL_PARAM_construct_end()};
    EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    if (ctx != NULL && EVP_MAC_init(ctx, key, key_len, params) != 1) {
        EVP_MAC_CTX_free(ctx);
        ctx = NULL;
    }
    return ctx;
}

/* The MAC of msg under base's key: out_size bytes. */
static void mac_of(const EVP_MAC_CTX *base, const uint8_t *msg, size_t msg_len, uint8_t *out,
                   size_t out_size, const char *what)
{
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(base);
    size_t out_len = 0;
    must(ctx != NULL && EVP_MAC_update(ctx, msg, msg_len) == 1 &&
             EVP_MAC_final(ctx, out, &out_len, out_size) == 1 && out_len == out_size,
         what);
    EVP_MAC_CTX_free(ctx);
}

/* Whether siphash24 gives what OpenSSL's SipHash-2-4 gives under key, for
 * messages of every length a block can end at (0 to 16 bytes). */
static bool siphash_agrees(EVP_MAC *openssl, const uint8_t key[16], const uint64_t ours_key[2])
{
    EVP_MAC_CTX *base = keyed(openssl, false, key, 16);
    bool same = base != NULL;
    uint8_t msg[16];
    for (size_t len = 0; same && len <= sizeof msg; len++) {
        uint8_t theirs[8];
        mac_of(base, msg, len, theirs, sizeof theirs, "SipHash");
        same = load_le64(theirs, 8) == siphash24(ours_key, msg, len);
        if (len < sizeof msg) {
            msg[len] = (uint8_t)(0x5a ^ len * 37);
        }
    }
    EVP_MAC_CTX_free(base);
    return same;
}

int holdkey_init(holdkey_t *k, const store_key_t *sk)
{
    static const char id_label[] = "holdfast hold id permutation v1";
    static const char secret_label[] = "holdfast hold secret v1";
    uint8_t id_key[32], secret_key[32];
    memset(k, 0, sizeof *k);
    EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC *siphash = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
    EVP_MAC_CTX *root = keyed(hmac, true, sk->key, STORE_KEY_BYTES);
    bool ok = root != NULL;
    if (ok) {
        mac_of(root, (const uint8_t *)id_label, sizeof id_label - 1, id_key, 32, "HMAC-SHA256");
        mac_of(root, (const uint8_t *)secret_label, sizeof secret_label - 1, secret_key, 32,
               "HMAC-SHA256");
        k->id_key[0] = load_le64(id_key, 8); /* SipHash takes 128 bits */
        k->id_key[1] = load_le64(id_key + 8, 8);
        k->hmac = keyed(hmac, true, secret_key, sizeof secret_key);
        ok = k->hmac != NULL && siphash_agrees(siphash, id_key, k->id_key);
    }
    OPENSSL_cleanse(id_key, sizeof id_key);
    OPENSSL_cleanse(secret_key, sizeof secret_key);
    EVP_MAC_CTX_free(root);
    EVP_MAC_free(hmac);
    EVP_MAC_free(siphash);
    k->legacy_hold_seq = sk->legacy_hold_seq;
    if (!ok) {
        holdkey_deinit(k);
        return -1;
    }
    return 0;
}

void holdkey_deinit(holdkey_t *k)
{
    EVP_MAC_CTX_free(k->hmac); /* the context clears its key */
    OPENSSL_cleanse(k, sizeof *k);
}

/* ---------------------------------------------------------------- the ids */

/* The Feistel round function: 32 bits of SipHash-2-4(id key, round || half). */
static uint32_t round_fn(const holdkey_t *k, unsigned round, uint32_t half)
{
    uint8_t msg[5] = {(uint8_t)round, (uint8_t)half, (uint8_t)(half >> 8),
                      (uint8_t)(half >> 16), (uint8_t)(half >> 24)};
    return (uint32_t)siphash24(k->id_key, msg, sizeof msg);
}

static uint64_t permute(const holdkey_t *k, uint64_t x)
{
    uint32_t left = (uint32_t)(x >> 32), right = (uint32_t)x;
    for (unsigned i = 0; i < FEISTEL_ROUNDS; i++) {
        uint32_t next = left ^ round_fn(k, i, right);
        left = right;
        right = next;
    }
    return (uint64_t)left << 32 | right;
}

static uint64_t unpermute(const holdkey_t *k, uint64_t y)
{
    uint32_t left = (uint32_t)(y >> 32), right = (uint32_t)y;
    for (unsigned i = FEISTEL_ROUNDS; i-- > 0;) {
        uint32_t prev = right ^ round_fn(k, i, left);
        right = left;
        left = prev;
    }
    return (uint64_t)left << 32 | right;
}

static bool legacy(const holdkey_t *k, uint64_t engine_id)
{
    uint64_t seq = engine_hold_id_seq(engine_id);
    return seq >= 1 && seq <= k->legacy_hold_seq;
}

size_t holdkey_id_format(const holdkey_t *k, uint64_t engine_id, char *out)
{
    if (legacy(k, engine_id)) {
        return engine_hold_id_format(engine_id, out);
    }
    uint64_t v = permute(k, engine_id);
    memcpy(out, ID_PREFIX, ID_PREFIX_BYTES);
    for (int i = ID_DIGITS - 1; i >= 0; i--) {
        out[ID_PREFIX_BYTES + i] = base62[v % 62];
        v /= 62;
    }
    out[HOLDKEY_ID_TEXT_MAX] = '\0';
    return HOLDKEY_ID_TEXT_MAX;
}

/* The 11 digits of a wire id, or false if they are not (or overflow). */
static bool wire_value(const char *digits, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < ID_DIGITS; i++) {
        const char *p = digits[i] != '\0' ? memchr(base62, digits[i], 62) : NULL;
        if (p == NULL) {
            return false;
        }
        uint64_t d = (uint64_t)(p - base62);
        if (v > (UINT64_MAX - d) / 62) {
            return false;
        }
        v = v * 62 + d;
    }
    *out = v;
    return true;
}

holdkey_id_t holdkey_id_parse(const holdkey_t *k, const char *text, size_t len,
                              uint64_t *engine_id)
{
    uint64_t v;
    if (len == HOLDKEY_ID_TEXT_MAX && memcmp(text, ID_PREFIX, ID_PREFIX_BYTES) == 0 &&
        wire_value(text + ID_PREFIX_BYTES, &v)) {
        *engine_id = unpermute(k, v);
        return *engine_id != 0 && !legacy(k, *engine_id) ? HOLDKEY_ID_WIRE : HOLDKEY_ID_BAD;
    }
    if (engine_hold_id_parse(text, len, &v) && legacy(k, v)) {
        *engine_id = v;
        return HOLDKEY_ID_LEGACY;
    }
    return HOLDKEY_ID_BAD;
}

/* ------------------------------------------------------------ the secrets */

size_t holdkey_secret(const holdkey_t *k, holdkey_kind_t kind, uint64_t id, char *out)
{
    uint8_t msg[9], mac[32];
    msg[0] = kind == HOLDKEY_HOLD ? 'h' : 'w';
    for (int i = 0; i < 8; i++) {
        msg[1 + i] = (uint8_t)(id >> (8 * i));
    }
    mac_of(k->hmac, msg, sizeof msg, mac, sizeof mac, "HMAC-SHA256");
    memcpy(out, kind == HOLDKEY_HOLD ? "hs_" : "ws_", SECRET_PREFIX_BYTES);
    size_t n = SECRET_PREFIX_BYTES;
    uint32_t bits = 0;
    int held = 0;
    for (int i = 0; i < SECRET_MAC_BYTES; i++) {
        bits = bits << 8 | mac[i];
        held += 8;
        while (held >= 6) {
            held -= 6;
            out[n++] = base64url[(bits >> held) & 63];
        }
    }
    if (held > 0) {
        out[n++] = base64url[(bits << (6 - held)) & 63];
    }
    out[n] = '\0';
    OPENSSL_cleanse(mac, sizeof mac);
    assert(n == HOLDKEY_SECRET_TEXT_MAX);
    return n;
}

bool holdkey_secret_matches(const holdkey_t *k, holdkey_kind_t kind, uint64_t id,
                            const char *text)
{
    char want[HOLDKEY_SECRET_TEXT_MAX + 1];
    holdkey_secret(k, kind, id, want);
    /* The length is no secret (every secret has it); the bytes are compared
     * in constant time, so the time taken never says how much was right. */
    bool same = strnlen(text, HOLDKEY_SECRET_TEXT_MAX + 1) == HOLDKEY_SECRET_TEXT_MAX &&
                CRYPTO_memcmp(want, text, HOLDKEY_SECRET_TEXT_MAX) == 0;
    OPENSSL_cleanse(want, sizeof want);
    return same;
}

/* ------------------------------------------------------------ key ids */

/* 'k' and the key: no other message of this MAC starts with 'k' ('h' and
 * 'w' for the secrets), so a key's id is never another value's MAC. */
void holdkey_key_id(const holdkey_t *k, const char *key, char *out)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t msg[1 + SERVER_KEY_BYTES_MAX], mac[32];
    size_t len = strnlen(key, SERVER_KEY_BYTES_MAX);
    msg[0] = 'k';
    memcpy(msg + 1, key, len);
    mac_of(k->hmac, msg, 1 + len, mac, sizeof mac, "HMAC-SHA256");
    for (int i = 0; i < SERVER_KEY_ID_TEXT / 2; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 15];
    }
    out[SERVER_KEY_ID_TEXT] = '\0';
    OPENSSL_cleanse(msg, sizeof msg);
}
