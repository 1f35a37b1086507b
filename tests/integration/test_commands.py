#!/usr/bin/python3
"""Every command group against one cairnd, with Redis's reply and error
texts word for word (read through a raw socket, so nothing is rewritten
by a client library)."""
import os
import re
import select
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cairntest as ct  # noqa: E402
from cairntest import Err  # noqa: E402

WRONGTYPE = Err("WRONGTYPE Operation against a key holding the wrong kind "
                "of value")
NOTINT = Err("ERR value is not an integer or out of range")
SYNTAX = Err("ERR syntax error")


def eq(got, want, what=""):
    assert got == want, "%s: got %r, want %r" % (what, got, want)


def srv():
    s = ct.server()
    return s, s.raw()


def arity(cmd):
    return Err("ERR wrong number of arguments for '%s' command" % cmd)


# ---------------------------------------------------------------------------
# connection

def test_connection_ping_echo_select():
    s, c = srv()
    eq(c.cmd("PING"), b"PONG")
    eq(c.cmd("PING", "hi"), b"hi")
    eq(c.cmd("ECHO", "a\x00b"), b"a\x00b")
    eq(c.cmd("ECHO"), arity("echo"))
    eq(c.cmd("SELECT", "16"), Err("ERR DB index is out of range"))
    eq(c.cmd("SELECT", "-1"), Err("ERR DB index is out of range"))
    eq(c.cmd("SELECT", "x"), NOTINT)
    eq(c.cmd("SET", "k", "db0"), b"OK")
    eq(c.cmd("SELECT", "3"), b"OK")
    eq(c.cmd("GET", "k"), None)
    eq(c.cmd("SET", "k", "db3"), b"OK")
    eq(c.cmd("SELECT", "0"), b"OK")
    eq(c.cmd("GET", "k"), b"db0")


def test_connection_hello():
    s, c = srv()
    h = c.cmd("HELLO", "3")
    assert isinstance(h, dict), h
    for k in (b"server", b"version", b"proto", b"id", b"mode", b"role",
              b"modules"):
        assert k in h, (k, h)
    eq(h[b"proto"], 3, "proto")
    eq(h[b"mode"], b"standalone")
    eq(h[b"role"], b"master")
    eq(h[b"modules"], [])
    assert isinstance(h[b"id"], int)
    # In RESP3 a null is _ and HGETALL is a map.
    eq(c.cmd("GET", "nokey"), None)
    c.send(b"GET nokey\r\n")
    eq(c._line(), b"_")
    eq(c.cmd("HELLO", "4"),
       Err("NOPROTO unsupported protocol version"))
    h2 = c.cmd("HELLO", "2")
    assert isinstance(h2, list) and b"proto" in h2, h2
    eq(h2[h2.index(b"proto") + 1], 2)
    c.send(b"GET nokey\r\n")
    eq(c._line(), b"$-1")
    eq(c.cmd("HELLO", "3", "SETNAME", "named")[b"proto"], 3)
    eq(c.cmd("CLIENT", "GETNAME"), b"named")


def test_connection_client():
    s, c = srv()
    eq(c.cmd("CLIENT", "GETNAME"), None)
    eq(c.cmd("CLIENT", "SETNAME", "alpha"), b"OK")
    eq(c.cmd("CLIENT", "GETNAME"), b"alpha")
    eq(c.cmd("CLIENT", "SETNAME", "has space"),
       Err("ERR Client names cannot contain spaces, newlines or special "
           "characters."))
    my_id = c.cmd("CLIENT", "ID")
    assert isinstance(my_id, int) and my_id > 0
    eq(c.cmd("CLIENT", "SETINFO", "LIB-NAME", "itest"), b"OK")
    eq(c.cmd("CLIENT", "SETINFO", "LIB-VER", "1.2"), b"OK")
    info = c.cmd("CLIENT", "INFO")
    assert isinstance(info, bytes), info
    assert b"id=%d " % my_id in info, info
    assert b"name=alpha " in info, info
    assert b"lib-name=itest" in info and b"lib-ver=1.2" in info, info
    other = s.raw()
    other.cmd("CLIENT", "SETNAME", "victim")
    other_id = other.cmd("CLIENT", "ID")
    lst = c.cmd("CLIENT", "LIST")
    assert b"name=alpha" in lst and b"name=victim" in lst, lst
    eq(len(lst.strip().split(b"\n")), 2, "two clients listed")
    assert (c.cmd("CLIENT", "LIST", "ID", str(other_id)).count(b"\n") == 1)
    eq(c.cmd("CLIENT", "KILL", "ID", str(other_id)), 1)
    other.read_closed(5)
    eq(c.cmd("CLIENT", "KILL", "ID", "999999"), 0)
    eq(c.cmd("CLIENT", "KILL", "10.9.8.7:1"), Err("ERR No such client"))
    eq(c.cmd("CLIENT", "NOSUCH"),
       Err("ERR unknown subcommand 'NOSUCH'. Try CLIENT HELP."))
    eq(c.cmd("PING"), b"PONG")


def test_connection_command_info_docs():
    s, c = srv()
    n = c.cmd("COMMAND", "COUNT")
    assert isinstance(n, int) and n > 100, n
    info = c.cmd("COMMAND", "INFO", "get", "nosuchcmd")
    eq(len(info), 2)
    eq(info[0][0], b"get")
    eq(info[0][1], 2, "get arity")
    eq(info[0][3:6], [1, 1, 1], "get keys")
    eq(info[1], None)
    docs = c.cmd("COMMAND", "DOCS", "set")
    assert isinstance(docs, list) and docs[0] == b"set", docs
    allc = c.cmd("COMMAND")
    eq(len(allc), n, "COMMAND lists COMMAND COUNT entries")


