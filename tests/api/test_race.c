/*
 * test_race.c - many clients at once: the server never oversells, and every
 * hold ends in exactly one state however commits and releases race.
 *
 * Each worker thread keeps one keep-alive connection and sends its requests
 * back to back; a barrier starts them together. Threads only record what they
 * saw; every assertion runs on the main thread after they are joined (cmocka
 * cannot fail a test from another thread). Counts are small and fixed, so a
 * run is bounded in requests, and the socket timeouts bound it in time.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hf_test_http.h"

#define THREADS 16

typedef hf_fixture_t fx_t;

static int setup_with(void **state, const char *config)
{
    return hf_fixture_setup(state, config, true);
}

/* The server's defaults (two HTTP threads). */
static int setup(void **state)
{
    return setup_with(state, NULL);
}

/* Several HTTP threads contend for the engine lock for real. ("threads" is a
 * configuration key of this server, documented by `holdfast serve --help`.) */
static int setup_threads(void **state)
{
    return setup_with(state, "{\"threads\": 4}");
}

static int teardown(void **state)
{
    return hf_fixture_teardown(state);
}

/* ---- a worker's connection ---- */

typedef struct {
    uint16_t port;
    hf_conn_t conn;
    int transport_errors;
} link_t;

/* One request on the worker's keep-alive connection, reconnecting only when
 * the server said it would close. Returns the status, or -1 (counted). */
static int link_call(link_t *l, const char *method, const char *target, const char *body,
                     hf_response_t *r)
{
    if (l->conn.fd < 0 && hf_conn_open(&l->conn, l->port, NULL) != 0) {
        l->transport_errors++;
        return -1;
    }
    if (hf_conn_exchange(&l->conn, method, target, NULL, body, body ? strlen(body) : 0, r) != 0) {
        l->transport_errors++;
        hf_conn_close(&l->conn);
        return -1;
    }
    const char *connection = hf_response_header(r, "Connection");
    if (connection != NULL && strstr(connection, "close") != NULL) {
        hf_conn_close(&l->conn);
    }
    return r->status;
}

static void link_init(link_t *l, uint16_t port)
{
    memset(l, 0, sizeof *l);
    l->port = port;
    l->conn.fd = -1;
}

/* ---- race 1: the last ten units ---- */

#define LAST_UNITS 10
#define TRIES_PER_THREAD 12

typedef struct {
    uint16_t port;
    int index;
    pthread_barrier_t *barrier;
    link_t link;
    int created, refused, other;
    char ids[TRIES_PER_THREAD][HF_TEST_ID_MAX];
} grab_t;

static void *grab(void *arg)
{
    grab_t *w = arg;
    link_init(&w->link, w->port);
    hf_conn_open(&w->link.conn, w->port, NULL);
    pthread_barrier_wait(w->barrier);
    char body[256];
    for (int i = 0; i < TRIES_PER_THREAD; i++) {
        snprintf(body, sizeof body,
                 "{\"customer\": \"u-%d-%d\", \"lines\": [{\"sku\": \"drop\", \"qty\": 1}]}",
                 w->index, i);
        hf_response_t r;
        int status = link_call(&w->link, "POST", "/v1/holds", body, &r);
        if (status == 201 && hf_json_str(r.json, "id") != NULL) {
            snprintf(w->ids[w->created++], HF_TEST_ID_MAX, "%s", hf_json_str(r.json, "id"));
        } else if (status == 409 && hf_error_code(&r) != NULL &&
                   strcmp(hf_error_code(&r), "insufficient_stock") == 0) {
            w->refused++;
        } else if (status != -1) {
            fprintf(stderr, "grab: unexpected %d %s\n", status, r.body);
            w->other++;
        }
        if (status != -1) {
            hf_response_free(&r);
        }
    }
    hf_conn_close(&w->link.conn);
    return NULL;
}

