"""The offline geocoder (mapsvc.services.geocode) and address-only intake.

Read-only checks run on the demo district (its own street names, grids, communities and
service centres); everything that writes runs on the hand-built district of
``tests/fixtures/incidents.py`` with a few streets of our own laid out in metres:

    新华北路: x=300, y=20..280 (crosses 西街 at (300, 100), inside grid A1)
    西街:     y=100, x=100..480
    同名巷:   one in community A (y=595, x=0..60), one in community B (y=5, x=940..1000):
              1,059 m apart, more than geocode.SAME_STREET_GAP_M, so two streets
"""

from __future__ import annotations

import pytest
import requests
import sqlalchemy as sa
from georeport import GeoReport
from shapely.geometry import LineString

from mapsvc.core.errors import ValidationError
from mapsvc.db import session_scope
from mapsvc.services.geocode import SAME_STREET_GAP_M, geocode, normalize
from mapsvc.services.routing import reroute_open
from tests.fixtures.accounts import make_account
from tests.fixtures.incidents import ll, wgs
from tests.fixtures.web import LiveServer

# --------------------------------------------------------------------------- helpers


def _point_to(conn, lon: float, lat: float, sql: str, **params) -> float:
    """Metres (geography) from the point to the nearest geometry ``sql`` selects as g."""
    return conn.scalar(
        sa.text(
            f"""SELECT min(ST_Distance(geography(s.g),
                    geography(ST_SetSRID(ST_MakePoint(:x, :y), 4326)))) FROM ({sql}) s"""
        ),
        {"x": lon, "y": lat, **params},
    )


def _to_street(conn, lon: float, lat: float, name: str) -> float:
    return _point_to(conn, lon, lat, "SELECT geom g FROM alley_segment WHERE name = :n", n=name)


def _count(engine) -> int:
    with engine.connect() as c:
        return c.scalar(sa.text("SELECT count(*) FROM incident"))


# --------------------------------------------------------------------------- demo, read-only


def test_normalize_folds_full_width_and_spaces() -> None:
    assert normalize(" 中山路　１２３ 号 ") == "中山路123号"
    assert normalize("新华北路－西街") == "新华北路-西街"


def test_demo_street_names_resolve_onto_their_street(demo_engine) -> None:
    with demo_engine.connect() as c:
        # the most-segmented road (long, bending), a street and a lane, with their subdistrict
        rows = c.execute(
            sa.text(
                """SELECT DISTINCT ON (s.highway) s.name, sd.name AS sub, d.name AS dist
                FROM (SELECT name, highway, count(*) n, ST_Collect(geom) g FROM alley_segment
                      WHERE name IS NOT NULL GROUP BY name, highway) s
                JOIN subdistrict sd ON ST_Intersects(sd.geom, ST_PointOnSurface(s.g))
                JOIN district d ON d.id = sd.district_id
                ORDER BY s.highway, s.n DESC"""
            )
        ).all()
        assert len(rows) >= 3
        for name, sub, dist in rows:
            address = f"福建省泉州市{dist}{sub}{name}　１２３号"
            g = geocode(c, address)
            assert g.precision == "street" and g.matched == name, (address, g)
            assert g.house_number == "123" and g.area == sub
            assert _to_street(c, g.lon, g.lat, name) < 0.5, (address, g)
            # and it is inside the subdistrict named in the address
            inside = c.scalar(
                sa.text(
                    "SELECT ST_Intersects(geom, ST_SetSRID(ST_MakePoint(:x, :y), 4326)) "
                    "FROM subdistrict WHERE name = :n"
                ),
                {"x": g.lon, "y": g.lat, "n": sub},
            )
            assert inside, (address, g)


def test_demo_intersections_resolve_to_the_crossing(demo_engine) -> None:
    with demo_engine.connect() as c:
        pairs = c.execute(
            sa.text(
                """WITH s AS (SELECT name, ST_Collect(geom) g FROM alley_segment
                              WHERE name IS NOT NULL GROUP BY name)
                SELECT a.name, b.name, ST_X(x.p), ST_Y(x.p)
                FROM s a JOIN s b ON a.name < b.name AND ST_Intersects(a.g, b.g)
                CROSS JOIN LATERAL (SELECT ST_Intersection(a.g, b.g) p) x
                WHERE ST_GeometryType(x.p) = 'ST_Point'
                ORDER BY a.name, b.name LIMIT 5"""
            )
        ).all()
        assert len(pairs) == 5
        for a, b, x, y in pairs:
            for address in (f"{a}与{b}交叉口", f"{b}和{a}路口", f"鲤城区{a}/{b}十字路口附近"):
                g = geocode(c, address)
                assert g.precision == "intersection" and set(g.streets) == {a, b}, address
                off = _point_to(
                    c, g.lon, g.lat, "SELECT ST_SetSRID(ST_MakePoint(:px, :py), 4326) g", px=x, py=y
                )
                assert off < 1.0, (address, off)
                assert g.gap_m == pytest.approx(0.0, abs=0.01)


