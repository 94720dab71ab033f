/*
 * policy_json.h - the policy as a JSON document, for the API, the
 * configuration file and the simulator's policy files.
 *
 * The document has one object per section of POLICY_FIELDS, each key an
 * integer: {"quantity": {"line_qty_max": 10, ...}, "ttl": {...}, ...}.
 * Reading is strict: an unknown section or key, a value of the wrong type or
 * out of range, is an error that names the field ("ttl.max_ms"), so a typo
 * never passes silently.
 */
#ifndef HF_POLICY_JSON_H
#define HF_POLICY_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "policy.h"

/* The fields in mask (bit f: field f) as a sectioned object; a new reference. */
json_t *policy_json_write(const policy_config_t *c, uint64_t mask);
#define POLICY_MASK_ALL ((1ull << POLICY_FIELD_COUNT) - 1)
/* The fields a sku may set. */
uint64_t policy_mask_sku(void);

typedef struct {
    bool unknown;   /* an unknown section or key (400 unknown_field) */
    char field[96]; /* "section.key" */
    char message[160];
} policy_json_error_t;

/* Reads doc over *c: each key present is set and its bit added to *mask_out.
 * Only fields in allowed may appear. False with err filled on any error; *c
 * is then unspecified (pass a copy). Relations between fields are checked by
 * policy_config_valid(), not here. */
bool policy_json_read(const json_t *doc, uint64_t allowed, policy_config_t *c,
                      uint64_t *mask_out, policy_json_error_t *err);

#endif
