#!/bin/bash
# daemon.sh - cairnd against redis-server, through redis-benchmark.
#
# usage: bench/daemon.sh PATH/TO/cairnd
#
# In one run, each server is started in turn (127.0.0.1, a free port, its
# own data directory under a work directory in the current directory, not
# /tmp, which may be tmpfs), measured with redis-benchmark, and stopped by
# pid (SIGTERM, a bounded wait, then SIGKILL):
#
#   fsync     cairnd --durability fsync  vs redis appendfsync always:
#             SET, -P 1.  Goal: >= 3x.
#   interval  cairnd --durability interval vs redis appendfsync everysec:
#             set,get,incr,hset,sadd,zadd,lpush, with -P 1 and with -P 16.
#             Goal: >= 1.0x each.
#   p99       every test above: cairnd's p99 latency over Redis's.
#             Goal: <= 1.0x.
#   rss       a fresh server of each (interval / everysec) loaded with
#             NKEYS (1M) SETs of 16-byte keys (key:%012d) and 100-byte
#             values, the same RESP stream through redis-cli --pipe, then
#             VmRSS from /proc/PID/status.  Goal: cairnd <= 0.8x redis.
#             (redis-server uses jemalloc; cairnd the libc allocator.)
#
# Each test is its own redis-benchmark run:
#   redis-benchmark -h 127.0.0.1 -p PORT -c 50 -d 256 -r 100000 -n N -t T
#   --csv [-P 16]
# bounded by TEST_MAX seconds.  A run that hits the bound is killed and its
# throughput taken from INFO stats total_commands_processed over the time
# it ran (marked "partial", no latency).  redis-benchmark's collection
# tests grow one key each (myhash, myset, myzset, mylist); the script
# DELs it before each collection test, so both servers start each one from
# the same empty key.  LPUSH is the one whose key grows with every
# request (256 bytes each): it runs at most LPUSH_MAX requests (200000, a
# 51 MiB list), since cairn stores a collection of at most 64 MiB encoded
# (CAIRN_VALUE_MAX) and refuses a push past it.
#
# Environment: N (requests per test, default 300000), NP (per -P 16 test,
# 2000000), NF (per fsync test, 100000), NKEYS (1000000), TEST_MAX (30),
# WAIT_MAX (seconds to wait for PING / a stop / a load, 120),
# REDIS_SERVER (/usr/bin/redis-server), REDIS_BENCHMARK, REDIS_CLI,
# TESTS (set,get,incr,hset,sadd,zadd,lpush), KEEP=1 keeps the data.
# Exit: 0 after a full run (goals met or not), 1 on an error, 2 usage,
# 77 when redis-server, redis-benchmark or redis-cli is missing.

set -uo pipefail

