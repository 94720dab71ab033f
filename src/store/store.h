/*
 * store.h - the front door of durability: a journal of applied engine ops in
 * SQLite, group commit, snapshots, and recovery.
 *
 * Write path. The server applies an op to the engine, then store_append()s
 * it and gets its sequence number. A commit thread takes everything appended
 * since its last commit and writes it as one row in one transaction (WAL,
 * synchronous=FULL), then publishes the highest durable sequence number and
 * calls the on_durable callback. A reply that reveals state up to seq N is
 * sent only once store_durable_seq() >= N (durable mode), so no client ever
 * sees what a crash could take back.
 *
 * Relaxed mode acknowledges before the fsync, but never more than
 * HF_RELAXED_FLUSH_MS of changes: store_reply_may_go() answers whether a reply
 * may be sent now, and says wait once the oldest un-synced change is older
 * than half that bound, so a slow disk applies back-pressure instead of
 * stretching what a crash can lose.
 *
 * Errors. After any failed SQLite write the store is failed for good (sticky,
 * as SQLite's pager does after an I/O error): appends are refused, nothing
 * more becomes durable, and the server answers 503 storage_unavailable until
 * it is restarted and recovers from what was durable.
 *
 * Recovery (store_recover): load the newest snapshot, replay the journal after
 * it with each op's recorded now_ms (the engine is deterministic, so the
 * replayed state is the acknowledged state), then advance to now: holds whose
 * time ran out while the server was down expire, and are not resurrected.
 *
 * Compaction: store_snapshot() forks a child that writes the engine's live
 * state to a file from its copy-on-write view (snapshot.h), so the server
 * pauses only for the fork; once the file is safely on disk the commit thread
 * points the journal at it and deletes the rows it covers, in one transaction.
 */
#ifndef HF_STORE_H
#define HF_STORE_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "guard.h"

typedef enum {
    STORE_DURABLE = 0, /* reply after fsync */
    STORE_RELAXED = 1, /* reply before fsync; lose at most HF_RELAXED_FLUSH_MS */
} store_durability_t;

/* Called on the commit thread after each commit (or on failure). */
typedef void (*store_durable_fn)(void *ctx, uint64_t durable_seq, bool failed);

/* The journal in PostgreSQL instead of DIR/holdfast.db (pgjournal.h): one
 * shop's, owned by one node at a time. */
#define STORE_SHOP_NAME_MAX 32
#define STORE_NODE_NAME_MAX 24

/* Whether name (len bytes) is a shop's or a node's name: [a-z0-9-]{1,max},
 * safe in a session name, a log line and a URL path. */
static inline bool store_name_ok(const char *name, size_t len, size_t max)
{
    if (len == 0 || len > max) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-')) {
            return false;
        }
    }
    return true;
}
#define STORE_PG_LEASE_MS_MIN 500
#define STORE_PG_LEASE_MS_MAX 60000
#define STORE_PG_LEASE_MS_DEFAULT 2000

typedef struct {
    const char *url;      /* a libpq connection string or URI */
    const char *shop;     /* [a-z0-9-]{1,STORE_SHOP_NAME_MAX} */
    const char *node;     /* [a-z0-9-]{1,STORE_NODE_NAME_MAX}: this node's name */
    const char *node_url; /* where clients reach this node */
    int64_t lease_ms;
} store_pg_t;

/* The exit status of a node that lost its shop, or its journal in
 * PostgreSQL, and ended for a restart (store_open_pg). */
#define STORE_EXIT_LEASE_LOST 75

typedef enum {
    STORE_LEASE_OWNED, /* this node owns the shop */
    STORE_LEASE_HELD,  /* another node does, for now */
    STORE_LEASE_ERROR,
} store_lease_t;

typedef struct {
    char owner[STORE_NODE_NAME_MAX + 1];
    char owner_url[256];
    int64_t remaining_ms; /* until the holder's lease runs out */
    uint64_t epoch;
} store_lease_info_t;

