/*
 * record.c - encoding and decoding of journal and snapshot records.
 */
#define _GNU_SOURCE /* mremap */
#include "record.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "hf_mix.h"

/* The mapped buffer's growth: async-signal-safe system calls only. */
static uint8_t *grow_mapped(const store_buf_t *b, size_t capacity)
{
    void *p = b->data == NULL
                  ? mmap(NULL, capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                  : mremap(b->data, b->capacity, capacity, MREMAP_MAYMOVE);
    return p == MAP_FAILED ? NULL : p;
}

void record_buf_reserve(store_buf_t *b, size_t more)
{
    if (b->size + more <= b->capacity) {
        return;
    }
    size_t capacity = b->capacity < 4096 ? 4096 : b->capacity;
    while (capacity < b->size + more) {
        capacity *= 2;
    }
    uint8_t *data = b->mapped ? grow_mapped(b, capacity) : realloc(b->data, capacity);
    if (data == NULL) {
        fprintf(stderr, "level=fatal msg=\"out of memory in the journal buffer\"\n");
        abort();
    }
    b->data = data;
    b->capacity = capacity;
}

void record_buf_free(store_buf_t *b)
{
    if (b->mapped && b->data != NULL) {
        munmap(b->data, b->capacity);
    } else if (!b->mapped) {
        free(b->data);
    }
    memset(b, 0, sizeof *b);
}


uint64_t record_chain(uint64_t prev_chain, uint64_t first_seq, uint64_t count,
                      const uint8_t *body, size_t size)
{
    uint64_t h = hf_mix64(prev_chain ^ 0x9e3779b97f4a7c15ull);
    h = hf_mix64(h ^ first_seq);
    h = hf_mix64(h ^ count);
    h = hf_mix64(h ^ (uint64_t)size);
    size_t i = 0;
    for (; i + 8 <= size; i += 8) {
        h = hf_mix64(h ^ record_le64_get(body + i)); /* the same on every machine */
    }
    uint64_t tail = 0;
    for (size_t k = 0; i + k < size; k++) {
        tail |= (uint64_t)body[i + k] << (8 * k);
    }
    return hf_mix64(h ^ tail);
}

static void put_bytes(store_buf_t *b, const void *p, size_t n)
{
    if (n == 0) {
        return; /* p may be NULL then (an absent order_ref) */
    }
    record_buf_reserve(b, n);
    memcpy(b->data + b->size, p, n);
    b->size += n;
}

static void put_u8(store_buf_t *b, uint8_t v)
{
    put_bytes(b, &v, 1);
}

void record_le64_put(uint8_t out[8], uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        out[i] = (uint8_t)(v >> (8 * i));
    }
}

uint64_t record_le64_get(const uint8_t in[8])
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)in[i] << (8 * i);
    }
    return v;
}

static void put_u64(store_buf_t *b, uint64_t v)
{
    uint8_t le[8];
    record_le64_put(le, v);
    put_bytes(b, le, 8);
}

static void put_text(store_buf_t *b, const char *text, uint8_t len)
{
    put_u8(b, len);
    put_bytes(b, text, len);
}

static uint8_t get_u8(record_reader_t *r)
{
    if (!r->ok || r->left < 1) {
        r->ok = false;
        return 0;
    }
    r->left--;
    return *r->p++;
}

static uint64_t get_u64(record_reader_t *r)
{
    if (!r->ok || r->left < 8) {
        r->ok = false;
        return 0;
    }
    uint64_t v = record_le64_get(r->p);
    r->p += 8;
    r->left -= 8;
    return v;
}

/* Reads a length-prefixed text of 1..max bytes into out. */
static uint8_t get_text(record_reader_t *r, char *out, size_t max)
{
    uint8_t len = get_u8(r);
    if (!r->ok || len < 1 || len > max || r->left < len) {
        r->ok = false;
        return 0;
    }
    memcpy(out, r->p, len);
    r->p += len;
    r->left -= len;
    return len;
}

