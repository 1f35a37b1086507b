/*
 * server.h - cairnd, the daemon: shared types of the event loop (net.c),
 * the configuration (config.c), the command table (cmd.c) and the command
 * implementations (cmd_*.c).
 *
 * Threads: one event loop thread runs every command; the engine's log
 * thread only reports write completions, through a queue and an eventfd
 * (srv_write_done).  So command code never locks anything of the server.
 *
 * Replies in order: a client's replies go to its output buffer in the
 * order its commands ran.  A write that must be durable before it is
 * acknowledged (durability fsync) writes its reply at once but puts a
 * hold on it (reply_hold / the engine's completion): nothing at or after a
 * held reply is sent until the write is durable.  If the write fails, the
 * held reply is replaced by an error.  Pipelined commands therefore keep
 * running while a write waits, and group commit covers every client's
 * writes of a loop turn.
 */
#ifndef CAIRN_SERVER_H
#define CAIRN_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cairn.h"
#include "resp.h"

#define SRV_DBS 16u               /* SELECT 0..15 */
#define SRV_REDIS_VERSION "7.0.0" /* what HELLO and INFO claim to be */
#define SRV_ARGS_INLINE 16u

struct server;
struct client;

/* ------------------------------------------------------------------------
 * Commands
 * --------------------------------------------------------------------- */

/* Command flags. */
#define CMD_WRITE    0x001u /* changes data: refused on a replica / ro user */
#define CMD_READONLY 0x002u /* reads data */
#define CMD_ADMIN    0x004u /* server administration */
#define CMD_PUBSUB   0x008u /* allowed in RESP2 subscribed mode */
#define CMD_NOAUTH   0x010u /* allowed before AUTH (AUTH, HELLO, QUIT...) */
#define CMD_NOMULTI  0x020u /* run at once even inside MULTI (EXEC, ...) */
#define CMD_FAST     0x040u
#define CMD_LOADING  0x080u /* allowed while loading */
#define CMD_DELETES  0x100u /* only deletes keys: not held for memory */

typedef void (*cmd_proc)(struct client *c);

struct cmd {
  const char *name;   /* lower case */
  int arity;          /* Redis convention: n exact, -n at least n */
  unsigned flags;
  cmd_proc proc;
  int first_key, last_key, key_step; /* for COMMAND INFO / GETKEYS */
  const char *group;  /* "string", "keyspace", ... for COMMAND DOCS */
  const char *summary;
};

/* The table (cmd.c) and lookup by name, case-insensitive; NULL if none. */
extern const struct cmd cmd_table[];
extern const size_t cmd_count;
const struct cmd *cmd_lookup(const char *name, size_t len);

/* Run the command in c->argv: arity, authentication, MULTI queueing and
 * read-only checks in one place, then its proc. */
void cmd_dispatch(struct client *c);

/* ------------------------------------------------------------------------
 * Clients
 * --------------------------------------------------------------------- */

struct hold;          /* a reply waiting for its write to be durable */

struct client {
  uint64_t id;
  int fd;
  struct server *srv;
  int proto;          /* 2 or 3 */
  int db;             /* SELECTed database, 0..SRV_DBS-1 */
  int authed;
  int readonly_user;  /* a user with the read-only flag */
  const char *user;   /* "default" or a configured user's name */
  char *name;         /* CLIENT SETNAME, or NULL */
  char *lib_name, *lib_ver; /* CLIENT SETINFO */
  char addr[64];      /* "ip:port" or the unix socket path */
  char laddr[64];
  int unix_socket;
  int repl_port;      /* REPLCONF listening-port of a follower */
  int64_t created_ms, last_ms; /* for CLIENT LIST, timeout */
  const char *last_cmd;

  /* Input. */
  char *in;
  size_t in_len, in_cap;
  struct resp_parser parser;
  struct resp_cmd req;          /* the command being run */
  int argc;
  const char **argv;            /* into in, or into argbuf; each is
                                   followed by a NUL byte not counted in
                                   argvlen, so text arguments are C
                                   strings.  Valid until the command's
                                   proc returns: copy what you keep. */
  const size_t *argvlen;
  const struct cmd *cmd;        /* the command running, or NULL */
  char *argbuf;                 /* NUL-terminated copies of inline words */
  size_t argbuf_cap;

