/*
 * test_wal.c - the write-ahead log: round trips in both I/O paths, group
 * commit, INTERVAL mode, completions, rotation, huge records, release and
 * start_lsn; replication: leader frames appended to a follower, cursors,
 * retention, epochs and cutting a divergent tail.
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
 * Lingering: a burst of appends leaves in one write.
 * --------------------------------------------------------------------- */

/* A log in a new dir whose lingers no test outlasts (a minute), with no
 * interval sync of its own; already lingering. */
static struct wal *open_lingering(char *dir, size_t n, struct wal_config *c) {
  tu_tmpdir(dir, n, "walling");
  cfg_init(c, dir, 0);
  c->linger_ns = 60ull * 1000000000u;
  c->interval_ms = 3600 * 1000;
  struct seen s = {.base = 10};
  struct wal *w = open_ok(c, 0, &s);
  wal_linger(w, 1);
  return w;
}

Test(wal, a_burst_under_linger_is_written_once_when_it_ends) {
  char dir[256];
  struct wal_config c;
  struct wal *w = open_lingering(dir, sizeof dir, &c);
  uint64_t lsn = 0;
  for (uint64_t i = 1; i <= 20; i++)
    lsn = put(w, i, 10, CAIRN_DURABILITY_INTERVAL, NULL, NULL);
  struct wal_stats st;
  wal_stats(w, &st);
  cr_assert_eq(st.written_lsn, 0, "nothing is written during the burst");
  cr_assert_eq(st.frames, 0);
  wal_linger(w, 0);
  wal_wait_written(w, lsn - 1, 10000);
  wal_stats(w, &st);
  cr_assert_eq(st.written_lsn, lsn);
  cr_assert_eq(st.frames, 1, "the burst is one frame, not %llu",
               (unsigned long long)st.frames);
  wal_close(w);
  struct seen s2 = {.base = 10};
  w = open_ok(&c, 0, &s2);
  cr_assert_eq(s2.n, 20);
  wal_close(w);
  tu_rmrf(dir);
}

Test(wal, an_fsync_burst_under_linger_shares_one_fdatasync) {
  char dir[256];
  struct wal_config c;
  struct wal *w = open_lingering(dir, sizeof dir, &c);
  struct wal_stats st0, st;
  wal_stats(w, &st0);
  uint64_t lsn = 0;
  for (uint64_t i = 1; i <= 20; i++)
    lsn = put(w, i, 10, CAIRN_DURABILITY_FSYNC, NULL, NULL);
  wal_stats(w, &st);
  cr_assert_eq(st.written_lsn, 0, "nothing is written during the burst");
  wal_linger(w, 0);
  cr_assert_eq(wal_wait(w, lsn, CAIRN_DURABILITY_FSYNC), 0);
  wal_stats(w, &st);
  cr_assert_eq(st.frames, 1);
  cr_assert_eq(st.syncs - st0.syncs, 1, "one fdatasync, not %llu",
               (unsigned long long)(st.syncs - st0.syncs));
  wal_close(w);
  tu_rmrf(dir);
}

