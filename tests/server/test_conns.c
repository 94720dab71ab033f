/*
 * test_conns.c - the connection table (src/server/conns.h) against a model:
 * random opens from a few addresses, hand-overs, phase moves, closes and
 * reaps, and after every step the table's answer equals the model's and
 * conns_check() holds.
 *
 * White-box: it drives conns.h directly, with made-up fd numbers that are
 * not open in this process (the reaper's shutdown(2) of one fails
 * harmlessly with EBADF). Every seed is printed; HF_SEED=N runs that one.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "hf_mix.h"
#include "conns.h"

#define MAX 8
#define RESERVE 3
#define PER_ADDRESS 3
#define ADDRESSES 6
#define FD_FIRST 3000 /* far above what this process has open */
#define FDS 40
#define HEAD_MS 100
#define BODY_MS 200
#define IDLE_MS 300
#define STEPS 20000
#define SEEDS 4

typedef struct {
    bool used;
    uint32_t index; /* its slot */
    int address;
    conns_admission_t pool;
    bool waiting, shut, released;
    conn_phase_t phase;
    int64_t deadline_ms;
    conn_t *slot; /* conns_started's answer, once handed over */
} model_conn_t;

typedef struct {
    uint64_t seed, rng;
    long step;
    int64_t now_ms;
    conns_t t;
    model_conn_t conns[FDS]; /* by fd - FD_FIRST */
} drive_t;

static uint64_t next(drive_t *d)
{
    return hf_splitmix64(&d->rng);
}

static void where(const drive_t *d, const char *what)
{
    fprintf(stderr, "seed=%llu step=%ld now=%lld: %s (replay with HF_SEED=%llu)\n",
            (unsigned long long)d->seed, d->step, (long long)d->now_ms, what,
            (unsigned long long)d->seed);
}

/* ---- the model's answers ---- */

static int address_count(const drive_t *d, int address)
{
    int n = 0;
    for (int i = 0; i < FDS; i++) {
        n += d->conns[i].used && !d->conns[i].released && d->conns[i].address == address;
    }
    return n;
}

static void pool_counts(const drive_t *d, conns_admission_t pool, int *used, int *live)
{
    *used = *live = 0;
    for (int i = 0; i < FDS; i++) {
        const model_conn_t *c = &d->conns[i];
        if (c->used && c->pool == pool) {
            (*used)++;
            *live += !c->shut;
        }
    }
}

/* The reserve connection the table evicts: the oldest still in HEAD (the
 * earliest deadline; on a tie, the lowest slot). -1: none. */
static int victim(const drive_t *d)
{
    int best = -1;
    for (int i = 0; i < FDS; i++) {
        const model_conn_t *c = &d->conns[i];
        if (!c->used || c->pool != CONNS_RESERVE || c->shut || c->phase != CONN_HEAD) {
            continue;
        }
        const model_conn_t *b = best < 0 ? NULL : &d->conns[best];
        if (b == NULL || c->deadline_ms < b->deadline_ms ||
            (c->deadline_ms == b->deadline_ms && c->index < b->index)) {
            best = i;
        }
    }
    return best;
}

static conns_admission_t expected_admission(drive_t *d, int address, int *evicted)
{
    int used, live;
    *evicted = -1;
    if (address_count(d, address) >= PER_ADDRESS) {
        return CONNS_REFUSED;
    }
    pool_counts(d, CONNS_SHOP, &used, &live);
    if (live < MAX && used < MAX) {
        return CONNS_SHOP;
    }
    pool_counts(d, CONNS_RESERVE, &used, &live);
    if (used < 2 * RESERVE && live < RESERVE) {
        return CONNS_RESERVE;
    }
    if (used < 2 * RESERVE && (*evicted = victim(d)) >= 0) {
        return CONNS_RESERVE;
    }
    return CONNS_REFUSED;
}

/* ---- steps ---- */

