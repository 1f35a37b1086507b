/*
 * test_faults.c - system call failures injected through sys_ops: a failed
 * fdatasync is fatal and never retried, ENOSPC refuses writes without
 * losing any, short writes are completed, and a refused io_uring falls
 * back to pwritev + fdatasync.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../testutil.h"
#include "../walutil.h"
#include "frame.h"
#include "limits.h"
#include "sys.h"
#include "wal.h"

/* ------------------------------------------------------------------------
 * Helpers.
 * --------------------------------------------------------------------- */



static void cfg_init(struct wal_config *c, const char *dir, unsigned flags) {
  wal_cfg(c, dir, flags, 5);
}


static struct rec make_rec(uint64_t idx, char *key, unsigned char *val,
                           size_t vlen) {
  fill(val, vlen, idx);
  snprintf(key, 32, "k%016llx", (unsigned long long)idx);
  return (struct rec){.op = REC_PUT, .ns_len = 1, .ns = "t", .key = key,
                      .klen = 17, .val = val, .vlen = (uint32_t)vlen};
}

/* Reserve and append record idx; returns the reserve error, or 0 and the
 * LSN in *lsn. */
static int try_put(struct wal *w, uint64_t idx, size_t vlen,
                   cairn_durability mode, cairn_done_fn done, void *arg,
                   uint64_t *lsn) {
  char key[32];
  unsigned char val[4096];
  cr_assert_leq(vlen, sizeof val);
  struct rec r = make_rec(idx, key, val, vlen);
  int rc = wal_reserve(w, rec_size(&r));
  if (rc == 0) *lsn = wal_append(w, &r, mode, done, arg);
  return rc;
}

static uint64_t put(struct wal *w, uint64_t idx, size_t vlen, int wait) {
  uint64_t lsn = 0;
  cr_assert_eq(try_put(w, idx, vlen, CAIRN_DURABILITY_FSYNC, NULL, NULL,
                       &lsn), 0);
  if (wait) cr_assert_eq(wal_wait(w, lsn, CAIRN_DURABILITY_FSYNC), 0);
  return lsn;
}

struct seen {
  uint64_t n, last_lsn;
  size_t vlen;
  int bad;
};

/* Record LSN i must be record i, byte for byte. */
static int apply_check(void *arg, uint64_t lsn, const struct rec *r) {
  struct seen *s = arg;
  char key[32];
  unsigned char val[4096];
  struct rec want = make_rec(lsn, key, val, s->vlen);
  if (r->klen != 17 || memcmp(r->key, want.key, 17) != 0 ||
      r->vlen != want.vlen || memcmp(r->val, want.val, want.vlen) != 0)
    s->bad++;
  if (s->n && lsn != s->last_lsn + 1) s->bad++;
  s->last_lsn = lsn;
  s->n++;
  return 0;
}

static void reopen_expect(const struct wal_config *c, uint64_t n,
                          size_t vlen) {
  struct seen s = {.vlen = vlen};
  struct wal *w = NULL;
  cr_assert_eq(wal_open(c, 0, apply_check, &s, &w), 0);
  cr_assert_eq(s.n, n, "replayed %llu records, want %llu",
               (unsigned long long)s.n, (unsigned long long)n);
  cr_assert_eq(s.bad, 0);
  wal_close(w);
}

static void setup(void) {
  alarm(60);
  log_text[0] = 0;
}

TestSuite(faults, .init = setup, .fini = sys_reset);

/* ------------------------------------------------------------------------
 * fdatasync failures: fatal, never retried.
 * --------------------------------------------------------------------- */

static atomic_int sync_calls;

static int eio_fdatasync(int fd) {
  (void)fd;
  atomic_fetch_add(&sync_calls, 1);
  errno = EIO;
  return -1;
}

static int eio_uring_result(int op, int res) {
  if (op != SYS_OP_FDATASYNC) return res;
  atomic_fetch_add(&sync_calls, 1);
  return -EIO;
}

struct done_rec {
  atomic_int calls, rc;
};

static void on_done(void *arg, int rc, uint64_t lsn) {
  (void)lsn;
  struct done_rec *d = arg;
  atomic_store(&d->rc, rc);
  atomic_fetch_add(&d->calls, 1);
}

