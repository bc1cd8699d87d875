#!/usr/bin/env python3
"""Screenshot of the coverage map (``/``) from the running demo, for the README.

Starts the app on the configured database (``DATABASE_URL`` or the embedded cluster, as
``mapsvc serve`` would), opens ``/`` in Debian's headless Chromium with every
non-localhost request blocked (the same flags as the tests), waits until the grids fetched
from the API are drawn, and writes a PNG. It fails when the database has no district
(load the demo first) or when the page logs an error, so a broken page never becomes the
README picture.

Usage: ``.venv/bin/python scripts/screenshot.py [docs/demo-map.png] [--lang en]``
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask
    from playwright.sync_api import Route
    from werkzeug.serving import BaseWSGIServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def serve(app: Flask) -> tuple[str, BaseWSGIServer]:
    """Serve ``app`` on a free localhost port in a thread; return (base URL, server)."""
    from werkzeug.serving import make_server

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{port}", server


def shoot(base: str, out: Path, lang: str, width: int, height: int, timeout_ms: int = 30000) -> int:
    """Open ``base/`` and write the PNG; return the number of grids drawn."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        from mapsvc.chromium import launch as launch_chromium

        browser = launch_chromium(p)
        try:
            context = browser.new_context(
                viewport={"width": width, "height": height}, device_scale_factor=1
            )
            page = context.new_page()

            def route(r: Route) -> None:
                if r.request.url.startswith(("http://127.0.0.1", "data:", "blob:")):
                    return r.continue_()
                errors.append(f"blocked external request: {r.request.url}")
                return r.abort()

            page.route("**/*", route)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{base}/?lang={lang}", wait_until="load")
            page.wait_for_selector("html[data-map-drawn]", timeout=timeout_ms)
            grids = int(page.get_attribute("html", "data-grids-drawn") or 0)
            page.wait_for_timeout(300)  # let the labels and last tiles settle
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))
        finally:
            browser.close()
    if errors:
        raise SystemExit("the page logged errors:\n  " + "\n  ".join(errors))
    return grids


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("output", nargs="?", default=str(ROOT / "docs" / "demo-map.png"))
    ap.add_argument("--lang", default="zh_CN", help="page language (zh_CN or en)")
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=900)
    args = ap.parse_args(argv)

    import sqlalchemy as sa

    from mapsvc import create_app
    from mapsvc.db import DatabaseError
    from mapsvc.web.context import get_engine

    try:
        app = create_app()
    except DatabaseError as exc:
        print(f"screenshot: {exc}", file=sys.stderr)
        return 1
    with app.app_context(), get_engine().connect() as conn:
        if not conn.scalar(sa.text("SELECT count(*) FROM district")):
            print(
                "screenshot: the database has no district; load the demo first "
                "(.venv/bin/mapsvc demo load)",
                file=sys.stderr,
            )
            return 1
    base, server = serve(app)
    try:
        out = Path(args.output)
        grids = shoot(base, out, args.lang, args.width, args.height)
    finally:
        server.shutdown()
    if grids == 0:
        print("screenshot: no grid was drawn", file=sys.stderr)
        return 1
    print(f"screenshot: {out} ({grids} grids drawn)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
