"""CSV bulk import through the real CLI: a foreign export with its own columns, dates and
GCJ-02 coordinates; bad rows rejected (default) or skipped into a report (--skip-bad)."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import sqlalchemy as sa

from mapsvc.services.chinacrs import wgs84_to_gcj02
from tests.fixtures.incidents import ll, run_cli, write_csv

HEADER = ["工单号", "纬度", "经度", "类别", "受理时间", "办结时间", "状态", "等级"]
FMT = "%Y/%m/%d %H:%M"


def _gcj(x: float, y: float) -> tuple[str, str]:
    lon, lat = wgs84_to_gcj02(*ll(x, y))
    return f"{float(lat):.8f}", f"{float(lon):.8f}"


def _good_rows() -> list[list[str]]:
    t = dt.datetime(2026, 3, 1, 9, 30)
    rows = []
    for k, (x, y) in enumerate([(100, 250), (200, 170), (700, 440), (100, 290), (270, 500)]):
        lat, lon = _gcj(x, y)
        closed = (t + dt.timedelta(hours=5)).strftime(FMT) if k % 2 == 0 else ""
        state = "结案" if k % 2 == 0 else "处置中"
        rows.append([f"H{k}", lat, lon, "road", t.strftime(FMT), closed, state, "一般"])
    return rows


def _bad_rows() -> list[tuple[list[str], str, str]]:
    t = dt.datetime(2026, 3, 1, 9, 30).strftime(FMT)
    future = (dt.datetime.now() + dt.timedelta(days=30)).strftime(FMT)
    lat, lon = _gcj(150, 150)
    far_lat, far_lon = _gcj(5000, 5000)
    return [
        (["B1", "", lon, "road", t, "", "受理", ""], "纬度", "missing coordinate"),
        (["B2", lat, "118.5x", "road", t, "", "受理", ""], "经度", "unparsable coordinate"),
        (["B3", lat, lon, "ufo", t, "", "受理", ""], "类别", "unknown category"),
        (["B4", lat, lon, "road", future, "", "受理", ""], "受理时间", "date in the future"),
        (["B5", far_lat, far_lon, "road", t, "", "受理", ""], "纬度/经度", "outside the district"),
        (["B6", lat, lon, "road", "03-01-2026", "", "受理", ""], "受理时间", "unparsable date"),
    ]


def _mapping(tmp_path: Path) -> Path:
    m = tmp_path / "map.txt"
    m.write_text(
        "id=工单号\nlat=纬度\nlon=经度\ncategory=类别\nopened=受理时间\nclosed=办结时间\n"
        f"status=状态\nseverity=等级\ndate_format={FMT}\n",
        encoding="utf-8",
    )
    return m


def _count(engine) -> int:
    with engine.connect() as c:
        return c.scalar(sa.text("SELECT count(*) FROM incident"))


def test_foreign_export_imports_with_mapping_and_routes(district, tmp_path) -> None:
    f = write_csv(tmp_path / "export.csv", HEADER, _good_rows())
    res = run_cli(
        district.engine,
        "incidents",
        "import",
        str(f),
        "--crs",
        "gcj02",
        "--mapping",
        str(_mapping(tmp_path)),
    )
    assert res.exit_code == 0, res.output
    assert "imported 5 of 5 rows" in res.output
    with district.engine.connect() as c:
        rows = {
            r.external_id: r
            for r in c.execute(
                sa.text(
                    "SELECT external_id, state, grid_id, segment_id, chief_id, closed_at, due_at,"
                    " reported_at, location_to_confirm, severity, ST_X(geom) x, ST_Y(geom) y "
                    "FROM incident"
                )
            )
        }
        events = c.scalar(sa.text("SELECT count(*) FROM incident_event"))
    assert events == 5
    assert rows["H0"].state == "closed" and rows["H1"].state == "in_hand"
    assert rows["H0"].grid_id == district.grid["A1"] and not rows["H0"].location_to_confirm
    assert rows["H1"].segment_id == district.segment["seg1"]
    assert rows["H1"].chief_id == district.staff["chief1"]
    assert rows["H2"].grid_id == district.grid["B1"]
    assert rows["H3"].location_to_confirm  # 10 m from the A1/A2 boundary
    assert rows["H4"].segment_id == district.segment["seg2"]
    # GCJ-02 converted back to the drawn WGS84 position
    lon, lat = ll(100, 250)
    assert abs(rows["H0"].x - lon) < 1e-7 and abs(rows["H0"].y - lat) < 1e-7
    # local time (Asia/Shanghai) 09:30 is 01:30 UTC; closed 5 h later; ordinary -> 72 h
    assert rows["H0"].reported_at == dt.datetime(2026, 3, 1, 1, 30, tzinfo=dt.UTC)
    assert rows["H0"].closed_at - rows["H0"].reported_at == dt.timedelta(hours=5)
    assert rows["H1"].due_at - rows["H1"].reported_at == dt.timedelta(hours=72)
    assert rows["H0"].severity == "ordinary"
    # importing the same file again: every id is already there -> nothing imported
    res = run_cli(
        district.engine,
        "incidents",
        "import",
        str(f),
        "--crs",
        "gcj02",
        "--mapping",
        str(_mapping(tmp_path)),
    )
    assert res.exit_code != 0 and "id already imported" in res.output
    assert _count(district.engine) == 5


def test_bad_rows_import_nothing_by_default(district, tmp_path) -> None:
    bad = _bad_rows()
    f = write_csv(tmp_path / "mixed.csv", HEADER, _good_rows() + [r for r, _, _ in bad])
    res = run_cli(
        district.engine,
        "incidents",
        "import",
        str(f),
        "--crs",
        "gcj02",
        "--mapping",
        str(_mapping(tmp_path)),
    )
    assert res.exit_code == 1
    assert "6 of 11 rows are bad; nothing was imported" in res.output
    for k, (_, col, reason) in enumerate(bad):
        assert f"row {7 + k}: {col}: {reason}" in res.output, (col, reason, res.output)
    assert _count(district.engine) == 0


def test_skip_bad_imports_good_rows_and_writes_the_bad(district, tmp_path) -> None:
    bad = _bad_rows()
    f = write_csv(
        tmp_path / "mixed.csv",
        HEADER,
        [r for r, _, _ in bad[:3]] + _good_rows() + [r for r, _, _ in bad[3:]],
    )
    out = tmp_path / "bad.csv"
    res = run_cli(
        district.engine,
        "incidents",
        "import",
        str(f),
        "--crs",
        "gcj02",
        "--mapping",
        str(_mapping(tmp_path)),
        "--skip-bad",
        str(out),
    )
    assert res.exit_code == 0, res.output
    assert "imported 5 of 11 rows" in res.output
    assert _count(district.engine) == 5
    with out.open(encoding="utf-8") as fh:
        written = list(csv.DictReader(fh))
    assert [w["工单号"] for w in written] == [r[0] for r, _, _ in bad]
    assert [int(w["_row"]) for w in written] == [2, 3, 4, 10, 11, 12]
    for w, (_, col, reason) in zip(written, bad, strict=True):
        assert f"{col}: {reason}" in w["_reasons"]


def test_missing_columns_are_named(district, tmp_path) -> None:
    f = write_csv(tmp_path / "export.csv", HEADER, _good_rows())
    res = run_cli(district.engine, "incidents", "import", str(f), "--map", "id=工单号")
    assert res.exit_code == 1
    assert "missing columns lat (column 'lat')" in res.output
    res = run_cli(district.engine, "incidents", "import", str(f), "--crs", "EPSG:3857")
    assert res.exit_code == 1 and "--crs must be one of" in res.output


def test_description_and_address_are_kept_and_checked(district, tmp_path) -> None:
    """A hotline export's own words travel with the incident; text PostgreSQL cannot store
    (NUL, longer than the column) is a bad row, not a failed import."""
    rows = [r + ["门口堆放纸箱", "测试路12号"] for r in _good_rows()[:2]]
    rows.append(_good_rows()[2] + ["", ""])  # empty text is NULL
    nul = _good_rows()[3] + ["坑\x00洞", ""]
    nul[0] = "N1"
    long_address = _good_rows()[4] + ["", "路" * 301]
    long_address[0] = "N2"
    long_id = _good_rows()[0] + ["", ""]
    long_id[0] = "X" * 65
    f = tmp_path / "texts.csv"
    with f.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*HEADER, "问题描述", "地址"])
        w.writerows([*rows, nul, long_address, long_id])
    m = _mapping(tmp_path)
    m.write_text(m.read_text(encoding="utf-8") + "description=问题描述\naddress=地址\n", "utf-8")
    args = ["incidents", "import", str(f), "--crs", "gcj02", "--mapping", str(m)]
    res = run_cli(district.engine, *args)
    assert res.exit_code == 1 and _count(district.engine) == 0
    assert "row 5: 问题描述: contains a NUL character" in res.output, res.output
    assert "row 6: 地址: longer than 300 characters" in res.output
    assert "row 7: 工单号: id longer than 64 characters" in res.output
    res = run_cli(district.engine, *args, "--skip-bad", str(tmp_path / "bad.csv"))
    assert res.exit_code == 0, res.output
    with district.engine.connect() as c:
        stored = c.execute(
            sa.text("SELECT external_id, description, address FROM incident ORDER BY external_id")
        ).all()
    assert [tuple(r) for r in stored] == [
        ("H0", "门口堆放纸箱", "测试路12号"),
        ("H1", "门口堆放纸箱", "测试路12号"),
        ("H2", None, None),
    ]


def test_dry_run_checks_and_routes_but_writes_nothing(district, tmp_path) -> None:
    f = write_csv(tmp_path / "export.csv", HEADER, _good_rows())
    args = ["incidents", "import", str(f), "--crs", "gcj02", "--mapping", str(_mapping(tmp_path))]
    dry = run_cli(district.engine, *args, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert (
        "checked (dry run) 5 of 5 rows" in dry.output and "dry run: nothing written" in dry.output
    )
    with district.engine.connect() as c:
        assert c.scalar(sa.text("SELECT count(*) FROM incident_event")) == 0
    assert _count(district.engine) == 0
    wet = run_cli(district.engine, *args)
    assert wet.exit_code == 0 and _count(district.engine) == 5
    # the same summary (routing included) as the real run
    same = ("on an alley segment:", "location to confirm:")
    for key in same:
        got = [out.split(key)[1].split(";")[0].splitlines()[0] for out in (dry.output, wet.output)]
        assert got[0] == got[1]
    again = run_cli(district.engine, *args, "--dry-run")  # the ids exist now: refused as for real
    assert again.exit_code == 1 and _count(district.engine) == 5


def test_a_fallback_point_shared_by_many_rows_is_flagged_and_reported(district, tmp_path) -> None:
    """55 calls on one exact point (the source's stand-in for "no location") are imported
    flagged to confirm and the point is reported; 49 on another point (under the default
    threshold of 50) and the ordinary rows stay precise."""
    t = dt.datetime(2026, 3, 1, 9, 30).strftime(FMT)
    centre, busy = _gcj(150, 150), _gcj(260, 420)
    rows = _good_rows()
    rows += [[f"C{k}", *centre, "road", t, "", "受理", ""] for k in range(55)]
    rows += [[f"D{k}", *busy, "road", t, "", "受理", ""] for k in range(49)]
    f = write_csv(tmp_path / "fallback.csv", HEADER, rows)
    res = run_cli(
        district.engine, "incidents", "import", str(f), "--crs", "gcj02",
        "--mapping", str(_mapping(tmp_path)),
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    lines = [line for line in res.output.splitlines() if line.startswith("fallback point")]
    assert len(lines) == 1 and "55 rows share it exactly" in lines[0], res.output
    with district.engine.connect() as c:
        flagged = dict(
            c.execute(
                sa.text(
                    "SELECT left(external_id, 1), count(*) FILTER (WHERE location_to_confirm) "
                    "FROM incident GROUP BY 1"
                )
            ).all()
        )
        lon, lat = c.execute(
            sa.text("SELECT ST_X(geom), ST_Y(geom) FROM incident WHERE external_id = 'C0'")
        ).one()
    assert flagged["C"] == 55 and flagged["D"] == 0
    assert f"{lon:.6f},{lat:.6f}" in lines[0]  # the point as stored (WGS84)
    assert f"location to confirm: {55 + flagged['H']}" in res.output


def test_each_row_may_name_its_source(district, tmp_path) -> None:
    """A 来源 column gives each row its source (codes or the words exports use); an empty
    cell keeps the import's ``--source``; an unknown word is a bad row naming the column."""
    sources = ["12345", "巡查", "", "Resident", "热线"]
    rows = [r + [src] for r, src in zip(_good_rows(), sources, strict=True)]
    header = [*HEADER, "来源"]
    unknown = ["H9", *rows[0][1:-1], "微博"]
    bad = write_csv(tmp_path / "bad.csv", header, [*rows, unknown])
    mapping = str(_mapping(tmp_path))
    res = run_cli(
        district.engine, "incidents", "import", str(bad), "--crs", "gcj02",
        "--mapping", mapping, "--map", "source=来源",
    )  # fmt: skip
    assert res.exit_code == 1
    assert "row 7: 来源: unknown source" in res.output, res.output
    assert _count(district.engine) == 0
    good = write_csv(tmp_path / "good.csv", header, rows)
    res = run_cli(
        district.engine, "incidents", "import", str(good), "--crs", "gcj02",
        "--mapping", mapping, "--map", "source=来源", "--source", "patrol",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    with district.engine.connect() as c:
        stored = dict(c.execute(sa.text("SELECT external_id, source FROM incident")).all())
    assert stored == {
        "H0": "hotline", "H1": "patrol", "H2": "patrol", "H3": "resident", "H4": "hotline",
    }  # fmt: skip
