#!/bin/bash
# repl.sh - cairnd replication against Redis replication.
#
# usage: bench/repl.sh BUILD_DIR
#
# BUILD_DIR holds cairnd (and bench/repl-load if the tree built it; else
# this script compiles bench/repl-load.c, which needs hiredis).  In one run,
# on 127.0.0.1, each server with a free port and its own data directory
# under a work directory in the current directory (not /tmp, which may be
# tmpfs); every process is stopped by pid (SIGTERM, a bounded wait, then
# SIGKILL).  The load is SET with 50 connections, 256-byte values and
# keys drawn from 100000:
#
#   A  ack     cairnd leader + 1 follower, min-replicas-ack 1, both
#              durability fsync, against one redis-server appendfsync
#              always with no replica: redis-benchmark -t set, SET/s.
#              Goal: >= 1.5x.
#   B  wait    the same cairnd pair (a SET is answered once it is fsynced
#              on the follower) against redis-server + a replica (both
#              appendfsync always) with WAIT 1 1000 after each SET:
#              repl-load on both, SET/s.  Reported.
#   C  sync    a leader loaded with NKEYS (1M) SETs (16-byte keys, 100-byte
#              values, redis-cli --pipe), checkpointed (cairnd SAVE, not
#              timed); then a follower starts, and the time until its
#              offset equals the leader's (Redis: and master_link_status:up)
#              is taken.  cairnd durability interval, redis appendfsync
#              everysec, on both nodes.  Goal: Redis's time / cairnd's
#              >= 1x.
#              (Also reported: until the replica's initial AOF rewrite
#              is done, when its copy is durable.)
#   A' one cairnd, durability fsync, no follower, for reference.
#   D  lag     at half of the pair's maximum SET rate (measured in A, and
#              for a min-replicas-ack 0 pair with redis-benchmark), paced
#              by repl-load for LAG_SECONDS, a probe writes a unique key
#              every 10 ms and polls the follower from the leader's +OK
#              until the key is there.  p50 and p99.  Goal: p99 <= 5 ms.
#
# Environment: N (SETs per redis-benchmark run, 200000), NB (SETs per B
# run, 50000), NKEYS (1000000), LAG_SECONDS (10), TEST_MAX (seconds per
# load run, 120), WAIT_MAX (seconds to wait for a start, a stop or a
# sync, 300), STOP_MAX (60), PARTS (cairn,redis: which side to run), REDIS_SERVER, REDIS_BENCHMARK, REDIS_CLI, KEEP=1 keeps the
# data.  Exit: 0 after a full run (goals met or not), 1 on an error, 2
# usage, 77 when a Redis tool or hiredis is missing.

set -uo pipefail

