"""``/``: the coverage map of the district (communities, grids, alley segments and chiefs).

The page stays light as data grows: only the district outline and the communities (a few
dozen polygons, simplified to a metre) are embedded in the HTML. Grids and alley segments
are fetched by ``static/js/map.js`` from ``/api/grids`` and ``/api/segments`` for the
visible area, on load and after each move, so the HTML does not grow with them.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, current_app, url_for
from flask_babel import gettext as _

from layers import get_layer
from layers.base import LegendItem, add_legend, collection_bounds, esc
from layers.basemap import basemap_for, collection_to_crs
from layers.boundaries import (
    add_panes,
    client_config,
    legend_items,
    segment_counts,
    summary_html,
    viewport_loader,
)
from mapsvc.web.context import get_session, get_settings
from mapsvc.web.i18n import current_locale
from mapsvc.web.render import ATTRIBUTION, add_html, base_map, folium_page

bp = Blueprint("pages", __name__)

#: detail of the embedded outlines: half a pixel at zoom 17 (about half a metre)
EMBED_ZOOM = 17


def _static(filename: str) -> str:
    """URL of one of our static files with its mtime, so browsers never run a stale copy."""
    path = Path(current_app.static_folder or "") / filename
    version = int(path.stat().st_mtime) if path.exists() else 0
    return url_for("static", filename=filename, v=version)


@bp.get("/")
def index() -> str:
    """Coverage map: district and communities embedded, grids and segments fetched."""
    import folium

    locale = current_locale()
    session = get_session()
    basemap = basemap_for(get_settings(), locale)
    district_layer, communities_layer = get_layer("district"), get_layer("communities")
    district = collection_to_crs(district_layer.query(session, zoom=EMBED_ZOOM), basemap.crs)
    communities = collection_to_crs(communities_layer.query(session, zoom=EMBED_ZOOM), basemap.crs)
    fit = collection_bounds(district) or collection_bounds(communities)
    m = base_map(fit, basemap, fit_crs=basemap.crs, zoom_start=12, max_zoom=19)
    add_panes(m)
    district_layer.draw(district, locale, pane="mapsvc-district").add_to(m)
    community_fg = communities_layer.draw(communities, locale, pane="mapsvc-communities")
    community_fg.add_to(m)
    grids = folium.FeatureGroup(name=_("Grids"))
    grids.add_to(m)
    segments = folium.FeatureGroup(name=_("Alley segments"))
    segments.add_to(m)
    folium.LayerControl(collapsed=False, position="topright").add_to(m)

    credits = [f"{_('Boundaries')}: {ATTRIBUTION}", *basemap.attribution]
    viewport_loader(
        m,
        grids,
        segments,
        community_fg if communities["features"] else None,
        {
            **client_config(locale),
            "api": {"grids": url_for("api.grids"), "segments": url_for("api.segments")},
            "crs": basemap.crs,
            "locale": "en" if locale.startswith("en") else "zh-CN",
            "attribution": " | ".join(esc(c) for c in credits),
            "empty": None
            if district["features"] or communities["features"]
            else _(
                "No district loaded yet: run “mapsvc demo load” or “mapsvc import district FILE”."
            ),
            "assets": {"js": _static("js/map.js"), "css": _static("css/map.css")},
        },
    )
    add_legend(m, _("Legend"), legend_items(locale) or [LegendItem("#999", _("Grids"))])
    add_html(m, summary_html(district, communities, segment_counts(session), locale))
    return folium_page(m, active="pages.index", title=_("Coverage map"))
