/*
 * repl.c - replication, the leader's side: one sender and one ack reader
 * per follower, the writes parked for min-replicas-ack, WAIT, retention
 * of the log for followers, and the commands and INFO fields (repl.h).
 *
 * A follower arrives as an ordinary client that sends REPLCONF and then
 * REPLSYNC; the loop hands its socket to a sender thread, which answers
 * the handshake:
 *   - data ids differ, or the follower asks for it: a full sync (the LMDB
 *     snapshot, then the log from the snapshot's LSN);
 *   - the logs disagree past some LSN (epoch histories): TRUNCATE there;
 *   - else CONTINUE from the follower's last LSN if the log still holds
 *     it, or a full sync if it does not.
 * Then it ships frames as the log writes them.
 *
 * Follower records are created and freed by the loop only; the threads
 * update positions with atomics and mark themselves done.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cmds.h"
#include "db.h"
#include "follow.h"
#include "frame.h"
#include "meta.h"
#include "net.h"
#include "record.h"
#include "repl.h"
#include "srv_config.h"
#include "util.h"
#include "wal.h"

#define FOLLOWERS_MAX 64u
#define SEND_BATCH (256u * 1024)   /* frames gathered into one write */
#define BEAT_MS 1000
#define SNAP_CHUNK (256u * 1024)
#define PARKED_MAX (1u << 22)
#define RETAIN_MS 100

enum { F_SYNC, F_ONLINE, F_DONE };

struct follower {
  struct server *srv;
  uint64_t client_id;
  int fd;
  char ip[64];
  int port;                       /* its listening port (REPLCONF) */
  char their_id[META_ID_LEN + 1]; /* "-" when it has nothing */
  uint64_t their_last, their_ckpt;
  struct meta their;              /* their epoch history */
  int want_full;
  pthread_t sender, reader;
  int reader_started;
  /* Shared with the threads (atomics). */
  int state, stop;
  uint64_t written, durable, applied; /* acknowledged */
  uint64_t acks;                      /* acknowledgements received */
  uint64_t floor;                     /* oldest LSN it may still need */
  int64_t last_ack_ms, progress_ms;
};

struct parked {
  uint64_t token, lsn;
  int64_t deadline;
};

struct waiter {
  uint64_t client_id, lsn;
  long long numlocal, num;
  int aof;
  int64_t deadline;               /* 0: forever */
};

static struct {
  pthread_mutex_t mu;             /* the follower array */
  struct follower *f[FOLLOWERS_MAX];
  size_t nf;
  struct parked *parked;          /* a FIFO in LSN order (loop only) */
  size_t phead, plen, pcap;
  struct waiter *waiters;         /* loop only */
  size_t nwait, wcap;
  uint64_t sync_full, sync_partial_ok, sync_partial_err;
} R = {.mu = PTHREAD_MUTEX_INITIALIZER};

