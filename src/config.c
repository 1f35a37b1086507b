/*
 * config.c - cairnd's directives: one table, read by the file parser,
 * the command line, CONFIG GET / SET and CONFIG REWRITE.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/limits.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "srv_config.h"
#include "limits.h"
#include "util.h"

/* ------------------------------------------------------------------------
 * The table
 * --------------------------------------------------------------------- */

enum ctype { T_INT, T_SIZE, T_BOOL, T_STR, T_OCTAL, T_MS, T_SPECIAL };

struct directive;
typedef int (*parse_fn)(struct srv_config *cfg, const struct directive *d,
                        int argc, char **argv, char *err, size_t errlen);
typedef void (*format_fn)(const struct srv_config *cfg, char *buf,
                          size_t n);

struct directive {
  const char *name;
  enum ctype type;
  size_t off;          /* field in struct srv_config */
  int live;            /* CONFIG SET may change it */
  long long min, max;  /* numbers */
  const char *def;     /* default, as written in a file */
  parse_fn parse;      /* T_SPECIAL */
  format_fn format;    /* T_SPECIAL; NULL: not shown by CONFIG GET */
  int multi;           /* may appear on several lines (user, namespace) */
};

static int p_durability(struct srv_config *, const struct directive *, int,
                        char **, char *, size_t);
static int p_loglevel(struct srv_config *, const struct directive *, int,
                      char **, char *, size_t);
static int p_obuf(struct srv_config *, const struct directive *, int,
                  char **, char *, size_t);
static int p_notify(struct srv_config *, const struct directive *, int,
                    char **, char *, size_t);
static int p_user(struct srv_config *, const struct directive *, int,
                  char **, char *, size_t);
static int p_ns(struct srv_config *, const struct directive *, int, char **,
                char *, size_t);
static void f_durability(const struct srv_config *, char *, size_t);
static void f_loglevel(const struct srv_config *, char *, size_t);
static void f_obuf(const struct srv_config *, char *, size_t);
static void f_notify(const struct srv_config *, char *, size_t);
static int p_policy(struct srv_config *, const struct directive *, int,
                    char **, char *, size_t);
static void f_policy(const struct srv_config *, char *, size_t);

#define OFF(f) offsetof(struct srv_config, f)
#define SZMAX (1ll << 50)

static const struct directive dirs[] = {
  {"port", T_INT, OFF(port), 0, 0, 65535, "6380", 0, 0, 0},
  {"bind", T_STR, OFF(bind), 0, 0, 0, "127.0.0.1", 0, 0, 0},
  {"unixsocket", T_STR, OFF(unixsocket), 0, 0, 0, "", 0, 0, 0},
  {"unixsocketperm", T_OCTAL, OFF(unixsocketperm), 0, 0, 0777, "0", 0, 0, 0},
  {"protected-mode", T_BOOL, OFF(protected_mode), 1, 0, 1, "yes", 0, 0, 0},
  {"dir", T_STR, OFF(dir), 0, 0, 0, "./data", 0, 0, 0},
  {"durability", T_SPECIAL, 0, 0, 0, 0, "fsync", p_durability, f_durability, 0},
  {"interval-ms", T_INT, OFF(interval_ms), 0, 1, 3600000, "1000", 0, 0, 0},
  {"checkpoint-bytes", T_SIZE, OFF(checkpoint_bytes), 0, 1 << 20, SZMAX,
   "256mb", 0, 0, 0},
  {"checkpoint-interval", T_MS, OFF(checkpoint_interval_ms), 0, 1000,
   86400000ll * 365, "300000", 0, 0, 0},
  {"maxmemory", T_SIZE, OFF(maxmemory), 1, 0, SZMAX, "0", 0, 0, 0},
  {"maxmemory-policy", T_SPECIAL, 0, 1, 0, 0, "noeviction", p_policy, f_policy,
   0},
  {"requirepass", T_STR, OFF(requirepass), 1, 0, 0, "", 0, 0, 0},
  {"user", T_SPECIAL, 0, 0, 0, 0, NULL, p_user, NULL, 1},
  {"maxclients", T_INT, OFF(maxclients), 1, 1, 1000000, "10000", 0, 0, 0},
  {"timeout", T_INT, OFF(timeout), 1, 0, INT32_MAX, "0", 0, 0, 0},
  {"proto-max-bulk-len", T_SIZE, OFF(proto_max_bulk_len), 1, 1 << 20,
   RESP_QUERYBUF_MAX, "512mb", 0, 0, 0},
  {"client-query-buffer-limit", T_SIZE, OFF(client_query_buffer_limit), 1,
   1 << 20, RESP_QUERYBUF_MAX, "1gb", 0, 0, 0},
  {"client-output-buffer-limit", T_SPECIAL, 0, 1, 0, 0,
   "normal 0 0 0 replica 256mb 64mb 60 pubsub 32mb 8mb 60", p_obuf, f_obuf,
   0},
  {"slowlog-log-slower-than", T_INT, OFF(slowlog_slower_than), 1, -1,
   INT64_MAX / 1000, "10000", 0, 0, 0},
  {"slowlog-max-len", T_INT, OFF(slowlog_max_len), 1, 0, SLOWLOG_LEN_MAX,
   "128", 0, 0, 0},
  {"info-keyspace-sync-max", T_INT, OFF(info_keyspace_sync_max), 1, 0,
   INT64_MAX, "100000", 0, 0, 0},
  {"min-replicas-ack", T_INT, OFF(min_replicas_ack), 1, 0, 64, "0", 0, 0, 0},
  {"min-replicas-timeout", T_MS, OFF(min_replicas_timeout), 1, 0,
   86400000, "10000", 0, 0, 0},
  {"replicaof", T_STR, OFF(replicaof), 0, 0, 0, "", 0, 0, 0},
  {"masterauth", T_STR, OFF(masterauth), 1, 0, 0, "", 0, 0, 0},
  {"masteruser", T_STR, OFF(masteruser), 1, 0, 0, "", 0, 0, 0},
  {"repl-backlog-size", T_SIZE, OFF(repl_backlog_size), 1, 1 << 20, SZMAX,
   "1gb", 0, 0, 0},
  {"repl-backlog-ttl", T_INT, OFF(repl_backlog_ttl), 1, 1, 86400 * 30, "3600",
   0, 0, 0},
  {"repl-timeout", T_INT, OFF(repl_timeout), 1, 1, 86400, "60", 0, 0, 0},
  {"replica-priority", T_INT, OFF(replica_priority), 1, 0, 1000000, "100", 0,
   0, 0},
  {"promote", T_BOOL, OFF(promote), 0, 0, 1, "no", 0, 0, 0},
  {"log-segment-size", T_SIZE, OFF(log_segment_size), 0,
   (long long)SEGMENT_BYTES_MIN, (long long)SEGMENT_BYTES_MAX, "64mb", 0, 0, 0},
  {"logfile", T_STR, OFF(logfile), 0, 0, 0, "", 0, 0, 0},
  {"loglevel", T_SPECIAL, 0, 1, 0, 0, "notice", p_loglevel, f_loglevel, 0},
  {"notify-keyspace-events", T_SPECIAL, 0, 1, 0, 0, "", p_notify, f_notify,
   0},
  {"namespace", T_SPECIAL, 0, 0, 0, 0, NULL, p_ns, NULL, 1},
  /* Accepted for tools that ask (redis-benchmark reads save and
   * appendonly); they change nothing: the log is always on. */
  {"databases", T_INT, OFF(databases), 0, SRV_DBS, SRV_DBS, "16", 0, 0, 0},
  {"save", T_STR, OFF(save), 1, 0, 0, "", 0, 0, 0},
  {"appendonly", T_STR, OFF(appendonly), 1, 0, 0, "no", 0, 0, 0},
};
#define NDIRS (sizeof dirs / sizeof dirs[0])

