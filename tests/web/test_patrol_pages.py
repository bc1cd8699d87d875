"""Patrol API and the /patrol page (real PostGIS, real headless Chromium)."""

from __future__ import annotations

import io

import gpxpy
import pytest
from sqlalchemy.orm import Session

from mapsvc.config import Settings
from tests.fixtures.patrol import DAY, add_chief, add_segments
from tests.fixtures.web import LiveServer, wait_until
from tests.services.test_patrol_compliance import walk
from tests.services.test_patrol_routes import RECT

EVIL = '<img src=x onerror="window.__pwned=1">巷长'


@pytest.fixture
def patrol_app(fresh_engine, make_app):
    with Session(bind=fresh_engine) as s:
        ids = add_segments(s, RECT | {"far": [(300, 0), (400, 0)], "link": [(100, 0), (300, 0)]})
        chief = add_chief(s, EVIL, [ids[n] for n in ("AB", "BC", "CD", "DA", "AC", "far")])
        other = add_chief(s, "林巷长", [])
        s.commit()
    app = make_app(fresh_engine)
    return app, ids, chief, other


def test_route_api_and_gpx(patrol_app):
    app, ids, chief, _other = patrol_app
    c = app.test_client()
    r = c.get(f"/api/patrol/route?chief={chief}")
    assert r.status_code == 200
    fc = r.get_json()
    p = fc["properties"]
    assert p["segments"] == 6 and p["components"] == 2
    # two pieces joined by the 200 m link: proven optimal by the integer programme
    assert p["exact"] and p["total_m"] == pytest.approx(p["lower_bound_m"])
    assert p["connector_m"] > 0 and p["unreachable_segments"] == []
    assert [f["properties"]["seq"] for f in fc["features"]] == list(
        range(1, len(fc["features"]) + 1)
    )
    g = c.get(f"/api/patrol/route.gpx?chief={chief}")
    assert g.status_code == 200 and g.mimetype == "application/gpx+xml"
    gpx = gpxpy.parse(g.get_data(as_text=True))
    assert gpx.length_2d() == pytest.approx(p["total_m"], rel=0.01)
    assert c.get("/api/patrol/route?chief=abc").status_code == 400
    assert c.get("/api/patrol/route?chief=999999").status_code == 404
    bad = c.get(f"/api/patrol/route?chief={chief}&start=1,2,3")
    assert bad.status_code == 400 and "start" in bad.get_json()["error"]


def test_assign_upload_and_compliance(patrol_app):
    app, ids, chief, other = patrol_app
    c = app.test_client()
    r = c.put(
        f"/api/segments/{ids['link']}/chief", json={"staff": other, "valid_from": "2026-11-01"}
    )
    assert r.status_code == 200 and r.get_json()["staff_id"] == other
    assert c.put(f"/api/segments/{ids['link']}/chief", json={"staff": 424242}).status_code == 404
    chiefs = {
        x["staff_id"]: x["segments"] for x in c.get(f"/api/patrol/chiefs?day={DAY}").get_json()
    }
    assert chiefs == {chief: 6, other: 1}
    pts = walk([(100, 3), (300, 3)])
    up = c.post("/api/patrol/tracks", json={"staff": other, "points": pts})
    assert up.status_code == 201, up.get_json()
    assert up.get_json()["day"] == DAY.isoformat()
    # GPX as a multipart file
    gpx = gpxpy.gpx.GPX()
    seg = gpxpy.gpx.GPXTrackSegment()
    import datetime as dt

    for lon, lat, t in walk([(0, 2), (100, 2)]):
        seg.points.append(
            gpxpy.gpx.GPXTrackPoint(lat, lon, time=dt.datetime.fromtimestamp(t, dt.UTC))
        )
    gpx.tracks.append(gpxpy.gpx.GPXTrack())
    gpx.tracks[0].segments.append(seg)
    up2 = c.post(
        "/api/patrol/tracks",
        data={"staff": str(chief), "file": (io.BytesIO(gpx.to_xml().encode()), "walk.gpx")},
        content_type="multipart/form-data",
    )
    assert up2.status_code == 201, up2.get_json()
    bad = c.post("/api/patrol/tracks", json={"staff": chief, "points": [[118.58, 24.91, 1]]})
    assert bad.status_code == 400 and "single point" in bad.get_json()["error"]
    comp = c.get(f"/api/patrol/compliance?day={DAY}").get_json()
    by = {x["staff_id"]: x for x in comp["chiefs"]}
    assert by[other]["patrolled"] == 1 and by[other]["share"] == 1.0
    assert by[chief]["patrolled_ids"] == [ids["AB"]]
    tracks = c.get(f"/api/patrol/tracks?day={DAY}").get_json()
    assert len(tracks["features"]) == 2
    v = c.post(
        "/api/patrol/visits", json={"staff": chief, "day": DAY.isoformat(), "place": "3号院"}
    )
    assert v.status_code == 201
    week = c.get(f"/api/patrol/week?day={DAY}").get_json()
    assert {x["staff_id"]: x["visits"] for x in week["chiefs"]}[chief] == 1
    assert c.get("/api/patrol/compliance?day=yesterday").status_code == 400
    bad_day = c.post("/api/patrol/tracks?day=23/11", json={"staff": chief, "points": pts})
    assert bad_day.status_code == 400 and "day" in bad_day.get_json()["error"]
    assert c.post("/api/patrol/visits", json=[1, 2]).status_code == 400
    assert c.post("/api/patrol/visits", json={"staff": chief, "day": "x"}).status_code == 400


