/*
 * net.c - cairnd's event loop: listeners, clients, replies, and the holds
 * that keep a reply back until its write is durable.
 *
 * One thread.  epoll watches the listeners, every client and an eventfd
 * that the engine's log thread writes after it queued a completion.  The
 * loop never waits on disk: writes go to the engine with a done callback
 * (srv_write) and their replies are held.
 *
 * Holds.  A client's out buffer holds its replies in command order.  A
 * hold marks the bytes of one command's reply, [off, off + len), whose
 * write is not yet durable; nothing from the first unfinished hold on is
 * sent.  Completions name a hold by (client id, hold sequence number) so
 * a completion for a client that has gone away finds nothing and is
 * dropped; freed memory is never touched.  A failed write's reply is
 * replaced in place by an error; later holds' offsets shift with it.
 *
 * Epoll data is the client id, not a pointer, for the same reason.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "srv_config.h"
#include "net.h"
#include "repl.h"
#include "cmds.h"
#include "cmds_data.h"
#include "db.h"
#include "server.h"
#include "util.h"
#include "wal.h"

#define HOLD_OPEN SIZE_MAX
#define HOLD_SEQ_MASK 0xffffffu      /* 24 bits of sequence in a token */
#define HOLDS_MAX 1000000u           /* unfinished writes per client */
#define READ_CHUNK (16u * 1024)
#define EVENTS_MAX 256
#define CRON_MS 100
#define SHUTDOWN_WAIT_MS 10000
#define OUT_COMPACT_BYTES (64u * 1024)

/* Epoll ids of the non-client descriptors; client ids stay below. */
#define EV_LISTEN (1ull << 62)
#define EV_EFD (1ull << 63)

struct hold {
  size_t off, len;
  uint32_t seq;
  int done, rc, replaced;
  struct hold *next;
};

/* ------------------------------------------------------------------------
 * Completions: filled by the log thread, drained by the loop.
 * --------------------------------------------------------------------- */

struct completion {
  uint64_t token;   /* client id << 24 | hold seq */
  uint64_t lsn;
  int rc;
};

static pthread_mutex_t cq_mu = PTHREAD_MUTEX_INITIALIZER;
static struct completion *cq;
static size_t cq_len, cq_cap;
static int cq_efd = -1;
static int cq_lost;   /* a completion could not be queued (no memory) */

/* Runs on the engine's log thread: short, never blocks for long. */
static void on_write_done(void *arg, int rc, uint64_t lsn) {
  uint64_t token = (uint64_t)(uintptr_t)arg;
  int wake = 0;
  pthread_mutex_lock(&cq_mu);
  if (cq_len == cq_cap) {
    size_t ncap = cq_cap ? cq_cap * 2 : 1024;
    struct completion *n = realloc(cq, ncap * sizeof *n);
    if (n) {
      cq = n;
      cq_cap = ncap;
    }
  }
  if (cq_len < cq_cap) {
    wake = cq_len == 0;
    cq[cq_len++] = (struct completion){token, lsn, rc};
  } else {
    cq_lost = 1;
    wake = 1;
  }
  pthread_mutex_unlock(&cq_mu);
  if (wake) net_wake();
}

void net_wake(void) {
  uint64_t one = 1;
  ssize_t w = write(cq_efd, &one, sizeof one);
  (void)w; /* a full counter still wakes the loop */
}

/* ------------------------------------------------------------------------
 * Clients by id
 * --------------------------------------------------------------------- */

static struct client **bucket(struct server *s, uint64_t id) {
  return &s->id_tab[(id * 0x9E3779B97F4A7C15ull >> 52) % SRV_ID_BUCKETS];
}

struct client *srv_client_by_id(struct server *s, uint64_t id) {
  for (struct client *c = *bucket(s, id); c; c = c->id_next)
    if (c->id == id) return c;
  return NULL;
}

static void id_remove(struct server *s, struct client *c) {
  for (struct client **pp = bucket(s, c->id); *pp; pp = &(*pp)->id_next)
    if (*pp == c) {
      *pp = c->id_next;
      return;
    }
}

/* ------------------------------------------------------------------------
 * Replies
 * --------------------------------------------------------------------- */