static const struct directive *find_dir(const char *name) {
  for (size_t i = 0; i < NDIRS; i++)
    if (!strcasecmp(dirs[i].name, name)) return &dirs[i];
  /* Redis's older spelling. */
  if (!strcasecmp(name, "slaveof")) return find_dir("replicaof");
  if (!strcasecmp(name, "slave-priority")) return find_dir("replica-priority");
  return NULL;
}

static int errf(char *err, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int errf(char *err, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, n, fmt, ap);
  va_end(ap);
  return CAIRN_EINVAL;
}

/* ------------------------------------------------------------------------
 * Values
 * --------------------------------------------------------------------- */

int config_parse_size(const char *s, long long *out) {
  char *end;
  errno = 0;
  if (!*s || (!isdigit((unsigned char)*s) && *s != '-')) return CAIRN_EINVAL;
  long long v = strtoll(s, &end, 10);
  if (errno || v < 0) return CAIRN_EINVAL;
  long long mul = 1;
  if (!*end) mul = 1;
  else if (!strcasecmp(end, "k")) mul = 1000;
  else if (!strcasecmp(end, "kb")) mul = 1024;
  else if (!strcasecmp(end, "m")) mul = 1000 * 1000;
  else if (!strcasecmp(end, "mb")) mul = 1024 * 1024;
  else if (!strcasecmp(end, "g")) mul = 1000ll * 1000 * 1000;
  else if (!strcasecmp(end, "gb")) mul = 1024ll * 1024 * 1024;
  else return CAIRN_EINVAL;
  if (v > INT64_MAX / mul) return CAIRN_EINVAL;
  *out = v * mul;
  return 0;
}

/* Milliseconds, or a number with ms/s/m/h. */
static int parse_ms(const char *s, long long *out) {
  char *end;
  errno = 0;
  if (!isdigit((unsigned char)*s)) return CAIRN_EINVAL;
  long long v = strtoll(s, &end, 10);
  long long mul;
  if (errno) return CAIRN_EINVAL;
  if (!*end || !strcasecmp(end, "ms")) mul = 1;
  else if (!strcasecmp(end, "s")) mul = 1000;
  else if (!strcasecmp(end, "m")) mul = 60000;
  else if (!strcasecmp(end, "h")) mul = 3600000;
  else return CAIRN_EINVAL;
  if (v > INT64_MAX / mul) return CAIRN_EINVAL;
  *out = v * mul;
  return 0;
}

