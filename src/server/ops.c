/*
 * ops.c - /healthz (no lock: it must answer while the engine is busy) and
 * /metrics (the figures, once what they count is durable).
 */
#include "metrics_page.h"
#include "ops.h"

static bool healthz_parse(request_t *r, const route_args_t *a, void *args)
{
    (void)a;
    (void)args;
    bool failed = store_failed(&r->server->store);
    r->status = failed ? 503 : 200;
    jw_obj_begin(&r->out);
    jw_kcstr(&r->out, "status", failed ? "storage_unavailable" : "ok");
    jw_obj_end(&r->out);
    return true;
}

const handler_t ops_healthz_handler = {healthz_parse, NULL, NULL, NULL};

/* The engine's and the defenses' figures are read under the lock, as one
 * state, and, like every reply, wait until what they count is durable; the
 * page is written after the lock, so a scrape holds up no hold. */
static void metrics_reply(pipe_t *p, void *args)
{
    pipe_advance(p);
    metrics_collect(p->s, args);
}

static void metrics_finish(request_t *r, void *args)
{
    r->status = 200;
    r->text = true;
    metrics_render(r->server, args, &r->out);
}

_Static_assert(sizeof(metrics_figures_t) <= REQUEST_ARGS_BYTES_MAX, "the figures fit");
const handler_t ops_metrics_handler = {NULL, NULL, metrics_reply, metrics_finish};
