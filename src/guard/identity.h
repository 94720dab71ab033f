/*
 * identity.h - the guard's identities (customers, IP prefixes, fingerprints)
 * and its customer-and-sku units, with the sweep that forgets idle entries.
 *
 * An identity carries what the policies count: holds and units held, a hold
 * budget refilled over time, and reputation (holds started and committed,
 * decayed). A customer-and-sku entry counts a customer's active units on a
 * sku and what it bought there in the current window.
 *
 * Entries "at rest" (nothing held, budget full, reputation decayed away, no
 * purchases in the window) mean the same as no entry, so the sweep frees a
 * few of them on every hold, in a fixed order: replay frees the same ones.
 */
#ifndef HF_GUARD_IDENTITY_H
#define HF_GUARD_IDENTITY_H

#include "state.h"

/* Entries the sweep looks at per hold created: enough to keep up with a
 * table that fills one entry per hold, cheap enough not to show. */
#define IDENT_SWEEP_PER_HOLD 4

uint32_t ident_find(const guard_t *g, policy_id_kind_t kind, const char *value, size_t len);
/* Whether `needed` more identities fit. */
bool ident_room(const guard_t *g, uint32_t needed);
/* Finds or adds an identity; the caller checked ident_room(). A new
 * identity starts with a full budget and no history. */
uint32_t ident_get(guard_t *g, policy_id_kind_t kind, const char *value, size_t len,
                   int64_t now_ms);
/* Brings an identity's budget and reputation up to now_ms. */
void ident_bring(const guard_t *g, guard_identity_t *id, int64_t now_ms);
/* The policy's view of identity i (GUARD_NONE: not in the table yet) at
 * now_ms, without changing it. A named identity not in the table is a
 * newcomer: present, holding nothing, with a full budget and no history. */
policy_identity_t ident_policy_view(const guard_t *g, policy_id_kind_t kind, bool named, uint32_t i,
                                    int64_t now_ms);
uint64_t ident_hash_of(const void *g, uint32_t i);

/* An identity's units entry on a sku (the identity may be of any kind:
 * the table is named for customers, the first it counted). */
uint32_t ident_cs_find(const guard_t *g, uint32_t identity, uint32_t sku);
/* Finds or adds an identity's units entry; the caller checked the room. */
uint32_t ident_cs_get(guard_t *g, uint32_t identity, uint32_t sku);
/* Units bought that still count against the cap at now_ms. */
int64_t ident_cs_bought(const guard_t *g, const guard_customer_sku_t *e, int64_t now_ms);
uint64_t ident_cs_hash_of(const void *g, uint32_t i);

/* Frees entries at rest among the next `steps` of each table, resuming where
 * the last sweep stopped. Pressed (a table is full), idle customers go too,
 * history and all. */
void ident_sweep(guard_t *g, int64_t now_ms, uint32_t steps, bool pressed);

/* What a hold request names, worked out once per request: its identities'
 * texts and where they are in the tables (GUARD_NONE: absent, or not there
 * yet), and each line's sku and each identity's units entry for it (when
 * cs_known). The live path finds them while deciding and hands them to the
 * apply; replay finds them in the apply. */
typedef struct {
    const char *value[POLICY_ID_KINDS];
    size_t len[POLICY_ID_KINDS]; /* 0: the request does not name it */
    char prefix[POLICY_IP_PREFIX_TEXT_MAX];
    uint32_t ids[POLICY_ID_KINDS];
    bool cs_known;
    uint32_t sku[HF_LINES_PER_HOLD_MAX];
    uint32_t cs[POLICY_ID_KINDS][HF_LINES_PER_HOLD_MAX];
} ident_names_t;

/* Fills n for c's names (n must not move afterwards: value[] points into it
 * or into c). */
void ident_names_find(const guard_t *g, const engine_hold_create_t *c, ident_names_t *n);
/* Adds the identities n names that are not in the table yet. */
void ident_names_add(guard_t *g, ident_names_t *n, int64_t now_ms);
/* Whether none of the customer and fingerprint n names has ever bought:
 * its hold counts in the newcomer pool. Addresses are shared: whether one
 * bought says little. */
bool ident_names_newcomer(const guard_t *g, const ident_names_t *n);
/* How many identities n names that are not in the table yet. */
uint32_t ident_names_new(const ident_names_t *n);

#endif
