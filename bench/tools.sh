#!/bin/bash
# tools.sh - cairn-dump / cairn-restore against mdb_dump / mdb_load, and
# cairn-dump against redis-cli --rdb.
#
# usage: bench/tools.sh BUILD_DIR
#
# BUILD_DIR is a configured, built tree (it holds bench/ckpt-bench,
# tools/cairn-dump and tools/cairn-restore).  In one run, under a work
# directory in the current directory (not /tmp, which may be tmpfs):
#
#   data     ckpt-bench --fill makes a cairn data directory of N entries
#            (16-byte keys, 100-byte values; checkpointed, then TAIL_MB MB
#            of log after the checkpoint, so the dump also reads a log tail).
#            The same N entries, taken from ckpt-bench --resp (the same
#            generator, so the same bytes), are loaded into a plain LMDB
#            with mdb_load and into redis-server through redis-cli --pipe.
#            The log tail rewrites the values of some keys with other
#            random bytes of the same length; keys and sizes stay equal.
#   copy     cairn-dump DIR -o F1 then cairn-restore F1 NEWDIR (total)
#            against mdb_dump -f F2 LMDB then mdb_load -f F2 NEWLMDB.
#            Goal: cairn >= 3x faster.
#   size     the dump files F1 against F2.  Goal: F1 smaller (<= 1.0x).
#   rdb      cairn-dump's time against redis-cli --rdb FILE on a
#            redis-server holding the same keys (--save '', no AOF,
#            repl-diskless-sync-delay 0, else the replica sync first waits
#            5 s for more replicas).  Informational.
#
# Times are wall clock of the whole command, page cache warm for both
# sides (each source was just written).  Only ratios from one run count.
#
# Environment: N (entries, default 1000000), TAIL_MB (1), WAIT_MAX
# (seconds any one step may take, 600), REDIS_SERVER, REDIS_CLI,
# KEEP=1 keeps the work directory.
# Exit: 0 after a full run (goals met or not), 1 on an error, 2 usage,
# 77 when mdb_dump, mdb_load, redis-server or redis-cli is missing.

set -uo pipefail

