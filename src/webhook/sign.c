/*
 * sign.c - the signature a receiver checks (webhook.h): HMAC-SHA256 with
 * the shop's secret over "<t>.<body>", where t is the attempt's time in
 * unix seconds. Binding t in lets a receiver refuse a replay of an old
 * delivery by its age; the body is signed as sent, byte for byte.
 */
#include <assert.h>
#include <inttypes.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <string.h>

#include "webhook.h"

bool webhook_sign(const char *secret, size_t secret_len, int64_t t, const char *body,
                  size_t body_len, char *out, size_t out_size)
{
    assert(out_size >= 96);
    char t_text[32];
    int t_len = snprintf(t_text, sizeof t_text, "%" PRId64 ".", t);
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t mac_len = 0;
    EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = hmac != NULL ? EVP_MAC_CTX_new(hmac) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    bool ok = ctx != NULL &&
              EVP_MAC_init(ctx, (const unsigned char *)secret, secret_len, params) == 1 &&
              EVP_MAC_update(ctx, (const unsigned char *)t_text, (size_t)t_len) == 1 &&
              EVP_MAC_update(ctx, (const unsigned char *)body, body_len) == 1 &&
              EVP_MAC_final(ctx, mac, &mac_len, sizeof mac) == 1 && mac_len == 32;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(hmac);
    int n = snprintf(out, out_size, "t=%" PRId64 ",v1=", t);
    for (size_t i = 0; ok && i < mac_len; i++) {
        n += snprintf(out + n, out_size - (size_t)n, "%02x", mac[i]);
    }
    return ok;
}
