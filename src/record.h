/*
 * record.h - the log record: one change to the data.
 *
 * Records are packed back to back inside a frame's payload (frame.h).  The
 * layout, little-endian, with no padding:
 *
 *   off  size  field
 *     0     1  op            REC_PUT, REC_DEL, ... (enum rec_op)
 *     1     1  flags         0; bits reserved
 *     2     1  ns_len        1..NS_NAME_MAX
 *     3     1  type          value type: REC_T_* (a REC_COLL's collection)
 *     4     4  klen          key bytes; for REC_BATCH: number of sub-records
 *     8     4  vlen          value bytes; for REC_BATCH: bytes of sub-records
 *    12     4  ext_len       extension bytes (reserved for index membership)
 *    16     8  ts_ms         wall-clock time of the write
 *    24     8  expire_at_ms  absolute lifespan end, 0: none
 *    32     8  max_idle_ms   sliding expiry, 0: none
 *    40        ns, key, value, ext  (ns_len + klen + vlen + ext_len bytes;
 *              for REC_BATCH ns_len + vlen + ext_len: it has no key bytes)
 *
 * A REC_BATCH record carries, as its value, klen sub-records in this same
 * layout, none of which may be a REC_BATCH.  A frame of n records covers
 * LSNs first_lsn .. first_lsn + n - 1 in order; a batch takes one LSN.
 *
 * A record is valid when its op is known, flags are 0, type is known,
 * ns_len is 1..NS_NAME_MAX, klen is 1..KEY_MAX (for REC_BATCH:
 * 1..BATCH_OPS_MAX), vlen <= VALUE_MAX (REC_BATCH: BATCH_BYTES_MAX),
 * ext_len <= REC_EXT_MAX, and the lengths add up to no more than the bytes
 * that remain.
 */
#ifndef CAIRN_RECORD_H
#define CAIRN_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "limits.h"

/* Bytes of the reserved extension of one record. */
#define REC_EXT_MAX KEY_MAX

/* Largest encoded record: a maximal entry or a maximal batch. */
#define REC_BYTES_MAX                                                     \
  ((uint64_t)RECORD_HDR_BYTES + NS_NAME_MAX + REC_EXT_MAX +               \
   ((uint64_t)KEY_MAX + VALUE_MAX > BATCH_BYTES_MAX                       \
        ? (uint64_t)KEY_MAX + VALUE_MAX                                   \
        : (uint64_t)BATCH_BYTES_MAX))

_Static_assert(REC_BYTES_MAX < UINT32_MAX / 4, "a record fits a frame");

/* Record flags. */
#define REC_F_FRESH 0x1u /* REC_COLL: the collection did not exist before:
                            apply the delta to an empty one */

enum rec_op {
  REC_PUT = 1,     /* set value, expiry and max-idle */
  REC_DEL = 2,     /* delete (also what a take logs) */
  REC_EXPIRE = 3,  /* set expiry and max-idle, keep the value */
  REC_EXPIRED = 4, /* delete by background expiry */
  REC_BATCH = 5,   /* sub-records applied atomically under one LSN */
  REC_COLL = 6,    /* apply the value, a delta (coll.h), to a collection */
};

/* Value types; the same numbers as CAIRN_TYPE_* and coll.h's COLL_*. */
enum rec_type {
  REC_T_STRING = 0, REC_T_HASH = 1, REC_T_SET = 2, REC_T_ZSET = 3,
  REC_T_LIST = 4, REC_T_MAX = 4
};

struct rec {
  uint8_t op, flags, type;
  uint8_t ns_len;
  const char *ns;           /* not NUL-terminated when decoded */
  const void *key;          /* REC_BATCH: unused (NULL when decoded) */
  uint32_t klen;            /* REC_BATCH: sub-record count */
  const void *val;
  uint32_t vlen;            /* REC_BATCH: bytes of sub-records */
  const void *ext;
  uint32_t ext_len;
  uint64_t ts_ms;
  int64_t expire_at_ms;
  uint64_t max_idle_ms;
};

/* Bytes rec_encode() will write for r. */
size_t rec_size(const struct rec *r);

/* Encode r at dst, which has room for rec_size(r) bytes; returns that. */
size_t rec_encode(const struct rec *r, void *dst);

/* Decode the record at buf + *off (len bytes in buf).  On success fill *r
 * with pointers into buf, advance *off past it and return 0.  Returns
 * CAIRN_ECORRUPT on a malformed record (*off and *r untouched).
 * Sub-records of a REC_BATCH are not checked here; walk them with
 * rec_decode over r->val, r->vlen, expecting r->klen of them. */
int rec_decode(const void *buf, size_t len, size_t *off, struct rec *r);

/* Little-endian helpers for every on-disk and on-wire integer. */
static inline void put_u16(void *p, uint16_t v) {
  unsigned char *b = p; b[0] = (unsigned char)v; b[1] = (unsigned char)(v >> 8);
}
static inline void put_u32(void *p, uint32_t v) {
  unsigned char *b = p;
  for (int i = 0; i < 4; i++) b[i] = (unsigned char)(v >> (8 * i));
}
static inline void put_u64(void *p, uint64_t v) {
  unsigned char *b = p;
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
}
static inline uint16_t get_u16(const void *p) {
  const unsigned char *b = p; return (uint16_t)(b[0] | (b[1] << 8));
}
static inline uint32_t get_u32(const void *p) {
  const unsigned char *b = p; uint32_t v = 0;
  for (int i = 3; i >= 0; i--) v = (v << 8) | b[i];
  return v;
}
static inline uint64_t get_u64(const void *p) {
  const unsigned char *b = p; uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | b[i];
  return v;
}

#endif /* CAIRN_RECORD_H */
