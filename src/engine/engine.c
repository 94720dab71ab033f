/*
 * engine.c - SKUs, holds, the expiry timer and idempotency keys.
 *
 * Layout. engine_init() makes one anonymous, unreserved mapping and carves
 * every table out of it, so the capacities of a large shop cost address
 * space, not memory, until they are used. Nothing is allocated afterwards.
 *
 * Tables and why they look as they do:
 *   - skus in creation order, in two arrays by the same index: skus[], what
 *     every hold reads and writes, 32 bytes (available, held, the name's
 *     length and its first ENGINE_SKU_HEAD_BYTES bytes), and sku_cold[], the
 *     stock and the whole name, for puts, views and longer names. A sku's
 *     sold is stock - held - available, so no hold ever writes the cold
 *     record. They are found through an open-addressing index of uint32
 *     (index + 1, and a tag of the hash so that probes rarely read a record
 *     that is not the one). SKUs are never deleted, so the index needs no
 *     tombstones, and the creation order doubles as the listing order (a
 *     cursor is an index). Every hold looks its skus up, at random over a
 *     large catalog, and at 100,000 skus each lookup's record misses the
 *     cache, so what a lookup touches is kept small: the index grows with
 *     the skus (1 MiB at 100,000), the hot records take 3.2 MB there (not the
 *     9.6 MB of a 96-byte record with the whole name). A lookup is two
 *     dependent loads, the bucket and the hot record; a name longer than the
 *     head costs a third, in sku_cold[].
 *   - holds[] by slot. A hold id is (sequence << 28 | slot): reading a hold is
 *     an array access plus a check that the slot still holds that sequence,
 *     and no id is ever issued twice, even after its slot is reused.
 *     A one-line hold fits in one 96-byte record (with its customer's name
 *     if that is up to 36 bytes, a UUID's length); lines 2..64 go in chunks.
 *   - a binary min-heap of active holds ordered by (expires_ms, id), so that
 *     expiry is O(log n) per hold and the order of expiry is a function of the
 *     holds alone (recovery must expire in the same order the server did).
 *   - finished holds form a FIFO in the order they finished; it is sorted by
 *     finished_ms because time never goes back, so forgetting old ones and
 *     evicting the oldest to make room are both O(1) at the head.
 *   - longer customer names are interned with a reference count, so a hold
 *     carries 4 bytes for them, not 128.
 *   - idempotency keys form a ring in arrival order (again sorted by time).
 *
 * Determinism: every result depends only on the sequence of ops and their
 * now_ms. That is what lets the store journal ops and replay them.
 */
#include "engine.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Budget: at most 128 bytes of engine memory per active one-line hold
 * (record plus timer entry), whoever its customer is. */
_Static_assert(sizeof(engine_hold_t) == 96, "a hold record is 96 bytes");
_Static_assert(sizeof(engine_hold_t) + sizeof(int64_t) + sizeof(uint32_t) <= 128,
               "an active one-line hold costs at most 128 bytes");

#define SLOT_BITS 28
#define SLOT_MASK ((1ull << SLOT_BITS) - 1)
#define SEQ_MAX ((1ull << (64 - SLOT_BITS)) - 1)
_Static_assert(SEQ_MAX == ENGINE_HOLD_SEQ_MAX, "engine.h says how far ids go");

static const char *const result_names[] = {
#define ENGINE_RESULT_NAME(name, text, message) text,
    ENGINE_RESULTS(ENGINE_RESULT_NAME)
#undef ENGINE_RESULT_NAME
};
static const char *const result_messages[] = {
#define ENGINE_RESULT_MESSAGE(name, text, message) message,
    ENGINE_RESULTS(ENGINE_RESULT_MESSAGE)
#undef ENGINE_RESULT_MESSAGE
};

const char *engine_result_name(engine_result_t r)
{
    assert(r < ENGINE_RESULT_COUNT);
    return result_names[r];
}

const char *engine_result_message(engine_result_t r)
{
    assert(r < ENGINE_RESULT_COUNT);
    return result_messages[r];
}

const char *engine_hold_state_name(engine_hold_state_t s)
{
    static const char *const names[] = {"free", "active", "committed", "released", "expired"};
    assert(s <= ENGINE_HOLD_EXPIRED_STATE);
    return names[s];
}

engine_config_t engine_config_default(void)
{
    engine_config_t c = {
        .skus_max = HF_SKUS_MAX_DEFAULT,
        .holds_max = HF_HOLDS_MAX_DEFAULT,
        .idem_keys_max = HF_IDEM_KEYS_MAX_DEFAULT,
    };
    return c;
}

/* ---------------------------------------------------------------- helpers */

