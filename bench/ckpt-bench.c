/*
 * ckpt-bench.c - cairn with more data than memory, against LMDB.
 *
 * cairn keeps at most max_memory bytes of entries in memory and the rest in
 * its checkpoint store (LMDB).  This program loads n entries (default 10M)
 * into cairn with max_memory a quarter of the data's key+value bytes, and
 * the same keys into a plain LMDB, then measures, in one run:
 *
 *   1. get-uniform   random gets of uniformly chosen keys (1 and 2 threads)
 *   2. get-zipf      random gets of zipfian keys (theta 0.99)
 *   3. interference  put latency (FSYNC) while no checkpoint runs, and while
 *                    one runs
 *
 * It also has helper modes for bench/restart.sh:
 *
 *   --fill DIR       load n entries into DIR, checkpoint, then write about
 *                    --tail-mb MB of log after it and exit without closing,
 *                    so the log keeps that tail
 *   --open-only DIR  time cairn_open of DIR, print it, exit without closing
 *   --resp           print n SET commands (same keys and values) in RESP,
 *                    for redis-cli --pipe
 *   --trees DIR      in a directory kept with -k, time mdb_get alone on
 *                    cairn's store and on the peer's LMDB, each with its
 *                    own keys: how much of a get figure is the tree's shape
 *   --cache DIR      in a directory kept with -k, reopen cairn cold and
 *                    read it for --warm-max seconds a figure, printing each
 *                    round's gets, hit ratio and evictions: how its memory
 *                    settles over a read longer than a figure's warm-up
 *
 * Only ratios taken within one run mean anything: the machine is shared
 * and noisy.  bench/README describes the figures and their goals.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <math.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "benchutil.h"
#include "cairn.h"

#define KEY_BYTES        BENCH_KEY_BYTES
#define VAL_BYTES        100u
#define THREADS_MAX      64u
#define LOAD_WINDOW      4096u      /* async puts in flight while loading */
#define LMDB_BATCH       100000u    /* puts per LMDB load transaction */
#define LMDB_MAP_INITIAL (64ull << 20) /* as cairn's store: then doubling */
#define LMDB_RENEW_OPS   1000u      /* reads per LMDB read transaction */
#define GET_ROUNDS       3u         /* alternating turns per engine */
#define ZIPF_THETA       0.99
#define ZIPF_PROBE       (1u << 20) /* samples to show the skew */
#define WARM_SLICE_S     2.0        /* cairn's warm-up goes in slices */
#define WARM_FULL_PCT    95u        /* memory this full has settled */
#define WARM_FLAT_PCT    1u         /* or memory growing less a slice */
#define WARM_HIT_RISE    0.005      /* and the hit ratio rising less */
#define LAT_MAX          (1u << 20) /* latency samples per put thread */
#define DRAIN_TIMEOUT_S  60         /* a completion later than this is lost */
#define LIST_MAX         8u         /* thread counts in a -g / -T list */
#define TREE_SAMPLE      (1u << 21) /* --trees: keys looked up, at most */
#define TREE_ROUNDS      3u         /* --trees: alternating turns, best kept */

/* ------------------------------------------------------------------------
 * Settings and results
 * --------------------------------------------------------------------- */

enum fig { FIG_GET_UNIFORM, FIG_GET_ZIPF, FIG_INTERFERENCE, FIG_COUNT };

static const char *const fig_names[FIG_COUNT] = {
  "get-uniform", "get-zipf", "interference",
};

struct list {
  unsigned n;
  unsigned v[LIST_MAX];
};

static struct settings {
  uint64_t n;             /* entries */
  double read_seconds;    /* measured length of each get row */
  double warm_seconds;    /* warm-up of each get figure: at least */
  double warm_max;        /*   and at most, for cairn's memory to settle */
  double idle_seconds;    /* idle phase of the interference figure */
  uint64_t updates;       /* updates written before the timed checkpoint */
  uint64_t tail_mb;       /* --fill: log written after the checkpoint */
  struct list get_threads, put_threads;
  const char *parent;
  bool only[FIG_COUNT];
  bool keep;
  bool lmdb_unsorted;     /* load LMDB in random order, not sorted */
} set = {
  .n = 10000000, .read_seconds = 6, .warm_seconds = 4, .warm_max = 90,
  .idle_seconds = 3,
  .tail_mb = 100, .parent = ".",
  .get_threads = { 2, { 1, 2 } }, .put_threads = { 3, { 1, 2, 4 } },
};

/* ------------------------------------------------------------------------
 * Values (keys and the rest: benchutil.c, shared with cairn-bench)
 * --------------------------------------------------------------------- */

/* Random base64 text drawn from the index (LZ4 cannot shrink it), stamped
 * with the index; gen changes the text, so updates write new bytes. */
static void make_val_gen(uint64_t idx, uint64_t gen, char val[VAL_BYTES])
{
  static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  /* A counter through bench_mix64, so every 60 bits are fresh: values LZ4
   * cannot shrink (mixing what was left of the last word kept 4 bits of
   * state, and values repeated). */
  uint64_t seed = idx ^ 0x5eed5eed5eedull ^ (gen * 0x9e3779b97f4a7c15ull);
  uint64_t m = 0;
  for (unsigned i = 8; i < VAL_BYTES; i++) {
    if ((i - 8) % 10 == 0)
      m = bench_mix64(seed += 0x9e3779b97f4a7c15ull);
    val[i] = b64[m & 63];
    m >>= 6;
  }
  memcpy(val, &idx, sizeof idx);
}

static void make_val(uint64_t idx, char val[VAL_BYTES])
{
  make_val_gen(idx, 0, val);
}

static double rand_unit(uint64_t *s)
{
  return (double)(bench_rand(s, 1ull << 53)) / (double)(1ull << 53);
}

/* The data's key+value bytes; the memory budget is a quarter of it. */
static uint64_t budget_bytes(void)
{
  return set.n * (KEY_BYTES + VAL_BYTES) / 4;
}

/* ------------------------------------------------------------------------
 * cairn: opening and loading
 * --------------------------------------------------------------------- */

/* Open dir with the budget; no_auto_ckpt leaves checkpoints to explicit
 * calls (and to memory pressure), so that a figure controls when one runs. */
static int cn_open(const char *dir, uint64_t max_memory, bool no_auto_ckpt,
                   cairn **out)
{
  cairn_options opt;
  cairn_options_init(&opt);
  opt.durability = CAIRN_DURABILITY_FSYNC;
  opt.max_memory = max_memory;
  opt.log_fn = bench_cairn_log;
  opt.log_level = CAIRN_LOG_WARN;
  if (no_auto_ckpt) {
    opt.checkpoint_bytes = 1ull << 42;
    opt.checkpoint_interval_ms = UINT32_MAX;
  }
  int rc = cairn_open(dir, &opt, out);
  if (rc != 0)
    fprintf(stderr, "ckpt-bench: cairn_open %s: %s\n", dir,
            cairn_strerror(rc));
  return rc;
}

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

