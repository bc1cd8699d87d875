"""Boundaries as they are published: a bare outline geometry, centre-point lists, and
``--dry-run``, run as a user runs them (the ``mapsvc`` script in a subprocess).

The seed city 禹州市 (Yuzhou) loads from nothing with the files of ``shared/data/cn-adcode``
exactly as they are (copied into ``data/boundaries``): its outline is a bare GeoJSON Polygon, its subdistricts and
communities are rows of the statistical division list (no header, most without a point).
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from pyproj import Geod

from mapsvc.config import PROJECT_ROOT
from mapsvc.services.chinacrs import gcj02_to_wgs84
from tests.commands.test_boundaries import counts, run

ADCODE = PROJECT_ROOT / "data" / "boundaries"  # copied unchanged from shared/data/cn-adcode
OUTLINE = ADCODE / "411081-fence.geojson"
LIST = ADCODE / "411081.csv"


def _tables(engine) -> list[tuple]:
    """Every boundary row (code, name, parent, rounded area), for "nothing changed"."""
    with engine.connect() as c:
        return [
            tuple(r)
            for t in ("district", "subdistrict", "community")
            for r in c.execute(
                sa.text(f"SELECT code, name, round(area_km2::numeric, 6) FROM {t} ORDER BY code")
            )
        ]


def _rows(rank: str) -> list[list[str]]:
    with LIST.open(encoding="utf-8") as f:
        return [r for r in csv.reader(f) if r[4] == rank]


def _geodesic_km2(path: Path) -> float:
    """The outline's area computed here, independently: GCJ-02 -> WGS84, pyproj.Geod."""
    import shapely
    from shapely.geometry import shape

    g = shape(json.loads(path.read_text()))
    wgs = shapely.transform(
        g, lambda a: __import__("numpy").column_stack(gcj02_to_wgs84(a[:, 0], a[:, 1]))
    )
    return abs(Geod(ellps="WGS84").geometry_area_perimeter(wgs)[0]) / 1e6


def test_yuzhou_loads_from_nothing_with_the_published_files(fresh_engine) -> None:
    # the outline: a bare geometry, no properties
    r = run(fresh_engine, "import", "district", str(OUTLINE), "--crs", "gcj02")
    assert r.returncode == 1 and "pass --code CODE --name NAME" in r.stderr
    assert "Traceback" not in r.stderr
    r = run(
        fresh_engine,
        "import",
        "district",
        str(OUTLINE),
        "--crs",
        "gcj02",
        "--code",
        "411081000000",
        "--name",
        "禹州市",
        "--dry-run",
    )
    assert r.returncode == 0, r.stderr
    assert "dry run: nothing written" in r.stdout and "411081000000" in r.stdout
    assert counts(fresh_engine)["district"] == 0
    r = run(
        fresh_engine,
        "import",
        "district",
        str(OUTLINE),
        "--crs",
        "gcj02",
        "--code",
        "411081000000",
        "--name",
        "禹州市",
    )
    assert r.returncode == 0, r.stderr
    with fresh_engine.connect() as c:
        district_km2 = float(c.scalar(sa.text("SELECT area_km2 FROM district")))
    assert district_km2 == pytest.approx(_geodesic_km2(OUTLINE), abs=1e-4)
    assert 1400 < district_km2 < 1500  # "about 1,461 km²"

    # subdistricts and communities: the division list as published, as points
    r = run(fresh_engine, "import", "subdistricts", str(LIST), "--from-points")
    assert r.returncode == 1 and "pass --crs" in r.stderr
    r = run(fresh_engine, "import", "subdistricts", str(LIST), "--from-points", "--crs", "gcj02")
    assert r.returncode == 0, r.stderr
    assert "Generated:" in r.stdout and "redraw" in r.stdout
    r = run(fresh_engine, "import", "communities", str(LIST), "--from-points", "--crs", "gcj02")
    assert r.returncode == 0, r.stderr
    subs, comms = _rows("4"), _rows("5")
    no_point = sum(1 for row in comms if not row[12])
    outside = re.search(r"(\d+) point\(s\) lay outside their subdistrict", r.stdout)
    moved = int(outside.group(1)) if outside else 0
    moved_line = next((ln for ln in r.stdout.splitlines() if "lay outside" in ln), "")
    moved_codes = set(re.findall(r"\b\d{12}\b", moved_line))
    assert len(moved_codes) == moved
    assert f"{no_point + moved} had no usable point" in r.stdout, r.stdout[-3000:]
    with fresh_engine.connect() as c:
        got = dict(c.execute(sa.text("SELECT code, name FROM community")).all())
        assert got == {row[0]: row[2] for row in comms}
        assert dict(c.execute(sa.text("SELECT code, name FROM subdistrict")).all()) == {
            row[0]: row[2] for row in subs
        }
        # each community inside the subdistrict the list names, and together they tile it
        wrong = c.scalar(
            sa.text(
                """SELECT count(*) FROM community c JOIN subdistrict s ON s.id = c.subdistrict_id
                   WHERE s.code <> (:parents)::jsonb ->> c.code"""
            ),
            {"parents": json.dumps({row[0]: row[1] for row in comms})},
        )
        assert wrong == 0
        sub_total, comm_total = c.execute(
            sa.text(
                "SELECT (SELECT sum(area_km2) FROM subdistrict), (SELECT sum(area_km2) FROM community)"
            )
        ).one()
        overlap = c.scalar(
            sa.text(
                """SELECT coalesce(sum(ST_Area(ST_Intersection(a.geom, b.geom)::geography)), 0)
                   FROM community a JOIN community b ON a.id < b.id
                   AND ST_Intersects(a.geom, b.geom)"""
            )
        )
        # a published point stays in its own cell
        for row in comms:
            if row[12]:
                lon, lat = gcj02_to_wgs84(float(row[12]), float(row[13]))
                inside = c.scalar(
                    sa.text(
                        "SELECT code FROM community WHERE ST_Covers(geom, "
                        "ST_SetSRID(ST_MakePoint(:x, :y), 4326))"
                    ),
                    {"x": float(lon), "y": float(lat)},
                )
                if row[0] not in moved_codes:  # a point outside its subdistrict was not used
                    assert inside == row[0]
    assert float(sub_total) == pytest.approx(district_km2, rel=1e-3)
    assert float(comm_total) == pytest.approx(float(sub_total), rel=1e-4)
    assert overlap < 1.0  # m²


