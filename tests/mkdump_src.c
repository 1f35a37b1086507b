/*
 * mkdump_src - build a source data directory for tests/test_dumptools.sh:
 * strings, every collection type, lifespans, max-idle, deletes and a
 * batch, half of it checkpointed into the store and half only in the log.
 * It exits without cairn_close, so the log tail matters, as after a crash.
 *
 *   mkdump_src DIR
 *   mkdump_src --reverse IN OUT
 *
 * --reverse copies the dump IN to OUT with its entries in reverse order,
 * so that a test can restore a dump that is not in the store's key order.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cairn.h"
#include "coll.h"
#include "dump.h"

#define CHECK(what, rc)                                                  \
  do {                                                                   \
    int rc_ = (rc);                                                      \
    if (rc_) {                                                           \
      fprintf(stderr, "mkdump_src: %s: %s\n", what, cairn_strerror(rc_)); \
      exit(1);                                                           \
    }                                                                    \
  } while (0)

static void put(cairn *db, const char *ns, const char *k, const char *v,
                uint64_t ttl_ms, uint64_t idle_ms) {
  cairn_write w = {.ttl_ms = ttl_ms, .max_idle_ms = idle_ms};
  CHECK(k, cairn_put(db, ns, k, strlen(k), v, strlen(v), &w));
}

static void coll(cairn *db, const char *ns, const char *k, int type,
                 struct coll_delta *d) {
  CHECK("delta", d->err);
  CHECK(k, cairn_coll_apply(db, ns, k, strlen(k), type, d->buf, d->len,
                            NULL));
  coll_delta_free(d);
  coll_delta_init(d);
}

/* Part one: what the checkpoint holds. */
static void part_one(cairn *db) {
  char k[32], v[64];
  struct coll_delta d;
  coll_delta_init(&d);
  for (int i = 0; i < 40; i++) {
    snprintf(k, sizeof k, "s%02d", i);
    snprintf(v, sizeof v, "value-%d", i);
    put(db, NULL, k, v, i % 3 == 0 ? 3600000 : 0, i % 4 == 0 ? 7200000 : 0);
  }
  coll_hset(&d, "f1", 2, "v1", 2);
  coll_hset(&d, "f2", 2, "v2", 2);
  coll(db, "sessions", "h", CAIRN_TYPE_HASH, &d);
  coll_sadd(&d, "a", 1);
  coll_sadd(&d, "b", 1);
  coll(db, "sessions", "set", CAIRN_TYPE_SET, &d);
  coll_zset(&d, 1.5, "one", 3);
  coll_zset(&d, -2, "minus", 5);
  coll(db, "sessions", "z", CAIRN_TYPE_ZSET, &d);
  coll_push(&d, 1, "x", 1);
  coll_push(&d, 1, "y", 1);
  coll(db, "sessions", "l", CAIRN_TYPE_LIST, &d);
  put(db, "tokens", "gone-soon", "x", 1, 0);
  const char bin[] = {'b', 0, '\n', 'k'};
  cairn_write w = {.ttl_ms = 600000};
  CHECK("bin", cairn_put(db, "tokens", bin, sizeof bin, "\x01\x02\0", 3, &w));
}

