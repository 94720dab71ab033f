/*
 * identities.c - the identities that hold the most (customers, IP
 * prefixes, fingerprints), and an operator's revocation of one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "identities.h"
#include "observe.h"
#include "outcome.h"

static void write_identity(json_out_t *j, const guard_identity_view_t *v)
{
    jw_obj_begin(j);
    jw_kcstr(j, "kind", policy_id_kind_name(v->kind));
    jw_kstr(j, "value", v->value, v->value_len);
    jw_kint(j, "held_units", v->units_held);
    jw_kint(j, "holds", v->holds_active);
    jw_kint(j, "commits", (int64_t)v->commits_total);
    jw_kint(j, "holds_total", (int64_t)v->holds_total);
    jw_key(j, "risk");
    jw_double(j, v->risk);
    jw_key(j, "budget_unit_s");
    jw_double(j, v->budget_unit_s);
    jw_obj_end(j);
}

static bool top_args(request_t *r, guard_top_by_t *by, uint32_t *limit)
{
    static const char *const names[] = {"held_units", "holds", "conversion"};
    const char *by_text = request_value(r, MHD_GET_ARGUMENT_KIND, "by");
    *by = GUARD_TOP_HELD_UNITS;
    if (by_text != NULL) {
        int found = -1;
        for (int i = 0; i < 3; i++) {
            found = strcmp(by_text, names[i]) == 0 ? i : found;
        }
        if (found < 0) {
            request_invalid_field(r, "by", "by must be held_units, holds or conversion");
            return false;
        }
        *by = (guard_top_by_t)found;
    }
    int64_t n;
    if (!request_query_limit(r, HF_TOP_IDENTITIES_MAX, HF_TOP_IDENTITIES_DEFAULT, &n)) {
        return false;
    }
    *limit = (uint32_t)n;
    return true;
}

typedef struct {
    guard_top_by_t by;
    uint32_t limit;
} top_args_t;

static bool top_parse(request_t *r, const route_args_t *a, void *args)
{
    top_args_t *t = args;
    (void)a;
    return top_args(r, &t->by, &t->limit);
}

static void top_reply(pipe_t *p, void *args)
{
    const top_args_t *t = args;
    request_t *r = p->r;
    guard_identity_view_t *top = malloc(sizeof *top * t->limit);
    if (top == NULL) {
        request_error(r, API_ERR_OVERLOADED, "out of memory");
        return;
    }
    pipe_advance(p);
    uint32_t n = guard_identities_top(p->s->guard, t->by, t->limit, top);
    r->status = 200;
    jw_obj_begin(&r->out);
    jw_key(&r->out, "identities");
    jw_arr_begin(&r->out);
    for (uint32_t i = 0; i < n; i++) {
        write_identity(&r->out, &top[i]);
    }
    jw_arr_end(&r->out);
    jw_obj_end(&r->out);
    free(top);
}

const handler_t identities_top_handler = {top_parse, NULL, top_reply, NULL};

typedef struct {
    guard_op_t op;
    guard_outcome_t o;
} revoke_args_t;
_Static_assert(sizeof(revoke_args_t) <= REQUEST_ARGS_BYTES_MAX, "a revoke's arguments fit");

static bool revoke_parse(request_t *r, const route_args_t *a, void *args)
{
    static const char *const fields[] = {"reason", NULL};
    revoke_args_t *v = args;
    guard_op_t *op = &v->op;
    memset(op, 0, sizeof *op);
    op->kind = GUARD_OP_REVOKE;
    if (!policy_id_kind_parse(a->value[0], a->len[0], &op->u.revoke.kind)) {
        request_invalid_field(r, "kind", "kind must be customer, ip_prefix or fingerprint");
        return false;
    }
    if (!valid_name(a->value[1], a->len[1])) {
        request_invalid_field(r, "value",
                              "value must be 1-128 bytes of UTF-8 without control characters");
        return false;
    }
    json_t *body = request_body(r, fields, false);
    const char *reason;
    size_t reason_len;
    bool ok = body != NULL && request_name(r, body, "reason", false, &reason, &reason_len);
    if (ok && reason == NULL) {
        reason = "revoked by an operator"; /* the holds say why they ended */
        reason_len = strlen(reason);
    }
    if (ok) {
        memcpy(op->reason, reason, reason_len);
        op->reason_len = (uint8_t)reason_len;
    }
    json_decref(body);
    if (!ok) {
        return false;
    }
    memcpy(op->u.revoke.value, a->value[1], a->len[1]);
    op->u.revoke.value_len = (uint8_t)a->len[1];
    observe_audit(r, op);
    return true;
}

static void revoke_run(pipe_t *p, void *args)
{
    revoke_args_t *v = args;
    pipe_apply(p, &v->op, &v->o);
}

static void revoke_reply(pipe_t *p, void *args)
{
    const revoke_args_t *v = args;
    request_t *r = p->r;
    if (v->o.result == GUARD_NOT_FOUND) {
        request_error(r, API_ERR_NOT_FOUND,
                      "no such identity (or it holds nothing and was forgotten)");
    } else if (v->o.result != GUARD_OK) {
        outcome_reply_guard(r, &v->o); /* never a 200 for a revoke that did not happen */
    } else {
        r->status = 200;
        jw_obj_begin(&r->out);
        jw_kcstr(&r->out, "kind", policy_id_kind_name(v->op.u.revoke.kind));
        jw_kstr(&r->out, "value", v->op.u.revoke.value, v->op.u.revoke.value_len);
        jw_kint(&r->out, "revoked", v->o.revoked);
        jw_obj_end(&r->out);
    }
}

const handler_t identities_revoke_handler = {revoke_parse, revoke_run, revoke_reply, NULL};
