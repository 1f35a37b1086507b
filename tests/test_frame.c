/*
 * test_frame.c - the log frame encoder and checker, and the hash and
 * compression modules it is built on.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "compress.h"
#include "frame.h"
#include "hash.h"
#include "limits.h"
#include "record.h"

/* ------------------------------------------------------------------------
 * Helpers.
 * --------------------------------------------------------------------- */

/* Deterministic bytes that LZ4 cannot shrink. */
static void noise(unsigned char *p, size_t n, uint64_t seed) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    p[i] = (unsigned char)x;
  }
}

static size_t put_rec(unsigned char *dst, uint8_t op, const char *key,
                      const void *val, uint32_t vlen) {
  struct rec r;
  memset(&r, 0, sizeof r);
  r.op = op;
  r.ns = "sessions";
  r.ns_len = 8;
  r.key = key;
  r.klen = (uint32_t)strlen(key);
  r.val = val;
  r.vlen = vlen;
  r.ts_ms = 1700000000000ull;
  return rec_encode(&r, dst);
}

/* A record whose every field is noise, so LZ4 finds nothing to share. */
static size_t put_noisy_rec(unsigned char *dst, uint32_t vlen, uint64_t seed) {
  unsigned char ns[16], key[16], ext[8], *val = malloc(vlen ? vlen : 1);
  noise(ns, sizeof ns, seed * 5 + 1);
  noise(key, sizeof key, seed * 5 + 2);
  noise(ext, sizeof ext, seed * 5 + 3);
  noise(val, vlen, seed * 5 + 4);
  unsigned char t[24];
  noise(t, sizeof t, seed * 5 + 5);
  struct rec r;
  memset(&r, 0, sizeof r);
  r.op = REC_PUT;
  r.ns = (const char *)ns;
  r.ns_len = (uint8_t)(9 + seed % 7);
  r.key = key;
  r.klen = (uint32_t)(5 + seed % 11);
  r.val = val;
  r.vlen = vlen;
  r.ext = ext;
  r.ext_len = (uint32_t)(1 + seed % 8);
  r.ts_ms = get_u64(t);
  r.expire_at_ms = (int64_t)get_u64(t + 8);
  r.max_idle_ms = get_u64(t + 16);
  size_t n = rec_encode(&r, dst);
  free(val);
  return n;
}

/* n records with values of vlen bytes, compressible or not, into raw. */
static size_t make_payload(unsigned char *raw, int n, uint32_t vlen,
                           int compressible) {
  unsigned char *val = malloc(vlen ? vlen : 1);
  size_t off = 0;
  for (int i = 0; i < n; i++) {
    if (!compressible) {
      off += put_noisy_rec(raw + off, vlen, (uint64_t)i + vlen * 131);
      continue;
    }
    memset(val, 'a' + i % 26, vlen);
    char key[32];
    snprintf(key, sizeof key, "user:%d", i);
    off += put_rec(raw + off, REC_PUT, key, val, vlen);
  }
  free(val);
  return off;
}

struct enc {
  unsigned char *buf; /* exactly len bytes, so ASan sees any overrun */
  size_t len;
};

static struct enc encode(uint64_t first, uint64_t last, unsigned flags,
                         const void *raw, size_t raw_len) {
  size_t cap = frame_bound(raw_len);
  unsigned char *tmp = malloc(cap);
  memset(tmp, 0xCC, cap); /* padding must be written, not inherited */
  size_t len = frame_encode(tmp, 42, first, last, flags, raw, raw_len);
  cr_assert_leq(len, cap);
  cr_assert_eq(len % FRAME_ALIGN, 0);
  struct enc e = {malloc(len), len};
  memcpy(e.buf, tmp, len);
  free(tmp);
  return e;
}

/* Full check as a log reader does it: header, length, payload. */
static int check(const unsigned char *buf, size_t len, struct frame_hdr *h,
                 const void **raw, void **scratch, const char **why) {
  *scratch = NULL;
  int rc = frame_hdr_decode(buf, len, h, why);
  if (rc) return rc;
  if (frame_len(h) > len) {
    *why = "truncated frame";
    return CAIRN_ECORRUPT;
  }
  *scratch = malloc(h->raw_len ? h->raw_len : 1);
  return frame_payload(buf, h, *scratch, raw, why);
}