void reply_ok(struct client *c) { resp_add_status(&c->out, "OK", 2); }
void reply_status(struct client *c, const char *s) {
  resp_add_status(&c->out, s, strlen(s));
}
void reply_error(struct client *c, const char *t) {
  resp_add_error(&c->out, t, strlen(t));
}
void reply_errorf(struct client *c, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  reply_error(c, buf);
}
void reply_int(struct client *c, long long v) { resp_add_int(&c->out, v); }
void reply_bulk(struct client *c, const void *p, size_t n) {
  resp_add_bulk(&c->out, p, n);
}
void reply_cstr(struct client *c, const char *s) {
  resp_add_bulk(&c->out, s, strlen(s));
}
void reply_null(struct client *c) { resp_add_null(&c->out, c->proto); }
void reply_null_array(struct client *c) {
  resp_add_null_array(&c->out, c->proto);
}
void reply_array(struct client *c, size_t n) {
  resp_add_array(&c->out, (long long)n);
}
void reply_map(struct client *c, size_t n) {
  resp_add_map(&c->out, c->proto, (long long)n);
}
void reply_set(struct client *c, size_t n) {
  resp_add_set(&c->out, c->proto, (long long)n);
}
void reply_double(struct client *c, double d) {
  resp_add_double(&c->out, c->proto, d);
}
void reply_bool(struct client *c, int b) { resp_add_bool(&c->out, c->proto, b); }
void reply_verbatim(struct client *c, const char *t, size_t n) {
  resp_add_verbatim(&c->out, c->proto, "txt", t, n);
}
void reply_push(struct client *c, size_t n) {
  resp_add_push(&c->out, c->proto, (long long)n);
}

void reply_help(struct client *c, const char *const *lines) {
  size_t n = 0;
  while (lines[n]) n++;
  reply_array(c, n);
  for (size_t i = 0; i < n; i++) reply_status(c, lines[i]);
}

/* ------------------------------------------------------------------------
 * Holds
 * --------------------------------------------------------------------- */

cairn_write srv_write(struct client *c, const cairn_write *base) {
  cairn_write w;
  if (base) w = *base;
  else memset(&w, 0, sizeof w);
  w.done = NULL;
  w.done_arg = NULL;
  struct hold *h = NULL;
  if (c->nholds < HOLDS_MAX) h = calloc(1, sizeof *h);
  /* Without a hold the engine call waits for the log: slow, but the
   * reply still goes out only once the write is durable. */
  if (!h) return w;
  h->off = c->out.len;
  h->len = HOLD_OPEN;
  h->seq = c->hold_seq++ & HOLD_SEQ_MASK;
  if (c->holds_tail) c->holds_tail->next = h;
  else c->holds = h;
  c->holds_tail = h;
  c->nholds++;
  /* Followers acknowledge what they fsynced; the leader's own copy must
   * be no less durable before the reply goes out. */
  if (c->srv->cfg->min_replicas_ack > 0 &&
      c->srv->cfg->durability == CAIRN_DURABILITY_INTERVAL &&
      w.durability == CAIRN_DURABILITY_DEFAULT)
    w.durability = CAIRN_DURABILITY_FSYNC;
  w.done = on_write_done;
  w.done_arg = (void *)(uintptr_t)(c->id << 24 | h->seq);
  return w;
}

void srv_write_abort(struct client *c) {
  struct hold *t = c->holds_tail, *prev = NULL;
  if (!t || t->len != HOLD_OPEN) return;
  for (struct hold *h = c->holds; h != t; h = h->next) prev = h;
  if (prev) prev->next = NULL;
  else c->holds = NULL;
  c->holds_tail = prev;
  c->nholds--;
  c->hold_seq--;
  free(t);
}

/* End the holds the last command opened at the end of its reply. */
void net_holds_close(struct client *c) {
  for (struct hold *h = c->holds; h; h = h->next)
    if (h->len == HOLD_OPEN) h->len = c->out.len - h->off;
}

/* Replace h's reply with an error; shift the holds after it. */
static void hold_fail(struct client *c, struct hold *h) {
  char text[300];
  struct resp_buf e;
  if (h->replaced) return;
  if (h->rc == SRV_ENOREPLICAS)
    snprintf(text, sizeof text, "%s", ERR_NOREPLICAS);
  else
    snprintf(text, sizeof text, "IOERR write failed: %s",
             cairn_strerror(h->rc));
  resp_buf_init(&e);
  resp_add_error(&e, text, strlen(text));
  if (e.oom) {
    c->flags |= CLIENT_CLOSE_ASAP;
    return;
  }
  size_t old_end = h->off + h->len, tail = c->out.len - old_end;
  long long delta = (long long)e.len - (long long)h->len;
  if (delta > 0) {
    resp_add_raw(&c->out, e.data, (size_t)delta); /* grow; bytes replaced */
    if (c->out.oom) {
      resp_buf_free(&e);
      c->flags |= CLIENT_CLOSE_ASAP;
      return;
    }
  }
  memmove(c->out.data + h->off + e.len, c->out.data + old_end, tail);
  memcpy(c->out.data + h->off, e.data, e.len);
  c->out.len = h->off + e.len + tail;
  for (struct hold *g = c->holds; g; g = g->next) {
    if (g == h) continue;
    if (g->off >= h->off && g->off < old_end) {
      g->off = h->off;   /* inside the replaced reply: gone with it */
      g->len = e.len;
      g->replaced = 1;
    } else if (g->off >= old_end) {
      g->off = (size_t)((long long)g->off + delta);
    } else if (g->len != HOLD_OPEN && g->off + g->len >= old_end) {
      g->len = (size_t)((long long)g->len + delta);
    }
  }
  h->len = e.len;
  h->replaced = 1;
  resp_buf_free(&e);
}

