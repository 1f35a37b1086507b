"""cairntest - a small harness for cairnd's integration tests.

Starts cairnd on 127.0.0.1 with a free port and a fresh data directory,
waits until it answers PING, and stops it by its pid (SIGTERM, then
SIGKILL) whatever happens.  Holds a raw RESP2/RESP3 client (redis-py 4.3
speaks RESP2 only) and a tiny runner for functions named test_*.

The environment: CAIRND is the cairnd to run (default ./cairnd), TMPDIR
where the data directories go.  Every wait is bounded in time.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

SKIP = 77
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


def need_redis():
    """The redis module of Debian's python3, or exit 77."""
    try:
        import redis  # noqa: F401
        return redis
    except ImportError:
        print("SKIP: python3 redis module missing")
        sys.exit(SKIP)


def cairnd_path():
    p = os.environ.get("CAIRND", "./cairnd")
    if not os.access(p, os.X_OK):
        print("SKIP: no cairnd at %s (set CAIRND)" % p)
        sys.exit(SKIP)
    return os.path.abspath(p)


def free_port(host="127.0.0.1"):
    """A port free now: cairnd's port 0 means "no TCP", so bind one first."""
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_until(pred, timeout, step=0.02):
    """pred() until true or timeout seconds; returns its last value."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= end:
            return v
        time.sleep(step)


class PortLost(Exception):
    pass


class Server:
    """One cairnd process.  directives: extra ["--name", "value", ...]."""

    def __init__(self, *directives, datadir=None, bind="127.0.0.1",
                 host="127.0.0.1"):
        self.exe = cairnd_path()
        self.own_dir = datadir is None
        self.dir = datadir or tempfile.mkdtemp(prefix="cairnd-it-")
        self.directives = list(directives)
        self.bind = bind
        self.host = host
        self.port = None
        self.proc = None
        self.logs = []          # one stderr file per start
        self.exit_codes = []

    # -- life cycle -------------------------------------------------------
    def start(self, port=None):
        """Start and wait for PING.  A port picked here may be taken by
        someone else before cairnd binds it (tests run in parallel): then
        try another, a few times."""
        fixed = port or self.port
        for attempt in range(3):
            try:
                return self._start_once(fixed or free_port())
            except PortLost:
                if fixed or attempt == 2:
                    raise
        return self

    def _start_once(self, port):
        self.port = port
        fd, logf = tempfile.mkstemp(prefix="cairnd-it-", suffix=".stderr")
        os.close(fd)
        self.logs.append(logf)
        args = [self.exe, "--port", str(self.port), "--bind", self.bind,
                "--dir", self.dir] + self.directives
        with open(logf, "wb") as err:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                         stdout=err, stderr=err)
        try:
            ok = wait_until(self._answers, START_TIMEOUT, 0.05)
        except AssertionError:
            if "Address already in use" in self.stderr_text():
                raise PortLost()
            raise
        if not ok:
            raise AssertionError("cairnd did not answer PING within %.0f s"
                                 % START_TIMEOUT)
        return self

    def _answers(self):
        if self.proc.poll() is not None:
            raise AssertionError("cairnd exited with %s at start"
                                 % self.proc.returncode)
        try:
            with socket.create_connection((self.host, self.port), 0.5) as s:
                s.settimeout(1.0)
                s.sendall(b"PING\r\n")
                data = s.recv(256)
                # NOAUTH (requirepass) also proves the server is up.
                return data.startswith(b"+PONG") or data.startswith(b"-NOAUTH")
        except OSError:
            return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout=STOP_TIMEOUT):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self.exit_codes.append(rc)
        return rc

    def stop(self, sig=signal.SIGTERM):
        """Signal, wait bounded, then SIGKILL.  Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
        rc = self.wait_exit()
        if rc is None:
            self.proc.kill()
            rc = self.wait_exit()
        self.proc = None
        return rc

    def kill(self):
        return self.stop(signal.SIGKILL)

    def cleanup(self):
        self.stop()
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        for f in self.logs:
            try:
                os.unlink(f)
            except OSError:
                pass

    def stderr_text(self):
        out = []
        for f in self.logs:
            try:
                with open(f, "rb") as fh:
                    out.append(fh.read().decode("utf-8", "replace"))
            except OSError:
                pass
        return "".join(out)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()
        return False

    # -- clients ----------------------------------------------------------
    def client(self, **kw):
        redis = need_redis()
        kw.setdefault("socket_timeout", 10)
        kw.setdefault("socket_connect_timeout", 5)
        return redis.Redis(host=self.host, port=self.port, **kw)

    def raw(self, timeout=5.0, source=None):
        return Raw(self.host, self.port, timeout, source)


# ---------------------------------------------------------------------------
# A raw RESP client with a RESP2/RESP3 reader.

