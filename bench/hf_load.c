/*
 * hf_load.c - a small HTTP/1.1 load generator for holdfast's benchmarks.
 *
 * It does what wrk cannot: chain requests on one connection (create a hold,
 * then commit or release that very hold), and pace requests at a fixed rate
 * measuring latency from the intended send time, so that a stalled server
 * is charged for the requests it delayed (no coordinated omission; the same
 * model as wrk2: each connection sends every conns/rate seconds, and a late
 * reply makes the next request late, not skipped).
 *
 * One thread, one epoll loop, keep-alive connections, replies framed by
 * Content-Length. Traffic goes to 127.0.0.1 only, and every run is bounded:
 * by -d seconds (at most 600) or by --count requests.
 *
 *   hf_load skus  --port P --count N [--prefix s-] [--stock S] [-c CONNS]
 *       PUT /v1/skus/PREFIX0 .. PREFIX(N-1) {"stock": S}
 *   hf_load holds --port P [-c CONNS] [-d SECS] [--skus N] [--ttl MS] [--rate R]
 *       POST /v1/holds, one line of qty 1 on "hot" (--skus 0) or a random sku
 *   hf_load mix   --port P [-c CONNS] [-d SECS] [--skus N] [--ttl MS] [--rate R]
 *                 [--commit-pct PCT]
 *       per connection: POST /v1/holds, then POST /v1/holds/ID/commit
 *       (PCT% of the time) or DELETE /v1/holds/ID, repeatedly, each with
 *       the hold's secret from its create (Hold-Secret), as a shop sends it
 *
 * --rate R paces R holds per second in all (a hold and its commit or release
 * count as one cycle in mix); without it every connection is closed-loop.
 * Output: one line per request type, "HF_LOAD key=value ...", then a total.
 * The exit status is 1 if any reply had an unexpected status or failed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CONNS_MAX 4096
#define DURATION_S_MAX 600
#define TIMEOUT_NS (10ull * 1000000000ull)
#define DRAIN_NS (10ull * 1000000000ull)
#define IN_BYTES 65536
#define OUT_BYTES 1024

/* ------------------------------------------------------------- histogram
 * Log-linear, 64 sub-buckets per power of two (about 1.6% precision) over
 * nanoseconds, so memory stays fixed however long the run. */

#define HIST_BUCKETS (59 * 64)

typedef struct {
    uint64_t count[HIST_BUCKETS];
    uint64_t n, max_ns;
} hist_t;

static unsigned hist_index(uint64_t v)
{
    if (v < 128) {
        return (unsigned)v;
    }
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - 6;
    return (shift + 1) * 64 + (unsigned)((v >> shift) - 64);
}

static uint64_t hist_value(unsigned i)
{
    if (i < 128) {
        return i;
    }
    unsigned shift = i / 64 - 1;
    uint64_t lower = (uint64_t)(64 + i % 64) << shift;
    return lower + ((1ull << shift) >> 1);
}

static void hist_add(hist_t *h, uint64_t ns)
{
    h->count[hist_index(ns)]++;
    h->n++;
    if (ns > h->max_ns) {
        h->max_ns = ns;
    }
}

static void hist_merge(hist_t *into, const hist_t *h)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        into->count[i] += h->count[i];
    }
    into->n += h->n;
    if (h->max_ns > into->max_ns) {
        into->max_ns = h->max_ns;
    }
}

static double hist_pct_us(const hist_t *h, double pct)
{
    if (h->n == 0) {
        return 0;
    }
    uint64_t want = (uint64_t)((double)h->n * pct / 100.0 + 0.5);
    if (want < 1) {
        want = 1;
    }
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->count[i];
        if (seen >= want) {
            uint64_t v = hist_value(i);
            return (double)(v < h->max_ns ? v : h->max_ns) / 1000.0;
        }
    }
    return (double)h->max_ns / 1000.0;
}

/* ------------------------------------------------------------------ state */

enum { T_CREATE, T_COMMIT, T_RELEASE, T_PUT, T_COUNT };
static const char *const type_name[T_COUNT] = {"create", "commit", "release", "sku_put"};

