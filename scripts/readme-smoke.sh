#!/usr/bin/env bash
# readme-smoke.sh — the README's own commands, run as a new user would (`make readme-smoke`).
#
#   scripts/readme-smoke.sh
#
# What happens:
#
#   1. the README's first command (the first line of its first ```sh block, today
#      `cargo run --release -- dev`: the server and a local agent) runs as written, from the repository root, with
#      RUNWAY_ADMIN_PASSWORD set and RUNWAY_DATA_DIR / RUNWAY_LISTEN pointing at a
#      temporary directory and a free loopback port (RUNWAY_CONFIG names an empty
#      file, so a developer's ./runway.toml cannot change the result);
#   2. once /health answers, the ```sh block under "## The API at a glance" is
#      taken out of README.md, `127.0.0.1:8080` replaced by that address and
#      PASSWORD-FROM-FIRST-START by the password, and run with
#      `set -euo pipefail` and a `curl` wrapper that fails on any answer outside
#      2xx (printing the method, the URL, the status and the body);
#      then its output must show that the job ran on the local agent, with its
#      log streamed back and its secret masked;
#   3. the server is stopped by its PID (SIGTERM, the graceful shutdown; SIGKILL
#      after 30 s), and must exit 0.
#
# The first release build takes several minutes (fat LTO); the wait for /health
# allows READY_TIMEOUT_SECONDS for it. Prints `readme-smoke: ok: …` per checked
# request and exits non-zero, with the server's log, on the first failure. The
# README is not changed: a failing example is a README (or server) bug to report.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
README="$ROOT/README.md"
READY_TIMEOUT_SECONDS="${READY_TIMEOUT_SECONDS:-2400}"

say() { printf 'readme-smoke: %s\n' "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/runway-readme-smoke.XXXXXX")"
SERVER_PID=""

stop_server() {
  [[ -n "$SERVER_PID" ]] || return 0
  local pid=$SERVER_PID status=0
  SERVER_PID=""
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 300); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "the server (PID $pid) ignored SIGTERM for 30 s; killing it"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || status=$?
  return "$status"
}

cleanup() {
  local status=$?
  stop_server || true
  if [[ $status -ne 0 && -f "$WORK/server.log" ]]; then
    say "the server's output (build included):"
    tail -n 60 "$WORK/server.log" | sed 's/^/  | /' >&2 || true
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

command -v curl >/dev/null || die "curl is required"
command -v python3 >/dev/null || die "python3 is required (the README's examples use it)"

# --- the README's commands ----------------------------------------------------
# The first line of the first ```sh block, without its comment.
FIRST_COMMAND="$(python3 - "$README" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
block = re.search(r"^```sh\n(.*?)^```", text, re.S | re.M)
if not block:
    sys.exit("README.md has no ```sh block")
line = next(l for l in block.group(1).splitlines() if l.strip() and not l.lstrip().startswith("#"))
print(line.split("#", 1)[0].strip())
PY
)" || die "cannot find the README's first command"

# The ```sh block under "## The API at a glance".
python3 - "$README" >"$WORK/api-at-a-glance.sh" <<'PY' || die "cannot find the API block in README.md"
import re, sys
text = open(sys.argv[1]).read()
section = re.search(r"^## The API at a glance\n(.*?)(?=^## )", text, re.S | re.M)
if not section:
    sys.exit('README.md has no "## The API at a glance" section')
block = re.search(r"^```sh\n(.*?)^```", section.group(1), re.S | re.M)
if not block:
    sys.exit('"## The API at a glance" has no ```sh block')
print(block.group(1), end="")
PY
grep -q '127.0.0.1:8080' "$WORK/api-at-a-glance.sh" || die "the API block no longer uses 127.0.0.1:8080; update this script"
grep -q 'PASSWORD-FROM-FIRST-START' "$WORK/api-at-a-glance.sh" \
  || die "the API block no longer uses PASSWORD-FROM-FIRST-START; update this script"

# --- 1. the server ----------------------------------------------------------------
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
ADDR="127.0.0.1:$PORT"
# Letters and digits only: it goes into the README's JSON and shell quoting as is.
PASSWORD="$(python3 -c 'import secrets, string; print("".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(24)))')"
: >"$WORK/empty.toml"

# Only what the README's reader would have: no RUNWAY_* from this shell.
while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^RUNWAY_' || true)
export RUNWAY_ADMIN_PASSWORD="$PASSWORD"
export RUNWAY_DATA_DIR="$WORK/data"
export RUNWAY_LISTEN="$ADDR"
export RUNWAY_CONFIG="$WORK/empty.toml"
export RUNWAY_SHUTDOWN_GRACE_SECONDS=5