static void test_race_for_the_last_units_never_oversells(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(hf_sku_put(&fx->cl, "drop", LAST_UNITS), 201);
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, THREADS);
    grab_t *w = calloc(THREADS, sizeof *w);
    assert_non_null(w);
    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; t++) {
        w[t].port = fx->cl.port;
        w[t].index = t;
        w[t].barrier = &barrier;
        assert_int_equal(pthread_create(&threads[t], NULL, grab, &w[t]), 0);
    }
    int created = 0, refused = 0, other = 0, errors = 0;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(threads[t], NULL);
        created += w[t].created;
        refused += w[t].refused;
        other += w[t].other;
        errors += w[t].link.transport_errors;
    }
    pthread_barrier_destroy(&barrier);
    assert_int_equal(errors, 0);
    assert_int_equal(other, 0);
    assert_int_equal(created, LAST_UNITS);
    assert_int_equal(refused, THREADS * TRIES_PER_THREAD - LAST_UNITS);
    assert_true(hf_expect_sku(&fx->cl, "drop", LAST_UNITS, LAST_UNITS, 0));
    /* Ten distinct holds, each active. */
    for (int t = 0; t < THREADS; t++) {
        for (int i = 0; i < w[t].created; i++) {
            char st[32];
            assert_int_equal(hf_hold_state(&fx->cl, w[t].ids[i], st), 200);
            assert_string_equal(st, "active");
            for (int u = t; u < THREADS; u++) {
                for (int j = (u == t ? i + 1 : 0); j < w[u].created; j++) {
                    assert_string_not_equal(w[t].ids[i], w[u].ids[j]);
                }
            }
        }
    }
    free(w);
}

/* ---- race 2: commits against releases, with new holds in between ---- */

#define CONTESTED 40

typedef enum {
    SEEN_NONE,
    SEEN_COMMITTED,
    SEEN_RELEASED,
    SEEN_WAS_COMMITTED,
    SEEN_WAS_RELEASED,
    SEEN_OTHER
} seen_t;

typedef struct {
    uint16_t port;
    int index;
    pthread_barrier_t *barrier;
    char (*ids)[HF_TEST_ID_MAX];
    link_t link;
    seen_t seen[CONTESTED];
    int new_created, new_refused, new_other;
} contend_t;

static bool is_code(const hf_response_t *r, const char *code)
{
    const char *got = hf_error_code(r);
    return got != NULL && strcmp(got, code) == 0;
}

static bool has_state(const hf_response_t *r, const char *state)
{
    const char *got = hf_json_str(r->json, "state");
    return got != NULL && strcmp(got, state) == 0;
}

/* What one commit or release of a contested hold said. */
static seen_t classify(int status, const hf_response_t *r, bool commit)
{
    if (status == 200 && has_state(r, commit ? "committed" : "released")) {
        return commit ? SEEN_COMMITTED : SEEN_RELEASED;
    }
    if (commit && status == 410 && is_code(r, "hold_released")) {
        return SEEN_WAS_RELEASED;
    }
    if (!commit && status == 409 && is_code(r, "hold_committed")) {
        return SEEN_WAS_COMMITTED;
    }
    fprintf(stderr, "contend: %s got %d %s\n", commit ? "commit" : "release", status,
            r ? r->body : "");
    return SEEN_OTHER;
}

static void try_new_hold(contend_t *w, int i)
{
    char body[256];
    snprintf(body, sizeof body,
             "{\"customer\": \"n-%d-%d\", \"lines\": [{\"sku\": \"hot\", \"qty\": 1}]}", w->index,
             i);
    hf_response_t r;
    int status = link_call(&w->link, "POST", "/v1/holds", body, &r);
    if (status == 201) {
        w->new_created++;
    } else if (status == 409 && is_code(&r, "insufficient_stock")) {
        w->new_refused++;
    } else if (status != -1) {
        w->new_other++;
    }
    if (status != -1) {
        hf_response_free(&r);
    }
}

