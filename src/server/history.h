/*
 * history.h - the last hour of some skus' totals, a point a second, kept by
 * the server so that the dashboard's chart has a past when it is opened
 * (GET /v1/history; server-private, pure: no clock, no lock, no I/O).
 *
 * What a point is: a sku's stock, held, sold (available follows), its
 * refusals so far (denials, challenges: totals, as GET /v1/skus/{sku} shows
 * them), its waitlist and whether it is escalated, at the first tick of a
 * second (history_record).
 *
 * Which skus. At most HF_HISTORY_SKUS_MAX, the ones most recently active:
 * the caller notes a sku (history_note) when something happens to it (the
 * server: a hold asked for on it, its stock set). A noted sku not yet
 * tracked takes a free ring, or else the ring of the sku noted least
 * recently, whose points are dropped. history_seed() fills free rings
 * with skus that count as never noted (the catalog's first, at start), so
 * a quiet shop has a past too; any noted sku goes before them.
 *
 * Memory, fixed at history_init(): HF_HISTORY_SKUS_MAX rings of
 * HF_HISTORY_SECONDS points of 48 bytes, 64 x 3600 x 48 = 11,059,200 bytes
 * (10.5 MiB), touched only as rings fill.
 *
 * Invariants, checked by history_check():
 *   1. A used ring covers the seconds first_s..last_s, at most
 *      HF_HISTORY_SECONDS of them, each once (point s at s mod
 *      HF_HISTORY_SECONDS), or none (last_s < first_s) before its first
 *      point.
 *   2. No sku is in two rings.
 *   3. sampled_s is at least every ring's last_s: points only go forward.
 */
#ifndef HF_HISTORY_H
#define HF_HISTORY_H

#include <stdbool.h>
#include <stdint.h>

#include "hf_limits.h"

#define HISTORY_INTERVAL_MS 1000

typedef struct {
    int64_t stock, held, sold;
    int64_t denials, challenges;
    uint32_t waitlist;
    bool escalated;
} history_point_t;

/* A ring's bookkeeping, apart from its points, so that finding a sku's
 * ring (on every hold asked for) reads 2 KB, not a page per ring. */
typedef struct {
    bool used;
    uint32_t sku_index;
    int64_t noted_ms;        /* its last activity; INT64_MIN: seeded, never noted */
    uint64_t noted_seq;      /* the order of that note among all (0: never): within a ms */
    int64_t first_s, last_s; /* the seconds it covers (last_s < first_s: none yet) */
} history_ring_t;

typedef struct {
    history_ring_t rings[HF_HISTORY_SKUS_MAX];
    history_point_t (*points)[HF_HISTORY_SECONDS]; /* ring i's are points[i] */
    int64_t sampled_s; /* the last second history_due() let through */
    uint64_t notes;    /* notes taken so far: the next noted_seq */
} history_t;

/* Reserves the rings: 0, or -1 (and nothing held) when out of memory. */
int history_init(history_t *h);
void history_deinit(history_t *h);
/* Forgets every sku (their indexes now name other skus, or none). */
void history_clear(history_t *h);

/* Something happened to the sku at now_ms: it is tracked from now on, in
 * the place of the sku noted least recently if every ring is taken. */
void history_note(history_t *h, uint32_t sku_index, int64_t now_ms);
/* Tracks the sku if a ring is free, as noted never; false if none is. */
bool history_seed(history_t *h, uint32_t sku_index);

/* Whether a new second began at now_ms since the last call that said so:
 * then the caller records a point for each tracked sku. */
bool history_due(history_t *h, int64_t now_ms);
/* The tracked skus, most recently noted first; returns how many (at most
 * HF_HISTORY_SKUS_MAX, the room out must have). */
uint32_t history_tracked(const history_t *h, uint32_t *out);
/* The sku's point for the second of now_ms. Seconds skipped since its last
 * point (a tick that came late) repeat that last point: what was known
 * until then. An untracked sku, or a second already recorded, is ignored. */
void history_record(history_t *h, uint32_t sku_index, int64_t now_ms, const history_point_t *p);

/* Whether the sku is tracked. */
bool history_tracks(const history_t *h, uint32_t sku_index);
/* Copies the sku's points from the second of since_ms on (all of them if
 * since_ms is earlier) to out, which has room for HF_HISTORY_SECONDS;
 * *first_ms is the first one's second, in ms. Returns the count: 0 for an
 * untracked sku, or none since. */
uint32_t history_read(const history_t *h, uint32_t sku_index, int64_t since_ms, int64_t *first_ms,
                      history_point_t *out);

bool history_check(const history_t *h);

#endif
