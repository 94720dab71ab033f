/*
 * h2o_probe.c - what another HTTP library's threading would give the hold
 * path: a probe, not a server (docs/BENCHMARKS.md, "What bounds a hold").
 *
 * holdfast's replies wait for the journal. With libmicrohttpd every waiting
 * reply is suspended and resumed one by one, and each resume writes to the
 * HTTP thread's wake-up descriptor. This probe answers the same two routes
 * on h2o's event loop (libh2o-evloop, Debian's package), with the other
 * shape: the thread that learns of a group commit sends ONE message per
 * event loop, and the loop sends every reply of that batch in one turn.
 *
 *   GET  /healthz    a fixed reply (the library's own ceiling)
 *   POST /v1/holds   the reply waits until a commit thread has written the
 *                    request's record (64 bytes) and fdatasync'ed the file,
 *                    as holdfast's group commit does; a fixed body, with
 *                    201 as holdfast's create. Every reply carries its
 *                    Content-Length: without one, h2o 2.2.5's chunked
 *                    encoder ends the connection after any status but 200.
 *
 * No engine, no JSON, no policy: the probe measures the transport and the
 * wake-ups only, so its hold/healthz ratio is the best a shape can reach,
 * to set beside holdfast's own.
 *
 *   h2o_probe --port P [--threads N] --journal FILE [--work-us U] [--commit-work-us C]
 *
 * --work-us spends U µs of CPU on the loop for each hold before it waits,
 * and --commit-work-us C µs on the commit thread for each commit before it
 * writes: a stand-in for what holdfast itself does per hold (JSON, the
 * guard, the reply) and per commit (SQLite), to ask what this transport
 * would give once a server's own work is added.
 *
 * Listens on 127.0.0.1 only; runs until killed.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "probe_loop.h"

#define THREADS_MAX 8
#define RECORD_BYTES 64
/* The most CPU a hold or a commit may be told to spend. */
#define WORK_US_MAX 10000
/* Replies waiting for one commit, at most (the journal's batch). */
#define BATCH_MAX 4096
/* The journal file is written once at start and then overwritten in a
 * ring, as SQLite reuses its WAL: an fdatasync that must also record a
 * grown file costs more than holdfast's does. */
#define JOURNAL_BYTES (64 << 20)

/* A reply waiting for the journal. Owned by its loop: the request's pool
 * may go first (the client closed), which only marks it gone. */
typedef struct waiter_s {
    h2o_req_t *req; /* NULL: the request is gone */
    struct waiter_s *next;
    bool queued; /* handed to the commit thread, not yet back */
} waiter_t;

typedef struct {
    h2o_multithread_message_t super;
    waiter_t *head; /* the batch's replies on this loop */
} durable_msg_t;

typedef struct {
    probe_loop_t base; /* first: probe_loop_this points here */
    int index;
} loop_t;

static h2o_globalconf_t config;
static loop_t loops[THREADS_MAX];
static int loop_count = 1;
static int journal_fd = -1;
static int64_t work_us;        /* CPU spent per hold on the loop */
static int64_t commit_work_us; /* CPU spent per commit on the commit thread */

static int64_t mono_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

/* Busy for us microseconds of wall time on this thread. */
static void spend_us(int64_t us)
{
    for (int64_t until = mono_us() + us; us > 0 && mono_us() < until;) {
    }
}

/* The commit thread's intake: appended by the loops. */
static pthread_mutex_t intake_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t intake_cond = PTHREAD_COND_INITIALIZER;
static waiter_t *intake[THREADS_MAX]; /* per loop, newest first */
static uint32_t intake_count;

#define this_loop ((loop_t *)probe_loop_this)

static void send_fixed(h2o_req_t *req, int status, const char *reason, const char *body)
{
    req->res.status = status;
    req->res.reason = reason;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json"));
    req->res.content_length = strlen(body);
    h2o_send_inline(req, body, strlen(body));
}

/* The request's pool is going: the waiter outlives it if still queued. */
static void on_req_gone(void *p)
{
    waiter_t **slot = p;
    waiter_t *w = *slot;
    if (w->queued) {
        w->req = NULL; /* the batch's turn frees it */
    } else {
        free(w);
    }
}

static int on_holds(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        return -1;
    }
    spend_us(work_us);
    waiter_t *w = calloc(1, sizeof *w);
    if (w == NULL) {
        send_fixed(req, 503, "Service Unavailable", "{\"error\":\"memory\"}");
        return 0;
    }
    waiter_t **slot = h2o_mem_alloc_shared(&req->pool, sizeof *slot, on_req_gone);
    *slot = w;
    w->req = req;
    w->queued = true;
    pthread_mutex_lock(&intake_lock);
    w->next = intake[this_loop->index];
    intake[this_loop->index] = w;
    intake_count++;
    pthread_cond_signal(&intake_cond);
    pthread_mutex_unlock(&intake_lock);
    return 0;
}

static int on_healthz(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    send_fixed(req, 200, "OK", "{\"status\":\"ok\"}");
    return 0;
}