static void step_open(drive_t *d)
{
    int i = (int)(next(d) % FDS);
    if (d->conns[i].used) {
        return;
    }
    int address = (int)(next(d) % ADDRESSES);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(0x0a000000u + (uint32_t)address);
    int evicted;
    conns_admission_t want = expected_admission(d, address, &evicted);
    conns_refusal_t why;
    uint32_t index;
    conns_admission_t got = conns_open(&d->t, FD_FIRST + i, (struct sockaddr *)&a, sizeof a,
                                       d->now_ms, &why, &index);
    if (got != want) {
        where(d, "open");
    }
    assert_int_equal(got, want);
    if (evicted >= 0) {
        d->conns[evicted].shut = true;
        d->conns[evicted].phase = CONN_CLOSING;
    }
    if (got != CONNS_REFUSED) {
        d->conns[i] = (model_conn_t){.used = true, .index = index, .address = address,
                                     .pool = got, .waiting = true, .phase = CONN_HEAD,
                                     .deadline_ms = d->now_ms + HEAD_MS};
    }
}

static void step_hand_over(drive_t *d, model_conn_t *c, int fd)
{
    conns_hand_over(&d->t, c->index);
    c->waiting = false;
    c->slot = conns_started(&d->t, fd);
    assert_non_null(c->slot);
    assert_int_equal(conn_reserve(c->slot), c->pool == CONNS_RESERVE);
}

static void step_enter(drive_t *d, model_conn_t *c)
{
    static const conn_phase_t phases[] = {CONN_HEAD, CONN_BODY, CONN_BUSY, CONN_IDLE};
    conn_phase_t p = phases[next(d) % 4];
    conn_enter(&d->t, c->slot, p, d->now_ms);
    if (c->phase == CONN_CLOSING || (p == CONN_HEAD && c->phase != CONN_IDLE)) {
        return; /* no change: see conn_enter */
    }
    c->phase = p;
    c->deadline_ms = p == CONN_HEAD   ? d->now_ms + HEAD_MS
                     : p == CONN_BODY ? d->now_ms + BODY_MS
                     : p == CONN_IDLE ? d->now_ms + IDLE_MS
                                      : 0;
}

static void step_reap(drive_t *d)
{
    d->now_ms += (int64_t)(next(d) % 150);
    uint32_t want = 0;
    for (int i = 0; i < FDS; i++) {
        model_conn_t *c = &d->conns[i];
        bool timed = c->phase == CONN_HEAD || c->phase == CONN_BODY || c->phase == CONN_IDLE;
        if (c->used && !c->shut && timed && c->deadline_ms <= d->now_ms) {
            c->shut = true;
            c->phase = CONN_CLOSING;
            want++;
        }
    }
    uint32_t got = conns_reap(&d->t, d->now_ms);
    if (got != want) {
        where(d, "reap");
    }
    assert_int_equal(got, want);
}

/* One connection's own step: hand-over, a phase, its last reply, its close. */
static void step_one(drive_t *d)
{
    int i = (int)(next(d) % FDS);
    model_conn_t *c = &d->conns[i];
    if (!c->used) {
        return;
    }
    uint64_t r = next(d) % 8;
    if (r < 2 || c->shut) { /* a shut-down connection ends soon */
        conns_closed(&d->t, FD_FIRST + i);
        *c = (model_conn_t){0};
    } else if (c->waiting) {
        step_hand_over(d, c, FD_FIRST + i);
    } else if (r < 3 && !c->released) {
        conns_closing(&d->t, c->slot);
        c->released = true;
    } else {
        step_enter(d, c);
    }
}

static void check(drive_t *d)
{
    if (!conns_check(&d->t)) {
        where(d, "conns_check");
    }
    assert_true(conns_check(&d->t));
    conns_stats_t st = conns_stats(&d->t);
    int shop, reserve, live, in_library = 0;
    pool_counts(d, CONNS_SHOP, &shop, &live);
    pool_counts(d, CONNS_RESERVE, &reserve, &live);
    for (int i = 0; i < FDS; i++) {
        in_library += d->conns[i].used && !d->conns[i].waiting;
    }
    assert_int_equal(st.open_shop, shop);
    assert_int_equal(st.open_reserve, reserve);
    assert_int_equal(st.in_library, in_library);
}

