/*
 * fuzz.h - what every fuzz target shares: the entry point libFuzzer
 * calls, CHECK (an invariant; aborting is how a target reports), and,
 * built with -DFUZZ_REPLAY (any compiler, no libFuzzer), a main that
 * runs the files named on its command line once each, so "make check"
 * can replay the seed corpus.  Include it once, in the target.
 */
#ifndef CAIRN_FUZZ_H
#define CAIRN_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)           \
  do {                     \
    if (!(c)) abort();     \
  } while (0)

#ifdef FUZZ_REPLAY
int main(int argc, char **argv) {
  static uint8_t buf[1 << 20];
  for (int i = 1; i < argc; i++) {
    FILE *f = fopen(argv[i], "rb");
    if (!f) {
      perror(argv[i]);
      return EXIT_FAILURE;
    }
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
  }
  return EXIT_SUCCESS;
}
#endif

#endif /* CAIRN_FUZZ_H */
