"""Benchmark: weight and time to draw of the coverage map ``/`` vs a page embedding everything.

Target: with the full demo loaded (seed 20261124, 100,000 incidents), the page
weighs under 2 MB in total (HTML + assets + the API JSON it fetches) and draws its grids in
under 2 s in headless Chromium (navigation start -> grids on screen).

Baseline, in the same script: the naive folium page that embeds every community, grid and
alley segment in the HTML (the same layers' ``draw`` halves, full detail, local assets). It
is rendered once up front and served as a static string, which favours the baseline (its
build time is printed separately).

Both pages are served by the same app (Werkzeug, threaded) in a separate process, on the
benchmark's own database ``mapsvc_bench_page`` on the embedded cluster. Each run uses a new
browser context (cold cache). Weight is the Resource Timing ``transferSize`` (bytes on the
wire incl. headers, after gzip where the server compresses) of the document and every
resource; ``decoded`` is the uncompressed size. Time to draw is the ``performance.mark``
set two animation frames after the grid polygons are in the DOM. On localhost bytes are
nearly free, so the script also repeats the loads over an emulated 20 Mbit/s, 40 ms link,
where the page weight shows up in the time to draw.

    .venv/bin/python bench/bench_page.py            # 7 runs each
    .venv/bin/python bench/bench_page.py --quick    # 3 runs each
    .venv/bin/python bench/bench_page.py --reload   # reload the demo first
"""

from __future__ import annotations

import argparse
import multiprocessing
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Route

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DB_NAME = "mapsvc_bench_page"
SEED = 20261124
INCIDENTS = 100_000
TARGET_BYTES = 2 * 1024 * 1024
TARGET_MS = 2000
#: the naive page draws everything in its one script; mark both events after it, as map.js does
DRAWN_MARK = (
    "requestAnimationFrame(function(){requestAnimationFrame(function(){"
    "performance.mark('mapsvc-grids-drawn');performance.mark('mapsvc-map-drawn');"
    "var d=document.documentElement;d.setAttribute('data-map-drawn','1');"
    "d.setAttribute('data-grids-drawn',"
    "String(document.querySelectorAll('.leaflet-mapsvc-grids-pane path').length));});});"
)


def database_url(reload: bool) -> str:
    """Create ``mapsvc_bench_page`` with the full demo (once; again with ``--reload``)."""
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
        loaded = c.scalar(sa.text("SELECT count(*) FROM incident")) == INCIDENTS and c.scalar(
            sa.text("SELECT count(*) FROM grid")
        )
    if reload or not loaded:
        from mapsvc.commands.common import progress
        from mapsvc.demo import arguments_from_settings, load_demo

        t = time.perf_counter()
        arguments = arguments_from_settings(
            Settings.from_environment(), seed=SEED, incidents=INCIDENTS
        )
        load_demo(engine, **arguments, progress=progress)
        print(f"demo loaded in {time.perf_counter() - t:.1f} s")
    with engine.connect() as c:
        counts = {
            t: c.scalar(sa.text(f"SELECT count(*) FROM {t}"))
            for t in ("community", "grid", "alley_segment", "incident")
        }
    engine.dispose()
    print("data: " + ", ".join(f"{v:,} {k}" for k, v in counts.items()))
    return url.render_as_string(hide_password=False)


def build_naive(url: str) -> tuple[str, float]:
    """The baseline page: every layer queried at full detail and embedded by folium."""
    import folium
    from sqlalchemy.orm import Session

    from layers import get_layer
    from layers.base import add_legend
    from layers.base import collection_bounds as bounds
    from layers.boundaries import add_panes, legend_items
    from layers.offline import render_page
    from mapsvc.db import make_engine

    t = time.perf_counter()
    engine = make_engine(url)
    with Session(engine) as s:
        data = {n: get_layer(n).query(s) for n in ("district", "communities", "grids", "segments")}
    engine.dispose()
    m = folium.Map(location=None, tiles=None, control_scale=True)
    add_panes(m)
    panes = {
        "district": "mapsvc-district",
        "communities": "mapsvc-communities",
        "grids": "mapsvc-grids",
        "segments": "mapsvc-segments",
    }
    for name, fc in data.items():
        get_layer(name).draw(fc, "zh_CN", pane=panes[name]).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    add_legend(m, "图例", legend_items("zh_CN"))
    m.fit_bounds(bounds(data["district"]))
    m.get_root().script.add_child(folium.Element(DRAWN_MARK))
    html = render_page(m).replace(
        "</head>", '<link rel="stylesheet" href="/static/css/map.css"/></head>', 1
    )
    return html, time.perf_counter() - t


def serve(url: str, naive_file: str, port: int) -> None:
    """Child process: the app, plus the pre-rendered naive page at /bench/naive."""
    import logging

    from werkzeug.serving import make_server

    from mapsvc import create_app

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = create_app({"DATABASE_URL": url})
    naive = Path(naive_file).read_text()
    app.add_url_rule("/bench/naive", "bench_naive", lambda: naive)
    from mapsvc.web.auth import POLICY

    POLICY["bench_naive"] = "public"  # open like the public map it is compared with
    make_server("127.0.0.1", port, app, threaded=True).serve_forever()


#: a typical office / 4G link: 20 Mbit/s down, 5 up, 40 ms round trip (Chrome's emulation)
LINK = {
    "offline": False,
    "latency": 40,
    "downloadThroughput": 20e6 / 8,
    "uploadThroughput": 5e6 / 8,
}


