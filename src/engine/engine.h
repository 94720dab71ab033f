/*
 * engine.h - the front door of holdfast's domain: SKUs, holds, expiry and
 * idempotency, in memory, deterministic.
 *
 * The engine is driven by the server today and by the simulator tomorrow, so
 * it does no I/O, reads no clock (every call takes now_ms), starts no thread
 * and allocates nothing after engine_init(): every table is reserved at init
 * with a fixed capacity, and a full table is an operating error the caller
 * turns into a 503, never a crash.
 *
 * Every change goes through engine_apply() with an engine_op_t, so that the
 * same value can be journaled by the store and replayed at recovery: replaying
 * the applied ops in order, with their recorded now_ms, rebuilds the same
 * state. Expiry needs no op of its own: it is a function of time, and every
 * call first expires what is due (engine_advance()).
 *
 * Hold lifecycle (the only transitions there are):
 *
 *                 engine_apply(HOLD_COMMIT)
 *       +-------------------------------------> committed
 *       |         engine_apply(HOLD_RELEASE)
 *   active -----------------------------------> released
 *       |         engine_advance(now >= expires_ms)
 *       +-------------------------------------> expired
 *
 * A finished hold (committed, released, expired) stays readable for
 * HF_FINISHED_RETENTION_MS or until its slot is needed for a new hold, the
 * oldest first; then its id reads as not found.
 *
 * Invariants, checked by engine_check():
 *   1. For every SKU: 0 <= held, 0 <= available, stock <= 2^40, and
 *      sold = stock - held - available >= 0 (the engine keeps available and
 *      held, and derives sold).
 *   2. A SKU's held equals the sum of the active holds' lines on it.
 *   3. Every active hold is in the timer heap exactly once, at heap_index, and
 *      the heap is ordered by expires_ms; no other hold is in it.
 *   4. A hold has 1..64 lines, on distinct SKUs, each 1 <= qty <= 10^6.
 *   5. An interned name's reference count equals the number of holds (active
 *      or retained) that name it as their customer (short customer names are
 *      not interned) or as their order_ref (committed holds: the order;
 *      released ones: the reason they were released for).
 *   6. Every slot is exactly one of: free, active, finished-and-retained.
 *   7. A SKU's hot record carries its name's length and first
 *      ENGINE_SKU_HEAD_BYTES bytes, zero past the name, and the index finds
 *      every SKU by its name at its own index.
 *
 * Fields of the structs below are private to engine.c; they are in this
 * header only so that the caller can allocate the engine (libuv style).
 */
#ifndef HF_ENGINE_H
#define HF_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_limits.h"

/* Results, in one table so that names and messages never drift apart.
 * The server maps each to an HTTP status and API error code. */
#define ENGINE_RESULTS(X)                                                                  \
    X(ENGINE_OK, "ok", "ok")                                                               \
    X(ENGINE_SKU_NOT_FOUND, "sku_not_found", "no such sku")                                \
    X(ENGINE_HOLD_NOT_FOUND, "hold_not_found", "no such hold")                             \
    X(ENGINE_INSUFFICIENT_STOCK, "insufficient_stock", "not enough stock available")       \
    X(ENGINE_STOCK_BELOW_COMMITTED, "stock_below_committed",                               \
      "stock cannot go below held + sold")                                                 \
    X(ENGINE_HOLD_EXPIRED, "hold_expired", "the hold has expired")                         \
    X(ENGINE_HOLD_RELEASED, "hold_released", "the hold was released")                      \
    X(ENGINE_HOLD_COMMITTED, "hold_committed", "the hold is already committed")            \
    X(ENGINE_DUPLICATE_LINE, "duplicate_line", "a hold names each sku at most once")       \
    X(ENGINE_IDEMPOTENCY_MISMATCH, "idempotency_mismatch",                                 \
      "this Idempotency-Key was used with a different request")                            \
    X(ENGINE_SKUS_FULL, "skus_full", "the sku table is full")                              \
    X(ENGINE_HOLDS_FULL, "holds_full", "the hold table is full of active holds")           \
    X(ENGINE_LINES_FULL, "lines_full", "the hold-line pool is full")                       \
    X(ENGINE_IDEM_FULL, "idempotency_keys_full",                                           \
      "the idempotency-key table is full of keys younger than a day")

