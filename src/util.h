/*
 * util.h - small helpers shared by every module.
 */
#ifndef CAIRN_UTIL_H
#define CAIRN_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Stays compiled in: an assertion is for a bug, never for input. */
#define cairn_assert(cond)                                                   \
  do {                                                                       \
    if (__builtin_expect(!(cond), 0)) cairn__assert_fail(#cond, __FILE__, __LINE__); \
  } while (0)

__attribute__((noreturn)) void cairn__assert_fail(const char *what,
                                                  const char *file, int line);

/* Wall-clock milliseconds since the Unix epoch. */
int64_t now_ms(void);

/* Monotonic nanoseconds, for intervals. */
uint64_t mono_ns(void);

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#endif /* CAIRN_UTIL_H */
