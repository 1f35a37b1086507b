/*
 * cobj.c - large collections held in memory as structures (see cobj.h).
 *
 * Every element is one node: a small header, then (zsets) its skiplist
 * forward pointers, then its bytes (field or member or element, and a
 * hash's value).  Keyed types (hashes, sets, zsets) index their nodes in
 * an open addressing table with linear probing and backward-shift
 * deletion, so a lookup costs one hash and a probe or two.
 *
 * cobj_apply is all or nothing: a first pass over the delta sizes what
 * it may add, a second allocates every node and grows every array it may
 * need, and only then does the third pass change anything, which cannot
 * fail.  The rare delta whose outcome cannot be sized that way (an LSET
 * among other operations, a result near the value or element bounds) is
 * applied through the blob instead: encode, coll_apply, rebuild.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "cobj.h"
#include "hash.h"
#include "limits.h"
#include "record.h"
#include "util.h"

#define ZLEVEL_MAX 32
#define IDX_MIN 16u
#define ARR_MIN 16u

struct cnode {
  uint64_t h;          /* hash of the field/member (keyed types) */
  uint32_t alen, blen; /* field/member/element, and a hash's value */
  uint32_t pos;        /* hashes, sets: place in arr */
  uint32_t level;      /* zsets: forward pointers */
  double score;
  struct cnode *fwd[]; /* zsets: level pointers; then a's bytes, b's */
};

struct cobj {
  int type;
  size_t n;            /* elements */
  size_t elem_bytes;   /* their encoded size */
  size_t node_bytes;   /* their allocations */
  /* Hashes and sets: insertion order in arr[0, used), NULL where an
   * element was removed.  Lists: the elements, arr[head, head + n). */
  struct cnode **arr;
  size_t head, used, cap;
  struct cnode **idx;  /* keyed types: icap slots, a power of two */
  size_t icap;
  struct cnode *zhead; /* zsets: the skiplist's head, no element */
  unsigned zlevel;
  uint64_t rng;
  void *blob;          /* cobj_blob's copy; atomic, see there */
};

/* ------------------------------------------------------------------------
 * Nodes
 * --------------------------------------------------------------------- */

static size_t chunk(size_t request) {
  /* glibc's: request + 8, rounded up to 16, at least 32 (as table.c). */
  size_t c = (request + 8 + 15) & ~(size_t)15;
  return c < 32 ? 32 : c;
}

static char *node_a(const struct cnode *x) {
  return (char *)(uintptr_t)(x->fwd + x->level);
}

static char *node_b(const struct cnode *x) { return node_a(x) + x->alen; }

static size_t node_size(const struct cnode *x) {
  return chunk(sizeof *x + x->level * sizeof x->fwd[0] + x->alen + x->blen);
}

static struct cnode *node_new(unsigned level, const void *a, size_t alen,
                              const void *b, size_t blen, double score) {
  struct cnode *x = malloc(sizeof *x + level * sizeof x->fwd[0] + alen + blen);
  if (!x) return NULL;
  x->alen = (uint32_t)alen;
  x->blen = (uint32_t)blen;
  x->pos = 0;
  x->level = level;
  x->score = score == 0 ? 0.0 : score; /* -0.0 is written as 0.0 */
  x->h = hash64(a, alen);
  for (unsigned i = 0; i < level; i++) x->fwd[i] = NULL;
  if (alen) memcpy(node_a(x), a, alen);
  if (blen) memcpy(node_b(x), b, blen);
  return x;
}

static size_t elem_size(int type, const struct cnode *x) {
  switch (type) {
  case COLL_HASH: return 8 + (size_t)x->alen + x->blen;
  case COLL_ZSET: return 12 + (size_t)x->alen;
  default: return 4 + (size_t)x->alen;
  }
}

/* Account for x joining (sign 1) or leaving (-1) o. */
static void node_count(struct cobj *o, const struct cnode *x, int sign) {
  size_t e = elem_size(o->type, x), b = node_size(x);
  if (sign > 0) {
    o->n++;
    o->elem_bytes += e;
    o->node_bytes += b;
  } else {
    o->n--;
    o->elem_bytes -= e;
    o->node_bytes -= b;
  }
}

