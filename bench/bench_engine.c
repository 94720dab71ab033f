/*
 * bench_engine.c - the engine alone, in process, on one core.
 *
 * 1. hold+release and hold+commit pairs per second: engine_apply() with
 *    ENGINE_OP_HOLD_CREATE (one line, qty 1, customers cycling over 10,000
 *    names), then ENGINE_OP_HOLD_RELEASE or _COMMIT of that hold; on one hot
 *    sku and on 100,000 skus picked at random. now_ms follows the monotonic
 *    clock (read every 256 pairs), as the server's does. Finished holds are
 *    retained, so after holds_max creates every create evicts the oldest
 *    finished hold: "fresh" is the rate while the table fills, "steady" the
 *    rate once it is full (what a long-running server sees).
 * 2. Engine memory per active one-line hold: RSS growth over creating
 *    1,000,000 active holds (TTL one hour, so none expires), divided by the
 *    count; customers cycling over 10,000 names, or one distinct customer
 *    per hold; with holds_max at the server's default (10M) and at 1M.
 *
 * Usage: bench_engine [SECONDS [FILTER]]   (seconds per throughput case, default
 *        2; FILTER runs only the cases whose name contains it, e.g. "100k",
 *        "memory")
 * Output: human-readable lines, plus "HF_ENGINE key=value ..." lines.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "guard.h"

#define NAMES 10000u
#define MANY_SKUS 100000u
#define MEM_HOLDS 1000000u

typedef struct {
    char text[24];
    uint8_t len;
} name_t;

static name_t *customers; /* "c-0" .. "c-9999" */
static name_t *skus;      /* "s-0" .. "s-99999" */

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long rss_bytes(void)
{
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL || fscanf(f, "%ld %ld", &size, &resident) != 2) {
        fprintf(stderr, "bench_engine: cannot read /proc/self/statm\n");
        exit(1);
    }
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static inline uint64_t rng(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* "s-N" into out (no NUL), as names_make() spells it; returns the length. */
static inline uint8_t sku_text(char *out, uint32_t n)
{
    char digits[10];
    int k = 0;
    do {
        digits[k++] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0);
    out[0] = 's';
    out[1] = '-';
    for (int i = 0; i < k; i++) {
        out[2 + i] = digits[k - 1 - i];
    }
    return (uint8_t)(2 + k);
}

static void names_make(name_t **out, const char *prefix, uint32_t count)
{
    *out = calloc(count, sizeof **out);
    if (*out == NULL) {
        exit(1);
    }
    for (uint32_t i = 0; i < count; i++) {
        int n = snprintf((*out)[i].text, sizeof (*out)[i].text, "%s%u", prefix, i);
        (*out)[i].len = (uint8_t)n;
    }
}

static void engine_start(engine_t *e, uint32_t holds_max, uint32_t nskus, int64_t now_ms)
{
    engine_config_t c = engine_config_default();
    c.holds_max = holds_max;
    if (engine_init(e, &c, now_ms) != 0) {
        fprintf(stderr, "bench_engine: engine_init failed\n");
        exit(1);
    }
    engine_op_t *op = calloc(1, sizeof *op);
    op->kind = ENGINE_OP_SKU_PUT;
    op->now_ms = now_ms;
    op->u.sku_put.stock = HF_STOCK_MAX;
    for (uint32_t i = 0; i < (nskus == 0 ? 1 : nskus); i++) {
        const char *id = nskus == 0 ? "hot" : skus[i].text;
        size_t len = nskus == 0 ? 3 : skus[i].len;
        memcpy(op->u.sku_put.sku, id, len);
        op->u.sku_put.sku_len = (uint8_t)len;
        engine_outcome_t o = engine_apply(e, op);
        if (o.result != ENGINE_OK) {
            fprintf(stderr, "bench_engine: sku put failed\n");
            exit(1);
        }
    }
    free(op);
}

/* Runs create + (release|commit) pairs for `seconds` after `warm` pairs;
 * returns pairs per second of the measured part. */
static double run_pairs(engine_t *e, uint32_t nskus, engine_op_kind_t second, uint64_t warm,
                        double seconds, double *warm_rate)
{
    engine_op_t *create = calloc(1, sizeof *create);
    engine_op_t fin = {.kind = second};
    create->kind = ENGINE_OP_HOLD_CREATE;
    engine_hold_create_t *c = &create->u.hold_create;
    c->ttl_ms = 600000;
    c->line_count = 1;
    c->lines[0].qty = 1;
    if (nskus == 0) {
        memcpy(c->lines[0].sku, "hot", 3);
        c->lines[0].sku_len = 3;
    }
    int64_t base_ms = e->now_ms - mono_ms();
    uint64_t pairs = 0, measured = 0;
    double t_warm = mono_s(), t0 = 0, deadline = 0;
    uint32_t name = 0;
    bool measuring = warm == 0;
    if (measuring) {
        t0 = mono_s();
        deadline = t0 + seconds;
    }
    for (;;) {
        int64_t now = base_ms + mono_ms();
        create->now_ms = now;
        fin.now_ms = now;
        for (int k = 0; k < 256; k++) {
            const name_t *n = &customers[name];
            name = name + 1 == NAMES ? 0 : name + 1;
            memcpy(c->customer, n->text, n->len);
            c->customer_len = n->len;
            if (nskus != 0) {
                /* Written on the spot: a table of names would add a cache
                 * miss of the benchmark's own to every pair. */
                c->lines[0].sku_len = sku_text(c->lines[0].sku, (uint32_t)(rng() % nskus));
            }
            engine_outcome_t o = engine_apply(e, create);
            if (o.result != ENGINE_OK) {
                fprintf(stderr, "bench_engine: create: %s\n", engine_result_name(o.result));
                exit(1);
            }
            fin.u.hold.hold_id = o.hold_id;
            o = engine_apply(e, &fin);
            if (o.result != ENGINE_OK || !o.changed) {
                fprintf(stderr, "bench_engine: release/commit: %s\n",
                        engine_result_name(o.result));
                exit(1);
            }
        }
        pairs += 256;
        if (!measuring) {
            if (pairs >= warm) {
                *warm_rate = (double)pairs / (mono_s() - t_warm);
                measuring = true;
                t0 = mono_s();
                deadline = t0 + seconds;
            }
            continue;
        }
        measured += 256;
        if ((measured & 0xffff) == 0 && mono_s() >= deadline) {
            break;
        }
    }
    double rate = (double)measured / (mono_s() - t0);
    free(create);
    return rate;
}

static const char *filter;
static double seconds_per_case;

static bool selected(const char *label)
{
    return filter == NULL || strstr(label, filter) != NULL;
}

static void bench_pairs(const char *label, uint32_t nskus, engine_op_kind_t second,
                        double seconds)
{
    if (!selected(label)) {
        return;
    }
    engine_t e;
    uint32_t holds_max = HF_HOLDS_MAX_DEFAULT;
    engine_start(&e, holds_max, nskus, 1800000000000LL);
    double fresh = 0;
    /* Warm up past holds_max creates, so the table is full of finished holds
     * and every create evicts one: the steady state. */
    double steady = run_pairs(&e, nskus, second, holds_max + 1024ull, seconds, &fresh);
    engine_stats_t st = engine_stats(&e);
    if (!engine_check(&e)) {
        fprintf(stderr, "bench_engine: engine_check failed after %s\n", label);
        exit(1);
    }
    printf("  %-28s fresh %6.2f M pairs/s   steady %6.2f M pairs/s  (%.0f ns/pair; "
           "evicted %llu)\n",
           label, fresh / 1e6, steady / 1e6, 1e9 / steady, (unsigned long long)st.holds_evicted);
    printf("HF_ENGINE case=%s skus=%u holds_max=%u fresh_pairs_per_s=%.0f "
           "steady_pairs_per_s=%.0f ns_per_pair=%.1f\n",
           label, nskus == 0 ? 1 : nskus, holds_max, fresh, steady, 1e9 / steady);
    fflush(stdout);
    engine_deinit(&e);
}

static void bench_memory(uint32_t holds_max, bool distinct)
{
    if (!selected("memory")) {
        return;
    }
    engine_t e;
    int64_t now = 1800000000000LL;
    engine_start(&e, holds_max, 0, now);
    engine_op_t *create = calloc(1, sizeof *create);
    create->kind = ENGINE_OP_HOLD_CREATE;
    engine_hold_create_t *c = &create->u.hold_create;
    c->ttl_ms = 3600000;
    c->line_count = 1;
    c->lines[0].qty = 1;
    memcpy(c->lines[0].sku, "hot", 3);
    c->lines[0].sku_len = 3;
    long before = rss_bytes();
    for (uint32_t i = 0; i < MEM_HOLDS; i++) {
        if ((i & 1023) == 0) {
            now++; /* 1,000 ms over the run: nothing expires */
        }
        create->now_ms = now;
        if (distinct) {
            c->customer_len = (uint8_t)snprintf(c->customer, sizeof c->customer, "c-%u", i);
        } else {
            const name_t *n = &customers[i % NAMES];
            memcpy(c->customer, n->text, n->len);
            c->customer_len = n->len;
        }
        engine_outcome_t o = engine_apply(&e, create);
        if (o.result != ENGINE_OK) {
            fprintf(stderr, "bench_engine: create: %s\n", engine_result_name(o.result));
            exit(1);
        }
    }
    long after = rss_bytes();
    engine_stats_t st = engine_stats(&e);
    assert(st.holds_active == MEM_HOLDS);
    double per = (double)(after - before) / MEM_HOLDS;
    const char *variant = distinct ? "distinct" : "cycling10k";
    printf("  %-10s customers, holds_max %8u: %7.1f bytes/active hold (RSS +%.1f MiB, "
           "%u names)\n",
           distinct ? "distinct" : "10,000", holds_max, per,
           (double)(after - before) / (1 << 20), e.name_count);
    printf("HF_ENGINE case=memory customers=%s holds_max=%u holds=%u rss_growth_bytes=%ld "
           "bytes_per_hold=%.1f\n",
           variant, holds_max, MEM_HOLDS, after - before, per);
    fflush(stdout);
    free(create);
    engine_deinit(&e);
}

/* The guard's hold path: the same pairs through guard_hold (decide, then
 * apply) and a commit through guard_apply, with the default policy or with
 * every defense off. Every pair is a new buyer (a flash sale's crowd) with an
 * IPv4 address of its own /24 among 65,536, so each hold is checked against
 * two identities as a shop's would be. They buy: under the default policy
 * none of them is refused (an address that only ever holds and releases
 * would, rightly, become suspect and be challenged). */
static double run_guard_pairs(guard_t *g, double seconds)
{
    guard_hold_request_t *req = calloc(1, sizeof *req);
    guard_op_t *op = calloc(1, sizeof *op);
    guard_op_t release = {.kind = GUARD_OP_ENGINE};
    engine_hold_create_t *c = &req->create;
    c->line_count = 1;
    c->lines[0].qty = 1;
    memcpy(c->lines[0].sku, "hot", 3);
    c->lines[0].sku_len = 3;
    release.engine.kind = ENGINE_OP_HOLD_COMMIT;
    int64_t base_ms = engine_now_ms(guard_engine(g)) - mono_ms();
    uint64_t pairs = 0;
    uint32_t name = 0;
    double t0 = mono_s(), deadline = t0 + seconds;
    while (mono_s() < deadline) {
        int64_t now = base_ms + mono_ms();
        for (int k = 0; k < 256; k++) {
            c->customer_len = (uint8_t)snprintf(c->customer, sizeof c->customer, "b-%u", name);
            c->ip_len = (uint8_t)snprintf(c->ip, sizeof c->ip, "10.%u.%u.7", name / 256 % 256,
                                          name % 256);
            name++;
            guard_outcome_t o = guard_hold(g, req, now, op);
            if (o.result != GUARD_OK) {
                fprintf(stderr, "bench_engine: guard hold: %s (rule %s)\n",
                        guard_result_name(o.result), policy_rule_name(o.decision.rule));
                exit(1);
            }
            release.engine.now_ms = now;
            release.engine.u.hold.hold_id = o.engine.hold_id;
            o = guard_apply(g, &release);
            if (o.result != GUARD_OK || !o.changed) {
                fprintf(stderr, "bench_engine: guard commit failed\n");
                exit(1);
            }
        }
        pairs += 256;
    }
    free(req);
    free(op);
    return (double)pairs / (mono_s() - t0);
}

static void bench_guard(const char *label, bool defenses)
{
    if (!selected(label)) {
        return;
    }
    guard_config_t config = guard_config_default();
    /* Every buyer is new, and stays known for the purchase window: room for
     * a few seconds of them. */
    config.identities_max = 16000000;
    config.customer_skus_max = 16000000;
    guard_t *g = guard_create(&config, 1800000000000LL);
    if (g == NULL) {
        fprintf(stderr, "bench_engine: guard_create failed\n");
        exit(1);
    }
    guard_op_t op = {.kind = GUARD_OP_POLICY_PUT, .u.policy = policy_config_default()};
    op.engine.now_ms = engine_now_ms(guard_engine(g));
    if (!defenses) {
        policy_config_t *p = &op.u.policy;
        p->quantity_enabled = p->identity_enabled = p->budget_enabled = 0;
        p->reputation_enabled = p->challenge_enabled = p->escalation_enabled = 0;
        p->waitlist_enabled = p->ttl_adaptive = 0;
        p->newcomer_enabled = p->reclaim_enabled = p->ttl_pay_floor = 0;
        p->hold_share_held_pct_max = 100;
    }
    guard_apply(g, &op);
    op = (guard_op_t){.kind = GUARD_OP_ENGINE};
    op.engine = (engine_op_t){.kind = ENGINE_OP_SKU_PUT, .now_ms = engine_now_ms(guard_engine(g))};
    memcpy(op.engine.u.sku_put.sku, "hot", 3);
    op.engine.u.sku_put.sku_len = 3;
    op.engine.u.sku_put.stock = HF_STOCK_MAX;
    guard_apply(g, &op);
    double rate = run_guard_pairs(g, seconds_per_case);
    if (!guard_check(g)) {
        fprintf(stderr, "bench_engine: guard_check failed after %s\n", label);
        exit(1);
    }
    printf("  %-28s %6.2f M pairs/s  (%.0f ns/pair)\n", label, rate / 1e6, 1e9 / rate);
    printf("HF_ENGINE case=%s pairs_per_s=%.0f ns_per_pair=%.1f\n", label, rate, 1e9 / rate);
    fflush(stdout);
    guard_destroy(g);
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    filter = argc > 2 ? argv[2] : NULL;
    if (seconds <= 0 || seconds > 60) {
        fprintf(stderr, "usage: bench_engine [SECONDS per case, 0-60] [FILTER]\n");
        return 2;
    }
    names_make(&customers, "c-", NAMES);
    names_make(&skus, "s-", MANY_SKUS);

    printf("engine throughput, one core (asserts on, as built by make), %.1f s per case\n",
           seconds);
    bench_pairs("hold+release_hot_sku", 0, ENGINE_OP_HOLD_RELEASE, seconds);
    bench_pairs("hold+release_100k_skus", MANY_SKUS, ENGINE_OP_HOLD_RELEASE, seconds);
    bench_pairs("hold+commit_hot_sku", 0, ENGINE_OP_HOLD_COMMIT, seconds);
    bench_pairs("hold+commit_100k_skus", MANY_SKUS, ENGINE_OP_HOLD_COMMIT, seconds);
    seconds_per_case = seconds;
    printf("guard (engine + defenses) throughput, one core, hot sku, a new buyer per hold\n");
    bench_guard("guard_hold+commit_off", false);
    bench_guard("guard_hold+commit_default", true);

    printf("engine memory per active one-line hold (%u holds; record sizes: hold %zu B, "
           "heap entry %zu B, interned name %zu B)\n",
           MEM_HOLDS, sizeof(engine_hold_t), sizeof(int64_t) + sizeof(uint32_t),
           sizeof(engine_name_t));
    bench_memory(HF_HOLDS_MAX_DEFAULT, false);
    bench_memory(HF_HOLDS_MAX_DEFAULT, true);
    bench_memory(MEM_HOLDS, false);
    bench_memory(MEM_HOLDS, true);
    free(customers);
    free(skus);
    return 0;
}
