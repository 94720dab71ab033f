/*
 * audit.c - the audit trail at the server's edge (observe.h): which
 * changes are an operator's, who made them, and GET /v1/audit.
 *
 * The entries are the guard's (guard.h, "the audit trail"): each audited
 * op carries the key's id and the route, is journaled with them in one
 * record, and applying it writes the entry from the state before and
 * after. Audited: every write that needs the admin key (stock, the shop's
 * and a sku's policy, revocations), the policy a configuration file sets
 * at start, and a hold released or committed with the admin's powers and
 * without its secret (an operator acting on someone's cart; the owner's
 * own calls send the secret and are not audited).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "observe.h"

static void audit_as(guard_op_t *op, const char *key_id, const char *route)
{
    op->audit.present = true;
    size_t key_len = strcmp(key_id, "-") == 0 ? 0 : strlen(key_id);
    size_t route_len = strlen(route);
    op->audit.key_id_len = (uint8_t)(key_len < GUARD_AUDIT_KEY_ID_BYTES ? key_len
                                                                         : GUARD_AUDIT_KEY_ID_BYTES);
    memcpy(op->audit.key_id, key_id, op->audit.key_id_len);
    op->audit.route_len = (uint8_t)(route_len < GUARD_AUDIT_ROUTE_BYTES_MAX
                                        ? route_len
                                        : GUARD_AUDIT_ROUTE_BYTES_MAX);
    memcpy(op->audit.route, route, op->audit.route_len);
}

void observe_audit(request_t *r, guard_op_t *op)
{
    char route[GUARD_AUDIT_ROUTE_BYTES_MAX + 1];
    snprintf(route, sizeof route, "%s %s", server_route_method(r->server, r->route),
             observe_route_template(r->server, r->route));
    audit_as(op, observe_key_id(r), route);
}

void observe_audit_operator_hold(request_t *r, guard_op_t *op)
{
    if (r->role == ROLE_ADMIN && request_value(r, MHD_HEADER_KIND, "Hold-Secret") == NULL) {
        observe_audit(r, op);
    }
}

void observe_audit_config(guard_op_t *op)
{
    audit_as(op, "-", "start: the configuration file's policy");
}

/* ------------------------------------------------------- GET /v1/audit */

static void write_entry(request_t *r, const guard_audit_entry_t *e)
{
    json_out_t *j = &r->out;
    jw_obj_begin(j);
    jw_kint(j, "seq", (int64_t)e->seq);
    jw_key(j, "at");
    jw_time(j, e->at_ms);
    jw_key(j, "key");
    if (e->key_id[0] != '\0') {
        jw_str(j, e->key_id, strlen(e->key_id));
    } else {
        jw_null(j);
    }
    jw_kcstr(j, "route", e->route);
    jw_kcstr(j, "action", guard_audit_action_name(e->action));
    if (e->hold_id != 0) {
        char id[HOLDKEY_ID_TEXT_MAX + 1];
        size_t len = holdkey_id_format(&r->server->holdkey, e->hold_id, id);
        jw_kstr(j, "target", id, len);
    } else {
        jw_kcstr(j, "target", e->target);
    }
    jw_kcstr(j, "change", e->change);
    jw_obj_end(j);
}

/* ?after=N: a page's "next", the seq entries older than which come next
 * (the same parameter as the sku list's cursor). */
static bool next_arg(request_t *r, uint64_t *next)
{
    *next = UINT64_MAX;
    if (request_query_number(r, "after", 1, 1ull << 53, next) == REQUEST_QUERY_BAD) {
        request_invalid_field(r, "after", "after must be the \"next\" of an earlier page");
        return false;
    }
    return true;
}

typedef struct {
    int64_t limit;
    uint64_t next;
} list_args_t;

static bool list_parse(request_t *r, const route_args_t *a, void *args)
{
    list_args_t *l = args;
    (void)a;
    return request_query_limit(r, HF_AUDIT_PAGE_MAX, HF_AUDIT_PAGE_DEFAULT, &l->limit) &&
           next_arg(r, &l->next);
}

static void list_reply(pipe_t *p, void *args)
{
    const list_args_t *l = args;
    request_t *r = p->r;
    const guard_t *g = p->s->guard;
    uint64_t newest = guard_audit_seq(g);
    uint64_t seq = l->next - 1 < newest ? l->next - 1 : newest;
    uint64_t last = 0;
    guard_audit_entry_t e;
    r->status = 200;
    jw_obj_begin(&r->out);
    jw_kint(&r->out, "kept_max", p->s->config.guard.audit_max);
    jw_key(&r->out, "entries");
    jw_arr_begin(&r->out);
    for (int64_t n = 0; n < l->limit && seq >= 1 && guard_audit_entry(g, seq, &e); n++, seq--) {
        write_entry(r, &e);
        last = seq;
    }
    jw_arr_end(&r->out);
    jw_key(&r->out, "next");
    if (last > 1 && guard_audit_entry(g, last - 1, &e)) {
        char text[24];
        int len = snprintf(text, sizeof text, "%llu", (unsigned long long)last);
        jw_str(&r->out, text, (size_t)len);
    } else {
        jw_null(&r->out);
    }
    jw_obj_end(&r->out);
}

const handler_t observe_audit_handler = {list_parse, NULL, list_reply, NULL};
