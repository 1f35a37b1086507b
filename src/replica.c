/*
 * replica.c - replication, the follower's side: the link thread (repl.h).
 *
 * The link connects to the leader, authenticates, says what it has (data
 * id, last LSN, checkpoint LSN, epoch history) and follows the answer:
 *   CONTINUE  frames follow; each is checked, written to our log as it is
 *             and applied (follow_frame);
 *   FULLSYNC  the snapshot follows, into DIR/sync.mdb; the loop closes
 *             the database, installs it (follow_install) and opens it
 *             again; then frames follow;
 *   TRUNCATE  our log diverged: the loop closes the database, cuts the
 *             log (follow_truncate) and opens it again; then reconnect.
 * It acknowledges written, fsynced and applied LSNs after each burst of
 * frames, as soon as the log thread reports them durable, and every
 * second.  A bad frame, a wrong epoch or an LSN gap drops the link (one
 * log line), keeps the data, and the link connects again.
 *
 * A leader whose data id is not ours, while we hold data, is refused: a
 * leader restarted with an empty directory must not wipe its followers.
 * RESYNC (an operator's decision) lifts that for the next connection.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
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

#define CONNECT_MS 2000
#define BACKOFF_MS 1000
#define ACK_MS 1000
#define LINE_MAX_BYTES 8192

enum { S_CONNECT, S_CONNECTING, S_SYNC, S_CONNECTED };
static const char *state_name[] = {"connect", "connecting", "sync",
                                   "connected"};

enum { REQ_NONE, REQ_INSTALL, REQ_TRUNCATE };

static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;            /* link <-> loop requests, stop */
  struct server *srv;
  pthread_t thread;
  int active;                   /* this node follows a leader */
  int running, stop;
  char host[256];
  int port;
  int fd;                       /* the current socket, or -1 */
  int efd;                      /* the log thread: something is durable */
  int state, link_up, in_sync;
  int64_t down_since_ms, last_io_ms;
  char error[300];
  int resync;                   /* an operator asked for a full sync */
  int need_full;                /* our log cannot be cut: full sync */
  uint64_t applied, leader_written;
  /* A request of the link to the loop. */
  int req, req_done, req_rc;
  char req_path[PATH_BYTES_MAX];
  struct meta req_meta;
  uint64_t req_lsn, req_cut;
} L = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER,
       .fd = -1, .efd = -1};

int replica_active(void) { return __atomic_load_n(&L.active, __ATOMIC_ACQUIRE); }

static int stopping(void) { return __atomic_load_n(&L.stop, __ATOMIC_ACQUIRE); }

static void set_state(int state) {
  pthread_mutex_lock(&L.mu);
  L.state = state;
  if (state == S_CONNECTED) {
    L.link_up = 1;
    L.error[0] = '\0';
  } else if (L.link_up || !L.down_since_ms) {
    L.link_up = 0;
    L.down_since_ms = now_ms();
  }
  pthread_mutex_unlock(&L.mu);
}

/* Log and remember why the link is down. */
static void link_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void link_error(const char *fmt, ...) {
  char msg[300];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  pthread_mutex_lock(&L.mu);
  snprintf(L.error, sizeof L.error, "%s", msg);
  pthread_mutex_unlock(&L.mu);
  srv_log(CAIRN_LOG_WARN, NULL, "leader %s:%d: %s", L.host, L.port, msg);
}

/* ------------------------------------------------------------------------
 * Requests to the loop: it alone may close and open the database.
 * --------------------------------------------------------------------- */

static int ask_loop(int req) {
  pthread_mutex_lock(&L.mu);
  L.req = req;
  L.req_done = 0;
  pthread_mutex_unlock(&L.mu);
  net_wake();
  pthread_mutex_lock(&L.mu);
  while (!L.req_done) pthread_cond_wait(&L.cv, &L.mu);
  L.req = REQ_NONE;
  int rc = L.req_rc;
  pthread_mutex_unlock(&L.mu);
  return rc;
}

