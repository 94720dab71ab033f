/*
 * access_log.c - one logfmt line per request (observe.h), and the keys' ids.
 *
 *   time=2025-01-31T09:00:00.123Z method=POST route=/v1/holds/{id}/commit
 *   status=409 error=hold_committed ms=0.412 bytes=187 client=203.0.113.7
 *   key=3fa2b1c9 request_id=abc-1
 *
 * (one line). ms is from the complete request to its reply: the handler and
 * the wait for the journal. bytes is the reply's body. request_id is the
 * client's X-Request-Id when it is 1-64 bytes of [A-Za-z0-9._:-] (left out
 * otherwise: the log takes nothing from a client that could break a line).
 *
 * Why a buffer and a thread. A write(2) per request from the HTTP threads
 * would put a system call, and a lock around the file, on every reply; a
 * slow disk would then slow the replies. Instead each line is formatted on
 * the HTTP thread without a lock, then copied under a mutex held for that
 * copy only into the active half of a double buffer. The log's thread
 * swaps the halves every ACCESS_LOG_FLUSH_MS (or as soon as the active one
 * is half full) and writes the full one outside the lock. When a half is
 * full, a line is dropped and counted (holdfast_access_log_lines_total
 * {outcome="dropped"}), never waited for: the log must not slow a sale.
 *
 * Invariants:
 *   1. Appenders touch only buf[active]; the thread only buf[!active],
 *      between swaps, which happen under the lock.
 *   2. len <= ACCESS_LOG_HALF_BYTES; a line is in the buffer whole or not
 *      at all.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hf_clock.h"
#include "hf_thread.h"
#include "metrics.h"
#include "observe.h"

/* A half of the buffer: at 50,000 lines/s of 200 bytes, 100 ms of lines,
 * twice what a flush interval brings. */
#define ACCESS_LOG_HALF_BYTES (1u << 20)
#define ACCESS_LOG_FLUSH_MS 50
/* A line is at most this long: every field is bounded (the route's
 * template, a 64-byte request id, an address). */
#define ACCESS_LOG_LINE_MAX 512
#define REQUEST_ID_BYTES_MAX 64

typedef struct access_log_s {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    char *buf[2];
    size_t len; /* of buf[active] */
    int active;
    bool kicked;   /* the thread was woken for a half-full buffer */
    bool stopping; /* under lock */
    int reopen;    /* atomic: open the file again by name before writing */
    int fd;
    bool own_fd; /* a file of ours (not stderr) */
    char path[PATH_MAX];
    pthread_t thread;
    uint64_t written, dropped, write_errors; /* atomic */
} access_log_t;

/* ------------------------------------------------------------ templates */

/* The route table's patterns as the log names them: '*' segments named for
 * what they hold, so a line never carries an id or a sku from the path. */

static const char *segment_name(const char *prev, size_t prev_len)
{
    static const struct {
        const char *segment, *name;
    } names[] = {{"skus", "{sku}"},       {"holds", "{id}"},   {"waitlist", "{id}"},
                 {"identities", "{kind}"}, {"shop", "{file}"}, {"admin", "{file}"},
                 {"pow", "{file}"},       {"uplot", "{file}"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strlen(names[i].segment) == prev_len &&
            memcmp(names[i].segment, prev, prev_len) == 0) {
            return names[i].name;
        }
    }
    return "{param}";
}

static void make_template(const char *pattern, char *out, size_t size)
{
    size_t n = 0;
    const char *prev = pattern;
    size_t prev_len = 0;
    for (const char *p = pattern; *p != '\0' && n + 16 < size; p++) {
        if (*p == '*' || *p == '+') {
            const char *name = *p == '+' ? "{value}" : segment_name(prev, prev_len);
            n += (size_t)snprintf(out + n, size - n, "%s", name);
            continue;
        }
        if (*p == '/' && p > pattern) {
            prev = pattern;
            for (const char *q = p - 1; q > pattern; q--) {
                if (*q == '/') {
                    prev = q + 1;
                    break;
                }
            }
            prev_len = (size_t)(p - prev);
        }
        out[n++] = *p;
    }
    out[n] = '\0';
}

void observe_templates(server_t *s)
{
    assert(s->route_count <= SERVER_ROUTE_COUNT_MAX);
    for (int i = 0; i < s->route_count; i++) {
        make_template(s->route_patterns[i], s->route_templates[i], sizeof s->route_templates[i]);
    }
}

const char *observe_route_template(const server_t *s, int route)
{
    return route >= 0 && route < s->route_count ? s->route_templates[route] : "unmatched";
}

/* ------------------------------------------------------------- the keys */

const char *observe_key_id(const request_t *r)
{
    return r->key_slot >= 0 ? r->server->key_ids[r->key_slot] : "-";
}

/* Every configured key's id, printed once so an operator can tell whose a
 * line is. */
