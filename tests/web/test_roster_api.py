"""The roster over JSON: list (phones only for contacts), add, import (dry run, row
errors, a planner's district scope), end."""

from __future__ import annotations

import io

import sqlalchemy as sa

ROSTER = "code,name,role,phone,grids\nW1,魏网格长,网格长,13900000021,350502001002-02\n"


def _posts(engine) -> int:
    with engine.connect() as c:
        return c.scalar(sa.text("SELECT count(*) FROM assignment"))


def test_roster_api(small, small_app, small_client, client_as) -> None:
    before = _posts(small.engine)
    upload = {"file": (io.BytesIO(ROSTER.encode()), "花名册.csv"), "dry_run": "1"}
    r = small_client.post("/api/staff/import", data=upload)
    assert r.status_code == 200 and r.get_json()["dry_run"] is True
    assert r.get_json()["posts"] == 1 and _posts(small.engine) == before
    r = small_client.post(
        "/api/staff/import", data={"file": (io.BytesIO(ROSTER.encode()), "r.csv")}
    )
    assert r.status_code == 200 and r.get_json()["added"] == 1
    assert _posts(small.engine) == before + 1
    bad = "code,name,role,grids\nW2,某,队长,350502001002-02\n"
    r = small_client.post("/api/staff/import", data={"file": (io.BytesIO(bad.encode()), "r.csv")})
    assert r.status_code == 400 and "row 2" in r.get_json()["error"]
    assert _posts(small.engine) == before + 1

    listed = small_client.get("/api/staff?date=2099-01-01").get_json()["staff"]
    w1 = next(p for p in listed if p["code"] == "W1")
    assert w1["phone"] == "13900000021" and w1["posts"] == ["grid_head:350502001002-02"]
    assert client_as("steward", small_app).get("/api/staff").status_code == 403

    r = small_client.post("/api/staff", json={"code": "W1", "name": "x", "role": "grid_member"})
    assert r.status_code == 409
    r = small_client.post("/api/staff/W1/end", json={"last_day": "2099-12-31"})
    assert r.status_code == 200 and r.get_json()["ended"] == 1
    assert small_client.post("/api/staff/nobody/end", json={}).status_code == 404


def test_a_planner_of_another_district_cannot_import_posts_here(small, small_app):
    from mapsvc.db import session_scope
    from mapsvc.models import District
    from tests.fixtures.accounts import make_account

    with session_scope(small.engine) as s:
        s.add(
            District(
                code="999999000000", name="别区", geom="SRID=4326;MULTIPOLYGON(((0 0,1 0,1 1,0 0)))"
            )
        )
    _name, token = make_account(small.engine, "planner", district="999999000000")
    planner = small_app.test_client(token=token)
    before = _posts(small.engine)
    r = planner.post("/api/staff/import", data={"file": (io.BytesIO(ROSTER.encode()), "r.csv")})
    assert r.status_code == 403, r.get_json()
    assert _posts(small.engine) == before
    with small.engine.connect() as c:
        assert c.scalar(sa.text("SELECT count(*) FROM staff WHERE code = 'W1'")) == 0
