/*
 * ckpt.c - the checkpointer (see ckpt.h).
 *
 * One thread.  A checkpoint is due when the log has grown by log_bytes
 * since the last one, when interval_ms has passed with records to write,
 * or when asked.  Its work:
 *
 *   1. target = the durable LSN; from = the store's checkpoint LSN.
 *   2. wal_read (from, target]: every record folds into a map keyed by
 *      (namespace, key), so a key written many times is written once.
 *   3. The folded keys, sorted in the store's key order (LMDB appends
 *      faster in order), go into LMDB write transactions paced for the
 *      log's sake (folds_commit); the last one also records target as the
 *      checkpoint LSN.
 *   4. The log recycles the segments wholly below target + 1.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ckpt.h"
#include "cobj.h"
#include "coll.h"
#include "hash.h"
#include "limits.h"
#include "record.h"
#include "store.h"
#include "sys.h"
#include "table.h"
#include "util.h"
#include "wal.h"

/* ------------------------------------------------------------------------
 * Folding records per key.
 * --------------------------------------------------------------------- */

enum { FOLD_PUT = 1, FOLD_DEL = 2, FOLD_EXPIRE = 3 };

/* The last state of one key within the checkpoint's range. */
struct fold {
  uint64_t hash;     /* of namespace and key, for the map */
  uint64_t khash;    /* of the key alone: the store's order */
  uint8_t op, ns_len, type;
  uint32_t klen, vlen;
  uint64_t version, max_idle_ms;
  int64_t expire_at_ms, ts_ms;
  /* A large collection is folded as an object (cobj.h), so that each delta
   * costs O(1) and not a rewrite of its blob; the value (vlen 0 here) is
   * its encoding, made when written. */
  struct cobj *obj;
  char data[]; /* ns, key, value */
};

static void fold_free(struct fold *f) {
  if (f) cobj_free(f->obj);
  free(f);
}

struct fold_map {
  struct fold **slots;
  size_t cap, n;
  uint64_t records;
  struct store *store; /* for collection deltas to keys it alone holds */
};

static uint64_t fold_hash(const struct rec *r) {
  /* The table's hash of the key, mixed with the namespace's. */
  return table_hash(r->key, r->klen) ^ (hash64(r->ns, r->ns_len) * 0x9e3779b97f4a7c15ull);
}

static int fold_same(const struct fold *f, const struct rec *r) {
  return f->ns_len == r->ns_len && f->klen == r->klen &&
         memcmp(f->data, r->ns, r->ns_len) == 0 &&
         memcmp(f->data + f->ns_len, r->key, r->klen) == 0;
}

static int map_grow(struct fold_map *m) {
  size_t cap = m->cap ? m->cap * 2 : 1024;
  struct fold **slots = calloc(cap, sizeof *slots);
  if (!slots) return CAIRN_ENOMEM;
  for (size_t i = 0; i < m->cap; i++) {
    struct fold *f = m->slots[i];
    if (!f) continue;
    size_t k = f->hash & (cap - 1);
    while (slots[k]) k = (k + 1) & (cap - 1);
    slots[k] = f;
  }
  free(m->slots);
  m->slots = slots;
  m->cap = cap;
  return 0;
}

/* The slot for r's key: its fold, or the empty slot where it goes. */
static struct fold **map_slot(struct fold_map *m, const struct rec *r,
                              uint64_t h) {
  size_t k = h & (m->cap - 1);
  while (m->slots[k] && !(m->slots[k]->hash == h && fold_same(m->slots[k], r)))
    k = (k + 1) & (m->cap - 1);
  return &m->slots[k];
}

static struct fold *fold_new(const struct rec *r, uint64_t h, size_t vlen) {
  struct fold *f = malloc(sizeof *f + r->ns_len + r->klen + vlen);
  if (!f) return NULL;
  memset(f, 0, sizeof *f);
  f->hash = h;
  f->khash = table_hash(r->key, r->klen);
  f->ns_len = r->ns_len;
  f->klen = r->klen;
  memcpy(f->data, r->ns, r->ns_len);
  memcpy(f->data + r->ns_len, r->key, r->klen);
  return f;
}

