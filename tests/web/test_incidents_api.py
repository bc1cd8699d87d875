"""The incidents JSON API on a Flask app over the hand-built district."""

from __future__ import annotations

import pytest

from tests.fixtures.accounts import ADMIN
from tests.fixtures.incidents import ll


@pytest.fixture
def client(district, make_app):
    return make_app(district.engine).test_client()


def _create(client, x: float = 200, y: float = 170, **extra):
    lon, lat = ll(x, y)
    r = client.post(
        "/api/incidents",
        json={"category": "road", "lon": lon, "lat": lat, **extra},
    )
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def test_create_read_and_route(client, district) -> None:
    inc = _create(client, description="路面塌陷")
    assert inc["state"] == "received" and inc["grid_id"] == district.grid["A1"]
    assert inc["chief_id"] == district.staff["chief1"]
    r = client.get(f"/api/incidents/{inc['id']}")
    body = r.get_json()
    assert r.status_code == 200 and body["description"] == "路面塌陷"
    assert (
        body["events"][0]["to_state"] == "received" and body["events"][0]["actor"] == ADMIN
    )  # the account, not typed text


def test_unknown_ids_are_404(client) -> None:
    assert client.get("/api/incidents/999999").status_code == 404
    assert client.get("/api/incidents/abc").status_code == 404
    # beyond bigint: still "does not exist", not a database error
    assert client.get("/api/incidents/99999999999999999999").status_code == 404
    r = client.post("/api/incidents/999999/transitions", json={"state": "dispatched"})
    assert r.status_code == 404
    assert client.post("/api/incidents/424242/rating", json={"rating": 3}).status_code == 404


def test_malformed_json_is_400_naming_the_field(client) -> None:
    r = client.post("/api/incidents", data="{not json", content_type="application/json")
    assert r.status_code == 400 and r.get_json()["field"] == "body"
    r = client.post("/api/incidents", json=[1, 2])
    assert r.status_code == 400 and r.get_json()["field"] == "body"
    lon, lat = ll(100, 100)
    r = client.post("/api/incidents", json={"category": "road", "lon": lon, "lat": "north"})
    assert r.status_code == 400 and r.get_json()["field"] == "lat"
    inc = _create(client)
    r = client.post(f"/api/incidents/{inc['id']}/transitions", json={"note": "a"})
    assert r.status_code == 400 and r.get_json()["field"] == "state"
    # the handler is the account: a typed actor is refused, and nothing moves
    r = client.post(
        f"/api/incidents/{inc['id']}/transitions", json={"state": "dispatched", "actor": "a"}
    )
    assert r.status_code == 400 and r.get_json()["field"] == "actor"
    assert client.get(f"/api/incidents/{inc['id']}").get_json()["state"] == "received"
    r = client.get("/api/incidents?severity=huge")
    assert r.status_code == 400 and r.get_json()["field"] == "severity"


def test_nul_characters_and_huge_integers_are_400_not_500(client, district) -> None:
    """PostgreSQL text cannot hold NUL and bigint stops at 2**63-1: both are named 400s."""
    import sqlalchemy as sa

    def count() -> int:
        with district.engine.connect() as c:
            return c.execute(sa.text("SELECT count(*) FROM incident")).scalar_one()

    before = count()
    r = client.get("/api/incidents?category=ro%00ad")
    assert r.status_code == 400 and r.get_json()["field"] == "category"
    assert "NUL" in r.get_json()["error"]
    r = client.get("/api/grids?community=%00x")
    assert r.status_code == 400 and r.get_json()["field"] == "community"
    lon, lat = ll(200, 170)
    body = {"category": "road", "lon": lon, "lat": lat}
    r = client.post("/api/incidents", json={**body, "description": "坑\x00洞"})
    assert r.status_code == 400 and r.get_json()["field"] == "description"
    r = client.post("/api/incidents", json={**body, "photos": ["a", "b\x00"]})
    assert r.status_code == 400 and r.get_json()["field"] == "photos[1]"
    r = client.post(
        "/open311/v2/requests.json",
        data={"service_code": "road", "lat": lat, "long": lon, "description": "x\x00"},
    )
    assert r.status_code == 400 and "description" in r.get_data(as_text=True)
    assert client.get("/api/incidents/1%002").status_code == 400
    deep = "[" * 100_000 + "]" * 100_000  # json.loads raises RecursionError, not ValueError
    r = client.post("/api/incidents", data=deep, content_type="application/json")
    assert r.status_code == 400 and "nested too deeply" in r.get_json()["error"]
    assert count() == before  # nothing stored
    r = client.get("/api/incidents?offset=99999999999999999999")
    assert r.status_code == 400 and r.get_json()["field"] == "offset"
    assert "out of range" in r.get_json()["error"]
    for path in ("/api/incidents/to-confirm", "/api/incidents/overdue", "/api/incidents"):
        r = client.get(f"{path}?limit=-1")  # PostgreSQL refuses a negative LIMIT
        assert r.status_code == 400 and r.get_json()["field"] == "limit", path
    assert client.get("/api/incidents?offset=-5").get_json()["field"] == "offset"
    r = client.get(f"/api/incidents?offset={2**63 - 1}")  # the largest bigint is fine
    assert r.status_code == 200 and r.get_json()["items"] == []


