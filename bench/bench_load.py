"""Benchmark: many clients at once on the production server, the development server beside it.

Target: 50 clients for 60 s on a mix of ``/``, ``/api/grids``, ``/api/segments``,
``/api/heatmap`` and ``/api/dashboard`` (each client asks for them in turn, starting at a
different one), 0 errors and p99 under 2 s on a shared 2-core machine.

Baseline, in the same script: the same load on Werkzeug's development server, which
``mapsvc serve`` ran before (``mapsvc serve --dev`` still does). ``--servers`` adds
waitress (one process, threads only), the other production server considered.

Each server is a real process (``mapsvc serve --no-demo``) on 127.0.0.1 and a free port,
on the full demo (seed 20261124, 100,000 incidents) in the benchmarks' database
``mapsvc_bench_page`` (shared with ``bench_page.py``, loaded once), one server at a time.
The clients are a bounded pool of threads in this process, each with its own keep-alive
connection; they accept gzip like a browser. Every URL is fetched by four connections at
once before the clock starts (so each worker process has answered it once). Latency is from sending the request to the last byte of the answer; an error is
anything but a 200 (or a connection failure). The load average is the 1-minute one at the
end of each run (it includes this process and PostgreSQL). The run stops by itself.

Every request carries ``Authorization: Bearer <token>``: a leader account's token made in
the bench database (``bench-load``), or ``--token`` / ``MAPSVC_BENCH_TOKEN``.

    .venv/bin/python bench/bench_load.py                        # 50 clients, 60 s each
    .venv/bin/python bench/bench_load.py --clients 10 --seconds 10
    .venv/bin/python bench/bench_load.py --servers gunicorn,waitress,dev
    MAPSVC_DASHBOARD_CACHE_SECONDS=0 .venv/bin/python bench/bench_load.py   # no cache
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

MIX = ["/", "/api/grids", "/api/segments", "/api/heatmap", "/api/dashboard"]
TARGET_P99_S = 2.0
HOST = "127.0.0.1"


@dataclass
class Result:
    server: str
    seconds: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    first_errors: list[str] = field(default_factory=list)
    load: float = 0.0

    @property
    def all(self) -> list[float]:
        return sorted(x for v in self.latencies.values() for x in v)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of sorted ``values``; nan when empty."""
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, round(p / 100 * len(values)) - 1))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_server(kind: str, url: str, port: int) -> subprocess.Popen:
    """``kind`` (gunicorn | dev | waitress) as its own process on ``port``."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(DATABASE_URL=url, MAPSVC_PORT=str(port), MAPSVC_HOST=HOST)
    serve = [sys.executable, "-m", "mapsvc.cli", "serve", "--no-demo"]
    if kind == "gunicorn":
        cmd = serve
    elif kind == "dev":
        cmd = [*serve, "--dev"]
    elif kind == "waitress":
        # the same number of threads as gunicorn's workers x threads, in one process
        cmd = [
            sys.executable,
            "-c",
            "from waitress import serve\n"
            "from mapsvc.config import Settings\n"
            "from mapsvc.app import create_app\n"
            "from mapsvc.web.server import preload\n"
            "s = Settings.from_environment()\n"
            "preload()\n"
            f"serve(create_app(), host={HOST!r}, port={port}, "
            "threads=s.server_workers * s.server_threads, _quiet=True)\n",
        ]
    else:
        raise SystemExit(f"unknown server {kind!r}: use gunicorn, dev or waitress")
    # the logs go to a file: a full pipe would stall the server (Werkzeug logs each request)
    log = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    proc.log = log
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise SystemExit(f"{kind} exited at start:\n{log.read()}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=2):
                return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"{kind} did not answer /healthz within 120 s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.log.close()


def _get(conn: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> int:
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    resp.read()
    return resp.status


def run_load(kind: str, port: int, clients: int, seconds: float, headers: dict[str, str]) -> Result:
    """``clients`` threads asking for :data:`MIX` in turn for ``seconds``."""
    result = Result(kind)
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def client(n: int) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=60)
        i = n
        start.wait()
        while time.monotonic() < stop_at[0]:
            path = MIX[i % len(MIX)]
            i += 1
            t = time.perf_counter()
            try:
                status = _get(conn, path, headers)
                problem = None if status == 200 else f"{path}: HTTP {status}"
            except (OSError, http.client.HTTPException) as exc:
                problem = f"{path}: {type(exc).__name__}: {exc}"
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=60)
            elapsed = time.perf_counter() - t
            with lock:
                if problem:
                    result.errors[path] += 1
                    if len(result.first_errors) < 5:
                        result.first_errors.append(problem)
                else:
                    result.latencies[path].append(elapsed)
        conn.close()

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    stop_at[0] = t0 + seconds
    start.wait()
    for t in threads:
        t.join()
    result.seconds = time.monotonic() - t0
    result.load = os.getloadavg()[0]
    return result


def warm_up(kind: str, port: int, headers: dict[str, str], connections: int = 4) -> None:
    """Each URL by a few connections at once, so that every worker process of the server
    has answered it (first requests, the dashboard's cache) before the clock starts."""

    problems: list[str] = []

    def fetch(path: str) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=300)
        try:
            status = _get(conn, path, headers)
            if status != 200:
                problems.append(f"{path} answered {status}")
        except (OSError, http.client.HTTPException) as exc:
            problems.append(f"{path}: {exc}")
        finally:
            conn.close()

    for path in MIX:
        threads = [threading.Thread(target=fetch, args=(path,)) for _ in range(connections)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if problems:
        raise SystemExit(f"{kind} before the load: {'; '.join(problems)}")


def bench(kind: str, url: str, clients: int, seconds: float, headers: dict[str, str]) -> Result:
    port = free_port()
    proc = start_server(kind, url, port)
    try:
        warm_up(kind, port, headers)
        return run_load(kind, port, clients, seconds, headers)
    finally:
        stop_server(proc)


def report(results: list[Result], clients: int) -> None:
    ms = 1000.0
    print(f"\n{clients} clients, mix {' '.join(MIX)}")
    print(
        f"{'server':10} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8} {'requests':>9} {'errors':>7} {'load':>5}"
    )
    for r in results:
        lat = r.all
        print(
            f"{r.server:10} {len(lat) / r.seconds:7.1f} {percentile(lat, 50) * ms:8.0f} "
            f"{percentile(lat, 95) * ms:8.0f} {percentile(lat, 99) * ms:8.0f} "
            f"{(lat[-1] if lat else float('nan')) * ms:8.0f} {len(lat):9d} "
            f"{r.error_count:7d} {r.load:5.1f}"
        )
    for r in results:
        print(f"\n{r.server}: per URL (p50 / p99 ms, requests)")
        for path in MIX:
            lat = sorted(r.latencies[path])
            print(
                f"  {path:16} {percentile(lat, 50) * ms:7.0f} / {percentile(lat, 99) * ms:7.0f}"
                f"  {len(lat):6d}" + (f"  errors {r.errors[path]}" if r.errors[path] else "")
            )
        for problem in r.first_errors:
            print(f"  error: {problem}")
    prod, base = results[0], results[-1]
    if len(results) > 1 and base.all:
        ratio = (len(prod.all) / prod.seconds) / (len(base.all) / base.seconds)
        p99 = percentile(base.all, 99) / percentile(prod.all, 99)
        print(
            f"\n{prod.server} vs {base.server}: {ratio:.1f}x the requests/s, p99 {p99:.1f}x lower"
        )
    ok = prod.error_count == 0 and percentile(prod.all, 99) < TARGET_P99_S
    print(
        f"target (0 errors, p99 < {TARGET_P99_S:g} s) on {prod.server}: "
        + ("met" if ok else "NOT met")
    )


def bench_token(url: str) -> str:
    """A leader's API token in the bench database (the account is made once), so the
    clients read what a leadership screen reads."""
    import secrets

    from mapsvc.core.errors import NotFound
    from mapsvc.db import make_engine, session_scope
    from mapsvc.services import accounts

    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            try:
                accounts.get_user(s, "bench-load")
            except NotFound:
                accounts.create_user(s, "bench-load", secrets.token_urlsafe(16), "leader")
            token, _row = accounts.create_token(s, "bench-load", "bench_load.py")
    finally:
        engine.dispose()
    return token


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument(
        "--servers",
        default="gunicorn,dev",
        help="comma-separated: gunicorn, waitress, dev (the first is the one with the target)",
    )
    ap.add_argument("--token", default=os.environ.get("MAPSVC_BENCH_TOKEN", ""))
    ap.add_argument("--reload", action="store_true", help="reload the demo first")
    args = ap.parse_args()

    from bench_page import database_url

    url = database_url(args.reload)
    headers = {"Accept-Encoding": "gzip"}
    headers["Authorization"] = f"Bearer {args.token or bench_token(url)}"
    workers = os.environ.get("MAPSVC_SERVER_WORKERS", "default")
    threads = os.environ.get("MAPSVC_SERVER_THREADS", "default")
    print(f"server workers x threads: {workers} x {threads}; {os.cpu_count()} cores")
    results = []
    for kind in args.servers.split(","):
        print(f"== {kind}: {args.clients} clients for {args.seconds:g} s", flush=True)
        results.append(bench(kind.strip(), url, args.clients, args.seconds, headers))
    report(results, args.clients)


if __name__ == "__main__":
    main()
