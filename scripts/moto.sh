#!/usr/bin/env bash
# moto.sh — the DynamoDB emulator for Runway's tests (PyPI `moto[server]`).
#
#   scripts/moto.sh install   create .venv (repo root) and install moto[server] from
#                             its hash-checked lock file, if missing or changed
#   scripts/moto.sh start     start moto_server on a free loopback port, wait until it
#                             answers, print `MOTO_ENDPOINT=http://127.0.0.1:PORT`
#   scripts/moto.sh stop      stop the server started by `start`
#   scripts/moto.sh run CMD…  start, run CMD with RUNWAY_TEST_DYNAMODB_ENDPOINT set,
#                             stop (even if CMD fails or is interrupted), exit with CMD's status
#
# Typical use (what `make test` does):
#
#   scripts/moto.sh install
#   scripts/moto.sh run cargo test -p runway-store-dynamodb
#
# or by hand:
#
#   eval "$(scripts/moto.sh start)"
#   trap 'scripts/moto.sh stop' EXIT
#   RUNWAY_TEST_DYNAMODB_ENDPOINT=$MOTO_ENDPOINT cargo test -p runway-store-dynamodb
#
# Only `MOTO_ENDPOINT=…` goes to stdout (so `eval` is safe); progress and errors go
# to stderr. The PID and the server's log live in .venv/moto/ (git-ignored). Nothing
# is ever skipped: if moto cannot be installed or started, this exits non-zero and
# says why, so the tests that need it fail loudly instead of passing vacuously.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STATE="$VENV/moto"
PID_FILE="$STATE/moto.pid"
LOG_FILE="$STATE/moto.log"
# moto[server] and its dependencies, pinned with hashes in
# scripts/requirements/moto.txt: a new moto release can change how it emulates
# DynamoDB (error codes, limits, consistency), and the store tests should not change
# under us. To upgrade: change moto.in, recompile it (scripts/pip-locked.sh says
# how), and run `make test`.
# shellcheck source=scripts/pip-locked.sh
source "$ROOT/scripts/pip-locked.sh"
# How long `start` waits for the server to answer, in tenths of a second.
START_TIMEOUT_TENTHS=300

say() { printf 'moto.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

install() {
  pip_locked_install "$VENV" moto "moto[server]" || die "installing moto[server] failed"
  [[ -x "$VENV/bin/moto_server" ]] || die "moto_server is missing after the install"
}

free_port() {
  # Bind port 0 and report what the kernel chose. There is a small window before
  # moto binds it; `start` retries if another process takes it meanwhile.
  "$VENV/bin/python" - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

answers() {
  # moto answers any GET on / with 200 once its WSGI app is up.
  "$VENV/bin/python" - "$1" <<'PY' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/moto-api/", timeout=1).read()
PY
}

running_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(cat "$PID_FILE")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && printf '%s\n' "$pid"
}

start() {
  [[ -x "$VENV/bin/moto_server" ]] || die "moto is not installed: run 'scripts/moto.sh install' first"
  mkdir -p "$STATE"
  local attempt port pid tenths
  if pid="$(running_pid)"; then
    die "a moto_server started by this script is already running (PID $pid); run 'scripts/moto.sh stop' first"
  fi
  for attempt in 1 2 3; do
    port="$(free_port)"
    # setsid: its own session, so a Ctrl-C meant for cargo does not kill it early,
    # and `stop` can end it with its children.
    setsid "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$LOG_FILE" 2>&1 </dev/null &
    pid=$!
    printf '%s\n' "$pid" >"$PID_FILE"
    for ((tenths = 0; tenths < START_TIMEOUT_TENTHS; tenths++)); do
      if ! kill -0 "$pid" 2>/dev/null; then
        break
      fi
      if answers "$port"; then
        say "moto_server is up on 127.0.0.1:$port (PID $pid, log $LOG_FILE)"
        printf 'MOTO_ENDPOINT=http://127.0.0.1:%s\n' "$port"
        return 0
      fi
      sleep 0.1
    done
    stop_pid "$pid"
    say "attempt $attempt: moto_server did not come up on port $port; its log:"
    sed 's/^/  | /' "$LOG_FILE" >&2 || true
  done
  rm -f "$PID_FILE"
  die "could not start moto_server"
}

stop_pid() {
  local pid=$1 tenths
  # The whole session (moto may fork workers), then wait up to 5 s before SIGKILL.
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || return 0
  for ((tenths = 0; tenths < 50; tenths++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
}

stop() {
  local pid
  if pid="$(running_pid)"; then
    stop_pid "$pid"
    say "stopped moto_server (PID $pid)"
  fi
  rm -f "$PID_FILE"
}

run() {
  [[ $# -gt 0 ]] || die "usage: scripts/moto.sh run COMMAND [ARGS…]"
  local line
  line="$(start)"
  trap stop EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  local status=0
  RUNWAY_TEST_DYNAMODB_ENDPOINT="${line#MOTO_ENDPOINT=}" "$@" || status=$?
  return "$status"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  run) shift; run "$@" ;;
  *)
    # The header comment is the usage.
    sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed -e 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
