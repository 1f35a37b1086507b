/*
 * cmd_list.c - the list commands: pushes and pops, LLEN, LRANGE, LINDEX,
 * LSET, LREM, LTRIM, LPOS, LINSERT, LMOVE and RPOPLPUSH.
 *
 * Index arithmetic follows Redis (negative indexes count from the tail);
 * the delta names the change in the same terms (CO_LSET, CO_LTRIM,
 * CO_LREM), and the reply is computed here from the blob read.
 */
#include "config.h" /* autoconf */

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cmds_coll.h"
#include "cmds_data.h"
#include "srv_config.h"
#include "server.h"

/* Load and decode the list at argv[i]: 1 found, 0 absent (s empty), -1
 * replied. */
static int list_read(struct client *c, int i, cairn_value *v,
                     struct ccmd_coll *s) {
  return ccmd_read(c, i, COLL_LIST, 0, v, s);
}

static void list_done(cairn_value *v, struct ccmd_coll *s) {
  ccmd_coll_free(s);
  cairn_value_free(v);
}

/* Redis's index: negative counts from the tail.  -1 if out of range. */
static long long list_index(long long i, size_t n) {
  if (i < 0) i += (long long)n;
  return i < 0 || i >= (long long)n ? -1 : i;
}

/* ------------------------------------------------------------------------
 * Pushes and pops
 * --------------------------------------------------------------------- */

static int push(struct client *c, int tail, int only_existing) {
  struct coll_probe *p;
  struct coll_info info;
  int found = ccmd_probe(c, CCMD_ARG(1), COLL_LIST, 0, 1, 0, 0, &p, &info);
  if (found < 0) return -1;
  ccmd_probes_free(p, 0);
  if (only_existing && !found) {
    reply_int(c, 0);
    return -1;
  }
  struct coll_delta d;
  coll_delta_init(&d);
  for (int i = 2; i < c->argc; i++) coll_push(&d, tail, CCMD_ARG(i));
  int rc = ccmd_apply(c, CCMD_ARG(1), COLL_LIST, info.version, &d);
  coll_delta_free(&d);
  if (rc) return rc;
  reply_int(c, (long long)info.count + c->argc - 2);
  ccmd_notify(c, tail ? "rpush" : "lpush", CCMD_ARG(1), NOTIFY_LIST);
  return 0;
}

static int lpush_body(struct client *c) { return push(c, 0, 0); }
static int rpush_body(struct client *c) { return push(c, 1, 0); }
static int lpushx_body(struct client *c) { return push(c, 0, 1); }
static int rpushx_body(struct client *c) { return push(c, 1, 1); }
void cmd_lpush(struct client *c) { ccmd_run(c, lpush_body); }
void cmd_rpush(struct client *c) { ccmd_run(c, rpush_body); }
void cmd_lpushx(struct client *c) { ccmd_run(c, lpushx_body); }
void cmd_rpushx(struct client *c) { ccmd_run(c, rpushx_body); }

static int pop(struct client *c, int tail) {
  long long count;
  int has_count = ccmd_pop_count(c, &count);
  if (has_count < 0) return -1;
  cairn_value v;
  struct ccmd_coll s;
  int found = list_read(c, 1, &v, &s);
  if (found <= 0) {
    if (found == 0) {
      list_done(&v, &s);
      if (has_count)
        reply_null_array(c);
      else
        reply_null(c);
    }
    return -1;
  }
  size_t k = (size_t)count < s.n ? (size_t)count : s.n;
  int rc = 0;
  if (k) {
    struct coll_delta d;
    coll_delta_init(&d);
    coll_pop(&d, tail, (uint32_t)k);
    rc = ccmd_apply(c, CCMD_ARG(1), COLL_LIST, v.version, &d);
    coll_delta_free(&d);
  }
  if (rc == 0) {
    if (has_count) reply_array(c, k);
    for (size_t i = 0; i < k; i++) {
      const struct coll_elem *e = &s.e[tail ? s.n - 1 - i : i];
      reply_bulk(c, e->a, e->alen);
    }
    if (k) {
      ccmd_notify(c, tail ? "rpop" : "lpop", CCMD_ARG(1), NOTIFY_LIST);
      if (k == s.n) ccmd_notify(c, "del", CCMD_ARG(1), NOTIFY_GENERIC);
    }
  }
  list_done(&v, &s);
  return rc;
}

static int lpop_body(struct client *c) { return pop(c, 0); }
static int rpop_body(struct client *c) { return pop(c, 1); }
void cmd_lpop(struct client *c) { ccmd_run(c, lpop_body); }
void cmd_rpop(struct client *c) { ccmd_run(c, rpop_body); }

