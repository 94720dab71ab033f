/*
 * index.h - hashing and the open-addressing index the guard's tables share.
 *
 * An index maps a hash to (entry + 1) in a power-of-two array; 0 is an empty
 * bucket. Deletion shifts the run that follows back, so lookups never meet
 * tombstones. The load factor stays at most one half (index_capacity), which
 * keeps probes short.
 */
#ifndef HF_GUARD_INDEX_H
#define HF_GUARD_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "policy.h"

uint64_t index_mix64(uint64_t x);
/* FNV-1a over data from h, then mixed. */
uint64_t index_hash_bytes(uint64_t h, const void *data, size_t len);
uint64_t index_identity_hash(policy_id_kind_t kind, const char *value, size_t len);
uint64_t index_customer_sku_hash(uint32_t customer, uint32_t sku);
/* A waiting entry is indexed by (sku, customer): one place each. */
uint64_t index_waiting_hash(uint32_t sku, const char *customer, size_t len);

/* Buckets for at most count_max entries: a power of two, at least twice it. */
uint32_t index_capacity(uint32_t count_max);

/* The hash an entry was inserted with, for moving entries on deletion. */
typedef uint64_t (*index_hash_fn)(const void *ctx, uint32_t entry);

void index_insert(uint32_t *index, uint32_t mask, uint64_t hash, uint32_t entry);
/* Removes entry (which must be indexed under hash). */
void index_delete(uint32_t *index, uint32_t mask, uint64_t hash, uint32_t entry,
                  index_hash_fn hash_of, const void *ctx);

#endif
