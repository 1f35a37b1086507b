/*
 * hash.h - hashing and checksums.  The only module that includes xxhash.
 */
#ifndef CAIRN_HASH_H
#define CAIRN_HASH_H

#include <stddef.h>
#include <stdint.h>

/* XXH3-64 of buf: table hashing and frame checksums. */
uint64_t hash64(const void *buf, size_t len);

/* XXH3-64 over the concatenation of a and b, without copying. */
uint64_t hash64_2(const void *a, size_t alen, const void *b, size_t blen);

/* XXH64 (seed 0), for formats that specify it (the dump file). */
uint64_t hash_xxh64(const void *buf, size_t len);

/* Streaming XXH64, for checksums over a whole file. */
typedef struct hash_stream hash_stream;
hash_stream *hash_stream_new(void);
void hash_stream_update(hash_stream *s, const void *buf, size_t len);
uint64_t hash_stream_digest(const hash_stream *s);
void hash_stream_free(hash_stream *s);

#endif /* CAIRN_HASH_H */