Test(wal, a_writer_that_waits_is_not_held_by_a_linger) {
  char dir[256];
  struct wal_config c;
  struct wal *w = open_lingering(dir, sizeof dir, &c);
  uint64_t lsn = put(w, 1, 10, CAIRN_DURABILITY_INTERVAL, NULL, NULL);
  /* Would wait out the linger (a minute) if the log ignored its waiter. */
  cr_assert_eq(wal_wait(w, lsn, CAIRN_DURABILITY_INTERVAL), 0);
  lsn = put(w, 2, 10, CAIRN_DURABILITY_FSYNC, NULL, NULL);
  cr_assert_eq(wal_wait(w, lsn, CAIRN_DURABILITY_FSYNC), 0);
  cr_assert_eq(wal_sync(w), 0);
  wal_linger(w, 0);
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

/* ------------------------------------------------------------------------
 * Replication: frames read back by cursors, appended to a follower's log.
 * --------------------------------------------------------------------- */

/* A frame copied out of a cursor. */
struct fr {
  unsigned char *p;
  size_t len;
  struct frame_hdr h;
};

struct frs {
  struct fr *v;
  size_t n;
};

static void frs_free(struct frs *f) {
  for (size_t i = 0; i < f->n; i++) free(f->v[i].p);
  free(f->v);
  f->v = NULL;
  f->n = 0;
}

/* Read with c until nothing more is written; returns what next said last
 * (0, or an error).  Every frame must continue the LSNs of the one before. */
static int drain_cursor(struct wal_cursor *c, struct frs *out) {
  for (;;) {
    const void *p;
    size_t len;
    struct frame_hdr h;
    int rc = wal_cursor_next(c, &p, &len, &h);
    if (rc != 1) return rc;
    cr_assert(!(h.flags & FRAME_F_END));
    if (out->n)
      cr_assert_eq(h.first_lsn, out->v[out->n - 1].h.last_lsn + 1);
    out->v = realloc(out->v, (out->n + 1) * sizeof *out->v);
    cr_assert(out->v);
    struct fr *f = &out->v[out->n++];
    f->p = malloc(len);
    memcpy(f->p, p, len);
    f->len = len;
    f->h = h;
  }
}

static void drain_from(struct wal *w, uint64_t from, struct frs *out) {
  struct wal_cursor *c = NULL;
  int rc = wal_cursor_open(w, from, &c);
  cr_assert_eq(rc, 0, "wal_cursor_open(%llu): %d", (unsigned long long)from,
               rc);
  cr_assert_eq(drain_cursor(c, out), 0);
  wal_cursor_close(c);
}

/* Frame records first..first+n-1 as put() makes them (value base bytes
 * plus), stamped epoch; *len gets its length.  Free the result. */
static unsigned char *make_frame(uint64_t epoch, uint64_t first, uint64_t n,
                                 size_t base, size_t *len) {
  size_t cap = 0;
  for (uint64_t i = 0; i < n; i++) cap += 64 + vlen_of(first + i, base);
  unsigned char *raw = malloc(cap), *val = malloc(base + 97);
  size_t off = 0;
  for (uint64_t i = 0; i < n; i++) {
    uint64_t idx = first + i;
    char key[32];
    size_t vlen = vlen_of(idx, base);
    fill(val, vlen, idx);
    snprintf(key, sizeof key, "k%016llx", (unsigned long long)idx);
    struct rec r = {.op = REC_PUT, .type = REC_T_STRING, .ns_len = 1,
                    .ns = "t", .key = key, .klen = 17, .val = val,
                    .vlen = (uint32_t)vlen, .ts_ms = idx};
    off += rec_encode(&r, raw + off);
  }
  unsigned char *f = malloc(frame_bound(off));
  *len = frame_encode(f, epoch, first, first + n - 1, 0, raw, off);
  free(raw);
  free(val);
  return f;
}

/* Append every frame of fs to w, then wait for all to be durable. */
static void ship(struct wal *w, const struct frs *fs) {
  for (size_t i = 0; i < fs->n; i++) {
    int rc = wal_append_frame(w, fs->v[i].p, fs->v[i].len, NULL, NULL);
    cr_assert_eq(rc, 0, "frame %zu: %d", i, rc);
  }
  cr_assert_eq(wal_sync(w), 0);
}

static void replicate(unsigned follower_flags) {
  char ldir[256], fdir[256];
  tu_tmpdir(ldir, sizeof ldir, "walldr");
  tu_tmpdir(fdir, sizeof fdir, "walfol");
  struct wal_config lc, fc;
  cfg_init(&lc, ldir, 0);
  cfg_init(&fc, fdir, follower_flags);
  struct seen s = {.base = 300};
  struct wal *l = open_ok(&lc, 0, &s);
  put_range(l, 1, 4000, 300); /* about 1.5 MiB: two segments or more */
  struct frs fs = {0};
  drain_from(l, 0, &fs);
  cr_assert_geq(fs.n, 2);
  cr_assert_eq(fs.v[0].h.first_lsn, 1);
  cr_assert_eq(fs.v[fs.n - 1].h.last_lsn, 4000);

  struct seen s2 = {.base = 300};
  struct wal *f = open_ok(&fc, 0, &s2);
  ship(f, &fs);
  struct wal_stats st;
  wal_stats(f, &st);
  cr_assert_eq(st.durable_lsn, 4000);
  cr_assert_eq(st.frames, fs.n);
  struct seen rd = {.base = 300};
  cr_assert_eq(wal_read(f, 0, 4000, apply_check, &rd), 0);
  cr_assert_eq(rd.n, 4000);
  cr_assert_eq(rd.bad, 0);
  wal_close(f);

  struct seen s3 = {.base = 300};
  f = open_ok(&fc, 0, &s3);
  cr_assert_eq(s3.n, 4000);
  cr_assert_eq(s3.first_lsn, 1);
  cr_assert_eq(s3.last_lsn, 4000);
  /* The follower's log holds the leader's frames byte for byte. */
  struct frs fs2 = {0};
  drain_from(f, 0, &fs2);
  cr_assert_eq(fs2.n, fs.n);
  for (size_t i = 0; i < fs.n; i++) {
    cr_assert_eq(fs2.v[i].len, fs.v[i].len);
    cr_assert(memcmp(fs2.v[i].p, fs.v[i].p, fs.v[i].len) == 0, "frame %zu",
              i);
  }
  /* Promoted: it goes on with records of its own. */
  wal_set_epoch(f, 8);
  put_range(f, 4001, 4100, 300);
  wal_close(f);
  wal_close(l);
  struct wal_scan_result res;
  cr_assert_eq(wal_scan(fdir, NULL, NULL, &res), 0);
  cr_assert_eq(res.records, 4100);
  cr_assert(!res.torn && !res.corrupt);
  struct seen s4 = {.base = 300};
  f = open_ok(&fc, 0, &s4);
  cr_assert_eq(s4.n, 4100);
  wal_close(f);
  frs_free(&fs);
  frs_free(&fs2);
  tu_rmrf(ldir);
  tu_rmrf(fdir);
}

Test(wal, leader_frames_appended_to_a_follower_replay_identically) {
  replicate(0);
}

Test(wal, leader_frames_appended_with_pwritev_replay_identically) {
  replicate(WAL_NO_URING);
}

/* The follower's log is still empty and takes the right frame. */
static void expect_unchanged(struct wal *w) {
  struct wal_stats st;
  wal_stats(w, &st);
  cr_assert_eq(st.last_lsn, 0);
  cr_assert_eq(st.written_lsn, 0);
  cr_assert_eq(st.frames, 0);
  cr_assert_eq(st.epoch, 7);
}

Test(wal, append_frame_refuses_bad_frames_and_changes_nothing) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "walbadf");
  struct wal_config c;
  cfg_init(&c, dir, 0);
  struct seen s = {.base = 50};
  struct wal *w = open_ok(&c, 0, &s);
  size_t len1, len2, len_old;
  unsigned char *f1 = make_frame(7, 1, 5, 50, &len1);
  unsigned char *f2 = make_frame(9, 6, 5, 50, &len2);
  unsigned char *old = make_frame(7, 11, 1, 50, &len_old);

  unsigned char *flip = malloc(len1);
  for (size_t bit = 0; bit < len1 * 8; bit += 61) { /* header and payload */
    memcpy(flip, f1, len1);
    flip[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    cr_assert_eq(wal_append_frame(w, flip, len1, NULL, NULL), CAIRN_ECORRUPT,
                 "bit %zu", bit);
  }
  free(flip);
  expect_unchanged(w);
  cr_assert_eq(wal_append_frame(w, f1, len1 - FRAME_ALIGN, NULL, NULL),
               CAIRN_ECORRUPT);
  cr_assert_eq(wal_append_frame(w, f2, len2, NULL, NULL), CAIRN_EINVAL);
  unsigned char end[FRAME_HDR_BYTES + 64];
  size_t end_len = frame_encode(end, 7, 1, 0, FRAME_F_END, NULL, 0);
  cr_assert_eq(wal_append_frame(w, end, end_len, NULL, NULL),
               CAIRN_ECORRUPT);
  expect_unchanged(w);

  cr_assert_eq(wal_append_frame(w, f1, len1, NULL, NULL), 0);
  cr_assert_eq(wal_append_frame(w, f1, len1, NULL, NULL), CAIRN_EINVAL);
  cr_assert_eq(wal_append_frame(w, f2, len2, NULL, NULL), 0);
  /* Epoch 9 now: a frame of epoch 7 is from a deposed leader. */
  cr_assert_eq(wal_append_frame(w, old, len_old, NULL, NULL), CAIRN_EINVAL);
  cr_assert_eq(wal_sync(w), 0);
  struct wal_stats st;
  wal_stats(w, &st);
  cr_assert_eq(st.last_lsn, 10);
  cr_assert_eq(st.durable_lsn, 10);
  cr_assert_eq(st.epoch, 9);
  wal_close(w);
  struct seen s2 = {.base = 50};
  w = open_ok(&c, 0, &s2);
  cr_assert_eq(s2.n, 10);
  cr_assert_eq(s2.last_lsn, 10);
  wal_close(w);
  free(f1);
  free(f2);
  free(old);
  tu_rmrf(dir);
}

