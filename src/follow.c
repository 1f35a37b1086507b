/*
 * follow.c - the engine's side of replication (follow.h).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db.h"
#include "follow.h"
#include "frame.h"
#include "record.h"
#include "store.h"
#include "sys.h"
#include "util.h"
#include "wal.h"

void follow_meta(cairn *db, struct meta *out) {
  pthread_mutex_lock(&db->meta_mu);
  *out = db->meta;
  pthread_mutex_unlock(&db->meta_mu);
}

void follow_set_follower(cairn *db, int on) {
  __atomic_store_n(&db->follower, on, __ATOMIC_RELEASE);
}

/* Make epoch the current one from first_lsn on, durably.  meta_mu held. */
static int epoch_begin(cairn *db, uint64_t epoch, uint64_t first_lsn) {
  struct meta m = db->meta;
  meta_epoch_add(&m, epoch, first_lsn);
  int rc = meta_write(db->dir, &m);
  if (rc) return rc;
  db->meta = m;
  db->epoch = epoch;
  wal_set_epoch(db->wal, epoch);
  return 0;
}

int follow_promote(cairn *db, uint64_t *epoch) {
  int rc = wal_sync(db->wal);
  if (rc) return rc;
  pthread_mutex_lock(&db->meta_mu);
  uint64_t e = meta_epoch(&db->meta) + 1;
  rc = epoch_begin(db, e, wal_last_lsn(db->wal) + 1);
  pthread_mutex_unlock(&db->meta_mu);
  if (rc == 0) {
    *epoch = e;
    log_info(&db->log, "epoch %" PRIu64 " begins at LSN %" PRIu64, e,
             wal_last_lsn(db->wal) + 1);
  }
  return rc;
}

/* Apply the records of a checked frame, one LSN each. */
static int frame_apply(cairn *db, const struct frame_hdr *h, const void *raw) {
  size_t off = 0;
  int64_t now = now_ms();
  for (uint64_t lsn = h->first_lsn; lsn <= h->last_lsn; lsn++) {
    struct rec r;
    int rc = rec_decode(raw, h->raw_len, &off, &r);
    if (rc == 0) rc = db_replay(db, lsn, &r, now, 1);
    if (rc) {
      log_error(&db->log, "record at LSN %" PRIu64 " from the leader could "
                "not be applied: %s", lsn, cairn_strerror(rc));
      __atomic_store_n(&db->fatal, 1, __ATOMIC_RELAXED);
      return rc;
    }
  }
  return 0;
}

int follow_frame(cairn *db, const void *frame, size_t len,
                 cairn_done_fn done, void *done_arg, const char **why) {
  struct frame_hdr h;
  void *scratch;
  const void *raw;
  *why = "";
  int rc = frame_check_whole(frame, len, &h, &scratch, &raw, why);
  pthread_mutex_lock(&db->meta_mu);
  if (rc == 0 && h.epoch < db->epoch) {
    *why = "its epoch is older than ours";
    rc = CAIRN_EINVAL;
  } else if (rc == 0 && h.first_lsn != wal_last_lsn(db->wal) + 1) {
    *why = "its first LSN does not follow our last";
    rc = CAIRN_EINVAL;
  } else if (rc == 0 && h.epoch > db->epoch) {
    rc = epoch_begin(db, h.epoch, h.first_lsn);
  }
  pthread_mutex_unlock(&db->meta_mu);
  if (rc == 0)
    rc = wal_append_checked(db->wal, frame, len, &h, done, done_arg);
  if (rc == 0) rc = frame_apply(db, &h, raw);
  if (rc == 0) db_mem_grew(db);
  free(scratch);
  return rc;
}

int follow_snapshot(cairn *db, int fd) {
  return store_copy_fd(db->store, fd);
}

/* ------------------------------------------------------------------------
 * Offline changes of a data directory
 * --------------------------------------------------------------------- */

/* Remove the regular files of dir (not dir itself). */
static int empty_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return errno == ENOENT ? 0 : -errno;
  int rc = 0;
  struct dirent *e;
  char path[PATH_BYTES_MAX];
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (unlink(path) != 0 && errno != ENOENT && !rc) rc = -errno;
  }
  closedir(d);
  if (rc == 0) rc = sys_fsync_dir(dir);
  return rc;
}

