/*
 * holdkey.h - the ids and secrets of holds (and waitlist entries) on the
 * wire, made from the data directory's key (store.h); read-only once made
 * (server-private).
 */
#ifndef HF_HOLDKEY_H
#define HF_HOLDKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "store.h"

/* A key's id in the logs: 8 hex digits of a keyed hash (observe.c). */
#define SERVER_KEY_ID_TEXT 8

#define HOLDKEY_ID_TEXT_MAX 16     /* "hold_" and 11 base62 digits */
#define HOLDKEY_SECRET_TEXT_MAX 25 /* "hs_" (or "ws_") and 22 base64url digits */
typedef enum { HOLDKEY_HOLD = 0, HOLDKEY_WAIT = 1 } holdkey_kind_t;
typedef enum {
    HOLDKEY_ID_BAD = 0, /* no hold could have it */
    HOLDKEY_ID_WIRE,    /* an id as the server shows them */
    HOLDKEY_ID_LEGACY,  /* the engine's spelling, of a hold made before the key */
} holdkey_id_t;
typedef struct {
    uint64_t id_key[2]; /* SipHash's: the permutation's rounds */
    EVP_MAC_CTX *hmac;  /* keyed with the secret key */
    uint64_t legacy_hold_seq;
} holdkey_t;
/* -1 if this OpenSSL lacks HMAC or SipHash (which ours is checked against). */
int holdkey_init(holdkey_t *k, const store_key_t *sk);
void holdkey_deinit(holdkey_t *k);
/* Writes at most HOLDKEY_ID_TEXT_MAX bytes and a NUL: a hold made before
 * the key keeps its id in the engine's spelling. */
size_t holdkey_id_format(const holdkey_t *k, uint64_t engine_id, char *out);
holdkey_id_t holdkey_id_parse(const holdkey_t *k, const char *text, size_t len,
                              uint64_t *engine_id);
/* Writes HOLDKEY_SECRET_TEXT_MAX bytes and a NUL. */
size_t holdkey_secret(const holdkey_t *k, holdkey_kind_t kind, uint64_t id, char *out);
/* In constant time for a text of the right length. */
bool holdkey_secret_matches(const holdkey_t *k, holdkey_kind_t kind, uint64_t id,
                            const char *text);
/* A key's id for the logs: SERVER_KEY_ID_TEXT hex digits of its MAC and a
 * NUL; the key cannot be had back from it, nor guessed offline without the
 * data directory's key. */
void holdkey_key_id(const holdkey_t *k, const char *key, char *out);


#endif
