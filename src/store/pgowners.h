/*
 * pgowners.h - where other shops of a cluster are served, as this node last
 * read it from PostgreSQL (store-private): what a redirect to another
 * shop's owner needs.
 *
 * Filled on demand: a shop asked for and not known, or known but read too
 * long ago, is marked wanted, and the journal's lease thread reads the
 * wanted ones in one query (pgjournal.c). Reading every shop instead would
 * cost PostgreSQL each node's share of a platform's shops every few
 * seconds, and a list of the first N would miss the rest. At most
 * PGOWNERS_MAX shops are kept; a new one replaces the one read longest ago
 * that is not wanted. Thread-safe.
 */
#ifndef HF_PGOWNERS_H
#define HF_PGOWNERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define PGOWNERS_MAX 1024
/* A shop's owner as read is answered this long, then read again (and the
 * old answer given meanwhile): owners change at failovers only. */
#define PGOWNERS_FRESH_MS 5000
/* "No live owner" is kept for less: a shop's first owner may be starting. */
#define PGOWNERS_NONE_FRESH_MS 1000
#define PGOWNERS_URL_BYTES 256

typedef enum {
    PGOWNERS_AT,      /* served at url (as last read) */
    PGOWNERS_NONE,    /* no live owner when last read */
    PGOWNERS_LOOKING, /* not read yet: ask again in a moment */
} pgowners_answer_t;

typedef struct pgowners_s pgowners_t;

/* NULL if out of memory. pgowners_free(NULL) does nothing. */
pgowners_t *pgowners_new(void);
void pgowners_free(pgowners_t *o);

/* Where shop (a shop name: [a-z0-9-], 1..STORE_SHOP_NAME_MAX bytes) is
 * served, as of the last read, at now_ms (monotonic). Marks it wanted when
 * it is unknown or its answer is stale; *wanted_now says whether this call
 * did (the reader should be woken). */
pgowners_answer_t pgowners_find(pgowners_t *o, const char *shop, int64_t now_ms, char *url,
                                size_t url_size, bool *wanted_now);

/* Copies up to max wanted shops' names into names, in bytewise order;
 * returns how many. */
size_t pgowners_wanted(pgowners_t *o, char (*names)[STORE_SHOP_NAME_MAX + 1], size_t max);

/* Whether any shop is wanted (a read is due, or failed and is due again). */
bool pgowners_any_wanted(pgowners_t *o);

/* What a read at now_ms found for a wanted shop: its owner's url, or NULL
 * for no live owner. A shop no longer kept is ignored. */
void pgowners_found(pgowners_t *o, const char *shop, const char *url, int64_t now_ms);

#endif
