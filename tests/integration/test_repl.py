#!/usr/bin/python3
"""Replication: full sync of a new follower, a follower is read-only, a
restarted follower resumes, a follower past the kept log gets a full sync,
WAIT and WAITAOF, and a follower refuses a leader that restarted empty.

Every node is a cairnd on 127.0.0.1 with its own port and data directory.
The helpers here are shared with test_repl_faults.py.
"""
import json
import os
import re
import shutil
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cairntest as ct  # noqa: E402
from cairntest import Err  # noqa: E402

READONLY = Err("READONLY You can't write against a read only replica.")
NOREPLICAS = Err("NOREPLICAS Not enough good replicas to write.")
SYNC_TIMEOUT = 60.0     # ASan builds are slow; a healthy run takes < 2 s
TEST_TIMEOUT = 150      # seconds per test, then the test fails


def eq(got, want, what=""):
    assert got == want, "%s: got %r, want %r" % (what, got, want)


def bounded(seconds=TEST_TIMEOUT):
    """Fail a test that runs longer than seconds (SIGALRM in the main
    thread, which only waits in bounded steps)."""
    def wrap(fn):
        def run():
            def expired(*_):
                raise AssertionError("test ran longer than %d s" % seconds)
            old = signal.signal(signal.SIGALRM, expired)
            signal.alarm(seconds)
            try:
                fn()
                stop_clean()
            finally:
                signal.alarm(0)
                signal.signal(signal.SIGALRM, old)
        run.__name__ = fn.__name__
        return run
    return wrap


def stop_clean():
    """Stop every node still running (SIGTERM); each must exit 0 with no
    sanitizer report in its log."""
    for s in list(ct.Tracker.live):
        if s.proc is None:
            continue
        sigcont(s)
        rc = s.stop()
        log = s.stderr_text()
        assert "Sanitizer" not in log and "runtime error:" not in log, \
            "sanitizer report from :%d:\n%s" % (s.port, log[-4000:])
        eq(rc, 0, "exit status of :%d after SIGTERM" % s.port)


# ---------------------------------------------------------------------------
# Nodes

def leader(*directives):
    return ct.server(*directives)


def follower(of, *directives):
    return ct.server("--replicaof", of.host, str(of.port), *directives)


def restart(srv, *directives):
    """Start srv again on its port and data directory; directives, when
    given, replace its previous ones."""
    if directives:
        srv.directives = list(directives)
    return srv.start(srv.port)


def sigstop(*srvs):
    for s in srvs:
        os.kill(s.proc.pid, signal.SIGSTOP)


def sigcont(*srvs):
    for s in srvs:
        if s.alive():
            os.kill(s.proc.pid, signal.SIGCONT)


def info(srv, section="replication"):
    """INFO section as a dict of str -> str."""
    with srv.raw(timeout=10) as c:
        text = c.cmd("INFO", section)
    assert isinstance(text, bytes), "INFO %s: %r" % (section, text)
    out = {}
    for line in text.decode().split("\r\n"):
        if line and not line.startswith("#") and ":" in line:
            k, v = line.split(":", 1)
            out[k] = v
    return out


def ival(srv, field, section="replication"):
    v = info(srv, section).get(field)
    assert v is not None, "INFO %s has no %s" % (section, field)
    return int(v)


def sync_full(srv):
    return ival(srv, "sync_full", "stats")


def sync_partial_ok(srv):
    return ival(srv, "sync_partial_ok", "stats")


def synced(lead, *followers):
    """True when every follower's link is up and its applied offset equals
    the leader's written offset."""
    off = ival(lead, "master_repl_offset")
    for f in followers:
        i = info(f)
        assert i.get("role") == "slave", \
            "node :%d is not a follower: %r" % (f.port, i)
        if i.get("master_link_status") != "up":
            return False
        if int(i.get("slave_repl_offset", -1)) != off:
            return False
    return True


