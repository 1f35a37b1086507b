#!/usr/bin/python3
"""Runs tests/integration/hiredis_test (built by make check when hiredis is
present) against a fresh cairnd; skips when it was not built."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cairntest as ct  # noqa: E402


def find_prog():
    p = os.environ.get("HIREDIS_TEST", "tests/integration/hiredis_test")
    return p if os.access(p, os.X_OK) else None


def test_hiredis_client():
    prog = find_prog()
    s = ct.server()
    p = subprocess.run([os.path.abspath(prog), str(s.port)],
                       capture_output=True, timeout=60)
    sys.stdout.write(p.stdout.decode())
    sys.stdout.write(p.stderr.decode())
    assert p.returncode == 0, "hiredis_test exited %d" % p.returncode


if __name__ == "__main__":
    if not find_prog():
        print("SKIP: hiredis_test not built (needs libhiredis-dev)")
        sys.exit(ct.SKIP)
    ct.main(globals())