struct durable_check {
  struct wal *w;
  pthread_mutex_t mu;
  uint64_t calls, bad, last;
  unsigned syncs_before; /* fdatasyncs before the frames were appended */
};

static unsigned syncs_seen; /* fdatasyncs of the log, either I/O path */

static int counting_fdatasync(int fd) {
  __atomic_add_fetch(&syncs_seen, 1, __ATOMIC_SEQ_CST);
  return fdatasync(fd);
}

static int counting_uring_result(int op, int res) {
  if (op == SYS_OP_FDATASYNC) __atomic_add_fetch(&syncs_seen, 1, __ATOMIC_SEQ_CST);
  return res;
}

static void on_frame_done(void *arg, int rc, uint64_t lsn) {
  struct durable_check *d = arg;
  struct wal_stats st;
  wal_stats(d->w, &st);
  unsigned syncs = __atomic_load_n(&syncs_seen, __ATOMIC_SEQ_CST);
  pthread_mutex_lock(&d->mu);
  if (rc != 0 || st.durable_lsn < lsn || lsn <= d->last ||
      syncs <= d->syncs_before)
    d->bad++;
  d->last = lsn;
  d->calls++;
  pthread_mutex_unlock(&d->mu);
}

Test(wal, append_frame_done_fires_once_durable) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "walfdone");
  struct wal_config c;
  cfg_init(&c, dir, 0);
  struct wal *w = NULL;
  cr_assert_eq(wal_open(&c, 0, NULL, NULL, &w), 0);
  sys_ops.fdatasync = counting_fdatasync;
  sys_ops.uring_result = counting_uring_result;
  struct durable_check d = {.w = w, .mu = PTHREAD_MUTEX_INITIALIZER,
                            .syncs_before = syncs_seen};
  enum { FRAMES = 200, PER = 20 };
  for (uint64_t i = 0; i < FRAMES; i++) {
    size_t len;
    unsigned char *f = make_frame(7, 1 + i * PER, PER, 200, &len);
    cr_assert_eq(wal_append_frame(w, f, len, on_frame_done, &d), 0);
    free(f);
  }
  cr_assert_eq(wal_sync(w), 0);
  wal_close(w);
  cr_assert_eq(d.calls, FRAMES);
  cr_assert_eq(d.bad, 0);
  cr_assert_eq(d.last, FRAMES * PER);
  struct seen s = {.base = 200};
  w = open_ok(&c, 0, &s);
  cr_assert_eq(s.n, FRAMES * PER);
  wal_close(w);
  tu_rmrf(dir);
}

