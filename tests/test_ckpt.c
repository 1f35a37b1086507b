/*
 * test_ckpt.c - checkpoints, the on-disk store (LMDB) and the memory budget,
 * seen through the public API: restart from a checkpoint plus the log after
 * it, recycling of log segments, eviction and read-through of cold entries,
 * expiry of entries only the store holds, scans across memory and the
 * store, the store's size limit, and MEMORY namespaces that stay off disk;
 * and the sizing of a checkpoint's LMDB transactions (ckpt.h).
 *
 * Every test has its own directory, 1 MiB log segments (so that recycling
 * happens with little data) and a quiet logger.
 */

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "cairn.h"
#include "ckpt.h"
#include "limits.h"
#include "sys.h"
#include "testutil.h"

#define SEGMENT_BYTES   (1u << 20)
#define VALUE_CAP       4096u
#define KEY_CAP         64u
#define WAIT_MS_MAX     10000u /* bound on every wait for the background */
#define HOUR_MS         (3600u * 1000u)

static char dir[256];
static cairn *db;

static cairn_options opts(void) {
  cairn_options o;
  cairn_options_init(&o);
  o.log_fn = tu_quiet;
  o.segment_bytes = SEGMENT_BYTES;
  o.expire_tick_ms = 10;
  return o;
}

static void setup(void) {
  tu_tmpdir(dir, sizeof dir, "ckpt");
  db = NULL;
}

static void teardown(void) {
  cairn_close(db);
  db = NULL;
  tu_rmrf(dir);
}

TestSuite(ckpt, .init = setup, .fini = teardown, .timeout = 120);

/* ----------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------- */

static void open_with(const cairn_options *o) {
  int rc = cairn_open(dir, o, &db);
  cr_assert_eq(rc, 0, "open %s: %s", dir, cairn_strerror(rc));
}

static void reopen_with(const cairn_options *o) {
  cairn_close(db);
  db = NULL;
  open_with(o);
}

static struct cairn_stats stats(void) {
  struct cairn_stats st;
  cr_assert_eq(cairn_stats(db, &st), 0);
  return st;
}

static void sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static size_t key_of(char *buf, const char *tag, uint32_t i) {
  return (size_t)snprintf(buf, KEY_CAP, "%s%" PRIu32, tag, i);
}

/* A value of len bytes that follows from (i, gen): it names both, and the
 * rest is pseudo-random bytes, which LZ4 cannot shrink, so that the log
 * grows by about what is written. */
static size_t value_of(char *buf, uint32_t i, uint32_t gen, size_t len) {
  int n = snprintf(buf, VALUE_CAP, "v%" PRIu32 "/%" PRIu32 ":", i, gen);
  uint64_t s = ((uint64_t)gen << 32) ^ i;
  if (len < (size_t)n) len = (size_t)n;
  for (size_t k = (size_t)n; k < len; k++) buf[k] = (char)splitmix(&s);
  return len;
}

static void put_kv(const char *ns, const char *k, size_t klen, const void *v,
                   size_t vlen, const cairn_write *w) {
  int rc = cairn_put(db, ns, k, klen, v, vlen, w);
  cr_assert_eq(rc, 0, "put %.*s: %s", (int)klen, k, cairn_strerror(rc));
}

static void put_str(const char *ns, const char *k, const char *v,
                    const cairn_write *w) {
  put_kv(ns, k, strlen(k), v, strlen(v), w);
}

/* The key holds exactly v (vlen bytes), or is absent if v is NULL. */
static void expect_kv(const char *ns, const char *k, size_t klen,
                      const void *v, size_t vlen) {
  cairn_value out = {0};
  int rc = cairn_get(db, ns, k, klen, &out);
  if (!v) {
    cr_assert_eq(rc, CAIRN_ENOTFOUND, "%.*s should be absent (%s)", (int)klen,
                 k, cairn_strerror(rc));
    return;
  }
  cr_assert_eq(rc, 0, "get %.*s: %s", (int)klen, k, cairn_strerror(rc));
  cr_assert_eq(out.len, vlen, "%.*s: %zu bytes, expected %zu", (int)klen, k,
               out.len, vlen);
  cr_assert(memcmp(out.data, v, vlen) == 0, "%.*s holds another value",
            (int)klen, k);
  cairn_value_free(&out);
}

static void expect_str(const char *ns, const char *k, const char *v) {
  expect_kv(ns, k, strlen(k), v, v ? strlen(v) : 0);
}

/* The generated value (i, gen, len) under tag+i, or absence for gen 0. */
static void expect_gen(const char *ns, const char *tag, uint32_t i,
                       uint32_t gen, size_t len) {
  char k[KEY_CAP], v[VALUE_CAP];
  size_t klen = key_of(k, tag, i);
  if (gen == 0) {
    expect_kv(ns, k, klen, NULL, 0);
    return;
  }
  size_t vlen = value_of(v, i, gen, len);
  expect_kv(ns, k, klen, v, vlen);
}

static void put_gen(const char *ns, const char *tag, uint32_t i, uint32_t gen,
                    size_t len, const cairn_write *w) {
  char k[KEY_CAP], v[VALUE_CAP];
  size_t klen = key_of(k, tag, i), vlen = value_of(v, i, gen, len);
  put_kv(ns, k, klen, v, vlen, w);
}

static void del_key(const char *ns, const char *tag, uint32_t i) {
  char k[KEY_CAP];
  size_t klen = key_of(k, tag, i);
  int rc = cairn_del(db, ns, k, klen, NULL);
  cr_assert_eq(rc, 0, "del %s: %s", k, cairn_strerror(rc));
}

static void checkpoint_ok(void) {
  int rc = cairn_sync(db);
  cr_assert_eq(rc, 0, "sync: %s", cairn_strerror(rc));
  rc = cairn_checkpoint(db);
  cr_assert_eq(rc, 0, "checkpoint: %s", cairn_strerror(rc));
}

/* The deadline of key: 0 for none. */
static int64_t deadline_of(const char *ns, const char *k) {
  cairn_value out = {0};
  int rc = cairn_get(db, ns, k, strlen(k), &out);
  cr_assert_eq(rc, 0, "get %s: %s", k, cairn_strerror(rc));
  int64_t d = out.expire_at_ms;
  cairn_value_free(&out);
  return d;
}

/* ----------------------------------------------------------------------
 * Restart: the store plus the log after its checkpoint
 * ------------------------------------------------------------------- */

#define R_KEYS      200u
#define R_VLEN      300u
#define R_TTL_EVERY 4u /* keys i % 4 == 1 get a one-hour lifespan */

/* The state the child leaves: gens of the plain keys, their lifespans, the
 * counter, and the new keys. */
struct r_model {
  uint32_t gen[R_KEYS];
  int ttl[R_KEYS]; /* 1: has a lifespan of about an hour */
  int64_t counter;
};

static void r_model_base(struct r_model *m) {
  memset(m, 0, sizeof *m);
  for (uint32_t i = 0; i < R_KEYS; i++) {
    m->gen[i] = 1;
    m->ttl[i] = i % R_TTL_EVERY == 1;
  }
  m->counter = 5;
}

static void r_check(const struct r_model *m, uint32_t new_keys) {
  int64_t now = wall_ms();
  for (uint32_t i = 0; i < R_KEYS; i++) {
    expect_gen(NULL, "k", i, m->gen[i], R_VLEN);
    if (!m->gen[i]) continue;
    char k[KEY_CAP];
    key_of(k, "k", i);
    int64_t d = deadline_of(NULL, k);
    if (m->ttl[i])
      cr_assert(d > now + HOUR_MS / 2 && d <= now + HOUR_MS,
                "%s: deadline %" PRId64 " is not about an hour away", k, d);
    else
      cr_assert_eq(d, 0, "%s: deadline %" PRId64 ", expected none", k, d);
  }
  for (uint32_t i = 0; i < new_keys; i++) expect_gen(NULL, "n", i, 1, R_VLEN);
  char want[32];
  snprintf(want, sizeof want, "%" PRId64, m->counter);
  expect_str(NULL, "ctr", want);
}


