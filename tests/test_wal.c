/*
 * test_wal.c - the write-ahead log: round trips in both I/O paths, group
 * commit, INTERVAL mode, completions, rotation, huge records, release and
 * start_lsn.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "limits.h"
#include "sys.h"
#include "testutil.h"
#include "walutil.h"
#include "wal.h"

/* ------------------------------------------------------------------------
 * Helpers: records whose key and value derive from an index, so a replay
 * can check every byte.
 * --------------------------------------------------------------------- */


static void cfg_init(struct wal_config *c, const char *dir, unsigned flags) {
  wal_cfg(c, dir, flags, 7);
}


static size_t vlen_of(uint64_t idx, size_t base) { return base + idx % 97; }

/* Append record idx (value of vlen_of(idx, base) bytes). */
static uint64_t put(struct wal *w, uint64_t idx, size_t base,
                    cairn_durability mode, cairn_done_fn done, void *arg) {
  char key[32];
  size_t vlen = vlen_of(idx, base);
  unsigned char *val = malloc(vlen);
  cr_assert(val);
  fill(val, vlen, idx);
  snprintf(key, sizeof key, "k%016llx", (unsigned long long)idx);
  struct rec r = {.op = REC_PUT, .type = REC_T_STRING, .ns_len = 1,
                  .ns = "t", .key = key, .klen = 17, .val = val,
                  .vlen = (uint32_t)vlen, .ts_ms = idx};
  int rc = wal_reserve(w, rec_size(&r));
  cr_assert_eq(rc, 0, "wal_reserve: %d", rc);
  uint64_t lsn = wal_append(w, &r, mode, done, arg);
  free(val);
  return lsn;
}

struct seen {
  uint64_t n, last_lsn, first_lsn;
  int64_t lsn_minus_idx; /* every record must keep lsn - idx constant */
  int have, bad;
  size_t base;
};

/* Check a replayed record against what put() wrote for it. */
static int apply_check(void *arg, uint64_t lsn, const struct rec *r) {
  struct seen *s = arg;
  char key[32];
  if (r->op != REC_PUT || r->klen != 17) { s->bad++; return 0; }
  memcpy(key, r->key, 17);
  key[17] = 0;
  uint64_t idx = strtoull(key + 1, NULL, 16);
  size_t vlen = vlen_of(idx, s->base);
  unsigned char *want = malloc(vlen);
  fill(want, vlen, idx);
  if (r->vlen != vlen || memcmp(r->val, want, vlen) != 0 || r->ts_ms != idx)
    s->bad++;
  free(want);
  if (s->have && lsn != s->last_lsn + 1) s->bad++;
  if (s->have && (int64_t)(lsn - idx) != s->lsn_minus_idx) s->bad++;
  if (!s->have) s->first_lsn = lsn, s->lsn_minus_idx = (int64_t)(lsn - idx);
  s->have = 1;
  s->last_lsn = lsn;
  s->n++;
  return 0;
}

static int count_segments(const char *dir) {
  DIR *d = opendir(dir);
  cr_assert(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    size_t l = strlen(e->d_name);
    if (l > 4 && strcmp(e->d_name + l - 4, ".wal") == 0) n++;
  }
  closedir(d);
  return n;
}

static struct wal *open_ok(const struct wal_config *c, uint64_t start,
                           struct seen *s) {
  struct wal *w = NULL;
  int rc = wal_open(c, start, apply_check, s, &w);
  cr_assert_eq(rc, 0, "wal_open: %d (%s)", rc, cairn_strerror(rc));
  cr_assert_eq(s->bad, 0);
  return w;
}

static void setup(void) {
  alarm(60);
  log_text[0] = 0;
}

TestSuite(wal, .init = setup, .fini = sys_reset);

/* ------------------------------------------------------------------------
 * Round trips.
 * --------------------------------------------------------------------- */

