#!/bin/sh
# contrib/setup.sh - shared by contrib/run and contrib/check: install the
# Debian packages that are missing, then bootstrap, configure and build in
# the directory given as $1 with the configure flags that follow.
# Idempotent: each step is skipped when its result is already there.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
builddir=$1
shift

pkgs="build-essential autoconf automake libtool pkg-config liblmdb-dev
lmdb-utils liburing-dev liblz4-dev libxxhash-dev libcriterion-dev
libsqlite3-dev redis-server redis-tools python3 python3-redis clang libhiredis-dev
libclang-rt-14-dev"
missing=
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
    missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing:$missing"
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages and not root; install them:$missing" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

cd "$top"
if [ ! -x configure ] || [ configure.ac -nt configure ] ||
   [ Makefile.am -nt Makefile.in ]; then
  echo "setup: autoreconf"
  mkdir -p m4
  autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
fi

mkdir -p "$builddir"
cd "$builddir"
stamp=".configure-flags"
want="$*"
if [ ! -f Makefile ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] ||
   [ "$top/configure" -nt Makefile ]; then
  echo "setup: configure $want in $builddir"
  "$top/configure" -q "$@"
  echo "$want" > "$stamp"
fi
make -s -j"$(nproc)"
