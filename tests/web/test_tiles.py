"""Vector tiles and TileJSON: decoded tiles hold the JSON API's features, ETag/304, errors."""

from __future__ import annotations

import mapbox_vector_tile
import pytest
import shapely
from shapely.geometry import box, shape

from layers.tile_base import EXTENT, Tile
from tests.fixtures.audit import audit_rows, last_audit_id


def _tile_for(lon: float, lat: float, z: int) -> Tile:
    import math

    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return Tile(z, x, y)


def _decode(body: bytes) -> dict:
    return mapbox_vector_tile.decode(body) if body else {}


def _to_lonlat(tile: Tile, geom: dict) -> object:
    """A decoded tile geometry (tile units, y up) back in WGS84."""
    import math

    w, s, e, n = tile.bounds()
    y0 = math.log(math.tan(math.pi / 4 + math.radians(s) / 2))
    y1 = math.log(math.tan(math.pi / 4 + math.radians(n) / 2))

    def back(coords):
        import numpy as np

        c = np.asarray(coords, dtype=float)
        lon = w + c[:, 0] / EXTENT * (e - w)
        merc = y0 + c[:, 1] / EXTENT * (y1 - y0)
        lat = np.degrees(2 * np.arctan(np.exp(merc)) - math.pi / 2)
        return np.column_stack([lon, lat])

    return shapely.transform(shape(geom), back)


def _unit(tile: Tile) -> float:
    """One tile unit in degrees of longitude."""
    w, _s, e, _n = tile.bounds()
    return (e - w) / EXTENT


@pytest.mark.parametrize(
    ("layer", "api", "key"),
    [
        ("grids", "/api/grids", "code"),
        ("segments", "/api/segments", "code"),
        ("communities", "/api/communities", "code"),
        ("district", "/api/district", "code"),
    ],
)
@pytest.mark.parametrize("z", [14, 16])
def test_tile_holds_the_json_api_features(small_client, layer, api, key, z):
    """Every feature of the JSON API for the tile's square is in the tile with the same
    attributes, and no other; the geometry, mapped back, lies where the API's lies."""
    tile = _tile_for(118.5905, 24.9069, z)
    bbox = ",".join(f"{v:.9f}" for v in tile.bounds())
    want = small_client.get(f"{api}?bbox={bbox}&date=2025-07-01").get_json()["features"]
    resp = small_client.get(f"/tiles/{layer}/{tile.z}/{tile.x}/{tile.y}.mvt?date=2025-07-01")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.mimetype == "application/vnd.mapbox-vector-tile"
    got = _decode(resp.get_data()).get(layer, {"features": []})["features"]
    assert want, "the test tile must hold features"
    by_key = {f["properties"][key]: f for f in want}
    assert sorted(f["properties"][key] for f in got) == sorted(by_key)
    square = box(*tile.bounds())
    for f in got:
        ref = by_key[f["properties"][key]]
        for name, value in f["properties"].items():
            if isinstance(value, float):
                assert value == pytest.approx(ref["properties"][name], abs=1e-6), name
            else:
                assert value == ref["properties"][name], name
        # inside the tile's square, quantised to tile units: within two units of the API's
        drawn = _to_lonlat(tile, f["geometry"]).intersection(square)
        clipped = shape(ref["geometry"]).intersection(square)
        assert drawn.hausdorff_distance(clipped) < 2 * _unit(tile), f["properties"][key]


def test_segment_tile_says_who_is_chief_on_the_date(small_client, small):
    tile = _tile_for(118.5825, 24.905, 16)
    url = f"/tiles/segments/{tile.z}/{tile.x}/{tile.y}.mvt"
    chiefs = {}
    for day in ("2025-01-01", "2025-07-01"):
        feats = _decode(small_client.get(f"{url}?date={day}").get_data())["segments"]["features"]
        chiefs[day] = {f["properties"]["code"]: f["properties"].get("chief_name") for f in feats}
    assert chiefs == {"2025-01-01": {"t:S1": "王旧长"}, "2025-07-01": {"t:S1": "李新长"}}


def test_grid_tile_filters_by_community_and_district(small_client, small):
    tile = _tile_for(118.59, 24.905, 13)
    url = f"/tiles/grids/{tile.z}/{tile.x}/{tile.y}.mvt"

    def codes(query: str) -> list[str]:
        body = small_client.get(url + query).get_data()
        return sorted(
            f["properties"]["code"]
            for f in _decode(body).get("grids", {"features": []})["features"]
        )

    assert codes("") == sorted(small.grids)
    assert codes("?community=350502001002") == ["350502001002-01", "350502001002-02"]
    assert codes("?district=350502000000") == sorted(small.grids)
    resp = small_client.get(url + "?district=999999999999")
    assert resp.status_code == 404
    assert "district" in resp.get_json()["error"]


