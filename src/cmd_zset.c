/*
 * cmd_zset.c - the sorted set commands: ZADD (NX XX GT LT CH INCR), ZREM,
 * scores and ranks, the ZRANGE family (by rank, score and lex, REV,
 * LIMIT, WITHSCORES), range removals, ZPOPMIN / ZPOPMAX, ZSCAN.
 *
 * The blob keeps members sorted by score, then by member bytes (src/coll.h),
 * which is exactly Redis's order, so ranks are positions in the blob.
 */
#include "config.h" /* autoconf: _GNU_SOURCE for qsort_r */

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cmds_coll.h"
#include "cmds_data.h"
#include "srv_config.h"
#include "server.h"

#define ERR_NAN "ERR resulting score is not a number (NaN)"

/* Load and decode the zset at argv[1] (indexed): 1 found, 0 absent (s
 * empty), -1 replied. */
static int zset_read(struct client *c, cairn_value *v, struct ccmd_coll *s) {
  return ccmd_read(c, 1, COLL_ZSET, 1, v, s);
}

static void zset_done(cairn_value *v, struct ccmd_coll *s) {
  ccmd_coll_free(s);
  cairn_value_free(v);
}

/* ------------------------------------------------------------------------
 * ZADD, ZINCRBY
 * --------------------------------------------------------------------- */

struct zadd_opts {
  int nx, xx, gt, lt, ch, incr;
  int first;       /* argv index of the first score */
  size_t n;        /* score-member pairs */
  double *scores;
};

static int zadd_parse(struct client *c, struct zadd_opts *o) {
  memset(o, 0, sizeof *o);
  int i = 2;
  for (; i < c->argc; i++) {
    const char *a = c->argv[i];
    if (!strcasecmp(a, "nx")) o->nx = 1;
    else if (!strcasecmp(a, "xx")) o->xx = 1;
    else if (!strcasecmp(a, "gt")) o->gt = 1;
    else if (!strcasecmp(a, "lt")) o->lt = 1;
    else if (!strcasecmp(a, "ch")) o->ch = 1;
    else if (!strcasecmp(a, "incr")) o->incr = 1;
    else break;
  }
  o->first = i;
  int left = c->argc - i;
  const char *err = NULL;
  if (left == 0 || left % 2) err = ERR_SYNTAX;
  else if (o->incr && left > 2)
    err = "ERR INCR option supports a single increment-element pair";
  else if (o->nx && o->xx)
    err = "ERR XX and NX options at the same time are not compatible";
  else if ((o->gt && o->nx) || (o->lt && o->nx) || (o->gt && o->lt))
    err = "ERR GT, LT, and/or NX options at the same time are not compatible";
  if (err) {
    reply_error(c, err);
    return -1;
  }
  o->n = (size_t)left / 2;
  o->scores = malloc(o->n * sizeof *o->scores);
  if (!o->scores) {
    reply_engine_error(c, CAIRN_ENOMEM);
    return -1;
  }
  for (size_t k = 0; k < o->n; k++) {
    if (ccmd_parse_double(CCMD_ARG(i + 2 * (int)k), &o->scores[k])) {
      free(o->scores);
      reply_error(c, ERR_NOTFLOAT);
      return -1;
    }
  }
  return 0;
}

struct zadd_res {
  long long added, updated, processed;
  double last;      /* the score of the last member processed (INCR) */
};

/* Walk the pairs in order, as Redis does, so a member given twice sees
 * its first occurrence's result.  Fills the delta; -1: NaN (replied). */
