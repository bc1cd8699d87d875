"""``mapsvc incidents reroute|overdue|to-confirm`` on the hand-built district."""

from __future__ import annotations

import datetime as dt
import json

import sqlalchemy as sa
from shapely.geometry import MultiPolygon, box

from mapsvc.db import session_scope
from mapsvc.services import incidents as svc
from tests.incidents.conftest import ll, run_cli, wgs


def test_reroute_overdue_and_to_confirm_commands(district) -> None:  # noqa: ANN001
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
