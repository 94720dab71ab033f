/*
 * pgjournal.h - the journal in PostgreSQL, with one owner per shop
 * (store-private; store.h is the front door).
 *
 * Tables, made by the first node that connects (in the connection's
 * default schema):
 *   holdfast_shops(shop, epoch, owner, owner_url, expires, key,
 *                  legacy_hold_seq, snapshot_seq, trim_chain)
 *       the shop's lease (which node owns it, in which epoch, until when,
 *       by PostgreSQL's clock), its hold key, and where its journal starts
 *   holdfast_journal(shop, first_seq, records, epoch, body, chain)
 *       one row per group commit, as in the SQLite journal
 *   holdfast_snapshots(shop, seq, body)
 *       the snapshot the shop's row names, as the file's bytes (snapshot.h)
 *
 * Ownership. A node takes a shop's lease when it is free (expired, or held
 * by a node of the same name: itself, restarted), by ending the old
 * owner's sessions and raising the epoch. Every journal row is written by
 * a statement that key-share-locks the shop's row and finds the epoch it
 * was taken in; a takeover's FOR UPDATE waits for the rows in flight and
 * then changes the epoch, so once a node has taken a shop, no row of an
 * older epoch can commit after it. A node that lost its lease can never
 * acknowledge a change again: its next commit writes nothing.
 *
 * The owner renews its lease every lease_ms / 4 on a connection of its
 * own. It counts itself the owner only until the last renewal's send time
 * plus lease_ms less a margin, by its own monotonic clock, which cannot be
 * later than PostgreSQL's expiry, since the renewal reached PostgreSQL
 * after it was sent. Losing the lease (a renewal that finds a newer epoch)
 * ends the process at once, as a kill -9 would: what it had not
 * acknowledged is an unknown outcome to its clients, which retry with
 * their Idempotency-Key; a supervisor starts it again, as a standby.
 */
#ifndef HF_PGJOURNAL_H
#define HF_PGJOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"
#include "store.h"

typedef struct pgj_s pgj_t;

/* Connects (as a standby) and makes the tables if they are missing. NULL
 * with err if PostgreSQL cannot be reached or refuses. */
pgj_t *pgj_open(const store_pg_t *config, char *err, size_t err_size);

/* One try at the shop's lease. STORE_LEASE_OWNED: this node owns it now
 * (the renewals run from here on); STORE_LEASE_HELD: another node does
 * (who, where and for how much longer in *held); STORE_LEASE_ERROR: err. */
store_lease_t pgj_acquire(pgj_t *j, store_lease_info_t *held, char *err, size_t err_size);

/* Whether this node may still answer as the shop's owner at mono_ms. */
bool pgj_owner_at(pgj_t *j, int64_t mono_ms);
uint64_t pgj_epoch(const pgj_t *j);
/* Where another shop is served (shop: len bytes, not terminated), as this
 * node last read it (pgowners.h): STORE_SHOP_AT with its owner's url;
 * STORE_SHOP_NONE, no live owner (or no such name); STORE_SHOP_LOOKING,
 * not read yet: the lease's thread reads it within moments. */
store_shop_t pgj_owner_of(pgj_t *j, const char *shop, size_t len, char *url, size_t size);

/* Whether both connections still are (a takeover ends them). */
bool pgj_connected(const pgj_t *j);

/* The shop's row: where its journal starts, and its hold key. */
typedef struct {
    uint64_t snapshot_seq, trim_chain, legacy_hold_seq;
    uint8_t key[STORE_KEY_BYTES];
    bool created; /* the row was made by this node's acquire */
} pgj_base_t;

int pgj_base(pgj_t *j, pgj_base_t *out, char *err, size_t err_size);

/* The snapshot the base names, the file's bytes into out. */
int pgj_snapshot(pgj_t *j, uint64_t seq, store_buf_t *out, char *err, size_t err_size);

/* A journal row as read back. durable_seq: how far the journal was
 * durable (acknowledged, at most) when the row was sent. */
typedef struct {
    uint64_t first_seq, count, chain, durable_seq;
    const uint8_t *body;
    size_t size;
} pgj_row_t;

/* Called for every journal row in order; nonzero stops the replay. */
typedef int (*pgj_row_fn)(void *ctx, const pgj_row_t *row, char *err, size_t err_size);

/* Every row of the shop's journal, in order, one at a time. */
int pgj_replay(pgj_t *j, pgj_row_fn fn, void *ctx, char *err, size_t err_size);

/* One commit: the batch's row (count > 0), then, if snapshot is not NULL,
 * snapshot snapshot_seq adopted and the rows it covers deleted; all fenced
 * by the epoch. Commit thread. 0, or -1 with err (fenced: *fenced). */
typedef struct {
    uint64_t first_seq, count, chain;
    uint64_t durable_seq; /* the store's, when the row is sent (pgj_row_t) */
    const uint8_t *body;
    size_t size;
    const store_buf_t *snapshot;
    uint64_t snapshot_seq;
} pgj_commit_t;

int pgj_commit(pgj_t *j, const pgj_commit_t *c, bool *fenced, char *err, size_t err_size);

/* Deletes the journal's rows after last_seq: rows that commits in flight
 * left behind a gap when their node ended, never acknowledged (store.c
 * says how that is told from damage). Fenced. 0 (*dropped rows), or -1. */
int pgj_drop_after(pgj_t *j, uint64_t last_seq, uint64_t *dropped, char *err, size_t err_size);

/* For commits in flight on connections of their own (pgflight.h): a new
 * connection as the shop's owner (NULL with err), one append on it (as
 * pgj_commit without a snapshot; the caller's connection, the caller's
 * thread), and closing it. */
struct pg_conn;
struct pg_conn *pgj_connect_owner(pgj_t *j, char *err, size_t err_size);
int pgj_append(pgj_t *j, struct pg_conn *conn, const pgj_commit_t *c, bool *fenced, char *err,
               size_t err_size);
void pgj_disconnect(struct pg_conn *conn);

/* Stops the renewals, lets an owner's lease run out at once (everything
 * it acknowledged is committed by now: the store closes its journal
 * first), and closes the connections. */
void pgj_close(pgj_t *j);

#endif