/* Like get_text, but 0 bytes are allowed (an absent idempotency key). */
static uint8_t get_text0(record_reader_t *r, char *out, size_t max)
{
    if (r->ok && r->left >= 1 && r->p[0] == 0) {
        r->p++;
        r->left--;
        return 0;
    }
    return get_text(r, out, max);
}

static bool in_range(int64_t v, int64_t lo, int64_t hi)
{
    return v >= lo && v <= hi;
}

/* -------------------------------------------------------------------- ops */

static void encode_create(store_buf_t *b, const engine_hold_create_t *c)
{
    assert(c->hold_id != 0 && c->line_count >= 1 && c->line_count <= HF_LINES_PER_HOLD_MAX);
    put_u64(b, c->hold_id);
    put_u64(b, (uint64_t)c->ttl_ms);
    put_text(b, c->customer, c->customer_len);
    put_text(b, c->idem_key, c->idem_key_len);
    put_text(b, c->ip, c->ip_len);
    put_text(b, c->fingerprint, c->fingerprint_len);
    put_u8(b, (uint8_t)c->line_count);
    for (uint16_t i = 0; i < c->line_count; i++) {
        put_text(b, c->lines[i].sku, c->lines[i].sku_len);
        put_u64(b, c->lines[i].qty);
    }
}

/* Journal record kinds. The engine's own kinds (1-5) keep their numbers;
 * HOLD_CREATE and HOLD_RELEASE are written in their fuller forms and read
 * in both, so a journal from before the defenses still replays. */
enum {
    KIND_SKU_PUT = ENGINE_OP_SKU_PUT,
    KIND_HOLD_CREATE_V1 = ENGINE_OP_HOLD_CREATE,
    KIND_HOLD_COMMIT = ENGINE_OP_HOLD_COMMIT,
    KIND_HOLD_RELEASE_V1 = ENGINE_OP_HOLD_RELEASE,
    KIND_HOLD_EXTEND = ENGINE_OP_HOLD_EXTEND,
    KIND_HOLD_CREATE_V2 = 8, /* + request hash, buy now, order_ref, proof */
    KIND_HOLD_RELEASE = 9,   /* + reason */
    KIND_HOLD_CREATE = 10,   /* + flags (bit 0: a newcomer's hold) */
    KIND_POLICY_PUT = 16,
    KIND_SKU_POLICY = 17,
    KIND_REVOKE = 18,
    KIND_WAIT_JOIN = 19,
    KIND_WAIT_CANCEL = 20,
    KIND_SECRET = 21,
    KIND_SWEEP = 22,
    KIND_RECLAIM = 23,
    KIND_ID_SKIP = 24,
    KIND_WAIT_JOIN_KEYED = 25, /* WAIT_JOIN + its Idempotency-Key */
    /* Not an op: who asked for the op that follows it in the same record
     * (guard_audit_t), so the change and its audit entry are one record. */
    KIND_AUDITED = 32,
};

static void encode_policy(store_buf_t *b, const policy_config_t *c)
{
    put_u8(b, POLICY_FIELD_COUNT);
    for (int f = 0; f < POLICY_FIELD_COUNT; f++) {
        put_u64(b, (uint64_t)policy_field_get(c, (policy_field_t)f));
    }
}

static void encode_engine_op(store_buf_t *b, const guard_op_t *g)
{
    const engine_op_t *op = &g->engine;
    switch (op->kind) {
    case ENGINE_OP_SKU_PUT:
        assert(in_range(op->u.sku_put.stock, 0, HF_STOCK_MAX));
        put_text(b, op->u.sku_put.sku, op->u.sku_put.sku_len);
        put_u64(b, (uint64_t)op->u.sku_put.stock);
        break;
    case ENGINE_OP_HOLD_CREATE:
        encode_create(b, &op->u.hold_create);
        put_u64(b, op->u.hold_create.request_hash);
        put_u8(b, g->buy_now);
        put_text(b, g->order_ref, g->order_ref_len);
        put_u64(b, g->proof_tag);
        put_u64(b, (uint64_t)g->proof_expires_ms);
        put_u8(b, g->newcomer);
        break;
    case ENGINE_OP_HOLD_EXTEND:
        put_u64(b, op->u.hold.hold_id);
        put_u64(b, (uint64_t)op->u.hold.ttl_ms);
        break;
    case ENGINE_OP_HOLD_COMMIT:
        put_u64(b, op->u.hold.hold_id);
        put_text(b, op->u.hold.order_ref, op->u.hold.order_ref_len);
        break;
    case ENGINE_OP_HOLD_RELEASE:
        put_u64(b, op->u.hold.hold_id);
        put_text(b, g->reason, g->reason_len);
        break;
    default:
        assert(0 && "unknown op kind");
    }
}

