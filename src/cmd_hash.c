/*
 * cmd_hash.c - the hash commands (HSET ... HRANDFIELD), and the helpers
 * every collection command shares (cmds_coll.h): reading a collection,
 * applying a delta under the version read, decoding and indexing a blob,
 * SCAN over elements, number parsing and formatting.
 *
 * Every reply is computed from the blob read with cairn_get; the write is
 * only the element-level change (a coll_delta), applied by the engine
 * under CAIRN_IF_VERSION.  Commands run on the one event loop thread, so
 * the only writer that can come between the read and the write is the
 * engine's expiry thread; the command then runs once more (ccmd_run).
 */
#include "config.h" /* autoconf: _GNU_SOURCE for qsort_r */

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmds_coll.h"
#include "cmds_data.h"
#include "srv_config.h"
#include "glob.h"
#include "server.h"

_Static_assert((int)CAIRN_TYPE_HASH == (int)COLL_HASH &&
               (int)CAIRN_TYPE_SET == (int)COLL_SET &&
               (int)CAIRN_TYPE_ZSET == (int)COLL_ZSET &&
               (int)CAIRN_TYPE_LIST == (int)COLL_LIST,
               "engine and codec agree on collection type numbers");

#define SCAN_COUNT_DEFAULT 10
#define LD_CHARS_MAX (5 * 1024) /* Redis's MAX_LONG_DOUBLE_CHARS */
/* Bound on a negative HRANDFIELD / SRANDMEMBER count (elements repeat). */
#define RAND_REPEAT_MAX ((long long)COLL_ELEMS_MAX)

/* ------------------------------------------------------------------------
 * Shared: reading and writing a collection
 * --------------------------------------------------------------------- */

void ccmd_run(struct client *c, int (*body)(struct client *c)) {
  if (body(c) != CCMD_RETRY) return;
  if (body(c) != CCMD_RETRY) return;
  reply_engine_error(c, CAIRN_EVERSION);
}

void ccmd_reply_error(struct client *c, int rc) {
  if (rc == CAIRN_ETYPE)
    reply_error(c, ERR_WRONGTYPE);
  else
    reply_engine_error(c, rc);
}

int ccmd_load(struct client *c, const char *key, size_t klen, int type,
              cairn_value *v) {
  int rc = cairn_get(c->srv->db, srv_ns(c), key, klen, v);
  if (rc == CAIRN_ENOTFOUND) {
    c->srv->stat_keyspace_misses++;
    memset(v, 0, sizeof *v);
    return 0;
  }
  if (rc) {
    ccmd_reply_error(c, rc);
    return -1;
  }
  c->srv->stat_keyspace_hits++;
  if (v->type != type) {
    cairn_value_free(v);
    reply_error(c, ERR_WRONGTYPE);
    return -1;
  }
  return 1;
}

int ccmd_probe(struct client *c, const char *key, size_t klen, int type,
               int first, int step, size_t n, int want_vals,
               struct coll_probe **out, struct coll_info *info) {
  struct coll_probe *p = calloc(n ? n : 1, sizeof *p);
  if (!p) {
    reply_engine_error(c, CAIRN_ENOMEM);
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    int a = first + (int)i * step;
    p[i].x = c->argv[a];
    p[i].xlen = c->argvlen[a];
  }
  int rc = db_coll_probe(c->srv->db, srv_ns(c), key, klen, type, p, n,
                         want_vals, info);
  if (rc && rc != CAIRN_ENOTFOUND) {
    free(p);
    ccmd_reply_error(c, rc);
    return -1;
  }
  if (rc) c->srv->stat_keyspace_misses++;
  else c->srv->stat_keyspace_hits++;
  *out = p;
  return rc == 0;
}

