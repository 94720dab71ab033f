/*
 * guard.c - the engine with its defenses (see guard.h for the design, the
 * waitlist lifecycle and the invariants).
 *
 * Tables live in one reservation, like the engine's: identities and
 * customer-and-sku entries in arrays with an open-addressing index and a free
 * list; per-hold and per-sku side records indexed like the engine's own;
 * waitlist entries in an array whose finished entries are reused oldest
 * first; used proofs in a ring with an index.
 *
 * Entries "at rest" (nothing held, budget full, reputation decayed away, no
 * purchases in the window) mean the same as no entry, so a sweep frees a few
 * of them on every hold, in a fixed order: replay frees the same ones.
 */
#include "guard.h"

#include <assert.h>
#include <math.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "pow.h"

#define NONE UINT32_MAX
/* Entries the sweep looks at per hold created: enough to keep up with a
 * table that fills one entry per hold, cheap enough not to show. */
#define SWEEP_PER_HOLD 4
/* A decayed count below this is history forgotten. */
#define REPUTATION_FORGET 0.05

static const char *const result_names[] = {
#define GUARD_RESULT_NAME(name, text, message) text,
    GUARD_RESULTS(GUARD_RESULT_NAME)
#undef GUARD_RESULT_NAME
};
static const char *const result_messages[] = {
#define GUARD_RESULT_MESSAGE(name, text, message) message,
    GUARD_RESULTS(GUARD_RESULT_MESSAGE)
#undef GUARD_RESULT_MESSAGE
};

const char *guard_result_name(guard_result_t r)
{
    assert(r < GUARD_RESULT_COUNT);
    return result_names[r];
}

const char *guard_result_message(guard_result_t r)
{
    assert(r < GUARD_RESULT_COUNT);
    return result_messages[r];
}

const char *guard_wait_state_name(guard_wait_state_t s)
{
    static const char *const names[] = {"free",    "waiting", "offered",
                                        "fulfilled", "expired", "cancelled"};
    assert(s <= GUARD_WAIT_CANCELLED);
    return names[s];
}

guard_config_t guard_config_default(void)
{
    return (guard_config_t){
        .engine = engine_config_default(),
        .identities_max = HF_IDENTITIES_MAX_DEFAULT,
        .customer_skus_max = HF_CUSTOMER_SKUS_MAX_DEFAULT,
        .waitlist_max = HF_WAITLIST_MAX_DEFAULT,
        .sku_policies_max = HF_SKU_POLICIES_MAX_DEFAULT,
        .proofs_max = HF_PROOFS_MAX_DEFAULT,
    };
}

/* ------------------------------------------------------------- hashing */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static uint64_t hash_bytes(uint64_t h, const void *data, size_t len)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ p[i]) * 0x100000001b3ull;
    }
    return mix64(h);
}

static uint64_t identity_hash(policy_id_kind_t kind, const char *value, size_t len)
{
    return hash_bytes(0xcbf29ce484222325ull ^ (uint64_t)kind, value, len);
}

static uint64_t customer_sku_hash(uint32_t customer, uint32_t sku)
{
    return mix64(((uint64_t)customer << 32 | sku) + 0x9e3779b97f4a7c15ull);
}

/* ------------------------------------------------------------- layout */

static uint32_t index_capacity(uint32_t count_max)
{
    uint64_t c = 2;
    while (c < 2ull * count_max) {
        c <<= 1; /* load factor at most one half keeps probes short */
    }
    return (uint32_t)c;
}

