/*
 * defense.c - the API of the defenses: the policy document, a sku's own
 * policy and escalation state, waitlists, and who holds what (identities,
 * revocation). The decisions themselves are the guard's (guard/guard.h);
 * these handlers validate, apply under the engine lock and reply, as the
 * core handlers in routes.c do.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_json.h"
#include "observe.h"
#include "server_internal.h"

/* ------------------------------------------------------------------ policy */

/* jansson's document, copied into our writer (the policy is small). */
static void write_json(json_out_t *j, const json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert(text != NULL);
    jw_value_raw(j, text, strlen(text));
    free(text);
}

void write_policy_doc(json_out_t *j, const policy_config_t *c, uint64_t mask)
{
    json_t *doc = policy_json_write(c, mask);
    write_json(j, doc);
    json_decref(doc);
}

static void reply_policy_error(request_t *r, const policy_json_error_t *err)
{
    reply_error_field(r, err->unknown ? API_ERR_UNKNOWN_FIELD : API_ERR_INVALID_FIELD, err->field,
                      err->message);
}

/* prefix: "" for the shop's document, "policy." for a sku's. */
static void reply_relation_error(request_t *r, policy_field_t bad, const char *prefix,
                                 const char *where)
{
    char field[96], message[400];
    const policy_field_info_t *info = policy_field_info(bad);
    snprintf(field, sizeof field, "%s%s.%s", prefix, info->section, info->key);
    snprintf(message, sizeof message,
             "%s conflicts with another setting%s (scarce_ms <= default_ms <= max_ms, "
             "scarce_pct < plenty_pct, base_bits <= bits_max, conversion_pct <= recover_pct)",
             field, where);
    invalid_field(r, field, message);
}

void h_policy_get(request_t *r, const route_args_t *a)
{
    (void)a;
    lock(r);
    r->status = 200;
    write_policy_doc(&r->out, guard_policy(r->server->guard), POLICY_MASK_ALL);
    unlock(r);
}

/* Every sku's own settings must still make sense on top of the new policy. */
static bool skus_fit(request_t *r, const policy_config_t *p)
{
    const guard_t *g = r->server->guard;
    uint32_t sku;
    policy_field_t bad;
    if (guard_policy_fits(g, p, &sku, &bad)) {
        return true;
    }
    engine_sku_view_t v;
    engine_sku_view(guard_engine(g), sku, &v);
    char where[120];
    snprintf(where, sizeof where, " with sku %.*s's own settings", (int)v.sku_len, v.sku);
    reply_relation_error(r, bad, "", where);
    return false;
}

/* PUT /v1/policy takes the whole document: what it leaves out is default. */
void h_policy_put(request_t *r, const route_args_t *a)
{
    (void)a;
    json_error_t jerr;
    json_t *doc = r->body_size == 0 ? NULL
                                    : json_loadb(r->body, r->body_size, JSON_REJECT_DUPLICATES,
                                                 &jerr);
    if (doc == NULL) {
        reply_error(r, API_ERR_INVALID_JSON, "the body must be the policy document (JSON)");
        return;
    }
    guard_op_t op = {.kind = GUARD_OP_POLICY_PUT};
    op.u.policy = policy_config_default();
    policy_json_error_t err;
    uint64_t mask;
    policy_field_t bad;
    bool ok = policy_json_read(doc, POLICY_MASK_ALL, &op.u.policy, &mask, &err);
    json_decref(doc);
    if (!ok) {
        reply_policy_error(r, &err);
        return;
    }
    if (!policy_config_valid(&op.u.policy, &bad)) {
        reply_relation_error(r, bad, "", "");
        return;
    }
    guard_outcome_t o;
    observe_audit(r, &op);
    lock(r);
    if (skus_fit(r, &op.u.policy) && apply_op(r, &op, &o)) {
        r->status = 200;
        write_policy_doc(&r->out, guard_policy(r->server->guard), POLICY_MASK_ALL);
    }
    unlock(r);
}

