/*
 * net.h - the event loop's entry points, for cairnd.c and cmd.c.
 */
#ifndef CAIRN_NET_H
#define CAIRN_NET_H

#include "server.h"

/* Create epoll and the completion eventfd, and listen on the configured
 * addresses and unix socket.  Errors: negated errno, CAIRN_ENOMEM. */
int net_init(struct server *s);

/* Serve until *signalled is set or SHUTDOWN runs; then stop accepting,
 * wait (10 s at most) for in-flight writes and send their replies.
 * Returns 0, or a negated errno if epoll fails. */
int net_run(struct server *s, volatile int *signalled);

/* Close every client and descriptor; after cairn_close. */
void net_free(struct server *s);

/* End the holds opened by the command that just ran (cmd_call). */
void net_holds_close(struct client *c);

/* Wake the loop from another thread; release a parked reply
 * (rc 0, or SRV_ENOREPLICAS); block / unblock a client's input. */
void net_wake(void);
void net_complete(struct server *s, uint64_t token, int rc);
/* End the loop turn's hint to the log (wal_linger); before the engine is
 * closed under the loop. */
void net_turn_end(struct server *s);
void net_client_block(struct client *c);
void net_client_unblock(struct client *c);
/* Take c's socket out of the loop (for a sender thread); c is freed
 * after the command.  Returns the descriptor, now blocking, or -1. */
int net_client_detach(struct client *c);

#endif /* CAIRN_NET_H */