def test_demo_landmark_grid_and_community_fallbacks(demo_engine) -> None:
    with demo_engine.connect() as c:
        centre, cx, cy, grid, community = c.execute(
            sa.text(
                """SELECT sc.name, ST_X(sc.geom), ST_Y(sc.geom), g.name, cm.name
                FROM service_centre sc JOIN community cm ON cm.id = sc.community_id
                JOIN grid g ON g.community_id = cm.id
                ORDER BY sc.id, g.id LIMIT 1"""
            )
        ).one()
        g = geocode(c, f"{centre}门口")
        assert g.precision == "landmark" and g.matched == centre
        assert (g.lon, g.lat) == pytest.approx((cx, cy), abs=1e-9)

        g = geocode(c, f"{grid}内小区楼下")
        assert g.precision == "grid" and g.matched == grid
        assert _point_to(c, g.lon, g.lat, "SELECT geom g FROM grid WHERE name = :n", n=grid) == 0

        g = geocode(c, f"{community}居民反映")
        assert g.precision == "community" and g.matched == community
        assert (
            _point_to(c, g.lon, g.lat, "SELECT geom g FROM community WHERE name = :n", n=community)
            == 0
        )


def test_demo_nonsense_and_too_coarse_are_refused(demo_engine) -> None:
    with demo_engine.connect() as c:
        sub = c.scalar(sa.text("SELECT name FROM subdistrict ORDER BY id LIMIT 1"))
        with pytest.raises(ValidationError) as e:
            geocode(c, "火星基地1号", field="address_string")
        assert e.value.details["field"] == "address_string"
        assert "matched" in e.value.message and "火星基地1号" in e.value.message
        with pytest.raises(ValidationError) as e:
            geocode(c, f"{sub}某处")
        assert sub in e.value.message and "too coarse" in e.value.message
        with pytest.raises(ValidationError):
            geocode(c, "   ")


# --------------------------------------------------------------------------- writes


@pytest.fixture
def streets(district):
    lines = {
        "xh": ("新华北路", LineString([(300, 20), (300, 280)])),
        "xj": ("西街", LineString([(100, 100), (480, 100)])),
        "tmA": ("同名巷", LineString([(0, 595), (60, 595)])),
        "tmB": ("同名巷", LineString([(940, 5), (1000, 5)])),
    }
    with session_scope(district.engine) as s:
        for code, (name, line) in lines.items():
            s.execute(
                sa.text(
                    "INSERT INTO alley_segment (code, name, geom, source) VALUES "
                    "(:code, :name, ST_GeomFromText(:g, 4326), 'test')"
                ),
                {"code": code, "name": name, "g": wgs(line).wkt},
            )
    return district


@pytest.fixture
def api(streets, make_app):
    return make_app(streets.engine).test_client()


def test_house_numbers_are_read_but_do_not_move_the_point(streets) -> None:
    with streets.engine.connect() as c:
        plain = geocode(c, "新华北路")
        for address, number in (("新华北路１２３号", "123"), ("新华北路45弄6号", "45弄6")):
            g = geocode(c, address)
            assert g.house_number == number and g.precision == "street"
            assert (g.lon, g.lat) == (plain.lon, plain.lat)


def test_api_address_only_intersection_is_stored_routed_and_flagged(api, streets) -> None:
    r = api.post(
        "/api/incidents",
        json={"category": "road", "address": "测试区测试街道新华北路与西街交叉口"},
    )
    assert r.status_code == 201, r.get_json()
    inc = r.get_json()
    assert inc["located_by"] == "intersection"
    assert inc["geocoded"]["streets"] == ["新华北路", "西街"]
    assert inc["address"] == "测试区测试街道新华北路与西街交叉口"
    # routed like any other: the crossing (300, 100) lies well inside grid A1 ...
    assert inc["grid_id"] == streets.grid["A1"] and inc["community_id"] == streets.community["A"]
    # ... yet the point came from an address, so a planner must confirm it
    assert inc["location_to_confirm"] is True
    x, y = ll(300, 100)
    with streets.engine.connect() as c:
        off = _point_to(
            c,
            inc["lon"],
            inc["lat"],
            "SELECT ST_SetSRID(ST_MakePoint(:px, :py), 4326) g",
            px=x,
            py=y,
        )
    assert off < 1.0
    got = api.get(f"/api/incidents/{inc['id']}").get_json()
    assert got["located_by"] == "intersection" and got["location_to_confirm"] is True
    assert "新华北路与西街" in got["events"][0]["note"]
    # the same point given as coordinates is not flagged: the flag is the address's doing
    r = api.post("/api/incidents", json={"category": "road", "lon": x, "lat": y})
    assert r.get_json()["location_to_confirm"] is False
    assert r.get_json()["located_by"] == "coordinates"
    # re-routing (after grids change) keeps the address-located one flagged
    with session_scope(streets.engine) as s:
        reroute_open(s)
    assert api.get(f"/api/incidents/{inc['id']}").get_json()["location_to_confirm"] is True
    listed = api.get("/api/incidents/to-confirm").get_json()
    assert [i["id"] for i in listed["items"]] == [inc["id"]]