/* In the forked child, a failed call ends it: Criterion's asserts belong
 * to the parent. */
static void child_ok(int rc) {
  if (rc) _exit(3);
}

static int c_put_gen(const char *tag, uint32_t i, uint32_t gen) {
  char k[KEY_CAP], v[VALUE_CAP];
  size_t klen = key_of(k, tag, i), vlen = value_of(v, i, gen, R_VLEN);
  return cairn_put(db, NULL, k, klen, v, vlen, NULL);
}

static int c_expire(const char *k, uint64_t ttl_ms) {
  cairn_write w = {.ttl_ms = ttl_ms, .flags = CAIRN_W_TTL};
  return cairn_expire(db, NULL, k, strlen(k), &w);
}

/* The child's writes before its checkpoint (write: do them, else only
 * apply them to m). */
static void r_before_checkpoint(struct r_model *m, int write) {
  for (uint32_t i = 0; i < 10; i++) {
    if (write) child_ok(c_put_gen("k", i, 9));
    m->gen[i] = 9;
    m->ttl[i] = 0;
  }
}

/* The child's writes after its checkpoint; returns the number of records
 * they log.  Each touches a key that only the store holds at that moment,
 * except the overwrites of k0..k4 and the new keys. */
static uint64_t r_after_checkpoint(struct r_model *m, int write) {
  uint64_t records = 0;
  char k[KEY_CAP];
  for (uint32_t i = 10; i < 30; i++, records++) {
    if (write) child_ok(c_put_gen("k", i, 2));
    m->gen[i] = 2, m->ttl[i] = 0;
  }
  for (uint32_t i = 0; i < 5; i++, records++) {
    if (write) child_ok(c_put_gen("k", i, 3));
    m->gen[i] = 3, m->ttl[i] = 0;
  }
  for (uint32_t i = 30; i < 40; i++, records++) {
    key_of(k, "k", i);
    if (write) child_ok(cairn_del(db, NULL, k, strlen(k), NULL));
    m->gen[i] = 0;
  }
  for (uint32_t i = 40; i < 48; i++, records++) { /* set a lifespan */
    key_of(k, "k", i);
    if (write) child_ok(c_expire(k, HOUR_MS));
    m->ttl[i] = 1;
  }
  for (uint32_t i = 101; i < 120; i += R_TTL_EVERY, records++) { /* clear */
    key_of(k, "k", i);
    if (write) child_ok(c_expire(k, 0));
    m->ttl[i] = 0;
  }
  if (write) {
    int64_t v = 0;
    child_ok(cairn_incr(db, NULL, "ctr", 3, 10, &v, NULL));
    child_ok(v != m->counter + 10);
  }
  m->counter += 10;
  records++;
  for (uint32_t i = 0; i < 10; i++, records++)
    if (write) child_ok(c_put_gen("n", i, 1));
  return records;
}

/* In a forked child: open, overwrite a few keys, checkpoint, then write
 * more and die without closing (a clean close would checkpoint again).
 * Reports over fd: the records after the checkpoint, the last LSN and the
 * checkpoint LSN. */
__attribute__((noreturn)) static void r_child(int fd) {
  cairn_options o = opts();
  struct r_model m;
  r_model_base(&m);
  uint64_t out[3] = {0, 0, 0};
  if (cairn_open(dir, &o, &db) != 0) _exit(2);
  r_before_checkpoint(&m, 1);
  if (cairn_checkpoint(db) != 0) _exit(2);
  out[0] = r_after_checkpoint(&m, 1);
  struct cairn_stats st;
  if (cairn_sync(db) != 0 || cairn_stats(db, &st) != 0) _exit(2);
  out[1] = st.last_lsn;
  out[2] = st.checkpoint_lsn;
  if (write(fd, out, sizeof out) != (ssize_t)sizeof out) _exit(2);
  _exit(0);
}

Test(ckpt, restart_replays_only_the_log_after_the_checkpoint) {
  cairn_options o = opts();
  open_with(&o);
  cairn_write ttl = {.ttl_ms = HOUR_MS};
  for (uint32_t i = 0; i < R_KEYS; i++)
    put_gen(NULL, "k", i, 1, R_VLEN, i % R_TTL_EVERY == 1 ? &ttl : NULL);
  cr_assert_eq(cairn_incr(db, NULL, "ctr", 3, 5, NULL, NULL), 0);
  /* A clean close checkpoints: nothing is left to replay. */
  reopen_with(&o);
  struct cairn_stats st = stats();
  cr_assert_eq(st.recovered_records, 0);
  cr_assert_eq(st.entries, 0, "memory starts empty after a clean reopen");
  cr_assert_eq(st.disk_entries, R_KEYS + 1);
  cairn_close(db);
  db = NULL;

  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  fflush(NULL);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    r_child(fds[1]);
  }
  close(fds[1]);
  uint64_t got[3] = {0, 0, 0};
  ssize_t n = read(fds[0], got, sizeof got);
  close(fds[0]);
  int status;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
            "child failed (status 0x%x)", status);
  cr_assert_eq(n, (ssize_t)sizeof got);

  struct r_model m;
  r_model_base(&m);
  r_before_checkpoint(&m, 0);
  uint64_t after = r_after_checkpoint(&m, 0);
  cr_assert_eq(got[0], after);
  cr_assert_eq(got[1] - got[2], after, "the child logged something else");
  open_with(&o);
  st = stats();
  cr_assert_eq(st.recovered_records, after,
               "replayed %" PRIu64 " records; %" PRIu64 " followed the "
               "checkpoint", st.recovered_records, after);
  cr_assert_geq(st.last_lsn, got[1]);
  r_check(&m, 10);
  /* The replayed changes, carried into the store, read back the same:
   * expiry changes of keys only the store held included. */
  checkpoint_ok();
  reopen_with(&o);
  st = stats();
  cr_assert_eq(st.recovered_records, 0);
  cr_assert_eq(st.disk_entries, R_KEYS - 10 + 10 + 1);
  r_check(&m, 10);
}

/* ----------------------------------------------------------------------
 * Log segments
 * ------------------------------------------------------------------- */

#define SEG_KEYS      5000u
#define SEG_VLEN      1000u
#define SEG_PASSES    4u   /* 4 x 5000 x 1000 B: 20 MB through the log */

static unsigned wal_files(void) {
  char path[300];
  snprintf(path, sizeof path, "%s/wal", dir);
  DIR *d = opendir(path);
  cr_assert(d, "opendir %s: %s", path, strerror(errno));
  unsigned n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    n += strstr(e->d_name, ".wal") != NULL;
  closedir(d);
  return n;
}

Test(ckpt, checkpoints_recycle_log_segments) {
  cairn_options o = opts();
  o.durability = CAIRN_DURABILITY_INTERVAL;
  o.interval_ms = 5;
  o.checkpoint_bytes = 4u << 20;
  open_with(&o);
  for (uint32_t pass = 1; pass <= SEG_PASSES; pass++)
    for (uint32_t i = 0; i < SEG_KEYS; i++)
      put_gen(NULL, "s", i, pass, SEG_VLEN, NULL);
  checkpoint_ok();
  struct cairn_stats st = stats();
  cr_assert_geq(st.log_bytes, (uint64_t)SEG_PASSES * SEG_KEYS * SEG_VLEN,
                "the log took %" PRIu64 " bytes", st.log_bytes);
  cr_assert_geq(st.checkpoints, 2, "log growth triggered checkpoints too");
  cr_assert_eq(st.checkpoint_lsn, st.last_lsn);
  cr_assert_eq(st.log_bytes_since_checkpoint, 0);
  cr_assert_eq(st.disk_entries, SEG_KEYS);
  /* 20 MB went through 1 MiB segments; what is left is the current one,
   * perhaps the one before it, and at most one spare kept for reuse. */
  cr_assert_leq(st.log_segments, 3, "%" PRIu64 " segments", st.log_segments);
  cr_assert_leq(wal_files(), st.log_segments + 1, "%u files in wal/",
                wal_files());
  reopen_with(&o);
  st = stats();
  cr_assert_eq(st.recovered_records, 0);
  for (uint32_t i = 0; i < SEG_KEYS; i += 7)
    expect_gen(NULL, "s", i, SEG_PASSES, SEG_VLEN);
}

