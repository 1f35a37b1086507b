#!/bin/sh
# test_dumptools.sh - cairn-dump and cairn-restore, end to end: a source
# directory with a log tail (tests/mkdump_src) is dumped, restored, and
# dumped again; the two listings must agree entry by entry, expiry
# included.  Bad input must leave the target untouched.
#
# Binaries: $CAIRN_DUMP, $CAIRN_RESTORE, $CAIRN_CHECK, $MKDUMP_SRC, or the
# build tree's.
# Exit 0 if every check passed, 1 if one failed, 77 if a binary is missing.
set -u
DUMP=${CAIRN_DUMP:-tools/cairn-dump}
RESTORE=${CAIRN_RESTORE:-tools/cairn-restore}
CHECKER=${CAIRN_CHECK:-tools/cairn-check}
MKSRC=${MKDUMP_SRC:-tests/mkdump_src}
for b in "$DUMP" "$RESTORE" "$CHECKER" "$MKSRC"; do
  [ -x "$b" ] || { echo "skip: $b not built"; exit 77; }
done

T=$(mktemp -d "${TMPDIR:-/tmp}/cairn-dumptools-XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
bad() { fail=$((fail + 1)); echo "FAIL - $1"; }
check() { # check NAME COMMAND...: pass if the command succeeds
  name=$1; shift
  if "$@"; then ok "$name"; else bad "$name"; fi
}
status_is() { # status_is WANT COMMAND...
  want=$1; shift
  "$@" >"$T/out" 2>"$T/err"
  [ $? -eq "$want" ]
}
# Entries of a listing, expiry rounded away: fields 1-3, 5, 6.
fields() { grep -v '^#' "$1" | cut -f1-3,5,6; }
# Lifespans of two listings agree within 2 s (restore counts from now).
same_expiry() {
  paste "$1" "$2" | awk -F'\t' '!/^#/ {
    d = $4 - $10; if (d < 0) d = -d; if (d > 2000) bad = 1 }
    END { exit bad }'
}
tree_sum() { # contents of a directory, LMDB's reader table left out
  (cd "$1" && find . -type f ! -name lock.mdb -exec md5sum {} + | sort)
}

# --- Usage -----------------------------------------------------------------
check "dump --help exits 0" status_is 0 "$DUMP" --help
check "dump -V prints the version" sh -c "'$DUMP' -V | grep -q cairn"
check "restore --help exits 0" status_is 0 "$RESTORE" -h
check "restore -V exits 0" status_is 0 "$RESTORE" --version
check "dump without DATA_DIR is a usage error" status_is 2 "$DUMP"
check "usage errors go to stderr" sh -c "[ -s '$T/err' ] && [ ! -s '$T/out' ]"
check "restore with one argument is a usage error" status_is 2 "$RESTORE" x
check "an unknown option is a usage error" status_is 2 "$DUMP" --bogus x

# --- Dump, restore, compare ------------------------------------------------
"$MKSRC" "$T/src" || { echo "mkdump_src failed"; exit 1; }
tree_sum "$T/src" >"$T/sum.before"
check "dump of the source" status_is 0 "$DUMP" -o "$T/d1" "$T/src"
check "dump says what it did" grep -q "entries" "$T/err"
tree_sum "$T/src" >"$T/sum.after"
check "dump leaves the source unchanged" cmp -s "$T/sum.before" "$T/sum.after"
check "list the dump" status_is 0 "$DUMP" --list "$T/d1"
cp "$T/out" "$T/l1"
check "the log tail is applied" sh -c "grep -q '^default	late	' '$T/l1' &&
  grep -q '^default	s01	string	0	0	changed$' '$T/l1' &&
  ! grep -q '^default	s02	' '$T/l1' && ! grep -q '^default	s03	' '$T/l1'"
check "an emptied collection is gone" sh -c "! grep -q '^sessions	set	' '$T/l1'"
check "collections of every type are there" sh -c "
  grep -q '^sessions	h	hash	' '$T/l1' && grep -q '^sessions	l	list	' '$T/l1' &&
  grep -q '^sessions	z2	zset	' '$T/l1'"
check "expired entries are skipped" sh -c "! grep -q 'gone-soon\|short' '$T/l1'"
check "max-idle is kept" grep -q '^tokens	idle	string	0	300000	sliding$' "$T/l1"
check "binary keys survive" grep -q '^tokens	b\\x00\\x0ak	' "$T/l1"
check "the header counts 46 entries" grep -q '^# lsn .* entries 46$' "$T/l1"

check "restore into a new directory" status_is 0 "$RESTORE" "$T/d1" "$T/r1"
check "restore prints a summary" grep -q "46 entries" "$T/out"
check "no temporary directory is left" sh -c "! ls -d '$T'/r1.restore-* 2>/dev/null"
check "dump of the restored directory" status_is 0 "$DUMP" -o "$T/d2" "$T/r1"
"$DUMP" --list "$T/d2" >"$T/l2" 2>/dev/null
fields "$T/l1" >"$T/f1"
fields "$T/l2" >"$T/f2"
check "restored entries equal the source's" cmp -s "$T/f1" "$T/f2"
check "restored lifespans equal the source's" same_expiry "$T/l1" "$T/l2"
check "the restored store checks clean (expiry index included)" \
  status_is 0 "$CHECKER" "$T/r1"