static void round_trip(unsigned flags, int want_uring) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "wal");
  struct wal_config c;
  cfg_init(&c, dir, flags);
  struct seen s = {.base = 100};
  struct wal *w = open_ok(&c, 0, &s);
  struct wal_stats st;
  wal_stats(w, &st);
  if (want_uring && !st.uring) {
    wal_close(w);
    tu_rmrf(dir);
    cr_skip_test("io_uring is not available here");
  }
  cr_assert_eq(st.uring, want_uring);
  for (uint64_t i = 1; i <= 150; i++) {
    uint64_t lsn = put(w, i, 100, CAIRN_DURABILITY_FSYNC, NULL, NULL);
    cr_assert_eq(lsn, i);
    cr_assert_eq(wal_wait(w, lsn, CAIRN_DURABILITY_FSYNC), 0);
  }
  wal_stats(w, &st);
  cr_assert_eq(st.durable_lsn, 150);
  cr_assert_eq(st.written_lsn, 150);
  cr_assert(st.frames >= 1 && st.syncs >= 1);
  wal_close(w);

  struct seen s2 = {.base = 100};
  w = open_ok(&c, 0, &s2);
  cr_assert_eq(s2.n, 150);
  cr_assert_eq(s2.first_lsn, 1);
  cr_assert_eq(s2.last_lsn, 150);
  wal_stats(w, &st);
  cr_assert_eq(st.recovered_records, 150);
  cr_assert_eq(st.truncated_bytes, 0);
  cr_assert_eq(wal_last_lsn(w), 150);
  cr_assert_eq(put(w, 151, 100, CAIRN_DURABILITY_FSYNC, NULL, NULL), 151);
  cr_assert_eq(wal_wait(w, 151, CAIRN_DURABILITY_FSYNC), 0);
  wal_close(w);

  struct seen s3 = {.base = 100};
  w = open_ok(&c, 0, &s3);
  cr_assert_eq(s3.n, 151);
  wal_close(w);
  tu_rmrf(dir);
}

Test(wal, round_trip_with_io_uring) { round_trip(0, 1); }

Test(wal, round_trip_with_pwritev_fallback) { round_trip(WAL_NO_URING, 0); }

/* ------------------------------------------------------------------------
 * Group commit: while one fdatasync is in flight, the other writers' records
 * gather into the next frame.  A slowed-down sync makes that certain.
 * --------------------------------------------------------------------- */

#define GC_THREADS 8
#define GC_EACH    40

static int slow_fdatasync(int fd) {
  usleep(2000);
  return fdatasync(fd);
}

static int slow_uring_result(int op, int res) {
  if (op == SYS_OP_FDATASYNC) usleep(2000);
  return res;
}

struct gc_arg {
  struct wal *w;
  int t;
};

static void *gc_writer(void *p) {
  struct gc_arg *a = p;
  for (int i = 0; i < GC_EACH; i++) {
    uint64_t idx = (uint64_t)a->t * 1000 + (uint64_t)i;
    uint64_t lsn = put(a->w, idx, 50, CAIRN_DURABILITY_FSYNC, NULL, NULL);
    if (wal_wait(a->w, lsn, CAIRN_DURABILITY_FSYNC) != 0) return (void *)1;
  }
  return NULL;
}

static int count_apply(void *arg, uint64_t lsn, const struct rec *r) {
  (void)lsn;
  (void)r;
  (*(uint64_t *)arg)++;
  return 0;
}

static void group_commit(unsigned flags) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "walgc");
  struct wal_config c;
  cfg_init(&c, dir, flags);
  sys_ops.fdatasync = slow_fdatasync;
  sys_ops.uring_result = slow_uring_result;
  struct wal *w = NULL;
  cr_assert_eq(wal_open(&c, 0, NULL, NULL, &w), 0);
  pthread_t th[GC_THREADS];
  struct gc_arg args[GC_THREADS];
  for (int t = 0; t < GC_THREADS; t++) {
    args[t] = (struct gc_arg){.w = w, .t = t};
    pthread_create(&th[t], NULL, gc_writer, &args[t]);
  }
  for (int t = 0; t < GC_THREADS; t++) {
    void *ret;
    pthread_join(th[t], &ret);
    cr_assert_null(ret);
  }
  struct wal_stats st;
  wal_stats(w, &st);
  uint64_t appends = GC_THREADS * GC_EACH;
  cr_assert_eq(st.durable_lsn, appends);
  cr_assert(st.syncs * 2 < appends, "syncs %llu for %llu appends",
            (unsigned long long)st.syncs, (unsigned long long)appends);
  cr_assert(st.frames < appends);
  wal_close(w);
  sys_reset();
  uint64_t n = 0;
  cr_assert_eq(wal_open(&c, 0, count_apply, &n, &w), 0);
  cr_assert_eq(n, appends);
  wal_close(w);
  tu_rmrf(dir);
}

