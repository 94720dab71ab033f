/*
 * metrics.h - the counters behind GET /metrics and their page
 * (server-private).
 */
#ifndef HF_METRICS_H
#define HF_METRICS_H

#include "server_state.h"

/* A reply went out: its route (-1: none matched) and status. */
void metrics_count(server_t *s, int route, int status);
/* A reply's time from its complete request (handler and journal wait). */
void metrics_time(server_t *s, int route, int64_t duration_us);
int metrics_status_index(int status);

/* The statuses of SERVER_STATUSES, and the latency buckets' upper bounds. */
extern const int metrics_statuses[SERVER_STATUS_COUNT];
extern const int64_t metrics_latency_bucket_us[METRICS_LATENCY_BUCKETS];

#endif
