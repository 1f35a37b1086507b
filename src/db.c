/*
 * db.c - the database handle: options, namespaces, the data directory,
 * recovery, checkpoints and statistics.  The data calls are in ops.c, the
 * background expiry and eviction in maint.c.
 *
 * Data directory:
 *   LOCK   flock'd while open, so two processes never share a directory
 *   meta   format version, data id and epoch history (meta.h)
 *   wal/   log segments (wal.h): every record after the checkpoint LSN
 *   lmdb/  the state as of the checkpoint LSN (store.h)
 *
 * Opening: lock, read meta, open the store, then replay the log after the
 * store's checkpoint LSN into memory.  Closing: stop the background
 * threads, checkpoint, close the log and the store.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "cobj.h"
#include "coll.h"
#include "db.h"
#include "follow.h"
#include "limits.h"
#include "meta.h"
#include "record.h"
#include "store.h"
#include "sys.h"
#include "table.h"
#include "util.h"
#include "wal.h"

#define DEFAULT_NS "default"

/* ------------------------------------------------------------------------
 * Options
 * --------------------------------------------------------------------- */

CAIRN_EXPORT void cairn_options_init(cairn_options *opt) {
  memset(opt, 0, sizeof *opt);
  opt->durability = CAIRN_DURABILITY_FSYNC;
  opt->interval_ms = INTERVAL_MS_DEFAULT;
  opt->segment_bytes = SEGMENT_BYTES_DEFAULT;
  opt->group_max_bytes = GROUP_BYTES_DEFAULT;
  opt->expire_tick_ms = EXPIRE_TICK_MS_DEFAULT;
  opt->expire_scan_max = EXPIRE_SCAN_MAX_DEFAULT;
  opt->checkpoint_bytes = CKPT_BYTES_DEFAULT;
  opt->checkpoint_interval_ms = CKPT_INTERVAL_MS_DEFAULT;
  opt->map_bytes_max = MAP_BYTES_MAX_DEFAULT;
  opt->log_level = CAIRN_LOG_INFO;
}

static int options_check(const cairn_options *o) {
  if (o->durability < CAIRN_DURABILITY_DEFAULT ||
      o->durability > CAIRN_DURABILITY_MEMORY)
    return CAIRN_EINVAL;
  if (o->segment_bytes < SEGMENT_BYTES_MIN ||
      o->segment_bytes > SEGMENT_BYTES_MAX)
    return CAIRN_EINVAL;
  if (o->group_max_bytes < GROUP_BYTES_MIN ||
      o->group_max_bytes > GROUP_BYTES_MAX)
    return CAIRN_EINVAL;
  if (o->interval_ms == 0 || o->expire_tick_ms == 0 ||
      o->expire_scan_max == 0 || o->checkpoint_bytes == 0 ||
      o->checkpoint_interval_ms == 0 || o->map_bytes_max < MAP_BYTES_MIN)
    return CAIRN_EINVAL;
  return 0;
}

/* ------------------------------------------------------------------------
 * Namespaces
 * --------------------------------------------------------------------- */

static int ns_name_ok(const char *name, size_t len) {
  return len >= 1 && len <= NS_NAME_MAX && !memchr(name, '\0', len);
}

static struct ns *ns_find(cairn *db, const char *name, size_t len) {
  unsigned n = __atomic_load_n(&db->ns_count, __ATOMIC_ACQUIRE);
  for (unsigned i = 0; i < n; i++) {
    struct ns *s = db->ns[i];
    if (s->len == len && memcmp(s->name, name, len) == 0) return s;
  }
  return NULL;
}

/* The namespace called name, created if missing.  Errors: CAIRN_EINVAL
 * (too many namespaces), CAIRN_ENOMEM. */
