/*
 * util.c - assertions, clocks and error messages.
 */
#include "config.h"

#include <string.h>
#include <time.h>

#include "cairn.h"
#include "util.h"

void cairn__assert_fail(const char *what, const char *file, int line) {
  fprintf(stderr, "cairn: assertion failed: %s (%s:%d)\n", what, file, line);
  fflush(stderr);
  abort();
}

int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

CAIRN_EXPORT const char *cairn_strerror(int err) {
  switch (err) {
  case 0:
    return "success";
#define CAIRN_X_CASE(name, value, msg) \
  case name:                           \
    return msg;
    CAIRN_ERRORS(CAIRN_X_CASE)
#undef CAIRN_X_CASE
  }
  if (err < 0 && err > -4096) return strerror(-err);
  return "unknown error";
}
