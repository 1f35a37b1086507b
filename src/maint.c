/*
 * maint.c - the maintenance thread: background expiry and eviction.
 *
 * Expiry.  Every tick, a sweep examines a bounded number of entries in
 * memory, resuming where the last tick stopped, and asks the store for
 * entries whose deadline has passed (its expiry index), so that an entry
 * that expires while only the store holds it is reclaimed too.  Each dead
 * entry becomes a logged REC_EXPIRED, so recovery and followers agree on
 * what is gone.  A tombstone that the store has caught up with is dropped.
 * The same sweep logs the last access of entries that reads have kept
 * alive (max-idle) once their last logged state is half their max-idle
 * old, so that a crash does not end them (expire_collect).
 *
 * Eviction.  With a memory budget, clean entries (version at or below the
 * checkpoint LSN, so the store holds them) are dropped by CLOCK: a hand
 * sweeps the shards, clearing the mark that reads set, and evicting
 * entries found unmarked.  Entries written since the last checkpoint are
 * never evicted; when they alone fill the budget, a checkpoint is asked
 * for.  Each eviction bumps its shard's evict_seq (see db_lookup).
 *
 * A namespace with max_entries is held to it the same way, by a hand of
 * its own: when it holds more entries than that, its clean, unmarked
 * entries are evicted down to NS_EVICT_LOW_PCT of the bound, and the rest
 * stay in the store, read through on demand.  Writers wake the thread
 * when a namespace runs well past its bound, unless its last pass found
 * only dirty entries and no checkpoint has happened since.
 */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ckpt.h"
#include "db.h"
#include "limits.h"
#include "record.h"
#include "store.h"
#include "sys.h"
#include "table.h"
#include "util.h"
#include "wal.h"

/* max_entries: evict down to this share of the bound, so that a pass is
 * not needed after every few writes; writers wake the thread beyond
 * NS_EVICT_WAKE_PCT of it. */
#define NS_EVICT_LOW_PCT  90u
#define NS_EVICT_WAKE_PCT 125u

/* ------------------------------------------------------------------------
 * Expiry
 * --------------------------------------------------------------------- */

#define EXPIRE_BATCH 256u /* keys collected per shard walk */

/* Keys copied out of a walk, to act on once the shard's lock is dropped. */
struct key_batch {
  size_t n;
  char *keys[EXPIRE_BATCH];
  uint32_t klens[EXPIRE_BATCH];
};

static void batch_add(struct key_batch *b, const void *key, size_t klen) {
  if (b->n == EXPIRE_BATCH) return;
  char *k = malloc(klen ? klen : 1);
  if (!k) return; /* next sweep */
  memcpy(k, key, klen);
  b->keys[b->n] = k;
  b->klens[b->n++] = (uint32_t)klen;
}

/* Log the last access of each key in b (db_touch_log), and empty it. */
static void batch_log_touches(cairn *db, struct ns *s, struct key_batch *b) {
  for (size_t i = 0; i < b->n; i++) {
    db_touch_log(db, s, b->keys[i], b->klens[i]);
    free(b->keys[i]);
  }
  b->n = 0;
}

/* When log records were written, roughly: (last LSN, time) sampled every
 * LSN_CLOCK_STEP_MS by the maintenance thread, the newest
 * LSN_CLOCK_SAMPLES kept.  A record whose LSN is above a sample's was
 * handed out after that sample was taken. */
#define LSN_CLOCK_SAMPLES 4096u
#define LSN_CLOCK_STEP_MS 1000

struct lsn_clock {
  unsigned first, n; /* the oldest sample, and how many */
  uint64_t lsn[LSN_CLOCK_SAMPLES];
  int64_t ms[LSN_CLOCK_SAMPLES];
};

static void clock_sample(struct lsn_clock *k, uint64_t lsn, int64_t now) {
  unsigned last = (k->first + k->n - 1) % LSN_CLOCK_SAMPLES;
  if (k->n && k->lsn[last] == lsn) {
    k->ms[last] = now; /* nothing since: the record after comes later */
    return;
  }
  if (k->n && now - k->ms[last] < LSN_CLOCK_STEP_MS) return;
  if (k->n == LSN_CLOCK_SAMPLES) k->first = (k->first + 1) % LSN_CLOCK_SAMPLES;
  else k->n++;
  last = (k->first + k->n - 1) % LSN_CLOCK_SAMPLES;
  k->lsn[last] = lsn;
  k->ms[last] = now;
}

