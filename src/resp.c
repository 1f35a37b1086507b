/*
 * resp.c - the Redis protocol (RESP2 and RESP3), without I/O.
 *
 * Request forms, as Redis reads them:
 *
 *   array:   "*<N>\r\n" then N times "$<len>\r\n<len bytes>\r\n"
 *            N <= 0 is skipped; N above RESP_MULTIBULK_MAX, a bad N, a bad
 *            or too large len are errors.
 *   inline:  any other first byte: one line ending in "\n" (an optional
 *            "\r" before it is dropped), split into words as
 *            sdssplitargs() does: "double quotes" with \n \r \t \b \a \xHH
 *            and \<c> escapes, 'single quotes' with \' only, and a closing
 *            quote must be followed by a space or the end of the line.
 *            An empty line is skipped.
 *
 * The parser remembers how far into the current command it got (the
 * element count, the offsets of the arguments already parsed, how far it
 * searched for a line end), so every byte of input is looked at a bounded
 * number of times however it is split.
 */
#include "config.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "resp.h"
#include "util.h"

/* ---------------------------------------------------------------------- */
/* Shared helpers.                                                        */
/* ---------------------------------------------------------------------- */

/* Redis's string2ll: optional '-', no '+', no leading zeros, no spaces,
 * no overflow.  Returns 1 on success. */
static int str2ll(const char *s, size_t n, long long *out) {
  if (n == 0 || n > 20) return 0;
  if (n == 1 && s[0] == '0') {
    *out = 0;
    return 1;
  }
  size_t i = s[0] == '-';
  if (i == n || s[i] < '1' || s[i] > '9') return 0;
  unsigned long long v = 0;
  for (; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return 0;
    unsigned d = (unsigned)(s[i] - '0');
    if (v > (ULLONG_MAX - d) / 10) return 0;
    v = v * 10 + d;
  }
  if (s[0] == '-') {
    if (v > (unsigned long long)LLONG_MAX + 1) return 0;
    *out = v == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)v;
  } else {
    if (v > (unsigned long long)LLONG_MAX) return 0;
    *out = (long long)v;
  }
  return 1;
}

/* Grow an array of n-byte items to hold at least want; *cap is updated. */
static int grow(void **arr, size_t *cap, size_t want, size_t item) {
  if (want <= *cap) return 0;
  size_t ncap = *cap ? *cap : 16;
  while (ncap < want) ncap *= 2;
  void *q = realloc(*arr, ncap * item);
  if (!q) return CAIRN_ENOMEM;
  *arr = q;
  *cap = ncap;
  return 0;
}

/* ---------------------------------------------------------------------- */
/* Request parser.                                                        */
/* ---------------------------------------------------------------------- */

enum { ST_START, ST_MBULK, ST_BULK_HDR, ST_BULK_DATA, ST_INLINE };
enum { PARSED = 0, NEED_MORE = 1, SKIPPED = 2 };  /* plus RESP_ERR */

void resp_cmd_free(struct resp_cmd *c) {
  if (!c) return;
  free(c->argv);
  free(c->argvlen);
  free(c->inl);
  memset(c, 0, sizeof *c);
}

void resp_parser_init(struct resp_parser *p, long long bulk_bytes_max) {
  memset(p, 0, sizeof *p);
  p->bulk_max = bulk_bytes_max > 0 ? bulk_bytes_max : RESP_BULK_MAX;
  p->bulklen = -1;
}

void resp_parser_free(struct resp_parser *p) {
  if (!p) return;
  free(p->arg);
  free(p->inl);
  p->arg = NULL;
  p->inl = NULL;
  p->cap = p->inl_cap = 0;
}

size_t resp_parser_want(const struct resp_parser *p) {
  if (p->err || p->state != ST_BULK_DATA) return 0;
  return p->pos + (size_t)p->bulklen + 2;
}

const char *resp_parser_error(const struct resp_parser *p) {
  return p->errmsg;
}