def test_wrong_types_and_sizes_are_named_400s_and_store_nothing(patrol_app, fresh_engine):
    """Found by fuzzing: each of these was a 500 (TypeError, overflow or a PostgreSQL error)."""
    import sqlalchemy as sa

    app, ids, chief, _other = patrol_app
    c = app.test_client()

    def counts() -> tuple[int, int, int]:
        with fresh_engine.connect() as conn:
            return tuple(
                conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                for t in ("patrol_track", "patrol_visit", "assignment")
            )

    before = counts()
    pts = walk([(0, 2), (100, 2)])

    def field(r) -> str:
        assert r.status_code == 400, r.get_data(as_text=True)
        return r.get_json()["field"]

    assert field(c.post("/api/patrol/tracks", json={"staff": chief, "points": 5})) == "points"
    assert field(c.post("/api/patrol/tracks", json={"staff": chief, "points": pts, "crs": 5})) == (
        "crs"
    )
    far = [list(p) for p in pts]
    far[1][2] = 10**30
    r = c.post("/api/patrol/tracks", json={"staff": chief, "points": far})
    assert field(r) == "time" and "point 2" in r.get_json()["error"]
    visit = {"staff": chief, "day": DAY.isoformat(), "segment_id": ids["AB"]}
    r = c.post("/api/patrol/visits", json={**visit, "place": "院" * 201})
    assert field(r) == "place" and "201" in r.get_json()["error"]
    assert field(c.post("/api/patrol/visits", json={**visit, "note": {"a": 1}})) == "note"
    assert field(c.post("/api/patrol/visits", json={**visit, "lon": "east", "lat": 24.9})) == "lon"
    assert field(c.put(f"/api/segments/{ids['AB']}/chief", json=1)) == "body"
    r = c.put(f"/api/segments/{ids['AB']}/chief", json={"staff": "9" * 5000})
    assert r.status_code == 404 and r.get_json()["field"] == "staff"

    # the assignment CSV: not UTF-8, a NUL character, and an upload over the size limit
    def upload(data: bytes):
        return c.post(
            "/api/segments/assign",
            data={"file": (io.BytesIO(data), "chiefs.csv")},
            content_type="multipart/form-data",
        )

    r = upload(b"segment,staff\n\xff\xfe\x00\x81,1\n")
    assert field(r) == "file" and "not UTF-8" in r.get_json()["error"]
    r = upload(f"segment,staff\n{ids['AB']},{chief}\nx\x00,1\n".encode())
    assert field(r) == "file" and "line 3" in r.get_json()["error"]
    deep = io.BytesIO(b"[" * 100_000 + b"]" * 100_000)
    r = c.post(
        "/api/patrol/tracks",
        data={"staff": str(chief), "file": (deep, "walk.json")},
        content_type="multipart/form-data",
    )
    assert field(r) == "file" and "nested too deeply" in r.get_json()["error"]
    app.config["MAX_CONTENT_LENGTH"] = 2 * 1024 * 1024
    r = upload(b"segment,staff\n" + b"1,1\n" * 700_000)
    assert r.status_code == 413 and "limit of 2 MB" in r.get_json()["error"]
    assert counts() == before


