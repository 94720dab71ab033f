/*
 * apply.h - applying guard ops without deciding (guard_apply(), and the
 * replay of the journal), and time (guard_advance()).
 *
 * decide.c shares the hold create: the live path applies what it decided
 * with the names it found on the way, instead of finding them again.
 */
#ifndef HF_GUARD_APPLY_H
#define HF_GUARD_APPLY_H

#include "identity.h"

/* Applies a HOLD_CREATE op at its time (already advanced to). n: the
 * request's names as deciding found them, or NULL to find them. A full
 * table swept on the way sets out.swept even when the hold is refused. */
guard_outcome_t apply_hold_create(guard_t *g, guard_op_t *op, ident_names_t *n, bool *swept);

#endif
