/*
 * guard.h - the engine with its defenses: what the server and the simulator
 * both drive, so that they make exactly the same decisions.
 *
 * The guard owns an engine and the state the policies keep: per-identity
 * counters, hold budgets and reputation; per customer-and-sku units; per-sku
 * policies, recent conversion and escalation; waitlists; used proofs of work;
 * the challenge secret. Like the engine it does no I/O, reads no clock and
 * allocates nothing after guard_create().
 *
 * Decide, then apply. The live path calls guard_hold(): it asks policy.h for
 * a decision on the counters as they are, and if the hold is allowed fills in
 * what was decided (the granted TTL, the proof used) and applies it. Every
 * change is a guard_op_t that guard_apply() applies without deciding again, so
 * the store journals guard ops and replays them to the same state even after
 * the policy changed. Expiry needs no op: guard_advance() expires holds one at
 * a time, each at its own instant, and hands freed units to the waitlist in
 * the same step, so replay at any later time gives the same result.
 *
 * Waitlist entry lifecycle:
 *
 *   waiting --(units free, in the step that frees them)--> offered (a hold)
 *   offered --(its hold commits)--> fulfilled
 *   offered --(its hold expires or is released)--> expired
 *   waiting | offered --(DELETE)--> cancelled (an offered hold is released)
 *
 * A waitlist is first come, first served among the entries the stock could
 * serve: an entry waiting for more units than are left to sell (stock -
 * sold) keeps its place for a restock but holds up no one behind it. One
 * joins only what it cannot hold now (units available: hold them instead).
 * An offer is a hold of the entry's identities (customer, and the ip and
 * fingerprint it joined with), counted, charged and revocable like any
 * other, with the sku's waitlist.offer_ttl_ms; identities over their caps
 * or budget when their turn comes lose it (expired) and the next is served.
 * A customer waits at most once per sku.
 *
 * Invariants (guard_check(), on top of engine_check()):
 *   1. An identity's holds_active and units_held equal the sum over active
 *      holds that name it; a customer-and-sku entry's units_active likewise.
 *   2. A sku's waitlist is FIFO and every entry on it is waiting; after any
 *      call returns, no sku's first servable entry (qty <= stock - sold) is
 *      covered by its available units.
 *   3. An offered entry's hold is active and points back at the entry.
 */
#ifndef HF_GUARD_H
#define HF_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "policy.h"

/* A proof is good for one request; its tag (from the challenge's MAC) is
 * remembered until it expires so it cannot be used twice. */
#define GUARD_SECRET_BYTES 32

/* The guard's tables are its own (state.h): other modules hold a pointer. */
typedef struct guard_s guard_t;

typedef struct {
    engine_config_t engine;
    uint32_t identities_max;    /* customers, IP prefixes, fingerprints */
    uint32_t customer_skus_max; /* (customer, sku) pairs with units */
    uint32_t waitlist_max;      /* waitlist entries, waiting or finished */
    uint32_t sku_policies_max;  /* skus with their own policy */
    uint32_t proofs_max;        /* used proofs not yet expired */
    uint32_t audit_max;         /* audit trail entries kept (0: none) */
    bool notices;               /* keep the notice log (guard_notice): for webhooks */
} guard_config_t;

guard_config_t guard_config_default(void);
size_t guard_reserved_bytes(const guard_config_t *c);

typedef enum {
    GUARD_OP_ENGINE = 1,      /* an engine op (with the extras below for holds) */
    GUARD_OP_POLICY_PUT = 2,  /* the shop-wide policy */
    GUARD_OP_SKU_POLICY = 3,  /* a sku's own settings (mask 0: none) */
    GUARD_OP_REVOKE = 4,      /* release every active hold of an identity */
    GUARD_OP_WAIT_JOIN = 5,   /* join a sku's waitlist */
    GUARD_OP_WAIT_CANCEL = 6, /* leave it */
    GUARD_OP_SECRET = 7,      /* the challenge secret, set once */
    GUARD_OP_SWEEP = 8,       /* a whole-table sweep a refused hold made */
    GUARD_OP_RECLAIM = 9,     /* release holds for buyers waiting (guard_reclaim) */
    GUARD_OP_ID_SKIP = 10,    /* raise the hold and waitlist id counters */
} guard_op_kind_t;