/* ----------------------------------------------------------------------
 * The memory budget: eviction, and reads through to the store
 * ------------------------------------------------------------------- */

#define EV_KEYS   50000u
#define EV_VLEN   200u
/* The budget is enforced by the maintenance thread, which a reader racing
 * it can outrun between two of its passes: allow 20% above it. */
#define EV_SLACK_PCT 120u

static uint64_t wait_memory_at_most(uint64_t bytes) {
  struct cairn_stats st = stats();
  for (unsigned ms = 0; st.memory_bytes > bytes && ms < WAIT_MS_MAX; ms += 10) {
    sleep_ms(10);
    st = stats();
  }
  return st.memory_bytes;
}

Test(ckpt, cold_entries_are_evicted_and_read_back_from_the_store) {
  cairn_options o = opts();
  o.durability = CAIRN_DURABILITY_INTERVAL;
  o.interval_ms = 5;
  o.max_memory = (uint64_t)EV_KEYS * EV_VLEN / 4;
  open_with(&o);
  for (uint32_t i = 0; i < EV_KEYS; i++) put_gen(NULL, "e", i, 1, EV_VLEN, NULL);
  checkpoint_ok();
  uint64_t mem = wait_memory_at_most(o.max_memory);
  cr_assert_leq(mem, o.max_memory, "memory stays at %" PRIu64 " > %" PRIu64,
                mem, o.max_memory);
  struct cairn_stats before = stats();
  cr_assert_gt(before.evictions, 0);
  cr_assert_lt(before.entries, EV_KEYS, "every entry is still in memory");
  uint64_t peak = 0;
  /* Visit the keys in a scattered order (7919 is prime to EV_KEYS), twice:
   * a key read from the store is cached on its second miss. */
  for (uint32_t n = 0; n < 2 * EV_KEYS; n++) {
    uint32_t i = (uint32_t)(((uint64_t)n * 7919u) % EV_KEYS);
    expect_gen(NULL, "e", i, 1, EV_VLEN);
    if (n % 256 == 0) {
      struct cairn_stats st = stats();
      if (st.memory_bytes > peak) peak = st.memory_bytes;
    }
  }
  struct cairn_stats after = stats();
  cr_assert_gt(after.store_reads, before.store_reads);
  cr_assert_gt(after.evictions, before.evictions,
               "reading everything back twice made room by evicting");
  cr_assert_leq(peak, o.max_memory / 100 * EV_SLACK_PCT,
                "memory peaked at %" PRIu64 " with a budget of %" PRIu64,
                peak, o.max_memory);
  cr_assert_eq(after.max_memory, o.max_memory);
}

Test(ckpt, a_budget_set_while_open_is_kept_from_then_on) {
  cairn_options o = opts();
  o.durability = CAIRN_DURABILITY_INTERVAL;
  o.interval_ms = 5;
  open_with(&o); /* no budget: nothing is evicted */
  for (uint32_t i = 0; i < EV_KEYS; i++) put_gen(NULL, "e", i, 1, EV_VLEN, NULL);
  checkpoint_ok();
  struct cairn_stats st = stats();
  cr_assert_eq(st.entries, EV_KEYS);
  cr_assert_eq(st.max_memory, 0);
  uint64_t budget = st.memory_bytes / 4;
  cr_assert_eq(cairn_set_max_memory(db, budget), 0);
  uint64_t mem = wait_memory_at_most(budget);
  cr_assert_leq(mem, budget, "memory stays at %" PRIu64 " > %" PRIu64, mem,
                budget);
  st = stats();
  cr_assert_eq(st.max_memory, budget);
  cr_assert_gt(st.evictions, 0);
  /* Reads go through to the store and keep to the budget. */
  for (uint32_t i = 0; i < EV_KEYS; i += 7) expect_gen(NULL, "e", i, 1, EV_VLEN);
  mem = wait_memory_at_most(budget);
  cr_assert_leq(mem, budget);
  /* Unbounded again: what is read stays. */
  cr_assert_eq(cairn_set_max_memory(db, 0), 0);
  uint64_t evicted = stats().evictions;
  for (uint32_t i = 0; i < EV_KEYS; i++) expect_gen(NULL, "e", i, 1, EV_VLEN);
  st = stats();
  cr_assert_eq(st.entries, EV_KEYS, "every entry read back stays in memory");
  cr_assert_eq(st.evictions, evicted);
  cr_assert_eq(cairn_set_max_memory(NULL, 1), CAIRN_EINVAL);
}

/* ----------------------------------------------------------------------
 * Misses
 * ------------------------------------------------------------------- */

Test(ckpt, a_missing_key_costs_one_store_lookup) {
  cairn_options o = opts();
  open_with(&o);
  for (uint32_t i = 0; i < 100; i++) put_gen(NULL, "m", i, 1, 50, NULL);
  checkpoint_ok();
  struct cairn_stats st = stats();
  uint64_t reads = st.store_reads;
  for (uint32_t i = 0; i < 50; i++) {
    expect_gen(NULL, "absent", i, 0, 0);
    st = stats();
    cr_assert_eq(st.store_reads, reads + 1, "get %u of a missing key", i);
    reads = st.store_reads;
  }
  /* A miss is not remembered: asking again costs the lookup again. */
  expect_gen(NULL, "absent", 0, 0, 0);
  cr_assert_eq(stats().store_reads, reads + 1);
  reads++;
  /* A key deleted since the checkpoint is answered by its tombstone. */
  del_key(NULL, "m", 3);
  reads = stats().store_reads;
  expect_gen(NULL, "m", 3, 0, 0);
  cr_assert_eq(stats().store_reads, reads);
  /* Keys in memory cost nothing either. */
  expect_gen(NULL, "m", 4, 1, 50);
  cr_assert_eq(stats().store_reads, reads);
}

/* Admission (db_admit) is filtered only once memory is nearly full: these
 * tests write AD_FILL filler entries, which a reopen leaves on disk only,
 * and read them back until reads stop being cached.  Then memory sits at
 * ADMIT_ROOM_PCT of AD_BUDGET, give or take the 64 reads between two of
 * a thread's looks at it. */
#define AD_BUDGET (1u << 20)
#define AD_FILL   8000u /* of AD_VLEN bytes: about twice the budget */
#define AD_VLEN   200u

static cairn_options ad_opts(void) {
  cairn_options o = opts();
  o.max_memory = AD_BUDGET;
  return o;
}

static void ad_write_fillers(void) {
  for (uint32_t i = 0; i < AD_FILL; i++) put_gen(NULL, "fill", i, 1, AD_VLEN, NULL);
}

/* Read the fillers back, once each, after a reopen: memory ends between
 * ADMIT_ROOM_PCT of the budget and the budget. */
static void ad_fill_memory(void) {
  for (uint32_t i = 0; i < AD_FILL; i++) expect_gen(NULL, "fill", i, 1, AD_VLEN);
  struct cairn_stats st = stats();
  cr_assert_geq(st.memory_bytes, AD_BUDGET / 100 * ADMIT_ROOM_PCT,
                "reads cached while memory had room: %" PRIu64 " bytes",
                st.memory_bytes);
  cr_assert_leq(st.memory_bytes, AD_BUDGET,
                "then stopped short of the budget, with half the fillers "
                "read: %" PRIu64 " bytes", st.memory_bytes);
}

/* Key tag+i (generation 1, len bytes) is served from memory: no store
 * lookup. */
static void expect_in_memory(const char *tag, uint32_t i, size_t len) {
  uint64_t reads = stats().store_reads;
  expect_gen(NULL, tag, i, 1, len);
  cr_assert_eq(stats().store_reads, reads, "%s%" PRIu32 " served from memory",
               tag, i);
}

