/*
 * waitlists.c - a sku's waitlist: buyers who wait their turn are offered a
 * hold when units come back (the guard decides; guard/guard.h).
 */
#include <stdio.h>
#include <string.h>

#include "holds.h"
#include "outcome.h"
#include "skus.h"
#include "waitlists.h"


/* The entry; a join's reply (joined) carries the entry's secret, and an
 * offer its hold's: only the entry's owner (or the admin) reads them. */
static void write_wait(request_t *r, const guard_wait_view_t *w, int64_t now_ms, bool joined)
{
    const guard_t *g = r->server->guard;
    json_out_t *j = &r->out;
    char id[16];
    size_t id_len = guard_wait_id_format(w->id, id);
    engine_sku_view_t v;
    engine_sku_view(guard_engine(g), w->sku_index, &v);
    jw_obj_begin(j);
    jw_kstr(j, "id", id, id_len);
    if (joined) {
        char secret[HOLDKEY_SECRET_TEXT_MAX + 1];
        size_t secret_len = holdkey_secret(&r->server->holdkey, HOLDKEY_WAIT, w->id, secret);
        jw_kstr(j, "secret", secret, secret_len);
    }
    jw_kstr(j, "sku", v.sku, v.sku_len);
    jw_kstr(j, "customer", w->customer, w->customer_len);
    jw_kint(j, "qty", w->qty);
    jw_kcstr(j, "state", guard_wait_state_name(w->state));
    if (w->state == GUARD_WAIT_WAITING) {
        jw_kint(j, "position", w->position);
    }
    jw_key(j, "created_at");
    jw_time(j, w->created_ms);
    if (w->state != GUARD_WAIT_WAITING && w->state != GUARD_WAIT_OFFERED) {
        jw_key(j, "finished_at");
        jw_time(j, w->finished_ms);
    }
    engine_hold_view_t h;
    if (w->hold_id != 0 && engine_hold_view(guard_engine(g), w->hold_id, &h) == ENGINE_OK) {
        jw_key(j, "hold");
        holds_write(r->server, j, &h, now_ms, true);
    }
    jw_obj_end(j);
}

static void reply_wait(request_t *r, uint64_t id, int status, int64_t now_ms)
{
    guard_wait_view_t w;
    if (!guard_wait_view(r->server->guard, id, &w)) {
        request_error(r, API_ERR_NOT_FOUND, "no such waitlist entry (or it was reused)");
        return;
    }
    r->status = status;
    write_wait(r, &w, now_ms, status == 201);
}

/* The optional ip and fingerprint of a join: its offer will count against
 * them as a hold would. */
static bool wait_join_who(request_t *r, json_t *body, guard_op_t *op)
{
    json_t *ip = json_object_get(body, "ip");
    const char *fingerprint;
    size_t fingerprint_len;
    if (ip != NULL && (!json_is_string(ip) || !valid_ip(json_string_value(ip)))) {
        request_invalid_field(r, "ip", "ip must be an IPv4 or IPv6 address");
        return false;
    }
    if (!request_name(r, body, "fingerprint", false, &fingerprint, &fingerprint_len)) {
        return false;
    }
    if (ip != NULL) {
        op->u.wait_join.ip_len = (uint8_t)json_string_length(ip);
        memcpy(op->u.wait_join.ip, json_string_value(ip), op->u.wait_join.ip_len);
    }
    if (fingerprint != NULL) {
        op->u.wait_join.fingerprint_len = (uint8_t)fingerprint_len;
        memcpy(op->u.wait_join.fingerprint, fingerprint, fingerprint_len);
    }
    return true;
}

/* ------------------------------------------------------------------- join */

typedef struct {
    guard_op_t op;
    guard_outcome_t o;
} join_args_t;
_Static_assert(sizeof(join_args_t) <= REQUEST_ARGS_BYTES_MAX, "a join's arguments fit");