static void make_key_ids(server_t *s)
{
    const server_config_t *c = &s->config;
    for (uint32_t i = 0; i <= c->api_key_count; i++) {
        const char *key = i < c->api_key_count ? c->api_keys[i] : c->admin_key;
        if (key[0] == '\0') {
            snprintf(s->key_ids[i], sizeof s->key_ids[i], "-");
            continue;
        }
        holdkey_key_id(&s->holdkey, key, s->key_ids[i]);
        if (i < c->api_key_count) {
            fprintf(stderr, "level=info msg=\"key id\" role=shop index=%u key=%s\n", i,
                    s->key_ids[i]);
        } else {
            fprintf(stderr, "level=info msg=\"key id\" role=admin key=%s\n", s->key_ids[i]);
        }
    }
}

/* ---------------------------------------------------------- the writer */

static int open_log_file(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

static void write_all(access_log_t *l, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(l->fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            __atomic_fetch_add(&l->write_errors, 1, __ATOMIC_RELAXED);
            return; /* a full or failing disk loses lines, never replies */
        }
        p += w;
        n -= (size_t)w;
    }
}

/* After logrotate moved the file: the same name, a new file. If it cannot
 * be opened the old one is kept (and said so). */
static void reopen_file(access_log_t *l)
{
    if (!l->own_fd) {
        return;
    }
    int fd = open_log_file(l->path);
    if (fd < 0) {
        fprintf(stderr, "level=error msg=\"cannot reopen the access log; writing on to the "
                        "old file\" file=%s err=\"%s\"\n",
                l->path, strerror(errno));
        return;
    }
    close(l->fd);
    l->fd = fd;
}

static void *writer_thread(void *arg)
{
    access_log_t *l = arg;
    hf_thread_name("hf-access-log");
    pthread_mutex_lock(&l->lock);
    for (;;) {
        bool stopping = l->stopping;
        if (!stopping && !l->kicked) {
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_nsec += ACCESS_LOG_FLUSH_MS * 1000000L;
            until.tv_sec += until.tv_nsec / 1000000000L;
            until.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&l->wake, &l->lock, &until);
            stopping = l->stopping;
        }
        /* Asked before the swap: every line made before the signal is in
         * this batch, and goes to the old file, which logrotate expects. */
        bool reopen = __atomic_exchange_n(&l->reopen, 0, __ATOMIC_ACQ_REL);
        int full = l->active;
        size_t len = l->len;
        l->active = !l->active;
        l->len = 0;
        l->kicked = false;
        pthread_mutex_unlock(&l->lock);
        write_all(l, l->buf[full], len);
        if (reopen) {
            reopen_file(l);
        }
        pthread_mutex_lock(&l->lock);
        if (stopping && l->len == 0) {
            break;
        }
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

static void append(access_log_t *l, const char *line, size_t n)
{
    pthread_mutex_lock(&l->lock);
    if (l->len + n > ACCESS_LOG_HALF_BYTES) {
        pthread_mutex_unlock(&l->lock);
        __atomic_fetch_add(&l->dropped, 1, __ATOMIC_RELAXED);
        return;
    }
    memcpy(l->buf[l->active] + l->len, line, n);
    l->len += n;
    bool kick = l->len > ACCESS_LOG_HALF_BYTES / 2 && !l->kicked;
    l->kicked = l->kicked || kick;
    pthread_mutex_unlock(&l->lock);
    if (kick) {
        pthread_cond_signal(&l->wake); /* once per half: not a system call per line */
    }
    __atomic_fetch_add(&l->written, 1, __ATOMIC_RELAXED);
}

static void log_free(access_log_t *l)
{
    if (l->own_fd && l->fd >= 0) {
        close(l->fd);
    }
    free(l->buf[0]);
    free(l->buf[1]);
    pthread_cond_destroy(&l->wake);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

/* NULL (after logging why) if the file cannot be opened or the buffer
 * not had. */
static access_log_t *log_open(const char *where)
{
    access_log_t *l = calloc(1, sizeof *l);
    if (l == NULL) {
        return NULL;
    }
    pthread_mutex_init(&l->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&l->wake, &attr);
    pthread_condattr_destroy(&attr);
    l->buf[0] = malloc(ACCESS_LOG_HALF_BYTES);
    l->buf[1] = malloc(ACCESS_LOG_HALF_BYTES);
    l->own_fd = strcmp(where, OBSERVE_ACCESS_LOG_STDERR) != 0;
    snprintf(l->path, sizeof l->path, "%s", where);
    l->fd = l->own_fd ? open_log_file(where) : STDERR_FILENO;
    if (l->fd < 0) {
        fprintf(stderr, "level=error msg=\"cannot open the access log\" file=%s err=\"%s\"\n",
                where, strerror(errno));
    }
    if (l->fd < 0 || l->buf[0] == NULL || l->buf[1] == NULL ||
        pthread_create(&l->thread, NULL, writer_thread, l) != 0) {
        log_free(l);
        return NULL;
    }
    return l;
}

/* ------------------------------------------------------------ the lines */

/* "time=2025-01-31T09:00:00.123Z": the seconds' text is made once a second per
 * thread, since gmtime_r costs more than the rest of the line. */
static size_t format_time(char *out, size_t size)
{
    static __thread time_t cached_s = -1;
    static __thread char cached[24];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != cached_s) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &tm);
        cached_s = ts.tv_sec;
    }
    int n = snprintf(out, size, "time=%s.%03ldZ", cached, ts.tv_nsec / 1000000L);
    return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

