"""The local base map: drawn from the district's own tiles, offline, with readable names."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pytest

from tests.fixtures.web import wait_until

#: the known street of the small district (tests/fixtures/web.py): S3, 118.587-118.593
STREET, STREET_LON, STREET_LAT = "测试巷3", 118.590, 24.907
#: where screenshots of the base map are kept for a person to look at
SHOTS = Path(__file__).resolve().parents[2] / "var" / "test-screens"

#: the page's Leaflet map and local base layer
MAP = "Object.values(window).find(v => v instanceof L.Map)"


def _base_only(page) -> None:
    """Leave the base map alone on the page's map (overlays, legend and panels removed)."""
    page.evaluate(
        f"""() => {{
            const map = {MAP};
            const base = window.mapsvcBasemap.layers[0];
            map.eachLayer(l => {{ if (l !== base) map.removeLayer(l); }});
            if (!map.hasLayer(base)) base.addTo(map);
            document.querySelectorAll('.mapsvc-legend, .mapsvc-summary, .leaflet-control-container, nav')
                .forEach(e => e.style.visibility = 'hidden');
        }}"""
    )


def _street_box(page) -> dict:
    """The screen box (page pixels) of the known street, end to end."""
    return page.evaluate(
        f"""() => {{
            const map = {MAP};
            const r = map.getContainer().getBoundingClientRect();
            const a = map.latLngToContainerPoint([{STREET_LAT}, {STREET_LON} - 0.003]);
            const b = map.latLngToContainerPoint([{STREET_LAT}, {STREET_LON} + 0.003]);
            return {{x: r.left + a.x, y: r.top + a.y - 20, width: b.x - a.x, height: 40}};
        }}"""
    )


def _dark_pixels(png: bytes) -> int:
    """Pixels dark enough to be text (the street, ground and casing are all light)."""
    from PIL import Image

    return sum(Image.open(BytesIO(png)).convert("L").histogram()[:120])


def test_base_map_page_config(small_client) -> None:
    html = small_client.get("/").get_data(as_text=True)
    assert "/tiles/basemap/{z}/{x}/{y}.mvt" in html
    assert "/static/vendor/protomaps-leaflet/protomaps-leaflet.js" in html
    # its name in the layer switch (folium writes it as JSON, non-ASCII escaped)
    assert "辖区底图" in html or "\\u8f96\\u533a\\u5e95\\u56fe" in html


@pytest.mark.browser
def test_base_map_draws_offline_with_a_readable_street_name(small, small_live, page) -> None:
    """Every non-localhost request is blocked (the ``page`` fixture); at zoom 17 the
    known street's name is placed by the label engine and drawn: dark text pixels on the
    street that vanish when the labels are switched off."""
    page.goto(small_live.url + "/?lang=zh_CN")
    page.wait_for_selector("html[data-map-drawn]", timeout=20000)
    _base_only(page)
    page.evaluate(f"() => {MAP}.setView([{STREET_LAT}, {STREET_LON}], 17, {{animate: false}})")
    wait_until(
        page,
        f"() => (document.documentElement.dataset.basemapStreets || '').split('\\n')"
        f".includes({STREET!r})",
        timeout=20000,
    )
    page.wait_for_timeout(500)  # the label pass repaints the tiles it touched
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "basemap-z17.png"))
    clip = _street_box(page)
    with_labels = _dark_pixels(page.screenshot(clip=clip))
    page.evaluate(
        """() => {
            const base = window.mapsvcBasemap.layers[0];
            base.labelRules = [];
            base.clearLayout();
            base.rerenderTiles();
        }"""
    )
    page.wait_for_timeout(500)
    without = _dark_pixels(page.screenshot(clip=clip))
    # a 4-character CJK name at 14 px covers a hundred dark pixels and more
    assert with_labels >= 80, with_labels
    assert without < with_labels / 10, (with_labels, without)
    assert page.errors == []


@pytest.mark.browser
@pytest.mark.parametrize("size", [(1280, 900), (390, 844)])
def test_base_map_tiles_are_all_local_and_error_free(small, small_live, browser, size) -> None:
    """The map page at desktop and phone size: tiles come from /tiles/basemap, nothing
    from elsewhere, no console error."""
    context = browser.new_context(viewport={"width": size[0], "height": size[1]})
    page = context.new_page()
    seen, errors = [], []
    page.on("request", lambda r: seen.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.route(
        "**/*",
        lambda r: r.continue_() if r.request.url.startswith(small_live.url) else r.abort(),
    )
    page.goto(small_live.url + "/")
    page.wait_for_selector("html[data-map-drawn]", timeout=20000)
    wait_until(
        page,
        "() => window.mapsvcBasemap && window.mapsvcBasemap.layers.length === 1",
        timeout=10000,
    )
    page.wait_for_timeout(300)
    tiles = [u for u in seen if "/tiles/basemap/" in u]
    context.close()
    assert tiles, "the base map asked for no tile"
    assert all(u.startswith(small_live.url) for u in seen), [
        u for u in seen if small_live.url not in u
    ]
    assert errors == []
