/*
 * ckpt.h - the checkpointer: brings LMDB up to a log position.
 *
 * A checkpoint reads back the log records after the store's checkpoint
 * LSN up to the durable LSN (wal_read), coalesces them per key, writes the
 * result into LMDB in one write transaction that also records the new
 * checkpoint LSN, and then lets the log recycle the segments wholly below
 * it.  It never touches the memory table, so reads and writes go on.
 *
 * A crash at any point loses nothing: before the LMDB commit the store is
 * unchanged and the log holds everything; after it the store says which
 * LSN it reflects and recovery replays the log from there, whether or not
 * the segments were recycled yet.
 */
#ifndef CAIRN_CKPT_H
#define CAIRN_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"

struct wal;
struct store;
struct ckpt;

struct ckpt_config {
  uint64_t log_bytes;   /* checkpoint after this many log bytes */
  uint32_t interval_ms; /* ... or after this long, if anything changed */
  uint64_t epoch;       /* recorded with each checkpoint */
  const struct logger *log;
  /* Told after each checkpoint, from the checkpoint thread: rc 0 and the
   * new checkpoint LSN, or the error that made it fail. */
  void (*done)(void *arg, int rc, uint64_t ckpt_lsn);
  void *arg;
  /* Do not checkpoint the log replayed at open right away (a follower
   * may yet have to cut a tail that diverged from its leader's). */
  int defer_replayed;
};

struct ckpt_stats {
  uint64_t lsn;          /* the store's checkpoint LSN */
  uint64_t count;        /* checkpoints since open */
  uint64_t unpaced;      /* those that ran unpaced, wholly or in part */
  uint64_t last_ms;      /* duration of the last one */
  uint64_t last_bytes;   /* log bytes it covered */
  uint64_t last_records; /* records it read */
  uint64_t last_keys;    /* keys it wrote after coalescing */
  uint64_t log_bytes_since; /* log bytes written since it */
  int failed;            /* the last one failed */
};

/* Start the checkpoint thread.  Errors: CAIRN_ENOMEM, -errno. */
int ckpt_start(struct wal *w, struct store *s, const struct ckpt_config *cfg,
               struct ckpt **out);

/* Run a checkpoint now and wait for it: paced (see folds_commit), or,
 * with hurry, as fast as it goes (a paced one under way stops pacing).
 * Returns 0, or the error of a failed checkpoint (CAIRN_EFULL when the
 * store is at its size limit, CAIRN_EIO, CAIRN_ECORRUPT). */
int ckpt_run(struct ckpt *c, int hurry);

/* Ask for a checkpoint soon, without waiting, and unpaced (memory
 * pressure: the entries it writes become evictable). */
void ckpt_request(struct ckpt *c);

/* Stop the thread; with final, run one last checkpoint first.  Returns
 * that checkpoint's result.  NULL is fine. */
int ckpt_stop(struct ckpt *c, int final);

void ckpt_stats(struct ckpt *c, struct ckpt_stats *out);

/* Keys for a checkpoint's next LMDB transaction, given the last one's
 * keys and how long its commit took: about CKPT_COMMIT_NS of commit,
 * moving by at most a factor of 2 up or 4 down per transaction, within
 * [CKPT_TXN_KEYS_MIN, CKPT_TXN_KEYS].  (Shared for its tests.) */
size_t ckpt_txn_keys_next(size_t keys, uint64_t commit_ns);

#endif /* CAIRN_CKPT_H */
