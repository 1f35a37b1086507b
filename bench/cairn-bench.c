/*
 * cairn-bench.c - cairn against its peers, LMDB and SQLite, in one run.
 *
 * Each figure runs the same workload on cairn and on a peer, one after the
 * other, and reports operations per second for both and their ratio.  The
 * machine this runs on is shared and noisy, so only ratios taken within one
 * run mean anything; absolute numbers do not travel.  bench/README lists the
 * figures and the goal of each.
 *
 * Workload: 16-byte keys (a 64-bit mix of the key's index, as 16 hex
 * digits, so inserts land in random order), 100-byte values (the index,
 * then random base64 text that does not compress), over n keys.
 *
 * Only the public API (include/cairn.h) is used.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>
#include <sqlite3.h>

#include "benchutil.h"
#include "cairn.h"

#define KEY_BYTES        BENCH_KEY_BYTES
#define VAL_BYTES        100u
#define THREADS_MAX      256u
#define INFLIGHT_MAX     4096u
#define PROBE_SAMPLES_MAX (1u << 20)
#define RECOVERY_WINDOW  4096u      /* async puts in flight while loading */
#define LMDB_RENEW_OPS   1000u      /* reads per LMDB read txn */
#define GET_ROUNDS       3u         /* turns each engine takes in figure 6 */
#define DRAIN_TIMEOUT_S  60         /* a completion later than this is lost */
#define SQLITE_BUSY_MS   10000

/* ------------------------------------------------------------------------
 * Settings and results
 * --------------------------------------------------------------------- */

enum fig {
  FIG_FSYNC, FIG_PUT_DURABLE, FIG_PUT_INFLIGHT, FIG_PUT_SQLITE,
  FIG_PUT_MEMORY, FIG_GET, FIG_RECOVERY, FIG_MEMORY, FIG_COUNT
};

static const char *const fig_names[FIG_COUNT] = {
  "fsync", "put-durable", "put-inflight", "put-sqlite",
  "put-memory", "get", "recovery", "memory",
};

static struct settings {
  uint64_t n;             /* keys in the key space */
  double seconds;         /* length of each durable figure */
  double read_seconds;    /* length of each read figure */
  double probe_seconds;   /* length of the fsync probe */
  unsigned threads;       /* writer threads of figures 2 and 4 */
  unsigned inflight;      /* outstanding async writes of figure 3 */
  unsigned submitters;    /* threads keeping them outstanding */
  const char *parent;     /* where the data directory is made */
  bool only[FIG_COUNT];
  bool keep;
  bool no_uring;
} set = {
  .n = 1000000, .seconds = 4.0, .read_seconds = 3.0, .probe_seconds = 2.0,
  .threads = 8, .inflight = 64, .submitters = 2, .parent = ".",
};

/* Peer rates kept for figures that compare against an earlier one. */
static double lmdb_commit_rate = -1, cairn_durable_rate = -1;

/* ------------------------------------------------------------------------
 * Values (keys and the rest: benchutil.c, shared with ckpt-bench)
 * --------------------------------------------------------------------- */

/* A value is token-like text: random base64 characters drawn from the
 * index, so values differ and do not compress (as tokens would not),
 * stamped with the index. */
static void make_val(uint64_t idx, char val[VAL_BYTES])
{
  static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  uint64_t m = idx ^ 0x5eed5eed5eedull;
  for (unsigned i = 8; i < VAL_BYTES; i++) {
    if ((i - 8) % 10 == 0)
      m = bench_mix64(m);
    val[i] = b64[m & 63];
    m >>= 6;
  }
  memcpy(val, &idx, sizeof idx);
}

/* ------------------------------------------------------------------------
 * Opening the engines
 * --------------------------------------------------------------------- */

static int cn_open(const char *dir, cairn_durability d, cairn **out)
{
  cairn_options opt;
  cairn_options_init(&opt);
  opt.durability = d;
  opt.log_fn = bench_cairn_log;
  opt.log_level = CAIRN_LOG_WARN;
  if (set.no_uring)
    opt.flags |= CAIRN_OPEN_NO_URING;
  int rc = cairn_open(dir, &opt, out);
  if (rc != 0)
    fprintf(stderr, "cairn-bench: cairn_open %s: %s\n", dir,
            cairn_strerror(rc));
  return rc;
}

struct lm {
  MDB_env *env;
  MDB_dbi dbi;
};

/* Open an LMDB environment in dir with room for set.n entries several
 * times over (the map is sparse, so room costs nothing). */
static int lm_open(const char *dir, unsigned flags, struct lm *lm)
{
  MDB_txn *txn;
  size_t map = set.n * 1024u;
  int rc;

  if (map < (256u << 20))
    map = 256u << 20;
  if ((rc = mdb_env_create(&lm->env)) != 0)
    return bench_lm_fail("mdb_env_create", rc);
  if ((rc = mdb_env_set_mapsize(lm->env, map)) != 0 ||
      (rc = mdb_env_open(lm->env, dir, flags, 0644)) != 0 ||
      (rc = mdb_txn_begin(lm->env, NULL, 0, &txn)) != 0) {
    mdb_env_close(lm->env);
    return bench_lm_fail("mdb_env_open", rc);
  }
  if ((rc = mdb_dbi_open(txn, NULL, 0, &lm->dbi)) != 0 ||
      (rc = mdb_txn_commit(txn)) != 0) {
    mdb_env_close(lm->env);
    return bench_lm_fail("mdb_dbi_open", rc);
  }
  return 0;
}

/* ------------------------------------------------------------------------
 * Timed runs of threads
 * --------------------------------------------------------------------- */

struct run;
struct worker;
typedef void (*work_fn)(struct run *r, struct worker *w);

struct run {
  work_fn fn;
  cairn *db;
  struct lm lm;
  const char *sqlite_path;
  unsigned inflight_each;   /* async figure: permits per submitter */
  atomic_int stop;
  pthread_barrier_t bar;
};