/* Part two: only in the log. */
static void part_two(cairn *db) {
  struct coll_delta d;
  coll_delta_init(&d);
  put(db, NULL, "s01", "changed", 0, 0);
  CHECK("del", cairn_del(db, NULL, "s02", 3, NULL));
  put(db, NULL, "late", "in the log", 900000, 0);
  put(db, "tokens", "idle", "sliding", 0, 300000);
  cairn_write w = {.ttl_ms = 1800000, .flags = CAIRN_W_TTL};
  CHECK("expire", cairn_expire(db, NULL, "s05", 3, &w));
  coll_hset(&d, "f3", 2, "v3", 2);
  coll_hdel(&d, "f1", 2);
  coll(db, "sessions", "h", CAIRN_TYPE_HASH, &d);
  coll_srem(&d, "a", 1);
  coll_srem(&d, "b", 1);
  coll(db, "sessions", "set", CAIRN_TYPE_SET, &d); /* emptied: deleted */
  coll_push(&d, 0, "head", 4);
  coll(db, "sessions", "l", CAIRN_TYPE_LIST, &d);
  coll_zset(&d, 3, "new", 3);
  coll(db, "sessions", "z2", CAIRN_TYPE_ZSET, &d);
  cairn_batch *b;
  CHECK("batch", cairn_batch_new(db, &b));
  CHECK("batch", cairn_batch_put(b, "tokens", "b1", 2, "one", 3, NULL));
  CHECK("batch", cairn_batch_del(b, NULL, "s03", 3, NULL));
  CHECK("batch", cairn_batch_commit(b, NULL));
  cairn_batch_free(b);
  put(db, "tokens", "short", "dies", 1, 0);
}

/* The entries of a small dump, kept as copies. */
struct kept {
  struct dump_entry e;
  char *mem;
};

static void keep(struct kept *k, const struct dump_entry *e) {
  k->e = *e;
  k->mem = malloc(e->ns_len + e->klen + e->vlen + 1);
  if (!k->mem) CHECK("copy", CAIRN_ENOMEM);
  memcpy(k->mem, e->ns, e->ns_len);
  memcpy(k->mem + e->ns_len, e->key, e->klen);
  if (e->vlen) memcpy(k->mem + e->ns_len + e->klen, e->val, e->vlen);
  k->e.ns = k->mem;
  k->e.key = k->mem + e->ns_len;
  k->e.val = k->mem + e->ns_len + e->klen;
}

static int reverse(const char *in, const char *out) {
  static char buf[1 << 16];
  static struct kept v[4096];
  size_t n = 0, len;
  FILE *f = fopen(in, "rb"), *g = fopen(out, "wb");
  struct dump_reader *r;
  if (!f || !g) CHECK(in, CAIRN_EINVAL);
  CHECK("reader", dump_reader_new(&r));
  while ((len = fread(buf, 1, sizeof buf, f)) > 0) {
    CHECK(in, dump_reader_feed(r, buf, len));
    struct dump_entry e;
    int rc;
    while ((rc = dump_reader_next(r, &e)) == 1) {
      if (n == sizeof v / sizeof *v) CHECK("too many entries", CAIRN_EINVAL);
      keep(&v[n++], &e);
    }
    CHECK(in, rc);
  }
  CHECK(in, dump_reader_end(r));
  struct dump_header h = *dump_reader_header(r);
  struct dump_writer *w;
  CHECK(out, dump_writer_new(g, &h, &w));
  for (size_t i = n; i-- > 0;) CHECK(out, dump_writer_add(w, &v[i].e));
  CHECK(out, dump_writer_finish(w, NULL));
  for (size_t i = 0; i < n; i++) free(v[i].mem);
  dump_reader_free(r);
  fclose(f);
  return fclose(g) ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc == 4 && !strcmp(argv[1], "--reverse")) return reverse(argv[2], argv[3]);
  if (argc != 2) {
    fprintf(stderr, "usage: mkdump_src DIR | --reverse IN OUT\n");
    return 2;
  }
  cairn_options o;
  cairn_options_init(&o);
  o.flags |= CAIRN_OPEN_NO_EXPIRY | CAIRN_OPEN_NO_URING;
  o.log_level = CAIRN_LOG_ERROR;
  cairn *db;
  CHECK(argv[1], cairn_open(argv[1], &o, &db));
  part_one(db);
  CHECK("checkpoint", cairn_checkpoint(db));
  part_two(db);
  CHECK("sync", cairn_sync(db));
  usleep(20 * 1000); /* let the 1 ms lifespans run out */
  /* No cairn_close: the log tail is what a crash would leave. */
  _exit(0);
}
