/*
 * table.h - the in-memory table of one namespace.
 *
 * A table is TABLE_SHARDS shards, each with its own lock and its own open
 * addressing array of entry pointers.  A key's 64-bit hash picks the shard
 * (low bits) and orders the key inside it (high 32 bits, "h32"): each
 * shard keeps its entries sorted by h32 (Robin Hood linear probing whose
 * home slot grows with h32: (h32 >> 13) * capacity >> 19), so a scan can
 * resume from a cursor of (shard, h32) across inserts, deletes and
 * resizes, and visit each key that stays live exactly once.
 *
 * Locking is the caller's: every call below that takes a shard index must
 * be made with that shard locked (read lock for finds and scans, write lock
 * for changes), except table_new/table_free and the stats.
 */
#ifndef CAIRN_TABLE_H
#define CAIRN_TABLE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "limits.h"

/* An entry: one allocation holding a 20-byte header, the optional expiry
 * fields that its flags announce, then the key and the value.  The header
 * is packed so that a 16-byte key with a 100-byte value costs one 144-byte
 * malloc chunk.  Layout by flags (offsets in bytes):
 *
 *   none            key at 20
 *   EXPIRE          expire_at 20 (unaligned, read by memcpy), key at 28
 *   IDLE            4 bytes pad, max_idle 24, last_access 32, key at 40
 *   EXPIRE|IDLE     4 bytes pad, expire_at 24, max_idle 32,
 *                   last_access 40, key at 48
 *
 * The pad exists only with IDLE, so that last_access (read and written with
 * relaxed atomics, also under a read lock) sits 8-aligned: malloc returns at
 * least 8-aligned blocks.  The value follows the key. */
#define ENTRY_F_EXPIRE 0x1u /* an int64 expire_at_ms follows the header */
#define ENTRY_F_IDLE   0x2u /* uint64 max_idle_ms and an atomic uint64
                               last_access_ms follow (after expire_at) */
#define ENTRY_F_MEMORY 0x4u /* written with MEMORY durability: not logged */
#define ENTRY_F_TOMB   0x8u /* a deletion that LMDB may not know yet: the
                               key is absent, whatever LMDB holds */
#define ENTRY_F_REF    0x10u /* read since the eviction hand last passed */
#define ENTRY_F_TOUCHED 0x200u /* read since its last logged state, which
                                 moved its max-idle deadline: the store's
                                 copy has an older last access */
#define ENTRY_F_OBJ    0x100u /* the value is a struct cobj pointer
                                (cobj.h): a large collection held as a
                                structure */
#define ENTRY_TYPE_SHIFT 5u  /* three bits of value type: REC_T_* */
#define ENTRY_TYPE_MASK  (0x7u << ENTRY_TYPE_SHIFT)
#define ENTRY_F_TYPE(t)  ((unsigned)(t) << ENTRY_TYPE_SHIFT)
#define entry_type(e)    ((entry_flags(e) & ENTRY_TYPE_MASK) >> ENTRY_TYPE_SHIFT)

struct entry {
  uint32_t ver_lo, ver_hi; /* version: the LSN of the last write */
  uint32_t h32;            /* ordering hash (high half of the key hash) */
  uint32_t vlen;
  uint32_t klen_flags;     /* klen in the low 17 bits, ENTRY_F_* above */
};
_Static_assert(sizeof(struct entry) == 20, "entry header is 20 bytes");

/* Build an entry.  expire_at_ms 0: none; max_idle_ms 0: none (then
 * last_access_ms is ignored).  Returns NULL when out of memory. */
struct entry *entry_new(const void *key, size_t klen, const void *val,
                        size_t vlen, uint64_t hash, uint64_t version,
                        int64_t expire_at_ms, uint64_t max_idle_ms,
                        int64_t last_access_ms, unsigned flags);
void entry_free(struct entry *e); /* and its object, if it holds one */

/* Build an entry holding collection object o (ENTRY_F_OBJ, the type from
 * o), which it owns from then on.  NULL when out of memory (o is then
 * still the caller's). */
struct cobj;
struct entry *entry_new_obj(const void *key, size_t klen, struct cobj *o,
                            uint64_t hash, uint64_t version,
                            int64_t expire_at_ms, uint64_t max_idle_ms,
                            int64_t last_access_ms, unsigned flags);
/* The object an ENTRY_F_OBJ entry holds, else NULL. */
struct cobj *entry_obj(const struct entry *e);
/* Set and clear ENTRY_F_MEMORY (the others are fixed at creation).
 * Under the write lock. */