typedef struct {
    hist_t lat;
    uint64_t ok, bad_status, errors;
    uint64_t status[600];
} stats_t;

typedef enum { MODE_SKUS, MODE_HOLDS, MODE_MIX } mode_t_;

typedef struct {
    mode_t_ mode;
    int port;
    int conns;
    double duration_s;
    uint64_t count;   /* skus mode */
    uint64_t skus;    /* 0: the hot sku */
    int64_t stock;
    int ttl_ms;
    double rate;      /* holds (cycles) per second; 0: closed loop */
    int commit_pct;
    const char *prefix;
} options_t;

typedef struct {
    int fd;
    bool busy;         /* a request is out */
    int type;          /* of the request out */
    uint64_t start_ns; /* latency is measured from here */
    uint64_t sent_ns;  /* when it actually went (timeouts) */
    uint64_t next_ns;  /* paced: when the next cycle is due */
    char out[OUT_BYTES];
    size_t out_len, out_off;
    char in[IN_BYTES];
    size_t in_len;
    char hold_id[40];
    char secret_header[64]; /* "Hold-Secret: hs_..." of hold_id */
    uint64_t rng;
} conn_t;

static options_t opt;
static stats_t stats[T_COUNT];
static conn_t *conns;
static int epfd;
static struct sockaddr_in server_addr;
static uint64_t skus_next; /* skus mode: next index to put */
static uint64_t order_seq;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64* */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static void die(const char *what)
{
    fprintf(stderr, "hf_load: %s: %s\n", what, strerror(errno));
    exit(2);
}

/* ------------------------------------------------------------ connections */

static void conn_open(conn_t *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        die("socket");
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* Loopback: a blocking connect returns at once. */
    if (connect(c->fd, (struct sockaddr *)&server_addr, sizeof server_addr) != 0) {
        die("connect to 127.0.0.1");
    }
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        die("epoll_ctl");
    }
    c->in_len = 0;
    c->out_len = c->out_off = 0;
    c->busy = false;
}

static void conn_close(conn_t *c)
{
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
}

static void want_out(conn_t *c, bool on)
{
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_flush(conn_t *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0) {
            if (errno == EAGAIN) {
                want_out(c, true);
                return;
            }
            return; /* the read side sees the error */
        }
        c->out_off += (size_t)n;
    }
}

/* Sends a request; start_ns is when its latency starts counting. */
/* header: NULL, or one more header line without its CRLF. */
static void send_request(conn_t *c, int type, uint64_t start_ns, const char *method,
                         const char *path, const char *header, const char *body)
{
    size_t body_len = body ? strlen(body) : 0;
    int n = snprintf(c->out, sizeof c->out,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s%sContent-Length: %zu\r\n\r\n%s",
                     method, path, header ? header : "", header ? "\r\n" : "",
                     body ? "Content-Type: application/json\r\n" : "", body_len, body ? body : "");
    if (n < 0 || (size_t)n >= sizeof c->out) {
        fprintf(stderr, "hf_load: request too long\n");
        exit(2);
    }
    c->out_len = (size_t)n;
    c->out_off = 0;
    c->busy = true;
    c->type = type;
    c->start_ns = start_ns;
    c->sent_ns = now_ns();
    conn_flush(c);
}

static void send_create(conn_t *c, uint64_t start_ns)
{
    char body[256];
    char sku[80];
    if (opt.skus == 0) {
        snprintf(sku, sizeof sku, "hot");
    } else {
        snprintf(sku, sizeof sku, "%s%llu", opt.prefix,
                 (unsigned long long)(rng_next(&c->rng) % opt.skus));
    }
    snprintf(body, sizeof body,
             "{\"customer\":\"c-%llu\",\"lines\":[{\"sku\":\"%s\",\"qty\":1}],\"ttl_ms\":%d}",
             (unsigned long long)(rng_next(&c->rng) % 10000), sku, opt.ttl_ms);
    send_request(c, T_CREATE, start_ns, "POST", "/v1/holds", NULL, body);
}