def wait_synced(lead, *followers, timeout=SYNC_TIMEOUT):
    if ct.wait_until(lambda: synced(lead, *followers), timeout, 0.05):
        return
    lines = ["leader master_repl_offset %s"
             % info(lead).get("master_repl_offset")]
    for f in followers:
        i = info(f)
        lines.append("follower :%d link %s slave_repl_offset %s error %r" % (
            f.port, i.get("master_link_status"), i.get("slave_repl_offset"),
            i.get("master_link_error")))
    raise AssertionError("followers did not catch up in %.0f s: %s"
                         % (timeout, "; ".join(lines)))


# ---------------------------------------------------------------------------
# Data

def pipeline(srv, cmds, timeout=30):
    """Send every command at once; return the replies in order."""
    with srv.raw(timeout=timeout) as c:
        out = []
        for i in range(0, len(cmds), 1000):
            part = cmds[i:i + 1000]
            c.send(b"".join(ct.encode(*a) for a in part))
            out.extend(c.read() for _ in part)
        return out


def fill(srv, prefix, n, size=100, random=False):
    """SET prefix:I to a size-byte value for I in 0..n-1; all must be OK.
    random: values that do not compress (the log's frames are LZ4), for
    tests that need the log to grow.  Returns {key: value}."""
    data = {}
    for i in range(n):
        k = b"%s:%d" % (prefix.encode(), i)
        if random:
            data[k] = os.urandom(size)
        else:
            data[k] = (b"%s=%d;" % (prefix.encode(), i) * size)[:size]
    replies = pipeline(srv, [("SET", k, v) for k, v in data.items()])
    bad = [r for r in replies if r != b"OK"]
    eq(bad, [], "replies to %d SETs of %s" % (n, prefix))
    return data


def some_types(srv):
    """A key of each type, with and without a TTL."""
    eq(pipeline(srv, [
        ("HSET", "h", "a", "1", "b", "2"), ("SADD", "s", "x", "y"),
        ("ZADD", "z", "1.5", "m1", "2", "m2"), ("RPUSH", "l", "1", "2", "3"),
        ("SET", "ttl", "v", "EX", "5000"), ("PEXPIRE", "h", "7000000"),
        ("INCRBY", "n", "41"), ("SET", "gone", "x"), ("DEL", "gone")]),
        [2, 2, 2, 3, b"OK", 1, 41, b"OK", 1])


def keys(srv):
    with srv.raw(timeout=30) as c:
        cursor, out = b"0", []
        for _ in range(1_000_000):
            cursor, part = c.cmd("SCAN", cursor, "COUNT", "1000")
            out.extend(part)
            if cursor == b"0":
                return sorted(set(out))
    raise AssertionError("SCAN did not end")


FETCH = {b"string": ("GET",), b"hash": ("HGETALL",), b"set": ("SMEMBERS",),
         b"zset": ("ZRANGE", "0", "-1", "WITHSCORES"),
         b"list": ("LRANGE", "0", "-1")}


def dump(srv):
    """{key: (type, value, ttl class)} of DB 0.  Hash and set members are
    sorted; the TTL is kept to the nearest 100 s so nodes compare equal."""
    ks = keys(srv)
    types = pipeline(srv, [("TYPE", k) for k in ks])
    cmds = [FETCH[t][:1] + (k,) + FETCH[t][1:] for k, t in zip(ks, types)]
    vals = pipeline(srv, cmds)
    ttls = pipeline(srv, [("PTTL", k) for k in ks])
    out = {}
    for k, t, v, ttl in zip(ks, types, vals, ttls):
        if t == b"hash":
            v = sorted(zip(v[::2], v[1::2]))
        elif t == b"set":
            v = sorted(v)
        out[k] = (t, v, ttl if ttl < 0 else round(ttl / 100000.0))
    return out


def same_data(a, b, what=""):
    da, db = dump(a), dump(b)
    if da == db:
        return da
    only_a = sorted(set(da) - set(db))[:5]
    only_b = sorted(set(db) - set(da))[:5]
    diff = [k for k in da if k in db and da[k] != db[k]][:5]
    raise AssertionError(
        "%s: data differ (%d vs %d keys); only on :%d %r; only on :%d %r; "
        "different: %r" % (what, len(da), len(db), a.port, only_a, b.port,
                           only_b, [(k, da[k], db[k]) for k in diff]))