bool sku_policy_parse(request_t *r, json_t *doc, guard_op_t *op)
{
    op->kind = GUARD_OP_SKU_POLICY;
    op->u.sku_policy.mask = 0;
    op->u.sku_policy.values = policy_config_default();
    if (json_is_null(doc)) {
        return true; /* back to the shop's policy */
    }
    policy_json_error_t err;
    if (!policy_json_read(doc, policy_mask_sku(), &op->u.sku_policy.values,
                          &op->u.sku_policy.mask, &err)) {
        char field[112];
        snprintf(field, sizeof field, "policy.%s", err.field);
        reply_error_field(r, err.unknown ? API_ERR_UNKNOWN_FIELD : API_ERR_INVALID_FIELD, field,
                          err.message);
        return false;
    }
    return true;
}

bool sku_policy_check(request_t *r, const guard_op_t *op)
{
    policy_field_t bad;
    guard_result_t fits = guard_sku_policy_check(r->server->guard, op, &bad);
    if (fits == GUARD_POLICY_CONFLICT) {
        reply_relation_error(r, bad, "policy.", " on top of the shop's policy");
    } else if (fits != GUARD_OK) {
        guard_outcome_t o = {.result = fits};
        reply_guard_result(r, &o);
    }
    return fits == GUARD_OK;
}

/* A sku's defenses as GET /v1/skus/{sku} shows them. */
/* "refusals_by_rule": {"hold_share": {"denied": 3, "challenged": 0}, ...},
 * the rules that refused on this sku since the server started. */
static void write_sku_refusals(const server_t *s, json_out_t *j, uint32_t sku_index)
{
    if (sku_index >= HF_SKU_RULE_STATS_MAX) {
        return; /* not counted by rule: the totals above stand alone */
    }
    const uint64_t(*counts)[POLICY_RULE_COUNT] = s->sku_refusals[sku_index];
    jw_key(j, "refusals_by_rule");
    jw_obj_begin(j);
    for (int rule = 0; rule < POLICY_RULE_COUNT; rule++) {
        if (counts[0][rule] + counts[1][rule] == 0) {
            continue;
        }
        jw_key(j, policy_rule_name((policy_rule_t)rule));
        jw_obj_begin(j);
        jw_kint(j, "denied", (int64_t)counts[0][rule]);
        jw_kint(j, "challenged", (int64_t)counts[1][rule]);
        jw_obj_end(j);
    }
    jw_obj_end(j);
}

void write_sku_defenses(const server_t *s, json_out_t *j, uint32_t sku_index)
{
    const guard_t *g = s->guard;
    guard_sku_view_t v;
    guard_sku_view(g, sku_index, &v);
    jw_key(j, "escalation");
    jw_obj_begin(j);
    jw_kcstr(j, "state", v.escalated ? "escalated" : "normal");
    jw_kint(j, "switches", v.escalations);
    if (v.escalations > 0) {
        jw_key(j, "since");
        jw_time(j, v.escalated_at_ms);
    }
    jw_obj_end(j);
    jw_key(j, "conversion");
    if (v.conversion < 0) {
        jw_null(j);
    } else {
        jw_double(j, v.conversion);
    }
    jw_kint(j, "waitlist", v.waiting);
    /* Units in carts of identities that never bought (the newcomer pool);
     * how long its buyers take to pay (null until enough have); carts taken
     * back for buyers who waited. */
    jw_kint(j, "newcomer_held", v.newcomer_held);
    jw_key(j, "pay_ms");
    if (v.pay_ms > 0) {
        jw_int(j, v.pay_ms);
    } else {
        jw_null(j);
    }
    jw_kint(j, "reclaimed", v.reclaimed);
    jw_kint(j, "denials", (int64_t)v.denials);
    jw_kint(j, "challenges", (int64_t)v.challenges);
    write_sku_refusals(s, j, sku_index);
    uint64_t mask;
    const policy_config_t *c = guard_sku_policy(g, sku_index, &mask);
    if (mask != 0) {
        jw_key(j, "policy");
        write_policy_doc(j, c, mask);
    }
}