static uint64_t ld(const uint64_t *p) {
  return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
static void st(uint64_t *p, uint64_t v) {
  __atomic_store_n(p, v, __ATOMIC_RELEASE);
}
static void count(uint64_t *c) { __atomic_add_fetch(c, 1, __ATOMIC_RELAXED); }

/* ------------------------------------------------------------------------
 * The wire
 * --------------------------------------------------------------------- */

int repl_send(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int repl_recv(int fd, void *buf, size_t n, int timeout_ms) {
  char *p = buf;
  while (n) {
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    int r = poll(&pf, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -errno;
    if (r == 0) return -ETIMEDOUT;
    ssize_t got = recv(fd, p, n, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return -errno;
    if (got == 0) return -ECONNRESET;
    p += got;
    n -= (size_t)got;
  }
  return 0;
}

void repl_msg_hdr(unsigned char hdr[REPL_MSG_HDR], int type, uint32_t len) {
  memset(hdr, 0, REPL_MSG_HDR);
  hdr[0] = (unsigned char)type;
  put_u32(hdr + 4, len);
}

int repl_send_msg(int fd, int type, const void *p, uint32_t n) {
  unsigned char hdr[REPL_MSG_HDR];
  repl_msg_hdr(hdr, type, n);
  int rc = repl_send(fd, hdr, sizeof hdr);
  return rc || !n ? rc : repl_send(fd, p, n);
}

/* ------------------------------------------------------------------------
 * Deciding where a follower starts
 * --------------------------------------------------------------------- */

static void flog(const struct follower *f, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void flog(const struct follower *f, int level, const char *fmt, ...) {
  char msg[512], fields[128];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(fields, sizeof fields, "\"replica\":\"%s:%d\"", f->ip, f->port);
  srv_log(level, fields, "replica %s:%d: %s", f->ip, f->port, msg);
}

static int send_line(struct follower *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int send_line(struct follower *f, const char *fmt, ...) {
  char line[8192];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line - 2, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof line - 2) return -EINVAL;
  memcpy(line + n, "\r\n", 2);
  return repl_send(f->fd, line, (size_t)n + 2);
}

/* ------------------------------------------------------------------------
 * Full sync: the snapshot, copied by a helper thread into a pipe.
 * --------------------------------------------------------------------- */

struct copier {
  cairn *db;
  int fd, rc;
};

static void *copier_main(void *arg) {
  struct copier *c = arg;
  c->rc = follow_snapshot(c->db, c->fd);
  close(c->fd);
  return NULL;
}

/* Stream the snapshot from the pipe's read end as 'S' messages. */
static int pump_snapshot(struct follower *f, int rfd, uint64_t *total) {
  char *buf = malloc(SNAP_CHUNK);
  if (!buf) return CAIRN_ENOMEM;
  int rc = 0;
  for (;;) {
    ssize_t n = read(rfd, buf, SNAP_CHUNK);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n < 0) rc = -errno;
      break;
    }
    *total += (uint64_t)n;
    if ((rc = repl_send_msg(f->fd, REPL_MSG_SNAP, buf, (uint32_t)n)) != 0)
      break;
  }
  free(buf);
  return rc;
}

/* Wait for the follower's first acknowledgement after its snapshot. */
static int await_ack(struct follower *f, uint64_t acks_before) {
  int64_t until = now_ms() + f->srv->cfg->repl_timeout * 1000;
  while (ld(&f->acks) == acks_before) {
    if (__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE) || now_ms() > until)
      return -ETIMEDOUT;
    if (__atomic_load_n(&f->state, __ATOMIC_ACQUIRE) == F_DONE)
      return -ECONNRESET;
    usleep(2000);
  }
  return 0;
}

static int full_sync(struct follower *f, const struct meta *ours,
                     uint64_t *from) {
  cairn *db = f->srv->db;
  char hist[META_EPOCHS_MAX * 44];
  meta_epochs_format(ours, hist, sizeof hist);
  st(&f->floor, __atomic_load_n(&db->ckpt_lsn, __ATOMIC_ACQUIRE));
  count(&R.sync_full); /* as Redis counts it: when one begins */
  int rc = send_line(f, "+FULLSYNC %s %s", ours->id, hist);
  int p[2];
  if (rc == 0 && pipe2(p, O_CLOEXEC) != 0) rc = -errno;
  if (rc) return rc;
  flog(f, CAIRN_LOG_INFO, "full sync: sending the snapshot");
  uint64_t acks = ld(&f->acks), total = 0;
  struct copier cp = {db, p[1], 0};
  pthread_t t;
  if (pthread_create(&t, NULL, copier_main, &cp) != 0) {
    close(p[0]);
    close(p[1]);
    return -EAGAIN;
  }
  rc = pump_snapshot(f, p[0], &total);
  close(p[0]); /* a copier still writing gets EPIPE and ends */
  pthread_join(t, NULL);
  if (rc == 0) rc = cp.rc;
  unsigned char end[8];
  put_u64(end, total);
  if (rc == 0) rc = repl_send_msg(f->fd, REPL_MSG_SNAP_END, end, 8);
  if (rc == 0) rc = await_ack(f, acks);
  if (rc) {
    flog(f, CAIRN_LOG_WARN, "full sync failed: %s", cairn_strerror(rc));
    return rc;
  }
  *from = ld(&f->written);
  flog(f, CAIRN_LOG_INFO, "full sync: %" PRIu64 " bytes sent; the follower "
       "is at LSN %" PRIu64, total, *from);
  return 0;
}

/* Answer REPLSYNC; on success *cur reads the log from where the follower
 * goes on.  Returns 1 when the link should just end (TRUNCATE sent). */
static int handshake(struct follower *f, struct wal_cursor **cur) {
  cairn *db = f->srv->db;
  struct meta ours;
  follow_meta(db, &ours);
  uint64_t last = wal_last_lsn(db->wal), from = f->their_last;
  int full = f->want_full || strcmp(f->their_id, ours.id) != 0;
  if (!full) {
    uint64_t agreed = meta_agreed(&ours, last, &f->their, f->their_last);
    if (f->their_last > agreed) {
      flog(f, CAIRN_LOG_WARN, "its log diverged from ours after LSN %" PRIu64
           " (it has %" PRIu64 "): asking it to cut its tail", agreed,
           f->their_last);
      send_line(f, "+TRUNCATE %" PRIu64, agreed);
      return 1;
    }
    st(&f->floor, from);
    if (wal_cursor_open(db->wal, from, cur) == 0) {
      count(&R.sync_partial_ok);
      flog(f, CAIRN_LOG_INFO, "continuing from LSN %" PRIu64, from);
      return send_line(f, "+CONTINUE %s %" PRIu64, ours.id, meta_epoch(&ours));
    }
    count(&R.sync_partial_err);
    flog(f, CAIRN_LOG_INFO, "the log no longer holds LSN %" PRIu64
         ": full sync", from + 1);
  }
  int rc = full_sync(f, &ours, &from);
  if (rc == 0 && (rc = wal_cursor_open(db->wal, from, cur)) != 0)
    flog(f, CAIRN_LOG_WARN, "no log after the snapshot's LSN %" PRIu64 ": %s",
         from, cairn_strerror(rc));
  return rc;
}

/* ------------------------------------------------------------------------
 * Streaming
 * --------------------------------------------------------------------- */

struct outbuf {
  unsigned char *p;
  size_t len, cap;
};

static int out_frame(struct outbuf *o, const void *fr, size_t len) {
  if (o->len + REPL_MSG_HDR + len > o->cap) {
    size_t cap = MAX(o->cap * 2, o->len + REPL_MSG_HDR + len);
    unsigned char *n = realloc(o->p, cap);
    if (!n) return CAIRN_ENOMEM;
    o->p = n;
    o->cap = cap;
  }
  repl_msg_hdr(o->p + o->len, REPL_MSG_FRAME, (uint32_t)len);
  memcpy(o->p + o->len + REPL_MSG_HDR, fr, len);
  o->len += REPL_MSG_HDR + len;
  return 0;
}

static int beat(struct follower *f) {
  struct wal_stats ws;
  wal_stats(f->srv->db->wal, &ws);
  unsigned char b[24];
  put_u64(b, ws.written_lsn);
  put_u64(b + 8, ws.durable_lsn);
  put_u64(b + 16, (uint64_t)now_ms());
  return repl_send_msg(f->fd, REPL_MSG_BEAT, b, sizeof b);
}

static int stream(struct follower *f, struct wal_cursor *cur) {
  struct wal *w = f->srv->db->wal;
  struct outbuf o = {0};
  uint64_t sent = ld(&f->floor);
  int64_t last_beat = 0;
  int rc = 0;
  __atomic_store_n(&f->state, F_ONLINE, __ATOMIC_RELEASE);
  net_wake();
  while (!__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE)) {
    const void *fr;
    size_t len;
    struct frame_hdr h;
    int n = wal_cursor_next(cur, &fr, &len, &h);
    if (n == 1) {
      if ((rc = out_frame(&o, fr, len)) != 0) break;
      sent = h.last_lsn;
      if (o.len < SEND_BATCH) continue;
    } else if (n < 0) {
      rc = n;
      flog(f, CAIRN_LOG_WARN, "%s at LSN %" PRIu64 "; the follower will "
           "need a full sync", n == CAIRN_ENOTFOUND ? "the log moved on"
           : cairn_strerror(n), sent + 1);
      break;
    }
    if (o.len) {
      if ((rc = repl_send(f->fd, o.p, o.len)) != 0) break;
      o.len = 0;
      if (n == 1) continue;
    }
    int64_t now = now_ms();
    if (now - last_beat >= BEAT_MS) {
      if ((rc = beat(f)) != 0) break;
      last_beat = now;
    }
    wal_wait_written(w, sent, 100);
  }
  free(o.p);
  return rc;
}

static void *sender_main(void *arg) {
  struct follower *f = arg;
  struct wal_cursor *cur = NULL;
  int rc = handshake(f, &cur);
  if (rc == 0) rc = stream(f, cur);
  wal_cursor_close(cur);
  if (rc < 0 && rc != -EPIPE && rc != -ECONNRESET &&
      !__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE))
    flog(f, CAIRN_LOG_WARN, "link ended: %s", cairn_strerror(rc));
  shutdown(f->fd, SHUT_RDWR); /* ends the ack reader too */
  __atomic_store_n(&f->state, F_DONE, __ATOMIC_RELEASE);
  net_wake();
  return NULL;
}

