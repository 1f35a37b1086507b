#!/bin/sh
# test_dump_live.sh - cairn-dump --live beside a running cairnd under
# write load: every dump restores to exactly the state at its LSN.
#
# One client writes in order, n = 1, 2, ...: MULTI, SET key:n n, SET
# counter n, EXEC, waiting for each reply (durability fsync; checkpoints
# every second, so dumps see checkpoints and log tails of every size).
# Since each n is one transaction, any consistent cut holds, for some m:
# counter = m, key:1 .. key:m with the values 1 .. m, and nothing else;
# m = 0 is the empty state.  A dump that is not a consistent cut (an entry
# missing, a key past the counter, a stale value) breaks this.
# Each dump is restored into a fresh directory, dumped offline again and
# listed, and the listing is checked against the invariant.  The writer
# must keep making progress while the dumps run.
#
# Binaries: $CAIRND, $CAIRN_DUMP, $CAIRN_RESTORE, or the build tree's.
# Needs python3 (the writer speaks RESP over a socket).
# Exit 0 if every check passed, 1 if one failed, 77 if a tool is missing.
set -u
B=${CAIRN_BUILDDIR:-.}
CAIRND=${CAIRND:-$B/cairnd}
DUMP=${CAIRN_DUMP:-$B/tools/cairn-dump}
RESTORE=${CAIRN_RESTORE:-$B/tools/cairn-restore}
for b in "$CAIRND" "$DUMP" "$RESTORE"; do
  [ -x "$b" ] || { echo "skip: $b not built"; exit 77; }
done
command -v python3 >/dev/null 2>&1 || { echo "skip: no python3"; exit 77; }
command -v timeout >/dev/null 2>&1 || { echo "skip: no timeout"; exit 77; }

T=$(mktemp -d "${TMPDIR:-/tmp}/cairn-dumplive-XXXXXX") || exit 1
SRV=
WRITER=
stop() { # stop PID: TERM, a bounded wait, then KILL
  [ -n "$1" ] || return 0
  kill -TERM "$1" 2>/dev/null
  i=0
  while kill -0 "$1" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  kill -KILL "$1" 2>/dev/null
  wait "$1" 2>/dev/null
  return 0
}
cleanup() {
  stop "$WRITER"
  stop "$SRV"
  rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
bad() { fail=$((fail + 1)); echo "FAIL - $1"; }
check() { # check NAME COMMAND...
  name=$1; shift
  if "$@"; then ok "$name"; else bad "$name"; fi
}

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$CAIRND" --port "$PORT" --bind 127.0.0.1 --dir "$T/data" --durability fsync \
  --checkpoint-interval 1000 --checkpoint-bytes 1mb --loglevel warning \
  >"$T/cairnd.log" 2>&1 &
SRV=$!

# The writer: connects (retrying for up to 10 s while cairnd starts), then
# writes transaction after transaction until killed or 60 s pass, and
# keeps the last n acknowledged in $T/acked.
cat >"$T/writer.py" <<'EOF'
import socket, sys, time
port, acked = int(sys.argv[1]), sys.argv[2]
end = time.time() + 10
while True:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        break
    except OSError:
        if time.time() > end:
            sys.exit("writer: cannot connect")
        time.sleep(0.05)
f = s.makefile("rb")
def cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out
def reply():
    line = f.readline()
    if not line:
        sys.exit("writer: connection closed")
    if line[:1] == b"-":
        sys.exit("writer: error " + line.decode(errors="replace"))
    if line[:1] == b"*":
        for _ in range(int(line[1:])):
            reply()
    elif line[:1] == b"$" and int(line[1:]) >= 0:
        f.read(int(line[1:]) + 2)
n, stop = 0, time.time() + 60
while time.time() < stop:
    n += 1
    s.sendall(cmd("MULTI") + cmd("SET", "key:%d" % n, str(n)) +
              cmd("SET", "counter", str(n)) + cmd("EXEC"))
    for _ in range(4):
        reply()
    if n % 20 == 0:
        with open(acked + ".tmp", "w") as a:
            a.write(str(n))
        import os
        os.replace(acked + ".tmp", acked)
EOF
python3 "$T/writer.py" "$PORT" "$T/acked" 2>"$T/writer.err" &
WRITER=$!

acked() { cat "$T/acked" 2>/dev/null || echo 0; }
# wait_acked N: until the writer has N acknowledged (bounded: 20 s).
wait_acked() {
  i=0
  while [ "$(acked)" -lt "$1" ] && [ $i -lt 200 ]; do
    kill -0 "$WRITER" 2>/dev/null || return 1
    sleep 0.1
    i=$((i + 1))
  done
  [ "$(acked)" -ge "$1" ]
}
check "the writer is running" wait_acked 100

# The listing of a restored directory against the invariant; prints m.
cat >"$T/verify.py" <<'EOF'
import sys
seen = {}
for line in open(sys.argv[1], encoding="latin-1"):
    if line.startswith("#"):
        continue
    ns, key, typ, exp, idle, val = line.rstrip("\n").split("\t")
    if ns != "default" or typ != "string" or key in seen:
        sys.exit("unexpected entry: " + line.strip())
    seen[key] = val
m = int(seen.pop("counter", "0"))
for n in range(1, m + 1):
    if seen.pop("key:%d" % n, None) != str(n):
        sys.exit("counter is %d but key:%d is missing or wrong" % (m, n))
if seen:
    sys.exit("counter is %d but %d more keys, e.g. %s" %
             (m, len(seen), sorted(seen)[0]))
print(m)
EOF

last=0
for i in 1 2 3 4 5; do
  sleep 1 # a checkpoint (every second) comes between dumps
  before=$(acked)
  if timeout 20 "$DUMP" --live -q -o "$T/d$i" "$T/data" 2>"$T/dump.err"; then
    ok "live dump $i"
  else
    bad "live dump $i: $(cat "$T/dump.err")"
    continue
  fi
  check "restore of dump $i" timeout 20 "$RESTORE" -q "$T/d$i" "$T/r$i"
  timeout 20 "$DUMP" -q "$T/r$i" 2>/dev/null | timeout 20 "$DUMP" --list - >"$T/l$i"
  if m=$(python3 "$T/verify.py" "$T/l$i" 2>"$T/verify.err"); then
    ok "dump $i is a consistent cut (counter $m, acked $before before it)"
  else
    bad "dump $i is a consistent cut: $(cat "$T/verify.err")"
    m=0
  fi
  # Everything acknowledged before the dump began is in it (fsync).
  check "dump $i holds every write acknowledged before it" [ "$m" -ge "$before" ]
  check "dumps move forward ($last, then $m)" [ "$m" -ge "$last" ]
  last=$m
  rm -rf "$T/r$i"
  # The writer is not held up: it acknowledges more between dumps.
  check "the writer keeps going after dump $i" wait_acked $(($(acked) + 20))
done

check "the writer is still running" kill -0 "$WRITER"
check "cairnd is still running" kill -0 "$SRV"
stop "$WRITER"
WRITER=
stop "$SRV"
SRV=
echo "$pass passed, $fail failed (writer reached $(acked))"
[ "$fail" -eq 0 ]