typedef enum {
#define ENGINE_RESULT_ENUM(name, text, message) name,
    ENGINE_RESULTS(ENGINE_RESULT_ENUM)
#undef ENGINE_RESULT_ENUM
        ENGINE_RESULT_COUNT
} engine_result_t;

const char *engine_result_name(engine_result_t r);
const char *engine_result_message(engine_result_t r);

typedef enum {
    ENGINE_HOLD_FREE = 0, /* a slot with no hold: never visible outside */
    ENGINE_HOLD_ACTIVE,
    ENGINE_HOLD_COMMITTED_STATE,
    ENGINE_HOLD_RELEASED_STATE,
    ENGINE_HOLD_EXPIRED_STATE,
} engine_hold_state_t;

const char *engine_hold_state_name(engine_hold_state_t s);

typedef struct {
    uint32_t skus_max;
    uint32_t holds_max;     /* active plus retained finished holds */
    uint32_t idem_keys_max;
} engine_config_t;

/* ---- operations: the values that are applied, journaled and replayed ---- */

typedef enum {
    ENGINE_OP_SKU_PUT = 1,
    ENGINE_OP_HOLD_CREATE = 2,
    ENGINE_OP_HOLD_COMMIT = 3,
    ENGINE_OP_HOLD_RELEASE = 4,
    ENGINE_OP_HOLD_EXTEND = 5,
} engine_op_kind_t;

typedef struct {
    char sku[HF_SKU_BYTES_MAX];
    uint8_t sku_len;
    uint32_t qty;
} engine_line_t;

typedef struct {
    char customer[HF_NAME_BYTES_MAX];
    uint8_t customer_len;
    char idem_key[HF_IDEM_KEY_BYTES_MAX];
    uint8_t idem_key_len; /* 0: no Idempotency-Key */
    /* Who asked, as the client said: part of the request (and so of its
     * idempotency hash), kept for the defenses; 0 length when absent. */
    char ip[HF_IP_TEXT_BYTES_MAX];
    uint8_t ip_len;
    char fingerprint[HF_NAME_BYTES_MAX];
    uint8_t fingerprint_len;
    int64_t ttl_ms;
    /* The caller's hash of the request as its client sent it, for the
     * Idempotency-Key check (a policy may have changed ttl_ms since); 0: the
     * engine hashes this struct. */
    uint64_t request_hash;
    /* 0: the engine picks the id. Recovery passes the id that was recorded,
     * so a replayed hold keeps the id its client was given. */
    uint64_t hold_id;
    /* Set by a caller that has just, under the same lock, found each
     * line's sku (sku_index[i] for lines[i]) and no kept Idempotency-Key
     * equal to idem_key: the guard, while deciding. The engine then does
     * not look them up again. Never journaled: a decoded create has it
     * false, and a replay looks. Before lines[], so that the copies and
     * clears that stop at lines[] (record.c) take it along. */
    bool looked_up;
    uint16_t line_count;
    engine_line_t lines[HF_LINES_PER_HOLD_MAX];
    uint32_t sku_index[HF_LINES_PER_HOLD_MAX]; /* with looked_up */
} engine_hold_create_t;

typedef struct {
    engine_op_kind_t kind;
    int64_t now_ms;
    union {
        struct {
            char sku[HF_SKU_BYTES_MAX];
            uint8_t sku_len;
            int64_t stock;
        } sku_put;
        engine_hold_create_t hold_create;
        struct {
            uint64_t hold_id;
            int64_t ttl_ms; /* HOLD_EXTEND only */
            /* HOLD_COMMIT: the shop's order, kept with the sale; HOLD_RELEASE:
             * why it was released (an operator's revocation); 0 length when
             * none was given. */
            char order_ref[HF_NAME_BYTES_MAX];
            uint8_t order_ref_len;
        } hold;
    } u;
} engine_op_t;

/* What an operation did. */
typedef struct {
    engine_result_t result;
    bool changed;  /* state changed: the op must be journaled */
    bool replayed; /* an Idempotency-Key seen before: nothing was applied */
    bool created;  /* SKU_PUT made a new sku */
    uint64_t hold_id;
    /* The sku concerned (put, short line, duplicate); for SKU_NOT_FOUND the
     * index of the line that names an unknown sku. */
    uint32_t sku_index;
    int64_t available;  /* INSUFFICIENT_STOCK: what the short sku had */
} engine_outcome_t;