typedef struct {
    uint64_t snapshot_records, journal_records;
    int64_t duration_ms;
    uint32_t holds_expired; /* ran out while the server was down */
    uint64_t last_seq;      /* the last record recovered */
    uint64_t last_chain;    /* the journal's chain value there (record.h) */
    uint64_t marked_seq;    /* what holdfast.mark says was durable (0: no mark) */
    /* store_recover_readable: why it stopped before the journal's end, or "" */
    char damage[320];
} store_recovery_t;

/* Commit latency histogram buckets, in microseconds (upper bounds). */
#define STORE_LATENCY_BUCKETS 12
extern const double store_latency_bucket_us[STORE_LATENCY_BUCKETS];

typedef struct {
    uint64_t commits, records, bytes, snapshots;
    uint64_t latency_count[STORE_LATENCY_BUCKETS + 1]; /* last is +Inf */
    double latency_sum_s;
} store_stats_t;

typedef struct {
    uint8_t *data;
    size_t size, capacity;
    /* Grown with mmap/mremap instead of malloc: a snapshot child, forked
     * from a threaded process, may find malloc's (or a sanitizer's) locks
     * held by a thread that no longer exists there. */
    bool mapped;
} store_buf_t;

typedef struct store_s {
    void *db; /* sqlite3; NULL with the journal in PostgreSQL */
    struct pgj_s *pg; /* the journal in PostgreSQL (pgjournal.h), or NULL */
    struct pgflight_s *flight; /* its rows in flight (pgflight.h), once started */
    bool pg_progress; /* a row committed since the commit thread last looked */
    bool pg_failed;   /* a commit to it failed: the node ends (store_pg_failed) */
    int lock_fd; /* DIR/holdfast.lock, flock()ed: one server per directory */
    void *insert_stmt;
    store_durability_t durability;
    uint32_t compact_records;

    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    bool thread_running, stopping, failed;
    bool failed_full; /* failed because the disk was full (SQLITE_FULL) */
    uint64_t generation; /* store_reopen()s so far: seqs of another are void */
    bool thread_idle; /* the commit thread waits for work: appends must wake it */
    store_buf_t pending; /* encoded records not yet handed to the thread */
    uint64_t pending_first_seq, pending_count;
    int64_t pending_since_ms;  /* monotonic ms of the oldest append in pending */
    int64_t inflight_since_ms; /* ... and in the batch being committed */
    uint64_t fail_after_seq; /* test hook: 0, or fail commits past this seq */
    char dir[PATH_MAX];
    pid_t snapshot_pid;         /* the child writing a snapshot, or 0 */
    int64_t snapshot_retry_at_ms; /* monotonic: no snapshot before (one failed) */
    int64_t snapshot_retry_ms;    /* the pause after the next failure */
    uint64_t snapshot_forked_seq;
    uint64_t snapshot_forked_records; /* since_snapshot when it forked: a failure gives them back */
    uint64_t snapshot_ready_seq; /* written, waiting for the journal to adopt it */
    uint64_t appended_seq, durable_seq, since_snapshot;
    uint64_t trim_seq; /* commit thread: journal rows up to here may be deleted */
    uint64_t chain;    /* commit thread: the chain value of the last row written */
    int mark_fd;       /* DIR/holdfast.mark (mark.h), or -1 */
    unsigned mark_turn;
    int64_t mark_synced_us;
    bool mark_failed; /* a mark write failed (logged once); detection is weaker */
    int64_t snapshot_bytes; /* of the newest snapshot file (0: none yet) */
    bool low_space; /* a snapshot was put off for want of space (logged once) */
    store_durable_fn on_durable;
    void *on_durable_ctx;
    struct store_outbox_s *outbox; /* outbox.c; NULL until watched */
    store_stats_t stats;
} store_t;

/* Opens (creating if need be) DIR/holdfast.db. On failure returns -1 and
 * writes a message to err; nothing is left open. */
int store_open(store_t *s, const char *dir, store_durability_t durability,
               uint32_t compact_records, char *err, size_t err_size);

