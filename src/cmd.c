/*
 * cmd.c - the command table and the one place that checks a command
 * before it runs: existence, arity, authentication, the RESP2 pub/sub
 * context, MULTI queueing and read-only users.
 *
 * Arity follows Redis: n means exactly n words (the name included), -n
 * at least n.  A table entry whose proc is not linked in (a weak data
 * proc, cmds.h) is treated as an unknown command.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cmds.h"
#include "net.h"
#include "repl.h"
#include "server.h"
#include "srv_config.h"
#include "util.h"

#define W CMD_WRITE
#define R CMD_READONLY
#define A CMD_ADMIN
#define P CMD_PUBSUB
#define N CMD_NOAUTH
#define M CMD_NOMULTI
#define F CMD_FAST
#define L CMD_LOADING
#define D CMD_DELETES

/* name, arity, flags, proc, first key, last key, step, group, summary */
const struct cmd cmd_table[] = {
  /* connection */
  {"ping", -1, F | P | L, cmd_ping, 0, 0, 0, "connection", "Returns the server's liveliness response."},
  {"echo", 2, F | L, cmd_echo, 0, 0, 0, "connection", "Returns the given string."},
  {"auth", -2, N | F | L, cmd_auth, 0, 0, 0, "connection", "Authenticates the connection."},
  {"hello", -1, N | F | L, cmd_hello, 0, 0, 0, "connection", "Handshakes with the server."},
  {"select", 2, F | L, cmd_select, 0, 0, 0, "connection", "Changes the selected database."},
  {"quit", -1, N | P | M | F | L, cmd_quit, 0, 0, 0, "connection", "Closes the connection."},
  {"reset", 1, N | P | M | F | L, cmd_reset, 0, 0, 0, "connection", "Resets the connection."},
  {"client", -2, L, cmd_client, 0, 0, 0, "connection", "A container for client connection commands."},
  {"command", -1, L, cmd_command, 0, 0, 0, "server", "Returns detailed information about all commands."},
  /* server */
  {"info", -1, L, cmd_info, 0, 0, 0, "server", "Returns information and statistics about the server."},
  {"config", -2, A | L, cmd_config, 0, 0, 0, "server", "A container for server configuration commands."},
  {"time", 1, F | L, cmd_time, 0, 0, 0, "server", "Returns the server time."},
  {"lastsave", 1, F | L, cmd_lastsave, 0, 0, 0, "server", "Returns the Unix timestamp of the last successful save to disk."},
  {"save", 1, A | M, cmd_save, 0, 0, 0, "server", "Synchronously saves the database to disk."},
  {"bgsave", -1, A, cmd_bgsave, 0, 0, 0, "server", "Asynchronously saves the database to disk."},
  {"shutdown", -1, A | L | M, cmd_shutdown, 0, 0, 0, "server", "Synchronously saves the database to disk and shuts down the server."},
  {"slowlog", -2, A | L, cmd_slowlog, 0, 0, 0, "server", "A container for slow log commands."},
  {"memory", -2, R, cmd_memory, 2, 2, 1, "server", "A container for memory diagnostics commands."},
  {"dbsize", 1, R | F, cmd_dbsize, 0, 0, 0, "server", "Returns the number of keys in the database."},
  {"flushdb", -1, W, cmd_flushdb, 0, 0, 0, "server", "Removes all keys from the current database."},
  {"flushall", -1, W, cmd_flushall, 0, 0, 0, "server", "Removes all keys from all databases."},
  {"role", 1, F | L, cmd_role, 0, 0, 0, "server", "Returns the replication role."},
  /* replication (repl.c) */
  {"replicaof", 3, A, cmd_replicaof, 0, 0, 0, "server", "Configures a server as replica of another, or promotes it to a master."},
  {"slaveof", 3, A, cmd_replicaof, 0, 0, 0, "server", "Sets a Redis server as a replica of another, or promotes it to being a master."},
  {"wait", 3, 0, cmd_wait, 0, 0, 0, "generic", "Blocks until the asynchronous replication of all preceding write commands sent by the connection is completed."},
  {"waitaof", 4, 0, cmd_waitaof, 0, 0, 0, "generic", "Blocks until all of the preceding write commands sent by the connection are written to the append-only file of the master and/or replicas."},
  {"replconf", -1, A | L, cmd_replconf, 0, 0, 0, "server", "An internal command for configuring the replication stream."},
  {"replsync", -5, A, cmd_replsync, 0, 0, 0, "server", "Starts a replication stream from this leader (cairn)."},
  {"resync", 1, A, cmd_resync, 0, 0, 0, "server", "Replaces a follower's data with a full sync from its leader (cairn)."},
  /* data commands (cmds_data.h, cmds_coll.h) */
  {"get", 2, R | F, cmd_get, 1, 1, 1, "string", NULL},
  {"set", -3, W, cmd_set, 1, 1, 1, "string", NULL},
  {"setnx", 3, W | F, cmd_setnx, 1, 1, 1, "string", NULL},
  {"setex", 4, W, cmd_setex, 1, 1, 1, "string", NULL},
  {"psetex", 4, W, cmd_psetex, 1, 1, 1, "string", NULL},
  {"getset", 3, W | F, cmd_getset, 1, 1, 1, "string", NULL},
  {"getdel", 2, W | D | F, cmd_getdel, 1, 1, 1, "string", NULL},
  {"getex", -2, W | F, cmd_getex, 1, 1, 1, "string", NULL},
  {"mget", -2, R | F, cmd_mget, 1, -1, 1, "string", NULL},
  {"mset", -3, W, cmd_mset, 1, -1, 2, "string", NULL},
  {"msetnx", -3, W, cmd_msetnx, 1, -1, 2, "string", NULL},
  {"append", 3, W, cmd_append, 1, 1, 1, "string", NULL},
  {"strlen", 2, R | F, cmd_strlen, 1, 1, 1, "string", NULL},
  {"getrange", 4, R, cmd_getrange, 1, 1, 1, "string", NULL},
  {"substr", 4, R, cmd_substr, 1, 1, 1, "string", NULL},
  {"setrange", 4, W, cmd_setrange, 1, 1, 1, "string", NULL},
  {"incr", 2, W | F, cmd_incr, 1, 1, 1, "string", NULL},
  {"decr", 2, W | F, cmd_decr, 1, 1, 1, "string", NULL},
  {"incrby", 3, W | F, cmd_incrby, 1, 1, 1, "string", NULL},
  {"decrby", 3, W | F, cmd_decrby, 1, 1, 1, "string", NULL},
  {"incrbyfloat", 3, W | F, cmd_incrbyfloat, 1, 1, 1, "string", NULL},
  {"del", -2, W | D, cmd_del, 1, -1, 1, "generic", NULL},
  {"unlink", -2, W | D | F, cmd_unlink, 1, -1, 1, "generic", NULL},
  {"exists", -2, R | F, cmd_exists, 1, -1, 1, "generic", NULL},
  {"type", 2, R | F, cmd_type, 1, 1, 1, "generic", NULL},
  {"expire", -3, W | F, cmd_expire, 1, 1, 1, "generic", NULL},
  {"pexpire", -3, W | F, cmd_pexpire, 1, 1, 1, "generic", NULL},
  {"expireat", -3, W | F, cmd_expireat, 1, 1, 1, "generic", NULL},
  {"pexpireat", -3, W | F, cmd_pexpireat, 1, 1, 1, "generic", NULL},
  {"ttl", 2, R | F, cmd_ttl, 1, 1, 1, "generic", NULL},
  {"pttl", 2, R | F, cmd_pttl, 1, 1, 1, "generic", NULL},
  {"expiretime", 2, R | F, cmd_expiretime, 1, 1, 1, "generic", NULL},
  {"pexpiretime", 2, R | F, cmd_pexpiretime, 1, 1, 1, "generic", NULL},
  {"persist", 2, W | F, cmd_persist, 1, 1, 1, "generic", NULL},
  {"rename", 3, W, cmd_rename, 1, 2, 1, "generic", NULL},
  {"renamenx", 3, W | F, cmd_renamenx, 1, 2, 1, "generic", NULL},
  {"copy", -3, W, cmd_copy, 1, 2, 1, "generic", NULL},
  {"keys", 2, R, cmd_keys, 0, 0, 0, "generic", NULL},
  {"scan", -2, R, cmd_scan, 0, 0, 0, "generic", NULL},
  {"randomkey", 1, R, cmd_randomkey, 0, 0, 0, "generic", NULL},
  {"touch", -2, R | F, cmd_touch, 1, -1, 1, "generic", NULL},
  {"object", -2, R, cmd_object, 1, 1, 1, "generic", NULL},
  {"multi", 1, M | F | L, cmd_multi, 0, 0, 0, "transactions", NULL},
  {"exec", 1, M | L, cmd_exec, 0, 0, 0, "transactions", NULL},
  {"discard", 1, M | F | L, cmd_discard, 0, 0, 0, "transactions", NULL},
  {"watch", -2, M | F | L, cmd_watch, 1, -1, 1, "transactions", NULL},
  {"unwatch", 1, F | L, cmd_unwatch, 0, 0, 0, "transactions", NULL},
  {"publish", 3, F | L, cmd_publish, 0, 0, 0, "pubsub", NULL},
  {"subscribe", -2, P | M | L, cmd_subscribe, 0, 0, 0, "pubsub", NULL},
  {"unsubscribe", -1, P | M | L, cmd_unsubscribe, 0, 0, 0, "pubsub", NULL},
  {"psubscribe", -2, P | M | L, cmd_psubscribe, 0, 0, 0, "pubsub", NULL},
  {"punsubscribe", -1, P | M | L, cmd_punsubscribe, 0, 0, 0, "pubsub", NULL},
  {"pubsub", -2, 0 | L, cmd_pubsub, 0, 0, 0, "pubsub", NULL},
  {"hset", -4, W | F, cmd_hset, 1, 1, 1, "hash", NULL},
  {"hsetnx", 4, W | F, cmd_hsetnx, 1, 1, 1, "hash", NULL},
  {"hmset", -4, W | F, cmd_hmset, 1, 1, 1, "hash", NULL},
  {"hget", 3, R | F, cmd_hget, 1, 1, 1, "hash", NULL},
  {"hmget", -3, R | F, cmd_hmget, 1, 1, 1, "hash", NULL},
  {"hgetall", 2, R, cmd_hgetall, 1, 1, 1, "hash", NULL},
  {"hdel", -3, W | F, cmd_hdel, 1, 1, 1, "hash", NULL},
  {"hexists", 3, R | F, cmd_hexists, 1, 1, 1, "hash", NULL},
  {"hlen", 2, R | F, cmd_hlen, 1, 1, 1, "hash", NULL},
  {"hkeys", 2, R, cmd_hkeys, 1, 1, 1, "hash", NULL},
  {"hvals", 2, R, cmd_hvals, 1, 1, 1, "hash", NULL},
  {"hincrby", 4, W | F, cmd_hincrby, 1, 1, 1, "hash", NULL},
  {"hincrbyfloat", 4, W | F, cmd_hincrbyfloat, 1, 1, 1, "hash", NULL},
  {"hstrlen", 3, R | F, cmd_hstrlen, 1, 1, 1, "hash", NULL},
  {"hscan", -3, R, cmd_hscan, 1, 1, 1, "hash", NULL},
  {"hrandfield", -2, R, cmd_hrandfield, 1, 1, 1, "hash", NULL},
  {"sadd", -3, W | F, cmd_sadd, 1, 1, 1, "set", NULL},
  {"srem", -3, W | F, cmd_srem, 1, 1, 1, "set", NULL},
  {"smembers", 2, R, cmd_smembers, 1, 1, 1, "set", NULL},
  {"sismember", 3, R | F, cmd_sismember, 1, 1, 1, "set", NULL},
  {"smismember", -3, R | F, cmd_smismember, 1, 1, 1, "set", NULL},
  {"scard", 2, R | F, cmd_scard, 1, 1, 1, "set", NULL},
  {"spop", -2, W | F, cmd_spop, 1, 1, 1, "set", NULL},
  {"srandmember", -2, R, cmd_srandmember, 1, 1, 1, "set", NULL},
  {"sscan", -3, R, cmd_sscan, 1, 1, 1, "set", NULL},
  {"smove", 4, W | F, cmd_smove, 1, 2, 1, "set", NULL},
  {"sinter", -2, R, cmd_sinter, 1, -1, 1, "set", NULL},
  {"sunion", -2, R, cmd_sunion, 1, -1, 1, "set", NULL},
  {"sdiff", -2, R, cmd_sdiff, 1, -1, 1, "set", NULL},
  {"sintercard", -3, R, cmd_sintercard, 0, 0, 0, "set", NULL},
  {"sinterstore", -3, W, cmd_sinterstore, 1, -1, 1, "set", NULL},
  {"sunionstore", -3, W, cmd_sunionstore, 1, -1, 1, "set", NULL},
  {"sdiffstore", -3, W, cmd_sdiffstore, 1, -1, 1, "set", NULL},
  {"zadd", -4, W | F, cmd_zadd, 1, 1, 1, "sorted-set", NULL},
  {"zincrby", 4, W | F, cmd_zincrby, 1, 1, 1, "sorted-set", NULL},
  {"zrem", -3, W | F, cmd_zrem, 1, 1, 1, "sorted-set", NULL},
  {"zscore", 3, R | F, cmd_zscore, 1, 1, 1, "sorted-set", NULL},
  {"zmscore", -3, R | F, cmd_zmscore, 1, 1, 1, "sorted-set", NULL},
  {"zcard", 2, R | F, cmd_zcard, 1, 1, 1, "sorted-set", NULL},
  {"zcount", 4, R | F, cmd_zcount, 1, 1, 1, "sorted-set", NULL},
  {"zlexcount", 4, R | F, cmd_zlexcount, 1, 1, 1, "sorted-set", NULL},
  {"zrank", -3, R | F, cmd_zrank, 1, 1, 1, "sorted-set", NULL},
  {"zrevrank", -3, R | F, cmd_zrevrank, 1, 1, 1, "sorted-set", NULL},
  {"zrange", -4, R, cmd_zrange, 1, 1, 1, "sorted-set", NULL},
  {"zrevrange", -4, R, cmd_zrevrange, 1, 1, 1, "sorted-set", NULL},
  {"zrangebyscore", -4, R, cmd_zrangebyscore, 1, 1, 1, "sorted-set", NULL},
  {"zrevrangebyscore", -4, R, cmd_zrevrangebyscore, 1, 1, 1, "sorted-set", NULL},
  {"zrangebylex", -4, R, cmd_zrangebylex, 1, 1, 1, "sorted-set", NULL},
  {"zrevrangebylex", -4, R, cmd_zrevrangebylex, 1, 1, 1, "sorted-set", NULL},
  {"zremrangebyscore", 4, W, cmd_zremrangebyscore, 1, 1, 1, "sorted-set", NULL},
  {"zremrangebyrank", 4, W, cmd_zremrangebyrank, 1, 1, 1, "sorted-set", NULL},
  {"zremrangebylex", 4, W, cmd_zremrangebylex, 1, 1, 1, "sorted-set", NULL},
  {"zpopmin", -2, W | F, cmd_zpopmin, 1, 1, 1, "sorted-set", NULL},
  {"zpopmax", -2, W | F, cmd_zpopmax, 1, 1, 1, "sorted-set", NULL},
  {"zscan", -3, R, cmd_zscan, 1, 1, 1, "sorted-set", NULL},
  {"lpush", -3, W | F, cmd_lpush, 1, 1, 1, "list", NULL},
  {"rpush", -3, W | F, cmd_rpush, 1, 1, 1, "list", NULL},
  {"lpushx", -3, W | F, cmd_lpushx, 1, 1, 1, "list", NULL},
  {"rpushx", -3, W | F, cmd_rpushx, 1, 1, 1, "list", NULL},
  {"lpop", -2, W | F, cmd_lpop, 1, 1, 1, "list", NULL},
  {"rpop", -2, W | F, cmd_rpop, 1, 1, 1, "list", NULL},
  {"llen", 2, R | F, cmd_llen, 1, 1, 1, "list", NULL},
  {"lrange", 4, R, cmd_lrange, 1, 1, 1, "list", NULL},
  {"lindex", 3, R, cmd_lindex, 1, 1, 1, "list", NULL},
  {"lset", 4, W, cmd_lset, 1, 1, 1, "list", NULL},
  {"lrem", 4, W, cmd_lrem, 1, 1, 1, "list", NULL},
  {"ltrim", 4, W, cmd_ltrim, 1, 1, 1, "list", NULL},
  {"lpos", -3, R, cmd_lpos, 1, 1, 1, "list", NULL},
  {"linsert", 5, W, cmd_linsert, 1, 1, 1, "list", NULL},
  {"lmove", 5, W, cmd_lmove, 1, 2, 1, "list", NULL},
  {"rpoplpush", 3, W, cmd_rpoplpush, 1, 2, 1, "list", NULL},
};
const size_t cmd_count = sizeof cmd_table / sizeof cmd_table[0];