/* ------------------------------------------------------------------------
 * Reads
 * --------------------------------------------------------------------- */

void cmd_llen(struct client *c) { ccmd_card(c, COLL_LIST); }

void cmd_lrange(struct client *c) {
  long long st, en;
  if (cmds_parse_ll(CCMD_ARG(2), &st) || cmds_parse_ll(CCMD_ARG(3), &en)) {
    reply_error(c, ERR_NOTINT);
    return;
  }
  cairn_value v;
  struct ccmd_coll s;
  if (list_read(c, 1, &v, &s) < 0) return;
  long long len = (long long)s.n;
  if (st < 0) st += len;
  if (en < 0) en += len;
  if (st < 0) st = 0;
  if (en >= len) en = len - 1;
  if (st > en || st >= len) {
    reply_array(c, 0);
  } else {
    reply_array(c, (size_t)(en - st + 1));
    for (long long i = st; i <= en; i++) reply_bulk(c, s.e[i].a, s.e[i].alen);
  }
  list_done(&v, &s);
}

void cmd_lindex(struct client *c) {
  long long idx;
  if (cmds_parse_ll(CCMD_ARG(2), &idx)) {
    reply_error(c, ERR_NOTINT);
    return;
  }
  cairn_value v;
  struct ccmd_coll s;
  if (list_read(c, 1, &v, &s) < 0) return;
  long long i = list_index(idx, s.n);
  if (i < 0)
    reply_null(c);
  else
    reply_bulk(c, s.e[i].a, s.e[i].alen);
  list_done(&v, &s);
}

/* LPOS key element [RANK rank] [COUNT num] [MAXLEN len] */
struct lpos_opts {
  long long rank, count, maxlen;
  int has_count;
};

static int lpos_parse(struct client *c, struct lpos_opts *o) {
  o->rank = 1;
  o->count = 0;
  o->maxlen = 0;
  o->has_count = 0;
  for (int i = 3; i < c->argc; i++) {
    const char *a = c->argv[i];
    long long x;
    if (i + 1 >= c->argc ||
        (strcasecmp(a, "rank") && strcasecmp(a, "count") &&
         strcasecmp(a, "maxlen"))) {
      reply_error(c, ERR_SYNTAX);
      return -1;
    }
    i++;
    if (cmds_parse_ll(CCMD_ARG(i), &x)) {
      reply_error(c, ERR_NOTINT);
      return -1;
    }
    const char *err = NULL;
    if (!strcasecmp(a, "rank")) {
      if (x == 0)
        err = "ERR RANK can't be zero: use 1 to start from the first match, "
              "2 from the second ... or use negative to start from the end "
              "of the list";
      else if (x < -(long long)COLL_ELEMS_MAX - 1)
        err = "ERR value is out of range";
      o->rank = x;
    } else if (!strcasecmp(a, "count")) {
      if (x < 0) err = "ERR COUNT can't be negative";
      o->count = x;
      o->has_count = 1;
    } else {
      if (x < 0) err = "ERR MAXLEN can't be negative";
      o->maxlen = x;
    }
    if (err) {
      reply_error(c, err);
      return -1;
    }
  }
  return 0;
}

void cmd_lpos(struct client *c) {
  struct lpos_opts o;
  if (lpos_parse(c, &o)) return;
  cairn_value v;
  struct ccmd_coll s;
  if (list_read(c, 1, &v, &s) < 0) return;
  long long skip = (o.rank < 0 ? -o.rank : o.rank) - 1;
  size_t want = o.has_count ? (o.count ? (size_t)o.count : s.n) : 1;
  size_t scan = o.maxlen && (size_t)o.maxlen < s.n ? (size_t)o.maxlen : s.n;
  size_t *hits = malloc((want < s.n ? want : s.n) * sizeof *hits + 1);
  size_t nh = 0;
  if (!hits) {
    reply_engine_error(c, CAIRN_ENOMEM);
    list_done(&v, &s);
    return;
  }
  for (size_t k = 0; k < scan && nh < want; k++) {
    size_t at = o.rank < 0 ? s.n - 1 - k : k;
    if (ccmd_cmp(s.e[at].a, s.e[at].alen, CCMD_ARG(2))) continue;
    if (skip > 0) {
      skip--;
      continue;
    }
    hits[nh++] = at;
  }
  if (o.has_count) {
    reply_array(c, nh);
    for (size_t k = 0; k < nh; k++) reply_int(c, (long long)hits[k]);
  } else if (nh) {
    reply_int(c, (long long)hits[0]);
  } else {
    reply_null(c);
  }
  free(hits);
  list_done(&v, &s);
}

/* ------------------------------------------------------------------------
 * LSET, LREM, LTRIM, LINSERT
 * --------------------------------------------------------------------- */

