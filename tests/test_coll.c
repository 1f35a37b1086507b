/*
 * test_coll.c - the collection blob and delta codecs, and coll_apply.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "coll.h"
#include "record.h"

/* ------------------------------------------------------------------------
 * Helpers.
 * --------------------------------------------------------------------- */

struct blob {
  void *p;
  size_t len;
};

/* Render a blob as text: "f=v,..." (hash), "m,..." (set, list) or
 * "score:m,..." (zset), checking the count and the iteration on the way. */
static void dump(int type, const struct blob *b, char *out, size_t cap) {
  struct coll_iter it;
  long n = coll_iter_init(&it, type, b->p, b->len);
  cr_assert_geq(n, 0, "blob rejected: %ld", n);
  struct coll_elem e;
  size_t used = 0;
  long seen = 0;
  int rc;
  out[0] = '\0';
  while ((rc = coll_next(&it, &e)) == 1) {
    const char *sep = seen++ ? "," : "";
    int w;
    if (type == COLL_HASH)
      w = snprintf(out + used, cap - used, "%s%.*s=%.*s", sep, (int)e.alen,
                   (const char *)e.a, (int)e.blen, (const char *)e.b);
    else if (type == COLL_ZSET)
      w = snprintf(out + used, cap - used, "%s%g:%.*s", sep, e.score,
                   (int)e.alen, (const char *)e.a);
    else
      w = snprintf(out + used, cap - used, "%s%.*s", sep, (int)e.alen,
                   (const char *)e.a);
    cr_assert(w >= 0 && (size_t)w < cap - used);
    used += (size_t)w;
  }
  cr_assert_eq(rc, 0);
  cr_assert_eq(seen, n);
}

static void expect(int type, const struct blob *b, const char *want) {
  char got[4096];
  dump(type, b, got, sizeof got);
  cr_assert_str_eq(got, want);
  if (!*want) cr_assert(b->p == NULL && b->len == 0);
}

/* Apply d to b (replacing it) and free d; returns coll_apply's result. */
static int apply(int type, struct blob *b, struct coll_delta *d) {
  cr_assert_eq(d->err, 0);
  void *out = (void *)1;
  size_t outlen = 12345;
  int rc = coll_apply(type, b->p, b->len, d->buf, d->len, &out, &outlen);
  cr_assert_eq(coll_delta_check(type, d->buf, d->len), 0);
  if (rc == 0) {
    free(b->p);
    b->p = out;
    b->len = outlen;
  } else {
    cr_assert(out == (void *)1 && outlen == 12345, "out-params touched");
  }
  coll_delta_free(d);
  return rc;
}

static void apply_ok(int type, struct blob *b, struct coll_delta *d) {
  cr_assert_eq(apply(type, b, d), 0);
}

#define S(x) (x), strlen(x)

static void hset(struct blob *b, const char *f, const char *v) {
  struct coll_delta d;
  coll_delta_init(&d);
  coll_hset(&d, S(f), S(v));
  apply_ok(COLL_HASH, b, &d);
}

static void rpush_all(struct blob *b, const char *csv) {
  struct coll_delta d;
  coll_delta_init(&d);
  char tmp[256];
  snprintf(tmp, sizeof tmp, "%s", csv);
  for (char *s = strtok(tmp, ","); s; s = strtok(NULL, ","))
    coll_push(&d, 1, S(s));
  apply_ok(COLL_LIST, b, &d);
}

static void zadd(struct blob *b, double score, const char *m) {
  struct coll_delta d;
  coll_delta_init(&d);
  coll_zset(&d, score, S(m));
  apply_ok(COLL_ZSET, b, &d);
}

/* ------------------------------------------------------------------------
 * Hashes and sets.
 * --------------------------------------------------------------------- */

Test(coll, hset_appends_new_fields_and_replaces_in_place) {
  struct blob b = {0};
  hset(&b, "a", "1");
  expect(COLL_HASH, &b, "a=1");
  hset(&b, "b", "2");
  hset(&b, "c", "3");
  hset(&b, "a", "longer value");
  expect(COLL_HASH, &b, "a=longer value,b=2,c=3");
  hset(&b, "", "");
  expect(COLL_HASH, &b, "a=longer value,b=2,c=3,=");
  struct coll_elem e;
  cr_assert_eq(coll_find(COLL_HASH, b.p, b.len, S("b"), &e), 1);
  cr_assert(e.blen == 1 && memcmp(e.b, "2", 1) == 0);
  cr_assert_eq(coll_find(COLL_HASH, b.p, b.len, S("zz"), &e), 0);
  cr_assert_eq(coll_find(COLL_HASH, b.p, b.len, "", 0, &e), 1);
  cr_assert_eq(e.blen, 0);
  free(b.p);
}

Test(coll, hdel_removes_present_fields_and_empties_to_null) {
  struct blob b = {0};
  hset(&b, "a", "1");
  hset(&b, "b", "2");
  struct coll_delta d;
  coll_delta_init(&d);
  coll_hdel(&d, S("zz"));
  coll_hdel(&d, S("a"));
  apply_ok(COLL_HASH, &b, &d);
  expect(COLL_HASH, &b, "b=2");
  coll_delta_init(&d);
  coll_hdel(&d, S("b"));
  apply_ok(COLL_HASH, &b, &d);
  expect(COLL_HASH, &b, "");
  /* Deleting from a missing hash stays missing. */
  coll_delta_init(&d);
  coll_hdel(&d, S("b"));
  apply_ok(COLL_HASH, &b, &d);
  expect(COLL_HASH, &b, "");
}

Test(coll, hash_set_then_delete_in_one_delta) {
  struct blob b = {0};
  struct coll_delta d;
  coll_delta_init(&d);
  coll_hset(&d, S("x"), S("1"));
  coll_hset(&d, S("y"), S("2"));
  coll_hdel(&d, S("x"));
  coll_hset(&d, S("x"), S("3"));
  cr_assert_eq(d.ops, 4);
  apply_ok(COLL_HASH, &b, &d);
  expect(COLL_HASH, &b, "y=2,x=3");
  free(b.p);
}

Test(coll, sadd_adds_absent_members_in_order_srem_removes) {
  struct blob b = {0};
  struct coll_delta d;
  coll_delta_init(&d);
  coll_sadd(&d, S("m1"));
  coll_sadd(&d, S("m2"));
  coll_sadd(&d, S("m1"));
  coll_sadd(&d, S("m3"));
  apply_ok(COLL_SET, &b, &d);
  expect(COLL_SET, &b, "m1,m2,m3");
  coll_delta_init(&d);
  coll_srem(&d, S("m2"));
  coll_srem(&d, S("nope"));
  coll_sadd(&d, S("m2"));
  apply_ok(COLL_SET, &b, &d);
  expect(COLL_SET, &b, "m1,m3,m2");
  struct coll_elem e;
  cr_assert_eq(coll_find(COLL_SET, b.p, b.len, S("m3"), &e), 1);
  cr_assert_eq(coll_find(COLL_SET, b.p, b.len, S("m"), &e), 0);
  coll_delta_init(&d);
  coll_srem(&d, S("m1"));
  coll_srem(&d, S("m2"));
  coll_srem(&d, S("m3"));
  apply_ok(COLL_SET, &b, &d);
  expect(COLL_SET, &b, "");
}

