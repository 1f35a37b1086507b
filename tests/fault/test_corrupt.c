/*
 * test_corrupt.c - recovery of damaged logs: torn tails are truncated,
 * mid-log corruption is refused (or salvaged on request), and what follows
 * an END frame is never mistaken for corruption.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frame.h"
#include "limits.h"
#include "sys.h"
#include "util.h"
#include "../testutil.h"
#include "../walutil.h"
#include "wal.h"

/* ------------------------------------------------------------------------
 * Helpers.
 * --------------------------------------------------------------------- */


static void cfg_init(struct wal_config *c, const char *dir, unsigned flags) {
  wal_cfg(c, dir, flags, 3);
}


/* Record idx: key "k<idx>", value of vlen bytes derived from idx. */
static uint64_t put(struct wal *w, uint64_t idx, size_t vlen, int wait) {
  char key[32];
  unsigned char *val = malloc(vlen);
  fill(val, vlen, idx);
  snprintf(key, sizeof key, "k%016llx", (unsigned long long)idx);
  struct rec r = {.op = REC_PUT, .ns_len = 1, .ns = "t", .key = key,
                  .klen = 17, .val = val, .vlen = (uint32_t)vlen};
  cr_assert_eq(wal_reserve(w, rec_size(&r)), 0);
  uint64_t lsn = wal_append(w, &r, CAIRN_DURABILITY_FSYNC, NULL, NULL);
  free(val);
  if (wait) cr_assert_eq(wal_wait(w, lsn, CAIRN_DURABILITY_FSYNC), 0);
  return lsn;
}

struct seen {
  uint64_t n, last_lsn;
  int bad;
};

static int apply_count(void *arg, uint64_t lsn, const struct rec *r) {
  struct seen *s = arg;
  char key[32];
  snprintf(key, sizeof key, "k%016llx", (unsigned long long)lsn);
  if (r->klen != 17 || memcmp(r->key, key, 17) != 0) s->bad++;
  if (s->n && lsn != s->last_lsn + 1) s->bad++;
  s->last_lsn = lsn;
  s->n++;
  return 0;
}

/* The first 64 frames of a log, where they are. */
struct frames {
  size_t n;
  struct {
    char path[WAL_PATH_MAX];
    uint64_t off, len, first_lsn;
  } f[64];
};

static int collect(void *arg, const char *path, uint64_t off,
                   const struct frame_hdr *h, const void *raw) {
  (void)raw;
  struct frames *fs = arg;
  if (fs->n < 64) {
    snprintf(fs->f[fs->n].path, WAL_PATH_MAX, "%s", path);
    fs->f[fs->n].off = off;
    fs->f[fs->n].len = frame_len(h);
    fs->f[fs->n].first_lsn = h->first_lsn;
  }
  fs->n++;
  return 0;
}

/* A log of n frames of one record each (LSN i holds record i). */
static void make_log(const struct wal_config *c, int n, struct frames *fs) {
  struct wal *w = NULL;
  cr_assert_eq(wal_open(c, 0, NULL, NULL, &w), 0);
  for (int i = 1; i <= n; i++) cr_assert_eq(put(w, (uint64_t)i, 200, 1), i);
  wal_close(w);
  struct wal_scan_result res;
  memset(fs, 0, sizeof *fs);
  cr_assert_eq(wal_scan(c->dir, collect, fs, &res), 0);
  cr_assert_eq(fs->n, (size_t)n);
  cr_assert(!res.torn && !res.corrupt);
}

static void patch(const char *path, uint64_t off, const void *buf, size_t n) {
  int fd = open(path, O_WRONLY);
  cr_assert_geq(fd, 0);
  cr_assert_eq(pwrite(fd, buf, n, (off_t)off), (ssize_t)n);
  close(fd);
}

static void flip_bit(const char *path, uint64_t off) {
  int fd = open(path, O_RDWR);
  unsigned char b;
  cr_assert_eq(pread(fd, &b, 1, (off_t)off), 1);
  b ^= 0x10;
  cr_assert_eq(pwrite(fd, &b, 1, (off_t)off), 1);
  close(fd);
}