/* The follower's acknowledgements: written, fsynced, applied. */
static void *reader_main(void *arg) {
  struct follower *f = arg;
  unsigned char m[REPL_MSG_HDR + 24];
  while (!__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE)) {
    int rc = repl_recv(f->fd, m, REPL_MSG_HDR, -1);
    if (rc) break;
    uint32_t len = get_u32(m + 4);
    if (m[0] != REPL_MSG_ACK || len != 24) {
      flog(f, CAIRN_LOG_WARN, "unexpected message '%c' (%u bytes): dropping "
           "the link", m[0] >= 32 && m[0] < 127 ? m[0] : '?', len);
      break;
    }
    if (repl_recv(f->fd, m + REPL_MSG_HDR, 24, -1)) break;
    uint64_t d = get_u64(m + REPL_MSG_HDR + 8);
    if (d != ld(&f->durable))
      __atomic_store_n(&f->progress_ms, now_ms(), __ATOMIC_RELAXED);
    st(&f->written, get_u64(m + REPL_MSG_HDR));
    st(&f->durable, d);
    st(&f->applied, get_u64(m + REPL_MSG_HDR + 16));
    __atomic_store_n(&f->last_ack_ms, now_ms(), __ATOMIC_RELAXED);
    count(&f->acks);
    net_wake();
  }
  shutdown(f->fd, SHUT_RDWR);
  return NULL;
}

