"""Benchmark: ``load_demo`` with 100,000 incidents, and COPY against ORM inserts.

Target: the whole demo with 100,000 incidents loads in well under a
minute (we aim at 30 s). The baseline is the obvious way to write the incidents: SQLAlchemy
``session.execute(insert(Incident), rows)`` (executemany with insertmanyvalues), timed on
the very same rows as the demo's COPY, in the same database.

Runs against its own database ``mapsvc_bench_demo`` on the embedded cluster.

    .venv/bin/python bench/bench_demo_load.py            # 100,000 incidents, 3 runs
    .venv/bin/python bench/bench_demo_load.py --quick    # 20,000 incidents, 1 run
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import shapely
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mapsvc import demo
from mapsvc.config import PROJECT_ROOT, Settings
from mapsvc.db import (
    EmbeddedPostgres,
    create_database,
    drop_database,
    ensure_schema,
    make_engine,
)
from mapsvc.demo.incidents import COLUMNS
from mapsvc.demo.write import copy_rows

DB_NAME = "mapsvc_bench_demo"
SEED = 20261124
TARGET_S = 30.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20,000 incidents, one run")
    ap.add_argument("--incidents", type=int, default=None)
    ap.add_argument("--runs", type=int, default=None)
    args = ap.parse_args()
    n = args.incidents or (20_000 if args.quick else 100_000)
    runs = args.runs or (1 if args.quick else 3)

    pg = EmbeddedPostgres(PROJECT_ROOT / "var")
    pg.start(durable=False)
    url = pg.admin_url(DB_NAME)
    drop_database(url)
    create_database(url)
    engine = make_engine(url)
    ensure_schema(engine)
    try:
        loads = []
        for i in range(runs):
            t = time.perf_counter()
            summary = demo.load_demo(
                engine,
                **demo.arguments_from_settings(Settings.from_environment(), seed=SEED, incidents=n),
            )
            loads.append(time.perf_counter() - t)
            print(f"  load_demo run {i + 1}: {loads[-1]:.1f} s")
        print(demo.format_summary(summary))

        # the same incident rows, written by COPY (the demo's way) and by the ORM
        with engine.connect() as c:
            rows = [
                dict(r._mapping)
                for r in c.execute(
                    sa.text(
                        f"SELECT {', '.join(COLUMNS[:8])}, ST_AsEWKB(geom) AS geom_b, "
                        f"{', '.join(COLUMNS[9:])} FROM incident ORDER BY id"
                    )
                )
            ]
        for r in rows:
            r["geom"] = "SRID=4326;" + shapely.from_wkb(bytes(r.pop("geom_b"))).wkt
        copy_t, orm_t = [], []
        from mapsvc.models import Incident

        for _ in range(runs):
            with engine.begin() as c:
                c.execute(sa.text("TRUNCATE incident CASCADE"))
                t = time.perf_counter()
                copy_rows(c, "incident", COLUMNS, ([r[k] for k in COLUMNS] for r in rows))
                copy_t.append(time.perf_counter() - t)
            with engine.begin() as c:
                c.execute(sa.text("TRUNCATE incident CASCADE"))
                t = time.perf_counter()
                c.execute(sa.insert(Incident), rows)
                orm_t.append(time.perf_counter() - t)
        mc, mo = statistics.median(copy_t), statistics.median(orm_t)
        ml = statistics.median(loads)
        print()
        print(f"incidents: {n:,}; runs: {runs}")
        print(
            f"load_demo total       median {ml:6.1f} s   target < {TARGET_S:.0f} s   "
            f"{'OK' if ml < TARGET_S else 'MISSED'}"
        )
        print(f"incidents via COPY    median {mc:6.2f} s   ({n / mc:,.0f} rows/s)")
        print(f"incidents via ORM     median {mo:6.2f} s   ({n / mo:,.0f} rows/s)  [baseline]")
        print(f"COPY speed-up over the ORM baseline: {mo / mc:.1f}x")
    finally:
        engine.dispose()
        drop_database(url)


if __name__ == "__main__":
    main()
