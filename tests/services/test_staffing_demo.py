"""The staffing figures on the real-district demo (read only)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from pyproj import Geod
from shapely import wkb
from sqlalchemy.orm import Session

from mapsvc.config import Settings
from mapsvc.services.coverage import coverage_report
from mapsvc.services.density import density
from tests.fixtures.web import wait_until

GEOD = Geod(ellps="WGS84")


def _areas(engine, table: str) -> dict[str, float]:
    """Geodesic km² of every polygon of ``table``, computed here with pyproj."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT code, ST_AsBinary(geom) FROM {table}")).all()
    return {c: abs(GEOD.geometry_area_perimeter(wkb.loads(bytes(g)))[0]) / 1e6 for c, g in rows}


@pytest.mark.parametrize("level", ["community", "subdistrict", "district"])
def test_demo_density_uses_geodesic_areas(demo_engine, level: str) -> None:
    areas = _areas(demo_engine, level)
    with Session(demo_engine) as s:
        rows = density(s, level, Settings().today())
    assert len(rows) == len(areas) > 0
    for r in rows:
        km2 = areas[r["code"]]
        assert r["area_km2"] == pytest.approx(km2, rel=1e-5)
        if r["staff"]:
            assert r["staff_per_km2"] == pytest.approx(r["staff"] / km2, rel=1e-3, abs=1e-3)


def test_demo_coverage_is_consistent(demo_engine) -> None:
    with Session(demo_engine) as s:
        rep = coverage_report(s, Settings().today())
        grids = s.scalar(sa.text("SELECT count(*) FROM grid"))
        segments = s.scalar(sa.text("SELECT count(*) FROM alley_segment"))
    sm = rep["summary"]
    assert sm["grids"] == grids and sm["segments"] == segments
    assert sm["grids_no_head"] + sm["grids_understaffed"] + sm["grids_staffed"] == grids
    assert sum(c["grids"] for c in rep["communities"]) == grids
    assert sum(c["grids"] for c in rep["subdistricts"]) == grids
    # the demo leaves a few segments without a chief on purpose
    assert 0 < sm["segments_no_chief"] == rep["uncovered"]["segments_count"] < segments


def test_demo_dashboard_in_browser(live_server, page) -> None:
    page.goto(f"{live_server.url}/dashboard?lang=zh_CN")
    wait_until(page, "window.dashboardReady === true")
    assert page.errors == []
    assert page.locator("#table-communities tbody tr").count() >= 50
    for cid in ("chart-density", "chart-incidents", "chart-groups"):
        painted = page.evaluate(
            """(id) => { const c = document.getElementById(id);
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }""",
            cid,
        )
        assert painted > 5000, cid
    for url in ("/coverage", "/density?level=grid", "/quota"):
        page.goto(f"{live_server.url}{url}")
        page.wait_for_selector(".leaflet-overlay-pane path")
        assert page.locator(".leaflet-overlay-pane path").count() > 50, url
    assert page.errors == []
