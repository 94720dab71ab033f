/*
 * mark.h - how far the journal had reached, kept outside the database
 * (store-private).
 *
 * SQLite takes a write-ahead-log frame whose checksum fails as the end of
 * the log, so damage to a WAL frame silently drops every commit after it,
 * and nothing inside the database could tell. DIR/holdfast.mark records the
 * last durable sequence number and the journal's chain value there (record.h)
 * after every commit: written (without an fsync) once the commit is durable,
 * so it never claims more than the journal holds, and made durable itself
 * about once a second and at a clean shutdown. At start, a journal that ends
 * before the mark was cut; one that ends at it with another chain value is
 * not the journal that was written.
 *
 * File: two 32-byte slots, each "HFMARK01", u64 seq, u64 chain, u64 check of
 * the first 24 bytes, little-endian. Writes alternate slots, so a torn write
 * leaves the other slot, one commit older, intact.
 */
#ifndef HF_MARK_H
#define HF_MARK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MARK_FILE "holdfast.mark"

typedef struct {
    uint64_t seq, chain;
} mark_t;

typedef enum {
    MARK_OK = 0,
    MARK_ABSENT,  /* no file */
    MARK_DAMAGED, /* a file with no valid slot */
} mark_state_t;

/* Reads DIR's mark (the valid slot with the higher seq). */
mark_state_t mark_read(const char *dir, mark_t *out);

/* Opens (creating) DIR's mark file for writing; -1 with errno on failure. */
int mark_open(const char *dir);

/* Writes m into the slot after the one written last (*turn flips).
 * Returns 0, or -1 with errno. */
int mark_write(int fd, unsigned *turn, mark_t m);

/* Creates DIR's mark holding m, durably (file and directory synced), for a
 * data directory being set up or rebuilt. */
int mark_create(const char *dir, mark_t m);

#endif
