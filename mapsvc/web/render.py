"""Page rendering shared by every map page: navigation bar, language switch, offline assets."""

from __future__ import annotations

from flask import request, url_for
from flask_babel import gettext as _

from layers.base import esc
from layers.offline import render_page
from mapsvc.web.i18n import current_locale

#: (endpoint, message id) of the navigation bar, in order
NAV = [
    ("pages.index", "Map"),
    ("incidents.heatmap_page", "Incidents"),
    ("incidents.list_page", "Incident list"),
    ("patrol.patrol_page", "Patrol"),
    ("dashboard.dashboard_page", "Dashboard"),
]

ATTRIBUTION = "Vonng/adcode, CC BY 4.0"


#: where a map opens when there is nothing to fit (the demo district, Licheng, Quanzhou)
DEFAULT_CENTRE = (24.91, 118.59)


def base_map(  # noqa: ANN201 - folium.Map
    fit: list[list[float]] | None = None,
    basemap=None,  # noqa: ANN001 - layers.basemap.Basemap
    fit_crs: str = "wgs84",
    **options,  # noqa: ANN003
):
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
        add_tiles(m, basemap)
        if fit and basemap.crs != fit_crs:
            from mapsvc.services.chinacrs import FROM_WGS84

            (y0, x0), (y1, x1) = fit
            xs, ys = FROM_WGS84[basemap.crs]([x0, x1], [y0, y1])
            fit = [[float(ys[0]), float(xs[0])], [float(ys[1]), float(xs[1])]]
    if fit:
        m.fit_bounds(fit)
    return m


def add_attribution(m, text: str) -> None:  # noqa: ANN001 - folium.Map
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


def add_html(m, html: str) -> None:  # noqa: ANN001 - folium.Map
    """Add rendered HTML (a panel from a Jinja template) to the page body, verbatim.

    Verbatim because ``layers.base`` makes branca keep ``Element(text)`` as text: data in
    it (a name containing ``{{ ... }}``) is never evaluated as a template.
    """
    from branca.element import Element

    m.get_root().html.add_child(Element(html))


def nav_html(active: str) -> str:
    """The top bar: page links (those whose endpoint exists) and a 中文/English switch."""
    from flask import current_app

    links = []
    for endpoint, label in NAV:
        if endpoint not in current_app.view_functions:
            continue
        style = "font-weight:bold;text-decoration:underline" if endpoint == active else ""
        links.append(f'<a href="{esc(url_for(endpoint))}" style="{style}">{esc(_(label))}</a>')
    from babel import Locale

    other = "en" if not current_locale().startswith("en") else "zh_CN"
    # the other language's own name (English / 中文), from Babel's CLDR data
    label = Locale.parse(other).language_name
    args = {**request.args.to_dict(), "lang": other}
    switch = f'<a href="{esc(url_for(request.endpoint, **(request.view_args or {}), **args))}">{label}</a>'
    return (
        '<nav class="mapsvc-nav" style="position:absolute;top:0;left:0;right:0;height:34px;'
        "z-index:1001;background:#1f3a5f;color:#fff;font:14px sans-serif;display:flex;"
        'align-items:center;gap:18px;padding:0 12px">'
        f"<b>{esc(_('Grid management map'))}</b>{''.join(links)}"
        f'<span style="margin-left:auto">{switch}</span></nav>'
        "<style>.mapsvc-nav a{color:#fff;text-decoration:none}"
        ".folium-map{top:34px!important;height:calc(100% - 34px)!important}</style>"
    )


def folium_page(m, active: str, title: str) -> str:  # noqa: ANN001 - folium.Map
    """Render a folium map as a full page with the nav bar, a title and local assets only."""
    import branca.element

    root = m.get_root()
    root.header.add_child(branca.element.Element(f"<title>{esc(title)}</title>"))
    root.header.add_child(
        branca.element.Element(
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
        )
    )
    # no favicon request: its 404 would be a console error on every page
    root.header.add_child(branca.element.Element('<link rel="icon" href="data:,">'))
    root.html.add_child(branca.element.Element(nav_html(active)))
    return render_page(m)
