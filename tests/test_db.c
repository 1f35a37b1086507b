/*
 * test_db.c - the public API: semantics of every call, on a real directory.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cairn.h"
#include "testutil.h"

static char dir[256];
static cairn *db;

static cairn_options opts(void) {
  cairn_options o;
  cairn_options_init(&o);
  o.log_fn = tu_quiet;
  o.segment_bytes = 1 << 20;
  o.expire_tick_ms = 10;
  return o;
}

static void reopen(void) {
  cairn_close(db);
  cairn_options o = opts();
  cr_assert_eq(cairn_open(dir, &o, &db), 0);
}

/* Run body in a child that opens the database and exits without closing
 * it, so without the checkpoint a close makes: the log stays as a crash
 * leaves it.  The parent's handle is closed first.  body returns the
 * child's exit status, which must be 0. */
static void in_crashing_child(int (*body)(cairn *c, void *arg), void *arg) {
  cairn_close(db);
  db = NULL;
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    cairn *c;
    cairn_options o = opts();
    if (cairn_open(dir, &o, &c) != 0) _exit(100);
    _exit(body(c, arg));
  }
  int status;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: %d",
            status);
}

static void setup(void) {
  tu_tmpdir(dir, sizeof dir, "db");
  cairn_options o = opts();
  cr_assert_eq(cairn_open(dir, &o, &db), 0);
}

static void teardown(void) {
  cairn_close(db);
  db = NULL;
  tu_rmrf(dir);
}

TestSuite(db, .init = setup, .fini = teardown, .timeout = 60);

static void put(const char *ns, const char *k, const char *v) {
  cr_assert_eq(cairn_put(db, ns, k, strlen(k), v, strlen(v), NULL), 0);
}

static void expect(const char *ns, const char *k, const char *v) {
  cairn_value out;
  int rc = cairn_get(db, ns, k, strlen(k), &out);
  if (!v) {
    cr_assert_eq(rc, CAIRN_ENOTFOUND, "%s should be absent", k);
    return;
  }
  cr_assert_eq(rc, 0, "%s: %s", k, cairn_strerror(rc));
  cr_assert_eq(out.len, strlen(v));
  cr_assert_str_eq(out.data, v);
  cairn_value_free(&out);
}

Test(db, put_get_del_round_trip_and_survive_reopen) {
  put(NULL, "a", "1");
  put("sessions", "a", "2");
  expect(NULL, "a", "1");
  expect("sessions", "a", "2");
  cr_assert_eq(cairn_del(db, NULL, "a", 1, NULL), 0);
  cr_assert_eq(cairn_del(db, NULL, "a", 1, NULL), CAIRN_ENOTFOUND);
  expect(NULL, "a", NULL);
  reopen();
  expect(NULL, "a", NULL);
  expect("sessions", "a", "2");
}

Test(db, versions_increase_and_guard_conditional_writes) {
  cairn_value v;
  put(NULL, "k", "x");
  cr_assert_eq(cairn_get(db, NULL, "k", 1, &v), 0);
  uint64_t v1 = v.version;
  cairn_value_free(&v);
  cairn_write w = {.cond = CAIRN_IF_VERSION, .version = v1 + 1};
  cr_assert_eq(cairn_put(db, NULL, "k", 1, "y", 1, &w), CAIRN_EVERSION);
  w.version = v1;
  cr_assert_eq(cairn_put(db, NULL, "k", 1, "y", 1, &w), 0);
  cr_assert_eq(cairn_get(db, NULL, "k", 1, &v), 0);
  cr_assert_gt(v.version, v1);
  cairn_value_free(&v);
  cairn_write absent = {.cond = CAIRN_IF_ABSENT};
  cr_assert_eq(cairn_put(db, NULL, "k", 1, "z", 1, &absent), CAIRN_EEXISTS);
  cairn_write present = {.cond = CAIRN_IF_PRESENT};
  cr_assert_eq(cairn_put(db, NULL, "n", 1, "z", 1, &present), CAIRN_ENOTFOUND);
  cairn_write zero = {.cond = CAIRN_IF_VERSION, .version = 0};
  cr_assert_eq(cairn_put(db, NULL, "n", 1, "z", 1, &zero), 0);
  expect(NULL, "k", "y");
  expect(NULL, "n", "z");
}

Test(db, take_is_single_use) {
  put("codes", "c1", "alice");
  cairn_value v;
  cr_assert_eq(cairn_take(db, "codes", "c1", 2, &v, NULL), 0);
  cr_assert_str_eq(v.data, "alice");
  cairn_value_free(&v);
  cr_assert_eq(cairn_take(db, "codes", "c1", 2, &v, NULL), CAIRN_ENOTFOUND);
  reopen();
  expect("codes", "c1", NULL);
}

struct race {
  int wins;
  pthread_mutex_t mu;
};

static void *taker(void *arg) {
  struct race *r = arg;
  cairn_value v;
  if (cairn_take(db, "codes", "once", 4, &v, NULL) == 0) {
    cairn_value_free(&v);
    pthread_mutex_lock(&r->mu);
    r->wins++;
    pthread_mutex_unlock(&r->mu);
  }
  return NULL;
}