/* Drop finished holds at the head: their bytes may now go out. */
static void holds_release(struct client *c) {
  while (c->holds && c->holds->done) {
    struct hold *h = c->holds;
    c->holds = h->next;
    if (!c->holds) c->holds_tail = NULL;
    c->nholds--;
    free(h);
  }
}

static void holds_free(struct client *c) {
  while (c->holds) {
    struct hold *h = c->holds;
    c->holds = h->next;
    free(h);
  }
  c->holds_tail = NULL;
  c->nholds = 0;
}

static void client_flush(struct client *c);

/* Queue c for the end of the loop's turn (clients_settle): its socket
 * write, so that the replies a turn releases for one client (a pipeline's
 * worth of log completions) leave in one write, not one write each; its
 * output limits; its close, if marked.  Only the clients a turn touched
 * are visited, not every connection.  By id: the client may be gone by
 * then.  Out of memory, c is written now and cron() does the rest. */
static void flush_later(struct client *c) {
  struct server *s = c->srv;
  if (c->flags & CLIENT_FLUSH_PENDING) return;
  if (s->nflush == s->flush_cap) {
    size_t cap = s->flush_cap ? s->flush_cap * 2 : 64;
    uint64_t *n = realloc(s->flush_ids, cap * sizeof *n);
    if (!n) {
      client_flush(c);
      return;
    }
    s->flush_ids = n;
    s->flush_cap = cap;
  }
  s->flush_ids[s->nflush++] = c->id;
  c->flags |= CLIENT_FLUSH_PENDING;
}

void srv_client_wake(struct client *c) { flush_later(c); }

static void check_output_limit(struct server *s, struct client *c, int64_t now);
static void client_free(struct server *s, struct client *c);

static void clients_settle(struct server *s) {
  int64_t now = now_ms();
  for (size_t i = 0; i < s->nflush; i++) {
    struct client *c = srv_client_by_id(s, s->flush_ids[i]);
    if (!c) continue;
    c->flags &= ~CLIENT_FLUSH_PENDING;
    client_flush(c);
    check_output_limit(s, c, now);
    if (c->flags & CLIENT_CLOSE_ASAP) client_free(s, c);
  }
  s->nflush = 0;
}

static void complete_one(struct server *s, uint64_t token, uint64_t lsn,
                         int rc) {
  if (rc == 0 && repl_park(s, token, lsn)) return;
  net_complete(s, token, rc);
}

void net_complete(struct server *s, uint64_t token, int rc) {
  struct client *c = srv_client_by_id(s, token >> 24);
  if (!c) return;   /* gone: its holds went with it */
  uint32_t seq = (uint32_t)(token & HOLD_SEQ_MASK);
  for (struct hold *h = c->holds; h; h = h->next) {
    if (h->seq != seq || h->done) continue;
    h->done = 1;
    h->rc = rc;
    if (rc) hold_fail(c, h);
    break;
  }
  holds_release(c);
  flush_later(c);
}

/* Drain the completion queue; returns the number handled. */
static size_t completions_drain(struct server *s) {
  uint64_t n;
  ssize_t r = read(cq_efd, &n, sizeof n);
  (void)r;
  pthread_mutex_lock(&cq_mu);
  struct completion *batch = cq;
  size_t len = cq_len;
  int lost = cq_lost;
  cq = NULL;
  cq_len = cq_cap = 0;
  cq_lost = 0;
  pthread_mutex_unlock(&cq_mu);
  for (size_t i = 0; i < len; i++)
    complete_one(s, batch[i].token, batch[i].lsn, batch[i].rc);
  free(batch);
  if (lost) srv_log(CAIRN_LOG_ERROR, NULL, "write completions were lost (out of memory)");
  repl_events(s);
  return len;
}

/* ------------------------------------------------------------------------
 * Clients
 * --------------------------------------------------------------------- */

static void ep_mod(struct server *s, struct client *c, int want_out) {
  struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0),
                           .data.u64 = c->id};
  if (c->flags & CLIENT_BLOCKED_READ) ev.events &= ~(uint32_t)EPOLLIN;
  epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static size_t sendable_end(const struct client *c) {
  for (const struct hold *h = c->holds; h; h = h->next)
    if (!h->done) return h->off;
  return c->out.len;
}

static void out_compact(struct client *c) {
  if (c->out_sent == 0) return;
  if (c->out_sent < OUT_COMPACT_BYTES && c->out_sent < c->out.len) return;
  resp_buf_consume(&c->out, c->out_sent);
  for (struct hold *h = c->holds; h; h = h->next) h->off -= c->out_sent;
  c->out_sent = 0;
}

