#!/usr/bin/env python3
"""Lambda-style cold start and warm invocations of `runway`, on a local Runtime API.

Used by `bench/run.sh`; standard library only. Only 127.0.0.1 is used.

The deployed function is arm64 and cannot run here, so this drives the x86_64
release binary (the same code) the way AWS Lambda drives `bootstrap`: it emulates
the Lambda Runtime API (the 2018-06-01 interface a custom runtime polls) on
127.0.0.1:0 and starts `runway` with only the variables Lambda would set
(`AWS_LAMBDA_RUNTIME_API`, `AWS_LAMBDA_FUNCTION_NAME`, …) plus Runway's own.
With `AWS_LAMBDA_RUNTIME_API` set, `runway` runs `runway lambda` by itself.

The emulator implements:

* `GET  /2018-06-01/runtime/invocation/next`: blocks until an event is queued, then
  returns it (an API Gateway HTTP API payload-v2.0 event) with the headers
  `Lambda-Runtime-Aws-Request-Id`, `Lambda-Runtime-Deadline-Ms`,
  `Lambda-Runtime-Invoked-Function-Arn` and `Lambda-Runtime-Trace-Id`;
* `POST /2018-06-01/runtime/invocation/{id}/response`: records when it arrived and
  the body (the v2.0 response: statusCode, headers, body);
* `POST /2018-06-01/runtime/invocation/{id}/error` and
  `POST /2018-06-01/runtime/init/error`: record a failure, which ends the benchmark.

Two measurements:

    lambda_runtime.py cold --runs 10 --event FIXTURE.json [store flags] -- BINARY
        For each run: a new emulator on a new port, the event queued, then
        `perf_counter()`, spawn BINARY, and the clock stops when its response POST
        arrives at the emulator (exec → first response to an API Gateway event,
        the process's whole init included). The process is then killed by PID.

    lambda_runtime.py warm --n 2000 --event FIXTURE.json --signin FIXTURE.json \
            [store flags] -- BINARY
        One process, kept alive. First one sign-in event (its argon2id check is not
        timed) yields a session token; then N `GET /health` events and N
        `GET /api/v1/auth/session` events with `Authorization: Bearer TOKEN`, back to
        back: the function asks for the next event right after posting a response,
        and gets it at once. One invocation's duration is the time from the moment
        the emulator finished writing the event to the moment the response POST
        arrived: what Lambda would bill, plus two loopback HTTP exchanges with this
        Python emulator. The process's CPU time over the N invocations
        (/proc/PID/stat) divided by N is reported too: Runway's own cost, without
        the emulator's share of the wall time.

Store flags: `--store dynamodb --endpoint URL --prefix P` or `--store sqlite
--data-dir DIR`. `--admin-password` sets RUNWAY_ADMIN_PASSWORD (the warm run needs
it for the sign-in; the cold runs leave it unset, as a deployed function does).

Prints one JSON object on stdout.
"""

import argparse
import base64
import copy
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PREFIX = "/2018-06-01/runtime"
FUNCTION_NAME = "runway-bench"
FUNCTION_ARN = f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION_NAME}"
COLD_TIMEOUT_S = 30.0
WARM_TIMEOUT_S = 600.0


class Invocation:
    """One event handed to the function and what came back."""

    __slots__ = ("request_id", "body", "handed_out", "arrived", "response", "error", "done")

    def __init__(self, body: bytes) -> None:
        self.request_id = str(uuid.uuid4())
        self.body = body
        self.handed_out: float | None = None
        self.arrived: float | None = None
        self.response: bytes | None = None
        self.error: str | None = None
        self.done = threading.Event()


