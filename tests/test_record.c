/*
 * test_record.c - the log record encoder and decoder.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "limits.h"
#include "record.h"

static struct rec mkrec(uint8_t op, const char *ns, const void *key,
                        uint32_t klen, const void *val, uint32_t vlen) {
  struct rec r;
  memset(&r, 0, sizeof r);
  r.op = op;
  r.ns = ns;
  r.ns_len = (uint8_t)strlen(ns);
  r.key = key;
  r.klen = klen;
  r.val = val;
  r.vlen = vlen;
  r.ts_ms = 1700000000123ull;
  r.expire_at_ms = 1700000999000ll;
  r.max_idle_ms = 30000;
  return r;
}

/* Encode r into a fresh exact-size heap buffer (so ASan sees overruns). */
static unsigned char *encode(const struct rec *r, size_t *len) {
  *len = rec_size(r);
  unsigned char *b = malloc(*len);
  cr_assert_not_null(b);
  cr_assert_eq(rec_encode(r, b), *len);
  return b;
}

static void assert_same(const struct rec *a, const struct rec *b) {
  cr_assert_eq(a->op, b->op);
  cr_assert_eq(a->flags, b->flags);
  cr_assert_eq(a->type, b->type);
  cr_assert_eq(a->ns_len, b->ns_len);
  cr_assert_eq(memcmp(a->ns, b->ns, a->ns_len), 0);
  cr_assert_eq(a->klen, b->klen);
  if (a->op != REC_BATCH) cr_assert_eq(memcmp(a->key, b->key, a->klen), 0);
  cr_assert_eq(a->vlen, b->vlen);
  if (a->vlen) cr_assert_eq(memcmp(a->val, b->val, a->vlen), 0);
  cr_assert_eq(a->ext_len, b->ext_len);
  if (a->ext_len) cr_assert_eq(memcmp(a->ext, b->ext, a->ext_len), 0);
  cr_assert_eq(a->ts_ms, b->ts_ms);
  cr_assert_eq(a->expire_at_ms, b->expire_at_ms);
  cr_assert_eq(a->max_idle_ms, b->max_idle_ms);
}

static void roundtrip(const struct rec *r) {
  size_t len, off = 0;
  unsigned char *b = encode(r, &len);
  struct rec d;
  cr_assert_eq(rec_decode(b, len, &off, &d), 0);
  cr_assert_eq(off, len);
  assert_same(r, &d);
  free(b);
}

/* Decoding must fail and leave *off and *r as they were. */
static void assert_rejected(const void *buf, size_t len, size_t off0) {
  struct rec d, before;
  memset(&d, 0xA5, sizeof d);
  before = d;
  size_t off = off0;
  cr_assert_eq(rec_decode(buf, len, &off, &d), CAIRN_ECORRUPT);
  cr_assert_eq(off, off0);
  cr_assert_eq(memcmp(&d, &before, sizeof d), 0);
}

Test(record, encodes_the_documented_little_endian_layout) {
  struct rec r = mkrec(REC_PUT, "ns", "k", 1, "vv", 2);
  r.ext = "e";
  r.ext_len = 1;
  r.ts_ms = 0x0102030405060708ull;
  r.expire_at_ms = -2;
  r.max_idle_ms = 0x1122334455667788ull;
  size_t len;
  unsigned char *b = encode(&r, &len);
  static const unsigned char want[] = {
      1, 0, 2, 0,             /* op, flags, ns_len, type */
      1, 0, 0, 0,             /* klen */
      2, 0, 0, 0,             /* vlen */
      1, 0, 0, 0,             /* ext_len */
      8, 7, 6, 5, 4, 3, 2, 1, /* ts_ms */
      0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* expire_at_ms -2 */
      0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, /* max_idle_ms */
      'n', 's', 'k', 'v', 'v', 'e'};
  cr_assert_eq(len, sizeof want);
  cr_assert_eq(memcmp(b, want, len), 0);
  free(b);
}

Test(record, round_trips_every_entry_op) {
  for (uint8_t op = REC_PUT; op < REC_BATCH; op++) {
    struct rec r = mkrec(op, "sessions", "user:42", 7, "token-value", 11);
    roundtrip(&r);
  }
}

Test(record, round_trips_an_empty_value) {
  struct rec r = mkrec(REC_DEL, "s", "key", 3, NULL, 0);
  roundtrip(&r);
  cr_assert_eq(rec_size(&r), RECORD_HDR_BYTES + 1 + 3);
}

Test(record, round_trips_a_maximal_key_and_namespace) {
  char ns[NS_NAME_MAX + 1];
  memset(ns, 'n', NS_NAME_MAX);
  ns[NS_NAME_MAX] = 0;
  unsigned char *key = malloc(KEY_MAX);
  for (size_t i = 0; i < KEY_MAX; i++) key[i] = (unsigned char)(i * 7);
  struct rec r = mkrec(REC_PUT, ns, key, KEY_MAX, "v", 1);
  cr_assert_eq(r.ns_len, NS_NAME_MAX);
  roundtrip(&r);
  free(key);
}