Test(coll, empty_delta_copies_the_blob) {
  struct blob b = {0};
  struct coll_delta d;
  coll_delta_init(&d);
  apply_ok(COLL_SET, &b, &d);
  expect(COLL_SET, &b, "");
  hset(&b, "k", "v");
  void *before = b.p;
  size_t len = b.len;
  void *out;
  size_t outlen;
  cr_assert_eq(coll_apply(COLL_HASH, b.p, b.len, NULL, 0, &out, &outlen), 0);
  cr_assert(out != before && outlen == len && memcmp(out, before, len) == 0);
  free(out);
  free(b.p);
}

/* ------------------------------------------------------------------------
 * Sorted sets.
 * --------------------------------------------------------------------- */

Test(coll, zset_orders_by_score_then_member_bytes) {
  struct blob b = {0};
  zadd(&b, 2, "b");
  zadd(&b, 1, "z");
  zadd(&b, 2, "a");
  zadd(&b, 2, "ab");
  zadd(&b, 2, "");
  zadd(&b, -1.5, "neg");
  zadd(&b, 2, "\xff");
  expect(COLL_ZSET, &b, "-1.5:neg,1:z,2:,2:a,2:ab,2:b,2:\xff");
  free(b.p);
}

Test(coll, zset_moves_a_member_to_its_new_score) {
  struct blob b = {0};
  zadd(&b, 1, "a");
  zadd(&b, 2, "b");
  zadd(&b, 3, "c");
  zadd(&b, 10, "a");
  expect(COLL_ZSET, &b, "2:b,3:c,10:a");
  zadd(&b, 3, "b");
  expect(COLL_ZSET, &b, "3:b,3:c,10:a");
  zadd(&b, 3, "b");
  expect(COLL_ZSET, &b, "3:b,3:c,10:a");
  struct coll_elem e;
  cr_assert_eq(coll_find(COLL_ZSET, b.p, b.len, S("c"), &e), 1);
  cr_assert_eq(e.score, 3.0);
  struct coll_delta d;
  coll_delta_init(&d);
  coll_zrem(&d, S("c"));
  coll_zrem(&d, S("none"));
  apply_ok(COLL_ZSET, &b, &d);
  expect(COLL_ZSET, &b, "3:b,10:a");
  free(b.p);
}

Test(coll, zset_infinities_sort_at_the_ends) {
  struct blob b = {0};
  zadd(&b, 0, "zero");
  zadd(&b, INFINITY, "top");
  zadd(&b, -INFINITY, "bottom");
  zadd(&b, 1e308, "big");
  zadd(&b, INFINITY, "a-top");
  expect(COLL_ZSET, &b, "-inf:bottom,0:zero,1e+308:big,inf:a-top,inf:top");
  free(b.p);
}

Test(coll, zset_negative_zero_equals_zero_and_is_written_as_zero) {
  struct blob b = {0};
  zadd(&b, 0.0, "b");
  zadd(&b, -0.0, "a");
  zadd(&b, -0.0, "c");
  expect(COLL_ZSET, &b, "0:a,0:b,0:c");
  struct coll_iter it;
  struct coll_elem e;
  cr_assert_eq(coll_iter_init(&it, COLL_ZSET, b.p, b.len), 3);
  while (coll_next(&it, &e) == 1) cr_assert(!signbit(e.score));
  /* A -0.0 already in a delta from disk is also written as 0.0. */
  uint8_t raw[1 + 8 + 4 + 1] = {CO_ZSET};
  double nz = -0.0;
  uint64_t bits;
  memcpy(&bits, &nz, 8);
  put_u64(raw + 1, bits);
  put_u32(raw + 9, 1);
  raw[13] = 'd';
  void *out;
  size_t outlen;
  cr_assert_eq(coll_apply(COLL_ZSET, b.p, b.len, raw, sizeof raw, &out,
                          &outlen), 0);
  cr_assert_eq(coll_iter_init(&it, COLL_ZSET, out, outlen), 4);
  while (coll_next(&it, &e) == 1) cr_assert(!signbit(e.score));
  free(out);
  free(b.p);
}

Test(coll, zset_nan_is_rejected_in_delta_blob_and_builder) {
  struct coll_delta d;
  coll_delta_init(&d);
  coll_zset(&d, NAN, S("m"));
  cr_assert_eq(d.err, CAIRN_EINVAL);
  cr_assert_eq(d.len, 0);
  coll_delta_free(&d);

  uint8_t raw[1 + 8 + 4 + 1] = {CO_ZSET};
  double nan = NAN;
  uint64_t bits;
  memcpy(&bits, &nan, 8);
  put_u64(raw + 1, bits);
  put_u32(raw + 9, 1);
  raw[13] = 'm';
  void *out;
  size_t outlen;
  cr_assert_eq(coll_delta_check(COLL_ZSET, raw, sizeof raw), CAIRN_ECORRUPT);
  cr_assert_eq(coll_apply(COLL_ZSET, NULL, 0, raw, sizeof raw, &out, &outlen),
               CAIRN_ECORRUPT);

  uint8_t blob[4 + 8 + 4 + 1];
  put_u32(blob, 1);
  put_u64(blob + 4, bits);
  put_u32(blob + 12, 1);
  blob[16] = 'm';
  struct coll_iter it;
  struct coll_elem e;
  cr_assert_eq(coll_iter_init(&it, COLL_ZSET, blob, sizeof blob), 1);
  cr_assert_eq(coll_next(&it, &e), CAIRN_ECORRUPT);
  cr_assert_eq(coll_find(COLL_ZSET, blob, sizeof blob, "m", 1, &e),
               CAIRN_ECORRUPT);
  cr_assert_eq(coll_apply(COLL_ZSET, blob, sizeof blob, NULL, 0, &out,
                          &outlen), CAIRN_ECORRUPT);
}

/* Two zset elements written by hand. */
static size_t zblob2(uint8_t *b, double s1, const char *m1, double s2,
                     const char *m2) {
  uint64_t u;
  size_t off = 4;
  put_u32(b, 2);
  const double s[2] = {s1, s2};
  const char *m[2] = {m1, m2};
  for (int i = 0; i < 2; i++) {
    memcpy(&u, &s[i], 8);
    put_u64(b + off, u);
    put_u32(b + off + 8, (uint32_t)strlen(m[i]));
    memcpy(b + off + 12, m[i], strlen(m[i]));
    off += 12 + strlen(m[i]);
  }
  return off;
}