void entry_set_memory(struct entry *e, int on);

uint64_t entry_version(const struct entry *e);
const void *entry_key(const struct entry *e);
size_t entry_klen(const struct entry *e);
/* The value.  Of an ENTRY_F_OBJ entry, the blob the object encodes to,
 * made on first use and kept until the object changes (cobj_blob): NULL
 * if out of memory.  Callers that copy the value had better encode it
 * straight into their copy (cobj_encode). */
const void *entry_val(const struct entry *e);
size_t entry_vlen(const struct entry *e);
unsigned entry_flags(const struct entry *e);
int64_t entry_expire_at(const struct entry *e);   /* lifespan end, 0 none */
uint64_t entry_max_idle(const struct entry *e);   /* 0 none */
int64_t entry_last_access(const struct entry *e);
/* Safe under a read lock: a relaxed atomic store. */
void entry_touch(struct entry *e, int64_t now_ms);
/* entry_touch for a read (not logged): also marks it ENTRY_F_TOUCHED.
 * Safe under a read lock. */
void entry_touch_read(struct entry *e, int64_t now_ms);
/* Clear ENTRY_F_TOUCHED: its last access is logged.  Under the write
 * lock. */
void entry_untouch(struct entry *e);
/* Mark e recently used (CLOCK).  Safe under a read lock. */
void entry_ref(struct entry *e);
/* Clear e's mark and say whether it was set.  Under the write lock. */
int entry_unref(struct entry *e);
/* When the entry dies: min(expire_at, last_access + max_idle); 0 never. */
int64_t entry_deadline(const struct entry *e);
/* Bytes the entry holds, allocator overhead estimated. */
size_t entry_bytes(const struct entry *e);

struct table;

/* Errors: CAIRN_ENOMEM. */
int table_new(struct table **out);
void table_free(struct table *t); /* frees every entry; NULL is fine */

/* The hash of a key, used for every call below. */
uint64_t table_hash(const void *key, size_t klen);
unsigned table_shard(uint64_t hash);

void table_rdlock(struct table *t, unsigned shard);
void table_wrlock(struct table *t, unsigned shard);
void table_unlock(struct table *t, unsigned shard);

/* The entry with this key, or NULL. */
struct entry *table_find(struct table *t, uint64_t hash, const void *key,
                         size_t klen);

/* Insert e, replacing and freeing an entry with the same key.
 * Errors: CAIRN_ENOMEM (when the shard must grow and cannot; e is then
 * not inserted and still owned by the caller). */
int table_put(struct table *t, uint64_t hash, struct entry *e);

/* Entry e, in the table at hash, changed in place (an object): its
 * entry_bytes were old_bytes.  Under the write lock. */
void table_resized(struct table *t, uint64_t hash, const struct entry *e,
                   size_t old_bytes);

/* Remove the entry with this key and return it (the caller frees it), or
 * NULL if there is none. */
struct entry *table_remove(struct table *t, uint64_t hash, const void *key,
                           size_t klen);

/* Walk shard `shard` in h32 order from h32 >= *from, calling fn for each
 * entry until fn returns non-zero or `max` entries were visited (max 0 acts
 * as 1); entries sharing one h32 are never split across calls, so the walk
 * finishes the group it is in even past max or after fn asked to stop.
 * Returns 1 with *from set to the last visited h32 + 1 when the shard holds
 * entries above it, else 0 with *from set to 1 << 32 (the shard is done;
 * a walk from 1 << 32 visits nothing).  Start a shard at 0.
 * A key present from the first call to the last is visited exactly once,
 * whatever is inserted, removed or resized between calls.
 * fn may not change the table. */
typedef int (*table_visit_fn)(void *arg, struct entry *e);
int table_walk(struct table *t, unsigned shard, uint64_t *from, size_t max,
               table_visit_fn fn, void *arg);

/* Entries of the shard with a deadline, and tombstones: what the expiry
 * sweep looks for.  Read without the lock. */
uint64_t table_mortal(struct table *t, unsigned shard);

/* Entries and bytes (entries, table arrays, allocator overhead). */
uint64_t table_count(struct table *t);
uint64_t table_bytes(struct table *t);

/* Debug: check every shard's invariants (entries sorted by h32, each at or
 * after its home slot with no empty slot between, counts and bytes agree).
 * Takes each shard's read lock in turn.  Returns 0, or a negative number
 * naming the first broken invariant (see table.c). */
int table_check(struct table *t);

#endif /* CAIRN_TABLE_H */
