"""``mapsvc incidents reroute|overdue|to-confirm`` on the hand-built district."""

from __future__ import annotations

import datetime as dt
import json

import sqlalchemy as sa
from shapely.geometry import MultiPolygon, box

from mapsvc.db import session_scope
from mapsvc.services import incidents as svc
from tests.fixtures.incidents import ll, run_cli, wgs


def test_reroute_overdue_and_to_confirm_commands(district) -> None:
    now = dt.datetime.now(dt.UTC)
    with session_scope(district.engine) as s:
        ids = []
        for x, y, hours_ago in ((100, 250, 100), (100, 296, 1), (1300, 50, 1)):
            lon, lat = ll(x, y)
            ids.append(
                svc.create_incident(
                    s,
                    {
                        "category": "litter",  # minor: 24 h
                        "lon": lon,
                        "lat": lat,
                        "reported_at": (now - dt.timedelta(hours=hours_ago)).isoformat(),
                    },
                ).id
            )
    res = run_cli(district.engine, "incidents", "overdue", "--json")
    assert res.exit_code == 0, res.output
    assert [i["id"] for i in json.loads(res.output)] == [ids[0]]
    res = run_cli(district.engine, "incidents", "to-confirm", "--json")
    assert sorted(i["id"] for i in json.loads(res.output)) == sorted(ids[1:])
    # the planner moves the A1/A2 boundary to y=200: the first incident changes grid, the
    # second is no longer near a boundary
    with session_scope(district.engine) as s:
        for name, (y0, y1) in (("A1", (0, 200)), ("A2", (200, 600))):
            s.execute(
                sa.text("UPDATE grid SET geom = ST_GeomFromText(:g, 4326) WHERE id = :id"),
                {"g": MultiPolygon([wgs(box(0, y0, 500, y1))]).wkt, "id": district.grid[name]},
            )
    res = run_cli(district.engine, "incidents", "reroute")
    assert res.exit_code == 0 and "re-routed 3 open incidents" in res.output
    with session_scope(district.engine) as s:
        first, second = (svc.get_incident(s, i) for i in ids[:2])
        assert (
            first.grid_id == district.grid["A2"] and first.grid_head_id == district.staff["headA2"]
        )
        assert second.grid_id == district.grid["A2"] and second.location_to_confirm is False
    res = run_cli(district.engine, "incidents", "to-confirm")
    assert res.exit_code == 0 and res.output.strip().endswith("1 incidents")


#: how to reach each state of the closed loop from received (written out here, not taken
#: from the service, so a state missing from its open list is caught)
PATHS = {
    "received": [],
    "dispatched": ["dispatched"],
    "in_hand": ["dispatched", "in_hand"],
    "verified": ["dispatched", "in_hand", "verified"],
    "returned": ["dispatched", "returned"],
    "reopened": ["dispatched", "in_hand", "verified", "closed", "reopened"],
    "closed": ["dispatched", "in_hand", "verified", "closed"],
}


def test_reroute_command_handles_every_open_state(district) -> None:
    """Every state but closed is open: a reopened or returned case is re-routed too."""
    with session_scope(district.engine) as s:
        ids = {}
        for k, (state, path) in enumerate(PATHS.items()):
            lon, lat = ll(100 + 10 * k, 250)  # in A1, 50 m below the A1/A2 boundary
            inc = svc.create_incident(s, {"category": "road", "lon": lon, "lat": lat})
            for step in path:
                svc.transition(s, inc.id, step, actor="t")
            assert inc.state == state and inc.grid_id == district.grid["A1"]
            ids[state] = inc.id
        assert svc.list_incidents(s, {"state": "open"})["total"] == len(PATHS) - 1
        # the planner moves the A1/A2 boundary down to y=200: every point is now in A2
        for name, (y0, y1) in (("A1", (0, 200)), ("A2", (200, 600))):
            s.execute(
                sa.text("UPDATE grid SET geom = ST_GeomFromText(:g, 4326) WHERE id = :id"),
                {"g": MultiPolygon([wgs(box(0, y0, 500, y1))]).wkt, "id": district.grid[name]},
            )
    res = run_cli(district.engine, "incidents", "reroute")
    assert res.exit_code == 0, res.output
    assert f"re-routed {len(PATHS) - 1} open incidents" in res.output
    with session_scope(district.engine) as s:
        got = {state: svc.get_incident(s, i) for state, i in ids.items()}
        for state, inc in got.items():
            if state == "closed":  # a closed case keeps the grid it was closed in
                assert inc.grid_id == district.grid["A1"], state
            else:
                assert inc.grid_id == district.grid["A2"], state
                assert inc.grid_head_id == district.staff["headA2"], state
