/*
 * db.c - the public API: namespaces, reads and writes over the table and
 * the log, recovery, and background expiry.
 *
 * A write, in order:
 *   1. reserve room in the log buffer (may wait for a flush; no lock held),
 *   2. take the shard's write lock and check the write's condition,
 *   3. change the table and append the record: the LSN is the new version,
 *      and LSN order matches the order of the shard lock, so the log and
 *      the table agree on the order of writes to one key,
 *   4. release the lock, then wait for the log (or return, if async).
 * A read takes the shard's read lock, copies the value and never waits on
 * the log.  Readers may therefore see a write before it is durable; the
 * writer is not told it succeeded until it is.
 *
 * Data directory:
 *   LOCK   flock'd while open, so two processes never share a directory
 *   meta   format version, database id and epoch (written atomically)
 *   wal/   log segments (wal.h)
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

#include "db.h"
#include "limits.h"
#include "record.h"
#include "sys.h"
#include "table.h"
#include "util.h"
#include "wal.h"

#define META_FORMAT 1
#define MEM_VERSION_BIT (1ull << 63)
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
      o->expire_scan_max == 0)
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
static int ns_get(cairn *db, const char *name, size_t len, struct ns **out) {
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

/* Resolve a public namespace argument (NULL: the default namespace). */
static int ns_arg(cairn *db, const char *ns, int create, struct ns **out) {
  size_t len;
  if (!ns) {
    ns = DEFAULT_NS;
    len = sizeof DEFAULT_NS - 1;
  } else {
    len = strnlen(ns, NS_NAME_MAX + 1);
  }
  if (!ns_name_ok(ns, len)) return CAIRN_EINVAL;
  if (create) return ns_get(db, ns, len, out);
  struct ns *s = ns_find(db, ns, len);
  if (!s) return CAIRN_ENOTFOUND;
  *out = s;
  return 0;
}

