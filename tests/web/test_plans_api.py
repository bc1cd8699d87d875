"""The workbench over HTTP: /api/plans and its edits, the 409 of a stale version, the file
round trip through an upload, the district scope of a planner, and the /plans pages."""

from __future__ import annotations

import io

import sqlalchemy as sa
from shapely.geometry import box, mapping

from tests.fixtures.accounts import make_account
from tests.fixtures.incidents import ll, wgs

A = "350502001001"


def _new(client) -> int:
    r = client.post("/api/plans", json={"name": "东片调整", "communities": [A]})
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"]


def test_a_plan_over_http_from_draft_to_published(district, make_app) -> None:
    app = make_app(district.engine)
    c = app.test_client()
    pid = _new(c)
    body = c.get(f"/api/plans/{pid}?min=300&max=500").get_json()
    assert body["plan"]["name"] == "东片调整"
    grids = {f["properties"]["code"]: f["properties"] for f in body["grids"]["features"]}
    assert set(grids) == {"G-A1", "G-A2"} and grids["G-A1"]["status"] == "over"
    assert {f["properties"]["code"] for f in body["current"]["features"]} == {"G-A1", "G-A2"}
    # split A1, then an edit against the version before the split is refused, naming who
    line = mapping(wgs(box(0, 0, 1, 1)).boundary)  # not across the grid: refused with why
    r = c.post(
        f"/api/plans/{pid}/grids/G-A1/split", json={"line": line, "version": 1, "new_code": "G-A3"}
    )
    assert r.status_code == 400 and r.get_json()["error"]
    line = {"type": "LineString", "coordinates": [list(ll(250, -20)), list(ll(250, 320))]}
    r = c.post(
        f"/api/plans/{pid}/grids/G-A1/split", json={"line": line, "version": 1, "new_code": "G-A3"}
    )
    assert r.status_code == 200, r.get_json()
    assert sorted(g["code"] for g in r.get_json()["grids"]) == ["G-A1", "G-A3"]
    r = c.put(f"/api/plans/{pid}/grids/G-A1", json={"version": 1, "households": 10})
    assert r.status_code == 409
    assert "changed by" in r.get_json()["error"] and r.get_json()["version"] == 2
    assert c.get(f"/api/plans/{pid}/validate").get_json()["ok"] is True
    cmp = c.get(f"/api/plans/{pid}/compare").get_json()
    assert cmp["current"]["count"] == 2 and cmp["plan"]["count"] == 3
    assert "G-A3" in cmp["changed"] and "G-A1" in cmp["changed"]
    # out to a file and back, unchanged
    f = c.get(f"/api/plans/{pid}/export?format=gpkg&crs=cgcs2000")
    assert f.status_code == 200 and f.headers["Content-Type"] == "application/geopackage+sqlite3"
    r = c.post(f"/api/plans/{pid}/import", data={"file": (io.BytesIO(f.data), "plan.gpkg")})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["unchanged"] == 3 and r.get_json()["changed"] == []
    bad = c.post(
        f"/api/plans/{pid}/import", data={"file": (io.BytesIO(b"not a file"), "东片.gpkg")}
    )
    assert bad.status_code == 400 and "东片.gpkg" in bad.get_json()["error"]
    assert "/tmp" not in bad.get_json()["error"]
    r = c.post(f"/api/plans/{pid}/publish", json={"day": "2026-06-01"})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["grids_added"] == ["G-A1", "G-A2", "G-A3"]
    assert r.get_json()["grids_without_head"] == ["G-A3"]
    again = c.post(f"/api/plans/{pid}/publish", json={"day": "2026-06-02"})
    assert again.status_code == 409 and "published" in again.get_json()["error"]
    listed = c.get("/api/plans").get_json()["plans"]
    assert listed[0]["id"] == pid and listed[0]["status"] == "published"