/* The collection a delta applies to: none (REC_F_FRESH, or deleted in
 * this range), the folded value, or the store's.  *held is what to free. */
static int fold_coll_base(struct fold_map *m, const struct rec *r,
                          const struct fold *old, const void **base,
                          size_t *blen, unsigned *type, void **held) {
  *base = NULL;
  *blen = 0;
  *type = r->type;
  *held = NULL;
  if ((r->flags & REC_F_FRESH) || (old && old->op == FOLD_DEL)) return 0;
  if (old && old->op == FOLD_PUT) {
    *base = old->data + old->ns_len + old->klen;
    *blen = old->vlen;
    *type = old->type;
    return 0;
  }
  uint64_t h = table_hash(r->key, r->klen);
  struct store_val v;
  int rc = store_get(m->store, r->ns, r->ns_len, table_shard(h),
                     (uint32_t)(h >> 32), r->key, r->klen, &v, NULL);
  if (rc == CAIRN_ENOTFOUND) return 0;
  if (rc) return rc;
  *base = *held = v.data;
  *blen = v.len;
  *type = v.type;
  return 0;
}

static void fold_coll_meta(struct fold *f, uint64_t lsn, const struct rec *r) {
  f->version = lsn;
  f->expire_at_ms = r->expire_at_ms;
  f->max_idle_ms = r->max_idle_ms;
  f->ts_ms = (int64_t)r->ts_ms;
}

/* A delta to a collection folded as an object: applied in place.  1 done,
 * 0 not such a fold, or an error. */
static int fold_coll_obj(uint64_t lsn, const struct rec *r, struct fold *f) {
  if (!f || f->op != FOLD_PUT || !f->obj || (r->flags & REC_F_FRESH)) return 0;
  if (f->type != r->type) return CAIRN_ECORRUPT;
  int rc = cobj_apply(f->obj, r->val, r->vlen);
  if (rc) return rc == CAIRN_ENOMEM ? rc : CAIRN_ECORRUPT;
  if (cobj_count(f->obj) == 0) {
    cobj_free(f->obj);
    f->obj = NULL;
    f->op = FOLD_DEL;
  }
  fold_coll_meta(f, lsn, r);
  return 1;
}

/* A blob fold that has grown large becomes an object (a blob that cannot
 * be one stays as it is). */
static int fold_objectify(struct fold *f) {
  const uint8_t *v = (const uint8_t *)f->data + f->ns_len + f->klen;
  if (f->op != FOLD_PUT || f->vlen < 4 ||
      (get_u32(v) < COBJ_MIN_ELEMS && f->vlen < COBJ_MIN_BYTES))
    return 0;
  int rc = cobj_from_blob(f->type, v, f->vlen, &f->obj);
  if (rc == 0) f->vlen = 0; /* the blob bytes stay allocated, unused */
  return rc == CAIRN_ENOMEM ? rc : 0;
}

/* A collection delta folds into the value it yields (or a deletion). */
static int fold_coll(struct fold_map *m, uint64_t lsn, const struct rec *r,
                     struct fold **slot, uint64_t h) {
  int done = fold_coll_obj(lsn, r, *slot);
  if (done) return done < 0 ? done : 0;
  const void *base;
  size_t blen, n = 0;
  unsigned type;
  void *held, *blob = NULL;
  int rc = fold_coll_base(m, r, *slot, &base, &blen, &type, &held);
  if (rc == 0)
    rc = type == r->type ? coll_apply(r->type, base, blen, r->val, r->vlen,
                                      &blob, &n)
                         : CAIRN_ECORRUPT;
  free(held);
  struct fold *f = rc ? NULL : fold_new(r, h, n);
  if (!rc && !f) rc = CAIRN_ENOMEM;
  if (rc) {
    free(blob);
    return rc;
  }
  f->op = blob ? FOLD_PUT : FOLD_DEL;
  f->type = r->type;
  f->vlen = (uint32_t)n;
  if (n) memcpy(f->data + f->ns_len + f->klen, blob, n);
  free(blob);
  fold_coll_meta(f, lsn, r);
  if ((rc = fold_objectify(f)) != 0) {
    fold_free(f);
    return rc;
  }
  if (!*slot) m->n++;
  fold_free(*slot);
  *slot = f;
  return 0;
}

