/*
 * audit.c - the audit trail (audit.h, guard.h).
 *
 * Why the trail lives in the guard, not in a table of its own: an entry
 * must be durable exactly when its change is. Journaled as part of the
 * change's own record (guard_op_t.audit), the two reach the disk in one
 * write and are replayed together; the ring is part of the guard's state,
 * so every snapshot carries it and a compaction that deletes the journal
 * rows behind a snapshot loses nothing, and a backup or a rebuilt data
 * directory (holdfast recover) keeps it with no step of its own. A
 * separate SQLite table written in the same commit would need the commit
 * thread to carry a second kind of row, trimming of its own, and a read
 * path into the database from the HTTP threads. The price: the ring is
 * bounded (audit_max entries, reserved at start like every guard table).
 */
#include "audit.h"

#include <stdio.h>
#include <string.h>

static const char *const action_names[] = {
#define GUARD_AUDIT_NAME(name, text) text,
    GUARD_AUDIT_ACTIONS(GUARD_AUDIT_NAME)
#undef GUARD_AUDIT_NAME
};

const char *guard_audit_action_name(guard_audit_action_t a)
{
    return a < GUARD_AUDIT_ACTION_COUNT ? action_names[a] : "other";
}

/* The sku's policy in effect, or the shop's if there is no such sku. */
static const policy_config_t *sku_effective(const guard_t *g, const char *sku, size_t len)
{
    uint32_t index;
    if (!engine_sku_find(&g->engine, sku, len, &index)) {
        return &g->policy;
    }
    return guard_sku_policy(g, index, NULL);
}

void audit_before(const guard_t *g, const guard_op_t *op, audit_before_t *b)
{
    *b = (audit_before_t){.hold_state = ENGINE_HOLD_ACTIVE};
    if (op->kind == GUARD_OP_POLICY_PUT) {
        b->policy = g->policy;
    } else if (op->kind == GUARD_OP_SKU_POLICY) {
        b->policy = *sku_effective(g, op->u.sku_policy.sku, op->u.sku_policy.sku_len);
    } else if (op->kind == GUARD_OP_ENGINE && op->engine.kind == ENGINE_OP_SKU_PUT) {
        uint32_t index;
        b->sku_existed = engine_sku_find(&g->engine, op->engine.u.sku_put.sku,
                                         op->engine.u.sku_put.sku_len, &index);
        if (b->sku_existed) {
            engine_sku_view_t v;
            engine_sku_view(&g->engine, index, &v);
            b->stock = v.stock;
        }
    } else if (op->kind == GUARD_OP_ENGINE) {
        engine_hold_view_t h;
        if (engine_hold_view(&g->engine, op->engine.u.hold.hold_id, &h) == ENGINE_OK) {
            b->hold_state = h.state;
        }
    }
}

/* "section.key before -> after, ..." over the settings that differ; what
 * does not fit is counted at the end. */
static void policy_diff(const policy_config_t *before, const policy_config_t *after, char *out,
                        size_t size)
{
    size_t n = 0;
    int more = 0;
    out[0] = '\0';
    for (int f = 0; f < POLICY_FIELD_COUNT; f++) {
        int64_t a = policy_field_get(before, (policy_field_t)f);
        int64_t b = policy_field_get(after, (policy_field_t)f);
        if (a == b) {
            continue;
        }
        char item[128];
        const policy_field_info_t *info = policy_field_info((policy_field_t)f);
        int w = snprintf(item, sizeof item, "%s%s.%s %lld -> %lld", n > 0 ? ", " : "",
                         info->section, info->key, (long long)a, (long long)b);
        if (more == 0 && w > 0 && n + (size_t)w + 16 < size) {
            memcpy(out + n, item, (size_t)w + 1);
            n += (size_t)w;
        } else {
            more++;
        }
    }
    if (more > 0) {
        snprintf(out + n, size - n, " (+%d more)", more);
    } else if (n == 0) {
        snprintf(out, size, "no setting in effect changed");
    }
}

static void text_of(char *out, size_t size, const char *text, size_t len)
{
    snprintf(out, size, "%.*s", (int)len, text);
}

/* The action, its target and what changed, from the op and the state
 * before (b) and now. */
