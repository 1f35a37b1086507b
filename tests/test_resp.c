/*
 * test_resp.c - the RESP request parser, reply writer and reply reader.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "resp.h"
#include "util.h"

#define S(lit) lit, sizeof(lit) - 1

/* ---------------------------------------------------------------------- */
/* Helpers.                                                               */
/* ---------------------------------------------------------------------- */

/* A growable string to describe parsed commands, "argc[len:arg]..|". */
struct str {
  char *p;
  size_t n, cap;
};

static void str_add(struct str *s, const void *d, size_t n) {
  if (s->n + n + 1 > s->cap) {
    s->cap = (s->n + n + 1) * 2;
    s->p = realloc(s->p, s->cap);
    cr_assert_not_null(s->p);
  }
  memcpy(s->p + s->n, d, n);
  s->n += n;
  s->p[s->n] = '\0';
}

static void describe(struct str *s, const struct resp_cmd *c) {
  char tmp[64];
  int k = snprintf(tmp, sizeof tmp, "%d", c->argc);
  str_add(s, tmp, (size_t)k);
  for (int i = 0; i < c->argc; i++) {
    k = snprintf(tmp, sizeof tmp, "[%zu:", c->argvlen[i]);
    str_add(s, tmp, (size_t)k);
    str_add(s, c->argv[i], c->argvlen[i]);
    str_add(s, "]", 1);
  }
  str_add(s, "|", 1);
}

/*
 * A connection: bytes arrive in chunks of the given sizes (cycled), the
 * buffer keeps what was not consumed, and every command parsed is
 * described in out.  Returns the last non-AGAIN result, or RESP_AGAIN.
 */
static int feed(struct resp_parser *p, const char *data, size_t len,
                const size_t *chunks, size_t nchunks, struct str *out) {
  char *buf = malloc(len + 1);
  cr_assert_not_null(buf);
  size_t have = 0, sent = 0, ci = 0;
  struct resp_cmd cmd = {0};
  int rc = RESP_AGAIN;
  while (sent < len) {
    size_t k = MIN(chunks[ci++ % nchunks], len - sent);
    memcpy(buf + have, data + sent, k);
    have += k;
    sent += k;
    for (;;) {
      size_t used = 0;
      rc = resp_parse(p, buf, have, &used, &cmd);
      if (rc == RESP_OK || rc == RESP_AGAIN) {
        cr_assert_leq(used, have);
        if (rc == RESP_OK) describe(out, &cmd);
        memmove(buf, buf + used, have - used);
        have -= used;
      }
      if (rc != RESP_OK) break;
    }
    if (rc < 0) break;
  }
  resp_cmd_free(&cmd);
  free(buf);
  return rc;
}

static int feed_whole(const char *data, size_t len, struct str *out) {
  struct resp_parser p;
  resp_parser_init(&p, 0);
  size_t all = len ? len : 1;
  int rc = feed(&p, data, len, &all, 1, out);
  resp_parser_free(&p);
  return rc;
}

/* Parse buf as one unit, expecting a protocol error with text msg. */
static void expect_error(const char *buf, size_t len, long long bulk_max,
                         const char *msg) {
  struct resp_parser p;
  resp_parser_init(&p, bulk_max);
  struct resp_cmd cmd = {0};
  size_t used = 12345;
  int rc = resp_parse(&p, buf, len, &used, &cmd);
  cr_assert_eq(rc, RESP_ERR, "expected error \"%s\", got %d", msg, rc);
  cr_assert_str_eq(resp_parser_error(&p), msg);
  cr_assert_eq(used, 12345, "consumed is untouched on error");
  /* The parser stays failed. */
  cr_assert_eq(resp_parse(&p, S("PING\r\n"), &used, &cmd), RESP_ERR);
  resp_cmd_free(&cmd);
  resp_parser_free(&p);
}

static const char mixed[] =
    "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\n"
    "\r\n"
    "PING\r\n"
    "*0\r\n"
    "*-1\r\n"
    "  set  \"a b\\\"\\x41\\n\"  'it\\'s'  x\"y z\"\n"
    "*2\r\n$0\r\n\r\n$4\r\n\0\r\n\0\r\n"
    "*1\r\n$11\r\n*1\r\n$3\r\nGET\r\n";