static void setup(void) {
  alarm(60);
  log_text[0] = 0;
}

TestSuite(corrupt, .init = setup, .fini = sys_reset);

/* Reopen, expect `want` records and a truncated tail, then append one more
 * and check a second reopen is clean. */
static void expect_truncated(const struct wal_config *c, uint64_t want) {
  struct seen s = {0};
  struct wal *w = NULL;
  cr_assert_eq(wal_open(c, 0, apply_count, &s, &w), 0);
  cr_assert_eq(s.n, want);
  cr_assert_eq(s.bad, 0);
  struct wal_stats st;
  wal_stats(w, &st);
  cr_assert_gt(st.truncated_bytes, 0);
  cr_assert(has_log("truncated torn tail"), "log: %s", log_text);
  cr_assert_eq(put(w, want + 1, 200, 1), want + 1);
  wal_close(w);

  struct seen s2 = {0};
  cr_assert_eq(wal_open(c, 0, apply_count, &s2, &w), 0);
  cr_assert_eq(s2.n, want + 1);
  cr_assert_eq(s2.bad, 0);
  wal_stats(w, &st);
  cr_assert_eq(st.truncated_bytes, 0);
  wal_close(w);
}

/* ------------------------------------------------------------------------
 * Torn tails.
 * --------------------------------------------------------------------- */

Test(corrupt, tail_cut_mid_frame_is_truncated) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "cut");
  struct wal_config c;
  cfg_init(&c, dir, 0);
  struct frames fs;
  make_log(&c, 10, &fs);
  cr_assert_eq(truncate(fs.f[9].path, (off_t)(fs.f[9].off + fs.f[9].len / 2)),
               0);
  struct wal_scan_result res;
  cr_assert_eq(wal_scan(dir, NULL, NULL, &res), 0);
  cr_assert(res.torn && !res.corrupt);
  cr_assert_eq(res.torn_offset, fs.f[9].off);
  cr_assert_eq(res.torn_lsn, 10);
  cr_assert_eq(res.records, 9);
  expect_truncated(&c, 9);
  tu_rmrf(dir);
}

Test(corrupt, tail_zeroed_mid_frame_is_truncated) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "zero");
  struct wal_config c;
  cfg_init(&c, dir, 0);
  struct frames fs;
  make_log(&c, 10, &fs);
  static unsigned char zeros[4096];
  uint64_t from = fs.f[9].off + fs.f[9].len / 2;
  patch(fs.f[9].path, from, zeros, sizeof zeros);
  expect_truncated(&c, 9);
  tu_rmrf(dir);
}

Test(corrupt, bit_flip_in_last_frame_is_truncated) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "flipl");
  struct wal_config c;
  cfg_init(&c, dir, 0);
  struct frames fs;
  make_log(&c, 10, &fs);
  flip_bit(fs.f[9].path, fs.f[9].off + FRAME_HDR_BYTES + 5);
  expect_truncated(&c, 9);
  tu_rmrf(dir);
}

/* ------------------------------------------------------------------------
 * Mid-log corruption.
 * --------------------------------------------------------------------- */

Test(corrupt, bit_flip_in_early_frame_refuses_to_open) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "flipe");
  struct wal_config c;
  cfg_init(&c, dir, 0);
  struct frames fs;
  make_log(&c, 10, &fs);
  flip_bit(fs.f[2].path, fs.f[2].off + FRAME_HDR_BYTES + 9);
  struct seen s = {0};
  struct wal *w = NULL;
  cr_assert_eq(wal_open(&c, 0, apply_count, &s, &w), CAIRN_ECORRUPT);
  cr_assert_null(w);
  char want[WAL_PATH_MAX + 64];
  snprintf(want, sizeof want, "%s: offset %llu:", fs.f[2].path,
           (unsigned long long)fs.f[2].off);
  cr_assert(has_log(want), "want \"%s\" in log: %s", want, log_text);
  cr_assert(has_log("salvage"));
  /* Refusing changes nothing: the scan still sees the same damage. */
  struct wal_scan_result res;
  cr_assert_eq(wal_scan(dir, NULL, NULL, &res), 0);
  cr_assert(res.corrupt && !res.torn);
  cr_assert_eq(res.corrupt_offset, fs.f[2].off);
  cr_assert_eq(res.records, 2);
  tu_rmrf(dir);
}