def test_connection_quit_reset():
    s, c = srv()
    c.cmd("SELECT", "2")
    c.cmd("SET", "k", "in2")
    c.cmd("CLIENT", "SETNAME", "x")
    eq(c.cmd("MULTI"), b"OK")
    eq(c.cmd("RESET"), b"RESET")
    eq(c.cmd("CLIENT", "GETNAME"), None)
    eq(c.cmd("GET", "k"), None)  # not queued, and back in db 0
    eq(c.cmd("SELECT", "2"), b"OK")
    eq(c.cmd("GET", "k"), b"in2")
    eq(c.cmd("QUIT"), b"OK")
    c.read_closed(5)


def test_unknown_command_and_arity():
    s, c = srv()
    eq(c.cmd("foo"),
       Err("ERR unknown command 'foo', with args beginning with: "))
    eq(c.cmd("foo", "a", "b"),
       Err("ERR unknown command 'foo', with args beginning with: 'a' 'b' "))
    eq(c.cmd("PING"), b"PONG")
    eq(c.cmd("GET"), arity("get"))
    eq(c.cmd("GET", "a", "b"), arity("get"))
    eq(c.cmd("SET", "a"), arity("set"))
    eq(c.cmd("PING"), b"PONG")
    # Inline commands too.
    c.send(b"nosuch x\r\n")
    eq(c.read(), Err("ERR unknown command 'nosuch', with args beginning "
                     "with: 'x' "))
    c.send(b"PING\r\n")
    eq(c.read(), b"PONG")


# ---------------------------------------------------------------------------
# strings

def test_string_set_options():
    s, c = srv()
    eq(c.cmd("SET", "k", "v"), b"OK")
    eq(c.cmd("SET", "k", "v2", "NX"), None)
    eq(c.cmd("SET", "n", "v", "XX"), None)
    eq(c.cmd("SET", "k", "v3", "XX"), b"OK")
    eq(c.cmd("SET", "k", "v4", "GET"), b"v3")
    eq(c.cmd("SET", "new", "x", "GET"), None)
    eq(c.cmd("SET", "k", "v", "EX", "100"), b"OK")
    ttl = c.cmd("TTL", "k")
    assert 98 <= ttl <= 100, ttl
    eq(c.cmd("SET", "k", "v", "PX", "100000"), b"OK")
    assert 98000 <= c.cmd("PTTL", "k") <= 100000
    eq(c.cmd("SET", "k", "w", "KEEPTTL"), b"OK")
    assert 98000 <= c.cmd("PTTL", "k") <= 100000
    eq(c.cmd("SET", "k", "w"), b"OK")
    eq(c.cmd("TTL", "k"), -1)
    at = int(time.time()) + 1000
    eq(c.cmd("SET", "k", "v", "EXAT", str(at)), b"OK")
    eq(c.cmd("EXPIRETIME", "k"), at)
    eq(c.cmd("SET", "k", "v", "PXAT", str(at * 1000 + 5)), b"OK")
    eq(c.cmd("PEXPIRETIME", "k"), at * 1000 + 5)
    eq(c.cmd("SET", "k", "v", "EX", "0"),
       Err("ERR invalid expire time in 'set' command"))
    eq(c.cmd("SET", "k", "v", "EX", "-5"),
       Err("ERR invalid expire time in 'set' command"))
    eq(c.cmd("SET", "k", "v", "EX", "abc"), NOTINT)
    eq(c.cmd("SET", "k", "v", "NX", "XX"), SYNTAX)
    eq(c.cmd("SET", "k", "v", "EX", "10", "PX", "100"), SYNTAX)
    eq(c.cmd("SET", "k", "v", "EX", "10", "KEEPTTL"), SYNTAX)
    eq(c.cmd("SET", "k", "v", "BOGUS"), SYNTAX)
    eq(c.cmd("SET", "k", "v", "EX"), SYNTAX)
    c.cmd("HSET", "h", "f", "v")
    eq(c.cmd("SET", "h", "v", "GET"), WRONGTYPE)
    eq(c.cmd("TYPE", "h"), b"hash", "SET GET on a wrong type changes nothing")


