/*
 * fsync_probe.c - how long the disk takes to make 4 KiB durable, as a
 * distribution: what a durable reply waits for at the least.
 *
 *   fsync_probe DIR [--count N] [--seconds S]
 *
 * It writes DIR/fsync.probe (256 KiB, written and synced first, so the
 * probe never grows the file), then overwrites one 4 KiB block of it at a
 * time, each followed by fdatasync(), round the file as a reused
 * write-ahead log is, and times each pair. It stops after N pairs (default
 * 2000, at most 100000) or S seconds (default 5, at most 60), whichever
 * comes first, removes the file, and prints one line:
 *
 *   FSYNC_PROBE count=N mean_us= p50_us= p90_us= p99_us= p999_us= max_us=
 *
 * A server whose replies wait for the disk cannot have a p99 below the
 * disk's own, whatever its code does; docs/BENCHMARKS.md reads the two
 * side by side. The exit status is 1 if a write or a sync failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BLOCK_BYTES 4096
#define FILE_BLOCKS 64
#define COUNT_DEFAULT 2000
#define COUNT_MAX 100000
#define SECONDS_DEFAULT 5
#define SECONDS_MAX 60

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The value at percentile pct of sorted[0..n), n > 0. */
static double pct_us(const uint64_t *sorted, size_t n, double pct)
{
    size_t i = (size_t)((double)n * pct / 100.0);
    return (double)sorted[i < n ? i : n - 1] / 1000.0;
}

static void usage(void)
{
    fprintf(stderr, "usage: fsync_probe DIR [--count N] [--seconds S]\n"
                    "  N at most %d (default %d), S at most %d (default %d)\n",
            COUNT_MAX, COUNT_DEFAULT, SECONDS_MAX, SECONDS_DEFAULT);
    exit(2);
}

/* An integer option in [1, max], or usage. */
static long arg_long(const char *text, long max)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < 1 || v > max) {
        usage();
    }
    return v;
}

/* Fills the file once and makes it durable, so the timed writes overwrite
 * allocated blocks and change no size. 0, or -1 with errno. */
static int prepare(int fd, const char *block)
{
    for (int i = 0; i < FILE_BLOCKS; i++) {
        if (pwrite(fd, block, BLOCK_BYTES, (off_t)i * BLOCK_BYTES) != BLOCK_BYTES) {
            return -1;
        }
    }
    return fsync(fd);
}

/* Times up to count write+fdatasync pairs into took_ns; returns how many
 * were done, or -1 with errno. */
static long probe(int fd, char *block, uint64_t *took_ns, long count, uint64_t until_ns)
{
    long done = 0;
    while (done < count && now_ns() < until_ns) {
        block[0] = (char)done; /* a changed page, never a no-op write */
        uint64_t t0 = now_ns();
        off_t at = (off_t)(done % FILE_BLOCKS) * BLOCK_BYTES;
        if (pwrite(fd, block, BLOCK_BYTES, at) != BLOCK_BYTES || fdatasync(fd) != 0) {
            return -1;
        }
        took_ns[done++] = now_ns() - t0;
    }
    return done;
}

static void report(uint64_t *took_ns, long n)
{
    qsort(took_ns, (size_t)n, sizeof *took_ns, cmp_u64);
    uint64_t sum_ns = 0;
    for (long i = 0; i < n; i++) {
        sum_ns += took_ns[i];
    }
    size_t sn = (size_t)n;
    printf("FSYNC_PROBE count=%ld mean_us=%.0f p50_us=%.0f p90_us=%.0f p99_us=%.0f p999_us=%.0f "
           "max_us=%.0f\n",
           n, (double)sum_ns / (double)n / 1000.0, pct_us(took_ns, sn, 50), pct_us(took_ns, sn, 90),
           pct_us(took_ns, sn, 99), pct_us(took_ns, sn, 99.9), (double)took_ns[n - 1] / 1000.0);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '-') {
        usage();
    }
    long count = COUNT_DEFAULT, seconds = SECONDS_DEFAULT;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
            count = arg_long(argv[++i], COUNT_MAX);
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = arg_long(argv[++i], SECONDS_MAX);
        } else {
            usage();
        }
    }
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/fsync.probe", argv[1]) >= (int)sizeof path) {
        fprintf(stderr, "fsync_probe: the directory's path is too long\n");
        return 2;
    }
    static char block[BLOCK_BYTES];
    memset(block, 'x', sizeof block);
    uint64_t *took_ns = calloc((size_t)count, sizeof *took_ns);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (took_ns == NULL || fd < 0) {
        fprintf(stderr, "fsync_probe: cannot open %s: %s\n", path, strerror(errno));
        return 1;
    }
    long n = prepare(fd, block) == 0
                 ? probe(fd, block, took_ns, count, now_ns() + (uint64_t)seconds * 1000000000ull)
                 : -1;
    int saved = errno;
    close(fd);
    unlink(path);
    if (n <= 0) {
        fprintf(stderr, "fsync_probe: %s: %s\n", path, n < 0 ? strerror(saved) : "nothing timed");
        free(took_ns);
        return 1;
    }
    report(took_ns, n);
    free(took_ns);
    return 0;
}
