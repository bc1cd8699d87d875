"""Importing boundaries: formats, CRSs, and bad input that must change nothing.

The inputs are the GCJ-02 sample files in ``data/boundaries/samples`` and variants of them
written here with geopandas (GeoPackage, zipped Shapefile, EPSG:4490, EPSG:3857). Expected
geometry comes from an independent GCJ-02 implementation (eviltransform) and areas from
pyproj.Geod, not from the code under test.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import eviltransform
import geopandas as gpd
import numpy as np
import pytest
import shapely
import sqlalchemy as sa
from pyproj import Geod
from shapely.geometry import Point, Polygon

from mapsvc.config import PROJECT_ROOT
from mapsvc.core.errors import ValidationError
from mapsvc.db import session_scope
from mapsvc.services.boundaries import FieldNames, ImportRejected, import_boundaries

SAMPLES = PROJECT_ROOT / "data" / "boundaries" / "samples"
DISTRICT = SAMPLES / "licheng-district-gcj02.geojson"
SUBDISTRICT = SAMPLES / "haibin-subdistrict-gcj02.geojson"
COMMUNITIES = SAMPLES / "haibin-communities-gcj02.geojson"
GRIDS = SAMPLES / "haibin-grids-gcj02.geojson"
GRID_FIELDS = FieldNames(parent="community")
GEOD = Geod(ellps="WGS84")


def _imp(engine, level: str, path: Path, **kw):
    with session_scope(engine) as s:
        return import_boundaries(s, level, path, **kw)


def _snapshot(engine) -> tuple:
    """Every boundary row, to prove a rejected import changed nothing."""
    with engine.connect() as c:
        return tuple(
            c.execute(
                sa.text(
                    f"SELECT count(*), md5(COALESCE(string_agg(code || ST_AsEWKB(geom)::text, ','"
                    f" ORDER BY code), '')) FROM {t}"
                )
            ).one()
            for t in ("district", "subdistrict", "community", "grid")
        )


def _gcj2wgs(lon: float, lat: float) -> tuple[float, float]:
    """Invert eviltransform's forward GCJ-02 to 1e-12° (its own gcj2wgs_exact stops at
    1e-6°, about 0.1 m: too coarse to compare areas to the square metre)."""
    x, y = lon, lat
    for _ in range(50):
        gy, gx = eviltransform.wgs2gcj(y, x)
        x, y = x - (gx - lon), y - (gy - lat)
        if abs(gx - lon) < 1e-12 and abs(gy - lat) < 1e-12:
            break
    return x, y


def _wgs_exact(g):
    """GCJ-02 -> WGS84 with eviltransform (independent of mapsvc.services.chinacrs)."""
    return shapely.transform(g, lambda c: np.array([_gcj2wgs(x, y) for x, y in c]))


@pytest.fixture
def communities_engine(fresh_engine):
    """District, 海滨街道 and its communities imported from the GCJ-02 samples."""
    _imp(fresh_engine, "district", DISTRICT, crs="gcj02")
    _imp(fresh_engine, "subdistricts", SUBDISTRICT, crs="gcj02")
    _imp(fresh_engine, "communities", COMMUNITIES, crs="gcj02")
    return fresh_engine


@pytest.fixture(scope="module")
def grids_gcj() -> gpd.GeoDataFrame:
    return gpd.read_file(GRIDS)


def _write(gdf: gpd.GeoDataFrame, path: Path, **kw) -> Path:
    gdf.to_file(path, **kw)
    return path


def _zip_shapefile(gdf: gpd.GeoDataFrame, tmp: Path, name: str = "grids") -> Path:
    folder = tmp / f"{name}_shp"
    folder.mkdir()
    gdf.to_file(folder / f"{name}.shp", encoding="utf-8")
    out = tmp / f"{name}.zip"
    with zipfile.ZipFile(out, "w") as z:
        for f in folder.iterdir():
            z.write(f, f.name)
    return out


# --------------------------------------------------------------------------- formats and CRSs


def test_geojson_gcj02_levels_and_areas(communities_engine) -> None:
    rep = _imp(communities_engine, "grids", GRIDS, crs="gcj02", fields=GRID_FIELDS)
    src = gpd.read_file(GRIDS)
    assert rep.imported == len(src) and rep.source_crs == "gcj02"
    assert [c for c, _, _ in rep.areas] == list(src["code"])
    # each reported area equals pyproj.Geod on the independently converted polygon
    for (code, _, km2), g in zip(rep.areas, src.geometry, strict=True):
        ref = abs(GEOD.geometry_area_perimeter(_wgs_exact(g))[0]) / 1e6
        assert km2 == pytest.approx(ref, abs=1e-6), code
    assert rep.tiling == [] and rep.warnings == []
    with communities_engine.connect() as c:
        r = c.execute(
            sa.text(
                "SELECT count(*), bool_and(source_crs = 'gcj02'), "
                "count(DISTINCT community_id) FROM grid"
            )
        ).one()
        assert r == (len(src), True, 8)
        pop = c.execute(
            sa.text(
                "SELECT c.population = sum(g.population) FROM community c JOIN grid g "
                "ON g.community_id = c.id GROUP BY c.id"
            )
        ).scalars()
        assert all(pop)


def test_gpkg_in_cgcs2000(communities_engine, grids_gcj, tmp_path) -> None:
    wgs = grids_gcj.set_geometry([_wgs_exact(g) for g in grids_gcj.geometry], crs=4490)
    path = _write(wgs, tmp_path / "grids.gpkg", driver="GPKG")
    rep = _imp(communities_engine, "grids", path, fields=GRID_FIELDS)
    assert rep.source_crs == "EPSG:4490" and rep.imported == len(wgs)
    with communities_engine.connect() as c:
        for code, g in zip(wgs["code"], wgs.geometry, strict=True):
            hd = c.execute(
                sa.text(
                    "SELECT ST_HausdorffDistance(geom, ST_GeomFromText(:w, 4326)) FROM grid "
                    "WHERE code = :c"
                ),
                {"w": g.wkt, "c": code},
            ).scalar()
            assert hd < 1e-9  # CGCS2000 taken as-is


def test_zipped_shapefile_in_web_mercator(communities_engine, grids_gcj, tmp_path) -> None:
    wgs = grids_gcj.set_geometry([_wgs_exact(g) for g in grids_gcj.geometry], crs=4326)
    merc = wgs.to_crs(3857)
    path = _zip_shapefile(merc, tmp_path)
    rep = _imp(communities_engine, "grids", path, fields=GRID_FIELDS)
    assert rep.source_crs == "EPSG:3857" and rep.imported == len(wgs)
    with communities_engine.connect() as c:
        worst = max(
            c.execute(
                sa.text(
                    "SELECT ST_HausdorffDistance(geom::geography::geometry, "
                    "ST_GeomFromText(:w, 4326)) FROM grid WHERE code = :c"
                ),
                {"w": g.wkt, "c": code},
            ).scalar()
            for code, g in zip(wgs["code"], wgs.geometry, strict=True)
        )
    assert worst < 1e-8


def test_crs_option_overrides_the_file(communities_engine, grids_gcj, tmp_path) -> None:
    wgs = grids_gcj.set_geometry([_wgs_exact(g) for g in grids_gcj.geometry], crs=4326)
    no_crs = wgs.to_crs(3857).set_crs(None, allow_override=True)
    path = _write(no_crs, tmp_path / "nocrs.gpkg", driver="GPKG")
    before = _snapshot(communities_engine)
    with pytest.raises(ValidationError, match="does not say which CRS"):
        _imp(communities_engine, "grids", path, fields=GRID_FIELDS)
    assert _snapshot(communities_engine) == before
    rep = _imp(communities_engine, "grids", path, crs="EPSG:3857", fields=GRID_FIELDS)
    assert rep.source_crs == "EPSG:3857" and rep.imported == len(wgs)


def test_bd09_input(communities_engine, grids_gcj, tmp_path) -> None:
    bd = grids_gcj.set_geometry(
        [
            shapely.transform(
                g, lambda c: np.array([eviltransform.gcj2bd(y, x)[::-1] for x, y in c])
            )
            for g in grids_gcj.geometry
        ],
        crs=4326,
    )
    path = _write(bd, tmp_path / "grids-bd09.geojson", driver="GeoJSON")
    rep = _imp(communities_engine, "grids", path, crs="bd09", fields=GRID_FIELDS)
    assert rep.source_crs == "bd09" and rep.imported == len(bd)
    assert rep.tiling == []  # converted well enough to still tile the communities


def test_parent_by_geometry_when_no_parent_field(communities_engine, grids_gcj, tmp_path) -> None:
    path = _write(grids_gcj.drop(columns=["community"]), tmp_path / "g.geojson", driver="GeoJSON")
    _imp(communities_engine, "grids", path, crs="gcj02")
    with communities_engine.connect() as c:
        wrong = c.execute(
            sa.text(
                "SELECT count(*) FROM grid g JOIN community c ON c.id = g.community_id "
                "WHERE NOT starts_with(g.code, c.code)"
            )
        ).scalar()
    assert wrong == 0


# --------------------------------------------------------------------------- bad input


def _reject(engine, path: Path, *, match: str, crs: str = "gcj02", **kw) -> ImportRejected:
    before = _snapshot(engine)
    with pytest.raises(ImportRejected) as err:
        _imp(engine, "grids", path, crs=crs, **{"fields": GRID_FIELDS, **kw})
    assert _snapshot(engine) == before, "a rejected import changed the database"
    msg = err.value.message
    assert "nothing imported" in msg
    assert any(__import__("re").search(match, str(p)) for p in err.value.problems), msg
    return err.value


def test_broken_file(communities_engine, tmp_path) -> None:
    bad = tmp_path / "broken.geojson"
    bad.write_text('{"type": "FeatureCollection", "features": [{"type": ', encoding="utf-8")
    before = _snapshot(communities_engine)
    with pytest.raises(ValidationError, match=r"broken\.geojson: cannot read it"):
        _imp(communities_engine, "grids", bad, crs="gcj02")
    zipped = tmp_path / "broken.zip"
    zipped.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValidationError, match="cannot read it"):
        _imp(communities_engine, "grids", zipped)
    assert _snapshot(communities_engine) == before


def test_invalid_geometry_rejected_with_location_or_repaired(
    communities_engine, grids_gcj, tmp_path
) -> None:
    gdf = grids_gcj.copy()
    minx, miny, maxx, maxy = gdf.geometry.iloc[3].bounds
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    d = min(maxx - minx, maxy - miny) / 4
    bowtie = Polygon([(cx - d, cy - d), (cx + d, cy + d), (cx + d, cy - d), (cx - d, cy + d)])
    gdf.loc[3, "geometry"] = bowtie
    path = _write(gdf, tmp_path / "bowtie.geojson", driver="GeoJSON")
    err = _reject(communities_engine, path, match=r"invalid geometry: Self-intersection\[")
    p = next(p for p in err.problems if "invalid" in p.message)
    assert p.index == 3 and p.code == gdf.loc[3, "code"]
    assert f"feature #3 (code {p.code})" in err.message
    # the reported place is the crossing of the bow tie, in the file's coordinates
    at = [float(v) for v in p.message.split("[")[1].split("]")[0].split()]
    assert Point(at).distance(Point(cx, cy)) < 1e-7
    rep = _imp(communities_engine, "grids", path, crs="gcj02", fields=GRID_FIELDS, repair=True)
    assert rep.imported == len(gdf)
    assert any("feature #3" in r and "make_valid" in r for r in rep.repairs)
    assert any(gdf.loc[3, "community"] in w for w in rep.warnings), "the hole is reported"


def test_empty_and_non_polygon_geometry(communities_engine, grids_gcj, tmp_path) -> None:
    gdf = grids_gcj.copy()
    gdf.loc[1, "geometry"] = Polygon()
    gdf.loc[2, "geometry"] = gdf.geometry.iloc[2].centroid
    path = _write(gdf, tmp_path / "empty.gpkg", driver="GPKG")
    err = _reject(communities_engine, path, match="empty geometry")
    assert {p.index for p in err.problems} >= {1, 2}
    assert any("Point, expected Polygon" in p.message for p in err.problems)


def test_duplicate_codes_in_file_and_database(communities_engine, grids_gcj, tmp_path) -> None:
    gdf = grids_gcj.copy()
    gdf.loc[5, "code"] = gdf.loc[4, "code"]
    path = _write(gdf, tmp_path / "dup.geojson", driver="GeoJSON")
    err = _reject(communities_engine, path, match=r"duplicate code \(also feature #4\)")
    assert [p.index for p in err.problems] == [5]
    _imp(communities_engine, "grids", GRIDS, crs="gcj02", fields=GRID_FIELDS)
    err = _reject(communities_engine, GRIDS, match="already exists in the grid table")
    assert len(err.problems) == len(grids_gcj)


def test_outside_parent_beyond_tolerance(communities_engine, grids_gcj, tmp_path) -> None:
    gdf = grids_gcj.copy()
    gdf.loc[0, "geometry"] = shapely.affinity.translate(gdf.geometry.iloc[0], xoff=0.003)  # ~300 m
    path = _write(gdf, tmp_path / "out.geojson", driver="GeoJSON")
    err = _reject(
        communities_engine, path, match=r"sticks out of its community \d{12} by more than 5 m"
    )
    assert err.problems[0].index == 0
    # a sliver within the tolerance is fine (digitising slack); the overlap is reported
    gdf = grids_gcj.copy()
    gdf.loc[0, "geometry"] = shapely.affinity.translate(gdf.geometry.iloc[0], xoff=0.00002)  # ~2 m
    path = _write(gdf, tmp_path / "slack.geojson", driver="GeoJSON")
    rep = _imp(communities_engine, "grids", path, crs="gcj02", fields=GRID_FIELDS, tolerance_m=5)
    assert rep.imported == len(gdf)
    assert rep.tiling and rep.tiling[0][0] == gdf.loc[0, "community"]


def test_unknown_parent_code(communities_engine, grids_gcj, tmp_path) -> None:
    gdf = grids_gcj.copy()
    gdf.loc[2, "community"] = "350502999999"
    path = _write(gdf, tmp_path / "parent.geojson", driver="GeoJSON")
    _reject(
        communities_engine, path, match="unknown community code '350502999999' in field 'community'"
    )


def test_unknown_field_name(communities_engine) -> None:
    before = _snapshot(communities_engine)
    with pytest.raises(
        ValidationError, match=r"no field 'gridcode' for the code; the file has: .*community"
    ):
        _imp(communities_engine, "grids", GRIDS, crs="gcj02", fields=FieldNames(code="gridcode"))
    with pytest.raises(ValidationError, match="no field 'hh'"):
        _imp(
            communities_engine,
            "grids",
            GRIDS,
            crs="gcj02",
            fields=FieldNames(parent="community", households="hh"),
        )
    assert _snapshot(communities_engine) == before


def test_bad_numbers(communities_engine, grids_gcj, tmp_path) -> None:
    gdf = grids_gcj.copy()
    gdf["households"] = gdf["households"].astype(object)
    gdf.loc[6, "households"] = "many"
    path = _write(gdf, tmp_path / "num.geojson", driver="GeoJSON")
    _reject(
        communities_engine,
        path,
        match=r"households 'many' in field 'households' is not a whole number",
    )


def test_tiling_gap_warns_or_rejects(communities_engine, grids_gcj, tmp_path) -> None:
    missing = grids_gcj.drop(index=7).reset_index(drop=True)
    path = _write(missing, tmp_path / "gap.geojson", driver="GeoJSON")
    ref_gap = abs(GEOD.geometry_area_perimeter(_wgs_exact(grids_gcj.geometry.iloc[7]))[0])
    _reject(communities_engine, path, match="do not tile it: gap", tiling="error")
    rep = _imp(communities_engine, "grids", path, crs="gcj02", fields=GRID_FIELDS)
    assert rep.imported == len(missing)
    ((ccode, gap, overlap),) = rep.tiling
    assert ccode == grids_gcj.loc[7, "community"]
    assert gap == pytest.approx(ref_gap, rel=1e-3) and overlap < 1.0
    assert "gap" in rep.warnings[0]


def test_parent_level_must_exist(fresh_engine) -> None:
    with pytest.raises(ValidationError, match="no district yet"):
        _imp(fresh_engine, "subdistricts", SUBDISTRICT, crs="gcj02")
    with pytest.raises(ValidationError, match="unknown level"):
        _imp(fresh_engine, "towns", SUBDISTRICT, crs="gcj02")


def test_gbk_shapefile_without_cpg(communities_engine, grids_gcj, tmp_path) -> None:
    """Chinese Shapefiles often carry GBK text and no .cpg: --encoding reads the names."""
    folder = tmp_path / "gbk"
    folder.mkdir()
    grids_gcj.to_file(folder / "grids.shp", encoding="GBK")
    for cpg in folder.glob("*.cpg"):
        cpg.unlink()
    path = tmp_path / "grids-gbk.zip"
    with zipfile.ZipFile(path, "w") as z:
        for f in folder.iterdir():
            z.write(f, f.name)
    rep = _imp(communities_engine, "grids", path, crs="gcj02", encoding="gbk", fields=GRID_FIELDS)
    assert [n for _, n, _ in rep.areas] == list(grids_gcj["name"])
    assert rep.areas[0][1].endswith("网格")


def test_gauss_kruger_cgcs2000(communities_engine, grids_gcj, tmp_path) -> None:
    """Planning offices' usual projected CRS: CGCS2000 3-degree Gauss-Krüger, CM 120°E."""
    wgs = grids_gcj.set_geometry([_wgs_exact(g) for g in grids_gcj.geometry], crs=4326)
    path = _write(wgs.to_crs(4549), tmp_path / "gk.gpkg", driver="GPKG")
    rep = _imp(communities_engine, "grids", path, fields=GRID_FIELDS)
    assert rep.source_crs == "EPSG:4549"
    for (code, _, km2), g in zip(rep.areas, wgs.geometry, strict=True):
        ref = abs(GEOD.geometry_area_perimeter(g)[0]) / 1e6
        assert km2 == pytest.approx(ref, abs=1e-6), code


