/*
 * dump.c - the dump file format: writer and reader.
 *
 * Layout (all integers little-endian; doc/format-dump.md mirrors this):
 *
 * Header, 64 bytes, at offset 0:
 *   off size field
 *     0    8 magic        "CAIRNDMP"
 *     8    4 version      DUMP_VERSION (1)
 *    12    4 flags        0
 *    16    8 lsn          the source's state as of this LSN
 *    24    8 epoch        the source's epoch
 *    32    8 created_ms   creation time, ms since the Unix epoch (signed)
 *    40    8 entries      number of entries in the file
 *    48    8 reserved     0
 *    56    8 checksum     XXH64 (seed 0) of bytes 0..55
 *
 * Then zero or more blocks, each a 32-byte header and a payload:
 *     0    4 tag          "DBLK"
 *     4    4 flags        bit 0: the payload is an LZ4 block (the LZ4
 *                         block format, not the frame format); else raw.
 *                         Other bits 0
 *     8    4 entries      entries in the block, 1..DUMP_BLOCK_ENTRIES_MAX
 *    12    4 raw_len      bytes of the records, 1..DUMP_BLOCK_RAW_MAX
 *    16    4 stored_len   payload bytes (raw_len if not compressed)
 *    20    4 reserved     0
 *    24    8 checksum     XXH64 of block bytes 0..23 then the payload
 *    32      payload
 *
 * The records, back to back in the raw payload (36-byte header):
 *     0    1 ns_len       1..64
 *     1    1 type         0 string, 1 hash, 2 set, 3 zset, 4 list
 *     2    2 flags        0
 *     4    4 klen         1..65536
 *     8    4 vlen         0..64 MiB
 *    12    8 expire_at_ms absolute lifespan end (signed), 0: none
 *    20    8 max_idle_ms  0: none
 *    28    8 last_access  the source's last access time (signed), 0: unknown
 *    36      ns, key, value
 * A block's records fill its raw_len exactly.
 *
 * Trailer, 24 bytes:
 *     0    4 tag          "DEND"
 *     4    4 blocks       number of blocks
 *     8    8 entries      number of entries (equal to the header's)
 *    16    8 checksum     XXH64 of every byte of the file before this field
 * Nothing follows the trailer.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cairn.h"
#include "compress.h"
#include "dump.h"
#include "hash.h"
#include "record.h"
#include "util.h"

static const char dump_magic[8] = {'C', 'A', 'I', 'R', 'N', 'D', 'M', 'P'};
static const char blk_tag[4] = {'D', 'B', 'L', 'K'};
static const char end_tag[4] = {'D', 'E', 'N', 'D'};

#define BLK_F_LZ4 0x1u

_Static_assert(DUMP_BLOCK_RAW_MAX < UINT32_MAX / 2, "raw_len fits a u32");

/* Whether an entry's fields are in range (both sides check the same). */
static int entry_valid(size_t ns_len, int type, size_t klen, size_t vlen) {
  return ns_len >= 1 && ns_len <= NS_NAME_MAX && type >= 0 &&
         type <= REC_T_MAX && klen >= 1 && klen <= KEY_MAX &&
         vlen <= VALUE_MAX;
}

/* Checksum of a block: its first 24 header bytes, then the payload. */
static uint64_t blk_checksum(const uint8_t *hdr, const void *payload,
                             size_t len, int *oom) {
  hash_stream *h = hash_stream_new();
  if (!h) {
    *oom = 1;
    return 0;
  }
  hash_stream_update(h, hdr, 24);
  hash_stream_update(h, payload, len);
  uint64_t sum = hash_stream_digest(h);
  hash_stream_free(h);
  return sum;
}

/* ------------------------------------------------------------------------
 * Writer
 * --------------------------------------------------------------------- */

struct dump_writer {
  FILE *f;
  hash_stream *file_hash; /* NULL while the header is a placeholder */
  struct dump_header hdr;
  off_t start;           /* where the dump starts in f (DUMP_ENTRIES_LATER) */
  uint8_t *raw;          /* the block being built */
  size_t raw_len, raw_cap;
  uint8_t *z;            /* its compressed form, reused from block to block */
  size_t z_cap;
  uint32_t raw_entries;
  uint64_t promised, added, blocks, bytes;
};