def test_string_family():
    s, c = srv()
    eq(c.cmd("SETNX", "a", "1"), 1)
    eq(c.cmd("SETNX", "a", "2"), 0)
    eq(c.cmd("SETEX", "b", "100", "v"), b"OK")
    assert 98 <= c.cmd("TTL", "b") <= 100
    eq(c.cmd("SETEX", "b", "0", "v"),
       Err("ERR invalid expire time in 'setex' command"))
    eq(c.cmd("PSETEX", "b", "100000", "v"), b"OK")
    eq(c.cmd("PSETEX", "b", "-1", "v"),
       Err("ERR invalid expire time in 'psetex' command"))
    eq(c.cmd("GETSET", "a", "9"), b"1")
    eq(c.cmd("GET", "a"), b"9")
    eq(c.cmd("GETDEL", "a"), b"9")
    eq(c.cmd("GETDEL", "a"), None)
    c.cmd("SET", "e", "v")
    eq(c.cmd("GETEX", "e", "EX", "100"), b"v")
    assert 98 <= c.cmd("TTL", "e") <= 100
    eq(c.cmd("GETEX", "e", "PERSIST"), b"v")
    eq(c.cmd("TTL", "e"), -1)
    eq(c.cmd("GETEX", "e", "BOGUS"), SYNTAX)
    eq(c.cmd("MSET", "m1", "a", "m2", "b"), b"OK")
    eq(c.cmd("MSET", "m1", "a", "m2"), arity("mset"))
    eq(c.cmd("MGET", "m1", "nokey", "m2"), [b"a", None, b"b"])
    eq(c.cmd("MSETNX", "m1", "x", "m3", "y"), 0)
    eq(c.cmd("EXISTS", "m3"), 0)
    eq(c.cmd("MSETNX", "m3", "x", "m4", "y"), 1)
    eq(c.cmd("APPEND", "ap", "hello"), 5)
    eq(c.cmd("APPEND", "ap", " world"), 11)
    eq(c.cmd("STRLEN", "ap"), 11)
    eq(c.cmd("STRLEN", "nokey"), 0)
    eq(c.cmd("GETRANGE", "ap", "0", "4"), b"hello")
    eq(c.cmd("GETRANGE", "ap", "-5", "-1"), b"world")
    eq(c.cmd("GETRANGE", "ap", "5", "2"), b"")
    eq(c.cmd("SETRANGE", "ap", "6", "WORLD"), 11)
    eq(c.cmd("GET", "ap"), b"hello WORLD")
    eq(c.cmd("SETRANGE", "sr", "3", "x"), 4)
    eq(c.cmd("GET", "sr"), b"\x00\x00\x00x")
    eq(c.cmd("SETRANGE", "sr", "-1", "x"),
       Err("ERR offset is out of range"))
    c.cmd("LPUSH", "l", "x")
    for args in (("APPEND", "l", "x"), ("STRLEN", "l"), ("GET", "l"),
                 ("GETRANGE", "l", "0", "1"), ("INCR", "l"),
                 ("SETRANGE", "l", "0", "x")):
        eq(c.cmd(*args), WRONGTYPE, args[0])


def test_string_counters():
    s, c = srv()
    eq(c.cmd("INCR", "n"), 1)
    eq(c.cmd("INCRBY", "n", "10"), 11)
    eq(c.cmd("DECR", "n"), 10)
    eq(c.cmd("DECRBY", "n", "20"), -10)
    eq(c.cmd("INCRBY", "n", "x"), NOTINT)
    c.cmd("SET", "s", "abc")
    eq(c.cmd("INCR", "s"), NOTINT)
    c.cmd("SET", "sp", " 1")
    eq(c.cmd("INCR", "sp"), NOTINT)
    c.cmd("SET", "big", str(2 ** 63 - 1))
    eq(c.cmd("INCR", "big"), Err("ERR increment or decrement would overflow"))
    eq(c.cmd("GET", "big"), str(2 ** 63 - 1).encode())
    c.cmd("SET", "small", str(-2 ** 63))
    eq(c.cmd("DECR", "small"),
       Err("ERR increment or decrement would overflow"))
    eq(c.cmd("INCRBY", "n", str(2 ** 63)), NOTINT)
    eq(c.cmd("INCRBYFLOAT", "f", "1.5"), b"1.5")
    eq(c.cmd("INCRBYFLOAT", "f", "-0.25"), b"1.25")
    eq(c.cmd("INCRBYFLOAT", "f", "1e2"), b"101.25")
    eq(c.cmd("INCRBYFLOAT", "f", "x"), Err("ERR value is not a valid float"))
    eq(c.cmd("INCRBYFLOAT", "s", "1"), Err("ERR value is not a valid float"))
    eq(c.cmd("INCRBYFLOAT", "f", "inf"),
       Err("ERR increment would produce NaN or Infinity"))


# ---------------------------------------------------------------------------
# keys

def test_keys_basic():
    s, c = srv()
    c.cmd("MSET", "a", "1", "b", "2", "c", "3")
    eq(c.cmd("EXISTS", "a", "b", "zz", "a"), 3)
    eq(c.cmd("DEL", "a", "zz"), 1)
    eq(c.cmd("UNLINK", "b", "c"), 2)
    eq(c.cmd("DBSIZE"), 0)
    c.cmd("SET", "s", "v")
    c.cmd("HSET", "h", "f", "v")
    c.cmd("SADD", "st", "m")
    c.cmd("ZADD", "z", "1", "m")
    c.cmd("RPUSH", "l", "x")
    eq([c.cmd("TYPE", k) for k in ("s", "h", "st", "z", "l", "none")],
       [b"string", b"hash", b"set", b"zset", b"list", b"none"])
    eq(c.cmd("DBSIZE"), 5)
    eq(c.cmd("TOUCH", "s", "h", "nope"), 2)
    eq(c.cmd("OBJECT", "ENCODING", "nope"), None)
    c.cmd("SET", "int", "123")
    eq(c.cmd("OBJECT", "ENCODING", "int"), b"int")
    enc = c.cmd("OBJECT", "ENCODING", "s")
    assert enc in (b"embstr", b"raw"), enc
    assert c.cmd("RANDOMKEY") in (b"s", b"h", b"st", b"z", b"l", b"int")
    eq(sorted(c.cmd("KEYS", "*")),
       sorted([b"s", b"h", b"st", b"z", b"l", b"int"]))
    eq(sorted(c.cmd("KEYS", "[sh]*")), [b"h", b"s", b"st"])
    eq(c.cmd("FLUSHDB"), b"OK")
    eq(c.cmd("DBSIZE"), 0)
    eq(c.cmd("RANDOMKEY"), None)


def test_keys_flush_empty_and_all():
    s, c = srv()
    c.cmd("SET", "x", "1")
    c.cmd("SELECT", "1")
    c.cmd("SET", "y", "1")
    c.sock.settimeout(3)
    eq(c.cmd("FLUSHALL"), b"OK")
    eq(c.cmd("DBSIZE"), 0)
    c.cmd("SELECT", "0")
    eq(c.cmd("DBSIZE"), 0)
    eq(c.cmd("FLUSHDB"), b"OK", "FLUSHDB of an empty database")