usage() {
  echo "usage: $0 BUILD_DIR   (env: N TAIL_MB WAIT_MAX KEEP)" >&2
  exit 2
}
[[ $# -eq 1 && -d $1 ]] || usage
BUILD=$(realpath "$1")
CKPT=$BUILD/bench/ckpt-bench
DUMP=$BUILD/tools/cairn-dump
RESTORE=$BUILD/tools/cairn-restore
for t in "$CKPT" "$DUMP" "$RESTORE"; do
  [[ -x $t ]] || { echo "tools.sh: $t is not built" >&2; exit 2; }
done
N=${N:-1000000}
[[ $N =~ ^[1-9][0-9]*$ ]] || usage
TAIL_MB=${TAIL_MB:-1}
WAIT_MAX=${WAIT_MAX:-600}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_CLI=${REDIS_CLI:-redis-cli}
PROG=tools.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_tools mdb_dump mdb_load "$REDIS_SERVER" "$REDIS_CLI" python3

work=$(mktemp -d "$PWD/tools.XXXXXX") || die "mktemp failed"
SRV_PID=
cleanup() {
  [[ -n $SRV_PID ]] && stop_server
  if [[ ${KEEP:-0} == 1 ]]; then echo "data kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

warn_tmpfs "$work"

# bounded CMD...: run CMD, killed after WAIT_MAX seconds.
bounded() { timeout "$WAIT_MAX" "$@"; }

# timed VAR CMD...: run CMD bounded, store its wall seconds in VAR.
timed() {
  local var=$1 t0 t1
  shift
  t0=$EPOCHREALTIME
  bounded "$@" || die "failed (rc $?): $*"
  t1=$EPOCHREALTIME
  printf -v "$var" '%s' "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
}

fsize() { stat -c %s "$1"; }

# ------------------------------------------------------------------------
# redis-server
# ------------------------------------------------------------------------

cli() { timeout 10 "$REDIS_CLI" -h 127.0.0.1 -p "$PORT" "$@"; }

start_server() {
  PORT=$(free_port)
  mkdir -p "$work/redis"
  "$REDIS_SERVER" --port "$PORT" --bind 127.0.0.1 --dir "$work/redis" \
    --save '' --appendonly no --daemonize no --repl-diskless-sync-delay 0 \
    --logfile "$work/redis.log" &
  SRV_PID=$!
  local end=$((SECONDS + 30))
  while ((SECONDS < end)); do
    kill -0 "$SRV_PID" 2>/dev/null || die "redis-server exited at start (see $work/redis.log)"
    [[ $(cli ping 2>/dev/null) == PONG ]] && return 0
    sleep 0.1
  done
  die "redis-server did not answer PING in 30s"
}

# SIGTERM, a bounded wait, then SIGKILL.
stop_server() {
  local pid=$SRV_PID end=$((SECONDS + 30))
  SRV_PID=
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < end)); do sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}

# ------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------

note "N=$N entries, 16-byte keys, 100-byte values; work directory $work"

bounded "$CKPT" --fill "$work/cairn" -n "$N" --tail-mb "$TAIL_MB" ||
  die "ckpt-bench --fill failed"

# The RESP stream of ckpt-bench --resp holds records of a fixed layout
# (16-byte key, 100-byte value); this turns it into mdb_load's input,
# sorted, in the hex "bytevalue" format of mdb_dump.
bounded "$CKPT" --resp -n "$N" > "$work/sets.resp" || die "ckpt-bench --resp failed"
bounded python3 - "$work/sets.resp" "$N" > "$work/lmdb.in" <<'EOF' || die "generator failed"
import sys
path, n = sys.argv[1], int(sys.argv[2])
head = b"*3\r\n$3\r\nSET\r\n$16\r\n"
rec = len(head) + 16 + 2 + len(b"$100\r\n") + 100 + 2
data = open(path, "rb").read()
if len(data) != n * rec:
    sys.exit("resp stream: %d bytes, expected %d" % (len(data), n * rec))
pairs = []
for i in range(0, len(data), rec):
    if data[i:i + len(head)] != head:
        sys.exit("resp stream: bad record at %d" % i)
    k = i + len(head)
    v = k + 16 + 2 + 6
    pairs.append((data[k:k + 16], data[v:v + 100]))
pairs.sort()
mapsize = max(64 << 20, (n * 400 + (1 << 20) - 1) & ~((1 << 20) - 1))
out = sys.stdout
out.write("VERSION=3\nformat=bytevalue\ntype=btree\nmapsize=%d\nHEADER=END\n"
          % mapsize)
out.writelines(" %s\n %s\n" % (k.hex(), v.hex()) for k, v in pairs)
out.write("DATA=END\n")
EOF
mkdir -p "$work/lmdb" "$work/lmdb2" || die "mkdir failed"
bounded mdb_load -f "$work/lmdb.in" "$work/lmdb" || die "mdb_load (setup) failed"
rm -f "$work/lmdb.in"
note "lmdb: $(mdb_stat "$work/lmdb" 2>/dev/null | grep -m1 Entries | tr -s ' ')"

start_server
bounded "$REDIS_CLI" -h 127.0.0.1 -p "$PORT" --pipe < "$work/sets.resp" |
  tail -1 || die "redis-cli --pipe failed"
rm -f "$work/sets.resp"
keys=$(cli dbsize | tr -d '\r')
[[ $keys == "$N" ]] || die "redis holds $keys keys, expected $N"
note "redis: $keys keys"

# ------------------------------------------------------------------------
# Measurements
# ------------------------------------------------------------------------

F1=$work/cairn.dump
F2=$work/lmdb.dump
F3=$work/redis.rdb

timed T_DUMP "$DUMP" -o "$F1" "$work/cairn"
timed T_RESTORE "$RESTORE" "$F1" "$work/cairn2"
entries=$(bounded "$DUMP" --list "$F1" | grep -vc '^#')
note "cairn-dump ${T_DUMP}s, cairn-restore ${T_RESTORE}s, $entries entries listed"
[[ $entries == "$N" ]] || note "warning: dump lists $entries entries, expected $N"

timed T_MDUMP mdb_dump -f "$F2" "$work/lmdb"
timed T_MLOAD mdb_load -f "$F2" "$work/lmdb2"
note "mdb_dump ${T_MDUMP}s, mdb_load ${T_MLOAD}s;" \
  "$(mdb_stat "$work/lmdb2" 2>/dev/null | grep -m1 Entries | tr -s ' ')"

timed T_RDB "$REDIS_CLI" -h 127.0.0.1 -p "$PORT" --rdb "$F3"
note "redis-cli --rdb ${T_RDB}s, $(fsize "$F3") bytes"
stop_server

# ------------------------------------------------------------------------
# Summary
# ------------------------------------------------------------------------

T_CAIRN=$(awk -v a="$T_DUMP" -v b="$T_RESTORE" 'BEGIN { printf "%.3f", a + b }')
T_LMDB=$(awk -v a="$T_MDUMP" -v b="$T_MLOAD" 'BEGIN { printf "%.3f", a + b }')
S1=$(fsize "$F1")
S2=$(fsize "$F2")

# row FIGURE CAIRN PEER RATIO_EXPR(c,p) GOAL_OP GOAL
row() {
  awk -v f="$1" -v c="$2" -v p="$3" -v e="$4" -v op="$5" -v g="$6" 'BEGIN {
    r = (e == "p/c") ? p / c : c / p;
    met = "-"; goal = "-";
    if (op == ">=") { goal = ">= " g "x"; met = (r >= g) ? "yes" : "NO" }
    if (op == "<=") { goal = "<= " g "x"; met = (r <= g) ? "yes" : "NO" }
    printf "%-26s | %12s | %12s | %6.2f | %7s | %s\n", f, c, p, r, goal, met
  }'
}

echo
echo "ratio: peer/cairn for times (speed-up), cairn/peer for sizes"
printf "%-26s | %12s | %12s | %6s | %7s | %s\n" figure cairn peer ratio goal met
row "dump+restore s (vs lmdb)" "$T_CAIRN" "$T_LMDB" p/c ">=" 3
row "dump file bytes (vs lmdb)" "$S1" "$S2" c/p "<=" 1
row "dump s (vs redis --rdb)" "$T_DUMP" "$T_RDB" p/c "" ""
exit 0
