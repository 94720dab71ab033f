/*
 * pgflight.c - journal rows in flight to PostgreSQL at once (pgflight.h).
 */
#include "pgflight.h"

#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_clock.h"
#include "hf_thread.h"
#include "record.h"

typedef struct {
    struct pgflight_s *f;
    struct pg_conn *conn;
    pthread_t thread;
    pthread_cond_t wake;
    bool started;
    bool busy; /* holds a row, sent or committed, not yet counted durable */
    bool done; /* ... committed */
    pgj_commit_t job;
    store_buf_t body; /* the job's own copy of its bytes */
} worker_t;

struct pgflight_s {
    pgj_t *j;
    pthread_mutex_t lock;
    pthread_cond_t freed; /* a worker became free (submit, drain wait) */
    worker_t workers[PGFLIGHT_CONNECTIONS_MAX];
    unsigned count;
    bool stopping;
    bool failed; /* a row failed: nothing is sent any more */
    uint64_t durable_seq; /* the longest committed run from the start */
    uint64_t sent_seq;    /* the last seq sent */
    pgflight_done_fn done;
    pgflight_fail_fn fail;
    void *ctx;
};

/* Counts the committed rows that continue the run, freeing their workers.
 * Under f->lock. */
static void advance(pgflight_t *f)
{
    for (bool moved = true; moved;) {
        moved = false;
        for (unsigned i = 0; i < f->count; i++) {
            worker_t *w = &f->workers[i];
            if (w->busy && w->done && w->job.first_seq == f->durable_seq + 1) {
                f->durable_seq = w->job.first_seq + w->job.count - 1;
                w->busy = w->done = false;
                moved = true;
            }
        }
    }
    pthread_cond_broadcast(&f->freed);
}

/* A row PostgreSQL did not take: the flight stops here (its row never
 * counts, so durable_seq stays before it) and the owner is told once. */
static void failed(worker_t *w, const pgj_commit_t *c, bool fenced, const char *err)
{
    pgflight_t *f = w->f;
    pthread_mutex_lock(&f->lock);
    bool first = !f->failed;
    f->failed = true;
    pthread_cond_broadcast(&f->freed);
    pthread_mutex_unlock(&f->lock);
    if (first) {
        f->fail(f->ctx, c->first_seq, fenced, err);
    }
}

static void *worker_thread(void *arg)
{
    worker_t *w = arg;
    hf_thread_name("hf-pg-row");
    pgflight_t *f = w->f;
    pthread_mutex_lock(&f->lock);
    for (;;) {
        while (!f->stopping && !(w->busy && !w->done)) {
            pthread_cond_wait(&w->wake, &f->lock);
        }
        if (!(w->busy && !w->done)) {
            break; /* stopping, nothing of its own in flight */
        }
        pgj_commit_t job = w->job;
        pthread_mutex_unlock(&f->lock);
        char err[512];
        bool fenced = false;
        int64_t start_us = hf_mono_us();
        if (pgj_append(f->j, w->conn, &job, &fenced, err, sizeof err) != 0) {
            failed(w, &job, fenced, err);
            pthread_mutex_lock(&f->lock);
            break;
        }
        int64_t took_us = hf_mono_us() - start_us;
        pthread_mutex_lock(&f->lock);
        w->done = true;
        advance(f);
        pthread_mutex_unlock(&f->lock);
        f->done(f->ctx, job.count, job.size, took_us);
        pthread_mutex_lock(&f->lock);
    }
    pthread_mutex_unlock(&f->lock);
    return NULL;
}

pgflight_t *pgflight_start(pgj_t *j, unsigned connections, uint64_t durable_seq,
                           pgflight_done_fn done, pgflight_fail_fn fail, void *ctx, char *err,
                           size_t err_size)
{
    assert(connections >= 1 && connections <= PGFLIGHT_CONNECTIONS_MAX);
    pgflight_t *f = calloc(1, sizeof *f);
    if (f == NULL) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    f->j = j;
    f->durable_seq = f->sent_seq = durable_seq;
    f->done = done;
    f->fail = fail;
    f->ctx = ctx;
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->freed, NULL);
    for (unsigned i = 0; i < connections; i++) {
        worker_t *w = &f->workers[i];
        w->f = f;
        pthread_cond_init(&w->wake, NULL);
        f->count++;
        w->conn = pgj_connect_owner(j, err, err_size);
        if (w->conn == NULL) {
            pgflight_stop(f);
            return NULL;
        }
        if (pthread_create(&w->thread, NULL, worker_thread, w) != 0) {
            snprintf(err, err_size, "cannot start a journal thread");
            pgflight_stop(f);
            return NULL;
        }
        w->started = true;
    }
    return f;
}

void pgflight_submit(pgflight_t *f, const pgj_commit_t *c)
{
    assert(c->count > 0 && c->snapshot == NULL);
    pthread_mutex_lock(&f->lock);
    assert(c->first_seq == f->sent_seq + 1);
    worker_t *w = NULL;
    while (!f->failed) {
        for (unsigned i = 0; i < f->count && w == NULL; i++) {
            w = f->workers[i].busy ? NULL : &f->workers[i];
        }
        if (w != NULL) {
            break;
        }
        pthread_cond_wait(&f->freed, &f->lock);
    }
    if (f->failed) {
        pthread_mutex_unlock(&f->lock);
        return;
    }
    w->body.size = 0;
    record_buf_reserve(&w->body, c->size);
    memcpy(w->body.data, c->body, c->size);
    w->body.size = c->size;
    w->job = *c;
    w->job.body = w->body.data;
    w->busy = true;
    w->done = false;
    f->sent_seq = c->first_seq + c->count - 1;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&f->lock);
}

uint64_t pgflight_durable_seq(pgflight_t *f)
{
    pthread_mutex_lock(&f->lock);
    uint64_t v = f->durable_seq;
    pthread_mutex_unlock(&f->lock);
    return v;
}

bool pgflight_idle(pgflight_t *f)
{
    pthread_mutex_lock(&f->lock);
    bool idle = f->durable_seq == f->sent_seq;
    pthread_mutex_unlock(&f->lock);
    return idle;
}

void pgflight_drain(pgflight_t *f)
{
    pthread_mutex_lock(&f->lock);
    while (!f->failed && f->durable_seq != f->sent_seq) {
        pthread_cond_wait(&f->freed, &f->lock);
    }
    pthread_mutex_unlock(&f->lock);
}

void pgflight_stop(pgflight_t *f)
{
    if (f == NULL) {
        return;
    }
    pgflight_drain(f);
    pthread_mutex_lock(&f->lock);
    f->stopping = true;
    for (unsigned i = 0; i < f->count; i++) {
        pthread_cond_signal(&f->workers[i].wake);
    }
    pthread_mutex_unlock(&f->lock);
    for (unsigned i = 0; i < f->count; i++) {
        worker_t *w = &f->workers[i];
        if (w->started) {
            pthread_join(w->thread, NULL);
        }
        pgj_disconnect(w->conn);
        record_buf_free(&w->body);
        pthread_cond_destroy(&w->wake);
    }
    pthread_mutex_destroy(&f->lock);
    pthread_cond_destroy(&f->freed);
    free(f);
}
