/*
 * store.c - the checkpointed state in LMDB.  Layouts of the keys and
 * values are in store.h.
 *
 * Growing the map.  LMDB cannot resize a map under a live transaction: a
 * write that hits MDB_MAP_FULL poisons its transaction, which must be
 * aborted before mdb_env_set_mapsize, and no read transaction of this
 * process may be open at that moment.  So every operation applied in the
 * write transaction is also kept, as a copy, in a redo list; on
 * MDB_MAP_FULL the transaction is aborted, the map doubled (up to
 * map_bytes_max), a new transaction begun, the redo list re-applied and
 * the failed step retried.  No read transaction may be open then: each
 * lives in a read slot and is used only under the slot's mutex, and the
 * resize holds every slot's mutex (slots_lock).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "limits.h"
#include "hash.h"
#include "record.h"
#include "store.h"
#include "util.h"

#define STORE_MAP_DEFAULT     (64ull << 20)
#define STORE_MAP_MAX_DEFAULT (1ull << 40)
#define STORE_READERS_DEFAULT 126u
#define STORE_MAXDBS          8u
#define STORE_KEY_BUF         512u /* > STORE_KEY_LIMIT */
#define DKEY_FIXED            6u   /* ns_len, shard, h32 */
#define EKEY_PREFIX           8u   /* the deadline in an expiry key */
#define DKEY_MAX              (STORE_KEY_LIMIT - EKEY_PREFIX)
#define LKEY_TAIL             9u   /* the marker and the hash of a stand-in */
#define LKEY_MARKER           0xffu
#define VARINT_MAX            10u  /* bytes of a 64-bit varint */

_Static_assert(DKEY_FIXED + NS_NAME_MAX + LKEY_TAIL + 1 <= DKEY_MAX,
               "a stand-in keeps at least one byte of the key");
_Static_assert(STORE_KEY_LIMIT < STORE_KEY_BUF, "a key fits the buffer");
_Static_assert(STORE_VAL_HDR_MAX >= 2 + 4 * VARINT_MAX + 5, "the header bound");
_Static_assert(KEY_MAX < UINT32_MAX - VALUE_MAX - STORE_VAL_HDR_MAX,
               "a long key and the value fit one LMDB value");
_Static_assert(TABLE_SHARDS <= 256, "a shard fits the key's u8");

struct store {
  MDB_env *env;
  MDB_dbi meta, data, expiry;
  const struct logger *log;
  char *dir;
  uint64_t map_bytes;       /* current map size; changed by the writer only */
  uint64_t map_bytes_max;
  pthread_mutex_t write_mu; /* held from store_begin to commit/abort */
  uint64_t ckpt_lsn, epoch; /* __atomic: set at open and at commit */
  /* Read transactions kept between calls, one per slot.  Beginning one
   * takes LMDB's reader-table mutex; renewing a reset one is cheaper, and
   * reusing one whose snapshot is still the newest costs nothing.  So a
   * read ends by leaving its transaction open while no write transaction
   * has committed since it began (its gen is the store's), and every
   * commit resets the idle ones (reads_invalidate): none outlives the
   * commit after its snapshot by more than the one call using it, so none
   * holds back LMDB's page reuse, and none shows a reader a state older
   * than the newest commit.  Each thread starts at a slot of its own, on
   * a cache line of its own, so concurrent readers write no shared
   * memory. */
  struct rslot *slots; /* STORE_READ_SLOTS */
  /* A resize in progress: new reads wait on resize_mu, which the resize
   * holds, rather than race it for the slots (a mutex is not fair: a
   * reader relocking its slot at once could keep the resize waiting). */
  int resizing; /* __atomic */
  pthread_mutex_t resize_mu;
  uint64_t gen; /* __atomic: write transactions committed, + 1 */
};

/* A read slot: one kept read transaction, lent to one reader at a time. */
struct rslot {
  pthread_mutex_t mu;
  MDB_txn *txn; /* NULL: none yet */
  uint64_t gen; /* the commit count its snapshot saw; 0: reset */
} __attribute__((aligned(64)));

static struct rslot *slot_take(struct store *s);
static void slots_drain(struct store *s);

/* ------------------------------------------------------------------------
 * Errors.
 * --------------------------------------------------------------------- */

/* Map an LMDB (or errno) code to ours, with a log line saying what failed. */
static int store_err(const struct store *s, int rc, const char *what) {
  int err;
  switch (rc) {
  case MDB_CORRUPTED:
  case MDB_PAGE_NOTFOUND:
  case MDB_INVALID:
    err = CAIRN_ECORRUPT;
    break;
  case MDB_VERSION_MISMATCH:
    err = CAIRN_EVERFMT;
    break;
  case MDB_MAP_FULL: /* only reaches here once the map is at its cap */
  case MDB_TXN_FULL:
  case ENOSPC:
    err = CAIRN_EFULL;
    break;
  case ENOMEM:
    err = CAIRN_ENOMEM;
    break;
  default:
    err = CAIRN_EIO;
  }
  log_error(s->log, "store %s: %s: %s", s->dir, what, mdb_strerror(rc));
  return err;
}

/* ------------------------------------------------------------------------
 * Keys and values.
 * --------------------------------------------------------------------- */

/* Big-endian, so that LMDB's memcmp order is numeric order. */
static void put_be32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (24 - 8 * i));
}
static void put_be64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (56 - 8 * i));
}
static uint32_t get_be32(const uint8_t *p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v = (v << 8) | p[i];
  return v;
}
static uint64_t get_be64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
  return v;
}

struct dkey {
  const char *ns;
  size_t ns_len;
  unsigned shard;
  uint32_t h32;
  const void *key;
  size_t klen;
};

/* The longest key stored as itself in a namespace of ns_len bytes: one
 * byte short of filling DKEY_MAX, so that only stand-ins fill it. */
static size_t short_klen_max(size_t ns_len) {
  return DKEY_MAX - DKEY_FIXED - ns_len - 1;
}

/* How many bytes of a long key its stand-in keeps. */
static size_t lkey_prefix(size_t ns_len) {
  return DKEY_MAX - DKEY_FIXED - ns_len - LKEY_TAIL;
}

static bool key_is_long(size_t ns_len, size_t klen) {
  return klen > short_klen_max(ns_len);
}

/* Write the stand-in of a long key (short_klen_max + 1 bytes) at dst. */
static void standin_encode(uint8_t *dst, size_t ns_len, const void *key,
                           size_t klen) {
  size_t p = lkey_prefix(ns_len);
  memcpy(dst, key, p);
  dst[p] = LKEY_MARKER;
  put_be64(dst + p + 1, hash64(key, klen));
}

/* Whether the stand-in sb, read from disk, is that of key. */
static bool standin_matches(const uint8_t *sb, size_t ns_len,
                            const void *key, size_t klen) {
  uint8_t mine[STORE_KEY_BUF];
  if (!key_is_long(ns_len, klen)) return false;
  standin_encode(mine, ns_len, key, klen);
  return memcmp(mine, sb, short_klen_max(ns_len) + 1) == 0;
}

static size_t dkey_len(const struct dkey *k) {
  size_t part = key_is_long(k->ns_len, k->klen) ? short_klen_max(k->ns_len) + 1
                                                : k->klen;
  return DKEY_FIXED + k->ns_len + part;
}

/* Encode k at dst (STORE_KEY_BUF bytes); returns the length.  klen 0
 * gives the prefix that starts a walk. */
static size_t dkey_encode(uint8_t *dst, const struct dkey *k) {
  cairn_assert(k->ns_len >= 1 && k->ns_len <= NS_NAME_MAX);
  cairn_assert(k->shard < 256 && k->klen <= KEY_MAX);
  dst[0] = (uint8_t)k->ns_len;
  memcpy(dst + 1, k->ns, k->ns_len);
  dst[1 + k->ns_len] = (uint8_t)k->shard;
  put_be32(dst + 2 + k->ns_len, k->h32);
  uint8_t *part = dst + DKEY_FIXED + k->ns_len;
  if (key_is_long(k->ns_len, k->klen))
    standin_encode(part, k->ns_len, k->key, k->klen);
  else if (k->klen)
    memcpy(part, k->key, k->klen);
  return dkey_len(k);
}

/* Decode a data key read from disk (pointers into p).  *is_long says
 * whether k->key is a stand-in rather than the key. */
static int dkey_decode(const uint8_t *p, size_t len, struct dkey *k,
                       bool *is_long) {
  if (len < DKEY_FIXED + 2) return CAIRN_ECORRUPT;
  size_t ns_len = p[0];
  if (ns_len < 1 || ns_len > NS_NAME_MAX || DKEY_FIXED + ns_len >= len)
    return CAIRN_ECORRUPT;
  size_t part = len - DKEY_FIXED - ns_len;
  const uint8_t *key = p + DKEY_FIXED + ns_len;
  bool lk = part == short_klen_max(ns_len) + 1;
  if (part > short_klen_max(ns_len) + 1 ||
      (lk && key[lkey_prefix(ns_len)] != LKEY_MARKER))
    return CAIRN_ECORRUPT;
  k->ns = (const char *)p + 1;
  k->ns_len = ns_len;
  k->shard = p[1 + ns_len];
  k->h32 = get_be32(p + 2 + ns_len);
  k->key = key;
  k->klen = part;
  *is_long = lk;
  return 0;
}