def measure(browser: Browser, page_url: str, link: dict | None = None) -> dict:
    """One cold load: bytes on the wire, decoded bytes, requests, ms to draw, grids drawn.

    ``link`` emulates a network link (Chrome DevTools ``Network.emulateNetworkConditions``);
    None is the raw localhost speed, where bytes cost almost nothing.
    """
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    if link:
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.emulateNetworkConditions", link)
    errors: list[str] = []

    def route(r: Route) -> None:
        if r.request.url.startswith(("http://127.0.0.1", "data:", "blob:")):
            return r.continue_()
        errors.append(r.request.url)
        return r.abort()

    page.route("**/*", route)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(page_url, wait_until="commit")
    page.wait_for_selector("html[data-map-drawn]", timeout=120_000)
    out = page.evaluate(
        """() => {
            const nav = performance.getEntriesByType('navigation')[0];
            const res = performance.getEntriesByType('resource');
            const mark = performance.getEntriesByName('mapsvc-grids-drawn')[0];
            const all = performance.getEntriesByName('mapsvc-map-drawn')[0];
            return {
                transfer: nav.transferSize + res.reduce((a, r) => a + r.transferSize, 0),
                decoded: nav.decodedBodySize + res.reduce((a, r) => a + r.decodedBodySize, 0),
                html: nav.decodedBodySize,
                api: res.filter(r => r.name.includes('/api/'))
                        .reduce((a, r) => a + r.transferSize, 0),
                requests: 1 + res.length,
                ms: mark.startTime,
                all_ms: all.startTime,
                grids: Number(document.documentElement.getAttribute('data-grids-drawn')),
                paths: document.querySelectorAll('path.leaflet-interactive').length,
            };
        }"""
    )
    context.close()
    if errors:
        raise SystemExit(f"{page_url}: page errors: {errors[:5]}")
    return out


def wait_port(port: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"server on port {port} did not start")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="3 runs each")
    ap.add_argument("--reload", action="store_true", help="reload the demo first")
    args = ap.parse_args()
    runs = 3 if args.quick else args.runs

    from playwright.sync_api import sync_playwright

    url = database_url(args.reload)
    naive_html, naive_build_s = build_naive(url)
    with tempfile.NamedTemporaryFile("w", suffix=".html", delete=False) as fh:
        fh.write(naive_html)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = multiprocessing.get_context("spawn").Process(
        target=serve, args=(url, fh.name, port), daemon=True
    )
    proc.start()
    try:
        wait_port(port)
        base = f"http://127.0.0.1:{port}"
        pages = {"ours (/)": f"{base}/?lang=zh_CN", "naive (all embedded)": f"{base}/bench/naive"}
        results: dict[str, list[dict]] = {k: [] for k in pages}
        linked: dict[str, list[dict]] = {k: [] for k in pages}
        with sync_playwright() as p:
            from mapsvc.chromium import launch as launch_chromium

            browser = launch_chromium(p)
            for u in pages.values():  # warm-up (server caches, Chromium start)
                measure(browser, u)
            for _ in range(runs):  # interleaved so drift hits both alike
                for name, u in pages.items():
                    results[name].append(measure(browser, u))
            for _ in range(max(2, runs // 2)):
                for name, u in pages.items():
                    linked[name].append(measure(browser, u, LINK))
            browser.close()
    finally:
        proc.terminate()
        proc.join(10)
        Path(fh.name).unlink(missing_ok=True)

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    ours, naive = "ours (/)", "naive (all embedded)"
    mb = 1024 * 1024
    print(f"\nnaive page built in {naive_build_s:.1f} s (not counted in its time to draw)")
    print(f"medians over {runs} cold loads each, 1400x900 viewport, headless Chromium\n")
    print(f"{'':24}{'ours (/)':>14}{'naive':>14}{'naive/ours':>12}{'target':>12}")
    rows = [
        ("transferred (MB)", "transfer", mb, 2, f"< {TARGET_BYTES / mb:.0f} MB"),
        ("decoded (MB)", "decoded", mb, 2, ""),
        ("HTML (MB)", "html", mb, 3, ""),
        ("API JSON on wire (MB)", "api", mb, 3, ""),
        ("requests", "requests", 1, 0, ""),
        ("time to draw grids (ms)", "ms", 1, 0, f"< {TARGET_MS} ms"),
        ("... and segments (ms)", "all_ms", 1, 0, ""),
        ("grids drawn", "grids", 1, 0, ""),
    ]
    for label, key, div, digits, target in rows:
        a, b = med(ours, key) / div, med(naive, key) / div
        ratio = f"{b / a:.1f}x" if a else "-"
        print(f"{label:24}{a:>14,.{digits}f}{b:>14,.{digits}f}{ratio:>12}{target:>12}")
    print(f"\nsame, over an emulated 20 Mbit/s link with 40 ms RTT ({len(linked[ours])} runs each)")
    for label, key in [("time to draw grids (ms)", "ms"), ("... and segments (ms)", "all_ms")]:
        a = statistics.median(r[key] for r in linked[ours])
        b = statistics.median(r[key] for r in linked[naive])
        print(f"{label:24}{a:>14,.0f}{b:>14,.0f}{b / a:>11.1f}x")
    w, t = med(ours, "transfer"), med(ours, "ms")
    ok = w < TARGET_BYTES and t < TARGET_MS
    print(
        f"\nours: {w / mb:.2f} MB (target < 2 MB) and {t:.0f} ms (target < 2000 ms): "
        f"{'PASS' if ok else 'FAIL'}"
    )
    print(f"time to draw, all runs (ms): ours {[round(r['ms']) for r in results[ours]]}")
    print(f"                            naive {[round(r['ms']) for r in results[naive]]}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