/* Apply d to the list at argv[1], read as (v, s); left is the length
 * after.  Replies with reply_fn's value on success. */
static int list_write(struct client *c, const cairn_value *v,
                      struct coll_delta *d, const char *event, size_t left) {
  int rc = ccmd_apply(c, CCMD_ARG(1), COLL_LIST, v->version, d);
  coll_delta_free(d);
  if (rc == 0) {
    ccmd_notify(c, event, CCMD_ARG(1), NOTIFY_LIST);
    if (left == 0) ccmd_notify(c, "del", CCMD_ARG(1), NOTIFY_GENERIC);
  }
  return rc;
}

static int lset_body(struct client *c) {
  long long idx;
  if (cmds_parse_ll(CCMD_ARG(2), &idx)) {
    reply_error(c, ERR_NOTINT);
    return -1;
  }
  cairn_value v;
  struct ccmd_coll s;
  int found = list_read(c, 1, &v, &s);
  if (found <= 0) {
    if (found == 0) {
      list_done(&v, &s);
      reply_error(c, ERR_NOKEY);
    }
    return -1;
  }
  long long i = list_index(idx, s.n);
  int rc = -1;
  if (i < 0) {
    reply_error(c, "ERR index out of range");
  } else {
    struct coll_delta d;
    coll_delta_init(&d);
    coll_lset(&d, i, CCMD_ARG(3));
    rc = list_write(c, &v, &d, "lset", s.n);
    if (rc == 0) reply_ok(c);
  }
  list_done(&v, &s);
  return rc;
}

void cmd_lset(struct client *c) { ccmd_run(c, lset_body); }

static int lrem_body(struct client *c) {
  long long count;
  if (cmds_parse_ll(CCMD_ARG(2), &count)) {
    reply_error(c, ERR_NOTINT);
    return -1;
  }
  cairn_value v;
  struct ccmd_coll s;
  if (list_read(c, 1, &v, &s) < 0) return -1;
  size_t removed = 0;
  size_t limit = count == 0 ? s.n
                 : count < 0 ? (size_t)(-(count + 1)) + 1
                             : (size_t)count;
  for (size_t k = 0; k < s.n && removed < limit; k++) {
    size_t at = count < 0 ? s.n - 1 - k : k;
    if (ccmd_cmp(s.e[at].a, s.e[at].alen, CCMD_ARG(3)) == 0) removed++;
  }
  int rc = 0;
  if (removed) {
    struct coll_delta d;
    coll_delta_init(&d);
    coll_lrem(&d, count, CCMD_ARG(3));
    rc = list_write(c, &v, &d, "lrem", s.n - removed);
  }
  if (rc == 0) reply_int(c, (long long)removed);
  list_done(&v, &s);
  return rc;
}

void cmd_lrem(struct client *c) { ccmd_run(c, lrem_body); }

static int ltrim_body(struct client *c) {
  long long st, en;
  if (cmds_parse_ll(CCMD_ARG(2), &st) || cmds_parse_ll(CCMD_ARG(3), &en)) {
    reply_error(c, ERR_NOTINT);
    return -1;
  }
  cairn_value v;
  struct coll_iter it;
  int found = ccmd_load(c, CCMD_ARG(1), COLL_LIST, &v);
  if (found < 0) return -1;
  long n = coll_iter_init(&it, COLL_LIST, v.data, found ? v.len : 0);
  if (n < 0) {
    cairn_value_free(&v);
    reply_engine_error(c, (int)n);
    return -1;
  }
  long long len = n, s0 = st, e0 = en, keep;
  if (s0 < 0) s0 += len;
  if (e0 < 0) e0 += len;
  if (s0 < 0) s0 = 0;
  if (s0 > e0 || s0 >= len)
    keep = 0;
  else
    keep = (e0 >= len ? len - 1 : e0) - s0 + 1;
  int rc = 0;
  if (keep < len) {
    struct coll_delta d;
    coll_delta_init(&d);
    coll_ltrim(&d, st, en);
    rc = list_write(c, &v, &d, "ltrim", (size_t)keep);
  }
  if (rc == 0) reply_ok(c);
  cairn_value_free(&v);
  return rc;
}

void cmd_ltrim(struct client *c) { ccmd_run(c, ltrim_body); }