static uint8_t kind_of(const guard_op_t *op)
{
    static const uint8_t engine_kinds[] = {0, KIND_SKU_PUT, KIND_HOLD_CREATE, KIND_HOLD_COMMIT,
                                           KIND_HOLD_RELEASE, KIND_HOLD_EXTEND};
    static const uint8_t guard_kinds[] = {0,           0,           KIND_POLICY_PUT,
                                          KIND_SKU_POLICY, KIND_REVOKE, KIND_WAIT_JOIN,
                                          KIND_WAIT_CANCEL, KIND_SECRET, KIND_SWEEP,
                                          KIND_RECLAIM, KIND_ID_SKIP};
    if (op->kind == GUARD_OP_ENGINE) {
        assert(op->engine.kind >= ENGINE_OP_SKU_PUT && op->engine.kind <= ENGINE_OP_HOLD_EXTEND);
        return engine_kinds[op->engine.kind];
    }
    assert(op->kind >= GUARD_OP_POLICY_PUT && op->kind <= GUARD_OP_ID_SKIP);
    if (op->kind == GUARD_OP_WAIT_JOIN && op->u.wait_join.idem_key_len > 0) {
        return KIND_WAIT_JOIN_KEYED; /* only these: a journal without keys reads everywhere */
    }
    return guard_kinds[op->kind];
}

void record_encode_op(store_buf_t *b, const guard_op_t *op)
{
    assert(op->engine.now_ms >= 0);
    if (op->audit.present) {
        assert(op->audit.key_id_len <= GUARD_AUDIT_KEY_ID_BYTES && op->audit.route_len >= 1);
        put_u8(b, KIND_AUDITED);
        put_text(b, op->audit.key_id, op->audit.key_id_len);
        put_text(b, op->audit.route, op->audit.route_len);
    }
    put_u8(b, kind_of(op));
    put_u64(b, (uint64_t)op->engine.now_ms);
    switch (op->kind) {
    case GUARD_OP_ENGINE:
        encode_engine_op(b, op);
        break;
    case GUARD_OP_POLICY_PUT:
        encode_policy(b, &op->u.policy);
        break;
    case GUARD_OP_SKU_POLICY:
        put_text(b, op->u.sku_policy.sku, op->u.sku_policy.sku_len);
        put_u64(b, op->u.sku_policy.mask);
        encode_policy(b, &op->u.sku_policy.values);
        break;
    case GUARD_OP_REVOKE:
        put_u8(b, (uint8_t)op->u.revoke.kind);
        put_text(b, op->u.revoke.value, op->u.revoke.value_len);
        put_text(b, op->reason, op->reason_len);
        break;
    case GUARD_OP_WAIT_JOIN:
        assert(op->u.wait_join.id != 0);
        put_u64(b, op->u.wait_join.id);
        put_text(b, op->u.wait_join.sku, op->u.wait_join.sku_len);
        put_text(b, op->u.wait_join.customer, op->u.wait_join.customer_len);
        put_text(b, op->u.wait_join.ip, op->u.wait_join.ip_len);
        put_text(b, op->u.wait_join.fingerprint, op->u.wait_join.fingerprint_len);
        put_u64(b, op->u.wait_join.qty);
        if (op->u.wait_join.idem_key_len > 0) { /* KIND_WAIT_JOIN_KEYED */
            put_text(b, op->u.wait_join.idem_key, op->u.wait_join.idem_key_len);
        }
        break;
    case GUARD_OP_WAIT_CANCEL:
        put_u64(b, op->u.wait_id);
        break;
    case GUARD_OP_SECRET:
        put_bytes(b, op->u.secret, GUARD_SECRET_BYTES);
        break;
    case GUARD_OP_SWEEP:
        break; /* its time says it all */
    case GUARD_OP_ID_SKIP:
        assert(op->u.id_skip.hold_seq <= ENGINE_HOLD_SEQ_MAX);
        assert(op->u.id_skip.wait_seq <= GUARD_WAIT_SEQ_MAX);
        put_u64(b, op->u.id_skip.hold_seq);
        put_u64(b, op->u.id_skip.wait_seq);
        break;
    case GUARD_OP_RECLAIM:
        assert(op->u.reclaim.count >= 1 && op->u.reclaim.count <= GUARD_RECLAIM_MAX);
        put_u8(b, (uint8_t)op->u.reclaim.count);
        for (uint16_t i = 0; i < op->u.reclaim.count; i++) {
            put_u64(b, op->u.reclaim.holds[i]);
        }
        break;
    }
}