  /* Output: replies in order, sent up to the first unfinished hold. */
  struct resp_buf out;
  size_t out_sent;              /* bytes of out already written */
  struct hold *holds, *holds_tail;
  size_t nholds;
  uint32_t hold_seq;            /* numbers holds, for completions */
  int64_t obuf_soft_since_ms;   /* over the soft output limit since, or 0 */

  /* MULTI/EXEC. */
  int in_multi, multi_error;
  void *multi_queue;            /* cmd_multi.c's queued commands */
  void *watched;                /* cmd_multi.c's watched keys */
  int dirty_cas;                /* a watched key changed */

  /* Pub/sub. */
  void *subs;                   /* channels and patterns, pubsub.c */
  size_t nsubs;

  unsigned flags;               /* CLIENT_* */
  uint64_t dbsize_count;        /* cmd_server.c: the background key count
                                   a waiting DBSIZE needs, or 0 */
  struct client *next, *prev;   /* the server's list */
  struct client *id_next;       /* the server's id hash chain */
};

#define CLIENT_CLOSE_AFTER_REPLY 0x1u /* QUIT, protocol error, limit */
#define CLIENT_CLOSE_ASAP        0x2u /* output limit, CLIENT KILL */
#define CLIENT_BLOCKED_READ      0x4u /* input paused (waiting writes) */
#define CLIENT_WRITE_HELD        0x8u /* net.c: paused while the engine
                                         holds writes back for memory */
#define CLIENT_EPOLLOUT          0x100u /* net.c: waiting for the socket */
#define CLIENT_FLUSH_PENDING     0x200u /* net.c: in the server's flush list */

/* ------------------------------------------------------------------------
 * Replies (net.c): each writes to c->out in c->proto.
 * --------------------------------------------------------------------- */

