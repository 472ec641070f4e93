#!/usr/bin/env bash
# bench/run.sh — what `make bench` runs. Measures the release build of Runway on this
# machine and writes BENCHMARKS.md at the repository root.
#
# What it does, in order:
#   1. installs what is missing (wrk, GNU time, jq, curl, python3, strace) with apt-get;
#   2. builds `runway`, `runway-agent`, `runway-bench-ceiling` (bench/ceiling) and
#      `runway-bench-dispatch` (bench/dispatch) in release mode;
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
#   7. agent protocol, with bench/dispatch (`runway-bench-dispatch`), each part on a
#      fresh `runway serve` (RUNWAY_LOG=warn): dispatch latency (submit → claimed by
#      an idle agent long-polling, BENCH_DISPATCH_JOBS (1,000) jobs one at a time),
#      then on the same server lifecycle throughput (BENCH_LIFECYCLE_AGENTS (32)
#      agents draining a backlog of BENCH_LIFECYCLE_JOBS (5,000): claim, start, one
#      log chunk, finish); the disk's sync-write latency (dd oflag=dsync) and, on a
#      server started under strace, the fsyncs one job costs and how long they take;
#      the real `runway-agent` idle BENCH_AGENT_IDLE (10) s, and its RSS; log
#      ingestion (BENCH_LOG_JOBS (16) jobs streaming BENCH_LOG_MIB (32) MiB each in
#      256 KiB chunks at once) with the server's RSS sampled every 100 ms.
#      BENCH_RUNS runs of each timed part;
#   8. Lambda: the arm64 package (`make lambda`, or `make lambda-x86` if the aarch64
#      standard library is missing) and its zip and uncompressed sizes; then, with
#      bench/lambda_runtime.py (a local Lambda Runtime API emulator) driving the
#      x86_64 release binary (the same code) on DynamoDB in a moto_server
#      (scripts/moto.sh) and on SQLite: 10 cold starts (exec → first response to an
#      API Gateway event) and BENCH_LAMBDA_N (2,000) warm invocations each of
#      GET /health and of session validation, back to back in one process;
#   9. bench/report.py turns target/bench/ (raw wrk output, the driver's JSON lines and
#      facts) into the file.
#
# Knobs (environment): BENCH_DURATION=10 BENCH_RUNS=3 BENCH_THREADS=1
# BENCH_CONNECTIONS=64 BENCH_JOBS=10000 BENCH_COLD_RUNS=10 BENCH_LAMBDA_N=2000
# BENCH_DISPATCH_JOBS=1000 BENCH_LIFECYCLE_JOBS=5000 BENCH_LIFECYCLE_AGENTS=32
# BENCH_LOG_JOBS=16 BENCH_LOG_MIB=32 BENCH_AGENT_IDLE=10 BENCH_OUT=BENCHMARKS.md;
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
DISPATCH_JOBS="${BENCH_DISPATCH_JOBS:-1000}"
LIFECYCLE_JOBS="${BENCH_LIFECYCLE_JOBS:-5000}"
LIFECYCLE_AGENTS="${BENCH_LIFECYCLE_AGENTS:-32}"
LOG_JOBS="${BENCH_LOG_JOBS:-16}"
LOG_MIB="${BENCH_LOG_MIB:-32}"
AGENT_IDLE="${BENCH_AGENT_IDLE:-10}"
OUT="${BENCH_OUT:-$ROOT/BENCHMARKS.md}"
RESULTS="$ROOT/target/bench"
RUNWAY="${BENCH_RUNWAY_BIN:-$ROOT/target/release/runway}"
CEILING="$ROOT/target/release/runway-bench-ceiling"
DISPATCH="$ROOT/target/release/runway-bench-dispatch"
AGENT="$ROOT/target/release/runway-agent"

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
command -v strace >/dev/null || missing+=(strace)
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
    cargo build --release -p runway-server -p runway-bench-ceiling -p runway-agent \
        -p runway-bench-dispatch
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
    if [[ -n "${AGENT_PID:-}" ]]; then kill -TERM "$AGENT_PID" 2>/dev/null || true; fi
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
fact agent_binary_bytes "$(stat -c %s "$AGENT")"
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
# 7. Agent protocol
# ---------------------------------------------------------------------------------
AP="$RESULTS/agent"
mkdir -p "$AP"
fact dispatch_jobs "$DISPATCH_JOBS"
fact lifecycle_jobs "$LIFECYCLE_JOBS"
fact lifecycle_agents "$LIFECYCLE_AGENTS"
fact log_jobs "$LOG_JOBS"
fact log_mib "$LOG_MIB"
fact agent_idle_s "$AGENT_IDLE"