static int zadd_walk(struct client *c, const struct zadd_opts *o,
                     const struct coll_probe *pr, const long *prev,
                     struct coll_delta *d, struct zadd_res *r) {
  double *cur = malloc(o->n * sizeof *cur);
  char *has = malloc(o->n);
  if (!cur || !has) {
    free(cur);
    free(has);
    reply_engine_error(c, CAIRN_ENOMEM);
    return -1;
  }
  memset(r, 0, sizeof *r);
  for (size_t k = 0; k < o->n; k++) {
    int m = o->first + 2 * (int)k + 1;
    if (prev[k] >= 0) {
      has[k] = has[prev[k]];
      cur[k] = cur[prev[k]];
    } else {
      has[k] = (char)pr[k].found;
      cur[k] = pr[k].found ? pr[k].score : 0;
    }
    double score = o->scores[k];
    if (has[k]) {
      if (o->nx) continue;
      if (o->incr) score += cur[k];
      if (isnan(score)) {
        free(cur);
        free(has);
        reply_error(c, ERR_NAN);
        return -1;
      }
      if ((o->gt && score <= cur[k]) || (o->lt && score >= cur[k])) continue;
      r->processed++;
      r->last = score;
      if (score == cur[k]) continue;
      r->updated++;
    } else {
      if (o->xx) continue;
      r->added++;
      r->processed++;
      r->last = score;
      has[k] = 1;
    }
    cur[k] = score;
    coll_zset(d, score, CCMD_ARG(m));
  }
  free(cur);
  free(has);
  return 0;
}

static int zadd_body(struct client *c) {
  struct zadd_opts o;
  if (zadd_parse(c, &o)) return -1;
  struct coll_probe *pr;
  long *prev;
  struct coll_info info;
  if (ccmd_probe_args(c, CCMD_ARG(1), COLL_ZSET, o.first + 1, 2, o.n, &pr,
                      &prev, &info) < 0) {
    free(o.scores);
    return -1;
  }
  struct coll_delta d;
  coll_delta_init(&d);
  struct zadd_res r;
  int rc = -1;
  if (zadd_walk(c, &o, pr, prev, &d, &r) == 0)
    rc = d.len ? ccmd_apply(c, CCMD_ARG(1), COLL_ZSET, info.version, &d) : 0;
  if (rc == 0) {
    if (o.incr && r.processed)
      reply_double(c, r.last);
    else if (o.incr)
      reply_null(c);
    else
      reply_int(c, r.added + (o.ch ? r.updated : 0));
    if (r.added || r.updated)
      ccmd_notify(c, o.incr ? "zincr" : "zadd", CCMD_ARG(1), NOTIFY_ZSET);
  }
  coll_delta_free(&d);
  free(prev);
  free(o.scores);
  ccmd_probes_free(pr, o.n);
  return rc;
}

void cmd_zadd(struct client *c) { ccmd_run(c, zadd_body); }

static int zincrby_body(struct client *c) {
  double incr;
  if (ccmd_parse_double(CCMD_ARG(2), &incr)) {
    reply_error(c, ERR_NOTFLOAT);
    return -1;
  }
  struct coll_probe *p;
  struct coll_info info;
  if (ccmd_probe(c, CCMD_ARG(1), COLL_ZSET, 3, 1, 1, 0, &p, &info) < 0)
    return -1;
  double score = incr + (p[0].found ? p[0].score : 0);
  ccmd_probes_free(p, 1);
  if (isnan(score)) {
    reply_error(c, ERR_NAN);
    return -1;
  }
  struct coll_delta d;
  coll_delta_init(&d);
  coll_zset(&d, score, CCMD_ARG(3));
  int rc = ccmd_apply(c, CCMD_ARG(1), COLL_ZSET, info.version, &d);
  coll_delta_free(&d);
  if (rc == 0) {
    reply_double(c, score);
    ccmd_notify(c, "zincr", CCMD_ARG(1), NOTIFY_ZSET);
  }
  return rc;
}

void cmd_zincrby(struct client *c) { ccmd_run(c, zincrby_body); }

/* ------------------------------------------------------------------------
 * Removal: ZREM and the ZREMRANGEBY* family share this
 * --------------------------------------------------------------------- */

