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

#define DB_STRIPES 16u

enum { CNT_PUTS, CNT_DELS, CNT_GETS, CNT_GET_HITS, CNT_EXPIRED, CNT_N };

struct db_counters {
  uint64_t n[CNT_N];
} __attribute__((aligned(64)));

/* Add v to counter c of this thread's stripe (relaxed atomics). */
void db_count(struct cairn *db, unsigned c, uint64_t v);

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

  /* Statistics: counters striped by thread, so that readers on different
   * cores do not bounce one cache line; summed by cairn_stats. */
  struct db_counters counters[DB_STRIPES];

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