/* Opens the journal in PostgreSQL for pg's shop, as a standby: the shop is
 * this node's only once store_lease_take() says so. dir is still the local
 * directory for the flock and the snapshot files on their way to
 * PostgreSQL. On failure returns -1 with err; nothing is left open.
 *
 * From then on a commit that fails, or finds the shop taken over, fails
 * the store for good, as a failed commit of the local journal does: every
 * reply waiting is answered with an unknown outcome (on_durable's failed),
 * no change is taken, and store_pg_failed() says the node must end (exit
 * status 75) once those replies are out, not reopen: the shop may be
 * another node's already. Clients retry with their Idempotency-Key on
 * another node; a supervisor restarts this one. */
int store_open_pg(store_t *s, const char *dir, const store_pg_t *pg,
                  store_durability_t durability, uint32_t compact_records, char *err,
                  size_t err_size);

/* One try at the shop's lease (store_open_pg): OWNED, the node owns the
 * shop from now until the process ends; HELD, another node does (held says
 * which, where, and for how long at most); ERROR, err. */
store_lease_t store_lease_take(store_t *s, store_lease_info_t *held, char *err, size_t err_size);

/* Whether this node may answer for the shop at mono_ms: always with SQLite;
 * with PostgreSQL, while its lease is surely its own and its journal has
 * not failed. */
bool store_owner_at(store_t *s, int64_t mono_ms);

/* Where another shop is served, for redirects to it. */
typedef enum {
    STORE_SHOP_AT,      /* at url: its owner's */
    STORE_SHOP_NONE,    /* nowhere: no live owner, or no cluster */
    STORE_SHOP_LOOKING, /* not known yet: ask again in a moment */
} store_shop_t;

/* With the journal in PostgreSQL: where another shop's owner is (shop:
 * len bytes), as this node last read it (pgjournal.h). */
store_shop_t store_shop_owner(store_t *s, const char *shop, size_t len, char *url, size_t size);

/* Whether the journal in PostgreSQL lost a connection (a takeover ended
 * it, or the database went away): what failed then is no damage, and the
 * node ends as it does after a failed commit, for a restart. */
bool store_pg_lost(store_t *s);

/* Whether a commit to the journal in PostgreSQL failed (store_open_pg):
 * the node answers what waits, then ends for a restart. */
bool store_pg_failed(store_t *s);

/* Rebuilds g (freshly initialised) from disk, then advances it to now_ms if
 * that is later than the last recorded time. Returns 0, or -1 with err set if
 * the files are unreadable or do not fit e's capacities. */
int store_recover(store_t *s, guard_t *g, int64_t now_ms, store_recovery_t *info, char *err,
                  size_t err_size);

/* Like store_recover, but a damaged or cut journal is not refused: the
 * guard gets every record up to the first one that cannot be read, checked
 * or replayed, and info says where it stopped (last_seq), what the mark
 * says was durable (marked_seq) and why (damage). For `holdfast recover
 * --accept-loss`, which then rebuilds the directory with store_rebuild. A
 * damaged snapshot is still refused: nothing after it can be replayed. */
int store_recover_readable(store_t *s, guard_t *g, int64_t now_ms, store_recovery_t *info,
                           char *err, size_t err_size);

/* Rebuilds data directory dir from g, the state recovered up to info's
 * last_seq: the damaged files move to dir/damaged-<UTC time>/ (named in
 * moved_to), and a new journal starts from a snapshot of g. Call with the
 * store closed. Returns 0, or -1 with err. */
int store_rebuild(const char *dir, const guard_t *g, const store_recovery_t *info,
                  char *moved_to, size_t moved_to_size, char *err, size_t err_size);

typedef struct {
    uint64_t seq;          /* the copy holds every record up to here */
    uint64_t snapshot_seq; /* ... as this snapshot and the journal after it */
    uint64_t rows;         /* journal rows copied */
    uint64_t bytes;        /* of the files written */
    int64_t duration_ms;
} store_backup_t;

/* Copies data directory dir to out (which must not exist), consistently,
 * while a server runs on dir or when none does: the copy holds everything
 * durable when the copy began, and `holdfast serve --data out` starts from
 * it. Returns 0, or -1 with err (out is then removed). */
int store_backup(const char *dir, const char *out, store_backup_t *info, char *err,
                 size_t err_size);

