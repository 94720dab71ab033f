/*
 * holds.c - /v1/holds: create (the guard's decision), read, commit,
 * release, extend.
 */
#include <assert.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "chart.h"
#include "holds.h"
#include "observe.h"
#include "outcome.h"

/* A hold as its reply shows it, every field copied or pointed to, so that
 * the reply can be written with or without the engine lock. */
typedef struct {
    uint64_t id;
    engine_hold_state_t state;
    const char *customer;
    uint8_t customer_len;
    int64_t created_ms, expires_ms, finished_ms;
    int64_t safe_ms; /* active: until when it is never taken back */
    const char *order_ref; /* or the release's reason; NULL: none */
    uint8_t order_ref_len;
    uint16_t line_count;
    struct {
        const char *sku;
        uint8_t sku_len;
        uint32_t qty;
    } lines[HF_LINES_PER_HOLD_MAX];
} hold_doc_t;

/* The engine lock held: the hold h as its reply shows it. */
static void doc_of_view(const server_t *s, const engine_hold_view_t *h, hold_doc_t *d)
{
    const engine_t *e = guard_engine(s->guard);
    d->id = h->id;
    d->state = h->state;
    d->customer = h->customer;
    d->customer_len = h->customer_len;
    d->created_ms = h->created_ms;
    d->expires_ms = h->expires_ms;
    d->finished_ms = h->finished_ms;
    d->order_ref = h->order_ref;
    d->order_ref_len = h->order_ref_len;
    d->line_count = h->line_count;
    for (uint16_t i = 0; i < h->line_count; i++) {
        engine_sku_view_t v;
        engine_sku_view(e, h->lines[i].sku_index, &v);
        d->lines[i].sku = v.sku;
        d->lines[i].sku_len = v.sku_len;
        d->lines[i].qty = h->lines[i].qty;
    }
    int64_t safe_ms =
        h->state == ENGINE_HOLD_ACTIVE ? guard_hold_safe_until_ms(s->guard, h->id) : 0;
    d->safe_ms = safe_ms > 0 && safe_ms < h->expires_ms ? safe_ms : h->expires_ms;
}

/* Needs no lock: what d points to must live until it returns. */
static void write_doc(const server_t *s, json_out_t *j, const hold_doc_t *d, int64_t now_ms,
                      bool with_secret)
{
    char id[HOLDKEY_ID_TEXT_MAX + 1];
    size_t id_len = holdkey_id_format(&s->holdkey, d->id, id);
    jw_obj_begin(j);
    jw_kstr(j, "id", id, id_len);
    if (with_secret) {
        char secret[HOLDKEY_SECRET_TEXT_MAX + 1];
        size_t secret_len = holdkey_secret(&s->holdkey, HOLDKEY_HOLD, d->id, secret);
        jw_kstr(j, "secret", secret, secret_len);
    }
    jw_kstr(j, "customer", d->customer, d->customer_len);
    jw_kcstr(j, "state", engine_hold_state_name(d->state));
    jw_key(j, "lines");
    jw_arr_begin(j);
    for (uint16_t i = 0; i < d->line_count; i++) {
        jw_obj_begin(j);
        jw_kstr(j, "sku", d->lines[i].sku, d->lines[i].sku_len);
        jw_kint(j, "qty", d->lines[i].qty);
        jw_obj_end(j);
    }
    jw_arr_end(j);
    jw_key(j, "created_at");
    jw_time(j, d->created_ms);
    jw_key(j, "expires_at");
    jw_time(j, d->expires_ms);
    bool active = d->state == ENGINE_HOLD_ACTIVE;
    jw_kint(j, "expires_in_ms", active ? d->expires_ms - now_ms : 0);
    if (active) {
        /* Until then the cart is never taken back for buyers who wait. */
        jw_key(j, "safe_until");
        jw_time(j, d->safe_ms);
    } else {
        jw_key(j, "finished_at");
        jw_time(j, d->finished_ms);
    }
    if (d->order_ref != NULL) {
        bool sale = d->state == ENGINE_HOLD_COMMITTED_STATE;
        jw_kstr(j, sale ? "order_ref" : "reason", d->order_ref, d->order_ref_len);
    }
    jw_obj_end(j);
}

