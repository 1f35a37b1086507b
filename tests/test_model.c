/*
 * test_model.c - random operations against the database and against a
 * trivial in-memory model, comparing every result code, value, version and
 * expiry.
 *
 * The key space is small (MODEL_KEYS keys in each of two namespaces) so
 * that conditions hit both ways.  Lifespans are hours long, so nothing
 * expires during a run: expiry times are checked against the window in
 * which the write happened, never by waiting.
 *
 * Versions: a successful write gives its keys a version greater than every
 * version seen before; a read gives back the version last learnt.
 *
 * Environment: CAIRN_MODEL_SEED (reproduce a run; every failure message
 * names its seed) and CAIRN_MODEL_OPS (length of the main run).
 */
#include "config.h"

#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cairn.h"
#include "testutil.h"

#define MODEL_KEYS      25   /* per namespace */
#define MODEL_NS        2
#define COUNTER_KEYS    8    /* keys 0..7 hold integers or non-integers */
#define BIG_VALUE_BYTES 70000u
#define HOUR_MS         (3600ull * 1000)
#define EXPIRY_SLACK_MS 50   /* a coarse clock in the engine may lag ours */
#define SCAN_CALLS_MAX  1000u
#define OPS_DEFAULT     5000u

/* ======================================================================
 * State
 * ==================================================================== */

struct slot {
  int live;
  uint8_t *val;
  size_t vlen;
  int num;             /* val is a decimal integer... */
  int64_t numval;      /* ...this one */
  uint64_t version;
  int64_t exp_lo, exp_hi; /* expire_at_ms lies in here; 0, 0: never */
};

struct mt {
  cairn *db;
  char dir[4096];
  cairn_options opt;
  uint64_t seed, rng;
  unsigned op;         /* index of the current operation */
  const char *what;    /* its name, for failure messages */
  struct slot s[MODEL_NS][MODEL_KEYS];
  uint64_t max_version; /* highest version seen */
};