static int marker(const char *dir, int set) {
  char path[PATH_BYTES_MAX];
  snprintf(path, sizeof path, "%s/%s", dir, FOLLOW_SYNCING);
  if (set) {
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return -errno;
    int rc = fsync(fd) ? -errno : 0;
    close(fd);
    if (rc) return rc;
  } else if (unlink(path) != 0 && errno != ENOENT) {
    return -errno;
  }
  return sys_fsync_dir(dir);
}

int follow_install(const char *dir, const char *mdb_path, const struct meta *m,
                   const struct logger *log) {
  char sub[PATH_BYTES_MAX], dst[PATH_BYTES_MAX + 16];
  int rc = marker(dir, 1);
  snprintf(sub, sizeof sub, "%s/wal", dir);
  if (rc == 0) rc = empty_dir(sub);
  snprintf(sub, sizeof sub, "%s/lmdb", dir);
  if (rc == 0) rc = empty_dir(sub);
  if (rc == 0 && mkdir(sub, 0755) != 0 && errno != EEXIST) rc = -errno;
  snprintf(dst, sizeof dst, "%s/data.mdb", sub);
  if (rc == 0 && rename(mdb_path, dst) != 0) rc = -errno;
  if (rc == 0) rc = sys_fsync_dir(sub);
  if (rc == 0) rc = meta_write(dir, m);
  if (rc == 0) rc = marker(dir, 0);
  if (rc)
    log_error(log, "%s: installing the leader's snapshot failed: %s", dir,
              cairn_strerror(rc));
  return rc;
}

int follow_leftover(const char *dir, const struct logger *log) {
  char path[PATH_BYTES_MAX];
  snprintf(path, sizeof path, "%s/%s", dir, FOLLOW_SYNCING);
  if (access(path, F_OK) != 0) return 0;
  log_warn(log, "%s: a full sync was interrupted here; starting empty", dir);
  snprintf(path, sizeof path, "%s/wal", dir);
  int rc = empty_dir(path);
  snprintf(path, sizeof path, "%s/lmdb", dir);
  if (rc == 0) rc = empty_dir(path);
  snprintf(path, sizeof path, "%s/meta", dir);
  if (rc == 0 && unlink(path) != 0 && errno != ENOENT) rc = -errno;
  if (rc == 0) rc = marker(dir, 0);
  return rc;
}

/* The checkpoint LSN of dir's store, which is not open. */
static int ckpt_lsn_of(const char *dir, const struct logger *log,
                       uint64_t *lsn) {
  char sdir[PATH_BYTES_MAX];
  snprintf(sdir, sizeof sdir, "%s/lmdb", dir);
  struct store_config cfg = {.dir = sdir, .map_bytes = MAP_BYTES_INITIAL,
                             .map_bytes_max = MAP_BYTES_MAX_DEFAULT,
                             .max_readers = STORE_READERS, .log = log};
  struct store *s;
  int rc = store_open(&cfg, &s);
  if (rc) return rc;
  *lsn = store_ckpt_lsn(s);
  store_close(s);
  return 0;
}

int follow_truncate(const char *dir, uint64_t lsn, const struct logger *log,
                    uint64_t *cut) {
  uint64_t ckpt = 0, bytes = 0;
  struct meta m;
  int rc = ckpt_lsn_of(dir, log, &ckpt);
  if (rc) return rc;
  if (ckpt > lsn) {
    log_warn(log, "%s: the checkpoint (LSN %" PRIu64 ") is past LSN %" PRIu64
             ": the log cannot be cut there", dir, ckpt, lsn);
    return CAIRN_EEXISTS;
  }
  if ((rc = meta_read(dir, log, &m)) != 0) return rc;
  char wdir[PATH_BYTES_MAX];
  snprintf(wdir, sizeof wdir, "%s/wal", dir);
  rc = wal_truncate_after(wdir, lsn, log, cut, &bytes);
  if (rc) return rc;
  size_t n = m.nepochs;
  while (n > 1 && m.epochs[n - 1].first_lsn > lsn) n--;
  if (n == m.nepochs) return 0;
  m.nepochs = n;
  return meta_write(dir, &m);
}