/* The entry's deadline: min(expire_at, last_access + max_idle); 0 if it
 * has neither.  Saturates rather than wrapping on absurd inputs. */
static int64_t val_deadline(const struct store_val *v) {
  int64_t d = v->expire_at_ms > 0 ? v->expire_at_ms : 0;
  if (v->max_idle_ms) {
    int64_t base = v->last_access_ms > 0 ? v->last_access_ms : 0;
    int64_t idle = v->max_idle_ms > (uint64_t)(INT64_MAX - base)
                       ? INT64_MAX
                       : base + (int64_t)v->max_idle_ms;
    if (!d || idle < d) d = idle;
  }
  return d;
}

/* Unsigned LEB128: 7 bits a byte, low first, at most VARINT_MAX bytes. */
static size_t varint_len(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

static uint8_t *varint_put(uint8_t *p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  *p++ = (uint8_t)v;
  return p;
}

/* Read a varint from [*p, end) into *v and advance *p; -1 if it runs past
 * end, is longer than VARINT_MAX bytes, overflows 64 bits or carries a
 * redundant zero byte (each value has one encoding). */
static int varint_get(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  uint64_t x = 0;
  for (unsigned i = 0, shift = 0; i < VARINT_MAX; i++, shift += 7) {
    if (*p + i >= end) return -1;
    uint8_t b = (*p)[i];
    if (i == VARINT_MAX - 1 && b > 1) return -1;
    x |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      if (i && !b) return -1;
      *p += i + 1;
      *v = x;
      return 0;
    }
  }
  return -1;
}

/* The header fields v carries beyond flags, type and version. */
static unsigned val_flags(const struct store_val *v, size_t lklen) {
  return (lklen ? STORE_VF_LONGKEY : 0) |
         (v->expire_at_ms ? STORE_VF_EXPIRE : 0) |
         (v->max_idle_ms ? STORE_VF_IDLE : 0) |
         (v->last_access_ms ? STORE_VF_ACCESS : 0);
}

/* The stored size of v; lklen is the long key it carries (0: none). */
static size_t val_len(const struct store_val *v, size_t lklen) {
  unsigned f = val_flags(v, lklen);
  size_t n = 2 + varint_len(v->version);
  if (f & STORE_VF_EXPIRE) n += varint_len((uint64_t)v->expire_at_ms);
  if (f & STORE_VF_IDLE) n += varint_len(v->max_idle_ms);
  if (f & STORE_VF_ACCESS) n += varint_len((uint64_t)v->last_access_ms);
  if (lklen) n += varint_len(lklen) + lklen;
  return n + v->len;
}

static void val_encode(uint8_t *dst, const struct store_val *v,
                       const void *lkey, size_t lklen) {
  unsigned f = val_flags(v, lklen);
  dst[0] = (uint8_t)f;
  dst[1] = v->type;
  uint8_t *p = varint_put(dst + 2, v->version);
  if (f & STORE_VF_EXPIRE) p = varint_put(p, (uint64_t)v->expire_at_ms);
  if (f & STORE_VF_IDLE) p = varint_put(p, v->max_idle_ms);
  if (f & STORE_VF_ACCESS) p = varint_put(p, (uint64_t)v->last_access_ms);
  if (lklen) {
    p = varint_put(p, lklen);
    memcpy(p, lkey, lklen);
    p += lklen;
  }
  if (v->len) memcpy(p, v->data, v->len);
}

/* A stored value, decoded.  v.data and key point into the stored bytes;
 * key is NULL unless the value carries a long key. */
struct sval {
  struct store_val v;
  const uint8_t *key;
  size_t klen;
};

/* Read the optional field of flag bit from [*p, end): 0 when absent; a
 * present one must not be 0 (the writer leaves zeros out). */
static int val_field(unsigned flags, unsigned bit, const uint8_t **p,
                     const uint8_t *end, uint64_t *v) {
  *v = 0;
  if (!(flags & bit)) return 0;
  return varint_get(p, end, v) != 0 || *v == 0 ? -1 : 0;
}

/* Decode a stored value's header and long key, if any. */
static int val_decode(const struct store *s, const void *buf, size_t len,
                      struct sval *out) {
  const uint8_t *b = buf, *end = b + len, *p = b + 2;
  struct store_val *v = &out->v;
  uint64_t expire, access, lk = 0;
  unsigned f = len >= 3 ? b[0] : ~0u;
  int bad = (f & ~STORE_VF_ALL) != 0 || varint_get(&p, end, &v->version) ||
            val_field(f, STORE_VF_EXPIRE, &p, end, &expire) ||
            val_field(f, STORE_VF_IDLE, &p, end, &v->max_idle_ms) ||
            val_field(f, STORE_VF_ACCESS, &p, end, &access) ||
            val_field(f, STORE_VF_LONGKEY, &p, end, &lk) ||
            lk > KEY_MAX || lk > (size_t)(end - p);
  if (bad) {
    log_error(s->log, "store %s: malformed value of %zu bytes in \"data\"",
              s->dir, len);
    return CAIRN_ECORRUPT;
  }
  v->type = b[1];
  v->expire_at_ms = (int64_t)expire;
  v->last_access_ms = (int64_t)access;
  out->key = lk ? p : NULL;
  out->klen = lk;
  p += lk;
  v->data = (void *)p;
  v->len = (size_t)(end - p);
  return 0;
}

/* Whether the value sv, stored under the data key of (ns_len, key, klen),
 * is that key's: 0, CAIRN_ENOTFOUND (another long key with the same
 * stand-in) or CAIRN_ECORRUPT (the value's form disagrees with the key's). */
static int val_holds(const struct store *s, const struct sval *sv,
                     size_t ns_len, const void *key, size_t klen) {
  if (key_is_long(ns_len, klen) != (sv->key != NULL)) {
    log_error(s->log, "store %s: a value in \"data\" disagrees with the form "
              "of its key", s->dir);
    return CAIRN_ECORRUPT;
  }
  if (sv->key && (sv->klen != klen || memcmp(sv->key, key, klen) != 0))
    return CAIRN_ENOTFOUND;
  return 0;
}

/* Decode the "data" entry (k, d) read from disk: *dk gets the full key
 * (pointing into k or d) and *v the value.  A long key must be the one
 * its stand-in names. */
static int entry_decode(const struct store *s, const MDB_val *k,
                        const MDB_val *d, struct dkey *dk,
                        struct store_val *v) {
  bool is_long;
  struct sval sv;
  if (dkey_decode(k->mv_data, k->mv_size, dk, &is_long) != 0) {
    log_error(s->log, "store %s: malformed key in \"data\"", s->dir);
    return CAIRN_ECORRUPT;
  }
  int rc = val_decode(s, d->mv_data, d->mv_size, &sv);
  if (rc) return rc;
  if (is_long != (sv.key != NULL) ||
      (is_long && !standin_matches(dk->key, dk->ns_len, sv.key, sv.klen))) {
    log_error(s->log, "store %s: a value in \"data\" disagrees with its key",
              s->dir);
    return CAIRN_ECORRUPT;
  }
  if (is_long) {
    dk->key = sv.key;
    dk->klen = sv.klen;
  }
  *v = sv.v;
  return 0;
}

/* The expiry-index key: deadline, then the data key. */
static MDB_val ekey_make(uint8_t *buf, int64_t deadline, const MDB_val *dk) {
  cairn_assert(EKEY_PREFIX + dk->mv_size <= STORE_KEY_LIMIT);
  put_be64(buf, (uint64_t)deadline);
  memcpy(buf + EKEY_PREFIX, dk->mv_data, dk->mv_size);
  return (MDB_val){.mv_size = EKEY_PREFIX + dk->mv_size, .mv_data = buf};
}

/* ------------------------------------------------------------------------
 * The meta database.
 * --------------------------------------------------------------------- */

static MDB_val str_val(const char *name) {
  return (MDB_val){.mv_size = strlen(name), .mv_data = (void *)name};
}

/* Read the u64 meta[name]; a missing or malformed one is corruption. */
static int meta_get_u64(const struct store *s, MDB_txn *txn,
                        const char *name, uint64_t *out) {
  MDB_val k = str_val(name), v;
  int rc = mdb_get(txn, s->meta, &k, &v);
  if (rc == MDB_NOTFOUND || (!rc && v.mv_size != 8)) {
    log_error(s->log, "store %s/data.mdb: meta \"%s\" missing or malformed",
              s->dir, name);
    return CAIRN_ECORRUPT;
  }
  if (rc) return store_err(s, rc, "read meta");
  *out = get_u64(v.mv_data);
  return 0;
}