/* ------------------------------------------------------------------------
 * Lookup: a small open-addressing index over the table, built once.
 * --------------------------------------------------------------------- */

#define CMD_INDEX_SLOTS 512u
#define CMD_NAME_MAX 32u
_Static_assert(sizeof cmd_table / sizeof cmd_table[0] < CMD_INDEX_SLOTS / 2,
               "the command index stays sparse");

static short cmd_index[CMD_INDEX_SLOTS];  /* table position + 1; 0 empty */

static uint32_t name_hash(const char *s, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) {
    h ^= (uint32_t)tolower((unsigned char)s[i]);
    h *= 16777619u;
  }
  return h;
}

static void index_build(void) {
  for (size_t i = 0; i < cmd_count; i++) {
    uint32_t k = name_hash(cmd_table[i].name, strlen(cmd_table[i].name));
    while (cmd_index[k % CMD_INDEX_SLOTS]) k++;
    cmd_index[k % CMD_INDEX_SLOTS] = (short)(i + 1);
  }
}

const struct cmd *cmd_lookup(const char *name, size_t len) {
  if (!cmd_index[name_hash("ping", 4) % CMD_INDEX_SLOTS]) index_build();
  if (len == 0 || len > CMD_NAME_MAX) return NULL;
  uint32_t k = name_hash(name, len);
  for (unsigned probes = 0; probes < CMD_INDEX_SLOTS; probes++, k++) {
    short i = cmd_index[k % CMD_INDEX_SLOTS];
    if (!i) return NULL;
    const struct cmd *c = &cmd_table[i - 1];
    if (strlen(c->name) == len && !strncasecmp(c->name, name, len))
      return c->proc ? c : NULL;
  }
  return NULL;
}