Test(wal, group_commit_shares_fdatasyncs_pwritev) {
  group_commit(WAL_NO_URING);
}

Test(wal, group_commit_shares_fdatasyncs_io_uring) { group_commit(0); }

/* ------------------------------------------------------------------------
 * INTERVAL: acknowledged once written; synced within interval_ms even when
 * nothing else happens.
 * --------------------------------------------------------------------- */

Test(wal, interval_mode_acks_on_write_and_syncs_on_its_own) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "walint");
  struct wal_config c;
  cfg_init(&c, dir, 0);
  c.interval_ms = 30;
  struct seen s = {.base = 10};
  struct wal *w = open_ok(&c, 0, &s);
  uint64_t lsn = 0;
  for (uint64_t i = 1; i <= 50; i++) {
    lsn = put(w, i, 10, CAIRN_DURABILITY_INTERVAL, NULL, NULL);
    cr_assert_eq(wal_wait(w, lsn, CAIRN_DURABILITY_INTERVAL), 0);
    struct wal_stats st;
    wal_stats(w, &st);
    cr_assert_geq(st.written_lsn, lsn);
    cr_assert_geq(st.written_lsn, st.durable_lsn);
  }
  /* No FSYNC record and no wal_sync: only the interval timer syncs. */
  cr_assert_eq(wal_wait(w, lsn, CAIRN_DURABILITY_FSYNC), 0);
  struct wal_stats st;
  wal_stats(w, &st);
  cr_assert_geq(st.durable_lsn, lsn);
  cr_assert_geq(st.syncs, 1);
  wal_close(w);
  struct seen s2 = {.base = 10};
  w = open_ok(&c, 0, &s2);
  cr_assert_eq(s2.n, 50);
  wal_close(w);
  tu_rmrf(dir);
}

/* ------------------------------------------------------------------------
 * Completions.
 * --------------------------------------------------------------------- */

struct comp_log {
  pthread_mutex_t mu;
  uint64_t *lsns;
  int *rcs;
  size_t n;
};

static void on_done(void *arg, int rc, uint64_t lsn) {
  struct comp_log *cl = arg;
  pthread_mutex_lock(&cl->mu);
  cl->lsns[cl->n] = lsn;
  cl->rcs[cl->n] = rc;
  cl->n++;
  pthread_mutex_unlock(&cl->mu);
}

Test(wal, completions_run_once_each_in_lsn_order) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "walcb");
  struct wal_config c;
  cfg_init(&c, dir, 0);
  struct wal *w = NULL;
  cr_assert_eq(wal_open(&c, 0, NULL, NULL, &w), 0);
  enum { N = 3000 };
  struct comp_log cl = {.mu = PTHREAD_MUTEX_INITIALIZER,
                        .lsns = calloc(N + 1, sizeof(uint64_t)),
                        .rcs = calloc(N + 1, sizeof(int))};
  for (uint64_t i = 1; i <= N; i++) {
    cairn_durability m = i % 3 ? CAIRN_DURABILITY_INTERVAL
                               : CAIRN_DURABILITY_FSYNC;
    cr_assert_eq(put(w, i, 20, m, on_done, &cl), i);
  }
  cr_assert_eq(wal_sync(w), 0);
  struct wal_stats st;
  wal_stats(w, &st);
  cr_assert_eq(st.durable_lsn, N);
  wal_close(w); /* delivers whatever is left */
  cr_assert_eq(cl.n, N);
  for (size_t i = 0; i < N; i++) {
    cr_assert_eq(cl.lsns[i], i + 1, "completion %zu has lsn %llu", i,
                 (unsigned long long)cl.lsns[i]);
    cr_assert_eq(cl.rcs[i], 0);
  }
  free(cl.lsns);
  free(cl.rcs);
  tu_rmrf(dir);
}