static size_t align_up(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

typedef struct {
    size_t ids, id_index, cs, cs_index, holds, skus, sku_policies, waits, proofs, proof_index,
        scratch, wait_index, total;
} layout_t;

static layout_t layout_for(const guard_config_t *c)
{
    layout_t l;
    size_t at = 0;
#define PLACE(field, bytes)                                                                    \
    l.field = at;                                                                              \
    at += align_up(bytes)
    PLACE(ids, (size_t)c->identities_max * sizeof(guard_identity_t));
    PLACE(id_index, (size_t)index_capacity(c->identities_max) * sizeof(uint32_t));
    PLACE(cs, (size_t)c->customer_skus_max * sizeof(guard_customer_sku_t));
    PLACE(cs_index, (size_t)index_capacity(c->customer_skus_max) * sizeof(uint32_t));
    PLACE(holds, (size_t)c->engine.holds_max * sizeof(guard_hold_t));
    PLACE(skus, (size_t)c->engine.skus_max * sizeof(guard_sku_t));
    PLACE(sku_policies, (size_t)c->sku_policies_max * sizeof(guard_sku_policy_t));
    PLACE(waits, (size_t)c->waitlist_max * sizeof(guard_wait_t));
    PLACE(proofs, (size_t)c->proofs_max * sizeof(guard_proof_t));
    PLACE(proof_index, (size_t)index_capacity(c->proofs_max) * sizeof(uint32_t));
    PLACE(scratch, (size_t)c->engine.skus_max * sizeof(uint32_t));
    PLACE(wait_index, (size_t)index_capacity(c->waitlist_max) * sizeof(uint32_t));
#undef PLACE
    l.total = at;
    return l;
}

size_t guard_reserved_bytes(const guard_config_t *c)
{
    return layout_for(c).total + engine_reserved_bytes(&c->engine);
}

static bool config_valid(const guard_config_t *c)
{
    return c->identities_max >= 1 && c->identities_max <= HF_IDENTITIES_MAX_LIMIT &&
           c->customer_skus_max >= 1 && c->customer_skus_max <= HF_CUSTOMER_SKUS_MAX_LIMIT &&
           c->waitlist_max >= 1 && c->waitlist_max <= HF_WAITLIST_MAX_LIMIT &&
           c->sku_policies_max >= 1 && c->sku_policies_max <= HF_SKU_POLICIES_MAX_LIMIT &&
           c->proofs_max >= 1 && c->proofs_max <= HF_PROOFS_MAX_LIMIT;
}

int guard_init(guard_t *g, const guard_config_t *c, int64_t now_ms)
{
    memset(g, 0, sizeof *g);
    if (!config_valid(c) || engine_init(&g->engine, &c->engine, now_ms) != 0) {
        return -1;
    }
    layout_t l = layout_for(c);
    void *region = mmap(NULL, l.total, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (region == MAP_FAILED) {
        engine_deinit(&g->engine);
        return -1;
    }
    char *base = region;
    g->config = *c;
    g->policy = policy_config_default();
    g->region = region;
    g->region_size = l.total;
    g->ids = (guard_identity_t *)(base + l.ids);
    g->id_index = (uint32_t *)(base + l.id_index);
    g->id_index_mask = index_capacity(c->identities_max) - 1;
    g->id_free = NONE;
    g->cs = (guard_customer_sku_t *)(base + l.cs);
    g->cs_index = (uint32_t *)(base + l.cs_index);
    g->cs_index_mask = index_capacity(c->customer_skus_max) - 1;
    g->cs_free = NONE;
    g->holds = (guard_hold_t *)(base + l.holds);
    g->skus = (guard_sku_t *)(base + l.skus);
    g->sku_policies = (guard_sku_policy_t *)(base + l.sku_policies);
    g->waits = (guard_wait_t *)(base + l.waits);
    g->proofs = (guard_proof_t *)(base + l.proofs);
    g->proof_index = (uint32_t *)(base + l.proof_index);
    g->proof_index_mask = index_capacity(c->proofs_max) - 1;
    g->scratch = (uint32_t *)(base + l.scratch);
    g->wait_index = (uint32_t *)(base + l.wait_index);
    g->wait_index_mask = index_capacity(c->waitlist_max) - 1;
    g->shop_at_ms = now_ms;
    return 0;
}

void guard_deinit(guard_t *g)
{
    engine_deinit(&g->engine);
    if (g->region != NULL) {
        munmap(g->region, g->region_size);
    }
    memset(g, 0, sizeof *g);
}

/* ---------------------------------------------------- open-addressing index
 * Maps a hash to (entry + 1); 0 is an empty bucket. Deletion shifts the run
 * that follows back, so lookups never meet tombstones. */

typedef uint64_t (*entry_hash_fn)(const guard_t *g, uint32_t entry);

static void index_insert(uint32_t *index, uint32_t mask, uint64_t hash, uint32_t entry)
{
    uint32_t b = (uint32_t)hash & mask;
    while (index[b] != 0) {
        b = (b + 1) & mask;
    }
    index[b] = entry + 1;
}

static void index_delete(const guard_t *g, uint32_t *index, uint32_t mask, uint64_t hash,
                         uint32_t entry, entry_hash_fn hash_of)
{
    uint32_t b = (uint32_t)hash & mask;
    while (index[b] != entry + 1) {
        assert(index[b] != 0 && "deleting an entry that is not indexed");
        b = (b + 1) & mask;
    }
    uint32_t hole = b;
    for (uint32_t i = (hole + 1) & mask; index[i] != 0; i = (i + 1) & mask) {
        uint32_t home = (uint32_t)hash_of(g, index[i] - 1) & mask;
        /* Move i into the hole unless its home lies cyclically in (hole, i]. */
        bool stays = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
        if (!stays) {
            index[hole] = index[i];
            hole = i;
        }
    }
    index[hole] = 0;
}

static uint64_t id_hash_of(const guard_t *g, uint32_t i)
{
    return g->ids[i].hash;
}

static uint64_t cs_hash_of(const guard_t *g, uint32_t i)
{
    return g->cs[i].hash;
}

static uint64_t proof_hash_of(const guard_t *g, uint32_t i)
{
    return mix64(g->proofs[i].tag);
}

/* A waiting entry is indexed by (sku, customer): one place each. */
static uint64_t waiting_hash(uint32_t sku, const char *customer, size_t len)
{
    return hash_bytes(0x8a5cd789635d2dffull ^ sku, customer, len);
}

static uint64_t wait_hash_of(const guard_t *g, uint32_t i)
{
    return waiting_hash(g->waits[i].sku, g->waits[i].customer, g->waits[i].customer_len);
}

/* ---------------------------------------------------------- identities */

static uint32_t id_find(const guard_t *g, policy_id_kind_t kind, const char *value, size_t len)
{
    uint64_t h = identity_hash(kind, value, len);
    for (uint32_t b = (uint32_t)h & g->id_index_mask; g->id_index[b] != 0;
         b = (b + 1) & g->id_index_mask) {
        const guard_identity_t *id = &g->ids[g->id_index[b] - 1];
        if (id->hash == h && id->kind == kind && id->len == len &&
            memcmp(id->value, value, len) == 0) {
            return g->id_index[b] - 1;
        }
    }
    return NONE;
}

static bool id_room(const guard_t *g, uint32_t needed)
{
    uint32_t live = g->stats.identities;
    return live + needed <= g->config.identities_max;
}

/* Finds or adds an identity; the caller checked id_room(). A new identity
 * starts with a full budget and no history. */
static uint32_t id_get(guard_t *g, policy_id_kind_t kind, const char *value, size_t len,
                       int64_t now_ms)
{
    assert(len >= 1 && len <= HF_NAME_BYTES_MAX);
    uint32_t i = id_find(g, kind, value, len);
    if (i != NONE) {
        return i;
    }
    if (g->id_free != NONE) {
        i = g->id_free;
        g->id_free = g->ids[i].next_free;
    } else {
        assert(g->id_hwm < g->config.identities_max);
        i = g->id_hwm++;
    }
    guard_identity_t *id = &g->ids[i];
    memset(id, 0, sizeof *id);
    id->hash = identity_hash(kind, value, len);
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

/* Brings an identity's budget and reputation up to now_ms. */
static void id_bring(guard_t *g, guard_identity_t *id, int64_t now_ms)
{
    policy_id_kind_t kind = (policy_id_kind_t)id->kind;
    id->budget_unit_ms =
        policy_budget_refill(&g->policy, kind, id->budget_unit_ms, id->budget_at_ms, now_ms);
    id->budget_at_ms = now_ms > id->budget_at_ms ? now_ms : id->budget_at_ms;
    id->started = policy_decay(&g->policy, id->started, id->reputation_at_ms, now_ms);
    id->committed = policy_decay(&g->policy, id->committed, id->reputation_at_ms, now_ms);
    id->reputation_at_ms = now_ms > id->reputation_at_ms ? now_ms : id->reputation_at_ms;
}

/* The policy's view of identity i at now_ms, without changing it. A named
 * identity not in the table yet is a newcomer: present, holding nothing,
 * with a full budget and no history, so its first hold is capped too. */
static policy_identity_t id_policy_view(const guard_t *g, policy_id_kind_t kind, bool named,
                                        uint32_t i, int64_t now_ms)
{
    policy_identity_t v = {0};
    if (!named) {
        return v; /* the request does not name it: no caps apply to it */
    }
    if (i == NONE) {
        v.present = true;
        v.budget_unit_ms = policy_budget_capacity_unit_ms(&g->policy, kind);
        return v;
    }
    guard_identity_t copy = g->ids[i];
    id_bring((guard_t *)g, &copy, now_ms); /* reads g->policy only */
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
    id_bring(g, id, now_ms);
    return id->budget_unit_ms >= policy_budget_capacity_unit_ms(&g->policy, id->kind) &&
           id->started < REPUTATION_FORGET;
}

static void id_free(guard_t *g, uint32_t i)
{
    guard_identity_t *id = &g->ids[i];
    assert(id->live && id->holds_active == 0 && id->customer_skus == 0);
    index_delete(g, g->id_index, g->id_index_mask, id->hash, i, id_hash_of);
    id->live = 0;
    id->next_free = g->id_free;
    g->id_free = i;
    g->stats.identities--;
}

/* ------------------------------------------------- customer-and-sku units */

static uint32_t cs_find(const guard_t *g, uint32_t customer, uint32_t sku)
{
    uint64_t h = customer_sku_hash(customer, sku);
    for (uint32_t b = (uint32_t)h & g->cs_index_mask; g->cs_index[b] != 0;
         b = (b + 1) & g->cs_index_mask) {
        const guard_customer_sku_t *e = &g->cs[g->cs_index[b] - 1];
        if (e->customer == customer && e->sku == sku) {
            return g->cs_index[b] - 1;
        }
    }
    return NONE;
}

static uint32_t cs_get(guard_t *g, uint32_t customer, uint32_t sku)
{
    uint32_t i = cs_find(g, customer, sku);
    if (i != NONE) {
        return i;
    }
    if (g->cs_free != NONE) {
        i = g->cs_free;
        g->cs_free = g->cs[i].next_free;
    } else {
        assert(g->cs_hwm < g->config.customer_skus_max);
        i = g->cs_hwm++;
    }
    guard_customer_sku_t *e = &g->cs[i];
    memset(e, 0, sizeof *e);
    e->hash = customer_sku_hash(customer, sku);
    e->customer = customer;
    e->sku = sku;
    e->live = 1;
    index_insert(g->cs_index, g->cs_index_mask, e->hash, i);
    g->ids[customer].customer_skus++;
    g->stats.customer_skus++;
    return i;
}

/* Purchases count against the cap for one window from the first of them. */
static int64_t cs_bought(const guard_t *g, const guard_customer_sku_t *e, int64_t now_ms)
{
    bool window_over = now_ms >= e->window_start_ms + g->policy.quantity_customer_sku_window_ms;
    return window_over ? 0 : e->bought;
}

static bool cs_at_rest(const guard_t *g, uint32_t i, int64_t now_ms)
{
    const guard_customer_sku_t *e = &g->cs[i];
    return e->live && e->units_active == 0 && cs_bought(g, e, now_ms) == 0;
}

static void cs_free(guard_t *g, uint32_t i)
{
    guard_customer_sku_t *e = &g->cs[i];
    assert(e->live && e->units_active == 0);
    index_delete(g, g->cs_index, g->cs_index_mask, e->hash, i, cs_hash_of);
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
static void sweep(guard_t *g, int64_t now_ms, uint32_t steps, bool pressed)
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

/* What a hold request names, worked out once per request: its identities'
 * texts and where they are in the tables (NONE: absent, or not there yet),
 * and its customer's entries for each line. The live path finds them while
 * deciding and hands them to the apply; replay finds them in the apply. */
typedef struct {
    const char *value[POLICY_ID_KINDS];
    size_t len[POLICY_ID_KINDS]; /* 0: the request does not name it */
    char prefix[POLICY_IP_PREFIX_TEXT_MAX];
    uint32_t ids[POLICY_ID_KINDS];
    bool cs_known;
    uint32_t cs[HF_LINES_PER_HOLD_MAX];
} names_t;

/* Fills n for c (n must not move afterwards: value[] points into it). */
static void names_find(const guard_t *g, const engine_hold_create_t *c, names_t *n)
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
        n->ids[k] = n->len[k] == 0 ? NONE : id_find(g, (policy_id_kind_t)k, n->value[k], n->len[k]);
    }
}

/* Adds the identities n names that are not in the table yet. */
static void names_add(guard_t *g, names_t *n, int64_t now_ms)
{
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        if (n->len[k] > 0 && n->ids[k] == NONE) {
            n->ids[k] = id_get(g, (policy_id_kind_t)k, n->value[k], n->len[k], now_ms);
        }
    }
}

/* -------------------------------------------------------------- proofs */

static bool proof_used(const guard_t *g, uint64_t tag)
{
    for (uint32_t b = (uint32_t)mix64(tag) & g->proof_index_mask; g->proof_index[b] != 0;
         b = (b + 1) & g->proof_index_mask) {
        if (g->proofs[g->proof_index[b] - 1].tag == tag) {
            return true;
        }
    }
    return false;
}

static void proof_add(guard_t *g, uint64_t tag, int64_t expires_ms)
{
    assert(g->proof_count < g->config.proofs_max && !proof_used(g, tag));
    uint32_t i = (g->proof_head + g->proof_count) % g->config.proofs_max;
    g->proofs[i] = (guard_proof_t){.tag = tag, .expires_ms = expires_ms};
    index_insert(g->proof_index, g->proof_index_mask, mix64(tag), i);
    g->proof_count++;
}

/* A proof is remembered until it expires; after that it fails on its expiry
 * alone. Proofs are added in about expiry order, so the head goes first. */
static void proofs_forget(guard_t *g, int64_t now_ms)
{
    while (g->proof_count > 0 && g->proofs[g->proof_head].expires_ms <= now_ms) {
        uint32_t i = g->proof_head;
        index_delete(g, g->proof_index, g->proof_index_mask, mix64(g->proofs[i].tag), i,
                     proof_hash_of);
        g->proof_head = (g->proof_head + 1) % g->config.proofs_max;
        g->proof_count--;
    }
}

/* --------------------------------------------------------- sku policies */

const policy_config_t *guard_sku_policy(const guard_t *g, uint32_t sku_index, uint64_t *mask_out)
{
    uint32_t p = g->skus[sku_index].policy;
    if (mask_out != NULL) {
        *mask_out = p == 0 ? 0 : g->sku_policies[p - 1].mask;
    }
    return p == 0 ? &g->policy : &g->sku_policies[p - 1].resolved;
}

static void sku_policy_resolve(const policy_config_t *global, guard_sku_policy_t *sp)
{
    sp->resolved = *global;
    for (int f = 0; f < POLICY_FIELD_COUNT; f++) {
        if (sp->mask & (1ull << f)) {
            *policy_field_ptr(&sp->resolved, (policy_field_t)f) =
                policy_field_get(&sp->values, (policy_field_t)f);
        }
    }
}

bool guard_policy_fits(const guard_t *g, const policy_config_t *p, uint32_t *sku_out,
                       policy_field_t *field_out)
{
    for (uint32_t sku = 0; sku < engine_sku_count(&g->engine); sku++) {
        uint32_t own = g->skus[sku].policy;
        if (own == 0 || g->sku_policies[own - 1].mask == 0) {
            continue;
        }
        guard_sku_policy_t sp = g->sku_policies[own - 1];
        sku_policy_resolve(p, &sp);
        if (!policy_config_valid(&sp.resolved, field_out)) {
            *sku_out = sku;
            return false;
        }
    }
    return true;
}

/* ------------------------------------------------------ conversion, escalation */

static void sku_bring(guard_t *g, guard_sku_t *s, const policy_config_t *c, int64_t now_ms)
{
    /* Recent conversion: counts decay with the escalation window as half-life. */
    if (now_ms > s->conversion_at_ms) {
        double f = exp2(-(double)(now_ms - s->conversion_at_ms) / (double)c->escalation_window_ms);
        s->started *= f;
        s->committed *= f;
        s->conversion_at_ms = now_ms;
    }
    (void)g;
}

static void shop_bring(guard_t *g, int64_t now_ms)
{
    g->shop_started = policy_decay(&g->policy, g->shop_started, g->shop_at_ms, now_ms);
    g->shop_committed = policy_decay(&g->policy, g->shop_committed, g->shop_at_ms, now_ms);
    g->shop_at_ms = now_ms > g->shop_at_ms ? now_ms : g->shop_at_ms;
}

static void event_add(guard_t *g, uint32_t sku, bool on, int64_t now_ms)
{
    guard_event_t *ev = &g->events[g->event_seq % GUARD_EVENTS_MAX];
    *ev = (guard_event_t){.seq = g->event_seq + 1, .at_ms = now_ms, .sku = sku, .on = on};
    g->event_seq++;
}

/* Whether a sku is escalated as of now_ms: its recorded state, unless time
 * alone has ended it (a sku refusing every hold sees no hold to switch it
 * back; the next applied op on it records the switch). */
static bool sku_escalated_now(const guard_t *g, uint32_t sku, int64_t now_ms)
{
    guard_sku_t s = g->skus[sku];
    if (!s.escalated) {
        return false;
    }
    const policy_config_t *c = guard_sku_policy(g, sku, NULL);
    engine_sku_view_t v;
    engine_sku_view(&g->engine, sku, &v);
    sku_bring((guard_t *)g, &s, c, now_ms); /* on the copy */
    double shop_started = policy_decay(&g->policy, g->shop_started, g->shop_at_ms, now_ms);
    double shop_committed = policy_decay(&g->policy, g->shop_committed, g->shop_at_ms, now_ms);
    return policy_escalate(c, true, s.started, s.committed, shop_started, shop_committed, v.stock,
                           v.available);
}

/* Switches a sku's escalation on or off when its recent conversion says so. */
static void sku_evaluate(guard_t *g, uint32_t sku, int64_t now_ms)
{
    guard_sku_t *s = &g->skus[sku];
    const policy_config_t *c = guard_sku_policy(g, sku, NULL);
    engine_sku_view_t v;
    engine_sku_view(&g->engine, sku, &v);
    sku_bring(g, s, c, now_ms);
    bool on = policy_escalate(c, s->escalated, s->started, s->committed, g->shop_started,
                              g->shop_committed, v.stock, v.available);
    if (on == (bool)s->escalated) {
        return;
    }
    s->escalated = on;
    s->escalated_at_ms = now_ms;
    if (on) {
        s->escalations++;
        g->stats.escalations_on++;
        g->stats.skus_escalated++;
    } else {
        g->stats.escalations_off++;
        g->stats.skus_escalated--;
    }
    event_add(g, sku, on, now_ms);
}

/* ------------------------------------------------------------ waitlists */

#define WAIT_INDEX_BITS 28
#define WAIT_INDEX_MASK ((1ull << WAIT_INDEX_BITS) - 1)

/* A slot for a new entry: never used ones first, then the oldest finished. */
static uint32_t wait_alloc(guard_t *g)
{
    if (g->wait_hwm < g->config.waitlist_max) {
        return g->wait_hwm++;
    }
    if (g->wait_done_head == 0) {
        return NONE;
    }
    uint32_t i = g->wait_done_head - 1;
    g->wait_done_head = g->waits[i].next;
    if (g->wait_done_head == 0) {
        g->wait_done_tail = 0;
    }
    return i;
}

static void wait_finish(guard_t *g, uint32_t i, guard_wait_state_t to, int64_t at_ms)
{
    guard_wait_t *w = &g->waits[i];
    assert(w->state == GUARD_WAIT_WAITING || w->state == GUARD_WAIT_OFFERED);
    w->state = (uint8_t)to;
    w->finished_ms = at_ms;
    w->next = 0;
    if (g->wait_done_tail == 0) {
        g->wait_done_head = i + 1;
    } else {
        g->waits[g->wait_done_tail - 1].next = i + 1;
    }
    g->wait_done_tail = i + 1;
    g->stats.wait_fulfilled += to == GUARD_WAIT_FULFILLED;
    g->stats.wait_expired += to == GUARD_WAIT_EXPIRED;
    g->stats.wait_cancelled += to == GUARD_WAIT_CANCELLED;
}

/* Takes a waiting entry off its sku's list (the head, usually). */
static void wait_unlink(guard_t *g, uint32_t i)
{
    guard_sku_t *s = &g->skus[g->waits[i].sku];
    uint32_t prev = 0;
    uint32_t at = s->wait_head;
    while (at != i + 1) {
        assert(at != 0 && "a waiting entry is on its sku's list");
        prev = at;
        at = g->waits[at - 1].next;
    }
    uint32_t next = g->waits[i].next;
    if (prev == 0) {
        s->wait_head = next;
    } else {
        g->waits[prev - 1].next = next;
    }
    if (s->wait_tail == i + 1) {
        s->wait_tail = prev;
    }
    s->wait_count--;
    g->stats.waiting--;
    index_delete(g, g->wait_index, g->wait_index_mask, wait_hash_of(g, i), i, wait_hash_of);
}

static void on_start(guard_t *g, const engine_hold_view_t *h, const guard_hold_t *side,
                     double cost_unit_ms, int64_t now_ms, const uint32_t *cs_known);
static int64_t hold_units(const engine_hold_view_t *h);

/* The identities a waitlist entry names, as a hold request would. */
static void wait_names(const guard_t *g, const guard_wait_t *w, names_t *n)
{
    engine_hold_create_t c; /* only the names are read */
    memcpy(c.customer, w->customer, w->customer_len);
    c.customer_len = w->customer_len;
    memcpy(c.ip, w->ip, w->ip_len);
    c.ip_len = w->ip_len;
    memcpy(c.fingerprint, w->fingerprint, w->fingerprint_len);
    c.fingerprint_len = w->fingerprint_len;
    names_find(g, &c, n);
    n->value[POLICY_ID_CUSTOMER] = w->customer; /* c goes out of scope */
    n->value[POLICY_ID_FINGERPRINT] = w->fingerprint;
}

/* Whether an entry's identities may take an offer of its qty now: the caps
 * and budgets a hold would meet. A refused entry's turn is over. */
static bool offer_allowed(const guard_t *g, const guard_wait_t *w, names_t *n, int64_t ttl_ms,
                          int64_t at_ms)
{
    policy_identity_t ids[POLICY_ID_KINDS];
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        ids[k] = id_policy_view(g, (policy_id_kind_t)k, n->len[k] > 0, n->ids[k], at_ms);
    }
    double shop_started = policy_decay(&g->policy, g->shop_started, g->shop_at_ms, at_ms);
    double shop_committed = policy_decay(&g->policy, g->shop_committed, g->shop_at_ms, at_ms);
    double risk = policy_identities_risk(&g->policy, ids, shop_started, shop_committed);
    policy_decision_t d = policy_decide_offer(&g->policy, ids, w->qty, ttl_ms, risk);
    return d.verdict == POLICY_ALLOW;
}

