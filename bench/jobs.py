#!/usr/bin/env python3
"""Seeds and counts Runway jobs for `bench/run.sh`; standard library only.

    jobs.py seed  ADDR TOKEN N [--deadline SECONDS]   create N jobs
    jobs.py count ADDR TOKEN                          count every job

`seed` posts `{"name":"bench","script":"echo hi"}` to `POST /api/v1/jobs` from 4
threads, each on its own keep-alive connection, and stops with an error at the first
non-201 answer or when the deadline (default 300 s) passes, so it is bounded in time.
`count` walks `GET /api/v1/jobs?limit=100` through `next_cursor` to the end and
prints the number of jobs, so the benchmark can check it listed over what it claims.
"""

import http.client
import json
import sys
import threading
import time
import urllib.parse

BODY = json.dumps({"name": "bench", "script": "echo hi"})
THREADS = 4


def connect(addr: str) -> http.client.HTTPConnection:
    host, port = addr.rsplit(":", 1)
    return http.client.HTTPConnection(host, int(port), timeout=30)


def seed(addr: str, token: str, n: int, deadline_s: float) -> None:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    stop_at = time.monotonic() + deadline_s
    errors: list[str] = []
    shares = [n // THREADS + (1 if i < n % THREADS else 0) for i in range(THREADS)]

    def worker(count: int) -> None:
        conn = connect(addr)
        for _ in range(count):
            if errors:
                return
            if time.monotonic() > stop_at:
                errors.append(f"deadline of {deadline_s}s passed")
                return
            conn.request("POST", "/api/v1/jobs", BODY, headers)
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 201:
                errors.append(f"POST /api/v1/jobs -> {resp.status}: {body[:300]!r}")
                return
        conn.close()

    threads = [threading.Thread(target=worker, args=(c,)) for c in shares]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit(f"jobs.py seed: {errors[0]}")


def count(addr: str, token: str) -> int:
    conn = connect(addr)
    headers = {"Authorization": f"Bearer {token}"}
    total, cursor = 0, None
    while True:
        path = "/api/v1/jobs?limit=100"
        if cursor:
            path += "&cursor=" + urllib.parse.quote(cursor, safe="")
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            sys.exit(f"jobs.py count: GET {path} -> {resp.status}: {body[:300]!r}")
        page = json.loads(body)
        total += len(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            return total


def main() -> None:
    if len(sys.argv) >= 5 and sys.argv[1] == "seed":
        deadline = 300.0
        if len(sys.argv) == 7 and sys.argv[5] == "--deadline":
            deadline = float(sys.argv[6])
        seed(sys.argv[2], sys.argv[3], int(sys.argv[4]), deadline)
    elif len(sys.argv) == 4 and sys.argv[1] == "count":
        print(count(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