/* Write what may go out; ask epoll for EPOLLOUT if the socket is full. */
static void client_flush(struct client *c) {
  if (c->fd < 0 || (c->flags & CLIENT_CLOSE_ASAP)) return;
  size_t end = sendable_end(c);
  int want_out = 0;
  while (c->out_sent < end) {
    ssize_t w = write(c->fd, c->out.data + c->out_sent, end - c->out_sent);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) want_out = 1;
      else c->flags |= CLIENT_CLOSE_ASAP;
      break;
    }
    c->out_sent += (size_t)w;
    c->srv->stat_net_out += (uint64_t)w;
    c->srv->stat_writes++;
  }
  out_compact(c);
  int was_out = (c->flags & CLIENT_EPOLLOUT) != 0;
  if (want_out != was_out) {
    c->flags = want_out ? (c->flags | CLIENT_EPOLLOUT) : (c->flags & ~CLIENT_EPOLLOUT);
    ep_mod(c->srv, c, want_out);
  }
  if ((c->flags & CLIENT_CLOSE_AFTER_REPLY) && !c->holds &&
      c->out_sent == c->out.len)
    c->flags |= CLIENT_CLOSE_ASAP;
}

void srv_client_close_asap(struct client *c) {
  c->flags |= CLIENT_CLOSE_ASAP;
  flush_later(c);
}

const char *srv_ns(struct client *c) {
  return config_ns_name(c->srv->cfg, c->db);
}

static void client_free(struct server *s, struct client *c) {
  srv_log(CAIRN_LOG_DEBUG, NULL, "client %llu (%s) disconnected",
          (unsigned long long)c->id, c->addr);
  if (multi_client_free) multi_client_free(c);
  if (pubsub_client_free) pubsub_client_free(c);
  id_remove(s, c);
  if (c->flags & CLIENT_BLOCKED_READ) s->blocked_clients--;
  if (c->prev) c->prev->next = c->next;
  else s->clients = c->next;
  if (c->next) c->next->prev = c->prev;
  s->nclients--;
  if (c->fd >= 0) {
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
  }
  holds_free(c);
  resp_buf_free(&c->out);
  resp_parser_free(&c->parser);
  resp_cmd_free(&c->req);
  free(c->in);
  free(c->argbuf);
  free(c->name);
  free(c->lib_name);
  free(c->lib_ver);
  free(c);
}

static void format_addr(const struct sockaddr_storage *ss, char *buf,
                        size_t n) {
  char ip[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const void *)ss;
    inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
    port = ntohs(a->sin_port);
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const void *)ss;
    inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
    port = ntohs(a->sin6_port);
  }
  snprintf(buf, n, "%s:%d", ip, port);
}

/* Protected mode's idea of local, as Redis's: 127.0.0.1 and ::1 only (the
 * unix socket is let in before this), not the rest of 127.0.0.0/8. */
static int is_loopback(const struct sockaddr_storage *ss) {
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const void *)ss;
    return ntohl(a->sin_addr.s_addr) == INADDR_LOOPBACK;
  }
  if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const void *)ss;
    static const uint8_t v4[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
                                   127, 0, 0, 1};
    return IN6_IS_ADDR_LOOPBACK(&a->sin6_addr) ||
           memcmp(a->sin6_addr.s6_addr, v4, sizeof v4) == 0;
  }
  return 0;
}

static const char denied_msg[] =
    "-DENIED Redis is running in protected mode because protected mode is "
    "enabled and no password is set for the default user. In this mode "
    "connections are only accepted from the loopback interface. If you want "
    "to connect from external computers to Redis you may adopt one of the "
    "following solutions: 1) Just disable protected mode sending the command "
    "'CONFIG SET protected-mode no' from the loopback interface by connecting "
    "to Redis from the same host the server is running, however MAKE SURE "
    "Redis is not publicly accessible from internet if you do so. Use CONFIG "
    "REWRITE to make this change permanent. 2) Alternatively you can just "
    "disable the protected mode by editing the Redis configuration file, and "
    "setting the protected mode option to 'no', and then restarting the "
    "server. 3) If you started the server manually just for testing, restart "
    "it with the '--protected-mode no' option. 4) Set up an authentication "
    "password for the default user. NOTE: You only need to do one of the "
    "above things in order for the server to start accepting connections "
    "from the outside.\r\n";

/* Best effort: the socket is new, so its buffer has room. */
static void reject(struct server *s, int fd, const char *msg) {
  ssize_t w = write(fd, msg, strlen(msg));
  (void)w;
  close(fd);
  s->stat_rejected++;
}

