"""Plans of grids on a real PostGIS: drafted, checked, edited under versions, published with
posts and open incidents re-linked, past dates unchanged, files round-tripped.

The district is :func:`tests.fixtures.incidents.build_district`: community A (grids A1
below y=300, A2 above) and B (one grid B1), each grid with its head since 2020, drawn in
local metres so every expected figure is known from the drawing.
"""

from __future__ import annotations

import datetime as dt
import threading

import geopandas as gpd
import pytest
import shapely
import sqlalchemy as sa
from shapely.geometry import box, mapping
from sqlalchemy.orm import Session

from mapsvc.core.errors import Conflict, NotFound, ValidationError
from mapsvc.services import coverage, density, plans
from mapsvc.services.incidents import create_incident
from tests.fixtures.incidents import ll, wgs

DAY = dt.date(2026, 6, 1)
A = "350502001001"
B = "350502001002"


def _poly(x0, y0, x1, y1):
    return wgs(box(x0, y0, x1, y1))


def _plan(engine, **kw) -> int:
    with Session(engine) as s:
        p = plans.create_plan(
            s,
            name=kw.pop("name", "新方案"),
            community_codes=kw.pop("codes", [A]),
            author="planner1",
            **kw,
        )
        s.commit()
        return p.id


def _redraw_a(engine) -> int:
    """A plan for community A with the border moved from y=300 to y=400."""
    drafts = [
        plans.GridDraft("G-A1", _poly(0, 0, 500, 400), households=900, population=2700),
        plans.GridDraft("G-A2", _poly(0, 400, 500, 600), households=400, population=1300),
    ]
    return _plan(engine, grids=drafts, source="file")


def test_a_copy_of_the_current_grids_is_valid_and_shows_its_workload(district) -> None:
    pid = _plan(district.engine)
    with Session(district.engine) as s:
        summary = plans.plan_summary(s, plans.get_plan(s, pid))
        assert summary["grids"] == 2 and summary["status"] == "draft"
        assert [c["code"] for c in summary["communities"]] == [A]
        check = plans.validate_plan(s, pid)
        assert check["ok"], check
        rows = plans.workload(s, pid, day=DAY, target=(300, 500))
    by = {r["code"]: r for r in rows}
    # A1 and A2 hold 2000 residents / 3 = 666 households each: over 500 by 166
    assert by["G-A1"]["households"] == 666 and by["G-A1"]["status"] == "over"
    assert by["G-A1"]["off_by"] == 166
    assert by["G-A1"]["staff"] == 1  # its head, who would stay with it
    assert by["G-A1"]["households_per_staff"] == 666.0
    assert by["G-A1"]["area_km2"] == pytest.approx(0.15, rel=1e-3)  # 500 m x 300 m


def test_unknown_communities_and_plans_are_named(district) -> None:
    with Session(district.engine) as s:
        with pytest.raises(NotFound, match="community 999 does not exist"):
            plans.create_plan(s, name="x", community_codes=["999"], author="p")
        with pytest.raises(NotFound, match="plan 4242 does not exist"):
            plans.validate_plan(s, 4242)
        with pytest.raises(ValidationError, match="lies mostly outside"):
            plans.create_plan(
                s, name="x", community_codes=[A], author="p", source="file",
                grids=[plans.GridDraft("far", _poly(600, 0, 900, 300))],
            )  # fmt: skip


def test_an_overlap_is_found_located_and_sized(district) -> None:
    pid = _plan(district.engine)
    with Session(district.engine) as s:
        g = plans.update_grid(
            s, pid, "G-A1", version=1, author="planner1", geometry=_poly(0, 0, 500, 340)
        )
        s.commit()
    # the shape was snapped: the neighbour's edge cut it back, so no overlap is left
    assert g["version"] == 2
    with Session(district.engine) as s:
        assert plans.validate_plan(s, pid)["ok"]
        # written straight into the table, an overlap of 500 m x 40 m is an error
        s.execute(
            sa.text(
                "UPDATE plan_grid SET geom = ST_Multi(ST_GeomFromText(:g, 4326)) WHERE plan_id = :p AND code = 'G-A1'"
            ),
            {"g": _poly(0, 0, 500, 340).wkt, "p": pid},
        )
        check = plans.validate_plan(s, pid)
        s.rollback()
    assert not check["ok"]
    overlap = [e for e in check["errors"] if e["kind"] == "overlap"]
    assert len(overlap) == 1 and set(overlap[0]["grids"]) == {"G-A1", "G-A2"}
    assert overlap[0]["size_m2"] == pytest.approx(500 * 40, rel=0.02)
    where = shapely.geometry.shape(overlap[0]["where"])
    assert where.intersects(shapely.Point(ll(250, 320)))