/* ---- views: what reads return ---- */

typedef struct {
    const char *sku;
    uint8_t sku_len;
    int64_t stock, held, sold, available;
} engine_sku_view_t;

typedef struct {
    uint32_t sku_index;
    uint32_t qty;
} engine_line_view_t;

typedef struct {
    uint64_t id;
    engine_hold_state_t state;
    const char *customer;
    uint8_t customer_len;
    int64_t created_ms, expires_ms;
    int64_t finished_ms; /* when it left active; 0 while active */
    const char *order_ref; /* the order (committed) or reason (released); or NULL */
    uint8_t order_ref_len;
    uint16_t line_count;
    engine_line_view_t lines[HF_LINES_PER_HOLD_MAX];
} engine_hold_view_t;

typedef struct {
    uint64_t holds_created, holds_committed, holds_released, holds_expired;
    uint64_t holds_evicted; /* finished holds dropped to make room or by age */
    uint64_t idem_replays;
    uint32_t holds_active, holds_retained, skus, idem_keys;
    int64_t units_stock, units_held, units_sold;
} engine_stats_t;

/* ---- private tables ---- */

/* What every hold reads and writes of a sku, in 32 bytes (two to a cache
 * line): a hold create, release, commit or expiry touches only available and
 * held (sold is stock - held - available), and a lookup compares the length
 * and the name's first bytes here, so a sku whose name is up to
 * ENGINE_SKU_HEAD_BYTES long costs one cache line per hold, and 100,000 of
 * them fit in 3.2 MB. id_head is zero past id_len. */
#define ENGINE_SKU_HEAD_BYTES 15
typedef struct {
    int64_t available, held;
    uint8_t id_len;
    char id_head[ENGINE_SKU_HEAD_BYTES];
} engine_sku_t;

/* The rest of a sku, by the same index: read by views, puts and the lookup
 * of a name longer than the head. id is the whole name. */
typedef struct {
    int64_t stock;
    char id[HF_SKU_BYTES_MAX];
} engine_sku_cold_t;

typedef struct {
    uint32_t refs;
    uint8_t len;
    char text[HF_NAME_BYTES_MAX];
} engine_name_t;

/* Customer names up to this long live in the hold itself: a UUID (36) fits,
 * and a shop whose every buyer is new pays no name table. Longer names are
 * interned and shared. The number fills the record to 96 bytes. */
#define ENGINE_INLINE_NAME_BYTES 36

typedef struct {
    uint64_t id;
    int64_t created_ms, expires_ms, finished_ms;
    union {
        uint32_t heap_index; /* active: its place in the timer heap */
        uint32_t order_ref;  /* committed, released: interned text, or ENGINE_NONE */
    };
    uint32_t next, prev; /* free list (both) or finished FIFO (next) */
    uint32_t chunk;      /* lines after the first, ENGINE_NONE if none */
    uint32_t sku0, qty0; /* the first line, inline: most holds have one */
    uint16_t line_count;
    uint8_t state;
    uint8_t customer_len;
    union {
        char text[ENGINE_INLINE_NAME_BYTES]; /* customer_len <= ENGINE_INLINE_NAME_BYTES */
        uint32_t name;                       /* otherwise: an interned name's index */
    } customer;
} engine_hold_t;

/* Lines 2..64 of a hold live in chunks from a pool. */
#define ENGINE_CHUNK_LINES 7
typedef struct {
    uint32_t next;
    uint32_t count;
    engine_line_view_t lines[ENGINE_CHUNK_LINES];
} engine_chunk_t;

typedef struct {
    char key[HF_IDEM_KEY_BYTES_MAX];
    uint8_t key_len;
    uint64_t request_hash;
    uint64_t hold_id;
    int64_t at_ms;
} engine_idem_t;

#define ENGINE_NONE UINT32_MAX

