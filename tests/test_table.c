/*
 * test_table.c - entries, the h32-ordered shards, and resumable walks.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "cobj.h"
#include "coll.h"
#include "table.h"

/* ------------------------------------------------------------------------
 * Helpers
 */

#define KLEN 16

static void key_of(char *buf, uint32_t id) {
  char tmp[KLEN + 1];
  snprintf(tmp, sizeof tmp, "k%015u", id);
  memcpy(buf, tmp, KLEN);
}

static uint32_t id_of(const struct entry *e) {
  char tmp[KLEN + 1];
  cr_assert_eq(entry_klen(e), KLEN);
  memcpy(tmp, entry_key(e), KLEN);
  tmp[KLEN] = 0;
  return (uint32_t)strtoul(tmp + 1, NULL, 10);
}

static struct table *new_table(void) {
  struct table *t = NULL;
  cr_assert_eq(table_new(&t), 0);
  cr_assert_not_null(t);
  return t;
}

/* Put key `id` with its real hash; the value is the id, 8 bytes. */
static void put_id(struct table *t, uint32_t id, uint64_t version) {
  char k[KLEN];
  key_of(k, id);
  uint64_t h = table_hash(k, KLEN);
  uint64_t v = id;
  struct entry *e = entry_new(k, KLEN, &v, sizeof v, h, version, 0, 0, 0, 0);
  cr_assert_not_null(e);
  table_wrlock(t, table_shard(h));
  cr_assert_eq(table_put(t, h, e), 0);
  table_unlock(t, table_shard(h));
}

static struct entry *find_id(struct table *t, uint32_t id) {
  char k[KLEN];
  key_of(k, id);
  uint64_t h = table_hash(k, KLEN);
  table_rdlock(t, table_shard(h));
  struct entry *e = table_find(t, h, k, KLEN);
  table_unlock(t, table_shard(h));
  return e;
}

static bool remove_id(struct table *t, uint32_t id) {
  char k[KLEN];
  key_of(k, id);
  uint64_t h = table_hash(k, KLEN);
  table_wrlock(t, table_shard(h));
  struct entry *e = table_remove(t, h, k, KLEN);
  table_unlock(t, table_shard(h));
  entry_free(e);
  return e != NULL;
}

/* ------------------------------------------------------------------------
 * Entries
 */

Test(table, entry_header_is_packed_so_a_small_entry_fits_one_144_byte_chunk) {
  cr_assert_eq(sizeof(struct entry), 20);
  char k[16] = "0123456789abcdef", v[100];
  memset(v, 'v', sizeof v);
  struct entry *e = entry_new(k, 16, v, 100, 1, 1, 0, 0, 0, 0);
  cr_assert_eq(entry_bytes(e), 144);
  entry_free(e);
  /* An expiry costs its 8 bytes, which here crosses into the next chunk. */
  e = entry_new(k, 16, v, 100, 1, 1, 1000, 0, 0, 0);
  cr_assert_eq(entry_bytes(e), 160);
  entry_free(e);
  e = entry_new("k", 1, NULL, 0, 1, 1, 0, 0, 0, 0);
  cr_assert_eq(entry_bytes(e), 32);
  entry_free(e);
}

static void check_entry(int64_t exp, uint64_t idle, int64_t last,
                        unsigned flags) {
  const char *k = "session:abc";
  const char *v = "some value bytes";
  uint64_t hash = 0x123456789abcdef0ull, ver = 0x1122334455667788ull;
  struct entry *e = entry_new(k, strlen(k), v, strlen(v), hash, ver, exp,
                              idle, last, flags);
  cr_assert_not_null(e);
  cr_assert_eq(e->h32, 0x12345678u);
  cr_assert_eq(entry_version(e), ver);
  cr_assert_eq(entry_klen(e), strlen(k));
  cr_assert_eq(entry_vlen(e), strlen(v));
  cr_assert_arr_eq(entry_key(e), k, strlen(k));
  cr_assert_arr_eq(entry_val(e), v, strlen(v));
  unsigned want = flags | (exp ? ENTRY_F_EXPIRE : 0) | (idle ? ENTRY_F_IDLE : 0);
  cr_assert_eq(entry_flags(e), want);
  cr_assert_eq(entry_expire_at(e), exp);
  cr_assert_eq(entry_max_idle(e), idle);
  cr_assert_eq(entry_last_access(e), idle ? last : 0);
  entry_free(e);
}