static void send_sku_put(conn_t *c, uint64_t i)
{
    char path[128], body[64];
    snprintf(path, sizeof path, "/v1/skus/%s%llu", opt.prefix, (unsigned long long)i);
    snprintf(body, sizeof body, "{\"stock\":%lld}", (long long)opt.stock);
    send_request(c, T_PUT, now_ns(), "PUT", path, NULL, body);
}

/* ---------------------------------------------------------------- replies */

static bool header_is(const char *line, size_t len, const char *name)
{
    size_t n = strlen(name);
    return len > n && strncasecmp(line, name, n) == 0;
}

/* Parses a complete reply at the front of c->in. Returns its total length,
 * 0 if more bytes are needed, -1 if it is not HTTP. */
static long parse_reply(conn_t *c, int *status, bool *close_after, const char **body,
                        size_t *body_len)
{
    char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (end == NULL) {
        return c->in_len >= sizeof c->in ? -1 : 0;
    }
    size_t head = (size_t)(end - c->in) + 4;
    if (c->in_len < 12 || memcmp(c->in, "HTTP/1.", 7) != 0) {
        return -1;
    }
    *status = atoi(c->in + 9);
    long clen = -1;
    *close_after = false;
    char *line = memchr(c->in, '\n', head) + 1;
    while (line < end) {
        char *eol = memchr(line, '\r', (size_t)(end + 2 - line));
        size_t len = (size_t)(eol - line);
        if (header_is(line, len, "content-length:")) {
            clen = strtol(line + 15, NULL, 10);
        } else if (header_is(line, len, "connection:") &&
                   memmem(line, len, "close", 5) != NULL) {
            *close_after = true;
        }
        line = eol + 2;
    }
    if (clen < 0 || head + (size_t)clen > sizeof c->in) {
        return -1;
    }
    if (c->in_len < head + (size_t)clen) {
        return 0;
    }
    *body = c->in + head;
    *body_len = (size_t)clen;
    return (long)(head + (size_t)clen);
}

static int expected_status(int type)
{
    return type == T_CREATE ? 201 : 200;
}

static void record(int type, int status, uint64_t start_ns, uint64_t done_ns)
{
    stats_t *s = &stats[type];
    hist_add(&s->lat, done_ns - start_ns);
    if (status > 0 && status < 600) {
        s->status[status]++;
    }
    bool ok = status == expected_status(type) || (type == T_PUT && status == 201);
    if (ok) {
        s->ok++;
    } else {
        s->bad_status++;
    }
}

/* ------------------------------------------------------------- scheduling */

static uint64_t interval_ns;
static uint64_t t_start, t_stop;
static bool stopping;

/* The connection is free: start its next cycle now, or leave it for the
 * pacer. Returns false when it has nothing more to do. */
static void next_cycle(conn_t *c, uint64_t now)
{
    if (opt.mode == MODE_SKUS) {
        if (skus_next < opt.count) {
            send_sku_put(c, skus_next++);
        }
        return;
    }
    if (stopping) {
        return;
    }
    if (opt.rate > 0) {
        if (c->next_ns <= now) {
            uint64_t intended = c->next_ns;
            c->next_ns += interval_ns;
            send_create(c, intended);
        }
        return;
    }
    send_create(c, now);
}

/* The string value of "key" in a compact JSON reply, copied to out; false
 * if it is not there or does not fit. */
static bool reply_string(const char *body, size_t body_len, const char *key, char *out,
                         size_t size)
{
    char pattern[32];
    int n = snprintf(pattern, sizeof pattern, "\"%s\":\"", key);
    const char *p = memmem(body, body_len, pattern, (size_t)n);
    const char *q = p ? memchr(p + n, '"', body_len - (size_t)(p + n - body)) : NULL;
    if (q == NULL || (size_t)(q - p - n) >= size) {
        return false;
    }
    memcpy(out, p + n, (size_t)(q - p - n));
    out[q - p - n] = '\0';
    return true;
}