void holds_write(server_t *s, json_out_t *j, const engine_hold_view_t *h, int64_t now_ms,
                 bool with_secret)
{
    hold_doc_t d;
    doc_of_view(s, h, &d);
    write_doc(s, j, &d, now_ms, with_secret);
}

/* A hold's reply, taken under the engine lock and written after it
 * (hold_finish, the route's finish step): the id and secret are
 * keyed hashes and the JSON is the longest part of a hold's reply, and the
 * engine lock is what the HTTP threads wait for. Every name it shows is
 * copied: once the lock is let go the engine may reuse a finished hold's
 * record, and a journal reopened after a full disk replaces the whole
 * guard, skus' names included. */
typedef struct {
    bool taken; /* false: nothing to write (an error was) */
    bool with_secret;
    int64_t now_ms;
    hold_doc_t doc;
    char customer[HF_NAME_BYTES_MAX];
    char order_ref[HF_NAME_BYTES_MAX];
    char skus[HF_LINES_PER_HOLD_MAX][HF_SKU_BYTES_MAX];
} hold_reply_t;

/* Under the lock: takes the hold's reply with status (a create's, 201,
 * hands the hold to its owner with its secret), or writes the 404 if the
 * hold is gone. */
static void hold_reply_take(request_t *r, uint64_t id, int status, int64_t now_ms,
                            hold_reply_t *out)
{
    engine_hold_view_t h;
    out->taken = false;
    if (engine_hold_view(guard_engine(r->server->guard), id, &h) != ENGINE_OK) {
        char text[HOLDKEY_ID_TEXT_MAX + 1];
        holdkey_id_format(&r->server->holdkey, id, text);
        request_error_begin(r, API_ERR_NOT_FOUND, r->replayed != NULL
                                                      ? "this Idempotency-Key made a hold that is "
                                                        "no longer kept (finished over a day ago)"
                                                      : "no such hold (or it finished over a day "
                                                        "ago)");
        jw_kcstr(&r->out, "id", text);
        request_error_end(r);
        return;
    }
    doc_of_view(r->server, &h, &out->doc);
    memcpy(out->customer, h.customer, h.customer_len);
    out->doc.customer = out->customer;
    for (uint16_t i = 0; i < out->doc.line_count; i++) {
        memcpy(out->skus[i], out->doc.lines[i].sku, out->doc.lines[i].sku_len);
        out->doc.lines[i].sku = out->skus[i];
    }
    if (h.order_ref != NULL) {
        memcpy(out->order_ref, h.order_ref, h.order_ref_len);
        out->doc.order_ref = out->order_ref;
    }
    out->with_secret = status == 201;
    out->now_ms = now_ms;
    out->taken = true;
    r->status = status;
}

/* Every hold route's finish step: after the lock, writes what
 * hold_reply_take took, if it took it. Each route's arguments begin with
 * their hold_reply_t. */
static void hold_finish(request_t *r, void *args)
{
    const hold_reply_t *hr = args;
    if (hr->taken) {
        json_out_reset(&r->out);
        write_doc(r->server, &r->out, &hr->doc, hr->now_ms, hr->with_secret);
    }
}

static bool parse_line(request_t *r, json_t *line, size_t i, engine_line_t *out)
{
    static const char *const fields[] = {"sku", "qty", NULL};
    char field[32];
    if (!json_is_object(line)) {
        snprintf(field, sizeof field, "lines[%zu]", i);
        request_invalid_field(r, field, "each line must be an object {\"sku\": ..., \"qty\": ...}");
        return false;
    }
    const char *key;
    json_t *value;
    json_object_foreach(line, key, value) {
        if (!request_field_allowed(key, fields)) {
            snprintf(field, sizeof field, "lines[%zu].%.16s", i, key);
            request_error_field(r, API_ERR_UNKNOWN_FIELD, field, "a line has only sku and qty");
            return false;
        }
    }
    json_t *sku = json_object_get(line, "sku");
    if (sku == NULL || !json_is_string(sku) ||
        !valid_sku(json_string_value(sku), json_string_length(sku))) {
        snprintf(field, sizeof field, "lines[%zu].sku", i);
        request_invalid_field(r, field, "sku must be 1-64 bytes of [A-Za-z0-9._:-]");
        return false;
    }
    snprintf(field, sizeof field, "lines[%zu].qty", i);
    int64_t qty;
    if (!request_int(r, line, "qty", field, 1, HF_QTY_MAX, true, &qty)) {
        return false;
    }
    out->sku_len = (uint8_t)json_string_length(sku);
    memcpy(out->sku, json_string_value(sku), out->sku_len);
    out->qty = (uint32_t)qty;
    return true;
}