void replica_loop_work(struct server *s) {
  pthread_mutex_lock(&L.mu);
  int req = L.req_done ? REQ_NONE : L.req;
  pthread_mutex_unlock(&L.mu);
  if (req == REQ_NONE) return;
  bgsave_wait();
  keyspace_count_stop();
  struct logger log = s->db->log;
  char dir[PATH_BYTES_MAX];
  snprintf(dir, sizeof dir, "%s", s->cfg->dir);
  net_turn_end(s);
  db_close_mode(s->db, 0);
  s->db = NULL;
  int rc = req == REQ_INSTALL
               ? follow_install(dir, L.req_path, &L.req_meta, &log)
               : follow_truncate(dir, L.req_lsn, &log, &L.req_cut);
  if (srv_open_engine(s) != 0) {
    srv_log(CAIRN_LOG_ERROR, NULL, "cannot open the database again after %s; "
            "exiting", req == REQ_INSTALL ? "a full sync" : "cutting the log");
    _exit(1);
  }
  follow_set_follower(s->db, 1);
  pthread_mutex_lock(&L.mu);
  L.req_rc = rc;
  L.req_done = 1;
  pthread_cond_broadcast(&L.cv);
  pthread_mutex_unlock(&L.mu);
}

/* ------------------------------------------------------------------------
 * Talking to the leader
 * --------------------------------------------------------------------- */

static int connect_leader(void) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  struct addrinfo *res;
  char port[16];
  snprintf(port, sizeof port, "%d", L.port);
  int rc = getaddrinfo(L.host, port, &hints, &res);
  if (rc) {
    link_error("cannot resolve: %s", gai_strerror(rc));
    return -EINVAL;
  }
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) rc = -errno;
  else if (connect(fd, res->ai_addr, res->ai_addrlen) != 0 &&
           errno != EINPROGRESS)
    rc = -errno;
  freeaddrinfo(res);
  if (rc == 0) {
    struct pollfd pf = {.fd = fd, .events = POLLOUT};
    int err = 0;
    socklen_t el = sizeof err;
    if (poll(&pf, 1, CONNECT_MS) != 1) rc = -ETIMEDOUT;
    else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) || err) rc = -err;
  }
  if (rc == 0) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
  }
  if (fd >= 0) close(fd);
  link_error("cannot connect: %s", strerror(-rc));
  return rc;
}

/* Send a command as a RESP array of the given words. */
static int send_cmd(int fd, int argc, const char **argv) {
  char buf[LINE_MAX_BYTES];
  int n = snprintf(buf, sizeof buf, "*%d\r\n", argc);
  for (int i = 0; i < argc && n > 0 && (size_t)n < sizeof buf; i++)
    n += snprintf(buf + n, sizeof buf - (size_t)n, "$%zu\r\n%s\r\n",
                  strlen(argv[i]), argv[i]);
  if (n < 0 || (size_t)n >= sizeof buf) return -EINVAL;
  return repl_send(fd, buf, (size_t)n);
}

/* Read one reply line (without "\r\n") into buf. */
static int read_line(int fd, char *buf, size_t n, int timeout_ms) {
  size_t len = 0;
  for (;;) {
    if (len + 1 >= n) return -EPROTO;
    int rc = repl_recv(fd, buf + len, 1, timeout_ms);
    if (rc) return rc;
    if (buf[len] == '\n' && len && buf[len - 1] == '\r') {
      buf[len - 1] = '\0';
      return 0;
    }
    len++;
  }
}

static int timeout_ms(void) {
  return (int)MIN(L.srv->cfg->repl_timeout * 1000, 86400000ll);
}

static int command(int fd, int argc, const char **argv, char *line, size_t n) {
  int rc = send_cmd(fd, argc, argv);
  if (rc == 0) rc = read_line(fd, line, n, timeout_ms());
  if (rc == 0) __atomic_store_n(&L.last_io_ms, now_ms(), __ATOMIC_RELAXED);
  return rc;
}

