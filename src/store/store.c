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
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "record.h"
#include "snapshot.h"
#include <sys/wait.h>

#define STORE_FORMAT 1
/* Journal rows deleted per commit once a snapshot covers them: at about
 * ten records a row, a snapshot every million records is trimmed within
 * about 400 commits, a fraction of a second under load. */
#define STORE_TRIM_ROWS 256u

const double store_latency_bucket_us[STORE_LATENCY_BUCKETS] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000,
};

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static sqlite3 *db_of(store_t *s)
{
    return (sqlite3 *)s->db;
}

static int exec(store_t *s, const char *sql)
{
    return sqlite3_exec(db_of(s), sql, NULL, NULL, NULL);
}

/* Exclusive locking: holdfast is the only user of its journal, so SQLite
 * need not take and drop file locks on every commit (six fcntl calls each),
 * and a second server on the same directory is refused at open. */
static const char schema_sql[] =
    "PRAGMA locking_mode=EXCLUSIVE;"
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS journal(batch INTEGER PRIMARY KEY, first_seq INTEGER NOT NULL,"
    " records INTEGER NOT NULL, body BLOB NOT NULL);"
    "INSERT OR IGNORE INTO meta VALUES('format', 1);"
    "INSERT OR IGNORE INTO meta VALUES('snapshot_seq', 0);";

int store_open(store_t *s, const char *dir, store_durability_t durability,
               uint32_t compact_records, char *err, size_t err_size)
{
    memset(s, 0, sizeof *s);
    s->durability = durability;
    s->compact_records = compact_records;
    s->pending_since_ms = INT64_MAX;
    s->inflight_since_ms = INT64_MAX;
    if (snprintf(s->dir, sizeof s->dir, "%s", dir) >= (int)sizeof s->dir) {
        snprintf(err, err_size, "data directory path is too long");
        return -1;
    }
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        snprintf(err, err_size, "cannot create data directory %s: %s", dir, strerror(errno));
        return -1;
    }
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/holdfast.db", dir) >= (int)sizeof path) {
        snprintf(err, err_size, "data directory path is too long");
        return -1;
    }
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        snprintf(err, err_size, "cannot open %s: %s", path, db ? sqlite3_errmsg(db) : "no memory");
        sqlite3_close(db);
        return -1;
    }
    s->db = db;
    sqlite3_stmt *insert = NULL;
    if (exec(s, schema_sql) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "INSERT INTO journal(first_seq, records, body) VALUES(?,?,?)", -1,
                           &insert, NULL) != SQLITE_OK) {
        bool busy = sqlite3_errcode(db) == SQLITE_BUSY || sqlite3_errcode(db) == SQLITE_LOCKED;
        snprintf(err, err_size, "cannot initialise %s: %s", path,
                 busy ? "another holdfast is using this data directory" : sqlite3_errmsg(db));
        sqlite3_close(db);
        s->db = NULL;
        return -1;
    }
    s->insert_stmt = insert;
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&s->wake, &attr);
    pthread_condattr_destroy(&attr);
    return 0;
}

/* ---------------------------------------------------------------- recovery */

static int64_t meta_get(store_t *s, const char *key)
{
    sqlite3_stmt *st;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db_of(s), "SELECT value FROM meta WHERE key=?", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            v = sqlite3_column_int64(st, 0);
        }
    }
    sqlite3_finalize(st);
    return v;
}

/* Replays one journal row's records with seq > after_seq. */
static int replay_batch(guard_t *g, const uint8_t *body, size_t size, uint64_t first_seq,
                        uint64_t count, uint64_t after_seq, store_recovery_t *info, char *err,
                        size_t err_size)
{
    record_reader_t r = {.p = body, .left = size, .ok = true};
    for (uint64_t i = 0; i < count; i++) {
        guard_op_t op;
        uint64_t seq = first_seq + i;
        if (!record_decode_op(&r, &op)) {
            snprintf(err, err_size, "journal record %llu is damaged", (unsigned long long)seq);
            return -1;
        }
        if (seq <= after_seq) {
            continue; /* already in the snapshot, which may be younger than it */
        }
        if (op.engine.now_ms < engine_now_ms(guard_engine(g))) {
            snprintf(err, err_size, "journal record %llu goes back in time",
                     (unsigned long long)seq);
            return -1;
        }
        uint64_t recorded_id = op.engine.u.hold_create.hold_id;
        bool create = op.kind == GUARD_OP_ENGINE && op.engine.kind == ENGINE_OP_HOLD_CREATE;
        guard_outcome_t o = guard_apply(g, &op);
        /* It was applied once with this result; the guard is deterministic,
         * so anything else means the files or the code are wrong. */
        if (o.result != GUARD_OK || !o.changed || (create && o.engine.hold_id != recorded_id)) {
            snprintf(err, err_size, "journal record %llu does not replay: %s",
                     (unsigned long long)seq,
                     o.result == GUARD_ENGINE ? engine_result_message(o.engine.result)
                                              : guard_result_message(o.result));
            return -1;
        }
        info->journal_records++;
    }
    if (r.left != 0) {
        snprintf(err, err_size, "journal batch at %llu has trailing bytes",
                 (unsigned long long)first_seq);
        return -1;
    }
    return 0;
}