def test_patrol_page_in_chromium(patrol_app, page):
    app, _ids, chief, _other = patrol_app
    server = LiveServer(app)
    try:
        page.goto(f"{server.url}/patrol?chief={chief}&day={DAY}&lang=zh_CN")
        page.wait_for_selector("path.leaflet-interactive", timeout=15000)
        # the route carries direction arrows (leaflet-textpath) and order numbers
        assert page.locator("textPath").count() >= 1
        assert page.locator(".leaflet-marker-icon").count() >= 5
        assert page.evaluate("window.__pwned") is None
        text = page.inner_text("body")
        assert "巡查路线" in text and EVIL.replace("巷长", "") in text
        assert "GPX" in text
        page.goto(f"{server.url}/patrol?chief={chief}&day={DAY}&lang=en")
        page.wait_for_selector("path.leaflet-interactive", timeout=15000)
        assert "Patrol route" in page.inner_text("body")
        page.goto(f"{server.url}/patrol?day={DAY}")
        # without a route the page holds the patrol state only, painted from vector tiles
        wait_until(page, "document.documentElement.dataset.tiledPainted === '6'")
        assert page.errors == []
    finally:
        server.stop()


@pytest.mark.parametrize("size", [(1280, 800), (390, 844)], ids=["desktop", "phone"])
def test_patrol_state_is_painted_from_tiles_with_a_popup(patrol_app, page, size):
    """The segments' patrol state comes from /tiles/segments (the page carries only each
    segment's state, not its line), and a click on a segment names it, its chief and state."""
    from tests.fixtures.patrol import lonlat

    app, ids, chief, _other = patrol_app
    html = app.test_client().get(f"/patrol?day={DAY}&lang=zh_CN").get_data(as_text=True)
    assert "mapsvcTiled.segments(" in html
    far = lonlat(350, 0)  # the middle of segment "far", drawn by no route on this page
    assert f"{far[0]:.5f}" not in html  # no segment line is embedded
    tiles: list[str] = []
    page.set_viewport_size({"width": size[0], "height": size[1]})
    page.on("request", lambda r: tiles.append(r.url) if "/tiles/segments/" in r.url else None)
    server = LiveServer(app)
    try:
        page.goto(f"{server.url}/patrol?day={DAY}&lang=zh_CN")
        wait_until(page, "document.documentElement.dataset.tiledPainted === '6'")
        assert page.evaluate("document.documentElement.dataset.tiledSegments") == "6"
        assert tiles and all(f"day={DAY}" in u for u in tiles)
        name = page.evaluate("Object.keys(window).find(k => /^map_[0-9a-f]+$/.test(k))")
        point = page.evaluate(
            "([n, lon, lat]) => { const m = window[n]; m.setView([lat, lon], 17, {animate: false});"
            " const p = m.latLngToContainerPoint([lat, lon]);"
            " const r = m.getContainer().getBoundingClientRect();"
            " return [r.left + p.x, r.top + p.y]; }",
            [name, far[0], far[1]],
        )
        wait_until(page, "document.documentElement.dataset.tiledPainted === '6'")
        deadline = 0
        while not page.locator(".leaflet-popup-content").count() and deadline < 50:
            page.mouse.click(point[0], point[1])  # until the z17 view's tiles are in
            page.wait_for_timeout(200)
            deadline += 1
        popup = page.inner_text(".leaflet-popup-content")
        assert "far" in popup and "巷长" in popup and "未巡查" in popup, popup
        assert page.evaluate("window.__pwned") is None
        assert page.errors == []
    finally:
        server.stop()


