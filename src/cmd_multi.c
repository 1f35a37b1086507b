/*
 * cmd_multi.c - MULTI, EXEC, DISCARD, WATCH, UNWATCH.
 *
 * Between MULTI and EXEC the dispatcher hands each command to multi_queue,
 * which copies its words.  EXEC runs them in order through cmd_call inside
 * one engine write group (cairn_group_begin / cairn_group_end), so the
 * writes of one EXEC reach the log as one frame and recovery applies all
 * of them or none.  Every write inside goes through srv_write, which makes
 * it asynchronous as a group requires.
 *
 * WATCH works by versions rather than by hooks in every write path: it
 * remembers each key's version (0 when missing), and EXEC reads them
 * again.  Any write to a key gives it a new version (its LSN), and a key
 * that expired or was deleted reads as 0, so every change Redis would
 * count, including one made by the watching client itself, aborts EXEC.
 */
#include <stdlib.h>
#include <string.h>

#include "cmds_data.h"
#include "server.h"

/* Bounds, like Redis's: a transaction is held in memory until EXEC. */
#define MULTI_CMDS_MAX (1024u * 1024u)
#define WATCH_KEYS_MAX (1024u * 1024u)

struct queued {
  const struct cmd *cmd;
  int argc;
  const char **argv;       /* each NUL-terminated, one allocation each */
  size_t *argvlen;
};

struct mqueue {
  struct queued *q;
  size_t n, cap;
};

struct watched_key {
  int db;
  uint64_t version;
  size_t len;
  char *key;
};

struct wlist {
  struct watched_key *k;
  size_t n, cap;
};

/* ------------------------------------------------------------------------
 * The queue
 * --------------------------------------------------------------------- */

static void queued_free(struct queued *q) {
  for (int i = 0; i < q->argc; i++) free((char *)q->argv[i]);
  free(q->argv);
  free(q->argvlen);
}

static void queue_free(struct client *c) {
  struct mqueue *mq = c->multi_queue;
  if (!mq) return;
  for (size_t i = 0; i < mq->n; i++) queued_free(&mq->q[i]);
  free(mq->q);
  free(mq);
  c->multi_queue = NULL;
}

static int queued_copy(struct client *c, const struct cmd *cmd,
                       struct queued *q) {
  size_t n = (size_t)c->argc;
  q->cmd = cmd;
  q->argc = 0;
  q->argv = calloc(n, sizeof *q->argv);
  q->argvlen = calloc(n, sizeof *q->argvlen);
  if (!q->argv || !q->argvlen) goto oom;
  for (int i = 0; i < c->argc; i++) {
    char *a = malloc(c->argvlen[i] + 1);
    if (!a) goto oom;
    memcpy(a, c->argv[i], c->argvlen[i]);
    a[c->argvlen[i]] = '\0';
    q->argv[i] = a;
    q->argvlen[i] = c->argvlen[i];
    q->argc = i + 1;
  }
  return 0;
oom:
  queued_free(q);
  return -1;
}

void multi_queue(struct client *c, const struct cmd *cmd) {
  struct mqueue *mq = c->multi_queue;
  if (!mq && !(mq = c->multi_queue = calloc(1, sizeof *mq))) goto oom;
  if (mq->n >= MULTI_CMDS_MAX) {
    c->multi_error = 1;
    reply_error(c, "ERR too many commands in this transaction");
    return;
  }
  if (mq->n == mq->cap) {
    size_t cap = mq->cap ? mq->cap * 2 : 8;
    struct queued *q = realloc(mq->q, cap * sizeof *q);
    if (!q) goto oom;
    mq->q = q;
    mq->cap = cap;
  }
  if (queued_copy(c, cmd, &mq->q[mq->n])) goto oom;
  mq->n++;
  reply_status(c, "QUEUED");
  return;
oom:
  c->multi_error = 1;
  reply_engine_error(c, CAIRN_ENOMEM);
}

/* ------------------------------------------------------------------------
 * Watched keys
 * --------------------------------------------------------------------- */

static void unwatch_all(struct client *c) {
  struct wlist *wl = c->watched;
  if (!wl) return;
  for (size_t i = 0; i < wl->n; i++) free(wl->k[i].key);
  free(wl->k);
  free(wl);
  c->watched = NULL;
  c->dirty_cas = 0;
}

/* A key's version now: 0 when missing.  -1 on an engine error. */
static int key_version(struct client *c, const char *key, size_t len,
                       uint64_t *version) {
  cairn_value v;
  int rc = cairn_get(c->srv->db, srv_ns(c), key, len, &v);
  if (rc == CAIRN_ENOTFOUND) {
    *version = 0;
    return 0;
  }
  if (rc) return -1;
  *version = v.version;
  cairn_value_free(&v);
  return 0;
}