Test(db, concurrent_takes_of_one_code_have_exactly_one_winner) {
  for (int round = 0; round < 20; round++) {
    put("codes", "once", "v");
    struct race r = {0, PTHREAD_MUTEX_INITIALIZER};
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, taker, &r);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    cr_assert_eq(r.wins, 1, "round %d: %d winners", round, r.wins);
  }
}

Test(db, incr_counts_and_rejects_non_integers_and_overflow) {
  int64_t n = 0;
  cr_assert_eq(cairn_incr(db, "lf", "u", 1, 5, &n, NULL), 0);
  cr_assert_eq(n, 5);
  cr_assert_eq(cairn_incr(db, "lf", "u", 1, -7, &n, NULL), 0);
  cr_assert_eq(n, -2);
  expect("lf", "u", "-2");
  put("lf", "s", "abc");
  cr_assert_eq(cairn_incr(db, "lf", "s", 1, 1, &n, NULL), CAIRN_ENOTNUM);
  put("lf", "z", "007");
  cr_assert_eq(cairn_incr(db, "lf", "z", 1, 1, &n, NULL), CAIRN_ENOTNUM);
  put("lf", "m", "9223372036854775807");
  cr_assert_eq(cairn_incr(db, "lf", "m", 1, 1, &n, NULL), CAIRN_EOVERFLOW);
  expect("lf", "m", "9223372036854775807");
  reopen();
  expect("lf", "u", "-2");
}

Test(db, incr_sets_ttl_only_when_it_creates_the_counter) {
  cairn_write w = {.ttl_ms = 3600 * 1000};
  int64_t n;
  cr_assert_eq(cairn_incr(db, "lf", "c", 1, 1, &n, &w), 0);
  cairn_value v;
  cr_assert_eq(cairn_get(db, "lf", "c", 1, &v), 0);
  int64_t exp = v.expire_at_ms;
  cr_assert_gt(exp, 0);
  cairn_value_free(&v);
  cairn_write w2 = {.ttl_ms = 10 * 3600 * 1000};
  cr_assert_eq(cairn_incr(db, "lf", "c", 1, 1, &n, &w2), 0);
  cr_assert_eq(cairn_get(db, "lf", "c", 1, &v), 0);
  cr_assert_eq(v.expire_at_ms, exp);
  cairn_value_free(&v);
}

Test(db, expired_entries_are_never_returned_and_are_reclaimed) {
  cairn_write w = {.ttl_ms = 50};
  for (int i = 0; i < 100; i++) {
    char k[16];
    snprintf(k, sizeof k, "s%d", i);
    cr_assert_eq(cairn_put(db, "sessions", k, strlen(k), "v", 1, &w), 0);
  }
  put("sessions", "keep", "v");
  usleep(80 * 1000);
  expect("sessions", "s1", NULL);
  cairn_write absent = {.cond = CAIRN_IF_ABSENT};
  cr_assert_eq(cairn_put(db, "sessions", "s2", 2, "new", 3, &absent), 0);
  struct cairn_stats st;
  for (int i = 0; i < 200; i++) { /* the sweep runs every 10 ms */
    cr_assert_eq(cairn_stats(db, &st), 0);
    if (st.expired >= 99) break;
    usleep(10 * 1000);
  }
  cr_assert_geq(st.expired, 99);
  /* The deletions leave tombstones until a checkpoint carries them into
   * the store; then the sweep drops them too. */
  cr_assert_eq(cairn_checkpoint(db), 0);
  for (int i = 0; i < 200; i++) {
    cr_assert_eq(cairn_stats(db, &st), 0);
    if (st.entries == 2) break;
    usleep(10 * 1000);
  }
  cr_assert_eq(st.entries, 2, "entries %lu", (unsigned long)st.entries);
  cr_assert_eq(st.disk_entries, 2);
  reopen();
  cr_assert_eq(cairn_stats(db, &st), 0);
  cr_assert_eq(st.disk_entries, 2);
  expect("sessions", "s2", "new");
  expect("sessions", "keep", "v");
  expect("sessions", "s3", NULL);
}

Test(db, max_idle_slides_with_reads) {
  cairn_write w = {.max_idle_ms = 300};
  cr_assert_eq(cairn_put(db, NULL, "idle", 4, "v", 1, &w), 0);
  cr_assert_eq(cairn_put(db, NULL, "idle2", 5, "v", 1, &w), 0);
  for (int i = 0; i < 5; i++) { /* 500 ms in all, read every 100 ms */
    usleep(100 * 1000);
    expect(NULL, "idle", "v");
  }
  expect(NULL, "idle2", NULL);
}