static int w_write(struct dump_writer *w, const void *p, size_t n) {
  if (n && fwrite(p, 1, n, w->f) != n) return errno ? -errno : -EIO;
  if (w->file_hash) hash_stream_update(w->file_hash, p, n);
  w->bytes += n;
  return 0;
}

static void hdr_encode(uint8_t *b, const struct dump_header *h,
                       uint64_t entries) {
  memset(b, 0, DUMP_HDR_BYTES);
  memcpy(b, dump_magic, 8);
  put_u32(b + 8, DUMP_VERSION);
  put_u64(b + 16, h->lsn);
  put_u64(b + 24, h->epoch);
  put_u64(b + 32, (uint64_t)h->created_ms);
  put_u64(b + 40, entries);
  put_u64(b + 56, hash_xxh64(b, 56));
}

int dump_writer_new(FILE *f, const struct dump_header *h,
                    struct dump_writer **out) {
  struct dump_writer *w = calloc(1, sizeof *w);
  int later = h->entries == DUMP_ENTRIES_LATER;
  if (!w || (!later && !(w->file_hash = hash_stream_new()))) {
    free(w);
    return CAIRN_ENOMEM;
  }
  w->f = f;
  w->hdr = *h;
  w->promised = h->entries;
  if (later && (w->start = ftello(f)) < 0) {
    int rc = -errno;
    free(w);
    return rc;
  }
  uint8_t b[DUMP_HDR_BYTES];
  hdr_encode(b, h, later ? 0 : h->entries);
  int rc = w_write(w, b, sizeof b);
  if (rc) {
    dump_writer_free(w);
    return rc;
  }
  *out = w;
  return 0;
}

/* Write the block being built, compressed when that saves space. */
static int w_flush_block(struct dump_writer *w) {
  if (!w->raw_entries) return 0;
  size_t bound = compress_bound(w->raw_len);
  if (bound > w->z_cap) {
    free(w->z);
    w->z_cap = 0;
    if (!(w->z = malloc(bound ? bound : 1))) return CAIRN_ENOMEM;
    w->z_cap = bound;
  }
  uint8_t *z = w->z;
  size_t zlen = compress_block(w->raw, w->raw_len, z, bound);
  int lz4 = zlen > 0 && zlen < w->raw_len;
  const void *payload = lz4 ? z : w->raw;
  size_t plen = lz4 ? zlen : w->raw_len;
  uint8_t b[DUMP_BLK_HDR_BYTES] = {0};
  memcpy(b, blk_tag, 4);
  put_u32(b + 4, lz4 ? BLK_F_LZ4 : 0);
  put_u32(b + 8, w->raw_entries);
  put_u32(b + 12, (uint32_t)w->raw_len);
  put_u32(b + 16, (uint32_t)plen);
  int oom = 0;
  put_u64(b + 24, blk_checksum(b, payload, plen, &oom));
  int rc = oom ? CAIRN_ENOMEM : w_write(w, b, sizeof b);
  if (!rc) rc = w_write(w, payload, plen);
  if (rc) return rc;
  w->blocks++;
  w->raw_len = 0;
  w->raw_entries = 0;
  return 0;
}

static int w_reserve(struct dump_writer *w, size_t more) {
  if (w->raw_len + more <= w->raw_cap) return 0;
  size_t cap = w->raw_cap ? w->raw_cap : 64 * 1024;
  while (cap < w->raw_len + more) cap *= 2;
  uint8_t *p = realloc(w->raw, cap);
  if (!p) return CAIRN_ENOMEM;
  w->raw = p;
  w->raw_cap = cap;
  return 0;
}

