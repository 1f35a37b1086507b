/*
 * cmd_server.c - server commands: INFO, CONFIG, TIME, LASTSAVE, SAVE,
 * BGSAVE, SHUTDOWN, SLOWLOG, MEMORY, DBSIZE, FLUSHDB, FLUSHALL, ROLE.
 *
 * "Saving" is a checkpoint: every acknowledged write is already durable in
 * the log, so SAVE only makes a restart shorter.  SAVE, which holds every
 * client as Redis's does, runs it flat out (cairn_checkpoint_now); BGSAVE
 * runs a paced one (cairn_checkpoint) beside the clients.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "cmds.h"
#include "net.h"
#include "repl.h"
#include "srv_config.h"
#include "server.h"
#include "util.h"

#define INFO_BYTES_MAX (64u * 1024)
#define SLOWLOG_ARGS_MAX 32
#define SLOWLOG_ARG_BYTES 128u
#define SCAN_CHUNK 1000u
#define CONFIG_SET_PAIRS_MAX 64

/* The BGSAVE thread; at most one at a time. */
static pthread_t bg_thread;
static int bg_running;          /* atomic: 1 while the thread runs */
static int bg_started;          /* a thread exists to join */
static int64_t bg_done_ms;      /* atomic: when the last one succeeded */
static uint64_t bg_lsn;

static void bgsave_collect(struct server *s);

/* ------------------------------------------------------------------------
 * Counting and flushing a namespace
 * --------------------------------------------------------------------- */

struct count_arg {
  uint64_t keys, expires;
  int rc; /* the scan's failure, if it failed */
};

static int count_fn(void *arg, const void *k, size_t kl, const void *v,
                    size_t vl, uint64_t ver, int64_t exp) {
  (void)k; (void)kl; (void)v; (void)vl; (void)ver;
  struct count_arg *a = arg;
  a->keys++;
  if (exp) a->expires++;
  return 0;
}

/* Keys of one namespace: a full scan (the engine keeps no per-namespace
 * count), given up if *stop (when not NULL) becomes set. */
static int ns_count(cairn *db, const char *ns, struct count_arg *out,
                    const int *stop) {
  uint64_t cursor = 0;
  memset(out, 0, sizeof *out);
  do {
    if (stop && __atomic_load_n(stop, __ATOMIC_ACQUIRE)) return CAIRN_ECLOSING;
    int rc = cairn_scan(db, ns, NULL, 0, &cursor, 4096, count_fn, out);
    if (rc) return rc;
  } while (cursor);
  return 0;
}

/* Counting scans memory and the store (some 1.4 s a million keys on disk
 * here), and INFO and DBSIZE run on the loop that serves every client.
 * So past info-keyspace-sync-max entries in all, counts come from a
 * background scan of every database:
 *   - INFO shows the counts of the last scan, and starts a new one when
 *     those are older than KEYSPACE_STALE_MS;
 *   - DBSIZE must be exact, so its client waits (input paused, as WAIT's
 *     does) for a scan that began after it asked, while the loop serves
 *     the others; the cron hands out the answers (dbsize_collect).
 * Scans are numbered: ks.gen is the number of the last one started. */
#define KEYSPACE_STALE_MS 1000

static struct {
  pthread_mutex_t mu;
  struct count_arg db[SRV_DBS]; /* under mu */
  int valid;                    /* under mu: a scan has completed */
  int64_t done_ms;              /* under mu */
  uint64_t done_gen;            /* under mu: the number of that scan */
  uint64_t gen;                 /* loop thread only */
  cairn *engine;                /* loop thread only, while started */
  const char *names[SRV_DBS];
  pthread_t thread;
  int started;                  /* loop thread only */
  int running, stop;            /* __atomic */
} ks = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Clients with a DBSIZE waiting (client.dbsize_count), at most: one that
 * left uncounted is dropped at the next dbsize_collect. */
static size_t dbsize_waiting;

static void *ks_main(void *arg) {
  uint64_t gen = (uint64_t)(uintptr_t)arg;
  struct count_arg out[SRV_DBS];
  int rc = 0;
  for (unsigned db = 0; db < SRV_DBS && rc != CAIRN_ECLOSING; db++) {
    rc = ns_count(ks.engine, ks.names[db], &out[db], &ks.stop);
    out[db].rc = rc;
  }
  if (rc != CAIRN_ECLOSING) {
    pthread_mutex_lock(&ks.mu);
    memcpy(ks.db, out, sizeof out);
    ks.valid = 1;
    ks.done_ms = now_ms();
    ks.done_gen = gen;
    pthread_mutex_unlock(&ks.mu);
  }
  __atomic_store_n(&ks.running, 0, __ATOMIC_RELEASE);
  return NULL;
}

/* Start a background scan unless one is running: 0 if one started. */
static int ks_start(struct server *s) {
  if (__atomic_load_n(&ks.running, __ATOMIC_ACQUIRE)) return -1;
  if (ks.started) pthread_join(ks.thread, NULL);
  ks.started = 0;
  ks.engine = s->db;
  for (unsigned db = 0; db < SRV_DBS; db++)
    ks.names[db] = config_ns_name(s->cfg, (int)db);
  __atomic_store_n(&ks.running, 1, __ATOMIC_RELEASE);
  if (pthread_create(&ks.thread, NULL, ks_main,
                     (void *)(uintptr_t)(ks.gen + 1)) != 0) {
    __atomic_store_n(&ks.running, 0, __ATOMIC_RELEASE);
    return -1;
  }
  ks.gen++;
  ks.started = 1;
  return 0;
}