static void describe(const guard_t *g, const guard_op_t *op, const audit_before_t *b,
                     const guard_outcome_t *o, guard_audit_entry_t *e)
{
    const engine_op_t *eop = &op->engine;
    size_t tsize = sizeof e->target, csize = sizeof e->change;
    if (op->kind == GUARD_OP_ENGINE && eop->kind == ENGINE_OP_SKU_PUT) {
        e->action = GUARD_AUDIT_STOCK;
        text_of(e->target, tsize, eop->u.sku_put.sku, eop->u.sku_put.sku_len);
        if (b->sku_existed) {
            snprintf(e->change, csize, "stock %lld -> %lld", (long long)b->stock,
                     (long long)eop->u.sku_put.stock);
        } else {
            snprintf(e->change, csize, "new sku, stock %lld", (long long)eop->u.sku_put.stock);
        }
    } else if (op->kind == GUARD_OP_ENGINE && (eop->kind == ENGINE_OP_HOLD_RELEASE ||
                                               eop->kind == ENGINE_OP_HOLD_COMMIT)) {
        bool release = eop->kind == ENGINE_OP_HOLD_RELEASE;
        e->action = release ? GUARD_AUDIT_HOLD_RELEASE : GUARD_AUDIT_HOLD_COMMIT;
        e->hold_id = eop->u.hold.hold_id;
        const char *why = release ? op->reason : eop->u.hold.order_ref;
        uint8_t why_len = release ? op->reason_len : eop->u.hold.order_ref_len;
        snprintf(e->change, csize, "%s -> %s%s%.*s", engine_hold_state_name(b->hold_state),
                 release ? "released" : "committed",
                 why_len == 0 ? "" : release ? "; reason: " : "; order_ref: ", (int)why_len, why);
    } else if (op->kind == GUARD_OP_POLICY_PUT) {
        e->action = GUARD_AUDIT_POLICY;
        snprintf(e->target, tsize, "shop");
        policy_diff(&b->policy, &g->policy, e->change, csize);
    } else if (op->kind == GUARD_OP_SKU_POLICY) {
        e->action = GUARD_AUDIT_SKU_POLICY;
        text_of(e->target, tsize, op->u.sku_policy.sku, op->u.sku_policy.sku_len);
        policy_diff(&b->policy, sku_effective(g, op->u.sku_policy.sku, op->u.sku_policy.sku_len),
                    e->change, csize);
    } else if (op->kind == GUARD_OP_REVOKE) {
        e->action = GUARD_AUDIT_REVOKE;
        snprintf(e->target, tsize, "%s:%.*s", policy_id_kind_name(op->u.revoke.kind),
                 (int)op->u.revoke.value_len, op->u.revoke.value);
        snprintf(e->change, csize, "%u active holds released%s%.*s", o->revoked,
                 op->reason_len > 0 ? "; reason: " : "", (int)op->reason_len, op->reason);
    } else {
        e->action = GUARD_AUDIT_OTHER;
    }
}

void audit_push(guard_t *g, const guard_audit_entry_t *e)
{
    uint32_t max = g->config.audit_max;
    if (max == 0) {
        return;
    }
    if (g->audit_count == max) {
        g->audit_head = (g->audit_head + 1) % max; /* the oldest goes */
        g->audit_count--;
    }
    g->audit[(g->audit_head + g->audit_count) % max] = *e;
    g->audit_count++;
    g->audit_seq = e->seq;
}

void audit_record(guard_t *g, const guard_op_t *op, const audit_before_t *b,
                  const guard_outcome_t *o)
{
    if (g->config.audit_max == 0) {
        return;
    }
    guard_audit_entry_t e;
    memset(&e, 0, sizeof e);
    e.seq = g->audit_seq + 1;
    e.at_ms = op->engine.now_ms;
    text_of(e.key_id, sizeof e.key_id, op->audit.key_id, op->audit.key_id_len);
    text_of(e.route, sizeof e.route, op->audit.route, op->audit.route_len);
    describe(g, op, b, o, &e);
    audit_push(g, &e);
}

uint64_t guard_audit_seq(const guard_t *g)
{
    return g->audit_seq;
}

bool guard_audit_entry(const guard_t *g, uint64_t seq, guard_audit_entry_t *out)
{
    uint64_t oldest = g->audit_seq - g->audit_count + 1;
    if (g->audit_count == 0 || seq < oldest || seq > g->audit_seq) {
        return false;
    }
    uint32_t at = (uint32_t)((g->audit_head + (seq - oldest)) % g->config.audit_max);
    *out = g->audit[at];
    return true;
}

bool audit_check(const guard_t *g)
{
    uint32_t max = g->config.audit_max;
    if (g->audit_count > max || (max > 0 && g->audit_head >= max) ||
        g->audit_count > g->audit_seq) {
        return false;
    }
    for (uint32_t k = 0; k < g->audit_count; k++) {
        const guard_audit_entry_t *e = &g->audit[(g->audit_head + k) % max];
        if (e->seq != g->audit_seq - g->audit_count + 1 + k ||
            e->action >= GUARD_AUDIT_ACTION_COUNT) {
            return false;
        }
    }
    return true;
}