int dump_writer_add(struct dump_writer *w, const struct dump_entry *e) {
  if (!entry_valid(e->ns_len, e->type, e->klen, e->vlen) ||
      w->added >= w->promised)
    return CAIRN_EINVAL;
  size_t n = DUMP_ENTRY_HDR_BYTES + e->ns_len + e->klen + e->vlen;
  int rc = w_reserve(w, n);
  if (rc) return rc;
  uint8_t *p = w->raw + w->raw_len;
  memset(p, 0, DUMP_ENTRY_HDR_BYTES);
  p[0] = (uint8_t)e->ns_len;
  p[1] = (uint8_t)e->type;
  put_u32(p + 4, (uint32_t)e->klen);
  put_u32(p + 8, (uint32_t)e->vlen);
  put_u64(p + 12, (uint64_t)e->expire_at_ms);
  put_u64(p + 20, e->max_idle_ms);
  put_u64(p + 28, (uint64_t)e->last_access_ms);
  p += DUMP_ENTRY_HDR_BYTES;
  memcpy(p, e->ns, e->ns_len);
  memcpy(p + e->ns_len, e->key, e->klen);
  if (e->vlen) memcpy(p + e->ns_len + e->klen, e->val, e->vlen);
  w->raw_len += n;
  w->raw_entries++;
  w->added++;
  if (w->raw_len >= DUMP_BLOCK_TARGET || w->raw_entries >= DUMP_BLOCK_ENTRIES_MAX)
    return w_flush_block(w);
  return 0;
}

/* DUMP_ENTRIES_LATER: rewrite the header with the count, then hash the
 * file from its start, reading back what was written (from the page
 * cache, at a small fraction of the cost of writing it). */
static int w_patch_header(struct dump_writer *w) {
  if (fflush(w->f) != 0) return errno ? -errno : -EIO;
  int fd = fileno(w->f);
  uint8_t b[DUMP_HDR_BYTES];
  hdr_encode(b, &w->hdr, w->added);
  if (pwrite(fd, b, sizeof b, w->start) != (ssize_t)sizeof b)
    return errno ? -errno : -EIO;
  if (!(w->file_hash = hash_stream_new())) return CAIRN_ENOMEM;
  hash_stream_update(w->file_hash, b, sizeof b);
  size_t cap = 1u << 20;
  uint8_t *buf = malloc(cap);
  if (!buf) return CAIRN_ENOMEM;
  uint64_t off = DUMP_HDR_BYTES;
  int rc = 0;
  while (!rc && off < w->bytes) { /* bounded: each pass reads >= 1 byte */
    size_t want = (size_t)MIN((uint64_t)cap, w->bytes - off);
    ssize_t n = pread(fd, buf, want, w->start + (off_t)off);
    if (n <= 0) rc = n < 0 ? -errno : -EIO;
    else hash_stream_update(w->file_hash, buf, (size_t)n), off += (uint64_t)n;
  }
  free(buf);
  return rc;
}

int dump_writer_finish(struct dump_writer *w, uint64_t *bytes) {
  int later = w->promised == DUMP_ENTRIES_LATER;
  int rc = later || w->added == w->promised ? w_flush_block(w) : CAIRN_EINVAL;
  if (!rc && later) rc = w_patch_header(w);
  if (!rc) {
    uint8_t b[DUMP_TRAILER_BYTES] = {0};
    memcpy(b, end_tag, 4);
    put_u32(b + 4, (uint32_t)w->blocks);
    put_u64(b + 8, w->added);
    hash_stream_update(w->file_hash, b, 16);
    put_u64(b + 16, hash_stream_digest(w->file_hash));
    if (fwrite(b, 1, sizeof b, w->f) != sizeof b) rc = errno ? -errno : -EIO;
    w->bytes += sizeof b;
  }
  if (!rc && fflush(w->f) != 0) rc = errno ? -errno : -EIO;
  if (!rc && bytes) *bytes = w->bytes;
  dump_writer_free(w);
  return rc;
}

void dump_writer_free(struct dump_writer *w) {
  if (!w) return;
  hash_stream_free(w->file_hash);
  free(w->raw);
  free(w->z);
  free(w);
}

uint64_t dump_writer_bytes(const struct dump_writer *w) { return w->bytes; }
uint64_t dump_writer_entries(const struct dump_writer *w) { return w->added; }

/* ------------------------------------------------------------------------
 * Reader: a state machine over the bytes fed so far.
 * --------------------------------------------------------------------- */

