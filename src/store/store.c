/*
 * store.c - the SQLite journal, its commit thread, snapshots and recovery.
 *
 * Schema (DIR/holdfast.db):
 *   journal(batch, first_seq, records, body)  one row per group commit; body
 *                                             is `records` encoded ops with
 *                                             seqs first_seq, first_seq+1, ...
 *   meta(key, value)                          format, snapshot_seq
 * and DIR/snapshot-<snapshot_seq>.bin, the snapshot it names (snapshot.h).
 *
 * Invariants:
 *   1. durable_seq <= appended_seq; every op with seq <= durable_seq is in a
 *      committed transaction (journal row or snapshot).
 *   2. The snapshot meta names reflects exactly the ops with seq <=
 *      snapshot_seq, and its file was durable before meta named it. Journal
 *      rows at or below it are deleted a few per commit after that; replay
 *      skips the records at or below it in whatever rows remain.
 *   3. Once failed, always failed: durable_seq never moves again.
 */
#include "store.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <time.h>

#include "hf_clock.h"
#include "hf_thread.h"
#include "mark.h"
#include "outbox.h"
#include "pgflight.h"
#include "pgjournal.h"
#include "record.h"
#include "snapshot.h"
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define STORE_FORMAT 2
/* Journal rows deleted per commit once a snapshot covers them: at about
 * ten records a row, a snapshot every million records is trimmed within
 * about 400 commits, a fraction of a second under load. */
#define STORE_TRIM_ROWS 256u

const double store_latency_bucket_us[STORE_LATENCY_BUCKETS] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000,
};


static sqlite3 *db_of(store_t *s)
{
    return (sqlite3 *)s->db;
}

static int exec(store_t *s, const char *sql)
{
    return sqlite3_exec(db_of(s), sql, NULL, NULL, NULL);
}

/* Normal locking, so `holdfast backup` can read the database while a server
 * writes it (a WAL reader never blocks the writer); one server per
 * directory is enforced by flock() on DIR/holdfast.lock instead. */
static const char schema_sql[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS journal(batch INTEGER PRIMARY KEY, first_seq INTEGER NOT NULL,"
    " records INTEGER NOT NULL, body BLOB NOT NULL, chain INTEGER);"
    "INSERT OR IGNORE INTO meta VALUES('format', 2);"
    "INSERT OR IGNORE INTO meta VALUES('snapshot_seq', 0);"
    "INSERT OR IGNORE INTO meta VALUES('trim_chain', 0);"
    "INSERT OR IGNORE INTO meta VALUES('legacy_batch', 0);"
    "INSERT OR IGNORE INTO meta VALUES('marked', 0);"
    /* outbox.c: rows committed with the journal (the webhook events) */
    "CREATE TABLE IF NOT EXISTS outbox(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " kind INTEGER NOT NULL, event_id TEXT NOT NULL, at_ms INTEGER NOT NULL, body TEXT NOT NULL);"
    "INSERT OR IGNORE INTO meta VALUES('outbox_marker_ms', 0);";

/* Format 1 (0.1.0) had no chain: its rows keep a NULL one, accepted only up
 * to the last of them (legacy_batch); every row written since has one. */
static const char upgrade_1_sql[] =
    "BEGIN;"
    "ALTER TABLE journal ADD COLUMN chain INTEGER;"
    "UPDATE meta SET value=(SELECT ifnull(max(batch), 0) FROM journal) WHERE key='legacy_batch';"
    "UPDATE meta SET value=2 WHERE key='format';"
    "COMMIT;";

static int64_t meta_get(store_t *s, const char *key);

static int lock_dir(store_t *s, const char *dir, char *err, size_t err_size)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/holdfast.lock", dir) >= (int)sizeof path) {
        snprintf(err, err_size, "data directory path is too long");
        return -1;
    }
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (s->lock_fd < 0) {
        snprintf(err, err_size, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, err_size, "%s: %s", path,
                 errno == EWOULDBLOCK ? "another holdfast is using this data directory"
                                      : strerror(errno));
        close(s->lock_fd);
        s->lock_fd = -1;
        return -1;
    }
    return 0;
}

static int open_db(store_t *s, const char *path, char *err, size_t err_size)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        snprintf(err, err_size, "cannot open %s: %s", path, db ? sqlite3_errmsg(db) : "no memory");
        sqlite3_close(db);
        return -1;
    }
    s->db = db;
    /* Closing must not checkpoint: after a refused start the log, damaged
     * frames and all, stays as it was for whoever looks at it. */
    sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    sqlite3_stmt *insert = NULL;
    bool ok = exec(s, schema_sql) == SQLITE_OK;
    if (ok && meta_get(s, "format") == 1) {
        ok = exec(s, upgrade_1_sql) == SQLITE_OK;
    }
    if (!ok || sqlite3_prepare_v2(db,
                                  "INSERT INTO journal(first_seq, records, body, chain)"
                                  " VALUES(?,?,?,?)",
                                  -1, &insert, NULL) != SQLITE_OK) {
        snprintf(err, err_size, "cannot initialise %s: %s", path, sqlite3_errmsg(db));
        sqlite3_close(db);
        s->db = NULL;
        return -1;
    }
    s->insert_stmt = insert;
    return 0;
}

/* What every store starts with: its fields, its directory made and locked. */
static int open_dir(store_t *s, const char *dir, store_durability_t durability,
                    uint32_t compact_records, char *err, size_t err_size)
{
    memset(s, 0, sizeof *s);
    s->lock_fd = -1;
    s->mark_fd = -1;
    s->durability = durability;
    s->compact_records = compact_records;
    s->pending_since_ms = INT64_MAX;
    s->inflight_since_ms = INT64_MAX;
    s->snapshot_retry_ms = STORE_SNAPSHOT_RETRY_MS;
    if (snprintf(s->dir, sizeof s->dir, "%s", dir) >= (int)sizeof s->dir) {
        snprintf(err, err_size, "data directory path is too long");
        return -1;
    }
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        snprintf(err, err_size, "cannot create data directory %s: %s", dir, strerror(errno));
        return -1;
    }
    return lock_dir(s, dir, err, err_size);
}

static void init_sync(store_t *s)
{
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&s->wake, &attr);
    pthread_condattr_destroy(&attr);
}

int store_open(store_t *s, const char *dir, store_durability_t durability,
               uint32_t compact_records, char *err, size_t err_size)
{
    if (open_dir(s, dir, durability, compact_records, err, err_size) != 0) {
        return -1;
    }
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/holdfast.db", dir) >= (int)sizeof path) {
        snprintf(err, err_size, "data directory path is too long");
        close(s->lock_fd);
        s->lock_fd = -1;
        return -1;
    }
    if (open_db(s, path, err, err_size) != 0) {
        close(s->lock_fd);
        s->lock_fd = -1;
        return -1;
    }
    init_sync(s);
    return 0;
}

int store_open_pg(store_t *s, const char *dir, const store_pg_t *pg,
                  store_durability_t durability, uint32_t compact_records, char *err,
                  size_t err_size)
{
    if (open_dir(s, dir, durability, compact_records, err, err_size) != 0) {
        return -1;
    }
    s->pg = pgj_open(pg, err, err_size);
    if (s->pg == NULL) {
        close(s->lock_fd);
        s->lock_fd = -1;
        return -1;
    }
    init_sync(s);
    return 0;
}

