/*
 * repl.h - cairnd's replication: a leader ships its log to followers, and
 * a follower applies its leader's log (src/follow.h is the engine's side).
 *
 * Threads.  The event loop runs every command, as everywhere in cairnd.
 * A leader gives each connected follower two threads: a sender that reads
 * frames from the log segments (wal_cursor) and writes them to the
 * socket, and a reader of the follower's acknowledgements.  A follower
 * has one thread, the link, which connects, handshakes, receives frames
 * and applies them.  Threads reach the loop through net_wake(); anything
 * that needs the database closed and opened again (installing a full
 * sync, cutting a divergent tail) the link asks of the loop and waits.
 *
 * Positions.  Offsets are LSNs.  A follower acknowledges three: written,
 * fsynced, applied.  With min-replicas-ack N, a write's reply is parked
 * here after it is durable locally, and released when N followers have
 * fsynced its LSN, or answered -NOREPLICAS after min-replicas-timeout.
 *
 * The wire protocol is in doc/replication.md.
 */
#ifndef CAIRN_REPL_H
#define CAIRN_REPL_H

#include <stdint.h>

#include "server.h"

/* After the engine is open and the loop set up: start following
 * cfg->replicaof, or else take leadership (a new epoch if the log has
 * records).  Errors: negative CAIRN_E* or -errno, logged. */
int repl_start(struct server *s);

/* Before the engine closes: stop every replication thread. */
void repl_stop(struct server *s);

/* From the loop, after a wake (net_wake) and every cron: release parked
 * writes and WAITs whose followers answered or whose time ran out, and
 * run what the follower's link asked of the loop. */
void repl_events(struct server *s);

/* A write of token's command is durable locally at lsn.  Returns 1 if its
 * reply is parked until followers acknowledge it (net_complete releases
 * it later), 0 if it may go out now. */
int repl_park(struct server *s, uint64_t token, uint64_t lsn);

/* Is this node following a leader (writes are refused)? */
int repl_is_follower(const struct server *s);

/* Append the lines of INFO's Replication section through line(). */
void repl_info(struct server *s, void (*line)(void *arg, const char *text),
               void *arg);
/* One INFO line, formatted, through line(). */
void repl_linef(void (*line)(void *, const char *), void *arg,
                const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* sync_full, sync_partial_ok, sync_partial_err for INFO stats. */
void repl_sync_stats(uint64_t out[3]);

/* Commands. */
void cmd_replicaof(struct client *c);
void cmd_role(struct client *c);
void cmd_wait(struct client *c);
void cmd_waitaof(struct client *c);
void cmd_replconf(struct client *c);
void cmd_replsync(struct client *c);
void cmd_resync(struct client *c);

/* ------------------------------------------------------------------------
 * The wire (repl.c), shared by the leader's and the follower's threads.
 * --------------------------------------------------------------------- */

#define REPL_MSG_HDR 8u
#define REPL_MSG_FRAME 'F'    /* one log frame as on disk */
#define REPL_MSG_SNAP 'S'     /* a chunk of the LMDB snapshot */
#define REPL_MSG_SNAP_END 'E' /* u64 total bytes */
#define REPL_MSG_BEAT 'H'     /* u64 written, u64 durable, i64 ms */
#define REPL_MSG_ACK 'A'      /* u64 written, u64 fsynced, u64 applied */
#define REPL_MSG_MAX (256u * 1024 * 1024) /* largest payload accepted */

/* Write all of buf to a blocking socket: 0 or -errno. */
int repl_send(int fd, const void *buf, size_t n);
/* Read exactly n bytes, waiting at most timeout_ms between bytes:
 * 0, -ETIMEDOUT, -ECONNRESET (closed) or -errno. */
int repl_recv(int fd, void *buf, size_t n, int timeout_ms);
/* A message header. */
void repl_msg_hdr(unsigned char hdr[REPL_MSG_HDR], int type, uint32_t len);
/* Send one message of type with payload p[0..n). */
int repl_send_msg(int fd, int type, const void *p, uint32_t n);

/* replica.c: the follower's link. */
int replica_start(struct server *s, const char *host, int port);
void replica_stop(struct server *s);
int replica_active(void);
void replica_resync(void);
void replica_info(struct server *s, void (*line)(void *, const char *),
                  void *arg);
void replica_role(struct client *c);
/* The loop's part of the link's requests (repl_events). */
void replica_loop_work(struct server *s);

#define SRV_ENOREPLICAS (-31001) /* a parked write timed out */
#define ERR_NOREPLICAS "NOREPLICAS Not enough good replicas to write."

#endif /* CAIRN_REPL_H */