static const char *method_name(const char *method)
{
    static const char *const known[] = {"GET",     "HEAD", "POST",  "PUT",  "DELETE",
                                        "OPTIONS", "PATCH", "TRACE", "CONNECT"};
    for (size_t i = 0; method != NULL && i < sizeof known / sizeof known[0]; i++) {
        if (strcmp(method, known[i]) == 0) {
            return known[i];
        }
    }
    return "other"; /* whatever else a client sent stays out of the log */
}

static void client_address(const request_t *r, char *out, size_t size)
{
    snprintf(out, size, "-");
    const union MHD_ConnectionInfo *info =
        r->conn != NULL ? MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS)
                        : NULL;
    if (info == NULL || info->client_addr == NULL) {
        return;
    }
    const struct sockaddr *a = info->client_addr;
    if (a->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)a)->sin_addr, out,
                  (socklen_t)size);
    } else if (a->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)a)->sin6_addr, out,
                  (socklen_t)size);
    }
}

static bool request_id_ok(const char *id)
{
    size_t n = 0;
    for (; id[n] != '\0'; n++) {
        char c = id[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == ':' || c == '-';
        if (!ok || n >= REQUEST_ID_BYTES_MAX) {
            return false;
        }
    }
    return n > 0;
}

static void log_request(access_log_t *l, request_t *r, int status, size_t body_bytes,
                        int64_t duration_us)
{
    char line[ACCESS_LOG_LINE_MAX], client[INET6_ADDRSTRLEN + 1], error[80] = "";
    size_t n = format_time(line, sizeof line);
    client_address(r, client, sizeof client);
    const char *id = request_value(r, MHD_HEADER_KIND, "X-Request-Id");
    if (status >= 400 && r->error_code != NULL) {
        snprintf(error, sizeof error, " error=%s", r->error_code);
    }
    int w = snprintf(line + n, sizeof line - n,
                     " method=%s route=%s status=%d%s ms=%.3f bytes=%zu client=%s key=%s%s%s\n",
                     method_name(r->method), observe_route_template(r->server, r->route),
                     status, error,
                     (double)duration_us / 1000.0, body_bytes, client, observe_key_id(r),
                     id != NULL && request_id_ok(id) ? " request_id=" : "",
                     id != NULL && request_id_ok(id) ? id : "");
    if (w <= 0 || (size_t)w >= sizeof line - n) {
        __atomic_fetch_add(&l->dropped, 1, __ATOMIC_RELAXED); /* cannot happen: bounded */
        return;
    }
    append(l, line, n + (size_t)w);
}


void observe_reply(request_t *r, int status, size_t body_bytes)
{
    server_t *s = r->server;
    int64_t duration_us = r->started_us > 0 ? hf_mono_us() - r->started_us : 0;
    metrics_count(s, r->route, status);
    metrics_time(s, r->route, duration_us);
    if (s->access_log != NULL) {
        log_request(s->access_log, r, status, body_bytes, duration_us);
    }
}

void observe_request_started(request_t *r)
{
    r->started_us = hf_mono_us();
}

/* ------------------------------------------------------------ the server */

int observe_start(server_t *s)
{
    make_key_ids(s);
    const char *where = s->config.access_log;
    if (where[0] == '\0' || strcmp(where, OBSERVE_ACCESS_LOG_OFF) == 0) {
        return 0;
    }
    s->access_log = log_open(where);
    return s->access_log != NULL ? 0 : -1;
}

void observe_stop(server_t *s)
{
    access_log_t *l = s->access_log;
    if (l == NULL) {
        return;
    }
    pthread_mutex_lock(&l->lock);
    l->stopping = true;
    pthread_cond_signal(&l->wake);
    pthread_mutex_unlock(&l->lock);
    pthread_join(l->thread, NULL);
    log_free(l);
    s->access_log = NULL;
}

void observe_reopen(server_t *s)
{
    if (s->access_log != NULL) {
        __atomic_store_n(&s->access_log->reopen, 1, __ATOMIC_RELEASE);
    }
}

observe_log_stats_t observe_log_stats(server_t *s)
{
    access_log_t *l = s->access_log;
    if (l == NULL) {
        return (observe_log_stats_t){.on = false};
    }
    return (observe_log_stats_t){
        .on = true,
        .written = __atomic_load_n(&l->written, __ATOMIC_RELAXED),
        .dropped = __atomic_load_n(&l->dropped, __ATOMIC_RELAXED),
        .write_errors = __atomic_load_n(&l->write_errors, __ATOMIC_RELAXED),
    };
}
