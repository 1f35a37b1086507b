/*
 * test_dump.c - the dump file format: writer to reader, and every way a
 * damaged file must be refused.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "dump.h"
#include "hash.h"
#include "record.h"

struct buf {
  char *data;
  size_t len;
};

/* The i-th test entry: every type, with and without expiry. */
static void make_entry(unsigned i, struct dump_entry *e, char *key,
                       char *val, size_t vcap) {
  static const char *ns[] = {"default", "sessions", "t"};
  snprintf(key, 32, "key-%u", i);
  size_t vlen = (i * 37) % vcap;
  for (size_t j = 0; j < vlen; j++) val[j] = (char)((i + j) % 7 ? 'a' + j % 5 : j);
  memset(e, 0, sizeof *e);
  e->ns = ns[i % 3];
  e->ns_len = strlen(e->ns);
  e->key = key;
  e->klen = strlen(key);
  e->val = val;
  e->vlen = vlen;
  e->type = (int)(i % (REC_T_MAX + 1));
  e->expire_at_ms = i % 2 ? 1700000000000 + i : 0;
  e->max_idle_ms = i % 3 ? 0 : 1000u * i;
  e->last_access_ms = i % 5 ? 1690000000000 + i : 0;
}

/* A dump of n entries (values up to vcap bytes). */
static struct buf make_dump(unsigned n, size_t vcap) {
  struct buf b = {0};
  FILE *f = open_memstream(&b.data, &b.len);
  cr_assert(f);
  struct dump_header h = {.lsn = 1234, .epoch = 7, .created_ms = 42,
                          .entries = n};
  struct dump_writer *w;
  cr_assert_eq(dump_writer_new(f, &h, &w), 0);
  char key[32], *val = malloc(vcap + 1);
  for (unsigned i = 0; i < n; i++) {
    struct dump_entry e;
    make_entry(i, &e, key, val, vcap + 1);
    cr_assert_eq(dump_writer_add(w, &e), 0);
  }
  uint64_t bytes = 0;
  cr_assert_eq(dump_writer_finish(w, &bytes), 0);
  free(val);
  fclose(f);
  cr_assert_eq(bytes, b.len);
  return b;
}

/* Read b in chunks of `chunk` bytes, checking every entry against
 * make_entry; returns the final status (0 when the dump is whole). */
static int read_dump(const struct buf *b, size_t chunk, size_t vcap,
                     unsigned *count, struct dump_reader **keep) {
  struct dump_reader *r;
  cr_assert_eq(dump_reader_new(&r), 0);
  char key[32], *val = malloc(vcap + 1);
  unsigned n = 0;
  int rc = 0;
  for (size_t off = 0; off < b->len && rc >= 0; off += chunk) {
    size_t k = b->len - off < chunk ? b->len - off : chunk;
    rc = dump_reader_feed(r, b->data + off, k);
    struct dump_entry got, want;
    while (rc >= 0 && (rc = dump_reader_next(r, &got)) == 1) {
      make_entry(n++, &want, key, val, vcap + 1);
      cr_assert_eq(got.ns_len, want.ns_len);
      cr_assert_eq(memcmp(got.ns, want.ns, got.ns_len), 0);
      cr_assert_eq(got.klen, want.klen);
      cr_assert_eq(memcmp(got.key, want.key, got.klen), 0);
      cr_assert_eq(got.vlen, want.vlen);
      cr_assert_eq(memcmp(got.val, want.val, got.vlen), 0);
      cr_assert_eq(got.type, want.type);
      cr_assert_eq(got.expire_at_ms, want.expire_at_ms);
      cr_assert_eq(got.max_idle_ms, want.max_idle_ms);
      cr_assert_eq(got.last_access_ms, want.last_access_ms);
    }
  }
  if (rc >= 0) rc = dump_reader_end(r);
  free(val);
  if (count) *count = n;
  if (keep) *keep = r;
  else dump_reader_free(r);
  return rc;
}

Test(dump, round_trip_keeps_every_type_expiry_and_max_idle) {
  struct buf b = make_dump(200, 300);
  unsigned n = 0;
  struct dump_reader *r;
  cr_assert_eq(read_dump(&b, b.len, 300, &n, &r), 0);
  cr_assert_eq(n, 200);
  cr_assert(dump_reader_done(r));
  const struct dump_header *h = dump_reader_header(r);
  cr_assert_eq(h->lsn, 1234);
  cr_assert_eq(h->epoch, 7);
  cr_assert_eq(h->created_ms, 42);
  cr_assert_eq(h->entries, 200);
  cr_assert_eq(h->version, DUMP_VERSION);
  dump_reader_free(r);
  free(b.data);
}

Test(dump, round_trip_fed_in_small_pieces) {
  struct buf b = make_dump(50, 100);
  size_t chunks[] = {1, 3, 7, 64, 1000};
  for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
    unsigned n = 0;
    cr_assert_eq(read_dump(&b, chunks[i], 100, &n, NULL), 0);
    cr_assert_eq(n, 50);
  }
  free(b.data);
}