void reply_ok(struct client *c);
void reply_status(struct client *c, const char *s);
void reply_error(struct client *c, const char *full_text); /* "ERR ..." */
void reply_errorf(struct client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void reply_int(struct client *c, long long v);
void reply_bulk(struct client *c, const void *p, size_t n);
void reply_cstr(struct client *c, const char *s); /* bulk of a C string */
void reply_null(struct client *c);       /* $-1 / _ */
void reply_null_array(struct client *c); /* *-1 / _ */
void reply_array(struct client *c, size_t n);
void reply_map(struct client *c, size_t n);
void reply_set(struct client *c, size_t n);
void reply_double(struct client *c, double d);
void reply_bool(struct client *c, int b);
void reply_verbatim(struct client *c, const char *txt, size_t n);
void reply_push(struct client *c, size_t n);
/* A subcommand HELP: lines (NULL-terminated) as an array of statuses. */
void reply_help(struct client *c, const char *const *lines);

/* Redis's standard errors, word for word. */
#define ERR_SYNTAX   "ERR syntax error"
#define ERR_WRONGTYPE "WRONGTYPE Operation against a key holding the wrong kind of value"
#define ERR_NOTINT   "ERR value is not an integer or out of range"
#define ERR_NOTFLOAT "ERR value is not a valid float"
#define ERR_OVERFLOW "ERR increment or decrement would overflow"
#define ERR_NOKEY    "ERR no such key"
#define ERR_NOAUTH   "NOAUTH Authentication required."
#define ERR_READONLY "READONLY You can't write against a read only replica."
#define ERR_EXPIRE   "ERR invalid expire time in '%s' command"
#define ERR_DBINDEX  "ERR DB index is out of range"

/* Reply to an engine error code with Redis-like text (EIO and EFULL as
 * "-IOERR ..." / "-OOM ..." style texts documented in cmd.c). */
void reply_engine_error(struct client *c, int rc);

/* ------------------------------------------------------------------------
 * Writes through the engine (net.c).
 * --------------------------------------------------------------------- */

/* The cairn_write to pass to the engine for a write issued by c: its
 * done callback holds the reply written next until the write is durable.
 * Use it for exactly one engine write call, then write the reply:
 *
 *     cairn_write w = srv_write(c, NULL);
 *     int rc = cairn_put(db, ns, k, kl, v, vl, &w);
 *     if (rc) { srv_write_abort(c); reply_engine_error(c, rc); return; }
 *     reply_ok(c);            -- held until durable, replaced if it fails
 *
 * base may carry ttl/cond fields to copy.  srv_write_abort cancels the
 * hold when the engine call itself failed (its callback is then never
 * called, by the engine's contract). */
cairn_write srv_write(struct client *c, const cairn_write *base);
void srv_write_abort(struct client *c);

/* The engine's namespace name for c's selected database. */
const char *srv_ns(struct client *c);

/* Run one command (c->argv, already checked by cmd_dispatch) and end the
 * holds its writes opened, so that each hold covers exactly that
 * command's reply.  EXEC calls it for each queued command, after setting
 * c->argc / argv / argvlen to the queued words; a write of a queued
 * command that fails then turns only its own element of EXEC's array
 * into an error. */
void cmd_call(struct client *c, const struct cmd *cmd);

/* Find a connected client by id (CLIENT KILL ID, pub/sub); NULL if gone. */
struct client *srv_client_by_id(struct server *s, uint64_t id);

/* Mark c to be closed once the current event is handled (never frees it
 * on the spot, so a command may close any client, itself included). */
void srv_client_close_asap(struct client *c);
/* Send what was written to c (not by its own command: a pub/sub message)
 * at the end of the loop's turn. */
void srv_client_wake(struct client *c);

/* ------------------------------------------------------------------------
 * Hooks of the data modules (cmd_multi.c, pubsub.c).  Weak: the server
 * runs without them, and a NULL hook means "not built in".
 * --------------------------------------------------------------------- */

/* While c->in_multi, cmd_dispatch passes each command that is not
 * CMD_NOMULTI here, after the arity and authentication checks: queue a copy
 * of c->argv and reply +QUEUED. */
__attribute__((weak)) void multi_queue(struct client *c, const struct cmd *cmd);
/* Called when a client goes away: free multi_queue / watched / subs. */
__attribute__((weak)) void multi_client_free(struct client *c);
__attribute__((weak)) void pubsub_client_free(struct client *c);
/* RESET: leave MULTI, unwatch, unsubscribe everything. */
__attribute__((weak)) void multi_client_reset(struct client *c);
__attribute__((weak)) void pubsub_client_reset(struct client *c);

/* ------------------------------------------------------------------------
 * The server
 * --------------------------------------------------------------------- */

struct srv_config;    /* config.h */

struct server {
  struct srv_config *cfg;
  cairn *db;
  char run_id[41];
  int64_t start_ms;
  int epfd, efd;                 /* epoll, and the completions eventfd */
  int listen_fds[4];
  int nlisten;
  struct client *clients;        /* list */
  size_t nclients;
  uint64_t next_client_id;
  int shutdown_asap;             /* SIGTERM / SHUTDOWN */
  int shutdown_save;             /* checkpoint on shutdown (always, unless NOSAVE) */

  /* Statistics for INFO. */
  uint64_t stat_conns, stat_cmds, stat_rejected, stat_net_in, stat_net_out;
  uint64_t stat_reads, stat_writes; /* read / write calls that moved bytes */
  uint64_t stat_keyspace_hits, stat_keyspace_misses, stat_expired_events;
  int64_t lastsave_ms;

  void *pubsub;                  /* pubsub.c state */
  void *slowlog;                 /* cmd_server.c */

  /* Added for the loop and INFO. */
  char exe[512];                 /* executable path */
  int port;                      /* the TCP port actually bound */
  size_t blocked_clients;
  uint64_t stat_cmds_sample;     /* for instantaneous_ops_per_sec */
  int64_t sample_ms;
  uint64_t ops_sec;
  uint64_t lastsave_lsn;         /* the LSN the last save (checkpoint) reached */
  uint64_t lastsave_ckpts;       /* the engine's checkpoints, last seen */
  uint64_t memory_peak;          /* the most used_memory the cron has seen */
  uint64_t stat_evicted_keys;
  uint64_t stat_writes_held;     /* write commands held while the engine
                                    held writes back for memory */
  struct client **id_tab;        /* id hash, SRV_ID_BUCKETS chains */
  uint64_t *flush_ids;           /* clients with replies released this turn */
  size_t nflush, flush_cap;
  struct wal *linger_wal;        /* the log this turn's writes linger on */
};

#define SRV_ID_BUCKETS 4096u

/* Open the engine as configured into s->db (cairnd.c; a follower opens
 * it again after a full sync).  Errors logged and returned. */
int srv_open_engine(struct server *s);

/* The one server of the process (cairnd.c). */
extern struct server *srv_main;

/* Log one JSON line: {"time":..., "level":..., "msg":..., fields...}.
 * fields is "key":value text already in JSON, or NULL. */
void srv_log(int level, const char *fields, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* CAIRN_SERVER_H */