static void on_reply(conn_t *c, int status, const char *body, size_t body_len, uint64_t now)
{
    int type = c->type;
    c->busy = false;
    record(type, status, c->start_ns, now);
    if (type == T_CREATE && opt.mode == MODE_MIX && status == 201) {
        char secret[48];
        if (!reply_string(body, body_len, "id", c->hold_id, sizeof c->hold_id) ||
            !reply_string(body, body_len, "secret", secret, sizeof secret)) {
            stats[type].errors++;
            next_cycle(c, now);
            return;
        }
        snprintf(c->secret_header, sizeof c->secret_header, "Hold-Secret: %s", secret);
        char path[96];
        if ((int)(rng_next(&c->rng) % 100) < opt.commit_pct) {
            char order[48];
            snprintf(path, sizeof path, "/v1/holds/%s/commit", c->hold_id);
            snprintf(order, sizeof order, "{\"order_ref\":\"o-%llu\"}",
                     (unsigned long long)++order_seq);
            send_request(c, T_COMMIT, now, "POST", path, c->secret_header, order);
        } else {
            snprintf(path, sizeof path, "/v1/holds/%s", c->hold_id);
            send_request(c, T_RELEASE, now, "DELETE", path, c->secret_header, NULL);
        }
        return;
    }
    next_cycle(c, now);
}

static void on_readable(conn_t *c)
{
    for (;;) {
        ssize_t n = read(c->fd, c->in + c->in_len, sizeof c->in - c->in_len);
        if (n > 0) {
            c->in_len += (size_t)n;
            for (;;) {
                int status;
                bool close_after;
                const char *body;
                size_t body_len;
                long used = parse_reply(c, &status, &close_after, &body, &body_len);
                if (used == 0) {
                    break;
                }
                uint64_t now = now_ns();
                if (used < 0 || !c->busy) {
                    if (c->busy) {
                        stats[c->type].errors++;
                    }
                    fprintf(stderr, "hf_load: a reply that is not HTTP; reconnecting\n");
                    conn_close(c);
                    conn_open(c);
                    next_cycle(c, now);
                    return;
                }
                /* Copy what on_reply needs before the buffer moves. */
                char copy[256];
                size_t copy_len = body_len < sizeof copy ? body_len : sizeof copy;
                memcpy(copy, body, copy_len);
                memmove(c->in, c->in + used, c->in_len - (size_t)used);
                c->in_len -= (size_t)used;
                if (close_after) {
                    conn_close(c);
                    conn_open(c);
                }
                on_reply(c, status, copy, copy_len, now);
                if (close_after) {
                    return;
                }
            }
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            return;
        }
        /* closed or failed */
        if (c->busy) {
            stats[c->type].errors++;
        }
        conn_close(c);
        conn_open(c);
        next_cycle(c, now_ns());
        return;
    }
}

/* ------------------------------------------------------------------ report */