store_lease_t store_lease_take(store_t *s, store_lease_info_t *held, char *err, size_t err_size)
{
    assert(s->pg != NULL);
    return pgj_acquire(s->pg, held, err, err_size);
}

store_shop_t store_shop_owner(store_t *s, const char *shop, size_t len, char *url, size_t size)
{
    return s->pg != NULL ? pgj_owner_of(s->pg, shop, len, url, size) : STORE_SHOP_NONE;
}

bool store_pg_lost(store_t *s)
{
    return s->pg != NULL && !pgj_connected(s->pg);
}

bool store_pg_failed(store_t *s)
{
    return __atomic_load_n(&s->pg_failed, __ATOMIC_ACQUIRE);
}

bool store_owner_at(store_t *s, int64_t mono_ms)
{
    /* Read on every request: atomics, not the store's lock. */
    return s->pg == NULL || (pgj_owner_at(s->pg, mono_ms) && !store_pg_failed(s));
}

int store_hold_key(store_t *s, uint64_t legacy_hold_seq, store_key_t *out, char *err,
                   size_t err_size)
{
    if (s->pg == NULL) {
        return store_key_load(s->dir, legacy_hold_seq, out, err, err_size);
    }
    pgj_base_t b;
    if (pgj_base(s->pg, &b, err, err_size) != 0) {
        return -1;
    }
    memset(out, 0, sizeof *out);
    memcpy(out->key, b.key, STORE_KEY_BYTES);
    out->legacy_hold_seq = b.legacy_hold_seq;
    out->created = b.created;
    memset(b.key, 0, sizeof b.key);
    return 0;
}

/* ---------------------------------------------------------------- recovery */

static bool meta_read(store_t *s, const char *key, int64_t *out)
{
    sqlite3_stmt *st;
    bool found = false;
    if (sqlite3_prepare_v2(db_of(s), "SELECT value FROM meta WHERE key=?", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            *out = sqlite3_column_int64(st, 0);
            found = true;
        }
    }
    sqlite3_finalize(st);
    return found;
}

/* A value that is never negative, or -1 when it is missing. */
static int64_t meta_get(store_t *s, const char *key)
{
    int64_t v;
    return meta_read(s, key, &v) ? v : -1;
}

/* A replay in progress: where it is and what it must find next. */
typedef struct {
    guard_t *g;
    uint64_t after_seq; /* the snapshot's: records up to here are in it */
    uint64_t chain;     /* the last row's chain value */
    uint64_t next_seq;  /* the first_seq the next row must have */
    bool started;       /* a row was read (the first may start inside the snapshot) */
    int64_t legacy_batch;
    mark_state_t mark_state;
    mark_t mark;
    store_recovery_t *info;
} replay_t;

/* Replays one journal row's records with seq > after_seq. */
static int replay_batch(replay_t *rp, const uint8_t *body, size_t size, uint64_t first_seq,
                        uint64_t count, char *err, size_t err_size)
{
    record_reader_t r = {.p = body, .left = size, .ok = true};
    for (uint64_t i = 0; i < count; i++) {
        guard_op_t op;
        uint64_t seq = first_seq + i;
        if (!record_decode_op(&r, &op)) {
            snprintf(err, err_size, "journal record %llu is damaged", (unsigned long long)seq);
            return -1;
        }
        if (seq <= rp->after_seq) {
            continue; /* already in the snapshot, which may be younger than it */
        }
        if (op.engine.now_ms < engine_now_ms(guard_engine(rp->g))) {
            snprintf(err, err_size, "journal record %llu goes back in time",
                     (unsigned long long)seq);
            return -1;
        }
        uint64_t recorded_id = op.engine.u.hold_create.hold_id;
        bool create = op.kind == GUARD_OP_ENGINE && op.engine.kind == ENGINE_OP_HOLD_CREATE;
        guard_outcome_t o = guard_apply(rp->g, &op);
        /* It was applied once with this result; the guard is deterministic,
         * so anything else means the files or the code are wrong. */
        if (o.result != GUARD_OK || !o.changed || (create && o.engine.hold_id != recorded_id)) {
            snprintf(err, err_size, "journal record %llu does not replay: %s",
                     (unsigned long long)seq,
                     o.result == GUARD_ENGINE ? engine_result_message(o.engine.result)
                                              : guard_result_message(o.result));
            return -1;
        }
        rp->info->journal_records++;
        rp->info->last_seq = seq;
    }
    if (r.left != 0) {
        snprintf(err, err_size, "journal batch at %llu has trailing bytes",
                 (unsigned long long)first_seq);
        return -1;
    }
    return 0;
}

/* One journal row, from SQLite or PostgreSQL. */
typedef struct {
    int64_t batch; /* SQLite's row order (PostgreSQL's: first_seq) */
    uint64_t first, count;
    const uint8_t *body;
    size_t size;
    bool legacy; /* written before rows had a chain value */
    uint64_t chain;
} row_t;

/* Checks a row's place and checksum before any of it is applied. */
static int check_row(replay_t *rp, const row_t *row, char *err, size_t err_size)
{
    uint64_t first = row->first, count = row->count;
    uint64_t last = first + count - 1;
    if (count == 0 || first == 0 || first > rp->next_seq) {
        snprintf(err, err_size, "the journal has a gap: record %llu follows record %llu",
                 (unsigned long long)first, (unsigned long long)(rp->next_seq - 1));
        return -1;
    }
    if (first != rp->next_seq && rp->started) {
        snprintf(err, err_size, "journal records %llu-%llu are out of place",
                 (unsigned long long)first, (unsigned long long)last);
        return -1;
    }
    bool legacy = row->legacy;
    uint64_t chain = legacy ? 0 : row->chain;
    if (legacy && row->batch > rp->legacy_batch) {
        snprintf(err, err_size, "journal records %llu-%llu have lost their checksum",
                 (unsigned long long)first, (unsigned long long)last);
        return -1;
    }
    if (!legacy && chain != record_chain(rp->chain, first, count, row->body, row->size)) {
        snprintf(err, err_size, "journal records %llu-%llu are damaged (checksum mismatch)",
                 (unsigned long long)first, (unsigned long long)last);
        return -1;
    }
    if (rp->mark_state == MARK_OK && last == rp->mark.seq && chain != rp->mark.chain) {
        snprintf(err, err_size,
                 "journal records %llu-%llu are not the ones " MARK_FILE " recorded as durable",
                 (unsigned long long)first, (unsigned long long)last);
        return -1;
    }
    rp->chain = chain;
    return 0;
}

static int replay_row(replay_t *rp, const row_t *row, char *err, size_t err_size)
{
    uint64_t first = row->first, count = row->count;
    if (check_row(rp, row, err, err_size) != 0 ||
        replay_batch(rp, row->body, row->size, first, count, err, err_size) != 0) {
        return -1;
    }
    if (first + count - 1 > rp->info->last_seq) {
        rp->info->last_seq = first + count - 1; /* rows the snapshot covers entirely */
    }
    rp->info->last_chain = rp->chain;
    rp->next_seq = first + count;
    rp->started = true;
    return 0;
}

/* Replays every row after the snapshot. A read error is damage, never the
 * end of the journal: SQLite reports a damaged page as SQLITE_CORRUPT, and
 * stopping there quietly would start without what followed it. */
