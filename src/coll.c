/*
 * coll.c - collections: the blob and delta codecs, and coll_apply.
 *
 * The formats are laid out in coll.h.  What makes a blob valid:
 *   - len 0 (the empty collection), or a u32 count in 1..COLL_ELEMS_MAX
 *     followed by exactly count elements and nothing else;
 *   - every length fits in what remains of the blob;
 *   - zset scores are not NaN and elements strictly increase by (score,
 *     member bytes, shorter first on a common prefix), Redis's order, so
 *     members are unique; -0.0 compares equal to 0.0 and is written as 0.0.
 * Uniqueness of hash fields and set members is kept by coll_apply but not
 * checked on read (that would cost a hash table per read); a blob with a
 * duplicate still reads and applies without harm: operations act on the
 * first occurrence.
 *
 * A delta is valid when every operation belongs to the blob's type, has
 * all its arguments within the delta, a zset score that is not NaN and a
 * LINSERT "after" byte of 0 or 1.
 *
 * coll_apply reads the blob into an array of element references (into the
 * blob and the delta, which both outlive the call), applies the
 * operations to the array and writes the new blob once.  The array keeps
 * room at both ends so pushes and pops at either end are O(1); anything
 * else is at most O(n) per operation.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "coll.h"
#include "record.h"
#include "util.h"

/* ------------------------------------------------------------------------
 * Shared helpers.
 * --------------------------------------------------------------------- */

static int type_ok(int type) { return type >= COLL_HASH && type <= COLL_LIST; }

/* Smallest encoded element, to bound a count against the blob's size. */
static size_t elem_min_bytes(int type) {
  switch (type) {
  case COLL_HASH: return 8;
  case COLL_ZSET: return 12;
  default: return 4;
  }
}

static int bytes_eq(const void *a, size_t al, const void *b, size_t bl) {
  return al == bl && (al == 0 || memcmp(a, b, al) == 0);
}

/* Redis's zset order: score, then member bytes, shorter first. */
int coll_zcmp(double s1, const void *m1, size_t l1, double s2,
              const void *m2, size_t l2) {
  if (s1 < s2) return -1;
  if (s1 > s2) return 1;
  size_t l = MIN(l1, l2);
  int c = l ? memcmp(m1, m2, l) : 0;
  if (c) return c;
  return (l1 > l2) - (l1 < l2);
}

static double bits_to_double(uint64_t u) {
  double d;
  memcpy(&d, &u, sizeof d);
  return d;
}

/* -0.0 becomes 0.0, so equal scores have one encoding. */
static uint64_t double_to_bits(double d) {
  if (d == 0) d = 0.0;
  uint64_t u;
  memcpy(&u, &d, sizeof u);
  return u;
}

/* Take n bytes at *p if that many remain before end. */
static const uint8_t *take(const uint8_t **p, const uint8_t *end, size_t n) {
  if ((size_t)(end - *p) < n) return NULL;
  const uint8_t *at = *p;
  *p += n;
  return at;
}

/* A u32 length and that many bytes. */
static int take_str(const uint8_t **p, const uint8_t *end, const void **s,
                    size_t *slen) {
  const uint8_t *l = take(p, end, 4);
  if (!l) return CAIRN_ECORRUPT;
  uint32_t n = get_u32(l);
  const uint8_t *b = take(p, end, n);
  if (!b) return CAIRN_ECORRUPT;
  *s = b;
  *slen = n;
  return 0;
}

static int take_score(const uint8_t **p, const uint8_t *end, double *score) {
  const uint8_t *b = take(p, end, 8);
  if (!b) return CAIRN_ECORRUPT;
  double d = bits_to_double(get_u64(b));
  if (isnan(d)) return CAIRN_ECORRUPT;
  *score = d;
  return 0;
}

/* ------------------------------------------------------------------------
 * Reading a blob.
 * --------------------------------------------------------------------- */

long coll_iter_init(struct coll_iter *it, int type, const void *blob,
                    size_t len) {
  if (!type_ok(type)) return CAIRN_ECORRUPT;
  const uint8_t *b = blob;
  uint32_t count = 0;
  if (len > 0) {
    if (len < 4 || !blob) return CAIRN_ECORRUPT;
    count = get_u32(b);
    /* A stored collection is never empty; the count must also fit in the
     * bytes that follow, so a corrupt count cannot make a reader allocate
     * more than the blob's size warrants. */
    if (count == 0 || count > COLL_ELEMS_MAX ||
        count > (len - 4) / elem_min_bytes(type))
      return CAIRN_ECORRUPT;
  }
  memset(it, 0, sizeof *it);
  it->type = type;
  it->p = len ? b + 4 : b;
  it->end = len ? b + len : b;
  it->left = count;
  return (long)count;
}

