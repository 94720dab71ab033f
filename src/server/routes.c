/*
 * routes.c - API v1: the route table, its handlers, and the one table that
 * maps engine results to HTTP statuses and error codes.
 *
 * Handlers are thin: validate, reply with a clear error and return early;
 * then take the engine lock, apply or read, and write the reply while the
 * engine's memory is stable. The reply is sent later, by server.c, once the
 * journal has made durable everything up to r->seq.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "observe.h"
#include "server_internal.h"
#include "webhooks.h"

#define PATH_SEGMENTS_MAX 6
/* An unknown query parameter's name is quoted back up to this length. */
#define QUERY_NAME_SHOWN_BYTES_MAX 64

typedef void (*handler_fn)(request_t *r, const route_args_t *a);

typedef struct {
    const char *method;
    const char *pattern; /* '*' matches one path segment */
    role_t role;
    handler_fn fn;
    /* The query parameters it takes (NULL-terminated); any other is a 400,
     * so that a misspelt one (?cursor= for ?after=) never passes silently.
     * NULL: the query is not looked at (pages, health, metrics). */
    const char *const *params;
} route_t;

/* ----------------------------------------------------------------- replies */

/* The error of each engine result but OK. */
static const api_error_t engine_error[ENGINE_RESULT_COUNT] = {
    [ENGINE_OK] = API_ERROR_COUNT, /* never an error: api_error() asserts */
    [ENGINE_SKU_NOT_FOUND] = API_ERR_NOT_FOUND,
    [ENGINE_HOLD_NOT_FOUND] = API_ERR_NOT_FOUND,
    [ENGINE_INSUFFICIENT_STOCK] = API_ERR_INSUFFICIENT_STOCK,
    [ENGINE_STOCK_BELOW_COMMITTED] = API_ERR_STOCK_BELOW_COMMITTED,
    [ENGINE_HOLD_EXPIRED] = API_ERR_HOLD_EXPIRED,
    [ENGINE_HOLD_RELEASED] = API_ERR_HOLD_RELEASED,
    [ENGINE_HOLD_COMMITTED] = API_ERR_HOLD_COMMITTED,
    [ENGINE_DUPLICATE_LINE] = API_ERR_INVALID_FIELD,
    [ENGINE_IDEMPOTENCY_MISMATCH] = API_ERR_IDEMPOTENCY_MISMATCH,
    [ENGINE_SKUS_FULL] = API_ERR_OVERLOADED,
    [ENGINE_HOLDS_FULL] = API_ERR_OVERLOADED,
    [ENGINE_LINES_FULL] = API_ERR_OVERLOADED,
    [ENGINE_IDEM_FULL] = API_ERR_OVERLOADED,
};

/* The error of each guard result a reply_guard_result answers; the 503s
 * say which table is full in "reason". */
static const api_error_t guard_error[GUARD_RESULT_COUNT] = {
    [GUARD_ENGINE] = API_ERROR_COUNT, /* the engine's result decides */
    [GUARD_DENIED] = API_ERR_POLICY_DENIED,
    [GUARD_CHALLENGED] = API_ERR_CHALLENGE_REQUIRED,
    [GUARD_NOT_FOUND] = API_ERR_NOT_FOUND,
    [GUARD_IDENTITIES_FULL] = API_ERR_OVERLOADED,
    [GUARD_CUSTOMER_SKUS_FULL] = API_ERR_OVERLOADED,
    [GUARD_WAITLIST_FULL] = API_ERR_OVERLOADED,
    [GUARD_SKU_POLICIES_FULL] = API_ERR_OVERLOADED,
    [GUARD_POLICY_CONFLICT] = API_ERR_INVALID_FIELD,
    [GUARD_PROOFS_FULL] = API_ERR_OVERLOADED,
    [GUARD_WAITLIST_OFF] = API_ERR_WAITLIST_OFF,
    [GUARD_WAIT_FINISHED] = API_ERR_WAIT_FINISHED,
    [GUARD_WAIT_AVAILABLE] = API_ERR_UNITS_AVAILABLE,
    [GUARD_WAIT_DUPLICATE] = API_ERR_ALREADY_WAITING,
};

/* Opens {"error": {"code": ..., "message": ...; the caller may add fields. */
void error_begin(request_t *r, api_error_t e, const char *message)
{
    const api_error_info_t *info = api_error(e);
    json_out_reset(&r->out);
    r->status = info->status;
    r->error_code = info->code;
    jw_obj_begin(&r->out);
    jw_key(&r->out, "error");
    jw_obj_begin(&r->out);
    jw_kcstr(&r->out, "code", info->code);
    jw_kcstr(&r->out, "message", message != NULL ? message : info->meaning);
}

void error_end(request_t *r)
{
    jw_obj_end(&r->out);
    jw_obj_end(&r->out);
}

void reply_error(request_t *r, api_error_t e, const char *message)
{
    error_begin(r, e, message);
    error_end(r);
}

void reply_error_field(request_t *r, api_error_t e, const char *field, const char *message)
{
    error_begin(r, e, message);
    jw_kcstr(&r->out, "field", field);
    error_end(r);
}

void invalid_field(request_t *r, const char *field, const char *message)
{
    reply_error_field(r, API_ERR_INVALID_FIELD, field, message);
}

/* An engine result other than OK, with the numbers behind it. */
static void reply_result(request_t *r, const engine_outcome_t *o, const char *sku, size_t sku_len)
{
    char message[256];
    assert(o->result != ENGINE_OK);
    api_error_t e = engine_error[o->result];
    if (o->result == ENGINE_INSUFFICIENT_STOCK) {
        snprintf(message, sizeof message, "%.*s: %lld available", (int)sku_len, sku,
                 (long long)o->available);
    } else if (sku != NULL) {
        snprintf(message, sizeof message, "%.*s: %s", (int)sku_len, sku,
                 engine_result_message(o->result));
    } else {
        snprintf(message, sizeof message, "%s", engine_result_message(o->result));
    }
    error_begin(r, e, message);
    if (sku != NULL) {
        jw_kstr(&r->out, "sku", sku, sku_len);
    }
    if (o->result == ENGINE_INSUFFICIENT_STOCK) {
        jw_kint(&r->out, "available", o->available);
    }
    if (o->result == ENGINE_DUPLICATE_LINE) {
        jw_kcstr(&r->out, "field", "lines");
    }
    if (e == API_ERR_OVERLOADED) {
        jw_kcstr(&r->out, "reason", engine_result_name(o->result));
    }
    error_end(r);
}