/* Returns the raw LMDB code: MDB_MAP_FULL must reach the growth logic. */
static int meta_put_u64(const struct store *s, MDB_txn *txn,
                        const char *name, uint64_t val) {
  uint8_t buf[8];
  put_u64(buf, val);
  MDB_val k = str_val(name), v = {.mv_size = 8, .mv_data = buf};
  return mdb_put(txn, s->meta, &k, &v, 0);
}

/* Write the meta of a new store. */
static int meta_init(struct store *s, MDB_txn *txn) {
  uint8_t fmt[4];
  put_u32(fmt, STORE_FORMAT);
  MDB_val k = str_val("format"), v = {.mv_size = 4, .mv_data = fmt};
  int rc = mdb_put(txn, s->meta, &k, &v, 0);
  if (!rc) rc = meta_put_u64(s, txn, "ckpt_lsn", 0);
  if (!rc) rc = meta_put_u64(s, txn, "epoch", 0);
  return rc ? store_err(s, rc, "write meta") : 0;
}

/* Check the format of an existing store, or write a new one's meta; then
 * load ckpt_lsn and epoch. */
static int meta_load(struct store *s, MDB_txn *txn) {
  MDB_val k = str_val("format"), v;
  int rc = mdb_get(txn, s->meta, &k, &v);
  if (rc == MDB_NOTFOUND) {
    rc = meta_init(s, txn);
  } else if (rc) {
    return store_err(s, rc, "read meta");
  } else if (v.mv_size != 4) {
    log_error(s->log, "store %s/data.mdb: malformed format field", s->dir);
    return CAIRN_ECORRUPT;
  } else if (get_u32(v.mv_data) != STORE_FORMAT) {
    log_error(s->log, "store %s/data.mdb: format %u, this build reads %u",
              s->dir, get_u32(v.mv_data), STORE_FORMAT);
    return CAIRN_EVERFMT;
  }
  uint64_t lsn = 0, epoch = 0;
  if (!rc) rc = meta_get_u64(s, txn, "ckpt_lsn", &lsn);
  if (!rc) rc = meta_get_u64(s, txn, "epoch", &epoch);
  if (rc) return rc;
  __atomic_store_n(&s->ckpt_lsn, lsn, __ATOMIC_RELEASE);
  __atomic_store_n(&s->epoch, epoch, __ATOMIC_RELEASE);
  return 0;
}

/* ------------------------------------------------------------------------
 * Opening and closing.
 * --------------------------------------------------------------------- */

static int locks_init(struct store *s) {
  s->slots = aligned_alloc(_Alignof(struct rslot),
                           STORE_READ_SLOTS * sizeof *s->slots);
  if (!s->slots) return CAIRN_ENOMEM;
  memset(s->slots, 0, STORE_READ_SLOTS * sizeof *s->slots);
  for (unsigned i = 0; i < STORE_READ_SLOTS; i++)
    pthread_mutex_init(&s->slots[i].mu, NULL);
  pthread_mutex_init(&s->write_mu, NULL);
  pthread_mutex_init(&s->resize_mu, NULL);
  s->gen = 1;
  return 0;
}

static int env_open(struct store *s, const struct store_config *cfg) {
  if (mkdir(s->dir, 0755) != 0 && errno != EEXIST) {
    int err = errno;
    log_error(s->log, "store %s: mkdir: %s", s->dir, strerror(err));
    return -err;
  }
  int rc = mdb_env_create(&s->env);
  if (rc) return store_err(s, rc, "mdb_env_create");
  unsigned readers = cfg->max_readers ? cfg->max_readers
                                      : STORE_READERS_DEFAULT;
  rc = mdb_env_set_maxdbs(s->env, STORE_MAXDBS);
  if (!rc) rc = mdb_env_set_maxreaders(s->env, readers);
  if (!rc) rc = mdb_env_set_mapsize(s->env, s->map_bytes);
  /* Read transactions are per call and may run on any thread (NOTLS);
   * lookups are random, so readahead only wastes the page cache. */
  if (!rc) rc = mdb_env_open(s->env, s->dir, MDB_NOTLS | MDB_NORDAHEAD, 0644);
  if (rc) return store_err(s, rc, "mdb_env_open");
  /* The layout of long keys is fixed by STORE_KEY_LIMIT, not by the
   * build, so that a store moves between LMDB builds. */
  int key_max = mdb_env_get_maxkeysize(s->env);
  if (key_max < (int)STORE_KEY_LIMIT) {
    log_error(s->log, "store %s: this LMDB takes keys of %d bytes, the "
              "format needs %u", s->dir, key_max, STORE_KEY_LIMIT);
    return CAIRN_EVERFMT;
  }
  int dead = 0;
  rc = mdb_reader_check(s->env, &dead);
  if (rc) return store_err(s, rc, "mdb_reader_check");
  if (dead)
    log_info(s->log, "store %s: cleared %d stale reader%s", s->dir, dead,
             dead == 1 ? "" : "s");
  /* An existing store may be larger than asked for: LMDB keeps its size. */
  MDB_envinfo ei;
  mdb_env_info(s->env, &ei);
  s->map_bytes = ei.me_mapsize;
  return 0;
}

static int dbs_open(struct store *s) {
  MDB_txn *txn;
  int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
  if (rc) return store_err(s, rc, "begin");
  rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta);
  if (!rc) rc = mdb_dbi_open(txn, "data", MDB_CREATE, &s->data);
  if (!rc) rc = mdb_dbi_open(txn, "expiry", MDB_CREATE, &s->expiry);
  if (rc) {
    mdb_txn_abort(txn);
    return store_err(s, rc, "mdb_dbi_open");
  }
  rc = meta_load(s, txn);
  if (rc) {
    mdb_txn_abort(txn);
    return rc;
  }
  rc = mdb_txn_commit(txn);
  return rc ? store_err(s, rc, "commit") : 0;
}

int store_open(const struct store_config *cfg, struct store **out) {
  cairn_assert(cfg && cfg->dir && out);
  struct store *s = calloc(1, sizeof *s);
  if (!s) return CAIRN_ENOMEM;
  s->log = cfg->log;
  s->dir = strdup(cfg->dir);
  if (!s->dir || locks_init(s) != 0) {
    free(s->dir);
    free(s->slots);
    free(s);
    return CAIRN_ENOMEM;
  }
  s->map_bytes_max = cfg->map_bytes_max ? cfg->map_bytes_max
                                        : STORE_MAP_MAX_DEFAULT;
  s->map_bytes = cfg->map_bytes ? cfg->map_bytes : STORE_MAP_DEFAULT;
  s->map_bytes = MIN(s->map_bytes, s->map_bytes_max);
  int rc = env_open(s, cfg);
  if (!rc) rc = dbs_open(s);
  if (rc) {
    store_close(s);
    return rc;
  }
  *out = s;
  return 0;
}

/* No transaction may be open (a store_txn is a bug; read ones never are). */
void store_close(struct store *s) {
  if (!s) return;
  slots_drain(s);
  if (s->env) mdb_env_close(s->env);
  for (unsigned i = 0; i < STORE_READ_SLOTS; i++)
    pthread_mutex_destroy(&s->slots[i].mu);
  pthread_mutex_destroy(&s->write_mu);
  pthread_mutex_destroy(&s->resize_mu);
  free(s->slots);
  free(s->dir);
  free(s);
}

uint64_t store_ckpt_lsn(struct store *s) {
  return __atomic_load_n(&s->ckpt_lsn, __ATOMIC_ACQUIRE);
}

uint64_t store_epoch(struct store *s) {
  return __atomic_load_n(&s->epoch, __ATOMIC_ACQUIRE);
}

size_t store_klen_max(const struct store *s, size_t ns_len) {
  (void)s;
  cairn_assert(ns_len >= 1 && ns_len <= NS_NAME_MAX);
  return short_klen_max(ns_len);
}

/* ------------------------------------------------------------------------
 * A consistent copy of the whole environment, for a follower's full sync.
 * --------------------------------------------------------------------- */

int store_copy_fd(struct store *s, int fd) {
  /* The copy runs its own read transaction, so the map must not be
   * resized meanwhile: holding a slot, it makes a resize wait. */
  struct rslot *r = slot_take(s);
  int rc = mdb_env_copyfd2(s->env, fd, MDB_CP_COMPACT);
  pthread_mutex_unlock(&r->mu);
  return rc ? store_err(s, rc, "copy") : 0;
}

/* ------------------------------------------------------------------------
 * Reading: one short read transaction per call.
 * --------------------------------------------------------------------- */

/* Lock and return a read slot: the calling thread's own if it is free,
 * else any free one, else wait for its own. */
