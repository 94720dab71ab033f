/*
 * router.h - which handler a request goes to, and whether its key allows
 * it (server-private).
 */
#ifndef HF_ROUTER_H
#define HF_ROUTER_H

#include "request.h"

/* Dispatches a complete request: finds its route, checks its key, query and
 * body size, and runs its handler (pipeline.h); r->status and r->out are
 * then the reply. */
void router_handle(request_t *r, const char *method, const char *url);
/* Whether the request may use a connection of the operators' reserve:
 * GET /healthz, /metrics, or any request with the admin key. */
bool router_for_operator(request_t *r, const char *url);
/* The table's patterns and methods, in order, for the labels (server_state.h). */
const char *const *router_patterns(int *count);
const char *const *router_methods(void);

#endif