/* An offer is a hold of the entry's identities: counted against them (so
 * caps, reputation and revocation see it) and charged to their budgets,
 * when the tables have room; full tables still let the offer go, uncounted. */
static void offer_start(guard_t *g, uint64_t hold_id, uint32_t entry, names_t *n, int64_t at_ms)
{
    guard_hold_t side = {.wait = entry + 1};
    uint32_t new_ids = 0;
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        new_ids += n->len[k] > 0 && n->ids[k] == NONE;
    }
    bool room = id_room(g, new_ids) && g->stats.customer_skus < g->config.customer_skus_max;
    if (room) {
        names_add(g, n, at_ms);
        for (int k = 0; k < POLICY_ID_KINDS; k++) {
            side.ids[k] = n->ids[k] == NONE ? 0 : n->ids[k] + 1;
        }
    }
    engine_hold_view_t h;
    engine_result_t r = engine_hold_view(&g->engine, hold_id, &h);
    assert(r == ENGINE_OK);
    double cost_unit_ms = room && g->policy.budget_enabled
                              ? (double)hold_units(&h) * (double)(h.expires_ms - at_ms)
                              : 0.0;
    on_start(g, &h, &side, cost_unit_ms, at_ms, NULL);
}

/* The first entry the sku could ever serve (qty within stock - sold), or
 * NONE: an entry waiting for more than is left to sell waits for a restock
 * without holding up those behind it. */
static uint32_t wait_first_servable(const guard_t *g, uint32_t sku, int64_t sellable)
{
    for (uint32_t at = g->skus[sku].wait_head; at != 0; at = g->waits[at - 1].next) {
        if (g->waits[at - 1].qty <= sellable) {
            return at - 1;
        }
    }
    return NONE;
}

/* Offers freed units to the first servable entry of a sku's waitlist, as an
 * active hold made at at_ms, for as long as the available units cover it:
 * first come, first served among those the stock can serve. */
static void wait_serve(guard_t *g, uint32_t sku, int64_t at_ms)
{
    guard_sku_t *s = &g->skus[sku];
    for (;;) {
        engine_sku_view_t v;
        engine_sku_view(&g->engine, sku, &v);
        if (s->wait_head == 0 || v.available <= 0) {
            return; /* nothing to offer: no need to look down the line */
        }
        uint32_t i = wait_first_servable(g, sku, v.stock - v.sold);
        if (i == NONE || v.available < g->waits[i].qty) {
            return;
        }
        guard_wait_t *w = &g->waits[i];
        int64_t ttl_ms = guard_sku_policy(g, sku, NULL)->waitlist_offer_ttl_ms;
        names_t n;
        wait_names(g, w, &n);
        if (!offer_allowed(g, w, &n, ttl_ms, at_ms)) {
            wait_unlink(g, i); /* over its caps or budget: the next one's turn */
            wait_finish(g, i, GUARD_WAIT_EXPIRED, at_ms);
            g->stats.wait_refused++;
            continue;
        }
        engine_op_t op = {.kind = ENGINE_OP_HOLD_CREATE, .now_ms = at_ms};
        engine_hold_create_t *c = &op.u.hold_create;
        memcpy(c->customer, w->customer, w->customer_len);
        c->customer_len = w->customer_len;
        c->ttl_ms = ttl_ms;
        c->line_count = 1;
        memcpy(c->lines[0].sku, v.sku, v.sku_len);
        c->lines[0].sku_len = v.sku_len;
        c->lines[0].qty = w->qty;
        engine_outcome_t o = engine_apply(&g->engine, &op);
        if (o.result != ENGINE_OK) {
            g->offers_starved = true; /* the hold table is full: served when it is not */
            return;
        }
        wait_unlink(g, i);
        w->state = GUARD_WAIT_OFFERED;
        w->hold_id = o.hold_id;
        offer_start(g, o.hold_id, i, &n, at_ms);
        g->stats.wait_offered++;
        guard_offer_t *log = &g->offer_log[g->offer_seq % GUARD_OFFER_LOG_MAX];
        *log = (guard_offer_t){.seq = ++g->offer_seq, .wait_id = w->id, .hold_id = o.hold_id};
    }
}

/* Offers that found the hold table full are made once it has room again:
 * every sku with a waitlist is served, in sku order (rare: an overload). */
static void serve_starved(guard_t *g)
{
    if (!g->offers_starved || g->engine.stats.holds_active >= g->engine.config.holds_max) {
        return;
    }
    g->offers_starved = false;
    for (uint32_t sku = 0; sku < engine_sku_count(&g->engine); sku++) {
        if (g->skus[sku].wait_head != 0) {
            wait_serve(g, sku, g->engine.now_ms);
        }
    }
}

/* --------------------------------------------------- a hold's bookkeeping */

static int64_t hold_units(const engine_hold_view_t *h)
{
    int64_t units = 0;
    for (uint16_t i = 0; i < h->line_count; i++) {
        units += h->lines[i].qty;
    }
    return units;
}

/* Counts a new hold against its identities and skus. */
static void on_start(guard_t *g, const engine_hold_view_t *h, const guard_hold_t *side,
                     double cost_unit_ms, int64_t now_ms, const uint32_t *cs_known)
{
    int64_t units = hold_units(h);
    g->holds[engine_hold_slot(h->id)] = *side;
    g->holds[engine_hold_slot(h->id)].charged = cost_unit_ms > 0.0;
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        if (side->ids[k] != 0) {
            guard_identity_t *id = &g->ids[side->ids[k] - 1];
            id_bring(g, id, now_ms);
            id->holds_active++;
            id->units_held += units;
            id->budget_unit_ms -= cost_unit_ms;
            id->started += 1.0;
            id->holds_total++;
        }
    }
    shop_bring(g, now_ms);
    g->shop_started += 1.0;
    for (uint16_t i = 0; i < h->line_count; i++) {
        uint32_t sku = h->lines[i].sku_index;
        if (side->ids[POLICY_ID_CUSTOMER] != 0) {
            bool known = cs_known != NULL && cs_known[i] != NONE;
            uint32_t c = known ? cs_known[i] : cs_get(g, side->ids[POLICY_ID_CUSTOMER] - 1, sku);
            assert(g->cs[c].live && g->cs[c].sku == sku);
            g->cs[c].units_active += h->lines[i].qty;
        }
        guard_sku_t *s = &g->skus[sku];
        sku_bring(g, s, guard_sku_policy(g, sku, NULL), now_ms);
        s->started += 1.0;
    }
}

/* Returns a finished hold's units to its identities: a sale improves their
 * reputation, and time not used is given back to their budgets. */
static void on_finish_identities(guard_t *g, const engine_hold_view_t *h,
                                 const guard_hold_t *side, int64_t at_ms)
{
    int64_t units = hold_units(h);
    bool committed = h->state == ENGINE_HOLD_COMMITTED_STATE;
    /* Time not used is given back, to a hold that was charged for it. */
    bool early = side->charged && h->state != ENGINE_HOLD_EXPIRED_STATE && h->expires_ms > at_ms;
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        if (side->ids[k] == 0) {
            continue;
        }
        guard_identity_t *id = &g->ids[side->ids[k] - 1];
        id_bring(g, id, at_ms);
        assert(id->holds_active > 0 && id->units_held >= units);
        id->holds_active--;
        id->units_held -= units;
        id->committed += committed ? 1.0 : 0.0;
        id->commits_total += committed;
        if (early) {
            double capacity = policy_budget_capacity_unit_ms(&g->policy, id->kind);
            id->budget_unit_ms += (double)units * (double)(h->expires_ms - at_ms);
            id->budget_unit_ms = id->budget_unit_ms > capacity ? capacity : id->budget_unit_ms;
        }
    }
}

static void on_finish_lines(guard_t *g, const engine_hold_view_t *h, const guard_hold_t *side,
                            int64_t at_ms)
{
    bool committed = h->state == ENGINE_HOLD_COMMITTED_STATE;
    for (uint16_t i = 0; i < h->line_count; i++) {
        uint32_t sku = h->lines[i].sku_index;
        if (side->ids[POLICY_ID_CUSTOMER] != 0) {
            uint32_t c = cs_find(g, side->ids[POLICY_ID_CUSTOMER] - 1, sku);
            assert(c != NONE && g->cs[c].units_active >= h->lines[i].qty);
            guard_customer_sku_t *e = &g->cs[c];
            e->units_active -= h->lines[i].qty;
            if (committed) {
                if (cs_bought(g, e, at_ms) == 0) {
                    e->bought = 0;
                    e->window_start_ms = at_ms;
                }
                e->bought += h->lines[i].qty;
            }
        }
        guard_sku_t *s = &g->skus[sku];
        sku_bring(g, s, guard_sku_policy(g, sku, NULL), at_ms);
        s->committed += committed ? 1.0 : 0.0;
    }
}

/* Everything a hold leaving the active state changes besides the engine. */
static void on_finish(guard_t *g, const engine_hold_view_t *h, int64_t at_ms)
{
    uint32_t slot = engine_hold_slot(h->id);
    guard_hold_t side = g->holds[slot];
    bool committed = h->state == ENGINE_HOLD_COMMITTED_STATE;
    on_finish_identities(g, h, &side, at_ms);
    on_finish_lines(g, h, &side, at_ms);
    shop_bring(g, at_ms);
    g->shop_committed += committed ? 1.0 : 0.0;
    if (side.wait != 0) {
        guard_wait_t *w = &g->waits[side.wait - 1];
        assert(w->state == GUARD_WAIT_OFFERED && w->hold_id == h->id);
        wait_finish(g, side.wait - 1, committed ? GUARD_WAIT_FULFILLED : GUARD_WAIT_EXPIRED,
                    at_ms);
    }
    g->holds[slot] = (guard_hold_t){0};
}

/* ----------------------------------------------------------------- time */

/* Expires every hold due at exactly at_ms, then serves the waitlists of the
 * skus they freed: an offer made at at_ms must not expire a tie unseen. */
static void expire_instant(guard_t *g, int64_t at_ms)
{
    uint32_t marked = 0;
    engine_hold_view_t h;
    while (engine_next_expiry_ms(&g->engine) == at_ms &&
           engine_expire_next(&g->engine, at_ms, &h)) {
        on_finish(g, &h, at_ms);
        for (uint16_t i = 0; i < h.line_count; i++) {
            guard_sku_t *s = &g->skus[h.lines[i].sku_index];
            if (s->wait_head != 0 && !s->marked) {
                s->marked = 1;
                g->scratch[marked++] = h.lines[i].sku_index;
            }
        }
    }
    for (uint32_t i = 0; i < marked; i++) {
        g->skus[g->scratch[i]].marked = 0;
        wait_serve(g, g->scratch[i], at_ms);
    }
}

void guard_advance(guard_t *g, int64_t now_ms)
{
    assert(now_ms >= g->engine.now_ms);
    for (int64_t t = engine_next_expiry_ms(&g->engine); t <= now_ms;
         t = engine_next_expiry_ms(&g->engine)) {
        expire_instant(g, t);
    }
    engine_advance(&g->engine, now_ms);
    proofs_forget(g, now_ms);
    serve_starved(g);
}

/* -------------------------------------------------------------- applying */

static guard_outcome_t engine_failed(engine_outcome_t o)
{
    return (guard_outcome_t){.result = o.result == ENGINE_OK ? GUARD_OK : GUARD_ENGINE,
                             .engine = o};
}


/* The customer-and-sku entries a hold would add: one per line the
 * customer has none for yet. */