static struct rslot *slot_take(struct store *s) {
  static unsigned next_home;
  static __thread unsigned home = UINT_MAX;
  if (home == UINT_MAX)
    home = __atomic_fetch_add(&next_home, 1, __ATOMIC_RELAXED) %
           STORE_READ_SLOTS;
  if (__atomic_load_n(&s->resizing, __ATOMIC_ACQUIRE)) {
    pthread_mutex_lock(&s->resize_mu);
    pthread_mutex_unlock(&s->resize_mu);
  }
  for (unsigned i = 0; i < STORE_READ_SLOTS; i++) {
    struct rslot *r = &s->slots[(home + i) % STORE_READ_SLOTS];
    if (pthread_mutex_trylock(&r->mu) == 0) return r;
  }
  pthread_mutex_lock(&s->slots[home].mu);
  return &s->slots[home];
}

/* A read transaction whose snapshot is at least as new as the last
 * commit before this call, in a locked slot (*out).  The commit count is
 * read before the snapshot is taken, so a commit in between makes the
 * count stale, never the snapshot: at worst the transaction is renewed
 * once more than needed. */
static int read_begin(struct store *s, struct rslot **out) {
  struct rslot *r = slot_take(s);
  uint64_t gen = __atomic_load_n(&s->gen, __ATOMIC_ACQUIRE);
  if (r->txn && r->gen == gen) {
    *out = r;
    return 0;
  }
  if (r->gen) mdb_txn_reset(r->txn);
  r->gen = 0;
  int rc = r->txn ? mdb_txn_renew(r->txn)
                  : mdb_txn_begin(s->env, NULL, MDB_RDONLY, &r->txn);
  if (rc) {
    if (r->txn) mdb_txn_abort(r->txn);
    r->txn = NULL;
    pthread_mutex_unlock(&r->mu);
    return store_err(s, rc, "begin read");
  }
  r->gen = gen;
  *out = r;
  return 0;
}

/* End a read: leave the transaction open if nothing has committed since
 * it began, else reset it (releasing its snapshot). */
static void read_end(struct store *s, struct rslot *r) {
  if (r->gen != __atomic_load_n(&s->gen, __ATOMIC_ACQUIRE)) {
    mdb_txn_reset(r->txn);
    r->gen = 0;
  }
  pthread_mutex_unlock(&r->mu);
}

/* A write transaction committed: reads from now on must see it, and the
 * idle snapshots, older now, must not hold back page reuse.  Reads in
 * progress finish on theirs and reset it in read_end. */
static void reads_invalidate(struct store *s) {
  __atomic_add_fetch(&s->gen, 1, __ATOMIC_RELEASE);
  for (unsigned i = 0; i < STORE_READ_SLOTS; i++) {
    struct rslot *r = &s->slots[i];
    if (pthread_mutex_trylock(&r->mu) != 0) continue;
    if (r->gen) {
      mdb_txn_reset(r->txn);
      r->gen = 0;
    }
    pthread_mutex_unlock(&r->mu);
  }
}

/* Hold every slot, so that no read transaction is in use, and free their
 * transactions (a map resize needs none open). */
static void slots_lock(struct store *s) {
  pthread_mutex_lock(&s->resize_mu);
  __atomic_store_n(&s->resizing, 1, __ATOMIC_RELEASE);
  for (unsigned i = 0; i < STORE_READ_SLOTS; i++)
    pthread_mutex_lock(&s->slots[i].mu);
  slots_drain(s);
}

static void slots_unlock(struct store *s) {
  for (unsigned i = 0; i < STORE_READ_SLOTS; i++)
    pthread_mutex_unlock(&s->slots[i].mu);
  __atomic_store_n(&s->resizing, 0, __ATOMIC_RELEASE);
  pthread_mutex_unlock(&s->resize_mu);
}

/* Free the kept read transactions.  None may be in use: the slots held
 * (slots_lock), or the store closing. */
static void slots_drain(struct store *s) {
  for (unsigned i = 0; i < STORE_READ_SLOTS; i++) {
    if (s->slots[i].txn) mdb_txn_abort(s->slots[i].txn);
    s->slots[i].txn = NULL;
    s->slots[i].gen = 0;
  }
}

/* Copy v's borrowed data into a NUL-terminated malloc'd buffer. */
static int val_own(struct store_val *v) {
  void *copy = malloc(v->len + 1);
  if (!copy) return CAIRN_ENOMEM;
  if (v->len) memcpy(copy, v->data, v->len);
  ((char *)copy)[v->len] = '\0';
  v->data = copy;
  return 0;
}

int store_read(struct store *s, const char *ns, size_t ns_len,
               unsigned shard, uint32_t h32, const void *key, size_t klen,
               store_read_fn fn, void *arg, uint64_t *ckpt_lsn) {
  cairn_assert(s && fn && klen >= 1);
  if (klen > KEY_MAX) return CAIRN_ENOTFOUND; /* never stored */
  uint8_t kb[STORE_KEY_BUF];
  struct dkey dk = {ns, ns_len, shard, h32, key, klen};
  MDB_val k = {.mv_size = dkey_encode(kb, &dk), .mv_data = kb}, d;
  struct rslot *r;
  int rc = read_begin(s, &r);
  if (rc) return rc;
  uint64_t lsn = 0;
  if (ckpt_lsn) rc = meta_get_u64(s, r->txn, "ckpt_lsn", &lsn);
  if (!rc) {
    int mrc = mdb_get(r->txn, s->data, &k, &d);
    rc = mrc == MDB_NOTFOUND ? CAIRN_ENOTFOUND
         : mrc               ? store_err(s, mrc, "get")
                             : 0;
  }
  struct sval sv;
  if (!rc) rc = val_decode(s, d.mv_data, d.mv_size, &sv);
  if (!rc) rc = val_holds(s, &sv, ns_len, key, klen);
  if (!rc && ckpt_lsn) *ckpt_lsn = lsn;
  if (!rc) rc = fn(arg, &sv.v);
  read_end(s, r);
  return rc;
}

static int val_take(void *arg, const struct store_val *v) {
  struct store_val *out = arg;
  *out = *v;
  return val_own(out);
}

int store_get(struct store *s, const char *ns, size_t ns_len,
              unsigned shard, uint32_t h32, const void *key, size_t klen,
              struct store_val *out, uint64_t *ckpt_lsn) {
  cairn_assert(out);
  return store_read(s, ns, ns_len, shard, h32, key, klen, val_take, out,
                    ckpt_lsn);
}

/* ------------------------------------------------------------------------
 * Writing: applying one operation.  These return raw LMDB codes, so that
 * MDB_MAP_FULL reaches the growth logic.
 * --------------------------------------------------------------------- */

enum { OP_PUT = 1, OP_DEL = 2 };

/* One applied operation, kept to be re-applied after a map resize. */
struct redo_op {
  int kind;
  size_t klen, vlen;
  uint8_t *buf; /* data key, then the encoded value (OP_PUT) or the long
                   key a stand-in names (OP_DEL of a long key; else none) */
};

struct store_txn {
  struct store *s;
  MDB_txn *txn;  /* NULL once LMDB has freed it */
  int err;       /* the error that killed the txn; sticky */
  struct redo_op *ops;
  size_t nops, cap;
};

/* Read the value stored under dk: 0, MDB_NOTFOUND or MDB_CORRUPTED. */
static int old_get(struct store_txn *t, MDB_val *dk, struct sval *old) {
  MDB_val d;
  int rc = mdb_get(t->txn, t->s->data, dk, &d);
  if (rc) return rc;
  return val_decode(t->s, d.mv_data, d.mv_size, old) ? MDB_CORRUPTED : 0;
}

/* Drop the expiry-index entry of old, the value stored under dk. */
static int expiry_unlink(struct store_txn *t, MDB_val *dk,
                         const struct store_val *old) {
  int64_t deadline = val_deadline(old);
  if (!deadline) return 0;
  uint8_t eb[STORE_KEY_BUF];
  MDB_val ek = ekey_make(eb, deadline, dk);
  int rc = mdb_del(t->txn, t->s->expiry, &ek, NULL);
  return rc == MDB_NOTFOUND ? 0 : rc; /* an index gap is left as it is */
}

static int apply_put(struct store_txn *t, const struct redo_op *op) {
  struct store *s = t->s;
  MDB_val k = {.mv_size = op->klen, .mv_data = op->buf};
  MDB_val d = {.mv_size = op->vlen, .mv_data = op->buf + op->klen};
  struct sval old, sv;
  int rc = old_get(t, &k, &old);
  if (!rc) rc = expiry_unlink(t, &k, &old.v);
  if (rc && rc != MDB_NOTFOUND) return rc;
  int bad = val_decode(s, d.mv_data, d.mv_size, &sv); /* we encoded it */
  cairn_assert(!bad);
  rc = mdb_put(t->txn, s->data, &k, &d, 0);
  int64_t deadline = val_deadline(&sv.v);
  if (rc || !deadline) return rc;
  uint8_t eb[STORE_KEY_BUF];
  MDB_val ek = ekey_make(eb, deadline, &k), empty = {0, NULL};
  return mdb_put(t->txn, s->expiry, &ek, &empty, 0);
}