Test(coll, zset_blob_out_of_order_or_duplicated_is_corrupt) {
  uint8_t b[64];
  struct coll_elem e;
  void *out;
  size_t outlen;
  size_t n = zblob2(b, 1, "a", 2, "a");
  cr_assert_eq(coll_find(COLL_ZSET, b, n, "a", 1, &e), 1);
  cr_assert_eq(e.score, 1.0);
  n = zblob2(b, 2, "a", 1, "b");
  cr_assert_eq(coll_find(COLL_ZSET, b, n, "a", 1, &e), CAIRN_ECORRUPT);
  cr_assert_eq(coll_apply(COLL_ZSET, b, n, NULL, 0, &out, &outlen),
               CAIRN_ECORRUPT);
  n = zblob2(b, 1, "b", 1, "a");
  cr_assert_eq(coll_apply(COLL_ZSET, b, n, NULL, 0, &out, &outlen),
               CAIRN_ECORRUPT);
  n = zblob2(b, 1, "ab", 1, "a");
  cr_assert_eq(coll_apply(COLL_ZSET, b, n, NULL, 0, &out, &outlen),
               CAIRN_ECORRUPT);
  n = zblob2(b, 1, "a", 1, "a");
  cr_assert_eq(coll_apply(COLL_ZSET, b, n, NULL, 0, &out, &outlen),
               CAIRN_ECORRUPT);
  n = zblob2(b, 0.0, "a", -0.0, "a");
  cr_assert_eq(coll_apply(COLL_ZSET, b, n, NULL, 0, &out, &outlen),
               CAIRN_ECORRUPT);
}

/* ------------------------------------------------------------------------
 * Lists.
 * --------------------------------------------------------------------- */

Test(coll, push_and_pop_at_both_ends) {
  struct blob b = {0};
  struct coll_delta d;
  coll_delta_init(&d);
  coll_push(&d, 0, S("b"));
  coll_push(&d, 0, S("a"));
  coll_push(&d, 1, S("c"));
  apply_ok(COLL_LIST, &b, &d);
  expect(COLL_LIST, &b, "a,b,c");
  coll_delta_init(&d);
  coll_pop(&d, 0, 1);
  coll_pop(&d, 1, 0);
  apply_ok(COLL_LIST, &b, &d);
  expect(COLL_LIST, &b, "b,c");
  coll_delta_init(&d);
  coll_pop(&d, 1, 1);
  apply_ok(COLL_LIST, &b, &d);
  expect(COLL_LIST, &b, "b");
  coll_delta_init(&d);
  coll_pop(&d, 1, 1);
  apply_ok(COLL_LIST, &b, &d);
  expect(COLL_LIST, &b, "");
}

Test(coll, pop_more_than_count_empties_the_list) {
  struct blob b = {0};
  rpush_all(&b, "a,b,c");
  struct coll_delta d;
  coll_delta_init(&d);
  coll_pop(&d, 0, 4);
  apply_ok(COLL_LIST, &b, &d);
  expect(COLL_LIST, &b, "");
  rpush_all(&b, "a,b,c");
  coll_delta_init(&d);
  coll_pop(&d, 1, UINT32_MAX);
  apply_ok(COLL_LIST, &b, &d);
  expect(COLL_LIST, &b, "");
  /* Popping a missing list is a no-op, and pushes after a pop that
   * emptied the list start a new one. */
  coll_delta_init(&d);
  coll_pop(&d, 0, 3);
  coll_push(&d, 1, S("x"));
  apply_ok(COLL_LIST, &b, &d);
  expect(COLL_LIST, &b, "x");
  free(b.p);
}

Test(coll, many_pushes_at_the_head_keep_order) {
  struct blob b = {0};
  struct coll_delta d;
  coll_delta_init(&d);
  char want[2048] = "", tmp[4096];
  for (int i = 0; i < 300; i++) {
    char s[16];
    snprintf(s, sizeof s, "%d", i);
    coll_push(&d, 0, S(s));
    int w = snprintf(tmp, sizeof tmp, "%s%s%s", s, i ? "," : "", want);
    cr_assert(w > 0 && (size_t)w < sizeof want);
    memcpy(want, tmp, (size_t)w + 1);
  }
  apply_ok(COLL_LIST, &b, &d);
  expect(COLL_LIST, &b, want);
  free(b.p);
}

Test(coll, lset_counts_negative_indexes_from_the_tail) {
  struct blob b = {0};
  rpush_all(&b, "a,b,c");
  struct coll_delta d;
  coll_delta_init(&d);
  coll_lset(&d, 0, S("A"));
  coll_lset(&d, -1, S("C"));
  coll_lset(&d, -2, S("B"));
  apply_ok(COLL_LIST, &b, &d);
  expect(COLL_LIST, &b, "A,B,C");
  const int64_t bad[] = {3, -4, INT64_MAX, INT64_MIN, 1000};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    coll_delta_init(&d);
    coll_lset(&d, bad[i], S("x"));
    cr_assert_eq(apply(COLL_LIST, &b, &d), CAIRN_EINVAL);
  }
  expect(COLL_LIST, &b, "A,B,C");
  struct blob none = {0};
  coll_delta_init(&d);
  coll_lset(&d, 0, S("x"));
  cr_assert_eq(apply(COLL_LIST, &none, &d), CAIRN_EINVAL);
  free(b.p);
}

static void ltrim_case(int64_t start, int64_t stop, const char *want) {
  struct blob b = {0};
  rpush_all(&b, "a,b,c,d,e");
  struct coll_delta d;
  coll_delta_init(&d);
  coll_ltrim(&d, start, stop);
  apply_ok(COLL_LIST, &b, &d);
  expect(COLL_LIST, &b, want);
  free(b.p);
}

Test(coll, ltrim_follows_redis_rules) {
  ltrim_case(0, -1, "a,b,c,d,e");
  ltrim_case(1, 2, "b,c");
  ltrim_case(-2, -1, "d,e");
  ltrim_case(-100, 1, "a,b");
  ltrim_case(3, 100, "d,e");
  ltrim_case(2, 1, "");
  ltrim_case(5, 10, "");
  ltrim_case(0, -6, "");
  ltrim_case(-1, -1, "e");
  ltrim_case(INT64_MIN, INT64_MAX, "a,b,c,d,e");
  ltrim_case(INT64_MAX, INT64_MAX, "");
  ltrim_case(INT64_MIN, INT64_MIN, "");
  ltrim_case(0, 0, "a");
}

static void lrem_case(int64_t count, const char *want) {
  struct blob b = {0};
  rpush_all(&b, "x,a,x,b,x,c");
  struct coll_delta d;
  coll_delta_init(&d);
  coll_lrem(&d, count, S("x"));
  apply_ok(COLL_LIST, &b, &d);
  expect(COLL_LIST, &b, want);
  free(b.p);
}

Test(coll, lrem_counts_from_head_tail_or_removes_all) {
  lrem_case(1, "a,x,b,x,c");
  lrem_case(2, "a,b,x,c");
  lrem_case(-1, "x,a,x,b,c");
  lrem_case(-2, "x,a,b,c");
  lrem_case(0, "a,b,c");
  lrem_case(100, "a,b,c");
  lrem_case(INT64_MIN, "a,b,c");
  struct blob b = {0};
  rpush_all(&b, "x,x");
  struct coll_delta d;
  coll_delta_init(&d);
  coll_lrem(&d, 0, S("x"));
  apply_ok(COLL_LIST, &b, &d);
  expect(COLL_LIST, &b, "");
}

