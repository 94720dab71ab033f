/*
 * policy_json.c - the policy document (see policy_json.h).
 */
#include "policy_json.h"

#include <stdio.h>
#include <string.h>

uint64_t policy_mask_sku(void)
{
    uint64_t mask = 0;
    for (int f = 0; f < POLICY_FIELD_COUNT; f++) {
        mask |= policy_field_info((policy_field_t)f)->sku ? 1ull << f : 0;
    }
    return mask;
}

json_t *policy_json_write(const policy_config_t *c, uint64_t mask)
{
    json_t *doc = json_object();
    for (int f = 0; f < POLICY_FIELD_COUNT; f++) {
        if (!(mask & (1ull << f))) {
            continue;
        }
        const policy_field_info_t *info = policy_field_info((policy_field_t)f);
        json_t *section = json_object_get(doc, info->section);
        if (section == NULL) {
            section = json_object();
            json_object_set_new(doc, info->section, section);
        }
        json_object_set_new(section, info->key,
                            json_integer(policy_field_get(c, (policy_field_t)f)));
    }
    return doc;
}

/* The field named section.key, or -1. */
static int field_named(const char *section, const char *key)
{
    for (int f = 0; f < POLICY_FIELD_COUNT; f++) {
        const policy_field_info_t *info = policy_field_info((policy_field_t)f);
        if (strcmp(info->section, section) == 0 && strcmp(info->key, key) == 0) {
            return f;
        }
    }
    return -1;
}

static bool section_known(const char *section)
{
    for (int f = 0; f < POLICY_FIELD_COUNT; f++) {
        if (strcmp(policy_field_info((policy_field_t)f)->section, section) == 0) {
            return true;
        }
    }
    return false;
}

static bool fail(policy_json_error_t *err, bool unknown, const char *section, const char *key,
                 const char *message)
{
    err->unknown = unknown;
    snprintf(err->field, sizeof err->field, "%.40s%s%.40s", section, key[0] ? "." : "", key);
    snprintf(err->message, sizeof err->message, "%.80s: %.70s", err->field, message);
    return false;
}

static bool read_value(const char *section, const char *key, const json_t *v, uint64_t allowed,
                       policy_config_t *c, uint64_t *mask_out, policy_json_error_t *err)
{
    int f = field_named(section, key);
    if (f < 0) {
        return fail(err, true, section, key, "no such setting");
    }
    if (!(allowed & (1ull << f))) {
        return fail(err, true, section, key, "a sku cannot set this; it is shop-wide");
    }
    const policy_field_info_t *info = policy_field_info((policy_field_t)f);
    json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;
    if (!json_is_integer(v) || n < info->min || n > info->max) {
        char message[120];
        snprintf(message, sizeof message, "must be an integer from %lld to %lld",
                 (long long)info->min, (long long)info->max);
        return fail(err, false, section, key, message);
    }
    *policy_field_ptr(c, (policy_field_t)f) = n;
    *mask_out |= 1ull << f;
    return true;
}

bool policy_json_read(const json_t *doc, uint64_t allowed, policy_config_t *c,
                      uint64_t *mask_out, policy_json_error_t *err)
{
    *mask_out = 0;
    if (!json_is_object(doc)) {
        return fail(err, false, "policy", "", "must be an object of sections");
    }
    const char *section;
    const json_t *body;
    json_object_foreach((json_t *)doc, section, body) {
        if (!section_known(section)) {
            return fail(err, true, section, "", "no such section");
        }
        if (!json_is_object(body)) {
            return fail(err, false, section, "", "a section is an object of settings");
        }
        const char *key;
        const json_t *v;
        json_object_foreach((json_t *)body, key, v) {
            if (!read_value(section, key, v, allowed, c, mask_out, err)) {
                return false;
            }
        }
    }
    return true;
}
