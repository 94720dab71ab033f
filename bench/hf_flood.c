/*
 * hf_flood.c - a connection flood for holdfast's benchmarks, and a shopper
 * who measures what it costs.
 *
 * The flood holds --idle connections that never send a byte, --slow
 * connections that send a request head one byte every --drip-ms (spread
 * evenly, so the server sees a steady trickle), and --kept connections that
 * send one whole request (GET /healthz) and then keep the connection idle. A connection the server
 * closes (at a deadline) or refuses (503) is opened again, at most
 * --reopen-rate a second in all, as an attacker would keep up the flood.
 * With --sources N the flood comes from N loopback addresses (127.0.0.2
 * and up) instead of 127.0.0.1, like a flood from many machines: each then
 * stays under the server's per-address cap.
 *
 * The shopper (--probe-rate R a second, from 127.0.0.1) opens a fresh
 * connection per hold, POST /v1/holds on the sku "hot", and measures from
 * the hold's intended start (so a stalled server is charged for the probes
 * it delayed; no coordinated omission). Fresh connections are the hard case
 * under a flood: each must get past the accept loop and the caps.
 *
 *   hf_flood --port P [--idle N] [--slow N] [--kept N] [--drip-ms MS]
 *            [--sources N] [--probe-rate R] [--reopen-rate R] [-d SECS]
 *
 * It prints "HF_FLOOD_READY" on stderr once the whole flood is open, and at
 * the end one "HF_FLOOD key=value ..." line. Traffic goes to 127.0.0.1 only,
 * and a run is bounded by -d (at most 600 s) and the descriptors it has.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DURATION_S_MAX 600
#define FLOOD_MAX 50000
#define SOURCES_MAX 250
#define PROBE_RATE_MAX 1000
#define PROBES_MAX (PROBE_RATE_MAX * DURATION_S_MAX)
#define IO_TIMEOUT_S 10

static const char slow_head[] = "POST /v1/holds HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
static const char kept_request[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

typedef enum { IDLE, SLOW, KEPT } kind_t;

typedef struct {
    int fd; /* -1: waiting to be opened again */
    kind_t kind;
    bool connected;
    uint32_t dripped;
} flood_conn_t;

typedef struct {
    int port, idle, slow, kept, sources;
    double duration_s, probe_rate, reopen_rate;
    int drip_ms;
} options_t;

static options_t opt;
static struct sockaddr_in server_addr;
static uint64_t t_stop_ns;

/* What the flood saw. */
static uint64_t opened, refused, closed_by_server, connect_failed, drips;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "hf_flood: %s: %s\n", what, strerror(errno));
    exit(2);
}

/* ------------------------------------------------------------- the flood */

static int epfd;
static flood_conn_t *flood;

static void flood_open(int i)
{
    flood_conn_t *c = &flood[i];
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        die("socket (raise ulimit -n)");
    }
    if (opt.sources > 1) {
        struct sockaddr_in from = {.sin_family = AF_INET};
        from.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(i % opt.sources));
        int one = 1;
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(c->fd, (struct sockaddr *)&from, sizeof from) != 0) {
            die("bind to a loopback source");
        }
    }
    if (connect(c->fd, (struct sockaddr *)&server_addr, sizeof server_addr) != 0 &&
        errno != EINPROGRESS) {
        die("connect to 127.0.0.1");
    }
    c->connected = false;
    c->dripped = 0;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.u32 = (uint32_t)i};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        die("epoll_ctl");
    }
    opened++;
}

static void flood_lost(int i)
{
    flood_conn_t *c = &flood[i];
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
}

/* The connection is up (or failed); a slow one starts its head. */
static void flood_writable(int i)
{
    flood_conn_t *c = &flood[i];
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
        connect_failed++;
        flood_lost(i);
        return;
    }
    c->connected = true;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)i};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    const char *first = c->kind == SLOW ? slow_head : c->kind == KEPT ? kept_request : NULL;
    if (first != NULL) {
        ssize_t n = send(c->fd, first, strlen(first), MSG_NOSIGNAL);
        (void)n; /* a lost connection shows on the read side */
    }
}

/* The server said something: a 503 (refused) or the end (closed). */
static void flood_readable(int i)
{
    flood_conn_t *c = &flood[i];
    char buf[512];
    ssize_t n = recv(c->fd, buf, sizeof buf, 0);
    if (n > 0 && strncmp(buf, "HTTP/1.1 503", 12) == 0) {
        refused++;
    } else if (n > 0) {
        return; /* the rest of a reply: the end comes next */
    } else if (!c->connected) {
        connect_failed++;
    } else {
        closed_by_server++;
    }
    flood_lost(i);
}

