"""Benchmark: vector tiles through Flask vs the bare ST_AsMVT query; page weights.

Goal: serving a tile through the app (routing, argument parsing, the session, ETag,
Cache-Control) costs at most 1.2x the bare query for the same tile, run in the same
process on the same database in the same run: the median over tiles of
``flask_ms / bare_ms`` per tile, each tile's time the median of its repeats, taken in
each of several rounds over the whole tile set (the median of the rounds is the
figure; each round's is printed, with the load average, since the machine is shared).

* Flask: ``GET /tiles/<layer>/<z>/<x>/<y>.mvt`` through the app's test client (no HTTP
  socket, so the overhead measured is the service's own, not Werkzeug's server).
* Bare: the same statement (``TileLayer.statement``) compiled once to SQL text and run
  with ``exec_driver_sql`` on a pooled connection of the app's own engine (the same
  psycopg connections, the same pre-ping, begin and rollback as a request's session),
  returning the same bytes (checked).

Tiles: segments, grids, incidents and the base map at zooms 12, 14 and 16, the 3x3 tiles
around the district's centre. The two are interleaved tile by tile, so drift hits both.

Page weights: ``/`` (as a visitor) and ``/patrol`` (as an admin, by API token) cold in
headless Chromium (every non-localhost request blocked), with no base map
(``BASEMAP=none``, the earlier default) and with the local base map (the new default):
HTML, the data they fetch (``/api`` JSON and ``/tiles``) and everything on the wire
(Resource Timing ``transferSize``).

Database: the full demo (seed 20261124, 100,000 incidents) in ``mapsvc_bench_page``,
shared with ``bench_page.py`` (loaded on first use).

    .venv/bin/python bench/bench_tiles.py            # 7 repeats per tile, 3 rounds
    .venv/bin/python bench/bench_tiles.py --quick    # 3 repeats, fewer tiles
    .venv/bin/python bench/bench_tiles.py --no-pages # tile times only
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Route
    from sqlalchemy.engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_page import database_url

ROOT = Path(__file__).resolve().parent.parent

GOAL = 1.2
LAYERS = ("segments", "grids", "incidents", "basemap")
ZOOMS = (12, 14, 16)


def tiles_around(lon: float, lat: float, z: int, radius: int) -> list[tuple[int, int, int]]:
    """The ``(2r+1)^2`` XYZ tiles around a point at zoom ``z``."""
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return [
        (z, x + dx, y + dy)
        for dx in range(-radius, radius + 1)
        for dy in range(-radius, radius + 1)
    ]


def _admin_token(engine: Engine) -> str:
    """An API token of a new admin account (the staff layers and pages need a login)."""
    from mapsvc.db import session_scope
    from mapsvc.services import accounts

    with session_scope(engine) as s:
        who = f"bench-tiles-{time.time_ns()}"
        accounts.create_user(s, who, "bench-password-123456", "admin")
        token, _row = accounts.create_token(s, who, "bench")
    return token


def _load() -> str:
    """The 1, 5 and 15 minute load averages (the machine is shared: say how busy)."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def time_tiles(url: str, repeats: int, radius: int, rounds: int) -> list[dict]:
    """Per round and tile: median ms of ``repeats`` through Flask and bare, bytes.

    Each round passes over the whole tile set, so a burst of load elsewhere on the
    machine falls on a few tiles of one round rather than on one layer."""
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.orm import Session

    from layers import get_tile_layer
    from layers.tile_base import Tile
    from mapsvc import create_app
    from mapsvc.services.areas import district_extent

    app = create_app({"DATABASE_URL": url})
    client = app.test_client()
    engine = app.extensions["mapsvc.engine"]
    # staff layers (segments, grids, incidents) need a login: an admin's API token
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {_admin_token(engine)}"
    with Session(engine) as s:
        x0, y0, x1, y1 = district_extent(s)
    lon, lat = (x0 + x1) / 2, (y0 + y1) / 2
    settings = app.extensions["mapsvc.settings"]
    tiles = []  # (layer, tile, URL path, the bare SQL text)
    for name in LAYERS:
        layer = get_tile_layer(name)
        with Session(engine) as s:
            checked = layer.check(s, {"tz": settings.timezone})
        for z in ZOOMS:
            for zxy in tiles_around(lon, lat, z, radius):
                tile = Tile(*zxy)
                stmt = layer.statement(tile, checked).params(layer.params(tile))
                sql = str(
                    stmt.compile(
                        dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
                    )
                )
                path = f"/tiles/{name}/{tile.z}/{tile.x}/{tile.y}.mvt"
                tiles.append((name, tile, path, sql))
    out: list[dict] = []
    for r in range(rounds):
        for name, tile, path, sql in tiles:
            flask_ms, bare_ms = [], []
            body = b""
            for k in range(repeats + (r == 0)):  # the very first pair warms both up
                t = time.perf_counter()
                resp = client.get(path)
                f_ms = (time.perf_counter() - t) * 1000
                assert resp.status_code == 200, (path, resp.get_data(as_text=True))
                t = time.perf_counter()
                with engine.connect() as c:
                    bare = bytes(c.exec_driver_sql(sql).scalar() or b"")
                b_ms = (time.perf_counter() - t) * 1000
                body = resp.get_data()
                assert bare == body, f"{path}: the bare query answers other bytes"
                if k or r:
                    flask_ms.append(f_ms)
                    bare_ms.append(b_ms)
            out.append(
                {
                    "round": r,
                    "layer": name,
                    "z": tile.z,
                    "flask": statistics.median(flask_ms),
                    "bare": statistics.median(bare_ms),
                    "bytes": len(body),
                }
            )
        print(f"round {r + 1}/{rounds}: load average {_load()}", flush=True)
    engine.dispose()
    return out


