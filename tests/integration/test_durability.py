#!/usr/bin/python3
"""Restart durability: every acknowledged write survives SIGKILL (with
durability fsync) and SIGTERM; SHUTDOWN ends the server."""
import os
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cairntest as ct  # noqa: E402


def eq(got, want, what=""):
    assert got == want, "%s: got %r, want %r" % (what, got, want)


def fresh_dir():
    d = tempfile.mkdtemp(prefix="cairnd-it-dur-")
    return d


class Dir:
    """A data directory shared by two servers, removed at the end."""

    def __init__(self):
        self.path = fresh_dir()

    def __enter__(self):
        return self.path

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)
        return False


def write_data(s, clients=4, per_client=250):
    """Writes from several clients at once; returns what was acked."""
    acked = {}
    errors = []
    lock = threading.Lock()

    def worker(w):
        try:
            c = s.raw(timeout=20)
            cmds = [ct.encode("SET", "w%d:%d" % (w, i), "val-%d-%d" % (w, i))
                    for i in range(per_client)]
            c.send(b"".join(cmds))
            for i in range(per_client):
                r = c.read()
                if r != b"OK":
                    errors.append((w, i, r))
                    continue
                with lock:
                    acked[b"w%d:%d" % (w, i)] = b"val-%d-%d" % (w, i)
            c.close()
        except Exception as e:  # reported below
            errors.append(repr(e))
    ts = [threading.Thread(target=worker, args=(w,)) for w in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    eq(errors, [], "every write acknowledged OK")
    c = s.raw()
    eq(c.cmd("HSET", "h", "a", "1", "b", "2"), 2)
    eq(c.cmd("SADD", "st", "x", "y", "z"), 3)
    eq(c.cmd("ZADD", "z", "1.5", "m1", "2", "m2"), 2)
    eq(c.cmd("RPUSH", "l", "one", "two", "three"), 3)
    eq(c.cmd("SET", "ttl", "v", "EX", "1000"), b"OK")
    eq(c.cmd("PEXPIRE", "h", "2000000"), 1)
    eq(c.cmd("INCRBY", "ctr", "41"), 41)
    eq(c.cmd("INCR", "ctr"), 42)
    eq(c.cmd("SELECT", "3"), b"OK")
    eq(c.cmd("SET", "in3", "three"), b"OK")
    eq(c.cmd("DEL", "nonexistent"), 0)
    c.cmd("SELECT", "0")
    eq(c.cmd("SET", "gone", "x"), b"OK")
    eq(c.cmd("DEL", "gone"), 1)
    c.close()
    return acked


def check_data(s, acked, extra=0):
    c = s.raw(timeout=20)
    keys = list(acked)
    for i in range(0, len(keys), 200):
        part = keys[i:i + 200]
        got = c.cmd("MGET", *part)
        for k, v in zip(part, got):
            eq(v, acked[k], "key %r after restart" % k)
    eq(c.cmd("HGETALL", "h"), [b"a", b"1", b"b", b"2"]
       if c.cmd("HKEYS", "h")[0] == b"a" else [b"b", b"2", b"a", b"1"])
    eq(sorted(c.cmd("SMEMBERS", "st")), [b"x", b"y", b"z"])
    eq(c.cmd("ZRANGE", "z", "0", "-1", "WITHSCORES"),
       [b"m1", b"1.5", b"m2", b"2"])
    eq(c.cmd("LRANGE", "l", "0", "-1"), [b"one", b"two", b"three"])
    ttl = c.cmd("TTL", "ttl")
    assert 900 <= ttl <= 1000, "TTL kept approximately: %r" % ttl
    pttl = c.cmd("PTTL", "h")
    assert 1900000 <= pttl <= 2000000, pttl
    eq(c.cmd("TTL", "st"), -1)
    eq(c.cmd("GET", "ctr"), b"42")
    eq(c.cmd("EXISTS", "gone"), 0)
    c.cmd("SELECT", "3")
    eq(c.cmd("GET", "in3"), b"three")
    c.cmd("SELECT", "0")
    eq(c.cmd("DBSIZE"), len(acked) + 6 + extra)
    c.close()


def test_sigkill_keeps_acknowledged_writes():
    with Dir() as d:
        s = ct.server("--durability", "fsync", datadir=d)
        acked = write_data(s)
        eq(len(acked), 1000)
        port = s.port
        s.kill()
        s2 = ct.server("--durability", "fsync", datadir=d)
        _ = port
        check_data(s2, acked)
        # A second crash after more writes.
        c = s2.raw()
        eq(c.cmd("SET", "after", "restart"), b"OK")
        s2.kill()
        s3 = ct.server("--durability", "fsync", datadir=d)
        eq(s3.raw().cmd("GET", "after"), b"restart")
        check_data(s3, acked, extra=1)


def test_sigterm_clean_exit():
    with Dir() as d:
        s = ct.server(datadir=d)
        acked = write_data(s, clients=2, per_client=100)
        rc = s.stop()
        eq(rc, 0, "exit status after SIGTERM")
        log = s.stderr_text()
        assert "error" not in log.lower() or '"level":"error"' not in log, \
            log
        s2 = ct.server(datadir=d)
        check_data(s2, acked)


def test_shutdown_commands():
    with Dir() as d:
        s = ct.server(datadir=d)
        c = s.raw()
        eq(c.cmd("SET", "k", "v"), b"OK")
        c.send(ct.encode("SHUTDOWN", "NOSAVE"))
        c.read_closed(10)
        rc = s.wait_exit(10)
        eq(rc, 0, "exit status after SHUTDOWN NOSAVE")
        s.proc = None
        s2 = ct.server(datadir=d)
        c = s2.raw()
        eq(c.cmd("GET", "k"), b"v", "the log keeps the write without a save")
        c.send(ct.encode("SHUTDOWN"))
        c.read_closed(10)
        eq(s2.wait_exit(10), 0, "exit status after SHUTDOWN")
        s2.proc = None
        s3 = ct.server(datadir=d)
        eq(s3.raw().cmd("GET", "k"), b"v")
        r = s3.raw().cmd("SHUTDOWN", "BOGUS")
        assert isinstance(r, ct.Err), r
        assert s3.alive()


def test_save_stores_the_writes_of_the_interval():
    # Under interval durability a write is acknowledged before it is
    # durable.  SAVE and BGSAVE store every write made before them, as in
    # Redis: their checkpoint covers them, and they are durable.
    s = ct.server("--durability", "interval", "--interval-ms", "600000")
    c = s.raw()
    for i in range(100):
        eq(c.cmd("SET", "k%d" % i, str(i)), b"OK")
    eq(c.cmd("SAVE"), b"OK")
    d = ct.info(c, "persistence")
    eq(d["cairn_durable_lsn"], d["cairn_last_lsn"])
    eq(d["cairn_checkpoint_lsn"], d["cairn_last_lsn"])
    eq(d["rdb_changes_since_last_save"], "0")
    for i in range(100, 150):
        eq(c.cmd("SET", "k%d" % i, str(i)), b"OK")
    r = c.cmd("BGSAVE")
    assert r in (b"Background saving started", b"OK"), r
    deadline = time.time() + 20
    d = ct.info(c, "persistence")
    while d["cairn_checkpoints"] == "1" and time.time() < deadline:
        time.sleep(0.05)
        d = ct.info(c, "persistence")
    eq(d["cairn_checkpoints"], "2")
    eq(d["cairn_checkpoint_lsn"], d["cairn_last_lsn"])


def test_info_counts_what_memory_and_disk_answer():
    with Dir() as d:
        s = ct.server(datadir=d)
        eq(s.raw().cmd("SET", "k", "v"), b"OK")
        eq(s.stop(), 0)
        s2 = ct.server(datadir=d)          # memory starts empty
        c = s2.raw()
        eq(c.cmd("GET", "k"), b"v")        # from disk, then cached
        eq(c.cmd("GET", "k"), b"v")        # from memory
        eq(c.cmd("GET", "none"), None)     # one lookup on disk
        m = ct.info(c, "memory")
        eq((m["cairn_memory_entries"], m["cairn_disk_entries"]), ("1", "1"))
        eq((m["cairn_memory_hits"], m["cairn_disk_reads"]), ("1", "2"))
        eq(c.cmd("SET", "k2", os.urandom(1000)), b"OK")  # no compression
        eq(c.cmd("SAVE"), b"OK")
        p = ct.info(c, "persistence")
        assert int(p["cairn_last_checkpoint_bytes"]) >= 1000, p


def test_interval_durability_restart_after_sigterm():
    with Dir() as d:
        s = ct.server("--durability", "interval", "--interval-ms", "50",
                      datadir=d)
        c = s.raw()
        c.send(b"".join(ct.encode("SET", "i%d" % i, str(i))
                        for i in range(500)))
        for _ in range(500):
            eq(c.read(), b"OK")
        eq(s.stop(), 0)
        s2 = ct.server("--durability", "interval", datadir=d)
        c = s2.raw()
        eq(c.cmd("DBSIZE"), 500)
        eq(c.cmd("GET", "i499"), b"499")


if __name__ == "__main__":
    _ = time
    ct.main(globals())