static int node_is(const struct cnode *x, uint64_t h, const void *s,
                   size_t len) {
  return x->h == h && x->alen == len &&
         (len == 0 || memcmp(node_a(x), s, len) == 0);
}

static int keyed(int type) { return type != COLL_LIST; }

/* ------------------------------------------------------------------------
 * The index: open addressing, linear probing, load at most one half.
 * --------------------------------------------------------------------- */

static size_t idx_home(const struct cobj *o, uint64_t h) {
  return (size_t)h & (o->icap - 1);
}

/* The slot holding x's equal, or the empty slot where it would go. */
static size_t idx_slot(const struct cobj *o, uint64_t h, const void *s,
                       size_t len) {
  size_t i = idx_home(o, h);
  while (o->idx[i] && !node_is(o->idx[i], h, s, len))
    i = (i + 1) & (o->icap - 1);
  return i;
}

static void idx_put(struct cobj *o, struct cnode *x) {
  size_t i = idx_home(o, x->h);
  while (o->idx[i]) i = (i + 1) & (o->icap - 1);
  o->idx[i] = x;
}

/* Room for n elements.  CAIRN_ENOMEM leaves the index as it was. */
static int idx_reserve(struct cobj *o, size_t n) {
  if (n <= o->icap / 2) return 0;
  size_t cap = o->icap ? o->icap : IDX_MIN;
  while (cap / 2 < n) {
    if (cap > SIZE_MAX / 4 / sizeof *o->idx) return CAIRN_ENOMEM;
    cap *= 2;
  }
  struct cnode **idx = calloc(cap, sizeof *idx), **old = o->idx;
  if (!idx) return CAIRN_ENOMEM;
  size_t ocap = o->icap;
  o->idx = idx;
  o->icap = cap;
  for (size_t i = 0; i < ocap; i++)
    if (old[i]) idx_put(o, old[i]);
  free(old);
  return 0;
}

/* Empty slot i, moving later entries of its run back (no tombstones). */
static void idx_del(struct cobj *o, size_t i) {
  size_t mask = o->icap - 1, j = i;
  for (;;) {
    j = (j + 1) & mask;
    if (!o->idx[j]) break;
    size_t k = idx_home(o, o->idx[j]->h);
    /* An entry whose home lies cyclically in (i, j] stays. */
    if (i <= j ? (i < k && k <= j) : (i < k || k <= j)) continue;
    o->idx[i] = o->idx[j];
    i = j;
  }
  o->idx[i] = NULL;
}

/* ------------------------------------------------------------------------
 * The array: insertion order (hashes, sets) or a deque (lists).
 * --------------------------------------------------------------------- */

static int arr_realloc(struct cobj *o, size_t cap, size_t head) {
  if (cap > SIZE_MAX / sizeof *o->arr) return CAIRN_ENOMEM;
  struct cnode **a = malloc(cap * sizeof *a);
  if (!a) return CAIRN_ENOMEM;
  size_t live = o->type == COLL_LIST ? o->n : o->used;
  if (live) memcpy(a + head, o->arr + o->head, live * sizeof *a);
  free(o->arr);
  o->arr = a;
  o->cap = cap;
  o->head = head;
  return 0;
}

/* Hashes, sets: drop the holes. */
static void arr_compact(struct cobj *o) {
  size_t j = 0;
  for (size_t i = 0; i < o->used; i++) {
    if (!o->arr[i]) continue;
    o->arr[i]->pos = (uint32_t)j;
    o->arr[j++] = o->arr[i];
  }
  o->used = j;
}

/* Hashes, sets: room to append `more`. */
static int arr_reserve(struct cobj *o, size_t more) {
  if (o->used + more <= o->cap) return 0;
  if (o->used - o->n > o->n) arr_compact(o); /* mostly holes */
  if (o->used + more <= o->cap) return 0;
  size_t cap = MAX(MAX(2 * o->cap, o->used + more), (size_t)ARR_MIN);
  return arr_realloc(o, cap, 0);
}