static int parse_int(const char *s, long long *out) {
  char *end;
  errno = 0;
  if (!*s) return CAIRN_EINVAL;
  long long v = strtoll(s, &end, 10);
  if (errno || *end) return CAIRN_EINVAL;
  *out = v;
  return 0;
}

static int parse_bool(const char *s, int *out) {
  if (!strcasecmp(s, "yes")) *out = 1;
  else if (!strcasecmp(s, "no")) *out = 0;
  else return CAIRN_EINVAL;
  return 0;
}

/* "512mb" rather than 536870912 when it divides evenly: for REWRITE. */
static void format_size(long long v, char *buf, size_t n) {
  static const struct { long long m; const char *s; } u[] = {
    {1024ll * 1024 * 1024, "gb"}, {1024 * 1024, "mb"}, {1024, "kb"}};
  for (size_t i = 0; i < 3 && v; i++)
    if (v % u[i].m == 0) {
      snprintf(buf, n, "%lld%s", v / u[i].m, u[i].s);
      return;
    }
  snprintf(buf, n, "%lld", v);
}

static int set_str(char **slot, const char *v) {
  char *s = strdup(v);
  if (!s) return CAIRN_ENOMEM;
  free(*slot);
  *slot = s;
  return 0;
}

/* Words after the name, joined by spaces (bind, replicaof). */
static int join_words(int argc, char **argv, char *buf, size_t n) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 1; i < argc; i++) {
    int w = snprintf(buf + used, n - used, "%s%s", i > 1 ? " " : "", argv[i]);
    if (w < 0 || (size_t)w >= n - used) return CAIRN_EINVAL;
    used += (size_t)w;
  }
  return 0;
}

static int apply_plain(struct srv_config *cfg, const struct directive *d,
                       int argc, char **argv, char *err, size_t errlen) {
  char *field = (char *)cfg + d->off;
  long long v = 0;
  int rc = 0;
  if (d->type == T_STR) {
    char buf[CFG_LINE_MAX];
    if (argc > 2 && strcmp(d->name, "bind") && strcmp(d->name, "replicaof"))
      return errf(err, errlen, "wrong number of arguments");
    if (join_words(argc, argv, buf, sizeof buf))
      return errf(err, errlen, "argument too long");
    return set_str((char **)field, buf);
  }
  if (argc != 2) return errf(err, errlen, "wrong number of arguments");
  switch (d->type) {
  case T_INT: rc = parse_int(argv[1], &v); break;
  case T_SIZE: rc = config_parse_size(argv[1], &v); break;
  case T_MS: rc = parse_ms(argv[1], &v); break;
  case T_OCTAL: {
    char *end;
    errno = 0;
    v = strtoll(argv[1], &end, 8);
    if (errno || *end || !*argv[1]) rc = CAIRN_EINVAL;
    break;
  }
  case T_BOOL: {
    int b = 1;   /* "--promote" alone: a flag */
    if (*argv[1]) rc = parse_bool(argv[1], &b);
    v = b;
    break;
  }
  default: cairn_assert(!"not a plain directive");
  }
  if (rc) return errf(err, errlen, "argument couldn't be parsed: '%s'", argv[1]);
  if (v < d->min || v > d->max)
    return errf(err, errlen, "argument must be between %lld and %lld",
                d->min, d->max);
  if (d->type == T_BOOL || d->type == T_INT) {
    if (d->off == OFF(port) || d->off == OFF(protected_mode)) *(int *)field = (int)v;
    else *(long long *)field = v;
  } else if (d->type == T_OCTAL) {
    *(unsigned *)field = (unsigned)v;
  } else {
    *(long long *)field = v;
  }
  return 0;
}

/* The current value of d as a file would write it. */
static void format_dir(const struct srv_config *cfg, const struct directive *d,
                       char *buf, size_t n) {
  const char *field = (const char *)cfg + d->off;
  switch (d->type) {
  case T_STR: snprintf(buf, n, "%s", *(char *const *)field); break;
  case T_INT:
  case T_BOOL:
    if (d->off == OFF(port) || d->off == OFF(protected_mode)) {
      int v = *(const int *)field;
      if (d->type == T_BOOL) snprintf(buf, n, "%s", v ? "yes" : "no");
      else snprintf(buf, n, "%d", v);
    } else {
      snprintf(buf, n, "%lld", *(const long long *)field);
    }
    break;
  case T_OCTAL: snprintf(buf, n, "%o", *(const unsigned *)field); break;
  case T_SIZE: snprintf(buf, n, "%lld", *(const long long *)field); break;
  case T_MS: snprintf(buf, n, "%lld", *(const long long *)field); break;
  case T_SPECIAL:
    if (d->format) d->format(cfg, buf, n);
    else buf[0] = '\0';
    break;
  }
}

/* ------------------------------------------------------------------------
 * Special directives
 * --------------------------------------------------------------------- */