usage() {
  echo "usage: $0 PATH/TO/cairnd   (env: N NP NF NKEYS TEST_MAX TESTS)" >&2
  exit 2
}
[[ $# -eq 1 && -x $1 ]] || usage
CAIRND=$(realpath "$1")
N=${N:-300000}
NP=${NP:-2000000}
LPUSH_MAX=${LPUSH_MAX:-200000}
NF=${NF:-100000}
NKEYS=${NKEYS:-1000000}
TEST_MAX=${TEST_MAX:-30}
WAIT_MAX=${WAIT_MAX:-120}
TESTS=${TESTS:-set,get,incr,hset,sadd,zadd,lpush}
REDIS_SERVER=${REDIS_SERVER:-/usr/bin/redis-server}
REDIS_BENCHMARK=${REDIS_BENCHMARK:-redis-benchmark}
REDIS_CLI=${REDIS_CLI:-redis-cli}
PROG=daemon.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_tools "$REDIS_SERVER" "$REDIS_BENCHMARK" "$REDIS_CLI"

work=$(mktemp -d "$PWD/daemon.XXXXXX") || die "mktemp failed"
SRV_PID=
cleanup() {
  [[ -n $SRV_PID ]] && stop_server
  if [[ ${KEEP:-0} == 1 ]]; then echo "data kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

warn_tmpfs "$work"

# ------------------------------------------------------------------------
# Servers
# ------------------------------------------------------------------------

cli() { timeout 10 "$REDIS_CLI" -h 127.0.0.1 -p "$PORT" "$@"; }

# wait_ping: bounded wait until the server on PORT answers PONG.
wait_ping() {
  local end=$((SECONDS + WAIT_MAX))
  while ((SECONDS < end)); do
    kill -0 "$SRV_PID" 2>/dev/null || die "$SRV_NAME exited at start (see $SRV_DIR.log)"
    [[ $(timeout 2 "$REDIS_CLI" -h 127.0.0.1 -p "$PORT" ping 2>/dev/null) == PONG ]] && return 0
    sleep 0.1
  done
  die "$SRV_NAME did not answer PING in ${WAIT_MAX}s"
}

# start_server NAME(cairnd|redis) MODE(fsync|interval): sets SRV_PID, PORT.
start_server() {
  SRV_NAME=$1
  local mode=$2
  PORT=$(free_port)
  SRV_DIR=$work/$1-$2.$RANDOM
  mkdir -p "$SRV_DIR"
  if [[ $1 == cairnd ]]; then
    "$CAIRND" --port "$PORT" --bind 127.0.0.1 --dir "$SRV_DIR" \
      --durability "$mode" --logfile "$SRV_DIR.log" &
  else
    local fs=always
    [[ $mode == interval ]] && fs=everysec
    "$REDIS_SERVER" --port "$PORT" --bind 127.0.0.1 --dir "$SRV_DIR" \
      --save '' --appendonly yes --appendfsync "$fs" --daemonize no \
      --logfile "$SRV_DIR.log" &
  fi
  SRV_PID=$!
  wait_ping
}

# stop_server: SIGTERM, bounded wait, then SIGKILL.
stop_server() {
  local pid=$SRV_PID end=$((SECONDS + WAIT_MAX))
  SRV_PID=
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < end)); do sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "daemon.sh: $SRV_NAME (pid $pid) ignored SIGTERM for ${WAIT_MAX}s; SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  local rc=$?
  ((rc != 0)) && echo "daemon.sh: $SRV_NAME exited with status $rc" >&2
  return 0
}

# ------------------------------------------------------------------------
# Measurements
# ------------------------------------------------------------------------

declare -A RPS P99 PARTIAL

commands_processed() {
  cli info stats 2>/dev/null | tr -d '\r' |
    awk -F: '$1 == "total_commands_processed" { print $2 }'
}

# bench KEY TEST NREQ PIPELINE: one redis-benchmark run; RPS[KEY], P99[KEY].
bench() {
  local key=$1 t=$2 n=$3 p=$4 out c0 c1 t0 t1 rc line
  case $t in
    hset) cli del myhash >/dev/null ;;
    sadd) cli del myset >/dev/null ;;
    zadd) cli del myzset >/dev/null ;;
    lpush) cli del mylist >/dev/null ;;
  esac
  c0=$(commands_processed)
  t0=$EPOCHREALTIME
  out=$(timeout "$TEST_MAX" "$REDIS_BENCHMARK" -h 127.0.0.1 -p "$PORT" -c 50 \
        -d 256 -r 100000 -n "$n" -P "$p" -t "$t" --csv 2>&1)
  rc=$?
  t1=$EPOCHREALTIME
  line=$(grep -i "^\"${t}\"," <<<"$out" | head -1)
  if ((rc == 0)) && [[ -n $line ]]; then
    # "test","rps","avg","min","p50","p95","p99","max"
    RPS[$key]=$(awk -F'"' '{ print $4 }' <<<"$line")
    P99[$key]=$(awk -F'"' '{ print $14 }' <<<"$line")
    [[ -z ${P99[$key]} ]] && P99[$key]=n/a
  elif ((rc == 124)); then
    c1=$(commands_processed)
    RPS[$key]=$(awk -v a="$c0" -v b="$c1" -v s="$t0" -v e="$t1" \
      'BEGIN { if (a == "" || b == "") print 0; else printf "%.2f", (b - a) / (e - s) }')
    P99[$key]=n/a
    PARTIAL[$key]=1
    note "$SRV_NAME $t -P $p: not done in ${TEST_MAX}s; partial rate ${RPS[$key]}/s"
  else
    RPS[$key]=0
    P99[$key]=n/a
    echo "daemon.sh: $SRV_NAME $t -P $p failed (rc $rc): $out" >&2
  fi
  note "$(printf '%-6s %-8s %-6s -P %-2s %12s rps  p99 %s ms' "$SRV_NAME" \
    "${key%%|*}" "$t" "$p" "${RPS[$key]}" "${P99[$key]}")"
}