static void fdatasync_eio(unsigned flags) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "eio");
  struct wal_config c;
  cfg_init(&c, dir, flags);
  struct wal *w = NULL;
  cr_assert_eq(wal_open(&c, 0, NULL, NULL, &w), 0);
  struct wal_stats st;
  wal_stats(w, &st);
  if (!(flags & WAL_NO_URING) && !st.uring) {
    wal_close(w);
    tu_rmrf(dir);
    cr_skip_test("io_uring is not available here");
  }
  put(w, 1, 100, 1);

  atomic_store(&sync_calls, 0);
  if (flags & WAL_NO_URING) sys_ops.fdatasync = eio_fdatasync;
  else sys_ops.uring_result = eio_uring_result;
  struct done_rec d = {0};
  /* Both reserved before either can fail: the first flush is fatal. */
  char k2[32], k3[32];
  unsigned char v2[100], v3[100];
  struct rec r2 = make_rec(2, k2, v2, sizeof v2);
  struct rec r3 = make_rec(3, k3, v3, sizeof v3);
  cr_assert_eq(wal_reserve(w, rec_size(&r2)), 0);
  cr_assert_eq(wal_reserve(w, rec_size(&r3)), 0);
  uint64_t l2 = wal_append(w, &r2, CAIRN_DURABILITY_FSYNC, on_done, &d);
  uint64_t l3 = wal_append(w, &r3, CAIRN_DURABILITY_FSYNC, NULL, NULL);
  cr_assert_eq(wal_wait(w, l3, CAIRN_DURABILITY_FSYNC), CAIRN_EIO);
  cr_assert_eq(wal_wait(w, l2, CAIRN_DURABILITY_FSYNC), CAIRN_EIO);
  uint64_t l4;
  cr_assert_eq(try_put(w, 4, 100, CAIRN_DURABILITY_FSYNC, NULL, NULL, &l4),
               CAIRN_EIO);
  cr_assert_eq(wal_sync(w), CAIRN_EIO);
  wal_stats(w, &st);
  cr_assert_eq(st.failed, 1);
  cr_assert_eq(st.durable_lsn, 1);
  usleep(100 * 1000); /* give a wrong retry a chance to happen */
  wal_close(w);
  cr_assert_eq(atomic_load(&d.calls), 1);
  cr_assert_eq(atomic_load(&d.rc), CAIRN_EIO);
  cr_assert_eq(atomic_load(&sync_calls), 1, "fdatasync was retried");
  cr_assert(has_log("fdatasync"), "log: %s", log_text);
  cr_assert(has_log(dir));
  cr_assert(has_log("Input/output error"));
  sys_reset();
  tu_rmrf(dir);
}

Test(faults, fdatasync_eio_is_fatal_and_not_retried_pwritev) {
  fdatasync_eio(WAL_NO_URING);
}

Test(faults, fdatasync_eio_is_fatal_and_not_retried_io_uring) {
  fdatasync_eio(0);
}

/* ------------------------------------------------------------------------
 * ENOSPC: refuse new writes, lose nothing, resume when space is back.
 * --------------------------------------------------------------------- */

static atomic_int falloc_full;

static int full_fallocate(int fd, int mode, off_t off, off_t len) {
  if (atomic_load(&falloc_full)) {
    errno = ENOSPC;
    return -1;
  }
  return fallocate(fd, mode, off, len);
}

Test(faults, enospc_on_fallocate_refuses_writes_and_loses_none) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "nospc");
  struct wal_config c;
  cfg_init(&c, dir, 0);
  struct wal *w = NULL;
  cr_assert_eq(wal_open(&c, 0, NULL, NULL, &w), 0);
  sys_ops.fallocate = full_fallocate;
  atomic_store(&falloc_full, 1);

  /* Fill the current segment and the spare; the next spare cannot be
   * allocated, so writes are refused once the spare is full. */
  uint64_t idx = 1, lsn = 0;
  int rc = 0;
  /* Room counts what is in flight too, so once everything is written a
   * little more may fit: fill again until nothing more does. */
  for (int pass = 0; pass < 20; pass++) {
    uint64_t before = idx;
    for (; idx < 20000; idx++) {
      rc = try_put(w, idx, 1000, CAIRN_DURABILITY_INTERVAL, NULL, NULL, &lsn);
      if (rc) break;
    }
    cr_assert_eq(rc, CAIRN_EFULL);
    cr_assert_eq(lsn, idx - 1);
    cr_assert_eq(wal_sync(w), 0, "everything accepted is written");
    if (idx == before) break;
  }
  cr_assert(has_log("no space left"), "log: %s", log_text);
  uint64_t tmp;
  cr_assert_eq(try_put(w, idx, 1000, CAIRN_DURABILITY_INTERVAL, NULL, NULL,
                       &tmp), CAIRN_EFULL);
  struct wal_stats st;
  wal_stats(w, &st);
  cr_assert_eq(st.durable_lsn, idx - 1);

  /* Space is back: the log retries the allocation, writes resume. */
  atomic_store(&falloc_full, 0);
  int tries = 0;
  while ((rc = try_put(w, idx, 1000, CAIRN_DURABILITY_FSYNC, NULL, NULL,
                       &lsn)) == CAIRN_EFULL && tries++ < 200)
    usleep(20 * 1000);
  cr_assert_eq(rc, 0);
  cr_assert_eq(lsn, idx);
  cr_assert_eq(wal_wait(w, lsn, CAIRN_DURABILITY_FSYNC), 0);
  for (idx++; idx < 1200 + lsn; idx++) put(w, idx, 1000, 0);
  cr_assert_eq(wal_sync(w), 0);
  wal_stats(w, &st);
  cr_assert_eq(st.failed, 0);
  wal_close(w);
  sys_reset();
  reopen_expect(&c, idx - 1, 1000);
  tu_rmrf(dir);
}

