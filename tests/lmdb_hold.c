/*
 * lmdb_hold - hold the write lock of a data directory's LMDB environment,
 * so that no checkpoint can run (tests/integration/test_limits.py).
 *
 *   lmdb_hold DATA_DIR
 *
 * Opens DATA_DIR/lmdb beside the process that owns it (LMDB's lock file
 * is shared between processes), begins a write transaction, prints
 * "held" and waits until standard input ends; then aborts the
 * transaction, so nothing in the store changes.  Exit status 1 if the
 * environment cannot be opened or the transaction begun.
 */
#include "config.h"

#include <lmdb.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: lmdb_hold DATA_DIR\n");
    return 2;
  }
  char path[4096];
  if ((size_t)snprintf(path, sizeof path, "%s/lmdb", argv[1]) >= sizeof path) {
    fprintf(stderr, "lmdb_hold: %s: path too long\n", argv[1]);
    return 1;
  }
  MDB_env *env;
  MDB_txn *txn;
  int rc = mdb_env_create(&env);
  if (!rc) rc = mdb_env_set_maxdbs(env, 8);
  if (!rc) rc = mdb_env_open(env, path, MDB_NOTLS, 0644);
  if (!rc) rc = mdb_txn_begin(env, NULL, 0, &txn);
  if (rc) {
    fprintf(stderr, "lmdb_hold: %s: %s\n", path, mdb_strerror(rc));
    return 1;
  }
  printf("held\n");
  fflush(stdout);
  char line[64];
  while (fgets(line, sizeof line, stdin)) {
  }
  mdb_txn_abort(txn);
  mdb_env_close(env);
  return 0;
}