typedef struct engine_s {
    engine_config_t config;
    int64_t now_ms;
    uint64_t hold_seq; /* ids never repeat, even across restarts */
    void *region;      /* the one reservation everything below lives in */
    size_t region_size;

    engine_sku_t *skus;
    engine_sku_cold_t *sku_cold;
    /* Open addressing: sku index + 1 and a tag of the hash, 0 empty. It
     * grows with the skus (within its reservation), so that a catalog far
     * below skus_max keeps a small, cache-resident index. */
    uint32_t *sku_index;
    uint32_t sku_index_mask;
    uint32_t sku_count;

    engine_name_t *names;
    uint32_t *name_index;
    uint32_t name_index_mask;
    uint32_t name_hwm, name_free, name_count;

    engine_hold_t *holds;
    uint32_t hold_hwm;  /* slots at or above it were never used */
    uint32_t hold_free; /* doubly linked free list of used-then-freed slots */
    uint32_t finished_head, finished_tail;

    engine_chunk_t *chunks;
    uint32_t chunks_max, chunk_hwm, chunk_free, chunk_free_count;
    uint32_t finished_chunks; /* chunks that finished holds keep */

    int64_t *heap_ms; /* the timer: a binary min-heap of active holds */
    uint32_t *heap_slot;
    uint32_t heap_count;

    engine_idem_t *idem; /* a ring in arrival order, so expiry is FIFO */
    uint32_t *idem_index;
    uint32_t idem_index_mask;
    uint32_t idem_head, idem_count;

    engine_stats_t stats;
} engine_t;

/* Reserves every table (address space only: pages are touched when used).
 * Returns 0, or -1 with nothing allocated if the reservation fails or the
 * config exceeds the HF_*_LIMIT ceilings. */
int engine_init(engine_t *e, const engine_config_t *config, int64_t now_ms);
void engine_deinit(engine_t *e);
engine_config_t engine_config_default(void);
/* Bytes of address space engine_init() reserves for config. */
size_t engine_reserved_bytes(const engine_config_t *config);

/* Applies op at op->now_ms (which must not go back in time). On any result
 * but ENGINE_OK nothing changed. The caller validates the op's fields at the
 * edge; a field out of its range here is a programmer error (assert). */
engine_outcome_t engine_apply(engine_t *e, const engine_op_t *op);

/* Expires every active hold whose expires_ms <= now_ms and forgets what has
 * outlived its retention. Returns the number of holds expired. */
uint32_t engine_advance(engine_t *e, int64_t now_ms);

/* Expires the earliest active hold if it is due at now_ms, moving the
 * engine's time to that hold's expiry (not to now_ms), and describes it in
 * out. False if none is due. A caller that must act on each expiry at its own
 * instant (the guard's waitlist) steps with this before engine_advance(). */
bool engine_expire_next(engine_t *e, int64_t now_ms, engine_hold_view_t *out);

/* The hold an Idempotency-Key was used for, and that request's hash. */
bool engine_idem_lookup(const engine_t *e, const char *key, size_t key_len,
                        uint64_t *request_hash_out, uint64_t *hold_id_out);

/* Reads. They expire nothing: call engine_advance() first for a current view. */
bool engine_sku_find(const engine_t *e, const char *sku, size_t sku_len, uint32_t *index_out);
void engine_sku_view(const engine_t *e, uint32_t index, engine_sku_view_t *out);
uint32_t engine_sku_count(const engine_t *e);
engine_result_t engine_hold_view(const engine_t *e, uint64_t hold_id, engine_hold_view_t *out);
engine_stats_t engine_stats(const engine_t *e);
/* Counts an Idempotency-Key replay that a caller answered from its own
 * records (the guard replays refusals the engine never saw). */
void engine_count_idem_replay(engine_t *e);
/* The engine's time: the latest now_ms it was given. */
int64_t engine_now_ms(const engine_t *e);
/* Hold ids issued so far (a snapshot keeps it: ids never repeat). */
uint64_t engine_hold_seq(const engine_t *e);
/* The largest hold sequence number an id can carry. */
#define ENGINE_HOLD_SEQ_MAX ((1ull << 36) - 1)
/* Raises the hold sequence to at least seq (<= ENGINE_HOLD_SEQ_MAX), so the
 * ids of holds lost in a crash are never handed out again; true if it
 * moved. Journaled through the guard's ID_SKIP op. */
bool engine_raise_hold_seq(engine_t *e, uint64_t seq);
engine_config_t engine_config(const engine_t *e);
/* Slots at or above this were never used: a walk of the holds by slot
 * (a caller's own per-slot records) stops here. */
uint32_t engine_hold_slots_used(const engine_t *e);
/* The hold in a slot below engine_hold_slots_used(); state ENGINE_HOLD_FREE
 * and id 0 if the slot has none. */