usage() {
  echo "usage: $0 BUILD_DIR   (env: N NB NKEYS LAG_SECONDS TEST_MAX)" >&2
  exit 2
}
[[ $# -eq 1 && -x $1/cairnd ]] || usage
BUILD=$(realpath "$1")
CAIRND=$BUILD/cairnd
SRC=$(dirname "$(realpath "$0")")
N=${N:-200000}
NB=${NB:-50000}
NKEYS=${NKEYS:-1000000}
LAG_SECONDS=${LAG_SECONDS:-10}
PARTS=${PARTS:-cairn,redis}
TEST_MAX=${TEST_MAX:-120}
WAIT_MAX=${WAIT_MAX:-300}
STOP_MAX=${STOP_MAX:-60}
REDIS_SERVER=${REDIS_SERVER:-/usr/bin/redis-server}
REDIS_BENCHMARK=${REDIS_BENCHMARK:-redis-benchmark}
REDIS_CLI=${REDIS_CLI:-redis-cli}
PROG=repl.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_tools "$REDIS_SERVER" "$REDIS_BENCHMARK" "$REDIS_CLI"

work=$(mktemp -d "$PWD/repl.XXXXXX") || die "mktemp failed"
declare -A PID PORT DIR KIND
cleanup() {
  local n
  for n in "${!PID[@]}"; do stop "$n"; done
  if [[ ${KEEP:-0} == 1 ]]; then echo "data kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

warn_tmpfs "$work"

# The load client: built by the tree, or compiled here.
LOAD=$BUILD/bench/repl-load
if [[ ! -x $LOAD ]]; then
  LOAD=$work/repl-load
  pkg-config --exists hiredis || { echo "repl.sh: no hiredis" >&2; exit 77; }
  # shellcheck disable=SC2046
  cc -std=gnu11 -O2 -pthread -o "$LOAD" "$SRC/repl-load.c" \
    $(pkg-config --cflags --libs hiredis) || die "cannot build repl-load"
fi

# ------------------------------------------------------------------------
# Servers: NAME -> PID, PORT, DIR, KIND (cairnd|redis)
# ------------------------------------------------------------------------

cli() { local n=$1; shift; timeout 10 "$REDIS_CLI" -h 127.0.0.1 -p "${PORT[$n]}" "$@"; }

# field NAME SECTION KEY: one INFO field of server NAME.
field() {
  cli "$1" info "$2" 2>/dev/null | tr -d '\r' | awk -F: -v k="$3" '$1 == k { print $2 }'
}

wait_ping() {
  local n=$1 end=$((SECONDS + WAIT_MAX))
  while ((SECONDS < end)); do
    kill -0 "${PID[$n]}" 2>/dev/null || die "$n exited at start (see ${DIR[$n]}.log)"
    [[ $(cli "$n" ping 2>/dev/null) == PONG ]] && return 0
    sleep 0.1
  done
  die "$n did not answer PING in ${WAIT_MAX}s"
}

# start_cairnd NAME ARGS...: a cairnd with its own port and directory.
start_cairnd() {
  local n=$1
  shift
  PORT[$n]=$(free_port)
  DIR[$n]=$work/$n
  KIND[$n]=cairnd
  mkdir -p "${DIR[$n]}"
  "$CAIRND" --port "${PORT[$n]}" --bind 127.0.0.1 --dir "${DIR[$n]}" \
    --logfile "${DIR[$n]}.log" "$@" &
  PID[$n]=$!
  wait_ping "$n"
}

# start_redis NAME ARGS...
start_redis() {
  local n=$1
  shift
  PORT[$n]=$(free_port)
  DIR[$n]=$work/$n
  KIND[$n]=redis
  mkdir -p "${DIR[$n]}"
  "$REDIS_SERVER" --port "${PORT[$n]}" --bind 127.0.0.1 --dir "${DIR[$n]}" \
    --save '' --daemonize no --logfile "${DIR[$n]}.log" "$@" &
  PID[$n]=$!
  wait_ping "$n"
}

# stop NAME: SIGTERM, bounded wait, then SIGKILL.
stop() {
  local n=$1 pid=${PID[$1]:-} end=$((SECONDS + STOP_MAX))
  unset "PID[$n]"
  [[ -z $pid ]] && return 0
  # A Redis replica refuses SIGTERM while it writes its initial AOF
  # (after a full sync), and does not try again: wait for that first.
  if [[ ${KIND[$n]} == redis ]]; then
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < end)) &&
      ! aof_idle "$n"; do sleep 0.1; done
  fi
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < end)); do sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "repl.sh: $n (pid $pid) ignored SIGTERM for ${STOP_MAX}s; SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  return 0
}

# aof_idle NAME: no AOF rewrite running or scheduled on Redis server NAME.
aof_idle() {
  [[ $(field "$1" persistence aof_rewrite_in_progress) == 0 &&
     $(field "$1" persistence aof_rewrite_scheduled) == 0 ]]
}

# synced LEADER FOLLOWER: the follower's link is up and its offset is the
# leader's.
synced() {
  local lo fo
  [[ $(field "$2" replication master_link_status) == up ]] || return 1
  lo=$(field "$1" replication master_repl_offset)
  fo=$(field "$2" replication slave_repl_offset)
  [[ -n $lo && $lo == "$fo" ]]
}

# wait_synced LEADER FOLLOWER [T0]: bounded; prints the seconds it took
# since T0 (default: now).
wait_synced() {
  local t0=${3:-$EPOCHREALTIME} end=$((SECONDS + WAIT_MAX))
  while ((SECONDS < end)); do
    kill -0 "${PID[$2]}" 2>/dev/null || die "$2 exited (see ${DIR[$2]}.log)"
    if synced "$1" "$2"; then
      awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f\n", b - a }'
      return 0
    fi
    sleep 0.02
  done
  die "$2 did not catch up with $1 in ${WAIT_MAX}s"
}

# ------------------------------------------------------------------------
# Measurements
# ------------------------------------------------------------------------

declare -A R   # results by name

# rb NAME KEY: redis-benchmark SET on server NAME; R[KEY] rps, R[KEY.p99].
rb() {
  local out line
  out=$(timeout "$TEST_MAX" "$REDIS_BENCHMARK" -h 127.0.0.1 -p "${PORT[$1]}" \
        -c 50 -d 256 -r 100000 -n "$N" -t set --csv 2>&1) ||
    die "redis-benchmark on $1 failed or ran over ${TEST_MAX}s: $out"
  line=$(grep -i '^"set",' <<<"$out" | head -1)
  [[ -n $line ]] || die "no SET line from redis-benchmark on $1: $out"
  R[$2]=$(awk -F'"' '{ print $4 }' <<<"$line")
  R[$2.p99]=$(awk -F'"' '{ print $14 }' <<<"$line")
  note "$(printf '%-28s %12s SET/s  p99 %s ms' "$2" "${R[$2]}" "${R[$2.p99]}")"
}

