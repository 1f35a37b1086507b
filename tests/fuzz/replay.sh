#!/bin/sh
# Replay every fuzz target's seed corpus (and any crash reproducers kept
# beside it) through the target built as a plain program.
set -eu
: "${top_srcdir:=.}"
status=0
for corpus in "$top_srcdir"/tests/fuzz/corpus_*; do
  name=${corpus##*/corpus_}
  bin=tests/fuzz/fuzz_${name}_replay
  [ -x "$bin" ] || { echo "missing $bin"; status=1; continue; }
  "$bin" "$corpus"/* || status=1
done
exit $status
