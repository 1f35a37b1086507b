/*
 * table.c - entries and the sharded, h32-ordered hash table.
 *
 * Each shard is an array of entry pointers with a capacity `cap` that need
 * not be a power of two.  An entry's home slot is (h32 * cap) >> 32, which
 * grows with h32, and the array is kept sorted by h32: linear probing with
 * the Robin Hood rule that an insertion goes before the first entry whose
 * h32 is greater, shifting that run one slot right.  Deletion shifts the
 * displaced entries that follow back by one.  Invariants (table_check):
 *
 *   - non-empty slots are sorted by h32 (equal h32 in any order);
 *   - an entry sits at or after its home slot, with no empty slot between;
 *   - the array has cap + tail + 1 slots and the last one is always empty,
 *     so every probe stops without a bounds check.  There is no wrap-around:
 *     the tail absorbs runs that pass the end, and a run that would fill it
 *     makes the shard grow.
 *
 * A lookup stops at an empty slot or at the first greater h32.  Because the
 * order is h32 and not the slot, a scan cursor (shard, h32) stays valid
 * across resizes, which rebuild the array by one in-order merge.
 */
#include "config.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "cobj.h"
#include "hash.h"
#include "table.h"
#include "util.h"

/* ------------------------------------------------------------------------
 * Entries
 */

#define ENTRY_HDR      20u
#define ENTRY_KLEN_BITS 17u
#define ENTRY_KLEN_MASK ((1u << ENTRY_KLEN_BITS) - 1)
#define ENTRY_F_OPT    (ENTRY_F_EXPIRE | ENTRY_F_IDLE)

/* Offsets by (flags & ENTRY_F_OPT); see the layout in table.h. */
static const uint8_t key_off[4] = {20, 28, 40, 48};
static const uint8_t expire_off[4] = {0, 20, 0, 24};
static const uint8_t idle_off[4] = {0, 0, 24, 32}; /* last_access at +8 */

/* klen_flags is read with relaxed atomic loads because readers set
 * ENTRY_F_REF in it under a shared lock; on x86 these are plain loads. */
static inline uint32_t kf_load(const struct entry *e) {
  return __atomic_load_n(&e->klen_flags, __ATOMIC_RELAXED);
}

void entry_ref(struct entry *e) {
  uint32_t bit = ENTRY_F_REF << ENTRY_KLEN_BITS;
  /* Read first: most reads find the mark set and write nothing. */
  if (!(kf_load(e) & bit))
    __atomic_fetch_or(&e->klen_flags, bit, __ATOMIC_RELAXED);
}

int entry_unref(struct entry *e) {
  uint32_t bit = ENTRY_F_REF << ENTRY_KLEN_BITS;
  if (!(kf_load(e) & bit)) return 0;
  __atomic_fetch_and(&e->klen_flags, ~bit, __ATOMIC_RELAXED);
  return 1;
}

static inline unsigned opt_of(const struct entry *e) {
  return (kf_load(e) >> ENTRY_KLEN_BITS) & ENTRY_F_OPT;
}

static inline const unsigned char *entry_at(const struct entry *e,
                                            unsigned off) {
  return (const unsigned char *)e + off;
}

static size_t chunk_bytes(size_t request) {
  /* glibc: request + 8 bytes of size field, rounded up to 16, at least 32. */
  size_t c = (request + 8 + 15) & ~(size_t)15;
  return c < 32 ? 32 : c;
}