int coll_next(struct coll_iter *it, struct coll_elem *e) {
  if (it->left == 0) return it->p == it->end ? 0 : CAIRN_ECORRUPT;
  const uint8_t *p = it->p;
  struct coll_elem x = {0};
  if (it->type == COLL_ZSET && take_score(&p, it->end, &x.score) != 0)
    return CAIRN_ECORRUPT;
  if (take_str(&p, it->end, &x.a, &x.alen) != 0) return CAIRN_ECORRUPT;
  if (it->type == COLL_HASH && take_str(&p, it->end, &x.b, &x.blen) != 0)
    return CAIRN_ECORRUPT;
  if (it->type == COLL_ZSET) {
    if (it->zm &&
        coll_zcmp(it->zscore, it->zm, it->zmlen, x.score, x.a, x.alen) >= 0)
      return CAIRN_ECORRUPT;
    it->zm = x.a;
    it->zmlen = x.alen;
    it->zscore = x.score;
  }
  it->p = p;
  it->left--;
  *e = x;
  return 1;
}

/* The whole blob is read even after a match, so coll_find accepts exactly
 * the blobs coll_next does. */
int coll_find(int type, const void *blob, size_t len, const void *x,
              size_t xlen, struct coll_elem *e) {
  struct coll_iter it;
  long n = coll_iter_init(&it, type, blob, len);
  if (n < 0) return (int)n;
  struct coll_elem cur, hit = {0};
  int found = 0, rc;
  while ((rc = coll_next(&it, &cur)) == 1) {
    if (!found && bytes_eq(cur.a, cur.alen, x, xlen)) {
      hit = cur;
      found = 1;
    }
  }
  if (rc < 0) return rc;
  if (found) *e = hit;
  return found;
}

/* ------------------------------------------------------------------------
 * Building a delta.
 * --------------------------------------------------------------------- */

void coll_delta_init(struct coll_delta *d) { memset(d, 0, sizeof *d); }

void coll_delta_free(struct coll_delta *d) {
  free(d->buf);
  memset(d, 0, sizeof *d);
}

/* Reserve n more bytes; NULL (with d->err set) once anything failed. */
static uint8_t *delta_room(struct coll_delta *d, size_t n) {
  if (d->err) return NULL;
  if (n > d->cap - d->len) {
    size_t cap = d->cap ? d->cap : 64;
    while (cap - d->len < n) {
      if (cap > SIZE_MAX / 2) {
        d->err = CAIRN_ENOMEM;
        return NULL;
      }
      cap *= 2;
    }
    uint8_t *b = realloc(d->buf, cap);
    if (!b) {
      d->err = CAIRN_ENOMEM;
      return NULL;
    }
    d->buf = b;
    d->cap = cap;
  }
  uint8_t *p = d->buf + d->len;
  d->len += n;
  d->ops++;
  return p;
}

/* Lengths travel as u32; a longer argument cannot be logged. */
static int delta_len_ok(struct coll_delta *d, size_t a, size_t b) {
  if (a > UINT32_MAX || b > UINT32_MAX) {
    if (!d->err) d->err = CAIRN_EINVAL;
    return 0;
  }
  return 1;
}

static uint8_t *put_str(uint8_t *p, const void *s, size_t n) {
  put_u32(p, (uint32_t)n);
  if (n) memcpy(p + 4, s, n);
  return p + 4 + n;
}

/* One operation with an optional 8-byte number and up to two strings. */
static void delta_op(struct coll_delta *d, int code, const uint64_t *num,
                     const void *a, size_t al, int has_a, const void *b,
                     size_t bl, int has_b) {
  if (!delta_len_ok(d, al, bl)) return;
  size_t n = 1 + (num ? 8 : 0) + (has_a ? 4 + al : 0) + (has_b ? 4 + bl : 0);
  uint8_t *p = delta_room(d, n);
  if (!p) return;
  *p++ = (uint8_t)code;
  if (num) {
    put_u64(p, *num);
    p += 8;
  }
  if (has_a) p = put_str(p, a, al);
  if (has_b) put_str(p, b, bl);
}

void coll_hset(struct coll_delta *d, const void *f, size_t fl, const void *v,
               size_t vl) {
  delta_op(d, CO_HSET, NULL, f, fl, 1, v, vl, 1);
}