/* Lists: room for `front` more at the head and `back` more at the tail. */
static int deq_reserve(struct cobj *o, size_t front, size_t back) {
  if (o->head >= front && o->cap - o->head - o->n >= back) return 0;
  size_t need = o->n + front + back;
  if (need < o->n) return CAIRN_ENOMEM;
  size_t cap = 2 * need + ARR_MIN;
  return arr_realloc(o, cap, front + (cap - need) / 2);
}

static struct cnode **deq_at(struct cobj *o, size_t i) {
  return &o->arr[o->head + i];
}

/* ------------------------------------------------------------------------
 * The skiplist (zsets), in (score, member) order.
 * --------------------------------------------------------------------- */

static int z_less(const struct cnode *x, const struct cnode *y) {
  return coll_zcmp(x->score, node_a(x), x->alen, y->score, node_a(y),
                   y->alen) < 0;
}

static unsigned z_random_level(struct cobj *o) {
  unsigned l = 1;
  for (;;) {
    o->rng ^= o->rng >> 12; /* xorshift64* */
    o->rng ^= o->rng << 25;
    o->rng ^= o->rng >> 27;
    uint64_t r = o->rng * 2685821657736338717ull;
    /* One chance in four to go up a level, as Redis. */
    for (int k = 0; k < 32 && l < ZLEVEL_MAX; k++, r >>= 2) {
      if (r & 3) return l;
      l++;
    }
    if (l >= ZLEVEL_MAX) return ZLEVEL_MAX;
  }
}

static void z_insert(struct cobj *o, struct cnode *x) {
  struct cnode *update[ZLEVEL_MAX], *p = o->zhead;
  for (unsigned i = o->zlevel; i-- > 0;) {
    while (p->fwd[i] && z_less(p->fwd[i], x)) p = p->fwd[i];
    update[i] = p;
  }
  for (unsigned i = o->zlevel; i < x->level; i++) update[i] = o->zhead;
  if (x->level > o->zlevel) o->zlevel = x->level;
  for (unsigned i = 0; i < x->level; i++) {
    x->fwd[i] = update[i]->fwd[i];
    update[i]->fwd[i] = x;
  }
}

static void z_remove(struct cobj *o, struct cnode *x) {
  struct cnode *update[ZLEVEL_MAX], *p = o->zhead;
  for (unsigned i = o->zlevel; i-- > 0;) {
    while (p->fwd[i] && p->fwd[i] != x && z_less(p->fwd[i], x))
      p = p->fwd[i];
    update[i] = p;
  }
  for (unsigned i = 0; i < x->level; i++) {
    cairn_assert(update[i]->fwd[i] == x);
    update[i]->fwd[i] = x->fwd[i];
  }
  while (o->zlevel > 1 && !o->zhead->fwd[o->zlevel - 1]) o->zlevel--;
}

/* ------------------------------------------------------------------------
 * Building, freeing, reading
 * --------------------------------------------------------------------- */

static struct cobj *cobj_new(int type) {
  struct cobj *o = calloc(1, sizeof *o);
  if (!o) return NULL;
  o->type = type;
  o->rng = 0x9e3779b97f4a7c15ull ^ (uintptr_t)o;
  if (type == COLL_ZSET) {
    o->zhead = node_new(ZLEVEL_MAX, NULL, 0, NULL, 0, 0);
    if (!o->zhead) {
      free(o);
      return NULL;
    }
    o->zlevel = 1;
  }
  return o;
}

static void drop_blob(struct cobj *o) {
  free(__atomic_exchange_n(&o->blob, NULL, __ATOMIC_ACQ_REL));
}

void cobj_free(struct cobj *o) {
  if (!o) return;
  if (o->type == COLL_LIST) {
    for (size_t i = 0; i < o->n; i++) free(*deq_at(o, i));
  } else if (o->type == COLL_ZSET) {
    for (struct cnode *x = o->zhead->fwd[0], *next; x; x = next) {
      next = x->fwd[0];
      free(x);
    }
  } else {
    for (size_t i = 0; i < o->used; i++) free(o->arr[i]);
  }
  free(o->zhead);
  free(o->arr);
  free(o->idx);
  drop_blob(o);
  free(o);
}

int cobj_type(const struct cobj *o) { return o->type; }
size_t cobj_count(const struct cobj *o) { return o->n; }

size_t cobj_blob_len(const struct cobj *o) {
  return o->n ? 4 + o->elem_bytes : 0;
}

