"""GeoJSON API: bbox filtering, computed area/length, posts on a date, datums, errors."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from pyproj import Geod
from shapely.geometry import shape

GEOD = Geod(ellps="WGS84")


def codes(resp) -> set[str]:
    assert resp.status_code == 200, resp.get_data(as_text=True)
    fc = resp.get_json()
    assert fc["type"] == "FeatureCollection"
    return {f["properties"]["code"] for f in fc["features"]}


def test_grids_bbox_keeps_features_inside_and_drops_those_outside(small, small_client) -> None:
    c = small_client
    every = codes(c.get("/api/grids"))
    assert every == set(small.grids)
    # a box strictly inside grid A-01
    assert codes(c.get("/api/grids?bbox=118.581,24.901,118.584,24.909")) == {"350502001001-01"}
    # a box over the east half touches both B grids only
    assert codes(c.get("/api/grids?bbox=118.591,24.901,118.599,24.909")) == {
        "350502001002-01",
        "350502001002-02",
    }
    # a box straddling the A-02 / B-01 edge
    assert codes(c.get("/api/grids?bbox=118.589,24.905,118.591,24.906")) == {
        "350502001001-02",
        "350502001002-01",
    }
    # a box well away from the district
    assert codes(c.get("/api/grids?bbox=100,10,101,11")) == set()
    # what the API keeps is what shapely says intersects, for a few odd boxes
    for bbox in [(118.5, 24.8, 118.5826, 24.95), (118.594, 24.909, 118.61, 24.92)]:
        want = {k for k, g in small.grids.items() if g.intersects(shape_box(bbox))}
        got = codes(c.get("/api/grids?bbox=" + ",".join(map(str, bbox))))
        assert got == want and got


def shape_box(b):
    from shapely.geometry import box

    return box(*b)


def test_segments_and_communities_bbox(small, small_client) -> None:
    c = small_client
    assert codes(c.get("/api/segments")) == set(small.segments)
    assert codes(c.get("/api/segments?bbox=118.580,24.904,118.586,24.906")) == {"t:S1"}
    assert codes(c.get("/api/segments?bbox=118.589,24.9065,118.591,24.9075")) == {"t:S3"}
    assert codes(c.get("/api/segments?bbox=118.580,24.908,118.600,24.910")) == set()
    assert codes(c.get("/api/communities?bbox=118.581,24.901,118.584,24.909")) == {"350502001001"}
    assert codes(c.get("/api/communities")) == set(small.communities)
    assert codes(c.get("/api/district")) == {"350502000000"}
    assert codes(c.get("/api/district?bbox=100,10,101,11")) == set()


def test_areas_and_lengths_are_geodesic(small, small_client) -> None:
    grids = small_client.get("/api/grids").get_json()["features"]
    for f in grids:
        poly = small.grids[f["properties"]["code"]]
        geodesic_km2 = abs(GEOD.geometry_area_perimeter(poly)[0]) / 1e6
        assert f["properties"]["area_km2"] == pytest.approx(geodesic_km2, rel=1e-4)
        # ~0.5 km x 1.1 km; a degree-based "area" would be ~5e-5
        assert 0.5 < f["properties"]["area_km2"] < 0.6
    segs = small_client.get("/api/segments").get_json()["features"]
    for f in segs:
        line = small.segments[f["properties"]["code"]]
        metres = GEOD.geometry_length(line)
        assert f["properties"]["length_m"] == pytest.approx(metres, rel=1e-4)
    comms = small_client.get("/api/communities").get_json()["features"]
    assert sum(f["properties"]["area_km2"] for f in comms) == pytest.approx(
        sum(f["properties"]["area_km2"] for f in grids), rel=1e-6
    )
    assert {f["properties"]["grids"] for f in comms} == {2}


def test_properties_name_community_head_and_colours(small, small_client) -> None:
    grids = {
        f["properties"]["code"]: f["properties"]
        for f in small_client.get("/api/grids").get_json()["features"]
    }
    a1, b2 = grids["350502001001-01"], grids["350502001002-02"]
    assert a1["community_name"] == "金山社区" and a1["head_name"] == "孙网格长"
    assert b2["community_name"] == small.evil and b2["head_name"] is None
    # grids take their community's colour; the two neighbouring communities differ
    assert a1["colour"] == grids["350502001001-02"]["colour"]
    assert b2["colour"] == grids["350502001002-01"]["colour"]
    assert a1["colour"] != b2["colour"]
    comms = {
        f["properties"]["code"]: f["properties"]
        for f in small_client.get("/api/communities").get_json()["features"]
    }
    assert comms["350502001001"]["colour"] == a1["colour"]
    # the label point lies inside its community
    from shapely.geometry import Point

    for code, p in comms.items():
        assert small.communities[code].contains(Point(p["label_lon"], p["label_lat"]))


def test_segments_show_the_chief_in_post_on_a_date(small, small_client) -> None:
    def by_code(url: str) -> dict:
        return {
            f["properties"]["code"]: f["properties"]
            for f in small_client.get(url).get_json()["features"]
        }

    now = by_code("/api/segments")
    assert now["t:S1"]["chief_name"] == "李新长"
    assert now["t:S3"]["chief_name"] == "赵巷长" and now["t:S3"]["deputy_name"] == "钱副长"
    assert now["t:S2"]["chief_name"] is None and now["t:S2"]["deputy_name"] is None
    before = by_code("/api/segments?date=2025-01-15")
    assert before["t:S1"]["chief_name"] == "王旧长"
    nobody_yet = by_code("/api/segments?date=2023-12-31")
    assert {p["chief_name"] for p in nobody_yet.values()} == {None}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("bbox=1,2,3", "minx,miny,maxx,maxy"),
        ("bbox=a,b,c,d", "numbers"),
        ("bbox=118.6,24.9,118.5,25.0", "min must be below max"),
        ("bbox=0,0,200,10", "outside WGS84"),
        ("zoom=x", "zoom"),
        ("zoom=40", "zoom"),
        ("crs=epsg3857", "crs"),
        ("date=2025-13-01", "date"),
    ],
)
def test_bad_parameters_are_400_with_a_message(small_client, query: str, message: str) -> None:
    for layer in ("grids", "segments", "communities", "district"):
        resp = small_client.get(f"/api/{layer}?{query}")
        assert resp.status_code == 400
        assert message in resp.get_json()["error"]


def test_gcj02_output_and_bbox(small, small_client) -> None:
    """``crs=gcj02`` shifts geometries by the GCJ-02 offset and reads the bbox in GCJ-02."""
    from mapsvc.services.chinacrs import gcj02_to_wgs84

    wgs = small_client.get("/api/grids").get_json()["features"]
    gcj = small_client.get("/api/grids?crs=gcj02").get_json()["features"]
    for a, b in zip(wgs, gcj, strict=True):
        pa = np.array(a["geometry"]["coordinates"][0][0])
        pb = np.array(b["geometry"]["coordinates"][0][0])
        lon, lat = gcj02_to_wgs84(pb[:, 0], pb[:, 1])
        np.testing.assert_allclose(np.column_stack([lon, lat]), pa, atol=2e-6)
        # the offset in Quanzhou is a few hundred metres, never zero
        _, _, dist = GEOD.inv(pa[:, 0], pa[:, 1], pb[:, 0], pb[:, 1])
        assert np.all((dist > 100) & (dist < 1000))
    # a box inside grid A-01 *as drawn on a GCJ-02 map*
    a1 = shape(next(f for f in gcj if f["properties"]["code"].endswith("001-01"))["geometry"])
    inner = a1.buffer(-0.0005).bounds
    got = codes(small_client.get("/api/grids?crs=gcj02&bbox=" + ",".join(map(str, inner))))
    assert got == {"350502001001-01"}


def test_crs_spellings_are_those_of_an_import(small_client) -> None:
    """``crs=bd09ll`` (Baidu's name) and ``GCJ-02`` are read as an import reads them."""
    bd = small_client.get("/api/grids?crs=bd09").get_json()
    assert small_client.get("/api/grids?crs=bd09ll").get_json() == bd
    assert small_client.get("/api/grids?crs=BD-09").get_json() == bd
    gcj = small_client.get("/api/grids?crs=gcj02").get_json()
    assert small_client.get("/api/grids?crs=GCJ-02").get_json() == gcj != bd
    wgs = small_client.get("/api/grids").get_json()
    assert small_client.get("/api/grids?crs=EPSG:4326").get_json() == wgs != gcj
    refused = small_client.get("/api/grids?crs=bd09mc")
    assert refused.status_code == 400
    assert refused.get_json() == {
        "error": "crs must be one of wgs84, gcj02, bd09; got 'bd09mc'",
        "field": "crs",
    }


def test_gzip_when_accepted(small_client) -> None:
    plain = small_client.get("/api/grids")
    packed = small_client.get("/api/grids", headers={"Accept-Encoding": "gzip, deflate"})
    assert plain.headers.get("Content-Encoding") is None
    assert packed.headers["Content-Encoding"] == "gzip"
    assert len(packed.data) < len(plain.data)
    assert json.loads(gzip.decompress(packed.data)) == plain.get_json()


def test_zoom_simplifies_the_demo_outlines(client) -> None:
    """On the real district, a far zoom ships fewer vertices; the same features either way."""

    def vertices(fc: dict) -> int:
        return sum(len(p.exterior.coords) for p in _polys(fc))

    full = client.get("/api/communities").get_json()
    far = client.get("/api/communities?zoom=12").get_json()
    assert [f["id"] for f in far["features"]] == [f["id"] for f in full["features"]]
    assert vertices(far) < 0.6 * vertices(full)
    # properties do not depend on the zoom (areas are from the stored geometry)
    assert [f["properties"]["area_km2"] for f in far["features"]] == [
        f["properties"]["area_km2"] for f in full["features"]
    ]


def _polys(fc: dict):
    for f in fc["features"]:
        g = shape(f["geometry"])
        yield from (g.geoms if hasattr(g, "geoms") else [g])


def test_layer_answers_are_kept_until_a_write(small, small_app, small_client) -> None:
    """A repeat of /api/segments sends the kept bytes without asking the layer again; a
    committed write (a chief's name changed in SQL) is in the very next answer; the public
    map's answer (no names) is kept apart from the admin's."""
    import sqlalchemy as sa

    from mapsvc.web import api

    api.RESPONSES.clear()
    queries = []
    engine = small_app.extensions["mapsvc.engine"]
    sa.event.listen(
        engine,
        "before_cursor_execute",
        lambda c, cur, stmt, *a: queries.append(stmt) if "alley_segment" in stmt else None,
    )

    def chief_of_s1(client) -> str | None:
        features = client.get("/api/segments").get_json()["features"]
        return next(f["properties"] for f in features if f["properties"]["code"] == "t:S1")[
            "chief_name"
        ]

    assert chief_of_s1(small_client) == "李新长"
    asked = len(queries)
    assert chief_of_s1(small_client) == "李新长"
    assert len(queries) == asked  # kept: the layer was not asked again
    anon = small_app.test_client(token=None)
    assert chief_of_s1(anon) != "李新长"  # the public map shows no names, kept or not
    with small.engine.begin() as c:
        c.execute(sa.text("UPDATE staff SET name = '李改名' WHERE name = '李新长'"))
    assert chief_of_s1(small_client) == "李改名"