static int durability_of(const char *s) {
  if (!strcasecmp(s, "fsync")) return CAIRN_DURABILITY_FSYNC;
  if (!strcasecmp(s, "interval")) return CAIRN_DURABILITY_INTERVAL;
  if (!strcasecmp(s, "memory")) return CAIRN_DURABILITY_MEMORY;
  return -1;
}

static const char *durability_name(int d) {
  switch (d) {
  case CAIRN_DURABILITY_INTERVAL: return "interval";
  case CAIRN_DURABILITY_MEMORY: return "memory";
  default: return "fsync";
  }
}

static int p_durability(struct srv_config *cfg, const struct directive *d,
                        int argc, char **argv, char *err, size_t errlen) {
  (void)d;
  int v = argc == 2 ? durability_of(argv[1]) : -1;
  if (v < 0) return errf(err, errlen, "durability must be fsync, interval or memory");
  cfg->durability = v;
  return 0;
}

static void f_durability(const struct srv_config *cfg, char *buf, size_t n) {
  snprintf(buf, n, "%s", durability_name(cfg->durability));
}

static const struct { const char *name; int level; } levels[] = {
  {"debug", CAIRN_LOG_DEBUG}, {"verbose", CAIRN_LOG_DEBUG},
  {"notice", CAIRN_LOG_INFO}, {"info", CAIRN_LOG_INFO},
  {"warning", CAIRN_LOG_WARN}, {"warn", CAIRN_LOG_WARN},
  {"error", CAIRN_LOG_ERROR},
};

static int p_loglevel(struct srv_config *cfg, const struct directive *d,
                      int argc, char **argv, char *err, size_t errlen) {
  (void)d;
  for (size_t i = 0; argc == 2 && i < sizeof levels / sizeof levels[0]; i++)
    if (!strcasecmp(argv[1], levels[i].name)) {
      cfg->loglevel = levels[i].level;
      return 0;
    }
  return errf(err, errlen, "loglevel must be debug, verbose, notice or warning");
}

static void f_loglevel(const struct srv_config *cfg, char *buf, size_t n) {
  const char *s = "notice";
  if (cfg->loglevel == CAIRN_LOG_DEBUG) s = "debug";
  else if (cfg->loglevel == CAIRN_LOG_WARN) s = "warning";
  else if (cfg->loglevel == CAIRN_LOG_ERROR) s = "error";
  snprintf(buf, n, "%s", s);
}

/* cairn never drops a key for memory: past maxmemory, clean entries leave
 * memory for the store, where reads find them.  So the one policy is
 * Redis's noeviction, which clients that queue work on Redis check for;
 * the others would lose data. */
static int p_policy(struct srv_config *cfg, const struct directive *d,
                    int argc, char **argv, char *err, size_t errlen) {
  (void)cfg; (void)d;
  if (argc == 2 && !strcasecmp(argv[1], "noeviction")) return 0;
  return errf(err, errlen, "maxmemory-policy must be noeviction: cairn "
              "never evicts keys; past maxmemory they are read from disk");
}

static void f_policy(const struct srv_config *cfg, char *buf, size_t n) {
  (void)cfg;
  snprintf(buf, n, "noeviction");
}

static int obuf_class(const char *s) {
  if (!strcasecmp(s, "normal")) return CFG_OBUF_NORMAL;
  if (!strcasecmp(s, "pubsub")) return CFG_OBUF_PUBSUB;
  if (!strcasecmp(s, "replica") || !strcasecmp(s, "slave"))
    return CFG_OBUF_REPLICA;
  return -1;
}

/* "class hard soft seconds" repeated; all or nothing. */
static int p_obuf(struct srv_config *cfg, const struct directive *d,
                  int argc, char **argv, char *err, size_t errlen) {
  /* CONFIG SET gives the whole value as one word, "pubsub 32mb 8mb 60":
   * split it as the config file would. */
  char *words[1 + 4 * CFG_OBUF_CLASSES + 1], copy[256];
  if (argc == 2 && strchr(argv[1], ' ')) {
    snprintf(copy, sizeof copy, "%s", argv[1]);
    int n = 0;
    words[n++] = argv[0];
    for (char *save = NULL, *w = strtok_r(copy, " \t", &save);
         w && n < (int)(sizeof words / sizeof *words);
         w = strtok_r(NULL, " \t", &save))
      words[n++] = w;
    argc = n;
    argv = words;
  }
  (void)d;
  struct cfg_obuf o[CFG_OBUF_CLASSES];
  memcpy(o, cfg->obuf, sizeof o);
  if (argc < 5 || (argc - 1) % 4)
    return errf(err, errlen, "wrong number of arguments");
  for (int i = 1; i + 3 < argc; i += 4) {
    int k = obuf_class(argv[i]);
    long long h, s, secs;
    if (k < 0) return errf(err, errlen, "invalid client class '%s'", argv[i]);
    if (config_parse_size(argv[i + 1], &h) ||
        config_parse_size(argv[i + 2], &s) || parse_int(argv[i + 3], &secs) ||
        secs < 0 || secs > INT32_MAX)
      return errf(err, errlen, "invalid client-output-buffer-limit values");
    o[k].hard_bytes = (uint64_t)h;
    o[k].soft_bytes = (uint64_t)s;
    o[k].soft_seconds = (uint32_t)secs;
  }
  memcpy(cfg->obuf, o, sizeof o);
  return 0;
}