def has_all(srv, acked, what):
    """Every key of acked is on srv with its value."""
    ks = list(acked)
    got = pipeline(srv, [("GET", k) for k in ks])
    missing = [(k, acked[k][:16], g if g is None else g[:16])
               for k, g in zip(ks, got) if g != acked[k]]
    assert not missing, "%s: %d of %d acknowledged writes missing or wrong " \
        "on :%d, e.g. %r" % (what, len(missing), len(ks), srv.port,
                             missing[:5])


class Load:
    """Client threads writing distinct keys one at a time; records every
    write that was answered +OK.  A thread stops at its first error or
    closed connection (the node was killed), or at stop()."""

    def __init__(self, srv, threads=4, prefix="load", size=64):
        self.acked = {}
        self.errors = []
        self.lock = threading.Lock()
        self.halt = threading.Event()
        self.ts = [threading.Thread(target=self._run,
                                    args=(srv.host, srv.port, prefix, w, size),
                                    daemon=True)
                   for w in range(threads)]
        for t in self.ts:
            t.start()

    def _run(self, host, port, prefix, w, size):
        try:
            c = ct.Raw(host, port, timeout=30)
        except OSError as e:
            self.errors.append(repr(e))
            return
        i = 0
        while not self.halt.is_set():
            k = b"%s:%d:%d" % (prefix.encode(), w, i)
            v = os.urandom(size)
            try:
                r = c.cmd("SET", k, v)
            except (OSError, ct.Closed) as e:
                self.errors.append(repr(e))
                break
            if r != b"OK":
                self.errors.append(r)
                break
            with self.lock:
                self.acked[k] = v
            i += 1
        c.close()

    def count(self):
        with self.lock:
            return len(self.acked)

    def wait_count(self, n, timeout=30):
        assert ct.wait_until(lambda: self.count() >= n, timeout, 0.01), \
            "only %d writes acknowledged, errors %r" % (self.count(),
                                                        self.errors[:3])

    def stop(self):
        self.halt.set()
        for t in self.ts:
            t.join(35)
        with self.lock:
            return dict(self.acked)


def log_messages(srv):
    """cairnd's log lines (JSON objects) as their "msg" fields followed by
    their other fields except the time stamp."""
    out = []
    for line in srv.stderr_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            out.append(line)
            continue
        rec.pop("time", None)
        msg = str(rec.pop("msg", ""))
        out.append(" ".join([msg] + ["%s=%s" % kv for kv in rec.items()]))
    return out


def wait_log(srv, pattern, timeout=SYNC_TIMEOUT):
    """The first log message matching pattern (a regex, case-insensitive)."""
    rx = re.compile(pattern, re.I)

    def find():
        for line in log_messages(srv):
            if rx.search(line):
                return line
        return None
    line = ct.wait_until(find, timeout, 0.05)
    assert line, "no log line matching %r on :%d" % (pattern, srv.port)
    return line


# ---------------------------------------------------------------------------
# Tests

