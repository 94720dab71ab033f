/*
 * proof.h - the proofs of work a guard has accepted: each is good for one
 * request, so its tag (from the challenge's MAC) is remembered until the
 * challenge expires. Issuing and verifying challenges are guard.h's
 * guard_challenge_make() and guard_challenge_verify(); the hashing is
 * pow.h's. All three live in proof.c, the guard's one file that uses
 * OpenSSL.
 */
#ifndef HF_GUARD_PROOF_H
#define HF_GUARD_PROOF_H

#include "state.h"

bool proof_used(const guard_t *g, uint64_t tag);
/* Remembers a spent proof; the caller checked there is room. */
void proof_add(guard_t *g, uint64_t tag, int64_t expires_ms);
/* Forgets the proofs expired at now_ms: they fail on their expiry alone. */
void proof_forget(guard_t *g, int64_t now_ms);
uint64_t proof_hash_of(const void *g, uint32_t i);

#endif