/* Write count records with INTERVAL durability, LOAD_WINDOW in flight: the
 * indices first, first+1, ... (mod n) when seq, else random ones.  gen
 * picks the values' text.  Stops early once the log has grown by
 * stop_log_bytes, if that is not 0. */
static int cn_write(cairn *db, uint64_t first, uint64_t count, bool seq,
                    uint64_t gen, uint64_t stop_log_bytes)
{
  struct window win = { .err = 0 };
  cairn_write wr = { .durability = CAIRN_DURABILITY_INTERVAL,
                     .done = on_window_done, .done_arg = &win };
  char key[KEY_BYTES], val[VAL_BYTES];
  uint64_t seed = bench_mix64(first ^ gen) | 1, log0 = 0;
  struct cairn_stats st;
  int rc = 0;

  if (stop_log_bytes && cairn_stats(db, &st) == 0)
    log0 = st.log_bytes;
  sem_init(&win.sem, 0, LOAD_WINDOW);
  for (uint64_t i = 0; i < count && rc == 0; i++) {
    if (bench_sem_wait(&win.sem) != 0) {
      fprintf(stderr, "ckpt-bench: async put: no completion\n");
      return -1;   /* the semaphore may still be posted: leak it */
    }
    uint64_t idx = seq ? (first + i) % set.n : bench_rand(&seed, set.n);
    bench_key(idx, key);
    make_val_gen(idx, gen, val);
    cairn_write_wait(db); /* memory first, as a synchronous put would */
    rc = cairn_put(db, NULL, key, KEY_BYTES, val, VAL_BYTES, &wr);
    if (rc != 0) {
      sem_post(&win.sem);
      fprintf(stderr, "ckpt-bench: cairn_put: %s\n", cairn_strerror(rc));
    }
    if (stop_log_bytes && (i & 4095) == 4095 && cairn_stats(db, &st) == 0 &&
        st.log_bytes - log0 >= stop_log_bytes)
      break;
  }
  for (unsigned k = 0; k < LOAD_WINDOW; k++) {
    if (bench_sem_wait(&win.sem) != 0) {
      fprintf(stderr, "ckpt-bench: async put: completion lost\n");
      return -1;
    }
  }
  sem_destroy(&win.sem);
  if (rc == 0 && atomic_load(&win.err) != 0) {
    fprintf(stderr, "ckpt-bench: async completion: %s\n",
            cairn_strerror(atomic_load(&win.err)));
    rc = -1;
  }
  return rc == 0 ? 0 : -1;
}

static void print_cn_stats(const char *when, cairn *db)
{
  struct cairn_stats st;
  if (cairn_stats(db, &st) != 0)
    return;
  printf("  cairn %s: %" PRIu64 " entries, memory %.1f MiB of %.1f MiB "
         "(process: %.1f MiB anonymous resident), %" PRIu64 " in the store, "
         "%" PRIu64 " checkpoints (last %" PRIu64 " ms), %" PRIu64
         " evictions\n", when, st.entries, st.memory_bytes / 1048576.0,
         st.max_memory / 1048576.0, bench_rss_anon() / 1048576.0,
         st.disk_entries, st.checkpoints, st.checkpoint_ms, st.evictions);
}

/* Load set.n entries into dir, checkpoint, close. */
static int cn_load(const char *dir)
{
  cairn *db;
  if (cn_open(dir, budget_bytes(), false, &db) != 0)
    return -1;
  uint64_t t0 = bench_now_ns();
  int rc = cn_write(db, 0, set.n, true, 0, 0);
  double put_s = bench_secs_since(t0);
  uint64_t t1 = bench_now_ns();
  /* Set-up, nobody else writing: flat out.  The interference phase uses
   * the paced cairn_checkpoint, as a background checkpoint is. */
  if (rc == 0 && (rc = cairn_checkpoint_now(db)) != 0)
    fprintf(stderr, "ckpt-bench: cairn_checkpoint_now: %s\n",
            cairn_strerror(rc));
  double ck_s = bench_secs_since(t1);
  if (rc == 0) {
    printf("  cairn: %" PRIu64 " puts (interval durability) in %.1f s, "
           "final checkpoint %.1f s\n", set.n, put_s, ck_s);
    print_cn_stats("after load", db);
  }
  t1 = bench_now_ns();
  cairn_close(db);
  printf("  cairn: close %.2f s; data directory %.0f MiB\n", bench_secs_since(t1),
         bench_dir_bytes(dir, true) / 1048576.0);
  return rc == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------------
 * LMDB: opening and loading, with cairn's map policy (64 MiB, doubling)
 * --------------------------------------------------------------------- */

struct lm {
  MDB_env *env;
  MDB_dbi dbi;
  size_t map;
};

static int lm_open(const char *dir, unsigned flags, struct lm *lm)
{
  MDB_txn *txn;
  MDB_envinfo ei;
  int rc;

  if ((rc = mdb_env_create(&lm->env)) != 0)
    return bench_lm_fail("mdb_env_create", rc);
  if ((rc = mdb_env_set_mapsize(lm->env, LMDB_MAP_INITIAL)) != 0 ||
      (rc = mdb_env_open(lm->env, dir, flags | MDB_NORDAHEAD, 0644)) != 0 ||
      (rc = mdb_txn_begin(lm->env, NULL, 0, &txn)) != 0) {
    mdb_env_close(lm->env);
    lm->env = NULL;
    return bench_lm_fail("mdb_env_open", rc);
  }
  if ((rc = mdb_dbi_open(txn, NULL, 0, &lm->dbi)) != 0 ||
      (rc = mdb_txn_commit(txn)) != 0) {
    mdb_env_close(lm->env);
    lm->env = NULL;
    return bench_lm_fail("mdb_dbi_open", rc);
  }
  mdb_env_info(lm->env, &ei);
  lm->map = ei.me_mapsize;
  return 0;
}

struct skey {
  char key[KEY_BYTES];
  uint64_t idx;
};

static int cmp_skey(const void *a, const void *b)
{
  return memcmp(a, b, KEY_BYTES);
}

/* Put keys[from, to) in one transaction; MDB_MAP_FULL comes back as is,
 * so the caller can grow the map and retry the whole batch. */
static int lm_put_batch(struct lm *lm, const struct skey *keys, uint64_t from,
                        uint64_t to)
{
  char val[VAL_BYTES];
  MDB_txn *txn;
  int rc = mdb_txn_begin(lm->env, NULL, 0, &txn);
  for (uint64_t i = from; rc == 0 && i < to; i++) {
    MDB_val k = { KEY_BYTES, (void *)keys[i].key }, v = { VAL_BYTES, val };
    make_val(keys[i].idx, val);
    rc = mdb_put(txn, lm->dbi, &k, &v, set.lmdb_unsorted ? 0 : MDB_APPEND);
  }
  if (rc != 0) {
    mdb_txn_abort(txn);
    return rc;
  }
  return mdb_txn_commit(txn);
}

/* Load set.n entries in key order (MDB_APPEND, MDB_NOSYNC), or in random
 * order with --lmdb-unsorted, LMDB_BATCH per transaction, doubling the map
 * on MDB_MAP_FULL as cairn's store does. */
static int lm_load(struct lm *lm)
{
  struct skey *keys = malloc(set.n * sizeof *keys);
  uint64_t t0 = bench_now_ns();
  int rc = 0;

  if (keys == NULL)
    return -1;
  for (uint64_t i = 0; i < set.n; i++) {
    bench_key(i, keys[i].key);
    keys[i].idx = i;
  }
  if (!set.lmdb_unsorted)
    qsort(keys, set.n, sizeof *keys, cmp_skey);
  for (uint64_t from = 0; from < set.n && rc == 0;) {
    uint64_t to = from + LMDB_BATCH < set.n ? from + LMDB_BATCH : set.n;
    rc = lm_put_batch(lm, keys, from, to);
    if (rc == MDB_MAP_FULL) {
      lm->map *= 2;
      rc = mdb_env_set_mapsize(lm->env, lm->map);
      continue;
    }
    from = to;
  }
  free(keys);
  if (rc != 0)
    return bench_lm_fail("LMDB load", rc);
  if ((rc = mdb_env_sync(lm->env, 1)) != 0)
    return bench_lm_fail("mdb_env_sync", rc);
  printf("  LMDB: %" PRIu64 " puts (%s, %u per NOSYNC txn) in %.1f s; "
         "map %.0f MiB\n", set.n,
         set.lmdb_unsorted ? "random order" : "sorted, MDB_APPEND",
         LMDB_BATCH, bench_secs_since(t0), lm->map / 1048576.0);
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
  struct lm *lm;
  const struct zipf *zipf;  /* NULL: uniform keys */
  atomic_int stop;
  pthread_barrier_t bar;
};

struct worker {
  pthread_t tid;
  struct run *run;
  unsigned id;
  uint64_t seed;
  uint64_t ops;
  uint64_t sink;            /* read bytes go here so reads are not elided */
  int err;
  char msg[160];
  /* put latency: start time and latency of each put, in ns */
  uint64_t *lat_start, *lat_ns;
  size_t lat_n;
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

/* Start nthreads workers; they do their set-up and meet at the barrier. */
static struct worker *start_workers(struct run *r, unsigned nthreads)
{
  struct worker *ws = calloc(nthreads, sizeof *ws);
  if (ws == NULL)
    return NULL;
  atomic_store(&r->stop, 0);
  pthread_barrier_init(&r->bar, NULL, nthreads + 1);
  for (unsigned i = 0; i < nthreads; i++) {
    ws[i].run = r;
    ws[i].id = i;
    ws[i].seed = bench_mix64(i * 1000003u + 17 + bench_now_ns()) | 1;
    if (pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]) != 0) {
      /* The barrier counts on every thread; without them, give up. */
      fprintf(stderr, "ckpt-bench: pthread_create failed\n");
      exit(EXIT_FAILURE);
    }
  }
  pthread_barrier_wait(&r->bar);
  return ws;
}

