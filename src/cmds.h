/*
 * cmds.h - every command proc of cairnd, by file.
 *
 * The command table (cmd.c) points at these.  Procs of cmd_conn.c and
 * cmd_server.c are always linked.  Those of the data modules are declared
 * weak: a command whose proc is not linked into the binary is answered as
 * an unknown command, so the table can list every command while its
 * module is still being written.  (Weak references do not pull members
 * out of a static archive: the cmd_*.c and pubsub.c files must be sources
 * of cairnd itself, or referenced strongly elsewhere.)
 */
#ifndef CAIRN_CMDS_H
#define CAIRN_CMDS_H

#include <stdint.h>

#include "server.h"

#define DATA_PROC __attribute__((weak))

/* cmd_conn.c */
void cmd_ping(struct client *c);
void cmd_echo(struct client *c);
void cmd_auth(struct client *c);
void cmd_hello(struct client *c);
void cmd_select(struct client *c);
void cmd_quit(struct client *c);
void cmd_reset(struct client *c);
void cmd_client(struct client *c);
void cmd_command(struct client *c);

/* cmd_server.c */
void cmd_info(struct client *c);
void cmd_config(struct client *c);
void cmd_time(struct client *c);
void cmd_lastsave(struct client *c);
void cmd_save(struct client *c);
void cmd_bgsave(struct client *c);
void cmd_shutdown(struct client *c);
void cmd_slowlog(struct client *c);
void cmd_memory(struct client *c);
void cmd_dbsize(struct client *c);
void cmd_flushdb(struct client *c);
void cmd_flushall(struct client *c);
void cmd_role(struct client *c);