static const char mixed_expect[] =
    "3[3:SET][3:key][5:va\r\nl]|"
    "1[4:PING]|"
    "4[3:set][6:a b\"A\n][4:it's][4:xy z]|"
    "2[0:][4:\0\r\n\0]|"
    "1[11:*1\r\n$3\r\nGET]|";

static void assert_mixed(const struct str *s) {
  cr_assert_eq(s->n, sizeof mixed_expect - 1, "got %zu bytes: %s", s->n, s->p);
  cr_assert(memcmp(s->p, mixed_expect, s->n) == 0, "got %s", s->p);
}

/* ---------------------------------------------------------------------- */
/* Request forms.                                                         */
/* ---------------------------------------------------------------------- */

Test(resp, multibulk_args_point_into_the_callers_buffer) {
  static const char buf[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
  struct resp_parser p;
  resp_parser_init(&p, 0);
  struct resp_cmd cmd = {0};
  size_t used = 0;
  cr_assert_eq(resp_parse(&p, buf, sizeof buf - 1, &used, &cmd), RESP_OK);
  cr_assert_eq(used, sizeof buf - 1);
  cr_assert_eq(cmd.argc, 3);
  cr_assert_eq(cmd.argv[0], buf + 8);
  cr_assert_eq(cmd.argvlen[0], 3);
  cr_assert_eq(cmd.argv[1], buf + 17);
  cr_assert_eq(cmd.argvlen[1], 1);
  cr_assert_eq(cmd.argv[2], buf + 24);
  cr_assert_eq(cmd.argvlen[2], 5);
  resp_cmd_free(&cmd);
  resp_parser_free(&p);
}

Test(resp, inline_commands_split_into_words) {
  struct str s = {0};
  cr_assert_eq(feed_whole(S("SET k v\r\nPING\n\tGET   key \r\n"), &s),
               RESP_AGAIN);
  cr_assert_str_eq(s.p, "3[3:SET][1:k][1:v]|1[4:PING]|2[3:GET][3:key]|");
  free(s.p);
}

Test(resp, inline_quotes_and_escapes_as_sdssplitargs) {
  struct str s = {0};
  cr_assert_eq(feed_whole(S("ECHO \"a\\tb\\x4a\\x4\\q\" '\\n\\'' \"\" ''\n"),
                          &s), RESP_AGAIN);
  cr_assert_str_eq(s.p, "5[4:ECHO][7:a\tbJx4q][3:\\n'][0:][0:]|");
  free(s.p);
}

Test(resp, inline_words_that_are_all_empty_still_point_somewhere) {
  struct resp_parser p;
  resp_parser_init(&p, 0);
  struct resp_cmd cmd = {0};
  size_t used = 0;
  cr_assert_eq(resp_parse(&p, S("\"\" ''\n"), &used, &cmd), RESP_OK);
  cr_assert_eq(cmd.argc, 2);
  cr_assert_not_null(cmd.argv[0]);
  cr_assert_not_null(cmd.argv[1]);
  cr_assert_eq(cmd.argvlen[0] + cmd.argvlen[1], 0);
  resp_cmd_free(&cmd);
  resp_parser_free(&p);
}

Test(resp, inline_line_stops_at_nul_like_a_c_string) {
  struct str s = {0};
  cr_assert_eq(feed_whole(S("GET a\0b c\r\n"), &s), RESP_AGAIN);
  cr_assert_str_eq(s.p, "2[3:GET][1:a]|");
  free(s.p);
}

Test(resp, empty_lines_and_empty_arrays_are_skipped) {
  struct resp_parser p;
  resp_parser_init(&p, 0);
  struct resp_cmd cmd = {0};
  size_t used = 99;
  /* Skipped bytes are consumed even when no command follows. */
  cr_assert_eq(resp_parse(&p, S("\r\n\n*0\r\n*-1\r\n  \r\n"), &used, &cmd),
               RESP_AGAIN);
  cr_assert_eq(used, 16);
  cr_assert_eq(cmd.argc, 0, "out untouched without a command");
  cr_assert_eq(resp_parse(&p, S("\r\n*-5\r\nPING\r\n"), &used, &cmd), RESP_OK);
  cr_assert_eq(used, 13);
  cr_assert_eq(cmd.argc, 1);
  resp_cmd_free(&cmd);
  resp_parser_free(&p);
}

Test(resp, pipelined_commands_parse_one_at_a_time_into_separate_cmds) {
  static const char buf[] =
      "*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\nECHO hi\r\n";
  struct resp_parser p;
  resp_parser_init(&p, 0);
  struct resp_cmd c[3] = {{0}};
  size_t off = 0;
  for (int i = 0; i < 3; i++) {
    size_t used = 0;
    cr_assert_eq(resp_parse(&p, buf + off, sizeof buf - 1 - off, &used, &c[i]),
                 RESP_OK);
    off += used;
  }
  cr_assert_eq(off, sizeof buf - 1);
  /* All three stay valid together while buf is kept. */
  cr_assert_eq(c[0].argc, 1);
  cr_assert(memcmp(c[0].argv[0], "PING", 4) == 0);
  cr_assert_eq(c[1].argc, 2);
  cr_assert(memcmp(c[1].argv[1], "a", 1) == 0);
  cr_assert_eq(c[2].argc, 2);
  cr_assert(memcmp(c[2].argv[1], "hi", 2) == 0);
  size_t used = 7;
  cr_assert_eq(resp_parse(&p, buf, 0, &used, &c[0]), RESP_AGAIN);
  cr_assert_eq(used, 0);
  for (int i = 0; i < 3; i++) resp_cmd_free(&c[i]);
  resp_parser_free(&p);
}

Test(resp, binary_args_and_zero_length_args_in_one_buffer) {
  struct str s = {0};
  cr_assert_eq(feed_whole(mixed, sizeof mixed - 1, &s), RESP_AGAIN);
  assert_mixed(&s);
  free(s.p);
}

Test(resp, every_split_point_gives_the_same_commands) {
  size_t len = sizeof mixed - 1;
  for (size_t k = 1; k < len; k++) {
    struct resp_parser p;
    resp_parser_init(&p, 0);
    size_t chunks[2] = {k, len};
    struct str s = {0};
    cr_assert_eq(feed(&p, mixed, len, chunks, 2, &s), RESP_AGAIN);
    assert_mixed(&s);
    free(s.p);
    resp_parser_free(&p);
  }
}

Test(resp, byte_by_byte_feeding_gives_the_same_commands) {
  static const size_t chunk_sets[][3] = {{1, 1, 1}, {2, 3, 5}, {7, 1, 13}};
  for (size_t i = 0; i < 3; i++) {
    struct resp_parser p;
    resp_parser_init(&p, 0);
    struct str s = {0};
    cr_assert_eq(feed(&p, mixed, sizeof mixed - 1, chunk_sets[i], 3, &s),
                 RESP_AGAIN);
    assert_mixed(&s);
    free(s.p);
    resp_parser_free(&p);
  }
}

/* ---------------------------------------------------------------------- */
/* Errors and limits.                                                     */
/* ---------------------------------------------------------------------- */

Test(resp, bad_multibulk_counts_are_redis_errors) {
  const char *m = "Protocol error: invalid multibulk length";
  expect_error(S("*abc\r\n"), 0, m);
  expect_error(S("*+1\r\n"), 0, m);
  expect_error(S("*01\r\n"), 0, m);
  expect_error(S("*\r\n"), 0, m);
  expect_error(S("*99999999999999999999999\r\n"), 0, m);
  expect_error(S("*1048577\r\n"), 0, m);
}

Test(resp, multibulk_count_at_the_limit_is_accepted) {
  struct resp_parser p;
  resp_parser_init(&p, 0);
  struct resp_cmd cmd = {0};
  size_t used = 0;
  cr_assert_eq(resp_parse(&p, S("*1048576\r\n"), &used, &cmd), RESP_AGAIN);
  resp_parser_free(&p);
}

Test(resp, bad_bulk_lengths_are_redis_errors) {
  const char *m = "Protocol error: invalid bulk length";
  expect_error(S("*1\r\n$-1\r\n"), 0, m);
  expect_error(S("*1\r\n$x\r\n"), 0, m);
  expect_error(S("*1\r\n$\r\n"), 0, m);
  expect_error(S("*1\r\n$536870913\r\n"), 0, m);
  expect_error(S("*1\r\n$11\r\n"), 10, m);
}

Test(resp, bulk_limit_follows_the_parsers_current_setting) {
  struct resp_parser p;
  resp_parser_init(&p, 10);
  struct resp_cmd cmd = {0};
  size_t used = 0;
  cr_assert_eq(resp_parse(&p, S("*1\r\n$10\r\n0123456789\r\n"), &used, &cmd),
               RESP_OK);
  p.bulk_max = 100;
  cr_assert_eq(resp_parse(&p, S("*1\r\n$11\r\n0123456789a\r\n"), &used, &cmd),
               RESP_OK);
  cr_assert_eq(cmd.argvlen[0], 11);
  p.bulk_max = 5;
  cr_assert_eq(resp_parse(&p, S("*1\r\n$6\r\n"), &used, &cmd), RESP_ERR);
  cr_assert_str_eq(resp_parser_error(&p), "Protocol error: invalid bulk length");
  resp_cmd_free(&cmd);
  resp_parser_free(&p);
}

Test(resp, a_non_bulk_element_names_the_byte_found) {
  expect_error(S("*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n"), 0,
               "Protocol error: expected '$', got 'f'");
  expect_error(S("*1\r\n\r\n"), 0, "Protocol error: expected '$', got ' '");
}

Test(resp, unbalanced_quotes_are_an_error) {
  const char *m = "Protocol error: unbalanced quotes in request";
  expect_error(S("SET \"abc\r\n"), 0, m);
  expect_error(S("SET 'abc\r\n"), 0, m);
  expect_error(S("SET \"a\"b\r\n"), 0, m);
  expect_error(S("SET 'a'b\r\n"), 0, m);
  expect_error(S("SET \"a\\\"\r\n"), 0, m);
}

static void expect_too_big(char fill, const char *prefix,
                           size_t n, const char *msg) {
  char *buf = malloc(n);
  cr_assert_not_null(buf);
  memset(buf, fill, n);
  size_t pl = strlen(prefix);
  memcpy(buf, prefix, pl);
  expect_error(buf, n, 0, msg);
  free(buf);
}

Test(resp, overlong_lines_are_redis_errors) {
  size_t n = RESP_INLINE_MAX + 100;
  expect_too_big('a', "", n, "Protocol error: too big inline request");
  expect_too_big('1', "*", n, "Protocol error: too big mbulk count string");
  expect_too_big('1', "*1\r\n$", n,
                 "Protocol error: too big bulk count string");
  /* A complete inline line above the limit is refused too. */
  char *buf = malloc(n);
  cr_assert_not_null(buf);
  memset(buf, 'a', n);
  buf[RESP_INLINE_MAX + 1] = '\n';
  expect_error(buf, n, 0, "Protocol error: too big inline request");
  /* ... but one at the limit is fine. */
  buf[RESP_INLINE_MAX] = '\n';
  struct str s = {0};
  cr_assert_eq(feed_whole(buf, RESP_INLINE_MAX + 1, &s), RESP_AGAIN);
  cr_assert_eq(s.n, strlen("1[65536:]|") + RESP_INLINE_MAX);
  free(s.p);
  free(buf);
}

Test(resp, an_inline_line_below_the_limit_waits_for_its_newline) {
  struct resp_parser p;
  resp_parser_init(&p, 0);
  struct resp_cmd cmd = {0};
  size_t n = RESP_INLINE_MAX - 10, used = 0;
  char *buf = malloc(n);
  memset(buf, 'a', n);
  cr_assert_eq(resp_parse(&p, buf, n, &used, &cmd), RESP_AGAIN);
  free(buf);
  resp_parser_free(&p);
}

/* ---------------------------------------------------------------------- */
/* Linear work on pieces.                                                 */
/* ---------------------------------------------------------------------- */

Test(resp, a_large_bulk_in_small_pieces_is_examined_once) {
  const size_t big = 10u * 1024 * 1024, piece = 4096;
  char hdr[64];
  int hl = snprintf(hdr, sizeof hdr, "*2\r\n$3\r\nSET\r\n$%zu\r\n", big);
  size_t len = (size_t)hl + big + 2;
  char *buf = malloc(len);
  cr_assert_not_null(buf);
  memcpy(buf, hdr, (size_t)hl);
  memset(buf + hl, 'v', big);
  memcpy(buf + hl + big, "\r\n", 2);

  struct resp_parser p;
  resp_parser_init(&p, 0);
  struct resp_cmd cmd = {0};
  size_t have = 0, used = 0, calls = 0;
  int rc = RESP_AGAIN;
  while (rc == RESP_AGAIN) {
    cr_assert_lt(have, len);
    have = MIN(have + piece, len);
    rc = resp_parse(&p, buf, have, &used, &cmd);
    if (rc == RESP_AGAIN && have > (size_t)hl)
      cr_assert_eq(resp_parser_want(&p), len);
    calls++;
  }
  cr_assert_eq(rc, RESP_OK);
  cr_assert_eq(resp_parser_want(&p), 0);
  cr_assert_eq(used, len);
  cr_assert_eq(cmd.argvlen[1], big);
  cr_assert_eq(cmd.argv[1], buf + hl);
  cr_assert_gt(calls, 2000);
  /* Only the header lines are searched, never the value. */
  cr_assert_leq(p.bytes_examined, (uint64_t)hl, "examined %llu bytes",
                (unsigned long long)p.bytes_examined);
  resp_cmd_free(&cmd);
  resp_parser_free(&p);
  free(buf);
}

Test(resp, an_inline_line_byte_by_byte_is_examined_once) {
  const size_t n = 60000;
  char *buf = malloc(n + 1);
  memset(buf, 'x', n);
  buf[n] = '\n';
  struct resp_parser p;
  resp_parser_init(&p, 0);
  struct resp_cmd cmd = {0};
  size_t used = 0;
  int rc = RESP_AGAIN;
  for (size_t have = 1; rc == RESP_AGAIN && have <= n + 1; have++)
    rc = resp_parse(&p, buf, have, &used, &cmd);
  cr_assert_eq(rc, RESP_OK);
  cr_assert_eq(cmd.argc, 1);
  cr_assert_eq(cmd.argvlen[0], n);
  cr_assert_leq(p.bytes_examined, n + 1);
  resp_cmd_free(&cmd);
  resp_parser_free(&p);
  free(buf);
}

Test(resp, many_small_args_in_small_pieces_stay_linear) {
  /* 100000 one-byte args: each arg's header is found once. */
  const int args = 100000;
  size_t cap = 16 + (size_t)args * 7, len = 0;
  char *buf = malloc(cap);
  len += (size_t)sprintf(buf, "*%d\r\n", args);
  for (int i = 0; i < args; i++) len += (size_t)sprintf(buf + len, "$1\r\nz\r\n");
  struct resp_parser p;
  resp_parser_init(&p, 0);
  struct resp_cmd cmd = {0};
  size_t used = 0, have = 0;
  int rc = RESP_AGAIN;
  while (rc == RESP_AGAIN && have < len) {
    have = MIN(have + 3, len);
    rc = resp_parse(&p, buf, have, &used, &cmd);
  }
  cr_assert_eq(rc, RESP_OK);
  cr_assert_eq(cmd.argc, args);
  cr_assert_leq(p.bytes_examined, len);
  resp_cmd_free(&cmd);
  resp_parser_free(&p);
  free(buf);
}

/* ---------------------------------------------------------------------- */
/* Reply writer.                                                          */
/* ---------------------------------------------------------------------- */

#define EXPECT_BUF(b, lit)                                                  \
  do {                                                                      \
    cr_assert_eq((b)->len, sizeof(lit) - 1, "got %.*s", (int)(b)->len,      \
                 (b)->data);                                                \
    cr_assert(memcmp((b)->data, lit, sizeof(lit) - 1) == 0, "got %.*s",     \
              (int)(b)->len, (b)->data);                                    \
    resp_buf_reset(b);                                                      \
  } while (0)

Test(resp, writer_scalars_are_byte_exact_in_both_protocols) {
  struct resp_buf b;
  resp_buf_init(&b);
  for (int proto = 2; proto <= 3; proto++) {
    resp_add_status(&b, S("OK"));
    EXPECT_BUF(&b, "+OK\r\n");
    resp_add_status(&b, S("a\r\nb"));
    EXPECT_BUF(&b, "+a  b\r\n");
    resp_add_error(&b, S("ERR unknown command 'x'"));
    EXPECT_BUF(&b, "-ERR unknown command 'x'\r\n");
    resp_add_int(&b, -42);
    EXPECT_BUF(&b, ":-42\r\n");
    resp_add_int(&b, INT64_MIN);
    EXPECT_BUF(&b, ":-9223372036854775808\r\n");
    resp_add_bulk(&b, S("a\r\n\0b"));
    EXPECT_BUF(&b, "$5\r\na\r\n\0b\r\n");
    resp_add_bulk(&b, "", 0);
    EXPECT_BUF(&b, "$0\r\n\r\n");
    resp_add_array(&b, 3);
    EXPECT_BUF(&b, "*3\r\n");
    resp_add_raw(&b, S("+raw\r\n"));
    EXPECT_BUF(&b, "+raw\r\n");
  }
  resp_buf_free(&b);
}

Test(resp, writer_resp2_forms) {
  struct resp_buf b;
  resp_buf_init(&b);
  resp_add_null(&b, 2);
  EXPECT_BUF(&b, "$-1\r\n");
  resp_add_null_array(&b, 2);
  EXPECT_BUF(&b, "*-1\r\n");
  resp_add_map(&b, 2, 2);
  EXPECT_BUF(&b, "*4\r\n");
  resp_add_set(&b, 2, 5);
  EXPECT_BUF(&b, "*5\r\n");
  resp_add_push(&b, 2, 3);
  EXPECT_BUF(&b, "*3\r\n");
  resp_add_double(&b, 2, 1.5);
  EXPECT_BUF(&b, "$3\r\n1.5\r\n");
  resp_add_double(&b, 2, 0.1);
  EXPECT_BUF(&b, "$19\r\n0.10000000000000001\r\n");
  resp_add_double(&b, 2, INFINITY);
  EXPECT_BUF(&b, "$3\r\ninf\r\n");
  resp_add_double(&b, 2, -INFINITY);
  EXPECT_BUF(&b, "$4\r\n-inf\r\n");
  resp_add_bool(&b, 2, 1);
  EXPECT_BUF(&b, ":1\r\n");
  resp_add_bool(&b, 2, 0);
  EXPECT_BUF(&b, ":0\r\n");
  resp_add_verbatim(&b, 2, "txt", S("hello"));
  EXPECT_BUF(&b, "$5\r\nhello\r\n");
  resp_buf_free(&b);
}

Test(resp, writer_resp3_forms) {
  struct resp_buf b;
  resp_buf_init(&b);
  resp_add_null(&b, 3);
  EXPECT_BUF(&b, "_\r\n");
  resp_add_null_array(&b, 3);
  EXPECT_BUF(&b, "_\r\n");
  resp_add_map(&b, 3, 2);
  EXPECT_BUF(&b, "%2\r\n");
  resp_add_set(&b, 3, 5);
  EXPECT_BUF(&b, "~5\r\n");
  resp_add_push(&b, 3, 3);
  EXPECT_BUF(&b, ">3\r\n");
  resp_add_double(&b, 3, 1.5);
  EXPECT_BUF(&b, ",1.5\r\n");
  resp_add_double(&b, 3, -3);
  EXPECT_BUF(&b, ",-3\r\n");
  resp_add_double(&b, 3, INFINITY);
  EXPECT_BUF(&b, ",inf\r\n");
  resp_add_double(&b, 3, -INFINITY);
  EXPECT_BUF(&b, ",-inf\r\n");
  resp_add_bool(&b, 3, 1);
  EXPECT_BUF(&b, "#t\r\n");
  resp_add_bool(&b, 3, 0);
  EXPECT_BUF(&b, "#f\r\n");
  resp_add_verbatim(&b, 3, "mkd", S("# hi\r\n"));
  EXPECT_BUF(&b, "=10\r\nmkd:# hi\r\n\r\n");
  resp_buf_free(&b);
}

Test(resp, writer_grows_and_consumes) {
  struct resp_buf b;
  resp_buf_init(&b);
  for (int i = 0; i < 10000; i++) resp_add_int(&b, i % 10);
  cr_assert_eq(b.len, 40000);
  cr_assert_eq(b.oom, 0);
  resp_buf_consume(&b, 39996);
  EXPECT_BUF(&b, ":9\r\n");
  resp_buf_free(&b);
}

Test(resp, writer_records_allocation_failure_and_stops) {
  struct resp_buf b;
  resp_buf_init(&b);
  resp_add_status(&b, S("OK"));
  resp_add_raw(&b, "x", SIZE_MAX - 2);
  cr_assert_eq(b.oom, 1);
  resp_add_int(&b, 1);
  resp_add_bulk(&b, S("abc"));
  cr_assert_eq(b.len, 5, "nothing written after the failure");
  resp_buf_reset(&b);
  cr_assert_eq(b.oom, 0);
  resp_buf_free(&b);
}

/* ---------------------------------------------------------------------- */
/* Reply reader.                                                          */
/* ---------------------------------------------------------------------- */

static struct resp_reply *read_all(const struct resp_buf *b) {
  struct resp_reply *r = NULL;
  size_t used = 0;
  /* Every strict prefix is incomplete, never an error. */
  for (size_t k = 0; k < b->len; k++)
    cr_assert_eq(resp_reply_parse(b->data, k, &used, &r), RESP_AGAIN,
                 "prefix %zu", k);
  cr_assert_eq(resp_reply_parse(b->data, b->len, &used, &r), RESP_OK);
  cr_assert_eq(used, b->len);
  return r;
}

static void write_sample(struct resp_buf *b, int proto) {
  resp_add_map(b, proto, 1);
  resp_add_bulk(b, S("k\r\n"));
  resp_add_array(b, 10);
  resp_add_status(b, S("OK"));
  resp_add_error(b, S("ERR bad"));
  resp_add_int(b, -7);
  resp_add_null(b, proto);
  resp_add_null_array(b, proto);
  resp_add_double(b, proto, 2.25);
  resp_add_bool(b, proto, 1);
  resp_add_verbatim(b, proto, "txt", S("v"));
  resp_add_set(b, proto, 1);
  resp_add_bulk(b, "", 0);
  resp_add_push(b, proto, 0);
}

Test(resp, reader_round_trips_resp3_writer_output) {
  struct resp_buf b;
  resp_buf_init(&b);
  write_sample(&b, 3);
  struct resp_reply *r = read_all(&b);
  cr_assert_eq(r->type, RESP_REPLY_MAP);
  cr_assert_eq(r->elements, 2);
  cr_assert_eq(r->element[0]->type, RESP_REPLY_STRING);
  cr_assert_eq(r->element[0]->len, 3);
  cr_assert_str_eq(r->element[0]->str, "k\r\n");
  struct resp_reply *a = r->element[1];
  cr_assert_eq(a->type, RESP_REPLY_ARRAY);
  cr_assert_eq(a->elements, 10);
  cr_assert_eq(a->element[0]->type, RESP_REPLY_STATUS);
  cr_assert_str_eq(a->element[0]->str, "OK");
  cr_assert_eq(a->element[1]->type, RESP_REPLY_ERROR);
  cr_assert_str_eq(a->element[1]->str, "ERR bad");
  cr_assert_eq(a->element[2]->type, RESP_REPLY_INTEGER);
  cr_assert_eq(a->element[2]->integer, -7);
  cr_assert_eq(a->element[3]->type, RESP_REPLY_NIL);
  cr_assert_eq(a->element[4]->type, RESP_REPLY_NIL);
  cr_assert_eq(a->element[5]->type, RESP_REPLY_DOUBLE);
  cr_assert_eq(a->element[5]->dval, 2.25);
  cr_assert_eq(a->element[6]->type, RESP_REPLY_BOOL);
  cr_assert_eq(a->element[6]->integer, 1);
  cr_assert_eq(a->element[7]->type, RESP_REPLY_VERB);
  cr_assert_str_eq(a->element[7]->vtype, "txt");
  cr_assert_str_eq(a->element[7]->str, "v");
  cr_assert_eq(a->element[8]->type, RESP_REPLY_SET);
  cr_assert_eq(a->element[8]->elements, 1);
  cr_assert_eq(a->element[8]->element[0]->len, 0);
  cr_assert_eq(a->element[9]->type, RESP_REPLY_PUSH);
  cr_assert_eq(a->element[9]->elements, 0);
  resp_reply_free(r);
  resp_buf_free(&b);
}

Test(resp, reader_round_trips_resp2_writer_output) {
  struct resp_buf b;
  resp_buf_init(&b);
  write_sample(&b, 2);
  struct resp_reply *r = read_all(&b);
  cr_assert_eq(r->type, RESP_REPLY_ARRAY);
  cr_assert_eq(r->elements, 2);
  struct resp_reply *a = r->element[1];
  cr_assert_eq(a->elements, 10);
  cr_assert_eq(a->element[3]->type, RESP_REPLY_NIL);
  cr_assert_eq(a->element[4]->type, RESP_REPLY_NIL);
  cr_assert_eq(a->element[5]->type, RESP_REPLY_STRING);
  cr_assert_str_eq(a->element[5]->str, "2.25");
  cr_assert_eq(a->element[6]->type, RESP_REPLY_INTEGER);
  cr_assert_eq(a->element[6]->integer, 1);
  cr_assert_eq(a->element[7]->type, RESP_REPLY_STRING);
  cr_assert_str_eq(a->element[7]->str, "v");
  cr_assert_eq(a->element[8]->type, RESP_REPLY_ARRAY);
  resp_reply_free(r);
  resp_buf_free(&b);
}

Test(resp, reader_consumes_one_reply_of_several) {
  struct resp_reply *r = NULL;
  size_t used = 0;
  cr_assert_eq(resp_reply_parse(S(":1\r\n:2\r\n"), &used, &r), RESP_OK);
  cr_assert_eq(used, 4);
  cr_assert_eq(r->integer, 1);
  resp_reply_free(r);
  cr_assert_eq(resp_reply_parse(S("(123456789012345678901234\r\n!3\r\nERR\r\n"),
                                &used, &r), RESP_OK);
  cr_assert_eq(r->type, RESP_REPLY_BIGNUM);
  cr_assert_str_eq(r->str, "123456789012345678901234");
  resp_reply_free(r);
}

Test(resp, reader_limits_nesting_depth) {
  struct resp_buf b;
  resp_buf_init(&b);
  for (int i = 0; i < RESP_REPLY_DEPTH_MAX; i++) resp_add_array(&b, 1);
  resp_add_int(&b, 1);
  struct resp_reply *r = read_all(&b);
  resp_reply_free(r);
  resp_buf_reset(&b);
  for (int i = 0; i < RESP_REPLY_DEPTH_MAX + 1; i++) resp_add_array(&b, 1);
  resp_add_int(&b, 1);
  size_t used = 0;
  r = NULL;
  cr_assert_eq(resp_reply_parse(b.data, b.len, &used, &r), RESP_ERR);
  cr_assert_null(r);
  resp_buf_free(&b);
}

Test(resp, reader_rejects_malformed_replies) {
  static const char *bad[] = {
      "?x\r\n", ":1x\r\n", ":\r\n", "$-2\r\n", "$3\r\nabcd\r\n", "#x\r\n",
      ",\r\n", ",1.5x\r\n", "_x\r\n", "=2\r\nab\r\n", "*-2\r\n", "%-1\r\n",
      "$536870913\r\n", "*1048577\r\n", "*1\r\n?\r\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    struct resp_reply *r = NULL;
    size_t used = 0;
    cr_assert_eq(resp_reply_parse(bad[i], strlen(bad[i]), &used, &r), RESP_ERR,
                 "%s", bad[i]);
  }
}