/* ------------------------------------------------------------------------
 * Cursors.
 * --------------------------------------------------------------------- */

/* Records first..first+n-1 in one frame: the hold keeps it open. */
static void put_frame(struct wal *w, uint64_t first, uint64_t n, size_t base) {
  wal_hold(w);
  for (uint64_t i = first; i < first + n; i++)
    put(w, i, base, CAIRN_DURABILITY_INTERVAL, NULL, NULL);
  wal_release_hold(w);
  cr_assert_eq(wal_sync(w), 0);
}

Test(wal, cursor_at_the_written_lsn_waits_for_the_next_frame) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "walcur");
  struct wal_config c;
  cfg_init(&c, dir, 0);
  struct seen s = {.base = 10};
  struct wal *w = open_ok(&c, 0, &s);
  for (uint64_t i = 0; i < 3; i++) put_frame(w, 1 + i * 10, 10, 10);
  struct wal_cursor *cur = NULL;
  cr_assert_eq(wal_cursor_open(w, 31, &cur), CAIRN_EINVAL);
  cr_assert_eq(wal_cursor_open(w, 5, &cur), CAIRN_ENOTFOUND);
  cr_assert_eq(wal_cursor_open(w, 29, &cur), CAIRN_ENOTFOUND);
  cr_assert_null(cur);
  cr_assert_eq(wal_cursor_open(w, 30, &cur), 0);
  const void *p;
  size_t len;
  struct frame_hdr h;
  cr_assert_eq(wal_cursor_next(cur, &p, &len, &h), 0);
  cr_assert_eq(wal_wait_written(w, 30, 10), 30); /* times out */
  put_frame(w, 31, 10, 10);
  cr_assert_eq(wal_wait_written(w, 30, 5000), 40);
  cr_assert_eq(wal_cursor_next(cur, &p, &len, &h), 1);
  cr_assert_eq(h.first_lsn, 31);
  cr_assert_eq(h.last_lsn, 40);
  cr_assert_eq(len, frame_len(&h));
  cr_assert_eq(wal_cursor_next(cur, &p, &len, &h), 0);
  wal_cursor_close(cur);
  wal_cursor_close(NULL);

  /* From a frame boundary in the middle. */
  struct frs fs = {0};
  drain_from(w, 10, &fs);
  cr_assert_eq(fs.n, 3);
  cr_assert_eq(fs.v[0].h.first_lsn, 11);
  cr_assert_eq(fs.v[2].h.last_lsn, 40);
  frs_free(&fs);
  wal_close(w);
  tu_rmrf(dir);
}

/* Each frame a cursor hands out holds the records put() wrote. */
static void check_frame_records(const struct fr *f, size_t base) {
  unsigned char *scratch = malloc(f->h.raw_len + 1);
  const void *raw;
  const char *why;
  cr_assert_eq(frame_payload(f->p, &f->h, scratch, &raw, &why), 0);
  struct seen s = {.base = base};
  size_t off = 0;
  for (uint64_t lsn = f->h.first_lsn; lsn <= f->h.last_lsn; lsn++) {
    struct rec r;
    cr_assert_eq(rec_decode(raw, f->h.raw_len, &off, &r), 0);
    apply_check(&s, lsn, &r);
  }
  cr_assert_eq(s.bad, 0);
  cr_assert_eq(s.lsn_minus_idx, 0); /* put(i) went to LSN i */
  free(scratch);
}

