#!/usr/bin/env bash
# schemathesis.sh — the API contract check: schemathesis (PyPI) against a real
# `runway serve`, driven by the server's own /openapi.json.
#
#   scripts/schemathesis.sh [RUNWAY_BINARY]     default: target/debug/runway
#
# What happens:
#
#   1. schemathesis is installed into .venv-schemathesis (git-ignored) from its
#      hash-checked lock file, scripts/requirements/schemathesis.txt, once per
#      change of that file;
#   2. the binary (built by the caller: `make test` builds it first) serves on
#      127.0.0.1:0 with a fresh temporary data directory and no config file; the
#      address is read from its `Runway listening on http://ADDR` line;
#   3. for each of the two roles, admin and member, a fresh set of credentials is
#      made (users by `runway admin create-user`, sessions by signing in, a
#      registration token, agents registered with it, a job claimed by one of
#      them for its job token) and
#      `schemathesis run /openapi.json --checks all` runs every phase over every
#      operation, with a fixed seed and a bounded number of examples, so a run is
#      repeatable and takes a few minutes at most;
#   4. the server is stopped by its PID (SIGTERM, then SIGKILL after 10 s) on any
#      exit, and its log is shown if anything failed.
#
# Which credential each operation gets (every operation is run; none is left out):
#
#   /api/v1/*                     the role's session token
#   DELETE /api/v1/auth/session   a second session of the same user: signing out
#                                 ends the session it is called with
#   POST …/sessions/revoke-all    a second user's session: it ends every session
#                                 of its user
#   DELETE …/sessions/{id}        a third user's session: the fuzzer learns session
#                                 ids from the caller's own listings
#   POST /agent/v1/register       a registration token with room for every example
#   /agent/v1/jobs/{id}/*         the job token of a job the main agent holds, `id`
#                                 fixed to it
#   POST /agent/v1/token/rotate,  agents of their own: a rotation retires the
#   POST /agent/v1/disconnect     token, a disconnect abandons the held job
#   other /agent/v1/*             the main agent's token
#
# The agents pull from a queue of the run's own, so they claim only the jobs the
# setup made. Fixed parameters, each for a reason the config below gives: the
# `wait` of a claim and of a lease renewal is 0 (the server would hold each
# example up to 20 s, or until the renewal interval), and the log stream reads a
# job that has ended (a held job's stream is live until the job ends).
#
# A few answers depend on the server's state in ways no schema can state; the
# config allows exactly those, on those operations only, and says why: 422 for a
# registration token's past `expires_at`, for a job spec that breaks a rule
# across fields (a name in both `env` and `secrets`, …), for a retry whose secrets are not the
# job's, and for a finish whose log size or CRC differs; 416 for a log chunk at
# the wrong offset; 400 for a cursor the server did not issue. Everything else is every check schemathesis has.
#
# Settings (environment):
#
#   SCHEMATHESIS_MAX_EXAMPLES   examples per operation and phase (default 20)
#   SCHEMATHESIS_SEED           the seed (default 1)
#   SCHEMATHESIS_REPORT_DIR     keep the JUnit and NDJSON reports of each run here
#   SCHEMATHESIS_ROLES          the runs to make (default `admin member`)
#   SCHEMATHESIS_ARGS           more `schemathesis run` flags, split on spaces, e.g.
#                               `--include-path-regex ^/api/v1/jobs` to look at a few
#                               operations while fixing them
#   SCHEMATHESIS_REINSTALL=1    reinstall schemathesis
#
# Prints `schemathesis: ok: …` per role and exits non-zero on the first failing
# run, with schemathesis' own account of each failure (the request to reproduce it
# with curl, the response, the check that failed) and the tail of the server log.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-schemathesis"
# shellcheck source=scripts/pip-locked.sh
source "$ROOT/scripts/pip-locked.sh"

BINARY="${1:-$ROOT/target/debug/runway}"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-20}"
SEED="${SCHEMATHESIS_SEED:-1}"
# How long the server may take to print its listening line.
START_TIMEOUT_SECONDS=30

say() { printf 'schemathesis: %s\n' "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/runway-schemathesis.XXXXXX")"
SERVER_PID=""

