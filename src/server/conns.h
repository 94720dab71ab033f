/*
 * conns.h - the open connections (server-private): who is connected, in
 * which phase of a request each is, and until when that phase may last.
 *
 * Why it exists. The HTTP library's own timeout is an idle timeout that every
 * byte restarts, so a client that sends a header byte every few seconds keeps
 * a connection forever, and at the library's connection limit new clients
 * wait unanswered in the listen backlog. So the server accepts connections
 * itself (listener.c), admits each through this table, holds it until its
 * request head is in (waiting), and a reaper shuts down those past a
 * deadline that no byte extends.
 *
 * Admission (conns_open), in order:
 *   1. an address (IPv6: its /64) with per_address_max open is refused;
 *   2. below max open shop connections, the connection is a shop connection;
 *   3. else it joins the operators' reserve: served one request, and only an
 *      operator's (http.c); below `reserve` of them it is simply admitted,
 *      else the oldest reserve connection still waiting for its head is
 *      evicted for it (shut down), so a flood that fills the reserve with
 *      connections that send nothing cannot keep the operator out (an
 *      operator's tool sends its head at once, and is evicted only by
 *      `reserve` newer connections arriving before it has);
 *   4. else (none to evict) it is refused: 503, and closed.
 * The reserve pool has twice `reserve` slots: evicted connections keep
 * theirs until the library has closed them.
 *
 * A connection waits (the accept thread's) until its first request head is
 * all in, and is then handed over to the library (conns_hand_over).
 *
 * A connection's phases and their deadlines (conn_enter, conns_reap):
 *
 *    accept --> HEAD --head in--> BODY --body in--> BUSY --reply sent--> IDLE
 *                ^  (head_ms)           (body_ms)     (none)   (idle_ms) |
 *                +------------------ request line in --------------------+
 *
 * HEAD's deadline counts from the accept (the first request) or from the
 * request line (later ones on a kept-alive connection); IDLE's from the end
 * of the previous reply. A connection past its deadline is shut down
 * (shutdown(2)); the library sees the end of input and closes it, and its
 * close notification frees the slot (conns_closed).
 *
 * Threads: conns_open, conns_reap (the accept thread) and conns_closed (an
 * HTTP thread, or the accept thread for a connection that never got past
 * waiting) take the table's lock; conn_enter (an HTTP thread, on every
 * request) takes none: a slot's phase and deadline are one atomic word,
 * which the reaper changes to CLOSING only by compare-and-swap, so a
 * connection that moved on in time is never shut down for its old deadline.
 *
 * Invariants, checked by conns_check():
 *   1. A slot is free (fd -1, on its pool's free list) or used (fd >= 0, and
 *      the fd map points at it); each pool counts its used slots, and its
 *      live ones (used, not shut down).
 *   2. Live shop slots <= max, live reserve slots <= reserve.
 *   3. Each per-address count equals the used slots of that address that
 *      have not released it (conns_closing), and none exceeds
 *      per_address_max.
 *   4. A shut-down fd is never shut down again, and a slot's fd is shut down
 *      only while the slot is used: the close notification frees the slot
 *      under the same lock as the reaper's shutdown, before the library
 *      closes the fd, so a reused fd number is never shut down by mistake.
 *   5. in_library counts the used slots that are not waiting.
 */
#ifndef HF_CONNS_H
#define HF_CONNS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

typedef enum {
    CONN_FREE = 0,
    CONN_HEAD,    /* waiting for the request head */
    CONN_BODY,    /* head in, the body arriving */
    CONN_BUSY,    /* request complete: handled, waiting for the journal, replying */
    CONN_IDLE,    /* kept alive between requests */
    CONN_CLOSING, /* shut down by the reaper */
} conn_phase_t;

/* Why a connection was refused, and why one was closed: the metrics'
 * labels. (`keepalive_max`: a reply closed its connection because the HTTP
 * threads held too many; `stalled`: the library's timeout ended a reply
 * nobody read.) */
#define CONNS_REFUSALS(X)                                                                      \
    X(CONNS_REFUSED_ADDRESS, "per_address")                                                    \
    X(CONNS_REFUSED_FULL, "full")                                                              \
    X(CONNS_REFUSED_RESERVE, "reserve")                                                        \
    X(CONNS_REFUSED_ERROR, "error")
#define CONNS_CLOSES(X)                                                                        \
    X(CONNS_CLOSED_HEAD, "head_deadline")                                                      \
    X(CONNS_CLOSED_BODY, "body_deadline")                                                      \
    X(CONNS_CLOSED_IDLE, "idle_deadline")                                                      \
    X(CONNS_CLOSED_EVICTED, "evicted")                                                         \
    X(CONNS_CLOSED_KEEPALIVE, "keepalive_max")                                                 \
    X(CONNS_CLOSED_STALLED, "stalled")

typedef enum {
#define CONNS_ENUM(name, label) name,
    CONNS_REFUSALS(CONNS_ENUM)
#undef CONNS_ENUM
        CONNS_REFUSAL_COUNT
} conns_refusal_t;

typedef enum {
#define CONNS_ENUM(name, label) name,
    CONNS_CLOSES(CONNS_ENUM)
#undef CONNS_ENUM
        CONNS_CLOSE_COUNT
} conns_close_t;