struct entry *entry_new(const void *key, size_t klen, const void *val,
                        size_t vlen, uint64_t hash, uint64_t version,
                        int64_t expire_at_ms, uint64_t max_idle_ms,
                        int64_t last_access_ms, unsigned flags) {
  cairn_assert(klen <= ENTRY_KLEN_MASK && vlen <= UINT32_MAX);
  flags &= ~ENTRY_F_OPT;
  if (expire_at_ms != 0) flags |= ENTRY_F_EXPIRE;
  if (max_idle_ms != 0) flags |= ENTRY_F_IDLE;
  cairn_assert(flags < (1u << (32 - ENTRY_KLEN_BITS)));
  unsigned opt = flags & ENTRY_F_OPT;
  struct entry *e = malloc((size_t)key_off[opt] + klen + vlen);
  if (!e) return NULL;
  /* last_access needs 8-byte alignment for its atomics. */
  cairn_assert(((uintptr_t)e & 7) == 0);
  e->ver_lo = (uint32_t)version;
  e->ver_hi = (uint32_t)(version >> 32);
  e->h32 = (uint32_t)(hash >> 32);
  e->vlen = (uint32_t)vlen;
  e->klen_flags = (uint32_t)klen | (uint32_t)flags << ENTRY_KLEN_BITS;
  unsigned char *p = (unsigned char *)e;
  if (opt & ENTRY_F_EXPIRE)
    memcpy(p + expire_off[opt], &expire_at_ms, sizeof expire_at_ms);
  if (opt & ENTRY_F_IDLE) {
    memset(p + ENTRY_HDR, 0, 4); /* the pad: keep the block defined */
    memcpy(p + idle_off[opt], &max_idle_ms, sizeof max_idle_ms);
    __atomic_store_n((int64_t *)(void *)(p + idle_off[opt] + 8),
                     last_access_ms, __ATOMIC_RELAXED);
  }
  if (klen) memcpy(p + key_off[opt], key, klen);
  if (vlen) memcpy(p + key_off[opt] + klen, val, vlen);
  return e;
}

struct entry *entry_new_obj(const void *key, size_t klen, struct cobj *o,
                            uint64_t hash, uint64_t version,
                            int64_t expire_at_ms, uint64_t max_idle_ms,
                            int64_t last_access_ms, unsigned flags) {
  flags = (flags & ~ENTRY_TYPE_MASK) | ENTRY_F_OBJ |
          ENTRY_F_TYPE(cobj_type(o));
  return entry_new(key, klen, &o, sizeof o, hash, version, expire_at_ms,
                   max_idle_ms, last_access_ms, flags);
}

/* The value bytes as stored in the entry (for an object, its pointer). */
static const void *entry_raw(const struct entry *e) {
  return entry_at(e, key_off[opt_of(e)] + entry_klen(e));
}

struct cobj *entry_obj(const struct entry *e) {
  if (!(entry_flags(e) & ENTRY_F_OBJ)) return NULL;
  struct cobj *o;
  memcpy(&o, entry_raw(e), sizeof o);
  return o;
}

void entry_set_memory(struct entry *e, int on) {
  uint32_t bit = ENTRY_F_MEMORY << ENTRY_KLEN_BITS;
  if (on) __atomic_fetch_or(&e->klen_flags, bit, __ATOMIC_RELAXED);
  else __atomic_fetch_and(&e->klen_flags, ~bit, __ATOMIC_RELAXED);
}

void entry_free(struct entry *e) {
  if (e) cobj_free(entry_obj(e));
  free(e);
}

uint64_t entry_version(const struct entry *e) {
  return (uint64_t)e->ver_hi << 32 | e->ver_lo;
}

const void *entry_key(const struct entry *e) {
  return entry_at(e, key_off[opt_of(e)]);
}

size_t entry_klen(const struct entry *e) {
  return kf_load(e) & ENTRY_KLEN_MASK;
}

const void *entry_val(const struct entry *e) {
  struct cobj *o = entry_obj(e);
  return o ? cobj_blob(o) : entry_raw(e);
}

size_t entry_vlen(const struct entry *e) {
  struct cobj *o = entry_obj(e);
  return o ? cobj_blob_len(o) : e->vlen;
}

unsigned entry_flags(const struct entry *e) {
  return kf_load(e) >> ENTRY_KLEN_BITS;
}