/* Stop and join the workers; *ops gets the sum.  -1 if any failed. */
static int stop_workers(struct run *r, struct worker *ws, unsigned nthreads,
                        uint64_t *ops)
{
  int failed = 0;
  atomic_store(&r->stop, 1);
  *ops = 0;
  for (unsigned i = 0; i < nthreads; i++) {
    pthread_join(ws[i].tid, NULL);
    *ops += ws[i].ops;
    if (ws[i].err) {
      fprintf(stderr, "ckpt-bench: thread %u: %s\n", i, ws[i].msg);
      failed = 1;
    }
  }
  pthread_barrier_destroy(&r->bar);
  return failed ? -1 : 0;
}

static int run_timed(struct run *r, unsigned nthreads, double secs,
                     double *rate)
{
  uint64_t ops;
  struct worker *ws = start_workers(r, nthreads);
  if (ws == NULL)
    return -1;
  uint64_t t0 = bench_now_ns();
  bench_sleep(secs);
  int rc = stop_workers(r, ws, nthreads, &ops);
  *rate = (double)ops / bench_secs_since(t0);
  free(ws);
  return rc;
}

/* ------------------------------------------------------------------------
 * Figures 1 and 2: random gets, uniform and zipfian
 * --------------------------------------------------------------------- */

/* YCSB's zipfian generator (Gray et al.), rank 0 the hottest.  Ranks are
 * used as indices directly: bench_key scatters them over the key space.
 * Samples are drawn per get, not precomputed: a recycled sample buffer
 * would shrink the set of keys touched, and flatter a cache. */
struct zipf {
  double n, theta, zetan, zeta2, alpha, eta;
};

static void zipf_init(struct zipf *z, uint64_t n, double theta)
{
  z->n = (double)n;
  z->theta = theta;
  z->zetan = 0;
  for (uint64_t i = 1; i <= n; i++)
    z->zetan += 1 / pow((double)i, theta);
  z->zeta2 = 1 + pow(0.5, theta);
  z->alpha = 1 / (1 - theta);
  z->eta = (1 - pow(2.0 / z->n, 1 - theta)) / (1 - z->zeta2 / z->zetan);
}

static uint64_t zipf_next(const struct zipf *z, uint64_t *seed)
{
  double u = rand_unit(seed), uz = u * z->zetan;
  if (uz < 1)
    return 0;
  if (uz < z->zeta2)
    return 1;
  uint64_t r = (uint64_t)(z->n * pow(z->eta * u - z->eta + 1, z->alpha));
  return r < (uint64_t)z->n ? r : (uint64_t)z->n - 1;
}

/* The next key index of worker w: uniform, or zipfian. */
static uint64_t next_index(struct run *r, struct worker *w)
{
  if (r->zipf == NULL)
    return bench_rand(&w->seed, set.n);
  return zipf_next(r->zipf, &w->seed);
}

