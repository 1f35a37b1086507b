/*
 * repl-load - write load and replication-lag probe for bench/repl.sh.
 *
 *   repl-load -p PORT [-h HOST] [-c CONNS] [-n REQUESTS] [-d BYTES]
 *             [-r KEYSPACE] [-w] [-R RATE -T SECONDS [-f FOLLOWER_PORT]]
 *
 * Closed loop (default): CONNS connections (50) each send SET
 * key:<random below KEYSPACE> <BYTES-byte value> and wait for the reply,
 * and with -w then send WAIT 1 1000 (a reply below 1 counts as an error),
 * until REQUESTS (200000) SETs are done in all.  Prints one line:
 *
 *   sets N seconds S rps R p50_ms A p99_ms B errors E
 *
 * where latency is per SET (with its WAIT, with -w).
 *
 * Paced (-R RATE -T SECONDS): the connections send RATE SETs per second in
 * all, each on its own schedule, for SECONDS.  With -f, a probe on its own
 * connections every 10 ms writes a unique key probe:<i> to the leader and,
 * from the moment its +OK arrives, polls GET on the follower at
 * FOLLOWER_PORT until the value is there: that time is one lag sample.
 * Prints:
 *
 *   sets N seconds S rps R p50_ms A p99_ms B errors E
 *   lag samples K p50_ms A p99_ms B max_ms C timeouts T
 *
 * Exit: 0, 1 on a connection error, 2 usage.
 */
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CONNS_MAX 1024
#define LAT_MAX (1u << 24)      /* latency samples kept per run */
#define PROBE_TIMEOUT_NS 2000000000ll
#define PROBE_EVERY_NS 10000000ll

struct opts {
  const char *host;
  int port, fport, conns, wait, seconds;
  long requests, keyspace, size;
  double rate;
};

static struct opts o = {"127.0.0.1", 0, 0, 50, 0, 0, 200000, 100000, 256, 0};
static long next_req;           /* closed loop: requests handed out */
static long errors, nlat;
static uint32_t *lat_us;        /* per-request latency, microseconds */
static int64_t end_ns;          /* paced: when to stop */

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static redisContext *connect_to(int port) {
  struct timeval tv = {10, 0};
  redisContext *c = redisConnectWithTimeout(o.host, port, tv);
  if (!c || c->err) {
    fprintf(stderr, "repl-load: connect %s:%d: %s\n", o.host, port,
            c ? c->errstr : "out of memory");
    exit(1);
  }
  redisSetTimeout(c, tv);
  return c;
}

static void note_error(void) {
  __atomic_add_fetch(&errors, 1, __ATOMIC_RELAXED);
}

static void note_lat(int64_t ns) {
  long i = __atomic_fetch_add(&nlat, 1, __ATOMIC_RELAXED);
  if (i < (long)LAT_MAX) lat_us[i] = (uint32_t)(ns / 1000);
}

/* One SET (and WAIT); 0 or -1 when the connection is gone. */
static int one_write(redisContext *c, unsigned *seed, const char *val) {
  char key[32];
  snprintf(key, sizeof key, "key:%012ld", (long)(rand_r(seed) % o.keyspace));
  int64_t t0 = now_ns();
  redisReply *r = redisCommand(c, "SET %s %b", key, val, (size_t)o.size);
  if (!r) return -1;
  int bad = r->type != REDIS_REPLY_STATUS;
  freeReplyObject(r);
  if (!bad && o.wait) {
    r = redisCommand(c, "WAIT 1 1000");
    if (!r) return -1;
    bad = r->type != REDIS_REPLY_INTEGER || r->integer < 1;
    freeReplyObject(r);
  }
  if (bad) note_error();
  note_lat(now_ns() - t0);
  return 0;
}

static void *writer(void *arg) {
  long id = (long)arg;
  unsigned seed = (unsigned)(id * 2654435761u + 1);
  char *val = malloc((size_t)o.size);
  memset(val, 'x', (size_t)o.size);
  redisContext *c = connect_to(o.port);
  double every_ns = o.rate > 0 ? 1e9 * o.conns / o.rate : 0;
  int64_t due = now_ns() + (int64_t)(every_ns * id / o.conns);
  for (;;) {
    if (o.rate > 0) {
      int64_t t = now_ns();
      if (t >= end_ns) break;
      if (due > t) {
        struct timespec ts = {0, (long)(due - t)};
        nanosleep(&ts, NULL);
      }
      due += (int64_t)every_ns;
    } else if (__atomic_fetch_add(&next_req, 1, __ATOMIC_RELAXED) >= o.requests) {
      break;
    }
    if (one_write(c, &seed, val)) {
      fprintf(stderr, "repl-load: connection lost: %s\n", c->errstr);
      exit(1);
    }
  }
  redisFree(c);
  free(val);
  return NULL;
}

/* ------------------------------------------------------------------------
 * The lag probe
 * --------------------------------------------------------------------- */

static uint32_t probe_us[1 << 16];
static long nprobe, probe_timeouts;

