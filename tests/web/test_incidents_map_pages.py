"""The incident map pages' own parts: where they open, the filter form, the focus ring.

* Both map pages open on the district (:func:`mapsvc.services.areas.district_extent`),
  or on the incidents when no district is loaded.
* The filter form (``templates/incidents/_filters.html``) keeps what the URL says (each
  select's choice, the list's boxes and page size) and shows hostile names as text.
* The ring of ``?incident=ID`` moves with GCJ-02 tiles like every other overlay.
"""

from __future__ import annotations

import html
import re

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from mapsvc.db import session_scope
from mapsvc.services.areas import district_extent

HOSTILE = '<img src=x onerror="window.__pwned=1">{{ 7*7 }}'


def _extent(engine, table: str) -> tuple[float, float, float, float]:
    with engine.connect() as c:
        return tuple(
            c.execute(
                sa.text(
                    "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
                    f"(SELECT ST_Extent(geom)::geometry e FROM {table}) s"
                )
            ).one()
        )


def _fitted(page: str) -> tuple[float, float, float, float]:
    """(minx, miny, maxx, maxy) of the page's first ``fitBounds``."""
    m = re.search(r"fitBounds\(\s*\[\[([-\d.]+), ([-\d.]+)\], \[([-\d.]+), ([-\d.]+)\]\]", page)
    assert m, "the page fits no bounds"
    s, w, n, e = (float(v) for v in m.groups())
    return (w, s, e, n)


def _drop_district(engine) -> None:
    with session_scope(engine) as s:
        s.execute(sa.text("UPDATE subdistrict SET district_id = NULL"))
        s.execute(sa.text("DELETE FROM district"))


def test_district_extent_is_the_district_else_the_incidents(populated) -> None:
    d = populated
    district = _extent(d.engine, "district")
    with Session(d.engine) as s:
        assert district_extent(s) == pytest.approx(district)
        assert district_extent(s, or_incidents=False) == pytest.approx(district)
    _drop_district(d.engine)
    incidents = _extent(d.engine, "incident")
    assert incidents != pytest.approx(district)
    with Session(d.engine) as s:
        assert district_extent(s) == pytest.approx(incidents)
        assert district_extent(s, or_incidents=False) is None
        s.execute(sa.text("DELETE FROM incident_event"))
        s.execute(sa.text("DELETE FROM incident"))
        assert district_extent(s) is None


def test_both_map_pages_open_on_the_district(populated, make_app) -> None:
    d = populated
    client = make_app(d.engine).test_client()
    district = _extent(d.engine, "district")
    for url in ("/incidents/map", "/incidents/choropleth"):
        assert _fitted(client.get(url).get_data(as_text=True)) == pytest.approx(district), url
    _drop_district(d.engine)
    incidents = _extent(d.engine, "incident")
    for url in ("/incidents/map", "/incidents/choropleth"):
        assert _fitted(client.get(url).get_data(as_text=True)) == pytest.approx(incidents), url


def _form(page: str) -> str:
    m = re.search(r'<form id="incident-filters".*?</form>', page, re.S)
    assert m, "no filter form"
    return m.group(0)


def test_filter_form_keeps_the_url(populated, make_app) -> None:
    d = populated
    client = make_app(d.engine).test_client()
    query = (
        f"lang=en&category=road&class=major&state=open&community={d.community['B']}"
        f"&grid={d.grid['B1']}&chief={d.staff['chief1']}&date_from=2026-01-01"
        "&date_to=2026-06-30&bins=hex"
    )
    form = _form(client.get(f"/incidents/map?{query}").get_data(as_text=True))
    for name, value in (
        ("category", "road"),
        ("severity", "major"),  # class= is the alias of severity
        ("state", "open"),
        ("community", str(d.community["B"])),
        ("grid", str(d.grid["B1"])),
        ("chief", str(d.staff["chief1"])),
        ("bins", "hex"),
    ):
        select = re.search(rf'<select name="{name}"[^>]*>(.*?)</select>', form, re.S).group(1)
        assert re.findall(r'<option value="([^"]*)" selected>', select) == [value], name
    assert 'name="date_from" value="2026-01-01"' in form
    assert 'name="date_to" value="2026-06-30"' in form
    assert '<input type="hidden" name="lang" value="en">' in form
    # the map's form floats over the map and links to the choropleth with the same filters
    assert 'style="position:absolute' in form and "incident-filters" not in form.split(">")[0][30:]
    link = html.unescape(re.search(r'<a href="([^"]+)">Per 1,000', form).group(1))
    assert link.startswith("/incidents/choropleth?") and f"chief={d.staff['chief1']}" in link
    assert "lang=en" in link
    # the choropleth has no "Draw as" and links back to the heatmap
    form = _form(client.get(f"/incidents/choropleth?{query}").get_data(as_text=True))
    assert 'name="bins"' not in form and ">Incident heatmap</a>" in form
    # the list: its stylesheet's class, the two boxes, and the page size kept
    page = client.get("/incidents/list?lang=en&overdue=on&limit=7").get_data(as_text=True)
    form = _form(page)
    assert form.startswith('<form id="incident-filters" method="get" class="incident-filters">')
    assert '<input type="checkbox" name="overdue" value="1" checked>' in form
    assert '<input type="checkbox" name="to_confirm" value="1">' in form
    assert '<input type="hidden" name="limit" value="7">' in form
    assert 'name="bins"' not in form and ">Incident heatmap</a>" in form