Test(db, expire_sets_and_clears_lifespan) {
  put(NULL, "e", "v");
  cairn_write w = {.ttl_ms = 40};
  cr_assert_eq(cairn_expire(db, NULL, "e", 1, &w), 0);
  cairn_write clear = {.flags = CAIRN_W_TTL, .ttl_ms = 0};
  put(NULL, "f", "v");
  cr_assert_eq(cairn_expire(db, NULL, "f", 1, &w), 0);
  cr_assert_eq(cairn_expire(db, NULL, "f", 1, &clear), 0);
  cr_assert_eq(cairn_expire(db, NULL, "none", 4, &w), CAIRN_ENOTFOUND);
  usleep(80 * 1000);
  expect(NULL, "e", NULL);
  expect(NULL, "f", "v");
  reopen();
  expect(NULL, "e", NULL);
  expect(NULL, "f", "v");
}

Test(db, namespace_defaults_apply_and_memory_namespaces_are_not_logged) {
  cairn_ns_options mem = {CAIRN_DURABILITY_MEMORY, 0, 0, 0};
  cairn_ns_options ttl = {CAIRN_DURABILITY_FSYNC, 3600 * 1000, 0, 0};
  cr_assert_eq(cairn_ns_define(db, "authenticationSessions", &mem), 0);
  cr_assert_eq(cairn_ns_define(db, "sessions", &ttl), 0);
  put("authenticationSessions", "a", "1");
  put("sessions", "s", "1");
  cairn_value v;
  cr_assert_eq(cairn_get(db, "sessions", "s", 1, &v), 0);
  cr_assert_gt(v.expire_at_ms, 0);
  cairn_value_free(&v);
  reopen();
  expect("authenticationSessions", "a", NULL);
  expect("sessions", "s", "1");
}

Test(db, batch_is_all_or_nothing) {
  put(NULL, "x", "old");
  cairn_batch *b;
  cr_assert_eq(cairn_batch_new(db, &b), 0);
  cr_assert_eq(cairn_batch_put(b, NULL, "a", 1, "1", 1, NULL), 0);
  cr_assert_eq(cairn_batch_put(b, "other", "b", 1, "2", 1, NULL), 0);
  cairn_write absent = {.cond = CAIRN_IF_ABSENT};
  cr_assert_eq(cairn_batch_put(b, NULL, "x", 1, "new", 3, &absent), 0);
  cr_assert_eq(cairn_batch_commit(b, NULL), CAIRN_EEXISTS);
  cairn_batch_free(b);
  expect(NULL, "a", NULL);
  expect("other", "b", NULL);
  expect(NULL, "x", "old");

  cr_assert_eq(cairn_batch_new(db, &b), 0);
  cr_assert_eq(cairn_batch_put(b, NULL, "a", 1, "1", 1, NULL), 0);
  cr_assert_eq(cairn_batch_put(b, "other", "b", 1, "2", 1, NULL), 0);
  cr_assert_eq(cairn_batch_del(b, NULL, "x", 1, NULL), 0);
  cr_assert_eq(cairn_batch_commit(b, NULL), 0);
  cairn_batch_free(b);
  cairn_value va, vb;
  cr_assert_eq(cairn_get(db, NULL, "a", 1, &va), 0);
  cr_assert_eq(cairn_get(db, "other", "b", 1, &vb), 0);
  cr_assert_eq(va.version, vb.version, "one batch, one LSN");
  cairn_value_free(&va);
  cairn_value_free(&vb);
  reopen();
  expect(NULL, "a", "1");
  expect("other", "b", "2");
  expect(NULL, "x", NULL);
}

struct seen {
  int count[1000];
  int total;
};

static int count_key(void *arg, const void *key, size_t klen, const void *val,
                     size_t vlen, uint64_t version, int64_t exp) {
  (void)vlen, (void)val, (void)version, (void)exp;
  struct seen *s = arg;
  char buf[16];
  cr_assert_lt(klen, sizeof buf);
  memcpy(buf, key, klen);
  buf[klen] = '\0';
  int i = atoi(buf + 1);
  s->count[i]++;
  s->total++;
  return 0;
}

Test(db, scan_visits_each_key_exactly_once_across_writes) {
  for (int i = 0; i < 1000; i++) {
    char k[16];
    snprintf(k, sizeof k, "%c%d", i % 2 ? 'o' : 'e', i);
    put("scan", k, "v");
  }
  struct seen s = {{0}, 0};
  uint64_t cursor = 0;
  int calls = 0, extra = 0;
  do {
    cr_assert_eq(cairn_scan(db, "scan", "e", 1, &cursor, 50, count_key, &s), 0);
    /* Churn between calls: new keys (which may or may not be seen) and
     * enough of them to resize shards. */
    for (int j = 0; j < 20; j++, extra++) {
      char k[16];
      snprintf(k, sizeof k, "n%d", extra);
      put("scan", k, "v");
    }
    cr_assert_lt(++calls, 10000);
  } while (cursor != 0);
  for (int i = 0; i < 1000; i += 2)
    cr_assert_eq(s.count[i], 1, "key e%d seen %d times", i, s.count[i]);
  cr_assert_eq(s.total, 500);
}

struct done_box {
  int calls, rc;
  uint64_t lsn;
};

static void on_done(void *arg, int rc, uint64_t lsn) {
  struct done_box *d = arg;
  __atomic_add_fetch(&d->calls, 1, __ATOMIC_SEQ_CST);
  d->rc = rc;
  d->lsn = lsn;
}

