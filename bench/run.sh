#!/usr/bin/env bash
# bench/run.sh — what `make bench` runs. Measures the release build of Runway on this
# machine and writes BENCHMARKS.md at the repository root.
#
# What it does, in order:
#   1. installs what is missing (wrk, GNU time, jq, curl, python3) with apt-get;
#   2. builds `runway` and `runway-bench-ceiling` (bench/ceiling) in release mode;
#   3. starts three servers on 127.0.0.1, port 0, each under `/usr/bin/time -v` (its
#      "Maximum resident set size" at exit is the peak RSS):
#        runway        RUNWAY_LOG=warn (no per-request INFO lines), stderr to a file;
#        runway-info   RUNWAY_LOG=info with stderr to /dev/null: the cost of logging;
#        ceiling       a bare axum server answering the session route with a constant;
#      reads each one's real address from its `listening on http://ADDR` line, signs in
#      as admin (password random per run), reads idle RSS from /proc/PID/status;
#   4. seeds exactly BENCH_JOBS (10,000) jobs with bench/jobs.py and checks the count;
#   5. load: wrk -t1 -c64 -d10s --latency, BENCH_RUNS (3) rounds, round-robin over
#      ceiling, session validation (warn and info), /health, job listing, and the
#      ceiling again with wrk -t2 (to show what -t does), so every
#      round compares the same moment of a noisy machine; then POST /api/v1/jobs
#      (last, because it adds jobs and the listing must see exactly 10,000). For each
#      run it also records the CPU time the server (/proc/PID/stat), wrk (GNU time)
#      and the whole machine (/proc/stat) used, which shows who had the 2 cores;
#   6. cold start with bench/coldstart.py: exec → first 200 on /health, 10 starts on
#      an existing data directory, 10 on brand-new ones (argon2 hashing of the admin
#      password included), and 10 of the ceiling binary (the floor of the harness);
#   7. Lambda: the arm64 package (`make lambda`, or `make lambda-x86` if the aarch64
#      standard library is missing) and its zip and uncompressed sizes; then, with
#      bench/lambda_runtime.py (a local Lambda Runtime API emulator) driving the
#      x86_64 release binary (the same code) on DynamoDB in a moto_server
#      (scripts/moto.sh) and on SQLite: 10 cold starts (exec → first response to an
#      API Gateway event) and BENCH_LAMBDA_N (2,000) warm invocations each of
#      GET /health and of session validation, back to back in one process;
#   8. bench/report.py turns target/bench/ (raw wrk output and facts) into the file.
#
# Knobs (environment): BENCH_DURATION=10 BENCH_RUNS=3 BENCH_THREADS=1
# BENCH_CONNECTIONS=64 BENCH_JOBS=10000 BENCH_COLD_RUNS=10 BENCH_LAMBDA_N=2000
# BENCH_OUT=BENCHMARKS.md;
# for testing the script itself: BENCH_SKIP_BUILD=1, BENCH_RUNWAY_BIN=PATH.
# Only loopback is ever loaded, and every load loop is bounded in time.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DURATION="${BENCH_DURATION:-10}"
RUNS="${BENCH_RUNS:-3}"
THREADS="${BENCH_THREADS:-1}"
CONNS="${BENCH_CONNECTIONS:-64}"
JOBS="${BENCH_JOBS:-10000}"
COLD_RUNS="${BENCH_COLD_RUNS:-10}"
LAMBDA_N="${BENCH_LAMBDA_N:-2000}"
OUT="${BENCH_OUT:-$ROOT/BENCHMARKS.md}"
RESULTS="$ROOT/target/bench"
RUNWAY="${BENCH_RUNWAY_BIN:-$ROOT/target/release/runway}"
CEILING="$ROOT/target/release/runway-bench-ceiling"

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
# Records one measured fact for report.py.
fact() { printf '%s=%s\n' "$1" "$2" >>"$RESULTS/facts.env"; }

# ---------------------------------------------------------------------------------
# 1. Tools
# ---------------------------------------------------------------------------------
missing=()
command -v wrk >/dev/null || missing+=(wrk)
[[ -x /usr/bin/time ]] || missing+=(time)
command -v jq >/dev/null || missing+=(jq)
command -v curl >/dev/null || missing+=(curl)
command -v python3 >/dev/null || missing+=(python3)
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    sudo=()
    [[ "$(id -u)" -eq 0 ]] || sudo=(sudo)
    "${sudo[@]}" apt-get update
    "${sudo[@]}" apt-get install -y "${missing[@]}"
