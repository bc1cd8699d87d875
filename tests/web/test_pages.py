"""The coverage map page: light HTML, escaped names, and a real headless Chromium draw."""

from __future__ import annotations

import re

import pytest

from tests.fixtures.web import wait_until

GRID_PATHS = ".leaflet-mapsvc-grids-pane path.leaflet-interactive"
SEGMENT_PATHS = ".leaflet-mapsvc-segments-pane path.leaflet-interactive"
#: colours of the drawn segments, from Leaflet's layers
SEGMENT_COLOURS = """() => {
    const out = [];
    for (const v of Object.values(window)) {
        if (!(v instanceof L.Map)) continue;
        v.eachLayer(l => {
            if (l.feature && l.feature.properties.length_m !== undefined && l.options.color)
                out.push(l.options.color);
        });
    }
    return out;
}"""


def test_page_embeds_communities_not_grids(small, small_client) -> None:
    resp = small_client.get("/")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "Vonng/adcode, CC BY 4.0" in html
    assert "350502001002" in html  # communities are embedded (names as \\u escapes)
    for code in small.grids:  # grids are fetched, not embedded
        assert code not in html
    for code in small.segments:
        assert code not in html
    assert "/api/grids" in html and "/api/segments" in html
    # every script and stylesheet is served by us
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert not url.startswith(("http:", "https:", "//")), url
    assert "图例" in html and "网格（按社区着色）" in html and "未分配街巷长" in html
    # the summary panel counts what the fixture built: S2 is the one segment without chief
    assert "2 个社区 · 4 个网格 · 3 条街巷段" in html
    assert "1 条未分配街巷长" in html


def test_page_in_english(small_client) -> None:
    html = small_client.get("/?lang=en").get_data(as_text=True)
    assert "Legend" in html and "Grids (coloured by community)" in html
    assert "No chief assigned" in html


def test_names_are_never_raw_html_in_the_page(small, small_client) -> None:
    html = small_client.get("/").get_data(as_text=True)
    assert small.evil not in html
    assert "<img src=x" not in html
    # the tooltip carries it escaped; the JSON copy has "<" as \u003c
    assert "&lt;img src=x onerror=alert(1)&gt;" in html or "\\u0026lt;img" in html


def test_empty_database_page_says_what_to_do(fresh_engine, make_app) -> None:
    html = make_app(fresh_engine).test_client().get("/").get_data(as_text=True)
    assert "mapsvc demo load" in html


def _open(page, url: str) -> int:
    page.goto(url)
    page.wait_for_selector("html[data-map-drawn]", timeout=20000)
    return int(page.get_attribute("html", "data-grids-drawn"))


@pytest.mark.browser
def test_browser_draws_the_small_district_and_escapes(small, small_live, page) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    assert _open(page, small_live.url + "/?lang=zh_CN") == 4
    assert page.locator(GRID_PATHS).count() == 4
    assert page.get_attribute("html", "data-map-drawn") == "3"
    assert page.locator(SEGMENT_PATHS).count() == 3
    # the unassigned segment is red and thick
    strokes = page.evaluate(SEGMENT_COLOURS)
    assert len(strokes) == 3 and strokes.count("#d7191c") == 1
    # community labels are text, not markup
    labels = page.eval_on_selector_all(".mapsvc-label span", "els => els.map(e => e.textContent)")
    assert small.evil in labels
    # open every tooltip (grids, segments from map.js; communities, district from folium)
    texts = page.evaluate(
        """() => {
            const out = [];
            for (const v of Object.values(window)) {
                if (!(v instanceof L.Map)) continue;
                v.eachLayer(l => {
                    if (l.feature && l.getTooltip && l.getTooltip()) {
                        l.openTooltip(l.getCenter ? l.getCenter() : l.getBounds().getCenter());
                        const el = l.getTooltip().getElement();
                        if (el) out.push(el.textContent);
                        l.closeTooltip();
                    }
                });
            }
            return out;
        }"""
    )
    joined = "\n".join(texts)
    assert small.evil in joined  # shown literally
    assert small.evil_grid in joined
    assert "未分配街巷长" in joined and "李新长" in joined and "孙网格长" in joined
    page.wait_for_timeout(200)
    assert page.locator("img[src='x']").count() == 0
    assert page.title() != "pwned"
    assert dialogs == []
    assert page.errors == []


