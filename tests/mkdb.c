/*
 * mkdb - build a data directory for tests/test_tools.sh.
 *
 *   mkdb DIR [-n N] [--ns NAME] [--ttl MS] [--idle MS] [--vsize BYTES]
 *            [--batch K] [--coll] [--segment-bytes B]
 *            [--checkpoint] [--close] [--hold]
 *
 * Writes N puts "key-I" (values of vsize pseudo-random letters) into namespace NAME, then
 * optionally one batch of K puts ("batch-I") and two collection deltas
 * (an hset on "h", an sadd on "s"), all with FSYNC durability.  Then:
 *   --checkpoint  checkpoint first (the store gets the entries);
 *   --close       close the database (checkpoints, and the log is done);
 *   --hold        print "ready" and sleep, holding the directory, until
 *                 killed;
 *   otherwise     exit without closing, so the log holds every record
 *                 after the checkpoint (no checkpoint runs on its own:
 *                 its thresholds are set out of reach).
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cairn.h"
#include "coll.h"

static void die(int rc, const char *what) {
  if (rc == 0) return;
  fprintf(stderr, "mkdb: %s: %s\n", what, cairn_strerror(rc));
  exit(EXIT_FAILURE);
}

struct mk {
  const char *ns;
  unsigned long n, batch;
  uint64_t ttl, idle, vsize, segment_bytes;
  int coll, checkpoint, close_db, hold;
};

static void write_puts(cairn *db, const struct mk *m, const char *val) {
  cairn_write w = {.ttl_ms = m->ttl, .max_idle_ms = m->idle};
  for (unsigned long i = 0; i < m->n; i++) {
    char key[32];
    snprintf(key, sizeof key, "key-%lu", i);
    die(cairn_put(db, m->ns, key, strlen(key), val, m->vsize, &w), "put");
  }
}

static void write_batch(cairn *db, const struct mk *m, const char *val) {
  cairn_batch *b;
  cairn_write w = {.ttl_ms = m->ttl, .max_idle_ms = m->idle};
  die(cairn_batch_new(db, &b), "batch");
  for (unsigned long i = 0; i < m->batch; i++) {
    char key[32];
    snprintf(key, sizeof key, "batch-%lu", i);
    die(cairn_batch_put(b, m->ns, key, strlen(key), val, m->vsize, &w),
        "batch put");
  }
  die(cairn_batch_commit(b, NULL), "batch commit");
  cairn_batch_free(b);
}

static void write_colls(cairn *db, const struct mk *m) {
  struct coll_delta d;
  coll_delta_init(&d);
  coll_hset(&d, "field", 5, "value", 5);
  die(d.err, "hset delta");
  die(cairn_coll_apply(db, m->ns, "h", 1, CAIRN_TYPE_HASH, d.buf, d.len,
                       NULL), "hset");
  coll_delta_free(&d);
  coll_delta_init(&d);
  coll_sadd(&d, "member", 6);
  die(d.err, "sadd delta");
  die(cairn_coll_apply(db, m->ns, "s", 1, CAIRN_TYPE_SET, d.buf, d.len,
                       NULL), "sadd");
  coll_delta_free(&d);
}

static int parse(int argc, char **argv, struct mk *m) {
  static const struct option opts[] = {
      {"ns", required_argument, NULL, 'N'},
      {"ttl", required_argument, NULL, 't'},
      {"idle", required_argument, NULL, 'i'},
      {"vsize", required_argument, NULL, 'v'},
      {"batch", required_argument, NULL, 'b'},
      {"segment-bytes", required_argument, NULL, 'S'},
      {"coll", no_argument, NULL, 'c'},
      {"checkpoint", no_argument, NULL, 'k'},
      {"close", no_argument, NULL, 'C'},
      {"hold", no_argument, NULL, 'H'},
      {NULL, 0, NULL, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "n:", opts, NULL)) != -1) {
    switch (c) {
    case 'n': m->n = strtoul(optarg, NULL, 10); break;
    case 'N': m->ns = optarg; break;
    case 't': m->ttl = strtoull(optarg, NULL, 10); break;
    case 'i': m->idle = strtoull(optarg, NULL, 10); break;
    case 'v': m->vsize = strtoull(optarg, NULL, 10); break;
    case 'b': m->batch = strtoul(optarg, NULL, 10); break;
    case 'S': m->segment_bytes = strtoull(optarg, NULL, 10); break;
    case 'c': m->coll = 1; break;
    case 'k': m->checkpoint = 1; break;
    case 'C': m->close_db = 1; break;
    case 'H': m->hold = 1; break;
    default: return -1;
    }
  }
  return optind + 1 == argc ? 0 : -1;
}

int main(int argc, char **argv) {
  struct mk m = {.ns = "default", .n = 10, .vsize = 8};
  if (parse(argc, argv, &m) != 0 || m.vsize > (1u << 20)) {
    fprintf(stderr, "usage: mkdb DIR [-n N] [--ns NAME] [--ttl MS] "
            "[--idle MS] [--vsize B] [--batch K] [--coll] "
            "[--segment-bytes B] [--checkpoint] [--close] [--hold]\n");
    return EXIT_FAILURE;
  }
  cairn_options o;
  cairn_options_init(&o);
  o.log_level = CAIRN_LOG_WARN;
  o.checkpoint_bytes = 1ull << 40;
  o.checkpoint_interval_ms = UINT32_MAX;
  if (m.segment_bytes) o.segment_bytes = m.segment_bytes;
  cairn *db;
  die(cairn_open(argv[optind], &o, &db), "open");
  char *val = malloc(m.vsize + 1);
  if (!val) die(CAIRN_ENOMEM, "value");
  /* Pseudo-random bytes: LZ4 must not shrink them, so that --vsize
   * fills segments as asked. */
  uint32_t x = 12345;
  for (uint64_t i = 0; i < m.vsize; i++) {
    x = x * 1103515245u + 12345u;
    val[i] = (char)('a' + (x >> 16) % 26);
  }
  write_puts(db, &m, val);
  if (m.batch) write_batch(db, &m, val);
  if (m.coll) write_colls(db, &m);
  free(val);
  if (m.checkpoint) die(cairn_checkpoint(db), "checkpoint");
  if (m.hold) {
    printf("ready\n");
    fflush(stdout);
    for (;;) pause();
  }
  if (m.close_db) cairn_close(db);
  /* Without --close, leave as a crash would: every write is durable. */
  _exit(EXIT_SUCCESS);
}