/* Fold one (non-batch) record at lsn into the map. */
static int fold_one(struct fold_map *m, uint64_t lsn, const struct rec *r) {
  if ((m->n + 1) * 2 > m->cap && map_grow(m) != 0) return CAIRN_ENOMEM;
  uint64_t h = fold_hash(r);
  struct fold **slot = map_slot(m, r, h), *old = *slot;
  if (r->op == REC_COLL) return fold_coll(m, lsn, r, slot, h);
  if (r->op == REC_EXPIRE && old && old->op != FOLD_DEL) {
    /* The value stays as folded; only the expiry and version move. */
    old->expire_at_ms = r->expire_at_ms;
    old->max_idle_ms = r->max_idle_ms;
    old->version = lsn;
    old->ts_ms = (int64_t)r->ts_ms;
    return 0;
  }
  size_t vlen = r->op == REC_PUT ? r->vlen : 0;
  struct fold *f = fold_new(r, h, vlen);
  if (!f) return CAIRN_ENOMEM;
  f->op = r->op == REC_PUT ? FOLD_PUT
          : r->op == REC_EXPIRE ? FOLD_EXPIRE : FOLD_DEL;
  f->type = r->type;
  f->vlen = (uint32_t)vlen;
  if (vlen) memcpy(f->data + f->ns_len + f->klen, r->val, vlen);
  f->version = lsn;
  f->expire_at_ms = r->expire_at_ms;
  f->max_idle_ms = r->max_idle_ms;
  f->ts_ms = (int64_t)r->ts_ms;
  *slot = f;
  fold_free(old);
  if (!old) m->n++;
  return 0;
}

/* wal_apply_fn over (from, target]. */
static int fold_apply(void *arg, uint64_t lsn, const struct rec *r) {
  struct fold_map *m = arg;
  m->records++;
  if (r->op != REC_BATCH) return fold_one(m, lsn, r);
  size_t off = 0;
  for (uint32_t i = 0; i < r->klen; i++) {
    struct rec sub;
    int rc = rec_decode(r->val, r->vlen, &off, &sub);
    if (rc == 0) rc = fold_one(m, lsn, &sub);
    if (rc) return rc;
  }
  return 0;
}

static void map_free(struct fold_map *m) {
  for (size_t i = 0; i < m->cap; i++) fold_free(m->slots[i]);
  free(m->slots);
  memset(m, 0, sizeof *m);
}

/* The store's key order: namespace (length, bytes), shard, h32, key. */
static int fold_cmp(const void *a, const void *b) {
  const struct fold *x = *(struct fold *const *)a, *y = *(struct fold *const *)b;
  if (x->ns_len != y->ns_len) return x->ns_len < y->ns_len ? -1 : 1;
  int c = memcmp(x->data, y->data, x->ns_len);
  if (c) return c;
  uint64_t hx = x->khash, hy = y->khash;
  unsigned sx = table_shard(hx), sy = table_shard(hy);
  if (sx != sy) return sx < sy ? -1 : 1;
  if ((hx >> 32) != (hy >> 32)) return (hx >> 32) < (hy >> 32) ? -1 : 1;
  size_t n = MIN(x->klen, y->klen);
  c = memcmp(x->data + x->ns_len, y->data + y->ns_len, n);
  if (c) return c;
  return x->klen < y->klen ? -1 : x->klen > y->klen;
}