int ccmd_probe_args(struct client *c, const char *key, size_t klen, int type,
                    int first, int step, size_t n, struct coll_probe **p,
                    long **prev, struct coll_info *info) {
  int found = ccmd_probe(c, key, klen, type, first, step, n, 0, p, info);
  if (found < 0) return -1;
  if (!(*prev = ccmd_arg_prev(c, first, step, n))) {
    ccmd_probes_free(*p, n);
    reply_engine_error(c, CAIRN_ENOMEM);
    return -1;
  }
  return found;
}

void ccmd_probes_free(struct coll_probe *p, size_t n) {
  if (!p) return;
  for (size_t i = 0; i < n; i++) free(p[i].val);
  free(p);
}

int ccmd_apply(struct client *c, const char *key, size_t klen, int type,
               uint64_t version, const struct coll_delta *d) {
  if (d->err) {
    reply_engine_error(c, d->err);
    return -1;
  }
  cairn_write w = srv_write(
      c, &(cairn_write){.cond = CAIRN_IF_VERSION, .version = version});
  int rc = cairn_coll_apply(c->srv->db, srv_ns(c), key, klen, type, d->buf,
                            d->len, &w);
  if (rc == 0) return 0;
  srv_write_abort(c);
  if (rc == CAIRN_EVERSION) return CCMD_RETRY;
  ccmd_reply_error(c, rc);
  return -1;
}

int ccmd_group_begin(struct client *c) {
  return cairn_group_begin(c->srv->db) == 0;
}

void ccmd_group_end(struct client *c, int begun) {
  if (begun) cairn_group_end(c->srv->db);
}

void ccmd_notify(struct client *c, const char *event, const char *key,
                 size_t klen, unsigned type_flag) {
  pubsub_notify(c->srv, c->db, event, key, klen, type_flag);
}

/* ------------------------------------------------------------------------
 * Shared: decoded collections and argument lists
 * --------------------------------------------------------------------- */

int ccmd_cmp(const void *a, size_t al, const void *b, size_t bl) {
  int r = memcmp(a, b, al < bl ? al : bl);
  if (r) return r;
  return al < bl ? -1 : al > bl;
}

int ccmd_decode(const cairn_value *v, int type, struct ccmd_coll *s) {
  struct coll_iter it;
  long n = coll_iter_init(&it, type, v->data, v->data ? v->len : 0);
  if (n < 0) return (int)n;
  struct coll_elem *e = calloc(n ? (size_t)n : 1, sizeof *e);
  if (!e) return CAIRN_ENOMEM;
  for (long i = 0; i < n; i++) {
    if (coll_next(&it, &e[i]) != 1) {
      free(e);
      return CAIRN_ECORRUPT;
    }
  }
  s->e = e;
  s->n = (size_t)n;
  s->by = NULL;
  return 0;
}

static int by_elem(const void *x, const void *y, void *arg) {
  const struct coll_elem *e = arg;
  const struct coll_elem *a = &e[*(const uint32_t *)x];
  const struct coll_elem *b = &e[*(const uint32_t *)y];
  return ccmd_cmp(a->a, a->alen, b->a, b->alen);
}

int ccmd_index(struct ccmd_coll *s) {
  if (s->by) return 0;
  s->by = malloc((s->n ? s->n : 1) * sizeof *s->by);
  if (!s->by) return CAIRN_ENOMEM;
  for (size_t i = 0; i < s->n; i++) s->by[i] = (uint32_t)i;
  qsort_r(s->by, s->n, sizeof *s->by, by_elem, s->e);
  return 0;
}

