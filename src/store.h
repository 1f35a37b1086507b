/*
 * store.h - the checkpointed state in LMDB.  The only module that
 * includes <lmdb.h>.
 *
 * The environment lives in DIR/lmdb/ and holds three named databases:
 *
 *   "meta"    "format" -> u32 STORE_FORMAT; "ckpt_lsn" -> u64: every record
 *             up to this LSN is reflected here, none after; "epoch" -> u64
 *   "data"    data key -> stored value (below)
 *   "expiry"  u64 deadline (big-endian) + data key -> empty: each entry
 *             with a lifespan or max-idle appears here once, under the
 *             deadline its stored value gives
 *
 * Data key (sorts by namespace, then shard, then h32, then key: the same
 * order as the memory table, so scans can merge the two):
 *   u8 ns_len, ns bytes, u8 shard, u32 h32 big-endian, key part
 * Every data key is at most DKEY_MAX = 511 - 8 = 503 bytes, so that it
 * fits LMDB's key limit (511 bytes, fixed by the format, whatever the
 * build allows) with the expiry key's 8-byte deadline in front.  With
 * S = 503 - 6 - ns_len - 1 (store_klen_max):
 *   - a key of klen <= S bytes is its own key part (klen bytes);
 *   - a longer key ("long key", up to CAIRN_KEY_MAX bytes) is replaced by
 *     a stand-in of exactly S + 1 bytes (the data key is then 503 bytes):
 *       key[0..P)  with P = S - 8: the key's first bytes
 *       u8 0xff    marker
 *       u64 XXH3-64 of the whole key, big-endian
 * So a key part of S + 1 bytes is a stand-in (its marker must be 0xff),
 * one of 1..S bytes is a key, and anything longer is corrupt.  Keys
 * sharing an h32 may sort differently than the memory table orders them;
 * the (shard, h32) order is what scans rely on.
 *
 * Stored value (varints are unsigned LEB128: 7 bits a byte, low first, at
 * most 10 bytes, no redundant zero byte):
 *   u8 flags          STORE_VF_*: which optional fields follow; other bits 0
 *   u8 type           REC_T_*
 *   varint version    LSN of the last write
 *   varint expire_at_ms    if STORE_VF_EXPIRE: lifespan end (absent: none)
 *   varint max_idle_ms     if STORE_VF_IDLE (absent: none)
 *   varint last_access_ms  if STORE_VF_ACCESS: last access known at
 *                          checkpoint time (absent: 0)
 *   if STORE_VF_LONGKEY: varint klen, then the whole key (klen bytes,
 *     S < klen <= CAIRN_KEY_MAX); a long key's value must have the flag,
 *     any other value must not, and the key must be the one the stand-in
 *     was made from
 *   then the value bytes (the rest)
 * An optional field is present exactly when it is not 0, so most entries
 * (no lifespan, no max-idle) carry three or four bytes of header.
 * The deadline of an entry is min(expire_at, last_access + max_idle).
 *
 * Integers in keys are big-endian so that LMDB's memcmp order is numeric.
 *
 * Concurrency: any number of threads may call the read functions at once;
 * one thread at a time writes through a store_txn, and the thread that
 * began it ends it.  Each read call sees every commit made before it
 * began.  A read transaction is kept open between calls only until the
 * next commit, which resets it, so none blocks LMDB's page reuse.  Callbacks
 * (store_walk, store_due) run inside a read transaction and must not call
 * back into the store: a map resize waiting for them would deadlock.
 *
 * Keys: any key of 1..CAIRN_KEY_MAX bytes is accepted by every function.
 * Keys over store_klen_max() bytes take the long form above: a lookup
 * reads the full key back from the value and compares it, so two long
 * keys with the same stand-in (the same first P bytes and XXH3-64) never
 * read as each other; store_put refuses the second one.
 */
#ifndef CAIRN_STORE_H
#define CAIRN_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"

