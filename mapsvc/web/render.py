"""Page rendering shared by every page: navigation bar, language switch, offline assets,
file downloads.

The HTML is in Jinja templates (``mapsvc/templates/_nav.html``, ``_map_head.html``); these
functions gather what the templates need and hand folium the rendered text.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from flask import Response, current_app, render_template, request, url_for

from layers.base import esc
from layers.offline import render_page
from mapsvc.core.i18n import N_
from mapsvc.web.i18n import current_locale

if TYPE_CHECKING:
    import folium

    from layers.basemap import Basemap, LocalBaseMap, TiledOverlay

#: (endpoint, message id) of the navigation bar, in order
NAV = [
    ("pages.index", N_("Map")),
    ("patrol.my_page", N_("My work")),
    ("incidents.heatmap_page", N_("Incidents")),
    ("incidents.list_page", N_("Incident list")),
    ("patrol.patrol_page", N_("Patrol")),
    ("dashboard.dashboard_page", N_("Dashboard")),
    ("plans.plans_page", N_("Plans")),
    ("exports.index", N_("Downloads")),
    ("admin.users_page", N_("Accounts")),
]
#: nav links that take the page's query along (the downloads keep the page's filters)
NAV_CARRIES_ARGS = {"exports.index"}

ATTRIBUTION = "Vonng/adcode, CC BY 4.0"


#: where a map opens when there is nothing to fit (the demo district, Licheng, Quanzhou)
DEFAULT_CENTRE = (24.91, 118.59)


def leaflet_bounds(
    extent: tuple[float, float, float, float] | None,
) -> list[list[float]] | None:
    """Leaflet's ``[[south, west], [north, east]]`` of an extent ``(minx, miny, maxx, maxy)``.

    Services answer extents in the GIS order (x before y); folium fits Leaflet bounds.
    """
    if extent is None:
        return None
    minx, miny, maxx, maxy = extent
    return [[miny, minx], [maxy, maxx]]


def base_map(
    fit: list[list[float]] | None = None,
    basemap: Basemap | None = None,
    fit_crs: str = "wgs84",
    **options: Any,
) -> folium.Map:
    """A folium map with the configured base map's tiles, fitted to ``fit`` bounds.

    ``basemap`` is a :class:`layers.basemap.Basemap` (None: no tiles). When its tiles are in
    GCJ-02 (Amap) and ``fit`` is in another datum (``fit_crs``), the bounds are shifted like
    the overlays, so the view matches the data.
    """
    import folium

    from layers.basemap import add_tiles

    options = {"zoom_start": 13, "control_scale": True, **options}
    m = folium.Map(location=None if fit else list(DEFAULT_CENTRE), tiles=None, **options)
    if basemap is not None:
        add_tiles(m, basemap, local_basemap())
        if fit and basemap.crs != fit_crs:
            from mapsvc.services.chinacrs import FROM_WGS84

            (y0, x0), (y1, x1) = fit
            xs, ys = FROM_WGS84[basemap.crs]([x0, x1], [y0, y1])
            fit = [[float(ys[0]), float(xs[0])], [float(ys[1]), float(xs[1])]]
    if fit:
        m.fit_bounds(fit)
    return m


def local_basemap() -> LocalBaseMap | None:
    """Where this app serves the local base map's tiles and scripts (None: no tiles here)."""
    from pathlib import Path

    from layers.basemap import LocalBaseMap
    from layers.offline import vendor_url

    if "tiles.tile" not in current_app.view_functions:
        return None
    tiles = url_for("tiles.tile", layer="basemap", z=0, x=0, y=0)
    script = Path(current_app.static_folder or "") / "js" / "basemap.js"
    version = int(script.stat().st_mtime) if script.exists() else 0
    return LocalBaseMap(
        tiles=tiles.replace("/0/0/0.mvt", "/{z}/{x}/{y}.mvt"),
        script=url_for("static", filename="js/basemap.js", v=version),
        library=vendor_url("protomaps_leaflet"),
    )


def tiled_overlay(layer: str, **filters: str) -> TiledOverlay | None:
    """Where a page paints ``layer`` from this app's vector tiles (None: no tiles here).

    Tiles are in WGS84 Web Mercator, so pages drawn on a shifted (GCJ-02) base map keep
    their GeoJSON overlays, which are moved with the base map.
    """
    from pathlib import Path
    from urllib.parse import urlencode

    from layers.basemap import TiledOverlay
    from layers.offline import vendor_url

    if "tiles.tile" not in current_app.view_functions:
        return None
    tiles = url_for("tiles.tile", layer=layer, z=0, x=0, y=0)
    query = urlencode({k: v for k, v in filters.items() if v})
    script = Path(current_app.static_folder or "") / "js" / "tiled.js"
    version = int(script.stat().st_mtime) if script.exists() else 0
    return TiledOverlay(
        tiles=tiles.replace("/0/0/0.mvt", "/{z}/{x}/{y}.mvt") + (f"?{query}" if query else ""),
        script=url_for("static", filename="js/tiled.js", v=version),
        library=vendor_url("protomaps_leaflet"),
    )


