/*
 * guard.c - a guard's creation: its configuration, the layout of its
 * tables in one reservation, and the names of its results (guard.h; the
 * tables are described in state.h).
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "index.h"
#include "state.h"

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

guard_config_t guard_config_default(void)
{
    return (guard_config_t){
        .engine = engine_config_default(),
        .identities_max = HF_IDENTITIES_MAX_DEFAULT,
        .customer_skus_max = HF_CUSTOMER_SKUS_MAX_DEFAULT,
        .waitlist_max = HF_WAITLIST_MAX_DEFAULT,
        .sku_policies_max = HF_SKU_POLICIES_MAX_DEFAULT,
        .proofs_max = HF_PROOFS_MAX_DEFAULT,
        .audit_max = HF_AUDIT_MAX_DEFAULT,
    };
}

/* ------------------------------------------------------------- layout */

static size_t align_up(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

typedef struct {
    size_t ids, id_index, cs, cs_index, holds, skus, sku_policies, waits, proofs, proof_index,
        scratch, wait_index, wait_key_index, pay, want, candidates, audit, total;
} layout_t;

static layout_t layout_for(const guard_config_t *c)
{
    layout_t l;
    size_t at = 0;
#define PLACE(field, bytes)                                                                        \
    l.field = at;                                                                                  \
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
    PLACE(pay, (size_t)c->engine.skus_max * sizeof(guard_pay_t));
    PLACE(want, (size_t)c->engine.skus_max * sizeof(guard_want_t));
    PLACE(candidates, GUARD_RECLAIM_CANDIDATES_MAX * sizeof(guard_candidate_t));
    PLACE(wait_index, (size_t)index_capacity(c->waitlist_max) * sizeof(uint32_t));
    PLACE(wait_key_index, (size_t)index_capacity(c->waitlist_max) * sizeof(uint32_t));
    PLACE(audit, (size_t)c->audit_max * sizeof(guard_audit_entry_t));
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
           c->proofs_max >= 1 && c->proofs_max <= HF_PROOFS_MAX_LIMIT &&
           c->audit_max <= HF_AUDIT_MAX_LIMIT;
}

guard_t *guard_create(const guard_config_t *c, int64_t now_ms)
{
    guard_t *g = calloc(1, sizeof *g);
    if (g != NULL && c->notices) {
        g->notices = calloc(GUARD_NOTICE_LOG_MAX, sizeof *g->notices);
    }
    if (g == NULL || (c->notices && g->notices == NULL) || !config_valid(c) ||
        engine_init(&g->engine, &c->engine, now_ms) != 0) {
        free(g != NULL ? g->notices : NULL);
        free(g);
        return NULL;
    }
    layout_t l = layout_for(c);
    void *region = mmap(NULL, l.total, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (region == MAP_FAILED) {
        engine_deinit(&g->engine);
        free(g->notices);
        free(g);
        return NULL;
    }
    char *base = region;
    g->config = *c;
    g->policy = policy_config_default();
    g->region = region;
    g->region_size = l.total;
    g->ids = (guard_identity_t *)(base + l.ids);
    g->id_index = (uint32_t *)(base + l.id_index);
    g->id_index_mask = index_capacity(c->identities_max) - 1;
    g->id_free = GUARD_NONE;
    g->cs = (guard_customer_sku_t *)(base + l.cs);
    g->cs_index = (uint32_t *)(base + l.cs_index);
    g->cs_index_mask = index_capacity(c->customer_skus_max) - 1;
    g->cs_free = GUARD_NONE;
    g->holds = (guard_hold_t *)(base + l.holds);
    g->skus = (guard_sku_t *)(base + l.skus);
    g->sku_policies = (guard_sku_policy_t *)(base + l.sku_policies);
    g->waits = (guard_wait_t *)(base + l.waits);
    g->proofs = (guard_proof_t *)(base + l.proofs);
    g->proof_index = (uint32_t *)(base + l.proof_index);
    g->proof_index_mask = index_capacity(c->proofs_max) - 1;
    g->scratch = (uint32_t *)(base + l.scratch);
    g->pay = (guard_pay_t *)(base + l.pay);
    g->want = (guard_want_t *)(base + l.want);
    g->candidates = (guard_candidate_t *)(base + l.candidates);
    g->wait_index = (uint32_t *)(base + l.wait_index);
    g->wait_index_mask = index_capacity(c->waitlist_max) - 1;
    g->wait_key_index = (uint32_t *)(base + l.wait_key_index);
    g->wait_key_index_mask = index_capacity(c->waitlist_max) - 1;
    g->audit = (guard_audit_entry_t *)(base + l.audit);
    g->shop_at_ms = now_ms;
    return g;
}

void guard_destroy(guard_t *g)
{
    if (g == NULL) {
        return;
    }
    engine_deinit(&g->engine);
    munmap(g->region, g->region_size);
    free(g->notices);
    free(g);
}
