/*
 * cmds_coll.h - the collection commands of cairnd: hashes (cmd_hash.c),
 * sets (cmd_set.c), sorted sets (cmd_zset.c) and lists (cmd_list.c), and
 * the helpers they share (defined in cmd_hash.c).
 *
 * A collection is one engine value whose type is CAIRN_TYPE_HASH / SET /
 * ZSET / LIST; a command reads what it needs (the elements its arguments
 * name with ccmd_probe, or the blob with cairn_get), computes its reply
 * from it, and writes only the element-level change with
 * cairn_coll_apply, under CAIRN_IF_VERSION with the version it read: the
 * engine's expiry thread may delete the key in between, and the command
 * is then run once more (ccmd_run).  Probing, not reading the blob, keeps
 * the common writes O(arguments) on large collections (src/cobj.h).
 */
#ifndef CAIRN_CMDS_COLL_H
#define CAIRN_CMDS_COLL_H

#include <stddef.h>
#include <stdint.h>

#include "cobj.h"
#include "coll.h"
#include "server.h"

/* ------------------------------------------------------------------------
 * Procs (cmd.c's table).  Arity, flags, keys (first, last, step).
 * --------------------------------------------------------------------- */

/* Hashes (cmd_hash.c); keys 1 1 1. */
void cmd_hset(struct client *c);         /* -4  WRITE FAST */
void cmd_hsetnx(struct client *c);       /* 4   WRITE FAST */
void cmd_hmset(struct client *c);        /* -4  WRITE FAST */
void cmd_hget(struct client *c);         /* 3   READONLY FAST */
void cmd_hmget(struct client *c);        /* -3  READONLY FAST */
void cmd_hgetall(struct client *c);      /* 2   READONLY */
void cmd_hdel(struct client *c);         /* -3  WRITE FAST */
void cmd_hexists(struct client *c);      /* 3   READONLY FAST */
void cmd_hlen(struct client *c);         /* 2   READONLY FAST */
void cmd_hkeys(struct client *c);        /* 2   READONLY */
void cmd_hvals(struct client *c);        /* 2   READONLY */
void cmd_hincrby(struct client *c);      /* 4   WRITE FAST */
void cmd_hincrbyfloat(struct client *c); /* 4   WRITE FAST */
void cmd_hstrlen(struct client *c);      /* 3   READONLY FAST */
void cmd_hscan(struct client *c);        /* -3  READONLY */
void cmd_hrandfield(struct client *c);   /* -2  READONLY */

/* Sets (cmd_set.c); keys 1 1 1 unless told. */
void cmd_sadd(struct client *c);         /* -3  WRITE FAST */
void cmd_srem(struct client *c);         /* -3  WRITE FAST */
void cmd_smembers(struct client *c);     /* 2   READONLY */
void cmd_sismember(struct client *c);    /* 3   READONLY FAST */
void cmd_smismember(struct client *c);   /* -3  READONLY FAST */
void cmd_scard(struct client *c);        /* 2   READONLY FAST */
void cmd_spop(struct client *c);         /* -2  WRITE FAST */
void cmd_srandmember(struct client *c);  /* -2  READONLY */
void cmd_sscan(struct client *c);        /* -3  READONLY */
void cmd_smove(struct client *c);        /* 4   WRITE FAST; keys 1 2 1 */
void cmd_sinter(struct client *c);       /* -2  READONLY; keys 1 -1 1 */
void cmd_sunion(struct client *c);       /* -2  READONLY; keys 1 -1 1 */
void cmd_sdiff(struct client *c);        /* -2  READONLY; keys 1 -1 1 */
void cmd_sintercard(struct client *c);   /* -3  READONLY; numkeys at 1 */
void cmd_sinterstore(struct client *c);  /* -3  WRITE; keys 1 -1 1 */
void cmd_sunionstore(struct client *c);  /* -3  WRITE; keys 1 -1 1 */
void cmd_sdiffstore(struct client *c);   /* -3  WRITE; keys 1 -1 1 */