/* Remove the members at positions pos[0..n) of s, reply n, notify. */
static int zrem_positions(struct client *c, const cairn_value *v,
                          const struct ccmd_coll *s, const uint32_t *pos,
                          size_t n, const char *event) {
  int rc = 0;
  if (n) {
    struct coll_delta d;
    coll_delta_init(&d);
    for (size_t k = 0; k < n; k++)
      coll_zrem(&d, s->e[pos[k]].a, s->e[pos[k]].alen);
    rc = ccmd_apply(c, CCMD_ARG(1), COLL_ZSET, v->version, &d);
    coll_delta_free(&d);
  }
  if (rc) return rc;
  reply_int(c, (long long)n);
  if (n) {
    ccmd_notify(c, event, CCMD_ARG(1), NOTIFY_ZSET);
    if (n == s->n) ccmd_notify(c, "del", CCMD_ARG(1), NOTIFY_GENERIC);
  }
  return 0;
}

static int zrem_body(struct client *c) {
  cairn_value v;
  struct ccmd_coll s;
  if (zset_read(c, &v, &s) < 0) return -1;
  size_t n = (size_t)c->argc - 2, k = 0;
  uint32_t *pos = malloc(n * sizeof *pos);
  long *prev = ccmd_arg_prev(c, 2, 1, n);
  int rc = -1;
  if (!pos || !prev) {
    reply_engine_error(c, CAIRN_ENOMEM);
  } else {
    for (size_t i = 0; i < n; i++) {
      long p = prev[i] < 0 ? ccmd_lookup(&s, CCMD_ARG(2 + (int)i)) : -1;
      if (p >= 0) pos[k++] = (uint32_t)p;
    }
    rc = zrem_positions(c, &v, &s, pos, k, "zrem");
  }
  free(pos);
  free(prev);
  zset_done(&v, &s);
  return rc;
}

void cmd_zrem(struct client *c) { ccmd_run(c, zrem_body); }

/* ------------------------------------------------------------------------
 * Point reads
 * --------------------------------------------------------------------- */

/* ZSCORE (many 0), ZMSCORE (many 1): looked up, not read whole. */
static void zset_scores(struct client *c, int many) {
  size_t n = (size_t)c->argc - 2;
  struct coll_probe *p;
  struct coll_info info;
  if (ccmd_probe(c, CCMD_ARG(1), COLL_ZSET, 2, 1, n, 0, &p, &info) < 0)
    return;
  if (many) reply_array(c, n);
  for (size_t i = 0; i < n; i++) {
    if (p[i].found)
      reply_double(c, p[i].score);
    else
      reply_null(c);
  }
  ccmd_probes_free(p, n);
}

void cmd_zscore(struct client *c) { zset_scores(c, 0); }
void cmd_zmscore(struct client *c) { zset_scores(c, 1); }

void cmd_zcard(struct client *c) { ccmd_card(c, COLL_ZSET); }

static void zrank_generic(struct client *c, int rev) {
  int ws = 0;
  if (c->argc > 4 || (c->argc == 4 && strcasecmp(c->argv[3], "withscore"))) {
    reply_error(c, ERR_SYNTAX);
    return;
  }
  ws = c->argc == 4;
  cairn_value v;
  struct ccmd_coll s;
  if (zset_read(c, &v, &s) < 0) return;
  long p = ccmd_lookup(&s, CCMD_ARG(2));
  if (p < 0) {
    if (ws)
      reply_null_array(c);
    else
      reply_null(c);
  } else {
    long long rank = rev ? (long long)s.n - 1 - p : p;
    if (ws) reply_array(c, 2);
    reply_int(c, rank);
    if (ws) reply_double(c, s.e[p].score);
  }
  zset_done(&v, &s);
}

void cmd_zrank(struct client *c) { zrank_generic(c, 0); }
void cmd_zrevrank(struct client *c) { zrank_generic(c, 1); }

/* ------------------------------------------------------------------------
 * Ranges
 * --------------------------------------------------------------------- */

enum { BY_RANK, BY_SCORE, BY_LEX };

struct zlex_item {
  const char *p;
  size_t n;
  int ex;     /* exclusive */
  int inf;    /* -1: "-", +1: "+", 0: a member */
};

