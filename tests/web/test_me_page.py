"""/me (我的) in headless Chromium, logged in as a chief, at phone and desktop sizes."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from mapsvc.models import IncidentCategory
from mapsvc.services.incidents import create_incident
from tests.fixtures.accounts import make_account
from tests.fixtures.patrol import DAY, add_chief, add_segments, lonlat
from tests.fixtures.web import LiveServer, wait_until
from tests.services.test_patrol_compliance import walk
from tests.services.test_patrol_routes import RECT

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}


@pytest.fixture
def chief_app(fresh_engine, make_app):
    with Session(bind=fresh_engine) as s:
        ids = add_segments(s, RECT)
        chief = add_chief(s, "王巷长", list(ids.values()))
        s.add(IncidentCategory(code="litter", name_zh="垃圾", name_en="Litter"))
        s.flush()
        now = dt.datetime.now(dt.UTC)
        for x, due in (
            (20, now - dt.timedelta(days=2, hours=3, minutes=10)),
            (60, now + dt.timedelta(hours=5, minutes=30)),
        ):
            lon, lat = lonlat(x, 0)
            inc = create_incident(
                s, {"category": "litter", "lon": lon, "lat": lat, "address": f"巷{x}号"}
            )
            s.execute(
                sa.text("UPDATE incident SET chief_id = :c, due_at = :d WHERE id = :i"),
                {"c": chief, "d": due, "i": inc.id},
            )
        s.commit()
    _name, token = make_account(fresh_engine, "chief", staff=chief)
    return make_app(fresh_engine), token


def _open(browser, server, token, viewport, lang):
    context = browser.new_context(
        viewport=viewport,
        extra_http_headers={"Authorization": f"Bearer {token}"},
        geolocation={"latitude": lonlat(50, 25)[1], "longitude": lonlat(50, 25)[0]},
        permissions=["geolocation"],
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{server.url}/me?day={DAY}&lang={lang}")
    page.wait_for_selector("path.leaflet-interactive", timeout=15000)
    return context, page, errors


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_me_page_shows_my_route_incidents_and_figures(chief_app, browser, viewport):
    app, token = chief_app
    server = LiveServer(app)
    try:
        context, page, errors = _open(browser, server, token, viewport, "zh_CN")
        sheet = page.locator(".mapsvc-me")
        assert "下一条街巷" in sheet.inner_text()
        # folded: the sheet leaves the map most of the screen
        box = sheet.bounding_box()
        assert box is not None and box["height"] < 0.25 * viewport["height"]
        assert box["y"] + box["height"] <= viewport["height"] + 1
        page.click(".mapsvc-me summary")
        text = sheet.inner_text()
        for street in RECT:
            assert street in text
        items = page.locator(".mapsvc-me-incidents li").all_inner_texts()
        assert len(items) == 2
        assert "已超时 2 天 3 小时" in items[0] and "巷20号" in items[0]
        assert "剩余 0 天 5 小时" in items[1]
        assert "0/5" in page.inner_text(".mapsvc-me-glance")
        # unfolded, it still stops at 40% of the screen and nothing scrolls sideways
        box = sheet.bounding_box()
        assert box is not None and box["height"] <= 0.4 * viewport["height"] + 1
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        page.click(".mapsvc-locate")
        wait_until(page, "document.querySelector('path.mapsvc-me-here') !== null")
        assert errors == []
        context.close()
        context, page, errors = _open(browser, server, token, viewport, "en")
        assert "Next street" in page.inner_text(".mapsvc-me")
        assert errors == []
        context.close()
    finally:
        server.stop()


def test_me_page_without_a_linked_staff_member(chief_app):
    app, _token = chief_app  # the app's default client is the test admin, linked to nobody
    response = app.test_client().get("/me?lang=en")
    assert response.status_code == 200
    assert "not linked to a staff member" in response.get_data(as_text=True)


def _first_incident(app) -> int:
    with Session(bind=app.extensions["mapsvc.engine"]) as s:
        return s.scalar(sa.text("SELECT min(id) FROM incident WHERE address = '巷20号'"))


def test_incident_item_page_names_what_is_wrong_and_404s(chief_app):
    app, _token = chief_app
    c = app.test_client()  # the admin
    inc = _first_incident(app)
    text = c.get(f"/incidents/{inc}?lang=en").get_data(as_text=True)
    assert "巷20号" in text and "王巷长" in text and "overdue 2 d 3 h" in text
    assert 'data-state="dispatched"' in text  # an admin may dispatch a received incident
    assert c.get("/incidents/987654?lang=en").status_code == 404


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_chief_moves_an_incident_from_its_page(chief_app, browser, viewport):
    app, token = chief_app
    inc = _first_incident(app)
    with Session(bind=app.extensions["mapsvc.engine"]) as s:
        s.execute(sa.text("UPDATE incident SET state = 'dispatched' WHERE id = :i"), {"i": inc})
        s.commit()
    server = LiveServer(app)
    try:
        context = browser.new_context(
            viewport=viewport, extra_http_headers={"Authorization": f"Bearer {token}"}
        )
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        outside: list[str] = []  # the page asks nothing of the internet
        page.route(
            "**/*",
            lambda route: (
                route.continue_()
                if route.request.url.startswith(server.url)
                else (outside.append(route.request.url), route.abort())
            ),
        )
        page.goto(f"{server.url}/incidents/{inc}?lang=zh_CN")
        # its map: the pin and its segment over the local base map, above the fields
        page.wait_for_selector("#item-map path.leaflet-interactive")
        assert page.locator("#item-map path.leaflet-interactive").count() == 2
        assert page.locator("#item-map canvas, #item-map .leaflet-tile").count() > 0
        box = page.locator("#item-map").bounding_box()
        assert box["width"] <= viewport["width"] and box["height"] >= 200
        assert outside == []
        # a chief may only take it in hand or send it back: no dispatcher's buttons
        states = page.locator(".item-actions button").evaluate_all(
            "bs => bs.map(b => b.dataset.state)"
        )
        assert states == ["in_hand", "returned"]
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        page.fill(".item-actions form:first-of-type input[name=note]", "到场处置")
        page.click('button[data-state="in_hand"]')
        page.wait_for_selector(".item-events li:nth-child(2)")
        events = page.locator(".item-events li").all_inner_texts()
        assert "到场处置" in events[-1]
        assert errors == []
        context.close()
    finally:
        server.stop()
    with Session(bind=app.extensions["mapsvc.engine"]) as s:
        assert (
            s.scalar(sa.text("SELECT state FROM incident WHERE id = :i"), {"i": inc}) == "in_hand"
        )


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_report_patrol_and_visit_from_the_phone(chief_app, browser, viewport):
    app, token = chief_app
    engine = app.extensions["mapsvc.engine"]
    server = LiveServer(app)
    try:
        context, page, errors = _open(browser, server, token, viewport, "en")
        page.click(".mapsvc-me summary")
        page.click(".mapsvc-me-do summary")
        # report where I stand (the granted geolocation)
        page.fill(".mapsvc-me-report textarea", "broken lamp")
        page.click(".mapsvc-me-report button[type=submit]")
        wait_until(
            page, "document.querySelector('.mapsvc-me-report-out').textContent.includes('#')"
        )
        # a patrol recorded with the network down is kept, then sent when it returns
        page.click(".mapsvc-me-patrol")
        for x in range(0, 101, 10):
            lon, lat = lonlat(x, 0)
            context.set_geolocation({"latitude": lat, "longitude": lon})
            page.wait_for_timeout(150)
        wait_until(
            page, "JSON.parse(localStorage.getItem('mapsvc-me-current-track')||'[]').length > 0"
        )
        # the emulated walk is too fast to pass the speed check: store a walking-pace one
        page.evaluate(
            "t => localStorage.setItem('mapsvc-me-current-track', JSON.stringify(t))",
            walk(RECT["AB"]),
        )
        context.set_offline(True)
        page.click(".mapsvc-me-patrol")
        assert (
            page.evaluate("JSON.parse(localStorage.getItem('mapsvc-me-pending-tracks')).length")
            == 1
        )
        context.set_offline(False)
        wait_until(
            page, "JSON.parse(localStorage.getItem('mapsvc-me-pending-tracks')).length === 0"
        )
        page.fill(".mapsvc-me-visit input[name=place]", "Shop 3")
        page.click(".mapsvc-me-visit button[type=submit]")
        wait_until(page, "document.querySelector('.mapsvc-me-visit-out').textContent !== ''")
        assert "Visit logged" in page.inner_text(".mapsvc-me-visit-out")
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        assert errors == []
        context.close()
    finally:
        server.stop()
    with Session(bind=engine) as s:
        desc = s.scalar(sa.text("SELECT source FROM incident WHERE description = 'broken lamp'"))
        assert desc == "patrol"
        assert s.scalar(sa.text("SELECT count(*) FROM patrol_track")) == 1
        assert s.scalar(sa.text("SELECT place FROM patrol_visit")) == "Shop 3"
