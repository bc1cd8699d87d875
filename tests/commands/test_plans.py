"""``mapsvc plan create|list|show|validate|diff|publish|export|import`` on a real database,
in-process with click's runner, on the incidents district (communities A and B)."""

from __future__ import annotations

import sqlalchemy as sa
from click.testing import CliRunner

from mapsvc.commands.plans import plan_group

A = "350502001001"


def _run(engine, monkeypatch, *args: str):
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    return CliRunner().invoke(plan_group, list(args))


def test_a_plan_from_the_command_line(district, monkeypatch, tmp_path) -> None:
    e = district.engine
    r = _run(e, monkeypatch, "create", "--name", "东片", "--community", A, "--dry-run")
    assert r.exit_code == 0 and "2 grids" in r.output and "dry run" in r.output, r.output
    with e.connect() as c:
        assert c.scalar(sa.text("SELECT count(*) FROM plan")) == 0
    r = _run(e, monkeypatch, "create", "--name", "东片", "--community", A)
    assert r.exit_code == 0, r.output
    pid = r.output.split()[1]
    r = _run(e, monkeypatch, "list")
    assert "东片" in r.output and "draft" in r.output
    r = _run(e, monkeypatch, "show", pid)
    assert r.exit_code == 0 and "G-A1" in r.output and "over (+166)" in r.output, r.output
    r = _run(e, monkeypatch, "validate", pid, "--min", "300", "--max", "700")
    assert r.exit_code == 0 and "0 error(s), 0 warning(s)" in r.output, r.output
    out = tmp_path / "plan.zip"
    r = _run(e, monkeypatch, "export", pid, str(out), "--crs", "gcj02")
    assert r.exit_code == 0 and out.exists(), r.output
    r = _run(e, monkeypatch, "import", str(out), "--plan", pid, "--crs", "gcj02")
    assert r.exit_code == 0 and "0 changed, 2 unchanged" in r.output, r.output
    r = _run(e, monkeypatch, "diff", pid)
    assert r.exit_code == 0 and "changed or new: none" in r.output, r.output
    r = _run(e, monkeypatch, "publish", pid, "--on", "2026-06-01")
    assert r.exit_code == 0 and "2 grids ended, 2 added" in r.output, r.output
    with e.connect() as c:
        assert c.scalar(sa.text("SELECT count(*) FROM grid WHERE valid_to = '2026-05-31'")) == 2
    r = _run(e, monkeypatch, "publish", pid)
    assert r.exit_code == 1 and "is published" in r.output


def test_errors_are_one_line_and_exit_nonzero(district, monkeypatch, tmp_path) -> None:
    e = district.engine
    r = _run(e, monkeypatch, "create", "--name", "x", "--community", "nope")
    assert r.exit_code == 1 and "community nope does not exist" in r.output
    bad = tmp_path / "bad.geojson"
    bad.write_text(
        '{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"code": "Z"}, "geometry": {"type": "Polygon", "coordinates": [[[118.575, 24.905], [118.5751, 24.905], [118.5751, 24.9051], [118.575, 24.905]]]}}]}'
    )
    r = _run(e, monkeypatch, "create", "--name", "x", "--community", A, "--from-file", str(bad))
    assert r.exit_code == 0, r.output  # a small grid is accepted as a draft ...
    pid = r.output.split()[1]
    r = _run(e, monkeypatch, "validate", pid)
    assert r.exit_code == 1 and "belong to no grid" in r.output  # ... and the check says why
    r = _run(e, monkeypatch, "show", "999")
    assert r.exit_code == 1 and "plan 999 does not exist" in r.output


def test_units_in_then_automatic_grids(district, monkeypatch, tmp_path) -> None:
    from shapely.geometry import box

    from mapsvc.commands.boundaries import import_group
    from mapsvc.services.partition import as_frame
    from mapsvc.services.units_gen import generate_units
    from tests.fixtures.incidents import wgs

    e = district.engine
    blocks = generate_units(wgs(box(0, 0, 500, 600)), n=60, households=1333, seed=4, groups=2)
    f = tmp_path / "blocks.gpkg"
    as_frame(blocks).rename(columns={"id": "code"}).to_file(f, driver="GPKG")
    monkeypatch.setenv("DATABASE_URL", e.url.render_as_string(hide_password=False))
    r = CliRunner().invoke(import_group, ["units", str(f)])
    assert r.exit_code == 0 and f"imported {len(blocks)} units with 1,333 households" in r.output, (
        r.output
    )
    with e.connect() as c:
        assert (
            c.scalar(sa.text("SELECT count(*) FROM planning_unit WHERE group_code IS NOT NULL"))
            >= 2
        )
    r = _run(e, monkeypatch, "auto", "--community", A, "--grids", "3")
    assert r.exit_code == 0, r.output
    assert "community 350502001001: 3 grids" in r.output and "Polsby-Popper mean" in r.output
    pid = r.output.strip().splitlines()[-1].split()[1]
    r = _run(e, monkeypatch, "validate", pid)
    assert r.exit_code == 0 and "0 error(s)" in r.output, r.output
    r = _run(
        e,
        monkeypatch,
        "auto",
        "--community",
        A,
        "--lock",
        "G-A1",
        "--from-current",
        "--min",
        "200",
        "--max",
        "700",
    )
    assert r.exit_code == 0 and "of households change grid" in r.output, r.output
    r = _run(e, monkeypatch, "auto", "--community", A, "--grids", "9")
    assert r.exit_code == 1 and "1,333 households cannot fill 9 grids" in r.output
