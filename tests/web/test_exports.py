"""Exports: every layer in every format and datum, read back with pyogrio and compared with
the database; incidents with the list's filters; the downloads page links them."""

from __future__ import annotations

import io
import zipfile

import pyogrio
import pytest
import shapely
import sqlalchemy as sa

from mapsvc.services import chinacrs
from mapsvc.services.exports import DATUMS, FORMATS, shapefile_names
from mapsvc.services.features import LAYERS

TABLES = {
    "districts": "district",
    "subdistricts": "subdistrict",
    "communities": "community",
    "grids": "grid",
    "segments": "alley_segment",
    "service_centres": "service_centre",
    "incidents": "incident",
}


def _db(engine, table: str) -> dict[int, object]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT id, ST_AsBinary(geom) FROM {table}")).all()
    return {r[0]: shapely.from_wkb(bytes(r[1])) for r in rows}


def _read(body: bytes, fmt: str, tmp_path, name: str):
    path = tmp_path / f"{name}.{fmt}"
    path.write_bytes(body)
    if fmt == "shp":
        with zipfile.ZipFile(io.BytesIO(body)) as zf:
            names = set(zf.namelist())
            stems = {n.rsplit(".", 1)[-1] for n in names}
            assert {"shp", "shx", "dbf", "prj", "cpg"} <= stems, names
            zf.extractall(tmp_path / name)
        cpg = next((tmp_path / name).glob("*.cpg")).read_text()
        assert cpg.strip().upper() in ("UTF-8", "UTF8")
        path = next((tmp_path / name).glob("*.shp"))
    if fmt == "csv":
        assert body.startswith(b"\xef\xbb\xbf")  # a BOM: spreadsheets read it as UTF-8
        return pyogrio.read_dataframe(path, open_options=["GEOM_POSSIBLE_NAMES=WKT"])
    return pyogrio.read_dataframe(path)


@pytest.fixture
def small_with_centre(small):
    from mapsvc.db import session_scope
    from mapsvc.models import Community, ServiceCentre

    with session_scope(small.engine) as s:
        comm = s.scalar(sa.select(Community).where(Community.code == "350502001001"))
        s.add(
            ServiceCentre(
                name="金山党群服务中心",
                community_id=comm.id,
                geom="SRID=4326;POINT(118.583 24.906)",
            )
        )
    return small


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("datum", list(DATUMS))
def test_every_layer_reads_back_equal(small_with_centre, small_client, tmp_path, fmt, datum):
    small = small_with_centre
    for name in LAYERS:
        if name == "incidents":
            continue  # below, with filters
        resp = small_client.get(f"/export/{name}.{fmt}?crs={datum}")
        assert resp.status_code == 200, (name, resp.data[:300])
        assert f"{name}-{datum}" in resp.headers["Content-Disposition"]
        gdf = _read(resp.data, fmt, tmp_path, f"{name}-{datum}")
        db = _db(small.engine, TABLES[name])
        assert sorted(gdf["id"].astype(int)) == sorted(db), name
        if fmt != "csv":
            assert gdf.crs.to_epsg() == DATUMS[datum], name
        for fid, geom in zip(gdf["id"].astype(int), gdf.geometry, strict=True):
            expected = db[fid]
            if datum == "gcj02":
                expected = chinacrs.geometry_from_wgs84(expected, "gcj02")
            # the same shape to the nanodegree (Shapefiles store rings clockwise and
            # one-part polygons as polygons; text formats round the last digit)
            assert geom.geom_type.removeprefix("Multi") == expected.geom_type.removeprefix("Multi")
            assert shapely.hausdorff_distance(geom, expected) < 1e-9, (name, fid)
    # names as stored (Chinese and the hostile name alike), the chief in post on segments
    grids = _read(small_client.get(f"/export/grids.{fmt}?crs={datum}").data, fmt, tmp_path, "g2")
    assert small.evil_grid in set(grids["name"])
    segs = _read(small_client.get(f"/export/segments.{fmt}?crs={datum}").data, fmt, tmp_path, "s2")
    chief = shapefile_names(["id", *LAYERS["segments"].property_names()])["chief_name"]
    col = chief if fmt == "shp" else "chief_name"
    got = dict(zip(segs["code"], segs[col], strict=True))
    assert got["t:S1"] == "李新长" and got["t:S3"] == "赵巷长"


def test_incidents_with_the_list_filters(small, small_client, tmp_path):
    from mapsvc.db import session_scope
    from mapsvc.models import IncidentCategory
    from mapsvc.services.incidents import create_incident

    made: dict[str, list[int]] = {"litter": [], "noise": []}
    with session_scope(small.engine) as s:
        s.add(IncidentCategory(code="litter", name_zh="垃圾", name_en="Litter"))
        s.add(IncidentCategory(code="noise", name_zh="噪音", name_en="Noise"))
        s.flush()
        for i, cat in enumerate(["litter", "noise", "litter", "noise", "litter"]):
            inc = create_incident(
                s,
                {
                    "category": cat,
                    "lon": 118.581 + i * 0.004,
                    "lat": 24.905,
                    "reported_at": f"2025-05-0{i + 1}T10:00:00+08:00",
                },
                actor="test",
            )
            made[cat].append(inc.id)
    for fmt in FORMATS:
        resp = small_client.get(f"/export/incidents.{fmt}?category=litter&crs=gcj02")
        assert resp.status_code == 200, resp.data[:300]
        gdf = _read(resp.data, fmt, tmp_path, f"inc-{fmt}")
        assert sorted(gdf["id"].astype(int)) == sorted(made["litter"])
        reported = "reported_a" if fmt == "shp" else "reported_at"
        assert all(str(v).endswith("+08:00") for v in gdf[reported])
    # a date range and a bbox together
    resp = small_client.get(
        "/export/incidents.geojson?date_from=2025-05-02&date_to=2025-05-04&bbox=118.580,24.9,118.590,24.91"
    )
    gdf = _read(resp.data, "geojson", tmp_path, "inc-range")
    with small.engine.connect() as conn:
        expected = conn.scalars(
            sa.text(
                "SELECT id FROM incident WHERE reported_at >= '2025-05-02T00:00+08:00'"
                " AND reported_at < '2025-05-05T00:00+08:00'"
                " AND ST_Intersects(geom, ST_MakeEnvelope(118.580, 24.9, 118.590, 24.91, 4326))"
            )
        ).all()
    assert expected and sorted(gdf["id"].astype(int)) == sorted(expected)


def test_bad_requests_are_named(small, small_client):
    assert small_client.get("/export/grids.kml").json["error"].startswith("format 'kml'")
    bad = small_client.get("/export/grids.gpkg?crs=bd09")
    assert bad.status_code == 400 and "crs 'bd09'" in bad.json["error"]
    assert small_client.get("/export/nothing.gpkg").status_code == 404
    unknown = small_client.get("/export/incidents.csv?chief=999999")
    assert unknown.status_code == 404 and "999999" in unknown.get_data(as_text=True)


def test_downloads_page_links_every_layer_with_the_page_filters(small, small_client):
    page = small_client.get("/export/?category=litter&lang=en")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    for name in LAYERS:
        for fmt in FORMATS:
            assert f"/export/{name}.{fmt}?crs=wgs84" in html
    assert "/export/incidents.csv?crs=gcj02&amp;category=litter" in html
    # the nav of a map page links here with the page's filters
    heat = small_client.get("/incidents/list?category=litter").get_data(as_text=True)
    assert "/export/?category=litter" in heat