static int authenticate(int fd) {
  const struct srv_config *cfg = L.srv->cfg;
  char line[LINE_MAX_BYTES], port[16];
  int rc = 0;
  if (cfg->masterauth[0]) {
    const char *a[3] = {"AUTH", cfg->masteruser, cfg->masterauth};
    int user = cfg->masteruser[0] != '\0';
    if (!user) a[1] = cfg->masterauth;
    rc = command(fd, user ? 3 : 2, a, line, sizeof line);
    if (rc == 0 && line[0] != '+') {
      link_error("authentication refused: %s", line + 1);
      return -EACCES;
    }
  }
  snprintf(port, sizeof port, "%d", L.srv->port);
  const char *rp[3] = {"REPLCONF", "listening-port", port};
  if (rc == 0) rc = command(fd, 3, rp, line, sizeof line);
  if (rc == 0 && line[0] != '+') {
    link_error("REPLCONF refused: %s", line + 1);
    return -EPROTO;
  }
  return rc;
}

static int send_ack(int fd) {
  struct wal_stats ws;
  wal_stats(L.srv->db->wal, &ws);
  unsigned char b[24];
  put_u64(b, ws.written_lsn);
  put_u64(b + 8, ws.durable_lsn);
  put_u64(b + 16, __atomic_load_n(&L.applied, __ATOMIC_RELAXED));
  return repl_send_msg(fd, REPL_MSG_ACK, b, sizeof b);
}

/* Our side of the handshake: REPLSYNC with what we have. */
static int ask_sync(int fd, struct meta *ours, char *line, size_t n) {
  cairn *db = L.srv->db;
  struct wal_stats ws;
  wal_stats(db->wal, &ws);
  uint64_t ckpt = __atomic_load_n(&db->ckpt_lsn, __ATOMIC_ACQUIRE);
  follow_meta(db, ours);
  char last[24], ck[24], hist[META_EPOCHS_MAX * 44];
  snprintf(last, sizeof last, "%" PRIu64, ws.last_lsn);
  snprintf(ck, sizeof ck, "%" PRIu64, ckpt);
  meta_epochs_format(ours, hist, sizeof hist);
  int empty = ws.last_lsn == 0 && ckpt == 0;
  pthread_mutex_lock(&L.mu);
  int full = L.resync || L.need_full;
  pthread_mutex_unlock(&L.mu);
  const char *a[6] = {"REPLSYNC", empty ? "-" : ours->id, last, ck, hist,
                      "full"};
  __atomic_store_n(&L.applied, ws.last_lsn, __ATOMIC_RELAXED);
  return command(fd, full ? 6 : 5, a, line, n);
}

/* A leader with another data id: ours unless we are empty or told so. */
static int id_ok(const struct meta *ours, const char *their_id, int empty) {
  pthread_mutex_lock(&L.mu);
  int resync = L.resync;
  pthread_mutex_unlock(&L.mu);
  if (empty || resync || !strcmp(ours->id, their_id)) return 1;
  link_error("refusing to follow: the leader's data id %s is not ours (%s); "
             "it may have restarted empty.  Our data is kept; RESYNC replaces "
             "it with the leader's", their_id, ours->id);
  return 0;
}

/* ------------------------------------------------------------------------
 * Full sync
 * --------------------------------------------------------------------- */

