/*
 * follow.h - the engine's side of replication: epochs, applying a
 * leader's frames, the snapshot of a full sync, and cutting a divergent
 * tail.  The daemon's replication module (repl.c) drives these; the log
 * itself is read and retained through wal.h (db->wal).
 *
 * A follower's log holds its leader's frames byte for byte, so its
 * recovery, checkpoints and tools are those of any node.  Applying a frame
 * is what recovery does to a record, under the key's shard lock.
 */
#ifndef CAIRN_FOLLOW_H
#define CAIRN_FOLLOW_H

#include <stddef.h>
#include <stdint.h>

#include "cairn.h"
#include "log.h"
#include "meta.h"

/* A file whose presence in a data directory says that a full sync was
 * being installed there: what the directory holds is incomplete, and the
 * next open empties it (follow_leftover). */
#define FOLLOW_SYNCING "SYNCING"

/* A copy of db's meta (data id, epoch history). */
void follow_meta(cairn *db, struct meta *out);

/* Follower mode: the maintenance thread expires nothing (the leader's
 * deletes arrive through the log); readers still never see an expired
 * entry. */
void follow_set_follower(cairn *db, int on);

/* Start a new epoch at the next LSN, recorded durably in meta, stamped on
 * every later frame.  Call with no writer running.  Errors: meta_write's. */
int follow_promote(cairn *db, uint64_t *epoch);

/* Check a frame received from a leader (layout, checksum, records, an
 * epoch not older than ours, first LSN = our last + 1), record a new
 * epoch durably, append it to the log as it is (done: as for
 * wal_append_frame, called once it is fdatasynced) and apply its records.
 * On a refusal, *why says why and nothing changed.
 * Errors: CAIRN_ECORRUPT (bad frame), CAIRN_EINVAL (epoch or LSN),
 * CAIRN_ENOMEM, the log's (CAIRN_EIO, CAIRN_EFULL, CAIRN_ECLOSING). */
int follow_frame(cairn *db, const void *frame, size_t len,
                 cairn_done_fn done, void *done_arg, const char **why);

/* Write a consistent copy of the LMDB state (with its checkpoint LSN) to
 * fd.  Errors: CAIRN_EIO, -errno. */
int follow_snapshot(cairn *db, int fd);

/* Offline (the directory is not open): make dir hold the snapshot in
 * mdb_path (renamed into place) with an empty log and meta m.  Crash-safe
 * through FOLLOW_SYNCING.  Errors: -errno, meta_write's. */
int follow_install(const char *dir, const char *mdb_path, const struct meta *m,
                   const struct logger *log);

/* Offline: cut every record after lsn from dir's log, and the epochs that
 * began after it from its history.  CAIRN_EEXISTS if the checkpoint is
 * already past lsn (only a full sync can help); else wal_truncate_after's
 * errors.  *cut: records removed. */
int follow_truncate(const char *dir, uint64_t lsn, const struct logger *log,
                    uint64_t *cut);

/* At open: empty dir if an interrupted full sync left it incomplete. */
int follow_leftover(const char *dir, const struct logger *log);

#endif /* CAIRN_FOLLOW_H */