static void f_obuf(const struct srv_config *cfg, char *buf, size_t n) {
  static const char *names[] = {"normal", "pubsub", "replica"};
  static const int order[] = {CFG_OBUF_NORMAL, CFG_OBUF_REPLICA,
                              CFG_OBUF_PUBSUB};
  size_t used = 0;
  buf[0] = '\0';
  for (int j = 0; j < 3 && used < n; j++) {
    const struct cfg_obuf *o = &cfg->obuf[order[j]];
    int w = snprintf(buf + used, n - used, "%s%s %llu %llu %u",
                     j ? " " : "", names[order[j]],
                     (unsigned long long)o->hard_bytes,
                     (unsigned long long)o->soft_bytes, o->soft_seconds);
    if (w < 0) return;
    used += (size_t)w;
  }
}

int config_notify_parse(const char *s, unsigned *out) {
  static const char letters[] = "KEg$lshzxetmdnA";
  static const unsigned flags[] = {
    NOTIFY_KEYSPACE, NOTIFY_KEYEVENT, NOTIFY_GENERIC, NOTIFY_STRING,
    NOTIFY_LIST, NOTIFY_SET, NOTIFY_HASH, NOTIFY_ZSET, NOTIFY_EXPIRED,
    NOTIFY_EVICTED, NOTIFY_STREAM, NOTIFY_KEY_MISS, NOTIFY_MODULE,
    NOTIFY_NEW, NOTIFY_ALL};
  unsigned f = 0;
  for (; *s; s++) {
    const char *p = strchr(letters, *s);
    if (!p) return CAIRN_EINVAL;
    f |= flags[p - letters];
  }
  *out = f;
  return 0;
}

static int p_notify(struct srv_config *cfg, const struct directive *d,
                    int argc, char **argv, char *err, size_t errlen) {
  (void)d;
  unsigned f;
  const char *v = argc >= 2 ? argv[1] : "";
  if (argc > 2 || config_notify_parse(v, &f))
    return errf(err, errlen, "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.");
  cfg->notify_flags = f;
  char buf[32];
  f_notify(cfg, buf, sizeof buf);
  return set_str(&cfg->notify_keyspace_events, buf);
}

/* Canonical letters, as Redis's keyspaceEventsFlagsToString. */
static void f_notify(const struct srv_config *cfg, char *buf, size_t n) {
  unsigned f = cfg->notify_flags;
  char s[32];
  size_t k = 0;
  if ((f & NOTIFY_ALL) == NOTIFY_ALL) {
    s[k++] = 'A';
  } else {
    static const char l[] = "g$lshzxetd";
    static const unsigned fl[] = {NOTIFY_GENERIC, NOTIFY_STRING, NOTIFY_LIST,
                                  NOTIFY_SET, NOTIFY_HASH, NOTIFY_ZSET,
                                  NOTIFY_EXPIRED, NOTIFY_EVICTED,
                                  NOTIFY_STREAM, NOTIFY_MODULE};
    for (size_t i = 0; i < 10; i++)
      if (f & fl[i]) s[k++] = l[i];
  }
  if (f & NOTIFY_KEYSPACE) s[k++] = 'K';
  if (f & NOTIFY_KEYEVENT) s[k++] = 'E';
  if (f & NOTIFY_KEY_MISS) s[k++] = 'm';
  if (f & NOTIFY_NEW) s[k++] = 'n';
  s[k] = '\0';
  snprintf(buf, n, "%s", s);
}

static int p_user(struct srv_config *cfg, const struct directive *d,
                  int argc, char **argv, char *err, size_t errlen) {
  (void)d;
  int ro = 0;
  if (argc == 4 && !strcasecmp(argv[3], "readonly")) ro = 1;
  else if (argc != 3)
    return errf(err, errlen, "usage: user NAME PASSWORD [readonly]");
  struct cfg_user *u = NULL;
  for (unsigned i = 0; i < cfg->nusers; i++)
    if (!strcmp(cfg->users[i].name, argv[1])) u = &cfg->users[i];
  if (!u) {
    if (cfg->nusers >= CFG_USERS_MAX)
      return errf(err, errlen, "too many users (at most %u)", CFG_USERS_MAX);
    u = &cfg->users[cfg->nusers];
    memset(u, 0, sizeof *u);
    if (set_str(&u->name, argv[1])) return CAIRN_ENOMEM;
    cfg->nusers++;
  }
  if (set_str(&u->pass, argv[2])) return CAIRN_ENOMEM;
  u->readonly = ro;
  return 0;
}

