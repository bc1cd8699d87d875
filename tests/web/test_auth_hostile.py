"""Hostile strings stored through every text field (incident description, address and
note, visit place and note, imported community and grid names, a user name) show as text on
every page in Chromium: a dialog listener that must never fire, no injected element."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from mapsvc.db import session_scope
from mapsvc.services import accounts
from mapsvc.services.categories import ensure_categories
from tests.fixtures.web import EVIL, EVIL_GRID, LiveServer

EVIL_USER = "<img src=x onerror=alert('user')>"
EVIL_TEXT = "\"'><svg onload=alert('desc')>{{7*7}}"
PAGES = (
    "/",
    "/incidents/list",
    "/incidents/map",
    "/incidents/choropleth",
    "/patrol",
    "/dashboard",
    "/coverage",
    "/density",
    "/quota",
    "/account",
)


@pytest.fixture
def hostile(small, make_app):
    with session_scope(small.engine) as s:
        ensure_categories(s)
        accounts.create_user(s, EVIL_USER, "hostile-password", "admin")
    app = make_app(small.engine)
    api = app.test_client()  # the test admin
    r = api.post(
        "/api/incidents",
        json={
            "category": "garbage",
            "lon": 118.582,
            "lat": 24.905,
            "description": EVIL_TEXT,
            "address": EVIL,
            "note": EVIL_GRID,
        },
    )
    assert r.status_code == 201, r.get_json()
    iid = r.get_json()["id"]
    r = api.post(f"/api/incidents/{iid}/transitions", json={"state": "dispatched", "note": EVIL})
    assert r.status_code == 200
    with small.engine.connect() as c:
        chief = c.scalar(sa.text("SELECT id FROM staff WHERE code = 't-chief3'"))
    r = api.post(
        "/api/patrol/visits",
        json={
            "staff": chief,
            "segment_id": small.ids["t:S3"],
            "place": EVIL,
            "note": EVIL_TEXT,
        },
    )
    assert r.status_code == 201, r.get_json()
    server = LiveServer(app)
    yield server, iid
    server.stop()


def test_hostile_text_is_shown_as_text_on_every_page(hostile, anon_page) -> None:
    server, iid = hostile
    page = anon_page
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    # a failed login shows the typed (hostile) name back in the form, as a value
    page.goto(f"{server.url}/login")
    page.fill("#username", EVIL_USER)
    page.fill("#password", "not-the-password")
    page.click("#login-submit")
    assert page.input_value("#username") == EVIL_USER
    page.fill("#password", "hostile-password")
    page.click("#login-submit")
    page.wait_for_url(f"{server.url}/")
    for path in (*PAGES, f"/incidents/map?incident={iid}", f"/api/incidents/{iid}"):
        page.goto(f"{server.url}{path}")
        page.wait_for_load_state("networkidle")
        assert page.locator("img[src='x'], svg[onload]").count() == 0, path
        assert page.title() != "pwned", path
        if not path.startswith("/api/"):
            assert page.locator(".mapsvc-account").inner_text() == EVIL_USER, path
    page.goto(f"{server.url}/incidents/list")
    row = page.locator(f'tr[data-id="{iid}"]')
    assert EVIL_TEXT in row.inner_text() and EVIL in row.inner_text()
    assert dialogs == []
    assert [e for e in page.errors if "blocked" in e] == []