Test(ckpt, a_read_from_the_store_is_cached_while_memory_has_room) {
  cairn_options o = ad_opts();
  open_with(&o);
  put_gen(NULL, "a", 1, 1, 100, NULL);
  checkpoint_ok();
  reopen_with(&o);
  cr_assert_eq(stats().entries, 0);
  expect_gen(NULL, "a", 1, 1, 100);
  cr_assert_eq(stats().entries, 1, "read once: cached");
  expect_in_memory("a", 1, 100);
}

Test(ckpt, with_memory_nearly_full_a_key_read_once_is_not_cached_but_again_is) {
  cairn_options o = ad_opts();
  open_with(&o);
  ad_write_fillers();
  for (uint32_t i = 0; i < 1000; i++) put_gen(NULL, "once", i, 1, 50, NULL);
  put_gen(NULL, "a", 1, 1, 100, NULL);
  checkpoint_ok();
  reopen_with(&o);
  ad_fill_memory();
  uint64_t n = stats().entries;
  for (uint32_t i = 0; i < 1000; i++) expect_gen(NULL, "once", i, 1, 50);
  /* Only a key whose doorkeeper bit another key set may get in. */
  uint64_t m = stats().entries;
  cr_assert_leq(m, n + 10, "%" PRIu64 " of 1000 keys read once were cached",
                m - n);
  expect_gen(NULL, "a", 1, 1, 100);
  expect_gen(NULL, "a", 1, 1, 100);
  cr_assert_eq(stats().entries, m + 1, "read again: cached");
  expect_in_memory("a", 1, 100);
}

/* An entry with a max-idle is cached on its first read from the store,
 * even when memory is nearly full: its deadline moves with each read,
 * which only an entry in memory records. */
Test(ckpt, a_cold_read_caches_an_entry_with_a_max_idle) {
  cairn_options o = ad_opts();
  open_with(&o);
  ad_write_fillers();
  cairn_write idle = {.flags = CAIRN_W_MAX_IDLE, .max_idle_ms = 600000};
  put_str(NULL, "session", "idle-bound", &idle);
  put_str(NULL, "token", "lifespan-bound", &(cairn_write){.ttl_ms = 600000});
  put_str(NULL, "plain", "forever", NULL);
  reopen_with(&o); /* checkpoints; memory starts empty */
  ad_fill_memory();
  uint64_t n = stats().entries;
  expect_str(NULL, "plain", "forever");
  expect_str(NULL, "token", "lifespan-bound");
  cr_assert_eq(stats().entries, n, "a first read is not cached");
  uint64_t before = stats().store_reads;
  expect_str(NULL, "session", "idle-bound");
  cr_assert_eq(stats().entries, n + 1, "the max-idle entry is cached");
  cr_assert_eq(stats().store_reads, before + 1, "by one store lookup");
  uint64_t reads = stats().store_reads;
  expect_str(NULL, "session", "idle-bound");
  cr_assert_eq(stats().store_reads, reads, "and read from memory after");
}

/* ----------------------------------------------------------------------
 * Expiry of entries that only the store holds
 * ------------------------------------------------------------------- */

#define EX_TTL_MS 300u

Test(ckpt, an_entry_only_on_disk_expires) {
  cairn_options o = opts();
  /* Until it is on disk, nothing may reclaim it, however slow the writes. */
  o.flags = CAIRN_OPEN_NO_EXPIRY;
  open_with(&o);
  cairn_write w = {.ttl_ms = EX_TTL_MS};
  put_str(NULL, "dying", "soon gone", &w);
  for (uint32_t i = 0; i < 20; i++) put_gen(NULL, "keep", i, 1, 100, NULL);
  o.flags = 0;
  reopen_with(&o); /* checkpoints; memory starts empty */
  struct cairn_stats st = stats();
  cr_assert_eq(st.entries, 0);
  cr_assert_eq(st.disk_entries, 21);
  uint64_t expired = st.expired;
  /* Nothing reads "dying": the sweep must find it in the store's index. */
  for (unsigned ms = 0; st.expired == expired && ms < WAIT_MS_MAX; ms += 10) {
    sleep_ms(10);
    st = stats();
  }
  cr_assert_eq(st.expired, expired + 1, "the sweep reclaimed %" PRIu64,
               st.expired - expired);
  expect_str(NULL, "dying", NULL);
  checkpoint_ok();
  reopen_with(&o);
  st = stats();
  cr_assert_eq(st.disk_entries, 20);
  expect_str(NULL, "dying", NULL);
  for (uint32_t i = 0; i < 20; i++) expect_gen(NULL, "keep", i, 1, 100);
}

/* Many entries die while only the store holds them, more than the sweep
 * takes from the store's index in one tick.  The ones it has reclaimed
 * stay in that index until the next checkpoint deletes them: the sweep
 * must go on past them, not take the same first ones again each tick. */
#define EX_MANY 1000u

/* What each tick of the maintenance thread had reclaimed at its end, from
 * the first that reclaimed any. */
static uint64_t tick_expired[64];
static unsigned tick_n;

static void record_tick(int point) {
  unsigned n = __atomic_load_n(&tick_n, __ATOMIC_ACQUIRE);
  struct cairn_stats st;
  if (point != SYS_HOOK_EXPIRE_TICK || n == 64 || cairn_stats(db, &st) != 0 ||
      st.expired == 0)
    return;
  tick_expired[n] = st.expired;
  __atomic_store_n(&tick_n, n + 1, __ATOMIC_RELEASE);
}

Test(ckpt, entries_only_on_disk_expire_without_waiting_for_a_checkpoint) {
  cairn_options o = opts();
  o.flags = CAIRN_OPEN_NO_EXPIRY;
  open_with(&o);
  cairn_write w = {.ttl_ms = EX_TTL_MS};
  for (uint32_t i = 0; i < EX_MANY; i++) put_gen(NULL, "dying", i, 1, 20, &w);
  put_str(NULL, "keep", "here", NULL);
  sleep_ms(EX_TTL_MS + 50); /* all dead before a sweep can run */
  o.flags = 0;
  reopen_with(&o); /* checkpoints; memory starts empty */
  sys_ops.test_hook = record_tick;
  struct cairn_stats st = stats();
  cr_assert_eq(st.disk_entries, EX_MANY + 1);
  uint64_t ckpts = st.checkpoints;
  for (unsigned ms = 0; st.expired < EX_MANY && ms < WAIT_MS_MAX; ms += 10) {
    sleep_ms(10);
    st = stats();
  }
  sys_ops.test_hook = NULL;
  cr_assert_eq(st.checkpoints, ckpts, "no checkpoint ran meanwhile");
  cr_assert_eq(st.expired, EX_MANY, "the sweep reclaimed %" PRIu64 " of %u",
               st.expired, EX_MANY);
  /* As many as expire_scan_max a tick: the first tick takes them all. */
  cr_assert_geq(__atomic_load_n(&tick_n, __ATOMIC_ACQUIRE), 1);
  cr_assert_eq(tick_expired[0], EX_MANY, "the first tick reclaimed %" PRIu64,
               tick_expired[0]);
  checkpoint_ok();
  cr_assert_eq(stats().disk_entries, 1);
  expect_str(NULL, "keep", "here");
}

/* Before the sweep gets to it, an expired entry of the store is already
 * hidden from reads. */
Test(ckpt, an_expired_entry_on_disk_is_hidden_before_it_is_reclaimed) {
  cairn_options o = opts();
  o.flags = CAIRN_OPEN_NO_EXPIRY;
  open_with(&o);
  cairn_write w = {.ttl_ms = 100};
  put_str(NULL, "dying", "soon gone", &w);
  put_str(NULL, "keep", "here", NULL);
  reopen_with(&o);
  sleep_ms(150);
  expect_str(NULL, "dying", NULL);
  expect_str(NULL, "keep", "here");
  struct cairn_stats st = stats();
  cr_assert_eq(st.expired, 0);
  cr_assert_eq(st.disk_entries, 2, "%" PRIu64 " entries on disk",
               st.disk_entries);
}