/* Who asked for an operator's change (the server fills it in; an op
 * without it is not audited). It is journaled in the same record as the
 * change, so a change is never durable without its audit entry nor an
 * entry without its change, and applying the op, live or at replay, adds
 * the entry to the audit trail (guard_audit_entry). */
#define GUARD_AUDIT_KEY_ID_BYTES 8
#define GUARD_AUDIT_ROUTE_BYTES_MAX 64
typedef struct {
    bool present;
    char key_id[GUARD_AUDIT_KEY_ID_BYTES]; /* the key's id (hex digits), if one was sent */
    uint8_t key_id_len;                    /* 0: no key */
    char route[GUARD_AUDIT_ROUTE_BYTES_MAX]; /* "PUT /v1/skus/{sku}" */
    uint8_t route_len;
} guard_audit_t;

/* Holds one reclaim op releases at most: a waiting line takes a few units
 * at a time, and the next decision takes more if it must. */
#define GUARD_RECLAIM_MAX 64

typedef struct {
    guard_op_kind_t kind;
    engine_op_t engine; /* its now_ms is the op's time, for every kind */
    /* ENGINE HOLD_CREATE: buy now (hold and commit in one step), the order */
    bool buy_now;
    char order_ref[HF_NAME_BYTES_MAX];
    uint8_t order_ref_len;
    /* ENGINE HOLD_CREATE: the proof of work it spent (tag 0: none) */
    uint64_t proof_tag;
    int64_t proof_expires_ms;
    /* ENGINE HOLD_CREATE: its identities never bought: it counts in the
     * newcomer pool (decided when it was made, replayed as recorded) */
    bool newcomer;
    /* ENGINE HOLD_RELEASE, REVOKE: why (shown on the hold) */
    char reason[HF_NAME_BYTES_MAX];
    uint8_t reason_len;
    union {
        policy_config_t policy; /* POLICY_PUT */
        struct {
            char sku[HF_SKU_BYTES_MAX];
            uint8_t sku_len;
            uint64_t mask; /* bit f: field f is set for this sku */
            policy_config_t values;
        } sku_policy;
        struct {
            policy_id_kind_t kind;
            char value[HF_NAME_BYTES_MAX];
            uint8_t value_len;
        } revoke;
        struct {
            char sku[HF_SKU_BYTES_MAX];
            uint8_t sku_len;
            char customer[HF_NAME_BYTES_MAX];
            uint8_t customer_len;
            char ip[HF_IP_TEXT_BYTES_MAX]; /* optional, as on a hold */
            uint8_t ip_len;
            char fingerprint[HF_NAME_BYTES_MAX];
            uint8_t fingerprint_len;
            uint32_t qty;
            uint64_t id; /* 0: the guard picks; replay passes the recorded one */
            /* Optional: a join with the key of an entry still kept answers
             * that entry (the same request) or is refused (another). */
            char idem_key[HF_IDEM_KEY_BYTES_MAX];
            uint8_t idem_key_len;
        } wait_join;
        uint64_t wait_id; /* WAIT_CANCEL */
        uint8_t secret[GUARD_SECRET_BYTES];
        struct {
            uint16_t count;
            uint64_t holds[GUARD_RECLAIM_MAX];
        } reclaim;
        /* ID_SKIP: the counters become at least these. A start after a crash
         * that may have lost acknowledged changes (relaxed durability) skips
         * past every id the lost ones could have used, since an id with its
         * secret must never name a different hold or entry. */
        struct {
            uint64_t hold_seq, wait_seq;
        } id_skip;
    } u;
    guard_audit_t audit;
} guard_op_t;

/* Results beyond the engine's. */
#define GUARD_RESULTS(X)                                                                           \
    X(GUARD_OK, "ok", "ok")                                                                        \
    X(GUARD_ENGINE, "engine", "see engine result")                                                 \
    X(GUARD_DENIED, "policy_denied", "denied by policy")                                           \
    X(GUARD_CHALLENGED, "challenge_required", "a proof of work is required")                       \
    X(GUARD_NOT_FOUND, "not_found", "no such entry")                                               \
    X(GUARD_IDENTITIES_FULL, "identities_full", "the identity table is full")                      \
    X(GUARD_CUSTOMER_SKUS_FULL, "customer_skus_full", "the customer-and-sku table is full")        \
    X(GUARD_WAITLIST_FULL, "waitlist_full", "the waitlist table is full")                          \
    X(GUARD_SKU_POLICIES_FULL, "sku_policies_full", "the sku policy table is full")                \
    X(GUARD_POLICY_CONFLICT, "policy_conflict",                                                    \
      "the sku's settings conflict with the shop's policy")                                        \
    X(GUARD_PROOFS_FULL, "proofs_full", "the used-proof table is full")                            \
    X(GUARD_WAITLIST_OFF, "waitlist_off", "this sku has no waitlist")                              \
    X(GUARD_WAIT_FINISHED, "wait_finished", "the waitlist entry is finished")                      \
    X(GUARD_WAIT_AVAILABLE, "units_available",                                                     \
      "the units are available: hold them instead of waiting")                                     \
    X(GUARD_WAIT_DUPLICATE, "already_waiting", "this customer already waits for this sku")