void write_sku_object(server_t *s, json_out_t *j, uint32_t index)
{
    engine_sku_view_t v;
    engine_sku_view(guard_engine(s->guard), index, &v);
    jw_obj_begin(j);
    jw_kstr(j, "sku", v.sku, v.sku_len);
    jw_kint(j, "stock", v.stock);
    jw_kint(j, "held", v.held);
    jw_kint(j, "sold", v.sold);
    jw_kint(j, "available", v.available);
    write_sku_defenses(s, j, index);
    jw_obj_end(j);
}

static void write_sku(request_t *r, uint32_t index)
{
    write_sku_object(r->server, &r->out, index);
}

void write_hold(request_t *r, const engine_hold_view_t *h, int64_t now_ms, bool with_secret)
{
    const engine_t *e = guard_engine(r->server->guard);
    json_out_t *j = &r->out;
    char id[HOLDKEY_ID_TEXT_MAX + 1];
    size_t id_len = holdkey_id_format(&r->server->holdkey, h->id, id);
    jw_obj_begin(j);
    jw_kstr(j, "id", id, id_len);
    if (with_secret) {
        char secret[HOLDKEY_SECRET_TEXT_MAX + 1];
        size_t secret_len = holdkey_secret(&r->server->holdkey, HOLDKEY_HOLD, h->id, secret);
        jw_kstr(j, "secret", secret, secret_len);
    }
    jw_kstr(j, "customer", h->customer, h->customer_len);
    jw_kcstr(j, "state", engine_hold_state_name(h->state));
    jw_key(j, "lines");
    jw_arr_begin(j);
    for (uint16_t i = 0; i < h->line_count; i++) {
        engine_sku_view_t v;
        engine_sku_view(e, h->lines[i].sku_index, &v);
        jw_obj_begin(j);
        jw_kstr(j, "sku", v.sku, v.sku_len);
        jw_kint(j, "qty", h->lines[i].qty);
        jw_obj_end(j);
    }
    jw_arr_end(j);
    jw_key(j, "created_at");
    jw_time(j, h->created_ms);
    jw_key(j, "expires_at");
    jw_time(j, h->expires_ms);
    bool active = h->state == ENGINE_HOLD_ACTIVE;
    jw_kint(j, "expires_in_ms", active ? h->expires_ms - now_ms : 0);
    if (active) {
        /* Until then the cart is never taken back for buyers who wait. */
        int64_t safe_ms = guard_hold_safe_until_ms(r->server->guard, h->id);
        jw_key(j, "safe_until");
        jw_time(j, safe_ms > 0 && safe_ms < h->expires_ms ? safe_ms : h->expires_ms);
    }
    if (!active) {
        jw_key(j, "finished_at");
        jw_time(j, h->finished_ms);
    }
    if (h->order_ref != NULL) {
        bool sale = h->state == ENGINE_HOLD_COMMITTED_STATE;
        jw_kstr(j, sale ? "order_ref" : "reason", h->order_ref, h->order_ref_len);
    }
    jw_obj_end(j);
}

/* Replies with the hold, or 404 if it is gone. A create's reply (201) hands
 * the hold to its owner, with its secret. Under the engine lock. */
static void reply_hold(request_t *r, uint64_t id, int status, int64_t now_ms)
{
    engine_hold_view_t h;
    if (engine_hold_view(guard_engine(r->server->guard), id, &h) != ENGINE_OK) {
        char text[HOLDKEY_ID_TEXT_MAX + 1];
        holdkey_id_format(&r->server->holdkey, id, text);
        error_begin(r, API_ERR_NOT_FOUND, r->replayed != NULL
                                             ? "this Idempotency-Key made a hold that is no "
                                               "longer kept (finished over a day ago)"
                                             : "no such hold (or it finished over a day ago)");
        jw_kcstr(&r->out, "id", text);
        error_end(r);
        return;
    }
    json_out_reset(&r->out);
    r->status = status;
    write_hold(r, &h, now_ms, status == 201);
}

static bool rule_is_per_sku(policy_rule_t rule)
{
    return rule == POLICY_RULE_LINE_QTY || rule == POLICY_RULE_CUSTOMER_UNITS_PER_SKU ||
           rule == POLICY_RULE_FINGERPRINT_UNITS_PER_SKU ||
           rule == POLICY_RULE_IP_PREFIX_UNITS_PER_SKU || rule == POLICY_RULE_HOLD_SHARE ||
           rule == POLICY_RULE_NEWCOMER_POOL || rule == POLICY_RULE_SCARCITY_CHALLENGE ||
           rule == POLICY_RULE_ESCALATION_CHALLENGE;
}

/* Rules that refuse a hold but not a sale: the units are there to buy now
 * ("commit": true). */
static bool rule_sells_outright(policy_rule_t rule)
{
    return rule == POLICY_RULE_HOLD_SHARE || rule == POLICY_RULE_NEWCOMER_POOL;
}

/* 429 policy_denied or 428 challenge_required, with the numbers behind it.
 * req is the hold request (NULL for an extension, which is never
 * challenged). */