size_t cobj_bytes(const struct cobj *o) {
  return chunk(sizeof *o) + o->node_bytes + chunk(o->cap * sizeof *o->arr) +
         chunk(o->icap * sizeof *o->idx) +
         (o->zhead ? node_size(o->zhead) : 0);
}

/* Add x (known absent) at the end (hashes, sets, lists) or in its place
 * (zsets); the room was reserved. */
static void add_node(struct cobj *o, struct cnode *x, int front) {
  if (keyed(o->type)) idx_put(o, x);
  if (o->type == COLL_ZSET) {
    z_insert(o, x);
  } else if (o->type == COLL_LIST) {
    if (front) o->arr[--o->head] = x;
    else *deq_at(o, o->n) = x;
  } else {
    x->pos = (uint32_t)o->used;
    o->arr[o->used++] = x;
  }
  node_count(o, x, 1);
}

/* Put one blob element into o (room reserved); a duplicate field or
 * member is CAIRN_ECORRUPT. */
static int load_elem(struct cobj *o, const struct coll_elem *e) {
  unsigned level = o->type == COLL_ZSET ? z_random_level(o) : 0;
  struct cnode *x = node_new(level, e->a, e->alen, e->b, e->blen, e->score);
  if (!x) return CAIRN_ENOMEM;
  if (keyed(o->type) && o->idx[idx_slot(o, x->h, e->a, e->alen)]) {
    free(x);
    return CAIRN_ECORRUPT;
  }
  add_node(o, x, 0);
  return 0;
}

int cobj_from_blob(int type, const void *blob, size_t len, struct cobj **out) {
  struct coll_iter it;
  long count = coll_iter_init(&it, type, blob, len);
  if (count < 0) return (int)count;
  struct cobj *o = cobj_new(type);
  if (!o) return CAIRN_ENOMEM;
  int rc = 0;
  if (keyed(type)) rc = idx_reserve(o, (size_t)count);
  if (rc == 0 && type == COLL_LIST) rc = deq_reserve(o, 0, (size_t)count);
  if (rc == 0 && type != COLL_LIST && type != COLL_ZSET)
    rc = arr_reserve(o, (size_t)count);
  struct coll_elem e;
  while (rc == 0 && (rc = coll_next(&it, &e)) == 1) rc = load_elem(o, &e);
  if (rc) {
    cobj_free(o);
    return rc;
  }
  *out = o;
  return 0;
}

void cobj_encode(const struct cobj *o, void *buf) {
  uint8_t *p = buf;
  if (o->n == 0) return;
  put_u32(p, (uint32_t)o->n);
  p += 4;
  struct cnode *z = o->type == COLL_ZSET ? o->zhead->fwd[0] : NULL;
  size_t i = 0;
  for (size_t k = 0; k < o->n; k++) {
    const struct cnode *x;
    if (o->type == COLL_ZSET) {
      x = z;
      z = z->fwd[0];
      double d = x->score;
      uint64_t u;
      memcpy(&u, &d, sizeof u);
      put_u64(p, u);
      p += 8;
    } else if (o->type == COLL_LIST) {
      x = o->arr[o->head + k];
    } else {
      while (!o->arr[i]) i++;
      x = o->arr[i++];
    }
    put_u32(p, x->alen);
    memcpy(p + 4, node_a(x), x->alen);
    p += 4 + x->alen;
    if (o->type == COLL_HASH) {
      put_u32(p, x->blen);
      memcpy(p + 4, node_b(x), x->blen);
      p += 4 + x->blen;
    }
  }
  cairn_assert((size_t)(p - (uint8_t *)buf) == cobj_blob_len(o));
}

const void *cobj_blob(struct cobj *o) {
  void *b = __atomic_load_n(&o->blob, __ATOMIC_ACQUIRE);
  if (b || o->n == 0) return b;
  b = malloc(cobj_blob_len(o));
  if (!b) return NULL;
  cobj_encode(o, b);
  void *none = NULL;
  if (__atomic_compare_exchange_n(&o->blob, &none, b, 0, __ATOMIC_ACQ_REL,
                                  __ATOMIC_ACQUIRE))
    return b;
  free(b); /* another reader got there first */
  return none;
}