Test(table, entry_fields_round_trip_with_and_without_expiry_fields) {
  check_entry(0, 0, 0, 0);
  check_entry(0, 0, 0, ENTRY_F_MEMORY);
  check_entry(1700000000123, 0, 0, 0);
  check_entry(0, 30000, 1700000000000, 0);
  check_entry(1700000000123, 30000, 1700000000000, ENTRY_F_MEMORY);
  check_entry(-5, 1, -7, 0); /* odd values still round-trip */
}

Test(table, entry_expiry_flags_follow_the_values_not_the_caller) {
  struct entry *e = entry_new("k", 1, "v", 1, 0, 0, 0, 0, 0,
                              ENTRY_F_EXPIRE | ENTRY_F_IDLE);
  cr_assert_eq(entry_flags(e), 0);
  cr_assert_eq(entry_deadline(e), 0);
  entry_free(e);
}

Test(table, entry_deadline_is_the_earlier_of_expiry_and_idle_timeout) {
  struct entry *e = entry_new("k", 1, "v", 1, 0, 0, 5000, 0, 0, 0);
  cr_assert_eq(entry_deadline(e), 5000);
  entry_touch(e, 4000); /* no idle field: touching changes nothing */
  cr_assert_eq(entry_last_access(e), 0);
  cr_assert_eq(entry_deadline(e), 5000);
  entry_free(e);

  e = entry_new("k", 1, "v", 1, 0, 0, 0, 1000, 2000, 0);
  cr_assert_eq(entry_deadline(e), 3000);
  entry_touch(e, 2500);
  cr_assert_eq(entry_last_access(e), 2500);
  cr_assert_eq(entry_deadline(e), 3500);
  entry_free(e);

  e = entry_new("k", 1, "v", 1, 0, 0, 10000, 1000, 2000, 0);
  cr_assert_eq(entry_deadline(e), 3000);
  entry_touch(e, 9500); /* idle would end at 10500: the lifespan wins */
  cr_assert_eq(entry_deadline(e), 10000);
  cr_assert_eq(entry_expire_at(e), 10000);
  cr_assert_eq(entry_max_idle(e), 1000);
  entry_free(e);

  /* A huge idle time saturates instead of wrapping into the past. */
  e = entry_new("k", 1, "v", 1, 0, 0, 0, UINT64_MAX, 2000, 0);
  cr_assert_eq(entry_deadline(e), INT64_MAX);
  entry_free(e);
}

/* ------------------------------------------------------------------------
 * Table basics
 */

Test(table, put_find_replace_and_remove_one_key) {
  struct table *t = new_table();
  cr_assert_eq(table_count(t), 0);
  cr_assert_null(find_id(t, 7));
  uint64_t empty_bytes = table_bytes(t);

  put_id(t, 7, 1);
  struct entry *e = find_id(t, 7);
  cr_assert_not_null(e);
  cr_assert_eq(entry_version(e), 1);
  cr_assert_eq(table_count(t), 1);
  cr_assert_gt(table_bytes(t), empty_bytes + entry_bytes(e));

  put_id(t, 7, 2); /* replaces, frees the old entry */
  cr_assert_eq(entry_version(find_id(t, 7)), 2);
  cr_assert_eq(table_count(t), 1);
  cr_assert_null(find_id(t, 8));

  cr_assert(remove_id(t, 7));
  cr_assert_not(remove_id(t, 7));
  cr_assert_null(find_id(t, 7));
  cr_assert_eq(table_count(t), 0);
  cr_assert_eq(table_check(t), 0);
  table_free(t);
  table_free(NULL);
}

