/*
 * resp.h - the Redis protocol (RESP2 and RESP3), without I/O.
 *
 * Three parts, each fed bytes by its caller so that it can be tested and
 * fuzzed alone:
 *
 *   1. the request parser: what a server reads from a client (arrays of
 *      bulk strings, or inline commands typed at a terminal);
 *   2. the reply writer: a growable buffer that replies are appended to,
 *      in the dialect (2 or 3) the client chose with HELLO;
 *   3. the reply reader: parses any RESP2/RESP3 reply into a tree, for
 *      tests and for a replication client.
 *
 * Error texts of the request parser are Redis's own, so that clients and
 * test suites that match on them keep working.
 */
#ifndef CAIRN_RESP_H
#define CAIRN_RESP_H

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------------- */
/* Limits (to move into limits.h).                                        */
/* ---------------------------------------------------------------------- */

/* Elements in one request array; more is "invalid multibulk length". */
#define RESP_MULTIBULK_MAX (1024 * 1024)
/* Default bytes in one bulk string of a request (proto-max-bulk-len). */
#define RESP_BULK_MAX (512ll * 1024 * 1024)
/* Bytes in an inline request line, and the longest "*N" or "$N" line we
 * wait for before giving up (Redis's PROTO_INLINE_MAX_SIZE). */
#define RESP_INLINE_MAX (64 * 1024)
/* Bytes a client may have buffered (client-query-buffer-limit); enforced
 * by the server, not here. */
#define RESP_QUERYBUF_MAX (1024ll * 1024 * 1024)
/* Nesting levels of a reply the reader accepts (hiredis uses 7). */
#define RESP_REPLY_DEPTH_MAX 7

_Static_assert(RESP_BULK_MAX <= RESP_QUERYBUF_MAX,
               "a maximal bulk fits a query buffer");
_Static_assert(RESP_INLINE_MAX < RESP_BULK_MAX, "inline is the small path");

/* Results of the parsers.  Allocation failure is CAIRN_ENOMEM. */
enum {
  RESP_OK = 0,     /* one complete command or reply */
  RESP_AGAIN = 1,  /* need more bytes */
  RESP_ERR = -1,   /* protocol error; the connection should be closed */
};

/* ---------------------------------------------------------------------- */
/* Request parser.                                                        */
/* ---------------------------------------------------------------------- */

/*
 * One parsed command.  The caller owns the struct, starts it zeroed
 * ({0}) and frees it with resp_cmd_free(); resp_parse() reuses its arrays, so one resp_cmd per
 * connection costs no allocation per command.
 *
 * Lifetime of the arguments:
 *   - argv and argvlen are arrays owned by this resp_cmd; they stay valid
 *     until the resp_cmd is passed to resp_parse() again or freed;
 *   - argv[i] of an array request points into the caller's buf (zero
 *     copy): it is valid until the caller discards or moves those bytes;
 *   - argv[i] of an inline request points into storage owned by this
 *     resp_cmd (quotes and escapes had to be removed).
 * So to keep several pipelined commands at once, parse each into its own
 * resp_cmd and keep the input bytes until the last of them is done.
 * Arguments are binary and not NUL-terminated.
 */
struct resp_cmd {
  int argc;
  const char **argv;
  size_t *argvlen;
  /* private */
  size_t cap;       /* entries in argv and argvlen */
  char *inl;        /* unescaped inline arguments */
  size_t inl_cap;
};

void resp_cmd_free(struct resp_cmd *c);

/*
 * Parser state of one connection: how far into the current command it got,
 * so that a command arriving in pieces is never scanned twice.  Set
 * bulk_max to change the bulk limit at any time (CONFIG SET
 * proto-max-bulk-len); it applies to the next bulk length read.
 */
