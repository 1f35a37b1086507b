#!/usr/bin/python3
"""Replication under faults: the leader is lost under load, the whole
cluster is killed at once, an old leader comes back with a divergent tail,
followers stop (SIGSTOP as the network cut), and a peer sends bad frames
(tests/repl_peer).  Every write acknowledged to a client must survive.

The environment: CAIRND as for every integration test, and CAIRN_BUILDDIR
(where tests/repl_peer is built) for the bad-frames tests.
"""
import os
import re
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True     # the source tree may be read-only
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cairntest as ct  # noqa: E402
import test_repl as rt  # noqa: E402
from test_repl import (  # noqa: E402
    NOREPLICAS, bounded, eq, fill, follower, has_all, ival, info, leader,
    restart, same_data, sigcont, sigstop, wait_synced, Load)

FSYNC = ("--durability", "fsync")


def kill_all(*srvs):
    """SIGKILL every node at once, then reap them."""
    for s in srvs:
        os.kill(s.proc.pid, signal.SIGKILL)
    for s in srvs:
        s.stop()


@bounded()
def test_leader_lost_under_load_keeps_acknowledged_writes():
    a = leader(*FSYNC, "--min-replicas-ack", "1")
    b = follower(a, *FSYNC)
    wait_synced(a, b)
    epoch0 = ival(b, "epoch")
    load = Load(a, threads=6, size=1000)
    load.wait_count(300)
    # The follower stops (a network cut): writes go on reaching the leader,
    # which must not acknowledge them.  Then the leader dies.
    sigstop(b)
    try:
        time.sleep(0.2)
        n_stopped = load.count()
        time.sleep(0.5)
        stalled = load.count() - n_stopped
        a.kill()
    finally:
        sigcont(b)
    acked = load.stop()
    eq(stalled, 0, "writes acknowledged while the only follower was stopped")
    assert len(acked) >= 300, len(acked)
    assert ct.wait_until(
        lambda: info(b).get("master_link_status") == "down", 20, 0.05), \
        "the follower did not see its leader go"
    eq(b.raw().cmd("REPLICAOF", "NO", "ONE"), b"OK")
    i = info(b)
    eq(i["role"], "master")
    assert int(i["epoch"]) > epoch0, \
        "epoch after promotion %s, before %d" % (i["epoch"], epoch0)
    has_all(b, acked, "new leader")
    c = b.raw()
    eq(c.cmd("SET", "after-promotion", "x"), b"OK")
    eq(c.cmd("GET", "after-promotion"), b"x")
    eq(c.cmd("ROLE")[0], b"master")


@bounded()
def test_full_cluster_killed_at_once_keeps_acknowledged_writes():
    a = leader(*FSYNC, "--min-replicas-ack", "1")
    b = follower(a, *FSYNC)
    c = follower(a, *FSYNC)
    wait_synced(a, b, c)
    load = Load(a, threads=6)
    load.wait_count(300)
    kill_all(a, b, c)
    acked = load.stop()
    restart(a)
    restart(b)
    restart(c)
    has_all(a, acked, "leader after the restart")
    wait_synced(a, b, c)
    has_all(b, acked, "follower 1 after the restart")
    has_all(c, acked, "follower 2 after the restart")
    more = fill(a, "after-restart", 50)
    wait_synced(a, b, c)
    has_all(b, more, "follower 1 streams again")
    same_data(a, b, "leader and follower 1")
    same_data(a, c, "leader and follower 2")


@bounded()
def test_divergent_old_leader_cuts_its_tail_and_follows():
    a = leader(*FSYNC)
    b = follower(a, *FSYNC)
    base = fill(a, "base", 200)
    wait_synced(a, b)
    # b leaves; a takes writes b never gets (acknowledged locally only).
    eq(b.stop(), 0)
    stale = fill(a, "stale", 100)
    a.kill()
    # b comes back, finds no leader, and is promoted.
    restart(b)
    eq(b.raw().cmd("REPLICAOF", "NO", "ONE"), b"OK")
    new = fill(b, "new", 100)
    # a comes back as b's follower.
    restart(a, *FSYNC, "--replicaof", b.host, str(b.port))
    wait_synced(b, a)
    line = rt.wait_log(a, r"^[^=]*\b(cut|truncat\w*|discard\w*)\b[^=]*\d")
    assert re.search(r"\b(100|200|201)\b", line), \
        "the log line says how much was cut (100 records after LSN 200): %r" \
        % line
    has_all(a, base, "old leader, base")
    has_all(a, new, "old leader, new leader's writes")
    stale_on_a = rt.pipeline(a, [("EXISTS", k) for k in stale])
    eq(sum(stale_on_a), 0, "stale keys left on the old leader")
    stale_on_b = rt.pipeline(b, [("EXISTS", k) for k in stale])
    eq(sum(stale_on_b), 0, "stale keys on the new leader")
    same_data(b, a, "after the old leader followed")
    eq(ival(a, "epoch"), ival(b, "epoch"))