static void flood_drip(int i)
{
    flood_conn_t *c = &flood[i];
    if (c->fd >= 0 && c->connected && c->kind == SLOW) {
        char byte = 'a' + (char)(c->dripped++ % 26);
        if (send(c->fd, &byte, 1, MSG_NOSIGNAL) == 1) {
            drips++;
        }
    }
}

/* Runs the flood until t_stop_ns. */
static void flood_run(void)
{
    int total = opt.idle + opt.slow + opt.kept;
    uint64_t start = now_ns();
    uint64_t drip_step = opt.slow > 0 ? (uint64_t)opt.drip_ms * 1000000ull / (uint64_t)opt.slow : 0;
    uint64_t drip_at = start + drip_step;
    int drip_index = 0;
    double reopen_tokens = 0;
    uint64_t tokens_at = start;
    bool ready = false;
    struct epoll_event events[512];
    while (now_ns() < t_stop_ns) {
        uint64_t now = now_ns();
        reopen_tokens += (double)(now - tokens_at) / 1e9 * opt.reopen_rate;
        reopen_tokens = reopen_tokens > opt.reopen_rate ? opt.reopen_rate : reopen_tokens;
        tokens_at = now;
        int open = 0;
        for (int i = 0; i < total; i++) {
            if (flood[i].fd < 0 && reopen_tokens >= 1) {
                reopen_tokens -= 1;
                flood_open(i);
            }
            open += flood[i].fd >= 0 && flood[i].connected;
        }
        if (!ready && open == total) {
            ready = true;
            fprintf(stderr, "HF_FLOOD_READY open=%d\n", open);
        }
        while (drip_step > 0 && now >= drip_at) {
            flood_drip(opt.idle + drip_index);
            drip_index = (drip_index + 1) % opt.slow;
            drip_at += drip_step;
        }
        int n = epoll_wait(epfd, events, 512, 5);
        for (int k = 0; k < n; k++) {
            int i = (int)events[k].data.u32;
            if (flood[i].fd < 0) {
                continue;
            }
            if (!flood[i].connected && (events[k].events & EPOLLOUT)) {
                flood_writable(i);
            }
            uint32_t readable = EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP;
            if (flood[i].fd >= 0 && (events[k].events & readable)) {
                flood_readable(i);
            }
        }
    }
}

/* ------------------------------------------------------------ the shopper */

static uint64_t probe_ns[PROBES_MAX];
static uint64_t probe_count, probe_ok, probe_bad, probe_errors;

/* One hold on a fresh connection; its status, or -1. */
static int probe_once(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const char body[] = "{\"customer\":\"shopper\",\"lines\":[{\"sku\":\"hot\",\"qty\":1}],"
                        "\"ttl_ms\":5000}";
    char req[512];
    int len = snprintf(req, sizeof req,
                       "POST /v1/holds HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                       "application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                       sizeof body - 1, body);
    int status = -1;
    if (connect(fd, (struct sockaddr *)&server_addr, sizeof server_addr) == 0 &&
        send(fd, req, (size_t)len, MSG_NOSIGNAL) == len) {
        char reply[4096];
        size_t got = 0;
        ssize_t n;
        /* Connection: close: the reply ends with the connection. */
        while (got < sizeof reply - 1 &&
               (n = recv(fd, reply + got, sizeof reply - 1 - got, 0)) > 0) {
            got += (size_t)n;
        }
        reply[got] = '\0';
        if (got > 12 && strncmp(reply, "HTTP/1.1 ", 9) == 0) {
            status = atoi(reply + 9);
        }
    }
    close(fd);
    return status;
}

