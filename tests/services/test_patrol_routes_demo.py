"""Patrol routes and compliance on the demo district (read-only ``demo_engine``)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from mapsvc.services import patrol, patrol_routes
from tests.services.test_patrol_routes import _check_walk


def _busiest_grid(session: Session) -> str:
    return session.scalar(
        sa.text(
            "SELECT g.code FROM grid g JOIN alley_segment s ON ST_Intersects(s.geom, g.geom) "
            "JOIN assignment a ON a.segment_id = s.id AND a.role = 'alley_chief' "
            "GROUP BY g.code ORDER BY count(DISTINCT a.staff_id) DESC, g.code LIMIT 1"
        )
    )


def test_every_demo_chief_gets_a_closed_covering_route(demo_engine):
    with Session(bind=demo_engine) as s:
        graph = patrol_routes.graph_for(s)
        chiefs = patrol_routes.chiefs(s)
        assert len(chiefs) > 20
        for staff_id, _name, n in chiefs:
            res = patrol_routes.route_for_chief(s, staff_id, graph=graph)
            assert len(res.required_segments) + len(res.unreachable_segments) == n
            _check_walk(res, res.required_segments)
            assert res.lower_bound_m <= res.total_m + 1e-6
            if res.components == 1:
                assert res.exact
        day = s.scalar(sa.text("SELECT max(day) FROM patrol_track"))
        comp = patrol.district_compliance(s, day)
        assert comp["segments_assigned"] > 0
        assert 0 <= comp["share"] <= 1
        assert sum(c["patrolled"] for c in comp["chiefs"]) == comp["segments_patrolled"]
        grids = patrol.grid_compliance(s, day)
        assert grids and all(0 <= g["patrolled"] <= g["segments"] for g in grids)
        # a segment crossing two grids counts in both: never fewer than the district total
        assert sum(g["patrolled"] for g in grids) >= comp["segments_patrolled"]
        week = patrol.grid_compliance(s, day, week=True)
        by_id = {g["grid_id"]: g for g in grids}
        assert all(w["patrolled"] >= by_id[w["grid_id"]]["patrolled"] for w in week)


def test_grid_routes_api_and_page(demo_engine, client, live_server, page):
    with Session(bind=demo_engine) as s:
        code = _busiest_grid(s)
        n_chiefs = len(patrol_routes.chiefs(s, code))
    r = client.get(f"/api/patrol/routes?grid={code}")
    assert r.status_code == 200
    data = r.get_json()
    assert len(data["routes"]) == n_chiefs >= 2
    assert client.get("/api/patrol/routes?grid=no-such-grid").status_code == 404
    page.goto(f"{live_server.url}/patrol?grid={code}&lang=zh_CN")
    page.wait_for_selector("path.leaflet-interactive", timeout=20000)
    assert page.locator("textPath").count() >= n_chiefs
    legend = page.locator(".mapsvc-legend").inner_text()
    assert "巡查路线" in legend
    assert page.errors == []
