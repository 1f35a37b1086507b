/*
 * fuzz_coll.c - libFuzzer target for the collection blob and delta codecs.
 *
 * Input: byte 0 picks the type (low 2 bits) and byte 1..2 where the rest
 * splits into a blob and a delta; byte 3 picks a split point inside the
 * delta.  The blob is iterated and searched, the delta checked and
 * applied.  Invariants, any broken one aborts:
 *   - coll_iter, coll_find and coll_apply agree on whether the blob is valid;
 *   - coll_delta_check and coll_apply agree on whether the delta is valid;
 *   - an applied result iterates cleanly with the count it declares, is
 *     NULL exactly when empty, is already canonical (an empty delta copies
 *     it byte for byte), and keeps fields/members unique if they were;
 *   - applying the delta in two pieces gives the same blob as at once.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I include \
 *     -iquote src -I build tests/fuzz/fuzz_coll.c src/coll.c src/util.c -lm
 *
 * Built with -DFUZZ_REPLAY it replays files instead (fuzz.h).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "coll.h"
#include "fuzz.h"
#include "util.h"

/* Iterate fully: the element count, or CAIRN_ECORRUPT. */
static long walk(int type, const void *b, size_t len) {
  struct coll_iter it;
  long n = coll_iter_init(&it, type, b, len);
  if (n < 0) return n;
  struct coll_elem e;
  long seen = 0;
  int rc;
  while ((rc = coll_next(&it, &e)) == 1) {
    CHECK((const uint8_t *)e.a >= (const uint8_t *)b &&
          (const uint8_t *)e.a + e.alen <= (const uint8_t *)b + len);
    seen++;
  }
  if (rc < 0) return rc;
  CHECK(seen == n);
  return n;
}

/* Keys are unique (quadratic, but inputs are small). */
static int unique(int type, const void *b, size_t len) {
  if (type == COLL_LIST || len == 0) return 1;
  struct coll_iter it, jt;
  struct coll_elem e, f;
  if (coll_iter_init(&it, type, b, len) < 0) return 0;
  for (long i = 0; coll_next(&it, &e) == 1; i++) {
    CHECK(coll_iter_init(&jt, type, b, len) > 0);
    for (long j = 0; coll_next(&jt, &f) == 1 && j < i; j++)
      if (e.alen == f.alen && (e.alen == 0 || !memcmp(e.a, f.a, e.alen)))
        return 0;
  }
  return 1;
}

/* A successful result must be a clean, canonical blob. */
static void check_result(int type, void *out, size_t outlen) {
  CHECK((out == NULL) == (outlen == 0));
  long n = walk(type, out, outlen);
  CHECK(n >= 0);
  CHECK((n == 0) == (outlen == 0));
  void *again = NULL;
  size_t againlen = 0;
  int rc = coll_apply(type, out, outlen, NULL, 0, &again, &againlen);
  if (rc == CAIRN_ENOMEM) return;
  CHECK(rc == 0 && againlen == outlen);
  CHECK(outlen == 0 || memcmp(again, out, outlen) == 0);
  free(again);
}

static void two_pieces(int type, const uint8_t *blob, size_t blen,
                       const uint8_t *delta, size_t dlen, size_t cut,
                       const void *whole, size_t wlen) {
  if (coll_delta_check(type, delta, cut) != 0) return;
  void *mid = NULL, *end = NULL;
  size_t midlen = 0, endlen = 0;
  if (coll_apply(type, blob, blen, delta, cut, &mid, &midlen) != 0) return;
  int rc = coll_apply(type, mid, midlen, delta + cut, dlen - cut, &end,
                      &endlen);
  if (rc == 0) {
    CHECK(endlen == wlen);
    CHECK(wlen == 0 || memcmp(end, whole, wlen) == 0);
    free(end);
  }
  free(mid);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 4) return 0;
  int type = COLL_HASH + (data[0] & 3);
  size_t rest = size - 4;
  size_t blen = rest ? ((size_t)data[1] | (size_t)data[2] << 8) % (rest + 1)
                     : 0;
  const uint8_t *blob = data + 4, *delta = blob + blen;
  size_t dlen = rest - blen;
  size_t cut = dlen ? data[3] % (dlen + 1) : 0;

  long n = walk(type, blob, blen);
  CHECK(n >= 0 || n == CAIRN_ECORRUPT);
  struct coll_elem e;
  int f = coll_find(type, blob, blen, delta, MIN(dlen, 4), &e);
  CHECK(n < 0 ? f == CAIRN_ECORRUPT : (f == 0 || f == 1));
  if (f == 1) CHECK(e.alen == MIN(dlen, 4) && !memcmp(e.a, delta, e.alen));

  int chk = coll_delta_check(type, delta, dlen);
  CHECK(chk == 0 || chk == CAIRN_ECORRUPT);
  void *out = NULL;
  size_t outlen = 0;
  int rc = coll_apply(type, blob, blen, delta, dlen, &out, &outlen);
  if (chk != 0 || n < 0) {
    CHECK(rc == CAIRN_ECORRUPT);
    return 0;
  }
  CHECK(rc == 0 || rc == CAIRN_EINVAL || rc == CAIRN_ENOMEM);
  if (rc != 0) return 0;
  check_result(type, out, outlen);
  if (unique(type, blob, blen)) CHECK(unique(type, out, outlen));
  two_pieces(type, blob, blen, delta, dlen, cut, out, outlen);
  free(out);
  return 0;
}