int64_t entry_expire_at(const struct entry *e) {
  unsigned opt = opt_of(e);
  if (!(opt & ENTRY_F_EXPIRE)) return 0;
  int64_t v;
  memcpy(&v, entry_at(e, expire_off[opt]), sizeof v);
  return v;
}

uint64_t entry_max_idle(const struct entry *e) {
  unsigned opt = opt_of(e);
  if (!(opt & ENTRY_F_IDLE)) return 0;
  uint64_t v;
  memcpy(&v, entry_at(e, idle_off[opt]), sizeof v);
  return v;
}

static int64_t *last_access_ptr(const struct entry *e) {
  unsigned opt = opt_of(e);
  if (!(opt & ENTRY_F_IDLE)) return NULL;
  return (int64_t *)(void *)((unsigned char *)(uintptr_t)e + idle_off[opt] + 8);
}

int64_t entry_last_access(const struct entry *e) {
  int64_t *p = last_access_ptr(e);
  return p ? __atomic_load_n(p, __ATOMIC_RELAXED) : 0;
}

void entry_touch(struct entry *e, int64_t now) {
  int64_t *p = last_access_ptr(e);
  if (p) __atomic_store_n(p, now, __ATOMIC_RELAXED);
}

void entry_touch_read(struct entry *e, int64_t now) {
  int64_t *p = last_access_ptr(e);
  if (!p || __atomic_load_n(p, __ATOMIC_RELAXED) == now) return;
  __atomic_store_n(p, now, __ATOMIC_RELAXED);
  uint32_t bit = ENTRY_F_TOUCHED << ENTRY_KLEN_BITS;
  if (!(kf_load(e) & bit))
    __atomic_fetch_or(&e->klen_flags, bit, __ATOMIC_RELAXED);
}

void entry_untouch(struct entry *e) {
  __atomic_fetch_and(&e->klen_flags, ~(ENTRY_F_TOUCHED << ENTRY_KLEN_BITS),
                     __ATOMIC_RELAXED);
}

int64_t entry_deadline(const struct entry *e) {
  int64_t d = entry_expire_at(e);
  uint64_t idle = entry_max_idle(e);
  if (idle == 0) return d;
  int64_t last = entry_last_access(e);
  int64_t id;
  if (idle > (uint64_t)INT64_MAX ||
      __builtin_add_overflow(last, (int64_t)idle, &id))
    id = INT64_MAX; /* too far to matter */
  if (id <= 0) id = 1; /* long past, but 0 would read as "never" */
  return (d == 0 || id < d) ? id : d;
}

size_t entry_bytes(const struct entry *e) {
  struct cobj *o = entry_obj(e);
  return chunk_bytes((size_t)key_off[opt_of(e)] + entry_klen(e) + e->vlen) +
         (o ? cobj_bytes(o) : 0);
}

/* ------------------------------------------------------------------------
 * Slots
 *
 * A slot holds an entry pointer and, where the platform allows, the entry's
 * tag: the top TAG_BITS bits of its h32, packed into the 16 pointer bits
 * that x86-64 user space leaves zero and the 3 low bits that malloc's
 * 8-byte alignment leaves zero.  The home slot is computed from the tag
 * alone, so probes skip other entries and resizes move them without
 * reading them: each touch of an entry is a cache miss at scale.  Under
 * AddressSanitizer the tag is read from the entry instead, because its
 * leak checker does not see tagged pointers.  Homes stay exact up to 2^19
 * slots a shard (about 100M entries a table); past that, keys share homes
 * in small groups, which costs probes but stays correct.
 */

#define TAG_BITS  19u
#define TAG_SHIFT (32u - TAG_BITS)

#if defined(__SANITIZE_ADDRESS__)
#define TABLE_TAGGED 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TABLE_TAGGED 0
#endif
#endif
#ifndef TABLE_TAGGED
#if defined(__x86_64__)
#define TABLE_TAGGED 1
#else
#define TABLE_TAGGED 0
#endif
#endif