struct zq {
  int by, rev, withscores, limit;
  long long start, stop;          /* BY_RANK */
  double min, max;                /* BY_SCORE */
  int minex, maxex;
  struct zlex_item lmin, lmax;    /* BY_LEX */
  long long off, cnt;             /* LIMIT; cnt < 0: all */
};

static int parse_score_bound(const char *s, size_t n, double *d, int *ex) {
  *ex = n > 0 && s[0] == '(';
  if (*ex) {
    s++;
    n--;
  }
  return ccmd_parse_double(s, n, d);
}

static int parse_lex_item(const char *s, size_t n, struct zlex_item *it) {
  if (n == 0) return -1;
  it->ex = 0;
  it->inf = 0;
  it->p = s + 1;
  it->n = n - 1;
  switch (s[0]) {
  case '+': it->inf = 1; return n == 1 ? 0 : -1;
  case '-': it->inf = -1; return n == 1 ? 0 : -1;
  case '(': it->ex = 1; return 0;
  case '[': return 0;
  default: return -1;
  }
}

/* Parse the bounds argv[a] (lower) and argv[b] (upper) for q->by. */
static int zq_bounds(struct client *c, struct zq *q, int a, int b) {
  if (q->by == BY_RANK) {
    if (cmds_parse_ll(CCMD_ARG(a), &q->start) ||
        cmds_parse_ll(CCMD_ARG(b), &q->stop)) {
      reply_error(c, ERR_NOTINT);
      return -1;
    }
  } else if (q->by == BY_SCORE) {
    if (parse_score_bound(CCMD_ARG(a), &q->min, &q->minex) ||
        parse_score_bound(CCMD_ARG(b), &q->max, &q->maxex)) {
      reply_error(c, "ERR min or max is not a float");
      return -1;
    }
  } else if (parse_lex_item(CCMD_ARG(a), &q->lmin) ||
             parse_lex_item(CCMD_ARG(b), &q->lmax)) {
    reply_error(c, "ERR min or max not valid string range item");
    return -1;
  }
  return 0;
}

static int lex_above_min(const struct zlex_item *m, const struct coll_elem *e) {
  if (m->inf) return m->inf < 0;
  int r = ccmd_cmp(e->a, e->alen, m->p, m->n);
  return m->ex ? r > 0 : r >= 0;
}

static int lex_below_max(const struct zlex_item *m, const struct coll_elem *e) {
  if (m->inf) return m->inf > 0;
  int r = ccmd_cmp(e->a, e->alen, m->p, m->n);
  return m->ex ? r < 0 : r <= 0;
}

static int zq_in(const struct zq *q, const struct coll_elem *e) {
  if (q->by == BY_SCORE)
    return (q->minex ? e->score > q->min : e->score >= q->min) &&
           (q->maxex ? e->score < q->max : e->score <= q->max);
  return lex_above_min(&q->lmin, e) && lex_below_max(&q->lmax, e);
}

/* The positions of s selected by q, in reply order.  Errors:
 * CAIRN_ENOMEM. */
static int zq_select(const struct ccmd_coll *s, const struct zq *q,
                     uint32_t **pos, size_t *np) {
  size_t n = s->n, k = 0;
  uint32_t *p = malloc((n ? n : 1) * sizeof *p);
  if (!p) return CAIRN_ENOMEM;
  if (q->by == BY_RANK) {
    long long st = q->start, en = q->stop, len = (long long)n;
    if (st < 0) st += len;
    if (en < 0) en += len;
    if (st < 0) st = 0;
    if (en >= len) en = len - 1;
    for (long long r = st; r <= en && st < len; r++)
      p[k++] = (uint32_t)(q->rev ? len - 1 - r : r);
  } else if (q->off >= 0) {
    long long skip = q->off;
    for (size_t i = 0; i < n; i++) {
      size_t at = q->rev ? n - 1 - i : i;
      if (!zq_in(q, &s->e[at])) continue;
      if (skip > 0) {
        skip--;
        continue;
      }
      if (q->cnt >= 0 && (long long)k >= q->cnt) break;
      p[k++] = (uint32_t)at;
    }
  }
  *pos = p;
  *np = k;
  return 0;
}

