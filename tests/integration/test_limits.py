#!/usr/bin/python3
"""Every limit: bulk and multibulk lengths, the query buffer, maxclients,
the pub/sub output buffer, the idle timeout.  Each time the offending
client is closed and the server keeps serving others."""
import os
import select
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cairntest as ct  # noqa: E402
from cairntest import Err  # noqa: E402

MB = 1024 * 1024


def eq(got, want, what=""):
    assert got == want, "%s: got %r, want %r" % (what, got, want)


def still_serving(s):
    with s.raw() as c:
        eq(c.cmd("SET", "alive", "1"), b"OK")
        eq(c.cmd("GET", "alive"), b"1")


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_writes_wait_while_memory_is_far_past_maxmemory():
    # Entries not yet checkpointed cannot leave memory.  A writer faster
    # than the checkpoint has its writes held back once memory is twice
    # maxmemory, and memory stays near that; other clients' reads go on.
    s = ct.server("--maxmemory", "1mb")
    w, r = s.raw(), s.raw()
    eq(r.cmd("SET", "k", "v"), b"OK")
    n, batch, peak = 30000, 1000, 0
    for b in range(0, n, batch):
        w.send(b"".join(ct.encode("SET", "w%d" % i, os.urandom(1000))
                        for i in range(b, b + batch)))
        got = 0
        while got < batch:
            eq(w.read(), b"OK")
            got += 1
            if got % 250 == 0:
                eq(r.cmd("GET", "k"), b"v")
                peak = max(peak, int(ct.info(r, "memory")["used_memory"]))
    m = ct.info(r, "memory")
    assert int(m["cairn_writes_held"]) >= 1, m
    assert peak <= 2 * MB + MB // 2, "memory peaked at %d bytes" % peak
    eq(r.cmd("DBSIZE"), n + 1)
    eq(len(w.cmd("GET", "w%d" % (n - 1))), 1000)


