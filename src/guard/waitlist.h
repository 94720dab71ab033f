/*
 * waitlist.h - waitlist entries and each sku's line (the lifecycle is in
 * guard.h). An entry's id is a sequence number with its slot in the low
 * WAIT_INDEX_BITS, so finding one by id is a check, not a search; finished
 * entries stay readable until their slot is reused, oldest first.
 */
#ifndef HF_GUARD_WAITLIST_H
#define HF_GUARD_WAITLIST_H

#include "state.h"

#define WAIT_INDEX_BITS 28
#define WAIT_INDEX_MASK ((1ull << WAIT_INDEX_BITS) - 1)
_Static_assert(GUARD_WAIT_SEQ_MAX == (1ull << (64 - WAIT_INDEX_BITS)) - 1,
               "guard.h says how far waitlist ids go");

/* A slot for a new entry: never used ones first, then the oldest finished;
 * GUARD_NONE if there is none. */
uint32_t wait_alloc(guard_t *g);
/* Fills slot i from op (GUARD_OP_WAIT_JOIN) and puts it at the end of its
 * sku's line. The id is op's (replay) or a new one, written back to op;
 * false (nothing changed) if a recorded id does not name slot i. */
bool wait_link(guard_t *g, uint32_t i, uint32_t sku, guard_op_t *op);
/* Takes a waiting entry off its sku's line (the head, usually). */
void wait_unlink(guard_t *g, uint32_t i);
/* Moves a waiting or offered entry to a finished state at at_ms. */
void wait_finish(guard_t *g, uint32_t i, guard_wait_state_t to, int64_t at_ms);
/* An entry by id, GUARD_NONE if there is no such entry. */
uint32_t wait_find(const guard_t *g, uint64_t id);
/* Whether the customer already waits in this sku's line (one place each). */
bool wait_has_customer(const guard_t *g, uint32_t sku, const char *customer, size_t len);
/* The first entry the sku could ever serve (qty within `sellable`, which is
 * stock - sold), or GUARD_NONE: an entry waiting for more than is left to
 * sell waits for a restock without holding up those behind it. */
uint32_t wait_first_servable(const guard_t *g, uint32_t sku, int64_t sellable);
uint64_t wait_hash_of(const void *g, uint32_t i);
/* The entry (waiting or finished) a join's Idempotency-Key made, or
 * GUARD_NONE; a key is forgotten when its entry's slot is reused. */
uint32_t wait_find_key(const guard_t *g, const char *key, size_t len);
uint64_t wait_key_hash_of(const void *g, uint32_t i);

#endif
