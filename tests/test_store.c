/*
 * test_store.c - the LMDB store: layouts, the expiry index, walks, map
 * growth and its limit, stale readers, and readers beside a writer.
 *
 * Long keys (over store_klen_max) have a section of their own.
 *
 * The tests open the environment with LMDB directly where they need to
 * plant or inspect bytes, so they also check the layouts store.h documents.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hash.h"
#include "record.h"
#include "store.h"
#include "testutil.h"

/* ------------------------------------------------------------------------
 * Helpers.
 * --------------------------------------------------------------------- */

/* A logger that keeps every line, so tests can check what was said. */
static char log_buf[16384];
static size_t log_len;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static void log_keep(void *arg, int level, const char *msg) {
  (void)arg;
  (void)level;
  pthread_mutex_lock(&log_mu);
  int n = snprintf(log_buf + log_len, sizeof log_buf - log_len, "%s\n", msg);
  if (n > 0 && (size_t)n < sizeof log_buf - log_len) log_len += (size_t)n;
  pthread_mutex_unlock(&log_mu);
}

static const struct logger test_log = {log_keep, NULL, CAIRN_LOG_INFO};

static char dir[256];

static void setup(void) {
  tu_tmpdir(dir, sizeof dir, "store");
  log_len = 0;
  log_buf[0] = '\0';
}

static void teardown(void) { tu_rmrf(dir); }

static struct store *open_store(uint64_t map_bytes, uint64_t map_max) {
  struct store_config cfg = {.dir = dir, .map_bytes = map_bytes,
                             .map_bytes_max = map_max, .log = &test_log};
  struct store *s = NULL;
  int rc = store_open(&cfg, &s);
  cr_assert_eq(rc, 0, "store_open: %s", cairn_strerror(rc));
  return s;
}

static int try_open(struct store **s) {
  struct store_config cfg = {.dir = dir, .log = &test_log};
  return store_open(&cfg, s);
}

static struct store_val sval(const char *data, int64_t expire_at,
                             uint64_t max_idle, int64_t last_access) {
  return (struct store_val){.version = 7, .expire_at_ms = expire_at,
                            .max_idle_ms = max_idle,
                            .last_access_ms = last_access,
                            .data = (void *)data, .len = strlen(data)};
}

/* Put one entry in namespace "ns", shard 1, in a txn of its own. */
static void put1(struct store *s, uint32_t h32, const char *key,
                 struct store_val v, uint64_t lsn) {
  struct store_txn *t;
  cr_assert_eq(store_begin(s, &t), 0);
  cr_assert_eq(store_put(t, "ns", 2, 1, h32, key, strlen(key), &v), 0);
  cr_assert_eq(store_commit(t, lsn, 1), 0);
}

static void del1(struct store *s, uint32_t h32, const char *key) {
  struct store_txn *t;
  cr_assert_eq(store_begin(s, &t), 0);
  cr_assert_eq(store_del(t, "ns", 2, 1, h32, key, strlen(key)), 0);
  cr_assert_eq(store_commit(t, store_ckpt_lsn(s) + 1, 1), 0);
}

static int get1(struct store *s, uint32_t h32, const char *key,
                struct store_val *v) {
  return store_get(s, "ns", 2, 1, h32, key, strlen(key), v, NULL);
}

static uint64_t expiry_count(struct store *s) {
  struct store_stats st;
  cr_assert_eq(store_stats(s, &st), 0);
  return st.expiry_index;
}

/* The environment opened with LMDB itself (the store must be closed). */
static void raw_open(MDB_env **env, MDB_txn **txn, MDB_dbi *meta,
                     MDB_dbi *data) {
  cr_assert_eq(mdb_env_create(env), 0);
  mdb_env_set_maxdbs(*env, 8);
  cr_assert_eq(mdb_env_open(*env, dir, MDB_NOTLS, 0644), 0);
  cr_assert_eq(mdb_txn_begin(*env, NULL, 0, txn), 0);
  cr_assert_eq(mdb_dbi_open(*txn, "meta", 0, meta), 0);
  cr_assert_eq(mdb_dbi_open(*txn, "data", 0, data), 0);
}

/* The data key of ("ns", shard 1, h32, key), encoded as store.h says. */
static MDB_val raw_key(uint8_t *buf, uint32_t h32, const char *key) {
  size_t klen = strlen(key);
  buf[0] = 2;
  memcpy(buf + 1, "ns", 2);
  buf[3] = 1;
  for (int i = 0; i < 4; i++) buf[4 + i] = (uint8_t)(h32 >> (24 - 8 * i));
  memcpy(buf + 8, key, klen);
  return (MDB_val){.mv_size = 8 + klen, .mv_data = buf};
}

/* ------------------------------------------------------------------------
 * Opening, layout, round trips.
 * --------------------------------------------------------------------- */

Test(store, a_new_store_starts_empty_at_lsn_zero, .init = setup,
     .fini = teardown) {
  struct store *s = open_store(0, 0);
  cr_assert_eq(store_ckpt_lsn(s), 0);
  cr_assert_eq(store_epoch(s), 0);
  struct store_stats st;
  cr_assert_eq(store_stats(s, &st), 0);
  cr_assert_eq(st.entries, 0);
  cr_assert_eq(st.expiry_index, 0);
  cr_assert_eq(st.map_bytes, 64ull << 20);
  cr_assert_gt(st.used_bytes, 0);
  store_close(s);
  store_close(NULL);
  store_abort(NULL);
}

Test(store, reopening_keeps_data_checkpoint_lsn_and_epoch, .init = setup,
     .fini = teardown) {
  struct store *s = open_store(0, 0);
  struct store_txn *t;
  cr_assert_eq(store_begin(s, &t), 0);
  struct store_val v = sval("hello", 0, 0, 0);
  cr_assert_eq(store_put(t, "ns", 2, 1, 5, "k", 1, &v), 0);
  cr_assert_eq(store_commit(t, 42, 3), 0);
  cr_assert_eq(store_ckpt_lsn(s), 42);
  cr_assert_eq(store_epoch(s), 3);
  store_close(s);

  s = open_store(0, 0);
  cr_assert_eq(store_ckpt_lsn(s), 42);
  cr_assert_eq(store_epoch(s), 3);
  struct store_val got;
  cr_assert_eq(get1(s, 5, "k", &got), 0);
  cr_assert_str_eq(got.data, "hello");
  free(got.data);
  store_close(s);
}

Test(store, put_get_del_round_trip_every_field, .init = setup,
     .fini = teardown) {
  struct store *s = open_store(0, 0);
  static const char bytes[] = {'a', 0, 'b', (char)0xff};
  struct store_val v = {.version = 0x0102030405060708ull,
                        .expire_at_ms = 1700000000123, .max_idle_ms = 60000,
                        .last_access_ms = 1690000000456, .type = 0,
                        .data = (void *)bytes, .len = sizeof bytes};
  struct store_txn *t;
  cr_assert_eq(store_begin(s, &t), 0);
  cr_assert_eq(store_put(t, "ns", 2, 1, 0xdeadbeef, "key", 3, &v), 0);
  cr_assert_eq(store_commit(t, 1, 1), 0);

  struct store_val got;
  cr_assert_eq(get1(s, 0xdeadbeef, "key", &got), 0);
  cr_assert_eq(got.version, v.version);
  cr_assert_eq(got.expire_at_ms, v.expire_at_ms);
  cr_assert_eq(got.max_idle_ms, v.max_idle_ms);
  cr_assert_eq(got.last_access_ms, v.last_access_ms);
  cr_assert_eq(got.type, 0);
  cr_assert_eq(got.len, sizeof bytes);
  cr_assert_arr_eq(got.data, bytes, sizeof bytes);
  cr_assert_eq(((char *)got.data)[got.len], '\0');
  free(got.data);

  /* Same key, other shard, h32 or namespace: a different entry. */
  cr_assert_eq(get1(s, 0xdeadbeee, "key", &got), CAIRN_ENOTFOUND);
  cr_assert_eq(store_get(s, "ns", 2, 2, 0xdeadbeef, "key", 3, &got, NULL),
               CAIRN_ENOTFOUND);
  cr_assert_eq(store_get(s, "nt", 2, 1, 0xdeadbeef, "key", 3, &got, NULL),
               CAIRN_ENOTFOUND);

  del1(s, 0xdeadbeef, "key");
  cr_assert_eq(get1(s, 0xdeadbeef, "key", &got), CAIRN_ENOTFOUND);
  del1(s, 0xdeadbeef, "key"); /* deleting a missing key is fine */
  store_close(s);
}

