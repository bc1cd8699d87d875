"""Routing on hand-built cases: every expected value follows from the drawn geometry."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from shapely.geometry import LineString, MultiPolygon, box

from mapsvc.db import session_scope
from mapsvc.services import incidents as svc
from mapsvc.services.chinacrs import wgs84_to_bd09, wgs84_to_gcj02
from mapsvc.services.routing import reroute_open
from tests.fixtures.incidents import ll, wgs


def _create(engine, x: float, y: float, crs: str | None = None, **extra):
    lon, lat = ll(x, y)
    if crs == "gcj02":
        lon, lat = (float(v) for v in wgs84_to_gcj02(lon, lat))
    elif crs == "bd09":
        lon, lat = (float(v) for v in wgs84_to_bd09(lon, lat))
    with session_scope(engine) as s:
        inc = svc.create_incident(
            s, {"category": "road", "lon": lon, "lat": lat, "crs": crs, **extra}, actor="t"
        )
        return svc.incident_dict(inc)


def test_inside_a_grid_far_from_boundaries_and_segments(district) -> None:
    r = _create(district.engine, 100, 250)  # 50 m from A1's top edge, 100 m from seg1
    assert r["grid_id"] == district.grid["A1"]
    assert r["community_id"] == district.community["A"]
    assert r["grid_head_id"] == district.staff["headA1"]
    assert r["segment_id"] is None and r["chief_id"] is None
    assert r["location_to_confirm"] is False


def test_nearest_segment_within_30_m_gives_the_chief(district) -> None:
    r = _create(district.engine, 200, 170)  # 20 m above seg1
    assert r["segment_id"] == district.segment["seg1"]
    assert r["chief_id"] == district.staff["chief1"]
    assert r["segment_distance_m"] == pytest.approx(20.0, abs=0.05)
    r = _create(district.engine, 200, 185)  # 35 m: too far
    assert r["segment_id"] is None
    # seg2 ends at y=350: a point 10 m left of it and 22 m from seg1? no - near seg2 only
    r = _create(district.engine, 262, 400)
    assert r["segment_id"] == district.segment["seg2"]
    assert r["segment_distance_m"] == pytest.approx(12.0, abs=0.05)


def _add_segment(engine, code: str, line: LineString) -> int:
    """Insert a segment drawn in local metres (no chief); return its id."""
    with session_scope(engine) as s:
        return s.scalar(
            sa.text(
                "INSERT INTO alley_segment (code, name, geom, source) VALUES "
                "(:code, :name, ST_GeomFromText(:g, 4326), 'test') RETURNING id"
            ),
            {"code": code, "name": f"{code}巷", "g": wgs(line).wkt},
        )


def test_nearest_of_two_segments_wins(district) -> None:
    # seg1b runs 25 m above seg1 (y=150) and is inserted later, so its id is the higher:
    # a point between them is within the 30 m reach of both, and only the distance may
    # decide, whichever of the two has the lower id
    seg1b = _add_segment(district.engine, "seg1b", LineString([(50, 175), (450, 175)]))
    assert seg1b > district.segment["seg1"]
    r = _create(district.engine, 200, 170)  # 20 m from seg1 (lower id), 5 m from seg1b
    assert r["segment_id"] == seg1b
    assert r["segment_distance_m"] == pytest.approx(5.0, abs=0.05)
    assert r["chief_id"] is None  # seg1b has no chief: not chief1's, though seg1 is in reach
    r = _create(district.engine, 200, 155)  # 5 m from seg1 (lower id), 20 m from seg1b
    assert r["segment_id"] == district.segment["seg1"]
    assert r["segment_distance_m"] == pytest.approx(5.0, abs=0.05)
    assert r["chief_id"] == district.staff["chief1"]
    # seg2 starts at (250, 350); a point at (250, 330) is 20 m from its end and 155 m from
    # seg1b: only seg2 is in reach
    r = _create(district.engine, 250, 330)
    assert r["segment_id"] == district.segment["seg2"]
    assert r["segment_distance_m"] == pytest.approx(20.0, abs=0.05)


def test_segment_without_chief_routes_to_segment_only(district) -> None:
    r = _create(district.engine, 700, 440)
    assert r["segment_id"] == district.segment["seg3"]
    assert r["chief_id"] is None
    assert r["grid_id"] == district.grid["B1"]


def test_near_a_grid_boundary_is_flagged(district) -> None:
    r = _create(district.engine, 100, 290)  # 10 m below A1/A2 boundary
    assert r["grid_id"] == district.grid["A1"]
    assert r["location_to_confirm"] is True
    r = _create(district.engine, 100, 318)  # 18 m above it: outside the 15 m margin
    assert r["grid_id"] == district.grid["A2"]
    assert r["location_to_confirm"] is False
    r = _create(district.engine, 505, 100)  # 5 m into B1 from the community boundary
    assert r["grid_id"] == district.grid["B1"]
    assert r["community_id"] == district.community["B"]
    assert r["location_to_confirm"] is True


def test_inside_a_community_outside_every_grid_gets_the_community(district) -> None:
    # B1 shrinks to the lower half of community B: the upper half has no grid
    with session_scope(district.engine) as s:
        s.execute(
            sa.text("UPDATE grid SET geom = ST_GeomFromText(:g, 4326) WHERE id = :id"),
            {"g": MultiPolygon([wgs(box(500, 0, 1000, 300))]).wkt, "id": district.grid["B1"]},
        )
    r = _create(district.engine, 700, 520)  # in B, 220 m above B1, 70 m from seg3
    assert r["grid_id"] is None and r["grid_head_id"] is None
    assert r["community_id"] == district.community["B"]
    assert r["location_to_confirm"] is True  # no grid: a planner must confirm it
    r = _create(district.engine, 700, 100)  # still in B1: grid and community as before
    assert r["grid_id"] == district.grid["B1"] and r["community_id"] == district.community["B"]


def test_outside_all_grids_is_flagged(district) -> None:
    r = _create(district.engine, 1200, 100)
    assert r["grid_id"] is None and r["community_id"] is None and r["grid_head_id"] is None
    assert r["location_to_confirm"] is True
    with session_scope(district.engine) as s:
        listed = [i["id"] for i in svc.to_confirm(s)]
    assert r["id"] in listed


@pytest.mark.parametrize("crs", ["gcj02", "bd09"])
def test_chinese_coordinates_are_converted_before_routing(district, crs: str) -> None:
    # GCJ-02 shifts Quanzhou by several hundred metres: routing the raw coordinates would
    # land far from seg1; converted, the point is 20 m above seg1 as drawn
    lon, lat = ll(200, 170)
    r = _create(district.engine, 200, 170, crs=crs)
    # the inverse gives the drawn point back to ~1e-13° (2e-8 m): 1e-11° is a micrometre
    assert r["lon"] == pytest.approx(lon, abs=1e-11) and r["lat"] == pytest.approx(lat, abs=1e-11)
    assert r["segment_id"] == district.segment["seg1"]
    assert r["segment_distance_m"] == pytest.approx(20.0, abs=1e-6)
    assert r["grid_id"] == district.grid["A1"]


def test_reroute_after_grids_change(district) -> None:
    import sqlalchemy as sa

    r = _create(district.engine, 100, 250)
    closed = _create(district.engine, 120, 250)
    with session_scope(district.engine) as s:
        for st in ("dispatched", "in_hand", "verified", "closed"):
            svc.transition(s, closed["id"], st, actor="t")
        # move the A1/A2 boundary down to y=200: (100, 250) is now in A2
        c = s.connection()
        for name, (y0, y1) in (("A1", (0, 200)), ("A2", (200, 600))):
            from shapely.geometry import MultiPolygon, box

            from tests.fixtures.incidents import wgs

            c.execute(
                sa.text("UPDATE grid SET geom = ST_GeomFromText(:g, 4326) WHERE id = :id"),
                {"g": MultiPolygon([wgs(box(0, y0, 500, y1))]).wkt, "id": district.grid[name]},
            )
        n = reroute_open(s)
        assert n == 1  # the closed incident is left as it was
        got = svc.incident_dict(svc.get_incident(s, r["id"]))
        kept = svc.incident_dict(svc.get_incident(s, closed["id"]))
    assert got["grid_id"] == district.grid["A2"]
    assert got["grid_head_id"] == district.staff["headA2"]
    assert kept["grid_id"] == district.grid["A1"]


def test_route_incidents_routes_the_ids_it_is_given(district) -> None:
    """``route_incidents`` takes ids (a list, or a Core SELECT of ids), not SQL text: only
    those incidents are routed again; None routes every incident."""
    import sqlalchemy as sa
    from shapely.geometry import MultiPolygon, box

    from mapsvc.models import Incident
    from mapsvc.services.routing import route_incidents
    from tests.fixtures.incidents import wgs

    made = {name: _create(district.engine, x, 250) for name, x in (("a", 100), ("b", 120))}
    made["c"] = _create(district.engine, 140, 250, category="litter")
    ids = {name: r["id"] for name, r in made.items()}
    t = Incident.__table__

    def grids(s) -> dict[str, int]:
        return {n: svc.get_incident(s, i).grid_id for n, i in ids.items()}

    with session_scope(district.engine) as s:
        assert set(grids(s).values()) == {district.grid["A1"]}
        # move the A1/A2 boundary down to y=200: the three points are now in A2
        for name, (y0, y1) in (("A1", (0, 200)), ("A2", (200, 600))):
            s.execute(
                sa.text("UPDATE grid SET geom = ST_GeomFromText(:g, 4326) WHERE id = :id"),
                {"g": MultiPolygon([wgs(box(0, y0, 500, y1))]).wkt, "id": district.grid[name]},
            )
        a1, a2 = district.grid["A1"], district.grid["A2"]
        assert route_incidents(s, [ids["a"]]) == 1
        s.expire_all()
        assert grids(s) == {"a": a2, "b": a1, "c": a1}
        litter = sa.select(t.c.id).where(t.c.category == "litter")
        assert route_incidents(s, litter) == 1
        s.expire_all()
        assert grids(s) == {"a": a2, "b": a1, "c": a2}
        assert route_incidents(s, []) == 0  # nothing to route
        assert route_incidents(s) == 3
        s.expire_all()
        assert grids(s) == {"a": a2, "b": a2, "c": a2}