/* ------------------------------------------------------------------------
 * Errors
 * --------------------------------------------------------------------- */

/* Engine codes as replies:
 *   CAIRN_ENOTFOUND   "ERR no such key"
 *   CAIRN_ENOTNUM     "ERR value is not an integer or out of range"
 *   CAIRN_EOVERFLOW   "ERR increment or decrement would overflow"
 *   CAIRN_ENOMEM      "OOM command not allowed: out of memory"
 *   CAIRN_EIO, CAIRN_EFULL, CAIRN_EREADONLY, CAIRN_ECLOSING
 *                     "IOERR write failed: <cairn_strerror>" -- the same
 *                     text a held reply is replaced by when its write
 *                     fails after the command ran
 *   anything else     "ERR <cairn_strerror>" */
void cmd_engine_error_text(int rc, char *buf, size_t n) {
  switch (rc) {
  case CAIRN_ENOTFOUND: snprintf(buf, n, "%s", ERR_NOKEY); break;
  case CAIRN_ENOTNUM: snprintf(buf, n, "%s", ERR_NOTINT); break;
  case CAIRN_EOVERFLOW: snprintf(buf, n, "%s", ERR_OVERFLOW); break;
  case CAIRN_ENOMEM: snprintf(buf, n, "OOM command not allowed: out of memory"); break;
  case CAIRN_ETOOBIG:
    snprintf(buf, n, "ERR value exceeds maximum allowed size (%u MiB encoded)",
             CAIRN_VALUE_MAX >> 20);
    break;
  case CAIRN_EIO:
  case CAIRN_EFULL:
  case CAIRN_EREADONLY:
  case CAIRN_ECLOSING:
    snprintf(buf, n, "IOERR write failed: %s", cairn_strerror(rc));
    break;
  default: snprintf(buf, n, "ERR %s", cairn_strerror(rc)); break;
  }
}