class Runtime:
    """The emulated Runtime API of one execution environment."""

    def __init__(self) -> None:
        self.pending: queue.Queue[Invocation] = queue.Queue()
        self.by_id: dict[str, Invocation] = {}
        self.init_error: str | None = None
        self.failed = threading.Event()
        self.stopping = threading.Event()
        runtime = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the Rust runtime client expects

            def log_message(self, *args) -> None:  # quiet
                pass

            def _read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _reply(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def do_GET(self) -> None:
                if self.path != f"{PREFIX}/invocation/next":
                    self._reply(404, b'{"errorMessage":"not found"}')
                    return
                while True:
                    if runtime.stopping.is_set():
                        self.close_connection = True
                        self._reply(410, b'{"errorMessage":"shutting down"}')
                        return
                    try:
                        inv = runtime.pending.get(timeout=0.1)
                        break
                    except queue.Empty:
                        continue
                deadline_ms = int(time.time() * 1000) + 30_000
                # Stamped before the write: the function cannot have the event
                # earlier, and a response POST handled by another thread cannot be
                # stamped before this.
                inv.handed_out = time.perf_counter()
                self._reply(
                    200,
                    inv.body,
                    {
                        "Lambda-Runtime-Aws-Request-Id": inv.request_id,
                        "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                        "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
                        "Lambda-Runtime-Trace-Id": (
                            f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};"
                            "Parent=0000000000000000;Sampled=0"
                        ),
                    },
                )

            def do_POST(self) -> None:
                arrived = time.perf_counter()
                body = self._read_body()
                if self.path == f"{PREFIX}/init/error":
                    runtime.init_error = body.decode(errors="replace")
                    runtime.failed.set()
                    self._reply(202, b'{"status":"OK"}')
                    return
                parts = self.path[len(PREFIX) :].strip("/").split("/")
                if len(parts) != 3 or parts[0] != "invocation" or parts[2] not in ("response", "error"):
                    self._reply(404, b'{"errorMessage":"not found"}')
                    return
                inv = runtime.by_id.get(parts[1])
                if inv is None:
                    self._reply(400, b'{"errorMessage":"unknown request id"}')
                    return
                inv.arrived = arrived
                if parts[2] == "response":
                    inv.response = body
                else:
                    inv.error = body.decode(errors="replace")
                    runtime.failed.set()
                self._reply(202, b'{"status":"OK"}')
                inv.done.set()

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address) -> None:
                # A function killed by PID leaves a broken connection behind;
                # real failures surface through `failed` and the timeouts.
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def queue(self, body: bytes) -> Invocation:
        inv = Invocation(body)
        self.by_id[inv.request_id] = inv
        self.pending.put(inv)
        return inv

    def wait(self, inv: Invocation, timeout: float, proc: subprocess.Popen) -> None:
        deadline = time.perf_counter() + timeout
        while not inv.done.wait(0.05):
            if self.failed.is_set():
                sys.exit(f"lambda_runtime: the function reported an error: {self.init_error or inv.error}")
            if proc.poll() is not None:
                sys.exit(f"lambda_runtime: the function exited with {proc.returncode} (see its stderr)")
            if time.perf_counter() > deadline:
                sys.exit(f"lambda_runtime: no response within {timeout} s")
        if inv.error is not None:
            sys.exit(f"lambda_runtime: invocation error: {inv.error}")

    def close(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


def function_env(args: argparse.Namespace, port: int) -> dict[str, str]:
    """Only what Lambda would set, plus Runway's configuration."""
    env = {
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
        "AWS_LAMBDA_FUNCTION_NAME": FUNCTION_NAME,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "1",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "RUNWAY_STORE": args.store,
        "RUNWAY_LOG": "warn",
    }
    if args.store == "dynamodb":
        env["RUNWAY_DYNAMODB_ENDPOINT"] = args.endpoint
        env["RUNWAY_DYNAMODB_TABLE_PREFIX"] = args.prefix
    else:
        env["RUNWAY_DATA_DIR"] = args.data_dir
    if args.admin_password:
        env["RUNWAY_ADMIN_PASSWORD"] = args.admin_password
    return env


def spawn(cmd: list[str], env: dict[str, str], stderr_path: str | None) -> subprocess.Popen:
    err = open(stderr_path, "ab") if stderr_path else subprocess.DEVNULL
    try:
        return subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    finally:
        if stderr_path:
            err.close()


def kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def response_of(inv: Invocation) -> dict:
    return json.loads(inv.response or b"{}")


def check_status(inv: Invocation, want: int) -> None:
    got = response_of(inv).get("statusCode")
    if got != want:
        sys.exit(f"lambda_runtime: expected statusCode {want}, got {got}: {inv.response[:300]!r}")


def summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {
        "n": len(samples),
        "median_ms": statistics.median(samples),
        "p99_ms": ordered[max(0, int(len(ordered) * 0.99 + 0.5) - 1)],
        "min_ms": ordered[0],
        "max_ms": ordered[-1],
        "mean_ms": statistics.fmean(samples),
    }


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14 and 15)


