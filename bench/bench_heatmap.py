"""Benchmark: district-wide incident heatmap over 1,000,000 incidents.

Targets: median response of ``/api/heatmap`` for a district-wide view at most 50 ms
for every filter combination the page offers (answers are kept while the database is
unchanged, :mod:`mapsvc.services.result_cache`; each view is also timed "fresh", right
after a write, when it is binned again: at most 300 ms), and at most 200 KB; the bare
aggregate SQL of the same view is timed as the baseline in the same run; next to folium's ``HeatMap`` fed the raw points (its HTML size
and build time: fetching the points, building the layer and rendering the page). The same
views are measured with hexagon bins (``bins=hex``: ST_HexagonGrid cell indices and
counts, the page builds the outlines; gzipped when the client accepts it; the JSON size
and the size on the wire are both printed).

Runs against its own database ``mapsvc_bench_heatmap`` on the embedded cluster: the demo
district (``load_demo(engine, seed=20261124, incidents=0)``) plus generated incidents
imported through the real bulk import. The server is the real app on a local HTTP port.

    .venv/bin/python bench/bench_heatmap.py              # 1,000,000 incidents
    .venv/bin/python bench/bench_heatmap.py --quick      # 100,000 incidents

``--quick`` replaces the database's incidents with 100,000 (and a later full run imports a
million again, which takes minutes): to time a database that already holds a million,
run without it.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from werkzeug.serving import BaseWSGIServer

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_incident_import import generate_csv  # noqa: E402

from mapsvc.config import PROJECT_ROOT, Settings  # noqa: E402
from mapsvc.db import (  # noqa: E402
    EmbeddedPostgres,
    create_database,
    drop_database,
    ensure_schema,
    make_engine,
)

DB_NAME = "mapsvc_bench_heatmap"
SEED = 20261124
TARGET_MS = 50.0
#: a view binned afresh (the first request after a write)
TARGET_FRESH_MS = 300.0
TARGET_KB = 200.0
VIEWPORT = (1280, 870)


def setup(rows: int, fresh: bool) -> sa.Engine:
    pg = EmbeddedPostgres(PROJECT_ROOT / "var")
    pg.start(durable=False)
    url = pg.admin_url(DB_NAME)
    if fresh:
        drop_database(url)
    create_database(url)
    engine = make_engine(url)
    ensure_schema(engine)
    with engine.connect() as c:
        grids = c.scalar(sa.text("SELECT count(*) FROM grid"))
        have = c.scalar(sa.text("SELECT count(*) FROM incident"))
    if not grids:
        from mapsvc.demo import arguments_from_settings, load_demo

        load_demo(
            engine, **arguments_from_settings(Settings.from_environment(), seed=SEED, incidents=0)
        )
    if have != rows:
        from mapsvc.services.incident_import import import_csv

        with engine.begin() as c:
            c.execute(sa.text("TRUNCATE incident, incident_event RESTART IDENTITY CASCADE"))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "incidents.csv"
            generate_csv(engine, rows, path)
            t = time.perf_counter()
            with engine.begin() as c:
                import_csv(c, path)
            print(f"imported {rows:,} incidents in {time.perf_counter() - t:.1f} s")
    # as autovacuum would after a bulk load: statistics, and the visibility map that lets
    # the heatmap read its index alone
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(sa.text("VACUUM ANALYZE incident"))
    return engine


def district_view(engine: sa.Engine) -> tuple[tuple[float, float, float, float], int]:
    """The district's bbox and the zoom at which it fills the viewport (as Leaflet fits)."""
    from sqlalchemy.orm import Session

    from mapsvc.services.areas import district_extent

    with Session(engine) as s:
        extent = district_extent(s, or_incidents=False)
    assert extent is not None, "the benchmark loads the demo district first"
    x0, y0, x1, y1 = extent
    from layers.heatmap import MERC_PX0, to_mercator

    mx0, my0 = to_mercator(x0, y0)
    mx1, my1 = to_mercator(x1, y1)
    z = min(
        math.log2(MERC_PX0 * VIEWPORT[0] / (mx1 - mx0)),
        math.log2(MERC_PX0 * VIEWPORT[1] / (my1 - my0)),
    )
    return (x0, y0, x1, y1), int(math.floor(z))


#: the API token the timed requests send (the heatmap API needs a login)
TOKEN = ""


def bench_token(engine: sa.Engine) -> str:
    """A token of a ``bench`` reader account (made on first use), for the timed requests."""
    from mapsvc.db import session_scope
    from mapsvc.services import accounts

    with session_scope(engine) as s:
        if not s.scalar(sa.text("SELECT 1 FROM app_user WHERE username = 'bench'")):
            accounts.create_user(s, "bench", None, "leader")
        return accounts.create_token(s, "bench", "bench_heatmap")[0]


