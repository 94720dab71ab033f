/*
 * torture.c - `make torture`: the server killed with SIGKILL under load,
 * over and over, with a snapshot every few dozen records; after every
 * restart each change it acknowledged must be there.
 *
 *   make torture                         500 kills, a seed from the clock
 *   make torture TORTURE_KILLS=50 TORTURE_SEED=7
 *
 * Each round starts the real server (hf_test_http.h, as tests/api do) on
 * the same data directory, with compact_records at TORTURE_COMPACT_RECORDS
 * (so it forks a snapshot every few dozen records, and kills land while
 * one is written or adopted) and the defenses off, so that only the clients
 * change holds. TORTURE_WORKERS clients, each on a kept-alive connection of
 * its own, create holds (always with an Idempotency-Key), commit and release
 * their own holds, and change the stock of their own skus; every answer
 * that acknowledges a change (201, 200) goes into the model. Once the round
 * has a random number of acknowledgements, the server gets SIGKILL with
 * requests in flight.
 *
 * After the restart, what was in flight is settled first, never counted as
 * lost: a hold create is sent again with its key (the server answers the
 * hold it kept, or makes it now); a commit, release or stock change is read
 * back and must show the state before it or after it. Then every hold the
 * round changed, and a sample of older ones, must be in its acknowledged
 * state, and every sku's stock, held and sold must be the model's (held:
 * its active holds' units; sold: its committed ones') with available =
 * stock - held - sold. Holds live a day, so none expires during a run.
 *
 * The clients, the model, the settling and the checks are model.c's,
 * shared with tests/cluster/cluster_torture.c.
 *
 * Prints the seed first and a summary last, on stdout; exits 1 if an
 * acknowledged change was lost or a sku disagreed (or the server failed to
 * start). The clients' "no reply" lines on stderr are the kills.
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_test_http.h"
#include "model.h"

/* Acknowledgements a round collects before the kill: from a few (a kill
 * right after start) to a few hundred (snapshots under way). */
#define TORTURE_ACKS_MIN 1
#define TORTURE_ACKS_MAX 400