static uint32_t cs_needed(const guard_t *g, const engine_hold_create_t *c, const names_t *n)
{
    uint32_t customer = n->ids[POLICY_ID_CUSTOMER];
    if (customer == NONE) {
        return c->line_count;
    }
    uint32_t needed = 0;
    for (uint16_t i = 0; i < c->line_count; i++) {
        uint32_t sku;
        bool known = engine_sku_find(&g->engine, c->lines[i].sku, c->lines[i].sku_len, &sku) &&
                     cs_find(g, customer, sku) != NONE;
        needed += !known;
    }
    return needed;
}

static guard_result_t room_now(const guard_t *g, const guard_op_t *op, const names_t *n)
{
    uint32_t new_ids = 0;
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        new_ids += n->len[k] > 0 && n->ids[k] == NONE;
    }
    if (!id_room(g, new_ids)) {
        return GUARD_IDENTITIES_FULL;
    }
    const engine_hold_create_t *c = &op->engine.u.hold_create;
    if (g->stats.customer_skus + cs_needed(g, c, n) > g->config.customer_skus_max) {
        return GUARD_CUSTOMER_SKUS_FULL;
    }
    if (op->proof_tag != 0 && g->proof_count >= g->config.proofs_max) {
        return GUARD_PROOFS_FULL;
    }
    return GUARD_OK;
}

/* Whether the tables have room for what a hold would add. A table full of
 * entries at rest makes room by sweeping it whole (rare: the regular sweep
 * keeps up), at most once a GUARD_FULL_SWEEP_MS so that a full table cannot
 * make every refused request pay for a scan. The sweep changes state even
 * when the hold is refused after it: *swept says so, and the op is then
 * journaled (its replay sweeps and is refused alike). n is found again, as
 * the sweep may free what it named. */
static guard_result_t hold_room(guard_t *g, const guard_op_t *op, names_t *n, bool *swept)
{
    int64_t now_ms = op->engine.now_ms;
    guard_result_t r = room_now(g, op, n);
    bool full = r == GUARD_IDENTITIES_FULL || r == GUARD_CUSTOMER_SKUS_FULL;
    *swept = full && now_ms >= g->swept_at_ms + GUARD_FULL_SWEEP_MS;
    if (*swept) {
        sweep(g, now_ms, g->id_hwm > g->cs_hwm ? g->id_hwm : g->cs_hwm, true);
        g->swept_at_ms = now_ms;
        names_find(g, &op->engine.u.hold_create, n);
        r = room_now(g, op, n);
    }
    return r;
}

/* Buy now: the hold just made is sold in the same step. */
static void buy_now(guard_t *g, const guard_op_t *op, engine_hold_view_t *h)
{
    int64_t now_ms = op->engine.now_ms;
    engine_op_t commit = {.kind = ENGINE_OP_HOLD_COMMIT, .now_ms = now_ms};
    commit.u.hold.hold_id = h->id;
    memcpy(commit.u.hold.order_ref, op->order_ref, op->order_ref_len);
    commit.u.hold.order_ref_len = op->order_ref_len;
    engine_outcome_t co = engine_apply(&g->engine, &commit);
    assert(co.result == ENGINE_OK && co.changed);
    engine_result_t r = engine_hold_view(&g->engine, h->id, h);
    assert(r == ENGINE_OK);
    on_finish(g, h, now_ms);
    g->stats.buy_now++;
}

/* n: what the live path found while deciding, or NULL (replay). */
static guard_outcome_t apply_hold_create(guard_t *g, guard_op_t *op, names_t *n)
{
    int64_t now_ms = op->engine.now_ms;
    engine_hold_create_t *c = &op->engine.u.hold_create;
    names_t found;
    if (n == NULL) {
        names_find(g, c, &found);
        n = &found;
    }
    bool swept;
    guard_outcome_t out = {.result = hold_room(g, op, n, &swept)};
    if (out.result != GUARD_OK) {
        out.swept = swept;
        return out;
    }
    out = engine_failed(engine_apply(&g->engine, &op->engine));
    out.swept = swept;
    if (out.result != GUARD_OK || out.engine.replayed) {
        return out;
    }
    c->hold_id = out.engine.hold_id;
    out.changed = true;
    if (n->ids[POLICY_ID_CUSTOMER] == NONE) {
        n->cs_known = false; /* a new customer has no entries to reuse */
    }
    names_add(g, n, now_ms);
    guard_hold_t side = {0};
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        side.ids[k] = n->ids[k] == NONE ? 0 : n->ids[k] + 1;
    }
    engine_hold_view_t h;
    engine_result_t r = engine_hold_view(&g->engine, out.engine.hold_id, &h);
    assert(r == ENGINE_OK);
    bool charged = !op->buy_now && g->policy.budget_enabled;
    double cost_unit_ms = charged ? (double)hold_units(&h) * (double)c->ttl_ms : 0.0;
    on_start(g, &h, &side, cost_unit_ms, now_ms, n->cs_known ? n->cs : NULL);
    if (op->proof_tag != 0) {
        proof_add(g, op->proof_tag, op->proof_expires_ms);
        g->stats.proofs_accepted++;
    }
    if (op->buy_now) {
        buy_now(g, op, &h);
    }
    for (uint16_t i = 0; i < h.line_count; i++) {
        sku_evaluate(g, h.lines[i].sku_index, now_ms);
    }
    sweep(g, now_ms, SWEEP_PER_HOLD, false);
    return out;
}

/* Commit or release: the engine moves the hold, the guard settles the rest. */
static guard_outcome_t apply_hold_finish(guard_t *g, guard_op_t *op)
{
    int64_t now_ms = op->engine.now_ms;
    if (op->engine.kind == ENGINE_OP_HOLD_RELEASE) {
        memcpy(op->engine.u.hold.order_ref, op->reason, op->reason_len);
        op->engine.u.hold.order_ref_len = op->reason_len;
    }
    guard_outcome_t out = engine_failed(engine_apply(&g->engine, &op->engine));
    if (out.result != GUARD_OK || !out.engine.changed) {
        return out;
    }
    out.changed = true;
    engine_hold_view_t h;
    engine_result_t r = engine_hold_view(&g->engine, op->engine.u.hold.hold_id, &h);
    assert(r == ENGINE_OK);
    on_finish(g, &h, now_ms);
    for (uint16_t i = 0; i < h.line_count; i++) {
        wait_serve(g, h.lines[i].sku_index, now_ms);
        sku_evaluate(g, h.lines[i].sku_index, now_ms);
    }
    return out;
}

/* An extension is charged to the budgets for the time it adds. */
static guard_outcome_t apply_hold_extend(guard_t *g, guard_op_t *op)
{
    engine_hold_view_t before;
    bool found = engine_hold_view(&g->engine, op->engine.u.hold.hold_id, &before) == ENGINE_OK;
    guard_outcome_t out = engine_failed(engine_apply(&g->engine, &op->engine));
    if (out.result != GUARD_OK || !out.engine.changed) {
        return out;
    }
    assert(found);
    out.changed = true;
    engine_hold_view_t h;
    engine_hold_view(&g->engine, before.id, &h);
    double cost_unit_ms = (double)hold_units(&h) * (double)(h.expires_ms - before.expires_ms);
    if (!g->policy.budget_enabled) {
        return out; /* nothing charged, nothing to refund later either */
    }
    guard_hold_t *side = &g->holds[engine_hold_slot(h.id)];
    side->charged = 1;
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        if (side->ids[k] != 0) {
            guard_identity_t *id = &g->ids[side->ids[k] - 1];
            id_bring(g, id, op->engine.now_ms);
            id->budget_unit_ms -= cost_unit_ms;
        }
    }
    return out;
}

static guard_outcome_t apply_sku_put(guard_t *g, guard_op_t *op)
{
    guard_outcome_t out = engine_failed(engine_apply(&g->engine, &op->engine));
    if (out.result == GUARD_OK && out.engine.changed) {
        out.changed = true;
        wait_serve(g, out.engine.sku_index, op->engine.now_ms);
    }
    return out;
}

static guard_outcome_t apply_engine(guard_t *g, guard_op_t *op)
{
    switch (op->engine.kind) {
    case ENGINE_OP_SKU_PUT:
        return apply_sku_put(g, op);
    case ENGINE_OP_HOLD_CREATE:
        return apply_hold_create(g, op, NULL);
    case ENGINE_OP_HOLD_COMMIT:
    case ENGINE_OP_HOLD_RELEASE:
        return apply_hold_finish(g, op);
    case ENGINE_OP_HOLD_EXTEND:
        return apply_hold_extend(g, op);
    }
    assert(0 && "unknown engine op");
    return (guard_outcome_t){.result = GUARD_NOT_FOUND};
}

static guard_outcome_t apply_policy_put(guard_t *g, const guard_op_t *op)
{
    policy_field_t bad;
    assert(policy_config_valid(&op->u.policy, &bad));
    g->policy = op->u.policy;
    g->policy_set = true;
    for (uint32_t i = 0; i < g->sku_policy_count; i++) {
        sku_policy_resolve(&g->policy, &g->sku_policies[i]);
    }
    return (guard_outcome_t){.result = GUARD_OK, .changed = true};
}

/* Whether a sku (or one not created yet: NONE) may take these settings of
 * its own: a slot in the table, and a valid policy on top of the shop's. */
static guard_result_t sku_policy_fits(const guard_t *g, uint32_t sku, const guard_op_t *op,
                                      policy_field_t *bad_out)
{
    bool has_own = sku != NONE && g->skus[sku].policy != 0;
    if (op->u.sku_policy.mask != 0 && !has_own &&
        g->sku_policy_count >= g->config.sku_policies_max) {
        return GUARD_SKU_POLICIES_FULL;
    }
    guard_sku_policy_t sp = {.mask = op->u.sku_policy.mask, .values = op->u.sku_policy.values};
    sku_policy_resolve(&g->policy, &sp);
    return policy_config_valid(&sp.resolved, bad_out) ? GUARD_OK : GUARD_POLICY_CONFLICT;
}

guard_result_t guard_sku_policy_check(const guard_t *g, const guard_op_t *op,
                                      policy_field_t *bad_out)
{
    uint32_t sku;
    bool found = engine_sku_find(&g->engine, op->u.sku_policy.sku, op->u.sku_policy.sku_len, &sku);
    return sku_policy_fits(g, found ? sku : NONE, op, bad_out);
}

static guard_outcome_t apply_sku_policy(guard_t *g, const guard_op_t *op)
{
    uint32_t sku;
    policy_field_t bad;
    if (!engine_sku_find(&g->engine, op->u.sku_policy.sku, op->u.sku_policy.sku_len, &sku)) {
        return (guard_outcome_t){.result = GUARD_NOT_FOUND};
    }
    guard_sku_t *s = &g->skus[sku];
    if (s->policy == 0 && op->u.sku_policy.mask == 0) {
        return (guard_outcome_t){.result = GUARD_OK}; /* nothing to clear */
    }
    guard_result_t fits = sku_policy_fits(g, sku, op, &bad);
    if (fits != GUARD_OK) {
        return (guard_outcome_t){.result = fits};
    }
    if (s->policy == 0) {
        s->policy = ++g->sku_policy_count;
    }
    guard_sku_policy_t *sp = &g->sku_policies[s->policy - 1];
    sp->mask = op->u.sku_policy.mask;
    sp->values = op->u.sku_policy.values;
    sku_policy_resolve(&g->policy, sp);
    return (guard_outcome_t){.result = GUARD_OK, .changed = true};
}

/* Releases every active hold that names the identity, with the reason. */
static guard_outcome_t apply_revoke(guard_t *g, guard_op_t *op)
{
    uint32_t i = id_find(g, op->u.revoke.kind, op->u.revoke.value, op->u.revoke.value_len);
    if (i == NONE) {
        return (guard_outcome_t){.result = GUARD_NOT_FOUND};
    }
    guard_outcome_t out = {.result = GUARD_OK};
    uint32_t slots = g->engine.hold_hwm;
    for (uint32_t slot = 0; slot < slots && g->ids[i].holds_active > 0; slot++) {
        if (g->holds[slot].ids[op->u.revoke.kind] != i + 1) {
            continue;
        }
        guard_op_t release = {.kind = GUARD_OP_ENGINE};
        release.engine = (engine_op_t){.kind = ENGINE_OP_HOLD_RELEASE,
                                       .now_ms = op->engine.now_ms};
        release.engine.u.hold.hold_id = g->engine.holds[slot].id;
        memcpy(release.reason, op->reason, op->reason_len);
        release.reason_len = op->reason_len;
        guard_outcome_t o = apply_hold_finish(g, &release);
        assert(o.result == GUARD_OK && o.changed);
        out.revoked++;
    }
    g->stats.revoked_holds += out.revoked;
    out.changed = out.revoked > 0;
    return out;
}

/* Whether the customer already waits in this sku's line (one place each). */
static bool wait_has_customer(const guard_t *g, uint32_t sku, const char *customer, size_t len)
{
    uint64_t h = waiting_hash(sku, customer, len);
    for (uint32_t b = (uint32_t)h & g->wait_index_mask; g->wait_index[b] != 0;
         b = (b + 1) & g->wait_index_mask) {
        const guard_wait_t *w = &g->waits[g->wait_index[b] - 1];
        if (w->sku == sku && w->customer_len == len && memcmp(w->customer, customer, len) == 0) {
            return true;
        }
    }
    return false;
}

