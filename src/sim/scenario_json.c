/*
 * scenario_json.c - scenarios and policies from JSON files, for
 * `holdfast sim --scenario FILE --policy FILE`.
 *
 * A scenario file may start from a built-in ("base": "merch-2020") and set
 * any of the fields below; a policy file is the policy document of
 * docs/POLICIES.md (what it leaves out takes its default). Reading is
 * strict: an unknown key or a value out of range is an error that names it.
 */
#include <jansson.h>
#include <stddef.h>
#include <string.h>

#include "policy_json.h"
#include "sim.h"

typedef enum { F_I64, F_U32, F_F64, F_BOOL, F_PCT } field_kind_t;

typedef struct {
    const char *key;
    field_kind_t kind;
    size_t offset;
    double min, max;
} field_t;

#define FIELD(key, kind, lo, hi) {#key, kind, offsetof(sim_scenario_t, key), lo, hi}

static const field_t fields[] = {
    FIELD(duration_ms, F_I64, 1, SIM_DURATION_MS_MAX),
    FIELD(genuine, F_U32, 0, SIM_GENUINE_MAX),
    FIELD(peak_ms, F_I64, 0, SIM_DURATION_MS_MAX),
    FIELD(spread_ms, F_I64, 1, SIM_DURATION_MS_MAX),
    FIELD(qty_max, F_U32, 1, 255),
    FIELD(think_ms_median, F_I64, 1000, 86400000),
    FIELD(think_sigma, F_F64, 0, 3),
    FIELD(abandon_pct, F_PCT, 0, 100),
    FIELD(pay_fail_pct, F_PCT, 0, 100),
    FIELD(retries, F_U32, 0, 100),
    FIELD(retry_wait_ms, F_I64, 1000, 86400000),
    FIELD(waitlist_pct, F_PCT, 0, 100),
    FIELD(browser_hashes_per_s, F_F64, 1, 1e12),
    FIELD(nat_prefixes, F_U32, 0, 65536),
    FIELD(nat_pct, F_PCT, 0, 100),
    FIELD(attackers, F_U32, 0, SIM_ATTACKERS_MAX),
    FIELD(attack_start_ms, F_I64, 0, SIM_DURATION_MS_MAX),
    FIELD(attack_end_ms, F_I64, 0, SIM_DURATION_MS_MAX),
    FIELD(attack_ramp_ms, F_I64, 0, SIM_DURATION_MS_MAX),
    FIELD(hoard_ttl_ms, F_I64, 0, HF_TTL_MS_MAX),
    FIELD(rotate_ids, F_BOOL, 0, 1),
    FIELD(ip_prefixes, F_U32, 0, 65536),
    FIELD(fingerprints, F_U32, 0, SIM_ATTACKERS_MAX),
    FIELD(attacker_hashes_per_s, F_F64, 1, 1e12),
    FIELD(attacker_cpu_s, F_F64, 0, 1e9),
    FIELD(scalpers, F_U32, 0, SIM_SCALPERS_MAX),
    FIELD(scalper_units, F_U32, 1, SIM_SCALPER_UNITS_MAX),
};

static bool fail(char *err, size_t err_size, const char *path, const char *what, const char *key)
{
    snprintf(err, err_size, "%s: %s \"%s\"", path, what, key);
    return false;
}

static bool set_field(sim_scenario_t *s, const field_t *f, const json_t *v)
{
    if (!json_is_number(v) && !(f->kind == F_BOOL && json_is_boolean(v))) {
        return false;
    }
    double x = json_is_boolean(v) ? (json_is_true(v) ? 1 : 0) : json_number_value(v);
    if (x < f->min || x > f->max || (f->kind != F_F64 && !json_is_integer(v) &&
                                     !json_is_boolean(v))) {
        return false;
    }
    char *at = (char *)s + f->offset;
    switch (f->kind) {
    case F_I64:
        *(int64_t *)at = (int64_t)x;
        break;
    case F_U32:
    case F_PCT:
        *(uint32_t *)at = (uint32_t)x;
        break;
    case F_F64:
        *(double *)at = x;
        break;
    case F_BOOL:
        *(bool *)at = x != 0;
        break;
    }
    return true;
}