# --------------------------------------------------------------------------- coordinates, CRS


def test_a_latitude_out_of_range_is_named_with_its_feature(
    communities_engine, grids_gcj, tmp_path
) -> None:
    gdf = grids_gcj.copy()
    gdf.loc[3, "geometry"] = Polygon(
        [(118.58, 24.9), (118.59, 24.9), (118.59, 500), (118.58, 24.9)]
    )
    path = _write(gdf, tmp_path / "lat500.geojson", driver="GeoJSON")
    before = _snapshot(communities_engine)
    with pytest.raises(ImportRejected) as info:
        _imp(communities_engine, "grids", path, crs="gcj02", fields=GRID_FIELDS)
    code = gdf["code"][3]
    assert [str(p) for p in info.value.problems] == [
        f"feature #3 (code {code}): latitude 500 out of range -90..90 (coordinates in gcj02)"
    ]
    assert _snapshot(communities_engine) == before


def test_an_unknown_crs_in_a_geojson_is_an_error_naming_it(communities_engine, tmp_path) -> None:
    doc = json.loads(GRIDS.read_text(encoding="utf-8"))
    doc["crs"] = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::999999"}}
    path = tmp_path / "crs999999.geojson"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    before = _snapshot(communities_engine)
    with pytest.raises(ValidationError) as info:
        _imp(communities_engine, "grids", path, fields=GRID_FIELDS)
    assert info.value.message.startswith(
        "unknown CRS 'urn:ogc:def:crs:EPSG::999999' in the crs member of crs999999.geojson"
    )
    assert info.value.details == {"field": "crs"}
    # a member that names nothing is an error too, not WGS84
    doc["crs"] = {"type": "name", "properties": {}}
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(ValidationError, match="the crs member of crs999999.geojson names no CRS"):
        _imp(communities_engine, "grids", path, fields=GRID_FIELDS)
    assert _snapshot(communities_engine) == before