def test_etag_and_not_modified(small_client):
    tile = _tile_for(118.59, 24.905, 15)
    url = f"/tiles/grids/{tile.z}/{tile.x}/{tile.y}.mvt"
    first = small_client.get(url)
    etag = first.headers["ETag"]
    assert etag and first.headers["Cache-Control"].startswith("private")
    assert "max-age=60" in first.headers["Cache-Control"]
    again = small_client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b""
    other = small_client.get(url + "?community=350502001001", headers={"If-None-Match": etag})
    assert other.status_code == 200 and other.headers["ETag"] != etag
    gz = small_client.get(url, headers={"Accept-Encoding": "gzip"})
    assert gz.headers["Content-Encoding"] == "gzip"
    import gzip

    assert gzip.decompress(gz.get_data()) == first.get_data()


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/tiles/nosuch/1/0/0.mvt", 404, ["nosuch", "grids"]),
        ("/tiles/grids/23/0/0.mvt", 400, ["z", "between 0 and 20"]),
        ("/tiles/grids/a/0/0.mvt", 400, ["z", "whole number"]),
        ("/tiles/grids/3/8/0.mvt", 400, ["x", "between 0 and 7"]),
        ("/tiles/grids/3/0/-1.mvt", 400, ["y", "between 0 and 7"]),
        ("/tiles/grids/3/0/0.mvt?date=2025-13-01", 400, ["date"]),
        ("/tiles/incidents/3/0/0.mvt?state=nonsense", 400, ["state"]),
        ("/tiles/nosuch.json", 404, ["nosuch"]),
    ],
)
def test_bad_tile_requests_are_named(small_client, path, status, words):
    resp = small_client.get(path)
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    for w in words:
        assert w in body["error"], body


def test_tilejson_describes_each_layer(small_client):
    for layer in (
        "district",
        "subdistricts",
        "communities",
        "grids",
        "segments",
        "centres",
        "incidents",
        "basemap",
    ):
        doc = small_client.get(f"/tiles/{layer}.json?date=2025-07-01").get_json()
        assert doc["tilejson"] == "3.0.0"
        assert doc["tiles"][0].endswith(f"/tiles/{layer}/{{z}}/{{x}}/{{y}}.mvt?date=2025-07-01")
        assert doc["bounds"] == pytest.approx([118.58, 24.9, 118.6, 24.91])
        assert doc["vector_layers"] and all(v["fields"] for v in doc["vector_layers"])


def _tile_with_incidents(client, z: int) -> tuple[Tile, str]:
    """A tile around the busiest place of the demo's incidents at zoom ``z``."""
    heat = client.get("/api/heatmap?zoom=13").get_json()
    lon, lat, _n = max(heat["points"], key=lambda p: p[2])
    tile = _tile_for(lon, lat, z)
    return tile, ",".join(f"{v:.9f}" for v in tile.bounds())


def test_incident_points_at_high_zoom_are_the_api_incidents(client):
    tile, bbox = _tile_with_incidents(client, 16)
    for query in ("", "&state=open", "&category=noise"):
        want = client.get(f"/api/incidents?bbox={bbox}&limit=1000{query}").get_json()
        body = client.get(f"/tiles/incidents/{tile.z}/{tile.x}/{tile.y}.mvt?{query[1:]}").get_data()
        feats = _decode(body).get("incidents", {"features": []})["features"]
        assert {f["id"] for f in feats} == {i["id"] for i in want["items"]}, query
        by_id = {i["id"]: i for i in want["items"]}
        for f in feats:
            assert f["properties"]["state"] == by_id[f["id"]]["state"]
            assert f["properties"]["category"] == by_id[f["id"]]["category"]
    assert want["total"] > 0


def test_incident_counts_at_low_zoom_add_up_to_the_api_total(client):
    tile, bbox = _tile_with_incidents(client, 12)
    for query in ("", "&state=open", "&date_from=2026-01-01"):
        total = client.get(f"/api/incidents?bbox={bbox}&limit=1{query}").get_json()["total"]
        body = client.get(f"/tiles/incidents/{tile.z}/{tile.x}/{tile.y}.mvt?{query[1:]}").get_data()
        feats = _decode(body).get("incidents", {"features": []})["features"]
        assert sum(f["properties"]["n"] for f in feats) == total, query
        assert len(feats) < total or total <= 1  # binned: fewer cells than incidents


def test_centre_tile_points_are_the_centres(client, demo_engine):
    """Each service centre in a tile's square is there once, at its place (to a tile unit)."""
    import sqlalchemy as sa

    with demo_engine.connect() as c:
        lon, lat = c.execute(
            sa.text("SELECT ST_X(geom), ST_Y(geom) FROM service_centre ORDER BY id LIMIT 1")
        ).one()
        tile = _tile_for(lon, lat, 14)
        want = {
            r.id: (r.name, r.x, r.y)
            for r in c.execute(
                sa.text(
                    "SELECT id, name, ST_X(geom) AS x, ST_Y(geom) AS y FROM service_centre "
                    "WHERE ST_Intersects(geom, ST_MakeEnvelope(:w, :s, :e, :n, 4326))"
                ),
                dict(zip("wsen", tile.bounds(), strict=True)),
            )
        }
    body = client.get(f"/tiles/centres/{tile.z}/{tile.x}/{tile.y}.mvt").get_data()
    feats = _decode(body)["centres"]["features"]
    assert sorted(f["id"] for f in feats) == sorted(want)
    for f in feats:
        name, x, y = want[f["id"]]
        assert f["properties"]["name"] == name
        point = _to_lonlat(tile, f["geometry"])
        assert point.distance(shapely.Point(x, y)) < 2 * _unit(tile)


