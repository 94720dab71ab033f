/*
 * record.c - encoding and decoding of journal and snapshot records.
 */
#include "record.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void record_buf_reserve(store_buf_t *b, size_t more)
{
    if (b->size + more <= b->capacity) {
        return;
    }
    size_t capacity = b->capacity < 4096 ? 4096 : b->capacity;
    while (capacity < b->size + more) {
        capacity *= 2;
    }
    uint8_t *data = realloc(b->data, capacity);
    if (data == NULL) {
        fprintf(stderr, "level=fatal msg=\"out of memory in the journal buffer\"\n");
        abort();
    }
    b->data = data;
    b->capacity = capacity;
}

void record_buf_free(store_buf_t *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
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

static void put_u64(store_buf_t *b, uint64_t v)
{
    uint8_t le[8];
    for (int i = 0; i < 8; i++) {
        le[i] = (uint8_t)(v >> (8 * i));
    }
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
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)r->p[i] << (8 * i);
    }
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

void record_encode_op(store_buf_t *b, const engine_op_t *op)
{
    assert(op->now_ms >= 0);
    put_u8(b, (uint8_t)op->kind);
    put_u64(b, (uint64_t)op->now_ms);
    switch (op->kind) {
    case ENGINE_OP_SKU_PUT:
        assert(in_range(op->u.sku_put.stock, 0, HF_STOCK_MAX));
        put_text(b, op->u.sku_put.sku, op->u.sku_put.sku_len);
        put_u64(b, (uint64_t)op->u.sku_put.stock);
        break;
    case ENGINE_OP_HOLD_CREATE:
        encode_create(b, &op->u.hold_create);
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
        break;
    default:
        assert(0 && "unknown op kind");
    }
}

static bool decode_create(record_reader_t *r, engine_hold_create_t *c)
{
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

bool record_decode_op(record_reader_t *r, engine_op_t *op)
{
    memset(op, 0, offsetof(engine_op_t, u));
    op->kind = (engine_op_kind_t)get_u8(r);
    op->now_ms = (int64_t)get_u64(r);
    if (!r->ok || op->now_ms < 0) {
        return false;
    }
    switch (op->kind) {
    case ENGINE_OP_SKU_PUT:
        op->u.sku_put.sku_len = get_text(r, op->u.sku_put.sku, HF_SKU_BYTES_MAX);
        op->u.sku_put.stock = (int64_t)get_u64(r);
        return r->ok && in_range(op->u.sku_put.stock, 0, HF_STOCK_MAX);
    case ENGINE_OP_HOLD_CREATE:
        return decode_create(r, &op->u.hold_create);
    case ENGINE_OP_HOLD_EXTEND:
        op->u.hold.hold_id = get_u64(r);
        op->u.hold.ttl_ms = (int64_t)get_u64(r);
        return r->ok && in_range(op->u.hold.ttl_ms, 1, HF_TTL_MS_MAX);
    case ENGINE_OP_HOLD_COMMIT:
        op->u.hold.hold_id = get_u64(r);
        op->u.hold.order_ref_len = get_text0(r, op->u.hold.order_ref, HF_NAME_BYTES_MAX);
        return r->ok;
    case ENGINE_OP_HOLD_RELEASE:
        op->u.hold.hold_id = get_u64(r);
        op->u.hold.order_ref_len = 0;
        return r->ok;
    default:
        return false;
    }
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

void record_encode_snapshot(store_buf_t *b, const engine_t *e)
{
    put_u8(b, RECORD_SNAP_TIME);
    put_u64(b, (uint64_t)e->now_ms);
    put_u64(b, e->hold_seq);
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
        (h->order_ref_len > 0 && h->state != ENGINE_HOLD_COMMITTED_STATE)) {
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
        if (!decode_hold(r, e, &h, text, order_ref)) {
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
        if (!r->ok) {
            return ENGINE_OK;
        }
        return engine_restore_idem(e, &k);
    }
    default:
        r->ok = false;
        return ENGINE_OK;
    }
}

bool record_restore_snapshot(record_reader_t *r, engine_t *e, uint64_t *records_out, char *err,
                             size_t err_size)
{
    uint64_t records = 0;
    if (get_u8(r) != RECORD_SNAP_TIME) {
        snprintf(err, err_size, "snapshot does not start with its time");
        return false;
    }
    int64_t now_ms = (int64_t)get_u64(r);
    uint64_t hold_seq = get_u64(r);
    if (!r->ok || now_ms < e->now_ms) {
        snprintf(err, err_size, "snapshot time is damaged");
        return false;
    }
    engine_restore_time(e, now_ms, hold_seq);
    while (r->ok && r->left > 0) {
        engine_result_t res = restore_one(r, e, get_u8(r));
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
    *records_out = records;
    return true;
}