static void *probe_main(void *arg)
{
    (void)arg;
    uint64_t interval = (uint64_t)(1e9 / opt.probe_rate);
    uint64_t next = now_ns();
    while (next < t_stop_ns && probe_count < PROBES_MAX) {
        struct timespec at = {.tv_sec = (time_t)(next / 1000000000ull),
                              .tv_nsec = (long)(next % 1000000000ull)};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL);
        int status = probe_once();
        probe_ns[probe_count++] = now_ns() - next;
        if (status == 201) {
            probe_ok++;
        } else if (status > 0) {
            probe_bad++;
        } else {
            probe_errors++;
        }
        next += interval;
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_ms(double pct)
{
    if (probe_count == 0) {
        return 0;
    }
    size_t i = (size_t)((double)probe_count * pct / 100.0);
    return (double)probe_ns[i < probe_count ? i : probe_count - 1] / 1e6;
}

/* ------------------------------------------------------------------- main */

static void usage(void)
{
    fprintf(stderr,
            "usage: hf_flood --port P [--idle N] [--slow N] [--kept N] [--drip-ms MS]\n"
            "                [--sources N] [--probe-rate R] [--reopen-rate R] [-d SECS]\n"
            "Targets 127.0.0.1 only; at most %d flood connections, %d sources (127.0.0.2 on),\n"
            "%d probes a second and %d seconds.\n",
            FLOOD_MAX, SOURCES_MAX, PROBE_RATE_MAX, DURATION_S_MAX);
    exit(2);
}

static void parse_args(int argc, char **argv)
{
    opt = (options_t){.duration_s = 10, .drip_ms = 10000, .sources = 1, .probe_rate = 20,
                      .reopen_rate = 5000};
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc) {
            usage();
        }
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--port") == 0) {
            opt.port = atoi(v);
        } else if (strcmp(k, "--idle") == 0) {
            opt.idle = atoi(v);
        } else if (strcmp(k, "--slow") == 0) {
            opt.slow = atoi(v);
        } else if (strcmp(k, "--kept") == 0) {
            opt.kept = atoi(v);
        } else if (strcmp(k, "--drip-ms") == 0) {
            opt.drip_ms = atoi(v);
        } else if (strcmp(k, "--sources") == 0) {
            opt.sources = atoi(v);
        } else if (strcmp(k, "--probe-rate") == 0) {
            opt.probe_rate = atof(v);
        } else if (strcmp(k, "--reopen-rate") == 0) {
            opt.reopen_rate = atof(v);
        } else if (strcmp(k, "-d") == 0) {
            opt.duration_s = atof(v);
        } else {
            usage();
        }
    }
    if (opt.port <= 0 || opt.port > 65535 || opt.idle < 0 || opt.slow < 0 || opt.kept < 0 ||
        opt.idle + opt.slow + opt.kept > FLOOD_MAX || opt.drip_ms < 1 || opt.sources < 1 ||
        opt.sources > SOURCES_MAX || opt.probe_rate <= 0 || opt.probe_rate > PROBE_RATE_MAX ||
        opt.reopen_rate < 1 || opt.duration_s <= 0 || opt.duration_s > DURATION_S_MAX) {
        usage();
    }
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max; /* the flood needs a descriptor per connection */
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    server_addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(opt.port)};
    inet_pton(AF_INET, "127.0.0.1", &server_addr.sin_addr);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    int total = opt.idle + opt.slow + opt.kept;
    flood = calloc((size_t)(total > 0 ? total : 1), sizeof *flood);
    if (epfd < 0 || flood == NULL) {
        die("setup");
    }
    for (int i = 0; i < total; i++) {
        flood[i].fd = -1;
        flood[i].kind = i < opt.idle ? IDLE : i < opt.idle + opt.slow ? SLOW : KEPT;
    }
    uint64_t start = now_ns();
    t_stop_ns = start + (uint64_t)(opt.duration_s * 1e9);
    pthread_t prober;
    if (pthread_create(&prober, NULL, probe_main, NULL) != 0) {
        die("pthread_create");
    }
    flood_run();
    pthread_join(prober, NULL);
    int open = 0;
    for (int i = 0; i < total; i++) {
        open += flood[i].fd >= 0 && flood[i].connected;
        if (flood[i].fd >= 0) {
            close(flood[i].fd);
        }
    }
    qsort(probe_ns, probe_count, sizeof probe_ns[0], cmp_u64);
    printf("HF_FLOOD idle=%d slow=%d kept=%d sources=%d seconds=%.0f open_at_end=%d opened=%llu "
           "refused=%llu closed_by_server=%llu connect_failed=%llu drips=%llu probes=%llu "
           "probe_201=%llu probe_other=%llu probe_errors=%llu p50_ms=%.2f p90_ms=%.2f "
           "p99_ms=%.2f max_ms=%.2f\n",
           opt.idle, opt.slow, opt.kept, opt.sources, opt.duration_s, open,
           (unsigned long long)opened,
           (unsigned long long)refused, (unsigned long long)closed_by_server,
           (unsigned long long)connect_failed, (unsigned long long)drips,
           (unsigned long long)probe_count, (unsigned long long)probe_ok,
           (unsigned long long)probe_bad, (unsigned long long)probe_errors, pct_ms(50),
           pct_ms(90), pct_ms(99), probe_count ? (double)probe_ns[probe_count - 1] / 1e6 : 0.0);
    return probe_errors > 0 || probe_bad > 0 ? 1 : 0;
}