typedef uintptr_t slot_t; /* 0: empty */

#if TABLE_TAGGED
#define SLOT_PTR_MASK 0x0000fffffffffff8ull

static inline struct entry *slot_entry(slot_t s) {
  return (struct entry *)(s & SLOT_PTR_MASK);
}

static inline uint32_t slot_tag(slot_t s) {
  return (uint32_t)(s >> 48) << 3 | (uint32_t)(s & 7);
}

static inline slot_t slot_make(struct entry *e) {
  uintptr_t p = (uintptr_t)e;
  uint32_t tag = e->h32 >> TAG_SHIFT;
  cairn_assert((p & ~(uintptr_t)SLOT_PTR_MASK) == 0);
  return p | (uintptr_t)(tag >> 3) << 48 | (tag & 7);
}
#else
static inline struct entry *slot_entry(slot_t s) { return (struct entry *)s; }
static inline uint32_t slot_tag(slot_t s) {
  return ((struct entry *)s)->h32 >> TAG_SHIFT;
}
static inline slot_t slot_make(struct entry *e) { return (uintptr_t)e; }
#endif

/* Order of a (non-empty) slot against h32 h: <0, 0 or >0.  Reads the entry
 * only when the tags tie. */
static inline int slot_cmp(slot_t s, uint32_t h) {
  uint32_t tag = slot_tag(s), htag = h >> TAG_SHIFT;
  if (tag != htag) return tag < htag ? -1 : 1;
  uint32_t e = slot_entry(s)->h32;
  return (e > h) - (e < h);
}

/* ------------------------------------------------------------------------
 * Shards
 */

#define SHARD_CAP_MIN 8u
#define WALK_PREFETCH 8u  /* slots table_walk fetches ahead */
#define LOAD_MAX_PCT  85u /* grow above this load */
#define LOAD_MIN_PCT  20u /* shrink below it */

struct shard {
  pthread_rwlock_t lock;
  slot_t *slots;    /* nslots; NULL until the first insert */
  uint32_t cap;     /* home slots: 0 <= home < cap */
  uint32_t nslots;  /* cap + tail + 1 sentinel */
  uint64_t count;   /* written under the write lock, read relaxed */
  uint64_t bytes;   /* entry chunks + the slot array, likewise */
  uint64_t mortal;  /* entries with a deadline, and tombstones, likewise */
} __attribute__((aligned(64))); /* no false sharing between shard locks */

struct table {
  struct shard shards[TABLE_SHARDS];
};

/* Monotonic in the tag, hence in h32. */
static inline size_t home_of(uint32_t tag, uint32_t cap) {
  return (size_t)(((uint64_t)tag * cap) >> TAG_BITS);
}

static inline size_t slot_home(slot_t s, uint32_t cap) {
  return home_of(slot_tag(s), cap);
}

/* Room for the runs that pass the last home slot.  Runs are a few slots
 * long at the highest load, so a thirty-second is ample; when it is not,
 * the insert grows the shard instead. */
static inline uint32_t tail_of(uint32_t cap) { return cap / 32 + 8; }

static void stat_add(uint64_t *v, int64_t d) {
  __atomic_store_n(v, *v + (uint64_t)d, __ATOMIC_RELAXED);
}

static bool key_eq(const struct entry *e, const void *key, size_t klen) {
  return entry_klen(e) == klen && memcmp(entry_key(e), key, klen) == 0;
}

/* Lay the shard's entries out again over `cap` home slots, in one pass in
 * h32 order.  Only a run of equal tags longer than the tail can fail to
 * fit (hashes chosen to collide); the capacity then doubles, which doubles
 * the tail, until it fits.  Errors: CAIRN_ENOMEM, the shard unchanged. */
