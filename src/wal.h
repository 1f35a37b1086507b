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
 * A follower's log is fed whole frames from its leader instead
 * (wal_append_frame), written unchanged; cursors read frames back as they
 * are on disk for the replication sender (wal_cursor_*).
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
  uint64_t linger_ns;       /* wal_linger's bound; 0: LINGER_NS_MAX */
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

/* wal_linger - a hint from a caller about to append a burst (an event
 * loop's turn): until wal_linger(w, 0), a group that needs no fdatasync is
 * not written at its first record but when the burst ends, so the burst
 * leaves in one write; for at most cfg.linger_ns, and never while a writer
 * waits for the log.  Unlike a hold, it changes no frame boundary that
 * anyone relies on, and nothing waits on it.  Calls nest. */
void wal_linger(struct wal *w, int on);

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
  uint64_t oldest_lsn;  /* first LSN the segments still hold; 0: none */
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

/* ------------------------------------------------------------------------
 * Replication: a follower's log fed with a leader's frames, and cursors
 * that read whole frames back for the sender.
 * --------------------------------------------------------------------- */

/* wal_append_frame - queue one frame received from a leader, to be written
 * unchanged as the log's next frame.  frame is one whole frame as
 * frame_encode() made it (header, stored payload, zero padding), len ==
 * frame_len() of its header.  It must be valid (checksum, records), carry
 * records, not be an END frame, begin at wal_last_lsn() + 1 and carry an
 * epoch at or above the log's.  Then wal_last_lsn() becomes its last LSN
 * and the log's epoch its epoch (later END frames and wal_stats carry
 * it).  The log thread writes queued frames with one write and one
 * fdatasync for as many as fit, and always fdatasyncs them.  If done is
 * set, it is called exactly once from the log thread with the frame's
 * last LSN, when the frame is fdatasynced (rc 0) or failed.
 * Like wal_reserve it may wait for buffer room (and for records appended
 * with wal_append, or reserved, to be flushed first: a log takes records
 * or leader frames, one kind at a time), never for I/O on the frame
 * itself.  Verifying the frame costs a decompression; it is done before
 * any lock is taken.
 * Errors (nothing changes): CAIRN_ECORRUPT (a bad frame), CAIRN_EINVAL
 * (wrong first LSN, older epoch), CAIRN_ENOMEM, CAIRN_EFULL, CAIRN_EIO,
 * CAIRN_ECLOSING; done is then never called. */
int wal_append_frame(struct wal *w, const void *frame, size_t len,
                     cairn_done_fn done, void *done_arg);

/* wal_append_checked - wal_append_frame for a frame the caller has just
 * checked with frame_check_whole() (h is its header), which a follower
 * does anyway to apply the records: the check is not done twice. */
int wal_append_checked(struct wal *w, const void *frame, size_t len,
                       const struct frame_hdr *h, cairn_done_fn done,
                       void *done_arg);

/* wal_set_epoch - frames written from now on carry epoch (a follower
 * promoted to leader); wal_stats().epoch reports it.  Records already
 * appended but not yet framed carry it too. */
void wal_set_epoch(struct wal *w, uint64_t epoch);

/* wal_retain - keep, through wal_release, every segment that holds an LSN
 * above floor (the oldest position a follower still needs).  UINT64_MAX,
 * the initial value, means no floor.  Takes effect at the next
 * wal_release; never waits. */
void wal_retain(struct wal *w, uint64_t floor);

/* wal_wait_written - block until the shipped LSN is above lsn, timeout_ms
 * has passed, or the log is closing or failed; return the shipped LSN.
 *
 * The shipped LSN, used here and by cursors, is where the frames whole in
 * the segment files end: at least the written LSN, and ahead of it while
 * an fdatasync runs, so that a follower writes and syncs its copy while
 * the leader syncs its own.  A frame shipped but then lost to a failed
 * fdatasync was never acknowledged to anyone. */
uint64_t wal_wait_written(struct wal *w, uint64_t lsn, unsigned timeout_ms);

/* A reader of whole frames, as they are on disk.  One cursor belongs to
 * one thread at a time; any number may be open, alongside writers, the
 * log thread and wal_release.  Cursors read with pread on their own file
 * descriptors and take the log's locks only for a moment.  All of them
 * must be closed before wal_close. */
struct wal_cursor;

/* wal_cursor_open - a cursor whose first frame begins at LSN from + 1.
 * from may equal the written LSN (then nothing comes until more is
 * written).  Finding the place reads the headers of one segment.
 * Errors: CAIRN_EINVAL (from above the written LSN), CAIRN_ENOTFOUND (the
 * log no longer, or never, held LSN from + 1, or it lies inside a frame
 * rather than at a frame's start), CAIRN_ECORRUPT (the segment to read is
 * damaged), CAIRN_ENOMEM, -errno. */
int wal_cursor_open(struct wal *w, uint64_t from, struct wal_cursor **out);

/* wal_cursor_next - the next frame, if it is written: 1 with *frame, *len
 * (header through padding, exactly as on disk; checksum and records
 * verified) and, if h is set, its decoded header; 0 when no further frame
 * is written yet.  END frames are skipped; the cursor follows the log from
 * segment to segment.  *frame stays valid until the next call on c or
 * wal_cursor_close.
 * Errors: CAIRN_ENOTFOUND (the segment it needs was recycled or released
 * meanwhile: the follower needs a full sync), CAIRN_ECORRUPT (a damaged
 * frame below the written LSN), CAIRN_ENOMEM, -errno.  After an error the
 * cursor can only be closed. */
int wal_cursor_next(struct wal_cursor *c, const void **frame, size_t *len,
                    struct frame_hdr *h);

/* wal_cursor_close - NULL is fine. */
void wal_cursor_close(struct wal_cursor *c);

/* wal_truncate_after - remove every record above lsn from the log in dir,
 * which must not be open: the frame that begins at lsn + 1 and everything
 * after it in its segment are zeroed, later segments deleted, all durably.
 * wal_open then sees a log that ends at lsn (an empty one if lsn is below
 * its first record).  A log that ends at or below lsn is left as it is.
 * Logs (warning) what was cut, and where.  *cut_records and *cut_bytes
 * (either may be NULL) get the records and frame bytes removed.
 * Errors: CAIRN_EINVAL (lsn + 1 is inside a frame), CAIRN_ECORRUPT
 * (mid-log corruption before the log passes lsn), CAIRN_ENOMEM, -errno. */
int wal_truncate_after(const char *dir, uint64_t lsn,
                       const struct logger *log, uint64_t *cut_records,
                       uint64_t *cut_bytes);

#endif /* CAIRN_WAL_H */
