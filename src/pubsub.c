/*
 * pubsub.c - PUBLISH, (P)SUBSCRIBE, (P)UNSUBSCRIBE, PUBSUB, and keyspace
 * notifications.
 *
 * State: two hash tables of subscription entries, one for channels and one
 * for patterns; an entry lists its subscribed clients.  Each client keeps
 * the entries it is in (c->subs), so that leaving is cheap and a client
 * that goes away unsubscribes from everything.  c->nsubs counts channels
 * plus patterns, as Redis's reply counts do; the dispatcher uses it for
 * RESP2 subscribed mode.
 *
 * Messages are written into the subscriber's output buffer (a RESP3 push,
 * or a RESP2 array) and the event loop is asked to flush it.  The output
 * buffer limits of the pubsub class are enforced by net.c.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>

#include "cmds_data.h"
#include "srv_config.h"
#include "glob.h"
#include "server.h"

/* Clients per entry and subscriptions per client grow by doubling; the
 * number of entries is bounded by what clients subscribe to, and each
 * subscription costs the client a command, so there is no separate cap. */
#define PS_BUCKETS_MIN 64u

struct ps_entry {
  struct ps_entry *next;   /* hash chain */
  uint64_t hash;
  struct client **clients;
  size_t n, cap;
  size_t len;
  char name[];             /* channel or pattern, NUL-terminated */
};

struct ps_table {
  struct ps_entry **b;
  size_t nb, n;
};

struct ps_state {
  struct ps_table chans, pats;
};

/* A client's subscriptions, per kind (0 channels, 1 patterns). */
struct ps_client {
  struct ps_entry **e[2];
  size_t n[2], cap[2];
};

/* Optional hook of the event loop: flush c's output soon. */
__attribute__((weak)) void srv_client_wake(struct client *c);

/* ------------------------------------------------------------------------
 * Tables
 * --------------------------------------------------------------------- */

static uint64_t ps_hash(const void *p, size_t n) {
  const unsigned char *s = p;
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ull;
  return h;
}

static struct ps_entry *table_find(const struct ps_table *t, const void *name,
                                   size_t len) {
  if (!t->nb) return NULL;
  uint64_t h = ps_hash(name, len);
  for (struct ps_entry *e = t->b[h % t->nb]; e; e = e->next)
    if (e->hash == h && e->len == len && !memcmp(e->name, name, len))
      return e;
  return NULL;
}

static int table_grow(struct ps_table *t) {
  size_t nb = t->nb ? t->nb * 2 : PS_BUCKETS_MIN;
  struct ps_entry **b = calloc(nb, sizeof *b);
  if (!b) return -1;
  for (size_t i = 0; i < t->nb; i++) {
    struct ps_entry *e = t->b[i];
    while (e) {
      struct ps_entry *next = e->next;
      e->next = b[e->hash % nb];
      b[e->hash % nb] = e;
      e = next;
    }
  }
  free(t->b);
  t->b = b;
  t->nb = nb;
  return 0;
}

static struct ps_entry *table_add(struct ps_table *t, const void *name,
                                  size_t len) {
  if (t->n >= t->nb && table_grow(t) && !t->nb) return NULL;
  struct ps_entry *e = calloc(1, sizeof *e + len + 1);
  if (!e) return NULL;
  memcpy(e->name, name, len);
  e->len = len;
  e->hash = ps_hash(name, len);
  e->next = t->b[e->hash % t->nb];
  t->b[e->hash % t->nb] = e;
  t->n++;
  return e;
}

static void table_remove(struct ps_table *t, struct ps_entry *e) {
  struct ps_entry **pp = &t->b[e->hash % t->nb];
  while (*pp != e) pp = &(*pp)->next;
  *pp = e->next;
  t->n--;
  free(e->clients);
  free(e);
}

static void table_free(struct ps_table *t) {
  for (size_t i = 0; i < t->nb; i++) {
    struct ps_entry *e = t->b[i];
    while (e) {
      struct ps_entry *next = e->next;
      free(e->clients);
      free(e);
      e = next;
    }
  }
  free(t->b);
  memset(t, 0, sizeof *t);
}