Test(db, async_writes_call_back_once_when_durable) {
  struct done_box d[64];
  memset(d, 0, sizeof d);
  for (int i = 0; i < 64; i++) {
    char k[16];
    snprintf(k, sizeof k, "a%d", i);
    cairn_write w = {.done = on_done, .done_arg = &d[i]};
    cr_assert_eq(cairn_put(db, NULL, k, strlen(k), "v", 1, &w), 0);
  }
  cr_assert_eq(cairn_sync(db), 0);
  for (int i = 0; i < 200; i++) {
    int all = 1;
    for (int j = 0; j < 64; j++) all &= __atomic_load_n(&d[j].calls, __ATOMIC_SEQ_CST) == 1;
    if (all) break;
    usleep(5000);
  }
  struct cairn_stats st;
  cairn_stats(db, &st);
  for (int i = 0; i < 64; i++) {
    cr_assert_eq(d[i].calls, 1);
    cr_assert_eq(d[i].rc, 0);
    cr_assert_leq(d[i].lsn, st.durable_lsn);
  }
  struct done_box bad = {0, 0, 0};
  cairn_write w = {.done = on_done, .done_arg = &bad, .cond = CAIRN_IF_ABSENT};
  cr_assert_eq(cairn_put(db, NULL, "a1", 2, "v", 1, &w), CAIRN_EEXISTS);
  usleep(20000);
  cr_assert_eq(bad.calls, 0, "a failed call never calls back");
}

Test(db, limits_and_bad_arguments_give_einval) {
  static char big[CAIRN_KEY_MAX + 1];
  cr_assert_eq(cairn_put(db, NULL, big, sizeof big, "v", 1, NULL), CAIRN_EINVAL);
  cr_assert_eq(cairn_put(db, NULL, big, CAIRN_KEY_MAX, "v", 1, NULL), 0);
  cr_assert_eq(cairn_put(db, NULL, "k", 0, "v", 1, NULL), CAIRN_EINVAL);
  cr_assert_eq(cairn_put(db, NULL, "k", 1, big, (size_t)CAIRN_VALUE_MAX + 1, NULL),
               CAIRN_EINVAL);
  char ns[CAIRN_NS_MAX + 2];
  memset(ns, 'n', sizeof ns - 1);
  ns[sizeof ns - 1] = '\0';
  cr_assert_eq(cairn_put(db, ns, "k", 1, "v", 1, NULL), CAIRN_EINVAL);
  cr_assert_eq(cairn_put(db, "", "k", 1, "v", 1, NULL), CAIRN_EINVAL);
  cr_assert_str_eq(cairn_strerror(CAIRN_EFULL), "disk full");
  cr_assert_not_null(cairn_strerror(12345));
  cairn_close(NULL);
}

Test(db, a_second_open_of_the_directory_is_refused) {
  cairn *other;
  cairn_options o = opts();
  cr_assert_eq(cairn_open(dir, &o, &other), CAIRN_EBUSY);
}

Test(db, a_directory_of_another_format_version_is_refused) {
  cairn_close(db);
  char path[300];
  snprintf(path, sizeof path, "%s/meta", dir);
  FILE *f = fopen(path, "w");
  fputs("cairn-meta 99\nid 00\nepoch 1\n", f);
  fclose(f);
  cairn_options o = opts();
  db = NULL;
  cr_assert_eq(cairn_open(dir, &o, &db), CAIRN_EVERFMT);
  cr_assert_null(db);
}

Test(db, interval_and_memory_modes_per_write) {
  cairn_write iv = {.durability = CAIRN_DURABILITY_INTERVAL};
  cairn_write mem = {.durability = CAIRN_DURABILITY_MEMORY};
  cr_assert_eq(cairn_put(db, NULL, "i", 1, "1", 1, &iv), 0);
  cr_assert_eq(cairn_put(db, NULL, "m", 1, "1", 1, &mem), 0);
  reopen();
  expect(NULL, "i", "1");
  expect(NULL, "m", NULL);
}

Test(db, a_write_group_reaches_the_log_as_one_frame) {
  struct done_box d[3];
  memset(d, 0, sizeof d);
  struct cairn_stats before, after;
  cr_assert_eq(cairn_sync(db), 0);
  cr_assert_eq(cairn_stats(db, &before), 0);
  cr_assert_eq(cairn_group_begin(db), 0);
  cr_assert_eq(cairn_group_begin(db), CAIRN_EINVAL, "groups do not nest");
  for (int i = 0; i < 3; i++) {
    char k[16];
    snprintf(k, sizeof k, "g%d", i);
    cairn_write w = {.done = on_done, .done_arg = &d[i]};
    cr_assert_eq(cairn_put(db, NULL, k, strlen(k), "v", 1, &w), 0);
    usleep(2000); /* time enough for the log thread to flush, were it free */
  }
  cr_assert_eq(cairn_put(db, NULL, "blocking", 8, "v", 1, NULL), CAIRN_EINVAL);
  cr_assert_eq(cairn_group_end(db), 0);
  cr_assert_eq(cairn_sync(db), 0);
  cr_assert_eq(cairn_stats(db, &after), 0);
  cr_assert_eq(after.log_frames - before.log_frames, 1);
  for (int i = 0; i < 200 && !__atomic_load_n(&d[2].calls, __ATOMIC_SEQ_CST); i++)
    usleep(1000);
  for (int i = 0; i < 3; i++) cr_assert_eq(d[i].calls, 1);
  reopen();
  expect(NULL, "g0", "v");
  expect(NULL, "g2", "v");
}

