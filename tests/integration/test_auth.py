#!/usr/bin/python3
"""AUTH (requirepass, named users, read-only users) and protected mode."""
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cairntest as ct  # noqa: E402
from cairntest import Err  # noqa: E402

NOAUTH = Err("NOAUTH Authentication required.")
WRONGPASS = Err("WRONGPASS invalid username-password pair or user is "
                "disabled.")


def eq(got, want, what=""):
    assert got == want, "%s: got %r, want %r" % (what, got, want)


def test_requirepass():
    s = ct.server("--requirepass", "s3cret")
    c = s.raw()
    eq(c.cmd("GET", "k"), NOAUTH)
    eq(c.cmd("SET", "k", "v"), NOAUTH)
    eq(c.cmd("AUTH", "wrong"), WRONGPASS)
    eq(c.cmd("GET", "k"), NOAUTH, "still not authenticated")
    eq(c.cmd("AUTH", "s3cret"), b"OK")
    eq(c.cmd("SET", "k", "v"), b"OK")
    eq(c.cmd("GET", "k"), b"v")
    eq(c.cmd("AUTH", "default", "s3cret"), b"OK")
    # HELLO with AUTH.
    d = s.raw()
    eq(d.cmd("HELLO", "3"),
       Err("NOAUTH HELLO must be called with the client already "
           "authenticated, otherwise the HELLO <proto> AUTH <user> <pass> "
           "option can be used to authenticate the client and select the "
           "RESP protocol version at the same time"))
    h = d.cmd("HELLO", "3", "AUTH", "default", "s3cret")
    eq(h[b"proto"], 3)
    eq(d.cmd("GET", "k"), b"v")
    e = s.raw()
    eq(e.cmd("HELLO", "2", "AUTH", "default", "bad"), WRONGPASS)
    # redis-py sees the same.
    redis = ct.need_redis()
    try:
        s.client().get("k")
        raise AssertionError("no error without a password")
    except redis.AuthenticationError:
        pass
    eq(s.client(password="s3cret").get("k"), b"v")


def test_auth_without_password_configured():
    s = ct.server()
    c = s.raw()
    eq(c.cmd("AUTH", "x"),
       Err("ERR AUTH <password> called without any password configured for "
           "the default user. Are you sure your configuration is correct?"))
    eq(c.cmd("PING"), b"PONG")


def test_named_users():
    s = ct.server("--requirepass", "top", "--user", "alice", "apw",
                  "--user", "reader", "rpw", "readonly")
    c = s.raw()
    eq(c.cmd("AUTH", "alice", "wrong"), WRONGPASS)
    eq(c.cmd("AUTH", "nobody", "apw"), WRONGPASS)
    eq(c.cmd("AUTH", "alice", "apw"), b"OK")
    eq(c.cmd("SET", "k", "v"), b"OK")
    info = c.cmd("CLIENT", "INFO")
    assert b"user=alice" in info, info
    r = s.raw()
    eq(r.cmd("AUTH", "reader", "rpw"), b"OK")
    eq(r.cmd("GET", "k"), b"v")
    eq(r.cmd("EXISTS", "k"), 1)
    eq(r.cmd("SET", "k", "w"),
       Err("NOPERM User reader has no permissions to run the 'set' command"))
    eq(r.cmd("DEL", "k"),
       Err("NOPERM User reader has no permissions to run the 'del' command"))
    eq(r.cmd("CONFIG", "SET", "maxclients", "5"),
       Err("NOPERM User reader has no permissions to run the 'config' "
           "command"))
    eq(r.cmd("GET", "k"), b"v", "refused writes changed nothing")
    # A read-only user inside MULTI: refused at queue time, EXECABORT.
    eq(r.cmd("MULTI"), b"OK")
    r1 = r.cmd("SET", "k", "x")
    assert isinstance(r1, Err) and r1.text.startswith("NOPERM"), r1
    r2 = r.cmd("EXEC")
    assert isinstance(r2, Err) and r2.text.startswith("EXECABORT"), r2
    eq(r.cmd("GET", "k"), b"v")
    # Switching from the read-only user to a writer lifts the restriction.
    eq(r.cmd("AUTH", "top"), b"OK")
    eq(r.cmd("SET", "k", "w"), b"OK")


DENIED_PREFIX = (b"-DENIED Redis is running in protected mode because "
                 b"protected mode is enabled and no password is set for the "
                 b"default user.")


def test_protected_mode_loopback_allowed():
    s = ct.server("--protected-mode", "yes")
    eq(s.raw().cmd("PING"), b"PONG")


def test_protected_mode_denies_other_addresses():
    # As in Redis, only 127.0.0.1, ::1 and the unix socket count as local:
    # a client from 127.0.0.2 (still on this machine's loopback interface,
    # so nothing leaves it) stands for a remote one.
    s = ct.server("--protected-mode", "yes")
    c = ct.Raw("127.0.0.1", s.port, source="127.0.0.2")
    data = c.read_closed(5)
    assert data.startswith(DENIED_PREFIX), data[:200]
    assert data.endswith(b"\r\n")
    c.close()
    eq(s.raw().cmd("PING"), b"PONG", "loopback still served")
    info = s.raw().cmd("INFO", "stats")
    assert b"rejected_connections:1" in info, info
    # With a password, protected mode lets the client in (to AUTH).
    s2 = ct.server("--protected-mode", "yes", "--requirepass", "pw")
    with ct.Raw("127.0.0.1", s2.port, source="127.0.0.2") as c:
        eq(c.cmd("PING"), NOAUTH)
        eq(c.cmd("AUTH", "pw"), b"OK")
        eq(c.cmd("PING"), b"PONG")
    # protected-mode no: served.
    s3 = ct.server("--protected-mode", "no")
    with ct.Raw("127.0.0.1", s3.port, source="127.0.0.2") as c:
        eq(c.cmd("PING"), b"PONG")


if __name__ == "__main__":
    ct.main(globals())
