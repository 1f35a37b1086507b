/*
 * cmd_string.c - the string commands: GET, SET and its variants, MGET,
 * MSET, APPEND, ranges and counters, with Redis's parsing, replies and
 * error texts.
 *
 * Every write goes through srv_write, so its reply is held until the write
 * is durable.  A read-modify-write (SET GET, APPEND, SETRANGE,
 * INCRBYFLOAT) reads the entry, then writes under CAIRN_IF_VERSION with
 * the version it read: commands run on one thread, but the engine's expiry
 * thread runs beside it, and an entry may die between the read and the
 * write.  Such a lost race is retried a few times (RMW_TRIES).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cmds_data.h"
#include "srv_config.h"
#include "server.h"

#define RMW_TRIES 4
/* Redis's proto-max-bulk-len bound on strings built by SETRANGE/APPEND. */
#define STRING_BYTES_MAX (512ll * 1024 * 1024)
#define ERR_BIGSTRING \
  "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
#define LD_CHARS_MAX (5 * 1024)

/* ------------------------------------------------------------------------
 * Shared helpers
 * --------------------------------------------------------------------- */

int cmds_parse_ll(const char *s, size_t n, long long *out) {
  if (n == 0 || n > 20) return -1;
  size_t i = 0;
  int neg = 0;
  if (s[0] == '-') {
    neg = 1;
    if (++i == n) return -1;
  }
  if (n == 1 && s[0] == '0') {
    *out = 0;
    return 0;
  }
  if (s[i] < '1' || s[i] > '9') return -1;
  unsigned long long v = 0;
  for (; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    if (v > (ULLONG_MAX - 9) / 10) return -1;
    v = v * 10 + (unsigned)(s[i] - '0');
  }
  if (neg) {
    if (v > (unsigned long long)LLONG_MAX + 1) return -1;
    *out = v == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN
                                                    : -(long long)v;
  } else {
    if (v > (unsigned long long)LLONG_MAX) return -1;
    *out = (long long)v;
  }
  return 0;
}

int cmds_parse_ld(const char *s, size_t n, long double *out) {
  char buf[LD_CHARS_MAX];
  if (n == 0 || n >= sizeof buf) return -1;
  memcpy(buf, s, n);
  buf[n] = '\0';
  if (isspace((unsigned char)buf[0])) return -1;
  errno = 0;
  char *end;
  long double v = strtold(buf, &end);
  if ((size_t)(end - buf) != n) return -1;
  if (errno == ERANGE &&
      (v == HUGE_VALL || v == -HUGE_VALL || fpclassify(v) == FP_ZERO))
    return -1;
  if (isnan(v)) return -1;
  *out = v;
  return 0;
}

long long cmds_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define KEY(i) c->argv[(i)], c->argvlen[(i)]

/* Read the string at key into *v: 1 found, 0 missing, -1 error (replied;
 * WRONGTYPE for a collection). */
static int read_key(struct client *c, const char *k, size_t kl,
                    cairn_value *v) {
  int rc = cairn_get(c->srv->db, srv_ns(c), k, kl, v);
  if (rc == 0) {
    c->srv->stat_keyspace_hits++;
    if (v->type == CAIRN_TYPE_STRING) return 1;
    cairn_value_free(v);
    reply_error(c, ERR_WRONGTYPE);
    return -1;
  }
  if (rc == CAIRN_ENOTFOUND) {
    c->srv->stat_keyspace_misses++;
    return 0;
  }
  reply_engine_error(c, rc);
  return -1;
}

static void notify(struct client *c, const char *event, int kidx,
                   unsigned type) {
  pubsub_notify(c->srv, c->db, event, KEY(kidx), type);
}

/* Write failed with rc after srv_write: drop the hold.  1 if the caller
 * should retry (a lost race with expiry), else 0 with the error
 * replied. */