struct worker {
  pthread_t tid;
  struct run *run;
  uint64_t seed;
  uint64_t ops;
  uint64_t sink;            /* read bytes go here so reads are not elided */
  int err;                  /* first error, as text in msg */
  char msg[160];
  /* async figure */
  sem_t sem;
  atomic_uint_fast64_t done_ok;
  atomic_int done_err;
};

static void worker_fail(struct worker *w, const char *what, const char *why)
{
  if (w->err)
    return;
  w->err = 1;
  snprintf(w->msg, sizeof w->msg, "%s: %s", what, why);
}

static void *worker_main(void *arg)
{
  struct worker *w = arg;
  w->run->fn(w->run, w);
  return NULL;
}

/* Run nthreads workers for secs seconds; *rate gets total ops / elapsed.
 * Workers do their set-up, meet at the barrier, and run until stop.
 * Returns 0, or -1 if any worker failed (its message is printed). */
static int run_timed(struct run *r, unsigned nthreads, double secs,
                     double *rate)
{
  struct worker *ws = calloc(nthreads, sizeof *ws);
  unsigned started = 0;
  int failed = 0;

  if (ws == NULL)
    return -1;
  atomic_store(&r->stop, 0);
  pthread_barrier_init(&r->bar, NULL, nthreads + 1);
  for (; started < nthreads; started++) {
    ws[started].run = r;
    ws[started].seed = bench_mix64(started * 1000003u + 17) | 1;
    if (pthread_create(&ws[started].tid, NULL, worker_main, &ws[started]))
      break;
  }
  if (started < nthreads) {
    /* The barrier counts on every thread; without them, give up loudly. */
    fprintf(stderr, "cairn-bench: pthread_create failed\n");
    exit(EXIT_FAILURE);
  }
  pthread_barrier_wait(&r->bar);
  uint64_t t0 = bench_now_ns();
  bench_sleep(secs);
  atomic_store(&r->stop, 1);
  uint64_t ops = 0;
  for (unsigned i = 0; i < nthreads; i++) {
    pthread_join(ws[i].tid, NULL);
    ops += ws[i].ops;
    if (ws[i].err) {
      fprintf(stderr, "cairn-bench: thread %u: %s\n", i, ws[i].msg);
      failed = 1;
    }
  }
  *rate = (double)ops / bench_secs_since(t0);
  pthread_barrier_destroy(&r->bar);
  free(ws);
  return failed ? -1 : 0;
}

/* ------------------------------------------------------------------------
 * Figure 1: the fsync probe
 * --------------------------------------------------------------------- */

static double fsync_mean_us = -1;

/* Prepare a fully written 1 MiB file, so the probe's writes land on
 * allocated, initialised blocks, as a log's preallocated segment does. */
static int probe_file(const char *path)
{
  static char block[4096];
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return -errno;
  for (off_t off = 0; off < (1 << 20); off += (off_t)sizeof block) {
    if (pwrite(fd, block, sizeof block, off) != (ssize_t)sizeof block) {
      close(fd);
      return -EIO;
    }
  }
  if (fdatasync(fd) != 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  return fd;
}

static int fig_fsync(void)
{
  char path[4200];
  static char block[4096];
  uint64_t *lat = malloc(PROBE_SAMPLES_MAX * sizeof *lat);
  size_t cnt = 0;
  uint64_t sum = 0;

  snprintf(path, sizeof path, "%s/fsync-probe", bench_dir);
  int fd = probe_file(path);
  if (fd < 0 || lat == NULL) {
    fprintf(stderr, "cairn-bench: probe file: %s\n", strerror(-fd));
    free(lat);
    if (fd >= 0)
      close(fd);
    return -1;
  }
  uint64_t end = bench_now_ns() + (uint64_t)(set.probe_seconds * 1e9);
  while (cnt < PROBE_SAMPLES_MAX && bench_now_ns() < end) {
    block[cnt % sizeof block]++;
    uint64_t t = bench_now_ns();
    if (pwrite(fd, block, sizeof block, 64 * 1024) != (ssize_t)sizeof block ||
        fdatasync(fd) != 0) {
      fprintf(stderr, "cairn-bench: probe write: %s\n", strerror(errno));
      break;
    }
    lat[cnt] = bench_now_ns() - t;
    sum += lat[cnt++];
  }
  close(fd);
  unlink(path);
  if (cnt == 0) {
    free(lat);
    return -1;
  }
  qsort(lat, cnt, sizeof *lat, bench_cmp_u64);
  fsync_mean_us = (double)sum / (double)cnt / 1e3;
  printf("  %zu writes of 4 KiB + fdatasync: mean %.1f us, p50 %.1f us, "
         "p99 %.1f us\n", cnt, fsync_mean_us, (double)lat[cnt / 2] / 1e3,
         (double)lat[cnt * 99 / 100] / 1e3);
  printf("  ceiling of one durable write per fdatasync: %.0f ops/s\n",
         1e6 / fsync_mean_us);
  printf("  ceiling of group commit at concurrency C (C / latency): "
         "C=%u %.0f ops/s, C=%u %.0f ops/s\n", set.threads,
         set.threads * 1e6 / fsync_mean_us, set.inflight,
         set.inflight * 1e6 / fsync_mean_us);
  free(lat);
  bench_row("fsync probe (1 in flight)", "ops/s", -1, 1e6 / fsync_mean_us,
          GOAL_NONE, 0);
  return 0;
}

/* ------------------------------------------------------------------------
 * Durable puts: cairn, LMDB, SQLite
 * --------------------------------------------------------------------- */

static void work_cairn_put(struct run *r, struct worker *w)
{
  cairn_write wr = { .durability = CAIRN_DURABILITY_FSYNC };
  char key[KEY_BYTES], val[VAL_BYTES];

  pthread_barrier_wait(&r->bar);
  while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
    uint64_t i = bench_rand(&w->seed, set.n);
    bench_key(i, key);
    make_val(i, val);
    int rc = cairn_put(r->db, NULL, key, KEY_BYTES, val, VAL_BYTES, &wr);
    if (rc != 0) {
      worker_fail(w, "cairn_put", cairn_strerror(rc));
      return;
    }
    w->ops++;
  }
}

