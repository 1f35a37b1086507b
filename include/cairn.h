/*
 * cairn.h - the embedded cairn engine.
 *
 * cairn keeps short-lived, precious state (sessions, tokens, codes,
 * counters) in memory, and makes every acknowledged write durable through a
 * write-ahead log before it is acknowledged.
 *
 * Conventions that hold for every call below:
 *  - A function that can fail returns int: 0 on success, or one of the
 *    negative CAIRN_E* codes listed in CAIRN_ERRORS.  Out-parameters are
 *    left untouched when a call fails.
 *  - Every call is thread-safe: any number of threads may use one handle at
 *    once, except that cairn_close() must not race with any other call on
 *    the same handle.
 *  - Keys and values are byte strings.  Keys are at most CAIRN_KEY_MAX bytes
 *    and non-empty; values at most CAIRN_VALUE_MAX bytes.  Namespace names
 *    are NUL-terminated, 1 to CAIRN_NS_MAX bytes, and NULL means the
 *    default namespace "default".
 *  - Timestamps are absolute wall-clock milliseconds since the Unix epoch.
 */
#ifndef CAIRN_H
#define CAIRN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define CAIRN_EXPORT __attribute__((visibility("default")))
#else
#define CAIRN_EXPORT
#endif

#define CAIRN_VERSION_MAJOR 0
#define CAIRN_VERSION_MINOR 1
#define CAIRN_VERSION_PATCH 0
#define CAIRN_VERSION_STRING "0.1.0"

/* Largest key, value and namespace name; the same numbers as src/limits.h. */
#define CAIRN_KEY_MAX   (64u * 1024u)
#define CAIRN_VALUE_MAX (64u * 1024u * 1024u)
#define CAIRN_NS_MAX    64u

/* ------------------------------------------------------------------------
 * Return codes
 * --------------------------------------------------------------------- */

/* X(name, value, message).  Codes are negative, and stay clear of the
 * range of negated errno values (-1 .. -4095) that some internal calls
 * return before they are mapped. */
#define CAIRN_ERRORS(X)                                                       \
  X(CAIRN_ENOTFOUND, -30001, "key not found")                                 \
  X(CAIRN_EEXISTS,   -30002, "key already exists")                            \
  X(CAIRN_EVERSION,  -30003, "version does not match")                        \
  X(CAIRN_EINVAL,    -30004, "invalid argument")                              \
  X(CAIRN_ENOMEM,    -30005, "out of memory")                                 \
  X(CAIRN_EFULL,     -30006, "disk full")                                     \
  X(CAIRN_EIO,       -30007, "I/O error; the database is read-only")          \
  X(CAIRN_ECORRUPT,  -30008, "data on disk is corrupt")                       \
  X(CAIRN_EREADONLY, -30009, "database is read-only")                         \
  X(CAIRN_ENOTNUM,   -30010, "value is not an integer or out of range")       \
  X(CAIRN_EOVERFLOW, -30011, "increment or decrement would overflow")         \
  X(CAIRN_EBUSY,     -30012, "data directory is locked by another process")   \
  X(CAIRN_EVERFMT,   -30013, "data directory has an unsupported format version") \
  X(CAIRN_ECLOSING,  -30014, "database is closing")                         \
  X(CAIRN_ETYPE,     -30015, "key holds a value of another type")          \
  X(CAIRN_ETOOBIG,   -30016, "value would exceed CAIRN_VALUE_MAX bytes")

enum cairn_error {
#define CAIRN_X_ENUM(name, value, msg) name = (value),
  CAIRN_ERRORS(CAIRN_X_ENUM)
#undef CAIRN_X_ENUM
};

/* cairn_strerror - a static, human-readable message for any return code:
 * a CAIRN_E* code, a negated errno, or 0.  Never returns NULL. */
CAIRN_EXPORT const char *cairn_strerror(int err);

/* ------------------------------------------------------------------------
 * Options
 * --------------------------------------------------------------------- */

/* When a write is acknowledged. */
typedef enum cairn_durability {
  CAIRN_DURABILITY_DEFAULT = 0, /* inherit: write -> namespace -> database */
  CAIRN_DURABILITY_FSYNC = 1,   /* after fdatasync of the log */
  CAIRN_DURABILITY_INTERVAL = 2,/* after the log write; fdatasync every
                                   interval_ms at most */
  CAIRN_DURABILITY_MEMORY = 3   /* never logged: lost on restart, by design */
} cairn_durability;