static void work_cairn_get(struct run *r, struct worker *w)
{
  char key[KEY_BYTES];
  pthread_barrier_wait(&r->bar);
  while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
    cairn_value v;
    bench_key(next_index(r, w), key);
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
  int rc = mdb_txn_begin(r->lm->env, NULL, MDB_RDONLY, &txn);

  pthread_barrier_wait(&r->bar);
  if (rc != 0) {
    worker_fail(w, "mdb_txn_begin", mdb_strerror(rc));
    return;
  }
  while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
    MDB_val k = { KEY_BYTES, key }, v;
    bench_key(next_index(r, w), key);
    if ((rc = mdb_get(txn, r->lm->dbi, &k, &v)) != 0) {
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

/* The engines loaded once, shared by every figure. */
static struct loaded {
  cairn *db;
  struct lm lm;
  char cairn_dir[4200], lmdb_dir[4200];
  bool ok;
} ld;

/* Memory-hit figures of cairn between two stats snapshots. */
static void print_hits(const struct cairn_stats *a, const struct cairn_stats *b)
{
  uint64_t gets = b->gets - a->gets, hits = b->mem_hits - a->mem_hits;
  printf("    cairn memory hit ratio %.3f (%" PRIu64 " of %" PRIu64 " gets), "
         "%" PRIu64 " store reads, %" PRIu64 " evictions; memory %.1f MiB "
         "of %.1f MiB\n", gets ? (double)hits / (double)gets : 0.0, hits,
         gets, b->store_reads - a->store_reads, b->evictions - a->evictions,
         b->memory_bytes / 1048576.0, b->max_memory / 1048576.0);
}

/* One get row: GET_ROUNDS alternating turns each, best turn kept (noise
 * only ever slows a turn down). */
static int get_row(const char *fig, const struct zipf *zipf, unsigned nthreads,
                   double goal)
{
  struct run rc_run = { .fn = work_cairn_get, .db = ld.db, .zipf = zipf };
  struct run rl_run = { .fn = work_lmdb_get, .lm = &ld.lm, .zipf = zipf };
  struct cairn_stats a, b;
  double c = -1, p = -1, rate;
  char name[48];
  int rc = 0;

  cairn_stats(ld.db, &a);
  for (unsigned round = 0; round < GET_ROUNDS && rc == 0; round++) {
    double secs = set.read_seconds / GET_ROUNDS;
    rc |= run_timed(&rc_run, nthreads, secs, &rate);
    c = rate > c ? rate : c;
    rc |= run_timed(&rl_run, nthreads, secs, &rate);
    p = rate > p ? rate : p;
  }
  cairn_stats(ld.db, &b);
  printf("  %u thread%s: cairn %.0f gets/s, LMDB %.0f gets/s, ratio %.2f\n",
         nthreads, nthreads == 1 ? "" : "s", c, p, p > 0 ? c / p : 0.0);
  print_hits(&a, &b);
  snprintf(name, sizeof name, "%s, %u thr vs LMDB", fig, nthreads);
  bench_row(name, "ops/s", rc == 0 ? c : -1, rc == 0 ? p : -1, GOAL_RATIO_GE,
          goal);
  return rc;
}

/* Warm cairn up with run r until its memory has settled: full (at
 * WARM_FULL_PCT of max_memory) or grown by less than WARM_FLAT_PCT of it
 * over the last slice, and its hit ratio up by less than WARM_HIT_RISE
 * over the slice (memory full of what an earlier workload chose is not
 * settled); at least set.warm_seconds and at most set.warm_max.  A figure
 * taken while memory still fills, or still turns over to the workload,
 * measures that, not the cache. */
static int warm_cairn(struct run *r)
{
  struct cairn_stats a, b;
  double secs = 0, rate = 0, hit = 0, last = -1;
  uint64_t ops = 0;
  bool full = false, settled = false;
  int rc = 0;

  cairn_stats(ld.db, &b);
  while (rc == 0 && secs < set.warm_max && !settled) {
    a = b;
    rc |= run_timed(r, 1, WARM_SLICE_S, &rate);
    secs += WARM_SLICE_S;
    ops += (uint64_t)(rate * WARM_SLICE_S);
    cairn_stats(ld.db, &b);
    uint64_t gets = b.gets - a.gets;
    hit = gets ? (double)(b.mem_hits - a.mem_hits) / (double)gets : 0;
    full = b.memory_bytes / WARM_FULL_PCT >= b.max_memory / 100;
    bool flat = b.memory_bytes <= a.memory_bytes + b.max_memory / 100 *
                                                   WARM_FLAT_PCT;
    settled = secs >= set.warm_seconds && (full || flat) && last >= 0 &&
              hit < last + WARM_HIT_RISE;
    last = hit;
  }
  printf("  warm-up: cairn %.0f s (%.0f gets/s, memory %s, hit ratio %.3f "
         "%s)", secs, secs > 0 ? (double)ops / secs : 0.0,
         full ? "full" : "not full", hit, settled ? "settled" : "still moving");
  fflush(stdout);
  return rc;
}

static int fig_get(const char *fig, const struct zipf *zipf, double goal)
{
  struct run rc_run = { .fn = work_cairn_get, .db = ld.db, .zipf = zipf };
  struct run rl_run = { .fn = work_lmdb_get, .lm = &ld.lm, .zipf = zipf };
  struct cairn_stats a, b;
  double rate;
  int rc = 0;

  /* Warm-up: the same workload, so cairn's memory holds what it selects
   * and both engines' pages are in the page cache and mapped. */
  cairn_stats(ld.db, &a);
  rc |= warm_cairn(&rc_run);
  cairn_stats(ld.db, &b);
  rc |= run_timed(&rl_run, 1, set.warm_seconds, &rate);
  printf(", LMDB %.0f s (%.0f gets/s)\n", set.warm_seconds, rate);
  print_hits(&a, &b);
  for (unsigned i = 0; i < set.get_threads.n; i++)
    rc |= get_row(fig, zipf, set.get_threads.v[i], goal);
  return rc;
}

static int fig_get_uniform(void)
{
  return fig_get("get uniform", NULL, 0.8);
}

static int fig_get_zipf(void)
{
  struct zipf z;
  uint64_t t0 = bench_now_ns(), seed = 0x21f5eedull, hot = 0;
  zipf_init(&z, set.n, ZIPF_THETA);
  for (unsigned i = 0; i < ZIPF_PROBE; i++)
    hot += zipf_next(&z, &seed) < set.n / 5;
  printf("  zipfian theta %.2f over %" PRIu64 " keys (set up in %.1f s): "
         "%.1f%% of gets go to the hottest 20%% of keys\n", ZIPF_THETA,
         set.n, bench_secs_since(t0), 100.0 * (double)hot / ZIPF_PROBE);
  return fig_get("get zipf 0.99", &z, 2);
}

/* ------------------------------------------------------------------------
 * Figure 3: put latency while a checkpoint runs
 * --------------------------------------------------------------------- */

/* FSYNC puts of random existing keys, each timed. */
static void work_cairn_put_lat(struct run *r, struct worker *w)
{
  cairn_write wr = { .durability = CAIRN_DURABILITY_FSYNC };
  char key[KEY_BYTES], val[VAL_BYTES];

  w->lat_start = malloc(LAT_MAX * sizeof *w->lat_start);
  w->lat_ns = malloc(LAT_MAX * sizeof *w->lat_ns);
  pthread_barrier_wait(&r->bar);
  if (w->lat_start == NULL || w->lat_ns == NULL) {
    worker_fail(w, "malloc", "no memory for latencies");
    return;
  }
  while (!atomic_load_explicit(&r->stop, memory_order_relaxed) &&
         w->lat_n < LAT_MAX) {
    uint64_t i = bench_rand(&w->seed, set.n);
    bench_key(i, key);
    make_val_gen(i, 7, val);
    uint64_t t = bench_now_ns();
    int rc = cairn_put(r->db, NULL, key, KEY_BYTES, val, VAL_BYTES, &wr);
    if (rc != 0) {
      worker_fail(w, "cairn_put", cairn_strerror(rc));
      return;
    }
    w->lat_start[w->lat_n] = t;
    w->lat_ns[w->lat_n++] = bench_now_ns() - t;
    w->ops++;
  }
}

struct lat {
  size_t n;
  double p50_us, p99_us, max_us;
};

/* Percentiles of the latencies of puts started within [from, to). */
static struct lat lat_collect(struct worker *ws, unsigned nthreads,
                              uint64_t from, uint64_t to)
{
  struct lat out = { 0 };
  size_t total = 0;
  for (unsigned i = 0; i < nthreads; i++)
    total += ws[i].lat_n;
  uint64_t *all = malloc((total + 1) * sizeof *all);
  if (all == NULL)
    return out;
  for (unsigned i = 0; i < nthreads; i++)
    for (size_t k = 0; k < ws[i].lat_n; k++)
      if (ws[i].lat_start[k] >= from && ws[i].lat_start[k] < to)
        all[out.n++] = ws[i].lat_ns[k];
  if (out.n > 0) {
    qsort(all, out.n, sizeof *all, bench_cmp_u64);
    out.p50_us = (double)all[out.n / 2] / 1e3;
    out.p99_us = (double)all[out.n * 99 / 100] / 1e3;
    out.max_us = (double)all[out.n - 1] / 1e3;
  }
  free(all);
  return out;
}

static void free_workers(struct worker *ws, unsigned nthreads)
{
  for (unsigned i = 0; i < nthreads; i++) {
    free(ws[i].lat_start);
    free(ws[i].lat_ns);
  }
  free(ws);
}

static void print_lat(const char *what, const struct lat *l)
{
  printf("    %-26s %7zu puts: p50 %8.1f us, p99 %8.1f us, max %8.1f us\n",
         what, l->n, l->p50_us, l->p99_us, l->max_us);
}

/* Put latency with no checkpoint running, for set.idle_seconds. */
static int idle_phase(unsigned nthreads, struct lat *out)
{
  struct run r = { .fn = work_cairn_put_lat, .db = ld.db };
  struct cairn_stats a, b;
  uint64_t ops;

  cairn_stats(ld.db, &a);
  struct worker *ws = start_workers(&r, nthreads);
  if (ws == NULL)
    return -1;
  uint64_t t0 = bench_now_ns();
  bench_sleep(set.idle_seconds);
  uint64_t t1 = bench_now_ns();
  int rc = stop_workers(&r, ws, nthreads, &ops);
  cairn_stats(ld.db, &b);
  *out = lat_collect(ws, nthreads, t0, t1);
  free_workers(ws, nthreads);
  if (b.checkpoints != a.checkpoints)
    printf("    note: %" PRIu64 " checkpoint(s) ran in the idle phase\n",
           b.checkpoints - a.checkpoints);
  return rc;
}

/* Write set.updates updates and sync them, then run the put threads, and
 * while they run, one cairn_checkpoint from this thread; only puts started
 * between its call and its return count. */
static int ckpt_phase(unsigned nthreads, uint64_t gen, struct lat *out)
{
  struct run r = { .fn = work_cairn_put_lat, .db = ld.db };
  struct cairn_stats a, b;
  uint64_t ops, t0 = bench_now_ns();

  if (cn_write(ld.db, 0, set.updates, false, gen, 0) != 0 ||
      cairn_sync(ld.db) != 0)
    return -1;
  cairn_stats(ld.db, &a);
  printf("    %" PRIu64 " updates written and synced in %.1f s; %.0f MiB "
         "of log since the last checkpoint\n", set.updates, bench_secs_since(t0),
         a.log_bytes_since_checkpoint / 1048576.0);
  struct worker *ws = start_workers(&r, nthreads);
  if (ws == NULL)
    return -1;
  bench_sleep(0.2);
  uint64_t c0 = bench_now_ns();
  int crc = cairn_checkpoint(ld.db);
  uint64_t c1 = bench_now_ns();
  int rc = stop_workers(&r, ws, nthreads, &ops);
  cairn_stats(ld.db, &b);
  *out = lat_collect(ws, nthreads, c0, c1);
  free_workers(ws, nthreads);
  if (crc != 0) {
    fprintf(stderr, "ckpt-bench: cairn_checkpoint: %s\n",
            cairn_strerror(crc));
    return -1;
  }
  printf("    checkpoint took %.2f s (cairn says %" PRIu64 " ms, %.0f MiB of "
         "log, %" PRIu64 " checkpoint(s) in the phase, %" PRIu64
         " unpaced)\n",
         (double)(c1 - c0) / 1e9, b.checkpoint_ms,
         b.checkpoint_bytes / 1048576.0, b.checkpoints - a.checkpoints,
         b.checkpoints_unpaced - a.checkpoints_unpaced);
  return rc;
}

static int fig_interference(void)
{
  int rc = 0;
  for (unsigned i = 0; i < set.put_threads.n; i++) {
    unsigned t = set.put_threads.v[i];
    struct lat idle = { 0 }, during = { 0 };
    char name[48];
    printf("  %u put thread%s (FSYNC):\n", t, t == 1 ? "" : "s");
    int r1 = idle_phase(t, &idle);
    int r2 = ckpt_phase(t, 100 + i, &during);
    print_lat("no checkpoint running:", &idle);
    print_lat("during the checkpoint:", &during);
    if (during.n < 100)
      printf("    note: few puts during the checkpoint; raise -u\n");
    snprintf(name, sizeof name, "put p99 in ckpt, %u thr", t);
    bool ok = r1 == 0 && r2 == 0 && idle.n > 0 && during.n > 0;
    bench_row(name, "us", ok ? during.p99_us : -1, ok ? idle.p99_us : -1,
            GOAL_RATIO_LE, 2);
    snprintf(name, sizeof name, "put p50 in ckpt, %u thr", t);
    bench_row(name, "us", ok ? during.p50_us : -1, ok ? idle.p50_us : -1,
            GOAL_NONE, 0);
    rc |= ok ? 0 : -1;
  }
  return rc;
}

/* ------------------------------------------------------------------------
 * Loading both engines
 * --------------------------------------------------------------------- */

/* cairn is loaded, checkpointed and closed, then reopened: its memory
 * starts cold and fills from reads.  Checkpoints then run only when asked
 * (or under memory pressure), so figure 3 knows when one runs. */
static int load_all(void)
{
  if (bench_subdir("cairn", ld.cairn_dir, sizeof ld.cairn_dir) != 0 ||
      bench_subdir("lmdb", ld.lmdb_dir, sizeof ld.lmdb_dir) != 0)
    return -1;
  if (cn_load(ld.cairn_dir) != 0)
    return -1;
  uint64_t t0 = bench_now_ns();
  if (cn_open(ld.cairn_dir, budget_bytes(), true, &ld.db) != 0)
    return -1;
  printf("  cairn: reopened (cold memory) in %.2f s\n", bench_secs_since(t0));
  print_cn_stats("after reopen", ld.db);
  if (lm_open(ld.lmdb_dir, MDB_NOSYNC, &ld.lm) != 0 || lm_load(&ld.lm) != 0)
    return -1;
  printf("  LMDB data directory %.0f MiB\n",
         bench_dir_bytes(ld.lmdb_dir, true) / 1048576.0);
  ld.ok = true;
  return 0;
}

static void unload(void)
{
  if (ld.db != NULL)
    cairn_close(ld.db);
  if (ld.lm.env != NULL)
    mdb_env_close(ld.lm.env);
  memset(&ld, 0, sizeof ld);
}

/* ------------------------------------------------------------------------
 * Helper modes for bench/restart.sh
 * --------------------------------------------------------------------- */

/* Load set.n entries into dir and checkpoint them (closing does), then
 * reopen with checkpoints off and write set.tail_mb MB of log, sync, and
 * leave with _exit: cairn_close would checkpoint the tail away. */
static int mode_fill(const char *dir)
{
  struct cairn_stats st;
  cairn *db;
  char path[4200];

  snprintf(path, sizeof path, "%s/lmdb", dir);
  if (access(path, F_OK) == 0) {
    fprintf(stderr, "ckpt-bench: %s already holds a database\n", dir);
    return -1;
  }
  printf("fill %s: %" PRIu64 " entries, then %" PRIu64 " MB of log\n", dir,
         set.n, set.tail_mb);
  if (cn_load(dir) != 0)
    return -1;
  /* No budget here: with one, dirty entries past it would ask for a
   * checkpoint, and the tail would not stay in the log. */
  if (cn_open(dir, 0, true, &db) != 0)
    return -1;
  uint64_t t0 = bench_now_ns();
  if (cn_write(db, 0, UINT64_MAX, false, 1, set.tail_mb * 1000000u) != 0 ||
      cairn_sync(db) != 0 || cairn_stats(db, &st) != 0)
    return -1;
  printf("  tail: %" PRIu64 " records, %.1f MB of log in %.1f s, %" PRIu64
         " checkpoints since reopen, log since checkpoint %.1f MB\n",
         st.puts, st.log_bytes / 1e6, bench_secs_since(t0), st.checkpoints,
         st.log_bytes_since_checkpoint / 1e6);
  printf("  data directory %.0f MiB\n", bench_dir_bytes(dir, true) / 1048576.0);
  fflush(stdout);
  _exit(st.checkpoints == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}

/* Time cairn_open of dir with the run's budget, print it, and leave with
 * _exit, so the directory is unchanged and the next open times the same
 * replay. */
static int mode_open_only(const char *dir)
{
  struct cairn_stats st;
  cairn *db;
  uint64_t t0 = bench_now_ns();
  if (cn_open(dir, budget_bytes(), false, &db) != 0)
    return -1;
  double secs = bench_secs_since(t0);
  if (cairn_stats(db, &st) != 0)
    return -1;
  printf("open_seconds=%.6f recovered_records=%" PRIu64 " entries=%" PRIu64
         " disk_entries=%" PRIu64 " memory_bytes=%" PRIu64 "\n", secs,
         st.recovered_records, st.entries, st.disk_entries, st.memory_bytes);
  fflush(stdout);
  _exit(EXIT_SUCCESS);
}

/* One LMDB database for --trees: a uniform sample of its keys, packed. */
struct tree {
  const char *name;
  MDB_env *env;
  MDB_dbi dbi;
  MDB_txn *txn;
  MDB_stat st;
  uint8_t *keys;    /* n keys of at most TREE_KEY_MAX bytes */
  uint16_t *klen;
  size_t n;
};

#define TREE_KEY_MAX 64u

static int tree_open(struct tree *t, const char *name, const char *dir,
                     const char *dbname)
{
  MDB_cursor *cur;
  MDB_val k, v;
  int rc;

  memset(t, 0, sizeof *t);
  t->name = name;
  if ((rc = mdb_env_create(&t->env)) != 0 ||
      (rc = mdb_env_set_maxdbs(t->env, 8)) != 0 ||
      (rc = mdb_env_open(t->env, dir, MDB_RDONLY | MDB_NOTLS | MDB_NORDAHEAD,
                         0644)) != 0 ||
      (rc = mdb_txn_begin(t->env, NULL, MDB_RDONLY, &t->txn)) != 0 ||
      (rc = mdb_dbi_open(t->txn, dbname, 0, &t->dbi)) != 0 ||
      (rc = mdb_stat(t->txn, t->dbi, &t->st)) != 0 ||
      (rc = mdb_cursor_open(t->txn, t->dbi, &cur)) != 0) {
    fprintf(stderr, "ckpt-bench: %s: %s\n", dir, mdb_strerror(rc));
    return -1;
  }
  size_t cap = t->st.ms_entries < TREE_SAMPLE ? t->st.ms_entries : TREE_SAMPLE;
  size_t stride = cap ? (t->st.ms_entries + cap - 1) / cap : 1, i = 0;
  t->keys = malloc(cap * TREE_KEY_MAX + 1);
  t->klen = malloc(cap * sizeof *t->klen + 1);
  if (t->keys == NULL || t->klen == NULL)
    return -1;
  for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && t->n < cap;
       rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT), i++) {
    if (i % stride != 0 || k.mv_size > TREE_KEY_MAX)
      continue;
    memcpy(t->keys + t->n * TREE_KEY_MAX, k.mv_data, k.mv_size);
    t->klen[t->n++] = (uint16_t)k.mv_size;
  }
  mdb_cursor_close(cur);
  printf("  %s: %zu entries, depth %u, %zu branch and %zu leaf pages; "
         "%zu keys sampled\n", name, t->st.ms_entries, t->st.ms_depth,
         t->st.ms_branch_pages, t->st.ms_leaf_pages, t->n);
  return t->n ? 0 : -1;
}

/* mdb_get of ops sampled keys, drawn at random; gets a second. */
static double tree_gets(struct tree *t, uint64_t ops, uint64_t *seed)
{
  uint64_t sink = 0, t0 = bench_now_ns();
  for (uint64_t j = 0; j < ops; j++) {
    size_t x = (size_t)bench_rand(seed, t->n);
    MDB_val k = { t->klen[x], t->keys + x * TREE_KEY_MAX }, v;
    if (mdb_get(t->txn, t->dbi, &k, &v) != 0)
      return -1;
    sink += ((const uint8_t *)v.mv_data)[v.mv_size - 1];
  }
  double secs = bench_secs_since(t0);
  return sink == UINT64_MAX ? 0 : (double)ops / secs;
}

/* The tree shape alone: random mdb_get on cairn's store (its data keys:
 * namespace, shard, hash, key) and on the peer's LMDB (the bare keys),
 * in one process with nothing else running, turns alternated. */
static int mode_trees(const char *dir)
{
  char a[4200], b[4200];
  struct tree c, l;
  uint64_t seed = 0x7ee5eedull;
  double best_c = 0, best_l = 0;

  snprintf(a, sizeof a, "%s/cairn/lmdb", dir);
  snprintf(b, sizeof b, "%s/lmdb", dir);
  if (tree_open(&c, "cairn's store", a, "data") != 0 ||
      tree_open(&l, "LMDB", b, NULL) != 0)
    return -1;
  uint64_t ops = c.n > l.n ? c.n : l.n;
  for (unsigned r = 0; r < TREE_ROUNDS; r++) {
    double rc = tree_gets(&c, ops, &seed), rl = tree_gets(&l, ops, &seed);
    if (rc < 0 || rl < 0) {
      fprintf(stderr, "ckpt-bench: a sampled key was not found\n");
      return -1;
    }
    printf("  turn %u: cairn's tree %.0f gets/s, LMDB %.0f gets/s\n", r + 1,
           rc, rl);
    best_c = rc > best_c ? rc : best_c;
    best_l = rl > best_l ? rl : best_l;
  }
  printf("  best: cairn's tree %.0f, LMDB %.0f gets/s, ratio %.2f\n", best_c,
         best_l, best_c / best_l);
  return 0;
}

/* --cache: how cairn's memory settles over a long read.  Opens the kept
 * directory cold, as the get figures reopen it, and reads it with one
 * thread, each figure -o names (get-uniform, get-zipf, in that order) for
 * --warm-max seconds in rounds of --read-seconds, printing every round. */
static int mode_cache(const char *dir)
{
  char path[4200];
  struct stat st;
  struct zipf z;
  cairn *db;
  int rc = 0;

  snprintf(path, sizeof path, "%s/cairn", dir);
  if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
    fprintf(stderr, "ckpt-bench: %s: no data directory kept by -k\n", path);
    return -1;
  }
  if (cn_open(path, budget_bytes(), true, &db) != 0)
    return -1;
  zipf_init(&z, set.n, ZIPF_THETA);
  for (int f = FIG_GET_UNIFORM; f <= FIG_GET_ZIPF && rc == 0; f++) {
    if (!set.only[f])
      continue;
    struct run run = { .fn = work_cairn_get, .db = db,
                       .zipf = f == FIG_GET_ZIPF ? &z : NULL };
    printf("[%s] %.0f s in rounds of %.0f s, one thread\n", fig_names[f],
           set.warm_max, set.read_seconds);
    double secs = 0;
    for (unsigned r = 1; rc == 0 && secs < set.warm_max; r++) {
      struct cairn_stats a, b;
      double rate;
      cairn_stats(db, &a);
      rc = run_timed(&run, 1, set.read_seconds, &rate);
      secs += set.read_seconds;
      cairn_stats(db, &b);
      printf("  round %u: %.0f gets/s\n", r, rate);
      print_hits(&a, &b);
      fflush(stdout);
    }
  }
  cairn_close(db);
  return rc;
}