def test_filter_form_shows_hostile_names_as_text(populated, make_app) -> None:
    d = populated
    with session_scope(d.engine) as s:
        s.execute(sa.text("UPDATE community SET name = :n"), {"n": HOSTILE})
        s.execute(sa.text("UPDATE grid SET name = :n"), {"n": HOSTILE})
        s.execute(sa.text("UPDATE staff SET name = :n"), {"n": HOSTILE})
        s.execute(sa.text("UPDATE incident_category SET name_en = :n"), {"n": HOSTILE})
    client = make_app(d.engine).test_client()
    for url in (
        "/incidents/map?lang=en",
        "/incidents/choropleth?lang=en",
        "/incidents/list?lang=en",
    ):
        form = _form(client.get(url).get_data(as_text=True))
        assert "<img" not in form and "49" not in form, url
        # in options, in the grid's optgroup label, and after the grid's code
        assert form.count("&lt;img src=x onerror=") >= 5, url
        assert "{{ 7*7 }}" in form, url


def test_focus_ring_moves_with_gcj02_tiles(populated, make_app) -> None:
    from mapsvc.services.chinacrs import wgs84_to_gcj02

    d = populated
    with d.engine.connect() as c:
        iid, lon, lat = c.execute(
            sa.text("SELECT id, ST_X(geom), ST_Y(geom) FROM incident ORDER BY id LIMIT 1")
        ).one()

    def ring(page: str) -> tuple[float, float]:
        m = re.search(
            r"L\.circleMarker\(\s*\[([-\d.]+), ([-\d.]+)\],\s*\{[^}]*\"radius\": 14", page
        )
        assert m, "no focus ring"
        return float(m.group(2)), float(m.group(1))

    plain = make_app(d.engine).test_client().get(f"/incidents/map?incident={iid}&lang=en")
    assert ring(plain.get_data(as_text=True)) == pytest.approx((lon, lat), abs=1e-6)
    amap = make_app(d.engine, BASEMAP="amap").test_client()
    page = amap.get(f"/incidents/map?incident={iid}&lang=en").get_data(as_text=True)
    glon, glat = wgs84_to_gcj02(lon, lat)
    assert ring(page) == pytest.approx((float(glon), float(glat)), abs=2e-6)
    assert ring(page) != pytest.approx((lon, lat), abs=1e-4)  # the datum shift is ~500 m
    # the label: id, category in the page's language, state
    assert re.search(rf"#{iid} · [A-Z][a-z]+.* · [A-Z]", page)


def test_pages_with_nothing_to_draw(populated, make_app) -> None:
    """Hexagons for a filter matching nothing, and pages of a district without incidents
    or grids, are drawn empty (folium's tooltip on an empty collection was a 500)."""
    client = make_app(populated.engine).test_client()
    for url in (
        "/incidents/map?bins=hex&date_from=2099-01-01",
        "/incidents/map?date_from=2099-01-01",
        "/incidents/choropleth?date_from=2099-01-01",
    ):
        assert client.get(url).status_code == 200, url
    with session_scope(populated.engine) as s:
        s.execute(sa.text("DELETE FROM incident_event"))
        s.execute(sa.text("DELETE FROM incident"))
        s.execute(sa.text("DELETE FROM grid"))
    for url in ("/incidents/map?bins=hex", "/incidents/choropleth", "/incidents/list"):
        assert client.get(url).status_code == 200, url