/* Open flags. */
#define CAIRN_OPEN_SALVAGE  0x1u /* open past mid-log corruption, keeping
                                    what precedes the first bad frame */
#define CAIRN_OPEN_NO_URING 0x2u /* use pwritev + fdatasync, not io_uring */
#define CAIRN_OPEN_NO_EXPIRY 0x4u /* no background reclamation (followers,
                                    tools); expired entries stay hidden */
#define CAIRN_OPEN_FOLLOWER 0x8u /* to follow a leader (cairnd): expire
                                    nothing (the leader's deletes come
                                    through the log), and do not checkpoint
                                    the replayed log at once, so a tail
                                    that diverged from the leader's can
                                    still be cut */

/* Log levels passed to cairn_options.log_fn. */
enum { CAIRN_LOG_ERROR = 0, CAIRN_LOG_WARN = 1, CAIRN_LOG_INFO = 2,
       CAIRN_LOG_DEBUG = 3 };

typedef void (*cairn_log_fn)(void *arg, int level, const char *msg);

typedef struct cairn_options {
  cairn_durability durability; /* database default; FSYNC */
  uint32_t interval_ms;        /* INTERVAL's sync period; 1000 */
  uint64_t segment_bytes;      /* log segment size; 64 MiB, at least 1 MiB */
  uint64_t max_memory;         /* memory budget in bytes; 0 = unbounded.
                                  Entries written since the last
                                  checkpoint always stay; beyond them,
                                  memory holds the hottest clean entries
                                  that fit, and the rest is read from
                                  disk on demand */
  uint64_t checkpoint_bytes;   /* checkpoint after this much log; 256 MiB */
  uint32_t checkpoint_interval_ms; /* ... or after this long; 5 min */
  uint64_t map_bytes_max;      /* the checkpoint store (LMDB) grows by
                                  itself up to this size; then writes get
                                  CAIRN_EFULL; 1 TiB */
  uint32_t group_max_bytes;    /* cap on the records in one flush; 4 MiB */
  uint32_t expire_tick_ms;     /* background expiry period; 100 */
  uint32_t expire_scan_max;    /* entries examined per tick in memory,
                                  and as many taken from the store's
                                  expiry index; 20000 */
  unsigned flags;              /* CAIRN_OPEN_* */
  /* Told from the maintenance thread after an entry expired and its
   * deletion was logged (keyspace notifications).  Must be short and must
   * not call cairn functions that wait for the log. */
  void (*expired_fn)(void *arg, const char *ns, const void *key,
                     size_t klen);
  void *expired_arg;
  cairn_log_fn log_fn;         /* NULL: lines go to stderr */
  void *log_arg;
  int log_level;               /* lines above this level are dropped; INFO */
} cairn_options;

/* cairn_options_init - fill *opt with the defaults above. */
CAIRN_EXPORT void cairn_options_init(cairn_options *opt);

/* ------------------------------------------------------------------------
 * Opening and closing
 * --------------------------------------------------------------------- */

typedef struct cairn cairn;

/* cairn_open - open or create the database in directory dir.
 *
 * The directory is created if missing.  The log is replayed before the call
 * returns; a torn or zeroed tail is truncated and logged.  opt may be NULL
 * for the defaults.  On success *out owns the handle until cairn_close().
 *
 * Errors: CAIRN_EINVAL (bad options), CAIRN_EBUSY (another process has the
 * directory open), CAIRN_ECORRUPT (a bad frame followed by valid ones, or
 * a bad meta file; the message names the file and offset), CAIRN_EVERFMT,
 * CAIRN_ENOMEM, CAIRN_EFULL, CAIRN_EIO, or a negated errno from the
 * file system. */
CAIRN_EXPORT int cairn_open(const char *dir, const cairn_options *opt,
                            cairn **out);

/* cairn_close - flush and sync the log, stop the background threads and
 * free the handle.  Pending asynchronous completions are delivered first.
 * NULL is fine. */
CAIRN_EXPORT void cairn_close(cairn *db);

/* ------------------------------------------------------------------------
 * Namespaces
 * --------------------------------------------------------------------- */