static struct cnode *find_node(const struct cobj *o, const void *x,
                               size_t xlen, size_t *slot) {
  if (!keyed(o->type) || !o->icap) return NULL;
  size_t i = idx_slot(o, hash64(x, xlen), x, xlen);
  if (slot) *slot = i;
  return o->idx[i];
}

int cobj_find(const struct cobj *o, const void *x, size_t xlen,
              struct coll_elem *e) {
  struct cnode *n = find_node(o, x, xlen, NULL);
  if (!n) return 0;
  e->a = node_a(n);
  e->alen = n->alen;
  e->b = o->type == COLL_HASH ? node_b(n) : NULL;
  e->blen = n->blen;
  e->score = n->score;
  return 1;
}

/* ------------------------------------------------------------------------
 * Applying a delta: sizing it first
 * --------------------------------------------------------------------- */

struct plan {
  size_t ops, nodes;  /* operations; those that take a new node */
  size_t front, back; /* lists: room they may take at each end */
  size_t grow;        /* encoded bytes they may add, at most */
  int lset;           /* an LSET among them */
  int64_t lset_index;
};

static int takes_node(int code) {
  switch (code) {
  case CO_HSET: case CO_SADD: case CO_ZSET: case CO_LPUSH: case CO_RPUSH:
  case CO_LSET: case CO_LINSERT: return 1;
  default: return 0;
  }
}

static size_t op_bytes(const struct coll_opargs *a) {
  switch (a->code) {
  case CO_HSET: return 8 + a->alen + a->blen;
  case CO_ZSET: return 12 + a->alen;
  case CO_LINSERT: return 4 + a->blen;
  default: return 4 + a->alen;
  }
}

static int plan_delta(int type, const void *delta, size_t dlen,
                      struct plan *pl) {
  memset(pl, 0, sizeof *pl);
  const uint8_t *p = delta, *end = dlen ? p + dlen : p;
  struct coll_opargs a;
  int rc;
  /* Each operation takes at least 5 bytes, so this ends. */
  while ((rc = coll_op_next(type, &p, end, &a)) == 1) {
    pl->ops++;
    if (a.code == CO_LSET) {
      pl->lset = 1;
      pl->lset_index = a.i1;
    }
    if (!takes_node(a.code)) continue;
    pl->nodes++;
    pl->grow += op_bytes(&a);
    if (a.code == CO_LPUSH) pl->front++;
    else if (a.code == CO_RPUSH || a.code == CO_LINSERT) pl->back++;
  }
  return rc;
}

/* The nodes the operations that take one will use, in delta order. */
static int plan_nodes(struct cobj *o, const void *delta, size_t dlen,
                      struct cnode **v) {
  const uint8_t *p = delta, *end = p + dlen;
  struct coll_opargs a;
  size_t k = 0;
  while (coll_op_next(o->type, &p, end, &a) == 1) {
    if (!takes_node(a.code)) continue;
    unsigned level = o->type == COLL_ZSET ? z_random_level(o) : 0;
    v[k] = a.code == CO_LINSERT
               ? node_new(0, a.b, a.blen, NULL, 0, 0)
               : node_new(level, a.a, a.alen, a.b, a.blen, a.score);
    if (!v[k]) {
      while (k-- > 0) free(v[k]);
      return CAIRN_ENOMEM;
    }
    k++;
  }
  return 0;
}

static int plan_room(struct cobj *o, const struct plan *pl) {
  int rc = 0;
  if (keyed(o->type)) rc = idx_reserve(o, o->n + pl->nodes);
  if (rc == 0 && (o->type == COLL_HASH || o->type == COLL_SET))
    rc = arr_reserve(o, pl->nodes);
  if (rc == 0 && o->type == COLL_LIST)
    rc = deq_reserve(o, pl->front, pl->back);
  return rc;
}