/* Poll the follower until key has val; returns ns from t0, or -1. */
static int64_t poll_visible(redisContext *f, const char *key, const char *val,
                            int64_t t0) {
  for (;;) {
    redisReply *r = redisCommand(f, "GET %s", key);
    if (!r) {
      fprintf(stderr, "repl-load: follower connection lost: %s\n", f->errstr);
      exit(1);
    }
    int seen = r->type == REDIS_REPLY_STRING && !strcmp(r->str, val);
    freeReplyObject(r);
    int64_t t = now_ns();
    if (seen) return t - t0;
    if (t - t0 > PROBE_TIMEOUT_NS) return -1;
  }
}

static void *probe(void *arg) {
  (void)arg;
  redisContext *l = connect_to(o.port), *f = connect_to(o.fport);
  for (long i = 0; now_ns() < end_ns && i < (long)(sizeof probe_us / 4); i++) {
    char key[48], val[32];
    snprintf(key, sizeof key, "probe:%d:%ld", getpid(), i);
    snprintf(val, sizeof val, "%ld", i);
    redisReply *r = redisCommand(l, "SET %s %s", key, val);
    if (!r) {
      fprintf(stderr, "repl-load: leader connection lost: %s\n", l->errstr);
      exit(1);
    }
    freeReplyObject(r);
    int64_t lag = poll_visible(f, key, val, now_ns());
    if (lag < 0) probe_timeouts++;
    else probe_us[nprobe++] = (uint32_t)(lag / 1000);
    struct timespec ts = {0, PROBE_EVERY_NS};
    nanosleep(&ts, NULL);
  }
  redisFree(l);
  redisFree(f);
  return NULL;
}

/* ------------------------------------------------------------------------
 * Results
 * --------------------------------------------------------------------- */

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static double pct_ms(uint32_t *v, long n, double p) {
  if (n <= 0) return 0;
  long i = (long)(p * (double)(n - 1) + 0.5);
  return v[i] / 1000.0;
}

static void usage(void) {
  fprintf(stderr, "usage: repl-load -p PORT [-h HOST] [-c CONNS] [-n REQUESTS]"
          " [-d BYTES] [-r KEYSPACE] [-w] [-R RATE -T SECONDS [-f PORT]]\n");
  exit(2);
}

static void parse(int argc, char **argv) {
  int ch;
  while ((ch = getopt(argc, argv, "h:p:c:n:d:r:wR:T:f:")) != -1) {
    switch (ch) {
    case 'h': o.host = optarg; break;
    case 'p': o.port = atoi(optarg); break;
    case 'c': o.conns = atoi(optarg); break;
    case 'n': o.requests = atol(optarg); break;
    case 'd': o.size = atol(optarg); break;
    case 'r': o.keyspace = atol(optarg); break;
    case 'w': o.wait = 1; break;
    case 'R': o.rate = atof(optarg); break;
    case 'T': o.seconds = atoi(optarg); break;
    case 'f': o.fport = atoi(optarg); break;
    default: usage();
    }
  }
  if (o.port <= 0 || o.conns < 1 || o.conns > CONNS_MAX || o.size < 1 ||
      o.size > (1 << 20) || o.keyspace < 1 || o.requests < 1 ||
      (o.rate > 0) != (o.seconds > 0) || (o.fport && o.rate <= 0))
    usage();
}

int main(int argc, char **argv) {
  parse(argc, argv);
  lat_us = malloc(sizeof *lat_us * LAT_MAX);
  if (!lat_us) return 1;
  pthread_t th[CONNS_MAX], pr;
  int64_t t0 = now_ns();
  end_ns = t0 + (int64_t)o.seconds * 1000000000ll;
  for (long i = 0; i < o.conns; i++) pthread_create(&th[i], NULL, writer, (void *)i);
  if (o.fport) pthread_create(&pr, NULL, probe, NULL);
  for (int i = 0; i < o.conns; i++) pthread_join(th[i], NULL);
  if (o.fport) pthread_join(pr, NULL);
  double secs = (now_ns() - t0) / 1e9;
  long n = nlat < (long)LAT_MAX ? nlat : (long)LAT_MAX;
  qsort(lat_us, (size_t)n, sizeof *lat_us, cmp_u32);
  printf("sets %ld seconds %.3f rps %.1f p50_ms %.3f p99_ms %.3f errors %ld\n",
         nlat, secs, nlat / secs, pct_ms(lat_us, n, 0.5), pct_ms(lat_us, n, 0.99),
         errors);
  if (o.fport) {
    qsort(probe_us, (size_t)nprobe, sizeof *probe_us, cmp_u32);
    printf("lag samples %ld p50_ms %.3f p99_ms %.3f max_ms %.3f timeouts %ld\n",
           nprobe, pct_ms(probe_us, nprobe, 0.5), pct_ms(probe_us, nprobe, 0.99),
           pct_ms(probe_us, nprobe, 1.0), probe_timeouts);
  }
  return 0;
}