static void count_expired(void *arg, const char *ns, const void *key,
                          size_t klen) {
  (void)ns, (void)key, (void)klen;
  __atomic_add_fetch((int *)arg, 1, __ATOMIC_SEQ_CST);
}

Test(db, expiry_is_announced_to_expired_fn) {
  static int expired;
  cairn_close(db);
  cairn_options o = opts();
  o.expired_fn = count_expired;
  o.expired_arg = &expired;
  cr_assert_eq(cairn_open(dir, &o, &db), 0);
  cairn_write w = {.ttl_ms = 20};
  cr_assert_eq(cairn_put(db, NULL, "short", 5, "v", 1, &w), 0);
  for (int i = 0; i < 300 && !__atomic_load_n(&expired, __ATOMIC_SEQ_CST); i++)
    usleep(5000);
  cr_assert_eq(expired, 1);
}

/* Fill a few 1 MiB segments (a close would checkpoint and recycle them). */
static int fill_segments(cairn *c, void *arg) {
  (void)arg;
  static char val[4096]; /* incompressible, so the log spans segments */
  srand(42);
  for (size_t i = 0; i < sizeof val; i++) val[i] = (char)(rand() & 0xff);
  cairn_write iv = {.durability = CAIRN_DURABILITY_INTERVAL};
  for (int i = 0; i < 1000; i++) {
    char k[16];
    snprintf(k, sizeof k, "k%d", i);
    if (cairn_put(c, NULL, k, strlen(k), val, sizeof val, &iv) != 0) return 1;
  }
  return cairn_sync(c) == 0 ? 0 : 2;
}

Test(db, a_log_missing_its_first_segment_is_refused_unless_salvaged) {
  in_crashing_child(fill_segments, NULL);
  char path[400];
  snprintf(path, sizeof path, "%s/wal/0000000000000001.wal", dir);
  cr_assert_eq(unlink(path), 0);
  cairn_options o = opts();
  cr_assert_eq(cairn_open(dir, &o, &db), CAIRN_ECORRUPT);
  o.flags |= CAIRN_OPEN_SALVAGE;
  cr_assert_eq(cairn_open(dir, &o, &db), 0);
  expect(NULL, "k0", NULL); /* it was in the deleted segment */
  cairn_value v;
  cr_assert_eq(cairn_get(db, NULL, "k999", 4, &v), 0);
  cr_assert_eq(v.len, 4096);
  cairn_value_free(&v);
}

Test(db, collections_change_by_deltas_and_keep_their_type) {
  /* Raw deltas in src/coll.h's layout: CO_SADD (3), u32 len, member. */
  unsigned char d[16] = {3, 1, 0, 0, 0, 'a', 3, 1, 0, 0, 0, 'b'};
  cr_assert_eq(cairn_coll_apply(db, NULL, "s", 1, CAIRN_TYPE_SET, d, 12, NULL), 0);
  cr_assert_eq(cairn_coll_apply(db, NULL, "s", 1, CAIRN_TYPE_HASH, d, 12, NULL),
               CAIRN_EINVAL, "an SADD is not a hash operation");
  put(NULL, "str", "v");
  cr_assert_eq(cairn_coll_apply(db, NULL, "str", 3, CAIRN_TYPE_SET, d, 12, NULL),
               CAIRN_ETYPE);
  int64_t n;
  cr_assert_eq(cairn_incr(db, NULL, "s", 1, 1, &n, NULL), CAIRN_ETYPE);
  cairn_value v;
  cr_assert_eq(cairn_get(db, NULL, "s", 1, &v), 0);
  cr_assert_eq(v.type, CAIRN_TYPE_SET);
  /* A whole collection moves with its type, alone or in a batch. */
  cairn_write typed = {.type = CAIRN_TYPE_SET};
  cr_assert_eq(cairn_put(db, NULL, "copy", 4, v.data, v.len, &typed), 0);
  cairn_batch *b;
  cr_assert_eq(cairn_batch_new(db, &b), 0);
  cr_assert_eq(cairn_batch_put(b, NULL, "moved", 5, v.data, v.len, &typed), 0);
  cr_assert_eq(cairn_batch_put(b, NULL, "bad", 3, "xx", 2, &typed), CAIRN_EINVAL);
  cr_assert_eq(cairn_batch_commit(b, NULL), 0);
  cairn_batch_free(b);
  size_t len = v.len;
  cairn_value_free(&v);
  /* CO_SREM (4) of both empties the set: the key goes. */
  unsigned char r[12] = {4, 1, 0, 0, 0, 'a', 4, 1, 0, 0, 0, 'b'};
  cr_assert_eq(cairn_coll_apply(db, NULL, "s", 1, CAIRN_TYPE_SET, r, 12, NULL), 0);
  expect(NULL, "s", NULL);
  for (int round = 0; round < 3; round++) {
    const char *k = round == 0 ? "copy" : "moved";
    cr_assert_eq(cairn_get(db, NULL, k, strlen(k), &v), 0);
    cr_assert_eq(v.type, CAIRN_TYPE_SET);
    cr_assert_eq(v.len, len);
    cairn_value_free(&v);
    if (round == 0) reopen();
    if (round == 1) {
      cr_assert_eq(cairn_checkpoint(db), 0);
      reopen();
    }
  }
  expect(NULL, "s", NULL);
}

