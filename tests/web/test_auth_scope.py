"""Scope over HTTP: a chief acts only on incidents routed to their segments and uploads only
their own tracks; a planner assigns chiefs only in their district. A refusal is a 403 that
names what is refused, and changes nothing."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from shapely.geometry import LineString, MultiPolygon, box

from tests.fixtures.incidents import ll, wgs


@pytest.fixture
def scoped(district, make_app):
    """The incidents district, a second district beside it (with one segment), the app."""
    with district.engine.begin() as c:
        c.execute(
            sa.text(
                "INSERT INTO district (code, name, geom) VALUES "
                "('350503', '邻区', ST_GeomFromText(:g, 4326))"
            ),
            {"g": MultiPolygon([wgs(box(2000, 0, 3000, 600))]).wkt},
        )
        district.other_segment = c.scalar(
            sa.text(
                "INSERT INTO alley_segment (code, name, geom, source) VALUES "
                "('far1', '邻区巷', ST_GeomFromText(:g, 4326), 'test') RETURNING id"
            ),
            {"g": wgs(LineString([(2100, 300), (2400, 300)])).wkt},
        )
    return district, make_app(district.engine)


def _incident(client, x: float, y: float) -> int:
    lon, lat = ll(x, y)
    r = client.post("/api/incidents", json={"category": "road", "lon": lon, "lat": lat})
    assert r.status_code == 201, r.get_json()
    iid = r.get_json()["id"]
    moved = client.post(f"/api/incidents/{iid}/transitions", json={"state": "dispatched"})
    assert moved.status_code == 200
    return iid


def _state(d, iid: int) -> str:
    with d.engine.connect() as c:
        return c.scalar(sa.text("SELECT state FROM incident WHERE id = :i"), {"i": iid})


def test_a_chief_acts_only_on_incidents_routed_to_them(scoped, client_as) -> None:
    d, app = scoped
    admin = app.test_client()
    mine = _incident(admin, 200, 150)  # on seg1: chief1's
    theirs = _incident(admin, 250, 450)  # on seg2: chief2's
    chief1 = client_as("chief", app, staff=d.staff["chief1"])
    r = chief1.post(f"/api/incidents/{theirs}/transitions", json={"state": "in_hand"})
    assert r.status_code == 403 and r.get_json()["scope"] == "incident"
    assert f"incident {theirs}" in r.get_json()["error"]
    assert _state(d, theirs) == "dispatched"
    r = chief1.post(f"/api/incidents/{mine}/transitions", json={"state": "in_hand"})
    assert r.status_code == 200 and r.get_json()["state"] == "in_hand"
    events = admin.get(f"/api/incidents/{mine}").get_json()["events"]
    assert events[-1]["actor"] == f"chief1 ({chief1.username})"  # staff name (account)
    # verifying is the dispatcher's, even on one's own incident
    r = chief1.post(f"/api/incidents/{mine}/transitions", json={"state": "verified"})
    assert r.status_code == 403 and r.get_json()["scope"] == "state"
    assert _state(d, mine) == "in_hand"
    # a chief account that is not on the roster cannot act at all
    nobody = client_as("chief", app)
    r = nobody.post(f"/api/incidents/{mine}/transitions", json={"state": "returned"})
    assert r.status_code == 403 and r.get_json()["scope"] == "staff"
    # a grid head acts on the incidents of their grid
    head = client_as("grid_head", app, staff=d.staff["headA2"])
    r = head.post(f"/api/incidents/{theirs}/transitions", json={"state": "in_hand"})
    assert r.status_code == 200
    r = head.post(f"/api/incidents/{mine}/transitions", json={"state": "returned"})
    assert r.status_code == 403 and _state(d, mine) == "in_hand"


def test_a_chief_uploads_only_their_own_track_and_visits(scoped, client_as) -> None:
    d, app = scoped
    chief1 = client_as("chief", app, staff=d.staff["chief1"])
    t0 = 1_777_593_600  # 2026-05-01 08:00 Beijing time; a walk along seg1 at 1.4 m/s
    track = {"points": [[*ll(x, 150), t0 + x / 1.4] for x in range(0, 401, 5)]}

    def tracks() -> int:
        with d.engine.connect() as c:
            return c.scalar(sa.text("SELECT count(*) FROM patrol_track"))

    r = chief1.post("/api/patrol/tracks", json={**track, "staff": d.staff["chief2"]})
    assert r.status_code == 403 and r.get_json()["scope"] == "staff"
    assert f"staff {d.staff['chief2']}" in r.get_json()["error"]
    assert tracks() == 0
    r = chief1.post("/api/patrol/tracks", json={**track, "staff": d.staff["chief1"]})
    assert r.status_code == 201, r.get_json()
    assert tracks() == 1
    r = chief1.post(
        "/api/patrol/visits",
        json={"staff": d.staff["chief2"], "segment_id": d.segment["seg2"], "place": "x"},
    )
    assert r.status_code == 403
    r = chief1.post(
        "/api/patrol/visits",
        json={"staff": d.staff["chief1"], "segment_id": d.segment["seg1"], "place": "x"},
    )
    assert r.status_code == 201, r.get_json()


def test_a_planner_assigns_only_in_their_district(scoped, client_as) -> None:
    d, app = scoped
    planner = client_as("planner", app, district="350502")
    near = planner.put(
        f"/api/segments/{d.segment['seg3']}/chief", json={"staff": d.staff["chief2"]}
    )
    assert near.status_code == 200, near.get_json()
    r = planner.put(f"/api/segments/{d.other_segment}/chief", json={"staff": d.staff["chief2"]})
    assert r.status_code == 403 and r.get_json()["scope"] == "district"
    assert f"segment {d.other_segment}" in r.get_json()["error"]

    def posts() -> int:
        with d.engine.connect() as c:
            return c.scalar(sa.text("SELECT count(*) FROM assignment"))

    before = posts()
    csv = "segment,staff\nseg1,chief2\nfar1,chief2\n"
    r = planner.post("/api/segments/assign", data=csv, content_type="text/csv")
    assert r.status_code == 403 and f"segment {d.other_segment}" in r.get_json()["error"]
    assert posts() == before  # not even seg1's row
    # the other district's planner is refused in this one
    other = client_as("planner", app, district="350503")
    r = other.put(f"/api/segments/{d.segment['seg1']}/chief", json={"staff": d.staff["chief1"]})
    assert r.status_code == 403
    # a city-wide planner may assign in both
    city = client_as("planner", app)
    r = city.post("/api/segments/assign", data=csv, content_type="text/csv")
    assert r.status_code == 200 and r.get_json()["assigned"] == 2


def test_a_planner_edits_grids_only_in_their_district(scoped, client_as) -> None:
    """The grid check the boundary editing views call (mapsvc.services.permissions)."""
    from sqlalchemy.orm import Session

    from mapsvc.core.errors import Forbidden
    from mapsvc.services.permissions import Principal, check_grid_edit

    d, _app = scoped
    with d.engine.begin() as c:
        far_grid = c.scalar(
            sa.text(
                "WITH sd AS (INSERT INTO subdistrict (code, name, district_id, geom) "
                "SELECT '350503001', '邻街道', id, geom FROM district WHERE code = '350503' "
                "RETURNING id, geom), cm AS (INSERT INTO community (code, name, subdistrict_id, "
                "geom, population, households, enterprises) SELECT '350503001001', '邻社区', "
                "id, geom, 1000, 300, 5 FROM sd RETURNING id, geom) INSERT INTO grid "
                "(code, name, community_id, geom, population, households) SELECT 'G-far', "
                "'邻网格', id, geom, 1000, 300 FROM cm RETURNING id"
            )
        )
        here = c.scalar(sa.text("SELECT id FROM district WHERE code = '350502'"))
    planner = Principal(user_id=1, username="p", role="planner", district_id=here)
    with Session(d.engine) as s:
        check_grid_edit(s, planner, d.grid["A1"])
        with pytest.raises(Forbidden, match=f"grid {far_grid} is outside the district"):
            check_grid_edit(s, planner, far_grid)
        leader = Principal(user_id=2, username="l", role="leader", district_id=here)
        with pytest.raises(Forbidden, match="boundaries.edit"):
            check_grid_edit(s, leader, d.grid["A1"])