declare -A SESSION=()
# start_fresh NAME [PREFIX...]: a fresh `runway serve` (PREFIX, e.g. strace, runs it),
# signed in once as admin. Every sign-in hashes with argon2id, whose 19 MiB of working
# memory the allocator may keep, so all the driver runs against one server share this
# session, and the server's RSS is recorded before and after it.
start_fresh() {
    local name="$1"
    shift
    start_server "$name" "$RESULTS/$name.stderr" env RUNWAY_LOG=warn \
        RUNWAY_ADMIN_PASSWORD="$ADMIN_PASSWORD" RUNWAY_SHUTDOWN_GRACE_SECONDS=5 \
        "$@" "$RUNWAY" serve --listen 127.0.0.1:0 --data-dir "$WORK/data-$name"
    # Under a PREFIX the server is the prefix's child (GNU time -> strace -> runway).
    if (($#)); then SRV_PID[$name]="$(pgrep -P "${SRV_PID[$name]}")"; fi
    sleep 1
    fact "${name}_idle_rss_kb" "$(rss_kb "$name")"
    SESSION[$name]="$(signin "$name")" || die "sign-in failed ($name)"
    sleep 0.5
    fact "${name}_signed_in_rss_kb" "$(rss_kb "$name")"
}
# drive SERVER ARGS...: one runway-bench-dispatch run against SERVER, with its admin
# session; the run's JSON line goes to stdout.
drive() {
    local server="$1"
    shift
    RUNWAY_BENCH_ADMIN_TOKEN="${SESSION[$server]}" "$DISPATCH" --server "http://${ADDR[$server]}" \
        --server-pid "${SRV_PID[$server]}" --deadline 600 "$@"
}
# summary FILE JQ: prints one line of a run's figures to the console.
summary() { tail -n1 "$1" | jq -r "$2" >&2; }

# The disk's synchronous-write latency, for the lifecycle's "what limits it": 4 KiB
# writes with O_DSYNC, each one a flush to the device, on the filesystem that holds
# the data directories. "overwrite" rewrites a preallocated file (like SQLite's WAL
# once it is recycled after a checkpoint), "append" grows a new one (like a WAL that
# is still growing: each write also commits the file's new size to the journal).
log "fsync latency: dd oflag=dsync, 1000 writes of 4 KiB, $RUNS runs each"
for ((run = 1; run <= RUNS; run++)); do
    dd if=/dev/zero of="$WORK/dsync" bs=4k count=1000 status=none
    LC_ALL=C dd if=/dev/zero of="$WORK/dsync" bs=4k count=1000 oflag=dsync conv=notrunc \
        2>"$AP/dd_overwrite.$run.txt"
    rm -f "$WORK/dsync"
    LC_ALL=C dd if=/dev/zero of="$WORK/dsync" bs=4k count=1000 oflag=dsync \
        2>"$AP/dd_append.$run.txt"
    rm -f "$WORK/dsync"
done

log "starting a fresh runway for the agent protocol"
start_fresh proto

log "dispatch latency: $DISPATCH_JOBS jobs one at a time, $RUNS runs"
for ((run = 1; run <= RUNS; run++)); do
    drive proto --run "$run" dispatch --jobs "$DISPATCH_JOBS" >>"$AP/dispatch.jsonl"
    summary "$AP/dispatch.jsonl" '"    run \(.run): p50 \(.submit_to_claim.p50_ms * 100 | round / 100) ms, p99 \(.submit_to_claim.p99_ms * 100 | round / 100) ms, \(.submit_to_claim.n) samples, \(.error_count) errors"'
done

log "lifecycle throughput: $LIFECYCLE_AGENTS agents, backlog of $LIFECYCLE_JOBS, $RUNS runs"
for ((run = 1; run <= RUNS; run++)); do
    drive proto --run "$run" submit --jobs "$LIFECYCLE_JOBS" >>"$AP/submit.jsonl"
    drive proto --run "$run" lifecycle --agents "$LIFECYCLE_AGENTS" --expect "$LIFECYCLE_JOBS" \
        >>"$AP/lifecycle.jsonl"
    summary "$AP/lifecycle.jsonl" '"    run \(.run): \(.jobs_per_s | floor) jobs/s, \(.jobs) jobs, \(.error_count) errors"'
done

# The same lifecycle once more on a server of its own started under strace, which
# records every fsync-family call of the server with its wall time (-T) and start
# (-ttt). With seccomp-bpf only those calls stop the process, so the run is nearly a
# normal one. Only the calls made while the lifecycle run lasted count: that window
# holds its setup (a registration token, the agents' registrations and first
# heartbeats) too, but not the submission of its backlog.
STRACE_JOBS=2000
STRACE="$(command -v strace)"
strace_args=(-f -ttt -T -e trace=fsync,fdatasync,sync_file_range,msync -o "$AP/strace.txt")
if "$STRACE" --seccomp-bpf -f -e trace=fsync -o /dev/null true 2>/dev/null; then
    strace_args+=(--seccomp-bpf)
    fact strace_seccomp yes
else
    fact strace_seccomp no
fi
log "fsyncs per job: one lifecycle run of $STRACE_JOBS jobs on a server under strace"
stop_server proto
start_fresh traced "$STRACE" "${strace_args[@]}"
drive traced --run 0 submit --jobs "$STRACE_JOBS" >"$AP/strace_submit.json"
strace_from="$(date +%s.%N)"
drive traced --run 0 lifecycle --agents "$LIFECYCLE_AGENTS" --expect "$STRACE_JOBS" \
    >"$AP/strace_lifecycle.json"
fact strace_window "$strace_from $(date +%s.%N)"
fact strace_jobs "$STRACE_JOBS"
stop_server traced

# The real agent, idle, on a fresh server: it registers, heartbeats and long-polls an
# empty queue.
start_fresh idle
ADMIN_AUTH="Authorization: Bearer ${SESSION[idle]}"
REG_TOKEN="$(curl -sS --fail-with-body -X POST "http://${ADDR[idle]}/api/v1/registration-tokens" \
    -H "$ADMIN_AUTH" -H 'Content-Type: application/json' -d '{}' | jq -er .token)"
log "runway-agent idle RSS: $AGENT_IDLE s idle, then 5 samples 1 s apart"
mkdir -p "$WORK/agent"
env RUNWAY_AGENT_SERVER_URL="http://${ADDR[idle]}" RUNWAY_AGENT_REGISTRATION_TOKEN="$REG_TOKEN" \
    RUNWAY_AGENT_NAME=bench-idle-agent RUNWAY_AGENT_WORK_DIR="$WORK/agent/work" \
    RUNWAY_AGENT_STATE_DIR="$WORK/agent/state" \
    "$AGENT" >"$AP/runway-agent.stdout" 2>"$AP/runway-agent.stderr" &
AGENT_PID=$!
sleep "$AGENT_IDLE"
kill -0 "$AGENT_PID" 2>/dev/null || die "runway-agent exited (see $AP/runway-agent.stderr)"
samples=()
for i in 1 2 3 4 5; do
    samples+=("$(awk '/^VmRSS/ {print $2}' "/proc/$AGENT_PID/status")")
    if ((i < 5)); then sleep 1; fi
done
fact agent_idle_rss_samples_kb "${samples[*]}"
fact agent_idle_hwm_kb "$(awk '/^VmHWM/ {print $2}' "/proc/$AGENT_PID/status")"
fact agent_idle_threads "$(awk '/^Threads/ {print $2}' "/proc/$AGENT_PID/status")"
fact agent_idle_cpu_ticks "$(awk '{print $14 + $15}' "/proc/$AGENT_PID/stat")"
fact agent_idle_status "$(curl -sS "http://${ADDR[idle]}/api/v1/agents?limit=100" -H "$ADMIN_AUTH" |
    jq -r '[.items[] | select(.name == "bench-idle-agent") | .status] | first // "missing"')"