static void assert_valid(const struct enc *e, const void *raw, size_t raw_len,
                         uint64_t first, uint64_t last, int lz4) {
  /* lz4: whether the payload must be stored compressed; -1: either. */
  struct frame_hdr h;
  const void *out = NULL;
  void *scratch;
  const char *why = NULL;
  cr_assert_eq(check(e->buf, e->len, &h, &out, &scratch, &why), 0, "%s", why);
  cr_assert_eq(h.magic, FRAME_MAGIC);
  cr_assert_eq(h.version, FRAME_VERSION);
  cr_assert_eq(h.epoch, 42);
  cr_assert_eq(h.first_lsn, first);
  cr_assert_eq(h.last_lsn, last);
  cr_assert_eq(h.raw_len, raw_len);
  if (lz4 >= 0) cr_assert_eq(!!(h.flags & FRAME_F_LZ4), lz4);
  cr_assert_eq(frame_len(&h), e->len);
  if (h.flags & FRAME_F_LZ4) {
    cr_assert_lt(h.stored_len, raw_len);
    cr_assert_eq(out, scratch);
  } else {
    cr_assert_eq(h.stored_len, raw_len);
    cr_assert_eq(out, e->buf + FRAME_HDR_BYTES, "raw frames decode in place");
  }
  if (raw_len) cr_assert_eq(memcmp(out, raw, raw_len), 0);
  for (size_t i = FRAME_HDR_BYTES + h.stored_len; i < e->len; i++)
    cr_assert_eq(e->buf[i], 0, "padding is zero");
  free(scratch);
}

/* ------------------------------------------------------------------------
 * Round trips.
 * --------------------------------------------------------------------- */

Test(frame, writes_the_magic_and_version_at_the_front) {
  unsigned char raw[256];
  size_t n = make_payload(raw, 1, 5, 0);
  struct enc e = encode(1, 1, 0, raw, n);
  cr_assert_eq(memcmp(e.buf, "CRNF", 4), 0);
  cr_assert_eq(get_u16(e.buf + 4), FRAME_VERSION);
  cr_assert_eq(get_u64(e.buf + 40),
               hash64_2(e.buf, 40, e.buf + FRAME_HDR_BYTES, n),
               "checksum covers bytes 0..39 and the stored payload");
  free(e.buf);
}

Test(frame, stores_incompressible_payloads_raw) {
  unsigned char raw[4096];
  size_t n = make_payload(raw, 3, 900, 0);
  struct enc e = encode(10, 12, 0, raw, n);
  assert_valid(&e, raw, n, 10, 12, 0);
  free(e.buf);
}

Test(frame, compresses_compressible_payloads) {
  size_t cap = 64 * 1024;
  unsigned char *raw = malloc(cap);
  size_t n = make_payload(raw, 50, 1000, 1);
  struct enc e = encode(100, 149, 0, raw, n);
  assert_valid(&e, raw, n, 100, 149, 1);
  cr_assert_lt(e.len, n / 4);
  free(e.buf);
  free(raw);
}

Test(frame, round_trips_a_batch_record) {
  unsigned char inner[1024], raw[2048];
  size_t in = put_rec(inner, REC_PUT, "a", "1", 1);
  in += put_rec(inner + in, REC_DEL, "b", NULL, 0);
  struct rec b;
  memset(&b, 0, sizeof b);
  b.op = REC_BATCH;
  b.ns = "sessions";
  b.ns_len = 8;
  b.klen = 2;
  b.val = inner;
  b.vlen = (uint32_t)in;
  size_t n = rec_encode(&b, raw);
  n += put_rec(raw + n, REC_EXPIRED, "c", NULL, 0);
  struct enc e = encode(5, 6, 0, raw, n);
  assert_valid(&e, raw, n, 5, 6, -1);
  free(e.buf);
}