def serve(engine: sa.Engine) -> tuple[BaseWSGIServer, str]:
    """The real app on a free localhost port, in a thread: (server, base URL)."""
    import logging

    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    from mapsvc import create_app

    app = create_app({"DATABASE_URL": engine.url.render_as_string(hide_password=False)})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    global TOKEN
    TOKEN = bench_token(engine)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


def time_requests(url: str, repeat: int) -> tuple[list[float], int, dict, int]:
    """Times (ms), JSON size, the answer and the size on the wire (gzip where served)."""
    import requests

    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {TOKEN}"
    s.get(url, timeout=60)  # warm-up: connection pool, plan cache, page cache
    times, size, body, wire = [], 0, {}, 0
    for _ in range(repeat):
        t = time.perf_counter()
        r = s.get(url, timeout=60)  # requests asks for gzip, as browsers do
        times.append((time.perf_counter() - t) * 1000)
        r.raise_for_status()
        size, body = len(r.content), r.json()
        wire = int(r.headers.get("Content-Length") or size)
    return times, size, body, wire


def time_fresh(engine: sa.Engine, url: str, repeat: int) -> list[float]:
    """Times (ms) of ``url`` right after a write: each request bins the view again."""
    import requests

    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {TOKEN}"
    times = []
    for _ in range(repeat):
        with engine.begin() as c:  # any committed write: an intake, a transition...
            c.execute(sa.text("UPDATE incident SET description = description WHERE id = 1"))
        t = time.perf_counter()
        s.get(url, timeout=60).raise_for_status()
        times.append((time.perf_counter() - t) * 1000)
    return times


def bare_sql(engine: sa.Engine, bbox: tuple, zoom: int, repeat: int) -> list[float]:
    """Times (ms) of the bare aggregate SQL of the district view (square cells, no filter)."""
    from layers.heatmap import cell_size, to_mercator

    c = cell_size(zoom)
    (x0, y0), (x1, y1) = to_mercator(bbox[0], bbox[1]), to_mercator(bbox[2], bbox[3])
    sql = sa.text(
        f"SELECT floor(x_m / {c!r}), floor(y_m / {c!r}), count(*) FROM incident "
        f"WHERE x_m BETWEEN {x0!r} AND {x1!r} AND y_m BETWEEN {y0!r} AND {y1!r} GROUP BY 1, 2"
    )
    times = []
    with engine.connect() as conn:
        conn.execute(sql).all()
        for _ in range(repeat):
            t = time.perf_counter()
            conn.execute(sql).all()
            times.append((time.perf_counter() - t) * 1000)
    return times