static struct ps_state *state(struct server *srv, int create) {
  if (!srv->pubsub && create) srv->pubsub = calloc(1, sizeof(struct ps_state));
  return srv->pubsub;
}

static void expq_free(void);

void pubsub_free(struct server *srv) {
  expq_free();
  struct ps_state *st = srv->pubsub;
  if (!st) return;
  table_free(&st->chans);
  table_free(&st->pats);
  free(st);
  srv->pubsub = NULL;
}

size_t pubsub_nchannels(struct server *srv) {
  struct ps_state *st = state(srv, 0);
  return st ? st->chans.n : 0;
}

size_t pubsub_npatterns(struct server *srv) {
  struct ps_state *st = state(srv, 0);
  return st ? st->pats.n : 0;
}

/* ------------------------------------------------------------------------
 * Subscribing
 * --------------------------------------------------------------------- */

static int grow_ptrs(void *arrp, size_t *cap, size_t n, size_t size) {
  if (n < *cap) return 0;
  size_t ncap = *cap ? *cap * 2 : 4;
  void *a = realloc(*(void **)arrp, ncap * size);
  if (!a) return -1;
  *(void **)arrp = a;
  *cap = ncap;
  return 0;
}

static struct ps_client *client_subs(struct client *c, int create) {
  if (!c->subs && create) c->subs = calloc(1, sizeof(struct ps_client));
  return c->subs;
}

/* Subscribe c to name (kind 0 channel, 1 pattern).  1 if added, 0 if it
 * was already there, -1 out of memory. */
static int sub_add(struct client *c, int kind, const char *name, size_t len) {
  struct ps_state *st = state(c->srv, 1);
  struct ps_client *pc = client_subs(c, 1);
  if (!st || !pc) return -1;
  struct ps_table *t = kind ? &st->pats : &st->chans;
  struct ps_entry *e = table_find(t, name, len);
  if (e)
    for (size_t i = 0; i < pc->n[kind]; i++)
      if (pc->e[kind][i] == e) return 0;
  if (grow_ptrs(&pc->e[kind], &pc->cap[kind], pc->n[kind], sizeof(void *)))
    return -1;
  if (!e && !(e = table_add(t, name, len))) return -1;
  if (grow_ptrs(&e->clients, &e->cap, e->n, sizeof(void *))) {
    if (e->n == 0) table_remove(t, e);
    return -1;
  }
  e->clients[e->n++] = c;
  pc->e[kind][pc->n[kind]++] = e;
  c->nsubs++;
  return 1;
}

/* Drop c's i-th subscription of the kind. */
static void sub_del_at(struct client *c, int kind, size_t i) {
  struct ps_state *st = state(c->srv, 0);
  struct ps_client *pc = c->subs;
  struct ps_entry *e = pc->e[kind][i];
  pc->e[kind][i] = pc->e[kind][--pc->n[kind]];
  for (size_t j = 0; j < e->n; j++)
    if (e->clients[j] == c) {
      e->clients[j] = e->clients[--e->n];
      break;
    }
  if (e->n == 0) table_remove(kind ? &st->pats : &st->chans, e);
  c->nsubs--;
}

/* 1 if c was subscribed to name and no longer is. */
static int sub_del(struct client *c, int kind, const char *name, size_t len) {
  struct ps_client *pc = c->subs;
  if (!pc) return 0;
  for (size_t i = 0; i < pc->n[kind]; i++) {
    struct ps_entry *e = pc->e[kind][i];
    if (e->len == len && !memcmp(e->name, name, len)) {
      sub_del_at(c, kind, i);
      return 1;
    }
  }
  return 0;
}

void pubsub_client_free(struct client *c) {
  struct ps_client *pc = c->subs;
  if (!pc) return;
  for (int kind = 0; kind < 2; kind++) {
    while (pc->n[kind]) sub_del_at(c, kind, pc->n[kind] - 1);
    free(pc->e[kind]);
  }
  free(pc);
  c->subs = NULL;
  c->nsubs = 0;
}

void pubsub_client_reset(struct client *c) { pubsub_client_free(c); }

/* ------------------------------------------------------------------------
 * Delivering
 * --------------------------------------------------------------------- */