/* SET commands for the n entries in RESP, for redis-cli --pipe: the same
 * keys and values as cairn gets. */
static int mode_resp(void)
{
  char key[KEY_BYTES], val[VAL_BYTES];
  for (uint64_t i = 0; i < set.n; i++) {
    bench_key(i, key);
    make_val(i, val);
    /* The index bytes are binary; RESP bulk strings take them as is. */
    printf("*3\r\n$3\r\nSET\r\n$%u\r\n", KEY_BYTES);
    fwrite(key, 1, KEY_BYTES, stdout);
    printf("\r\n$%u\r\n", VAL_BYTES);
    fwrite(val, 1, VAL_BYTES, stdout);
    fputs("\r\n", stdout);
  }
  return fflush(stdout) == 0 ? 0 : -1;
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
    "usage: ckpt-bench [options]\n"
    "       ckpt-bench --fill DIR [-n N] [--tail-mb MB]\n"
    "       ckpt-bench --open-only DIR [-n N]\n"
    "       ckpt-bench --resp [-n N] | redis-cli --pipe\n"
    "       ckpt-bench --trees DIR   (DIR kept by -k)\n"
    "       ckpt-bench --cache DIR [-n N -o F -r S -W S]   (DIR kept by -k)\n"
    "  -n, --keys N           entries (default 10M; k/M suffixes); cairn's\n"
    "                         max_memory is a quarter of N*(16+100) bytes\n"
    "  -r, --read-seconds S   measured length of each get row (default 6)\n"
    "  -w, --warm-seconds S   warm-up of each get figure (default 4); cairn's\n"
    "                         goes on until its memory and hit ratio have\n"
    "                         settled, up to --warm-max S (default 90)\n"
    "  -I, --idle-seconds S   idle phase of the interference figure (3)\n"
    "  -u, --updates U        updates before the timed checkpoint\n"
    "                         (default N/10, at least 200k)\n"
    "  -g, --get-threads L    reader threads, e.g. 1,2 (default)\n"
    "  -T, --put-threads L    writer threads, e.g. 1,2,4 (default)\n"
    "  -d, --dir D            make the data directory under D (default .)\n"
    "  -o, --only F[,F...]    get-uniform get-zipf interference (or 1-3)\n"
    "  -k, --keep             keep the data directory\n"
    "      --tail-mb MB       --fill: log written after the checkpoint (100)\n"
    "      --lmdb-unsorted    load LMDB in random key order (plain puts),\n"
    "                         as an application would, not sorted with\n"
    "                         MDB_APPEND (which fills every page)\n"
    "  -h, --help / -V, --version\n");
}