@bounded()
def test_new_follower_full_sync():
    a = leader("--checkpoint-bytes", "1mb")
    data = fill(a, "before", 3000, 300)
    some_types(a)
    eq(a.raw().cmd("SAVE"), b"OK")
    data.update(fill(a, "after-save", 200))
    full0 = sync_full(a)
    epoch_a = ival(a, "epoch")
    b = follower(a)
    wait_synced(a, b)
    eq(sync_full(a), full0 + 1, "full syncs served")
    got = same_data(a, b, "after the full sync")
    eq(len(got), len(data) + 6, "keys on the follower")
    has_all(b, data, "follower")
    # Streaming after the sync.
    more = fill(a, "streamed", 100)
    eq(pipeline(a, [("DEL", "before:0"), ("INCR", "n")]), [1, 42])
    wait_synced(a, b)
    has_all(b, more, "streamed")
    eq(b.raw().cmd("GET", "before:0"), None, "a DEL reaches the follower")
    eq(b.raw().cmd("GET", "n"), b"42")
    same_data(a, b, "after streaming")
    eq(sync_full(a), full0 + 1, "no second full sync")

    ia, ib = info(a), info(b)
    eq(ia["role"], "master")
    eq(ia["connected_slaves"], "1")
    m = re.fullmatch(r"ip=127\.0\.0\.1,port=(\d+),state=online,offset=(\d+),"
                     r"lag=(\d+)", ia.get("slave0", ""))
    assert m, "slave0 line: %r" % ia.get("slave0")
    eq(int(m.group(1)), b.port, "slave0 port is the follower's")
    assert ct.wait_until(lambda: int(re.search(
        r"offset=(\d+)", info(a)["slave0"]).group(1)) ==
        int(info(a)["master_repl_offset"]), 10), \
        "slave0 offset reaches the leader's offset: %r" % info(a)
    assert re.fullmatch(r"[0-9a-f]{40}", ia["master_replid"]), ia
    eq(ia["master_failover_state"], "no-failover")
    eq(ia["second_repl_offset"], "-1")
    eq(ia["repl_backlog_active"], "1")
    eq(int(ia["epoch"]), epoch_a)
    eq(ib["role"], "slave")
    eq(ib["master_host"], "127.0.0.1")
    eq(int(ib["master_port"]), a.port)
    eq(ib["master_link_status"], "up")
    eq(ib["master_sync_in_progress"], "0")
    eq(ib["slave_read_only"], "1")
    eq(ib["slave_priority"], "100")
    eq(ib["connected_slaves"], "0")
    eq(int(ib["epoch"]), epoch_a, "the follower's epoch is the leader's")
    assert int(ib["master_last_io_seconds_ago"]) >= 0, ib
    assert "master_link_down_since_seconds" not in ib, ib
    eq(int(ib["slave_repl_offset"]), int(ia["master_repl_offset"]))

    off = int(ia["master_repl_offset"])
    ra = a.raw().cmd("ROLE")
    eq(ra[0], b"master")
    eq(ra[1], off)
    eq(len(ra[2]), 1)
    eq(ra[2][0][:2], [b"127.0.0.1", str(b.port).encode()])
    assert int(ra[2][0][2]) <= off, ra
    rb = b.raw().cmd("ROLE")
    eq(rb, [b"slave", b"127.0.0.1", a.port, b"connected", off], "ROLE")


@bounded()
def test_follower_is_read_only():
    a = leader()
    eq(a.raw().cmd("SET", "k", "v"), b"OK")
    b = follower(a, "--replica-priority", "7")
    wait_synced(a, b)
    c = b.raw()
    for cmd in (("SET", "k", "w"), ("SET", "new", "x"), ("DEL", "k"),
                ("INCR", "n"), ("HSET", "h", "f", "v"), ("EXPIRE", "k", "9"),
                ("LPUSH", "l", "x"), ("FLUSHALL",)):
        eq(c.cmd(*cmd), READONLY, " ".join(cmd))
    eq(c.cmd("MULTI"), b"OK")
    c.cmd("SET", "k", "in-multi")
    r = c.cmd("EXEC")
    assert r == READONLY or r == [READONLY] or (
        isinstance(r, Err) and r.text.startswith("EXECABORT")), \
        "a write in MULTI on a follower: %r" % r
    eq(c.cmd("GET", "k"), b"v", "reads work, nothing changed")
    eq(c.cmd("EXISTS", "new"), 0)
    eq(info(b)["slave_priority"], "7")
    eq(a.raw().cmd("GET", "k"), b"v")


@bounded()
def test_restarted_follower_resumes_without_full_sync():
    a = leader()
    fill(a, "first", 500)
    b = follower(a)
    wait_synced(a, b)
    full0, part0 = sync_full(a), sync_partial_ok(a)
    eq(b.stop(), 0, "follower exit status after SIGTERM")
    more = fill(a, "while-down", 500)
    eq(a.raw().cmd("DEL", "first:7"), 1)
    restart(b)
    wait_synced(a, b)
    eq(sync_full(a), full0, "full syncs after the follower came back")
    assert sync_partial_ok(a) >= part0 + 1, \
        "sync_partial_ok %d, was %d" % (sync_partial_ok(a), part0)
    has_all(b, more, "writes made while the follower was down")
    same_data(a, b, "after resuming")