CAIRN_EXPORT int cairn_ns_define(cairn *db, const char *ns,
                                 const cairn_ns_options *o) {
  if (!db || !o || o->durability < CAIRN_DURABILITY_DEFAULT ||
      o->durability > CAIRN_DURABILITY_MEMORY)
    return CAIRN_EINVAL;
  struct ns *s;
  int rc = ns_arg(db, ns, 1, &s);
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
 * Write plumbing
 * --------------------------------------------------------------------- */

static const cairn_write no_write_opts;

static cairn_durability write_mode(cairn *db, const struct ns *s,
                                   const cairn_write *w) {
  if (w->durability != CAIRN_DURABILITY_DEFAULT) return w->durability;
  cairn_durability d = __atomic_load_n(&s->opt.durability, __ATOMIC_RELAXED);
  if (d != CAIRN_DURABILITY_DEFAULT) return d;
  return db->opt.durability;
}

static int key_ok(const void *key, size_t klen) {
  return key && klen >= 1 && klen <= KEY_MAX;
}

/* The expiry a write gives a new entry: from w, else the namespace's. */
static void write_expiry(const struct ns *s, const cairn_write *w,
                         int64_t now, int64_t *expire_at,
                         uint64_t *max_idle) {
  uint64_t ttl = s->opt.ttl_ms, idle = s->opt.max_idle_ms;
  if ((w->flags & CAIRN_W_TTL) || w->ttl_ms) ttl = w->ttl_ms;
  if ((w->flags & CAIRN_W_MAX_IDLE) || w->max_idle_ms) idle = w->max_idle_ms;
  *expire_at = ttl ? now + (int64_t)MIN(ttl, (uint64_t)INT64_MAX / 4) : 0;
  *max_idle = idle;
}

static int entry_live(const struct entry *e, int64_t now) {
  if (!e) return 0;
  int64_t d = entry_deadline(e);
  return d == 0 || d > now;
}

/* Check a write's condition against the live entry e (or NULL). */
static int cond_check(const cairn_write *w, const struct entry *e) {
  if ((w->cond & CAIRN_IF_ABSENT) && e) return CAIRN_EEXISTS;
  if ((w->cond & CAIRN_IF_PRESENT) && !e) return CAIRN_ENOTFOUND;
  if ((w->cond & CAIRN_IF_VERSION) && (e ? entry_version(e) : 0) != w->version)
    return CAIRN_EVERSION;
  return 0;
}

static int writable(cairn *db) {
  if (__atomic_load_n(&db->fatal, __ATOMIC_RELAXED)) return CAIRN_EREADONLY;
  return 0;
}

/* Step 1 of a write: room in the log for `bytes`, unless not logged. */
static int write_begin(cairn *db, cairn_durability mode, size_t bytes) {
  int rc = writable(db);
  if (rc || mode == CAIRN_DURABILITY_MEMORY) return rc;
  return wal_reserve(db->wal, bytes);
}

static void write_abort(cairn *db, cairn_durability mode, size_t bytes) {
  if (mode != CAIRN_DURABILITY_MEMORY) wal_unreserve(db->wal, bytes);
}

/* Step 3: the version of this write, appending r to the log when logged.
 * Called with the shard write lock(s) held. */
static uint64_t write_commit(cairn *db, cairn_durability mode,
                             const struct rec *r, const cairn_write *w) {
  if (mode == CAIRN_DURABILITY_MEMORY)
    return MEM_VERSION_BIT |
           __atomic_add_fetch(&db->mem_version, 1, __ATOMIC_RELAXED);
  return wal_append(db->wal, r, mode, w->done, w->done_arg);
}

/* Step 4: wait for the log, or hand a MEMORY write's completion over. */
static int write_finish(cairn *db, cairn_durability mode, uint64_t lsn,
                        const cairn_write *w) {
  if (mode == CAIRN_DURABILITY_MEMORY) {
    if (w->done) w->done(w->done_arg, 0, lsn);
    return 0;
  }
  if (w->done) return 0;
  return wal_wait(db->wal, lsn, mode);
}

static void entry_set_version(struct entry *e, uint64_t v) {
  e->ver_lo = (uint32_t)v;
  e->ver_hi = (uint32_t)(v >> 32);
}

static void rec_init(struct rec *r, uint8_t op, const struct ns *s,
                     const void *key, size_t klen, int64_t now) {
  memset(r, 0, sizeof *r);
  r->op = op;
  r->ns = s->name;
  r->ns_len = s->len;
  r->key = key;
  r->klen = (uint32_t)klen;
  r->ts_ms = (uint64_t)now;
}

/* ------------------------------------------------------------------------
 * Put, delete, take, incr, expire
 * --------------------------------------------------------------------- */

/* Store val under key with the given expiry, under condition w->cond.
 * keep_ttl: take the expiry of the live entry, if any. */
static int do_put(cairn *db, struct ns *s, const void *key, size_t klen,
                  const void *val, size_t vlen, const cairn_write *w,
                  int keep_ttl) {
  int64_t now = now_ms(), expire_at;
  uint64_t max_idle, hash = table_hash(key, klen);
  unsigned shard = table_shard(hash);
  cairn_durability mode = write_mode(db, s, w);
  write_expiry(s, w, now, &expire_at, &max_idle);

  struct rec r;
  rec_init(&r, REC_PUT, s, key, klen, now);
  r.val = val;
  r.vlen = (uint32_t)vlen;
  size_t bytes = rec_size(&r);
  int rc = write_begin(db, mode, bytes);
  if (rc) return rc;

  table_wrlock(s->t, shard);
  struct entry *old = table_find(s->t, hash, key, klen);
  if (!entry_live(old, now)) old = NULL;
  if ((rc = cond_check(w, old)) != 0) goto fail;
  if (keep_ttl && old) {
    expire_at = entry_expire_at(old);
    max_idle = entry_max_idle(old);
  }
  r.expire_at_ms = expire_at;
  r.max_idle_ms = max_idle;
  unsigned flags = mode == CAIRN_DURABILITY_MEMORY ? ENTRY_F_MEMORY : 0;
  struct entry *e = entry_new(key, klen, val, vlen, hash, 0, expire_at,
                              max_idle, now, flags);
  if (!e) {
    rc = CAIRN_ENOMEM;
    goto fail;
  }
  if ((rc = table_put(s->t, hash, e)) != 0) {
    entry_free(e);
    goto fail;
  }
  uint64_t lsn = write_commit(db, mode, &r, w);
  entry_set_version(e, lsn);
  table_unlock(s->t, shard);
  db_count(db, CNT_PUTS, 1);
  return write_finish(db, mode, lsn, w);

fail:
  table_unlock(s->t, shard);
  write_abort(db, mode, bytes);
  return rc;
}

static int put_args_ok(cairn *db, const void *key, size_t klen,
                       const void *val, size_t vlen) {
  if (!db || !key_ok(key, klen) || vlen > VALUE_MAX || (vlen && !val))
    return CAIRN_EINVAL;
  return 0;
}

CAIRN_EXPORT int cairn_put(cairn *db, const char *ns, const void *key,
                           size_t klen, const void *val, size_t vlen,
                           const cairn_write *w) {
  int rc = put_args_ok(db, key, klen, val, vlen);
  if (rc) return rc;
  if (!w) w = &no_write_opts;
  struct ns *s;
  if ((rc = ns_arg(db, ns, 1, &s)) != 0) return rc;
  return do_put(db, s, key, klen, val, vlen, w,
                (w->flags & CAIRN_W_KEEP_TTL) != 0);
}

/* Copy e into *out (data malloc'd, NUL-terminated). */
static int value_copy(const struct entry *e, cairn_value *out) {
  size_t n = entry_vlen(e);
  char *p = malloc(n + 1);
  if (!p) return CAIRN_ENOMEM;
  memcpy(p, entry_val(e), n);
  p[n] = '\0';
  out->data = p;
  out->len = n;
  out->version = entry_version(e);
  out->expire_at_ms = entry_deadline(e);
  out->max_idle_ms = entry_max_idle(e);
  return 0;
}

/* Delete the live entry at key, copying it into *out first if out is set
 * (cairn_take). */
static int do_del(cairn *db, struct ns *s, const void *key, size_t klen,
                  cairn_value *out, const cairn_write *w) {
  int64_t now = now_ms();
  uint64_t hash = table_hash(key, klen);
  unsigned shard = table_shard(hash);
  cairn_durability mode = write_mode(db, s, w);
  struct rec r;
  rec_init(&r, REC_DEL, s, key, klen, now);
  size_t bytes = rec_size(&r);
  /* Whether the delete is logged depends on the entry, seen only under the
   * lock: a MEMORY entry was never logged, so neither is its deletion, and
   * any other deletion is logged, even a MEMORY one, or the entry would
   * come back on restart.  Reserve room now, give it back if unused. */
  int rc = write_begin(db, CAIRN_DURABILITY_INTERVAL, bytes);
  if (rc) return rc;

  table_wrlock(s->t, shard);
  struct entry *e = table_find(s->t, hash, key, klen);
  if (!entry_live(e, now)) {
    rc = CAIRN_ENOTFOUND;
    goto fail;
  }
  if ((rc = cond_check(w, e)) != 0) goto fail;
  cairn_value v = {0};
  if (out && (rc = value_copy(e, &v)) != 0) goto fail;
  if (entry_flags(e) & ENTRY_F_MEMORY) {
    write_abort(db, CAIRN_DURABILITY_INTERVAL, bytes);
    mode = CAIRN_DURABILITY_MEMORY;
  } else if (mode == CAIRN_DURABILITY_MEMORY) {
    mode = CAIRN_DURABILITY_INTERVAL;
  }
  uint64_t lsn = write_commit(db, mode, &r, w);
  entry_free(table_remove(s->t, hash, key, klen));
  table_unlock(s->t, shard);
  db_count(db, CNT_DELS, 1);
  rc = write_finish(db, mode, lsn, w);
  if (out) {
    if (rc == 0) *out = v;
    else free(v.data);
  }
  return rc;

fail:
  table_unlock(s->t, shard);
  write_abort(db, CAIRN_DURABILITY_INTERVAL, bytes);
  return rc;
}

CAIRN_EXPORT int cairn_del(cairn *db, const char *ns, const void *key,
                           size_t klen, const cairn_write *w) {
  if (!db || !key_ok(key, klen)) return CAIRN_EINVAL;
  struct ns *s;
  int rc = ns_arg(db, ns, 0, &s);
  if (rc) return rc;
  return do_del(db, s, key, klen, NULL, w ? w : &no_write_opts);
}

CAIRN_EXPORT int cairn_take(cairn *db, const char *ns, const void *key,
                            size_t klen, cairn_value *out,
                            const cairn_write *w) {
  if (!db || !key_ok(key, klen)) return CAIRN_EINVAL;
  struct ns *s;
  int rc = ns_arg(db, ns, 0, &s);
  if (rc) return rc;
  return do_del(db, s, key, klen, out, w ? w : &no_write_opts);
}

/* Parse a signed 64-bit decimal integer as Redis does: optional '-', no
 * '+', no leading zeros, no spaces, nothing else. */
static int parse_i64(const char *p, size_t n, int64_t *out) {
  if (n == 0 || n > 20) return CAIRN_ENOTNUM;
  size_t i = 0;
  int neg = p[0] == '-';
  if (neg && ++i == n) return CAIRN_ENOTNUM;
  if (p[i] == '0' && (n - i > 1 || neg)) return CAIRN_ENOTNUM;
  uint64_t v = 0;
  for (; i < n; i++) {
    if (p[i] < '0' || p[i] > '9') return CAIRN_ENOTNUM;
    uint64_t d = (uint64_t)(p[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return CAIRN_ENOTNUM;
    v = v * 10 + d;
  }
  if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX)
    return CAIRN_ENOTNUM;
  *out = neg ? (int64_t)(0 - v) : (int64_t)v;
  return 0;
}

/* The value an incr writes: the current one (0 if absent) plus delta. */
static int incr_value(const struct entry *old, int64_t delta, int64_t *sum) {
  int64_t cur = 0;
  if (old) {
    int rc = parse_i64(entry_val(old), entry_vlen(old), &cur);
    if (rc) return rc;
  }
  if (__builtin_add_overflow(cur, delta, sum)) return CAIRN_EOVERFLOW;
  return 0;
}

CAIRN_EXPORT int cairn_incr(cairn *db, const char *ns, const void *key,
                            size_t klen, int64_t delta, int64_t *result,
                            const cairn_write *w) {
  if (!db || !key_ok(key, klen)) return CAIRN_EINVAL;
  if (!w) w = &no_write_opts;
  struct ns *s;
  int rc = ns_arg(db, ns, 1, &s);
  if (rc) return rc;

  int64_t now = now_ms(), expire_at, sum;
  uint64_t max_idle, hash = table_hash(key, klen);
  unsigned shard = table_shard(hash);
  cairn_durability mode = write_mode(db, s, w);
  write_expiry(s, w, now, &expire_at, &max_idle);
  char digits[24];
  struct rec r;
  rec_init(&r, REC_PUT, s, key, klen, now);
  r.val = digits;
  r.vlen = sizeof digits - 1; /* reserve for the longest number */
  size_t bytes = rec_size(&r);
  if ((rc = write_begin(db, mode, bytes)) != 0) return rc;

  table_wrlock(s->t, shard);
  struct entry *old = table_find(s->t, hash, key, klen);
  if (!entry_live(old, now)) old = NULL;
  if ((rc = cond_check(w, old)) != 0 || (rc = incr_value(old, delta, &sum)))
    goto fail;
  if (old) { /* a counter keeps its expiry, as in Redis */
    expire_at = entry_expire_at(old);
    max_idle = entry_max_idle(old);
  }
  r.vlen = (uint32_t)snprintf(digits, sizeof digits, "%" PRId64, sum);
  r.expire_at_ms = expire_at;
  r.max_idle_ms = max_idle;
  struct entry *e = entry_new(key, klen, digits, r.vlen, hash, 0, expire_at,
                              max_idle, now,
                              mode == CAIRN_DURABILITY_MEMORY ? ENTRY_F_MEMORY
                                                              : 0);
  if (!e) {
    rc = CAIRN_ENOMEM;
    goto fail;
  }
  if ((rc = table_put(s->t, hash, e)) != 0) {
    entry_free(e);
    goto fail;
  }
  /* The reservation was for the longest number; give back the rest. */
  if (mode != CAIRN_DURABILITY_MEMORY)
    wal_reserve_shrink(db->wal, bytes - rec_size(&r));
  uint64_t lsn = write_commit(db, mode, &r, w);
  entry_set_version(e, lsn);
  table_unlock(s->t, shard);
  db_count(db, CNT_PUTS, 1);
  rc = write_finish(db, mode, lsn, w);
  if (rc == 0 && result) *result = sum;
  return rc;

fail:
  table_unlock(s->t, shard);
  write_abort(db, mode, bytes);
  return rc;
}

CAIRN_EXPORT int cairn_expire(cairn *db, const char *ns, const void *key,
                              size_t klen, const cairn_write *w) {
  if (!db || !key_ok(key, klen) || !w) return CAIRN_EINVAL;
  struct ns *s;
  int rc = ns_arg(db, ns, 0, &s);
  if (rc) return rc;
  int64_t now = now_ms();
  uint64_t hash = table_hash(key, klen);
  unsigned shard = table_shard(hash);
  cairn_durability mode = write_mode(db, s, w);
  struct rec r;
  rec_init(&r, REC_EXPIRE, s, key, klen, now);
  size_t bytes = rec_size(&r);
  if ((rc = write_begin(db, mode, bytes)) != 0) return rc;

  table_wrlock(s->t, shard);
  struct entry *old = table_find(s->t, hash, key, klen);
  if (!entry_live(old, now)) {
    rc = CAIRN_ENOTFOUND;
    goto fail;
  }
  if ((rc = cond_check(w, old)) != 0) goto fail;
  int64_t expire_at = entry_expire_at(old);
  uint64_t max_idle = entry_max_idle(old);
  if ((w->flags & CAIRN_W_TTL) || w->ttl_ms)
    expire_at = w->ttl_ms ? now + (int64_t)MIN(w->ttl_ms, (uint64_t)INT64_MAX / 4)
                          : 0;
  if ((w->flags & CAIRN_W_MAX_IDLE) || w->max_idle_ms)
    max_idle = w->max_idle_ms;
  r.expire_at_ms = expire_at;
  r.max_idle_ms = max_idle;
  unsigned flags = entry_flags(old) & ENTRY_F_MEMORY;
  struct entry *e = entry_new(key, klen, entry_val(old), entry_vlen(old),
                              hash, 0, expire_at, max_idle, now, flags);
  if (!e) {
    rc = CAIRN_ENOMEM;
    goto fail;
  }
  if ((rc = table_put(s->t, hash, e)) != 0) {
    entry_free(e);
    goto fail;
  }
  uint64_t lsn = write_commit(db, mode, &r, w);
  entry_set_version(e, lsn);
  table_unlock(s->t, shard);
  return write_finish(db, mode, lsn, w);

fail:
  table_unlock(s->t, shard);
  write_abort(db, mode, bytes);
  return rc;
}

/* ------------------------------------------------------------------------
 * Reads
 * --------------------------------------------------------------------- */

CAIRN_EXPORT void cairn_value_free(cairn_value *v) {
  if (!v) return;
  free(v->data);
  memset(v, 0, sizeof *v);
}

CAIRN_EXPORT int cairn_get(cairn *db, const char *ns, const void *key,
                           size_t klen, cairn_value *out) {
  if (!db || !key_ok(key, klen) || !out) return CAIRN_EINVAL;
  struct ns *s;
  int rc = ns_arg(db, ns, 0, &s);
  db_count(db, CNT_GETS, 1);
  if (rc) return rc;
  uint64_t hash = table_hash(key, klen);
  unsigned shard = table_shard(hash);
  int64_t now = now_ms();
  table_rdlock(s->t, shard);
  struct entry *e = table_find(s->t, hash, key, klen);
  if (!entry_live(e, now)) {
    rc = CAIRN_ENOTFOUND;
  } else {
    if (entry_max_idle(e)) entry_touch(e, now);
    rc = value_copy(e, out);
  }
  table_unlock(s->t, shard);
  if (rc == 0) db_count(db, CNT_GET_HITS, 1);
  return rc;
}

/* ------------------------------------------------------------------------
 * Batches
 * --------------------------------------------------------------------- */

struct batch_op {
  uint8_t op;        /* REC_PUT or REC_DEL */
  struct ns *s;
  uint64_t hash;
  char *key;         /* key, then value, in one allocation */
  uint32_t klen, vlen;
  cairn_write w;     /* conditions and expiry; done/durability unused */
  struct entry *e;   /* at commit: the new entry (puts) */
};

struct cairn_batch {
  cairn *db;
  struct batch_op *ops;
  size_t n, cap;
  uint64_t bytes;    /* encoded size of the sub-records */
};

CAIRN_EXPORT int cairn_batch_new(cairn *db, cairn_batch **out) {
  if (!db || !out) return CAIRN_EINVAL;
  cairn_batch *b = calloc(1, sizeof *b);
  if (!b) return CAIRN_ENOMEM;
  b->db = db;
  *out = b;
  return 0;
}

CAIRN_EXPORT void cairn_batch_free(cairn_batch *b) {
  if (!b) return;
  for (size_t i = 0; i < b->n; i++) free(b->ops[i].key);
  free(b->ops);
  free(b);
}

static int batch_add(cairn_batch *b, uint8_t op, const char *ns,
                     const void *key, size_t klen, const void *val,
                     size_t vlen, const cairn_write *w) {
  if (!b || !key_ok(key, klen) || vlen > VALUE_MAX || (vlen && !val))
    return CAIRN_EINVAL;
  struct ns *s;
  int rc = ns_arg(b->db, ns, 1, &s);
  if (rc) return rc;
  uint64_t add = RECORD_HDR_BYTES + s->len + klen + vlen;
  if (b->n >= BATCH_OPS_MAX || b->bytes + add > BATCH_BYTES_MAX)
    return CAIRN_EINVAL;
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 8;
    struct batch_op *ops = realloc(b->ops, cap * sizeof *ops);
    if (!ops) return CAIRN_ENOMEM;
    b->ops = ops;
    b->cap = cap;
  }
  char *copy = malloc(klen + vlen + 1);
  if (!copy) return CAIRN_ENOMEM;
  memcpy(copy, key, klen);
  if (vlen) memcpy(copy + klen, val, vlen);
  struct batch_op *o = &b->ops[b->n++];
  memset(o, 0, sizeof *o);
  o->op = op;
  o->s = s;
  o->hash = table_hash(key, klen);
  o->key = copy;
  o->klen = (uint32_t)klen;
  o->vlen = (uint32_t)vlen;
  if (w) o->w = *w;
  b->bytes += add;
  return 0;
}

CAIRN_EXPORT int cairn_batch_put(cairn_batch *b, const char *ns,
                                 const void *key, size_t klen,
                                 const void *val, size_t vlen,
                                 const cairn_write *w) {
  return batch_add(b, REC_PUT, ns, key, klen, val, vlen, w);
}

CAIRN_EXPORT int cairn_batch_del(cairn_batch *b, const char *ns,
                                 const void *key, size_t klen,
                                 const cairn_write *w) {
  return batch_add(b, REC_DEL, ns, key, klen, NULL, 0, w);
}

/* A batch is as durable as its most durable namespace, unless w says. */
static cairn_durability batch_mode(cairn_batch *b, const cairn_write *w) {
  if (w->durability != CAIRN_DURABILITY_DEFAULT) return w->durability;
  cairn_durability m = CAIRN_DURABILITY_MEMORY;
  for (size_t i = 0; i < b->n; i++) {
    cairn_durability d = write_mode(b->db, b->ops[i].s, &no_write_opts);
    if (d < m) m = d;
  }
  return m;
}

/* The (table, shard) pairs of a batch, sorted and unique: the order in
 * which every batch takes its locks, so two batches never deadlock. */
struct lockref {
  struct table *t;
  unsigned shard;
};

static int lockref_cmp(const void *a, const void *b) {
  const struct lockref *x = a, *y = b;
  if (x->t != y->t) return (uintptr_t)x->t < (uintptr_t)y->t ? -1 : 1;
  return x->shard < y->shard ? -1 : x->shard > y->shard;
}

static size_t batch_locks(cairn_batch *b, struct lockref *refs) {
  for (size_t i = 0; i < b->n; i++)
    refs[i] = (struct lockref){b->ops[i].s->t, table_shard(b->ops[i].hash)};
  qsort(refs, b->n, sizeof *refs, lockref_cmp);
  size_t m = 0;
  for (size_t i = 0; i < b->n; i++)
    if (m == 0 || lockref_cmp(&refs[m - 1], &refs[i]) != 0) refs[m++] = refs[i];
  return m;
}

/* Check every condition against the state before the batch, and build the
 * entries of the puts.  Called with every lock held. */
static int batch_prepare(cairn_batch *b, int64_t now, unsigned eflags) {
  for (size_t i = 0; i < b->n; i++) {
    struct batch_op *o = &b->ops[i];
    struct entry *old = table_find(o->s->t, o->hash, o->key, o->klen);
    if (!entry_live(old, now)) old = NULL;
    int rc = cond_check(&o->w, old);
    if (rc) return rc;
    if (o->op != REC_PUT) continue;
    int64_t expire_at;
    uint64_t max_idle;
    write_expiry(o->s, &o->w, now, &expire_at, &max_idle);
    if ((o->w.flags & CAIRN_W_KEEP_TTL) && old) {
      expire_at = entry_expire_at(old);
      max_idle = entry_max_idle(old);
    }
    o->e = entry_new(o->key, o->klen, o->key + o->klen, o->vlen, o->hash, 0,
                     expire_at, max_idle, now, eflags);
    if (!o->e) return CAIRN_ENOMEM;
  }
  return 0;
}

/* Encode the sub-records into buf (b->bytes long). */
static void batch_encode(cairn_batch *b, int64_t now, char *buf) {
  size_t off = 0;
  for (size_t i = 0; i < b->n; i++) {
    struct batch_op *o = &b->ops[i];
    struct rec r;
    rec_init(&r, o->op, o->s, o->key, o->klen, now);
    if (o->op == REC_PUT) {
      r.val = o->key + o->klen;
      r.vlen = o->vlen;
      r.expire_at_ms = entry_expire_at(o->e);
      r.max_idle_ms = entry_max_idle(o->e);
    }
    off += rec_encode(&r, buf + off);
  }
  cairn_assert(off == b->bytes);
}

/* Apply the prepared batch to the table under version lsn.  The record is
 * already logged, so a failure here leaves the table behind the log: the
 * database then refuses writes until it is reopened. */
static void batch_apply(cairn_batch *b, uint64_t lsn) {
  cairn *db = b->db;
  for (size_t i = 0; i < b->n; i++) {
    struct batch_op *o = &b->ops[i];
    if (o->op == REC_DEL) {
      entry_free(table_remove(o->s->t, o->hash, o->key, o->klen));
      continue;
    }
    entry_set_version(o->e, lsn);
    if (table_put(o->s->t, o->hash, o->e) != 0) {
      entry_free(o->e);
      if (!__atomic_exchange_n(&db->fatal, 1, __ATOMIC_RELAXED))
        log_error(&db->log, "out of memory applying a logged batch at LSN %"
                  PRIu64 "; writes are refused until the database is reopened",
                  lsn);
    }
    o->e = NULL;
  }
}

static void batch_unprepare(cairn_batch *b) {
  for (size_t i = 0; i < b->n; i++) {
    entry_free(b->ops[i].e);
    b->ops[i].e = NULL;
  }
}

CAIRN_EXPORT int cairn_batch_commit(cairn_batch *b, const cairn_write *w) {
  if (!b) return CAIRN_EINVAL;
  if (!w) w = &no_write_opts;
  if (b->n == 0) return 0;
  cairn *db = b->db;
  cairn_durability mode = batch_mode(b, w);
  int64_t now = now_ms();
  struct lockref *refs = malloc(b->n * sizeof *refs);
  char *sub = malloc(b->bytes ? b->bytes : 1);
  if (!refs || !sub) {
    free(refs);
    free(sub);
    return CAIRN_ENOMEM;
  }
  struct rec r;
  rec_init(&r, REC_BATCH, b->ops[0].s, NULL, b->n, now);
  r.val = sub;
  r.vlen = (uint32_t)b->bytes;
  size_t bytes = rec_size(&r);
  int rc = write_begin(db, mode, bytes);
  if (rc) goto out;

  size_t nlocks = batch_locks(b, refs);
  for (size_t i = 0; i < nlocks; i++) table_wrlock(refs[i].t, refs[i].shard);
  rc = batch_prepare(b, now,
                     mode == CAIRN_DURABILITY_MEMORY ? ENTRY_F_MEMORY : 0);
  uint64_t lsn = 0;
  if (rc == 0) {
    batch_encode(b, now, sub);
    lsn = write_commit(db, mode, &r, w);
    batch_apply(b, lsn);
  } else {
    batch_unprepare(b);
  }
  for (size_t i = nlocks; i-- > 0;) table_unlock(refs[i].t, refs[i].shard);
  if (rc) {
    write_abort(db, mode, bytes);
    goto out;
  }
  db_count(db, CNT_PUTS, b->n);
  rc = write_finish(db, mode, lsn, w);
out:
  free(refs);
  free(sub);
  return rc;
}

/* ------------------------------------------------------------------------
 * Scans
 * --------------------------------------------------------------------- */

/* The cursor is (shard << 33) | h32-to-resume-at, so that 0 is the start
 * and the h32 part can hold 2^32 ("shard done"). */
#define CURSOR_SHARD(c) ((unsigned)((c) >> 33))
#define CURSOR_FROM(c) ((c) & ((1ull << 33) - 1))
#define CURSOR_MAKE(shard, from) (((uint64_t)(shard) << 33) | (from))

struct scan_ctx {
  const void *prefix;
  size_t plen;
  int64_t now;
  cairn_scan_fn fn;
  void *arg;
  size_t seen;       /* entries examined, live or not */
  int stop;          /* fn asked to stop */
};

/* table_walk finishes the group of entries sharing an h32 before it stops,
 * so a stop requested by fn takes effect at the end of that group, and the
 * cursor never lands inside it. */
static int scan_visit(void *arg, struct entry *e) {
  struct scan_ctx *c = arg;
  c->seen++;
  if (!entry_live(e, c->now)) return c->stop;
  if (c->plen && (entry_klen(e) < c->plen ||
                  memcmp(entry_key(e), c->prefix, c->plen) != 0))
    return c->stop;
  if (c->fn(c->arg, entry_key(e), entry_klen(e), entry_val(e), entry_vlen(e),
            entry_version(e), entry_deadline(e)))
    c->stop = 1;
  return c->stop;
}

CAIRN_EXPORT int cairn_scan(cairn *db, const char *ns, const void *prefix,
                            size_t plen, uint64_t *cursor, size_t count,
                            cairn_scan_fn fn, void *arg) {
  if (!db || !cursor || !fn || (plen && !prefix) || plen > KEY_MAX)
    return CAIRN_EINVAL;
  unsigned shard = CURSOR_SHARD(*cursor);
  uint64_t from = CURSOR_FROM(*cursor);
  if (shard >= TABLE_SHARDS || from > (1ull << 32)) return CAIRN_EINVAL;
  struct ns *s;
  int rc = ns_arg(db, ns, 0, &s);
  if (rc == CAIRN_ENOTFOUND) {
    *cursor = 0;
    return 0;
  }
  if (rc) return rc;
  if (count == 0) count = 1;
  struct scan_ctx c = {prefix, plen, now_ms(), fn, arg, 0, 0};
  while (shard < TABLE_SHARDS && c.seen < count && !c.stop) {
    table_rdlock(s->t, shard);
    int more = table_walk(s->t, shard, &from, count - c.seen, scan_visit, &c);
    table_unlock(s->t, shard);
    if (!more) {
      shard++;
      from = 0;
    }
  }
  *cursor = shard >= TABLE_SHARDS ? 0 : CURSOR_MAKE(shard, from);
  return 0;
}

/* ------------------------------------------------------------------------
 * Sync and statistics
 * --------------------------------------------------------------------- */

CAIRN_EXPORT int cairn_sync(cairn *db) {
  if (!db) return CAIRN_EINVAL;
  return wal_sync(db->wal);
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
  st.puts = c[CNT_PUTS];
  st.dels = c[CNT_DELS];
  st.gets = c[CNT_GETS];
  st.get_hits = c[CNT_GET_HITS];
  st.expired = c[CNT_EXPIRED];
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

static int replay_one(cairn *db, uint64_t lsn, const struct rec *r,
                      int64_t now) {
  struct ns *s;
  int rc = ns_get(db, r->ns, r->ns_len, &s);
  if (rc) return rc;
  uint64_t hash = table_hash(r->key, r->klen);
  struct entry *old = table_find(s->t, hash, r->key, r->klen);
  const void *val = r->val;
  uint32_t vlen = r->vlen;
  switch (r->op) {
  case REC_PUT:
    break;
  case REC_EXPIRE:
    if (!old) return 0;
    val = entry_val(old);
    vlen = (uint32_t)entry_vlen(old);
    break;
  default: /* REC_DEL, REC_EXPIRED */
    entry_free(table_remove(s->t, hash, r->key, r->klen));
    return 0;
  }
  /* An entry already dead is still inserted: a later record may revive it
   * (cairn_expire clearing its lifespan), and the expiry sweep logs its
   * deletion once the open is done, so every reader of the log agrees.
   * Max-idle counts from the open: the log does not hold reads, and an
   * entry kept alive by reads alone must not die at a restart. */
  struct entry *e = entry_new(r->key, r->klen, val, vlen, hash, lsn,
                              r->expire_at_ms, r->max_idle_ms, now, 0);
  if (!e) return CAIRN_ENOMEM;
  if ((rc = table_put(s->t, hash, e)) != 0) entry_free(e);
  return rc;
}

/* wal_apply_fn: open is single-threaded, so no locks are taken here. */
static int replay_apply(void *arg, uint64_t lsn, const struct rec *r) {
  struct replay *rp = arg;
  if (r->op != REC_BATCH) return replay_one(rp->db, lsn, r, rp->now);
  size_t off = 0;
  for (uint32_t i = 0; i < r->klen; i++) {
    struct rec sub;
    int rc = rec_decode(r->val, r->vlen, &off, &sub);
    if (rc) return rc; /* the frame was checked; this is a bug or bad RAM */
    if ((rc = replay_one(rp->db, lsn, &sub, rp->now)) != 0) return rc;
  }
  return 0;
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

static int meta_write(cairn *db, uint64_t epoch) {
  char path[WAL_PATH_MAX], tmp[WAL_PATH_MAX + 8], buf[256], id[33];
  uint8_t raw[16];
  FILE *r = fopen("/dev/urandom", "rb");
  if (!r || fread(raw, 1, sizeof raw, r) != sizeof raw) {
    if (r) fclose(r);
    return CAIRN_EIO;
  }
  fclose(r);
  for (int i = 0; i < 16; i++) snprintf(id + 2 * i, 3, "%02x", raw[i]);
  int n = snprintf(buf, sizeof buf, "cairn-meta %d\nid %s\nepoch %" PRIu64
                   "\ncreated %" PRId64 "\n", META_FORMAT, id, epoch, now_ms());
  snprintf(path, sizeof path, "%s/meta", db->dir);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int fd = sys_ops.open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return -errno;
  int rc = sys_pwrite_all(fd, buf, (size_t)n, 0);
  if (rc == 0 && sys_ops.fsync(fd) != 0) rc = -errno;
  close(fd);
  if (rc == 0 && sys_ops.rename(tmp, path) != 0) rc = -errno;
  if (rc == 0) rc = sys_fsync_dir(db->dir);
  if (rc == -ENOSPC) rc = CAIRN_EFULL;
  return rc;
}

/* Read DIR/meta, creating it for a new directory. */
static int meta_load(cairn *db) {
  char path[WAL_PATH_MAX], buf[512];
  snprintf(path, sizeof path, "%s/meta", db->dir);
  FILE *f = fopen(path, "re");
  if (!f) {
    if (errno != ENOENT) return -errno;
    db->epoch = 1;
    return meta_write(db, db->epoch);
  }
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  int format = 0;
  uint64_t epoch = 0;
  const char *ep = strstr(buf, "\nepoch ");
  if (sscanf(buf, "cairn-meta %d\n", &format) != 1 || !ep ||
      sscanf(ep, "\nepoch %" SCNu64, &epoch) != 1 || epoch == 0) {
    log_error(&db->log, "%s: not a cairn meta file, or damaged", path);
    return CAIRN_ECORRUPT;
  }
  if (format != META_FORMAT) {
    log_error(&db->log, "%s: format version %d, but this build reads %d",
              path, format, META_FORMAT);
    return CAIRN_EVERFMT;
  }
  db->epoch = epoch;
  return 0;
}

/* ------------------------------------------------------------------------
 * Background expiry: a sweep over every shard, a bounded number of
 * entries per tick.  Each expired entry becomes a logged REC_EXPIRED, so
 * recovery and followers agree on what is gone.
 * --------------------------------------------------------------------- */

#define EXPIRE_BATCH 256u /* keys collected per shard walk */

struct expire_ctx {
  int64_t now;
  size_t seen;       /* entries examined */
  size_t n;          /* expired keys collected */
  char *keys[EXPIRE_BATCH];
  uint32_t klens[EXPIRE_BATCH];
};

static int expire_collect(void *arg, struct entry *e) {
  struct expire_ctx *c = arg;
  c->seen++;
  if (entry_live(e, c->now) || c->n == EXPIRE_BATCH) return 0;
  char *k = malloc(entry_klen(e));
  if (!k) return 0; /* next sweep */
  memcpy(k, entry_key(e), entry_klen(e));
  c->keys[c->n] = k;
  c->klens[c->n++] = (uint32_t)entry_klen(e);
  return 0;
}

/* Delete key if it is still expired, logging the deletion unless it was a
 * MEMORY entry.  Returns 1 if it was deleted. */
static int expire_one(cairn *db, struct ns *s, const char *key, size_t klen) {
  int64_t now = now_ms();
  uint64_t hash = table_hash(key, klen);
  unsigned shard = table_shard(hash);
  struct rec r;
  rec_init(&r, REC_EXPIRED, s, key, klen, now);
  size_t bytes = rec_size(&r);
  if (writable(db) || wal_reserve(db->wal, bytes) != 0) return 0;
  int done = 0;
  table_wrlock(s->t, shard);
  struct entry *e = table_find(s->t, hash, key, klen);
  if (e && !entry_live(e, now)) {
    if (entry_flags(e) & ENTRY_F_MEMORY)
      wal_unreserve(db->wal, bytes);
    else
      wal_append(db->wal, &r, CAIRN_DURABILITY_INTERVAL, NULL, NULL);
    entry_free(table_remove(s->t, hash, key, klen));
    done = 1;
  } else {
    wal_unreserve(db->wal, bytes);
  }
  table_unlock(s->t, shard);
  return done;
}

/* One tick: examine up to expire_scan_max entries from where the last
 * tick stopped. */
static void expire_tick(cairn *db) {
  size_t budget = db->opt.expire_scan_max;
  struct expire_ctx *c = malloc(sizeof *c);
  if (!c) return;
  unsigned nns = __atomic_load_n(&db->ns_count, __ATOMIC_ACQUIRE);
  for (unsigned steps = 0; budget > 0 && nns > 0 &&
                           steps < nns * TABLE_SHARDS + 1; steps++) {
    if (db->expiry_ns >= nns) db->expiry_ns = 0;
    struct ns *s = db->ns[db->expiry_ns];
    c->now = now_ms();
    c->n = c->seen = 0;
    table_rdlock(s->t, db->expiry_shard);
    int more = table_walk(s->t, db->expiry_shard, &db->expiry_from,
                          MIN(budget, EXPIRE_BATCH), expire_collect, c);
    table_unlock(s->t, db->expiry_shard);
    budget -= MIN(budget, MAX(c->seen, (size_t)1));
    for (size_t i = 0; i < c->n; i++) {
      if (expire_one(db, s, c->keys[i], c->klens[i]))
        db_count(db, CNT_EXPIRED, 1);
      free(c->keys[i]);
    }
    if (!more) {
      db->expiry_from = 0;
      if (++db->expiry_shard == TABLE_SHARDS) {
        db->expiry_shard = 0;
        db->expiry_ns++;
      }
    }
  }
  free(c);
}

static void *expiry_main(void *arg) {
  cairn *db = arg;
  pthread_mutex_lock(&db->expiry_mu);
  while (!db->stopping) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + db->opt.expire_tick_ms * 1000000ull;
    ts.tv_sec += (time_t)(ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    pthread_cond_timedwait(&db->expiry_cv, &db->expiry_mu, &ts);
    if (db->stopping) break;
    pthread_mutex_unlock(&db->expiry_mu);
    expire_tick(db);
    pthread_mutex_lock(&db->expiry_mu);
  }
  pthread_mutex_unlock(&db->expiry_mu);
  return NULL;
}

static int expiry_start(cairn *db) {
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&db->expiry_cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&db->expiry_mu, NULL);
  if (db->opt.flags & CAIRN_OPEN_NO_EXPIRY) return 0;
  int rc = pthread_create(&db->expiry_thread, NULL, expiry_main, db);
  if (rc) return -rc;
  db->expiry_running = 1;
  return 0;
}

static void expiry_stop(cairn *db) {
  pthread_mutex_lock(&db->expiry_mu);
  db->stopping = 1;
  pthread_cond_broadcast(&db->expiry_cv);
  pthread_mutex_unlock(&db->expiry_mu);
  if (db->expiry_running) pthread_join(db->expiry_thread, NULL);
  db->expiry_running = 0;
  pthread_cond_destroy(&db->expiry_cv);
  pthread_mutex_destroy(&db->expiry_mu);
}

/* ------------------------------------------------------------------------
 * Open and close
 * --------------------------------------------------------------------- */

static void db_free(cairn *db) {
  for (unsigned i = 0; i < db->ns_count; i++) {
    table_free(db->ns[i]->t);
    free(db->ns[i]);
  }
  if (db->lock_fd >= 0) close(db->lock_fd);
  pthread_mutex_destroy(&db->ns_mu);
  free(db->dir);
  free(db);
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
  int rc = wal_open(&cfg, 0, replay_apply, &rp, &db->wal);
  if (rc) return rc;
  struct wal_stats ws;
  wal_stats(db->wal, &ws);
  log_info(&db->log, "opened %s: %" PRIu64 " records replayed in %.1f ms, "
           "next LSN %" PRIu64 ", epoch %" PRIu64, db->dir,
           ws.recovered_records, (double)(mono_ns() - t0) / 1e6,
           ws.last_lsn + 1, db->epoch);
  return 0;
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
  pthread_mutex_init(&db->ns_mu, NULL);
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) rc = -errno;
  if (rc == 0) rc = dir_lock(db);
  if (rc == 0) rc = meta_load(db);
  if (rc == 0) rc = db_open_log(db);
  if (rc == 0 && (rc = expiry_start(db)) != 0) wal_close(db->wal);
  if (rc) {
    db_free(db);
    return rc;
  }
  *out = db;
  return 0;
}

CAIRN_EXPORT void cairn_close(cairn *db) {
  if (!db) return;
  expiry_stop(db);
  wal_close(db->wal);
  db_free(db);
}
