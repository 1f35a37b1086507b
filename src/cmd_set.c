/*
 * cmd_set.c - the set commands: SADD ... SSCAN, SMOVE, and the algebra
 * (SINTER, SUNION, SDIFF, their STORE forms, SINTERCARD).
 *
 * Members keep insertion order in the blob (src/coll.h); SUNION replies in
 * byte order, the others in the order of the set they walk.  Redis does
 * not promise any order for sets either.
 */
#include "config.h" /* autoconf: _GNU_SOURCE for qsort_r */

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cmds_coll.h"
#include "cmds_data.h"
#include "srv_config.h"
#include "server.h"

/* Load and decode the set at argv[i] with its index: 1 found, 0 absent
 * (s empty), -1 replied. */
static int set_read(struct client *c, int i, cairn_value *v,
                    struct ccmd_coll *s) {
  return ccmd_read(c, i, COLL_SET, 1, v, s);
}

/* ------------------------------------------------------------------------
 * SADD, SREM
 * --------------------------------------------------------------------- */

/* add 1: SADD, 0: SREM.  Only the members that change go in the delta. */
static int sadd_srem(struct client *c, int add) {
  size_t n = (size_t)c->argc - 2;
  struct coll_probe *p;
  long *prev;
  struct coll_info info;
  if (ccmd_probe_args(c, CCMD_ARG(1), COLL_SET, 2, 1, n, &p, &prev, &info) <
      0)
    return -1;
  struct coll_delta d;
  coll_delta_init(&d);
  long long changed = 0;
  for (size_t i = 0; i < n; i++) {
    int a = 2 + (int)i;
    if (prev[i] >= 0 || p[i].found == add) continue;
    changed++;
    if (add)
      coll_sadd(&d, CCMD_ARG(a));
    else
      coll_srem(&d, CCMD_ARG(a));
  }
  uint64_t left = add ? info.count + (uint64_t)changed
                      : info.count - (uint64_t)changed;
  int rc = 0;
  if (changed) rc = ccmd_apply(c, CCMD_ARG(1), COLL_SET, info.version, &d);
  coll_delta_free(&d);
  free(prev);
  ccmd_probes_free(p, n);
  if (rc) return rc;
  reply_int(c, changed);
  if (changed) {
    ccmd_notify(c, add ? "sadd" : "srem", CCMD_ARG(1), NOTIFY_SET);
    if (left == 0) ccmd_notify(c, "del", CCMD_ARG(1), NOTIFY_GENERIC);
  }
  return 0;
}

static int sadd_body(struct client *c) { return sadd_srem(c, 1); }
static int srem_body(struct client *c) { return sadd_srem(c, 0); }
void cmd_sadd(struct client *c) { ccmd_run(c, sadd_body); }
void cmd_srem(struct client *c) { ccmd_run(c, srem_body); }

/* ------------------------------------------------------------------------
 * Reads
 * --------------------------------------------------------------------- */

void cmd_smembers(struct client *c) {
  cairn_value v;
  struct ccmd_coll s;
  if (set_read(c, 1, &v, &s) < 0) return;
  reply_set(c, s.n);
  for (size_t i = 0; i < s.n; i++) reply_bulk(c, s.e[i].a, s.e[i].alen);
  ccmd_coll_free(&s);
  cairn_value_free(&v);
}

/* SISMEMBER (many 0), SMISMEMBER (many 1): looked up, not read whole. */
static void set_members(struct client *c, int many) {
  size_t n = (size_t)c->argc - 2;
  struct coll_probe *p;
  struct coll_info info;
  if (ccmd_probe(c, CCMD_ARG(1), COLL_SET, 2, 1, n, 0, &p, &info) < 0)
    return;
  if (many) reply_array(c, n);
  for (size_t i = 0; i < n; i++) reply_int(c, p[i].found);
  ccmd_probes_free(p, n);
}

void cmd_sismember(struct client *c) { set_members(c, 0); }
void cmd_smismember(struct client *c) { set_members(c, 1); }

void cmd_scard(struct client *c) { ccmd_card(c, COLL_SET); }

void cmd_sscan(struct client *c) { ccmd_scan(c, COLL_SET); }

/* ------------------------------------------------------------------------
 * SPOP, SRANDMEMBER
 * --------------------------------------------------------------------- */

/* Shuffle the first k positions of a permutation of 0..n-1 into p (a
 * partial Fisher-Yates): k distinct random positions.  NULL: no memory. */