def test_api_street_named_area_narrows_a_shared_name(api, streets) -> None:
    with streets.engine.connect() as c:
        apart = c.scalar(
            sa.text(
                "SELECT ST_Distance(geography(a.geom), geography(b.geom)) "
                "FROM alley_segment a, alley_segment b WHERE a.code = 'tmA' AND b.code = 'tmB'"
            )
        )
    assert apart > SAME_STREET_GAP_M
    before = _count(streets.engine)
    r = api.post("/api/incidents", json={"category": "litter", "address": "同名巷３号"})
    assert r.status_code == 400 and r.get_json()["field"] == "address"
    error = r.get_json()["error"]
    assert "2 separate streets" in error and "社区A" in error and "社区B" in error
    assert _count(streets.engine) == before
    for community, wanted in (("社区B", "B"), ("社区A", "A")):
        r = api.post(
            "/api/incidents", json={"category": "litter", "address": f"{community}同名巷３号"}
        )
        assert r.status_code == 201, r.get_json()
        inc = r.get_json()
        assert inc["located_by"] == "street" and inc["community_id"] == streets.community[wanted]
        with streets.engine.connect() as c:
            assert _to_street(c, inc["lon"], inc["lat"], "同名巷") < 0.5


def test_api_bad_addresses_are_400_and_store_nothing(api, streets) -> None:
    before = _count(streets.engine)
    r = api.post("/api/incidents", json={"category": "road", "address": "火星基地1号"})
    assert r.status_code == 400
    body = r.get_json()
    assert body["field"] == "address" and "matched" in body["error"]
    # two real streets that never meet (seg1 y=150 x<=450, seg3 y=450 x>=600): ~335 m
    r = api.post("/api/incidents", json={"category": "road", "address": "seg1巷与seg3巷交叉口"})
    assert r.status_code == 400 and "do not meet" in r.get_json()["error"]
    assert "335 m" in r.get_json()["error"]
    # neither coordinates nor an address
    r = api.post("/api/incidents", json={"category": "road"})
    assert r.status_code == 400 and r.get_json()["field"] == "lon"
    assert _count(streets.engine) == before


@pytest.fixture
def server(streets, make_app):
    s = LiveServer(make_app(streets.engine))
    # Open311's api_key is an API token: a hotline system's account
    s.api_key = make_account(streets.engine, "public")[1]
    yield s
    s.stop()


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_open311_address_string_only_end_to_end(server, streets, fmt: str) -> None:
    r = requests.post(
        f"{server.url}/open311/v2/requests.json",
        data={
            "api_key": server.api_key,
            "service_code": "road",
            "address_string": "福建省泉州市测试区测试街道新华北路１２号",
            "description": "井盖缺失",
        },
        timeout=10,
    )
    assert r.status_code == 201, r.text
    posted = r.json()[0]
    assert posted["located_by"] == "street" and "新华北路" in posted["service_notice"]
    rid = posted["service_request_id"]

    client = GeoReport(f"{server.url}/open311/v2", output_format=fmt)
    one = client.get_service_request(rid)
    assert one["service_request_id"] == rid and one["description"] == "井盖缺失"
    assert one["address"] == "福建省泉州市测试区测试街道新华北路１２号"
    assert one["located_by"] == "street"
    assert str(one["location_to_confirm"]).lower() == "true"
    assert one["service_notice"] == "位置由地址推定（街巷），待核实"
    with streets.engine.connect() as c:
        assert _to_street(c, float(one["long"]), float(one["lat"]), "新华北路") < 0.5
    en = requests.get(f"{server.url}/open311/v2/requests/{rid}.json?lang=en", timeout=10).json()
    assert en[0]["service_notice"] == "located from the address (street); location to be confirmed"

    # nothing matched: the spec's error shape naming address_string; nothing stored
    before = _count(streets.engine)
    bad = requests.post(
        f"{server.url}/open311/v2/requests.{fmt}",
        data={"api_key": server.api_key, "service_code": "road", "address_string": "火星基地1号"},
        timeout=10,
    )
    assert bad.status_code == 400
    assert "address_string" in bad.text and "matched" in bad.text
    assert _count(streets.engine) == before