Test(frame, encodes_end_frames_without_records) {
  struct enc e = encode(77, 76, FRAME_F_END, NULL, 0);
  cr_assert_eq(e.len, FRAME_HDR_BYTES);
  assert_valid(&e, NULL, 0, 77, 76, 0);
  struct frame_hdr h;
  const char *why;
  cr_assert_eq(frame_hdr_decode(e.buf, e.len, &h, &why), 0);
  cr_assert_eq(h.flags, FRAME_F_END);
  free(e.buf);
}

Test(frame, pads_every_length_to_the_alignment) {
  unsigned char raw[512];
  unsigned residues = 0;
  for (uint32_t vlen = 0; vlen < 40; vlen++) {
    size_t n = make_payload(raw, 1, vlen, 0);
    struct enc e = encode(1, 1, 0, raw, n);
    size_t stored = get_u32(e.buf + 36);
    residues |= 1u << ((FRAME_HDR_BYTES + stored) % FRAME_ALIGN);
    cr_assert_eq(e.len, (FRAME_HDR_BYTES + stored + FRAME_ALIGN - 1) /
                            FRAME_ALIGN * FRAME_ALIGN);
    cr_assert_leq(e.len, frame_bound(n));
    assert_valid(&e, raw, n, 1, 1, -1);
    free(e.buf);
  }
  cr_assert_eq(residues, (1u << FRAME_ALIGN) - 1, "every residue was tried");
}

Test(frame, bounds_the_worst_case) {
  cr_assert_geq(frame_bound(0), FRAME_HDR_BYTES);
  cr_assert_geq(frame_bound(1000), FRAME_HDR_BYTES + compress_bound(1000));
  cr_assert_eq(frame_bound(1000) % FRAME_ALIGN, 0);
  cr_assert_geq(FRAME_RAW_MAX, (uint64_t)GROUP_BYTES_MAX + RECORD_HDR_BYTES +
                                   NS_NAME_MAX + KEY_MAX + VALUE_MAX);
  cr_assert_geq(FRAME_RAW_MAX, (uint64_t)BATCH_BYTES_MAX + RECORD_HDR_BYTES);
}

/* ------------------------------------------------------------------------
 * Header rejections: each patches one field of a valid frame.  The header
 * is checked before the checksum, so no re-sealing is needed.
 * --------------------------------------------------------------------- */

static void hdr_rejected(const unsigned char *buf, size_t len) {
  struct frame_hdr h, before;
  memset(&h, 0x5A, sizeof h);
  before = h;
  const char *why = NULL;
  cr_assert_eq(frame_hdr_decode(buf, len, &h, &why), CAIRN_ECORRUPT);
  cr_assert_not_null(why);
  cr_assert_gt(strlen(why), 0);
  cr_assert_eq(memcmp(&h, &before, sizeof h), 0, "h untouched on error");
}

static struct enc sample(int compressible) {
  static unsigned char raw[8192];
  size_t n = make_payload(raw, 4, 600, compressible);
  return encode(20, 23, 0, raw, n);
}

Test(frame, rejects_bad_magic_and_zeroed_space) {
  struct enc e = sample(0);
  const char *why;
  struct frame_hdr h;
  e.buf[0] ^= 1;
  hdr_rejected(e.buf, e.len);
  frame_hdr_decode(e.buf, e.len, &h, &why);
  cr_assert_str_eq(why, "bad magic");
  unsigned char zero[FRAME_HDR_BYTES] = {0};
  hdr_rejected(zero, sizeof zero);
  free(e.buf);
}

Test(frame, rejects_unknown_versions_and_flags) {
  struct enc e = sample(0);
  put_u16(e.buf + 4, FRAME_VERSION + 1);
  hdr_rejected(e.buf, e.len);
  put_u16(e.buf + 4, 0);
  hdr_rejected(e.buf, e.len);
  put_u16(e.buf + 4, FRAME_VERSION);
  for (int bit = 2; bit < 16; bit++) {
    put_u16(e.buf + 6, (uint16_t)(1u << bit));
    hdr_rejected(e.buf, e.len);
  }
  free(e.buf);
}