typedef struct cairn_ns_options {
  cairn_durability durability; /* DEFAULT: the database's */
  uint64_t ttl_ms;             /* default lifespan of new entries; 0: none */
  uint64_t max_idle_ms;        /* default max-idle of new entries; 0: none */
  uint64_t max_entries;        /* entries of the namespace held in memory;
                                  0: no bound but max_memory's.  The rest
                                  stay in the store and are read from it
                                  on demand; nothing is lost or refused.
                                  Like max_memory, only entries already
                                  checkpointed can leave memory, so the
                                  bound is soft between checkpoints.  No
                                  effect on a MEMORY namespace */
} cairn_ns_options;

/* cairn_ns_define - set the defaults of namespace ns, creating it if needed.
 * Defaults apply to later writes; they are configuration, not data, so they
 * are not logged and must be given again after every open.  max_entries
 * takes effect from the next maintenance tick: the maintenance thread
 * evicts the namespace's least recently used clean entries down to about
 * 90% of it.
 * Errors: CAIRN_EINVAL. */
CAIRN_EXPORT int cairn_ns_define(cairn *db, const char *ns,
                                 const cairn_ns_options *o);

/* ------------------------------------------------------------------------
 * Writes
 * --------------------------------------------------------------------- */

/* Conditions on a write (cairn_write.cond). */
#define CAIRN_IF_ABSENT  0x1u /* fail with CAIRN_EEXISTS if the key is live */
#define CAIRN_IF_PRESENT 0x2u /* fail with CAIRN_ENOTFOUND if it is not */
#define CAIRN_IF_VERSION 0x4u /* fail with CAIRN_EVERSION unless the live
                                 entry has version w->version (a missing
                                 key has version 0) */
/* Expiry flags (cairn_write.flags). */
#define CAIRN_W_TTL      0x1u /* ttl_ms is set, even if 0 (0: no lifespan) */
#define CAIRN_W_MAX_IDLE 0x2u /* max_idle_ms is set, even if 0 */
#define CAIRN_W_KEEP_TTL 0x4u /* put keeps the existing entry's expiry */

/* Told when an asynchronous write is durable in its mode, or has failed.
 * rc is 0 or CAIRN_EIO / CAIRN_EFULL / CAIRN_ECLOSING; lsn is the write's
 * version.  Runs on the log thread: it must be short, must not block, and
 * must not call any cairn function that waits for the log (put, del, ...
 * without a callback, cairn_sync, cairn_close). */
typedef void (*cairn_done_fn)(void *arg, int rc, uint64_t lsn);

/* Options of one write.  NULL means all defaults.  Zero-initialise, then
 * set what you need. */
typedef struct cairn_write {
  uint64_t ttl_ms;      /* lifespan from now, with CAIRN_W_TTL or if > 0 */
  uint64_t max_idle_ms; /* sliding expiry, with CAIRN_W_MAX_IDLE or if > 0 */
  unsigned flags;       /* CAIRN_W_* */
  unsigned cond;        /* CAIRN_IF_* */
  uint64_t version;     /* expected version for CAIRN_IF_VERSION */
  cairn_durability durability; /* DEFAULT: the namespace's */
  int type;             /* cairn_put: CAIRN_TYPE_* of the value (0: a
                           string; a collection's value must be in the
                           layout of src/coll.h, as cairn_get gives it) */
  cairn_done_fn done;   /* if set, the call does not wait for the log */
  void *done_arg;
} cairn_write;

/* Asynchronous writes.  When w->done is set, a write call returns once the
 * write is applied in memory and queued for the log, and done(arg, rc, lsn)
 * is called exactly once, later, from the log thread, when the write is
 * durable in its mode (for MEMORY durability, before the call returns).
 * If the call itself returns an error, done is never called. */

/* cairn_put - store val under key.
 *
 * The entry's lifespan and max-idle come from w (see CAIRN_W_*), else from
 * the namespace's defaults; an entry dies at min(created + lifespan, last
 * access + max-idle).  On success the entry's version is the write's LSN.
 * Errors: CAIRN_EINVAL, CAIRN_EEXISTS / CAIRN_ENOTFOUND / CAIRN_EVERSION
 * (conditions), CAIRN_ENOMEM, CAIRN_EFULL, CAIRN_EIO, CAIRN_EREADONLY,
 * CAIRN_ECLOSING. */
CAIRN_EXPORT int cairn_put(cairn *db, const char *ns, const void *key,
                           size_t klen, const void *val, size_t vlen,
                           const cairn_write *w);

/* cairn_del - delete key.  Errors: CAIRN_ENOTFOUND if there is no live
 * entry, and those of cairn_put. */