static bool parse_lines(request_t *r, json_t *lines, engine_hold_create_t *c)
{
    if (!json_is_array(lines) || json_array_size(lines) < 1 ||
        json_array_size(lines) > HF_LINES_PER_HOLD_MAX) {
        request_invalid_field(r, "lines", "lines must be an array of 1 to 64 lines");
        return false;
    }
    c->line_count = (uint16_t)json_array_size(lines);
    for (size_t i = 0; i < c->line_count; i++) {
        if (!parse_line(r, json_array_get(lines, i), i, &c->lines[i])) {
            return false;
        }
        for (size_t k = 0; k < i; k++) {
            if (c->lines[k].sku_len == c->lines[i].sku_len &&
                memcmp(c->lines[k].sku, c->lines[i].sku, c->lines[i].sku_len) == 0) {
                request_invalid_field(r, "lines", "a hold names each sku at most once");
                return false;
            }
        }
    }
    return true;
}

static bool parse_who(request_t *r, json_t *body, engine_hold_create_t *c)
{
    const char *customer, *fingerprint;
    size_t customer_len, fingerprint_len;
    json_t *ip = json_object_get(body, "ip");
    if (!request_name(r, body, "customer", true, &customer, &customer_len) ||
        !request_name(r, body, "fingerprint", false, &fingerprint, &fingerprint_len)) {
        return false;
    }
    if (ip != NULL && (!json_is_string(ip) || !valid_ip(json_string_value(ip)))) {
        request_invalid_field(r, "ip", "ip must be an IPv4 or IPv6 address");
        return false;
    }
    if (ip != NULL) {
        c->ip_len = (uint8_t)json_string_length(ip);
        memcpy(c->ip, json_string_value(ip), c->ip_len);
    }
    if (fingerprint != NULL) {
        c->fingerprint_len = (uint8_t)fingerprint_len;
        memcpy(c->fingerprint, fingerprint, fingerprint_len);
    }
    memcpy(c->customer, customer, customer_len);
    c->customer_len = (uint8_t)customer_len;
    return true;
}

/* Buy now: "commit": true holds and commits in one step, with an order_ref. */
static bool parse_buy_now(request_t *r, json_t *body, guard_hold_request_t *req)
{
    json_t *commit = json_object_get(body, "commit");
    const char *order_ref;
    size_t order_ref_len;
    if (commit != NULL && !json_is_boolean(commit)) {
        request_invalid_field(r, "commit", "commit must be true or false");
        return false;
    }
    if (!request_name(r, body, "order_ref", false, &order_ref, &order_ref_len)) {
        return false;
    }
    req->buy_now = commit != NULL && json_is_true(commit);
    if (order_ref != NULL && !req->buy_now) {
        request_invalid_field(r, "order_ref", "order_ref goes with \"commit\": true (buy now)");
        return false;
    }
    if (order_ref != NULL) {
        memcpy(req->order_ref, order_ref, order_ref_len);
        req->order_ref_len = (uint8_t)order_ref_len;
    }
    return true;
}

/* Fills req from the body; on error replies and returns false. ttl_ms stays
 * 0 when not asked for: the policy then picks it. */