void coll_hdel(struct coll_delta *d, const void *f, size_t fl) {
  delta_op(d, CO_HDEL, NULL, f, fl, 1, NULL, 0, 0);
}

void coll_sadd(struct coll_delta *d, const void *m, size_t ml) {
  delta_op(d, CO_SADD, NULL, m, ml, 1, NULL, 0, 0);
}

void coll_srem(struct coll_delta *d, const void *m, size_t ml) {
  delta_op(d, CO_SREM, NULL, m, ml, 1, NULL, 0, 0);
}

/* A NaN score would be refused on replay, so it is refused here. */
void coll_zset(struct coll_delta *d, double score, const void *m, size_t ml) {
  if (isnan(score)) {
    if (!d->err) d->err = CAIRN_EINVAL;
    return;
  }
  uint64_t bits = double_to_bits(score);
  delta_op(d, CO_ZSET, &bits, m, ml, 1, NULL, 0, 0);
}

void coll_zrem(struct coll_delta *d, const void *m, size_t ml) {
  delta_op(d, CO_ZREM, NULL, m, ml, 1, NULL, 0, 0);
}

void coll_push(struct coll_delta *d, int tail, const void *x, size_t xl) {
  delta_op(d, tail ? CO_RPUSH : CO_LPUSH, NULL, x, xl, 1, NULL, 0, 0);
}

void coll_pop(struct coll_delta *d, int tail, uint32_t n) {
  uint8_t *p = delta_room(d, 5);
  if (!p) return;
  p[0] = tail ? CO_RPOP : CO_LPOP;
  put_u32(p + 1, n);
}

void coll_lset(struct coll_delta *d, int64_t index, const void *x, size_t xl) {
  uint64_t u = (uint64_t)index;
  delta_op(d, CO_LSET, &u, x, xl, 1, NULL, 0, 0);
}

void coll_ltrim(struct coll_delta *d, int64_t start, int64_t stop) {
  uint8_t *p = delta_room(d, 17);
  if (!p) return;
  p[0] = CO_LTRIM;
  put_u64(p + 1, (uint64_t)start);
  put_u64(p + 9, (uint64_t)stop);
}

void coll_lrem(struct coll_delta *d, int64_t count, const void *x, size_t xl) {
  uint64_t u = (uint64_t)count;
  delta_op(d, CO_LREM, &u, x, xl, 1, NULL, 0, 0);
}

void coll_linsert(struct coll_delta *d, int after, const void *pivot,
                  size_t pl, const void *x, size_t xl) {
  if (!delta_len_ok(d, pl, xl)) return;
  uint8_t *p = delta_room(d, 2 + 4 + pl + 4 + xl);
  if (!p) return;
  p[0] = CO_LINSERT;
  p[1] = after ? 1 : 0;
  put_str(put_str(p + 2, pivot, pl), x, xl);
}

/* ------------------------------------------------------------------------
 * Decoding a delta.
 * --------------------------------------------------------------------- */

static int op_type(int code) {
  switch (code) {
  case CO_HSET: case CO_HDEL: return COLL_HASH;
  case CO_SADD: case CO_SREM: return COLL_SET;
  case CO_ZSET: case CO_ZREM: return COLL_ZSET;
  case CO_LPUSH: case CO_RPUSH: case CO_LPOP: case CO_RPOP: case CO_LSET:
  case CO_LTRIM: case CO_LREM: case CO_LINSERT: return COLL_LIST;
  default: return 0;
  }
}

static int take_i64(const uint8_t **p, const uint8_t *end, int64_t *v) {
  const uint8_t *b = take(p, end, 8);
  if (!b) return CAIRN_ECORRUPT;
  *v = (int64_t)get_u64(b);
  return 0;
}