static void zq_reply(struct client *c, const struct ccmd_coll *s,
                     const uint32_t *pos, size_t n, int withscores) {
  int nested = withscores && c->proto >= 3;
  reply_array(c, withscores && !nested ? 2 * n : n);
  for (size_t k = 0; k < n; k++) {
    const struct coll_elem *e = &s->e[pos[k]];
    if (nested) reply_array(c, 2);
    reply_bulk(c, e->a, e->alen);
    if (withscores) reply_double(c, e->score);
  }
}

/* Options after the bounds (argv[4]...).  all: ZRANGE's BYSCORE, BYLEX
 * and REV are accepted too. */
static int zq_options(struct client *c, struct zq *q, int all) {
  for (int i = 4; i < c->argc; i++) {
    const char *a = c->argv[i];
    if (!strcasecmp(a, "withscores")) {
      q->withscores = 1;
    } else if (!strcasecmp(a, "limit") && i + 2 < c->argc) {
      if (cmds_parse_ll(CCMD_ARG(i + 1), &q->off) ||
          cmds_parse_ll(CCMD_ARG(i + 2), &q->cnt)) {
        reply_error(c, ERR_NOTINT);
        return -1;
      }
      q->limit = 1;
      i += 2;
    } else if (all && !strcasecmp(a, "byscore")) {
      q->by = BY_SCORE;
    } else if (all && !strcasecmp(a, "bylex")) {
      q->by = BY_LEX;
    } else if (all && !strcasecmp(a, "rev")) {
      q->rev = 1;
    } else {
      reply_error(c, ERR_SYNTAX);
      return -1;
    }
  }
  if (q->limit && q->by == BY_RANK) {
    reply_error(c, "ERR syntax error, LIMIT is only supported in "
                   "combination with either BYSCORE or BYLEX");
    return -1;
  }
  if (q->withscores && q->by == BY_LEX) {
    reply_error(c, "ERR syntax error, WITHSCORES not supported in "
                   "combination with BYLEX");
    return -1;
  }
  return 0;
}

static void zrange_generic(struct client *c, int by, int rev, int all) {
  struct zq q = {.by = by, .rev = rev, .cnt = -1};
  if (zq_options(c, &q, all)) return;
  /* Reversed score and lex ranges name the upper bound first. */
  int swap = q.rev && q.by != BY_RANK;
  if (zq_bounds(c, &q, swap ? 3 : 2, swap ? 2 : 3)) return;
  cairn_value v;
  struct ccmd_coll s;
  if (zset_read(c, &v, &s) < 0) return;
  uint32_t *pos;
  size_t n;
  int rc = zq_select(&s, &q, &pos, &n);
  if (rc) {
    reply_engine_error(c, rc);
  } else {
    zq_reply(c, &s, pos, n, q.withscores);
    free(pos);
  }
  zset_done(&v, &s);
}

void cmd_zrange(struct client *c) { zrange_generic(c, BY_RANK, 0, 1); }
void cmd_zrevrange(struct client *c) { zrange_generic(c, BY_RANK, 1, 0); }
void cmd_zrangebyscore(struct client *c) {
  zrange_generic(c, BY_SCORE, 0, 0);
}
void cmd_zrevrangebyscore(struct client *c) {
  zrange_generic(c, BY_SCORE, 1, 0);
}
void cmd_zrangebylex(struct client *c) { zrange_generic(c, BY_LEX, 0, 0); }
void cmd_zrevrangebylex(struct client *c) { zrange_generic(c, BY_LEX, 1, 0); }

/* ZCOUNT, ZLEXCOUNT: argv[2] min, argv[3] max. */
static void zcount_generic(struct client *c, int by) {
  struct zq q = {.by = by, .cnt = -1};
  if (zq_bounds(c, &q, 2, 3)) return;
  cairn_value v;
  struct ccmd_coll s;
  if (zset_read(c, &v, &s) < 0) return;
  uint32_t *pos;
  size_t n;
  int rc = zq_select(&s, &q, &pos, &n);
  if (rc) {
    reply_engine_error(c, rc);
  } else {
    reply_int(c, (long long)n);
    free(pos);
  }
  zset_done(&v, &s);
}