Test(db, collection_deltas_replay_from_the_log) {
  cairn_close(db);
  db = NULL;
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) { /* exits without closing: the deltas stay in the log */
    cairn *c;
    cairn_options o = opts();
    unsigned char add[12] = {3, 1, 0, 0, 0, 'a', 3, 1, 0, 0, 0, 'b'};
    unsigned char rem[6] = {4, 1, 0, 0, 0, 'a'};
    if (cairn_open(dir, &o, &c) != 0 ||
        cairn_coll_apply(c, NULL, "s", 1, CAIRN_TYPE_SET, add, 12, NULL) ||
        cairn_coll_apply(c, NULL, "s", 1, CAIRN_TYPE_SET, rem, 6, NULL) ||
        cairn_coll_apply(c, NULL, "t", 1, CAIRN_TYPE_SET, rem, 6, NULL))
      _exit(1);
    _exit(0);
  }
  int status;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  cairn_options o = opts();
  cr_assert_eq(cairn_open(dir, &o, &db), 0);
  struct cairn_stats st;
  cairn_stats(db, &st);
  cr_assert_eq(st.recovered_records, 2, "a removal from nothing is no write");
  cairn_value v;
  cr_assert_eq(cairn_get(db, NULL, "s", 1, &v), 0);
  cr_assert_eq(v.type, CAIRN_TYPE_SET);
  /* u32 count 1, u32 len 1, "b" */
  cr_assert_eq(v.len, 9);
  cr_assert_eq(memcmp(v.data, "\1\0\0\0\1\0\0\0b", 9), 0);
  cairn_value_free(&v);
  expect(NULL, "t", NULL);
}

Test(db, an_empty_batch_still_calls_back) {
  struct done_box d = {0, -1, 0};
  cairn_batch *b;
  cr_assert_eq(cairn_batch_new(db, &b), 0);
  cairn_write w = {.done = on_done, .done_arg = &d};
  cr_assert_eq(cairn_batch_commit(b, &w), 0);
  cr_assert_eq(d.calls, 1);
  cr_assert_eq(d.rc, 0);
  cairn_batch_free(b);
}

/* ------------------------------------------------------------------------
 * Following a leader (CAIRN_OPEN_FOLLOWER) and interrupted full syncs.
 * --------------------------------------------------------------------- */

static void reopen_follower(void) {
  cairn_close(db);
  cairn_options o = opts();
  o.flags |= CAIRN_OPEN_FOLLOWER;
  cr_assert_eq(cairn_open(dir, &o, &db), 0);
}

Test(db, a_follower_hides_expired_entries_but_deletes_nothing_itself) {
  reopen_follower();
  cairn_write w = {.ttl_ms = 30};
  cr_assert_eq(cairn_put(db, "sessions", "s", 1, "v", 1, &w), 0);
  struct cairn_stats before, after;
  cr_assert_eq(cairn_stats(db, &before), 0);
  usleep(300 * 1000); /* thirty sweeps of 10 ms */
  expect("sessions", "s", NULL);
  cr_assert_eq(cairn_stats(db, &after), 0);
  cr_assert_eq(after.expired, 0, "the leader's delete must come by the log");
  cr_assert_eq(after.last_lsn, before.last_lsn, "nothing logged");
}

/* A log replayed at open: written by a child that exits without closing
 * (so without the checkpoint a close makes). */
static int put_kv_and_sync(cairn *c, void *arg) {
  const char *const *kv = arg;
  if (cairn_put(c, NULL, kv[0], strlen(kv[0]), kv[1], strlen(kv[1]), NULL))
    return 1;
  return cairn_sync(c) == 0 ? 0 : 2;
}

static void crash_after_put(const char *k, const char *v) {
  const char *kv[2] = {k, v};
  in_crashing_child(put_kv_and_sync, kv);
}

static struct cairn_stats stats_after_open(unsigned flags) {
  cairn_options o = opts();
  o.flags |= flags;
  cr_assert_eq(cairn_open(dir, &o, &db), 0);
  usleep(300 * 1000); /* the checkpoint thread polls every 50 ms */
  struct cairn_stats st;
  cr_assert_eq(cairn_stats(db, &st), 0);
  cr_assert_eq(st.recovered_records, 1);
  return st;
}

