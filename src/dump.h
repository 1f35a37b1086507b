/*
 * dump.h - the dump file: a portable, versioned copy of a database's
 * entries as of one LSN (cairn-dump writes it, cairn-restore reads it).
 * doc/format-dump.md gives the layout byte by byte; dump.c opens with it.
 *
 * The writer writes to a FILE*.  The reader does no I/O: it is fed bytes
 * and hands back entries, so it can be tested and fuzzed alone.  Every
 * entry it hands out comes from a block whose checksum was verified, but
 * the whole-file checksum is verified only at the end: a caller that must
 * not act on a damaged file reads it to the end first (cairn-restore
 * builds in a temporary directory and renames only then).
 */
#ifndef CAIRN_DUMP_H
#define CAIRN_DUMP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "limits.h"

#define DUMP_VERSION 1u
#define DUMP_HDR_BYTES 64u
#define DUMP_BLK_HDR_BYTES 32u
#define DUMP_TRAILER_BYTES 24u
#define DUMP_ENTRY_HDR_BYTES 36u
/* The writer closes a block once its records pass this many bytes. */
#define DUMP_BLOCK_TARGET (1u << 20)
/* Largest raw block: a block holds at least one entry, which may be a
 * maximal one; the reader refuses anything larger. */
#define DUMP_BLOCK_RAW_MAX (DUMP_BLOCK_TARGET + DUMP_ENTRY_HDR_BYTES + \
                            NS_NAME_MAX + KEY_MAX + VALUE_MAX)
/* Entries in one block, at most. */
#define DUMP_BLOCK_ENTRIES_MAX (1u << 20)

/* What the header says about the dump. */
struct dump_header {
  uint32_t version;     /* DUMP_VERSION (the writer ignores this field) */
  uint64_t lsn;         /* the source's state as of this LSN */
  uint64_t epoch;       /* the source's epoch */
  int64_t created_ms;   /* when the dump was made */
  uint64_t entries;     /* entries that follow */
};

/* One entry.  Pointers are borrowed: for the reader, valid until the next
 * call on it. */
struct dump_entry {
  const char *ns;       /* not NUL-terminated */
  size_t ns_len;        /* 1..NS_NAME_MAX */
  const void *key;
  size_t klen;          /* 1..KEY_MAX */
  const void *val;
  size_t vlen;          /* 0..VALUE_MAX */
  int type;             /* CAIRN_TYPE_* (REC_T_*) */
  int64_t expire_at_ms; /* absolute lifespan end, 0: none */
  uint64_t max_idle_ms; /* 0: none */
  int64_t last_access_ms; /* last access known to the source, 0: unknown */
};

/* ------------------------------------------------------------------------
 * Writing.
 * --------------------------------------------------------------------- */

struct dump_writer;

/* h->entries when the count is known only at the end (see below). */
#define DUMP_ENTRIES_LATER UINT64_MAX

/* Start a dump on f (which stays the caller's): write the header, which
 * promises h->entries entries.  With h->entries == DUMP_ENTRIES_LATER the
 * header is a placeholder that dump_writer_finish rewrites with the count
 * of entries added; f must then be a regular file open for reading and
 * writing (no append mode), positioned where the dump starts, since
 * finish also reads the file back to compute the whole-file checksum.
 * That lets a dump be written in one pass over a source whose count is
 * not known beforehand.  Errors: CAIRN_ENOMEM, -errno (write). */
int dump_writer_new(FILE *f, const struct dump_header *h,
                    struct dump_writer **out);

/* Add one entry.  Errors: CAIRN_EINVAL (a field out of range, or more
 * entries than promised), CAIRN_ENOMEM, -errno. */
int dump_writer_add(struct dump_writer *w, const struct dump_entry *e);

/* Write the last block and the trailer (after rewriting the header, for
 * DUMP_ENTRIES_LATER), fflush f, and free w (whatever the outcome).  *bytes (if not NULL) gets the file's size on success.
 * Errors: CAIRN_EINVAL (fewer entries than promised), CAIRN_ENOMEM,
 * -errno. */
int dump_writer_finish(struct dump_writer *w, uint64_t *bytes);

/* Free w without finishing (the output is then not a valid dump). */
void dump_writer_free(struct dump_writer *w);

/* Bytes written so far (for progress reports), and entries added. */
uint64_t dump_writer_bytes(const struct dump_writer *w);
uint64_t dump_writer_entries(const struct dump_writer *w);

/* ------------------------------------------------------------------------
 * Reading.
 * --------------------------------------------------------------------- */

struct dump_reader;

/* Returns 0 or CAIRN_ENOMEM. */
int dump_reader_new(struct dump_reader **out);
void dump_reader_free(struct dump_reader *r); /* NULL is fine */

/* Append len bytes of the file (the next ones) to what the reader holds.
 * Returns 0 or CAIRN_ENOMEM, or the reader's error if it has failed. */
int dump_reader_feed(struct dump_reader *r, const void *buf, size_t len);

/* The next entry: 1 with *e filled, 0 when more bytes are needed (or the
 * dump is complete: see dump_reader_done), or an error, which is sticky:
 *   CAIRN_EINVAL    not a dump (bad magic)
 *   CAIRN_EVERFMT   a dump of a format version this build does not read
 *   CAIRN_ECORRUPT  a checksum mismatch, a malformed field, bytes after
 *                   the end
 *   CAIRN_ENOMEM
 * dump_reader_error() then says what and where. */
int dump_reader_next(struct dump_reader *r, struct dump_entry *e);

/* Call once every byte was fed and dump_reader_next returned 0: returns 0
 * if the dump is complete and every checksum held, else the error
 * (CAIRN_ECORRUPT for a truncated dump). */
int dump_reader_end(struct dump_reader *r);

/* The header, once read (NULL before). */
const struct dump_header *dump_reader_header(const struct dump_reader *r);

/* 1 once the trailer was read and verified. */
int dump_reader_done(const struct dump_reader *r);

/* After an error: a message naming the offset, such as "offset 1234:
 * block checksum mismatch", and that offset (in bytes from the start of
 * the file).  "" and 0 before any error. */
const char *dump_reader_error(const struct dump_reader *r);
uint64_t dump_reader_error_offset(const struct dump_reader *r);

#endif /* CAIRN_DUMP_H */