long ccmd_lookup(const struct ccmd_coll *s, const void *x, size_t xl) {
  size_t lo = 0, hi = s->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const struct coll_elem *e = &s->e[s->by[mid]];
    int r = ccmd_cmp(e->a, e->alen, x, xl);
    if (r == 0) return s->by[mid];
    if (r < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -1;
}

void ccmd_coll_free(struct ccmd_coll *s) {
  free(s->e);
  free(s->by);
  s->e = NULL;
  s->by = NULL;
  s->n = 0;
}

struct arg_sort {
  struct client *c;
  int first, step;
};

static int by_arg(const void *x, const void *y, void *arg) {
  const struct arg_sort *as = arg;
  long i = *(const long *)x, j = *(const long *)y;
  int ai = as->first + (int)i * as->step, aj = as->first + (int)j * as->step;
  int r = ccmd_cmp(as->c->argv[ai], as->c->argvlen[ai], as->c->argv[aj],
                   as->c->argvlen[aj]);
  if (r) return r;
  return i < j ? -1 : i > j; /* equal arguments in command order */
}

long *ccmd_arg_prev(struct client *c, int first, int step, size_t n) {
  if (n <= 1) { /* the common case: nothing to sort */
    long *prev = malloc(sizeof *prev);
    if (prev) prev[0] = -1;
    return prev;
  }
  long *order = malloc(n * sizeof *order);
  long *prev = malloc((n ? n : 1) * sizeof *prev);
  if (!order || !prev) {
    free(order);
    free(prev);
    return NULL;
  }
  for (size_t i = 0; i < n; i++) order[i] = (long)i;
  struct arg_sort as = {c, first, step};
  qsort_r(order, n, sizeof *order, by_arg, &as);
  for (size_t k = 0; k < n; k++) {
    prev[order[k]] = -1;
    if (k > 0) {
      int a = first + (int)order[k - 1] * step;
      int b = first + (int)order[k] * step;
      if (ccmd_cmp(c->argv[a], c->argvlen[a], c->argv[b], c->argvlen[b]) ==
          0)
        prev[order[k]] = order[k - 1];
    }
  }
  free(order);
  return prev;
}

/* ------------------------------------------------------------------------
 * Shared: numbers
 * --------------------------------------------------------------------- */

int ccmd_parse_double(const char *s, size_t n, double *out) {
  char buf[LD_CHARS_MAX];
  if (n == 0 || n >= sizeof buf || isspace((unsigned char)s[0])) return -1;
  memcpy(buf, s, n);
  buf[n] = '\0';
  errno = 0;
  char *end;
  double v = strtod(buf, &end);
  if ((size_t)(end - buf) != n) return -1;
  if (errno == ERANGE &&
      (v == HUGE_VAL || v == -HUGE_VAL || fpclassify(v) == FP_ZERO))
    return -1;
  if (isnan(v)) return -1;
  *out = v;
  return 0;
}

int ccmd_fmt_double(char *buf, size_t n, double d) {
  if (isinf(d)) return snprintf(buf, n, "%s", d > 0 ? "inf" : "-inf");
  /* The shortest of %.15g..%.17g that reads back as d, like Redis 7's
   * fpconv_dtoa for the common cases. */
  int k = 0;
  for (int prec = 15; prec <= 17; prec++) {
    k = snprintf(buf, n, "%.*g", prec, d);
    if (strtod(buf, NULL) == d) break;
  }
  return k;
}

uint64_t ccmd_rand(uint64_t n) {
  static uint64_t s;
  if (s == 0) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^
        ((uint64_t)getpid() << 40) ^ 0x9e3779b97f4a7c15ull;
  }
  /* xorshift64* */
  s ^= s >> 12;
  s ^= s << 25;
  s ^= s >> 27;
  return (s * 2685821657736338717ull) % n;
}

int ccmd_parse_count(struct client *c, int i, long long *out) {
  long long v;
  if (cmds_parse_ll(CCMD_ARG(i), &v) || v < 0) {
    reply_error(c, ERR_POSITIVE);
    return -1;
  }
  *out = v;
  return 0;
}

int ccmd_pop_count(struct client *c, long long *count) {
  *count = 1;
  if (c->argc > 3) {
    reply_error(c, ERR_SYNTAX);
    return -1;
  }
  if (c->argc < 3) return 0;
  return ccmd_parse_count(c, 2, count) ? -1 : 1;
}