Test(coll, linsert_before_or_after_the_first_pivot) {
  struct blob b = {0};
  rpush_all(&b, "a,p,b,p");
  struct coll_delta d;
  coll_delta_init(&d);
  coll_linsert(&d, 0, S("p"), S("B"));
  apply_ok(COLL_LIST, &b, &d);
  expect(COLL_LIST, &b, "a,B,p,b,p");
  coll_delta_init(&d);
  coll_linsert(&d, 1, S("p"), S("A"));
  coll_linsert(&d, 0, S("a"), S("0"));
  coll_linsert(&d, 1, S("p"), S("A2"));
  apply_ok(COLL_LIST, &b, &d);
  expect(COLL_LIST, &b, "0,a,B,p,A2,A,b,p");
  coll_delta_init(&d);
  coll_linsert(&d, 1, S("zz"), S("no"));
  apply_ok(COLL_LIST, &b, &d);
  expect(COLL_LIST, &b, "0,a,B,p,A2,A,b,p");
  struct blob none = {0};
  coll_delta_init(&d);
  coll_linsert(&d, 1, S("zz"), S("no"));
  apply_ok(COLL_LIST, &none, &d);
  expect(COLL_LIST, &none, "");
  coll_delta_init(&d);
  coll_linsert(&d, 1, S("p"), S("end"));
  coll_lrem(&d, 0, S("p"));
  apply_ok(COLL_LIST, &b, &d);
  expect(COLL_LIST, &b, "0,a,B,end,A2,A,b");
  free(b.p);
}

/* ------------------------------------------------------------------------
 * Model tests: random deltas against tiny reference implementations.
 * --------------------------------------------------------------------- */

#define MODEL_MAX 4096

struct lmodel {
  int v[MODEL_MAX];
  size_t n;
};

