/*
 * pipeline.h - the one way a request reaches the shop's state
 * (server-private).
 *
 * Every route's handler is three steps, and sometimes a fourth (router.c's
 * table):
 *
 *   parse   without the lock: read and validate the request into its
 *           arguments; on a bad request, write its error and stop there;
 *   run     under the engine lock: decide and apply (the guard), each change
 *           through pipe_apply / pipe_hold / pipe_extend, which journal it;
 *           NULL for a read;
 *   reply   under the engine lock, while the state is as run left it: write
 *           the reply. Skipped when the journal refused a change (its 503 is
 *           written), or when run refused the request itself with reasons
 *           only it had at hand (pipe_answered);
 *   finish  after the lock, if reply ran: what must not hold the engine
 *           lock, from what reply copied into the arguments (the event
 *           stream's slot, under a lock taken before the engine's; the
 *           chart's hour of points; a hold's reply, whose keyed hashes and
 *           JSON are the longest part of a hold route; the /metrics page).
 *
 * pipeline_run() is the lock → run → reply → unlock in between, and the
 * only code that takes the engine lock for a request or hands the store a
 * change. Before it unlocks it notes the journal's sequence: the reply is
 * sent (http.c) only once everything applied before it was written is
 * durable, reads and errors included, so no reply reveals what a crash
 * could still take back.
 */
#ifndef HF_PIPELINE_H
#define HF_PIPELINE_H

#include "request.h"

typedef struct {
    request_t *r;
    server_t *s;
    int64_t now_ms;   /* engine time, read once the lock is held */
    bool refused;     /* the journal refused a change: its 503 is the reply */
    bool answered;    /* run wrote the reply itself (a refusal it explains) */
} pipe_t;

typedef void (*pipe_fn)(pipe_t *p, void *args);
/* Reads and validates the request into args (REQUEST_ARGS_BYTES_MAX bytes,
 * not zeroed: parse sets what run and reply read); false after writing the
 * error. */
typedef bool (*handler_parse_fn)(request_t *r, const route_args_t *a, void *args);

/* After the lock, if reply ran: what must not hold the engine lock (a lock
 * taken before it), from what reply left in args. */
typedef void (*handler_finish_fn)(request_t *r, void *args);

/* A route's handler. parse NULL: nothing to read from the request. reply
 * NULL: parse wrote the whole reply and the shop's state has nothing to do
 * with it (pages, the health check). finish: NULL for most. */
typedef struct {
    handler_parse_fn parse;
    pipe_fn run;
    pipe_fn reply;
    handler_finish_fn finish;
} handler_t;

/* Takes the engine lock, runs run (if any) and then reply, notes the
 * sequence the reply must wait for, and unlocks. Whether reply ran. */
bool pipeline_run(request_t *r, void *args, pipe_fn run, pipe_fn reply);

/* In run: applies op at p->now_ms and journals it if it changed anything.
 * false once the journal refused it (p->refused, the 503 written): run
 * must then apply nothing more. */
bool pipe_apply(pipe_t *p, guard_op_t *op, guard_outcome_t *o);
/* The same for a hold (guard_hold) and an extension (guard_extend): *op is
 * what was applied, as journaled. */
bool pipe_hold(pipe_t *p, guard_hold_request_t *req, guard_op_t *op, guard_outcome_t *o);
bool pipe_extend(pipe_t *p, uint64_t id, int64_t ttl_ms, guard_op_t *op, guard_outcome_t *o);
/* In run: the request is refused, and run wrote why; reply is skipped. */
void pipe_answered(pipe_t *p);
/* For reads: expire what is due at p->now_ms before looking. */
void pipe_advance(pipe_t *p);

#endif
