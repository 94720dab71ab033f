/*
 * metrics.c - the request counters behind /metrics, bumped with relaxed
 * atomics on the request path (the page is metrics_page.c).
 */
#include <assert.h>

#include "metrics.h"

const int metrics_statuses[SERVER_STATUS_COUNT] = {
#define STATUS_VALUE(code) code,
    SERVER_STATUSES(STATUS_VALUE)
#undef STATUS_VALUE
};

int metrics_status_index(int status)
{
    for (int i = 0; i < SERVER_STATUS_COUNT; i++) {
        if (metrics_statuses[i] == status) {
            return i;
        }
    }
    /* Every status the server sends is in SERVER_STATUSES. */
    assert(0 && "a status missing from SERVER_STATUSES");
    return 0;
}

void metrics_count(server_t *s, int route, int status)
{
    int r = route < 0 ? SERVER_ROUTE_COUNT_MAX : route;
    __atomic_fetch_add(&s->metrics.requests[r][metrics_status_index(status)], 1,
                       __ATOMIC_RELAXED);
}

/* Upper bounds in microseconds. A durable reply waits for a group commit
 * (about 0.2 ms on a good disk), a read for none; seconds mean a disk in
 * trouble or a scrape of a large catalog. */
const int64_t metrics_latency_bucket_us[METRICS_LATENCY_BUCKETS] = {
    100,   250,    500,    1000,   2500,    5000,    10000,  25000,
    50000, 100000, 250000, 500000, 1000000, 2500000, 5000000};

void metrics_time(server_t *s, int route, int64_t duration_us)
{
    int r = route < 0 ? SERVER_ROUTE_COUNT_MAX : route;
    int b = 0;
    while (b < METRICS_LATENCY_BUCKETS && duration_us > metrics_latency_bucket_us[b]) {
        b++;
    }
    __atomic_fetch_add(&s->metrics.latency[r][b], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&s->metrics.latency_sum_us[r], (uint64_t)(duration_us > 0 ? duration_us : 0),
                       __ATOMIC_RELAXED);
}