Test(store, stored_bytes_follow_the_documented_layout, .init = setup,
     .fini = teardown) {
  struct store *s = open_store(0, 0);
  struct store_val v = sval("xyz", 1000, 20, 990);
  v.version = 0x1122334455667788ull;
  put1(s, 0x01020304, "k", v, 9);
  put1(s, 0x01020305, "p", sval("ab", 0, 0, 0), 10);
  store_close(s);

  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi meta, data, expiry;
  raw_open(&env, &txn, &meta, &data);
  uint8_t kb[64];
  MDB_val k = raw_key(kb, 0x01020304, "k"), d;
  cr_assert_eq(mdb_get(txn, data, &k, &d), 0);
  /* Flags (lifespan, max-idle, last access), type, then varints: the
   * version, 1000, 20, 990; then the value. */
  const uint8_t want_val[] = {0x0e, 0, 0x88, 0xef, 0x99, 0xab, 0xc5, 0xe8,
                              0x8c, 0x91, 0x11, 0xe8, 0x07, 0x14, 0xde, 0x07,
                              'x', 'y', 'z'};
  cr_assert_eq(d.mv_size, sizeof want_val);
  cr_assert_arr_eq(d.mv_data, want_val, sizeof want_val);
  /* The expiry key: deadline min(1000, 990 + 20) big-endian, data key. */
  cr_assert_eq(mdb_dbi_open(txn, "expiry", 0, &expiry), 0);
  MDB_cursor *cur;
  cr_assert_eq(mdb_cursor_open(txn, expiry, &cur), 0);
  cr_assert_eq(mdb_cursor_get(cur, &k, &d, MDB_FIRST), 0);
  cr_assert_eq(k.mv_size, 8 + 9);
  const uint8_t *e = k.mv_data;
  uint8_t want[8] = {0, 0, 0, 0, 0, 0, 0x03, 0xe8};
  cr_assert_arr_eq(e, want, 8);
  cr_assert_arr_eq(e + 8, kb, 9);
  mdb_cursor_close(cur);

  /* An entry with none of them: flags 0, type, version 7, the value. */
  uint8_t pb[64];
  MDB_val pk = raw_key(pb, 0x01020305, "p");
  const uint8_t want_plain[] = {0, 0, 7, 'a', 'b'};
  cr_assert_eq(mdb_get(txn, data, &pk, &d), 0);
  cr_assert_eq(d.mv_size, sizeof want_plain);
  cr_assert_arr_eq(d.mv_data, want_plain, sizeof want_plain);

  MDB_val fk = {6, "format"};
  cr_assert_eq(mdb_get(txn, meta, &fk, &d), 0);
  cr_assert_eq(d.mv_size, 4);
  cr_assert_eq(get_u32(d.mv_data), STORE_FORMAT);
  mdb_txn_abort(txn);
  mdb_env_close(env);
}

Test(store, abort_discards_the_writes_of_its_txn, .init = setup,
     .fini = teardown) {
  struct store *s = open_store(0, 0);
  put1(s, 1, "a", sval("one", 0, 0, 0), 4);
  struct store_txn *t;
  cr_assert_eq(store_begin(s, &t), 0);
  struct store_val v = sval("two", 0, 0, 0);
  cr_assert_eq(store_put(t, "ns", 2, 1, 1, "a", 1, &v), 0);
  cr_assert_eq(store_put(t, "ns", 2, 1, 2, "b", 1, &v), 0);
  store_abort(t);
  struct store_val got;
  cr_assert_eq(get1(s, 1, "a", &got), 0);
  cr_assert_str_eq(got.data, "one");
  free(got.data);
  cr_assert_eq(get1(s, 2, "b", &got), CAIRN_ENOTFOUND);
  cr_assert_eq(store_ckpt_lsn(s), 4);
  store_close(s);
}

/* ------------------------------------------------------------------------
 * Refusing what is not ours.
 * --------------------------------------------------------------------- */

Test(store, another_format_is_refused_naming_the_file, .init = setup,
     .fini = teardown) {
  store_close(open_store(0, 0));
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi meta, data;
  raw_open(&env, &txn, &meta, &data);
  uint8_t fmt[4];
  put_u32(fmt, STORE_FORMAT + 1);
  MDB_val k = {6, "format"}, v = {4, fmt};
  cr_assert_eq(mdb_put(txn, meta, &k, &v, 0), 0);
  cr_assert_eq(mdb_txn_commit(txn), 0);
  mdb_env_close(env);

  struct store *s = (void *)1;
  cr_assert_eq(try_open(&s), CAIRN_EVERFMT);
  cr_assert_eq(s, (void *)1, "out-param untouched");
  cr_assert(strstr(log_buf, "data.mdb"), "log: %s", log_buf);
}

Test(store, malformed_meta_is_corruption, .init = setup, .fini = teardown) {
  store_close(open_store(0, 0));
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi meta, data;
  raw_open(&env, &txn, &meta, &data);
  MDB_val k = {8, "ckpt_lsn"}, v = {3, "abc"};
  cr_assert_eq(mdb_put(txn, meta, &k, &v, 0), 0);
  cr_assert_eq(mdb_txn_commit(txn), 0);
  mdb_env_close(env);

  struct store *s;
  cr_assert_eq(try_open(&s), CAIRN_ECORRUPT);
}