/* Sorted sets (cmd_zset.c); keys 1 1 1. */
void cmd_zadd(struct client *c);             /* -4  WRITE FAST */
void cmd_zincrby(struct client *c);          /* 4   WRITE FAST */
void cmd_zrem(struct client *c);             /* -3  WRITE FAST */
void cmd_zscore(struct client *c);           /* 3   READONLY FAST */
void cmd_zmscore(struct client *c);          /* -3  READONLY FAST */
void cmd_zcard(struct client *c);            /* 2   READONLY FAST */
void cmd_zcount(struct client *c);           /* 4   READONLY FAST */
void cmd_zlexcount(struct client *c);        /* 4   READONLY FAST */
void cmd_zrank(struct client *c);            /* -3  READONLY FAST */
void cmd_zrevrank(struct client *c);         /* -3  READONLY FAST */
void cmd_zrange(struct client *c);           /* -4  READONLY */
void cmd_zrevrange(struct client *c);        /* -4  READONLY */
void cmd_zrangebyscore(struct client *c);    /* -4  READONLY */
void cmd_zrevrangebyscore(struct client *c); /* -4  READONLY */
void cmd_zrangebylex(struct client *c);      /* -4  READONLY */
void cmd_zrevrangebylex(struct client *c);   /* -4  READONLY */
void cmd_zremrangebyscore(struct client *c); /* 4   WRITE */
void cmd_zremrangebyrank(struct client *c);  /* 4   WRITE */
void cmd_zremrangebylex(struct client *c);   /* 4   WRITE */
void cmd_zpopmin(struct client *c);          /* -2  WRITE FAST */
void cmd_zpopmax(struct client *c);          /* -2  WRITE FAST */
void cmd_zscan(struct client *c);            /* -3  READONLY */

/* Lists (cmd_list.c); keys 1 1 1 unless told. */
void cmd_lpush(struct client *c);        /* -3  WRITE FAST */
void cmd_rpush(struct client *c);        /* -3  WRITE FAST */
void cmd_lpushx(struct client *c);       /* -3  WRITE FAST */
void cmd_rpushx(struct client *c);       /* -3  WRITE FAST */
void cmd_lpop(struct client *c);         /* -2  WRITE FAST */
void cmd_rpop(struct client *c);         /* -2  WRITE FAST */
void cmd_llen(struct client *c);         /* 2   READONLY FAST */
void cmd_lrange(struct client *c);       /* 4   READONLY */
void cmd_lindex(struct client *c);       /* 3   READONLY */
void cmd_lset(struct client *c);         /* 4   WRITE */
void cmd_lrem(struct client *c);         /* 4   WRITE */
void cmd_ltrim(struct client *c);        /* 4   WRITE */
void cmd_lpos(struct client *c);         /* -3  READONLY */
void cmd_linsert(struct client *c);      /* 5   WRITE */
void cmd_lmove(struct client *c);        /* 5   WRITE; keys 1 2 1 */
void cmd_rpoplpush(struct client *c);    /* 3   WRITE; keys 1 2 1 */

/* ------------------------------------------------------------------------
 * Shared by the four files (cmd_hash.c).
 * --------------------------------------------------------------------- */

#define CCMD_RETRY 1   /* a body's "lost a race with expiry, run again" */

/* Run body once, and once more if it returns CCMD_RETRY (which it may
 * only do before it replied anything). */
void ccmd_run(struct client *c, int (*body)(struct client *c));

/* Read key as a collection of type: 1 found (*v filled, the caller frees
 * it), 0 absent (*v zeroed: version 0, no data), -1 error replied (also
 * WRONGTYPE). */
int ccmd_load(struct client *c, const char *key, size_t klen, int type,
              cairn_value *v);

/* Look up the n arguments argv[first], argv[first + step], ... in key's
 * collection of type, without copying the collection (db_coll_probe):
 * (*p)[i] for argument i (with values, for hashes, if want_vals), and
 * *info its version and element count (zero if absent).  1 found, 0
 * absent, -1 error replied (also WRONGTYPE; *p is then not set).  Free
 * *p with ccmd_probes_free. */
int ccmd_probe(struct client *c, const char *key, size_t klen, int type,
               int first, int step, size_t n, int want_vals,
               struct coll_probe **p, struct coll_info *info);
void ccmd_probes_free(struct coll_probe *p, size_t n);

/* ccmd_probe (no values), and *prev as ccmd_arg_prev for the same
 * arguments, for the commands that change what they name (HSET, HDEL,
 * SADD, SREM, ZADD): a repeated argument counts once.  Returns as
 * ccmd_probe; on -1 neither is set.  Free both. */