/* A store that failed for want of space (store_failed_for_space), opened
 * and recovered into g (fresh) again once there is room, its commit thread
 * started. What the failed commits carried is gone, as after a restart; the
 * generation goes up, so a reply computed before (its seq taken with
 * store_appended_seq_of) can tell that its seq no longer means anything.
 * Call with nothing appending (under the server's engine lock). */
int store_reopen(store_t *s, guard_t *g, int64_t now_ms, store_recovery_t *info, char *err,
                 size_t err_size);

/* Starts the commit thread. */
int store_start(store_t *s, store_durable_fn on_durable, void *ctx);

/* Journals an applied op (guard_outcome_t.changed was true). Returns its
 * sequence number, or 0 if the store has failed (nothing was queued). */
uint64_t store_append(store_t *s, const guard_op_t *op, int64_t mono_ms);

/* The highest sequence number appended so far (what a reply may reveal). */
uint64_t store_appended_seq(store_t *s);
/* The same, and the generation it belongs to (see store_reopen). */
uint64_t store_appended_seq_of(store_t *s, uint64_t *generation);
uint64_t store_durable_seq(store_t *s);
bool store_failed(store_t *s);
/* Failed only because the disk was full: the files are as the last good
 * commit left them, so closing the store and recovering it again is safe
 * once there is room (store_has_room). */
bool store_failed_for_space(store_t *s);
/* Whether dir's disk has room for the journal to go on (tens of MiB). */
bool store_has_room(const char *dir);

typedef enum {
    STORE_REPLY_GO,      /* the journal covers it (or relaxed mode allows it) */
    STORE_REPLY_WAIT,    /* not yet: park it until on_durable says so */
    STORE_REPLY_UNKNOWN, /* never: the store failed first, or was reopened since */
} store_reply_t;

/* What a reply revealing state up to seq, taken in generation (from
 * store_appended_seq_of; seq 0 reveals nothing), may do now: the server's
 * one look at the store per reply. */
store_reply_t store_reply_state(store_t *s, uint64_t seq, uint64_t generation, int64_t mono_ms);

/* Whether a reply revealing state up to seq may be sent now (see above). */
bool store_reply_may_go(store_t *s, uint64_t seq, int64_t mono_ms);

/* How long after a failed snapshot the next one may start; the pause
 * doubles with each failure in a row, up to the max, since each try forks
 * the whole process under the engine lock. */
#define STORE_SNAPSHOT_RETRY_MS 1000
#define STORE_SNAPSHOT_RETRY_MS_MAX 64000

/* True at mono_ms when enough has been journaled since the last snapshot,
 * none is being written, and none failed in the last
 * STORE_SNAPSHOT_RETRY_MS (on a full disk every tick would fork a child
 * that fails again). */
bool store_wants_snapshot(store_t *s, int64_t mono_ms);
/* Starts writing e as a snapshot at the current appended seq (unless one is
 * being written, or the disk has no room for it and the journal's next
 * commits: a snapshot is an optimisation, and filling the disk with one
 * would stop the journal). Call with the engine quiescent (under the
 * server's lock). */
void store_snapshot(store_t *s, const guard_t *g);
/* Collects a finished snapshot child and hands its file to the commit thread;
 * with wait, blocks until the child is done. A failed child puts the next
 * snapshot off from mono_ms by STORE_SNAPSHOT_RETRY_MS, twice that after a
 * second failure in a row, and so on up to STORE_SNAPSHOT_RETRY_MS_MAX.
 * Safe to call at any time. */
void store_snapshot_poll(store_t *s, bool wait, int64_t mono_ms);

store_stats_t store_stats(store_t *s);

/* Commits what is pending, stops the thread and closes the database. */
void store_close(store_t *s);

/* Test hook: every commit that would make a record past seq durable fails as
 * an I/O error would. The server sets it from HOLDFAST_FAULT_JOURNAL_AFTER,
 * so the API tests can watch the sticky failure from outside. */
void store_fail_after(store_t *s, uint64_t seq);

/* ------------------------------------------------------------- the outbox */