def test_keys_expire_family():
    s, c = srv()
    eq(c.cmd("TTL", "none"), -2)
    eq(c.cmd("PTTL", "none"), -2)
    eq(c.cmd("EXPIRETIME", "none"), -2)
    c.cmd("SET", "k", "v")
    eq(c.cmd("TTL", "k"), -1)
    eq(c.cmd("EXPIRETIME", "k"), -1)
    eq(c.cmd("EXPIRE", "none", "10"), 0)
    eq(c.cmd("EXPIRE", "k", "100", "XX"), 0)
    eq(c.cmd("EXPIRE", "k", "100", "NX"), 1)
    eq(c.cmd("EXPIRE", "k", "200", "NX"), 0)
    eq(c.cmd("EXPIRE", "k", "50", "GT"), 0)
    eq(c.cmd("EXPIRE", "k", "200", "GT"), 1)
    eq(c.cmd("EXPIRE", "k", "300", "LT"), 0)
    eq(c.cmd("EXPIRE", "k", "150", "LT"), 1)
    assert 148 <= c.cmd("TTL", "k") <= 150
    eq(c.cmd("EXPIRE", "k", "100", "XX"), 1)
    eq(c.cmd("EXPIRE", "k", "10", "NX", "XX"),
       Err("ERR NX and XX, GT or LT options at the same time are not "
           "compatible"))
    eq(c.cmd("EXPIRE", "k", "10", "GT", "LT"),
       Err("ERR GT and LT options at the same time are not compatible"))
    eq(c.cmd("EXPIRE", "k", "10", "FOO"), Err("ERR Unsupported option FOO"))
    eq(c.cmd("EXPIRE", "k", "x"), NOTINT)
    eq(c.cmd("PEXPIRE", "k", "100000"), 1)
    assert 98000 <= c.cmd("PTTL", "k") <= 100000
    at = int(time.time()) + 500
    eq(c.cmd("EXPIREAT", "k", str(at)), 1)
    eq(c.cmd("EXPIRETIME", "k"), at)
    eq(c.cmd("PEXPIREAT", "k", str(at * 1000 + 7)), 1)
    eq(c.cmd("PEXPIRETIME", "k"), at * 1000 + 7)
    eq(c.cmd("PERSIST", "k"), 1)
    eq(c.cmd("PERSIST", "k"), 0)
    eq(c.cmd("TTL", "k"), -1)
    # GT with no TTL: a persistent key counts as infinite.
    eq(c.cmd("EXPIRE", "k", "100", "GT"), 0)
    eq(c.cmd("EXPIRE", "k", "100", "LT"), 1)
    # A past time deletes the key.
    eq(c.cmd("EXPIRE", "k", "-1"), 1)
    eq(c.cmd("EXISTS", "k"), 0)
    c.cmd("SET", "p", "v", "PX", "50")
    ok = ct.wait_until(lambda: c.cmd("EXISTS", "p") == 0, 5)
    assert ok, "a key with PX 50 still exists after 5 s"


def test_keys_rename():
    s, c = srv()
    eq(c.cmd("RENAME", "none", "x"), Err("ERR no such key"))
    eq(c.cmd("RENAMENX", "none", "x"), Err("ERR no such key"))
    c.cmd("SET", "a", "1", "EX", "100")
    eq(c.cmd("RENAME", "a", "b"), b"OK")
    eq(c.cmd("GET", "b"), b"1")
    eq(c.cmd("EXISTS", "a"), 0)
    assert 98 <= c.cmd("TTL", "b") <= 100, "RENAME keeps the TTL"
    c.cmd("SET", "c", "2")
    eq(c.cmd("RENAMENX", "b", "c"), 0)
    eq(c.cmd("RENAMENX", "b", "d"), 1)
    c.cmd("HSET", "h", "f", "v")
    eq(c.cmd("RENAME", "h", "h2"), b"OK")
    eq(c.cmd("HGET", "h2", "f"), b"v")
    eq(c.cmd("RENAME", "h2", "h2"), b"OK")


def test_keys_scan_full_iteration():
    s, c = srv()
    n = 1000
    c.send(b"".join(ct.encode("SET", "key:%d" % i, "v") for i in range(n)))
    for _ in range(n):
        eq(c.read(), b"OK")
    c.cmd("HSET", "ahash", "f", "v")
    c.cmd("SADD", "aset", "m")
    seen = []
    cursor = b"0"
    for _ in range(100000):
        cur, keys = c.cmd("SCAN", cursor, "COUNT", "37")
        seen.extend(keys)
        cursor = cur
        if cursor == b"0":
            break
    else:
        raise AssertionError("SCAN did not finish")
    eq(len(seen), n + 2, "SCAN returns each key once")
    eq(len(set(seen)), n + 2)
    # MATCH filters.
    seen = set()
    cursor = b"0"
    for _ in range(100000):
        cursor, keys = c.cmd("SCAN", cursor, "MATCH", "key:1*")
        seen.update(keys)
        if cursor == b"0":
            break
    eq(seen, {b"key:%d" % i for i in range(n) if str(i).startswith("1")})
    # TYPE filters.
    seen = set()
    cursor = b"0"
    for _ in range(100000):
        cursor, keys = c.cmd("SCAN", cursor, "TYPE", "hash", "COUNT", "500")
        seen.update(keys)
        if cursor == b"0":
            break
    eq(seen, {b"ahash"})
    eq(c.cmd("SCAN", "notanumber"), Err("ERR invalid cursor"))
    eq(c.cmd("SCAN", "0", "COUNT", "0"), SYNTAX)
    eq(c.cmd("SCAN", "0", "BOGUS", "1"), SYNTAX)


