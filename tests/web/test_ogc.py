"""OGC API Features at /ogc/: pygeoapi over our layers, read by real clients on a live server.

OWSLib's ``Features`` and GDAL's OAPIF driver (``ogrinfo`` / ``ogr2ogr``) are the clients a
GIS office uses; the features they read must equal the database's.
"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pyogrio
import pytest
import shapely
import shapely.ops
import sqlalchemy as sa

from mapsvc.services import chinacrs
from mapsvc.services.features import LAYERS
from mapsvc.services.ogc import CRS84, EPSG3857, EPSG4326, EPSG4490, GCJ02_URI
from tests.fixtures.accounts import ADMIN_TOKEN


@pytest.fixture
def gis_headers() -> dict[str, str]:
    """Headers a GIS client sends to reach /ogc/: an API token (the test admin's)."""
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _gdal_config(headers: dict[str, str]) -> list[str]:
    if not headers:
        return []
    lines = "\r\n".join(f"{k}: {v}" for k, v in headers.items())
    return ["--config", "GDAL_HTTP_HEADERS", lines]


def _db_grids(engine) -> dict[int, tuple[str, object]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, code, ST_AsBinary(geom) FROM grid")).all()
    return {r[0]: (r[1], shapely.from_wkb(bytes(r[2]))) for r in rows}


def test_landing_conformance_and_collections(small, small_client):
    landing = small_client.get("/ogc/?f=json")
    assert landing.status_code == 200, landing.data
    rels = {link["rel"] for link in landing.json["links"]}
    assert {"conformance", "data"} <= rels
    conf = small_client.get("/ogc/conformance?f=json").json["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in conf
    assert "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs" in conf
    cols = small_client.get("/ogc/collections?f=json").json["collections"]
    assert {c["id"] for c in cols} == set(LAYERS)
    grids = next(c for c in cols if c["id"] == "grids")
    assert {CRS84, EPSG4326, EPSG4490, EPSG3857, GCJ02_URI} <= set(grids["crs"])
    html = small_client.get("/ogc/collections?f=html")
    assert html.status_code == 200
    assert "grids" in html.get_data(as_text=True)


def test_items_filters_paging_and_single_item(small, small_client):
    db = _db_grids(small.engine)
    page = small_client.get("/ogc/collections/grids/items?f=json&limit=3&offset=1").json
    assert page["numberMatched"] == len(db)
    assert page["numberReturned"] == 3
    assert [f["id"] for f in page["features"]] == sorted(db)[1:4]
    # property filter
    one = small_client.get("/ogc/collections/grids/items?f=json&code=350502001002-01").json
    assert [f["properties"]["code"] for f in one["features"]] == ["350502001002-01"]
    # bbox: only the two western grids meet a box inside community A
    west = small_client.get(
        "/ogc/collections/grids/items?f=json&bbox=118.581,24.901,118.589,24.909"
    )
    codes = sorted(f["properties"]["code"] for f in west.json["features"])
    assert codes == ["350502001001-01", "350502001001-02"]
    # single item, equal to the database's geometry
    gid = small.ids["350502001001-01"]
    item = small_client.get(f"/ogc/collections/grids/items/{gid}?f=json").json
    assert shapely.geometry.shape(item["geometry"]).equals(db[gid][1])
    missing = small_client.get("/ogc/collections/grids/items/999999?f=json")
    assert missing.status_code == 404
    # segments carry the chief in post today
    segs = small_client.get("/ogc/collections/segments/items?f=json&limit=10").json["features"]
    chiefs = {f["properties"]["code"]: f["properties"]["chief_name"] for f in segs}
    assert chiefs == {"t:S1": "李新长", "t:S2": None, "t:S3": "赵巷长"}


def test_crs_and_bbox_crs(small, small_client):
    gid = small.ids["350502001001-01"]
    geom = _db_grids(small.engine)[gid][1]
    url = f"/ogc/collections/grids/items/{gid}?f=json"
    merc = small_client.get(url + f"&crs={EPSG3857}")
    assert merc.headers["Content-Crs"] == f"<{EPSG3857}>"
    from pyproj import Transformer

    to_merc = Transformer.from_crs(4326, 3857, always_xy=True)
    expected = shapely.transform(geom, lambda xy: np.column_stack(to_merc.transform(*xy.T)))
    got = shapely.geometry.shape(merc.json["geometry"])
    assert got.equals_exact(expected, tolerance=1e-3)
    # EPSG:4326 is lat, lon (the authority's axis order)
    lat_lon = shapely.geometry.shape(small_client.get(url + f"&crs={EPSG4326}").json["geometry"])
    assert lat_lon.equals_exact(shapely.ops.transform(lambda x, y: (y, x), geom), 1e-9)
    cgcs = small_client.get(url + f"&crs={EPSG4490}")
    assert cgcs.headers["Content-Crs"] == f"<{EPSG4490}>"
    # GCJ-02: shifted by chinacrs, the service's one conversion
    gcj = small_client.get(url + f"&crs={GCJ02_URI}")
    assert gcj.status_code == 200, gcj.data
    assert gcj.headers["Content-Crs"] == f"<{GCJ02_URI}>"
    shifted = chinacrs.geometry_from_wgs84(geom, "gcj02")
    assert shapely.geometry.shape(gcj.json["geometry"]).equals_exact(shifted, 1e-9)
    # bbox in Web Mercator and in GCJ-02 select what the same WGS84 box selects
    wgs_box = (118.581, 24.901, 118.584, 24.909)
    x0, y0 = to_merc.transform(wgs_box[0], wgs_box[1])
    x1, y1 = to_merc.transform(wgs_box[2], wgs_box[3])
    items = "/ogc/collections/grids/items?f=json"
    by_merc = small_client.get(items + f"&bbox={x0},{y0},{x1},{y1}&bbox-crs={EPSG3857}").json
    (gx0, gx1), (gy0, gy1) = chinacrs.wgs84_to_gcj02(
        np.array(wgs_box[0::2]), np.array(wgs_box[1::2])
    )
    by_gcj = small_client.get(items + f"&bbox={gx0},{gy0},{gx1},{gy1}&bbox-crs={GCJ02_URI}").json
    assert [f["id"] for f in by_merc["features"]] == [gid]
    assert [f["id"] for f in by_gcj["features"]] == [gid]


def test_pygeoapi_cannot_resolve_gcj02():
    """Why GCJ-02 is converted by the service: pygeoapi's CRS code is pyproj's."""
    from pygeoapi.util import get_crs_from_uri
    from pyproj.exceptions import CRSError

    with pytest.raises(CRSError):
        get_crs_from_uri(GCJ02_URI)


@pytest.fixture
def small_incidents(small) -> dict[str, list[int]]:
    """Three incidents in March 2025 and two in April in the small district."""
    from mapsvc.db import session_scope
    from mapsvc.models import IncidentCategory
    from mapsvc.services.incidents import create_incident

    ids: dict[str, list[int]] = {"march": [], "april": []}
    with session_scope(small.engine) as s:
        s.add(IncidentCategory(code="litter", name_zh="垃圾", name_en="Litter"))
        s.flush()
        for month, days in (("march", (3, 15, 31)), ("april", (1, 20))):
            for day in days:
                reported = f"2025-{3 if month == 'march' else 4:02d}-{day:02d}T12:00:00+00:00"
                inc = create_incident(
                    s,
                    {"category": "litter", "lon": 118.582, "lat": 24.905, "reported_at": reported},
                    actor="test",
                )
                ids[month].append(inc.id)
    return ids


def test_incidents_datetime(small_incidents, small_client):
    """``datetime`` filters incidents by the time they were reported."""
    ids = small_incidents
    got = small_client.get(
        "/ogc/collections/incidents/items?f=json&limit=100"
        "&datetime=2025-03-01T00:00:00Z/2025-03-31T23:59:59Z"
    ).json
    assert sorted(f["id"] for f in got["features"]) == sorted(ids["march"])
    open_end = small_client.get(
        "/ogc/collections/incidents/items?f=json&limit=100&datetime=2025-04-01T00:00:00Z/.."
    ).json
    assert sorted(f["id"] for f in open_end["features"]) == sorted(ids["april"])


def test_owslib_reads_collections_and_items(small, small_live, gis_headers):
    from owslib.ogcapi.features import Features

    api = Features(f"{small_live.url}/ogc", headers=gis_headers)
    ids = {c["id"] for c in api.collections()["collections"]}
    assert ids == set(LAYERS)
    db = _db_grids(small.engine)
    items = api.collection_items("grids", limit=100)
    assert items["numberMatched"] == len(db)
    got = {f["id"]: shapely.geometry.shape(f["geometry"]) for f in items["features"]}
    assert set(got) == set(db)
    for gid, (_, geom) in db.items():
        assert got[gid].equals(geom)
    one = api.collection_item("grids", str(small.ids["350502001002-02"]))
    assert one["properties"]["name"] == small.evil_grid


def test_gdal_lists_and_copies_a_collection(small, small_live, gis_headers, tmp_path):
    config = _gdal_config(gis_headers)
    listing = subprocess.run(
        ["ogrinfo", "-ro", "-q", *config, f"OAPIF:{small_live.url}/ogc"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    for name in LAYERS:
        assert f": {name}" in listing, listing
    out = tmp_path / "grids.gpkg"
    subprocess.run(
        ["ogr2ogr", *config, "-f", "GPKG", str(out), f"OAPIF:{small_live.url}/ogc", "grids"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    gdf = pyogrio.read_dataframe(out, fid_as_index=True)
    db = _db_grids(small.engine)
    assert sorted(gdf["code"]) == sorted(code for code, _ in db.values())
    by_code = {code: geom for code, geom in db.values()}
    for code, geom in zip(gdf["code"], gdf.geometry, strict=True):
        assert geom.equals(by_code[code]), code
    assert json.loads(gdf.crs.to_json())["id"]["code"] in (4326, "CRS84")