fi

# ---------------------------------------------------------------------------------
# 2. Build
# ---------------------------------------------------------------------------------
if [[ -z "${BENCH_SKIP_BUILD:-}" ]]; then
    log "building release binaries"
    cargo build --release -p runway-server -p runway-bench-ceiling
fi

# The Lambda package, for its size. The deployed architecture is arm64; if the
# aarch64 standard library is missing, the x86_64 package stands in (and the report
# says so).
LAMBDA_ARCH=arm64
LAMBDA_ZIP="$ROOT/target/lambda/runway/bootstrap.zip"
LAMBDA_BUILD_S=""
if [[ -z "${BENCH_SKIP_BUILD:-}" ]]; then
    log "building the Lambda package (make lambda, arm64)"
    lambda_start="$(date +%s)"
    if ! make lambda >&2; then
        log "make lambda failed; falling back to make lambda-x86"
        LAMBDA_ARCH=x86_64
        LAMBDA_ZIP="$ROOT/target/lambda-x86/runway/bootstrap.zip"
        make lambda-x86 >&2 || die "make lambda-x86 failed too"
    fi
    LAMBDA_BUILD_S="$(($(date +%s) - lambda_start))"
elif [[ ! -f "$LAMBDA_ZIP" ]]; then
    LAMBDA_ARCH=x86_64
    LAMBDA_ZIP="$ROOT/target/lambda-x86/runway/bootstrap.zip"
fi

rm -rf "$RESULTS"
mkdir -p "$RESULTS/wrk" "$RESULTS/cold"
WORK="$(mktemp -d -t runway-bench.XXXXXX)"

declare -A SRV_PID=() TIME_PID=() ADDR=()

cleanup() {
    local name
    for name in "${!SRV_PID[@]}"; do
        kill -TERM "${SRV_PID[$name]}" 2>/dev/null || true
    done
    if [[ -n "${MOTO_STARTED:-}" ]]; then
        scripts/moto.sh stop || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

fact date "$(date -u '+%Y-%m-%d %H:%M UTC')"
fact nproc "$(nproc)"
fact cpu_model "$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
fact kernel "$(uname -sr)"
fact mem_total_kb "$(awk '/^MemTotal/ {print $2}' /proc/meminfo)"
fact loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg)"
fact rustc "$(rustc -V)"
fact wrk_version "$(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2)"
fact git_commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
fact git_dirty "$([[ -n "$(git status --porcelain 2>/dev/null)" ]] && echo yes || echo no)"
fact duration "$DURATION"
fact runs "$RUNS"
fact threads "$THREADS"
fact connections "$CONNS"
fact cold_runs "$COLD_RUNS"
fact runway_binary_bytes "$(stat -c %s "$RUNWAY")"
fact ceiling_binary_bytes "$(stat -c %s "$CEILING")"
fact release_profile "$(python3 -c 'import tomllib; p = tomllib.load(open("Cargo.toml", "rb"))["profile"]["release"]; print(", ".join(f"{k} = {v!r}" for k, v in p.items()))')"
[[ -f "$LAMBDA_ZIP" ]] || die "no Lambda package at $LAMBDA_ZIP"
fact lambda_arch "$LAMBDA_ARCH"
fact lambda_zip_path "${LAMBDA_ZIP#"$ROOT"/}"
fact lambda_zip_bytes "$(stat -c %s "$LAMBDA_ZIP")"
fact lambda_bootstrap_bytes "$(python3 -c 'import sys, zipfile; print(zipfile.ZipFile(sys.argv[1]).getinfo("bootstrap").file_size)' "$LAMBDA_ZIP")"
fact lambda_build_s "$LAMBDA_BUILD_S"
CLK_TCK="$(getconf CLK_TCK)"

ADMIN_PASSWORD="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"

# ---------------------------------------------------------------------------------
# 3. Servers
# ---------------------------------------------------------------------------------

