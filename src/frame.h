/*
 * frame.h - the log frame: a checksummed, compressed group of records.
 *
 * A frame is what one group commit writes.  Layout, little-endian:
 *
 *   off  size  field
 *     0     4  magic        FRAME_MAGIC ("CRNF")
 *     4     2  version      FRAME_VERSION
 *     6     2  flags        FRAME_F_LZ4: payload is one LZ4 block;
 *                           FRAME_F_END: no records, the segment ends here
 *     8     8  epoch        leader epoch that wrote the records
 *    16     8  first_lsn    LSN of the first record
 *    24     8  last_lsn     LSN of the last record (first_lsn - 1 if none)
 *    32     4  raw_len      payload bytes once decompressed
 *    36     4  stored_len   payload bytes that follow the header
 *    40     8  checksum     XXH3-64 of bytes 0..39, then the stored payload
 *    48        payload      stored_len bytes
 *                           then zero padding to a multiple of FRAME_ALIGN
 *
 * A frame is valid when the magic, version and flags are known, the lengths
 * are within the limits, last_lsn + 1 >= first_lsn, the checksum matches,
 * and the payload decodes to exactly last_lsn - first_lsn + 1 records.
 * In detail: raw_len <= FRAME_RAW_MAX; without FRAME_F_LZ4 stored_len ==
 * raw_len, with it stored_len <= compress_bound(raw_len); FRAME_F_END
 * frames have no records, raw_len 0 and no FRAME_F_LZ4; the padding is
 * zero; every record (and every sub-record of a batch) is valid per
 * record.h, and they fill the payload exactly.
 * Four zero bytes where a magic is expected mark the end of written data.
 */
#ifndef CAIRN_FRAME_H
#define CAIRN_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "limits.h"
#include "record.h"

#define FRAME_MAGIC   0x464e5243u /* "CRNF" read as little-endian bytes */
#define FRAME_VERSION 1u
#define FRAME_ALIGN   8u
#define FRAME_F_LZ4   0x1u
#define FRAME_F_END   0x2u
#define FRAME_F_KNOWN (FRAME_F_LZ4 | FRAME_F_END)

/* Largest raw payload of a frame: a full group can be overshot by the one
 * record that did not fit (a single record larger than the group cap goes
 * alone into its own frame). */
#define FRAME_RAW_MAX ((uint64_t)GROUP_BYTES_MAX + REC_BYTES_MAX)

/* 0x7E000000 is LZ4_MAX_INPUT_SIZE; the bound keeps stored_len in a u32. */
_Static_assert(FRAME_RAW_MAX <= 0x7E000000u, "a frame's payload fits LZ4");

struct frame_hdr {
  uint32_t magic;
  uint16_t version, flags;
  uint64_t epoch, first_lsn, last_lsn;
  uint32_t raw_len, stored_len;
  uint64_t checksum;
};

/* Largest frame frame_encode() can produce for raw_len payload bytes,
 * padding included. */
size_t frame_bound(size_t raw_len);

/* Encode the records in raw[0..raw_len) (already in record layout) as one
 * frame at dst, which has room for frame_bound(raw_len) bytes.  Compresses
 * when that saves space.  Returns the frame's length, padding included.
 * flags is 0 or FRAME_F_END (then raw_len is 0 and last_lsn is
 * first_lsn - 1); FRAME_F_LZ4 is decided here.  raw_len <= FRAME_RAW_MAX.
 * raw and dst must not overlap. */
size_t frame_encode(void *dst, uint64_t epoch, uint64_t first_lsn,
                    uint64_t last_lsn, unsigned flags, const void *raw,
                    size_t raw_len);

/* Parse and check the header at buf (len bytes available, at least
 * FRAME_HDR_BYTES).  Does not verify the checksum.  Returns 0, or
 * CAIRN_ECORRUPT with a short reason in *why. */
int frame_hdr_decode(const void *buf, size_t len, struct frame_hdr *h,
                     const char **why);

/* Total on-disk length of a frame with header h, padding included. */
size_t frame_len(const struct frame_hdr *h);

/* Verify the checksum of the frame at buf (frame_len(h) bytes available)
 * and produce its raw payload: *raw points either into buf or into
 * scratch (at least h->raw_len bytes).  Returns 0 or CAIRN_ECORRUPT with a
 * reason in *why. */
int frame_payload(const void *buf, const struct frame_hdr *h, void *scratch,
                  const void **raw, const char **why);

/* frame_check_whole - check a whole frame that came from elsewhere (a
 * leader): a valid header, frame_len() == len, records in it and not an
 * END frame, then the checksum and the records.  On success *raw points
 * at its payload, in buf or in *scratch, which the caller frees (NULL if
 * unused).  Returns 0, CAIRN_ECORRUPT with a reason in *why, or
 * CAIRN_ENOMEM; *scratch is NULL after an error. */
int frame_check_whole(const void *buf, size_t len, struct frame_hdr *h,
                      void **scratch, const void **raw, const char **why);

/* Check that raw[0..raw_len) holds exactly n valid records, and that every
 * REC_BATCH among them holds exactly klen valid non-batch sub-records
 * filling its value.  frame_payload() does this already; it is here for
 * payloads that arrive some other way.  Returns 0 or CAIRN_ECORRUPT. */
int frame_records(const void *raw, size_t raw_len, uint64_t n);

#endif /* CAIRN_FRAME_H */