/* Start a background scan if the last is stale and none is running. */
static void ks_refresh(struct server *s) {
  pthread_mutex_lock(&ks.mu);
  int fresh = ks.valid && now_ms() - ks.done_ms < KEYSPACE_STALE_MS;
  pthread_mutex_unlock(&ks.mu);
  if (!fresh) ks_start(s);
}

/* Whether counting keys on the loop is cheap enough. */
static int count_on_loop(const struct server *s, const struct cairn_stats *st) {
  return st->entries + st->disk_entries <=
         (uint64_t)s->cfg->info_keyspace_sync_max;
}

void keyspace_count_stop(void) {
  if (!ks.started) return;
  __atomic_store_n(&ks.stop, 1, __ATOMIC_RELEASE);
  pthread_join(ks.thread, NULL);
  ks.started = 0;
  __atomic_store_n(&ks.stop, 0, __ATOMIC_RELEASE);
  pthread_mutex_lock(&ks.mu);
  ks.valid = 0; /* another engine may follow (a full sync) */
  pthread_mutex_unlock(&ks.mu);
}

struct flush_arg {
  cairn_batch *b;
  const char *ns_name;
  size_t ops;
  int rc;
};

static int flush_fn(void *arg, const void *k, size_t kl, const void *v,
                    size_t vl, uint64_t ver, int64_t exp) {
  (void)v; (void)vl; (void)ver; (void)exp;
  struct flush_arg *a = arg;
  if (!a->rc) a->rc = cairn_batch_del(a->b, a->ns_name, k, kl, NULL);
  a->ops++;
  return 0;
}

/* Delete every key of ns, a chunk per batch, each batch held like any
 * write. */
static int ns_flush(struct client *c, const char *ns) {
  cairn *db = c->srv->db;
  uint64_t cursor = 0;
  /* Bounded by the keys present when the flush began, plus new ones. */
  do {
    struct flush_arg a = {0};
    int rc = cairn_batch_new(db, &a.b);
    if (rc) return rc;
    a.ns_name = ns;
    rc = cairn_scan(db, ns, NULL, 0, &cursor, SCAN_CHUNK, flush_fn, &a);
    if (!rc) rc = a.rc;
    /* A chunk with nothing to delete writes nothing. */
    if (!rc && a.ops) {
      cairn_write w = srv_write(c, NULL);
      rc = cairn_batch_commit(a.b, &w);
      if (rc) srv_write_abort(c);
    }
    cairn_batch_free(a.b);
    if (rc) return rc;
  } while (cursor);
  return 0;
}

static void dbsize_reply(struct client *c, const struct count_arg *a) {
  /* EINVAL: a namespace never written to, so empty */
  if (a->rc && a->rc != CAIRN_EINVAL) reply_engine_error(c, a->rc);
  else reply_int(c, a->rc ? 0 : (long long)a->keys);
}

void cmd_dbsize(struct client *c) {
  struct server *s = c->srv;
  struct cairn_stats st;
  /* A scan under way began before this DBSIZE: the next one answers. */
  uint64_t count = ks.gen + 1;
  int running = __atomic_load_n(&ks.running, __ATOMIC_ACQUIRE);
  /* Nothing waits inside EXEC; with no thread, count here too. */
  if (c->in_multi || cairn_stats(s->db, &st) != 0 || count_on_loop(s, &st) ||
      (!running && ks_start(s) != 0)) {
    struct count_arg a;
    a.rc = ns_count(s->db, srv_ns(c), &a, NULL);
    dbsize_reply(c, &a);
    return;
  }
  c->dbsize_count = count;
  dbsize_waiting++;
  net_client_block(c);
}

void dbsize_collect(struct server *s) {
  if (!dbsize_waiting) return;
  pthread_mutex_lock(&ks.mu);
  uint64_t done = ks.valid ? ks.done_gen : 0;
  struct count_arg a[SRV_DBS];
  memcpy(a, ks.db, sizeof a);
  pthread_mutex_unlock(&ks.mu);
  /* A client answered runs what it pipelined, maybe another DBSIZE. */
  size_t before = dbsize_waiting, still = 0;
  for (struct client *c = s->clients, *next; c; c = next) {
    next = c->next;
    if (!c->dbsize_count) continue;
    if (c->dbsize_count > done) {
      still++;
      continue;
    }
    c->dbsize_count = 0;
    dbsize_reply(c, &a[c->db]);
    net_client_unblock(c);
  }
  dbsize_waiting = still + (dbsize_waiting - before);
  if (dbsize_waiting) ks_start(s); /* for those that asked during the last */
}

static int flush_args_ok(struct client *c) {
  if (c->argc > 2 || (c->argc == 2 && !cmd_arg_is(c, 1, "ASYNC") && !cmd_arg_is(c, 1, "SYNC"))) {
    reply_error(c, ERR_SYNTAX);
    return 0;
  }
  return 1;
}

void cmd_flushdb(struct client *c) {
  if (!flush_args_ok(c)) return;
  int rc = ns_flush(c, srv_ns(c));
  if (rc && rc != CAIRN_EINVAL) reply_engine_error(c, rc);
  else reply_ok(c);
}