typedef enum {
#define GUARD_RESULT_ENUM(name, text, message) name,
    GUARD_RESULTS(GUARD_RESULT_ENUM)
#undef GUARD_RESULT_ENUM
        GUARD_RESULT_COUNT
} guard_result_t;

const char *guard_result_name(guard_result_t r);
const char *guard_result_message(guard_result_t r);

/* A full identity or customer-and-sku table is swept whole before a hold is
 * refused for it, at most this often (engine time). */
#define GUARD_FULL_SWEEP_MS 1000

typedef struct {
    guard_result_t result;
    engine_outcome_t engine;    /* GUARD_ENGINE: what the engine said; also hold_id */
    policy_decision_t decision; /* holds: what the policy decided */
    /* Journal the op the call wrote. Set on a refusal too when deciding
     * changed state: a hold refused after sweeping a full table whole writes
     * a GUARD_OP_SWEEP, which replays the same sweep. */
    bool changed;
    uint64_t id;      /* WAIT_JOIN: the entry's id */
    bool replayed;    /* WAIT_JOIN: its key named an entry made before */
    uint32_t revoked; /* REVOKE, RECLAIM: holds released */
} guard_outcome_t;

/* A request for a hold, as the client sent it, before any decision. */
typedef struct {
    /* ttl_ms: asked for, 0 if not. request_hash: guard_request_hash() of
     * this request if the caller has it already, else 0 (guard_hold then
     * computes it). */
    engine_hold_create_t create;
    bool buy_now;
    char order_ref[HF_NAME_BYTES_MAX];
    uint8_t order_ref_len;
    /* A proof whose challenge the caller verified was issued for this
     * request (guard_challenge_verify), and the price it was issued at; tag
     * 0: none sent. */
    uint64_t proof_tag;
    int64_t proof_expires_ms;
    uint32_t proof_bits;
} guard_hold_request_t;

typedef enum {
    GUARD_WAIT_FREE = 0,
    GUARD_WAIT_WAITING,
    GUARD_WAIT_OFFERED,
    GUARD_WAIT_FULFILLED,
    GUARD_WAIT_EXPIRED,
    GUARD_WAIT_CANCELLED,
} guard_wait_state_t;

const char *guard_wait_state_name(guard_wait_state_t s);

typedef struct {
    uint64_t denials[POLICY_RULE_COUNT];
    uint64_t challenges[POLICY_RULE_COUNT];
    uint64_t proofs_accepted, proofs_refused;
    uint64_t proofs_stale; /* good proofs whose price had risen: challenged again */
    uint64_t escalations_on, escalations_off;
    uint64_t wait_joined, wait_offered, wait_fulfilled, wait_expired, wait_cancelled;
    uint64_t wait_refused; /* turns given up: the entry's identities were over caps or budget */
    uint64_t revoked_holds, buy_now;
    uint64_t reclaimed_holds, reclaimed_units; /* taken back for buyers waiting */
    uint32_t identities, customer_skus, skus_escalated, waiting;
} guard_stats_t;

/* Escalations switched on and off, the latest few, for the log. */
#define GUARD_EVENTS_MAX 64
typedef struct {
    uint64_t seq; /* 1, 2, ...: a caller logs those it has not seen */
    int64_t at_ms;
    uint32_t sku;
    bool on;
} guard_event_t;

/* Waitlist offers as they are made, the latest few: a caller that must
 * tell people (the simulator's buyers; a live page) reads those it has not
 * seen. Transient: not journaled, not in snapshots. */
#define GUARD_OFFER_LOG_MAX 4096
typedef struct {
    uint64_t seq; /* 1, 2, ... */
    uint64_t wait_id, hold_id;
} guard_offer_t;