struct resp_parser {
  long long bulk_max;       /* bytes in one bulk; RESP_BULK_MAX by default */
  uint64_t bytes_examined;  /* bytes searched for line ends (tests) */
  /* private */
  int state;
  int err;                  /* sticky: every call after an error fails */
  long long mbulk;          /* elements announced by "*N" */
  long long bulklen;        /* length of the bulk being waited for, or -1 */
  size_t pos;               /* parsed bytes of the current command */
  size_t scanned;           /* bytes after pos already searched for a
                               line end */
  int nargs;                /* arguments parsed so far */
  size_t cap;               /* entries in arg */
  struct resp_span {        /* an argument: offset from the command start,
                               or in inl for an inline command */
    size_t off, len;
  } *arg;
  char *inl;                /* unescaped words of an inline command */
  size_t inl_cap;
  char errmsg[80];
};

/* Ready a parser with bulk_max = bulk_bytes_max (0 means RESP_BULK_MAX). */
void resp_parser_init(struct resp_parser *p, long long bulk_bytes_max);

/* Release the parser's memory; it may be initialised again. */
void resp_parser_free(struct resp_parser *p);

/*
 * Parse ONE command from buf[0..len).
 *
 * RESP_OK: *consumed bytes (including any empty lines and "*0" arrays
 *   before the command, which are skipped as Redis skips them) make up the
 *   command, now in *out (argc >= 1).  The caller discards those bytes
 *   when it is done with *out.
 * RESP_AGAIN: the command is incomplete.  *consumed (often 0) bytes may be
 *   discarded; the next call MUST pass the remaining bytes again (the same
 *   bytes, possibly at a new address) followed by whatever arrived since.  The parser keeps
 *   its place, so a large bulk arriving in pieces costs linear work.
 * RESP_ERR: a protocol error; resp_parser_error() gives the text, which
 *   the server sends as "-ERR <text>" before closing the connection.
 *   The parser stays failed (free it, or init it again after freeing).
 * CAIRN_ENOMEM (from cairn.h): out of memory; the parser stays failed.
 *
 * Unlike Redis (which only checks that enough bytes are buffered), the
 * parser stops an inline line at RESP_INLINE_MAX bytes even when its
 * newline has arrived.  Like Redis, the two bytes after a "*N", "$N" or
 * bulk are taken to be "\r\n" without looking at them.
 * out->argc is left untouched unless RESP_OK is returned.
 */
int resp_parse(struct resp_parser *p, const char *buf, size_t len,
               size_t *consumed, struct resp_cmd *out);

/* After RESP_AGAIN inside a bulk: the number of bytes, counted from the
 * start of the buffer passed next, that completes that bulk, so a server
 * can size its buffer once for a large value (0 when not in a bulk). */
size_t resp_parser_want(const struct resp_parser *p);

/* The text of the last RESP_ERR, such as "Protocol error: invalid bulk
 * length"; "" if there was none.  Owned by the parser. */
const char *resp_parser_error(const struct resp_parser *p);

/* ---------------------------------------------------------------------- */
/* Reply writer.                                                          */
/* ---------------------------------------------------------------------- */

/*
 * A growable output buffer.  When memory runs out, oom is set and every
 * later append does nothing, so a caller may write a whole reply and check
 * once; the server then drops the client.  data[0..len) is the output.
 * proto is 2 or 3 in the functions that differ between the dialects.
 */
struct resp_buf {
  char *data;
  size_t len, cap;
  int oom;
};

void resp_buf_init(struct resp_buf *b);
void resp_buf_free(struct resp_buf *b);
/* Forget the contents (keeping the memory) and clear oom. */
void resp_buf_reset(struct resp_buf *b);
/* Remove the first n bytes (those written to the socket). */
void resp_buf_consume(struct resp_buf *b, size_t n);

/* Raw bytes, for replies prepared elsewhere. */
void resp_add_raw(struct resp_buf *b, const void *p, size_t n);
/* "+text"; any CR or LF in text becomes a space, as Redis does. */
void resp_add_status(struct resp_buf *b, const char *text, size_t n);
/* "-text"; the caller passes the full text ("ERR syntax error",
 * "WRONGTYPE ..."); CR and LF become spaces. */
