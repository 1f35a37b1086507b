/*
 * cairnd.c - the cairn daemon: a Redis-protocol server over the engine.
 *
 *   cairnd [/path/to/cairn.conf] [--directive value ...]
 *
 * Configuration comes from the defaults, then the file, then the command
 * line (each "--name value..." is one directive, as redis-server takes
 * them).  Logs are JSON lines on stderr or in logfile.  SIGTERM / SIGINT
 * and SHUTDOWN stop the server cleanly: no new clients, in-flight writes
 * finished and answered, cairn_close (flush, sync, checkpoint), exit 0.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cmds.h"
#include "cmds_data.h"
#include "srv_config.h"
#include "net.h"
#include "repl.h"
#include "server.h"
#include "util.h"

struct server *srv_main;

static volatile int signalled;
static int log_fd = 2;
static int log_level = CAIRN_LOG_INFO;

/* ------------------------------------------------------------------------
 * Logging: one JSON object per line
 * --------------------------------------------------------------------- */

static size_t json_escape(char *o, size_t n, const char *s) {
  size_t k = 0;
  for (; *s && k + 7 < n; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') {
      o[k++] = '\\';
      o[k++] = (char)ch;
    } else if (ch < 0x20) {
      k += (size_t)snprintf(o + k, n - k, "\\u%04x", ch);
    } else {
      o[k++] = (char)ch;
    }
  }
  o[k] = '\0';
  return k;
}

/* Safe from any thread: the line is built first and written with one
 * write(2), which the kernel does not interleave with other lines. */
void srv_log(int level, const char *fields, const char *fmt, ...) {
  static const char *names[] = {"error", "warn", "info", "debug"};
  int max = srv_main && srv_main->cfg ? srv_main->cfg->loglevel : log_level;
  if (level > max) return;
  if (level < 0 || level > CAIRN_LOG_DEBUG) level = CAIRN_LOG_INFO;
  char msg[1024], esc[2048], ts[40], line[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  json_escape(esc, sizeof esc, msg);
  struct timespec t;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &t);
  gmtime_r(&t.tv_sec, &tm);
  size_t tl = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(ts + tl, sizeof ts - tl, ".%03ldZ", t.tv_nsec / 1000000);
  int n = snprintf(line, sizeof line, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"%s%s}\n",
                   ts, names[level], esc, fields ? "," : "", fields ? fields : "");
  if (n < 0) return;
  if ((size_t)n >= sizeof line) {
    n = (int)sizeof line - 1;
    line[n - 1] = '\n';
  }
  ssize_t w = write(log_fd, line, (size_t)n);
  (void)w;
}

static void engine_log(void *arg, int level, const char *msg) {
  (void)arg;
  srv_log(level, "\"source\":\"engine\"", "%s", msg);
}

/* ------------------------------------------------------------------------
 * Command line
 * --------------------------------------------------------------------- */

static void usage(FILE *f) {
  fprintf(f,
    "Usage: cairnd [/path/to/cairn.conf] [--directive value ...]\n"
    "       cairnd -h | --help\n"
    "       cairnd -v | --version\n"
    "\n"
    "Every configuration directive can be given as --name value (several\n"
    "words allowed); the command line overrides the file.  Examples:\n"
    "  cairnd --port 6380 --bind 127.0.0.1 --dir ./data\n"
    "  cairnd /etc/cairn.conf --loglevel debug\n"
    "  cairnd --durability interval --interval-ms 100\n"
    "  cairnd --namespace 1 sessions lifespan 3600000\n"
    "See contrib/cairn.conf for every directive.\n");
}

static int apply_words(struct srv_config *cfg, int argc, char **argv) {
  char err[256];
  if (config_apply(cfg, argc, argv, 1, err, sizeof err)) {
    fprintf(stderr, "cairnd: command line: --%s: %s\n", argv[0], err);
    return -1;
  }
  return 0;
}

/* Returns 0 to run, 1 to exit successfully, -1 on a usage error. */
static int parse_args(struct srv_config *cfg, int argc, char **argv) {
  int i = 1;
  char err[512];
  for (int k = 1; k < argc; k++) {
    if (!strcmp(argv[k], "-h") || !strcmp(argv[k], "--help")) {
      usage(stdout);
      return 1;
    }
    if (!strcmp(argv[k], "-v") || !strcmp(argv[k], "-V") || !strcmp(argv[k], "--version")) {
      printf("cairnd %s (redis protocol %s)\n", CAIRN_VERSION_STRING, SRV_REDIS_VERSION);
      return 1;
    }
  }
  if (i < argc && strncmp(argv[i], "--", 2)) {
    if (config_load_file(cfg, argv[i], err, sizeof err)) {
      fprintf(stderr, "cairnd: %s\n", err);
      return -1;
    }
    i++;
  }
  /* Each round takes one directive and its words. */
  while (i < argc) {
    if (strncmp(argv[i], "--", 2) || !argv[i][2]) {
      fprintf(stderr, "cairnd: unexpected argument '%s'\n", argv[i]);
      usage(stderr);
      return -1;
    }
    char *words[CFG_ARGS_MAX];
    int n = 0;
    words[n++] = argv[i++] + 2;
    while (i < argc && strncmp(argv[i], "--", 2) && n < (int)CFG_ARGS_MAX)
      words[n++] = argv[i++];
    if (n == 1) words[n++] = "";   /* "--requirepass" alone: empty */
    if (apply_words(cfg, n, words)) return -1;
  }
  return 0;
}

