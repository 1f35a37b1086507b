# lib.sh - what the bench scripts share.  Source it with PROG set to the
# script's name (for messages):
#
#   PROG=daemon.sh
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

die() { echo "$PROG: $*" >&2; exit 1; }
note() { echo "# $*"; }

# need_tools CMD...: exit 77 (skipped) unless every CMD can be run.
need_tools() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null || { echo "$PROG: no $t" >&2; exit 77; }
  done
}

# warn_tmpfs DIR: say so if DIR is on tmpfs, where fsync costs nothing.
warn_tmpfs() {
  if [[ $(stat -f -c %T "$1") == tmpfs ]]; then
    note "warning: $1 is on tmpfs; fsync costs nothing there"
  fi
}

# A TCP port on 127.0.0.1 that nothing listens on.
free_port() {
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 40000))
    if ! ss -Hltn "sport = :$p" | grep -q .; then echo "$p"; return 0; fi
  done
  die "no free port found"
}