static void drive(uint64_t seed)
{
    drive_t *d = calloc(1, sizeof *d);
    assert_non_null(d);
    d->seed = d->rng = seed;
    d->now_ms = 1000000;
    conns_config_t c = {.max = MAX, .reserve = RESERVE, .per_address_max = PER_ADDRESS,
                        .fd_limit = FD_FIRST + FDS, .head_ms = HEAD_MS, .body_ms = BODY_MS,
                        .idle_ms = IDLE_MS, .seed = {seed, ~seed}};
    assert_int_equal(conns_init(&d->t, &c), 0);
    for (d->step = 0; d->step < STEPS; d->step++) {
        uint64_t r = next(d) % 10;
        if (r < 4) {
            step_open(d);
        } else if (r < 9) {
            step_one(d);
        } else {
            step_reap(d);
        }
        check(d);
    }
    conns_stats_t st = conns_stats(&d->t);
    printf("seed=%llu: %llu accepted, %llu refused per address, %llu full, %llu evicted, "
           "%llu reaped at the head deadline\n",
           (unsigned long long)seed, (unsigned long long)st.accepted,
           (unsigned long long)st.refused[CONNS_REFUSED_ADDRESS],
           (unsigned long long)st.refused[CONNS_REFUSED_FULL],
           (unsigned long long)st.closed[CONNS_CLOSED_EVICTED],
           (unsigned long long)st.closed[CONNS_CLOSED_HEAD]);
    /* Every path was taken, or the drive proves less than it claims. */
    assert_true(st.refused[CONNS_REFUSED_ADDRESS] > 0 && st.refused[CONNS_REFUSED_FULL] > 0);
    assert_true(st.closed[CONNS_CLOSED_EVICTED] > 0 && st.closed[CONNS_CLOSED_HEAD] > 0);
    conns_deinit(&d->t);
    free(d);
}

static void test_the_table_answers_as_its_model(void **state)
{
    (void)state;
    const char *fixed = getenv("HF_SEED");
    if (fixed != NULL && *fixed != '\0') {
        drive(strtoull(fixed, NULL, 0));
        return;
    }
    uint64_t base = (uint64_t)time(NULL);
    for (uint64_t i = 0; i < SEEDS; i++) {
        drive(base * SEEDS + i);
    }
}

/* A connection that moved on is not reaped for its old deadline, and one
 * shut down stays so whatever its request does next. */
static void test_a_deadline_met_is_not_reaped(void **state)
{
    (void)state;
    conns_t t;
    conns_config_t c = {.max = 2, .fd_limit = FD_FIRST + 2, .head_ms = HEAD_MS,
                        .body_ms = BODY_MS, .idle_ms = IDLE_MS};
    assert_int_equal(conns_init(&t, &c), 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    conns_refusal_t why;
    uint32_t index;
    assert_int_equal(conns_open(&t, FD_FIRST, (struct sockaddr *)&a, sizeof a, 0, &why, &index),
                     CONNS_SHOP);
    conns_hand_over(&t, index);
    conn_t *slot = conns_started(&t, FD_FIRST);
    assert_non_null(slot);
    conn_enter(&t, slot, CONN_BUSY, HEAD_MS - 1); /* the head came in time */
    assert_int_equal(conns_reap(&t, 10 * IDLE_MS), 0);
    conn_enter(&t, slot, CONN_IDLE, 10 * IDLE_MS);
    assert_int_equal(conns_reap(&t, 11 * IDLE_MS), 1); /* idle too long */
    conn_enter(&t, slot, CONN_BODY, 11 * IDLE_MS);     /* too late: still closing */
    assert_int_equal(conns_reap(&t, 100 * IDLE_MS), 0);
    assert_int_equal(conns_stats(&t).closed[CONNS_CLOSED_IDLE], 1);
    conns_closed(&t, FD_FIRST);
    assert_null(conns_started(&t, FD_FIRST));
    assert_true(conns_check(&t));
    conns_deinit(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_table_answers_as_its_model),
        cmocka_unit_test(test_a_deadline_met_is_not_reaped),
    };
    return cmocka_run_group_tests_name("conns", tests, NULL, NULL);
}