/* ------------------------------------------------------------------------
 * Followers: created by REPLSYNC, reaped by the loop
 * --------------------------------------------------------------------- */

static void follower_free(struct follower *f) {
  __atomic_store_n(&f->stop, 1, __ATOMIC_RELEASE);
  shutdown(f->fd, SHUT_RDWR);
  pthread_join(f->sender, NULL);
  if (f->reader_started) pthread_join(f->reader, NULL);
  close(f->fd);
  free(f);
}

static void reap(int all) {
  pthread_mutex_lock(&R.mu);
  for (size_t i = 0; i < R.nf;) {
    struct follower *f = R.f[i];
    if (!all && __atomic_load_n(&f->state, __ATOMIC_ACQUIRE) != F_DONE) {
      i++;
      continue;
    }
    R.f[i] = R.f[--R.nf];
    pthread_mutex_unlock(&R.mu);
    flog(f, CAIRN_LOG_INFO, "disconnected");
    follower_free(f);
    pthread_mutex_lock(&R.mu);
  }
  pthread_mutex_unlock(&R.mu);
}

static int follower_start(struct follower *f) {
  pthread_mutex_lock(&R.mu);
  int rc = R.nf < FOLLOWERS_MAX ? 0 : -EMFILE;
  if (rc == 0 && pthread_create(&f->reader, NULL, reader_main, f) != 0)
    rc = -EAGAIN;
  f->reader_started = rc == 0;
  if (rc == 0 && pthread_create(&f->sender, NULL, sender_main, f) != 0) {
    __atomic_store_n(&f->stop, 1, __ATOMIC_RELEASE);
    shutdown(f->fd, SHUT_RDWR);
    pthread_join(f->reader, NULL);
    rc = -EAGAIN;
  }
  if (rc == 0) R.f[R.nf++] = f;
  pthread_mutex_unlock(&R.mu);
  return rc;
}

/* The durable LSN that n followers have reached (0 if fewer are online). */
static uint64_t acked_by(size_t n) {
  uint64_t d[FOLLOWERS_MAX];
  size_t k = 0;
  pthread_mutex_lock(&R.mu);
  for (size_t i = 0; i < R.nf; i++)
    if (__atomic_load_n(&R.f[i]->state, __ATOMIC_ACQUIRE) == F_ONLINE)
      d[k++] = ld(&R.f[i]->durable);
  pthread_mutex_unlock(&R.mu);
  if (n == 0) return UINT64_MAX;
  if (k < n) return 0;
  for (size_t i = 0; i < n; i++) /* partial selection: the n-th highest */
    for (size_t j = i + 1; j < k; j++)
      if (d[j] > d[i]) {
        uint64_t t = d[i];
        d[i] = d[j];
        d[j] = t;
      }
  return d[n - 1];
}