static int linsert_body(struct client *c) {
  int after;
  if (!strcasecmp(c->argv[2], "after")) {
    after = 1;
  } else if (!strcasecmp(c->argv[2], "before")) {
    after = 0;
  } else {
    reply_error(c, ERR_SYNTAX);
    return -1;
  }
  cairn_value v;
  struct coll_elem e;
  struct coll_iter it;
  int found = ccmd_load(c, CCMD_ARG(1), COLL_LIST, &v);
  if (found <= 0) {
    if (found == 0) reply_int(c, 0);
    return -1;
  }
  long n = coll_iter_init(&it, COLL_LIST, v.data, v.len);
  int has = n < 0 ? (int)n : coll_find(COLL_LIST, v.data, v.len, CCMD_ARG(3), &e);
  int rc = -1;
  if (has < 0) {
    reply_engine_error(c, has);
  } else if (!has) {
    reply_int(c, -1);
  } else {
    struct coll_delta d;
    coll_delta_init(&d);
    coll_linsert(&d, after, CCMD_ARG(3), CCMD_ARG(4));
    rc = list_write(c, &v, &d, "linsert", (size_t)n + 1);
    if (rc == 0) reply_int(c, n + 1);
  }
  cairn_value_free(&v);
  return rc;
}

void cmd_linsert(struct client *c) { ccmd_run(c, linsert_body); }

/* ------------------------------------------------------------------------
 * LMOVE, RPOPLPUSH
 * --------------------------------------------------------------------- */

/* Push x onto the list at argv[2] (no version condition: its type was
 * checked, and the engine refuses another type anyway). */
static int move_push(struct client *c, int tail, const void *x, size_t xl) {
  struct coll_delta d;
  coll_delta_init(&d);
  coll_push(&d, tail, x, xl);
  int rc = d.err;
  if (rc == 0) {
    cairn_write w = srv_write(c, NULL);
    rc = cairn_coll_apply(c->srv->db, srv_ns(c), CCMD_ARG(2), COLL_LIST,
                          d.buf, d.len, &w);
    if (rc) srv_write_abort(c);
  }
  coll_delta_free(&d);
  if (rc) ccmd_reply_error(c, rc);
  return rc ? -1 : 0;
}

/* Pop from argv[1] (from_tail), push onto argv[2] (to_tail), one log unit;
 * the same key is one delta (a rotation). */
static int move_write(struct client *c, const cairn_value *v,
                      const struct coll_elem *e, int from_tail, int to_tail) {
  int same = ccmd_cmp(CCMD_ARG(1), CCMD_ARG(2)) == 0;
  int g = ccmd_group_begin(c);
  struct coll_delta d;
  coll_delta_init(&d);
  coll_pop(&d, from_tail, 1);
  if (same) coll_push(&d, to_tail, e->a, e->alen);
  int rc = ccmd_apply(c, CCMD_ARG(1), COLL_LIST, v->version, &d);
  coll_delta_free(&d);
  if (rc == 0 && !same) rc = move_push(c, to_tail, e->a, e->alen);
  ccmd_group_end(c, g);
  return rc;
}

static int lmove_generic(struct client *c, int from_tail, int to_tail) {
  cairn_value v, dv;
  struct ccmd_coll s;
  int found = list_read(c, 1, &v, &s);
  if (found <= 0) {
    if (found == 0) {
      list_done(&v, &s);
      reply_null(c);
    }
    return -1;
  }
  int rc = -1;
  if (ccmd_load(c, CCMD_ARG(2), COLL_LIST, &dv) >= 0) {
    cairn_value_free(&dv);
    const struct coll_elem *e = &s.e[from_tail ? s.n - 1 : 0];
    rc = move_write(c, &v, e, from_tail, to_tail);
    if (rc == 0) {
      reply_bulk(c, e->a, e->alen);
      ccmd_notify(c, from_tail ? "rpop" : "lpop", CCMD_ARG(1), NOTIFY_LIST);
      if (s.n == 1 && ccmd_cmp(CCMD_ARG(1), CCMD_ARG(2)))
        ccmd_notify(c, "del", CCMD_ARG(1), NOTIFY_GENERIC);
      ccmd_notify(c, to_tail ? "rpush" : "lpush", CCMD_ARG(2), NOTIFY_LIST);
    }
  }
  list_done(&v, &s);
  return rc;
}

static int parse_side(const char *s, int *tail) {
  if (!strcasecmp(s, "left")) *tail = 0;
  else if (!strcasecmp(s, "right")) *tail = 1;
  else return -1;
  return 0;
}

static int lmove_body(struct client *c) {
  int from, to;
  if (parse_side(c->argv[3], &from) || parse_side(c->argv[4], &to)) {
    reply_error(c, ERR_SYNTAX);
    return -1;
  }
  return lmove_generic(c, from, to);
}

static int rpoplpush_body(struct client *c) { return lmove_generic(c, 1, 0); }
void cmd_lmove(struct client *c) { ccmd_run(c, lmove_body); }
void cmd_rpoplpush(struct client *c) { ccmd_run(c, rpoplpush_body); }
