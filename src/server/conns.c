/*
 * conns.c - the open connections' table (conns.h has the design).
 *
 * Every table is reserved at conns_init: max + 2 * reserve slots, an fd map of
 * fd_limit entries (the kernel hands out no fd at or above RLIMIT_NOFILE),
 * and an address table with twice as many entries as slots, so that linear
 * probing stays short; each address in it has at least one open slot.
 */
#include "conns.h"

#include <assert.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PHASE_BITS 3
#define PHASE_MASK ((1u << PHASE_BITS) - 1)

static const char *const refusal_labels[CONNS_REFUSAL_COUNT] = {
#define CONNS_LABEL(name, label) label,
    CONNS_REFUSALS(CONNS_LABEL)
#undef CONNS_LABEL
};

static const char *const close_labels[CONNS_CLOSE_COUNT] = {
#define CONNS_LABEL(name, label) label,
    CONNS_CLOSES(CONNS_LABEL)
#undef CONNS_LABEL
};

const char *conns_refusal_label(conns_refusal_t r)
{
    assert(r < CONNS_REFUSAL_COUNT);
    return refusal_labels[r];
}

const char *conns_close_label(conns_close_t c)
{
    assert(c < CONNS_CLOSE_COUNT);
    return close_labels[c];
}

static uint64_t word_of(conn_phase_t p, int64_t deadline_ms)
{
    assert(deadline_ms >= 0 && p <= PHASE_MASK);
    return ((uint64_t)deadline_ms << PHASE_BITS) | (uint64_t)p;
}

static conn_phase_t phase_of(uint64_t word)
{
    return (conn_phase_t)(word & PHASE_MASK);
}

static int64_t deadline_of(uint64_t word)
{
    return (int64_t)(word >> PHASE_BITS);
}

/* ------------------------------------------------------------- addresses */

/* The per-address key: IPv4 as an IPv4-mapped IPv6 address; IPv6 cut to its
 * /64, since anyone with one IPv6 address has 2^64 of them. */
static void address_key(const struct sockaddr *a, socklen_t len, uint8_t key[16])
{
    memset(key, 0, 16);
    if (a->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)a;
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &in->sin_addr, 4);
    } else if (a->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)a;
        bool mapped = IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr);
        memcpy(key, &in6->sin6_addr, mapped ? 16 : 8);
    }
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* Keyed with a secret seed, so that a client choosing its addresses cannot
 * aim them at one run of the table and make every lookup long. */
static uint32_t address_hash(const conns_t *t, const uint8_t key[16])
{
    uint64_t hi, lo;
    memcpy(&hi, key, 8);
    memcpy(&lo, key + 8, 8);
    return (uint32_t)mix64(hi ^ t->config.seed[0] ^ mix64(lo ^ t->config.seed[1]));
}

/* The entry of key, or the empty entry where it would go. Under the lock. */
static conns_address_t *address_find(const conns_t *t, const uint8_t key[16])
{
    uint32_t i = address_hash(t, key) & t->address_mask;
    for (uint32_t probes = 0; probes <= t->address_mask; probes++) {
        conns_address_t *e = &t->addresses[i];
        if (e->count == 0 || memcmp(e->key, key, 16) == 0) {
            return e;
        }
        i = (i + 1) & t->address_mask;
    }
    assert(0 && "the address table holds at most half its capacity");
    return NULL;
}

/* Empties an entry, moving later entries of its run back so that lookups
 * never stop at a hole (deletion without tombstones). Under the lock. */
static void address_remove(conns_t *t, conns_address_t *hole)
{
    uint32_t mask = t->address_mask;
    uint32_t h = (uint32_t)(hole - t->addresses);
    hole->count = 0;
    for (uint32_t i = (h + 1) & mask; t->addresses[i].count != 0; i = (i + 1) & mask) {
        uint32_t home = address_hash(t, t->addresses[i].key) & mask;
        /* Entry i may fill the hole if its home is not in (h, i]. */
        bool stays = h <= i ? (home > h && home <= i) : (home > h || home <= i);
        if (!stays) {
            t->addresses[h] = t->addresses[i];
            t->addresses[i].count = 0;
            h = i;
        }
    }
}