static size_t count_reached(uint64_t lsn) {
  size_t n = 0;
  pthread_mutex_lock(&R.mu);
  for (size_t i = 0; i < R.nf; i++)
    if (__atomic_load_n(&R.f[i]->state, __ATOMIC_ACQUIRE) == F_ONLINE &&
        ld(&R.f[i]->durable) >= lsn)
      n++;
  pthread_mutex_unlock(&R.mu);
  return n;
}

/* Keep the log that followers still need, within the configured bounds:
 * a follower further behind than repl-backlog-size (estimated from the
 * log's average record size) or stuck for repl-backlog-ttl is given up
 * on, and will take a full sync. */
static void retain(struct server *s) {
  struct wal_stats ws;
  wal_stats(s->db->wal, &ws);
  double per_lsn = ws.last_lsn ? (double)ws.bytes / (double)ws.last_lsn : 0;
  uint64_t floor = UINT64_MAX;
  int64_t now = now_ms();
  pthread_mutex_lock(&R.mu);
  for (size_t i = 0; i < R.nf; i++) {
    struct follower *f = R.f[i];
    int state = __atomic_load_n(&f->state, __ATOMIC_ACQUIRE);
    if (state == F_DONE) continue;
    uint64_t need = state == F_SYNC ? ld(&f->floor) : ld(&f->durable);
    double behind = (double)(ws.last_lsn - MIN(need, ws.last_lsn)) * per_lsn;
    int64_t since = __atomic_load_n(&f->progress_ms, __ATOMIC_RELAXED);
    if (behind > (double)s->cfg->repl_backlog_size ||
        (need < ws.last_lsn &&
         now - since > s->cfg->repl_backlog_ttl * 1000))
      continue;
    floor = MIN(floor, need);
  }
  pthread_mutex_unlock(&R.mu);
  wal_retain(s->db->wal, floor);
}

/* ------------------------------------------------------------------------
 * Parked writes and WAIT
 * --------------------------------------------------------------------- */

int repl_park(struct server *s, uint64_t token, uint64_t lsn) {
  long long n = s->cfg->min_replicas_ack;
  /* MEMORY writes (top bit) are not logged, so not replicated. */
  if (n <= 0 || lsn == 0 || (lsn >> 63) || replica_active()) return 0;
  if (acked_by((size_t)n) >= lsn) return 0;
  if (R.plen == R.pcap) {
    if (R.pcap >= PARKED_MAX) return 0; /* sent unparked: logged below */
    size_t cap = R.pcap ? R.pcap * 2 : 1024;
    struct parked *p = malloc(cap * sizeof *p);
    if (!p) return 0;
    for (size_t i = 0; i < R.plen; i++)
      p[i] = R.parked[(R.phead + i) % R.pcap];
    free(R.parked);
    R.parked = p;
    R.pcap = cap;
    R.phead = 0;
  }
  R.parked[(R.phead + R.plen++) % R.pcap] = (struct parked){
      token, lsn, now_ms() + s->cfg->min_replicas_timeout};
  return 1;
}

static void release_parked(struct server *s) {
  if (!R.plen) return;
  uint64_t acked = acked_by((size_t)MAX(s->cfg->min_replicas_ack, 1));
  int64_t now = now_ms();
  while (R.plen) {
    struct parked *p = &R.parked[R.phead];
    int rc;
    if (p->lsn <= acked) rc = 0;
    else if (p->deadline <= now) rc = SRV_ENOREPLICAS;
    else break;
    uint64_t token = p->token;
    R.phead = (R.phead + 1) % R.pcap;
    R.plen--;
    net_complete(s, token, rc);
  }
}

static int waiter_done(struct server *s, const struct waiter *w, int64_t now) {
  struct client *c = srv_client_by_id(s, w->client_id);
  if (!c) return 1;
  size_t reached = count_reached(w->lsn);
  struct wal_stats ws;
  wal_stats(s->db->wal, &ws);
  int local = ws.durable_lsn >= w->lsn;
  int enough = (long long)reached >= w->num && (!w->aof || local ||
                                                w->numlocal == 0);
  if (!enough && (w->deadline == 0 || now < w->deadline)) return 0;
  if (w->aof) {
    reply_array(c, 2);
    reply_int(c, local);
    reply_int(c, (long long)reached);
  } else {
    reply_int(c, (long long)reached);
  }
  net_client_unblock(c);
  return 1;
}