int ccmd_probe_args(struct client *c, const char *key, size_t klen, int type,
                    int first, int step, size_t n, struct coll_probe **p,
                    long **prev, struct coll_info *info);

/* HLEN, SCARD, ZCARD, LLEN: reply the element count of argv[1], a
 * collection of type (0 if absent). */
void ccmd_card(struct client *c, int type);

/* Apply delta d to key's collection of type, read at version (0: the key
 * was absent).  0: applied, the caller replies; CCMD_RETRY: the key
 * changed since it was read (nothing replied); -1: error replied. */
int ccmd_apply(struct client *c, const char *key, size_t klen, int type,
               uint64_t version, const struct coll_delta *d);

/* Put the writes of one command (SMOVE, SINTERSTORE, LMOVE) in one log
 * unit: 1 if a group was begun here, 0 if not (already inside EXEC's
 * group, which covers them).  End with ccmd_group_end(c, that). */
int ccmd_group_begin(struct client *c);
void ccmd_group_end(struct client *c, int begun);

/* Keyspace notification of event on key (a NOTIFY_* class). */
void ccmd_notify(struct client *c, const char *event, const char *key,
                 size_t klen, unsigned type_flag);

/* A collection's elements in blob order, with an optional index sorted by
 * the element bytes (field / member) for lookups. */
struct ccmd_coll {
  struct coll_elem *e;
  size_t n;
  uint32_t *by;   /* positions in e sorted by a; NULL until ccmd_index */
};

/* Decode v's blob of type (v may be an absent key: no elements).
 * Errors: CAIRN_ECORRUPT, CAIRN_ENOMEM (s untouched). */
int ccmd_decode(const cairn_value *v, int type, struct ccmd_coll *s);
int ccmd_index(struct ccmd_coll *s);      /* CAIRN_ENOMEM */
/* Position in s->e of the element equal to x, or -1 (needs the index). */
long ccmd_lookup(const struct ccmd_coll *s, const void *x, size_t xl);
void ccmd_coll_free(struct ccmd_coll *s);

/* Read argv[i], a collection of type, whole: ccmd_load, ccmd_decode and,
 * if index, ccmd_index.  1 found, 0 absent (no elements), -1 replied (v
 * and s then freed). */
int ccmd_read(struct client *c, int i, int type, int index, cairn_value *v,
              struct ccmd_coll *s);

/* For the n arguments argv[first], argv[first + step], ...: prev[i] is the
 * number of the last earlier argument equal to argument i, or -1.  NULL
 * if out of memory.  Free with free(). */
long *ccmd_arg_prev(struct client *c, int first, int step, size_t n);

/* Byte-wise comparison, shorter first on a common prefix (Redis's). */
int ccmd_cmp(const void *a, size_t al, const void *b, size_t bl);

/* A double as Redis's getDoubleFromObject: no spaces, no NaN.  0 or -1. */
int ccmd_parse_double(const char *s, size_t n, double *out);
/* A double as Redis prints one in a bulk string (shortest that reads back
 * the same); returns the length.  buf holds at least 32 bytes. */
int ccmd_fmt_double(char *buf, size_t n, double d);

/* A uniformly random number below n (n > 0).  Not for secrets. */
uint64_t ccmd_rand(uint64_t n);

/* HSCAN, SSCAN, ZSCAN: key argv[1], cursor argv[2] (an element position),
 * MATCH, COUNT, and NOVALUES for hashes. */
void ccmd_scan(struct client *c, int type);

/* Parse argv[i] as the count of SPOP, LPOP...: "ERR value is out of
 * range, must be positive" if negative.  0 or -1 (replied). */
int ccmd_parse_count(struct client *c, int i, long long *out);

/* The optional count argv[2] of LPOP, RPOP, SPOP, ZPOPMIN, ZPOPMAX: 1 if
 * given (in *count), 0 if not (*count is 1), -1 replied (a bad count, or
 * more arguments: a syntax error). */
int ccmd_pop_count(struct client *c, long long *count);

/* Engine error rc as a reply; CAIRN_ETYPE is WRONGTYPE. */
void ccmd_reply_error(struct client *c, int rc);

#define CCMD_ARG(i) c->argv[(i)], c->argvlen[(i)]
#define ERR_POSITIVE "ERR value is out of range, must be positive"

#endif /* CAIRN_CMDS_COLL_H */
