/*
 * cmd_keys.c - the keyspace commands: DEL, EXISTS, TYPE, the EXPIRE
 * family and TTLs, PERSIST, RENAME, COPY, KEYS, SCAN, RANDOMKEY, TOUCH, OBJECT.
 *
 * Expiry: the engine takes a lifespan relative to now, so absolute times
 * are converted with the wall clock, and a time already past deletes the
 * key (Redis semantics: it counts as a delete and notifies "del").  A
 * conditional change (NX/XX/GT/LT, PERSIST, RENAME) reads the entry and
 * writes under CAIRN_IF_VERSION; a race lost to the expiry thread is
 * retried (RMW_TRIES).
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cmds_data.h"
#include "srv_config.h"
#include "glob.h"
#include "server.h"

#define RMW_TRIES 4
#define SCAN_STEP 1024u        /* entries examined per engine call (KEYS) */
#define SCAN_COUNT_MAX 1000000 /* cap on SCAN's COUNT per call */
#define RANDOM_ROUNDS 4u       /* scan steps sampled by RANDOMKEY */

#define KEY(i) c->argv[(i)], c->argvlen[(i)]

static void notify(struct client *c, const char *event, int kidx,
                   unsigned type) {
  pubsub_notify(c->srv, c->db, event, KEY(kidx), type);
}

/* 1 found (v filled if non-NULL), 0 missing, -1 error (replied). */
static int read_key(struct client *c, int k, cairn_value *v) {
  cairn_value tmp;
  int rc = cairn_get(c->srv->db, srv_ns(c), KEY(k), v ? v : &tmp);
  if (rc == 0) {
    if (!v) cairn_value_free(&tmp);
    return 1;
  }
  if (rc == CAIRN_ENOTFOUND) return 0;
  reply_engine_error(c, rc);
  return -1;
}

static int write_failed(struct client *c, int rc, int try) {
  srv_write_abort(c);
  if (rc == CAIRN_EVERSION && try + 1 < RMW_TRIES) return 1;
  reply_engine_error(c, rc);
  return 0;
}

static int same_arg(struct client *c, int a, int b) {
  return c->argvlen[a] == c->argvlen[b] &&
         memcmp(c->argv[a], c->argv[b], c->argvlen[a]) == 0;
}

/* ------------------------------------------------------------------------
 * DEL, UNLINK, EXISTS, TOUCH, TYPE
 * --------------------------------------------------------------------- */

static void del_one(struct client *c) {
  cairn_write w = srv_write(c, NULL);
  int rc = cairn_del(c->srv->db, srv_ns(c), KEY(1), &w);
  if (rc) {
    srv_write_abort(c);
    if (rc == CAIRN_ENOTFOUND) reply_int(c, 0);
    else reply_engine_error(c, rc);
    return;
  }
  reply_int(c, 1);
  notify(c, "del", 1, NOTIFY_GENERIC);
}

/* Several keys: one batch, so the delete is atomic and one write holds the
 * reply.  The count is of distinct keys live before it. */
static void del_many(struct client *c) {
  size_t n = (size_t)c->argc;
  char *live = calloc(n, 1);
  cairn_batch *b = NULL;
  int rc = live ? cairn_batch_new(c->srv->db, &b) : CAIRN_ENOMEM;
  long long count = 0;
  for (int i = 1; rc == 0 && i < c->argc; i++) {
    int dup = 0;
    for (int j = 1; j < i && !dup; j++) dup = live[j] && same_arg(c, i, j);
    if (dup) continue;
    int r = read_key(c, i, NULL);
    if (r < 0) goto out; /* replied */
    if (r == 0) continue;
    live[i] = 1;
    count++;
    rc = cairn_batch_del(b, srv_ns(c), KEY(i), NULL);
  }
  if (rc) {
    reply_engine_error(c, rc);
    goto out;
  }
  if (count) {
    cairn_write w = srv_write(c, NULL);
    if ((rc = cairn_batch_commit(b, &w)) != 0) {
      srv_write_abort(c);
      reply_engine_error(c, rc);
      goto out;
    }
  }
  reply_int(c, count);
  for (int i = 1; i < c->argc; i++)
    if (live[i]) notify(c, "del", i, NOTIFY_GENERIC);
out:
  cairn_batch_free(b);
  free(live);
}