def test_text_fields_are_checked_for_type_and_column_length(client, district) -> None:
    """Found by fuzzing: an object as description or a 101-character actor was a 500."""
    import sqlalchemy as sa

    def count() -> int:
        with district.engine.connect() as c:
            return c.execute(sa.text("SELECT count(*) FROM incident_event")).scalar_one()

    before = count()
    lon, lat = ll(200, 170)
    body = {"category": "road", "lon": lon, "lat": lat}
    for key, value, words in (
        ("description", {"a": 1}, "must be text"),
        ("actor", "张" * 101, "no longer accepted"),
        ("address", "路" * 301, "at most 300"),
        ("external_id", [1], "must be text"),
        ("note", ["x"], "must be text"),
        ("lat", True, "must be a number"),
    ):
        r = client.post("/api/incidents", json={**body, key: value})
        assert r.status_code == 400 and r.get_json()["field"] == key, (key, r.get_json())
        assert words in r.get_json()["error"]
    inc = _create(client, external_id=12345)  # a number is fine as an id, stored as text
    assert inc["external_id"] == "12345"
    url = f"/api/incidents/{inc['id']}/transitions"
    r = client.post(url, json={"state": "dispatched", "note": {"x": 1}})
    assert r.status_code == 400 and r.get_json()["field"] == "note"
    r = client.post(url, json={"state": "dispatched", "actor": "a" * 101})
    assert r.status_code == 400 and r.get_json()["field"] == "actor"
    assert count() == before + 1  # only the good incident's intake event


def test_loop_over_http_with_409_listing_allowed(client) -> None:
    inc = _create(client)
    url = f"/api/incidents/{inc['id']}/transitions"
    r = client.post(url, json={"state": "closed"})
    assert r.status_code == 409
    assert r.get_json()["allowed"] == ["dispatched"] and r.get_json()["state"] == "received"
    for st in ("dispatched", "in_hand", "verified"):
        assert client.post(url, json={"state": st, "note": st}).status_code == 200
    r = client.patch(f"/api/incidents/{inc['id']}", json={"state": "closed"})
    assert r.status_code == 200 and r.get_json()["closed_at"]
    assert [e["to_state"] for e in r.get_json()["events"]] == [
        "received",
        "dispatched",
        "in_hand",
        "verified",
        "closed",
    ]
    r = client.post(f"/api/incidents/{inc['id']}/rating", json={"rating": 9})
    assert r.status_code == 400 and r.get_json()["field"] == "rating"
    r = client.post(f"/api/incidents/{inc['id']}/rating", json={"rating": 4})
    assert r.status_code == 200 and r.get_json()["rating"] == 4


def test_lists_filters_and_stats(client, district) -> None:
    a = _create(client, 100, 250)
    b = _create(client, 700, 100, category="litter")
    c = _create(client, 1200, 100)  # outside every grid
    r = client.get(f"/api/incidents?grid={district.grid['A1']}").get_json()
    assert [i["id"] for i in r["items"]] == [a["id"]]
    r = client.get("/api/incidents?category=litter").get_json()
    assert [i["id"] for i in r["items"]] == [b["id"]]
    r = client.get("/api/incidents?class=minor").get_json()  # litter's default class
    assert [i["id"] for i in r["items"]] == [b["id"]]
    r = client.get(f"/api/incidents?community={district.community['B']}").get_json()
    assert [i["id"] for i in r["items"]] == [b["id"]]
    (x0, y0), (x1, y1) = ll(0, 0), ll(500, 600)
    r = client.get(f"/api/incidents?bbox={x0},{y0},{x1},{y1}").get_json()
    assert [i["id"] for i in r["items"]] == [a["id"]]
    r = client.get("/api/incidents/to-confirm").get_json()
    assert [i["id"] for i in r["items"]] == [c["id"]]
    assert client.get("/api/incidents/overdue").get_json()["total"] == 0
    s = client.get("/api/incidents/stats?by=community").get_json()
    assert s["district"]["total"] == 3 and s["district"]["open"] == 3
    assert {u["code"]: u["count"] for u in s["units"]} == {"350502001001": 1, "350502001002": 1}
    assert client.get("/api/incidents/stats?by=street").status_code == 400
    # an id that names nothing is a 404 naming the filter, not an empty list
    gone = max(district.grid.values()) + 1000
    r = client.get(f"/api/incidents?grid={district.grid['A1']},{gone}")
    assert r.status_code == 404
    assert r.get_json()["error"] == f"grid: grid {gone} does not exist"
    assert client.get("/api/incidents?chief=987654").get_json()["error"] == (
        "chief: staff 987654 does not exist"
    )


def test_dates_without_offset_are_beijing_time(client) -> None:
    """A date filter is a day in the district: 07:00 on 1 March in Beijing is 23:00 UTC on
    28 February, and belongs to 1 March; a time written without an offset is local too."""
    early = _create(client, reported_at="2026-03-01T07:00:00+08:00")
    late = _create(client, reported_at="2026-02-28T23:30:00")  # no offset: Beijing time
    assert late["reported_at"] == "2026-02-28T15:30:00+00:00"

    def ids(query: str) -> set[int]:
        r = client.get(f"/api/incidents?{query}")
        assert r.status_code == 200, r.get_json()
        return {i["id"] for i in r.get_json()["items"]}

    assert ids("date_from=2026-03-01&date_to=2026-03-01") == {early["id"]}
    assert ids("date_from=2026-02-28&date_to=2026-02-28") == {late["id"]}
    assert ids("date_to=2026-02-28") == {late["id"]}