Test(table, keys_differing_only_in_length_or_bytes_stay_apart) {
  struct table *t = new_table();
  /* Same hash for all three: only the key comparison separates them. */
  const char *keys[] = {"ab", "abc", "abd"};
  uint64_t h = 0xdeadbeef00000005ull;
  for (int i = 0; i < 3; i++) {
    struct entry *e = entry_new(keys[i], strlen(keys[i]), &i, sizeof i, h,
                                (uint64_t)i, 0, 0, 0, 0);
    cr_assert_eq(table_put(t, h, e), 0);
  }
  for (int i = 0; i < 3; i++) {
    struct entry *e = table_find(t, h, keys[i], strlen(keys[i]));
    cr_assert_not_null(e);
    cr_assert_eq(entry_version(e), (uint64_t)i);
  }
  cr_assert_null(table_find(t, h, "a", 1));
  cr_assert_eq(table_count(t), 3);
  table_free(t);
}

Test(table, every_key_survives_growth_and_shrink_in_order) {
  struct table *t = new_table();
  const uint32_t n = 200000;
  for (uint32_t i = 0; i < n; i++) put_id(t, i, i + 1);
  cr_assert_eq(table_count(t), n);
  cr_assert_eq(table_check(t), 0);
  for (uint32_t i = 0; i < n; i++) {
    struct entry *e = find_id(t, i);
    cr_assert_not_null(e, "key %u lost after growth", i);
    cr_assert_eq(entry_version(e), (uint64_t)i + 1);
  }
  uint64_t full = table_bytes(t);

  for (uint32_t i = 0; i < n; i++)
    if (i % 20) cr_assert(remove_id(t, i));
  cr_assert_eq(table_count(t), n / 20);
  cr_assert_eq(table_check(t), 0);
  for (uint32_t i = 0; i < n; i++) {
    if (i % 20) cr_assert_null(find_id(t, i));
    else cr_assert_not_null(find_id(t, i), "key %u lost after shrink", i);
  }
  /* The arrays shrank along with the entries. */
  uint64_t per_entry_full = full / n;
  uint64_t per_entry_after = table_bytes(t) / (n / 20);
  cr_assert_lt(per_entry_after, per_entry_full + 64,
               "arrays did not shrink: %lu vs %lu bytes per entry",
               (unsigned long)per_entry_after, (unsigned long)per_entry_full);

  for (uint32_t i = 0; i < n; i += 20) cr_assert(remove_id(t, i));
  cr_assert_eq(table_count(t), 0);
  cr_assert_eq(table_check(t), 0);
  table_free(t);
}

Test(table, table_bytes_counts_entry_chunks_and_arrays) {
  struct table *t = new_table();
  uint64_t b0 = table_bytes(t);
  const uint32_t n = 10000;
  uint64_t chunks = 0;
  for (uint32_t i = 0; i < n; i++) {
    put_id(t, i, 1);
    chunks += entry_bytes(find_id(t, i));
  }
  uint64_t arrays = table_bytes(t) - b0 - chunks;
  /* Load stays between about 0.57 and 0.85, 8 bytes a slot, plus tails and
   * the small minimum arrays of 256 shards. */
  cr_assert_gt(arrays, (uint64_t)n * 8);
  cr_assert_lt(arrays, (uint64_t)n * 20);
  table_free(t);
}

/* ------------------------------------------------------------------------
 * Chosen hashes: equal h32 groups
 */

static uint64_t hash_of(uint32_t h32, unsigned shard) {
  return (uint64_t)h32 << 32 | shard;
}

static void put_raw(struct table *t, uint64_t h, uint32_t id) {
  char k[KLEN];
  key_of(k, id);
  struct entry *e = entry_new(k, KLEN, NULL, 0, h, id, 0, 0, 0, 0);
  cr_assert_eq(table_put(t, h, e), 0);
}

struct calls {
  uint32_t h32[4096];
  size_t n;
};

static int record_visit(void *arg, struct entry *e) {
  struct calls *c = arg;
  cr_assert_lt(c->n, 4096);
  c->h32[c->n++] = e->h32;
  return 0;
}