/* The earliest the record at lsn can have been written: the time of the
 * newest sample below it; INT64_MIN if none is (older than the clock). */
static int64_t clock_floor(const struct lsn_clock *k, uint64_t lsn) {
  unsigned lo = 0, hi = k->n; /* samples [0, lo) are below lsn */
  while (lo < hi) {
    unsigned mid = lo + (hi - lo) / 2;
    if (k->lsn[(k->first + mid) % LSN_CLOCK_SAMPLES] < lsn) lo = mid + 1;
    else hi = mid;
  }
  return lo ? k->ms[(k->first + lo - 1) % LSN_CLOCK_SAMPLES] : INT64_MIN;
}

struct expire_ctx {
  int64_t now;
  uint64_t ckpt_lsn;
  int follower;
  size_t seen;              /* entries examined */
  struct key_batch dead;    /* to reclaim */
  struct key_batch touched; /* read, last logged half a max-idle ago */
  struct lsn_clock clock;
  /* Where the sweep of the store's expiry index goes on from, and the
   * checkpoint LSN it started from the first entry at. */
  struct store_due_pos due;
  uint64_t due_ckpt_lsn;
};

/* Collect the dead (expired entries, and tombstones the store has), and
 * the entries whose reads must be logged before a crash can cost them
 * their life.  Reads move a max-idle deadline in memory only; recovery
 * knows the last access logged.  So an entry read since that state,
 * which is half its max-idle old or more, has its last access logged
 * now: after a crash, an entry read within the last half of its max-idle
 * (give or take a sweep) is still alive. */
static int expire_collect(void *arg, struct entry *e) {
  struct expire_ctx *c = arg;
  c->seen++;
  unsigned flags = entry_flags(e);
  int tomb = (flags & ENTRY_F_TOMB) != 0;
  if (tomb ? entry_version(e) <= c->ckpt_lsn : !db_entry_live(e, c->now)) {
    batch_add(&c->dead, entry_key(e), entry_klen(e));
  } else if ((flags & ENTRY_F_TOUCHED) && !(flags & ENTRY_F_MEMORY) &&
             !c->follower &&
             clock_floor(&c->clock, entry_version(e)) <=
                 c->now - (int64_t)(entry_max_idle(e) / 2)) {
    batch_add(&c->touched, entry_key(e), entry_klen(e));
  }
  return 0;
}

/* Reclaim key if it is still dead: a clean tombstone is dropped; an
 * expired entry is deleted, logged unless it was a MEMORY entry.  Returns
 * 1 if an entry expired. */
static int expire_one(cairn *db, struct ns *s, const char *key, size_t klen) {
  int64_t now = now_ms();
  uint64_t hash = table_hash(key, klen);
  unsigned shard = table_shard(hash);
  struct rec r;
  memset(&r, 0, sizeof r);
  r.op = REC_EXPIRED;
  r.ns = s->name;
  r.ns_len = s->len;
  r.key = key;
  r.klen = (uint32_t)klen;
  r.ts_ms = (uint64_t)now;
  size_t bytes = rec_size(&r);
  if (__atomic_load_n(&db->fatal, __ATOMIC_RELAXED) ||
      wal_reserve(db->wal, bytes) != 0)
    return 0;
  struct entry *tomb = db_tomb_new(db, s, key, klen, hash), *e = NULL;
  if (db_lookup(db, s, hash, key, klen, now, &e) != 0) {
    entry_free(tomb);
    wal_unreserve(db->wal, bytes);
    return 0;
  }
  /* db_lookup hides the dead; look at what memory holds. */
  e = table_find(s->t, hash, key, klen);
  int expired = 0;
  uint64_t ckpt = __atomic_load_n(&db->ckpt_lsn, __ATOMIC_ACQUIRE);
  if (e && (entry_flags(e) & ENTRY_F_TOMB)) {
    if (entry_version(e) <= ckpt) entry_free(table_remove(s->t, hash, key, klen));
    wal_unreserve(db->wal, bytes);
  } else if (e && !db_entry_live(e, now) &&
             !__atomic_load_n(&db->follower, __ATOMIC_ACQUIRE)) {
    /* A follower waits for its leader's delete, which the log brings. */
    uint64_t lsn;
    if (entry_flags(e) & ENTRY_F_MEMORY) {
      wal_unreserve(db->wal, bytes);
      lsn = entry_version(e);
      entry_free(tomb);
      tomb = NULL;
    } else {
      lsn = wal_append(db->wal, &r, CAIRN_DURABILITY_INTERVAL, NULL, NULL);
    }
    db_bury(s, hash, key, klen, tomb, lsn);
    tomb = NULL;
    expired = 1;
  } else {
    wal_unreserve(db->wal, bytes);
  }
  table_unlock(s->t, shard);
  entry_free(tomb);
  return expired;
}