static void work_lmdb_put(struct run *r, struct worker *w)
{
  char key[KEY_BYTES], val[VAL_BYTES];

  pthread_barrier_wait(&r->bar);
  while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
    uint64_t i = bench_rand(&w->seed, set.n);
    MDB_val k = { KEY_BYTES, key }, v = { VAL_BYTES, val };
    MDB_txn *txn;
    int rc;
    bench_key(i, key);
    make_val(i, val);
    if ((rc = mdb_txn_begin(r->lm.env, NULL, 0, &txn)) != 0) {
      worker_fail(w, "mdb_txn_begin", mdb_strerror(rc));
      return;
    }
    if ((rc = mdb_put(txn, r->lm.dbi, &k, &v, 0)) != 0) {
      mdb_txn_abort(txn);
      worker_fail(w, "mdb_put", mdb_strerror(rc));
      return;
    }
    if ((rc = mdb_txn_commit(txn)) != 0) {
      worker_fail(w, "mdb_txn_commit", mdb_strerror(rc));
      return;
    }
    w->ops++;
  }
}

/* cairn with every put fdatasynced, nthreads writers. */
static int cairn_durable_rate_measure(const char *name, double *rate)
{
  char dir[4200];
  struct run r = { .fn = work_cairn_put };
  int rc = bench_subdir(name, dir, sizeof dir);
  if (rc != 0 || cn_open(dir, CAIRN_DURABILITY_FSYNC, &r.db) != 0)
    return -1;
  rc = run_timed(&r, set.threads, set.seconds, rate);
  struct cairn_stats st;
  if (rc == 0 && cairn_stats(r.db, &st) == 0 && st.log_syncs > 0)
    printf("  cairn: %" PRIu64 " puts in %" PRIu64 " fdatasyncs "
           "(%.1f per sync), uring %d\n", st.puts, st.log_syncs,
           (double)st.puts / (double)st.log_syncs, st.uring);
  cairn_close(r.db);
  bench_rmrf(dir);
  return rc;
}

static int lmdb_commit_rate_measure(double *rate)
{
  char dir[4200];
  struct run r = { .fn = work_lmdb_put };
  if (bench_subdir("lmdb-durable", dir, sizeof dir) != 0 ||
      lm_open(dir, 0, &r.lm) != 0)
    return -1;
  int rc = run_timed(&r, set.threads, set.seconds, rate);
  mdb_env_close(r.lm.env);
  bench_rmrf(dir);
  return rc;
}

static void print_pair_as(const char *lead, const char *peer, double c,
                          double p)
{
  char cs[32] = "-", ps[32] = "-";
  if (c >= 0)
    snprintf(cs, sizeof cs, "%.0f", c);
  if (p >= 0)
    snprintf(ps, sizeof ps, "%.0f", p);
  printf("  %scairn %s ops/s, %s %s ops/s", lead, cs, peer, ps);
  if (c >= 0 && p > 0)
    printf(", ratio %.2f", c / p);
  printf("\n");
}

static void print_pair(const char *peer, double c, double p)
{
  print_pair_as("", peer, c, p);
}

static int fig_put_durable(void)
{
  double c = -1, p = -1;
  int rc = cairn_durable_rate_measure("cairn-durable", &c);
  if (rc == 0)
    cairn_durable_rate = c;
  if (lmdb_commit_rate_measure(&p) == 0)
    lmdb_commit_rate = p;
  else
    rc = -1;
  print_pair("LMDB", cairn_durable_rate, lmdb_commit_rate);
  bench_row("put durable, 8 thr vs LMDB", "ops/s", cairn_durable_rate,
          lmdb_commit_rate, GOAL_RATIO_GE, 5);
  return rc;
}

/* ------------------------------------------------------------------------
 * Figure 3: durable puts with many writes in flight (async API)
 * --------------------------------------------------------------------- */

static void on_done(void *arg, int rc, uint64_t lsn)
{
  struct worker *w = arg;
  (void)lsn;
  if (rc != 0)
    atomic_store(&w->done_err, rc);
  else
    atomic_fetch_add_explicit(&w->done_ok, 1, memory_order_relaxed);
  sem_post(&w->sem);
}

/* Keep r->inflight_each puts outstanding until stop, then wait for all of
 * them: w->ops counts completed, durable puts. */
static void work_cairn_async(struct run *r, struct worker *w)
{
  cairn_write wr = { .durability = CAIRN_DURABILITY_FSYNC, .done = on_done,
                     .done_arg = w };
  char key[KEY_BYTES], val[VAL_BYTES];
  unsigned permits = r->inflight_each;

  sem_init(&w->sem, 0, permits);
  pthread_barrier_wait(&r->bar);
  while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
    if (bench_sem_wait(&w->sem) != 0) {
      worker_fail(w, "async put", "no completion within the timeout");
      return;   /* the semaphore may still be posted: leak it on purpose */
    }
    uint64_t i = bench_rand(&w->seed, set.n);
    bench_key(i, key);
    make_val(i, val);
    int rc = cairn_put(r->db, NULL, key, KEY_BYTES, val, VAL_BYTES, &wr);
    if (rc != 0) {
      sem_post(&w->sem);
      worker_fail(w, "cairn_put (async)", cairn_strerror(rc));
      break;
    }
  }
  for (unsigned k = 0; k < permits; k++) {
    if (bench_sem_wait(&w->sem) != 0) {
      worker_fail(w, "async put", "completion lost while draining");
      return;
    }
  }
  w->ops = atomic_load(&w->done_ok);
  int err = atomic_load(&w->done_err);
  if (err != 0)
    worker_fail(w, "async completion", cairn_strerror(err));
  sem_destroy(&w->sem);
}

