/*
 * outcome.h - the replies to what the guard and the engine decided, when it
 * was not a yes (server-private): one table maps each result to its error
 * code (errors.h), with the numbers behind it.
 */
#ifndef HF_OUTCOME_H
#define HF_OUTCOME_H

#include "request.h"

/* An engine result other than OK; sku (NULL: none) is the one it is about. */
void outcome_reply_engine(request_t *r, const engine_outcome_t *o, const char *sku,
                          size_t sku_len);
/* A guard result other than OK (or GUARD_ENGINE's engine result); denials
 * and challenges have outcome_reply_decision. */
void outcome_reply_guard(request_t *r, const guard_outcome_t *o);
/* 429 policy_denied or 428 challenge_required. req is the hold request
 * (NULL for an extension, which is never challenged); a challenge is made
 * for request_hash at now_ms. Under the engine lock. */
void outcome_reply_decision(request_t *r, const policy_decision_t *d, uint64_t request_hash,
                            const guard_hold_request_t *req, int64_t now_ms);

#endif