# ---------------------------------------------------------------------------
# collections

def test_hash():
    s, c = srv()
    eq(c.cmd("HSET", "h", "a", "1", "b", "2"), 2)
    eq(c.cmd("HSET", "h", "a", "3"), 0)
    eq(c.cmd("HSET", "h", "a"), arity("hset"))
    eq(c.cmd("HGET", "h", "a"), b"3")
    eq(c.cmd("HGET", "h", "zz"), None)
    eq(c.cmd("HMGET", "h", "a", "zz", "b"), [b"3", None, b"2"])
    eq(c.cmd("HSETNX", "h", "a", "x"), 0)
    eq(c.cmd("HSETNX", "h", "c", "x"), 1)
    eq(c.cmd("HLEN", "h"), 3)
    eq(sorted(c.cmd("HKEYS", "h")), [b"a", b"b", b"c"])
    eq(sorted(c.cmd("HVALS", "h")), [b"2", b"3", b"x"])
    g = c.cmd("HGETALL", "h")
    eq(dict(zip(g[::2], g[1::2])), {b"a": b"3", b"b": b"2", b"c": b"x"})
    eq(c.cmd("HEXISTS", "h", "a"), 1)
    eq(c.cmd("HSTRLEN", "h", "c"), 1)
    eq(c.cmd("HINCRBY", "h", "n", "5"), 5)
    eq(c.cmd("HINCRBY", "h", "c", "5"),
       Err("ERR hash value is not an integer"))
    eq(c.cmd("HINCRBYFLOAT", "h", "fl", "1.5"), b"1.5")
    eq(c.cmd("HDEL", "h", "a", "zz"), 1)
    cur, items = c.cmd("HSCAN", "h", "0", "COUNT", "100")
    eq(cur, b"0")
    eq(len(items), 2 * c.cmd("HLEN", "h"))
    assert c.cmd("HRANDFIELD", "h") in (b"b", b"c", b"n", b"fl")
    eq(c.cmd("HDEL", "h", "b", "c", "n", "fl"), 4)
    eq(c.cmd("EXISTS", "h"), 0, "an emptied hash is gone")
    c.cmd("SET", "s", "v")
    eq(c.cmd("HSET", "s", "f", "v"), WRONGTYPE)
    eq(c.cmd("HGET", "s", "f"), WRONGTYPE)
    eq(c.cmd("HGETALL", "s"), WRONGTYPE)


def test_set():
    s, c = srv()
    eq(c.cmd("SADD", "s", "a", "b", "c", "a"), 3)
    eq(c.cmd("SCARD", "s"), 3)
    eq(c.cmd("SISMEMBER", "s", "a"), 1)
    eq(c.cmd("SMISMEMBER", "s", "a", "z"), [1, 0])
    eq(sorted(c.cmd("SMEMBERS", "s")), [b"a", b"b", b"c"])
    eq(c.cmd("SREM", "s", "a", "z"), 1)
    c.cmd("SADD", "t", "b", "x")
    eq(sorted(c.cmd("SINTER", "s", "t")), [b"b"])
    eq(sorted(c.cmd("SUNION", "s", "t")), [b"b", b"c", b"x"])
    eq(sorted(c.cmd("SDIFF", "s", "t")), [b"c"])
    eq(c.cmd("SINTERCARD", "2", "s", "t"), 1)
    eq(c.cmd("SUNIONSTORE", "u", "s", "t"), 3)
    eq(c.cmd("SINTERSTORE", "i", "s", "t"), 1)
    eq(c.cmd("SDIFFSTORE", "d", "s", "t"), 1)
    eq(c.cmd("SMOVE", "u", "t", "c"), 1)
    eq(c.cmd("SISMEMBER", "t", "c"), 1)
    assert c.cmd("SRANDMEMBER", "t") in (b"b", b"x", b"c")
    eq(len(c.cmd("SRANDMEMBER", "t", "-5")), 5)
    p = c.cmd("SPOP", "d")
    eq(p, b"c")
    eq(c.cmd("EXISTS", "d"), 0)
    cur, m = c.cmd("SSCAN", "t", "0")
    eq(sorted(m), [b"b", b"c", b"x"])
    c.cmd("SET", "str", "v")
    eq(c.cmd("SADD", "str", "a"), WRONGTYPE)
    eq(c.cmd("SINTER", "s", "str"), WRONGTYPE)