static int recv_snapshot(int fd, const char *path) {
  int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) return -errno;
  size_t cap = 256 * 1024;
  char *buf = malloc(cap);
  uint64_t total = 0;
  int rc = buf ? 0 : CAIRN_ENOMEM;
  while (rc == 0) {
    unsigned char h[REPL_MSG_HDR];
    if ((rc = repl_recv(fd, h, sizeof h, timeout_ms())) != 0) break;
    uint32_t len = get_u32(h + 4);
    if (h[0] == REPL_MSG_SNAP_END && len == 8) {
      unsigned char t[8];
      rc = repl_recv(fd, t, 8, timeout_ms());
      if (rc == 0 && get_u64(t) != total) rc = -EPROTO;
      break;
    }
    if (h[0] != REPL_MSG_SNAP || len > REPL_MSG_MAX) {
      rc = -EPROTO;
      break;
    }
    if (len > cap) {
      char *nb = realloc(buf, len);
      if (!nb) {
        rc = CAIRN_ENOMEM;
        break;
      }
      buf = nb;
      cap = len;
    }
    rc = repl_recv(fd, buf, len, timeout_ms());
    if (rc == 0 && write(out, buf, len) != (ssize_t)len) rc = -EIO;
    total += len;
    __atomic_store_n(&L.last_io_ms, now_ms(), __ATOMIC_RELAXED);
  }
  if (rc == 0 && fdatasync(out) != 0) rc = -errno;
  close(out);
  free(buf);
  if (rc) unlink(path);
  return rc;
}

static int full_sync(int fd, const char *rest) {
  char id[META_ID_LEN + 1], hist[META_EPOCHS_MAX * 44];
  struct meta m;
  memset(&m, 0, sizeof m);
  if (sscanf(rest, "%32s %11263s", id, hist) != 2 ||
      meta_epochs_parse(hist, &m) != 0) {
    link_error("bad FULLSYNC line");
    return -EPROTO;
  }
  snprintf(m.id, sizeof m.id, "%s", id);
  m.created_ms = now_ms();
  set_state(S_SYNC);
  __atomic_store_n(&L.in_sync, 1, __ATOMIC_RELAXED);
  srv_log(CAIRN_LOG_INFO, NULL, "full sync from %s:%d: receiving the snapshot",
          L.host, L.port);
  snprintf(L.req_path, sizeof L.req_path, "%s/sync.mdb", L.srv->cfg->dir);
  int rc = recv_snapshot(fd, L.req_path);
  if (rc == 0) {
    L.req_meta = m;
    rc = ask_loop(REQ_INSTALL);
  }
  __atomic_store_n(&L.in_sync, 0, __ATOMIC_RELAXED);
  if (rc) {
    link_error("full sync failed: %s", cairn_strerror(rc));
    return rc;
  }
  pthread_mutex_lock(&L.mu);
  L.resync = L.need_full = 0;
  pthread_mutex_unlock(&L.mu);
  struct wal_stats ws;
  wal_stats(L.srv->db->wal, &ws);
  __atomic_store_n(&L.applied, ws.last_lsn, __ATOMIC_RELAXED);
  srv_log(CAIRN_LOG_INFO, NULL, "full sync from %s:%d done: at LSN %" PRIu64,
          L.host, L.port, ws.last_lsn);
  return send_ack(fd);
}

static int truncate_to(const char *rest) {
  uint64_t lsn;
  if (sscanf(rest, "%" SCNu64, &lsn) != 1) {
    link_error("bad TRUNCATE line");
    return -EPROTO;
  }
  L.req_lsn = lsn;
  int rc = ask_loop(REQ_TRUNCATE);
  if (rc == CAIRN_EEXISTS) {
    pthread_mutex_lock(&L.mu);
    L.need_full = 1;
    pthread_mutex_unlock(&L.mu);
    link_error("our log diverged from the leader's after LSN %" PRIu64
               " and is checkpointed past it: a full sync is needed", lsn);
    return 0;
  }
  if (rc) {
    link_error("cutting our log after LSN %" PRIu64 " failed: %s", lsn,
               cairn_strerror(rc));
    return rc;
  }
  srv_log(CAIRN_LOG_WARN, NULL, "our log diverged from leader %s:%d's: cut %"
          PRIu64 " records after LSN %" PRIu64, L.host, L.port, L.req_cut, lsn);
  return 0;
}