static void release_waiters(struct server *s) {
  int64_t now = now_ms();
  for (size_t i = 0; i < R.nwait;) {
    if (waiter_done(s, &R.waiters[i], now)) R.waiters[i] = R.waiters[--R.nwait];
    else i++;
  }
}

void repl_events(struct server *s) {
  if (!s->db) return;
  reap(0);
  if (replica_active()) {
    replica_loop_work(s);
    return;
  }
  release_parked(s);
  release_waiters(s);
  /* This runs at every wake of the loop; the floor only matters to the
   * next checkpoint, so a tenth of a second is soon enough. */
  static int64_t last_retain;
  int64_t now = now_ms();
  if (now - last_retain >= RETAIN_MS) {
    retain(s);
    last_retain = now;
  }
}

/* ------------------------------------------------------------------------
 * Starting and stopping
 * --------------------------------------------------------------------- */

static int parse_hostport(const char *text, char *host, size_t n, int *port) {
  char h[256];
  int p;
  if (sscanf(text, "%255s %d", h, &p) != 2 || p <= 0 || p > 65535)
    return CAIRN_EINVAL;
  snprintf(host, n, "%s", h);
  *port = p;
  return 0;
}

int repl_start(struct server *s) {
  if (s->cfg->replicaof[0] && !s->cfg->promote) {
    char host[256];
    int port;
    if (parse_hostport(s->cfg->replicaof, host, sizeof host, &port)) {
      srv_log(CAIRN_LOG_ERROR, NULL, "replicaof: expected HOST PORT, got '%s'",
              s->cfg->replicaof);
      return CAIRN_EINVAL;
    }
    return replica_start(s, host, port);
  }
  /* A leader that restarts begins a new epoch: records it may have lost
   * (with durability interval) and then written again under the same
   * LSNs must never look like the same history to a follower. */
  if (wal_last_lsn(s->db->wal) > 0 || s->cfg->promote) {
    uint64_t e;
    int rc = follow_promote(s->db, &e);
    if (rc) {
      srv_log(CAIRN_LOG_ERROR, NULL, "cannot begin a new epoch: %s",
              cairn_strerror(rc));
      return rc;
    }
  }
  return 0;
}

void repl_stop(struct server *s) {
  (void)s;
  replica_stop(s);
  reap(1);
  if (s->db) wal_retain(s->db->wal, UINT64_MAX);
}

int repl_is_follower(const struct server *s) {
  (void)s;
  return replica_active();
}

