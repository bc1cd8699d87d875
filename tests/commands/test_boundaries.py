"""The ``mapsvc import ...`` and ``mapsvc demo load`` commands, run as a user runs them.

Each test runs the installed ``mapsvc`` console script in a subprocess against its own
``fresh_engine`` database (``DATABASE_URL`` in the environment): exit codes, messages on
stdout/stderr, no tracebacks, and the database unchanged after an error.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pytest
import sqlalchemy as sa

from mapsvc.config import PROJECT_ROOT

SAMPLES = PROJECT_ROOT / "data" / "boundaries" / "samples"
MAPSVC = str(Path(sys.executable).with_name("mapsvc"))


def run(engine, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": engine.url.render_as_string(hide_password=False)}
    return subprocess.run(
        [MAPSVC, *args], env=env, capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT
    )


def counts(engine) -> dict[str, int]:
    with engine.connect() as c:
        return {
            t: c.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar()
            for t in ("district", "subdistrict", "community", "grid", "incident")
        }


LEVELS = (
    ("district", "licheng-district-gcj02.geojson"),
    ("subdistricts", "haibin-subdistrict-gcj02.geojson"),
    ("communities", "haibin-communities-gcj02.geojson"),
)


@pytest.fixture
def with_communities(fresh_engine):
    """The upper levels imported through the service (the CLI is tested on them once)."""
    from mapsvc.db import session_scope
    from mapsvc.services.boundaries import import_boundaries

    for level, name in LEVELS:
        with session_scope(fresh_engine) as s:
            import_boundaries(s, level, SAMPLES / name, crs="gcj02")
    return fresh_engine


def test_import_levels_report_areas(fresh_engine) -> None:
    with_communities = fresh_engine
    for level, name in LEVELS:
        r = run(fresh_engine, "import", level, str(SAMPLES / name), "--crs", "gcj02")
        assert r.returncode == 0, r.stderr
        assert "km²" in r.stdout and "source CRS gcj02" in r.stdout
    r = run(
        with_communities,
        "import",
        "grids",
        str(SAMPLES / "haibin-grids-gcj02.geojson"),
        "--crs",
        "gcj02",
        "--parent-field",
        "community",
        "--households-field",
        "households",
    )
    assert r.returncode == 0, r.stderr
    n = len(gpd.read_file(SAMPLES / "haibin-grids-gcj02.geojson"))
    assert f"Imported {n} polygon(s) into grids" in r.stdout
    area_lines = [ln for ln in r.stdout.splitlines() if ln.strip().startswith("350502001")]
    assert len(area_lines) == n and all("km²" in ln for ln in area_lines)
    assert "Warning" not in r.stdout
    assert counts(with_communities)["grid"] == n


def test_import_zipped_shapefile_epsg3857(with_communities, tmp_path) -> None:
    import zipfile

    gdf = gpd.read_file(SAMPLES / "haibin-communities-gcj02.geojson")
    # communities of another (made-up) subdistrict would need that subdistrict; instead
    # import the grids as a Shapefile in Web Mercator (field names cut to 10 characters)
    grids = gpd.read_file(SAMPLES / "haibin-grids-gcj02.geojson")
    from mapsvc.services.chinacrs import geometry_to_wgs84

    grids = grids.set_geometry(geometry_to_wgs84(grids.geometry.values, "gcj02"), crs=4326)
    folder = tmp_path / "shp"
    folder.mkdir()
    grids.to_crs(3857).rename(columns={"community": "comm_code"}).to_file(
        folder / "grids.shp", encoding="utf-8"
    )
    z = tmp_path / "grids.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in folder.iterdir():
            zf.write(f, f.name)
    r = run(with_communities, "import", "grids", str(z), "--parent-field", "comm_code")
    assert r.returncode == 0, r.stderr
    assert "source CRS EPSG:3857" in r.stdout
    assert counts(with_communities)["grid"] == len(grids) and len(gdf) == 8


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--code-field", "nope"], "no field 'nope' for the code; the file has:"),
        (["--crs", "EPSG:999999"], "unknown CRS 'EPSG:999999'"),
        (["--enterprises-field", "x"], "--enterprises-field applies to communities only"),
    ],
)
def test_import_option_errors(with_communities, args, message) -> None:
    before = counts(with_communities)
    r = run(with_communities, "import", "grids", str(SAMPLES / "haibin-grids-gcj02.geojson"), *args)
    assert r.returncode == 1
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert counts(with_communities) == before


def test_import_rejected_features_change_nothing(with_communities, tmp_path) -> None:
    gdf = gpd.read_file(SAMPLES / "haibin-grids-gcj02.geojson")
    gdf.loc[2, "code"] = gdf.loc[1, "code"]
    gdf.loc[4, "community"] = "350502009999"
    bad = tmp_path / "bad.gpkg"
    gdf.to_file(bad, driver="GPKG")
    before = counts(with_communities)
    r = run(
        with_communities,
        "import",
        "grids",
        str(bad),
        "--crs",
        "gcj02",
        "--parent-field",
        "community",
    )
    assert r.returncode == 1, r.stdout
    assert "2 feature(s) rejected, nothing imported" in r.stderr
    assert f"feature #2 (code {gdf.loc[1, 'code']}): duplicate code (also feature #1)" in r.stderr
    assert "feature #4" in r.stderr and "unknown community code '350502009999'" in r.stderr
    assert "Traceback" not in r.stderr
    assert counts(with_communities) == before


def test_import_broken_and_missing_file(fresh_engine, tmp_path) -> None:
    broken = tmp_path / "x.geojson"
    broken.write_text("not json at all", encoding="utf-8")
    r = run(fresh_engine, "import", "district", str(broken))
    assert r.returncode == 1 and "x.geojson: cannot read it" in r.stderr
    r = run(fresh_engine, "import", "district", str(tmp_path / "missing.geojson"))
    assert r.returncode == 1 and "no such file" in r.stderr
    assert "Traceback" not in r.stderr
    assert counts(fresh_engine)["district"] == 0


def test_demo_load_once_then_force(fresh_engine) -> None:
    r = run(fresh_engine, "demo", "load", "--incidents", "300", "--seed", "5")
    assert r.returncode == 0, r.stderr
    assert "鲤城区 (350502000000)" in r.stdout and "km² (geodesic)" in r.stdout
    assert "demo" in r.stderr and "incidents" in r.stderr  # the progress bars
    first = counts(fresh_engine)
    assert first["incident"] == 300 and first["grid"] > 100
    r = run(fresh_engine, "demo", "load", "--incidents", "50")
    assert r.returncode == 0 and "already loaded; nothing changed" in r.stdout
    assert counts(fresh_engine) == first
    r = run(fresh_engine, "demo", "load", "--incidents", "50", "--seed", "5", "--force", "--quiet")
    assert r.returncode == 0, r.stderr
    assert counts(fresh_engine) == {**first, "incident": 50}


def _grid_file(tmp_path: Path, name: str, edit) -> tuple[Path, gpd.GeoDataFrame]:
    """The sample grids changed by ``edit(gdf)`` (which returns the frame), as GeoJSON."""
    gdf = edit(gpd.read_file(SAMPLES / "haibin-grids-gcj02.geojson"))
    path = tmp_path / name
    gdf.to_file(path, driver="GeoJSON")
    return path, gdf


def _import_grids(engine, path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run(
        engine,
        "import",
        "grids",
        str(path),
        "--crs",
        "gcj02",
        "--parent-field",
        "community",
        *extra,
    )


def test_import_repair_option_repairs_and_reports(with_communities, tmp_path) -> None:
    from shapely.geometry import Polygon

    def bowtie(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        minx, miny, maxx, maxy = gdf.geometry.iloc[3].bounds
        cx, cy, d = (minx + maxx) / 2, (miny + maxy) / 2, min(maxx - minx, maxy - miny) / 4
        gdf.loc[3, "geometry"] = Polygon(
            [(cx - d, cy - d), (cx + d, cy + d), (cx + d, cy - d), (cx - d, cy + d)]
        )
        return gdf

    path, gdf = _grid_file(tmp_path, "bowtie.geojson", bowtie)
    code = gdf.loc[3, "code"]
    r = _import_grids(with_communities, path)
    assert r.returncode == 1 and f"feature #3 (code {code})" in r.stderr
    assert "invalid geometry: Self-intersection" in r.stderr
    assert counts(with_communities)["grid"] == 0
    r = _import_grids(with_communities, path, "--repair")
    assert r.returncode == 0, r.stderr
    assert f"Imported {len(gdf)} polygon(s) into grids" in r.stdout
    assert any(
        ln.startswith("Repaired: feature #3") and "make_valid" in ln for ln in r.stdout.splitlines()
    ), r.stdout
    with with_communities.connect() as c:
        stored = c.execute(sa.text("SELECT count(*), bool_and(ST_IsValid(geom)) FROM grid")).one()
        repaired = c.scalar(
            sa.text("SELECT ST_NumGeometries(geom) FROM grid WHERE code = :c"), {"c": code}
        )
    assert tuple(stored) == (len(gdf), True)
    assert repaired == 2  # the bow tie is stored as its two triangles


def test_import_strict_tiling_option_rejects_a_gap(with_communities, tmp_path) -> None:
    path, gdf = _grid_file(
        tmp_path, "gap.geojson", lambda g: g.drop(index=7).reset_index(drop=True)
    )
    community = gpd.read_file(SAMPLES / "haibin-grids-gcj02.geojson").loc[7, "community"]
    r = _import_grids(with_communities, path, "--strict-tiling")
    assert r.returncode == 1, r.stdout
    assert "do not tile it: gap" in r.stderr and community in r.stderr
    assert "Traceback" not in r.stderr
    assert counts(with_communities)["grid"] == 0
    # without the option the same file is imported, and the gap is a warning
    r = _import_grids(with_communities, path)
    assert r.returncode == 0, r.stderr
    warnings = [ln for ln in r.stdout.splitlines() if ln.startswith("Warning:")]
    assert len(warnings) == 1 and community in warnings[0] and "gap" in warnings[0]
    assert counts(with_communities)["grid"] == len(gdf)


def test_import_unknown_crs_in_the_file_is_one_line(fresh_engine, tmp_path) -> None:
    import json

    doc = json.loads((SAMPLES / "licheng-district-gcj02.geojson").read_text(encoding="utf-8"))
    doc["crs"] = {"type": "name", "properties": {"name": "EPSG::999999"}}
    path = tmp_path / "d.geojson"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    r = run(fresh_engine, "import", "district", str(path))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "unknown CRS 'EPSG::999999' in the crs member of d.geojson" in r.stderr
    assert counts(fresh_engine)["district"] == 0