static uint64_t hash_bytes(uint64_t h, const void *data, size_t len)
{
    /* FNV-1a: short keys, no seed needed (the tables are not exposed to
     * attacker-chosen collisions beyond what the capacity already bounds). */
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t hash_init(void)
{
    return 0xcbf29ce484222325ull;
}

static uint64_t hash_u64(uint64_t h, uint64_t v)
{
    return hash_bytes(h, &v, sizeof v);
}

static uint32_t index_capacity(uint32_t count_max)
{
    /* Load factor at most one half keeps linear probes short. */
    uint64_t c = 2;
    while (c < 2ull * count_max) {
        c <<= 1;
    }
    return (uint32_t)c;
}

static size_t align_up(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

typedef struct {
    size_t skus, sku_index, sku_cold, names, name_index, holds, chunks, heap_ms, heap_slot, idem,
        idem_index, total;
} layout_t;

/* A hold names at most two interned names: a long customer and an order_ref. */
static uint32_t names_max(const engine_config_t *c)
{
    return 2 * c->holds_max;
}

static layout_t layout_for(const engine_config_t *c)
{
    layout_t l;
    size_t at = 0;
#define PLACE(field, bytes)                                                                    \
    l.field = at;                                                                              \
    at += align_up(bytes)
    PLACE(skus, (size_t)c->skus_max * sizeof(engine_sku_t));
    PLACE(sku_index, (size_t)index_capacity(c->skus_max) * sizeof(uint32_t));
    PLACE(sku_cold, (size_t)c->skus_max * sizeof(engine_sku_cold_t));
    PLACE(names, (size_t)names_max(c) * sizeof(engine_name_t));
    PLACE(name_index, (size_t)index_capacity(names_max(c)) * sizeof(uint32_t));
    PLACE(holds, (size_t)c->holds_max * sizeof(engine_hold_t));
    PLACE(chunks, (size_t)c->holds_max * sizeof(engine_chunk_t));
    PLACE(heap_ms, (size_t)c->holds_max * sizeof(int64_t));
    PLACE(heap_slot, (size_t)c->holds_max * sizeof(uint32_t));
    PLACE(idem, (size_t)c->idem_keys_max * sizeof(engine_idem_t));
    PLACE(idem_index, (size_t)index_capacity(c->idem_keys_max) * sizeof(uint32_t));
#undef PLACE
    l.total = at;
    return l;
}

size_t engine_reserved_bytes(const engine_config_t *config)
{
    return layout_for(config).total;
}

static bool config_valid(const engine_config_t *c)
{
    return c->skus_max >= 1 && c->skus_max <= HF_SKUS_MAX_LIMIT && c->holds_max >= 1 &&
           c->holds_max <= HF_HOLDS_MAX_LIMIT && c->idem_keys_max >= 1 &&
           c->idem_keys_max <= HF_IDEM_KEYS_MAX_LIMIT;
}

static uint32_t sku_index_capacity(const engine_config_t *c, uint32_t count);

int engine_init(engine_t *e, const engine_config_t *config, int64_t now_ms)
{
    memset(e, 0, sizeof *e);
    if (!config_valid(config) || now_ms < 0) {
        return -1;
    }
    layout_t l = layout_for(config);
    void *region = mmap(NULL, l.total, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (region == MAP_FAILED) {
        return -1;
    }
    char *base = region;
    e->config = *config;
    e->now_ms = now_ms;
    e->region = region;
    e->region_size = l.total;
    e->skus = (engine_sku_t *)(base + l.skus);
    e->sku_index = (uint32_t *)(base + l.sku_index);
    e->sku_cold = (engine_sku_cold_t *)(base + l.sku_cold);
    e->sku_index_mask = sku_index_capacity(config, 0) - 1;
    e->names = (engine_name_t *)(base + l.names);
    e->name_index = (uint32_t *)(base + l.name_index);
    e->name_index_mask = index_capacity(names_max(config)) - 1;
    e->name_free = ENGINE_NONE;
    e->holds = (engine_hold_t *)(base + l.holds);
    e->hold_free = ENGINE_NONE;
    e->finished_head = ENGINE_NONE;
    e->finished_tail = ENGINE_NONE;
    e->chunks = (engine_chunk_t *)(base + l.chunks);
    e->chunks_max = config->holds_max;
    e->chunk_free = ENGINE_NONE;
    e->heap_ms = (int64_t *)(base + l.heap_ms);
    e->heap_slot = (uint32_t *)(base + l.heap_slot);
    e->idem = (engine_idem_t *)(base + l.idem);
    e->idem_index = (uint32_t *)(base + l.idem_index);
    e->idem_index_mask = index_capacity(config->idem_keys_max) - 1;
    return 0;
}

void engine_deinit(engine_t *e)
{
    if (e->region != NULL) {
        munmap(e->region, e->region_size);
    }
    memset(e, 0, sizeof *e);
}

/* ---------------------------------------------------- open-addressing index
 * An index maps a key to (entry + 1); 0 is an empty bucket. Deletion shifts
 * the following run back, so lookups never meet tombstones. */

typedef uint64_t (*entry_hash_fn)(const engine_t *e, uint32_t entry);

static void index_insert(uint32_t *index, uint32_t mask, uint64_t hash, uint32_t entry)
{
    uint32_t b = (uint32_t)hash & mask;
    while (index[b] != 0) {
        b = (b + 1) & mask;
    }
    index[b] = entry + 1;
}

static void index_delete(const engine_t *e, uint32_t *index, uint32_t mask, uint32_t bucket,
                         entry_hash_fn hash_of)
{
    uint32_t hole = bucket;
    uint32_t b = bucket;
    for (;;) {
        b = (b + 1) & mask;
        if (index[b] == 0) {
            break;
        }
        uint32_t home = (uint32_t)hash_of(e, index[b] - 1) & mask;
        /* The entry at b may move into the hole only if its home bucket is
         * not cyclically within (hole, b]. */
        bool home_between = hole <= b ? (hole < home && home <= b) : (hole < home || home <= b);
        if (!home_between) {
            index[hole] = index[b];
            hole = b;
        }
    }
    index[hole] = 0;
}

/* -------------------------------------------------------------------- skus */

static uint64_t sku_hash(const char *sku, size_t len)
{
    return hash_bytes(hash_init(), sku, len);
}

/* A sku index bucket: the sku's index + 1 in the low bits, and in the high
 * bits a tag of the hash (bits the bucket number does not use), so that a
 * probe passing another sku's bucket rarely reads that sku's record: at
 * 100,000 skus each record read is a cache miss. */
#define SKU_ENTRY_BITS 26
#define SKU_ENTRY_MASK ((1u << SKU_ENTRY_BITS) - 1)
#define SKU_TAG_SHIFT SKU_ENTRY_BITS
_Static_assert(HF_SKUS_MAX_LIMIT < SKU_ENTRY_MASK, "a sku index + 1 fits its bucket's low bits");
/* The index starts this small and doubles as skus are added. */
#define SKU_INDEX_CAPACITY_MIN 1024u

static uint32_t sku_tag(uint64_t hash)
{
    return (uint32_t)(hash >> (64 - (32 - SKU_ENTRY_BITS))) << SKU_TAG_SHIFT;
}

/* Buckets for count skus at a load of at most one half; never more than
 * the reservation (index_capacity(skus_max)). */
static uint32_t sku_index_capacity(const engine_config_t *c, uint32_t count)
{
    uint32_t reserved = index_capacity(c->skus_max);
    uint32_t wanted = index_capacity(count);
    wanted = wanted < SKU_INDEX_CAPACITY_MIN ? SKU_INDEX_CAPACITY_MIN : wanted;
    return wanted < reserved ? wanted : reserved;
}

_Static_assert(sizeof(engine_sku_t) == 32, "a sku's hot record is half a cache line");

static size_t sku_head_len(size_t len)
{
    return len < ENGINE_SKU_HEAD_BYTES ? len : ENGINE_SKU_HEAD_BYTES;
}

/* Whether sku i is named sku: the hot record answers for names up to
 * ENGINE_SKU_HEAD_BYTES long (and for nearly every mismatch). */
static bool sku_matches(const engine_t *e, uint32_t i, const char *sku, size_t len)
{
    const engine_sku_t *s = &e->skus[i];
    if (s->id_len != len || memcmp(s->id_head, sku, sku_head_len(len)) != 0) {
        return false;
    }
    return len <= ENGINE_SKU_HEAD_BYTES ||
           memcmp(e->sku_cold[i].id + ENGINE_SKU_HEAD_BYTES, sku + ENGINE_SKU_HEAD_BYTES,
                  len - ENGINE_SKU_HEAD_BYTES) == 0;
}

static bool sku_find_hashed(const engine_t *e, const char *sku, size_t sku_len, uint64_t hash,
                            uint32_t *index_out)
{
    uint32_t tag = sku_tag(hash);
    uint32_t b = (uint32_t)hash & e->sku_index_mask;
    for (uint32_t entry = e->sku_index[b]; entry != 0; entry = e->sku_index[b]) {
        if ((entry & ~SKU_ENTRY_MASK) == tag) {
            uint32_t i = (entry & SKU_ENTRY_MASK) - 1;
            if (sku_matches(e, i, sku, sku_len)) {
                *index_out = i;
                return true;
            }
        }
        b = (b + 1) & e->sku_index_mask;
    }
    return false;
}

bool engine_sku_find(const engine_t *e, const char *sku, size_t sku_len, uint32_t *index_out)
{
    return sku_find_hashed(e, sku, sku_len, sku_hash(sku, sku_len), index_out);
}

static void sku_index_insert(engine_t *e, uint64_t hash, uint32_t i)
{
    assert(i < SKU_ENTRY_MASK);
    uint32_t b = (uint32_t)hash & e->sku_index_mask;
    while (e->sku_index[b] != 0) {
        b = (b + 1) & e->sku_index_mask;
    }
    e->sku_index[b] = sku_tag(hash) | (i + 1);
}

/* Doubles the index when one more sku would load it past one half, and
 * rebuilds it from the records (which keep every name): O(skus) once per
 * doubling, and deterministic, as the index is a function of the skus. */
static void sku_index_reserve(engine_t *e, uint32_t count)
{
    uint32_t capacity = sku_index_capacity(&e->config, count);
    if (capacity <= e->sku_index_mask + 1) {
        return;
    }
    memset(e->sku_index, 0, (size_t)capacity * sizeof *e->sku_index);
    e->sku_index_mask = capacity - 1;
    for (uint32_t i = 0; i < e->sku_count; i++) {
        sku_index_insert(e, sku_hash(e->sku_cold[i].id, e->skus[i].id_len), i);
    }
}

static uint32_t sku_add(engine_t *e, const char *sku, size_t sku_len, int64_t stock)
{
    assert(e->sku_count < e->config.skus_max);
    assert(sku_len >= 1 && sku_len <= HF_SKU_BYTES_MAX);
    sku_index_reserve(e, e->sku_count + 1);
    uint32_t i = e->sku_count++;
    engine_sku_t *s = &e->skus[i];
    s->id_len = (uint8_t)sku_len;
    memset(s->id_head, 0, sizeof s->id_head);
    memcpy(s->id_head, sku, sku_head_len(sku_len));
    s->available = stock;
    s->held = 0;
    memcpy(e->sku_cold[i].id, sku, sku_len);
    e->sku_cold[i].stock = stock;
    sku_index_insert(e, sku_hash(sku, sku_len), i);
    e->stats.skus = e->sku_count;
    e->stats.units_stock += stock;
    return i;
}

void engine_sku_view(const engine_t *e, uint32_t index, engine_sku_view_t *out)
{
    assert(index < e->sku_count);
    const engine_sku_t *s = &e->skus[index];
    out->sku = e->sku_cold[index].id;
    out->sku_len = s->id_len;
    out->stock = e->sku_cold[index].stock;
    out->held = s->held;
    out->available = s->available;
    out->sold = out->stock - s->held - s->available;
    assert(out->available >= 0 && out->sold >= 0);
}

/* What a sku has sold: the units neither held nor available. */
static int64_t sku_sold(const engine_t *e, uint32_t index)
{
    return e->sku_cold[index].stock - e->skus[index].held - e->skus[index].available;
}

uint32_t engine_sku_count(const engine_t *e)
{
    return e->sku_count;
}

static void apply_sku_put(engine_t *e, const engine_op_t *op, engine_outcome_t *o)
{
    const char *sku = op->u.sku_put.sku;
    size_t len = op->u.sku_put.sku_len;
    int64_t stock = op->u.sku_put.stock;
    assert(stock >= 0 && stock <= HF_STOCK_MAX);
    uint32_t i;
    if (!engine_sku_find(e, sku, len, &i)) {
        if (e->sku_count == e->config.skus_max) {
            o->result = ENGINE_SKUS_FULL;
            return;
        }
        o->sku_index = sku_add(e, sku, len, stock);
        o->created = true;
        o->changed = true;
        return;
    }
    engine_sku_t *s = &e->skus[i];
    engine_sku_cold_t *cold = &e->sku_cold[i];
    o->sku_index = i;
    if (stock < s->held + sku_sold(e, i)) {
        o->result = ENGINE_STOCK_BELOW_COMMITTED;
        o->available = s->available;
        return;
    }
    o->changed = stock != cold->stock;
    e->stats.units_stock += stock - cold->stock;
    s->available += stock - cold->stock;
    cold->stock = stock;
}

/* ------------------------------------------------------------------- names */

static uint64_t name_hash_of(const engine_t *e, uint32_t entry)
{
    return hash_bytes(hash_init(), e->names[entry].text, e->names[entry].len);
}

static uint32_t name_ref(engine_t *e, const char *text, size_t len)
{
    assert(len >= 1 && len <= HF_NAME_BYTES_MAX);
    uint64_t h = hash_bytes(hash_init(), text, len);
    uint32_t b = (uint32_t)h & e->name_index_mask;
    while (e->name_index[b] != 0) {
        engine_name_t *n = &e->names[e->name_index[b] - 1];
        if (n->len == len && memcmp(n->text, text, len) == 0) {
            n->refs++;
            return e->name_index[b] - 1;
        }
        b = (b + 1) & e->name_index_mask;
    }
    uint32_t i;
    if (e->name_free != ENGINE_NONE) {
        i = e->name_free;
        e->name_free = e->names[i].refs; /* a free name's refs is the next free */
    } else {
        /* Each name is held by at least one hold, as its customer or its
         * order_ref, so names never outnumber twice the hold slots. */
        assert(e->name_hwm < names_max(&e->config));
        i = e->name_hwm++;
    }
    engine_name_t *n = &e->names[i];
    n->refs = 1;
    n->len = (uint8_t)len;
    memcpy(n->text, text, len);
    e->name_index[b] = i + 1;
    e->name_count++;
    return i;
}

static void name_unref(engine_t *e, uint32_t i)
{
    engine_name_t *n = &e->names[i];
    assert(n->refs > 0);
    if (--n->refs > 0) {
        return;
    }
    uint32_t b = (uint32_t)name_hash_of(e, i) & e->name_index_mask;
    while (e->name_index[b] != i + 1) {
        assert(e->name_index[b] != 0);
        b = (b + 1) & e->name_index_mask;
    }
    index_delete(e, e->name_index, e->name_index_mask, b, name_hash_of);
    n->len = 0;
    n->refs = e->name_free;
    e->name_free = i;
    e->name_count--;
}

/* A hold's customer: in the record if short, else interned. */
static void hold_set_customer(engine_t *e, engine_hold_t *h, const char *name, size_t len)
{
    assert(len >= 1 && len <= HF_NAME_BYTES_MAX);
    h->customer_len = (uint8_t)len;
    if (len <= ENGINE_INLINE_NAME_BYTES) {
        memcpy(h->customer.text, name, len);
    } else {
        h->customer.name = name_ref(e, name, len);
    }
}

/* Whether a finished hold's order_ref slot may name a text: the order of a
 * committed hold, or the reason a released one was released for. */
static bool has_ref_slot(const engine_hold_t *h)
{
    return h->state == ENGINE_HOLD_COMMITTED_STATE || h->state == ENGINE_HOLD_RELEASED_STATE;
}

/* A committed hold's order_ref or a released one's reason (hold_finish left
 * ENGINE_NONE in its place). */
static void hold_set_order_ref(engine_t *e, engine_hold_t *h, const char *ref, size_t len)
{
    assert(has_ref_slot(h) && h->order_ref == ENGINE_NONE);
    assert(len <= HF_NAME_BYTES_MAX);
    if (len > 0) {
        h->order_ref = name_ref(e, ref, len);
    }
}

/* ------------------------------------------------------------- timer heap */

static bool heap_before(const engine_t *e, uint32_t a, uint32_t b)
{
    if (e->heap_ms[a] != e->heap_ms[b]) {
        return e->heap_ms[a] < e->heap_ms[b];
    }
    return e->holds[e->heap_slot[a]].id < e->holds[e->heap_slot[b]].id;
}

static void heap_swap(engine_t *e, uint32_t a, uint32_t b)
{
    int64_t ms = e->heap_ms[a];
    uint32_t slot = e->heap_slot[a];
    e->heap_ms[a] = e->heap_ms[b];
    e->heap_slot[a] = e->heap_slot[b];
    e->heap_ms[b] = ms;
    e->heap_slot[b] = slot;
    e->holds[e->heap_slot[a]].heap_index = a;
    e->holds[e->heap_slot[b]].heap_index = b;
}

static void heap_up(engine_t *e, uint32_t i)
{
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!heap_before(e, i, parent)) {
            break;
        }
        heap_swap(e, i, parent);
        i = parent;
    }
}

static void heap_down(engine_t *e, uint32_t i)
{
    for (;;) {
        uint32_t left = 2 * i + 1;
        uint32_t best = i;
        if (left < e->heap_count && heap_before(e, left, best)) {
            best = left;
        }
        if (left + 1 < e->heap_count && heap_before(e, left + 1, best)) {
            best = left + 1;
        }
        if (best == i) {
            return;
        }
        heap_swap(e, i, best);
        i = best;
    }
}

static void heap_push(engine_t *e, uint32_t slot)
{
    assert(e->heap_count < e->config.holds_max);
    uint32_t i = e->heap_count++;
    e->heap_ms[i] = e->holds[slot].expires_ms;
    e->heap_slot[i] = slot;
    e->holds[slot].heap_index = i;
    heap_up(e, i);
}

static void heap_remove(engine_t *e, uint32_t slot)
{
    uint32_t i = e->holds[slot].heap_index;
    assert(i < e->heap_count && e->heap_slot[i] == slot);
    uint32_t last = --e->heap_count;
    if (i != last) {
        heap_swap(e, i, last);
        heap_down(e, i);
        heap_up(e, i);
    }
    e->holds[slot].heap_index = ENGINE_NONE;
}

/* Called after a hold's expires_ms grew. */
static void heap_later(engine_t *e, uint32_t slot)
{
    uint32_t i = e->holds[slot].heap_index;
    e->heap_ms[i] = e->holds[slot].expires_ms;
    heap_down(e, i);
}

int64_t engine_next_expiry_ms(const engine_t *e)
{
    return e->heap_count == 0 ? INT64_MAX : e->heap_ms[0];
}

/* ------------------------------------------------------------------- lines */

static uint32_t chunks_needed(uint32_t line_count)
{
    return line_count <= 1 ? 0 : (line_count - 1 + ENGINE_CHUNK_LINES - 1) / ENGINE_CHUNK_LINES;
}

static uint32_t chunks_available(const engine_t *e)
{
    return e->chunks_max - e->chunk_hwm + e->chunk_free_count;
}

static uint32_t chunk_alloc(engine_t *e)
{
    uint32_t c;
    if (e->chunk_free != ENGINE_NONE) {
        c = e->chunk_free;
        e->chunk_free = e->chunks[c].next;
        e->chunk_free_count--;
    } else {
        assert(e->chunk_hwm < e->chunks_max);
        c = e->chunk_hwm++;
    }
    e->chunks[c].next = ENGINE_NONE;
    e->chunks[c].count = 0;
    return c;
}

static void chunks_free(engine_t *e, uint32_t c)
{
    while (c != ENGINE_NONE) {
        uint32_t next = e->chunks[c].next;
        e->chunks[c].next = e->chunk_free;
        e->chunks[c].count = 0;
        e->chunk_free = c;
        e->chunk_free_count++;
        c = next;
    }
}

/* Copies a hold's lines out, in the order they were requested. */
static uint16_t hold_lines(const engine_t *e, const engine_hold_t *h, engine_line_view_t *out)
{
    uint16_t n = 0;
    out[n++] = (engine_line_view_t){.sku_index = h->sku0, .qty = h->qty0};
    for (uint32_t c = h->chunk; c != ENGINE_NONE; c = e->chunks[c].next) {
        for (uint32_t i = 0; i < e->chunks[c].count; i++) {
            out[n++] = e->chunks[c].lines[i];
        }
    }
    assert(n == h->line_count);
    return n;
}

/* Stores lines 2..n of a hold in chunks; chunks_available() was checked. */
static uint32_t chunks_store(engine_t *e, const engine_line_view_t *lines, uint16_t count)
{
    uint32_t first = ENGINE_NONE;
    uint32_t last = ENGINE_NONE;
    for (uint16_t i = 1; i < count; i++) {
        if (last == ENGINE_NONE || e->chunks[last].count == ENGINE_CHUNK_LINES) {
            uint32_t c = chunk_alloc(e);
            if (last == ENGINE_NONE) {
                first = c;
            } else {
                e->chunks[last].next = c;
            }
            last = c;
        }
        e->chunks[last].lines[e->chunks[last].count++] = lines[i];
    }
    return first;
}

/* ------------------------------------------------------------- hold slots */

static void free_list_push(engine_t *e, uint32_t slot)
{
    engine_hold_t *h = &e->holds[slot];
    h->state = ENGINE_HOLD_FREE;
    h->prev = ENGINE_NONE;
    h->next = e->hold_free;
    if (e->hold_free != ENGINE_NONE) {
        e->holds[e->hold_free].prev = slot;
    }
    e->hold_free = slot;
}

static void free_list_remove(engine_t *e, uint32_t slot)
{
    engine_hold_t *h = &e->holds[slot];
    assert(h->state == ENGINE_HOLD_FREE);
    if (h->prev != ENGINE_NONE) {
        e->holds[h->prev].next = h->next;
    } else {
        assert(e->hold_free == slot);
        e->hold_free = h->next;
    }
    if (h->next != ENGINE_NONE) {
        e->holds[h->next].prev = h->prev;
    }
}

/* Forgets the oldest finished hold, whose id reads as not found from now
 * on, and returns its slot, which is in no list: the caller frees it or
 * places a hold in it at once. */
static uint32_t forget_oldest_finished(engine_t *e)
{
    uint32_t slot = e->finished_head;
    assert(slot != ENGINE_NONE);
    engine_hold_t *h = &e->holds[slot];
    assert(h->state > ENGINE_HOLD_ACTIVE);
    e->finished_head = h->next;
    if (e->finished_head == ENGINE_NONE) {
        e->finished_tail = ENGINE_NONE;
    }
    if (h->customer_len > ENGINE_INLINE_NAME_BYTES) {
        name_unref(e, h->customer.name);
    }
    if (has_ref_slot(h) && h->order_ref != ENGINE_NONE) {
        name_unref(e, h->order_ref);
    }
    e->finished_chunks -= chunks_needed(h->line_count);
    chunks_free(e, h->chunk);
    h->chunk = ENGINE_NONE;
    h->state = ENGINE_HOLD_FREE;
    e->stats.holds_retained--;
    e->stats.holds_evicted++;
    return slot;
}

static void evict_oldest_finished(engine_t *e)
{
    free_list_push(e, forget_oldest_finished(e));
}

static bool slot_available(const engine_t *e)
{
    return e->hold_free != ENGINE_NONE || e->hold_hwm < e->config.holds_max ||
           e->finished_head != ENGINE_NONE;
}

/* Takes a free slot, evicting the oldest finished hold if none is free. */
static uint32_t slot_take(engine_t *e)
{
    if (e->hold_free == ENGINE_NONE && e->hold_hwm == e->config.holds_max) {
        /* What evicting it onto the empty free list and taking the free
         * list's head would do, without the two list updates. */
        return forget_oldest_finished(e);
    }
    if (e->hold_free != ENGINE_NONE) {
        uint32_t slot = e->hold_free;
        free_list_remove(e, slot);
        return slot;
    }
    assert(e->hold_hwm < e->config.holds_max);
    return e->hold_hwm++;
}

/* Takes the slot a recorded id names (recovery). The slot is free in the
 * replaying engine exactly when it was free in the engine that issued it,
 * because both saw the same ops at the same times. */
static uint32_t slot_take_exact(engine_t *e, uint32_t slot)
{
    assert(slot < e->config.holds_max);
    while (e->hold_hwm <= slot) {
        free_list_push(e, e->hold_hwm++);
    }
    if (e->holds[slot].state != ENGINE_HOLD_FREE) {
        /* The issuing engine evicted the oldest finished hold for this. */
        assert(e->finished_head == slot);
        evict_oldest_finished(e);
    }
    free_list_remove(e, slot);
    return slot;
}

static engine_hold_t *hold_find(const engine_t *e, uint64_t id)
{
    uint64_t slot = id & SLOT_MASK;
    if (id == 0 || slot >= e->hold_hwm) {
        return NULL;
    }
    engine_hold_t *h = &e->holds[slot];
    if (h->state == ENGINE_HOLD_FREE || h->id != id) {
        return NULL;
    }
    return h;
}

static uint32_t slot_of(const engine_t *e, const engine_hold_t *h)
{
    return (uint32_t)(h - e->holds);
}

static void hold_view_fill(const engine_t *e, const engine_hold_t *h, engine_hold_view_t *out);

/* Gives a finished hold's line back: a sale moves its units from held to
 * sold, which is implied; any other end makes them available again. */
static void line_finish(engine_t *e, uint32_t sku_index, uint32_t qty, engine_hold_state_t to)
{
    engine_sku_t *s = &e->skus[sku_index];
    assert(s->held >= qty);
    s->held -= qty;
    e->stats.units_held -= qty;
    if (to == ENGINE_HOLD_COMMITTED_STATE) {
        e->stats.units_sold += qty;
    } else {
        s->available += qty;
    }
}

/* Moves an active hold to a final state and returns its units. */
static void hold_finish(engine_t *e, engine_hold_t *h, engine_hold_state_t to, int64_t at_ms)
{
    assert(h->state == ENGINE_HOLD_ACTIVE);
    assert(to == ENGINE_HOLD_COMMITTED_STATE || to == ENGINE_HOLD_RELEASED_STATE ||
           to == ENGINE_HOLD_EXPIRED_STATE);
    uint32_t slot = slot_of(e, h);
    /* In place, not through hold_lines(): most holds have the one line. */
    line_finish(e, h->sku0, h->qty0, to);
    uint32_t n = 1;
    for (uint32_t c = h->chunk; c != ENGINE_NONE; c = e->chunks[c].next) {
        for (uint32_t i = 0; i < e->chunks[c].count; i++) {
            line_finish(e, e->chunks[c].lines[i].sku_index, e->chunks[c].lines[i].qty, to);
        }
        n += e->chunks[c].count;
    }
    assert(n == h->line_count);
    heap_remove(e, slot);
    h->state = (uint8_t)to;
    h->finished_ms = at_ms;
    h->next = ENGINE_NONE;
    if (e->finished_tail == ENGINE_NONE) {
        e->finished_head = slot;
    } else {
        assert(e->holds[e->finished_tail].finished_ms <= at_ms);
        e->holds[e->finished_tail].next = slot;
    }
    e->finished_tail = slot;
    e->stats.holds_active--;
    e->stats.holds_retained++;
    e->finished_chunks += chunks_needed(h->line_count);
}

/* ------------------------------------------------------- idempotency keys */

static uint64_t idem_hash_of(const engine_t *e, uint32_t entry)
{
    return hash_bytes(hash_init(), e->idem[entry].key, e->idem[entry].key_len);
}

static engine_idem_t *idem_find(const engine_t *e, const char *key, size_t len)
{
    uint32_t b = (uint32_t)hash_bytes(hash_init(), key, len) & e->idem_index_mask;
    while (e->idem_index[b] != 0) {
        engine_idem_t *k = &e->idem[e->idem_index[b] - 1];
        if (k->key_len == len && memcmp(k->key, key, len) == 0) {
            return k;
        }
        b = (b + 1) & e->idem_index_mask;
    }
    return NULL;
}

static void idem_add(engine_t *e, const char *key, size_t len, uint64_t request_hash,
                     uint64_t hold_id, int64_t at_ms)
{
    assert(e->idem_count < e->config.idem_keys_max);
    assert(len >= 1 && len <= HF_IDEM_KEY_BYTES_MAX);
    uint32_t i = (e->idem_head + e->idem_count) % e->config.idem_keys_max;
    engine_idem_t *k = &e->idem[i];
    memcpy(k->key, key, len);
    k->key_len = (uint8_t)len;
    k->request_hash = request_hash;
    k->hold_id = hold_id;
    k->at_ms = at_ms;
    index_insert(e->idem_index, e->idem_index_mask, idem_hash_of(e, i), i);
    e->idem_count++;
    e->stats.idem_keys = e->idem_count;
}

static void idem_forget_oldest(engine_t *e)
{
    assert(e->idem_count > 0);
    uint32_t i = e->idem_head;
    uint32_t b = (uint32_t)idem_hash_of(e, i) & e->idem_index_mask;
    while (e->idem_index[b] != i + 1) {
        assert(e->idem_index[b] != 0);
        b = (b + 1) & e->idem_index_mask;
    }
    index_delete(e, e->idem_index, e->idem_index_mask, b, idem_hash_of);
    e->idem[i].key_len = 0;
    e->idem_head = (e->idem_head + 1) % e->config.idem_keys_max;
    e->idem_count--;
    e->stats.idem_keys = e->idem_count;
}

uint64_t engine_hold_request_hash(const engine_hold_create_t *req)
{
    uint64_t h = hash_init();
    h = hash_u64(h, req->customer_len);
    h = hash_bytes(h, req->customer, req->customer_len);
    h = hash_u64(h, req->ip_len);
    h = hash_bytes(h, req->ip, req->ip_len);
    h = hash_u64(h, req->fingerprint_len);
    h = hash_bytes(h, req->fingerprint, req->fingerprint_len);
    h = hash_u64(h, (uint64_t)req->ttl_ms);
    h = hash_u64(h, req->line_count);
    for (uint16_t i = 0; i < req->line_count; i++) {
        h = hash_u64(h, req->lines[i].sku_len);
        h = hash_bytes(h, req->lines[i].sku, req->lines[i].sku_len);
        h = hash_u64(h, req->lines[i].qty);
    }
    return h;
}

/* ------------------------------------------------------------------ time */

uint32_t engine_advance(engine_t *e, int64_t now_ms)
{
    assert(now_ms >= e->now_ms);
    e->now_ms = now_ms;
    uint32_t expired = 0;
    while (e->heap_count > 0 && e->heap_ms[0] <= now_ms) {
        engine_hold_t *h = &e->holds[e->heap_slot[0]];
        hold_finish(e, h, ENGINE_HOLD_EXPIRED_STATE, h->expires_ms);
        e->stats.holds_expired++;
        expired++;
    }
    while (e->finished_head != ENGINE_NONE &&
           e->holds[e->finished_head].finished_ms + HF_FINISHED_RETENTION_MS <= now_ms) {
        evict_oldest_finished(e);
    }
    while (e->idem_count > 0 && e->idem[e->idem_head].at_ms + HF_IDEM_RETENTION_MS <= now_ms) {
        idem_forget_oldest(e);
    }
    return expired;
}

bool engine_expire_next(engine_t *e, int64_t now_ms, engine_hold_view_t *out)
{
    assert(now_ms >= e->now_ms);
    if (e->heap_count == 0 || e->heap_ms[0] > now_ms) {
        return false;
    }
    engine_hold_t *h = &e->holds[e->heap_slot[0]];
    if (h->expires_ms > e->now_ms) {
        e->now_ms = h->expires_ms;
    }
    hold_finish(e, h, ENGINE_HOLD_EXPIRED_STATE, h->expires_ms);
    e->stats.holds_expired++;
    hold_view_fill(e, h, out);
    return true;
}

bool engine_idem_lookup(const engine_t *e, const char *key, size_t key_len,
                        uint64_t *request_hash_out, uint64_t *hold_id_out)
{
    const engine_idem_t *k = idem_find(e, key, key_len);
    if (k == NULL) {
        return false;
    }
    *request_hash_out = k->request_hash;
    *hold_id_out = k->hold_id;
    return true;
}

/* ------------------------------------------------------------------ holds */

static void assert_create_valid(const engine_hold_create_t *r)
{
    assert(r->customer_len >= 1 && r->customer_len <= HF_NAME_BYTES_MAX);
    assert(r->idem_key_len <= HF_IDEM_KEY_BYTES_MAX);
    assert(r->ip_len <= HF_IP_TEXT_BYTES_MAX && r->fingerprint_len <= HF_NAME_BYTES_MAX);
    assert(r->ttl_ms >= 1 && r->ttl_ms <= HF_TTL_MS_MAX);
    assert(r->line_count >= 1 && r->line_count <= HF_LINES_PER_HOLD_MAX);
    for (uint16_t i = 0; i < r->line_count; i++) {
        assert(r->lines[i].sku_len >= 1 && r->lines[i].sku_len <= HF_SKU_BYTES_MAX);
        assert(r->lines[i].qty >= 1 && r->lines[i].qty <= HF_QTY_MAX);
    }
}

/* Resolves and checks every line; on success lines[] holds sku indexes.
 * Nothing changes either way: a hold is all lines or none. */
static engine_result_t create_check_lines(const engine_t *e, const engine_hold_create_t *r,
                                          engine_line_view_t *lines, engine_outcome_t *o)
{
    for (uint16_t i = 0; i < r->line_count; i++) {
        const engine_line_t *l = &r->lines[i];
        if (r->looked_up) {
            lines[i].sku_index = r->sku_index[i];
            assert(r->sku_index[i] < e->sku_count &&
                   sku_matches(e, r->sku_index[i], l->sku, l->sku_len));
        } else if (!engine_sku_find(e, l->sku, l->sku_len, &lines[i].sku_index)) {
            o->sku_index = i; /* for an unknown sku: the line's index */
            return ENGINE_SKU_NOT_FOUND;
        }
        lines[i].qty = l->qty;
        for (uint16_t j = 0; j < i; j++) {
            if (lines[j].sku_index == lines[i].sku_index) {
                o->sku_index = lines[i].sku_index;
                return ENGINE_DUPLICATE_LINE;
            }
        }
    }
    for (uint16_t i = 0; i < r->line_count; i++) {
        int64_t available = e->skus[lines[i].sku_index].available;
        if (available < (int64_t)lines[i].qty) {
            o->sku_index = lines[i].sku_index;
            o->available = available;
            return ENGINE_INSUFFICIENT_STOCK;
        }
    }
    return ENGINE_OK;
}

/* Finished holds give up their slot and lines when a new hold needs them,
 * so room counts what evicting every finished hold would free. */
static engine_result_t create_check_room(const engine_t *e, const engine_hold_create_t *r)
{
    if (r->hold_id == 0 && !slot_available(e)) {
        return ENGINE_HOLDS_FULL;
    }
    if (chunks_available(e) + e->finished_chunks < chunks_needed(r->line_count)) {
        return ENGINE_LINES_FULL;
    }
    if (r->idem_key_len > 0 && e->idem_count == e->config.idem_keys_max) {
        return ENGINE_IDEM_FULL;
    }
    return ENGINE_OK;
}

/* Evicts the oldest finished holds until the lines fit (room was checked).
 * Deterministic, so a replay evicts exactly what the original did. */
static void make_room_for_lines(engine_t *e, uint16_t line_count)
{
    while (chunks_available(e) < chunks_needed(line_count)) {
        evict_oldest_finished(e);
    }
}

static uint64_t create_place(engine_t *e, const engine_hold_create_t *r,
                             const engine_line_view_t *lines, int64_t now_ms)
{
    uint32_t slot;
    uint64_t id;
    make_room_for_lines(e, r->line_count);
    if (r->hold_id != 0) {
        slot = slot_take_exact(e, (uint32_t)(r->hold_id & SLOT_MASK));
        id = r->hold_id;
        if ((id >> SLOT_BITS) > e->hold_seq) {
            e->hold_seq = id >> SLOT_BITS;
        }
    } else {
        slot = slot_take(e);
        assert(e->hold_seq < SEQ_MAX);
        id = (++e->hold_seq << SLOT_BITS) | slot;
    }
    engine_hold_t *h = &e->holds[slot];
    h->id = id;
    h->created_ms = now_ms;
    h->expires_ms = now_ms + r->ttl_ms;
    h->finished_ms = 0;
    hold_set_customer(e, h, r->customer, r->customer_len);
    h->next = ENGINE_NONE;
    h->prev = ENGINE_NONE;
    h->line_count = r->line_count;
    h->sku0 = lines[0].sku_index;
    h->qty0 = lines[0].qty;
    h->chunk = chunks_store(e, lines, r->line_count);
    h->state = ENGINE_HOLD_ACTIVE;
    for (uint16_t i = 0; i < r->line_count; i++) {
        e->skus[lines[i].sku_index].held += lines[i].qty;
        e->skus[lines[i].sku_index].available -= lines[i].qty;
        e->stats.units_held += lines[i].qty;
    }
    heap_push(e, slot);
    e->stats.holds_active++;
    e->stats.holds_created++;
    return id;
}

static void apply_hold_create(engine_t *e, const engine_op_t *op, engine_outcome_t *o)
{
    const engine_hold_create_t *r = &op->u.hold_create;
    assert_create_valid(r);
    uint64_t request_hash = 0;
    if (r->idem_key_len > 0) {
        request_hash = r->request_hash != 0 ? r->request_hash : engine_hold_request_hash(r);
        const engine_idem_t *k = r->looked_up ? NULL : idem_find(e, r->idem_key, r->idem_key_len);
        if (k != NULL) {
            o->result = k->request_hash == request_hash ? ENGINE_OK : ENGINE_IDEMPOTENCY_MISMATCH;
            o->replayed = o->result == ENGINE_OK;
            o->hold_id = k->hold_id;
            e->stats.idem_replays += o->replayed;
            return;
        }
    }
    engine_line_view_t lines[HF_LINES_PER_HOLD_MAX];
    o->result = create_check_lines(e, r, lines, o);
    if (o->result == ENGINE_OK) {
        o->result = create_check_room(e, r);
    }
    if (o->result != ENGINE_OK) {
        return;
    }
    o->hold_id = create_place(e, r, lines, op->now_ms);
    if (r->idem_key_len > 0) {
        idem_add(e, r->idem_key, r->idem_key_len, request_hash, o->hold_id, op->now_ms);
    }
    o->changed = true;
}

/* The result of acting on a hold that is no longer active. */
static engine_result_t finished_result(const engine_hold_t *h)
{
    switch (h->state) {
    case ENGINE_HOLD_COMMITTED_STATE:
        return ENGINE_HOLD_COMMITTED;
    case ENGINE_HOLD_RELEASED_STATE:
        return ENGINE_HOLD_RELEASED;
    case ENGINE_HOLD_EXPIRED_STATE:
        return ENGINE_HOLD_EXPIRED;
    default:
        assert(0 && "finished_result of an active hold");
        return ENGINE_HOLD_NOT_FOUND;
    }
}

static void apply_hold_commit(engine_t *e, const engine_op_t *op, engine_outcome_t *o)
{
    o->hold_id = op->u.hold.hold_id;
    engine_hold_t *h = hold_find(e, o->hold_id);
    if (h == NULL) {
        o->result = ENGINE_HOLD_NOT_FOUND;
    } else if (h->state == ENGINE_HOLD_ACTIVE) {
        hold_finish(e, h, ENGINE_HOLD_COMMITTED_STATE, op->now_ms);
        hold_set_order_ref(e, h, op->u.hold.order_ref, op->u.hold.order_ref_len);
        e->stats.holds_committed++;
        o->changed = true;
    } else if (h->state != ENGINE_HOLD_COMMITTED_STATE) {
        o->result = finished_result(h); /* committing twice is not an error */
    }
}

static void apply_hold_release(engine_t *e, const engine_op_t *op, engine_outcome_t *o)
{
    o->hold_id = op->u.hold.hold_id;
    engine_hold_t *h = hold_find(e, o->hold_id);
    if (h == NULL) {
        o->result = ENGINE_HOLD_NOT_FOUND;
    } else if (h->state == ENGINE_HOLD_ACTIVE) {
        hold_finish(e, h, ENGINE_HOLD_RELEASED_STATE, op->now_ms);
        hold_set_order_ref(e, h, op->u.hold.order_ref, op->u.hold.order_ref_len);
        e->stats.holds_released++;
        o->changed = true;
    } else if (h->state == ENGINE_HOLD_COMMITTED_STATE) {
        o->result = ENGINE_HOLD_COMMITTED; /* a sale is not undone by a release */
    }
    /* Releasing a released or expired hold is harmless: its units are free. */
}

static void apply_hold_extend(engine_t *e, const engine_op_t *op, engine_outcome_t *o)
{
    o->hold_id = op->u.hold.hold_id;
    int64_t ttl_ms = op->u.hold.ttl_ms;
    assert(ttl_ms >= 1 && ttl_ms <= HF_TTL_MS_MAX);
    engine_hold_t *h = hold_find(e, o->hold_id);
    if (h == NULL) {
        o->result = ENGINE_HOLD_NOT_FOUND;
    } else if (h->state != ENGINE_HOLD_ACTIVE) {
        o->result = finished_result(h);
    } else if (op->now_ms + ttl_ms > h->expires_ms) {
        /* An extension never shortens a hold: a late, smaller retry of an
         * extend must not cut a buyer's time. */
        h->expires_ms = op->now_ms + ttl_ms;
        heap_later(e, slot_of(e, h));
        o->changed = true;
    }
}

engine_outcome_t engine_apply(engine_t *e, const engine_op_t *op)
{
    engine_advance(e, op->now_ms);
    engine_outcome_t o = {.result = ENGINE_OK};
    switch (op->kind) {
    case ENGINE_OP_SKU_PUT:
        apply_sku_put(e, op, &o);
        break;
    case ENGINE_OP_HOLD_CREATE:
        apply_hold_create(e, op, &o);
        break;
    case ENGINE_OP_HOLD_COMMIT:
        apply_hold_commit(e, op, &o);
        break;
    case ENGINE_OP_HOLD_RELEASE:
        apply_hold_release(e, op, &o);
        break;
    case ENGINE_OP_HOLD_EXTEND:
        apply_hold_extend(e, op, &o);
        break;
    default:
        assert(0 && "unknown op kind");
        o.result = ENGINE_HOLD_NOT_FOUND;
    }
    assert(o.result == ENGINE_OK || !o.changed);
    /* Field by field: each load then matches the store that wrote it. */
    return (engine_outcome_t){.result = o.result,
                              .changed = o.changed,
                              .replayed = o.replayed,
                              .created = o.created,
                              .hold_id = o.hold_id,
                              .sku_index = o.sku_index,
                              .available = o.available};
}

/* ------------------------------------------------------------------ reads */

static void hold_view_fill(const engine_t *e, const engine_hold_t *h, engine_hold_view_t *out)
{
    out->id = h->id;
    out->state = (engine_hold_state_t)h->state;
    out->customer = h->customer_len <= ENGINE_INLINE_NAME_BYTES ? h->customer.text
                                                                : e->names[h->customer.name].text;
    out->customer_len = h->customer_len;
    out->created_ms = h->created_ms;
    out->expires_ms = h->expires_ms;
    out->finished_ms = h->state == ENGINE_HOLD_ACTIVE ? 0 : h->finished_ms;
    bool has_ref = has_ref_slot(h) && h->order_ref != ENGINE_NONE;
    out->order_ref = has_ref ? e->names[h->order_ref].text : NULL;
    out->order_ref_len = has_ref ? e->names[h->order_ref].len : 0;
    out->line_count = hold_lines(e, h, out->lines);
}

engine_result_t engine_hold_view(const engine_t *e, uint64_t hold_id, engine_hold_view_t *out)
{
    const engine_hold_t *h = hold_find(e, hold_id);
    if (h == NULL) {
        return ENGINE_HOLD_NOT_FOUND;
    }
    hold_view_fill(e, h, out);
    return ENGINE_OK;
}

engine_stats_t engine_stats(const engine_t *e)
{
    return e->stats;
}

void engine_count_idem_replay(engine_t *e)
{
    e->stats.idem_replays++;
}

int64_t engine_now_ms(const engine_t *e)
{
    return e->now_ms;
}

bool engine_raise_hold_seq(engine_t *e, uint64_t seq)
{
    assert(seq <= SEQ_MAX);
    if (seq <= e->hold_seq) {
        return false;
    }
    e->hold_seq = seq;
    return true;
}

uint64_t engine_hold_seq(const engine_t *e)
{
    return e->hold_seq;
}

engine_config_t engine_config(const engine_t *e)
{
    return e->config;
}

uint32_t engine_hold_slots_used(const engine_t *e)
{
    return e->hold_hwm;
}

engine_slot_view_t engine_slot_view(const engine_t *e, uint32_t slot)
{
    assert(slot < e->hold_hwm);
    const engine_hold_t *h = &e->holds[slot];
    if (h->state == ENGINE_HOLD_FREE) {
        return (engine_slot_view_t){.id = 0, .state = ENGINE_HOLD_FREE};
    }
    return (engine_slot_view_t){.id = h->id, .state = h->state, .line_count = h->line_count};
}

static const char base62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

size_t engine_id_format(char kind, uint64_t id, char *out)
{
    char digits[16];
    size_t n = 0;
    do {
        digits[n++] = base62[id % 62];
        id /= 62;
    } while (id > 0);
    out[0] = kind;
    out[1] = '_';
    for (size_t i = 0; i < n; i++) {
        out[2 + i] = digits[n - 1 - i];
    }
    out[2 + n] = '\0';
    assert(2 + n <= ENGINE_HOLD_ID_TEXT_MAX);
    return 2 + n;
}

bool engine_id_parse(char kind, const char *text, size_t len, uint64_t *id_out)
{
    if (len < 3 || len > 2 + 11 || text[0] != kind || text[1] != '_') {
        return false;
    }
    uint64_t id = 0;
    for (size_t i = 2; i < len; i++) {
        const char *p = memchr(base62, text[i], 62);
        if (text[i] == '\0' || p == NULL) {
            return false;
        }
        uint64_t d = (uint64_t)(p - base62);
        if (id > (UINT64_MAX - d) / 62) {
            return false;
        }
        id = id * 62 + d;
    }
    /* Only the canonical spelling is an id: no leading zeros. */
    if (id == 0 || (len > 3 && text[2] == '0')) {
        return false;
    }
    *id_out = id;
    return true;
}

size_t engine_hold_id_format(uint64_t id, char *out)
{
    return engine_id_format('h', id, out);
}

bool engine_hold_id_parse(const char *text, size_t len, uint64_t *id_out)
{
    return engine_id_parse('h', text, len, id_out);
}

uint32_t engine_hold_slot(uint64_t hold_id)
{
    return (uint32_t)(hold_id & SLOT_MASK);
}

uint64_t engine_hold_id_seq(uint64_t hold_id)
{
    return hold_id >> SLOT_BITS;
}

/* --------------------------------------------------------------- snapshot */

void engine_each_hold(const engine_t *e, engine_hold_visit_fn visit, void *ctx)
{
    engine_hold_view_t view;
    for (uint32_t slot = 0; slot < e->hold_hwm; slot++) {
        if (e->holds[slot].state == ENGINE_HOLD_ACTIVE) {
            hold_view_fill(e, &e->holds[slot], &view);
            visit(ctx, &view);
        }
    }
    for (uint32_t slot = e->finished_head; slot != ENGINE_NONE; slot = e->holds[slot].next) {
        hold_view_fill(e, &e->holds[slot], &view);
        visit(ctx, &view);
    }
}

void engine_each_idem(const engine_t *e, engine_idem_visit_fn visit, void *ctx)
{
    for (uint32_t i = 0; i < e->idem_count; i++) {
        visit(ctx, &e->idem[(e->idem_head + i) % e->config.idem_keys_max]);
    }
}

void engine_each_free_slot(const engine_t *e, engine_slot_visit_fn visit, void *ctx)
{
    for (uint32_t slot = e->hold_free; slot != ENGINE_NONE; slot = e->holds[slot].next) {
        visit(ctx, slot);
    }
}

/* Whether each of slots is a free slot below hwm, and none is named twice. */
static bool free_slots_distinct(const engine_t *e, const uint32_t *slots, uint32_t count)
{
    uint64_t *seen = calloc(((size_t)e->hold_hwm + 63) / 64 + 1, sizeof *seen);
    bool ok = seen != NULL;
    for (uint32_t i = 0; ok && i < count; i++) {
        uint32_t s = slots[i];
        ok = s < e->hold_hwm && e->holds[s].state == ENGINE_HOLD_FREE &&
             (seen[s / 64] & (1ull << (s % 64))) == 0;
        if (ok) {
            seen[s / 64] |= 1ull << (s % 64);
        }
    }
    free(seen);
    return ok;
}

bool engine_restore_free_slots(engine_t *e, uint32_t hold_hwm, const uint32_t *slots,
                               uint32_t count)
{
    if (hold_hwm < e->hold_hwm || hold_hwm > e->config.holds_max) {
        return false;
    }
    while (e->hold_hwm < hold_hwm) {
        free_list_push(e, e->hold_hwm++);
    }
    /* Every free slot below hwm must be listed, once: count them first. */
    uint32_t free_now = 0;
    for (uint32_t slot = e->hold_free; slot != ENGINE_NONE; slot = e->holds[slot].next) {
        free_now++;
    }
    if (free_now != count || !free_slots_distinct(e, slots, count)) {
        return false;
    }
    /* Rebuilt back to front, so the first listed is taken first again. */
    e->hold_free = ENGINE_NONE;
    for (uint32_t i = count; i-- > 0;) {
        free_list_push(e, slots[i]);
    }
    return true;
}

bool engine_restore_time(engine_t *e, int64_t now_ms, uint64_t hold_seq)
{
    /* Read from a file: out of range is damage to report, not a crash. */
    if (now_ms < e->now_ms || hold_seq < e->hold_seq || hold_seq > SEQ_MAX) {
        return false;
    }
    e->now_ms = now_ms;
    e->hold_seq = hold_seq;
    return true;
}

engine_result_t engine_restore_sku(engine_t *e, const char *sku, size_t sku_len, int64_t stock,
                                   int64_t sold)
{
    uint32_t existing;
    assert(!engine_sku_find(e, sku, sku_len, &existing));
    assert(stock >= 0 && stock <= HF_STOCK_MAX && sold >= 0 && sold <= stock);
    if (e->sku_count == e->config.skus_max) {
        return ENGINE_SKUS_FULL;
    }
    uint32_t i = sku_add(e, sku, sku_len, stock);
    e->skus[i].available -= sold;
    e->stats.units_sold += sold;
    return ENGINE_OK;
}

/* Restores an active hold into the heap, or a finished one at the FIFO's
 * tail; finished holds must come oldest first, after all active ones. */
engine_result_t engine_restore_hold(engine_t *e, const engine_hold_view_t *v)
{
    assert(v->line_count >= 1 && v->line_count <= HF_LINES_PER_HOLD_MAX);
    assert(v->state >= ENGINE_HOLD_ACTIVE && v->state <= ENGINE_HOLD_EXPIRED_STATE);
    uint32_t slot = (uint32_t)(v->id & SLOT_MASK);
    if (slot >= e->config.holds_max) {
        return ENGINE_HOLDS_FULL;
    }
    if (chunks_available(e) < chunks_needed(v->line_count)) {
        return ENGINE_LINES_FULL; /* a snapshot restores no finished hold early */
    }
    slot_take_exact(e, slot);
    engine_hold_t *h = &e->holds[slot];
    h->id = v->id;
    h->created_ms = v->created_ms;
    h->expires_ms = v->expires_ms;
    h->finished_ms = v->finished_ms;
    hold_set_customer(e, h, v->customer, v->customer_len);
    h->next = ENGINE_NONE;
    h->prev = ENGINE_NONE;
    h->line_count = v->line_count;
    h->sku0 = v->lines[0].sku_index;
    h->qty0 = v->lines[0].qty;
    h->chunk = chunks_store(e, v->lines, v->line_count);
    h->state = ENGINE_HOLD_ACTIVE;
    for (uint16_t i = 0; i < v->line_count; i++) {
        assert(v->lines[i].sku_index < e->sku_count);
        e->skus[v->lines[i].sku_index].held += v->lines[i].qty;
        e->skus[v->lines[i].sku_index].available -= v->lines[i].qty;
        e->stats.units_held += v->lines[i].qty;
    }
    heap_push(e, slot);
    e->stats.holds_active++;
    if (v->state != ENGINE_HOLD_ACTIVE) {
        /* Finishing it again puts the units where they were (sold or free)
         * and the hold at the FIFO's tail. */
        hold_finish(e, h, v->state, v->finished_ms);
        if (has_ref_slot(h)) {
            hold_set_order_ref(e, h, v->order_ref, v->order_ref_len);
        }
        if (v->state == ENGINE_HOLD_COMMITTED_STATE) {
            /* restore_sku already counted the sold units: finishing the
             * hold sold them twice, so give them back to available. */
            for (uint16_t i = 0; i < v->line_count; i++) {
                e->skus[v->lines[i].sku_index].available += v->lines[i].qty;
                e->stats.units_sold -= v->lines[i].qty;
            }
        }
    }
    return ENGINE_OK;
}

bool engine_restore_fits_hold(const engine_t *e, const engine_hold_view_t *v)
{
    uint64_t slot = v->id & SLOT_MASK;
    if (slot >= e->config.holds_max || (v->id >> SLOT_BITS) > e->hold_seq ||
        (slot < e->hold_hwm && e->holds[slot].state != ENGINE_HOLD_FREE)) {
        return false; /* a slot restored twice, or an id from the future */
    }
    if (v->state != ENGINE_HOLD_ACTIVE && e->finished_tail != ENGINE_NONE &&
        e->holds[e->finished_tail].finished_ms > v->finished_ms) {
        return false; /* finished holds come oldest first */
    }
    return true;
}

bool engine_restore_fits_idem(const engine_t *e, const engine_idem_t *entry)
{
    return idem_find(e, entry->key, entry->key_len) == NULL &&
           (e->idem_count == 0 ||
            e->idem[(e->idem_head + e->idem_count - 1) % e->config.idem_keys_max].at_ms <=
                entry->at_ms);
}

engine_result_t engine_restore_idem(engine_t *e, const engine_idem_t *entry)
{
    if (e->idem_count == e->config.idem_keys_max) {
        return ENGINE_IDEM_FULL;
    }
    assert(idem_find(e, entry->key, entry->key_len) == NULL);
    idem_add(e, entry->key, entry->key_len, entry->request_hash, entry->hold_id, entry->at_ms);
    return ENGINE_OK;
}

/* ------------------------------------------------------------------ check */

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            ok = false;                                                                        \
            goto done;                                                                         \
        }                                                                                      \
    } while (0)