static void *contend(void *arg)
{
    contend_t *w = arg;
    link_init(&w->link, w->port);
    hf_conn_open(&w->link.conn, w->port, NULL);
    pthread_barrier_wait(w->barrier);
    char target[256];
    for (int k = 0; k < CONTESTED; k++) {
        int i = (k + w->index * 5) % CONTESTED;
        bool commit = (i + w->index) % 2 == 0;
        snprintf(target, sizeof target, "/v1/holds/%s%s", w->ids[i], commit ? "/commit" : "");
        hf_response_t r;
        int status =
            link_call(&w->link, commit ? "POST" : "DELETE", target, commit ? "{}" : NULL, &r);
        w->seen[i] = status == -1 ? SEEN_OTHER : classify(status, &r, commit);
        if (status != -1) {
            hf_response_free(&r);
        }
        if (k % 4 == 0) {
            try_new_hold(w, k);
        }
    }
    hf_conn_close(&w->link.conn);
    return NULL;
}

/* Reads the sku over and over while the workers run; any instant where
 * held + sold > stock, or available is not stock - held - sold, is counted. */
typedef struct {
    uint16_t port;
    atomic_int *stop;
    int reads, violations, errors;
} watch_t;

static void *watch(void *arg)
{
    watch_t *w = arg;
    hf_client_t cl = {w->port, NULL, false};
    for (int i = 0; i < 5000 && !atomic_load(w->stop); i++) {
        hf_sku_counts_t n;
        if (hf_sku_get(&cl, "hot", &n) != 200) {
            w->errors++;
            continue;
        }
        w->reads++;
        if (n.held < 0 || n.sold < 0 || n.held + n.sold > n.stock ||
            n.available != n.stock - n.held - n.sold) {
            fprintf(stderr, "watch: stock %lld held %lld sold %lld available %lld\n", n.stock,
                    n.held, n.sold, n.available);
            w->violations++;
        }
    }
    return NULL;
}

/* Every hold ended in one state, and all who raced for it agree which. */
static int check_verdicts(const contend_t *w, int *committed_out)
{
    int committed = 0;
    for (int i = 0; i < CONTESTED; i++) {
        int wins_commit = 0, wins_release = 0, saw_commit = 0, saw_release = 0, other = 0;
        for (int t = 0; t < THREADS; t++) {
            seen_t s = w[t].seen[i];
            wins_commit += s == SEEN_COMMITTED;
            wins_release += s == SEEN_RELEASED;
            saw_commit += s == SEEN_WAS_COMMITTED;
            saw_release += s == SEEN_WAS_RELEASED;
            other += s == SEEN_OTHER || s == SEEN_NONE;
        }
        bool is_committed = wins_commit > 0 && wins_release == 0 && saw_release == 0;
        bool is_released = wins_release > 0 && wins_commit == 0 && saw_commit == 0;
        if (other != 0 || is_committed == is_released) {
            fprintf(stderr,
                    "hold %d: commits ok %d, releases ok %d, 409 committed %d, 410 released %d, "
                    "other %d\n",
                    i, wins_commit, wins_release, saw_commit, saw_release, other);
            return -1;
        }
        committed += is_committed;
    }
    *committed_out = committed;
    return 0;
}

