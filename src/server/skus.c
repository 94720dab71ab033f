/*
 * skus.c - /v1/skus: list, read, and put a sku's stock and own policy.
 */
#include <assert.h>
#include <string.h>

#include "chart.h"
#include "observe.h"
#include "outcome.h"
#include "defenses.h"
#include "skus.h"

void skus_write_object(server_t *s, json_out_t *j, uint32_t index)
{
    engine_sku_view_t v;
    engine_sku_view(guard_engine(s->guard), index, &v);
    jw_obj_begin(j);
    jw_kstr(j, "sku", v.sku, v.sku_len);
    jw_kint(j, "stock", v.stock);
    jw_kint(j, "held", v.held);
    jw_kint(j, "sold", v.sold);
    jw_kint(j, "available", v.available);
    defenses_write_sku(s, j, index);
    jw_obj_end(j);
}

bool skus_path(request_t *r, const route_args_t *a)
{
    if (!valid_sku(a->value[0], a->len[0])) {
        request_invalid_field(r, "sku", "sku must be 1-64 bytes of [A-Za-z0-9._:-]");
        return false;
    }
    return true;
}

/* A sku named in the path, copied out of the request. */
typedef struct {
    char sku[HF_SKU_BYTES_MAX];
    size_t sku_len;
} sku_name_t;

static void name_of(const route_args_t *a, sku_name_t *n)
{
    memcpy(n->sku, a->value[0], a->len[0]);
    n->sku_len = a->len[0];
}

/* ------------------------------------------------------------------- read */

static bool get_parse(request_t *r, const route_args_t *a, void *args)
{
    if (!skus_path(r, a)) {
        return false;
    }
    name_of(a, args);
    return true;
}

static void get_reply(pipe_t *p, void *args)
{
    const sku_name_t *n = args;
    uint32_t i;
    pipe_advance(p);
    if (!engine_sku_find(guard_engine(p->s->guard), n->sku, n->sku_len, &i)) {
        request_error(p->r, API_ERR_NOT_FOUND, "no such sku");
        return;
    }
    p->r->status = 200;
    skus_write_object(p->s, &p->r->out, i);
}

const handler_t skus_get_handler = {get_parse, NULL, get_reply, NULL};

/* ------------------------------------------------------------------- list */

typedef struct {
    const char *after; /* the query's: valid while the request is */
    int64_t limit;
} list_args_t;

/* ?after=SKU&limit=N */
static bool list_parse(request_t *r, const route_args_t *a, void *args)
{
    list_args_t *l = args;
    (void)a;
    l->after = request_value(r, MHD_GET_ARGUMENT_KIND, "after");
    if (!request_query_limit(r, HF_SKU_PAGE_MAX, HF_SKU_PAGE_DEFAULT, &l->limit)) {
        return false;
    }
    if (l->after != NULL && !valid_sku(l->after, strlen(l->after))) {
        request_invalid_field(r, "after", "after must be a sku");
        return false;
    }
    return true;
}

static void list_reply(pipe_t *p, void *args)
{
    const list_args_t *l = args;
    request_t *r = p->r;
    const engine_t *e = guard_engine(p->s->guard);
    uint32_t start = 0;
    pipe_advance(p);
    if (l->after != NULL && !engine_sku_find(e, l->after, strlen(l->after), &start)) {
        request_invalid_field(r, "after", "after names no sku");
        return;
    }
    start += l->after != NULL;
    uint32_t count = engine_sku_count(e);
    uint32_t end = count - start < (uint64_t)l->limit ? count : start + (uint32_t)l->limit;
    r->status = 200;
    jw_obj_begin(&r->out);
    jw_key(&r->out, "skus");
    jw_arr_begin(&r->out);
    for (uint32_t i = start; i < end; i++) {
        skus_write_object(p->s, &r->out, i);
    }
    jw_arr_end(&r->out);
    jw_key(&r->out, "next");
    if (end < count) {
        engine_sku_view_t v;
        engine_sku_view(e, end - 1, &v);
        jw_str(&r->out, v.sku, v.sku_len);
    } else {
        jw_null(&r->out);
    }
    jw_obj_end(&r->out);
}

