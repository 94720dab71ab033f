/*
 * pipeline.c - lock → run → reply → note the sequence → unlock, for every
 * request that touches the shop's state (pipeline.h).
 */
#include <assert.h>
#include <stdio.h>

#include "pipeline.h"
#include "webhooks.h"

/* Escalations switched since the last look go to the log, one line each. */
static void log_escalations(server_t *s)
{
    const guard_t *g = s->guard;
    uint64_t last = guard_event_seq(g);
    if (last - s->events_logged > GUARD_EVENTS_MAX) {
        s->events_logged = last - GUARD_EVENTS_MAX; /* older ones were overwritten */
    }
    for (; s->events_logged < last; s->events_logged++) {
        guard_event_t ev;
        bool kept = guard_event(g, s->events_logged + 1, &ev);
        assert(kept);
        engine_sku_view_t v;
        engine_sku_view(guard_engine(g), ev.sku, &v);
        fprintf(stderr, "level=warn msg=\"sku %s\" sku=%.*s at_ms=%lld\n",
                ev.on ? "escalated: conversion collapsed while stock ran out"
                      : "back to normal: conversion recovered",
                (int)v.sku_len, v.sku, (long long)ev.at_ms);
    }
}

bool pipeline_run(request_t *r, void *args, pipe_fn run, pipe_fn reply)
{
    server_t *s = r->server;
    assert(reply != NULL);
    pthread_mutex_lock(&s->engine_lock);
    int64_t mono_ms = server_mono_ms();
    pipe_t p = {.r = r, .s = s, .now_ms = server_now_at_ms(s, mono_ms)};
    if (!store_owner_at(&s->store, mono_ms)) {
        /* Paused past its lease: another node may own the shop by now. */
        request_error(r, API_ERR_NOT_OWNER, "this node no longer owns the shop; retry");
        p.refused = true;
        run = NULL;
    }
    if (run != NULL) {
        run(&p, args);
    }
    bool replying = !p.refused && !p.answered;
    if (replying) {
        reply(&p, args);
    }
    webhooks_collect(s, NULL, NULL, false);
    /* Every reply waits for the journal to cover all that was applied
     * before it was written, reads and errors included. */
    r->seq = store_appended_seq_of(&s->store, &r->generation);
    log_escalations(s);
    pthread_mutex_unlock(&s->engine_lock);
    return replying;
}

/* Journals what op changed; false (and the 503) if the journal refused. */
static bool journal(pipe_t *p, const guard_op_t *op, const guard_outcome_t *o)
{
    assert(!p->refused); /* nothing is applied after a refusal */
    if (!o->changed) {
        return true;
    }
    webhooks_collect(p->s, op, o, true); /* its events commit with it */
    if (store_append(&p->s->store, op, server_mono_ms()) == 0) {
        /* Refused before anything reached the journal: a restart recovers
         * what was durable, without this change. */
        request_error(p->r, API_ERR_STORAGE_UNAVAILABLE,
                      "the journal cannot be written; this change was not kept");
        p->refused = true;
        return false;
    }
    p->r->changed = true;
    return true;
}

bool pipe_apply(pipe_t *p, guard_op_t *op, guard_outcome_t *o)
{
    op->engine.now_ms = p->now_ms;
    *o = guard_apply(p->s->guard, op);
    return journal(p, op, o);
}

bool pipe_hold(pipe_t *p, guard_hold_request_t *req, guard_op_t *op, guard_outcome_t *o)
{
    *o = guard_hold(p->s->guard, req, p->now_ms, op);
    return journal(p, op, o);
}

bool pipe_extend(pipe_t *p, uint64_t id, int64_t ttl_ms, guard_op_t *op, guard_outcome_t *o)
{
    *o = guard_extend(p->s->guard, id, ttl_ms, p->now_ms, op);
    return journal(p, op, o);
}

void pipe_answered(pipe_t *p)
{
    p->answered = true;
}

void pipe_advance(pipe_t *p)
{
    guard_advance(p->s->guard, p->now_ms);
}