/* The arguments of o->code, whose byte has been taken. */
static int op_args(const uint8_t **p, const uint8_t *end,
                   struct coll_opargs *o) {
  const uint8_t *b;
  switch (o->code) {
  case CO_HSET:
    if (take_str(p, end, &o->a, &o->alen)) return CAIRN_ECORRUPT;
    return take_str(p, end, &o->b, &o->blen);
  case CO_ZSET:
    if (take_score(p, end, &o->score)) return CAIRN_ECORRUPT;
    return take_str(p, end, &o->a, &o->alen);
  case CO_LPOP: case CO_RPOP:
    if (!(b = take(p, end, 4))) return CAIRN_ECORRUPT;
    o->n = get_u32(b);
    return 0;
  case CO_LSET: case CO_LREM:
    if (take_i64(p, end, &o->i1)) return CAIRN_ECORRUPT;
    return take_str(p, end, &o->a, &o->alen);
  case CO_LTRIM:
    if (take_i64(p, end, &o->i1)) return CAIRN_ECORRUPT;
    return take_i64(p, end, &o->i2);
  case CO_LINSERT:
    if (!(b = take(p, end, 1)) || *b > 1) return CAIRN_ECORRUPT;
    o->after = *b;
    if (take_str(p, end, &o->a, &o->alen)) return CAIRN_ECORRUPT;
    return take_str(p, end, &o->b, &o->blen);
  default: /* HDEL SADD SREM ZREM LPUSH RPUSH: one string */
    return take_str(p, end, &o->a, &o->alen);
  }
}

/* The next operation: 1, 0 at the end of the delta, or CAIRN_ECORRUPT. */
int coll_op_next(int type, const uint8_t **p, const uint8_t *end,
                 struct coll_opargs *o) {
  if (*p == end) return 0;
  memset(o, 0, sizeof *o);
  const uint8_t *q = *p;
  o->code = *q++;
  if (op_type(o->code) != type) return CAIRN_ECORRUPT;
  if (op_args(&q, end, o) != 0) return CAIRN_ECORRUPT;
  *p = q;
  return 1;
}

int coll_delta_check(int type, const void *delta, size_t dlen) {
  if (!type_ok(type) || (dlen && !delta)) return CAIRN_ECORRUPT;
  const uint8_t *p = delta, *end = dlen ? p + dlen : p;
  struct coll_opargs o;
  int rc;
  /* Each operation takes at least 5 bytes, so this ends. */
  while ((rc = coll_op_next(type, &p, end, &o)) == 1) {}
  return rc;
}

/* ------------------------------------------------------------------------
 * The element array coll_apply works on: v[head .. head + n).
 * --------------------------------------------------------------------- */

struct vec {
  struct coll_elem *v;
  size_t head, n, cap;
};

/* Reallocate with room for at least `more` new elements at each end. */
static int vec_grow(struct vec *x, size_t more) {
  if (x->n > COLL_ELEMS_MAX) return CAIRN_EINVAL;
  size_t cap = 2 * x->n + 2 * more + 16;
  if (cap > SIZE_MAX / sizeof *x->v) return CAIRN_ENOMEM;
  struct coll_elem *v = malloc(cap * sizeof *v);
  if (!v) return CAIRN_ENOMEM;
  size_t head = (cap - x->n) / 2;
  if (x->n) memcpy(v + head, x->v + x->head, x->n * sizeof *v);
  free(x->v);
  x->v = v;
  x->head = head;
  x->cap = cap;
  return 0;
}

static struct coll_elem *vec_at(struct vec *x, size_t i) {
  return &x->v[x->head + i];
}

/* Insert e at position i (0..n). */
static int vec_insert(struct vec *x, size_t i, const struct coll_elem *e) {
  if (x->n >= COLL_ELEMS_MAX) return CAIRN_EINVAL;
  if (i == 0 && x->head == 0) {
    int rc = vec_grow(x, 1);
    if (rc) return rc;
  }
  if (i == 0) {
    x->head--;
  } else {
    if (x->head + x->n == x->cap) {
      int rc = vec_grow(x, 1);
      if (rc) return rc;
    }
    memmove(vec_at(x, i + 1), vec_at(x, i), (x->n - i) * sizeof *x->v);
  }
  x->n++;
  *vec_at(x, i) = *e;
  return 0;
}

static void vec_erase(struct vec *x, size_t i) {
  if (i == 0) {
    x->head++;
  } else {
    memmove(vec_at(x, i), vec_at(x, i + 1), (x->n - i - 1) * sizeof *x->v);
  }
  x->n--;
}

/* Index of the first element whose a equals s, or -1. */
static long vec_find(struct vec *x, const void *s, size_t len) {
  for (size_t i = 0; i < x->n; i++) {
    struct coll_elem *e = vec_at(x, i);
    if (bytes_eq(e->a, e->alen, s, len)) return (long)i;
  }
  return -1;
}

