/*
 * webhooks.h - the server's side of webhooks (server-private): what the
 * events are, and when they may be queued. Delivery is src/webhook/.
 */
#ifndef HF_SERVER_WEBHOOKS_H
#define HF_SERVER_WEBHOOKS_H

#include "server_state.h"

typedef struct webhooks_s webhooks_t;

/* Makes the delivery side if the configuration names webhooks (nothing
 * otherwise). 0, or -1 after logging why. Before recovery. */
int webhooks_init(server_t *s);
/* After the journal was replayed, instead of advancing the guard to now_ms
 * (wall clock): picks up the outbox, then advances, announcing what time
 * did while the server was down (expiries, and what they caused). Under the
 * engine lock, or before any thread runs. 0, or -1 after logging why. */
int webhooks_recovered(server_t *s, int64_t now_ms);
/* Under the engine lock, after the guard changed: queues the events the
 * changes make. before_append: op is about to be journaled, and its events
 * must wait for it; otherwise op is NULL and the events wait for what is
 * journaled already. */
void webhooks_collect(server_t *s, const guard_op_t *op, const guard_outcome_t *o,
                      bool before_append);
int webhooks_start(server_t *s); /* the delivery threads */
void webhooks_stop(server_t *s); /* before the journal closes: its deletes go in */
void webhooks_free(server_t *s);
void webhooks_metrics(server_t *s, json_out_t *out);

#endif