void cmd_del(struct client *c) {
  if (c->argc == 2) del_one(c);
  else del_many(c);
}

void cmd_unlink(struct client *c) { cmd_del(c); }

/* EXISTS and TOUCH: live keys, repeats counted. */
static void count_live(struct client *c) {
  long long n = 0;
  for (int i = 1; i < c->argc; i++) {
    int r = read_key(c, i, NULL);
    if (r < 0) return;
    n += r;
  }
  reply_int(c, n);
}

void cmd_exists(struct client *c) { count_live(c); }
void cmd_touch(struct client *c) { count_live(c); }

static const char *type_name(int type) {
  switch (type) {
  case CAIRN_TYPE_STRING: return "string";
  case CAIRN_TYPE_HASH: return "hash";
  case CAIRN_TYPE_SET: return "set";
  case CAIRN_TYPE_ZSET: return "zset";
  case CAIRN_TYPE_LIST: return "list";
  default: return "none";
  }
}

void cmd_type(struct client *c) {
  cairn_value v;
  int r = read_key(c, 1, &v);
  if (r < 0) return;
  reply_status(c, r ? type_name(v.type) : "none");
  if (r) cairn_value_free(&v);
}

/* ------------------------------------------------------------------------
 * EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT
 * --------------------------------------------------------------------- */

enum { EXP_NX = 1, EXP_XX = 2, EXP_GT = 4, EXP_LT = 8 };

static int parse_expire_flags(struct client *c, unsigned *flags) {
  *flags = 0;
  for (int i = 3; i < c->argc; i++) {
    const char *o = c->argv[i];
    if (c->argvlen[i] != 2) goto bad;
    if (!strncasecmp(o, "nx", 2)) *flags |= EXP_NX;
    else if (!strncasecmp(o, "xx", 2)) *flags |= EXP_XX;
    else if (!strncasecmp(o, "gt", 2)) *flags |= EXP_GT;
    else if (!strncasecmp(o, "lt", 2)) *flags |= EXP_LT;
    else goto bad;
    continue;
  bad:
    reply_errorf(c, "ERR Unsupported option %s", o);
    return -1;
  }
  if ((*flags & EXP_NX) && (*flags & (EXP_XX | EXP_GT | EXP_LT))) {
    reply_error(c, "ERR NX and XX, GT or LT options at the same time are "
                   "not compatible");
    return -1;
  }
  if ((*flags & EXP_GT) && (*flags & EXP_LT)) {
    reply_error(c, "ERR GT and LT options at the same time are not "
                   "compatible");
    return -1;
  }
  return 0;
}

/* Whether NX/XX/GT/LT allow moving the expiry from cur (0: none) to
 * when; no expiry counts as infinite, as in Redis. */
static int expire_allowed(unsigned flags, long long cur, long long when) {
  if ((flags & EXP_NX) && cur) return 0;
  if ((flags & EXP_XX) && !cur) return 0;
  if ((flags & EXP_GT) && (!cur || when <= cur)) return 0;
  if ((flags & EXP_LT) && cur && when >= cur) return 0;
  return 1;
}

/* One attempt; 1 to retry. */
static int expire_once(struct client *c, unsigned flags, long long when,
                       int try) {
  cairn_value v;
  int r = read_key(c, 1, &v);
  if (r <= 0) {
    if (r == 0) reply_int(c, 0);
    return 0;
  }
  long long cur = v.expire_at_ms;
  cairn_write base = {.cond = CAIRN_IF_VERSION, .version = v.version};
  cairn_value_free(&v);
  if (!expire_allowed(flags, cur, when)) {
    reply_int(c, 0);
    return 0;
  }
  long long now = cmds_now_ms();
  int rc;
  if (when <= now) {
    cairn_write w = srv_write(c, &base);
    rc = cairn_del(c->srv->db, srv_ns(c), KEY(1), &w);
  } else {
    base.flags = CAIRN_W_TTL;
    base.ttl_ms = (uint64_t)(when - now);
    cairn_write w = srv_write(c, &base);
    rc = cairn_expire(c->srv->db, srv_ns(c), KEY(1), &w);
  }
  if (rc == CAIRN_ENOTFOUND) {
    srv_write_abort(c);
    reply_int(c, 0);
    return 0;
  }
  if (rc) return write_failed(c, rc, try);
  reply_int(c, 1);
  notify(c, when <= now ? "del" : "expire", 1, NOTIFY_GENERIC);
  return 0;
}