Test(db, a_follower_leaves_its_replayed_log_unchecked_pointed) {
  crash_after_put("c", "3");
  struct cairn_stats st = stats_after_open(CAIRN_OPEN_FOLLOWER);
  cr_assert_lt(st.checkpoint_lsn, st.last_lsn,
               "a divergent tail must still be cuttable");
  expect(NULL, "c", "3");
  /* A leader checks a replayed log in soon, bounding the next restart. */
  crash_after_put("d", "4");
  st = stats_after_open(0);
  cr_assert_eq(st.checkpoint_lsn, st.last_lsn);
}

Test(db, an_interrupted_full_sync_leaves_an_empty_directory) {
  put(NULL, "old", "1");
  cairn_close(db);
  db = NULL;
  char path[400];
  snprintf(path, sizeof path, "%s/SYNCING", dir);
  FILE *f = fopen(path, "w");
  cr_assert(f);
  fclose(f);
  cairn_options o = opts();
  cr_assert_eq(cairn_open(dir, &o, &db), 0);
  expect(NULL, "old", NULL);
  struct cairn_stats st;
  cr_assert_eq(cairn_stats(db, &st), 0);
  cr_assert_eq(st.last_lsn, 0);
  cr_assert_eq(st.entries + st.disk_entries, 0);
  cr_assert_neq(access(path, F_OK), 0, "the marker is gone");
}

/* ------------------------------------------------------------------------
 * max_entries: a namespace's bound on its entries in memory
 * --------------------------------------------------------------------- */

#define BOUND 1000u
#define BOUNDED_KEYS 20000u

static void define_bounded(const char *ns, uint64_t max_entries) {
  cairn_ns_options o = {CAIRN_DURABILITY_INTERVAL, 0, 0, max_entries};
  cr_assert_eq(cairn_ns_define(db, ns, &o), 0);
}

/* Key i of namespace ns is "k<i>", its value "<ns>-<i>". */
static void each_key(const char *ns, unsigned n,
                     void (*fn)(const char *ns, const char *k, const char *v)) {
  char k[32], v[32];
  for (unsigned i = 0; i < n; i++) {
    snprintf(k, sizeof k, "k%05u", i);
    snprintf(v, sizeof v, "%s-%05u", ns, i);
    fn(ns, k, v);
  }
}

static void fill(const char *ns, unsigned n) { each_key(ns, n, put); }
static void expect_all(const char *ns, unsigned n) { each_key(ns, n, expect); }

/* The maintenance thread (ticking every 10 ms here) brings the entries in
 * memory down to at most `most`; give it up to 10 s. */
static struct cairn_stats wait_entries_at_most(uint64_t most) {
  struct cairn_stats st;
  for (int i = 0; i < 1000; i++) {
    cr_assert_eq(cairn_stats(db, &st), 0);
    if (st.entries <= most) break;
    usleep(10 * 1000);
  }
  cr_assert_leq(st.entries, most, "%" PRIu64 " entries still in memory",
                st.entries);
  return st;
}

Test(db, max_entries_evicts_a_namespace_to_its_bound_and_reads_the_rest_through) {
  define_bounded("clients", BOUND);
  fill("clients", BOUNDED_KEYS);
  cr_assert_eq(cairn_checkpoint(db), 0);
  struct cairn_stats st = wait_entries_at_most(BOUND);
  cr_assert_gt(st.evictions, 0);
  cr_assert_eq(st.disk_entries, BOUNDED_KEYS, "nothing was lost");
  expect_all("clients", BOUNDED_KEYS);
  struct cairn_stats after;
  cr_assert_eq(cairn_stats(db, &after), 0);
  cr_assert_geq(after.store_reads - st.store_reads,
                BOUNDED_KEYS - BOUND, "the evicted keys came from the store");
}

Test(db, max_entries_leaves_other_namespaces_in_memory) {
  define_bounded("clients", BOUND);
  define_bounded("users", 0);
  fill("users", 3000);
  fill("clients", BOUNDED_KEYS);
  cr_assert_eq(cairn_checkpoint(db), 0);
  struct cairn_stats st = wait_entries_at_most(BOUND + 3000);
  cr_assert_gt(st.evictions, 0);
  cr_assert_geq(st.entries, 3000);
  /* Every key of the unbounded namespace is still answered from memory. */
  expect_all("users", 3000);
  struct cairn_stats after;
  cr_assert_eq(cairn_stats(db, &after), 0);
  cr_assert_eq(after.store_reads, st.store_reads);
  cr_assert_eq(after.mem_hits - st.mem_hits, 3000);
  expect_all("clients", BOUNDED_KEYS);
}

/* ------------------------------------------------------------------------
 * Max-idle earned by reads survives leaving memory
 * --------------------------------------------------------------------- */

/* A session with max-idle I is read at IDLE_READ_MS, and checked at
 * I + IDLE_LATE_MS: past its write's deadline, before its read's. */
#define IDLE_MS      5000u  /* the restart test's I */
#define IDLE_EVICT_MS 10000u /* the eviction test's I: three rounds of
                                eviction fit (slowly, under sanitizers) */
#define IDLE_READ_MS 1000u
#define IDLE_LATE_MS 300u
#define IDLE_FILL    3000u

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_until(int64_t t_ms) {
  int64_t d = t_ms - wall_ms();
  if (d > 0) usleep((useconds_t)d * 1000);
}