#define STORE_FORMAT 3u
#define STORE_KEY_LIMIT 511u /* LMDB's default key limit; part of the format */
#define STORE_VAL_HDR_MAX 47u /* the longest header: 2 bytes, 4 varints, klen */
#define STORE_VF_LONGKEY 0x01u /* the value carries its key */
#define STORE_VF_EXPIRE 0x02u
#define STORE_VF_IDLE 0x04u
#define STORE_VF_ACCESS 0x08u
#define STORE_VF_ALL 0x0fu

struct store;

struct store_config {
  const char *dir;          /* the environment's directory (created) */
  uint64_t map_bytes;       /* initial map size; grows by itself */
  uint64_t map_bytes_max;   /* growth stops here: writes get CAIRN_EFULL */
  unsigned max_readers;     /* reader table size */
  const struct logger *log;
};

/* Open (creating if needed) the environment, size the reader table and
 * clear stale readers (mdb_reader_check, logging how many).
 * Errors: CAIRN_EVERFMT (another format), CAIRN_ECORRUPT, CAIRN_ENOMEM,
 * CAIRN_EIO, -errno. */
int store_open(const struct store_config *cfg, struct store **out);
void store_close(struct store *s); /* NULL is fine */

/* The checkpoint LSN and epoch recorded by the last committed checkpoint
 * (0 and 0 for a new store). */
uint64_t store_ckpt_lsn(struct store *s);
uint64_t store_epoch(struct store *s);

/* The longest key stored as itself in a namespace of ns_len bytes
 * (496 - ns_len): longer ones take the long form.  Informational: every
 * function takes keys up to CAIRN_KEY_MAX. */
size_t store_klen_max(const struct store *s, size_t ns_len);

/* A value read from the store.  data is malloc'd, owned by the caller. */
struct store_val {
  uint64_t version;
  int64_t expire_at_ms;
  uint64_t max_idle_ms;
  int64_t last_access_ms;
  uint8_t type;
  void *data;
  size_t len;
};

/* store_get - look key up (one LMDB lookup).  *ckpt_lsn (if not NULL) gets
 * the checkpoint LSN of the snapshot the lookup read, so the caller can
 * tell whether a checkpoint committed meanwhile.
 * Returns 0, CAIRN_ENOTFOUND, CAIRN_ECORRUPT (a malformed stored value),
 * CAIRN_ENOMEM or CAIRN_EIO.  A key over CAIRN_KEY_MAX is not found. */
int store_get(struct store *s, const char *ns, size_t ns_len,
              unsigned shard, uint32_t h32, const void *key, size_t klen,
              struct store_val *out, uint64_t *ckpt_lsn);

/* store_read - store_get without the copy: fn gets the value with data
 * borrowed from the map, valid only until it returns (it runs inside the
 * read transaction and must not call back into the store).  Returns what
 * fn returned, or store_get's errors (fn is then not called). */
typedef int (*store_read_fn)(void *arg, const struct store_val *v);
int store_read(struct store *s, const char *ns, size_t ns_len,
               unsigned shard, uint32_t h32, const void *key, size_t klen,
               store_read_fn fn, void *arg, uint64_t *ckpt_lsn);

/* ------------------------------------------------------------------------
 * Writing: one transaction per checkpoint.
 * --------------------------------------------------------------------- */

struct store_txn;

/* Begin the one write transaction.  Errors: CAIRN_EIO, CAIRN_ENOMEM. */
int store_begin(struct store *s, struct store_txn **out);

/* Put or delete an entry, keeping the expiry index in step (the old
 * entry's deadline is read from the stored value).  A delete of a missing
 * key is not an error (nor is deleting a long key whose stand-in holds
 * another key: that one stays).  Errors: CAIRN_EFULL (the map is at
 * map_bytes_max), CAIRN_ECORRUPT (the old stored value is malformed),
 * CAIRN_ENOMEM, CAIRN_EIO; after these only store_abort is allowed
 * (further calls return that error).  store_put also returns CAIRN_EINVAL,
 * with a log line, for klen over CAIRN_KEY_MAX or for a long key whose
 * stand-in already holds a different key (a 64-bit hash collision of two
 * keys sharing their first bytes); that puts nothing and the txn lives on.
 * A full map below the limit is grown inside these calls: the txn is
 * rebuilt from copies of everything it applied, so a txn holds that much
 * memory until it ends. */