static int fig_put_inflight(void)
{
  char dir[4200];
  struct run r = { .fn = work_cairn_async };
  unsigned subs = set.submitters;
  double c = -1;
  int rc = -1;

  if (subs > set.inflight)
    subs = set.inflight;
  r.inflight_each = set.inflight / subs;
  if (bench_subdir("cairn-async", dir, sizeof dir) == 0 &&
      cn_open(dir, CAIRN_DURABILITY_FSYNC, &r.db) == 0) {
    rc = run_timed(&r, subs, set.seconds, &c);
    struct cairn_stats st;
    if (rc == 0 && cairn_stats(r.db, &st) == 0 && st.log_syncs > 0)
      printf("  cairn: %u submitters x %u in flight; %.1f puts per "
             "fdatasync\n", subs, r.inflight_each,
             (double)st.puts / (double)st.log_syncs);
    cairn_close(r.db);
    bench_rmrf(dir);
  }
  if (rc != 0)
    c = -1;
  if (lmdb_commit_rate < 0) {
    double p;
    if (lmdb_commit_rate_measure(&p) == 0)
      lmdb_commit_rate = p;
  }
  print_pair("LMDB (per-commit, figure 2)", c, lmdb_commit_rate);
  bench_row("put durable, 64 in flight", "ops/s", c, lmdb_commit_rate,
          GOAL_RATIO_GE, 30);
  return rc;
}

/* ------------------------------------------------------------------------
 * Figure 4: durable puts against SQLite
 * --------------------------------------------------------------------- */

static int sql_exec(sqlite3 *db, const char *sql)
{
  char *err = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
  if (rc != SQLITE_OK) {
    fprintf(stderr, "cairn-bench: sqlite '%s': %s\n", sql,
            err ? err : sqlite3_errstr(rc));
    sqlite3_free(err);
    return -1;
  }
  return 0;
}

/* One connection per thread, as an application with a pool would have. */
static int sql_connect(const char *path, sqlite3 **out, sqlite3_stmt **st)
{
  sqlite3 *db = NULL;
  int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE |
                           SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    fprintf(stderr, "cairn-bench: sqlite open: %s\n", sqlite3_errstr(rc));
    sqlite3_close(db);
    return -1;
  }
  sqlite3_busy_timeout(db, SQLITE_BUSY_MS);
  if (sql_exec(db, "PRAGMA journal_mode=WAL") != 0 ||
      sql_exec(db, "PRAGMA synchronous=FULL") != 0 ||
      sql_exec(db, "CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, "
               "v BLOB)") != 0)
    goto fail;
  if (st != NULL &&
      sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)",
                         -1, st, NULL) != SQLITE_OK) {
    fprintf(stderr, "cairn-bench: sqlite prepare: %s\n", sqlite3_errmsg(db));
    goto fail;
  }
  *out = db;
  return 0;
fail:
  sqlite3_close(db);
  return -1;
}

/* Step one autocommit INSERT; a busy database is retried, boundedly. */
static int sql_put(sqlite3_stmt *st, const char *key, const char *val)
{
  int rc = SQLITE_BUSY;
  sqlite3_bind_blob(st, 1, key, KEY_BYTES, SQLITE_STATIC);
  sqlite3_bind_blob(st, 2, val, VAL_BYTES, SQLITE_STATIC);
  for (unsigned tries = 0; tries < 100; tries++) {
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if ((rc & 0xff) != SQLITE_BUSY)
      break;
  }
  return rc == SQLITE_DONE ? 0 : rc;
}

static void work_sqlite_put(struct run *r, struct worker *w)
{
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  char key[KEY_BYTES], val[VAL_BYTES];
  int ok = sql_connect(r->sqlite_path, &db, &st) == 0;

  pthread_barrier_wait(&r->bar);
  if (!ok) {
    worker_fail(w, "sqlite", "connection set-up failed");
    return;
  }
  while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
    uint64_t i = bench_rand(&w->seed, set.n);
    bench_key(i, key);
    make_val(i, val);
    int rc = sql_put(st, key, val);
    if (rc != 0) {
      worker_fail(w, "sqlite INSERT", sqlite3_errstr(rc));
      break;
    }
    w->ops++;
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
}

static int fig_put_sqlite(void)
{
  char dir[4200], path[4300];
  struct run r = { .fn = work_sqlite_put, .sqlite_path = path };
  sqlite3 *db;
  double p = -1;
  int rc = 0;

  if (cairn_durable_rate < 0) {
    double c;
    if (cairn_durable_rate_measure("cairn-durable", &c) == 0)
      cairn_durable_rate = c;
    else
      rc = -1;
  }
  if (bench_subdir("sqlite", dir, sizeof dir) != 0)
    return -1;
  snprintf(path, sizeof path, "%s/kv.db", dir);
  /* Create the table and switch to WAL once, before the writers race. */
  if (sql_connect(path, &db, NULL) != 0)
    return -1;
  if (run_timed(&r, set.threads, set.seconds, &p) != 0) {
    p = -1;
    rc = -1;
  }
  sqlite3_close(db);
  bench_rmrf(dir);
  print_pair("SQLite", cairn_durable_rate, p);
  bench_row("put durable, 8 thr vs SQLite", "ops/s", cairn_durable_rate, p,
          GOAL_RATIO_GE, 5);
  return rc;
}

/* ------------------------------------------------------------------------
 * Figures 5 and 6: memory-only puts, then random gets on the same data
 * --------------------------------------------------------------------- */

/* Both engines loaded with set.n keys, shared by figures 5 and 6. */
static struct loaded {
  cairn *db;
  struct lm lm;
  bool cairn_ok, lmdb_ok;
  char cairn_dir[4200], lmdb_dir[4200];
} ld;