/* Back to the start of a command, keeping the memory. */
static void next_command(struct resp_parser *p) {
  p->state = ST_START;
  p->mbulk = 0;
  p->bulklen = -1;
  p->pos = 0;
  p->scanned = 0;
  p->nargs = 0;
}

static int fail(struct resp_parser *p, const char *msg) {
  snprintf(p->errmsg, sizeof p->errmsg, "%s", msg);
  p->err = RESP_ERR;
  return RESP_ERR;
}

/*
 * Search s[pos..) for term, looking at no more than window bytes from pos
 * and never at a byte twice.  Returns its offset in s, or -1.
 */
static long find_eol(struct resp_parser *p, const char *s, size_t n,
                     char term, size_t window) {
  size_t from = p->pos + p->scanned;
  size_t end = MIN(n, p->pos + window);
  if (from >= end) return -1;
  const char *q = memchr(s + from, term, end - from);
  if (!q) {
    p->bytes_examined += end - from;
    p->scanned = end - p->pos;
    return -1;
  }
  p->bytes_examined += (size_t)(q - (s + from)) + 1;
  /* Keep the hit in the window: a retry waiting for the byte after it
   * then costs one byte. */
  p->scanned = (size_t)(q - s) - p->pos;
  return q - s;
}

static int add_arg(struct resp_parser *p, size_t off, size_t len) {
  if (grow((void **)&p->arg, &p->cap, (size_t)p->nargs + 1, sizeof *p->arg))
    return CAIRN_ENOMEM;
  p->arg[p->nargs].off = off;
  p->arg[p->nargs].len = len;
  p->nargs++;
  return 0;
}

/* "*N\r\n" */
static int parse_mbulk(struct resp_parser *p, const char *s, size_t n) {
  long eol = find_eol(p, s, n, '\r', RESP_INLINE_MAX + 1);
  if (eol < 0) {
    if (n - p->pos > RESP_INLINE_MAX)
      return fail(p, "Protocol error: too big mbulk count string");
    return NEED_MORE;
  }
  if ((size_t)eol + 1 >= n) return NEED_MORE;
  long long ll;
  if (!str2ll(s + p->pos + 1, (size_t)eol - p->pos - 1, &ll) ||
      ll > RESP_MULTIBULK_MAX)
    return fail(p, "Protocol error: invalid multibulk length");
  p->pos = (size_t)eol + 2;
  p->scanned = 0;
  if (ll <= 0) return SKIPPED;
  p->mbulk = ll;
  p->state = ST_BULK_HDR;
  return PARSED;
}

/* "$len\r\n" */
static int parse_bulk_hdr(struct resp_parser *p, const char *s, size_t n) {
  long eol = find_eol(p, s, n, '\r', RESP_INLINE_MAX + 1);
  if (eol < 0) {
    if (n - p->pos > RESP_INLINE_MAX)
      return fail(p, "Protocol error: too big bulk count string");
    return NEED_MORE;
  }
  if ((size_t)eol + 1 >= n) return NEED_MORE;
  if (s[p->pos] != '$') {
    char msg[64];
    /* A CR or LF would break the error reply; Redis turns them into
     * spaces too. */
    char c = s[p->pos] == '\r' || s[p->pos] == '\n' ? ' ' : s[p->pos];
    snprintf(msg, sizeof msg, "Protocol error: expected '$', got '%c'", c);
    return fail(p, msg);
  }
  long long ll;
  if (!str2ll(s + p->pos + 1, (size_t)eol - p->pos - 1, &ll) || ll < 0 ||
      ll > p->bulk_max)
    return fail(p, "Protocol error: invalid bulk length");
  p->pos = (size_t)eol + 2;
  p->scanned = 0;
  p->bulklen = ll;
  p->state = ST_BULK_DATA;
  return PARSED;
}