def add_attribution(m: folium.Map, text: str) -> None:
    """Add ``text`` to the map's own attribution line (Leaflet escapes nothing: we do)."""
    from branca.element import MacroElement
    from jinja2 import Template

    el = MacroElement()
    el._template = Template(
        "{% macro script(this, kwargs) %}"
        "{{ this._parent.get_name() }}.attributionControl.addAttribution({{ this.text|tojson }});"
        "{% endmacro %}"
    )
    el.text = esc(text)
    m.add_child(el)


def add_html(m: folium.Map, html: str) -> None:
    """Add rendered HTML (a panel from a Jinja template) to the page body, verbatim.

    Verbatim because ``layers.base`` makes branca keep ``Element(text)`` as text: data in
    it (a name containing ``{{ ... }}``) is never evaluated as a template.
    """
    from branca.element import Element

    m.get_root().html.add_child(Element(html))


def nav_html(active: str) -> str:
    """The top bar (``templates/_nav.html``): page links and a 中文/English switch.

    Only links whose endpoint is registered and open to the visitor's account are shown,
    so an app without a blueprint has no dead link and the public sees the public map.
    The switch keeps the page and its parameters and names the other language in that
    language (English / 中文, Babel's CLDR data). The right end shows the account (and a
    logout button) or the login link.
    """
    from babel import Locale

    from mapsvc.web.auth import may_open

    page_args = {k: v for k, v in request.args.items() if k not in ("lang", "offset", "limit")}
    links = [
        (
            url_for(endpoint, **(page_args if endpoint in NAV_CARRIES_ARGS else {})),
            label,
            endpoint == active,
        )
        for endpoint, label in NAV
        if endpoint in current_app.view_functions and may_open(endpoint)
    ]
    other = "en" if not current_locale().startswith("en") else "zh_CN"
    args = {**request.args.to_dict(), "lang": other}
    return render_template(
        "_nav.html",
        links=links,
        switch_url=url_for(request.endpoint, **(request.view_args or {}), **args)
        if request.endpoint
        else url_for("pages.index", lang=other),
        switch_label=Locale.parse(other).language_name,
    )


def folium_page(m: folium.Map, active: str, title: str) -> str:
    """Render a folium map as a full page with the nav bar, a title and local assets only."""
    import branca.element

    root = m.get_root()
    # rendered text: branca keeps it as it is (layers.base), the title is escaped here
    root.header.add_child(branca.element.Element(render_template("_map_head.html", title=title)))
    root.html.add_child(branca.element.Element(nav_html(active)))
    root.html.add_child(branca.element.Element(print_layout_html(title)))
    return render_page(m)


#: query parameters of a page that are not its filters (left out of the printed list)
_NOT_FILTERS = {"lang", "print", "offset", "limit"}


def print_layout_html(title: str) -> str:
    """The print layout of a map page (``templates/_print_layout.html``).

    Always present, hidden on screen; ``?print=1`` (what ``/print`` loads) shows it
    instead of the nav and the zoom buttons. The "Print" link opens ``/print`` with the
    page's path and query, so the printout shows the view and the filters on screen.
    """
    from mapsvc.services.areas import district_names
    from mapsvc.web.context import get_session, get_settings

    filters = [(k, v) for k, v in request.args.items() if k not in _NOT_FILTERS and v]
    page = request.full_path.rstrip("?")
    print_url = (
        url_for("printing.print_view", page=page)
        if "printing.print_view" in current_app.view_functions
        else ""
    )
    return render_template(
        "_print_layout.html",
        title=title,
        district=district_names(get_session()),
        today=get_settings().today().isoformat(),
        filters=filters,
        credits=ATTRIBUTION,
        print_url=print_url,
        print_mode=request.args.get("print") == "1",
    )


def attachment(
    body: bytes | str | Iterable[bytes] | Iterable[str], filename: str, mimetype: str
) -> Response:
    """A file download: ``body`` with ``Content-Disposition: attachment`` and ``filename``.

    Parameters
    ----------
    body
        The file: bytes or text, or an iterable of chunks for a streamed download (wrap a
        generator that reads the database in :func:`flask.stream_with_context`).
    filename
        The name the browser saves it under. Non-ASCII names (a Chinese community or
        chief name) are sent as RFC 5987 ``filename*=UTF-8''...``, which every current
        browser reads, with an ASCII ``filename`` fallback for older clients, the way
        :func:`flask.send_file` names files.
    mimetype
        The file's type (``text/csv``, ``application/gpx+xml``...).
    """
    resp = Response(body, mimetype=mimetype)
    resp.headers.set("Content-Disposition", "attachment", **_download_names(filename))
    return resp


def _download_names(filename: str) -> dict[str, str]:
    """``filename`` (and ``filename*`` when it is not ASCII) for Content-Disposition."""
    import unicodedata

    try:
        filename.encode("ascii")
    except UnicodeEncodeError:
        simple = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
        # RFC 5987 attr-char: letters, digits and these are sent as they are
        encoded = quote(filename, safe="!#$&+-.^_`|~")
        return {"filename": simple, "filename*": f"UTF-8''{encoded}"}
    return {"filename": filename}
