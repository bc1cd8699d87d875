"""Coordinates out of range and unknown CRSs in every import path other than boundaries
(tests/services/test_boundaries_import.py): one wording, naming where, nothing stored."""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import pytest
import sqlalchemy as sa
from pyproj import Transformer
from shapely.geometry import LineString
from sqlalchemy.orm import Session

from mapsvc.core.errors import ValidationError
from mapsvc.core.values import check_lonlat, lonlat_problem
from mapsvc.services.incident_import import import_csv
from mapsvc.services.incidents import create_incident
from mapsvc.services.patrol import log_visit, upload_track
from mapsvc.services.streets import split_ways
from tests.fixtures.incidents import ll

T0 = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC).timestamp()


def test_the_one_wording() -> None:
    assert lonlat_problem(118.6, 24.9) is None
    assert lonlat_problem(118.6, 500) == "latitude 500 out of range -90..90"
    assert lonlat_problem(-180.5, 0) == "longitude -180.5 out of range -180..180"
    assert lonlat_problem(float("nan"), 0) == "longitude nan out of range -180..180"
    with pytest.raises(ValidationError) as info:
        check_lonlat(1, 91, "feature 3", fields=("lon", "lat"))
    assert info.value.message == "latitude 91 out of range -90..90 in feature 3"
    assert info.value.details == {"field": "lat"}


def _track(lat3: float) -> list[list[float]]:
    pts = [[*ll(100 + 10 * i, 150), T0 + 10 * i] for i in range(6)]
    pts[2][1] = lat3
    return pts


def _tracks(engine) -> int:
    with engine.connect() as c:
        return c.scalar(sa.text("SELECT count(*) FROM patrol_track"))


def test_a_track_point_out_of_range_is_named(district) -> None:
    staff = district.staff["chief1"]
    with Session(district.engine) as s:
        with pytest.raises(ValidationError) as info:
            upload_track(s, staff, {"points": _track(500)})
        assert info.value.message == "latitude 500 out of range -90..90 in point 3; 1 such point(s)"
        assert info.value.details["points"] == [3]
        # GCJ-02 tracks are checked before conversion, where the number is the phone's
        with pytest.raises(ValidationError, match="latitude 500 out of range -90..90 in point 3"):
            upload_track(s, staff, {"points": _track(500)}, crs="gcj02")
        gpx = (
            '<?xml version="1.0"?><gpx version="1.1" creator="t" '
            'xmlns="http://www.topografix.com/GPX/1/1"><trk><trkseg>'
            + "".join(
                f'<trkpt lat="{lat}" lon="{lon}"><time>'
                f"{dt.datetime.fromtimestamp(t, dt.UTC).isoformat()}</time></trkpt>"
                for lon, lat, t in _track(-91)
            )
            + "</trkseg></trk></gpx>"
        )
        with pytest.raises(ValidationError, match="latitude -91 out of range -90..90 in point 3"):
            upload_track(s, staff, gpx, fmt="gpx")
    assert _tracks(district.engine) == 0


def test_an_unknown_crs_in_a_geojson_track_is_named(district) -> None:
    coords = [c[:2] for c in _track(24.905)]
    doc = {
        "type": "Feature",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::999999"}},
        "geometry": {"type": "LineString", "coordinates": coords},
        "properties": {"times": [T0 + 10 * i for i in range(len(coords))]},
    }
    with Session(district.engine) as s:
        with pytest.raises(ValidationError) as info:
            upload_track(s, district.staff["chief1"], doc)
        assert info.value.message.startswith(
            "unknown CRS 'urn:ogc:def:crs:EPSG::999999' in the track's crs"
        )
        # a CRS pyproj knows but a track cannot be in is named as well
        doc["crs"] = {"type": "name", "properties": {"name": "EPSG:3857"}}
        with pytest.raises(ValidationError, match="unsupported track CRS 'EPSG:3857'"):
            upload_track(s, district.staff["chief1"], doc)
        # GeoJSON's own longitude/latitude is WGS84
        doc["crs"] = {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}}
        report = upload_track(s, district.staff["chief1"], doc)
        assert report["source_crs"] == "wgs84"


def test_an_incident_out_of_range_is_named_and_not_stored(district) -> None:
    lon, lat = ll(200, 170)
    with Session(district.engine) as s:
        with pytest.raises(ValidationError) as info:
            create_incident(s, {"category": "road", "lon": lon, "lat": 500})
        assert info.value.message == "latitude 500 out of range -90..90 in the request"
        assert info.value.details == {"field": "lat"}
        # a projected CRS beyond its own area: named after the conversion
        with pytest.raises(ValidationError, match="in the request converted from EPSG:32650"):
            create_incident(s, {"category": "road", "lon": 1e12, "lat": 1e12, "crs": "EPSG:32650"})
        # while metres inside it are a place
        x, y = Transformer.from_crs(4326, 32650, always_xy=True).transform(lon, lat)
        inc = create_incident(s, {"category": "road", "lon": x, "lat": y, "crs": "EPSG:32650"})
        assert inc.grid_id == district.grid["A1"]
        s.rollback()
        with pytest.raises(ValidationError) as info:
            log_visit(s, district.staff["chief1"], dt.date(2026, 3, 2), place="x", lonlat=(lon, 95))
        assert info.value.message == "latitude 95 out of range -90..90 in the visit"
    with district.engine.connect() as c:
        assert c.scalar(sa.text("SELECT count(*) FROM incident")) == 0
        assert c.scalar(sa.text("SELECT count(*) FROM patrol_visit")) == 0


def test_an_incident_csv_row_out_of_range_is_a_bad_row(district, tmp_path) -> None:
    from mapsvc.services.incident_import import ImportRejected

    lon, lat = ll(200, 170)
    path = tmp_path / "in.csv"
    path.write_text(
        "id,lat,lon,category,opened\n"
        f"a1,{lat},{lon},road,2026-01-05T08:00:00+08:00\n"
        f"a2,500,{lon},road,2026-01-05T08:00:00+08:00\n"
        f"a3,{lat},-200,road,2026-01-05T08:00:00+08:00\n",
        encoding="utf-8",
    )
    with district.engine.begin() as conn, pytest.raises(ImportRejected) as info:
        import_csv(conn, path)
    assert [(b["row"], b["column"], b["reason"]) for b in info.value.result.bad] == [
        (3, "lat", "latitude out of range -90..90"),
        (4, "lon", "longitude out of range -180..180"),
    ]
    with district.engine.connect() as c:
        assert c.scalar(sa.text("SELECT count(*) FROM incident")) == 0


def test_an_osm_way_out_of_range_is_named() -> None:
    ways = gpd.GeoDataFrame(
        {
            "id": [11, 12],
            "name": ["一巷", "二巷"],
            "highway": ["footway", "footway"],
        },
        geometry=[
            LineString([(118.58, 24.90), (118.59, 24.90)]),
            LineString([(118.58, 24.91), (218.59, 24.91)]),
        ],
        crs="EPSG:4326",
    )
    with pytest.raises(ValidationError) as info:
        split_ways(ways)
    assert info.value.message == "longitude 218.59 out of range -180..180 in OSM way 12"