static bool join_parse(request_t *r, const route_args_t *a, void *args)
{
    static const char *const fields[] = {"customer", "qty", "ip", "fingerprint", NULL};
    join_args_t *j = args;
    guard_op_t *op = &j->op;
    if (!skus_path(r, a)) {
        return false;
    }
    json_t *body = request_body(r, fields, true);
    const char *customer;
    size_t customer_len;
    int64_t qty = 1;
    memset(op, 0, sizeof *op);
    op->kind = GUARD_OP_WAIT_JOIN;
    bool ok = body != NULL &&
              request_name(r, body, "customer", true, &customer, &customer_len) &&
              request_int(r, body, "qty", "qty", 1, HF_QTY_MAX, false, &qty) &&
              wait_join_who(r, body, op) &&
              /* a join retried with its key answers the entry it made */
              request_idem_key(r, op->u.wait_join.idem_key, &op->u.wait_join.idem_key_len);
    if (ok) {
        memcpy(op->u.wait_join.customer, customer, customer_len);
        op->u.wait_join.customer_len = (uint8_t)customer_len;
    }
    json_decref(body);
    if (!ok) {
        return false;
    }
    memcpy(op->u.wait_join.sku, a->value[0], a->len[0]);
    op->u.wait_join.sku_len = (uint8_t)a->len[0];
    op->u.wait_join.qty = (uint32_t)qty;
    return true;
}

static void join_run(pipe_t *p, void *args)
{
    join_args_t *j = args;
    pipe_apply(p, &j->op, &j->o);
}

static void join_reply(pipe_t *p, void *args)
{
    const join_args_t *j = args;
    const guard_outcome_t *o = &j->o;
    if (o->result == GUARD_ENGINE && o->engine.result == ENGINE_SKU_NOT_FOUND) {
        request_error(p->r, API_ERR_NOT_FOUND, "no such sku");
    } else if (o->result == GUARD_DENIED) {
        outcome_reply_decision(p->r, &o->decision, 0, NULL, p->now_ms);
    } else if (o->result != GUARD_OK) {
        outcome_reply_guard(p->r, o);
    } else {
        p->r->replayed = o->replayed ? "true" : NULL;
        reply_wait(p->r, o->id, 201, p->now_ms);
    }
}

const handler_t waitlists_join_handler = {join_parse, join_run, join_reply, NULL};

/* ---------------------------------------------------------- one entry by id */

/* The entry named in the path, if the request may touch it; false after a
 * 404 or a 403 (request_secret_allows). */
static bool path_wait(request_t *r, const route_args_t *a, uint64_t *id)
{
    if (!guard_wait_id_parse(a->value[0], a->len[0], id)) {
        request_error(r, API_ERR_NOT_FOUND, "no such waitlist entry");
        return false;
    }
    return request_secret_allows(r, HOLDKEY_WAIT, *id);
}

static bool get_parse(request_t *r, const route_args_t *a, void *args)
{
    return path_wait(r, a, args);
}

static void get_reply(pipe_t *p, void *args)
{
    pipe_advance(p);
    reply_wait(p->r, *(const uint64_t *)args, 200, p->now_ms);
}

const handler_t waitlists_get_handler = {get_parse, NULL, get_reply, NULL};

typedef struct {
    guard_op_t op;
    guard_outcome_t o;
    bool again; /* it was cancelled already: nothing to apply */
} cancel_args_t;
_Static_assert(sizeof(cancel_args_t) <= REQUEST_ARGS_BYTES_MAX, "a cancel's arguments fit");

static bool cancel_parse(request_t *r, const route_args_t *a, void *args)
{
    static const char *const fields[] = {NULL};
    cancel_args_t *c = args;
    json_t *body = request_body(r, fields, false);
    if (body == NULL) {
        return false;
    }
    json_decref(body);
    memset(&c->op, 0, sizeof c->op);
    c->op.kind = GUARD_OP_WAIT_CANCEL;
    c->again = false;
    return path_wait(r, a, &c->op.u.wait_id);
}

/* Cancelling twice is harmless; a fulfilled or expired entry is 409. */
static void cancel_run(pipe_t *p, void *args)
{
    cancel_args_t *c = args;
    guard_wait_view_t w;
    pipe_advance(p);
    c->again = guard_wait_view(p->s->guard, c->op.u.wait_id, &w) &&
               w.state == GUARD_WAIT_CANCELLED;
    if (!c->again) {
        pipe_apply(p, &c->op, &c->o);
    }
}

static void cancel_reply(pipe_t *p, void *args)
{
    const cancel_args_t *c = args;
    if (!c->again && c->o.result != GUARD_OK) {
        outcome_reply_guard(p->r, &c->o);
    } else {
        reply_wait(p->r, c->op.u.wait_id, 200, p->now_ms);
    }
}

const handler_t waitlists_cancel_handler = {cancel_parse, cancel_run, cancel_reply, NULL};