void resp_add_error(struct resp_buf *b, const char *text, size_t n);
/* ":n" */
void resp_add_int(struct resp_buf *b, long long n);
/* "$n\r\n<data>\r\n" */
void resp_add_bulk(struct resp_buf *b, const void *data, size_t n);
/* RESP2 "$-1", RESP3 "_" */
void resp_add_null(struct resp_buf *b, int proto);
/* RESP2 "*-1", RESP3 "_" */
void resp_add_null_array(struct resp_buf *b, int proto);
/* "*n" (followed by n replies) */
void resp_add_array(struct resp_buf *b, long long n);
/* RESP3 "%n" (followed by n key/value pairs), RESP2 "*2n" */
void resp_add_map(struct resp_buf *b, int proto, long long n);
/* RESP3 "~n", RESP2 "*n" */
void resp_add_set(struct resp_buf *b, int proto, long long n);
/* RESP3 ">n", RESP2 "*n": a pub/sub message */
void resp_add_push(struct resp_buf *b, int proto, long long n);
/* RESP3 ",1.5", RESP2 bulk "1.5"; "%.17g", with "inf"/"-inf" spelled
 * out, as Redis formats them. */
void resp_add_double(struct resp_buf *b, int proto, double d);
/* RESP3 "#t"/"#f", RESP2 ":1"/":0" */
void resp_add_bool(struct resp_buf *b, int proto, int v);
/* RESP3 "=n\r\nfmt:<data>" with a three-letter fmt ("txt", "mkd"),
 * RESP2 a bulk of data alone. */
void resp_add_verbatim(struct resp_buf *b, int proto, const char *fmt,
                       const void *data, size_t n);

/* ---------------------------------------------------------------------- */
/* Reply reader.                                                          */
/* ---------------------------------------------------------------------- */

enum resp_reply_type {
  RESP_REPLY_STRING = 1,  /* $ bulk */
  RESP_REPLY_STATUS,      /* + */
  RESP_REPLY_ERROR,       /* - and ! (blob error) */
  RESP_REPLY_INTEGER,     /* : */
  RESP_REPLY_NIL,         /* $-1, *-1, _ */
  RESP_REPLY_ARRAY,       /* * */
  RESP_REPLY_MAP,         /* % : elements are key, value, key, value... */
  RESP_REPLY_SET,         /* ~ */
  RESP_REPLY_PUSH,        /* > */
  RESP_REPLY_ATTR,        /* | : like a map; the reply it annotates follows
                             as the next reply */
  RESP_REPLY_DOUBLE,      /* , */
  RESP_REPLY_BOOL,        /* # : integer is 0 or 1 */
  RESP_REPLY_VERB,        /* = : vtype holds the format, str the text */
  RESP_REPLY_BIGNUM,      /* ( : digits in str */
};

struct resp_reply {
  enum resp_reply_type type;
  long long integer;
  double dval;
  char *str;              /* NUL-terminated copy; len excludes the NUL */
  size_t len;
  char vtype[4];
  size_t elements;
  struct resp_reply **element;
};

/*
 * Parse one reply from buf[0..len) into a new tree *reply (freed with
 * resp_reply_free).  Returns RESP_OK with *consumed set, RESP_AGAIN
 * (incomplete; nothing is kept, so call again with more bytes), RESP_ERR
 * (malformed, nested deeper than RESP_REPLY_DEPTH_MAX, or beyond the
 * RESP_MULTIBULK_MAX and RESP_BULK_MAX limits) or CAIRN_ENOMEM.
 * Out-parameters are set only on RESP_OK.  Because nothing is kept, a
 * reply arriving in k pieces is parsed up to k times.
 */
int resp_reply_parse(const char *buf, size_t len, size_t *consumed,
                     struct resp_reply **reply);

void resp_reply_free(struct resp_reply *r);

#endif /* CAIRN_RESP_H */