static uint64_t rng_next(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static void m_insert(struct lmodel *m, size_t i, int x) {
  memmove(m->v + i + 1, m->v + i, (m->n - i) * sizeof(int));
  m->v[i] = x;
  m->n++;
}

static void m_erase(struct lmodel *m, size_t i) {
  memmove(m->v + i, m->v + i + 1, (m->n - i - 1) * sizeof(int));
  m->n--;
}

static void m_ltrim(struct lmodel *m, int64_t start, int64_t end) {
  int64_t len = (int64_t)m->n;
  if (start < 0) start = len + start;
  if (end < 0) end = len + end;
  if (start < 0) start = 0;
  if (start > end || start >= len) {
    m->n = 0;
    return;
  }
  if (end >= len) end = len - 1;
  memmove(m->v, m->v + start, (size_t)(end - start + 1) * sizeof(int));
  m->n = (size_t)(end - start + 1);
}

static void m_lrem(struct lmodel *m, int64_t count, int x) {
  if (count >= 0) {
    int64_t removed = 0;
    for (size_t i = 0; i < m->n;) {
      if (m->v[i] == x && (count == 0 || removed < count)) {
        m_erase(m, i);
        removed++;
      } else {
        i++;
      }
    }
  } else {
    int64_t removed = 0;
    for (size_t i = m->n; i-- > 0;) {
      if (m->v[i] == x && removed < -count) {
        m_erase(m, i);
        removed++;
      }
    }
  }
}

/* Elements are small integers rendered as text, so pivots and LREM hit. */
static int list_step(struct lmodel *m, struct coll_delta *d, uint64_t *s) {
  int x = (int)(rng_next(s) % 5);
  char t[16];
  snprintf(t, sizeof t, "%d", x);
  int64_t i1 = (int64_t)(rng_next(s) % 15) - 7;
  int64_t i2 = (int64_t)(rng_next(s) % 15) - 7;
  switch (rng_next(s) % 9) {
  case 0: coll_push(d, 0, S(t)); m_insert(m, 0, x); break;
  case 1: coll_push(d, 1, S(t)); m_insert(m, m->n, x); break;
  case 2: {
    uint32_t k = (uint32_t)(rng_next(s) % 4);
    coll_pop(d, 0, k);
    for (uint32_t j = 0; j < k && m->n; j++) m_erase(m, 0);
    break;
  }
  case 3: {
    uint32_t k = (uint32_t)(rng_next(s) % 4);
    coll_pop(d, 1, k);
    for (uint32_t j = 0; j < k && m->n; j++) m->n--;
    break;
  }
  case 4: {
    int64_t idx = i1 < 0 ? i1 + (int64_t)m->n : i1;
    if (idx < 0 || idx >= (int64_t)m->n) return 0;  /* tested separately */
    coll_lset(d, i1, S(t));
    m->v[idx] = x;
    break;
  }
  case 5:
    if (rng_next(s) % 3) return 0;  /* trims shrink the list fast */
    coll_ltrim(d, i1, i2);
    m_ltrim(m, i1, i2);
    break;
  case 6:
    coll_lrem(d, i1 / 3, S(t));
    m_lrem(m, i1 / 3, x);
    break;
  default: {
    int pivot = (int)(rng_next(s) % 5), after = (int)(rng_next(s) & 1);
    char p[16];
    snprintf(p, sizeof p, "%d", pivot);
    coll_linsert(d, after, S(p), S(t));
    for (size_t j = 0; j < m->n; j++)
      if (m->v[j] == pivot) {
        m_insert(m, j + (size_t)after, x);
        break;
      }
  }
  }
  return 1;
}

static void lmodel_render(const struct lmodel *m, char *out, size_t cap) {
  size_t used = 0;
  out[0] = '\0';
  for (size_t i = 0; i < m->n; i++)
    used += (size_t)snprintf(out + used, cap - used, "%s%d", i ? "," : "",
                             m->v[i]);
}

Test(coll, list_ops_match_a_reference_model) {
  static struct lmodel m;
  static char want[MODEL_MAX * 4];
  uint64_t seed = 0x9e3779b97f4a7c15ull;
  struct blob b = {0};
  m.n = 0;
  for (int round = 0; round < 3000; round++) {
    struct coll_delta d;
    coll_delta_init(&d);
    int k = 1 + (int)(rng_next(&seed) % 6);
    for (int j = 0; j < k && m.n < MODEL_MAX - 16; j++) list_step(&m, &d, &seed);
    apply_ok(COLL_LIST, &b, &d);
    lmodel_render(&m, want, sizeof want);
    char *got = malloc(sizeof want);
    dump(COLL_LIST, &b, got, sizeof want);
    cr_assert_str_eq(got, want, "seed state %llx round %d",
                     (unsigned long long)seed, round);
    free(got);
  }
  free(b.p);
}

struct zmodel {
  double score[64];
  int member[64];
  size_t n;
};

static int zm_less(double s1, int m1, double s2, int m2) {
  char a[16], b[16];
  snprintf(a, sizeof a, "m%d", m1);
  snprintf(b, sizeof b, "m%d", m2);
  if (s1 != s2) return s1 < s2;
  return strcmp(a, b) < 0;
}

static void zm_set(struct zmodel *z, double s, int m) {
  for (size_t i = 0; i < z->n; i++)
    if (z->member[i] == m) {
      memmove(z->score + i, z->score + i + 1, (z->n - i - 1) * sizeof(double));
      memmove(z->member + i, z->member + i + 1, (z->n - i - 1) * sizeof(int));
      z->n--;
      break;
    }
  if (s == -1) return;  /* removal */
  size_t i = 0;
  while (i < z->n && zm_less(z->score[i], z->member[i], s, m)) i++;
  memmove(z->score + i + 1, z->score + i, (z->n - i) * sizeof(double));
  memmove(z->member + i + 1, z->member + i, (z->n - i) * sizeof(int));
  z->score[i] = s;
  z->member[i] = m;
  z->n++;
}

Test(coll, zset_ops_match_a_reference_model) {
  struct zmodel z = {.n = 0};
  uint64_t seed = 12345;
  struct blob b = {0};
  const double scores[] = {-INFINITY, -2, 0, 0.5, 3, INFINITY};
  for (int round = 0; round < 2000; round++) {
    struct coll_delta d;
    coll_delta_init(&d);
    int k = 1 + (int)(rng_next(&seed) % 4);
    for (int j = 0; j < k; j++) {
      int m = (int)(rng_next(&seed) % 40);
      char t[16];
      snprintf(t, sizeof t, "m%d", m);
      if (rng_next(&seed) % 4 == 0) {
        coll_zrem(&d, S(t));
        zm_set(&z, -1, m);
      } else {
        double s = scores[rng_next(&seed) % 6];
        coll_zset(&d, s, S(t));
        zm_set(&z, s, m);
      }
    }
    apply_ok(COLL_ZSET, &b, &d);
    char want[4096] = "", got[4096];
    size_t used = 0;
    for (size_t i = 0; i < z.n; i++)
      used += (size_t)snprintf(want + used, sizeof want - used, "%s%g:m%d",
                               i ? "," : "", z.score[i], z.member[i]);
    dump(COLL_ZSET, &b, got, sizeof got);
    cr_assert_str_eq(got, want, "round %d", round);
  }
  free(b.p);
}

/* ------------------------------------------------------------------------
 * Malformed input.
 * --------------------------------------------------------------------- */

/* A valid blob and a valid delta of the given type. */
static void sample(int type, struct blob *b, struct coll_delta *d) {
  *b = (struct blob){0};
  coll_delta_init(d);
  switch (type) {
  case COLL_HASH:
    coll_hset(d, S("field"), S("value"));
    coll_hset(d, S("f2"), "", 0);
    coll_hdel(d, S("nope"));
    break;
  case COLL_SET:
    coll_sadd(d, S("m1"));
    coll_sadd(d, S("member2"));
    coll_srem(d, S("zz"));
    break;
  case COLL_ZSET:
    coll_zset(d, 1.5, S("m1"));
    coll_zset(d, -3, S("m2"));
    coll_zrem(d, S("zz"));
    break;
  default:
    coll_push(d, 1, S("e1"));
    coll_push(d, 0, S("e0"));
    coll_push(d, 1, S("e2"));
    coll_pop(d, 1, 0);
    coll_lset(d, -1, S("E2"));
    coll_ltrim(d, 0, -1);
    coll_lrem(d, 0, S("zz"));
    coll_linsert(d, 1, S("e0"), S("i"));
    break;
  }
  void *out;
  size_t outlen;
  cr_assert_eq(coll_apply(type, NULL, 0, d->buf, d->len, &out, &outlen), 0);
  b->p = out;
  b->len = outlen;
}

Test(coll, every_truncated_blob_is_corrupt) {
  for (int type = COLL_HASH; type <= COLL_LIST; type++) {
    struct blob b;
    struct coll_delta d;
    sample(type, &b, &d);
    for (size_t n = 1; n < b.len; n++) {
      uint8_t *cut = malloc(n);  /* exact size, so ASan sees overreads */
      memcpy(cut, b.p, n);
      void *out = NULL;
      size_t outlen;
      struct coll_elem e;
      cr_assert_eq(coll_apply(type, cut, n, d.buf, d.len, &out, &outlen),
                   CAIRN_ECORRUPT, "type %d len %zu", type, n);
      cr_assert_eq(coll_find(type, cut, n, "x", 1, &e), CAIRN_ECORRUPT);
      struct coll_iter it;
      long c = coll_iter_init(&it, type, cut, n);
      if (c >= 0) {
        int rc;
        while ((rc = coll_next(&it, &e)) == 1) {}
        cr_assert_eq(rc, CAIRN_ECORRUPT);
      }
      free(cut);
    }
    /* A byte too many is corrupt as well. */
    uint8_t *more = malloc(b.len + 1);
    memcpy(more, b.p, b.len);
    more[b.len] = 0;
    void *out;
    size_t outlen;
    cr_assert_eq(coll_apply(type, more, b.len + 1, NULL, 0, &out, &outlen),
                 CAIRN_ECORRUPT);
    free(more);
    free(b.p);
    coll_delta_free(&d);
  }
}

Test(coll, every_truncated_delta_is_corrupt_unless_at_an_op_boundary) {
  for (int type = COLL_HASH; type <= COLL_LIST; type++) {
    struct blob b;
    struct coll_delta d;
    sample(type, &b, &d);
    size_t boundaries = 0;
    for (size_t n = 0; n < d.len; n++) {
      uint8_t *cut = malloc(n ? n : 1);
      memcpy(cut, d.buf, n);
      void *out = NULL;
      size_t outlen;
      int chk = coll_delta_check(type, cut, n);
      int rc = coll_apply(type, b.p, b.len, cut, n, &out, &outlen);
      cr_assert(chk == 0 || chk == CAIRN_ECORRUPT);
      cr_assert_eq(rc == CAIRN_ECORRUPT, chk == CAIRN_ECORRUPT,
                   "type %d len %zu", type, n);
      boundaries += chk == 0;
      if (rc == 0) free(out);
      free(cut);
    }
    cr_assert_eq(boundaries, d.ops, "one valid prefix per operation");
    cr_assert_eq(coll_delta_check(type, d.buf, d.len), 0);
    free(b.p);
    coll_delta_free(&d);
  }
}

Test(coll, bad_counts_and_types_are_corrupt) {
  uint8_t b[16] = {0};
  struct coll_iter it;
  struct coll_elem e;
  void *out;
  size_t outlen;
  /* A stored collection is never empty. */
  put_u32(b, 0);
  cr_assert_eq(coll_iter_init(&it, COLL_SET, b, 4), CAIRN_ECORRUPT);
  cr_assert_eq(coll_apply(COLL_SET, b, 4, NULL, 0, &out, &outlen),
               CAIRN_ECORRUPT);
  /* Counts the bytes cannot hold, or above the limit. */
  put_u32(b, 4);
  cr_assert_eq(coll_iter_init(&it, COLL_SET, b, 16), CAIRN_ECORRUPT);
  put_u32(b, 3);
  cr_assert_eq(coll_iter_init(&it, COLL_SET, b, 16), 3);
  cr_assert_eq(coll_iter_init(&it, COLL_HASH, b, 16), CAIRN_ECORRUPT);
  put_u32(b, UINT32_MAX);
  cr_assert_eq(coll_apply(COLL_LIST, b, 16, NULL, 0, &out, &outlen),
               CAIRN_ECORRUPT);
  put_u32(b, COLL_ELEMS_MAX + 1);
  cr_assert_eq(coll_iter_init(&it, COLL_LIST, b, 16), CAIRN_ECORRUPT);
  /* An element length running past the end. */
  put_u32(b, 1);
  put_u32(b + 4, UINT32_MAX);
  cr_assert_eq(coll_find(COLL_LIST, b, 16, "a", 1, &e), CAIRN_ECORRUPT);
  cr_assert_eq(coll_iter_init(&it, 0, b, 16), CAIRN_ECORRUPT);
  cr_assert_eq(coll_iter_init(&it, 5, NULL, 0), CAIRN_ECORRUPT);
  cr_assert_eq(coll_delta_check(9, NULL, 0), CAIRN_ECORRUPT);
  cr_assert_eq(coll_apply(0, NULL, 0, NULL, 0, &out, &outlen), CAIRN_ECORRUPT);
  /* A list of three empty elements is fine. */
  put_u32(b, 3);
  memset(b + 4, 0, 12);
  cr_assert_eq(coll_apply(COLL_LIST, b, 16, NULL, 0, &out, &outlen), 0);
  cr_assert_eq(outlen, 16);
  free(out);
}

Test(coll, operations_of_another_type_are_corrupt) {
  for (int type = COLL_HASH; type <= COLL_LIST; type++) {
    for (int code = 0; code < 256; code++) {
      /* Enough argument bytes for any operation: zeros are valid. */
      uint8_t dl[32] = {(uint8_t)code};
      int family = code == CO_HSET || code == CO_HDEL ? COLL_HASH
                   : code == CO_SADD || code == CO_SREM ? COLL_SET
                   : code == CO_ZSET || code == CO_ZREM ? COLL_ZSET
                   : code >= CO_LPUSH && code <= CO_LINSERT ? COLL_LIST : 0;
      void *out;
      size_t outlen;
      int chk = coll_delta_check(type, dl, sizeof dl);
      int rc = coll_apply(type, NULL, 0, dl, sizeof dl, &out, &outlen);
      if (family != type) {
        cr_assert_eq(chk, CAIRN_ECORRUPT, "type %d code %d", type, code);
        cr_assert_eq(rc, CAIRN_ECORRUPT, "type %d code %d", type, code);
      }
      /* The first op is valid; the zeros after it are code 0: corrupt. */
      cr_assert_eq(rc, CAIRN_ECORRUPT);
      if (family == type) {
        struct coll_delta d;
        coll_delta_init(&d);
        if (code == CO_HSET) coll_hset(&d, "f", 1, "v", 1);
        else if (code == CO_ZSET) coll_zset(&d, 1, "m", 1);
        else if (code == CO_LINSERT) coll_linsert(&d, 0, "p", 1, "x", 1);
        else continue;
        for (int t2 = COLL_HASH; t2 <= COLL_LIST; t2++)
          if (t2 != type)
            cr_assert_eq(coll_delta_check(t2, d.buf, d.len), CAIRN_ECORRUPT);
        coll_delta_free(&d);
      }
    }
  }
}

Test(coll, linsert_after_flag_other_than_0_or_1_is_corrupt) {
  struct coll_delta d;
  coll_delta_init(&d);
  coll_linsert(&d, 7, S("p"), S("x"));
  cr_assert_eq(d.buf[1], 1);
  cr_assert_eq(coll_delta_check(COLL_LIST, d.buf, d.len), 0);
  d.buf[1] = 2;
  cr_assert_eq(coll_delta_check(COLL_LIST, d.buf, d.len), CAIRN_ECORRUPT);
  coll_delta_free(&d);
}

/* Mutated deltas: coll_delta_check rejects exactly what coll_apply calls
 * corrupt, for a valid blob. */
Test(coll, delta_check_agrees_with_apply_on_mutated_deltas) {
  uint64_t seed = 777;
  for (int type = COLL_HASH; type <= COLL_LIST; type++) {
    struct blob b;
    struct coll_delta d;
    sample(type, &b, &d);
    for (int round = 0; round < 3000; round++) {
      uint8_t *m = malloc(d.len);
      memcpy(m, d.buf, d.len);
      int flips = 1 + (int)(rng_next(&seed) % 3);
      for (int i = 0; i < flips; i++) {
        size_t at = rng_next(&seed) % d.len;
        m[at] = (uint8_t)(rng_next(&seed) % 4 == 0 ? rng_next(&seed)
                                                  : m[at] ^ (1u << (rng_next(&seed) % 8)));
      }
      size_t len = rng_next(&seed) % 4 ? d.len : rng_next(&seed) % d.len;
      void *out = NULL;
      size_t outlen = 0;
      int chk = coll_delta_check(type, m, len);
      int rc = coll_apply(type, b.p, b.len, m, len, &out, &outlen);
      cr_assert(chk == 0 || chk == CAIRN_ECORRUPT);
      if (chk == CAIRN_ECORRUPT) cr_assert_eq(rc, CAIRN_ECORRUPT);
      else cr_assert(rc == 0 || rc == CAIRN_EINVAL, "rc %d", rc);
      if (rc == 0 && out) {
        struct coll_iter it;
        struct coll_elem e;
        long n = coll_iter_init(&it, type, out, outlen);
        cr_assert_gt(n, 0);
        long seen = 0;
        while (coll_next(&it, &e) == 1) seen++;
        cr_assert_eq(seen, n);
      }
      free(out);
      free(m);
    }
    free(b.p);
    coll_delta_free(&d);
  }
}

Test(coll, builder_refuses_arguments_too_long_to_encode) {
  struct coll_delta d;
  coll_delta_init(&d);
  coll_sadd(&d, S("ok"));
  size_t len = d.len;
  coll_sadd(&d, "x", (size_t)UINT32_MAX + 1);  /* never read: refused first */
  cr_assert_eq(d.err, CAIRN_EINVAL);
  coll_sadd(&d, S("after"));
  cr_assert_eq(d.len, len);
  cr_assert_eq(d.ops, 1);
  coll_delta_free(&d);
  cr_assert(d.buf == NULL && d.len == 0 && d.ops == 0 && d.err == 0);
}

/* ------------------------------------------------------------------------
 * Collection objects (cobj.h): the same results as the blob, byte for
 * byte, under random deltas.
 * --------------------------------------------------------------------- */

#include "cobj.h"

static uint64_t rs = 0x2545f4914f6cdd1dull;

static uint64_t rnd(uint64_t n) {
  rs ^= rs << 13;
  rs ^= rs >> 7;
  rs ^= rs << 17;
  return rs % n;
}

/* One random operation of type on elements "e0".."e<space-1>"; lists
 * lean towards growing below `low` elements and shrinking above it. */
static void random_op(int type, struct coll_delta *d, size_t space,
                      size_t n, size_t low) {
  char x[24], v[24];
  int xl = snprintf(x, sizeof x, "e%llu", (unsigned long long)rnd(space));
  int vl = snprintf(v, sizeof v, "v%llu", (unsigned long long)rnd(1000));
  static const double scores[] = {-0.0, 0, 1.5, -3, 7, 1e300, -INFINITY,
                                  INFINITY, 2, 2.5};
  uint64_t k = rnd(12);
  switch (type) {
  case COLL_HASH:
    if (k < 8) coll_hset(d, x, (size_t)xl, v, (size_t)vl);
    else coll_hdel(d, x, (size_t)xl);
    return;
  case COLL_SET:
    if (k < 8) coll_sadd(d, x, (size_t)xl);
    else coll_srem(d, x, (size_t)xl);
    return;
  case COLL_ZSET:
    if (k < 8) coll_zset(d, scores[rnd(10)] + (double)rnd(3), x, (size_t)xl);
    else coll_zrem(d, x, (size_t)xl);
    return;
  }
  int grow = n < low;
  switch (k) {
  case 0: case 1: coll_push(d, 0, x, (size_t)xl); return;
  case 2: case 3: coll_push(d, 1, x, (size_t)xl); return;
  case 4: coll_pop(d, 0, grow ? 0 : (uint32_t)rnd(4)); return;
  case 5: coll_pop(d, 1, grow ? 1 : (uint32_t)rnd(4)); return;
  case 6: coll_lset(d, (int64_t)rnd(2 * n + 2) - (int64_t)n - 1, x,
                    (size_t)xl); return;
  case 7: coll_ltrim(d, grow ? 0 : 1, grow ? -1 : -2); return;
  case 8: coll_lrem(d, (int64_t)rnd(5) - 2, x, (size_t)xl); return;
  case 9: coll_linsert(d, (int)rnd(2), x, (size_t)xl, v, (size_t)vl);
    return;
  default: coll_push(d, (int)rnd(2), v, (size_t)vl); return;
  }
}

static size_t blob_count(const struct blob *b) {
  return b->len ? get_u32(b->p) : 0;
}

/* The object encodes to the blob exactly, and finds what the blob holds. */
static void same_as_blob(int type, struct cobj *o, const struct blob *b) {
  cr_assert_eq(cobj_blob_len(o), b->len);
  cr_assert_eq(cobj_count(o), blob_count(b));
  if (b->len) {
    char *buf = malloc(b->len);
    cobj_encode(o, buf);
    cr_assert(memcmp(buf, b->p, b->len) == 0, "encodings differ");
    free(buf);
    const void *cached = cobj_blob(o);
    cr_assert(cached && memcmp(cached, b->p, b->len) == 0);
  }
  if (type == COLL_LIST) return;
  for (int i = 0; i < 300; i += 7) {
    char x[24];
    int xl = snprintf(x, sizeof x, "e%d", i);
    struct coll_elem eb, eo;
    int fb = coll_find(type, b->p, b->len, x, (size_t)xl, &eb);
    int fo = cobj_find(o, x, (size_t)xl, &eo);
    cr_assert_eq(fb, fo, "find %s: blob %d, object %d", x, fb, fo);
    if (!fb) continue;
    cr_assert_eq(eb.blen, eo.blen);
    cr_assert(eb.blen == 0 || memcmp(eb.b, eo.b, eb.blen) == 0);
    cr_assert(eb.score == eo.score);
  }
}

static void object_model_run(int type, int rounds) {
  struct blob b = {NULL, 0};
  struct coll_delta d;
  coll_delta_init(&d);
  for (int i = 0; i < 200; i++) { /* a start of 200 elements */
    char x[24];
    int xl = snprintf(x, sizeof x, "e%d", type == COLL_LIST ? i % 20 : i);
    if (type == COLL_HASH) coll_hset(&d, x, (size_t)xl, "v", 1);
    else if (type == COLL_SET) coll_sadd(&d, x, (size_t)xl);
    else if (type == COLL_ZSET) coll_zset(&d, (double)(i % 7), x, (size_t)xl);
    else coll_push(&d, 1, x, (size_t)xl);
  }
  apply_ok(type, &b, &d);
  struct cobj *o;
  cr_assert_eq(cobj_from_blob(type, b.p, b.len, &o), 0);
  same_as_blob(type, o, &b);
  size_t space = type == COLL_LIST ? 20 : 300;
  for (int r = 0; r < rounds; r++) {
    coll_delta_init(&d);
    int ops = 1 + (int)rnd(r % 7 == 0 ? 6 : 2);
    for (int k = 0; k < ops; k++)
      random_op(type, &d, space, blob_count(&b), 150);
    cr_assert_eq(d.err, 0);
    int ro = cobj_apply(o, d.buf, d.len);
    int rb = apply(type, &b, &d); /* frees d */
    cr_assert_eq(ro, rb, "round %d: object %d, blob %d", r, ro, rb);
    if (r % 8 == 0 || r == rounds - 1) same_as_blob(type, o, &b);
  }
  cobj_free(o);
  free(b.p);
}

Test(coll, object_agrees_with_blob_for_hashes) {
  object_model_run(COLL_HASH, 3000);
}

Test(coll, object_agrees_with_blob_for_sets) {
  object_model_run(COLL_SET, 3000);
}

Test(coll, object_agrees_with_blob_for_zsets) {
  object_model_run(COLL_ZSET, 3000);
}

Test(coll, object_agrees_with_blob_for_lists) {
  object_model_run(COLL_LIST, 4000);
}

Test(coll, object_refuses_a_blob_holding_a_field_twice) {
  uint8_t blob[4 + 2 * 10];
  put_u32(blob, 2);
  for (int i = 0; i < 2; i++) {
    put_u32(blob + 4 + 10 * i, 1);
    blob[8 + 10 * i] = 'f';
    put_u32(blob + 9 + 10 * i, 1);
    blob[13 + 10 * i] = (uint8_t)('0' + i);
  }
  struct cobj *o = (void *)1;
  cr_assert_eq(cobj_from_blob(COLL_HASH, blob, sizeof blob, &o),
               CAIRN_ECORRUPT);
  cr_assert(o == (void *)1);
}

Test(coll, object_lset_out_of_range_changes_nothing) {
  struct blob b = {NULL, 0};
  struct coll_delta d;
  coll_delta_init(&d);
  for (int i = 0; i < 200; i++) coll_push(&d, 1, "x", 1);
  apply_ok(COLL_LIST, &b, &d);
  struct cobj *o;
  cr_assert_eq(cobj_from_blob(COLL_LIST, b.p, b.len, &o), 0);
  coll_delta_init(&d);
  coll_lset(&d, 200, "y", 1);
  cr_assert_eq(cobj_apply(o, d.buf, d.len), CAIRN_EINVAL);
  coll_delta_free(&d);
  /* Among other operations, LSET goes through the blob: still all or
   * nothing. */
  coll_delta_init(&d);
  coll_push(&d, 0, "z", 1);
  coll_lset(&d, -500, "y", 1);
  cr_assert_eq(cobj_apply(o, d.buf, d.len), CAIRN_EINVAL);
  coll_delta_free(&d);
  same_as_blob(COLL_LIST, o, &b);
  cobj_free(o);
  free(b.p);
}

/* ------------------------------------------------------------------------
 * Through the engine: large collections (held as objects) read and
 * recover as a blob model says, after a reopen (replay of the log) and
 * after a checkpoint.
 * --------------------------------------------------------------------- */

#include "testutil.h"

static const char *const eng_key[5] = {"", "h", "s", "z", "l"};

static cairn *eng_open(const char *dir) {
  cairn_options o;
  cairn_options_init(&o);
  o.log_fn = tu_quiet;
  o.segment_bytes = 1 << 20;
  o.durability = CAIRN_DURABILITY_INTERVAL;
  cairn *db;
  cr_assert_eq(cairn_open(dir, &o, &db), 0);
  return db;
}

/* Every read the engine offers agrees with the model blobs m[1..4]. */
static void eng_check(cairn *db, const struct blob *m) {
  for (int t = COLL_HASH; t <= COLL_LIST; t++) {
    cairn_value v;
    int rc = cairn_get(db, NULL, eng_key[t], 1, &v);
    struct coll_info info;
    int prc = db_coll_probe(db, NULL, eng_key[t], 1, t, NULL, 0, 0, &info);
    if (m[t].len == 0) {
      cr_assert_eq(rc, CAIRN_ENOTFOUND, "type %d", t);
      cr_assert_eq(prc, CAIRN_ENOTFOUND);
      continue;
    }
    cr_assert_eq(rc, 0);
    cr_assert_eq(prc, 0);
    cr_assert_eq(v.type, t);
    cr_assert_eq(v.len, m[t].len, "type %d: %zu bytes, model %zu", t, v.len,
                 m[t].len);
    cr_assert(memcmp(v.data, m[t].p, v.len) == 0, "type %d differs", t);
    cr_assert_eq(info.count, blob_count(&m[t]));
    cr_assert_eq(info.version, v.version);
    cairn_value_free(&v);
    if (t == COLL_LIST) continue;
    struct coll_probe p[24];
    char xs[24][16];
    for (int i = 0; i < 24; i++) {
      p[i].x = xs[i];
      p[i].xlen = (size_t)snprintf(xs[i], sizeof xs[i], "e%d", i * 13);
    }
    cr_assert_eq(db_coll_probe(db, NULL, eng_key[t], 1, t, p, 24, 1, &info),
                 0);
    for (int i = 0; i < 24; i++) {
      struct coll_elem e;
      int f = coll_find(t, m[t].p, m[t].len, p[i].x, p[i].xlen, &e);
      cr_assert_eq(p[i].found, f, "%s", xs[i]);
      if (f && t == COLL_ZSET) cr_assert(p[i].score == e.score);
      if (f && t == COLL_HASH)
        cr_assert(p[i].vlen == e.blen && memcmp(p[i].val, e.b, e.blen) == 0);
      free(p[i].val);
    }
  }
}

/* A delta that empties collection t whatever it holds. */
static void empty_delta(int t, struct coll_delta *d) {
  if (t == COLL_LIST) {
    coll_ltrim(d, 1, 0);
    return;
  }
  for (int i = 0; i < 300; i++) {
    char x[16];
    int xl = snprintf(x, sizeof x, "e%d", i);
    if (t == COLL_HASH) coll_hdel(d, x, (size_t)xl);
    else if (t == COLL_SET) coll_srem(d, x, (size_t)xl);
    else coll_zrem(d, x, (size_t)xl);
  }
}

/* rounds random deltas (the first ones growing every collection past the
 * object threshold) to the engine and to the model alike. */
static void eng_rounds(cairn *db, struct blob *m, int rounds, int empty_at) {
  for (int r = 0; r < rounds; r++) {
    int t = COLL_HASH + (int)rnd(4);
    struct coll_delta d;
    coll_delta_init(&d);
    if (r == empty_at) {
      empty_delta(t, &d);
    } else {
      int ops = 1 + (int)rnd(3);
      size_t n = blob_count(&m[t]);
      for (int k = 0; k < ops; k++)
        random_op(t, &d, t == COLL_LIST ? 20 : 300, n, 200);
    }
    int re = cairn_coll_apply(db, NULL, eng_key[t], 1, t, d.buf, d.len, NULL);
    int rm = apply(t, &m[t], &d);
    cr_assert_eq(re, rm, "round %d type %d: engine %d, model %d", r, t, re,
                 rm);
    if (r % 97 == 0) eng_check(db, m);
  }
  eng_check(db, m);
}

Test(coll_engine, large_collections_read_and_recover_as_the_blob_model) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "coll");
  cairn *db = eng_open(dir);
  struct blob m[5] = {{0}};
  eng_rounds(db, m, 2500, 1200);
  for (int t = 1; t <= 4; t++) /* so the engine held them as objects */
    cr_assert_geq(blob_count(&m[t]), COBJ_MIN_ELEMS, "type %d", t);
  /* An expiry change takes an object back to a blob; it stays right. */
  cairn_write w = {.flags = CAIRN_W_TTL, .ttl_ms = 3600 * 1000};
  cr_assert_eq(cairn_expire(db, NULL, "h", 1, &w), m[1].len ? 0
                                                   : CAIRN_ENOTFOUND);
  eng_rounds(db, m, 300, -1);
  cairn_close(db);
  db = eng_open(dir); /* recovery: the log replayed */
  eng_check(db, m);
  eng_rounds(db, m, 600, 300);
  cr_assert_eq(cairn_checkpoint(db), 0);
  eng_rounds(db, m, 300, -1);
  cairn_close(db);
  db = eng_open(dir); /* the store, then the log after the checkpoint */
  eng_check(db, m);
  cairn_close(db);
  for (int t = 1; t <= 4; t++) free(m[t].p);
  tu_rmrf(dir);
}