def test_zset():
    s, c = srv()
    eq(c.cmd("ZADD", "z", "1", "a", "2", "b", "3", "c"), 3)
    eq(c.cmd("ZADD", "z", "NX", "5", "a"), 0)
    eq(c.cmd("ZADD", "z", "XX", "CH", "5", "a"), 1)
    eq(c.cmd("ZADD", "z", "x", "a"), Err("ERR value is not a valid float"))
    eq(c.cmd("ZADD", "z", "NX", "XX", "1", "a"),
       Err("ERR XX and NX options at the same time are not compatible"))
    eq(c.cmd("ZADD", "z", "1"), arity("zadd"))
    eq(c.cmd("ZADD", "z", "1", "a", "2"), SYNTAX)
    eq(c.cmd("ZSCORE", "z", "a"), b"5")
    eq(c.cmd("ZINCRBY", "z", "1.5", "b"), b"3.5")
    eq(c.cmd("ZCARD", "z"), 3)
    eq(c.cmd("ZRANGE", "z", "0", "-1"), [b"c", b"b", b"a"])
    eq(c.cmd("ZRANGE", "z", "0", "-1", "WITHSCORES"),
       [b"c", b"3", b"b", b"3.5", b"a", b"5"])
    eq(c.cmd("ZREVRANGE", "z", "0", "0"), [b"a"])
    eq(c.cmd("ZRANGEBYSCORE", "z", "(3", "+inf"), [b"b", b"a"])
    eq(c.cmd("ZRANGE", "z", "(3", "5", "BYSCORE", "LIMIT", "0", "1"),
       [b"b"])
    eq(c.cmd("ZCOUNT", "z", "-inf", "3.5"), 2)
    eq(c.cmd("ZRANK", "z", "a"), 2)
    eq(c.cmd("ZREVRANK", "z", "a"), 0)
    eq(c.cmd("ZRANK", "z", "none"), None)
    eq(c.cmd("ZMSCORE", "z", "a", "none"), [b"5", None])
    eq(c.cmd("ZREM", "z", "c", "none"), 1)
    eq(c.cmd("ZPOPMIN", "z"), [b"b", b"3.5"])
    eq(c.cmd("ZPOPMAX", "z"), [b"a", b"5"])
    eq(c.cmd("EXISTS", "z"), 0)
    c.cmd("ZADD", "lex", "0", "a", "0", "b", "0", "c")
    eq(c.cmd("ZRANGEBYLEX", "lex", "[b", "+"), [b"b", b"c"])
    eq(c.cmd("ZLEXCOUNT", "lex", "-", "(c"), 2)
    eq(c.cmd("ZRANGEBYLEX", "lex", "b", "+"),
       Err("ERR min or max not valid string range item"))
    eq(c.cmd("ZREMRANGEBYRANK", "lex", "0", "0"), 1)
    eq(c.cmd("ZREMRANGEBYSCORE", "lex", "-inf", "+inf"), 2)
    eq(c.cmd("ZRANGEBYSCORE", "lex", "x", "1"),
       Err("ERR min or max is not a float"))
    c.cmd("SET", "str", "v")
    eq(c.cmd("ZADD", "str", "1", "a"), WRONGTYPE)
    eq(c.cmd("ZSCORE", "str", "a"), WRONGTYPE)


def test_list():
    s, c = srv()
    eq(c.cmd("RPUSH", "l", "a", "b", "c"), 3)
    eq(c.cmd("LPUSH", "l", "z"), 4)
    eq(c.cmd("LRANGE", "l", "0", "-1"), [b"z", b"a", b"b", b"c"])
    eq(c.cmd("LLEN", "l"), 4)
    eq(c.cmd("LINDEX", "l", "-1"), b"c")
    eq(c.cmd("LINDEX", "l", "99"), None)
    eq(c.cmd("LSET", "l", "0", "y"), b"OK")
    eq(c.cmd("LSET", "l", "99", "y"), Err("ERR index out of range"))
    eq(c.cmd("LSET", "none", "0", "y"), Err("ERR no such key"))
    eq(c.cmd("LINSERT", "l", "BEFORE", "b", "ab"), 5)
    eq(c.cmd("LINSERT", "l", "AFTER", "none", "x"), -1)
    eq(c.cmd("LPOS", "l", "b"), 3)
    eq(c.cmd("LREM", "l", "0", "ab"), 1)
    eq(c.cmd("LPOP", "l"), b"y")
    eq(c.cmd("RPOP", "l", "2"), [b"c", b"b"])
    eq(c.cmd("LPUSHX", "none", "x"), 0)
    eq(c.cmd("RPUSHX", "l", "d", "e"), 3)
    eq(c.cmd("LTRIM", "l", "1", "-1"), b"OK")
    eq(c.cmd("LRANGE", "l", "0", "-1"), [b"d", b"e"])
    eq(c.cmd("LMOVE", "l", "m", "LEFT", "RIGHT"), b"d")
    eq(c.cmd("RPOPLPUSH", "l", "m"), b"e")
    eq(c.cmd("EXISTS", "l"), 0)
    eq(c.cmd("LRANGE", "m", "0", "-1"), [b"e", b"d"])
    eq(c.cmd("LPOP", "none"), None)
    c.cmd("SET", "str", "v")
    eq(c.cmd("LPUSH", "str", "a"), WRONGTYPE)
    eq(c.cmd("LRANGE", "str", "0", "-1"), WRONGTYPE)
    eq(c.cmd("LLEN", "str"), WRONGTYPE)


# ---------------------------------------------------------------------------
# server

def test_server_info():
    s, c = srv()
    c.cmd("SET", "a", "1")
    c.cmd("SET", "b", "1", "EX", "100")
    text = c.cmd("INFO")
    for sec in (b"# Server", b"# Clients", b"# Memory", b"# Persistence",
                b"# Stats", b"# Replication", b"# Keyspace"):
        assert sec in text, sec
    d = ct.info_dict(text)
    assert re.fullmatch(r"[0-9a-f]{40}", d["run_id"]), d["run_id"]
    eq(d["role"], "master")
    eq(d["connected_clients"], "1")
    eq(d["tcp_port"], str(s.port))
    assert d["db0"].startswith("keys=2,expires=1"), d["db0"]
    other = s.raw()
    other.cmd("PING")
    eq(ct.info_dict(c.cmd("INFO", "clients"))["connected_clients"], "2")
    srv_only = c.cmd("INFO", "server")
    assert b"# Server" in srv_only and b"# Clients" not in srv_only
    ks = c.cmd("INFO", "keyspace")
    assert b"db0:keys=2" in ks, ks