static struct client *client_new(struct server *s, int fd, int is_unix) {
  struct client *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->id = ++s->next_client_id;
  c->fd = fd;
  c->srv = s;
  c->proto = 2;
  c->unix_socket = is_unix;
  c->authed = s->cfg->requirepass[0] == '\0';
  c->user = "default";
  c->created_ms = c->last_ms = now_ms();
  resp_parser_init(&c->parser, s->cfg->proto_max_bulk_len);
  resp_buf_init(&c->out);
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = c->id};
  if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev)) {
    resp_parser_free(&c->parser);
    free(c);
    return NULL;
  }
  c->next = s->clients;
  if (s->clients) s->clients->prev = c;
  s->clients = c;
  s->nclients++;
  struct client **b = bucket(s, c->id);
  c->id_next = *b;
  *b = c;
  s->stat_conns++;
  return c;
}

static void accept_one(struct server *s, int lfd) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) {
    if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
      srv_log(CAIRN_LOG_WARN, NULL, "accept: %s", strerror(errno));
    return;
  }
  int is_unix = ss.ss_family == AF_UNIX;
  if (s->nclients >= (size_t)s->cfg->maxclients) {
    reject(s, fd, "-ERR max number of clients reached\r\n");
    return;
  }
  if (s->cfg->protected_mode && !s->cfg->requirepass[0] && !is_unix &&
      !is_loopback(&ss)) {
    reject(s, fd, denied_msg);
    return;
  }
  if (!is_unix) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  struct client *c = client_new(s, fd, is_unix);
  if (!c) {
    reject(s, fd, "-ERR out of memory\r\n");
    return;
  }
  if (is_unix) {
    snprintf(c->addr, sizeof c->addr, "%s:0", s->cfg->unixsocket);
    snprintf(c->laddr, sizeof c->laddr, "%s:0", s->cfg->unixsocket);
  } else {
    format_addr(&ss, c->addr, sizeof c->addr);
    sl = sizeof ss;
    if (!getsockname(fd, (struct sockaddr *)&ss, &sl))
      format_addr(&ss, c->laddr, sizeof c->laddr);
  }
  srv_log(CAIRN_LOG_DEBUG, NULL, "client %llu connected from %s",
          (unsigned long long)c->id, c->addr);
}

/* ------------------------------------------------------------------------
 * Input
 * --------------------------------------------------------------------- */

/* Make argv[i][argvlen[i]] a NUL for every argument.  An array request's
 * bulk is followed by "\r\n" the parser has consumed, so the '\r' can be
 * overwritten; inline words are packed, so they are copied. */
static int terminate_args(struct client *c) {
  struct resp_cmd *r = &c->req;
  int in_buf = r->argc > 0 && r->argv[0] >= c->in && r->argv[0] < c->in + c->in_len;
  if (in_buf) {
    for (int i = 0; i < r->argc; i++) ((char *)r->argv[i])[r->argvlen[i]] = '\0';
    return 0;
  }
  size_t need = 0;
  for (int i = 0; i < r->argc; i++) need += r->argvlen[i] + 1;
  if (need > c->argbuf_cap) {
    char *n = realloc(c->argbuf, need);
    if (!n) return CAIRN_ENOMEM;
    c->argbuf = n;
    c->argbuf_cap = need;
  }
  char *o = c->argbuf;
  for (int i = 0; i < r->argc; i++) {
    memcpy(o, r->argv[i], r->argvlen[i]);
    o[r->argvlen[i]] = '\0';
    r->argv[i] = o;
    o += r->argvlen[i] + 1;
  }
  return 0;
}

static void protocol_error(struct client *c, const char *text) {
  char buf[200];
  snprintf(buf, sizeof buf, "ERR %s", text);
  reply_error(c, buf);
  c->flags |= CLIENT_CLOSE_AFTER_REPLY;
  srv_log(CAIRN_LOG_DEBUG, NULL, "client %llu: %s", (unsigned long long)c->id, text);
}

/* While the engine holds writes back for memory (cairn_write_stalled), a
 * write command (or an EXEC) is left unread, and its client's input paused
 * until the cron sees the engine take writes again: other clients, and
 * commands that only read, go on.  The engine cannot make this loop wait
 * itself: it runs every client.  Commands that only delete keys
 * (CMD_DELETES) go on too, as Redis lets them past maxmemory: a deleted
 * key that is only on disk costs memory a tombstone of its key's size
 * until the checkpoint, not a value. */
static int write_held(struct client *c) {
  if (!cairn_write_stalled(c->srv->db)) return 0;
  const struct cmd *cmd = cmd_lookup(c->argv[0], c->argvlen[0]);
  if (!cmd || (c->in_multi && !(cmd->flags & CMD_NOMULTI)))
    return 0; /* refused, or only queued */
  return ((cmd->flags & CMD_WRITE) && !(cmd->flags & CMD_DELETES)) ||
         cmd->proc == cmd_exec;
}

static void write_hold(struct client *c) {
  c->srv->stat_writes_held++;
  c->flags |= CLIENT_WRITE_HELD;
  net_client_block(c);
}

