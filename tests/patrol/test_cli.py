"""The streets and patrol commands end to end on a fresh database (DATABASE_URL)."""

from __future__ import annotations

import gpxpy
import sqlalchemy as sa
from click.testing import CliRunner

from mapsvc.commands.streets import patrol_group, streets_group
from mapsvc.config import Settings
from tests.patrol.test_streets_import import TEST_PBF


def test_import_assign_route_upload_compliance(fresh_engine, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", fresh_engine.url.render_as_string(hide_password=False))
    run = CliRunner().invoke
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