static bool decode_create(record_reader_t *r, engine_hold_create_t *c)
{
    c->looked_up = false; /* a replayed create finds its skus and key itself */
    c->hold_id = get_u64(r);
    c->ttl_ms = (int64_t)get_u64(r);
    c->customer_len = get_text(r, c->customer, HF_NAME_BYTES_MAX);
    c->idem_key_len = get_text0(r, c->idem_key, HF_IDEM_KEY_BYTES_MAX);
    c->ip_len = get_text0(r, c->ip, HF_IP_TEXT_BYTES_MAX);
    c->fingerprint_len = get_text0(r, c->fingerprint, HF_NAME_BYTES_MAX);
    c->line_count = get_u8(r);
    if (!r->ok || c->hold_id == 0 || !in_range(c->ttl_ms, 1, HF_TTL_MS_MAX) ||
        !in_range(c->line_count, 1, HF_LINES_PER_HOLD_MAX)) {
        return false;
    }
    for (uint16_t i = 0; i < c->line_count; i++) {
        c->lines[i].sku_len = get_text(r, c->lines[i].sku, HF_SKU_BYTES_MAX);
        uint64_t qty = get_u64(r);
        if (!r->ok || qty < 1 || qty > HF_QTY_MAX) {
            return false;
        }
        c->lines[i].qty = (uint32_t)qty;
    }
    return true;
}

/* A policy written by an older build has fewer settings (they are only
 * ever added at the end): the rest take their defaults. */
static bool decode_policy(record_reader_t *r, policy_config_t *c)
{
    uint8_t count = get_u8(r);
    if (count < POLICY_FIELD_COUNT_MIN || count > POLICY_FIELD_COUNT) {
        r->ok = false; /* not a policy this build can read */
        return false;
    }
    *c = policy_config_default();
    for (int f = 0; f < count; f++) {
        *policy_field_ptr(c, (policy_field_t)f) = (int64_t)get_u64(r);
    }
    return r->ok;
}

static bool decode_create_extras(record_reader_t *r, uint8_t kind, guard_op_t *op)
{
    op->engine.u.hold_create.request_hash = get_u64(r);
    op->buy_now = get_u8(r) != 0;
    op->order_ref_len = get_text0(r, op->order_ref, HF_NAME_BYTES_MAX);
    op->proof_tag = get_u64(r);
    op->proof_expires_ms = (int64_t)get_u64(r);
    uint8_t flags = kind == KIND_HOLD_CREATE ? get_u8(r) : 0;
    op->newcomer = flags & 1;
    return r->ok && flags <= 1;
}

