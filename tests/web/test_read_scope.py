"""What an account reads, over HTTP: a chief or grid head the incidents of their own posts
and their own tracks, a district's leader that district's incidents, in every answer that
lists or counts incidents (the JSON list, one incident, its page, the CSV, the figures, the
heatmap, the vector tiles, the overdue and to-confirm lists, OGC API Features, the
downloads); admins and city-wide accounts everything."""

from __future__ import annotations

import csv
import io
import json
import math

import mapbox_vector_tile
import pytest
import sqlalchemy as sa
from shapely.geometry import MultiPolygon, box

from tests.fixtures.incidents import ll, wgs

DAY = "2026-05-01"
T0 = 1_777_593_600  # 2026-05-01 08:00 Beijing time


@pytest.fixture
def two_districts(district, make_app):
    """The incidents district (350502), a second one beside it (350503) with a subdistrict,
    a community and a grid, an incident on each chief's segment and one in the far
    district, and the app."""
    far = wgs(box(2000, 0, 3000, 600))
    with district.engine.begin() as c:
        c.execute(
            sa.text(
                "WITH d AS (INSERT INTO district (code, name, geom) VALUES "
                "('350503', '邻区', ST_GeomFromText(:g, 4326)) RETURNING id, geom), "
                "sd AS (INSERT INTO subdistrict (code, name, district_id, geom) "
                "SELECT '350503001', '邻街道', id, geom FROM d RETURNING id, geom), "
                "cm AS (INSERT INTO community (code, name, subdistrict_id, geom, population, "
                "households, enterprises) SELECT '350503001001', '邻社区', id, geom, 1000, 300, "
                "5 FROM sd RETURNING id, geom) INSERT INTO grid (code, name, community_id, geom, "
                "population, households) SELECT 'G-far', '邻网格', id, geom, 1000, 300 FROM cm"
            ),
            {"g": MultiPolygon([far]).wkt},
        )
    app = make_app(district.engine)
    admin = app.test_client()

    district.places = []

    def incident(x: float, y: float) -> int:
        lon, lat = ll(x, y)
        district.places.append((lon, lat))
        r = admin.post("/api/incidents", json={"category": "road", "lon": lon, "lat": lat})
        assert r.status_code == 201, r.get_json()
        return r.get_json()["id"]

    district.mine = incident(200, 150)  # on seg1 in grid A1: chief1's
    district.theirs = incident(250, 450)  # on seg2 in grid A2: chief2's, head A2's
    district.far = incident(2500, 300)  # in the other district
    with district.engine.begin() as c:  # all three overdue, so the overdue list has them
        c.execute(sa.text("UPDATE incident SET due_at = now() - interval '1 hour'"))
    return district, app, admin


def _listed(client) -> set[int]:
    r = client.get("/api/incidents?limit=1000")
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    ids = {i["id"] for i in body["items"]}
    assert body["total"] == len(ids)
    return ids


def _tile_ids(client, places: list[tuple[float, float]], z: int = 17) -> set[int]:
    """The incident ids of the vector tiles (point zoom) holding ``places``."""
    ids: set[int] = set()
    for lon, lat in places:
        n = 2**z
        x = int((lon + 180) / 360 * n)
        y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
        r = client.get(f"/tiles/incidents/{z}/{x}/{y}.mvt")
        assert r.status_code == 200
        body = r.get_data()
        layer = mapbox_vector_tile.decode(body).get("incidents") if body else None
        ids |= {int(f["id"]) for f in (layer or {}).get("features", [])}
    return ids


def _every_read(client, places: list[tuple[float, float]]) -> dict[str, set[int] | int]:
    """The incidents ``client`` is shown by each kind of read (ids, or counts where the
    answer only counts)."""
    out: dict[str, set[int] | int] = {"list": _listed(client), "tiles": _tile_ids(client, places)}
    r = client.get("/incidents/list.csv")
    assert r.status_code == 200
    rows = list(csv.reader(io.StringIO(r.get_data(as_text=True).lstrip("\ufeff"))))
    out["csv"] = {int(row[0]) for row in rows[1:]}
    r = client.get("/api/incidents/overdue")
    out["overdue"] = {i["id"] for i in r.get_json()["items"]}
    r = client.get("/api/incidents/stats")
    out["stats"] = r.get_json()["district"]["total"]
    r = client.get("/api/heatmap?zoom=14")
    out["heatmap"] = r.get_json()["total"]
    r = client.get("/ogc/collections/incidents/items?f=json&limit=100")
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    out["ogc"] = {f["id"] for f in json.loads(r.get_data())["features"]}
    r = client.get("/export/incidents.geojson")
    assert r.status_code == 200
    out["export"] = {f["properties"]["id"] for f in json.loads(r.get_data())["features"]}
    return out


