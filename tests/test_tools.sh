#!/bin/sh
# test_tools.sh - cairn-wal and cairn-check on data directories built by
# tests/mkdb.  Run from the build directory (or set CAIRN_BUILDDIR to it).
# Exit 0: all passed, 1: a failure, 77: skipped.

B=${CAIRN_BUILDDIR:-.}
WAL=$B/tools/cairn-wal
CHECK=$B/tools/cairn-check
MKDB=$B/tests/mkdb
for p in "$WAL" "$CHECK" "$MKDB"; do
  if [ ! -x "$p" ]; then
    echo "SKIP: $p not built"
    exit 77
  fi
done

T=$(mktemp -d "${TMPDIR:-/tmp}/cairn-tools.XXXXXX") || exit 1
HOLD_PID=
cleanup() {
  [ -n "$HOLD_PID" ] && kill "$HOLD_PID" 2>/dev/null && wait "$HOLD_PID" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "PASS: $1"; }
bad() { fail=$((fail + 1)); echo "FAIL: $1"; }
# expect_eq WHAT GOT WANT
expect_eq() {
  if [ "$2" = "$3" ]; then ok "$1"; else bad "$1 (got '$2', want '$3')"; fi
}
# expect_grep WHAT PATTERN FILE
expect_grep() {
  if grep -q -- "$2" "$3"; then ok "$1"; else bad "$1 ('$2' not in $3)"; cat "$3"; fi
}
run() { "$@" >"$T/out" 2>"$T/err"; echo $?; }
SEG=1048576
mk() { "$MKDB" "$@" --segment-bytes $SEG 2>"$T/mkdb.err" || { cat "$T/mkdb.err"; bad "mkdb $*"; }; }

# --- Usage, help, version -------------------------------------------------
for tool in "$WAL" "$CHECK"; do
  name=$(basename "$tool")
  expect_eq "$name --help exits 0" "$(run "$tool" --help)" 0
  expect_grep "$name --help prints usage on stdout" "usage:" "$T/out"
  expect_eq "$name -V exits 0" "$(run "$tool" -V)" 0
  expect_grep "$name --version names the version" "$name (cairn)" "$T/out"
  rc=$(run "$tool")
  [ "$rc" -ne 0 ] && ok "$name without DATA_DIR fails" || bad "$name without DATA_DIR fails"
  expect_grep "$name usage error goes to stderr" "usage:" "$T/err"
  rc=$(run "$tool" --bogus "$T")
  [ "$rc" -ne 0 ] && ok "$name rejects an unknown option" || bad "$name rejects an unknown option"
  expect_grep "$name unknown option: usage on stderr" "usage:" "$T/err"
  rc=$(run "$tool" "$T/missing")
  [ "$rc" -ne 0 ] && ok "$name fails on a missing directory" || bad "$name fails on a missing directory"
done
expect_eq "cairn-wal rejects a bad LSN" "$(run "$WAL" --from x1 "$T")" 1
expect_eq "cairn-check usage error exits 3" "$(run "$CHECK" a b)" 3

# --- cairn-wal lists and filters records ------------------------------------
D=$T/d1
mk "$D" -n 20 --ns a --ttl 600000 --idle 30000
mk "$D" -n 5 --ns b --batch 3 --coll
# 20 + 5 puts, 1 batch, 2 collection deltas.
expect_eq "cairn-wal reads a log" "$(run "$WAL" "$D")" 0
expect_eq "cairn-wal lists every record" "$(grep -c '^lsn=' "$T/out")" 28
expect_grep "cairn-wal shows the batch" "^lsn=26 epoch=1 batch ops=3" "$T/out"
expect_eq "cairn-wal indents the batch's sub-records" \
  "$(grep -c '^    put ns=b key=batch-' "$T/out")" 3
expect_grep "cairn-wal shows a collection delta's type" "coll ns=b key=h .*type=hash" "$T/out"
expect_grep "cairn-wal shows expire_at and max-idle" "lsn=1 .*key=key-0 vlen=8 expire_at=.*max_idle=30000ms" "$T/out"
expect_grep "cairn-wal ends with the end of the log" "^end: clean" "$T/out"
run "$WAL" --ns b "$D" >/dev/null
expect_eq "cairn-wal --ns filters by namespace" "$(grep -c '^lsn=' "$T/out")" 8
run "$WAL" --from 3 --to 7 "$D" >/dev/null
expect_eq "cairn-wal --from/--to filter by LSN" \
  "$(grep '^lsn=' "$T/out" | sed 's/ .*//' | tr '\n' ' ')" "lsn=3 lsn=4 lsn=5 lsn=6 lsn=7 "
