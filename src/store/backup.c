/*
 * backup.c - a consistent copy of a data directory while a server writes it.
 *
 * The server keeps SQLite in WAL mode with normal locking, so a second
 * connection can read a consistent view while commits go on: SQLite's
 * online-backup API copies every page of the database as of one read
 * transaction (one step of all pages, so the copy never restarts under
 * load). The copy's own meta table names the snapshot it needs; snapshot
 * files never change once written, so copying that file afterwards is
 * consistent too, unless the server removed it meanwhile (it adopted a newer
 * snapshot): then the copy starts again. Last, the copy gets its own mark
 * (mark.h) at the journal's end, and everything is made durable.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hf_clock.h"
#include "mark.h"
#include "snapshot.h"
#include "store.h"

/* Files of a data directory copied as they are, if present (besides the
 * database and its snapshot). */
static const char *const plain_files[] = {STORE_KEY_FILE};

#define BACKUP_ATTEMPTS 8
#define BUSY_WAIT_MS 50
#define BUSY_TRIES 200 /* 10 s */
#define COPY_CHUNK_BYTES (1u << 20)


/* Copies one file and fsyncs it; ENOENT is reported as errno. */
static int copy_file(const char *from, const char *to, uint64_t *bytes)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        return -1;
    }
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    char *buf = malloc(COPY_CHUNK_BYTES);
    int rc = out >= 0 && buf != NULL ? 0 : -1;
    while (rc == 0) {
        ssize_t n = read(in, buf, COPY_CHUNK_BYTES);
        if (n == 0) {
            break;
        }
        if (n < 0 || write(out, buf, (size_t)n) != n) {
            rc = -1;
        } else {
            *bytes += (uint64_t)n;
        }
    }
    int saved = errno;
    if (rc == 0 && fsync(out) != 0) {
        rc = -1;
        saved = errno;
    }
    free(buf);
    close(in);
    if (out >= 0) {
        close(out);
    }
    errno = saved;
    return rc;
}

/* Copies the database's pages as of one read transaction. */
static int copy_database(const char *src_path, const char *dst_path, char *err, size_t err_size)
{
    sqlite3 *src = NULL, *dst = NULL;
    int rc = sqlite3_open_v2(src_path, &src, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK) {
        /* Never checkpoint the live directory's log on the way out. */
        sqlite3_db_config(src, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
        sqlite3_busy_timeout(src, 5000);
        rc = sqlite3_open_v2(dst_path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    }
    sqlite3_backup *b = rc == SQLITE_OK ? sqlite3_backup_init(dst, "main", src, "main") : NULL;
    if (b != NULL) {
        /* Busy only while a writer holds a lock for a moment; bounded, so a
         * database that stays locked is reported instead of waited on. */
        int tries = 0;
        do {
            rc = sqlite3_backup_step(b, -1);
            if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
                sqlite3_sleep(BUSY_WAIT_MS);
            }
        } while ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED || rc == SQLITE_OK) &&
                 ++tries < BUSY_TRIES);
        rc = sqlite3_backup_finish(b) == SQLITE_OK && rc == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    } else if (rc == SQLITE_OK) {
        rc = SQLITE_ERROR;
    }
    if (rc != SQLITE_OK) {
        snprintf(err, err_size, "cannot copy %s: %s", src_path,
                 dst ? sqlite3_errmsg(dst) : src ? sqlite3_errmsg(src) : "no memory");
    }
    sqlite3_close(dst);
    sqlite3_close(src);
    return rc == SQLITE_OK ? 0 : -1;
}

/* The copy's snapshot, its journal's end and chain there; marks it. */
static int read_copy(const char *path, uint64_t *snapshot_seq, mark_t *end, uint64_t *rows,
                     char *err, size_t err_size)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    static const char sql[] =
        "SELECT (SELECT value FROM meta WHERE key='snapshot_seq'),"
        " (SELECT value FROM meta WHERE key='trim_chain'),"
        " (SELECT first_seq + records - 1 FROM journal ORDER BY batch DESC LIMIT 1),"
        " (SELECT ifnull(chain, 0) FROM journal ORDER BY batch DESC LIMIT 1),"
        " (SELECT count(*) FROM journal)";
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    }
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
        sqlite3_column_type(st, 0) != SQLITE_NULL && sqlite3_column_type(st, 1) != SQLITE_NULL) {
        *snapshot_seq = (uint64_t)sqlite3_column_int64(st, 0);
        bool has_rows = sqlite3_column_type(st, 2) != SQLITE_NULL;
        uint64_t last = has_rows ? (uint64_t)sqlite3_column_int64(st, 2) : 0;
        end->seq = last > *snapshot_seq ? last : *snapshot_seq;
        end->chain = (uint64_t)sqlite3_column_int64(st, has_rows ? 3 : 1);
        *rows = (uint64_t)sqlite3_column_int64(st, 4);
    } else {
        snprintf(err, err_size, "the copy %s cannot be read (format 2 expected): %s", path,
                 db ? sqlite3_errmsg(db) : "no memory");
        rc = SQLITE_ERROR;
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(db, "UPDATE meta SET value=1 WHERE key='marked'", NULL, NULL, NULL);
    }
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

