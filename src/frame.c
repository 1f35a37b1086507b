/*
 * frame.c - encoding and checking of log frames.
 *
 * The layout is documented in frame.h (and doc/format-wal.md).  Like the
 * record decoder, this is fed bytes and does no I/O.  A frame is checked
 * in two steps so that a reader can learn a frame's length from its header
 * alone, before it has the payload: frame_hdr_decode() checks everything
 * the header can say on its own, frame_payload() the checksum, the
 * compression and the records.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "compress.h"
#include "frame.h"
#include "hash.h"
#include "record.h"
#include "util.h"

/* Header field offsets. */
#define OFF_MAGIC      0
#define OFF_VERSION    4
#define OFF_FLAGS      6
#define OFF_EPOCH      8
#define OFF_FIRST_LSN  16
#define OFF_LAST_LSN   24
#define OFF_RAW_LEN    32
#define OFF_STORED_LEN 36
#define OFF_CHECKSUM   40 /* covers bytes 0..39, then the stored payload */

_Static_assert(OFF_CHECKSUM + 8 == FRAME_HDR_BYTES, "frame header is 48 bytes");
_Static_assert((FRAME_ALIGN & (FRAME_ALIGN - 1)) == 0, "alignment power of 2");
_Static_assert(FRAME_HDR_BYTES % FRAME_ALIGN == 0, "payload stays aligned");

static size_t align_up(size_t n) {
  return (n + FRAME_ALIGN - 1) & ~(size_t)(FRAME_ALIGN - 1);
}

/* Records in a frame; last_lsn + 1 == first_lsn (mod 2^64) means none. */
static uint64_t lsn_count(uint64_t first_lsn, uint64_t last_lsn) {
  return last_lsn - first_lsn + 1;
}

static int lsn_range_valid(uint64_t first_lsn, uint64_t last_lsn) {
  return last_lsn >= first_lsn || last_lsn + 1 == first_lsn;
}

/* ------------------------------------------------------------------------
 * Encoding.
 * --------------------------------------------------------------------- */

size_t frame_bound(size_t raw_len) {
  return align_up(FRAME_HDR_BYTES + compress_bound(raw_len));
}

/* Store the payload compressed if that saves at least a byte, else raw.
 * Returns the stored length and sets *lz4. */
static size_t frame_store(unsigned char *dst, const void *raw, size_t raw_len,
                          int *lz4) {
  *lz4 = 0;
  if (raw_len > 1) {
    size_t n = compress_block(raw, raw_len, dst, raw_len - 1);
    if (n > 0) {
      *lz4 = 1;
      return n;
    }
  }
  if (raw_len) memcpy(dst, raw, raw_len);
  return raw_len;
}

size_t frame_encode(void *dst, uint64_t epoch, uint64_t first_lsn,
                    uint64_t last_lsn, unsigned flags, const void *raw,
                    size_t raw_len) {
  cairn_assert((flags & ~(unsigned)FRAME_F_END) == 0);
  cairn_assert(raw_len <= FRAME_RAW_MAX);
  cairn_assert(lsn_range_valid(first_lsn, last_lsn));
  cairn_assert(!(flags & FRAME_F_END) ||
               (raw_len == 0 && lsn_count(first_lsn, last_lsn) == 0));
  unsigned char *p = dst;
  int lz4;
  size_t stored = frame_store(p + FRAME_HDR_BYTES, raw, raw_len, &lz4);
  if (lz4) flags |= FRAME_F_LZ4;

  put_u32(p + OFF_MAGIC, FRAME_MAGIC);
  put_u16(p + OFF_VERSION, FRAME_VERSION);
  put_u16(p + OFF_FLAGS, (uint16_t)flags);
  put_u64(p + OFF_EPOCH, epoch);
  put_u64(p + OFF_FIRST_LSN, first_lsn);
  put_u64(p + OFF_LAST_LSN, last_lsn);
  put_u32(p + OFF_RAW_LEN, (uint32_t)raw_len);
  put_u32(p + OFF_STORED_LEN, (uint32_t)stored);
  put_u64(p + OFF_CHECKSUM,
          hash64_2(p, OFF_CHECKSUM, p + FRAME_HDR_BYTES, stored));

  size_t end = FRAME_HDR_BYTES + stored, total = align_up(end);
  memset(p + end, 0, total - end);
  return total;
}

/* ------------------------------------------------------------------------
 * Decoding.
 * --------------------------------------------------------------------- */

/* What the header alone can rule out; NULL if nothing. */
static const char *frame_hdr_check(const struct frame_hdr *h) {
  if (h->magic == 0) return "zeroed header (end of data)";
  if (h->magic != FRAME_MAGIC) return "bad magic";
  if (h->version != FRAME_VERSION) return "unknown version";
  if (h->flags & ~FRAME_F_KNOWN) return "unknown flags";
  if (!lsn_range_valid(h->first_lsn, h->last_lsn)) return "bad LSN range";
  if (h->raw_len > FRAME_RAW_MAX) return "payload length over the limit";
  uint64_t n = lsn_count(h->first_lsn, h->last_lsn);
  if (n > h->raw_len / RECORD_HDR_BYTES) return "more records than payload";
  if (h->flags & FRAME_F_LZ4) {
    if (h->stored_len > compress_bound(h->raw_len))
      return "stored length over the compression bound";
  } else if (h->stored_len != h->raw_len) {
    return "stored length differs from raw length";
  }
  if (h->flags & FRAME_F_END) {
    if (h->flags & FRAME_F_LZ4) return "compressed end frame";
    if (n != 0 || h->raw_len != 0) return "end frame with records";
  }
  return NULL;
}