CAIRN_EXPORT int cairn_del(cairn *db, const char *ns, const void *key,
                           size_t klen, const cairn_write *w);

/* ------------------------------------------------------------------------
 * Reads
 * --------------------------------------------------------------------- */

/* A value handed out by cairn_get or cairn_take.  data is malloc'd and
 * owned by the caller until cairn_value_free(); it is followed by a NUL
 * byte not counted in len, so a text value can be used as a C string. */
/* Value types.  Strings are plain bytes; collections are stored as one
 * value in an internal layout (src/coll.h) and changed element by element
 * with cairn_coll_apply. */
enum {
  CAIRN_TYPE_STRING = 0, CAIRN_TYPE_HASH = 1, CAIRN_TYPE_SET = 2,
  CAIRN_TYPE_ZSET = 3, CAIRN_TYPE_LIST = 4
};

typedef struct cairn_value {
  void *data;
  size_t len;
  int type;              /* CAIRN_TYPE_* */
  uint64_t version;      /* LSN of the entry's last write */
  int64_t expire_at_ms;  /* when it dies as of now (the earlier of its
                            lifespan and last access + max-idle), 0: never */
  uint64_t max_idle_ms;  /* max-idle set on it, 0 if none */
} cairn_value;

/* cairn_value_free - release v->data and zero *v.  NULL is fine. */
CAIRN_EXPORT void cairn_value_free(cairn_value *v);

/* cairn_get - copy the live entry at key into *out.  A read refreshes the
 * entry's last access (max-idle).  Never waits for a log flush.
 * Errors: CAIRN_ENOTFOUND (absent or expired), CAIRN_EINVAL, CAIRN_ENOMEM. */
CAIRN_EXPORT int cairn_get(cairn *db, const char *ns, const void *key,
                           size_t klen, cairn_value *out);

/* cairn_take - atomic get-and-delete, for single-use codes: of any number
 * of concurrent takes of one key, exactly one succeeds.  out may be NULL.
 * Errors: those of cairn_del. */
CAIRN_EXPORT int cairn_take(cairn *db, const char *ns, const void *key,
                            size_t klen, cairn_value *out,
                            const cairn_write *w);

/* cairn_incr - add delta to the signed 64-bit decimal integer stored at key
 * and return the result in *result (may be NULL).  A missing key counts
 * as 0 and is created with w's lifespan; an existing key keeps its expiry.
 * Errors: CAIRN_ENOTNUM (not a decimal integer), CAIRN_EOVERFLOW, and
 * those of cairn_put. */
CAIRN_EXPORT int cairn_incr(cairn *db, const char *ns, const void *key,
                            size_t klen, int64_t delta, int64_t *result,
                            const cairn_write *w);

/* cairn_expire - set or clear the lifespan and max-idle of a live entry
 * without touching its value: the lifespan is w->ttl_ms from now when
 * CAIRN_W_TTL is set (0 clears it), likewise max-idle with
 * CAIRN_W_MAX_IDLE.  Errors: CAIRN_ENOTFOUND, and those of cairn_put. */
CAIRN_EXPORT int cairn_expire(cairn *db, const char *ns, const void *key,
                              size_t klen, const cairn_write *w);

/* cairn_coll_apply - change the collection of the given type at key by
 * delta, an element-level change in the internal delta layout of
 * src/coll.h (used by cairnd; not yet a stable interface).  A missing key
 * is created; a collection left empty is deleted.  Only the delta is
 * logged.  w's conditions apply as for cairn_put; its expiry flags are
 * ignored (the key keeps its expiry, a new key gets the namespace's).
 * Errors: CAIRN_ETYPE (the key holds a string or another collection),
 * CAIRN_ETOOBIG (the collection, encoded, would exceed CAIRN_VALUE_MAX;
 * it is left as it was), CAIRN_EINVAL (a malformed delta, an index out of
 * range), and those of cairn_put. */
CAIRN_EXPORT int cairn_coll_apply(cairn *db, const char *ns, const void *key,
                                  size_t klen, int type, const void *delta,
                                  size_t dlen, const cairn_write *w);

/* ------------------------------------------------------------------------
 * Batches: atomic multi-key writes, one log record, all or nothing.
 * --------------------------------------------------------------------- */

typedef struct cairn_batch cairn_batch;

/* cairn_batch_new - start an empty batch.  Errors: CAIRN_ENOMEM. */
CAIRN_EXPORT int cairn_batch_new(cairn *db, cairn_batch **out);