int ccmd_read(struct client *c, int i, int type, int index, cairn_value *v,
              struct ccmd_coll *s) {
  int found = ccmd_load(c, CCMD_ARG(i), type, v);
  if (found < 0) return -1;
  int rc = ccmd_decode(v, type, s);
  if (rc == 0 && index && (rc = ccmd_index(s)) != 0) ccmd_coll_free(s);
  if (rc) {
    cairn_value_free(v);
    reply_engine_error(c, rc);
    return -1;
  }
  return found;
}

/* ------------------------------------------------------------------------
 * Shared: HSCAN, SSCAN, ZSCAN
 * --------------------------------------------------------------------- */

struct scan_opts {
  const char *pat;
  size_t plen;
  long long count;
  int novalues;
};

static int scan_parse(struct client *c, int type, struct scan_opts *o) {
  o->pat = NULL;
  o->plen = 0;
  o->count = SCAN_COUNT_DEFAULT;
  o->novalues = 0;
  for (int i = 3; i < c->argc; i++) {
    const char *a = c->argv[i];
    int more = i + 1 < c->argc;
    if (!strcasecmp(a, "match") && more) {
      o->pat = c->argv[++i];
      o->plen = c->argvlen[i];
    } else if (!strcasecmp(a, "count") && more) {
      i++;
      if (cmds_parse_ll(CCMD_ARG(i), &o->count)) {
        reply_error(c, ERR_NOTINT);
        return -1;
      }
      if (o->count < 1) {
        reply_error(c, ERR_SYNTAX);
        return -1;
      }
    } else if (!strcasecmp(a, "novalues") && type == COLL_HASH) {
      o->novalues = 1;
    } else {
      reply_error(c, ERR_SYNTAX);
      return -1;
    }
  }
  return 0;
}

static int scan_cursor(struct client *c, unsigned long long *cur) {
  const char *s = c->argv[2];
  size_t n = c->argvlen[2];
  unsigned long long v = 0;
  if (n == 0 || n > 20) goto bad;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') goto bad;
    if (v > (ULLONG_MAX - 9) / 10) goto bad;
    v = v * 10 + (unsigned)(s[i] - '0');
  }
  *cur = v;
  return 0;
bad:
  reply_error(c, "ERR invalid cursor");
  return -1;
}

static void scan_reply(struct client *c, int type, const struct ccmd_coll *s,
                       const struct scan_opts *o, unsigned long long cur) {
  size_t end = cur < s->n ? (size_t)cur : s->n;
  size_t nmatch = 0;
  uint32_t *hit = malloc((o->count < 1024 ? (size_t)o->count : 1024) *
                         sizeof *hit);
  size_t cap = o->count < 1024 ? (size_t)o->count : 1024;
  if (!hit) {
    reply_engine_error(c, CAIRN_ENOMEM);
    return;
  }
  for (long long k = 0; k < o->count && end < s->n; k++, end++) {
    const struct coll_elem *e = &s->e[end];
    if (o->pat && !glob_match(o->pat, o->plen, e->a, e->alen, 0)) continue;
    if (nmatch == cap) {
      uint32_t *h = realloc(hit, 2 * cap * sizeof *h);
      if (!h) {
        free(hit);
        reply_engine_error(c, CAIRN_ENOMEM);
        return;
      }
      hit = h;
      cap *= 2;
    }
    hit[nmatch++] = (uint32_t)end;
  }
  char cbuf[24];
  reply_array(c, 2);
  snprintf(cbuf, sizeof cbuf, "%zu", end < s->n ? end : (size_t)0);
  reply_cstr(c, cbuf);
  int pairs = type == COLL_ZSET || (type == COLL_HASH && !o->novalues);
  reply_array(c, nmatch * (pairs ? 2 : 1));
  for (size_t k = 0; k < nmatch; k++) {
    const struct coll_elem *e = &s->e[hit[k]];
    reply_bulk(c, e->a, e->alen);
    if (type == COLL_HASH && pairs) reply_bulk(c, e->b, e->blen);
    if (type == COLL_ZSET) {
      char d[40];
      int dl = ccmd_fmt_double(d, sizeof d, e->score);
      reply_bulk(c, d, (size_t)dl);
    }
  }
  free(hit);
}