def test_a_save_on_an_old_version_is_a_409_naming_who_changed_it(district) -> None:
    pid = _plan(district.engine)
    with Session(district.engine) as s:
        plans.update_grid(s, pid, "G-A1", version=1, author="planner1", households=555)
        s.commit()
    with Session(district.engine) as s:
        with pytest.raises(Conflict, match="changed by planner1") as err:
            plans.update_grid(s, pid, "G-A1", version=1, author="planner2", households=777)
    assert err.value.details["version"] == 2
    with Session(district.engine) as s:
        assert (
            s.scalar(
                sa.text("SELECT households FROM plan_grid WHERE plan_id = :p AND code = 'G-A1'"),
                {"p": pid},
            )
            == 555
        )


def test_two_concurrent_saves_of_one_version_one_wins_one_is_told(district) -> None:
    pid = _plan(district.engine)
    barrier = threading.Barrier(2)
    outcome: dict[str, object] = {}

    def edit(who: str, households: int) -> None:
        with Session(district.engine) as s:
            barrier.wait()
            try:
                plans.update_grid(s, pid, "G-A2", version=1, author=who, households=households)
                s.commit()
                outcome[who] = "saved"
            except Conflict as exc:
                outcome[who] = exc.message

    threads = [threading.Thread(target=edit, args=(w, h)) for w, h in (("p1", 401), ("p2", 402))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(v == "saved" for v in outcome.values()) == [False, True], outcome
    loser = next(k for k, v in outcome.items() if v != "saved")
    winner = "p1" if loser == "p2" else "p2"
    assert f"changed by {winner}" in outcome[loser]
    with Session(district.engine) as s:
        assert (
            s.scalar(
                sa.text("SELECT households FROM plan_grid WHERE plan_id = :p AND code = 'G-A2'"),
                {"p": pid},
            )
            == {"p1": 401, "p2": 402}[winner]
        )


def test_split_merge_and_reassign_keep_the_community_tiled(district) -> None:
    pid = _plan(district.engine)
    with Session(district.engine) as s:
        line = shapely.LineString([ll(250, -20), ll(250, 320)])
        a, b = plans.split_grid(s, pid, "G-A1", line, version=1, new_code="G-A3", author="p")
        assert {a["code"], b["code"]} == {"G-A1", "G-A3"}
        assert a["households"] + b["households"] == 666
        assert plans.validate_plan(s, pid)["ok"]
        # move the south-east quarter of A2 (x 250-500, y 300-450) into A3
        block = _poly(250, 300, 500, 450)
        d, r = plans.reassign_block(
            s, pid, "G-A2", "G-A3", block, versions={"G-A2": 1, "G-A3": 1}, author="p"
        )
        check = plans.validate_plan(s, pid)
        assert check["ok"], check["errors"]
        area = s.execute(
            sa.text("SELECT code, ST_Area(geography(geom)) FROM plan_grid WHERE plan_id = :p"),
            {"p": pid},
        ).all()
        got = dict(area)
        assert got["G-A3"] == pytest.approx(250 * 300 + 250 * 150, rel=0.01)
        assert got["G-A2"] == pytest.approx(500 * 300 - 250 * 150, rel=0.01)
        merged = plans.merge_grids(
            s, pid, "G-A1", "G-A3", versions={"G-A1": 2, "G-A3": 2}, author="p"
        )
        assert merged["version"] == 3
        assert plans.validate_plan(s, pid)["ok"]
        # B1 is in community B: not a neighbour in this plan
        with pytest.raises(NotFound, match="no grid 'G-B1'"):
            plans.merge_grids(s, pid, "G-A1", "G-B1", versions={"G-A1": 3, "G-B1": 1}, author="p")
        s.rollback()


def test_publish_relinks_posts_and_open_incidents_and_keeps_the_past(district) -> None:
    engine = district.engine
    with Session(engine) as s:
        # open, in old A2 and in new A1; open, in old A1 and new A1; closed, in old A2
        moving = create_incident(
            s, {"category": "road", "lon": ll(100, 350)[0], "lat": ll(100, 350)[1]}
        )
        staying = create_incident(
            s, {"category": "road", "lon": ll(100, 100)[0], "lat": ll(100, 100)[1]}
        )
        closed = create_incident(
            s, {"category": "road", "lon": ll(120, 350)[0], "lat": ll(120, 350)[1]}
        )
        s.execute(
            sa.text("UPDATE incident SET state = 'closed', closed_at = now() WHERE id = :i"),
            {"i": closed.id},
        )
        s.commit()
        ids = (moving.id, staying.id, closed.id)
    pid = _redraw_a(engine)
    before = _grids_on(engine, DAY - dt.timedelta(days=1))
    with Session(engine) as s:
        report = plans.publish(s, pid, day=DAY, author="planner1")
        s.commit()
    assert report["grids_ended"] == ["G-A1", "G-A2"] and report["grids_added"] == ["G-A1", "G-A2"]
    heads = {h["name"]: (h["from_grid"], h["to_grid"]) for h in report["heads"]}
    assert heads == {"headA1": ("G-A1", "G-A1"), "headA2": ("G-A2", "G-A2")}
    assert report["grids_without_head"] == [] and report["posts_not_moved"] == []
    assert report["incidents_moved"] == [{"id": ids[0], "from": "G-A2", "to": "G-A1"}]
    assert report["incidents_relinked"] == 2
    # the day before: the old grids, with their heads, as they were
    assert _grids_on(engine, DAY - dt.timedelta(days=1)) == before
    after = _grids_on(engine, DAY)
    assert after["G-A1"][1] == pytest.approx(0.2, rel=1e-3)  # 500 m x 400 m
    assert after["G-A1"][2] == "headA1" and after["G-A2"][2] == "headA2"
    assert after["G-B1"] == before["G-B1"]  # the other community is untouched
    with engine.connect() as c:
        grid_of = dict(
            c.execute(
                sa.text(
                    "SELECT i.id, g.code || ':' || coalesce(g.valid_to::text, 'now') FROM incident i JOIN grid g ON g.id = i.grid_id WHERE i.id = ANY(:i)"
                ),
                {"i": list(ids)},
            ).all()
        )
        head_of = dict(
            c.execute(
                sa.text(
                    "SELECT i.id, s.name FROM incident i JOIN staff s ON s.id = i.grid_head_id WHERE i.id = ANY(:i)"
                ),
                {"i": list(ids)},
            ).all()
        )
    assert grid_of[ids[0]] == "G-A1:now" and head_of[ids[0]] == "headA1"
    assert grid_of[ids[1]] == "G-A1:now"
    assert grid_of[ids[2]] == f"G-A2:{DAY - dt.timedelta(days=1)}"  # closed: its history stays
    # the density of the day before counts the old grids, of the day the new ones
    with Session(engine) as s:
        old = {
            r["code"]: r["area_km2"] for r in density.density(s, "grid", DAY - dt.timedelta(days=1))
        }
        new = {r["code"]: r["area_km2"] for r in density.density(s, "grid", DAY)}
    assert old["G-A1"] == pytest.approx(0.15, rel=1e-3) and new["G-A1"] == pytest.approx(
        0.2, rel=1e-3
    )
    with Session(engine) as s:
        with pytest.raises(Conflict, match="is published"):
            plans.update_grid(s, pid, "G-A1", version=1, author="p", households=1)


def _grids_on(engine, day: dt.date) -> dict[str, tuple]:
    with Session(engine) as s:
        rows = coverage.grid_status(s, day)
    return {r["code"]: (r["community_id"], round(r["area_km2"], 4), r["head_name"]) for r in rows}


def test_a_plan_with_errors_is_not_published_and_nothing_changes(district) -> None:
    pid = _plan(
        district.engine,
        grids=[plans.GridDraft("G-A1", _poly(0, 0, 500, 300), households=1)],
        source="file",
    )
    before = _grids_on(district.engine, DAY)
    with Session(district.engine) as s:
        with pytest.raises(ValidationError, match="nothing was published") as err:
            plans.publish(s, pid, day=DAY, author="p")
        s.rollback()
    assert any(e["kind"] == "gap" for e in err.value.details["errors"])
    assert _grids_on(district.engine, DAY) == before


def test_a_second_head_for_one_new_grid_is_named_not_given_the_post(district) -> None:
    pid = _plan(
        district.engine, grids=[plans.GridDraft("G-A", _poly(0, 0, 500, 600))], source="file"
    )
    with Session(district.engine) as s:
        report = plans.publish(s, pid, day=DAY, author="p")
        s.commit()
    assert [h["name"] for h in report["heads"]] in (["headA1"], ["headA2"])
    (not_moved,) = report["posts_not_moved"]
    assert not_moved["reason"] == "grid G-A already has a head"
    # the households of an unnumbered grid came from the two it replaces (666 + 666)
    assert _grids_on(district.engine, DAY)["G-A"][1] == pytest.approx(0.3, rel=1e-3)
    with district.engine.connect() as c:
        assert c.scalar(sa.text("SELECT households FROM grid WHERE code = 'G-A'")) == 1332


@pytest.mark.parametrize("fmt", ["gpkg", "geojson", "shp"])
@pytest.mark.parametrize("datum", ["wgs84", "cgcs2000", "gcj02"])
def test_export_then_import_gives_identical_grids(district, tmp_path, fmt, datum) -> None:
    pid = _plan(district.engine, codes=[A, B])
    with Session(district.engine) as s:
        path = plans.export_plan(s, pid, fmt, tmp_path, datum=datum)
        before = plans.plan_drafts(s, pid)
    assert path.exists() and path.stat().st_size > 0
    if fmt == "shp":
        import zipfile

        assert {n.rsplit(".", 1)[1] for n in zipfile.ZipFile(path).namelist()} >= {
            "shp",
            "shx",
            "dbf",
            "prj",
            "cpg",
        }
    with Session(district.engine) as s:
        report = plans.import_plan_file(
            s, pid, path, author="p", crs="gcj02" if datum == "gcj02" else None
        )
        s.commit()
        after = plans.plan_drafts(s, pid)
    assert report["added"] == [] and report["removed"] == [] and report["changed"] == []
    assert report["unchanged"] == 3
    for code in before:
        for a, b in zip(before[code], after[code], strict=True):
            assert a.code == b.code and a.households == b.households
            assert a.geom.equals_exact(b.geom, 1e-9 if datum != "gcj02" else 1e-7)


def test_an_edited_file_reports_what_changed(district, tmp_path) -> None:
    pid = _plan(district.engine)
    with Session(district.engine) as s:
        path = plans.export_plan(s, pid, "gpkg", tmp_path)
    frame = gpd.read_file(path)
    i = int(frame.index[frame["code"] == "G-A1"][0])
    frame.loc[i, "households"] = 480
    frame = frame[frame["code"] != "G-A2"]
    extra = gpd.GeoDataFrame(
        {
            "code": ["G-A9"],
            "name": [None],
            "community": [A],
            "households": [300],
            "population": [900],
        },
        geometry=[_poly(0, 300, 500, 600)],
        crs="EPSG:4326",
    )
    edited = tmp_path / "edited.gpkg"
    gpd.pd.concat([frame, extra]).to_file(edited, driver="GPKG")
    with Session(district.engine) as s:
        report = plans.import_plan_file(s, pid, edited, author="qgis-user")
        s.commit()
    assert report["added"] == ["G-A9"] and report["removed"] == ["G-A2"]
    assert report["changed"] == [{"code": "G-A1", "what": ["figures"]}]
    with Session(district.engine) as s:
        assert plans.validate_plan(s, pid)["ok"]
    broken = tmp_path / "broken.geojson"
    broken.write_text(
        '{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"name": "x"}, "geometry": {"type": "Polygon", "coordinates": [[[118.575, 24.905], [118.576, 24.905], [118.576, 24.906], [118.575, 24.905]]]}}]}'
    )
    with Session(district.engine) as s:
        with pytest.raises(ValidationError, match="no field 'code'"):
            plans.import_plan_file(s, pid, broken, author="p")


def test_the_geometry_of_a_request_is_checked(district) -> None:
    with pytest.raises(ValidationError, match="line: a Polygon was sent"):
        plans.parse_geometry(mapping(_poly(0, 0, 1, 1)), "line", ("LineString",))
    with pytest.raises(ValidationError, match="not a readable GeoJSON"):
        plans.parse_geometry({"type": "Polygon", "coordinates": "x"}, "geometry", ("Polygon",))
    with pytest.raises(ValidationError, match="latitude"):
        plans.parse_geometry(
            {"type": "LineString", "coordinates": [[0, 0], [0, 95]]}, "line", ("LineString",)
        )
