/*
 * log.c - diagnostic lines.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>

#include "log.h"

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_printf(const struct logger *lg, int level, const char *fmt, ...) {
  int max = lg ? lg->level : CAIRN_LOG_INFO;
  if (level > max) return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (lg && lg->fn) {
    lg->fn(lg->arg, level, msg);
    return;
  }
  if (level < 0 || level > CAIRN_LOG_DEBUG) level = CAIRN_LOG_INFO;
  fprintf(stderr, "cairn: %s: %s\n", level_names[level], msg);
}
