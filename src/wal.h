/*
 * wal.h - the write-ahead log: segments, group commit, recovery.
 *
 * Writers append records; one log thread turns everything appended while
 * the previous flush was in flight into one frame, writes it with one
 * write linked to one fdatasync (io_uring, or pwritev + fdatasync), and
 * then wakes the writers it covers.
 *
 * The log directory holds segment files named "%016" PRIx64 ".wal" by
 * sequence number, each segment_bytes long, preallocated with fallocate.
 * Frames (frame.h) follow each other at FRAME_ALIGN boundaries; a
 * FRAME_F_END frame closes a segment that the log has left, and zeroed
 * space (or a frame whose LSN is below the expected one, in a recycled
 * segment) marks the end of the log.
 *
 * Positions: last_lsn (handed out) >= written_lsn >= durable_lsn.
 */
#ifndef CAIRN_WAL_H
#define CAIRN_WAL_H

#include <stddef.h>
#include <stdint.h>

#include "cairn.h"
#include "log.h"
#include "record.h"

struct wal;

#define WAL_SALVAGE  0x1u /* keep what precedes a mid-log bad frame */
#define WAL_NO_URING 0x2u /* force pwritev + fdatasync */

struct wal_config {
  const char *dir;          /* directory of the segment files */
  uint64_t segment_bytes;
  uint32_t group_max_bytes; /* cap on the raw records of one frame */
  uint32_t interval_ms;     /* INTERVAL mode's sync period */
  uint64_t epoch;           /* stamped on every new frame */
  unsigned flags;           /* WAL_* */
  const struct logger *log;
};

/* Called by wal_open for every record with LSN > start_lsn, in LSN order.
 * Return 0 to go on, or an error to abort the open with it. */
typedef int (*wal_apply_fn)(void *arg, uint64_t lsn, const struct rec *r);

/* wal_open - open the log in cfg->dir (created if missing), replay it into
 * apply, truncate a torn tail (logging bytes and LSN), and start the log
 * thread.  LSNs continue after the last replayed record, or after
 * start_lsn if that is higher.
 * Errors: CAIRN_ECORRUPT (mid-log, unless WAL_SALVAGE; logged with the file
 * and offset), CAIRN_EFULL, CAIRN_EIO, CAIRN_ENOMEM, -errno, or apply's. */
int wal_open(const struct wal_config *cfg, uint64_t start_lsn,
             wal_apply_fn apply, void *arg, struct wal **out);

/* wal_close - flush and sync what was appended, deliver every completion,
 * stop the thread and free.  NULL is fine. */
void wal_close(struct wal *w);

/* wal_reserve - make room in the log buffer for a record of `bytes`
 * (rec_size()), waiting for a flush if the buffer is full.  Call it before
 * taking any lock that readers need; then call wal_append (which cannot
 * fail) or wal_unreserve exactly once.
 * Errors: CAIRN_EFULL (no disk space for the log; retried on later calls),
 * CAIRN_EIO (the log failed; it is read-only for good), CAIRN_ECLOSING. */
int wal_reserve(struct wal *w, size_t bytes);
void wal_unreserve(struct wal *w, size_t bytes);

/* wal_hold / wal_release_hold - while any hold is in place, the log thread
 * ends no frame, so every record appended meanwhile lands in one frame,
 * which recovery applies whole or not at all.  Holds must be short: a
 * writer waiting for its record to be written (wal_wait) while a hold is in
 * place waits until it is released.  While held, wal_reserve grows the
 * buffer past group_max_bytes instead of waiting, and returns CAIRN_EFULL
 * where it would wait for segment space. */
void wal_hold(struct wal *w);
void wal_release_hold(struct wal *w);

/* wal_reserve_shrink - give back `bytes` of a reservation that turned out
 * larger than the record, which still goes to wal_append. */
void wal_reserve_shrink(struct wal *w, size_t bytes);

/* wal_append - encode r into the log buffer under the next LSN and return
 * it.  Needs a reservation of rec_size(r) bytes.  mode is FSYNC or
 * INTERVAL.  If done is set it is called exactly once from the log thread
 * when the record is durable in that mode (or failed).  Never blocks on
 * I/O; callers may hold their own locks, and LSN order then matches the
 * order in which those locks were held. */
uint64_t wal_append(struct wal *w, const struct rec *r, cairn_durability mode,
                    cairn_done_fn done, void *done_arg);

/* wal_wait - block until lsn is durable in mode: written (INTERVAL) or
 * fdatasynced (FSYNC).  Returns 0, CAIRN_EIO or CAIRN_ECLOSING. */
int wal_wait(struct wal *w, uint64_t lsn, cairn_durability mode);

/* wal_sync - flush and fdatasync everything appended so far. */
int wal_sync(struct wal *w);

struct wal_stats {
  uint64_t last_lsn, written_lsn, durable_lsn, epoch;
  uint64_t frames, syncs, bytes, segments;
  uint64_t recovered_records, truncated_bytes;
  int uring, failed; /* failed: a fatal error made the log read-only */
};
void wal_stats(struct wal *w, struct wal_stats *out);

/* Highest LSN handed out so far. */
uint64_t wal_last_lsn(struct wal *w);

/* wal_release - segments wholly below lsn are no longer needed (their
 * records are checkpointed): recycle them as future segments or delete
 * them.  Returns 0 or -errno. */
int wal_release(struct wal *w, uint64_t lsn);

/* wal_read - call fn for every record with from < LSN <= upto, in order,
 * reading the segments back (the checkpointer's input).  upto must not be
 * above the written LSN.  The caller must not run wal_release meanwhile.
 * Errors: CAIRN_EINVAL, CAIRN_ECORRUPT (records missing or damaged),
 * CAIRN_ENOMEM, -errno, or fn's. */
int wal_read(struct wal *w, uint64_t from, uint64_t upto, wal_apply_fn fn,
             void *arg);

/* ------------------------------------------------------------------------
 * Reading a log directory without opening it for writing (tools, tests).
 * --------------------------------------------------------------------- */

struct frame_hdr;

/* Called for every valid frame, in log order, with its decoded payload
 * (the records, raw_len bytes).  Return 0 to go on, or an error to stop
 * the scan with it. */
typedef int (*wal_frame_fn)(void *arg, const char *path, uint64_t offset,
                            const struct frame_hdr *h, const void *raw);

struct wal_scan_result {
  uint64_t first_lsn, last_lsn;   /* of the valid frames; 0 if none */
  uint64_t frames, records, segments;
  uint64_t end_seq, end_offset;   /* where the next frame would go */
  int torn;                       /* a torn tail follows the valid frames */
  uint64_t torn_seq, torn_offset, torn_bytes, torn_lsn;
  int corrupt;                    /* a bad frame is followed by valid ones */
  uint64_t corrupt_seq, corrupt_offset;
  char why[160];                  /* what was wrong, for the message */
};

/* wal_scan - read the log in dir without changing anything: check every
 * frame, call fn for each valid one, and classify what ends the log.
 * Returns 0 (also when torn or corrupt are set), fn's error, CAIRN_ENOMEM,
 * or -errno. */
int wal_scan(const char *dir, wal_frame_fn fn, void *arg,
             struct wal_scan_result *res);

/* The path of segment seq in dir, into buf (at least WAL_PATH_MAX). */
#define WAL_PATH_MAX 4096
void wal_segment_path(const char *dir, uint64_t seq, char *buf);

#endif /* CAIRN_WAL_H */
