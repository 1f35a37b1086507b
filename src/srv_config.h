/*
 * srv_config.h - cairnd's configuration: the directives of cairn.conf, the
 * same directives as "--name value" flags, and the CONFIG GET / SET /
 * REWRITE machinery behind them.
 *
 * Every directive lives in one table (config.c) that gives its name, its
 * type, whether CONFIG SET may change it while the server runs, and its
 * default.  The table is the only list of names: parsing, CONFIG GET
 * (glob patterns), CONFIG SET and CONFIG REWRITE all walk it.
 *
 * Sizes take Redis's suffixes: 1k = 1000, 1kb = 1024, likewise m/mb and
 * g/gb, case-insensitive.  Booleans are yes/no.
 */
#ifndef CAIRN_SRV_CONFIG_H
#define CAIRN_SRV_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "cairn.h"
#include "server.h"

#define CFG_USERS_MAX 64u   /* "user" lines */
#define CFG_LINE_MAX 4096u  /* bytes in one configuration line */
#define CFG_LINES_MAX 100000u /* lines in a configuration file */
#define CFG_ARGS_MAX 64u    /* words in one directive */

/* Client classes of client-output-buffer-limit. */
enum { CFG_OBUF_NORMAL = 0, CFG_OBUF_PUBSUB = 1, CFG_OBUF_REPLICA = 2,
       CFG_OBUF_CLASSES = 3 };

struct cfg_obuf {
  uint64_t hard_bytes;   /* 0: no limit */
  uint64_t soft_bytes;   /* 0: no limit */
  uint32_t soft_seconds; /* over soft for this long closes the client */
};

/* "user NAME PASSWORD [readonly]" */
struct cfg_user {
  char *name;
  char *pass;
  int readonly;
};

/* "namespace DB NAME [durability X] [lifespan MS] [max-idle MS]
 * [max-entries N]": SELECT index DB reads and writes engine namespace
 * NAME, whose defaults are set with cairn_ns_define at startup.
 * Without a line, database 0 is the engine's "default" namespace and
 * database N is "dbN".  max_entries goes to the engine as
 * cairn_ns_options.max_entries: at most about that many entries of the
 * namespace stay in memory, the rest are read from the store. */
struct cfg_ns {
  char name[CAIRN_NS_MAX + 1];
  cairn_ns_options opt;
  uint64_t max_entries;  /* 0: none */
  int configured;        /* given by a namespace line */
};

/* Keyspace notification classes (Redis's letters). */
#define NOTIFY_KEYSPACE (1u << 0)  /* K */
#define NOTIFY_KEYEVENT (1u << 1)  /* E */
#define NOTIFY_GENERIC  (1u << 2)  /* g */
#define NOTIFY_STRING   (1u << 3)  /* $ */
#define NOTIFY_LIST     (1u << 4)  /* l */
#define NOTIFY_SET      (1u << 5)  /* s */
#define NOTIFY_HASH     (1u << 6)  /* h */
#define NOTIFY_ZSET     (1u << 7)  /* z */
#define NOTIFY_EXPIRED  (1u << 8)  /* x */
#define NOTIFY_EVICTED  (1u << 9)  /* e */
#define NOTIFY_STREAM   (1u << 10) /* t */
#define NOTIFY_KEY_MISS (1u << 11) /* m */
#define NOTIFY_MODULE   (1u << 12) /* d */
#define NOTIFY_NEW      (1u << 13) /* n */
#define NOTIFY_ALL (NOTIFY_GENERIC | NOTIFY_STRING | NOTIFY_LIST | NOTIFY_SET | \
                    NOTIFY_HASH | NOTIFY_ZSET | NOTIFY_EXPIRED |             \
                    NOTIFY_EVICTED | NOTIFY_STREAM | NOTIFY_MODULE)

#define SLOWLOG_LEN_MAX 65536 /* slowlog-max-len's bound */

struct srv_config {
  char *file;                 /* absolute path of the config file, or NULL */

  /* Listening. */
  int port;                   /* 6380; 0: no TCP */
  char *bind;                 /* space-separated addresses; "127.0.0.1" */
  char *unixsocket;           /* "" for none */
  unsigned unixsocketperm;    /* octal; 0: leave as created */
  int protected_mode;         /* yes */

