/*
 * repl_peer - a fake cairn leader that sends a follower one bad frame.
 *
 *   repl_peer PORT MODE [GOOD]
 *
 * PORT 0 picks a free port.  MODE is what goes wrong after GOOD (default
 * 3) valid frames of epoch 1, LSNs 1..GOOD, each one REC_PUT of key
 * "peer:I" = "value-I" in namespace "default" (cairnd's DB 0):
 *
 *   checksum  the next frame (LSN GOOD+1) has one payload bit flipped;
 *   epoch     two valid frames of epoch 2 (LSNs GOOD+1, GOOD+2), then a
 *             frame of epoch 1 with the right next LSN (GOOD+3);
 *   gap       the next frame starts at LSN GOOD+2.
 *
 * The conversation (tests/integration/test_repl_faults.py drives it): accept
 * the follower, answer its RESP commands (+OK) until REPLSYNC, answer
 * "+CONTINUE <id> <epoch>", send the valid frames, wait for the follower's
 * ack of them, send the bad frame, then wait for the follower to come back
 * and print the REPLSYNC it sends the second time.  Lines on stdout:
 *
 *   listening PORT
 *   replsync1 <arguments of the first REPLSYNC>
 *   acked <applied LSN the follower acknowledged, or -1 if none came>
 *   bad <mode> lsn <first_lsn of the bad frame>
 *   expect_last_lsn <the follower's last LSN: every valid frame>
 *   replsync2 <arguments of the second REPLSYNC>
 *
 * Exit 0 after the second REPLSYNC, 1 on an error or after 30 s.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "record.h"

#define PEER_DEADLINE_S 30
#define PEER_LINE_MAX 4096
#define PEER_ARGS_MAX 16
#define PEER_MSG_HDR 8
#define PEER_ID "0123456789abcdef0123456789abcdef"

static void die(const char *what) {
  fprintf(stderr, "repl_peer: %s%s%s\n", what, errno ? ": " : "",
          errno ? strerror(errno) : "");
  exit(EXIT_FAILURE);
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------------
 * Sockets, with a bounded wait on every read
 * --------------------------------------------------------------------- */

static int listen_on(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  if (fd < 0) die("socket");
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 4)) die("bind/listen");
  socklen_t n = sizeof a;
  if (getsockname(fd, (struct sockaddr *)&a, &n)) die("getsockname");
  printf("listening %d\n", ntohs(a.sin_port));
  return fd;
}

/* Wait until fd is readable or ms pass; 1 readable, 0 timeout. */
static int readable(int fd, int ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int rc;
  do rc = poll(&p, 1, ms); while (rc < 0 && errno == EINTR);
  if (rc < 0) die("poll");
  return rc > 0;
}

static int accept_one(int lfd) {
  if (!readable(lfd, 20000)) {
    errno = 0;
    die("no follower connected within 20 s");
  }
  int fd = accept(lfd, NULL, NULL), one = 1;
  if (fd < 0) die("accept");
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

static void send_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) die("send");
    p += n;
    len -= (size_t)n;
  }
}

/* One byte, waiting at most ms; -1 on timeout or close. */
static int get_byte(int fd, int ms) {
  unsigned char c;
  if (!readable(fd, ms)) return -1;
  ssize_t n = recv(fd, &c, 1, 0);
  return n == 1 ? c : -1;
}

/* Exactly len bytes, or -1. */
static int get_exact(int fd, void *buf, size_t len, int ms) {
  unsigned char *p = buf;
  for (size_t i = 0; i < len; i++) {
    int c = get_byte(fd, ms);
    if (c < 0) return -1;
    p[i] = (unsigned char)c;
  }
  return 0;
}

/* A line without its CRLF into buf (cap PEER_LINE_MAX); -1 on error. */
static int get_line(int fd, char *buf, int ms) {
  size_t n = 0;
  for (;;) {
    int c = get_byte(fd, ms);
    if (c < 0 || n + 1 >= PEER_LINE_MAX) return -1;
    if (c == '\n') break;
    buf[n++] = (char)c;
  }
  if (n > 0 && buf[n - 1] == '\r') n--;
  buf[n] = 0;
  return 0;
}

/* ------------------------------------------------------------------------
 * RESP commands from the follower
 * --------------------------------------------------------------------- */

/* One command (a RESP array of bulks, or an inline line) as a line of
 * space-separated words in out.  -1 when the follower closed. */
static int read_command(int fd, char *out) {
  char line[PEER_LINE_MAX];
  if (get_line(fd, line, 10000)) return -1;
  if (line[0] != '*') {
    snprintf(out, PEER_LINE_MAX, "%s", line);
    return 0;
  }
  long n = strtol(line + 1, NULL, 10);
  if (n < 1 || n > PEER_ARGS_MAX) return -1;
  out[0] = 0;
  size_t used = 0;
  for (long i = 0; i < n; i++) {
    if (get_line(fd, line, 10000) || line[0] != '$') return -1;
    long len = strtol(line + 1, NULL, 10);
    if (len < 0 || len >= PEER_LINE_MAX / 2 || used + (size_t)len + 2 >= PEER_LINE_MAX)
      return -1;
    if (used) out[used++] = ' ';
    if (get_exact(fd, out + used, (size_t)len + 2, 10000)) return -1;
    used += (size_t)len;
    out[used] = 0;
  }
  return 0;
}