/* The argument body: waiting for it costs nothing per call. */
static int parse_bulk_data(struct resp_parser *p, size_t n) {
  size_t want = (size_t)p->bulklen + 2;
  if (n - p->pos < want) return NEED_MORE;
  if (add_arg(p, p->pos, (size_t)p->bulklen)) return CAIRN_ENOMEM;
  p->pos += want;
  p->bulklen = -1;
  p->state = ST_BULK_HDR;
  return PARSED;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* One character inside "double quotes" at s[*i]; 1 at the closing quote,
 * -1 for unbalanced quotes. */
static int dq_char(const char *s, size_t n, size_t *i, char **o) {
  char c = s[*i];
  if (c == '\\' && *i + 3 < n && s[*i + 1] == 'x' && hexval(s[*i + 2]) >= 0 &&
      hexval(s[*i + 3]) >= 0) {
    *(*o)++ = (char)(hexval(s[*i + 2]) * 16 + hexval(s[*i + 3]));
    *i += 3;
  } else if (c == '\\' && *i + 1 < n) {
    c = s[++*i];
    switch (c) {
    case 'n': c = '\n'; break;
    case 'r': c = '\r'; break;
    case 't': c = '\t'; break;
    case 'b': c = '\b'; break;
    case 'a': c = '\a'; break;
    default: break;
    }
    *(*o)++ = c;
  } else if (c == '"') {
    /* A closing quote must be followed by a space or nothing. */
    if (*i + 1 < n && !isspace((unsigned char)s[*i + 1])) return -1;
    return 1;
  } else {
    *(*o)++ = c;
  }
  return 0;
}

/* One character inside 'single quotes'; as dq_char. */
static int sq_char(const char *s, size_t n, size_t *i, char **o) {
  if (s[*i] == '\\' && *i + 1 < n && s[*i + 1] == '\'') {
    ++*i;
    *(*o)++ = '\'';
  } else if (s[*i] == '\'') {
    if (*i + 1 < n && !isspace((unsigned char)s[*i + 1])) return -1;
    return 1;
  } else {
    *(*o)++ = s[*i];
  }
  return 0;
}

/* One word of an inline line starting at s[*i] (not a space), unescaped
 * to *o.  Returns 0, or -1 for unbalanced quotes. */
static int inline_word(const char *s, size_t n, size_t *i, char **o) {
  int quote = 0;
  for (;;) {
    int r = 0;
    if (quote && *i >= n) return -1;
    if (!quote && *i >= n) return 0;
    if (quote == '"') {
      r = dq_char(s, n, i, o);
    } else if (quote == '\'') {
      r = sq_char(s, n, i, o);
    } else {
      switch (s[*i]) {
      case ' ': case '\n': case '\r': case '\t': r = 1; break;
      case '"': quote = '"'; break;
      case '\'': quote = '\''; break;
      default: *(*o)++ = s[*i]; break;
      }
    }
    if (r < 0) return -1;
    ++*i;
    if (r > 0) return 0;
  }
}

/* Split the line s[0..n) into the parser's inline storage. */
static int split_inline(struct resp_parser *p, const char *s, size_t n) {
  /* Redis splits a C string: a NUL ends the line. */
  const char *nul = memchr(s, '\0', n);
  if (nul) n = (size_t)(nul - s);
  if (n && grow((void **)&p->inl, &p->inl_cap, n, 1)) return CAIRN_ENOMEM;
  char *o = p->inl;
  size_t i = 0;
  /* Each word takes at least one byte, so this ends within n rounds. */
  for (;;) {
    while (i < n && isspace((unsigned char)s[i])) i++;
    if (i >= n) return 0;
    size_t start = (size_t)(o - p->inl);
    if (inline_word(s, n, &i, &o) < 0)
      return fail(p, "Protocol error: unbalanced quotes in request");
    if (add_arg(p, start, (size_t)(o - p->inl) - start)) return CAIRN_ENOMEM;
  }
}

static int parse_inline(struct resp_parser *p, const char *s, size_t n) {
  long eol = find_eol(p, s, n, '\n', RESP_INLINE_MAX + 2);
  if (eol < 0) {
    if (n - p->pos >= RESP_INLINE_MAX + 2)
      return fail(p, "Protocol error: too big inline request");
    return NEED_MORE;
  }
  size_t end = (size_t)eol;
  if (end > 0 && s[end - 1] == '\r') end--;
  if (end > RESP_INLINE_MAX)
    return fail(p, "Protocol error: too big inline request");
  int rc = split_inline(p, s, end);
  if (rc) return rc;
  p->pos = (size_t)eol + 1;
  return p->nargs ? PARSED : SKIPPED;
}

/* Advance through the current command; PARSED when it is complete. */
static int step(struct resp_parser *p, const char *s, size_t n) {
  for (;;) {
    int rc;
    switch (p->state) {
    case ST_START:
      if (n == 0) return NEED_MORE;
      p->state = s[0] == '*' ? ST_MBULK : ST_INLINE;
      continue;
    case ST_MBULK: rc = parse_mbulk(p, s, n); break;
    case ST_BULK_HDR:
      if (p->nargs == p->mbulk) return PARSED;
      rc = parse_bulk_hdr(p, s, n);
      break;
    case ST_BULK_DATA: rc = parse_bulk_data(p, n); break;
    case ST_INLINE: return parse_inline(p, s, n);
    default: cairn_assert(!"bad parser state");
    }
    if (rc != PARSED) return rc;
  }
}

/* Hand the finished command to out: argv into buf, or copies of the
 * unescaped inline words. */
static int emit(struct resp_parser *p, const char *s, struct resp_cmd *out) {
  size_t n = (size_t)p->nargs, cap = out->cap, inl = 0;
  int is_inline = p->state == ST_INLINE;
  if (is_inline && n) inl = p->arg[n - 1].off + p->arg[n - 1].len;
  if (grow((void **)&out->argv, &cap, n, sizeof *out->argv)) return CAIRN_ENOMEM;
  cap = out->cap;
  if (grow((void **)&out->argvlen, &cap, n, sizeof *out->argvlen))
    return CAIRN_ENOMEM;
  out->cap = cap;
  /* Even all-empty words need a real address to point at. */
  if (is_inline && grow((void **)&out->inl, &out->inl_cap, MAX(inl, 1), 1))
    return CAIRN_ENOMEM;
  if (inl) memcpy(out->inl, p->inl, inl);
  const char *base = is_inline ? out->inl : s;
  for (size_t i = 0; i < n; i++) {
    out->argv[i] = base + p->arg[i].off;
    out->argvlen[i] = p->arg[i].len;
  }
  out->argc = (int)n;
  return 0;
}

int resp_parse(struct resp_parser *p, const char *buf, size_t len,
               size_t *consumed, struct resp_cmd *out) {
  if (p->err) return p->err;
  /* The caller must present again every byte it did not discard. */
  cairn_assert(len >= p->pos);
  size_t base = 0;
  /* Each round ends the call or skips at least one byte. */
  for (;;) {
    int rc = step(p, buf + base, len - base);
    if (rc == NEED_MORE) {
      *consumed = base;
      return RESP_AGAIN;
    }
    if (rc == SKIPPED) {
      base += p->pos;
      next_command(p);
      continue;
    }
    if (rc == PARSED) rc = emit(p, buf + base, out);
    if (rc < 0) {
      if (rc != RESP_ERR) p->err = rc;
      return rc;
    }
    *consumed = base + p->pos;
    next_command(p);
    return RESP_OK;
  }
}

/* ---------------------------------------------------------------------- */
/* Reply writer.                                                          */
/* ---------------------------------------------------------------------- */

void resp_buf_init(struct resp_buf *b) { memset(b, 0, sizeof *b); }

void resp_buf_free(struct resp_buf *b) {
  if (!b) return;
  free(b->data);
  memset(b, 0, sizeof *b);
}

void resp_buf_reset(struct resp_buf *b) {
  b->len = 0;
  b->oom = 0;
}

void resp_buf_consume(struct resp_buf *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

/* Room for n more bytes; NULL (and oom set) if there is none. */
static char *reserve(struct resp_buf *b, size_t n) {
  if (b->oom) return NULL;
  if (n > SIZE_MAX / 2 - b->len) {
    b->oom = 1;
    return NULL;
  }
  if (b->len + n > b->cap) {
    size_t ncap = MAX(b->cap * 2, b->len + n);
    ncap = MAX(ncap, (size_t)64);
    char *q = realloc(b->data, ncap);
    if (!q) {
      b->oom = 1;
      return NULL;
    }
    b->data = q;
    b->cap = ncap;
  }
  return b->data + b->len;
}

void resp_add_raw(struct resp_buf *b, const void *p, size_t n) {
  char *o = reserve(b, n);
  if (!o) return;
  if (n) memcpy(o, p, n);
  b->len += n;
}

/* "<c><n>\r\n" */
/* "<c><n>\r\n": every integer and bulk reply has one, so no printf. */
static void add_hdr(struct resp_buf *b, char c, long long n) {
  char tmp[24], *end = tmp + sizeof tmp, *p = end;
  unsigned long long u = n < 0 ? 0ull - (unsigned long long)n
                               : (unsigned long long)n;
  *--p = '\n';
  *--p = '\r';
  do {
    *--p = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (n < 0) *--p = '-';
  *--p = c;
  resp_add_raw(b, p, (size_t)(end - p));
}

/* "<c><text>\r\n" with CR and LF turned into spaces. */
static void add_line(struct resp_buf *b, char c, const char *text, size_t n) {
  char *o = reserve(b, n + 3);
  if (!o) return;
  o[0] = c;
  for (size_t i = 0; i < n; i++)
    o[1 + i] = text[i] == '\r' || text[i] == '\n' ? ' ' : text[i];
  o[n + 1] = '\r';
  o[n + 2] = '\n';
  b->len += n + 3;
}

void resp_add_status(struct resp_buf *b, const char *text, size_t n) {
  add_line(b, '+', text, n);
}

void resp_add_error(struct resp_buf *b, const char *text, size_t n) {
  add_line(b, '-', text, n);
}

void resp_add_int(struct resp_buf *b, long long n) { add_hdr(b, ':', n); }

void resp_add_bulk(struct resp_buf *b, const void *data, size_t n) {
  add_hdr(b, '$', (long long)n);
  resp_add_raw(b, data, n);
  resp_add_raw(b, "\r\n", 2);
}

void resp_add_null(struct resp_buf *b, int proto) {
  if (proto >= 3)
    resp_add_raw(b, "_\r\n", 3);
  else
    resp_add_raw(b, "$-1\r\n", 5);
}

void resp_add_null_array(struct resp_buf *b, int proto) {
  if (proto >= 3)
    resp_add_raw(b, "_\r\n", 3);
  else
    resp_add_raw(b, "*-1\r\n", 5);
}

void resp_add_array(struct resp_buf *b, long long n) { add_hdr(b, '*', n); }

void resp_add_map(struct resp_buf *b, int proto, long long n) {
  if (proto >= 3)
    add_hdr(b, '%', n);
  else
    add_hdr(b, '*', 2 * n);
}

void resp_add_set(struct resp_buf *b, int proto, long long n) {
  add_hdr(b, proto >= 3 ? '~' : '*', n);
}

void resp_add_push(struct resp_buf *b, int proto, long long n) {
  add_hdr(b, proto >= 3 ? '>' : '*', n);
}

void resp_add_double(struct resp_buf *b, int proto, double d) {
  char tmp[64];
  int k;
  /* Spelled out: libcs disagree on how to print infinities. */
  if (isinf(d))
    k = snprintf(tmp, sizeof tmp, "%s", d > 0 ? "inf" : "-inf");
  else
    k = snprintf(tmp, sizeof tmp, "%.17g", d);
  if (proto >= 3) {
    add_line(b, ',', tmp, (size_t)k);
  } else {
    resp_add_bulk(b, tmp, (size_t)k);
  }
}

void resp_add_bool(struct resp_buf *b, int proto, int v) {
  if (proto >= 3)
    resp_add_raw(b, v ? "#t\r\n" : "#f\r\n", 4);
  else
    resp_add_raw(b, v ? ":1\r\n" : ":0\r\n", 4);
}

void resp_add_verbatim(struct resp_buf *b, int proto, const char *fmt,
                       const void *data, size_t n) {
  if (proto < 3) {
    resp_add_bulk(b, data, n);
    return;
  }
  char ext[3] = {'t', 'x', 't'};
  for (size_t i = 0; i < 3 && fmt && fmt[i]; i++) ext[i] = fmt[i];
  add_hdr(b, '=', (long long)n + 4);
  resp_add_raw(b, ext, 3);
  resp_add_raw(b, ":", 1);
  resp_add_raw(b, data, n);
  resp_add_raw(b, "\r\n", 2);
}

/* ---------------------------------------------------------------------- */
/* Reply reader.                                                          */
/* ---------------------------------------------------------------------- */

/* Smallest encoding of any reply ("_\r\n"): bounds what a count can
 * promise before its elements arrive. */
#define REPLY_BYTES_MIN 3

void resp_reply_free(struct resp_reply *r) {
  if (!r) return;
  if (r->element) {
    for (size_t i = 0; i < r->elements; i++) resp_reply_free(r->element[i]);
    free(r->element);
  }
  free(r->str);
  free(r);
}

/* End of the line starting at s[pos]: offset of its "\r\n", or -1. */
static long reply_eol(const char *s, size_t n, size_t pos) {
  while (pos < n) {
    const char *q = memchr(s + pos, '\r', n - pos);
    if (!q || (size_t)(q - s) + 1 >= n) return -1;
    if (q[1] == '\n') return q - s;
    pos = (size_t)(q - s) + 1;
  }
  return -1;
}

static int set_str(struct resp_reply *r, const char *s, size_t n) {
  r->str = malloc(n + 1);
  if (!r->str) return CAIRN_ENOMEM;
  if (n) memcpy(r->str, s, n);
  r->str[n] = '\0';
  r->len = n;
  return 0;
}

/* The payload of a one-line reply, s[0..n), into r. */
static int reply_line(struct resp_reply *r, char type, const char *s,
                      size_t n) {
  char tmp[128];
  char *end;
  switch (type) {
  case '+': r->type = RESP_REPLY_STATUS; return set_str(r, s, n);
  case '-': r->type = RESP_REPLY_ERROR; return set_str(r, s, n);
  case '(': r->type = RESP_REPLY_BIGNUM; return set_str(r, s, n);
  case ':':
    r->type = RESP_REPLY_INTEGER;
    return str2ll(s, n, &r->integer) ? 0 : RESP_ERR;
  case '_': r->type = RESP_REPLY_NIL; return n == 0 ? 0 : RESP_ERR;
  case '#':
    r->type = RESP_REPLY_BOOL;
    if (n != 1 || (s[0] != 't' && s[0] != 'f')) return RESP_ERR;
    r->integer = s[0] == 't';
    return 0;
  case ',':
    r->type = RESP_REPLY_DOUBLE;
    if (n == 0 || n >= sizeof tmp || isspace((unsigned char)s[0]))
      return RESP_ERR;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    r->dval = strtod(tmp, &end);
    if (end != tmp + n) return RESP_ERR;
    return set_str(r, s, n);
  default: return RESP_ERR;
  }
}

/* "$n", "!n", "=n": the blob after the line ending at eol. */
static int reply_blob(struct resp_reply *r, char type, const char *s,
                      size_t n, size_t *pos, long long len) {
  if (len < 0 || len > RESP_BULK_MAX) return RESP_ERR;
  if (n - *pos < (size_t)len + 2) return RESP_AGAIN;
  const char *d = s + *pos;
  if (d[len] != '\r' || d[len + 1] != '\n') return RESP_ERR;
  *pos += (size_t)len + 2;
  if (type == '=') {
    if (len < 4 || d[3] != ':') return RESP_ERR;
    r->type = RESP_REPLY_VERB;
    memcpy(r->vtype, d, 3);
    return set_str(r, d + 4, (size_t)len - 4);
  }
  r->type = type == '$' ? RESP_REPLY_STRING : RESP_REPLY_ERROR;
  return set_str(r, d, (size_t)len);
}

static int parse_reply(const char *s, size_t n, size_t *pos, int depth,
                       struct resp_reply **out);

/* "*n" and the other aggregates: n (2n for maps) replies, one level
 * deeper. */
static int reply_agg(struct resp_reply *r, char type, const char *s,
                     size_t n, size_t *pos, int depth, long long count) {
  static const char types[] = "*%~>|";
  static const enum resp_reply_type kinds[] = {
      RESP_REPLY_ARRAY, RESP_REPLY_MAP, RESP_REPLY_SET, RESP_REPLY_PUSH,
      RESP_REPLY_ATTR};
  r->type = kinds[strchr(types, type) - types];
  if (depth >= RESP_REPLY_DEPTH_MAX) return RESP_ERR;
  if (count < 0 || count > RESP_MULTIBULK_MAX) return RESP_ERR;
  size_t total = (size_t)count * (type == '%' || type == '|' ? 2 : 1);
  /* Do not allocate for elements that cannot all be here yet. */
  if (total > (n - *pos) / REPLY_BYTES_MIN) return RESP_AGAIN;
  if (total == 0) return 0;
  r->element = calloc(total, sizeof *r->element);
  if (!r->element) return CAIRN_ENOMEM;
  r->elements = total;
  for (size_t i = 0; i < total; i++) {
    int rc = parse_reply(s, n, pos, depth + 1, &r->element[i]);
    if (rc) return rc;
  }
  return 0;
}

/* One reply at s[*pos]; *pos moves past it on success. */
static int parse_reply(const char *s, size_t n, size_t *pos, int depth,
                       struct resp_reply **out) {
  if (*pos >= n) return RESP_AGAIN;
  char type = s[*pos];
  if (!strchr("+-:$*_#,(!=%~>|", type) || type == '\0') return RESP_ERR;
  long eol = reply_eol(s, n, *pos + 1);
  if (eol < 0) return RESP_AGAIN;
  const char *line = s + *pos + 1;
  size_t line_n = (size_t)eol - *pos - 1;
  struct resp_reply *r = calloc(1, sizeof *r);
  if (!r) return CAIRN_ENOMEM;
  size_t p = (size_t)eol + 2;
  int rc;
  long long ll = 0;
  if (!strchr("$!=*%~>|", type)) {
    rc = reply_line(r, type, line, line_n);
  } else if (!str2ll(line, line_n, &ll)) {
    rc = RESP_ERR;
  } else if (ll == -1 && (type == '$' || type == '*')) {
    r->type = RESP_REPLY_NIL;
    rc = 0;
  } else if (strchr("$!=", type)) {
    rc = reply_blob(r, type, s, n, &p, ll);
  } else {
    rc = reply_agg(r, type, s, n, &p, depth, ll);
  }
  if (rc) {
    resp_reply_free(r);
    return rc;
  }
  *pos = p;
  *out = r;
  return 0;
}

int resp_reply_parse(const char *buf, size_t len, size_t *consumed,
                     struct resp_reply **reply) {
  size_t pos = 0;
  struct resp_reply *r = NULL;
  int rc = parse_reply(buf, len, &pos, 0, &r);
  if (rc) return rc;
  *consumed = pos;
  *reply = r;
  return RESP_OK;
}
