/*
 * outcome.c - error replies for the guard's and the engine's results.
 */
#include <assert.h>
#include <stdio.h>

#include "outcome.h"

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

/* The error of each guard result a outcome_reply_guard answers; the 503s
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


/* An engine result other than OK, with the numbers behind it. */
void outcome_reply_engine(request_t *r, const engine_outcome_t *o, const char *sku,
                          size_t sku_len)
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
    request_error_begin(r, e, message);
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
    request_error_end(r);
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
void outcome_reply_decision(request_t *r, const policy_decision_t *d, uint64_t request_hash,
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
    request_error_begin(r, challenge ? API_ERR_CHALLENGE_REQUIRED : API_ERR_POLICY_DENIED, message);
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
    request_error_end(r);
}

void outcome_reply_guard(request_t *r, const guard_outcome_t *o)
{
    if (o->result == GUARD_ENGINE) {
        outcome_reply_engine(r, &o->engine, NULL, 0);
        return;
    }
    /* Denials and challenges have their own reply (outcome_reply_decision). */
    assert(o->result != GUARD_DENIED && o->result != GUARD_CHALLENGED);
    api_error_t e = guard_error[o->result];
    request_error_begin(r, e, guard_result_message(o->result));
    if (e == API_ERR_OVERLOADED) {
        jw_kcstr(&r->out, "reason", guard_result_name(o->result));
    }
    request_error_end(r);
}