/* What changed, as it changes, for a caller that announces it (the
 * server's webhooks): a hold that expired (id: the hold's), and a sku whose
 * held units or stock moved (id: its index; a sku may appear many times).
 * Transient like the offer log: not journaled, not in snapshots, so replay
 * writes it again and a caller reads from where recovery left it. Sized so
 * that the expiries of one busy instant fit between two reads. Kept only
 * when guard_config_t.notices says so (its seq stays 0 otherwise): most
 * guards (the simulator's, a server without webhooks) have no reader. */
#define GUARD_NOTICE_LOG_MAX 16384
typedef enum {
    GUARD_NOTICE_EXPIRED = 1,
    GUARD_NOTICE_SKU = 2,
} guard_notice_kind_t;
typedef struct {
    uint64_t seq; /* 1, 2, ... */
    uint64_t id;
    int64_t at_ms;
    guard_notice_kind_t kind;
} guard_notice_t;

/* The latest sequence number of each log, and one entry by its number (false
 * once it is overwritten or before it is made). */
uint64_t guard_event_seq(const guard_t *g);
bool guard_event(const guard_t *g, uint64_t seq, guard_event_t *out);
uint64_t guard_offer_seq(const guard_t *g);
bool guard_offer(const guard_t *g, uint64_t seq, guard_offer_t *out);
uint64_t guard_notice_seq(const guard_t *g);
bool guard_notice(const guard_t *g, uint64_t seq, guard_notice_t *out);

/* A guard with every table reserved (address space only), at now_ms; NULL
 * if the configuration is out of range or the reservation fails. */
guard_t *guard_create(const guard_config_t *c, int64_t now_ms);
void guard_destroy(guard_t *g);

/* ---- what the guard holds, read-only ---- */

const guard_config_t *guard_config(const guard_t *g);
/* The engine inside: stock, holds and idempotency keys as they are. */
const engine_t *guard_engine(const guard_t *g);
/* The engine of a guard that has applied nothing yet, to restore a
 * snapshot's engine records into before guard_snapshot_read(). */
engine_t *guard_engine_to_restore(guard_t *g);
/* The shop-wide policy in force; whether a POLICY_PUT chose it. */
const policy_config_t *guard_policy(const guard_t *g);
bool guard_policy_chosen(const guard_t *g);
/* The waitlist's id counter (the sequence the next entry's id carries - 1). */
uint64_t guard_wait_seq(const guard_t *g);
/* The largest waitlist sequence number an id can carry. */
#define GUARD_WAIT_SEQ_MAX ((1ull << 36) - 1)

/* Whether the challenge secret is set (GUARD_OP_SECRET, once). */
bool guard_has_secret(const guard_t *g);

/* Expires what is due, each at its own instant, handing freed units to
 * waitlists; then forgets what outlived its retention. */
void guard_advance(guard_t *g, int64_t now_ms);

/* The live hold path: decide on req at now_ms, and if allowed apply it.
 * When out.changed, op_out is the op to journal (the hold, or the sweep a
 * refused hold made). */
guard_outcome_t guard_hold(guard_t *g, const guard_hold_request_t *req, int64_t now_ms,
                           guard_op_t *op_out);

/* The live extend path: caps the TTL (policy_extend_ttl_ms), charges the
 * budgets for the time added, and applies. decision.ttl_ms is what was
 * granted; a cap that leaves nothing to add answers the hold unchanged. */
guard_outcome_t guard_extend(guard_t *g, uint64_t hold_id, int64_t ttl_ms, int64_t now_ms,
                             guard_op_t *op_out);

/* Reclaim, the live decision: on skus where buyers wait (waitlist entries,
 * or buyers just refused for want of units) and no units are left for them,
 * holds older than the time the sku's buyers take to pay (and than what
 * their reply promised) are released for them, most suspicious first:
 * identities that never bought, then large holds, then old ones. Only as
 * many as the waiting need; their units go to the waitlist in the same
 * step. When out.changed, op_out is the GUARD_OP_RECLAIM to journal; replay
 * applies it without deciding. Cheap when nothing waits; a caller may call
 * it on every tick (it decides at most every GUARD_RECLAIM_EVERY_MS). */
#define GUARD_RECLAIM_EVERY_MS 1000
guard_outcome_t guard_reclaim(guard_t *g, int64_t now_ms, guard_op_t *op_out);