def test_dry_run_writes_nothing_and_reports_the_same(fresh_engine, tmp_path) -> None:
    outline = tmp_path / "outline.geojson"
    outline.write_text(OUTLINE.read_text())
    args = [
        "import",
        "district",
        str(outline),
        "--crs",
        "gcj02",
        "--code",
        "411081000000",
        "--name",
        "禹州市",
    ]
    dry = run(fresh_engine, *args, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert _tables(fresh_engine) == []
    wet = run(fresh_engine, *args)
    assert wet.returncode == 0
    assert dry.stdout.replace("Checked (dry run: nothing written)", "Imported") == wet.stdout
    before = _tables(fresh_engine)
    again = run(fresh_engine, *args, "--dry-run")  # the same code again: rejected, as for real
    assert again.returncode == 1 and "already exists" in again.stderr
    assert _tables(fresh_engine) == before


def test_published_inputs_refused_clearly(fresh_engine, tmp_path) -> None:
    run(
        fresh_engine,
        "import",
        "district",
        str(OUTLINE),
        "--crs",
        "gcj02",
        "--code",
        "411081000000",
        "--name",
        "禹州市",
    )
    before = _tables(fresh_engine)
    # a point list where polygons are expected: one line, no traceback
    r = run(fresh_engine, "import", "communities", str(LIST), "--crs", "gcj02")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "table without geometry" in r.stderr
    named = tmp_path / "points.csv"
    named.write_text("code,name,parent_code,longitude,latitude\nx1,甲,411081000000,113.45,34.15\n")
    r = run(fresh_engine, "import", "subdistricts", str(named), "--crs", "gcj02")
    assert r.returncode == 1 and "--from-points" in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.startswith("Error")]) == 1
    # --code on a file with several features; only one of --code and --name
    two = tmp_path / "two.geojson"
    feature = {"type": "Feature", "properties": {}, "geometry": json.loads(OUTLINE.read_text())}
    two.write_text(json.dumps({"type": "FeatureCollection", "features": [feature, feature]}))
    r = run(
        fresh_engine,
        "import",
        "subdistricts",
        str(two),
        "--crs",
        "gcj02",
        "--code",
        "a",
        "--name",
        "b",
    )
    assert r.returncode == 1 and "the file has 2 features" in r.stderr
    r = run(fresh_engine, "import", "subdistricts", str(OUTLINE), "--crs", "gcj02", "--code", "a")
    assert r.returncode == 1 and "give both --code and --name" in r.stderr
    # a point list with an unknown parent, a bad number, a missing column
    bad = tmp_path / "bad.csv"
    bad.write_text("code,name,parent_code,longitude,latitude\ns1,甲,999,113.45,34.15\n")
    r = run(fresh_engine, "import", "subdistricts", str(bad), "--from-points", "--crs", "gcj02")
    assert r.returncode == 1 and "unknown district code '999'" in r.stderr
    bad.write_text("code,name,parent_code,longitude,latitude\ns1,甲,411081000000,east,34.15\n")
    r = run(fresh_engine, "import", "subdistricts", str(bad), "--from-points", "--crs", "gcj02")
    assert r.returncode == 1 and "line 2" in r.stderr and "'east'" in r.stderr
    bad.write_text("code,name,x_coord\ns1,甲,1\n")
    r = run(fresh_engine, "import", "subdistricts", str(bad), "--from-points", "--crs", "gcj02")
    assert r.returncode == 1 and "needs the columns longitude, latitude" in r.stderr
    assert _tables(fresh_engine) == before


def test_a_header_point_list_builds_cells_by_location(fresh_engine, tmp_path) -> None:
    """Points without a parent column find their parent by location; one point per cell."""
    run(
        fresh_engine,
        "import",
        "district",
        str(OUTLINE),
        "--crs",
        "gcj02",
        "--code",
        "411081000000",
        "--name",
        "禹州市",
    )
    pts = tmp_path / "subs.csv"
    rows = [("s1", "东", 113.55, 34.15), ("s2", "西", 113.35, 34.15), ("s3", "中", 113.45, 34.10)]
    pts.write_text("code,name,lon,lat\n" + "".join(f"{c},{n},{x},{y}\n" for c, n, x, y in rows))
    r = run(fresh_engine, "import", "subdistricts", str(pts), "--from-points", "--crs", "EPSG:4326")
    assert r.returncode == 0, r.stderr
    with fresh_engine.connect() as c:
        for code, _n, x, y in rows:
            found = c.scalar(
                sa.text(
                    "SELECT code FROM subdistrict WHERE ST_Covers(geom, ST_SetSRID(ST_MakePoint(:x, :y), 4326))"
                ),
                {"x": x, "y": y},
            )
            assert found == code
        assert c.scalar(sa.text("SELECT count(*) FROM subdistrict")) == 3