static int replay_journal(store_t *s, replay_t *rp, char *err, size_t err_size)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db_of(s),
                           "SELECT batch, first_seq, records, body, chain FROM journal"
                           " ORDER BY batch",
                           -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, err_size, "cannot read the journal: %s", sqlite3_errmsg(db_of(s)));
        return -1;
    }
    int rc = 0;
    for (;;) {
        int step = sqlite3_step(st);
        if (step == SQLITE_DONE) {
            break;
        }
        if (step != SQLITE_ROW) {
            snprintf(err, err_size, "the journal cannot be read after record %llu: %s",
                     (unsigned long long)rp->info->last_seq, sqlite3_errmsg(db_of(s)));
            rc = -1;
            break;
        }
        row_t row = {
            .batch = sqlite3_column_int64(st, 0),
            .first = (uint64_t)sqlite3_column_int64(st, 1),
            .count = (uint64_t)sqlite3_column_int64(st, 2),
            .body = sqlite3_column_blob(st, 3),
            .size = (size_t)sqlite3_column_bytes(st, 3),
            .legacy = sqlite3_column_type(st, 4) == SQLITE_NULL,
            .chain = (uint64_t)sqlite3_column_int64(st, 4),
        };
        if ((rc = replay_row(rp, &row, err, err_size)) != 0) {
            break;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

/* The journal must reach what the mark says was durable. */
static int check_mark(store_t *s, const replay_t *rp, char *err, size_t err_size)
{
    const store_recovery_t *info = rp->info;
    /* Before meta says the mark was made, a crash may have left its file
     * missing or empty: that is no mark yet, not a damaged one. A valid
     * mark counts whatever meta says. */
    bool marked = meta_get(s, "marked") == 1;
    if (rp->mark_state == MARK_DAMAGED && marked) {
        snprintf(err, err_size, MARK_FILE " is damaged or unreadable");
        return -1;
    }
    if (rp->mark_state == MARK_ABSENT && marked) {
        snprintf(err, err_size, MARK_FILE " is missing");
        return -1;
    }
    if (rp->mark_state == MARK_OK && info->last_seq < rp->mark.seq) {
        snprintf(err, err_size,
                 "the journal ends at record %llu but " MARK_FILE
                 " says records up to %llu were durable: %llu are missing (a damaged or lost "
                 "write-ahead log, holdfast.db-wal)",
                 (unsigned long long)info->last_seq, (unsigned long long)rp->mark.seq,
                 (unsigned long long)(rp->mark.seq - info->last_seq));
        return -1;
    }
    if (rp->mark_state == MARK_OK && info->last_seq == rp->mark.seq &&
        info->last_chain != rp->mark.chain) {
        snprintf(err, err_size,
                 "the journal's last records are not the ones " MARK_FILE " recorded");
        return -1;
    }
    return 0;
}

/* Words the refusal: which file, the last good record, what to do. */
static void explain_refusal(const store_t *s, const store_recovery_t *info, char *err,
                            size_t err_size)
{
    char why[320];
    snprintf(why, sizeof why, "%s", err);
    if (s->pg != NULL) {
        snprintf(err, err_size,
                 "the journal in PostgreSQL: %s. The last good record is %llu. Nothing was "
                 "changed",
                 why, (unsigned long long)info->last_seq);
        return;
    }
    snprintf(err, err_size,
             "%s/holdfast.db: %s. The last good record is %llu. Nothing was changed; to start "
             "from record %llu and lose what follows it: holdfast recover --data %s "
             "--accept-loss (a backup may lose less)",
             s->dir, why, (unsigned long long)info->last_seq,
             (unsigned long long)info->last_seq, s->dir);
}

/* Loads the snapshot the journal names and checks the format. */
static int load_base(store_t *s, guard_t *g, store_recovery_t *info, int64_t *snapshot_seq,
                     int64_t *trim_chain, char *err, size_t err_size)
{
    if (meta_get(s, "format") != STORE_FORMAT) {
        snprintf(err, err_size, "%s/holdfast.db is damaged or of an unknown format", s->dir);
        return -1;
    }
    *snapshot_seq = meta_get(s, "snapshot_seq");
    if (*snapshot_seq < 0 || !meta_read(s, "trim_chain", trim_chain)) {
        snprintf(err, err_size, "%s/holdfast.db is damaged: its meta table is incomplete",
                 s->dir);
        return -1;
    }
    if (*snapshot_seq > 0 && snapshot_load(s->dir, (uint64_t)*snapshot_seq, g,
                                           &info->snapshot_records, err, err_size) != 0) {
        return -1;
    }
    return 0;
}

/* load_base, for the journal in PostgreSQL: the snapshot comes from there. */
static int pg_load_base(store_t *s, guard_t *g, store_recovery_t *info, int64_t *snapshot_seq,
                        int64_t *trim_chain, char *err, size_t err_size)
{
    pgj_base_t b;
    if (pgj_base(s->pg, &b, err, err_size) != 0) {
        return -1;
    }
    memset(b.key, 0, sizeof b.key);
    *snapshot_seq = (int64_t)b.snapshot_seq;
    *trim_chain = (int64_t)b.trim_chain;
    s->snapshot_bytes = 0;
    if (b.snapshot_seq == 0) {
        return 0;
    }
    store_buf_t file = {0};
    int rc = pgj_snapshot(s->pg, b.snapshot_seq, &file, err, err_size);
    if (rc == 0) {
        rc = snapshot_load_bytes(&file, b.snapshot_seq, "in PostgreSQL", g,
                                 &info->snapshot_records, err, err_size);
    }
    s->snapshot_bytes = (int64_t)file.size;
    record_buf_free(&file);
    return rc;
}

/* A replay from PostgreSQL, where rows commit out of order (pgflight.h):
 * a gap ends the journal if no row after it was sent once the gap's
 * records were durable; else acknowledged records are missing. */
typedef struct {
    replay_t *rp;
    bool cut;         /* past a gap */
    uint64_t gap_seq; /* the first record missing */
    uint64_t past_rows;
} pg_replay_t;

static int pg_row(void *ctx, const pgj_row_t *row, char *err, size_t err_size)
{
    pg_replay_t *pr = ctx;
    replay_t *rp = pr->rp;
    if (!pr->cut && row->first_seq > rp->next_seq) {
        pr->cut = true;
        pr->gap_seq = rp->next_seq;
    }
    if (pr->cut) {
        if (row->durable_seq >= pr->gap_seq) {
            snprintf(err, err_size,
                     "the journal lacks records from %llu on, and they were durable: the row "
                     "at %llu was sent when records up to %llu were",
                     (unsigned long long)pr->gap_seq, (unsigned long long)row->first_seq,
                     (unsigned long long)row->durable_seq);
            return -1;
        }
        pr->past_rows++;
        return 0;
    }
    row_t r = {.batch = (int64_t)row->first_seq, .first = row->first_seq, .count = row->count,
               .body = row->body, .size = row->size, .chain = row->chain};
    return replay_row(rp, &r, err, err_size);
}

/* The journal in PostgreSQL, and the rows past a gap dropped: their seqs
 * are the next appends'. */
static int pg_replay(store_t *s, replay_t *rp, char *err, size_t err_size)
{
    pg_replay_t pr = {.rp = rp};
    if (pgj_replay(s->pg, pg_row, &pr, err, err_size) != 0) {
        return -1;
    }
    if (!pr.cut) {
        return 0;
    }
    uint64_t dropped = 0;
    if (pgj_drop_after(s->pg, rp->info->last_seq, &dropped, err, err_size) != 0) {
        return -1;
    }
    fprintf(stderr,
            "level=warn msg=\"dropped journal rows past a gap: commits in flight when the last "
            "owner ended, never acknowledged\" gap_seq=%llu rows=%llu\n",
            (unsigned long long)pr.gap_seq, (unsigned long long)dropped);
    return 0;
}

/* The journal after the base, and (SQLite) the mark it must reach. */
static int replay_all(store_t *s, replay_t *rp, char *err, size_t err_size)
{
    if (s->pg != NULL) {
        return pg_replay(s, rp, err, err_size);
    }
    return replay_journal(s, rp, err, err_size) != 0 || check_mark(s, rp, err, err_size) != 0
               ? -1
               : 0;
}

static int recover(store_t *s, guard_t *g, int64_t now_ms, store_recovery_t *info,
                   bool accept_loss, char *err, size_t err_size)
{
    int64_t start_us = hf_mono_us();
    memset(info, 0, sizeof *info);
    int64_t snapshot_seq, trim_chain;
    if ((s->pg != NULL ? pg_load_base(s, g, info, &snapshot_seq, &trim_chain, err, err_size)
                       : load_base(s, g, info, &snapshot_seq, &trim_chain, err, err_size)) != 0) {
        return -1;
    }
    replay_t rp = {.g = g, .after_seq = (uint64_t)snapshot_seq, .chain = (uint64_t)trim_chain,
                   .next_seq = (uint64_t)snapshot_seq + 1,
                   .legacy_batch = s->pg != NULL ? 0 : meta_get(s, "legacy_batch"), .info = info};
    rp.mark_state = s->pg != NULL ? MARK_ABSENT : mark_read(s->dir, &rp.mark);
    info->marked_seq = rp.mark_state == MARK_OK ? rp.mark.seq : 0;
    info->last_seq = (uint64_t)snapshot_seq;
    info->last_chain = rp.chain;
    if (replay_all(s, &rp, err, err_size) != 0) {
        if (!accept_loss) {
            explain_refusal(s, info, err, err_size);
            return -1;
        }
        snprintf(info->damage, sizeof info->damage, "%s", err);
    }
    if (!accept_loss) {
        /* Leftovers of a crash; after damage they may be evidence, and
         * store_rebuild moves them aside instead. */
        snapshot_remove_others(s->dir, (uint64_t)snapshot_seq);
    }
    if (s->pg == NULL) {
        s->snapshot_bytes =
            snapshot_seq > 0 ? snapshot_file_bytes(s->dir, (uint64_t)snapshot_seq) : 0;
    }
    s->trim_seq = (uint64_t)snapshot_seq; /* rows it covers that were not trimmed yet */
    s->appended_seq = info->last_seq;
    s->durable_seq = s->appended_seq;
    s->chain = info->last_chain;
    if (now_ms > engine_now_ms(guard_engine(g))) {
        uint64_t expired = engine_stats(guard_engine(g)).holds_expired;
        guard_advance(g, now_ms);
        info->holds_expired = (uint32_t)(engine_stats(guard_engine(g)).holds_expired - expired);
    }
    assert(guard_check(g));
    info->duration_ms = (hf_mono_us() - start_us) / 1000;
    return 0;
}

/* From now on the mark follows every commit; meta remembers that it
 * exists, so losing the file is noticed. */
static int start_mark(store_t *s, const store_recovery_t *info, char *err, size_t err_size)
{
    mark_t m = {.seq = info->last_seq, .chain = info->last_chain};
    if (mark_create(s->dir, m) != 0 || (s->mark_fd = mark_open(s->dir)) < 0 ||
        exec(s, "UPDATE meta SET value=1 WHERE key='marked'") != SQLITE_OK) {
        snprintf(err, err_size, "cannot write %s/" MARK_FILE ": %s", s->dir, strerror(errno));
        return -1;
    }
    s->mark_synced_us = hf_mono_us();
    return 0;
}

int store_recover(store_t *s, guard_t *g, int64_t now_ms, store_recovery_t *info, char *err,
                  size_t err_size)
{
    if (recover(s, g, now_ms, info, false, err, err_size) != 0) {
        return -1;
    }
    return s->pg != NULL ? 0 : start_mark(s, info, err, err_size);
}

/* Everything of a failed store but its identity (directory, flock, mode,
 * callback, lock), as store_open leaves it. Under s->lock, the thread gone. */
static void forget_failed(store_t *s)
{
    s->pending.size = 0;
    s->pending_first_seq = s->pending_count = 0;
    s->pending_since_ms = s->inflight_since_ms = INT64_MAX;
    s->snapshot_pid = 0;
    s->snapshot_retry_at_ms = 0;
    s->snapshot_retry_ms = STORE_SNAPSHOT_RETRY_MS;
    s->snapshot_forked_seq = s->snapshot_ready_seq = s->since_snapshot = 0;
    s->trim_seq = 0;
    s->thread_idle = s->stopping = false;
    s->mark_turn = 0;
    s->mark_failed = s->low_space = false;
    s->fail_after_seq = 0;
    outbox_forget(s);
}

int store_reopen(store_t *s, guard_t *g, int64_t now_ms, store_recovery_t *info, char *err,
                 size_t err_size)
{
    assert(store_failed(s));
    store_snapshot_poll(s, true, hf_mono_ms());
    if (s->thread_running) {
        pthread_join(s->thread, NULL); /* it ended when the commit failed */
        s->thread_running = false;
    }
    sqlite3_finalize((sqlite3_stmt *)s->insert_stmt);
    sqlite3_close(db_of(s));
    s->insert_stmt = s->db = NULL;
    if (s->mark_fd >= 0) {
        close(s->mark_fd);
        s->mark_fd = -1;
    }
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/holdfast.db", s->dir);
    /* Readers of the sequence numbers wait while they are rebuilt. */
    pthread_mutex_lock(&s->lock);
    forget_failed(s);
    int rc = open_db(s, path, err, err_size);
    if (rc == 0) {
        rc = store_recover(s, g, now_ms, info, err, err_size);
    }
    pthread_mutex_unlock(&s->lock);
    if (rc == 0) {
        rc = store_start(s, s->on_durable, s->on_durable_ctx);
    }
    if (rc == 0) {
        pthread_mutex_lock(&s->lock);
        s->failed = s->failed_full = false;
        s->generation++;
        pthread_mutex_unlock(&s->lock);
    }
    return rc;
}

uint64_t store_appended_seq_of(store_t *s, uint64_t *generation)
{
    pthread_mutex_lock(&s->lock);
    uint64_t v = s->appended_seq;
    *generation = s->generation;
    pthread_mutex_unlock(&s->lock);
    return v;
}

int store_recover_readable(store_t *s, guard_t *g, int64_t now_ms, store_recovery_t *info,
                           char *err, size_t err_size)
{
    return recover(s, g, now_ms, info, true, err, err_size);
}

/* ----------------------------------------------------------------- rebuild */

/* Moves the damaged files into a new dir/damaged-<UTC time>/: kept for
 * whoever wants to look at them, out of the way of the new journal. */
static int move_aside(const char *dir, char *moved_to, size_t size, char *err, size_t err_size)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    if (snprintf(moved_to, size, "%s/damaged-%s", dir, stamp) >= (int)size ||
        mkdir(moved_to, 0750) != 0) {
        snprintf(err, err_size, "cannot create %s: %s", moved_to, strerror(errno));
        return -1;
    }
    DIR *d = opendir(dir);
    if (d == NULL) {
        snprintf(err, err_size, "cannot read %s: %s", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    struct dirent *ent;
    while (rc == 0 && (ent = readdir(d)) != NULL) {
        const char *n = ent->d_name;
        if (strncmp(n, "holdfast.db", 11) != 0 && strcmp(n, MARK_FILE) != 0 &&
            strncmp(n, "snapshot-", 9) != 0) {
            continue;
        }
        char from[PATH_MAX], to[PATH_MAX];
        snprintf(from, sizeof from, "%s/%s", dir, n);
        snprintf(to, sizeof to, "%s/%s", moved_to, n);
        if (rename(from, to) != 0) {
            snprintf(err, err_size, "cannot move %s to %s: %s", from, to, strerror(errno));
            rc = -1;
        }
    }
    closedir(d);
    return rc;
}

/* A fresh journal whose snapshot is g at seq, and its mark. */
static int start_fresh(const char *dir, const guard_t *g, uint64_t seq, uint64_t chain,
                       char *err, size_t err_size)
{
    store_t s;
    if (snapshot_write(dir, g, seq) != 0) {
        snprintf(err, err_size, "cannot write a snapshot in %s: %s", dir, strerror(errno));
        return -1;
    }
    if (store_open(&s, dir, STORE_DURABLE, 0, err, err_size) != 0) {
        return -1;
    }
    char sql[200];
    snprintf(sql, sizeof sql,
             "BEGIN; UPDATE meta SET value=%llu WHERE key='snapshot_seq';"
             "UPDATE meta SET value=%lld WHERE key='trim_chain'; COMMIT;",
             (unsigned long long)seq, (long long)chain);
    int rc = exec(&s, sql) == SQLITE_OK ? 0 : -1;
    if (rc != 0) {
        snprintf(err, err_size, "cannot write %s/holdfast.db: %s", dir, sqlite3_errmsg(db_of(&s)));
    }
    store_recovery_t info = {.last_seq = seq, .last_chain = chain};
    if (rc == 0 && start_mark(&s, &info, err, err_size) != 0) {
        rc = -1;
    }
    s.durable_seq = seq; /* what the close writes to the mark again */
    s.chain = chain;
    s.failed = rc != 0;  /* a failed rebuild leaves no mark claiming more */
    store_close(&s);
    return rc;
}

int store_rebuild(const char *dir, const guard_t *g, const store_recovery_t *info,
                  char *moved_to, size_t moved_to_size, char *err, size_t err_size)
{
    if (move_aside(dir, moved_to, moved_to_size, err, err_size) != 0) {
        return -1;
    }
    return start_fresh(dir, g, info->last_seq, info->last_chain, err, err_size);
}

/* ------------------------------------------------------------ write path */

uint64_t store_append(store_t *s, const guard_op_t *op, int64_t mono_ms)
{
    pthread_mutex_lock(&s->lock);
    if (s->failed) {
        pthread_mutex_unlock(&s->lock);
        return 0;
    }
    if (s->pending_count == 0) {
        s->pending_first_seq = s->appended_seq + 1;
        s->pending_since_ms = mono_ms;
    }
    record_encode_op(&s->pending, op);
    s->pending_count++;
    s->since_snapshot++;
    uint64_t seq = ++s->appended_seq;
    if (s->thread_idle) {
        /* Only an idle thread needs waking: a busy one takes this batch when
         * its commit ends, and a gathering one when its interval does. */
        pthread_cond_signal(&s->wake);
    }
    pthread_mutex_unlock(&s->lock);
    return seq;
}

uint64_t store_appended_seq(store_t *s)
{
    pthread_mutex_lock(&s->lock);
    uint64_t v = s->appended_seq;
    pthread_mutex_unlock(&s->lock);
    return v;
}

uint64_t store_durable_seq(store_t *s)
{
    pthread_mutex_lock(&s->lock);
    uint64_t v = s->durable_seq;
    pthread_mutex_unlock(&s->lock);
    return v;
}

bool store_failed(store_t *s)
{
    pthread_mutex_lock(&s->lock);
    bool v = s->failed;
    pthread_mutex_unlock(&s->lock);
    return v;
}

/* Under s->lock. */
static bool may_go(const store_t *s, uint64_t seq, int64_t mono_ms)
{
    bool go = seq <= s->durable_seq;
    if (!go && !s->failed && s->durability == STORE_RELAXED) {
        int64_t oldest = s->inflight_since_ms < s->pending_since_ms ? s->inflight_since_ms
                                                                    : s->pending_since_ms;
        go = oldest == INT64_MAX || mono_ms - oldest < HF_RELAXED_FLUSH_MS / 2;
    }
    return go;
}

bool store_reply_may_go(store_t *s, uint64_t seq, int64_t mono_ms)
{
    pthread_mutex_lock(&s->lock);
    bool go = may_go(s, seq, mono_ms);
    pthread_mutex_unlock(&s->lock);
    return go;
}

store_reply_t store_reply_state(store_t *s, uint64_t seq, uint64_t generation, int64_t mono_ms)
{
    pthread_mutex_lock(&s->lock);
    store_reply_t v = STORE_REPLY_WAIT;
    if (seq > 0 && generation != s->generation) {
        v = STORE_REPLY_UNKNOWN;
    } else if (may_go(s, seq, mono_ms)) {
        v = STORE_REPLY_GO;
    } else if (s->failed) {
        v = STORE_REPLY_UNKNOWN;
    }
    pthread_mutex_unlock(&s->lock);
    return v;
}

bool store_wants_snapshot(store_t *s, int64_t mono_ms)
{
    pthread_mutex_lock(&s->lock);
    bool v = s->compact_records > 0 && s->since_snapshot >= s->compact_records &&
             s->snapshot_pid == 0 && s->snapshot_ready_seq == 0 && !s->failed &&
             mono_ms >= s->snapshot_retry_at_ms;
    pthread_mutex_unlock(&s->lock);
    return v;
}

/* Room on the data directory's disk for a snapshot as large as the last
 * one and a quarter more, plus this much for the journal meanwhile. */
#define STORE_SPARE_BYTES (64ll << 20)
/* A snapshot of a large state takes seconds; one that takes this long at a
 * stop is stuck, and a stop must end. */
#define SNAPSHOT_WAIT_MS_MAX 30000

bool store_failed_for_space(store_t *s)
{
    pthread_mutex_lock(&s->lock);
    bool v = s->failed && s->failed_full;
    pthread_mutex_unlock(&s->lock);
    return v;
}

bool store_has_room(const char *dir)
{
    struct statvfs v;
    return statvfs(dir, &v) == 0 &&
           (int64_t)v.f_bavail * (int64_t)v.f_frsize >= STORE_SPARE_BYTES;
}

static bool room_for_snapshot(store_t *s, int64_t last_bytes)
{
    struct statvfs v;
    if (statvfs(s->dir, &v) != 0) {
        return true; /* cannot tell: the write itself will say */
    }
    int64_t free_bytes = (int64_t)v.f_bavail * (int64_t)v.f_frsize;
    int64_t need = last_bytes + last_bytes / 4 + STORE_SPARE_BYTES;
    bool room = free_bytes >= need;
    if (!room && !s->low_space) {
        fprintf(stderr,
                "level=warn msg=\"snapshot put off: the disk is nearly full; the journal keeps "
                "everything\" free_bytes=%lld need_bytes=%lld\n",
                (long long)free_bytes, (long long)need);
    }
    s->low_space = !room;
    return room;
}

void store_snapshot(store_t *s, const guard_t *g)
{
    pthread_mutex_lock(&s->lock);
    bool busy = s->snapshot_pid != 0 || s->snapshot_ready_seq != 0 || s->failed;
    uint64_t seq = s->appended_seq;
    int64_t last_bytes = s->snapshot_bytes;
    pthread_mutex_unlock(&s->lock);
    if (busy || seq == 0 || !room_for_snapshot(s, last_bytes)) {
        return;
    }
    pid_t pid = snapshot_fork(s->dir, g, seq);
    if (pid < 0) {
        fprintf(stderr, "level=warn msg=\"cannot fork to snapshot; the journal keeps growing\" "
                        "err=\"%s\"\n",
                strerror(errno));
        return;
    }
    pthread_mutex_lock(&s->lock);
    s->snapshot_pid = pid;
    s->snapshot_forked_seq = seq;
    s->snapshot_forked_records = s->since_snapshot;
    s->since_snapshot = 0;
    pthread_mutex_unlock(&s->lock);
}

/* Waits for the snapshot child at most SNAPSHOT_WAIT_MS_MAX, then kills it:
 * a stop or a reopen must never hang on an optimisation. Its file is then
 * left unfinished (.tmp, removed at the next start) and the journal keeps
 * everything. Returns waitpid's result. */
static pid_t wait_snapshot_child(pid_t pid, int *status)
{
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n;
        while ((n = poll(&p, 1, SNAPSHOT_WAIT_MS_MAX)) < 0 && errno == EINTR) {
        }
        close(fd);
        if (n == 0) {
            fprintf(stderr, "level=warn msg=\"the snapshot child did not finish within %d ms; "
                            "stopping it (the journal keeps everything)\" pid=%d\n",
                    SNAPSHOT_WAIT_MS_MAX, (int)pid);
            kill(pid, SIGKILL);
        }
    }
    pid_t got;
    while ((got = waitpid(pid, status, 0)) < 0 && errno == EINTR) {
    }
    return got;
}

void store_snapshot_poll(store_t *s, bool wait, int64_t mono_ms)
{
    pthread_mutex_lock(&s->lock);
    pid_t pid = s->snapshot_pid;
    pthread_mutex_unlock(&s->lock);
    int status;
    if (pid == 0 ||
        (wait ? wait_snapshot_child(pid, &status) : waitpid(pid, &status, WNOHANG)) != pid) {
        return;
    }
    bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    pthread_mutex_lock(&s->lock);
    s->snapshot_pid = 0;
    if (ok) {
        s->snapshot_ready_seq = s->snapshot_forked_seq;
        s->snapshot_retry_ms = STORE_SNAPSHOT_RETRY_MS;
        pthread_cond_signal(&s->wake);
    } else { /* the records it was to cover still count: it is tried again after the pause */
        s->since_snapshot += s->snapshot_forked_records;
        s->snapshot_retry_at_ms = mono_ms + s->snapshot_retry_ms;
        s->snapshot_retry_ms = s->snapshot_retry_ms * 2 <= STORE_SNAPSHOT_RETRY_MS_MAX
                                   ? s->snapshot_retry_ms * 2
                                   : STORE_SNAPSHOT_RETRY_MS_MAX;
    }
    pthread_mutex_unlock(&s->lock);
    if (!ok) {
        fprintf(stderr, "level=warn msg=\"snapshot failed; the journal keeps everything\" "
                        "status=0x%x\n",
                status);
    }
}

store_stats_t store_stats(store_t *s)
{
    pthread_mutex_lock(&s->lock);
    store_stats_t v = s->stats;
    pthread_mutex_unlock(&s->lock);
    return v;
}

void store_fail_after(store_t *s, uint64_t seq)
{
    pthread_mutex_lock(&s->lock);
    s->fail_after_seq = seq;
    pthread_mutex_unlock(&s->lock);
}

/* --------------------------------------------------------- commit thread */

typedef struct {
    store_buf_t body;
    uint64_t first_seq, count;
    uint64_t snapshot_seq; /* a written snapshot to adopt, or 0 */
    outbox_batch_t outbox; /* rows to write with the records, rows to delete */
} batch_t;

/* Points the journal at snapshot seq and drops the rows it covers. */
static int adopt_snapshot(store_t *s, uint64_t seq)
{
    char sql[96];
    snprintf(sql, sizeof sql, "UPDATE meta SET value=%llu WHERE key='snapshot_seq'",
             (unsigned long long)seq);
    return exec(s, sql);
}

/* Deletes the oldest journal rows a snapshot covers, a few per commit:
 * deleting them all in the commit that adopts the snapshot made that one
 * commit (and every reply waiting on it) take 50-100 ms. Recovery skips
 * covered records, so rows left for later are harmless. meta's trim_chain
 * keeps the chain value of the last row deleted, so the first row left is
 * still checked against its predecessor. Sets *done when nothing covered is
 * left. */
static int trim_journal(store_t *s, uint64_t covered_seq, bool *done)
{
    char sql[400];
    snprintf(sql, sizeof sql,
             "SELECT batch, ifnull(chain, 0), n FROM (SELECT batch, chain, count(*) OVER () AS n"
             " FROM journal WHERE first_seq + records - 1 <= %llu ORDER BY batch LIMIT %u)"
             " ORDER BY batch DESC LIMIT 1",
             (unsigned long long)covered_seq, STORE_TRIM_ROWS);
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db_of(s), sql, -1, &st, NULL);
    int step = rc == SQLITE_OK ? sqlite3_step(st) : rc;
    *done = step == SQLITE_DONE;
    if (step == SQLITE_ROW) {
        int64_t batch = sqlite3_column_int64(st, 0);
        int64_t chain = sqlite3_column_int64(st, 1);
        *done = sqlite3_column_int64(st, 2) < (int64_t)STORE_TRIM_ROWS;
        snprintf(sql, sizeof sql,
                 "DELETE FROM journal WHERE batch <= %lld;"
                 "UPDATE meta SET value=%lld WHERE key='trim_chain'",
                 (long long)batch, (long long)chain);
        rc = exec(s, sql);
    } else if (step != SQLITE_DONE) {
        rc = step;
    }
    sqlite3_finalize(st);
    return rc;
}

/* One transaction: the batch's records, then the snapshot if one waits. */
static bool commit_batch(store_t *s, batch_t *b, bool *full)
{
    assert(s->pg == NULL);
    sqlite3_stmt *st = s->insert_stmt;
    int rc = exec(s, "BEGIN");
    uint64_t chain = s->chain;
    if (rc == SQLITE_OK && b->count > 0) {
        chain = record_chain(s->chain, b->first_seq, b->count, b->body.data, b->body.size);
        sqlite3_bind_int64(st, 1, (sqlite3_int64)b->first_seq);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)b->count);
        sqlite3_bind_blob(st, 3, b->body.data, (int)b->body.size, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)chain);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        sqlite3_reset(st);
    }
    if (rc == SQLITE_OK) {
        rc = outbox_write(s, &b->outbox);
    }
    if (rc == SQLITE_OK && b->snapshot_seq > 0) {
        rc = adopt_snapshot(s, b->snapshot_seq);
        s->trim_seq = b->snapshot_seq;
    }
    bool trimmed = false;
    if (rc == SQLITE_OK && s->trim_seq > 0) {
        rc = trim_journal(s, s->trim_seq, &trimmed);
    }
    if (rc == SQLITE_OK) {
        rc = exec(s, "COMMIT");
    }
    if (rc == SQLITE_OK && trimmed) {
        s->trim_seq = 0;
    }
    if (rc == SQLITE_OK) {
        s->chain = chain;
    }
    if (rc != SQLITE_OK) {
        /* SQLite says SQLITE_FULL when a write found no room (ENOSPC), the
         * one failure that leaves the files as they were and passes once
         * space is freed. */
        *full = (sqlite3_extended_errcode(db_of(s)) & 0xff) == SQLITE_FULL;
        fprintf(stderr, "level=error msg=\"journal commit failed; refusing writes\" err=\"%s\"\n",
                sqlite3_errmsg(db_of(s)));
        exec(s, "ROLLBACK");
        return false;
    }
    return true;
}

