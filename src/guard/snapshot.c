/*
 * snapshot.c - the guard's part of a snapshot (guard.h): its tables field
 * by field, little-endian, so that a snapshot outlives the layout of the
 * structs that wrote it. Hashes and indexes are not written: they are
 * rebuilt from the entries. Reading checks every count and index against
 * the configured capacities, then guard_check() checks the whole, so a
 * damaged record is refused, never trusted.
 */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "book.h"
#include "identity.h"
#include "index.h"
#include "proof.h"
#include "sku.h"
#include "waitlist.h"

/* GRD3 adds, after GRD2's hold records, the newcomer pool, reclaim lists
 * and learned pay times; a GRD2 snapshot still reads (none of those yet:
 * its holds are never reclaimed). */
#define SNAP_MAGIC_V2 0x32445247u /* "GRD2" */
#define SNAP_MAGIC 0x33445247u    /* "GRD3" */
/* The audit trail follows GRD3's part when it has entries; a snapshot
 * without it (or from before it) has an empty trail. */
#define SNAP_AUDIT_MAGIC 0x31445541u /* "AUD1" */

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
    const uint64_t counters[] = {
        st->proofs_accepted, st->proofs_refused, st->escalations_on, st->escalations_off,
        st->wait_joined,     st->wait_offered,   st->wait_fulfilled, st->wait_expired,
        st->wait_cancelled,  st->wait_refused,   st->revoked_holds,  st->buy_now,
        st->identities,      st->customer_skus,  st->skus_escalated, st->waiting};
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
    const uint64_t v[] = {g->id_hwm,
                          g->id_free,
                          g->id_sweep,
                          g->cs_hwm,
                          g->cs_free,
                          g->cs_sweep,
                          engine_sku_count(&g->engine),
                          g->sku_policy_count,
                          g->wait_hwm,
                          g->wait_done_head,
                          g->wait_done_tail,
                          g->wait_seq,
                          g->proof_count,
                          g->event_seq};
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
    /* The key's length went into bits that were 0 before it existed: a
     * snapshot without keys reads as it always did, and one with a key is
     * refused by a build that does not know keys, never misread. */
    w_u64(w, e->state | (uint64_t)e->customer_len << 8 | (uint64_t)e->ip_len << 16 |
                 (uint64_t)e->fingerprint_len << 24 | (uint64_t)e->key_len << 32);
    w_bytes(w, e->customer, e->customer_len);
    w_bytes(w, e->ip, e->ip_len);
    w_bytes(w, e->fingerprint, e->fingerprint_len);
    w_bytes(w, e->key, e->key_len);
}

/* What GRD3 added, after the hold records. */
static void w_v3(snap_writer_t *w, const guard_t *g)
{
    w_u64(w, g->stats.proofs_stale);
    w_u64(w, g->stats.reclaimed_holds);
    w_u64(w, g->stats.reclaimed_units);
    w_u64(w, g->multi_head | (uint64_t)g->multi_tail << 32);
    for (uint32_t i = 0; i < engine_sku_count(&g->engine); i++) {
        const guard_sku_t *s = &g->skus[i];
        const guard_pay_t *p = &g->pay[i];
        w_u64(w, (uint64_t)s->newcomer_held);
        w_u64(w, s->holds_head | (uint64_t)s->holds_tail << 32);
        w_u64(w, s->reclaimed);
        w_u64(w, (uint64_t)p->at_ms);
        w_u64(w, p->seen);
        w_f64(w, p->total);
        for (int b = 0; b < GUARD_PAY_BUCKETS; b++) {
            w_f64(w, p->count[b]);
        }
    }
}

