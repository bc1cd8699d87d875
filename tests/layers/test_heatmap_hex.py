"""Hexagon bins: counts per ST_HexagonGrid cell as SQL counts them; the API; the page."""

from __future__ import annotations

import gzip
import json

import pytest
import sqlalchemy as sa

from layers import get_layer
from layers.heatmap import (
    OVERDUE_COLOUR,
    class_colour,
    hex_cells,
    hex_size,
    hexagon_outlines,
    hexagon_rings,
    scale_top,
    to_mercator,
)
from mapsvc.db import session_scope
from mapsvc.services.chinacrs import wgs84_to_gcj02
from tests.fixtures.incidents import ll, zoom_and_wait
from tests.fixtures.web import LiveServer, wait_until

WAIT_LOADED = "document.querySelector('.folium-map').dataset.heatLoading === '0'"


def _reference(s, zoom: float, where: str, params: dict, bbox=None) -> list:
    """``[(centre lon, centre lat, n, i, j)]`` per hexagon straight from ST_HexagonGrid:
    point-in-hexagon in SQL."""
    if bbox is not None:
        (x0, y0), (x1, y1) = to_mercator(*bbox[:2]), to_mercator(*bbox[2:])
        where += f" AND i.x_m BETWEEN {x0!r} AND {x1!r} AND i.y_m BETWEEN {y0!r} AND {y1!r}"
    return s.execute(
        sa.text(
            f"""WITH ext AS (
                  SELECT ST_SetSRID(ST_Extent(ST_MakePoint(x_m, y_m)), 3857) AS b FROM incident
                )
                SELECT ST_X(c), ST_Y(c), n, i, j FROM (
                  SELECT ST_Transform(ST_Centroid(h.geom), 4326) AS c, count(*) AS n,
                         h.i, h.j
                  FROM ext, ST_HexagonGrid(:size, ST_Expand(ext.b, :size)) h
                  JOIN incident i
                    ON i.x_m BETWEEN ST_XMin(h.geom) AND ST_XMax(h.geom)
                   AND i.y_m BETWEEN ST_YMin(h.geom) AND ST_YMax(h.geom)
                   AND ST_Contains(h.geom, ST_SetSRID(ST_MakePoint(i.x_m, i.y_m), 3857))
                  WHERE {where}
                  GROUP BY h.geom, h.i, h.j) s"""
        ),
        {"size": hex_size(zoom), **params},
    ).all()


def _same_hexagons(data: dict, reference: list) -> None:
    """The answered cells are ST_HexagonGrid's (i, j) with its counts, and each reference
    hexagon's centre lies in exactly one outline drawn from the answer, of its count."""
    import shapely

    cells = hex_cells(data)
    assert sorted(cells) == sorted((int(i), int(j), int(n)) for _x, _y, n, i, j in reference)
    polys = [shapely.Polygon(ring) for ring in hexagon_outlines(data)]
    tree = shapely.STRtree(polys)
    assert len(polys) == len(reference)
    for lon, lat, n, _i, _j in reference:
        hits = tree.query(shapely.Point(lon, lat), predicate="within")
        assert len(hits) == 1, (lon, lat)
        assert cells[int(hits[0])][2] == n, (lon, lat)


@pytest.mark.parametrize("zoom", [13, 15, 17])
def test_hex_counts_equal_sql(populated, zoom: int) -> None:
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
                _same_hexagons(data, _reference(s, zoom, where, params, bbox))
                counts = [n for _i, _j, n in hex_cells(data)]
                expected = s.scalar(
                    sa.text(f"SELECT count(*) FROM incident i WHERE {where}"), params
                )
                if bbox is None:
                    assert data["total"] == expected, f
                assert data["total"] == sum(counts)
                assert data["max"] == max(counts, default=0)
                assert data["scale_max"] == scale_top(counts)
    # hexagons are regular, of the square cell's area on screen
    ring = hexagon_outlines(data)[0]
    assert len(ring) == 7 and ring[0] == ring[-1]
    # the first paint draws those outlines, with each cell's count
    fc = layer.features(data)
    assert [f["geometry"]["coordinates"][0] for f in fc["features"]] == hexagon_outlines(data)
    assert [(p["i"], p["j"], p["n"]) for p in (f["properties"] for f in fc["features"])] == (
        hex_cells(data)
    )