static void expire_generic(struct client *c, long long unit, int abs,
                           const char *name) {
  long long v;
  unsigned flags;
  if (cmds_parse_ll(KEY(2), &v)) {
    reply_error(c, ERR_NOTINT);
    return;
  }
  if (parse_expire_flags(c, &flags)) return;
  long long base = abs ? 0 : cmds_now_ms();
  if ((unit == 1000 && (v > LLONG_MAX / 1000 || v < LLONG_MIN / 1000)) ||
      (v > 0 && v * unit > LLONG_MAX - base)) {
    reply_errorf(c, ERR_EXPIRE, name);
    return;
  }
  long long when = v * unit + base;
  for (int try = 0; try < RMW_TRIES; try++)
    if (!expire_once(c, flags, when, try)) return;
}

void cmd_expire(struct client *c) { expire_generic(c, 1000, 0, "expire"); }
void cmd_pexpire(struct client *c) { expire_generic(c, 1, 0, "pexpire"); }
void cmd_expireat(struct client *c) {
  expire_generic(c, 1000, 1, "expireat");
}
void cmd_pexpireat(struct client *c) {
  expire_generic(c, 1, 1, "pexpireat");
}

/* ------------------------------------------------------------------------
 * TTL, PTTL, EXPIRETIME, PEXPIRETIME, PERSIST
 * --------------------------------------------------------------------- */

/* rel: time left (else the absolute time); ms: in ms (else seconds). */
static void ttl_generic(struct client *c, int rel, int ms) {
  cairn_value v;
  int r = read_key(c, 1, &v);
  if (r <= 0) {
    if (r == 0) reply_int(c, -2);
    return;
  }
  long long at = v.expire_at_ms;
  cairn_value_free(&v);
  if (at == 0) {
    reply_int(c, -1);
    return;
  }
  if (!rel) {
    reply_int(c, ms ? at : at / 1000);
    return;
  }
  long long left = at - cmds_now_ms();
  if (left < 0) left = 0;
  reply_int(c, ms ? left : (left + 500) / 1000);
}

void cmd_ttl(struct client *c) { ttl_generic(c, 1, 0); }
void cmd_pttl(struct client *c) { ttl_generic(c, 1, 1); }
void cmd_expiretime(struct client *c) { ttl_generic(c, 0, 0); }
void cmd_pexpiretime(struct client *c) { ttl_generic(c, 0, 1); }

/* PERSIST clears the lifespan and the max-idle: afterwards the key has no
 * expiry at all, as Redis promises. */
void cmd_persist(struct client *c) {
  for (int try = 0; try < RMW_TRIES; try++) {
    cairn_value v;
    int r = read_key(c, 1, &v);
    if (r < 0) return;
    if (r == 0 || v.expire_at_ms == 0) {
      if (r) cairn_value_free(&v);
      reply_int(c, 0);
      return;
    }
    cairn_write base = {.cond = CAIRN_IF_VERSION, .version = v.version,
                        .flags = CAIRN_W_TTL | CAIRN_W_MAX_IDLE};
    cairn_value_free(&v);
    cairn_write w = srv_write(c, &base);
    int rc = cairn_expire(c->srv->db, srv_ns(c), KEY(1), &w);
    if (rc) {
      if (write_failed(c, rc, try)) continue;
      return;
    }
    reply_int(c, 1);
    notify(c, "persist", 1, NOTIFY_GENERIC);
    return;
  }
}

/* ------------------------------------------------------------------------
 * RENAME, RENAMENX
 * --------------------------------------------------------------------- */