/* The audit trail, oldest entry first. */
static void w_audit(snap_writer_t *w, const guard_t *g)
{
    if (g->audit_seq == 0) {
        return; /* nothing: the snapshot stays readable by a build before the trail */
    }
    w_u64(w, SNAP_AUDIT_MAGIC);
    w_u64(w, g->audit_seq);
    w_u64(w, g->audit_count);
    for (uint32_t k = 0; k < g->audit_count; k++) {
        const guard_audit_entry_t *e = &g->audit[(g->audit_head + k) % g->config.audit_max];
        size_t key = strlen(e->key_id), route = strlen(e->route), target = strlen(e->target),
               change = strlen(e->change);
        w_u64(w, e->seq);
        w_u64(w, (uint64_t)e->at_ms);
        w_u64(w, e->hold_id);
        w_u64(w, e->action | (uint64_t)key << 8 | (uint64_t)route << 16 |
                     (uint64_t)target << 24 | (uint64_t)change << 32);
        w_bytes(w, e->key_id, key);
        w_bytes(w, e->route, route);
        w_bytes(w, e->target, target);
        w_bytes(w, e->change, change);
    }
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
    for (uint32_t slot = 0; slot < engine_hold_slots_used(&g->engine); slot++) {
        const guard_hold_t *h = &g->holds[slot];
        if (engine_slot_view(&g->engine, slot).state == ENGINE_HOLD_ACTIVE) {
            w_u64(&w, slot | (uint64_t)h->charged << 32 | (uint64_t)h->newcomer << 33);
            w_u64(&w, h->ids[0] | (uint64_t)h->ids[1] << 32);
            w_u64(&w, h->ids[2] | (uint64_t)h->wait << 32);
            w_u64(&w, h->prev | (uint64_t)h->next << 32);
            w_u64(&w, (uint64_t)h->safe_until_ms);
        }
    }
    w_u64(&w, UINT64_MAX); /* the end of the hold records */
    w_v3(&w, g);
    w_audit(&w, g);
}