static int shard_resize(struct shard *s, uint32_t cap) {
  for (;;) {
    size_t n = (size_t)cap + tail_of(cap) + 1;
    slot_t *a = calloc(n, sizeof *a);
    if (!a) return CAIRN_ENOMEM;
    size_t next = 0, k;
    for (k = 0; k < s->nslots; k++) {
      slot_t e = s->slots[k];
      if (!e) continue;
      size_t p = MAX(slot_home(e, cap), next);
      if (p >= n - 1) break;
      a[p] = e;
      next = p + 1;
    }
    if (k == s->nslots) {
      stat_add(&s->bytes, (int64_t)(n - s->nslots) * (int64_t)sizeof *a);
      free(s->slots);
      s->slots = a;
      s->cap = cap;
      s->nslots = (uint32_t)n;
      return 0;
    }
    free(a);
    if (cap > UINT32_MAX / 4) return CAIRN_ENOMEM;
    cap *= 2;
  }
}

static int shard_grow(struct shard *s) {
  uint32_t cap = s->cap < SHARD_CAP_MIN ? SHARD_CAP_MIN : s->cap;
  if (s->cap >= SHARD_CAP_MIN) {
    if (cap > UINT32_MAX / 4) return CAIRN_ENOMEM;
    cap += cap / 2;
  }
  return shard_resize(s, cap);
}

/* Insert e, whose key is absent, before the first greater h32.  Returns
 * false when the run would reach the sentinel: the caller grows. */
static bool shard_insert(struct shard *s, struct entry *e) {
  slot_t *a = s->slots;
  uint32_t h = e->h32;
  size_t i = home_of(h >> TAG_SHIFT, s->cap);
  while (a[i] && slot_cmp(a[i], h) <= 0) i++;
  size_t j = i;
  while (a[j]) j++;
  if (j >= (size_t)s->nslots - 1) return false;
  memmove(&a[i + 1], &a[i], (j - i) * sizeof *a);
  a[i] = slot_make(e);
  return true;
}

/* The slot holding this key, or -1. */
static ptrdiff_t shard_find(const struct shard *s, uint32_t h,
                            const void *key, size_t klen) {
  if (!s->slots) return -1;
  const slot_t *a = s->slots;
  for (size_t i = home_of(h >> TAG_SHIFT, s->cap);; i++) {
    if (!a[i]) return -1;
    int c = slot_cmp(a[i], h);
    if (c > 0) return -1;
    if (c == 0 && key_eq(slot_entry(a[i]), key, klen)) return (ptrdiff_t)i;
  }
}

/* Empty slot i, pulling back the displaced entries after it. */
static void shard_delete_at(struct shard *s, size_t i) {
  slot_t *a = s->slots;
  size_t k = i + 1;
  while (a[k] && slot_home(a[k], s->cap) < k) k++;
  memmove(&a[i], &a[i + 1], (k - i - 1) * sizeof *a);
  a[k - 1] = 0;
}

/* ------------------------------------------------------------------------
 * Table
 */