/* ----------------------------------------------------------------------
 * Scans over memory and the store
 * ------------------------------------------------------------------- */

/* Key groups by first letter, with what a scan must see of them. */
#define SC_DISK   100u /* d: checkpointed, untouched */
#define SC_BOTH    50u /* b: checkpointed, then overwritten (gen 2) */
#define SC_GONE    30u /* x: checkpointed, then deleted */
#define SC_OLD     20u /* o: checkpointed with a lifespan that passes */
#define SC_MEM     60u /* m: written after the reopen */
#define SC_TMP     10u /* t: written after the reopen, lifespan passes */
#define SC_WARM    10u /* d0..d9 are read, so memory holds them too */
#define SC_VLEN    40u

struct seen {
  uint8_t d[SC_DISK], b[SC_BOTH], m[SC_MEM];
  unsigned other; /* keys that must not appear */
  unsigned bad;   /* wrong values */
  unsigned n;
};

static int sc_visit(void *arg, const void *key, size_t klen, const void *val,
                    size_t vlen, uint64_t version, int64_t expire_at_ms) {
  (void)version, (void)expire_at_ms;
  struct seen *s = arg;
  char k[KEY_CAP], v[VALUE_CAP];
  unsigned i;
  s->n++;
  if (klen < 2 || klen >= KEY_CAP) {
    s->other++;
    return 0;
  }
  memcpy(k, key, klen);
  k[klen] = '\0';
  if (sscanf(k + 1, "%u", &i) != 1) {
    s->other++;
    return 0;
  }
  uint8_t *slot = NULL;
  uint32_t gen = 1;
  if (k[0] == 'd' && i < SC_DISK) slot = &s->d[i];
  else if (k[0] == 'b' && i < SC_BOTH) slot = &s->b[i], gen = 2;
  else if (k[0] == 'm' && i < SC_MEM) slot = &s->m[i];
  if (!slot) {
    s->other++;
    return 0;
  }
  (*slot)++;
  size_t want = value_of(v, i, gen, SC_VLEN);
  if (want != vlen || memcmp(v, val, vlen) != 0) s->bad++;
  return 0;
}

static struct seen *sc_run(const char *prefix, size_t count) {
  static struct seen s;
  memset(&s, 0, sizeof s);
  uint64_t cursor = 0;
  unsigned calls = 0;
  do {
    int rc = cairn_scan(db, NULL, prefix, prefix ? strlen(prefix) : 0,
                        &cursor, count, sc_visit, &s);
    cr_assert_eq(rc, 0, "scan: %s", cairn_strerror(rc));
    cr_assert_lt(++calls, 100000u, "the scan does not end");
  } while (cursor != 0);
  cr_assert_eq(s.other, 0, "the scan found %u keys that are not live",
               s.other);
  cr_assert_eq(s.bad, 0, "the scan found %u stale values", s.bad);
  return &s;
}

static void sc_expect(const uint8_t *seen, unsigned n, unsigned lo,
                      unsigned hi, const char *what) {
  for (unsigned i = 0; i < n; i++)
    cr_assert_eq(seen[i], i >= lo && i < hi, "%s%u visited %u times", what, i,
                 seen[i]);
}

Test(ckpt, scans_merge_memory_and_the_store) {
  cairn_options o = opts();
  /* No background expiry: dead entries stay, and the scan must skip them. */
  o.flags = CAIRN_OPEN_NO_EXPIRY;
  open_with(&o);
  cairn_write brief = {.ttl_ms = 200};
  for (uint32_t i = 0; i < SC_DISK; i++) put_gen(NULL, "d", i, 1, SC_VLEN, NULL);
  for (uint32_t i = 0; i < SC_BOTH; i++) put_gen(NULL, "b", i, 1, SC_VLEN, NULL);
  for (uint32_t i = 0; i < SC_GONE; i++) put_gen(NULL, "x", i, 1, SC_VLEN, NULL);
  for (uint32_t i = 0; i < SC_OLD; i++) put_gen(NULL, "o", i, 1, SC_VLEN, &brief);
  reopen_with(&o);
  cr_assert_eq(stats().entries, 0);
  cr_assert_eq(stats().disk_entries, SC_DISK + SC_BOTH + SC_GONE + SC_OLD);
  for (uint32_t i = 0; i < SC_BOTH; i++) put_gen(NULL, "b", i, 2, SC_VLEN, NULL);
  for (uint32_t i = 0; i < SC_GONE; i++) del_key(NULL, "x", i);
  for (uint32_t i = 0; i < SC_MEM; i++) put_gen(NULL, "m", i, 1, SC_VLEN, NULL);
  for (uint32_t i = 0; i < SC_TMP; i++) put_gen(NULL, "t", i, 1, SC_VLEN, &brief);
  for (uint32_t i = 0; i < SC_WARM; i++) expect_gen(NULL, "d", i, 1, SC_VLEN);
  sleep_ms(250); /* past both lifespans */
  struct cairn_stats st = stats();
  cr_assert_gt(st.disk_entries, 0);
  cr_assert_gt(st.entries, 0);

  static const size_t counts[] = {1, 7, 1000};
  for (size_t c = 0; c < sizeof counts / sizeof *counts; c++) {
    struct seen *s = sc_run(NULL, counts[c]);
    sc_expect(s->d, SC_DISK, 0, SC_DISK, "d");
    sc_expect(s->b, SC_BOTH, 0, SC_BOTH, "b");
    sc_expect(s->m, SC_MEM, 0, SC_MEM, "m");
    cr_assert_eq(s->n, SC_DISK + SC_BOTH + SC_MEM);
  }
  struct seen *s = sc_run("d1", 5); /* d1, d10..d19: only the store */
  for (unsigned i = 0; i < SC_DISK; i++)
    cr_assert_eq(s->d[i], i == 1 || (i >= 10 && i < 20), "d%u visited %u "
                 "times", i, s->d[i]);
  cr_assert_eq(s->n, 11);
  s = sc_run("b", 3); /* both: the memory version wins */
  sc_expect(s->b, SC_BOTH, 0, SC_BOTH, "b");
  cr_assert_eq(s->n, SC_BOTH);
  cr_assert_eq(sc_run("x", 3)->n, 0, "deleted keys appear");
  cr_assert_eq(sc_run("o", 3)->n, 0, "expired keys appear");
  cr_assert_eq(sc_run("t", 3)->n, 0, "expired keys appear");
  s = sc_run("m", 4);
  sc_expect(s->m, SC_MEM, 0, SC_MEM, "m");
}

/* ----------------------------------------------------------------------
 * The store's size
 * ------------------------------------------------------------------- */

#define BIG_KEYS  20000u
#define BIG_VLEN  1000u

Test(ckpt, a_store_holds_twenty_megabytes) {
  cairn_options o = opts();
  o.durability = CAIRN_DURABILITY_INTERVAL;
  o.interval_ms = 5;
  o.map_bytes_max = 64ull << 20;
  open_with(&o);
  for (uint32_t i = 0; i < BIG_KEYS; i++) put_gen(NULL, "g", i, 1, BIG_VLEN, NULL);
  checkpoint_ok();
  struct cairn_stats st = stats();
  cr_assert_eq(st.disk_entries, BIG_KEYS);
  cr_assert_eq(st.checkpoint_lsn, st.last_lsn);
  reopen_with(&o);
  cr_assert_eq(stats().recovered_records, 0);
  for (uint32_t i = 0; i < BIG_KEYS; i += 13) expect_gen(NULL, "g", i, 1, BIG_VLEN);
}

#define FULL_KEYS  5000u
#define FULL_VLEN  1000u
#define FULL_KEEP  800u  /* keys left after making room: fit in 2 MiB */

static void full_expect_all(uint32_t deleted_below) {
  for (uint32_t i = 0; i < FULL_KEYS; i++)
    expect_gen(NULL, "f", i, i < deleted_below ? 0 : 1, FULL_VLEN);
}

