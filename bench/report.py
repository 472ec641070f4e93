#!/usr/bin/env python3
"""Writes BENCHMARKS.md (to stdout) from what `bench/run.sh` measured.

    report.py RESULTS_DIR > BENCHMARKS.md

RESULTS_DIR (target/bench) holds `facts.env` (KEY=VALUE lines), `wrk/NAME.RUN.txt`
(raw wrk output) with `.wrkcpu` (GNU time: elapsed, user, sys of wrk) and
`.srvticks` (the server's CPU ticks during the run), and `cold/*.json` from
coldstart.py, `lambda/*.json` from lambda_runtime.py, and `agent/` (the JSON lines
of runway-bench-dispatch, dd and strace output). Every number in the file comes from
there; nothing is typed in, except the FastAPI reference figures and the other CI
systems' poll intervals, which are quoted from the issue and labelled so.

Each load test runs several times; the tables quote the median of each metric across
runs (req/s, p50 and p99 each on their own) and list every run's req/s, because the
machine is shared and noisy.
"""

import json
import re
import statistics
import sys
from pathlib import Path

# Targets from the issue.
TARGET_CEILING_RATIO = 0.60
TARGET_SESSION_P99_MS = 5.0
TARGET_COLD_START_MS = 15.0
TARGET_IDLE_RSS_MB = 20.0
TARGET_DISPATCH_P50_MS = 20.0
TARGET_DISPATCH_P99_MS = 100.0
TARGET_LIFECYCLE_JOBS_PER_S = 1000.0
TARGET_AGENT_IDLE_RSS_MB = 10.0

# Other CI systems' agents, as quoted in the issue (not measured here): how often they
# poll for work, i.e. the dispatch delay a long poll removes.
GITLAB_RUNNER_POLL_S = "3 s"
BUILDKITE_POLL_S = "10–20 s"
GITHUB_RUNNER_MB = 100

# The original FastAPI stack, as quoted in the issue (not measured here).
FASTAPI_2W_RPS = 8000
FASTAPI_2W_P99_MS = 16
FASTAPI_2W_MB = 143
FASTAPI_1W_RPS = 4800

SCENARIOS = [
    ("ceiling", "bare axum ceiling: `GET /api/v1/auth/session`, constant body"),
    ("health", "`GET /health`"),
    ("session", "session validation: `GET /api/v1/auth/session` (Bearer)"),
    ("session_info", "session validation with `RUNWAY_LOG=info` (logs to /dev/null)"),
    ("jobs_list", "`GET /api/v1/jobs?limit=50` over {jobs} jobs"),
    ("jobs_create", "`POST /api/v1/jobs`"),
    ("ceiling_alt", "bare axum ceiling again, with wrk `-t{alt}` (for comparison only)"),
]

UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def latency_ms(text: str, pct: str) -> float | None:
    m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
    return float(m.group(1)) * UNIT_MS[m.group(2)] if m else None


def parse_run(base: Path, clk_tck: int) -> dict:
    """Reads `BASE.txt`, `BASE.wrkcpu` and `BASE.srvticks` (BASE is `wrk/NAME.RUN`)."""

    def sibling(ext: str) -> Path:
        return base.parent / (base.name + ext)

    text = sibling(".txt").read_text()
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    reqs = re.search(r"^\s*(\d+) requests in", text, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    elapsed, user, sys_ = (float(x) for x in sibling(".wrkcpu").read_text().split()[-3:])
    srv_cpu_s = int(sibling(".srvticks").read_text().strip()) / clk_tck
    sys_path = sibling(".systicks")
    sys_cpu_s = int(sys_path.read_text().strip()) / clk_tck if sys_path.exists() else 0.0
    requests = int(reqs.group(1)) if reqs else 0
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "p50": latency_ms(text, "50"),
        "p99": latency_ms(text, "99"),
        "requests": requests,
        "errors": (int(non2xx.group(1)) if non2xx else 0)
        + (sum(int(x) for x in sock.groups()) if sock else 0),
        "wrk_cores": (user + sys_) / elapsed if elapsed else 0.0,
        "srv_cores": srv_cpu_s / elapsed if elapsed else 0.0,
        "machine_cores": sys_cpu_s / elapsed if elapsed else 0.0,
        "other_cores": max(0.0, (sys_cpu_s - srv_cpu_s - user - sys_) / elapsed) if elapsed else 0.0,
        "srv_us_per_req": srv_cpu_s / requests * 1e6 if requests else 0.0,
    }


def med(runs: list[dict], key: str) -> float:
    vals = [r[key] for r in runs if r[key] is not None]
    return statistics.median(vals) if vals else float("nan")


def fmt_ms(v: float) -> str:
    return f"{v:.2f} ms" if v < 10 else f"{v:.1f} ms"


def fmt_int(v: float) -> str:
    return f"{v:,.0f}"


def mb(kb: str | int) -> float:
    """/proc and GNU time report KiB; the tables use MB = 10^6 bytes, like the targets."""
    return int(kb) * 1024 / 1e6


def verdict(ok: bool) -> str:
    return "**reached**" if ok else "**not reached**"


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def dd_ms_per_write(path: Path) -> float:
    """dd's `… copied, S s, …` line over 1000 writes: milliseconds per write."""
    m = re.search(r"copied, ([\d.]+) s", path.read_text())
    return float(m.group(1)) if m else float("nan")


STRACE_LINE = re.compile(
    r"^(?:\d+\s+)?(?P<at>\d+\.\d+)\s+(?:<\.\.\.\s+)?"
    r"(?P<call>fsync|fdatasync|sync_file_range|msync)\b.*<(?P<took>[\d.]+)>\s*$"
)


def strace_syncs(path: Path, window: str) -> dict:
    """Completed fsync-family calls in `strace -f -ttt -T` output that started (or,
    when another thread's call interleaved, resumed) inside WINDOW ("FROM TO", epoch
    seconds): calls by name and their wall times in ms."""
    lo, hi = (float(x) for x in window.split())
    calls: dict[str, int] = {}
    took: list[float] = []
    for line in path.read_text().splitlines():
        m = STRACE_LINE.match(line)
        if m and lo <= float(m["at"]) <= hi:
            calls[m["call"]] = calls.get(m["call"], 0) + 1
            took.append(float(m["took"]) * 1000)
    took.sort()
    return {"calls": calls, "ms": took, "window_s": hi - lo}