static void report(double elapsed_s)
{
    hist_t *all = calloc(1, sizeof *all);
    uint64_t total = 0, bad = 0, errors = 0;
    const char *mode = opt.mode == MODE_SKUS ? "skus" : opt.mode == MODE_HOLDS ? "holds" : "mix";
    for (int t = 0; t < T_COUNT; t++) {
        stats_t *s = &stats[t];
        uint64_t n = s->ok + s->bad_status;
        if (n == 0 && s->errors == 0) {
            continue;
        }
        hist_merge(all, &s->lat);
        total += n;
        bad += s->bad_status;
        errors += s->errors;
        char other[256] = "";
        size_t at = 0;
        for (int code = 0; code < 600; code++) {
            bool expected = code == expected_status(t) || (t == T_PUT && code == 201);
            if (s->status[code] > 0 && !expected && at < sizeof other - 24) {
                at += (size_t)snprintf(other + at, sizeof other - at, "%s%d:%llu", at ? "," : "",
                                       code, (unsigned long long)s->status[code]);
            }
        }
        printf("HF_LOAD mode=%s type=%s conns=%d requests=%llu ok=%llu bad_status=%llu "
               "errors=%llu rps=%.0f p50_us=%.0f p90_us=%.0f p99_us=%.0f p999_us=%.0f "
               "max_us=%.0f%s%s\n",
               mode, type_name[t], opt.conns, (unsigned long long)n, (unsigned long long)s->ok,
               (unsigned long long)s->bad_status, (unsigned long long)s->errors,
               (double)n / elapsed_s, hist_pct_us(&s->lat, 50), hist_pct_us(&s->lat, 90),
               hist_pct_us(&s->lat, 99), hist_pct_us(&s->lat, 99.9),
               (double)s->lat.max_ns / 1000.0, at ? " other_statuses=" : "", other);
    }
    printf("HF_LOAD mode=%s type=all conns=%d rate_target=%.0f seconds=%.3f requests=%llu "
           "bad_status=%llu errors=%llu rps=%.0f holds_per_s=%.0f p50_us=%.0f p99_us=%.0f\n",
           mode, opt.conns, opt.rate, elapsed_s, (unsigned long long)total,
           (unsigned long long)bad, (unsigned long long)errors, (double)total / elapsed_s,
           (double)(stats[T_CREATE].ok + stats[T_CREATE].bad_status) / elapsed_s,
           hist_pct_us(all, 50), hist_pct_us(all, 99));
    free(all);
}

/* ------------------------------------------------------------------- main */

static void usage(void)
{
    fprintf(stderr,
            "usage: hf_load skus  --port P --count N [--prefix s-] [--stock S] [-c CONNS]\n"
            "       hf_load holds --port P [-c CONNS] [-d SECS] [--skus N] [--ttl MS] "
            "[--rate R]\n"
            "       hf_load mix   --port P [-c CONNS] [-d SECS] [--skus N] [--ttl MS] "
            "[--rate R] [--commit-pct PCT]\n"
            "Targets 127.0.0.1 only. -d is at most %d seconds.\n",
            DURATION_S_MAX);
    exit(2);
}