stop_server() {
  [[ -n "$SERVER_PID" ]] || return 0
  local pid=$SERVER_PID
  SERVER_PID=""
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "the server (PID $pid) ignored SIGTERM for 10 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local status=$?
  stop_server
  if [[ $status -ne 0 && -f "$WORK/server.log" ]]; then
    say "the last lines of the server's log:"
    tail -n 40 "$WORK/server.log" | sed 's/^/  | /' >&2 || true
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. schemathesis ------------------------------------------------------------
LOCKED_REINSTALL="${SCHEMATHESIS_REINSTALL:-}" pip_locked_install "$VENV" schemathesis \
  || die "installing schemathesis failed"
[[ -x "$VENV/bin/schemathesis" ]] || die "schemathesis is missing from $VENV after the install"
PY="$VENV/bin/python"

[[ -x "$BINARY" ]] || die "no runway binary at $BINARY (build it: cargo build -p runway-server --bin runway)"

# --- 2. the server ----------------------------------------------------------------
# Only what is set here: no RUNWAY_* from the caller's shell, no ./runway.toml.
while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^RUNWAY_' || true)
: >"$WORK/empty.toml"
export RUNWAY_CONFIG="$WORK/empty.toml"
export RUNWAY_DATA_DIR="$WORK/data"
export RUNWAY_LISTEN="127.0.0.1:0"
export RUNWAY_LOG="warn"
export RUNWAY_SHUTDOWN_GRACE_SECONDS=2
password() { "$PY" -c 'import secrets; print(secrets.token_urlsafe(24))'; }
RUNWAY_ADMIN_PASSWORD="$(password)"
export RUNWAY_ADMIN_PASSWORD

"$BINARY" serve >"$WORK/server.log" 2>&1 </dev/null &
SERVER_PID=$!
ADDR=""
for ((i = 0; i < START_TIMEOUT_SECONDS * 10; i++)); do
  kill -0 "$SERVER_PID" 2>/dev/null || die "\`runway serve\` exited before it listened"
  ADDR="$(sed -n 's/.*Runway listening on http:\/\/\([0-9.:]*\).*/\1/p' "$WORK/server.log" | head -n 1)"
  [[ -n "$ADDR" ]] && break
  sleep 0.1
done
[[ -n "$ADDR" ]] || die "\`runway serve\` did not print its listening line within ${START_TIMEOUT_SECONDS}s"
BASE="http://$ADDR"
say "runway serve (PID $SERVER_PID) is listening on $BASE"

# --- 3. the runs ------------------------------------------------------------------
create_user() { # NAME ROLE → prints the password
  local pw
  pw="$(password)"
  printf '%s\n' "$pw" | "$BINARY" admin create-user --username "$1" --role "$2" --password-stdin \
    >"$WORK/create-user.log" 2>&1 || { cat "$WORK/create-user.log" >&2; die "runway admin create-user $1 failed"; }
  printf '%s\n' "$pw"
}

# Signs in, registers agents, claims a job, and writes the schemathesis config that
# hands each operation its credential (see the header). Passwords and tokens
# travel in the environment and in files under $WORK (mode 0700, the config 0600),
# never on a command line.
setup() { # ROLE USER CONFIG, with SETUP_PASSWORD (USER's) and SETUP_OTHERS
  "$PY" - "$BASE" "$@" <<'PY'
import json, os, sys, urllib.error, urllib.request

base, role, user, config = sys.argv[1:]
password = os.environ["SETUP_PASSWORD"]
# Two more users of the same role: NAME=PASSWORD,NAME=PASSWORD.
(ending_user, ending_password), (revoking_user, revoking_password) = (
    pair.split("=", 1) for pair in os.environ["SETUP_OTHERS"].split(","))

def call(method, path, token=None, body=None, want=(200, 201)):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    if status not in want:
        sys.exit(f"setup: {method} {path} answered {status}: {text}")
    return json.loads(text) if text else None

def sign_in(name, pw):
    return call("POST", "/api/v1/auth/sessions", body={"username": name, "password": pw})["token"]

session = sign_in(user, password)
# A second session of the same user for signing out (which ends only the session
# it is called with), and the second user's for revoke-all (which ends them all).
signing_out = sign_in(user, password)
ending = sign_in(ending_user, ending_password)
# A third user's, for revoking one session by id: the fuzzer learns session ids
# from the caller's own listings, and would otherwise revoke the run's session.
revoking = sign_in(revoking_user, revoking_password)
admin = session if role == "admin" else None
if admin is None:
    setup_admin, setup_admin_password = os.environ["SETUP_ADMIN"].split("=", 1)
    admin = sign_in(setup_admin, setup_admin_password)
registration = call("POST", "/api/v1/registration-tokens", admin,
                    {"description": f"schemathesis ({role})", "max_uses": 10000})["token"]

# The agents pull from a queue of this run's own, so they claim only the jobs made
# here, never the fuzzer's: a claimed job's log stream stays open until the job
# ends, which would hold every stream request of the run to its timeout.
queue = f"schemathesis-{role}"

def register(name):
    return call("POST", "/agent/v1/register", registration,
                {"name": name, "queue": queue, "capacity": 64})["token"]

agent, rotating, leaving = (register(f"{role}-{n}") for n in ("main", "rotating", "leaving"))

def claimed():
    job = call("POST", "/api/v1/jobs", session,
               {"name": f"schemathesis {role}", "script": "true", "queue": queue})
    claim = call("POST", "/agent/v1/jobs/claim?wait=5", agent, want=(200, 204))
    if claim is None or claim["job"]["id"] != job["id"]:
        got = claim and claim["job"]["id"]
        sys.exit(f"setup: the agent did not claim job {job['id']} (it claimed {got})")
    return job["id"], claim["job_token"]

# One job ended (its log complete, so its stream ends at once), one held by the
# agent for the job-token routes.
ended, ended_token = claimed()
call("POST", f"/agent/v1/jobs/{ended}/start", ended_token)
call("POST", f"/agent/v1/jobs/{ended}/finish", ended_token,
     {"result": "succeeded", "exit_code": 0, "log_bytes": 0, "log_crc32": 0})
job_id, job_token = claimed()
job = {"id": job_id}

# schemathesis' own default for positive_data_acceptance, widened below for two
# operations only.
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]

def headers(token):
    return "headers = { Authorization = " + json.dumps(f"Bearer {token}") + " }"

# One include filter per entry: schemathesis ORs an entry's filters.
toml = f"""
{headers(session)}

[[operations]]
include-name = "DELETE /api/v1/auth/session"
{headers(signing_out)}

[[operations]]
include-path = "/api/v1/auth/sessions/revoke-all"
{headers(ending)}

[[operations]]
include-path = "/api/v1/auth/sessions/{{id}}"
{headers(revoking)}

# `expires_at` must be in the future (at most 10 years away), which JSON Schema
# cannot say: a well-formed past instant is a 422 naming the field. Tested by
# crates/runway-api/tests/api/registration_tokens.rs.
[[operations]]
include-name = "POST /api/v1/registration-tokens"
checks.positive_data_acceptance.expected-statuses = {json.dumps(ACCEPTED + ["422"])}

# A personal API token's expiry is `expires_at` (in the future, at most 1830 days
# away) or `expires_in_days`, not both: JSON Schema can state neither rule, and
# breaking one is a 422 naming the field. Tested by
# crates/runway-api/tests/api/api_tokens.rs.
[[operations]]
include-name = "POST /api/v1/auth/tokens"
checks.positive_data_acceptance.expected-statuses = {json.dumps(ACCEPTED + ["422"])}

# A job spec has three rules across its fields, which a JSON Schema cannot
# state: a variable is in `env` or in `secrets`, not both; they hold at most 100
# together; name, script, env, secrets and labels add up to at most 300 KiB. A
# spec that breaks one is a 422 naming the field. Each field's own rules are in
# the schema (and checked against the validator by tests/api/openapi.rs); these
# three by crates/runway-core's job tests.
[[operations]]
include-name = "POST /api/v1/jobs"
checks.positive_data_acceptance.expected-statuses = {json.dumps(ACCEPTED + ["422"])}

# A retry must supply exactly the secrets the job was submitted with (their values
# were deleted when it finished): a well-formed set of other names is a 422 that
# names the missing or extra one. Which names, no schema can state. Tested by
# crates/runway-api/tests/api/retry.rs.
[[operations]]
include-name = "POST /api/v1/jobs/{{id}}/retry"
checks.positive_data_acceptance.expected-statuses = {json.dumps(ACCEPTED + ["422"])}

[[operations]]
include-path = "/agent/v1/register"
{headers(registration)}

[[operations]]
include-path-regex = "^/agent/v1/(heartbeat|config)$"
{headers(agent)}

[[operations]]
include-path = "/agent/v1/jobs/claim"
{headers(agent)}
parameters = {{ wait = 0 }}

[[operations]]
include-path = "/agent/v1/token/rotate"
{headers(rotating)}

[[operations]]
include-path = "/agent/v1/disconnect"
{headers(leaving)}

[[operations]]
include-path = "/agent/v1/jobs/{{id}}/start"
{headers(job_token)}
parameters = {{ id = {json.dumps(job["id"])} }}

# A finish must report the log's size and CRC-32 as the server holds them: one
# that disagrees is 422 `log_mismatch` (documented), which no schema can state.
[[operations]]
include-path = "/agent/v1/jobs/{{id}}/finish"
{headers(job_token)}
parameters = {{ id = {json.dumps(job["id"])} }}
checks.positive_data_acceptance.expected-statuses = {json.dumps(ACCEPTED + ["422"])}

# A chunk is placed by `offset`, which must be where the log ends now: a
# well-formed chunk elsewhere is 416 (documented, with `x-log-next-offset`), a
# fact about the server's state that no schema can state, as 409 is elsewhere.
[[operations]]
include-path = "/agent/v1/jobs/{{id}}/logs"
{headers(job_token)}
parameters = {{ id = {json.dumps(job["id"])} }}
checks.positive_data_acceptance.expected-statuses = {json.dumps(ACCEPTED + ["416"])}

# A held job's log stream is live: it ends when the job does. This one streams
# the ended job's log, so every example ends; the live stream is tested by
# crates/runway-api/tests/api/dispatch.rs.
[[operations]]
include-path = "/api/v1/jobs/{{id}}/log/stream"
parameters = {{ id = {json.dumps(ended)} }}

[[operations]]
include-path = "/agent/v1/jobs/{{id}}/lease"
{headers(job_token)}
parameters = {{ id = {json.dumps(job["id"])}, wait = 0 }}
"""
# A cursor is sealed by the server (see `Listing` in crates/runway-api): a
# well-formed string it did not issue is a 400 `invalid_cursor`, as documented,
# and no schema can tell the strings it issued apart. So every listing that takes
# a `cursor` may answer a generated one with 400. The run cannot tell that 400
# from a listing's other ones (the audit log's `until` not after `since`, which no
# schema relates either); the Rust tests pin those: page_request's unit tests and
# crates/runway-api/tests/api/audit.rs.
document = call("GET", "/openapi.json")
listings = sorted(
    path
    for path, item in document["paths"].items()
    if any(p["name"] == "cursor" and p["in"] == "query" for p in item.get("get", {}).get("parameters", []))
)
if listings:
    toml += f"""
[[operations]]
include-name = {json.dumps([f"GET {path}" for path in listings])}
checks.positive_data_acceptance.expected-statuses = {json.dumps(ACCEPTED + ["400"])}
"""
fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as f:
    f.write(toml)
PY
}

