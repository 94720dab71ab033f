/*
 * history.c - the last hour of the most recently active skus, a point a
 * second (history.h says what, which skus, and at what cost in memory).
 */
#include "history.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(history_point_t) == 48, "history.h's memory figure counts 48 bytes a point");

#define SECONDS ((int64_t)HF_HISTORY_SECONDS)

/* Engine time is ms since the epoch: never negative, so / is floor. */
static int64_t second_of(int64_t ms)
{
    assert(ms >= 0);
    return ms / 1000;
}

static bool has_points(const history_ring_t *r)
{
    return r->last_s >= r->first_s;
}

/* The index of the sku's ring, or -1. */
static int ring_index(const history_t *h, uint32_t sku_index)
{
    for (uint32_t i = 0; i < HF_HISTORY_SKUS_MAX; i++) {
        if (h->rings[i].used && h->rings[i].sku_index == sku_index) {
            return (int)i;
        }
    }
    return -1;
}

/* The points of ring r. */
static history_point_t *points_of(const history_t *h, const history_ring_t *r)
{
    return h->points[r - h->rings];
}

int history_init(history_t *h)
{
    /* calloc: the pages of a ring are touched only once it fills. */
    h->points = calloc(HF_HISTORY_SKUS_MAX, sizeof *h->points);
    if (h->points == NULL) {
        return -1;
    }
    history_clear(h);
    return 0;
}

void history_deinit(history_t *h)
{
    free(h->points);
    h->points = NULL;
}

void history_clear(history_t *h)
{
    for (uint32_t i = 0; i < HF_HISTORY_SKUS_MAX; i++) {
        h->rings[i].used = false;
    }
    h->sampled_s = INT64_MIN;
}

/* Starts ring r, empty, for the sku. */
static void ring_start(history_ring_t *r, uint32_t sku_index, int64_t noted_ms, uint64_t seq)
{
    r->used = true;
    r->sku_index = sku_index;
    r->noted_ms = noted_ms;
    r->noted_seq = seq;
    r->first_s = 0;
    r->last_s = -1;
}

/* Whether a is noted less recently than b: the one to give up first. Two
 * noted in the same ms go by the order of their notes (a burst of stock
 * puts lands in one ms); of two never noted, the later in the catalog goes. */
static bool older(const history_ring_t *a, const history_ring_t *b)
{
    if (a->noted_ms != b->noted_ms) {
        return a->noted_ms < b->noted_ms;
    }
    if (a->noted_seq != b->noted_seq) {
        return a->noted_seq < b->noted_seq;
    }
    return a->sku_index > b->sku_index;
}

static history_ring_t *free_ring(history_t *h)
{
    for (uint32_t i = 0; i < HF_HISTORY_SKUS_MAX; i++) {
        if (!h->rings[i].used) {
            return &h->rings[i];
        }
    }
    return NULL;
}

void history_note(history_t *h, uint32_t sku_index, int64_t now_ms)
{
    int at = ring_index(h, sku_index);
    if (at >= 0) {
        history_ring_t *r = &h->rings[at];
        r->noted_ms = now_ms > r->noted_ms ? now_ms : r->noted_ms;
        r->noted_seq = ++h->notes;
        return;
    }
    history_ring_t *r = free_ring(h);
    if (r == NULL) { /* all used: the least recently noted goes */
        r = &h->rings[0];
        for (uint32_t k = 1; k < HF_HISTORY_SKUS_MAX; k++) {
            r = older(&h->rings[k], r) ? &h->rings[k] : r;
        }
    }
    ring_start(r, sku_index, now_ms, ++h->notes);
}

bool history_seed(history_t *h, uint32_t sku_index)
{
    if (ring_index(h, sku_index) >= 0) {
        return true;
    }
    history_ring_t *r = free_ring(h);
    if (r == NULL) {
        return false;
    }
    ring_start(r, sku_index, INT64_MIN, 0);
    return true;
}