const char *conns_refusal_label(conns_refusal_t r);
const char *conns_close_label(conns_close_t c);

typedef struct {
    uint32_t max;             /* shop connections */
    uint32_t reserve;         /* operator connections past max */
    uint32_t per_address_max; /* 0: no cap */
    uint32_t fd_limit;        /* every fd is below this (RLIMIT_NOFILE) */
    int64_t head_ms, body_ms, idle_ms;
    uint64_t seed[2]; /* keys the address hash: collisions cannot be aimed */
} conns_config_t;

/* One connection's slot. Fields are conns.c's; word is atomic. */
typedef struct {
    uint64_t word; /* deadline_ms << 3 | phase (deadline 0: none) */
    int fd;        /* -1: free */
    uint32_t next_free;
    uint32_t peeked_bytes; /* while waiting: bytes of its head looked at */
    uint8_t addr[16];      /* the per-address key */
    uint8_t pool;          /* CONNS_SHOP or CONNS_RESERVE */
    bool shut;
    bool address_released; /* closing: no longer counted for its address */
    bool waiting; /* its first head is not all in: the accept thread has it */
} conn_t;

typedef struct {
    uint8_t key[16];
    uint32_t count; /* 0: empty */
} conns_address_t;

typedef enum {
    CONNS_SHOP,    /* admitted */
    CONNS_RESERVE, /* admitted to the operators' reserve */
    CONNS_REFUSED, /* see *why */
} conns_admission_t;

typedef struct {
    uint32_t first, count; /* its slots: [first, first + count) */
    uint32_t live_max;     /* max or reserve */
    uint32_t free_head;    /* first + count: none */
    uint32_t used, live;   /* live: used, not shut down */
} conns_pool_t;

typedef struct {
    conns_config_t config;
    pthread_mutex_t lock;
    conn_t *slots; /* max shop slots, then 2 * reserve reserve slots */
    uint32_t slot_count;
    conns_pool_t pools[2]; /* [CONNS_SHOP], [CONNS_RESERVE] */
    uint32_t in_library;   /* used, not waiting; atomic (read without the lock) */
    uint32_t *slot_of_fd;       /* fd -> slot index + 1 (0: none); fd_limit of them */
    conns_address_t *addresses; /* open addressing, linear probing */
    uint32_t address_mask;      /* capacity - 1, a power of two over 2 * slot_count */
    uint64_t accepted;          /* counters: atomic */
    uint64_t refused[CONNS_REFUSAL_COUNT];
    uint64_t closed[CONNS_CLOSE_COUNT];
} conns_t;

/* Reserves every table. Returns 0, or -1 (nothing to deinit) if memory
 * is short. */
int conns_init(conns_t *t, const conns_config_t *c);
void conns_deinit(conns_t *t);

/* Admits the connection accepted as fd from addr, waiting, in HEAD with its
 * deadline counted from now_ms (*index: its slot), or refuses it (counted,
 * *why set; the caller answers and closes fd). */
conns_admission_t conns_open(conns_t *t, int fd, const struct sockaddr *addr, socklen_t len,
                             int64_t now_ms, conns_refusal_t *why, uint32_t *index);
/* A waiting connection's head was looked at again (bytes of it); false once
 * it has had budget_bytes of looking in all. The accept thread only. */
bool conns_peeked(conns_t *t, uint32_t index, size_t bytes, size_t budget_bytes);
/* A waiting connection goes to the library (before MHD_add_connection). */
void conns_hand_over(conns_t *t, uint32_t index);
/* Connections the library holds (handed over, not closed). No lock. */
uint32_t conns_in_library(const conns_t *t);
/* Closes every connection still waiting, and frees its slot (at stop, the
 * accept thread gone). */
void conns_close_waiting(conns_t *t);
/* The library took the fd (its start notification): the slot, for the
 * connection's socket context; NULL if fd was never admitted. */
conn_t *conns_started(conns_t *t, int fd);
/* The connection's last reply is sent and it is about to close: it stops
 * counting for its address now, since its client may already be opening
 * the next one (the slot itself is freed by conns_closed). */
void conns_closing(conns_t *t, conn_t *c);
/* The connection is closing (the library's close notification, or the accept
 * thread ending a waiting one): frees its slot. Called before fd is closed. */
void conns_closed(conns_t *t, int fd);

/* A request moved the connection to phase p at now_ms (HEAD only from
 * IDLE: a head's deadline never moves). No lock; any HTTP thread. */
void conn_enter(const conns_t *t, conn_t *c, conn_phase_t p, int64_t now_ms);
bool conn_reserve(const conn_t *c);

/* Shuts down every connection past its deadline at now_ms; returns how
 * many. */
uint32_t conns_reap(conns_t *t, int64_t now_ms);

void conns_count_refusal(conns_t *t, conns_refusal_t why);
void conns_count_close(conns_t *t, conns_close_t why);

typedef struct {
    uint32_t open_shop, open_reserve, addresses, in_library;
    uint64_t accepted;
    uint64_t refused[CONNS_REFUSAL_COUNT];
    uint64_t closed[CONNS_CLOSE_COUNT];
} conns_stats_t;

conns_stats_t conns_stats(conns_t *t);

/* Walks the table; true if every invariant above holds (takes the lock). */
bool conns_check(conns_t *t);

#endif