def test_info_memory_reports_the_process_and_the_peak():
    # used_memory is what maxmemory bounds; used_memory_rss is the process's
    # resident memory, split into its anonymous part and LMDB's map pages;
    # used_memory_peak keeps the high mark after memory falls.
    s, c = srv()
    big = b"x" * 100_000
    for i in range(40):
        eq(c.cmd("SET", "big%d" % i, big), b"OK")
    m = ct.info(c, "memory")
    used = int(m["used_memory"])
    assert used >= 40 * len(big), m
    eq(int(m["used_memory_peak"]), used)
    with open("/proc/%d/status" % s.proc.pid) as f:
        vm = dict(l.split(":", 1) for l in f if l.startswith("VmRSS"))
    rss_kb = int(vm["VmRSS"].split()[0])
    rss = int(m["used_memory_rss"])
    assert rss >= used, m
    assert rss // 2 <= rss_kb * 1024 <= rss * 2, (rss, rss_kb)
    eq(int(m["cairn_rss_anon"]) + int(m["cairn_rss_file"]), rss)
    assert int(m["total_system_memory"]) > rss, m
    eq(m["maxmemory_human"], "0B")
    eq(c.cmd("FLUSHDB"), b"OK")
    m = ct.info(c, "memory")
    assert int(m["used_memory"]) < used // 10, m
    eq(int(m["used_memory_peak"]), used)


def test_server_config():
    s, c = srv()
    eq(c.cmd("CONFIG", "GET", "maxclients"), [b"maxclients", b"10000"])
    eq(c.cmd("CONFIG", "SET", "maxclients", "500"), b"OK")
    eq(c.cmd("CONFIG", "GET", "maxclients"), [b"maxclients", b"500"])
    got = c.cmd("CONFIG", "GET", "max*")
    assert b"maxclients" in got and b"maxmemory" in got, got
    eq(c.cmd("CONFIG", "GET", "nosuch"), [])
    r = c.cmd("CONFIG", "SET", "nosuch", "1")
    assert isinstance(r, Err) and r.text.startswith("ERR"), r
    r = c.cmd("CONFIG", "SET", "maxclients", "notnum")
    assert isinstance(r, Err) and r.text.startswith("ERR"), r
    r = c.cmd("CONFIG", "SET", "port", "1234")
    assert isinstance(r, Err), "port cannot change while running: %r" % r
    eq(c.cmd("CONFIG", "GET", "maxclients"), [b"maxclients", b"500"])


def test_server_time_save_slowlog_memory():
    s, c = srv()
    sec, usec = c.cmd("TIME")
    assert abs(int(sec) - time.time()) < 5 and 0 <= int(usec) < 10 ** 6
    last = c.cmd("LASTSAVE")
    assert abs(last - time.time()) < 60, last
    c.cmd("SET", "k", "v" * 100)
    eq(c.cmd("SAVE"), b"OK")
    assert c.cmd("LASTSAVE") >= last
    r = c.cmd("BGSAVE")
    assert r in (b"Background saving started", b"OK"), r
    assert isinstance(c.cmd("SLOWLOG", "GET"), list)
    assert isinstance(c.cmd("SLOWLOG", "LEN"), int)
    eq(c.cmd("SLOWLOG", "RESET"), b"OK")
    mu = c.cmd("MEMORY", "USAGE", "k")
    assert isinstance(mu, int) and mu >= 100, mu
    eq(c.cmd("MEMORY", "USAGE", "none"), None)
    eq(c.cmd("ROLE")[0], b"master")


def keyspace(c):
    return ct.info(c, "keyspace")


def wait_keyspace(c, want):
    deadline = time.time() + 20
    got = keyspace(c)
    while any(got.get(k) != v for k, v in want.items()) and time.time() < deadline:
        time.sleep(0.05)
        got = keyspace(c)
    for k, v in want.items():
        eq(got.get(k), v, k)


def test_info_keyspace_counts_in_the_background_past_its_bound():
    # Counting keys scans memory and disk.  Past info-keyspace-sync-max
    # entries INFO shows the counts of a background scan, started when the
    # last is a second old, so that it never stops the loop for long;
    # DBSIZE waits for a count of its own (the next test).
    s = ct.server("--info-keyspace-sync-max", "0")
    c = s.raw()
    for i in range(100):
        eq(c.cmd("SET", "k%d" % i, "v"), b"OK")
    eq(c.cmd("SELECT", "2"), b"OK")
    eq(c.cmd("SET", "x", "v", "EX", "100"), b"OK")
    eq(c.cmd("SELECT", "0"), b"OK")
    wait_keyspace(c, {"db0": "keys=100,expires=0,avg_ttl=0",
                      "db2": "keys=1,expires=1,avg_ttl=0"})
    for i in range(100, 105):
        eq(c.cmd("SET", "k%d" % i, "v"), b"OK")
    eq(c.cmd("DBSIZE"), 105)
    wait_keyspace(c, {"db0": "keys=105,expires=0,avg_ttl=0"})
    # Under the bound (a live setting), on the spot.
    eq(c.cmd("CONFIG", "SET", "info-keyspace-sync-max", "1000"), b"OK")
    eq(c.cmd("SET", "k105", "v"), b"OK")
    eq(keyspace(c)["db0"], "keys=106,expires=0,avg_ttl=0")


