#!/usr/bin/env python3
"""Cold start: time from exec of a server to its first `200` on `GET /health`.

Used by `bench/run.sh`; standard library only.

For each sample it picks a free loopback port (bind to port 0, read it, close it),
records `time.perf_counter()`, spawns the server with `{port}` and `{data_dir}` in its
argument list replaced, then polls in a tight loop: open a TCP connection (refused
until the server listens), send `GET /health`, read the status line. The clock stops
at the first `HTTP/1.1 200`. The poll sleeps 50 µs between attempts, so the
resolution is well under a tenth of a millisecond. The server is then sent SIGTERM
and reaped before the next sample, so samples never overlap.

`--data-dir existing` reuses one directory for every sample, after one untimed
warm-up start that creates it (the normal restart case: the database exists and the
admin user is already there). `--data-dir fresh` uses a brand-new empty directory
per sample, so each start also creates the schema and hashes the admin password
with argon2id (first start). `--data-dir none` passes no directory (for servers
without one, like the ceiling).

Prints one JSON object: the samples in ms, their median, min and max.

    coldstart.py --runs 10 --data-dir existing -- target/release/runway serve \
        --listen 127.0.0.1:{port} --data-dir {data_dir}
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REQUEST = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health_ok(port: int) -> bool:
    """One attempt: True on a 200, False if refused or not (yet) 200."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10.0) as s:
            s.sendall(REQUEST)
            head = s.recv(64)
            return head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.0 200")
    except OSError:
        return False


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def one_start(cmd: list[str], data_dir: str) -> float:
    port = free_port()
    argv = [a.replace("{port}", str(port)).replace("{data_dir}", data_dir) for a in cmd]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while True:
            if health_ok(port):
                return (time.perf_counter() - t0) * 1000.0
            if proc.poll() is not None:
                sys.exit(f"coldstart: server exited with {proc.returncode}: {argv}")
            if time.perf_counter() - t0 > TIMEOUT_S:
                sys.exit(f"coldstart: no 200 on /health within {TIMEOUT_S}s: {argv}")
            time.sleep(0.00005)
    finally:
        stop(proc)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--data-dir", choices=["existing", "fresh", "none"], default="none")
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    args = p.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        p.error("missing server command")

    root = tempfile.mkdtemp(prefix="runway-coldstart-")
    try:
        samples = []
        if args.data_dir == "existing":
            existing = os.path.join(root, "data")
            one_start(cmd, existing)  # untimed: creates the database and admin user
        for i in range(args.runs):
            if args.data_dir == "fresh":
                data_dir = os.path.join(root, f"fresh-{i}")
            elif args.data_dir == "existing":
                data_dir = existing
            else:
                data_dir = ""
            samples.append(one_start(cmd, data_dir))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(
        json.dumps(
            {
                "runs": len(samples),
                "median_ms": statistics.median(samples),
                "min_ms": min(samples),
                "max_ms": max(samples),
                "samples_ms": [round(s, 3) for s in samples],
            }
        )
    )


if __name__ == "__main__":
    main()
