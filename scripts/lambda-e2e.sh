#!/usr/bin/env bash
# lambda-e2e.sh — the `runway` binary as a Lambda function, end to end (`make test-lambda`).
#
#   scripts/lambda-e2e.sh             debug build, DynamoDB tables in moto_server
#   scripts/lambda-e2e.sh --release   the same with a release build (closer to the
#                                     deployed function; use it for the timings)
#
# What happens:
#
#   1. install cargo-lambda (.venv-tools) and moto (.venv) if missing;
#   2. build `runway`, start moto_server on a free port and create fresh tables with
#      `runway dynamodb create-tables` under a unique prefix;
#   3. start `cargo lambda watch` (the Lambda Runtime API emulator) on a free port,
#      serving the `runway` binary with RUNWAY_STORE=dynamodb and
#      RUNWAY_ADMIN_PASSWORD, configured only through its environment as on AWS;
#   4. send our own API Gateway HTTP API v2.0 events
#      (crates/runway-server/tests/fixtures/apigw-v2-*.json) with `cargo lambda
#      invoke --data-file`, and check status codes and bodies: /health, sign-in
#      with a base64 body (the session records requestContext.http.sourceIp), a
#      job listing with a query string and the session token, and a 404 envelope;
#   5. print the cold start (first invocation, which starts the process) next to a
#      warm one, and the function's own `init_ms`;
#   6. stop watch by its PID (it ends the function it started) and moto.
#
# Every step fails loudly: a tool that cannot be installed or started, a port that
# never opens, or a response that differs ends the script with a non-zero status
# and the relevant log. Nothing is skipped.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FIXTURES="$ROOT/crates/runway-server/tests/fixtures"
CARGO="${CARGO:-cargo}"
# Honour CARGO_TARGET_DIR (CI may keep the build directory outside the clone).
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
PROFILE_FLAG=()
BIN="$TARGET_DIR/debug/runway"
if [[ "${1:-}" == "--release" ]]; then
  PROFILE_FLAG=(--release)
  BIN="$TARGET_DIR/release/runway"