Test(dump, many_entries_span_blocks_and_compress) {
  /* About 4 MiB of repetitive values: several blocks, each compressed. */
  struct buf b = make_dump(3000, 2800);
  cr_assert_lt(b.len, 3000u * 1400u);
  unsigned n = 0;
  cr_assert_eq(read_dump(&b, 65536, 2800, &n, NULL), 0);
  cr_assert_eq(n, 3000);
  free(b.data);
}

Test(dump, empty_dump_is_valid) {
  struct buf b = make_dump(0, 10);
  cr_assert_eq(b.len, DUMP_HDR_BYTES + DUMP_TRAILER_BYTES);
  unsigned n = 1;
  cr_assert_eq(read_dump(&b, b.len, 10, &n, NULL), 0);
  cr_assert_eq(n, 0);
  free(b.data);
}

Test(dump, every_truncation_is_an_error_naming_an_offset) {
  struct buf b = make_dump(12, 40);
  for (size_t cut = 0; cut < b.len; cut++) {
    struct buf t = {b.data, cut};
    struct dump_reader *r;
    int rc = read_dump(&t, 5, 40, NULL, &r);
    cr_assert(rc == CAIRN_ECORRUPT || (rc == CAIRN_EINVAL && cut == 0),
              "cut at %zu gave %d", cut, rc);
    cr_assert(!dump_reader_done(r));
    cr_assert(strstr(dump_reader_error(r), "offset "), "%s",
              dump_reader_error(r));
    dump_reader_free(r);
  }
  free(b.data);
}

Test(dump, a_bit_flip_anywhere_is_detected) {
  struct buf b = make_dump(12, 40);
  for (size_t i = 0; i < b.len; i++) {
    b.data[i] ^= (char)(1u << (i % 8));
    struct dump_reader *r;
    int rc = read_dump(&b, 17, 40, NULL, &r);
    cr_assert_lt(rc, 0, "flip at byte %zu not detected", i);
    cr_assert(strstr(dump_reader_error(r), "offset "));
    cr_assert_leq(dump_reader_error_offset(r), b.len);
    dump_reader_free(r);
    b.data[i] ^= (char)(1u << (i % 8));
  }
  cr_assert_eq(read_dump(&b, b.len, 40, NULL, NULL), 0);
  free(b.data);
}

Test(dump, future_version_is_refused_as_such) {
  struct buf b = make_dump(3, 10);
  put_u32(b.data + 8, DUMP_VERSION + 1);
  put_u64(b.data + 56, hash_xxh64(b.data, 56));
  struct dump_reader *r;
  cr_assert_eq(read_dump(&b, b.len, 10, NULL, &r), CAIRN_EVERFMT);
  cr_assert(strstr(dump_reader_error(r), "version 2"), "%s",
            dump_reader_error(r));
  cr_assert_eq(dump_reader_error_offset(r), 8);
  dump_reader_free(r);
  free(b.data);
}

Test(dump, a_file_that_is_not_a_dump_is_refused_as_such) {
  const char *texts[] = {"hello, world\n", "CAIRNDMX and more bytes", "X"};
  for (size_t i = 0; i < 3; i++) {
    struct buf b = {(char *)texts[i], strlen(texts[i])};
    struct dump_reader *r;
    cr_assert_eq(read_dump(&b, 4, 10, NULL, &r), CAIRN_EINVAL, "%zu", i);
    cr_assert(strstr(dump_reader_error(r), "not a cairn dump"));
    dump_reader_free(r);
  }
  struct buf empty = {"", 0};
  cr_assert_eq(read_dump(&empty, 1, 10, NULL, NULL), CAIRN_EINVAL);
}

Test(dump, bytes_after_the_trailer_are_refused) {
  struct buf b = make_dump(3, 10);
  char *more = malloc(b.len + 1);
  memcpy(more, b.data, b.len);
  more[b.len] = 0;
  struct buf t = {more, b.len + 1};
  cr_assert_eq(read_dump(&t, t.len, 10, NULL, NULL), CAIRN_ECORRUPT);
  cr_assert_eq(read_dump(&t, 1, 10, NULL, NULL), CAIRN_ECORRUPT);
  free(more);
  free(b.data);
}

Test(dump, writer_refuses_bad_entries_and_broken_promises) {
  char *data = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&data, &len);
  struct dump_header h = {.entries = 1};
  struct dump_writer *w;
  cr_assert_eq(dump_writer_new(f, &h, &w), 0);
  struct dump_entry e = {.ns = "n", .ns_len = 1, .key = "k", .klen = 0};
  cr_assert_eq(dump_writer_add(w, &e), CAIRN_EINVAL); /* empty key */
  e.klen = 1;
  e.type = REC_T_MAX + 1;
  cr_assert_eq(dump_writer_add(w, &e), CAIRN_EINVAL);
  e.type = 0;
  e.ns_len = NS_NAME_MAX + 1;
  cr_assert_eq(dump_writer_add(w, &e), CAIRN_EINVAL);
  e.ns_len = 1;
  cr_assert_eq(dump_writer_finish(w, NULL), CAIRN_EINVAL); /* 0 of 1 */
  cr_assert_eq(dump_writer_new(f, &h, &w), 0);
  cr_assert_eq(dump_writer_add(w, &e), 0);
  cr_assert_eq(dump_writer_add(w, &e), CAIRN_EINVAL); /* 2 of 1 */
  dump_writer_free(w);
  fclose(f);
  free(data);
}
