"""Hexagon bins: counts per ST_HexagonGrid cell as SQL counts them; the API; the page."""

from __future__ import annotations

import gzip
import json

import pytest
import sqlalchemy as sa

from layers import get_layer
from layers.heatmap import OVERDUE_COLOUR, class_colour, hex_size, scale_top, to_mercator
from mapsvc.db import session_scope
from tests.conftest import LiveServer
from tests.incidents.conftest import ll

WAIT_LOADED = "document.querySelector('.folium-map').dataset.heatLoading === '0'"


def _reference(s, zoom: float, where: str, params: dict, bbox=None) -> list:  # noqa: ANN001
    """``[(centre lon, centre lat, n)]`` per hexagon straight from ST_HexagonGrid:
    point-in-hexagon in SQL."""
    if bbox is not None:
        (x0, y0), (x1, y1) = to_mercator(*bbox[:2]), to_mercator(*bbox[2:])
        where += f" AND i.x_m BETWEEN {x0!r} AND {x1!r} AND i.y_m BETWEEN {y0!r} AND {y1!r}"
    return s.execute(
        sa.text(
            f"""WITH ext AS (
                  SELECT ST_SetSRID(ST_Extent(ST_MakePoint(x_m, y_m)), 3857) AS b FROM incident
                )
                SELECT ST_X(c), ST_Y(c), n FROM (
                  SELECT ST_Transform(ST_Centroid(h.geom), 4326) AS c, count(*) AS n
                  FROM ext, ST_HexagonGrid(:size, ST_Expand(ext.b, :size)) h
                  JOIN incident i
                    ON i.x_m BETWEEN ST_XMin(h.geom) AND ST_XMax(h.geom)
                   AND i.y_m BETWEEN ST_YMin(h.geom) AND ST_YMax(h.geom)
                   AND ST_Contains(h.geom, ST_SetSRID(ST_MakePoint(i.x_m, i.y_m), 3857))
                  WHERE {where}
                  GROUP BY h.geom) s"""
        ),
        {"size": hex_size(zoom), **params},
    ).all()


def _same_hexagons(features: list[dict], reference: list) -> None:
    """Each reference hexagon's centre lies in exactly one answered hexagon, of its count."""
    import shapely

    polys = [shapely.geometry.shape(f["geometry"]) for f in features]
    tree = shapely.STRtree(polys)
    assert len(features) == len(reference)
    for lon, lat, n in reference:
        hits = tree.query(shapely.Point(lon, lat), predicate="within")
        assert len(hits) == 1, (lon, lat)
        assert features[int(hits[0])]["properties"]["n"] == n, (lon, lat)


@pytest.mark.parametrize("zoom", [13, 15, 17])
def test_hex_counts_equal_sql(populated, zoom: int) -> None:  # noqa: ANN001
    d = populated
    layer = get_layer("incident_hexbins")
    (bx0, by0), (bx1, by1) = ll(100, 50), ll(800, 500)
    cases = [
        ({}, "TRUE", {}),
        ({"state": "closed"}, "i.state = 'closed'", {}),
        ({"chief": d.staff["chief1"]}, "i.chief_id = :c", {"c": d.staff["chief1"]}),
    ]
    with session_scope(d.engine) as s:
        for f, where, params in cases:
            for bbox in (None, (bx0, by0, bx1, by1)):
                data = layer.query(s, bbox, zoom=zoom, **f)
                _same_hexagons(data["features"], _reference(s, zoom, where, params, bbox))
                counts = [ft["properties"]["n"] for ft in data["features"]]
                expected = s.scalar(
                    sa.text(f"SELECT count(*) FROM incident i WHERE {where}"), params
                )
                if bbox is None:
                    assert data["total"] == expected, f
                assert data["total"] == sum(counts)
                assert data["max"] == max(counts, default=0)
                assert data["scale_max"] == scale_top(counts)
    # hexagons are regular, of the square cell's area on screen
    ring = data["features"][0]["geometry"]["coordinates"][0]
    assert len(ring) == 7 and ring[0] == ring[-1]