#define MCHECK(t, cond, fmt, ...)                                           \
  cr_assert((cond), "seed %" PRIu64 " (CAIRN_MODEL_SEED) op %u %s: " fmt,   \
            (t)->seed, (t)->op, (t)->what, ##__VA_ARGS__)

#define MCHECK_RC(t, got, want)                                             \
  MCHECK(t, (got) == (want), "returned %d (%s), model says %d (%s)", (got), \
         cairn_strerror(got), (want), cairn_strerror(want))

static uint64_t rnd(struct mt *t) {
  uint64_t z = (t->rng += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static unsigned below(struct mt *t, unsigned n) {
  return (unsigned)(rnd(t) % n);
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *ns_name(int ns) { return ns ? "ns2" : NULL; }

/* Keys "k00".."k24", except that every tenth is binary (a NUL and 0xff in
 * it), so that nothing treats keys as C strings. */
static size_t key_bytes(int i, uint8_t *buf) {
  if (i % 10 == 9) {
    buf[0] = 'x';
    buf[1] = 0;
    buf[2] = (uint8_t)i;
    buf[3] = 0xff;
    return 4;
  }
  return (size_t)sprintf((char *)buf, "k%02d", i);
}

static void slot_clear(struct slot *s) {
  free(s->val);
  memset(s, 0, sizeof *s);
}

static void slot_set(struct slot *s, const uint8_t *val, size_t vlen) {
  free(s->val);
  s->val = malloc(vlen ? vlen : 1);
  if (!s->val) abort();
  if (vlen) memcpy(s->val, val, vlen);
  s->vlen = vlen;
  s->live = 1;
  s->num = 0;
}

static void model_clear(struct mt *t) {
  for (int n = 0; n < MODEL_NS; n++)
    for (int i = 0; i < MODEL_KEYS; i++) slot_clear(&t->s[n][i]);
}

/* ======================================================================
 * Checking one key
 * ==================================================================== */

enum vcheck {
  V_SAME,  /* unchanged since last learnt */
  V_NEW,   /* written: greater than every version seen before the write */
  V_MAYBE  /* unchanged, or new */
};

static void check_expiry(struct mt *t, const struct slot *s, int64_t got,
                         int i) {
  if (s->exp_lo == 0) {
    MCHECK(t, got == 0, "key %d expires at %" PRId64 ", model says never", i,
           got);
    return;
  }
  MCHECK(t, got >= s->exp_lo - EXPIRY_SLACK_MS &&
                got <= s->exp_hi + EXPIRY_SLACK_MS,
         "key %d expires at %" PRId64 ", model says in [%" PRId64 ", %" PRId64
         "]",
         i, got, s->exp_lo, s->exp_hi);
}

/* Compare the entry at (ns, i) with the model, through cairn_get, and learn
 * its version.  floor is the highest version seen before the write. */
static void check_key(struct mt *t, int ns, int i, enum vcheck how,
                      uint64_t floor) {
  struct slot *s = &t->s[ns][i];
  uint8_t key[8];
  size_t klen = key_bytes(i, key);
  cairn_value v = {0};
  int rc = cairn_get(t->db, ns_name(ns), key, klen, &v);
  if (!s->live) {
    MCHECK(t, rc == CAIRN_ENOTFOUND, "get of deleted key %d/%d: %s", ns, i,
           cairn_strerror(rc));
    return;
  }
  MCHECK(t, rc == 0, "get of key %d/%d: %s", ns, i, cairn_strerror(rc));
  MCHECK(t, v.data != NULL && ((char *)v.data)[v.len] == '\0',
         "value of key %d is not NUL-terminated", i);
  MCHECK(t, v.len == s->vlen && memcmp(v.data, s->val, s->vlen) == 0,
         "key %d/%d holds %zu bytes \"%.20s\", model %zu bytes \"%.20s\"", ns,
         i, v.len, (char *)v.data, s->vlen, (char *)s->val);
  check_expiry(t, s, v.expire_at_ms, i);
  MCHECK(t, v.max_idle_ms == 0, "max_idle_ms %" PRIu64, v.max_idle_ms);
  if (how == V_SAME || (how == V_MAYBE && v.version == s->version))
    MCHECK(t, v.version == s->version,
           "key %d/%d version %" PRIu64 ", was %" PRIu64, ns, i, v.version,
           s->version);
  else
    MCHECK(t, v.version > floor,
           "key %d/%d written, but its version %" PRIu64
           " is not above %" PRIu64,
           ns, i, v.version, floor);
  s->version = v.version;
  if (v.version > t->max_version) t->max_version = v.version;
  cairn_value_free(&v);
}

static void check_all(struct mt *t) {
  for (int n = 0; n < MODEL_NS; n++)
    for (int i = 0; i < MODEL_KEYS; i++) check_key(t, n, i, V_SAME, 0);
}

/* ======================================================================
 * Choosing arguments
 * ==================================================================== */

/* A value for key i: integers (some near the edges) or text starting with
 * 'v' for counter keys; text of any length, some empty, some big, for
 * the others. */
static size_t gen_value(struct mt *t, int i, uint8_t *buf, int *num,
                        int64_t *numval) {
  *num = 0;
  if (i < COUNTER_KEYS && below(t, 10) < 6) {
    int64_t x = (int64_t)(rnd(t) % 2001) - 1000;
    unsigned edge = below(t, 10);
    if (edge == 0) x = INT64_MAX - (int64_t)below(t, 50);
    if (edge == 1) x = INT64_MIN + (int64_t)below(t, 50);
    *num = 1;
    *numval = x;
    return (size_t)sprintf((char *)buf, "%" PRId64, x);
  }
  size_t len = 1 + below(t, 300);
  if (i >= COUNTER_KEYS && below(t, 20) == 0) len = 0;
  if (i >= COUNTER_KEYS && below(t, 40) == 0) len = BIG_VALUE_BYTES;
  for (size_t j = 0; j < len; j++) buf[j] = (uint8_t)rnd(t);
  if (len) buf[0] = 'v';
  return len;
}

/* A version that is not cur. */
static uint64_t wrong_version(struct mt *t, uint64_t cur) {
  if (cur > 1 && below(t, 2)) return rnd(t) % cur;
  return cur + 1 + below(t, 5);
}

/* A condition for a write to slot s, and the error it should produce. */
static unsigned gen_cond(struct mt *t, const struct slot *s, uint64_t *version,
                         int *want) {
  unsigned r = below(t, 10);
  *want = 0;
  if (r < 4) return 0;
  if (r < 6) {
    if (s->live) *want = CAIRN_EEXISTS;
    return CAIRN_IF_ABSENT;
  }
  if (r < 8) {
    if (!s->live) *want = CAIRN_ENOTFOUND;
    return CAIRN_IF_PRESENT;
  }
  uint64_t cur = s->live ? s->version : 0;
  *version = below(t, 5) < 3 ? cur : wrong_version(t, cur);
  if (*version != cur) *want = CAIRN_EVERSION;
  return CAIRN_IF_VERSION;
}

/* Lifespan options; sets *keep for KEEP_TTL. */
static void gen_expiry(struct mt *t, cairn_write *w, int allow_keep,
                       int *keep) {
  unsigned r = below(t, 20);
  *keep = 0;
  if (r < 5) {
    w->flags |= CAIRN_W_TTL;
    w->ttl_ms = (1 + below(t, 10)) * HOUR_MS;
  } else if (r < 7) {
    w->ttl_ms = (1 + below(t, 10)) * HOUR_MS; /* > 0 counts without flag */
  } else if (r < 8) {
    w->flags |= CAIRN_W_TTL; /* ttl 0: explicitly none */
  } else if (r < 11 && allow_keep) {
    w->flags |= CAIRN_W_KEEP_TTL;
    *keep = 1;
  }
}

/* The expiry a write sets on s, given the clock before and after it. */
static void set_expiry(struct slot *s, const cairn_write *w, int keep,
                       int was_live, int64_t t0, int64_t t1) {
  if (keep && was_live) return;
  if (w->ttl_ms > 0) {
    s->exp_lo = t0 + (int64_t)w->ttl_ms;
    s->exp_hi = t1 + (int64_t)w->ttl_ms;
  } else {
    s->exp_lo = s->exp_hi = 0;
  }
}

/* ======================================================================
 * Single-key operations
 * ==================================================================== */

static void op_put(struct mt *t, int ns, int i) {
  static uint8_t val[BIG_VALUE_BYTES];
  uint8_t key[8];
  size_t klen = key_bytes(i, key);
  struct slot *s = &t->s[ns][i];
  cairn_write w = {0};
  int want, keep, num;
  int64_t numval = 0;
  w.cond = gen_cond(t, s, &w.version, &want);
  gen_expiry(t, &w, 1, &keep);
  size_t vlen = gen_value(t, i, val, &num, &numval);
  uint64_t floor = t->max_version;
  int64_t t0 = wall_ms();
  int rc = cairn_put(t->db, ns_name(ns), key, klen, val, vlen, &w);
  int64_t t1 = wall_ms();
  MCHECK_RC(t, rc, want);
  if (rc == 0) {
    int was_live = s->live;
    slot_set(s, val, vlen);
    s->num = num;
    s->numval = numval;
    set_expiry(s, &w, keep, was_live, t0, t1);
  }
  check_key(t, ns, i, rc == 0 ? V_NEW : V_SAME, floor);
}

static void op_del(struct mt *t, int ns, int i) {
  uint8_t key[8];
  size_t klen = key_bytes(i, key);
  struct slot *s = &t->s[ns][i];
  cairn_write w = {0};
  int want = s->live ? 0 : CAIRN_ENOTFOUND;
  if (s->live && below(t, 4) == 0) {
    w.cond = CAIRN_IF_VERSION;
    w.version = below(t, 2) ? s->version : wrong_version(t, s->version);
    if (w.version != s->version) want = CAIRN_EVERSION;
  }
  int rc = cairn_del(t->db, ns_name(ns), key, klen, w.cond ? &w : NULL);
  MCHECK_RC(t, rc, want);
  if (rc == 0) slot_clear(s);
  check_key(t, ns, i, V_SAME, 0);
}

static void op_take(struct mt *t, int ns, int i) {
  uint8_t key[8];
  size_t klen = key_bytes(i, key);
  struct slot *s = &t->s[ns][i];
  cairn_value v = {0};
  int with_out = below(t, 4) != 0;
  int rc = cairn_take(t->db, ns_name(ns), key, klen, with_out ? &v : NULL,
                      NULL);
  MCHECK_RC(t, rc, s->live ? 0 : CAIRN_ENOTFOUND);
  if (rc == 0 && with_out) {
    MCHECK(t, v.data && v.len == s->vlen && memcmp(v.data, s->val, v.len) == 0,
           "take of key %d returned the wrong value", i);
    MCHECK(t, v.version == s->version,
           "take of key %d: version %" PRIu64 ", model %" PRIu64, i, v.version,
           s->version);
  }
  cairn_value_free(&v);
  if (rc == 0) slot_clear(s);
  check_key(t, ns, i, V_SAME, 0);
}

/* What cairn_incr should do to s. */
static int incr_expect(const struct slot *s, int64_t delta, int64_t *res) {
  if (!s->live) {
    *res = delta;
    return 0;
  }
  if (!s->num) return CAIRN_ENOTNUM;
  if (__builtin_add_overflow(s->numval, delta, res)) return CAIRN_EOVERFLOW;
  return 0;
}

/* Only counter keys are incremented; the others may hold empty values,
 * whose reading as a number the header leaves open. */
static void op_incr(struct mt *t, int ns, int i) {
  i %= COUNTER_KEYS;
  uint8_t key[8], text[32];
  size_t klen = key_bytes(i, key);
  struct slot *s = &t->s[ns][i];
  int64_t delta = (int64_t)(rnd(t) % 201) - 100;
  if (below(t, 10) == 0)
    delta = (int64_t)(rnd(t) >> 1) * (below(t, 2) ? 1 : -1);
  cairn_write w = {0};
  int keep;
  gen_expiry(t, &w, 0, &keep);
  int64_t want_res = 0, res = 0x5eed;
  int want = incr_expect(s, delta, &want_res);
  uint64_t floor = t->max_version;
  int64_t t0 = wall_ms();
  int rc = cairn_incr(t->db, ns_name(ns), key, klen, delta, &res, &w);
  int64_t t1 = wall_ms();
  MCHECK_RC(t, rc, want);
  if (rc == 0) {
    MCHECK(t, res == want_res, "incr gave %" PRId64 ", model %" PRId64, res,
           want_res);
    int was_live = s->live;
    int n = sprintf((char *)text, "%" PRId64, want_res);
    slot_set(s, text, (size_t)n);
    s->num = 1;
    s->numval = want_res;
    if (!was_live) set_expiry(s, &w, 0, 0, t0, t1);
  } else {
    MCHECK(t, res == 0x5eed, "incr failed but wrote its result");
  }
  check_key(t, ns, i, rc == 0 ? V_NEW : V_SAME, floor);
}

/* Set or clear the lifespan.  Whether that counts as a new version is left
 * to the engine: the version either stays or becomes new. */
static void op_expire(struct mt *t, int ns, int i) {
  uint8_t key[8];
  size_t klen = key_bytes(i, key);
  struct slot *s = &t->s[ns][i];
  cairn_write w = {.flags = CAIRN_W_TTL};
  if (below(t, 5) < 3) w.ttl_ms = (1 + below(t, 10)) * HOUR_MS;
  uint64_t floor = t->max_version;
  int64_t t0 = wall_ms();
  int rc = cairn_expire(t->db, ns_name(ns), key, klen, &w);
  int64_t t1 = wall_ms();
  MCHECK_RC(t, rc, s->live ? 0 : CAIRN_ENOTFOUND);
  if (rc == 0) set_expiry(s, &w, 0, 1, t0, t1);
  check_key(t, ns, i, rc == 0 ? V_MAYBE : V_SAME, floor);
}

static void op_get(struct mt *t, int ns, int i) {
  check_key(t, ns, i, V_SAME, 0);
}

/* ======================================================================
 * Batches
 * ==================================================================== */

#define BATCH_OPS_MAX 4

struct bop {
  int ns, i, del, keep, num;
  int64_t numval;
  cairn_write w;
  uint8_t *val;
  size_t vlen;
};

/* Add one operation to b; returns the error its condition should give. */
static int batch_add(struct mt *t, cairn_batch *b, struct bop *o, int fail) {
  static uint8_t val[BIG_VALUE_BYTES];
  uint8_t key[8];
  size_t klen = key_bytes(o->i, key);
  const struct slot *s = &t->s[o->ns][o->i];
  int want = 0, rc;
  o->del = !fail && below(t, 10) < 3;
  if (o->del) {
    rc = cairn_batch_del(b, ns_name(o->ns), key, klen, NULL);
  } else {
    if (fail) {
      o->w.cond = CAIRN_IF_VERSION;
      o->w.version = wrong_version(t, s->live ? s->version : 0);
      want = CAIRN_EVERSION;
    } else if (below(t, 2)) {
      o->w.cond = gen_cond(t, s, &o->w.version, &want);
    }
    gen_expiry(t, &o->w, 0, &o->keep);
    o->vlen = gen_value(t, o->i, val, &o->num, &o->numval);
    o->val = malloc(o->vlen ? o->vlen : 1);
    if (!o->val) abort();
    memcpy(o->val, val, o->vlen);
    rc = cairn_batch_put(b, ns_name(o->ns), key, klen, o->val, o->vlen, &o->w);
  }
  MCHECK(t, rc == 0, "batch add: %s", cairn_strerror(rc));
  return want;
}

static void batch_pick_keys(struct mt *t, struct bop *o, int n) {
  for (int j = 0; j < n; j++) {
    int dup;
    do {
      o[j].ns = (int)below(t, MODEL_NS);
      o[j].i = (int)below(t, MODEL_KEYS);
      dup = 0;
      for (int k = 0; k < j; k++)
        dup |= o[k].ns == o[j].ns && o[k].i == o[j].i;
    } while (dup);
  }
}

static void batch_apply(struct mt *t, struct bop *o, int n, int64_t t0,
                        int64_t t1) {
  for (int j = 0; j < n; j++) {
    struct slot *s = &t->s[o[j].ns][o[j].i];
    if (o[j].del) {
      slot_clear(s);
      continue;
    }
    slot_set(s, o[j].val, o[j].vlen);
    s->num = o[j].num;
    s->numval = o[j].numval;
    set_expiry(s, &o[j].w, 0, 0, t0, t1);
  }
}

/* 2 to 4 operations on distinct keys, sometimes with a condition that must
 * fail, so that nothing applies. */
static void op_batch(struct mt *t, int ns, int i) {
  (void)ns, (void)i;
  struct bop o[BATCH_OPS_MAX];
  int n = 2 + (int)below(t, BATCH_OPS_MAX - 1);
  int fail_at = below(t, 4) == 0 ? (int)below(t, (unsigned)n) : -1;
  memset(o, 0, sizeof o);
  batch_pick_keys(t, o, n);
  cairn_batch *b = NULL;
  int rc = cairn_batch_new(t->db, &b);
  MCHECK(t, rc == 0 && b, "batch_new: %s", cairn_strerror(rc));
  int64_t t0 = wall_ms();
  int wants[BATCH_OPS_MAX], nfail = 0;
  for (int j = 0; j < n; j++) {
    int want = batch_add(t, b, &o[j], j == fail_at);
    if (want) wants[nfail++] = want;
  }
  uint64_t floor = t->max_version;
  rc = cairn_batch_commit(b, NULL);
  int64_t t1 = wall_ms();
  cairn_batch_free(b);
  int ok = nfail == 0 ? rc == 0 : 0;
  for (int j = 0; j < nfail; j++) ok |= rc == wants[j];
  MCHECK(t, ok, "batch commit returned %d (%s); model expects %d (%s)", rc,
         cairn_strerror(rc), nfail ? wants[0] : 0,
         cairn_strerror(nfail ? wants[0] : 0));
  if (rc == 0) batch_apply(t, o, n, t0, t1);
  for (int j = 0; j < n; j++) {
    int wrote = rc == 0 && !o[j].del;
    check_key(t, o[j].ns, o[j].i, wrote ? V_NEW : V_SAME, floor);
    free(o[j].val);
  }
}

/* ======================================================================
 * Scans
 * ==================================================================== */

struct scan_ctx {
  struct mt *t;
  int ns;
  int seen[MODEL_KEYS];
  char err[256]; /* the first problem; asserting here would leave the
                    scan's lock held */
};

static int scan_fn(void *arg, const void *key, size_t klen, const void *val,
                   size_t vlen, uint64_t version, int64_t expire_at_ms) {
  struct scan_ctx *c = arg;
  int i = -1;
  for (int j = 0; j < MODEL_KEYS && i < 0; j++) {
    uint8_t k[8];
    size_t kl = key_bytes(j, k);
    if (kl == klen && memcmp(k, key, kl) == 0) i = j;
  }
  const struct slot *s = i >= 0 ? &c->t->s[c->ns][i] : NULL;
  const char *bad = NULL;
  if (!s) bad = "an unknown key";
  else if (!s->live) bad = "a deleted key";
  else if (c->seen[i]++) bad = "a key twice";
  else if (vlen != s->vlen || memcmp(val, s->val, vlen) != 0) bad = "a wrong value";
  else if (version != s->version) bad = "a wrong version";
  else if (s->exp_lo ? expire_at_ms < s->exp_lo - EXPIRY_SLACK_MS ||
                           expire_at_ms > s->exp_hi + EXPIRY_SLACK_MS
                     : expire_at_ms != 0)
    bad = "a wrong expiry";
  if (bad && !c->err[0])
    snprintf(c->err, sizeof c->err, "scan of ns %d gave %s (key %d)", c->ns,
             bad, i);
  return 0;
}

static void op_scan(struct mt *t, int ns, int i) {
  (void)i;
  static const char *const prefixes[] = {"", "", "k", "k0", "k1", "x"};
  const char *prefix = prefixes[below(t, 6)];
  struct scan_ctx c = {.t = t, .ns = ns};
  size_t count = 1 + below(t, 7);
  uint64_t cursor = 0;
  unsigned calls = 0;
  do {
    int rc = cairn_scan(t->db, ns_name(c.ns), prefix, strlen(prefix), &cursor,
                        count, scan_fn, &c);
    MCHECK(t, rc == 0, "scan: %s", cairn_strerror(rc));
    MCHECK(t, ++calls < SCAN_CALLS_MAX, "scan does not end");
  } while (cursor != 0);
  MCHECK(t, !c.err[0], "%s (prefix \"%s\", count %zu)", c.err, prefix, count);
  for (int i = 0; i < MODEL_KEYS; i++) {
    uint8_t k[8];
    size_t kl = key_bytes(i, k);
    int match = strlen(prefix) <= kl && memcmp(k, prefix, strlen(prefix)) == 0;
    int want = t->s[c.ns][i].live && match;
    MCHECK(t, c.seen[i] == want,
           "scan of ns %d prefix \"%s\" count %zu: key %d seen %d times, "
           "model says %d",
           c.ns, prefix, count, i, c.seen[i], want);
  }
}

/* ======================================================================
 * Opening, reopening, the driver
 * ==================================================================== */

static void db_open(struct mt *t) {
  int rc = cairn_open(t->dir, &t->opt, &t->db);
  MCHECK(t, rc == 0, "open: %s", cairn_strerror(rc));
}

/* The log's positions keep their order, and no version lies beyond the
 * last LSN handed out (MEMORY writes are not logged, so their versions
 * are left out). */
static void check_positions(struct mt *t) {
  struct cairn_stats st;
  int rc = cairn_stats(t->db, &st);
  MCHECK(t, rc == 0, "stats: %s", cairn_strerror(rc));
  MCHECK(t, st.last_lsn >= st.written_lsn && st.written_lsn >= st.durable_lsn,
         "positions out of order: last %" PRIu64 " written %" PRIu64
         " durable %" PRIu64,
         st.last_lsn, st.written_lsn, st.durable_lsn);
  if (t->opt.durability != CAIRN_DURABILITY_MEMORY)
    MCHECK(t, st.last_lsn >= t->max_version,
           "version %" PRIu64 " seen, but the last LSN is %" PRIu64,
           t->max_version, st.last_lsn);
}

/* Close and open again: everything comes back, except under MEMORY
 * durability, where everything is gone (and versions start afresh). */
static void op_reopen(struct mt *t, int ns, int i) {
  (void)ns, (void)i;
  cairn_close(t->db);
  t->db = NULL;
  db_open(t);
  if (t->opt.durability == CAIRN_DURABILITY_MEMORY) {
    model_clear(t);
    t->max_version = 0;
  }
  check_all(t);
  check_positions(t);
}

/* The operations and how often each runs, in percent. */
static const struct {
  unsigned weight;
  const char *name;
  void (*fn)(struct mt *t, int ns, int i);
} model_ops[] = {
    {30, "put", op_put},     {8, "del", op_del},       {5, "take", op_take},
    {10, "incr", op_incr},   {7, "expire", op_expire}, {10, "batch", op_batch},
    {14, "get", op_get},     {14, "scan", op_scan},    {2, "reopen", op_reopen},
};

static void step(struct mt *t) {
  int ns = (int)below(t, MODEL_NS), i = (int)below(t, MODEL_KEYS);
  unsigned r = below(t, 100);
  for (size_t k = 0; k < sizeof model_ops / sizeof model_ops[0]; k++) {
    if (r < model_ops[k].weight) {
      t->what = model_ops[k].name;
      model_ops[k].fn(t, ns, i);
      return;
    }
    r -= model_ops[k].weight;
  }
}

static unsigned env_unsigned(const char *name, unsigned dflt) {
  const char *s = getenv(name);
  return s && *s ? (unsigned)strtoul(s, NULL, 10) : dflt;
}

static uint64_t pick_seed(uint64_t salt) {
  const char *s = getenv("CAIRN_MODEL_SEED");
  if (s && *s) return strtoull(s, NULL, 0);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
          ((uint64_t)getpid() << 16)) + salt;
}

/* Runs ops random operations with the given durability and open flags. */
static void run_model(const char *name, cairn_durability d, unsigned flags,
                      unsigned ops) {
  static struct mt t;
  memset(&t, 0, sizeof t);
  t.seed = pick_seed((uint64_t)d * 7919 + flags);
  t.rng = t.seed;
  t.what = "open";
  fprintf(stderr, "model %s: seed %" PRIu64 ", %u ops\n", name, t.seed, ops);
  tu_tmpdir(t.dir, sizeof t.dir, "model");
  cairn_options_init(&t.opt);
  t.opt.durability = d;
  t.opt.flags = flags;
  t.opt.segment_bytes = 1u << 20; /* big values roll segments over */
  t.opt.log_level = CAIRN_LOG_WARN;
  db_open(&t);
  for (t.op = 0; t.op < ops; t.op++) step(&t);
  t.what = "final reopen";
  op_reopen(&t, 0, 0);
  cairn_close(t.db);
  model_clear(&t);
  tu_rmrf(t.dir);
}

static unsigned main_ops(void) {
  return env_unsigned("CAIRN_MODEL_OPS", OPS_DEFAULT);
}

Test(model, random_ops_match_model_with_fsync_durability, .timeout = 120.0) {
  run_model("fsync", CAIRN_DURABILITY_FSYNC, 0, main_ops());
}

Test(model, random_ops_match_model_with_interval_durability,
     .timeout = 120.0) {
  run_model("interval", CAIRN_DURABILITY_INTERVAL, 0, main_ops() * 2 / 5);
}

Test(model, random_ops_match_model_and_vanish_with_memory_durability,
     .timeout = 120.0) {
  run_model("memory", CAIRN_DURABILITY_MEMORY, 0, main_ops() * 2 / 5);
}

Test(model, random_ops_match_model_without_io_uring, .timeout = 120.0) {
  run_model("no-uring", CAIRN_DURABILITY_FSYNC, CAIRN_OPEN_NO_URING,
            main_ops() / 5);
}