static int load_cairn(double *rate)
{
  char key[KEY_BYTES], val[VAL_BYTES];
  if (bench_subdir("cairn-mem", ld.cairn_dir, sizeof ld.cairn_dir) != 0 ||
      cn_open(ld.cairn_dir, CAIRN_DURABILITY_MEMORY, &ld.db) != 0)
    return -1;
  uint64_t t0 = bench_now_ns();
  for (uint64_t i = 0; i < set.n; i++) {
    bench_key(i, key);
    make_val(i, val);
    int rc = cairn_put(ld.db, NULL, key, KEY_BYTES, val, VAL_BYTES, NULL);
    if (rc != 0) {
      fprintf(stderr, "cairn-bench: cairn_put #%" PRIu64 ": %s\n", i,
              cairn_strerror(rc));
      return -1;
    }
  }
  *rate = (double)set.n / bench_secs_since(t0);
  ld.cairn_ok = true;
  return 0;
}

static int load_lmdb(double *rate)
{
  char key[KEY_BYTES], val[VAL_BYTES];
  MDB_txn *txn;
  int rc;

  if (bench_subdir("lmdb-mem", ld.lmdb_dir, sizeof ld.lmdb_dir) != 0 ||
      lm_open(ld.lmdb_dir, MDB_NOSYNC, &ld.lm) != 0)
    return -1;
  uint64_t t0 = bench_now_ns();
  if ((rc = mdb_txn_begin(ld.lm.env, NULL, 0, &txn)) != 0)
    return bench_lm_fail("mdb_txn_begin", rc);
  for (uint64_t i = 0; i < set.n; i++) {
    MDB_val k = { KEY_BYTES, key }, v = { VAL_BYTES, val };
    bench_key(i, key);
    make_val(i, val);
    if ((rc = mdb_put(txn, ld.lm.dbi, &k, &v, 0)) != 0) {
      mdb_txn_abort(txn);
      return bench_lm_fail("mdb_put", rc);
    }
  }
  if ((rc = mdb_txn_commit(txn)) != 0)
    return bench_lm_fail("mdb_txn_commit", rc);
  *rate = (double)set.n / bench_secs_since(t0);
  ld.lmdb_ok = true;
  return 0;
}

static void unload(void)
{
  if (ld.db != NULL) {
    cairn_close(ld.db);
    bench_rmrf(ld.cairn_dir);
  }
  if (ld.lm.env != NULL) {
    mdb_env_close(ld.lm.env);
    bench_rmrf(ld.lmdb_dir);
  }
  memset(&ld, 0, sizeof ld);
}

static int fig_put_memory(void)
{
  double c = -1, p = -1;
  int rc = 0;
  if (load_cairn(&c) != 0) {
    c = -1;
    rc = -1;
  }
  if (load_lmdb(&p) != 0) {
    p = -1;
    rc = -1;
  }
  print_pair("LMDB (one MDB_NOSYNC txn)", c, p);
  bench_row("put memory, 1 thr vs LMDB", "ops/s", c, p, GOAL_RATIO_GE, 2);
  return rc;
}

static void work_cairn_get(struct run *r, struct worker *w)
{
  char key[KEY_BYTES];
  pthread_barrier_wait(&r->bar);
  while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
    cairn_value v;
    bench_key(bench_rand(&w->seed, set.n), key);
    int rc = cairn_get(r->db, NULL, key, KEY_BYTES, &v);
    if (rc != 0) {
      worker_fail(w, "cairn_get", cairn_strerror(rc));
      return;
    }
    w->sink += ((unsigned char *)v.data)[v.len - 1];
    cairn_value_free(&v);
    w->ops++;
  }
}

static void work_lmdb_get(struct run *r, struct worker *w)
{
  char key[KEY_BYTES];
  MDB_txn *txn = NULL;
  int rc = mdb_txn_begin(r->lm.env, NULL, MDB_RDONLY, &txn);

  pthread_barrier_wait(&r->bar);
  if (rc != 0) {
    worker_fail(w, "mdb_txn_begin", mdb_strerror(rc));
    return;
  }
  while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
    MDB_val k = { KEY_BYTES, key }, v;
    bench_key(bench_rand(&w->seed, set.n), key);
    if ((rc = mdb_get(txn, r->lm.dbi, &k, &v)) != 0) {
      worker_fail(w, "mdb_get", mdb_strerror(rc));
      break;
    }
    w->sink += ((unsigned char *)v.mv_data)[v.mv_size - 1];
    if (++w->ops % LMDB_RENEW_OPS == 0) {
      mdb_txn_reset(txn);
      if ((rc = mdb_txn_renew(txn)) != 0) {
        worker_fail(w, "mdb_txn_renew", mdb_strerror(rc));
        break;
      }
    }
  }
  mdb_txn_abort(txn);
}

/* One round of a read figure on one engine; *best keeps the highest rate
 * seen, since noise on a shared machine only ever slows a round down. */
static int get_round(struct run *r, bool ok, unsigned nthreads, double *best)
{
  double rate;
  if (!ok || *best == -2)
    return -1;
  if (run_timed(r, nthreads, set.read_seconds / GET_ROUNDS, &rate) != 0) {
    *best = -2;   /* failed: stays failed */
    return -1;
  }
  if (rate > *best)
    *best = rate;
  return 0;
}

/* The engines take turns, GET_ROUNDS each, so that a noisy spell hurts
 * both rather than one. */
static int get_row(unsigned nthreads)
{
  double c = -1, p = -1;
  int rc = 0;
  struct run rc_run = { .fn = work_cairn_get, .db = ld.db };
  struct run rl_run = { .fn = work_lmdb_get, .lm = ld.lm };

  for (unsigned round = 0; round < GET_ROUNDS; round++) {
    rc |= get_round(&rc_run, ld.cairn_ok, nthreads, &c);
    rc |= get_round(&rl_run, ld.lmdb_ok, nthreads, &p);
  }
  c = c < 0 ? -1 : c;
  p = p < 0 ? -1 : p;
  print_pair_as(nthreads == 1 ? "1 thread: " : "2 threads: ", "LMDB", c, p);
  bench_row(nthreads == 1 ? "get random, 1 thr vs LMDB" :
          "get random, 2 thr vs LMDB", "ops/s", c, p, GOAL_RATIO_GE, 3);
  return rc;
}