/* Have the event loop send what was just written to c.  Without the
 * loop's hook, arm EPOLLOUT the way net.c does (CLIENT_EPOLLOUT tells it
 * to disarm once the buffer is flushed). */
static void wake(struct client *c) {
  if (srv_client_wake) {
    srv_client_wake(c);
    return;
  }
  if (c->fd < 0 || (c->flags & CLIENT_EPOLLOUT)) return;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u64 = c->id};
  if (c->flags & CLIENT_BLOCKED_READ) ev.events &= ~(uint32_t)EPOLLIN;
  if (epoll_ctl(c->srv->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
    c->flags |= CLIENT_EPOLLOUT;
}

static void send_message(struct client *c, const struct ps_entry *pat,
                         const void *chan, size_t clen, const void *msg,
                         size_t mlen) {
  if (c->flags & CLIENT_CLOSE_ASAP) return;
  reply_push(c, pat ? 4 : 3);
  if (pat) {
    reply_bulk(c, "pmessage", 8);
    reply_bulk(c, pat->name, pat->len);
  } else {
    reply_bulk(c, "message", 7);
  }
  reply_bulk(c, chan, clen);
  reply_bulk(c, msg, mlen);
  wake(c);
}

long long pubsub_publish(struct server *srv, const void *chan, size_t clen,
                         const void *msg, size_t mlen) {
  struct ps_state *st = state(srv, 0);
  if (!st) return 0;
  long long n = 0;
  struct ps_entry *e = table_find(&st->chans, chan, clen);
  if (e)
    for (size_t i = 0; i < e->n; i++, n++)
      send_message(e->clients[i], NULL, chan, clen, msg, mlen);
  for (size_t b = 0; b < st->pats.nb && st->pats.n; b++)
    for (struct ps_entry *p = st->pats.b[b]; p; p = p->next) {
      if (!glob_match(p->name, p->len, chan, clen, 0)) continue;
      for (size_t i = 0; i < p->n; i++, n++)
        send_message(p->clients[i], p, chan, clen, msg, mlen);
    }
  return n;
}

/* ------------------------------------------------------------------------
 * Keyspace notifications
 * --------------------------------------------------------------------- */

/* Publish on "<prefix>@<db>__:<suffix>". */
static void notify_one(struct server *srv, const char *prefix, int db,
                       const void *suffix, size_t slen, const void *msg,
                       size_t mlen) {
  char head[64];
  int h = snprintf(head, sizeof head, "%s@%d__:", prefix, db);
  if (h < 0 || (size_t)h >= sizeof head) return;
  char stackbuf[256];
  size_t len = (size_t)h + slen;
  char *chan = len <= sizeof stackbuf ? stackbuf : malloc(len);
  if (!chan) return;
  memcpy(chan, head, (size_t)h);
  memcpy(chan + h, suffix, slen);
  pubsub_publish(srv, chan, len, msg, mlen);
  if (chan != stackbuf) free(chan);
}

void pubsub_notify(struct server *srv, int db, const char *event,
                   const void *key, size_t klen, unsigned type_flag) {
  struct ps_state *st = state(srv, 0);
  if (!st || (!st->chans.n && !st->pats.n) || !srv->cfg) return;
  unsigned flags = srv->cfg->notify_flags;
  if (!(flags & type_flag)) return;
  size_t elen = strlen(event);
  if (flags & NOTIFY_KEYSPACE)
    notify_one(srv, "__keyspace", db, key, klen, event, elen);
  if (flags & NOTIFY_KEYEVENT)
    notify_one(srv, "__keyevent", db, event, elen, key, klen);
}

/* ------------------------------------------------------------------------
 * Expiry events from the engine
 *
 * The engine reports an expired key from its maintenance thread
 * (cairn_options.expired_fn), while pub/sub belongs to the event loop.
 * The hook only queues the key under a mutex; the loop drains the queue
 * (pubsub_expired_drain) and publishes "expired".  The queue is bounded in
 * entries and bytes: beyond that, events are dropped and counted, as a
 * notification is best-effort in Redis too.
 * --------------------------------------------------------------------- */

#define EXPQ_ENTRIES_MAX 65536u
#define EXPQ_BYTES_MAX (16u * 1024u * 1024u)
#define EXPQ_DRAIN_MAX 4096u /* per call, so one turn of the loop stays short */

struct expq_item {
  struct expq_item *next;
  size_t klen;
  char ns[CAIRN_NS_MAX + 1];
  char key[];
};

static struct {
  pthread_mutex_t mu;
  struct expq_item *head, *tail;
  size_t n, bytes;
  uint64_t dropped;
} expq = {.mu = PTHREAD_MUTEX_INITIALIZER};

void pubsub_expired_hook(void *arg, const char *ns, const void *key,
                         size_t klen) {
  (void)arg;
  size_t nslen = ns ? strlen(ns) : 0;
  if (nslen > CAIRN_NS_MAX) return;
  struct expq_item *it = malloc(sizeof *it + klen);
  pthread_mutex_lock(&expq.mu);
  if (!it || expq.n >= EXPQ_ENTRIES_MAX ||
      expq.bytes + klen > EXPQ_BYTES_MAX) {
    expq.dropped++;
    pthread_mutex_unlock(&expq.mu);
    free(it);
    return;
  }
  memcpy(it->ns, ns ? ns : "default", ns ? nslen + 1 : 8);
  memcpy(it->key, key, klen);
  it->klen = klen;
  it->next = NULL;
  if (expq.tail) expq.tail->next = it;
  else __atomic_store_n(&expq.head, it, __ATOMIC_RELAXED);
  expq.tail = it;
  expq.n++;
  expq.bytes += klen;
  pthread_mutex_unlock(&expq.mu);
}

static void expq_free(void) {
  pthread_mutex_lock(&expq.mu);
  struct expq_item *it = expq.head;
  __atomic_store_n(&expq.head, NULL, __ATOMIC_RELAXED);
  expq.tail = NULL;
  expq.n = expq.bytes = 0;
  pthread_mutex_unlock(&expq.mu);
  while (it) {
    struct expq_item *next = it->next;
    free(it);
    it = next;
  }
}

/* The database index whose namespace is ns, or -1. */
static int ns_db(struct server *srv, const char *ns) {
  for (int db = 0; db < (int)SRV_DBS; db++)
    if (!strcmp(config_ns_name(srv->cfg, db), ns)) return db;
  return -1;
}

size_t pubsub_expired_drain(struct server *srv) {
  if (!__atomic_load_n(&expq.head, __ATOMIC_RELAXED)) return 0;
  size_t done = 0;
  while (done < EXPQ_DRAIN_MAX) {
    pthread_mutex_lock(&expq.mu);
    struct expq_item *it = expq.head;
    if (it) {
      __atomic_store_n(&expq.head, it->next, __ATOMIC_RELAXED);
      if (!it->next) expq.tail = NULL;
      expq.n--;
      expq.bytes -= it->klen;
    }
    pthread_mutex_unlock(&expq.mu);
    if (!it) break;
    int db = ns_db(srv, it->ns);
    if (db >= 0) {
      srv->stat_expired_events++;
      pubsub_notify(srv, db, "expired", it->key, it->klen, NOTIFY_EXPIRED);
    }
    free(it);
    done++;
  }
  return done;
}

/* ------------------------------------------------------------------------
 * Commands
 * --------------------------------------------------------------------- */

static void reply_sub(struct client *c, const char *kind, const char *name,
                      size_t len) {
  reply_push(c, 3);
  reply_cstr(c, kind);
  if (name) reply_bulk(c, name, len);
  else reply_null(c);
  reply_int(c, (long long)c->nsubs);
}

static void subscribe_generic(struct client *c, int kind) {
  const char *what = kind ? "psubscribe" : "subscribe";
  for (int i = 1; i < c->argc; i++) {
    if (sub_add(c, kind, c->argv[i], c->argvlen[i]) < 0) {
      reply_engine_error(c, CAIRN_ENOMEM);
      return;
    }
    reply_sub(c, what, c->argv[i], c->argvlen[i]);
  }
}

static void unsubscribe_generic(struct client *c, int kind) {
  const char *what = kind ? "punsubscribe" : "unsubscribe";
  struct ps_client *pc = c->subs;
  if (c->argc == 1) {
    if (!pc || pc->n[kind] == 0) {
      reply_sub(c, what, NULL, 0);
      return;
    }
    /* Each reply names the entry, so reply before the entry is freed. */
    while (pc->n[kind]) {
      size_t i = pc->n[kind] - 1;
      struct ps_entry *e = pc->e[kind][i];
      reply_push(c, 3);
      reply_cstr(c, what);
      reply_bulk(c, e->name, e->len);
      sub_del_at(c, kind, i);
      reply_int(c, (long long)c->nsubs);
    }
    return;
  }
  for (int i = 1; i < c->argc; i++) {
    sub_del(c, kind, c->argv[i], c->argvlen[i]);
    reply_sub(c, what, c->argv[i], c->argvlen[i]);
  }
}

void cmd_subscribe(struct client *c) { subscribe_generic(c, 0); }
void cmd_psubscribe(struct client *c) { subscribe_generic(c, 1); }
void cmd_unsubscribe(struct client *c) { unsubscribe_generic(c, 0); }
void cmd_punsubscribe(struct client *c) { unsubscribe_generic(c, 1); }

void cmd_publish(struct client *c) {
  reply_int(c, pubsub_publish(c->srv, c->argv[1], c->argvlen[1], c->argv[2],
                              c->argvlen[2]));
}

static void pubsub_channels(struct client *c) {
  struct ps_state *st = state(c->srv, 0);
  const char *pat = c->argc == 3 ? c->argv[2] : NULL;
  size_t plen = pat ? c->argvlen[2] : 0;
  size_t n = 0;
  for (int pass = 0; pass < 2; pass++) {
    if (pass) reply_array(c, n);
    for (size_t b = 0; st && b < st->chans.nb; b++)
      for (struct ps_entry *e = st->chans.b[b]; e; e = e->next) {
        if (pat && !glob_match(pat, plen, e->name, e->len, 0)) continue;
        if (pass) reply_bulk(c, e->name, e->len);
        else n++;
      }
  }
}

static void pubsub_help(struct client *c) {
  static const char *const lines[] = {
      "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
      "CHANNELS [<pattern>]",
      "    Return the currently active channels matching a <pattern> (default: '*').",
      "NUMPAT",
      "    Return number of subscriptions to patterns.",
      "NUMSUB [<channel> ...]",
      "    Return the number of subscribers for the specified channels, excluding",
      "    pattern subscriptions(default: no channels).",
      "HELP",
      "    Print this help.",
      NULL,
  };
  reply_help(c, lines);
}

void cmd_pubsub(struct client *c) {
  const char *sub = c->argv[1];
  struct ps_state *st = state(c->srv, 0);
  if (!strcasecmp(sub, "help") && c->argc == 2) {
    pubsub_help(c);
  } else if (!strcasecmp(sub, "channels") && c->argc <= 3) {
    pubsub_channels(c);
  } else if (!strcasecmp(sub, "numsub")) {
    reply_array(c, (size_t)(c->argc - 2) * 2);
    for (int i = 2; i < c->argc; i++) {
      struct ps_entry *e =
          st ? table_find(&st->chans, c->argv[i], c->argvlen[i]) : NULL;
      reply_bulk(c, c->argv[i], c->argvlen[i]);
      reply_int(c, e ? (long long)e->n : 0);
    }
  } else if (!strcasecmp(sub, "numpat") && c->argc == 2) {
    reply_int(c, st ? (long long)st->pats.n : 0);
  } else if (!strcasecmp(sub, "shardchannels") && c->argc <= 3) {
    reply_array(c, 0);
  } else if (!strcasecmp(sub, "shardnumsub")) {
    reply_array(c, (size_t)(c->argc - 2) * 2);
    for (int i = 2; i < c->argc; i++) {
      reply_bulk(c, c->argv[i], c->argvlen[i]);
      reply_int(c, 0);
    }
  } else {
    reply_errorf(c, "ERR unknown subcommand or wrong number of arguments "
                    "for '%.128s'. Try PUBSUB HELP.", sub);
  }
}