static int watch_one(struct client *c, struct wlist *wl, int i) {
  for (size_t j = 0; j < wl->n; j++)
    if (wl->k[j].db == c->db && wl->k[j].len == c->argvlen[i] &&
        !memcmp(wl->k[j].key, c->argv[i], c->argvlen[i]))
      return 0; /* already watched: keep the first version seen */
  if (wl->n >= WATCH_KEYS_MAX) return CAIRN_ENOMEM;
  if (wl->n == wl->cap) {
    size_t cap = wl->cap ? wl->cap * 2 : 8;
    struct watched_key *k = realloc(wl->k, cap * sizeof *k);
    if (!k) return CAIRN_ENOMEM;
    wl->k = k;
    wl->cap = cap;
  }
  struct watched_key *w = &wl->k[wl->n];
  int rc = key_version(c, c->argv[i], c->argvlen[i], &w->version);
  if (rc) return CAIRN_EIO;
  if (!(w->key = malloc(c->argvlen[i] ? c->argvlen[i] : 1)))
    return CAIRN_ENOMEM;
  memcpy(w->key, c->argv[i], c->argvlen[i]);
  w->len = c->argvlen[i];
  w->db = c->db;
  wl->n++;
  return 0;
}

void cmd_watch(struct client *c) {
  if (c->in_multi) {
    reply_error(c, "ERR WATCH inside MULTI is not allowed");
    return;
  }
  struct wlist *wl = c->watched;
  if (!wl && !(wl = c->watched = calloc(1, sizeof *wl))) {
    reply_engine_error(c, CAIRN_ENOMEM);
    return;
  }
  for (int i = 1; i < c->argc; i++) {
    int rc = watch_one(c, wl, i);
    if (rc) {
      reply_engine_error(c, rc);
      return;
    }
  }
  reply_ok(c);
}

void cmd_unwatch(struct client *c) {
  unwatch_all(c);
  reply_ok(c);
}

/* 1 if any watched key changed since WATCH (or cannot be read). */
static int watched_changed(struct client *c) {
  struct wlist *wl = c->watched;
  if (c->dirty_cas) return 1;
  if (!wl) return 0;
  int db = c->db;
  int changed = 0;
  for (size_t i = 0; i < wl->n && !changed; i++) {
    uint64_t v;
    c->db = wl->k[i].db; /* srv_ns reads the key's database */
    changed = key_version(c, wl->k[i].key, wl->k[i].len, &v) ||
              v != wl->k[i].version;
  }
  c->db = db;
  return changed;
}

/* ------------------------------------------------------------------------
 * MULTI, EXEC, DISCARD
 * --------------------------------------------------------------------- */

static void multi_end(struct client *c) {
  queue_free(c);
  unwatch_all(c);
  c->in_multi = 0;
  c->multi_error = 0;
}

void multi_client_free(struct client *c) { multi_end(c); }
void multi_client_reset(struct client *c) { multi_end(c); }

void cmd_multi(struct client *c) {
  if (c->in_multi) {
    reply_error(c, "ERR MULTI calls can not be nested");
    return;
  }
  c->in_multi = 1;
  c->multi_error = 0;
  reply_ok(c);
}

void cmd_discard(struct client *c) {
  if (!c->in_multi) {
    reply_error(c, "ERR DISCARD without MULTI");
    return;
  }
  multi_end(c);
  reply_ok(c);
}

/* Run the queued commands, each replying into EXEC's array.  The queue is
 * detached first: a queued command may not see it (or free it). */
static void exec_run(struct client *c, struct mqueue *mq) {
  int argc = c->argc;
  const char **argv = c->argv;
  const size_t *argvlen = c->argvlen;
  reply_array(c, mq ? mq->n : 0);
  int grouped = cairn_group_begin(c->srv->db) == 0;
  for (size_t i = 0; mq && i < mq->n; i++) {
    struct queued *q = &mq->q[i];
    c->argc = q->argc;
    c->argv = q->argv;
    c->argvlen = q->argvlen;
    cmd_call(c, q->cmd);
  }
  if (grouped) cairn_group_end(c->srv->db);
  c->argc = argc;
  c->argv = argv;
  c->argvlen = argvlen;
}

void cmd_exec(struct client *c) {
  if (!c->in_multi) {
    reply_error(c, "ERR EXEC without MULTI");
    return;
  }
  if (c->multi_error) {
    multi_end(c);
    reply_error(c, "EXECABORT Transaction discarded because of previous "
                   "errors.");
    return;
  }
  if (watched_changed(c)) {
    multi_end(c);
    reply_null_array(c);
    return;
  }
  struct mqueue *mq = c->multi_queue;
  c->multi_queue = NULL;
  c->in_multi = 0;
  unwatch_all(c);
  exec_run(c, mq);
  c->multi_queue = mq;
  queue_free(c);
  c->multi_error = 0;
}