static void remove_copy(const char *out)
{
    char path[PATH_MAX];
    static const char *const names[] = {"holdfast.db", "holdfast.db-wal", "holdfast.db-shm",
                                        MARK_FILE, STORE_KEY_FILE};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", out, names[i]);
        unlink(path);
    }
    DIR *d = opendir(out);
    struct dirent *ent;
    while (d != NULL && (ent = readdir(d)) != NULL) {
        if (strncmp(ent->d_name, "snapshot-", 9) == 0) {
            unlinkat(dirfd(d), ent->d_name, 0);
        }
    }
    if (d != NULL) {
        closedir(d);
    }
}

/* One attempt: 0 done, 1 start again (the server removed the snapshot the
 * copy names, having adopted a newer one), -1 failed. */
static int backup_once(const char *dir, const char *out, store_backup_t *info, char *err,
                       size_t err_size)
{
    char from[PATH_MAX], to[PATH_MAX];
    snprintf(from, sizeof from, "%s/holdfast.db", dir);
    snprintf(to, sizeof to, "%s/holdfast.db", out);
    mark_t end;
    if (copy_database(from, to, err, err_size) != 0 ||
        read_copy(to, &info->snapshot_seq, &end, &info->rows, err, err_size) != 0) {
        return -1;
    }
    struct stat st;
    info->bytes = stat(to, &st) == 0 ? (uint64_t)st.st_size : 0;
    if (info->snapshot_seq > 0) {
        snapshot_path(from, sizeof from, dir, info->snapshot_seq);
        snapshot_path(to, sizeof to, out, info->snapshot_seq);
        if (copy_file(from, to, &info->bytes) != 0) {
            if (errno == ENOENT) {
                return 1;
            }
            snprintf(err, err_size, "cannot copy %s: %s", from, strerror(errno));
            return -1;
        }
    }
    for (size_t i = 0; i < sizeof plain_files / sizeof plain_files[0]; i++) {
        snprintf(from, sizeof from, "%s/%s", dir, plain_files[i]);
        snprintf(to, sizeof to, "%s/%s", out, plain_files[i]);
        if (copy_file(from, to, &info->bytes) != 0 && errno != ENOENT) {
            snprintf(err, err_size, "cannot copy %s: %s", from, strerror(errno));
            return -1;
        }
    }
    if (mark_create(out, end) != 0) {
        snprintf(err, err_size, "cannot write %s/" MARK_FILE ": %s", out, strerror(errno));
        return -1;
    }
    info->seq = end.seq;
    return 0;
}

int store_backup(const char *dir, const char *out, store_backup_t *info, char *err,
                 size_t err_size)
{
    int64_t start_ms = hf_mono_ms();
    memset(info, 0, sizeof *info);
    char db[PATH_MAX];
    struct stat st;
    if (snprintf(db, sizeof db, "%s/holdfast.db", dir) >= (int)sizeof db || stat(db, &st) != 0) {
        snprintf(err, err_size, "%s is not a holdfast data directory (no holdfast.db)", dir);
        return -1;
    }
    if (mkdir(out, 0750) != 0) {
        snprintf(err, err_size, "cannot create %s: %s%s", out, strerror(errno),
                 errno == EEXIST ? " (give a directory that does not exist yet)" : "");
        return -1;
    }
    int rc = 1;
    for (int attempt = 0; rc == 1 && attempt < BACKUP_ATTEMPTS; attempt++) {
        rc = backup_once(dir, out, info, err, err_size);
        if (rc != 0) {
            remove_copy(out);
        }
    }
    if (rc == 1) {
        snprintf(err, err_size, "the server replaced its snapshot %d times during the copy",
                 BACKUP_ATTEMPTS);
    }
    if (rc != 0) {
        rmdir(out);
        return -1;
    }
    info->duration_ms = hf_mono_ms() - start_ms;
    return 0;
}