static int fig_get(void)
{
  if (!ld.cairn_ok && !ld.lmdb_ok) {
    double ignored;
    if (ld.db == NULL && load_cairn(&ignored) != 0)
      fprintf(stderr, "cairn-bench: loading cairn failed\n");
    if (ld.lm.env == NULL && load_lmdb(&ignored) != 0)
      fprintf(stderr, "cairn-bench: loading LMDB failed\n");
  }
  int rc1 = get_row(1);
  int rc2 = get_row(2);
  return rc1 != 0 || rc2 != 0 ? -1 : 0;
}

/* ------------------------------------------------------------------------
 * Figure 7: recovery speed
 * --------------------------------------------------------------------- */

struct window {
  sem_t sem;
  atomic_int err;
};

static void on_window_done(void *arg, int rc, uint64_t lsn)
{
  struct window *win = arg;
  (void)lsn;
  if (rc != 0)
    atomic_store(&win->err, rc);
  sem_post(&win->sem);
}

/* Write set.n records, keeping RECOVERY_WINDOW in flight so that loading
 * does not wait for one log write per record. */
static int recovery_fill(cairn *db)
{
  struct window win = { .err = 0 };
  cairn_write wr = { .done = on_window_done, .done_arg = &win };
  char key[KEY_BYTES], val[VAL_BYTES];
  int rc = 0;

  sem_init(&win.sem, 0, RECOVERY_WINDOW);
  for (uint64_t i = 0; i < set.n && rc == 0; i++) {
    if (bench_sem_wait(&win.sem) != 0) {
      fprintf(stderr, "cairn-bench: async put: no completion\n");
      return -1;   /* the semaphore may still be posted: leak it */
    }
    bench_key(i, key);
    make_val(i, val);
    rc = cairn_put(db, NULL, key, KEY_BYTES, val, VAL_BYTES, &wr);
    if (rc != 0) {
      sem_post(&win.sem);
      fprintf(stderr, "cairn-bench: cairn_put: %s\n", cairn_strerror(rc));
    }
  }
  for (unsigned k = 0; k < RECOVERY_WINDOW; k++) {
    if (bench_sem_wait(&win.sem) != 0) {
      fprintf(stderr, "cairn-bench: async put: completion lost\n");
      return -1;
    }
  }
  sem_destroy(&win.sem);
  if (rc == 0 && atomic_load(&win.err) != 0) {
    fprintf(stderr, "cairn-bench: async completion: %s\n",
            cairn_strerror(atomic_load(&win.err)));
    rc = -1;
  }
  return rc == 0 ? 0 : -1;
}

/* Time one cairn_open of dir; *records is what it replayed. */
static int recovery_open(const char *dir, double *secs, uint64_t *records)
{
  cairn *db;
  struct cairn_stats st;
  uint64_t t0 = bench_now_ns();
  if (cn_open(dir, CAIRN_DURABILITY_INTERVAL, &db) != 0)
    return -1;
  *secs = bench_secs_since(t0);
  int rc = cairn_stats(db, &st);
  if (rc == 0) {
    *records = st.recovered_records;
    printf("  open took %.3f s: %" PRIu64 " records replayed, %" PRIu64
           " entries, %" PRIu64 " tail bytes truncated\n", *secs,
           st.recovered_records, st.entries, st.truncated_bytes);
  }
  cairn_close(db);
  return rc == 0 ? 0 : -1;
}

static int fig_recovery(void)
{
  char dir[4200];
  cairn *db;
  struct cairn_stats st;
  double secs = 0;
  uint64_t records = 0;
  int rc = -1;

  if (bench_subdir("cairn-recovery", dir, sizeof dir) != 0)
    goto out;
  /* A clean close checkpoints, leaving nothing to replay: the writer is a
   * child that syncs the log and exits without closing, as a crash would
   * (the default checkpoint triggers do not fire within the fill). */
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0)
    goto out;
  if (pid == 0) {
    if (cn_open(dir, CAIRN_DURABILITY_INTERVAL, &db) != 0)
      _exit(1);
    uint64_t t0 = bench_now_ns();
    rc = recovery_fill(db);
    double fill = bench_secs_since(t0);
    if (rc == 0 && cairn_sync(db) == 0 && cairn_stats(db, &st) == 0)
      printf("  wrote %" PRIu64 " records in %.2f s (interval durability): "
             "%" PRIu64 " log bytes in %" PRIu64 " frames; exited without "
             "closing\n", set.n, fill, st.log_bytes, st.log_frames);
    fflush(stdout);
    _exit(rc == 0 ? 0 : 1);
  }
  int status;
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
      WEXITSTATUS(status) != 0)
    goto out;
  printf("  data directory: %" PRIu64 " bytes (%.1f per record)\n",
         bench_dir_bytes(dir, false), (double)bench_dir_bytes(dir, false) / (double)set.n);
  rc = recovery_open(dir, &secs, &records);
  if (rc == 0 && records < set.n)
    printf("  note: fewer records replayed than written; the rate counts "
           "replayed records only\n");
out:
  bench_rmrf(dir);
  bench_row("recovery (warm cache)", "rec/s",
          rc == 0 && secs > 0 ? (double)records / secs : -1, -1,
          GOAL_CAIRN_GE, 2e6);
  return rc;
}

/* ------------------------------------------------------------------------
 * Figure 8: memory per entry, measured in a child with a clean heap
 * --------------------------------------------------------------------- */

struct mem_report {
  int err;
  long rss_before, rss_after;     /* bytes */
  uint64_t memory_bytes, entries;
};

static long rss_bytes(void)
{
  long size = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f == NULL)
    return -1;
  if (fscanf(f, "%ld %ld", &size, &resident) != 2)
    resident = -1;
  fclose(f);
  return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE);
}