def test_osm_streets_page_credits_openstreetmap(fresh_engine, make_app, page):
    import sqlalchemy as sa

    from mapsvc.services import streets
    from tests.services.test_streets import TEST_PBF

    with Session(bind=fresh_engine) as s:
        streets.import_osm(s, TEST_PBF)
        segs = s.scalars(
            sa.text("SELECT id FROM alley_segment WHERE osm_way_id = 22731285 ORDER BY piece")
        ).all()
        chief = add_chief(s, "OSM chief", list(segs))
        s.commit()
    server = LiveServer(make_app(fresh_engine))
    try:
        page.goto(f"{server.url}/patrol?chief={chief}")
        page.wait_for_selector("path.leaflet-interactive", timeout=15000)
        assert "© OpenStreetMap contributors" in page.inner_text(".leaflet-control-attribution")
        assert page.errors == []
    finally:
        server.stop()
    gpx = make_app(fresh_engine).test_client().get(f"/api/patrol/route.gpx?chief={chief}")
    assert "OpenStreetMap contributors" in gpx.get_data(as_text=True)


def test_page_reports_a_chief_without_a_route(patrol_app, page):
    app, _ids, _chief, other = patrol_app  # ``other`` holds no segments
    server = LiveServer(app)
    try:
        page.goto(f"{server.url}/patrol?chief={other}&day={DAY}&lang=en")
        page.wait_for_selector(".mapsvc-patrol-panel", timeout=15000)
        assert "holds no alley segments" in page.inner_text(".mapsvc-patrol-panel")
        assert page.errors == []
    finally:
        server.stop()
    assert app.test_client().get("/patrol?chief=987654").status_code == 404


def test_patrol_panel_shows_a_template_like_name_as_text(fresh_engine, make_app, page):
    """A chief's name with markup and a Jinja expression reaches the form and panel as text."""
    name = '{{ 7*7 }}<img src=x onerror="window.__pwned=1">'
    with Session(bind=fresh_engine) as s:
        ids = add_segments(s, RECT)
        chief = add_chief(s, name, list(ids.values()))
        s.commit()
    server = LiveServer(make_app(fresh_engine))
    try:
        page.goto(f"{server.url}/patrol?chief={chief}&day={DAY}&lang=en")
        page.wait_for_selector(".mapsvc-patrol-panel", timeout=15000)
        option = page.locator(".mapsvc-patrol-form select[name=chief] option:checked")
        assert option.inner_text() == f"{name} ({len(ids)})"
        panel = page.locator(".mapsvc-patrol-panel")
        assert panel.locator("td", has_text=name).count() == 2  # route row and chief row
        assert panel.locator("img").count() == 0
        assert page.evaluate("window.__pwned") is None
        assert page.errors == []
    finally:
        server.stop()


def test_patrol_page_on_gcj02_tiles_moves_the_route_with_them(patrol_app, make_app, fresh_engine):
    """With Amap tiles (GCJ-02) the route, its start and the segments are shifted alike."""
    import re

    from mapsvc.services.chinacrs import wgs84_to_gcj02

    _app, _ids, chief, _other = patrol_app
    plain_app = make_app(fresh_engine)
    route = plain_app.test_client().get(f"/api/patrol/route?chief={chief}").get_json()
    lon, lat = route["start"]["coordinates"]
    amap = make_app(fresh_engine, BASEMAP="amap").test_client()
    html = amap.get(f"/patrol?chief={chief}&lang=en").get_data(as_text=True)
    assert "autonavi.com" in html
    plain = plain_app.test_client().get(f"/patrol?chief={chief}&lang=en").get_data(as_text=True)

    def points(page: str) -> list[tuple[float, float]]:
        pairs = re.findall(r"\[(2\d\.\d+), (11\d\.\d+)\]", page)  # Leaflet [lat, lon]
        return [(float(b), float(a)) for a, b in pairs]

    def drawn(page: str, x: float, y: float) -> bool:  # within ~0.2 m
        return any(abs(a - x) < 2e-6 and abs(b - y) < 2e-6 for a, b in points(page))

    glon, glat = wgs84_to_gcj02(lon, lat)
    assert drawn(html, float(glon), float(glat)) and not drawn(html, lon, lat)
    assert drawn(plain, lon, lat) and not drawn(plain, float(glon), float(glat))
    # the GeoJSON of the steps and segments ([lon, lat]) moved too
    x, y = route["features"][-1]["geometry"]["coordinates"][1]
    gx, gy = (float(v) for v in wgs84_to_gcj02(x, y))

    def in_geojson(page: str, x: float, y: float) -> bool:
        pairs = re.findall(r"\[(11\d\.\d+), (2\d\.\d+)\]", page)
        return any(abs(float(a) - x) < 2e-6 and abs(float(b) - y) < 2e-6 for a, b in pairs)

    assert in_geojson(html, gx, gy) and not in_geojson(html, x, y)
    assert in_geojson(plain, x, y)