/* A sku's hot record repeats the head of its name, zero past its length,
 * or lookups would miss it. */
static bool check_sku_head(const engine_t *e, uint32_t i)
{
    const engine_sku_t *s = &e->skus[i];
    if (s->id_len < 1 || s->id_len > HF_SKU_BYTES_MAX) {
        return false;
    }
    size_t head = sku_head_len(s->id_len);
    for (size_t k = head; k < ENGINE_SKU_HEAD_BYTES; k++) {
        if (s->id_head[k] != 0) {
            return false;
        }
    }
    return memcmp(s->id_head, e->sku_cold[i].id, head) == 0;
}

static bool check_skus(const engine_t *e, const int64_t *held_sum)
{
    int64_t stock = 0, held = 0, sold = 0;
    for (uint32_t i = 0; i < e->sku_count; i++) {
        const engine_sku_t *s = &e->skus[i];
        int64_t sku_stock = e->sku_cold[i].stock;
        uint32_t found;
        if (s->held < 0 || s->available < 0 || sku_sold(e, i) < 0 || sku_stock > HF_STOCK_MAX ||
            s->held != held_sum[i] || !check_sku_head(e, i) ||
            !engine_sku_find(e, e->sku_cold[i].id, s->id_len, &found) || found != i) {
            return false;
        }
        stock += sku_stock;
        held += s->held;
        sold += sku_sold(e, i);
    }
    return stock == e->stats.units_stock && held == e->stats.units_held &&
           sold == e->stats.units_sold;
}

