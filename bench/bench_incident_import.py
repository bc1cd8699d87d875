"""Benchmark: bulk import of generated incidents, routing included, vs a geopandas baseline.

Target: at least 100,000 rows/s end to end for 1,000,000 incidents, routing to
grid, community, nearest alley segment (within 30 m), chief and grid head included.

Baseline on the same file: ``pandas.read_csv`` + ``geopandas.sjoin`` (points within grids)
+ ``GeoDataFrame.to_postgis`` - which does *less* work (grid only: no segment, no chief,
no boundary flag, no checks).

Runs against its own database ``mapsvc_bench_incident_import`` on the embedded cluster,
loaded with the demo district (``load_demo(engine, seed=20261124, incidents=0)``).

    .venv/bin/python bench/bench_incident_import.py            # 1,000,000 rows
    .venv/bin/python bench/bench_incident_import.py --rows 200000
    .venv/bin/python bench/bench_incident_import.py --quick    # 100,000 rows
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mapsvc.config import PROJECT_ROOT, Settings
from mapsvc.db import EmbeddedPostgres, create_database, drop_database, ensure_schema, make_engine

TARGET_ROWS_PER_S = 100_000
DB_NAME = "mapsvc_bench_incident_import"
SEED = 20261124


def setup_database(fresh: bool) -> sa.Engine:
    """The benchmark database with the demo district (grids, segments, chiefs), no incidents."""
    pg = EmbeddedPostgres(PROJECT_ROOT / "var")
    pg.start(durable=False)
    url = pg.admin_url(DB_NAME)
    if fresh:
        drop_database(url)
    created = create_database(url)
    engine = make_engine(url)
    ensure_schema(engine)
    with engine.connect() as c:
        has_grids = c.scalar(sa.text("SELECT count(*) FROM grid"))
    if created or not has_grids:
        from mapsvc.demo import arguments_from_settings, load_demo

        t = time.perf_counter()
        load_demo(
            engine, **arguments_from_settings(Settings.from_environment(), seed=SEED, incidents=0)
        )
        print(f"demo district loaded in {time.perf_counter() - t:.1f} s")
    return engine


def generate_csv(engine: sa.Engine, rows: int, path: Path) -> None:
    """``rows`` incidents clustered in hotspots inside the district (all valid)."""
    import pandas as pd
    import shapely

    rng = np.random.default_rng(SEED)
    with engine.connect() as c:
        district = shapely.from_wkb(
            c.scalar(sa.text("SELECT ST_AsBinary(ST_Union(geom)) FROM grid"))
        )
        cats = list(c.scalars(sa.text("SELECT code FROM incident_category ORDER BY code")))
    if not cats:
        raise SystemExit("no incident categories in the demo database")
    minx, miny, maxx, maxy = district.bounds
    shapely.prepare(district)
    hot = np.column_stack([rng.uniform(minx, maxx, 40), rng.uniform(miny, maxy, 40)])
    xs, ys = [], []
    need = rows
    while need > 0:
        k = int(need * 1.6) + 1000
        spread = rng.random(k) < 0.6
        centre = hot[rng.integers(0, len(hot), k)]
        x = np.where(spread, centre[:, 0] + rng.normal(0, 0.004, k), rng.uniform(minx, maxx, k))
        y = np.where(spread, centre[:, 1] + rng.normal(0, 0.004, k), rng.uniform(miny, maxy, k))
        ok = shapely.contains_xy(district, x, y)
        xs.append(x[ok][:need])
        ys.append(y[ok][:need])
        need -= len(xs[-1])
    lon, lat = np.concatenate(xs), np.concatenate(ys)
    now = pd.Timestamp.now(tz="UTC").floor("s")
    opened = now - pd.to_timedelta(rng.uniform(1, 365 * 86400, rows), unit="s")
    closed_mask = rng.random(rows) < 0.7
    closed = opened + pd.to_timedelta(rng.exponential(40 * 3600, rows), unit="s")
    closed = closed.where(closed_mask & (closed < now))
    df = pd.DataFrame(
        {
            "id": [f"B{i:07d}" for i in range(rows)],
            "lat": np.round(lat, 7),
            "lon": np.round(lon, 7),
            "category": np.array(cats)[rng.integers(0, len(cats), rows)],
            "opened": opened.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
            "closed": pd.Series(closed).dt.strftime("%Y-%m-%dT%H:%M:%S+00:00").fillna(""),
        }
    )
    df["status"] = np.where(df["closed"] != "", "closed", "in_hand")
    df.to_csv(path, index=False)


def run_ours(engine: sa.Engine, path: Path) -> tuple[float, dict]:
    from mapsvc.services.incident_import import import_csv

    with engine.begin() as c:
        c.execute(sa.text("TRUNCATE incident, incident_event RESTART IDENTITY CASCADE"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(sa.text("VACUUM ANALYZE incident"))
    t = time.perf_counter()
    with engine.begin() as conn:
        result = import_csv(conn, path, crs="EPSG:4326")
    wall = time.perf_counter() - t
    return wall, {
        "imported": result.imported,
        **result.seconds,
        "to_confirm": result.to_confirm,
        "on_segment": result.routed_to_segment,
    }


def run_baseline(engine: sa.Engine, path: Path) -> float:
    import geopandas as gpd
    import pandas as pd

    grids = gpd.read_postgis(
        "SELECT id AS grid_id, community_id, geom FROM grid", engine, geom_col="geom"
    )
    with engine.begin() as c:
        c.execute(sa.text("DROP TABLE IF EXISTS baseline_incident"))
    t = time.perf_counter()
    df = pd.read_csv(path)
    pts = gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(df["lon"], df["lat"]), crs=4326)
    joined = gpd.sjoin(pts, grids, how="left", predicate="within").drop(columns="index_right")
    joined.to_postgis(
        "baseline_incident", engine, if_exists="replace", index=False, chunksize=50_000
    )
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--quick", action="store_true", help="100,000 rows, one repeat")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each side (median)")
    ap.add_argument("--fresh", action="store_true", help="recreate the database")
    ap.add_argument("--no-baseline", action="store_true")
    args = ap.parse_args()
    rows = 100_000 if args.quick else args.rows
    engine = setup_database(args.fresh)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "incidents.csv"
        t = time.perf_counter()
        generate_csv(engine, rows, path)
        print(
            f"generated {rows:,} incidents ({path.stat().st_size / 1e6:.0f} MB) "
            f"in {time.perf_counter() - t:.1f} s"
        )
        walls, details = [], {}
        reps = 1 if args.quick else args.repeat
        for _ in range(max(1, reps)):
            wall, details = run_ours(engine, path)
            walls.append(wall)
        ours = statistics.median(walls)
        base = (
            None
            if args.no_baseline
            else statistics.median(run_baseline(engine, path) for _ in range(max(1, reps)))
        )
    ours_rate = rows / ours
    print()
    print(f"{'':34}{'seconds':>10}{'rows/s':>12}")
    print(
        f"{'mapsvc import (routing incl.)':34}{ours:>10.1f}{ours_rate:>12,.0f}"
        f"   (median of {len(walls)})"
    )
    if base is not None:
        print(
            f"{'geopandas read+sjoin+to_postgis':34}{base:>10.1f}{rows / base:>12,.0f}"
            f"   (median of {len(walls)}; grid only, no checks, no indexes)"
        )
        print(f"ratio mapsvc / geopandas rows/s: {base / ours:.2f}x")
    print(
        f"target: >= {TARGET_ROWS_PER_S:,} rows/s  ->  "
        f"{'MET' if ours_rate >= TARGET_ROWS_PER_S else 'NOT MET'}"
    )
    print(
        "stages (s): "
        + ", ".join(f"{k} {v:.1f}" for k, v in details.items() if isinstance(v, float))
    )
    print(
        f"imported {details['imported']:,}; on a segment {details['on_segment']:,}; "
        f"location to confirm {details['to_confirm']:,}"
    )
    print(
        "load average (1/5/15 min) at the end: "
        + " ".join(f"{v:.1f}" for v in os.getloadavg())
        + f" on {os.cpu_count()} CPUs (other work on the machine inflates the times)"
    )
    engine.dispose()


if __name__ == "__main__":
    main()
