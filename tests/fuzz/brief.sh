#!/bin/sh
# Fuzz every libFuzzer target briefly (FUZZ_SECONDS each, 10 by default),
# starting from its seed corpus; new inputs go to a scratch directory, so
# the committed seeds stay as they are.  A crash leaves its reproducer in
# tests/fuzz/ of the build directory and fails the test.
set -eu
: "${top_srcdir:=.}"
secs=${FUZZ_SECONDS:-10}
status=0
for corpus in "$top_srcdir"/tests/fuzz/corpus_*; do
  name=${corpus##*/corpus_}
  bin=tests/fuzz/fuzz_$name
  [ -x "$bin" ] || { echo "missing $bin"; status=1; continue; }
  scratch=$(mktemp -d "${TMPDIR:-/tmp}/cairn-fuzz-$name.XXXXXX")
  if ! "$bin" -max_total_time="$secs" -artifact_prefix=tests/fuzz/ \
       -print_final_stats=0 "$scratch" "$corpus" >"tests/fuzz/$name.log" 2>&1; then
    tail -40 "tests/fuzz/$name.log"
    status=1
  fi
  rm -rf "$scratch"
done
exit $status
