/*
 * db.h - the database handle, shared by db.c (open, close, recovery),
 * ops.c (reads and writes) and maint.c (expiry and eviction).
 */
#ifndef CAIRN_DB_H
#define CAIRN_DB_H

#include <pthread.h>
#include <stdint.h>

#include "cairn.h"
#include "limits.h"
#include "log.h"
#include "meta.h"
#include "table.h"

struct ckpt;
struct store;
struct wal;

/* A namespace: a named keyspace with its own table and defaults.
 * Namespaces are created on first use and live until close. */
struct ns {
  char name[NS_NAME_MAX + 1];
  uint8_t len;
  struct table *t;
  cairn_ns_options opt;
  /* Per shard, how many evictions it has seen: a lookup that went to the
   * store compares it to know that nothing left memory meanwhile. */
  uint32_t evict_seq[TABLE_SHARDS];
  /* The hand of the eviction for opt.max_entries (maint.c), under the
   * database's evict_mu; and, when its last pass could not get under the
   * bound, the checkpoint LSN + 1 it saw then (0: it could), so that a
   * fast loader wakes the maintenance thread only once a checkpoint has
   * made more entries evictable. */
  unsigned evict_shard;
  uint64_t evict_from;
  uint64_t evict_stuck;
};

#define DB_STRIPES 16u

enum {
  CNT_PUTS, CNT_DELS, CNT_GETS, CNT_GET_HITS, CNT_MEM_HITS, CNT_STORE_READS,
  CNT_EXPIRED, CNT_EVICTED, CNT_TOUCHES, CNT_STALLS, CNT_N
};

struct db_counters {
  uint64_t n[CNT_N];
} __attribute__((aligned(64)));

/* Which reads from the store are cached, by how full memory is. */
enum admit_mode {
  ADMIT_ALL,    /* under ADMIT_ROOM_PCT of the budget, or no budget */
  ADMIT_SECOND, /* a key's second miss within the doorkeeper's window */
  ADMIT_NONE,   /* past ADMIT_STOP_PCT */
};

struct cairn {
  char *dir;
  cairn_options opt;
  struct logger log;
  int lock_fd;             /* flock'd LOCK file: one process per directory */
  struct wal *wal;
  struct store *store;     /* the checkpointed state (LMDB) */
  struct ckpt *ckpt;
  uint64_t epoch;
  /* The data id and epoch history (meta.h).  Changed only by the
   * replication calls (follow.c), under meta_mu. */
  pthread_mutex_t meta_mu;
  struct meta meta;
  int follower;            /* applies a leader's log: expires nothing */

  /* Namespaces: published with release stores, read without locks. */
  pthread_mutex_t ns_mu;
  struct ns *ns[NS_COUNT_MAX];
  unsigned ns_count;

  uint64_t mem_version;    /* versions of MEMORY writes: top bit set */
  uint64_t ckpt_lsn;       /* what the store holds; entries at or below
                              it are clean (evictable) */
  int fatal;               /* a write was logged but could not be applied */
  int store_full;          /* the store is at map_bytes_max */

  /* Statistics: counters striped by thread, so that readers on different
   * cores do not bounce one cache line; summed by cairn_stats. */
  struct db_counters counters[DB_STRIPES];

  /* The maintenance thread: expiry and eviction (maint.c). */
  pthread_t maint_thread;
  int maint_running;
  uint64_t maint_lsn0;              /* the log's last LSN when it started */
  int64_t maint_ms0;                /* ... and the time */
  pthread_mutex_t maint_mu;
  pthread_cond_t maint_cv;
  int stopping;
  unsigned expiry_ns, expiry_shard; /* where the expiry sweep resumes */
  uint64_t expiry_from;
  /* Admission of entries read from the store, under a memory budget
   * (ops.c db_admit): while memory has room, every read is cached; once
   * it is nearly full, a key is cached on its second miss within a
   * window (a doorkeeper bitmap), so that a scan or uniform traffic over
   * data larger than memory does not churn the cache for keys read
   * once; well past the budget, none is until the eviction catches up. */
  uint64_t *admit;                  /* ADMIT_BITS bits */
  uint64_t admit_set;               /* bits set since the last clearing */
  int admit_mode;                   /* __atomic: enum admit_mode */
  pthread_mutex_t evict_mu;         /* the eviction's clock hand: */
  unsigned evict_ns, evict_shard;
  uint64_t evict_from;
  uint64_t evict_stuck;             /* __atomic: checkpoint LSN + 1 when a
                                       pass at it left memory over, or 0 */
  uint64_t evict_stuck_ns;          /* __atomic: when (mono_ns) */
  /* The write stall (maint.c), all __atomic: */
  int write_stall;                  /* memory says writes wait */
  uint64_t stall_since_ns;          /* since when (or since stall_ckpts) */
  uint64_t stall_ckpts;             /* checkpoints completed, last seen */
  uint64_t stall_warned;            /* checkpoints + 1 when a stall timed
                                       out and was logged */
};

