"""The leadership big screen at 1920x1080 in headless Chromium (offline)."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import urllib.request

import pytest

from tests.fixtures.accounts import ADMIN_TOKEN


def _json(url: str) -> dict:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    with urllib.request.urlopen(req) as r:  # noqa: S310 - the local live server
        return json.loads(r.read())


def _wait_until(page, expression: str, timeout_s: float = 10.0) -> None:
    """Poll ``expression`` in the page (Playwright's wait_for_function evaluates a string
    predicate with eval, which the pages' Content-Security-Policy forbids)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        page.wait_for_timeout(100)


@pytest.fixture
def screen_live(small, make_app):
    from mapsvc.db import session_scope
    from mapsvc.models import IncidentCategory
    from mapsvc.services.incidents import create_incident
    from tests.fixtures.web import LiveServer

    with session_scope(small.engine) as s:
        s.add(IncidentCategory(code="litter", name_zh="垃圾", name_en="Litter"))
        s.flush()
        for i in range(6):
            create_incident(
                s,
                {
                    "category": "litter",
                    "lon": 118.581 + i * 0.003,
                    "lat": 24.902 + i * 0.001,
                    "reported_at": f"2025-0{1 + i % 3}-10T10:00:00+08:00",
                },
                actor="test",
            )
    live = LiveServer(make_app(small.engine, SCREEN_REFRESH_S=1))
    yield live
    live.stop()


def test_screen_at_1920x1080_shows_the_api_figures_and_refreshes(screen_live, page):
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.goto(f"{screen_live.url}/screen?lang=zh_CN")
    _wait_until(page, "window.screenUpdates >= 1", 30)
    stats = _json(f"{screen_live.url}/api/incidents/stats?by=community")
    d = stats["district"]
    assert page.inner_text('[data-kpi="total"]') == f"{d['total']:,}"
    assert page.inner_text('[data-kpi="open"]') == f"{d['open']:,}"
    assert page.inner_text('[data-kpi="overdue"]') == f"{d['overdue']:,}"
    ranked = page.locator("#rank-community li").all_inner_texts()
    assert [r.splitlines()[0] if "\n" in r else r for r in ranked] and len(ranked) == len(
        stats["units"][:10]
    )
    assert ranked[0].startswith(stats["units"][0]["name"])
    grids = _json(f"{screen_live.url}/api/incidents/stats?by=grid")["units"]
    assert len(page.locator("#rank-grid li").all_inner_texts()) == len(grids[:10])
    open_items = _json(f"{screen_live.url}/api/incidents?state=open&limit=1000")["items"]
    assert page.evaluate("window.screenPins") == len(open_items) > 0
    assert page.locator("#screen-map .leaflet-interactive").count() == len(open_items)
    assert len(page.locator("#trend .bar").all()) == len(d["by_month"][-12:])
    # it refreshes itself, fills the screen and scrolls nowhere
    _wait_until(page, "window.screenUpdates >= 2")
    size = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
    )
    assert size == [1920, 1080]
    assert "领导驾驶舱" in page.inner_text("h1")
    # the clock is the district's, not the browser's (Chromium here runs in UTC)
    shown = page.inner_text("#screen-clock")
    m = re.fullmatch(r"(\d{4})/(\d{2})/(\d{2}) (\d{2}):(\d{2}):(\d{2})", shown)
    assert m, shown
    tz = screen_live.app.extensions["mapsvc.settings"].tz
    at = dt.datetime(*map(int, m.groups()), tzinfo=tz)
    assert abs((dt.datetime.now(tz) - at).total_seconds()) < 10
    assert page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone") != str(tz)
    assert page.errors == []
