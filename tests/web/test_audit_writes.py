"""Every write endpoint of the API leaves its audit row, naming the account that wrote.

The writes are real (valid bodies, on the small incidents district), one per endpoint
that changes data; the list of those endpoints comes from the app's URL map, so a new write
endpoint without a case here fails the test.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable

from shapely.geometry import box, mapping

from tests.fixtures.accounts import ADMIN, make_account
from tests.fixtures.incidents import ll, wgs

#: endpoints that change data through the JSON API or Open311 (the login forms are
#: covered by the accounts tests)
WRITE_PREFIXES = ("/api/", "/open311/")
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def _write_endpoints(app) -> set[str]:
    return {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.methods & WRITE_METHODS and rule.rule.startswith(WRITE_PREFIXES)
    }


def test_every_write_endpoint_leaves_an_audit_row_naming_its_author(
    district, make_app, audit_mark
) -> None:
    app = make_app(district.engine)
    client = app.test_client()
    api_key = make_account(district.engine, "public")[1]
    state: dict[str, int] = {}

    def create():
        lon, lat = ll(200, 150)
        r = client.post("/api/incidents", json={"category": "road", "lon": lon, "lat": lat})
        state["incident"] = r.get_json()["id"]
        return r

    def transition():
        return client.post(
            f"/api/incidents/{state['incident']}/transitions", json={"state": "dispatched"}
        )

    def patch():
        return client.patch(f"/api/incidents/{state['incident']}", json={"state": "in_hand"})

    def rating():
        for to in ("verified", "closed"):
            assert (
                client.post(
                    f"/api/incidents/{state['incident']}/transitions", json={"state": to}
                ).status_code
                == 200
            )
        return client.post(f"/api/incidents/{state['incident']}/rating", json={"rating": 5})

    def track():
        t0 = 1_777_593_600
        points = [[*ll(x, 150), t0 + x / 1.4] for x in range(0, 401, 5)]
        return client.post(
            "/api/patrol/tracks", json={"staff": district.staff["chief1"], "points": points}
        )

    def visit():
        return client.post(
            "/api/patrol/visits",
            json={"staff": district.staff["chief1"], "segment_id": district.segment["seg1"],
                  "place": "某小区"},
        )  # fmt: skip

    def chief():
        return client.put(
            f"/api/segments/{district.segment['seg3']}/chief",
            json={"staff": district.staff["chief2"]},
        )

    def assign_csv():
        return client.post(
            "/api/segments/assign", data="segment,staff\nseg2,chief1\n", content_type="text/csv"
        )

    def staff_add():
        return client.post("/api/staff", json={"code": "RA1", "name": "某网格员", "role": "网格员"})

    def staff_import():
        roster = "code,name,role,segments\nRR1,某巷长,alley_chief,seg2\n".encode()
        return client.post("/api/staff/import", data={"file": (io.BytesIO(roster), "r.csv")})

    def staff_end():
        return client.post("/api/staff/RR1/end", json={"last_day": "2099-12-31"})

    def plan_create():
        r = client.post("/api/plans", json={"name": "审计方案", "communities": ["350502001001"]})
        state["plan"] = r.get_json()["id"]
        return r

    def plan_grid():
        return client.put(
            f"/api/plans/{state['plan']}/grids/G-A1", json={"version": 1, "households": 600}
        )

    def plan_split():
        line = {"type": "LineString", "coordinates": [list(ll(250, -20)), list(ll(250, 320))]}
        return client.post(
            f"/api/plans/{state['plan']}/grids/G-A1/split",
            json={"line": line, "version": 2, "new_code": "G-A3"},
        )

    def plan_reassign():
        block = mapping(wgs(box(250, 300, 500, 450)))
        return client.post(
            f"/api/plans/{state['plan']}/grids/G-A2/reassign",
            json={"receiver": "G-A3", "block": block, "versions": {"G-A2": 1, "G-A3": 1}},
        )

    def plan_merge():
        return client.post(
            f"/api/plans/{state['plan']}/grids/G-A1/merge",
            json={"other": "G-A3", "versions": {"G-A1": 3, "G-A3": 2}},
        )

    def plan_import():
        exported = client.get(f"/api/plans/{state['plan']}/export?format=geojson").get_json()
        exported["features"][0]["properties"]["households"] += 1
        data = json.dumps(exported).encode()
        return client.post(
            f"/api/plans/{state['plan']}/import", data={"file": (io.BytesIO(data), "p.geojson")}
        )

    def plan_publish():
        return client.post(f"/api/plans/{state['plan']}/publish", json={"day": "2026-06-01"})

    def plan_auto():
        from sqlalchemy.orm import Session

        from mapsvc.services.units import write_units
        from mapsvc.services.units_gen import generate_units

        with Session(district.engine) as s:
            blocks = generate_units(wgs(box(0, 0, 500, 600)), n=60, households=1333, seed=1)
            write_units(s, district.community["A"], blocks, "test")
            s.commit()
        return client.post("/api/plans/auto", json={"communities": ["350502001001"]})

    def plan_discard():
        r = client.post("/api/plans", json={"name": "作废方案", "communities": ["350502001002"]})
        return client.post(f"/api/plans/{r.get_json()['id']}/discard")

    def open311():
        lon, lat = ll(300, 150)
        form = {"api_key": api_key, "service_code": "road", "lat": lat, "long": lon}
        # a hotline system sends its api_key only, no login
        return app.test_client(token=None).post("/open311/v2/requests.json", data=form)

    #: endpoint -> (the write, the table it must be recorded in)
    cases: dict[str, tuple[Callable, str]] = {
        "incidents.create_api": (create, "incident"),
        "incidents.transition_api": (transition, "incident"),
        "incidents.patch_api": (patch, "incident"),
        "incidents.rating_api": (rating, "incident"),
        "patrol.upload_track_api": (track, "patrol_track"),
        "patrol.visit_api": (visit, "patrol_visit"),
        "patrol.segment_chief_api": (chief, "assignment"),
        "patrol.segments_assign_csv": (assign_csv, "assignment"),
        "roster.add_api": (staff_add, "staff"),
        "roster.import_api": (staff_import, "assignment"),
        "roster.end_api": (staff_end, "assignment"),
        "plans.create_api": (plan_create, "plan_grid"),
        "plans.update_grid_api": (plan_grid, "plan_grid"),
        "plans.split_api": (plan_split, "plan_grid"),
        "plans.reassign_api": (plan_reassign, "plan_grid"),
        "plans.merge_api": (plan_merge, "plan_grid"),
        "plans.import_api": (plan_import, "plan_grid"),
        "plans.publish_api": (plan_publish, "grid"),
        "plans.auto_api": (plan_auto, "plan_grid"),
        "plans.discard_api": (plan_discard, "plan"),
        "open311.create_request": (open311, "incident"),
    }
    assert set(cases) == _write_endpoints(app), "a write endpoint has no audit case here"
    for endpoint, (write, table) in cases.items():
        rows_since = audit_mark(district.engine)
        r = write()
        assert r.status_code in (200, 201), (endpoint, r.get_json())
        rows = [row for row in rows_since() if row["table_name"] == table]
        assert rows, f"{endpoint} left no audit row in {table}"
        if endpoint == "open311.create_request":
            # the hotline system's account, known by its api_key
            assert all(
                row["username"].startswith("t-public-") and row["via"] == "token" for row in rows
            ), rows
        else:
            assert all(row["username"] == ADMIN and row["via"] == "token" for row in rows), rows
        assert all(row["after"] is not None or row["action"] == "delete" for row in rows)