/* ---------------------------------------------------------------- waitlist */

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
        write_hold(r, &h, now_ms, true);
    }
    jw_obj_end(j);
}

static void reply_wait(request_t *r, uint64_t id, int status, int64_t now_ms)
{
    guard_wait_view_t w;
    if (!guard_wait_view(r->server->guard, id, &w)) {
        reply_error(r, API_ERR_NOT_FOUND, "no such waitlist entry (or it was reused)");
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
        invalid_field(r, "ip", "ip must be an IPv4 or IPv6 address");
        return false;
    }
    if (!get_name(r, body, "fingerprint", false, &fingerprint, &fingerprint_len)) {
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

void h_wait_join(request_t *r, const route_args_t *a)
{
    static const char *const fields[] = {"customer", "qty", "ip", "fingerprint", NULL};
    if (!valid_sku(a->value[0], a->len[0])) {
        invalid_field(r, "sku", "sku must be 1-64 bytes of [A-Za-z0-9._:-]");
        return;
    }
    json_t *body = parse_body(r, fields, true);
    const char *customer;
    size_t customer_len;
    int64_t qty = 1;
    guard_op_t op = {.kind = GUARD_OP_WAIT_JOIN};
    bool ok = body != NULL && get_name(r, body, "customer", true, &customer, &customer_len) &&
              get_int(r, body, "qty", "qty", 1, HF_QTY_MAX, false, &qty) &&
              wait_join_who(r, body, &op);
    if (ok) {
        memcpy(op.u.wait_join.customer, customer, customer_len);
        op.u.wait_join.customer_len = (uint8_t)customer_len;
    }
    json_decref(body);
    if (!ok) {
        return;
    }
    memcpy(op.u.wait_join.sku, a->value[0], a->len[0]);
    op.u.wait_join.sku_len = (uint8_t)a->len[0];
    op.u.wait_join.qty = (uint32_t)qty;
    guard_outcome_t o;
    lock(r);
    if (apply_op(r, &op, &o)) {
        if (o.result == GUARD_ENGINE && o.engine.result == ENGINE_SKU_NOT_FOUND) {
            reply_error(r, API_ERR_NOT_FOUND, "no such sku");
        } else if (o.result == GUARD_DENIED) {
            reply_decision(r, &o.decision, 0, NULL, op.engine.now_ms);
        } else if (o.result != GUARD_OK) {
            reply_guard_result(r, &o);
        } else {
            reply_wait(r, o.id, 201, op.engine.now_ms);
        }
    }
    unlock(r);
}

/* The entry named in the path, if the request may touch it; false after a
 * 404 or a 403 (secret_allows). */
static bool path_wait(request_t *r, const route_args_t *a, uint64_t *id)
{
    if (!guard_wait_id_parse(a->value[0], a->len[0], id)) {
        reply_error(r, API_ERR_NOT_FOUND, "no such waitlist entry");
        return false;
    }
    return secret_allows(r, HOLDKEY_WAIT, *id);
}

void h_wait_get(request_t *r, const route_args_t *a)
{
    uint64_t id;
    if (!path_wait(r, a, &id)) {
        return;
    }
    server_t *s = r->server;
    lock(r);
    int64_t now_ms = server_now_ms(s);
    guard_advance(s->guard, now_ms);
    reply_wait(r, id, 200, now_ms);
    unlock(r);
}

/* Cancelling twice is harmless; a fulfilled or expired entry is 409. */
void h_wait_cancel(request_t *r, const route_args_t *a)
{
    static const char *const fields[] = {NULL};
    uint64_t id;
    json_t *body = parse_body(r, fields, false);
    if (body == NULL) {
        return;
    }
    json_decref(body);
    if (!path_wait(r, a, &id)) {
        return;
    }
    server_t *s = r->server;
    guard_op_t op = {.kind = GUARD_OP_WAIT_CANCEL};
    op.u.wait_id = id;
    guard_outcome_t o;
    guard_wait_view_t w;
    lock(r);
    guard_advance(s->guard, server_now_ms(s));
    bool again = guard_wait_view(s->guard, id, &w) && w.state == GUARD_WAIT_CANCELLED;
    if (again) {
        reply_wait(r, id, 200, server_now_ms(s));
    } else if (apply_op(r, &op, &o)) {
        if (o.result != GUARD_OK) {
            reply_guard_result(r, &o);
        } else {
            reply_wait(r, id, 200, op.engine.now_ms);
        }
    }
    unlock(r);
}

/* -------------------------------------------------------------- identities */

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
            invalid_field(r, "by", "by must be held_units, holds or conversion");
            return false;
        }
        *by = (guard_top_by_t)found;
    }
    int64_t n;
    if (!query_limit(r, HF_TOP_IDENTITIES_MAX, HF_TOP_IDENTITIES_DEFAULT, &n)) {
        return false;
    }
    *limit = (uint32_t)n;
    return true;
}