/* Read the blob into x. */
static int vec_load(struct vec *x, int type, const void *blob, size_t len) {
  struct coll_iter it;
  long count = coll_iter_init(&it, type, blob, len);
  if (count < 0) return (int)count;
  memset(x, 0, sizeof *x);
  /* count is at most COLL_ELEMS_MAX, so this cannot overflow. */
  x->cap = (size_t)count + (size_t)count / 4 + 16;
  if (x->cap > SIZE_MAX / sizeof *x->v) return CAIRN_ENOMEM;
  x->head = (x->cap - (size_t)count) / 2;
  x->v = malloc(x->cap * sizeof *x->v);
  if (!x->v) return CAIRN_ENOMEM;
  int rc;
  struct coll_elem e;
  while ((rc = coll_next(&it, &e)) == 1) *vec_at(x, x->n++) = e;
  if (rc < 0) {
    free(x->v);
    x->v = NULL;
    return rc;
  }
  cairn_assert(x->n == (size_t)count);
  return 0;
}

/* ------------------------------------------------------------------------
 * Operations on hashes, sets and zsets.
 * --------------------------------------------------------------------- */

static int apply_keyed(struct vec *x, const struct coll_opargs *o) {
  long i = vec_find(x, o->a, o->alen);
  struct coll_elem e = {.a = o->a, .alen = o->alen, .b = o->b,
                        .blen = o->blen};
  switch (o->code) {
  case CO_HSET:
    if (i >= 0) {
      vec_at(x, (size_t)i)->b = o->b;
      vec_at(x, (size_t)i)->blen = o->blen;
      return 0;
    }
    return vec_insert(x, x->n, &e);
  case CO_SADD:
    return i >= 0 ? 0 : vec_insert(x, x->n, &e);
  default: /* HDEL SREM ZREM */
    if (i >= 0) vec_erase(x, (size_t)i);
    return 0;
  }
}

/* Add member at score, or move it there; binary search for the place.
 * Every copy of the member goes first: a blob from disk may hold one
 * twice at different scores (its order check cannot see that), and the
 * result must be canonical whatever came in. */