@bounded()
def test_stopped_followers_and_min_replicas_ack():
    a = leader("--min-replicas-ack", "1", "--min-replicas-timeout", "1000")
    b = follower(a)
    c = follower(a)
    wait_synced(a, b, c)
    cl = a.raw(timeout=30)
    try:
        sigstop(b)
        for i in range(20):
            eq(cl.cmd("SET", "one-stopped:%d" % i, "x"), b"OK",
               "a write with one follower stopped")
        sigstop(c)
        t0 = time.monotonic()
        eq(cl.cmd("SET", "both-stopped", "x"), NOREPLICAS,
           "a write with both followers stopped")
        took = time.monotonic() - t0
        assert took >= 0.9, \
            "NOREPLICAS after %.2f s, before the timeout" % took
        eq(cl.cmd("SET", "both-stopped-2", "y"), NOREPLICAS)
    finally:
        sigcont(b, c)
    wait_synced(a, b, c)
    eq(cl.cmd("SET", "resumed", "z"), b"OK")
    wait_synced(a, b, c)
    same_data(a, b, "follower 1 after SIGCONT")
    same_data(a, c, "follower 2 after SIGCONT")
    eq(b.raw().cmd("GET", "one-stopped:19"), b"x")


# ---------------------------------------------------------------------------
# Bad frames from a fake leader

def repl_peer():
    p = os.path.join(os.environ.get("CAIRN_BUILDDIR", "."), "tests",
                     "repl_peer")
    if not os.access(p, os.X_OK):
        raise ct.Skip("no %s (build it, set CAIRN_BUILDDIR)" % p)
    return p


GOOD = 37      # valid frames before the bad one; LSNs easy to spot in a log
REASON = {"checksum": r"checksum",
          "epoch": r"epoch",
          "gap": r"lsn|gap|expected|sequence|order"}


def bad_frames(mode):
    peer = subprocess.Popen([repl_peer(), "0", mode, str(GOOD)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        first = peer.stdout.readline().decode().split()
        eq(first[:1], ["listening"], "repl_peer's first line")
        port = int(first[1])
        b = ct.server("--replicaof", "127.0.0.1", str(port))
        try:
            out, err = peer.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            peer.kill()
            out, err = peer.communicate()
            raise AssertionError("repl_peer did not finish: %r %r"
                                 % (out, err))
        out = out.decode()
        eq(peer.returncode, 0, "repl_peer exit status (%s; stderr %r)"
           % (out, err))
    finally:
        if peer.poll() is None:
            peer.kill()
            peer.wait()
    lines = dict(line.split(" ", 1) for line in out.splitlines()
                 if " " in line)
    good = int(lines["expect_last_lsn"])
    bad_lsn = int(lines["bad"].split()[-1])
    again = lines["replsync2"].split()
    assert len(again) >= 2, "second REPLSYNC: %r" % again
    eq(int(again[1]), good, "the follower's last LSN when it came back")
    assert b.alive(), "the follower exited"
    c = b.raw()
    eq(c.cmd("PING"), b"PONG")
    for lsn in range(1, good + 1):
        eq(c.cmd("GET", "peer:%d" % lsn), b"value-%d" % lsn,
           "a key from a valid frame")
    eq(c.cmd("EXISTS", "peer:%d" % bad_lsn), 0, "the bad frame's key")
    # One line naming the peer, the LSN and the reason.
    rx = re.compile(REASON[mode], re.I)
    lsn_rx = re.compile(r"\b%d\b" % bad_lsn)
    hits = [ln for ln in rt.log_messages(b)
            if str(port) in ln and lsn_rx.search(ln) and rx.search(ln)]
    assert len(hits) == 1, "log lines about the bad %s frame (peer port %d, " \
        "LSN %d): %r\nfull log:\n%s" % (mode, port, bad_lsn, hits,
                                        b.stderr_text())
    eq(info(b)["role"], "slave")


@bounded(60)
def test_bad_frame_checksum_drops_link_keeps_data():
    bad_frames("checksum")


@bounded(60)
def test_bad_frame_old_epoch_drops_link_keeps_data():
    bad_frames("epoch")


@bounded(60)
def test_bad_frame_lsn_gap_drops_link_keeps_data():
    bad_frames("gap")


if __name__ == "__main__":
    _ = (fill, same_data)
    ct.main(globals())