void ccmd_scan(struct client *c, int type) {
  unsigned long long cur;
  struct scan_opts o;
  if (scan_cursor(c, &cur) || scan_parse(c, type, &o)) return;
  cairn_value v;
  if (ccmd_load(c, CCMD_ARG(1), type, &v) < 0) return;
  struct ccmd_coll s;
  int rc = ccmd_decode(&v, type, &s);
  if (rc == 0) {
    scan_reply(c, type, &s, &o, cur);
    ccmd_coll_free(&s);
  } else {
    reply_engine_error(c, rc);
  }
  cairn_value_free(&v);
}

/* ------------------------------------------------------------------------
 * Hashes: writes
 * --------------------------------------------------------------------- */

/* HSET / HMSET: fields argv[2], argv[4]...; *added counts new ones. */
static int hset_apply(struct client *c, long long *added) {
  size_t n = (size_t)(c->argc - 2) / 2;
  struct coll_probe *p;
  long *prev;
  struct coll_info info;
  if (ccmd_probe_args(c, CCMD_ARG(1), COLL_HASH, 2, 2, n, &p, &prev,
                      &info) < 0)
    return -1;
  struct coll_delta d;
  coll_delta_init(&d);
  *added = 0;
  for (size_t i = 0; i < n; i++) {
    int f = 2 + 2 * (int)i;
    if (prev[i] < 0 && !p[i].found) (*added)++;
    coll_hset(&d, CCMD_ARG(f), CCMD_ARG(f + 1));
  }
  int rc = ccmd_apply(c, CCMD_ARG(1), COLL_HASH, info.version, &d);
  coll_delta_free(&d);
  free(prev);
  ccmd_probes_free(p, n);
  if (rc == 0) ccmd_notify(c, "hset", CCMD_ARG(1), NOTIFY_HASH);
  return rc;
}

static int wrong_args(struct client *c) {
  reply_errorf(c, "ERR wrong number of arguments for '%s' command",
               c->cmd ? c->cmd->name : "hset");
  return -1;
}

static int hset_body(struct client *c) {
  if (c->argc % 2) return wrong_args(c);
  long long added;
  int rc = hset_apply(c, &added);
  if (rc == 0) reply_int(c, added);
  return rc;
}

static int hmset_body(struct client *c) {
  if (c->argc % 2) return wrong_args(c);
  long long added;
  int rc = hset_apply(c, &added);
  if (rc == 0) reply_ok(c);
  return rc;
}

void cmd_hset(struct client *c) { ccmd_run(c, hset_body); }
void cmd_hmset(struct client *c) { ccmd_run(c, hmset_body); }

static int hsetnx_body(struct client *c) {
  struct coll_probe *p;
  struct coll_info info;
  if (ccmd_probe(c, CCMD_ARG(1), COLL_HASH, 2, 1, 1, 0, &p, &info) < 0)
    return -1;
  int has = p[0].found;
  ccmd_probes_free(p, 1);
  if (has) {
    reply_int(c, 0);
    return -1;
  }
  struct coll_delta d;
  coll_delta_init(&d);
  coll_hset(&d, CCMD_ARG(2), CCMD_ARG(3));
  int rc = ccmd_apply(c, CCMD_ARG(1), COLL_HASH, info.version, &d);
  coll_delta_free(&d);
  if (rc == 0) {
    reply_int(c, 1);
    ccmd_notify(c, "hset", CCMD_ARG(1), NOTIFY_HASH);
  }
  return rc;
}

void cmd_hsetnx(struct client *c) { ccmd_run(c, hsetnx_body); }