/* From the cron: resume the clients held while writes are taken again. */
static void write_release(struct server *s) {
  if (cairn_write_stalled(s->db)) return;
  for (struct client *c = s->clients, *next; c; c = next) {
    next = c->next;
    if (!(c->flags & CLIENT_WRITE_HELD)) continue;
    c->flags &= ~CLIENT_WRITE_HELD;
    net_client_unblock(c);
  }
}

/* Run every complete command in c->in; keep the rest. */
static void process_input(struct client *c) {
  size_t pos = 0;
  /* Each round consumes a command or stops. */
  while (pos < c->in_len &&
         !(c->flags & (CLIENT_CLOSE_AFTER_REPLY | CLIENT_CLOSE_ASAP |
                       CLIENT_BLOCKED_READ))) {
    if (c->srv->shutdown_asap) break;
    size_t used = 0;
    int rc = resp_parse(&c->parser, c->in + pos, c->in_len - pos, &used, &c->req);
    if (rc == RESP_AGAIN) {
      pos += used;
      break;
    }
    if (rc != RESP_OK) {
      protocol_error(c, rc == RESP_ERR ? resp_parser_error(&c->parser)
                                       : "Protocol error: out of memory");
      break;
    }
    if (terminate_args(c)) {
      protocol_error(c, "Protocol error: out of memory");
      break;
    }
    c->argc = c->req.argc;
    c->argv = c->req.argv;
    c->argvlen = c->req.argvlen;
    if (write_held(c)) { /* parsed again when the client resumes */
      c->argc = 0;
      c->argv = NULL;
      c->argvlen = NULL;
      write_hold(c);
      break;
    }
    cmd_dispatch(c);
    c->argc = 0;
    c->argv = NULL;
    c->argvlen = NULL;
    pos += used;
  }
  if (pos) {
    memmove(c->in, c->in + pos, c->in_len - pos);
    c->in_len -= pos;
  }
}

void net_client_block(struct client *c) {
  if (c->flags & CLIENT_BLOCKED_READ) return;
  c->flags |= CLIENT_BLOCKED_READ;
  c->srv->blocked_clients++;
  ep_mod(c->srv, c, 0);
}

/* Resume c: what it pipelined behind the blocking command runs now. */
void net_client_unblock(struct client *c) {
  if (!(c->flags & CLIENT_BLOCKED_READ)) return;
  c->flags &= ~CLIENT_BLOCKED_READ;
  c->srv->blocked_clients--;
  ep_mod(c->srv, c, 0);
  process_input(c);
  flush_later(c);
}

