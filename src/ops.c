/*
 * ops.c - reads and writes: the data calls of the public API.
 *
 * A write, in order:
 *   1. reserve room in the log buffer (may wait for a flush; no lock held),
 *   2. take the shard's write lock and find the key's current state, in
 *      memory or, for a key that memory does not hold, in the store
 *      (db_lookup), and check the write's condition against it,
 *   3. change the table and append the record: the LSN is the new version,
 *      and LSN order matches the order of the shard lock, so the log and
 *      the table agree on the order of writes to one key,
 *   4. release the lock, then wait for the log (or return, if async).
 * A read takes the shard's read lock, copies the value and never waits on
 * the log.  Readers may therefore see a write before it is durable; the
 * writer is not told it succeeded until it is.
 *
 * A deletion of a key the store may hold leaves a tombstone in memory
 * (ENTRY_F_TOMB) until a checkpoint has carried it into the store, so that
 * a read never finds the older value there.
 */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cobj.h"
#include "coll.h"
#include "db.h"
#include "limits.h"
#include "record.h"
#include "store.h"
#include "table.h"
#include "util.h"
#include "wal.h"

#define MEM_VERSION_BIT (1ull << 63)
#define LOOKUP_TRIES_MAX 1000u /* loads raced by evictions before giving up */

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

/* The database whose write group (cairn_group_begin) this thread is in. */
static __thread cairn *tl_group;

CAIRN_EXPORT int cairn_group_begin(cairn *db) {
  if (!db || tl_group) return CAIRN_EINVAL;
  tl_group = db;
  wal_hold(db->wal);
  return 0;
}

CAIRN_EXPORT int cairn_group_end(cairn *db) {
  if (!db || tl_group != db) return CAIRN_EINVAL;
  tl_group = NULL;
  wal_release_hold(db->wal);
  return 0;
}

/* Step 1 of a write: room in the log for `bytes`, unless not logged.
 * While the store is full, only writes that do not grow the data (deletes)
 * go on, so that an operator can make room.  Inside a write group a write
 * must not wait for the log, which cannot flush until the group ends. */