/* ------------------------------------------------------------------------
 * Writing the folded keys.
 * --------------------------------------------------------------------- */

static int fold_write(struct store *s, struct store_txn *t,
                      const struct fold *f) {
  const char *ns = f->data, *key = f->data + f->ns_len;
  uint64_t h = f->khash;
  unsigned shard = table_shard(h);
  uint32_t h32 = (uint32_t)(h >> 32);
  if (f->op == FOLD_DEL)
    return store_del(t, ns, f->ns_len, shard, h32, key, f->klen);
  struct store_val v = {f->version, f->expire_at_ms, f->max_idle_ms,
                        f->ts_ms, f->type,
                        (void *)(key + f->klen), f->vlen};
  if (f->op == FOLD_PUT && f->obj) {
    v.len = cobj_blob_len(f->obj);
    if (!(v.data = malloc(v.len))) return CAIRN_ENOMEM;
    cobj_encode(f->obj, v.data);
    int rc = store_put(t, ns, f->ns_len, shard, h32, key, f->klen, &v);
    free(v.data);
    return rc;
  }
  if (f->op == FOLD_PUT)
    return store_put(t, ns, f->ns_len, shard, h32, key, f->klen, &v);
  /* An expiry change of an entry that only the store holds. */
  struct store_val old;
  int rc = store_get(s, ns, f->ns_len, shard, h32, key, f->klen, &old, NULL);
  if (rc == CAIRN_ENOTFOUND) return 0;
  if (rc) return rc;
  v.data = old.data;
  v.len = old.len;
  v.type = old.type;
  rc = store_put(t, ns, f->ns_len, shard, h32, key, f->klen, &v);
  free(old.data);
  return rc;
}

/* Write folds [lo, hi) in one transaction: the last one of a checkpoint
 * (final) commits at ckpt_lsn, synced; the others commit under the old
 * LSN, with one fsync and not two (store_commit_part).  Sets
 * *commit_ns to the commit's time (its page writes and fdatasyncs). */
static int folds_txn(struct store *s, struct fold **list, size_t lo,
                     size_t hi, size_t mid, int final, uint64_t ckpt_lsn,
                     uint64_t epoch, uint64_t *commit_ns) {
  struct store_txn *t;
  int rc = store_begin(s, &t);
  for (size_t i = lo; rc == 0 && i < hi; i++) {
    rc = fold_write(s, t, list[i]);
    if (rc == 0 && i == mid && sys_ops.test_hook)
      sys_ops.test_hook(SYS_HOOK_CKPT_MID_TXN);
  }
  if (rc) {
    if (t) store_abort(t);
    return rc;
  }
  uint64_t t0 = mono_ns();
  rc = final ? store_commit(t, ckpt_lsn, epoch) : store_commit_part(t);
  *commit_ns = mono_ns() - t0;
  return rc;
}

size_t ckpt_txn_keys_next(size_t keys, uint64_t commit_ns) {
  uint64_t k = keys, lo = k / 4, hi = k * 2;
  uint64_t next = commit_ns ? k * CKPT_COMMIT_NS / commit_ns : hi;
  next = MIN(MAX(next, lo), hi);
  return (size_t)MIN(MAX(next, CKPT_TXN_KEYS_MIN), CKPT_TXN_KEYS);
}

/* About what fold f adds to the store: its data key and value, LMDB's
 * node, an expiry-index entry. */
static uint64_t fold_bytes(const struct fold *f) {
  size_t vlen = f->obj ? cobj_blob_len(f->obj) : f->vlen;
  return 2u * (f->ns_len + f->klen) + vlen + STORE_VAL_HDR_MAX + 32u;
}

/* Has the store room for a checkpoint of about `bytes` twice over?
 * Near its size cap, a checkpoint goes in as few transactions as LMDB
 * allows: one that fails with CAIRN_EFULL then leaves the store as it
 * was, and deleting keys makes room for the next.  Paced transactions
 * that commit before the failure would have filled it, and a full LMDB
 * map cannot even take the deletes that would empty it (each needs new
 * pages). */