/* The batch of a rename: delete the source as read (version), store its
 * value and expiry at the destination (if absent, for RENAMENX). */
static int rename_batch(struct client *c, const cairn_value *v, int nx,
                        cairn_batch **out) {
  cairn_batch *b;
  int rc = cairn_batch_new(c->srv->db, &b);
  if (rc) return rc;
  cairn_write dw = {.cond = CAIRN_IF_VERSION, .version = v->version};
  cairn_write pw = {.cond = nx ? CAIRN_IF_ABSENT : 0,
                    .flags = CAIRN_W_TTL | CAIRN_W_MAX_IDLE,
                    .max_idle_ms = v->max_idle_ms, .type = v->type};
  if (v->expire_at_ms) {
    long long left = v->expire_at_ms - cmds_now_ms();
    pw.ttl_ms = left > 0 ? (uint64_t)left : 1;
  }
  if ((rc = cairn_batch_del(b, srv_ns(c), KEY(1), &dw)) != 0 ||
      (rc = cairn_batch_put(b, srv_ns(c), KEY(2), v->data, v->len, &pw))) {
    cairn_batch_free(b);
    return rc;
  }
  *out = b;
  return 0;
}

/* One attempt; 1 to retry. */
static int rename_once(struct client *c, int nx, int try) {
  cairn_value v;
  int r = read_key(c, 1, &v);
  if (r <= 0) {
    if (r == 0) reply_error(c, ERR_NOKEY);
    return 0;
  }
  if (same_arg(c, 1, 2)) {
    cairn_value_free(&v);
    if (nx) reply_int(c, 0);
    else reply_ok(c);
    return 0;
  }
  cairn_batch *b;
  int rc = rename_batch(c, &v, nx, &b);
  cairn_value_free(&v);
  if (rc) {
    reply_engine_error(c, rc);
    return 0;
  }
  cairn_write w = srv_write(c, NULL);
  rc = cairn_batch_commit(b, &w);
  cairn_batch_free(b);
  if (rc == CAIRN_EEXISTS && nx) {
    srv_write_abort(c);
    reply_int(c, 0);
    return 0;
  }
  if (rc) return write_failed(c, rc, try);
  if (nx) reply_int(c, 1);
  else reply_ok(c);
  notify(c, "rename_from", 1, NOTIFY_GENERIC);
  notify(c, "rename_to", 2, NOTIFY_GENERIC);
  return 0;
}

void cmd_rename(struct client *c) {
  for (int try = 0; try < RMW_TRIES; try++)
    if (!rename_once(c, 0, try)) return;
}

void cmd_renamenx(struct client *c) {
  for (int try = 0; try < RMW_TRIES; try++)
    if (!rename_once(c, 1, try)) return;
}

/* COPY source destination [DB index] [REPLACE]: the value and its expiry,
 * into the current or another database. */
static int parse_copy(struct client *c, int *db, int *replace) {
  *db = c->db;
  *replace = 0;
  for (int i = 3; i < c->argc; i++) {
    long long v;
    if (!strcasecmp(c->argv[i], "replace")) {
      *replace = 1;
    } else if (!strcasecmp(c->argv[i], "db") && i + 1 < c->argc) {
      i++;
      if (cmds_parse_ll(KEY(i), &v)) {
        reply_error(c, ERR_NOTINT);
        return -1;
      }
      if (v < 0 || v >= (long long)SRV_DBS) {
        reply_error(c, ERR_DBINDEX);
        return -1;
      }
      *db = (int)v;
    } else {
      reply_error(c, ERR_SYNTAX);
      return -1;
    }
  }
  return 0;
}

