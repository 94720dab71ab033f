/*
 * outbox.c - rows committed with the journal (store.h, "the outbox").
 *
 * Table (in holdfast.db, made by store.c's schema):
 *   outbox(id INTEGER PRIMARY KEY AUTOINCREMENT, kind, event_id, at_ms, body)
 *   meta('outbox_marker_ms')  the largest at_ms ever committed
 *
 * Invariants:
 *   1. A row is written in the same transaction as every journal record
 *      with seq <= its need_seq that was not durable yet, or after them.
 *   2. Pending rows are in need_seq order, so the rows a batch may take are
 *      a prefix of them.
 *   3. Only the commit thread writes the table: deletes are queued here and
 *      carried by its next transaction, so no second writer ever meets the
 *      journal's (a busy database would fail the journal for good).
 */
#include "outbox.h"

#include <assert.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct store_outbox_s {
    outbox_batch_t pending;
    store_outbox_fn fn;
    void *ctx;
};

static bool grow(void **items, uint32_t *cap, uint32_t need, size_t item_size)
{
    if (need <= *cap) {
        return true;
    }
    uint32_t next = *cap == 0 ? 64 : *cap * 2;
    while (next < need) {
        next *= 2;
    }
    void *p = realloc(*items, (size_t)next * item_size);
    if (p == NULL) {
        return false;
    }
    *items = p;
    *cap = next;
    return true;
}

int store_outbox_watch(store_t *s, store_outbox_fn fn, void *ctx)
{
    if (s->db == NULL) {
        return -1; /* the outbox lives in holdfast.db only */
    }
    struct store_outbox_s *o = calloc(1, sizeof *o);
    if (o == NULL) {
        return -1;
    }
    o->fn = fn;
    o->ctx = ctx;
    pthread_mutex_lock(&s->lock);
    assert(s->outbox == NULL);
    s->outbox = o;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

/* Under s->lock: wakes an idle commit thread once there is work for it. */
static void wake(store_t *s)
{
    if (s->thread_idle && outbox_ready(s)) {
        pthread_cond_signal(&s->wake);
    }
}

int store_outbox_add(store_t *s, uint64_t need_seq, uint32_t kind, const char *event_id,
                     int64_t at_ms, const char *body, size_t size)
{
    assert(strlen(event_id) <= STORE_OUTBOX_EVENT_ID_MAX);
    char *copy = malloc(size + 1);
    if (copy == NULL) {
        return -1;
    }
    memcpy(copy, body, size);
    copy[size] = '\0';
    pthread_mutex_lock(&s->lock);
    outbox_batch_t *p = s->outbox != NULL ? &s->outbox->pending : NULL;
    if (p == NULL || s->failed ||
        !grow((void **)&p->rows, &p->row_cap, p->row_count + 1, sizeof *p->rows)) {
        pthread_mutex_unlock(&s->lock);
        free(copy);
        return -1;
    }
    assert(p->row_count == 0 || p->rows[p->row_count - 1].need_seq <= need_seq);
    outbox_row_t *r = &p->rows[p->row_count++];
    *r = (outbox_row_t){.need_seq = need_seq, .kind = kind, .at_ms = at_ms, .body = copy,
                        .size = size};
    snprintf(r->event_id, sizeof r->event_id, "%s", event_id);
    wake(s);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

void store_outbox_delete(store_t *s, uint64_t row_id)
{
    pthread_mutex_lock(&s->lock);
    outbox_batch_t *p = s->outbox != NULL ? &s->outbox->pending : NULL;
    /* Out of memory: the row stays, and is delivered again after a restart
     * (the receiver knows it by its event id). */
    if (p != NULL &&
        grow((void **)&p->deletes, &p->delete_cap, p->delete_count + 1, sizeof *p->deletes)) {
        p->deletes[p->delete_count++] = row_id;
        wake(s);
    }
    pthread_mutex_unlock(&s->lock);
}

uint32_t store_outbox_waiting(store_t *s)
{
    pthread_mutex_lock(&s->lock);
    uint32_t n = s->outbox != NULL ? s->outbox->pending.row_count : 0;
    pthread_mutex_unlock(&s->lock);
    return n;
}

bool outbox_ready(const store_t *s)
{
    const outbox_batch_t *p = s->outbox != NULL ? &s->outbox->pending : NULL;
    return p != NULL && (p->delete_count > 0 ||
                         (p->row_count > 0 && p->rows[0].need_seq <= s->appended_seq));
}

void outbox_take(store_t *s, outbox_batch_t *b)
{
    assert(b->row_count == 0 && b->delete_count == 0);
    outbox_batch_t *p = s->outbox != NULL ? &s->outbox->pending : NULL;
    if (p == NULL) {
        return;
    }
    /* Every record up to appended_seq is durable or in this batch. */
    uint32_t n = 0;
    while (n < p->row_count && p->rows[n].need_seq <= s->appended_seq) {
        n++;
    }
    if (n > 0 && grow((void **)&b->rows, &b->row_cap, n, sizeof *b->rows)) {
        memcpy(b->rows, p->rows, (size_t)n * sizeof *p->rows);
        memmove(p->rows, p->rows + n, (size_t)(p->row_count - n) * sizeof *p->rows);
        p->row_count -= n;
        b->row_count = n;
    }
    if (p->delete_count > 0 &&
        grow((void **)&b->deletes, &b->delete_cap, p->delete_count, sizeof *b->deletes)) {
        memcpy(b->deletes, p->deletes, (size_t)p->delete_count * sizeof *p->deletes);
        b->delete_count = p->delete_count;
        p->delete_count = 0;
    }
    b->marker_ms = 0;
    for (uint32_t i = 0; i < b->row_count; i++) {
        b->marker_ms = b->rows[i].at_ms > b->marker_ms ? b->rows[i].at_ms : b->marker_ms;
    }
}

static int insert_rows(sqlite3 *db, outbox_batch_t *b)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db,
                                "INSERT INTO outbox(kind, event_id, at_ms, body) VALUES(?,?,?,?)",
                                -1, &st, NULL);
    for (uint32_t i = 0; rc == SQLITE_OK && i < b->row_count; i++) {
        outbox_row_t *r = &b->rows[i];
        sqlite3_bind_int64(st, 1, r->kind);
        sqlite3_bind_text(st, 2, r->event_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, r->at_ms);
        sqlite3_bind_text(st, 4, r->body, (int)r->size, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        r->row_id = (uint64_t)sqlite3_last_insert_rowid(db);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return rc;
}

static int delete_rows(sqlite3 *db, const outbox_batch_t *b)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, "DELETE FROM outbox WHERE id=?", -1, &st, NULL);
    for (uint32_t i = 0; rc == SQLITE_OK && i < b->delete_count; i++) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)b->deletes[i]);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return rc;
}