/* Reclaim one collected key, counting and announcing an expiry. */
static void expire_key(cairn *db, struct ns *s, char *key, size_t klen) {
  if (expire_one(db, s, key, klen)) {
    db_count(db, CNT_EXPIRED, 1);
    if (db->opt.expired_fn)
      db->opt.expired_fn(db->opt.expired_arg, s->name, key, klen);
  }
  free(key);
}

static void expire_keys(cairn *db, struct ns *s, struct key_batch *b) {
  for (size_t i = 0; i < b->n; i++) expire_key(db, s, b->keys[i], b->klens[i]);
  b->n = 0;
}

/* Examine up to budget entries in memory, from where the last tick
 * stopped. */
static void expire_memory(cairn *db, struct expire_ctx *c, size_t budget) {
  unsigned nns = __atomic_load_n(&db->ns_count, __ATOMIC_ACQUIRE);
  for (unsigned steps = 0; budget > 0 && nns > 0 &&
                           steps < nns * TABLE_SHARDS + 1; steps++) {
    if (db->expiry_ns >= nns) db->expiry_ns = 0;
    struct ns *s = db->ns[db->expiry_ns];
    c->now = now_ms();
    c->ckpt_lsn = __atomic_load_n(&db->ckpt_lsn, __ATOMIC_ACQUIRE);
    c->follower = __atomic_load_n(&db->follower, __ATOMIC_ACQUIRE);
    c->seen = 0;
    int more = 0;
    /* Most entries of many stores never expire: skip shards of those. */
    if (table_mortal(s->t, db->expiry_shard)) {
      table_rdlock(s->t, db->expiry_shard);
      more = table_walk(s->t, db->expiry_shard, &db->expiry_from,
                        MIN(budget, EXPIRE_BATCH), expire_collect, c);
      table_unlock(s->t, db->expiry_shard);
    }
    budget -= MIN(budget, MAX(c->seen, (size_t)1));
    expire_keys(db, s, &c->dead);
    batch_log_touches(db, s, &c->touched);
    if (!more) {
      db->expiry_from = 0;
      if (++db->expiry_shard == TABLE_SHARDS) {
        db->expiry_shard = 0;
        db->expiry_ns++;
      }
    }
  }
}

struct due_ctx {
  cairn *db;
  struct ns *ns[EXPIRE_BATCH];
  struct key_batch *b;
};

static int due_collect(void *arg, const char *ns, size_t ns_len,
                       const void *key, size_t klen, int64_t deadline) {
  (void)deadline;
  struct due_ctx *d = arg;
  struct ns *s;
  if (d->b->n == EXPIRE_BATCH) return 1;
  if (db_ns_get(d->db, ns, ns_len, &s) != 0) return 0;
  d->ns[d->b->n] = s;
  batch_add(d->b, key, klen);
  return 0;
}

/* A batch of the entries that died while only the store held them; how
 * many the store's index gave.  Those reclaimed stay in the index until
 * the next checkpoint, so each batch goes on from where the last stopped,
 * and from the first entry again once a checkpoint has changed the index
 * (or a batch failed).  A paced checkpoint's earlier transactions add to
 * the index before the LSN moves, but only keys still dirty in memory,
 * which the memory sweep reclaims. */