static bool decode_engine_op(record_reader_t *r, uint8_t kind, guard_op_t *g)
{
    engine_op_t *op = &g->engine;
    switch (kind) {
    case KIND_SKU_PUT:
        op->kind = ENGINE_OP_SKU_PUT;
        op->u.sku_put.sku_len = get_text(r, op->u.sku_put.sku, HF_SKU_BYTES_MAX);
        op->u.sku_put.stock = (int64_t)get_u64(r);
        return r->ok && in_range(op->u.sku_put.stock, 0, HF_STOCK_MAX);
    case KIND_HOLD_CREATE_V1:
    case KIND_HOLD_CREATE_V2:
    case KIND_HOLD_CREATE:
        op->kind = ENGINE_OP_HOLD_CREATE;
        return decode_create(r, &op->u.hold_create) &&
               (kind == KIND_HOLD_CREATE_V1 || decode_create_extras(r, kind, g));
    case KIND_HOLD_EXTEND:
        op->kind = ENGINE_OP_HOLD_EXTEND;
        op->u.hold.hold_id = get_u64(r);
        op->u.hold.ttl_ms = (int64_t)get_u64(r);
        return r->ok && in_range(op->u.hold.ttl_ms, 1, HF_TTL_MS_MAX);
    case KIND_HOLD_COMMIT:
        op->kind = ENGINE_OP_HOLD_COMMIT;
        op->u.hold.hold_id = get_u64(r);
        op->u.hold.order_ref_len = get_text0(r, op->u.hold.order_ref, HF_NAME_BYTES_MAX);
        return r->ok;
    case KIND_HOLD_RELEASE_V1:
    case KIND_HOLD_RELEASE:
        op->kind = ENGINE_OP_HOLD_RELEASE;
        op->u.hold.hold_id = get_u64(r);
        if (kind == KIND_HOLD_RELEASE) {
            g->reason_len = get_text0(r, g->reason, HF_NAME_BYTES_MAX);
        }
        return r->ok;
    default:
        return false;
    }
}

static bool decode_guard_op(record_reader_t *r, uint8_t kind, guard_op_t *op)
{
    switch (kind) {
    case KIND_POLICY_PUT:
        op->kind = GUARD_OP_POLICY_PUT;
        return decode_policy(r, &op->u.policy);
    case KIND_SKU_POLICY:
        op->kind = GUARD_OP_SKU_POLICY;
        op->u.sku_policy.sku_len = get_text(r, op->u.sku_policy.sku, HF_SKU_BYTES_MAX);
        op->u.sku_policy.mask = get_u64(r);
        return decode_policy(r, &op->u.sku_policy.values);
    case KIND_REVOKE:
        op->kind = GUARD_OP_REVOKE;
        op->u.revoke.kind = (policy_id_kind_t)get_u8(r);
        op->u.revoke.value_len = get_text(r, op->u.revoke.value, HF_NAME_BYTES_MAX);
        op->reason_len = get_text0(r, op->reason, HF_NAME_BYTES_MAX);
        return r->ok && op->u.revoke.kind < POLICY_ID_KINDS;
    case KIND_WAIT_JOIN:
    case KIND_WAIT_JOIN_KEYED: {
        op->kind = GUARD_OP_WAIT_JOIN;
        op->u.wait_join.id = get_u64(r);
        op->u.wait_join.sku_len = get_text(r, op->u.wait_join.sku, HF_SKU_BYTES_MAX);
        op->u.wait_join.customer_len =
            get_text(r, op->u.wait_join.customer, HF_NAME_BYTES_MAX);
        op->u.wait_join.ip_len = get_text0(r, op->u.wait_join.ip, HF_IP_TEXT_BYTES_MAX);
        op->u.wait_join.fingerprint_len =
            get_text0(r, op->u.wait_join.fingerprint, HF_NAME_BYTES_MAX);
        uint64_t qty = get_u64(r);
        op->u.wait_join.qty = (uint32_t)qty;
        op->u.wait_join.idem_key_len = 0;
        if (kind == KIND_WAIT_JOIN_KEYED) { /* get_text: a key has at least one byte */
            op->u.wait_join.idem_key_len =
                get_text(r, op->u.wait_join.idem_key, HF_IDEM_KEY_BYTES_MAX);
        }
        return r->ok && op->u.wait_join.id != 0 && in_range((int64_t)qty, 1, HF_QTY_MAX);
    }
    case KIND_WAIT_CANCEL:
        op->kind = GUARD_OP_WAIT_CANCEL;
        op->u.wait_id = get_u64(r);
        return r->ok;
    case KIND_SWEEP:
        op->kind = GUARD_OP_SWEEP;
        return true;
    case KIND_RECLAIM: {
        op->kind = GUARD_OP_RECLAIM;
        uint8_t count = get_u8(r);
        if (count < 1 || count > GUARD_RECLAIM_MAX) {
            return false;
        }
        op->u.reclaim.count = count;
        for (uint16_t i = 0; i < count; i++) {
            op->u.reclaim.holds[i] = get_u64(r);
        }
        return r->ok;
    }
    case KIND_ID_SKIP:
        op->kind = GUARD_OP_ID_SKIP;
        op->u.id_skip.hold_seq = get_u64(r);
        op->u.id_skip.wait_seq = get_u64(r);
        return r->ok && op->u.id_skip.hold_seq <= ENGINE_HOLD_SEQ_MAX &&
               op->u.id_skip.wait_seq <= GUARD_WAIT_SEQ_MAX;
    case KIND_SECRET:
        op->kind = GUARD_OP_SECRET;
        for (int i = 0; i < GUARD_SECRET_BYTES; i++) {
            op->u.secret[i] = get_u8(r);
        }
        return r->ok;
    default:
        return false;
    }
}