static int write_failed(struct client *c, int rc, int try) {
  srv_write_abort(c);
  if (rc == CAIRN_EVERSION && try + 1 < RMW_TRIES) return 1;
  reply_engine_error(c, rc);
  return 0;
}

/* ------------------------------------------------------------------------
 * GET and SET
 * --------------------------------------------------------------------- */

void cmd_get(struct client *c) {
  cairn_value v;
  int r = read_key(c, KEY(1), &v);
  if (r < 0) return;
  if (r == 0) {
    reply_null(c);
    return;
  }
  reply_bulk(c, v.data, v.len);
  cairn_value_free(&v);
}

enum { SET_NX = 1, SET_XX = 2, SET_GET = 4, SET_KEEPTTL = 8, SET_EXP = 16 };
enum { REPLY_OK, REPLY_INT, REPLY_OLD };

struct set_args {
  unsigned flags;
  long long ttl_ms;   /* with SET_EXP: > 0 lifespan, <= 0 already expired */
};

/* Parse an expire argument: unit 1000 (seconds) or 1 (ms), absolute or
 * relative, into a lifespan from now.  0 or -1 (replied). */
static int parse_expire(struct client *c, int idx, long long unit, int abs,
                        const char *cmdname, long long *ttl_ms) {
  long long v;
  if (cmds_parse_ll(KEY(idx), &v)) {
    reply_error(c, ERR_NOTINT);
    return -1;
  }
  long long now = cmds_now_ms();
  if (v <= 0 || (unit == 1000 && v > LLONG_MAX / 1000)) goto bad;
  v *= unit;
  if (!abs && v > LLONG_MAX - now) goto bad;
  *ttl_ms = abs ? v - now : v;
  return 0;
bad:
  reply_errorf(c, ERR_EXPIRE, cmdname);
  return -1;
}

/* SET's options after key and value. */
static int parse_set_args(struct client *c, struct set_args *a) {
  a->flags = 0;
  for (int i = 3; i < c->argc; i++) {
    const char *o = c->argv[i];
    size_t ol = c->argvlen[i];
    int last = i + 1 == c->argc;
    long long unit = 0;
    int abs = 0;
    if (ol == 2 && !strncasecmp(o, "nx", 2) && !(a->flags & SET_XX)) {
      a->flags |= SET_NX;
    } else if (ol == 2 && !strncasecmp(o, "xx", 2) && !(a->flags & SET_NX)) {
      a->flags |= SET_XX;
    } else if (ol == 3 && !strncasecmp(o, "get", 3)) {
      a->flags |= SET_GET;
    } else if (ol == 7 && !strncasecmp(o, "keepttl", 7) &&
               !(a->flags & SET_EXP)) {
      a->flags |= SET_KEEPTTL;
    } else if (ol == 2 && !strncasecmp(o, "ex", 2)) {
      unit = 1000;
    } else if (ol == 2 && !strncasecmp(o, "px", 2)) {
      unit = 1;
    } else if (ol == 4 && !strncasecmp(o, "exat", 4)) {
      unit = 1000, abs = 1;
    } else if (ol == 4 && !strncasecmp(o, "pxat", 4)) {
      unit = 1, abs = 1;
    } else {
      reply_error(c, ERR_SYNTAX);
      return -1;
    }
    if (!unit) continue;
    if (last || (a->flags & (SET_KEEPTTL | SET_EXP))) {
      reply_error(c, ERR_SYNTAX);
      return -1;
    }
    if (parse_expire(c, ++i, unit, abs, "set", &a->ttl_ms)) return -1;
    a->flags |= SET_EXP;
  }
  return 0;
}

static void set_reply(struct client *c, int kind, int done,
                      const cairn_value *old, int have_old) {
  if (kind == REPLY_INT) {
    reply_int(c, done);
  } else if (kind == REPLY_OLD) {
    if (have_old) reply_bulk(c, old->data, old->len);
    else reply_null(c);
  } else if (done) {
    reply_ok(c);
  } else {
    reply_null(c);
  }
}