Test(frame, rejects_an_lsn_range_running_backwards) {
  struct enc e = sample(0);
  put_u64(e.buf + 16, 20);
  put_u64(e.buf + 24, 18);
  hdr_rejected(e.buf, e.len);
  put_u64(e.buf + 24, UINT64_MAX); /* wraps to 0 when 1 is added */
  hdr_rejected(e.buf, e.len);
  free(e.buf);
}

Test(frame, rejects_more_records_than_the_payload_can_hold) {
  struct enc e = sample(0);
  put_u64(e.buf + 24, 20 + 1000000);
  hdr_rejected(e.buf, e.len);
  free(e.buf);
}

Test(frame, rejects_lengths_over_the_limits) {
  struct enc e = sample(0);
  put_u32(e.buf + 32, (uint32_t)FRAME_RAW_MAX + 1);
  put_u32(e.buf + 36, (uint32_t)FRAME_RAW_MAX + 1);
  hdr_rejected(e.buf, e.len);
  put_u32(e.buf + 32, UINT32_MAX);
  put_u32(e.buf + 36, UINT32_MAX);
  hdr_rejected(e.buf, e.len);
  free(e.buf);
}

Test(frame, rejects_a_raw_stored_length_unequal_to_raw_len) {
  struct enc e = sample(0);
  put_u32(e.buf + 36, get_u32(e.buf + 32) - 1);
  hdr_rejected(e.buf, e.len);
  put_u32(e.buf + 36, get_u32(e.buf + 32) + 8);
  hdr_rejected(e.buf, e.len);
  free(e.buf);
}

Test(frame, rejects_a_compressed_length_over_the_bound) {
  struct enc e = sample(1);
  cr_assert(get_u16(e.buf + 6) & FRAME_F_LZ4);
  put_u32(e.buf + 36, (uint32_t)compress_bound(get_u32(e.buf + 32)) + 1);
  hdr_rejected(e.buf, e.len);
  free(e.buf);
}

Test(frame, rejects_end_frames_with_records_or_compression) {
  struct enc e = sample(0);
  put_u16(e.buf + 6, FRAME_F_END); /* 4 records, payload */
  hdr_rejected(e.buf, e.len);
  free(e.buf);
  e = encode(5, 4, FRAME_F_END, NULL, 0);
  put_u16(e.buf + 6, FRAME_F_END | FRAME_F_LZ4);
  put_u32(e.buf + 36, 1);
  hdr_rejected(e.buf, e.len);
  put_u16(e.buf + 6, FRAME_F_END);
  put_u32(e.buf + 36, 0);
  put_u64(e.buf + 24, 5); /* one record, no payload */
  hdr_rejected(e.buf, e.len);
  free(e.buf);
}

Test(frame, rejects_a_short_header) {
  struct enc e = sample(0);
  for (size_t len = 0; len < FRAME_HDR_BYTES; len++) {
    unsigned char *b = malloc(len ? len : 1);
    memcpy(b, e.buf, len);
    hdr_rejected(b, len);
    free(b);
  }
  free(e.buf);
}

/* ------------------------------------------------------------------------
 * Damage anywhere is caught.
 * --------------------------------------------------------------------- */

static void truncations_rejected(const struct enc *e) {
  for (size_t cut = 0; cut < e->len; cut++) {
    unsigned char *b = malloc(cut ? cut : 1);
    memcpy(b, e->buf, cut);
    struct frame_hdr h;
    const void *raw;
    void *scratch;
    const char *why;
    cr_assert_eq(check(b, cut, &h, &raw, &scratch, &why), CAIRN_ECORRUPT,
                 "cut at %zu", cut);
    free(scratch);
    free(b);
  }
}

Test(frame, rejects_every_truncation) {
  struct enc e = sample(0);
  truncations_rejected(&e);
  free(e.buf);
  e = sample(1);
  truncations_rejected(&e);
  free(e.buf);
}