void reply_decision(request_t *r, const policy_decision_t *d, uint64_t request_hash,
                    const guard_hold_request_t *req, int64_t now_ms)
{
    char message[200];
    const char *rule = policy_rule_name(d->rule);
    bool challenge = d->verdict == POLICY_CHALLENGE;
    assert(d->verdict != POLICY_ALLOW && (req != NULL || !challenge));
    if (challenge) {
        snprintf(message, sizeof message,
                 "%s: send the request again with Holdfast-Proof: PREFIX:NONCE (%u bits)", rule,
                 d->bits);
    } else if (rule_sells_outright(d->rule)) {
        snprintf(message, sizeof message,
                 "%s: limit %lld, current %lld; the units can be bought now (\"commit\": true)",
                 rule, (long long)d->limit, (long long)d->current);
    } else {
        snprintf(message, sizeof message, "%s: limit %lld, current %lld", rule,
                 (long long)d->limit, (long long)d->current);
    }
    error_begin(r, challenge ? API_ERR_CHALLENGE_REQUIRED : API_ERR_POLICY_DENIED, message);
    jw_kcstr(&r->out, "rule", rule);
    if (req != NULL && rule_is_per_sku(d->rule)) {
        const engine_line_t *l = &req->create.lines[d->line_index];
        jw_kstr(&r->out, "sku", l->sku, l->sku_len);
    }
    if (challenge) {
        char prefix[GUARD_PREFIX_TEXT_MAX + 1];
        int64_t expires_ms =
            guard_challenge_make(r->server->guard, request_hash, d->bits, now_ms, prefix);
        jw_key(&r->out, "challenge");
        jw_obj_begin(&r->out);
        jw_kcstr(&r->out, "alg", "sha256");
        jw_kcstr(&r->out, "prefix", prefix);
        jw_kint(&r->out, "bits", d->bits);
        jw_key(&r->out, "expires_at");
        jw_time(&r->out, expires_ms);
        jw_obj_end(&r->out);
    } else {
        jw_kint(&r->out, "limit", d->limit);
        jw_kint(&r->out, "current", d->current);
        if (d->retry_after_ms >= 0) {
            jw_kint(&r->out, "retry_after_ms", d->retry_after_ms);
        }
        if (rule_sells_outright(d->rule)) {
            jw_key(&r->out, "buy_now");
            jw_value_raw(&r->out, "true", 4);
        }
    }
    error_end(r);
}

void reply_guard_result(request_t *r, const guard_outcome_t *o)
{
    if (o->result == GUARD_ENGINE) {
        reply_result(r, &o->engine, NULL, 0);
        return;
    }
    /* Denials and challenges have their own reply (reply_decision). */
    assert(o->result != GUARD_DENIED && o->result != GUARD_CHALLENGED);
    api_error_t e = guard_error[o->result];
    error_begin(r, e, guard_result_message(o->result));
    if (e == API_ERR_OVERLOADED) {
        jw_kcstr(&r->out, "reason", guard_result_name(o->result));
    }
    error_end(r);
}

/* ------------------------------------------------------------ request body */