def test_hex_api_and_errors(populated, make_app) -> None:
    client = make_app(populated.engine).test_client()
    (x0, y0), (x1, y1) = ll(-100, -100), ll(1100, 700)
    base = f"/api/heatmap?bbox={x0},{y0},{x1},{y1}&zoom=16&state=open"
    square = client.get(base).get_json()
    r = client.get(base + "&bins=hex", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["Content-Encoding"] == "gzip"
    hexes = json.loads(gzip.decompress(r.data))
    assert hexes["bins"] == "hex" and "features" not in hexes
    assert hexes["total"] == square["total"] > 0
    assert hexes["total"] == sum(n for _i, _j, n in hexes["cells"])
    assert hexes["classes"][-1][2] is None
    assert hexes["hex_size"] == hex_size(16)
    for di, dj, n in hexes["cells"]:
        assert di >= 0 and dj >= 0 and n >= 1
    # about 10 bytes a hexagon instead of a 250-byte GeoJSON polygon
    assert len(gzip.decompress(r.data)) < 40 * len(hexes["cells"]) + 1000
    none = client.get("/api/heatmap?zoom=14&bins=hex&category=no_such").get_json()
    assert none["total"] == 0 and none["cells"] == [] and none["scale_max"] == 1
    r = client.get("/api/heatmap?zoom=14&bins=tri")
    assert r.status_code == 400
    assert r.get_json()["field"] == "bins" and "hex" in r.get_json()["error"]
    assert client.get("/api/heatmap?zoom=14&bins=hex&chief=999999").status_code == 404
    # GCJ-02 base maps: the same hexagons, moved
    gcj = client.get("/api/heatmap?zoom=16&bins=hex&crs=gcj02").get_json()
    wgs = client.get("/api/heatmap?zoom=16&bins=hex").get_json()
    assert gcj["cells"] == wgs["cells"] and gcj["origin"] == wgs["origin"]
    assert "centres" not in wgs and len(gcj["centres"]) == len(gcj["cells"])

    for ring_g, ring_w in zip(hexagon_outlines(gcj), hexagon_outlines(wgs), strict=True):
        a, b = ring_g[0], ring_w[0]
        assert 0.001 < abs(a[0] - b[0]) < 0.01  # GCJ-02 shifts a few hundred metres
        # the moved outline is the WGS84 outline moved, to well under a metre (1e-5 deg)
        moved = wgs84_to_gcj02([p[0] for p in ring_w], [p[1] for p in ring_w])
        for p, qx, qy in zip(ring_g, *moved, strict=True):
            assert p == pytest.approx((qx, qy), abs=1e-5)
    # and the centre each outline is drawn around is the cell's centre in PostGIS, moved
    with populated.engine.connect() as c:
        for (i, j, _n), (lon, lat) in zip(hex_cells(gcj), gcj["centres"], strict=True):
            x, y = c.execute(
                sa.text(
                    "SELECT ST_X(p), ST_Y(p) FROM ST_Transform(ST_Centroid(ST_SetSRID("
                    "ST_Hexagon(:s, :i, :j), 3857)), 4326) p"
                ),
                {"s": gcj["hex_size"], "i": i, "j": j},
            ).one()
            assert (lon, lat) == pytest.approx(
                tuple(float(v) for v in wgs84_to_gcj02(x, y)), abs=1e-6
            )


def test_hex_page_in_chromium(populated, make_app, page) -> None:
    server = LiveServer(make_app(populated.engine))
    try:
        page.goto(f"{server.url}/incidents/map?lang=en")
        wait_until(page, WAIT_LOADED)
        square_total = int(page.eval_on_selector(".folium-map", "e => e.dataset.heatTotal"))
        # the toggle in the form
        page.select_option("select[name=bins]", "hex")
        with page.expect_navigation():
            page.click("#incident-filters button[type=submit]")
        wait_until(page, WAIT_LOADED)
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
        zoom = int(ds["heatZoom"])
        assert page.inner_text(".mapsvc-legend").startswith("Incidents per hexagon")
        # zoom in: refetched, smaller hexagons, more of them over fewer incidents
        cells = int(ds["heatCells"])
        zoom_and_wait(page, 1)
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
        # the refetched hexagons (built in the browser from cell indices) are ST_Hexagon's:
        # the outlines layers/heatmap.py draws, which the test below compares with PostGIS
        drawn = page.evaluate(
            """() => { const m = Object.values(window).find(v => v instanceof L.Map);
            const out = []; m.eachLayer(l => { if (l.feature && l.feature.properties &&
              l.feature.properties.n !== undefined) out.push([l.feature.properties.i,
              l.feature.properties.j, l.getLatLngs()[0].map(p => [p.lng, p.lat])]); });
            return out; }"""
        )
        size = hex_size(zoom + 1)
        assert len(drawn) == n_paths
        for i, j, latlngs in drawn:
            ring = hexagon_rings([(i, j)], size, 12)[0]
            assert len(latlngs) == 6  # Leaflet drops the closing vertex
            for p, q in zip(latlngs, ring[:6], strict=True):
                assert p == pytest.approx(q, abs=1e-9), (i, j)
        # GCJ-02 answers: the browser draws each hexagon around its moved centre, as the
        # first paint does
        answer, rings = page.evaluate(
            """async () => { const d = await (await fetch(
              '/api/heatmap?zoom=16&bins=hex&crs=gcj02')).json();
            return [d, MapsvcHeatmap.hexFeatures(d, L.CRS.EPSG3857).features.map(
              f => f.geometry.coordinates[0])]; }"""
        )
        assert len(answer["centres"]) == len(rings) > 10
        for ring, mine in zip(rings, hexagon_outlines(answer, 12), strict=True):
            for p, q in zip(ring, mine, strict=True):
                assert p == pytest.approx(q, abs=1e-9)
        # overdue incidents (purple circles) stay drawn above the refilled hexagons
        assert page.locator(".leaflet-interactive").count() > n_paths
        last = page.eval_on_selector(
            ".leaflet-overlay-pane svg g", "g => g.lastElementChild.getAttribute('stroke')"
        )
        assert last == OVERDUE_COLOUR
        assert page.errors == []
    finally:
        server.stop()


def test_hexagon_rings_are_postgis_hexagons(fresh_engine) -> None:
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