/* db.c */
void db_count(cairn *db, unsigned c, uint64_t v);
/* The namespace named ns (NULL: "default"), created if missing.
 * Errors: CAIRN_EINVAL, CAIRN_ENOMEM. */
int db_ns_arg(cairn *db, const char *ns, struct ns **out);
/* The namespace named by a record, created if missing. */
int db_ns_get(cairn *db, const char *name, size_t len, struct ns **out);
/* Does namespace s keep its data in the store (it is not MEMORY)? */
int db_cold(const cairn *db, const struct ns *s);
/* Bytes held in memory by every namespace, and its entries. */
uint64_t db_memory(cairn *db);
uint64_t db_entries(cairn *db);
/* max_memory, which cairn_set_max_memory may change at any time. */
static inline uint64_t db_budget(cairn *db) {
  return __atomic_load_n(&db->opt.max_memory, __ATOMIC_RELAXED);
}

/* Apply one logged record (a batch: each of its records) to memory, as
 * recovery does; lock: take each key's shard write lock (readers are
 * running).  Errors: CAIRN_ENOMEM, CAIRN_ECORRUPT, the store's. */
struct rec;
int db_replay(cairn *db, uint64_t lsn, const struct rec *r, int64_t now,
              int lock);
/* Close; checkpoint: as cairn_close does, or leave LMDB as it is (a
 * follower about to cut its log's tail must not checkpoint it). */
void db_close_mode(cairn *db, int checkpoint);

/* ops.c */
/* Is e a live entry (not a tombstone, not past its deadline)? */
int db_entry_live(const struct entry *e, int64_t now);
/* Take the write lock of key's shard and find its state: in memory, or
 * else loaded from the store into memory as a clean entry.  On success
 * the lock is held and *out is the live entry or NULL.  Errors (lock not
 * held): the store's. */
int db_lookup(cairn *db, struct ns *s, uint64_t hash, const void *key,
              size_t klen, int64_t now, struct entry **out);
/* A tombstone for key, or NULL where the store is not used. */
struct entry *db_tomb_new(cairn *db, struct ns *s, const void *key,
                          size_t klen, uint64_t hash);
/* Remove key, leaving tomb (if not NULL) with version lsn.  Write lock. */
void db_bury(struct ns *s, uint64_t hash, const void *key, size_t klen,
             struct entry *tomb, uint64_t lsn);
/* If key's entry in memory is ENTRY_F_TOUCHED, log its last access (a
 * REC_EXPIRE that keeps its lifespan and max-idle, stamped with that
 * time), so that the store and a replay learn of it.  The entry is then
 * dirty until the next checkpoint.  No lock held.  Returns 1 if logged. */
int db_touch_log(cairn *db, struct ns *s, const void *key, size_t klen);

/* maint.c */
int maint_start(cairn *db);
void maint_stop(cairn *db);
/* db_touch_log every entry read since its last logged state: before a
 * clean close, so that the final checkpoint keeps every last access. */
void maint_log_touches(cairn *db);
/* Called after memory grew, with no lock held: wakes the evictor now and
 * then, and evicts inline when far over the budget. */
void db_mem_grew(cairn *db);
/* A write that waits for the log calls this before it begins: while
 * entries not yet checkpointed hold memory far past max_memory, it waits
 * (at most WRITE_STALL_NS_MAX) for the checkpoint and the eviction. */
void db_stall_wait(cairn *db);

#endif /* CAIRN_DB_H */