Test(store, a_file_that_is_not_lmdb_is_corruption, .init = setup,
     .fini = teardown) {
  char path[300];
  snprintf(path, sizeof path, "%s/data.mdb", dir);
  int fd = open(path, O_WRONLY | O_CREAT, 0644);
  cr_assert_geq(fd, 0);
  char junk[16384];
  memset(junk, 0x5a, sizeof junk);
  cr_assert_eq(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
  close(fd);
  struct store *s;
  cr_assert_eq(try_open(&s), CAIRN_ECORRUPT);
}

Test(store, a_directory_that_cannot_be_made_is_an_errno, .init = setup,
     .fini = teardown) {
  char path[300];
  snprintf(path, sizeof path, "%s/file", dir);
  close(open(path, O_WRONLY | O_CREAT, 0644));
  strcat(dir, "/file/sub"); /* under a regular file */
  struct store *s;
  int rc = try_open(&s);
  dir[strlen(dir) - strlen("/file/sub")] = '\0';
  cr_assert_eq(rc, -ENOTDIR);
}

Test(store, malformed_stored_values_are_corruption, .init = setup,
     .fini = teardown) {
  struct store *s = open_store(0, 0);
  put1(s, 1, "good", sval("v", 0, 0, 0), 1);
  store_close(s);

  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi meta, data;
  raw_open(&env, &txn, &meta, &data);
  uint8_t kb[64];
  static const struct {
    const char *key;
    uint8_t len, val[12];
  } bad[] = {
      {"short", 2, {0, 0}},                  /* no version */
      {"flag", 4, {0x10, 0, 7, 'v'}},        /* an unknown flag */
      {"past", 3, {0, 0, 0x87}},             /* a varint past the end */
      {"padded", 5, {0, 0, 0x87, 0x00, 'v'}}, /* a redundant zero byte */
      {"zero", 5, {STORE_VF_EXPIRE, 0, 7, 0, 'v'}}, /* a present 0 */
      {"long", 12, {0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                    0xff, 0x02}},            /* over 64 bits */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    MDB_val k = raw_key(kb, 1, bad[i].key);
    MDB_val v = {bad[i].len, (void *)bad[i].val};
    cr_assert_eq(mdb_put(txn, data, &k, &v, 0), 0);
  }
  cr_assert_eq(mdb_txn_commit(txn), 0);
  mdb_env_close(env);

  s = open_store(0, 0);
  struct store_val got;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_assert_eq(get1(s, 1, bad[i].key, &got), CAIRN_ECORRUPT, "%s",
                 bad[i].key);
  cr_assert_eq(get1(s, 1, "good", &got), 0);
  free(got.data);

  /* Overwriting a malformed value needs its old deadline: refused. */
  struct store_txn *t;
  cr_assert_eq(store_begin(s, &t), 0);
  struct store_val nv = sval("new", 0, 0, 0);
  cr_assert_eq(store_put(t, "ns", 2, 1, 1, "short", 5, &nv), CAIRN_ECORRUPT);
  cr_assert_eq(store_put(t, "ns", 2, 1, 1, "good", 4, &nv), CAIRN_ECORRUPT,
               "the txn stays dead");
  store_abort(t);
  store_close(s);
}

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Values of random bytes, mostly malformed headers: a read returns the
 * value or CAIRN_ECORRUPT, and never reads past what is stored (a varint
 * parser without its bound check crashes here, or hands out a length
 * beyond the value). */
Test(store, random_stored_values_read_as_values_or_corruption, .init = setup,
     .fini = teardown) {
  store_close(open_store(0, 0));
  enum { N = 3000, LEN_MAX = 48 };
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi meta, data;
  raw_open(&env, &txn, &meta, &data);
  uint64_t seed = 0x9e3779b97f4a7c15ull;
  char key[16];
  for (int i = 0; i < N; i++) {
    uint8_t val[LEN_MAX];
    size_t len = (size_t)(splitmix(&seed) % (LEN_MAX + 1));
    for (size_t k = 0; k < len; k++) val[k] = (uint8_t)splitmix(&seed);
    if (len && i % 2) val[0] &= STORE_VF_ALL & ~STORE_VF_LONGKEY; /* valid */
    snprintf(key, sizeof key, "r%d", i);
    uint8_t kb[64];
    MDB_val k = raw_key(kb, (uint32_t)i, key), v = {len, len ? val : NULL};
    cr_assert_eq(mdb_put(txn, data, &k, &v, 0), 0);
  }
  cr_assert_eq(mdb_txn_commit(txn), 0);
  mdb_env_close(env);

  struct store *s = open_store(0, 0);
  int ok = 0, corrupt = 0;
  for (int i = 0; i < N; i++) {
    struct store_val got;
    snprintf(key, sizeof key, "r%d", i);
    int rc = get1(s, (uint32_t)i, key, &got);
    cr_assert(rc == 0 || rc == CAIRN_ECORRUPT, "%s: %d", key, rc);
    if (rc == 0) {
      cr_assert_leq(got.len, LEN_MAX - 3);
      free(got.data);
      ok++;
    } else {
      corrupt++;
    }
  }
  cr_assert_gt(ok, 0);
  cr_assert_gt(corrupt, 0);
  store_close(s);
}

/* ------------------------------------------------------------------------
 * Kept read transactions never hold back page reuse.
 * --------------------------------------------------------------------- */

#define REUSE_KEYS   200u
#define REUSE_VLEN   2000u
#define REUSE_ROUNDS 40u

static uint64_t used_bytes(struct store *s) {
  struct store_stats st;
  cr_assert_eq(store_stats(s, &st), 0);
  return st.used_bytes;
}

/* A read leaves its transaction open for the next one; the next commit
 * must release it, though no read comes to do so.  Were the snapshot kept,
 * every page each round frees would stay in use and the file would grow
 * by the data's size a round.  (store_stats reads too: it is called only
 * twice, as a read between commits would renew the kept snapshot.) */
Test(store, a_read_between_commits_holds_back_no_page_reuse, .init = setup,
     .fini = teardown) {
  struct store *s = open_store(0, 0);
  char val[REUSE_VLEN + 1], key[16];
  memset(val, 'v', REUSE_VLEN);
  val[REUSE_VLEN] = '\0';
  struct store_val v = sval(val, 0, 0, 0);
  uint64_t used_first = 0;
  for (unsigned round = 0; round < REUSE_ROUNDS; round++) {
    struct store_txn *t;
    cr_assert_eq(store_begin(s, &t), 0);
    for (unsigned i = 0; i < REUSE_KEYS; i++) {
      snprintf(key, sizeof key, "k%u", i);
      cr_assert_eq(store_put(t, "ns", 2, 1, i, key, strlen(key), &v), 0);
    }
    cr_assert_eq(store_commit(t, round + 1, 1), 0);
    if (round == 0) { /* one read, then only commits */
      struct store_val got;
      cr_assert_eq(get1(s, 0, "k0", &got), 0);
      free(got.data);
    }
    if (round == 1) used_first = used_bytes(s);
  }
  uint64_t used = used_bytes(s);
  cr_assert_leq(used, 2 * used_first,
                "%" PRIu64 " bytes used after %u rounds, %" PRIu64
                " after the second", used, REUSE_ROUNDS, used_first);
  store_close(s);
}

/* A part of a checkpoint commits its keys and leaves the LSN and epoch
 * as they were. */
Test(store, a_partial_commit_keeps_the_checkpoint_lsn, .init = setup,
     .fini = teardown) {
  struct store *s = open_store(0, 0);
  put1(s, 1, "a", sval("v1", 0, 0, 0), 10);
  struct store_txn *t;
  cr_assert_eq(store_begin(s, &t), 0);
  struct store_val v = sval("v2", 0, 0, 0);
  cr_assert_eq(store_put(t, "ns", 2, 1, 2, "b", 1, &v), 0);
  cr_assert_eq(store_commit_part(t), 0);
  cr_assert_eq(store_ckpt_lsn(s), 10);
  cr_assert_eq(store_epoch(s), 1);
  struct store_val got;
  uint64_t lsn = 0;
  cr_assert_eq(store_get(s, "ns", 2, 1, 2, "b", 1, &got, &lsn), 0);
  cr_assert_eq(lsn, 10, "the snapshot names the old LSN");
  free(got.data);
  store_close(s);
  s = open_store(0, 0);
  cr_assert_eq(store_ckpt_lsn(s), 10);
  cr_assert_eq(get1(s, 2, "b", &got), 0, "and the key is kept");
  free(got.data);
  store_close(s);
}

/* ------------------------------------------------------------------------
 * Checkpoint LSN seen by readers.
 * --------------------------------------------------------------------- */

Test(store, get_reports_the_checkpoint_lsn_of_its_snapshot, .init = setup,
     .fini = teardown) {
  struct store *s = open_store(0, 0);
  put1(s, 1, "a", sval("v1", 0, 0, 0), 10);
  struct store_val got;
  uint64_t lsn = 0;
  cr_assert_eq(store_get(s, "ns", 2, 1, 1, "a", 1, &got, &lsn), 0);
  cr_assert_eq(lsn, 10);
  free(got.data);

  /* A miss reports ENOTFOUND and leaves *lsn alone. */
  lsn = 99;
  cr_assert_eq(store_get(s, "ns", 2, 1, 1, "b", 1, &got, &lsn),
               CAIRN_ENOTFOUND);
  cr_assert_eq(lsn, 99);

  put1(s, 2, "b", sval("v2", 0, 0, 0), 17);
  cr_assert_eq(store_get(s, "ns", 2, 1, 1, "a", 1, &got, &lsn), 0);
  cr_assert_eq(lsn, 17);
  free(got.data);
  store_close(s);
}

/* ------------------------------------------------------------------------
 * The expiry index.
 * --------------------------------------------------------------------- */

struct due_seen {
  int n;
  char keys[8][16];
  int64_t deadlines[8];
};

static int due_collect(void *arg, const char *ns, size_t ns_len,
                       const void *key, size_t klen, int64_t deadline) {
  struct due_seen *d = arg;
  cr_assert_eq(ns_len, 2);
  cr_assert_eq(memcmp(ns, "ns", 2), 0);
  cr_assert_lt(d->n, 8);
  cr_assert_lt(klen, 16);
  memcpy(d->keys[d->n], key, klen);
  d->keys[d->n][klen] = '\0';
  d->deadlines[d->n++] = deadline;
  return 0;
}

/* From *pos, or from the first entry if pos is NULL. */
static struct due_seen due_from(struct store *s, int64_t now, size_t max,
                                struct store_due_pos *pos) {
  struct due_seen d = {0};
  struct store_due_pos first = {0};
  cr_assert_eq(store_due(s, now, max, pos ? pos : &first, due_collect, &d), 0);
  return d;
}

static struct due_seen due(struct store *s, int64_t now, size_t max) {
  return due_from(s, now, max, NULL);
}

Test(store, due_entries_come_in_deadline_order, .init = setup,
     .fini = teardown) {
  struct store *s = open_store(0, 0);
  put1(s, 1, "late", sval("v", 300, 0, 0), 1);          /* 300 */
  put1(s, 2, "idle", sval("v", 0, 50, 50), 2);          /* 100 */
  put1(s, 3, "both", sval("v", 250, 50, 150), 3);       /* 200 */
  put1(s, 4, "never", sval("v", 0, 0, 12345), 4);       /* none */
  cr_assert_eq(expiry_count(s), 3);

  struct due_seen d = due(s, 250, 100);
  cr_assert_eq(d.n, 2);
  cr_assert_str_eq(d.keys[0], "idle");
  cr_assert_eq(d.deadlines[0], 100);
  cr_assert_str_eq(d.keys[1], "both");
  cr_assert_eq(d.deadlines[1], 200);

  d = due(s, 1000, 100);
  cr_assert_eq(d.n, 3);
  cr_assert_str_eq(d.keys[2], "late");
  cr_assert_eq(due(s, 1000, 1).n, 1, "max bounds the visit");
  cr_assert_eq(due(s, 99, 100).n, 0);
  store_close(s);
}

static int due_stop(void *arg, const char *ns, size_t ns_len,
                    const void *key, size_t klen, int64_t deadline) {
  (void)ns, (void)ns_len, (void)key, (void)klen, (void)deadline;
  ++*(int *)arg;
  return 1;
}

Test(store, updating_or_deleting_moves_the_index_entry, .init = setup,
     .fini = teardown) {
  struct store *s = open_store(0, 0);
  put1(s, 1, "a", sval("v", 100, 0, 0), 1);
  put1(s, 2, "b", sval("v", 200, 0, 0), 2);
  put1(s, 1, "a", sval("v", 500, 0, 0), 3); /* a moves after b */
  cr_assert_eq(expiry_count(s), 2);
  struct due_seen d = due(s, 1000, 100);
  cr_assert_eq(d.n, 2);
  cr_assert_str_eq(d.keys[0], "b");
  cr_assert_str_eq(d.keys[1], "a");
  cr_assert_eq(d.deadlines[1], 500);

  /* Several changes in one txn leave one entry. */
  struct store_txn *t;
  cr_assert_eq(store_begin(s, &t), 0);
  for (int64_t e = 10; e <= 50; e += 10) {
    struct store_val v = sval("v", e, 0, 0);
    cr_assert_eq(store_put(t, "ns", 2, 1, 2, "b", 1, &v), 0);
  }
  cr_assert_eq(store_commit(t, 4, 1), 0);
  cr_assert_eq(expiry_count(s), 2);
  d = due(s, 1000, 100);
  cr_assert_str_eq(d.keys[0], "b");
  cr_assert_eq(d.deadlines[0], 50);

  put1(s, 2, "b", sval("v", 0, 0, 0), 5); /* no deadline any more */
  cr_assert_eq(expiry_count(s), 1);
  del1(s, 1, "a");
  cr_assert_eq(expiry_count(s), 0);
  cr_assert_eq(due(s, INT64_MAX, 100).n, 0);

  put1(s, 3, "c", sval("v", 7, 0, 0), 6);
  int calls = 0;
  put1(s, 4, "d", sval("v", 8, 0, 0), 7);
  struct store_due_pos pos = {0};
  cr_assert_eq(store_due(s, 100, 100, &pos, due_stop, &calls), 0);
  cr_assert_eq(calls, 1, "returning 1 stops");
  cr_assert_eq(pos.len, 0, "before the entry it stopped at");
  store_close(s);
}

/* A sweep reclaims what it is given, but the entries stay in the index
 * until a checkpoint: the position lets it go on past them. */
Test(store, a_due_visit_goes_on_from_where_the_last_stopped, .init = setup,
     .fini = teardown) {
  struct store *s = open_store(0, 0);
  put1(s, 1, "a", sval("v", 10, 0, 0), 1);
  put1(s, 2, "b", sval("v", 20, 0, 0), 2);
  put1(s, 3, "c", sval("v", 30, 0, 0), 3);
  put1(s, 4, "d", sval("v", 40, 0, 0), 4);
  put1(s, 5, "e", sval("v", 500, 0, 0), 5);
  struct store_due_pos pos = {0};
  struct due_seen d = due_from(s, 100, 2, &pos);
  cr_assert_eq(d.n, 2);
  cr_assert_str_eq(d.keys[0], "a");
  cr_assert_str_eq(d.keys[1], "b");
  d = due_from(s, 100, 2, &pos);
  cr_assert_eq(d.n, 2);
  cr_assert_str_eq(d.keys[0], "c");
  cr_assert_str_eq(d.keys[1], "d");
  cr_assert_eq(due_from(s, 100, 2, &pos).n, 0, "e is not due yet");

  /* The entry it stopped after is gone: on from the next one. */
  struct store_due_pos at_b = {0};
  cr_assert_eq(due_from(s, 100, 2, &at_b).n, 2);
  del1(s, 2, "b");
  d = due_from(s, 100, 8, &at_b);
  cr_assert_eq(d.n, 2);
  cr_assert_str_eq(d.keys[0], "c");
  cr_assert_str_eq(d.keys[1], "d");

  d = due_from(s, 1000, 8, &pos);
  cr_assert_eq(d.n, 1, "later, what became due after it");
  cr_assert_str_eq(d.keys[0], "e");
  pos.len = 0;
  cr_assert_eq(due_from(s, 1000, 8, &pos).n, 4, "zeroed: from the first");
  store_close(s);
}

/* ------------------------------------------------------------------------
 * Walks.
 * --------------------------------------------------------------------- */

struct walk_seen {
  int n;
  uint32_t h32[32];
  char keys[32][8];
  int stop_after; /* 0: never */
};

static int walk_collect(void *arg, unsigned shard, uint32_t h32,
                        const void *key, size_t klen,
                        const struct store_val *v) {
  struct walk_seen *w = arg;
  cr_assert_eq(shard, 1);
  cr_assert_lt(w->n, 32);
  cr_assert_lt(klen, 8);
  cr_assert_eq(v->len, 1);
  cr_assert_eq(((const char *)v->data)[0], ((const char *)key)[0]);
  w->h32[w->n] = h32;
  memcpy(w->keys[w->n], key, klen);
  w->keys[w->n][klen] = '\0';
  w->n++;
  return w->stop_after && w->n >= w->stop_after;
}

static void walk_fixture(struct store *s) {
  static const struct { unsigned shard; uint32_t h32; const char *key; }
      e[] = {{1, 10, "x"}, {1, 10, "y"}, {1, 10, "z"}, {1, 20, "k"},
             {1, 30, "m"}, {1, 0xffffffff, "q"}, {0, 15, "o"},
             {2, 15, "o"}};
  struct store_txn *t;
  cr_assert_eq(store_begin(s, &t), 0);
  for (size_t i = 0; i < sizeof e / sizeof e[0]; i++) {
    struct store_val v = sval(e[i].key, 0, 0, 0);
    cr_assert_eq(store_put(t, "ns", 2, e[i].shard, e[i].h32, e[i].key, 1, &v),
                 0);
  }
  /* Namespaces that share a prefix with "ns" stay apart. */
  struct store_val v = sval("n", 0, 0, 0);
  cr_assert_eq(store_put(t, "nsx", 3, 1, 12, "n", 1, &v), 0);
  cr_assert_eq(store_put(t, "n", 1, 1, 12, "n", 1, &v), 0);
  cr_assert_eq(store_commit(t, 1, 1), 0);
}

static struct walk_seen walk(struct store *s, uint64_t from, uint64_t until,
                             size_t max, uint64_t *next) {
  struct walk_seen w = {0};
  cr_assert_eq(store_walk(s, "ns", 2, 1, from, until, max, walk_collect, &w,
                          next), 0);
  return w;
}

Test(store, walk_goes_in_order_and_finishes_a_group, .init = setup,
     .fini = teardown) {
  struct store *s = open_store(0, 0);
  walk_fixture(s);
  uint64_t next;
  struct walk_seen w = walk(s, 0, 1ull << 32, 100, &next);
  cr_assert_eq(w.n, 6);
  cr_assert_eq(next, 1ull << 32);
  const char *order = "xyzkmq";
  for (int i = 0; i < 6; i++) cr_assert_eq(w.keys[i][0], order[i]);
  cr_assert_eq(w.h32[5], 0xffffffff);

  w = walk(s, 0, 1ull << 32, 1, &next); /* max 1, but a group of 3 */
  cr_assert_eq(w.n, 3);
  cr_assert_eq(next, 20);
  w = walk(s, 11, 1ull << 32, 1, &next); /* from between groups */
  cr_assert_eq(w.n, 1);
  cr_assert_str_eq(w.keys[0], "k");
  cr_assert_eq(next, 30);
  w = walk(s, 0, 30, 100, &next); /* until bounds it */
  cr_assert_eq(w.n, 4);
  cr_assert_eq(next, 30);
  w = walk(s, 0, 20, 3, &next); /* the range ends exactly at max */
  cr_assert_eq(w.n, 3);
  cr_assert_eq(next, 20);
  w = walk(s, 31, 1000, 100, &next); /* nothing in range */
  cr_assert_eq(w.n, 0);
  cr_assert_eq(next, 1000);
  w = walk(s, 10, 10, 100, &next); /* empty range */
  cr_assert_eq(w.n, 0);
  cr_assert_eq(next, 10);
  w = walk(s, 0, 1ull << 32, 0, &next); /* max 0 */
  cr_assert_eq(w.n, 0);
  cr_assert_eq(next, 10);
  store_close(s);
}

Test(store, a_resumed_walk_visits_everything_once, .init = setup,
     .fini = teardown) {
  struct store *s = open_store(0, 0);
  walk_fixture(s);
  for (size_t max = 1; max <= 7; max++) {
    char seen[16] = "";
    uint64_t from = 0, next;
    for (int rounds = 0; from < (1ull << 32); rounds++) {
      cr_assert_lt(rounds, 10);
      struct walk_seen w = walk(s, from, 1ull << 32, max, &next);
      for (int i = 0; i < w.n; i++) strcat(seen, w.keys[i]);
      cr_assert_gt(next, from, "progress");
      from = next;
    }
    cr_assert_str_eq(seen, "xyzkmq", "max %zu", max);
  }
  store_close(s);
}

Test(store, a_walk_stopped_by_its_callback_resumes_at_the_next_entry,
     .init = setup, .fini = teardown) {
  struct store *s = open_store(0, 0);
  walk_fixture(s);
  struct walk_seen w = {.stop_after = 4};
  uint64_t next;
  cr_assert_eq(store_walk(s, "ns", 2, 1, 0, 1ull << 32, 100, walk_collect, &w,
                          &next), 0);
  cr_assert_eq(w.n, 4);
  cr_assert_eq(next, 30);
  w = (struct walk_seen){.stop_after = 1};
  cr_assert_eq(store_walk(s, "ns", 2, 1, 0, 1ull << 32, 100, walk_collect, &w,
                          &next), 0);
  cr_assert_eq(w.n, 1);
  cr_assert_eq(next, 10, "the group is entered again");
  store_close(s);
}

/* ------------------------------------------------------------------------
 * Map growth and its limit.
 * --------------------------------------------------------------------- */

#define BIG_VAL 4000

static void put_many(struct store_txn *t, int first, int n, int expect_fail) {
  static char buf[BIG_VAL + 1];
  memset(buf, 'v', BIG_VAL);
  for (int i = first; i < first + n; i++) {
    char key[16];
    snprintf(key, sizeof key, "k%06d", i);
    buf[0] = (char)('a' + i % 26);
    struct store_val v = sval(buf, 1000 + i, 0, 0);
    int rc = store_put(t, "ns", 2, 1, (uint32_t)i, key, strlen(key), &v);
    if (expect_fail && rc) {
      cr_assert_eq(rc, CAIRN_EFULL);
      return;
    }
    cr_assert_eq(rc, 0, "put %d: %s", i, cairn_strerror(rc));
  }
  cr_assert(!expect_fail, "the map never filled");
}

static void check_many(struct store *s, int first, int n) {
  for (int i = first; i < first + n; i++) {
    char key[16];
    snprintf(key, sizeof key, "k%06d", i);
    struct store_val got;
    cr_assert_eq(get1(s, (uint32_t)i, key, &got), 0, "get %d", i);
    cr_assert_eq(got.len, BIG_VAL);
    cr_assert_eq(((char *)got.data)[0], (char)('a' + i % 26));
    free(got.data);
  }
}

Test(store, the_map_grows_inside_a_txn, .init = setup, .fini = teardown) {
  struct store *s = open_store(1u << 20, 0);
  struct store_txn *t;
  cr_assert_eq(store_begin(s, &t), 0);
  put_many(t, 0, 5000, 0); /* ~20 MB */
  cr_assert_eq(store_commit(t, 77, 2), 0);
  struct store_stats st;
  cr_assert_eq(store_stats(s, &st), 0);
  cr_assert_eq(st.entries, 5000);
  cr_assert_eq(st.expiry_index, 5000, "replays leave no stale entries");
  cr_assert_geq(st.map_bytes, 16u << 20);
  cr_assert_leq(st.used_bytes, st.map_bytes);
  cr_assert(strstr(log_buf, "grown"), "log: %s", log_buf);
  check_many(s, 0, 5000);
  store_close(s);

  s = open_store(1u << 20, 0); /* smaller than the data: LMDB keeps it */
  cr_assert_eq(store_ckpt_lsn(s), 77);
  check_many(s, 4990, 10);
  store_close(s);
}

Test(store, a_full_map_at_its_limit_fails_and_keeps_the_last_commit,
     .init = setup, .fini = teardown) {
  struct store *s = open_store(1u << 20, 2u << 20);
  struct store_txn *t;
  cr_assert_eq(store_begin(s, &t), 0);
  put_many(t, 0, 10, 0);
  cr_assert_eq(store_commit(t, 5, 1), 0);

  cr_assert_eq(store_begin(s, &t), 0);
  put_many(t, 10, 1000, 1); /* ~4 MB into a 2 MiB map */
  struct store_val v = sval("x", 0, 0, 0);
  cr_assert_eq(store_put(t, "ns", 2, 1, 1, "x", 1, &v), CAIRN_EFULL);
  cr_assert_eq(store_commit(t, 6, 1), CAIRN_EFULL);
  cr_assert_eq(store_ckpt_lsn(s), 5);
  cr_assert(strstr(log_buf, "limit"), "log: %s", log_buf);

  /* The store still works after the failure. */
  check_many(s, 0, 10);
  cr_assert_eq(store_begin(s, &t), 0);
  store_abort(t);
  store_close(s);

  s = open_store(1u << 20, 2u << 20);
  cr_assert_eq(store_ckpt_lsn(s), 5);
  check_many(s, 0, 10);
  struct store_val got;
  cr_assert_eq(get1(s, 10, "k000010", &got), CAIRN_ENOTFOUND);
  store_close(s);
}

/* With Debian's LMDB and 4 KiB pages, some of these sizes fill the map in
 * mdb_txn_commit itself (writing the freelist) or in the meta update just
 * before it: both must grow and retry like a put does. */
Test(store, a_map_that_fills_at_commit_grows_too, .init = setup,
     .fini = teardown) {
  static char buf[4001];
  memset(buf, 'v', 4000);
  char base[sizeof dir];
  memcpy(base, dir, sizeof dir);
  for (int n = 236; n < 256; n++) {
    snprintf(dir, sizeof dir, "%.200s/%d", base, n); /* tu_tmpdir is short */
    struct store *s = open_store(1u << 20, 0);
    struct store_txn *t;
    cr_assert_eq(store_begin(s, &t), 0);
    for (int i = 0; i < n; i++) {
      char key[16];
      snprintf(key, sizeof key, "k%d", i);
      struct store_val v = {.data = buf, .len = 4000};
      cr_assert_eq(store_put(t, "ns", 2, 1, (uint32_t)i, key, strlen(key), &v),
                   0);
    }
    int rc = store_commit(t, 1, 1);
    cr_assert_eq(rc, 0, "n %d: %s", n, cairn_strerror(rc));
    struct store_stats st;
    cr_assert_eq(store_stats(s, &st), 0);
    cr_assert_eq(st.entries, (uint64_t)n);
    cr_assert_eq(store_ckpt_lsn(s), 1);
    store_close(s);
    tu_rmrf(dir);
  }
  memcpy(dir, base, sizeof dir);
}

/* ------------------------------------------------------------------------
 * Long keys: over store_klen_max, stored under a stand-in.
 * --------------------------------------------------------------------- */

/* A key of len bytes; seed makes keys of one length differ early on. */
static char *mkkey(size_t len, unsigned seed) {
  char *k = malloc(len);
  cr_assert(k);
  for (size_t j = 0; j < len; j++) k[j] = (char)('a' + (j * 7 + seed) % 26);
  return k;
}

#define LK_N 5

/* Keys of the lengths around the limit and beyond, each with its own h32,
 * except the last two, which share one (a group with long keys). */
struct lkeys {
  size_t len[LK_N];
  char *key[LK_N];
  uint32_t h32[LK_N];
  char val[LK_N][16];
};

static void lkeys_make(struct lkeys *l, struct store *s) {
  size_t max = store_klen_max(s, 2);
  size_t lens[LK_N] = {max - 1, max, max + 1, 1000, CAIRN_KEY_MAX};
  for (int i = 0; i < LK_N; i++) {
    l->len[i] = lens[i];
    l->key[i] = mkkey(lens[i], (unsigned)i);
    l->h32[i] = i < 4 ? 100u + (uint32_t)i : 103u;
    snprintf(l->val[i], sizeof l->val[i], "val%zu", lens[i]);
  }
}

static void lkeys_free(struct lkeys *l) {
  for (int i = 0; i < LK_N; i++) free(l->key[i]);
}

static int lk_find(const struct lkeys *l, const void *key, size_t klen) {
  for (int i = 0; i < LK_N; i++)
    if (l->len[i] == klen && memcmp(l->key[i], key, klen) == 0) return i;
  return -1;
}

struct lk_seen {
  const struct lkeys *l;
  int n, mask;
  int64_t deadlines[LK_N];
};

static int lk_walk_fn(void *arg, unsigned shard, uint32_t h32,
                      const void *key, size_t klen,
                      const struct store_val *v) {
  struct lk_seen *w = arg;
  int i = lk_find(w->l, key, klen);
  cr_assert_eq(shard, 1);
  cr_assert_geq(i, 0, "a key of %zu bytes that was never put", klen);
  cr_assert_eq(h32, w->l->h32[i]);
  cr_assert_eq(v->len, strlen(w->l->val[i]));
  cr_assert_eq(memcmp(v->data, w->l->val[i], v->len), 0);
  w->mask |= 1 << i;
  w->n++;
  return 0;
}

static int lk_due_fn(void *arg, const char *ns, size_t ns_len,
                     const void *key, size_t klen, int64_t deadline) {
  struct lk_seen *w = arg;
  int i = lk_find(w->l, key, klen);
  cr_assert_eq(ns_len, 2);
  cr_assert_eq(memcmp(ns, "ns", 2), 0);
  cr_assert_geq(i, 0, "a key of %zu bytes that was never put", klen);
  w->deadlines[i] = deadline;
  w->mask |= 1 << i;
  w->n++;
  return 0;
}

/* Every key reads back whole: get, walk (in h32 order) and due. */
static void lkeys_check(struct store *s, const struct lkeys *l) {
  for (int i = 0; i < LK_N; i++) {
    struct store_val got;
    int rc = store_get(s, "ns", 2, 1, l->h32[i], l->key[i], l->len[i], &got,
                       NULL);
    cr_assert_eq(rc, 0, "get %zu: %s", l->len[i], cairn_strerror(rc));
    cr_assert_str_eq(got.data, l->val[i]);
    cr_assert_eq(got.version, 7);
    cr_assert_eq(got.expire_at_ms, 1000 + i);
    free(got.data);
  }
  struct lk_seen w = {.l = l};
  uint64_t next;
  cr_assert_eq(store_walk(s, "ns", 2, 1, 0, 1ull << 32, 100, lk_walk_fn, &w,
                          &next), 0);
  cr_assert_eq(w.n, LK_N);
  cr_assert_eq(w.mask, (1 << LK_N) - 1);
  /* max 1 stops after one group; the group of 103 holds two long keys. */
  w = (struct lk_seen){.l = l};
  cr_assert_eq(store_walk(s, "ns", 2, 1, 101, 1ull << 32, 1, lk_walk_fn, &w,
                          &next), 0);
  cr_assert_eq(w.n, 1);
  cr_assert_eq(next, 102);
  w = (struct lk_seen){.l = l};
  cr_assert_eq(store_walk(s, "ns", 2, 1, 103, 1ull << 32, 1, lk_walk_fn, &w,
                          &next), 0);
  cr_assert_eq(w.n, 2, "the group is finished");
  cr_assert_eq(w.mask, 3 << 3);
  cr_assert_eq(next, 1ull << 32);

  struct lk_seen d = {.l = l};
  cr_assert_eq(store_due(s, 5000, 100, &(struct store_due_pos){0}, lk_due_fn,
                         &d), 0);
  cr_assert_eq(d.n, LK_N);
  cr_assert_eq(d.mask, (1 << LK_N) - 1);
  for (int i = 0; i < LK_N; i++) cr_assert_eq(d.deadlines[i], 1000 + i);
  struct store_stats st;
  cr_assert_eq(store_stats(s, &st), 0);
  cr_assert_eq(st.entries, LK_N);
  cr_assert_eq(st.expiry_index, LK_N);
}

Test(store, keys_of_every_length_round_trip_and_survive_reopening,
     .init = setup, .fini = teardown) {
  struct store *s = open_store(0, 0);
  struct lkeys l;
  lkeys_make(&l, s);
  struct store_txn *t;
  cr_assert_eq(store_begin(s, &t), 0);
  for (int i = 0; i < LK_N; i++) { /* the second put moves the deadline */
    struct store_val v = sval("first", 900, 0, 0);
    cr_assert_eq(store_put(t, "ns", 2, 1, l.h32[i], l.key[i], l.len[i], &v),
                 0, "put %zu", l.len[i]);
    v = sval(l.val[i], 1000 + i, 0, 0);
    cr_assert_eq(store_put(t, "ns", 2, 1, l.h32[i], l.key[i], l.len[i], &v),
                 0);
  }
  cr_assert_eq(store_commit(t, 1, 1), 0);
  lkeys_check(s, &l);

  /* A long key's neighbours are other keys: one byte less, or the same
   * length with only the last byte (past the stand-in's prefix) changed. */
  struct store_val got;
  size_t n = l.len[3];
  cr_assert_eq(store_get(s, "ns", 2, 1, l.h32[3], l.key[3], n - 1, &got,
                         NULL), CAIRN_ENOTFOUND);
  l.key[3][n - 1] ^= 1;
  cr_assert_eq(store_get(s, "ns", 2, 1, l.h32[3], l.key[3], n, &got, NULL),
               CAIRN_ENOTFOUND);
  l.key[3][n - 1] ^= 1;
  store_close(s);

  s = open_store(0, 0);
  lkeys_check(s, &l);
  cr_assert_eq(store_begin(s, &t), 0);
  for (int i = 0; i < LK_N; i++)
    cr_assert_eq(store_del(t, "ns", 2, 1, l.h32[i], l.key[i], l.len[i]), 0);
  cr_assert_eq(store_commit(t, 2, 1), 0);
  for (int i = 0; i < LK_N; i++)
    cr_assert_eq(store_get(s, "ns", 2, 1, l.h32[i], l.key[i], l.len[i], &got,
                           NULL), CAIRN_ENOTFOUND);
  struct store_stats st;
  cr_assert_eq(store_stats(s, &st), 0);
  cr_assert_eq(st.entries, 0);
  cr_assert_eq(st.expiry_index, 0);
  lkeys_free(&l);
  store_close(s);
}

Test(store, long_keys_sharing_their_stand_in_prefix_stay_apart,
     .init = setup, .fini = teardown) {
  struct store *s = open_store(0, 0);
  char *a = mkkey(1000, 0), *b = mkkey(1000, 0);
  b[999] = '#'; /* differs only far past the stand-in's prefix */
  struct store_txn *t;
  cr_assert_eq(store_begin(s, &t), 0);
  struct store_val va = sval("A", 0, 0, 0), vb = sval("B", 0, 0, 0);
  cr_assert_eq(store_put(t, "ns", 2, 1, 9, a, 1000, &va), 0);
  cr_assert_eq(store_put(t, "ns", 2, 1, 9, b, 1000, &vb), 0);
  cr_assert_eq(store_commit(t, 1, 1), 0);
  struct store_val got;
  cr_assert_eq(store_get(s, "ns", 2, 1, 9, a, 1000, &got, NULL), 0);
  cr_assert_str_eq(got.data, "A");
  free(got.data);
  cr_assert_eq(store_get(s, "ns", 2, 1, 9, b, 1000, &got, NULL), 0);
  cr_assert_str_eq(got.data, "B");
  free(got.data);

  cr_assert_eq(store_begin(s, &t), 0);
  cr_assert_eq(store_del(t, "ns", 2, 1, 9, a, 1000), 0);
  cr_assert_eq(store_commit(t, 2, 1), 0);
  cr_assert_eq(store_get(s, "ns", 2, 1, 9, a, 1000, &got, NULL),
               CAIRN_ENOTFOUND);
  cr_assert_eq(store_get(s, "ns", 2, 1, 9, b, 1000, &got, NULL), 0);
  cr_assert_str_eq(got.data, "B");
  free(got.data);
  free(a);
  free(b);
  store_close(s);
}

/* The data key of a long key in "ns", shard 1, as store.h lays it out. */
#define LK_PREFIX (503 - 6 - 2 - 9)
static MDB_val raw_long_key(uint8_t *buf, uint32_t h32, const char *key,
                            size_t klen) {
  MDB_val k = raw_key(buf, h32, "");
  memcpy(buf + 8, key, LK_PREFIX);
  buf[8 + LK_PREFIX] = 0xff;
  uint64_t h = hash64(key, klen);
  for (int i = 0; i < 8; i++)
    buf[9 + LK_PREFIX + i] = (uint8_t)(h >> (56 - 8 * i));
  k.mv_size = 503;
  return k;
}

Test(store, a_long_key_follows_the_documented_layout, .init = setup,
     .fini = teardown) {
  struct store *s = open_store(0, 0);
  cr_assert_eq(store_klen_max(s, 2), 503 - 6 - 2 - 1);
  char *key = mkkey(1000, 3);
  struct store_txn *t;
  cr_assert_eq(store_begin(s, &t), 0);
  struct store_val v = sval("xyz", 1000, 0, 0);
  cr_assert_eq(store_put(t, "ns", 2, 1, 0x0a0b0c0d, key, 1000, &v), 0);
  cr_assert_eq(store_commit(t, 1, 1), 0);
  store_close(s);

  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi meta, data, expiry;
  raw_open(&env, &txn, &meta, &data);
  uint8_t kb[512];
  MDB_val k = raw_long_key(kb, 0x0a0b0c0d, key, 1000), d;
  cr_assert_eq(mdb_get(txn, data, &k, &d), 0);
  /* Flags, type, version 7, lifespan 1000, then klen 1000 and the key. */
  const uint8_t want[] = {STORE_VF_LONGKEY | STORE_VF_EXPIRE, 0, 7, 0xe8,
                          0x07, 0xe8, 0x07};
  cr_assert_eq(d.mv_size, sizeof want + 1000 + 3);
  const uint8_t *b = d.mv_data;
  cr_assert_arr_eq(b, want, sizeof want);
  cr_assert_eq(memcmp(b + sizeof want, key, 1000), 0);
  cr_assert_eq(memcmp(b + sizeof want + 1000, "xyz", 3), 0);

  cr_assert_eq(mdb_dbi_open(txn, "expiry", 0, &expiry), 0);
  MDB_cursor *cur;
  cr_assert_eq(mdb_cursor_open(txn, expiry, &cur), 0);
  cr_assert_eq(mdb_cursor_get(cur, &k, &d, MDB_FIRST), 0);
  cr_assert_eq(k.mv_size, 511, "the longest key LMDB takes");
  cr_assert_arr_eq((const uint8_t *)k.mv_data + 8, kb, 503);
  mdb_cursor_close(cur);
  mdb_txn_abort(txn);
  mdb_env_close(env);
  free(key);
}

/* Plant, under the stand-in of key, a value carrying the key other. */
static void plant_long(const char *key, const char *other, size_t klen,
                       uint8_t flags) {
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi meta, data;
  raw_open(&env, &txn, &meta, &data);
  uint8_t kb[512];
  MDB_val k = raw_long_key(kb, 5, key, klen);
  cr_assert(klen >= 128 && klen < 16384); /* a two-byte varint */
  uint8_t *val = calloc(1, 5 + klen + 1);
  val[0] = flags;
  val[2] = 7; /* the version */
  val[3] = (uint8_t)(klen | 0x80);
  val[4] = (uint8_t)(klen >> 7);
  memcpy(val + 5, other, klen);
  val[5 + klen] = 'p';
  MDB_val d = {5 + klen + 1, val};
  cr_assert_eq(mdb_put(txn, data, &k, &d, 0), 0);
  cr_assert_eq(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
  free(val);
}

/* A real collision cannot be made, so one is planted: key's stand-in
 * holding another key that shares its prefix. */
Test(store, a_long_key_whose_stand_in_holds_another_is_not_overwritten,
     .init = setup, .fini = teardown) {
  store_close(open_store(0, 0));
  char *a = mkkey(1000, 1), *b = mkkey(1000, 1);
  b[999] = '#';
  plant_long(a, b, 1000, STORE_VF_LONGKEY);

  struct store *s = open_store(0, 0);
  struct store_val got, v = sval("new", 0, 0, 0);
  cr_assert_eq(store_get(s, "ns", 2, 1, 5, a, 1000, &got, NULL),
               CAIRN_ENOTFOUND);
  struct store_txn *t;
  cr_assert_eq(store_begin(s, &t), 0);
  cr_assert_eq(store_put(t, "ns", 2, 1, 5, a, 1000, &v), CAIRN_EINVAL);
  cr_assert(strstr(log_buf, "stand-in"), "log: %s", log_buf);
  cr_assert_eq(store_del(t, "ns", 2, 1, 5, a, 1000), 0, "the txn lives on");
  cr_assert_eq(store_put(t, "ns", 2, 1, 6, "k", 1, &v), 0);
  cr_assert_eq(store_commit(t, 1, 1), 0);
  struct store_stats st;
  cr_assert_eq(store_stats(s, &st), 0);
  cr_assert_eq(st.entries, 2, "the delete left the other key alone");
  /* A walk checks each stand-in against the key it holds. */
  struct walk_seen w = {0};
  uint64_t next;
  cr_assert_eq(store_walk(s, "ns", 2, 1, 5, 6, 10, walk_collect, &w, &next),
               CAIRN_ECORRUPT);
  store_close(s);
  free(a);
  free(b);
}

Test(store, malformed_long_key_entries_are_corruption, .init = setup,
     .fini = teardown) {
  store_close(open_store(0, 0));
  char *a = mkkey(800, 2);
  plant_long(a, a, 800, 0); /* a stand-in whose value lacks the flag */
  struct store *s = open_store(0, 0);
  struct store_val got;
  cr_assert_eq(store_get(s, "ns", 2, 1, 5, a, 800, &got, NULL),
               CAIRN_ECORRUPT);
  store_close(s);

  plant_long(a, a, 800, STORE_VF_LONGKEY | 0x10); /* an unknown flag */
  s = open_store(0, 0);
  cr_assert_eq(store_get(s, "ns", 2, 1, 5, a, 800, &got, NULL),
               CAIRN_ECORRUPT);
  store_close(s);

  /* A short key's value with the flag; a klen running past the value. */
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi meta, data;
  raw_open(&env, &txn, &meta, &data);
  uint8_t kb[64], val[] = {STORE_VF_LONGKEY, 0, 7, 1, 'k', 'v'};
  MDB_val k = raw_key(kb, 1, "k"), d = {sizeof val, val};
  cr_assert_eq(mdb_put(txn, data, &k, &d, 0), 0);
  val[3] = 3;
  k = raw_key(kb, 1, "j");
  cr_assert_eq(mdb_put(txn, data, &k, &d, 0), 0);
  cr_assert_eq(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
  s = open_store(0, 0);
  cr_assert_eq(get1(s, 1, "k", &got), CAIRN_ECORRUPT);
  cr_assert_eq(get1(s, 1, "j", &got), CAIRN_ECORRUPT);
  store_close(s);

  /* The store back to its good self, then the long key's data entry gone
   * from under its expiry entry. */
  s = open_store(0, 0);
  struct store_txn *t;
  cr_assert_eq(store_begin(s, &t), 0);
  struct store_val v = sval("v", 10, 0, 0);
  cr_assert_eq(store_put(t, "ns", 2, 1, 7, a, 800, &v), 0);
  cr_assert_eq(store_commit(t, 1, 1), 0);
  store_close(s);
  raw_open(&env, &txn, &meta, &data);
  uint8_t lb[512];
  k = raw_long_key(lb, 7, a, 800);
  cr_assert_eq(mdb_del(txn, data, &k, NULL), 0);
  cr_assert_eq(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
  s = open_store(0, 0);
  int calls = 0;
  cr_assert_eq(store_due(s, 100, 10, &(struct store_due_pos){0}, due_stop, &calls),
               CAIRN_ECORRUPT);
  cr_assert_eq(calls, 0);
  store_close(s);
  free(a);
}

Test(store, a_key_over_the_key_max_is_refused, .init = setup,
     .fini = teardown) {
  struct store *s = open_store(0, 0);
  char *key = mkkey(CAIRN_KEY_MAX + 1, 0);
  struct store_val v = sval("v", 0, 0, 0), got;
  struct store_txn *t;
  cr_assert_eq(store_begin(s, &t), 0);
  cr_assert_eq(store_put(t, "ns", 2, 1, 1, key, CAIRN_KEY_MAX + 1, &v),
               CAIRN_EINVAL);
  cr_assert_eq(store_del(t, "ns", 2, 1, 1, key, CAIRN_KEY_MAX + 1), 0);
  cr_assert_eq(store_put(t, "ns", 2, 1, 1, key, CAIRN_KEY_MAX, &v), 0,
               "the txn lives on");
  cr_assert_eq(store_commit(t, 1, 1), 0);
  cr_assert_eq(store_get(s, "ns", 2, 1, 1, key, CAIRN_KEY_MAX + 1, &got,
                         NULL), CAIRN_ENOTFOUND);
  free(key);
  store_close(s);
}

/* Make key's last bytes (far past the stand-in's prefix) tell i apart. */
static void lk_stamp(char *key, size_t klen, int i) {
  char tmp[16];
  snprintf(tmp, sizeof tmp, "%07d", i);
  memcpy(key + klen - 7, tmp, 7);
}

/* Long keys in a txn that grows the map: the redo list re-applies their
 * puts and deletes, and the expiry index ends with one entry each. */
Test(store, the_map_grows_inside_a_txn_of_long_keys, .init = setup,
     .fini = teardown) {
  enum { N = 600, KLEN = 2000 };
  static char buf[4001];
  memset(buf, 'v', 4000);
  struct store *s = open_store(1u << 20, 0);
  struct store_txn *t;
  cr_assert_eq(store_begin(s, &t), 0);
  char *key = mkkey(KLEN, 0);
  for (int i = 0; i < N; i++) {
    lk_stamp(key, KLEN, i);
    buf[0] = (char)('a' + i % 26);
    struct store_val v = {.version = 1, .expire_at_ms = 100 + i,
                          .data = buf, .len = 4000};
    cr_assert_eq(store_put(t, "ns", 2, 1, (uint32_t)i / 4, key, KLEN, &v), 0,
                 "put %d", i);
    if (i % 3 == 0)
      cr_assert_eq(store_del(t, "ns", 2, 1, (uint32_t)i / 4, key, KLEN), 0);
  }
  cr_assert_eq(store_commit(t, 9, 1), 0);
  cr_assert(strstr(log_buf, "grown"), "log: %s", log_buf);
  store_close(s);

  s = open_store(0, 0);
  struct store_stats st;
  cr_assert_eq(store_stats(s, &st), 0);
  cr_assert_eq(st.entries, N - N / 3);
  cr_assert_eq(st.expiry_index, N - N / 3);
  for (int i = 0; i < N; i++) {
    lk_stamp(key, KLEN, i);
    struct store_val got;
    int rc = store_get(s, "ns", 2, 1, (uint32_t)i / 4, key, KLEN, &got, NULL);
    if (i % 3 == 0) {
      cr_assert_eq(rc, CAIRN_ENOTFOUND, "key %d", i);
      continue;
    }
    cr_assert_eq(rc, 0, "key %d", i);
    cr_assert_eq(got.len, 4000);
    cr_assert_eq(((char *)got.data)[0], (char)('a' + i % 26));
    cr_assert_eq(got.expire_at_ms, 100 + i);
    free(got.data);
  }
  free(key);
  store_close(s);
}

/* ------------------------------------------------------------------------
 * Readers: stale ones, and live ones beside a writer.
 * --------------------------------------------------------------------- */

Test(store, a_stale_reader_is_cleared_at_open, .init = setup,
     .fini = teardown) {
  store_close(open_store(0, 0));
  /* LMDB resets the reader table when one process opens the environment
   * alone, so a holder keeps it open while a reader dies. */
  int go[2], ready[2];
  cr_assert_eq(pipe(go), 0);
  cr_assert_eq(pipe(ready), 0);
  pid_t holder = fork();
  cr_assert_geq(holder, 0);
  if (holder == 0) {
    MDB_env *env;
    char c = 0;
    if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 8) ||
        mdb_env_open(env, dir, MDB_NOTLS, 0644))
      _exit(1);
    if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) != 1) _exit(1);
    mdb_env_close(env);
    _exit(0);
  }
  char c;
  cr_assert_eq(read(ready[0], &c, 1), 1);
  pid_t reader = fork();
  cr_assert_geq(reader, 0);
  if (reader == 0) {
    MDB_env *env;
    MDB_txn *txn;
    if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 8) ||
        mdb_env_open(env, dir, MDB_NOTLS, 0644) ||
        mdb_txn_begin(env, NULL, MDB_RDONLY, &txn))
      _exit(1);
    _exit(0); /* dies holding its reader slot */
  }
  int status;
  cr_assert_eq(waitpid(reader, &status, 0), reader);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

  struct store *s = open_store(0, 0);
  cr_assert(strstr(log_buf, "cleared 1 stale reader"), "log: %s", log_buf);
  store_close(s);
  cr_assert_eq(write(go[1], &c, 1), 1);
  cr_assert_eq(waitpid(holder, &status, 0), holder);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

