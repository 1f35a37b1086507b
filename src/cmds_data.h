/*
 * cmds_data.h - the data commands (cmd_string.c, cmd_keys.c), transactions
 * (cmd_multi.c) and pub/sub (pubsub.c): their procs for the command table,
 * and the hooks the dispatcher and the event loop call.
 */
#ifndef CAIRN_CMDS_DATA_H
#define CAIRN_CMDS_DATA_H

#include <stddef.h>

#include "server.h"

/* ------------------------------------------------------------------------
 * Procs (cmd.c's table).  Arity / flags in the comments.
 * --------------------------------------------------------------------- */

/* Strings (cmd_string.c). */
void cmd_get(struct client *c);         /* 2   READONLY FAST */
void cmd_set(struct client *c);         /* -3  WRITE */
void cmd_setnx(struct client *c);       /* 3   WRITE FAST */
void cmd_setex(struct client *c);       /* 4   WRITE */
void cmd_psetex(struct client *c);      /* 4   WRITE */
void cmd_getset(struct client *c);      /* 3   WRITE FAST */
void cmd_getdel(struct client *c);      /* 2   WRITE FAST */
void cmd_getex(struct client *c);       /* -2  WRITE FAST */
void cmd_mget(struct client *c);        /* -2  READONLY FAST */
void cmd_mset(struct client *c);        /* -3  WRITE */
void cmd_msetnx(struct client *c);      /* -3  WRITE */
void cmd_append(struct client *c);      /* 3   WRITE */
void cmd_strlen(struct client *c);      /* 2   READONLY FAST */
void cmd_getrange(struct client *c);    /* 4   READONLY */
void cmd_substr(struct client *c);      /* 4   READONLY (alias of GETRANGE) */
void cmd_setrange(struct client *c);    /* 4   WRITE */
void cmd_incr(struct client *c);        /* 2   WRITE FAST */
void cmd_decr(struct client *c);        /* 2   WRITE FAST */
void cmd_incrby(struct client *c);      /* 3   WRITE FAST */
void cmd_decrby(struct client *c);      /* 3   WRITE FAST */
void cmd_incrbyfloat(struct client *c); /* 3   WRITE FAST */

/* Keys (cmd_keys.c). */
void cmd_del(struct client *c);         /* -2  WRITE */
void cmd_unlink(struct client *c);      /* -2  WRITE FAST */
void cmd_exists(struct client *c);      /* -2  READONLY FAST */
void cmd_type(struct client *c);        /* 2   READONLY FAST */
void cmd_expire(struct client *c);      /* -3  WRITE FAST */
void cmd_pexpire(struct client *c);     /* -3  WRITE FAST */
void cmd_expireat(struct client *c);    /* -3  WRITE FAST */
void cmd_pexpireat(struct client *c);   /* -3  WRITE FAST */
void cmd_ttl(struct client *c);         /* 2   READONLY FAST */
void cmd_pttl(struct client *c);        /* 2   READONLY FAST */
void cmd_expiretime(struct client *c);  /* 2   READONLY FAST */
void cmd_pexpiretime(struct client *c); /* 2   READONLY FAST */
void cmd_persist(struct client *c);     /* 2   WRITE FAST */
void cmd_rename(struct client *c);      /* 3   WRITE */
void cmd_renamenx(struct client *c);    /* 3   WRITE FAST */
void cmd_copy(struct client *c);        /* -3  WRITE */
void cmd_keys(struct client *c);        /* 2   READONLY */
void cmd_scan(struct client *c);        /* -2  READONLY */
void cmd_randomkey(struct client *c);   /* 1   READONLY */
void cmd_touch(struct client *c);       /* -2  READONLY FAST */
void cmd_object(struct client *c);      /* -2  READONLY */

/* Transactions (cmd_multi.c).  EXEC, DISCARD, MULTI and WATCH carry
 * CMD_NOMULTI so the dispatcher runs them at once inside MULTI. */
void cmd_multi(struct client *c);       /* 1   NOMULTI FAST */
void cmd_exec(struct client *c);        /* 1   NOMULTI */
void cmd_discard(struct client *c);     /* 1   NOMULTI FAST */
void cmd_watch(struct client *c);       /* -2  NOMULTI FAST */
void cmd_unwatch(struct client *c);     /* 1   FAST */

/* Pub/sub (pubsub.c).  The four (un)subscribe commands and PING, QUIT,
 * RESET carry CMD_PUBSUB. */
void cmd_publish(struct client *c);     /* 3   FAST */
void cmd_subscribe(struct client *c);   /* -2  PUBSUB NOMULTI */
void cmd_unsubscribe(struct client *c); /* -1  PUBSUB NOMULTI */
void cmd_psubscribe(struct client *c);  /* -2  PUBSUB NOMULTI */
void cmd_punsubscribe(struct client *c);/* -1  PUBSUB NOMULTI */
void cmd_pubsub(struct client *c);      /* -2  (CHANNELS NUMSUB NUMPAT HELP) */

/* ------------------------------------------------------------------------
 * Hooks for the dispatcher (cmd.c) and the event loop (net.c).
 * --------------------------------------------------------------------- */

/* multi_queue, multi_client_free, multi_client_reset, pubsub_client_free
 * and pubsub_client_reset are declared in server.h (weak hooks). */

/* Release the server's pub/sub state (shutdown).  It is created on first
 * use, so there is no init call. */
void pubsub_free(struct server *srv);

/* Keyspace notification for key in database db: sent to
 * __keyspace@<db>__:<key> and/or __keyevent@<db>__:<event> when
 * srv->cfg->notify_flags enables type_flag (a NOTIFY_* class of
 * srv_config.h) and K / E.  event is "set", "del", "expired"... */
void pubsub_notify(struct server *srv, int db, const char *event,
                   const void *key, size_t klen, unsigned type_flag);

/* Engine expiry events (keyspace "expired"): pubsub_expired_hook is
 * cairn_options.expired_fn (arg unused; any thread; it only queues), and
 * the event loop calls pubsub_expired_drain once per turn to publish what
 * was queued; it returns how many it handled (cheap when none). */
void pubsub_expired_hook(void *arg, const char *ns, const void *key,
                         size_t klen);
size_t pubsub_expired_drain(struct server *srv);

/* Send message to channel's subscribers and matching patterns; returns
 * the number of clients that received it. */
long long pubsub_publish(struct server *srv, const void *chan, size_t clen,
                         const void *msg, size_t mlen);

/* Active channels (PUBSUB NUMSUB for INFO-style counts). */
size_t pubsub_nchannels(struct server *srv);
size_t pubsub_npatterns(struct server *srv);

/* ------------------------------------------------------------------------
 * Parsing helpers shared by the data commands (cmd_string.c).
 * --------------------------------------------------------------------- */

/* Strict decimal long long, as Redis's string2ll: no spaces, no '+',
 * no leading zeros.  Returns 0 or -1. */
int cmds_parse_ll(const char *s, size_t n, long long *out);

/* A long double as Redis's string2ld: no spaces, no NaN.  0 or -1. */
int cmds_parse_ld(const char *s, size_t n, long double *out);

/* Wall clock, milliseconds since the epoch. */
long long cmds_now_ms(void);

#endif /* CAIRN_CMDS_DATA_H */