Test(table, a_walk_never_splits_entries_that_share_an_h32) {
  struct table *t = new_table();
  /* Groups of 1..40 entries at spread h32 values, including both ends and a
   * group past any tail (120 entries at the top h32), in shard 3. */
  uint32_t groups[] = {0, 1, 0x10000000u, 0x10000001u, 0x80000000u,
                       0xfffffffeu, 0xffffffffu};
  size_t sizes[] = {5, 1, 40, 2, 17, 3, 120};
  uint32_t id = 0;
  size_t total = 0;
  for (size_t g = 0; g < 7; g++)
    for (size_t j = 0; j < sizes[g]; j++, total++)
      put_raw(t, hash_of(groups[g], 3), id++);
  cr_assert_eq(table_count(t), total);
  cr_assert_eq(table_check(t), 0);

  for (size_t max = 1; max <= 50; max += 7) {
    uint64_t from = 0;
    size_t seen = 0, calls = 0;
    int more;
    do {
      struct calls c = {.n = 0};
      more = table_walk(t, 3, &from, max, record_visit, &c);
      cr_assert_gt(c.n, 0);
      for (size_t i = 1; i < c.n; i++) cr_assert_leq(c.h32[i - 1], c.h32[i]);
      /* Past max, only the last group may continue, and it is whole. */
      uint32_t last = c.h32[c.n - 1];
      for (size_t i = max; i < c.n; i++) cr_assert_eq(c.h32[i], last);
      size_t in_last = 0;
      for (size_t i = 0; i < c.n; i++) in_last += c.h32[i] == last;
      for (size_t g = 0; g < 7; g++)
        if (groups[g] == last) cr_assert_eq(in_last, sizes[g]);
      cr_assert_eq(from, more ? (uint64_t)last + 1 : 1ull << 32);
      seen += c.n;
      calls++;
      cr_assert_lt(calls, 1000);
    } while (more);
    cr_assert_eq(seen, total);
    cr_assert_eq(from, 1ull << 32);
  }

  /* Other shards are empty. */
  uint64_t from = 0;
  struct calls c = {.n = 0};
  cr_assert_eq(table_walk(t, 4, &from, 10, record_visit, &c), 0);
  cr_assert_eq(c.n, 0);

  /* Every colliding key is found and removable, from inside the groups. */
  for (uint32_t i = 0, g = 0, j = 0; i < id; i++) {
    char k[KLEN];
    key_of(k, i);
    uint64_t h = hash_of(groups[g], 3);
    cr_assert_not_null(table_find(t, h, k, KLEN), "id %u", i);
    if (i % 2) entry_free(table_remove(t, h, k, KLEN));
    if (++j == sizes[g]) g++, j = 0;
  }
  cr_assert_eq(table_check(t), 0);
  cr_assert_eq(table_count(t), total - id / 2);
  table_free(t);
}

static int stop_at_once(void *arg, struct entry *e) {
  (void)e;
  ++*(size_t *)arg;
  return 1;
}

Test(table, a_walk_stopped_by_its_callback_still_finishes_the_group) {
  struct table *t = new_table();
  for (uint32_t i = 0; i < 6; i++) put_raw(t, hash_of(1000, 0), i);
  put_raw(t, hash_of(2000, 0), 6);
  uint64_t from = 0;
  size_t n = 0;
  cr_assert_eq(table_walk(t, 0, &from, 100, stop_at_once, &n), 1);
  cr_assert_eq(n, 6);
  cr_assert_eq(from, 1001);
  n = 0;
  cr_assert_eq(table_walk(t, 0, &from, 100, stop_at_once, &n), 0);
  cr_assert_eq(n, 1);
  cr_assert_eq(from, 1ull << 32);
  n = 0;
  cr_assert_eq(table_walk(t, 0, &from, 100, stop_at_once, &n), 0);
  cr_assert_eq(n, 0);
  cr_assert_eq(from, 1ull << 32);
  table_free(t);
}

/* ------------------------------------------------------------------------
 * Walks under change
 */

#define CHURN_STABLE 5000u  /* ids below stay from start to end */
#define CHURN_IDS    60000u
#define CHURN_PHASE  150u   /* rounds between forced resizes */