static int parse_list(const char *arg, struct list *out)
{
  char buf[128];
  if (strlen(arg) >= sizeof buf)
    return -1;
  strcpy(buf, arg);
  out->n = 0;
  for (char *save, *tok = strtok_r(buf, ",", &save); tok != NULL;
       tok = strtok_r(NULL, ",", &save)) {
    uint64_t v;
    if (out->n == LIST_MAX || bench_parse_u64(tok, &v) != 0 || v > THREADS_MAX)
      return -1;
    out->v[out->n++] = (unsigned)v;
  }
  return out->n ? 0 : -1;
}

static int parse_only(const char *arg)
{
  char buf[128];
  if (strlen(arg) >= sizeof buf)
    return -1;
  strcpy(buf, arg);
  for (char *save, *tok = strtok_r(buf, ",", &save); tok != NULL;
       tok = strtok_r(NULL, ",", &save)) {
    int hit = -1;
    for (int f = 0; f < FIG_COUNT; f++)
      if (strcmp(tok, fig_names[f]) == 0 ||
          (tok[0] == '1' + f && tok[1] == '\0'))
        hit = f;
    if (hit < 0) {
      fprintf(stderr, "ckpt-bench: unknown figure '%s'\n", tok);
      return -1;
    }
    set.only[hit] = true;
  }
  return 0;
}