run "$WAL" --ns a --from 18 "$D" >/dev/null
expect_eq "cairn-wal combines the filters" "$(grep -c '^lsn=' "$T/out")" 3
run "$WAL" --frames "$D" >/dev/null
expect_eq "cairn-wal --frames lists every frame" "$(grep -c '^frame ' "$T/out")" 28
expect_eq "cairn-wal --frames alone lists no records" "$(grep -c '^lsn=' "$T/out")" 0
run "$WAL" --segments "$D" >/dev/null
expect_grep "cairn-wal --segments lists the first segment" \
  "^segment 0000000000000001.wal size=$SEG frames=28 lsn=1..28" "$T/out"

# --- cairn-check on a clean directory ----------------------------------------
expect_eq "cairn-check passes a clean directory" "$(run "$CHECK" "$D")" 0
expect_grep "cairn-check reports a clean status" "status: clean" "$T/out"
expect_eq "cairn-check --json exits 0" "$(run "$CHECK" --json "$D")" 0
expect_grep "cairn-check --json counts the records" '"records":28' "$T/out"
expect_grep "cairn-check --json says clean" '"end":"clean"' "$T/out"
if command -v python3 >/dev/null 2>&1; then
  if python3 -m json.tool "$T/out" >/dev/null 2>&1; then ok "cairn-check --json is valid JSON"
  else bad "cairn-check --json is valid JSON"; cat "$T/out"; fi
fi

# The store after a checkpoint: entries and the expiry index agree.
S=$T/store
mk "$S" -n 30 --ttl 600000 --idle 30000 --batch 4 --coll --checkpoint
expect_eq "cairn-check passes a checkpointed store" "$(run "$CHECK" --json "$S")" 0
expect_grep "the store holds every entry" '"entries":36' "$T/out"
expect_grep "the expiry index covers the entries with deadlines" '"expiry_index":34' "$T/out"
expect_grep "the checkpoint LSN is read" '"checkpoint_lsn":33' "$T/out"

# An expiry-index entry whose deadline disagrees with its data entry,
# added with LMDB's own mdb_dump/mdb_load.
if command -v mdb_dump >/dev/null 2>&1 && command -v mdb_load >/dev/null 2>&1; then
  mdb_dump -s expiry "$S/lmdb" | awk '/^HEADER=END/ { print; h = 1; next }
    !h { print; next }
    /DATA=END/ { print; exit }
    n == 0 { s = $1; d = substr(s, 15, 2); nd = (d == "ff") ? "fe" : "ff"
             print " " substr(s, 1, 14) nd substr(s, 17); n = 1; next }
    n == 1 { print; n = 2 }' >"$T/expiry.dump"
  mdb_load -s expiry -f "$T/expiry.dump" "$S/lmdb" 2>/dev/null
  expect_eq "cairn-check exits 2 on an inconsistent expiry index" "$(run "$CHECK" --json "$S")" 2
  expect_grep "cairn-check names the index problem" 'expiry.*deadline.*whose entry has deadline' "$T/out"
  expect_eq "cairn-check --repair leaves the index alone" "$(run "$CHECK" --repair "$S")" 2
fi

# --- A torn tail: cut the last frame in half ---------------------------------
run "$WAL" --frames "$D" >/dev/null
last=$(grep '^frame ' "$T/out" | tail -n 1)
file=$(echo "$last" | awk '{print $2}')
off=$(echo "$last" | sed 's/.*offset=\([0-9]*\).*/\1/')
truncate -s $((off + 30)) "$D/wal/$file"
expect_eq "cairn-check exits 1 on a torn tail" "$(run "$CHECK" --json "$D")" 1
expect_grep "cairn-check --json says torn" '"end":"torn"' "$T/out"
expect_grep "cairn-check --json gives the torn offset" "\"offset\":$off,\"bytes\":[0-9]*,\"lsn\":28" "$T/out"
expect_eq "cairn-wal still reads a torn log" "$(run "$WAL" "$D")" 0
expect_grep "cairn-wal names the torn tail" "^end: torn tail at $file:$off ([0-9]* bytes from LSN 28)" "$T/out"
expect_eq "cairn-check --repair cuts a torn tail" "$(run "$CHECK" --repair "$D")" 0
expect_grep "cairn-check --repair says what it zeroed" "repair: zeroed $file from offset $off" "$T/out"
expect_eq "cairn-check passes after the repair" "$(run "$CHECK" --json "$D")" 0
expect_grep "the repaired log lost only the torn record" '"records":27' "$T/out"
if [ "$(tail -c 30 "$D/wal/$file" | od -An -tx1 | tr -d ' \n' | tr -d 0)" = "" ]; then
  ok "the torn bytes are zeroed"