void cmd_zcount(struct client *c) { zcount_generic(c, BY_SCORE); }
void cmd_zlexcount(struct client *c) { zcount_generic(c, BY_LEX); }

static int zremrange(struct client *c, int by, const char *event) {
  struct zq q = {.by = by, .cnt = -1};
  if (zq_bounds(c, &q, 2, 3)) return -1;
  cairn_value v;
  struct ccmd_coll s;
  if (zset_read(c, &v, &s) < 0) return -1;
  uint32_t *pos;
  size_t n;
  int rc = zq_select(&s, &q, &pos, &n);
  if (rc) {
    reply_engine_error(c, rc);
    rc = -1;
  } else {
    rc = zrem_positions(c, &v, &s, pos, n, event);
    free(pos);
  }
  zset_done(&v, &s);
  return rc;
}

static int zrrs_body(struct client *c) {
  return zremrange(c, BY_SCORE, "zremrangebyscore");
}
static int zrrr_body(struct client *c) {
  return zremrange(c, BY_RANK, "zremrangebyrank");
}
static int zrrl_body(struct client *c) {
  return zremrange(c, BY_LEX, "zremrangebylex");
}
void cmd_zremrangebyscore(struct client *c) { ccmd_run(c, zrrs_body); }
void cmd_zremrangebyrank(struct client *c) { ccmd_run(c, zrrr_body); }
void cmd_zremrangebylex(struct client *c) { ccmd_run(c, zrrl_body); }

/* ------------------------------------------------------------------------
 * ZPOPMIN, ZPOPMAX, ZSCAN
 * --------------------------------------------------------------------- */

static int zpop(struct client *c, int max) {
  long long count;
  int has_count = ccmd_pop_count(c, &count);
  if (has_count < 0) return -1;
  cairn_value v;
  struct ccmd_coll s;
  if (zset_read(c, &v, &s) < 0) return -1;
  size_t n = (size_t)count < s.n ? (size_t)count : s.n;
  uint32_t *pos = calloc(n ? n : 1, sizeof *pos);
  struct coll_delta d;
  coll_delta_init(&d);
  int rc = -1;
  if (!pos) {
    reply_engine_error(c, CAIRN_ENOMEM);
  } else {
    for (size_t k = 0; k < n; k++) {
      pos[k] = (uint32_t)(max ? s.n - 1 - k : k);
      coll_zrem(&d, s.e[pos[k]].a, s.e[pos[k]].alen);
    }
    rc = n ? ccmd_apply(c, CCMD_ARG(1), COLL_ZSET, v.version, &d) : 0;
  }
  if (rc == 0) {
    if (has_count) {
      zq_reply(c, &s, pos, n, 1);
    } else {
      /* Without a count: one flat pair, even in RESP3. */
      reply_array(c, 2 * n);
      if (n) {
        reply_bulk(c, s.e[pos[0]].a, s.e[pos[0]].alen);
        reply_double(c, s.e[pos[0]].score);
      }
    }
    if (n) {
      ccmd_notify(c, max ? "zpopmax" : "zpopmin", CCMD_ARG(1), NOTIFY_ZSET);
      if (n == s.n) ccmd_notify(c, "del", CCMD_ARG(1), NOTIFY_GENERIC);
    }
  }
  coll_delta_free(&d);
  free(pos);
  zset_done(&v, &s);
  return rc;
}

static int zpopmin_body(struct client *c) { return zpop(c, 0); }
static int zpopmax_body(struct client *c) { return zpop(c, 1); }
void cmd_zpopmin(struct client *c) { ccmd_run(c, zpopmin_body); }
void cmd_zpopmax(struct client *c) { ccmd_run(c, zpopmax_body); }

void cmd_zscan(struct client *c) { ccmd_scan(c, COLL_ZSET); }