static uint32_t *pick_distinct(size_t n, size_t k) {
  uint32_t *p = malloc((n ? n : 1) * sizeof *p);
  if (!p) return NULL;
  for (size_t i = 0; i < n; i++) p[i] = (uint32_t)i;
  for (size_t i = 0; i < k && i < n; i++) {
    size_t j = i + (size_t)ccmd_rand(n - i);
    uint32_t t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

static int spop_body(struct client *c) {
  long long count;
  int has_count = ccmd_pop_count(c, &count);
  if (has_count < 0) return -1;
  cairn_value v;
  struct ccmd_coll s;
  if (set_read(c, 1, &v, &s) < 0) return -1;
  size_t k = (size_t)count < s.n ? (size_t)count : s.n;
  uint32_t *p = k ? pick_distinct(s.n, k) : NULL;
  struct coll_delta d;
  coll_delta_init(&d);
  for (size_t i = 0; p && i < k; i++) coll_srem(&d, s.e[p[i]].a, s.e[p[i]].alen);
  int rc = 0;
  if (k && !p)
    rc = CAIRN_ENOMEM;
  else if (k)
    rc = ccmd_apply(c, CCMD_ARG(1), COLL_SET, v.version, &d);
  if (rc == CAIRN_ENOMEM) {
    reply_engine_error(c, rc);
    rc = -1;
  }
  if (rc == 0) {
    if (!has_count) {
      if (k)
        reply_bulk(c, s.e[p[0]].a, s.e[p[0]].alen);
      else
        reply_null(c);
    } else {
      reply_set(c, k);
      for (size_t i = 0; i < k; i++) reply_bulk(c, s.e[p[i]].a, s.e[p[i]].alen);
    }
    if (k) {
      ccmd_notify(c, "spop", CCMD_ARG(1), NOTIFY_SET);
      if (k == s.n) ccmd_notify(c, "del", CCMD_ARG(1), NOTIFY_GENERIC);
    }
  }
  coll_delta_free(&d);
  free(p);
  ccmd_coll_free(&s);
  cairn_value_free(&v);
  return rc;
}

void cmd_spop(struct client *c) { ccmd_run(c, spop_body); }

void cmd_srandmember(struct client *c) {
  long long count = 0;
  int has_count = c->argc == 3;
  if (c->argc > 3) {
    reply_error(c, ERR_SYNTAX);
    return;
  }
  if (has_count && cmds_parse_ll(CCMD_ARG(2), &count)) {
    reply_error(c, ERR_NOTINT);
    return;
  }
  if (count < -(long long)COLL_ELEMS_MAX) {
    reply_error(c, "ERR value is out of range");
    return;
  }
  cairn_value v;
  struct ccmd_coll s;
  if (set_read(c, 1, &v, &s) < 0) return;
  if (!has_count) {
    if (s.n) {
      const struct coll_elem *e = &s.e[ccmd_rand(s.n)];
      reply_bulk(c, e->a, e->alen);
    } else {
      reply_null(c);
    }
  } else if (count < 0) {
    size_t k = s.n ? (size_t)-count : 0;
    reply_array(c, k);
    for (size_t i = 0; i < k; i++) {
      const struct coll_elem *e = &s.e[ccmd_rand(s.n)];
      reply_bulk(c, e->a, e->alen);
    }
  } else {
    size_t k = (size_t)count < s.n ? (size_t)count : s.n;
    uint32_t *p = pick_distinct(s.n, k);
    if (!p) {
      reply_engine_error(c, CAIRN_ENOMEM);
    } else {
      reply_array(c, k);
      for (size_t i = 0; i < k; i++) reply_bulk(c, s.e[p[i]].a, s.e[p[i]].alen);
    }
    free(p);
  }
  ccmd_coll_free(&s);
  cairn_value_free(&v);
}

/* ------------------------------------------------------------------------
 * SMOVE
 * --------------------------------------------------------------------- */

/* Move argv[3] from set argv[1] to set argv[2]: SREM then SADD, in one
 * log unit.  The destination's write carries no version condition: its
 * type was checked, and the engine refuses another type anyway. */
static int smove_write(struct client *c, uint64_t src_version) {
  int g = ccmd_group_begin(c);
  struct coll_delta d;
  coll_delta_init(&d);
  coll_srem(&d, CCMD_ARG(3));
  int rc = ccmd_apply(c, CCMD_ARG(1), COLL_SET, src_version, &d);
  coll_delta_free(&d);
  if (rc == 0) {
    coll_delta_init(&d);
    coll_sadd(&d, CCMD_ARG(3));
    if (d.err) {
      rc = d.err;
    } else {
      cairn_write w = srv_write(c, NULL);
      rc = cairn_coll_apply(c->srv->db, srv_ns(c), CCMD_ARG(2), COLL_SET,
                            d.buf, d.len, &w);
      if (rc) srv_write_abort(c);
    }
    coll_delta_free(&d);
    if (rc) {
      ccmd_reply_error(c, rc);
      rc = -1;
    }
  }
  ccmd_group_end(c, g);
  return rc;
}

static int smove_body(struct client *c) {
  cairn_value src, dst;
  struct ccmd_coll s;
  int found = set_read(c, 1, &src, &s);
  if (found < 0) return -1;
  int dfound = found ? ccmd_load(c, CCMD_ARG(2), COLL_SET, &dst) : 0;
  int rc = -1;
  if (!found) {
    reply_int(c, 0);
  } else if (dfound >= 0) {
    int member = ccmd_lookup(&s, CCMD_ARG(3)) >= 0;
    if (ccmd_cmp(CCMD_ARG(1), CCMD_ARG(2)) == 0 || !member) {
      reply_int(c, member);
    } else {
      rc = smove_write(c, src.version);
      if (rc == 0) {
        reply_int(c, 1);
        ccmd_notify(c, "srem", CCMD_ARG(1), NOTIFY_SET);
        if (s.n == 1) ccmd_notify(c, "del", CCMD_ARG(1), NOTIFY_GENERIC);
        ccmd_notify(c, "sadd", CCMD_ARG(2), NOTIFY_SET);
      }
    }
    cairn_value_free(&dst);
  }
  ccmd_coll_free(&s);
  cairn_value_free(&src);
  return rc;
}

void cmd_smove(struct client *c) { ccmd_run(c, smove_body); }

/* ------------------------------------------------------------------------
 * SINTER, SUNION, SDIFF and their STORE forms
 * --------------------------------------------------------------------- */

enum { OP_INTER, OP_UNION, OP_DIFF };

struct sets {
  size_t n;
  cairn_value *v;
  struct ccmd_coll *s;
  const struct coll_elem **res; /* the result: pointers into s[].e */
  size_t nres;
};

static void sets_free(struct sets *x) {
  for (size_t i = 0; i < x->n; i++) {
    ccmd_coll_free(&x->s[i]);
    cairn_value_free(&x->v[i]);
  }
  free(x->v);
  free(x->s);
  free(x->res);
}

/* Load argv[first .. first+n-1]; absent keys are empty sets.  0 or -1
 * (replied, x freed). */
static int sets_load(struct client *c, int first, size_t n, struct sets *x) {
  memset(x, 0, sizeof *x);
  x->v = calloc(n, sizeof *x->v);
  x->s = calloc(n, sizeof *x->s);
  if (!x->v || !x->s) {
    free(x->v);
    free(x->s);
    reply_engine_error(c, CAIRN_ENOMEM);
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    if (set_read(c, first + (int)i, &x->v[i], &x->s[i]) < 0) {
      sets_free(x);
      return -1;
    }
    x->n = i + 1;
  }
  return 0;
}

static int by_member(const void *p, const void *q) {
  const struct coll_elem *a = *(const struct coll_elem *const *)p;
  const struct coll_elem *b = *(const struct coll_elem *const *)q;
  return ccmd_cmp(a->a, a->alen, b->a, b->alen);
}

/* Members of set 'base' kept when in every other set (inter) or in none
 * (diff). */
static void sets_filter(struct sets *x, size_t base, int inter) {
  for (size_t k = 0; k < x->s[base].n; k++) {
    const struct coll_elem *e = &x->s[base].e[k];
    int keep = 1;
    for (size_t j = 0; j < x->n && keep; j++) {
      if (j == base) continue;
      int in = ccmd_lookup(&x->s[j], e->a, e->alen) >= 0;
      keep = inter ? in : !in;
    }
    if (keep) x->res[x->nres++] = e;
  }
}

/* Compute x->res.  Errors: CAIRN_ENOMEM. */
static int sets_compute(struct sets *x, int op) {
  size_t total = 0, small = 0;
  for (size_t i = 0; i < x->n; i++) {
    total += x->s[i].n;
    if (x->s[i].n < x->s[small].n) small = i;
  }
  x->res = malloc((total ? total : 1) * sizeof *x->res);
  if (!x->res) return CAIRN_ENOMEM;
  x->nres = 0;
  if (op == OP_INTER) {
    sets_filter(x, small, 1);
  } else if (op == OP_DIFF) {
    sets_filter(x, 0, 0);
  } else {
    for (size_t i = 0; i < x->n; i++)
      for (size_t k = 0; k < x->s[i].n; k++) x->res[x->nres++] = &x->s[i].e[k];
    qsort(x->res, x->nres, sizeof *x->res, by_member);
    size_t w = 0;
    for (size_t k = 0; k < x->nres; k++)
      if (w == 0 || by_member(&x->res[w - 1], &x->res[k]) != 0)
        x->res[w++] = x->res[k];
    x->nres = w;
  }
  return 0;
}

static void set_algebra(struct client *c, int op) {
  struct sets x;
  if (sets_load(c, 1, (size_t)c->argc - 1, &x)) return;
  int rc = sets_compute(&x, op);
  if (rc) {
    reply_engine_error(c, rc);
  } else {
    reply_set(c, x.nres);
    for (size_t k = 0; k < x.nres; k++)
      reply_bulk(c, x.res[k]->a, x.res[k]->alen);
  }
  sets_free(&x);
}

void cmd_sinter(struct client *c) { set_algebra(c, OP_INTER); }
void cmd_sunion(struct client *c) { set_algebra(c, OP_UNION); }
void cmd_sdiff(struct client *c) { set_algebra(c, OP_DIFF); }

/* Replace argv[1] by the result: delete it, then add the members, in one
 * log unit.  *existed tells whether there was a key to delete. */
static int store_write(struct client *c, const struct sets *x, int *existed) {
  int g = ccmd_group_begin(c);
  cairn_write w = srv_write(c, NULL);
  int rc = cairn_del(c->srv->db, srv_ns(c), CCMD_ARG(1), &w);
  if (rc) srv_write_abort(c);
  *existed = rc == 0;
  if (rc == CAIRN_ENOTFOUND) rc = 0;
  if (rc == 0 && x->nres) {
    struct coll_delta d;
    coll_delta_init(&d);
    for (size_t k = 0; k < x->nres; k++)
      coll_sadd(&d, x->res[k]->a, x->res[k]->alen);
    rc = d.err;
    if (rc == 0) {
      w = srv_write(c, NULL);
      rc = cairn_coll_apply(c->srv->db, srv_ns(c), CCMD_ARG(1), COLL_SET,
                            d.buf, d.len, &w);
      if (rc) srv_write_abort(c);
    }
    coll_delta_free(&d);
  }
  ccmd_group_end(c, g);
  return rc;
}

static void set_store(struct client *c, int op, const char *event) {
  struct sets x;
  if (sets_load(c, 2, (size_t)c->argc - 2, &x)) return;
  int existed = 0;
  int rc = sets_compute(&x, op);
  if (rc == 0) rc = store_write(c, &x, &existed);
  if (rc) {
    ccmd_reply_error(c, rc);
  } else {
    reply_int(c, (long long)x.nres);
    if (x.nres)
      ccmd_notify(c, event, CCMD_ARG(1), NOTIFY_SET);
    else if (existed)
      ccmd_notify(c, "del", CCMD_ARG(1), NOTIFY_GENERIC);
  }
  sets_free(&x);
}

void cmd_sinterstore(struct client *c) {
  set_store(c, OP_INTER, "sinterstore");
}
void cmd_sunionstore(struct client *c) {
  set_store(c, OP_UNION, "sunionstore");
}
void cmd_sdiffstore(struct client *c) { set_store(c, OP_DIFF, "sdiffstore"); }

/* SINTERCARD numkeys key [key ...] [LIMIT limit] */
void cmd_sintercard(struct client *c) {
  long long nk, limit = 0;
  if (cmds_parse_ll(CCMD_ARG(1), &nk)) {
    reply_error(c, ERR_NOTINT);
    return;
  }
  if (nk <= 0) {
    reply_error(c, "ERR numkeys should be greater than 0");
    return;
  }
  if (nk > c->argc - 2) {
    reply_error(c, "ERR Number of keys can't be greater than number of args");
    return;
  }
  for (int i = 2 + (int)nk; i < c->argc; i++) {
    if (!strcasecmp(c->argv[i], "limit") && i + 1 < c->argc) {
      i++;
      if (cmds_parse_ll(CCMD_ARG(i), &limit)) {
        reply_error(c, ERR_NOTINT);
        return;
      }
      if (limit < 0) {
        reply_error(c, "ERR LIMIT can't be negative");
        return;
      }
    } else {
      reply_error(c, ERR_SYNTAX);
      return;
    }
  }
  struct sets x;
  if (sets_load(c, 2, (size_t)nk, &x)) return;
  int rc = sets_compute(&x, OP_INTER);
  if (rc)
    reply_engine_error(c, rc);
  else
    reply_int(c, limit && (long long)x.nres > limit ? limit
                                                     : (long long)x.nres);
  sets_free(&x);
}