void cmd_copy(struct client *c) {
  int db, replace;
  if (parse_copy(c, &db, &replace)) return;
  if (db == c->db && same_arg(c, 1, 2)) {
    reply_error(c, "ERR source and destination objects are the same");
    return;
  }
  cairn_value v;
  int r = read_key(c, 1, &v);
  if (r <= 0) {
    if (r == 0) reply_int(c, 0);
    return;
  }
  cairn_write base = {.cond = replace ? 0 : CAIRN_IF_ABSENT,
                      .flags = CAIRN_W_TTL | CAIRN_W_MAX_IDLE,
                      .max_idle_ms = v.max_idle_ms, .type = v.type};
  if (v.expire_at_ms) {
    long long left = v.expire_at_ms - cmds_now_ms();
    base.ttl_ms = left > 0 ? (uint64_t)left : 1;
  }
  cairn_write w = srv_write(c, &base);
  int rc = cairn_put(c->srv->db, config_ns_name(c->srv->cfg, db), KEY(2),
                     v.data, v.len, &w);
  cairn_value_free(&v);
  if (rc) {
    srv_write_abort(c);
    if (rc == CAIRN_EEXISTS) reply_int(c, 0);
    else reply_engine_error(c, rc);
    return;
  }
  reply_int(c, 1);
  pubsub_notify(c->srv, db, "copy_to", KEY(2), NOTIFY_GENERIC);
}

/* ------------------------------------------------------------------------
 * KEYS, SCAN, RANDOMKEY
 * --------------------------------------------------------------------- */

/* Keys collected by a scan callback, which may not call into the engine
 * (and so may not reply: the reply's length is known only at the end). */
struct keylist {
  char **k;
  size_t *l;
  size_t n, cap;
  int oom;
  const char *pat; /* NULL: every key */
  size_t plen;
  int type;        /* SCAN TYPE: CAIRN_TYPE_*, -1 any, -2 no such type */
};

static int keylist_add(struct keylist *kl, const void *key, size_t klen) {
  if (kl->n == kl->cap) {
    size_t cap = kl->cap ? kl->cap * 2 : 64;
    char **k = realloc(kl->k, cap * sizeof *k);
    if (!k) return -1;
    kl->k = k;
    size_t *l = realloc(kl->l, cap * sizeof *l);
    if (!l) return -1;
    kl->l = l;
    kl->cap = cap;
  }
  char *copy = malloc(klen ? klen : 1);
  if (!copy) return -1;
  memcpy(copy, key, klen);
  kl->k[kl->n] = copy;
  kl->l[kl->n++] = klen;
  return 0;
}

static void keylist_free(struct keylist *kl) {
  for (size_t i = 0; i < kl->n; i++) free(kl->k[i]);
  free(kl->k);
  free(kl->l);
}

static int collect_fn(void *arg, const void *key, size_t klen,
                      const void *val, size_t vlen, uint64_t version,
                      int64_t expire_at_ms) {
  (void)val, (void)vlen, (void)version, (void)expire_at_ms;
  struct keylist *kl = arg;
  if (kl->type == -2) return 0;
  if (kl->pat && !glob_match(kl->pat, kl->plen, key, klen, 0)) return 0;
  if (keylist_add(kl, key, klen)) {
    kl->oom = 1;
    return 1;
  }
  return 0;
}

static void reply_keys(struct client *c, const struct keylist *kl) {
  reply_array(c, kl->n);
  for (size_t i = 0; i < kl->n; i++) reply_bulk(c, kl->k[i], kl->l[i]);
}

void cmd_keys(struct client *c) {
  struct keylist kl = {0};
  int all = c->argvlen[1] == 1 && c->argv[1][0] == '*';
  if (!all) {
    kl.pat = c->argv[1];
    kl.plen = c->argvlen[1];
  }
  /* Every match starts with the pattern's literal prefix: let the engine
   * skip the rest. */
  size_t plen = glob_literal_prefix(c->argv[1], c->argvlen[1]);
  uint64_t cursor = 0;
  int rc;
  do {
    rc = cairn_scan(c->srv->db, srv_ns(c), c->argv[1], plen, &cursor,
                    SCAN_STEP, collect_fn, &kl);
  } while (rc == 0 && !kl.oom && cursor != 0);
  if (rc || kl.oom) reply_engine_error(c, rc ? rc : CAIRN_ENOMEM);
  else reply_keys(c, &kl);
  keylist_free(&kl);
}

/* Keep the keys of type kl->type.  The scan callback does not see types
 * and may not call into the engine, so the keys found are read again
 * here; one that went away meanwhile is dropped, as SCAN allows. */
