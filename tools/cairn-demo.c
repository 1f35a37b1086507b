/*
 * cairn-demo - a short tour of libcairn on a data directory.
 *
 * It opens the directory, writes a few sessions, a login-failure counter
 * and a single-use code with durability fsync, closes, reopens, and prints
 * what recovery found.  Run it twice to see the counter carry over.
 *
 * Usage: cairn-demo DIR
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"

static int check(int rc, const char *what) {
  if (rc != 0 && rc != CAIRN_ENOTFOUND) {
    fprintf(stderr, "cairn-demo: %s: %s\n", what, cairn_strerror(rc));
    exit(EXIT_FAILURE);
  }
  return rc;
}

static void write_some(cairn *db) {
  cairn_ns_options sessions = {CAIRN_DURABILITY_FSYNC, 30 * 60 * 1000, 0, 0};
  check(cairn_ns_define(db, "sessions", &sessions), "define sessions");
  for (int i = 0; i < 3; i++) {
    char key[32], val[64];
    snprintf(key, sizeof key, "session-%d", i);
    snprintf(val, sizeof val, "{\"user\":\"user%d\",\"ip\":\"127.0.0.1\"}", i);
    check(cairn_put(db, "sessions", key, strlen(key), val, strlen(val), NULL),
          "put session");
  }
  int64_t failures;
  cairn_write ttl = {.ttl_ms = 15 * 60 * 1000};
  check(cairn_incr(db, "loginFailures", "alice", 5, 1, &failures, &ttl),
        "incr");
  cairn_write once = {.ttl_ms = 60 * 1000, .cond = CAIRN_IF_ABSENT};
  int rc = cairn_put(db, "codes", "code-42", 7, "alice", 5, &once);
  if (rc != CAIRN_EEXISTS) check(rc, "put code");
  printf("wrote 3 sessions, a single-use code, login failures for alice: "
         "%" PRId64 "\n", failures);
}

static int print_entry(void *arg, const void *key, size_t klen,
                       const void *val, size_t vlen, uint64_t version,
                       int64_t expire_at_ms) {
  (void)arg;
  printf("  %.*s = %.*s (version %" PRIu64 ", %s)\n", (int)klen,
         (const char *)key, (int)vlen, (const char *)val, version,
         expire_at_ms ? "expires" : "no expiry");
  return 0;
}

static void read_back(cairn *db) {
  struct cairn_stats st;
  check(cairn_stats(db, &st), "stats");
  printf("recovered %" PRIu64 " log records; %" PRIu64 " live entries; "
         "log I/O: %s\n", st.recovered_records, st.entries,
         st.uring ? "io_uring" : "pwritev + fdatasync");
  uint64_t cursor = 0;
  printf("sessions:\n");
  do {
    check(cairn_scan(db, "sessions", NULL, 0, &cursor, 100, print_entry, NULL),
          "scan");
  } while (cursor != 0);
  cairn_value v;
  if (check(cairn_get(db, "loginFailures", "alice", 5, &v), "get") == 0) {
    printf("login failures for alice: %s\n", (char *)v.data);
    cairn_value_free(&v);
  }
  if (check(cairn_take(db, "codes", "code-42", 7, &v, NULL), "take") == 0) {
    printf("took single-use code-42 (user %s); a second take finds: %s\n",
           (char *)v.data,
           cairn_strerror(cairn_take(db, "codes", "code-42", 7, NULL, NULL)));
    cairn_value_free(&v);
  }
}

int main(int argc, char **argv) {
  if (argc != 2 || strcmp(argv[1], "-h") == 0 ||
      strcmp(argv[1], "--help") == 0) {
    fprintf(argc == 2 ? stdout : stderr, "usage: cairn-demo DIR\n");
    return argc == 2 ? EXIT_SUCCESS : EXIT_FAILURE;
  }
  cairn *db;
  check(cairn_open(argv[1], NULL, &db), "open");
  write_some(db);
  cairn_close(db);
  printf("closed; reopening %s\n", argv[1]);
  check(cairn_open(argv[1], NULL, &db), "reopen");
  read_back(db);
  cairn_close(db);
  return EXIT_SUCCESS;
}