/* The data modules: cmds_data.h and cmds_coll.h, as weak references. */
DATA_PROC void cmd_get(struct client *c);
DATA_PROC void cmd_set(struct client *c);
DATA_PROC void cmd_setnx(struct client *c);
DATA_PROC void cmd_setex(struct client *c);
DATA_PROC void cmd_psetex(struct client *c);
DATA_PROC void cmd_getset(struct client *c);
DATA_PROC void cmd_getdel(struct client *c);
DATA_PROC void cmd_getex(struct client *c);
DATA_PROC void cmd_mget(struct client *c);
DATA_PROC void cmd_mset(struct client *c);
DATA_PROC void cmd_msetnx(struct client *c);
DATA_PROC void cmd_append(struct client *c);
DATA_PROC void cmd_strlen(struct client *c);
DATA_PROC void cmd_getrange(struct client *c);
DATA_PROC void cmd_substr(struct client *c);
DATA_PROC void cmd_setrange(struct client *c);
DATA_PROC void cmd_incr(struct client *c);
DATA_PROC void cmd_decr(struct client *c);
DATA_PROC void cmd_incrby(struct client *c);
DATA_PROC void cmd_decrby(struct client *c);
DATA_PROC void cmd_incrbyfloat(struct client *c);
DATA_PROC void cmd_del(struct client *c);
DATA_PROC void cmd_unlink(struct client *c);
DATA_PROC void cmd_exists(struct client *c);
DATA_PROC void cmd_type(struct client *c);
DATA_PROC void cmd_expire(struct client *c);
DATA_PROC void cmd_pexpire(struct client *c);
DATA_PROC void cmd_expireat(struct client *c);
DATA_PROC void cmd_pexpireat(struct client *c);
DATA_PROC void cmd_ttl(struct client *c);
DATA_PROC void cmd_pttl(struct client *c);
DATA_PROC void cmd_expiretime(struct client *c);
DATA_PROC void cmd_pexpiretime(struct client *c);
DATA_PROC void cmd_persist(struct client *c);
DATA_PROC void cmd_rename(struct client *c);
DATA_PROC void cmd_renamenx(struct client *c);
DATA_PROC void cmd_copy(struct client *c);
DATA_PROC void cmd_keys(struct client *c);
DATA_PROC void cmd_scan(struct client *c);
DATA_PROC void cmd_randomkey(struct client *c);
DATA_PROC void cmd_touch(struct client *c);
DATA_PROC void cmd_object(struct client *c);
DATA_PROC void cmd_multi(struct client *c);
DATA_PROC void cmd_exec(struct client *c);
DATA_PROC void cmd_discard(struct client *c);
DATA_PROC void cmd_watch(struct client *c);
DATA_PROC void cmd_unwatch(struct client *c);
DATA_PROC void cmd_publish(struct client *c);
DATA_PROC void cmd_subscribe(struct client *c);
DATA_PROC void cmd_unsubscribe(struct client *c);
DATA_PROC void cmd_psubscribe(struct client *c);
DATA_PROC void cmd_punsubscribe(struct client *c);
DATA_PROC void cmd_pubsub(struct client *c);
DATA_PROC void cmd_hset(struct client *c);
DATA_PROC void cmd_hsetnx(struct client *c);
DATA_PROC void cmd_hmset(struct client *c);
DATA_PROC void cmd_hget(struct client *c);
DATA_PROC void cmd_hmget(struct client *c);
DATA_PROC void cmd_hgetall(struct client *c);
DATA_PROC void cmd_hdel(struct client *c);
DATA_PROC void cmd_hexists(struct client *c);
DATA_PROC void cmd_hlen(struct client *c);
DATA_PROC void cmd_hkeys(struct client *c);
DATA_PROC void cmd_hvals(struct client *c);
DATA_PROC void cmd_hincrby(struct client *c);
DATA_PROC void cmd_hincrbyfloat(struct client *c);
DATA_PROC void cmd_hstrlen(struct client *c);
DATA_PROC void cmd_hscan(struct client *c);
DATA_PROC void cmd_hrandfield(struct client *c);
DATA_PROC void cmd_sadd(struct client *c);
DATA_PROC void cmd_srem(struct client *c);
DATA_PROC void cmd_smembers(struct client *c);
DATA_PROC void cmd_sismember(struct client *c);
DATA_PROC void cmd_smismember(struct client *c);
DATA_PROC void cmd_scard(struct client *c);
DATA_PROC void cmd_spop(struct client *c);
DATA_PROC void cmd_srandmember(struct client *c);
DATA_PROC void cmd_sscan(struct client *c);
DATA_PROC void cmd_smove(struct client *c);
DATA_PROC void cmd_sinter(struct client *c);
DATA_PROC void cmd_sunion(struct client *c);
DATA_PROC void cmd_sdiff(struct client *c);
DATA_PROC void cmd_sintercard(struct client *c);
DATA_PROC void cmd_sinterstore(struct client *c);
DATA_PROC void cmd_sunionstore(struct client *c);
DATA_PROC void cmd_sdiffstore(struct client *c);
DATA_PROC void cmd_zadd(struct client *c);
DATA_PROC void cmd_zincrby(struct client *c);
DATA_PROC void cmd_zrem(struct client *c);
DATA_PROC void cmd_zscore(struct client *c);
DATA_PROC void cmd_zmscore(struct client *c);
DATA_PROC void cmd_zcard(struct client *c);
DATA_PROC void cmd_zcount(struct client *c);
DATA_PROC void cmd_zlexcount(struct client *c);
DATA_PROC void cmd_zrank(struct client *c);
DATA_PROC void cmd_zrevrank(struct client *c);
DATA_PROC void cmd_zrange(struct client *c);
DATA_PROC void cmd_zrevrange(struct client *c);
DATA_PROC void cmd_zrangebyscore(struct client *c);
DATA_PROC void cmd_zrevrangebyscore(struct client *c);
DATA_PROC void cmd_zrangebylex(struct client *c);
DATA_PROC void cmd_zrevrangebylex(struct client *c);
DATA_PROC void cmd_zremrangebyscore(struct client *c);
DATA_PROC void cmd_zremrangebyrank(struct client *c);
DATA_PROC void cmd_zremrangebylex(struct client *c);
DATA_PROC void cmd_zpopmin(struct client *c);
DATA_PROC void cmd_zpopmax(struct client *c);
DATA_PROC void cmd_zscan(struct client *c);
DATA_PROC void cmd_lpush(struct client *c);
DATA_PROC void cmd_rpush(struct client *c);
DATA_PROC void cmd_lpushx(struct client *c);
DATA_PROC void cmd_rpushx(struct client *c);
DATA_PROC void cmd_lpop(struct client *c);
DATA_PROC void cmd_rpop(struct client *c);
DATA_PROC void cmd_llen(struct client *c);
DATA_PROC void cmd_lrange(struct client *c);
DATA_PROC void cmd_lindex(struct client *c);
DATA_PROC void cmd_lset(struct client *c);
DATA_PROC void cmd_lrem(struct client *c);
DATA_PROC void cmd_ltrim(struct client *c);
DATA_PROC void cmd_lpos(struct client *c);
DATA_PROC void cmd_linsert(struct client *c);
DATA_PROC void cmd_lmove(struct client *c);
DATA_PROC void cmd_rpoplpush(struct client *c);

/* Shared by the server commands (cmd_conn.c, cmd_server.c): is argv[i]
 * there and equal to s, ignoring case; and a whole, non-empty base-10
 * long long (strtoll's rules), 0 or -1. */
int cmd_arg_is(struct client *c, int i, const char *s);
int cmd_parse_ll(const char *s, long long *out);

/* Shared by cmd.c and cmd_server.c: the slow log (SLOWLOG), fed by
 * cmd_call with each command's duration when it reaches
 * slowlog-log-slower-than; it keeps the newest slowlog-max-len entries,
 * at most SLOWLOG_LEN_MAX. */
void slowlog_add(struct client *c, uint64_t duration_us);

/* cmd_server.c: wait for a BGSAVE thread; before cairn_close. */
void bgsave_wait(void);

/* cmd_server.c: stop the background key count; before cairn_close. */
void keyspace_count_stop(void);

/* cmd_server.c: answer the DBSIZEs whose background count is done, and
 * start one for those still waiting (loop thread, from the cron). */
void dbsize_collect(struct server *s);

/* cmd_server.c: fold the checkpoints made since the last call into
 * LASTSAVE and rdb_changes_since_last_save, and memory into
 * used_memory_peak (loop thread, from the cron). */
void lastsave_collect(struct server *s);

/* cmd.c: Redis-like text for an engine error (documented there). */
void cmd_engine_error_text(int rc, char *buf, size_t n);

#endif /* CAIRN_CMDS_H */
