/*
 * holds.h - /v1/holds: a shopper's hold on stock, from create to commit or
 * release (server-private).
 */
#ifndef HF_HOLDS_H
#define HF_HOLDS_H

#include "pipeline.h"

extern const handler_t holds_create_handler;  /* POST /v1/holds */
extern const handler_t holds_get_handler;     /* GET /v1/holds/{id} */
extern const handler_t holds_release_handler; /* DELETE /v1/holds/{id} */
extern const handler_t holds_commit_handler;  /* POST /v1/holds/{id}/commit */
extern const handler_t holds_extend_handler;  /* POST /v1/holds/{id}/extend */

/* A hold as the API shows it (the engine lock held). with_secret: the reply
 * that hands the hold to its owner (a create, a waitlist's offer) carries
 * its secret. */
void holds_write(server_t *s, json_out_t *j, const engine_hold_view_t *h, int64_t now_ms,
                 bool with_secret);

#endif