Test(record, round_trips_the_extension_and_negative_expiry) {
  struct rec r = mkrec(REC_EXPIRE, "x", "k", 1, NULL, 0);
  r.ext = "index-tag";
  r.ext_len = 9;
  r.expire_at_ms = -1;
  roundtrip(&r);
}

Test(record, round_trips_a_batch_and_its_sub_records) {
  struct rec subs[3] = {
      mkrec(REC_PUT, "a", "k1", 2, "v1", 2),
      mkrec(REC_DEL, "b", "k2", 2, NULL, 0),
      mkrec(REC_EXPIRE, "c", "k3", 2, NULL, 0),
  };
  unsigned char inner[512];
  size_t n = 0;
  for (int i = 0; i < 3; i++) n += rec_encode(&subs[i], inner + n);
  struct rec b = mkrec(REC_BATCH, "a", NULL, 3, inner, (uint32_t)n);
  cr_assert_eq(rec_size(&b), RECORD_HDR_BYTES + 1 + n,
               "a batch has no key bytes");
  size_t len, off = 0;
  unsigned char *buf = encode(&b, &len);
  struct rec d;
  cr_assert_eq(rec_decode(buf, len, &off, &d), 0);
  cr_assert_eq(off, len);
  assert_same(&b, &d);
  cr_assert_null(d.key);
  size_t soff = 0;
  for (int i = 0; i < 3; i++) {
    struct rec s;
    cr_assert_eq(rec_decode(d.val, d.vlen, &soff, &s), 0);
    assert_same(&subs[i], &s);
  }
  cr_assert_eq(soff, d.vlen);
  free(buf);
}

Test(record, decodes_records_back_to_back_from_an_offset) {
  struct rec a = mkrec(REC_PUT, "ns", "a", 1, "1", 1);
  struct rec b = mkrec(REC_DEL, "ns", "bb", 2, NULL, 0);
  unsigned char buf[256];
  size_t n = 3; /* start past a few unrelated bytes */
  memset(buf, 0xEE, n);
  n += rec_encode(&a, buf + n);
  n += rec_encode(&b, buf + n);
  size_t off = 3;
  struct rec d;
  cr_assert_eq(rec_decode(buf, n, &off, &d), 0);
  assert_same(&a, &d);
  cr_assert_eq(rec_decode(buf, n, &off, &d), 0);
  assert_same(&b, &d);
  cr_assert_eq(off, n);
  assert_rejected(buf, n, n); /* nothing left */
}

/* ------------------------------------------------------------------------
 * Rejections.  Each patches one header field of a valid record.
 * --------------------------------------------------------------------- */

static unsigned char *valid(size_t *len) {
  static const char key[] = "key";
  struct rec r = mkrec(REC_PUT, "ns", key, 3, "value", 5);
  return encode(&r, len);
}

static unsigned char *valid_batch(size_t *len) {
  struct rec s = mkrec(REC_PUT, "ns", "k", 1, "v", 1);
  unsigned char inner[128];
  size_t n = rec_encode(&s, inner);
  struct rec b = mkrec(REC_BATCH, "ns", NULL, 1, inner, (uint32_t)n);
  return encode(&b, len);
}

static void reject_u8(size_t at, uint8_t v) {
  size_t len;
  unsigned char *b = valid(&len);
  b[at] = v;
  assert_rejected(b, len, 0);
  free(b);
}

static void reject_u32(int batch, size_t at, uint32_t v) {
  size_t len;
  unsigned char *b = batch ? valid_batch(&len) : valid(&len);
  put_u32(b + at, v);
  assert_rejected(b, len, 0);
  free(b);
}

Test(record, rejects_unknown_ops) {
  reject_u8(0, 0);
  reject_u8(0, REC_COLL + 1);
  reject_u8(0, 0xFF);
}

Test(record, rejects_unknown_flags_and_types) {
  for (int bit = 0; bit < 8; bit++) reject_u8(1, (uint8_t)(1u << bit));
  reject_u8(3, REC_T_MAX + 1);
  reject_u8(3, 0xFF);
}

Test(record, a_collection_delta_must_name_a_collection_type) {
  char buf[128];
  struct rec r = {.op = REC_COLL, .type = REC_T_HASH, .ns = "n", .ns_len = 1,
                  .key = "k", .klen = 1, .val = "d", .vlen = 1};
  size_t n = rec_encode(&r, buf), off = 0;
  struct rec out;
  cr_assert_eq(rec_decode(buf, n, &off, &out), 0);
  cr_assert_eq(out.type, REC_T_HASH);
  buf[3] = REC_T_STRING; /* the type byte */
  off = 0;
  cr_assert_eq(rec_decode(buf, n, &off, &out), CAIRN_ECORRUPT);
}