bool record_decode_op(record_reader_t *r, guard_op_t *op)
{
    memset(op, 0, offsetof(guard_op_t, engine) + offsetof(engine_op_t, u));
    op->buy_now = false;
    op->order_ref_len = 0;
    op->proof_tag = 0;
    op->proof_expires_ms = 0;
    op->newcomer = false;
    op->reason_len = 0;
    op->audit.present = false;
    uint8_t kind = get_u8(r);
    if (kind == KIND_AUDITED) {
        op->audit.present = true;
        op->audit.key_id_len = get_text0(r, op->audit.key_id, GUARD_AUDIT_KEY_ID_BYTES);
        op->audit.route_len = get_text(r, op->audit.route, GUARD_AUDIT_ROUTE_BYTES_MAX);
        kind = get_u8(r);
        if (kind == KIND_AUDITED) {
            return false; /* one wrapper at most */
        }
    }
    op->engine.now_ms = (int64_t)get_u64(r);
    if (!r->ok || op->engine.now_ms < 0) {
        return false;
    }
    if (kind <= KIND_HOLD_CREATE) {
        op->kind = GUARD_OP_ENGINE;
        memset(&op->engine.u, 0, offsetof(engine_hold_create_t, lines));
        return decode_engine_op(r, kind, op);
    }
    return decode_guard_op(r, kind, op);
}

/* --------------------------------------------------------------- snapshot */

static void encode_hold(void *ctx, const engine_hold_view_t *h)
{
    store_buf_t *b = ctx;
    put_u8(b, RECORD_SNAP_HOLD);
    put_u64(b, h->id);
    put_u8(b, (uint8_t)h->state);
    put_text(b, h->customer, h->customer_len);
    put_u64(b, (uint64_t)h->created_ms);
    put_u64(b, (uint64_t)h->expires_ms);
    put_u64(b, (uint64_t)h->finished_ms);
    put_text(b, h->order_ref, h->order_ref_len);
    put_u8(b, (uint8_t)h->line_count);
    for (uint16_t i = 0; i < h->line_count; i++) {
        put_u64(b, h->lines[i].sku_index);
        put_u64(b, h->lines[i].qty);
    }
}

static void encode_idem(void *ctx, const engine_idem_t *k)
{
    store_buf_t *b = ctx;
    put_u8(b, RECORD_SNAP_IDEM);
    put_text(b, k->key, k->key_len);
    put_u64(b, k->request_hash);
    put_u64(b, k->hold_id);
    put_u64(b, (uint64_t)k->at_ms);
}

static void put_guard_bytes(void *ctx, const void *data, size_t size)
{
    put_bytes(ctx, data, size);
}

/* The guard's state goes last, as one record: it refers to the engine's
 * skus and hold slots, which must be restored first. */
static void encode_guard(store_buf_t *b, const guard_t *g)
{
    put_u8(b, RECORD_SNAP_GUARD);
    size_t at = b->size;
    put_u64(b, 0); /* its length, filled in below */
    guard_snapshot_write(g, put_guard_bytes, b);
    uint64_t len = b->size - at - 8;
    for (int i = 0; i < 8; i++) {
        b->data[at + (size_t)i] = (uint8_t)(len >> (8 * i));
    }
}