enum { R_HEADER, R_BLOCKS, R_DONE, R_FAILED };

struct dump_reader {
  int state, err;
  char msg[192];
  uint64_t err_off;
  struct dump_header hdr;
  hash_stream *file_hash;
  uint8_t *buf;        /* bytes fed and not yet consumed: buf[pos..len) */
  size_t pos, len, cap;
  uint64_t base;       /* file offset of buf[0] */
  uint8_t *raw;        /* the current block, decoded and checked */
  size_t raw_len, raw_pos, raw_cap;
  uint32_t raw_left;   /* entries of the current block not yet handed out */
  uint64_t blk_off;    /* file offset of the current block */
  uint64_t entries, blocks;
};

int dump_reader_new(struct dump_reader **out) {
  struct dump_reader *r = calloc(1, sizeof *r);
  if (!r || !(r->file_hash = hash_stream_new())) {
    free(r);
    return CAIRN_ENOMEM;
  }
  *out = r;
  return 0;
}

void dump_reader_free(struct dump_reader *r) {
  if (!r) return;
  hash_stream_free(r->file_hash);
  free(r->buf);
  free(r->raw);
  free(r);
}

__attribute__((format(printf, 4, 5)))
static int r_fail(struct dump_reader *r, int err, uint64_t off,
                  const char *fmt, ...) {
  char what[160];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  snprintf(r->msg, sizeof r->msg, "offset %" PRIu64 ": %s", off, what);
  r->err_off = off;
  r->err = err;
  r->state = R_FAILED;
  return err;
}

int dump_reader_feed(struct dump_reader *r, const void *buf, size_t len) {
  if (r->state == R_FAILED) return r->err;
  if (r->state == R_DONE && len)
    return r_fail(r, CAIRN_ECORRUPT, r->base + r->len,
                  "bytes after the end of the dump");
  if (r->pos > 0 && r->pos * 2 >= r->len) { /* drop what was consumed */
    memmove(r->buf, r->buf + r->pos, r->len - r->pos);
    r->len -= r->pos;
    r->base += r->pos;
    r->pos = 0;
  }
  if (r->len + len > r->cap) {
    size_t cap = r->cap ? r->cap : 64 * 1024;
    while (cap < r->len + len) cap *= 2;
    uint8_t *p = realloc(r->buf, cap);
    if (!p) return r_fail(r, CAIRN_ENOMEM, r->base + r->len, "out of memory");
    r->buf = p;
    r->cap = cap;
  }
  if (len) memcpy(r->buf + r->len, buf, len);
  r->len += len;
  return 0;
}

static size_t r_avail(const struct dump_reader *r) { return r->len - r->pos; }
static uint64_t r_off(const struct dump_reader *r) { return r->base + r->pos; }

static void r_consume(struct dump_reader *r, size_t n) {
  hash_stream_update(r->file_hash, r->buf + r->pos, n);
  r->pos += n;
}

/* Returns 1 once the header is read, 0 if more bytes are needed. */
static int r_header(struct dump_reader *r) {
  const uint8_t *p = r->buf + r->pos;
  size_t have = r_avail(r);
  if (memcmp(p, dump_magic, MIN(have, 8)) != 0)
    return r_fail(r, CAIRN_EINVAL, 0, "not a cairn dump (bad magic)");
  if (have < DUMP_HDR_BYTES) return 0;
  uint32_t version = get_u32(p + 8);
  if (version != DUMP_VERSION)
    return r_fail(r, CAIRN_EVERFMT, 8, "dump format version %" PRIu32
                  ", this build reads version %u", version, DUMP_VERSION);
  if (get_u64(p + 56) != hash_xxh64(p, 56))
    return r_fail(r, CAIRN_ECORRUPT, 56, "header checksum mismatch");
  if (get_u32(p + 12) != 0 || get_u64(p + 48) != 0)
    return r_fail(r, CAIRN_ECORRUPT, 12, "unknown header flags");
  r->hdr.version = version;
  r->hdr.lsn = get_u64(p + 16);
  r->hdr.epoch = get_u64(p + 24);
  r->hdr.created_ms = (int64_t)get_u64(p + 32);
  r->hdr.entries = get_u64(p + 40);
  r_consume(r, DUMP_HDR_BYTES);
  r->state = R_BLOCKS;
  return 1;
}

