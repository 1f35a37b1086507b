/*
 * cobj.h - large collections held in memory as structures.
 *
 * A small collection lives in its entry as a blob (src/coll.h), which
 * every change rewrites: cheap while it is small.  Past COBJ_MIN_ELEMS
 * elements or COBJ_MIN_BYTES bytes, the entry holds a collection object
 * instead (ENTRY_F_OBJ, src/table.h), which applies the same deltas in
 * place in O(1) (hashes, sets, list ends) or O(log n) (sorted sets):
 *
 *   COLL_HASH, COLL_SET  a hash index over fields/members, and an array in
 *                        insertion order (holes compacted in bulk)
 *   COLL_ZSET            a skiplist in (score, member) order, and the index
 *   COLL_LIST            a deque of elements
 *
 * cobj_encode writes exactly the blob that coll_apply would have produced
 * from the same history, so the blob stays the one format of the log, the
 * store, dumps and cairn_get; the object is only a faster way to hold it.
 *
 * Locking is the entry's: changes under the shard's write lock, reads
 * under at least its read lock.
 */
#ifndef CAIRN_COBJ_H
#define CAIRN_COBJ_H

#include <stddef.h>
#include <stdint.h>

#include "cairn.h"
#include "coll.h"

#define COBJ_MIN_ELEMS 128u          /* a blob this long becomes an object */
#define COBJ_MIN_BYTES (16u * 1024u) /* ... or one this large */

struct cobj;

/* Build an object from blob (len bytes, len > 0) of type.  Errors:
 * CAIRN_ECORRUPT (a malformed blob, or one holding a field or member
 * twice, which only the blob form keeps as it is), CAIRN_ENOMEM. */
int cobj_from_blob(int type, const void *blob, size_t len, struct cobj **out);
void cobj_free(struct cobj *o); /* NULL is fine */

int cobj_type(const struct cobj *o);
size_t cobj_count(const struct cobj *o);
size_t cobj_blob_len(const struct cobj *o); /* O(1); 0 when empty */
size_t cobj_bytes(const struct cobj *o);    /* memory held, estimated */

/* Write the blob (cobj_blob_len bytes) into buf. */
void cobj_encode(const struct cobj *o, void *buf);

/* The blob, encoded on first use and kept until the next change; NULL if
 * out of memory.  Safe under a read lock (racing readers agree on one
 * copy).  For callers that need a pointer into the entry (entry_val); a
 * copy is better made with cobj_encode. */
const void *cobj_blob(struct cobj *o);

/* Apply delta (checked with coll_delta_check) to o, all or nothing, with
 * coll_apply's rules.  The result may be empty (cobj_count 0).  Errors:
 * CAIRN_EINVAL (LSET out of range, or a result above CAIRN_VALUE_MAX or
 * COLL_ELEMS_MAX), CAIRN_ECORRUPT (a malformed delta), CAIRN_ENOMEM; o is
 * then unchanged. */
int cobj_apply(struct cobj *o, const void *delta, size_t dlen);

/* Find field/member x (not for lists): 1 and *e filled (pointing into o,
 * valid until its next change), or 0. */
int cobj_find(const struct cobj *o, const void *x, size_t xlen,
              struct coll_elem *e);

/* ------------------------------------------------------------------------
 * Engine calls on collections (ops.c), for cairnd's commands and for
 * replay: they read and change objects where they are, where cairn_get
 * and cairn_coll_apply would copy or rewrite the whole collection.
 * --------------------------------------------------------------------- */

/* One field or member to look up. */
struct coll_probe {
  const void *x;   /* in */
  size_t xlen;
  int found;       /* out */
  double score;    /* zset: its score */
  char *val;       /* hash, with want_vals: a malloc'd, NUL-terminated copy
                    * of the value (the caller frees it); else NULL */
  size_t vlen;
};

struct coll_info {
  uint64_t version; /* 0 when absent */
  uint64_t count;   /* elements */
};

/* Look up the n probes in the collection of type at key, taking the
 * shard's write lock (a large blob becomes an object on the way, so that
 * the writes that follow are cheap).  A read as cairn_get is: it
 * refreshes max-idle and never waits for the log.  Returns 0 (found) or
 * CAIRN_ENOTFOUND (absent: *info and every probe zeroed); errors:
 * CAIRN_ETYPE, CAIRN_EINVAL, CAIRN_ENOMEM, CAIRN_EIO (store), with the
 * probes' vals freed. */
int db_coll_probe(cairn *db, const char *ns, const void *key, size_t klen,
                  int type, struct coll_probe *p, size_t n, int want_vals,
                  struct coll_info *info);

/* For db_replay (src/db.c, shard write lock held): apply a collection
 * delta record at lsn to the live entry old of the record's key in place
 * when it is an object, or a blob large enough to become one.  Returns 1
 * applied (the entry's version is lsn), 2 applied and left empty (the
 * caller deletes the key, as for an empty result), 0 not applied (old is
 * not such an entry: the caller applies the delta to the blob), or an
 * error (CAIRN_ECORRUPT: the delta does not apply; CAIRN_ENOMEM). */
struct rec;
struct table;
struct entry;
int db_coll_replay(struct table *t, uint64_t hash, struct entry *old,
                   const struct rec *r, uint64_t lsn);

#endif /* CAIRN_COBJ_H */