Test(wal, cursor_follows_the_log_across_segments) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "walcurrot");
  struct wal_config c;
  cfg_init(&c, dir, 0);
  struct seen s = {.base = 1000};
  struct wal *w = open_ok(&c, 0, &s);
  struct wal_cursor *cur = NULL;
  cr_assert_eq(wal_cursor_open(w, 0, &cur), 0);
  struct frs fs = {0};
  /* The cursor keeps up while the log fills about five segments. */
  for (uint64_t i = 1; i <= 5000; i += 250) {
    put_range(w, i, i + 249, 1000);
    cr_assert_eq(drain_cursor(cur, &fs), 0);
    cr_assert_eq(fs.v[fs.n - 1].h.last_lsn, i + 249);
  }
  wal_cursor_close(cur);
  struct wal_stats st;
  wal_stats(w, &st);
  cr_assert_geq(st.segments, 5);
  cr_assert_eq(fs.v[0].h.first_lsn, 1);
  for (size_t i = 0; i < fs.n; i += 7) check_frame_records(&fs.v[i], 1000);

  /* Opened at every tenth frame boundary, it finds the same frames. */
  for (size_t i = 0; i < fs.n; i += 10) {
    struct frs part = {0};
    drain_from(w, fs.v[i].h.first_lsn - 1, &part);
    cr_assert_eq(part.n, fs.n - i);
    cr_assert(memcmp(part.v[0].p, fs.v[i].p, fs.v[i].len) == 0);
    frs_free(&part);
  }
  frs_free(&fs);
  wal_close(w);
  tu_rmrf(dir);
}

Test(wal, cursor_below_a_released_segment_is_not_found) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "walcurrel");
  struct wal_config c;
  cfg_init(&c, dir, 0);
  struct seen s = {.base = 1000};
  struct wal *w = open_ok(&c, 0, &s);
  put_range(w, 1, 3000, 1000);
  struct frs fs = {0};
  drain_from(w, 0, &fs);
  struct wal_cursor *cur = NULL;
  cr_assert_eq(wal_release(w, 3001), 0);
  struct wal_stats st;
  wal_stats(w, &st);
  cr_assert_eq(st.segments, 1);
  cr_assert_eq(wal_cursor_open(w, 0, &cur), CAIRN_ENOTFOUND);
  cr_assert_eq(wal_cursor_open(w, 1000, &cur), CAIRN_ENOTFOUND);
  cr_assert_null(cur);
  /* The last frame still lives in the current segment. */
  struct frs tail = {0};
  drain_from(w, fs.v[fs.n - 1].h.first_lsn - 1, &tail);
  cr_assert_eq(tail.n, 1);
  frs_free(&tail);
  frs_free(&fs);
  wal_close(w);
  tu_rmrf(dir);
}

/* A cursor whose segments are released under it hands out right frames
 * or CAIRN_ENOTFOUND, never anything else.  The released segments are
 * recycled and overwritten meanwhile. */
static void cursor_released_meanwhile(int recycle) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "walcurgone");
  struct wal_config c;
  cfg_init(&c, dir, 0);
  struct seen s = {.base = 1000};
  struct wal *w = open_ok(&c, 0, &s);
  put_range(w, 1, 3000, 1000);
  struct wal_cursor *cur = NULL;
  cr_assert_eq(wal_cursor_open(w, 0, &cur), 0);
  struct frs fs = {0};
  for (int i = 0; i < 3; i++) { /* a few frames: it is in segment 1 */
    const void *p;
    size_t len;
    struct frame_hdr h;
    cr_assert_eq(wal_cursor_next(cur, &p, &len, &h), 1);
  }
  if (recycle) sys_ops.fallocate = nospace_fallocate; /* spares: recycled */
  cr_assert_eq(wal_release(w, 3001), 0);
  sys_reset();
  put_range(w, 3001, 6000, 1000); /* overwrites recycled segments */
  int rc = drain_cursor(cur, &fs);
  cr_assert_eq(rc, CAIRN_ENOTFOUND, "next: %d", rc);
  for (size_t i = 0; i < fs.n; i++) check_frame_records(&fs.v[i], 1000);
  wal_cursor_close(cur);
  frs_free(&fs);
  wal_close(w);
  tu_rmrf(dir);
}

Test(wal, cursor_on_released_segment_reports_not_found) {
  cursor_released_meanwhile(0);
}

Test(wal, cursor_on_recycled_segment_reports_not_found) {
  cursor_released_meanwhile(1);
}

/* ------------------------------------------------------------------------
 * Retention, epochs, cutting a tail.
 * --------------------------------------------------------------------- */

struct seg_last {
  char path[8][WAL_PATH_MAX];
  uint64_t last[8];
  int n;
};

static int note_seg(void *arg, const char *path, uint64_t offset,
                    const struct frame_hdr *h, const void *raw) {
  (void)offset, (void)raw;
  struct seg_last *sl = arg;
  if (!sl->n || strcmp(sl->path[sl->n - 1], path) != 0) {
    cr_assert_lt(sl->n, 8);
    snprintf(sl->path[sl->n++], WAL_PATH_MAX, "%s", path);
  }
  sl->last[sl->n - 1] = h->last_lsn;
  return 0;
}