Test(ckpt, a_full_store_refuses_growing_writes_until_a_checkpoint_fits) {
  cairn_options o = opts();
  o.durability = CAIRN_DURABILITY_INTERVAL;
  o.interval_ms = 5;
  o.map_bytes_max = 2u << 20;
  open_with(&o);
  for (uint32_t i = 0; i < FULL_KEYS; i++) put_gen(NULL, "f", i, 1, FULL_VLEN, NULL);
  cr_assert_eq(cairn_sync(db), 0);
  cr_assert_eq(cairn_checkpoint(db), CAIRN_EFULL);
  struct cairn_stats st = stats();
  cr_assert_eq(st.checkpoint_lsn, 0);
  cr_assert_geq(st.log_segments, 5, "the log was recycled");

  /* Growing writes are refused; deletes go on. */
  char v[VALUE_CAP];
  size_t vlen = value_of(v, 0, 7, 100);
  cr_assert_eq(cairn_put(db, NULL, "new", 3, v, vlen, NULL), CAIRN_EFULL);
  cr_assert_eq(cairn_put(db, NULL, "f1", 2, v, vlen, NULL), CAIRN_EFULL);
  cr_assert_eq(cairn_incr(db, NULL, "ctr", 3, 1, NULL, NULL), CAIRN_EFULL);
  cairn_write ttl = {.ttl_ms = HOUR_MS, .flags = CAIRN_W_TTL};
  cr_assert_eq(cairn_expire(db, NULL, "f1", 2, &ttl), CAIRN_EFULL);
  cairn_batch *b;
  cr_assert_eq(cairn_batch_new(db, &b), 0);
  cr_assert_eq(cairn_batch_put(b, NULL, "new", 3, v, vlen, NULL), 0);
  cr_assert_eq(cairn_batch_commit(b, NULL), CAIRN_EFULL);
  cairn_batch_free(b);
  del_key(NULL, "f", 0);
  full_expect_all(1);
  expect_str(NULL, "new", NULL);
  expect_str(NULL, "ctr", NULL);
  cr_assert_eq(deadline_of(NULL, "f1"), 0);

  /* The log still holds everything: a restart loses nothing (the check-
   * point at close fails too, and the one after the open). */
  reopen_with(&o);
  full_expect_all(1);
  st = stats();
  cr_assert_eq(st.recovered_records, FULL_KEYS + 1);

  /* Deleting makes room; then a checkpoint fits and writes go on. */
  for (uint32_t i = 1; i < FULL_KEYS - FULL_KEEP; i++) del_key(NULL, "f", i);
  checkpoint_ok();
  st = stats();
  cr_assert_eq(st.disk_entries, FULL_KEEP);
  cr_assert_eq(cairn_put(db, NULL, "new", 3, v, vlen, NULL), 0);
  cr_assert_eq(cairn_incr(db, NULL, "ctr", 3, 1, NULL, NULL), 0);
  reopen_with(&o);
  full_expect_all(FULL_KEYS - FULL_KEEP);
  expect_kv(NULL, "new", 3, v, vlen);
  expect_str(NULL, "ctr", "1");
}

/* ----------------------------------------------------------------------
 * MEMORY namespaces
 * ------------------------------------------------------------------- */

Test(ckpt, a_memory_namespace_never_touches_the_store) {
  cairn_options o = opts();
  o.max_memory = 64u << 10; /* small: MEMORY entries are never evicted */
  open_with(&o);
  cairn_ns_options cache = {.durability = CAIRN_DURABILITY_MEMORY};
  cr_assert_eq(cairn_ns_define(db, "cache", &cache), 0);
  for (uint32_t i = 0; i < 10; i++) put_gen(NULL, "disk", i, 1, 50, NULL);
  for (uint32_t i = 0; i < 1000; i++) put_gen("cache", "c", i, 1, 200, NULL);
  checkpoint_ok();
  sleep_ms(50); /* a few maintenance ticks over the budget */
  struct cairn_stats st = stats();
  cr_assert_eq(st.disk_entries, 10);
  uint64_t reads = st.store_reads;
  for (uint32_t i = 0; i < 1000; i++) expect_gen("cache", "c", i, 1, 200);
  for (uint32_t i = 0; i < 100; i++) expect_gen("cache", "absent", i, 0, 0);
  char k[KEY_CAP];
  key_of(k, "c", 5);
  cr_assert_eq(cairn_del(db, "cache", k, strlen(k), NULL), 0);
  expect_gen("cache", "c", 5, 0, 0);
  cr_assert_eq(cairn_incr(db, "cache", "n", 1, 2, NULL, NULL), 0);
  st = stats();
  cr_assert_eq(st.store_reads, reads, "the MEMORY namespace read the store");
  checkpoint_ok();
  cr_assert_eq(stats().disk_entries, 10);

  reopen_with(&o);
  cr_assert_eq(cairn_ns_define(db, "cache", &cache), 0);
  st = stats();
  cr_assert_eq(st.disk_entries, 10);
  reads = st.store_reads;
  for (uint32_t i = 0; i < 100; i++) expect_gen("cache", "c", i, 0, 0);
  cr_assert_eq(stats().store_reads, reads);
}

/* ----------------------------------------------------------------------
 * Pacing: the size of a checkpoint's LMDB transactions
 * -------------------------------------------------------------------- */

Test(ckpt, a_slow_commit_shrinks_the_next_transaction_and_a_quick_one_grows_it) {
  size_t k = 4096;
  cr_expect_eq(ckpt_txn_keys_next(k, CKPT_COMMIT_NS), k);
  cr_expect_eq(ckpt_txn_keys_next(k, 2ull * CKPT_COMMIT_NS), k / 2);
  cr_expect_eq(ckpt_txn_keys_next(k, CKPT_COMMIT_NS / 2), k * 2);
}

Test(ckpt, one_commit_moves_the_transaction_size_a_bounded_step) {
  /* A single commit that met a busy disk (or an idle one) must not throw
   * the size from one end to the other. */
  size_t k = 4096;
  cr_expect_eq(ckpt_txn_keys_next(k, 1000ull * CKPT_COMMIT_NS), k / 4);
  cr_expect_eq(ckpt_txn_keys_next(k, 1), k * 2);
  cr_expect_eq(ckpt_txn_keys_next(k, 0), k * 2);
}

Test(ckpt, the_transaction_size_stays_within_its_limits) {
  cr_expect_eq(ckpt_txn_keys_next(CKPT_TXN_KEYS_MIN, 1000ull * CKPT_COMMIT_NS),
               CKPT_TXN_KEYS_MIN);
  cr_expect_eq(ckpt_txn_keys_next(CKPT_TXN_KEYS, 1), CKPT_TXN_KEYS);
  cr_expect_eq(ckpt_txn_keys_next(CKPT_TXN_KEYS - 1, 1), CKPT_TXN_KEYS);
}

/* LMDB's count of committed write transactions in the store, read with
 * the store closed. */
static size_t store_txnid(void) {
  char path[512];
  snprintf(path, sizeof path, "%s/lmdb", dir);
  MDB_env *env;
  MDB_envinfo ei;
  cr_assert_eq(mdb_env_create(&env), 0);
  cr_assert_eq(mdb_env_set_maxdbs(env, 8), 0);
  cr_assert_eq(mdb_env_open(env, path, MDB_RDONLY | MDB_NOLOCK, 0644), 0);
  cr_assert_eq(mdb_env_info(env, &ei), 0);
  mdb_env_close(env);
  return ei.me_last_txnid;
}

#define PACED_KEYS 20000u

/* Open with o (making the store), close, and open again: returns LMDB's
 * count of write transactions in between, so that a test counts only its
 * own. */
static size_t reopen_counting_txns(const cairn_options *o) {
  open_with(o);
  cairn_close(db);
  db = NULL;
  size_t before = store_txnid();
  open_with(o);
  return before;
}

/* LMDB transactions that writing PACED_KEYS keys cost, checkpointed by
 * fn (NULL: by the close alone); the keys are checked after. */
