/*
 * fuzz_decoders.c - libFuzzer target for what holdfast reads from outside
 * its process: journal records (record_decode_op), snapshots
 * (record_restore_snapshot, which ends in the guard's own reader), and
 * policy documents (policy_json_read). The first byte picks the decoder;
 * every input must be refused or accepted cleanly, never crash, and an
 * accepted snapshot must leave a guard that passes guard_check().
 *
 *   make fuzz                       builds build/fuzz/fuzz_decoders
 *   build/fuzz/fuzz_decoders -max_total_time=60 fuzz/corpus
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "policy_json.h"
#include "record.h"

static const guard_config_t small = {
    .engine = {.skus_max = 16, .holds_max = 64, .idem_keys_max = 16},
    .identities_max = 64,
    .customer_skus_max = 64,
    .waitlist_max = 16,
    .sku_policies_max = 4,
    .proofs_max = 16,
};

static void decode_ops(const uint8_t *data, size_t size)
{
    record_reader_t r = {.p = data, .left = size, .ok = true};
    guard_op_t op;
    while (r.left > 0 && record_decode_op(&r, &op)) {
    }
}

static void restore_snapshot(const uint8_t *data, size_t size)
{
    guard_t *g = guard_create(&small, 0);
    if (g == NULL) {
        abort();
    }
    record_reader_t r = {.p = data, .left = size, .ok = true};
    uint64_t records;
    char err[256];
    if (record_restore_snapshot(&r, g, &records, err, sizeof err) && !guard_check(g)) {
        abort(); /* accepted, yet broken */
    }
    guard_destroy(g);
}

static void read_policy(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)data, size, 0, &jerr);
    if (doc == NULL) {
        return;
    }
    policy_config_t c = policy_config_default();
    policy_json_error_t err;
    uint64_t mask;
    policy_field_t bad;
    if (policy_json_read(doc, POLICY_MASK_ALL, &c, &mask, &err)) {
        (void)policy_config_valid(&c, &bad);
    }
    json_decref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    switch (data[0] % 3) {
    case 0:
        decode_ops(data + 1, size - 1);
        break;
    case 1:
        restore_snapshot(data + 1, size - 1);
        break;
    default:
        read_policy(data + 1, size - 1);
    }
    return 0;
}