static int hdel_body(struct client *c) {
  size_t n = (size_t)c->argc - 2;
  struct coll_probe *p;
  struct coll_info info;
  long *prev;
  int found = ccmd_probe_args(c, CCMD_ARG(1), COLL_HASH, 2, 1, n, &p, &prev,
                              &info);
  if (found <= 0) {
    if (found == 0) {
      ccmd_probes_free(p, n);
      free(prev);
      reply_int(c, 0);
    }
    return -1;
  }
  struct coll_delta d;
  coll_delta_init(&d);
  long long removed = 0;
  for (size_t i = 0; i < n; i++) {
    if (prev[i] >= 0 || !p[i].found) continue;
    removed++;
    coll_hdel(&d, CCMD_ARG(2 + (int)i));
  }
  uint64_t left = info.count - (uint64_t)removed;
  int rc = 0;
  if (removed) rc = ccmd_apply(c, CCMD_ARG(1), COLL_HASH, info.version, &d);
  coll_delta_free(&d);
  free(prev);
  ccmd_probes_free(p, n);
  if (rc) return rc;
  reply_int(c, removed);
  if (removed) {
    ccmd_notify(c, "hdel", CCMD_ARG(1), NOTIFY_HASH);
    if (left == 0) ccmd_notify(c, "del", CCMD_ARG(1), NOTIFY_GENERIC);
  }
  return 0;
}

void cmd_hdel(struct client *c) { ccmd_run(c, hdel_body); }

/* Find field argv[2] of the hash at argv[1] for an increment: 1 found,
 * 0 absent, -1 replied.  *v is the hash read (freed by the caller unless
 * -1). */
static int hincr_load(struct client *c, cairn_value *v, struct coll_elem *e) {
  int found = ccmd_load(c, CCMD_ARG(1), COLL_HASH, v);
  if (found < 0) return -1;
  int has = found ? coll_find(COLL_HASH, v->data, v->len, CCMD_ARG(2), e) : 0;
  if (has < 0) {
    cairn_value_free(v);
    reply_engine_error(c, has);
    return -1;
  }
  return has;
}

/* Set field argv[2] to the text val and reply with reply (NULL: the text
 * itself as a bulk string; else an integer). */
static int hincr_store(struct client *c, cairn_value *v, const char *val,
                       size_t vl, const long long *num, const char *event) {
  struct coll_delta d;
  coll_delta_init(&d);
  coll_hset(&d, CCMD_ARG(2), val, vl);
  int rc = ccmd_apply(c, CCMD_ARG(1), COLL_HASH, v->version, &d);
  coll_delta_free(&d);
  cairn_value_free(v);
  if (rc) return rc;
  if (num)
    reply_int(c, *num);
  else
    reply_bulk(c, val, vl);
  ccmd_notify(c, event, CCMD_ARG(1), NOTIFY_HASH);
  return 0;
}

static int hincrby_body(struct client *c) {
  long long incr, cur = 0;
  if (cmds_parse_ll(CCMD_ARG(3), &incr)) {
    reply_error(c, ERR_NOTINT);
    return -1;
  }
  cairn_value v;
  struct coll_elem e;
  int has = hincr_load(c, &v, &e);
  if (has < 0) return -1;
  if (has && cmds_parse_ll(e.b, e.blen, &cur)) {
    cairn_value_free(&v);
    reply_error(c, "ERR hash value is not an integer");
    return -1;
  }
  if ((incr < 0 && cur < 0 && incr < LLONG_MIN - cur) ||
      (incr > 0 && cur > 0 && incr > LLONG_MAX - cur)) {
    cairn_value_free(&v);
    reply_error(c, ERR_OVERFLOW);
    return -1;
  }
  cur += incr;
  char buf[24];
  int n = snprintf(buf, sizeof buf, "%lld", cur);
  return hincr_store(c, &v, buf, (size_t)n, &cur, "hincrby");
}