Test(wal, retain_keeps_segments_above_the_floor) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "walret");
  struct wal_config c;
  cfg_init(&c, dir, 0);
  struct seen s = {.base = 1000};
  struct wal *w = open_ok(&c, 0, &s);
  put_range(w, 1, 3000, 1000);
  struct seg_last sl = {0};
  struct wal_scan_result res;
  cr_assert_eq(wal_scan(dir, note_seg, &sl, &res), 0);
  cr_assert_geq(sl.n, 3);
  struct wal_stats st;
  wal_stats(w, &st);
  uint64_t live = st.segments;

  wal_retain(w, 0);
  cr_assert_eq(wal_release(w, 3001), 0);
  wal_stats(w, &st);
  cr_assert_eq(st.segments, live);
  /* Segment 1 holds only LSNs at or below the floor: it may go. */
  wal_retain(w, sl.last[0]);
  cr_assert_eq(wal_release(w, 3001), 0);
  wal_stats(w, &st);
  cr_assert_eq(st.segments, live - 1);
  struct wal_cursor *cur = NULL;
  cr_assert_eq(wal_cursor_open(w, sl.last[0], &cur), 0);
  wal_cursor_close(cur);
  /* A floor one above keeps segment 2. */
  wal_retain(w, sl.last[1] - 1);
  cr_assert_eq(wal_release(w, 3001), 0);
  wal_stats(w, &st);
  cr_assert_eq(st.segments, live - 1);
  wal_retain(w, UINT64_MAX);
  cr_assert_eq(wal_release(w, 3001), 0);
  wal_stats(w, &st);
  cr_assert_eq(st.segments, 1);
  wal_close(w);
  tu_rmrf(dir);
}

struct epochs {
  uint64_t frames, bad, at_new;
};

static int check_epoch(void *arg, const char *path, uint64_t offset,
                       const struct frame_hdr *h, const void *raw) {
  (void)path, (void)offset, (void)raw;
  struct epochs *e = arg;
  e->frames++;
  uint64_t want = h->first_lsn > 20 ? 12 : 7;
  if (h->epoch != want || (h->first_lsn <= 20 && h->last_lsn > 20)) e->bad++;
  if (h->epoch == 12) e->at_new++;
  return 0;
}

Test(wal, set_epoch_stamps_later_frames) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "walepoch");
  struct wal_config c;
  cfg_init(&c, dir, 0);
  struct seen s = {.base = 10};
  struct wal *w = open_ok(&c, 0, &s);
  put_range(w, 1, 20, 10);
  wal_set_epoch(w, 12);
  struct wal_stats st;
  wal_stats(w, &st);
  cr_assert_eq(st.epoch, 12);
  put_range(w, 21, 40, 10);
  wal_close(w);
  struct epochs e = {0};
  struct wal_scan_result res;
  cr_assert_eq(wal_scan(dir, check_epoch, &e, &res), 0);
  cr_assert_eq(res.records, 40);
  cr_assert_eq(e.bad, 0);
  cr_assert_geq(e.at_new, 1);
  tu_rmrf(dir);
}

/* A log of 30 frames of 10 records each: LSNs 1..300. */
static void make_framed_log(const struct wal_config *c) {
  struct seen s = {.base = 100};
  struct wal *w = open_ok(c, 0, &s);
  for (uint64_t i = 0; i < 30; i++) put_frame(w, 1 + i * 10, 10, 100);
  wal_close(w);
}

static void expect_log(const struct wal_config *c, uint64_t start,
                       uint64_t first, uint64_t last) {
  struct seen s = {.base = 100};
  struct wal *w = open_ok(c, start, &s);
  cr_assert_eq(s.n, last >= first ? last - first + 1 : 0);
  if (s.n) {
    cr_assert_eq(s.first_lsn, first);
    cr_assert_eq(s.last_lsn, last);
  }
  cr_assert_eq(wal_last_lsn(w), last > start ? last : start);
  struct wal_stats st;
  wal_stats(w, &st);
  cr_assert_eq(st.truncated_bytes, 0);
  wal_close(w);
}