/* A long key's delete leaves alone another key with the same stand-in. */
static int apply_del(struct store_txn *t, const struct redo_op *op) {
  MDB_val k = {.mv_size = op->klen, .mv_data = op->buf};
  struct sval old;
  int rc = old_get(t, &k, &old);
  if (rc == MDB_NOTFOUND) return 0;
  if (rc) return rc;
  if (op->vlen && (old.klen != op->vlen ||
                   memcmp(old.key, op->buf + op->klen, op->vlen) != 0))
    return 0;
  rc = expiry_unlink(t, &k, &old.v);
  if (rc) return rc;
  return mdb_del(t->txn, t->s->data, &k, NULL);
}

static int apply_op(struct store_txn *t, const void *arg) {
  const struct redo_op *op = arg;
  return op->kind == OP_PUT ? apply_put(t, op) : apply_del(t, op);
}

/* ------------------------------------------------------------------------
 * Writing: growth and retry.
 * --------------------------------------------------------------------- */

/* The txn ran out of map: drop it, double the map and begin a new one. */
static int txn_grow(struct store_txn *t) {
  struct store *s = t->s;
  if (t->txn) mdb_txn_abort(t->txn);
  t->txn = NULL;
  uint64_t old = s->map_bytes;
  if (old >= s->map_bytes_max) {
    log_error(s->log, "store %s: map full at its limit of %llu bytes",
              s->dir, (unsigned long long)s->map_bytes_max);
    return CAIRN_EFULL;
  }
  uint64_t size = old > s->map_bytes_max / 2 ? s->map_bytes_max : old * 2;
  slots_lock(s); /* no read txn may be open */
  int rc = mdb_env_set_mapsize(s->env, size);
  MDB_envinfo ei;
  mdb_env_info(s->env, &ei);
  slots_unlock(s);
  if (rc) return store_err(s, rc, "mdb_env_set_mapsize");
  s->map_bytes = ei.me_mapsize;
  log_info(s->log, "store %s: map grown from %llu to %llu bytes", s->dir,
           (unsigned long long)old, (unsigned long long)s->map_bytes);
  rc = mdb_txn_begin(s->env, NULL, 0, &t->txn);
  if (rc) {
    t->txn = NULL;
    return store_err(s, rc, "begin");
  }
  return 0;
}

static int txn_replay(struct store_txn *t) {
  for (size_t i = 0; i < t->nops; i++) {
    int rc = apply_op(t, &t->ops[i]);
    if (rc) return rc;
  }
  return 0;
}

/* Run step in the txn, growing the map and rebuilding the txn as often as
 * needed.  Bounded: each pass doubles the map or fails at the cap.  Any
 * failure kills the txn. */
static int txn_run(struct store_txn *t,
                   int (*step)(struct store_txn *, const void *),
                   const void *arg) {
  if (t->err) return t->err;
  int rc = step(t, arg);
  while (rc == MDB_MAP_FULL) {
    int err = txn_grow(t);
    if (err) return t->err = err;
    rc = txn_replay(t);
    if (!rc) rc = step(t, arg);
  }
  if (rc) return t->err = store_err(t->s, rc, "write");
  return 0;
}

/* ------------------------------------------------------------------------
 * Writing: the transaction.
 * --------------------------------------------------------------------- */

int store_begin(struct store *s, struct store_txn **out) {
  cairn_assert(s && out);
  struct store_txn *t = calloc(1, sizeof *t);
  if (!t) return CAIRN_ENOMEM;
  t->s = s;
  pthread_mutex_lock(&s->write_mu);
  int rc = mdb_txn_begin(s->env, NULL, 0, &t->txn);
  if (rc) {
    pthread_mutex_unlock(&s->write_mu);
    free(t);
    return store_err(s, rc, "begin");
  }
  *out = t;
  return 0;
}

/* Build op (copies of key and value) and make room to keep it. */
static int op_make(struct store_txn *t, struct redo_op *op, int kind,
                   const struct dkey *dk, const struct store_val *v) {
  if (t->nops == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 64;
    struct redo_op *ops = realloc(t->ops, cap * sizeof *ops);
    if (!ops) return CAIRN_ENOMEM;
    t->ops = ops;
    t->cap = cap;
  }
  size_t lklen = key_is_long(dk->ns_len, dk->klen) ? dk->klen : 0;
  op->kind = kind;
  op->klen = dkey_len(dk);
  op->vlen = v ? val_len(v, lklen) : lklen;
  op->buf = malloc(op->klen + op->vlen);
  if (!op->buf) return CAIRN_ENOMEM;
  dkey_encode(op->buf, dk);
  if (v)
    val_encode(op->buf + op->klen, v, dk->key, lklen);
  else if (lklen)
    memcpy(op->buf + op->klen, dk->key, lklen);
  return 0;
}

/* Refuse to put a long key whose stand-in holds another key (a 64-bit
 * hash collision between keys sharing their first bytes): overwriting it
 * would lose that key.  Nothing is applied; the txn lives on. */
static int put_check(struct store_txn *t, const struct dkey *dk) {
  if (!key_is_long(dk->ns_len, dk->klen)) return 0;
  uint8_t kb[STORE_KEY_BUF];
  MDB_val k = {.mv_size = dkey_encode(kb, dk), .mv_data = kb};
  struct sval old;
  if (old_get(t, &k, &old) != 0 || !old.key ||
      (old.klen == dk->klen && memcmp(old.key, dk->key, dk->klen) == 0))
    return 0; /* a missing or malformed old value is apply_put's concern */
  log_error(t->s->log, "store %s: a key of %zu bytes has the stand-in of "
            "another one of %zu bytes; not stored", t->s->dir, dk->klen,
            old.klen);
  return CAIRN_EINVAL;
}

/* Apply and keep one operation. */
static int txn_do(struct store_txn *t, int kind, const struct dkey *dk,
                  const struct store_val *v) {
  if (t->err) return t->err;
  if (dk->klen > KEY_MAX) {
    log_error(t->s->log, "store %s: key of %zu bytes is over the limit of %u",
              t->s->dir, dk->klen, KEY_MAX);
    return CAIRN_EINVAL;
  }
  if (kind == OP_PUT) {
    int rc = put_check(t, dk);
    if (rc) return rc;
  }
  struct redo_op op = {0};
  int rc = op_make(t, &op, kind, dk, v);
  if (!rc) rc = txn_run(t, apply_op, &op);
  if (rc) {
    free(op.buf);
    return t->err = rc;
  }
  t->ops[t->nops++] = op;
  return 0;
}

int store_put(struct store_txn *t, const char *ns, size_t ns_len,
              unsigned shard, uint32_t h32, const void *key, size_t klen,
              const struct store_val *v) {
  cairn_assert(t && v && klen >= 1 && v->len <= VALUE_MAX);
  struct dkey dk = {ns, ns_len, shard, h32, key, klen};
  return txn_do(t, OP_PUT, &dk, v);
}

int store_del(struct store_txn *t, const char *ns, size_t ns_len,
              unsigned shard, uint32_t h32, const void *key, size_t klen) {
  cairn_assert(t && klen >= 1);
  struct dkey dk = {ns, ns_len, shard, h32, key, klen};
  if (klen > KEY_MAX) return t->err; /* never stored */
  return txn_do(t, OP_DEL, &dk, NULL);
}

struct commit_arg {
  uint64_t ckpt_lsn, epoch;
  int meta_sync; /* 0: leave the meta page to the next commit's sync */
};

static int step_commit(struct store_txn *t, const void *arg) {
  const struct commit_arg *c = arg;
  int rc = meta_put_u64(t->s, t->txn, "ckpt_lsn", c->ckpt_lsn);
  if (!rc) rc = meta_put_u64(t->s, t->txn, "epoch", c->epoch);
  if (rc) return rc;
  /* The one writer (write_mu) is the only reader of the flag. */
  if (!c->meta_sync) mdb_env_set_flags(t->s->env, MDB_NOMETASYNC, 1);
  rc = mdb_txn_commit(t->txn);
  if (!c->meta_sync) mdb_env_set_flags(t->s->env, MDB_NOMETASYNC, 0);
  t->txn = NULL; /* freed by LMDB whether or not it committed */
  reads_invalidate(t->s); /* even on failure: it may have reached disk */
  return rc;
}

int store_commit_part(struct store_txn *t) {
  cairn_assert(t);
  struct store *s = t->s;
  struct commit_arg c = {__atomic_load_n(&s->ckpt_lsn, __ATOMIC_ACQUIRE),
                         __atomic_load_n(&s->epoch, __ATOMIC_ACQUIRE), 0};
  int rc = txn_run(t, step_commit, &c);
  store_abort(t);
  return rc;
}