static bool check_hold(const engine_t *e, const engine_hold_t *h, int64_t *held_sum,
                       uint32_t *name_refs)
{
    engine_line_view_t lines[HF_LINES_PER_HOLD_MAX];
    if (h->line_count < 1 || h->line_count > HF_LINES_PER_HOLD_MAX ||
        (h->id & SLOT_MASK) != (uint64_t)slot_of(e, h) || (h->id >> SLOT_BITS) > e->hold_seq ||
        h->customer_len < 1 || h->customer_len > HF_NAME_BYTES_MAX) {
        return false;
    }
    if (h->customer_len > ENGINE_INLINE_NAME_BYTES) {
        if (h->customer.name >= e->name_hwm || e->names[h->customer.name].len != h->customer_len) {
            return false;
        }
        name_refs[h->customer.name]++;
    }
    uint16_t n = hold_lines(e, h, lines);
    for (uint16_t i = 0; i < n; i++) {
        if (lines[i].sku_index >= e->sku_count || lines[i].qty < 1 || lines[i].qty > HF_QTY_MAX) {
            return false;
        }
        for (uint16_t j = 0; j < i; j++) {
            if (lines[j].sku_index == lines[i].sku_index) {
                return false;
            }
        }
        if (h->state == ENGINE_HOLD_ACTIVE) {
            held_sum[lines[i].sku_index] += lines[i].qty;
        }
    }
    if (has_ref_slot(h) && h->order_ref != ENGINE_NONE) {
        if (h->order_ref >= e->name_hwm || e->names[h->order_ref].len == 0) {
            return false;
        }
        name_refs[h->order_ref]++;
    }
    if (h->state == ENGINE_HOLD_ACTIVE) {
        return h->heap_index < e->heap_count && e->heap_slot[h->heap_index] == slot_of(e, h) &&
               e->heap_ms[h->heap_index] == h->expires_ms && h->expires_ms > e->now_ms;
    }
    return h->finished_ms <= e->now_ms;
}