static bool field_allowed(const char *key, const char *const *allowed)
{
    for (size_t i = 0; allowed[i] != NULL; i++) {
        if (strcmp(key, allowed[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* The body as a JSON object whose keys are all in allowed (NULL-terminated).
 * An empty body is an empty object unless required. On error replies and
 * returns NULL. */
json_t *parse_body(request_t *r, const char *const *allowed, bool required)
{
    if (r->body_size == 0 && !required) {
        return json_object();
    }
    if (r->body_size == 0) {
        reply_error(r, API_ERR_INVALID_JSON, "a JSON object body is required");
        return NULL;
    }
    json_error_t err;
    json_t *root = json_loadb(r->body, r->body_size, JSON_REJECT_DUPLICATES, &err);
    if (root == NULL) {
        char message[200];
        bool overflow = json_error_code(&err) == json_error_numeric_overflow;
        snprintf(message, sizeof message, "%s at byte %d",
                 overflow ? "number out of range" : err.text, err.position);
        reply_error(r, API_ERR_INVALID_JSON, message);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        reply_error(r, API_ERR_INVALID_JSON, "the body must be a JSON object");
        return NULL;
    }
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value) {
        if (!field_allowed(key, allowed)) {
            char message[300];
            snprintf(message, sizeof message, "unknown field \"%.200s\"", key);
            reply_error_field(r, API_ERR_UNKNOWN_FIELD, key, message);
            json_decref(root);
            return NULL;
        }
    }
    return root;
}

/* Reads an integer member in [lo, hi]; absent is fine unless required. */
bool get_int(request_t *r, json_t *obj, const char *key, const char *field, int64_t lo,
             int64_t hi, bool required, int64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL && !required) {
        return true;
    }
    if (v == NULL || !json_is_integer(v) || json_integer_value(v) < lo ||
        json_integer_value(v) > hi) {
        char message[200];
        snprintf(message, sizeof message, "%s must be an integer from %lld to %lld", field,
                 (long long)lo, (long long)hi);
        invalid_field(r, field, message);
        return false;
    }
    *out = json_integer_value(v);
    return true;
}

/* Reads a name member (customer, fingerprint, order_ref). */
bool get_name(request_t *r, json_t *obj, const char *key, bool required, const char **out,
              size_t *len_out)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL && !required) {
        *out = NULL;
        *len_out = 0;
        return true;
    }
    if (v == NULL || !json_is_string(v) ||
        !valid_name(json_string_value(v), json_string_length(v))) {
        char message[200];
        snprintf(message, sizeof message,
                 "%s must be 1-128 bytes of UTF-8 without control characters", key);
        invalid_field(r, key, message);
        return false;
    }
    *out = json_string_value(v);
    *len_out = json_string_length(v);
    return true;
}

/* ------------------------------------------------------------- engine calls */

void lock(request_t *r)
{
    pthread_mutex_lock(&r->server->engine_lock);
}

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

/* Every reply waits for the journal to cover all that was applied before it
 * was written, reads and errors included: none may reveal what a crash could
 * take back. */
void unlock(request_t *r)
{
    server_t *s = r->server;
    webhooks_collect(s, NULL, NULL, false);
    r->seq = store_appended_seq_of(&s->store, &r->generation);
    log_escalations(s);
    pthread_mutex_unlock(&s->engine_lock);
}

bool journal(request_t *r, const guard_op_t *op, const guard_outcome_t *o)
{
    if (!o->changed) {
        return true;
    }
    webhooks_collect(r->server, op, o, true); /* its events commit with it */
    if (store_append(&r->server->store, op, server_mono_ms()) == 0) {
        /* Refused before anything reached the journal: a restart recovers
         * what was durable, without this change. */
        reply_error(r, API_ERR_STORAGE_UNAVAILABLE,
                    "the journal cannot be written; this change was not kept");
        return false;
    }
    r->changed = true;
    return true;
}

bool apply_op(request_t *r, guard_op_t *op, guard_outcome_t *o)
{
    op->engine.now_ms = server_now_ms(r->server);
    *o = guard_apply(r->server->guard, op);
    return journal(r, op, o);
}

/* -------------------------------------------------------------------- skus */

static bool path_sku(request_t *r, const route_args_t *a)
{
    if (!valid_sku(a->value[0], a->len[0])) {
        invalid_field(r, "sku", "sku must be 1-64 bytes of [A-Za-z0-9._:-]");
        return false;
    }
    return true;
}

/* Applies one op of a PUT; false after writing its error. */
static bool sku_put_step(request_t *r, guard_op_t *op, guard_outcome_t *o)
{
    if (!apply_op(r, op, o)) {
        return false; /* the journal refused it: the 503 is written */
    }
    if (o->result != GUARD_OK) {
        reply_guard_result(r, o);
        return false;
    }
    return true;
}

/* PUT /v1/skus/{sku}: the stock, and the sku's own policy if given. Stock
 * may be left out only to change the policy of a sku that exists. */
static void sku_put_apply(request_t *r, const route_args_t *a, guard_op_t *put, bool has_stock,
                          guard_op_t *policy)
{
    server_t *s = r->server;
    guard_outcome_t o = {.result = GUARD_OK};
    uint32_t index;
    bool created = false;
    lock(r);
    bool exists = engine_sku_find(guard_engine(s->guard), a->value[0], a->len[0], &index);
    bool with_policy = policy->kind == GUARD_OP_SKU_POLICY;
    bool ok = has_stock || (exists && with_policy);
    if (!ok) {
        invalid_field(r, "stock",
                      "stock is required (only a sku's policy may be changed without it)");
    }
    /* Everything that can refuse the policy is checked before the stock is
     * applied: a refused PUT changes nothing. */
    ok = ok && (!with_policy || sku_policy_check(r, policy));
    if (ok && has_stock) {
        ok = sku_put_step(r, put, &o);
        created = o.engine.created;
    }
    if (ok && with_policy) {
        ok = sku_put_step(r, policy, &o);
    }
    if (ok) {
        engine_sku_find(guard_engine(s->guard), a->value[0], a->len[0], &index);
        chart_note(s, index, server_now_ms(s));
        r->status = created ? 201 : 200;
        write_sku(r, index);
    }
    unlock(r);
}

static void h_sku_put(request_t *r, const route_args_t *a)
{
    static const char *const fields[] = {"stock", "policy", NULL};
    if (!path_sku(r, a)) {
        return;
    }
    json_t *body = parse_body(r, fields, true);
    guard_op_t put = {.kind = GUARD_OP_ENGINE};
    guard_op_t policy = {.kind = GUARD_OP_ENGINE}; /* not a policy op unless one is given */
    put.engine.kind = ENGINE_OP_SKU_PUT;
    put.engine.u.sku_put.stock = -1;
    bool ok = body != NULL && get_int(r, body, "stock", "stock", 0, HF_STOCK_MAX, false,
                                      &put.engine.u.sku_put.stock);
    json_t *doc = ok ? json_object_get(body, "policy") : NULL;
    if (ok && doc != NULL) {
        memcpy(policy.u.sku_policy.sku, a->value[0], a->len[0]);
        policy.u.sku_policy.sku_len = (uint8_t)a->len[0];
        ok = sku_policy_parse(r, doc, &policy);
    }
    json_decref(body);
    if (!ok) {
        return;
    }
    memcpy(put.engine.u.sku_put.sku, a->value[0], a->len[0]);
    put.engine.u.sku_put.sku_len = (uint8_t)a->len[0];
    observe_audit(r, &put);
    observe_audit(r, &policy);
    sku_put_apply(r, a, &put, put.engine.u.sku_put.stock >= 0, &policy);
}

static void h_sku_get(request_t *r, const route_args_t *a)
{
    if (!path_sku(r, a)) {
        return;
    }
    server_t *s = r->server;
    uint32_t i;
    lock(r);
    guard_advance(s->guard, server_now_ms(s));
    if (!engine_sku_find(guard_engine(s->guard), a->value[0], a->len[0], &i)) {
        reply_error(r, API_ERR_NOT_FOUND, "no such sku");
    } else {
        r->status = 200;
        write_sku(r, i);
    }
    unlock(r);
}

query_number_t query_number(request_t *r, const char *name, uint64_t min, uint64_t max,
                            uint64_t *out)
{
    const char *text = request_value(r, MHD_GET_ARGUMENT_KIND, name);
    if (text == NULL) {
        return QUERY_ABSENT;
    }
    uint64_t v = 0;
    size_t n = 0;
    for (; text[n] >= '0' && text[n] <= '9'; n++) {
        if (v > (UINT64_MAX - 9) / 10) {
            return QUERY_BAD; /* past any max */
        }
        v = v * 10 + (uint64_t)(text[n] - '0');
    }
    if (n == 0 || text[n] != '\0' || v < min || v > max) {
        return QUERY_BAD;
    }
    *out = v;
    return QUERY_OK;
}

bool query_limit(request_t *r, int64_t max, int64_t def, int64_t *limit)
{
    assert(max >= 1);
    uint64_t v = (uint64_t)def;
    if (query_number(r, "limit", 1, (uint64_t)max, &v) == QUERY_BAD) {
        char message[80];
        snprintf(message, sizeof message, "limit must be an integer from 1 to %lld",
                 (long long)max);
        invalid_field(r, "limit", message);
        return false;
    }
    *limit = (int64_t)v;
    return true;
}

/* Parses ?after=SKU&limit=N. */
static bool list_args(request_t *r, const char **after, int64_t *limit)
{
    *after = request_value(r, MHD_GET_ARGUMENT_KIND, "after");
    if (!query_limit(r, HF_SKU_PAGE_MAX, HF_SKU_PAGE_DEFAULT, limit)) {
        return false;
    }
    if (*after != NULL && !valid_sku(*after, strlen(*after))) {
        invalid_field(r, "after", "after must be a sku");
        return false;
    }
    return true;
}

static void h_sku_list(request_t *r, const route_args_t *a)
{
    (void)a;
    const char *after;
    int64_t limit;
    if (!list_args(r, &after, &limit)) {
        return;
    }
    server_t *s = r->server;
    const engine_t *e = guard_engine(s->guard);
    uint32_t start = 0;
    lock(r);
    guard_advance(s->guard, server_now_ms(s));
    if (after != NULL && !engine_sku_find(e, after, strlen(after), &start)) {
        invalid_field(r, "after", "after names no sku");
        unlock(r);
        return;
    }
    start += after != NULL;
    uint32_t count = engine_sku_count(e);
    uint32_t end = count - start < (uint64_t)limit ? count : start + (uint32_t)limit;
    r->status = 200;
    jw_obj_begin(&r->out);
    jw_key(&r->out, "skus");
    jw_arr_begin(&r->out);
    for (uint32_t i = start; i < end; i++) {
        write_sku(r, i);
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
    unlock(r);
}

/* ------------------------------------------------------------------- holds */

static bool parse_line(request_t *r, json_t *line, size_t i, engine_line_t *out)
{
    static const char *const fields[] = {"sku", "qty", NULL};
    char field[32];
    if (!json_is_object(line)) {
        snprintf(field, sizeof field, "lines[%zu]", i);
        invalid_field(r, field, "each line must be an object {\"sku\": ..., \"qty\": ...}");
        return false;
    }
    const char *key;
    json_t *value;
    json_object_foreach(line, key, value) {
        if (!field_allowed(key, fields)) {
            snprintf(field, sizeof field, "lines[%zu].%.16s", i, key);
            reply_error_field(r, API_ERR_UNKNOWN_FIELD, field, "a line has only sku and qty");
            return false;
        }
    }
    json_t *sku = json_object_get(line, "sku");
    if (sku == NULL || !json_is_string(sku) ||
        !valid_sku(json_string_value(sku), json_string_length(sku))) {
        snprintf(field, sizeof field, "lines[%zu].sku", i);
        invalid_field(r, field, "sku must be 1-64 bytes of [A-Za-z0-9._:-]");
        return false;
    }
    snprintf(field, sizeof field, "lines[%zu].qty", i);
    int64_t qty;
    if (!get_int(r, line, "qty", field, 1, HF_QTY_MAX, true, &qty)) {
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
        invalid_field(r, "lines", "lines must be an array of 1 to 64 lines");
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
                invalid_field(r, "lines", "a hold names each sku at most once");
                return false;
            }
        }
    }
    return true;
}