static size_t txns_to_checkpoint(int (*fn)(cairn *)) {
  cairn_options o = opts();
  o.durability = CAIRN_DURABILITY_INTERVAL;
  size_t before = reopen_counting_txns(&o);
  for (uint32_t i = 0; i < PACED_KEYS; i++) put_gen(NULL, "p", i, 1, 100, NULL);
  if (fn) {
    cr_assert_eq(fn(db), 0);
    struct cairn_stats st = stats();
    cr_assert_eq(st.checkpoints_unpaced, fn == cairn_checkpoint_now,
                 "%" PRIu64 " of %" PRIu64 " unpaced", st.checkpoints_unpaced,
                 st.checkpoints);
  }
  cairn_close(db);
  db = NULL;
  size_t txns = store_txnid() - before;
  open_with(&o);
  for (uint32_t i = 0; i < PACED_KEYS; i += 97) expect_gen(NULL, "p", i, 1, 100);
  return txns;
}

/* Paced, a checkpoint starts with CKPT_TXN_KEYS_FIRST keys and at most
 * doubles each transaction: 20000 keys take at least seven.  Near the
 * store's size cap the same checkpoint is one transaction (see the test
 * of a full store above). */
Test(ckpt, a_large_checkpoint_goes_in_paced_transactions) {
  size_t txns = txns_to_checkpoint(cairn_checkpoint);
  cr_assert_geq(txns, 7, "%zu transactions", txns);
}

/* A checkpoint someone waits on goes unpaced, in as few transactions as
 * LMDB allows (here one, and the open's): the one at close, and
 * cairn_checkpoint_now. */
Test(ckpt, the_checkpoint_at_close_is_not_paced) {
  size_t txns = txns_to_checkpoint(NULL);
  cr_assert_leq(txns, 3, "%zu transactions", txns);
}

Test(ckpt, cairn_checkpoint_now_is_not_paced) {
  size_t txns = txns_to_checkpoint(cairn_checkpoint_now);
  cr_assert_leq(txns, 3, "%zu transactions", txns);
}

/* Entries written since the last checkpoint fill the memory budget: the
 * checkpoint that memory pressure asks for is not paced, since only it
 * makes them evictable.  Paced, this many keys would take hundreds of
 * transactions (about 20 keys each on this kind of disk). */
Test(ckpt, a_checkpoint_for_memory_pressure_is_not_paced) {
  cairn_options o = opts();
  o.durability = CAIRN_DURABILITY_INTERVAL;
  o.interval_ms = 5;
  o.max_memory = 1u << 20;
  o.checkpoint_bytes = 1ull << 40;
  o.checkpoint_interval_ms = 3600u * 1000u;
  size_t before = reopen_counting_txns(&o);
  for (uint32_t i = 0; i < PACED_KEYS; i++) put_gen(NULL, "m", i, 1, 100, NULL);
  struct cairn_stats st = stats();
  for (unsigned ms = 0; st.checkpoints == 0 && ms < WAIT_MS_MAX; ms += 10) {
    sleep_ms(10);
    st = stats();
  }
  cr_assert_gt(st.checkpoints, 0, "memory pressure asked for a checkpoint");
  uint64_t mem = wait_memory_at_most(o.max_memory);
  cr_assert_leq(mem, o.max_memory, "memory back under its budget");
  cairn_close(db);
  db = NULL;
  size_t txns = store_txnid() - before;
  cr_assert_lt(txns, 100, "%zu transactions", txns);
  cr_assert_geq(st.checkpoints_unpaced, 1);
  open_with(&o);
  for (uint32_t i = 0; i < PACED_KEYS; i += 97) expect_gen(NULL, "m", i, 1, 100);
}

/* A paced checkpoint that the log outruns (checkpoint_bytes of log
 * written since it began) goes at full speed for the rest of its keys:
 * else the log, and the entries memory must keep, would grow without
 * bound.  The checkpoint is held in its third transaction while a writer
 * fills the log. */
static int hold_point, hold_armed, hold_reached, hold_go;
static pthread_t hold_spared; /* never held: the test's own thread */

/* The test hook: hold the first thread (but hold_spared) that reaches
 * hold_point, once armed, until hold_go. */
static void hold_at(int point) {
  if (point != hold_point || pthread_equal(pthread_self(), hold_spared) ||
      !__atomic_exchange_n(&hold_armed, 0, __ATOMIC_ACQ_REL))
    return;
  __atomic_store_n(&hold_reached, 1, __ATOMIC_RELEASE);
  for (unsigned ms = 0; !__atomic_load_n(&hold_go, __ATOMIC_ACQUIRE) &&
                        ms < WAIT_MS_MAX; ms++)
    sleep_ms(1);
}

/* Arm hook (hold_at, or one calling it) to hold the first other thread
 * that reaches point. */
static void hold_arm(int point, void (*hook)(int)) {
  hold_point = point;
  hold_spared = pthread_self();
  sys_ops.test_hook = hook;
  __atomic_store_n(&hold_armed, 1, __ATOMIC_RELEASE);
}

static void *checkpoint_thread(void *arg) {
  (void)arg;
  return (void *)(intptr_t)cairn_checkpoint(db);
}

/* ----------------------------------------------------------------------
 * The write stall
 * ------------------------------------------------------------------- */

#define ST_KEYS 8000u /* of ST_VLEN bytes: some eight times AD_BUDGET */
#define ST_VLEN 1000u

static int stall_rc; /* the first error of stall_writer */

static void *stall_writer(void *arg) {
  (void)arg;
  char k[KEY_CAP], v[VALUE_CAP];
  for (uint32_t i = 0; i < ST_KEYS && stall_rc == 0; i++) {
    size_t klen = key_of(k, "s", i), vlen = value_of(v, i, 1, ST_VLEN);
    stall_rc = cairn_put(db, NULL, k, klen, v, vlen, NULL);
  }
  return NULL;
}

static void async_done(void *arg, int rc, uint64_t lsn) {
  (void)lsn;
  __atomic_store_n((int *)arg, rc == 0 ? 1 : -1, __ATOMIC_RELEASE);
}

/* A writer that outruns the checkpoint (here, one held halfway) waits for
 * it once memory is twice its budget, instead of filling memory with
 * entries nothing may evict; reads and asynchronous writes go on. */
Test(ckpt, writes_wait_for_memory_while_the_checkpoint_is_behind) {
  cairn_options o = ad_opts();
  o.checkpoint_interval_ms = HOUR_MS;
  open_with(&o);
  hold_arm(SYS_HOOK_CKPT_MID_TXN, hold_at);
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, stall_writer, NULL), 0);
  struct cairn_stats st = stats();
  for (unsigned ms = 0; (st.write_stalls == 0 ||
                         !__atomic_load_n(&hold_reached, __ATOMIC_ACQUIRE)) &&
                        ms < WAIT_MS_MAX; ms += 10) {
    sleep_ms(10);
    st = stats();
  }
  int held = __atomic_load_n(&hold_reached, __ATOMIC_ACQUIRE);
  sleep_ms(100); /* the writer waits: memory stays where it stopped */
  struct cairn_stats waiting = stats();
  expect_gen(NULL, "s", 0, 1, ST_VLEN);
  int done = 0;
  char v[ST_VLEN];
  memset(v, 'a', sizeof v);
  cairn_write w = {.done = async_done, .done_arg = &done};
  int async_rc = cairn_put(db, NULL, "async", 5, v, sizeof v, &w);
  uint64_t stalls_after_async = stats().write_stalls;
  __atomic_store_n(&hold_go, 1, __ATOMIC_RELEASE);
  pthread_join(th, NULL);
  sys_ops.test_hook = NULL;

  cr_assert(held, "a checkpoint was held halfway");
  cr_assert_geq(waiting.write_stalls, 1, "the writer waited");
  cr_assert_leq(waiting.memory_bytes, 2 * AD_BUDGET + AD_BUDGET / 4,
                "memory stopped near twice the budget: %" PRIu64 " bytes",
                waiting.memory_bytes);
  cr_assert_lt(waiting.puts, ST_KEYS, "the writer stopped at %" PRIu64,
               waiting.puts);
  cr_assert_eq(async_rc, 0);
  cr_assert_eq(stalls_after_async, waiting.write_stalls,
               "an asynchronous write does not wait");
  cr_assert_eq(stall_rc, 0, "%s", cairn_strerror(stall_rc));
  cr_assert_eq(cairn_sync(db), 0);
  for (unsigned ms = 0; !__atomic_load_n(&done, __ATOMIC_ACQUIRE) &&
                        ms < WAIT_MS_MAX; ms += 10)
    sleep_ms(10);
  cr_assert_eq(__atomic_load_n(&done, __ATOMIC_ACQUIRE), 1);
  for (uint32_t i = 0; i < ST_KEYS; i++) expect_gen(NULL, "s", i, 1, ST_VLEN);
}