static void encode_free_slot(void *ctx, uint32_t slot)
{
    uint8_t le[4] = {(uint8_t)slot, (uint8_t)(slot >> 8), (uint8_t)(slot >> 16),
                     (uint8_t)(slot >> 24)};
    put_bytes(ctx, le, 4);
}

/* The free slots in their order (see engine_each_free_slot), 4 bytes each
 * after hold_hwm and their count (filled in once counted). */
static void encode_free_slots(store_buf_t *b, const engine_t *e)
{
    put_u8(b, RECORD_SNAP_FREE);
    put_u64(b, engine_hold_slots_used(e));
    size_t at = b->size;
    put_u64(b, 0);
    size_t first = b->size;
    engine_each_free_slot(e, encode_free_slot, b);
    uint64_t count = (b->size - first) / 4;
    for (int i = 0; i < 8; i++) {
        b->data[at + (size_t)i] = (uint8_t)(count >> (8 * i));
    }
}

void record_encode_snapshot(store_buf_t *b, const guard_t *g)
{
    const engine_t *e = guard_engine(g);
    put_u8(b, RECORD_SNAP_TIME);
    put_u64(b, (uint64_t)engine_now_ms(e));
    put_u64(b, engine_hold_seq(e));
    for (uint32_t i = 0; i < engine_sku_count(e); i++) {
        engine_sku_view_t v;
        engine_sku_view(e, i, &v);
        put_u8(b, RECORD_SNAP_SKU);
        put_text(b, v.sku, v.sku_len);
        put_u64(b, (uint64_t)v.stock);
        put_u64(b, (uint64_t)v.sold);
    }
    engine_each_hold(e, encode_hold, b);
    engine_each_idem(e, encode_idem, b);
    encode_free_slots(b, e);
    encode_guard(b, g);
}

static bool decode_hold(record_reader_t *r, const engine_t *e, engine_hold_view_t *h,
                        char *customer, char *order_ref)
{
    h->id = get_u64(r);
    h->state = (engine_hold_state_t)get_u8(r);
    h->customer_len = get_text(r, customer, HF_NAME_BYTES_MAX);
    h->customer = customer;
    h->created_ms = (int64_t)get_u64(r);
    h->expires_ms = (int64_t)get_u64(r);
    h->finished_ms = (int64_t)get_u64(r);
    h->order_ref_len = get_text0(r, order_ref, HF_NAME_BYTES_MAX);
    h->order_ref = h->order_ref_len > 0 ? order_ref : NULL;
    h->line_count = get_u8(r);
    if (!r->ok || h->state < ENGINE_HOLD_ACTIVE || h->state > ENGINE_HOLD_EXPIRED_STATE ||
        !in_range(h->line_count, 1, HF_LINES_PER_HOLD_MAX) ||
        (h->order_ref_len > 0 && h->state != ENGINE_HOLD_COMMITTED_STATE &&
         h->state != ENGINE_HOLD_RELEASED_STATE)) {
        return false;
    }
    for (uint16_t i = 0; i < h->line_count; i++) {
        uint64_t sku = get_u64(r);
        uint64_t qty = get_u64(r);
        if (!r->ok || sku >= engine_sku_count(e) || qty < 1 || qty > HF_QTY_MAX) {
            return false;
        }
        h->lines[i].sku_index = (uint32_t)sku;
        h->lines[i].qty = (uint32_t)qty;
    }
    return true;
}

