/*
 * identity.c - identities, customer-and-sku units, the sweep (identity.h).
 */
#include "identity.h"

#include <assert.h>
#include <string.h>

#include "index.h"

/* A decayed count below this is history forgotten. */
#define REPUTATION_FORGET 0.05

uint64_t ident_hash_of(const void *g, uint32_t i)
{
    return ((const guard_t *)g)->ids[i].hash;
}

uint64_t ident_cs_hash_of(const void *g, uint32_t i)
{
    return ((const guard_t *)g)->cs[i].hash;
}

uint32_t ident_find(const guard_t *g, policy_id_kind_t kind, const char *value, size_t len)
{
    uint64_t h = index_identity_hash(kind, value, len);
    for (uint32_t b = (uint32_t)h & g->id_index_mask; g->id_index[b] != 0;
         b = (b + 1) & g->id_index_mask) {
        const guard_identity_t *id = &g->ids[g->id_index[b] - 1];
        if (id->hash == h && id->kind == kind && id->len == len &&
            memcmp(id->value, value, len) == 0) {
            return g->id_index[b] - 1;
        }
    }
    return GUARD_NONE;
}

bool ident_room(const guard_t *g, uint32_t needed)
{
    uint32_t live = g->stats.identities;
    return live + needed <= g->config.identities_max;
}

uint32_t ident_get(guard_t *g, policy_id_kind_t kind, const char *value, size_t len, int64_t now_ms)
{
    assert(len >= 1 && len <= HF_NAME_BYTES_MAX);
    uint32_t i = ident_find(g, kind, value, len);
    if (i != GUARD_NONE) {
        return i;
    }
    if (g->id_free != GUARD_NONE) {
        i = g->id_free;
        g->id_free = g->ids[i].next_free;
    } else {
        assert(g->id_hwm < g->config.identities_max);
        i = g->id_hwm++;
    }
    guard_identity_t *id = &g->ids[i];
    memset(id, 0, sizeof *id);
    id->hash = index_identity_hash(kind, value, len);
    id->live = 1;
    id->kind = (uint8_t)kind;
    id->len = (uint8_t)len;
    memcpy(id->value, value, len);
    id->budget_unit_ms = policy_budget_capacity_unit_ms(&g->policy, kind);
    id->budget_at_ms = now_ms;
    id->reputation_at_ms = now_ms;
    index_insert(g->id_index, g->id_index_mask, id->hash, i);
    g->stats.identities++;
    return i;
}

void ident_bring(const guard_t *g, guard_identity_t *id, int64_t now_ms)
{
    policy_id_kind_t kind = (policy_id_kind_t)id->kind;
    id->budget_unit_ms =
        policy_budget_refill(&g->policy, kind, id->budget_unit_ms, id->budget_at_ms, now_ms);
    id->budget_at_ms = now_ms > id->budget_at_ms ? now_ms : id->budget_at_ms;
    id->started = policy_decay(&g->policy, id->started, id->reputation_at_ms, now_ms);
    id->committed = policy_decay(&g->policy, id->committed, id->reputation_at_ms, now_ms);
    id->reputation_at_ms = now_ms > id->reputation_at_ms ? now_ms : id->reputation_at_ms;
}

/* A newcomer's first hold is capped too: it is present with nothing held. */
policy_identity_t ident_policy_view(const guard_t *g, policy_id_kind_t kind, bool named, uint32_t i,
                                    int64_t now_ms)
{
    policy_identity_t v = {0};
    if (!named) {
        return v; /* the request does not name it: no caps apply to it */
    }
    if (i == GUARD_NONE) {
        v.present = true;
        v.budget_unit_ms = policy_budget_capacity_unit_ms(&g->policy, kind);
        return v;
    }
    guard_identity_t copy = g->ids[i];
    ident_bring(g, &copy, now_ms);
    v.present = true;
    v.holds_active = copy.holds_active;
    v.units_held = copy.units_held;
    v.budget_unit_ms = copy.budget_unit_ms;
    v.started = copy.started;
    v.committed = copy.committed;
    return v;
}

static bool id_at_rest(guard_t *g, uint32_t i, int64_t now_ms)
{
    guard_identity_t *id = &g->ids[i];
    if (!id->live || id->holds_active > 0 || id->customer_skus > 0) {
        return false;
    }
    ident_bring(g, id, now_ms);
    return id->budget_unit_ms >= policy_budget_capacity_unit_ms(&g->policy, id->kind) &&
           id->started < REPUTATION_FORGET;
}

static void id_free(guard_t *g, uint32_t i)
{
    guard_identity_t *id = &g->ids[i];
    assert(id->live && id->holds_active == 0 && id->customer_skus == 0);
    index_delete(g->id_index, g->id_index_mask, id->hash, i, ident_hash_of, g);
    id->live = 0;
    id->next_free = g->id_free;
    g->id_free = i;
    g->stats.identities--;
}

/* ------------------------------------------------- customer-and-sku units */

uint32_t ident_cs_find(const guard_t *g, uint32_t customer, uint32_t sku)
{
    uint64_t h = index_customer_sku_hash(customer, sku);
    for (uint32_t b = (uint32_t)h & g->cs_index_mask; g->cs_index[b] != 0;
         b = (b + 1) & g->cs_index_mask) {
        const guard_customer_sku_t *e = &g->cs[g->cs_index[b] - 1];
        if (e->customer == customer && e->sku == sku) {
            return g->cs_index[b] - 1;
        }
    }
    return GUARD_NONE;
}