static size_t expire_store_batch(cairn *db, struct expire_ctx *c) {
  struct key_batch *b = &c->dead;
  struct due_ctx d = {db, {0}, b};
  uint64_t ckpt = __atomic_load_n(&db->ckpt_lsn, __ATOMIC_ACQUIRE);
  if (ckpt != c->due_ckpt_lsn) {
    c->due.len = 0;
    c->due_ckpt_lsn = ckpt;
  }
  b->n = 0;
  if (store_due(db->store, now_ms(), EXPIRE_BATCH, &c->due, due_collect,
                &d) != 0) {
    for (size_t i = 0; i < b->n; i++) free(b->keys[i]);
    b->n = 0;
    c->due.len = 0;
    return 0;
  }
  size_t n = b->n;
  for (size_t i = 0; i < n; i++)
    expire_key(db, d.ns[i], b->keys[i], b->klens[i]);
  b->n = 0;
  return n;
}

/* Up to max of them a tick, as many as the memory sweep examines: sessions
 * made together die together, long after they left memory. */
static void expire_store(cairn *db, struct expire_ctx *c, size_t max) {
  for (size_t n = 0; n < max;) {
    size_t got = expire_store_batch(db, c);
    n += got;
    if (got < EXPIRE_BATCH) break;
  }
}

/* ------------------------------------------------------------------------
 * Eviction
 * --------------------------------------------------------------------- */

struct evict_ctx {
  uint64_t ckpt_lsn;
  int follower;
  uint64_t freed;    /* bytes freed by the last visit */
  size_t n;          /* entries evicted by the last visit */
  struct entry *victims[EVICT_BATCH];
  uint64_t hashes[EVICT_BATCH];
  struct key_batch touched; /* keys whose last access must be logged */
};

static int evict_collect(void *arg, struct entry *e) {
  struct evict_ctx *c = arg;
  /* Dirty, or only in memory: never.  Marked: a second chance. */
  if (entry_version(e) > c->ckpt_lsn || (entry_flags(e) & ENTRY_F_MEMORY))
    return 0;
  if (entry_unref(e) || c->n == EVICT_BATCH) return 0;
  /* Read since its last logged state: the store's copy would die too
   * early.  Logged first (db_touch_log), it goes after a checkpoint. */
  if ((entry_flags(e) & ENTRY_F_TOUCHED) && !c->follower) {
    batch_add(&c->touched, entry_key(e), entry_klen(e));
    return 0;
  }
  c->victims[c->n] = e;
  c->hashes[c->n++] = table_hash(entry_key(e), entry_klen(e));
  return 0;
}

/* Visits that take a hand twice round (every mark cleared once) from
 * anywhere: a visit ends a shard or examines EVICT_BATCH entries, so at
 * most 3 a shard and 2 per EVICT_BATCH entries. */
static uint64_t two_rounds(unsigned shards, uint64_t entries) {
  return 3ull * shards + 2 * (entries / EVICT_BATCH);
}

/* One visit of a hand at (*shard, *from) of namespace s: evict the clean,
 * unmarked entries it finds there, then move the hand on.  Returns 1 if
 * the hand finished the shard. */
static int evict_visit(cairn *db, struct ns *s, unsigned *shard,
                       uint64_t *from, struct evict_ctx *c) {
  c->ckpt_lsn = __atomic_load_n(&db->ckpt_lsn, __ATOMIC_ACQUIRE);
  c->follower = __atomic_load_n(&db->follower, __ATOMIC_ACQUIRE);
  c->n = 0;
  c->touched.n = 0;
  c->freed = 0;
  if (sys_ops.test_hook) sys_ops.test_hook(SYS_HOOK_EVICT);
  table_wrlock(s->t, *shard);
  int more = table_walk(s->t, *shard, from, EVICT_BATCH, evict_collect, c);
  for (size_t i = 0; i < c->n; i++) {
    struct entry *e = c->victims[i];
    c->freed += entry_bytes(e);
    entry_free(table_remove(s->t, c->hashes[i], entry_key(e), entry_klen(e)));
  }
  if (c->n) __atomic_add_fetch(&s->evict_seq[*shard], 1, __ATOMIC_RELEASE);
  table_unlock(s->t, *shard);
  db_count(db, CNT_EVICTED, c->n);
  batch_log_touches(db, s, &c->touched);
  if (more) return 0;
  *from = 0;
  *shard = (*shard + 1) % TABLE_SHARDS;
  return 1;
}