int net_client_detach(struct client *c) {
  client_flush(c);
  if (c->fd < 0 || c->out_sent != c->out.len) return -1;
  int fd = c->fd;
  epoll_ctl(c->srv->epfd, EPOLL_CTL_DEL, fd, NULL);
  c->fd = -1;
  c->flags |= CLIENT_CLOSE_ASAP;
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static int grow_input(struct client *c) {
  size_t want = c->in_len + READ_CHUNK;
  size_t bulk = resp_parser_want(&c->parser);
  if (bulk > want) want = bulk;
  if (want <= c->in_cap) return 0;
  size_t cap = c->in_cap ? c->in_cap : READ_CHUNK;
  while (cap < want) cap *= 2;
  char *n = realloc(c->in, cap);
  if (!n) return CAIRN_ENOMEM;
  c->in = n;
  c->in_cap = cap;
  return 0;
}

static void client_read(struct server *s, struct client *c) {
  flush_later(c); /* its replies, limits and close: at the turn's end */
  if (grow_input(c)) {
    c->flags |= CLIENT_CLOSE_ASAP;
    return;
  }
  ssize_t r = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
  if (r < 0) {
    if (errno != EAGAIN && errno != EINTR) c->flags |= CLIENT_CLOSE_ASAP;
    return;
  }
  if (r == 0) {
    c->flags |= CLIENT_CLOSE_ASAP;
    return;
  }
  c->in_len += (size_t)r;
  s->stat_net_in += (uint64_t)r;
  s->stat_reads++;
  c->last_ms = now_ms();
  if (c->in_len > (size_t)s->cfg->client_query_buffer_limit) {
    srv_log(CAIRN_LOG_WARN, NULL, "closing client %llu that reached max query buffer length",
            (unsigned long long)c->id);
    c->flags |= CLIENT_CLOSE_ASAP;
    return;
  }
  process_input(c);
}

/* ------------------------------------------------------------------------
 * Output limits and timeouts
 * --------------------------------------------------------------------- */

static void check_output_limit(struct server *s, struct client *c, int64_t now) {
  const struct cfg_obuf *o = &s->cfg->obuf[c->nsubs ? CFG_OBUF_PUBSUB : CFG_OBUF_NORMAL];
  uint64_t pending = c->out.len - c->out_sent;
  int over = o->hard_bytes && pending > o->hard_bytes;
  if (o->soft_bytes && pending > o->soft_bytes) {
    if (!c->obuf_soft_since_ms) c->obuf_soft_since_ms = now;
    else if (now - c->obuf_soft_since_ms > (int64_t)o->soft_seconds * 1000) over = 1;
  } else {
    c->obuf_soft_since_ms = 0;
  }
  if (c->out.oom) over = 1;
  if (over && !(c->flags & CLIENT_CLOSE_ASAP)) {
    srv_log(CAIRN_LOG_WARN, NULL,
            "client %llu closed for overcoming of output buffer limits",
            (unsigned long long)c->id);
    c->flags |= CLIENT_CLOSE_ASAP;
  }
}

/* Close clients marked for it; check limits.  Never frees a client that
 * is on the stack: this runs between events. */
/* Every client: soft output limits over time, idle timeouts, and any
 * close that clients_settle did not see. */
static void sweep_clients(struct server *s) {
  int64_t now = now_ms();
  struct client *c = s->clients;
  while (c) {
    struct client *next = c->next;
    check_output_limit(s, c, now);
    if (s->cfg->timeout && !c->nsubs && !c->holds &&
        now - c->last_ms > s->cfg->timeout * 1000)
      c->flags |= CLIENT_CLOSE_ASAP;
    if (c->flags & CLIENT_CLOSE_ASAP) client_free(s, c);
    c = next;
  }
}

/* ------------------------------------------------------------------------
 * Listening
 * --------------------------------------------------------------------- */

static int listen_tcp(struct server *s, const char *addr, int port) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_PASSIVE | AI_NUMERICHOST};
  struct addrinfo *res;
  char ps[16];
  snprintf(ps, sizeof ps, "%d", port);
  if (*addr == '-') addr++;  /* Redis's "optional address" marker */
  int rc = getaddrinfo(addr, ps, &hints, &res);
  if (rc) {
    srv_log(CAIRN_LOG_ERROR, NULL, "bind %s: %s", addr, gai_strerror(rc));
    return -EINVAL;
  }
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1, err = 0;
  if (fd < 0) err = -errno;
  if (!err) {
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (res->ai_family == AF_INET6)
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, 511)) err = -errno;
  }
  freeaddrinfo(res);
  if (err) {
    srv_log(CAIRN_LOG_ERROR, NULL, "could not listen on %s:%d: %s", addr, port,
            strerror(-err));
    if (fd >= 0) close(fd);
    return err;
  }
  if (port == 0) {   /* an ephemeral port: remember which */
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (!getsockname(fd, (struct sockaddr *)&ss, &sl))
      s->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                              : ((struct sockaddr_in6 *)&ss)->sin6_port);
  }
  return fd;
}

static int listen_unix(struct server *s) {
  const char *path = s->cfg->unixsocket;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path) return -ENAMETOOLONG;
  memcpy(sa.sun_path, path, strlen(path) + 1);
  unlink(path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) || listen(fd, 511)) {
    int e = -errno;
    srv_log(CAIRN_LOG_ERROR, NULL, "could not listen on %s: %s", path, strerror(errno));
    close(fd);
    return e;
  }
  if (s->cfg->unixsocketperm) chmod(path, s->cfg->unixsocketperm);
  return fd;
}

static int add_listener(struct server *s, int fd) {
  if (s->nlisten >= (int)(sizeof s->listen_fds / sizeof s->listen_fds[0])) {
    close(fd);
    srv_log(CAIRN_LOG_ERROR, NULL, "too many listening addresses (at most 3 and a unix socket)");
    return -EINVAL;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = EV_LISTEN | (uint64_t)s->nlisten};
  s->listen_fds[s->nlisten++] = fd;
  return epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

int net_init(struct server *s) {
  s->epfd = epoll_create1(EPOLL_CLOEXEC);
  s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  s->id_tab = calloc(SRV_ID_BUCKETS, sizeof *s->id_tab);
  if (s->epfd < 0 || s->efd < 0 || !s->id_tab) return -errno ? -errno : CAIRN_ENOMEM;
  cq_efd = s->efd;
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = EV_EFD};
  if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->efd, &ev)) return -errno;
  s->port = s->cfg->port;
  if (s->cfg->port) {
    char binds[CFG_LINE_MAX], *save = NULL;
    snprintf(binds, sizeof binds, "%s", s->cfg->bind[0] ? s->cfg->bind : "127.0.0.1");
    for (char *a = strtok_r(binds, " ", &save); a; a = strtok_r(NULL, " ", &save)) {
      int fd = listen_tcp(s, a, s->cfg->port);
      if (fd < 0 && *a == '-') continue;  /* optional address */
      if (fd < 0) return fd;
      int rc = add_listener(s, fd);
      if (rc) return rc;
    }
  }
  if (s->cfg->unixsocket[0]) {
    int fd = listen_unix(s);
    if (fd < 0) return fd;
    int rc = add_listener(s, fd);
    if (rc) return rc;
  }
  if (s->nlisten == 0) {
    srv_log(CAIRN_LOG_ERROR, NULL, "nothing to listen on (port 0 and no unixsocket)");
    return -EINVAL;
  }
  return 0;
}