kill -TERM "$AGENT_PID"
wait "$AGENT_PID" || true
AGENT_PID=""
# Ten more sign-ins, one after the other: how much of each argon2id hash stays.
signin_rss=()
for i in 1 2 3 4 5 6 7 8 9 10; do
    signin idle >/dev/null || die "sign-in $i failed (idle)"
    signin_rss+=("$(rss_kb idle)")
done
fact idle_more_signins_rss_kb "${signin_rss[*]}"
stop_server idle

log "starting a fresh runway for log ingestion"
start_fresh logs
log "log ingestion: $LOG_JOBS jobs × $LOG_MIB MiB in 256 KiB chunks, $RUNS runs"
for ((run = 1; run <= RUNS; run++)); do
    drive logs --run "$run" logs --jobs "$LOG_JOBS" --mib "$LOG_MIB" >>"$AP/logs.jsonl"
    summary "$AP/logs.jsonl" '"    run \(.run): \(.mb_per_s | floor) MB/s, peak RSS \(.rss_peak_kb) kB, \(.error_count) errors"'
done
fact logs_data_dir_bytes "$(du -sb "$WORK/data-logs" | cut -f1)"
stop_server logs
# Anything the agent-protocol servers logged at WARN or above.
fact agent_servers_stderr_lines "$(cat "$RESULTS"/{proto,traced,idle,logs}.stderr | wc -l)"
fact loadavg_agent_end "$(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------------------------
# 8. Lambda: cold start and warm invocations on a local Runtime API
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
# 9. Report
# ---------------------------------------------------------------------------------
python3 bench/report.py "$RESULTS" >"$OUT"
log "wrote $OUT (raw output in $RESULTS)"