def test_maxmemory_changes_while_the_server_runs():
    # CONFIG SET maxmemory takes effect at once: clean entries leave memory
    # for the store, and every key stays readable.  The one policy is
    # noeviction, which is what cairn does.
    s = ct.server()
    c = s.raw()
    eq(c.cmd("CONFIG", "GET", "maxmemory-policy"),
       [b"maxmemory-policy", b"noeviction"])
    got = c.cmd("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
    assert isinstance(got, Err) and "must be noeviction" in str(got), got
    eq(c.cmd("CONFIG", "SET", "maxmemory-policy", "noeviction"), b"OK")
    n = 3000
    c.send(b"".join(ct.encode("SET", "m%d" % i, b"%04d" % i * 250)
                    for i in range(n)))
    for _ in range(n):
        eq(c.read(), b"OK")
    eq(c.cmd("SAVE"), b"OK")
    assert int(ct.info(c, "memory")["used_memory"]) > 2 * MB
    eq(c.cmd("CONFIG", "SET", "maxmemory", "1mb"), b"OK")
    eq(c.cmd("CONFIG", "GET", "maxmemory"), [b"maxmemory", b"1048576"])
    ct.wait_until(lambda: int(ct.info(c, "memory")["used_memory"]) <= MB, 20)
    m = ct.info(c, "memory")
    eq(m["maxmemory"], "1048576")
    assert int(m["used_memory"]) <= MB, m
    eq(c.cmd("DBSIZE"), n)
    for i in range(0, n, 97):
        eq(c.cmd("GET", "m%d" % i), b"%04d" % i * 250)


def lmdb_hold():
    return os.path.join(os.environ.get("CAIRN_BUILDDIR", "."), "tests",
                        "lmdb_hold")


def test_deletes_go_on_while_writes_wait_for_memory():
    # Another process holds the store's write lock, so no checkpoint can
    # free memory: a writer past twice maxmemory has its next write held.
    # Deletes from another client are answered meanwhile, as Redis lets
    # them past maxmemory; that client's next write is held in turn.
    s = ct.server("--maxmemory", "1mb")
    w, d = s.raw(), s.raw()
    for i in range(5):
        eq(d.cmd("SET", "del%d" % i, "v"), b"OK")
    hold = subprocess.Popen([lmdb_hold(), s.dir], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    try:
        eq(hold.stdout.readline(), b"held\n")
        held = False
        for i in range(20000):
            w.send(ct.encode("SET", "w%d" % i, os.urandom(1000)))
            if (not select.select([w.sock], [], [], 1)[0] and
                    ct.info(d, "memory")["cairn_write_stalled"] == "1"):
                held = True
                break
            eq(w.read(), b"OK")  # answered, if only slowly
        assert held, "no write was held"
        eq(d.cmd("DEL", "del0", "del1"), 2)
        eq(d.cmd("UNLINK", "del2"), 1)
        eq(d.cmd("GETDEL", "del3"), b"v")
        eq(ct.info(d, "memory")["cairn_write_stalled"], "1")
        d.send(ct.encode("SET", "del3", "again"))
        eq(select.select([d.sock], [], [], 0.5)[0], [], "SET not held")
    finally:
        hold.stdin.close()
        hold.wait(timeout=20)
    eq(w.read(), b"OK")
    eq(d.read(), b"OK")
    eq(d.cmd("EXISTS", "del0", "del1", "del2", "del3", "del4"), 2)


def test_oversized_bulk():
    s = ct.server("--proto-max-bulk-len", "1mb")
    c = s.raw()
    eq(c.cmd("PING"), b"PONG")
    c.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n" % (MB + 1))
    data = c.read_closed(5)
    eq(data, b"-ERR Protocol error: invalid bulk length\r\n")
    still_serving(s)
    # A bulk of exactly the limit is accepted.
    c = s.raw(timeout=20)
    eq(c.cmd("SET", "big", b"x" * MB), b"OK")
    eq(c.cmd("STRLEN", "big"), MB)
    # CONFIG SET applies to later clients.
    eq(c.cmd("CONFIG", "SET", "proto-max-bulk-len", "2mb"), b"OK")
    d = s.raw(timeout=20)
    eq(d.cmd("SET", "big2", b"y" * (MB + 10)), b"OK")


def test_multibulk_length():
    s = ct.server()
    c = s.raw()
    c.send(b"*%d\r\n" % (1024 * 1024 + 1))
    eq(c.read_closed(5), b"-ERR Protocol error: invalid multibulk length\r\n")
    c = s.raw()
    c.send(b"*-5x\r\n")
    data = c.read_closed(5)
    assert data.startswith(b"-ERR Protocol error"), data
    c = s.raw()
    c.send(b"*1\r\n+PING\r\n")  # not a bulk inside a multibulk
    data = c.read_closed(5)
    assert data.startswith(b"-ERR Protocol error: expected '$', got '+'"), \
        data
    still_serving(s)


def test_inline_too_long():
    s = ct.server()
    c = s.raw()
    c.send(b"a" * (70 * 1024))
    data = c.read_closed(5)
    assert data.startswith(b"-ERR Protocol error: too big"), data
    still_serving(s)


def test_query_buffer_limit():
    s = ct.server("--proto-max-bulk-len", "16mb",
                  "--client-query-buffer-limit", "1mb")
    c = s.raw()
    # A 4 MB bulk in the making exceeds the 1 MB query buffer.
    c.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n" % (4 * MB))
    chunk = b"z" * 65536
    closed = False
    try:
        for _ in range(64):
            c.send(chunk)
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    if not closed:
        c.read_closed(5)
    still_serving(s)
    with s.raw() as d:
        eq(d.cmd("EXISTS", "k"), 0)


def test_maxclients():
    s = ct.server()
    c1 = s.raw()
    eq(c1.cmd("CONFIG", "SET", "maxclients", "2"), b"OK")
    c2 = s.raw()
    eq(c2.cmd("PING"), b"PONG")
    c3 = s.raw()
    eq(c3.read_closed(5), b"-ERR max number of clients reached\r\n")
    c2.close()
    # Once a slot is free, a new client gets in (bounded retry: the close
    # is seen by the server's loop shortly).
    def try_in():
        try:
            with s.raw() as c4:
                return c4.cmd("PING") == b"PONG"
        except (ct.Closed, OSError):
            return False
    assert ct.wait_until(try_in, 5, 0.1), "no slot after a client left"
    info = c1.cmd("INFO", "stats")
    assert b"rejected_connections:" in info
    assert b"rejected_connections:0\r\n" not in info, info


def test_config_set_output_buffer_limit():
    s = ct.server()
    ctl = s.raw()
    eq(ctl.cmd("CONFIG", "SET", "client-output-buffer-limit",
               "pubsub 2mb 1mb 1"), b"OK")
    got = ctl.cmd("CONFIG", "GET", "client-output-buffer-limit")[1]
    assert b"pubsub 2097152 1048576 1" in got, got


def test_pubsub_output_buffer_limit():
    s = ct.server("--client-output-buffer-limit", "pubsub", "2mb", "1mb",
                  "1")
    sub = socket.socket()
    sub.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sub.settimeout(5)
    sub.connect((s.host, s.port))
    sub.sendall(ct.encode("SUBSCRIBE", "flood"))
    time.sleep(0.2)  # the subscription is registered before we publish
    pub = s.raw()
    eq(pub.cmd("PUBSUB", "NUMSUB", "flood"), [b"flood", 1])
    payload = b"p" * 100000
    rss0 = rss_kb(s.proc.pid)
    # 50 MB published at a subscriber that never reads.
    for i in range(500):
        r = pub.cmd("PUBLISH", "flood", payload)
        if r == 0:
            break
    gone = ct.wait_until(
        lambda: pub.cmd("PUBSUB", "NUMSUB", "flood") == [b"flood", 0], 5)
    assert gone, "the slow subscriber is still connected"
    rss1 = rss_kb(s.proc.pid)
    assert rss1 - rss0 < 40 * 1024, \
        "RSS grew %d kB for a 2 MB limit" % (rss1 - rss0)
    sub.close()
    still_serving(s)


def test_idle_timeout():
    s = ct.server("--timeout", "1")
    idle = s.raw()
    eq(idle.cmd("PING"), b"PONG")
    t0 = time.monotonic()
    idle.read_closed(6)
    took = time.monotonic() - t0
    assert took >= 0.9, "closed after %.2f s, before the timeout" % took
    # A subscriber is exempt (as in Redis).
    sub = s.raw()
    sub.cmd("SUBSCRIBE", "c")
    time.sleep(2.2)
    eq(sub.cmd("PING"), [b"pong", b""])
    still_serving(s)


if __name__ == "__main__":
    ct.main(globals())