/* Pushes one element of len bytes at the tail of list "l". */
static int push_big(cairn *db, const char *x, size_t len) {
  struct coll_delta d;
  coll_delta_init(&d);
  coll_push(&d, 1, x, len);
  int rc = cairn_coll_apply(db, NULL, "l", 1, COLL_LIST, d.buf, d.len, NULL);
  coll_delta_free(&d);
  return rc;
}

static uint32_t list_count(cairn *db) {
  cairn_value v;
  cr_assert_eq(cairn_get(db, NULL, "l", 1, &v), 0);
  uint32_t n = get_u32(v.data);
  cairn_value_free(&v);
  return n;
}

Test(coll_engine, a_collection_past_the_value_limit_is_refused_unchanged) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "coll");
  cairn_options o;
  cairn_options_init(&o);
  o.log_fn = tu_quiet;
  o.durability = CAIRN_DURABILITY_MEMORY;
  cairn *db;
  cr_assert_eq(cairn_open(dir, &o, &db), 0);
  size_t len = (1u << 20) - 100;
  char *x = malloc(len);
  memset(x, 'x', len);
  int rc = 0;
  uint32_t pushed = 0;
  /* Bounded: 64 MiB holds at most 64 such elements. */
  while (pushed < 80 && (rc = push_big(db, x, len)) == 0) pushed++;
  cr_assert_eq(rc, CAIRN_ETOOBIG, "push %u: %s", pushed, cairn_strerror(rc));
  cr_assert(pushed >= 60 && pushed <= 64, "%u elements fitted", pushed);
  cr_assert_eq(list_count(db), pushed, "the refused push left no trace");
  cr_assert_eq(push_big(db, x, 16), 0, "a smaller element still fits");
  cr_assert_eq(list_count(db), pushed + 1);
  cairn_close(db);
  free(x);
  tu_rmrf(dir);
}