static engine_result_t restore_one(record_reader_t *r, engine_t *e, uint8_t kind)
{
    char text[HF_NAME_BYTES_MAX];
    char order_ref[HF_NAME_BYTES_MAX];
    switch (kind) {
    case RECORD_SNAP_SKU: {
        uint8_t len = get_text(r, text, HF_SKU_BYTES_MAX);
        int64_t stock = (int64_t)get_u64(r);
        int64_t sold = (int64_t)get_u64(r);
        uint32_t existing;
        if (!r->ok || !in_range(stock, 0, HF_STOCK_MAX) || !in_range(sold, 0, stock) ||
            engine_sku_find(e, text, len, &existing)) {
            r->ok = false;
            return ENGINE_OK;
        }
        return engine_restore_sku(e, text, len, stock, sold);
    }
    case RECORD_SNAP_HOLD: {
        engine_hold_view_t h;
        if (!decode_hold(r, e, &h, text, order_ref) || !engine_restore_fits_hold(e, &h)) {
            r->ok = false;
            return ENGINE_OK;
        }
        return engine_restore_hold(e, &h);
    }
    case RECORD_SNAP_IDEM: {
        engine_idem_t k = {0};
        k.key_len = get_text(r, k.key, HF_IDEM_KEY_BYTES_MAX);
        k.request_hash = get_u64(r);
        k.hold_id = get_u64(r);
        k.at_ms = (int64_t)get_u64(r);
        if (!r->ok || !engine_restore_fits_idem(e, &k)) {
            r->ok = false;
            return ENGINE_OK;
        }
        return engine_restore_idem(e, &k);
    }
    default:
        r->ok = false;
        return ENGINE_OK;
    }
}

static bool restore_free_slots(record_reader_t *r, engine_t *e)
{
    uint64_t hwm = get_u64(r), count = get_u64(r);
    if (!r->ok || hwm > engine_config(e).holds_max || count > hwm || r->left < count * 4) {
        return false;
    }
    uint32_t *slots = malloc((size_t)(count > 0 ? count : 1) * sizeof *slots);
    if (slots == NULL) {
        return false;
    }
    for (uint64_t i = 0; i < count; i++) {
        const uint8_t *p = r->p + 4 * i;
        slots[i] = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                   (uint32_t)p[3] << 24;
    }
    r->p += count * 4;
    r->left -= count * 4;
    bool ok = engine_restore_free_slots(e, (uint32_t)hwm, slots, (uint32_t)count);
    free(slots);
    return ok;
}

static bool restore_guard(record_reader_t *r, guard_t *g, char *err, size_t err_size)
{
    uint64_t len = get_u64(r);
    if (!r->ok || len != r->left) {
        snprintf(err, err_size, "snapshot's guard record is damaged");
        return false;
    }
    bool ok = guard_snapshot_read(g, r->p, (size_t)len, err, err_size);
    r->p += len;
    r->left = 0;
    return ok;
}

bool record_restore_snapshot(record_reader_t *r, guard_t *g, uint64_t *records_out, char *err,
                             size_t err_size)
{
    engine_t *e = guard_engine_to_restore(g);
    uint64_t records = 0;
    if (get_u8(r) != RECORD_SNAP_TIME) {
        snprintf(err, err_size, "snapshot does not start with its time");
        return false;
    }
    int64_t now_ms = (int64_t)get_u64(r);
    uint64_t hold_seq = get_u64(r);
    if (!r->ok || !engine_restore_time(e, now_ms, hold_seq)) {
        snprintf(err, err_size, "snapshot time is damaged");
        return false;
    }
    while (r->ok && r->left > 0) {
        uint8_t kind = get_u8(r);
        if (kind == RECORD_SNAP_GUARD) {
            *records_out = records + 1;
            return restore_guard(r, g, err, err_size);
        }
        if (kind == RECORD_SNAP_FREE) {
            if (!restore_free_slots(r, e)) {
                snprintf(err, err_size, "snapshot's free hold slots are damaged");
                return false;
            }
            records++;
            continue;
        }
        engine_result_t res = restore_one(r, e, kind);
        if (res != ENGINE_OK) {
            snprintf(err, err_size, "snapshot does not fit the configured capacity: %s",
                     engine_result_message(res));
            return false;
        }
        records++;
    }
    if (!r->ok) {
        snprintf(err, err_size, "snapshot record %llu is damaged", (unsigned long long)records);
        return false;
    }
    /* Each record was in range, but together they must still make a valid
     * state (a key naming a hold that is not there...): checked, not
     * trusted. */
    if (!guard_check(g)) {
        snprintf(err, err_size, "snapshot records do not make a valid state");
        return false;
    }
    *records_out = records;
    return true;
}