static int store_has_room(struct store *s, uint64_t bytes) {
  struct store_stats st;
  if (store_stats(s, &st) != 0 || st.used_bytes >= st.map_bytes_max)
    return 0;
  return st.map_bytes_max - st.used_bytes > 2 * bytes;
}

/* Whether a checkpoint paces itself: not while someone waits on it
 * (cairn_checkpoint_now, the close) or memory needs it (ckpt_request),
 * and only while the log written since it began is short of the next
 * checkpoint's trigger.  Past that, writes come faster than a paced
 * checkpoint absorbs them: the log and the dirty entries in memory would
 * grow without bound, so it goes at full speed. */
struct pace {
  struct wal *wal;
  uint64_t log_bytes0; /* the log's size when the checkpoint began */
  uint64_t log_bytes;  /* the trigger (ckpt_config.log_bytes) */
  const uint64_t *hurry_gen; /* __atomic: the last request to hurry */
  uint64_t done_gen;   /* requests served before this checkpoint began */
};

static int pace_on(const struct pace *p) {
  /* A hurried request waits on this checkpoint (or the next), or memory
   * does. */
  if (__atomic_load_n(p->hurry_gen, __ATOMIC_RELAXED) > p->done_gen)
    return 0;
  struct wal_stats ws;
  wal_stats(p->wal, &ws);
  return ws.bytes - p->log_bytes0 < p->log_bytes;
}

/* Write every fold, in store order, and commit at target.
 *
 * The folds go in many LMDB transactions.  Every one but the last commits
 * under the old checkpoint LSN: a crash between them leaves the store
 * holding some keys ahead of the LSN it names, which recovery then
 * replays over in memory (replay from the named LSN rebuilds every key
 * written after it), and the next checkpoint writes again.  Only the last
 * transaction moves the checkpoint LSN.
 *
 * Their size is set by the disk, not by LMDB alone (which lets one
 * transaction dirty at most 128Ki pages, hence CKPT_TXN_KEYS).  A commit
 * writes every page its transaction dirtied and fdatasyncs, and the log's
 * fdatasync waits behind that flush: 50k random keys into a large store
 * dirty some 200 MB, and puts stalled for tens of milliseconds.  So each
 * transaction holds as many keys as flush in about CKPT_COMMIT_NS, learnt
 * from the commit before it (keys per page vary with the store's size
 * and the keys' spread), and is followed by a rest as long as its commit,
 * which leaves the disk to the log at least half of the time; a put that
 * meets a commit waits about CKPT_COMMIT_NS more.  (A fixed 2 ms pause
 * after 50k-key transactions, and unsynced commits with one fsync at the
 * end, were measured not to help: it is the size of each flush that the
 * log waits for.  doc/BENCHMARKS.md has the figures.)  No pacing when
 * pace_on says so, or with the store near its size cap. */
static int folds_commit(struct store *s, struct fold_map *m, uint64_t target,
                        uint64_t epoch, const struct pace *p, int *unpaced) {
  struct fold **list = malloc((m->n ? m->n : 1) * sizeof *list);
  if (!list) return CAIRN_ENOMEM;
  size_t n = 0;
  uint64_t bytes = 0;
  for (size_t i = 0; i < m->cap; i++)
    if (m->slots[i]) bytes += fold_bytes(list[n++] = m->slots[i]);
  qsort(list, n, sizeof *list, fold_cmp);
  int rc = 0, paced = pace_on(p) && store_has_room(s, bytes);
  *unpaced = !paced;
  size_t lo = 0, keys = paced ? CKPT_TXN_KEYS_FIRST : CKPT_TXN_KEYS;
  do {
    size_t hi = MIN(n, lo + keys);
    uint64_t commit_ns = 0;
    rc = folds_txn(s, list, lo, hi, n / 2, hi == n, target, epoch,
                   &commit_ns);
    if (paced && hi < n && !pace_on(p)) {
      paced = 0; /* behind: the rest as fast as it goes */
      keys = CKPT_TXN_KEYS;
      *unpaced = 1;
    }
    if (paced && rc == 0 && hi < n) {
      uint64_t rest = commit_ns * CKPT_REST_PER_COMMIT;
      struct timespec ts = {(time_t)(rest / 1000000000u),
                            (long)(rest % 1000000000u)};
      nanosleep(&ts, NULL);
      keys = ckpt_txn_keys_next(keys, commit_ns);
    }
    lo = hi;
  } while (rc == 0 && lo < n);
  free(list);
  return rc;
}