static guard_outcome_t apply_wait_join(guard_t *g, guard_op_t *op)
{
    uint32_t sku;
    if (!engine_sku_find(&g->engine, op->u.wait_join.sku, op->u.wait_join.sku_len, &sku)) {
        return (guard_outcome_t){.result = GUARD_ENGINE,
                                 .engine = {.result = ENGINE_SKU_NOT_FOUND}};
    }
    const policy_config_t *c = guard_sku_policy(g, sku, NULL);
    if (!c->waitlist_enabled) {
        return (guard_outcome_t){.result = GUARD_WAITLIST_OFF};
    }
    if (c->quantity_enabled && op->u.wait_join.qty > c->quantity_line_qty_max) {
        g->stats.denials[POLICY_RULE_LINE_QTY]++; /* refused: never journaled, as a hold's */
        g->skus[sku].denials++;
        guard_outcome_t out = {.result = GUARD_DENIED};
        out.decision = (policy_decision_t){.verdict = POLICY_DENY, .rule = POLICY_RULE_LINE_QTY,
                                           .limit = c->quantity_line_qty_max,
                                           .current = op->u.wait_join.qty,
                                           .retry_after_ms = -1};
        return out;
    }

    engine_sku_view_t v;
    engine_sku_view(&g->engine, sku, &v);
    if (v.available >= op->u.wait_join.qty) {
        return (guard_outcome_t){.result = GUARD_WAIT_AVAILABLE};
    }
    guard_sku_t *s = &g->skus[sku];
    if (wait_has_customer(g, sku, op->u.wait_join.customer, op->u.wait_join.customer_len)) {
        return (guard_outcome_t){.result = GUARD_WAIT_DUPLICATE};
    }
    uint32_t i = s->wait_count < HF_WAITLIST_PER_SKU_MAX ? wait_alloc(g) : NONE;
    if (i == NONE) {
        return (guard_outcome_t){.result = GUARD_WAITLIST_FULL};
    }
    uint64_t id = op->u.wait_join.id;
    if (id == 0) {
        id = (++g->wait_seq << WAIT_INDEX_BITS) | i;
    } else if ((id & WAIT_INDEX_MASK) != i) {
        return (guard_outcome_t){.result = GUARD_NOT_FOUND}; /* replay diverged: refused */
    } else {
        g->wait_seq = id >> WAIT_INDEX_BITS;
    }
    op->u.wait_join.id = id;
    guard_wait_t *w = &g->waits[i];
    *w = (guard_wait_t){.id = id, .created_ms = op->engine.now_ms, .sku = sku,
                        .ip_len = op->u.wait_join.ip_len,
                        .fingerprint_len = op->u.wait_join.fingerprint_len,
                        .qty = op->u.wait_join.qty, .state = GUARD_WAIT_WAITING,
                        .customer_len = op->u.wait_join.customer_len};
    memcpy(w->customer, op->u.wait_join.customer, w->customer_len);
    memcpy(w->ip, op->u.wait_join.ip, w->ip_len);
    memcpy(w->fingerprint, op->u.wait_join.fingerprint, w->fingerprint_len);
    if (s->wait_tail == 0) {
        s->wait_head = i + 1;
    } else {
        g->waits[s->wait_tail - 1].next = i + 1;
    }
    s->wait_tail = i + 1;
    s->wait_count++;
    g->stats.waiting++;
    g->stats.wait_joined++;
    index_insert(g->wait_index, g->wait_index_mask, wait_hash_of(g, i), i);
    wait_serve(g, sku, op->engine.now_ms); /* units may be there already */
    return (guard_outcome_t){.result = GUARD_OK, .changed = true, .id = id};
}

static uint32_t wait_find(const guard_t *g, uint64_t id)
{
    uint64_t i = id & WAIT_INDEX_MASK;
    if (i >= g->wait_hwm || g->waits[i].id != id || g->waits[i].state == GUARD_WAIT_FREE) {
        return NONE;
    }
    return (uint32_t)i;
}

/* Cancelling an offer releases its hold, whose units go to the next. */
static guard_outcome_t apply_wait_cancel(guard_t *g, guard_op_t *op)
{
    uint32_t i = wait_find(g, op->u.wait_id);
    if (i == NONE) {
        return (guard_outcome_t){.result = GUARD_NOT_FOUND};
    }
    guard_wait_t *w = &g->waits[i];
    if (w->state == GUARD_WAIT_WAITING) {
        wait_unlink(g, i);
        wait_finish(g, i, GUARD_WAIT_CANCELLED, op->engine.now_ms);
        wait_serve(g, w->sku, op->engine.now_ms); /* it may have held up the next */
    } else if (w->state == GUARD_WAIT_OFFERED) {
        guard_op_t release = {.kind = GUARD_OP_ENGINE};
        release.engine = (engine_op_t){.kind = ENGINE_OP_HOLD_RELEASE,
                                       .now_ms = op->engine.now_ms};
        release.engine.u.hold.hold_id = w->hold_id;
        static const char reason[] = "waitlist offer cancelled";
        memcpy(release.reason, reason, sizeof reason - 1);
        release.reason_len = sizeof reason - 1;
        guard_outcome_t o = apply_hold_finish(g, &release);
        assert(o.result == GUARD_OK && o.changed);
        w->state = GUARD_WAIT_CANCELLED; /* on_finish called it expired */
        g->stats.wait_expired--;
        g->stats.wait_cancelled++;
    } else {
        return (guard_outcome_t){.result = GUARD_WAIT_FINISHED};
    }
    return (guard_outcome_t){.result = GUARD_OK, .changed = true};
}

guard_outcome_t guard_apply(guard_t *g, guard_op_t *op)
{
    guard_advance(g, op->engine.now_ms);
    guard_outcome_t out;
    switch (op->kind) {
    case GUARD_OP_ENGINE:
        out = apply_engine(g, op);
        break;
    case GUARD_OP_POLICY_PUT:
        out = apply_policy_put(g, op);
        break;
    case GUARD_OP_SKU_POLICY:
        out = apply_sku_policy(g, op);
        break;
    case GUARD_OP_REVOKE:
        out = apply_revoke(g, op);
        break;
    case GUARD_OP_WAIT_JOIN:
        out = apply_wait_join(g, op);
        break;
    case GUARD_OP_WAIT_CANCEL:
        out = apply_wait_cancel(g, op);
        break;
    case GUARD_OP_SWEEP:
        sweep(g, op->engine.now_ms, g->id_hwm > g->cs_hwm ? g->id_hwm : g->cs_hwm, true);
        g->swept_at_ms = op->engine.now_ms;
        out = (guard_outcome_t){.result = GUARD_OK, .changed = true};
        break;
    case GUARD_OP_SECRET:
        memcpy(g->secret, op->u.secret, GUARD_SECRET_BYTES);
        g->has_secret = true;
        out = (guard_outcome_t){.result = GUARD_OK, .changed = true};
        break;
    default:
        assert(0 && "unknown guard op");
        out = (guard_outcome_t){.result = GUARD_NOT_FOUND};
    }
    serve_starved(g);
    assert(out.result == GUARD_OK || !out.changed);
    return out;
}

/* ------------------------------------------------------------- deciding */

uint64_t guard_request_hash(const guard_hold_request_t *req)
{
    const engine_hold_create_t *c = &req->create;
    uint64_t h = 0x6a09e667f3bcc908ull;
    h = hash_bytes(h ^ c->customer_len, c->customer, c->customer_len);
    h = hash_bytes(h ^ c->ip_len, c->ip, c->ip_len);
    h = hash_bytes(h ^ c->fingerprint_len, c->fingerprint, c->fingerprint_len);
    h = hash_bytes(h ^ (uint64_t)c->ttl_ms, &c->line_count, sizeof c->line_count);
    for (uint16_t i = 0; i < c->line_count; i++) {
        h = hash_bytes(h ^ c->lines[i].qty, c->lines[i].sku, c->lines[i].sku_len);
    }
    h = hash_bytes(h ^ (uint64_t)req->buy_now, req->order_ref, req->order_ref_len);
    return h == 0 ? 1 : h; /* 0 tells the engine to hash on its own */
}

/* Fills one line of the policy's input; false if the sku is unknown. */
static bool line_input(const guard_t *g, const engine_line_t *l, uint32_t customer,
                       int64_t now_ms, policy_line_t *out, uint32_t *cs_out)
{
    uint32_t sku;
    if (!engine_sku_find(&g->engine, l->sku, l->sku_len, &sku)) {
        return false;
    }
    engine_sku_view_t v;
    engine_sku_view(&g->engine, sku, &v);
    *out = (policy_line_t){.config = guard_sku_policy(g, sku, NULL),
                           .escalated = sku_escalated_now(g, sku, now_ms),
                           .stock = v.stock, .held = v.held, .available = v.available,
                           .qty = l->qty};
    uint32_t c = customer == NONE ? NONE : cs_find(g, customer, sku);
    *cs_out = c;
    if (c != NONE) {
        const guard_customer_sku_t *e = &g->cs[c];
        int64_t bought = cs_bought(g, e, now_ms);
        out->customer_units = e->units_active + bought;
        out->customer_window_left_ms =
            bought > 0 ? e->window_start_ms + g->policy.quantity_customer_sku_window_ms - now_ms
                       : 0;
    }
    return true;
}

/* An Idempotency-Key seen before answers as the first time, undecided. */
static bool idem_replay(const guard_t *g, const guard_hold_request_t *req, uint64_t hash,
                        guard_outcome_t *out)
{
    const engine_hold_create_t *c = &req->create;
    uint64_t seen_hash, hold_id;
    if (c->idem_key_len == 0 ||
        !engine_idem_lookup(&g->engine, c->idem_key, c->idem_key_len, &seen_hash, &hold_id)) {
        return false;
    }
    bool same = seen_hash == hash;
    *out = (guard_outcome_t){.result = same ? GUARD_OK : GUARD_ENGINE};
    out->engine = (engine_outcome_t){.result = same ? ENGINE_OK : ENGINE_IDEMPOTENCY_MISMATCH,
                                     .replayed = same, .hold_id = hold_id};
    return true;
}

/* The policy's input for req: n is filled on the way, for the apply. */
static policy_decision_t decide(guard_t *g, const guard_hold_request_t *req, int64_t now_ms,
                                names_t *n, policy_hold_input_t *in, uint16_t *unknown_line)
{
    const engine_hold_create_t *c = &req->create;
    names_find(g, c, n);
    /* Field by field: the struct has room for 64 lines, a request has few. */
    in->global = &g->policy;
    in->now_ms = now_ms;
    in->ttl_ms_requested = c->ttl_ms;
    in->buy_now = req->buy_now;
    in->shop_started = policy_decay(&g->policy, g->shop_started, g->shop_at_ms, now_ms);
    in->shop_committed = policy_decay(&g->policy, g->shop_committed, g->shop_at_ms, now_ms);
    in->line_count = c->line_count;
    in->proof_valid = req->proof_tag != 0 && req->proof_expires_ms > now_ms &&
                      !proof_used(g, req->proof_tag);
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        in->ids[k] = id_policy_view(g, (policy_id_kind_t)k, n->len[k] > 0, n->ids[k], now_ms);
    }
    n->cs_known = true;
    for (uint16_t i = 0; i < c->line_count; i++) {
        if (!line_input(g, &c->lines[i], n->ids[POLICY_ID_CUSTOMER], now_ms, &in->lines[i],
                        &n->cs[i])) {
            *unknown_line = i;
            return (policy_decision_t){.verdict = POLICY_DENY, .rule = POLICY_RULE_NONE};
        }
    }
    return policy_decide_hold(in);
}

/* The op a decision to allow req makes: only the lines it has are copied
 * (a hold create has room for 64). */
static void hold_op_fill(guard_op_t *op, const guard_hold_request_t *req, int64_t now_ms,
                         const policy_decision_t *d, bool proof_valid, uint64_t hash)
{
    op->kind = GUARD_OP_ENGINE;
    op->buy_now = req->buy_now;
    op->order_ref_len = req->order_ref_len;
    memcpy(op->order_ref, req->order_ref, req->order_ref_len);
    op->reason_len = 0;
    op->proof_tag = d->bits > 0 && proof_valid ? req->proof_tag : 0;
    op->proof_expires_ms = op->proof_tag != 0 ? req->proof_expires_ms : 0;
    op->engine.kind = ENGINE_OP_HOLD_CREATE;
    op->engine.now_ms = now_ms;
    engine_hold_create_t *c = &op->engine.u.hold_create;
    memcpy(c, &req->create, offsetof(engine_hold_create_t, lines) +
                                req->create.line_count * sizeof(engine_line_t));
    c->ttl_ms = d->ttl_ms;
    c->request_hash = hash;
}