/* Applies op without deciding (every op but a live hold create; and every op
 * at replay). op->engine.now_ms must not go back in time. A HOLD_CREATE's id
 * is written back into op when the guard picked it. */
guard_outcome_t guard_apply(guard_t *g, guard_op_t *op);

/* The effective policy of a sku (its own settings over the shop's). */
const policy_config_t *guard_sku_policy(const guard_t *g, uint32_t sku_index, uint64_t *mask_out);

/* Whether every sku's own settings still make a valid policy on top of the
 * shop-wide p; if not, names the first sku and field that do not. */
bool guard_policy_fits(const guard_t *g, const policy_config_t *p, uint32_t *sku_out,
                       policy_field_t *field_out);

/* Whether a GUARD_OP_SKU_POLICY would be applied: GUARD_OK,
 * GUARD_SKU_POLICIES_FULL, or GUARD_POLICY_CONFLICT with the field that
 * breaks a relation on top of the shop's policy in *bad_out. Read-only, so
 * a caller can refuse before it changes anything else. */
guard_result_t guard_sku_policy_check(const guard_t *g, const guard_op_t *op,
                                      policy_field_t *bad_out);

/* ---- challenges ---- */

/* Writes the challenge prefix for a request (by its hash) at now_ms with
 * `bits`; out holds GUARD_PREFIX_TEXT_MAX + 1 bytes. Returns its expiry. */
#define GUARD_PREFIX_TEXT_MAX 40
#define GUARD_PREFIX_TEXT_LEN 30 /* bits, expiry and MAC in hex */
int64_t guard_challenge_make(const guard_t *g, uint64_t request_hash, uint32_t bits, int64_t now_ms,
                             char *out);
/* Checks a Holdfast-Proof header value for this request: issued by this
 * guard for this request hash, not expired at now_ms, and solved. Fills the
 * tag, expiry and price (bits) for guard_hold_request_t. */
bool guard_challenge_verify(const guard_t *g, uint64_t request_hash, const char *header,
                            size_t header_len, int64_t now_ms, uint64_t *tag_out,
                            int64_t *expires_ms_out, uint32_t *bits_out);

/* The hash of a hold request as the client sent it (idempotency, proofs). */
uint64_t guard_request_hash(const guard_hold_request_t *req);

/* ---- reads ---- */

typedef struct {
    policy_id_kind_t kind;
    const char *value;
    uint8_t value_len;
    uint32_t holds_active;
    int64_t units_held;
    uint64_t holds_total, commits_total;
    double budget_unit_s, risk;
} guard_identity_view_t;

typedef enum {
    GUARD_TOP_HELD_UNITS = 0,
    GUARD_TOP_HOLDS = 1,
    GUARD_TOP_CONVERSION = 2, /* lowest conversion first, among those with history */
} guard_top_by_t;

/* Fills up to max (<= 1000) identities, best first. Returns the count. */
uint32_t guard_identities_top(const guard_t *g, guard_top_by_t by, uint32_t max,
                              guard_identity_view_t *out);
bool guard_identity_find(const guard_t *g, policy_id_kind_t kind, const char *value, size_t len,
                         guard_identity_view_t *out);

typedef struct {
    bool escalated;
    uint32_t escalations;
    int64_t escalated_at_ms;
    double conversion;   /* recent commits / holds started, -1 if none */
    double recent_holds; /* holds started, decayed over the escalation window */
    uint32_t waiting;
    uint64_t denials, challenges;
    int64_t newcomer_held; /* units held by identities that never bought */
    int64_t pay_ms;        /* how long its buyers take to pay, learned (0: not yet) */
    uint32_t reclaimed;    /* holds reclaimed for buyers waiting */
} guard_sku_view_t;

void guard_sku_view(const guard_t *g, uint32_t sku_index, guard_sku_view_t *out);
/* Until when an active hold will not be reclaimed (0: the hold is not
 * active, or reclaim is off for it): what a shop can tell its buyer. */
int64_t guard_hold_safe_until_ms(const guard_t *g, uint64_t hold_id);
/* Skus escalated as of the guard's time (stats.skus_escalated counts the
 * recorded switches: a sku that recovered by time alone is in it until its
 * next op records the switch off). */
uint32_t guard_skus_escalated_now(const guard_t *g);
/* Cheap: whether the sku ever had a hold counted (or is escalated); a view
 * of one that has not is all defaults. */