static bool parse_idem_key(request_t *r, engine_hold_create_t *c)
{
    const char *key = request_value(r, MHD_HEADER_KIND, "Idempotency-Key");
    if (key == NULL) {
        return true;
    }
    size_t len = strlen(key);
    if (!valid_idem_key(key, len)) {
        invalid_field(r, "Idempotency-Key", "Idempotency-Key must be 1-64 printable bytes");
        return false;
    }
    memcpy(c->idem_key, key, len);
    c->idem_key_len = (uint8_t)len;
    return true;
}

static bool parse_who(request_t *r, json_t *body, engine_hold_create_t *c)
{
    const char *customer, *fingerprint;
    size_t customer_len, fingerprint_len;
    json_t *ip = json_object_get(body, "ip");
    if (!get_name(r, body, "customer", true, &customer, &customer_len) ||
        !get_name(r, body, "fingerprint", false, &fingerprint, &fingerprint_len)) {
        return false;
    }
    if (ip != NULL && (!json_is_string(ip) || !valid_ip(json_string_value(ip)))) {
        invalid_field(r, "ip", "ip must be an IPv4 or IPv6 address");
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
        invalid_field(r, "commit", "commit must be true or false");
        return false;
    }
    if (!get_name(r, body, "order_ref", false, &order_ref, &order_ref_len)) {
        return false;
    }
    req->buy_now = commit != NULL && json_is_true(commit);
    if (order_ref != NULL && !req->buy_now) {
        invalid_field(r, "order_ref", "order_ref goes with \"commit\": true (buy now)");
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
        invalid_field(r, "lines", "lines is required");
        return false;
    }
    return parse_lines(r, json_object_get(body, "lines"), c) &&
           get_int(r, body, "ttl_ms", "ttl_ms", HF_TTL_MS_MIN, HF_TTL_MS_MAX, false,
                   &c->ttl_ms) &&
           parse_idem_key(r, c);
}

