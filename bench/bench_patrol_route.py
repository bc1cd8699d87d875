"""Benchmark: ``mapsvc patrol route`` for one chief holding a whole city network, wall time.

Target: at most 3 s wall for the command (a new process: imports, the street graph, the
solve, the output), still exact, for one chief holding the largest connected piece of
the Shenzhen Nanshan network (../shared/data/osm/shenzhen-nanshan.osm.pbf, © OpenStreetMap
contributors). The solve alone (:func:`mapsvc.services.patrol_routes.solve` on a prebuilt
graph, as ``bench_postman.py`` times it) is printed beside it as the same-run baseline, with
the route length of both (they must be equal).

Runs against its own database ``mapsvc_bench_route`` on the embedded cluster (the network
is imported and the chief assigned once).

    .venv/bin/python bench/bench_patrol_route.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mapsvc.config import PROJECT_ROOT  # noqa: E402
from mapsvc.db import (  # noqa: E402
    EmbeddedPostgres,
    create_database,
    ensure_schema,
    make_engine,
    session_scope,
)

SHENZHEN = PROJECT_ROOT.parent / "shared" / "data" / "osm" / "shenzhen-nanshan.osm.pbf"
DB_NAME = "mapsvc_bench_route"
CHIEF_CODE = "bench-whole-network"
TARGET_S = 3.0


def setup() -> tuple[sa.Engine, int]:
    """The database with the network and the chief holding its largest piece: (engine, id)."""
    pg = EmbeddedPostgres(PROJECT_ROOT / "var")
    pg.start(durable=False)
    url = pg.admin_url(DB_NAME)
    create_database(url)
    engine = make_engine(url)
    ensure_schema(engine)
    with session_scope(engine) as s:
        chief = s.scalar(sa.text("SELECT id FROM staff WHERE code = :c"), {"c": CHIEF_CODE})
    if chief is not None:
        return engine, int(chief)
    from scipy.sparse.csgraph import connected_components

    from mapsvc.models import Staff
    from mapsvc.services import streets
    from mapsvc.services.assignments import assign
    from mapsvc.services.patrol_routes import StreetGraph

    with session_scope(engine) as s:
        if not s.scalar(sa.text("SELECT count(*) FROM alley_segment")):
            streets.import_osm(s, SHENZHEN)
    with session_scope(engine) as s:
        g = StreetGraph.load(s)
        _n, lab = connected_components(g.csr(), directed=False)
        big = np.bincount(lab).argmax()
        st = Staff(name="全网巷长", role="alley_chief", code=CHIEF_CODE)
        s.add(st)
        s.flush()
        day = dt.date.today() - dt.timedelta(days=1)
        for e in range(len(g.u)):
            if lab[g.u[e]] == big:
                assign(s, st.id, "alley_chief", segment_id=int(g.seg_ids[e]), valid_from=day)
        return engine, int(st.id)


def run_cli(engine: sa.Engine, chief: int) -> tuple[float, str]:
    """Wall seconds of ``mapsvc patrol route --chief`` in a new process, and its output."""
    env = {**os.environ, "DATABASE_URL": engine.url.render_as_string(hide_password=False)}
    t = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "mapsvc.cli", "patrol", "route", "--chief", str(chief)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - t, out.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    engine, chief = setup()
    from mapsvc.services import patrol_routes

    with session_scope(engine) as s:
        graph = patrol_routes.StreetGraph.load(s)
        graph.matcher()
        segs = patrol_routes.chief_segments(s, chief, None)
        solves = [patrol_routes.solve(graph, segs) for _ in range(args.repeat)]
    solve_s = statistics.median(r.seconds for r in solves)
    runs = [run_cli(engine, chief) for _ in range(args.repeat)]
    wall = statistics.median(r[0] for r in runs)
    m = re.search(r"route (\d+) m", runs[0][1])
    cli_m = float(m.group(1)) if m else float("nan")
    print(runs[0][1].strip())
    print(f"\n{len(segs)} segments held by one chief")
    print(f"{'':34}{'median s':>10}{'route m':>12}")
    print(f"{'mapsvc patrol route (wall)':34}{wall:>10.2f}{cli_m:>12.0f}")
    print(f"{'solve alone, prebuilt graph':34}{solve_s:>10.2f}{solves[0].total_m:>12.0f}")
    print(f"{'  (its first run)':34}{solves[0].seconds:>10.2f}")
    exact = abs(cli_m - round(solves[0].total_m)) <= 1
    print(
        f"\ntarget: wall <= {TARGET_S:.0f} s -> {wall:.2f} s "
        f"({'MET' if wall <= TARGET_S else 'NOT MET'}); same route length as the solve: "
        f"{'yes' if exact else 'NO'}; {wall - solve_s:.2f} s outside the solve"
    )
    print(
        "load average (1/5/15 min) at the end: "
        + " ".join(f"{v:.1f}" for v in os.getloadavg())
        + f" on {os.cpu_count()} CPUs"
    )
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
