"""The dashboard and the coverage / density / quota maps in headless Chromium (offline)."""

from __future__ import annotations

import json
import urllib.request

from tests.fixtures.accounts import ADMIN_TOKEN
from tests.fixtures.staffing import CENTRES, COMMUNITIES, GRIDS, SEGMENTS
from tests.fixtures.web import wait_until

#: JS: how many pixels of a canvas are not fully transparent (a drawn chart has many)
PAINTED = """(id) => {
  const c = document.getElementById(id);
  if (!c || !c.width || !c.height) return 0;
  const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
  return n;
}"""


def _json(url: str) -> dict:
    """The JSON at ``url`` of a live server, read as the test admin (API token)."""
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    with urllib.request.urlopen(req) as r:  # noqa: S310 - the local live server
        return json.loads(r.read())


def test_dashboard_draws_charts_and_sorts(staffing_live, page) -> None:
    base = staffing_live.url
    page.goto(f"{base}/dashboard?lang=zh_CN")
    wait_until(page, "window.dashboardReady === true")
    assert page.errors == []
    assert "网格化管理概览" in page.inner_text("h1")
    # both charts are canvases with a good share of painted pixels
    for cid in ("chart-density", "chart-incidents", "chart-groups"):
        box = page.locator(f"#{cid}").bounding_box()
        assert box and box["width"] > 100 and box["height"] > 100, cid
        assert page.evaluate(PAINTED, cid) > 0.02 * box["width"] * box["height"], cid
    assert page.evaluate("window.dashboardCharts.length") == 3
    # headline figures are the JSON ones
    data = _json(f"{base}/api/dashboard")
    d = data["district"]
    assert page.inner_text('[data-kpi="staff"]') == f"{d['staff']:,}"
    assert page.inner_text('[data-kpi="grids"]') == str(d["grids"])
    assert page.inner_text('[data-kpi="open_incidents"]') == f"{d['open_incidents']:,}"
    # the patrol figure is fetched after the page and shows the service's value
    wait_until(page, "window.patrolReady === true")
    pct = d["patrol_compliance_pct"]
    assert page.inner_text('[data-kpi="patrol_compliance_pct"]') == (
        "—" if pct is None else f"{pct:.1f}%"
    )
    # sorting the community table by staff per km² (descending on second click)
    header = page.locator("#table-communities th", has_text="每平方公里人员")
    header.click()
    header.click()
    names = page.locator("#table-communities tbody tr td:first-child").all_inner_texts()
    assert names == data["charts"]["staff_per_km2_by_community"]["labels"]
    assert page.errors == []


def test_dashboard_in_english(staffing_live, page) -> None:
    page.goto(f"{staffing_live.url}/dashboard?lang=en")
    wait_until(page, "window.dashboardReady === true")
    assert "Grid management at a glance" in page.inner_text("h1")
    assert page.errors == []


def test_coverage_map(staffing_live, page) -> None:
    page.goto(f"{staffing_live.url}/coverage?lang=zh_CN")
    page.wait_for_selector(".leaflet-overlay-pane path")
    assert page.locator(".leaflet-overlay-pane path").count() == len(GRIDS) + len(SEGMENTS)
    rep = _json(f"{staffing_live.url}/api/coverage")
    assert page.inner_text(".count-grids") == str(rep["uncovered"]["grids_count"])
    assert page.inner_text(".count-segments") == str(rep["uncovered"]["segments_count"])
    assert page.locator(".mapsvc-legend").count() == 1
    # a grid's tooltip shows its head (escaped data text, rendered as text)
    page.locator(".leaflet-overlay-pane path").first.hover()
    page.wait_for_selector(".leaflet-tooltip")
    assert "网格长" in page.inner_text(".leaflet-tooltip")
    assert page.errors == []


def test_density_map_classes_and_tooltips(staffing_live, page) -> None:
    url = f"{staffing_live.url}/density?level=grid&group=grid_staff&scheme=equal_interval&k=3"
    page.goto(url + "&lang=zh_CN")
    page.wait_for_selector(".leaflet-overlay-pane path")
    assert page.locator(".leaflet-overlay-pane path").count() == len(GRIDS)
    legend = page.inner_text(".mapsvc-legend")
    assert "等间距" in legend and legend.count("–") == 3
    fills = set(
        page.eval_on_selector_all(
            ".leaflet-overlay-pane path", "els => els.map(e => e.getAttribute('fill'))"
        )
    )
    assert len(fills) >= 2  # the grids fall into different classes
    page.locator(".leaflet-overlay-pane path").nth(2).hover()
    page.wait_for_selector(".leaflet-tooltip")
    assert "人/平方公里" in page.inner_text(".leaflet-tooltip")
    assert page.errors == []


def test_quota_map(staffing_live, page) -> None:
    page.goto(f"{staffing_live.url}/quota?lang=zh_CN")
    page.wait_for_selector(".leaflet-overlay-pane path")
    assert page.locator(".leaflet-overlay-pane path").count() == 3
    assert "缺编" in page.inner_text(".mapsvc-legend")
    assert page.errors == []


def test_density_map_of_service_centres(staffing_live, page) -> None:
    page.goto(f"{staffing_live.url}/density?level=community&group=centres&lang=zh_CN")
    page.wait_for_selector(".leaflet-overlay-pane path")
    # three community polygons and one circle per service centre
    assert page.locator(".leaflet-overlay-pane path").count() == len(COMMUNITIES) + len(CENTRES)
    assert "党群服务中心" in page.inner_text(".mapsvc-legend")
    assert page.errors == []


#: a name that is markup and a Jinja expression: it must reach the page as text, unevaluated
HOSTILE = '<img src=x onerror="window.__pwned=1">{{ 7*7 }}社区'


def test_map_panels_show_hostile_names_as_text(staffing_db, make_app, page) -> None:
    import sqlalchemy as sa

    from tests.fixtures.web import LiveServer

    with staffing_db.engine.begin() as con:
        con.execute(
            sa.text("UPDATE community SET name = :n WHERE code = '350502001002'"), {"n": HOSTILE}
        )
        con.execute(
            sa.text("UPDATE subdistrict SET name = :n WHERE code = '350502001'"), {"n": HOSTILE}
        )
        con.execute(sa.text("UPDATE alley_segment SET name = :n WHERE code = 'S2'"), {"n": HOSTILE})
    server = LiveServer(make_app(staffing_db.engine))
    try:
        # coverage: uncovered grids and segments (community, segment names), subdistrict rollup
        page.goto(f"{server.url}/coverage?lang=zh_CN")
        page.wait_for_selector(".leaflet-overlay-pane path")
        panel = page.inner_text(".staffing-panel")
        assert f"{HOSTILE} · {HOSTILE}" in panel  # the segment without a chief, in its community
        assert f"350502001002-02 {HOSTILE}: " in panel
        assert page.locator(".staffing-panel table.rollup td", has_text=HOSTILE).count() == 1
        # density: the five densest areas by name; quota: one row per community
        page.goto(f"{server.url}/density?level=community&group=all&lang=zh_CN")
        page.wait_for_selector(".leaflet-overlay-pane path")
        assert page.locator(".staffing-panel ol li", has_text=HOSTILE).count() == 1
        page.goto(f"{server.url}/quota?lang=zh_CN")
        page.wait_for_selector(".leaflet-overlay-pane path")
        assert page.locator(".staffing-panel td", has_text=HOSTILE).count() == 1
        assert page.locator(".staffing-panel img").count() == 0
        assert page.evaluate("window.__pwned") is None
        assert page.errors == []
    finally:
        server.stop()