int store_commit(struct store_txn *t, uint64_t ckpt_lsn, uint64_t epoch) {
  cairn_assert(t);
  struct store *s = t->s;
  struct commit_arg c = {ckpt_lsn, epoch, 1};
  int rc = txn_run(t, step_commit, &c);
  if (!rc) {
    __atomic_store_n(&s->ckpt_lsn, ckpt_lsn, __ATOMIC_RELEASE);
    __atomic_store_n(&s->epoch, epoch, __ATOMIC_RELEASE);
  }
  store_abort(t);
  return rc;
}

void store_abort(struct store_txn *t) {
  if (!t) return;
  if (t->txn) mdb_txn_abort(t->txn);
  for (size_t i = 0; i < t->nops; i++) free(t->ops[i].buf);
  free(t->ops);
  pthread_mutex_unlock(&t->s->write_mu);
  free(t);
}

/* ------------------------------------------------------------------------
 * Iterating.
 * --------------------------------------------------------------------- */

/* Whether cursor key k lies in the walk's range: the prefix (ns, shard)
 * of pb (plen bytes: prefix + h32) and h32 < until.  Sets *h32. */
static bool walk_in_range(const MDB_val *k, const uint8_t *pb, size_t plen,
                          uint64_t until, uint32_t *h32) {
  if (k->mv_size < plen || memcmp(k->mv_data, pb, plen - 4) != 0) return false;
  *h32 = get_be32((const uint8_t *)k->mv_data + plen - 4);
  return *h32 < until;
}

struct walk {
  struct store *s;
  const uint8_t *pb; /* prefix (ns, shard, h32 = from) */
  size_t plen;
  unsigned shard;
  uint64_t until;
  size_t max;
  store_visit_fn fn;
  void *arg;
};

/* The cursor loop of store_walk; returns an LMDB code or a CAIRN one. */
static int walk_loop(const struct walk *w, MDB_cursor *cur, uint64_t *next) {
  MDB_val k = {.mv_size = w->plen, .mv_data = (void *)w->pb}, d;
  size_t n = 0;
  uint32_t h32, group = 0;
  bool stop = false;
  int rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
  *next = w->until;
  for (; rc == 0; rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
    if (!walk_in_range(&k, w->pb, w->plen, w->until, &h32)) break;
    if (stop || (n >= w->max && (n == 0 || h32 != group))) {
      *next = h32;
      break;
    }
    struct dkey dk;
    struct store_val v;
    int err = entry_decode(w->s, &k, &d, &dk, &v);
    if (err) return err;
    stop = w->fn(w->arg, w->shard, h32, dk.key, dk.klen, &v) != 0;
    n++;
    group = h32;
  }
  return rc == MDB_NOTFOUND ? 0 : rc;
}

int store_walk(struct store *s, const char *ns, size_t ns_len,
               unsigned shard, uint64_t from, uint64_t until, size_t max,
               store_visit_fn fn, void *arg, uint64_t *next) {
  cairn_assert(s && fn && next && until <= (1ull << 32));
  if (from >= until) {
    *next = until;
    return 0;
  }
  uint8_t pb[STORE_KEY_BUF];
  struct dkey dk = {ns, ns_len, shard, (uint32_t)from, NULL, 0};
  struct walk w = {s, pb, dkey_encode(pb, &dk), shard, until, max, fn, arg};
  struct rslot *r;
  MDB_cursor *cur;
  int rc = read_begin(s, &r);
  if (rc) return rc;
  rc = mdb_cursor_open(r->txn, s->data, &cur);
  if (rc) {
    read_end(s, r);
    return store_err(s, rc, "cursor");
  }
  uint64_t resume;
  rc = walk_loop(&w, cur, &resume);
  mdb_cursor_close(cur);
  read_end(s, r);
  if (rc == CAIRN_ECORRUPT) return rc;
  if (rc) return store_err(s, rc, "walk");
  *next = resume;
  return 0;
}

/* The full key of the expiry entry ek (holding the deadline and the data
 * key): a long one is read from its data entry.  Pointers into the map. */
static int due_key(struct store *s, MDB_txn *txn, const MDB_val *ek,
                   struct dkey *dk, int64_t *deadline) {
  const uint8_t *p = ek->mv_data;
  bool is_long;
  if (ek->mv_size < EKEY_PREFIX ||
      dkey_decode(p + EKEY_PREFIX, ek->mv_size - EKEY_PREFIX, dk,
                  &is_long) != 0 ||
      get_be64(p) > INT64_MAX) {
    log_error(s->log, "store %s: malformed key in \"expiry\"", s->dir);
    return CAIRN_ECORRUPT;
  }
  *deadline = (int64_t)get_be64(p);
  if (!is_long) return 0;
  MDB_val k = {.mv_size = ek->mv_size - EKEY_PREFIX,
               .mv_data = (void *)(p + EKEY_PREFIX)}, d;
  struct store_val v;
  int rc = mdb_get(txn, s->data, &k, &d);
  if (rc == MDB_NOTFOUND) {
    log_error(s->log, "store %s: an entry in \"expiry\" names a long key "
              "missing from \"data\"", s->dir);
    return CAIRN_ECORRUPT;
  }
  if (rc) return store_err(s, rc, "due");
  return entry_decode(s, &k, &d, dk, &v);
}

static int due_loop(struct store *s, MDB_txn *txn, MDB_cursor *cur,
                    int64_t now, size_t max, struct store_due_pos *pos,
                    store_due_fn fn, void *arg) {
  MDB_val k = {.mv_size = pos->len, .mv_data = pos->key}, d;
  int rc = mdb_cursor_get(cur, &k, &d, pos->len ? MDB_SET_RANGE : MDB_FIRST);
  /* Past the entry taken last, if it is still there. */
  if (rc == 0 && pos->len && k.mv_size == pos->len &&
      memcmp(k.mv_data, pos->key, pos->len) == 0)
    rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
  for (size_t n = 0; rc == 0 && n < max; n++) {
    struct dkey dk;
    int64_t deadline;
    int err = due_key(s, txn, &k, &dk, &deadline);
    if (err) return err;
    if (deadline > now) break;
    if (fn(arg, dk.ns, dk.ns_len, dk.key, dk.klen, deadline)) break;
    memcpy(pos->key, k.mv_data, pos->len = k.mv_size);
    rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
  }
  return rc == 0 || rc == MDB_NOTFOUND ? 0 : store_err(s, rc, "due");
}

int store_due(struct store *s, int64_t now, size_t max,
              struct store_due_pos *pos, store_due_fn fn, void *arg) {
  cairn_assert(s && pos && pos->len <= STORE_KEY_LIMIT && fn);
  struct rslot *r;
  MDB_cursor *cur;
  int rc = read_begin(s, &r);
  if (rc) return rc;
  rc = mdb_cursor_open(r->txn, s->expiry, &cur);
  if (rc) {
    read_end(s, r);
    return store_err(s, rc, "cursor");
  }
  rc = due_loop(s, r->txn, cur, now, max, pos, fn, arg);
  mdb_cursor_close(cur);
  read_end(s, r);
  return rc;
}

int store_stats(struct store *s, struct store_stats *out) {
  cairn_assert(s && out);
  struct rslot *r;
  int rc = read_begin(s, &r);
  if (rc) return rc;
  MDB_stat data, exp, env;
  MDB_envinfo ei;
  rc = mdb_stat(r->txn, s->data, &data);
  if (!rc) rc = mdb_stat(r->txn, s->expiry, &exp);
  if (!rc) rc = mdb_env_stat(s->env, &env);
  if (!rc) rc = mdb_env_info(s->env, &ei);
  read_end(s, r);
  if (rc) return store_err(s, rc, "stat");
  out->entries = data.ms_entries;
  out->expiry_index = exp.ms_entries;
  out->map_bytes = ei.me_mapsize;
  out->map_bytes_max = s->map_bytes_max;
  out->used_bytes = ((uint64_t)ei.me_last_pgno + 1) * env.ms_psize;
  return 0;
}

/* ------------------------------------------------------------------------
 * Verifying (cairn-check): a full walk of every database.
 * --------------------------------------------------------------------- */

struct verify {
  struct store *s;
  MDB_txn *txn;
  store_problem_fn fn;
  void *arg;
  struct store_verify_result *res;
};

static void verify_problem(struct verify *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void verify_problem(struct verify *v, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  v->res->problems++;
  if (v->fn) v->fn(v->arg, msg);
}

/* Walk dbi with a cursor, calling each(v, k, d) per entry.  The walk is
 * bounded by the count mdb_stat gives (plus one, to notice a mismatch). */
static int verify_walk(struct verify *v, MDB_dbi dbi, const char *name,
                       int (*each)(struct verify *, const MDB_val *,
                                   const MDB_val *),
                       uint64_t *count) {
  MDB_stat st;
  MDB_cursor *cur;
  int rc = mdb_stat(v->txn, dbi, &st);
  if (!rc) rc = mdb_cursor_open(v->txn, dbi, &cur);
  if (rc) return store_err(v->s, rc, name);
  v->res->pages += st.ms_branch_pages + st.ms_leaf_pages +
                   st.ms_overflow_pages;
  MDB_val k, d;
  uint64_t n = 0;
  rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST);
  for (; rc == 0 && n <= st.ms_entries; n++) {
    int err = each ? each(v, &k, &d) : 0;
    if (err) {
      mdb_cursor_close(cur);
      return err;
    }
    rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
  }
  mdb_cursor_close(cur);
  *count = n;
  if (rc && rc != MDB_NOTFOUND) return store_err(v->s, rc, name);
  if (n != st.ms_entries)
    verify_problem(v, "\"%s\": the cursor walk found %s%" PRIu64
                   " entries, the B-tree counts %zu", name,
                   n > st.ms_entries ? "more than " : "", n, st.ms_entries);
  return 0;
}