@pytest.mark.browser
def test_browser_hover_highlights_and_shows_a_tooltip(small, small_live, page) -> None:
    _open(page, small_live.url + "/?lang=zh_CN")
    widths = "ps => ps.map(p => p.getAttribute('stroke-width'))"
    assert set(page.eval_on_selector_all(GRID_PATHS, widths)) == {"1"}
    box = page.locator(GRID_PATHS).first.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.15)
    page.wait_for_selector(".mapsvc-tip", timeout=5000)
    # the hovered grid (and only it) is outlined thick
    assert sorted(page.eval_on_selector_all(GRID_PATHS, widths)) == ["1", "1", "1", "3"]
    tip = page.locator(".mapsvc-tip").first.text_content()
    assert "网格长" in tip and "户数" in tip
    # the segment without a chief: hover its middle
    x, y = page.evaluate(
        """() => { for (const v of Object.values(window)) if (v instanceof L.Map) {
                       const p = v.latLngToContainerPoint([24.903, 118.5975]);
                       const r = v.getContainer().getBoundingClientRect();
                       return [r.left + p.x, r.top + p.y]; } }"""
    )
    page.mouse.move(x, y)
    wait_until(
        page,
        "() => [...document.querySelectorAll('.mapsvc-tip')]"
        ".some(t => t.textContent.includes('测试巷2'))",
        timeout=5000,
    )
    tips = page.eval_on_selector_all(".mapsvc-tip", "ts => ts.map(t => t.textContent)")
    assert any("测试巷2" in t and "未分配街巷长" in t for t in tips)
    assert page.errors == []


@pytest.mark.browser
def test_browser_draws_the_demo_and_refetches_for_the_view(live_server, page) -> None:
    """The demo district: grids drawn from the API; zooming in fetches only the view."""
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/api/" in r.url else None)
    drawn = _open(page, live_server.url + "/?lang=zh_CN")
    assert drawn > 300  # the whole demo district is in view
    assert page.locator(GRID_PATHS).count() == drawn
    assert int(page.get_attribute("html", "data-map-drawn")) > 1000
    assert page.locator(SEGMENT_PATHS).count() > 1000
    assert any("/api/grids?bbox=" in u for u in requests)
    assert page.locator(".mapsvc-label span").count() > 50
    # zoom in on the old town: a new, smaller request replaces the district-wide one
    page.evaluate(
        "['data-grids-drawn', 'data-map-drawn']"
        ".forEach(a => document.documentElement.removeAttribute(a))"
    )
    page.evaluate(
        """() => { for (const v of Object.values(window))
                     if (v instanceof L.Map) v.setView([24.905, 118.585], 17); }"""
    )
    close = _open_wait(page)
    assert 0 < close < drawn / 4
    assert page.locator(GRID_PATHS).count() == close
    assert page.errors == []


def _open_wait(page) -> int:
    page.wait_for_selector("html[data-map-drawn]", timeout=20000)
    return int(page.get_attribute("html", "data-grids-drawn"))


@pytest.mark.parametrize(
    ("config", "present", "absent"),
    [
        ({}, ["Vonng/adcode"], ["tile.openstreetmap.org", "autonavi", "tianditu"]),
        (
            {"BASEMAP": "osm"},
            ["tile.openstreetmap.org", "OpenStreetMap contributors", "Vonng/adcode"],
            ['"crs": "gcj02"'],
        ),
        ({"BASEMAP": "tianditu"}, ["Vonng/adcode"], ["tianditu.gov.cn"]),  # no key: none
        ({"BASEMAP": "tianditu", "TIANDITU_KEY": "k123"}, ["tianditu.gov.cn", "tk=k123"], []),
        ({"BASEMAP": "amap"}, ["autonavi.com", '"crs": "gcj02"', "GCJ-02"], []),
    ],
)
def test_base_maps(small, make_app, config, present, absent) -> None:
    html = make_app(small.engine, **config).test_client().get("/?lang=en").get_data(as_text=True)
    for text in present:
        assert text in html, text
    for text in absent:
        assert text not in html, text


def test_amap_page_draws_overlays_in_gcj02(small, make_app) -> None:
    """On GCJ-02 tiles the embedded outlines are shifted by the GCJ-02 offset."""
    from mapsvc.services.chinacrs import wgs84_to_gcj02

    plain = make_app(small.engine).test_client().get("/").get_data(as_text=True)
    amap = make_app(small.engine, BASEMAP="amap").test_client().get("/").get_data(as_text=True)
    lon, lat = wgs84_to_gcj02(118.58, 24.9)
    assert "[118.58, 24.9]" in plain
    assert f"[{lon:.5f}" in amap and f"{lat:.5f}" in amap
    assert "[118.58, 24.9]" not in amap
