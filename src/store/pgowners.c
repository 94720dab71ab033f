/*
 * pgowners.c - where other shops of a cluster are served (pgowners.h).
 */
#include "pgowners.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char shop[STORE_SHOP_NAME_MAX + 1];
    char url[PGOWNERS_URL_BYTES];
    bool live;       /* an owner with a live lease, when last read */
    bool wanted;     /* to be read (again) */
    int64_t read_ms; /* when last read (monotonic); 0: never */
} entry_t;

struct pgowners_s {
    pthread_mutex_t lock;
    entry_t *entries; /* [0..count), sorted by shop, bytewise */
    size_t count;
};

pgowners_t *pgowners_new(void)
{
    pgowners_t *o = calloc(1, sizeof *o);
    entry_t *entries = calloc(PGOWNERS_MAX, sizeof *entries);
    if (o == NULL || entries == NULL) {
        free(o);
        free(entries);
        return NULL;
    }
    o->entries = entries;
    pthread_mutex_init(&o->lock, NULL);
    return o;
}

void pgowners_free(pgowners_t *o)
{
    if (o == NULL) {
        return;
    }
    pthread_mutex_destroy(&o->lock);
    free(o->entries);
    free(o);
}

/* Where shop is, or would go (under the lock). */
static size_t position(const pgowners_t *o, const char *shop, bool *found)
{
    size_t lo = 0, hi = o->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(shop, o->entries[mid].shop);
        if (cmp == 0) {
            *found = true;
            return mid;
        }
        if (cmp < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    *found = false;
    return lo;
}

/* Makes room when full: drops the entry read longest ago that is not
 * wanted. False if every entry is wanted (a read is due for all). */
static bool make_room(pgowners_t *o)
{
    if (o->count < PGOWNERS_MAX) {
        return true;
    }
    size_t victim = o->count;
    for (size_t i = 0; i < o->count; i++) {
        const entry_t *e = &o->entries[i];
        if (!e->wanted && (victim == o->count || e->read_ms < o->entries[victim].read_ms)) {
            victim = i;
        }
    }
    if (victim == o->count) {
        return false;
    }
    memmove(&o->entries[victim], &o->entries[victim + 1],
            (o->count - victim - 1) * sizeof *o->entries);
    o->count--;
    return true;
}

/* Adds shop, wanted (under the lock). False if there is no room. */
static bool add(pgowners_t *o, const char *shop)
{
    if (!make_room(o)) {
        return false;
    }
    bool found;
    size_t at = position(o, shop, &found);
    assert(!found);
    memmove(&o->entries[at + 1], &o->entries[at], (o->count - at) * sizeof *o->entries);
    o->count++;
    entry_t *e = &o->entries[at];
    memset(e, 0, sizeof *e);
    snprintf(e->shop, sizeof e->shop, "%s", shop);
    e->wanted = true;
    return true;
}

pgowners_answer_t pgowners_find(pgowners_t *o, const char *shop, int64_t now_ms, char *url,
                                size_t url_size, bool *wanted_now)
{
    assert(strlen(shop) >= 1 && strlen(shop) <= STORE_SHOP_NAME_MAX);
    *wanted_now = false;
    pthread_mutex_lock(&o->lock);
    bool found;
    size_t at = position(o, shop, &found);
    pgowners_answer_t answer = PGOWNERS_LOOKING;
    if (!found) {
        *wanted_now = add(o, shop);
    } else {
        entry_t *e = &o->entries[at];
        if (e->read_ms != 0) {
            bool fits = snprintf(url, url_size, "%s", e->url) < (int)url_size;
            answer = e->live && fits ? PGOWNERS_AT : PGOWNERS_NONE;
            int64_t fresh_ms = e->live ? PGOWNERS_FRESH_MS : PGOWNERS_NONE_FRESH_MS;
            if (now_ms - e->read_ms >= fresh_ms && !e->wanted) {
                e->wanted = *wanted_now = true;
            }
        }
    }
    pthread_mutex_unlock(&o->lock);
    return answer;
}

size_t pgowners_wanted(pgowners_t *o, char (*names)[STORE_SHOP_NAME_MAX + 1], size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&o->lock);
    for (size_t i = 0; i < o->count && n < max; i++) {
        if (o->entries[i].wanted) {
            memcpy(names[n++], o->entries[i].shop, sizeof names[0]);
        }
    }
    pthread_mutex_unlock(&o->lock);
    return n;
}

bool pgowners_any_wanted(pgowners_t *o)
{
    bool any = false;
    pthread_mutex_lock(&o->lock);
    for (size_t i = 0; i < o->count && !any; i++) {
        any = o->entries[i].wanted;
    }
    pthread_mutex_unlock(&o->lock);
    return any;
}

void pgowners_found(pgowners_t *o, const char *shop, const char *url, int64_t now_ms)
{
    pthread_mutex_lock(&o->lock);
    bool found;
    size_t at = position(o, shop, &found);
    if (found) {
        entry_t *e = &o->entries[at];
        /* A URL too long to keep whole is no place to send anyone. */
        e->live = url != NULL && strlen(url) < sizeof e->url;
        snprintf(e->url, sizeof e->url, "%s", e->live ? url : "");
        e->read_ms = now_ms > 0 ? now_ms : 1; /* 0 means never */
        e->wanted = false;
    }
    pthread_mutex_unlock(&o->lock);
}