static bool parse_hold_create(request_t *r, json_t *body, guard_hold_request_t *req)
{
    engine_hold_create_t *c = &req->create;
    c->ttl_ms = 0;
    if (!parse_who(r, body, c) || !parse_buy_now(r, body, req)) {
        return false;
    }
    if (json_object_get(body, "lines") == NULL) {
        request_invalid_field(r, "lines", "lines is required");
        return false;
    }
    return parse_lines(r, json_object_get(body, "lines"), c) &&
           request_int(r, body, "ttl_ms", "ttl_ms", HF_TTL_MS_MIN, HF_TTL_MS_MAX, false,
                       &c->ttl_ms) &&
           request_idem_key(r, c->idem_key, &c->idem_key_len);
}

/* Names the sku a failed create is about: the unknown one or the short one. */
static void reply_create_error(request_t *r, const guard_outcome_t *o,
                               const engine_hold_create_t *c)
{
    const engine_outcome_t *e = &o->engine;
    if (o->result == GUARD_ENGINE && e->result == ENGINE_SKU_NOT_FOUND) {
        const engine_line_t *l = &c->lines[e->sku_index];
        outcome_reply_engine(r, e, l->sku, l->sku_len);
    } else if (o->result == GUARD_ENGINE && (e->result == ENGINE_INSUFFICIENT_STOCK ||
                                             e->result == ENGINE_DUPLICATE_LINE)) {
        engine_sku_view_t v;
        engine_sku_view(guard_engine(r->server->guard), e->sku_index, &v);
        outcome_reply_engine(r, e, v.sku, v.sku_len);
    } else {
        outcome_reply_guard(r, o);
    }
}

/* The proof sent with the request (its hash: guard_request_hash), if any
 * and if good for it. */
static void read_proof(request_t *r, guard_hold_request_t *req, uint64_t hash, int64_t now_ms)
{
    const char *proof = request_value(r, MHD_HEADER_KIND, "Holdfast-Proof");
    if (proof == NULL) {
        return;
    }
    if (!guard_challenge_verify(r->server->guard, hash, proof, strlen(proof), now_ms,
                                &req->proof_tag, &req->proof_expires_ms, &req->proof_bits)) {
        req->proof_tag = 0; /* a bad proof is no proof: the rule asks again */
    }
}

/* For the dashboard: the refusal, by rule, on the sku the guard counts it
 * against (the line the rule is about, else the first). */
static void count_sku_refusal(server_t *s, const guard_hold_request_t *req,
                              const policy_decision_t *d)
{
    const engine_line_t *l = &req->create.lines[d->line_index];
    uint32_t sku;
    if (engine_sku_find(guard_engine(s->guard), l->sku, l->sku_len, &sku) &&
        sku < HF_SKU_RULE_STATS_MAX) {
        s->sku_refusals[sku][d->verdict == POLICY_DENY ? 0 : 1][d->rule]++;
    }
}

/* ------------------------------------------------------------------ create */

typedef struct {
    hold_reply_t reply; /* first: hold_finish reads it there */
    guard_hold_request_t req;
    uint64_t hash; /* what a proof and a challenge are bound to */
    guard_outcome_t o;
} create_args_t;
_Static_assert(offsetof(create_args_t, reply) == 0, "hold_finish finds the reply first");
_Static_assert(sizeof(create_args_t) <= REQUEST_ARGS_BYTES_MAX, "a create's arguments fit");

static bool create_parse(request_t *r, const route_args_t *a, void *args)
{
    static const char *const fields[] = {"customer", "ip",     "fingerprint", "lines",
                                         "ttl_ms",   "commit", "order_ref",   NULL};
    create_args_t *c = args;
    guard_hold_request_t *req = &c->req;
    (void)a;
    json_t *body = request_body(r, fields, true);
    /* Everything but the lines past line_count, which the parse fills: a
     * hold's request is 5 KiB, nearly all of it lines. */
    memset(req, 0, offsetof(guard_hold_request_t, create) + offsetof(engine_hold_create_t, lines));
    memset((char *)req + offsetof(guard_hold_request_t, buy_now), 0,
           sizeof *req - offsetof(guard_hold_request_t, buy_now));
    bool ok = body != NULL && parse_hold_create(r, body, req);
    json_decref(body);
    c->reply.taken = false;
    return ok;
}