# start_server NAME STDERR_FILE CMD...: runs CMD under GNU time, waits for its
# `listening on http://ADDR` line, and records its PID and address.
start_server() {
    local name="$1" stderr="$2"
    shift 2
    /usr/bin/time -v -o "$RESULTS/$name.time" "$@" >"$RESULTS/$name.stdout" 2>"$stderr" &
    TIME_PID[$name]=$!
    local addr="" i
    for ((i = 0; i < 300; i++)); do
        addr="$(grep -m1 -o 'listening on http://[^ ]*' "$RESULTS/$name.stdout" | sed 's#.*http://##' || true)"
        [[ -n "$addr" ]] && break
        kill -0 "${TIME_PID[$name]}" 2>/dev/null || die "$name exited at startup (see $RESULTS/$name.*)"
        sleep 0.1
    done
    [[ -n "$addr" ]] || die "$name did not print its address within 30 s"
    ADDR[$name]="$addr"
    # GNU time forks the server; `env` (used to set variables) execs it in place.
    SRV_PID[$name]="$(pgrep -P "${TIME_PID[$name]}")"
    log "$name listening on $addr (pid ${SRV_PID[$name]})"
}

# stop_server NAME: SIGTERM, then wait for GNU time to write the peak RSS.
stop_server() {
    local name="$1"
    kill -TERM "${SRV_PID[$name]}"
    wait "${TIME_PID[$name]}" || true
    unset "SRV_PID[$name]"
    fact "${name}_peak_rss_kb" "$(awk -F': ' '/Maximum resident set size/ {print $2}' "$RESULTS/$name.time")"
}

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/${SRV_PID[$1]}/status"; }
# CPU ticks (user + system) of one server process so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/${SRV_PID[$1]}/stat"; }
# Busy CPU ticks of the whole machine so far, all cores (everything but idle and iowait).
machine_busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }

# signin NAME: prints a session token for admin.
signin() {
    curl -sS --fail-with-body -X POST "http://${ADDR[$1]}/api/v1/auth/sessions" \
        -H 'Content-Type: application/json' \
        -d "{\"username\":\"admin\",\"password\":\"$ADMIN_PASSWORD\",\"device_name\":\"bench\"}" |
        jq -er .token
}

log "starting servers"
start_server runway "$RESULTS/runway.stderr" env RUNWAY_LOG=warn \
    RUNWAY_ADMIN_PASSWORD="$ADMIN_PASSWORD" RUNWAY_SHUTDOWN_GRACE_SECONDS=5 \
    "$RUNWAY" serve --listen 127.0.0.1:0 --data-dir "$WORK/data"
start_server runway_info /dev/null env RUNWAY_LOG=info \
    RUNWAY_ADMIN_PASSWORD="$ADMIN_PASSWORD" RUNWAY_SHUTDOWN_GRACE_SECONDS=5 \
    "$RUNWAY" serve --listen 127.0.0.1:0 --data-dir "$WORK/data-info"
start_server ceiling "$RESULTS/ceiling.stderr" "$CEILING" 127.0.0.1:0

# Idle RSS: after startup has settled, before any request.
sleep 2
fact runway_idle_rss_kb "$(rss_kb runway)"
fact runway_info_idle_rss_kb "$(rss_kb runway_info)"
fact ceiling_idle_rss_kb "$(rss_kb ceiling)"

TOKEN="$(signin runway)" || die "sign-in failed"
TOKEN_INFO="$(signin runway_info)" || die "sign-in failed (info instance)"
AUTH="Authorization: Bearer $TOKEN"
AUTH_INFO="Authorization: Bearer $TOKEN_INFO"

# ---------------------------------------------------------------------------------
# 4. Seed exactly $JOBS jobs
# ---------------------------------------------------------------------------------
log "seeding $JOBS jobs"
seed_start="$(date +%s%N)"
python3 bench/jobs.py seed "${ADDR[runway]}" "$TOKEN" "$JOBS" --deadline 600
fact seed_ms "$((($(date +%s%N) - seed_start) / 1000000))"
count="$(python3 bench/jobs.py count "${ADDR[runway]}" "$TOKEN")"
[[ "$count" -eq "$JOBS" ]] || die "expected $JOBS jobs, found $count"
fact jobs_listed_over "$count"