/* ------------------------------------------------------------------------
 * Segments.
 * --------------------------------------------------------------------- */

/* Appends records first..last (INTERVAL, no waits) and syncs. */
static void put_range(struct wal *w, uint64_t first, uint64_t last,
                      size_t base) {
  for (uint64_t i = first; i <= last; i++)
    put(w, i, base, CAIRN_DURABILITY_INTERVAL, NULL, NULL);
  cr_assert_eq(wal_sync(w), 0);
}

Test(wal, rotation_across_many_segments_replays_everything) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "walrot");
  struct wal_config c;
  cfg_init(&c, dir, 0);
  struct seen s = {.base = 1000};
  struct wal *w = open_ok(&c, 0, &s);
  put_range(w, 1, 5000, 1000); /* about 5 MiB: five 1 MiB segments */
  struct wal_stats st;
  wal_stats(w, &st);
  cr_assert_geq(st.segments, 5);
  wal_close(w);
  cr_assert_geq(count_segments(dir), 6); /* live ones and the spare */

  struct wal_scan_result res;
  cr_assert_eq(wal_scan(dir, NULL, NULL, &res), 0);
  cr_assert_eq(res.records, 5000);
  cr_assert_eq(res.first_lsn, 1);
  cr_assert_eq(res.last_lsn, 5000);
  cr_assert_geq(res.segments, 5);
  cr_assert(!res.torn && !res.corrupt);

  struct seen s2 = {.base = 1000};
  w = open_ok(&c, 0, &s2);
  cr_assert_eq(s2.n, 5000);
  cr_assert_eq(s2.last_lsn, 5000);
  put_range(w, 5001, 6000, 1000);
  wal_close(w);
  struct seen s3 = {.base = 1000};
  w = open_ok(&c, 0, &s3);
  cr_assert_eq(s3.n, 6000);
  wal_close(w);
  tu_rmrf(dir);
}

/* Checks records 1..100 of base 100 and record 101 of HUGE_BASE. */
#define HUGE_BASE (3u * 1024 * 1024)
static int huge_check(void *arg, uint64_t lsn, const struct rec *r) {
  struct seen *s = arg;
  s->base = lsn == 101 ? HUGE_BASE : 100;
  return apply_check(arg, lsn, r);
}

Test(wal, record_larger_than_a_segment_gets_its_own) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "walhuge");
  struct wal_config c;
  cfg_init(&c, dir, 0);
  struct seen s = {.base = 100};
  struct wal *w = open_ok(&c, 0, &s);
  put_range(w, 1, 100, 100);
  uint64_t lsn = put(w, 101, HUGE_BASE, CAIRN_DURABILITY_FSYNC, NULL, NULL);
  cr_assert_eq(wal_wait(w, lsn, CAIRN_DURABILITY_FSYNC), 0);
  put_range(w, 102, 300, 100);
  wal_close(w);

  struct wal_scan_result res;
  cr_assert_eq(wal_scan(dir, NULL, NULL, &res), 0);
  cr_assert_eq(res.records, 300);
  cr_assert(!res.torn && !res.corrupt);
  cr_assert_geq(res.segments, 2);

  struct seen s2 = {.base = 100};
  w = NULL;
  cr_assert_eq(wal_open(&c, 0, huge_check, &s2, &w), 0);
  cr_assert_eq(s2.n, 300);
  cr_assert_eq(s2.bad, 0);
  wal_close(w);
  tu_rmrf(dir);
}

static int nospace_fallocate(int fd, int mode, off_t off, off_t len) {
  (void)fd, (void)mode, (void)off, (void)len;
  errno = ENOSPC;
  return -1;
}

static int seg_exists(const char *dir, uint64_t seq) {
  char path[WAL_PATH_MAX];
  struct stat st;
  wal_segment_path(dir, seq, path);
  return stat(path, &st) == 0;
}

