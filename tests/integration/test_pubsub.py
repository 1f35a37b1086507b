#!/usr/bin/python3
"""Pub/sub in RESP2 and RESP3, PUBSUB introspection, keyspace events."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cairntest as ct  # noqa: E402
from cairntest import Err, Push  # noqa: E402


def eq(got, want, what=""):
    assert got == want, "%s: got %r, want %r" % (what, got, want)


def test_subscribe_publish_resp2():
    s = ct.server()
    sub, pub = s.raw(), s.raw()
    eq(sub.cmd("SUBSCRIBE", "ch1", "ch2"), [b"subscribe", b"ch1", 1])
    eq(sub.read(), [b"subscribe", b"ch2", 2])
    eq(pub.cmd("PUBLISH", "ch1", "hello"), 1)
    eq(sub.read(), [b"message", b"ch1", b"hello"])
    eq(pub.cmd("PUBLISH", "nobody", "x"), 0)
    eq(sub.cmd("PSUBSCRIBE", "news.*"), [b"psubscribe", b"news.*", 3])
    eq(pub.cmd("PUBLISH", "news.today", "n1"), 1)
    eq(sub.read(), [b"pmessage", b"news.*", b"news.today", b"n1"])
    # Subscribed to the channel and a matching pattern: two deliveries.
    sub.cmd("SUBSCRIBE", "news.x")
    eq(pub.cmd("PUBLISH", "news.x", "b"), 2)
    got = [sub.read(), sub.read()]
    assert [b"message", b"news.x", b"b"] in got, got
    assert [b"pmessage", b"news.*", b"news.x", b"b"] in got, got
    # RESP2 subscribed mode refuses other commands, allows PING.
    eq(sub.cmd("GET", "k"),
       Err("ERR Can't execute 'get': only (P|S)SUBSCRIBE / "
           "(P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this "
           "context"))
    eq(sub.cmd("PING"), [b"pong", b""])
    # Introspection.
    eq(sorted(pub.cmd("PUBSUB", "CHANNELS")), [b"ch1", b"ch2", b"news.x"])
    eq(sorted(pub.cmd("PUBSUB", "CHANNELS", "ch*")), [b"ch1", b"ch2"])
    eq(pub.cmd("PUBSUB", "NUMSUB", "ch1", "none"), [b"ch1", 1, b"none", 0])
    eq(pub.cmd("PUBSUB", "NUMPAT"), 1)
    # Unsubscribe.
    eq(sub.cmd("UNSUBSCRIBE", "ch1"), [b"unsubscribe", b"ch1", 3])
    eq(pub.cmd("PUBLISH", "ch1", "x"), 0)
    eq(sub.cmd("PUNSUBSCRIBE"), [b"punsubscribe", b"news.*", 2])
    sub.send(ct.encode("UNSUBSCRIBE"))
    got = sorted([sub.read(), sub.read()])
    eq(got, [[b"unsubscribe", b"ch2", 1], [b"unsubscribe", b"news.x", 0]])
    eq(sub.cmd("GET", "k"), None, "out of subscribed mode")
    eq(pub.cmd("PUBSUB", "NUMPAT"), 0)
    eq(pub.cmd("PUBSUB", "CHANNELS"), [])
    eq(sub.cmd("UNSUBSCRIBE"), [b"unsubscribe", None, 0])


def test_pubsub_redis_py():
    s = ct.server()
    r = s.client()
    p = r.pubsub()
    p.subscribe("rp")
    m = p.get_message(timeout=5)
    eq(m["type"], "subscribe")
    eq(r.publish("rp", b"\x00bin\xff"), 1)
    m = None
    end = time.monotonic() + 5
    while m is None and time.monotonic() < end:
        m = p.get_message(timeout=1)
    eq(m["data"], b"\x00bin\xff")
    p.close()


def test_resp3_push():
    s = ct.server()
    sub, pub = s.raw(), s.raw()
    eq(sub.cmd("HELLO", "3")[b"proto"], 3)
    r = sub.cmd("SUBSCRIBE", "c")
    assert isinstance(r, Push), "subscribe confirmations are pushes: %r" % r
    eq(list(r), [b"subscribe", b"c", 1])
    sub.send(b"*1\r\n$4\r\nPING\r\n")
    # A push and a reply are told apart by type: PONG comes as +PONG.
    eq(sub.read(), b"PONG", "RESP3 allows any command while subscribed")
    eq(sub.cmd("SET", "k", "v"), b"OK")
    eq(pub.cmd("PUBLISH", "c", "m1"), 1)
    m = sub.read()
    assert isinstance(m, Push), m
    eq(list(m), [b"message", b"c", b"m1"])
    # A push in the middle of replies.
    sub.send(ct.encode("GET", "k"))
    pub.cmd("PUBLISH", "c", "m2")
    got = [sub.read(), sub.read()]
    pushes = [g for g in got if isinstance(g, Push)]
    eq(len(pushes), 1)
    eq(list(pushes[0]), [b"message", b"c", b"m2"])
    assert b"v" in got
    r = sub.cmd("UNSUBSCRIBE", "c")
    assert isinstance(r, Push)
    eq(list(r), [b"unsubscribe", b"c", 0])


def subscribe_events(s, pattern):
    sub = s.raw()
    eq(sub.cmd("PSUBSCRIBE", pattern), [b"psubscribe", pattern.encode(), 1])
    return sub


def read_event(sub, timeout=5.0):
    sub.sock.settimeout(timeout)
    try:
        return sub.read()
    finally:
        sub.sock.settimeout(5.0)


def test_keyspace_notifications_set_del():
    s = ct.server()
    c = s.raw()
    eq(c.cmd("CONFIG", "SET", "notify-keyspace-events", "KEA"), b"OK")
    got = c.cmd("CONFIG", "GET", "notify-keyspace-events")[1]
    eq(sorted(got.decode()), sorted("AKE"), "canonical letters")
    ev = subscribe_events(s, "__keyevent@0__:*")
    ks = subscribe_events(s, "__keyspace@0__:*")
    c.cmd("SET", "foo", "bar")
    eq(read_event(ev), [b"pmessage", b"__keyevent@0__:*",
                        b"__keyevent@0__:set", b"foo"])
    eq(read_event(ks), [b"pmessage", b"__keyspace@0__:*",
                        b"__keyspace@0__:foo", b"set"])
    c.cmd("DEL", "foo")
    eq(read_event(ev)[2:], [b"__keyevent@0__:del", b"foo"])
    eq(read_event(ks)[2:], [b"__keyspace@0__:foo", b"del"])
    c.cmd("HSET", "h", "f", "v")
    eq(read_event(ev)[2:], [b"__keyevent@0__:hset", b"h"])
    c.cmd("SELECT", "5")
    c.cmd("SET", "in5", "v")
    c.cmd("SELECT", "0")
    c.cmd("LPUSH", "l", "x")
    eq(read_event(ev)[2:], [b"__keyevent@0__:lpush", b"l"],
       "db 5's event is not on db 0's channel")
    # Only E and $: no keyspace channel, no generic del.
    c.cmd("CONFIG", "SET", "notify-keyspace-events", "E$")
    c.cmd("DEL", "l")
    c.cmd("SET", "s", "v")
    eq(read_event(ev)[2:], [b"__keyevent@0__:set", b"s"])
    c.cmd("CONFIG", "SET", "notify-keyspace-events", "")
    c.cmd("SET", "s", "v2")
    c.cmd("PUBLISH", "probe", "x")
    ev.sock.settimeout(0.3)
    try:
        extra = ev.read()
        raise AssertionError("event after notifications off: %r" % extra)
    except socket.timeout:
        pass


def test_keyspace_notifications_expired():
    s = ct.server()
    c = s.raw()
    eq(c.cmd("CONFIG", "SET", "notify-keyspace-events", "Ex"), b"OK")
    ev = subscribe_events(s, "__keyevent@0__:expired")
    c.cmd("SET", "short", "v", "PX", "100")
    deadline = time.monotonic() + 5
    got = None
    while time.monotonic() < deadline:
        try:
            got = read_event(ev, max(0.1, deadline - time.monotonic()))
            break
        except socket.timeout:
            break
    eq(got, [b"pmessage", b"__keyevent@0__:expired",
             b"__keyevent@0__:expired", b"short"])


if __name__ == "__main__":
    ct.main(globals())