  /* The engine. */
  char *dir;                  /* data directory; "./data" */
  int durability;             /* cairn_durability; fsync */
  long long interval_ms;      /* 1000 */
  long long checkpoint_bytes; /* 256mb */
  long long checkpoint_interval_ms; /* 300000 */
  long long maxmemory;        /* 0; fixed once the engine is open */
  struct cfg_ns ns[SRV_DBS];

  /* Security. */
  char *requirepass;          /* "" for none */
  struct cfg_user users[CFG_USERS_MAX];
  unsigned nusers;

  /* Limits. */
  long long maxclients;       /* 10000 */
  long long timeout;          /* idle seconds before closing; 0: never */
  long long proto_max_bulk_len;        /* 512mb */
  long long client_query_buffer_limit; /* 1gb */
  struct cfg_obuf obuf[CFG_OBUF_CLASSES];
  long long slowlog_slower_than; /* us; 10000; -1: log nothing, 0: all */
  long long slowlog_max_len;     /* 128 entries kept; SLOWLOG_LEN_MAX */
  long long info_keyspace_sync_max; /* 100000: INFO and DBSIZE count
                                       keys on the loop up to this many
                                       entries, beside it past that */

  /* Replication (stored for the replication module). */
  long long min_replicas_ack;      /* 0 */
  long long min_replicas_timeout;  /* ms; 10000 */
  char *replicaof;                 /* "host port" or "" */
  char *masterauth;
  char *masteruser;                /* "" : AUTH with the password alone */
  long long repl_backlog_size;     /* log kept for a lagging follower */
  long long repl_backlog_ttl;      /* seconds; the same, in time */
  long long repl_timeout;          /* seconds without traffic: link down */
  long long replica_priority;      /* 100; INFO's slave_priority */
  long long promote;               /* take leadership at start */
  long long log_segment_size;      /* the log's segment files */

  /* Logging. */
  char *logfile;              /* "" for stderr */
  int loglevel;               /* CAIRN_LOG_*; INFO */

  /* Pub/sub. */
  char *notify_keyspace_events; /* as given, canonical letters */
  unsigned notify_flags;        /* NOTIFY_* */

  /* Accepted, without effect, for tools that read them. */
  long long databases;          /* always SRV_DBS */
  char *save;
  char *appendonly;
};

/* Fill *cfg with the defaults.  Errors: CAIRN_ENOMEM. */
int config_init(struct srv_config *cfg);
void config_free(struct srv_config *cfg);

/* Read the file at path (directives, one per line, '#' comments).
 * On error, writes "FILE:LINE: reason" into err and returns CAIRN_EINVAL
 * (or a negated errno if the file cannot be read). */
int config_load_file(struct srv_config *cfg, const char *path, char *err,
                     size_t errlen);

/* Apply one directive given as words: argv[0] is the name.  startup is 1
 * while reading the file and the command line (every directive allowed),
 * 0 for CONFIG SET (only live ones).  Error text goes to err. */
int config_apply(struct srv_config *cfg, int argc, char **argv, int startup,
                 char *err, size_t errlen);

/* Parse a size with Redis's suffixes.  Errors: CAIRN_EINVAL. */
int config_parse_size(const char *s, long long *out);

/* Parse notify-keyspace-events letters into NOTIFY_* flags. */
int config_notify_parse(const char *s, unsigned *out);

/* Iterate directives for CONFIG GET: calls fn(name, value) for every
 * directive whose name matches the glob pattern (case-insensitive). */
void config_get(const struct srv_config *cfg, const char *pattern,
                void (*fn)(void *arg, const char *name, const char *value),
                void *arg);

/* Rewrite cfg->file in place: each directive line is replaced by the
 * current value, comments and order are kept, changed directives missing
 * from the file are appended; written to a temporary file, fsynced and
 * renamed over the original.  Errors: CAIRN_EINVAL (no file), negated
 * errno. */
int config_rewrite(const struct srv_config *cfg);

/* Glob matching as Redis's stringmatchlen (*, ?, [...], \x). */
int config_glob(const char *pat, size_t plen, const char *s, size_t slen,
                int nocase);

/* The engine namespace of database db. */
const char *config_ns_name(const struct srv_config *cfg, int db);

#endif /* CAIRN_SRV_CONFIG_H */
