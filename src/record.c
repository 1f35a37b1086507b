/*
 * record.c - encoding and decoding of log records.
 *
 * The layout is documented in record.h (and doc/format-wal.md).  Decoding
 * is fed bytes and does no I/O; it trusts nothing it reads: every length
 * is checked against its limit and, in 64 bits, against what remains.
 */
#include "config.h"

#include <string.h>

#include "cairn.h"
#include "record.h"
#include "util.h"

/* Header field offsets. */
#define OFF_OP      0
#define OFF_FLAGS   1
#define OFF_NS_LEN  2
#define OFF_TYPE    3
#define OFF_KLEN    4
#define OFF_VLEN    8
#define OFF_EXT_LEN 12
#define OFF_TS      16
#define OFF_EXPIRE  24
#define OFF_IDLE    32

_Static_assert(OFF_IDLE + 8 == RECORD_HDR_BYTES, "record header is 40 bytes");

/* Key bytes that follow the namespace: a batch's klen is a count. */
static uint32_t rec_key_bytes(const struct rec *r) {
  return r->op == REC_BATCH ? 0 : r->klen;
}

/* Whether the header fields of r are within the format's limits.  Shared
 * by the encoder (where a failure is a bug) and the decoder (where it is
 * corruption), so the two cannot drift apart. */
static int rec_fields_valid(const struct rec *r) {
  if (r->op < REC_PUT || r->op > REC_COLL) return 0;
  if (r->flags & ~(r->op == REC_COLL ? REC_F_FRESH : 0u)) return 0;
  if (r->type > REC_T_MAX) return 0;
  if (r->op == REC_COLL && r->type == REC_T_STRING) return 0;
  if (r->ns_len == 0 || r->ns_len > NS_NAME_MAX) return 0;
  if (r->ext_len > REC_EXT_MAX) return 0;
  if (r->op == REC_BATCH)
    return r->klen >= 1 && r->klen <= BATCH_OPS_MAX &&
           r->vlen <= BATCH_BYTES_MAX;
  return r->klen >= 1 && r->klen <= KEY_MAX && r->vlen <= VALUE_MAX;
}

/* Bytes after the header, in 64 bits so corrupt lengths cannot wrap. */
static uint64_t rec_body_bytes(const struct rec *r) {
  return (uint64_t)r->ns_len + rec_key_bytes(r) + r->vlen + r->ext_len;
}

size_t rec_size(const struct rec *r) {
  return RECORD_HDR_BYTES + (size_t)rec_body_bytes(r);
}

static unsigned char *put_bytes(unsigned char *p, const void *src,
                                size_t len) {
  if (len) memcpy(p, src, len); /* src may be NULL when len is 0 */
  return p + len;
}

size_t rec_encode(const struct rec *r, void *dst) {
  cairn_assert(rec_fields_valid(r));
  unsigned char *p = dst;
  p[OFF_OP] = r->op;
  p[OFF_FLAGS] = r->flags;
  p[OFF_NS_LEN] = r->ns_len;
  p[OFF_TYPE] = r->type;
  put_u32(p + OFF_KLEN, r->klen);
  put_u32(p + OFF_VLEN, r->vlen);
  put_u32(p + OFF_EXT_LEN, r->ext_len);
  put_u64(p + OFF_TS, r->ts_ms);
  put_u64(p + OFF_EXPIRE, (uint64_t)r->expire_at_ms);
  put_u64(p + OFF_IDLE, r->max_idle_ms);
  unsigned char *q = p + RECORD_HDR_BYTES;
  q = put_bytes(q, r->ns, r->ns_len);
  q = put_bytes(q, r->key, rec_key_bytes(r));
  q = put_bytes(q, r->val, r->vlen);
  q = put_bytes(q, r->ext, r->ext_len);
  return (size_t)(q - p);
}

int rec_decode(const void *buf, size_t len, size_t *off, struct rec *r) {
  if (*off > len || len - *off < RECORD_HDR_BYTES) return CAIRN_ECORRUPT;
  const unsigned char *p = (const unsigned char *)buf + *off;
  struct rec d;
  memset(&d, 0, sizeof d);
  d.op = p[OFF_OP];
  d.flags = p[OFF_FLAGS];
  d.ns_len = p[OFF_NS_LEN];
  d.type = p[OFF_TYPE];
  d.klen = get_u32(p + OFF_KLEN);
  d.vlen = get_u32(p + OFF_VLEN);
  d.ext_len = get_u32(p + OFF_EXT_LEN);
  d.ts_ms = get_u64(p + OFF_TS);
  d.expire_at_ms = (int64_t)get_u64(p + OFF_EXPIRE);
  d.max_idle_ms = get_u64(p + OFF_IDLE);
  if (!rec_fields_valid(&d)) return CAIRN_ECORRUPT;
  uint64_t body = rec_body_bytes(&d);
  if (body > len - *off - RECORD_HDR_BYTES) return CAIRN_ECORRUPT;

  const unsigned char *q = p + RECORD_HDR_BYTES;
  d.ns = (const char *)q;
  q += d.ns_len;
  d.key = d.op == REC_BATCH ? NULL : q;
  q += rec_key_bytes(&d);
  d.val = q;
  q += d.vlen;
  d.ext = d.ext_len ? q : NULL;
  *r = d;
  *off += RECORD_HDR_BYTES + (size_t)body;
  return 0;
}
