/*
 * defenses.h - /v1/policy, the shop's defenses as one document, and a sku's
 * own policy and defense state as the sku routes show them
 * (server-private).
 */
#ifndef HF_DEFENSES_H
#define HF_DEFENSES_H

#include "pipeline.h"

extern const handler_t defenses_get_handler; /* GET /v1/policy */
extern const handler_t defenses_put_handler; /* PUT /v1/policy */

/* The policy c as a document, only the fields in mask. */
void defenses_write_doc(json_out_t *j, const policy_config_t *c, uint64_t mask);
/* The sku's own policy from PUT /v1/skus/{sku}'s "policy" member: parsed
 * without the lock (false after the 400), checked against the shop's policy
 * under it (false after the error). */
bool defenses_sku_parse(request_t *r, json_t *doc, guard_op_t *op);
bool defenses_sku_check(request_t *r, const guard_op_t *op);
/* A sku's defenses as GET /v1/skus/{sku} shows them (the engine lock held). */
void defenses_write_sku(const server_t *s, json_out_t *j, uint32_t sku_index);

#endif