/* A SET whose absolute expiry has passed: Redis stores then deletes at
 * once, so the key ends up gone, under the same NX / XX conditions.
 * Returns 1 to retry. */
static int set_expired(struct client *c, int k, const cairn_write *base,
                       int kind, const cairn_value *old, int have_old,
                       int try) {
  int done = 1;
  if (have_old || !(base->cond & CAIRN_IF_VERSION)) {
    cairn_write w = srv_write(c, base);
    int rc = cairn_del(c->srv->db, srv_ns(c), KEY(k), &w);
    if (rc == CAIRN_EEXISTS || rc == CAIRN_ENOTFOUND) {
      srv_write_abort(c);
      /* NX on a live key, or XX on a missing one: nothing happens; a
       * missing key otherwise is simply already gone. */
      done = rc == CAIRN_ENOTFOUND && !(base->cond & CAIRN_IF_PRESENT);
    } else if (rc) {
      return write_failed(c, rc, try);
    }
  }
  set_reply(c, kind, done, old, have_old);
  if (done) {
    notify(c, "set", k, NOTIFY_STRING);
    notify(c, "del", k, NOTIFY_GENERIC);
  }
  return 0;
}

/* One attempt of a SET of argv[k] = argv[vi].  Returns 1 to retry. */
static int set_once(struct client *c, int k, int vi, const struct set_args *a,
                    int kind, int try) {
  cairn_value old = {0};
  int have_old = 0;
  cairn_write base = {0};
  if (a->flags & SET_GET) {
    if ((have_old = read_key(c, KEY(k), &old)) < 0) return 0;
    if (((a->flags & SET_NX) && have_old) || ((a->flags & SET_XX) && !have_old)) {
      set_reply(c, kind, 0, &old, have_old);
      cairn_value_free(&old);
      return 0;
    }
    base.cond = CAIRN_IF_VERSION;
    base.version = have_old ? old.version : 0;
  } else if (a->flags & SET_NX) {
    base.cond = CAIRN_IF_ABSENT;
  } else if (a->flags & SET_XX) {
    base.cond = CAIRN_IF_PRESENT;
  }
  int retry;
  if ((a->flags & SET_EXP) && a->ttl_ms <= 0) {
    retry = set_expired(c, k, &base, kind, &old, have_old, try);
    cairn_value_free(&old);
    return retry;
  }
  if (a->flags & SET_KEEPTTL) base.flags |= CAIRN_W_KEEP_TTL;
  if (a->flags & SET_EXP) {
    base.flags |= CAIRN_W_TTL;
    base.ttl_ms = (uint64_t)a->ttl_ms;
  }
  cairn_write w = srv_write(c, &base);
  int rc = cairn_put(c->srv->db, srv_ns(c), KEY(k), KEY(vi), &w);
  retry = 0;
  if (rc == CAIRN_EEXISTS || rc == CAIRN_ENOTFOUND) {
    srv_write_abort(c);
    set_reply(c, kind, 0, &old, have_old);
  } else if (rc) {
    retry = write_failed(c, rc, try);
  } else {
    set_reply(c, kind, 1, &old, have_old);
    notify(c, "set", k, NOTIFY_STRING);
    if (a->flags & SET_EXP) notify(c, "expire", k, NOTIFY_GENERIC);
  }
  cairn_value_free(&old);
  return retry;
}

static void set_generic(struct client *c, int k, int vi,
                        const struct set_args *a, int kind) {
  if (c->argvlen[vi] > CAIRN_VALUE_MAX) {
    reply_error(c, ERR_BIGSTRING);
    return;
  }
  for (int try = 0; try < RMW_TRIES; try++)
    if (!set_once(c, k, vi, a, kind, try)) return;
}