int store_put(struct store_txn *t, const char *ns, size_t ns_len,
              unsigned shard, uint32_t h32, const void *key, size_t klen,
              const struct store_val *v);
int store_del(struct store_txn *t, const char *ns, size_t ns_len,
              unsigned shard, uint32_t h32, const void *key, size_t klen);

/* Record ckpt_lsn and epoch, and commit (LMDB fsyncs on commit).
 * Errors: CAIRN_EFULL, CAIRN_EIO.  The txn is freed either way. */
int store_commit(struct store_txn *t, uint64_t ckpt_lsn, uint64_t epoch);
/* Commit under the checkpoint LSN and epoch the store has, fsyncing the
 * data pages but not the meta page (MDB_NOMETASYNC): a crash may undo this
 * commit, never an earlier one, and the store stays whole.  For the parts
 * of a checkpoint before its last: they change no LSN, and recovery
 * replays whatever they held.  Errors and freeing as store_commit. */
int store_commit_part(struct store_txn *t);
void store_abort(struct store_txn *t);

/* ------------------------------------------------------------------------
 * Iterating.
 * --------------------------------------------------------------------- */

/* Called per entry with the full key (long ones too); key and data valid
 * only during the call.  Return 0 to go on, 1 to stop. */
typedef int (*store_visit_fn)(void *arg, unsigned shard, uint32_t h32,
                              const void *key, size_t klen,
                              const struct store_val *v /* data borrowed */);

/* Visit the entries of namespace ns in (shard, h32) order (inside one
 * h32 in data-key order, which is not the keys' own order once one is
 * long), starting at (shard, h32 >= from) and ending before (shard,
 * h32 >= until), where until <= 2^32.  Visits at most max entries, but
 * never stops inside a group sharing one h32 (it finishes the group); max
 * 0 visits nothing.
 * If fn returns 1 the walk stops at once.  *next gets the h32 at which to
 * resume in this shard: that of the first entry not visited (until if the
 * range is done); after a stop by fn inside a group, resuming there visits
 * the start of that group again.
 * Returns 0, CAIRN_ECORRUPT (a malformed entry), CAIRN_EIO. */
int store_walk(struct store *s, const char *ns, size_t ns_len,
               unsigned shard, uint64_t from, uint64_t until, size_t max,
               store_visit_fn fn, void *arg, uint64_t *next);

/* Where store_due stopped.  Zeroed: at the first entry. */
struct store_due_pos {
  size_t len;                   /* 0: from the first entry */
  uint8_t key[STORE_KEY_LIMIT]; /* the expiry key fn took last */
};

/* Visit entries whose deadline is <= now, in deadline order, at most max,
 * from just after *pos, which moves to each entry fn takes.  fn gets the
 * namespace and the full key (borrowed; a long key costs one more
 * lookup); returning 1 stops before that entry, which the next call
 * visits again.
 * An entry stays in the index until a checkpoint deletes it, so a caller
 * that reclaims what it is given keeps *pos and goes on past those; and
 * since entries enter the index only with a checkpoint's commit, it
 * zeroes *pos when the checkpoint LSN moves, to see anything it skipped.
 * Returns 0, CAIRN_ECORRUPT, CAIRN_EIO. */
typedef int (*store_due_fn)(void *arg, const char *ns, size_t ns_len,
                            const void *key, size_t klen, int64_t deadline);
int store_due(struct store *s, int64_t now, size_t max,
              struct store_due_pos *pos, store_due_fn fn, void *arg);

struct store_stats {
  uint64_t entries;      /* in "data" */
  uint64_t map_bytes;    /* current map size */
  uint64_t map_bytes_max; /* the size it may grow to */
  uint64_t used_bytes;   /* pages in use */
  uint64_t expiry_index; /* entries in "expiry" */
};
int store_stats(struct store *s, struct store_stats *out);

/* ------------------------------------------------------------------------
 * Verifying (for cairn-check).
 * --------------------------------------------------------------------- */