def test_a_prj_pyproj_cannot_read_is_an_error_naming_it(
    communities_engine, grids_gcj, tmp_path
) -> None:
    folder = tmp_path / "shp"
    folder.mkdir()
    grids_gcj.to_file(folder / "grids.shp", encoding="utf-8")
    (folder / "grids.prj").write_text('PROJCS["made up",GEOGCS["nowhere"]]', encoding="utf-8")
    out = tmp_path / "grids.zip"
    with zipfile.ZipFile(out, "w") as z:
        for f in folder.iterdir():
            z.write(f, f.name)
    before = _snapshot(communities_engine)
    with pytest.raises(ValidationError, match=r"unknown CRS in grids\.prj in grids\.zip"):
        _imp(communities_engine, "grids", out, fields=GRID_FIELDS)
    with pytest.raises(ValidationError, match=r"unknown CRS in grids\.prj: pyproj cannot read"):
        _imp(communities_engine, "grids", folder / "grids.shp", fields=GRID_FIELDS)
    assert _snapshot(communities_engine) == before


def test_a_name_longer_than_its_column_is_named(communities_engine, grids_gcj, tmp_path) -> None:
    gdf = grids_gcj.copy()
    gdf.loc[1, "name"] = "网" * 101
    path = _write(gdf, tmp_path / "longname.geojson", driver="GeoJSON")
    before = _snapshot(communities_engine)
    with pytest.raises(ImportRejected) as info:
        _imp(communities_engine, "grids", path, crs="gcj02", fields=GRID_FIELDS)
    assert [str(p) for p in info.value.problems] == [
        f"feature #1 (code {gdf['code'][1]}): name in field 'name' longer than 100 characters"
    ]
    assert _snapshot(communities_engine) == before
