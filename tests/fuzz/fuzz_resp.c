/*
 * fuzz_resp.c - libFuzzer target for the RESP parser, writer and reader.
 *
 * The first input byte picks how the rest is split into chunks and which
 * bulk limit applies.  The rest is parsed as requests twice, all at once
 * and chunk by chunk as a connection would receive it; both must give the
 * same commands and the same outcome.  Each command is written back as an
 * array of bulks and read with the reply reader, which must give the same
 * arguments.  Finally the rest is read as a stream of replies.  Any broken
 * invariant aborts.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I include \
 *     -iquote src -I build tests/fuzz/fuzz_resp.c src/resp.c src/util.c
 *
 * Built with -DFUZZ_REPLAY it replays files instead (fuzz.h).
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "fuzz.h"
#include "resp.h"
#include "util.h"

struct outcome {
  uint64_t hash;     /* of every command's arguments, in order */
  size_t commands;
  int rc;            /* last result that was not RESP_OK */
  char err[80];
};

static uint64_t mix(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

/* The command must survive writing as bulks and reading back. */
static void round_trip(const struct resp_cmd *c) {
  struct resp_buf b;
  resp_buf_init(&b);
  resp_add_array(&b, c->argc);
  for (int i = 0; i < c->argc; i++) resp_add_bulk(&b, c->argv[i], c->argvlen[i]);
  if (b.oom) {
    resp_buf_free(&b);
    return;
  }
  struct resp_reply *r = NULL;
  size_t used = 0;
  CHECK(resp_reply_parse(b.data, b.len, &used, &r) == RESP_OK);
  CHECK(used == b.len && r->type == RESP_REPLY_ARRAY);
  CHECK(r->elements == (size_t)c->argc);
  for (int i = 0; i < c->argc; i++) {
    CHECK(r->element[i]->len == c->argvlen[i]);
    CHECK(memcmp(r->element[i]->str, c->argv[i], c->argvlen[i]) == 0);
  }
  resp_reply_free(r);
  resp_buf_free(&b);
}

static void on_command(struct outcome *o, const struct resp_cmd *c,
                       size_t used, size_t have) {
  CHECK(used <= have && used > 0);
  CHECK(c->argc >= 1 && c->argc <= RESP_MULTIBULK_MAX);
  size_t total = 0;
  for (int i = 0; i < c->argc; i++) {
    total += c->argvlen[i];
    o->hash = mix(o->hash, &c->argvlen[i], sizeof c->argvlen[i]);
    o->hash = mix(o->hash, c->argv[i], c->argvlen[i]);
  }
  /* Arguments never hold more bytes than the command took. */
  CHECK(total <= used);
  o->commands++;
  round_trip(c);
}

/* Feed data in chunks of sizes drawn from seed (0: all at once). */
static void parse_requests(const uint8_t *data, size_t len, unsigned seed,
                           long long bulk_max, struct outcome *o) {
  memset(o, 0, sizeof *o);
  o->hash = 0xcbf29ce484222325ull;
  o->rc = RESP_AGAIN;
  struct resp_parser p;
  resp_parser_init(&p, bulk_max);
  struct resp_cmd cmd = {0};
  char *buf = malloc(len ? len : 1);
  CHECK(buf);
  size_t have = 0, sent = 0;
  uint32_t rng = seed * 2654435761u + 1;
  while (sent < len && o->rc >= 0) {
    rng = rng * 1103515245u + 12345u;
    size_t k = seed ? 1 + (rng >> 16) % (seed & 0x3f ? (seed & 0x3f) * 4 : 1) : len;
    k = MIN(k, len - sent);
    memcpy(buf + have, data + sent, k);
    have += k;
    sent += k;
    for (;;) {
      size_t used = 0;
      int rc = resp_parse(&p, buf, have, &used, &cmd);
      if (rc == RESP_OK) on_command(o, &cmd, used, have);
      if (rc == RESP_OK || rc == RESP_AGAIN) {
        CHECK(used <= have);
        memmove(buf, buf + used, have - used);
        have -= used;
      }
      if (rc != RESP_OK) {
        o->rc = rc;
        break;
      }
    }
  }
  if (o->rc == RESP_ERR) {
    snprintf(o->err, sizeof o->err, "%s", resp_parser_error(&p));
    CHECK(strncmp(o->err, "Protocol error: ", 16) == 0);
  }
  free(buf);
  resp_cmd_free(&cmd);
  resp_parser_free(&p);
}

static size_t check_reply(const struct resp_reply *r, int depth) {
  CHECK(depth <= RESP_REPLY_DEPTH_MAX);
  CHECK(r->type >= RESP_REPLY_STRING && r->type <= RESP_REPLY_BIGNUM);
  CHECK(!r->str || r->str[r->len] == '\0');
  size_t n = 1;
  for (size_t i = 0; i < r->elements; i++) n += check_reply(r->element[i], depth + 1);
  return n;
}

static void parse_replies(const uint8_t *data, size_t len) {
  const char *s = (const char *)data;
  size_t pos = 0;
  /* Each reply takes at least 3 bytes. */
  while (pos < len) {
    struct resp_reply *r = NULL;
    size_t used = 0;
    int rc = resp_reply_parse(s + pos, len - pos, &used, &r);
    if (rc != RESP_OK) {
      CHECK(r == NULL);
      break;
    }
    CHECK(used >= 3 && used <= len - pos);
    check_reply(r, 0);
    resp_reply_free(r);
    /* A reply is complete only at its last byte. */
    struct resp_reply *r2 = NULL;
    size_t used2 = 0;
    CHECK(resp_reply_parse(s + pos, used - 1, &used2, &r2) == RESP_AGAIN);
    pos += used;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  unsigned seed = data[0];
  long long bulk_max = seed & 0x80 ? 16 : 0;
  data++;
  size--;

  struct outcome whole, pieces;
  parse_requests(data, size, 0, bulk_max, &whole);
  parse_requests(data, size, seed | 1, bulk_max, &pieces);
  CHECK(whole.commands == pieces.commands);
  CHECK(whole.hash == pieces.hash);
  CHECK(whole.rc == pieces.rc);
  CHECK(strcmp(whole.err, pieces.err) == 0);

  parse_replies(data, size);
  return 0;
}