/* A data entry: decodes, and has its expiry-index entry if it has a
 * deadline. */
static int verify_data(struct verify *v, const MDB_val *k, const MDB_val *d) {
  struct dkey dk;
  struct store_val sv;
  if (entry_decode(v->s, k, d, &dk, &sv) != 0) {
    verify_problem(v, "\"data\": malformed entry (key of %zu bytes, value "
                   "of %zu bytes)", k->mv_size, d->mv_size);
    return 0;
  }
  if (sv.type > REC_T_MAX)
    verify_problem(v, "\"data\": entry of unknown type %u", sv.type);
  int64_t deadline = val_deadline(&sv);
  if (!deadline) return 0;
  uint8_t buf[STORE_KEY_BUF];
  MDB_val ek = ekey_make(buf, deadline, k), ed;
  int rc = mdb_get(v->txn, v->s->expiry, &ek, &ed);
  if (rc == MDB_NOTFOUND)
    verify_problem(v, "\"data\": an entry of namespace %.*s (key of %zu "
                   "bytes) with deadline %" PRId64 " has no expiry-index "
                   "entry", (int)dk.ns_len, dk.ns, dk.klen, deadline);
  else if (rc)
    return store_err(v->s, rc, "expiry lookup");
  return 0;
}

/* An expiry-index entry: names an existing data entry with that deadline. */
static int verify_expiry(struct verify *v, const MDB_val *k,
                         const MDB_val *d) {
  const uint8_t *p = k->mv_data;
  struct dkey dk;
  bool is_long;
  if (d->mv_size != 0 || k->mv_size <= EKEY_PREFIX ||
      dkey_decode(p + EKEY_PREFIX, k->mv_size - EKEY_PREFIX, &dk,
                  &is_long) != 0) {
    verify_problem(v, "\"expiry\": malformed entry (key of %zu bytes)",
                   k->mv_size);
    return 0;
  }
  int64_t deadline = (int64_t)get_be64(p);
  MDB_val dkv = {.mv_size = k->mv_size - EKEY_PREFIX,
                 .mv_data = (void *)(p + EKEY_PREFIX)}, dv;
  int rc = mdb_get(v->txn, v->s->data, &dkv, &dv);
  if (rc && rc != MDB_NOTFOUND) return store_err(v->s, rc, "data lookup");
  struct store_val sv;
  if (rc == MDB_NOTFOUND) {
    verify_problem(v, "\"expiry\": deadline %" PRId64 " names a key of "
                   "namespace %.*s missing from \"data\"", deadline,
                   (int)dk.ns_len, dk.ns);
  } else if (entry_decode(v->s, &dkv, &dv, &dk, &sv) == 0 &&
             val_deadline(&sv) != deadline) {
    verify_problem(v, "\"expiry\": deadline %" PRId64 " for a key of "
                   "namespace %.*s whose entry has deadline %" PRId64,
                   deadline, (int)dk.ns_len, dk.ns, val_deadline(&sv));
  }
  return 0;
}

int store_verify(struct store *s, store_problem_fn fn, void *arg,
                 struct store_verify_result *out) {
  cairn_assert(s && out);
  struct store_verify_result res = {0};
  struct verify v = {.s = s, .fn = fn, .arg = arg, .res = &res};
  struct rslot *r;
  int rc = read_begin(s, &r);
  if (rc) return rc;
  v.txn = r->txn;
  rc = verify_walk(&v, s->meta, "meta", NULL, &res.meta_entries);
  if (!rc) rc = verify_walk(&v, s->data, "data", verify_data, &res.entries);
  if (!rc)
    rc = verify_walk(&v, s->expiry, "expiry", verify_expiry,
                     &res.expiry_index);
  read_end(s, r);
  if (rc == 0) *out = res;
  return rc;
}

/* ------------------------------------------------------------------------
 * A whole snapshot, for tools.
 * --------------------------------------------------------------------- */

static int snap_loop(struct store *s, MDB_cursor *cur, store_snap_fn fn,
                     void *arg) {
  MDB_val k, d;
  int rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST);
  for (; rc == 0; rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
    struct dkey dk;
    struct store_val v;
    int err = entry_decode(s, &k, &d, &dk, &v);
    if (err) return err;
    if ((err = fn(arg, dk.ns, dk.ns_len, dk.key, dk.klen, &v)) != 0)
      return err;
  }
  return rc == MDB_NOTFOUND ? 0 : store_err(s, rc, "snapshot walk");
}

int store_snapshot(struct store *s, store_snap_fn fn, void *arg,
                   uint64_t *ckpt_lsn, uint64_t *epoch) {
  cairn_assert(s && fn && ckpt_lsn && epoch);
  struct rslot *r;
  MDB_cursor *cur;
  int rc = read_begin(s, &r);
  if (rc) return rc;
  uint64_t lsn = 0, ep = 0;
  rc = meta_get_u64(s, r->txn, "ckpt_lsn", &lsn);
  if (!rc) rc = meta_get_u64(s, r->txn, "epoch", &ep);
  if (!rc && (rc = mdb_cursor_open(r->txn, s->data, &cur)) != 0)
    rc = store_err(s, rc, "cursor");
  if (!rc) {
    *ckpt_lsn = lsn;
    *epoch = ep;
    rc = snap_loop(s, cur, fn, arg);
    mdb_cursor_close(cur);
  }
  read_end(s, r);
  return rc;
}

/* ------------------------------------------------------------------------
 * Bulk loading an empty store (cairn-restore).
 *
 * Entries come in data-key order and go in with MDB_APPEND, which skips
 * the search of an ordinary put and fills each page before starting the
 * next; no old value is read, since the store starts empty.  The expiry
 * index has another order: its keys are kept in memory and appended,
 * sorted, at commit.  The load commits every LOAD_TXN_BYTES (LMDB caps
 * the pages one txn dirties) without syncing, and syncs once at the end.
 * A put that fills the map grows it as txn_run does: the txn is rebuilt
 * from copies of what it applied since its last commit, kept in redo (at
 * most LOAD_TXN_BYTES and one entry).
 * --------------------------------------------------------------------- */

#define LOAD_TXN_BYTES (64u << 20)
#define LOAD_REC_HDR 9u /* u8 database, u32 klen, u32 vlen */

enum { LOAD_DATA, LOAD_EXPIRY, LOAD_META };

struct store_load {
  struct store_txn *t;      /* the writer and its LMDB txn */
  uint8_t last[STORE_KEY_BUF];
  size_t last_len;          /* the previous data key; 0 before the first */
  uint8_t *redo;            /* LOAD_REC_HDR, key, value; since the commit */
  size_t redo_len, redo_cap;
  uint8_t *ekeys;           /* expiry keys, each after its u16 length */
  size_t ekeys_len, ekeys_cap;
  size_t *eoff;             /* where each expiry key starts in ekeys */
  size_t neoff, eoff_cap;
};

static int load_room(uint8_t **buf, size_t *cap, size_t len, size_t more) {
  if (len + more <= *cap) return 0;
  size_t c = *cap ? *cap : 1u << 20;
  while (c < len + more) c *= 2;
  uint8_t *p = realloc(*buf, c);
  if (!p) return CAIRN_ENOMEM;
  *buf = p;
  *cap = c;
  return 0;
}

/* Apply the redo record at off; returns LMDB's code, *next its end. */
static int load_apply(struct store_load *l, size_t off, size_t *next) {
  struct store *s = l->t->s;
  const uint8_t *p = l->redo + off;
  uint32_t kl = get_u32(p + 1), vl = get_u32(p + 5);
  MDB_val k = {.mv_size = kl, .mv_data = (void *)(p + LOAD_REC_HDR)};
  MDB_val d = {.mv_size = vl, .mv_data = (void *)(p + LOAD_REC_HDR + kl)};
  MDB_dbi dbi = p[0] == LOAD_DATA ? s->data
                : p[0] == LOAD_EXPIRY ? s->expiry : s->meta;
  *next = off + LOAD_REC_HDR + kl + vl;
  return mdb_put(l->t->txn, dbi, &k, &d, p[0] == LOAD_META ? 0 : MDB_APPEND);
}

/* Apply the redo records from off on; on a full map, grow it and apply
 * them all again in a new txn (bounded: each pass doubles the map or
 * fails at its cap). */