int outbox_write(store_t *s, outbox_batch_t *b)
{
    sqlite3 *db = s->db;
    int rc = b->row_count > 0 ? insert_rows(db, b) : SQLITE_OK;
    if (rc == SQLITE_OK && b->delete_count > 0) {
        rc = delete_rows(db, b);
    }
    if (rc == SQLITE_OK && b->marker_ms > 0) {
        char sql[128];
        snprintf(sql, sizeof sql,
                 "UPDATE meta SET value=max(value, %lld) WHERE key='outbox_marker_ms'",
                 (long long)b->marker_ms);
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    }
    return rc;
}

static void emit(const struct store_outbox_s *o, const outbox_row_t *r)
{
    store_outbox_row_t row = {.row_id = r->row_id, .kind = r->kind, .event_id = r->event_id,
                              .at_ms = r->at_ms, .body = r->body, .size = r->size};
    o->fn(o->ctx, &row);
}

void outbox_done(store_t *s, outbox_batch_t *b, bool ok)
{
    for (uint32_t i = 0; i < b->row_count; i++) {
        if (ok) {
            emit(s->outbox, &b->rows[i]);
        }
        free(b->rows[i].body);
    }
    b->row_count = 0;
    b->delete_count = 0;
}

void outbox_batch_free(outbox_batch_t *b)
{
    for (uint32_t i = 0; i < b->row_count; i++) {
        free(b->rows[i].body);
    }
    free(b->rows);
    free(b->deletes);
    *b = (outbox_batch_t){0};
}

void outbox_forget(store_t *s)
{
    if (s->outbox == NULL) {
        return;
    }
    outbox_batch_t *p = &s->outbox->pending;
    for (uint32_t i = 0; i < p->row_count; i++) {
        free(p->rows[i].body);
    }
    p->row_count = 0;
}

void outbox_free(store_t *s)
{
    if (s->outbox != NULL) {
        outbox_batch_free(&s->outbox->pending);
        free(s->outbox);
        s->outbox = NULL;
    }
}

int store_outbox_load(store_t *s, uint64_t after_row_id, store_outbox_fn fn, void *ctx,
                      char *err, size_t err_size)
{
    if (s->db == NULL) {
        snprintf(err, err_size, "the outbox lives in holdfast.db only");
        return -1;
    }
    sqlite3 *db = s->db;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "SELECT id, kind, event_id, at_ms, body FROM outbox WHERE id > ?"
                           " ORDER BY id",
                           -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, err_size, "cannot read the outbox: %s", sqlite3_errmsg(db));
        return -1;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)after_row_id);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *event_id = (const char *)sqlite3_column_text(st, 2);
        const char *body = (const char *)sqlite3_column_text(st, 4);
        store_outbox_row_t row = {.row_id = (uint64_t)sqlite3_column_int64(st, 0),
                                  .kind = (uint32_t)sqlite3_column_int64(st, 1),
                                  .event_id = event_id != NULL ? event_id : "",
                                  .at_ms = sqlite3_column_int64(st, 3),
                                  .body = body != NULL ? body : "",
                                  .size = (size_t)sqlite3_column_bytes(st, 4)};
        fn(ctx, &row);
    }
    if (step != SQLITE_DONE) {
        snprintf(err, err_size, "cannot read the outbox: %s", sqlite3_errmsg(db));
    }
    sqlite3_finalize(st);
    return step == SQLITE_DONE ? 0 : -1;
}

int64_t store_outbox_marker_ms(store_t *s)
{
    if (s->db == NULL) {
        return 0;
    }
    sqlite3_stmt *st;
    int64_t v = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key='outbox_marker_ms'", -1, &st,
                           NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        v = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return v;
}