bool guard_sku_has_holds(const guard_t *g, uint32_t sku);

typedef struct {
    uint64_t id, hold_id;
    guard_wait_state_t state;
    uint32_t sku_index, qty, position; /* position: 1 = next, 0 when not waiting */
    const char *customer;
    uint8_t customer_len;
    int64_t created_ms, finished_ms;
} guard_wait_view_t;

bool guard_wait_view(const guard_t *g, uint64_t id, guard_wait_view_t *out);
/* The entry's state and offered hold, without counting its position (which
 * walks the line): for callers that poll. */
bool guard_wait_state(const guard_t *g, uint64_t id, guard_wait_state_t *state_out,
                      uint64_t *hold_id_out);
/* The customer an entry is for (points into the guard: read it at once). */
bool guard_wait_customer(const guard_t *g, uint64_t id, const char **customer_out,
                         uint8_t *len_out);
size_t guard_wait_id_format(uint64_t id, char *out);
bool guard_wait_id_parse(const char *text, size_t len, uint64_t *id_out);

guard_stats_t guard_stats(const guard_t *g);

/* Invariants above plus engine_check(); for tests and asserts (O(all)). */
bool guard_check(const guard_t *g);

/* ---- the audit trail ---- */

/* What an audited op changed. */
#define GUARD_AUDIT_ACTIONS(X)                                                                   \
    X(GUARD_AUDIT_OTHER, "other")                                                               \
    X(GUARD_AUDIT_STOCK, "stock")               /* PUT /v1/skus/{sku}: stock */                 \
    X(GUARD_AUDIT_SKU_POLICY, "sku_policy")     /* ... its own policy */                        \
    X(GUARD_AUDIT_POLICY, "policy")             /* PUT /v1/policy */                            \
    X(GUARD_AUDIT_REVOKE, "revoke")             /* an identity's holds released */              \
    X(GUARD_AUDIT_HOLD_RELEASE, "hold_release") /* an operator released a hold */               \
    X(GUARD_AUDIT_HOLD_COMMIT, "hold_commit")   /* ... or committed it */

typedef enum {
#define GUARD_AUDIT_ENUM(name, text) name,
    GUARD_AUDIT_ACTIONS(GUARD_AUDIT_ENUM)
#undef GUARD_AUDIT_ENUM
        GUARD_AUDIT_ACTION_COUNT
} guard_audit_action_t;

const char *guard_audit_action_name(guard_audit_action_t a);

#define GUARD_AUDIT_TARGET_BYTES_MAX 200 /* "customer:" and a 128-byte name */
#define GUARD_AUDIT_CHANGE_BYTES_MAX 240 /* "before -> after", cut short with "(+N more)" */

/* One entry: every text NUL-terminated. The change is written when the op
 * is applied, from the state before and after it (so replay writes the
 * same), and kept as text: a later build shows what was written then. */
typedef struct {
    uint64_t seq; /* 1, 2, ...: never reused, for paging */
    int64_t at_ms;
    guard_audit_action_t action;
    uint64_t hold_id; /* HOLD_*: the engine's id (the server shows its own) */
    char key_id[GUARD_AUDIT_KEY_ID_BYTES + 1]; /* "": none */
    char route[GUARD_AUDIT_ROUTE_BYTES_MAX + 1];
    char target[GUARD_AUDIT_TARGET_BYTES_MAX + 1]; /* the sku, "shop", "customer:u-1" */
    char change[GUARD_AUDIT_CHANGE_BYTES_MAX + 1];
} guard_audit_entry_t;

/* The latest entry's sequence number (0: none yet), and one entry by its
 * number: false once it fell out of the last audit_max, or before it was
 * made. */
uint64_t guard_audit_seq(const guard_t *g);
bool guard_audit_entry(const guard_t *g, uint64_t seq, guard_audit_entry_t *out);

/* ---- snapshot ---- */

typedef void (*guard_write_fn)(void *ctx, const void *data, size_t size);
/* Writes the guard's own state (the engine's is written by the caller). */
void guard_snapshot_write(const guard_t *g, guard_write_fn write, void *ctx);
/* Reads it back into a guard whose engine was restored; false if damaged. */
bool guard_snapshot_read(guard_t *g, const uint8_t *data, size_t size, char *err, size_t err_size);

#endif
