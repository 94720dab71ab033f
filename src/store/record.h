/*
 * record.h - the byte format of journal and snapshot records (store-private).
 *
 * Little-endian, length-prefixed, no padding. A journal record is a guard
 * op; a snapshot is a sequence of restore records. Decoding checks every
 * length and range, so a damaged file is reported, never trusted: a record is
 * checked when it is written (asserts in the encoder) and again when it is
 * read back (the decoder's checks): checked on the way in and on the way out.
 */
#ifndef HF_RECORD_H
#define HF_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "guard.h"
#include "store.h"

enum {
    RECORD_SNAP_TIME = 0x80,
    RECORD_SNAP_SKU = 0x81,
    RECORD_SNAP_HOLD = 0x82,
    RECORD_SNAP_IDEM = 0x83,
    RECORD_SNAP_GUARD = 0x84, /* the guard's own state, last */
    RECORD_SNAP_FREE = 0x85,  /* the engine's free hold slots, in order */
};

typedef struct {
    const uint8_t *p;
    size_t left;
    bool ok;
} record_reader_t;

/* Buffers grow with malloc; on allocation failure the process aborts, as the
 * store cannot keep its promise without the memory. */
void record_buf_reserve(store_buf_t *b, size_t more);
void record_buf_free(store_buf_t *b);

void record_encode_op(store_buf_t *b, const guard_op_t *op);
/* Decodes one op; false if the bytes are not a valid op. */
bool record_decode_op(record_reader_t *r, guard_op_t *op);

/* 64-bit little-endian, the byte order of every file the store writes. */
void record_le64_put(uint8_t out[8], uint64_t v);
uint64_t record_le64_get(const uint8_t in[8]);

/* The journal's integrity chain: a row's chain value is this checksum of
 * its predecessor's chain value, its first sequence number, its record
 * count and its body, so a changed byte, a row put out of place or a row
 * from another history gives a different value. Not a defense against an
 * attacker who can write the files (nothing on one disk is): against a disk
 * or a filesystem that damages them. */
uint64_t record_chain(uint64_t prev_chain, uint64_t first_seq, uint64_t count,
                      const uint8_t *body, size_t size);

void record_encode_snapshot(store_buf_t *b, const guard_t *g);
/* Restores a whole snapshot into a fresh guard (and its engine). */
bool record_restore_snapshot(record_reader_t *r, guard_t *g, uint64_t *records_out,
                             char *err, size_t err_size);

#endif