const handler_t skus_list_handler = {list_parse, NULL, list_reply, NULL};

/* -------------------------------------------------------------------- put */

typedef struct {
    sku_name_t name;
    guard_op_t put;    /* ENGINE_OP_SKU_PUT; stock -1: not given */
    guard_op_t policy; /* a GUARD_OP_SKU_POLICY, or not one if none was given */
    bool created;
} put_args_t;
_Static_assert(sizeof(put_args_t) <= REQUEST_ARGS_BYTES_MAX, "a PUT's arguments fit");

static bool put_parse(request_t *r, const route_args_t *a, void *args)
{
    static const char *const fields[] = {"stock", "policy", NULL};
    put_args_t *u = args;
    *u = (put_args_t){.created = false};
    if (!skus_path(r, a)) {
        return false;
    }
    json_t *body = request_body(r, fields, true);
    u->put.kind = GUARD_OP_ENGINE;
    u->policy.kind = GUARD_OP_ENGINE; /* not a policy op unless one is given */
    u->put.engine.kind = ENGINE_OP_SKU_PUT;
    u->put.engine.u.sku_put.stock = -1;
    bool ok = body != NULL && request_int(r, body, "stock", "stock", 0, HF_STOCK_MAX, false,
                                          &u->put.engine.u.sku_put.stock);
    json_t *doc = ok ? json_object_get(body, "policy") : NULL;
    if (ok && doc != NULL) {
        memcpy(u->policy.u.sku_policy.sku, a->value[0], a->len[0]);
        u->policy.u.sku_policy.sku_len = (uint8_t)a->len[0];
        ok = defenses_sku_parse(r, doc, &u->policy);
    }
    json_decref(body);
    if (!ok) {
        return false;
    }
    name_of(a, &u->name);
    memcpy(u->put.engine.u.sku_put.sku, a->value[0], a->len[0]);
    u->put.engine.u.sku_put.sku_len = (uint8_t)a->len[0];
    observe_audit(r, &u->put);
    observe_audit(r, &u->policy);
    return true;
}

/* Applies one op of a PUT; false after writing its error. */
static bool put_step(pipe_t *p, guard_op_t *op, guard_outcome_t *o)
{
    if (!pipe_apply(p, op, o)) {
        return false; /* the journal refused it: the 503 is written */
    }
    if (o->result != GUARD_OK) {
        outcome_reply_guard(p->r, o);
        pipe_answered(p);
        return false;
    }
    return true;
}

/* The stock, and the sku's own policy if given. Stock may be left out only
 * to change the policy of a sku that exists. Everything that can refuse the
 * policy is checked before the stock is applied: a refused PUT changes
 * nothing. */
static void put_run(pipe_t *p, void *args)
{
    put_args_t *u = args;
    guard_outcome_t o = {.result = GUARD_OK};
    uint32_t index;
    bool has_stock = u->put.engine.u.sku_put.stock >= 0;
    bool exists = engine_sku_find(guard_engine(p->s->guard), u->name.sku, u->name.sku_len, &index);
    bool with_policy = u->policy.kind == GUARD_OP_SKU_POLICY;
    if (!has_stock && !(exists && with_policy)) {
        request_invalid_field(p->r, "stock",
                              "stock is required (only a sku's policy may be changed without it)");
        pipe_answered(p);
        return;
    }
    if (with_policy && !defenses_sku_check(p->r, &u->policy)) {
        pipe_answered(p);
        return;
    }
    if (has_stock) {
        if (!put_step(p, &u->put, &o)) {
            return;
        }
        u->created = o.engine.created;
    }
    if (with_policy) {
        put_step(p, &u->policy, &o);
    }
}

static void put_reply(pipe_t *p, void *args)
{
    const put_args_t *u = args;
    uint32_t index;
    bool found = engine_sku_find(guard_engine(p->s->guard), u->name.sku, u->name.sku_len, &index);
    assert(found);
    chart_note(p->s, index, p->now_ms);
    p->r->status = u->created ? 201 : 200;
    skus_write_object(p->s, &p->r->out, index);
}

const handler_t skus_put_handler = {put_parse, put_run, put_reply, NULL};