/* Rows that become durable in the same transaction as the journal records
 * before them: the server's webhook events (server/webhooks.c). A row added
 * with need_seq N is committed with the batch that makes seq N durable, or
 * a later one, and never before: so "the change is durable" and "its event
 * is queued" are one fact, and a crash keeps both or neither. Rows live in
 * holdfast.db's outbox table until store_outbox_delete(); their row ids
 * only grow (AUTOINCREMENT), so they order the events.
 *
 * Nothing of it runs until store_outbox_watch() is called (a server with
 * webhooks): without it, adds are refused and the table stays as it is. */
#define STORE_OUTBOX_EVENT_ID_MAX 40

typedef struct {
    uint64_t row_id;
    uint32_t kind; /* the caller's */
    const char *event_id;
    int64_t at_ms; /* the caller's time of the row */
    const char *body; /* good during the call only */
    size_t size;
} store_outbox_row_t;

typedef void (*store_outbox_fn)(void *ctx, const store_outbox_row_t *row);

/* From now on, fn is called on the commit thread with each row once its
 * transaction committed, in row order. 0, or -1 if out of memory. */
int store_outbox_watch(store_t *s, store_outbox_fn fn, void *ctx);
/* Queues a row for the commit that covers need_seq. 0, or -1 (nothing
 * queued) if the store failed, no one watches, or memory ran out. */
int store_outbox_add(store_t *s, uint64_t need_seq, uint32_t kind, const char *event_id,
                     int64_t at_ms, const char *body, size_t size);
/* The row is done with: deleted in the next commit (one comes soon: a
 * delete wakes the commit thread). */
void store_outbox_delete(store_t *s, uint64_t row_id);
/* Calls fn for every row in the table with a row id above after_row_id, in
 * order; for a start (before store_start) or a reopen. 0, or -1 with err. */
int store_outbox_load(store_t *s, uint64_t after_row_id, store_outbox_fn fn, void *ctx,
                      char *err, size_t err_size);
/* The largest at_ms of any row ever committed (0: none): how far the
 * caller had looked when it wrote its last rows. */
int64_t store_outbox_marker_ms(store_t *s);
/* Rows added and not yet committed. */
uint32_t store_outbox_waiting(store_t *s);

/* ------------------------------------------------------------ the key file */

/* DIR/holdfast.key: the data directory's own random key, from which the
 * server derives the hold ids it shows and the hold secrets it hands out
 * (server/holdkey.c). It is made once, at the first start (or the first
 * start of a data directory from before it existed), and must stay with the
 * journal: a copy of the data directory without it has every id and secret
 * given out so far stop working. Backups copy it with the journal.
 *
 * File (STORE_KEY_FILE_BYTES): "HFKEY001", the key, u64 legacy_hold_seq
 * (little-endian), and the first 16 bytes of SHA-256 over what comes before,
 * so a damaged file is told from a good one. Mode 0600. */
#define STORE_KEY_FILE "holdfast.key"
#define STORE_KEY_BYTES 32
#define STORE_KEY_FILE_BYTES 64

typedef struct {
    uint8_t key[STORE_KEY_BYTES];
    /* The engine's hold sequence when the key was made: holds up to it were
     * made before, and their ids were given out in the engine's spelling. */
    uint64_t legacy_hold_seq;
    bool created;     /* made by this call */
    bool mode_loose;  /* readable by others than the owner (a warning) */
} store_key_t;

/* Reads DIR/holdfast.key, or, if there is none, makes one: a key from the
 * OS's random source and legacy_hold_seq as given, written to a temporary
 * file, fsynced, linked into place (never over an existing key) and the
 * directory fsynced. Returns 0, or -1 with a message in err if the file
 * cannot be read, is damaged, or cannot be made; nothing is changed then. */
int store_key_load(const char *dir, uint64_t legacy_hold_seq, store_key_t *out, char *err,
                   size_t err_size);

/* The shop's hold key: the data directory's key file (store_key_load), or
 * with the journal in PostgreSQL the shop's row there, made with the row. */
int store_hold_key(store_t *s, uint64_t legacy_hold_seq, store_key_t *out, char *err,
                   size_t err_size);

/* STORE_KEY_BYTES from the OS's random source. 0, or -1 with err. */
int store_key_random(uint8_t *key, char *err, size_t err_size);

#endif