/* Names the sku a failed create is about: the unknown one or the short one. */
static void reply_create_error(request_t *r, const guard_outcome_t *o,
                               const engine_hold_create_t *c)
{
    const engine_outcome_t *e = &o->engine;
    if (o->result == GUARD_ENGINE && e->result == ENGINE_SKU_NOT_FOUND) {
        const engine_line_t *l = &c->lines[e->sku_index];
        reply_result(r, e, l->sku, l->sku_len);
    } else if (o->result == GUARD_ENGINE && (e->result == ENGINE_INSUFFICIENT_STOCK ||
                                             e->result == ENGINE_DUPLICATE_LINE)) {
        engine_sku_view_t v;
        engine_sku_view(guard_engine(r->server->guard), e->sku_index, &v);
        reply_result(r, e, v.sku, v.sku_len);
    } else {
        reply_guard_result(r, o);
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

static void hold_create_apply(request_t *r, guard_hold_request_t *req)
{
    server_t *s = r->server;
    guard_op_t op;
    lock(r);
    int64_t now_ms = server_now_ms(s);
    uint64_t hash = guard_request_hash(req); /* what a proof and a challenge are bound to */
    read_proof(r, req, hash, now_ms);
    guard_outcome_t o = guard_hold(s->guard, req, now_ms, &op);
    chart_note_hold(s, &req->create, now_ms); /* granted or refused, the sku is in play */
    if (journal(r, &op, &o)) {
        if (o.result == GUARD_OK || o.result == GUARD_ENGINE) { /* the policy counts its own */
            __atomic_fetch_add(&s->metrics.hold_results[o.engine.result], 1, __ATOMIC_RELAXED);
        }
        if (o.result == GUARD_DENIED || o.result == GUARD_CHALLENGED) {
            count_sku_refusal(s, req, &o.decision);
            reply_decision(r, &o.decision, hash, req, now_ms);
        } else if (o.result != GUARD_OK) {
            reply_create_error(r, &o, &req->create);
        } else {
            r->replayed = o.engine.replayed ? "true" : NULL;
            reply_hold(r, o.engine.hold_id, 201, now_ms);
        }
    }
    unlock(r);
}

static void h_hold_create(request_t *r, const route_args_t *a)
{
    static const char *const fields[] = {"customer", "ip",     "fingerprint", "lines",
                                         "ttl_ms",   "commit", "order_ref",   NULL};
    (void)a;
    json_t *body = parse_body(r, fields, true);
    guard_hold_request_t req;
    memset(&req, 0, offsetof(guard_hold_request_t, create) +
                        offsetof(engine_hold_create_t, lines));
    memset((char *)&req + offsetof(guard_hold_request_t, buy_now), 0,
           sizeof req - offsetof(guard_hold_request_t, buy_now));
    bool ok = body != NULL && parse_hold_create(r, body, &req);
    json_decref(body);
    if (ok) {
        hold_create_apply(r, &req);
    }
}

static const struct {
    const char *header;
    api_error_t required, wrong;
    const char *what;
} secret_wire[2] = {
    [HOLDKEY_HOLD] = {"Hold-Secret", API_ERR_HOLD_SECRET_REQUIRED, API_ERR_HOLD_SECRET_WRONG,
                      "the hold's secret (\"secret\" in the reply that created it)"},
    [HOLDKEY_WAIT] = {"Waitlist-Secret", API_ERR_WAITLIST_SECRET_REQUIRED,
                      API_ERR_WAITLIST_SECRET_WRONG,
                      "the waitlist entry's secret (\"secret\" in the reply that joined it)"},
};

static void count_secret(request_t *r, holdkey_kind_t kind, secret_outcome_t outcome)
{
    __atomic_fetch_add(&r->server->metrics.secrets[kind][outcome], 1, __ATOMIC_RELAXED);
}

/* Checked before anything is looked up, so a refusal says nothing about
 * whether the id names anything: a guessed id teaches nothing. */
bool secret_allows(request_t *r, holdkey_kind_t kind, uint64_t id)
{
    server_t *s = r->server;
    char message[160];
    const char *sent = request_value(r, MHD_HEADER_KIND, secret_wire[kind].header);
    if (sent != NULL && holdkey_secret_matches(&s->holdkey, kind, id, sent)) {
        count_secret(r, kind, SECRET_GOOD);
        return true;
    }
    if (sent != NULL) {
        count_secret(r, kind, SECRET_WRONG);
        snprintf(message, sizeof message, "%s is not %s", secret_wire[kind].header,
                 secret_wire[kind].what);
        reply_error(r, secret_wire[kind].wrong, message);
        return false;
    }
    if (r->role == ROLE_ADMIN || s->config.hold_secret_optional) {
        count_secret(r, kind, r->role == ROLE_ADMIN ? SECRET_ADMIN : SECRET_MISSING_ALLOWED);
        return true;
    }
    count_secret(r, kind, SECRET_MISSING);
    snprintf(message, sizeof message, "send %s: %s", secret_wire[kind].header,
             secret_wire[kind].what);
    reply_error(r, secret_wire[kind].required, message);
    return false;
}

/* The hold named in the path, if the request may touch it; false after a
 * 404 (an id no hold could have) or a 403 (secret_allows). */
static bool path_hold(request_t *r, const route_args_t *a, uint64_t *id)
{
    if (holdkey_id_parse(&r->server->holdkey, a->value[0], a->len[0], id) == HOLDKEY_ID_BAD) {
        reply_error(r, API_ERR_NOT_FOUND, "no such hold");
        return false;
    }
    return secret_allows(r, HOLDKEY_HOLD, *id);
}

static void h_hold_get(request_t *r, const route_args_t *a)
{
    uint64_t id;
    if (!path_hold(r, a, &id)) {
        return;
    }
    server_t *s = r->server;
    lock(r);
    int64_t now_ms = server_now_ms(s);
    guard_advance(s->guard, now_ms);
    reply_hold(r, id, 200, now_ms);
    unlock(r);
}

/* Commit and release: the same shape around one op. */
static void hold_change(request_t *r, const route_args_t *a, guard_op_t *op)
{
    if (!path_hold(r, a, &op->engine.u.hold.hold_id)) {
        return;
    }
    observe_audit_operator_hold(r, op);
    guard_outcome_t o;
    lock(r);
    if (apply_op(r, op, &o)) {
        if (o.result != GUARD_OK) {
            reply_guard_result(r, &o);
        } else {
            reply_hold(r, op->engine.u.hold.hold_id, 200, op->engine.now_ms);
        }
    }
    unlock(r);
}

static void h_hold_commit(request_t *r, const route_args_t *a)
{
    static const char *const fields[] = {"order_ref", NULL};
    json_t *body = parse_body(r, fields, false);
    const char *order_ref;
    size_t order_ref_len;
    guard_op_t op = {.kind = GUARD_OP_ENGINE};
    op.engine.kind = ENGINE_OP_HOLD_COMMIT;
    bool ok = body != NULL && get_name(r, body, "order_ref", false, &order_ref, &order_ref_len);
    if (ok && order_ref != NULL) {
        memcpy(op.engine.u.hold.order_ref, order_ref, order_ref_len); /* before the body goes */
        op.engine.u.hold.order_ref_len = (uint8_t)order_ref_len;
    }
    json_decref(body);
    if (ok) {
        hold_change(r, a, &op);
    }
}

/* DELETE: an operator (admin key) may say why, and the hold keeps it. */
static void h_hold_release(request_t *r, const route_args_t *a)
{
    static const char *const fields[] = {"reason", NULL};
    json_t *body = parse_body(r, fields, false);
    const char *reason;
    size_t reason_len;
    guard_op_t op = {.kind = GUARD_OP_ENGINE};
    op.engine.kind = ENGINE_OP_HOLD_RELEASE;
    bool ok = body != NULL && get_name(r, body, "reason", false, &reason, &reason_len);
    if (ok && reason != NULL && r->role != ROLE_ADMIN) {
        reply_error(r, API_ERR_FORBIDDEN, "a reason is for an operator: it needs the admin key");
        ok = false;
    }
    if (ok && reason != NULL) {
        memcpy(op.reason, reason, reason_len);
        op.reason_len = (uint8_t)reason_len;
    }
    json_decref(body);
    if (ok) {
        hold_change(r, a, &op);
    }
}

static void h_hold_extend(request_t *r, const route_args_t *a)
{
    static const char *const fields[] = {"ttl_ms", NULL};
    json_t *body = parse_body(r, fields, true);
    int64_t ttl_ms = 0;
    uint64_t id;
    bool ok = body != NULL &&
              get_int(r, body, "ttl_ms", "ttl_ms", HF_TTL_MS_MIN, HF_TTL_MS_MAX, true, &ttl_ms);
    json_decref(body);
    if (!ok || !path_hold(r, a, &id)) {
        return;
    }
    server_t *s = r->server;
    guard_op_t op;
    lock(r);
    int64_t now_ms = server_now_ms(s);
    guard_outcome_t o = guard_extend(s->guard, id, ttl_ms, now_ms, &op);
    if (journal(r, &op, &o)) {
        if (o.result == GUARD_DENIED) {
            reply_decision(r, &o.decision, 0, NULL, now_ms);
        } else if (o.result != GUARD_OK) {
            reply_guard_result(r, &o);
        } else {
            reply_hold(r, id, 200, now_ms);
        }
    }
    unlock(r);
}

/* -------------------------------------------------------------- operations */

static void h_healthz(request_t *r, const route_args_t *a)
{
    (void)a;
    bool failed = store_failed(&r->server->store);
    r->status = failed ? 503 : 200;
    jw_obj_begin(&r->out);
    jw_kcstr(&r->out, "status", failed ? "storage_unavailable" : "ok");
    jw_obj_end(&r->out);
}

static void h_metrics(request_t *r, const route_args_t *a)
{
    (void)a;
    r->status = 200;
    r->text = true;
    metrics_render(r->server, &r->out);
    /* Like every reply, the figures wait until what they count is durable. */
    r->seq = store_appended_seq_of(&r->server->store, &r->generation);
}

/* ------------------------------------------------------------------ routing */

static const char *const no_params[] = {NULL};
static const char *const page_params[] = {"after", "limit", NULL};
static const char *const top_params[] = {"by", "limit", NULL};
static const char *const event_params[] = {"skus", NULL};
static const char *const history_params[] = {"sku", "since", NULL};

/* docs/openapi.yaml documents each of these (tests/contract checks it). */
static const route_t routes[] = {
    {"GET", "/healthz", ROLE_NONE, h_healthz, NULL},
    {"GET", "/metrics", ROLE_ADMIN, h_metrics, NULL},
    {"GET", "/v1/skus", ROLE_SHOP, h_sku_list, page_params},
    {"GET", "/v1/skus/*", ROLE_SHOP, h_sku_get, no_params},
    {"PUT", "/v1/skus/*", ROLE_ADMIN, h_sku_put, no_params},
    {"POST", "/v1/holds", ROLE_SHOP, h_hold_create, no_params},
    {"GET", "/v1/holds/*", ROLE_SHOP, h_hold_get, no_params},
    {"DELETE", "/v1/holds/*", ROLE_SHOP, h_hold_release, no_params},
    {"POST", "/v1/holds/*/commit", ROLE_SHOP, h_hold_commit, no_params},
    {"POST", "/v1/holds/*/extend", ROLE_SHOP, h_hold_extend, no_params},
    {"GET", "/v1/policy", ROLE_ADMIN, h_policy_get, no_params},
    {"PUT", "/v1/policy", ROLE_ADMIN, h_policy_put, no_params},
    {"POST", "/v1/skus/*/waitlist", ROLE_SHOP, h_wait_join, no_params},
    {"GET", "/v1/waitlist/*", ROLE_SHOP, h_wait_get, no_params},
    {"DELETE", "/v1/waitlist/*", ROLE_SHOP, h_wait_cancel, no_params},
    {"GET", "/v1/identities/top", ROLE_ADMIN, h_identities_top, top_params},
    /* '+' takes the rest up to the literal suffix: an IP prefix has a '/' */
    {"POST", "/v1/identities/*/+/revoke", ROLE_ADMIN, h_identity_revoke, no_params},
    {"GET", "/v1/events", ROLE_SHOP, h_events, event_params},
    {"POST", "/v1/sim", ROLE_ADMIN, h_sim_start, no_params},
    {"GET", "/v1/sim", ROLE_ADMIN, h_sim_get, no_params},
    {"DELETE", "/v1/sim", ROLE_ADMIN, h_sim_stop, no_params},
    {"GET", "/v1/audit", ROLE_ADMIN, h_audit_list, page_params},
    {"GET", "/v1/history", ROLE_ADMIN, h_history, history_params},
    /* the web pages: public; what they show comes from the API above */
    {"GET", "/", ROLE_NONE, h_static, NULL},
    {"GET", "/admin", ROLE_NONE, h_static, NULL},
    {"GET", "/shop/*", ROLE_NONE, h_static, NULL},
    {"GET", "/admin/*", ROLE_NONE, h_static, NULL},
    {"GET", "/pow/*", ROLE_NONE, h_static, NULL},
    {"GET", "/vendor/uplot/*", ROLE_NONE, h_static, NULL},
};
#define ROUTE_COUNT (sizeof routes / sizeof routes[0])
_Static_assert(ROUTE_COUNT <= SERVER_ROUTE_COUNT_MAX, "metrics has room for every route");

int routes_count(void)
{
    return (int)ROUTE_COUNT;
}

const char *routes_label(int route)
{
    return route >= 0 && route < (int)ROUTE_COUNT ? routes[route].pattern : "unmatched";
}

const char *routes_method(int route)
{
    return route >= 0 && route < (int)ROUTE_COUNT ? routes[route].method : "other";
}

/* Matches url against a pattern, capturing the '*' segments. */
static bool path_matches(const char *pattern, const char *url, route_args_t *a)
{
    int captured = 0;
    while (*pattern != '\0') {
        if (*pattern == '+') {
            /* The rest of the pattern is a literal suffix of the url. */
            size_t rest = strlen(pattern + 1), left = strlen(url);
            if (left <= rest || captured == 2 || strcmp(url + left - rest, pattern + 1) != 0) {
                return false;
            }
            a->value[captured] = url;
            a->len[captured++] = left - rest;
            return true;
        }
        if (*pattern == '*') {
            size_t n = strcspn(url, "/");
            if (n == 0 || captured == 2) {
                return false;
            }
            a->value[captured] = url;
            a->len[captured++] = n;
            url += n;
            pattern++;
        } else if (*pattern++ != *url++) {
            return false;
        }
    }
    return *url == '\0';
}

/* The key's role, compared in constant time against every configured key;
 * *slot is the matching key's index in server_t.key_ids (-1: none). */
static role_t role_of(const server_config_t *c, const char *header, int *slot)
{
    *slot = -1;
    if (header == NULL || strncmp(header, "Bearer ", 7) != 0) {
        return ROLE_NONE;
    }
    const char *key = header + 7;
    size_t len = strnlen(key, SERVER_KEY_BYTES_MAX);
    role_t role = ROLE_NONE;
    /* Every key is compared in full, whatever matches first; the time taken
     * depends on the configured keys' lengths, never on how much of one the
     * client guessed right. */
    for (uint32_t i = 0; i <= c->api_key_count; i++) {
        const char *k = i < c->api_key_count ? c->api_keys[i] : c->admin_key;
        size_t klen = strlen(k);
        unsigned diff = (unsigned)(klen != len) | (klen == 0);
        for (size_t b = 0; b < klen; b++) {
            diff |= (unsigned)(unsigned char)k[b] ^ (unsigned char)(b < len ? key[b] : 0);
        }
        if (diff == 0) {
            role = i < c->api_key_count ? (role == ROLE_ADMIN ? ROLE_ADMIN : ROLE_SHOP)
                                        : ROLE_ADMIN;
            *slot = (int)i;
        }
    }
    return role;
}

bool routes_for_operator(request_t *r, const char *url)
{
    if (strcmp(url, "/healthz") == 0 || strcmp(url, "/metrics") == 0) {
        return true;
    }
    const server_config_t *c = &r->server->config;
    if (c->admin_key[0] == '\0') {
        return false; /* no keys: nobody is known to be the operator */
    }
    const char *auth = request_value(r, MHD_HEADER_KIND, "Authorization");
    return role_of(c, auth, &r->key_slot) == ROLE_ADMIN;
}

typedef struct {
    const char *const *allowed;
    const char *unknown; /* the first argument not allowed, or NULL */
} arg_check_t;

static enum MHD_Result check_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    arg_check_t *c = cls;
    (void)kind;
    (void)value;
    if (field_allowed(key, c->allowed)) {
        return MHD_YES;
    }
    c->unknown = key;
    return MHD_NO;
}

/* Refuses a query parameter the route does not take; false after the 400. */
static bool params_known(request_t *r, const char *const *allowed)
{
    arg_check_t c = {.allowed = allowed, .unknown = NULL};
    if (allowed == NULL) {
        return true;
    }
    if (r->lookup == NULL) {
        MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, check_arg, &c);
    }
    for (uint32_t i = 0; r->lookup != NULL && r->arg_name != NULL && c.unknown == NULL; i++) {
        const char *key = r->arg_name(r->lookup_ctx, i);
        if (key == NULL) {
            break;
        }
        check_arg(&c, MHD_GET_ARGUMENT_KIND, key, NULL);
    }
    if (c.unknown == NULL) {
        return true;
    }
    char field[QUERY_NAME_SHOWN_BYTES_MAX + 1], takes[80] = "", message[300];
    snprintf(field, sizeof field, "%s", c.unknown);
    for (size_t i = 0; allowed[i] != NULL; i++) {
        size_t n = strlen(takes);
        snprintf(takes + n, sizeof takes - n, "%s%s", i > 0 ? ", " : "", allowed[i]);
    }
    snprintf(message, sizeof message, "unknown query parameter \"%s\" (this route takes %s)",
             field, takes[0] != '\0' ? takes : "none");
    reply_error_field(r, API_ERR_UNKNOWN_FIELD, field, message);
    return false;
}