static void mem_child(const char *dir, int fd)
{
  struct mem_report rep = { .err = -1 };
  char key[KEY_BYTES], val[VAL_BYTES];
  cairn *db;
  struct cairn_stats st;

  if (cn_open(dir, CAIRN_DURABILITY_MEMORY, &db) == 0) {
    rep.rss_before = rss_bytes();
    rep.err = 0;
    for (uint64_t i = 0; i < set.n && rep.err == 0; i++) {
      bench_key(i, key);
      make_val(i, val);
      rep.err = cairn_put(db, NULL, key, KEY_BYTES, val, VAL_BYTES, NULL);
    }
    rep.rss_after = rss_bytes();
    if (rep.err == 0 && (rep.err = cairn_stats(db, &st)) == 0) {
      rep.memory_bytes = st.memory_bytes;
      rep.entries = st.entries;
    }
  }
  if (write(fd, &rep, sizeof rep) != (ssize_t)sizeof rep)
    _exit(EXIT_FAILURE);
  /* Skip cairn_close: the parent has what it needs, and exit frees all. */
  _exit(EXIT_SUCCESS);
}

/* The child is forked before any figure runs, while the heap is small and
 * no engine thread exists, and waits for its turn: a child forked later
 * would inherit pages the parent freed but kept, and could reuse them
 * without its RSS growing. */
static struct {
  pid_t pid;
  int go_fd, rep_fd;
  char dir[4200];
} kid = { .pid = -1, .go_fd = -1, .rep_fd = -1 };

static int mem_spawn(void)
{
  int go[2], rep[2];
  if (bench_subdir("cairn-memory", kid.dir, sizeof kid.dir) != 0 ||
      pipe(go) != 0)
    return -1;
  if (pipe(rep) != 0) {
    close(go[0]);
    close(go[1]);
    return -1;
  }
  fflush(NULL);
  kid.pid = fork();
  if (kid.pid == 0) {
    char c;
    close(go[1]);
    close(rep[0]);
    if (read(go[0], &c, 1) != 1)
      _exit(EXIT_SUCCESS);    /* the parent left without running us */
    mem_child(kid.dir, rep[1]);
  }
  close(go[0]);
  close(rep[1]);
  if (kid.pid < 0) {
    close(go[1]);
    close(rep[0]);
    return -1;
  }
  kid.go_fd = go[1];
  kid.rep_fd = rep[0];
  return 0;
}

/* Let the child go (or, with run false, tell it to leave) and reap it. */
static int mem_reap(bool run, struct mem_report *rep)
{
  ssize_t got = -1;
  int status;
  if (kid.pid <= 0)
    return -1;
  if (run && write(kid.go_fd, "g", 1) == 1)
    got = read(kid.rep_fd, rep, sizeof *rep);
  close(kid.go_fd);
  close(kid.rep_fd);
  waitpid(kid.pid, &status, 0);
  kid.pid = -1;
  return got == (ssize_t)sizeof *rep ? 0 : -1;
}

static int fig_memory(void)
{
  struct mem_report rep = { .err = -1 };
  double per = -1;
  int rc = -1;

  if (mem_reap(true, &rep) != 0 || rep.err != 0) {
    fprintf(stderr, "cairn-bench: memory child failed: %s\n",
            rep.err != -1 ? cairn_strerror(rep.err) : "no report");
    goto out;
  }
  per = (double)(rep.rss_after - rep.rss_before) / (double)set.n -
        (KEY_BYTES + VAL_BYTES);
  printf("  RSS %.1f MiB -> %.1f MiB for %" PRIu64 " entries: %.1f bytes "
         "per entry beyond its %u bytes of data\n",
         rep.rss_before / 1048576.0, rep.rss_after / 1048576.0, rep.entries,
         per, KEY_BYTES + VAL_BYTES);
  printf("  cairn_stats.memory_bytes / n = %.1f bytes per entry\n",
         (double)rep.memory_bytes / (double)set.n);
  rc = 0;
out:
  bench_rmrf(kid.dir);
  bench_row("memory overhead per entry", "bytes", rc == 0 ? per : -1, -1,
          GOAL_CAIRN_LE, 40);
  return rc;
}

/* ------------------------------------------------------------------------
 * Summary
 * --------------------------------------------------------------------- */

/* ------------------------------------------------------------------------
 * Command line
 * --------------------------------------------------------------------- */

static void usage(FILE *f)
{
  fprintf(f,
    "usage: cairn-bench [options]\n"
    "  -n, --keys N           key space (default 1000000; k/M suffixes)\n"
    "  -s, --seconds S        length of each durable figure (default 4)\n"
    "  -r, --read-seconds S   length of each read figure (default 3)\n"
    "  -p, --probe-seconds S  length of the fsync probe (default 2)\n"
    "  -t, --threads T        writer threads, figures 2 and 4 (default 8)\n"
    "  -i, --inflight K       async writes in flight, figure 3 (default 64)\n"
    "  -S, --submitters M     threads submitting them (default 2)\n"
    "  -d, --dir D            make the data directory under D (default .)\n"
    "  -o, --only F[,F...]    run only these figures: fsync put-durable\n"
    "                         put-inflight put-sqlite put-memory get\n"
    "                         recovery memory (or their numbers 1-8)\n"
    "  -U, --no-uring         open cairn with CAIRN_OPEN_NO_URING\n"
    "  -k, --keep             keep the data directory\n"
    "  -h, --help             this text\n"
    "  -V, --version          the version\n");
}

static int parse_only(const char *arg)
{
  char buf[256];
  if (strlen(arg) >= sizeof buf)
    return -1;
  strcpy(buf, arg);
  for (char *save, *tok = strtok_r(buf, ",", &save); tok != NULL;
       tok = strtok_r(NULL, ",", &save)) {
    int hit = -1;
    for (int f = 0; f < FIG_COUNT; f++) {
      if (strcmp(tok, fig_names[f]) == 0 ||
          (tok[0] == '1' + f && tok[1] == '\0'))
        hit = f;
    }
    if (hit < 0) {
      fprintf(stderr, "cairn-bench: unknown figure '%s'\n", tok);
      return -1;
    }
    set.only[hit] = true;
  }
  return 0;
}