struct visits {
  uint8_t *count; /* per id */
};

static int count_visit(void *arg, struct entry *e) {
  struct visits *v = arg;
  uint32_t id = id_of(e);
  cr_assert_lt(id, CHURN_IDS);
  v->count[id]++;
  return 0;
}

/* Slot array bytes: every test entry here costs one 64-byte chunk. */
static uint64_t array_bytes(struct table *t) {
  return table_bytes(t) - table_count(t) * 64;
}

struct churn {
  uint8_t *live;
  uint32_t rng;
  unsigned round;
  unsigned shrinks; /* forced shrinks seen */
};

/* Between walk calls: add and drop a few churn keys, and every phase fill
 * every churn key (the shards grow) or drop them all (they shrink). */
static void churn(struct table *t, struct churn *c) {
  unsigned phase = c->round++ % CHURN_PHASE;
  if (phase == 0 || phase == CHURN_PHASE / 2) {
    uint64_t before = array_bytes(t);
    for (uint32_t id = CHURN_STABLE; id < CHURN_IDS; id++) {
      if (phase == 0 && !c->live[id]) put_id(t, id, c->round);
      if (phase != 0 && c->live[id]) cr_assert(remove_id(t, id));
      c->live[id] = phase == 0;
    }
    if (phase != 0 && array_bytes(t) < before / 2) c->shrinks++;
    return;
  }
  for (unsigned i = 0; i < 40; i++) {
    c->rng = c->rng * 1103515245u + 12345u;
    uint32_t id = CHURN_STABLE + (c->rng >> 8) % (CHURN_IDS - CHURN_STABLE);
    if (c->live[id]) cr_assert(remove_id(t, id));
    else put_id(t, id, c->round);
    c->live[id] = !c->live[id];
  }
}

Test(table, a_resumed_walk_visits_each_stable_key_exactly_once, .timeout = 60) {
  struct table *t = new_table();
  struct churn c = {.live = calloc(CHURN_IDS, 1), .rng = 42};
  struct visits v = {.count = calloc(CHURN_IDS, 1)};
  for (uint32_t i = 0; i < CHURN_STABLE; i++) put_id(t, i, 0), c.live[i] = 1;
  for (unsigned s = 0; s < TABLE_SHARDS; s++) {
    uint64_t from = 0;
    int more = 1;
    while (more) {
      table_rdlock(t, s);
      more = table_walk(t, s, &from, 5, count_visit, &v);
      table_unlock(t, s);
      churn(t, &c);
    }
    cr_assert_eq(from, 1ull << 32);
  }
  cr_assert_eq(table_check(t), 0);
  for (uint32_t id = 0; id < CHURN_IDS; id++) {
    if (id < CHURN_STABLE)
      cr_assert_eq(v.count[id], 1, "stable id %u seen %u times", id,
                   v.count[id]);
    else
      cr_assert_leq(v.count[id], 1, "id %u seen %u times", id, v.count[id]);
  }
  /* The walk really was interleaved with growth and shrinking. */
  cr_assert_gt(c.round, 4 * CHURN_PHASE);
  cr_assert_gt(c.shrinks, 2);
  free(c.live);
  free(v.count);
  table_free(t);
}

/* ------------------------------------------------------------------------
 * Threads
 */

struct worker {
  struct table *t;
  uint32_t base;
  bool writer;
};

static void *work(void *arg) {
  struct worker *w = arg;
  for (uint32_t round = 0; round < 3; round++)
    for (uint32_t i = 0; i < 20000; i++) {
      uint32_t id = w->base + i;
      if (w->writer) {
        if (round == 1) remove_id(w->t, id);
        else put_id(w->t, id, round);
        continue;
      }
      char k[KLEN];
      key_of(k, id);
      uint64_t h = table_hash(k, KLEN);
      table_rdlock(w->t, table_shard(h));
      struct entry *e = table_find(w->t, h, k, KLEN);
      if (e) entry_touch(e, 1); /* no idle field: must be a no-op */
      if (e) cr_assert_eq(id_of(e), id);
      table_unlock(w->t, table_shard(h));
    }
  return NULL;
}