bool history_due(history_t *h, int64_t now_ms)
{
    int64_t s = second_of(now_ms);
    if (s <= h->sampled_s) {
        return false;
    }
    h->sampled_s = s;
    return true;
}

uint32_t history_tracked(const history_t *h, uint32_t *out)
{
    const history_ring_t *by_recency[HF_HISTORY_SKUS_MAX];
    uint32_t n = 0;
    for (uint32_t i = 0; i < HF_HISTORY_SKUS_MAX; i++) {
        if (!h->rings[i].used) {
            continue;
        }
        uint32_t k = n++; /* insertion sort, most recent first: 64 at most */
        for (; k > 0 && older(by_recency[k - 1], &h->rings[i]); k--) {
            by_recency[k] = by_recency[k - 1];
        }
        by_recency[k] = &h->rings[i];
    }
    for (uint32_t i = 0; i < n; i++) {
        out[i] = by_recency[i]->sku_index;
    }
    return n;
}

void history_record(history_t *h, uint32_t sku_index, int64_t now_ms, const history_point_t *p)
{
    int64_t s = second_of(now_ms);
    assert(s <= h->sampled_s); /* history_due() let this second through */
    int at = ring_index(h, sku_index);
    history_ring_t *r = at >= 0 ? &h->rings[at] : NULL;
    if (r == NULL || (has_points(r) && s <= r->last_s)) {
        return;
    }
    history_point_t *points = points_of(h, r);
    if (!has_points(r)) {
        r->first_s = s;
    } else {
        const history_point_t last = points[r->last_s % SECONDS];
        int64_t from = r->last_s + 1 > s - SECONDS + 1 ? r->last_s + 1 : s - SECONDS + 1;
        for (int64_t t = from; t < s; t++) {
            points[t % SECONDS] = last;
        }
    }
    points[s % SECONDS] = *p;
    r->last_s = s;
    if (s - r->first_s + 1 > SECONDS) {
        r->first_s = s - SECONDS + 1;
    }
}

bool history_tracks(const history_t *h, uint32_t sku_index)
{
    return ring_index(h, sku_index) >= 0;
}

uint32_t history_read(const history_t *h, uint32_t sku_index, int64_t since_ms, int64_t *first_ms,
                      history_point_t *out)
{
    int at = ring_index(h, sku_index);
    const history_ring_t *r = at >= 0 ? &h->rings[at] : NULL;
    *first_ms = 0;
    if (r == NULL || !has_points(r)) {
        return 0;
    }
    /* The first point whose instant (its second's start) is at or after since_ms. */
    int64_t since_s = since_ms <= 0 ? 0 : since_ms / 1000 + (since_ms % 1000 != 0);
    int64_t from = since_s > r->first_s ? since_s : r->first_s;
    if (from > r->last_s) {
        return 0;
    }
    uint32_t count = (uint32_t)(r->last_s - from + 1);
    assert(count <= HF_HISTORY_SECONDS);
    const history_point_t *points = points_of(h, r);
    for (uint32_t i = 0; i < count; i++) {
        out[i] = points[(from + i) % SECONDS];
    }
    *first_ms = from * 1000;
    return count;
}

bool history_check(const history_t *h)
{
    for (uint32_t i = 0; i < HF_HISTORY_SKUS_MAX; i++) {
        const history_ring_t *r = &h->rings[i];
        if (!r->used) {
            continue;
        }
        if (r->last_s - r->first_s + 1 > SECONDS || r->last_s - r->first_s + 1 < 0) {
            return false; /* 1 */
        }
        if (has_points(r) && (r->first_s < 0 || r->last_s > h->sampled_s)) {
            return false; /* 1, 3 */
        }
        for (uint32_t k = i + 1; k < HF_HISTORY_SKUS_MAX; k++) {
            if (h->rings[k].used && h->rings[k].sku_index == r->sku_index) {
                return false; /* 2 */
            }
        }
    }
    return true;
}