static bool check_lists(const engine_t *e, uint32_t active, uint32_t finished, uint32_t free_count)
{
    uint32_t n = 0;
    for (uint32_t s = e->hold_free, prev = ENGINE_NONE; s != ENGINE_NONE;
         prev = s, s = e->holds[s].next) {
        if (e->holds[s].state != ENGINE_HOLD_FREE || e->holds[s].prev != prev || ++n > free_count) {
            return false;
        }
    }
    uint32_t f = 0;
    int64_t last_ms = INT64_MIN;
    for (uint32_t s = e->finished_head; s != ENGINE_NONE; s = e->holds[s].next) {
        const engine_hold_t *h = &e->holds[s];
        if (h->state <= ENGINE_HOLD_ACTIVE || h->finished_ms < last_ms || ++f > finished) {
            return false;
        }
        last_ms = h->finished_ms;
    }
    return n == free_count && f == finished && active == e->heap_count &&
           active == e->stats.holds_active && finished == e->stats.holds_retained;
}

static bool check_heap(const engine_t *e)
{
    for (uint32_t i = 1; i < e->heap_count; i++) {
        if (heap_before(e, i, (i - 1) / 2)) {
            return false;
        }
    }
    return true;
}

static bool check_names(const engine_t *e, const uint32_t *name_refs)
{
    uint32_t live = 0;
    for (uint32_t i = 0; i < e->name_hwm; i++) {
        if (e->names[i].len == 0) {
            continue;
        }
        live++;
        if (e->names[i].refs != name_refs[i]) {
            return false;
        }
    }
    return live == e->name_count;
}