static void keylist_filter_type(struct client *c, struct keylist *kl) {
  size_t out = 0;
  for (size_t i = 0; i < kl->n; i++) {
    cairn_value v;
    int keep = 0;
    if (cairn_get(c->srv->db, srv_ns(c), kl->k[i], kl->l[i], &v) == 0) {
      keep = v.type == kl->type;
      cairn_value_free(&v);
    }
    if (!keep) {
      free(kl->k[i]);
      continue;
    }
    kl->k[out] = kl->k[i];
    kl->l[out++] = kl->l[i];
  }
  kl->n = out;
}

/* SCAN's options after the cursor.  0 or -1 (replied). */
static int parse_scan_opts(struct client *c, struct keylist *kl,
                           long long *count) {
  *count = 10;
  for (int i = 2; i < c->argc; i += 2) {
    const char *o = c->argv[i];
    size_t ol = c->argvlen[i];
    if (i + 1 >= c->argc) goto syntax;
    if (ol == 5 && !strncasecmp(o, "count", 5)) {
      if (cmds_parse_ll(KEY(i + 1), count)) {
        reply_error(c, ERR_NOTINT);
        return -1;
      }
      if (*count < 1) goto syntax;
    } else if (ol == 5 && !strncasecmp(o, "match", 5)) {
      int all = c->argvlen[i + 1] == 1 && c->argv[i + 1][0] == '*';
      kl->pat = all ? NULL : c->argv[i + 1];
      kl->plen = c->argvlen[i + 1];
    } else if (ol == 4 && !strncasecmp(o, "type", 4)) {
      kl->type = -2;
      for (int t = CAIRN_TYPE_STRING; t <= CAIRN_TYPE_LIST; t++)
        if (!strcasecmp(c->argv[i + 1], type_name(t))) kl->type = t;
    } else {
      goto syntax;
    }
  }
  return 0;
syntax:
  reply_error(c, ERR_SYNTAX);
  return -1;
}