static int apply_zset(struct vec *x, const struct coll_opargs *o) {
  for (long i; (i = vec_find(x, o->a, o->alen)) >= 0;)
    vec_erase(x, (size_t)i);
  struct coll_elem e = {.a = o->a, .alen = o->alen,
                        .score = o->score == 0 ? 0.0 : o->score};
  size_t lo = 0, hi = x->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    struct coll_elem *m = vec_at(x, mid);
    if (coll_zcmp(m->score, m->a, m->alen, e.score, e.a, e.alen) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return vec_insert(x, lo, &e);
}

/* ------------------------------------------------------------------------
 * Operations on lists.
 * --------------------------------------------------------------------- */

static int list_lset(struct vec *x, const struct coll_opargs *o) {
  int64_t i = o->i1;
  if (i < 0) i += (int64_t)x->n;
  if (i < 0 || (uint64_t)i >= x->n) return CAIRN_EINVAL;
  struct coll_elem *e = vec_at(x, (size_t)i);
  e->a = o->a;
  e->alen = o->alen;
  return 0;
}

/* Redis's LTRIM: keep [start, stop] after resolving negative indexes. */
void coll_ltrim_range(int64_t start, int64_t stop, size_t n, size_t *from,
                      size_t *keep) {
  int64_t len = (int64_t)n;
  /* Values far out of range are clamped first so the sums cannot wrap. */
  start = MAX(MIN(start, len), -len - 1);
  stop = MAX(MIN(stop, len), -len - 1);
  if (start < 0) start += len;
  if (stop < 0) stop += len;
  if (start < 0) start = 0;
  if (start > stop || start >= len) {
    *from = 0;
    *keep = 0;
    return;
  }
  if (stop >= len) stop = len - 1;
  *from = (size_t)start;
  *keep = (size_t)(stop - start + 1);
}

static void list_ltrim(struct vec *x, int64_t start, int64_t stop) {
  size_t from, keep;
  coll_ltrim_range(start, stop, x->n, &from, &keep);
  x->head += from;
  x->n = keep;
}

/* Redis's LREM: count > 0 from the head, < 0 from the tail, 0 all. */
static void list_lrem(struct vec *x, const struct coll_opargs *o) {
  uint64_t lim = o->i1 == 0 ? UINT64_MAX
                 : o->i1 < 0 ? 0 - (uint64_t)o->i1 : (uint64_t)o->i1;
  size_t n = x->n, j;
  if (o->i1 >= 0) {
    j = 0;
    for (size_t i = 0; i < n; i++) {
      struct coll_elem *e = vec_at(x, i);
      if (lim && bytes_eq(e->a, e->alen, o->a, o->alen)) {
        lim--;
        continue;
      }
      *vec_at(x, j++) = *e;
    }
    x->n = j;
    return;
  }
  /* From the tail: compact towards the tail, then move the head. */
  j = n;
  for (size_t i = n; i-- > 0;) {
    struct coll_elem *e = vec_at(x, i);
    if (lim && bytes_eq(e->a, e->alen, o->a, o->alen)) {
      lim--;
      continue;
    }
    *vec_at(x, --j) = *e;
  }
  x->head += j;
  x->n -= j;
}

static int list_linsert(struct vec *x, const struct coll_opargs *o) {
  long i = vec_find(x, o->a, o->alen);
  if (i < 0) return 0;
  struct coll_elem e = {.a = o->b, .alen = o->blen};
  return vec_insert(x, (size_t)i + (size_t)o->after, &e);
}

static int apply_list(struct vec *x, const struct coll_opargs *o) {
  struct coll_elem e = {.a = o->a, .alen = o->alen};
  size_t k;
  switch (o->code) {
  case CO_LPUSH: return vec_insert(x, 0, &e);
  case CO_RPUSH: return vec_insert(x, x->n, &e);
  case CO_LPOP:
    k = MIN((size_t)o->n, x->n);
    x->head += k;
    x->n -= k;
    return 0;
  case CO_RPOP:
    x->n -= MIN((size_t)o->n, x->n);
    return 0;
  case CO_LSET: return list_lset(x, o);
  case CO_LTRIM:
    list_ltrim(x, o->i1, o->i2);
    return 0;
  case CO_LREM:
    list_lrem(x, o);
    return 0;
  default: return list_linsert(x, o);
  }
}

/* ------------------------------------------------------------------------
 * Writing the new blob.
 * --------------------------------------------------------------------- */

static size_t elem_bytes(int type, const struct coll_elem *e) {
  switch (type) {
  case COLL_HASH: return 8 + e->alen + e->blen;
  case COLL_ZSET: return 12 + e->alen;
  default: return 4 + e->alen;
  }
}

static int vec_write(struct vec *x, int type, void **out, size_t *outlen) {
  if (x->n == 0) {
    *out = NULL;
    *outlen = 0;
    return 0;
  }
  size_t total = 4;
  for (size_t i = 0; i < x->n; i++) {
    size_t b = elem_bytes(type, vec_at(x, i));
    if (b > SIZE_MAX - total) return CAIRN_ENOMEM;
    total += b;
  }
  uint8_t *buf = malloc(total), *p = buf;
  if (!buf) return CAIRN_ENOMEM;
  put_u32(p, (uint32_t)x->n);
  p += 4;
  for (size_t i = 0; i < x->n; i++) {
    const struct coll_elem *e = vec_at(x, i);
    if (type == COLL_ZSET) {
      put_u64(p, double_to_bits(e->score));
      p += 8;
    }
    p = put_str(p, e->a, e->alen);
    if (type == COLL_HASH) p = put_str(p, e->b, e->blen);
  }
  cairn_assert((size_t)(p - buf) == total);
  *out = buf;
  *outlen = total;
  return 0;
}

/* ------------------------------------------------------------------------
 * Applying a delta.
 * --------------------------------------------------------------------- */

static int apply_op(int type, struct vec *x, const struct coll_opargs *o) {
  switch (type) {
  case COLL_LIST: return apply_list(x, o);
  case COLL_ZSET:
    return o->code == CO_ZSET ? apply_zset(x, o) : apply_keyed(x, o);
  default: return apply_keyed(x, o);
  }
}

int coll_apply(int type, const void *blob, size_t len, const void *delta,
               size_t dlen, void **out, size_t *outlen) {
  /* The delta's form is checked whole first, so a malformed delta is
   * CAIRN_ECORRUPT whatever the blob, exactly when coll_delta_check says
   * so, even if an earlier operation would fail with CAIRN_EINVAL. */
  int rc = coll_delta_check(type, delta, dlen);
  if (rc) return rc;
  struct vec x;
  rc = vec_load(&x, type, blob, len);
  if (rc) return rc;
  const uint8_t *p = delta, *end = dlen ? p + dlen : p;
  struct coll_opargs o;
  while ((rc = coll_op_next(type, &p, end, &o)) == 1) {
    rc = apply_op(type, &x, &o);
    if (rc) break;
  }
  if (rc == 0) rc = vec_write(&x, type, out, outlen);
  free(x.v);
  return rc;
}