int frame_hdr_decode(const void *buf, size_t len, struct frame_hdr *h,
                     const char **why) {
  if (len < FRAME_HDR_BYTES) {
    *why = "truncated header";
    return CAIRN_ECORRUPT;
  }
  const unsigned char *p = buf;
  struct frame_hdr d;
  d.magic = get_u32(p + OFF_MAGIC);
  d.version = get_u16(p + OFF_VERSION);
  d.flags = get_u16(p + OFF_FLAGS);
  d.epoch = get_u64(p + OFF_EPOCH);
  d.first_lsn = get_u64(p + OFF_FIRST_LSN);
  d.last_lsn = get_u64(p + OFF_LAST_LSN);
  d.raw_len = get_u32(p + OFF_RAW_LEN);
  d.stored_len = get_u32(p + OFF_STORED_LEN);
  d.checksum = get_u64(p + OFF_CHECKSUM);
  const char *bad = frame_hdr_check(&d);
  if (bad) {
    *why = bad;
    return CAIRN_ECORRUPT;
  }
  *h = d;
  return 0;
}

size_t frame_len(const struct frame_hdr *h) {
  return align_up(FRAME_HDR_BYTES + (size_t)h->stored_len);
}

/* The sub-records of a batch: exactly count of them, none a batch, filling
 * the value exactly. */
static const char *batch_check(const struct rec *b) {
  size_t off = 0;
  struct rec s;
  for (uint32_t i = 0; i < b->klen; i++) {
    if (rec_decode(b->val, b->vlen, &off, &s) != 0)
      return "bad record in batch";
    if (s.op == REC_BATCH) return "batch nested in batch";
  }
  return off == b->vlen ? NULL : "trailing bytes in batch";
}

static const char *records_check(const void *raw, size_t raw_len,
                                 uint64_t n) {
  size_t off = 0;
  struct rec r;
  /* Bounded by n, and each record consumes at least a header. */
  for (uint64_t i = 0; i < n; i++) {
    if (rec_decode(raw, raw_len, &off, &r) != 0) return "bad record";
    if (r.op == REC_BATCH) {
      const char *bad = batch_check(&r);
      if (bad) return bad;
    }
  }
  return off == raw_len ? NULL : "trailing bytes after the records";
}

int frame_records(const void *raw, size_t raw_len, uint64_t n) {
  return records_check(raw, raw_len, n) ? CAIRN_ECORRUPT : 0;
}

/* Padding is outside the checksum; requiring zeros there means no bit of a
 * frame can change unnoticed. */
static int padding_is_zero(const unsigned char *p, const struct frame_hdr *h) {
  for (size_t i = FRAME_HDR_BYTES + h->stored_len; i < frame_len(h); i++)
    if (p[i] != 0) return 0;
  return 1;
}

int frame_payload(const void *buf, const struct frame_hdr *h, void *scratch,
                  const void **raw, const char **why) {
  const unsigned char *p = buf;
  const unsigned char *stored = p + FRAME_HDR_BYTES;
  if (hash64_2(p, OFF_CHECKSUM, stored, h->stored_len) != h->checksum) {
    *why = "checksum mismatch";
    return CAIRN_ECORRUPT;
  }
  if (!padding_is_zero(p, h)) {
    *why = "nonzero padding";
    return CAIRN_ECORRUPT;
  }
  const void *out = stored;
  if (h->flags & FRAME_F_LZ4) {
    if (decompress_block(stored, h->stored_len, scratch, h->raw_len) != 0) {
      *why = "bad compressed payload";
      return CAIRN_ECORRUPT;
    }
    out = scratch;
  }
  const char *bad =
      records_check(out, h->raw_len, lsn_count(h->first_lsn, h->last_lsn));
  if (bad) {
    *why = bad;
    return CAIRN_ECORRUPT;
  }
  *raw = out;
  return 0;
}

int frame_check_whole(const void *buf, size_t len, struct frame_hdr *h,
                      void **scratch, const void **raw, const char **why) {
  *scratch = NULL;
  if (!buf || frame_hdr_decode(buf, len, h, why) != 0) return CAIRN_ECORRUPT;
  /* END frames are a log's own business; a leader never ships empty
   * frames, and an empty one would make a segment's LSN range vague. */
  if (frame_len(h) != len) {
    *why = "frame length does not match its header";
    return CAIRN_ECORRUPT;
  }
  if ((h->flags & FRAME_F_END) || h->last_lsn < h->first_lsn) {
    *why = "a frame without records";
    return CAIRN_ECORRUPT;
  }
  if ((h->flags & FRAME_F_LZ4) &&
      !(*scratch = malloc(h->raw_len ? h->raw_len : 1)))
    return CAIRN_ENOMEM;
  if (frame_payload(buf, h, *scratch, raw, why) == 0) return 0;
  free(*scratch);
  *scratch = NULL;
  return CAIRN_ECORRUPT;
}