static int ns_option(struct cfg_ns *ns, const char *k, const char *v) {
  long long x;
  if (!strcasecmp(k, "durability")) {
    int d = durability_of(v);
    if (d < 0) return CAIRN_EINVAL;
    ns->opt.durability = (cairn_durability)d;
    return 0;
  }
  if (!strcasecmp(k, "max-entries"))
    return parse_int(v, &x) || x < 0 ? CAIRN_EINVAL
                                     : (ns->max_entries = (uint64_t)x, 0);
  if (parse_ms(v, &x)) return CAIRN_EINVAL;
  if (!strcasecmp(k, "lifespan")) ns->opt.ttl_ms = (uint64_t)x;
  else if (!strcasecmp(k, "max-idle")) ns->opt.max_idle_ms = (uint64_t)x;
  else return CAIRN_EINVAL;
  return 0;
}

static int p_ns(struct srv_config *cfg, const struct directive *d, int argc,
                char **argv, char *err, size_t errlen) {
  (void)d;
  long long db;
  if (argc < 3 || argc % 2 == 0)
    return errf(err, errlen, "usage: namespace DB NAME [durability fsync|interval|memory] "
                "[lifespan MS] [max-idle MS] [max-entries N]");
  if (parse_int(argv[1], &db) || db < 0 || db >= SRV_DBS)
    return errf(err, errlen, "namespace: DB must be 0..%u", SRV_DBS - 1);
  size_t nl = strlen(argv[2]);
  if (nl == 0 || nl > CAIRN_NS_MAX)
    return errf(err, errlen, "namespace: NAME must be 1 to %u bytes", CAIRN_NS_MAX);
  struct cfg_ns ns;
  memset(&ns, 0, sizeof ns);
  memcpy(ns.name, argv[2], nl + 1);
  for (int i = 3; i + 1 < argc; i += 2)
    if (ns_option(&ns, argv[i], argv[i + 1]))
      return errf(err, errlen, "namespace: bad option '%s %s'", argv[i], argv[i + 1]);
  ns.configured = 1;
  cfg->ns[db] = ns;
  return 0;
}

const char *config_ns_name(const struct srv_config *cfg, int db) {
  if (db < 0 || db >= (int)SRV_DBS) db = 0;
  return cfg->ns[db].name;
}

/* ------------------------------------------------------------------------
 * Applying and loading
 * --------------------------------------------------------------------- */

int config_apply(struct srv_config *cfg, int argc, char **argv, int startup,
                 char *err, size_t errlen) {
  const struct directive *d = find_dir(argv[0]);
  if (!d) return errf(err, errlen, "unknown directive '%s'", argv[0]);
  if (!startup && !d->live)
    return errf(err, errlen, "can't set immutable config");
  if (d->type == T_SPECIAL) return d->parse(cfg, d, argc, argv, err, errlen);
  if (argc < 2 && d->type != T_STR)
    return errf(err, errlen, "wrong number of arguments");
  return apply_plain(cfg, d, argc, argv, err, errlen);
}

/* Split a line into words as redis-server does: blanks separate words,
 * a word starting with '#' after the directive begins a comment,
 * "..." takes \n \t \xHH escapes, '...' is literal.  Returns the number of
 * words, or -1 on unbalanced quotes or too many words.  Words are written
 * into buf (NUL-terminated) and pointed at by argv. */
static int split_words(const char *line, char *buf, char **argv) {
  int argc = 0;
  const char *p = line;
  char *o = buf;
  for (;;) {
    while (*p && isspace((unsigned char)*p)) p++;
    if (!*p) return argc;
    if (*p == '#') return argc;  /* a comment, or the rest of the line */
    if (argc >= (int)CFG_ARGS_MAX) return -1;
    argv[argc++] = o;
    char q = 0;
    if (*p == '"' || *p == '\'') q = *p++;
    for (;;) {
      if (!*p) {
        if (q) return -1;
        break;
      }
      if (!q && isspace((unsigned char)*p)) break;
      if (q && *p == q) {
        p++;
        if (*p && !isspace((unsigned char)*p)) return -1;
        break;
      }
      if (q == '"' && *p == '\\' && p[1]) {
        p++;
        char c = *p;
        if (c == 'n') c = '\n';
        else if (c == 't') c = '\t';
        else if (c == 'r') c = '\r';
        *o++ = c;
        p++;
        continue;
      }
      *o++ = *p++;
    }
    *o++ = '\0';
  }
}

static void rtrim(char *s) {
  size_t n = strlen(s);
  while (n && (s[n - 1] == '\n' || s[n - 1] == '\r')) s[--n] = '\0';
}

int config_load_file(struct srv_config *cfg, const char *path, char *err,
                     size_t errlen) {
  FILE *f = fopen(path, "r");
  if (!f) {
    int e = errno;
    errf(err, errlen, "%s: %s", path, strerror(e));
    return -e;
  }
  char line[CFG_LINE_MAX + 2], words[CFG_LINE_MAX + 2], msg[256];
  char *argv[CFG_ARGS_MAX];
  int rc = 0;
  unsigned lineno = 0;
  while (fgets(line, sizeof line, f)) {
    if (++lineno > CFG_LINES_MAX) {
      rc = errf(err, errlen, "%s:%u: too many lines", path, lineno);
      break;
    }
    if (strlen(line) > CFG_LINE_MAX) {
      rc = errf(err, errlen, "%s:%u: line too long", path, lineno);
      break;
    }
    rtrim(line);
    int argc = split_words(line, words, argv);
    if (argc < 0) {
      rc = errf(err, errlen, "%s:%u: unbalanced quotes", path, lineno);
      break;
    }
    if (argc == 0 || argv[0][0] == '#') continue;
    if (config_apply(cfg, argc, argv, 1, msg, sizeof msg)) {
      rc = errf(err, errlen, "%s:%u: %s", path, lineno, msg);
      break;
    }
  }
  fclose(f);
  if (!rc) {
    char *abs = realpath(path, NULL);
    free(cfg->file);
    cfg->file = abs ? abs : strdup(path);
  }
  return rc;
}