# Every endpoint answers as expected before it is loaded.
expect() { # expect STATUS URL [curl args...]
    local want="$1" url="$2" got
    shift 2
    got="$(curl -s -o "$WORK/body" -w '%{http_code}' "$@" "$url")"
    [[ "$got" == "$want" ]] || die "$url: expected $want, got $got: $(head -c 300 "$WORK/body")"
}
expect 200 "http://${ADDR[ceiling]}/api/v1/auth/session" -H "$AUTH"
expect 200 "http://${ADDR[runway]}/health"
expect 200 "http://${ADDR[runway]}/api/v1/auth/session" -H "$AUTH"
fact session_body_bytes "$(wc -c <"$WORK/body")"
fact ceiling_body_bytes "$(curl -s "http://${ADDR[ceiling]}/api/v1/auth/session" | wc -c)"
expect 200 "http://${ADDR[runway_info]}/api/v1/auth/session" -H "$AUTH_INFO"
expect 200 "http://${ADDR[runway]}/api/v1/jobs?limit=50" -H "$AUTH"
[[ "$(jq '.items | length' "$WORK/body")" -eq 50 ]] || die "job listing did not return 50 items"
fact jobs_list_body_bytes "$(wc -c <"$WORK/body")"
expect 201 "http://${ADDR[runway]}/api/v1/jobs" -H "$AUTH" -H 'Content-Type: application/json' \
    -d '{"name":"bench","script":"echo hi"}'

# ---------------------------------------------------------------------------------
# 5. Load
# ---------------------------------------------------------------------------------

# The ceiling is also loaded with the other wrk thread count (1 <-> 2), to show in the
# report what the choice of -t does on this machine.
ALT_THREADS=$((THREADS == 1 ? 2 : 1))
fact alt_threads "$ALT_THREADS"

# scenario NAME -> "SERVER|PATH|HEADER|WRK_THREADS|WRK_EXTRA"
declare -A SCENARIO=(
    [ceiling]="ceiling|/api/v1/auth/session|$AUTH|$THREADS|"
    [ceiling_alt]="ceiling|/api/v1/auth/session|$AUTH|$ALT_THREADS|"
    [health]="runway|/health||$THREADS|"
    [session]="runway|/api/v1/auth/session|$AUTH|$THREADS|"
    [session_info]="runway_info|/api/v1/auth/session|$AUTH_INFO|$THREADS|"
    [jobs_list]="runway|/api/v1/jobs?limit=50|$AUTH|$THREADS|"
    [jobs_create]="runway|/api/v1/jobs|$AUTH|$THREADS|-s bench/post_job.lua"
)

# load NAME RUN SECONDS: one wrk run; RUN=warmup is not recorded.
load() {
    local name="$1" run="$2" secs="$3" server path header threads extra
    IFS='|' read -r server path header threads extra <<<"${SCENARIO[$name]}"
    local args=(-t"$threads" -c"$CONNS" -d"${secs}s" --latency)
    [[ -n "$header" ]] && args+=(-H "$header")
    # shellcheck disable=SC2206 # extra is a word list by design
    [[ -n "$extra" ]] && args+=($extra)
    local base="$RESULTS/wrk/$name.$run" before after mbefore mafter
    before="$(cpu_ticks "$server")"
    mbefore="$(machine_busy_ticks)"
    /usr/bin/time -f '%e %U %S' -o "$base.wrkcpu" \
        wrk "${args[@]}" "http://${ADDR[$server]}$path" >"$base.txt"
    after="$(cpu_ticks "$server")"
    mafter="$(machine_busy_ticks)"
    printf '%s\n' "$((after - before))" >"$base.srvticks"
    printf '%s\n' "$((mafter - mbefore))" >"$base.systicks"
    if [[ "$run" != warmup ]]; then
        printf '    %-13s run %s: %s req/s\n' "$name" "$run" \
            "$(awk '/^Requests\/sec/ {print $2}' "$base.txt")" >&2
    fi
}
fact clk_tck "$CLK_TCK"

# Ceiling and session validation back to back, since their ratio is the target.
ROUND_ROBIN=(ceiling session session_info health jobs_list ceiling_alt)
log "warm-up (2 s each, not recorded)"
for name in "${ROUND_ROBIN[@]}"; do load "$name" warmup 2; done
for ((run = 1; run <= RUNS; run++)); do
    log "round $run of $RUNS"
    for name in "${ROUND_ROBIN[@]}"; do load "$name" "$run" "$DURATION"; done
done
log "POST /api/v1/jobs"
for ((run = 1; run <= RUNS; run++)); do load jobs_create "$run" "$DURATION"; done

sleep 2
fact runway_idle_after_load_rss_kb "$(rss_kb runway)"
fact loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"
log "stopping servers"
for name in runway runway_info ceiling; do stop_server "$name"; done

