/*
 * log.h - diagnostic lines (not the write-ahead log; that is wal.h).
 */
#ifndef CAIRN_LOG_H
#define CAIRN_LOG_H

#include "cairn.h"

struct logger {
  cairn_log_fn fn; /* NULL: "cairn: LEVEL: msg" lines on stderr */
  void *arg;
  int level;       /* lines above this level are dropped */
};

void log_printf(const struct logger *lg, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(lg, ...) log_printf((lg), CAIRN_LOG_ERROR, __VA_ARGS__)
#define log_warn(lg, ...)  log_printf((lg), CAIRN_LOG_WARN, __VA_ARGS__)
#define log_info(lg, ...)  log_printf((lg), CAIRN_LOG_INFO, __VA_ARGS__)
#define log_debug(lg, ...) log_printf((lg), CAIRN_LOG_DEBUG, __VA_ARGS__)

#endif /* CAIRN_LOG_H */
