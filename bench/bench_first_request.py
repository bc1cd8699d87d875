"""Benchmark: the first request to each page after ``mapsvc serve`` restarts, and warm.

Targets: every page at most 2 s on its first request after a restart and at most 1 s warm
(median), with the full demo loaded (``mapsvc_bench_page``, shared with ``bench_page.py``).
What is slow to compute is kept in the database (a week's patrol coverage in
``patrol_coverage``), so a restart does not compute it again.

Baseline, in the same run: the first requests after a restart with nothing kept in the
database (``patrol_coverage`` emptied first: every restart computed everything before),
and each page warm. Each round is the real production server (``mapsvc serve --no-demo``,
gunicorn) in its own process; pages are asked for one after another, as one user would.

    .venv/bin/python bench/bench_first_request.py
    .venv/bin/python bench/bench_first_request.py --warm 9
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_load import bench_token, free_port, start_server, stop_server  # noqa: E402
from bench_page import database_url  # noqa: E402

PAGES = ["/patrol", "/density", "/dashboard", "/"]
TARGET_FIRST_S = 2.0
TARGET_WARM_S = 1.0


def get(port: int, path: str, token: str) -> float:
    """Seconds for ``path`` (the whole body read); an error status stops the benchmark."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=300) as r:
        r.read()
        if r.status != 200:
            raise SystemExit(f"{path}: HTTP {r.status}")
    return time.perf_counter() - t


def one_round(url: str, token: str, warm: int) -> dict[str, tuple[float, float]]:
    """Restart the server; each page's first time and warm median (seconds)."""
    port = free_port()
    proc = start_server("gunicorn", url, port)
    try:
        first = {p: get(port, p, token) for p in PAGES}
        warm_times = {p: statistics.median(get(port, p, token) for _ in range(warm)) for p in PAGES}
    finally:
        stop_server(proc)
    return {p: (first[p], warm_times[p]) for p in PAGES}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--warm", type=int, default=5, help="warm requests per page")
    args = ap.parse_args()
    url = database_url(False)
    token = bench_token(url)
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.execute(sa.text("TRUNCATE patrol_coverage"))
    engine.dispose()
    nothing_kept = one_round(url, token, args.warm)
    kept = one_round(url, token, args.warm)

    print(f"\n{'page':12}{'first, nothing kept':>22}{'first, kept':>13}{'warm median':>13}")
    for p in PAGES:
        print(f"{p:12}{nothing_kept[p][0]:>21.2f}s{kept[p][0]:>12.2f}s{kept[p][1]:>12.2f}s")
    worst_first = max(v[0] for v in kept.values())
    worst_warm = max(v[1] for v in kept.values())
    print(
        f"\ntarget: every page's first request after a restart <= {TARGET_FIRST_S:.0f} s -> "
        f"slowest {worst_first:.2f} s ({'MET' if worst_first <= TARGET_FIRST_S else 'NOT MET'})"
        f"; baseline with nothing kept: slowest {max(v[0] for v in nothing_kept.values()):.2f} s"
    )
    print(
        f"target: every page warm <= {TARGET_WARM_S:.0f} s -> slowest {worst_warm:.2f} s "
        f"({'MET' if worst_warm <= TARGET_WARM_S else 'NOT MET'})"
    )
    print(
        "load average (1/5/15 min) at the end: "
        + " ".join(f"{v:.1f}" for v in os.getloadavg())
        + f" on {os.cpu_count()} CPUs"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