static void close_listeners(struct server *s) {
  for (int i = 0; i < s->nlisten; i++) {
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->listen_fds[i], NULL);
    close(s->listen_fds[i]);
  }
  s->nlisten = 0;
  if (s->cfg->unixsocket[0]) unlink(s->cfg->unixsocket);
}

/* ------------------------------------------------------------------------
 * The loop
 * --------------------------------------------------------------------- */

static void cron(struct server *s) {
  int64_t now = now_ms();
  if (now - s->sample_ms >= 1000) {
    uint64_t d = s->stat_cmds - s->stat_cmds_sample;
    s->ops_sec = (uint64_t)((double)d * 1000.0 / (double)(now - s->sample_ms));
    s->stat_cmds_sample = s->stat_cmds;
    s->sample_ms = now;
  }
  repl_events(s);
  lastsave_collect(s);
  dbsize_collect(s);
  write_release(s);
  sweep_clients(s);
}

static void handle_event(struct server *s, const struct epoll_event *ev) {
  uint64_t id = ev->data.u64;
  if (id == EV_EFD) {
    completions_drain(s);
    return;
  }
  if (id & EV_LISTEN) {
    int i = (int)(id & 0xff);
    if (i < s->nlisten && !s->shutdown_asap) accept_one(s, s->listen_fds[i]);
    return;
  }
  struct client *c = srv_client_by_id(s, id);
  if (!c) return;
  if (ev->events & (EPOLLERR | EPOLLHUP) && !(ev->events & EPOLLIN)) {
    srv_client_close_asap(c);
    return;
  }
  if (ev->events & EPOLLOUT) flush_later(c);
  if ((ev->events & EPOLLIN) && !(c->flags & (CLIENT_CLOSE_ASAP | CLIENT_CLOSE_AFTER_REPLY)))
    client_read(s, c);
}

static int holds_pending(struct server *s) {
  for (struct client *c = s->clients; c; c = c->next)
    if (c->holds) return 1;
  return 0;
}

/* Stop accepting, let in-flight writes finish and their replies go out. */
static void drain_for_shutdown(struct server *s) {
  close_listeners(s);
  int64_t until = now_ms() + SHUTDOWN_WAIT_MS;
  while (holds_pending(s) && now_ms() < until) {
    struct epoll_event evs[EVENTS_MAX];
    int n = epoll_wait(s->epfd, evs, EVENTS_MAX, CRON_MS);
    for (int i = 0; i < n; i++)
      if (evs[i].data.u64 == EV_EFD) completions_drain(s);
    clients_settle(s);
  }
  clients_settle(s);
  for (struct client *c = s->clients; c; c = c->next) client_flush(c);
}

/* The writes of a turn's events reach the log in one write, as Redis
 * writes its AOF once per turn, instead of the first of them alone. */
static void turn_begin(struct server *s) {
  if (!s->db || s->linger_wal) return;
  s->linger_wal = s->db->wal;
  wal_linger(s->linger_wal, 1);
}

void net_turn_end(struct server *s) {
  if (!s->linger_wal) return;
  wal_linger(s->linger_wal, 0);
  s->linger_wal = NULL;
}

int net_run(struct server *s, volatile int *signalled) {
  struct epoll_event evs[EVENTS_MAX];
  s->sample_ms = now_ms();
  int64_t last_cron = now_ms();
  while (!s->shutdown_asap) {
    int n = epoll_wait(s->epfd, evs, EVENTS_MAX, CRON_MS);
    if (*signalled) s->shutdown_asap = 1;
    if (n < 0 && errno != EINTR) {
      srv_log(CAIRN_LOG_ERROR, NULL, "epoll_wait: %s", strerror(errno));
      return -errno;
    }
    if (n > 0) turn_begin(s);
    for (int i = 0; i < n; i++) handle_event(s, &evs[i]);
    net_turn_end(s);
    pubsub_expired_drain(s); /* the engine's expiries, as keyspace events */
    int64_t now = now_ms();
    if (now - last_cron >= CRON_MS) {
      cron(s);
      last_cron = now;
    }
    clients_settle(s);
  }
  drain_for_shutdown(s);
  return 0;
}

/* After cairn_close: free what is left. */
void net_free(struct server *s) {
  while (s->clients) client_free(s, s->clients);
  close_listeners(s);
  if (s->epfd >= 0) close(s->epfd);
  if (s->efd >= 0) close(s->efd);
  free(s->id_tab);
  free(s->flush_ids);
  pthread_mutex_lock(&cq_mu);
  free(cq);
  cq = NULL;
  cq_len = cq_cap = 0;
  pthread_mutex_unlock(&cq_mu);
}
