"""``mapsvc staffing ...`` on the spec database (through the real click group)."""

from __future__ import annotations

import datetime as dt
import json

from click.testing import CliRunner
from openpyxl import load_workbook

from mapsvc.cli import main
from tests.fixtures.staffing import COMMUNITIES, GRIDS, TODAY


def _run(engine, *args: str):
    env = {"DATABASE_URL": engine.url.render_as_string(hide_password=False)}
    return CliRunner().invoke(main, ["staffing", *args], env=env, catch_exceptions=False)


def test_coverage_command(staffing_db) -> None:
    r = _run(staffing_db.engine, "coverage", "--list")
    assert r.exit_code == 0, r.output
    assert f"grids {len(GRIDS)}: no head 2, too few members 2" in r.output
    assert "350502002001-02" in r.output  # the grid with nobody
    past = _run(staffing_db.engine, "coverage", "--json", "--date", str(TODAY - dt.timedelta(1)))
    rep = json.loads(past.output)
    assert rep["summary"]["grids_no_head"] == 1  # the ended head was still in post
    bad = _run(staffing_db.engine, "coverage", "--date", "yesterday")
    assert bad.exit_code == 2 and "--date" in bad.output


def test_density_command(staffing_db) -> None:
    r = _run(staffing_db.engine, "density", "--level", "community", "--json")
    rows = json.loads(r.output)
    assert sorted(x["code"] for x in rows) == sorted(c[0] for c in COMMUNITIES)
    text = _run(staffing_db.engine, "density", "--level", "grid")
    assert text.exit_code == 0 and "workers/km²" not in text.output


def test_quota_command_exports(staffing_db, tmp_path) -> None:
    x, c = tmp_path / "q.xlsx", tmp_path / "q.csv"
    r = _run(staffing_db.engine, "quota", "-a", "30", "--xlsx", str(x), "--csv", str(c))
    assert r.exit_code == 0, r.output
    assert "30×pop/10000" in r.output
    rows = list(load_workbook(x).active.iter_rows(values_only=True))
    assert rows[0][0] == "社区代码" and len([r for r in rows[1:] if r and r[0]]) >= len(COMMUNITIES)
    assert c.read_text(encoding="utf-8-sig").splitlines()[0].startswith("社区代码,")
    bad = _run(staffing_db.engine, "quota", "-b", "-2")
    assert bad.exit_code == 2 and "coefficient b" in bad.output
