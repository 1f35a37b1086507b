#!/bin/sh
# Fuzz every libFuzzer target briefly from its seed corpus: FUZZ_RUNS
# inputs (200000 by default) from a fixed seed, so that make check is
# repeatable (contrib/fuzz sets FUZZ_SECONDS and a random seed for long
# runs).  New inputs go to a scratch directory, so the committed seeds stay
# as they are.  A crash leaves its reproducer in tests/fuzz/ of the build
# directory and fails the test: add it to the corpus with the fix.
set -eu
: "${top_srcdir:=.}"
if [ -n "${FUZZ_SECONDS:-}" ]; then
  limit="-max_total_time=$FUZZ_SECONDS"
else
  limit="-runs=${FUZZ_RUNS:-200000} -seed=1"
fi
status=0
for corpus in "$top_srcdir"/tests/fuzz/corpus_*; do
  name=${corpus##*/corpus_}
  bin=tests/fuzz/fuzz_$name
  [ -x "$bin" ] || { echo "missing $bin"; status=1; continue; }
  scratch=$(mktemp -d "${TMPDIR:-/tmp}/cairn-fuzz-$name.XXXXXX")
  if ! "$bin" $limit -artifact_prefix=tests/fuzz/ \
       -print_final_stats=0 "$scratch" "$corpus" >"tests/fuzz/$name.log" 2>&1; then
    tail -40 "tests/fuzz/$name.log"
    status=1
  fi
  rm -rf "$scratch"
done
exit $status