def test_dbsize_past_the_bound_counts_beside_the_loop_and_is_exact():
    # Past info-keyspace-sync-max, DBSIZE's client waits for a background
    # count that began after it asked, while the loop serves the others;
    # a count made before the request (INFO's) never answers it.
    s = ct.server("--info-keyspace-sync-max", "0")
    c = s.raw()
    n = 100_000
    c.send(b"".join(ct.encode("SET", "key:%d" % i, "v") for i in range(n)))
    for _ in range(n):
        eq(c.read(), b"OK")
    wait_keyspace(c, {"db0": "keys=%d,expires=0,avg_ttl=0" % n})
    eq(c.cmd("SET", "one-more", "v"), b"OK")
    eq(c.cmd("DBSIZE"), n + 1)

    a, b = s.raw(), s.raw()
    eq(b.cmd("SELECT", "3"), b"OK")
    eq(b.cmd("SET", "x", "v"), b"OK")
    # What a client pipelines behind DBSIZE waits with it, in order.
    a.send(ct.encode("DBSIZE") + ct.encode("PING"))
    eq(b.cmd("PING"), b"PONG")
    ready, _, _ = select.select([a.sock], [], [], 0)
    eq(ready, [], "DBSIZE answered before the loop served another client")
    eq(b.cmd("DBSIZE"), 1)
    eq(a.read(), n + 1)
    eq(a.read(), b"PONG")

    # Inside EXEC nothing waits: counted on the spot.
    eq(a.cmd("MULTI"), b"OK")
    eq(a.cmd("DEL", "one-more"), b"QUEUED")
    eq(a.cmd("DBSIZE"), b"QUEUED")
    eq(a.cmd("EXEC"), [1, n])
    # Several at once, from clients of different databases.
    a.send(ct.encode("DBSIZE"))
    b.send(ct.encode("DBSIZE"))
    c.send(ct.encode("SELECT", "5") + ct.encode("DBSIZE"))
    eq(a.read(), n)
    eq(b.read(), 1)
    eq(c.read(), b"OK")
    eq(c.read(), 0)


def test_an_automatic_checkpoint_is_a_save():
    # What checkpoint-interval starts moves LASTSAVE and empties
    # rdb_changes_since_last_save, as Redis's automatic saves do.
    s = ct.server("--checkpoint-interval", "1000")
    c = s.raw()
    first = c.cmd("LASTSAVE")
    time.sleep(1.1)                      # LASTSAVE counts seconds
    for i in range(10):
        c.cmd("SET", "k%d" % i, "v")
    d = ct.info(c, "persistence")
    assert int(d["rdb_changes_since_last_save"]) >= 10, d
    deadline = time.time() + 20
    while d["rdb_changes_since_last_save"] != "0" and time.time() < deadline:
        time.sleep(0.05)
        d = ct.info(c, "persistence")
    eq(d["rdb_changes_since_last_save"], "0")
    assert int(d["cairn_checkpoints"]) >= 1, d
    assert c.cmd("LASTSAVE") > first
    c.cmd("SET", "after", "v")
    e = ct.info(c, "persistence")
    if e["cairn_checkpoints"] == d["cairn_checkpoints"]:
        eq(e["rdb_changes_since_last_save"], "1")


def test_slowlog_follows_its_live_settings():
    s, c = srv()
    eq(c.cmd("CONFIG", "GET", "slowlog-log-slower-than"),
       [b"slowlog-log-slower-than", b"10000"])
    eq(c.cmd("CONFIG", "GET", "slowlog-max-len"), [b"slowlog-max-len", b"128"])
    eq(c.cmd("CONFIG", "SET", "slowlog-log-slower-than", "0"), b"OK")
    eq(c.cmd("SLOWLOG", "RESET"), b"OK")
    for i in range(5):
        c.cmd("SET", "slow%d" % i, "v")
    got = c.cmd("SLOWLOG", "GET", "-1")
    assert len(got) >= 5, got            # every command, newest first
    eq(got[0][3], [b"SET", b"slow4", b"v"])
    eq(got[1][3], [b"SET", b"slow3", b"v"])
    assert got[0][0] > got[1][0], got    # ids grow
    eq(c.cmd("CONFIG", "SET", "slowlog-max-len", "2"), b"OK")
    eq(c.cmd("SLOWLOG", "LEN"), 2)       # the newest two are kept
    got = c.cmd("SLOWLOG", "GET")
    eq([e[3][0] for e in got], [b"SLOWLOG", b"CONFIG"])
    eq(c.cmd("CONFIG", "SET", "slowlog-log-slower-than", "-1"), b"OK")
    eq(c.cmd("SLOWLOG", "RESET"), b"OK")
    c.cmd("SET", "k", "v")
    eq(c.cmd("SLOWLOG", "LEN"), 0)
    r = c.cmd("CONFIG", "SET", "slowlog-log-slower-than", "-2")
    assert isinstance(r, Err), r
    eq(c.cmd("CONFIG", "SET", "slowlog-max-len", "0"), b"OK")
    eq(c.cmd("CONFIG", "SET", "slowlog-log-slower-than", "0"), b"OK")
    c.cmd("SET", "k", "v")
    eq(c.cmd("SLOWLOG", "LEN"), 0)


def test_redis_cli_resp3():
    import shutil
    import subprocess
    cli = shutil.which("redis-cli")
    if not cli:
        raise ct.Skip("no redis-cli")
    s, c = srv()
    c.cmd("HSET", "h", "f", "v")

    def run(*args):
        p = subprocess.run([cli, "-3", "--no-raw", "-p", str(s.port)] + list(args),
                           capture_output=True, timeout=10)
        return p.stdout.decode()
    out = run("HELLO", "3")
    assert "proto" in out and "3" in out, out
    eq(run("HGETALL", "h").strip(), '1# "f" => "v"')
    eq(run("GET", "none").strip(), "(nil)")
    eq(run("PING").strip(), "PONG")


if __name__ == "__main__":
    ct.main(globals())