Test(record, rejects_bad_namespace_lengths) {
  reject_u8(2, 0);
  reject_u8(2, NS_NAME_MAX + 1);
  reject_u8(2, 0xFF);
}

Test(record, rejects_bad_key_lengths) {
  reject_u32(0, 4, 0);
  reject_u32(0, 4, KEY_MAX + 1);
  reject_u32(0, 4, UINT32_MAX);
}

Test(record, rejects_bad_value_and_extension_lengths) {
  reject_u32(0, 8, VALUE_MAX + 1);
  reject_u32(0, 8, UINT32_MAX);
  reject_u32(0, 12, REC_EXT_MAX + 1);
  reject_u32(0, 12, UINT32_MAX);
}

Test(record, rejects_bad_batch_counts_and_sizes) {
  reject_u32(1, 4, 0);
  reject_u32(1, 4, BATCH_OPS_MAX + 1);
  reject_u32(1, 8, BATCH_BYTES_MAX + 1);
  reject_u32(1, 8, UINT32_MAX);
}

Test(record, accepts_a_batch_count_up_to_its_limit) {
  /* klen of a batch is a count and takes no key bytes, so the record itself
   * still decodes; the sub-record walk (frame.c) catches the mismatch. */
  size_t len, off = 0;
  unsigned char *b = valid_batch(&len);
  put_u32(b + 4, BATCH_OPS_MAX);
  struct rec d;
  cr_assert_eq(rec_decode(b, len, &off, &d), 0);
  cr_assert_eq(d.klen, BATCH_OPS_MAX);
  cr_assert_eq(off, len);
  free(b);
}

Test(record, rejects_lengths_that_overrun_the_buffer) {
  size_t len;
  unsigned char *b = valid(&len);
  /* Each length alone within its limit, but more than the buffer holds. */
  put_u32(b + 4, 4);
  assert_rejected(b, len, 0);
  put_u32(b + 4, 3);
  put_u32(b + 8, VALUE_MAX);
  assert_rejected(b, len, 0);
  put_u32(b + 8, 5);
  put_u32(b + 12, 1);
  assert_rejected(b, len, 0);
  /* All at their limits: the sum must not wrap in any width. */
  b[2] = NS_NAME_MAX;
  put_u32(b + 4, KEY_MAX);
  put_u32(b + 8, VALUE_MAX);
  put_u32(b + 12, REC_EXT_MAX);
  assert_rejected(b, len, 0);
  free(b);
}

Test(record, rejects_an_offset_past_the_end) {
  size_t len;
  unsigned char *b = valid(&len);
  assert_rejected(b, len, len + 1);
  assert_rejected(b, len, SIZE_MAX);
  free(b);
}

Test(record, rejects_every_truncation) {
  size_t len;
  unsigned char *full = valid_batch(&len);
  for (size_t cut = 0; cut < len; cut++) {
    unsigned char *b = malloc(cut ? cut : 1);
    memcpy(b, full, cut);
    assert_rejected(b, cut, 0);
    free(b);
  }
  free(full);
  full = valid(&len);
  for (size_t cut = 0; cut < len; cut++) {
    unsigned char *b = malloc(cut ? cut : 1);
    memcpy(b, full, cut);
    assert_rejected(b, cut, 0);
    free(b);
  }
  free(full);
}

Test(record, survives_random_bytes_at_every_offset) {
  /* Headers that are mostly plausible, with random lengths, so that both
   * the limit checks and the overrun checks are reached. */
  uint64_t x = 88172645463325252ull;
  unsigned char buf[200];
  for (int round = 0; round < 3000; round++) {
    for (size_t i = 0; i < sizeof buf; i++) {
      x ^= x << 13; x ^= x >> 7; x ^= x << 17;
      buf[i] = (unsigned char)x;
    }
    buf[0] = (unsigned char)(1 + round % 5);
    buf[1] = buf[3] = 0;
    buf[2] = (unsigned char)(1 + round % NS_NAME_MAX);
    put_u32(buf + 4, (uint32_t)(x % 64) + (round & 1 ? 0 : (uint32_t)x));
    put_u32(buf + 8, (uint32_t)(x >> 8) % 128);
    put_u32(buf + 12, (uint32_t)(x >> 16) % 8);
    size_t len = (size_t)(x >> 32) % sizeof buf;
    for (size_t off0 = 0; off0 <= len; off0++) {
      size_t off = off0;
      struct rec d;
      if (rec_decode(buf, len, &off, &d) == 0) {
        cr_assert_gt(off, off0);
        cr_assert_leq(off, len);
      } else {
        cr_assert_eq(off, off0);
      }
    }
  }
}
