/*
 * hiredis_test.c - cairnd through hiredis (RESP2): connect, binary-safe
 * SET/GET, pipelined commands, error replies.  Usage: hiredis_test PORT.
 * Exits 0 when every check passes; prints each failure.
 */
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

static int failures;

#define CHECK(cond, ...)                                    \
  do {                                                      \
    if (!(cond)) {                                          \
      failures++;                                           \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);  \
      fprintf(stderr, __VA_ARGS__);                         \
      fputc('\n', stderr);                                  \
    }                                                       \
  } while (0)

static redisReply *cmd(redisContext *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = redisvCommand(c, fmt, ap);
  va_end(ap);
  if (!r) {
    fprintf(stderr, "FATAL: connection error: %s\n", c->errstr);
    exit(1);
  }
  return r;
}

static int is_status(redisReply *r, const char *s) {
  return r->type == REDIS_REPLY_STATUS && !strcmp(r->str, s);
}

static void test_binary(redisContext *c) {
  char val[1024];
  for (size_t i = 0; i < sizeof val; i++) val[i] = (char)(i * 7);
  val[0] = '\0';
  val[1] = '\r';
  val[2] = '\n';
  const char key[] = {'k', '\0', 'e', 'y'};
  redisReply *r = cmd(c, "SET %b %b", key, sizeof key, val, sizeof val);
  CHECK(is_status(r, "OK"), "SET binary: type %d", r->type);
  freeReplyObject(r);
  r = cmd(c, "GET %b", key, sizeof key);
  CHECK(r->type == REDIS_REPLY_STRING && r->len == sizeof val &&
            !memcmp(r->str, val, sizeof val),
        "GET binary: type %d len %zu", r->type, (size_t)r->len);
  freeReplyObject(r);
  r = cmd(c, "GET %s", "missing");
  CHECK(r->type == REDIS_REPLY_NIL, "GET missing: type %d", r->type);
  freeReplyObject(r);
  r = cmd(c, "STRLEN %b", key, sizeof key);
  CHECK(r->type == REDIS_REPLY_INTEGER && r->integer == (long long)sizeof val,
        "STRLEN: %lld", r->integer);
  freeReplyObject(r);
  /* An empty value. */
  r = cmd(c, "SET empty %b", "", (size_t)0);
  freeReplyObject(r);
  r = cmd(c, "GET empty");
  CHECK(r->type == REDIS_REPLY_STRING && r->len == 0, "GET empty");
  freeReplyObject(r);
}

static void test_pipeline(redisContext *c) {
  enum { N = 2000 };
  for (int i = 0; i < N; i++) {
    redisAppendCommand(c, "SET p:%d %d", i, i);
    redisAppendCommand(c, "INCR pctr");
  }
  redisAppendCommand(c, "MGET p:0 p:1999 nokey");
  for (int i = 0; i < N; i++) {
    redisReply *r = NULL;
    if (redisGetReply(c, (void **)&r) != REDIS_OK) {
      fprintf(stderr, "FATAL: pipeline read: %s\n", c->errstr);
      exit(1);
    }
    CHECK(is_status(r, "OK"), "pipelined SET %d", i);
    freeReplyObject(r);
    if (redisGetReply(c, (void **)&r) != REDIS_OK) exit(1);
    CHECK(r->type == REDIS_REPLY_INTEGER && r->integer == i + 1,
          "pipelined INCR %d gave %lld", i, r->integer);
    freeReplyObject(r);
  }
  redisReply *r = NULL;
  if (redisGetReply(c, (void **)&r) != REDIS_OK) exit(1);
  CHECK(r->type == REDIS_REPLY_ARRAY && r->elements == 3, "MGET shape");
  if (r->type == REDIS_REPLY_ARRAY && r->elements == 3) {
    CHECK(!strcmp(r->element[0]->str, "0"), "MGET[0]");
    CHECK(!strcmp(r->element[1]->str, "1999"), "MGET[1]");
    CHECK(r->element[2]->type == REDIS_REPLY_NIL, "MGET[2]");
  }
  freeReplyObject(r);
}

static void test_errors(redisContext *c) {
  redisReply *r = cmd(c, "NOSUCHCMD a");
  CHECK(r->type == REDIS_REPLY_ERROR &&
            !strcmp(r->str, "ERR unknown command 'NOSUCHCMD', with args "
                            "beginning with: 'a' "),
        "unknown command: %s", r->str ? r->str : "(none)");
  freeReplyObject(r);
  r = cmd(c, "GET");
  CHECK(r->type == REDIS_REPLY_ERROR &&
            !strcmp(r->str, "ERR wrong number of arguments for 'get' command"),
        "arity: %s", r->str ? r->str : "(none)");
  freeReplyObject(r);
  r = cmd(c, "LPUSH hl x");
  freeReplyObject(r);
  r = cmd(c, "GET hl");
  CHECK(r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "WRONGTYPE ", 10),
        "wrongtype: %s", r->str ? r->str : "(none)");
  freeReplyObject(r);
  r = cmd(c, "INCR hl");
  CHECK(r->type == REDIS_REPLY_ERROR, "INCR on a list");
  freeReplyObject(r);
  r = cmd(c, "PING");
  CHECK(is_status(r, "PONG"), "PING after errors");
  freeReplyObject(r);
  /* Errors inside a pipeline keep their places. */
  redisAppendCommand(c, "SET a 1");
  redisAppendCommand(c, "INCRBY a notanumber");
  redisAppendCommand(c, "GET a");
  const int want[] = {REDIS_REPLY_STATUS, REDIS_REPLY_ERROR,
                      REDIS_REPLY_STRING};
  for (int i = 0; i < 3; i++) {
    if (redisGetReply(c, (void **)&r) != REDIS_OK) exit(1);
    CHECK(r->type == want[i], "pipelined reply %d type %d", i, r->type);
    freeReplyObject(r);
  }
  r = cmd(c, "HSET h f1 v1 f2 v2");
  CHECK(r->type == REDIS_REPLY_INTEGER && r->integer == 2, "HSET");
  freeReplyObject(r);
  r = cmd(c, "HGETALL h");
  CHECK(r->type == REDIS_REPLY_ARRAY && r->elements == 4, "HGETALL");
  freeReplyObject(r);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s PORT\n", argv[0]);
    return 2;
  }
  struct timeval tv = {10, 0};
  redisContext *c = redisConnectWithTimeout("127.0.0.1", atoi(argv[1]), tv);
  if (!c || c->err) {
    fprintf(stderr, "FATAL: connect: %s\n", c ? c->errstr : "no memory");
    return 1;
  }
  redisSetTimeout(c, tv);
  test_binary(c);
  test_pipeline(c);
  test_errors(c);
  redisFree(c);
  printf("hiredis_test: %s\n", failures ? "FAILED" : "all checks passed");
  return failures ? 1 : 0;
}