int cmd_arg_is(struct client *c, int i, const char *s) {
  return i < c->argc && !strcasecmp(c->argv[i], s);
}

int cmd_parse_ll(const char *s, long long *out) {
  char *end;
  errno = 0;
  if (!*s) return -1;
  long long v = strtoll(s, &end, 10);
  if (errno || *end) return -1;
  *out = v;
  return 0;
}

void reply_engine_error(struct client *c, int rc) {
  char buf[256];
  cmd_engine_error_text(rc, buf, sizeof buf);
  reply_error(c, buf);
}

/* Redis 7's text: the name as typed, then up to 128 bytes of arguments,
 * each quoted and followed by a space. */
static void reply_unknown(struct client *c) {
  char args[512];
  size_t used = 0;
  args[0] = '\0';
  for (int i = 1; i < c->argc && used < 128; i++) {
    int w = snprintf(args + used, sizeof args - used, "'%.*s' ",
                     (int)MIN(c->argvlen[i], 128 - used), c->argv[i]);
    if (w < 0) break;
    used += (size_t)w;
    if (used >= sizeof args) used = sizeof args - 1;
  }
  reply_errorf(c, "ERR unknown command '%.128s', with args beginning with: %s",
               c->argv[0], args);
}

/* ------------------------------------------------------------------------
 * Dispatch
 * --------------------------------------------------------------------- */