int config_init(struct srv_config *cfg) {
  char err[256], words[CFG_LINE_MAX], line[CFG_LINE_MAX];
  char *argv[CFG_ARGS_MAX];
  memset(cfg, 0, sizeof *cfg);
  for (size_t i = 0; i < NDIRS; i++) {
    if (!dirs[i].def) continue;
    snprintf(line, sizeof line, "%s %s", dirs[i].name, dirs[i].def);
    int argc = split_words(line, words, argv);
    if (argc == 1 && dirs[i].type != T_SPECIAL) argv[argc++] = "";
    if (argc == 1) argv[argc++] = "";
    int rc = config_apply(cfg, argc, argv, 1, err, sizeof err);
    cairn_assert(rc == 0 || rc == CAIRN_ENOMEM);
    if (rc) return rc;
  }
  for (unsigned db = 0; db < SRV_DBS; db++) {
    if (db == 0) snprintf(cfg->ns[db].name, sizeof cfg->ns[db].name, "default");
    else snprintf(cfg->ns[db].name, sizeof cfg->ns[db].name, "db%u", db);
  }
  return 0;
}

void config_free(struct srv_config *cfg) {
  if (!cfg) return;
  for (size_t i = 0; i < NDIRS; i++)
    if (dirs[i].type == T_STR) free(*(char **)((char *)cfg + dirs[i].off));
  for (unsigned i = 0; i < cfg->nusers; i++) {
    free(cfg->users[i].name);
    free(cfg->users[i].pass);
  }
  free(cfg->notify_keyspace_events);
  free(cfg->file);
  memset(cfg, 0, sizeof *cfg);
}

/* ------------------------------------------------------------------------
 * CONFIG GET
 * --------------------------------------------------------------------- */

int config_glob(const char *pat, size_t plen, const char *s, size_t slen,
                int nocase);

static int lower_eq(char a, char b, int nocase) {
  if (nocase) return tolower((unsigned char)a) == tolower((unsigned char)b);
  return a == b;
}

static int glob_class(const char **pp, size_t *plen, char c, int nocase) {
  const char *p = *pp + 1;
  size_t n = *plen - 1;
  int neg = 0, match = 0;
  if (n && *p == '^') { neg = 1; p++; n--; }
  while (n && *p != ']') {
    if (*p == '\\' && n >= 2) {
      p++; n--;
      if (lower_eq(*p, c, nocase)) match = 1;
    } else if (n >= 3 && p[1] == '-') {
      char lo = p[0], hi = p[2];
      if (lo > hi) { char t = lo; lo = hi; hi = t; }
      char cc = nocase ? (char)tolower((unsigned char)c) : c;
      if (nocase) { lo = (char)tolower((unsigned char)lo); hi = (char)tolower((unsigned char)hi); }
      if (cc >= lo && cc <= hi) match = 1;
      p += 2; n -= 2;
    } else if (lower_eq(*p, c, nocase)) {
      match = 1;
    }
    p++; n--;
  }
  *pp = p;   /* at ']' (or the end) */
  *plen = n;
  return neg ? !match : match;
}

/* Recursion only at '*', bounded by the pattern's length. */
int config_glob(const char *p, size_t pn, const char *s, size_t sn,
                int nocase) {
  while (pn) {
    switch (*p) {
    case '*':
      while (pn > 1 && p[1] == '*') { p++; pn--; }
      if (pn == 1) return 1;
      for (size_t i = 0; i <= sn; i++)
        if (config_glob(p + 1, pn - 1, s + i, sn - i, nocase)) return 1;
      return 0;
    case '?':
      if (!sn) return 0;
      s++; sn--;
      break;
    case '[':
      if (!sn || !glob_class(&p, &pn, *s, nocase)) return 0;
      s++; sn--;
      if (!pn) return sn == 0;
      break;
    case '\\':
      if (pn >= 2) { p++; pn--; }
      /* fall through */
    default:
      if (!sn || !lower_eq(*p, *s, nocase)) return 0;
      s++; sn--;
      break;
    }
    p++; pn--;
  }
  return sn == 0;
}

void config_get(const struct srv_config *cfg, const char *pattern,
                void (*fn)(void *arg, const char *name, const char *value),
                void *arg) {
  char buf[CFG_LINE_MAX];
  for (size_t i = 0; i < NDIRS; i++) {
    const struct directive *d = &dirs[i];
    if (d->type == T_SPECIAL && !d->format) continue;
    if (!config_glob(pattern, strlen(pattern), d->name, strlen(d->name), 1))
      continue;
    format_dir(cfg, d, buf, sizeof buf);
    fn(arg, d->name, buf);
  }
}