@bounded()
def test_follower_behind_kept_log_gets_full_sync():
    small = ("--log-segment-size", "1mb", "--repl-backlog-size", "1mb",
             "--checkpoint-bytes", "1mb")
    a = leader(*small)
    fill(a, "first", 200)
    b = follower(a)
    wait_synced(a, b)
    full0 = sync_full(a)
    eq(b.stop(), 0)
    data = fill(a, "big", 6000, 1000, random=True)  # 6 MB of log
    eq(a.raw().cmd("SAVE"), b"OK")
    data.update(fill(a, "after", 10))
    eq(a.raw().cmd("SAVE"), b"OK")
    # The follower stopped at LSN 200: the leader no longer has 201.
    first = ival(a, "repl_backlog_first_byte_offset")
    assert first > 201, "the leader kept its old log (first offset %d)" % first
    restart(b)
    wait_synced(a, b)
    eq(sync_full(a), full0 + 1, "full syncs after the follower came back")
    has_all(b, data, "follower after the full sync")
    same_data(a, b, "after the full sync")


@bounded()
def test_wait_and_waitaof():
    a = leader()
    b = follower(a)
    wait_synced(a, b)
    c = a.raw(timeout=30)
    eq(c.cmd("SET", "k1", "v"), b"OK")
    eq(c.cmd("WAIT", "1", "5000"), 1, "WAIT with a live follower")
    eq(c.cmd("SET", "k2", "v"), b"OK")
    eq(c.cmd("WAITAOF", "1", "1", "5000"), [1, 1], "WAITAOF")
    eq(c.cmd("WAIT", "0", "0"), 1, "WAIT 0 answers at once with the count")
    sigstop(b)
    try:
        eq(c.cmd("SET", "k3", "v"), b"OK", "min-replicas-ack 0: no wait")
        t0 = time.monotonic()
        eq(c.cmd("WAIT", "1", "1000"), 0, "WAIT with the follower stopped")
        assert time.monotonic() - t0 >= 0.9, "WAIT returned before its timeout"
        eq(c.cmd("WAITAOF", "1", "1", "500"), [1, 0], "WAITAOF, stopped")
    finally:
        sigcont(b)
    eq(c.cmd("WAIT", "1", "20000"), 1, "WAIT after the follower resumed")
    eq(c.cmd("SET", "k4", "v"), b"OK")
    eq(c.cmd("WAIT", "2", "300"), 1, "WAIT for more followers than exist")
    eq(b.raw().cmd("GET", "k4"), b"v")


@bounded()
def test_follower_refuses_leader_restarted_empty():
    a = leader()
    fill(a, "old", 300)
    some_types(a)
    b = follower(a)
    wait_synced(a, b)
    before = dump(b)
    eq(a.stop(), 0)
    shutil.rmtree(a.dir)
    os.mkdir(a.dir)
    restart(a)

    def refused():
        i = info(b)
        return i.get("master_link_status") == "down" and \
            i.get("master_link_error") and i
    i = ct.wait_until(refused, SYNC_TIMEOUT, 0.05)
    assert i, "the follower does not report the refusal: %r" % info(b)
    assert re.search(r"empty|data id|resync", i["master_link_error"], re.I), \
        "master_link_error: %r" % i["master_link_error"]
    assert int(i.get("master_link_down_since_seconds", -1)) >= 0, i
    new = fill(a, "new", 50)
    time.sleep(0.5)     # the follower retries meanwhile; it must not wipe
    eq(dump(b), before, "the follower kept its data")
    eq(info(b)["master_link_status"], "down")
    r = a.raw().cmd("RESYNC")
    assert isinstance(r, Err) and r.text.startswith("ERR"), \
        "RESYNC on a leader: %r" % r
    eq(b.raw().cmd("RESYNC"), b"OK")
    wait_synced(a, b)
    has_all(b, new, "after RESYNC")
    got = same_data(a, b, "after RESYNC")
    eq(len(got), 50, "only the new leader's keys")


if __name__ == "__main__":
    ct.main(globals())