/* Sends requests until the connection dies with the server. */
static void *worker_run(void *arg)
{
    worker_t *w = arg;
    model_t *m = w->m;
    hf_conn_t c;
    w->doubt.kind = OP_NONE;
    if (hf_conn_open(&c, w->port, NULL) == 0) {
        for (;;) {
            op_t op;
            hf_response_t r;
            model_choose(w, &op);
            if (model_send(w, &c, &op, &r) != 0) {
                w->doubt = op; /* maybe applied, maybe not: settled after the restart */
                break;
            }
            pthread_mutex_lock(&m->lock);
            model_record(w, &op, &r);
            pthread_mutex_unlock(&m->lock);
            hf_response_free(&r);
        }
        hf_conn_close(&c);
    }
    pthread_mutex_lock(&m->lock);
    m->workers_running--;
    pthread_cond_signal(&m->acked);
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

typedef struct {
    model_t m;
    worker_t workers[MODEL_WORKERS_MAX];
    uint32_t worker_count;
    hf_server_t srv;
    checker_t k; /* its connection: to the server of this round */
    uint64_t rng;
    long long start_ms_total, start_ms_max;
} torture_t;

/* ----------------------------------------------------------------- rounds */

/* Starts the server on the data directory, settles and checks. */
static int restart(torture_t *t)
{
    long long started_ms = hf_now_ms();
    if (hf_server_start(&t->srv, NULL) != 0) {
        model_report("the server did not start on %s", t->srv.data_dir);
        return -1;
    }
    long long took_ms = hf_now_ms() - started_ms;
    t->start_ms_total += took_ms;
    t->start_ms_max = took_ms > t->start_ms_max ? took_ms : t->start_ms_max;
    if (hf_conn_open(&t->k.conn, t->srv.port, NULL) != 0) {
        model_report("cannot connect to the restarted server");
        return -1;
    }
    for (uint32_t i = 0; i < t->worker_count; i++) {
        model_settle_one(&t->k, &t->workers[i]);
    }
    model_check(&t->k);
    hf_conn_close(&t->k.conn);
    return 0;
}

/* Load until the round has acks_target acknowledgements, then SIGKILL. */
static int load_and_kill(torture_t *t, uint64_t seed, uint32_t acks_target)
{
    model_t *m = &t->m;
    m->round++;
    m->round_acks = 0;
    m->workers_running = t->worker_count;
    for (uint32_t i = 0; i < t->worker_count; i++) {
        worker_t *w = &t->workers[i];
        w->port = t->srv.port;
        w->rng = seed ^ ((uint64_t)m->round << 20) ^ (i + 1);
        if (pthread_create(&w->thread, NULL, worker_run, w) != 0) {
            fprintf(stderr, "torture: cannot start a client thread\n");
            exit(2);
        }
    }
    pthread_mutex_lock(&m->lock);
    while (m->round_acks < acks_target && m->workers_running > 0) {
        pthread_cond_wait(&m->acked, &m->lock);
    }
    pthread_mutex_unlock(&m->lock);
    int status = hf_server_stop(&t->srv, SIGKILL);
    for (uint32_t i = 0; i < t->worker_count; i++) {
        pthread_join(t->workers[i].thread, NULL);
    }
    if (status != 128 + SIGKILL) {
        model_report("the server ended on its own before the kill (status %d)", status);
        hf_server_dump_log(&t->srv);
        return -1;
    }
    return 0;
}

/* The skus, each with its first stock: round 0's acknowledged changes. */
static int first_stock(torture_t *t)
{
    if (hf_conn_open(&t->k.conn, t->srv.port, NULL) != 0) {
        model_report("cannot connect to the server");
        return -1;
    }
    int rc = model_first_stock(&t->k);
    hf_conn_close(&t->k.conn);
    return rc;
}

static void summary(const torture_t *t, uint32_t kills, long long duration_ms)
{
    const model_t *m = &t->m;
    printf("torture: kills %u, acknowledged changes checked %llu (holds read back %llu, sku "
           "reads %llu), in flight at a kill: kept %llu, not kept %llu; lost %llu, skus "
           "disagreeing %llu, unexpected replies %llu; duration %.1f s (restart mean %.0f ms, "
           "max %lld ms)\n",
           kills, (unsigned long long)m->acks_checked, (unsigned long long)m->holds_read,
           (unsigned long long)m->skus_read, (unsigned long long)m->settled_kept,
           (unsigned long long)m->settled_dropped, (unsigned long long)m->lost,
           (unsigned long long)m->disagreed, (unsigned long long)m->unexpected,
           (double)duration_ms / 1000, (double)t->start_ms_total / (kills + 1),
           t->start_ms_max);
}

static int run(torture_t *t, uint64_t seed, uint32_t kills)
{
    model_t *m = &t->m;
    if (hf_server_start(&t->srv, NULL) != 0 || first_stock(t) != 0 ||
        hf_server_stop(&t->srv, SIGKILL) != 128 + SIGKILL || restart(t) != 0) {
        return -1;
    }
    uint32_t done = 0;
    for (; done < kills && m->lost + m->disagreed + m->unexpected == 0; done++) {
        uint32_t target = TORTURE_ACKS_MIN + model_below(&t->rng, TORTURE_ACKS_MAX);
        if (load_and_kill(t, seed, target) != 0 || restart(t) != 0) {
            return -1;
        }
        if ((done + 1) % 50 == 0) {
            printf("torture: %u kills, %llu acknowledged changes checked\n", done + 1,
                   (unsigned long long)m->acks_checked);
            fflush(stdout);
        }
    }
    return done == kills ? 0 : -1;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    static torture_t t;
    model_init(&t.m, "torture");
    uint64_t seed = (uint64_t)model_env_number("TORTURE_SEED", hf_wall_ms(), 0, INT64_MAX);
    uint32_t kills = (uint32_t)model_env_number("TORTURE_KILLS", 500, 0, 1000000);
    uint32_t compact = (uint32_t)model_env_number("TORTURE_COMPACT_RECORDS", 50, 1, 1000000);
    t.worker_count = (uint32_t)model_env_number("TORTURE_WORKERS", 4, 1, MODEL_WORKERS_MAX);
    printf("torture: seed %llu (TORTURE_SEED=%llu repeats the choices), %u kills, %u clients, "
           "compact_records %u\n",
           (unsigned long long)seed, (unsigned long long)seed, kills, t.worker_count, compact);
    fflush(stdout);
    t.rng = seed;
    t.k = (checker_t){.m = &t.m, .rng = seed ^ 1};
    for (uint32_t i = 0; i < t.worker_count; i++) {
        t.workers[i] = (worker_t){.m = &t.m, .index = i, .workers = t.worker_count, .seed = seed};
    }
    /* Relaxed durability may lose the last 100 ms of acknowledged changes
     * on a crash, by design: TORTURE_DURABILITY=relaxed shows the checks
     * catching that. */
    const char *durability = getenv("TORTURE_DURABILITY");
    durability = durability != NULL && *durability != '\0' ? durability : "durable";
    char config[128];
    snprintf(config, sizeof config, "{\"compact_records\": %u, \"durability\": \"%.16s\"}",
             compact, durability);
    if (hf_server_init(&t.srv) != 0 || hf_server_write_config(&t.srv, config) != 0) {
        return 2;
    }
    long long started_ms = hf_now_ms();
    int rc = run(&t, seed, kills);
    if (rc == 0 && hf_server_stop(&t.srv, SIGTERM) != 0) {
        model_report("the server did not stop cleanly on SIGTERM after the run");
        rc = -1;
    }
    summary(&t, kills, hf_now_ms() - started_ms);
    bool bad = rc != 0 || t.m.lost + t.m.disagreed + t.m.unexpected > 0;
    t.srv.failed |= bad; /* keep the data directory to look at */
    hf_server_deinit(&t.srv);
    model_free(&t.m, t.workers, t.worker_count);
    return bad ? 1 : 0;
}