def _test_helper(relative: str) -> ModuleType:
    """A module of our ``tests/`` loaded from its file: a plain script cannot import it as
    ``tests.*``, which another ``tests`` package in site-packages may shadow."""
    path = ROOT / "tests" / relative
    spec = importlib.util.spec_from_file_location(f"_bench_{path.stem}", path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def page_weights(url: str) -> dict[tuple[str, str], dict]:
    """Cold loads of ``/`` and ``/patrol`` with no base map and with the local one."""
    from playwright.sync_api import sync_playwright

    from mapsvc import create_app
    from mapsvc.chromium import launch

    LiveServer = _test_helper("fixtures/web.py").LiveServer

    out: dict[tuple[str, str], dict] = {}
    with sync_playwright() as p:
        browser = launch(p)
        for basemap in ("none", "local"):
            app = create_app({"DATABASE_URL": url, "BASEMAP": basemap})
            # the public map as a visitor sees it; the patrol page needs a staff login
            login = {"Authorization": f"Bearer {_admin_token(app.extensions['mapsvc.engine'])}"}
            live = LiveServer(app)
            try:
                for path, headers in (("/", {}), ("/patrol", login)):
                    out[(basemap, path)] = _weigh(browser, live.url + path, headers)
            finally:
                live.stop()
        browser.close()
    return out


def _weigh(browser: Browser, page_url: str, headers: dict[str, str]) -> dict:
    context = browser.new_context(
        viewport={"width": 1400, "height": 900}, extra_http_headers=headers
    )
    page = context.new_page()
    errors: list[str] = []

    def route(r: Route) -> None:
        if r.request.url.startswith("http://127.0.0.1"):
            return r.continue_()
        errors.append(r.request.url)
        return r.abort()

    page.route("**/*", route)
    page.goto(page_url, wait_until="load", timeout=120_000)
    if "/patrol" not in page_url:  # the coverage map says when its grids and segments are drawn
        page.wait_for_selector("html[data-map-drawn]", timeout=120_000)
    page.wait_for_load_state("networkidle", timeout=120_000)
    out = page.evaluate(
        """() => {
            const nav = performance.getEntriesByType('navigation')[0];
            const res = performance.getEntriesByType('resource');
            const sum = f => res.filter(f).reduce((a, r) => a + r.transferSize, 0);
            return {
                html: nav.transferSize,
                api: sum(r => r.name.includes('/api/')),
                tiles: sum(r => r.name.includes('/tiles/')),
                assets: sum(r => r.name.includes('/static/')),
                total: nav.transferSize + sum(r => true),
                requests: 1 + res.length,
            };
        }"""
    )
    context.close()
    if errors:
        raise SystemExit(f"{page_url}: requests to other origins: {errors[:5]}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=3, help="passes over the tile set")
    ap.add_argument("--quick", action="store_true", help="3 repeats, the centre tile only")
    ap.add_argument("--reload", action="store_true", help="reload the demo first")
    ap.add_argument("--no-pages", action="store_true", help="tile times only, no page weights")
    args = ap.parse_args()
    repeats, radius = (3, 0) if args.quick else (args.repeats, 1)

    url = database_url(args.reload)
    print(f"load average before: {_load()}")
    rows = time_tiles(url, repeats, radius, args.rounds)

    n_tiles = len(rows) // args.rounds
    print(
        f"\ntile time, median of {repeats} per tile and round ({n_tiles} tiles, "
        f"{args.rounds} rounds): Flask vs bare query"
    )
    print(f"{'layer':>10}{'z':>4}{'tiles':>7}{'flask ms':>10}{'bare ms':>10}{'ratio':>8}{'KB':>8}")
    for name in LAYERS:
        for z in ZOOMS:
            sel = [r for r in rows if r["layer"] == name and r["z"] == z]
            f = statistics.median(r["flask"] for r in sel)
            b = statistics.median(r["bare"] for r in sel)
            kb = statistics.median(r["bytes"] for r in sel) / 1024
            ratio = statistics.median(r["flask"] / r["bare"] for r in sel)
            print(
                f"{name:>10}{z:>4}{len(sel) // args.rounds:>7}{f:>10.2f}{b:>10.2f}"
                f"{ratio:>8.2f}{kb:>8.1f}"
            )
    per_round = [
        statistics.median(r["flask"] / r["bare"] for r in rows if r["round"] == k)
        for k in range(args.rounds)
    ]
    print("median per-tile ratio by round: " + ", ".join(f"{v:.2f}x" for v in per_round))
    overhead = statistics.median(r["flask"] - r["bare"] for r in rows)
    print(f"median per-tile overhead (flask - bare): {overhead:.2f} ms")
    ratio = statistics.median(per_round)
    total = sum(r["flask"] for r in rows) / sum(r["bare"] for r in rows)
    met = ratio <= GOAL
    print(
        f"\noverhead: median per-tile ratio {ratio:.2f}x (median of the rounds), total time "
        f"ratio {total:.2f}x (goal <= {GOAL}x): {'MET' if met else 'NOT MET'}; "
        f"load average after: {_load()}"
    )

    if args.no_pages:
        return 0 if met else 1
    weights = page_weights(url)
    kb = 1024
    print("\npage weight, cold load, KB on the wire (HTML + data fetched + assets)")
    print(
        f"{'page':>8}{'basemap':>9}{'HTML':>9}{'/api':>9}{'/tiles':>9}{'assets':>9}{'total':>9}{'requests':>10}"
    )
    for (basemap, path), w in weights.items():
        print(
            f"{path:>8}{basemap:>9}{w['html'] / kb:>9.0f}{w['api'] / kb:>9.0f}"
            f"{w['tiles'] / kb:>9.0f}{w['assets'] / kb:>9.0f}{w['total'] / kb:>9.0f}"
            f"{w['requests']:>10}"
        )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