int table_new(struct table **out) {
  struct table *t;
  if (posix_memalign((void **)&t, 64, sizeof *t) != 0) return CAIRN_ENOMEM;
  memset(t, 0, sizeof *t);
  pthread_rwlockattr_t attr;
  pthread_rwlockattr_init(&attr);
  /* Readers far outnumber writers; without this a steady read load can
   * starve a writer (glibc prefers readers by default). */
  pthread_rwlockattr_setkind_np(&attr,
                                PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  for (unsigned i = 0; i < TABLE_SHARDS; i++)
    cairn_assert(pthread_rwlock_init(&t->shards[i].lock, &attr) == 0);
  pthread_rwlockattr_destroy(&attr);
  *out = t;
  return 0;
}

void table_free(struct table *t) {
  if (!t) return;
  for (unsigned i = 0; i < TABLE_SHARDS; i++) {
    struct shard *s = &t->shards[i];
    for (size_t k = 0; k < s->nslots; k++)
      if (s->slots[k]) entry_free(slot_entry(s->slots[k]));
    free(s->slots);
    pthread_rwlock_destroy(&s->lock);
  }
  free(t);
}

uint64_t table_hash(const void *key, size_t klen) { return hash64(key, klen); }

unsigned table_shard(uint64_t hash) {
  return (unsigned)(hash & (TABLE_SHARDS - 1));
}

void table_rdlock(struct table *t, unsigned shard) {
  cairn_assert(pthread_rwlock_rdlock(&t->shards[shard].lock) == 0);
}

void table_wrlock(struct table *t, unsigned shard) {
  cairn_assert(pthread_rwlock_wrlock(&t->shards[shard].lock) == 0);
}

void table_unlock(struct table *t, unsigned shard) {
  cairn_assert(pthread_rwlock_unlock(&t->shards[shard].lock) == 0);
}

struct entry *table_find(struct table *t, uint64_t hash, const void *key,
                         size_t klen) {
  const struct shard *s = &t->shards[table_shard(hash)];
  ptrdiff_t i = shard_find(s, (uint32_t)(hash >> 32), key, klen);
  return i < 0 ? NULL : slot_entry(s->slots[i]);
}

/* Entries the expiry sweep has business with. */
static int mortal(const struct entry *e) {
  return (entry_flags(e) & (ENTRY_F_EXPIRE | ENTRY_F_IDLE | ENTRY_F_TOMB)) != 0;
}

uint64_t table_mortal(struct table *t, unsigned shard) {
  return __atomic_load_n(&t->shards[shard].mortal, __ATOMIC_RELAXED);
}

int table_put(struct table *t, uint64_t hash, struct entry *e) {
  struct shard *s = &t->shards[table_shard(hash)];
  cairn_assert(e->h32 == (uint32_t)(hash >> 32));
  ptrdiff_t i = shard_find(s, e->h32, entry_key(e), entry_klen(e));
  if (i >= 0) {
    struct entry *old = slot_entry(s->slots[i]);
    stat_add(&s->bytes, (int64_t)entry_bytes(e) - (int64_t)entry_bytes(old));
    stat_add(&s->mortal, mortal(e) - mortal(old));
    s->slots[i] = slot_make(e);
    entry_free(old);
    return 0;
  }
  if ((s->count + 1) * 100 > (uint64_t)s->cap * LOAD_MAX_PCT) {
    int rc = shard_grow(s);
    if (rc < 0) return rc;
  }
  while (!shard_insert(s, e)) {
    int rc = shard_grow(s);
    if (rc < 0) return rc;
  }
  stat_add(&s->count, 1);
  stat_add(&s->bytes, (int64_t)entry_bytes(e));
  stat_add(&s->mortal, mortal(e));
  return 0;
}

void table_resized(struct table *t, uint64_t hash, const struct entry *e,
                   size_t old_bytes) {
  struct shard *s = &t->shards[table_shard(hash)];
  stat_add(&s->bytes, (int64_t)entry_bytes(e) - (int64_t)old_bytes);
}

struct entry *table_remove(struct table *t, uint64_t hash, const void *key,
                           size_t klen) {
  struct shard *s = &t->shards[table_shard(hash)];
  ptrdiff_t i = shard_find(s, (uint32_t)(hash >> 32), key, klen);
  if (i < 0) return NULL;
  struct entry *e = slot_entry(s->slots[i]);
  shard_delete_at(s, (size_t)i);
  stat_add(&s->count, -1);
  stat_add(&s->bytes, -(int64_t)entry_bytes(e));
  stat_add(&s->mortal, -mortal(e));
  if (s->cap > SHARD_CAP_MIN && s->count * 100 < (uint64_t)s->cap * LOAD_MIN_PCT) {
    /* Back to half full.  Failing to shrink only wastes memory. */
    uint64_t cap = MAX(s->count * 2, (uint64_t)SHARD_CAP_MIN);
    (void)shard_resize(s, (uint32_t)cap);
  }
  return e;
}

int table_walk(struct table *t, unsigned shard, uint64_t *from, size_t max,
               table_visit_fn fn, void *arg) {
  const struct shard *s = &t->shards[shard];
  if (*from > UINT32_MAX || !s->slots) {
    *from = 1ull << 32;
    return 0;
  }
  uint32_t h = (uint32_t)*from, last = 0;
  size_t seen = 0, k;
  bool stop = false;
  /* Entries with h32 >= h sit at or after home(h); the few before them
   * there are displaced smaller ones, told apart by their tags.  The
   * entries are scattered in memory and fn reads each: fetching a few
   * slots ahead overlaps those cache misses instead of taking them one
   * after another (the eviction hand's walk is mostly these misses). */
  for (k = home_of(h >> TAG_SHIFT, s->cap); k < s->nslots; k++) {
    if (k + WALK_PREFETCH < s->nslots && s->slots[k + WALK_PREFETCH])
      __builtin_prefetch(slot_entry(s->slots[k + WALK_PREFETCH]));
    if (!s->slots[k] || slot_cmp(s->slots[k], h) < 0) continue;
    struct entry *e = slot_entry(s->slots[k]);
    if (seen && (seen >= max || stop) && e->h32 != last) break;
    if (fn(arg, e)) stop = true;
    seen++;
    last = e->h32;
  }
  if (!seen) {
    *from = 1ull << 32;
    return 0;
  }
  /* Stopped at a greater h32: more to come.  Else the shard is done. */
  bool more = k < s->nslots;
  *from = more ? (uint64_t)last + 1 : 1ull << 32;
  return more;
}

uint64_t table_count(struct table *t) {
  uint64_t n = 0;
  for (unsigned i = 0; i < TABLE_SHARDS; i++)
    n += __atomic_load_n(&t->shards[i].count, __ATOMIC_RELAXED);
  return n;
}

uint64_t table_bytes(struct table *t) {
  uint64_t n = sizeof *t;
  for (unsigned i = 0; i < TABLE_SHARDS; i++)
    n += __atomic_load_n(&t->shards[i].bytes, __ATOMIC_RELAXED);
  return n;
}

/* ------------------------------------------------------------------------
 * Checks
 */

static int shard_check(const struct shard *s) {
  if (!s->slots) return (s->count || s->bytes || s->cap) ? -1 : 0;
  if (s->nslots != (size_t)s->cap + tail_of(s->cap) + 1) return -2;
  if (s->slots[s->nslots - 1]) return -3; /* the sentinel */
  uint64_t n = 0, bytes = (uint64_t)s->nslots * sizeof *s->slots;
  ptrdiff_t last_empty = -1;
  uint32_t prev = 0;
  for (size_t k = 0; k < s->nslots; k++) {
    if (!s->slots[k]) {
      last_empty = (ptrdiff_t)k;
      continue;
    }
    const struct entry *e = slot_entry(s->slots[k]);
    if (slot_tag(s->slots[k]) != e->h32 >> TAG_SHIFT) return -9;
    size_t home = home_of(e->h32 >> TAG_SHIFT, s->cap);
    if (home > k) return -4;                    /* before its home */
    if (last_empty >= (ptrdiff_t)home) return -5; /* a hole in its probe */
    if (n && e->h32 < prev) return -6;          /* out of order */
    prev = e->h32;
    n++;
    bytes += entry_bytes(e);
  }
  if (n != s->count) return -7;
  if (bytes != s->bytes) return -8;
  return 0;
}

int table_check(struct table *t) {
  for (unsigned i = 0; i < TABLE_SHARDS; i++) {
    table_rdlock(t, i);
    int rc = shard_check(&t->shards[i]);
    table_unlock(t, i);
    if (rc < 0) return rc;
  }
  return 0;
}