/* Made durable at most this often; written after every commit. */
#define MARK_SYNC_US 1000000

/* Records how far the journal is durable (mark.h). Commit thread. A failed
 * write weakens what a start can detect but loses nothing: logged once. */
static void write_mark(store_t *s, uint64_t durable_seq, int64_t now_us)
{
    if (s->mark_fd < 0) {
        return;
    }
    mark_t m = {.seq = durable_seq, .chain = s->chain};
    bool sync = now_us - s->mark_synced_us >= MARK_SYNC_US;
    int rc = mark_write(s->mark_fd, &s->mark_turn, m);
    if (rc == 0 && sync) {
        rc = fdatasync(s->mark_fd);
        s->mark_synced_us = now_us;
    }
    if (rc != 0 && !s->mark_failed) {
        s->mark_failed = true;
        fprintf(stderr, "level=error msg=\"cannot write " MARK_FILE "; a damaged journal may go "
                        "unnoticed at the next start\" err=\"%s\"\n",
                strerror(errno));
    }
}

static void record_latency(store_t *s, int64_t us, const batch_t *b)
{
    int i = 0;
    while (i < STORE_LATENCY_BUCKETS && us > store_latency_bucket_us[i]) {
        i++;
    }
    s->stats.latency_count[i]++;
    s->stats.latency_sum_s += (double)us / 1e6;
    s->stats.commits++;
    s->stats.records += b->count;
    s->stats.bytes += b->body.size;
    s->stats.snapshots += b->snapshot_seq > 0;
}