struct reader_arg {
  struct store *s;
  const char *want;
  uint64_t want_lsn;
  int rc;
};

static void *read_once(void *p) {
  struct reader_arg *r = p;
  struct store_val got;
  uint64_t lsn;
  r->rc = store_get(r->s, "ns", 2, 1, 1, "a", 1, &got, &lsn);
  if (r->rc == 0) {
    if (strcmp(got.data, r->want) != 0 || lsn != r->want_lsn) r->rc = -1;
    free(got.data);
  }
  return NULL;
}

static int read_in_thread(struct store *s, const char *want, uint64_t lsn) {
  struct reader_arg r = {s, want, lsn, 0};
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, read_once, &r), 0);
  pthread_join(th, NULL);
  return r.rc;
}

Test(store, readers_see_the_committed_state_until_commit, .init = setup,
     .fini = teardown) {
  struct store *s = open_store(0, 0);
  put1(s, 1, "a", sval("old", 0, 0, 0), 1);
  struct store_txn *t;
  cr_assert_eq(store_begin(s, &t), 0);
  struct store_val v = sval("new", 0, 0, 0);
  cr_assert_eq(store_put(t, "ns", 2, 1, 1, "a", 1, &v), 0);
  cr_assert_eq(read_in_thread(s, "old", 1), 0);
  cr_assert_eq(store_commit(t, 2, 1), 0);
  cr_assert_eq(read_in_thread(s, "new", 2), 0);

  cr_assert_eq(store_begin(s, &t), 0);
  cr_assert_eq(store_del(t, "ns", 2, 1, 1, "a", 1), 0);
  cr_assert_eq(read_in_thread(s, "new", 2), 0);
  cr_assert_eq(store_commit(t, 3, 1), 0);
  cr_assert_eq(read_in_thread(s, "new", 3), CAIRN_ENOTFOUND);
  store_close(s);
}