Test(ckpt, a_paced_checkpoint_the_log_outruns_goes_unpaced) {
  cairn_options o = opts();
  o.durability = CAIRN_DURABILITY_INTERVAL;
  o.checkpoint_bytes = 1u << 20;
  o.checkpoint_interval_ms = HOUR_MS;
  open_with(&o);
  /* 2000 keys: paced transactions of 256, 512, then one holding the
   * middle key (the hook's point). */
  for (uint32_t i = 0; i < 2000; i++) put_gen(NULL, "b", i, 1, 100, NULL);
  cr_assert_eq(cairn_sync(db), 0); /* a checkpoint stops at the durable end */
  cr_assert_eq(stats().checkpoints, 0);
  hold_arm(SYS_HOOK_CKPT_MID_TXN, hold_at);
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, checkpoint_thread, NULL), 0);
  for (unsigned ms = 0; !__atomic_load_n(&hold_reached, __ATOMIC_ACQUIRE) &&
                        ms < WAIT_MS_MAX; ms += 10)
    sleep_ms(10);
  int reached = __atomic_load_n(&hold_reached, __ATOMIC_ACQUIRE);
  /* Twice checkpoint_bytes of values that do not compress. */
  uint64_t log0 = stats().log_bytes;
  for (uint32_t i = 0; reached && stats().log_bytes - log0 < 2 * o.checkpoint_bytes;
       i++)
    put_gen(NULL, "w", i, 1, 2000, NULL);
  __atomic_store_n(&hold_go, 1, __ATOMIC_RELEASE);
  void *ret;
  pthread_join(th, &ret);
  sys_ops.test_hook = NULL;
  cr_assert(reached, "the checkpoint reached its middle key");
  cr_assert_eq((intptr_t)ret, 0);
  struct cairn_stats st = stats();
  cr_assert_geq(st.checkpoints, 1);
  cr_assert_eq(st.checkpoints_unpaced, 1, "%" PRIu64 " of %" PRIu64,
               st.checkpoints_unpaced, st.checkpoints);
  reopen_with(&o);
  for (uint32_t i = 0; i < 2000; i += 7) expect_gen(NULL, "b", i, 1, 100);
}

/* The eviction falls behind (its thread held at the start of a visit,
 * holding the hand): reads from the store stop caching past
 * ADMIT_STOP_PCT of the budget, so memory does not grow with them. */
Test(ckpt, reads_stop_caching_while_the_eviction_is_behind) {
  cairn_options o = ad_opts();
  open_with(&o);
  ad_write_fillers();
  checkpoint_ok();
  reopen_with(&o);
  hold_arm(SYS_HOOK_EVICT, hold_at);
  /* Twice each: the second read of a key passes the doorkeeper.  Once
   * over the budget, wait for the maintenance thread to be held: past
   * EVICT_INLINE_PCT this thread would evict itself (it is never held)
   * if it won the hand first, as it could on a busy machine. */
  uint64_t peak = 0;
  for (uint32_t round = 0; round < 2; round++)
    for (uint32_t i = 0; i < AD_FILL; i++) {
      expect_gen(NULL, "fill", i, 1, AD_VLEN);
      uint64_t mem = stats().memory_bytes;
      if (mem > peak) peak = mem;
      for (unsigned ms = 0; mem > AD_BUDGET && ms < WAIT_MS_MAX &&
                            !__atomic_load_n(&hold_reached, __ATOMIC_ACQUIRE);
           ms++)
        sleep_ms(1);
    }
  int held = __atomic_load_n(&hold_reached, __ATOMIC_ACQUIRE);
  __atomic_store_n(&hold_go, 1, __ATOMIC_RELEASE);
  uint64_t after = wait_memory_at_most(AD_BUDGET);
  sys_ops.test_hook = NULL;
  cr_assert(held, "the eviction was held");
  cr_assert_leq(peak, AD_BUDGET / 100 * EV_SLACK_PCT,
                "memory peaked at %" PRIu64 " with a budget of %u", peak,
                AD_BUDGET);
  cr_assert_leq(after, AD_BUDGET, "and came back under it once released");
}

/* Past the budget with nothing in memory but unwritten entries (the
 * checkpoint that would clean them is held), a pass of the eviction finds
 * nothing.  A writer (every 64 puts) must not walk the table again until
 * a checkpoint has cleaned something, nor the maintenance thread (every
 * tick) more than once per EVICT_RETRY_MS. */
static unsigned visits_writer, visits_other;

static void count_visits_hold_ckpt(int point) {
  if (point == SYS_HOOK_EVICT)
    __atomic_add_fetch(pthread_equal(pthread_self(), hold_spared)
                           ? &visits_writer
                           : &visits_other,
                       1, __ATOMIC_RELAXED);
  hold_at(point);
}

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

Test(ckpt, past_the_budget_the_eviction_walks_once_per_checkpoint) {
  cairn_options o = ad_opts();
  o.durability = CAIRN_DURABILITY_INTERVAL;
  o.checkpoint_bytes = 1ull << 40;
  o.checkpoint_interval_ms = HOUR_MS;
  open_with(&o);
  hold_arm(SYS_HOOK_CKPT_MID_TXN, count_visits_hold_ckpt);
  /* Four times the budget, all of it dirty.  Past twice the budget a put
   * waits for memory, here until the wait times out (WRITE_STALL_NS_MAX),
   * the checkpoint being held; then the writes go on. */
  uint64_t t0 = mono_ms();
  for (uint32_t i = 0; i < 4 * AD_FILL; i++) put_gen(NULL, "w", i, 1, AD_VLEN, NULL);
  uint64_t ms = mono_ms() - t0;
  /* The wait timed out, for asynchronous writers too (cairnd's clients
   * would otherwise be held for as long as the checkpoint is stuck). */
  int stalled = cairn_write_stalled(db);
  uint64_t stalls = stats().write_stalls;
  int held = __atomic_load_n(&hold_reached, __ATOMIC_ACQUIRE);
  unsigned writer = __atomic_load_n(&visits_writer, __ATOMIC_RELAXED);
  unsigned other = __atomic_load_n(&visits_other, __ATOMIC_RELAXED);
  __atomic_store_n(&hold_go, 1, __ATOMIC_RELEASE);
  checkpoint_ok();
  sys_ops.test_hook = NULL;
  cr_assert(held, "a checkpoint asked for by memory was held");
  cr_assert_geq(stalls, 1, "writes waited, until the wait timed out");
  cr_assert_eq(stalled, 0, "then writes were no longer held back");
  /* A pass goes at most twice round (evict_locked's bound). */
  unsigned pass = 3 * TABLE_SHARDS + 2 * (4 * AD_FILL / EVICT_BATCH);
  cr_assert_leq(writer, pass, "the writer made %u visits of the hand", writer);
  /* One pass a EVICT_RETRY_MS, and a pass or two at the ends. */
  cr_assert_leq(other, pass * (3 + ms / EVICT_RETRY_MS),
                "the maintenance thread made %u visits in %" PRIu64 " ms",
                other, ms);
}