/* ------------------------------------------------------------------------
 * Following
 * --------------------------------------------------------------------- */

/* wal_append_frame's completion: wake the link to acknowledge. */
static void on_durable(void *arg, int rc, uint64_t lsn) {
  (void)arg;
  (void)rc;
  (void)lsn;
  uint64_t one = 1;
  ssize_t w = write(L.efd, &one, sizeof one);
  (void)w;
}

/* One message from the leader. */
static int on_message(int fd, unsigned char *h, char **buf, size_t *cap) {
  uint32_t len = get_u32(h + 4);
  if (len > REPL_MSG_MAX) {
    link_error("message of %u bytes: dropping the link", len);
    return -EPROTO;
  }
  if (len > *cap) {
    char *nb = realloc(*buf, len);
    if (!nb) return CAIRN_ENOMEM;
    *buf = nb;
    *cap = len;
  }
  int rc = repl_recv(fd, *buf, len, timeout_ms());
  if (rc) return rc;
  __atomic_store_n(&L.last_io_ms, now_ms(), __ATOMIC_RELAXED);
  if (h[0] == REPL_MSG_BEAT && len >= 8) {
    __atomic_store_n(&L.leader_written, get_u64(*buf), __ATOMIC_RELAXED);
    return 0;
  }
  if (h[0] != REPL_MSG_FRAME) {
    link_error("unexpected message '%c': dropping the link",
               h[0] >= 32 && h[0] < 127 ? h[0] : '?');
    return -EPROTO;
  }
  const char *why = "";
  uint64_t first = len >= 24 ? get_u64(*buf + 16) : 0;
  uint64_t last = len >= 32 ? get_u64(*buf + 24) : 0;
  rc = follow_frame(L.srv->db, *buf, len, on_durable, NULL, &why);
  if (rc) {
    link_error("bad frame for LSN %" PRIu64 "..%" PRIu64 " (epoch %" PRIu64
               "): %s (%s); dropping the link, our data is kept", first, last,
               len >= 16 ? get_u64(*buf + 8) : 0, why, cairn_strerror(rc));
    return rc;
  }
  __atomic_store_n(&L.applied, last, __ATOMIC_RELAXED);
  return 0;
}

static int follow(int fd) {
  set_state(S_CONNECTED);
  srv_log(CAIRN_LOG_INFO, NULL, "following %s:%d", L.host, L.port);
  char *buf = NULL;
  size_t cap = 0;
  int64_t last_ack = 0;
  int rc = send_ack(fd);
  while (rc == 0 && !stopping()) {
    struct pollfd pf[2] = {{.fd = fd, .events = POLLIN},
                           {.fd = L.efd, .events = POLLIN}};
    int n = poll(pf, 2, ACK_MS);
    if (n < 0 && errno != EINTR) rc = -errno;
    int dirty = 0;
    /* Everything already here, then one acknowledgement. */
    while (rc == 0 && (pf[0].revents & (POLLIN | POLLHUP | POLLERR))) {
      unsigned char h[REPL_MSG_HDR];
      if ((rc = repl_recv(fd, h, sizeof h, timeout_ms())) != 0) break;
      if ((rc = on_message(fd, h, &buf, &cap)) != 0) break;
      dirty = 1;
      pf[0].revents = 0;
      poll(pf, 1, 0);
    }
    if (pf[1].revents & POLLIN) {
      uint64_t v;
      ssize_t r = read(L.efd, &v, sizeof v);
      (void)r;
      dirty = 1;
    }
    int64_t now = now_ms();
    if (rc == 0 && (dirty || now - last_ack >= ACK_MS)) {
      rc = send_ack(fd);
      last_ack = now;
    }
    if (rc == 0 && now - __atomic_load_n(&L.last_io_ms, __ATOMIC_RELAXED) >
                       L.srv->cfg->repl_timeout * 1000) {
      link_error("no data from the leader for %lld s: reconnecting",
                 L.srv->cfg->repl_timeout);
      rc = -ETIMEDOUT;
    }
  }
  free(buf);
  return rc;
}

