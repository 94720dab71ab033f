/*
 * index.c - hashing and the open-addressing index (see index.h).
 */
#include "index.h"

#include <assert.h>
#include <stdbool.h>

#include "hf_mix.h"

uint64_t index_mix64(uint64_t x)
{
    return hf_mix64(x);
}

uint64_t index_hash_bytes(uint64_t h, const void *data, size_t len)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ p[i]) * 0x100000001b3ull;
    }
    return index_mix64(h);
}

uint64_t index_identity_hash(policy_id_kind_t kind, const char *value, size_t len)
{
    return index_hash_bytes(0xcbf29ce484222325ull ^ (uint64_t)kind, value, len);
}

uint64_t index_customer_sku_hash(uint32_t customer, uint32_t sku)
{
    return index_mix64(((uint64_t)customer << 32 | sku) + 0x9e3779b97f4a7c15ull);
}

uint64_t index_waiting_hash(uint32_t sku, const char *customer, size_t len)
{
    return index_hash_bytes(0x8a5cd789635d2dffull ^ sku, customer, len);
}

uint32_t index_capacity(uint32_t count_max)
{
    uint64_t c = 2;
    while (c < 2ull * count_max) {
        c <<= 1; /* load factor at most one half keeps probes short */
    }
    return (uint32_t)c;
}

void index_insert(uint32_t *index, uint32_t mask, uint64_t hash, uint32_t entry)
{
    uint32_t b = (uint32_t)hash & mask;
    while (index[b] != 0) {
        b = (b + 1) & mask;
    }
    index[b] = entry + 1;
}

void index_delete(uint32_t *index, uint32_t mask, uint64_t hash, uint32_t entry,
                  index_hash_fn hash_of, const void *ctx)
{
    uint32_t b = (uint32_t)hash & mask;
    while (index[b] != entry + 1) {
        assert(index[b] != 0 && "deleting an entry that is not indexed");
        b = (b + 1) & mask;
    }
    uint32_t hole = b;
    for (uint32_t i = (hole + 1) & mask; index[i] != 0; i = (i + 1) & mask) {
        uint32_t home = (uint32_t)hash_of(ctx, index[i] - 1) & mask;
        /* Move i into the hole unless its home lies cyclically in (hole, i]. */
        bool stays = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
        if (!stays) {
            index[hole] = index[i];
            hole = i;
        }
    }
    index[hole] = 0;
}