# ---------------------------------------------------------------------------------
# 6. Cold start
# ---------------------------------------------------------------------------------
log "cold start: runway, existing data directory"
RUNWAY_LOG=info RUNWAY_ADMIN_PASSWORD="$ADMIN_PASSWORD" python3 bench/coldstart.py \
    --runs "$COLD_RUNS" --data-dir existing -- \
    "$RUNWAY" serve --listen '127.0.0.1:{port}' --data-dir '{data_dir}' \
    >"$RESULTS/cold/runway_existing.json"
log "cold start: runway, new data directory (first start: schema + argon2id admin)"
RUNWAY_LOG=info RUNWAY_ADMIN_PASSWORD="$ADMIN_PASSWORD" python3 bench/coldstart.py \
    --runs "$COLD_RUNS" --data-dir fresh -- \
    "$RUNWAY" serve --listen '127.0.0.1:{port}' --data-dir '{data_dir}' \
    >"$RESULTS/cold/runway_fresh.json"
log "cold start: ceiling"
python3 bench/coldstart.py --runs "$COLD_RUNS" --data-dir none -- \
    "$CEILING" '127.0.0.1:{port}' >"$RESULTS/cold/ceiling.json"

# ---------------------------------------------------------------------------------
# 7. Lambda: cold start and warm invocations on a local Runtime API
# ---------------------------------------------------------------------------------
FIXTURES="$ROOT/crates/runway-server/tests/fixtures"
# The password in the sign-in fixture's (base64) body.
LAMBDA_ADMIN_PASSWORD="correct-horse-battery-staple"
mkdir -p "$RESULTS/lambda"
scripts/moto.sh install
moto_line="$(scripts/moto.sh start)" || die "cannot start moto_server"
MOTO_STARTED=1
MOTO_ENDPOINT="${moto_line#MOTO_ENDPOINT=}"
AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 \
    "$RUNWAY" dynamodb create-tables --prefix bench_ --endpoint "$MOTO_ENDPOINT" \
    --region us-east-1 >"$RESULTS/lambda/create-tables.txt" ||
    die "create-tables failed: $(cat "$RESULTS/lambda/create-tables.txt")"
DYNAMO=(--store dynamodb --endpoint "$MOTO_ENDPOINT" --prefix bench_)

log "Lambda cold start: DynamoDB store (moto), $COLD_RUNS runs"
python3 bench/lambda_runtime.py cold --runs "$COLD_RUNS" \
    --event "$FIXTURES/apigw-v2-health.json" "${DYNAMO[@]}" \
    --stderr "$RESULTS/lambda/function.log" -- "$RUNWAY" >"$RESULTS/lambda/cold_dynamodb.json"
log "Lambda warm invocations: DynamoDB store (moto), $LAMBDA_N each"
python3 bench/lambda_runtime.py warm --n "$LAMBDA_N" \
    --event "$FIXTURES/apigw-v2-health.json" --signin "$FIXTURES/apigw-v2-sign-in.json" \
    --admin-password "$LAMBDA_ADMIN_PASSWORD" "${DYNAMO[@]}" \
    --stderr "$RESULTS/lambda/function.log" -- "$RUNWAY" >"$RESULTS/lambda/warm_dynamodb.json"
scripts/moto.sh stop
MOTO_STARTED=""
log "Lambda warm invocations: SQLite store, $LAMBDA_N each"
python3 bench/lambda_runtime.py warm --n "$LAMBDA_N" \
    --event "$FIXTURES/apigw-v2-health.json" --signin "$FIXTURES/apigw-v2-sign-in.json" \
    --admin-password "$LAMBDA_ADMIN_PASSWORD" --store sqlite --data-dir "$WORK/lambda-data" \
    --stderr "$RESULTS/lambda/function.log" -- "$RUNWAY" >"$RESULTS/lambda/warm_sqlite.json"
log "Lambda cold start: SQLite store, existing data directory, $COLD_RUNS runs"
python3 bench/lambda_runtime.py cold --runs "$COLD_RUNS" \
    --event "$FIXTURES/apigw-v2-health.json" --store sqlite --data-dir "$WORK/lambda-data" \
    --stderr "$RESULTS/lambda/function.log" -- "$RUNWAY" >"$RESULTS/lambda/cold_sqlite.json"
fact loadavg_lambda_end "$(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------------------------
# 8. Report
# ---------------------------------------------------------------------------------
python3 bench/report.py "$RESULTS" >"$OUT"
log "wrote $OUT (raw output in $RESULTS)"
