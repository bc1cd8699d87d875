"""Coverage on the edge cases of the staffing spec: ended posts, two heads, no members."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from mapsvc.services.coverage import coverage_report, grid_status, segment_status
from tests.fixtures.staffing import COMMUNITIES, GRIDS, SEGMENTS, TODAY

YESTERDAY = TODAY - dt.timedelta(days=1)


def _by_code(rows: list[dict]) -> dict[str, dict]:
    return {r["code"]: r for r in rows}


def test_grid_status_today_edge_cases(staffing_db) -> None:
    with Session(staffing_db.engine) as s:
        g = _by_code(grid_status(s, TODAY, members_required=2))
    assert len(g) == len(GRIDS)
    # fully staffed: head and two members
    assert g["350502001001-01"]["status"] == "staffed"
    assert g["350502001001-01"]["head_name"] == "张一"
    assert g["350502001001-01"]["members"] == 2
    # the head's post ended yesterday: no head today, members still there
    assert g["350502001001-02"]["status"] == "no_head"
    assert g["350502001001-02"]["head_name"] is None
    assert g["350502001001-02"]["members"] == 2
    # a head replaced 50 days ago: the new one shown, one head
    assert g["350502001002-01"]["status"] == "staffed"
    assert g["350502001002-01"]["multiple_heads"] is False
    assert g["350502001002-01"]["heads"] == 1
    assert g["350502001002-01"]["head_name"] == "赵三"
    # a head with no members
    assert g["350502001002-02"]["status"] == "understaffed"
    assert g["350502001002-02"]["members"] == 0
    # one member short
    assert g["350502002001-01"]["status"] == "understaffed"
    assert g["350502002001-01"]["members"] == 1
    # nobody at all
    assert g["350502002001-02"]["status"] == "no_head"
    assert g["350502002001-02"]["heads"] == 0
    # the head listed as a member too is not counted as one of the members
    assert g["350502002001-03"]["members"] == 2
    assert g["350502002001-03"]["status"] == "staffed"
    assert not any(r["multiple_heads"] for r in g.values())


def test_grid_status_past_date_and_requirement(staffing_db) -> None:
    with Session(staffing_db.engine) as s:
        past = _by_code(grid_status(s, TODAY - dt.timedelta(days=2)))
        before_second_head = _by_code(grid_status(s, TODAY - dt.timedelta(days=60)))
        relaxed = _by_code(grid_status(s, TODAY, members_required=1))
        yesterday = _by_code(grid_status(s, YESTERDAY))
    # on the last day of the ended post the head is still there
    assert yesterday["350502001001-02"]["status"] == "staffed"
    assert past["350502001001-02"]["head_name"] == "张二"
    assert before_second_head["350502001002-01"]["heads"] == 1
    assert before_second_head["350502001002-01"]["head_name"] == "张三"
    assert relaxed["350502002001-01"]["status"] == "staffed"
    assert relaxed["350502001002-02"]["status"] == "understaffed"


def test_segment_status_and_places(staffing_db) -> None:
    with Session(staffing_db.engine) as s:
        today = _by_code(segment_status(s, TODAY))
        yesterday = _by_code(segment_status(s, YESTERDAY))
        earlier = _by_code(segment_status(s, TODAY - dt.timedelta(days=60)))
    assert len(today) == len(SEGMENTS)
    assert today["S1"]["chief_name"] == "陈一" and today["S1"]["deputy_name"] == "周一"
    assert today["S2"]["status"] == "no_chief"  # chief's post ended yesterday
    assert yesterday["S2"]["status"] == "chief"
    assert today["S4"]["chief_name"] == "张七"
    assert earlier["S4"]["status"] == "no_chief"  # that post started 30 days ago
    ids = staffing_db.ids["grid"]
    assert today["S1"]["grid_id"] == ids["350502001001-01"]
    assert today["S3"]["grid_id"] == ids["350502002001-02"]
    assert today["S3"]["community_id"] == staffing_db.ids["community"]["350502002001"]


def test_coverage_report_rollups(staffing_db) -> None:
    with Session(staffing_db.engine) as s:
        grids = grid_status(s, TODAY)
        segs = segment_status(s, TODAY)
        rep = coverage_report(s, TODAY)
    # rollups agree with the per-feature rows, community by community
    for code, *_ in COMMUNITIES:
        row = next(c for c in rep["communities"] if c["code"] == code)
        cid = staffing_db.ids["community"][code]
        mine = [g for g in grids if g["community_id"] == cid]
        assert row["grids"] == len(mine)
        for st in ("no_head", "understaffed", "staffed"):
            assert row[f"grids_{st}"] == sum(1 for g in mine if g["status"] == st)
        mysegs = [x for x in segs if x["community_id"] == cid]
        assert row["segments_no_chief"] == sum(1 for x in mysegs if x["chief_id"] is None)
    sub_a = next(x for x in rep["subdistricts"] if x["code"] == "350502001")
    assert sub_a["grids"] == 4 and sub_a["grids_no_head"] == 1
    assert sub_a["grids_understaffed"] == 1 and sub_a["grids_staffed"] == 2
    assert sub_a["grids_headed_pct"] == 75.0
    summary = rep["summary"]
    assert summary["grids"] == len(GRIDS)
    assert summary["grids_no_head"] == 2
    assert summary["grids_understaffed"] == 2
    assert summary["grids_multiple_heads"] == 0  # the database refuses two heads
    assert summary["segments_no_chief"] == 1
    un = rep["uncovered"]
    assert un["grids_count"] == 4
    assert {g["code"] for g in un["grids"]} == {
        "350502001001-02",
        "350502001002-02",
        "350502002001-01",
        "350502002001-02",
    }
    assert [x["code"] for x in un["segments"]] == ["S2"]
    assert un["multiple_heads_count"] == 0


def test_segments_layer_and_coverage_read_the_same_posts(staffing_db) -> None:
    """The segments layer and the coverage table join a segment to its chief and deputy
    in one place (assignments.segment_posts), so they agree on every day, including a
    segment with a deputy but no chief."""
    from layers import get_layer
    from mapsvc.services.assignments import assign

    with Session(staffing_db.engine) as s:
        # S2's chief left yesterday; its deputy starts today
        assign(
            s,
            staffing_db.ids["staff"]["d1"],
            "deputy_chief",
            segment_id=staffing_db.ids["segment"]["S2"],
            valid_from=TODAY,
        )
        layer = get_layer("segments")
        for day in (TODAY, YESTERDAY, TODAY - dt.timedelta(days=60)):
            table = {
                c: (r["chief_name"], r["deputy_name"])
                for c, r in _by_code(segment_status(s, day)).items()
            }
            drawn = {
                f["properties"]["code"]: (
                    f["properties"]["chief_name"],
                    f["properties"]["deputy_name"],
                )
                for f in layer.query(s, day=day)["features"]
            }
            assert table == drawn, day
            assert set(table) == {code for code, *_ in SEGMENTS}
        assert table["S1"] == ("陈一", "周一")  # 60 days ago
        today = _by_code(segment_status(s, TODAY))
        assert (today["S2"]["chief_name"], today["S2"]["deputy_name"]) == (None, "周一")
        assert today["S2"]["status"] == "no_chief"
        assert (today["S3"]["chief_name"], today["S3"]["deputy_name"]) == ("陈三", None)
        s.rollback()
