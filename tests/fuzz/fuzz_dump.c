/*
 * fuzz_dump.c - libFuzzer target for the dump reader and writer.
 *
 * The first input byte picks the chunk size; the rest is read as a dump
 * twice, all at once and in chunks, which must give the same entries and
 * the same outcome.  Every entry handed out must be in range.  A dump read
 * whole is written again from its entries and read back: the same entries
 * and header must come out.  Any broken invariant aborts.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I include \
 *     -iquote src -I build tests/fuzz/fuzz_dump.c src/dump.c src/hash.c \
 *     src/compress.c src/util.c -llz4 -lxxhash
 *
 * Built with -DFUZZ_REPLAY it replays files instead (fuzz.h).
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "dump.h"
#include "fuzz.h"
#include "limits.h"
#include "record.h"

struct outcome {
  uint64_t hash; /* of every entry, in order */
  uint64_t entries;
  int rc, done;
  struct dump_header hdr;
};

static uint64_t mix(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

static uint64_t entry_hash(uint64_t h, const struct dump_entry *e) {
  CHECK(e->ns_len >= 1 && e->ns_len <= NS_NAME_MAX);
  CHECK(e->klen >= 1 && e->klen <= KEY_MAX && e->vlen <= VALUE_MAX);
  CHECK(e->type >= 0 && e->type <= REC_T_MAX);
  uint64_t fixed[5] = {e->ns_len, e->klen, e->vlen, (uint64_t)e->type,
                       e->max_idle_ms};
  h = mix(h, fixed, sizeof fixed);
  h = mix(h, &e->expire_at_ms, 8);
  h = mix(h, &e->last_access_ms, 8);
  h = mix(h, e->ns, e->ns_len);
  h = mix(h, e->key, e->klen);
  return mix(h, e->val, e->vlen);
}

/* Read data in chunks of `chunk` bytes (0: all at once); if w is set,
 * copy every entry to it. */
static void read_all(const uint8_t *data, size_t len, size_t chunk,
                     struct dump_writer **w, struct outcome *o) {
  memset(o, 0, sizeof *o);
  o->hash = 0xcbf29ce484222325ull;
  struct dump_reader *r;
  CHECK(dump_reader_new(&r) == 0);
  int rc = 0;
  size_t step = chunk ? chunk : (len ? len : 1);
  for (size_t off = 0; off < len && rc >= 0; off += step) {
    rc = dump_reader_feed(r, data + off, len - off < step ? len - off : step);
    struct dump_entry e;
    while (rc >= 0 && (rc = dump_reader_next(r, &e)) == 1) {
      o->hash = entry_hash(o->hash, &e);
      o->entries++;
      if (w && *w && dump_writer_add(*w, &e) != 0) {
        dump_writer_free(*w);
        *w = NULL;
      }
    }
  }
  if (rc >= 0) rc = dump_reader_end(r);
  o->rc = rc;
  o->done = dump_reader_done(r);
  CHECK(o->done == (rc == 0));
  CHECK(rc == 0 || strncmp(dump_reader_error(r), "offset ", 7) == 0);
  if (dump_reader_header(r)) o->hdr = *dump_reader_header(r);
  dump_reader_free(r);
}

/* A valid dump, rewritten from its entries, reads back the same. */
static void rewrite(const uint8_t *data, size_t len,
                    const struct outcome *first) {
  char *buf = NULL;
  size_t blen = 0;
  FILE *f = open_memstream(&buf, &blen);
  CHECK(f);
  struct dump_writer *w;
  CHECK(dump_writer_new(f, &first->hdr, &w) == 0);
  struct outcome o;
  read_all(data, len, 0, &w, &o);
  CHECK(w && dump_writer_finish(w, NULL) == 0);
  fclose(f);
  struct outcome again;
  read_all((const uint8_t *)buf, blen, 0, NULL, &again);
  CHECK(again.rc == 0 && again.hash == first->hash);
  CHECK(again.entries == first->entries);
  CHECK(again.hdr.lsn == first->hdr.lsn && again.hdr.epoch == first->hdr.epoch);
  free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t chunk = 1 + data[0] % 64;
  data++;
  size--;
  struct outcome whole, pieces;
  read_all(data, size, 0, NULL, &whole);
  read_all(data, size, chunk, NULL, &pieces);
  CHECK(whole.rc == pieces.rc && whole.done == pieces.done);
  CHECK(whole.hash == pieces.hash && whole.entries == pieces.entries);
  if (whole.rc == 0) rewrite(data, size, &whole);
  return 0;
}