/* One visit of the database's hand, which goes round every namespace.
 * Returns the bytes freed. */
static uint64_t evict_step(cairn *db, struct evict_ctx *c) {
  unsigned nns = __atomic_load_n(&db->ns_count, __ATOMIC_ACQUIRE);
  if (db->evict_ns >= nns) db->evict_ns = 0;
  struct ns *s = db->ns[db->evict_ns];
  if (evict_visit(db, s, &db->evict_shard, &db->evict_from, c) &&
      db->evict_shard == 0)
    db->evict_ns++;
  return c->freed;
}

/* Evict until memory is under EVICT_LOW_PCT of the budget, or the hand has
 * gone twice round without getting there.  The hand is the caller's:
 * evict_mu held.
 *
 * A pass that goes twice round and ends over the mark leaves mostly
 * entries not yet checkpointed: it asks for a checkpoint and notes the
 * checkpoint LSN it ran at in evict_stuck.  Before that LSN moves, a helper (a thread that
 * grew memory) does not walk the table again, nor does the maintenance
 * thread for EVICT_RETRY_MS (what is left may also be clean entries that
 * reads keep marked, which no checkpoint will change).  Else the
 * maintenance thread went twice round the table every tick, and every
 * writer every 64 puts, for nothing, competing for the CPU with the
 * checkpoint that memory waits for. */
static void evict_locked(cairn *db, struct evict_ctx *c, int helper) {
  uint64_t budget = db_budget(db);
  if (budget == 0 || db->ns_count == 0) return;
  uint64_t mem = db_memory(db), low = budget / 100 * EVICT_LOW_PCT;
  if (mem <= budget) return;
  uint64_t ckpt = __atomic_load_n(&db->ckpt_lsn, __ATOMIC_ACQUIRE);
  if (__atomic_load_n(&db->evict_stuck, __ATOMIC_RELAXED) == ckpt + 1 &&
      (helper || mono_ns() - __atomic_load_n(&db->evict_stuck_ns,
                                             __ATOMIC_RELAXED) <
                     EVICT_RETRY_MS * 1000000ull))
    return;
  unsigned nns = __atomic_load_n(&db->ns_count, __ATOMIC_ACQUIRE);
  uint64_t visits = two_rounds(nns * TABLE_SHARDS, db_entries(db));
  uint64_t i;
  for (i = 0; mem > low && i < visits; i++) {
    uint64_t freed = evict_step(db, c);
    mem = freed < mem ? mem - freed : 0;
    if ((i & 63) == 63) mem = db_memory(db);
  }
  /* Twice round and still over: what is left is mostly dirty, and only a
   * checkpoint makes it evictable. */
  int stuck = i == visits && db_memory(db) > low;
  if (stuck) __atomic_store_n(&db->evict_stuck_ns, mono_ns(), __ATOMIC_RELAXED);
  __atomic_store_n(&db->evict_stuck, stuck ? ckpt + 1 : 0, __ATOMIC_RELAXED);
  if (stuck) ckpt_request(db->ckpt);
}

/* Hold namespace s to its max_entries: evict by its own hand until it is
 * at NS_EVICT_LOW_PCT of the bound, or the hand has gone twice round.  A
 * MEMORY namespace has no store to read from: nothing of it can leave.
 * evict_mu held. */