/* Takes what waits, under the lock. False when the thread should stop. */
static bool take_batch(store_t *s, batch_t *b)
{
    while (!s->stopping && !s->failed && s->pending_count == 0 && s->snapshot_ready_seq == 0 &&
           !outbox_ready(s) && !s->pg_progress) {
        s->thread_idle = true;
        pthread_cond_wait(&s->wake, &s->lock);
        s->thread_idle = false;
    }
    if (s->failed || (s->pending_count == 0 && s->snapshot_ready_seq == 0 && !outbox_ready(s) &&
                      !s->pg_progress)) {
        return false;
    }
    /* Swap buffers, so appends go on into the old batch's memory. */
    store_buf_t spare = b->body;
    spare.size = 0;
    b->body = s->pending;
    b->first_seq = s->pending_first_seq;
    b->count = s->pending_count;
    s->pending = spare;
    s->pending_count = 0;
    /* With rows in flight (PostgreSQL), the oldest of them counts. */
    if (s->pending_count > 0 && s->inflight_since_ms == INT64_MAX) {
        s->inflight_since_ms = s->pending_since_ms;
    }
    s->pending_since_ms = INT64_MAX;
    b->snapshot_seq = s->snapshot_ready_seq;
    s->snapshot_ready_seq = 0;
    outbox_take(s, &b->outbox);
    return true;
}

