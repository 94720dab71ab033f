/*
 * sku.h - what the guard keeps per sku: its own policy over the shop's, its
 * recent conversion and escalation, and the refusals counted against it.
 *
 * Conversion is decayed: a sku's holds started and committed halve every
 * escalation window, the shop's every reputation half-life, so "recent"
 * needs no window of samples. Escalation switches on when the counts say
 * the sku is under attack (policy_escalate) and off when they recover; each
 * switch is logged in the events ring.
 */
#ifndef HF_GUARD_SKU_H
#define HF_GUARD_SKU_H

#include "state.h"

/* The shop's policy with a sku's own values (sp->mask) on top. */
void sku_policy_resolve(const policy_config_t *global, guard_sku_policy_t *sp);
/* Whether a sku (GUARD_NONE: one not created yet) may take the settings of
 * op (GUARD_OP_SKU_POLICY): a slot in the table, and a valid policy on top
 * of the shop's; the field that breaks a relation goes to *bad_out. */
guard_result_t sku_policy_fits(const guard_t *g, uint32_t sku, const guard_op_t *op,
                               policy_field_t *bad_out);

/* Decays a sku's (or a copy's) counts to now_ms. */
void sku_bring(guard_sku_t *s, const policy_config_t *c, int64_t now_ms);
/* Decays the shop's counts to now_ms. */
void sku_shop_bring(guard_t *g, int64_t now_ms);
/* Whether a sku is escalated as of now_ms: its recorded state, unless time
 * alone has ended it (the next applied op on it records the switch). */
bool sku_escalated_now(const guard_t *g, uint32_t sku, int64_t now_ms);
/* Switches a sku's escalation on or off when its recent conversion says so. */
void sku_evaluate(guard_t *g, uint32_t sku, int64_t now_ms);

/* Teaches a sku that a hold of it was paid for `took_ms` after it was made. */
void sku_pay_learn(guard_t *g, uint32_t sku, int64_t took_ms, int64_t now_ms);
/* How long the sku's buyers take to pay, as learned: the upper
 * edge of the bucket holding reclaim.pay_pct of its recent commits (each
 * counts half as much every reclaim.window_ms); 0 until it has seen
 * reclaim.min_commits. */
int64_t sku_pay_ms(const guard_t *g, uint32_t sku);
/* How long a hold of the sku is safe from reclaim: the time its buyers take
 * to pay, never less than reclaim.floor_ms; 0 when reclaim is off for it. */
int64_t sku_safe_ms(const guard_t *g, uint32_t sku);

/* Live-only: buyers were just refused qty units of a sku for want of
 * stock. Decays with a half-life of SKU_WANT_HALF_LIFE_MS. */
#define SKU_WANT_HALF_LIFE_MS 30000
void sku_want_add(guard_t *g, uint32_t sku, uint32_t qty, int64_t now_ms);
double sku_want_units(const guard_t *g, uint32_t sku, int64_t now_ms);

/* Counts a refusal (a denial or a challenge) by rule, shop-wide and against
 * the sku it is about (GUARD_NONE: none). Refusals change no other state
 * and are not journaled: the counts continue from the last snapshot after a
 * restart. */
void sku_count_refusal(guard_t *g, uint32_t sku, const policy_decision_t *d);

#endif
