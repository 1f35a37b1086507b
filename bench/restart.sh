#!/bin/bash
# restart.sh - how long a restart takes: cairn against redis-server.
#
# usage: bench/restart.sh PATH/TO/ckpt-bench
#
# cairn: ckpt-bench --fill loads N entries (16-byte keys, 100-byte values),
# checkpoints them, then writes about TAIL_MB MB of log after the checkpoint
# and exits without closing, so that the tail stays in the log.  Then
# ckpt-bench --open-only times cairn_open (store open + replay of the
# tail), TRIALS times; the best counts.
#
# Redis: one redis-server (127.0.0.1, a free port, its own directory under
# the work directory, appendonly yes with aof-use-rdb-preamble no, so every
# SET also goes to a plain AOF) is fed the same N keys and values through
# redis-cli --pipe, then SAVE writes the RDB, and it is stopped.  Each
# restart is timed from the launch of redis-server until it answers PING
# and INFO persistence says loading:0: from the RDB (appendonly no), and
# from the AOF (appendonly yes), TRIALS times each; the best counts.
#
# Page caches are warm for both: this compares the work of a restart, not
# the disk.  The script builds nothing.  Data goes under the current
# directory (not /tmp, which may be tmpfs) and is removed at the end.
#
# Environment: N (entries, default 10000000), TAIL_MB (100), TRIALS (3),
# WAIT_MAX (seconds any one wait may take, 900), REDIS_SERVER
# (/usr/bin/redis-server), REDIS_CLI (redis-cli), KEEP=1 keeps the data.
# Goal: cairn's open >= 5x faster than each Redis restart.

set -euo pipefail