static void evict_ns_locked(cairn *db, struct ns *s, struct evict_ctx *c) {
  uint64_t max = __atomic_load_n(&s->opt.max_entries, __ATOMIC_RELAXED);
  if (max == 0 || !db_cold(db, s)) return;
  uint64_t n = table_count(s->t);
  uint64_t low = max - max / 100 * (100 - NS_EVICT_LOW_PCT);
  if (n <= max) {
    __atomic_store_n(&s->evict_stuck, 0, __ATOMIC_RELAXED);
    return;
  }
  /* Two rounds, however fast loaders keep inserting. */
  uint64_t visits = 0, cap = two_rounds(TABLE_SHARDS, n);
  for (unsigned shards = 0; n > low && shards < 2 * TABLE_SHARDS &&
                            visits < cap; visits++) {
    shards += (unsigned)evict_visit(db, s, &s->evict_shard, &s->evict_from, c);
    n = c->n < n ? n - c->n : 0;
  }
  /* Still over: what is left is dirty, which only a checkpoint cleans. */
  uint64_t ckpt = __atomic_load_n(&db->ckpt_lsn, __ATOMIC_ACQUIRE);
  int over = table_count(s->t) > max;
  if (over) ckpt_request(db->ckpt);
  __atomic_store_n(&s->evict_stuck, over ? ckpt + 1 : 0, __ATOMIC_RELAXED);
}

/* Stops with room to spare: the walk finishes the group of entries that
 * share an h32, and a key past a full batch would be skipped. */
static int touched_collect(void *arg, struct entry *e) {
  struct key_batch *b = arg;
  if (entry_flags(e) & ENTRY_F_TOUCHED) batch_add(b, entry_key(e), entry_klen(e));
  return b->n >= EXPIRE_BATCH - EXPIRE_BATCH / 4;
}

void maint_log_touches(cairn *db) {
  struct key_batch *b = malloc(sizeof *b);
  if (!b) return;
  b->n = 0;
  unsigned nns = __atomic_load_n(&db->ns_count, __ATOMIC_ACQUIRE);
  for (unsigned i = 0; i < nns; i++) {
    struct ns *s = db->ns[i];
    if (!db_cold(db, s)) continue;
    for (unsigned shard = 0; shard < TABLE_SHARDS; shard++) {
      if (!table_mortal(s->t, shard)) continue; /* no max-idle entry */
      uint64_t from = 0;
      int more;
      do {
        table_rdlock(s->t, shard);
        more = table_walk(s->t, shard, &from, EXPIRE_BATCH, touched_collect, b);
        table_unlock(s->t, shard);
        batch_log_touches(db, s, b);
      } while (more);
    }
  }
  free(b);
}

static void evict(cairn *db, struct evict_ctx *c) {
  pthread_mutex_lock(&db->evict_mu);
  evict_locked(db, c, 0);
  unsigned nns = __atomic_load_n(&db->ns_count, __ATOMIC_ACQUIRE);
  for (unsigned i = 0; i < nns; i++) evict_ns_locked(db, db->ns[i], c);
  pthread_mutex_unlock(&db->evict_mu);
}

/* Is a namespace well past its max_entries, and has a checkpoint made
 * more of it evictable since its last pass found only dirty entries? */
static int ns_far_over(cairn *db) {
  unsigned nns = __atomic_load_n(&db->ns_count, __ATOMIC_ACQUIRE);
  uint64_t ckpt = __atomic_load_n(&db->ckpt_lsn, __ATOMIC_ACQUIRE);
  for (unsigned i = 0; i < nns; i++) {
    struct ns *s = db->ns[i];
    uint64_t max = __atomic_load_n(&s->opt.max_entries, __ATOMIC_RELAXED);
    if (max == 0 || !db_cold(db, s) ||
        __atomic_load_n(&s->evict_stuck, __ATOMIC_RELAXED) == ckpt + 1)
      continue;
    if (table_count(s->t) / NS_EVICT_WAKE_PCT > max / 100) return 1;
  }
  return 0;
}

/* Set which reads from the store memory (mem bytes) takes in (see
 * db_admit). */
static void admit_mode_set(cairn *db, uint64_t mem) {
  uint64_t budget = db_budget(db);
  int mode = budget == 0 || mem < budget / 100 * ADMIT_ROOM_PCT ? ADMIT_ALL
             : mem / ADMIT_STOP_PCT <= budget / 100          ? ADMIT_SECOND
                                                             : ADMIT_NONE;
  if (__atomic_load_n(&db->admit_mode, __ATOMIC_RELAXED) != mode)
    __atomic_store_n(&db->admit_mode, mode, __ATOMIC_RELAXED);
}

