/*
 * coll.h - collections: hashes, sets, sorted sets and lists.
 *
 * A collection is stored as one value (a blob) whose type is recorded with
 * the entry, in the log record and in the store.  A change to a collection
 * is logged as a delta (the element-level change: a field set, a member
 * removed, an element pushed), never as the whole collection, and applied
 * to the blob by coll_apply, the same function on the live write path, in
 * recovery and in the checkpointer, so all three agree.
 *
 * Blob layout (little-endian), by type:
 *   u32 count, then count elements:
 *   COLL_HASH  u32 flen, field, u32 vlen, value     (insertion order)
 *   COLL_SET   u32 len, member                      (insertion order)
 *   COLL_ZSET  u64 score (IEEE 754 bits), u32 len, member
 *                                        (sorted by score, then member)
 *   COLL_LIST  u32 len, element                     (head first)
 * Fields and members are unique.  An empty collection does not exist: a
 * delta that empties one deletes the key.
 *
 * Delta layout: a sequence of operations, each a u8 code then its
 * arguments (below), applied in order.  A delta is valid only for its type.
 *   CO_HSET    u32 flen, field, u32 vlen, value   add or replace
 *   CO_HDEL    u32 flen, field                    remove if present
 *   CO_SADD    u32 len, member                    add if absent
 *   CO_SREM    u32 len, member                    remove if present
 *   CO_ZSET    u64 score, u32 len, member         add, or move to score
 *   CO_ZREM    u32 len, member                    remove if present
 *   CO_LPUSH   u32 len, element                   insert at the head
 *   CO_RPUSH   u32 len, element                   append at the tail
 *   CO_LPOP    u32 n                              drop n from the head
 *   CO_RPOP    u32 n                              drop n from the tail
 *   CO_LSET    u64 index (two's complement), u32 len, element
 *   CO_LTRIM   u64 start, u64 stop (two's complement, Redis LTRIM rules)
 *   CO_LREM    u64 count (two's complement), u32 len, element (Redis LREM)
 *   CO_LINSERT u8 after, u32 plen, pivot, u32 len, element
 *
 * Operations are small and the blob is rewritten per change: cheap for
 * the small collections of sessions and indexes.  Large collections are
 * held in memory as structures instead (src/cobj.h), which apply the same
 * deltas in place and encode to the same blob.
 */
#ifndef CAIRN_COLL_H
#define CAIRN_COLL_H

#include <stddef.h>
#include <stdint.h>

enum coll_type { COLL_HASH = 1, COLL_SET = 2, COLL_ZSET = 3, COLL_LIST = 4 };

enum coll_op {
  CO_HSET = 1, CO_HDEL, CO_SADD, CO_SREM, CO_ZSET, CO_ZREM, CO_LPUSH,
  CO_RPUSH, CO_LPOP, CO_RPOP, CO_LSET, CO_LTRIM, CO_LREM, CO_LINSERT
};

#define COLL_ELEMS_MAX (1u << 30) /* elements in one collection */

/* ------------------------------------------------------------------------
 * Reading a blob.
 * --------------------------------------------------------------------- */

struct coll_elem {
  const void *a;   /* field (hash), member (set, zset) or element (list) */
  size_t alen;
  const void *b;   /* value (hash only) */
  size_t blen;
  double score;    /* zset only */
};

struct coll_iter {
  int type;
  const uint8_t *p, *end;
  uint32_t left;
  /* Zsets: the previous element, so each one is checked to sort after it
   * (an unsorted or duplicated zset blob is CAIRN_ECORRUPT). */
  const uint8_t *zm;
  size_t zmlen;
  double zscore;
};

/* Start reading blob (len bytes; len 0 is the empty collection).
 * Returns the element count, or CAIRN_ECORRUPT. */
long coll_iter_init(struct coll_iter *it, int type, const void *blob,
                    size_t len);

/* The next element: 1, 0 at the end, or CAIRN_ECORRUPT (a truncated
 * element, bytes after the last one, a NaN score, or a zset element out
 * of order).  Pointers in *e point into the blob. */