/* Relaxed mode may lose HF_RELAXED_FLUSH_MS, so it need not fsync back to
 * back: it gathers for HF_RELAXED_COMMIT_MS between commits, which keeps the
 * disk and the commit thread's CPU nearly idle at low rates. Under the lock. */
static void relaxed_gather(store_t *s)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += HF_RELAXED_COMMIT_MS * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (!s->stopping && !s->failed &&
           pthread_cond_timedwait(&s->wake, &s->lock, &until) == 0) {
    }
}

static void *commit_thread(void *arg)
{
    store_t *s = arg;
    hf_thread_name("hf-journal");
    batch_t b = {0};
    pthread_mutex_lock(&s->lock);
    while (take_batch(s, &b)) {
        bool inject = s->fail_after_seq != 0 && b.count > 0 &&
                      b.first_seq + b.count - 1 > s->fail_after_seq;
        pthread_mutex_unlock(&s->lock);
        int64_t start_us = hf_mono_us();
        if (inject) {
            fprintf(stderr, "level=error msg=\"journal commit failed; refusing writes\" "
                            "err=\"injected fault\"\n");
        }
        bool full = false;
        bool ok = !inject && commit_batch(s, &b, &full);
        int64_t took_us = hf_mono_us() - start_us;
        if (ok && b.count > 0) {
            write_mark(s, b.first_seq + b.count - 1, start_us + took_us);
        }
        pthread_mutex_lock(&s->lock);
        s->inflight_since_ms = INT64_MAX;
        if (ok) {
            if (b.count > 0) {
                s->durable_seq = b.first_seq + b.count - 1;
            }
            record_latency(s, took_us, &b);
            if (b.snapshot_seq > 0) {
                snapshot_remove_older(s->dir, b.snapshot_seq);
                s->snapshot_bytes = snapshot_file_bytes(s->dir, b.snapshot_seq);
            }
        } else {
            s->failed = true;
            s->failed_full = full;
        }
        uint64_t durable = s->durable_seq;
        bool failed = s->failed;
        pthread_mutex_unlock(&s->lock);
        outbox_done(s, &b.outbox, ok);
        if (s->on_durable != NULL) {
            s->on_durable(s->on_durable_ctx, durable, failed);
        }
        pthread_mutex_lock(&s->lock);
        if (s->durability == STORE_RELAXED) {
            relaxed_gather(s);
        }
    }
    pthread_mutex_unlock(&s->lock);
    record_buf_free(&b.body);
    outbox_batch_free(&b.outbox);
    return NULL;
}