void cmd_set(struct client *c) {
  struct set_args a;
  if (parse_set_args(c, &a)) return;
  set_generic(c, 1, 2, &a, (a.flags & SET_GET) ? REPLY_OLD : REPLY_OK);
}

void cmd_setnx(struct client *c) {
  struct set_args a = {.flags = SET_NX};
  set_generic(c, 1, 2, &a, REPLY_INT);
}

static void setex_generic(struct client *c, long long unit,
                          const char *name) {
  struct set_args a = {.flags = SET_EXP};
  if (parse_expire(c, 2, unit, 0, name, &a.ttl_ms)) return;
  set_generic(c, 1, 3, &a, REPLY_OK);
}

void cmd_setex(struct client *c) { setex_generic(c, 1000, "setex"); }
void cmd_psetex(struct client *c) { setex_generic(c, 1, "psetex"); }

void cmd_getset(struct client *c) {
  struct set_args a = {.flags = SET_GET};
  set_generic(c, 1, 2, &a, REPLY_OLD);
}

/* ------------------------------------------------------------------------
 * GETDEL, GETEX
 * --------------------------------------------------------------------- */

/* GETDEL reads first, so that a collection answers WRONGTYPE and stays;
 * the take is then conditional on the version read. */
void cmd_getdel(struct client *c) {
  for (int try = 0; try < RMW_TRIES; try++) {
    cairn_value v;
    int r = read_key(c, KEY(1), &v);
    if (r <= 0) {
      if (r == 0) reply_null(c);
      return;
    }
    cairn_write base = {.cond = CAIRN_IF_VERSION, .version = v.version};
    cairn_value_free(&v);
    cairn_write w = srv_write(c, &base);
    int rc = cairn_take(c->srv->db, srv_ns(c), KEY(1), &v, &w);
    if (rc == CAIRN_ENOTFOUND) {
      srv_write_abort(c);
      reply_null(c);
      return;
    }
    if (rc) {
      if (write_failed(c, rc, try)) continue;
      return;
    }
    reply_bulk(c, v.data, v.len);
    cairn_value_free(&v);
    notify(c, "del", 1, NOTIFY_GENERIC);
    return;
  }
}

/* GETEX's options: 0 none, 1 expire (ttl in *ttl_ms), 2 PERSIST; -1 on
 * error (replied). */
static int parse_getex(struct client *c, long long *ttl_ms) {
  if (c->argc == 2) return 0;
  const char *o = c->argv[2];
  size_t ol = c->argvlen[2];
  if (c->argc == 3 && ol == 7 && !strncasecmp(o, "persist", 7)) return 2;
  long long unit = 0;
  int abs = 0;
  if (ol == 2 && !strncasecmp(o, "ex", 2)) unit = 1000;
  else if (ol == 2 && !strncasecmp(o, "px", 2)) unit = 1;
  else if (ol == 4 && !strncasecmp(o, "exat", 4)) unit = 1000, abs = 1;
  else if (ol == 4 && !strncasecmp(o, "pxat", 4)) unit = 1, abs = 1;
  if (!unit || c->argc != 4) {
    reply_error(c, ERR_SYNTAX);
    return -1;
  }
  return parse_expire(c, 3, unit, abs, "getex", ttl_ms) ? -1 : 1;
}

/* One attempt of GETEX's write, with the value in v.  1 to retry. */
static int getex_once(struct client *c, int op, long long ttl_ms,
                      const cairn_value *v, int try) {
  cairn_write base = {.cond = CAIRN_IF_VERSION, .version = v->version};
  const char *event;
  int rc;
  if (op == 2 && v->expire_at_ms == 0) {
    reply_bulk(c, v->data, v->len);
    return 0;
  }
  if (op == 1 && ttl_ms <= 0) {
    cairn_write w = srv_write(c, &base);
    rc = cairn_del(c->srv->db, srv_ns(c), KEY(1), &w);
    event = "del";
  } else {
    base.flags = CAIRN_W_TTL;
    base.ttl_ms = op == 1 ? (uint64_t)ttl_ms : 0;
    if (op == 2) base.flags |= CAIRN_W_MAX_IDLE;
    cairn_write w = srv_write(c, &base);
    rc = cairn_expire(c->srv->db, srv_ns(c), KEY(1), &w);
    event = op == 1 ? "expire" : "persist";
  }
  if (rc) return write_failed(c, rc, try);
  reply_bulk(c, v->data, v->len);
  notify(c, event, 1, NOTIFY_GENERIC);
  return 0;
}

