/*
 * waitlist.c - waitlist entries and lines (waitlist.h), and their reads
 * (guard.h).
 */
#include "waitlist.h"

#include <assert.h>
#include <string.h>

#include "index.h"

uint64_t wait_hash_of(const void *g, uint32_t i)
{
    const guard_wait_t *w = &((const guard_t *)g)->waits[i];
    return index_waiting_hash(w->sku, w->customer, w->customer_len);
}

uint64_t wait_key_hash_of(const void *g, uint32_t i)
{
    const guard_wait_t *w = &((const guard_t *)g)->waits[i];
    return index_hash_bytes(0, w->key, w->key_len);
}

uint32_t wait_alloc(guard_t *g)
{
    if (g->wait_hwm < g->config.waitlist_max) {
        return g->wait_hwm++;
    }
    if (g->wait_done_head == 0) {
        return GUARD_NONE;
    }
    uint32_t i = g->wait_done_head - 1;
    g->wait_done_head = g->waits[i].next;
    if (g->wait_done_head == 0) {
        g->wait_done_tail = 0;
    }
    if (g->waits[i].key_len > 0) { /* the slot's next entry is another's */
        index_delete(g->wait_key_index, g->wait_key_index_mask, wait_key_hash_of(g, i), i,
                     wait_key_hash_of, g);
        g->waits[i].key_len = 0;
    }
    return i;
}

void wait_finish(guard_t *g, uint32_t i, guard_wait_state_t to, int64_t at_ms)
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

void wait_unlink(guard_t *g, uint32_t i)
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
    s->wait_units -= g->waits[i].qty;
    g->stats.waiting--;
    index_delete(g->wait_index, g->wait_index_mask, wait_hash_of(g, i), i, wait_hash_of, g);
}

bool wait_link(guard_t *g, uint32_t i, uint32_t sku, guard_op_t *op)
{
    uint64_t id = op->u.wait_join.id;
    if (id == 0) {
        id = (++g->wait_seq << WAIT_INDEX_BITS) | i;
    } else if ((id & WAIT_INDEX_MASK) != i) {
        return false; /* replay diverged */
    } else {
        g->wait_seq = id >> WAIT_INDEX_BITS;
    }
    op->u.wait_join.id = id;
    guard_wait_t *w = &g->waits[i];
    *w = (guard_wait_t){.id = id,
                        .created_ms = op->engine.now_ms,
                        .sku = sku,
                        .ip_len = op->u.wait_join.ip_len,
                        .fingerprint_len = op->u.wait_join.fingerprint_len,
                        .qty = op->u.wait_join.qty,
                        .state = GUARD_WAIT_WAITING,
                        .customer_len = op->u.wait_join.customer_len};
    memcpy(w->customer, op->u.wait_join.customer, w->customer_len);
    memcpy(w->ip, op->u.wait_join.ip, w->ip_len);
    memcpy(w->fingerprint, op->u.wait_join.fingerprint, w->fingerprint_len);
    assert(op->u.wait_join.idem_key_len <= HF_IDEM_KEY_BYTES_MAX);
    w->key_len = op->u.wait_join.idem_key_len;
    memcpy(w->key, op->u.wait_join.idem_key, w->key_len);
    if (w->key_len > 0) {
        assert(wait_find_key(g, w->key, w->key_len) == GUARD_NONE && "a key makes one entry");
        index_insert(g->wait_key_index, g->wait_key_index_mask, wait_key_hash_of(g, i), i);
    }
    guard_sku_t *s = &g->skus[sku];
    if (s->wait_tail == 0) {
        s->wait_head = i + 1;
    } else {
        g->waits[s->wait_tail - 1].next = i + 1;
    }
    s->wait_tail = i + 1;
    s->wait_count++;
    s->wait_units += w->qty;
    g->stats.waiting++;
    g->stats.wait_joined++;
    index_insert(g->wait_index, g->wait_index_mask, wait_hash_of(g, i), i);
    return true;
}

uint32_t wait_find(const guard_t *g, uint64_t id)
{
    uint64_t i = id & WAIT_INDEX_MASK;
    if (i >= g->wait_hwm || g->waits[i].id != id || g->waits[i].state == GUARD_WAIT_FREE) {
        return GUARD_NONE;
    }
    return (uint32_t)i;
}

bool wait_has_customer(const guard_t *g, uint32_t sku, const char *customer, size_t len)
{
    uint64_t h = index_waiting_hash(sku, customer, len);
    for (uint32_t b = (uint32_t)h & g->wait_index_mask; g->wait_index[b] != 0;
         b = (b + 1) & g->wait_index_mask) {
        const guard_wait_t *w = &g->waits[g->wait_index[b] - 1];
        if (w->sku == sku && w->customer_len == len && memcmp(w->customer, customer, len) == 0) {
            return true;
        }
    }
    return false;
}

uint32_t wait_find_key(const guard_t *g, const char *key, size_t len)
{
    assert(len >= 1 && len <= HF_IDEM_KEY_BYTES_MAX);
    uint64_t h = index_hash_bytes(0, key, len);
    for (uint32_t b = (uint32_t)h & g->wait_key_index_mask; g->wait_key_index[b] != 0;
         b = (b + 1) & g->wait_key_index_mask) {
        const guard_wait_t *w = &g->waits[g->wait_key_index[b] - 1];
        if (w->key_len == len && memcmp(w->key, key, len) == 0) {
            return g->wait_key_index[b] - 1;
        }
    }
    return GUARD_NONE;
}

uint32_t wait_first_servable(const guard_t *g, uint32_t sku, int64_t sellable)
{
    for (uint32_t at = g->skus[sku].wait_head; at != 0; at = g->waits[at - 1].next) {
        if (g->waits[at - 1].qty <= sellable) {
            return at - 1;
        }
    }
    return GUARD_NONE;
}

/* ---------------------------------------------------------------- reads */

const char *guard_wait_state_name(guard_wait_state_t s)
{
    static const char *const names[] = {"free",      "waiting", "offered",
                                        "fulfilled", "expired", "cancelled"};
    assert(s <= GUARD_WAIT_CANCELLED);
    return names[s];
}

bool guard_wait_view(const guard_t *g, uint64_t id, guard_wait_view_t *out)
{
    uint32_t i = wait_find(g, id);
    if (i == GUARD_NONE) {
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
    *out = (guard_wait_view_t){.id = w->id,
                               .hold_id = w->hold_id,
                               .state = (guard_wait_state_t)w->state,
                               .sku_index = w->sku,
                               .qty = w->qty,
                               .position = position,
                               .customer = w->customer,
                               .customer_len = w->customer_len,
                               .created_ms = w->created_ms,
                               .finished_ms = w->finished_ms};
    return true;
}

bool guard_wait_state(const guard_t *g, uint64_t id, guard_wait_state_t *state_out,
                      uint64_t *hold_id_out)
{
    uint32_t i = wait_find(g, id);
    if (i == GUARD_NONE) {
        return false;
    }
    *state_out = (guard_wait_state_t)g->waits[i].state;
    *hold_id_out = g->waits[i].hold_id;
    return true;
}

bool guard_wait_customer(const guard_t *g, uint64_t id, const char **customer_out, uint8_t *len_out)
{
    uint32_t i = wait_find(g, id);
    if (i == GUARD_NONE) {
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
