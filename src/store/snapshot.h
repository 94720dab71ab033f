/*
 * snapshot.h - snapshot files (store-private).
 *
 * A snapshot is the engine's live state at a journal sequence number S,
 * written by a forked child from its copy-on-write view of the engine, so
 * the server stalls only for the fork (page tables), never for encoding or
 * writing. The file DIR/snapshot-S.bin is written as .tmp, fsynced, renamed
 * and the directory fsynced; only then does the journal's meta table point at
 * it (and drop the journal rows it covers), in one transaction. A crash at any
 * point leaves either the old snapshot with its journal, or the new one.
 *
 * File: "HFSNAP01", u64 seq, u64 body bytes, u64 FNV-1a of the body, body
 * (restore records, see record.h), all little-endian.
 */
#ifndef HF_SNAPSHOT_H
#define HF_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "guard.h"
#include "store.h"

/* Forks a child that writes e's state as snapshot seq. Call with e
 * quiescent (under the server's engine lock). Returns the child's pid, or -1
 * if fork failed (nothing else happened). */
pid_t snapshot_fork(const char *dir, const guard_t *g, uint64_t seq);

/* Writes g's state as snapshot seq from this process (what the forked
 * child does). Returns 0, or -1 with errno; a failed write removes its
 * temporary file. */
int snapshot_write(const char *dir, const guard_t *g, uint64_t seq);

/* DIR/snapshot-<seq>.bin, the file of snapshot seq. */
void snapshot_path(char *out, size_t size, const char *dir, uint64_t seq);

/* The size of snapshot seq's file, or -1 if it cannot be read. */
int64_t snapshot_file_bytes(const char *dir, uint64_t seq);

/* Reads snapshot seq's file, whole, into out. 0, or -1 with err. */
int snapshot_read(const char *dir, uint64_t seq, store_buf_t *out, char *err, size_t err_size);

/* Restores a snapshot file's bytes (of seq; name says where they came from
 * in a complaint) into a fresh guard. 0, or -1 with err. */
int snapshot_load_bytes(const store_buf_t *file, uint64_t seq, const char *name, guard_t *g,
                        uint64_t *records_out, char *err, size_t err_size);

/* Restores snapshot seq into a fresh guard. On failure returns -1 with err. */
int snapshot_load(const char *dir, uint64_t seq, guard_t *g, uint64_t *records_out, char *err,
                  size_t err_size);

/* Deletes every snapshot file in dir but the one for keep_seq (at recovery,
 * when no child can be writing one). */
void snapshot_remove_others(const char *dir, uint64_t keep_seq);
/* Removes only the files older than keep_seq: what the commit thread may
 * do once it adopted keep_seq, while a child may already be writing a newer
 * snapshot (removing that one made the journal name a file that was gone). */
void snapshot_remove_older(const char *dir, uint64_t keep_seq);

#endif