/* ------------------------------------------------------------- the table */

static void pool_init(conns_t *t, conns_pool_t *p, uint32_t first, uint32_t count,
                      uint32_t live_max)
{
    *p = (conns_pool_t){.first = first, .count = count, .live_max = live_max};
    p->free_head = first;
    for (uint32_t i = first; i < first + count; i++) {
        t->slots[i].fd = -1;
        t->slots[i].next_free = i + 1;
    }
}

int conns_init(conns_t *t, const conns_config_t *c)
{
    memset(t, 0, sizeof *t);
    assert(c->max > 0 && c->fd_limit > 0 && c->head_ms > 0 && c->body_ms > 0 && c->idle_ms > 0);
    t->config = *c;
    t->slot_count = c->max + 2 * c->reserve;
    uint32_t capacity = 1;
    while (capacity < 2 * t->slot_count) {
        capacity *= 2;
    }
    t->address_mask = capacity - 1;
    t->slots = calloc(t->slot_count, sizeof *t->slots);
    t->slot_of_fd = calloc(c->fd_limit, sizeof *t->slot_of_fd);
    t->addresses = calloc(capacity, sizeof *t->addresses);
    if (t->slots == NULL || t->slot_of_fd == NULL || t->addresses == NULL) {
        free(t->slots);
        free(t->slot_of_fd);
        free(t->addresses);
        memset(t, 0, sizeof *t);
        return -1;
    }
    pool_init(t, &t->pools[CONNS_SHOP], 0, c->max, c->max);
    pool_init(t, &t->pools[CONNS_RESERVE], c->max, 2 * c->reserve, c->reserve);
    pthread_mutex_init(&t->lock, NULL);
    assert(conns_check(t));
    return 0;
}

void conns_deinit(conns_t *t)
{
    pthread_mutex_destroy(&t->lock);
    free(t->slots);
    free(t->slot_of_fd);
    free(t->addresses);
    memset(t, 0, sizeof *t);
}

/* Takes slot i off its address's count. Under the lock. */
static void address_release(conns_t *t, conn_t *c)
{
    assert(!c->address_released);
    conns_address_t *a = address_find(t, c->addr);
    assert(a->count > 0);
    if (--a->count == 0) {
        address_remove(t, a);
    }
    c->address_released = true;
}

/* Returns slot i to its pool's free list (and its address's count, unless
 * given back already). Under the lock. */
static void slot_free(conns_t *t, uint32_t i)
{
    conn_t *c = &t->slots[i];
    conns_pool_t *p = &t->pools[c->pool];
    assert(c->fd >= 0 && t->slot_of_fd[c->fd] == i + 1 && p->used > 0);
    if (!c->address_released) {
        address_release(t, c);
    }
    p->used--;
    if (!c->waiting) {
        __atomic_fetch_sub(&t->in_library, 1, __ATOMIC_RELAXED);
    }
    if (!c->shut) {
        assert(p->live > 0);
        p->live--;
    }
    t->slot_of_fd[c->fd] = 0;
    __atomic_store_n(&c->word, word_of(CONN_FREE, 0), __ATOMIC_RELEASE);
    c->fd = -1;
    c->next_free = p->free_head;
    p->free_head = i;
}