void cmd_flushall(struct client *c) {
  if (!flush_args_ok(c)) return;
  for (unsigned db = 0; db < SRV_DBS; db++) {
    int rc = ns_flush(c, config_ns_name(c->srv->cfg, (int)db));
    if (rc && rc != CAIRN_EINVAL) {
      reply_engine_error(c, rc);
      return;
    }
  }
  reply_ok(c);
}

/* ------------------------------------------------------------------------
 * INFO
 * --------------------------------------------------------------------- */

static void human_bytes(uint64_t n, char *buf, size_t len) {
  double d = (double)n;
  if (n < 1024) snprintf(buf, len, "%lluB", (unsigned long long)n);
  else if (n < 1024ull * 1024) snprintf(buf, len, "%.2fK", d / 1024);
  else if (n < 1024ull * 1024 * 1024) snprintf(buf, len, "%.2fM", d / (1024 * 1024));
  else snprintf(buf, len, "%.2fG", d / (1024.0 * 1024 * 1024));
}

struct info {
  struct resp_buf b;
  int nsections;
};

static void add(struct info *in, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void add(struct info *in, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  resp_add_raw(&in->b, line, MIN((size_t)n, sizeof line - 1));
  resp_add_raw(&in->b, "\r\n", 2);
}

static void section(struct info *in, const char *title) {
  if (in->nsections++) resp_add_raw(&in->b, "\r\n", 2);
  add(in, "# %s", title);
}

static void info_server(struct info *in, struct server *s) {
  struct utsname u;
  struct timeval tv;
  gettimeofday(&tv, NULL);
  if (uname(&u)) memset(&u, 0, sizeof u);
  int64_t up = (now_ms() - s->start_ms) / 1000;
  section(in, "Server");
  add(in, "redis_version:%s", SRV_REDIS_VERSION);
  add(in, "cairn_version:%s", CAIRN_VERSION_STRING);
  add(in, "redis_git_sha1:00000000");
  add(in, "redis_git_dirty:0");
  add(in, "redis_mode:standalone");
  add(in, "os:%s %s %s", u.sysname, u.release, u.machine);
  add(in, "arch_bits:%d", (int)(sizeof(void *) * 8));
  add(in, "multiplexing_api:epoll");
  add(in, "process_id:%ld", (long)getpid());
  add(in, "run_id:%s", s->run_id);
  add(in, "tcp_port:%d", s->port);
  add(in, "server_time_usec:%lld", (long long)tv.tv_sec * 1000000 + tv.tv_usec);
  add(in, "uptime_in_seconds:%lld", (long long)up);
  add(in, "uptime_in_days:%lld", (long long)(up / 86400));
  add(in, "hz:10");
  add(in, "executable:%s", s->exe);
  add(in, "config_file:%s", s->cfg->file ? s->cfg->file : "");
}

static void info_clients(struct info *in, struct server *s) {
  size_t max_in = 0, max_out = 0;
  for (struct client *c = s->clients; c; c = c->next) {
    max_in = MAX(max_in, c->in_cap);
    max_out = MAX(max_out, c->out.len - c->out_sent);
  }
  section(in, "Clients");
  add(in, "connected_clients:%zu", s->nclients);
  add(in, "cluster_connections:0");
  add(in, "maxclients:%lld", s->cfg->maxclients);
  add(in, "client_recent_max_input_buffer:%zu", max_in);
  add(in, "client_recent_max_output_buffer:%zu", max_out);
  add(in, "blocked_clients:%zu", s->blocked_clients);
  add(in, "tracking_clients:0");
  add(in, "clients_in_timeout_table:0");
}

/* The process's resident memory (bytes) from /proc/self/status: anonymous
 * (the heap: the entries maxmemory bounds, client buffers, the rest) and
 * file-backed (mostly LMDB's map: pages the kernel may drop and read
 * again); 0 where unknown. */
struct rss {
  uint64_t anon, file, shmem;
};

static struct rss rss_read(void) {
  struct rss r = {0, 0, 0};
  FILE *f = fopen("/proc/self/status", "re");
  if (!f) return r;
  char line[256];
  unsigned long long kb;
  while (fgets(line, sizeof line, f)) {
    if (sscanf(line, "RssAnon: %llu kB", &kb) == 1) r.anon = kb * 1024;
    else if (sscanf(line, "RssFile: %llu kB", &kb) == 1) r.file = kb * 1024;
    else if (sscanf(line, "RssShmem: %llu kB", &kb) == 1) r.shmem = kb * 1024;
  }
  fclose(f);
  return r;
}

static void add_bytes(struct info *in, const char *name, uint64_t n) {
  char h[32];
  human_bytes(n, h, sizeof h);
  add(in, "%s:%llu", name, (unsigned long long)n);
  add(in, "%s_human:%s", name, h);
}

static void info_memory(struct info *in, struct server *s,
                        const struct cairn_stats *st) {
  struct rss r = rss_read();
  s->memory_peak = MAX(s->memory_peak, st->memory_bytes);
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  section(in, "Memory");
  /* used_memory is what maxmemory bounds: the entries held in memory. */
  add_bytes(in, "used_memory", st->memory_bytes);
  add_bytes(in, "used_memory_rss", r.anon + r.file + r.shmem);
  add_bytes(in, "used_memory_peak", s->memory_peak);
  add_bytes(in, "total_system_memory",
            pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0);
  add_bytes(in, "maxmemory", (uint64_t)s->cfg->maxmemory);
  /* Nothing is ever dropped for memory: cold entries move to disk. */
  add(in, "maxmemory_policy:noeviction");
  add(in, "mem_allocator:libc");
  add(in, "cairn_memory_entries:%llu", (unsigned long long)st->entries);
  add(in, "cairn_disk_entries:%llu", (unsigned long long)st->disk_entries);
  /* Gets answered from memory, and lookups memory could not answer that
   * went to disk. */
  add(in, "cairn_memory_hits:%llu", (unsigned long long)st->mem_hits);
  add(in, "cairn_disk_reads:%llu", (unsigned long long)st->store_reads);
  add(in, "cairn_evictions_to_disk:%llu", (unsigned long long)st->evictions);
  /* Entries not yet checkpointed past twice maxmemory: writes wait. */
  add(in, "cairn_write_stalled:%d", cairn_write_stalled(s->db));
  add(in, "cairn_writes_held:%llu", (unsigned long long)s->stat_writes_held);
  add(in, "cairn_touches_logged:%llu", (unsigned long long)st->touches_logged);
  /* Resident memory by kind: LMDB's pages, read through its map, are
   * file-backed and the kernel's to drop. */
  add(in, "cairn_rss_anon:%llu", (unsigned long long)r.anon);
  add(in, "cairn_rss_file:%llu", (unsigned long long)(r.file + r.shmem));
}

static void info_persistence(struct info *in, struct server *s,
                             const struct cairn_stats *st) {
  bgsave_collect(s);
  section(in, "Persistence");
  add(in, "loading:0");
  add(in, "async_loading:0");
  add(in, "rdb_changes_since_last_save:%llu",
      (unsigned long long)(st->last_lsn > s->lastsave_lsn ? st->last_lsn - s->lastsave_lsn : 0));
  add(in, "rdb_bgsave_in_progress:%d", __atomic_load_n(&bg_running, __ATOMIC_ACQUIRE));
  add(in, "rdb_last_save_time:%lld", (long long)(s->lastsave_ms / 1000));
  add(in, "rdb_last_bgsave_status:ok");
  add(in, "aof_enabled:%d", s->cfg->durability != CAIRN_DURABILITY_MEMORY);
  add(in, "aof_rewrite_in_progress:0");
  add(in, "cairn_durability:%s", s->cfg->durability == CAIRN_DURABILITY_INTERVAL ? "interval"
      : s->cfg->durability == CAIRN_DURABILITY_MEMORY ? "memory" : "fsync");
  add(in, "cairn_last_lsn:%llu", (unsigned long long)st->last_lsn);
  add(in, "cairn_written_lsn:%llu", (unsigned long long)st->written_lsn);
  add(in, "cairn_durable_lsn:%llu", (unsigned long long)st->durable_lsn);
  add(in, "cairn_checkpoint_lsn:%llu", (unsigned long long)st->checkpoint_lsn);
  add(in, "cairn_checkpoints:%llu", (unsigned long long)st->checkpoints);
  add(in, "cairn_checkpoints_unpaced:%llu",
      (unsigned long long)st->checkpoints_unpaced);
  add(in, "cairn_last_checkpoint_ms:%llu", (unsigned long long)st->checkpoint_ms);
  add(in, "cairn_last_checkpoint_bytes:%llu", (unsigned long long)st->checkpoint_bytes);
  add(in, "cairn_log_bytes_since_checkpoint:%llu",
      (unsigned long long)st->log_bytes_since_checkpoint);
  add(in, "cairn_log_segments:%llu", (unsigned long long)st->log_segments);
  add(in, "cairn_log_syncs:%llu", (unsigned long long)st->log_syncs);
  add(in, "cairn_recovered_records:%llu", (unsigned long long)st->recovered_records);
  add(in, "cairn_io_uring:%d", st->uring);
  add(in, "cairn_readonly:%d", st->readonly);
}

static void info_stats(struct info *in, struct server *s,
                       const struct cairn_stats *st) {
  uint64_t hits = s->stat_keyspace_hits, misses = s->stat_keyspace_misses;
  if (!hits && !misses) {   /* the data commands may not count: the engine does */
    hits = st->get_hits;
    misses = st->gets - st->get_hits;
  }
  section(in, "Stats");
  add(in, "total_connections_received:%llu", (unsigned long long)s->stat_conns);
  add(in, "total_commands_processed:%llu", (unsigned long long)s->stat_cmds);
  add(in, "instantaneous_ops_per_sec:%llu", (unsigned long long)s->ops_sec);
  add(in, "total_net_input_bytes:%llu", (unsigned long long)s->stat_net_in);
  add(in, "total_net_output_bytes:%llu", (unsigned long long)s->stat_net_out);
  add(in, "rejected_connections:%llu", (unsigned long long)s->stat_rejected);
  add(in, "total_reads_processed:%llu", (unsigned long long)s->stat_reads);
  add(in, "total_writes_processed:%llu", (unsigned long long)s->stat_writes);
  add(in, "expired_keys:%llu", (unsigned long long)st->expired);
  add(in, "evicted_keys:%llu", (unsigned long long)s->stat_evicted_keys);
  add(in, "keyspace_hits:%llu", (unsigned long long)hits);
  add(in, "keyspace_misses:%llu", (unsigned long long)misses);
  uint64_t sync[3];
  repl_sync_stats(sync);
  add(in, "sync_full:%llu", (unsigned long long)sync[0]);
  add(in, "sync_partial_ok:%llu", (unsigned long long)sync[1]);
  add(in, "sync_partial_err:%llu", (unsigned long long)sync[2]);
  add(in, "pubsub_channels:0");
  add(in, "total_error_replies:0");
}

static void info_line(void *arg, const char *text) {
  add(arg, "%s", text);
}

static void info_replication(struct info *in, struct server *s) {
  section(in, "Replication");
  repl_info(s, info_line, in);
}

static void info_cpu(struct info *in) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru)) return;
  section(in, "CPU");
  add(in, "used_cpu_sys:%ld.%06ld", (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec);
  add(in, "used_cpu_user:%ld.%06ld", (long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec);
}

static void info_keyspace(struct info *in, struct server *s,
                          const struct cairn_stats *st) {
  section(in, "Keyspace");
  struct count_arg a[SRV_DBS];
  if (count_on_loop(s, st)) {
    for (unsigned db = 0; db < SRV_DBS; db++)
      a[db].rc = ns_count(s->db, config_ns_name(s->cfg, (int)db), &a[db], NULL);
  } else {
    ks_refresh(s);
    pthread_mutex_lock(&ks.mu);
    int valid = ks.valid;
    memcpy(a, ks.db, sizeof a);
    pthread_mutex_unlock(&ks.mu);
    if (!valid) return; /* the first scan is under way */
  }
  for (unsigned db = 0; db < SRV_DBS; db++)
    if (!a[db].rc && a[db].keys)
      add(in, "db%u:keys=%llu,expires=%llu,avg_ttl=0", db,
          (unsigned long long)a[db].keys, (unsigned long long)a[db].expires);
}

static int wants(struct client *c, const char *name, int dflt) {
  if (c->argc == 1) return dflt;
  for (int i = 1; i < c->argc; i++) {
    if (!strcasecmp(c->argv[i], name)) return 1;
    if (!strcasecmp(c->argv[i], "all") || !strcasecmp(c->argv[i], "everything")) return 1;
    if (!strcasecmp(c->argv[i], "default") && dflt) return 1;
  }
  return 0;
}

void cmd_info(struct client *c) {
  struct server *s = c->srv;
  struct cairn_stats st;
  struct info in = {0};
  memset(&st, 0, sizeof st);
  cairn_stats(s->db, &st);
  resp_buf_init(&in.b);
  if (wants(c, "server", 1)) info_server(&in, s);
  if (wants(c, "clients", 1)) info_clients(&in, s);
  if (wants(c, "memory", 1)) info_memory(&in, s, &st);
  if (wants(c, "persistence", 1)) info_persistence(&in, s, &st);
  if (wants(c, "stats", 1)) info_stats(&in, s, &st);
  if (wants(c, "replication", 1)) info_replication(&in, s);
  if (wants(c, "cpu", 1)) info_cpu(&in);
  if (wants(c, "keyspace", 1)) info_keyspace(&in, s, &st);
  reply_verbatim(c, in.b.data ? in.b.data : "", in.b.len);
  resp_buf_free(&in.b);
}

/* ------------------------------------------------------------------------
 * CONFIG
 * --------------------------------------------------------------------- */

struct get_acc {
  struct resp_buf names;  /* NUL-separated names already added */
  struct resp_buf pairs;  /* bulk replies */
  size_t n;
};

static void get_one(void *arg, const char *name, const char *value) {
  struct get_acc *a = arg;
  size_t nl = strlen(name) + 1;
  for (size_t off = 0; off < a->names.len; off += strlen(a->names.data + off) + 1)
    if (!strcmp(a->names.data + off, name)) return;
  resp_add_raw(&a->names, name, nl);
  resp_add_bulk(&a->pairs, name, nl - 1);
  resp_add_bulk(&a->pairs, value, strlen(value));
  a->n++;
}

static void config_get_cmd(struct client *c) {
  struct get_acc a = {0};
  resp_buf_init(&a.names);
  resp_buf_init(&a.pairs);
  for (int i = 2; i < c->argc; i++) config_get(c->srv->cfg, c->argv[i], get_one, &a);
  reply_map(c, a.n);
  resp_add_raw(&c->out, a.pairs.data, a.pairs.len);
  resp_buf_free(&a.names);
  resp_buf_free(&a.pairs);
}

/* After a change: values the running server keeps elsewhere. */
static void config_changed(struct server *s) {
  for (struct client *o = s->clients; o; o = o->next)
    o->parser.bulk_max = s->cfg->proto_max_bulk_len;
  cairn_set_max_memory(s->db, (uint64_t)s->cfg->maxmemory);
}

/* All pairs are tried on a scratch copy first, so a failing pair leaves
 * every value as it was (Redis's CONFIG SET is atomic too). */
static void config_set_cmd(struct client *c) {
  char err[256];
  if (c->argc < 4 || c->argc % 2 || (c->argc - 2) / 2 > CONFIG_SET_PAIRS_MAX) {
    reply_error(c, "ERR wrong number of arguments for 'config|set' command");
    return;
  }
  for (int pass = 0; pass < 2; pass++) {
    struct srv_config scratch, *cfg = c->srv->cfg;
    if (pass == 0 && config_init(&scratch)) {
      reply_error(c, "OOM command not allowed: out of memory");
      return;
    }
    for (int i = 2; i + 1 < c->argc; i += 2) {
      char *argv[2] = {(char *)c->argv[i], (char *)c->argv[i + 1]};
      int rc = config_apply(pass == 0 ? &scratch : cfg, 2, argv, 0, err, sizeof err);
      if (rc && pass == 0) {
        config_free(&scratch);
        if (!strncmp(err, "unknown directive", 17))
          reply_errorf(c, "ERR Unknown option or number of arguments for CONFIG SET - '%s'",
                       c->argv[i]);
        else
          reply_errorf(c, "ERR CONFIG SET failed (possibly related to argument '%s') - %s",
                       c->argv[i], err);
        return;
      }
    }
    if (pass == 0) config_free(&scratch);
  }
  config_changed(c->srv);
  reply_ok(c);
}

static void config_resetstat(struct server *s) {
  s->stat_conns = s->stat_cmds = s->stat_rejected = 0;
  s->stat_net_in = s->stat_net_out = 0;
  s->stat_keyspace_hits = s->stat_keyspace_misses = 0;
  s->stat_expired_events = s->stat_evicted_keys = 0;
  s->stat_cmds_sample = 0;
}

void cmd_config(struct client *c) {
  if (cmd_arg_is(c, 1, "GET") && c->argc >= 3) {
    config_get_cmd(c);
  } else if (cmd_arg_is(c, 1, "SET")) {
    config_set_cmd(c);
  } else if (cmd_arg_is(c, 1, "REWRITE") && c->argc == 2) {
    if (!c->srv->cfg->file) {
      reply_error(c, "ERR The server is running without a config file");
      return;
    }
    int rc = config_rewrite(c->srv->cfg);
    if (rc) reply_errorf(c, "ERR Rewriting config file: %s", cairn_strerror(rc));
    else reply_ok(c);
  } else if (cmd_arg_is(c, 1, "RESETSTAT") && c->argc == 2) {
    config_resetstat(c->srv);
    reply_ok(c);
  } else if (cmd_arg_is(c, 1, "GET") || cmd_arg_is(c, 1, "REWRITE") || cmd_arg_is(c, 1, "RESETSTAT")) {
    reply_errorf(c, "ERR wrong number of arguments for 'config|%s' command", c->argv[1]);
  } else {
    reply_errorf(c, "ERR unknown subcommand '%.128s'. Try CONFIG HELP.", c->argv[1]);
  }
}

/* ------------------------------------------------------------------------
 * TIME, LASTSAVE, SAVE, BGSAVE, SHUTDOWN, ROLE
 * --------------------------------------------------------------------- */

void cmd_time(struct client *c) {
  struct timeval tv;
  char a[32], b[32];
  gettimeofday(&tv, NULL);
  snprintf(a, sizeof a, "%ld", (long)tv.tv_sec);
  snprintf(b, sizeof b, "%ld", (long)tv.tv_usec);
  reply_array(c, 2);
  reply_cstr(c, a);
  reply_cstr(c, b);
}

void cmd_lastsave(struct client *c) {
  bgsave_collect(c->srv);
  reply_int(c, c->srv->lastsave_ms / 1000);
}

static uint64_t last_lsn(cairn *db) {
  struct cairn_stats st;
  if (cairn_stats(db, &st)) return 0;
  return st.last_lsn;
}


/* A save stores every write made before it, as Redis's does.  A
 * checkpoint reaches the durable end of the log, and under interval
 * durability (or for expiry's own deletes) that end lags the writes: the
 * log is made durable first. */
static int save(cairn *db, int now) {
  int rc = cairn_sync(db);
  if (rc == 0) rc = now ? cairn_checkpoint_now(db) : cairn_checkpoint(db);
  return rc;
}

static void *bgsave_main(void *arg) {
  struct server *s = arg;
  uint64_t lsn = last_lsn(s->db);
  int rc = save(s->db, 0);
  if (rc) srv_log(CAIRN_LOG_ERROR, NULL, "background checkpoint failed: %s", cairn_strerror(rc));
  else {
    __atomic_store_n(&bg_lsn, lsn, __ATOMIC_RELAXED);
    __atomic_store_n(&bg_done_ms, now_ms(), __ATOMIC_RELEASE);
    srv_log(CAIRN_LOG_INFO, NULL, "background checkpoint done");
  }
  __atomic_store_n(&bg_running, 0, __ATOMIC_RELEASE);
  return NULL;
}

/* Fold a finished BGSAVE into LASTSAVE (loop thread only). */
static void bgsave_collect(struct server *s) {
  int64_t t = __atomic_load_n(&bg_done_ms, __ATOMIC_ACQUIRE);
  if (t > s->lastsave_ms) {
    s->lastsave_ms = t;
    s->lastsave_lsn = __atomic_load_n(&bg_lsn, __ATOMIC_RELAXED);
  }
}

/* A checkpoint is to cairn what a save is to Redis, whatever asked for it
 * (checkpoint-bytes, checkpoint-interval, memory, SAVE, BGSAVE): each one
 * moves LASTSAVE, as Redis's automatic saves do, so that a monitor
 * watching LASTSAVE or rdb_changes_since_last_save sees the data reach
 * the store.  Run from the cron: LASTSAVE is then at most CRON_MS late.
 * used_memory_peak is sampled here too. */
void lastsave_collect(struct server *s) {
  struct cairn_stats st;
  if (cairn_stats(s->db, &st) != 0) return;
  s->memory_peak = MAX(s->memory_peak, st.memory_bytes);
  if (st.checkpoints == s->lastsave_ckpts) return;
  s->lastsave_ckpts = st.checkpoints;
  s->lastsave_ms = MAX(s->lastsave_ms, now_ms());
  s->lastsave_lsn = MAX(s->lastsave_lsn, st.checkpoint_lsn);
}

void bgsave_wait(void) {
  if (bg_started) pthread_join(bg_thread, NULL);
  bg_started = 0;
}

void cmd_save(struct client *c) {
  uint64_t lsn = last_lsn(c->srv->db);
  int rc = save(c->srv->db, 1);
  if (rc) {
    reply_errorf(c, "ERR checkpoint failed: %s", cairn_strerror(rc));
    return;
  }
  c->srv->lastsave_ms = now_ms();
  c->srv->lastsave_lsn = lsn;
  reply_ok(c);
}

void cmd_bgsave(struct client *c) {
  if (c->argc > 2 || (c->argc == 2 && !cmd_arg_is(c, 1, "SCHEDULE"))) {
    reply_error(c, ERR_SYNTAX);
    return;
  }
  bgsave_collect(c->srv);
  if (__atomic_load_n(&bg_running, __ATOMIC_ACQUIRE)) {
    reply_error(c, "ERR Background save already in progress");
    return;
  }
  bgsave_wait();
  __atomic_store_n(&bg_running, 1, __ATOMIC_RELEASE);
  if (pthread_create(&bg_thread, NULL, bgsave_main, c->srv)) {
    __atomic_store_n(&bg_running, 0, __ATOMIC_RELEASE);
    reply_error(c, "ERR could not start the background checkpoint");
    return;
  }
  bg_started = 1;
  reply_status(c, "Background saving started");
}

/* SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE]: the loop stops accepting, lets
 * in-flight writes finish, and cairn_close checkpoints.  NOSAVE cannot
 * skip that checkpoint; it changes nothing, as every write is already in
 * the log. */
void cmd_shutdown(struct client *c) {
  int save = 1;
  for (int i = 1; i < c->argc; i++) {
    if (cmd_arg_is(c, i, "NOSAVE")) save = 0;
    else if (cmd_arg_is(c, i, "SAVE")) save = 1;
    else if (cmd_arg_is(c, i, "NOW") || cmd_arg_is(c, i, "FORCE")) continue;
    else if (cmd_arg_is(c, i, "ABORT")) {
      reply_error(c, "ERR No shutdown in progress.");
      return;
    } else {
      reply_error(c, ERR_SYNTAX);
      return;
    }
  }
  srv_log(CAIRN_LOG_INFO, NULL, "shutdown requested by client %llu (%s)",
          (unsigned long long)c->id, c->addr);
  c->srv->shutdown_save = save;
  c->srv->shutdown_asap = 1;
  c->flags |= CLIENT_CLOSE_ASAP;  /* no reply, as Redis */
}


/* ------------------------------------------------------------------------
 * SLOWLOG
 * --------------------------------------------------------------------- */

struct slow_entry {
  uint64_t id;
  int64_t time_s;
  uint64_t duration_us;
  int argc;                     /* shown, with a "... (N more arguments)" */
  char *argv[SLOWLOG_ARGS_MAX];
  char addr[64], name[64];
};

/* The newest slow_len entries, in a ring of slow_cap (slowlog-max-len),
 * oldest first from slow_head - slow_len. */
static struct slow_entry *slow_ring;
static size_t slow_cap, slow_len, slow_head; /* head: where the next goes */
static uint64_t slow_next_id;

static void slow_clear(struct slow_entry *e) {
  for (int i = 0; i < e->argc; i++) free(e->argv[i]);
  memset(e, 0, sizeof *e);
}

static struct slow_entry *slow_nth_newest(size_t k) {
  return &slow_ring[(slow_head + slow_cap - 1 - k) % slow_cap];
}

/* Follow slowlog-max-len (CONFIG SET may have changed it), keeping the
 * newest entries that fit.  Out of memory: the ring stays as it was. */
static void slow_resize(size_t cap) {
  if (cap == slow_cap) return;
  struct slow_entry *n = NULL;
  if (cap && !(n = calloc(cap, sizeof *n))) return;
  size_t keep = MIN(slow_len, cap);
  for (size_t k = 0; k < slow_len; k++) {
    struct slow_entry *e = slow_nth_newest(k);
    if (k < keep) n[keep - 1 - k] = *e; /* moved: its strings go along */
    else slow_clear(e);
  }
  free(slow_ring);
  slow_ring = n;
  slow_cap = cap;
  slow_len = keep;
  slow_head = cap ? keep % cap : 0;
}

static char *slow_arg(const char *a, size_t n) {
  char buf[SLOWLOG_ARG_BYTES + 40];
  if (n > SLOWLOG_ARG_BYTES)
    snprintf(buf, sizeof buf, "%.*s... (%zu more bytes)", (int)SLOWLOG_ARG_BYTES, a,
             n - SLOWLOG_ARG_BYTES);
  else
    snprintf(buf, sizeof buf, "%.*s", (int)n, a);
  return strdup(buf);
}

void slowlog_add(struct client *c, uint64_t us) {
  slow_resize((size_t)c->srv->cfg->slowlog_max_len);
  if (!slow_cap) return;
  struct slow_entry *e = &slow_ring[slow_head];
  slow_clear(e);
  e->id = slow_next_id++;
  e->time_s = now_ms() / 1000;
  e->duration_us = us;
  int shown = c->argc > SLOWLOG_ARGS_MAX ? SLOWLOG_ARGS_MAX - 1 : c->argc;
  for (int i = 0; i < shown; i++) e->argv[e->argc++] = slow_arg(c->argv[i], c->argvlen[i]);
  if (shown < c->argc) {
    char more[64];
    snprintf(more, sizeof more, "... (%d more arguments)", c->argc - shown);
    e->argv[e->argc++] = strdup(more);
  }
  snprintf(e->addr, sizeof e->addr, "%s", c->addr);
  snprintf(e->name, sizeof e->name, "%s", c->name ? c->name : "");
  slow_head = (slow_head + 1) % slow_cap;
  if (slow_len < slow_cap) slow_len++;
}

static void slowlog_get(struct client *c, long long count) {
  slow_resize((size_t)c->srv->cfg->slowlog_max_len);
  size_t n = count < 0 || (size_t)count > slow_len ? slow_len : (size_t)count;
  reply_array(c, n);
  for (size_t k = 0; k < n; k++) {   /* newest first */
    const struct slow_entry *e = slow_nth_newest(k);
    reply_array(c, 6);
    reply_int(c, (long long)e->id);
    reply_int(c, e->time_s);
    reply_int(c, (long long)e->duration_us);
    reply_array(c, (size_t)e->argc);
    for (int i = 0; i < e->argc; i++) reply_cstr(c, e->argv[i] ? e->argv[i] : "");
    reply_cstr(c, e->addr);
    reply_cstr(c, e->name);
  }
}

void cmd_slowlog(struct client *c) {
  if (cmd_arg_is(c, 1, "GET") && c->argc <= 3) {
    long long count = 10;
    if (c->argc == 3 && (cmd_parse_ll(c->argv[2], &count) || count < -1)) {
      reply_error(c, "ERR count should be greater than or equal to -1");
      return;
    }
    slowlog_get(c, count);
  } else if (cmd_arg_is(c, 1, "LEN") && c->argc == 2) {
    slow_resize((size_t)c->srv->cfg->slowlog_max_len);
    reply_int(c, (long long)slow_len);
  } else if (cmd_arg_is(c, 1, "RESET") && c->argc == 2) {
    for (size_t i = 0; i < slow_cap; i++) slow_clear(&slow_ring[i]);
    slow_len = slow_head = 0;
    reply_ok(c);
  } else {
    reply_errorf(c, "ERR unknown subcommand or wrong number of arguments for '%.128s'. "
                 "Try SLOWLOG HELP.", c->argv[1]);
  }
}

/* ------------------------------------------------------------------------
 * MEMORY
 * --------------------------------------------------------------------- */

#define ENTRY_OVERHEAD_BYTES 64u  /* table slot, entry header, allocator */

static void memory_stats(struct client *c) {
  struct cairn_stats st;
  size_t clients_mem = 0;
  memset(&st, 0, sizeof st);
  cairn_stats(c->srv->db, &st);
  for (struct client *o = c->srv->clients; o; o = o->next)
    clients_mem += o->in_cap + o->out.cap + sizeof *o;
  reply_map(c, 6);
  reply_cstr(c, "peak.allocated");
  reply_int(c, (long long)st.memory_bytes);
  reply_cstr(c, "total.allocated");
  reply_int(c, (long long)(st.memory_bytes + clients_mem));
  reply_cstr(c, "clients.normal");
  reply_int(c, (long long)clients_mem);
  reply_cstr(c, "keys.count");
  reply_int(c, (long long)st.entries);
  reply_cstr(c, "dataset.bytes");
  reply_int(c, (long long)st.memory_bytes);
  reply_cstr(c, "cairn.disk.entries");
  reply_int(c, (long long)st.disk_entries);
}

void cmd_memory(struct client *c) {
  if (cmd_arg_is(c, 1, "USAGE") && (c->argc == 3 || c->argc == 5)) {
    cairn_value v;
    int rc = cairn_get(c->srv->db, srv_ns(c), c->argv[2], c->argvlen[2], &v);
    if (rc == CAIRN_ENOTFOUND || rc == CAIRN_EINVAL) {
      reply_null(c);
      return;
    }
    if (rc) {
      reply_engine_error(c, rc);
      return;
    }
    reply_int(c, (long long)(v.len + c->argvlen[2] + ENTRY_OVERHEAD_BYTES));
    cairn_value_free(&v);
  } else if (cmd_arg_is(c, 1, "STATS") && c->argc == 2) {
    memory_stats(c);
  } else if (cmd_arg_is(c, 1, "DOCTOR") && c->argc == 2) {
    reply_verbatim(c, "Sam, I have no memory problems", 30);
  } else {
    reply_errorf(c, "ERR unknown subcommand or wrong number of arguments for '%.128s'. "
                 "Try MEMORY HELP.", c->argv[1]);
  }
}