/* The slow way, for what plan_delta cannot size: through the blob. */
static int apply_via_blob(struct cobj *o, const void *delta, size_t dlen) {
  size_t len = cobj_blob_len(o), outlen;
  void *blob = malloc(len ? len : 1), *out;
  if (!blob) return CAIRN_ENOMEM;
  cobj_encode(o, blob);
  int rc = coll_apply(o->type, blob, len, delta, dlen, &out, &outlen);
  free(blob);
  if (rc) return rc;
  struct cobj *fresh = NULL;
  if (outlen > VALUE_MAX) rc = CAIRN_ETOOBIG;
  else if (outlen) rc = cobj_from_blob(o->type, out, outlen, &fresh);
  else if (!(fresh = cobj_new(o->type))) rc = CAIRN_ENOMEM;
  free(out);
  if (rc) return rc;
  struct cobj tmp = *o;
  *o = *fresh;
  *fresh = tmp;
  cobj_free(fresh);
  return 0;
}

/* ------------------------------------------------------------------------
 * Applying a delta: the operations, which cannot fail
 * --------------------------------------------------------------------- */

struct nodes {
  struct cnode **v;
  size_t i;
};

static struct cnode *take_node(struct nodes *c) {
  struct cnode *x = c->v[c->i];
  c->v[c->i++] = NULL;
  return x;
}

static void remove_keyed(struct cobj *o, struct cnode *x, size_t slot) {
  idx_del(o, slot);
  if (o->type == COLL_ZSET) z_remove(o, x);
  else o->arr[x->pos] = NULL;
  node_count(o, x, -1);
  free(x);
}

/* A field set: in place if present (its order kept), else appended. */
static void op_hset(struct cobj *o, struct cnode *x) {
  size_t slot = idx_slot(o, x->h, node_a(x), x->alen);
  struct cnode *old = o->idx[slot];
  if (!old) {
    add_node(o, x, 0);
    return;
  }
  x->pos = old->pos;
  o->arr[x->pos] = x;
  o->idx[slot] = x;
  node_count(o, old, -1);
  node_count(o, x, 1);
  free(old);
}

static void op_zset(struct cobj *o, struct cnode *x) {
  struct cnode *old = o->idx[idx_slot(o, x->h, node_a(x), x->alen)];
  if (!old) {
    add_node(o, x, 0);
    return;
  }
  if (old->score != x->score) {
    z_remove(o, old);
    old->score = x->score;
    z_insert(o, old);
  }
  free(x);
}

static void op_keyed(struct cobj *o, const struct coll_opargs *a,
                     struct nodes *c) {
  struct cnode *x;
  size_t slot;
  switch (a->code) {
  case CO_HSET: op_hset(o, take_node(c)); return;
  case CO_ZSET: op_zset(o, take_node(c)); return;
  case CO_SADD:
    x = take_node(c);
    if (o->idx[idx_slot(o, x->h, node_a(x), x->alen)]) free(x);
    else add_node(o, x, 0);
    return;
  default: /* HDEL SREM ZREM */
    if ((x = find_node(o, a->a, a->alen, &slot)) != NULL)
      remove_keyed(o, x, slot);
  }
}

static int elem_is(const struct cnode *x, const void *s, size_t len) {
  return x->alen == len && (len == 0 || memcmp(node_a(x), s, len) == 0);
}

static void list_pop(struct cobj *o, int tail, uint32_t k) {
  size_t m = MIN((size_t)k, o->n);
  for (size_t i = 0; i < m; i++) {
    struct cnode *x = tail ? *deq_at(o, o->n - 1) : *deq_at(o, 0);
    node_count(o, x, -1);
    if (!tail) o->head++;
    free(x);
  }
}

static void list_lset(struct cobj *o, int64_t i, struct cnode *x) {
  if (i < 0) i += (int64_t)o->n;
  cairn_assert(i >= 0 && (uint64_t)i < o->n); /* checked by the plan */
  struct cnode **at = deq_at(o, (size_t)i), *old = *at;
  *at = x;
  node_count(o, old, -1);
  node_count(o, x, 1);
  free(old);
}

static void list_ltrim(struct cobj *o, int64_t start, int64_t stop) {
  size_t from, keep, n = o->n;
  coll_ltrim_range(start, stop, n, &from, &keep);
  for (size_t i = 0; i < n; i++) {
    if (i >= from && i < from + keep) continue;
    struct cnode *x = o->arr[o->head + i];
    node_count(o, x, -1);
    free(x);
  }
  o->head += from;
}