void cmd_hincrby(struct client *c) { ccmd_run(c, hincrby_body); }

/* Redis's ld2string(LD_STR_HUMAN): fixed notation, trailing zeros cut. */
static int fmt_ld_human(char *buf, size_t n, long double v) {
  int l = snprintf(buf, n, "%.17Lf", v);
  if (l < 0 || (size_t)l + 1 > n) return -1;
  if (strchr(buf, '.')) {
    while (l > 0 && buf[l - 1] == '0') l--;
    if (l > 0 && buf[l - 1] == '.') l--;
    buf[l] = '\0';
  }
  if (l == 2 && buf[0] == '-' && buf[1] == '0') {
    buf[0] = '0';
    buf[1] = '\0';
    l = 1;
  }
  return l;
}

static int hincrbyfloat_body(struct client *c) {
  long double incr, cur = 0;
  if (cmds_parse_ld(CCMD_ARG(3), &incr)) {
    reply_error(c, ERR_NOTFLOAT);
    return -1;
  }
  if (isinf(incr)) {
    reply_error(c, "ERR value is NaN or Infinity");
    return -1;
  }
  cairn_value v;
  struct coll_elem e;
  int has = hincr_load(c, &v, &e);
  if (has < 0) return -1;
  if (has && cmds_parse_ld(e.b, e.blen, &cur)) {
    cairn_value_free(&v);
    reply_error(c, "ERR hash value is not a float");
    return -1;
  }
  cur += incr;
  char buf[LD_CHARS_MAX];
  int n = -1;
  if (!isnan(cur) && !isinf(cur)) n = fmt_ld_human(buf, sizeof buf, cur);
  if (n < 0) {
    cairn_value_free(&v);
    reply_error(c, "ERR increment would produce NaN or Infinity");
    return -1;
  }
  return hincr_store(c, &v, buf, (size_t)n, NULL, "hincrbyfloat");
}

void cmd_hincrbyfloat(struct client *c) { ccmd_run(c, hincrbyfloat_body); }

/* ------------------------------------------------------------------------
 * Hashes: reads
 * --------------------------------------------------------------------- */

/* Load and decode the hash at argv[1]: 0 with *s filled (empty if the key
 * is absent), -1 replied. */
static int hash_read(struct client *c, struct ccmd_coll *s, cairn_value *v) {
  return ccmd_read(c, 1, COLL_HASH, 0, v, s) < 0 ? -1 : 0;
}

/* HGET, HEXISTS, HSTRLEN, HMGET: the fields argv[2..] of argv[1], looked
 * up without reading the hash whole.  what: 'g'et, 'e'xists, 's'trlen,
 * 'm'get. */
static void hash_fields(struct client *c, int what) {
  size_t n = (size_t)c->argc - 2;
  struct coll_probe *p;
  struct coll_info info;
  if (ccmd_probe(c, CCMD_ARG(1), COLL_HASH, 2, 1, n, what != 'e', &p,
                 &info) < 0)
    return;
  if (what == 'm') reply_array(c, n);
  for (size_t i = 0; i < n; i++) {
    if (what == 'e')
      reply_int(c, p[i].found);
    else if (what == 's')
      reply_int(c, p[i].found ? (long long)p[i].vlen : 0);
    else if (p[i].found)
      reply_bulk(c, p[i].val, p[i].vlen);
    else
      reply_null(c);
  }
  ccmd_probes_free(p, n);
}

void cmd_hget(struct client *c) { hash_fields(c, 'g'); }
void cmd_hexists(struct client *c) { hash_fields(c, 'e'); }
void cmd_hstrlen(struct client *c) { hash_fields(c, 's'); }
void cmd_hmget(struct client *c) { hash_fields(c, 'm'); }

void ccmd_card(struct client *c, int type) {
  struct coll_probe *p;
  struct coll_info info;
  if (ccmd_probe(c, CCMD_ARG(1), type, 0, 1, 0, 0, &p, &info) < 0) return;
  ccmd_probes_free(p, 0);
  reply_int(c, (long long)info.count);
}

