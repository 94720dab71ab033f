/*
 * state.h - the guard's tables, private to src/guard/.
 *
 * guard.h is the front door; this header is what the guard's own files
 * share (and the guard's white-box tests read). Nothing outside src/guard/
 * includes it: other modules see a guard_t only through guard.h's calls.
 *
 * Tables live in one reservation, like the engine's: identities and
 * (identity, sku) entries in arrays with an open-addressing index and a free
 * list; per-hold and per-sku side records indexed like the engine's own;
 * waitlist entries in an array whose finished entries are reused oldest
 * first; spent proofs in a ring with an index.
 *
 * The files, each using only those above it (no two need each other):
 *   index.c     hashing and the open-addressing index
 *   notice.c    the log of what changed, for callers that announce it
 *   identity.c  identities, customer-and-sku units, the sweep, a request's names
 *   proof.c     proof of work, challenges, spent proofs (the one file with OpenSSL)
 *   sku.c       sku policies, conversion, escalation, refusals counted
 *   waitlist.c  waitlist entries and lines
 *   book.c      a hold's bookkeeping as it starts and finishes
 *   offer.c     waitlist offers: freed units to the line, as holds
 *   audit.c     the audit trail: an operator's change, before and after
 *   apply.c     guard_apply(), guard_advance(): every op, without deciding
 *   decide.c    guard_hold(), guard_extend(): decide with policy.h, then apply
 *   read.c      views for the API and the simulator
 *   check.c     guard_check()
 *   snapshot.c  the guard's part of a snapshot
 *   guard.c     init, the tables' layout, names
 */
#ifndef HF_GUARD_STATE_H
#define HF_GUARD_STATE_H

#include "guard.h"

/* "No entry" for table indexes. */
#define GUARD_NONE UINT32_MAX

typedef struct {
    uint64_t hash;
    uint32_t holds_active;
    uint32_t customer_skus; /* entries in the customer-sku table naming it */
    int64_t units_held;
    double budget_unit_ms;
    int64_t budget_at_ms;
    double started, committed; /* decayed */
    int64_t reputation_at_ms;
    uint64_t holds_total, commits_total;
    uint32_t next_free;
    uint8_t live, kind, len;
    char value[HF_NAME_BYTES_MAX];
} guard_identity_t;

/* An identity's units on a sku: held now, and bought in the purchase
 * window (quantity.customer_sku_window_ms from the first purchase). Named
 * for customers, whose caps came first; every kind of identity has them. */
typedef struct {
    uint64_t hash;
    uint32_t customer, sku; /* customer: the identity's index, of any kind */
    uint32_t units_active;
    uint32_t next_free;
    int64_t bought;
    int64_t window_start_ms;
    uint8_t live;
} guard_customer_sku_t;

typedef struct {
    uint32_t ids[POLICY_ID_KINDS]; /* identity index + 1, 0: absent */
    uint32_t wait;                 /* waitlist entry index + 1, 0: none */
    /* The hold's place on a reclaim list: its sku's if it has one line, the
     * shared list of multi-line holds otherwise (slot + 1, 0: none). */
    uint32_t prev, next;
    int64_t safe_until_ms; /* not reclaimed before (0: never; reclaim was off) */
    int64_t created_ms;    /* as the engine's: reclaim reads the guard's side only */
    uint32_t units;        /* all its lines' */
    uint8_t charged;       /* its budgets were charged: refund unused time */
    uint8_t newcomer;      /* its identities never bought: it counts in the pool */
    uint8_t buy_now;       /* sold in the step that made it: paying took no time */
} guard_hold_t;

typedef struct {
    uint32_t policy; /* sku policy index + 1, 0: the shop's */
    uint8_t escalated;
    uint8_t marked;       /* on the list of skus to serve (expiry only) */
    uint32_t escalations; /* switches on */
    int64_t escalated_at_ms;
    double started, committed; /* decayed over the escalation window */
    int64_t conversion_at_ms;
    uint32_t wait_head, wait_tail, wait_count; /* index + 1 */
    int64_t wait_units;                        /* what its line waits for */
    uint64_t denials, challenges;
    int64_t newcomer_held;           /* units in holds of identities that never bought */
    uint32_t holds_head, holds_tail; /* its single-line holds, oldest first (slot + 1) */
    uint32_t reclaimed;              /* holds taken back from for waiting buyers */
} guard_sku_t;

/* How long a sku's buyers take from hold to commit: decayed counts in
 * buckets a factor of sqrt(2) apart from 1 s (the last holds the rest). */