/* ------------------------------------- commit thread, PostgreSQL's journal */

/* Rows in flight at once (pgflight.h): enough to keep a synchronous
 * standby's flushes overlapping, few enough to stay a small share of
 * PostgreSQL's connections per shop. */
#define STORE_PG_CONNECTIONS 4

/* pgflight's callback, on a connection's thread: counted, and the commit
 * thread woken to publish how far the journal is durable. */
static void pg_row_done(void *ctx, uint64_t records, size_t bytes, int64_t took_us)
{
    store_t *s = ctx;
    pthread_mutex_lock(&s->lock);
    batch_t b = {.count = records, .body = {.size = bytes}};
    record_latency(s, took_us, &b);
    s->pg_progress = true;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
}

/* A commit that failed (pgflight's callback, or the commit thread's own):
 * the store fails for good, and every reply waiting learns that its
 * outcome is unknown (store_open_pg). The node ends once they are out. */
static void pg_failed(void *ctx, uint64_t first_seq, bool fenced, const char *err)
{
    store_t *s = ctx;
    fprintf(stderr,
            "level=error msg=\"%s; answering what waits, then exiting for a restart\" "
            "first_seq=%" PRIu64 " err=\"%s\"\n",
            fenced ? "the shop was taken over by another node"
                   : "journal commit failed, its outcome unknown",
            first_seq, fenced ? "this node's epoch is gone" : err);
    fflush(stderr);
    pthread_mutex_lock(&s->lock);
    s->failed = true;
    __atomic_store_n(&s->pg_failed, true, __ATOMIC_RELEASE);
    uint64_t durable = s->durable_seq;
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->lock);
    if (s->on_durable != NULL) {
        s->on_durable(s->on_durable_ctx, durable, true);
    }
}