else
  bad "the torn bytes are zeroed"
fi
"$MKDB" "$D" -n 1 --ns c --segment-bytes $SEG 2>"$T/mkdb.err" && ok "the repaired directory opens" \
  || { bad "the repaired directory opens"; cat "$T/mkdb.err"; }

# --- Corruption in mid-log: flip a bit in an early frame ---------------------
C=$T/corrupt
mk "$C" -n 10
run "$WAL" --frames "$C" >/dev/null
second=$(grep '^frame ' "$T/out" | sed -n 2p)
file=$(echo "$second" | awk '{print $2}')
off=$(echo "$second" | sed 's/.*offset=\([0-9]*\).*/\1/')
pos=$((off + 50))
byte=$(dd if="$C/wal/$file" bs=1 skip=$pos count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
printf "$(printf '\\%03o' $((byte ^ 1)))" |
  dd of="$C/wal/$file" bs=1 seek=$pos count=1 conv=notrunc 2>/dev/null
sum_before=$(cksum "$C/wal/$file")
expect_eq "cairn-check exits 2 on mid-log corruption" "$(run "$CHECK" --json "$C")" 2
expect_grep "cairn-check --json says corrupt" '"end":"corrupt"' "$T/out"
expect_grep "cairn-check --json gives the corrupt offset" "\"offset\":$off,\"why\"" "$T/out"
expect_eq "cairn-wal reads a corrupt log" "$(run "$WAL" "$C")" 0
expect_grep "cairn-wal names the corruption" "^end: corruption at $file:$off:" "$T/out"
expect_eq "cairn-check --repair refuses corruption" "$(run "$CHECK" --repair "$C")" 2
expect_grep "cairn-check --repair says why it did nothing" "changes nothing" "$T/err"
expect_eq "cairn-check --repair leaves the file as it was" "$(cksum "$C/wal/$file")" "$sum_before"

# --- A gap between the checkpoint and the log ---------------------------------
G=$T/gap
mk "$G" -n 300 --vsize 8000
nseg=$(ls "$G/wal" | grep -c '\.wal$')
if [ "$nseg" -ge 3 ]; then
  rm "$G/wal/0000000000000001.wal"
  expect_eq "cairn-check exits 2 when the log misses records" "$(run "$CHECK" --json "$G")" 2
  expect_grep "cairn-check --json says gap" '"checkpoint_vs_log":"gap"' "$T/out"
else
  bad "mkdb made $nseg segments, wanted 3 or more"
fi

# --- A directory in use -------------------------------------------------------
H=$T/held
"$MKDB" "$H" -n 3 --hold >"$T/hold.out" 2>"$T/hold.err" &
HOLD_PID=$!
i=0
while [ $i -lt 100 ] && ! grep -q ready "$T/hold.out"; do sleep 0.1; i=$((i + 1)); done
if grep -q ready "$T/hold.out"; then
  rc=$(run "$CHECK" "$H")
  expect_eq "cairn-check refuses a directory held open" "$rc" 3
  expect_grep "cairn-check says the directory is in use" "in use by another process" "$T/err"
  rc=$(run "$CHECK" --repair "$H")
  expect_eq "cairn-check --repair refuses a directory held open" "$rc" 3
else
  bad "mkdb --hold did not become ready"
fi
kill "$HOLD_PID" 2>/dev/null
wait "$HOLD_PID" 2>/dev/null
HOLD_PID=
if command -v flock >/dev/null 2>&1; then
  rc=$(flock "$H/LOCK" "$CHECK" "$H" 2>"$T/err" >/dev/null; echo $?)
  expect_eq "cairn-check refuses a directory flock'd by flock(1)" "$rc" 3
  expect_eq "cairn-check checks it once released" "$(run "$CHECK" "$H")" 0
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
