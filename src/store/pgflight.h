/*
 * pgflight.h - journal rows in flight to PostgreSQL at once, each on a
 * connection of its own (store-private).
 *
 * A commit to PostgreSQL with a synchronous standby waits for two flushes
 * in a row (the primary's WAL, then the standby's), a few milliseconds on a
 * busy machine; one row at a time, a reply waited for the commit in flight
 * and then its own. Rows go out in sequence order, each as soon as a
 * connection is free, and commit in whatever order PostgreSQL finishes
 * them; what counts as durable is the longest run of committed rows from
 * the start, so no reply goes out before every row before its own has
 * committed.
 *
 * A row that fails fails the whole flight: nothing more is sent, durable_seq
 * stops at the gap, and the owner is told, who answers what waits with an
 * unknown outcome and then ends the process (store_open_pg): rows after it
 * may have committed, past a gap. Recovery tells such a gap from
 * damage by each row's durable_seq (how far the journal was durable when
 * it was sent): the rows past a gap were never acknowledged, so none of
 * them was sent with a durable_seq reaching the gap.
 */
#ifndef HF_PGFLIGHT_H
#define HF_PGFLIGHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgjournal.h"

#define PGFLIGHT_CONNECTIONS_MAX 8

typedef struct pgflight_s pgflight_t;

/* Called on a connection's thread after each row committed (and after
 * pgflight_durable_seq has moved for it): what it carried, how long it
 * took. */
typedef void (*pgflight_done_fn)(void *ctx, uint64_t records, size_t bytes, int64_t took_us);

/* Called once, on a connection's thread, when a row failed (fenced: the
 * shop's epoch had moved on, so it was not written; else its outcome is
 * unknown). err says why. */
typedef void (*pgflight_fail_fn)(void *ctx, uint64_t first_seq, bool fenced, const char *err);

/* connections (1..PGFLIGHT_CONNECTIONS_MAX) of the shop's owner, each with
 * a thread; durable_seq: how far the journal is already (recovered). NULL
 * with err if a connection cannot be made. */
pgflight_t *pgflight_start(pgj_t *j, unsigned connections, uint64_t durable_seq,
                           pgflight_done_fn done, pgflight_fail_fn fail, void *ctx, char *err,
                           size_t err_size);

/* Sends c (its body copied): c->first_seq must follow the last row sent.
 * Waits while every connection is busy. Once a row has failed, drops c. */
void pgflight_submit(pgflight_t *f, const pgj_commit_t *c);

/* The last seq of the longest run of committed rows from the start. */
uint64_t pgflight_durable_seq(pgflight_t *f);

/* Whether no row is in flight. */
bool pgflight_idle(pgflight_t *f);

/* Waits until no row is in flight, or a row has failed. */
void pgflight_drain(pgflight_t *f);

/* Drains, then ends the threads and closes the connections. NULL does
 * nothing. */
void pgflight_stop(pgflight_t *f);

#endif
