/*
 * key.c - the data directory's key file (store.h, "the key file").
 *
 * Invariants:
 *   1. A key file, once in place, is never replaced or rewritten: every id
 *      and secret the server gave out depends on it.
 *   2. A key file is in place only whole: it is written under another name,
 *      fsynced, then linked to its name (which fails if one is there), and
 *      the directory fsynced, so a crash leaves either no key file or a
 *      complete one (a temporary file may be left; the next start removes it).
 *   3. A file that is not exactly a key file (size, magic, checksum) is
 *      refused, never taken for a new start: making a new key would quietly
 *      invalidate every id and secret given out.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"

#define KEY_MAGIC "HFKEY001"
#define KEY_MAGIC_BYTES 8
#define KEY_SEQ_OFFSET (KEY_MAGIC_BYTES + STORE_KEY_BYTES)
#define KEY_SUM_OFFSET (KEY_SEQ_OFFSET + 8)
#define KEY_SUM_BYTES 16
_Static_assert(KEY_SUM_OFFSET + KEY_SUM_BYTES == STORE_KEY_FILE_BYTES, "the layout adds up");

static void checksum(const uint8_t *file, uint8_t *out)
{
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256(file, KEY_SUM_OFFSET, digest);
    memcpy(out, digest, KEY_SUM_BYTES);
}

static void encode(const store_key_t *k, uint8_t *file)
{
    memcpy(file, KEY_MAGIC, KEY_MAGIC_BYTES);
    memcpy(file + KEY_MAGIC_BYTES, k->key, STORE_KEY_BYTES);
    for (int i = 0; i < 8; i++) {
        file[KEY_SEQ_OFFSET + i] = (uint8_t)(k->legacy_hold_seq >> (8 * i));
    }
    checksum(file, file + KEY_SUM_OFFSET);
}

static bool decode(const uint8_t *file, store_key_t *k)
{
    uint8_t sum[KEY_SUM_BYTES];
    checksum(file, sum);
    if (memcmp(file, KEY_MAGIC, KEY_MAGIC_BYTES) != 0 ||
        memcmp(sum, file + KEY_SUM_OFFSET, KEY_SUM_BYTES) != 0) {
        return false;
    }
    memcpy(k->key, file + KEY_MAGIC_BYTES, STORE_KEY_BYTES);
    k->legacy_hold_seq = 0;
    for (int i = 0; i < 8; i++) {
        k->legacy_hold_seq |= (uint64_t)file[KEY_SEQ_OFFSET + i] << (8 * i);
    }
    return true;
}

/* Reads the whole of fd (at most size + 1 bytes, to see a longer file). */
static ssize_t read_all(int fd, uint8_t *buf, size_t size)
{
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -1;
        }
        if (n == 0) {
            break;
        }
        got += (size_t)n;
    }
    return (ssize_t)got;
}

static int write_all(int fd, const uint8_t *buf, size_t size)
{
    size_t put = 0;
    while (put < size) {
        ssize_t n = write(fd, buf + put, size - put);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        put += (size_t)n;
    }
    return 0;
}

/* 1: read into out; 0: there is no key file; -1: err says why. */
static int key_read(const char *path, store_key_t *out, char *err, size_t err_size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT) {
        return 0;
    }
    uint8_t file[STORE_KEY_FILE_BYTES + 1];
    struct stat st;
    ssize_t n = fd < 0 || fstat(fd, &st) != 0 ? -1 : read_all(fd, file, sizeof file);
    int saved = errno;
    if (fd >= 0) {
        close(fd);
    }
    if (n < 0) {
        snprintf(err, err_size,
                 "cannot read %s: %s (it holds the key of every hold id and secret this data "
                 "directory gave out)",
                 path, strerror(saved));
        return -1;
    }
    if (n != STORE_KEY_FILE_BYTES || !decode(file, out)) {
        char why[64];
        if (n != STORE_KEY_FILE_BYTES) {
            snprintf(why, sizeof why, "%zd bytes, not %d", n, STORE_KEY_FILE_BYTES);
        } else {
            snprintf(why, sizeof why, "its checksum does not match");
        }
        snprintf(err, err_size,
                 "%s is damaged (%s): restore it from the backup of this data directory; "
                 "removing it makes a new key, and every hold id and secret given out so far "
                 "stops working",
                 path, why);
        return -1;
    }
    out->created = false;
    out->mode_loose = (st.st_mode & 077) != 0;
    return 1;
}

int store_key_random(uint8_t *key, char *err, size_t err_size)
{
    size_t got = 0;
    while (got < STORE_KEY_BYTES) {
        ssize_t n = getrandom(key + got, STORE_KEY_BYTES - got, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            snprintf(err, err_size, "cannot read random bytes from the OS: %s", strerror(errno));
            return -1;
        }
        got += (size_t)n;
    }
    return 0;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fd >= 0 && fsync(fd) == 0 ? 0 : -1;
    if (fd >= 0) {
        close(fd);
    }
    return rc;
}

/* Writes k to tmp (fsynced) and links it to path. 1: in place; 0: another
 * key file appeared meanwhile (tmp is removed either way); -1: err. */
static int key_create(const char *dir, const char *path, const char *tmp, const store_key_t *k,
                      char *err, size_t err_size)
{
    uint8_t file[STORE_KEY_FILE_BYTES];
    encode(k, file);
    unlink(tmp); /* a crash's leftover: never linked, or linked already */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    bool written = fd >= 0 && write_all(fd, file, sizeof file) == 0 && fsync(fd) == 0;
    int saved = errno;
    if (fd >= 0) {
        close(fd);
    }
    int linked = written ? link(tmp, path) : -1;
    if (linked != 0 && written) {
        saved = errno;
    }
    unlink(tmp);
    if (linked != 0 && written && saved == EEXIST) {
        return 0;
    }
    if (linked != 0 || fsync_dir(dir) != 0) {
        snprintf(err, err_size, "cannot write %s: %s", path,
                 strerror(linked != 0 ? saved : errno));
        return -1;
    }
    return 1;
}

int store_key_load(const char *dir, uint64_t legacy_hold_seq, store_key_t *out, char *err,
                   size_t err_size)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, STORE_KEY_FILE) >= (int)sizeof path ||
        snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, STORE_KEY_FILE) >= (int)sizeof tmp) {
        snprintf(err, err_size, "data directory path is too long");
        return -1;
    }
    store_key_t made = {.legacy_hold_seq = legacy_hold_seq};
    /* Twice at most: a key that another process linked first is read. */
    for (int attempt = 0; attempt < 2; attempt++) {
        int rc = key_read(path, out, err, err_size);
        if (rc != 0) {
            return rc > 0 ? 0 : -1;
        }
        if (store_key_random(made.key, err, err_size) != 0) {
            return -1;
        }
        rc = key_create(dir, path, tmp, &made, err, err_size);
        if (rc < 0) {
            return -1;
        }
        if (rc > 0) {
            *out = made;
            out->created = true;
            return 0;
        }
    }
    snprintf(err, err_size, "%s keeps changing: is another holdfast starting here?", path);
    return -1;
}