void cmd_getex(struct client *c) {
  long long ttl_ms = 0;
  int op = parse_getex(c, &ttl_ms);
  if (op < 0) return;
  for (int try = 0; try < RMW_TRIES; try++) {
    cairn_value v;
    int r = read_key(c, KEY(1), &v);
    if (r < 0) return;
    if (r == 0) {
      reply_null(c);
      return;
    }
    int retry = 0;
    if (op == 0) reply_bulk(c, v.data, v.len);
    else retry = getex_once(c, op, ttl_ms, &v, try);
    cairn_value_free(&v);
    if (!retry) return;
  }
}

/* ------------------------------------------------------------------------
 * MGET, MSET, MSETNX
 * --------------------------------------------------------------------- */

void cmd_mget(struct client *c) {
  reply_array(c, (size_t)c->argc - 1);
  for (int i = 1; i < c->argc; i++) {
    cairn_value v;
    int rc = cairn_get(c->srv->db, srv_ns(c), KEY(i), &v);
    if (rc || v.type != CAIRN_TYPE_STRING) {
      /* Redis answers nil for a missing key or one of another type;
       * an engine failure cannot be reported inside the array either. */
      if (!rc) cairn_value_free(&v);
      reply_null(c);
      continue;
    }
    reply_bulk(c, v.data, v.len);
    cairn_value_free(&v);
  }
}

static void mset_generic(struct client *c, int nx) {
  if (c->argc % 2 == 0) {
    reply_errorf(c, "ERR wrong number of arguments for '%s' command",
                 nx ? "msetnx" : "mset");
    return;
  }
  cairn_batch *b = NULL;
  int rc = cairn_batch_new(c->srv->db, &b);
  cairn_write kw = {.cond = nx ? CAIRN_IF_ABSENT : 0};
  for (int i = 1; rc == 0 && i < c->argc; i += 2)
    rc = cairn_batch_put(b, srv_ns(c), KEY(i), KEY(i + 1), &kw);
  if (rc) {
    cairn_batch_free(b);
    reply_engine_error(c, rc);
    return;
  }
  cairn_write w = srv_write(c, NULL);
  rc = cairn_batch_commit(b, &w);
  cairn_batch_free(b);
  if (rc) {
    srv_write_abort(c);
    if (nx && rc == CAIRN_EEXISTS) reply_int(c, 0);
    else reply_engine_error(c, rc);
    return;
  }
  if (nx) reply_int(c, 1);
  else reply_ok(c);
  for (int i = 1; i < c->argc; i += 2) notify(c, "set", i, NOTIFY_STRING);
}

void cmd_mset(struct client *c) { mset_generic(c, 0); }
void cmd_msetnx(struct client *c) { mset_generic(c, 1); }

/* ------------------------------------------------------------------------
 * APPEND, STRLEN, GETRANGE, SETRANGE
 * --------------------------------------------------------------------- */

/* Store buf as argv[1]'s new value under IF_VERSION version, keeping its
 * expiry, then reply reply_len.  1 to retry. */
static int rmw_put(struct client *c, uint64_t version, const void *buf,
                   size_t len, long long reply_len, const char *event,
                   int try) {
  cairn_write base = {.cond = CAIRN_IF_VERSION, .version = version,
                      .flags = CAIRN_W_KEEP_TTL};
  cairn_write w = srv_write(c, &base);
  int rc = cairn_put(c->srv->db, srv_ns(c), KEY(1), buf, len, &w);
  if (rc) return write_failed(c, rc, try);
  reply_int(c, reply_len);
  notify(c, event, 1, NOTIFY_STRING);
  return 0;
}