def test_grid_compliance_api_by_day_and_week(patrol_app, fresh_engine):
    """Per grid: the assigned segments through it and how many were walked that day (or
    that week). The chief's square lies in G-W, the far street in G-E; the link, which
    crosses both, has no chief."""
    import datetime as dt

    from mapsvc.services import patrol
    from tests.fixtures.patrol import add_grids

    app, ids, chief, _other = patrol_app
    with Session(bind=fresh_engine) as s:
        grids = add_grids(s, {"G-W": (-50, -50, 200, 120), "G-E": (200, -50, 450, 120)})
        patrol.upload_track(s, chief, {"points": walk([(0, 2), (100, 2)])})  # AB on Monday
        wednesday = DAY + dt.timedelta(days=2)
        t0 = dt.datetime.combine(wednesday, dt.time(8), Settings().tz).timestamp()
        patrol.upload_track(s, chief, {"points": walk([(300, 2), (400, 2)], t0=t0)})  # far
        s.commit()
    c = app.test_client()

    def shares(query: str) -> dict[str, tuple[int, int]]:
        r = c.get(f"/api/patrol/grids?{query}")
        assert r.status_code == 200, r.get_json()
        rows = r.get_json()
        assert {g["code"]: g["grid_id"] for g in rows} == grids
        for g in rows:
            assert g["share"] == pytest.approx(g["patrolled"] / g["segments"])
        return {g["code"]: (g["patrolled"], g["segments"]) for g in rows}

    # G-W: AB BC CD DA AC of the square; G-E: far (the link is nobody's)
    assert shares(f"day={DAY}") == {"G-W": (1, 5), "G-E": (0, 1)}
    assert shares(f"day={wednesday}") == {"G-W": (0, 5), "G-E": (1, 1)}
    assert shares(f"day={DAY}&week=1") == {"G-W": (1, 5), "G-E": (1, 1)}
    assert shares(f"day={wednesday}&week=true") == {"G-W": (1, 5), "G-E": (1, 1)}
    assert shares(f"day={DAY + dt.timedelta(days=7)}&week=1") == {"G-W": (0, 5), "G-E": (0, 1)}
    assert c.get("/api/patrol/grids?day=Monday").status_code == 400


#: the overlays drawn over the /patrol map (filter form, figures panel, legend)
OVERLAYS = ".mapsvc-patrol-form, .mapsvc-patrol-panel, .mapsvc-legend"


def _covered_share(page) -> float:
    """Share of the map's area under the overlays (their boxes clipped to the map)."""
    return page.evaluate(
        """sel => {
          const m = document.querySelector('.folium-map').getBoundingClientRect();
          let area = 0;
          for (const el of document.querySelectorAll(sel)) {
            const r = el.getBoundingClientRect();
            const w = Math.max(0, Math.min(r.right, m.right) - Math.max(r.left, m.left));
            const h = Math.max(0, Math.min(r.bottom, m.bottom) - Math.max(r.top, m.top));
            area += w * h;
          }
          return area / (m.width * m.height);
        }""",
        OVERLAYS,
    )


@pytest.mark.parametrize("size", [(390, 844), (1440, 900)], ids=["phone", "desktop"])
def test_patrol_page_leaves_the_map_visible(patrol_app, page, size):
    app, _ids, chief, _other = patrol_app
    server = LiveServer(app)
    try:
        page.set_viewport_size({"width": size[0], "height": size[1]})
        page.goto(f"{server.url}/patrol?chief={chief}&day={DAY}&lang=zh_CN")
        page.wait_for_selector("path.leaflet-interactive", timeout=15000)
        is_open = page.evaluate("document.querySelector('.mapsvc-patrol-panel details').open")
        assert page.evaluate("document.documentElement.scrollWidth") <= size[0]
        if size[0] < 600:
            assert not is_open  # folded on a phone, a tap opens it
            assert _covered_share(page) < 0.2
            page.click(".mapsvc-patrol-panel summary")
            assert _covered_share(page) < 0.6
        else:
            assert is_open  # the desktop layout stays as it was
        assert page.errors == []
    finally:
        server.stop()