/* A write that hits ENOSPC is kept and retried, never acknowledged early. */
static atomic_int write_full;

static ssize_t full_pwritev(int fd, const struct iovec *iov, int cnt,
                            off_t off) {
  if (atomic_load(&write_full)) {
    errno = ENOSPC;
    return -1;
  }
  return pwritev(fd, iov, cnt, off);
}

static void *lift_full(void *arg) {
  (void)arg;
  usleep(250 * 1000);
  atomic_store(&write_full, 0);
  return NULL;
}

Test(faults, enospc_on_write_holds_the_frame_until_space_returns) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "wfull");
  struct wal_config c;
  cfg_init(&c, dir, WAL_NO_URING);
  struct wal *w = NULL;
  cr_assert_eq(wal_open(&c, 0, NULL, NULL, &w), 0);
  put(w, 1, 100, 1);
  sys_ops.pwritev = full_pwritev;
  atomic_store(&write_full, 1);
  uint64_t lsn;
  cr_assert_eq(try_put(w, 2, 100, CAIRN_DURABILITY_FSYNC, NULL, NULL, &lsn),
               0);
  pthread_t th;
  pthread_create(&th, NULL, lift_full, NULL);
  /* Waits through the retries; never acknowledged while the disk is full. */
  cr_assert_eq(wal_wait(w, lsn, CAIRN_DURABILITY_FSYNC), 0);
  cr_assert_eq(atomic_load(&write_full), 0);
  pthread_join(th, NULL);
  cr_assert(has_log("no space left"), "log: %s", log_text);
  put(w, 3, 100, 1);
  wal_close(w);
  sys_reset();
  reopen_expect(&c, 3, 100);
  tu_rmrf(dir);
}

/* ------------------------------------------------------------------------
 * Short writes are completed.
 * --------------------------------------------------------------------- */

static atomic_int short_writes;

static ssize_t half_pwritev(int fd, const struct iovec *iov, int cnt,
                            off_t off) {
  cr_assert_eq(cnt, 1);
  struct iovec half = iov[0];
  if (half.iov_len > 1) {
    half.iov_len /= 2;
    atomic_fetch_add(&short_writes, 1);
  }
  return pwritev(fd, &half, 1, off);
}

static int half_uring_result(int op, int res) {
  if (op == SYS_OP_WRITE && res > 1) {
    atomic_fetch_add(&short_writes, 1);
    return res / 2; /* as if the kernel had stopped halfway */
  }
  return res;
}

static void short_write(unsigned flags) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "short");
  struct wal_config c;
  cfg_init(&c, dir, flags);
  struct wal *w = NULL;
  cr_assert_eq(wal_open(&c, 0, NULL, NULL, &w), 0);
  struct wal_stats st;
  wal_stats(w, &st);
  if (!(flags & WAL_NO_URING) && !st.uring) {
    wal_close(w);
    tu_rmrf(dir);
    cr_skip_test("io_uring is not available here");
  }
  atomic_store(&short_writes, 0);
  sys_ops.pwritev = half_pwritev;
  sys_ops.uring_result = half_uring_result;
  for (uint64_t i = 1; i <= 100; i++) put(w, i, 500, 1);
  wal_stats(w, &st);
  cr_assert_eq(st.failed, 0);
  cr_assert_eq(st.durable_lsn, 100);
  wal_close(w);
  sys_reset();
  cr_assert_gt(atomic_load(&short_writes), 0);
  reopen_expect(&c, 100, 500);
  tu_rmrf(dir);
}

Test(faults, short_write_is_completed_pwritev) { short_write(WAL_NO_URING); }

Test(faults, short_write_is_completed_io_uring) { short_write(0); }

/* ------------------------------------------------------------------------
 * io_uring refused.
 * --------------------------------------------------------------------- */

static int no_uring(void) { return -ENOSYS; }

Test(faults, uring_init_failing_falls_back_and_says_so) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "nouring");
  struct wal_config c;
  cfg_init(&c, dir, 0);
  sys_ops.uring_init = no_uring;
  struct wal *w = NULL;
  cr_assert_eq(wal_open(&c, 0, NULL, NULL, &w), 0);
  struct wal_stats st;
  wal_stats(w, &st);
  cr_assert_eq(st.uring, 0);
  cr_assert(has_log("io_uring unavailable"), "log: %s", log_text);
  /* Exactly one line about it. */
  pthread_mutex_lock(&log_mu);
  const char *first = strstr(log_text, "io_uring");
  cr_assert_null(strstr(first + 1, "io_uring"));
  pthread_mutex_unlock(&log_mu);
  for (uint64_t i = 1; i <= 20; i++) put(w, i, 100, 1);
  wal_close(w);
  sys_reset();
  reopen_expect(&c, 20, 100);
  tu_rmrf(dir);
}