void cmd_call(struct client *c, const struct cmd *cmd) {
  uint64_t t0 = mono_ns();
  const struct cmd *outer = c->cmd;
  c->cmd = cmd;
  c->last_cmd = cmd->name;
  cmd->proc(c);
  net_holds_close(c);
  c->cmd = outer;
  c->srv->stat_cmds++;
  uint64_t us = (mono_ns() - t0) / 1000;
  long long slower = c->srv->cfg->slowlog_slower_than;
  if (slower >= 0 && us >= (uint64_t)slower) slowlog_add(c, us);
}

static int reject(struct client *c, const char *text) {
  if (c->in_multi) c->multi_error = 1;
  reply_error(c, text);
  return 1;
}

/* The checks of cmd_dispatch, in Redis's order; 1 when refused. */
static int refuse(struct client *c, const struct cmd *cmd) {
  char buf[256];
  if (!cmd) {
    if (c->in_multi) c->multi_error = 1;
    reply_unknown(c);
    return 1;
  }
  if ((cmd->arity > 0 && c->argc != cmd->arity) ||
      (cmd->arity < 0 && c->argc < -cmd->arity)) {
    snprintf(buf, sizeof buf, "ERR wrong number of arguments for '%s' command",
             cmd->name);
    return reject(c, buf);
  }
  if (!c->authed && !(cmd->flags & CMD_NOAUTH)) return reject(c, ERR_NOAUTH);
  if (c->proto == 2 && c->nsubs && !(cmd->flags & CMD_PUBSUB)) {
    snprintf(buf, sizeof buf,
             "ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / "
             "PING / QUIT / RESET are allowed in this context", cmd->name);
    return reject(c, buf);
  }
  if ((cmd->flags & CMD_WRITE) && repl_is_follower(c->srv))
    return reject(c, ERR_READONLY);
  if (c->readonly_user && (cmd->flags & (CMD_WRITE | CMD_ADMIN))) {
    snprintf(buf, sizeof buf,
             "NOPERM User %s has no permissions to run the '%s' command",
             c->user ? c->user : "default", cmd->name);
    return reject(c, buf);
  }
  return 0;
}

void cmd_dispatch(struct client *c) {
  const struct cmd *cmd = cmd_lookup(c->argv[0], c->argvlen[0]);
  if (refuse(c, cmd)) return;
  if (c->in_multi && !(cmd->flags & CMD_NOMULTI) && multi_queue) {
    multi_queue(c, cmd);
    return;
  }
  cmd_call(c, cmd);
}