class Err(Exception):
    """An error reply (-ERR ... or !n)."""

    def __init__(self, text):
        super().__init__(text)
        self.text = text

    def __eq__(self, other):
        return isinstance(other, Err) and other.text == self.text

    def __repr__(self):
        return "Err(%r)" % self.text


class Push(list):
    """A RESP3 push (>) message."""


class Attr(dict):
    """A RESP3 attribute (|)."""


class Closed(Exception):
    pass


def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Raw:
    MAX_ELEMS = 10_000_000  # bound on any aggregate we accept

    def __init__(self, host, port, timeout=5.0, source=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if source:
            self.sock.bind((source, 0))
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def send(self, data):
        self.sock.sendall(data)

    def cmd(self, *args):
        """Send one command, read one reply (errors returned as Err)."""
        self.send(encode(*args))
        return self.read()

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise Closed("connection closed by the server")
        self.buf += d

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            self._fill()

    def _exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self):
        """One reply.  Simple strings and bulks are bytes; maps are dicts
        (lists of pairs if a key is unhashable); sets are lists."""
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest
        if t == b"-":
            return Err(rest.decode("utf-8", "replace"))
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t in (b"*", b"~", b">"):
            n = int(rest)
            if n < 0:
                return None
            if n > self.MAX_ELEMS:
                raise AssertionError("aggregate of %d elements" % n)
            items = [self.read() for _ in range(n)]
            return Push(items) if t == b">" else items
        if t in (b"%", b"|"):
            n = int(rest)
            pairs = [(self.read(), self.read()) for _ in range(n)]
            try:
                d = dict(pairs)
            except TypeError:
                return pairs
            if t == b"|":
                # An attribute precedes the reply it describes.
                return self.read()
            return d
        if t == b"_":
            return None
        if t == b"#":
            return rest == b"t"
        if t == b",":
            return float(rest)
        if t == b"(":
            return int(rest)
        if t == b"!":
            return Err(self._exact(int(rest)).decode("utf-8", "replace"))
        if t == b"=":
            return self._exact(int(rest))
        raise AssertionError("unknown RESP type byte in %r" % line[:40])

    def read_closed(self, timeout=5.0):
        """Read until the server closes; returns what came before.  Raises
        AssertionError if the connection stays open past timeout."""
        end = time.monotonic() + timeout
        data = self.buf
        self.buf = b""
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError("the server did not close the "
                                     "connection within %.1f s" % timeout)
            self.sock.settimeout(left)
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                return data
            if not d:
                return data
            data += d


# ---------------------------------------------------------------------------
# The runner.

def run(module_globals, setup=None):
    """Run every test_* function of the calling module, each on its own.
    A test takes no argument, or one: the Server that setup() returns,
    started fresh for that test when setup is given per test."""
    tests = sorted((n, f) for n, f in module_globals.items()
                   if n.startswith("test_") and callable(f))
    only = os.environ.get("CAIRNTEST_ONLY")
    passed = failed = 0
    failures = []
    for name, fn in tests:
        if only and only not in name:
            continue
        t0 = time.monotonic()
        try:
            fn()
            passed += 1
            print("PASS %s (%.2f s)" % (name, time.monotonic() - t0))
        except Skip as e:
            print("SKIP %s: %s" % (name, e))
        except Exception:
            failed += 1
            failures.append(name)
            print("FAIL %s (%.2f s)" % (name, time.monotonic() - t0))
            traceback.print_exc(file=sys.stdout)
            for srv in list(Tracker.live):
                print("---- cairnd stderr (%s) ----" % srv.dir)
                print(srv.stderr_text())
        finally:
            for srv in list(Tracker.live):
                srv.cleanup()
            Tracker.live.clear()
        sys.stdout.flush()
    if failures:
        print("failed: " + ", ".join(failures))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


class Skip(Exception):
    """Raise from a test to skip it (not counted)."""


class Tracker:
    live = []


def info_dict(text):
    """INFO's reply as a dict of str -> str."""
    out = {}
    for line in text.decode().splitlines():
        if line and not line.startswith("#") and ":" in line:
            k, v = line.split(":", 1)
            out[k] = v
    return out


def info(c, section):
    """INFO section of connection c as a dict of str -> str."""
    text = c.cmd("INFO", section)
    assert isinstance(text, bytes), "INFO %s: %r" % (section, text)
    return info_dict(text)


def server(*directives, **kw):
    """A started Server that the runner stops and removes after the test."""
    s = Server(*directives, **kw)
    Tracker.live.append(s)
    try:
        return s.start()
    except Exception:
        raise


def main(module_globals):
    need_redis()
    cairnd_path()
    sys.exit(run(module_globals))