/* Build old[0..oldlen) with src written at off (zero-padded) into a new
 * buffer.  NULL if out of memory. */
static char *splice(const cairn_value *old, int have_old, size_t off,
                    const char *src, size_t n, size_t *len) {
  size_t oldlen = have_old ? old->len : 0;
  size_t total = off + n > oldlen ? off + n : oldlen;
  char *buf = malloc(total ? total : 1);
  if (!buf) return NULL;
  if (oldlen) memcpy(buf, old->data, oldlen);
  if (off > oldlen) memset(buf + oldlen, 0, off - oldlen);
  memcpy(buf + off, src, n);
  *len = total;
  return buf;
}

/* APPEND is SETRANGE at the end.  off < 0 means "at the end". */
static void setrange_generic(struct client *c, long long off,
                             const char *event) {
  const char *src = c->argv[c->argc - 1];
  size_t n = c->argvlen[c->argc - 1];
  for (int try = 0; try < RMW_TRIES; try++) {
    cairn_value v = {0};
    int have = read_key(c, KEY(1), &v);
    if (have < 0) return;
    long long at = off < 0 ? (have ? (long long)v.len : 0) : off;
    long long oldlen = have ? (long long)v.len : 0;
    if (n == 0 && (off >= 0 || !have)) {
      /* Nothing to write: SETRANGE does not create a key for it. */
      reply_int(c, oldlen);
      cairn_value_free(&v);
      return;
    }
    if (at + (long long)n > STRING_BYTES_MAX ||
        at + (long long)n > (long long)CAIRN_VALUE_MAX) {
      cairn_value_free(&v);
      reply_error(c, ERR_BIGSTRING);
      return;
    }
    size_t len;
    char *buf = splice(&v, have, (size_t)at, src, n, &len);
    uint64_t version = have ? v.version : 0;
    cairn_value_free(&v);
    if (!buf) {
      reply_engine_error(c, CAIRN_ENOMEM);
      return;
    }
    int retry = rmw_put(c, version, buf, len, (long long)len, event, try);
    free(buf);
    if (!retry) return;
  }
}

void cmd_append(struct client *c) { setrange_generic(c, -1, "append"); }

void cmd_setrange(struct client *c) {
  long long off;
  if (cmds_parse_ll(KEY(2), &off)) {
    reply_error(c, ERR_NOTINT);
    return;
  }
  if (off < 0) {
    reply_error(c, "ERR offset is out of range");
    return;
  }
  setrange_generic(c, off, "setrange");
}

void cmd_strlen(struct client *c) {
  cairn_value v;
  int r = read_key(c, KEY(1), &v);
  if (r < 0) return;
  reply_int(c, r ? (long long)v.len : 0);
  if (r) cairn_value_free(&v);
}

void cmd_getrange(struct client *c) {
  long long start, end;
  if (cmds_parse_ll(KEY(2), &start) || cmds_parse_ll(KEY(3), &end)) {
    reply_error(c, ERR_NOTINT);
    return;
  }
  cairn_value v;
  int r = read_key(c, KEY(1), &v);
  if (r < 0) return;
  long long len = r ? (long long)v.len : 0;
  if (start < 0 && end < 0 && start > end) len = 0;
  if (start < 0) start += len;
  if (end < 0) end += len;
  if (start < 0) start = 0;
  if (end < 0) end = 0;
  if (end >= len) end = len - 1;
  if (len == 0 || start > end) reply_bulk(c, "", 0);
  else reply_bulk(c, (char *)v.data + start, (size_t)(end - start + 1));
  if (r) cairn_value_free(&v);
}