static bool authorised(request_t *r, role_t needed)
{
    const server_config_t *c = &r->server->config;
    if (c->api_key_count == 0 && c->admin_key[0] == '\0') {
        r->role = ROLE_ADMIN; /* no keys: loopback only, and everything is allowed */
        return true;
    }
    const char *auth = request_value(r, MHD_HEADER_KIND, "Authorization");
    role_t role = role_of(c, auth, &r->key_slot);
    r->role = role;
    if (needed == ROLE_NONE) {
        return true;
    }
    if (role == ROLE_NONE) {
        reply_error(r, API_ERR_UNAUTHORIZED, "send Authorization: Bearer KEY");
        return false;
    }
    if (needed == ROLE_ADMIN && role != ROLE_ADMIN) {
        reply_error(r, API_ERR_FORBIDDEN, "this needs the admin key");
        return false;
    }
    return true;
}

void routes_handle(request_t *r, const char *method, const char *url)
{
    route_args_t a;
    r->route = -1;
    r->key_slot = -1;
    r->url = url;
    r->allow[0] = '\0';
    for (size_t i = 0; i < ROUTE_COUNT; i++) {
        memset(&a, 0, sizeof a);
        if (!path_matches(routes[i].pattern, url, &a)) {
            continue;
        }
        if (strcmp(routes[i].method, method) != 0) {
            size_t n = strlen(r->allow);
            snprintf(r->allow + n, sizeof r->allow - n, "%s%s", n ? ", " : "", routes[i].method);
            continue;
        }
        r->route = (int)i;
        if (!authorised(r, routes[i].role)) {
            return;
        }
        if (r->body_too_large) {
            reply_error(r, API_ERR_BODY_TOO_LARGE, "the body is over 65536 bytes");
        } else if (!params_known(r, routes[i].params)) {
            /* the 400 is written */
        } else if (routes[i].fn != h_healthz && store_failed(&r->server->store)) {
            reply_error(r, API_ERR_STORAGE_UNAVAILABLE, "the journal cannot be written");
        } else {
            routes[i].fn(r, &a);
        }
        return;
    }
    if (r->allow[0] != '\0') {
        reply_error(r, API_ERR_METHOD_NOT_ALLOWED, "this path does not take that method");
    } else {
        reply_error(r, API_ERR_NOT_FOUND, "no such route");
    }
}
