"""``mapsvc staff import|add|list|end``: the roster in, posts with their history, row-level
errors that change nothing. Run in-process with click's runner on the small district."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from click.testing import CliRunner

from mapsvc.commands.roster import staff_group
from mapsvc.services.coverage import grid_status


def _run(engine, monkeypatch, *args: str):
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    return CliRunner().invoke(staff_group, list(args))


def _posts(engine) -> list[tuple]:
    with engine.connect() as c:
        return [
            tuple(r)
            for r in c.execute(
                sa.text(
                    "SELECT s.code, s.name, s.phone, a.role, a.grid_id, a.segment_id, "
                    "a.valid_from, a.valid_to FROM staff s LEFT JOIN assignment a "
                    "ON a.staff_id = s.id ORDER BY s.code, a.id"
                )
            )
        ]


ROSTER = (
    "编号,姓名,职务,电话,网格编码,街巷编码,任职日期\n"
    "R1,周网格长,网格长,13900000001,350502001001-02,,2025-01-01\n"
    "R2,吴网格员,网格员,13900000002,350502001001-02；350502001002-01,,2025-01-01\n"
    "R3,郑巷长,街巷长,13900000003,,t:S2,2025-03-01\n"
    "t-head,孙网格长,网格长,13800000009,350502001001-01,,\n"
)


def test_a_roster_imports_people_and_posts_and_keeps_history(small, monkeypatch, tmp_path):
    f = tmp_path / "花名册.csv"
    f.write_text(ROSTER, encoding="utf-8")
    before = _posts(small.engine)
    dry = _run(small.engine, monkeypatch, "import", str(f), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "3 people added, 1 updated, 5 posts given" in dry.output and "dry run" in dry.output
    assert _posts(small.engine) == before
    r = _run(small.engine, monkeypatch, "import", str(f))
    assert r.exit_code == 0, r.output
    with small.engine.connect() as c:
        got = c.execute(
            sa.text(
                "SELECT s.code, a.role, coalesce(g.code, seg.code), a.valid_from FROM assignment a "
                "JOIN staff s ON s.id = a.staff_id LEFT JOIN grid g ON g.id = a.grid_id "
                "LEFT JOIN alley_segment seg ON seg.id = a.segment_id "
                "WHERE s.code LIKE 'R%' ORDER BY 1, 3"
            )
        ).all()
        phone = c.scalar(sa.text("SELECT phone FROM staff WHERE code = 't-head'"))
    assert [tuple(x) for x in got] == [
        ("R1", "grid_head", "350502001001-02", dt.date(2025, 1, 1)),
        ("R2", "grid_member", "350502001001-02", dt.date(2025, 1, 1)),
        ("R2", "grid_member", "350502001002-01", dt.date(2025, 1, 1)),
        ("R3", "alley_chief", "t:S2", dt.date(2025, 3, 1)),
    ]
    assert phone == "13800000009"  # the known person updated, their post kept
    listed = _run(small.engine, monkeypatch, "list", "--day", "2025-06-01")
    assert (
        "R2\t吴网格员\tgrid_member\t13900000002\tgrid_member:350502001001-02, grid_member:350502001002-01"
        in listed.output
    )

    # R1 leaves at the end of 2025: the post ends, the past still shows them
    r = _run(small.engine, monkeypatch, "end", "R1", "--last-day", "2025-12-31")
    assert r.exit_code == 0 and "ended 1 post(s)" in r.output
    from sqlalchemy.orm import Session

    with Session(small.engine) as s:
        then = {g["code"]: g for g in grid_status(s, dt.date(2025, 6, 1))}
        later = {g["code"]: g for g in grid_status(s, dt.date(2026, 1, 2))}
    assert then["350502001001-02"]["head_name"] == "周网格长"
    assert later["350502001001-02"]["head_name"] is None
    with small.engine.connect() as c:
        assert c.scalar(sa.text("SELECT count(*) FROM staff WHERE code = 'R1'")) == 1


def test_bad_rows_are_named_and_nothing_is_written(small, monkeypatch, tmp_path):
    f = tmp_path / "bad.csv"
    f.write_text(
        "编号,姓名,职务,电话,网格编码,街巷编码,任职日期\n"
        "R1,周网格长,网格长,139,350502001001-02,,2025-01-01\n"
        "R2,吴某,队长,139,350502001001-02,,2025-01-01\n"
        "R3,郑巷长,街巷长,139,,t:S9,2025-03-01\n"
        "R4,王某,网格员,139,350502001001-02,,2025-13-01\n"
        "R5,,网格员,139,350502001001-02,,\n"
        "R6,李某,街巷长,139,350502001001-02,,\n",
        encoding="utf-8",
    )
    before = _posts(small.engine)
    r = _run(small.engine, monkeypatch, "import", str(f))
    assert r.exit_code == 1
    out = r.output
    assert "5 problem(s); nothing was written" in out
    assert "row 3: 职务: unknown role '队长'" in out
    assert "row 4: 街巷编码: unknown segment 't:S9'" in out
    assert "row 5: from '2025-13-01' is not a date" in out
    assert "row 6: 姓名 is required" in out
    assert "row 7: a 街巷长 (alley_chief) holds no grid" in out
    assert _posts(small.engine) == before
    f.write_text("姓名,职务\n张三,网格员\n", encoding="utf-8")
    r = _run(small.engine, monkeypatch, "import", str(f))
    assert r.exit_code == 1 and "no column code / staff_code / 编号 / 工号 for the code" in r.output
    r = _run(small.engine, monkeypatch, "import", str(f), "--map", "code=姓名,grids=网格")
    assert r.exit_code == 1 and "no column 网格 for the grids" in r.output


def test_xlsx_and_add_and_duplicates(small, monkeypatch, tmp_path):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["code", "name", "role", "phone", "grids", "from"])
    sheet.append(
        ["X1", "冯网格员", "grid_member", 13900000011, "350502001002-02", dt.date(2025, 2, 1)]
    )
    f = tmp_path / "roster.xlsx"
    book.save(f)
    r = _run(small.engine, monkeypatch, "import", str(f))
    assert r.exit_code == 0, r.output
    with small.engine.connect() as c:
        row = c.execute(
            sa.text(
                "SELECT s.phone, a.valid_from FROM staff s JOIN assignment a ON a.staff_id = s.id "
                "WHERE s.code = 'X1'"
            )
        ).one()
    assert tuple(row) == ("13900000011", dt.date(2025, 2, 1))
    r = _run(small.engine, monkeypatch, "add", "X2", "褚巷长", "--role", "街巷长", "--phone", "139")
    assert r.exit_code == 0 and "added X2 褚巷长 (alley_chief)" in r.output
    r = _run(small.engine, monkeypatch, "add", "X2", "褚巷长", "--role", "alley_chief")
    assert r.exit_code == 1 and "already on the roster" in r.output
    r = _run(small.engine, monkeypatch, "end", "nobody")
    assert r.exit_code == 1 and "'nobody' is not on the roster" in r.output