elif [[ $# -gt 0 ]]; then
  echo "usage: scripts/lambda-e2e.sh [--release]" >&2
  exit 2
fi
ADMIN_PASSWORD="correct-horse-battery-staple" # the one in the sign-in fixture
# How long to wait for the emulator to listen, and for one invocation.
START_TIMEOUT_SECONDS=120
INVOKE_TIMEOUT_SECONDS=120

say() { printf 'lambda-e2e: %s\n' "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/runway-lambda-e2e.XXXXXX")"
WATCH_PID=""
MOTO_STARTED=""

cleanup() {
  local status=$?
  if [[ -n "$WATCH_PID" ]] && kill -0 "$WATCH_PID" 2>/dev/null; then
    # watch ends the function instances it spawned when it gets SIGTERM; note them
    # first, in case it has to be killed harder.
    local children
    children="$(pgrep -P "$WATCH_PID" || true)"
    kill -TERM "$WATCH_PID" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$WATCH_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$WATCH_PID" 2>/dev/null; then
      say "cargo lambda watch ignored SIGTERM; killing it"
      kill -KILL "$WATCH_PID" 2>/dev/null || true
      for pid in $children; do kill -KILL "$pid" 2>/dev/null || true; done
    fi
    wait "$WATCH_PID" 2>/dev/null || true
  fi
  if [[ -n "$MOTO_STARTED" ]]; then
    "$ROOT/scripts/moto.sh" stop || true
  fi
  if [[ $status -ne 0 && -f "$WORK/watch.log" ]]; then
    say "the emulator's and the function's log:"
    sed 's/^/  | /' "$WORK/watch.log" >&2 || true
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

now_ms() { date +%s%3N; }

# --- 1. tools -----------------------------------------------------------------
"$ROOT/scripts/cargo-lambda.sh" install || die "cannot install cargo-lambda"
"$ROOT/scripts/moto.sh" install || die "cannot install moto"

# --- 2. binary, emulator, tables ----------------------------------------------
say "building runway ${PROFILE_FLAG[*]:-(debug)}"
(cd "$ROOT" && "$CARGO" build "${PROFILE_FLAG[@]}" -p runway-server --bin runway) \
  || die "cargo build failed"

MOTO_LINE="$("$ROOT/scripts/moto.sh" start)" || die "moto_server did not start"
MOTO_STARTED=1
MOTO_ENDPOINT="${MOTO_LINE#MOTO_ENDPOINT=}"
PREFIX="e2e$(date +%s%N)_"

# Dummy credentials and no profile: nothing here can reach a real AWS account.
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_PROFILE AWS_ENDPOINT_URL AWS_ENDPOINT_URL_DYNAMODB
export RUNWAY_STORE=dynamodb RUNWAY_DYNAMODB_TABLE_PREFIX="$PREFIX"
export RUNWAY_DYNAMODB_ENDPOINT="$MOTO_ENDPOINT" RUNWAY_DYNAMODB_REGION=us-east-1
export RUNWAY_ADMIN_PASSWORD="$ADMIN_PASSWORD" RUNWAY_LOG=info
unset RUNWAY_CONFIG RUNWAY_LOG_FORMAT AWS_LAMBDA_RUNTIME_API

"$BIN" dynamodb create-tables >"$WORK/create-tables.txt" \
  || die "runway dynamodb create-tables failed: $(cat "$WORK/create-tables.txt")"
# Every table new (the prefix is unique), however many the schema has: one
# `created` line per table and a summary that agrees with them.
tables="$(grep -c "^  created  $PREFIX" "$WORK/create-tables.txt" || true)"
if [[ "$tables" -lt 1 ]] \
  || ! grep -q "^$tables created, 0 already existed; all $tables are active" "$WORK/create-tables.txt"; then
  die "unexpected create-tables output: $(cat "$WORK/create-tables.txt")"
fi
say "created the tables ${PREFIX}* in moto at $MOTO_ENDPOINT"

# --- 3. the Lambda emulator ---------------------------------------------------
PORT="$(free_port)"
say "starting cargo lambda watch on 127.0.0.1:$PORT"
(cd "$ROOT" && exec "$ROOT/scripts/cargo-lambda.sh" watch "${PROFILE_FLAG[@]}" \
  -p runway-server --bin runway --ignore-changes -A 127.0.0.1 -P "$PORT") \
  >"$WORK/watch.log" 2>&1 </dev/null &
WATCH_PID=$!
for ((i = 0; i < START_TIMEOUT_SECONDS * 10; i++)); do
  kill -0 "$WATCH_PID" 2>/dev/null || die "cargo lambda watch exited early"
  if grep -q "starting Runtime server" "$WORK/watch.log" \
     && (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    break
  fi
  sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null \
  || die "cargo lambda watch did not listen on port $PORT within ${START_TIMEOUT_SECONDS}s"

# --- 4. invocations -----------------------------------------------------------
# invoke EVENT_FILE OUT_FILE: one invocation; the v2.0 response JSON in OUT_FILE.
invoke() {
  timeout "$INVOKE_TIMEOUT_SECONDS" "$ROOT/scripts/cargo-lambda.sh" invoke runway \
    -A 127.0.0.1 -P "$PORT" --data-file "$1" --output-format json >"$2" \
    || die "cargo lambda invoke with $(basename "$1") failed: $(cat "$2")"
}

# check RESPONSE_FILE PYTHON_CONDITION DESCRIPTION: asserts on the response, where
# `r` is the response and `body` its parsed JSON body.
check() {
  python3 - "$1" "$2" "$3" <<'PY' || die "$3"
import json, sys
path, condition, description = sys.argv[1:4]
r = json.load(open(path))
body = json.loads(r["body"]) if r.get("body") else None
if not eval(condition, {"r": r, "body": body}):
    sys.exit(f"not true: {condition}\nresponse: {json.dumps(r, indent=2)}")
print(f"lambda-e2e: ok: {description}", file=sys.stderr)
PY
}

start_ms="$(now_ms)"
invoke "$FIXTURES/apigw-v2-health.json" "$WORK/health.json"
cold_ms=$(($(now_ms) - start_ms))
check "$WORK/health.json" 'r["statusCode"] == 200 and body == {"status": "ok"}' \
  "GET /health answers 200 {\"status\":\"ok\"}"
check "$WORK/health.json" 'r["headers"]["content-type"].startswith("application/json") and "x-request-id" in r["headers"]' \
  "the response carries content-type and x-request-id"

start_ms="$(now_ms)"
invoke "$FIXTURES/apigw-v2-health.json" "$WORK/health2.json"
warm_ms=$(($(now_ms) - start_ms))
check "$WORK/health2.json" 'r["statusCode"] == 200' "a warm invocation answers too"

invoke "$FIXTURES/apigw-v2-sign-in.json" "$WORK/sign-in.json"
check "$WORK/sign-in.json" 'r["statusCode"] == 201 and body["token"].startswith("rws_") and body["user"]["username"] == "admin"' \
  "sign-in with a base64 body returns 201 and a session token"
check "$WORK/sign-in.json" 'body["session"]["ip"] == "203.0.113.7" and body["session"]["device_name"] == "lambda laptop"' \
  "the session records requestContext.http.sourceIp"

TOKEN="$(python3 -c 'import json,sys; print(json.loads(json.load(open(sys.argv[1]))["body"])["token"])' "$WORK/sign-in.json")"
python3 - "$FIXTURES/apigw-v2-list-jobs.json" "$TOKEN" >"$WORK/list-jobs-event.json" <<'PY'
import json, sys
event = json.load(open(sys.argv[1]))
event["headers"]["authorization"] = f"Bearer {sys.argv[2]}"
print(json.dumps(event))
PY
invoke "$WORK/list-jobs-event.json" "$WORK/list-jobs.json"
check "$WORK/list-jobs.json" 'r["statusCode"] == 200 and body["items"] == []' \
  "GET /api/v1/jobs?limit=2&status=queued with the token answers 200 and an empty page"

invoke "$FIXTURES/apigw-v2-list-jobs.json" "$WORK/unauthorized.json"
check "$WORK/unauthorized.json" 'r["statusCode"] == 401 and body["error"]["code"] == "unauthorized"' \
  "a bad token gets the 401 error envelope"

invoke "$FIXTURES/apigw-v2-not-found.json" "$WORK/not-found.json"
check "$WORK/not-found.json" 'r["statusCode"] == 404 and body["error"]["code"] == "not_found" and body["error"]["request_id"] == r["headers"]["x-request-id"]' \
  "an unknown route gets the 404 error envelope"

# The same function is invoked by EventBridge every minute to run the reaper.
cat >"$WORK/schedule.json" <<'JSON'
{"version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
 "source": "aws.events", "account": "123456789012", "time": "2026-12-01T20:00:00Z",
 "region": "us-east-1", "resources": ["arn:aws:events:us-east-1:123456789012:rule/runway-reaper"],
 "detail": {}}
JSON
invoke "$WORK/schedule.json" "$WORK/reaped.json"
check "$WORK/reaped.json" '"reaped" in r and r["reaped"]["requeued"] == 0 and r["reaped"]["expired"] == 0' \
  "an EventBridge scheduled event runs one reaper pass on DynamoDB"

# --- 5. the function's own view -----------------------------------------------
grep -q '"message":"runway lambda ready","store":"dynamodb"' "$WORK/watch.log" \
  || die "the function did not log its JSON ready line on DynamoDB"
grep -q "created user \`admin\` with the password from RUNWAY_ADMIN_PASSWORD" "$WORK/watch.log" \
  || die "the function did not bootstrap admin from RUNWAY_ADMIN_PASSWORD"
if grep -q "$ADMIN_PASSWORD\|$TOKEN" "$WORK/watch.log"; then
  die "a password or token reached the function's log"
fi
init_ms="$(grep -o '"init_ms":[0-9]*' "$WORK/watch.log" | head -n1 | cut -d: -f2)"
say "timings: first invocation (process start + cold start + request) ${cold_ms} ms, \
warm invocation ${warm_ms} ms; both include the cargo lambda invoke client and the first \
watch's \`cargo run\` up-to-date check. The function's own init_ms ${init_ms} covers the \
DynamoDB client and the admin bootstrap (an argon2 hash: slow in a debug build)"
say "all checks passed"
