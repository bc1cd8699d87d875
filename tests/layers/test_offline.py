"""Pages never load from a CDN: folium's assets are rewritten to the vendored copies."""

from __future__ import annotations

import re

import folium
import folium.plugins
import pytest

from layers.offline import render_page, vendor_map
from mapsvc.config import PROJECT_ROOT


def test_folium_assets_are_served_locally_and_exist() -> None:
    m = folium.Map(tiles=None)
    folium.plugins.HeatMap([[24.9, 118.6, 1.0]]).add_to(m)
    folium.plugins.PolyLineTextPath(folium.PolyLine([[24.9, 118.6], [24.91, 118.61]]), "▶").add_to(
        m
    )
    html = render_page(m)
    urls = re.findall(r'<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)"', html)
    assert "/static/vendor/leaflet/leaflet.js" in urls
    assert "/static/vendor/leaflet.heat/leaflet-heat.js" in urls
    assert all(u.startswith("/static/vendor/") for u in urls), urls
    for u in urls:  # installed at set-up time from npm by scripts/vendor.py
        assert (PROJECT_ROOT / u.lstrip("/")).is_file(), u
    # unused folium defaults (jQuery, Bootstrap, awesome-markers) are dropped, not fetched
    assert "jquery" not in html.lower() and "bootstrap" not in html.lower()


def test_an_unvendored_plugin_is_refused_with_its_name() -> None:
    m = folium.Map(tiles=None)
    folium.plugins.MarkerCluster().add_to(m)
    with pytest.raises(ValueError, match="markerclusterjs"):
        render_page(m)


def test_vendor_map_lists_only_local_urls() -> None:
    assert all(u is None or u.startswith("/static/vendor/") for u in vendor_map().values())
