/*
 * mark.c - the journal's high-water mark file (mark.h).
 */
#include "mark.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "record.h"

#define MAGIC "HFMARK01"
#define SLOT_BYTES 32
#define SLOTS 2

static void encode(uint8_t slot[SLOT_BYTES], mark_t m)
{
    memcpy(slot, MAGIC, 8);
    record_le64_put(slot + 8, m.seq);
    record_le64_put(slot + 16, m.chain);
    record_le64_put(slot + 24, record_chain(0, m.seq, m.chain, slot, 24));
}

static bool decode(const uint8_t slot[SLOT_BYTES], mark_t *m)
{
    m->seq = record_le64_get(slot + 8);
    m->chain = record_le64_get(slot + 16);
    return memcmp(slot, MAGIC, 8) == 0 &&
           record_le64_get(slot + 24) == record_chain(0, m->seq, m->chain, slot, 24);
}

static int path_of(const char *dir, char *out, size_t size)
{
    return snprintf(out, size, "%s/%s", dir, MARK_FILE) < (int)size ? 0 : -1;
}

mark_state_t mark_read(const char *dir, mark_t *out)
{
    char path[PATH_MAX];
    uint8_t file[SLOT_BYTES * SLOTS] = {0};
    int fd = path_of(dir, path, sizeof path) == 0 ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    if (fd < 0) {
        return errno == ENOENT ? MARK_ABSENT : MARK_DAMAGED;
    }
    ssize_t got = pread(fd, file, sizeof file, 0);
    close(fd);
    bool found = false;
    for (int i = 0; got > 0 && i < SLOTS; i++) {
        mark_t m;
        if ((size_t)got >= (size_t)(i + 1) * SLOT_BYTES && decode(file + i * SLOT_BYTES, &m) &&
            (!found || m.seq > out->seq)) {
            *out = m;
            found = true;
        }
    }
    return found ? MARK_OK : MARK_DAMAGED;
}

int mark_open(const char *dir)
{
    char path[PATH_MAX];
    if (path_of(dir, path, sizeof path) != 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
}

int mark_write(int fd, unsigned *turn, mark_t m)
{
    uint8_t slot[SLOT_BYTES];
    encode(slot, m);
    off_t at = (off_t)(*turn % SLOTS) * SLOT_BYTES;
    *turn = (*turn + 1) % SLOTS;
    return pwrite(fd, slot, sizeof slot, at) == (ssize_t)sizeof slot ? 0 : -1;
}

int mark_create(const char *dir, mark_t m)
{
    int fd = mark_open(dir);
    if (fd < 0) {
        return -1;
    }
    unsigned turn = 0;
    int rc = mark_write(fd, &turn, m) == 0 && mark_write(fd, &turn, m) == 0 && fsync(fd) == 0
                 ? 0
                 : -1;
    close(fd);
    int dirfd = rc == 0 ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (dirfd >= 0) {
        rc = fsync(dirfd);
        close(dirfd);
    } else {
        rc = -1;
    }
    return rc;
}
