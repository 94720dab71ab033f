/*
 * model.h - what the torture programs share: clients that change holds and
 * stock over HTTP, a model of every change the server acknowledged, the
 * settling of requests whose reply was lost, and the check that the
 * server kept every acknowledged change.
 *
 * Used by tests/torture/torture.c (one server, killed again and again) and
 * tests/cluster/cluster_torture.c (three nodes of one shop, with their
 * journal in PostgreSQL, failed in several ways).
 *
 * Workers: each on a kept-alive connection of its own, creating holds
 * (always with an Idempotency-Key), committing and releasing its own, and
 * changing the stock of its own skus, so that the model knows the last
 * acknowledged state of each. A request whose reply never came (the server
 * died, the connection dropped) is the worker's doubt: maybe applied, maybe
 * not. Settling it: a create is sent again with its key (the server answers
 * the hold it kept, or makes it now); a commit, release or stock change is
 * read back and must show the state before it or after it.
 *
 * The check: every hold the round changed, and a sample of older ones, is
 * in its acknowledged state, and every sku's stock, held and sold are the
 * model's (held: its active holds' units; sold: its committed ones') with
 * available = stock - held - sold. Holds live a day: none expires in a run.
 */
#ifndef HF_TORTURE_MODEL_H
#define HF_TORTURE_MODEL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "hf_test_http.h"

#define MODEL_SKUS 8
#define MODEL_WORKERS_MAX 16
#define MODEL_LINES_MAX 2
/* Older holds read back at each check, besides the round's. */
#define MODEL_SAMPLE 32
/* Holds live a day: nothing expires during a run. */
#define MODEL_TTL_MS 86400000
#define MODEL_STOCK_START 5000
/* A failure printed in full; past this many only counted. */
#define MODEL_REPORTS_MAX 20

typedef enum { HOLD_ACTIVE, HOLD_COMMITTED, HOLD_RELEASED } hold_state_t;

typedef struct {
    char id[HF_TEST_ID_MAX];
    uint8_t line_count;
    uint8_t sku[MODEL_LINES_MAX], qty[MODEL_LINES_MAX];
    hold_state_t state;
    uint32_t round; /* of its last acknowledged change */
} hold_t;

typedef enum { OP_NONE, OP_CREATE, OP_COMMIT, OP_RELEASE, OP_PUT } op_kind_t;

/* A request as sent: what a worker had in flight when its server died. */
typedef struct {
    op_kind_t kind;
    uint32_t hold;   /* COMMIT, RELEASE: the model's index */
    uint8_t sku;     /* PUT */
    long long stock; /* PUT: asked for */
    hold_t made;     /* CREATE: the hold asked for (no id yet) */
    char key[64];    /* CREATE: its Idempotency-Key */
    char body[256];  /* CREATE */
} op_t;

/* What the server acknowledged, and the run's figures. */
typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t acked;
    hold_t *holds;
    uint32_t hold_count, hold_capacity;
    long long stock[MODEL_SKUS];
    uint32_t round;
    uint64_t round_acks, acks_checked, holds_read, skus_read;
    uint64_t settled_kept, settled_dropped;
    uint64_t lost, disagreed, unexpected;
    uint32_t workers_running;
} model_t;

typedef struct {
    model_t *m;
    uint32_t index, workers; /* index >= workers: changes no stock */
    uint16_t port;
    uint64_t rng;
    uint64_t seed;
    uint32_t serial;  /* for keys and customers */
    uint32_t *active; /* this worker's active holds (model indexes) */
    uint32_t active_count, active_capacity;
    op_t doubt; /* sent, unanswered (kind NONE: none) */
    pthread_t thread;
} worker_t;

/* The connection the settling and the checks go through. reconnect, if
 * not NULL, is called when a request got no reply, or a 503 not_owner (a
 * node of a cluster that does not serve the shop now): it points conn at
 * the server that serves now (true) or gives up (false); without it, or
 * once it gives up, the request counts as unexpected. */
typedef struct {
    model_t *m;
    hf_conn_t conn;
    uint64_t rng;
    bool (*reconnect)(void *ctx, hf_conn_t *conn);
    void *ctx;
} checker_t;

/* The prefix of every line printed ("torture", "cluster"). */
void model_init(model_t *m, const char *program);
void model_free(model_t *m, worker_t *workers, uint32_t worker_count);

/* A failure: printed (the first MODEL_REPORTS_MAX), counted by the caller. */
void model_report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* An integer from the environment, def if unset; exits 2 if out of range. */
long long model_env_number(const char *name, long long def, long long lo, long long hi);
uint32_t model_below(uint64_t *state, uint32_t n);

/* The worker's next request. */
void model_choose(worker_t *w, op_t *op);
/* Sends op on c; 0 with the reply in r, or -1 if none came. */
int model_send(worker_t *w, hf_conn_t *c, const op_t *op, hf_response_t *r);
/* Records a reply (m->lock held): a 201/200 is an acknowledged change; a
 * refusal for want of stock changes nothing; anything else is reported. */
void model_record(worker_t *w, const op_t *op, const hf_response_t *r);

/* The skus, each with its first stock: round 0's acknowledged changes. */
int model_first_stock(checker_t *k);
/* Settles one worker's doubt (its kind is NONE afterwards). */
void model_settle_one(checker_t *k, worker_t *w);
/* Every hold the round changed, a sample of older ones, every sku. */
void model_check(checker_t *k);

/* A cluster's node that does not serve the shop now: 503 not_owner, or a
 * standby's 307 to the owner (nothing was applied; the next node may), or
 * 503 outcome_unknown from a node whose journal failed under the request
 * (it may have been applied: settled on the next node, as a dropped
 * reply is). */
bool model_not_serving(const hf_response_t *r);

#endif