static int parse_cursor(const char *s, size_t n, uint64_t *out) {
  if (n == 0 || n > 20) return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    unsigned d = (unsigned)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return -1;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

void cmd_scan(struct client *c) {
  uint64_t cursor;
  if (parse_cursor(KEY(1), &cursor)) {
    reply_error(c, "ERR invalid cursor");
    return;
  }
  struct keylist kl = {.type = -1};
  long long count;
  if (parse_scan_opts(c, &kl, &count)) {
    keylist_free(&kl);
    return;
  }
  if (count > SCAN_COUNT_MAX) count = SCAN_COUNT_MAX;
  int rc = cairn_scan(c->srv->db, srv_ns(c), NULL, 0, &cursor,
                      (size_t)count, collect_fn, &kl);
  if (rc == CAIRN_EINVAL) {
    reply_error(c, "ERR invalid cursor");
  } else if (rc || kl.oom) {
    reply_engine_error(c, rc ? rc : CAIRN_ENOMEM);
  } else {
    if (kl.type >= 0) keylist_filter_type(c, &kl);
    char buf[24];
    int n = snprintf(buf, sizeof buf, "%llu", (unsigned long long)cursor);
    reply_array(c, 2);
    reply_bulk(c, buf, (size_t)n);
    reply_keys(c, &kl);
  }
  keylist_free(&kl);
}

/* Reservoir choice among the keys of the first RANDOM_ROUNDS scan steps
 * that find any: entries come in hash order, so that is a fair sample of
 * the keys without a full scan. */
struct pick {
  struct keylist kl;
  unsigned long seen;
};

static int pick_fn(void *arg, const void *key, size_t klen, const void *val,
                   size_t vlen, uint64_t version, int64_t expire_at_ms) {
  (void)val, (void)vlen, (void)version, (void)expire_at_ms;
  struct pick *p = arg;
  p->seen++;
  if (p->kl.n == 0) return collect_fn(&p->kl, key, klen, NULL, 0, 0, 0);
  if ((unsigned long)random() % p->seen != 0) return 0;
  char *copy = malloc(klen ? klen : 1);
  if (!copy) return 0;
  memcpy(copy, key, klen);
  free(p->kl.k[0]);
  p->kl.k[0] = copy;
  p->kl.l[0] = klen;
  return 0;
}

void cmd_randomkey(struct client *c) {
  struct pick p = {0};
  uint64_t cursor = 0;
  unsigned rounds = 0;
  int rc;
  do {
    rc = cairn_scan(c->srv->db, srv_ns(c), NULL, 0, &cursor, 256, pick_fn,
                    &p);
    if (p.kl.n) rounds++;
  } while (rc == 0 && !p.kl.oom && cursor != 0 && rounds < RANDOM_ROUNDS);
  if (rc || p.kl.oom) reply_engine_error(c, rc ? rc : CAIRN_ENOMEM);
  else if (p.kl.n == 0) reply_null(c);
  else reply_bulk(c, p.kl.k[0], p.kl.l[0]);
  keylist_free(&p.kl);
}

/* ------------------------------------------------------------------------
 * OBJECT
 * --------------------------------------------------------------------- */

/* Redis's names for the representation it would choose: small
 * collections are listpacks (its default thresholds: 128 entries). */
static const char *encoding_of(const cairn_value *v) {
  long long ll;
  if (v->type == CAIRN_TYPE_STRING) {
    if (v->len <= 20 && cmds_parse_ll(v->data, v->len, &ll) == 0) return "int";
    return v->len <= 44 ? "embstr" : "raw";
  }
  const unsigned char *p = v->data;
  uint32_t n = v->len >= 4 ? (uint32_t)p[0] | (uint32_t)p[1] << 8 |
                                 (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
                           : 0;
  if (n <= 128) return "listpack";
  switch (v->type) {
  case CAIRN_TYPE_HASH: return "hashtable";
  case CAIRN_TYPE_SET: return "hashtable";
  case CAIRN_TYPE_ZSET: return "skiplist";
  default: return "quicklist";
  }
}

static void object_help(struct client *c) {
  static const char *const lines[] = {
      "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
      "ENCODING <key>",
      "    Return the kind of internal representation used in order to store the value",
      "    associated with a <key>.",
      "FREQ <key>",
      "    Return the access frequency index of the <key>. The returned integer is",
      "    proportional to the logarithm of the recent access frequency of the key.",
      "IDLETIME <key>",
      "    Return the idle time of the <key>, that is the approximated number of",
      "    seconds elapsed since the last access to the key.",
      "REFCOUNT <key>",
      "    Return the number of references of the value associated with the specified",
      "    <key>.",
      "HELP",
      "    Print this help.",
      NULL,
  };
  reply_help(c, lines);
}

void cmd_object(struct client *c) {
  const char *sub = c->argv[1];
  if (c->argc == 2 && !strcasecmp(sub, "help")) {
    object_help(c);
    return;
  }
  int enc = !strcasecmp(sub, "encoding"), ref = !strcasecmp(sub, "refcount");
  int idle = !strcasecmp(sub, "idletime"), freq = !strcasecmp(sub, "freq");
  if (!enc && !ref && !idle && !freq) {
    reply_errorf(c, "ERR unknown subcommand '%.128s'. Try OBJECT HELP.", sub);
    return;
  }
  if (c->argc != 3) {
    reply_errorf(c, "ERR wrong number of arguments for 'object|%s' command",
                 enc ? "encoding" : ref ? "refcount" : idle ? "idletime"
                                                         : "freq");
    return;
  }
  cairn_value v;
  int r = read_key(c, 2, &v);
  if (r <= 0) {
    if (r == 0) reply_null(c);
    return;
  }
  if (enc) {
    reply_cstr(c, encoding_of(&v));
  } else if (ref) {
    reply_int(c, 1);
  } else if (idle) {
    reply_int(c, 0); /* the engine does not expose the last access */
  } else {
    reply_error(c, "ERR An LFU maxmemory policy is not selected, access "
                   "frequency not tracked. Please note that when switching "
                   "between policies at runtime LRU and LFU data will take "
                   "some time to adjust.");
  }
  cairn_value_free(&v);
}