static bool read_skus(sim_scenario_t *s, const json_t *v, const char *path, char *err,
                      size_t err_size)
{
    if (!json_is_array(v) || json_array_size(v) < 1 || json_array_size(v) > SIM_SKUS_MAX) {
        return fail(err, err_size, path, "skus must be an array of 1 to 64 of", "sku");
    }
    s->sku_count = 0;
    size_t i;
    const json_t *k;
    json_array_foreach(v, i, k) {
        const json_t *sku = json_object_get(k, "sku"), *stock = json_object_get(k, "stock");
        const json_t *price = json_object_get(k, "price_cents");
        if (!json_is_object(k) || json_object_size(k) != 2 + (price != NULL) ||
            !json_is_string(sku) || json_string_length(sku) < 1 ||
            json_string_length(sku) > HF_SKU_BYTES_MAX || !json_is_integer(stock) ||
            json_integer_value(stock) < 0 || json_integer_value(stock) > HF_STOCK_MAX ||
            (price != NULL && (!json_is_integer(price) || json_integer_value(price) < 0))) {
            return fail(err, err_size, path, "each sku is {sku, stock, price_cents?}:", "skus");
        }
        sim_sku_t *out = &s->skus[s->sku_count++];
        snprintf(out->sku, sizeof out->sku, "%s", json_string_value(sku));
        out->stock = json_integer_value(stock);
        out->price_cents = price ? json_integer_value(price) : 0;
    }
    return true;
}

static bool read_curve(sim_scenario_t *s, const json_t *v)
{
    static const char *const names[] = {"steady", "flash", "viral"};
    for (int c = 0; c < 3; c++) {
        if (json_is_string(v) && strcmp(json_string_value(v), names[c]) == 0) {
            s->curve = (sim_curve_t)c;
            return true;
        }
    }
    return false;
}

static bool read_member(sim_scenario_t *s, const char *key, const json_t *v, const char *path,
                        char *err, size_t err_size)
{
    if (strcmp(key, "base") == 0) {
        return true; /* read first */
    }
    if (strcmp(key, "name") == 0) {
        if (!json_is_string(v) || json_string_length(v) >= SIM_NAME_BYTES_MAX) {
            return fail(err, err_size, path, "name must be a short string:", key);
        }
        snprintf(s->name, sizeof s->name, "%s", json_string_value(v));
        return true;
    }
    if (strcmp(key, "skus") == 0) {
        return read_skus(s, v, path, err, err_size);
    }
    if (strcmp(key, "curve") == 0) {
        return read_curve(s, v) ||
               fail(err, err_size, path, "curve must be steady, flash or viral:", key);
    }
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (strcmp(key, fields[i].key) == 0) {
            return set_field(s, &fields[i], v) ||
                   fail(err, err_size, path, "a value out of range or of the wrong type for", key);
        }
    }
    return fail(err, err_size, path, "unknown key", key);
}

bool sim_scenario_file(const char *path, sim_scenario_t *out, char *err, size_t err_size)
{
    json_error_t jerr;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL || !json_is_object(doc)) {
        snprintf(err, err_size, "%s: %s", path, doc == NULL ? jerr.text : "not a JSON object");
        json_decref(doc);
        return false;
    }
    const json_t *base = json_object_get(doc, "base");
    memset(out, 0, sizeof *out);
    bool ok = base == NULL || (json_is_string(base) &&
                               sim_scenario_builtin(json_string_value(base), out));
    if (!ok) {
        fail(err, err_size, path, "unknown base scenario", base ? json_string_value(base) : "");
    }
    if (ok && base == NULL) {
        snprintf(out->name, sizeof out->name, "custom"); /* no base: every field from the file */
        out->attack_ramp_ms = SIM_ATTACK_RAMP_MS_DEFAULT;
    }
    const char *key;
    const json_t *v;
    json_object_foreach(doc, key, v) {
        ok = ok && read_member(out, key, v, path, err, err_size);
    }
    out->story = base ? out->story : "a scenario from a file";
    json_decref(doc);
    if (ok && out->attack_end_ms == 0) {
        out->attack_end_ms = out->duration_ms;
    }
    return ok;
}

bool sim_policy_file(const char *path, sim_policy_t *out, char *err, size_t err_size)
{
    json_error_t jerr;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        snprintf(err, err_size, "%s: %s", path, jerr.text);
        return false;
    }
    memset(out, 0, sizeof *out);
    const char *slash = strrchr(path, '/');
    snprintf(out->name, sizeof out->name, "%s", slash ? slash + 1 : path);
    out->config = policy_config_default();
    policy_json_error_t perr;
    uint64_t mask;
    policy_field_t bad;
    bool ok = policy_json_read(doc, POLICY_MASK_ALL, &out->config, &mask, &perr);
    json_decref(doc);
    if (!ok) {
        snprintf(err, err_size, "%s: %s", path, perr.message);
        return false;
    }
    if (!policy_config_valid(&out->config, &bad)) {
        snprintf(err, err_size, "%s: %s.%s conflicts with another setting", path,
                 policy_field_info(bad)->section, policy_field_info(bad)->key);
        return false;
    }
    return true;
}
