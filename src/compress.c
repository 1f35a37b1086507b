/*
 * compress.c - LZ4 block compression.
 *
 * The only file that includes <lz4.h>.  LZ4 counts in int; every size_t
 * that crosses into it is checked against LZ4_MAX_INPUT_SIZE or INT_MAX
 * first, so no length is ever truncated.
 */
#include "config.h"

#include <stdint.h> /* not <limits.h>: -I src makes that src/limits.h */

#include <lz4.h>

#include "compress.h"

#define LZ4_INT_MAX INT32_MAX
_Static_assert(sizeof(int) == 4, "LZ4 lengths are 32-bit ints");

/* LZ4_compressBound's formula, in size_t so it holds for any len. */
size_t compress_bound(size_t len) {
  return len + len / 255 + 16;
}

size_t compress_block(const void *src, size_t len, void *dst, size_t cap) {
  if (len > LZ4_MAX_INPUT_SIZE) return 0;
  if (cap > LZ4_INT_MAX) cap = LZ4_INT_MAX;
  int n = LZ4_compress_default(src, dst, (int)len, (int)cap);
  return n > 0 ? (size_t)n : 0;
}

int decompress_block(const void *src, size_t len, void *dst, size_t raw_len) {
  if (len == 0 || len > LZ4_INT_MAX || raw_len > LZ4_INT_MAX) return -1;
  int n = LZ4_decompress_safe(src, dst, (int)len, (int)raw_len);
  return n >= 0 && (size_t)n == raw_len ? 0 : -1;
}