"$MKSRC" --reverse "$T/d1" "$T/d1rev" || bad "mkdump_src --reverse"
check "restore of a dump in another order" status_is 0 "$RESTORE" "$T/d1rev" "$T/r4"
check "it holds the same entries" sh -c "'$DUMP' -q '$T/r4' | '$DUMP' --list - |
  grep -v '^#' | cut -f1-3,5,6 | cmp -s - '$T/f1'"
check "and checks clean" status_is 0 "$CHECKER" "$T/r4"
check "a pipe works both ways" sh -c "'$DUMP' -q '$T/src' | '$RESTORE' -q - '$T/r2' &&
  '$DUMP' -q '$T/r2' | '$DUMP' --list - | grep -v '^#' | cut -f1-3,5,6 |
  cmp -s - '$T/f1'"

# --- Namespaces ------------------------------------------------------------
check "dump --ns filters" sh -c "'$DUMP' -q --ns tokens '$T/src' |
  '$DUMP' --list - | grep -v '^#' | cut -f1 | sort -u | grep -qx tokens &&
  [ \$('$DUMP' -q --ns tokens '$T/src' | '$DUMP' --list - | grep -vc '^#') -eq 3 ]"
check "restore --ns filters" status_is 0 "$RESTORE" --ns sessions "$T/d1" "$T/r3"
check "restore --ns restores only that namespace" sh -c "
  '$DUMP' -q '$T/r3' | '$DUMP' --list - | grep -v '^#' | cut -f1 | sort -u |
  grep -qx sessions && grep -q 'filtered out' '$T/out'"

# --- Targets ---------------------------------------------------------------
mkdir "$T/full" && echo keep >"$T/full/marker"
check "a non-empty target is refused" status_is 3 "$RESTORE" "$T/d1" "$T/full"
check "the refused target is untouched" sh -c "[ \"\$(ls '$T/full')\" = marker ]"
check "--force replaces it" status_is 0 "$RESTORE" --force "$T/d1" "$T/full"
check "the replaced target holds the dump" sh -c "[ ! -e '$T/full/marker' ] &&
  '$DUMP' -q '$T/full' | '$DUMP' --list - | grep -v '^#' | cut -f1-3,5,6 |
  cmp -s - '$T/f1'"
check "no old directory is left" sh -c "! ls -d '$T'/full.old-* 2>/dev/null"
mkdir "$T/empty"
check "an empty target is fine" status_is 0 "$RESTORE" "$T/d1" "$T/empty"

# --- Bad input leaves the target untouched ----------------------------------
size=$(wc -c <"$T/d1")
head -c $((size - 30)) "$T/d1" >"$T/bad.truncated"
cp "$T/d1" "$T/bad.flip"
printf '\377' | dd of="$T/bad.flip" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
cp "$T/d1" "$T/bad.version"
printf '\011' | dd of="$T/bad.version" bs=1 seek=8 conv=notrunc 2>/dev/null
echo "just some text, not a dump" >"$T/bad.text"
mkdir "$T/tgt" && echo keep >"$T/tgt/marker"
for kind in truncated flip version text; do
  f="$T/bad.$kind"
  check "$kind: restore fails" status_is 1 "$RESTORE" "$f" "$T/none"
  check "$kind: the error names the file and an offset" sh -c "
    grep -q 'bad.$kind: offset [0-9]' '$T/err'"
  check "$kind: a missing target stays missing" sh -c "[ ! -e '$T/none' ] &&
    ! ls -d '$T'/none.restore-* 2>/dev/null"
  check "$kind: --force leaves the old target" status_is 1 "$RESTORE" --force "$f" "$T/tgt"
  check "$kind: the old target is untouched" sh -c "[ \"\$(ls '$T/tgt')\" = marker ] &&
    ! ls -d '$T'/tgt.restore-* '$T'/tgt.old-* 2>/dev/null"
done
check "a future version is named as such" sh -c "
  '$RESTORE' '$T/bad.version' '$T/none' 2>&1 | grep -q 'format version 9'"
check "a text file is named as not a dump" sh -c "
  '$RESTORE' '$T/bad.text' '$T/none' 2>&1 | grep -q 'not a cairn dump'"
check "list refuses a damaged dump" status_is 1 "$DUMP" --list "$T/bad.flip"

# --- A directory in use -----------------------------------------------------
if command -v flock >/dev/null 2>&1; then
  # The lock holder is one process (the subshell turns into sleep), so
  # killing it by its id releases the lock.
  ( exec 9<"$T/src/LOCK"; flock -x 9; exec sleep 30 ) &
  holder=$!
  sleep 0.3
  check "a locked directory is refused" status_is 3 "$DUMP" -o "$T/d3" "$T/src"
  check "--live dumps beside the holder" status_is 0 "$DUMP" --live -o "$T/d3" "$T/src"
  check "the live dump is the same" sh -c "'$DUMP' --list '$T/d3' |
    grep -v '^#' | cut -f1-3,5,6 | cmp -s - '$T/f1'"
  cp -r "$T/r1" "$T/busy"
  ( exec 9<"$T/busy/LOCK"; flock -x 9; exec sleep 30 ) &
  holder2=$!
  sleep 0.3
  check "--force refuses a directory in use" status_is 1 "$RESTORE" --force "$T/d1" "$T/busy"
  kill "$holder2" 2>/dev/null
  wait "$holder2" 2>/dev/null
  kill "$holder" 2>/dev/null
  wait "$holder" 2>/dev/null
fi
check "a directory that is not a cairn one is refused" status_is 1 "$DUMP" -o "$T/d4" "$T/empty.nothing"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
