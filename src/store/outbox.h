/*
 * outbox.h - the outbox's part of the commit thread, private to src/store/
 * (store.h has the outbox's front door and its contract).
 *
 * Rows wait in memory, in the order they were added, each with the journal
 * seq it needs. The commit thread takes the rows whose seq is appended (they
 * are a prefix: seqs only grow) together with the journal records of the
 * same batch, and writes both in one transaction.
 */
#ifndef HF_STORE_OUTBOX_H
#define HF_STORE_OUTBOX_H

#include "store.h"

typedef struct {
    uint64_t need_seq;
    uint32_t kind;
    char event_id[STORE_OUTBOX_EVENT_ID_MAX + 1];
    int64_t at_ms;
    char *body;
    size_t size;
    uint64_t row_id; /* once written */
} outbox_row_t;

/* What one commit carries: rows to insert, delivered rows to delete. */
typedef struct {
    outbox_row_t *rows;
    uint32_t row_count, row_cap;
    uint64_t *deletes;
    uint32_t delete_count, delete_cap;
    int64_t marker_ms; /* the largest at_ms among rows (0: none) */
} outbox_batch_t;

/* Under s->lock: whether the commit thread has outbox work, and taking it
 * into b (which the previous commit emptied). */
bool outbox_ready(const store_t *s);
void outbox_take(store_t *s, outbox_batch_t *b);
/* Inside the commit's transaction (commit thread, lock not held): writes
 * b. An SQLite result code. */
int outbox_write(store_t *s, outbox_batch_t *b);
/* After the transaction: hands the committed rows to the watcher (if ok),
 * then empties b. */
void outbox_done(store_t *s, outbox_batch_t *b, bool ok);
void outbox_batch_free(outbox_batch_t *b);
/* A failed store's pending rows are as unknown as its records: gone. Under
 * s->lock. */
void outbox_forget(store_t *s);
void outbox_free(store_t *s);

#endif