void cmd_hlen(struct client *c) { ccmd_card(c, COLL_HASH); }

/* HGETALL, HKEYS, HVALS. */
static void hash_dump(struct client *c, int keys, int vals) {
  cairn_value v;
  struct ccmd_coll s;
  if (hash_read(c, &s, &v)) return;
  if (keys && vals)
    reply_map(c, s.n);
  else
    reply_array(c, s.n);
  for (size_t i = 0; i < s.n; i++) {
    if (keys) reply_bulk(c, s.e[i].a, s.e[i].alen);
    if (vals) reply_bulk(c, s.e[i].b, s.e[i].blen);
  }
  ccmd_coll_free(&s);
  cairn_value_free(&v);
}

void cmd_hgetall(struct client *c) { hash_dump(c, 1, 1); }
void cmd_hkeys(struct client *c) { hash_dump(c, 1, 0); }
void cmd_hvals(struct client *c) { hash_dump(c, 0, 1); }

void cmd_hscan(struct client *c) { ccmd_scan(c, COLL_HASH); }

/* ------------------------------------------------------------------------
 * HRANDFIELD
 * --------------------------------------------------------------------- */

static void hrand_one(struct client *c, const struct coll_elem *e, int wv) {
  if (wv && c->proto >= 3) reply_array(c, 2);
  reply_bulk(c, e->a, e->alen);
  if (wv) reply_bulk(c, e->b, e->blen);
}

/* count >= 0: distinct fields, in random order (a partial shuffle);
 * count < 0: -count fields that may repeat. */
static void hrand_reply(struct client *c, const struct ccmd_coll *s,
                        long long count, int wv) {
  size_t n = count < 0 ? (size_t)-count
                       : (size_t)count < s->n ? (size_t)count : s->n;
  reply_array(c, n * (wv && c->proto < 3 ? 2 : 1));
  if (count < 0) {
    for (size_t i = 0; i < n; i++)
      hrand_one(c, &s->e[ccmd_rand(s->n)], wv);
    return;
  }
  uint32_t *p = malloc((s->n ? s->n : 1) * sizeof *p);
  for (size_t i = 0; p && i < s->n; i++) p[i] = (uint32_t)i;
  for (size_t i = 0; i < n; i++) {
    size_t j = i;
    if (p) {
      j = i + (size_t)ccmd_rand(s->n - i);
      uint32_t t = p[i];
      p[i] = p[j];
      p[j] = t;
      j = p[i];
    }
    /* Out of memory: the first n in order, still distinct. */
    hrand_one(c, &s->e[j], wv);
  }
  free(p);
}

void cmd_hrandfield(struct client *c) {
  long long count = 0;
  int wv = 0, has_count = c->argc >= 3;
  if (c->argc > 4 ||
      (c->argc == 4 && strcasecmp(c->argv[3], "withvalues"))) {
    reply_error(c, ERR_SYNTAX);
    return;
  }
  wv = c->argc == 4;
  if (has_count && cmds_parse_ll(CCMD_ARG(2), &count)) {
    reply_error(c, ERR_NOTINT);
    return;
  }
  if (count < -RAND_REPEAT_MAX) {
    reply_error(c, "ERR value is out of range");
    return;
  }
  cairn_value v;
  struct ccmd_coll s;
  if (hash_read(c, &s, &v)) return;
  if (!has_count) {
    if (s.n) {
      const struct coll_elem *e = &s.e[ccmd_rand(s.n)];
      reply_bulk(c, e->a, e->alen);
    } else {
      reply_null(c);
    }
  } else if (s.n == 0) {
    reply_array(c, 0);
  } else {
    hrand_reply(c, &s, count, wv);
  }
  ccmd_coll_free(&s);
  cairn_value_free(&v);
}