/* Moves durable_seq to what has committed, and says so. */
static void pg_publish(store_t *s)
{
    uint64_t durable = pgflight_durable_seq(s->flight);
    bool idle = pgflight_idle(s->flight);
    pthread_mutex_lock(&s->lock);
    bool moved = durable > s->durable_seq;
    s->durable_seq = moved ? durable : s->durable_seq;
    if (idle) {
        s->inflight_since_ms = INT64_MAX;
    }
    durable = s->durable_seq;
    pthread_mutex_unlock(&s->lock);
    if (moved && s->on_durable != NULL) {
        s->on_durable(s->on_durable_ctx, durable, false);
    }
}

/* A written snapshot, stored and adopted once every row before it has
 * committed (the adoption deletes the rows it covers). A failure ends the
 * process, as any journal failure does. */
static void pg_adopt(store_t *s, batch_t *b)
{
    char err[512];
    store_buf_t snap = {0};
    if (snapshot_read(s->dir, b->snapshot_seq, &snap, err, sizeof err) != 0) {
        fprintf(stderr, "level=warn msg=\"snapshot not stored; the journal keeps everything\" "
                        "err=\"%s\"\n", err);
        record_buf_free(&snap);
        return;
    }
    pgflight_drain(s->flight);
    pg_publish(s);
    if (store_pg_failed(s)) {
        /* A row failed: the snapshot may hold changes past that gap, never
         * made durable (answered as unknown), and the node ends anyway. */
        record_buf_free(&snap);
        return;
    }
    pgj_commit_t c = {.chain = s->chain, .snapshot = &snap, .snapshot_seq = b->snapshot_seq};
    bool fenced = false;
    if (pgj_commit(s->pg, &c, &fenced, err, sizeof err) != 0) {
        pg_failed(s, b->snapshot_seq, fenced, err);
        record_buf_free(&snap);
        return;
    }
    pthread_mutex_lock(&s->lock);
    s->stats.snapshots++;
    s->snapshot_bytes = (int64_t)snap.size;
    pthread_mutex_unlock(&s->lock);
    snapshot_remove_older(s->dir, b->snapshot_seq);
    record_buf_free(&snap);
}

/* Sends a batch's row on a free connection (or waits for one). */
static void pg_send(store_t *s, const batch_t *b, uint64_t durable_seq, uint64_t fail_after)
{
    if (fail_after != 0 && b->first_seq + b->count - 1 > fail_after) {
        /* The test hook: a failed commit, as PostgreSQL's journal meets
         * one (store_open_pg). */
        pg_failed(s, b->first_seq, false, "injected fault");
        return;
    }
    uint64_t chain = record_chain(s->chain, b->first_seq, b->count, b->body.data, b->body.size);
    pgj_commit_t c = {.first_seq = b->first_seq, .count = b->count, .chain = chain,
                      .durable_seq = durable_seq, .body = b->body.data, .size = b->body.size};
    pgflight_submit(s->flight, &c);
    s->chain = chain; /* a row that fails ends the process: no going back */
}

static void *pg_commit_thread(void *arg)
{
    store_t *s = arg;
    hf_thread_name("hf-journal");
    batch_t b = {0};
    pthread_mutex_lock(&s->lock);
    while (take_batch(s, &b)) {
        s->pg_progress = false;
        uint64_t durable = s->durable_seq, fail_after = s->fail_after_seq;
        pthread_mutex_unlock(&s->lock);
        if (b.count > 0) {
            pg_send(s, &b, durable, fail_after);
        }
        if (b.snapshot_seq > 0) {
            pg_adopt(s, &b);
        }
        pg_publish(s);
        pthread_mutex_lock(&s->lock);
        if (s->durability == STORE_RELAXED) {
            relaxed_gather(s);
        }
    }
    pthread_mutex_unlock(&s->lock);
    pgflight_drain(s->flight);
    pg_publish(s);
    record_buf_free(&b.body);
    outbox_batch_free(&b.outbox);
    return NULL;
}

int store_start(store_t *s, store_durable_fn on_durable, void *ctx)
{
    s->on_durable = on_durable;
    s->on_durable_ctx = ctx;
    if (s->pg != NULL) {
        char err[512];
        s->flight = pgflight_start(s->pg, STORE_PG_CONNECTIONS, s->durable_seq, pg_row_done,
                                   pg_failed, s, err, sizeof err);
        if (s->flight == NULL) {
            fprintf(stderr, "level=error msg=\"cannot open the journal's connections\" "
                            "err=\"%s\"\n", err);
            return -1;
        }
    }
    if (pthread_create(&s->thread, NULL, s->pg != NULL ? pg_commit_thread : commit_thread, s) !=
        0) {
        return -1;
    }
    s->thread_running = true;
    return 0;
}

void store_close(store_t *s)
{
    if (s->db == NULL && s->pg == NULL) {
        return;
    }
    store_snapshot_poll(s, true, hf_mono_ms()); /* never leave a child behind */
    if (s->thread_running) {
        pthread_mutex_lock(&s->lock);
        s->stopping = true;
        pthread_cond_signal(&s->wake);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->thread, NULL);
        s->thread_running = false;
    }
    sqlite3_finalize((sqlite3_stmt *)s->insert_stmt);
    sqlite3_close(db_of(s));
    s->db = NULL;
    pgflight_stop(s->flight);
    s->flight = NULL;
    pgj_close(s->pg);
    s->pg = NULL;
    if (s->mark_fd >= 0) {
        if (!s->failed && !s->mark_failed) {
            write_mark(s, s->durable_seq, hf_mono_us());
            fdatasync(s->mark_fd); /* a clean stop leaves the mark durable */
        }
        close(s->mark_fd);
    }
    if (s->lock_fd >= 0) {
        close(s->lock_fd); /* releases the flock */
    }
    record_buf_free(&s->pending);
    outbox_free(s);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->wake);
}