int db_ns_get(cairn *db, const char *name, size_t len, struct ns **out) {
  struct ns *s = ns_find(db, name, len);
  if (s) {
    *out = s;
    return 0;
  }
  int rc = 0;
  pthread_mutex_lock(&db->ns_mu);
  s = ns_find(db, name, len);
  if (!s) {
    if (db->ns_count >= NS_COUNT_MAX) {
      rc = CAIRN_EINVAL;
    } else if (!(s = calloc(1, sizeof *s)) || table_new(&s->t) != 0) {
      free(s);
      s = NULL;
      rc = CAIRN_ENOMEM;
    } else {
      memcpy(s->name, name, len);
      s->len = (uint8_t)len;
      db->ns[db->ns_count] = s;
      __atomic_store_n(&db->ns_count, db->ns_count + 1, __ATOMIC_RELEASE);
    }
  }
  pthread_mutex_unlock(&db->ns_mu);
  if (rc == 0) *out = s;
  return rc;
}

/* Resolve a public namespace argument (NULL: the default namespace).  A
 * namespace is created even by a read: the store may hold its keys. */
int db_ns_arg(cairn *db, const char *ns, struct ns **out) {
  size_t len;
  if (!ns) {
    ns = DEFAULT_NS;
    len = sizeof DEFAULT_NS - 1;
  } else {
    len = strnlen(ns, NS_NAME_MAX + 1);
  }
  if (!ns_name_ok(ns, len)) return CAIRN_EINVAL;
  return db_ns_get(db, ns, len, out);
}

int db_cold(const cairn *db, const struct ns *s) {
  cairn_durability d = __atomic_load_n(&s->opt.durability, __ATOMIC_RELAXED);
  if (d == CAIRN_DURABILITY_DEFAULT) d = db->opt.durability;
  return d != CAIRN_DURABILITY_MEMORY;
}

uint64_t db_memory(cairn *db) {
  uint64_t n = 0;
  unsigned count = __atomic_load_n(&db->ns_count, __ATOMIC_ACQUIRE);
  for (unsigned i = 0; i < count; i++) n += table_bytes(db->ns[i]->t);
  return n;
}

uint64_t db_entries(cairn *db) {
  uint64_t n = 0;
  unsigned count = __atomic_load_n(&db->ns_count, __ATOMIC_ACQUIRE);
  for (unsigned i = 0; i < count; i++) n += table_count(db->ns[i]->t);
  return n;
}

CAIRN_EXPORT int cairn_ns_define(cairn *db, const char *ns,
                                 const cairn_ns_options *o) {
  if (!db || !o || o->durability < CAIRN_DURABILITY_DEFAULT ||
      o->durability > CAIRN_DURABILITY_MEMORY)
    return CAIRN_EINVAL;
  struct ns *s;
  int rc = db_ns_arg(db, ns, &s);
  if (rc) return rc;
  pthread_mutex_lock(&db->ns_mu);
  s->opt = *o;
  pthread_mutex_unlock(&db->ns_mu);
  return 0;
}

/* ------------------------------------------------------------------------
 * Statistics
 * --------------------------------------------------------------------- */