static void bit_flips_detected(const struct enc *e) {
  unsigned char *b = malloc(e->len);
  for (size_t bit = 0; bit < e->len * 8; bit++) {
    memcpy(b, e->buf, e->len);
    b[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    struct frame_hdr h;
    const void *raw;
    void *scratch;
    const char *why;
    cr_assert_eq(check(b, e->len, &h, &raw, &scratch, &why), CAIRN_ECORRUPT,
                 "flip of bit %zu went unnoticed", bit);
    free(scratch);
  }
  free(b);
}

Test(frame, detects_every_single_bit_flip) {
  unsigned char raw[256];
  size_t n;
  struct enc e = {NULL, 0};
  /* A frame stored raw and with padding to flip too. */
  for (uint32_t vlen = 8; vlen < 40; vlen++) {
    n = make_payload(raw, 1, vlen, 0);
    e = encode(3, 3, 0, raw, n);
    if (e.len != FRAME_HDR_BYTES + n && !(get_u16(e.buf + 6) & FRAME_F_LZ4))
      break;
    free(e.buf);
    e.buf = NULL;
  }
  cr_assert_not_null(e.buf, "no raw padded sample found");
  bit_flips_detected(&e);
  free(e.buf);
  n = make_payload(raw, 2, 60, 1);
  e = encode(3, 4, 0, raw, n);
  cr_assert(get_u16(e.buf + 6) & FRAME_F_LZ4);
  bit_flips_detected(&e);
  free(e.buf);
  e = encode(9, 8, FRAME_F_END, NULL, 0);
  bit_flips_detected(&e);
  free(e.buf);
}

/* ------------------------------------------------------------------------
 * Payloads that carry a good checksum but bad contents (a writer bug, or a
 * frame built by hand) are still refused.
 * --------------------------------------------------------------------- */

static void payload_rejected(const struct enc *e) {
  struct frame_hdr h;
  const void *raw;
  void *scratch;
  const char *why = NULL;
  cr_assert_eq(check(e->buf, e->len, &h, &raw, &scratch, &why),
               CAIRN_ECORRUPT);
  cr_assert_not_null(why);
  free(scratch);
}

Test(frame, rejects_a_record_count_unequal_to_the_lsn_range) {
  unsigned char raw[1024];
  size_t n = make_payload(raw, 3, 10, 0);
  struct enc e = encode(1, 2, 0, raw, n); /* 3 records, 2 LSNs */
  payload_rejected(&e);
  free(e.buf);
  e = encode(1, 4, 0, raw, n); /* 3 records, 4 LSNs */
  payload_rejected(&e);
  free(e.buf);
  cr_assert_eq(frame_records(raw, n, 3), 0);
  cr_assert_eq(frame_records(raw, n, 2), CAIRN_ECORRUPT);
  cr_assert_eq(frame_records(raw, n, 4), CAIRN_ECORRUPT);
  cr_assert_eq(frame_records(raw, n - 1, 3), CAIRN_ECORRUPT);
}

Test(frame, rejects_garbage_records) {
  unsigned char raw[400];
  noise(raw, sizeof raw, 1);
  raw[0] = 0; /* not a valid op */
  struct enc e = encode(1, 1, 0, raw, sizeof raw);
  payload_rejected(&e);
  free(e.buf);
}

/* A batch of count claimed sub-records over the sub-records in inner. */
static size_t put_batch(unsigned char *dst, uint32_t count,
                        const unsigned char *inner, size_t in) {
  struct rec b;
  memset(&b, 0, sizeof b);
  b.op = REC_BATCH;
  b.ns = "n";
  b.ns_len = 1;
  b.klen = count;
  b.val = inner;
  b.vlen = (uint32_t)in;
  return rec_encode(&b, dst);
}

Test(frame, rejects_malformed_batches) {
  unsigned char inner[512], nested[512], raw[1024];
  size_t in = put_rec(inner, REC_PUT, "a", "1", 1);
  in += put_rec(inner + in, REC_DEL, "b", NULL, 0);
  size_t n = put_batch(raw, 2, inner, in);
  cr_assert_eq(frame_records(raw, n, 1), 0);
  n = put_batch(raw, 3, inner, in); /* claims one too many */
  cr_assert_eq(frame_records(raw, n, 1), CAIRN_ECORRUPT);
  n = put_batch(raw, 1, inner, in); /* leaves one over */
  cr_assert_eq(frame_records(raw, n, 1), CAIRN_ECORRUPT);
  size_t nn = put_batch(nested, 2, inner, in); /* a batch inside a batch */
  n = put_batch(raw, 1, nested, nn);
  cr_assert_eq(frame_records(raw, n, 1), CAIRN_ECORRUPT);
  struct enc e = encode(1, 1, 0, raw, n);
  payload_rejected(&e);
  free(e.buf);
}

Test(frame, rejects_a_compressed_payload_that_does_not_decompress) {
  struct enc e = sample(1);
  uint32_t stored = get_u32(e.buf + 36);
  /* Damage the LZ4 block and re-seal it, so only decompression can tell. */
  memset(e.buf + FRAME_HDR_BYTES + stored / 2, 0xFF, stored / 2);
  put_u64(e.buf + 40, hash64_2(e.buf, 40, e.buf + FRAME_HDR_BYTES, stored));
  payload_rejected(&e);
  free(e.buf);
}

/* ------------------------------------------------------------------------
 * hash and compress: what the frame format stands on.
 * --------------------------------------------------------------------- */

Test(hash, matches_the_published_xxh3_and_xxh64_values) {
  /* Empty-input values from the xxHash reference: the checksums are part
   * of the on-disk format and must never change. */
  cr_assert_eq(hash64("", 0), 0x2D06800538D394C2ull);
  cr_assert_eq(hash_xxh64("", 0), 0xEF46DB3751D8E999ull);
}

Test(hash, hashes_two_parts_as_their_concatenation) {
  unsigned char buf[3000];
  noise(buf, sizeof buf, 3);
  static const size_t sizes[] = {0, 1, 40, 200, 255, 256, 257, 1000, 3000};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t total = sizes[i];
    uint64_t want = hash64(buf, total);
    for (size_t split = 0; split <= total; split += total / 7 + 1)
      cr_assert_eq(hash64_2(buf, split, buf + split, total - split), want,
                   "total %zu split %zu", total, split);
    cr_assert_eq(hash64_2(buf, total, NULL, 0), want);
  }
}