/* Answer +OK to everything until REPLSYNC; return its arguments. */
static int handshake(int fd, char *args) {
  char cmd[PEER_LINE_MAX];
  for (int i = 0; i < PEER_ARGS_MAX; i++) {
    if (read_command(fd, cmd)) return -1;
    if (!strncasecmp(cmd, "REPLSYNC", 8)) {
      snprintf(args, PEER_LINE_MAX, "%s", cmd[8] ? cmd + 9 : "");
      return 0;
    }
    if (!strncasecmp(cmd, "PING", 4)) send_all(fd, "+PONG\r\n", 7);
    else send_all(fd, "+OK\r\n", 5);
  }
  return -1;
}

/* ------------------------------------------------------------------------
 * Frames
 * --------------------------------------------------------------------- */

/* Send one 'F' message: a frame of one REC_PUT "peer:LSN" = "value-LSN".
 * flip: invert one bit of the payload after the checksum was computed. */
static void send_frame(int fd, uint64_t epoch, uint64_t lsn, int flip) {
  char key[32], val[32];
  snprintf(key, sizeof key, "peer:%llu", (unsigned long long)lsn);
  snprintf(val, sizeof val, "value-%llu", (unsigned long long)lsn);
  struct rec r = {.op = REC_PUT, .type = REC_T_STRING, .ns = "default",
                  .ns_len = 7, .key = key, .klen = (uint32_t)strlen(key),
                  .val = val, .vlen = (uint32_t)strlen(val),
                  .ts_ms = (uint64_t)time(NULL) * 1000};
  unsigned char raw[256], msg[PEER_MSG_HDR + 512];
  size_t raw_len = rec_encode(&r, raw);
  if (frame_bound(raw_len) > sizeof msg - PEER_MSG_HDR) die("frame too big");
  size_t len = frame_encode(msg + PEER_MSG_HDR, epoch, lsn, lsn, 0, raw, raw_len);
  memset(msg, 0, PEER_MSG_HDR);
  msg[0] = 'F';
  put_u32(msg + 4, (uint32_t)len);
  if (flip) msg[PEER_MSG_HDR + FRAME_HDR_BYTES + 2] ^= 0x10;
  send_all(fd, msg, PEER_MSG_HDR + len);
}

/* Read the follower's messages until an ack with applied LSN >= want, or
 * ms pass.  Returns the last applied LSN acknowledged, or -1. */
static long long wait_ack(int fd, uint64_t want, int ms) {
  long long applied = -1;
  int64_t end = now_ms() + ms;
  while (now_ms() < end) {
    unsigned char h[PEER_MSG_HDR], p[64];
    int left = (int)(end - now_ms());
    if (get_exact(fd, h, sizeof h, left > 0 ? left : 1)) break;
    uint32_t len = get_u32(h + 4);
    if (len > sizeof p) {
      errno = 0;
      die("a message from the follower longer than an ack");
    }
    if (get_exact(fd, p, len, 2000)) break;
    if (h[0] == 'A' && len >= 24) {
      applied = (long long)get_u64(p + 16);
      if ((uint64_t)applied >= want) break;
    }
  }
  return applied;
}

/* The bad part; returns the follower's last LSN once it refused it. */
static uint64_t send_bad(int fd, const char *mode, uint64_t good) {
  uint64_t bad_lsn;
  if (!strcmp(mode, "checksum")) {
    bad_lsn = good + 1;
    send_frame(fd, 1, bad_lsn, 1);
  } else if (!strcmp(mode, "epoch")) {
    send_frame(fd, 2, good + 1, 0);
    send_frame(fd, 2, good + 2, 0);
    good += 2;
    wait_ack(fd, good, 3000);
    bad_lsn = good + 1;
    send_frame(fd, 1, bad_lsn, 0);
  } else if (!strcmp(mode, "gap")) {
    bad_lsn = good + 2;
    send_frame(fd, 1, bad_lsn, 0);
  } else {
    errno = 0;
    die("MODE is checksum, epoch or gap");
  }
  printf("bad %s lsn %llu\n", mode, (unsigned long long)bad_lsn);
  printf("expect_last_lsn %llu\n", (unsigned long long)good);
  return good;
}

/* ------------------------------------------------------------------------
 * main
 * --------------------------------------------------------------------- */

int main(int argc, char **argv) {
  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: repl_peer PORT checksum|epoch|gap [GOOD]\n");
    return EXIT_FAILURE;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  alarm(PEER_DEADLINE_S);
  const char *mode = argv[2];
  long good = argc == 4 ? strtol(argv[3], NULL, 10) : 3;
  if (good < 1 || good > 1000) die("GOOD is 1..1000");
  int lfd = listen_on(atoi(argv[1]));
  char args[PEER_LINE_MAX], hello[128];

  int fd = accept_one(lfd);
  if (handshake(fd, args)) die("no REPLSYNC on the first connection");
  printf("replsync1 %s\n", args);
  /* The epoch mode's leader is in epoch 2: its log has epoch-1 frames
   * first, then its own. */
  snprintf(hello, sizeof hello, "+CONTINUE %s %d\r\n", PEER_ID,
           strcmp(mode, "epoch") ? 1 : 2);
  send_all(fd, hello, strlen(hello));
  for (long i = 1; i <= good; i++) send_frame(fd, 1, (uint64_t)i, 0);
  printf("acked %lld\n", wait_ack(fd, (uint64_t)good, 5000));
  send_bad(fd, mode, (uint64_t)good);
  /* The follower drops the link; drain until it closes. */
  wait_ack(fd, UINT64_MAX, 10000);
  close(fd);

  fd = accept_one(lfd);
  if (handshake(fd, args)) die("no REPLSYNC on the second connection");
  printf("replsync2 %s\n", args);
  close(fd);
  close(lfd);
  return EXIT_SUCCESS;
}