static void maint_wake(cairn *db) {
  pthread_mutex_lock(&db->maint_mu);
  pthread_cond_signal(&db->maint_cv);
  pthread_mutex_unlock(&db->maint_mu);
}

static int stall_update(cairn *db, uint64_t mem);

/* Every 64 growths of a thread: over the budget, or a namespace well past
 * its max_entries, wake the maintenance thread; far over the budget (the
 * thread falls behind a fast loader), evict here, unless an eviction is
 * already running.  Called with no lock held. */
void db_mem_grew(cairn *db) {
  static __thread unsigned n;
  if ((++n & 63) != 0) return;
  if (ns_far_over(db)) maint_wake(db);
  uint64_t budget = db_budget(db);
  if (budget == 0) return;
  uint64_t mem = db_memory(db);
  admit_mode_set(db, mem);
  stall_update(db, mem);
  if (mem <= budget) return;
  maint_wake(db);
  if (mem / EVICT_INLINE_PCT <= budget / 100 ||
      pthread_mutex_trylock(&db->evict_mu) != 0)
    return;
  struct evict_ctx *c = malloc(sizeof *c);
  if (c) evict_locked(db, c, 1);
  pthread_mutex_unlock(&db->evict_mu);
  free(c);
}

/* ------------------------------------------------------------------------
 * The write stall
 * --------------------------------------------------------------------- */

/* Whether writes that wait for the log are to wait for memory too (and
 * db->write_stall set to it).  Entries written since the last checkpoint
 * cannot leave memory, so while writers outrun the checkpoint they pile up
 * past max_memory, and nothing else bounds them.  Past WRITE_STALL_PCT of
 * the budget writes wait, but only while the records logged since the
 * checkpoint number at least an eighth (WRITE_STALL_LOG_DIV) of the
 * entries in memory: a checkpoint then cleans that many, where MEMORY
 * namespaces, whose entries no checkpoint frees, log nothing.  (Records,
 * not log bytes: frames are compressed, entries are not.)
 * Asynchronous writes never wait (their callers must not block); cairnd
 * holds back its clients' writes itself (cairn_write_stalled). */
static int stall_update(cairn *db, uint64_t mem) {
  uint64_t budget = db_budget(db);
  int stall = 0;
  if (budget && mem / WRITE_STALL_PCT > budget / 100) {
    uint64_t ckpt = __atomic_load_n(&db->ckpt_lsn, __ATOMIC_ACQUIRE);
    uint64_t last = wal_last_lsn(db->wal);
    stall = last > ckpt && last - ckpt >= db_entries(db) / WRITE_STALL_LOG_DIV;
  }
  if (__atomic_load_n(&db->write_stall, __ATOMIC_RELAXED) != stall) {
    if (stall) __atomic_store_n(&db->stall_since_ns, mono_ns(), __ATOMIC_RELAXED);
    __atomic_store_n(&db->write_stall, stall, __ATOMIC_RELAXED);
  }
  return stall;
}

/* Whether writes wait now: stalled, for less than WRITE_STALL_NS_MAX since
 * the stall began or a checkpoint last completed, whichever is later.
 * Past that the checkpoint is stuck (a slow or failing disk), and writes
 * go on unhindered until one completes, rather than each crawling through
 * a wait of its own.  Not while writes fail anyway (a fatal log error, a
 * full store). */
static int stall_active(cairn *db) {
  if (!__atomic_load_n(&db->write_stall, __ATOMIC_RELAXED) ||
      __atomic_load_n(&db->fatal, __ATOMIC_RELAXED) ||
      __atomic_load_n(&db->store_full, __ATOMIC_RELAXED))
    return 0;
  struct ckpt_stats cs;
  ckpt_stats(db->ckpt, &cs);
  uint64_t now = mono_ns();
  if (__atomic_exchange_n(&db->stall_ckpts, cs.count, __ATOMIC_RELAXED) !=
      cs.count)
    __atomic_store_n(&db->stall_since_ns, now, __ATOMIC_RELAXED);
  if (now - __atomic_load_n(&db->stall_since_ns, __ATOMIC_RELAXED) <
      WRITE_STALL_NS_MAX)
    return 1;
  if (__atomic_exchange_n(&db->stall_warned, cs.count + 1, __ATOMIC_RELAXED) !=
      cs.count + 1)
    log_warn(&db->log, "writes waited %llu s for a checkpoint to free "
             "memory; they go on past the budget until one completes",
             (unsigned long long)(WRITE_STALL_NS_MAX / 1000000000u));
  return 0;
}