enum mode { MODE_BENCH, MODE_FILL, MODE_OPEN_ONLY, MODE_RESP, MODE_TREES,
            MODE_CACHE };
enum { OPT_FILL = 256, OPT_OPEN_ONLY, OPT_RESP, OPT_TAIL_MB, OPT_UNSORTED,
       OPT_TREES, OPT_CACHE };

static int parse_args(int argc, char **argv, enum mode *mode,
                      const char **mode_dir)
{
  static const struct option longs[] = {
    { "keys", 1, NULL, 'n' }, { "read-seconds", 1, NULL, 'r' },
    { "warm-seconds", 1, NULL, 'w' },
    { "warm-max", 1, NULL, 'W' }, { "idle-seconds", 1, NULL, 'I' },
    { "updates", 1, NULL, 'u' }, { "get-threads", 1, NULL, 'g' },
    { "put-threads", 1, NULL, 'T' }, { "dir", 1, NULL, 'd' },
    { "only", 1, NULL, 'o' }, { "keep", 0, NULL, 'k' },
    { "help", 0, NULL, 'h' }, { "version", 0, NULL, 'V' },
    { "fill", 1, NULL, OPT_FILL }, { "open-only", 1, NULL, OPT_OPEN_ONLY },
    { "resp", 0, NULL, OPT_RESP }, { "tail-mb", 1, NULL, OPT_TAIL_MB },
    { "lmdb-unsorted", 0, NULL, OPT_UNSORTED },
    { "trees", 1, NULL, OPT_TREES }, { "cache", 1, NULL, OPT_CACHE },
    { NULL, 0, NULL, 0 },
  };
  bool any_only = false;
  int c, bad = 0;

  while ((c = getopt_long(argc, argv, "n:r:w:W:I:u:g:T:d:o:khV", longs,
                          NULL)) != -1) {
    switch (c) {
    case 'n': bad |= bench_parse_u64(optarg, &set.n); break;
    case 'r': bad |= bench_parse_secs(optarg, &set.read_seconds); break;
    case 'w': bad |= bench_parse_secs(optarg, &set.warm_seconds); break;
    case 'W': bad |= bench_parse_secs(optarg, &set.warm_max); break;
    case 'I': bad |= bench_parse_secs(optarg, &set.idle_seconds); break;
    case 'u': bad |= bench_parse_u64(optarg, &set.updates); break;
    case 'g': bad |= parse_list(optarg, &set.get_threads); break;
    case 'T': bad |= parse_list(optarg, &set.put_threads); break;
    case 'd': set.parent = optarg; break;
    case 'o': bad |= parse_only(optarg); any_only = true; break;
    case 'k': set.keep = true; break;
    case OPT_FILL: *mode = MODE_FILL; *mode_dir = optarg; break;
    case OPT_OPEN_ONLY: *mode = MODE_OPEN_ONLY; *mode_dir = optarg; break;
    case OPT_RESP: *mode = MODE_RESP; break;
    case OPT_TREES: *mode = MODE_TREES; *mode_dir = optarg; break;
    case OPT_CACHE: *mode = MODE_CACHE; *mode_dir = optarg; break;
    case OPT_TAIL_MB: bad |= bench_parse_u64(optarg, &set.tail_mb); break;
    case OPT_UNSORTED: set.lmdb_unsorted = true; break;
    case 'h': usage(stdout); exit(EXIT_SUCCESS);
    case 'V': printf("ckpt-bench %s\n", CAIRN_VERSION_STRING);
      exit(EXIT_SUCCESS);
    default: bad = 1; break;
    }
  }
  if (bad || optind != argc) {
    fprintf(stderr, "ckpt-bench: bad arguments\n");
    usage(stderr);
    return -1;
  }
  for (int f = 0; f < FIG_COUNT; f++)
    set.only[f] |= !any_only;
  if (set.updates == 0)
    set.updates = set.n / 10 > 200000 ? set.n / 10 : 200000;
  return 0;
}