/* Redis's LREM: count > 0 from the head, < 0 from the tail, 0 all. */
static void list_lrem(struct cobj *o, const struct coll_opargs *a) {
  uint64_t lim = a->i1 == 0 ? UINT64_MAX
                 : a->i1 < 0 ? 0 - (uint64_t)a->i1 : (uint64_t)a->i1;
  size_t n = o->n, j;
  struct cnode **v = o->arr + o->head;
  if (a->i1 >= 0) {
    j = 0;
    for (size_t i = 0; i < n; i++) {
      if (lim && elem_is(v[i], a->a, a->alen)) {
        lim--;
        node_count(o, v[i], -1);
        free(v[i]);
        continue;
      }
      v[j++] = v[i];
    }
    return;
  }
  j = n; /* from the tail: compact towards it, then move the head */
  for (size_t i = n; i-- > 0;) {
    if (lim && elem_is(v[i], a->a, a->alen)) {
      lim--;
      node_count(o, v[i], -1);
      free(v[i]);
      continue;
    }
    v[--j] = v[i];
  }
  o->head += j;
}

static void list_linsert(struct cobj *o, const struct coll_opargs *a,
                         struct cnode *x) {
  struct cnode **v = o->arr + o->head;
  size_t i = 0;
  while (i < o->n && !elem_is(v[i], a->a, a->alen)) i++;
  if (i == o->n) {
    free(x);
    return;
  }
  size_t at = i + (size_t)a->after;
  memmove(v + at + 1, v + at, (o->n - at) * sizeof *v);
  v[at] = x;
  node_count(o, x, 1);
}

static void op_list(struct cobj *o, const struct coll_opargs *a,
                    struct nodes *c) {
  switch (a->code) {
  case CO_LPUSH: add_node(o, take_node(c), 1); return;
  case CO_RPUSH: add_node(o, take_node(c), 0); return;
  case CO_LPOP: case CO_RPOP: list_pop(o, a->code == CO_RPOP, a->n); return;
  case CO_LSET: list_lset(o, a->i1, take_node(c)); return;
  case CO_LTRIM: list_ltrim(o, a->i1, a->i2); return;
  case CO_LREM: list_lrem(o, a); return;
  default: list_linsert(o, a, take_node(c)); return;
  }
}

/* Would the plan's result stay within the bounds of a collection? */
static int plan_fits(const struct cobj *o, const struct plan *pl) {
  return pl->grow <= VALUE_MAX &&
         cobj_blob_len(o) + 4 + pl->grow <= VALUE_MAX &&
         o->n + pl->nodes <= COLL_ELEMS_MAX;
}

int cobj_apply(struct cobj *o, const void *delta, size_t dlen) {
  struct plan pl;
  int rc = plan_delta(o->type, delta, dlen, &pl);
  if (rc) return rc;
  if ((pl.lset && pl.ops > 1) || !plan_fits(o, &pl))
    return apply_via_blob(o, delta, dlen);
  if (pl.lset) {
    int64_t i = pl.lset_index < 0 ? pl.lset_index + (int64_t)o->n
                                  : pl.lset_index;
    if (i < 0 || (uint64_t)i >= o->n) return CAIRN_EINVAL;
  }
  struct nodes c = {NULL, 0};
  if (pl.nodes) {
    if (pl.nodes > SIZE_MAX / sizeof *c.v ||
        !(c.v = malloc(pl.nodes * sizeof *c.v)))
      return CAIRN_ENOMEM;
    if ((rc = plan_nodes(o, delta, dlen, c.v)) != 0) {
      free(c.v);
      return rc;
    }
  }
  if ((rc = plan_room(o, &pl)) != 0) {
    for (size_t i = 0; i < pl.nodes; i++) free(c.v[i]);
    free(c.v);
    return rc;
  }
  drop_blob(o);
  const uint8_t *p = delta, *end = p + dlen;
  struct coll_opargs a;
  while (coll_op_next(o->type, &p, end, &a) == 1) {
    if (o->type == COLL_LIST) op_list(o, &a, &c);
    else op_keyed(o, &a, &c);
  }
  cairn_assert(c.i == pl.nodes);
  free(c.v);
  return 0;
}