static int write_begin(cairn *db, cairn_durability mode, size_t bytes,
                       int grows, const cairn_write *w) {
  if (tl_group == db && !w->done && mode != CAIRN_DURABILITY_MEMORY)
    return CAIRN_EINVAL;
  int rc = writable(db);
  if (rc == 0 && grows && __atomic_load_n(&db->store_full, __ATOMIC_RELAXED))
    rc = CAIRN_EFULL;
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

/* Steps 3 and 4 of a write that leaves entry e at its key (e NULL: out of
 * memory): put e in the table, append r under the shard lock the caller
 * holds (released here), and wait as w asks.  On failure nothing is
 * changed or logged and the reservation of `bytes` is given back.  A
 * success counts in counter (CNT_N: none). */
static int write_entry(cairn *db, struct ns *s, uint64_t hash, struct entry *e,
                       cairn_durability mode, const struct rec *r,
                       size_t bytes, const cairn_write *w, unsigned counter) {
  unsigned shard = table_shard(hash);
  int rc = e ? table_put(s->t, hash, e) : CAIRN_ENOMEM;
  if (rc) {
    entry_free(e);
    table_unlock(s->t, shard);
    write_abort(db, mode, bytes);
    return rc;
  }
  uint64_t lsn = write_commit(db, mode, r, w);
  entry_set_version(e, lsn);
  table_unlock(s->t, shard);
  db_mem_grew(db);
  if (counter != CNT_N) db_count(db, counter, 1);
  return write_finish(db, mode, lsn, w);
}

/* ------------------------------------------------------------------------
 * Finding a key's state: memory first, then the store
 * --------------------------------------------------------------------- */

int db_entry_live(const struct entry *e, int64_t now) {
  if (!e || (entry_flags(e) & ENTRY_F_TOMB)) return 0;
  int64_t d = entry_deadline(e);
  return d == 0 || d > now;
}

struct load_arg {
  const void *key;
  size_t klen;
  uint64_t hash;
  struct entry *e;
};

/* Build the entry straight from the stored value, borrowed from the map. */
static int load_entry(void *arg, const struct store_val *v) {
  struct load_arg *a = arg;
  a->e = entry_new(a->key, a->klen, v->data, v->len, a->hash, v->version,
                   v->expire_at_ms, v->max_idle_ms, v->last_access_ms,
                   ENTRY_F_TYPE(v->type <= REC_T_MAX ? v->type : 0));
  return a->e ? 0 : CAIRN_ENOMEM;
}

/* Read key from the store as a clean entry (*out NULL if absent). */
static int db_load(cairn *db, struct ns *s, uint64_t hash, const void *key,
                   size_t klen, struct entry **out) {
  struct load_arg a = {key, klen, hash, NULL};
  int rc = store_read(db->store, s->name, s->len, table_shard(hash),
                      (uint32_t)(hash >> 32), key, klen, load_entry, &a, NULL);
  db_count(db, CNT_STORE_READS, 1);
  *out = a.e;
  return rc == CAIRN_ENOTFOUND ? 0 : rc;
}

/* Put a loaded entry (or nothing, if NULL) in memory, if nothing was
 * evicted from the shard since `seq` was read: then memory still lacks
 * every newer state of the key, and the store's is current.  Returns the
 * entry now in memory for the key (NULL: absent), or sets *retry.
 * Write lock held. */
static struct entry *db_adopt(struct ns *s, uint64_t hash, const void *key,
                              size_t klen, struct entry *loaded, uint32_t seq,
                              int *retry) {
  unsigned shard = table_shard(hash);
  struct entry *e = table_find(s->t, hash, key, klen);
  *retry = 0;
  if (e) { /* someone loaded or wrote it meanwhile */
    entry_free(loaded);
    return e;
  }
  if (__atomic_load_n(&s->evict_seq[shard], __ATOMIC_ACQUIRE) != seq) {
    entry_free(loaded);
    *retry = 1;
    return NULL;
  }
  if (loaded && table_put(s->t, hash, loaded) != 0) {
    entry_free(loaded); /* out of memory: serve it without caching */
    return NULL;
  }
  return loaded;
}

/* Put `loaded`, key's state just read from the store (NULL: absent), in
 * memory, if nothing was evicted from its shard since the eviction count
 * was seq (read under the shard's lock, with key missing from memory).
 * Else *retry is set and no lock is held; otherwise the write lock is
 * held.  No lock held on entry. */
static void db_settle(struct ns *s, uint64_t hash, const void *key,
                      size_t klen, struct entry *loaded, uint32_t seq,
                      int64_t now, struct entry **out, int *retry) {
  unsigned shard = table_shard(hash);
  table_wrlock(s->t, shard);
  struct entry *e = db_adopt(s, hash, key, klen, loaded, seq, retry);
  if (*retry) {
    table_unlock(s->t, shard);
    return;
  }
  *out = db_entry_live(e, now) ? e : NULL;
}

int db_lookup(cairn *db, struct ns *s, uint64_t hash, const void *key,
              size_t klen, int64_t now, struct entry **out) {
  unsigned shard = table_shard(hash);
  for (unsigned tries = 0; tries < LOOKUP_TRIES_MAX; tries++) {
    table_wrlock(s->t, shard);
    struct entry *e = table_find(s->t, hash, key, klen);
    if (e || !db_cold(db, s)) {
      *out = db_entry_live(e, now) ? e : NULL;
      return 0;
    }
    uint32_t seq = __atomic_load_n(&s->evict_seq[shard], __ATOMIC_ACQUIRE);
    table_unlock(s->t, shard);
    struct entry *loaded;
    int retry, rc = db_load(db, s, hash, key, klen, &loaded);
    if (rc) return rc;
    db_settle(s, hash, key, klen, loaded, seq, now, out, &retry);
    if (!retry) return 0;
  }
  log_error(&db->log, "a key of namespace %s kept being evicted while it "
            "was loaded", s->name);
  return CAIRN_EIO;
}

/* Remove the entry at key, leaving a tombstone where the store may hold
 * the key.  tomb is a tombstone made beforehand with db_tomb_new (so that
 * this cannot fail after the deletion is logged), or NULL where none is
 * needed.  Write lock held. */
void db_bury(struct ns *s, uint64_t hash, const void *key,
                    size_t klen, struct entry *tomb, uint64_t lsn) {
  if (!tomb) {
    entry_free(table_remove(s->t, hash, key, klen));
    return;
  }
  tomb->ver_lo = (uint32_t)lsn;
  tomb->ver_hi = (uint32_t)(lsn >> 32);
  /* The key is in memory, so this replaces it in place: no growth. */
  int rc = table_put(s->t, hash, tomb);
  cairn_assert(rc == 0);
}

/* A tombstone for key, or NULL where the store is not used.  A MEMORY
 * deletion's tombstone gets a MEMORY version, so it is never taken for
 * checkpointed and stays until the restart that forgets the deletion. */
struct entry *db_tomb_new(cairn *db, struct ns *s, const void *key,
                          size_t klen, uint64_t hash) {
  if (!db_cold(db, s)) return NULL;
  return entry_new(key, klen, NULL, 0, hash, 0, 0, 0, 0, ENTRY_F_TOMB);
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
  r.type = (uint8_t)w->type;
  r.val = val;
  r.vlen = (uint32_t)vlen;
  size_t bytes = rec_size(&r);
  int rc = write_begin(db, mode, bytes, 1, w);
  if (rc) return rc;

  /* A put that depends on nothing before it need not read the store. */
  struct entry *old = NULL;
  if (!w->cond && !keep_ttl) {
    table_wrlock(s->t, shard);
  } else if ((rc = db_lookup(db, s, hash, key, klen, now, &old)) != 0) {
    write_abort(db, mode, bytes);
    return rc;
  }
  if ((rc = cond_check(w, old)) != 0) goto fail;
  if (keep_ttl && old) {
    expire_at = entry_expire_at(old);
    max_idle = entry_max_idle(old);
  }
  r.expire_at_ms = expire_at;
  r.max_idle_ms = max_idle;
  unsigned flags = (mode == CAIRN_DURABILITY_MEMORY ? ENTRY_F_MEMORY : 0) |
                   ENTRY_F_TYPE(w->type);
  struct entry *e = entry_new(key, klen, val, vlen, hash, 0, expire_at,
                              max_idle, now, flags);
  return write_entry(db, s, hash, e, mode, &r, bytes, w, CNT_PUTS);

fail:
  table_unlock(s->t, shard);
  write_abort(db, mode, bytes);
  return rc;
}

/* A collection must arrive whole and well formed, as cairn_get gave it. */
static int type_ok(int type, const void *val, size_t vlen) {
  if (type < CAIRN_TYPE_STRING || type > CAIRN_TYPE_LIST) return 0;
  struct coll_iter it;
  return type == CAIRN_TYPE_STRING || coll_iter_init(&it, type, val, vlen) > 0;
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
  if (!type_ok(w->type, val, vlen)) return CAIRN_EINVAL;
  struct ns *s;
  if ((rc = db_ns_arg(db, ns, &s)) != 0) return rc;
  if (!w->done) db_stall_wait(db);
  return do_put(db, s, key, klen, val, vlen, w,
                (w->flags & CAIRN_W_KEEP_TTL) != 0);
}

/* Copy e's value into a malloc'd buffer, NUL-terminated; an object is
 * encoded straight into it.  NULL when out of memory. */
static char *value_dup(const struct entry *e, size_t *len) {
  struct cobj *o = entry_obj(e);
  size_t n = entry_vlen(e);
  char *p = malloc(n + 1);
  if (!p) return NULL;
  if (o) cobj_encode(o, p);
  else memcpy(p, entry_val(e), n);
  p[n] = '\0';
  *len = n;
  return p;
}

/* Copy e into *out (data malloc'd, NUL-terminated). */
static int value_copy(const struct entry *e, cairn_value *out) {
  size_t n;
  char *p = value_dup(e, &n);
  if (!p) return CAIRN_ENOMEM;
  out->data = p;
  out->len = n;
  out->type = (int)entry_type(e);
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
  int rc = write_begin(db,
                       mode == CAIRN_DURABILITY_MEMORY ? CAIRN_DURABILITY_INTERVAL
                                                       : mode,
                       bytes, 0, w);
  if (rc) return rc;
  struct entry *e, *tomb = db_tomb_new(db, s, key, klen, hash);
  if (db_cold(db, s) && !tomb) rc = CAIRN_ENOMEM;
  if (rc || (rc = db_lookup(db, s, hash, key, klen, now, &e)) != 0) {
    entry_free(tomb);
    write_abort(db, CAIRN_DURABILITY_INTERVAL, bytes);
    return rc;
  }
  if (!e) {
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
  db_bury(s, hash, key, klen, tomb, lsn);
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
  entry_free(tomb);
  write_abort(db, CAIRN_DURABILITY_INTERVAL, bytes);
  return rc;
}

CAIRN_EXPORT int cairn_del(cairn *db, const char *ns, const void *key,
                           size_t klen, const cairn_write *w) {
  if (!db || !key_ok(key, klen)) return CAIRN_EINVAL;
  struct ns *s;
  int rc = db_ns_arg(db, ns, &s);
  if (rc) return rc;
  return do_del(db, s, key, klen, NULL, w ? w : &no_write_opts);
}

CAIRN_EXPORT int cairn_take(cairn *db, const char *ns, const void *key,
                            size_t klen, cairn_value *out,
                            const cairn_write *w) {
  if (!db || !key_ok(key, klen)) return CAIRN_EINVAL;
  struct ns *s;
  int rc = db_ns_arg(db, ns, &s);
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
  int rc = db_ns_arg(db, ns, &s);
  if (rc) return rc;
  if (!w->done) db_stall_wait(db);

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
  if ((rc = write_begin(db, mode, bytes, 1, w)) != 0) return rc;
  struct entry *old;
  if ((rc = db_lookup(db, s, hash, key, klen, now, &old)) != 0) {
    write_abort(db, mode, bytes);
    return rc;
  }
  if (old && entry_type(old) != REC_T_STRING) rc = CAIRN_ETYPE;
  if (rc || (rc = cond_check(w, old)) != 0 ||
      (rc = incr_value(old, delta, &sum)))
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
  /* The reservation was for the longest number; give back the rest. */
  if (mode != CAIRN_DURABILITY_MEMORY) {
    wal_reserve_shrink(db->wal, bytes - rec_size(&r));
    bytes = rec_size(&r);
  }
  rc = write_entry(db, s, hash, e, mode, &r, bytes, w, CNT_PUTS);
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
  int rc = db_ns_arg(db, ns, &s);
  if (rc) return rc;
  int64_t now = now_ms();
  uint64_t hash = table_hash(key, klen);
  unsigned shard = table_shard(hash);
  cairn_durability mode = write_mode(db, s, w);
  struct rec r;
  rec_init(&r, REC_EXPIRE, s, key, klen, now);
  size_t bytes = rec_size(&r);
  if ((rc = write_begin(db, mode, bytes, 1, w)) != 0) return rc;
  struct entry *old;
  if ((rc = db_lookup(db, s, hash, key, klen, now, &old)) != 0) {
    write_abort(db, mode, bytes);
    return rc;
  }
  if (!old) {
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
  unsigned flags = entry_flags(old) & (ENTRY_F_MEMORY | ENTRY_TYPE_MASK);
  /* A collection object goes back to its blob; its next change makes it
   * an object again. */
  size_t vlen;
  char *val = value_dup(old, &vlen);
  struct entry *e = val ? entry_new(key, klen, val, vlen, hash, 0, expire_at,
                                    max_idle, now, flags)
                        : NULL;
  free(val);
  return write_entry(db, s, hash, e, mode, &r, bytes, w, CNT_N);

fail:
  table_unlock(s->t, shard);
  write_abort(db, mode, bytes);
  return rc;
}

/* ------------------------------------------------------------------------
 * Collections: element-level changes
 * --------------------------------------------------------------------- */

/* The new state of a collection: old's blob (or none, if old is NULL)
 * with delta applied, as an entry, or NULL in *e when left empty. */
static int coll_entry(const struct entry *old, const struct rec *r,
                      uint64_t hash, int64_t now, unsigned flags,
                      struct entry **e) {
  void *blob;
  size_t blen;
  int rc = coll_apply(r->type, old ? entry_val(old) : NULL,
                      old ? entry_vlen(old) : 0, r->val, r->vlen, &blob,
                      &blen);
  if (rc) return rc == CAIRN_ECORRUPT ? CAIRN_EINVAL : rc;
  *e = NULL;
  if (blen > VALUE_MAX) rc = CAIRN_ETOOBIG;
  else if (blob && !(*e = entry_new(r->key, r->klen, blob, blen, hash, 0,
                                    r->expire_at_ms, r->max_idle_ms, now,
                                    flags | ENTRY_F_TYPE(r->type))))
    rc = CAIRN_ENOMEM;
  free(blob);
  return rc;
}

/* Should the blob entry e be held as an object? */
static int coll_large(const struct entry *e) {
  if (entry_obj(e) || entry_type(e) < REC_T_HASH ||
      entry_type(e) > REC_T_LIST || (entry_flags(e) & ENTRY_F_TOMB))
    return 0;
  if (entry_vlen(e) >= COBJ_MIN_BYTES) return 1;
  return entry_vlen(e) >= 4 && get_u32(entry_val(e)) >= COBJ_MIN_ELEMS;
}

/* Replace the large blob entry *e (in the table at hash) by an entry
 * holding it as an object, and point *e at that.  A blob that cannot be
 * an object (one holding a field twice) stays as it is.  Write lock held.
 * Errors: CAIRN_ENOMEM (*e untouched). */
static int coll_objectify(struct table *t, uint64_t hash, struct entry **e) {
  struct entry *old = *e;
  if (!coll_large(old)) return 0;
  struct cobj *o;
  int rc = cobj_from_blob((int)entry_type(old), entry_val(old),
                          entry_vlen(old), &o);
  if (rc) return rc == CAIRN_ENOMEM ? rc : 0;
  struct entry *n = entry_new_obj(entry_key(old), entry_klen(old), o, hash,
                                  entry_version(old), entry_expire_at(old),
                                  entry_max_idle(old), entry_last_access(old),
                                  entry_flags(old) & ENTRY_F_MEMORY);
  if (!n) {
    cobj_free(o);
    return CAIRN_ENOMEM;
  }
  rc = table_put(t, hash, n); /* replaces old in place: cannot fail */
  cairn_assert(rc == 0);
  *e = n;
  return 0;
}

/* Apply r's delta to the object entry e in place, and log it: the rest of
 * cairn_coll_apply for a collection held as an object.  The write lock is
 * held and released here.  A delta that empties the collection deletes
 * the key, as on the blob path. */
static int coll_inplace(cairn *db, struct ns *s, uint64_t hash,
                        struct entry *e, const struct rec *r,
                        cairn_durability mode, size_t bytes,
                        const cairn_write *w, int64_t now) {
  struct cobj *o = entry_obj(e);
  struct entry *tomb = NULL;
  /* Only a delta of as many operations as elements can empty it, and a
   * tombstone must be at hand then: after the change, failing is late. */
  if (db_cold(db, s) && cobj_count(o) <= r->vlen / 5 &&
      !(tomb = db_tomb_new(db, s, r->key, r->klen, hash))) {
    table_unlock(s->t, table_shard(hash));
    write_abort(db, mode, bytes);
    return CAIRN_ENOMEM;
  }
  size_t before = entry_bytes(e);
  int rc = cobj_apply(o, r->val, r->vlen);
  if (rc) {
    table_unlock(s->t, table_shard(hash));
    entry_free(tomb);
    write_abort(db, mode, bytes);
    return rc == CAIRN_ECORRUPT ? CAIRN_EINVAL : rc;
  }
  table_resized(s->t, hash, e, before);
  uint64_t lsn = write_commit(db, mode, r, w);
  if (cobj_count(o)) {
    entry_set_version(e, lsn);
    entry_set_memory(e, mode == CAIRN_DURABILITY_MEMORY);
    entry_touch(e, now);
    entry_free(tomb);
  } else {
    db_bury(s, hash, r->key, r->klen, tomb, lsn);
  }
  table_unlock(s->t, table_shard(hash));
  db_mem_grew(db);
  db_count(db, CNT_PUTS, 1);
  return write_finish(db, mode, lsn, w);
}

CAIRN_EXPORT int cairn_coll_apply(cairn *db, const char *ns, const void *key,
                                  size_t klen, int type, const void *delta,
                                  size_t dlen, const cairn_write *w) {
  if (!db || !key_ok(key, klen) || type < CAIRN_TYPE_HASH ||
      type > CAIRN_TYPE_LIST || !delta || dlen == 0 || dlen > VALUE_MAX ||
      coll_delta_check(type, delta, dlen) != 0)
    return CAIRN_EINVAL;
  if (!w) w = &no_write_opts;
  struct ns *s;
  int rc = db_ns_arg(db, ns, &s);
  if (rc) return rc;
  if (!w->done) db_stall_wait(db);
  int64_t now = now_ms();
  uint64_t hash = table_hash(key, klen);
  unsigned shard = table_shard(hash);
  cairn_durability mode = write_mode(db, s, w);
  struct rec r;
  rec_init(&r, REC_COLL, s, key, klen, now);
  r.type = (uint8_t)type;
  r.val = delta;
  r.vlen = (uint32_t)dlen;
  size_t bytes = rec_size(&r);
  if ((rc = write_begin(db, mode, bytes, 1, w)) != 0) return rc;
  struct entry *old, *e = NULL, *tomb = NULL;
  if ((rc = db_lookup(db, s, hash, key, klen, now, &old)) != 0) {
    write_abort(db, mode, bytes);
    return rc;
  }
  if (old && entry_type(old) != (unsigned)type) rc = CAIRN_ETYPE;
  if (rc || (rc = cond_check(w, old)) != 0) goto fail;
  if (old) { /* the collection keeps its expiry */
    r.expire_at_ms = entry_expire_at(old);
    r.max_idle_ms = entry_max_idle(old);
  } else {
    cairn_write none = {0};
    write_expiry(s, &none, now, &r.expire_at_ms, &r.max_idle_ms);
    r.flags = REC_F_FRESH;
  }
  if (old && (rc = coll_objectify(s->t, hash, &old)) != 0) goto fail;
  if (old && entry_obj(old))
    return coll_inplace(db, s, hash, old, &r, mode, bytes, w, now);
  unsigned flags = mode == CAIRN_DURABILITY_MEMORY ? ENTRY_F_MEMORY : 0;
  if ((rc = coll_entry(old, &r, hash, now, flags, &e)) != 0) goto fail;
  if (!e && !old) goto fail; /* nothing there, nothing added: no write */
  if (!e && !(tomb = db_tomb_new(db, s, key, klen, hash)) && db_cold(db, s)) {
    rc = CAIRN_ENOMEM;
    goto fail;
  }
  if (e && (rc = table_put(s->t, hash, e)) != 0) goto fail;
  uint64_t lsn = write_commit(db, mode, &r, w);
  if (e) entry_set_version(e, lsn);
  else db_bury(s, hash, key, klen, tomb, lsn);
  table_unlock(s->t, shard);
  db_mem_grew(db);
  db_count(db, CNT_PUTS, 1);
  return write_finish(db, mode, lsn, w);

fail:
  table_unlock(s->t, shard);
  entry_free(e);
  entry_free(tomb);
  write_abort(db, mode, bytes);
  return rc;
}

/* Look p up in the blob entry e (small: a scan per probe), or in its
 * object.  Errors: CAIRN_ECORRUPT, CAIRN_ENOMEM. */
static int probe_one(const struct entry *e, int type, struct coll_probe *p,
                     int want_val) {
  struct coll_elem el;
  struct cobj *o = entry_obj(e);
  int rc = o ? cobj_find(o, p->x, p->xlen, &el)
             : coll_find(type, entry_val(e), entry_vlen(e), p->x, p->xlen,
                         &el);
  if (rc <= 0) return rc;
  p->found = 1;
  p->score = el.score;
  if (!want_val || type != COLL_HASH) return 0;
  if (!(p->val = malloc(el.blen + 1))) return CAIRN_ENOMEM;
  if (el.blen) memcpy(p->val, el.b, el.blen);
  p->val[el.blen] = '\0';
  p->vlen = el.blen;
  return 0;
}

static void probes_reset(struct coll_probe *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(p[i].val);
    p[i].val = NULL;
    p[i].vlen = 0;
    p[i].found = 0;
    p[i].score = 0;
  }
}

/* The probes against the live collection e (write lock held). */
static int probe_all(struct table *t, uint64_t hash, struct entry *e,
                     int type, struct coll_probe *p, size_t n, int want_vals,
                     int64_t now, struct coll_info *info) {
  if (entry_type(e) != (unsigned)type) return CAIRN_ETYPE;
  int rc = coll_objectify(t, hash, &e);
  if (rc) return rc;
  if (entry_max_idle(e)) entry_touch_read(e, now);
  entry_ref(e);
  struct cobj *o = entry_obj(e);
  struct coll_iter it;
  long count = o ? (long)cobj_count(o)
                 : coll_iter_init(&it, type, entry_val(e), entry_vlen(e));
  if (count < 0) return (int)count;
  for (size_t i = 0; i < n && rc == 0; i++)
    rc = probe_one(e, type, &p[i], want_vals);
  info->version = entry_version(e);
  info->count = (uint64_t)count;
  return rc;
}

int db_coll_probe(cairn *db, const char *ns, const void *key, size_t klen,
                  int type, struct coll_probe *p, size_t n, int want_vals,
                  struct coll_info *info) {
  if (!db || !key_ok(key, klen) || type < CAIRN_TYPE_HASH ||
      type > CAIRN_TYPE_LIST || (n && !p) || !info)
    return CAIRN_EINVAL;
  for (size_t i = 0; i < n; i++) p[i].val = NULL;
  probes_reset(p, n);
  memset(info, 0, sizeof *info);
  struct ns *s;
  int rc = db_ns_arg(db, ns, &s);
  if (rc) return rc;
  int64_t now = now_ms();
  uint64_t hash = table_hash(key, klen);
  struct entry *e;
  if ((rc = db_lookup(db, s, hash, key, klen, now, &e)) != 0) return rc;
  rc = e ? probe_all(s->t, hash, e, type, p, n, want_vals, now, info)
         : CAIRN_ENOTFOUND;
  table_unlock(s->t, table_shard(hash));
  if (rc == CAIRN_ECORRUPT) rc = CAIRN_EIO;
  if (rc) {
    probes_reset(p, n);
    memset(info, 0, sizeof *info);
  }
  return rc;
}

int db_coll_replay(struct table *t, uint64_t hash, struct entry *old,
                   const struct rec *r, uint64_t lsn) {
  if (!old || (entry_flags(old) & ENTRY_F_TOMB) || (r->flags & REC_F_FRESH) ||
      entry_type(old) != r->type || entry_expire_at(old) != r->expire_at_ms ||
      entry_max_idle(old) != r->max_idle_ms)
    return 0;
  int rc = coll_objectify(t, hash, &old);
  if (rc) return rc;
  struct cobj *o = entry_obj(old);
  if (!o) return 0;
  size_t before = entry_bytes(old);
  if ((rc = cobj_apply(o, r->val, r->vlen)) != 0)
    return rc == CAIRN_ENOMEM ? rc : CAIRN_ECORRUPT;
  table_resized(t, hash, old, before);
  entry_set_version(old, lsn);
  entry_set_memory(old, 0);
  return cobj_count(o) ? 1 : 2;
}

/* Reads of an entry with a max-idle move its deadline in memory only
 * (entry_touch_read).  Before such an entry leaves memory (eviction) or
 * the process (close), and while it stays, once its last logged state is
 * half its max-idle old (the expiry sweep, against a crash), its last
 * access is logged here, or the older one would have it die early: a
 * session used all day would end max-idle after its last write. */
int db_touch_log(cairn *db, struct ns *s, const void *key, size_t klen) {
  uint64_t hash = table_hash(key, klen);
  unsigned shard = table_shard(hash);
  struct rec r;
  rec_init(&r, REC_EXPIRE, s, key, klen, now_ms());
  size_t bytes = rec_size(&r);
  /* A follower's log is its leader's: its reads are not logged. */
  if (__atomic_load_n(&db->fatal, __ATOMIC_RELAXED) ||
      __atomic_load_n(&db->follower, __ATOMIC_ACQUIRE) ||
      wal_reserve(db->wal, bytes) != 0)
    return 0;
  table_wrlock(s->t, shard);
  struct entry *e = table_find(s->t, hash, key, klen);
  int logged = 0;
  if (e && (entry_flags(e) & ENTRY_F_TOUCHED) &&
      !(entry_flags(e) & (ENTRY_F_MEMORY | ENTRY_F_TOMB))) {
    r.expire_at_ms = entry_expire_at(e);
    r.max_idle_ms = entry_max_idle(e);
    r.ts_ms = (uint64_t)entry_last_access(e);
    entry_set_version(e, wal_append(db->wal, &r, CAIRN_DURABILITY_INTERVAL,
                                    NULL, NULL));
    entry_untouch(e);
    logged = 1;
    db_count(db, CNT_TOUCHES, 1);
  } else {
    wal_unreserve(db->wal, bytes);
  }
  table_unlock(s->t, shard);
  return logged;
}

/* ------------------------------------------------------------------------
 * Reads
 * --------------------------------------------------------------------- */

CAIRN_EXPORT void cairn_value_free(cairn_value *v) {
  if (!v) return;
  free(v->data);
  memset(v, 0, sizeof *v);
}

/* Should a read that missed memory cache what it finds?  Always without a
 * memory budget, and while memory is under ADMIT_ROOM_PCT of it: caching
 * then evicts nothing (after a restart, every read fills memory).  Past
 * that, each entry cached costs an eviction and pays only if the key is
 * read again before the CLOCK hand comes round, so a key is cached on
 * its second miss within a window (see cairn.admit): a key read once (a
 * scan, an old id looked up) only sets its bit.  Past ADMIT_STOP_PCT the
 * eviction has fallen behind (its thread descheduled, say), and reads
 * cache nothing until it catches up: memory is bounded by writes alone.
 * The bitmap uses hash bits that pick neither the shard nor the h32
 * order. */
static int db_admit(cairn *db, uint64_t hash) {
  int mode = __atomic_load_n(&db->admit_mode, __ATOMIC_RELAXED);
  if (mode != ADMIT_SECOND) return mode == ADMIT_ALL;
  size_t bit = (size_t)(hash >> 8) & (ADMIT_BITS - 1);
  uint64_t *word = &db->admit[bit / 64], mask = 1ull << (bit % 64);
  if (__atomic_load_n(word, __ATOMIC_RELAXED) & mask) return 1;
  __atomic_fetch_or(word, mask, __ATOMIC_RELAXED);
  if (__atomic_add_fetch(&db->admit_set, 1, __ATOMIC_RELAXED) >= ADMIT_BITS / 2) {
    __atomic_store_n(&db->admit_set, 0, __ATOMIC_RELAXED);
    for (size_t i = 0; i < ADMIT_BITS / 64; i++)
      __atomic_store_n(&db->admit[i], 0, __ATOMIC_RELAXED);
  }
  return 0;
}

/* Copy the entry e (under its shard's lock) out, if live, and note that
 * it was used: for max-idle, and for the eviction's CLOCK. */
static int get_copy(struct entry *e, int64_t now, cairn_value *out) {
  if (!db_entry_live(e, now)) return CAIRN_ENOTFOUND;
  if (entry_max_idle(e)) entry_touch_read(e, now);
  entry_ref(e);
  return value_copy(e, out);
}

#define COLD_CACHE 1 /* get_cold: an entry was made, to be cached */

struct cold_get {
  int64_t now;
  int cache;
  cairn_value *out;
  struct load_arg load;
};

static int cold_copy(void *arg, const struct store_val *v) {
  struct cold_get *g = arg;
  /* Reading an entry with a max-idle moves its deadline: memory must
   * hold the entry for the access to count. */
  if (g->cache || v->max_idle_ms) {
    int rc = load_entry(&g->load, v);
    return rc ? rc : COLD_CACHE;
  }
  if (v->expire_at_ms && v->expire_at_ms <= g->now) return CAIRN_ENOTFOUND;
  char *p = malloc(v->len + 1);
  if (!p) return CAIRN_ENOMEM;
  memcpy(p, v->data, v->len);
  p[v->len] = '\0';
  *g->out = (cairn_value){.data = p,
                          .len = v->len,
                          .type = v->type <= REC_T_MAX ? v->type : 0,
                          .version = v->version,
                          .expire_at_ms = v->expire_at_ms};
  return 0;
}

/* A get that missed memory: one store lookup.  Unless the key is to be
 * cached (cache, or a max-idle), the value is copied out of the store's
 * map into *out with no entry made: memory held no newer state of the
 * key when it missed, and anything evicted since is in the store, so the
 * store's copy is current.  Else the entry is made (*loaded) and
 * COLD_CACHE returned. */
static int get_cold(cairn *db, struct ns *s, uint64_t hash, const void *key,
                    size_t klen, int64_t now, int cache, cairn_value *out,
                    struct entry **loaded) {
  struct cold_get g = {now, cache, out, {key, klen, hash, NULL}};
  int rc = store_read(db->store, s->name, s->len, table_shard(hash),
                      (uint32_t)(hash >> 32), key, klen, cold_copy, &g, NULL);
  db_count(db, CNT_STORE_READS, 1);
  *loaded = g.load.e;
  return rc;
}

CAIRN_EXPORT int cairn_get(cairn *db, const char *ns, const void *key,
                           size_t klen, cairn_value *out) {
  if (!db || !key_ok(key, klen) || !out) return CAIRN_EINVAL;
  struct ns *s;
  int rc = db_ns_arg(db, ns, &s);
  db_count(db, CNT_GETS, 1);
  if (rc) return rc;
  uint64_t hash = table_hash(key, klen);
  unsigned shard = table_shard(hash);
  int64_t now = now_ms();
  table_rdlock(s->t, shard);
  struct entry *e = table_find(s->t, hash, key, klen);
  if (e || !db_cold(db, s)) {
    rc = get_copy(e, now, out);
    table_unlock(s->t, shard);
    db_count(db, CNT_MEM_HITS, e != NULL);
  } else {
    uint32_t seq = __atomic_load_n(&s->evict_seq[shard], __ATOMIC_ACQUIRE);
    table_unlock(s->t, shard);
    /* Not in memory: one store lookup, the entry cached only if the key
     * was read lately (see db_admit). */
    struct entry *loaded;
    rc = get_cold(db, s, hash, key, klen, now, db_admit(db, hash), out,
                  &loaded);
    if (rc == COLD_CACHE) {
      /* Memory lacked it at seq: unless an eviction came since, this
       * lookup caches it. */
      int retry;
      db_settle(s, hash, key, klen, loaded, seq, now, &e, &retry);
      if (retry && (rc = db_lookup(db, s, hash, key, klen, now, &e)) != 0)
        return rc;
      rc = get_copy(e, now, out);
      table_unlock(s->t, shard);
      db_mem_grew(db);
    } else if (rc && rc != CAIRN_ENOTFOUND) {
      return rc;
    }
  }
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
  struct entry *e;   /* at commit: the new entry (puts) or tombstone */
  uint32_t seq;      /* the shard's eviction count when it was looked up */
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
  if (op == REC_PUT && w && !type_ok(w->type, val, vlen)) return CAIRN_EINVAL;
  struct ns *s;
  int rc = db_ns_arg(b->db, ns, &s);
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

/* A put that depends on nothing before it. */
static int batch_blind(const struct batch_op *o) {
  return o->op == REC_PUT && !o->w.cond && !(o->w.flags & CAIRN_W_KEEP_TTL);
}

/* Bring every key the store may hold into memory, and note each shard's
 * eviction count, so that batch_prepare can tell an absent key from one
 * evicted meanwhile.  No lock held. */
static int batch_preload(cairn_batch *b, int64_t now) {
  for (size_t i = 0; i < b->n; i++) {
    struct batch_op *o = &b->ops[i];
    if (!db_cold(b->db, o->s) || batch_blind(o)) continue;
    struct entry *e;
    int rc = db_lookup(b->db, o->s, o->hash, o->key, o->klen, now, &e);
    if (rc) return rc;
    unsigned shard = table_shard(o->hash);
    o->seq = __atomic_load_n(&o->s->evict_seq[shard], __ATOMIC_ACQUIRE);
    table_unlock(o->s->t, shard);
  }
  return 0;
}

#define BATCH_RETRY 1 /* a key was evicted after batch_preload: again */

/* Check every condition against the state before the batch, and build the
 * entries of the puts and the tombstones of the deletes.  Called with
 * every lock held. */
static int batch_prepare(cairn_batch *b, int64_t now, unsigned eflags) {
  for (size_t i = 0; i < b->n; i++) {
    struct batch_op *o = &b->ops[i];
    struct entry *old = table_find(o->s->t, o->hash, o->key, o->klen);
    unsigned shard = table_shard(o->hash);
    if (!old && db_cold(b->db, o->s) && !batch_blind(o) &&
        __atomic_load_n(&o->s->evict_seq[shard], __ATOMIC_ACQUIRE) != o->seq)
      return BATCH_RETRY;
    int present = old != NULL;
    if (!db_entry_live(old, now)) old = NULL;
    int rc = cond_check(&o->w, old);
    if (rc) return rc;
    if (o->op != REC_PUT) {
      if (present && db_cold(b->db, o->s) &&
          !(o->e = db_tomb_new(b->db, o->s, o->key, o->klen, o->hash)))
        return CAIRN_ENOMEM;
      continue;
    }
    int64_t expire_at;
    uint64_t max_idle;
    write_expiry(o->s, &o->w, now, &expire_at, &max_idle);
    if ((o->w.flags & CAIRN_W_KEEP_TTL) && old) {
      expire_at = entry_expire_at(old);
      max_idle = entry_max_idle(old);
    }
    o->e = entry_new(o->key, o->klen, o->key + o->klen, o->vlen, o->hash, 0,
                     expire_at, max_idle, now, eflags | ENTRY_F_TYPE(o->w.type));
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
      r.type = (uint8_t)o->w.type;
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
      /* An earlier put of this batch may have made the key present. */
      struct entry *tomb = o->e;
      if (!tomb && table_find(o->s->t, o->hash, o->key, o->klen))
        tomb = db_tomb_new(db, o->s, o->key, o->klen, o->hash);
      o->e = NULL;
      db_bury(o->s, o->hash, o->key, o->klen, tomb, lsn);
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
  if (b->n == 0) { /* nothing to write, but a callback is still owed */
    if (w->done) w->done(w->done_arg, 0, wal_last_lsn(b->db->wal));
    return 0;
  }
  cairn *db = b->db;
  if (!w->done) db_stall_wait(db);
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
  int rc = write_begin(db, mode, bytes, 1, w);
  if (rc) goto out;

  size_t nlocks = batch_locks(b, refs);
  uint64_t lsn = 0;
  rc = BATCH_RETRY;
  for (unsigned tries = 0; rc == BATCH_RETRY && tries < LOOKUP_TRIES_MAX;
       tries++) {
    if ((rc = batch_preload(b, now)) != 0) break;
    for (size_t i = 0; i < nlocks; i++) table_wrlock(refs[i].t, refs[i].shard);
    rc = batch_prepare(b, now,
                       mode == CAIRN_DURABILITY_MEMORY ? ENTRY_F_MEMORY : 0);
    if (rc == 0) {
      batch_encode(b, now, sub);
      lsn = write_commit(db, mode, &r, w);
      batch_apply(b, lsn);
    } else {
      batch_unprepare(b);
    }
    for (size_t i = nlocks; i-- > 0;) table_unlock(refs[i].t, refs[i].shard);
  }
  if (rc == BATCH_RETRY) rc = CAIRN_EIO;
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
  int err;           /* out of memory copying an object */
};

/* table_walk finishes the group of entries sharing an h32 before it stops,
 * so a stop requested by fn takes effect at the end of that group, and the
 * cursor never lands inside it. */
static int scan_visit(void *arg, struct entry *e) {
  struct scan_ctx *c = arg;
  c->seen++;
  if (!db_entry_live(e, c->now)) return c->stop;
  if (c->plen && (entry_klen(e) < c->plen ||
                  memcmp(entry_key(e), c->prefix, c->plen) != 0))
    return c->stop;
  /* An object is encoded into a copy, not kept encoded in the entry. */
  size_t vlen = entry_vlen(e);
  char *copy = entry_obj(e) ? value_dup(e, &vlen) : NULL;
  if (entry_obj(e) && !copy) {
    c->err = CAIRN_ENOMEM;
    return c->stop = 1;
  }
  if (c->fn(c->arg, entry_key(e), entry_klen(e), copy ? copy : entry_val(e),
            vlen, entry_version(e), entry_deadline(e)))
    c->stop = 1;
  free(copy);
  return c->stop;
}

/* ------------------------------------------------------------------------
 * Scans over memory and the store, as one keyspace.
 *
 * Both hold a shard's keys in h32 order, and neither splits a group of
 * equal h32 across calls, so a range [from, end) can be read from each and
 * merged: a key in memory (even a tombstone) hides the store's copy.
 * --------------------------------------------------------------------- */

struct item {
  uint32_t h32;
  int tomb;
  uint64_t version;
  int64_t deadline;
  size_t klen, vlen;
  char *buf; /* key, then value */
};

struct items {
  struct item *v;
  size_t n, cap;
  int err;
};

static void items_add(struct items *l, uint32_t h32, int tomb, uint64_t ver,
                      int64_t deadline, const void *key, size_t klen,
                      const void *val, size_t vlen) {
  if (l->err) return;
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    struct item *v = realloc(l->v, cap * sizeof *v);
    if (!v) { l->err = CAIRN_ENOMEM; return; }
    l->v = v;
    l->cap = cap;
  }
  char *buf = malloc(klen + vlen + 1);
  if (!buf) { l->err = CAIRN_ENOMEM; return; }
  memcpy(buf, key, klen);
  if (vlen) memcpy(buf + klen, val, vlen);
  l->v[l->n++] = (struct item){h32, tomb, ver, deadline, klen, vlen, buf};
}

static void items_free(struct items *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i].buf);
  free(l->v);
}

static int mem_collect(void *arg, struct entry *e) {
  struct items *l = arg;
  size_t vlen = entry_vlen(e);
  char *copy = entry_obj(e) ? value_dup(e, &vlen) : NULL;
  if (entry_obj(e) && !copy) {
    l->err = CAIRN_ENOMEM;
    return 1;
  }
  items_add(l, e->h32, (entry_flags(e) & ENTRY_F_TOMB) != 0,
            entry_version(e), entry_deadline(e), entry_key(e), entry_klen(e),
            copy ? copy : entry_val(e), vlen);
  free(copy);
  return 0;
}

static int store_collect(void *arg, unsigned shard, uint32_t h32,
                         const void *key, size_t klen,
                         const struct store_val *v) {
  (void)shard;
  int64_t d = v->expire_at_ms, idle = 0;
  if (v->max_idle_ms) idle = v->last_access_ms + (int64_t)v->max_idle_ms;
  if (idle && (!d || idle < d)) d = idle;
  items_add(arg, h32, 0, v->version, d, key, klen, v->data, v->len);
  return 0;
}

static int item_in(const struct items *l, const struct item *it) {
  for (size_t i = 0; i < l->n; i++)
    if (l->v[i].h32 == it->h32 && l->v[i].klen == it->klen &&
        memcmp(l->v[i].buf, it->buf, it->klen) == 0)
      return 1;
  return 0;
}

/* Deliver it to the scan's callback if it is live and matches. */
static void scan_item(struct scan_ctx *c, const struct item *it) {
  c->seen++;
  if (it->tomb || (it->deadline && it->deadline <= c->now)) return;
  if (c->plen && (it->klen < c->plen || memcmp(it->buf, c->prefix, c->plen)))
    return;
  if (c->fn(c->arg, it->buf, it->klen, it->buf + it->klen, it->vlen,
            it->version, it->deadline))
    c->stop = 1;
}

static int item_cmp(const void *a, const void *b) {
  const struct item *x = a, *y = b;
  return x->h32 < y->h32 ? -1 : x->h32 > y->h32;
}

/* One step of a scan of a store-backed namespace over one shard, from
 * *from: like table_walk, returns 1 if the shard has more (then *from is
 * where to resume), 0 if it is done, or an error. */
static int scan_merged(cairn *db, struct ns *s, unsigned shard,
                       uint64_t *from, size_t max, struct scan_ctx *c) {
  struct items mem = {0}, disk = {0};
  uint64_t mem_next = *from, end;
  table_rdlock(s->t, shard);
  int more = table_walk(s->t, shard, &mem_next, max, mem_collect, &mem);
  table_unlock(s->t, shard);
  if (!more) mem_next = 1ull << 32;
  int rc = mem.err;
  if (rc == 0)
    rc = store_walk(db->store, s->name, s->len, shard, *from, mem_next, max,
                    store_collect, &disk, &end);
  if (rc == 0) rc = disk.err;
  if (rc == 0) {
    /* Keep the memory items below end, and the store's not in memory. */
    size_t n = 0;
    for (size_t i = 0; i < mem.n; i++)
      if (mem.v[i].h32 < end) mem.v[n++] = mem.v[i];
      else free(mem.v[i].buf);
    mem.n = n;
    for (size_t i = 0; i < disk.n; i++)
      if (!item_in(&mem, &disk.v[i])) {
        items_add(&mem, disk.v[i].h32, 0, disk.v[i].version,
                  disk.v[i].deadline, disk.v[i].buf, disk.v[i].klen,
                  disk.v[i].buf + disk.v[i].klen, disk.v[i].vlen);
      }
    rc = mem.err;
  }
  if (rc == 0) {
    if (mem.n) qsort(mem.v, mem.n, sizeof *mem.v, item_cmp);
    for (size_t i = 0; i < mem.n; i++) {
      /* A stop takes effect at the end of the current h32 group. */
      if (c->stop && mem.v[i].h32 != mem.v[i - 1].h32) {
        end = mem.v[i].h32;
        break;
      }
      scan_item(c, &mem.v[i]);
    }
    *from = end;
  }
  items_free(&mem);
  items_free(&disk);
  if (rc) return rc;
  return *from < (1ull << 32);
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
  int rc = db_ns_arg(db, ns, &s);
  if (rc == CAIRN_ENOTFOUND) {
    *cursor = 0;
    return 0;
  }
  if (rc) return rc;
  if (count == 0) count = 1;
  struct scan_ctx c = {prefix, plen, now_ms(), fn, arg, 0, 0, 0};
  while (shard < TABLE_SHARDS && c.seen < count && !c.stop) {
    int more;
    if (db_cold(db, s)) {
      more = scan_merged(db, s, shard, &from, count - c.seen, &c);
      if (more < 0) return more;
    } else {
      table_rdlock(s->t, shard);
      more = table_walk(s->t, shard, &from, count - c.seen, scan_visit, &c);
      table_unlock(s->t, shard);
    }
    if (c.err) return c.err;
    if (!more) {
      shard++;
      from = 0;
    }
  }
  *cursor = shard >= TABLE_SHARDS ? 0 : CURSOR_MAKE(shard, from);
  return 0;
}