def folium_baseline(engine: sa.Engine) -> tuple[float, int]:
    """folium HeatMap with every raw point: fetch, build, render to HTML."""
    import folium
    from folium.plugins import HeatMap

    t = time.perf_counter()
    with engine.connect() as c:
        pts = c.execute(sa.text("SELECT ST_Y(geom), ST_X(geom) FROM incident")).all()
    m = folium.Map(location=[24.91, 118.58], zoom_start=13, tiles=None)
    HeatMap([[a, b] for a, b in pts], radius=8).add_to(m)
    html = m.get_root().render()
    return time.perf_counter() - t, len(html.encode())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--quick", action="store_true", help="100,000 incidents")
    ap.add_argument("--repeat", type=int, default=21)
    ap.add_argument("--fresh", action="store_true", help="recreate the database")
    ap.add_argument("--fresh-repeat", type=int, default=5, help="timed requests after a write")
    args = ap.parse_args()
    rows = 100_000 if args.quick else args.rows
    engine = setup(rows, args.fresh)
    bbox, zoom = district_view(engine)
    server, base = serve(engine)
    try:
        b = ",".join(f"{v:.6f}" for v in bbox)
        views = {
            "district, all incidents": f"{base}/api/heatmap?bbox={b}&zoom={zoom}",
            "district, open, one class": f"{base}/api/heatmap?bbox={b}&zoom={zoom}"
            "&state=open&severity=minor",
            "district, last 90 days": f"{base}/api/heatmap?bbox={b}&zoom={zoom}"
            "&date_from=" + time.strftime("%Y-%m-%d", time.gmtime(time.time() - 90 * 86400)),
            "district, one zoom closer": f"{base}/api/heatmap?bbox={b}&zoom={zoom + 1}",
        }
        with engine.connect() as c:
            community = c.scalar(sa.text("SELECT min(community_id) FROM incident"))
            chief = c.scalar(sa.text("SELECT min(chief_id) FROM incident"))
            category = c.scalar(sa.text("SELECT min(category) FROM incident"))
        views["district, one community, category"] = (
            f"{base}/api/heatmap?bbox={b}&zoom={zoom}&community={community}&category={category}"
        )
        if chief is not None:
            views["district, one chief"] = f"{base}/api/heatmap?bbox={b}&zoom={zoom}&chief={chief}"
        # the same views in hexagons (cell indices and counts, gzipped on the wire)
        views.update({f"{k} (hex)": f"{v}&bins=hex" for k, v in list(views.items())})
        results = {name: time_requests(url, args.repeat) for name, url in views.items()}
        fresh = {name: time_fresh(engine, url, args.fresh_repeat) for name, url in views.items()}
    finally:
        server.shutdown()
    sql_ms = statistics.median(bare_sql(engine, bbox, zoom, args.repeat))
    base_s, base_bytes = folium_baseline(engine)

    print(f"\n{rows:,} incidents; district view at zoom {zoom} ({VIEWPORT[0]}x{VIEWPORT[1]} px)")
    print(
        f"{'':40}{'median ms':>10}{'p90 ms':>9}{'fresh ms':>9}{'KB':>9}{'wire KB':>9}"
        f"{'cells':>7}{'incidents':>11}{'scale':>7}{'max':>7}"
    )
    for name, (times, size, body, wire) in results.items():
        p90 = sorted(times)[int(0.9 * (len(times) - 1))]
        cells = len(body.get("points") or body.get("cells") or [])
        print(
            f"{name:40}{statistics.median(times):>10.1f}{p90:>9.1f}"
            f"{statistics.median(fresh[name]):>9.1f}{size / 1024:>9.1f}"
            f"{wire / 1024:>9.1f}{cells:>7}{body['total']:>11,}{body['scale_max']:>7}"
            f"{body['max']:>7}"
        )
    print(f"{'bare aggregate SQL, district, all':40}{sql_ms:>10.1f}   (baseline, same run)")
    worst = max(statistics.median(t[0]) for t in results.values())
    worst_fresh = max(statistics.median(t) for t in fresh.values())
    print(
        f"\ntarget: every view's median <= {TARGET_MS:.0f} ms -> slowest {worst:.1f} ms "
        f"({'MET' if worst <= TARGET_MS else 'NOT MET'}); "
        f"{sql_ms / worst:.1f}x the bare aggregate SQL ({sql_ms:.1f} ms)"
    )
    print(
        f"target: binned afresh after a write <= {TARGET_FRESH_MS:.0f} ms -> slowest "
        f"{worst_fresh:.1f} ms ({'MET' if worst_fresh <= TARGET_FRESH_MS else 'NOT MET'})"
    )
    times, size, _, _ = results["district, all incidents"]
    med = statistics.median(times)
    htimes, hsize, _, hwire = results["district, all incidents (hex)"]
    hmed = statistics.median(htimes)
    print(
        f"{'folium HeatMap, raw points':40}{base_s * 1000:>10.1f}{'':>9}{base_bytes / 1024:>9.1f}"
        f"{'':>9}{'':>7}{rows:>11,}   (build + render, once)"
    )
    print(
        f"district view, all incidents: median {med:.1f} ms "
        f"({'MET' if med <= TARGET_MS else 'NOT MET'}); size <= {TARGET_KB:.0f} KB -> "
        f"{size / 1024:.1f} KB ({'MET' if size / 1024 <= TARGET_KB else 'NOT MET'})"
    )
    print(
        f"hexagons: median {hmed:.1f} ms "
        f"({'MET' if hmed <= TARGET_MS else 'NOT MET'}); {hsize / 1024:.1f} KB of JSON, "
        f"{hwire / 1024:.1f} KB on the wire "
        f"({'MET' if hwire / 1024 <= TARGET_KB else 'NOT MET'} on the wire, "
        f"{'MET' if hsize / 1024 <= TARGET_KB else 'NOT MET'} uncompressed)"
    )
    print(
        f"ratios vs folium HeatMap with raw points: time {base_s * 1000 / med:.0f}x faster, "
        f"size {base_bytes / size:.0f}x smaller"
    )
    print(
        "load average (1/5/15 min) at the end: "
        + " ".join(f"{v:.1f}" for v in os.getloadavg())
        + f" on {os.cpu_count()} CPUs (other work on the machine inflates the times)"
    )
    engine.dispose()


if __name__ == "__main__":
    main()
