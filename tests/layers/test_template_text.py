"""Data text that looks like a Jinja template stays text on every folium page.

branca adds each rendered macro to the page as ``Element(text)``, which compiled the text
as a template and rendered it again: names such as ``{{ 7*7 }}`` came out as ``49`` and
``{{ cycler.__init__.__globals__.os.getpid() }}`` ran on the server. ``layers.base`` keeps
such text literal; these tests render real folium maps through our helpers.
"""

from __future__ import annotations

import os

import folium

from layers.base import LegendItem, add_legend
from mapsvc.web.render import add_attribution, add_html

PROBE = "X{{ 7*7 }}Y"
RCE = "P{{ cycler.__init__.__globals__.os.getpid() }}Q"


def _page() -> str:
    m = folium.Map(location=[24.9, 118.58], zoom_start=13, tiles=None)
    feature = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [118.58, 24.9]},
        "properties": {"name": f"{PROBE} {RCE}"},
    }
    gj = folium.GeoJson({"type": "FeatureCollection", "features": [feature]})
    folium.GeoJsonTooltip(["name"]).add_to(gj)
    gj.add_to(m)
    folium.Marker([24.9, 118.58], tooltip=PROBE, popup=folium.Popup(PROBE)).add_to(m)
    add_legend(m, PROBE, [LegendItem("#f00", PROBE)])
    add_attribution(m, PROBE)
    add_html(m, f"<div id='panel'>{PROBE}</div>")
    return m.get_root().render()


def test_template_syntax_in_data_is_never_evaluated() -> None:
    html = _page()
    assert "X49Y" not in html
    assert f"P{os.getpid()}Q" not in html
    assert RCE in html
    # GeoJSON, tooltip, popup, legend, attribution and panel all keep the text
    assert html.count(PROBE) >= 5


def test_folium_templates_still_render() -> None:
    """Only rendered text is kept literal: folium's own macros still produce the map."""
    html = _page()
    assert "L.map(" in html and "L.geoJson(" in html and "L.marker(" in html
    assert "{% macro" not in html and "this.get_name()" not in html