/* On the loop: one message per commit, every reply of the batch sent. */
static void on_durable(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        durable_msg_t *m = H2O_STRUCT_FROM_MEMBER(durable_msg_t, super.link, messages->next);
        h2o_linklist_unlink(&m->super.link);
        for (waiter_t *w = m->head, *next; w != NULL; w = next) {
            next = w->next;
            w->queued = false;
            if (w->req == NULL) {
                free(w);
            } else {
                send_fixed(w->req, 201, "Created", "{\"id\":\"hold_probe\",\"state\":\"active\"}");
            }
        }
        free(m);
    }
}

/* Writes each batch's records and fdatasyncs them, then tells each loop. */
static void *commit_main(void *arg)
{
    (void)arg;
    static char records[BATCH_MAX * RECORD_BYTES];
    off_t at = 0;
    for (;;) {
        waiter_t *batch[THREADS_MAX];
        pthread_mutex_lock(&intake_lock);
        while (intake_count == 0) {
            pthread_cond_wait(&intake_cond, &intake_lock);
        }
        uint32_t n = intake_count > BATCH_MAX ? BATCH_MAX : intake_count;
        memcpy(batch, intake, sizeof batch);
        memset(intake, 0, sizeof intake);
        intake_count = 0;
        pthread_mutex_unlock(&intake_lock);
        spend_us(commit_work_us);
        memset(records, 'r', (size_t)n * RECORD_BYTES);
        if (pwrite(journal_fd, records, (size_t)n * RECORD_BYTES, at) < 0 ||
            fdatasync(journal_fd) != 0) {
            perror("h2o_probe: journal");
            exit(1);
        }
        at += (off_t)n * RECORD_BYTES;
        if (at + (off_t)sizeof records > JOURNAL_BYTES) {
            at = 0;
        }
        for (int i = 0; i < loop_count; i++) {
            if (batch[i] == NULL) {
                continue;
            }
            durable_msg_t *m = calloc(1, sizeof *m);
            if (m == NULL) {
                exit(1);
            }
            m->head = batch[i];
            h2o_multithread_send_message(&loops[i].base.receiver, &m->super);
        }
    }
    return NULL;
}

static void route(h2o_hostconf_t *host, const char *path,
                  int (*fn)(h2o_handler_t *, h2o_req_t *))
{
    h2o_pathconf_t *p = h2o_config_register_path(host, path, 0);
    h2o_handler_t *h = h2o_create_handler(p, sizeof *h);
    h->on_req = fn;
}

/* A count of microseconds, or -1 if text is not one. */
static int64_t parse_us(const char *text)
{
    char *end;
    errno = 0;
    long long us = strtoll(text, &end, 10);
    return errno != 0 || end == text || *end != '\0' ? -1 : (int64_t)us;
}

int main(int argc, char **argv)
{
    int port = 0;
    const char *journal = NULL;
    bool unknown = argc % 2 == 0; /* an option without its value */
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0) {
            port = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--threads") == 0) {
            loop_count = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--journal") == 0) {
            journal = argv[i + 1];
        } else if (strcmp(argv[i], "--work-us") == 0) {
            work_us = parse_us(argv[i + 1]);
        } else if (strcmp(argv[i], "--commit-work-us") == 0) {
            commit_work_us = parse_us(argv[i + 1]);
        } else {
            unknown = true;
        }
    }
    if (unknown || port <= 0 || journal == NULL || loop_count < 1 || loop_count > THREADS_MAX ||
        work_us < 0 || work_us > WORK_US_MAX || commit_work_us < 0 ||
        commit_work_us > WORK_US_MAX) {
        fprintf(stderr,
                "usage: h2o_probe --port P [--threads 1..%d] --journal FILE [--work-us 0..%d] "
                "[--commit-work-us 0..%d]\n",
                THREADS_MAX, WORK_US_MAX, WORK_US_MAX);
        return 2;
    }
    journal_fd = open(journal, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    static char zeros[1 << 20];
    for (off_t at = 0; journal_fd >= 0 && at < JOURNAL_BYTES; at += sizeof zeros) {
        if (pwrite(journal_fd, zeros, sizeof zeros, at) != (ssize_t)sizeof zeros) {
            close(journal_fd);
            journal_fd = -1;
        }
    }
    if (journal_fd < 0 || fsync(journal_fd) != 0) {
        perror("h2o_probe: journal");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    h2o_config_init(&config);
    h2o_hostconf_t *host = h2o_config_register_host(&config, h2o_iovec_init(H2O_STRLIT("default")),
                                                    65535);
    route(host, "/healthz", on_healthz);
    route(host, "/v1/holds", on_holds);
    pthread_t committer;
    pthread_create(&committer, NULL, commit_main, NULL);
    for (int i = 0; i < loop_count; i++) {
        loops[i].index = i;
        probe_loop_start(&loops[i].base, &config, port, on_durable, "h2o_probe");
    }
    fprintf(stderr, "h2o_probe: listening on 127.0.0.1:%d, %d loops\n", port, loop_count);
    pthread_join(loops[0].base.thread, NULL);
    return 0;
}