typedef struct {
    uint64_t id;
    engine_hold_state_t state;
    uint16_t line_count;
} engine_slot_view_t;
engine_slot_view_t engine_slot_view(const engine_t *e, uint32_t slot);
/* The earliest expiry among active holds, or INT64_MAX if none. */
int64_t engine_next_expiry_ms(const engine_t *e);

/* A request's fingerprint for idempotency: equal requests hash equal. */
uint64_t engine_hold_request_hash(const engine_hold_create_t *req);

/* Hold ids in the engine's own spelling: "h_" and base62 (the journal's
 * and the simulator's; the server shows other ids on the wire, made from
 * these with a key, so that they cannot be guessed). format writes at most
 * ENGINE_HOLD_ID_TEXT_MAX bytes plus a NUL; parse is false on anything the
 * engine could not have issued. */
#define ENGINE_HOLD_ID_TEXT_MAX 16
size_t engine_hold_id_format(uint64_t id, char *out);
bool engine_hold_id_parse(const char *text, size_t len, uint64_t *id_out);
/* The same spelling for other ids: kind, '_', base62 (waitlist entries are
 * "w_..."). */
size_t engine_id_format(char kind, uint64_t id, char *out);
bool engine_id_parse(char kind, const char *text, size_t len, uint64_t *id_out);
/* The slot a hold id names (below config.holds_max): callers that keep
 * their own per-hold records index them by it. */
uint32_t engine_hold_slot(uint64_t hold_id);
/* The sequence number a hold id carries (engine_hold_seq() when it was made). */
uint64_t engine_hold_id_seq(uint64_t hold_id);

/* Walks every table and checks the invariants above; true if all hold.
 * For tests and asserts: it allocates and is O(everything). */
bool engine_check(const engine_t *e);

/* ---- snapshot: iterate live state, and restore it into a fresh engine ---- */

/* Calls visit for each hold that is active or retained, active ones in slot
 * order first, then finished ones oldest first (the order restore needs). */
typedef void (*engine_hold_visit_fn)(void *ctx, const engine_hold_view_t *hold);
void engine_each_hold(const engine_t *e, engine_hold_visit_fn visit, void *ctx);
typedef void (*engine_idem_visit_fn)(void *ctx, const engine_idem_t *entry);
void engine_each_idem(const engine_t *e, engine_idem_visit_fn visit, void *ctx);

/* The free hold slots in the order they will be taken. A snapshot keeps it,
 * so that a hold the engine places itself after a restore (a waitlist offer
 * the guard makes) gets the slot, and so the id, it got the first time. */
typedef void (*engine_slot_visit_fn)(void *ctx, uint32_t slot);
void engine_each_free_slot(const engine_t *e, engine_slot_visit_fn visit, void *ctx);

/* Restore, in order: time, skus (held 0), holds as visited, keys as visited,
 * then the free slots (below hold_hwm, as visited; false if they do not
 * match the slots the restored holds left free, or a slot repeats).
 * Each returns ENGINE_OK or the table that is full. */
/* False (and nothing set) if time would go back or hold_seq is out of range. */
bool engine_restore_time(engine_t *e, int64_t now_ms, uint64_t hold_seq);
engine_result_t engine_restore_sku(engine_t *e, const char *sku, size_t sku_len, int64_t stock,
                                   int64_t sold);
/* lines' sku_index refer to skus already restored, by index. */
engine_result_t engine_restore_hold(engine_t *e, const engine_hold_view_t *hold);
engine_result_t engine_restore_idem(engine_t *e, const engine_idem_t *entry);
/* Whether a hold or key read from a file may be restored now (its slot is
 * free and its id not from the future, finished holds oldest first; a key
 * not seen yet, keys oldest first). A reader checks before restoring: the
 * restore functions assert what these check. */
bool engine_restore_fits_hold(const engine_t *e, const engine_hold_view_t *v);
bool engine_restore_fits_idem(const engine_t *e, const engine_idem_t *entry);
/* Makes the free hold slots below hold_hwm the list slots[0..count), in
 * that order of reuse. False (the snapshot is damaged: refuse it) unless
 * slots names every free slot exactly once, since a slot named twice would
 * make the list a circle; false too without the memory to check that. */
bool engine_restore_free_slots(engine_t *e, uint32_t hold_hwm, const uint32_t *slots,
                               uint32_t count);

#endif
