"""Heatmap and choropleth layers: bins add up to the filtered incidents; pages in Chromium."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from layers import get_layer
from mapsvc.core.errors import BadRequest
from mapsvc.db import session_scope
from mapsvc.services import incidents as svc
from tests.fixtures.incidents import DISTRICT_TZ, layout_count, ll
from tests.fixtures.web import LiveServer, wait_until

FILTER_SETS = [
    {},
    {"category": "road"},
    {"severity": "minor,major"},
    {"state": "open"},
    {"state": "closed", "category": "litter,noise"},
    {"date_from": "2026-01-01"},
    {"class": "grave", "date_to": "2026-06-30"},
]


def _day_edges(d) -> list[dict]:
    """Date filters on days that hold incidents, so a bound off by a day or a time zone
    drops or adds some: one day alone, up to a day, from a day."""
    first, second = (r["rep"].astimezone(DISTRICT_TZ).date().isoformat() for r in d.incidents[:2])
    return [{"date_from": first, "date_to": first}, {"date_to": second}, {"date_from": second}]


@pytest.mark.parametrize("zoom", [11, 14, 17])
def test_heatmap_bins_sum_to_filtered_incidents(populated, zoom: int) -> None:
    layer = get_layer("heatmap")
    (x0, y0), (x1, y1) = ll(100, 50), ll(800, 500)
    with session_scope(populated.engine) as s:
        for f in FILTER_SETS + _day_edges(populated):
            for bbox in (None, (x0, y0, x1, y1)):
                data = layer.query(s, bbox, zoom=zoom, **f)
                # counted from what the test created, not by the filter SQL under test
                expected = layout_count(populated, f, bbox)
                assert sum(p[2] for p in data["points"]) == data["total"] == expected, (f, bbox)
                assert svc.list_incidents(s, f, bbox=bbox, limit=1)["total"] == expected
                assert data["max"] == max((p[2] for p in data["points"]), default=0)
        # finer zoom -> more, smaller cells over the same incidents
        coarse = layer.query(s, None, zoom=12)
        fine = layer.query(s, None, zoom=17)
    assert len(fine["points"]) > len(coarse["points"])
    assert coarse["total"] == fine["total"] == 600


def test_heatmap_bad_parameters(populated) -> None:
    layer = get_layer("heatmap")
    with session_scope(populated.engine) as s:
        with pytest.raises(BadRequest, match="zoom"):
            layer.query(s, None, zoom="far")
        with pytest.raises(BadRequest, match="severity"):
            layer.query(s, None, zoom=12, severity="huge")


def test_choropleth_rates_and_classes(populated) -> None:
    layer = get_layer("incident_choropleth")
    with session_scope(populated.engine) as s:
        data = layer.query(s, None)
        per_grid = dict(
            s.execute(sa.text("SELECT grid_id, count(*) FROM incident GROUP BY grid_id")).all()
        )
        pops = dict(s.execute(sa.text("SELECT id, population FROM grid")).all())
    feats = {f["properties"]["id"]: f["properties"] for f in data["features"]}
    assert set(feats) == set(pops)
    for gid, p in feats.items():
        assert p["count"] == per_grid.get(gid, 0)
        assert p["per_1000"] == pytest.approx(1000 * p["count"] / pops[gid], abs=0.01)
    # classes are ordered like the rates
    ordered = sorted(feats.values(), key=lambda p: p["per_1000"])
    assert [p["class"] for p in ordered] == sorted(p["class"] for p in ordered)
    folium_layer = layer.draw(data, "en")
    assert "per 1,000 residents" in json.dumps(folium_layer.data, ensure_ascii=False)


def test_popups_escape_data_text(populated) -> None:
    import folium

    with session_scope(populated.engine) as s:
        s.execute(sa.text("UPDATE grid SET name = '<img src=x onerror=alert(1)>'"))
        s.execute(
            sa.text(
                "UPDATE incident_category SET name_en = '<script>x</script>' WHERE code = 'road'"
            )
        )
        ch = get_layer("incident_choropleth")
        od = get_layer("overdue_incidents")
        m = folium.Map()
        geo = ch.draw(ch.query(s, None), "en")
        geo.add_to(m)
        od.draw(od.query(s, None), "en").add_to(m)
        html = m.get_root().render()
    assert "<img src=x" not in html and "<script>x</script>" not in html
    assert "&lt;img src=x" in geo.data["features"][0]["properties"]["tip"]
    assert "&lt;script&gt;x&lt;/script&gt;" in html  # overdue tooltips name the category


def test_heatmap_api_size_and_errors(populated, make_app) -> None:
    client = make_app(populated.engine).test_client()
    (x0, y0), (x1, y1) = ll(-100, -100), ll(1100, 700)
    r = client.get(f"/api/heatmap?bbox={x0},{y0},{x1},{y1}&zoom=15&state=open")
    assert r.status_code == 200
    d = r.get_json()
    assert d["total"] == layout_count(populated, {"state": "open"}, (x0, y0, x1, y1)) > 0
    assert len(r.data) < 200_000
    assert client.get("/api/heatmap?bbox=1,2,3&zoom=12").status_code == 400
    r = client.get("/api/heatmap?zoom=99")
    assert r.status_code == 400 and "zoom" in r.get_json()["error"]
    r = client.get("/api/incidents/choropleth?category=road")
    assert r.status_code == 200 and r.get_json()["type"] == "FeatureCollection"


VIEW_BOUNDS = """() => { const m = Object.values(window).find(v => v instanceof L.Map);
    const b = m.getBounds(); return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()]; }"""


def test_heatmap_page_in_chromium(populated, make_app, page) -> None:
    server = LiveServer(make_app(populated.engine))
    try:
        page.goto(f"{server.url}/incidents/map?lang=en")
        wait_until(page, "document.querySelector('.folium-map').dataset.heatLoading === '0'")
        total = int(page.eval_on_selector(".folium-map", "e => e.dataset.heatTotal"))
        cells = int(page.eval_on_selector(".folium-map", "e => e.dataset.heatCells"))
        in_view = page.evaluate(VIEW_BOUNDS)
        assert total == layout_count(populated, {}, bbox=tuple(in_view))
        assert cells > 0
        assert page.locator("canvas.leaflet-heatmap-layer").count() == 1
        assert page.locator(".leaflet-interactive").count() > 0  # overdue circles
        # zoom in: the page asks the server again and gets finer cells
        page.evaluate(
            "() => { const m = Object.values(window).find(v => v instanceof L.Map); m.setZoom(m.getZoom() + 2); }"
        )
        wait_until(
            page,
            f"document.querySelector('.folium-map').dataset.heatZoom !== undefined && "
            f"Number(document.querySelector('.folium-map').dataset.heatZoom) > 0 && "
            f"document.querySelector('.folium-map').dataset.heatLoading === '0' && "
            f"Number(document.querySelector('.folium-map').dataset.heatTotal) <= {total}",
        )
        assert "Vonng/adcode" in page.inner_text(".leaflet-control-attribution")
        # filters from the form reach the API
        page.goto(f"{server.url}/incidents/map?lang=en&state=closed")
        wait_until(page, "document.querySelector('.folium-map').dataset.heatLoading === '0'")
        closed = int(page.eval_on_selector(".folium-map", "e => e.dataset.heatTotal"))
        assert 0 < closed < total
        in_view = page.evaluate(VIEW_BOUNDS)
        assert closed == layout_count(populated, {"state": "closed"}, bbox=tuple(in_view))
        # the choropleth view
        page.goto(f"{server.url}/incidents/choropleth")
        page.wait_for_selector("path.leaflet-interactive")
        assert page.locator("path.leaflet-interactive").count() >= 3
        assert page.errors == []
    finally:
        server.stop()


def test_pages_chinese_first_english_available(populated, make_app) -> None:
    client = make_app(populated.engine).test_client()
    zh = client.get("/incidents/map").get_data(as_text=True)
    assert "<title>事件热力图</title>" in zh and "超期事件" in zh and "处置中" in zh
    assert "cdn.jsdelivr" not in zh and "/static/js/heatmap.js" in zh
    en = client.get("/incidents/map?lang=en").get_data(as_text=True)
    assert "<title>Incident heatmap</title>" in en and "Overdue incidents" in en
    ch = client.get("/incidents/choropleth?lang=zh_CN").get_data(as_text=True)
    assert "每千人事件数" in ch
    assert client.get("/incidents/map?severity=huge").status_code == 400


def test_gcj02_base_map_shifts_heat_and_choropleth(populated, make_app) -> None:
    from mapsvc.services.chinacrs import wgs84_to_gcj02

    client = make_app(populated.engine).test_client()
    (x0, y0), (x1, y1) = ll(-100, -100), ll(1100, 700)
    plain = client.get(f"/api/heatmap?bbox={x0},{y0},{x1},{y1}&zoom=16").get_json()
    g0, g1 = wgs84_to_gcj02(x0, y0), wgs84_to_gcj02(x1, y1)
    shifted = client.get(
        f"/api/heatmap?bbox={float(g0[0])},{float(g0[1])},{float(g1[0])},{float(g1[1])}"
        "&zoom=16&crs=gcj02"
    ).get_json()
    assert shifted["total"] == plain["total"] == 600
    for p, q in zip(plain["points"], shifted["points"], strict=True):
        lon, lat = wgs84_to_gcj02(p[0], p[1])
        assert q[0] == pytest.approx(float(lon), abs=2e-5) and q[2] == p[2]
        assert q[1] == pytest.approx(float(lat), abs=2e-5)
    assert client.get("/api/heatmap?crs=mars2").status_code == 400
    amap = make_app(populated.engine, BASEMAP="amap").test_client()
    html = amap.get("/incidents/map?lang=en").get_data(as_text=True)
    assert "autonavi.com" in html and '"crs": "gcj02"' in html
    fc = amap.get("/api/incidents/choropleth?crs=gcj02").get_json()
    assert len(fc["features"]) == 3


def test_demo_heatmap_and_choropleth_pages(live_server, page) -> None:
    page.goto(f"{live_server.url}/incidents/map?lang=zh_CN")
    wait_until(page, "document.querySelector('.folium-map').dataset.heatLoading === '0'")
    assert int(page.eval_on_selector(".folium-map", "e => e.dataset.heatTotal")) > 0
    assert page.title() == "事件热力图"
    page.goto(f"{live_server.url}/incidents/choropleth?lang=en")
    page.wait_for_selector("path.leaflet-interactive")
    assert page.locator("path.leaflet-interactive").count() > 100  # the demo's grids
    assert page.errors == []