static void count_refusal(guard_t *g, const guard_hold_request_t *req,
                          const policy_decision_t *d)
{
    bool denied = d->verdict == POLICY_DENY;
    (denied ? g->stats.denials : g->stats.challenges)[d->rule]++;
    uint32_t sku; /* per-sku counts: the line the rule is about, or the first */
    const engine_line_t *l = &req->create.lines[d->line_index];
    if (engine_sku_find(&g->engine, l->sku, l->sku_len, &sku)) {
        uint64_t *count = denied ? &g->skus[sku].denials : &g->skus[sku].challenges;
        (*count)++;
    }
}

guard_outcome_t guard_hold(guard_t *g, const guard_hold_request_t *req, int64_t now_ms,
                           guard_op_t *op)
{
    guard_advance(g, now_ms);
    uint64_t hash = guard_request_hash(req);
    guard_outcome_t out;
    if (idem_replay(g, req, hash, &out)) {
        g->engine.stats.idem_replays += out.engine.replayed;
        return out;
    }
    policy_hold_input_t in;
    names_t names;
    uint16_t unknown = UINT16_MAX;
    policy_decision_t d = decide(g, req, now_ms, &names, &in, &unknown);
    if (unknown != UINT16_MAX) {
        return (guard_outcome_t){.result = GUARD_ENGINE,
                                 .engine = {.result = ENGINE_SKU_NOT_FOUND, .sku_index = unknown}};
    }
    g->stats.proofs_refused += req->proof_tag != 0 && !in.proof_valid;
    if (d.verdict != POLICY_ALLOW) {
        count_refusal(g, req, &d);
        return (guard_outcome_t){.result = d.verdict == POLICY_DENY ? GUARD_DENIED
                                                                    : GUARD_CHALLENGED,
                                 .decision = d};
    }
    hold_op_fill(op, req, now_ms, &d, in.proof_valid, hash);
    /* Applied as guard_apply would (time is already advanced), with what
     * deciding found: the same state, without finding it all again. */
    out = apply_hold_create(g, op, &names);
    serve_starved(g);
    out.decision = d;
    return out;
}

/* The most an extension may add now: the hold's whole life within
 * life_max_ms, and no more than each sku's scarcity TTL. */
static int64_t extend_ttl_ms(const guard_t *g, const engine_hold_view_t *h, int64_t ttl_ms,
                             int64_t now_ms)
{
    for (uint16_t i = 0; i < h->line_count; i++) {
        uint32_t sku = h->lines[i].sku_index;
        engine_sku_view_t v;
        engine_sku_view(&g->engine, sku, &v);
        int64_t line_ms = policy_extend_ttl_ms(guard_sku_policy(g, sku, NULL), ttl_ms,
                                               h->created_ms, now_ms, v.stock, v.available);
        ttl_ms = line_ms < ttl_ms ? line_ms : ttl_ms;
    }
    return ttl_ms;
}

guard_outcome_t guard_extend(guard_t *g, uint64_t hold_id, int64_t ttl_ms, int64_t now_ms,
                             guard_op_t *op)
{
    guard_advance(g, now_ms);
    *op = (guard_op_t){.kind = GUARD_OP_ENGINE};
    op->engine = (engine_op_t){.kind = ENGINE_OP_HOLD_EXTEND, .now_ms = now_ms};
    op->engine.u.hold.hold_id = hold_id;
    op->engine.u.hold.ttl_ms = ttl_ms;
    engine_hold_view_t h;
    if (engine_hold_view(&g->engine, hold_id, &h) != ENGINE_OK ||
        h.state != ENGINE_HOLD_ACTIVE) {
        return guard_apply(g, op); /* the engine says why not */
    }
    int64_t granted_ms = extend_ttl_ms(g, &h, ttl_ms, now_ms);
    guard_outcome_t out = {.result = GUARD_OK, .engine = {.hold_id = hold_id}};
    out.decision = (policy_decision_t){.verdict = POLICY_ALLOW, .ttl_ms = granted_ms,
                                       .retry_after_ms = -1};
    if (now_ms + granted_ms <= h.expires_ms) {
        return out; /* capped to nothing more: the hold as it is */
    }
    const guard_hold_t *side = &g->holds[engine_hold_slot(hold_id)];
    policy_identity_t ids[POLICY_ID_KINDS];
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        ids[k] = id_policy_view(g, (policy_id_kind_t)k, side->ids[k] != 0,
                                side->ids[k] == 0 ? NONE : side->ids[k] - 1, now_ms);
    }
    double cost_unit_ms = (double)hold_units(&h) * (double)(now_ms + granted_ms - h.expires_ms);
    out.decision = policy_decide_extend(&g->policy, ids, cost_unit_ms);
    if (out.decision.verdict != POLICY_ALLOW) {
        g->stats.denials[out.decision.rule]++;
        out.result = GUARD_DENIED;
        return out;
    }
    op->engine.u.hold.ttl_ms = granted_ms;
    out = guard_apply(g, op);
    out.decision.ttl_ms = granted_ms;
    return out;
}

/* ----------------------------------------------------------- challenges */

/* The challenge's MAC binds its difficulty, its expiry and the request. */
static uint64_t challenge_tag(const guard_t *g, uint64_t request_hash, uint32_t bits,
                              int64_t expires_ms)
{
    uint8_t msg[17], mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    msg[0] = (uint8_t)bits;
    for (int i = 0; i < 8; i++) {
        msg[1 + i] = (uint8_t)((uint64_t)expires_ms >> (8 * i));
        msg[9 + i] = (uint8_t)(request_hash >> (8 * i));
    }
    HMAC(EVP_sha256(), g->secret, GUARD_SECRET_BYTES, msg, sizeof msg, mac, &mac_len);
    assert(mac_len >= 8);
    uint64_t tag = 0;
    for (int i = 0; i < 8; i++) {
        tag = tag << 8 | mac[i];
    }
    return tag == 0 ? 1 : tag; /* 0 means "no proof" */
}

int64_t guard_challenge_make(const guard_t *g, uint64_t request_hash, uint32_t bits,
                             int64_t now_ms, char *out)
{
    assert(g->has_secret && bits >= 1 && bits <= 32);
    int64_t expires_ms = now_ms + g->policy.challenge_ttl_ms;
    uint64_t tag = challenge_tag(g, request_hash, bits, expires_ms);
    int n = snprintf(out, GUARD_PREFIX_TEXT_MAX + 1, "%02x%012llx%016llx", bits,
                     (unsigned long long)expires_ms, (unsigned long long)tag);
    assert(n == GUARD_PREFIX_TEXT_LEN);
    return expires_ms;
}

static bool parse_hex(const char *text, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = text[i];
        int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        if (d < 0) {
            return false;
        }
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return true;
}

bool guard_challenge_verify(const guard_t *g, uint64_t request_hash, const char *header,
                            size_t header_len, int64_t now_ms, uint64_t *tag_out,
                            int64_t *expires_ms_out)
{
    const char *prefix, *nonce;
    size_t prefix_len, nonce_len;
    uint64_t bits, expires_ms, tag;
    if (!g->has_secret ||
        !pow_parse_header(header, header_len, &prefix, &prefix_len, &nonce, &nonce_len) ||
        prefix_len != GUARD_PREFIX_TEXT_LEN || !parse_hex(prefix, 2, &bits) ||
        !parse_hex(prefix + 2, 12, &expires_ms) || !parse_hex(prefix + 14, 16, &tag)) {
        return false;
    }
    if (bits < 1 || bits > 32 || (int64_t)expires_ms <= now_ms ||
        challenge_tag(g, request_hash, (uint32_t)bits, (int64_t)expires_ms) != tag) {
        return false; /* not ours, not for this request, or too late */
    }
    if (!pow_check(prefix, prefix_len, nonce, nonce_len, (unsigned)bits)) {
        return false;
    }
    *tag_out = tag;
    *expires_ms_out = (int64_t)expires_ms;
    return true;
}

/* ---------------------------------------------------------------- reads */

static guard_identity_view_t id_view(const guard_t *g, uint32_t i)
{
    const guard_identity_t *id = &g->ids[i];
    int64_t now_ms = g->engine.now_ms;
    policy_identity_t p = id_policy_view(g, (policy_id_kind_t)id->kind, true, i, now_ms);
    double shop_started = policy_decay(&g->policy, g->shop_started, g->shop_at_ms, now_ms);
    double shop_committed = policy_decay(&g->policy, g->shop_committed, g->shop_at_ms, now_ms);
    return (guard_identity_view_t){
        .kind = (policy_id_kind_t)id->kind, .value = id->value, .value_len = id->len,
        .holds_active = id->holds_active, .units_held = id->units_held,
        .holds_total = id->holds_total, .commits_total = id->commits_total,
        .budget_unit_s = p.budget_unit_ms / 1000.0,
        .risk = policy_risk(&g->policy, &p, shop_started, shop_committed)};
}

bool guard_identity_find(const guard_t *g, policy_id_kind_t kind, const char *value,
                         size_t len, guard_identity_view_t *out)
{
    uint32_t i = id_find(g, kind, value, len);
    if (i == NONE) {
        return false;
    }
    *out = id_view(g, i);
    return true;
}

/* Larger is "more in need of a look". Conversion: those with history and few
 * commits first. */
static double top_score(const guard_identity_t *id, guard_top_by_t by)
{
    switch (by) {
    case GUARD_TOP_HELD_UNITS:
        return (double)id->units_held;
    case GUARD_TOP_HOLDS:
        return (double)id->holds_active;
    case GUARD_TOP_CONVERSION:
        if (id->holds_total == 0) {
            return -1.0;
        }
        return (double)id->holds_total * (1.0 - (double)id->commits_total /
                                                    (double)id->holds_total);
    }
    return 0.0;
}

uint32_t guard_identities_top(const guard_t *g, guard_top_by_t by, uint32_t max,
                              guard_identity_view_t *out)
{
    assert(max <= HF_TOP_IDENTITIES_MAX);
    uint32_t best[HF_TOP_IDENTITIES_MAX];
    double score[HF_TOP_IDENTITIES_MAX];
    uint32_t n = 0;
    for (uint32_t i = 0; i < g->id_hwm; i++) {
        double s = g->ids[i].live ? top_score(&g->ids[i], by) : -1.0;
        if (s <= 0.0 || (n == max && s <= score[n - 1])) {
            continue;
        }
        uint32_t at = n < max ? n++ : max - 1; /* insertion into a short sorted list */
        while (at > 0 && score[at - 1] < s) {
            best[at] = best[at - 1];
            score[at] = score[at - 1];
            at--;
        }
        best[at] = i;
        score[at] = s;
    }
    for (uint32_t k = 0; k < n; k++) {
        out[k] = id_view(g, best[k]);
    }
    return n;
}

void guard_sku_view(const guard_t *g, uint32_t sku_index, guard_sku_view_t *out)
{
    const guard_sku_t *s = &g->skus[sku_index];
    const policy_config_t *c = guard_sku_policy(g, sku_index, NULL);
    guard_sku_t copy = *s;
    sku_bring((guard_t *)g, &copy, c, g->engine.now_ms);
    *out = (guard_sku_view_t){.escalated = sku_escalated_now(g, sku_index, g->engine.now_ms),
                              .escalations = s->escalations,
                              .escalated_at_ms = s->escalated_at_ms,
                              .conversion = copy.started >= 1.0 ? copy.committed / copy.started
                                                                : -1.0,
                              .recent_holds = copy.started,
                              .waiting = s->wait_count, .denials = s->denials,
                              .challenges = s->challenges};
}

bool guard_wait_view(const guard_t *g, uint64_t id, guard_wait_view_t *out)
{
    uint32_t i = wait_find(g, id);
    if (i == NONE) {
        return false;
    }
    const guard_wait_t *w = &g->waits[i];
    uint32_t position = 0;
    if (w->state == GUARD_WAIT_WAITING) {
        position = 1;
        for (uint32_t at = g->skus[w->sku].wait_head; at != i + 1; at = g->waits[at - 1].next) {
            assert(at != 0);
            position++;
        }
    }
    *out = (guard_wait_view_t){.id = w->id, .hold_id = w->hold_id,
                               .state = (guard_wait_state_t)w->state, .sku_index = w->sku,
                               .qty = w->qty, .position = position, .customer = w->customer,
                               .customer_len = w->customer_len, .created_ms = w->created_ms,
                               .finished_ms = w->finished_ms};
    return true;
}

bool guard_sku_has_holds(const guard_t *g, uint32_t sku)
{
    return g->skus[sku].started > 0.0 || g->skus[sku].escalated;
}

uint32_t guard_skus_escalated_now(const guard_t *g)
{
    uint32_t n = 0;
    for (uint32_t sku = 0; sku < engine_sku_count(&g->engine); sku++) {
        n += g->skus[sku].escalated && sku_escalated_now(g, sku, g->engine.now_ms);
    }
    return n;
}

bool guard_wait_state(const guard_t *g, uint64_t id, guard_wait_state_t *state_out,
                      uint64_t *hold_id_out)
{
    uint32_t i = wait_find(g, id);
    if (i == NONE) {
        return false;
    }
    *state_out = (guard_wait_state_t)g->waits[i].state;
    *hold_id_out = g->waits[i].hold_id;
    return true;
}