# load KEY ARGS...: one repl-load run; R[KEY] rps, R[KEY.p99], lag figures.
load() {
  local key=$1 out
  shift
  out=$(timeout "$TEST_MAX" "$LOAD" -c 50 -d 256 -r 100000 "$@" 2>&1) ||
    die "repl-load $* failed or ran over ${TEST_MAX}s: $out"
  R[$key]=$(awk '$1 == "sets" { print $6 }' <<<"$out")
  R[$key.p99]=$(awk '$1 == "sets" { print $10 }' <<<"$out")
  R[$key.err]=$(awk '$1 == "sets" { print $12 }' <<<"$out")
  R[$key.lag50]=$(awk '$1 == "lag" { print $5 }' <<<"$out")
  R[$key.lag99]=$(awk '$1 == "lag" { print $7 }' <<<"$out")
  note "$key: $(tr '\n' ' ' <<<"$out")"
  [[ ${R[$key.err]} == 0 ]] || note "warning: $key had ${R[$key.err]} failed writes"
}

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

# fill NAME: the stream into server NAME; checks DBSIZE.
fill() {
  local out dbsize
  out=$(timeout "$WAIT_MAX" "$REDIS_CLI" -h 127.0.0.1 -p "${PORT[$1]}" --pipe \
        <"$work/load.resp" 2>&1) || die "$1: redis-cli --pipe failed: $out"
  dbsize=$(cli "$1" dbsize | tr -d '\r')
  [[ $dbsize == "$NKEYS" ]] || die "$1: dbsize $dbsize after loading $NKEYS keys"
}

half() { awk -v r="$1" 'BEGIN { printf "%d\n", r / 2 }'; }

# ------------------------------------------------------------------------
# Run
# ------------------------------------------------------------------------

note "cairnd: $CAIRND ($("$CAIRND" --version 2>&1 | head -1))"
note "redis: $("$REDIS_SERVER" --version)"
note "N=$N NB=$NB NKEYS=$NKEYS LAG_SECONDS=$LAG_SECONDS work=$work"

has() { [[ ,$PARTS, == *,$1,* ]]; }

# A, B (cairnd side), D (ack 1): the min-replicas-ack 1 pair.
if has cairn; then
start_cairnd cl --durability fsync --min-replicas-ack 1
start_cairnd cf --durability fsync --replicaof 127.0.0.1 "${PORT[cl]}"
wait_synced cl cf >/dev/null
rb cl cairn.ack1
load cairn.b -p "${PORT[cl]}" -n "$NB"
load cairn.lag1 -p "${PORT[cl]}" -R "$(half "${R[cairn.ack1]}")" \
  -T "$LAG_SECONDS" -f "${PORT[cf]}"
stop cf
stop cl

# For reference: one cairnd, no follower.
start_cairnd c1 --durability fsync
rb c1 cairn.single
stop c1

# D (ack 0): an asynchronous pair.
start_cairnd cl0 --durability fsync
start_cairnd cf0 --durability fsync --replicaof 127.0.0.1 "${PORT[cl0]}"
wait_synced cl0 cf0 >/dev/null
rb cl0 cairn.ack0
load cairn.lag0 -p "${PORT[cl0]}" -R "$(half "${R[cairn.ack0]}")" \
  -T "$LAG_SECONDS" -f "${PORT[cf0]}"
stop cf0
stop cl0
fi

# A, Redis side.
if has redis; then
start_redis r1 --appendonly yes --appendfsync always
rb r1 redis.always
stop r1

# B, Redis side.
start_redis rl --appendonly yes --appendfsync always --repl-diskless-sync-delay 0
start_redis rf --appendonly yes --appendfsync always --replicaof 127.0.0.1 "${PORT[rl]}"
wait_synced rl rf >/dev/null
load redis.b -p "${PORT[rl]}" -n "$NB" -w
stop rf
stop rl
fi