void cmd_substr(struct client *c) { cmd_getrange(c); }

/* ------------------------------------------------------------------------
 * Counters
 * --------------------------------------------------------------------- */

static void incr_generic(struct client *c, long long delta) {
  int64_t result;
  cairn_write w = srv_write(c, NULL);
  int rc = cairn_incr(c->srv->db, srv_ns(c), KEY(1), delta, &result, &w);
  if (rc) {
    srv_write_abort(c);
    if (rc == CAIRN_ENOTNUM) reply_error(c, ERR_NOTINT);
    else if (rc == CAIRN_ETYPE) reply_error(c, ERR_WRONGTYPE);
    else if (rc == CAIRN_EOVERFLOW) reply_error(c, ERR_OVERFLOW);
    else reply_engine_error(c, rc);
    return;
  }
  reply_int(c, result);
  notify(c, "incrby", 1, NOTIFY_STRING);
}

void cmd_incr(struct client *c) { incr_generic(c, 1); }
void cmd_decr(struct client *c) { incr_generic(c, -1); }

void cmd_incrby(struct client *c) {
  long long d;
  if (cmds_parse_ll(KEY(2), &d)) {
    reply_error(c, ERR_NOTINT);
    return;
  }
  incr_generic(c, d);
}

void cmd_decrby(struct client *c) {
  long long d;
  if (cmds_parse_ll(KEY(2), &d)) {
    reply_error(c, ERR_NOTINT);
    return;
  }
  if (d == LLONG_MIN) {
    reply_error(c, "ERR decrement would overflow");
    return;
  }
  incr_generic(c, -d);
}

/* Redis's human format for INCRBYFLOAT: 17 digits after the point, then
 * trailing zeros (and a bare point) trimmed, "-0" as "0". */
static int format_ld(char *buf, size_t cap, long double v) {
  int l = snprintf(buf, cap, "%.17Lf", v);
  if (l < 0 || (size_t)l + 1 > cap) return -1;
  if (strchr(buf, '.')) {
    while (buf[l - 1] == '0') l--;
    if (buf[l - 1] == '.') l--;
  }
  if (l == 2 && buf[0] == '-' && buf[1] == '0') {
    buf[0] = '0';
    l = 1;
  }
  buf[l] = '\0';
  return l;
}

void cmd_incrbyfloat(struct client *c) {
  long double incr, cur = 0;
  if (cmds_parse_ld(KEY(2), &incr)) {
    reply_error(c, ERR_NOTFLOAT);
    return;
  }
  for (int try = 0; try < RMW_TRIES; try++) {
    cairn_value v = {0};
    int have = read_key(c, KEY(1), &v);
    if (have < 0) return;
    cur = 0;
    if (have && cmds_parse_ld(v.data, v.len, &cur)) {
      cairn_value_free(&v);
      reply_error(c, ERR_NOTFLOAT);
      return;
    }
    uint64_t version = have ? v.version : 0;
    cairn_value_free(&v);
    long double sum = cur + incr;
    if (isnan(sum) || isinf(sum)) {
      reply_error(c, "ERR increment would produce NaN or Infinity");
      return;
    }
    char buf[LD_CHARS_MAX];
    int l = format_ld(buf, sizeof buf, sum);
    if (l < 0) {
      reply_error(c, ERR_NOTFLOAT);
      return;
    }
    cairn_write base = {.cond = CAIRN_IF_VERSION, .version = version,
                        .flags = CAIRN_W_KEEP_TTL};
    cairn_write w = srv_write(c, &base);
    int rc = cairn_put(c->srv->db, srv_ns(c), KEY(1), buf, (size_t)l, &w);
    if (rc) {
      if (write_failed(c, rc, try)) continue;
      return;
    }
    reply_bulk(c, buf, (size_t)l);
    notify(c, "incrbyfloat", 1, NOTIFY_STRING);
    return;
  }
}