/* cairn_batch_put / cairn_batch_del - add an operation.  The data is
 * copied.  w's conditions are checked at commit, against the state before
 * the batch; w's done and durability are ignored here.
 * Errors: CAIRN_EINVAL, CAIRN_ENOMEM (the batch is unchanged). */
CAIRN_EXPORT int cairn_batch_put(cairn_batch *b, const char *ns,
                                 const void *key, size_t klen,
                                 const void *val, size_t vlen,
                                 const cairn_write *w);
CAIRN_EXPORT int cairn_batch_del(cairn_batch *b, const char *ns,
                                 const void *key, size_t klen,
                                 const cairn_write *w);

/* cairn_batch_commit - apply every operation, or none: if any condition
 * fails, nothing is written and its error is returned.  A delete of a
 * missing key is not an error inside a batch.  w gives the durability
 * and the callback (its conditions are ignored).  The batch stays owned by
 * the caller and may be committed again or freed.
 * Errors: those of cairn_put. */
CAIRN_EXPORT int cairn_batch_commit(cairn_batch *b, const cairn_write *w);

/* cairn_batch_free - release the batch.  NULL is fine. */
CAIRN_EXPORT void cairn_batch_free(cairn_batch *b);

/* ------------------------------------------------------------------------
 * Write groups: several writes, one unit in the log.
 * --------------------------------------------------------------------- */

/* cairn_group_begin - until cairn_group_end, the writes this thread makes
 * are applied as usual, and reach the log in one frame together (with any
 * other thread's writes of that moment), so that recovery and followers
 * apply all of them or none.  Unlike a batch, each write sees the ones
 * before it, so a group fits a sequence of dependent commands (a Redis
 * MULTI/EXEC).  A group must be short, and every logged write inside it
 * must be asynchronous (cairn_write.done set): the log cannot flush until
 * the group ends, so a blocking write inside one gets CAIRN_EINVAL.  Where
 * the log would have to wait for disk space, writes inside a group get
 * CAIRN_EFULL.  Groups do not nest.  Errors: CAIRN_EINVAL. */
CAIRN_EXPORT int cairn_group_begin(cairn *db);
CAIRN_EXPORT int cairn_group_end(cairn *db);

/* ------------------------------------------------------------------------
 * Scans
 * --------------------------------------------------------------------- */

/* Called once per live entry.  key and val are valid only during the call.
 * Return 0 to go on, non-zero to end this cairn_scan call early (entries
 * that share the stopping entry's hash bucket are still delivered first,
 * so the cursor stays exact). */
typedef int (*cairn_scan_fn)(void *arg, const void *key, size_t klen,
                             const void *val, size_t vlen, uint64_t version,
                             int64_t expire_at_ms);

/* cairn_scan - visit the live entries of namespace ns whose keys start
 * with prefix (plen 0: all), resuming at *cursor (0 to start), examining
 * about count entries (live or not, matching or not, as Redis's SCAN
 * COUNT) before it returns.  On return *cursor is where to resume, and 0
 * once the scan is complete.  Entries come in hash order, not key order.
 * Every key live for the whole scan is visited exactly once; keys written
 * or deleted meanwhile may or may not be.  The callback runs under an
 * internal lock: it must not call back into the database.
 * Errors: CAIRN_EINVAL (also for a cursor this call never returned). */
CAIRN_EXPORT int cairn_scan(cairn *db, const char *ns, const void *prefix,
                            size_t plen, uint64_t *cursor, size_t count,
                            cairn_scan_fn fn, void *arg);

/* ------------------------------------------------------------------------
 * Durability and statistics
 * --------------------------------------------------------------------- */

/* cairn_sync - make every write accepted so far durable (fdatasync), then
 * return.  Errors: CAIRN_EIO, CAIRN_ECLOSING. */
CAIRN_EXPORT int cairn_sync(cairn *db);

/* cairn_checkpoint - bring the on-disk store (LMDB) up to the durable end
 * of the log now, and wait for it.  Checkpoints also run by themselves
 * (checkpoint_bytes, checkpoint_interval_ms, and at close), never stopping
 * reads or writes.  A restart replays only the log after the last one.
 * A checkpoint paces its writes to LMDB so that the log's fsyncs, and so
 * the writers' latency, barely notice it; it takes several times longer
 * than it would flat out (unless writers outrun it: then it hurries).
 * Errors: CAIRN_EFULL (the store reached map_bytes_max), CAIRN_EIO,
 * CAIRN_ECORRUPT, CAIRN_ECLOSING. */