Test(table, shards_take_concurrent_readers_and_writers) {
  struct table *t = new_table();
  struct worker w[4] = {{t, 0, true}, {t, 100000, true},
                        {t, 0, false}, {t, 100000, false}};
  pthread_t th[4];
  for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, work, &w[i]);
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  cr_assert_eq(table_count(t), 40000);
  cr_assert_eq(table_check(t), 0);
  table_free(t);
}

Test(table, counts_the_entries_the_expiry_sweep_must_visit) {
  struct table *t;
  cr_assert_eq(table_new(&t), 0);
  uint64_t h = table_hash("k", 1);
  unsigned shard = table_shard(h);
  table_wrlock(t, shard);
  cr_assert_eq(table_put(t, h, entry_new("k", 1, "v", 1, h, 1, 0, 0, 0, 0)), 0);
  cr_assert_eq(table_mortal(t, shard), 0);
  /* Replaced by one with a lifespan, then by a tombstone, then removed. */
  cr_assert_eq(table_put(t, h, entry_new("k", 1, "v", 1, h, 2, 99, 0, 0, 0)), 0);
  cr_assert_eq(table_mortal(t, shard), 1);
  cr_assert_eq(table_put(t, h, entry_new("k", 1, NULL, 0, h, 3, 0, 0, 0,
                                         ENTRY_F_TOMB)), 0);
  cr_assert_eq(table_mortal(t, shard), 1);
  cr_assert_eq(table_put(t, h, entry_new("k", 1, "v", 1, h, 4, 0, 5, 0, 0)), 0);
  cr_assert_eq(table_mortal(t, shard), 1);
  entry_free(table_remove(t, h, "k", 1));
  cr_assert_eq(table_mortal(t, shard), 0);
  table_unlock(t, shard);
  table_free(t);
}

/* An entry holding a collection object: its bytes count the object, stay
 * right as the object changes in place, and its value reads as the blob. */
Test(table, object_entries_account_their_object_and_read_as_blobs) {
  struct table *t;
  cr_assert_eq(table_new(&t), 0);
  struct coll_delta d;
  coll_delta_init(&d);
  coll_sadd(&d, "a", 1);
  void *blob;
  size_t blen;
  cr_assert_eq(coll_apply(COLL_SET, NULL, 0, d.buf, d.len, &blob, &blen), 0);
  coll_delta_free(&d);
  struct cobj *o;
  cr_assert_eq(cobj_from_blob(COLL_SET, blob, blen, &o), 0);
  free(blob);
  uint64_t h = table_hash("k", 1);
  struct entry *e = entry_new_obj("k", 1, o, h, 7, 0, 0, 0, 0);
  cr_assert_not_null(e);
  cr_assert_eq(entry_obj(e), o);
  cr_assert_eq(entry_type(e), COLL_SET);
  cr_assert_eq(table_put(t, h, e), 0);
  uint64_t small = table_bytes(t);
  size_t before = entry_bytes(e);
  coll_delta_init(&d);
  for (int i = 0; i < 1000; i++) {
    char m[16];
    coll_sadd(&d, m, (size_t)snprintf(m, sizeof m, "m%d", i));
  }
  cr_assert_eq(cobj_apply(o, d.buf, d.len), 0);
  table_resized(t, h, e, before);
  cr_assert_gt(table_bytes(t), small + 1000 * 16);
  cr_assert_eq(table_check(t), 0);
  /* entry_val is the blob the object encodes to. */
  cr_assert_eq(entry_vlen(e), cobj_blob_len(o));
  struct coll_iter it;
  cr_assert_eq(coll_iter_init(&it, COLL_SET, entry_val(e), entry_vlen(e)),
               1001);
  struct coll_elem x;
  cr_assert_eq(coll_find(COLL_SET, entry_val(e), entry_vlen(e), "m999", 4,
                         &x), 1);
  coll_delta_free(&d);
  table_free(t); /* frees the entry and its object (leak-checked) */
}
