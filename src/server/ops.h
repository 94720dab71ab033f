/*
 * ops.h - the operator's routes: /healthz and /metrics (server-private).
 */
#ifndef HF_OPS_H
#define HF_OPS_H

#include "pipeline.h"

extern const handler_t ops_healthz_handler; /* GET /healthz */
extern const handler_t ops_metrics_handler; /* GET /metrics */

#endif
