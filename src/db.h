/*
 * db.h - the database handle, shared by the modules that build on it.
 */
#ifndef CAIRN_DB_H
#define CAIRN_DB_H

#include <pthread.h>
#include <stdint.h>

#include "cairn.h"
#include "limits.h"
#include "log.h"

struct table;
struct wal;

/* A namespace: a named keyspace with its own table and defaults.
 * Namespaces are created on first use and live until close. */
struct ns {
  char name[NS_NAME_MAX + 1];
  uint8_t len;
  struct table *t;
  cairn_ns_options opt;
};

struct cairn {
  char *dir;
  cairn_options opt;
  struct logger log;
  int lock_fd;             /* flock'd LOCK file: one process per directory */
  struct wal *wal;
  uint64_t epoch;

  /* Namespaces: published with release stores, read without locks. */
  pthread_mutex_t ns_mu;
  struct ns *ns[NS_COUNT_MAX];
  unsigned ns_count;

  uint64_t mem_version;    /* versions of MEMORY writes: top bit set */
  int fatal;               /* a write was logged but could not be applied */

  /* Statistics, updated with relaxed atomics. */
  uint64_t n_puts, n_dels, n_gets, n_get_hits, n_expired;

  /* Background expiry. */
  pthread_t expiry_thread;
  int expiry_running;
  pthread_mutex_t expiry_mu;
  pthread_cond_t expiry_cv;
  int stopping;
  unsigned expiry_ns, expiry_shard; /* where the sweep resumes */
  uint64_t expiry_from;
};

#endif /* CAIRN_DB_H */
