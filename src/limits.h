/*
 * limits.h - every bound of cairn in one place.
 *
 * Each limit is named, and the relations between them are checked at
 * compile time below.  Public limits are mirrored in include/cairn.h.
 */
#ifndef CAIRN_LIMITS_H
#define CAIRN_LIMITS_H

#include "cairn.h"

/* Entries. */
#define KEY_MAX           CAIRN_KEY_MAX     /* bytes in a key */
#define VALUE_MAX         CAIRN_VALUE_MAX   /* bytes in a value */
#define NS_NAME_MAX       CAIRN_NS_MAX      /* bytes in a namespace name */
#define NS_COUNT_MAX      1024u             /* namespaces per database */
#define BATCH_OPS_MAX     65536u            /* operations in one batch */
#define BATCH_BYTES_MAX   (256u * 1024u * 1024u) /* encoded bytes of a batch */

/* Files. */
#define PATH_BYTES_MAX    4096u             /* a path built from a data dir */

/* Log. */
#define SEGMENT_BYTES_DEFAULT (64ull * 1024 * 1024)
#define SEGMENT_BYTES_MIN     (1ull * 1024 * 1024)
#define SEGMENT_BYTES_MAX     (1ull * 1024 * 1024 * 1024)
#define GROUP_BYTES_DEFAULT   (4u * 1024 * 1024)  /* records in one flush */
#define GROUP_BYTES_MIN       (64u * 1024)
#define GROUP_BYTES_MAX       (64u * 1024 * 1024)
#define INTERVAL_MS_DEFAULT   1000u
#define URING_ENTRIES         8u                  /* SQ depth of the log ring */
#define SEGMENT_SCAN_MAX      (1ull << 40)        /* bytes a recovery reads */

/* Checkpoints and the store (LMDB). */
#define CKPT_BYTES_DEFAULT       (256ull * 1024 * 1024)
#define CKPT_INTERVAL_MS_DEFAULT (5u * 60 * 1000)
#define CKPT_TXN_KEYS            50000u  /* most keys per LMDB write txn:
                                            LMDB dirties at most 128Ki pages */
#define CKPT_TXN_KEYS_MIN        16u     /* fewest keys per txn */
#define CKPT_TXN_KEYS_FIRST      256u    /* keys in a checkpoint's first txn */
#define CKPT_COMMIT_NS           (250u * 1000u) /* aimed-at commit (flush)
                                            time of one checkpoint txn */
#define CKPT_REST_PER_COMMIT     1u      /* pause after a txn, in commit
                                            times: the disk's duty <= 1/2 */
#define MAP_BYTES_INITIAL        (64ull * 1024 * 1024)
#define MAP_BYTES_MIN            (1ull * 1024 * 1024)
#define MAP_BYTES_MAX_DEFAULT    (1ull << 40)
#define STORE_READERS            256u
#define STORE_READ_SLOTS         32u     /* read txns kept, one per slot */

/* Memory budget. */
#define EVICT_BATCH       512u  /* entries examined per shard visit */
#define EVICT_LOW_PCT     95u   /* eviction stops at this share of budget */
#define EVICT_INLINE_PCT  110u  /* above this, inserting threads evict too */
#define WRITE_STALL_PCT   200u  /* above this, writes wait for memory ... */
#define WRITE_STALL_LOG_DIV 8u  /* ... while the records logged since the
                                   checkpoint are entries / this (maint.c) */
#define WRITE_STALL_NS_MAX (10 * 1000000000ull) /* longest wait of a write */
#define EVICT_RETRY_MS    1000u /* a pass that found nothing: the next one
                                   waits a checkpoint, or this long */
#define ADMIT_BITS        (1u << 22) /* doorkeeper of reads from the store:
                                        512 KiB, cleared when half full */
#define ADMIT_ROOM_PCT    90u   /* below this share of the budget, every
                                   read from the store is cached */
#define ADMIT_STOP_PCT    115u  /* above it, none is (but a max-idle's):
                                   memory waits for the eviction */

/* Expiry. */
#define EXPIRE_TICK_MS_DEFAULT   100u
#define EXPIRE_SCAN_MAX_DEFAULT  20000u

/* Table. */
#define TABLE_SHARD_BITS   8u       /* 256 shards per namespace */
#define TABLE_SHARDS       (1u << TABLE_SHARD_BITS)

/* A record header is 40 bytes (src/record.h); a frame header 48. */
#define RECORD_HDR_BYTES   40u
#define FRAME_HDR_BYTES    48u

_Static_assert(KEY_MAX <= (1u << 17), "entry packs klen into 17 bits");
_Static_assert(CKPT_TXN_KEYS_MIN <= CKPT_TXN_KEYS_FIRST &&
               CKPT_TXN_KEYS_FIRST <= CKPT_TXN_KEYS, "checkpoint txn sizes");
_Static_assert(STORE_READ_SLOTS < STORE_READERS, "kept txns hold reader slots");
_Static_assert(VALUE_MAX < UINT32_MAX / 2, "value length fits a u32");
_Static_assert(NS_NAME_MAX <= 255, "record stores ns length in one byte");
_Static_assert(GROUP_BYTES_DEFAULT >= GROUP_BYTES_MIN &&
               GROUP_BYTES_DEFAULT <= GROUP_BYTES_MAX, "group default");
_Static_assert(SEGMENT_BYTES_DEFAULT >= SEGMENT_BYTES_MIN, "segment default");
_Static_assert(GROUP_BYTES_MAX <= SEGMENT_BYTES_DEFAULT,
               "a full group fits in a default segment");
_Static_assert((uint64_t)RECORD_HDR_BYTES + NS_NAME_MAX + KEY_MAX + VALUE_MAX
               < (uint64_t)UINT32_MAX, "one record fits a frame's u32 lengths");

#endif /* CAIRN_LIMITS_H */