void h_identities_top(request_t *r, const route_args_t *a)
{
    (void)a;
    guard_top_by_t by;
    uint32_t limit;
    if (!top_args(r, &by, &limit)) {
        return;
    }
    guard_identity_view_t *top = malloc(sizeof *top * limit);
    if (top == NULL) {
        reply_error(r, API_ERR_OVERLOADED, "out of memory");
        return;
    }
    server_t *s = r->server;
    lock(r);
    guard_advance(s->guard, server_now_ms(s));
    uint32_t n = guard_identities_top(s->guard, by, limit, top);
    r->status = 200;
    jw_obj_begin(&r->out);
    jw_key(&r->out, "identities");
    jw_arr_begin(&r->out);
    for (uint32_t i = 0; i < n; i++) {
        write_identity(&r->out, &top[i]);
    }
    jw_arr_end(&r->out);
    jw_obj_end(&r->out);
    unlock(r);
    free(top);
}

void h_identity_revoke(request_t *r, const route_args_t *a)
{
    static const char *const fields[] = {"reason", NULL};
    guard_op_t op = {.kind = GUARD_OP_REVOKE};
    if (!policy_id_kind_parse(a->value[0], a->len[0], &op.u.revoke.kind)) {
        invalid_field(r, "kind", "kind must be customer, ip_prefix or fingerprint");
        return;
    }
    if (!valid_name(a->value[1], a->len[1])) {
        invalid_field(r, "value", "value must be 1-128 bytes of UTF-8 without control characters");
        return;
    }
    json_t *body = parse_body(r, fields, false);
    const char *reason;
    size_t reason_len;
    bool ok = body != NULL && get_name(r, body, "reason", false, &reason, &reason_len);
    if (ok && reason == NULL) {
        reason = "revoked by an operator"; /* the holds say why they ended */
        reason_len = strlen(reason);
    }
    if (ok) {
        memcpy(op.reason, reason, reason_len);
        op.reason_len = (uint8_t)reason_len;
    }
    json_decref(body);
    if (!ok) {
        return;
    }
    memcpy(op.u.revoke.value, a->value[1], a->len[1]);
    op.u.revoke.value_len = (uint8_t)a->len[1];
    observe_audit(r, &op);
    guard_outcome_t o;
    lock(r);
    if (apply_op(r, &op, &o)) {
        if (o.result == GUARD_NOT_FOUND) {
            reply_error(r, API_ERR_NOT_FOUND,
                        "no such identity (or it holds nothing and was forgotten)");
        } else if (o.result != GUARD_OK) {
            reply_guard_result(r, &o); /* never a 200 for a revoke that did not happen */
        } else {
            r->status = 200;
            jw_obj_begin(&r->out);
            jw_kcstr(&r->out, "kind", policy_id_kind_name(op.u.revoke.kind));
            jw_kstr(&r->out, "value", op.u.revoke.value, op.u.revoke.value_len);
            jw_kint(&r->out, "revoked", o.revoked);
            jw_obj_end(&r->out);
        }
    }
    unlock(r);
}