/* ------------------------------------------------------------------------
 * The thread.
 * --------------------------------------------------------------------- */

struct ckpt {
  struct wal *wal;
  struct store *store;
  struct ckpt_config cfg;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv, done_cv;
  uint64_t req_gen, done_gen; /* checkpoints asked for, and run */
  int last_rc, stop;
  uint64_t hurry_gen;         /* __atomic: the last request that hurries */
  uint64_t log_bytes_at;      /* wal bytes written at the last one */
  uint64_t last_ns;           /* monotonic time of the last one */
  struct ckpt_stats st;
};

/* One checkpoint, from the thread, serving the requests after done_gen.
 * mu not held. */
static int ckpt_once(struct ckpt *c, uint64_t done_gen) {
  struct wal_stats ws;
  wal_stats(c->wal, &ws);
  uint64_t from = store_ckpt_lsn(c->store), target = ws.durable_lsn;
  uint64_t t0 = mono_ns();
  if (target <= from) return 0;
  struct fold_map m = {0};
  m.store = c->store;
  int rc = map_grow(&m);
  if (rc == 0) rc = wal_read(c->wal, from, target, fold_apply, &m);
  struct pace pace = {c->wal, ws.bytes, c->cfg.log_bytes, &c->hurry_gen,
                      done_gen};
  int unpaced = 0;
  if (rc == 0)
    rc = folds_commit(c->store, &m, target, c->cfg.epoch, &pace, &unpaced);
  uint64_t keys = m.n, records = m.records;
  map_free(&m);
  if (rc) {
    log_error(c->cfg.log, "checkpoint to LSN %" PRIu64 " failed: %s", target,
              cairn_strerror(rc));
    if (c->cfg.done) c->cfg.done(c->cfg.arg, rc, from);
    return rc;
  }
  if (sys_ops.test_hook) sys_ops.test_hook(SYS_HOOK_CKPT_COMMITTED);
  if (c->cfg.done) c->cfg.done(c->cfg.arg, 0, target);
  int r = wal_release(c->wal, target + 1);
  if (r)
    log_warn(c->cfg.log, "recycling log segments below LSN %" PRIu64
             ": %s", target + 1, cairn_strerror(r));
  pthread_mutex_lock(&c->mu);
  c->st.lsn = target;
  c->st.count++;
  c->st.unpaced += (uint64_t)unpaced;
  c->st.last_ms = (mono_ns() - t0) / 1000000u;
  c->st.last_bytes = ws.bytes - c->log_bytes_at;
  c->st.last_records = records;
  c->st.last_keys = keys;
  c->log_bytes_at = ws.bytes;
  pthread_mutex_unlock(&c->mu);
  log_debug(c->cfg.log, "checkpoint to LSN %" PRIu64 ": %" PRIu64
            " records, %" PRIu64 " keys, %" PRIu64 " ms", target, records,
            keys, (mono_ns() - t0) / 1000000u);
  return 0;
}

/* Is a checkpoint due?  mu held. */
static int ckpt_due(struct ckpt *c, uint64_t now) {
  if (c->req_gen > c->done_gen) return 1;
  struct wal_stats ws;
  wal_stats(c->wal, &ws);
  if (ws.durable_lsn <= store_ckpt_lsn(c->store)) return 0;
  if (ws.bytes - c->log_bytes_at >= c->cfg.log_bytes) return 1;
  return now - c->last_ns >= (uint64_t)c->cfg.interval_ms * 1000000u;
}