static void count(uint64_t *counter)
{
    __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

/* Shuts slot i's connection down if its word is still `word`: a connection
 * that moved on meanwhile is left alone. Under the lock, which keeps the
 * slot's fd the connection's own (invariant 4). */
static bool shut_down(conns_t *t, uint32_t i, uint64_t word)
{
    conn_t *c = &t->slots[i];
    if (c->fd < 0 || c->shut ||
        !__atomic_compare_exchange_n(&c->word, &word, word_of(CONN_CLOSING, 0), false,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        return false;
    }
    shutdown(c->fd, SHUT_RDWR);
    c->shut = true;
    assert(t->pools[c->pool].live > 0);
    t->pools[c->pool].live--;
    return true;
}

/* Makes room in a full reserve: shuts down its oldest connection that has
 * not sent its head. Returns false if there is none. Under the lock. */
static bool evict(conns_t *t)
{
    const conns_pool_t *p = &t->pools[CONNS_RESERVE];
    uint32_t victim = t->slot_count;
    uint64_t victim_word = 0;
    for (uint32_t i = p->first; i < p->first + p->count; i++) {
        uint64_t word = __atomic_load_n(&t->slots[i].word, __ATOMIC_ACQUIRE);
        if (t->slots[i].fd >= 0 && !t->slots[i].shut && phase_of(word) == CONN_HEAD &&
            (victim == t->slot_count || deadline_of(word) < deadline_of(victim_word))) {
            victim = i;
            victim_word = word;
        }
    }
    if (victim == t->slot_count || !shut_down(t, victim, victim_word)) {
        return false;
    }
    count(&t->closed[CONNS_CLOSED_EVICTED]);
    return true;
}

/* Which pool the connection from address a may join, or why not. May evict
 * a reserve connection for it. Under the lock. */
static conns_admission_t admission(conns_t *t, const conns_address_t *a, conns_refusal_t *why)
{
    uint32_t per_address_max = t->config.per_address_max;
    if (per_address_max > 0 && a->count >= per_address_max) {
        *why = CONNS_REFUSED_ADDRESS;
        return CONNS_REFUSED;
    }
    const conns_pool_t *shop = &t->pools[CONNS_SHOP];
    if (shop->live < shop->live_max && shop->used < shop->count) {
        return CONNS_SHOP;
    }
    const conns_pool_t *reserve = &t->pools[CONNS_RESERVE];
    if (reserve->used < reserve->count &&
        (reserve->live < reserve->live_max || evict(t))) {
        return CONNS_RESERVE;
    }
    *why = CONNS_REFUSED_FULL;
    return CONNS_REFUSED;
}

conns_admission_t conns_open(conns_t *t, int fd, const struct sockaddr *addr, socklen_t len,
                             int64_t now_ms, conns_refusal_t *why, uint32_t *index)
{
    uint8_t key[16];
    address_key(addr, len, key);
    if (fd < 0 || (uint32_t)fd >= t->config.fd_limit) {
        *why = CONNS_REFUSED_ERROR;
        count(&t->refused[*why]);
        return CONNS_REFUSED;
    }
    pthread_mutex_lock(&t->lock);
    if (t->slot_of_fd[fd] != 0) {
        /* The library closed this fd without its close notification: the
         * fd number is back, so the old connection is certainly gone. */
        slot_free(t, t->slot_of_fd[fd] - 1);
    }
    conns_address_t *a = address_find(t, key);
    conns_admission_t pool = admission(t, a, why);
    if (pool == CONNS_REFUSED) {
        pthread_mutex_unlock(&t->lock);
        count(&t->refused[*why]);
        return pool;
    }
    conns_pool_t *p = &t->pools[pool];
    assert(p->free_head < p->first + p->count);
    uint32_t i = p->free_head;
    conn_t *c = &t->slots[i];
    p->free_head = c->next_free;
    p->used++;
    p->live++;
    if (a->count++ == 0) {
        memcpy(a->key, key, 16);
    }
    c->fd = fd;
    memcpy(c->addr, key, 16);
    c->pool = (uint8_t)pool;
    c->shut = false;
    c->address_released = false;
    c->waiting = true;
    c->peeked_bytes = 0;
    *index = i;
    __atomic_store_n(&c->word, word_of(CONN_HEAD, now_ms + t->config.head_ms), __ATOMIC_RELEASE);
    t->slot_of_fd[fd] = i + 1;
    pthread_mutex_unlock(&t->lock);
    count(&t->accepted);
    return pool;
}

bool conns_peeked(conns_t *t, uint32_t index, size_t bytes, size_t budget_bytes)
{
    assert(index < t->slot_count && t->slots[index].waiting);
    conn_t *c = &t->slots[index];
    c->peeked_bytes = bytes > budget_bytes - c->peeked_bytes ? (uint32_t)budget_bytes
                                                              : c->peeked_bytes + (uint32_t)bytes;
    return c->peeked_bytes < budget_bytes;
}

void conns_hand_over(conns_t *t, uint32_t index)
{
    assert(index < t->slot_count);
    pthread_mutex_lock(&t->lock);
    assert(t->slots[index].waiting);
    t->slots[index].waiting = false;
    __atomic_fetch_add(&t->in_library, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&t->lock);
}

uint32_t conns_in_library(const conns_t *t)
{
    return __atomic_load_n(&t->in_library, __ATOMIC_RELAXED);
}

void conns_close_waiting(conns_t *t)
{
    pthread_mutex_lock(&t->lock);
    for (uint32_t i = 0; i < t->slot_count; i++) {
        int fd = t->slots[i].fd;
        if (fd >= 0 && t->slots[i].waiting) {
            slot_free(t, i);
            close(fd);
        }
    }
    pthread_mutex_unlock(&t->lock);
}

conn_t *conns_started(conns_t *t, int fd)
{
    if (fd < 0 || (uint32_t)fd >= t->config.fd_limit) {
        return NULL;
    }
    pthread_mutex_lock(&t->lock);
    uint32_t i = t->slot_of_fd[fd];
    pthread_mutex_unlock(&t->lock);
    return i == 0 ? NULL : &t->slots[i - 1];
}

void conns_closing(conns_t *t, conn_t *c)
{
    pthread_mutex_lock(&t->lock);
    if (c->fd >= 0 && !c->address_released) {
        address_release(t, c);
    }
    pthread_mutex_unlock(&t->lock);
}

void conns_closed(conns_t *t, int fd)
{
    if (fd < 0 || (uint32_t)fd >= t->config.fd_limit) {
        return;
    }
    pthread_mutex_lock(&t->lock);
    if (t->slot_of_fd[fd] != 0) {
        slot_free(t, t->slot_of_fd[fd] - 1);
    }
    pthread_mutex_unlock(&t->lock);
}

void conn_enter(const conns_t *t, conn_t *c, conn_phase_t p, int64_t now_ms)
{
    uint64_t word = __atomic_load_n(&c->word, __ATOMIC_ACQUIRE);
    int64_t deadline_ms = 0;
    switch (p) {
    case CONN_HEAD:
        if (phase_of(word) != CONN_IDLE) {
            return; /* the first request's head counts from the accept */
        }
        deadline_ms = now_ms + t->config.head_ms;
        break;
    case CONN_BODY:
        deadline_ms = now_ms + t->config.body_ms;
        break;
    case CONN_IDLE:
        deadline_ms = now_ms + t->config.idle_ms;
        break;
    default:
        assert(p == CONN_BUSY);
    }
    if (phase_of(word) == CONN_CLOSING) {
        return; /* shut down already: it stays so until it is closed */
    }
    /* Only this connection's thread changes the word but for the reaper's
     * swap to CLOSING; if that came in between, keep it. */
    __atomic_compare_exchange_n(&c->word, &word, word_of(p, deadline_ms), false,
                                __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

bool conn_reserve(const conn_t *c)
{
    return c->pool == CONNS_RESERVE; /* set before the library took the fd */
}

static conns_close_t close_reason(conn_phase_t p)
{
    return p == CONN_HEAD ? CONNS_CLOSED_HEAD : p == CONN_BODY ? CONNS_CLOSED_BODY
                                                                : CONNS_CLOSED_IDLE;
}

uint32_t conns_reap(conns_t *t, int64_t now_ms)
{
    uint32_t reaped = 0;
    for (uint32_t i = 0; i < t->slot_count; i++) {
        /* Read without the lock: most slots are not due, and a due one is
         * checked again, under it, by the swap in shut_down. */
        uint64_t word = __atomic_load_n(&t->slots[i].word, __ATOMIC_ACQUIRE);
        conn_phase_t p = phase_of(word);
        if ((p != CONN_HEAD && p != CONN_BODY && p != CONN_IDLE) || deadline_of(word) > now_ms) {
            continue;
        }
        pthread_mutex_lock(&t->lock);
        bool shut = shut_down(t, i, word);
        pthread_mutex_unlock(&t->lock);
        if (shut) {
            count(&t->closed[close_reason(p)]);
            reaped++;
        }
    }
    return reaped;
}

void conns_count_refusal(conns_t *t, conns_refusal_t why)
{
    assert(why < CONNS_REFUSAL_COUNT);
    count(&t->refused[why]);
}

void conns_count_close(conns_t *t, conns_close_t why)
{
    assert(why < CONNS_CLOSE_COUNT);
    count(&t->closed[why]);
}

conns_stats_t conns_stats(conns_t *t)
{
    conns_stats_t st = {0};
    pthread_mutex_lock(&t->lock);
    st.open_shop = t->pools[CONNS_SHOP].used;
    st.open_reserve = t->pools[CONNS_RESERVE].used;
    st.in_library = conns_in_library(t);
    for (uint32_t i = 0; i <= t->address_mask; i++) {
        st.addresses += t->addresses[i].count > 0;
    }
    pthread_mutex_unlock(&t->lock);
    st.accepted = __atomic_load_n(&t->accepted, __ATOMIC_RELAXED);
    for (int i = 0; i < CONNS_REFUSAL_COUNT; i++) {
        st.refused[i] = __atomic_load_n(&t->refused[i], __ATOMIC_RELAXED);
    }
    for (int i = 0; i < CONNS_CLOSE_COUNT; i++) {
        st.closed[i] = __atomic_load_n(&t->closed[i], __ATOMIC_RELAXED);
    }
    return st;
}

/* ----------------------------------------------------------- invariants */

/* A pool's free list holds exactly its free slots, and its counts are
 * those of its used slots. */
static bool check_pool(const conns_t *t, const conns_pool_t *p, uint32_t *used,
                       uint32_t *handed)
{
    uint32_t free_count = 0, live = 0, end = p->first + p->count;
    for (uint32_t i = p->free_head; i < end; i = t->slots[i].next_free) {
        if (i < p->first || t->slots[i].fd != -1 || ++free_count > p->count) {
            return false;
        }
    }
    *used = 0;
    for (uint32_t i = p->first; i < end; i++) {
        const conn_t *c = &t->slots[i];
        if (c->fd < 0) {
            continue;
        }
        if ((uint32_t)c->fd >= t->config.fd_limit || t->slot_of_fd[c->fd] != i + 1 ||
            &t->pools[c->pool] != p) {
            return false;
        }
        (*used)++;
        *handed += !c->waiting;
        live += !c->shut;
    }
    return free_count + *used == p->count && *used == p->used && live == p->live &&
           live <= p->live_max && (p->free_head == end || p->free_head >= p->first);
}

/* Each used slot's address entry (unless given back), tallied in a scratch
 * array parallel to the address table, must come to that entry's count. */
static bool check_addresses(const conns_t *t)
{
    uint32_t *tally = calloc((size_t)t->address_mask + 1, sizeof *tally);
    if (tally == NULL) {
        return true; /* no memory to check with: nothing is known broken */
    }
    bool ok = true;
    for (uint32_t k = 0; k < t->slot_count; k++) {
        if (t->slots[k].fd >= 0 && !t->slots[k].address_released) {
            tally[address_find(t, t->slots[k].addr) - t->addresses]++;
        }
    }
    for (uint32_t i = 0; i <= t->address_mask; i++) {
        const conns_address_t *a = &t->addresses[i];
        ok = ok && tally[i] == a->count &&
             (a->count == 0 || address_find(t, a->key) == a) &&
             (t->config.per_address_max == 0 || a->count <= t->config.per_address_max);
    }
    free(tally);
    return ok;
}

bool conns_check(conns_t *t)
{
    pthread_mutex_lock(&t->lock);
    uint32_t shop, reserve, handed = 0;
    bool ok = check_pool(t, &t->pools[CONNS_SHOP], &shop, &handed) &&
              check_pool(t, &t->pools[CONNS_RESERVE], &reserve, &handed) &&
              handed == conns_in_library(t) && check_addresses(t);
    pthread_mutex_unlock(&t->lock);
    return ok;
}