static void test_race_of_commits_and_releases_keeps_the_invariant(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(hf_sku_put(&fx->cl, "hot", CONTESTED), 201);
    char(*ids)[HF_TEST_ID_MAX] = calloc(CONTESTED, HF_TEST_ID_MAX);
    assert_non_null(ids);
    char body[256];
    for (int i = 0; i < CONTESTED; i++) {
        snprintf(body, sizeof body,
                 "{\"customer\": \"c-%d\", \"lines\": [{\"sku\": \"hot\", \"qty\": 1}]}", i);
        assert_int_equal(hf_hold_create(&fx->cl, body, NULL, ids[i], NULL), 201);
    }
    assert_true(hf_expect_sku(&fx->cl, "hot", CONTESTED, CONTESTED, 0));
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, THREADS);
    contend_t *w = calloc(THREADS, sizeof *w);
    assert_non_null(w);
    atomic_int stop = 0;
    watch_t watcher = {.port = fx->cl.port, .stop = &stop};
    pthread_t threads[THREADS], watch_thread;
    assert_int_equal(pthread_create(&watch_thread, NULL, watch, &watcher), 0);
    for (int t = 0; t < THREADS; t++) {
        w[t] = (contend_t){.port = fx->cl.port, .index = t, .barrier = &barrier, .ids = ids};
        assert_int_equal(pthread_create(&threads[t], NULL, contend, &w[t]), 0);
    }
    int new_created = 0, new_other = 0, errors = 0;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(threads[t], NULL);
        new_created += w[t].new_created;
        new_other += w[t].new_other;
        errors += w[t].link.transport_errors;
    }
    atomic_store(&stop, 1);
    pthread_join(watch_thread, NULL);
    pthread_barrier_destroy(&barrier);
    assert_int_equal(errors, 0);
    assert_int_equal(watcher.errors, 0);
    assert_int_equal(watcher.violations, 0);
    assert_true(watcher.reads > 0);
    assert_int_equal(new_other, 0);
    int committed = 0;
    assert_int_equal(check_verdicts(w, &committed), 0);
    /* Units come free only by release, so new holds fit in what was released. */
    assert_true(new_created <= CONTESTED - committed);
    assert_true(hf_expect_sku(&fx->cl, "hot", CONTESTED, new_created, committed));
    for (int i = 0; i < CONTESTED; i++) {
        char st[32];
        assert_int_equal(hf_hold_state(&fx->cl, ids[i], st), 200);
        bool won_commit = false;
        for (int t = 0; t < THREADS; t++) {
            won_commit = won_commit || w[t].seen[i] == SEEN_COMMITTED;
        }
        assert_string_equal(st, won_commit ? "committed" : "released");
    }
    free(w);
    free(ids);
}

/* ---- race 3: one Idempotency-Key sent by everyone at once ---- */

typedef struct {
    uint16_t port;
    pthread_barrier_t *barrier;
    int status;
    char id[HF_TEST_ID_MAX];
} retry_t;

static void *retry(void *arg)
{
    retry_t *w = arg;
    hf_client_t cl = {w->port, NULL, false};
    const char *body = "{\"customer\": \"u-1\", \"lines\": [{\"sku\": \"once\", \"qty\": 3}]}";
    pthread_barrier_wait(w->barrier);
    w->status = hf_hold_create(&cl, body, "same-key", w->id, NULL);
    return NULL;
}

static void test_race_of_one_idempotency_key_applies_once(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(hf_sku_put(&fx->cl, "once", 100), 201);
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, THREADS);
    retry_t w[THREADS];
    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; t++) {
        w[t] = (retry_t){.port = fx->cl.port, .barrier = &barrier};
        assert_int_equal(pthread_create(&threads[t], NULL, retry, &w[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(threads[t], NULL);
    }
    pthread_barrier_destroy(&barrier);
    for (int t = 0; t < THREADS; t++) {
        assert_int_equal(w[t].status, 201);
        assert_string_equal(w[t].id, w[0].id);
    }
    assert_true(hf_expect_sku(&fx->cl, "once", 100, 3, 0));
}

/* The same races with four HTTP threads (setup_threads). */
static void test_race_for_the_last_units_on_4_threads(void **state)
{
    test_race_for_the_last_units_never_oversells(state);
}

static void test_race_of_commits_and_releases_on_4_threads(void **state)
{
    test_race_of_commits_and_releases_keeps_the_invariant(state);
}

static void test_race_of_one_idempotency_key_on_4_threads(void **state)
{
    test_race_of_one_idempotency_key_applies_once(state);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
#define T(name, setup_fn) cmocka_unit_test_setup_teardown(name, setup_fn, teardown)
    const struct CMUnitTest tests[] = {
        T(test_race_for_the_last_units_never_oversells, setup),
        T(test_race_of_commits_and_releases_keeps_the_invariant, setup),
        T(test_race_of_one_idempotency_key_applies_once, setup),
        T(test_race_for_the_last_units_on_4_threads, setup_threads),
        T(test_race_of_commits_and_releases_on_4_threads, setup_threads),
        T(test_race_of_one_idempotency_key_on_4_threads, setup_threads),
    };
#undef T
    return hf_tests_done(cmocka_run_group_tests_name("race", tests, NULL, NULL));
}
