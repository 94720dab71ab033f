/*
 * audit.h - the audit trail inside the guard (guard.h, "the audit trail").
 *
 * guard_apply() asks audit_before() what an audited op is about to change,
 * applies it, and if it changed anything calls audit_record(), which writes
 * the entry from the state before and after. Both live and at replay, so
 * the journal rebuilds exactly the trail it had; the ring itself is in the
 * snapshot (snapshot.c), so a compaction that trims the journal keeps it.
 */
#ifndef HF_GUARD_AUDIT_H
#define HF_GUARD_AUDIT_H

#include "state.h"

/* What an audited op may change, as it was before. */
typedef struct {
    bool sku_existed;
    int64_t stock;
    policy_config_t policy; /* the shop's, or the sku's effective policy */
    engine_hold_state_t hold_state;
} audit_before_t;

void audit_before(const guard_t *g, const guard_op_t *op, audit_before_t *b);
/* Adds the entry (a no-op when the trail keeps none, audit_max 0). */
void audit_record(guard_t *g, const guard_op_t *op, const audit_before_t *b,
                  const guard_outcome_t *o);
/* Puts an entry read from a snapshot at the end of the ring (the oldest
 * goes once it is full). */
void audit_push(guard_t *g, const guard_audit_entry_t *e);
/* The ring's entries are consecutive in seq, the last is audit_seq. */
bool audit_check(const guard_t *g);

#endif