struct store_verify_result {
  uint64_t meta_entries, entries, expiry_index; /* counted by cursor */
  uint64_t pages;    /* branch + leaf + overflow pages of the databases */
  uint64_t problems; /* inconsistencies found (each passed to fn) */
};

/* Told about one problem found by store_verify; msg valid during the call. */
typedef void (*store_problem_fn)(void *arg, const char *msg);

/* store_verify - read the whole store in one read transaction: walk
 * "meta", "data" and "expiry" completely with cursors (comparing each
 * count with the B-tree's own), decode every data entry, and check the
 * expiry index against the data both ways: every entry with a deadline
 * has exactly its index entry, and every index entry names an existing
 * entry with that deadline.  Problems go to fn (may be NULL) and are
 * counted; they are not errors.  Changes nothing.
 * Returns 0, CAIRN_ECORRUPT (LMDB cannot walk a B-tree), CAIRN_EIO. */
int store_verify(struct store *s, store_problem_fn fn, void *arg,
                 struct store_verify_result *out);

/* store_copy_fd - write a consistent copy of the environment's data file
 * (compacted, as of one read transaction, with the checkpoint LSN it
 * holds) to fd, which may be a pipe.  A checkpoint that must grow the map
 * waits for it.  Errors: CAIRN_EIO, -errno. */
int store_copy_fd(struct store *s, int fd);

/* store_snapshot - visit every entry of every namespace in data-key order
 * inside one read transaction: a consistent image of the last committed
 * checkpoint, whose LSN and epoch go to *ckpt_lsn and *epoch before the
 * first call of fn.  fn gets the namespace and the full key (borrowed,
 * like v's data, for the call only); returning non-zero stops the walk
 * with that value.  The transaction stays open for the whole walk: it
 * holds back LMDB's page reuse meanwhile (the store may grow), but blocks
 * no writer.  For tools (cairn-dump); it may run in another process than
 * the one that writes the store.
 * Returns 0, fn's value, CAIRN_ECORRUPT, CAIRN_EIO. */
typedef int (*store_snap_fn)(void *arg, const char *ns, size_t ns_len,
                             const void *key, size_t klen,
                             const struct store_val *v);
int store_snapshot(struct store *s, store_snap_fn fn, void *arg,
                   uint64_t *ckpt_lsn, uint64_t *epoch);

/* ------------------------------------------------------------------------
 * Bulk loading an empty store (cairn-restore).
 * --------------------------------------------------------------------- */

struct store_load;

/* store_load_begin - start loading s, which must hold no entry, in
 * data-key order.  Holds the store's one writer until commit or abort.
 * Errors: CAIRN_EINVAL (s is not empty), CAIRN_ENOMEM, CAIRN_EIO. */
int store_load_begin(struct store *s, struct store_load **out);

/* store_load_put - add one entry, whose data key must sort after the
 * previous one's (so the entries of a scan, of store_snapshot or of a
 * dump written by cairn-dump come in the right order).  Entries go in with
 * MDB_APPEND and no lookup; the expiry index is built at commit.
 * Errors: CAIRN_EEXISTS (the key does not sort after the previous one:
 * nothing is put, and the load lives on), CAIRN_EINVAL (klen over
 * CAIRN_KEY_MAX: nothing is put), CAIRN_EFULL, CAIRN_ENOMEM, CAIRN_EIO
 * (after these only store_load_abort is allowed). */
int store_load_put(struct store_load *l, const char *ns, size_t ns_len,
                   unsigned shard, uint32_t h32, const void *key, size_t klen,
                   const struct store_val *v);

/* store_load_commit - write the expiry index, record ckpt_lsn and epoch,
 * commit and sync (once: the load's own commits do not sync).  Frees l
 * either way.  Errors: CAIRN_EFULL, CAIRN_ENOMEM, CAIRN_EIO. */
int store_load_commit(struct store_load *l, uint64_t ckpt_lsn,
                      uint64_t epoch);

/* Give up: what was committed by the load stays (it is not synced); the
 * caller discards the store.  NULL is fine. */
void store_load_abort(struct store_load *l);

#endif /* CAIRN_STORE_H */
