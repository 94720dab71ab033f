/*
 * defenses.c - the policy document (GET and PUT /v1/policy), a sku's own
 * policy, and a sku's defense state. The decisions are the guard's
 * (guard/guard.h).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "observe.h"
#include "outcome.h"
#include "defenses.h"
#include "policy_json.h"


/* jansson's document, copied into our writer (the policy is small). */
static void write_json(json_out_t *j, const json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert(text != NULL);
    jw_value_raw(j, text, strlen(text));
    free(text);
}

void defenses_write_doc(json_out_t *j, const policy_config_t *c, uint64_t mask)
{
    json_t *doc = policy_json_write(c, mask);
    write_json(j, doc);
    json_decref(doc);
}

static void reply_policy_error(request_t *r, const policy_json_error_t *err)
{
    request_error_field(r, err->unknown ? API_ERR_UNKNOWN_FIELD : API_ERR_INVALID_FIELD, err->field,
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
    request_invalid_field(r, field, message);
}

static void get_reply(pipe_t *p, void *args)
{
    (void)args;
    p->r->status = 200;
    defenses_write_doc(&p->r->out, guard_policy(p->s->guard), POLICY_MASK_ALL);
}

const handler_t defenses_get_handler = {NULL, NULL, get_reply, NULL};


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

typedef struct {
    guard_op_t op;
    guard_outcome_t o;
} put_args_t;
_Static_assert(sizeof(put_args_t) <= REQUEST_ARGS_BYTES_MAX, "a PUT's arguments fit");

/* PUT /v1/policy takes the whole document: what it leaves out is default. */
static bool put_parse(request_t *r, const route_args_t *a, void *args)
{
    put_args_t *u = args;
    (void)a;
    json_error_t jerr;
    json_t *doc = r->body_size == 0 ? NULL
                                    : json_loadb(r->body, r->body_size, JSON_REJECT_DUPLICATES,
                                                 &jerr);
    if (doc == NULL) {
        request_error(r, API_ERR_INVALID_JSON, "the body must be the policy document (JSON)");
        return false;
    }
    memset(&u->op, 0, sizeof u->op);
    u->op.kind = GUARD_OP_POLICY_PUT;
    u->op.u.policy = policy_config_default();
    policy_json_error_t err;
    uint64_t mask;
    policy_field_t bad;
    bool ok = policy_json_read(doc, POLICY_MASK_ALL, &u->op.u.policy, &mask, &err);
    json_decref(doc);
    if (!ok) {
        reply_policy_error(r, &err);
        return false;
    }
    if (!policy_config_valid(&u->op.u.policy, &bad)) {
        reply_relation_error(r, bad, "", "");
        return false;
    }
    observe_audit(r, &u->op);
    return true;
}

static void put_run(pipe_t *p, void *args)
{
    put_args_t *u = args;
    if (!skus_fit(p->r, &u->op.u.policy)) {
        pipe_answered(p);
        return;
    }
    pipe_apply(p, &u->op, &u->o);
}

static void put_reply(pipe_t *p, void *args)
{
    (void)args;
    p->r->status = 200;
    defenses_write_doc(&p->r->out, guard_policy(p->s->guard), POLICY_MASK_ALL);
}

const handler_t defenses_put_handler = {put_parse, put_run, put_reply, NULL};

bool defenses_sku_parse(request_t *r, json_t *doc, guard_op_t *op)
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
        request_error_field(r, err.unknown ? API_ERR_UNKNOWN_FIELD : API_ERR_INVALID_FIELD, field,
                            err.message);
        return false;
    }
    return true;
}

bool defenses_sku_check(request_t *r, const guard_op_t *op)
{
    policy_field_t bad;
    guard_result_t fits = guard_sku_policy_check(r->server->guard, op, &bad);
    if (fits == GUARD_POLICY_CONFLICT) {
        reply_relation_error(r, bad, "policy.", " on top of the shop's policy");
    } else if (fits != GUARD_OK) {
        guard_outcome_t o = {.result = fits};
        outcome_reply_guard(r, &o);
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

void defenses_write_sku(const server_t *s, json_out_t *j, uint32_t sku_index)
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
        defenses_write_doc(j, c, mask);
    }
}