static int64_t put_session(const char *ns, uint64_t idle_ms) {
  cairn_write w = {.flags = CAIRN_W_MAX_IDLE, .max_idle_ms = idle_ms};
  int64_t t0 = wall_ms();
  cr_assert_eq(cairn_put(db, ns, "sid", 3, "alive", 5, &w), 0);
  return t0;
}

/* A session read, never written, since its last write: a clean restart
 * must keep the deadline the read moved, not go back to the write's. */
Test(db, a_clean_restart_keeps_the_max_idle_that_reads_earned) {
  int64_t t0 = put_session("sessions", IDLE_MS);
  reopen(); /* checkpointed: the store has the write's last access */
  sleep_until(t0 + IDLE_READ_MS);
  expect("sessions", "sid", "alive");
  reopen();
  sleep_until(t0 + IDLE_MS + IDLE_LATE_MS);
  cr_assert_lt(wall_ms(), t0 + IDLE_READ_MS + IDLE_MS, "the test ran late");
  expect("sessions", "sid", "alive");
}

/* The same across a crash: a session kept alive by reads has its last
 * access logged by the expiry sweep once its last logged state is half
 * its max-idle old, so a process that dies without closing leaves a log
 * that keeps it.  The child reads it until past half its max-idle, syncs
 * the log and exits without closing. */
static int read_session_past_half_idle(cairn *c, void *arg) {
  int64_t t0 = *(const int64_t *)arg;
  while (wall_ms() < t0 + IDLE_MS / 2 + IDLE_READ_MS) {
    cairn_value v;
    if (cairn_get(c, "sessions", "sid", 3, &v) != 0) return 1;
    cairn_value_free(&v);
    usleep(50 * 1000);
  }
  return cairn_sync(c) == 0 ? 0 : 2;
}

Test(db, a_crash_keeps_the_max_idle_that_reads_earned) {
  int64_t t0 = put_session("sessions", IDLE_MS);
  in_crashing_child(read_session_past_half_idle, &t0);
  cairn_options o = opts();
  cr_assert_eq(cairn_open(dir, &o, &db), 0);
  sleep_until(t0 + IDLE_MS + IDLE_LATE_MS);
  cr_assert_lt(wall_ms(), t0 + IDLE_MS / 2 + IDLE_MS, "the test ran late");
  expect("sessions", "sid", "alive");
}

/* The sweep logs a read entry's last access only once its last logged
 * state is half its max-idle old: a session read every few milliseconds
 * costs no log record for the first half of its max-idle. */
Test(db, reads_are_logged_at_most_once_per_half_max_idle) {
  int64_t t0 = put_session("sessions", 2 * IDLE_MS);
  struct cairn_stats before, after;
  cr_assert_eq(cairn_stats(db, &before), 0);
  while (wall_ms() < t0 + IDLE_READ_MS) {
    expect("sessions", "sid", "alive");
    usleep(10 * 1000); /* the sweep runs every 10 ms here */
  }
  cr_assert_eq(cairn_stats(db, &after), 0);
  cr_assert_lt(wall_ms(), t0 + IDLE_MS, "the test ran late");
  cr_assert_eq(after.last_lsn, before.last_lsn, "%" PRIu64 " records logged",
               after.last_lsn - before.last_lsn);
  cr_assert_eq(after.touches_logged, before.touches_logged);
}

/* The same when the session is evicted: before it leaves memory, its last
 * access is logged, and it goes only once a checkpoint has it. */
Test(db, an_evicted_entry_keeps_the_max_idle_that_reads_earned) {
  define_bounded("sessions", BOUND);
  int64_t t0 = put_session("sessions", IDLE_EVICT_MS);
  cr_assert_eq(cairn_checkpoint_now(db), 0);
  sleep_until(t0 + IDLE_READ_MS);
  expect("sessions", "sid", "alive");
  /* Each round brings the namespace over its bound again: the first
   * clears the session's mark, the second finds it read since its last
   * logged state, the third evicts it. */
  char k[32];
  for (unsigned round = 0; round < 3; round++) {
    for (unsigned i = 0; i < IDLE_FILL; i++) {
      snprintf(k, sizeof k, "f%u-%05u", round, i);
      put("sessions", k, "filler");
    }
    cr_assert_eq(cairn_checkpoint_now(db), 0);
    wait_entries_at_most(BOUND);
  }
  sleep_until(t0 + IDLE_EVICT_MS + IDLE_LATE_MS);
  cr_assert_lt(wall_ms(), t0 + IDLE_READ_MS + IDLE_EVICT_MS,
               "the test ran late");
  struct cairn_stats before, after;
  cr_assert_eq(cairn_stats(db, &before), 0);
  expect("sessions", "sid", "alive");
  cr_assert_eq(cairn_stats(db, &after), 0);
  cr_assert_eq(after.store_reads, before.store_reads + 1,
               "the session was evicted, and read back from the store");
  cr_assert_geq(before.touches_logged, 1, "its read was logged first");
}