static int parse_count(const char *s, unsigned max, unsigned *out)
{
  uint64_t v;
  if (bench_parse_u64(s, &v) != 0 || v > max)
    return -1;
  *out = (unsigned)v;
  return 0;
}

static int parse_args(int argc, char **argv)
{
  static const struct option longs[] = {
    { "keys", 1, NULL, 'n' }, { "seconds", 1, NULL, 's' },
    { "read-seconds", 1, NULL, 'r' }, { "probe-seconds", 1, NULL, 'p' },
    { "threads", 1, NULL, 't' }, { "inflight", 1, NULL, 'i' },
    { "submitters", 1, NULL, 'S' }, { "dir", 1, NULL, 'd' },
    { "only", 1, NULL, 'o' }, { "no-uring", 0, NULL, 'U' },
    { "keep", 0, NULL, 'k' }, { "help", 0, NULL, 'h' },
    { "version", 0, NULL, 'V' }, { NULL, 0, NULL, 0 },
  };
  bool any_only = false;
  int c, bad = 0;

  while ((c = getopt_long(argc, argv, "n:s:r:p:t:i:S:d:o:UkhV", longs,
                          NULL)) != -1) {
    switch (c) {
    case 'n': bad |= bench_parse_u64(optarg, &set.n); break;
    case 's': bad |= bench_parse_secs(optarg, &set.seconds); break;
    case 'r': bad |= bench_parse_secs(optarg, &set.read_seconds); break;
    case 'p': bad |= bench_parse_secs(optarg, &set.probe_seconds); break;
    case 't': bad |= parse_count(optarg, THREADS_MAX, &set.threads); break;
    case 'i': bad |= parse_count(optarg, INFLIGHT_MAX, &set.inflight); break;
    case 'S': bad |= parse_count(optarg, THREADS_MAX, &set.submitters);
      break;
    case 'd': set.parent = optarg; break;
    case 'o': bad |= parse_only(optarg); any_only = true; break;
    case 'U': set.no_uring = true; break;
    case 'k': set.keep = true; break;
    case 'h': usage(stdout); exit(EXIT_SUCCESS);
    case 'V': printf("cairn-bench %s\n", CAIRN_VERSION_STRING);
      exit(EXIT_SUCCESS);
    default: bad = 1; break;
    }
  }
  if (bad || optind != argc) {
    fprintf(stderr, "cairn-bench: bad arguments\n");
    usage(stderr);
    return -1;
  }
  if (!any_only)
    for (int f = 0; f < FIG_COUNT; f++)
      set.only[f] = true;
  return 0;
}

/* ------------------------------------------------------------------------
 * Main
 * --------------------------------------------------------------------- */

static int make_data_dir(void)
{
  struct statfs sf;
  int len = snprintf(bench_dir, sizeof bench_dir, "%s/cairn-bench.XXXXXX",
                     set.parent);
  if (len < 0 || (size_t)len >= sizeof bench_dir - 256)
    return -1;
  if (mkdtemp(bench_dir) == NULL) {
    fprintf(stderr, "cairn-bench: mkdtemp %s: %s\n", bench_dir,
            strerror(errno));
    return -1;
  }
  if (statfs(bench_dir, &sf) == 0 &&
      (sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC))
    fprintf(stderr, "cairn-bench: WARNING: %s is on tmpfs/ramfs, where "
            "fdatasync is free; durable figures mean nothing there\n",
            bench_dir);
  return 0;
}

typedef int (*fig_fn)(void);

static const fig_fn figs[FIG_COUNT] = {
  fig_fsync, fig_put_durable, fig_put_inflight, fig_put_sqlite,
  fig_put_memory, fig_get, fig_recovery, fig_memory,
};

static const char *const fig_titles[FIG_COUNT] = {
  "fsync probe: raw fdatasync latency on the data disk",
  "durable put, writer threads: cairn (FSYNC) vs LMDB (txn per put)",
  "durable put, many in flight: cairn async API vs LMDB per-commit",
  "durable put, writer threads: cairn (FSYNC) vs SQLite (WAL, FULL)",
  "memory-only put, 1 thread: cairn (MEMORY) vs LMDB (one NOSYNC txn)",
  "get, random keys: cairn_get vs mdb_get",
  "recovery: replay speed of cairn_open",
  "memory: resident bytes per entry beyond key and value",
};

int main(int argc, char **argv)
{
  int failures = 0;

  bench_prog = "cairn-bench";

  if (parse_args(argc, argv) != 0)
    return EXIT_FAILURE;
  if (make_data_dir() != 0)
    return EXIT_FAILURE;
  if (set.only[FIG_MEMORY] && mem_spawn() != 0)
    fprintf(stderr, "cairn-bench: cannot fork the memory child\n");
  printf("cairn-bench %s: n=%" PRIu64 ", %u threads, %u in flight, "
         "%.1f s per durable figure, data in %s\n", CAIRN_VERSION_STRING,
         set.n, set.threads, set.inflight, set.seconds, bench_dir);
  for (int f = 0; f < FIG_COUNT; f++) {
    if (!set.only[f])
      continue;
    /* Figures 5 and 6 share loaded engines; free them once done. */
    if (f == FIG_RECOVERY)
      unload();
    printf("\n[%d] %s\n", f + 1, fig_titles[f]);
    fflush(stdout);
    unsigned first_row = bench_rows();
    if (figs[f]() != 0) {
      failures++;
      bench_rows_failed_from(first_row);
      printf("  (figure %s had errors; see stderr)\n", fig_names[f]);
    }
    fflush(stdout);
  }
  unload();
  if (kid.pid > 0)
    mem_reap(false, NULL);
  bench_print_rows();
  printf("\nratios are only comparable within one run: the machine is "
         "shared and noisy\n");
  if (!set.keep)
    bench_rmrf(bench_dir);
  else
    printf("data kept in %s\n", bench_dir);
  return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