typedef struct {
    const uint8_t *p;
    size_t left;
    bool ok;
    bool v3; /* GRD3, not GRD2 */
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

/* A policy of an older build has fewer settings: the rest are defaults. */
static void r_policy(snap_reader_t *r, policy_config_t *c)
{
    uint64_t count = r_u64(r);
    r->ok = r->ok && count >= POLICY_FIELD_COUNT_MIN && count <= POLICY_FIELD_COUNT;
    *c = policy_config_default();
    for (uint64_t f = 0; r->ok && f < count; f++) {
        *policy_field_ptr(c, (policy_field_t)f) = (int64_t)r_u64(r);
    }
    policy_field_t bad;
    r->ok = r->ok && policy_config_valid(c, &bad);
}

static void r_stats(snap_reader_t *r, guard_stats_t *st)
{
    uint64_t rules = r_u64(r); /* an older build knew fewer rules */
    r->ok = r->ok && rules >= 1 && rules <= POLICY_RULE_COUNT;
    for (uint64_t i = 0; r->ok && i < rules; i++) {
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
    uint64_t magic = r_u64(r);
    r->v3 = magic == SNAP_MAGIC;
    r->ok = r->ok && (magic == SNAP_MAGIC || magic == SNAP_MAGIC_V2);
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
    g->id_free = (uint32_t)r_u64(r); /* GUARD_NONE or an index, checked with the list */
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
    id->holds_active = r_u32_max(r, engine_config(&g->engine).holds_max);
    id->customer_skus = r_u32_max(r, g->config.customer_skus_max);
    id->units_held = (int64_t)r_u64(r);
    id->budget_unit_ms = r_f64(r);
    id->budget_at_ms = (int64_t)r_u64(r);
    id->started = r_f64(r);
    id->committed = r_f64(r);
    id->reputation_at_ms = (int64_t)r_u64(r);
    id->holds_total = r_u64(r);
    id->commits_total = r_u64(r);
    id->hash = index_identity_hash((policy_id_kind_t)id->kind, id->value, id->len);
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
    e->hash = index_customer_sku_hash(e->customer, e->sku);
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
    e->key_len = (uint8_t)(head >> 32 & 0xff);
    r->ok = r->ok && head >> 40 == 0 && e->state <= GUARD_WAIT_CANCELLED &&
            e->customer_len <= HF_NAME_BYTES_MAX && e->ip_len <= HF_IP_TEXT_BYTES_MAX &&
            e->fingerprint_len <= HF_NAME_BYTES_MAX && e->key_len <= HF_IDEM_KEY_BYTES_MAX;
    r_bytes(r, e->customer, r->ok ? e->customer_len : 0);
    r_bytes(r, e->ip, r->ok ? e->ip_len : 0);
    r_bytes(r, e->fingerprint, r->ok ? e->fingerprint_len : 0);
    r_bytes(r, e->key, r->ok ? e->key_len : 0);
    e->key_len = r->ok ? e->key_len : 0;
}

/* One hold's side record (GRD2: without its pool flag, list and promise). */
static void r_hold(snap_reader_t *r, guard_t *g, uint64_t head)
{
    uint64_t a = r_u64(r), b = r_u64(r);
    uint64_t c = r->v3 ? r_u64(r) : 0, safe_until_ms = r->v3 ? r_u64(r) : 0;
    uint64_t slot = head & 0xffffffffu;
    r->ok = r->ok && slot < engine_hold_slots_used(&g->engine) && head >> (r->v3 ? 34 : 33) == 0;
    guard_hold_t *h = &g->holds[r->ok ? slot : 0];
    *h = (guard_hold_t){.ids = {(uint32_t)a, (uint32_t)(a >> 32), (uint32_t)b},
                        .wait = (uint32_t)(b >> 32),
                        .prev = (uint32_t)c,
                        .next = (uint32_t)(c >> 32),
                        .safe_until_ms = (int64_t)safe_until_ms,
                        .charged = (uint8_t)(head >> 32 & 1),
                        .newcomer = (uint8_t)(head >> 33 & 1)};
    r->ok = r->ok && h->ids[0] <= g->id_hwm && h->ids[1] <= g->id_hwm && h->ids[2] <= g->id_hwm &&
            h->wait <= g->wait_hwm && h->prev <= engine_hold_slots_used(&g->engine) &&
            h->next <= engine_hold_slots_used(&g->engine);
}

/* A list link: a hold slot + 1, or 0. */
static uint32_t r_link(snap_reader_t *r, const guard_t *g, uint64_t v)
{
    r->ok = r->ok && (uint32_t)v <= engine_hold_slots_used(&g->engine);
    return (uint32_t)v;
}

/* What GRD3 added (w_v3). */
static void r_v3(snap_reader_t *r, guard_t *g)
{
    g->stats.proofs_stale = r_u64(r);
    g->stats.reclaimed_holds = r_u64(r);
    g->stats.reclaimed_units = r_u64(r);
    uint64_t multi = r_u64(r);
    g->multi_head = r_link(r, g, multi);
    g->multi_tail = r_link(r, g, multi >> 32);
    for (uint32_t i = 0; r->ok && i < engine_sku_count(&g->engine); i++) {
        guard_sku_t *s = &g->skus[i];
        guard_pay_t *p = &g->pay[i];
        s->newcomer_held = (int64_t)r_u64(r);
        uint64_t list = r_u64(r);
        s->holds_head = r_link(r, g, list);
        s->holds_tail = r_link(r, g, list >> 32);
        s->reclaimed = r_u32_max(r, UINT32_MAX);
        p->at_ms = (int64_t)r_u64(r);
        p->seen = r_u64(r);
        p->total = r_f64(r);
        for (int b = 0; b < GUARD_PAY_BUCKETS; b++) {
            p->count[b] = r_f64(r);
            r->ok = r->ok && p->count[b] >= 0.0;
        }
    }
}

/* One text of the audit entry, len bytes (checked against its field). */
static void r_text(snap_reader_t *r, char *out, size_t size, uint64_t len)
{
    r->ok = r->ok && len < size;
    r_bytes(r, out, r->ok ? (size_t)len : 0);
    out[r->ok ? len : 0] = '\0';
}

/* The audit trail (w_audit), if there is one. A trail longer than this
 * server keeps (a smaller audit_max) keeps its newest entries. */
static void r_audit(snap_reader_t *r, guard_t *g)
{
    if (r->left == 0) {
        return;
    }
    r->ok = r->ok && r_u64(r) == SNAP_AUDIT_MAGIC;
    uint64_t seq = r_u64(r), count = r_u64(r);
    r->ok = r->ok && count <= seq && count <= HF_AUDIT_MAX_LIMIT;
    for (uint64_t k = 0; r->ok && k < count; k++) {
        guard_audit_entry_t e;
        memset(&e, 0, sizeof e);
        e.seq = r_u64(r);
        e.at_ms = (int64_t)r_u64(r);
        e.hold_id = r_u64(r);
        uint64_t head = r_u64(r);
        e.action = (guard_audit_action_t)(head & 0xff);
        r->ok = r->ok && e.seq == seq - count + 1 + k && e.action < GUARD_AUDIT_ACTION_COUNT &&
                head >> 40 == 0;
        r_text(r, e.key_id, sizeof e.key_id, head >> 8 & 0xff);
        r_text(r, e.route, sizeof e.route, head >> 16 & 0xff);
        r_text(r, e.target, sizeof e.target, head >> 24 & 0xff);
        r_text(r, e.change, sizeof e.change, head >> 32 & 0xff);
        if (r->ok) {
            audit_push(g, &e);
        }
    }
    g->audit_seq = r->ok ? seq : 0;
}

/* What the engine's records or the guard's own entries say already is not
 * written: each active hold's creation and units, each line's waiting
 * units. */
static void rederive(guard_t *g)
{
    for (uint32_t slot = 0; slot < engine_hold_slots_used(&g->engine); slot++) {
        if (engine_slot_view(&g->engine, slot).state != ENGINE_HOLD_ACTIVE) {
            continue;
        }
        engine_hold_view_t h;
        engine_result_t r = engine_hold_view(&g->engine, engine_slot_view(&g->engine, slot).id, &h);
        assert(r == ENGINE_OK);
        g->holds[slot].created_ms = h.created_ms;
        g->holds[slot].units = (uint32_t)book_units(&h);
    }
    for (uint32_t i = 0; i < g->wait_hwm; i++) {
        const guard_wait_t *w = &g->waits[i];
        if (w->state == GUARD_WAIT_WAITING && w->sku < engine_sku_count(&g->engine)) {
            g->skus[w->sku].wait_units += w->qty;
        }
    }
}

/* A GRD2 snapshot has no reclaim lists: its active holds are listed in
 * slot order (the order only matters for ties, which reclaim breaks by
 * hold id). */
static void relist(guard_t *g)
{
    for (uint32_t slot = 0; slot < engine_hold_slots_used(&g->engine); slot++) {
        engine_slot_view_t s = engine_slot_view(&g->engine, slot);
        if (s.state != ENGINE_HOLD_ACTIVE) {
            continue;
        }
        engine_hold_view_t h;
        engine_result_t r = engine_hold_view(&g->engine, s.id, &h);
        assert(r == ENGINE_OK);
        book_list_link(g, &h, slot);
    }
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
        r_hold(r, g, head);
    }
    if (r->v3) {
        r_v3(r, g);
        r_audit(r, g);
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
        index_insert(g->proof_index, g->proof_index_mask, index_mix64(g->proofs[i].tag), i);
    }
    for (uint32_t i = 0; i < g->wait_hwm; i++) {
        if (g->waits[i].state == GUARD_WAIT_WAITING) {
            index_insert(g->wait_index, g->wait_index_mask, wait_hash_of(g, i), i);
        }
        if (g->waits[i].key_len > 0) {
            index_insert(g->wait_key_index, g->wait_key_index_mask, wait_key_hash_of(g, i), i);
        }
    }
}

/* The free lists and the waitlists' links name entries that exist. */
static bool free_lists_fit(const guard_t *g)
{
    uint32_t n = 0;
    for (uint32_t i = g->id_free; i != GUARD_NONE; i = g->ids[i].next_free) {
        if (i >= g->id_hwm || g->ids[i].live || ++n > g->id_hwm) {
            return false;
        }
    }
    n = 0;
    for (uint32_t i = g->cs_free; i != GUARD_NONE; i = g->cs[i].next_free) {
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

bool guard_snapshot_read(guard_t *g, const uint8_t *data, size_t size, char *err, size_t err_size)
{
    snap_reader_t r = {data, size, true, false};
    r_scalars(&r, g);
    r_tables(&r, g);
    if (r.ok) {
        rederive(g);
    }
    if (r.ok && !r.v3) {
        relist(g);
    }
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