/* One connection: handshake, then whatever the leader said. */
static int session(void) {
  set_state(S_CONNECTING);
  int fd = connect_leader();
  if (fd < 0) return fd;
  pthread_mutex_lock(&L.mu);
  L.fd = fd;
  pthread_mutex_unlock(&L.mu);
  char line[LINE_MAX_BYTES];
  struct meta ours;
  int rc = authenticate(fd);
  if (rc == 0) rc = ask_sync(fd, &ours, line, sizeof line);
  struct wal_stats ws;
  wal_stats(L.srv->db->wal, &ws);
  int empty = ws.last_lsn == 0 &&
              __atomic_load_n(&L.srv->db->ckpt_lsn, __ATOMIC_ACQUIRE) == 0;
  char id[META_ID_LEN + 1] = "";
  if (rc) {
    if (!stopping()) link_error("handshake failed: %s", cairn_strerror(rc));
  } else if (!strncmp(line, "+CONTINUE ", 10)) {
    sscanf(line + 10, "%32s", id);
    rc = id_ok(&ours, id, empty) ? follow(fd) : -EPERM;
  } else if (!strncmp(line, "+FULLSYNC ", 10)) {
    sscanf(line + 10, "%32s", id);
    rc = id_ok(&ours, id, empty) ? full_sync(fd, line + 10) : -EPERM;
    if (rc == 0) rc = follow(fd);
  } else if (!strncmp(line, "+TRUNCATE ", 10)) {
    rc = truncate_to(line + 10);
  } else {
    link_error("the leader refused: %s", line[0] == '-' ? line + 1 : line);
    rc = -EPROTO;
  }
  pthread_mutex_lock(&L.mu);
  L.fd = -1;
  pthread_mutex_unlock(&L.mu);
  close(fd);
  return rc;
}

static void *link_main(void *arg) {
  (void)arg;
  while (!stopping()) {
    int rc = session();
    if (stopping()) break;
    set_state(S_CONNECT);
    /* After a cut log, reconnect at once; else back off. */
    int64_t wait = rc == 0 ? 0 : rc == -EPERM ? 5 * BACKOFF_MS : BACKOFF_MS;
    int64_t until = now_ms() + wait;
    pthread_mutex_lock(&L.mu);
    while (!L.stop && now_ms() < until) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_nsec += 50 * 1000000;
      if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
      }
      pthread_cond_timedwait(&L.cv, &L.mu, &ts);
      if (L.resync) break;
    }
    pthread_mutex_unlock(&L.mu);
  }
  return NULL;
}

/* ------------------------------------------------------------------------
 * Starting, stopping, reporting
 * --------------------------------------------------------------------- */