Test(hash, streams_as_one_shot_xxh64) {
  unsigned char buf[5000];
  noise(buf, sizeof buf, 4);
  hash_stream *s = hash_stream_new();
  cr_assert_not_null(s);
  cr_assert_eq(hash_stream_digest(s), hash_xxh64("", 0));
  for (size_t off = 0, step = 1; off < sizeof buf; off += step, step += 37) {
    size_t n = step < sizeof buf - off ? step : sizeof buf - off;
    hash_stream_update(s, buf + off, n);
  }
  cr_assert_eq(hash_stream_digest(s), hash_xxh64(buf, sizeof buf));
  hash_stream_free(s);
  hash_stream_free(NULL);
}

Test(compress, round_trips_and_demands_the_exact_length) {
  unsigned char src[4000], dst[5000], out[4001];
  for (size_t i = 0; i < sizeof src; i++) src[i] = (unsigned char)(i % 17);
  size_t n = compress_block(src, sizeof src, dst, sizeof dst);
  cr_assert_gt(n, 0);
  cr_assert_leq(n, compress_bound(sizeof src));
  cr_assert_eq(decompress_block(dst, n, out, sizeof src), 0);
  cr_assert_eq(memcmp(out, src, sizeof src), 0);
  cr_assert_eq(decompress_block(dst, n, out, sizeof src - 1), -1);
  cr_assert_eq(decompress_block(dst, n, out, sizeof src + 1), -1);
  cr_assert_eq(decompress_block(dst, n - 1, out, sizeof src), -1);
  cr_assert_eq(decompress_block(dst, 0, out, sizeof src), -1);
}

Test(compress, reports_output_that_does_not_fit) {
  unsigned char src[1000], dst[2000];
  noise(src, sizeof src, 5);
  cr_assert_eq(compress_block(src, sizeof src, dst, 10), 0);
  cr_assert_gt(compress_block(src, sizeof src, dst, compress_bound(1000)), 0);
}