say "running the README's first command, \`$FIRST_COMMAND\`, on $ADDR (the first release build takes minutes)"
# setsid: its own process group, so nothing else gets our signals; `exec` so that
# the PID is cargo's, which `cargo run` replaces with the server's own.
(cd "$ROOT" && exec setsid bash -c "exec $FIRST_COMMAND") >"$WORK/server.log" 2>&1 </dev/null &
SERVER_PID=$!

for ((i = 0; i < READY_TIMEOUT_SECONDS * 2; i++)); do
  kill -0 "$SERVER_PID" 2>/dev/null || die "\`$FIRST_COMMAND\` exited before /health answered"
  if curl --silent --fail --max-time 2 "http://$ADDR/health" >/dev/null 2>&1; then
    break
  fi
  sleep 0.5
done
curl --silent --fail --max-time 2 "http://$ADDR/health" >/dev/null 2>&1 \
  || die "/health did not answer on $ADDR within ${READY_TIMEOUT_SECONDS}s"
say "ok: \`$FIRST_COMMAND\` serves http://$ADDR (GET /health answers 200)"
grep -q "Runway listening on http://$ADDR" "$WORK/server.log" \
  || die "the server did not print \"Runway listening on http://$ADDR\""
if grep -q "$PASSWORD" "$WORK/server.log"; then
  die "the server printed the admin password it was given"
fi

# --- 2. the API examples ---------------------------------------------------------
{
  cat <<'SH'
set -euo pipefail

# Every request must answer 2xx. The body goes to stdout as curl would print it;
# the verdict goes to stderr.
curl() {
  local body status method="GET" url="" arg prev=""
  body="$(mktemp)"
  for arg in "$@"; do
    case "$prev" in -X | --request) method="$arg" ;; esac
    case "$arg" in http://* | https://*) url="$arg" ;; esac
    prev="$arg"
  done
  if ! status="$(command curl --show-error --max-time 30 --output "$body" --write-out '%{http_code}' "$@")"; then
    cat "$body"; rm -f "$body"
    printf 'readme-smoke: FAILED: curl could not complete %s %s\n' "$method" "$url" >&2
    return 1
  fi
  cat "$body"
  if [[ "$status" != 2[0-9][0-9] ]]; then
    # The body may be going into a pipe (`| python3 …`): show it here too.
    printf 'readme-smoke: FAILED: %s %s answered HTTP %s: %s\n' "$method" "$url" "$status" "$(head -c 2000 "$body")" >&2
    rm -f "$body"
    return 1
  fi
  rm -f "$body"
  printf 'readme-smoke: ok: %s /%s answered HTTP %s\n' "$method" "${url#http://*/}" "$status" >&2
}
SH
  sed -e "s/127\.0\.0\.1:8080/$ADDR/g" -e "s/PASSWORD-FROM-FIRST-START/$PASSWORD/g" "$WORK/api-at-a-glance.sh"
} >"$WORK/api.sh"

say "running the README's \"API at a glance\" block against http://$ADDR"
(cd "$WORK" && bash "$WORK/api.sh") >"$WORK/api.out" 2>"$WORK/api.err" || {
  cat "$WORK/api.err" >&2
  say "the block's output:"
  sed 's/^/  | /' "$WORK/api.out" >&2
  echo >&2
  die "the README's \"API at a glance\" block failed as written (see the FAILED line above)"
}
cat "$WORK/api.err" >&2
say "ok: every command of the README's \"API at a glance\" block succeeded"
# The job really ran on the local agent, its log streamed back, its secret masked.
grep -q 'hello from dev-agent' "$WORK/api.out" \
  || die "the README's job did not run on the local agent (no \"hello from dev-agent\" in its log)"
grep -q 'deploying with \*\*\*' "$WORK/api.out" \
  || die "the README's job log does not show its secret masked as ***"
if grep -q 's3cr3t-t0ken' "$WORK/api.out"; then
  die "the README's job secret appears in an API answer or the log"
fi
grep -q 'event: end' "$WORK/api.out" || die "the README's log stream did not end with \"event: end\""
say "ok: the README's job ran on dev-agent, its log streamed with the secret masked"

# --- 3. stop ----------------------------------------------------------------------
status=0
stop_server || status=$?
[[ $status -eq 0 ]] || die "the server exited with status $status after SIGTERM (graceful shutdown should exit 0)"
say "ok: the server stopped on SIGTERM and exited 0"
say "all checks passed"
