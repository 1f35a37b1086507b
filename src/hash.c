/*
 * hash.c - hashing and checksums over xxHash (0.8.x).
 *
 * The only file that includes <xxhash.h>, so a change of hash library or
 * version touches nothing else.  XXH3-64 is stable across xxHash releases
 * from 0.8.0 on, which is what lets it stand in on-disk checksums.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "hash.h"

/* Below this many bytes a copy into a stack buffer and one one-shot call is
 * cheaper than the streaming state (reset and digest cost more than a small
 * memcpy).  Frame headers with small payloads take this path. */
#define HASH2_COPY_MAX 256u

uint64_t hash64(const void *buf, size_t len) {
  return XXH3_64bits(buf, len);
}

uint64_t hash64_2(const void *a, size_t alen, const void *b, size_t blen) {
  if (alen + blen <= HASH2_COPY_MAX && alen + blen >= alen) {
    unsigned char tmp[HASH2_COPY_MAX];
    if (alen) memcpy(tmp, a, alen);
    if (blen) memcpy(tmp + alen, b, blen);
    return XXH3_64bits(tmp, alen + blen);
  }
  XXH3_state_t st;
  XXH3_INITSTATE(&st);
  /* These fail only on a NULL state, or a NULL buffer with a nonzero
   * length: bugs the caller would have hit in hash64 too. */
  (void)XXH3_64bits_reset(&st);
  (void)XXH3_64bits_update(&st, a, alen);
  (void)XXH3_64bits_update(&st, b, blen);
  return XXH3_64bits_digest(&st);
}

uint64_t hash_xxh64(const void *buf, size_t len) {
  return XXH64(buf, len, 0);
}

/* ------------------------------------------------------------------------
 * Streaming XXH64.
 * --------------------------------------------------------------------- */

struct hash_stream {
  XXH64_state_t st;
};

/* Returns NULL when out of memory. */
hash_stream *hash_stream_new(void) {
  hash_stream *s = malloc(sizeof *s);
  if (!s) return NULL;
  XXH64_reset(&s->st, 0);
  return s;
}

void hash_stream_update(hash_stream *s, const void *buf, size_t len) {
  if (len == 0) return;
  XXH64_update(&s->st, buf, len);
}

uint64_t hash_stream_digest(const hash_stream *s) {
  return XXH64_digest(&s->st);
}

void hash_stream_free(hash_stream *s) {
  free(s);
}