#define GUARD_PAY_BUCKETS 32
typedef struct {
    double count[GUARD_PAY_BUCKETS];
    double total;
    int64_t at_ms; /* decayed to this instant */
    uint64_t seen; /* commits ever counted: the shape is known from min_commits on */
} guard_pay_t;

/* A hold a reclaim decision may take, as it ranks them (reclaim.c). */
#define GUARD_RECLAIM_CANDIDATES_MAX 4096
typedef struct {
    uint64_t id;
    int64_t created_ms;
    uint32_t units;
    uint8_t newcomer;
} guard_candidate_t;

/* Live-only: units buyers were just refused on a sku for want of stock,
 * decayed. It moves reclaim decisions, which are journaled as ops, so it is
 * neither journaled nor in snapshots. */
typedef struct {
    double units;
    int64_t at_ms;
} guard_want_t;

typedef struct {
    uint64_t mask;
    policy_config_t values;   /* the sku's own values where mask says */
    policy_config_t resolved; /* the shop's policy with those on top */
} guard_sku_policy_t;

typedef struct {
    uint64_t id;
    uint64_t hold_id;
    int64_t created_ms, finished_ms;
    uint32_t sku, qty;
    uint32_t next; /* index + 1: next on the sku's list, or the finished FIFO */
    uint8_t state, customer_len, ip_len, fingerprint_len;
    char customer[HF_NAME_BYTES_MAX];
    char ip[HF_IP_TEXT_BYTES_MAX]; /* as joined: the offer's identities */
    char fingerprint[HF_NAME_BYTES_MAX];
    uint8_t key_len; /* the join's Idempotency-Key, 0: none */
    char key[HF_IDEM_KEY_BYTES_MAX];
} guard_wait_t;

typedef struct {
    uint64_t tag;
    int64_t expires_ms;
} guard_proof_t;

struct guard_s {
    guard_config_t config;
    engine_t engine;
    policy_config_t policy;
    bool policy_set;     /* a POLICY_PUT was applied: the shop chose its policy */
    bool offers_starved; /* an offer found the hold table full */
    int64_t swept_at_ms; /* the last whole-table sweep (a table was full) */
    uint8_t secret[GUARD_SECRET_BYTES];
    bool has_secret;
    double shop_started, shop_committed;
    int64_t shop_at_ms;

    void *region;
    size_t region_size;
    guard_identity_t *ids;
    uint32_t *id_index, id_index_mask, id_hwm, id_free, id_sweep;
    guard_customer_sku_t *cs;
    uint32_t *cs_index, cs_index_mask, cs_hwm, cs_free, cs_sweep;
    guard_hold_t *holds;             /* by engine hold slot */
    guard_sku_t *skus;               /* by engine sku index */
    guard_pay_t *pay;                /* by engine sku index */
    guard_want_t *want;              /* by engine sku index; live-only */
    guard_candidate_t *candidates;   /* GUARD_RECLAIM_CANDIDATES_MAX, scratch */
    uint32_t multi_head, multi_tail; /* multi-line holds, for reclaim (slot + 1) */
    int64_t reclaim_at_ms;           /* the last reclaim decision (live-only) */
    int64_t want_at_ms;              /* the last buyer refused for want of units (live-only) */
    guard_sku_policy_t *sku_policies;
    uint32_t sku_policy_count;
    guard_wait_t *waits;
    uint32_t wait_hwm, wait_done_head, wait_done_tail; /* finished FIFO, index + 1 */
    uint64_t wait_seq;
    guard_proof_t *proofs; /* a ring in about expiry order */
    uint32_t *proof_index, proof_index_mask;
    uint32_t proof_head, proof_count;
    uint32_t *scratch;                     /* skus to serve after an instant's expiries */
    uint32_t *wait_index, wait_index_mask; /* waiting entries by (sku, customer) */
    uint32_t *wait_key_index, wait_key_index_mask; /* entries with a key, by key */
    guard_stats_t stats;
    uint64_t event_seq;
    guard_event_t events[GUARD_EVENTS_MAX];
    uint64_t offer_seq;
    guard_offer_t offer_log[GUARD_OFFER_LOG_MAX];
    /* The audit trail: a ring of the latest config.audit_max entries (audit.c). */
    guard_audit_entry_t *audit;
    uint32_t audit_head, audit_count; /* head: the oldest entry's index */
    uint64_t audit_seq;               /* the newest entry's seq */
    uint64_t notice_seq;
    guard_notice_t *notices; /* GUARD_NOTICE_LOG_MAX of them, or NULL: not kept */
};

#endif