static int replay_journal(store_t *s, guard_t *g, uint64_t after_seq, store_recovery_t *info,
                          char *err, size_t err_size)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db_of(s), "SELECT first_seq, records, body FROM journal ORDER BY batch",
                           -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, err_size, "cannot read journal: %s", sqlite3_errmsg(db_of(s)));
        return -1;
    }
    int rc = 0;
    uint64_t next_seq = 0;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        uint64_t first = (uint64_t)sqlite3_column_int64(st, 0);
        uint64_t count = (uint64_t)sqlite3_column_int64(st, 1);
        if (next_seq != 0 && first != next_seq) {
            snprintf(err, err_size, "journal has a gap before record %llu",
                     (unsigned long long)first);
            rc = -1;
            break;
        }
        rc = replay_batch(g, sqlite3_column_blob(st, 2), (size_t)sqlite3_column_bytes(st, 2),
                          first, count, after_seq, info, err, err_size);
        next_seq = first + count;
        s->appended_seq = next_seq - 1;
    }
    sqlite3_finalize(st);
    return rc;
}

int store_recover(store_t *s, guard_t *g, int64_t now_ms, store_recovery_t *info, char *err,
                  size_t err_size)
{
    int64_t start_us = mono_us();
    memset(info, 0, sizeof *info);
    if (meta_get(s, "format") != STORE_FORMAT) {
        snprintf(err, err_size, "data files are of an unknown format");
        return -1;
    }
    int64_t snapshot_seq = meta_get(s, "snapshot_seq");
    if (snapshot_seq < 0) {
        snprintf(err, err_size, "snapshot sequence number is missing");
        return -1;
    }
    if (snapshot_seq > 0 && snapshot_load(s->dir, (uint64_t)snapshot_seq, g,
                                          &info->snapshot_records, err, err_size) != 0) {
        return -1;
    }
    snapshot_remove_others(s->dir, (uint64_t)snapshot_seq); /* leftovers of a crash */
    s->trim_seq = (uint64_t)snapshot_seq; /* rows it covers that were not trimmed yet */
    s->appended_seq = (uint64_t)snapshot_seq;
    if (replay_journal(s, g, (uint64_t)snapshot_seq, info, err, err_size) != 0) {
        return -1;
    }
    if (s->appended_seq < (uint64_t)snapshot_seq) {
        s->appended_seq = (uint64_t)snapshot_seq;
    }
    s->durable_seq = s->appended_seq;
    if (now_ms > engine_now_ms(guard_engine(g))) {
        uint64_t expired = engine_stats(guard_engine(g)).holds_expired;
        guard_advance(g, now_ms);
        info->holds_expired = (uint32_t)(engine_stats(guard_engine(g)).holds_expired - expired);
    }
    assert(guard_check(g));
    info->duration_ms = (mono_us() - start_us) / 1000;
    return 0;
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

bool store_reply_may_go(store_t *s, uint64_t seq, int64_t mono_ms)
{
    pthread_mutex_lock(&s->lock);
    bool go = seq <= s->durable_seq;
    if (!go && !s->failed && s->durability == STORE_RELAXED) {
        int64_t oldest = s->inflight_since_ms < s->pending_since_ms ? s->inflight_since_ms
                                                                    : s->pending_since_ms;
        go = oldest == INT64_MAX || mono_ms - oldest < HF_RELAXED_FLUSH_MS / 2;
    }
    pthread_mutex_unlock(&s->lock);
    return go;
}

bool store_wants_snapshot(store_t *s)
{
    pthread_mutex_lock(&s->lock);
    bool v = s->compact_records > 0 && s->since_snapshot >= s->compact_records &&
             s->snapshot_pid == 0 && s->snapshot_ready_seq == 0 && !s->failed;
    pthread_mutex_unlock(&s->lock);
    return v;
}

void store_snapshot(store_t *s, const guard_t *g)
{
    pthread_mutex_lock(&s->lock);
    bool busy = s->snapshot_pid != 0 || s->snapshot_ready_seq != 0 || s->failed;
    uint64_t seq = s->appended_seq;
    pthread_mutex_unlock(&s->lock);
    if (busy || seq == 0) {
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
    s->since_snapshot = 0;
    pthread_mutex_unlock(&s->lock);
}

void store_snapshot_poll(store_t *s, bool wait)
{
    pthread_mutex_lock(&s->lock);
    pid_t pid = s->snapshot_pid;
    pthread_mutex_unlock(&s->lock);
    int status;
    if (pid == 0 || waitpid(pid, &status, wait ? 0 : WNOHANG) != pid) {
        return;
    }
    bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    pthread_mutex_lock(&s->lock);
    s->snapshot_pid = 0;
    if (ok) {
        s->snapshot_ready_seq = s->snapshot_forked_seq;
        pthread_cond_signal(&s->wake);
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
 * covered records, so rows left for later are harmless. Sets *done when
 * nothing covered is left. */
static int trim_journal(store_t *s, uint64_t covered_seq, bool *done)
{
    char sql[200];
    snprintf(sql, sizeof sql,
             "DELETE FROM journal WHERE batch IN (SELECT batch FROM journal"
             " WHERE first_seq + records - 1 <= %llu ORDER BY batch LIMIT %u)",
             (unsigned long long)covered_seq, STORE_TRIM_ROWS);
    int rc = exec(s, sql);
    *done = rc == SQLITE_OK && sqlite3_changes(db_of(s)) < (int)STORE_TRIM_ROWS;
    return rc;
}

/* One transaction: the batch's records, then the snapshot if one waits. */
static bool commit_batch(store_t *s, const batch_t *b)
{
    sqlite3_stmt *st = s->insert_stmt;
    int rc = exec(s, "BEGIN");
    if (rc == SQLITE_OK && b->count > 0) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)b->first_seq);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)b->count);
        sqlite3_bind_blob(st, 3, b->body.data, (int)b->body.size, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        sqlite3_reset(st);
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
    if (rc != SQLITE_OK) {
        fprintf(stderr, "level=error msg=\"journal commit failed; refusing writes\" err=\"%s\"\n",
                sqlite3_errmsg(db_of(s)));
        exec(s, "ROLLBACK");
        return false;
    }
    return true;
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
    while (!s->stopping && !s->failed && s->pending_count == 0 && s->snapshot_ready_seq == 0) {
        s->thread_idle = true;
        pthread_cond_wait(&s->wake, &s->lock);
        s->thread_idle = false;
    }
    if (s->failed || (s->pending_count == 0 && s->snapshot_ready_seq == 0)) {
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
    s->inflight_since_ms = s->pending_since_ms;
    s->pending_since_ms = INT64_MAX;
    b->snapshot_seq = s->snapshot_ready_seq;
    s->snapshot_ready_seq = 0;
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
    batch_t b = {0};
    pthread_mutex_lock(&s->lock);
    while (take_batch(s, &b)) {
        bool inject = s->fail_after_seq != 0 && b.count > 0 &&
                      b.first_seq + b.count - 1 > s->fail_after_seq;
        pthread_mutex_unlock(&s->lock);
        int64_t start_us = mono_us();
        if (inject) {
            fprintf(stderr, "level=error msg=\"journal commit failed; refusing writes\" "
                            "err=\"injected fault\"\n");
        }
        bool ok = !inject && commit_batch(s, &b);
        int64_t took_us = mono_us() - start_us;
        pthread_mutex_lock(&s->lock);
        s->inflight_since_ms = INT64_MAX;
        if (ok) {
            if (b.count > 0) {
                s->durable_seq = b.first_seq + b.count - 1;
            }
            record_latency(s, took_us, &b);
            if (b.snapshot_seq > 0) {
                snapshot_remove_older(s->dir, b.snapshot_seq);
            }
        } else {
            s->failed = true;
        }
        uint64_t durable = s->durable_seq;
        bool failed = s->failed;
        pthread_mutex_unlock(&s->lock);
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
    return NULL;
}

int store_start(store_t *s, store_durable_fn on_durable, void *ctx)
{
    s->on_durable = on_durable;
    s->on_durable_ctx = ctx;
    if (pthread_create(&s->thread, NULL, commit_thread, s) != 0) {
        return -1;
    }
    s->thread_running = true;
    return 0;
}

void store_close(store_t *s)
{
    if (s->db == NULL) {
        return;
    }
    store_snapshot_poll(s, true); /* never leave a child behind */
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
    record_buf_free(&s->pending);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->wake);
}