int replica_start(struct server *s, const char *host, int port) {
  if (L.efd < 0 && (L.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
    return -errno;
  snprintf(L.host, sizeof L.host, "%s", host);
  L.port = port;
  L.srv = s;
  L.stop = 0;
  L.state = S_CONNECT;
  L.link_up = 0;
  L.down_since_ms = now_ms();
  L.error[0] = '\0';
  follow_set_follower(s->db, 1);
  __atomic_store_n(&L.active, 1, __ATOMIC_RELEASE);
  if (pthread_create(&L.thread, NULL, link_main, NULL) != 0) {
    __atomic_store_n(&L.active, 0, __ATOMIC_RELEASE);
    follow_set_follower(s->db, 0);
    return -EAGAIN;
  }
  L.running = 1;
  srv_log(CAIRN_LOG_INFO, NULL, "following %s:%d (read-only)", host, port);
  return 0;
}

void replica_stop(struct server *s) {
  if (!L.running) return;
  pthread_mutex_lock(&L.mu);
  L.stop = 1;
  if (L.fd >= 0) shutdown(L.fd, SHUT_RDWR);
  pthread_cond_broadcast(&L.cv);
  pthread_mutex_unlock(&L.mu);
  /* The link may be waiting on the loop (this thread): serve it. */
  for (;;) {
    pthread_mutex_lock(&L.mu);
    int pending = L.req != REQ_NONE && !L.req_done;
    pthread_mutex_unlock(&L.mu);
    if (!pending) {
      struct timespec ts = {0, 1000000};
      if (pthread_tryjoin_np(L.thread, NULL) == 0) break;
      nanosleep(&ts, NULL);
      continue;
    }
    replica_loop_work(s);
  }
  L.running = 0;
  __atomic_store_n(&L.active, 0, __ATOMIC_RELEASE);
  if (s->db) follow_set_follower(s->db, 0);
}

void replica_resync(void) {
  pthread_mutex_lock(&L.mu);
  L.resync = 1;
  if (L.fd >= 0) shutdown(L.fd, SHUT_RDWR);
  pthread_cond_broadcast(&L.cv);
  pthread_mutex_unlock(&L.mu);
}

void replica_info(struct server *s, void (*line)(void *, const char *),
                  void *arg) {
  struct meta m;
  follow_meta(s->db, &m);
  int64_t now = now_ms();
  pthread_mutex_lock(&L.mu);
  int up = L.link_up;
  int64_t down = L.down_since_ms;
  char err[300];
  snprintf(err, sizeof err, "%s", L.error);
  pthread_mutex_unlock(&L.mu);
  uint64_t applied = __atomic_load_n(&L.applied, __ATOMIC_RELAXED);
  struct wal_stats ws;
  wal_stats(s->db->wal, &ws);
  int64_t io = __atomic_load_n(&L.last_io_ms, __ATOMIC_RELAXED);
  repl_linef(line, arg, "role:slave");
  repl_linef(line, arg, "master_host:%s", L.host);
  repl_linef(line, arg, "master_port:%d", L.port);
  repl_linef(line, arg, "master_link_status:%s", up ? "up" : "down");
  repl_linef(line, arg, "master_last_io_seconds_ago:%lld",
        io ? (long long)((now - io) / 1000) : -1ll);
  repl_linef(line, arg, "master_sync_in_progress:%d",
        __atomic_load_n(&L.in_sync, __ATOMIC_RELAXED));
  repl_linef(line, arg, "slave_read_repl_offset:%" PRIu64, ws.written_lsn);
  repl_linef(line, arg, "slave_repl_offset:%" PRIu64, applied);
  if (!up)
    repl_linef(line, arg, "master_link_down_since_seconds:%lld",
          (long long)((now - down) / 1000));
  repl_linef(line, arg, "slave_priority:%lld", s->cfg->replica_priority);
  repl_linef(line, arg, "slave_read_only:1");
  repl_linef(line, arg, "replica_announced:1");
  repl_linef(line, arg, "connected_slaves:0");
  repl_linef(line, arg, "master_failover_state:no-failover");
  repl_linef(line, arg, "master_replid:%s%s", m.id, "00000000");
  repl_linef(line, arg, "master_replid2:0000000000000000000000000000000000000000");
  repl_linef(line, arg, "master_repl_offset:%" PRIu64, applied);
  repl_linef(line, arg, "second_repl_offset:-1");
  repl_linef(line, arg, "repl_backlog_active:0");
  repl_linef(line, arg, "epoch:%" PRIu64, meta_epoch(&m));
  repl_linef(line, arg, "master_link_error:%s", err);
}

void replica_role(struct client *c) {
  pthread_mutex_lock(&L.mu);
  int state = L.state;
  pthread_mutex_unlock(&L.mu);
  reply_array(c, 5);
  reply_cstr(c, "slave");
  reply_cstr(c, L.host);
  reply_int(c, L.port);
  reply_cstr(c, state_name[state]);
  reply_int(c, (long long)__atomic_load_n(&L.applied, __ATOMIC_RELAXED));
}