static void parse_args(int argc, char **argv)
{
    if (argc < 2) {
        usage();
    }
    opt = (options_t){.conns = 32, .duration_s = 10, .stock = 1000000, .ttl_ms = 5000,
                      .commit_pct = 50, .prefix = "s-"};
    if (strcmp(argv[1], "skus") == 0) {
        opt.mode = MODE_SKUS;
    } else if (strcmp(argv[1], "holds") == 0) {
        opt.mode = MODE_HOLDS;
    } else if (strcmp(argv[1], "mix") == 0) {
        opt.mode = MODE_MIX;
    } else {
        usage();
    }
    for (int i = 2; i < argc; i += 2) {
        if (i + 1 >= argc) {
            usage();
        }
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--port") == 0) {
            opt.port = atoi(v);
        } else if (strcmp(k, "-c") == 0) {
            opt.conns = atoi(v);
        } else if (strcmp(k, "-d") == 0) {
            opt.duration_s = atof(v);
        } else if (strcmp(k, "--count") == 0) {
            opt.count = strtoull(v, NULL, 10);
        } else if (strcmp(k, "--skus") == 0) {
            opt.skus = strtoull(v, NULL, 10);
        } else if (strcmp(k, "--stock") == 0) {
            opt.stock = strtoll(v, NULL, 10);
        } else if (strcmp(k, "--ttl") == 0) {
            opt.ttl_ms = atoi(v);
        } else if (strcmp(k, "--rate") == 0) {
            opt.rate = atof(v);
        } else if (strcmp(k, "--commit-pct") == 0) {
            opt.commit_pct = atoi(v);
        } else if (strcmp(k, "--prefix") == 0) {
            opt.prefix = v;
        } else {
            usage();
        }
    }
    if (opt.port <= 0 || opt.port > 65535 || opt.conns < 1 || opt.conns > CONNS_MAX ||
        opt.duration_s <= 0 || opt.duration_s > DURATION_S_MAX || opt.rate < 0 ||
        opt.commit_pct < 0 || opt.commit_pct > 100 || strlen(opt.prefix) > 40 ||
        (opt.mode == MODE_SKUS && (opt.count == 0 || opt.count > 50000000))) {
        usage();
    }
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    server_addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(opt.port)};
    inet_pton(AF_INET, "127.0.0.1", &server_addr.sin_addr);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        die("epoll_create1");
    }
    conns = calloc((size_t)opt.conns, sizeof *conns);
    if (conns == NULL) {
        die("calloc");
    }
    t_start = now_ns();
    uint64_t duration_ns = (uint64_t)(opt.duration_s * 1e9);
    /* skus mode is bounded by --count; the cap stops a hung server. */
    t_stop = t_start + (opt.mode == MODE_SKUS ? (uint64_t)DURATION_S_MAX * 1000000000ull
                                              : duration_ns);
    if (opt.rate > 0) {
        interval_ns = (uint64_t)((double)opt.conns * 1e9 / opt.rate);
    }
    for (int i = 0; i < opt.conns; i++) {
        conn_t *c = &conns[i];
        c->rng = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1) ^ t_start;
        conn_open(c);
        c->next_ns = t_start + (interval_ns * (uint64_t)i) / (uint64_t)opt.conns;
    }
    for (int i = 0; i < opt.conns; i++) {
        next_cycle(&conns[i], now_ns());
    }
    struct epoll_event events[256];
    uint64_t drain_until = 0;
    uint64_t last_done = t_start;
    for (;;) {
        uint64_t now = now_ns();
        if (!stopping && now >= t_stop) {
            stopping = true;
            drain_until = now + DRAIN_NS;
        }
        /* Pace, check timeouts, and find out what is left. */
        uint64_t wake = UINT64_MAX;
        int busy = 0;
        for (int i = 0; i < opt.conns; i++) {
            conn_t *c = &conns[i];
            if (!c->busy) {
                next_cycle(c, now);
            }
            if (c->busy) {
                busy++;
                if (now > c->sent_ns && now - c->sent_ns > TIMEOUT_NS) {
                    stats[c->type].errors++;
                    fprintf(stderr, "hf_load: no reply in 10 s; reconnecting\n");
                    conn_close(c);
                    conn_open(c);
                    busy--;
                }
            } else if (opt.rate > 0 && !stopping && c->next_ns < wake) {
                wake = c->next_ns;
            }
        }
        if (busy == 0 && (stopping || (opt.mode == MODE_SKUS && skus_next >= opt.count))) {
            break;
        }
        if (stopping && now > drain_until) {
            fprintf(stderr, "hf_load: %d replies still missing after the run\n", busy);
            break;
        }
        struct timespec timeout = {.tv_sec = 0, .tv_nsec = 100000000};
        if (wake != UINT64_MAX) {
            uint64_t wait = wake > now ? wake - now : 0;
            if (wait < 100000000ull) {
                timeout.tv_nsec = (long)wait;
            }
        }
        int n = epoll_pwait2(epfd, events, 256, &timeout, NULL);
        if (n < 0 && errno != EINTR) {
            die("epoll_pwait2");
        }
        for (int i = 0; i < n; i++) {
            conn_t *c = events[i].data.ptr;
            if (c->fd < 0) {
                continue;
            }
            if (events[i].events & EPOLLOUT) {
                want_out(c, false);
                conn_flush(c);
            }
            if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                on_readable(c);
            }
        }
        if (n > 0) {
            last_done = now_ns();
        }
    }
    double elapsed_s = (double)((stopping ? t_stop : last_done) - t_start) / 1e9;
    if (opt.mode == MODE_SKUS) {
        elapsed_s = (double)(last_done - t_start) / 1e9;
    }
    report(elapsed_s);
    for (int i = 0; i < opt.conns; i++) {
        if (conns[i].fd >= 0) {
            close(conns[i].fd);
        }
    }
    uint64_t bad = 0;
    for (int t = 0; t < T_COUNT; t++) {
        bad += stats[t].bad_status + stats[t].errors;
    }
    return bad > 0 ? 1 : 0;
}