static void create_run(pipe_t *p, void *args)
{
    create_args_t *c = args;
    guard_op_t op;
    c->hash = guard_request_hash(&c->req);
    c->req.create.request_hash = c->hash; /* guard_hold need not hash it again */
    read_proof(p->r, &c->req, c->hash, p->now_ms);
    bool kept = pipe_hold(p, &c->req, &op, &c->o);
    chart_note_hold(p->s, &c->req.create, p->now_ms); /* granted or refused, in play */
    if (!kept) {
        return;
    }
    if (c->o.result == GUARD_OK || c->o.result == GUARD_ENGINE) { /* the policy counts its own */
        __atomic_fetch_add(&p->s->metrics.hold_results[c->o.engine.result], 1, __ATOMIC_RELAXED);
    }
    if (c->o.result == GUARD_DENIED || c->o.result == GUARD_CHALLENGED) {
        count_sku_refusal(p->s, &c->req, &c->o.decision);
    }
}

static void create_reply(pipe_t *p, void *args)
{
    create_args_t *c = args;
    request_t *r = p->r;
    const guard_outcome_t *o = &c->o;
    if (o->result == GUARD_DENIED || o->result == GUARD_CHALLENGED) {
        outcome_reply_decision(r, &o->decision, c->hash, &c->req, p->now_ms);
    } else if (o->result != GUARD_OK) {
        reply_create_error(r, o, &c->req.create);
    } else {
        r->replayed = o->engine.replayed ? "true" : NULL;
        hold_reply_take(r, o->engine.hold_id, 201, p->now_ms, &c->reply);
    }
}

const handler_t holds_create_handler = {create_parse, create_run, create_reply, hold_finish};

/* ---------------------------------------------------------- one hold by id */

/* The hold named in the path, if the request may touch it; false after a
 * 404 (an id no hold could have) or a 403 (request_secret_allows). */
static bool path_hold(request_t *r, const route_args_t *a, uint64_t *id)
{
    if (holdkey_id_parse(&r->server->holdkey, a->value[0], a->len[0], id) == HOLDKEY_ID_BAD) {
        request_error(r, API_ERR_NOT_FOUND, "no such hold");
        return false;
    }
    return request_secret_allows(r, HOLDKEY_HOLD, *id);
}

typedef struct {
    hold_reply_t reply; /* first: hold_finish reads it there */
    uint64_t id;
} get_args_t;
_Static_assert(offsetof(get_args_t, reply) == 0, "hold_finish finds the reply first");
_Static_assert(sizeof(get_args_t) <= REQUEST_ARGS_BYTES_MAX, "a read's arguments fit");

static bool get_parse(request_t *r, const route_args_t *a, void *args)
{
    get_args_t *g = args;
    g->reply.taken = false;
    return path_hold(r, a, &g->id);
}

static void get_reply(pipe_t *p, void *args)
{
    get_args_t *g = args;
    pipe_advance(p);
    hold_reply_take(p->r, g->id, 200, p->now_ms, &g->reply);
}

const handler_t holds_get_handler = {get_parse, NULL, get_reply, hold_finish};

/* Commit and release: one op on the hold, and the hold as it then is. */
typedef struct {
    hold_reply_t reply; /* first: hold_finish reads it there */
    guard_op_t op;
    guard_outcome_t o;
} change_args_t;
_Static_assert(offsetof(change_args_t, reply) == 0, "hold_finish finds the reply first");
_Static_assert(sizeof(change_args_t) <= REQUEST_ARGS_BYTES_MAX, "a change's arguments fit");

static bool change_path(request_t *r, const route_args_t *a, change_args_t *c)
{
    if (!path_hold(r, a, &c->op.engine.u.hold.hold_id)) {
        return false;
    }
    observe_audit_operator_hold(r, &c->op);
    return true;
}

static void change_run(pipe_t *p, void *args)
{
    change_args_t *c = args;
    pipe_apply(p, &c->op, &c->o);
}

static void change_reply(pipe_t *p, void *args)
{
    change_args_t *c = args;
    if (c->o.result != GUARD_OK) {
        outcome_reply_guard(p->r, &c->o);
    } else {
        hold_reply_take(p->r, c->op.engine.u.hold.hold_id, 200, p->now_ms, &c->reply);
    }
}

