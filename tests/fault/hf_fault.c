/*
 * hf_fault.c - a fault-injection shim for tests, loaded with LD_PRELOAD:
 * the disk failing under a real server, without root or a real full disk.
 *
 * While the file named by HF_FAULT_FLAG exists, calls on files whose path
 * contains HF_FAULT_MATCH fail with HF_FAULT_ERRNO (EIO or ENOSPC):
 *   HF_FAULT_OPS  a comma list of
 *     write    write, pwrite, pwrite64 (nothing is written)
 *     fsync    fsync, fdatasync (after the data reached the page cache, as
 *              a real failed fsync leaves it)
 *     statvfs  statvfs reports no free blocks (any path)
 *     stall    fsync, fdatasync block until the flag file is removed (a disk
 *              that hangs; at most HF_FAULT_STALL_MS_MAX), then do their
 *              work; while one blocks, the file named by HF_FAULT_STALLED
 *              exists, so a test can wait for the stall to begin
 * Creating and removing the flag file switches the faults on and off while
 * the server runs. Without HF_FAULT_FLAG every call passes through.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static bool has_op(const char *op)
{
    const char *ops = getenv("HF_FAULT_OPS");
    size_t n = strlen(op);
    for (const char *p = ops; p != NULL && *p != '\0';) {
        if (strncmp(p, op, n) == 0 && (p[n] == ',' || p[n] == '\0')) {
            return true;
        }
        p = strchr(p, ',');
        p = p != NULL ? p + 1 : NULL;
    }
    return false;
}

static bool active(const char *op)
{
    const char *flag = getenv("HF_FAULT_FLAG");
    return flag != NULL && has_op(op) && access(flag, F_OK) == 0;
}

static bool fd_matches(int fd)
{
    const char *match = getenv("HF_FAULT_MATCH");
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (match == NULL || n <= 0) {
        return false;
    }
    path[n] = '\0';
    return strstr(path, match) != NULL;
}

static int fault_errno(void)
{
    const char *e = getenv("HF_FAULT_ERRNO");
    return e != NULL && strcmp(e, "ENOSPC") == 0 ? ENOSPC : EIO;
}

/* True (errno set) when this call on fd must fail. */
static bool fail_fd(const char *op, int fd)
{
    if (!active(op) || !fd_matches(fd)) {
        return false;
    }
    errno = fault_errno();
    return true;
}

#define NEXT(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))

ssize_t write(int fd, const void *buf, size_t n)
{
    return fail_fd("write", fd) ? -1 : NEXT(write)(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t at)
{
    return fail_fd("write", fd) ? -1 : NEXT(pwrite)(fd, buf, n, at);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t at)
{
    return fail_fd("write", fd) ? -1 : NEXT(pwrite64)(fd, buf, n, at);
}

/* A stalled disk never hangs a test run for good. */
#define HF_FAULT_STALL_MS_MAX 60000

/* Blocks while a stall is on for fd: the flag is polled, as a hung disk
 * gives its caller nothing to wait on either. */
static void stall_fd(int fd)
{
    if (!active("stall") || !fd_matches(fd)) {
        return;
    }
    const char *stalled = getenv("HF_FAULT_STALLED");
    if (stalled != NULL) {
        FILE *f = fopen(stalled, "w");
        if (f != NULL) {
            fclose(f);
        }
    }
    struct timespec pause = {.tv_sec = 0, .tv_nsec = 1000000L};
    for (int waited_ms = 0; active("stall") && waited_ms < HF_FAULT_STALL_MS_MAX; waited_ms++) {
        nanosleep(&pause, NULL);
    }
}

int fsync(int fd)
{
    stall_fd(fd);
    return fail_fd("fsync", fd) ? -1 : NEXT(fsync)(fd);
}

int fdatasync(int fd)
{
    stall_fd(fd);
    return fail_fd("fsync", fd) ? -1 : NEXT(fdatasync)(fd);
}

int statvfs(const char *path, struct statvfs *out)
{
    int rc = NEXT(statvfs)(path, out);
    if (rc == 0 && active("statvfs")) {
        out->f_bavail = out->f_bfree = 0;
    }
    return rc;
}