static void *ckpt_main(void *arg) {
  struct ckpt *c = arg;
  pthread_mutex_lock(&c->mu);
  while (!c->stop) {
    uint64_t now = mono_ns();
    if (!ckpt_due(c, now)) {
      /* Log growth is polled: the writers do not signal this thread. */
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      ts.tv_nsec += 50 * 1000000;
      if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
      }
      pthread_cond_timedwait(&c->cv, &c->mu, &ts);
      continue;
    }
    uint64_t gen = c->req_gen, done = c->done_gen;
    pthread_mutex_unlock(&c->mu);
    int rc = ckpt_once(c, done);
    pthread_mutex_lock(&c->mu);
    c->last_ns = mono_ns();
    c->last_rc = rc;
    c->st.failed = rc != 0;
    c->done_gen = gen;
    pthread_cond_broadcast(&c->done_cv);
  }
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

int ckpt_start(struct wal *w, struct store *s, const struct ckpt_config *cfg,
               struct ckpt **out) {
  struct ckpt *c = calloc(1, sizeof *c);
  if (!c) return CAIRN_ENOMEM;
  c->wal = w;
  c->store = s;
  c->cfg = *cfg;
  c->last_ns = mono_ns();
  struct wal_stats ws;
  wal_stats(w, &ws);
  c->log_bytes_at = ws.bytes;
  c->st.lsn = store_ckpt_lsn(s);
  /* A replayed log is not counted in ws.bytes: check it in soon. */
  if (ws.last_lsn > c->st.lsn && !cfg->defer_replayed) c->req_gen = 1;
  pthread_mutex_init(&c->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&c->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_cond_init(&c->done_cv, NULL);
  int rc = pthread_create(&c->thread, NULL, ckpt_main, c);
  if (rc) {
    free(c);
    return -rc;
  }
  *out = c;
  return 0;
}

int ckpt_run(struct ckpt *c, int hurry) {
  pthread_mutex_lock(&c->mu);
  uint64_t want = ++c->req_gen;
  if (hurry) __atomic_store_n(&c->hurry_gen, want, __ATOMIC_RELAXED);
  pthread_cond_signal(&c->cv);
  while (c->done_gen < want && !c->stop)
    pthread_cond_wait(&c->done_cv, &c->mu);
  int rc = c->done_gen >= want ? c->last_rc : CAIRN_ECLOSING;
  pthread_mutex_unlock(&c->mu);
  return rc;
}

void ckpt_request(struct ckpt *c) {
  pthread_mutex_lock(&c->mu);
  if (c->req_gen == c->done_gen) c->req_gen++;
  /* Memory holds more unwritten entries than its budget: only this
   * checkpoint makes them evictable, so it must not crawl. */
  __atomic_store_n(&c->hurry_gen, c->req_gen, __ATOMIC_RELAXED);
  pthread_cond_signal(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

int ckpt_stop(struct ckpt *c, int final) {
  if (!c) return 0;
  int rc = final ? ckpt_run(c, 1) : 0;
  pthread_mutex_lock(&c->mu);
  c->stop = 1;
  pthread_cond_broadcast(&c->cv);
  pthread_cond_broadcast(&c->done_cv);
  pthread_mutex_unlock(&c->mu);
  pthread_join(c->thread, NULL);
  pthread_cond_destroy(&c->cv);
  pthread_cond_destroy(&c->done_cv);
  pthread_mutex_destroy(&c->mu);
  free(c);
  return rc;
}

void ckpt_stats(struct ckpt *c, struct ckpt_stats *out) {
  struct wal_stats ws;
  wal_stats(c->wal, &ws);
  pthread_mutex_lock(&c->mu);
  *out = c->st;
  out->log_bytes_since = ws.bytes - c->log_bytes_at;
  pthread_mutex_unlock(&c->mu);
}