/* The op of kind, and the body's one optional name member (order_ref or
 * reason; *name NULL if absent). The body, which *name points into, or
 * NULL after the 400. */
static json_t *change_begin(request_t *r, change_args_t *c, engine_op_kind_t kind,
                            const char *member, const char **name, size_t *len)
{
    const char *const fields[] = {member, NULL};
    memset(&c->op, 0, sizeof c->op);
    c->op.kind = GUARD_OP_ENGINE;
    c->op.engine.kind = kind;
    c->reply.taken = false;
    json_t *body = request_body(r, fields, false);
    if (body != NULL && !request_name(r, body, member, false, name, len)) {
        json_decref(body);
        return NULL;
    }
    return body;
}

static bool commit_parse(request_t *r, const route_args_t *a, void *args)
{
    change_args_t *c = args;
    const char *order_ref;
    size_t len;
    json_t *body = change_begin(r, c, ENGINE_OP_HOLD_COMMIT, "order_ref", &order_ref, &len);
    if (body != NULL && order_ref != NULL) {
        memcpy(c->op.engine.u.hold.order_ref, order_ref, len); /* before the body goes */
        c->op.engine.u.hold.order_ref_len = (uint8_t)len;
    }
    bool ok = body != NULL;
    json_decref(body);
    return ok && change_path(r, a, c);
}

const handler_t holds_commit_handler = {commit_parse, change_run, change_reply, hold_finish};

/* DELETE: an operator (admin key) may say why, and the hold keeps it. */
static bool release_parse(request_t *r, const route_args_t *a, void *args)
{
    change_args_t *c = args;
    const char *reason;
    size_t len;
    json_t *body = change_begin(r, c, ENGINE_OP_HOLD_RELEASE, "reason", &reason, &len);
    bool ok = body != NULL;
    if (ok && reason != NULL && r->role != ROLE_ADMIN) {
        request_error(r, API_ERR_FORBIDDEN, "a reason is for an operator: it needs the admin key");
        ok = false;
    }
    if (ok && reason != NULL) {
        memcpy(c->op.reason, reason, len);
        c->op.reason_len = (uint8_t)len;
    }
    json_decref(body);
    return ok && change_path(r, a, c);
}

const handler_t holds_release_handler = {release_parse, change_run, change_reply, hold_finish};

typedef struct {
    hold_reply_t reply; /* first: hold_finish reads it there */
    uint64_t id;
    int64_t ttl_ms;
    guard_outcome_t o;
} extend_args_t;
_Static_assert(offsetof(extend_args_t, reply) == 0, "hold_finish finds the reply first");
_Static_assert(sizeof(extend_args_t) <= REQUEST_ARGS_BYTES_MAX, "an extension's arguments fit");

static bool extend_parse(request_t *r, const route_args_t *a, void *args)
{
    static const char *const fields[] = {"ttl_ms", NULL};
    extend_args_t *x = args;
    x->reply.taken = false;
    json_t *body = request_body(r, fields, true);
    bool ok = body != NULL && request_int(r, body, "ttl_ms", "ttl_ms", HF_TTL_MS_MIN,
                                          HF_TTL_MS_MAX, true, &x->ttl_ms);
    json_decref(body);
    return ok && path_hold(r, a, &x->id);
}

static void extend_run(pipe_t *p, void *args)
{
    extend_args_t *x = args;
    guard_op_t op;
    pipe_extend(p, x->id, x->ttl_ms, &op, &x->o);
}

static void extend_reply(pipe_t *p, void *args)
{
    extend_args_t *x = args;
    if (x->o.result == GUARD_DENIED) {
        outcome_reply_decision(p->r, &x->o.decision, 0, NULL, p->now_ms);
    } else if (x->o.result != GUARD_OK) {
        outcome_reply_guard(p->r, &x->o);
    } else {
        hold_reply_take(p->r, x->id, 200, p->now_ms, &x->reply);
    }
}

const handler_t holds_extend_handler = {extend_parse, extend_run, extend_reply, hold_finish};