/* ------------------------------------------------------------------------
 * Main
 * --------------------------------------------------------------------- */

static int make_data_dir(void)
{
  struct statfs sf;
  int len = snprintf(bench_dir, sizeof bench_dir, "%s/ckpt-bench.XXXXXX",
                     set.parent);
  if (len < 0 || (size_t)len >= sizeof bench_dir - 256)
    return -1;
  if (mkdtemp(bench_dir) == NULL) {
    fprintf(stderr, "ckpt-bench: mkdtemp %s: %s\n", bench_dir,
            strerror(errno));
    return -1;
  }
  if (statfs(bench_dir, &sf) == 0 &&
      (sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC))
    fprintf(stderr, "ckpt-bench: WARNING: %s is on tmpfs/ramfs, where "
            "fdatasync is free; latency figures mean nothing there\n",
            bench_dir);
  return 0;
}

typedef int (*fig_fn)(void);

static const fig_fn figs[FIG_COUNT] = {
  fig_get_uniform, fig_get_zipf, fig_interference,
};

static const char *const fig_titles[FIG_COUNT] = {
  "get, uniform keys: cairn_get (memory a quarter of the data) vs mdb_get",
  "get, zipfian keys (theta 0.99): cairn_get vs mdb_get",
  "put latency (FSYNC) while a checkpoint runs vs while none does",
};

static int run_bench(void)
{
  int failures = 0;
  if (make_data_dir() != 0)
    return EXIT_FAILURE;
  printf("ckpt-bench %s: n=%" PRIu64 " (%.0f MiB of keys+values), cairn "
         "max_memory %.0f MiB, data in %s\n", CAIRN_VERSION_STRING, set.n,
         set.n * (KEY_BYTES + VAL_BYTES) / 1048576.0,
         budget_bytes() / 1048576.0, bench_dir);
  printf("\n[load] cairn: interval durability, checkpoint, close, reopen "
         "cold; LMDB: %s, MDB_NOSYNC\n",
         set.lmdb_unsorted ? "random order" : "sorted");
  fflush(stdout);
  if (load_all() != 0) {
    fprintf(stderr, "ckpt-bench: loading failed\n");
    failures++;
  }
  for (int f = 0; f < FIG_COUNT && ld.ok; f++) {
    if (!set.only[f])
      continue;
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
  bench_print_rows();
  printf("(peer: LMDB for gets; for put p50/p99, the same puts with no "
         "checkpoint running)\n");
  printf("\nratios are only comparable within one run: the machine is "
         "shared and noisy\n");
  if (!set.keep)
    bench_rmrf(bench_dir);
  else
    printf("data kept in %s\n", bench_dir);
  return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

int main(int argc, char **argv)
{
  enum mode mode = MODE_BENCH;
  const char *mode_dir = NULL;

  bench_prog = "ckpt-bench";

  if (parse_args(argc, argv, &mode, &mode_dir) != 0)
    return EXIT_FAILURE;
  switch (mode) {
  case MODE_FILL:
    return mode_fill(mode_dir) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
  case MODE_OPEN_ONLY:
    return mode_open_only(mode_dir) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
  case MODE_RESP:
    return mode_resp() == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
  case MODE_TREES:
    return mode_trees(mode_dir) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
  case MODE_CACHE:
    return mode_cache(mode_dir) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
  case MODE_BENCH:
    break;
  }
  return run_bench();
}
