"""Benchmark: weight of the ``/patrol?chief=`` and ``/`` pages, segments from tiles vs embedded.

Target: ``/patrol?chief=`` of one chief on the demo's full street network weighs at most
1 MB (HTML as sent; the tiles it then fetches are counted separately, as are the
shared, cacheable scripts).

Baseline, in the same script and app: the same pages drawn as before, with every assigned
segment's line embedded as GeoJSON (the layers' GeoJSON path, the one pages on a GCJ-02
base map still take). Each page is requested through the app (Flask test client, admin
Bearer token) on the benchmark's own database ``mapsvc_bench_patrol_page`` on the embedded
cluster; sizes are of the body as sent and gzip-compressed (level 6, as a proxy would).
For the tiled page the script also fetches the segment tiles that cover the chief's route
at the zoom the page opens on and adds their gzip size.

    .venv/bin/python bench/bench_patrol_page.py
    .venv/bin/python bench/bench_patrol_page.py --reload   # reload the demo first
"""

from __future__ import annotations

import argparse
import gzip
import math
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DB_NAME = "mapsvc_bench_patrol_page"
SEED = 20261124
INCIDENTS = 2_000
TARGET_BYTES = 1024 * 1024


def database_url(reload: bool) -> str:
    """Create ``mapsvc_bench_patrol_page`` with the demo (once; again with ``--reload``)."""
    import sqlalchemy as sa

    from mapsvc.config import PROJECT_ROOT, Settings
    from mapsvc.db import EmbeddedPostgres, create_database, ensure_schema, make_engine

    pg = EmbeddedPostgres(PROJECT_ROOT / "var")
    pg.start(durable=False)
    url = pg.admin_url(DB_NAME)
    create_database(url)
    engine = make_engine(url)
    ensure_schema(engine)
    with engine.connect() as c:
        loaded = c.scalar(sa.text("SELECT count(*) FROM alley_segment"))
    if reload or not loaded:
        from mapsvc.commands.common import progress
        from mapsvc.demo import arguments_from_settings, load_demo

        t = time.perf_counter()
        arguments = arguments_from_settings(
            Settings.from_environment(), seed=SEED, incidents=INCIDENTS
        )
        load_demo(engine, **arguments, progress=progress)
        print(f"demo loaded in {time.perf_counter() - t:.1f} s")
    engine.dispose()
    return url.render_as_string(hide_password=False)


def tile_xy(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The Web Mercator tile holding ``lon, lat`` at zoom ``z``."""
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reload", action="store_true", help="reload the demo first")
    args = ap.parse_args()

    import sqlalchemy as sa
    from flask.testing import FlaskClient

    import mapsvc.web.render as render
    from mapsvc import create_app
    from mapsvc.db import session_scope
    from mapsvc.services import accounts

    url = database_url(args.reload)
    app = create_app({"DATABASE_URL": url})
    engine = app.extensions["mapsvc.engine"]
    with session_scope(engine) as s:
        name = f"bench-admin-{int(time.time())}"
        accounts.create_user(s, name, "bench-password-123456", "admin")
        token, _row = accounts.create_token(s, name, "bench")
    with engine.connect() as c:
        segments = c.scalar(sa.text("SELECT count(*) FROM alley_segment"))
    client: FlaskClient = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    chiefs = client.get("/api/patrol/chiefs").get_json()
    chief = max(chiefs, key=lambda c: c["segments"])
    print(f"network: {segments:,} segments; chief {chief['staff_id']} holds {chief['segments']}")

    pages = {"/patrol?chief=": f"/patrol?chief={chief['staff_id']}", "/patrol": "/patrol", "/": "/"}
    tiled = render.tiled_overlay
    sizes: dict[str, dict[str, tuple[int, int]]] = {"before": {}, "after": {}}
    bodies: dict[str, str] = {}
    for label in ("before", "after"):
        # before: the layers' GeoJSON path, as the pages were drawn until now
        render.tiled_overlay = tiled if label == "after" else (lambda *a, **k: None)
        for key, path in pages.items():
            resp = client.get(path)
            assert resp.status_code == 200, (path, resp.status_code)
            body = resp.get_data()
            sizes[label][key] = (len(body), len(gzip.compress(body, 6)))
            if label == "after":
                bodies[key] = body.decode()
    render.tiled_overlay = tiled

    # the segment tiles the chief's page fetches at the zoom it opens on (its fit_bounds)
    html = bodies["/patrol?chief="]
    box = re.search(r"fitBounds\(\s*\[\[([\d.]+), ([\d.]+)\], \[([\d.]+), ([\d.]+)\]\]", html)
    tile_bytes, tile_count = 0, 0
    if box:
        s_, w_, n_, e_ = (float(v) for v in box.groups())
        z = 15
        x0, y1 = tile_xy(w_, s_, z)
        x1, y0 = tile_xy(e_, n_, z)
        for x in range(x0, x1 + 1):
            for y in range(y0, y1 + 1):
                r = client.get(
                    f"/tiles/segments/{z}/{x}/{y}.mvt", headers={"Accept-Encoding": "gzip"}
                )
                tile_bytes += len(r.get_data())
                tile_count += 1

    mb = 1024 * 1024
    print(f"\n{'page (MB)':22}{'before':>10}{'after':>10}{'before gz':>11}{'after gz':>10}")
    for key in pages:
        b, a = sizes["before"][key], sizes["after"][key]
        print(f"{key:22}{b[0] / mb:>10.3f}{a[0] / mb:>10.3f}{b[1] / mb:>11.3f}{a[1] / mb:>10.3f}")
    print(
        f"segment tiles of the chief's view: {tile_count} at z15, {tile_bytes / 1024:.0f} KiB gzip"
    )
    value = sizes["after"]["/patrol?chief="][0]
    ok = value <= TARGET_BYTES
    print(
        f"\n/patrol?chief= HTML {value / mb:.3f} MB (target <= 1 MB, before "
        f"{sizes['before']['/patrol?chief='][0] / mb:.3f} MB): {'MET' if ok else 'NOT MET'}"
    )
    with open("/proc/loadavg") as fh:
        print("load average:", " ".join(fh.read().split()[:3]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