/* Check that the raw block holds exactly n well-formed records. */
static int r_check_records(struct dump_reader *r, uint32_t n) {
  size_t off = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (r->raw_len - off < DUMP_ENTRY_HDR_BYTES)
      return r_fail(r, CAIRN_ECORRUPT, r->blk_off,
                    "block: record %" PRIu32 " truncated", i);
    const uint8_t *p = r->raw + off;
    uint64_t need = (uint64_t)DUMP_ENTRY_HDR_BYTES + p[0] + get_u32(p + 4) +
                    get_u32(p + 8);
    if (!entry_valid(p[0], p[1], get_u32(p + 4), get_u32(p + 8)) ||
        get_u16(p + 2) != 0 || need > r->raw_len - off)
      return r_fail(r, CAIRN_ECORRUPT, r->blk_off,
                    "block: record %" PRIu32 " malformed", i);
    off += need;
  }
  if (off != r->raw_len)
    return r_fail(r, CAIRN_ECORRUPT, r->blk_off,
                  "block: %zu bytes after its last record", r->raw_len - off);
  return 0;
}

/* Decode the block payload p (already checksummed) into r->raw. */
static int r_decode(struct dump_reader *r, uint32_t flags, const uint8_t *p,
                    uint32_t stored, uint32_t raw_len) {
  if (raw_len > r->raw_cap) {
    uint8_t *q = realloc(r->raw, raw_len);
    if (!q) return r_fail(r, CAIRN_ENOMEM, r->blk_off, "out of memory");
    r->raw = q;
    r->raw_cap = raw_len;
  }
  if (flags & BLK_F_LZ4) {
    if (decompress_block(p, stored, r->raw, raw_len) != 0)
      return r_fail(r, CAIRN_ECORRUPT, r->blk_off + DUMP_BLK_HDR_BYTES,
                    "block does not decompress");
  } else {
    memcpy(r->raw, p, raw_len);
  }
  r->raw_len = raw_len;
  r->raw_pos = 0;
  return 0;
}

/* Read one block: 1 when its entries are ready, 0 if more bytes are
 * needed, or an error. */
static int r_block(struct dump_reader *r) {
  const uint8_t *p = r->buf + r->pos;
  uint64_t off = r_off(r);
  if (r_avail(r) < DUMP_BLK_HDR_BYTES) return 0;
  uint32_t flags = get_u32(p + 4), n = get_u32(p + 8);
  uint32_t raw_len = get_u32(p + 12), stored = get_u32(p + 16);
  int lz4 = flags & BLK_F_LZ4;
  if ((flags & ~BLK_F_LZ4) || get_u32(p + 20) != 0 || n == 0 ||
      n > DUMP_BLOCK_ENTRIES_MAX || raw_len == 0 ||
      raw_len > DUMP_BLOCK_RAW_MAX || (!lz4 && stored != raw_len) ||
      (lz4 && (stored == 0 || stored > compress_bound(raw_len))))
    return r_fail(r, CAIRN_ECORRUPT, off, "malformed block header");
  if (r_avail(r) - DUMP_BLK_HDR_BYTES < stored) return 0;
  int oom = 0;
  uint64_t sum = blk_checksum(p, p + DUMP_BLK_HDR_BYTES, stored, &oom);
  if (oom) return r_fail(r, CAIRN_ENOMEM, off, "out of memory");
  if (sum != get_u64(p + 24))
    return r_fail(r, CAIRN_ECORRUPT, off, "block checksum mismatch");
  r->blk_off = off;
  int rc = r_decode(r, flags, p + DUMP_BLK_HDR_BYTES, stored, raw_len);
  if (!rc) rc = r_check_records(r, n);
  if (rc) return rc;
  if (r->entries + n > r->hdr.entries)
    return r_fail(r, CAIRN_ECORRUPT, off, "more entries than the header's "
                  "%" PRIu64, r->hdr.entries);
  r_consume(r, DUMP_BLK_HDR_BYTES + stored);
  r->raw_left = n;
  r->blocks++;
  return 1;
}