# The RESP stream of NKEYS SETs: key:%012d (16 bytes), 100-byte values
# that differ per key.
make_stream() {
  awk -v n="$NKEYS" 'BEGIN {
    pad = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    pad = pad pad pad;
    for (i = 0; i < n; i++) {
      k = sprintf("key:%012d", i);
      v = sprintf("%012d", i * 7919) substr(pad, (i % 40) + 1, 88);
      printf "*3\r\n$3\r\nSET\r\n$16\r\n%s\r\n$100\r\n%s\r\n", k, v;
    }
  }' >"$work/load.resp"
}

# rss NAME: fresh server, load the stream, VmRSS in kB into RSS[NAME].
declare -A RSS
rss() {
  local out dbsize
  start_server "$1" interval
  out=$(timeout "$WAIT_MAX" "$REDIS_CLI" -h 127.0.0.1 -p "$PORT" --pipe \
        <"$work/load.resp" 2>&1) || die "$1: redis-cli --pipe failed: $out"
  dbsize=$(cli dbsize | tr -d '\r')
  [[ $dbsize == "$NKEYS" ]] || die "$1: dbsize $dbsize after loading $NKEYS keys"
  RSS[$1]=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$SRV_PID/status")
  note "$1: $NKEYS keys loaded, VmRSS ${RSS[$1]} kB"
  stop_server
}

# ------------------------------------------------------------------------
# Run
# ------------------------------------------------------------------------

note "cairnd: $CAIRND ($("$CAIRND" --version 2>&1 | head -1))"
note "redis: $("$REDIS_SERVER" --version)"
note "N=$N NP=$NP NF=$NF NKEYS=$NKEYS TEST_MAX=$TEST_MAX work=$work"

IFS=, read -ra TLIST <<<"$TESTS"
for s in cairnd redis; do
  start_server "$s" fsync
  bench "fsync|set|1|$s" set "$NF" 1
  stop_server
done
for s in cairnd redis; do
  start_server "$s" interval
  for p in 1 16; do
    n=$N
    ((p > 1)) && n=$NP
    for t in "${TLIST[@]}"; do
      m=$n
      [[ $t == lpush ]] && ((m > LPUSH_MAX)) && m=$LPUSH_MAX
      bench "interval|$t|$p|$s" "$t" "$m" "$p"
    done
  done
  stop_server
done
make_stream
rss cairnd
rss redis

# ------------------------------------------------------------------------
# Table
# ------------------------------------------------------------------------

# row FIGURE CAIRN REDIS GOAL(>=x|<=x)
row() {
  local fig=$1 a=$2 b=$3 goal=$4
  awk -v f="$fig" -v a="$a" -v b="$b" -v g="$goal" 'BEGIN {
    op = substr(g, 1, 2); x = substr(g, 3) + 0;
    if (a == "n/a" || b == "n/a" || b + 0 == 0) { r = "n/a"; met = "no" }
    else {
      rv = a / b; r = sprintf("%.2fx", rv);
      met = (op == ">=" ? rv >= x : rv <= x) ? "yes" : "no";
    }
    printf "%-34s | %12s | %12s | %7s | %5s | %s\n", f, a, b, r, g, met
  }'
}

echo
printf "%-34s | %12s | %12s | %7s | %5s | %s\n" figure cairnd redis ratio goal met
printf '%s\n' "-----------------------------------+--------------+--------------+---------+-------+----"
rowkey() {
  local fig=$1 k=$2 goal=$3 a b
  a=${RPS[$k|cairnd]}
  b=${RPS[$k|redis]}
  [[ -n ${PARTIAL[$k|cairnd]:-} ]] && fig="$fig (partial)"
  row "$fig" "$a" "$b" "$goal"
}
rowkey "fsync SET rps" "fsync|set|1" ">=3"
for p in 1 16; do
  for t in "${TLIST[@]}"; do
    rowkey "interval ${t^^} -P$p rps" "interval|$t|$p" ">=1"
  done
done
row "fsync SET p99 ms" "${P99[fsync|set|1|cairnd]}" "${P99[fsync|set|1|redis]}" "<=1"
for p in 1 16; do
  for t in "${TLIST[@]}"; do
    k="interval|$t|$p"
    row "interval ${t^^} -P$p p99 ms" "${P99[$k|cairnd]}" "${P99[$k|redis]}" "<=1"
  done
done
row "RSS ${NKEYS} keys kB" "${RSS[cairnd]}" "${RSS[redis]}" "<=0.8"
exit 0
