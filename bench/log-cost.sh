#!/usr/bin/env bash
# bench/log-cost.sh — what one request's INFO access line costs, in instructions.
#
# Wall-clock and CPU-time numbers on a shared 2-core machine move by more than the
# cost of one log line, so this counts instructions instead: callgrind is
# deterministic for the same binary and the same requests. For each RUNWAY_LOG level
# (warn: no per-request line; info: one line per request, stderr to /dev/null) it
#   1. starts `runway serve` under `valgrind --tool=callgrind` on a new data dir,
#      port 0, with a random admin password;
#   2. signs in once (argon2id, slow under valgrind) and sends WARMUP requests;
#   3. zeroes callgrind's counters (`callgrind_control -z`), sends exactly N
#      `GET /api/v1/auth/session` requests with the Bearer session, one keep-alive
#      connection, one request at a time, and dumps the counters
#      (`callgrind_control -d`), so the dump holds those N requests and nothing else;
#   4. stops the server by PID and prints instructions per request (total Ir ÷ N).
# Then it prints the info-vs-warn gap, and the inclusive cost of tracing's event
# dispatch at info (the access line alone; the totals move by about 1% between runs
# with thread wake-ups, this does not). The dumps stay in OUT_DIR for
# `callgrind_annotate --inclusive=yes OUT_DIR/callgrind.info.out.PID.1`.
#
# The binary must carry symbols: by default the script builds
#   CARGO_PROFILE_RELEASE_STRIP=none CARGO_PROFILE_RELEASE_DEBUG=line-tables-only
#   CARGO_PROFILE_RELEASE_LTO=thin cargo build --release -p runway-server --bin runway
# (this replaces the target/release/runway that `make bench` builds; `make bench`
# rebuilds its own). Knobs: LOG_COST_N (2000), LOG_COST_WARMUP (200),
# LOG_COST_BIN=PATH (skip the build), LOG_COST_OUT (target/log-cost).
# Only 127.0.0.1 is loaded; every loop is bounded by its count.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

N="${LOG_COST_N:-2000}"
WARMUP="${LOG_COST_WARMUP:-200}"
OUT_DIR="${LOG_COST_OUT:-${CARGO_TARGET_DIR:-$ROOT/target}/log-cost}"

die() { printf 'log-cost: %s\n' "$*" >&2; exit 1; }
for tool in valgrind callgrind_control curl jq python3; do
    command -v "$tool" >/dev/null || die "needs $tool (apt-get install valgrind curl jq python3)"
done

if [[ -n "${LOG_COST_BIN:-}" ]]; then
    RUNWAY="$LOG_COST_BIN"
else
    CARGO_PROFILE_RELEASE_STRIP=none CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
        CARGO_PROFILE_RELEASE_LTO=thin cargo build --release -p runway-server --bin runway
    RUNWAY="${CARGO_TARGET_DIR:-$ROOT/target}/release/runway"
fi
[[ -x "$RUNWAY" ]] || die "no binary at $RUNWAY"

mkdir -p "$OUT_DIR"
WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
    local status=$?
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT

# requests URL TOKEN COUNT: COUNT GETs over one keep-alive connection; fails on any
# status but 200.
requests() {
    python3 - "$@" <<'PY'
import http.client, sys, urllib.parse
url, token, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
u = urllib.parse.urlsplit(url)
conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
headers = {"Authorization": f"Bearer {token}"}
for _ in range(count):
    conn.request("GET", u.path, headers=headers)
    resp = conn.getresponse()
    resp.read()
    if resp.status != 200:
        sys.exit(f"status {resp.status}")
conn.close()
PY
}

# measure LEVEL: prints the instructions of N requests at RUNWAY_LOG=LEVEL.
measure() {
    local level="$1" password addr="" i token
    password="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
    rm -f "$OUT_DIR/callgrind.$level".*
    env RUNWAY_LOG="$level" RUNWAY_ADMIN_PASSWORD="$password" \
        valgrind --tool=callgrind --callgrind-out-file="$OUT_DIR/callgrind.$level.%p" \
        "$RUNWAY" serve --listen 127.0.0.1:0 --data-dir "$WORK/data-$level" \
        >"$WORK/$level.stdout" 2>/dev/null &
    SERVER_PID=$!
    for ((i = 0; i < 600; i++)); do
        sleep 0.1
        addr="$(grep -m1 -o 'listening on http://[^ ]*' "$WORK/$level.stdout" | sed 's#.*http://##' || true)"
        [[ -n "$addr" ]] && break
        kill -0 "$SERVER_PID" 2>/dev/null || die "runway exited at startup ($level)"
    done
    [[ -n "$addr" ]] || die "runway did not print its address within 60 s ($level)"
    token="$(curl -sS --fail-with-body -X POST "http://$addr/api/v1/auth/sessions" \
        -H 'Content-Type: application/json' \
        -d "{\"username\":\"admin\",\"password\":\"$password\",\"device_name\":\"log-cost\"}" |
        jq -er .token)" || die "sign-in failed ($level)"
    requests "http://$addr/api/v1/auth/session" "$token" "$WARMUP"
    callgrind_control -z "$SERVER_PID" >/dev/null 2>&1
    requests "http://$addr/api/v1/auth/session" "$token" "$N"
    callgrind_control -d "$SERVER_PID" >/dev/null 2>&1
    local dump="$OUT_DIR/callgrind.$level.$SERVER_PID.1"
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || true
    SERVER_PID=""
    [[ -f "$dump" ]] || die "no callgrind dump for $level"
    # The dump's `summary:` line is the total of its events (Ir only by default).
    awk '/^summary:/ {print $2}' "$dump"
}

# event_ir LEVEL: the inclusive instructions of every tracing event dispatched during
# the N requests (at info, essentially the N access lines: filter, format, write).
event_ir() {
    local dumps=("$OUT_DIR/callgrind.$1".*.1)
    callgrind_annotate --inclusive=yes --threshold=100 "${dumps[0]}" 2>/dev/null |
        awk '!found && /tracing_core::event::Event::dispatch \[/ {gsub(",", "", $1); print $1; found=1}
             END {if (!found) print 0}'
}

warn_ir="$(measure warn)"
info_ir="$(measure info)"
info_event_ir="$(event_ir info)"
python3 - "$N" "$warn_ir" "$info_ir" "$info_event_ir" <<'PY'
import sys
n, warn, info, event = (int(a) for a in sys.argv[1:5])
w, i = warn / n, info / n
print(f"requests per level: {n}")
print(f"warn: {w:,.0f} instructions per request")
print(f"info: {i:,.0f} instructions per request")
print(f"info - warn: {i - w:,.0f} instructions per request ({(i - w) / w * 100:.1f}% of warn)")
print(f"info, inside tracing's Event::dispatch (inclusive): {event / n:,.0f} per request")
PY
printf 'dumps: %s\n' "$OUT_DIR"