void db_count(cairn *db, unsigned c, uint64_t v) {
  static unsigned next_stripe;
  static __thread unsigned stripe = UINT32_MAX;
  if (stripe == UINT32_MAX)
    stripe = __atomic_fetch_add(&next_stripe, 1, __ATOMIC_RELAXED) % DB_STRIPES;
  __atomic_add_fetch(&db->counters[stripe].n[c], v, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------------
 * Sync and statistics
 * --------------------------------------------------------------------- */

CAIRN_EXPORT int cairn_sync(cairn *db) {
  if (!db) return CAIRN_EINVAL;
  return wal_sync(db->wal);
}

CAIRN_EXPORT int cairn_checkpoint(cairn *db) {
  if (!db) return CAIRN_EINVAL;
  return ckpt_run(db->ckpt, 0);
}

CAIRN_EXPORT int cairn_checkpoint_now(cairn *db) {
  if (!db) return CAIRN_EINVAL;
  return ckpt_run(db->ckpt, 1);
}

/* ckpt_config.done: after a checkpoint, the entries at or below lsn are
 * clean (evictable); a store at its size limit refuses growing writes
 * until a checkpoint succeeds again. */
static void ckpt_done(void *arg, int rc, uint64_t lsn) {
  cairn *db = arg;
  if (rc == 0) __atomic_store_n(&db->ckpt_lsn, lsn, __ATOMIC_RELEASE);
  __atomic_store_n(&db->store_full, rc == CAIRN_EFULL, __ATOMIC_RELAXED);
}

CAIRN_EXPORT int cairn_stats(cairn *db, struct cairn_stats *out) {
  if (!db || !out) return CAIRN_EINVAL;
  struct cairn_stats st;
  memset(&st, 0, sizeof st);
  unsigned n = __atomic_load_n(&db->ns_count, __ATOMIC_ACQUIRE);
  for (unsigned i = 0; i < n; i++) {
    st.entries += table_count(db->ns[i]->t);
    st.memory_bytes += table_bytes(db->ns[i]->t);
  }
  struct wal_stats ws;
  wal_stats(db->wal, &ws);
  st.last_lsn = ws.last_lsn;
  st.written_lsn = ws.written_lsn;
  st.durable_lsn = ws.durable_lsn;
  st.epoch = ws.epoch;
  st.log_frames = ws.frames;
  st.log_syncs = ws.syncs;
  st.log_bytes = ws.bytes;
  st.log_segments = ws.segments;
  st.recovered_records = ws.recovered_records;
  st.truncated_bytes = ws.truncated_bytes;
  st.uring = ws.uring;
  st.readonly = ws.failed || __atomic_load_n(&db->fatal, __ATOMIC_RELAXED);
  uint64_t c[CNT_N] = {0};
  for (unsigned i = 0; i < DB_STRIPES; i++)
    for (unsigned k = 0; k < CNT_N; k++)
      c[k] += __atomic_load_n(&db->counters[i].n[k], __ATOMIC_RELAXED);
  struct ckpt_stats cs;
  ckpt_stats(db->ckpt, &cs);
  struct store_stats ss;
  if (store_stats(db->store, &ss) == 0) st.disk_entries = ss.entries;
  st.checkpoint_lsn = cs.lsn;
  st.checkpoints = cs.count;
  st.checkpoints_unpaced = cs.unpaced;
  st.checkpoint_ms = cs.last_ms;
  st.checkpoint_bytes = cs.last_bytes;
  st.log_bytes_since_checkpoint = cs.log_bytes_since;
  st.mem_hits = c[CNT_MEM_HITS];
  st.store_reads = c[CNT_STORE_READS];
  st.evictions = c[CNT_EVICTED];
  st.max_memory = db_budget(db);
  st.puts = c[CNT_PUTS];
  st.dels = c[CNT_DELS];
  st.gets = c[CNT_GETS];
  st.get_hits = c[CNT_GET_HITS];
  st.expired = c[CNT_EXPIRED];
  st.touches_logged = c[CNT_TOUCHES];
  st.write_stalls = c[CNT_STALLS];
  *out = st;
  return 0;
}

/* ------------------------------------------------------------------------
 * Recovery: the log's records applied to the table, in LSN order.
 * --------------------------------------------------------------------- */

struct replay {
  cairn *db;
  int64_t now;
};

/* The value an expiry change applies to: in memory, or in the store
 * (copied into *held, which the caller frees). */
static int replay_base(cairn *db, struct ns *s, uint64_t hash,
                       const struct rec *r, struct store_val *held,
                       const void **val, uint32_t *vlen, unsigned *type) {
  struct entry *old = table_find(s->t, hash, r->key, r->klen);
  if (old) {
    if (entry_flags(old) & ENTRY_F_TOMB) return CAIRN_ENOTFOUND;
    *val = entry_val(old);
    *vlen = (uint32_t)entry_vlen(old);
    *type = entry_type(old);
    return 0;
  }
  if (!db_cold(db, s)) return CAIRN_ENOTFOUND;
  int rc = store_get(db->store, s->name, s->len, table_shard(hash),
                     (uint32_t)(hash >> 32), r->key, r->klen, held, NULL);
  if (rc) return rc;
  *val = held->data;
  *vlen = (uint32_t)held->len;
  *type = held->type <= REC_T_MAX ? held->type : REC_T_STRING;
  return 0;
}

/* Put key's new state at lsn: a value (flags carry its type), or, with
 * ENTRY_F_TOMB in flags, its deletion. */
static int replay_set(cairn *db, struct ns *s, uint64_t hash,
                      const struct rec *r, uint64_t lsn, const void *val,
                      size_t vlen, unsigned flags, int64_t now) {
  int tomb = flags & ENTRY_F_TOMB;
  if (tomb && !db_cold(db, s)) {
    entry_free(table_remove(s->t, hash, r->key, r->klen));
    return 0;
  }
  /* An entry already dead is still inserted: a later record may revive it
   * (cairn_expire clearing its lifespan), and the expiry sweep logs its
   * deletion once the open is done, so every reader of the log agrees.
   * Max-idle counts from the open: the log does not hold reads, and an
   * entry kept alive by reads alone must not die at a restart. */
  struct entry *e = entry_new(r->key, r->klen, tomb ? NULL : val,
                              tomb ? 0 : vlen, hash, lsn,
                              tomb ? 0 : r->expire_at_ms,
                              tomb ? 0 : r->max_idle_ms, now, flags);
  if (!e) return CAIRN_ENOMEM;
  int rc = table_put(s->t, hash, e);
  if (rc) entry_free(e);
  return rc;
}

/* A collection delta: applied to the collection as it was when the delta
 * was written (none, for a REC_F_FRESH one), exactly as the write did. */
static int replay_coll(cairn *db, struct ns *s, uint64_t hash,
                       const struct rec *r, uint64_t lsn, int64_t now) {
  /* A large collection is changed where it is (cobj.h), so replaying many
   * deltas to one costs O(1) each, not a rewrite of its blob. */
  int done = db_coll_replay(s->t, hash,
                            table_find(s->t, hash, r->key, r->klen), r, lsn);
  if (done == 1) return 0;
  if (done == 2) return replay_set(db, s, hash, r, lsn, NULL, 0, ENTRY_F_TOMB,
                                   now);
  if (done < 0) {
    log_error(&db->log, "log record at LSN %" PRIu64 " does not apply to "
              "its collection: %s", lsn, cairn_strerror(done));
    return done == CAIRN_ENOMEM ? done : CAIRN_ECORRUPT;
  }
  struct store_val held = {0};
  const void *base = NULL;
  uint32_t blen = 0;
  unsigned type = r->type;
  if (!(r->flags & REC_F_FRESH)) {
    int rc = replay_base(db, s, hash, r, &held, &base, &blen, &type);
    if (rc && rc != CAIRN_ENOTFOUND) return rc;
  }
  void *blob = NULL;
  size_t n = 0;
  int rc = type == r->type ? coll_apply(r->type, base, blen, r->val, r->vlen,
                                        &blob, &n)
                           : CAIRN_ECORRUPT;
  free(held.data);
  if (rc) {
    log_error(&db->log, "log record at LSN %" PRIu64 " does not apply to "
              "its collection: %s", lsn, cairn_strerror(rc));
    return CAIRN_ECORRUPT;
  }
  rc = replay_set(db, s, hash, r, lsn, blob, n,
                  blob ? ENTRY_F_TYPE(r->type) : ENTRY_F_TOMB, now);
  free(blob);
  return rc;
}

static int replay_one(cairn *db, struct ns *s, uint64_t hash, uint64_t lsn,
                      const struct rec *r, int64_t now) {
  int rc;
  switch (r->op) {
  case REC_PUT:
    return replay_set(db, s, hash, r, lsn, r->val, r->vlen,
                      ENTRY_F_TYPE(r->type), now);
  case REC_COLL:
    return replay_coll(db, s, hash, r, lsn, now);
  case REC_EXPIRE: {
    struct store_val held = {0};
    const void *val;
    uint32_t vlen;
    unsigned type;
    rc = replay_base(db, s, hash, r, &held, &val, &vlen, &type);
    if (rc == 0)
      rc = replay_set(db, s, hash, r, lsn, val, vlen, ENTRY_F_TYPE(type), now);
    free(held.data);
    return rc == CAIRN_ENOTFOUND ? 0 : rc;
  }
  default: /* REC_DEL, REC_EXPIRED: a tombstone hides the store's copy */
    return replay_set(db, s, hash, r, lsn, NULL, 0, ENTRY_F_TOMB, now);
  }
}

/* One record, under its shard's write lock if lock is set (a follower
 * applies while readers run). */
static int replay_locked(cairn *db, uint64_t lsn, const struct rec *r,
                         int64_t now, int lock) {
  struct ns *s;
  int rc = db_ns_get(db, r->ns, r->ns_len, &s);
  if (rc) return rc;
  uint64_t hash = table_hash(r->key, r->klen);
  unsigned shard = table_shard(hash);
  if (lock) table_wrlock(s->t, shard);
  rc = replay_one(db, s, hash, lsn, r, now);
  if (lock) table_unlock(s->t, shard);
  return rc;
}

int db_replay(cairn *db, uint64_t lsn, const struct rec *r, int64_t now,
              int lock) {
  if (r->op != REC_BATCH) return replay_locked(db, lsn, r, now, lock);
  size_t off = 0;
  for (uint32_t i = 0; i < r->klen; i++) {
    struct rec sub;
    int rc = rec_decode(r->val, r->vlen, &off, &sub);
    if (rc) return rc; /* the frame was checked; this is a bug or bad RAM */
    if ((rc = replay_locked(db, lsn, &sub, now, lock)) != 0) return rc;
  }
  return 0;
}

/* wal_apply_fn: open is single-threaded, so no locks are taken here. */
static int replay_apply(void *arg, uint64_t lsn, const struct rec *r) {
  struct replay *rp = arg;
  return db_replay(rp->db, lsn, r, rp->now, 0);
}

/* ------------------------------------------------------------------------
 * The data directory: LOCK and meta
 * --------------------------------------------------------------------- */

static int dir_lock(cairn *db) {
  char path[WAL_PATH_MAX];
  snprintf(path, sizeof path, "%s/LOCK", db->dir);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return -errno;
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    close(fd);
    if (e == EWOULDBLOCK) {
      log_error(&db->log, "%s is in use by another process", db->dir);
      return CAIRN_EBUSY;
    }
    return -e;
  }
  db->lock_fd = fd;
  return 0;
}

/* Read DIR/meta, creating it for a new directory. */
static int meta_load(cairn *db) {
  int rc = meta_read(db->dir, &db->log, &db->meta);
  if (rc == CAIRN_ENOTFOUND) {
    rc = meta_init(&db->meta);
    if (rc == 0) rc = meta_write(db->dir, &db->meta);
  }
  if (rc == 0) db->epoch = meta_epoch(&db->meta);
  return rc;
}

/* ------------------------------------------------------------------------
 * Open and close
 * --------------------------------------------------------------------- */

static void db_free(cairn *db) {
  for (unsigned i = 0; i < db->ns_count; i++) {
    table_free(db->ns[i]->t);
    free(db->ns[i]);
  }
  store_close(db->store);
  if (db->lock_fd >= 0) close(db->lock_fd);
  pthread_mutex_destroy(&db->ns_mu);
  pthread_mutex_destroy(&db->meta_mu);
  free(db->admit);
  free(db->dir);
  free(db);
}

static int db_open_store(cairn *db) {
  char sdir[WAL_PATH_MAX];
  snprintf(sdir, sizeof sdir, "%s/lmdb", db->dir);
  struct store_config cfg = {
      .dir = sdir,
      .map_bytes = MIN(MAP_BYTES_INITIAL, db->opt.map_bytes_max),
      .map_bytes_max = db->opt.map_bytes_max,
      .max_readers = STORE_READERS,
      .log = &db->log,
  };
  int rc = store_open(&cfg, &db->store);
  if (rc) return rc;
  db->ckpt_lsn = store_ckpt_lsn(db->store);
  return 0;
}

static int db_open_log(cairn *db) {
  char wdir[WAL_PATH_MAX];
  snprintf(wdir, sizeof wdir, "%s/wal", db->dir);
  struct wal_config cfg = {
      .dir = wdir,
      .segment_bytes = db->opt.segment_bytes,
      .group_max_bytes = db->opt.group_max_bytes,
      .interval_ms = db->opt.interval_ms,
      .epoch = db->epoch,
      .flags = ((db->opt.flags & CAIRN_OPEN_SALVAGE) ? WAL_SALVAGE : 0) |
               ((db->opt.flags & CAIRN_OPEN_NO_URING) ? WAL_NO_URING : 0),
      .log = &db->log,
  };
  struct replay rp = {db, now_ms()};
  uint64_t t0 = mono_ns();
  int rc = wal_open(&cfg, db->ckpt_lsn, replay_apply, &rp, &db->wal);
  if (rc) return rc;
  struct wal_stats ws;
  wal_stats(db->wal, &ws);
  log_info(&db->log, "opened %s: checkpoint at LSN %" PRIu64 ", %" PRIu64
           " records replayed in %.1f ms, next LSN %" PRIu64 ", epoch %"
           PRIu64, db->dir, db->ckpt_lsn, ws.recovered_records,
           (double)(mono_ns() - t0) / 1e6, ws.last_lsn + 1, db->epoch);
  return 0;
}

static int db_start_ckpt(cairn *db) {
  struct ckpt_config cfg = {
      .log_bytes = db->opt.checkpoint_bytes,
      .interval_ms = db->opt.checkpoint_interval_ms,
      .epoch = db->epoch,
      .log = &db->log,
      .done = ckpt_done,
      .defer_replayed = (db->opt.flags & CAIRN_OPEN_FOLLOWER) != 0,
      .arg = db,
  };
  return ckpt_start(db->wal, db->store, &cfg, &db->ckpt);
}

CAIRN_EXPORT int cairn_open(const char *dir, const cairn_options *opt,
                            cairn **out) {
  if (!dir || !*dir || !out || strlen(dir) > WAL_PATH_MAX - 64)
    return CAIRN_EINVAL;
  cairn_options o;
  if (opt) o = *opt;
  else cairn_options_init(&o);
  if (o.durability == CAIRN_DURABILITY_DEFAULT)
    o.durability = CAIRN_DURABILITY_FSYNC;
  int rc = options_check(&o);
  if (rc) return rc;
  cairn *db = NULL;
  /* The counters are cache-line aligned, which calloc does not promise. */
  if (posix_memalign((void **)&db, 64, sizeof *db) != 0) return CAIRN_ENOMEM;
  memset(db, 0, sizeof *db);
  if (!(db->dir = strdup(dir))) {
    free(db);
    return CAIRN_ENOMEM;
  }
  db->opt = o;
  db->log = (struct logger){o.log_fn, o.log_arg, o.log_level};
  db->lock_fd = -1;
  db->follower = (o.flags & CAIRN_OPEN_FOLLOWER) != 0;
  pthread_mutex_init(&db->ns_mu, NULL);
  pthread_mutex_init(&db->meta_mu, NULL);
  /* Even with no budget: cairn_set_max_memory may set one. */
  if (!(db->admit = calloc(ADMIT_BITS / 64, sizeof *db->admit))) {
    free(db->dir);
    free(db);
    return CAIRN_ENOMEM;
  }
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) rc = -errno;
  if (rc == 0) rc = dir_lock(db);
  if (rc == 0) rc = follow_leftover(db->dir, &db->log);
  if (rc == 0) rc = meta_load(db);
  if (rc == 0) rc = db_open_store(db);
  if (rc == 0) rc = db_open_log(db);
  if (rc == 0 && (rc = db_start_ckpt(db)) != 0) wal_close(db->wal);
  if (rc == 0 && (rc = maint_start(db)) != 0) {
    ckpt_stop(db->ckpt, 0);
    wal_close(db->wal);
  }
  if (rc) {
    db_free(db);
    return rc;
  }
  *out = db;
  return 0;
}

CAIRN_EXPORT void cairn_close(cairn *db) {
  if (db) db_close_mode(db, 1);
}

void db_close_mode(cairn *db, int checkpoint) {
  maint_stop(db);
  if (checkpoint) maint_log_touches(db);
  /* A clean close leaves nothing to replay: sync, then checkpoint. */
  int rc = wal_sync(db->wal);
  if (rc == 0) rc = ckpt_stop(db->ckpt, checkpoint);
  else ckpt_stop(db->ckpt, 0);
  if (rc && rc != CAIRN_EIO)
    log_warn(&db->log, "checkpoint at close: %s; the log will be replayed "
             "at the next open", cairn_strerror(rc));
  wal_close(db->wal);
  db_free(db);
}
