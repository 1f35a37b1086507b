#!/bin/bash
# alternate.sh - cairnd and redis-server side by side, runs alternated.
#
# usage: bench/alternate.sh PATH/TO/cairnd
#
# bench/daemon.sh runs all of cairnd's tests, then all of redis-server's:
# on a noisy machine, load that comes and goes falls on one side only.
# This script starts both servers at once (127.0.0.1, free ports, data
# directories under a work directory in the current directory) in one
# durability pairing, and runs each test ROUNDS times as cairnd, redis,
# cairnd, redis..., so both meet the same conditions.  It prints each
# run, then per test the median SET/s of each and their ratio.
#
#   redis-benchmark -h 127.0.0.1 -p PORT -c 50 -d 256 -r 100000 -n N -t T
#   --csv [-P P]
#
# Environment: MODE (interval: cairnd interval vs redis everysec, the
# default; fsync: cairnd fsync vs redis appendfsync always), TESTS
# (set,get,incr,hset,sadd,zadd,lpush), N (150000), P (1), ROUNDS (3),
# REDIS_SERVER, REDIS_BENCHMARK, REDIS_CLI, WAIT_MAX (60).  The collection
# key is deleted before each run.  Exit 0 after a run, 1 on an error, 2
# usage, 77 when a redis tool is missing.

set -uo pipefail

[[ $# -eq 1 && -x $1 ]] || { echo "usage: $0 PATH/TO/cairnd" >&2; exit 2; }
CAIRND=$(realpath "$1")
MODE=${MODE:-interval}
TESTS=${TESTS:-set,get,incr,hset,sadd,zadd,lpush}
N=${N:-150000}
P=${P:-1}
ROUNDS=${ROUNDS:-3}
WAIT_MAX=${WAIT_MAX:-60}
REDIS_SERVER=${REDIS_SERVER:-/usr/bin/redis-server}
REDIS_BENCHMARK=${REDIS_BENCHMARK:-redis-benchmark}
REDIS_CLI=${REDIS_CLI:-redis-cli}
PROG=alternate.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_tools "$REDIS_SERVER" "$REDIS_BENCHMARK" "$REDIS_CLI"
case $MODE in
  interval) RMODE=everysec ;;
  fsync) RMODE=always ;;
  *) echo "alternate.sh: MODE is interval or fsync" >&2; exit 2 ;;
esac

work=$(mktemp -d "$PWD/alternate.XXXXXX") || die "mktemp failed"
PIDS=()
cleanup() {
  local pid end
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do
    end=$((SECONDS + WAIT_MAX))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < end)); do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

wait_ping() {
  local port=$1 pid=$2 end=$((SECONDS + WAIT_MAX))
  while ((SECONDS < end)); do
    kill -0 "$pid" 2>/dev/null || die "the server on port $port exited at start"
    [[ $(timeout 2 "$REDIS_CLI" -p "$port" ping 2>/dev/null) == PONG ]] && return 0
    sleep 0.1
  done
  die "the server on port $port did not answer PING in ${WAIT_MAX}s"
}

CPORT=$(free_port)
mkdir -p "$work/cairnd" "$work/redis"
"$CAIRND" --port "$CPORT" --bind 127.0.0.1 --dir "$work/cairnd" \
  --durability "$MODE" --logfile "$work/cairnd.log" &
PIDS+=($!)
wait_ping "$CPORT" "${PIDS[-1]}"
RPORT=$(free_port)
"$REDIS_SERVER" --port "$RPORT" --bind 127.0.0.1 --dir "$work/redis" \
  --save '' --appendonly yes --appendfsync "$RMODE" --daemonize no \
  --logfile "$work/redis.log" &
PIDS+=($!)
wait_ping "$RPORT" "${PIDS[-1]}"

echo "# cairnd: $("$CAIRND" --version 2>&1 | head -1)"
echo "# redis: $("$REDIS_SERVER" --version)"
echo "# MODE=$MODE ($MODE vs $RMODE) N=$N P=$P ROUNDS=$ROUNDS work=$work"

# run PORT TEST: one redis-benchmark run; prints its requests per second.
run() {
  local out
  timeout -k 5 600 "$REDIS_CLI" -p "$1" del myhash myset myzset mylist >/dev/null
  out=$(timeout -k 5 600 "$REDIS_BENCHMARK" -h 127.0.0.1 -p "$1" -c 50 -d 256 \
    -r 100000 -n "$N" -P "$P" -t "$2" --csv 2>&1) || die "$2 on port $1: $out"
  awk -F'"' 'NR == 2 { print $4 }' <<<"$out"
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# The keys GET reads exist on both.
run "$CPORT" set >/dev/null
run "$RPORT" set >/dev/null
declare -A C R
IFS=, read -ra TLIST <<<"$TESTS"
for t in "${TLIST[@]}"; do
  for ((i = 1; i <= ROUNDS; i++)); do
    c=$(run "$CPORT" "$t") || exit 1
    r=$(run "$RPORT" "$t") || exit 1
    echo "# $t round $i: cairnd $c redis $r"
    C[$t]+="$c "
    R[$t]+="$r "
  done
done
echo
printf '%-8s | %12s | %12s | %7s\n' "test" "cairnd" "redis" "ratio"
for t in "${TLIST[@]}"; do
  c=$(tr ' ' '\n' <<<"${C[$t]}" | grep . | median)
  r=$(tr ' ' '\n' <<<"${R[$t]}" | grep . | median)
  printf '%-8s | %12s | %12s | %6.2fx\n' "$t -P$P" "$c" "$r" \
    "$(awk -v a="$c" -v b="$r" 'BEGIN { print (b > 0 ? a / b : 0) }')"
done