Test(wal, truncate_after_cuts_at_a_frame_boundary) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "waltrunc");
  struct wal_config c;
  cfg_init(&c, dir, 0);
  make_framed_log(&c);
  uint64_t recs = 99, bytes = 99;
  cr_assert_eq(wal_truncate_after(dir, 155, &test_log, &recs, &bytes),
               CAIRN_EINVAL);
  cr_assert_eq(recs, 99); /* untouched on error */
  expect_log(&c, 0, 1, 300);
  /* Past the end: nothing to do. */
  cr_assert_eq(wal_truncate_after(dir, 300, &test_log, &recs, &bytes), 0);
  cr_assert_eq(recs, 0);
  cr_assert_eq(bytes, 0);
  cr_assert_eq(wal_truncate_after(dir, 1000, &test_log, NULL, NULL), 0);
  expect_log(&c, 0, 1, 300);

  cr_assert_eq(wal_truncate_after(dir, 150, &test_log, &recs, &bytes), 0);
  cr_assert_eq(recs, 150);
  cr_assert_gt(bytes, 150 * 100);
  cr_assert(has_log("cut the log after LSN 150"));
  expect_log(&c, 0, 1, 150);
  struct seen s = {.base = 100};
  struct wal *w = open_ok(&c, 0, &s);
  cr_assert_eq(put(w, 151, 100, CAIRN_DURABILITY_FSYNC, NULL, NULL), 151);
  cr_assert_eq(wal_sync(w), 0);
  wal_close(w);
  expect_log(&c, 0, 1, 151);

  /* Below the first record: the log ends up empty. */
  cr_assert_eq(wal_truncate_after(dir, 0, &test_log, &recs, NULL), 0);
  cr_assert_eq(recs, 151);
  expect_log(&c, 0, 1, 0);
  tu_rmrf(dir);
}

Test(wal, truncate_after_spans_several_segments) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "waltruncseg");
  struct wal_config c;
  cfg_init(&c, dir, 0);
  struct seen s = {.base = 1000};
  struct wal *w = open_ok(&c, 0, &s);
  put_range(w, 1, 5000, 1000);
  struct frs fs = {0};
  drain_from(w, 0, &fs);
  wal_close(w);
  struct seg_last sl = {0};
  struct wal_scan_result res;
  cr_assert_eq(wal_scan(dir, note_seg, &sl, &res), 0);
  cr_assert_geq(sl.n, 5);
  /* A frame boundary inside segment 2. */
  uint64_t cut = 0;
  for (size_t i = 0; i < fs.n && !cut; i++)
    if (fs.v[i].h.last_lsn > sl.last[0] + 20) cut = fs.v[i].h.last_lsn;
  cr_assert(cut > sl.last[0] && cut < sl.last[1]);
  uint64_t recs = 0;
  cr_assert_eq(wal_truncate_after(dir, cut, &test_log, &recs, NULL), 0);
  cr_assert_eq(recs, 5000 - cut);
  cr_assert_eq(count_segments(dir), 2); /* later ones and the spare went */
  struct seen s2 = {.base = 1000};
  w = open_ok(&c, 0, &s2);
  cr_assert_eq(s2.n, cut);
  cr_assert_eq(s2.last_lsn, cut);
  put_range(w, cut + 1, cut + 100, 1000);
  wal_close(w);
  cr_assert_eq(wal_scan(dir, NULL, NULL, &res), 0);
  cr_assert_eq(res.records, cut + 100);
  cr_assert(!res.torn && !res.corrupt);
  cr_assert_leq(count_segments(dir), 3); /* segments 1, 2 and a spare */
  frs_free(&fs);
  tu_rmrf(dir);
}

Test(wal, records_and_leader_frames_keep_lsn_order) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "walmix");
  struct wal_config c;
  cfg_init(&c, dir, 0);
  struct seen s = {.base = 100};
  struct wal *w = open_ok(&c, 0, &s);
  uint64_t next = 1;
  for (int round = 0; round < 20; round++) {
    /* Records still pending when a frame comes, and the reverse. */
    for (int i = 0; i < 5; i++, next++)
      cr_assert_eq(put(w, next, 100, CAIRN_DURABILITY_INTERVAL, NULL, NULL),
                   next);
    size_t len;
    unsigned char *f = make_frame(7, next, 5, 100, &len);
    cr_assert_eq(wal_append_frame(w, f, len, NULL, NULL), 0);
    free(f);
    next += 5;
  }
  cr_assert_eq(wal_sync(w), 0);
  wal_close(w);
  struct seen s2 = {.base = 100};
  w = open_ok(&c, 0, &s2);
  cr_assert_eq(s2.n, next - 1);
  cr_assert_eq(s2.lsn_minus_idx, 0);
  wal_close(w);
  tu_rmrf(dir);
}

