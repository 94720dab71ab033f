/*
 * validate.h - what the API's names may be (server-private).
 */
#ifndef HF_VALIDATE_H
#define HF_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

bool valid_sku(const char *s, size_t len);
bool valid_name(const char *s, size_t len);
bool valid_ip(const char *s);
bool valid_idem_key(const char *s, size_t len);

#endif