def test_basemap_tile_has_its_layers(client, demo_engine):
    """A street-level base map tile holds streets with names, outlines and label points."""
    import sqlalchemy as sa

    with demo_engine.connect() as c:
        code, name, lon, lat = c.execute(
            sa.text(
                "SELECT code, coalesce(name, code), ST_X(p), ST_Y(p) FROM "
                "(SELECT code, name, ST_PointOnSurface(geom) AS p FROM grid ORDER BY code LIMIT 1) g"
            )
        ).one()
    tile = _tile_for(lon, lat, 16)
    layers = _decode(client.get(f"/tiles/basemap/{tile.z}/{tile.x}/{tile.y}.mvt").get_data())
    assert {"communities", "grids", "streets", "grid_labels"} <= set(layers)
    labels = {
        f["properties"]["code"]: f["properties"]["name"] for f in layers["grid_labels"]["features"]
    }
    assert labels[code] == name
    names = [f["properties"].get("name") for f in layers["streets"]["features"]]
    assert names and all(names), "every demo street has a name"
    far = _decode(client.get(f"/tiles/basemap/10/{tile.x >> 6}/{tile.y >> 6}.mvt").get_data())
    assert "streets" not in far and "communities" in far  # light far out


def test_staff_tile_layers_need_a_login_and_the_base_map_does_not(app) -> None:
    anon = app.test_client(token=None)
    for layer in ("segments", "grids", "incidents"):
        r = anon.get(f"/tiles/{layer}/14/13490/7140.mvt")
        assert r.status_code == 401 and layer in r.get_json()["error"]
        assert anon.get(f"/tiles/{layer}.json").status_code == 401
    assert anon.get("/tiles/basemap/14/13490/7140.mvt").status_code == 200
    assert anon.get("/tiles/communities.json").status_code == 200


def test_a_token_tile_request_makes_no_needless_round_trips(small_app, small_client, small):
    """A tile through a Bearer token: the token lookup (which names its author in the
    same statement) and the tile - no commit when the token's last use is fresh, no
    anonymous author named first (tests/web/test_admin_audit.py checks writes are still
    named), no statement to set the plan mode (the tile is left unprepared instead)."""
    import sqlalchemy as sa

    engine = small_app.extensions["mapsvc.engine"]
    tile = _tile_for(118.59, 24.905, 15)
    url = f"/tiles/grids/{tile.z}/{tile.x}/{tile.y}.mvt"
    assert small_client.get(url).status_code == 200  # records the token's use (a commit)
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement.split(None, 1)[0].upper())

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        resp = small_client.get(url)
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    assert resp.status_code == 200 and resp.get_data()
    # SELECT token with set_config (the author), SELECT tile
    assert len(seen) == 2, seen
    with engine.connect() as c:
        used = c.scalar(sa.text("SELECT count(*) FROM api_token WHERE last_used_at IS NOT NULL"))
    assert used >= 1


def test_a_tokens_first_tile_records_its_use_against_its_owner(small_app, client_as) -> None:
    """The token lookup names the author in its own statement: the last-use stamp it
    writes is on the trail under the token's owner (via the token, from the client's
    address), and a revoked token stops at once (401, nothing written)."""
    import sqlalchemy as sa

    from mapsvc.db import session_scope
    from mapsvc.services import accounts

    engine = small_app.extensions["mapsvc.engine"]
    reader = client_as("leader", small_app)
    tile = _tile_for(118.59, 24.905, 15)
    url = f"/tiles/grids/{tile.z}/{tile.x}/{tile.y}.mvt"
    since = last_audit_id(engine)
    assert reader.get(url).status_code == 200
    rows = audit_rows(engine, since, "api_token")
    with engine.connect() as c:
        uid = c.scalar(
            sa.text("SELECT id FROM app_user WHERE username = :u"), {"u": reader.username}
        )
    assert [(r["action"], r["user_id"], r["username"], r["via"], r["address"]) for r in rows] == [
        ("update", uid, reader.username, "token", "127.0.0.1")
    ]
    with session_scope(engine) as s:
        (token_id,) = [t["id"] for t in accounts.list_tokens(s, reader.username)]
        accounts.revoke_token(s, reader.username, token_id)
    since = last_audit_id(engine)
    r = reader.get(url)
    assert r.status_code == 401 and "not valid" in r.get_json()["error"]
    assert audit_rows(engine, since) == []