def cold(args: argparse.Namespace, cmd: list[str]) -> dict:
    event = Path(args.event).read_bytes()
    samples = []
    for _ in range(args.runs):
        runtime = Runtime()
        inv = runtime.queue(event)
        env = function_env(args, runtime.port)
        t0 = time.perf_counter()
        proc = spawn(cmd, env, args.stderr)
        try:
            runtime.wait(inv, COLD_TIMEOUT_S, proc)
        finally:
            kill(proc)
            runtime.close()
        check_status(inv, 200)
        samples.append((inv.arrived - t0) * 1000.0)
    s = summary(samples)
    s["samples_ms"] = [round(x, 3) for x in samples]
    return s


def warm(args: argparse.Namespace, cmd: list[str]) -> dict:
    health = json.loads(Path(args.event).read_text())
    runtime = Runtime()
    proc = spawn(cmd, function_env(args, runtime.port), args.stderr)
    clk = os.sysconf("SC_CLK_TCK")
    out: dict = {"store": args.store}
    try:
        signin = runtime.queue(Path(args.signin).read_bytes())
        runtime.wait(signin, COLD_TIMEOUT_S, proc)
        check_status(signin, 201)
        body = response_of(signin)["body"]
        if response_of(signin).get("isBase64Encoded"):
            body = base64.b64decode(body)
        token = json.loads(body)["token"]

        session = copy.deepcopy(health)
        session["rawPath"] = "/api/v1/auth/session"
        session["requestContext"]["http"]["path"] = "/api/v1/auth/session"
        session["headers"]["authorization"] = f"Bearer {token}"
        cases = [("health", json.dumps(health).encode()), ("session", json.dumps(session).encode())]
        out["event_bytes"] = {name: len(body) for name, body in cases}
        for name, body in cases:
            ticks0 = cpu_ticks(proc.pid)
            wall0 = time.perf_counter()
            invs = [runtime.queue(body) for _ in range(args.n)]
            runtime.wait(invs[-1], WARM_TIMEOUT_S, proc)
            wall = time.perf_counter() - wall0
            ticks = cpu_ticks(proc.pid) - ticks0
            for inv in invs:
                if not inv.done.is_set():
                    runtime.wait(inv, COLD_TIMEOUT_S, proc)
                check_status(inv, 200)
            s = summary([(inv.arrived - inv.handed_out) * 1000.0 for inv in invs])
            s["invocations_per_s"] = args.n / wall
            s["cpu_us_per_invocation"] = ticks / clk / args.n * 1e6
            s["response_body_bytes"] = len(response_of(invs[-1]).get("body", ""))
            out[name] = s
        out["rss_kb"] = int(
            next(
                line.split()[1]
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                if line.startswith("VmRSS")
            )
        )
    finally:
        kill(proc)
        runtime.close()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["cold", "warm"])
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--event", required=True, help="the GET /health event (API Gateway v2.0)")
    p.add_argument("--signin", help="the sign-in event (warm only)")
    p.add_argument("--store", choices=["dynamodb", "sqlite"], default="dynamodb")
    p.add_argument("--endpoint")
    p.add_argument("--prefix", default="bench_")
    p.add_argument("--data-dir")
    p.add_argument("--admin-password")
    p.add_argument("--stderr", help="append the function's stdout and stderr to this file")
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = p.parse_args(argv[:split])
    cmd = argv[split + 1 :]
    if not cmd:
        p.error("missing the function's command")
    if args.store == "dynamodb" and not args.endpoint:
        p.error("--store dynamodb needs --endpoint")
    if args.store == "sqlite" and not args.data_dir:
        p.error("--store sqlite needs --data-dir")
    if args.mode == "warm" and not (args.signin and args.admin_password):
        p.error("warm needs --signin and --admin-password")
    result = cold(args, cmd) if args.mode == "cold" else warm(args, cmd)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
