/*
 * walutil.h - helpers shared by the log's tests (test_wal, fault/test_corrupt,
 * fault/test_faults): a logger that keeps what it is told, a configuration
 * with small segments and groups, and incompressible bytes.
 */
#ifndef CAIRN_WALUTIL_H
#define CAIRN_WALUTIL_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "limits.h"
#include "log.h"
#include "wal.h"

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_text[16384]; /* every line logged since the test began */

static inline void log_capture(void *arg, int level, const char *msg) {
  (void)arg;
  (void)level;
  pthread_mutex_lock(&log_mu);
  size_t n = strlen(log_text);
  snprintf(log_text + n, sizeof log_text - n, "%s\n", msg);
  pthread_mutex_unlock(&log_mu);
}

static const struct logger test_log = {.fn = log_capture,
                                       .level = CAIRN_LOG_DEBUG};

static inline int has_log(const char *needle) {
  pthread_mutex_lock(&log_mu);
  int found = strstr(log_text, needle) != NULL;
  pthread_mutex_unlock(&log_mu);
  return found;
}

/* A log in dir with the smallest segments and groups, stamped epoch. */
static inline void wal_cfg(struct wal_config *c, const char *dir,
                           unsigned flags, uint64_t epoch) {
  memset(c, 0, sizeof *c);
  c->dir = dir;
  c->segment_bytes = SEGMENT_BYTES_MIN;
  c->group_max_bytes = GROUP_BYTES_MIN;
  c->interval_ms = 20;
  c->epoch = epoch;
  c->flags = flags;
  c->log = &test_log;
}

/* Bytes that LZ4 cannot shrink, determined by idx. */
static inline void fill(unsigned char *p, size_t n, uint64_t idx) {
  uint64_t x = idx * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p[i] = (unsigned char)x;
  }
}

#endif /* CAIRN_WALUTIL_H */
