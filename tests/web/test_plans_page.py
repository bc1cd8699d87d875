"""The plan page in headless Chromium, at desktop and phone sizes: grids coloured by their
load, a check drawn on the map, the comparison side by side, and the edits (vertex move,
split, merge, a refused edit with its reason) made through the page's own handlers."""

from __future__ import annotations

import pytest
from shapely.geometry import box, mapping

from tests.fixtures.accounts import make_account
from tests.fixtures.incidents import ll, wgs
from tests.fixtures.web import LiveServer, wait_until

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}
A = "350502001001"


@pytest.fixture
def planner_app(district, make_app):
    app = make_app(district.engine)
    pid = (
        app.test_client()
        .post("/api/plans", json={"name": "东片", "communities": [A]})
        .get_json()["id"]
    )
    _name, token = make_account(district.engine, "planner", district="350502")
    return app, token, pid


def _open(browser, server, token, viewport, url):
    context = browser.new_context(
        viewport=viewport, extra_http_headers={"Authorization": f"Bearer {token}"}
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and "409" not in m.text and "400" not in m.text
            else None
        ),
    )
    page.on(
        "request",
        lambda r: (
            errors.append(f"left the machine: {r.url}")
            if not r.url.startswith((server.url, "data:"))
            else None
        ),
    )
    page.goto(f"{server.url}{url}")
    wait_until(page, "document.body.dataset.loaded >= 1")
    return context, page, errors


def _loads(page) -> int:
    return int(page.evaluate("+document.body.dataset.loaded"))


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_plan_page_shows_load_checks_and_comparison(planner_app, browser, viewport):
    app, token, pid = planner_app
    server = LiveServer(app)
    try:
        context, page, errors = _open(browser, server, token, viewport, f"/plans/{pid}?lang=zh_CN")
        rows = page.locator("#plan-grids tbody tr").all_inner_texts()
        assert len(rows) == 2 and all("超出 166 户" in r for r in rows), rows
        fills = page.evaluate("Object.values(mapsvcPlan.layers()).map(l => l.options.fillColor)")
        assert fills == ["#d7191c", "#d7191c"]  # both over the 500-household target
        page.click("#btn-validate")
        wait_until(page, "document.body.dataset.validated === 'ok'")
        assert "没有错误" in page.inner_text("#plan-status")
        page.click("#btn-compare")
        wait_until(page, "document.querySelector('#compare-table') !== null")
        assert page.is_visible("#map-current")
        assert page.inner_text("#compare-table tr[data-metric=count]").split()[-2:] == ["2", "2"]
        # the two maps move together
        page.evaluate("mapsvcPlan.map.setZoom(mapsvcPlan.map.getZoom() + 1)")
        page.wait_for_timeout(300)
        assert (
            page.evaluate("document.querySelectorAll('#map-current .leaflet-interactive').length")
            == 2
        )
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        assert errors == []
        context.close()
    finally:
        server.stop()


def test_edits_in_the_browser_split_merge_move_and_refuse(planner_app, browser):
    app, token, pid = planner_app
    server = LiveServer(app)
    try:
        context, page, errors = _open(browser, server, token, DESKTOP, f"/plans/{pid}?lang=en")
        n = _loads(page)
        line = {"type": "LineString", "coordinates": [list(ll(250, -20)), list(ll(250, 320))]}
        page.evaluate("line => mapsvcPlan.split('G-A1', line, 'G-A3')", line)
        wait_until(page, f"+document.body.dataset.loaded > {n}")
        codes = page.locator("#plan-grids tbody tr").evaluate_all(
            "rs => rs.map(r => r.dataset.code)"
        )
        assert codes == ["G-A1", "G-A2", "G-A3"]
        assert "Saved" in page.inner_text("#plan-status")
        # a vertex moved with Geoman: drag A2's north-east corner 30 m outside the community;
        # the server clips it back to the border, so the check stays clean
        n = _loads(page)
        page.click("#plan-tools button[data-tool=vertices]")
        moved = page.evaluate(
            """() => { const l = mapsvcPlan.layers()['G-A2'];
                       const ring = l.getLatLngs()[0][0];
                       const i = ring.reduce((b, p, k) => (p.lat + p.lng > ring[b].lat + ring[b].lng ? k : b), 0);
                       ring[i] = L.latLng(ring[i].lat + 0.0003, ring[i].lng + 0.0003);
                       l.setLatLngs(l.getLatLngs()); l.fire('pm:edit', {layer: l}); return i; }"""
        )
        assert moved >= 0
        wait_until(page, f"+document.body.dataset.loaded > {n}")
        page.click("#btn-validate")
        wait_until(page, "document.body.dataset.validated === 'ok'")
        # merge the split half back
        n = _loads(page)
        page.evaluate("mapsvcPlan.merge('G-A1', 'G-A3')")
        wait_until(page, f"+document.body.dataset.loaded > {n}")
        assert page.locator("#plan-grids tbody tr").count() == 2
        # an edit refused with its reason: a block that does not touch the receiving grid
        n = _loads(page)
        page.evaluate(
            "block => mapsvcPlan.reassign('G-A2', 'G-A1', block).catch(() => null)",
            mapping(wgs(box(100, 550, 200, 590))),
        )
        wait_until(page, f"+document.body.dataset.loaded > {n}")
        assert page.evaluate("document.body.dataset.refused")
        assert "bad" in page.get_attribute("#plan-status", "class")
        # an edit on a stale version: another planner saved the grid meanwhile
        other = app.test_client()
        v = other.get(f"/api/plans/{pid}").get_json()["grids"]["features"][0]["properties"]
        assert (
            other.put(
                f"/api/plans/{pid}/grids/{v['code']}",
                json={"version": v["version"], "households": 420},
            ).status_code
            == 200
        )
        n = _loads(page)
        page.evaluate(
            f"mapsvcPlan.save('{v['code']}', mapsvcPlan.layers()['{v['code']}'].toGeoJSON().geometry).catch(() => null)"
        )
        wait_until(page, f"+document.body.dataset.loaded > {n}")
        assert "was changed by" in page.inner_text("#plan-status")
        assert errors == [], errors
        context.close()
    finally:
        server.stop()