struct hammer {
  struct store *s;
  int stop; /* __atomic */
  long reads; /* __atomic */
  int bad;    /* __atomic */
};

static void *hammer_reads(void *p) {
  struct hammer *h = p;
  do { /* at least once, however the threads are scheduled */
    struct store_val got;
    uint64_t lsn;
    int rc = store_get(h->s, "ns", 2, 1, 1, "a", 1, &got, &lsn);
    if (rc != 0 || strcmp(got.data, "old") != 0 || lsn != 1)
      __atomic_fetch_add(&h->bad, 1, __ATOMIC_RELAXED);
    if (rc == 0) free(got.data);
    struct store_stats st;
    if (store_stats(h->s, &st) != 0 || st.entries != 1)
      __atomic_fetch_add(&h->bad, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&h->reads, 1, __ATOMIC_RELAXED);
  } while (!__atomic_load_n(&h->stop, __ATOMIC_ACQUIRE));
  return NULL;
}

/* nthreads readers of one key while a txn grows the map several times. */
static void reads_during_growth(int nthreads) {
  struct store *s = open_store(1u << 20, 0);
  put1(s, 1, "a", sval("old", 0, 0, 0), 1);
  struct hammer h = {.s = s};
  pthread_t th[STORE_READ_SLOTS + 8];
  cr_assert_leq(nthreads, (int)(sizeof th / sizeof th[0]));
  for (int i = 0; i < nthreads; i++)
    cr_assert_eq(pthread_create(&th[i], NULL, hammer_reads, &h), 0);
  struct store_txn *t;
  cr_assert_eq(store_begin(s, &t), 0);
  put_many(t, 2, 2000, 0); /* ~8 MB: several resizes */
  __atomic_store_n(&h.stop, 1, __ATOMIC_RELEASE);
  for (int i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
  cr_assert_eq(store_commit(t, 2, 1), 0);
  cr_assert_eq(h.bad, 0);
  cr_assert_geq(h.reads, nthreads);
  check_many(s, 2, 2000);
  store_close(s);
}

Test(store, readers_run_while_the_map_grows, .init = setup,
     .fini = teardown) {
  reads_during_growth(2);
}

/* More readers than read slots: some share a slot, or take another's. */
Test(store, more_readers_than_slots_run_while_the_map_grows, .init = setup,
     .fini = teardown) {
  reads_during_growth(STORE_READ_SLOTS + 8);
}