Test(wal, leader_frame_larger_than_a_segment_gets_its_own) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "walbigf");
  struct wal_config c;
  cfg_init(&c, dir, 0);
  struct wal *w = NULL;
  cr_assert_eq(wal_open(&c, 0, NULL, NULL, &w), 0);
  size_t len;
  for (uint64_t i = 1; i <= 100; i += 10) {
    unsigned char *f = make_frame(7, i, 10, 100, &len);
    cr_assert_eq(wal_append_frame(w, f, len, NULL, NULL), 0);
    free(f);
  }
  unsigned char *big = make_frame(7, 101, 1, HUGE_BASE, &len);
  cr_assert_gt(len, SEGMENT_BYTES_MIN);
  cr_assert_eq(wal_append_frame(w, big, len, NULL, NULL), 0);
  free(big);
  for (uint64_t i = 102; i < 300; i += 11) { /* up to LSN 299 */
    unsigned char *f = make_frame(7, i, 11, 100, &len);
    cr_assert_eq(wal_append_frame(w, f, len, NULL, NULL), 0);
    free(f);
  }
  cr_assert_eq(wal_sync(w), 0);
  struct frs fs = {0};
  drain_from(w, 0, &fs);
  cr_assert_eq(fs.v[fs.n - 1].h.last_lsn, 299);
  frs_free(&fs);
  wal_close(w);
  struct seen s = {.base = 100};
  w = NULL;
  cr_assert_eq(wal_open(&c, 0, huge_check, &s, &w), 0);
  cr_assert_eq(s.n, 299);
  cr_assert_eq(s.bad, 0);
  wal_close(w);
  tu_rmrf(dir);
}

struct reader_arg {
  struct wal *w;
  uint64_t until;
  struct frs fs;
  int rc;
};

/* A sender: read what is written, sleep until more is. */
static void *cursor_reader(void *p) {
  struct reader_arg *a = p;
  struct wal_cursor *c = NULL;
  a->rc = wal_cursor_open(a->w, 0, &c);
  uint64_t got = 0;
  /* Ends at `until`, or at an error; the writer reaches until. */
  while (a->rc == 0 && got < a->until) {
    a->rc = drain_cursor(c, &a->fs);
    if (a->fs.n) got = a->fs.v[a->fs.n - 1].h.last_lsn;
    if (a->rc == 0 && got < a->until) wal_wait_written(a->w, got, 1000);
  }
  wal_cursor_close(c);
  return NULL;
}

Test(wal, cursor_reads_while_the_log_is_written) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "walcurlive");
  struct wal_config c;
  cfg_init(&c, dir, 0);
  struct seen s = {.base = 700};
  struct wal *w = open_ok(&c, 0, &s);
  struct reader_arg a = {.w = w, .until = 4000};
  pthread_t th;
  pthread_create(&th, NULL, cursor_reader, &a);
  for (uint64_t i = 1; i <= 4000; i++) {
    put(w, i, 700, CAIRN_DURABILITY_INTERVAL, NULL, NULL);
    if (i % 400 == 0) cr_assert_eq(wal_sync(w), 0);
  }
  pthread_join(th, NULL);
  cr_assert_eq(a.rc, 0);
  cr_assert_eq(a.fs.v[0].h.first_lsn, 1);
  cr_assert_eq(a.fs.v[a.fs.n - 1].h.last_lsn, 4000);
  for (size_t i = 0; i < a.fs.n; i++) check_frame_records(&a.fs.v[i], 700);
  frs_free(&a.fs);
  wal_close(w);
  tu_rmrf(dir);
}

/* ------------------------------------------------------------------------
 * Shipping: a written frame may leave before its fdatasync ends.
 * --------------------------------------------------------------------- */

static int gate_closed; /* the log's fdatasyncs wait while it is set */

static int gated_uring_result(int op, int res) {
  if (op != SYS_OP_FDATASYNC) return res;
  for (int i = 0; i < 5000 && __atomic_load_n(&gate_closed, __ATOMIC_ACQUIRE);
       i++)
    usleep(1000);
  return res;
}

Test(wal, a_written_frame_ships_while_its_fdatasync_runs) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "walship");
  struct wal_config c;
  cfg_init(&c, dir, 0);
  struct wal *w = NULL;
  cr_assert_eq(wal_open(&c, 0, NULL, NULL, &w), 0);
  struct wal_stats st;
  wal_stats(w, &st);
  if (!st.uring) { /* the gate sits on io_uring's fdatasync result */
    wal_close(w);
    tu_rmrf(dir);
    cr_skip_test("io_uring is not available");
  }
  __atomic_store_n(&gate_closed, 1, __ATOMIC_RELEASE);
  sys_ops.uring_result = gated_uring_result;
  uint64_t lsn = put(w, 1, 50, CAIRN_DURABILITY_FSYNC, NULL, NULL);
  cr_assert_eq(wal_wait_written(w, 0, 3000), lsn);
  wal_stats(w, &st);
  cr_assert_lt(st.durable_lsn, lsn, "the fdatasync is still held");
  struct wal_cursor *cur;
  const void *fr;
  size_t len;
  struct frame_hdr h;
  cr_assert_eq(wal_cursor_open(w, 0, &cur), 0);
  cr_assert_eq(wal_cursor_next(cur, &fr, &len, &h), 1);
  cr_assert_eq(h.last_lsn, lsn);
  wal_cursor_close(cur);
  __atomic_store_n(&gate_closed, 0, __ATOMIC_RELEASE);
  cr_assert_eq(wal_wait(w, lsn, CAIRN_DURABILITY_FSYNC), 0);
  wal_close(w);
  sys_reset();
  tu_rmrf(dir);
}