Test(wal, release_recycles_segments_and_reopen_still_works) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "walrel");
  struct wal_config c;
  cfg_init(&c, dir, 0);
  struct seen s = {.base = 1000};
  struct wal *w = open_ok(&c, 0, &s);
  put_range(w, 1, 2500, 1000); /* segments 1, 2, 3 in use */
  struct wal_stats st;
  wal_stats(w, &st);
  cr_assert_geq(st.segments, 3);
  uint64_t live = st.segments;

  /* With no spare pending, a released segment becomes the next spare
   * (renamed, not deleted).  Starve the allocator to get there. */
  sys_ops.fallocate = nospace_fallocate;
  uint64_t i = 2501;
  for (; i < 4000; i++) { /* until the spare has been used */
    put(w, i, 1000, CAIRN_DURABILITY_INTERVAL, NULL, NULL);
    wal_stats(w, &st);
    if (st.segments > live) break;
  }
  cr_assert_eq(wal_sync(w), 0);
  wal_stats(w, &st);
  cr_assert_gt(st.segments, live);
  uint64_t cur = live + 1; /* segments are numbered from 1 */
  cr_assert(!seg_exists(dir, cur + 1));
  /* Release everything below the start of the current segment. */
  cr_assert_eq(wal_release(w, i), 0);
  wal_stats(w, &st);
  cr_assert_eq(st.segments, 1);
  cr_assert(!seg_exists(dir, 1));
  cr_assert(seg_exists(dir, cur + 1), "a released segment became the spare");
  sys_reset();

  /* Fill into the recycled segment, past its stale frames. */
  uint64_t end = i + 1500;
  put_range(w, i + 1, end, 1000);
  wal_close(w);

  struct seen s2 = {.base = 1000};
  w = open_ok(&c, i - 1, &s2);
  cr_assert_eq(s2.first_lsn, i);
  cr_assert_eq(s2.last_lsn, end);
  cr_assert_eq(s2.n, end - i + 1);
  wal_stats(w, &st);
  cr_assert_eq(st.truncated_bytes, 0);
  wal_close(w);
  struct wal_scan_result res;
  cr_assert_eq(wal_scan(dir, NULL, NULL, &res), 0);
  cr_assert(!res.torn && !res.corrupt);
  tu_rmrf(dir);
}

Test(wal, start_lsn_skips_older_records) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "walstart");
  struct wal_config c;
  cfg_init(&c, dir, 0);
  struct seen s = {.base = 10};
  struct wal *w = open_ok(&c, 0, &s);
  put_range(w, 1, 100, 10);
  wal_close(w);

  struct seen s2 = {.base = 10};
  w = open_ok(&c, 60, &s2);
  cr_assert_eq(s2.n, 40);
  cr_assert_eq(s2.first_lsn, 61);
  cr_assert_eq(wal_last_lsn(w), 100);
  wal_close(w);

  /* A start above the whole log: LSNs continue after it. */
  struct seen s3 = {.base = 10};
  w = open_ok(&c, 500, &s3);
  cr_assert_eq(s3.n, 0);
  cr_assert_eq(wal_last_lsn(w), 500);
  cr_assert_eq(put(w, 501, 10, CAIRN_DURABILITY_FSYNC, NULL, NULL), 501);
  cr_assert_eq(wal_wait(w, 501, CAIRN_DURABILITY_FSYNC), 0);
  wal_close(w);
  struct seen s4 = {.base = 10};
  w = open_ok(&c, 500, &s4);
  cr_assert_eq(s4.n, 1);
  cr_assert_eq(s4.first_lsn, 501);
  wal_close(w);
  /* A caller whose state is older than the log's start would miss LSNs
   * 1..500: refused. */
  struct wal *bad = NULL;
  struct seen s5 = {.base = 10};
  cr_assert_eq(wal_open(&c, 0, apply_check, &s5, &bad), CAIRN_ECORRUPT);
  cr_assert_null(bad);
  tu_rmrf(dir);
}