Test(corrupt, salvage_keeps_exactly_what_precedes_the_bad_frame) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "salv");
  struct wal_config c;
  cfg_init(&c, dir, WAL_SALVAGE);
  struct frames fs;
  make_log(&c, 10, &fs);
  flip_bit(fs.f[4].path, fs.f[4].off + 20); /* inside first_lsn */
  struct seen s = {0};
  struct wal *w = NULL;
  cr_assert_eq(wal_open(&c, 0, apply_count, &s, &w), 0);
  cr_assert_eq(s.n, 4);
  cr_assert_eq(s.last_lsn, 4);
  cr_assert_eq(s.bad, 0);
  cr_assert_eq(wal_last_lsn(w), 4);
  cr_assert_eq(put(w, 5, 200, 1), 5);
  wal_close(w);

  cfg_init(&c, dir, 0); /* no salvage needed any more */
  struct seen s2 = {0};
  cr_assert_eq(wal_open(&c, 0, apply_count, &s2, &w), 0);
  cr_assert_eq(s2.n, 5);
  cr_assert_eq(s2.bad, 0);
  wal_close(w);
  tu_rmrf(dir);
}

/* ------------------------------------------------------------------------
 * END frames.
 * --------------------------------------------------------------------- */

Test(corrupt, garbage_after_an_end_frame_is_not_corruption) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "endg");
  struct wal_config c;
  cfg_init(&c, dir, 0);
  struct wal *w = NULL;
  cr_assert_eq(wal_open(&c, 0, NULL, NULL, &w), 0);
  /* 3000 records of ~1 KiB: more than two segments. */
  for (uint64_t i = 1; i <= 3000; i++) put(w, i, 1000, 0);
  cr_assert_eq(wal_sync(w), 0);
  wal_close(w);

  struct frames fs;
  memset(&fs, 0, sizeof fs);
  struct wal_scan_result res;
  cr_assert_eq(wal_scan(dir, collect, &fs, &res), 0);
  cr_assert_geq(res.segments, 2);
  /* The first segment's last frame, then its END frame. */
  size_t last = 0;
  while (last + 1 < 64 && last + 1 < fs.n &&
         strcmp(fs.f[last + 1].path, fs.f[0].path) == 0)
    last++;
  cr_assert_lt(last + 1, 64, "first segment has too many frames to track");
  uint64_t end_off = fs.f[last].off + fs.f[last].len;
  unsigned char hdr[FRAME_HDR_BYTES];
  int fd = open(fs.f[0].path, O_RDONLY);
  cr_assert_eq(pread(fd, hdr, sizeof hdr, (off_t)end_off), (ssize_t)sizeof hdr);
  struct stat st;
  fstat(fd, &st);
  close(fd);
  struct frame_hdr h;
  const char *why;
  cr_assert_eq(frame_hdr_decode(hdr, sizeof hdr, &h, &why), 0);
  cr_assert(h.flags & FRAME_F_END);

  uint64_t from = end_off + FRAME_HDR_BYTES;
  size_t n = (size_t)MIN((uint64_t)4096, (uint64_t)st.st_size - from);
  cr_assert_gt(n, 0);
  unsigned char *junk = malloc(n);
  fill(junk, n, 42);
  patch(fs.f[0].path, from, junk, n);
  free(junk);

  struct seen s = {0};
  cr_assert_eq(wal_open(&c, 0, apply_count, &s, &w), 0);
  cr_assert_eq(s.n, 3000);
  cr_assert_eq(s.bad, 0);
  struct wal_stats ws;
  wal_stats(w, &ws);
  cr_assert_eq(ws.truncated_bytes, 0);
  wal_close(w);
  tu_rmrf(dir);
}