void repl_sync_stats(uint64_t out[3]) {
  out[0] = __atomic_load_n(&R.sync_full, __ATOMIC_RELAXED);
  out[1] = __atomic_load_n(&R.sync_partial_ok, __ATOMIC_RELAXED);
  out[2] = __atomic_load_n(&R.sync_partial_err, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------------
 * INFO and ROLE
 * --------------------------------------------------------------------- */

void repl_linef(void (*line)(void *, const char *), void *arg,
                const char *fmt, ...) {
  char buf[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  line(arg, buf);
}

static void leader_info(struct server *s, void (*line)(void *, const char *),
                        void *arg) {
  struct wal_stats ws;
  wal_stats(s->db->wal, &ws);
  struct meta m;
  follow_meta(s->db, &m);
  repl_linef(line, arg, "role:master");
  int64_t now = now_ms();
  size_t online = 0;
  pthread_mutex_lock(&R.mu);
  for (size_t i = 0; i < R.nf; i++)
    online += __atomic_load_n(&R.f[i]->state, __ATOMIC_ACQUIRE) != F_DONE;
  repl_linef(line, arg, "connected_slaves:%zu", online);
  for (size_t i = 0, k = 0; i < R.nf; i++) {
    struct follower *f = R.f[i];
    int state = __atomic_load_n(&f->state, __ATOMIC_ACQUIRE);
    if (state == F_DONE) continue;
    int64_t ack = __atomic_load_n(&f->last_ack_ms, __ATOMIC_RELAXED);
    repl_linef(line, arg, "slave%zu:ip=%s,port=%d,state=%s,offset=%" PRIu64
          ",lag=%lld", k++, f->ip, f->port,
          state == F_ONLINE ? "online" : "wait_bgsave", ld(&f->durable),
          ack ? (long long)((now - ack) / 1000) : 0ll);
  }
  pthread_mutex_unlock(&R.mu);
  repl_linef(line, arg, "master_failover_state:no-failover");
  repl_linef(line, arg, "master_replid:%s%s", m.id, "00000000");
  repl_linef(line, arg, "master_replid2:0000000000000000000000000000000000000000");
  repl_linef(line, arg, "master_repl_offset:%" PRIu64, ws.written_lsn);
  repl_linef(line, arg, "second_repl_offset:-1");
  repl_linef(line, arg, "repl_backlog_active:1");
  repl_linef(line, arg, "repl_backlog_size:%lld", s->cfg->repl_backlog_size);
  /* In LSNs, like every offset here: what the log still holds. */
  uint64_t first = ws.oldest_lsn ? ws.oldest_lsn : ws.written_lsn + 1;
  repl_linef(line, arg, "repl_backlog_first_byte_offset:%" PRIu64, first);
  repl_linef(line, arg, "repl_backlog_histlen:%" PRIu64,
        ws.written_lsn + 1 - MIN(first, ws.written_lsn + 1));
  repl_linef(line, arg, "epoch:%" PRIu64, meta_epoch(&m));
}

void repl_info(struct server *s, void (*line)(void *, const char *),
               void *arg) {
  if (replica_active()) replica_info(s, line, arg);
  else leader_info(s, line, arg);
}

void cmd_role(struct client *c) {
  if (replica_active()) {
    replica_role(c);
    return;
  }
  struct wal_stats ws;
  wal_stats(c->srv->db->wal, &ws);
  char port[16], off[24];
  pthread_mutex_lock(&R.mu);
  size_t n = 0;
  for (size_t i = 0; i < R.nf; i++)
    n += __atomic_load_n(&R.f[i]->state, __ATOMIC_ACQUIRE) == F_ONLINE;
  reply_array(c, 3);
  reply_cstr(c, "master");
  reply_int(c, (long long)ws.written_lsn);
  reply_array(c, n);
  for (size_t i = 0; i < R.nf; i++) {
    struct follower *f = R.f[i];
    if (__atomic_load_n(&f->state, __ATOMIC_ACQUIRE) != F_ONLINE) continue;
    snprintf(port, sizeof port, "%d", f->port);
    snprintf(off, sizeof off, "%" PRIu64, ld(&f->durable));
    reply_array(c, 3);
    reply_cstr(c, f->ip);
    reply_cstr(c, port);
    reply_cstr(c, off);
  }
  pthread_mutex_unlock(&R.mu);
}

/* ------------------------------------------------------------------------
 * Commands
 * --------------------------------------------------------------------- */

/* REPLICAOF host port | NO ONE (and SLAVEOF). */
void cmd_replicaof(struct client *c) {
  struct server *s = c->srv;
  if (!strcasecmp(c->argv[1], "no") && !strcasecmp(c->argv[2], "one")) {
    if (!replica_active()) {
      reply_ok(c);
      return;
    }
    replica_stop(s);
    follow_set_follower(s->db, 0);
    uint64_t e = 0;
    int rc = follow_promote(s->db, &e);
    if (rc) {
      reply_errorf(c, "ERR cannot begin a new epoch: %s", cairn_strerror(rc));
      return;
    }
    srv_log(CAIRN_LOG_INFO, NULL, "promoted to leader by client %llu: epoch %"
            PRIu64, (unsigned long long)c->id, e);
    reply_ok(c);
    return;
  }
  char *end;
  long port = strtol(c->argv[2], &end, 10);
  if (*end || port <= 0 || port > 65535) {
    reply_error(c, "ERR Invalid master port");
    return;
  }
  reap(1); /* a leader's followers go: this node follows now */
  replica_stop(s);
  int rc = replica_start(s, c->argv[1], (int)port);
  if (rc) {
    reply_errorf(c, "ERR cannot follow %s:%ld: %s", c->argv[1], port,
                 cairn_strerror(rc));
    return;
  }
  reply_ok(c);
}

/* REPLCONF listening-port N | capa ... | ack ...: all OK. */
void cmd_replconf(struct client *c) {
  if ((c->argc - 1) % 2) {
    reply_error(c, ERR_SYNTAX);
    return;
  }
  for (int i = 1; i + 1 < c->argc; i += 2)
    if (!strcasecmp(c->argv[i], "listening-port"))
      c->repl_port = atoi(c->argv[i + 1]);
  reply_ok(c);
}

static int parse_u64(const char *s, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || *s == '-') return CAIRN_EINVAL;
  *out = v;
  return 0;
}

/* REPLSYNC id last_lsn checkpoint_lsn epochs [full] */
void cmd_replsync(struct client *c) {
  if (replica_active()) {
    reply_error(c, "ERR this node is a follower: connect to its leader");
    return;
  }
  struct follower *f = calloc(1, sizeof *f);
  if (!f) {
    reply_error(c, "ERR out of memory");
    return;
  }
  if (c->argc > 6 || strlen(c->argv[1]) > META_ID_LEN ||
      parse_u64(c->argv[2], &f->their_last) ||
      parse_u64(c->argv[3], &f->their_ckpt) ||
      meta_epochs_parse(c->argv[4], &f->their) ||
      (c->argc == 6 && strcasecmp(c->argv[5], "full"))) {
    free(f);
    reply_error(c, ERR_SYNTAX);
    return;
  }
  snprintf(f->their_id, sizeof f->their_id, "%s", c->argv[1]);
  f->want_full = c->argc == 6;
  f->srv = c->srv;
  f->client_id = c->id;
  f->port = c->repl_port;
  f->progress_ms = now_ms();
  snprintf(f->ip, sizeof f->ip, "%s", c->addr);
  char *colon = strrchr(f->ip, ':');
  if (colon) *colon = '\0';
  if ((f->fd = net_client_detach(c)) < 0 || follower_start(f) != 0) {
    if (f->fd >= 0) close(f->fd);
    free(f);
    srv_log(CAIRN_LOG_WARN, NULL, "could not start a replication link for "
            "client %llu", (unsigned long long)c->id);
    return;
  }
}

void cmd_resync(struct client *c) {
  if (!replica_active()) {
    reply_error(c, "ERR RESYNC is for a follower; this node is a leader");
    return;
  }
  replica_resync();
  reply_ok(c);
}

static int parse_timeout(struct client *c, const char *arg, int64_t *deadline) {
  char *end;
  long long ms = strtoll(arg, &end, 10);
  if (*end || end == arg) {
    reply_error(c, "ERR timeout is not an integer or out of range");
    return -1;
  }
  if (ms < 0) {
    reply_error(c, "ERR timeout is negative");
    return -1;
  }
  *deadline = ms ? now_ms() + ms : 0;
  return 0;
}

static void wait_common(struct client *c, long long numlocal, long long num,
                        int aof, const char *timeout) {
  if (replica_active()) {
    reply_error(c, "ERR WAIT cannot be used with replica instances. Please "
                "also note that since Redis 4.0 if a replica is configured to "
                "be writable (which is not the default) writes to replicas "
                "are just local and are not propagated.");
    return;
  }
  int64_t deadline;
  if (parse_timeout(c, timeout, &deadline)) return;
  struct waiter w = {c->id, wal_last_lsn(c->srv->db->wal), numlocal, num, aof,
                     deadline};
  if (c->in_multi) w.deadline = 1; /* nothing blocks inside EXEC */
  if (waiter_done(c->srv, &w, now_ms())) return;
  if (R.nwait == R.wcap) {
    size_t cap = R.wcap ? R.wcap * 2 : 16;
    struct waiter *n = realloc(R.waiters, cap * sizeof *n);
    if (!n) {
      reply_error(c, "ERR out of memory");
      return;
    }
    R.waiters = n;
    R.wcap = cap;
  }
  R.waiters[R.nwait++] = w;
  net_client_block(c);
}

static int parse_count(struct client *c, const char *arg, long long *out) {
  char *end;
  *out = strtoll(arg, &end, 10);
  if (*end || end == arg || *out < 0) {
    reply_error(c, ERR_NOTINT);
    return -1;
  }
  return 0;
}

void cmd_wait(struct client *c) {
  long long n;
  if (parse_count(c, c->argv[1], &n)) return;
  wait_common(c, 0, n, 0, c->argv[2]);
}

void cmd_waitaof(struct client *c) {
  long long local, n;
  if (parse_count(c, c->argv[1], &local) || parse_count(c, c->argv[2], &n))
    return;
  if (local > 1) {
    reply_error(c, "ERR WAITAOF cannot be used when numlocal is set but "
                "appendonly is disabled.");
    return;
  }
  wait_common(c, local, n, 1, c->argv[3]);
}