def test_hex_api_and_errors(populated, make_app) -> None:  # noqa: ANN001
    client = make_app(populated.engine).test_client()
    (x0, y0), (x1, y1) = ll(-100, -100), ll(1100, 700)
    base = f"/api/heatmap?bbox={x0},{y0},{x1},{y1}&zoom=16&state=open"
    square = client.get(base).get_json()
    r = client.get(base + "&bins=hex", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["Content-Encoding"] == "gzip"
    hexes = json.loads(gzip.decompress(r.data))
    assert hexes["type"] == "FeatureCollection" and hexes["bins"] == "hex"
    assert hexes["total"] == square["total"] > 0
    assert hexes["classes"][-1][2] is None
    for ft in hexes["features"]:
        assert ft["geometry"]["type"] == "Polygon" and ft["properties"]["n"] >= 1
    none = client.get("/api/heatmap?zoom=14&bins=hex&category=no_such").get_json()
    assert none["total"] == 0 and none["features"] == [] and none["scale_max"] == 1
    r = client.get("/api/heatmap?zoom=14&bins=tri")
    assert r.status_code == 400
    assert r.get_json()["field"] == "bins" and "hex" in r.get_json()["error"]
    assert client.get("/api/heatmap?zoom=14&bins=hex&chief=999999").status_code == 404
    # GCJ-02 base maps: the same hexagons, moved
    gcj = client.get("/api/heatmap?zoom=16&bins=hex&crs=gcj02").get_json()
    wgs = client.get("/api/heatmap?zoom=16&bins=hex").get_json()
    assert [f["properties"]["n"] for f in gcj["features"]] == [
        f["properties"]["n"] for f in wgs["features"]
    ]
    a, b = (
        gcj["features"][0]["geometry"]["coordinates"][0][0],
        wgs["features"][0]["geometry"]["coordinates"][0][0],
    )
    assert 0.001 < abs(a[0] - b[0]) < 0.01  # GCJ-02 shifts a few hundred metres


def test_hex_page_in_chromium(populated, make_app, page) -> None:  # noqa: ANN001
    server = LiveServer(make_app(populated.engine))
    try:
        page.goto(f"{server.url}/incidents/map?lang=en")
        page.wait_for_function(WAIT_LOADED)
        square_total = int(page.eval_on_selector(".folium-map", "e => e.dataset.heatTotal"))
        # the toggle in the form
        page.select_option("select[name=bins]", "hex")
        with page.expect_navigation():
            page.click("#incident-filters button[type=submit]")
        page.wait_for_function(WAIT_LOADED)
        assert "bins=hex" in page.url
        assert page.locator("canvas.leaflet-heatmap-layer").count() == 0
        ds = page.eval_on_selector(".folium-map", "e => ({...e.dataset})")
        assert int(ds["heatTotal"]) == square_total == 600
        top = int(ds["heatScaleMax"])
        # one filled path per hexagon, each in the colour of its count's class
        fills = page.evaluate(
            """() => { const m = Object.values(window).find(v => v instanceof L.Map);
            const out = []; m.eachLayer(l => { if (l.feature && l.feature.properties &&
              l.feature.properties.n !== undefined) out.push([l.feature.properties.n,
              l.options.fillColor]); }); return out; }"""
        )
        assert len(fills) == int(ds["heatCells"]) > 10
        assert all(colour == class_colour(n, top) for n, colour in fills)
        assert page.inner_text(".mapsvc-legend").startswith("Incidents per hexagon")
        # zoom in: refetched, smaller hexagons, more of them over fewer incidents
        cells = int(ds["heatCells"])
        page.evaluate(
            "() => { const m = Object.values(window).find(v => v instanceof L.Map);"
            " m.setZoom(m.getZoom() + 1); }"
        )
        page.wait_for_timeout(400)
        page.wait_for_function(WAIT_LOADED)
        zoomed = page.eval_on_selector(".folium-map", "e => ({...e.dataset})")
        assert int(zoomed["heatZoom"]) == int(ds["heatZoom"]) + 1
        assert int(zoomed["heatTotal"]) <= 600
        n_paths = page.evaluate(
            """() => { const m = Object.values(window).find(v => v instanceof L.Map);
            let k = 0; m.eachLayer(l => { if (l.feature && l.feature.properties &&
              l.feature.properties.n !== undefined) k++; }); return k; }"""
        )
        assert n_paths == int(zoomed["heatCells"])
        assert int(zoomed["heatCells"]) != cells
        # overdue incidents (purple circles) stay drawn above the refilled hexagons
        assert page.locator(".leaflet-interactive").count() > n_paths
        last = page.eval_on_selector(
            ".leaflet-overlay-pane svg g", "g => g.lastElementChild.getAttribute('stroke')"
        )
        assert last == OVERDUE_COLOUR
        assert page.errors == []
    finally:
        server.stop()


def test_hexagon_rings_are_postgis_hexagons(fresh_engine) -> None:  # noqa: ANN001
    from layers.heatmap import hexagon_rings

    with fresh_engine.connect() as c:
        for zoom in (11, 16, 19):
            size = hex_size(zoom)
            # around the origin, and in Quanzhou (odd and even columns)
            i0, j0 = int(13.2e6 / (1.5 * size)), int(2.86e6 / (3**0.5 * size))
            cells = [(0, 0), (1, 0), (-1, 0), (-3, -7), (i0, j0), (i0 + 1, j0), (i0, j0 + 1)]
            mine = hexagon_rings(cells, size, 7)
            for (i, j), ring in zip(cells, mine, strict=True):
                gj = c.scalar(
                    sa.text(
                        "SELECT ST_AsGeoJSON(ST_Transform(ST_SetSRID("
                        "ST_Hexagon(:s, :i, :j), 3857), 4326), 9)"
                    ),
                    {"s": size, "i": i, "j": j},
                )
                theirs = json.loads(gj)["coordinates"][0]
                assert len(ring) == len(theirs) == 7
                for p, q in zip(ring, theirs, strict=True):
                    assert p == pytest.approx(q, abs=2e-7), (zoom, i, j)
