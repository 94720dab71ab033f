/*
 * validate.c - the API's rules for ids and names (docs/API.md, "Conventions").
 */
#include <arpa/inet.h>
#include <string.h>

#include "hf_limits.h"
#include "validate.h"

bool valid_sku(const char *s, size_t len)
{
    if (len < 1 || len > HF_SKU_BYTES_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == ':' || c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* 1-128 bytes of UTF-8 without control characters (C0, DEL, C1). jansson has
 * already refused invalid UTF-8 and NUL. */
bool valid_name(const char *s, size_t len)
{
    if (len < 1 || len > HF_NAME_BYTES_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) {
            return false;
        }
        /* U+0080..U+009F are encoded as C2 80..C2 9F. */
        if (c == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] >= 0x80 &&
            (unsigned char)s[i + 1] <= 0x9f) {
            return false;
        }
    }
    return true;
}

bool valid_ip(const char *s)
{
    unsigned char addr[16];
    if (strlen(s) > 45) { /* the longest IPv6 literal */
        return false;
    }
    return inet_pton(AF_INET, s, addr) == 1 || inet_pton(AF_INET6, s, addr) == 1;
}

/* Idempotency keys are header values: printable ASCII, 1-64 bytes. */
bool valid_idem_key(const char *s, size_t len)
{
    if (len < 1 || len > HF_IDEM_KEY_BYTES_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < 0x21 || s[i] > 0x7e) {
            return false;
        }
    }
    return true;
}