bool guard_wait_customer(const guard_t *g, uint64_t id, const char **customer_out,
                         uint8_t *len_out)
{
    uint32_t i = wait_find(g, id);
    if (i == NONE) {
        return false;
    }
    *customer_out = g->waits[i].customer;
    *len_out = g->waits[i].customer_len;
    return true;
}

size_t guard_wait_id_format(uint64_t id, char *out)
{
    return engine_id_format('w', id, out);
}

bool guard_wait_id_parse(const char *text, size_t len, uint64_t *id_out)
{
    return engine_id_parse('w', text, len, id_out);
}

guard_stats_t guard_stats(const guard_t *g)
{
    return g->stats;
}

/* ---------------------------------------------------------------- check */

typedef struct {
    uint32_t *holds;
    int64_t *units;
    uint32_t *cs_units;
} check_sums_t;

static bool check_hold_side(const guard_t *g, uint32_t slot, check_sums_t *sum)
{
    const guard_hold_t *side = &g->holds[slot];
    const engine_hold_t *eh = &g->engine.holds[slot];
    if (eh->state != ENGINE_HOLD_ACTIVE) {
        return side->ids[0] == 0 && side->ids[1] == 0 && side->ids[2] == 0 && side->wait == 0 &&
               side->charged == 0;
    }
    engine_hold_view_t h;
    if (engine_hold_view(&g->engine, eh->id, &h) != ENGINE_OK) {
        return false;
    }
    for (int k = 0; k < POLICY_ID_KINDS; k++) {
        uint32_t i = side->ids[k];
        if (i != 0 && (i > g->id_hwm || !g->ids[i - 1].live || g->ids[i - 1].kind != k)) {
            return false;
        }
        if (i != 0) {
            sum->holds[i - 1]++;
            sum->units[i - 1] += hold_units(&h);
        }
    }
    for (uint16_t l = 0; side->ids[0] != 0 && l < h.line_count; l++) {
        uint32_t c = cs_find(g, side->ids[0] - 1, h.lines[l].sku_index);
        if (c == NONE) {
            return false;
        }
        sum->cs_units[c] += h.lines[l].qty;
    }
    if (side->wait != 0) {
        const guard_wait_t *w = &g->waits[side->wait - 1];
        return side->wait <= g->wait_hwm && w->state == GUARD_WAIT_OFFERED && w->hold_id == eh->id;
    }
    return true;
}

static bool check_sums(const guard_t *g, const check_sums_t *sum)
{
    uint32_t live = 0, cs_live = 0;
    for (uint32_t i = 0; i < g->id_hwm; i++) {
        const guard_identity_t *id = &g->ids[i];
        live += id->live;
        if (id->live && (id->holds_active != sum->holds[i] || id->units_held != sum->units[i] ||
                         id_find(g, (policy_id_kind_t)id->kind, id->value, id->len) != i)) {
            return false;
        }
    }
    for (uint32_t c = 0; c < g->cs_hwm; c++) {
        cs_live += g->cs[c].live;
        if (g->cs[c].live && (g->cs[c].customer >= g->id_hwm || !g->ids[g->cs[c].customer].live)) {
            return false;
        }
        if (g->cs[c].live && (g->cs[c].units_active != sum->cs_units[c] ||
                              cs_find(g, g->cs[c].customer, g->cs[c].sku) != c)) {
            return false;
        }
    }
    return live == g->stats.identities && cs_live == g->stats.customer_skus;
}

static bool check_waitlists(const guard_t *g)
{
    uint32_t waiting = 0;
    for (uint32_t sku = 0; sku < engine_sku_count(&g->engine); sku++) {
        const guard_sku_t *s = &g->skus[sku];
        uint32_t n = 0, last = 0;
        if (s->policy > g->sku_policy_count) {
            return false;
        }
        for (uint32_t at = s->wait_head; at != 0; at = g->waits[at - 1].next) {
            if (at > g->wait_hwm || g->waits[at - 1].state != GUARD_WAIT_WAITING ||
                g->waits[at - 1].sku != sku || ++n > s->wait_count) {
                return false;
            }
            last = at;
        }
        if (n != s->wait_count || last != s->wait_tail) {
            return false;
        }
        engine_sku_view_t v;
        engine_sku_view(&g->engine, sku, &v);
        bool holds_full = g->engine.stats.holds_active >= g->engine.config.holds_max;
        uint32_t first = wait_first_servable(g, sku, v.stock - v.sold);
        if (first != NONE && v.available >= g->waits[first].qty && !holds_full) {
            return false; /* units the first servable entry could have been offered */
        }
        waiting += n;
    }
    return waiting == g->stats.waiting;
}

bool guard_check(const guard_t *g)
{
    if (!engine_check(&g->engine)) {
        return false;
    }
    check_sums_t sum = {calloc(g->id_hwm + 1, sizeof(uint32_t)),
                        calloc(g->id_hwm + 1, sizeof(int64_t)),
                        calloc(g->cs_hwm + 1, sizeof(uint32_t))};
    bool ok = sum.holds != NULL && sum.units != NULL && sum.cs_units != NULL;
    for (uint32_t slot = 0; ok && slot < g->engine.hold_hwm; slot++) {
        ok = check_hold_side(g, slot, &sum);
    }
    ok = ok && check_sums(g, &sum) && check_waitlists(g);
    free(sum.holds);
    free(sum.units);
    free(sum.cs_units);
    return ok;
}

/* -------------------------------------------------------------- snapshot
 * The guard's tables field by field, little-endian, so that a snapshot
 * outlives the layout of the structs that wrote it. Hashes and indexes are
 * not written: they are rebuilt from the entries. Reading checks every count
 * and index against the configured capacities, then guard_check() checks
 * the whole, so a damaged record is refused, never trusted. */

#define SNAP_MAGIC 0x32445247u /* "GRD2" */

typedef struct {
    guard_write_fn write;
    void *ctx;
} snap_writer_t;

static void w_bytes(snap_writer_t *w, const void *p, size_t n)
{
    w->write(w->ctx, p, n);
}

static void w_u64(snap_writer_t *w, uint64_t v)
{
    uint8_t le[8];
    for (int i = 0; i < 8; i++) {
        le[i] = (uint8_t)(v >> (8 * i));
    }
    w_bytes(w, le, 8);
}

static void w_f64(snap_writer_t *w, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits); /* the exact value: replay must match */
    w_u64(w, bits);
}

static void w_policy(snap_writer_t *w, const policy_config_t *c)
{
    w_u64(w, POLICY_FIELD_COUNT);
    for (int f = 0; f < POLICY_FIELD_COUNT; f++) {
        w_u64(w, (uint64_t)policy_field_get(c, (policy_field_t)f));
    }
}

static void w_stats(snap_writer_t *w, const guard_stats_t *st)
{
    w_u64(w, POLICY_RULE_COUNT);
    for (int r = 0; r < POLICY_RULE_COUNT; r++) {
        w_u64(w, st->denials[r]);
        w_u64(w, st->challenges[r]);
    }
    const uint64_t counters[] = {st->proofs_accepted, st->proofs_refused, st->escalations_on,
                                 st->escalations_off, st->wait_joined,   st->wait_offered,
                                 st->wait_fulfilled,  st->wait_expired,  st->wait_cancelled,
                                 st->wait_refused,
                                 st->revoked_holds,   st->buy_now,       st->identities,
                                 st->customer_skus,   st->skus_escalated, st->waiting};
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        w_u64(w, counters[i]);
    }
}

static void w_scalars(snap_writer_t *w, const guard_t *g)
{
    w_u64(w, SNAP_MAGIC);
    w_policy(w, &g->policy);
    w_u64(w, g->policy_set | (uint64_t)g->offers_starved << 1);
    w_bytes(w, g->secret, GUARD_SECRET_BYTES);
    w_u64(w, g->has_secret);
    w_f64(w, g->shop_started);
    w_f64(w, g->shop_committed);
    w_u64(w, (uint64_t)g->shop_at_ms);
    w_u64(w, (uint64_t)g->swept_at_ms);
    const uint64_t v[] = {g->id_hwm,          g->id_free,          g->id_sweep,
                          g->cs_hwm,          g->cs_free,          g->cs_sweep,
                          engine_sku_count(&g->engine), g->sku_policy_count, g->wait_hwm,
                          g->wait_done_head,  g->wait_done_tail,   g->wait_seq,
                          g->proof_count,     g->event_seq};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        w_u64(w, v[i]);
    }
    w_stats(w, &g->stats);
    for (int i = 0; i < GUARD_EVENTS_MAX; i++) {
        const guard_event_t *ev = &g->events[i];
        w_u64(w, ev->seq);
        w_u64(w, (uint64_t)ev->at_ms);
        w_u64(w, ev->sku);
        w_u64(w, ev->on);
    }
}

static void w_identity(snap_writer_t *w, const guard_identity_t *id)
{
    w_u64(w, id->live | (uint64_t)id->kind << 8 | (uint64_t)id->len << 16);
    w_bytes(w, id->value, id->len);
    w_u64(w, id->next_free);
    w_u64(w, id->holds_active);
    w_u64(w, id->customer_skus);
    w_u64(w, (uint64_t)id->units_held);
    w_f64(w, id->budget_unit_ms);
    w_u64(w, (uint64_t)id->budget_at_ms);
    w_f64(w, id->started);
    w_f64(w, id->committed);
    w_u64(w, (uint64_t)id->reputation_at_ms);
    w_u64(w, id->holds_total);
    w_u64(w, id->commits_total);
}

static void w_customer_sku(snap_writer_t *w, const guard_customer_sku_t *e)
{
    w_u64(w, e->live);
    w_u64(w, e->customer);
    w_u64(w, e->sku);
    w_u64(w, e->units_active);
    w_u64(w, e->next_free);
    w_u64(w, (uint64_t)e->bought);
    w_u64(w, (uint64_t)e->window_start_ms);
}

static void w_sku(snap_writer_t *w, const guard_sku_t *s)
{
    w_u64(w, s->policy);
    w_u64(w, s->escalated);
    w_u64(w, s->escalations);
    w_u64(w, (uint64_t)s->escalated_at_ms);
    w_f64(w, s->started);
    w_f64(w, s->committed);
    w_u64(w, (uint64_t)s->conversion_at_ms);
    w_u64(w, s->wait_head);
    w_u64(w, s->wait_tail);
    w_u64(w, s->wait_count);
    w_u64(w, s->denials);
    w_u64(w, s->challenges);
}

static void w_wait(snap_writer_t *w, const guard_wait_t *e)
{
    w_u64(w, e->id);
    w_u64(w, e->hold_id);
    w_u64(w, (uint64_t)e->created_ms);
    w_u64(w, (uint64_t)e->finished_ms);
    w_u64(w, e->sku);
    w_u64(w, e->qty);
    w_u64(w, e->next);
    w_u64(w, e->state | (uint64_t)e->customer_len << 8 | (uint64_t)e->ip_len << 16 |
                 (uint64_t)e->fingerprint_len << 24);
    w_bytes(w, e->customer, e->customer_len);
    w_bytes(w, e->ip, e->ip_len);
    w_bytes(w, e->fingerprint, e->fingerprint_len);
}

void guard_snapshot_write(const guard_t *g, guard_write_fn write, void *ctx)
{
    snap_writer_t w = {write, ctx};
    w_scalars(&w, g);
    for (uint32_t i = 0; i < g->id_hwm; i++) {
        w_identity(&w, &g->ids[i]);
    }
    for (uint32_t i = 0; i < g->cs_hwm; i++) {
        w_customer_sku(&w, &g->cs[i]);
    }
    for (uint32_t i = 0; i < engine_sku_count(&g->engine); i++) {
        w_sku(&w, &g->skus[i]);
    }
    for (uint32_t i = 0; i < g->sku_policy_count; i++) {
        w_u64(&w, g->sku_policies[i].mask);
        w_policy(&w, &g->sku_policies[i].values);
    }
    for (uint32_t i = 0; i < g->wait_hwm; i++) {
        w_wait(&w, &g->waits[i]);
    }
    for (uint32_t k = 0; k < g->proof_count; k++) {
        const guard_proof_t *p = &g->proofs[(g->proof_head + k) % g->config.proofs_max];
        w_u64(&w, p->tag);
        w_u64(&w, (uint64_t)p->expires_ms);
    }
    for (uint32_t slot = 0; slot < g->engine.hold_hwm; slot++) {
        const guard_hold_t *h = &g->holds[slot];
        if ((h->ids[0] | h->ids[1] | h->ids[2] | h->wait | h->charged) != 0) {
            w_u64(&w, slot | (uint64_t)h->charged << 32);
            w_u64(&w, h->ids[0] | (uint64_t)h->ids[1] << 32);
            w_u64(&w, h->ids[2] | (uint64_t)h->wait << 32);
        }
    }
    w_u64(&w, UINT64_MAX); /* the end of the hold records */
}

typedef struct {
    const uint8_t *p;
    size_t left;
    bool ok;
} snap_reader_t;