# C: full sync of NKEYS keys.
make_stream
if has cairn; then
start_cairnd csl --durability interval
fill csl
[[ $(cli csl save | tr -d '\r') == OK ]] || die "SAVE on the cairnd leader failed"
t0=$EPOCHREALTIME
start_cairnd csf --durability interval --replicaof 127.0.0.1 "${PORT[csl]}"
R[cairn.sync]=$(wait_synced csl csf "$t0") || exit 1
[[ $(cli csf dbsize | tr -d '\r') == "$NKEYS" ]] || die "cairnd follower: wrong DBSIZE after the sync"
note "cairnd full sync of $NKEYS keys: ${R[cairn.sync]} s (from the follower's start)"
stop csf
stop csl
fi
if has redis; then
start_redis rsl --appendonly yes --appendfsync everysec --repl-diskless-sync-delay 0
fill rsl
t0=$EPOCHREALTIME
start_redis rsf --appendonly yes --appendfsync everysec --replicaof 127.0.0.1 "${PORT[rsl]}"
R[redis.sync]=$(wait_synced rsl rsf "$t0") || exit 1
[[ $(cli rsf dbsize | tr -d '\r') == "$NKEYS" ]] || die "redis replica: wrong DBSIZE after the sync"
note "redis full sync of $NKEYS keys: ${R[redis.sync]} s (from the replica's start)"
end=$((SECONDS + WAIT_MAX))
until aof_idle rsf || ((SECONDS >= end)); do sleep 0.02; done
R[redis.sync.aof]=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f\n", b - a }')
note "redis replica's initial AOF written (its copy durable): ${R[redis.sync.aof]} s"
stop rsf
stop rsl
fi

# ------------------------------------------------------------------------
# Table
# ------------------------------------------------------------------------

# row FIGURE CAIRN REDIS RATIO GOAL(>=x|<=x): RATIO is "a/b", "b/a" or "a"
# (cairnd's figure alone against the goal).
row() {
  awk -v f="$1" -v a="$2" -v b="$3" -v how="$4" -v g="$5" 'BEGIN {
    op = substr(g, 1, 2); x = substr(g, 3) + 0;
    if (how == "a") { rv = a + 0; r = "-" }
    else if (how == "a/b") { rv = (b + 0 > 0) ? a / b : -1; r = sprintf("%.2fx", rv) }
    else { rv = (a + 0 > 0) ? b / a : -1; r = sprintf("%.2fx", rv) }
    if (a == "" || rv < 0) { r = "n/a"; met = "no" }
    else if (g == "-") met = "-";
    else met = (op == ">=" ? rv >= x : rv <= x) ? "yes" : "no";
    printf "%-44s | %10s | %10s | %7s | %6s | %s\n", f, a, b, r, g, met
  }'
}

echo
printf "%-44s | %10s | %10s | %7s | %6s | %s\n" figure cairnd redis ratio goal met
printf '%s\n' "---------------------------------------------+------------+------------+---------+--------+----"
row "A SET/s: pair ack 1 fsync vs redis always" "${R[cairn.ack1]:-}" "${R[redis.always]:-}" a/b ">=1.5"
row "A SET p99 ms (redis-benchmark)" "${R[cairn.ack1.p99]:-}" "${R[redis.always.p99]:-}" a/b "-"
row "A' SET/s: one cairnd fsync vs redis always" "${R[cairn.single]:-}" "${R[redis.always]:-}" a/b "-"
row "B SET/s: pair ack 1 vs redis+replica WAIT 1" "${R[cairn.b]:-}" "${R[redis.b]:-}" a/b "-"
row "B write p99 ms (SET, + WAIT for redis)" "${R[cairn.b.p99]:-}" "${R[redis.b.p99]:-}" a/b "-"
row "C full sync of $NKEYS keys, s (speed ratio)" "${R[cairn.sync]:-}" "${R[redis.sync]:-}" b/a ">=1"
row "C' ... to the redis replica's AOF written" "${R[cairn.sync]:-}" "${R[redis.sync.aof]:-}" b/a "-"
row "D lag p50 ms, ack 1, half load" "${R[cairn.lag1.lag50]:-}" "" a "-"
row "D lag p99 ms, ack 1, half load" "${R[cairn.lag1.lag99]:-}" "" a "<=5"
row "D lag p50 ms, ack 0, half load" "${R[cairn.lag0.lag50]:-}" "" a "-"
row "D lag p99 ms, ack 0, half load" "${R[cairn.lag0.lag99]:-}" "" a "<=5"
note "D loads: ack 1 at $(half "${R[cairn.ack1]:-0}") SET/s (achieved ${R[cairn.lag1]:-}), ack 0 at $(half "${R[cairn.ack0]:-0}") SET/s (achieved ${R[cairn.lag0]:-}); max ack 0 ${R[cairn.ack0]:-} SET/s"
exit 0