run_role() { # ROLE
  local role=$1 user pw pw2 pw3 config="$WORK/schemathesis-$1.toml" status=0
  if [[ "$role" == admin ]]; then
    # The admin the first start created.
    user=admin pw="$RUNWAY_ADMIN_PASSWORD"
  else
    user="contract-$role" pw="$(create_user "$user" "$role")"
  fi
  pw2="$(create_user "contract-$role-ending" "$role")"
  pw3="$(create_user "contract-$role-revoking" "$role")"
  # The setup's own admin, made now: an earlier run's fuzzer, as an admin, may
  # have deleted, disabled or demoted any user it listed, the first admin included.
  local setup_pw
  setup_pw="$(create_user "contract-$role-setup" admin)"
  SETUP_PASSWORD="$pw" SETUP_OTHERS="contract-$role-ending=$pw2,contract-$role-revoking=$pw3" \
    SETUP_ADMIN="contract-$role-setup=$setup_pw" \
    setup "$role" "$user" "$config" \
    || die "setting up the $role run failed"
  local reports=()
  if [[ -n "${SCHEMATHESIS_REPORT_DIR:-}" ]]; then
    mkdir -p "$SCHEMATHESIS_REPORT_DIR/$role"
    reports=(--report junit,ndjson --report-dir "$SCHEMATHESIS_REPORT_DIR/$role")
  fi
  say "running schemathesis as $role against $BASE/openapi.json (seed $SEED, at most $MAX_EXAMPLES examples per operation)"
  local started=$SECONDS
  (cd "$WORK" && "$VENV/bin/schemathesis" --no-color --config-file "$config" run "$BASE/openapi.json" \
    --checks all \
    --seed "$SEED" \
    --max-examples "$MAX_EXAMPLES" \
    --workers 1 \
    --generation-database none \
    --request-timeout 30 \
    --output-truncate false \
    "${reports[@]}" ${SCHEMATHESIS_ARGS:-}) >"$WORK/schemathesis-$role.log" 2>&1 || status=$?
  sed 's/^/  | /' "$WORK/schemathesis-$role.log" >&2
  if [[ $status -ne 0 ]]; then
    die "schemathesis as $role found the problems above (exit $status); rerun with scripts/schemathesis.sh"
  fi
  say "ok: as $role, every operation conforms to /openapi.json ($(grep -Eo '[0-9]+ generated' "$WORK/schemathesis-$role.log" | tail -n 1 || echo 'cases') in $((SECONDS - started)) s)"
}

for role in ${SCHEMATHESIS_ROLES:-admin member}; do
  run_role "$role"
done
