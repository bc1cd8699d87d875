"""Benchmark: what the audit trail costs the bulk writes (the demo load, an incident import).

Two databases on the embedded cluster, both at the latest schema: one as shipped (every
table's statement-level audit triggers, :mod:`mapsvc.migrations.audit`), and a baseline
with the triggers removed (``detach_sql``), i.e. the service as it was before the trail.
Each run loads the demo (``--incidents``, default 100,000) and then imports ``--rows``
generated incidents (default 200,000) through ``import_csv``, alternating the two
databases so that other work on the machine hits both alike. Prints the medians, the
ratio audited / baseline, and how much ``audit_log`` grew per written row.

    .venv/bin/python bench/bench_audit.py                 # 100,000 + 200,000, 3 runs
    .venv/bin/python bench/bench_audit.py --quick         # 20,000 + 50,000, 1 run
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_incident_import import generate_csv

from mapsvc import demo
from mapsvc.config import PROJECT_ROOT, Settings
from mapsvc.db import (
    EmbeddedPostgres,
    create_database,
    drop_database,
    ensure_schema,
    make_engine,
)
from mapsvc.migrations.audit import detach_sql
from mapsvc.models import audited_tables

SEED = 20261124


def _database(pg: EmbeddedPostgres, name: str, audited: bool) -> sa.Engine:
    url = pg.admin_url(name)
    drop_database(url)
    create_database(url)
    engine = make_engine(url)
    ensure_schema(engine)
    if not audited:
        with engine.begin() as c:
            for table in audited_tables():
                for statement in detach_sql(table):
                    c.exec_driver_sql(statement)
    return engine


def _trail(engine: sa.Engine) -> tuple[int, int]:
    """(rows, bytes with indexes) of audit_log."""
    with engine.connect() as c:
        return (
            int(c.scalar(sa.text("SELECT count(*) FROM audit_log"))),
            int(c.scalar(sa.text("SELECT pg_total_relation_size('audit_log')"))),
        )


def _run(engine: sa.Engine, incidents: int, csv_path: Path) -> tuple[float, float]:
    from mapsvc.services.incident_import import import_csv

    t = time.perf_counter()
    demo.load_demo(
        engine,
        **demo.arguments_from_settings(Settings.from_environment(), seed=SEED, incidents=incidents),
    )
    load = time.perf_counter() - t
    t = time.perf_counter()
    with engine.begin() as conn:
        import_csv(conn, csv_path, crs="EPSG:4326")
    return load, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20,000 + 50,000 rows, one run")
    ap.add_argument("--incidents", type=int, default=None, help="demo incidents")
    ap.add_argument("--rows", type=int, default=None, help="imported incidents")
    ap.add_argument("--runs", type=int, default=None)
    args = ap.parse_args()
    n = args.incidents or (20_000 if args.quick else 100_000)
    rows = args.rows or (50_000 if args.quick else 200_000)
    runs = args.runs or (1 if args.quick else 3)

    pg = EmbeddedPostgres(PROJECT_ROOT / "var")
    pg.start(durable=False)
    engines = {
        "audited": _database(pg, "mapsvc_bench_audit_on", audited=True),
        "baseline": _database(pg, "mapsvc_bench_audit_off", audited=False),
    }
    times: dict[str, dict[str, list[float]]] = {k: {"load": [], "import": []} for k in engines}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "incidents.csv"
            demo.load_demo(
                engines["baseline"],
                **demo.arguments_from_settings(Settings.from_environment(), seed=SEED, incidents=0),
            )
            generate_csv(engines["baseline"], rows, path)
            for i in range(runs):
                order = list(engines) if i % 2 == 0 else list(reversed(engines))
                for name in order:
                    if name == "audited":
                        before = _trail(engines[name])[0]
                    load, imp = _run(engines[name], n, path)
                    times[name]["load"].append(load)
                    times[name]["import"].append(imp)
                    print(f"  run {i + 1} {name:8}: demo load {load:6.1f} s, import {imp:6.1f} s")
            written, size = _trail(engines["audited"])
            per_run = written - before
    finally:
        for e in engines.values():
            url = e.url
            e.dispose()
            drop_database(url)

    print()
    print(f"demo incidents {n:,}; imported incidents {rows:,}; runs {runs} (medians)")
    print(f"{'':14}{'audited':>10}{'baseline':>10}{'ratio':>8}")
    for what in ("load", "import"):
        a = statistics.median(times["audited"][what])
        b = statistics.median(times["baseline"][what])
        label = "demo load" if what == "load" else "import"
        print(f"{label:14}{a:>9.1f}s{b:>9.1f}s{a / b:>8.2f}")
    print(
        f"audit_log: {per_run:,} rows per run (demo + import); {written:,} rows in "
        f"{size / 1e6:,.0f} MB with indexes ({size / max(written, 1):,.0f} bytes per row)"
    )
    print(
        "load average (1/5/15 min) at the end: "
        + " ".join(f"{v:.1f}" for v in os.getloadavg())
        + f" on {os.cpu_count()} CPUs (other work on the machine inflates the times)"
    )


if __name__ == "__main__":
    main()