CAIRN_EXPORT int cairn_checkpoint(cairn *db);

/* cairn_checkpoint_now - cairn_checkpoint without the pacing, for a
 * caller that waits on it (a synchronous save); one under way stops
 * pacing too.  The checkpoint at close is always this one.  Errors as
 * cairn_checkpoint. */
CAIRN_EXPORT int cairn_checkpoint_now(cairn *db);

/* The statistics type is `struct cairn_stats`: C does not allow a typedef
 * and a function to share the name cairn_stats. */
struct cairn_stats {
  uint64_t entries;          /* live and not yet reclaimed entries */
  uint64_t memory_bytes;     /* bytes held by entries and the table */
  uint64_t last_lsn;         /* highest LSN handed out */
  uint64_t written_lsn;      /* highest LSN written to the log */
  uint64_t durable_lsn;      /* highest LSN fdatasynced */
  uint64_t epoch;            /* epoch stamped on new log frames */
  uint64_t puts, dels, gets, get_hits;
  uint64_t expired;          /* entries reclaimed by expiry */
  uint64_t touches_logged;   /* last accesses of max-idle entries logged
                                (reads are not logged otherwise): at
                                eviction, at close, and once half a
                                max-idle after the last logged state */
  uint64_t log_frames;       /* frames written since open */
  uint64_t log_syncs;        /* fdatasyncs since open */
  uint64_t log_bytes;        /* log bytes written since open */
  uint64_t log_segments;     /* segment files in the log directory */
  uint64_t recovered_records;/* records replayed by cairn_open */
  uint64_t truncated_bytes;  /* torn tail cut by cairn_open */
  /* Checkpoints and memory. */
  uint64_t checkpoint_lsn;   /* the store holds every write up to here */
  uint64_t checkpoints;      /* checkpoints since open */
  uint64_t checkpoints_unpaced; /* of those, the ones that wrote at full
                                  speed, wholly or from some point on: the
                                  close, cairn_checkpoint_now, memory
                                  pressure, the log outrunning a paced one
                                  (a checkpoint_bytes of log written while
                                  it ran), or the store near its size cap */
  uint64_t checkpoint_ms;    /* duration of the last one */
  uint64_t checkpoint_bytes; /* log bytes the last one covered */
  uint64_t log_bytes_since_checkpoint;
  uint64_t disk_entries;     /* entries in the store */
  uint64_t mem_hits;         /* gets answered from memory */
  uint64_t store_reads;      /* lookups that went to the store */
  uint64_t evictions;        /* clean entries dropped for the budget */
  uint64_t max_memory;       /* the budget, 0 if none */
  uint64_t write_stalls;     /* writes that waited for memory (see
                                cairn_write_stalled) */
  int uring;                 /* 1 if the log uses io_uring */
  int readonly;              /* 1 after a fatal log error */
};

/* cairn_stats - fill *out.  Errors: CAIRN_EINVAL. */
CAIRN_EXPORT int cairn_stats(cairn *db, struct cairn_stats *out);

/* cairn_write_stalled - 1 while writes wait for memory, else 0.
 * Entries written since the last checkpoint cannot leave memory.  When
 * writers outrun the checkpoint, so that memory passes twice max_memory
 * with much of it not yet checkpointed, a write that waits for the log
 * (no cairn_write.done) first waits, up to 10 s, for the checkpoint and
 * the eviction to bring memory back under that (after a wait that timed
 * out, writes go on until a checkpoint completes).  Asynchronous writes
 * do not wait: a caller that must not block holds its writes back while
 * this says 1, as cairnd does with its clients' write commands, and one
 * that may block calls cairn_write_wait before each write. */
CAIRN_EXPORT int cairn_write_stalled(cairn *db);

/* cairn_write_wait - wait as a synchronous write would before it begins:
 * at once if writes are not stalled. */
CAIRN_EXPORT void cairn_write_wait(cairn *db);

/* cairn_set_max_memory - change max_memory while open (0: unbounded).
 * Lowering it evicts clean entries down to the new budget in the
 * background; entries written since the last checkpoint stay until the
 * next one, which a budget they overflow brings forward.
 * Errors: CAIRN_EINVAL. */
CAIRN_EXPORT int cairn_set_max_memory(cairn *db, uint64_t bytes);

#ifdef __cplusplus
}
#endif
#endif /* CAIRN_H */