static bool check_idem(const engine_t *e)
{
    for (uint32_t i = 0; i < e->idem_count; i++) {
        const engine_idem_t *k = &e->idem[(e->idem_head + i) % e->config.idem_keys_max];
        if (idem_find(e, k->key, k->key_len) != k || k->at_ms > e->now_ms ||
            k->at_ms + HF_IDEM_RETENTION_MS <= e->now_ms) {
            return false;
        }
    }
    return true;
}

bool engine_check(const engine_t *e)
{
    bool ok = true;
    int64_t *held_sum = calloc(e->sku_count + 1, sizeof *held_sum);
    uint32_t *name_refs = calloc(e->name_hwm + 1, sizeof *name_refs);
    CHECK(held_sum != NULL && name_refs != NULL);
    uint32_t active = 0, finished = 0, free_count = 0, chunks_kept = 0;
    for (uint32_t slot = 0; slot < e->hold_hwm; slot++) {
        const engine_hold_t *h = &e->holds[slot];
        if (h->state == ENGINE_HOLD_FREE) {
            free_count++;
            continue;
        }
        CHECK(h->state <= ENGINE_HOLD_EXPIRED_STATE);
        CHECK(check_hold(e, h, held_sum, name_refs));
        active += h->state == ENGINE_HOLD_ACTIVE;
        finished += h->state != ENGINE_HOLD_ACTIVE;
        chunks_kept += h->state != ENGINE_HOLD_ACTIVE ? chunks_needed(h->line_count) : 0;
    }
    CHECK(chunks_kept == e->finished_chunks);
    CHECK(check_lists(e, active, finished, free_count));
    CHECK(check_heap(e));
    CHECK(check_skus(e, held_sum));
    CHECK(check_names(e, name_refs));
    CHECK(check_idem(e));
done:
    free(held_sum);
    free(name_refs);
    return ok;
}