void db_stall_wait(cairn *db) {
  if (!stall_active(db)) return;
  db_count(db, CNT_STALLS, 1);
  for (unsigned i = 0; stall_update(db, db_memory(db)) && stall_active(db);
       i++) {
    if (i % 10 == 0) { /* every 10 ms */
      ckpt_request(db->ckpt);
      maint_wake(db);
    }
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
  }
}

CAIRN_EXPORT int cairn_write_stalled(cairn *db) {
  return db && stall_active(db);
}

CAIRN_EXPORT void cairn_write_wait(cairn *db) {
  if (db) db_stall_wait(db);
}

CAIRN_EXPORT int cairn_set_max_memory(cairn *db, uint64_t bytes) {
  if (!db) return CAIRN_EINVAL;
  __atomic_store_n(&db->opt.max_memory, bytes, __ATOMIC_RELAXED);
  uint64_t mem = db_memory(db);
  admit_mode_set(db, mem);
  stall_update(db, mem);
  maint_wake(db);
  return 0;
}

/* ------------------------------------------------------------------------
 * The thread
 * --------------------------------------------------------------------- */

static void maint_tick(cairn *db, struct expire_ctx *ec,
                       struct evict_ctx *vc) {
  evict(db, vc);
  uint64_t mem = db_memory(db);
  admit_mode_set(db, mem);
  stall_update(db, mem);
  if (db->opt.flags & CAIRN_OPEN_NO_EXPIRY) return;
  clock_sample(&ec->clock, wal_last_lsn(db->wal), now_ms());
  expire_memory(db, ec, db->opt.expire_scan_max);
  expire_store(db, ec, db->opt.expire_scan_max);
  if (sys_ops.test_hook) sys_ops.test_hook(SYS_HOOK_EXPIRE_TICK);
}

static void *maint_main(void *arg) {
  cairn *db = arg;
  struct expire_ctx *ec = calloc(1, sizeof *ec);
  struct evict_ctx *vc = calloc(1, sizeof *vc);
  if (ec) clock_sample(&ec->clock, db->maint_lsn0, db->maint_ms0);
  pthread_mutex_lock(&db->maint_mu);
  while (!db->stopping && ec && vc) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + db->opt.expire_tick_ms * 1000000ull;
    ts.tv_sec += (time_t)(ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    pthread_cond_timedwait(&db->maint_cv, &db->maint_mu, &ts);
    if (db->stopping) break;
    pthread_mutex_unlock(&db->maint_mu);
    maint_tick(db, ec, vc);
    pthread_mutex_lock(&db->maint_mu);
  }
  pthread_mutex_unlock(&db->maint_mu);
  free(ec);
  free(vc);
  return NULL;
}

int maint_start(cairn *db) {
  /* The clock's first sample (see struct lsn_clock), taken here so that
   * every record written after the open is dated by it. */
  db->maint_lsn0 = wal_last_lsn(db->wal);
  db->maint_ms0 = now_ms();
  admit_mode_set(db, db_memory(db));
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&db->maint_cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&db->maint_mu, NULL);
  pthread_mutex_init(&db->evict_mu, NULL);
  int rc = pthread_create(&db->maint_thread, NULL, maint_main, db);
  if (rc) return -rc;
  db->maint_running = 1;
  return 0;
}

void maint_stop(cairn *db) {
  pthread_mutex_lock(&db->maint_mu);
  db->stopping = 1;
  pthread_cond_broadcast(&db->maint_cv);
  pthread_mutex_unlock(&db->maint_mu);
  if (db->maint_running) pthread_join(db->maint_thread, NULL);
  db->maint_running = 0;
  pthread_cond_destroy(&db->maint_cv);
  pthread_mutex_destroy(&db->maint_mu);
  pthread_mutex_destroy(&db->evict_mu);
}