def nearest_rank(xs: list[float], p: float) -> float:
    return xs[max(1, -(-len(xs) * p // 100)) - 1] if xs else float("nan")


def cores(cpu: dict, key: str, clk: int) -> float:
    t = cpu.get(key)
    return t / clk / cpu["wall_s"] if t is not None and cpu["wall_s"] else float("nan")


def agent_figures(f: dict[str, str], res: Path, clk: int) -> dict:
    """Everything the agent-protocol section and the targets table need."""
    ap = res / "agent"
    a: dict = {}
    a["dispatch"] = jsonl(ap / "dispatch.jsonl")
    a["lifecycle"] = jsonl(ap / "lifecycle.jsonl")
    a["submit"] = jsonl(ap / "submit.jsonl")
    a["logs"] = jsonl(ap / "logs.jsonl")
    d = [r["submit_to_claim"] for r in a["dispatch"]]
    a["dispatch_p50"] = statistics.median(x["p50_ms"] for x in d)
    a["dispatch_p99"] = statistics.median(x["p99_ms"] for x in d)
    a["lifecycle_jps"] = statistics.median(r["jobs_per_s"] for r in a["lifecycle"])
    a["logs_mbps"] = statistics.median(r["mb_per_s"] for r in a["logs"])
    rss = [int(x) for x in f["agent_idle_rss_samples_kb"].split()]
    a["agent_rss_samples_kb"] = rss
    a["agent_rss_mb"] = mb(statistics.median(rss))
    a["dd_overwrite_ms"] = statistics.median(dd_ms_per_write(p) for p in sorted(ap.glob("dd_overwrite.*.txt")))
    a["dd_append_ms"] = statistics.median(dd_ms_per_write(p) for p in sorted(ap.glob("dd_append.*.txt")))
    st = strace_syncs(ap / "strace.txt", f["strace_window"])
    sl = json.loads((ap / "strace_lifecycle.json").read_text())
    st["run"] = sl
    st["n"] = len(st["ms"])
    st["per_job"] = st["n"] / sl["jobs"] if sl["jobs"] else float("nan")
    st["p50"] = nearest_rank(st["ms"], 50)
    st["p99"] = nearest_rank(st["ms"], 99)
    st["mean"] = statistics.mean(st["ms"]) if st["ms"] else float("nan")
    st["share"] = sum(st["ms"]) / 1000 / st["window_s"]
    a["strace"] = st
    a["clk"] = clk
    return a


def agent_section(w, f: dict[str, str], a: dict, res: Path) -> None:
    clk = a["clk"]
    runs = len(a["dispatch"])
    w("## Agent protocol\n")
    w(
        "Measured with `bench/dispatch` (`runway-bench-dispatch`), a small Rust driver "
        "(tokio current-thread runtime, reqwest over HTTP/1.1 keep-alive) that plays the "
        "agents and the user against the release `runway serve` through the real agent "
        "protocol and HTTP API, on 127.0.0.1. No public load generator fits: each call "
        "needs the token the previous one returned, and a dispatch sample pairs a "
        "submit with a long poll that must already be waiting. The disk's fsync latency "
        "is measured with `dd oflag=dsync` and the server's fsyncs with `strace -T`. "
        "The benchmarks ran against **fresh servers** (new data directory, "
        "`RUNWAY_LOG=warn`, SQLite with `synchronous=FULL`, started after the servers "
        "above had stopped), in this order: one for dispatch and then lifecycle, one "
        "under strace, one for the idle agent, and one for log ingestion alone, so its "
        "RSS is its own. "
        "`run.sh` signs in as admin once per server; each driver run uses that session, "
        "makes a registration token and registers its own agents (each sends one "
        f"heartbeat, as `runway-agent` does on start). {runs} "
        "runs of each; the headline figure is the **median across runs** of each "
        "metric. The driver shares the 2 cores with the server; its CPU is in the "
        "tables.\n"
    )

    # Dispatch
    w("### Dispatch latency\n")
    dr = a["dispatch"]
    w(
        f"One agent of capacity 1 long-polls `POST /agent/v1/jobs/claim?wait=20`. "
        f"{dr[0]['settle_ms']} ms after that claim is sent (time for it to reach the "
        "server and park), the driver submits one job with `POST /api/v1/jobs`; the "
        "sample runs from just before the submit is sent to the moment the claim's "
        "200, carrying that job, has been read. Then `start` and `finish` (empty log) "
        "free the agent and the next claim goes out. "
        f"{int(f['dispatch_jobs']):,} jobs one at a time per run; a sample counts only "
        "if the claimed job is the one just submitted. p50/p99 are nearest-rank over "
        "each run's samples. *Submit answered* is the submitter's own `201`, measured "
        "from the same instant.\n"
    )
    w("| run | samples | p50 | p90 | p99 | max | mean | submit answered, p50 | errors |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in dr:
        x, sub = r["submit_to_claim"], r["submit_response"]
        w(
            f"| {r['run']} | {x['n']:,} | {fmt_ms(x['p50_ms'])} | {fmt_ms(x['p90_ms'])} | "
            f"{fmt_ms(x['p99_ms'])} | {fmt_ms(x['max_ms'])} | {fmt_ms(x['mean_ms'])} | "
            f"{fmt_ms(sub['p50_ms'])} | {r['error_count']} |"
        )
    med_sub = statistics.median(r["submit_response"]["p50_ms"] for r in dr)
    w(
        f"| **median** | | **{fmt_ms(a['dispatch_p50'])}** | "
        f"{fmt_ms(statistics.median(r['submit_to_claim']['p90_ms'] for r in dr))} | "
        f"**{fmt_ms(a['dispatch_p99'])}** | "
        f"{fmt_ms(statistics.median(r['submit_to_claim']['max_ms'] for r in dr))} | "
        f"{fmt_ms(statistics.median(r['submit_to_claim']['mean_ms'] for r in dr))} | "
        f"{fmt_ms(med_sub)} | |"
    )
    w("")
    st = a["strace"]
    w(
        f"**What limits it.** A sample holds two write transactions, each committed "
        f"with an fsync: the submit's (its `201` came back at p50 {fmt_ms(med_sub)}) "
        "and the claim's, which the submit's commit wakes through an in-process "
        "notification (no polling); then the claim's JSON is written and read. The "
        f"server's fsyncs took p50 {fmt_ms(st['p50'])} in the traced lifecycle run "
        f"below, so two of them are about {fmt_ms(2 * st['p50'])} of the "
        f"{fmt_ms(a['dispatch_p50'])} median. The tail is the shared machine and "
        "disk: a slow flush or a descheduled thread on either side.\n"
    )
    w(
        f"For scale (quoted from the issue, not measured): GitLab Runner polls every "
        f"{GITLAB_RUNNER_POLL_S} and Buildkite's agent every {BUILDKITE_POLL_S}, so an "
        "idle agent there picks a job up on average half an interval after it is "
        "submitted.\n"
    )

    # Lifecycle
    w("### Lifecycle throughput (SQLite)\n")
    lr = a["lifecycle"]
    sub = a["submit"]
    chunk = lr[0]["chunk_bytes"]
    w(
        f"{int(f['lifecycle_agents'])} registered agents of capacity 1, one driver loop "
        f"each, drain a backlog of {int(f['lifecycle_jobs']):,} jobs submitted just "
        "before (untimed; "
        f"{statistics.median(s['submitted'] / s['cpu']['wall_s'] for s in sub):,.0f} "
        f"jobs/s over {sub[0]['connections']} connections): `claim?wait=0` → `start` → "
        f"one log chunk of {chunk:,} bytes (`PUT …/logs?seq=0&offset=0`, "
        "`application/octet-stream`) → `finish` with its length and CRC-32, until a "
        "claim comes back 204. Jobs/s = jobs finished ÷ time from the first claim to "
        "the last finish. Latencies are per call, over every job of the run "
        "(p50 / p99). CPU is cores busy over the run, out of "
        f"{f['nproc']}.\n"
    )
    w(
        "| run | jobs | jobs/s | claim | start | log chunk | finish | whole job | "
        "server CPU | driver CPU | machine | errors |"
    )
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")

    def pp(x: dict) -> str:
        return f"{fmt_ms(x['p50_ms'])} / {fmt_ms(x['p99_ms'])}"

    for r in lr:
        c = r["cpu"]
        w(
            f"| {r['run']} | {r['jobs']:,} | **{fmt_int(r['jobs_per_s'])}** | {pp(r['claim'])} | "
            f"{pp(r['start'])} | {pp(r['logs'])} | {pp(r['finish'])} | {pp(r['job'])} | "
            f"{cores(c, 'server_ticks', clk):.2f} | {cores(c, 'driver_ticks', clk):.2f} | "
            f"{cores(c, 'machine_ticks', clk):.2f} | {r['error_count']} |"
        )
    w(f"| **median** | | **{fmt_int(a['lifecycle_jps'])}** | | | | | | | | | |")
    w("")

    # What limits the lifecycle
    jps = a["lifecycle_jps"]
    ms_per_job = 1000 / jps
    srv_cpu_ms = statistics.median(
        r["cpu"]["server_ticks"] / clk / r["jobs"] * 1000 for r in lr if r["jobs"]
    )
    drv_cpu_ms = statistics.median(
        r["cpu"]["driver_ticks"] / clk / r["jobs"] * 1000 for r in lr if r["jobs"]
    )
    machine = statistics.median(cores(r["cpu"], "machine_ticks", clk) for r in lr)
    sys_share = statistics.median(
        r["cpu"]["server_sys_ticks"] / r["cpu"]["server_ticks"] for r in lr if r["cpu"]["server_ticks"]
    )
    ow, ap_ = a["dd_overwrite_ms"], a["dd_append_ms"]
    st = a["strace"]
    fpj = st["per_job"]
    flush_ms = fpj * st["mean"]
    budget_ms = 1000 / TARGET_LIFECYCLE_JOBS_PER_S
    n_agents = int(f["lifecycle_agents"])
    w("**What limits it.**\n")
    w(
        "- **One writer, one fsync per commit.** Each of the four calls is a SQLite "
        "write transaction through the store's single writer connection, committed "
        "with `synchronous=FULL`, i.e. the WAL is fsynced before the call is answered. "
        "Commits are serialised and nothing batches them. Audit events (claimed, "
        "started, finished) go through the same writer with `synchronous=NORMAL`, "
        "without an fsync."
    )
    calls = ", ".join(f"{n:,} `{k}`" for k, n in sorted(st["calls"].items())) or "none"
    seccomp = (
        "with seccomp-bpf, so only those calls stop the process"
        if f.get("strace_seccomp") == "yes"
        else "without seccomp-bpf, so every system call stops the process and the run is slower"
    )
    w(
        f"- **The fsyncs, counted and timed.** One more lifecycle run of "
        f"{st['run']['jobs']:,} jobs, on a separate fresh server started under `strace "
        f"-f -ttt -T -e trace=fsync,fdatasync,sync_file_range,msync` ({seccomp}), "
        f"reached {fmt_int(st['run']['jobs_per_s'])} jobs/s and made {calls} while it "
        f"lasted: **{fpj:.2f} per job** (the window also holds its setup, a "
        f"registration token and {n_agents} registrations and first heartbeats, "
        f"about {(1 + 2 * n_agents) / st['run']['jobs']:.2f} per job). Each took "
        f"**p50 {fmt_ms(st['p50'])}, p99 {fmt_ms(st['p99'])}, mean {fmt_ms(st['mean'])}** "
        "(wall time inside the call); together they filled "
        f"**{st['share']:.0%} of that run's wall time**, which, with one writer, is "
        "the share of time the writer sat waiting for the disk."
    )
    w(
        f"- **The disk.** `dd oflag=dsync` of 4 KiB blocks on the filesystem of the "
        f"data directories took {ow:.2f} ms per write overwriting a preallocated file "
        f"and {ap_:.2f} ms appending to a new one (median of "
        f"{len(list((res / 'agent').glob('dd_overwrite.*.txt')))} runs of 1,000, "
        "just before the agent-protocol servers started): the same order as the "
        "server's own fsyncs above. The disk is shared with whatever else the machine "
        "is doing, so both figures move between runs."
    )
    w(
        f"- **What that adds up to.** {fpj:.2f} fsyncs × {fmt_ms(st['mean'])} = "
        f"**{flush_ms:.2f} ms of flushing per job**, so the flushes alone allow at "
        f"most **{1000 / flush_ms:,.0f} jobs/s**; the timed runs took "
        f"{ms_per_job:.2f} ms per job ({fmt_int(jps)} jobs/s), so flushing is about "
        f"{flush_ms / ms_per_job:.0%} of the time one job holds the writer. The target of "
        f"{TARGET_LIFECYCLE_JOBS_PER_S:,.0f} jobs/s leaves {budget_ms:.2f} ms per job. "
        + (
            "The flushes alone take more than that, so **with one fsync per commit the "
            "target cannot be reached on this disk**, whatever the CPU does. Group "
            "commit (one fsync for every commit that arrived while the previous one "
            f"was flushing; {n_agents} agents give it plenty to batch) is the known lever."
            if flush_ms > budget_ms
            else "The flushes alone would fit in that; the rest of the gap is the "
            "writer's serialised work between flushes and the CPU (below). Group "
            "commit (one fsync for every commit that arrived while the previous one "
            "was flushing) would still take most flushes off the critical path."
        )
    )
    w(
        f"- **CPU.** The server used {srv_cpu_ms:.2f} ms of CPU per job "
        f"({sys_share:.0%} of it in the kernel: socket I/O, thread wake-ups around "
        "the blocking writer thread, the WAL writes and fsyncs) for its 4 requests "
        "(token hash and lookup, a store read or two, one write transaction each, an "
        "audit append for claim, start and finish, JSON both ways), and the driver "
        f"{drv_cpu_ms:.2f} ms; the whole machine was {machine:.2f} of {f['nproc']} "
        "cores busy (server, driver and anything else running). "
        + (
            "The cores were close to saturated, so CPU limited these runs as well. "
            if machine >= 0.85 * int(f["nproc"])
            else "The cores were not saturated: the agents spent most of each call "
            "queued behind the one writer, i.e. behind commits and their fsyncs. "
        )
        + f"Even with free commits, {f['nproc']} cores ÷ "
        f"{srv_cpu_ms + drv_cpu_ms:.2f} ms of server and driver CPU per job is at most "
        f"**{int(f['nproc']) * 1000 / (srv_cpu_ms + drv_cpu_ms):,.0f} jobs/s** on this "
        "machine, so the target also needs the CPU per job to come down (or more cores)."
    )
    w("")

    # Logs
    w("### Log ingestion\n")
    gr = a["logs"]
    g0 = gr[0]
    w(
        f"{g0['jobs']} agents each claim and start one job; then all {g0['jobs']} stream "
        f"at once, {g0['bytes_per_job'] / 1048576:.0f} MiB each in "
        f"{g0['chunk_bytes'] // 1024} KiB chunks (`PUT …/logs?seq=N&offset=B`), one "
        "chunk in flight per job as `runway-agent` sends them, and finish with the byte "
        "count and CRC-32 (which the server checks). MB/s (10^6 bytes) = all bytes ÷ "
        "time from the first chunk to the last finish. The server's VmRSS is sampled "
        "every 100 ms from /proc/PID/status: *peak* is the largest sample, *steady* "
        "the median of those in the second half of the stream. The log bytes live in "
        "the SQLite database (`log_chunks`), one write transaction with an fsync per "
        "chunk.\n"
    )
    w(
        "| run | MB/s | chunk PUT p50 / p99 | RSS before | RSS peak | RSS steady | "
        "RSS after | server CPU | driver CPU | errors |"
    )
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")

    def rss(kb) -> str:
        return f"{mb(kb):.1f} MB" if kb is not None else "n/a"

    for r in gr:
        c = r["cpu"]
        w(
            f"| {r['run']} | **{r['mb_per_s']:,.0f}** | {pp(r['put'])} | "
            f"{rss(r['rss_before_kb'])} | {rss(r['rss_peak_kb'])} | "
            f"{rss(r['rss_steady_kb'])} | {rss(r['rss_after_kb'])} | "
            f"{cores(c, 'server_ticks', clk):.2f} | {cores(c, 'driver_ticks', clk):.2f} | "
            f"{r['error_count']} |"
        )
    peak = statistics.median(r["rss_peak_kb"] for r in gr)
    steady = statistics.median(r["rss_steady_kb"] for r in gr)
    w(
        f"| **median** | **{a['logs_mbps']:,.0f}** | | | **{rss(peak)}** | "
        f"**{rss(steady)}** | | | | |"
    )
    w("")
    chunk_ms = statistics.median(r["put"]["p50_ms"] for r in gr)
    grew = (
        f"; it grew by {mb((gr[-1]['rss_after_kb'] - gr[0]['rss_after_kb']) / (len(gr) - 1)):.1f} "
        f"MB per run of {g0['jobs'] * g0['bytes_per_job'] / 1e6:,.0f} MB of log and was not "
        "given back in between"
        if len(gr) > 1
        else ""
    )
    w(
        f"The runs share one server, so each run's *RSS before* is the previous run's "
        f"*after*{grew}. The server started at {rss(int(f['logs_idle_rss_kb']))} and was "
        f"at {rss(int(f['logs_signed_in_rss_kb']))} after the one admin sign-in the runs "
        "share (see *Sign-in and RSS* below); GNU time's peak "
        f"RSS over its whole life was {rss(int(f['logs_peak_rss_kb']))}. Its data "
        f"directory ended at {int(f['logs_data_dir_bytes']) / 1e6:,.0f} MB for "
        f"{sum(r['bytes'] for r in gr) / 1e6:,.0f} MB of log. With one chunk in "
        f"flight per job, {g0['jobs']} jobs and a median chunk round trip of "
        f"{fmt_ms(chunk_ms)}, the rate is about {g0['jobs']} × "
        f"{g0['chunk_bytes'] / 1e6:.3f} MB ÷ {fmt_ms(chunk_ms)} = "
        f"{g0['jobs'] * g0['chunk_bytes'] / 1e6 / (chunk_ms / 1000):,.0f} MB/s: each "
        "chunk waits its turn at the single writer (copy into SQLite pages, WAL "
        "write, fsync).\n"
    )

    # Agent idle
    w("### `runway-agent` idle\n")
    samples = a["agent_rss_samples_kb"]
    w(
        "The real `target/release/runway-agent` (default settings: `RUNWAY_AGENT_LOG=info`, "
        "capacity 1), registered with a token from `POST /api/v1/registration-tokens`, "
        f"left idle for {f['agent_idle_s']} s against a fresh server of its own with "
        "nothing queued (it heartbeats and long-polls `claim?wait=20`), then VmRSS read "
        "from /proc/PID/status 5 times, 1 s apart.\n"
    )
    w(
        f"- **VmRSS: {a['agent_rss_mb']:.1f} MB** (median; samples "
        f"{', '.join(f'{mb(x):.2f}' for x in samples)} MB); VmHWM (peak so far) "
        f"{mb(int(f['agent_idle_hwm_kb'])):.1f} MB; {f['agent_idle_threads']} "
        f"thread{'' if f['agent_idle_threads'] == '1' else 's'}; "
        + (
            f"{int(f['agent_idle_cpu_ticks']) / clk * 1000:.0f} ms"
            if int(f["agent_idle_cpu_ticks"])
            else f"under {1000 / clk:.0f} ms (one clock tick)"
        )
        + f" of CPU over its {int(f['agent_idle_s']) + 4} s; the server listed it as "
        f"`{f['agent_idle_status']}`."
    )
    w(
        f"- Binary: {int(f['agent_binary_bytes']) / 1048576:.1f} MiB. For scale (quoted "
        f"from the issue, not measured): the GitHub Actions runner needs over "
        f"{GITHUB_RUNNER_MB} MB.\n"
    )

    # Sign-in
    servers = [n for n in ("proto", "traced", "idle", "logs") if f"{n}_signed_in_rss_kb" in f]
    before = [int(f[f"{n}_idle_rss_kb"]) for n in servers]
    after = [int(f[f"{n}_signed_in_rss_kb"]) for n in servers]
    w("### Sign-in and RSS\n")
    w(
        f"Each agent-protocol server was signed in to once, 1 s after it started. On "
        f"the {len(servers)} fresh servers that one `POST /api/v1/auth/sessions` took "
        f"the RSS from a median of {rss(statistics.median(before))} to "
        f"**{rss(statistics.median(after))}** "
        f"({', '.join(f'{rss(b)} → {rss(x)}' for b, x in zip(before, after))}). "
        "The password check is argon2id with the `argon2` crate's default parameters, "
        "19 MiB of working memory per hash.\n"
    )
    more = [int(x) for x in f["idle_more_signins_rss_kb"].split()]
    w(
        f"After the idle-agent measurement, {len(more)} more sign-ins one after the "
        f"other took that server from {rss(int(f['idle_signed_in_rss_kb']))} to "
        f"**{rss(more[-1])}** (after each: {', '.join(f'{mb(x):.0f}' for x in more)} MB). "
        "Memory that a hash used and freed is not given back to the system, which "
        "points at the allocator keeping freed buffers (e.g. in per-thread malloc "
        "arenas) rather than at anything the benchmarks do. Because of this, the "
        "script signs in once per server and the driver runs share that session; the "
        "idle RSS in *Memory* above is measured before any sign-in, the peak RSS there "
        "after one.\n"
    )

    # Server complaints
    lines = []
    for name in ("proto", "logs"):
        p = res / f"{name}.stderr"
        if p.exists():
            lines += [(name, x) for x in p.read_text().splitlines() if x.strip()]
    if lines:
        w(
            f"**The servers logged {len(lines)} line(s) at WARN or above** during these "
            "runs (first ones below; all in `target/bench/proto.stderr` and "
            "`logs.stderr`):\n"
        )
        w("```")
        for name, x in lines[:5]:
            w(f"{name}: {x[:240]}")
        w("```\n")
    else:
        w("None of the agent-protocol servers logged anything at WARN or above.\n")


def lambda_section(w, f: dict[str, str], res: Path, cold: dict) -> None:
    lam = {p.stem: json.loads(p.read_text()) for p in (res / "lambda").glob("*.json")}
    cd, cs = lam["cold_dynamodb"], lam["cold_sqlite"]
    wd, ws = lam["warm_dynamodb"], lam["warm_sqlite"]
    local = cold["runway_existing"]
    zip_b, boot_b = int(f["lambda_zip_bytes"]), int(f["lambda_bootstrap_bytes"])
    arch = f["lambda_arch"]
    n = wd["health"]["n"]

    w("## Lambda\n")
    w(
        "The function is deployed as `bootstrap` for arm64 (see DEPLOYMENT.md), which "
        "cannot execute on this x86_64 machine. The package below is the real arm64 one; "
        "the timings run the x86_64 release binary `target/release/runway` (the same "
        "code, built with the same profile) under `bench/lambda_runtime.py`, a local "
        "emulator of the Lambda Runtime API (`/2018-06-01/runtime/invocation/next`, "
        "`…/{id}/response`, `…/{id}/error`, `/init/error`) on 127.0.0.1. The process "
        "gets only the environment Lambda would give it (`AWS_LAMBDA_RUNTIME_API`, "
        "`AWS_LAMBDA_FUNCTION_NAME`, `AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128`, "
        "`AWS_LAMBDA_FUNCTION_VERSION`, `AWS_REGION`, test credentials) plus "
        "`RUNWAY_STORE`, the store's settings and `RUNWAY_LOG=warn`, and runs "
        "`runway lambda` by itself because `AWS_LAMBDA_RUNTIME_API` is set. The "
        "events are API Gateway HTTP API payload-v2.0 events "
        "(`crates/runway-server/tests/fixtures/apigw-v2-health.json`, and the same "
        "event with `rawPath` `/api/v1/auth/session` and an `authorization: Bearer` "
        "header). The DynamoDB store talks to a moto_server on loopback "
        "(`scripts/moto.sh`; tables from `runway dynamodb create-tables --prefix "
        "bench_`).\n"
    )
    w("### Package\n")
    fallback = (
        ""
        if arch == "arm64"
        else " **The arm64 build failed on this machine, so this is the x86_64 package "
        "(`make lambda-x86`)**, which is larger than the arm64 one would be."
    )
    w(
        f"`make lambda`: `{f['lambda_zip_path']}`, {arch}, release profile."
        f"{fallback} Lambda's documented limits are 50 MB for a zip uploaded directly "
        "and 250 MB unzipped.\n"
    )
    w("| | bytes | MiB |")
    w("|---|---:|---:|")
    w(f"| `bootstrap.zip` ({arch}) | **{zip_b:,}** | **{zip_b / 1048576:.2f}** |")
    w(f"| `bootstrap`, uncompressed | {boot_b:,} | {boot_b / 1048576:.2f} |")
    w(f"| x86_64 `target/release/runway`, for comparison | {int(f['runway_binary_bytes']):,} | {int(f['runway_binary_bytes']) / 1048576:.2f} |")
    w("")

    w("### Cold start\n")
    w(
        "Lambda-style: `perf_counter()`, spawn the binary with the event already "
        "queued in the emulator, and stop the clock when its response POST arrives "
        "(exec → first response to an API Gateway event): process start, reading the "
        "environment, building the store (for DynamoDB, the AWS SDK client; no "
        "DynamoDB request is made at start without `RUNWAY_ADMIN_PASSWORD`, and "
        "`/health` makes none), the Runtime API `next` call, the event's JSON, the "
        "Router, and the response POST. Then the process is killed by PID; each "
        f"run uses a new emulator. {cd['n']} runs each. Not included: what AWS does "
        "before the exec (placing an execution environment, fetching and unpacking "
        "the package) and the API Gateway hop.\n"
    )
    w("| case | median | min | max | samples (ms) |")
    w("|---|---:|---:|---:|---|")
    for c, label in [
        (cd, "**Lambda-style**, DynamoDB store (moto), exec → first response to `GET /health` event"),
        (cs, "Lambda-style, SQLite store, existing data dir"),
        (local, "local `runway serve`, existing data dir, exec → first 200 on `/health` (from *Cold start* above)"),
    ]:
        w(
            f"| {label} | **{fmt_ms(c['median_ms'])}** | {fmt_ms(c['min_ms'])} | "
            f"{fmt_ms(c['max_ms'])} | {', '.join(f'{x:.1f}' for x in c['samples_ms'])} |"
        )
    w("")

    w("### Warm invocations\n")
    w(
        f"One process kept alive, fed {n:,} events of each kind back to back: the "
        "function asks for the next event right after posting a response and gets it "
        "at once (one sign-in event first, untimed, gives the session token). "
        "**Duration** of one invocation = from the emulator writing the event (just "
        "before its `next` response goes out) to the arrival of the response POST: "
        "Runway's handler plus the runtime client reading the event and posting the "
        "response, i.e. what Lambda bills, **plus** two loopback HTTP exchanges with "
        "a Python `http.server`, whose own parsing and thread hand-off is in every "
        "sample. **Function CPU per invocation** is the process's CPU time "
        "(/proc/PID/stat, 10 ms ticks, so read it as ±10 ms over the whole run) "
        "divided by the invocations: Runway's own cost without the emulator's. "
        "Invocations/s is the loop's rate and is bound by the Python emulator (which "
        "shares the two cores), not by Runway.\n"
    )
    w(
        "| invocation | store | median | p99 | mean | invocations/s | function CPU per invocation |"
    )
    w("|---|---|---:|---:|---:|---:|---:|")
    for r, case, store in [
        (wd, "health", "DynamoDB (moto); `/health` does not touch it"),
        (wd, "session", "**DynamoDB on moto** (1 strongly consistent GetItem)"),
        (ws, "health", "SQLite"),
        (ws, "session", "**SQLite** (1 read)"),
    ]:
        x = r[case]
        label = "`GET /health`" if case == "health" else "session validation `GET /api/v1/auth/session` (Bearer)"
        w(
            f"| {label} | {store} | **{fmt_ms(x['median_ms'])}** | {fmt_ms(x['p99_ms'])} | "
            f"{fmt_ms(x['mean_ms'])} | {fmt_int(x['invocations_per_s'])} | "
            f"{x['cpu_us_per_invocation']:.0f} µs |"
        )
    w("")
    moto_extra = wd["session"]["median_ms"] - ws["session"]["median_ms"]
    w(
        f"- **What the DynamoDB row measures.** Session validation on moto takes "
        f"{fmt_ms(wd['session']['median_ms'])} (median), "
        f"{fmt_ms(moto_extra)} more than on SQLite: that difference is one GetItem "
        "round trip to moto_server, a Python server on the same two "
        "cores, including the SDK's request signing and HTTP on loopback. It is not "
        "DynamoDB's latency: AWS documents single-digit-millisecond GetItem latency "
        "in-region, which this "
        "machine cannot measure."
    )
    w(
        f"- **Runway's own per-invocation cost** is the SQLite row: "
        f"{fmt_ms(ws['session']['median_ms'])} median, {fmt_ms(ws['session']['p99_ms'])} "
        f"p99 for session validation, {fmt_ms(ws['health']['median_ms'])} for `/health`, "
        "emulator included. A deployed function's billed duration for session "
        "validation is therefore about this plus one in-region GetItem; Lambda rounds "
        "each invocation's duration up to the next 1 ms. DEPLOYMENT.md's cost "
        "estimate uses that sum."
    )
    w(
        f"- **Memory.** The SQLite function's RSS after {2 * n:,} invocations was "
        f"{mb(ws['rss_kb']):.1f} MB, the DynamoDB one's {mb(wd['rss_kb']):.1f} MB "
        "(the function is configured with 128 MB)."
    )
    w(
        f"- **Cold start.** {fmt_ms(cd['median_ms'])} Lambda-style on DynamoDB and "
        f"{fmt_ms(cs['median_ms'])} on SQLite against {fmt_ms(local['median_ms'])} for "
        "`runway serve` (whose clock also stops at a first response, but polls a "
        "socket instead of receiving a POST). Both include Python's fork/exec. On AWS "
        "the arm64 binary runs on a Graviton core at the 128 MB setting's CPU share "
        "(a fraction of a vCPU), so expect AWS's `Init Duration` to be larger than "
        "this; it happens once per execution environment, not per request.\n"
    )


def main() -> None:
    res = Path(sys.argv[1])
    f: dict[str, str] = {}
    for line in (res / "facts.env").read_text().splitlines():
        k, _, v = line.partition("=")
        f[k] = v
    clk = int(f["clk_tck"])

    runs: dict[str, list[dict]] = {}
    for name, _ in SCENARIOS:
        files = sorted((res / "wrk").glob(f"{name}.[0-9]*.txt"), key=lambda p: int(p.stem.split(".")[1]))
        runs[name] = [parse_run(p.parent / p.stem, clk) for p in files]
    m = {name: {k: med(rs, k) for k in rs[0]} for name, rs in runs.items() if rs}

    cold = {p.stem: json.loads(p.read_text()) for p in (res / "cold").glob("*.json")}

    sess, ceil = m["session"], m["ceiling"]
    # Each round runs the ceiling and session validation back to back, so the ratio
    # is taken per round (paired) and the median of those is the headline: it cancels
    # most of the machine's drift between rounds. The ratio of the two medians is
    # shown next to it.
    round_ratios = [s["rps"] / c["rps"] for s, c in zip(runs["session"], runs["ceiling"])]
    ratio = statistics.median(round_ratios)
    ratio_of_medians = sess["rps"] / ceil["rps"]
    idle_mb = mb(f["runway_idle_rss_kb"])
    cold_ms = cold["runway_existing"]["median_ms"]
    ap = agent_figures(f, res, clk)

    out: list[str] = []
    w = out.append
    w("# Benchmarks\n")
    w(
        "Generated by `make bench` (`bench/run.sh`, then `bench/report.py`); do not edit "
        "by hand, re-run it. Every number below was measured in the run described here, "
        "except the FastAPI figures, which are quoted from the issue.\n"
    )

    w("## Machine and method\n")
    dirty = " plus uncommitted changes" if f.get("git_dirty") == "yes" else ""
    w(f"- **Command:** `make bench` (= `bash bench/run.sh`), at commit `{f['git_commit']}`{dirty}")
    w(f"- **Date:** {f['date']}")
    w(
        f"- **Machine:** `nproc` = {f['nproc']}, CPU model `{f['cpu_model']}` "
        f"(from /proc/cpuinfo), {mb(f['mem_total_kb']) / 1024:.1f} GiB RAM, {f['kernel']}"
    )
    w(
        f"- **Load average** (1/5/15 min) at the start: {f['loadavg_start']}; at the end of "
        f"the load tests: {f['loadavg_end']}. The machine is shared (other builds may run), "
        "so compare rows within this run, not with other runs."
    )
    w(f"- **Toolchain:** {f['rustc']}, release profile `{f['release_profile']}`")
    w(
        f"- **Load generator:** {f['wrk_version']} on loopback, "
        f"`wrk -t{f['threads']} -c{f['connections']} -d{f['duration']}s --latency`, "
        "HTTP/1.1 keep-alive, for every row but the `-t` comparison, so the ratios are "
        "fair. wrk shares the "
        f"{f['nproc']} cores with the server under test (whose tokio runtime has one "
        "worker thread per core). One wrk thread plus the server's workers is three "
        "busy threads on two cores; two wrk threads make four, and the extra context "
        "switching shows up as tail latency. The ceiling was loaded both ways in this "
        f"run: with `-t{f['threads']}` {fmt_int(m['ceiling']['rps'])} req/s, p99 "
        f"{fmt_ms(m['ceiling']['p99'])}; with `-t{f['alt_threads']}` "
        f"{fmt_int(m['ceiling_alt']['rps'])} req/s, p99 {fmt_ms(m['ceiling_alt']['p99'])} "
        f"(medians). `-t{f['threads']}` is the setting of record, so that p99 "
        "measures the server rather than an oversubscribed scheduler. 64 connections "
        "keep every server worker busy."
    )
    w(
        f"- **Runs:** {f['runs']} rounds after a 2 s unrecorded warm-up per endpoint. The "
        "GET tests run round-robin (ceiling, health, session, session+info logs, "
        "listing, then the next round), so each round compares the same moment of the "
        "machine; `POST /api/v1/jobs` runs last, because it adds jobs. Tables quote the "
        "**median** of each metric across runs."
    )
    w(
        "- **Servers:** `runway serve --listen 127.0.0.1:0 --data-dir NEW_TEMP_DIR` with "
        "`RUNWAY_LOG=warn`, i.e. **per-request INFO logs are off** during load (a "
        "second instance with `RUNWAY_LOG=info`, stderr to /dev/null, shows what "
        "logging costs); a random `RUNWAY_ADMIN_PASSWORD`; a session from "
        "`POST /api/v1/auth/sessions`. The ceiling is `bench/ceiling`, a bare axum 0.8 "
        "server on the same multi-threaded tokio runtime that answers the session "
        f"route with a constant {f['ceiling_body_bytes']}-byte JSON body (Runway's "
        f"real one here: {f['session_body_bytes']} bytes): no token parsing, hashing, "
        "store, middleware or logging."
    )
    w(
        f"- **Jobs:** exactly {int(f['jobs_listed_over']):,} jobs seeded with "
        f"`bench/jobs.py` (4 keep-alive connections, {int(f['seed_ms']) / 1000:.1f} s) "
        "and counted through the paginated listing before the listing test. A listing "
        f"page of 50 is {int(f['jobs_list_body_bytes']):,} bytes."
    )
    w(
        "- **CPU columns:** the server's CPU time from /proc/PID/stat, wrk's from GNU "
        "time, and everything else on the machine, kernel threads included (busy time in "
        "/proc/stat minus those two), over each run, divided by the run's wall time: cores busy, out of "
        f"{f['nproc']}. Server CPU per request = server CPU time ÷ requests served; it "
        "is the least noise-sensitive number here.\n"
    )

    w("## Targets\n")
    w("| target (from the issue) | measured | |")
    w("|---|---|---|")
    w(
        f"| session validation ≥ {TARGET_CEILING_RATIO:.0%} of the ceiling | "
        # Two decimals when one would round a miss up to the target itself.
        f"**{ratio:.{2 if f'{ratio:.1%}' == f'{TARGET_CEILING_RATIO:.1%}' else 1}%}** "
        "(median of the per-round ratios "
        f"{', '.join(f'{r:.1%}' for r in round_ratios)}; the ratio of the medians, "
        f"{fmt_int(sess['rps'])} ÷ {fmt_int(ceil['rps'])} req/s, is "
        f"{ratio_of_medians:.1%}) | "
        f"{verdict(ratio >= TARGET_CEILING_RATIO)} |"
    )
    w(
        f"| session validation p99 ≤ {TARGET_SESSION_P99_MS:.0f} ms | "
        f"**{fmt_ms(sess['p99'])}** | {verdict(sess['p99'] <= TARGET_SESSION_P99_MS)} |"
    )
    w(
        f"| cold start ≤ {TARGET_COLD_START_MS:.0f} ms (exec → first 200 on /health, "
        f"existing data dir, median of {cold['runway_existing']['runs']}) | "
        f"**{fmt_ms(cold_ms)}** | {verdict(cold_ms <= TARGET_COLD_START_MS)} |"
    )
    w(
        f"| idle RSS ≤ {TARGET_IDLE_RSS_MB:.0f} MB | **{idle_mb:.1f} MB** | "
        f"{verdict(idle_mb <= TARGET_IDLE_RSS_MB)} |"
    )
    n_disp = f"{int(f['dispatch_jobs']):,}"
    w(
        f"| dispatch p50 ≤ {TARGET_DISPATCH_P50_MS:.0f} ms (submit → claimed by an idle "
        f"agent long-polling, {n_disp} jobs one at a time; median of "
        f"{len(ap['dispatch'])} runs) | **{fmt_ms(ap['dispatch_p50'])}** | "
        f"{verdict(ap['dispatch_p50'] <= TARGET_DISPATCH_P50_MS)} |"
    )
    w(
        f"| dispatch p99 ≤ {TARGET_DISPATCH_P99_MS:.0f} ms | **{fmt_ms(ap['dispatch_p99'])}** | "
        f"{verdict(ap['dispatch_p99'] <= TARGET_DISPATCH_P99_MS)} |"
    )
    w(
        f"| lifecycle ≥ {TARGET_LIFECYCLE_JOBS_PER_S:,.0f} jobs/s on SQLite (claim → start "
        f"→ one log chunk → finish, {int(f['lifecycle_agents'])} agents, backlog of "
        f"{int(f['lifecycle_jobs']):,}; median of {len(ap['lifecycle'])} runs) | "
        f"**{fmt_int(ap['lifecycle_jps'])} jobs/s** | "
        f"{verdict(ap['lifecycle_jps'] >= TARGET_LIFECYCLE_JOBS_PER_S)} |"
    )
    w(
        f"| `runway-agent` idle RSS ≤ {TARGET_AGENT_IDLE_RSS_MB:.0f} MB (after "
        f"{f['agent_idle_s']} s idle, median of 5 samples) | **{ap['agent_rss_mb']:.1f} MB** | "
        f"{verdict(ap['agent_rss_mb'] <= TARGET_AGENT_IDLE_RSS_MB)} |"
    )
    w(
        f"| log ingestion ({int(f['log_jobs'])} jobs streaming at once; no target) | "
        f"**{ap['logs_mbps']:,.0f} MB/s**, server RSS peak "
        f"{mb(statistics.median(r['rss_peak_kb'] for r in ap['logs'])):.1f} MB | |\n"
    )

    w("## Throughput and latency\n")
    w(
        "| endpoint | req/s (median) | p50 | p99 | req/s of each run | server CPU | "
        "wrk CPU | other processes | server CPU per request | errors |"
    )
    w("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    jobs_n = f"{int(f['jobs_listed_over']):,}"
    for name, label in SCENARIOS:
        if name not in m:
            continue
        r = m[name]
        errors = sum(x["errors"] for x in runs[name])
        w(
            f"| {label.format(jobs=jobs_n, alt=f['alt_threads'])} | "
            f"**{fmt_int(r['rps'])}** | {fmt_ms(r['p50'])} | {fmt_ms(r['p99'])} | "
            f"{' / '.join(fmt_int(x['rps']) for x in runs[name])} | "
            f"{r['srv_cores']:.2f} cores | {r['wrk_cores']:.2f} cores | "
            f"{r['other_cores']:.2f} cores | "
            f"{r['srv_us_per_req']:.1f} µs | {errors} |"
        )
    w("")
    w(
        "Errors are wrk's non-2xx responses plus socket errors, summed over all runs; "
        "anything but 0 would make the row invalid.\n"
    )

    w("## Cold start\n")
    w(
        "Wall time from `exec` to the first `200` on `GET /health`, by `bench/coldstart.py` "
        "(spawn, then poll with a raw socket every 50 µs). It includes Python's "
        "fork/exec, which the ceiling row shows as a floor.\n"
    )
    w("| case | median | min | max | samples (ms) |")
    w("|---|---:|---:|---:|---|")
    for key, label in [
        ("runway_existing", "`runway serve`, existing data dir (a restart)"),
        ("runway_fresh", "`runway serve`, new data dir (first start: schema + argon2id admin)"),
        ("ceiling", "bare axum ceiling (floor of the harness)"),
    ]:
        c = cold[key]
        w(
            f"| {label} | **{fmt_ms(c['median_ms'])}** | {fmt_ms(c['min_ms'])} | "
            f"{fmt_ms(c['max_ms'])} | {', '.join(f'{s:.1f}' for s in c['samples_ms'])} |"
        )
    w("")

    w("## Memory\n")
    w(
        "MB = 10^6 bytes. Idle RSS is VmRSS from /proc/PID/status 2 s after startup, "
        "before any request. "
        "Peak RSS is GNU time's maximum resident set size over the process's life, which "
        "for `runway` includes seeding the jobs and every load test above.\n"
    )
    w("| process | idle RSS | peak RSS |")
    w("|---|---:|---:|")
    w(
        f"| `runway` (`RUNWAY_LOG=warn`) | **{idle_mb:.1f} MB** | "
        f"**{mb(f['runway_peak_rss_kb']):.1f} MB** |"
    )
    w(
        f"| `runway` (`RUNWAY_LOG=info`, session validation only) | "
        f"{mb(f['runway_info_idle_rss_kb']):.1f} MB | {mb(f['runway_info_peak_rss_kb']):.1f} MB |"
    )
    w(
        f"| bare axum ceiling | {mb(f['ceiling_idle_rss_kb']):.1f} MB | "
        f"{mb(f['ceiling_peak_rss_kb']):.1f} MB |"
    )
    w("")
    w(
        f"2 s after the last load test, `runway`'s RSS was "
        f"{mb(f['runway_idle_after_load_rss_kb']):.1f} MB: the allocator and SQLite's page "
        "caches (one per pooled connection) keep what the busiest moment needed.\n"
    )
    w("## Binary size\n")
    w(f"- `target/release/runway`: {int(f['runway_binary_bytes']) / 1048576:.1f} MiB")
    w(
        f"- `target/release/runway-bench-ceiling`: "
        f"{int(f['ceiling_binary_bytes']) / 1048576:.1f} MiB\n"
    )

    agent_section(w, f, ap, res)

    lambda_section(w, f, res, cold)

    w("## Against the original FastAPI stack\n")
    w(
        "The FastAPI numbers are **from the issue**, measured on this machine type but "
        "not in this run, so treat the comparison as indicative.\n"
    )
    w("| session validation | req/s | p99 | memory |")
    w("|---|---:|---:|---:|")
    w(f"| FastAPI, 2 workers (from the issue) | ~{FASTAPI_2W_RPS:,} | {FASTAPI_2W_P99_MS} ms | {FASTAPI_2W_MB} MB across its processes |")
    w(f"| FastAPI, 1 worker (from the issue) | ~{FASTAPI_1W_RPS:,} | | |")
    w(
        f"| Runway (this run) | **{fmt_int(sess['rps'])}** ({sess['rps'] / FASTAPI_2W_RPS:.1f}× "
        f"FastAPI with 2 workers) | **{fmt_ms(sess['p99'])}** | "
        f"{mb(f['runway_peak_rss_kb']):.1f} MB peak, one process |"
    )
    w("")

    w("## What limits it\n")
    extra_us = sess["srv_us_per_req"] - ceil["srv_us_per_req"]
    log_cost = 1 - m["session_info"]["rps"] / sess["rps"]
    # session and session_info run back to back in each round: pair them, like the
    # ceiling ratio.
    round_log_costs = [1 - i["rps"] / s["rps"] for s, i in zip(runs["session"], runs["session_info"])]
    log_cost_paired = statistics.median(round_log_costs)
    nproc = int(f["nproc"])
    busy = sess["srv_cores"] + sess["wrk_cores"] + sess["other_cores"]
    w(
        f"- **The CPU is shared three ways.** During session validation (medians) the "
        f"server used {sess['srv_cores']:.2f} cores, wrk {sess['wrk_cores']:.2f} and "
        f"other processes on this shared machine {sess['other_cores']:.2f}, "
        f"{busy:.2f} of {nproc} in all; for the ceiling {ceil['srv_cores']:.2f}, "
        f"{ceil['wrk_cores']:.2f} and {ceil['other_cores']:.2f}. "
        + (
            "The cores were saturated, so throughput is set by CPU time per request "
            "and by how much CPU the server gets: every microsecond wrk or a "
            "neighbour spends is one the server cannot, and the rounds differ mostly "
            "by how busy the neighbours were."
            if busy >= 0.85 * nproc
            else f"About {nproc - busy:.2f} cores stayed idle: wrk is a closed loop (each "
            "connection sends its next request only after the previous response), so "
            "with one wrk thread each side sometimes waits for the other; neither the "
            "server nor wrk was CPU-bound all of the time."
        )
    )
    w(
        f"- **Per-request work.** The ceiling spends {ceil['srv_us_per_req']:.1f} µs of "
        f"server CPU per request (accept loop, HTTP/1.1 parsing, routing, writing the "
        f"response); Runway's session validation spends {sess['srv_us_per_req']:.1f} µs, "
        f"{extra_us:.1f} µs more for its `observe` middleware (a ULID request id, "
        "a timer, the access-log event, discarded at `warn`), the body-limit layer, "
        "parsing the bearer token and hashing it with SHA-256, one read of the session "
        "from the SQLite reader pool with both expiries checked, and serialising the "
        f"{f['session_body_bytes']}-byte response. That "
        f"difference is what separates {ratio:.0%} from 100% of the ceiling: per "
        f"request, Runway costs {sess['srv_us_per_req'] / ceil['srv_us_per_req']:.1f}× "
        "the ceiling's server CPU. "
        f"`GET /health`, which goes through the same middleware but touches no store, "
        f"spends {m['health']['srv_us_per_req']:.1f} µs: about "
        f"{m['health']['srv_us_per_req'] - ceil['srv_us_per_req']:.1f} µs is the "
        f"middleware's share and {sess['srv_us_per_req'] - m['health']['srv_us_per_req']:.1f} µs "
        "authentication, the store read and the bigger response."
    )
    w(
        f"- **Request logging costs {log_cost_paired:.0%} of session-validation "
        f"throughput** (median of the per-round gaps "
        f"{', '.join(f'{c:.0%}' for c in round_log_costs)}). With `RUNWAY_LOG=info` (one "
        "INFO line per request, formatted and written to /dev/null) session validation "
        f"reaches {fmt_int(m['session_info']['rps'])} req/s against "
        f"{fmt_int(sess['rps'])} with `warn` (medians; {abs(log_cost):.0%} "
        f"{'less' if log_cost >= 0 else 'more'}), and "
        f"{m['session_info']['srv_us_per_req']:.1f} vs {sess['srv_us_per_req']:.1f} µs "
        f"of server CPU per request ({m['session_info']['srv_us_per_req'] - sess['srv_us_per_req']:+.1f} µs, "
        f"{m['session_info']['srv_us_per_req'] / sess['srv_us_per_req'] - 1:+.0%}), the "
        "steadiest of these figures on a shared machine"
        + (
            " (a negative round means the `info` instance happened to get more of the "
            "CPU in that round)"
            if min(round_log_costs) < 0
            else ""
        )
        + ". Every other row here, and every agent-protocol figure, is measured at `warn`; "
        "a server run at the default `info` pays this on every request."
    )
    w(
        f"- **Listing and writes.** A 50-job page is {int(f['jobs_list_body_bytes']):,} "
        f"bytes of JSON read from SQLite and serialised per request "
        f"({m['jobs_list']['srv_us_per_req']:.0f} µs of server CPU each, "
        f"{fmt_int(m['jobs_list']['rps'])} req/s). `POST /api/v1/jobs` is one SQLite "
        "write transaction per request through the store's single writer connection "
        "(on a blocking thread), committed with `synchronous=FULL`, so every "
        "acknowledged job has been fsynced to the WAL before the 201. Commits are "
        f"serialised: {fmt_int(m['jobs_create']['rps'])} req/s is "
        f"{1000 / m['jobs_create']['rps']:.2f} ms per commit including its fsync, with "
        f"the server only {m['jobs_create']['srv_cores']:.2f} cores busy, and "
        f"{f['connections']} connections queue behind the one writer, so a request "
        f"waits about {f['connections']} × {1000 / m['jobs_create']['rps']:.2f} ms = "
        f"{int(f['connections']) * 1000 / m['jobs_create']['rps']:.0f} ms (measured "
        f"p50 {fmt_ms(m['jobs_create']['p50'])}, p99 {fmt_ms(m['jobs_create']['p99'])}). "
        "Batching concurrent inserts into one transaction (group commit) would be the "
        "lever if write throughput mattered."
    )
    fresh_ms = cold["runway_fresh"]["median_ms"]
    w(
        f"- **Cold start** on an existing data directory: {fmt_ms(cold_ms)}; the bare "
        f"axum binary took {fmt_ms(cold['ceiling']['median_ms'])} in the same harness "
        "(Python's fork/exec and the polling are in both, and the spread of the samples "
        "shows the machine's noise at that scale). Runway's start is reading its "
        "configuration, opening SQLite (WAL) and checking the schema version before it "
        f"serves. A first start on a new directory takes {fmt_ms(fresh_ms)}, "
        f"{fresh_ms - cold_ms:.0f} ms more: creating the database and its schema (with "
        "fsyncs) and hashing the admin password with argon2id, which is slow on "
        "purpose."
    )
    print("\n".join(out))


if __name__ == "__main__":
    main()