usage() {
  echo "usage: $0 PATH/TO/ckpt-bench   (env: N TAIL_MB TRIALS WAIT_MAX)" >&2
  exit 2
}
[[ $# -eq 1 && -x $1 ]] || usage
BENCH=$1
N=${N:-10000000}
TAIL_MB=${TAIL_MB:-100}
TRIALS=${TRIALS:-3}
WAIT_MAX=${WAIT_MAX:-900}
REDIS_SERVER=${REDIS_SERVER:-/usr/bin/redis-server}
REDIS_CLI=${REDIS_CLI:-redis-cli}
PROG=restart.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_tools "$REDIS_SERVER" "$REDIS_CLI"

work=$(mktemp -d "$PWD/restart.XXXXXX")
REDIS_PID=
cleanup() {
  if [[ -n $REDIS_PID ]]; then
    kill "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
  fi
  if [[ ${KEEP:-0} == 1 ]]; then echo "data kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b < a) ? b : a }'; }

# start_redis DIR PORT ARGS...: launch in the background; REDIS_PID is set.
start_redis() {
  local dir=$1 port=$2
  shift 2
  "$REDIS_SERVER" --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' \
    --daemonize no --logfile "$dir/redis.log" --aof-use-rdb-preamble no \
    --appenddirname aof "$@" &
  REDIS_PID=$!
}

cli() { "$REDIS_CLI" -h 127.0.0.1 -p "$PORT" "$@"; }

# Wait until the server answers PING and has finished loading.
wait_ready() {
  local deadline=$((SECONDS + WAIT_MAX))
  while ((SECONDS < deadline)); do
    kill -0 "$REDIS_PID" 2>/dev/null || die "redis-server exited (see log)"
    if [[ $(cli ping 2>/dev/null) == PONG ]] &&
       cli info persistence 2>/dev/null | grep -q '^loading:0'; then
      return 0
    fi
    sleep 0.005
  done
  die "redis-server not ready within $WAIT_MAX s"
}

stop_redis() {
  local deadline=$((SECONDS + WAIT_MAX))
  kill "$REDIS_PID"
  while kill -0 "$REDIS_PID" 2>/dev/null && ((SECONDS < deadline)); do
    sleep 0.05
  done
  kill -0 "$REDIS_PID" 2>/dev/null && kill -9 "$REDIS_PID"
  wait "$REDIS_PID" 2>/dev/null || true
  REDIS_PID=
}

echo "restart.sh: N=$N, TAIL_MB=$TAIL_MB, TRIALS=$TRIALS, data in $work"
df -h "$work" | tail -1

# ---------------------------------------------------------------- cairn
"$BENCH" --fill "$work/cairn" -n "$N" --tail-mb "$TAIL_MB" ||
  die "ckpt-bench --fill failed"
cairn_best= cairn_wall_best=
for ((t = 1; t <= TRIALS; t++)); do
  t0=$(now)
  out=$("$BENCH" --open-only "$work/cairn" -n "$N") || die "--open-only failed"
  t1=$(now)
  secs=$(sed -n 's/.*open_seconds=\([0-9.]*\).*/\1/p' <<<"$out")
  [[ -n $secs ]] || die "no open_seconds in: $out"
  wall=$(elapsed "$t0" "$t1")
  echo "  cairn open #$t: $out (process wall ${wall}s)"
  cairn_best=$(min "$cairn_best" "$secs")
  cairn_wall_best=$(min "$cairn_wall_best" "$wall")
done

# ---------------------------------------------------------------- redis
mkdir -p "$work/redis"
PORT=$(free_port)
echo "redis: populating $N keys on 127.0.0.1:$PORT (appendonly yes)"
start_redis "$work/redis" "$PORT" --appendonly yes --appendfsync everysec
wait_ready
t0=$(now)
"$BENCH" --resp -n "$N" | cli --pipe --pipe-timeout 120 | tail -1
dbsize=$(cli dbsize)
[[ $dbsize == "$N" ]] || die "redis holds $dbsize keys, not $N"
[[ $(cli save) == OK ]] || die "SAVE failed"
echo "  populated and saved in $(elapsed "$t0" "$(now)")s;" \
  "used_memory $(cli info memory | sed -n 's/^used_memory_human:\(.*\)\r$/\1/p')"
stop_redis
ls -l "$work/redis"/dump.rdb "$work/redis"/aof/ | sed 's/^/  /'

# restart_time KIND ARGS...: best of TRIALS restarts, in REDIS_BEST.
restart_time() {
  local kind=$1 t t0 t1 secs loaded
  shift
  REDIS_BEST=
  for ((t = 1; t <= TRIALS; t++)); do
    PORT=$(free_port)
    t0=$(now)
    start_redis "$work/redis" "$PORT" "$@"
    wait_ready
    t1=$(now)
    secs=$(elapsed "$t0" "$t1")
    dbsize=$(cli dbsize)
    loaded=$(grep -E 'DB loaded from (disk|append only file)' \
             "$work/redis/redis.log" | tail -1 | sed 's/.*: //')
    echo "  redis $kind restart #$t: ${secs}s to PING + loading:0," \
         "$dbsize keys (log: $loaded)"
    [[ $dbsize == "$N" ]] || die "redis restarted with $dbsize keys"
    stop_redis
    REDIS_BEST=$(min "$REDIS_BEST" "$secs")
  done
}

restart_time RDB --appendonly no
rdb_best=$REDIS_BEST
restart_time AOF --appendonly yes
aof_best=$REDIS_BEST

# ---------------------------------------------------------------- summary
ratio() { awk -v r="$1" -v c="$2" 'BEGIN { printf "%.1f", r / c }'; }
met() { awk -v r="$1" -v c="$2" 'BEGIN { print (r / c >= 5) ? "yes" : "NO" }'; }
echo
printf "%-34s %10s %10s %8s %6s %5s\n" figure "cairn s" "redis s" ratio goal "met?"
printf "%-34s %10s %10s %8s %6s %5s\n" "restart vs Redis RDB" "$cairn_best" \
  "$rdb_best" "$(ratio "$rdb_best" "$cairn_best")" ">= 5x" "$(met "$rdb_best" "$cairn_best")"
printf "%-34s %10s %10s %8s %6s %5s\n" "restart vs Redis AOF" "$cairn_best" \
  "$aof_best" "$(ratio "$aof_best" "$cairn_best")" ">= 5x" "$(met "$aof_best" "$cairn_best")"
printf "%-34s %10s %10s %8s\n" "  (cairn process wall) vs RDB" "$cairn_wall_best" \
  "$rdb_best" "$(ratio "$rdb_best" "$cairn_wall_best")"
printf "%-34s %10s %10s %8s\n" "  (cairn process wall) vs AOF" "$cairn_wall_best" \
  "$aof_best" "$(ratio "$aof_best" "$cairn_wall_best")"
echo "cairn: cairn_open (store + replay of ${TAIL_MB} MB of log), best of $TRIALS;"
echo "redis: launch to PING + loading:0, best of $TRIALS; warm page cache for all"
