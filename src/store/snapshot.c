/*
 * snapshot.c - writing snapshot files from a forked child, and reading them.
 */
#define _GNU_SOURCE /* close_range */
#include "snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "record.h"

#define MAGIC "HFSNAP01"
#define HEADER_BYTES 32

static uint64_t checksum(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 0x100000001b3ull;
    }
    return h;
}

static void path_of(char *out, size_t size, const char *dir, uint64_t seq, const char *ext)
{
    snprintf(out, size, "%s/snapshot-%020llu.%s", dir, (unsigned long long)seq, ext);
}

/* The snapshot goes to disk in steps of this size, each made durable before
 * the next: one large fsync at the end would queue the journal's small
 * fsyncs behind tens of megabytes (measured: 50-75 ms pauses). */
#define SYNC_STEP_BYTES (4u << 20)

static int write_all(int fd, const uint8_t *p, size_t n)
{
    size_t since_sync = 0;
    while (n > 0) {
        if (since_sync >= SYNC_STEP_BYTES) {
            if (fdatasync(fd) != 0) {
                return -1;
            }
            since_sync = 0;
        }
        ssize_t w = write(fd, p, n < SYNC_STEP_BYTES ? n : SYNC_STEP_BYTES);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        p += w;
        n -= (size_t)w;
        since_sync += (size_t)w;
    }
    return 0;
}

/* With mapped, the body's buffer never touches malloc (see store_buf_t). */
static int write_snapshot(const char *dir, const guard_t *g, uint64_t seq, bool mapped)
{
    char tmp[PATH_MAX], final[PATH_MAX];
    path_of(tmp, sizeof tmp, dir, seq, "tmp");
    path_of(final, sizeof final, dir, seq, "bin");
    store_buf_t body = {.mapped = mapped};
    record_encode_snapshot(&body, g);
    uint8_t header[HEADER_BYTES];
    memcpy(header, MAGIC, 8);
    record_le64_put(header + 8, seq);
    record_le64_put(header + 16, body.size);
    record_le64_put(header + 24, checksum(body.data, body.size));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    bool ok = fd >= 0 && dirfd >= 0 && write_all(fd, header, sizeof header) == 0 &&
              write_all(fd, body.data, body.size) == 0 && fsync(fd) == 0;
    ok = ok && rename(tmp, final) == 0 && fsync(dirfd) == 0;
    if (!ok) {
        /* A full disk must not stay full of a file nobody will use. */
        unlink(tmp);
    }
    if (fd >= 0) {
        close(fd);
    }
    if (dirfd >= 0) {
        close(dirfd);
    }
    record_buf_free(&body);
    return ok ? 0 : -1;
}

int snapshot_write(const char *dir, const guard_t *g, uint64_t seq)
{
    return write_snapshot(dir, g, seq, false);
}

pid_t snapshot_fork(const char *dir, const guard_t *g, uint64_t seq)
{
    pid_t pid = fork();
    if (pid != 0) {
        return pid; /* the parent, or -1 */
    }
    /* The child holds no sockets open for the server's clients. */
    close_range(3, UINT_MAX, 0);
    _exit(write_snapshot(dir, g, seq, true) == 0 ? 0 : 1);
}

void snapshot_path(char *out, size_t size, const char *dir, uint64_t seq)
{
    path_of(out, size, dir, seq, "bin");
}

int64_t snapshot_file_bytes(const char *dir, uint64_t seq)
{
    char path[PATH_MAX];
    struct stat st;
    path_of(path, sizeof path, dir, seq, "bin");
    return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

static int read_file(const char *path, store_buf_t *out, char *err, size_t err_size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, err_size, "cannot open %s: %s", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    record_buf_reserve(out, (size_t)st.st_size);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, out->data + got, (size_t)st.st_size - got);
        if (n <= 0 && !(n < 0 && errno == EINTR)) {
            break;
        }
        got += n > 0 ? (size_t)n : 0;
    }
    close(fd);
    out->size = got;
    if (got != (size_t)st.st_size) {
        snprintf(err, err_size, "cannot read %s", path);
        return -1;
    }
    return 0;
}

int snapshot_read(const char *dir, uint64_t seq, store_buf_t *out, char *err, size_t err_size)
{
    char path[PATH_MAX];
    path_of(path, sizeof path, dir, seq, "bin");
    return read_file(path, out, err, err_size);
}

int snapshot_load_bytes(const store_buf_t *file, uint64_t seq, const char *name, guard_t *g,
                        uint64_t *records_out, char *err, size_t err_size)
{
    if (file->size < HEADER_BYTES || memcmp(file->data, MAGIC, 8) != 0 ||
        record_le64_get(file->data + 8) != seq ||
        record_le64_get(file->data + 16) != file->size - HEADER_BYTES ||
        record_le64_get(file->data + 24) !=
            checksum(file->data + HEADER_BYTES, file->size - HEADER_BYTES)) {
        snprintf(err, err_size, "snapshot %s is damaged (header or checksum)", name);
        return -1;
    }
    record_reader_t r = {.p = file->data + HEADER_BYTES, .left = file->size - HEADER_BYTES,
                         .ok = true};
    return record_restore_snapshot(&r, g, records_out, err, err_size) ? 0 : -1;
}

int snapshot_load(const char *dir, uint64_t seq, guard_t *g, uint64_t *records_out, char *err,
                  size_t err_size)
{
    char path[PATH_MAX];
    path_of(path, sizeof path, dir, seq, "bin");
    store_buf_t file = {0};
    int rc = read_file(path, &file, err, err_size);
    if (rc == 0) {
        rc = snapshot_load_bytes(&file, seq, path, g, records_out, err, err_size);
    }
    record_buf_free(&file);
    return rc;
}

/* Removes the snapshot files other than keep_seq's; with older_only, only
 * those of an older seq, since a newer one may be a child's work in
 * progress. */
static void remove_snapshots(const char *dir, uint64_t keep_seq, bool older_only)
{
    char keep[64];
    snprintf(keep, sizeof keep, "snapshot-%020llu.bin", (unsigned long long)keep_seq);
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (strncmp(ent->d_name, "snapshot-", 9) != 0 || strcmp(ent->d_name, keep) == 0) {
            continue;
        }
        unsigned long long seq = strtoull(ent->d_name + 9, NULL, 10);
        if (!older_only || seq < keep_seq) {
            unlinkat(dirfd(d), ent->d_name, 0);
        }
    }
    closedir(d);
}

void snapshot_remove_others(const char *dir, uint64_t keep_seq)
{
    remove_snapshots(dir, keep_seq, false);
}

void snapshot_remove_older(const char *dir, uint64_t keep_seq)
{
    remove_snapshots(dir, keep_seq, true);
}