/* ------------------------------------------------------------------------
 * Startup
 * --------------------------------------------------------------------- */

static void make_run_id(char out[41]) {
  unsigned char r[20];
  if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
    uint64_t x = mono_ns() ^ (uint64_t)getpid() << 32;
    for (size_t i = 0; i < sizeof r; i++) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      r[i] = (unsigned char)(x >> 56);
    }
  }
  for (size_t i = 0; i < sizeof r; i++) sprintf(out + 2 * i, "%02x", r[i]);
  out[40] = '\0';
}

static int open_logfile(const struct srv_config *cfg) {
  if (!cfg->logfile[0]) return 0;
  int fd = open(cfg->logfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    fprintf(stderr, "cairnd: logfile %s: %s\n", cfg->logfile, strerror(errno));
    return -1;
  }
  log_fd = fd;
  return 0;
}

int srv_open_engine(struct server *s) {
  const struct srv_config *cfg = s->cfg;
  cairn_options o;
  cairn_options_init(&o);
  o.durability = (cairn_durability)cfg->durability;
  o.interval_ms = (uint32_t)cfg->interval_ms;
  o.max_memory = (uint64_t)cfg->maxmemory;
  o.checkpoint_bytes = (uint64_t)cfg->checkpoint_bytes;
  o.segment_bytes = (uint64_t)cfg->log_segment_size;
  o.checkpoint_interval_ms = (uint32_t)cfg->checkpoint_interval_ms;
  o.expired_fn = pubsub_expired_hook; /* keyspace "expired" events */
  o.expired_arg = s;
  o.log_fn = engine_log;
  if (replica_active() || (cfg->replicaof[0] && !cfg->promote))
    o.flags |= CAIRN_OPEN_FOLLOWER;
  o.log_level = CAIRN_LOG_DEBUG;  /* filtered by srv_log, which follows loglevel */
  int rc = cairn_open(cfg->dir, &o, &s->db);
  if (rc) {
    srv_log(CAIRN_LOG_ERROR, NULL, "cannot open the database in %s: %s", cfg->dir,
            cairn_strerror(rc));
    return rc;
  }
  struct cairn_stats st; /* what the store holds counts as saved */
  if (cairn_stats(s->db, &st) == 0) s->lastsave_lsn = st.checkpoint_lsn;
  for (unsigned db = 0; db < SRV_DBS; db++) {
    if (!cfg->ns[db].configured) continue;
    cairn_ns_options no = cfg->ns[db].opt;
    no.max_entries = cfg->ns[db].max_entries;
    rc = cairn_ns_define(s->db, cfg->ns[db].name, &no);
    if (rc) {
      srv_log(CAIRN_LOG_ERROR, NULL, "namespace %s: %s", cfg->ns[db].name, cairn_strerror(rc));
      return rc;
    }
  }
  return 0;
}

static void on_signal(int sig) {
  (void)sig;
  signalled = 1;
}

static void install_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;   /* no SA_RESTART: epoll_wait returns EINTR */
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
}

static void log_startup(struct server *s) {
  struct cairn_stats st;
  char fields[1024];
  memset(&st, 0, sizeof st);
  cairn_stats(s->db, &st);
  char dir[512];
  json_escape(dir, sizeof dir, s->cfg->dir);
  snprintf(fields, sizeof fields,
           "\"version\":\"%s\",\"port\":%d,\"dir\":\"%s\",\"recovered_records\":%llu,"
           "\"truncated_bytes\":%llu,\"last_lsn\":%llu,\"pid\":%ld",
           CAIRN_VERSION_STRING, s->port, dir, (unsigned long long)st.recovered_records,
           (unsigned long long)st.truncated_bytes, (unsigned long long)st.last_lsn,
           (long)getpid());
  srv_log(CAIRN_LOG_INFO, fields, "cairnd ready to accept connections");
}

int main(int argc, char **argv) {
  static struct srv_config cfg;
  static struct server s;
  if (config_init(&cfg)) return EXIT_FAILURE;
  int rc = parse_args(&cfg, argc, argv);
  if (rc) return rc > 0 ? EXIT_SUCCESS : EXIT_FAILURE;
  if (open_logfile(&cfg)) return EXIT_FAILURE;
  memset(&s, 0, sizeof s);
  s.cfg = &cfg;
  s.epfd = s.efd = -1;
  s.start_ms = s.lastsave_ms = now_ms();
  s.shutdown_save = 1;
  make_run_id(s.run_id);
  ssize_t el = readlink("/proc/self/exe", s.exe, sizeof s.exe - 1);
  if (el > 0) s.exe[el] = '\0';
  else snprintf(s.exe, sizeof s.exe, "%s", argv[0]);
  srv_main = &s;
  install_signals();
  if (srv_open_engine(&s)) return EXIT_FAILURE;
  if (net_init(&s)) {
    cairn_close(s.db);
    return EXIT_FAILURE;
  }
  if (repl_start(&s)) {
    cairn_close(s.db);
    return EXIT_FAILURE;
  }
  log_startup(&s);
  rc = net_run(&s, &signalled);
  srv_log(CAIRN_LOG_INFO, NULL, "shutting down: closing the database");
  repl_stop(&s);
  bgsave_wait();
  keyspace_count_stop();
  cairn_close(s.db);
  s.db = NULL;
  pubsub_free(&s);
  net_free(&s);
  srv_log(CAIRN_LOG_INFO, NULL, "bye");
  config_free(&cfg);
  return rc ? EXIT_FAILURE : EXIT_SUCCESS;
}
