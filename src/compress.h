/*
 * compress.h - block compression.  The only module that includes lz4.
 */
#ifndef CAIRN_COMPRESS_H
#define CAIRN_COMPRESS_H

#include <stddef.h>

/* Largest output of compress_block() for len input bytes. */
size_t compress_bound(size_t len);

/* LZ4-compress src into dst (cap bytes).  Returns the compressed length,
 * or 0 if it does not fit. */
size_t compress_block(const void *src, size_t len, void *dst, size_t cap);

/* Decompress exactly raw_len bytes from src (len bytes) into dst.
 * Returns 0, or -1 if the input is malformed or does not produce exactly
 * raw_len bytes. */
int decompress_block(const void *src, size_t len, void *dst, size_t raw_len);

#endif /* CAIRN_COMPRESS_H */