uint32_t ident_cs_get(guard_t *g, uint32_t customer, uint32_t sku)
{
    uint32_t i = ident_cs_find(g, customer, sku);
    if (i != GUARD_NONE) {
        return i;
    }
    if (g->cs_free != GUARD_NONE) {
        i = g->cs_free;
        g->cs_free = g->cs[i].next_free;
    } else {
        assert(g->cs_hwm < g->config.customer_skus_max);
        i = g->cs_hwm++;
    }
    guard_customer_sku_t *e = &g->cs[i];
    memset(e, 0, sizeof *e);
    e->hash = index_customer_sku_hash(customer, sku);
    e->customer = customer;
    e->sku = sku;
    e->live = 1;
    index_insert(g->cs_index, g->cs_index_mask, e->hash, i);
    g->ids[customer].customer_skus++;
    g->stats.customer_skus++;
    return i;
}

/* Purchases count against the cap for one window from the first of them. */
int64_t ident_cs_bought(const guard_t *g, const guard_customer_sku_t *e, int64_t now_ms)
{
    bool window_over = now_ms >= e->window_start_ms + g->policy.quantity_customer_sku_window_ms;
    return window_over ? 0 : e->bought;
}

static bool cs_at_rest(const guard_t *g, uint32_t i, int64_t now_ms)
{
    const guard_customer_sku_t *e = &g->cs[i];
    return e->live && e->units_active == 0 && ident_cs_bought(g, e, now_ms) == 0;
}

static void cs_free(guard_t *g, uint32_t i)
{
    guard_customer_sku_t *e = &g->cs[i];
    assert(e->live && e->units_active == 0);
    index_delete(g->cs_index, g->cs_index_mask, e->hash, i, ident_cs_hash_of, g);
    assert(g->ids[e->customer].customer_skus > 0);
    g->ids[e->customer].customer_skus--;
    e->live = 0;
    e->next_free = g->cs_free;
    g->cs_free = i;
    g->stats.customer_skus--;
}

/* Under pressure (a full table) a customer identity that holds nothing
 * goes too, history and all: a rotating hoarder's one-hold accounts would
 * otherwise fill the table for a day and turn newcomers away. Addresses
 * and fingerprints, where reputation does its work, stay. */
static bool id_idle_customer(const guard_t *g, uint32_t i)
{
    const guard_identity_t *id = &g->ids[i];
    return id->live && id->kind == POLICY_ID_CUSTOMER && id->holds_active == 0 &&
           id->customer_skus == 0;
}

/* Frees entries at rest among the next `steps` of each table, resuming
 * where the last sweep stopped (pressed: idle customers too, above). */
void ident_sweep(guard_t *g, int64_t now_ms, uint32_t steps, bool pressed)
{
    for (uint32_t n = 0; n < steps && g->cs_hwm > 0; n++) {
        g->cs_sweep = g->cs_sweep >= g->cs_hwm ? 0 : g->cs_sweep;
        if (cs_at_rest(g, g->cs_sweep, now_ms)) {
            cs_free(g, g->cs_sweep);
        }
        g->cs_sweep++;
    }
    for (uint32_t n = 0; n < steps && g->id_hwm > 0; n++) {
        g->id_sweep = g->id_sweep >= g->id_hwm ? 0 : g->id_sweep;
        if ((pressed && id_idle_customer(g, g->id_sweep)) || id_at_rest(g, g->id_sweep, now_ms)) {
            id_free(g, g->id_sweep);
        }
        g->id_sweep++;
    }
}

void ident_names_find(const guard_t *g, const engine_hold_create_t *c, ident_names_t *n)
{
    n->value[POLICY_ID_CUSTOMER] = c->customer;
    n->len[POLICY_ID_CUSTOMER] = c->customer_len;
    n->value[POLICY_ID_IP_PREFIX] = n->prefix;
    n->len[POLICY_ID_IP_PREFIX] = 0;
    n->value[POLICY_ID_FINGERPRINT] = c->fingerprint;
    n->len[POLICY_ID_FINGERPRINT] = c->fingerprint_len;
    n->cs_known = false;
    if (c->ip_len > 0) {
        char ip[HF_IP_TEXT_BYTES_MAX + 1];
        uint8_t prefix_len = 0;
        memcpy(ip, c->ip, c->ip_len);
        ip[c->ip_len] = '\0';
        if (policy_ip_prefix(ip, &g->policy, n->prefix, &prefix_len)) {
            n->len[POLICY_ID_IP_PREFIX] = prefix_len;
        }
    }
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        n->ids[k] = n->len[k] == 0 ? GUARD_NONE
                                   : ident_find(g, (policy_id_kind_t)k, n->value[k], n->len[k]);
    }
}

void ident_names_add(guard_t *g, ident_names_t *n, int64_t now_ms)
{
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        if (n->len[k] > 0 && n->ids[k] == GUARD_NONE) {
            n->ids[k] = ident_get(g, (policy_id_kind_t)k, n->value[k], n->len[k], now_ms);
        }
    }
}

uint32_t ident_names_new(const ident_names_t *n)
{
    uint32_t count = 0;
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        count += n->len[k] > 0 && n->ids[k] == GUARD_NONE;
    }
    return count;
}

bool ident_names_newcomer(const guard_t *g, const ident_names_t *n)
{
    static const policy_id_kind_t kinds[] = {POLICY_ID_CUSTOMER, POLICY_ID_FINGERPRINT};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        uint32_t i = n->ids[kinds[k]];
        if (i != GUARD_NONE && g->ids[i].commits_total > 0) {
            return false;
        }
    }
    return true;
}