/* ------------------------------------------------------------------------
 * CONFIG REWRITE
 * --------------------------------------------------------------------- */

/* A value as a file line: quoted when it is empty or holds blanks that
 * are not word separators of the directive. */
static void rewrite_line(const struct srv_config *cfg,
                         const struct directive *d, char *out, size_t n) {
  char v[CFG_LINE_MAX];
  format_dir(cfg, d, v, sizeof v);
  if (d->type == T_SIZE) format_size(*(const long long *)((const char *)cfg + d->off), v, sizeof v);
  int words = d->type == T_SPECIAL || !strcmp(d->name, "bind") ||
              !strcmp(d->name, "replicaof");
  if (!v[0] || (!words && strpbrk(v, " \t\"'\\#"))) {
    char q[CFG_LINE_MAX * 2 + 3], *o = q;
    *o++ = '"';
    for (const char *p = v; *p && o < q + sizeof q - 4; p++) {
      if (*p == '"' || *p == '\\') *o++ = '\\';
      *o++ = *p;
    }
    *o++ = '"';
    *o = '\0';
    snprintf(out, n, "%s %s", d->name, q);
  } else {
    snprintf(out, n, "%s %s", d->name, v);
  }
}

static int differs_from_default(const struct srv_config *cfg,
                                const struct directive *d) {
  struct srv_config def;
  char a[CFG_LINE_MAX], b[CFG_LINE_MAX];
  if (!d->def || d->multi) return 0;
  if (config_init(&def)) return 1;
  format_dir(cfg, d, a, sizeof a);
  format_dir(&def, d, b, sizeof b);
  config_free(&def);
  return strcmp(a, b) != 0;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Copy f to fd, rewriting single-valued directives; seen[] marks those
 * written. */
static int rewrite_body(const struct srv_config *cfg, FILE *f, int fd,
                        char *seen) {
  char line[CFG_LINE_MAX + 2], words[CFG_LINE_MAX + 2], out[CFG_LINE_MAX * 2 + 16];
  char *argv[CFG_ARGS_MAX];
  unsigned lines = 0;
  int rc = 0;
  while (!rc && lines++ < CFG_LINES_MAX && fgets(line, sizeof line, f)) {
    char copy[CFG_LINE_MAX + 2];
    snprintf(copy, sizeof copy, "%s", line);
    rtrim(copy);
    int argc = split_words(copy, words, argv);
    const struct directive *d = argc > 0 && argv[0][0] != '#' ? find_dir(argv[0]) : NULL;
    if (!d || d->multi) {
      rc = write_all(fd, line, strlen(line));
      continue;
    }
    size_t k = (size_t)(d - dirs);
    if (seen[k]) continue;  /* a later duplicate: the value is written once */
    seen[k] = 1;
    rewrite_line(cfg, d, out, sizeof out - 1);
    strcat(out, "\n");
    rc = write_all(fd, out, strlen(out));
  }
  return rc;
}

static int rewrite_tail(const struct srv_config *cfg, int fd,
                        const char *seen) {
  char out[CFG_LINE_MAX * 2 + 16];
  int header = 0, rc = 0;
  for (size_t i = 0; i < NDIRS && !rc; i++) {
    if (seen[i] || !differs_from_default(cfg, &dirs[i])) continue;
    if (!header) {
      const char *h = "# Generated by CONFIG REWRITE\n";
      rc = write_all(fd, h, strlen(h));
      header = 1;
    }
    rewrite_line(cfg, &dirs[i], out, sizeof out - 1);
    strcat(out, "\n");
    if (!rc) rc = write_all(fd, out, strlen(out));
  }
  return rc;
}

static int fsync_parent(const char *path) {
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash == dir) dir[1] = '\0';
  else if (slash) *slash = '\0';
  else snprintf(dir, sizeof dir, ".");
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -errno;
  int rc = fsync(fd) ? -errno : 0;
  close(fd);
  return rc;
}

int config_rewrite(const struct srv_config *cfg) {
  if (!cfg->file) return CAIRN_EINVAL;
  char tmp[PATH_MAX], seen[NDIRS];
  memset(seen, 0, sizeof seen);
  if (snprintf(tmp, sizeof tmp, "%s.tmp-%ld", cfg->file, (long)getpid()) >=
      (int)sizeof tmp)
    return -ENAMETOOLONG;
  FILE *f = fopen(cfg->file, "r");
  if (!f && errno != ENOENT) return -errno;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    int e = -errno;
    if (f) fclose(f);
    return e;
  }
  int rc = f ? rewrite_body(cfg, f, fd, seen) : 0;
  if (f) fclose(f);
  if (!rc) rc = rewrite_tail(cfg, fd, seen);
  if (!rc && fsync(fd)) rc = -errno;
  close(fd);
  if (!rc && rename(tmp, cfg->file)) rc = -errno;
  if (rc) unlink(tmp);
  else rc = fsync_parent(cfg->file);
  return rc;
}