/* Read the trailer: 1 when verified, 0 if more bytes are needed. */
static int r_trailer(struct dump_reader *r) {
  const uint8_t *p = r->buf + r->pos;
  uint64_t off = r_off(r);
  if (r_avail(r) < DUMP_TRAILER_BYTES) return 0;
  hash_stream_update(r->file_hash, p, 16);
  if (get_u64(p + 16) != hash_stream_digest(r->file_hash))
    return r_fail(r, CAIRN_ECORRUPT, off + 16, "file checksum mismatch");
  if (get_u32(p + 4) != r->blocks || get_u64(p + 8) != r->entries ||
      r->entries != r->hdr.entries)
    return r_fail(r, CAIRN_ECORRUPT, off, "trailer counts disagree: %"
                  PRIu64 " entries in %" PRIu64 " blocks, header says %"
                  PRIu64, r->entries, r->blocks, r->hdr.entries);
  r->pos += DUMP_TRAILER_BYTES;
  r->state = R_DONE;
  if (r_avail(r))
    return r_fail(r, CAIRN_ECORRUPT, r_off(r), "bytes after the end of the "
                  "dump");
  return 1;
}

static void r_emit(struct dump_reader *r, struct dump_entry *e) {
  const uint8_t *p = r->raw + r->raw_pos;
  e->ns_len = p[0];
  e->type = p[1];
  e->klen = get_u32(p + 4);
  e->vlen = get_u32(p + 8);
  e->expire_at_ms = (int64_t)get_u64(p + 12);
  e->max_idle_ms = get_u64(p + 20);
  e->last_access_ms = (int64_t)get_u64(p + 28);
  e->ns = (const char *)p + DUMP_ENTRY_HDR_BYTES;
  e->key = e->ns + e->ns_len;
  e->val = (const char *)e->key + e->klen;
  r->raw_pos += DUMP_ENTRY_HDR_BYTES + e->ns_len + e->klen + e->vlen;
  r->raw_left--;
  r->entries++;
}

int dump_reader_next(struct dump_reader *r, struct dump_entry *e) {
  /* Each pass consumes a header, a block or the trailer: bounded by the
   * bytes fed. */
  for (;;) {
    int rc;
    switch (r->state) {
    case R_FAILED:
      return r->err;
    case R_DONE:
      return 0;
    case R_HEADER:
      if ((rc = r_header(r)) <= 0) return rc;
      break;
    default:
      if (r->raw_left) {
        r_emit(r, e);
        return 1;
      }
      if (r_avail(r) < 4) return 0;
      if (memcmp(r->buf + r->pos, end_tag, 4) == 0) {
        if ((rc = r_trailer(r)) <= 0) return rc;
      } else if (memcmp(r->buf + r->pos, blk_tag, 4) == 0) {
        if ((rc = r_block(r)) <= 0) return rc;
      } else {
        return r_fail(r, CAIRN_ECORRUPT, r_off(r), "expected a block or "
                      "the trailer");
      }
    }
  }
}

int dump_reader_end(struct dump_reader *r) {
  if (r->state == R_FAILED) return r->err;
  if (r->state == R_DONE) return 0;
  if (r->state == R_HEADER && r_avail(r) < 8 &&
      (r_avail(r) == 0 || memcmp(r->buf + r->pos, dump_magic, r_avail(r))))
    return r_fail(r, CAIRN_EINVAL, 0, "not a cairn dump (bad magic)");
  return r_fail(r, CAIRN_ECORRUPT, r->base + r->len,
                "truncated dump (it ends before its trailer)");
}

const struct dump_header *dump_reader_header(const struct dump_reader *r) {
  return r->hdr.version ? &r->hdr : NULL;
}

int dump_reader_done(const struct dump_reader *r) {
  return r->state == R_DONE;
}

const char *dump_reader_error(const struct dump_reader *r) { return r->msg; }

uint64_t dump_reader_error_offset(const struct dump_reader *r) {
  return r->err_off;
}
