/*
 * meta.h - the data directory's meta file: format version, the data id
 * and the epoch history.
 *
 *   cairn-meta 1
 *   id 3f9c...              32 hex digits, made when the directory is
 *                           created; a follower takes its leader's at a
 *                           full sync, so equal ids mean one lineage
 *   epoch 3                 the current epoch (the last of the history)
 *   epochs 1:1,2:991,3:2040 epoch:first LSN, oldest first
 *   created 1795000000000   ms since the epoch
 *
 * Written whole to "meta.tmp", fsynced, renamed over "meta", and the
 * directory fsynced: a reader sees the old file or the new one.  A file
 * without an "epochs" line has the history "E:1" of its epoch E.
 */
#ifndef CAIRN_META_H
#define CAIRN_META_H

#include <stddef.h>
#include <stdint.h>

#include "limits.h"
#include "log.h"

#define META_FORMAT   1
#define META_ID_LEN   32u
#define META_EPOCHS_MAX 256u /* history kept; the oldest are dropped */

struct meta_epoch {
  uint64_t epoch, first_lsn;
};

struct meta {
  char id[META_ID_LEN + 1];
  int64_t created_ms;
  size_t nepochs;                          /* >= 1 */
  struct meta_epoch epochs[META_EPOCHS_MAX];
};

/* The current epoch: the last of the history. */
uint64_t meta_epoch(const struct meta *m);

/* A new directory's meta: a random id, epoch 1 from LSN 1.  CAIRN_EIO if
 * no randomness is to be had. */
int meta_init(struct meta *m);

/* Read DIR/meta.  CAIRN_ENOTFOUND if there is none; CAIRN_ECORRUPT (the
 * path logged) if it is not a meta file; CAIRN_EVERFMT for another
 * format version. */
int meta_read(const char *dir, const struct logger *log, struct meta *m);

/* Write DIR/meta atomically and durably.  CAIRN_EFULL, -errno. */
int meta_write(const char *dir, const struct meta *m);

/* Start epoch `epoch` at first_lsn (epoch above every epoch of m).  The
 * oldest entry goes when the history is full. */
void meta_epoch_add(struct meta *m, uint64_t epoch, uint64_t first_lsn);

/* The history as "e:lsn,e:lsn..." into buf (n bytes; truncated entries
 * are never written: returns the length, or -1 if it does not fit). */
int meta_epochs_format(const struct meta *m, char *buf, size_t n);

/* Parse that text into m's history.  CAIRN_EINVAL if it is not a strictly
 * increasing list of epochs with non-decreasing first LSNs. */
int meta_epochs_parse(const char *s, struct meta *m);

/* The last LSN on which two logs agree, given their histories and last
 * LSNs: the end of the newest epoch that both histories hold (same number
 * and same first LSN), as far as both logs reach into it.  0 if they
 * share none.  A follower whose last LSN is above it has a tail that the
 * leader never had: it must cut it there. */
uint64_t meta_agreed(const struct meta *ours, uint64_t our_last,
                     const struct meta *theirs, uint64_t their_last);

#endif /* CAIRN_META_H */