def _all_equal(reads: dict[str, set[int] | int], ids: set[int]) -> None:
    for kind, seen in reads.items():
        assert seen == (len(ids) if isinstance(seen, int) else ids), kind


def test_field_accounts_read_only_the_incidents_of_their_posts(two_districts, client_as) -> None:
    d, app, admin = two_districts
    _all_equal(_every_read(admin, d.places), {d.mine, d.theirs, d.far})
    chief1 = client_as("chief", app, staff=d.staff["chief1"])
    _all_equal(_every_read(chief1, d.places), {d.mine})
    head = client_as("grid_head", app, staff=d.staff["headA2"])
    _all_equal(_every_read(head, d.places), {d.theirs})
    # one incident, as JSON and as its page: another's is refused, naming it
    assert chief1.get(f"/api/incidents/{d.mine}").status_code == 200
    r = chief1.get(f"/api/incidents/{d.theirs}")
    assert r.status_code == 403 and r.get_json()["scope"] == "incident"
    assert f"incident {d.theirs}" in r.get_json()["error"]
    assert chief1.get(f"/incidents/{d.mine}").status_code == 200
    r = chief1.get(f"/incidents/{d.theirs}")
    assert r.status_code == 403 and f"incident {d.theirs}" in r.get_data(as_text=True)
    r = chief1.get(f"/ogc/collections/incidents/items/{d.theirs}?f=json")
    assert r.status_code == 404
    # nor is the map opened on it
    assert chief1.get(f"/incidents/map?incident={d.mine}").status_code == 200
    r = chief1.get(f"/incidents/map?incident={d.theirs}")
    assert r.status_code == 403 and f"incident {d.theirs}" in r.get_data(as_text=True)
    # an account not on the roster holds no post and reads no incident
    _all_equal(_every_read(client_as("grid_member", app), d.places), set())


def test_a_district_account_reads_only_its_district(two_districts, client_as) -> None:
    d, app, _admin = two_districts
    here = client_as("leader", app, district="350502")
    _all_equal(_every_read(here, d.places), {d.mine, d.theirs})
    there = client_as("dispatcher", app, district="350503")
    _all_equal(_every_read(there, d.places), {d.far})
    r = here.get(f"/api/incidents/{d.far}")
    assert r.status_code == 403 and r.get_json()["scope"] == "district"
    assert f"incident {d.far} is outside the district" in r.get_json()["error"]
    # city-wide: a leader without a district, and a planner even with one
    _all_equal(_every_read(client_as("leader", app), d.places), {d.mine, d.theirs, d.far})
    planner = client_as("planner", app, district="350503")
    assert _listed(planner) == {d.mine, d.theirs, d.far}


def test_a_field_account_reads_only_its_own_tracks(two_districts, client_as) -> None:
    d, app, _admin = two_districts
    chief1 = client_as("chief", app, staff=d.staff["chief1"])
    chief2 = client_as("chief", app, staff=d.staff["chief2"])
    track = {"points": [[*ll(x, 150), T0 + x / 1.4] for x in range(0, 401, 5)]}
    r = chief1.post("/api/patrol/tracks", json={**track, "staff": d.staff["chief1"]})
    assert r.status_code == 201, r.get_json()

    def walkers(client, query: str = "") -> set[int]:
        r = client.get(f"/api/patrol/tracks?day={DAY}{query}")
        assert r.status_code == 200, r.get_json()
        return {f["properties"]["staff_id"] for f in r.get_json()["features"]}

    assert walkers(chief1) == {d.staff["chief1"]}
    assert walkers(chief2) == set()  # its own day: no track
    r = chief2.get(f"/api/patrol/tracks?day={DAY}&staff={d.staff['chief1']}")
    assert r.status_code == 403 and r.get_json()["scope"] == "staff"
    assert f"staff {d.staff['chief1']}" in r.get_json()["error"]
    assert walkers(client_as("leader", app)) == {d.staff["chief1"]}