static void r_bytes(snap_reader_t *r, void *out, size_t n)
{
    if (!r->ok || r->left < n) {
        r->ok = false;
        memset(out, 0, n);
        return;
    }
    memcpy(out, r->p, n);
    r->p += n;
    r->left -= n;
}

static uint64_t r_u64(snap_reader_t *r)
{
    uint8_t le[8];
    r_bytes(r, le, 8);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)le[i] << (8 * i);
    }
    return v;
}

/* A count or index that must be at most max. */
static uint32_t r_u32_max(snap_reader_t *r, uint64_t max)
{
    uint64_t v = r_u64(r);
    r->ok = r->ok && v <= max;
    return r->ok ? (uint32_t)v : 0;
}

static double r_f64(snap_reader_t *r)
{
    uint64_t bits = r_u64(r);
    double v;
    memcpy(&v, &bits, sizeof v);
    r->ok = r->ok && v == v; /* never NaN */
    return v;
}

static void r_policy(snap_reader_t *r, policy_config_t *c)
{
    r->ok = r->ok && r_u64(r) == POLICY_FIELD_COUNT;
    for (int f = 0; r->ok && f < POLICY_FIELD_COUNT; f++) {
        *policy_field_ptr(c, (policy_field_t)f) = (int64_t)r_u64(r);
    }
    policy_field_t bad;
    r->ok = r->ok && policy_config_valid(c, &bad);
}

static void r_stats(snap_reader_t *r, guard_stats_t *st)
{
    r->ok = r->ok && r_u64(r) == POLICY_RULE_COUNT;
    for (int i = 0; r->ok && i < POLICY_RULE_COUNT; i++) {
        st->denials[i] = r_u64(r);
        st->challenges[i] = r_u64(r);
    }
    uint64_t *counters[] = {&st->proofs_accepted, &st->proofs_refused, &st->escalations_on,
                            &st->escalations_off, &st->wait_joined,    &st->wait_offered,
                            &st->wait_fulfilled,  &st->wait_expired,   &st->wait_cancelled,
                            &st->wait_refused,    &st->revoked_holds,  &st->buy_now};
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        *counters[i] = r_u64(r);
    }
    st->identities = r_u32_max(r, UINT32_MAX);
    st->customer_skus = r_u32_max(r, UINT32_MAX);
    st->skus_escalated = r_u32_max(r, UINT32_MAX);
    st->waiting = r_u32_max(r, UINT32_MAX);
}

static void r_scalars(snap_reader_t *r, guard_t *g)
{
    const guard_config_t *c = &g->config;
    r->ok = r->ok && r_u64(r) == SNAP_MAGIC;
    r_policy(r, &g->policy);
    uint32_t flags = r_u32_max(r, 3);
    g->policy_set = flags & 1;
    g->offers_starved = flags >> 1 & 1;
    r_bytes(r, g->secret, GUARD_SECRET_BYTES);
    g->has_secret = r_u32_max(r, 1);
    g->shop_started = r_f64(r);
    g->shop_committed = r_f64(r);
    g->shop_at_ms = (int64_t)r_u64(r);
    g->swept_at_ms = (int64_t)r_u64(r);
    g->id_hwm = r_u32_max(r, c->identities_max);
    g->id_free = (uint32_t)r_u64(r); /* NONE or an index, checked with the list */
    g->id_sweep = r_u32_max(r, c->identities_max);
    g->cs_hwm = r_u32_max(r, c->customer_skus_max);
    g->cs_free = (uint32_t)r_u64(r);
    g->cs_sweep = r_u32_max(r, c->customer_skus_max);
    r->ok = r->ok && r_u64(r) == engine_sku_count(&g->engine);
    g->sku_policy_count = r_u32_max(r, c->sku_policies_max);
    g->wait_hwm = r_u32_max(r, c->waitlist_max);
    g->wait_done_head = r_u32_max(r, g->wait_hwm);
    g->wait_done_tail = r_u32_max(r, g->wait_hwm);
    g->wait_seq = r_u64(r);
    g->proof_count = r_u32_max(r, c->proofs_max);
    g->event_seq = r_u64(r);
    r_stats(r, &g->stats);
    for (int i = 0; i < GUARD_EVENTS_MAX; i++) {
        guard_event_t *ev = &g->events[i];
        ev->seq = r_u64(r);
        ev->at_ms = (int64_t)r_u64(r);
        uint32_t skus = engine_sku_count(&g->engine);
        ev->sku = r_u32_max(r, skus > 0 ? skus - 1 : 0);
        ev->on = r_u32_max(r, 1);
    }
}

static void r_identity(snap_reader_t *r, const guard_t *g, guard_identity_t *id)
{
    uint64_t head = r_u64(r);
    id->live = (uint8_t)(head & 0xff);
    id->kind = (uint8_t)(head >> 8 & 0xff);
    id->len = (uint8_t)(head >> 16 & 0xff);
    r->ok = r->ok && head >> 24 == 0 && id->live <= 1 && id->kind < POLICY_ID_KINDS &&
            id->len <= HF_NAME_BYTES_MAX && (id->len >= 1 || !id->live);
    r_bytes(r, id->value, r->ok ? id->len : 0);
    id->next_free = (uint32_t)r_u64(r);
    id->holds_active = r_u32_max(r, g->engine.config.holds_max);
    id->customer_skus = r_u32_max(r, g->config.customer_skus_max);
    id->units_held = (int64_t)r_u64(r);
    id->budget_unit_ms = r_f64(r);
    id->budget_at_ms = (int64_t)r_u64(r);
    id->started = r_f64(r);
    id->committed = r_f64(r);
    id->reputation_at_ms = (int64_t)r_u64(r);
    id->holds_total = r_u64(r);
    id->commits_total = r_u64(r);
    id->hash = identity_hash((policy_id_kind_t)id->kind, id->value, id->len);
}

static void r_customer_sku(snap_reader_t *r, const guard_t *g, guard_customer_sku_t *e)
{
    e->live = (uint8_t)r_u32_max(r, 1);
    e->customer = r_u32_max(r, g->id_hwm);
    e->sku = r_u32_max(r, engine_sku_count(&g->engine));
    e->units_active = r_u32_max(r, UINT32_MAX);
    e->next_free = (uint32_t)r_u64(r);
    e->bought = (int64_t)r_u64(r);
    e->window_start_ms = (int64_t)r_u64(r);
    e->hash = customer_sku_hash(e->customer, e->sku);
}

static void r_sku(snap_reader_t *r, const guard_t *g, guard_sku_t *s)
{
    s->policy = r_u32_max(r, g->sku_policy_count);
    s->escalated = (uint8_t)r_u32_max(r, 1);
    s->marked = 0;
    s->escalations = r_u32_max(r, UINT32_MAX);
    s->escalated_at_ms = (int64_t)r_u64(r);
    s->started = r_f64(r);
    s->committed = r_f64(r);
    s->conversion_at_ms = (int64_t)r_u64(r);
    s->wait_head = r_u32_max(r, g->wait_hwm);
    s->wait_tail = r_u32_max(r, g->wait_hwm);
    s->wait_count = r_u32_max(r, g->wait_hwm);
    s->denials = r_u64(r);
    s->challenges = r_u64(r);
}

static void r_wait(snap_reader_t *r, const guard_t *g, guard_wait_t *e)
{
    e->id = r_u64(r);
    e->hold_id = r_u64(r);
    e->created_ms = (int64_t)r_u64(r);
    e->finished_ms = (int64_t)r_u64(r);
    e->sku = r_u32_max(r, engine_sku_count(&g->engine));
    e->qty = r_u32_max(r, HF_QTY_MAX);
    e->next = r_u32_max(r, g->wait_hwm);
    uint64_t head = r_u64(r);
    e->state = (uint8_t)(head & 0xff);
    e->customer_len = (uint8_t)(head >> 8 & 0xff);
    e->ip_len = (uint8_t)(head >> 16 & 0xff);
    e->fingerprint_len = (uint8_t)(head >> 24 & 0xff);
    r->ok = r->ok && head >> 32 == 0 && e->state <= GUARD_WAIT_CANCELLED &&
            e->customer_len <= HF_NAME_BYTES_MAX && e->ip_len <= HF_IP_TEXT_BYTES_MAX &&
            e->fingerprint_len <= HF_NAME_BYTES_MAX;
    r_bytes(r, e->customer, r->ok ? e->customer_len : 0);
    r_bytes(r, e->ip, r->ok ? e->ip_len : 0);
    r_bytes(r, e->fingerprint, r->ok ? e->fingerprint_len : 0);
}

static void r_tables(snap_reader_t *r, guard_t *g)
{
    for (uint32_t i = 0; r->ok && i < g->id_hwm; i++) {
        r_identity(r, g, &g->ids[i]);
    }
    for (uint32_t i = 0; r->ok && i < g->cs_hwm; i++) {
        r_customer_sku(r, g, &g->cs[i]);
    }
    for (uint32_t i = 0; r->ok && i < engine_sku_count(&g->engine); i++) {
        r_sku(r, g, &g->skus[i]);
    }
    for (uint32_t i = 0; r->ok && i < g->sku_policy_count; i++) {
        g->sku_policies[i].mask = r_u64(r);
        r_policy(r, &g->sku_policies[i].values);
        sku_policy_resolve(&g->policy, &g->sku_policies[i]);
    }
    for (uint32_t i = 0; r->ok && i < g->wait_hwm; i++) {
        r_wait(r, g, &g->waits[i]);
    }
    g->proof_head = 0;
    for (uint32_t i = 0; r->ok && i < g->proof_count; i++) {
        g->proofs[i].tag = r_u64(r);
        g->proofs[i].expires_ms = (int64_t)r_u64(r);
    }
    for (uint64_t head = r_u64(r); r->ok && head != UINT64_MAX; head = r_u64(r)) {
        uint64_t a = r_u64(r), b = r_u64(r);
        uint64_t slot = head & 0xffffffffu;
        r->ok = r->ok && slot < g->engine.hold_hwm && head >> 33 == 0;
        guard_hold_t *h = &g->holds[r->ok ? slot : 0];
        *h = (guard_hold_t){.ids = {(uint32_t)a, (uint32_t)(a >> 32), (uint32_t)b},
                            .wait = (uint32_t)(b >> 32), .charged = (uint8_t)(head >> 32)};
        r->ok = r->ok && h->ids[0] <= g->id_hwm && h->ids[1] <= g->id_hwm &&
                h->ids[2] <= g->id_hwm && h->wait <= g->wait_hwm;
    }
}

static void rebuild_indexes(guard_t *g)
{
    for (uint32_t i = 0; i < g->id_hwm; i++) {
        if (g->ids[i].live) {
            index_insert(g->id_index, g->id_index_mask, g->ids[i].hash, i);
        }
    }
    for (uint32_t i = 0; i < g->cs_hwm; i++) {
        if (g->cs[i].live) {
            index_insert(g->cs_index, g->cs_index_mask, g->cs[i].hash, i);
        }
    }
    for (uint32_t i = 0; i < g->proof_count; i++) {
        index_insert(g->proof_index, g->proof_index_mask, mix64(g->proofs[i].tag), i);
    }
    for (uint32_t i = 0; i < g->wait_hwm; i++) {
        if (g->waits[i].state == GUARD_WAIT_WAITING) {
            index_insert(g->wait_index, g->wait_index_mask, wait_hash_of(g, i), i);
        }
    }
}

/* The free lists and the waitlists' links name entries that exist. */
static bool free_lists_fit(const guard_t *g)
{
    uint32_t n = 0;
    for (uint32_t i = g->id_free; i != NONE; i = g->ids[i].next_free) {
        if (i >= g->id_hwm || g->ids[i].live || ++n > g->id_hwm) {
            return false;
        }
    }
    n = 0;
    for (uint32_t i = g->cs_free; i != NONE; i = g->cs[i].next_free) {
        if (i >= g->cs_hwm || g->cs[i].live || ++n > g->cs_hwm) {
            return false;
        }
    }
    /* The finished waitlist entries (reused oldest first) are finished. */
    n = 0;
    uint32_t last = 0;
    for (uint32_t at = g->wait_done_head; at != 0; at = g->waits[at - 1].next) {
        uint8_t st = g->waits[at - 1].state;
        if (at > g->wait_hwm || st < GUARD_WAIT_FULFILLED || ++n > g->wait_hwm) {
            return false;
        }
        last = at;
    }
    return last == g->wait_done_tail;
}

bool guard_snapshot_read(guard_t *g, const uint8_t *data, size_t size, char *err,
                         size_t err_size)
{
    snap_reader_t r = {data, size, true};
    r_scalars(&r, g);
    r_tables(&r, g);
    if (!r.ok || r.left != 0 || !free_lists_fit(g)) {
        snprintf(err, err_size, "the guard state in the snapshot is damaged or truncated");
        return false;
    }
    rebuild_indexes(g);
    if (!guard_check(g)) {
        snprintf(err, err_size, "the guard state in the snapshot breaks an invariant");
        return false;
    }
    return true;
}