def test_bad_requests_name_what_is_wrong(district, make_app) -> None:
    c = make_app(district.engine).test_client()
    assert (
        "communities"
        in c.post("/api/plans", json={"name": "x", "communities": 5}).get_json()["error"]
    )
    assert c.post("/api/plans", json={"name": "x", "communities": ["nope"]}).status_code == 404
    assert c.post("/api/plans", json={"name": "", "communities": [A]}).status_code == 400
    pid = _new(c)
    r = c.put(
        f"/api/plans/{pid}/grids/G-A1",
        json={"version": 1, "geometry": {"type": "Point", "coordinates": [1, 2]}},
    )
    assert r.status_code == 400 and "a Point was sent" in r.get_json()["error"]
    r = c.post(f"/api/plans/{pid}/grids/G-A1/merge", json={"other": "G-A2", "versions": "1"})
    assert r.status_code == 400 and "versions" in r.get_json()["error"]
    assert c.put(f"/api/plans/{pid}/grids/NOPE", json={"version": 1}).status_code == 404
    assert c.get("/api/plans/99999").status_code == 404
    assert c.get(f"/api/plans/{pid}?min=600&max=500").status_code == 400


def test_a_planner_edits_only_plans_of_their_district(district, make_app) -> None:
    app = make_app(district.engine)
    pid = _new(app.test_client())
    with district.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO district (code, name, geom) VALUES "
                "('350503', '另一区', ST_Multi(ST_GeomFromText(:g, 4326)))"
            ),
            {"g": wgs(box(2000, 0, 3000, 600)).wkt},
        )
    _name, other = make_account(district.engine, "planner", district="350503")
    _name, own = make_account(district.engine, "planner", district="350502")
    outsider = app.test_client(token=other)
    r = outsider.put(f"/api/plans/{pid}/grids/G-A1", json={"version": 1, "households": 1})
    assert r.status_code == 403 and "outside the district" in r.get_json()["error"]
    assert outsider.post("/api/plans", json={"name": "x", "communities": [A]}).status_code == 403
    r = app.test_client(token=own).put(
        f"/api/plans/{pid}/grids/G-A1", json={"version": 1, "households": 1}
    )
    assert r.status_code == 200
    _name, leader = make_account(district.engine, "leader")
    reader = app.test_client(token=leader)
    assert reader.get(f"/api/plans/{pid}").status_code == 200
    assert reader.put(f"/api/plans/{pid}/grids/G-A1", json={"version": 2}).status_code == 403


def test_the_plan_pages_render_in_both_languages(district, make_app) -> None:
    c = make_app(district.engine).test_client()
    pid = _new(c)
    zh = c.get("/plans?lang=zh_CN").get_data(as_text=True)
    assert "网格规划方案" in zh and "东片调整" in zh
    en = c.get(f"/plans/{pid}?lang=en").get_data(as_text=True)
    assert "Move vertices" in en and "vendor/leaflet-geoman/leaflet-geoman.js" in en
    assert "https://" not in en.split("<body", 1)[1].split("plan-config", 1)[0]


def test_automatic_grids_over_http(district, make_app) -> None:
    from sqlalchemy.orm import Session

    from mapsvc.services.units import write_units
    from mapsvc.services.units_gen import generate_units

    c = make_app(district.engine).test_client()
    r = c.post("/api/plans/auto", json={"communities": [A]})
    assert r.status_code == 400 and "no planning units" in r.get_json()["error"]
    with Session(district.engine) as s:
        write_units(
            s,
            district.community["A"],
            generate_units(wgs(box(0, 0, 500, 600)), n=60, households=1333, seed=2),
            "test",
        )
        s.commit()
    r = c.post("/api/plans/auto", json={"communities": [A], "min": 300, "max": 500})
    assert r.status_code == 201, r.get_json()
    (report,) = r.get_json()["partition"]
    assert report["grids"] == 3 and all(300 <= h <= 500 for h in report["households"])
    assert c.get(f"/api/plans/{r.get_json()['id']}/validate").get_json()["ok"] is True
    r = c.post("/api/plans/auto", json={"communities": [A], "min": 600, "max": 650})
    assert r.status_code == 400 and "community 350502001001" in r.get_json()["error"]
    r = c.post("/api/plans/auto", json={"communities": [A], "lock": ["NOPE"]})
    assert r.status_code == 404 and "NOPE" in r.get_json()["error"]