int coll_next(struct coll_iter *it, struct coll_elem *e);

/* Find field/member x; returns 1 and fills *e, 0 if absent, or
 * CAIRN_ECORRUPT.  For lists, x is compared with elements. */
int coll_find(int type, const void *blob, size_t len, const void *x,
              size_t xlen, struct coll_elem *e);

/* ------------------------------------------------------------------------
 * Building a delta.
 * --------------------------------------------------------------------- */

struct coll_delta {
  uint8_t *buf;
  size_t len, cap;
  int err;        /* CAIRN_ENOMEM once an append failed; CAIRN_EINVAL once
                   * an argument could not be encoded (a length above
                   * UINT32_MAX, a NaN score).  Later appends do nothing. */
  uint32_t ops;
};

void coll_delta_init(struct coll_delta *d);
void coll_delta_free(struct coll_delta *d);
void coll_hset(struct coll_delta *d, const void *f, size_t fl, const void *v,
               size_t vl);
void coll_hdel(struct coll_delta *d, const void *f, size_t fl);
void coll_sadd(struct coll_delta *d, const void *m, size_t ml);
void coll_srem(struct coll_delta *d, const void *m, size_t ml);
void coll_zset(struct coll_delta *d, double score, const void *m, size_t ml);
void coll_zrem(struct coll_delta *d, const void *m, size_t ml);
void coll_push(struct coll_delta *d, int tail, const void *x, size_t xl);
void coll_pop(struct coll_delta *d, int tail, uint32_t n);
void coll_lset(struct coll_delta *d, int64_t index, const void *x, size_t xl);
void coll_ltrim(struct coll_delta *d, int64_t start, int64_t stop);
void coll_lrem(struct coll_delta *d, int64_t count, const void *x, size_t xl);
void coll_linsert(struct coll_delta *d, int after, const void *pivot,
                  size_t pl, const void *x, size_t xl);

/* ------------------------------------------------------------------------
 * Applying a delta.
 * --------------------------------------------------------------------- */

/* Apply delta to blob (len bytes, 0 for a new collection) of the given
 * type.  On success *out is a malloc'd new blob of *outlen bytes, or NULL
 * with *outlen 0 when the collection is left empty (the key goes).
 * Errors: CAIRN_ECORRUPT (a malformed blob or delta, or an operation of
 * another type), CAIRN_EINVAL (CO_LSET out of range), CAIRN_ENOMEM. */
int coll_apply(int type, const void *blob, size_t len, const void *delta,
               size_t dlen, void **out, size_t *outlen);

/* Check a delta's form without applying it (log records from disk). */
int coll_delta_check(int type, const void *delta, size_t dlen);

/* ------------------------------------------------------------------------
 * Reading a delta (for src/cobj.c, which applies deltas to its own
 * structures with the same rules).
 * --------------------------------------------------------------------- */

struct coll_opargs {
  int code;          /* CO_* */
  const void *a;     /* field, member, element; LINSERT: the pivot */
  size_t alen;
  const void *b;     /* HSET value; LINSERT: the element */
  size_t blen;
  double score;
  int64_t i1, i2;    /* LSET index, LREM count, LTRIM start and stop */
  uint32_t n;        /* LPOP/RPOP */
  int after;
};

/* The next operation of a delta of type at *p (before end): 1 (and *p
 * moved past it), 0 at the end, or CAIRN_ECORRUPT. */
int coll_op_next(int type, const uint8_t **p, const uint8_t *end,
                 struct coll_opargs *o);

/* Redis's zset order: score, then member bytes, shorter first. */
int coll_zcmp(double s1, const void *m1, size_t l1, double s2,
              const void *m2, size_t l2);

/* Redis's LTRIM on n elements: keep *keep elements from position *from. */
void coll_ltrim_range(int64_t start, int64_t stop, size_t n, size_t *from,
                      size_t *keep);

#endif /* CAIRN_COLL_H */