static int load_run(struct store_load *l, size_t off) {
  struct store_txn *t = l->t;
  if (t->err) return t->err;
  int rc = 0;
  for (;;) {
    while (rc == 0 && off < l->redo_len) rc = load_apply(l, off, &off);
    if (rc != MDB_MAP_FULL) break;
    int err = txn_grow(t);
    if (err) return t->err = err;
    off = 0;
    rc = 0;
  }
  return rc ? (t->err = store_err(t->s, rc, "load")) : 0;
}

/* Make room for one record at the end of redo and write its header and
 * key; *vdst gets where its vlen value bytes go.  The caller fills them,
 * adds the record's length to redo_len and applies it with load_run. */
static int load_add(struct store_load *l, int db, const void *key,
                    size_t klen, size_t vlen, uint8_t **vdst) {
  int rc = load_room(&l->redo, &l->redo_cap, l->redo_len,
                     LOAD_REC_HDR + klen + vlen);
  if (rc) return l->t->err = rc;
  uint8_t *p = l->redo + l->redo_len;
  p[0] = (uint8_t)db;
  put_u32(p + 1, (uint32_t)klen);
  put_u32(p + 5, (uint32_t)vlen);
  memcpy(p + LOAD_REC_HDR, key, klen);
  *vdst = p + LOAD_REC_HDR + klen;
  return 0;
}

/* Commit what the txn holds (unsynced: the env has MDB_NOSYNC) and begin
 * the next one, if next. */
static int load_commit_txn(struct store_load *l, int next) {
  struct store_txn *t = l->t;
  int rc;
  for (;;) { /* bounded as load_run */
    rc = mdb_txn_commit(t->txn);
    t->txn = NULL; /* freed by LMDB whether or not it committed */
    reads_invalidate(t->s);
    if (rc != MDB_MAP_FULL) break;
    int err = txn_grow(t);
    if (!err) err = load_run(l, 0);
    if (err) return t->err = err;
  }
  if (rc) return t->err = store_err(t->s, rc, "load commit");
  l->redo_len = 0;
  if (next && (rc = mdb_txn_begin(t->s->env, NULL, 0, &t->txn)) != 0) {
    t->txn = NULL;
    return t->err = store_err(t->s, rc, "begin");
  }
  return 0;
}

int store_load_begin(struct store *s, struct store_load **out) {
  cairn_assert(s && out);
  struct store_load *l = calloc(1, sizeof *l);
  if (!l) return CAIRN_ENOMEM;
  int rc = store_begin(s, &l->t);
  if (rc) {
    free(l);
    return rc;
  }
  MDB_stat d, e;
  rc = mdb_stat(l->t->txn, s->data, &d);
  if (!rc) rc = mdb_stat(l->t->txn, s->expiry, &e);
  if (!rc) rc = mdb_env_set_flags(s->env, MDB_NOSYNC, 1);
  if (rc) rc = store_err(s, rc, "load begin");
  else if (d.ms_entries || e.ms_entries) rc = CAIRN_EINVAL;
  if (rc) {
    store_abort(l->t);
    free(l);
    return rc;
  }
  *out = l;
  return 0;
}

static int load_dkey_cmp(const uint8_t *a, size_t alen, const uint8_t *b,
                         size_t blen) {
  int c = memcmp(a, b, MIN(alen, blen));
  return c ? c : (alen < blen ? -1 : alen > blen);
}

/* Keep the expiry key of an entry, for store_load_commit. */
static int load_ekey(struct store_load *l, int64_t deadline, const MDB_val *dk) {
  if (l->neoff == l->eoff_cap) {
    size_t c = l->eoff_cap ? l->eoff_cap * 2 : 4096;
    size_t *p = realloc(l->eoff, c * sizeof *p);
    if (!p) return CAIRN_ENOMEM;
    l->eoff = p;
    l->eoff_cap = c;
  }
  int rc = load_room(&l->ekeys, &l->ekeys_cap, l->ekeys_len,
                     2 + EKEY_PREFIX + dk->mv_size);
  if (rc) return rc;
  uint8_t *p = l->ekeys + l->ekeys_len;
  MDB_val ek = ekey_make(p + 2, deadline, dk);
  p[0] = (uint8_t)ek.mv_size;
  p[1] = (uint8_t)(ek.mv_size >> 8);
  l->eoff[l->neoff++] = l->ekeys_len;
  l->ekeys_len += 2 + ek.mv_size;
  return 0;
}

int store_load_put(struct store_load *l, const char *ns, size_t ns_len,
                   unsigned shard, uint32_t h32, const void *key, size_t klen,
                   const struct store_val *v) {
  cairn_assert(l && v && klen >= 1 && v->len <= VALUE_MAX);
  struct store_txn *t = l->t;
  if (t->err) return t->err;
  if (klen > KEY_MAX) return CAIRN_EINVAL;
  struct dkey dk = {ns, ns_len, shard, h32, key, klen};
  uint8_t kb[STORE_KEY_BUF];
  size_t kl = dkey_encode(kb, &dk);
  if (l->last_len && load_dkey_cmp(kb, kl, l->last, l->last_len) <= 0)
    return CAIRN_EEXISTS;
  size_t lklen = key_is_long(ns_len, klen) ? klen : 0, at = l->redo_len;
  uint8_t *vdst;
  int rc = load_add(l, LOAD_DATA, kb, kl, val_len(v, lklen), &vdst);
  if (rc) return rc;
  val_encode(vdst, v, key, lklen);
  l->redo_len += LOAD_REC_HDR + kl + val_len(v, lklen);
  if ((rc = load_run(l, at)) != 0) return rc;
  memcpy(l->last, kb, kl);
  l->last_len = kl;
  int64_t deadline = val_deadline(v);
  MDB_val dkv = {.mv_size = kl, .mv_data = kb};
  if (deadline && (rc = load_ekey(l, deadline, &dkv)) != 0)
    return t->err = rc;
  return l->redo_len >= LOAD_TXN_BYTES ? load_commit_txn(l, 1) : 0;
}

static int load_ekey_cmp(const void *a, const void *b, void *arg) {
  const uint8_t *base = arg;
  const uint8_t *x = base + *(const size_t *)a, *y = base + *(const size_t *)b;
  return load_dkey_cmp(x + 2, x[0] | (size_t)x[1] << 8, y + 2,
                       y[0] | (size_t)y[1] << 8);
}

/* Append the expiry index, sorted. */
static int load_expiry(struct store_load *l) {
  if (l->neoff)
    qsort_r(l->eoff, l->neoff, sizeof *l->eoff, load_ekey_cmp, l->ekeys);
  for (size_t i = 0; i < l->neoff; i++) {
    const uint8_t *p = l->ekeys + l->eoff[i];
    size_t at = l->redo_len;
    uint8_t *vdst;
    int rc = load_add(l, LOAD_EXPIRY, p + 2, p[0] | (size_t)p[1] << 8, 0,
                      &vdst);
    if (rc) return rc;
    l->redo_len += LOAD_REC_HDR + (p[0] | (size_t)p[1] << 8);
    if ((rc = load_run(l, at)) != 0) return rc;
    if (l->redo_len >= LOAD_TXN_BYTES && (rc = load_commit_txn(l, 1)) != 0)
      return rc;
  }
  return 0;
}

static int load_meta(struct store_load *l, const char *name, uint64_t val) {
  uint8_t *vdst;
  size_t at = l->redo_len;
  int rc = load_add(l, LOAD_META, name, strlen(name), 8, &vdst);
  if (rc) return rc;
  put_u64(vdst, val);
  l->redo_len += LOAD_REC_HDR + strlen(name) + 8;
  return load_run(l, at);
}

int store_load_commit(struct store_load *l, uint64_t ckpt_lsn,
                      uint64_t epoch) {
  cairn_assert(l);
  struct store *s = l->t->s;
  int rc = l->t->err;
  if (!rc) rc = load_expiry(l);
  if (!rc) rc = load_meta(l, "ckpt_lsn", ckpt_lsn);
  if (!rc) rc = load_meta(l, "epoch", epoch);
  if (!rc) rc = load_commit_txn(l, 0);
  int e = mdb_env_set_flags(s->env, MDB_NOSYNC, 0);
  if (!rc && !e) e = mdb_env_sync(s->env, 1);
  if (!rc && e) rc = store_err(s, e, "load sync");
  if (!rc) {
    __atomic_store_n(&s->ckpt_lsn, ckpt_lsn, __ATOMIC_RELEASE);
    __atomic_store_n(&s->epoch, epoch, __ATOMIC_RELEASE);
  }
  store_load_abort(l);
  return rc;
}

void store_load_abort(struct store_load *l) {
  if (!l) return;
  mdb_env_set_flags(l->t->s->env, MDB_NOSYNC, 0);
  store_abort(l->t);
  free(l->redo);
  free(l->ekeys);
  free(l->eoff);
  free(l);
}
