"""Security headers on every response: what a page may load, and who may frame it.

The pages load only the service's own assets (Leaflet, Chart.js... are served from
``static/vendor``), so the Content-Security-Policy allows ``'self'`` and exactly what the
pages need beyond it:

* ``'unsafe-inline'`` scripts and styles: folium writes each map as an inline ``<script>``
  with inline ``<style>`` blocks and ``style`` attributes, and the templates' small inline
  scripts read the page's data; nonces would have to reach into folium's templates;
* ``data:`` and ``blob:`` images: Leaflet's and the vendored plugins' icons are data: URLs,
  canvases (the heatmap, Chart.js) export blob: images; ``data:`` fonts likewise;
* the configured raster base map's tile server (``BASEMAP`` osm / tianditu / amap), only
  when one is configured; the default base map is drawn from the service's own data.

Nothing else is external; no ``eval``; no plugins (``object-src 'none'``); forms post to
the service only. ``frame-ancestors 'self'`` with ``X-Frame-Options: SAMEORIGIN`` (for
older browsers) stops other sites from framing the pages (clickjacking); ``nosniff`` keeps
browsers from running an upload or a JSON answer as script; the referrer sent to other
sites is the origin only.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response

from layers.basemap import basemap_for
from mapsvc.config import Settings


def _tile_origins(settings: Settings) -> list[str]:
    """Origins of the configured base map's tiles (``{s}`` subdomains as a wildcard)."""
    origins = []
    for tile in basemap_for(settings).tiles:
        parts = urlsplit(tile.url)
        host = parts.hostname or ""
        if "{s}" in host.split(".")[0]:
            host = "*." + host.split(".", 1)[1]
        origin = f"{parts.scheme}://{host}"
        if origin not in origins:
            origins.append(origin)
    return origins


def content_security_policy(settings: Settings) -> str:
    """The Content-Security-Policy of every response (see the module's docstring)."""
    tiles = " ".join(_tile_origins(settings))
    directives = {
        "default-src": "'self'",
        "script-src": "'self' 'unsafe-inline'",
        "style-src": "'self' 'unsafe-inline'",
        "img-src": f"'self' data: blob: {tiles}".strip(),
        "font-src": "'self' data:",
        "connect-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'self'",
        "form-action": "'self'",
        "frame-ancestors": "'self'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def security_headers(settings: Settings) -> dict[str, str]:
    """The headers every response carries (a view may set its own stricter ones)."""
    return {
        "Content-Security-Policy": content_security_policy(settings),
        "X-Frame-Options": "SAMEORIGIN",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "strict-origin-when-cross-origin",
    }


def init_app(app: Flask) -> None:
    """Add :func:`security_headers` (built once from the app's settings) to every response."""
    headers = security_headers(app.extensions["mapsvc.settings"])

    @app.after_request
    def _add_security_headers(response: Response) -> Response:
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response
