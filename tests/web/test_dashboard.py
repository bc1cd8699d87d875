"""JSON endpoints, exports and the error answers of the staffing views (Flask test client)."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from openpyxl import load_workbook

from mapsvc.config import DEFAULTS
from tests.fixtures.staffing import COMMUNITIES, DISTRICT, GRIDS, INCIDENTS, TODAY, add_incidents
from tests.services.test_density import expected_counts, geodesic_km2


def test_dashboard_json_figures(staffing_db, staffing_client) -> None:
    add_incidents(staffing_db.engine)
    data = staffing_client.get("/api/dashboard").get_json()
    d = data["district"]
    km2 = geodesic_km2(DISTRICT[2])
    staff = expected_counts("district", TODAY)[DISTRICT[0]]["staff"]
    assert d["area_km2"] == pytest.approx(km2, abs=0.005)
    assert d["staff"] == staff
    assert d["staff_per_km2"] == pytest.approx(staff / km2, abs=0.05)
    # 21 people for 35,000 residents (the communities' populations): 6.0 per 10,000
    assert (staff, d["population"]) == (21, sum(c[4] for c in COMMUNITIES))
    assert d["staff_per_10k"] == 6.0
    assert d["grids"] == len(GRIDS)
    cov = staffing_client.get("/api/coverage").get_json()["summary"]
    assert d["coverage_pct"] == cov["grids_headed_pct"]
    assert d["population"] == sum(c["population"] for c in data["communities"])
    # the incident service's figures reach the dashboard as they are
    assert data["sources"]["incidents"] == "mapsvc.services.incidents.district_figures"
    assert d["open_incidents"] == data["incidents"]["open"] == sum(n - c for _, n, c in INCIDENTS)
    assert sum(data["charts"]["incidents_by_month"]["values"]) == sum(n for _, n, _ in INCIDENTS)
    chart = data["charts"]["staff_per_km2_by_community"]
    assert chart["values"] == sorted(chart["values"], reverse=True)
    patrol = staffing_client.get("/api/dashboard/patrol").get_json()
    assert patrol["source"] == "mapsvc.services.patrol.district_compliance"
    assert patrol["patrol_compliance_pct"] == d["patrol_compliance_pct"]
    # three segments have a chief today and nobody walked: the patrol service says 0 %
    assert patrol["patrol"]["segments_assigned"] == 3 and d["patrol_compliance_pct"] == 0.0
    for part in ("district", "subdistricts", "communities", "charts"):
        r = staffing_client.get(f"/api/dashboard/{part}")
        assert r.status_code == 200 and r.get_json()[part] == data[part]
    bad = staffing_client.get("/api/dashboard/everything")
    assert bad.status_code == 400 and "everything" in bad.get_json()["error"]


def test_dashboard_past_date(staffing_db, staffing_client) -> None:
    add_incidents(staffing_db.engine)
    day = TODAY - dt.timedelta(days=2)
    past = staffing_client.get(f"/api/dashboard?date={day}").get_json()
    now = staffing_client.get("/api/dashboard").get_json()
    assert past["date"] == day.isoformat()
    # on that day the ended head and the ended chief were still in post
    assert past["district"]["coverage_pct"] > now["district"]["coverage_pct"]
    assert past["district"]["staff"] == expected_counts("district", day)[DISTRICT[0]]["staff"]
    # incident figures follow the date too: a year ago none had been reported yet
    year_ago = staffing_client.get(f"/api/dashboard?date={TODAY.replace(year=TODAY.year - 1)}")
    old = year_ago.get_json()
    assert now["district"]["open_incidents"] == sum(n - c for _, n, c in INCIDENTS)
    assert old["incidents"] is None and old["district"]["open_incidents"] is None
    assert sum(old["charts"]["incidents_by_month"]["values"]) == 0


def test_density_endpoint(staffing_client) -> None:
    r = staffing_client.get("/api/density?level=grid&group=grid_staff&scheme=quantiles&k=3")
    data = r.get_json()
    assert r.status_code == 200
    assert len(data["features"]) == len(GRIDS)
    assert data["classification"]["scheme"] == "quantiles"
    assert data["value_key"] == "grid_staff_per_km2"
    for f in data["features"]:
        p = f["properties"]
        assert p["value"] == p["grid_staff_per_km2"]
        assert 0 <= p["class"] < data["classification"]["k"]
    # bbox: the first community's box touches only its grids and the neighbour's edge
    r = staffing_client.get("/api/density?level=grid&bbox=118.571,24.901,118.579,24.929")
    assert {f["properties"]["code"][:12] for f in r.get_json()["features"]} == {"350502001001"}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("/api/density?level=grid&group=dispatched", "group"),
        ("/api/density?level=planet", "level"),
        ("/api/density?scheme=magic", "scheme"),
        ("/api/density?k=many", "k"),
        ("/api/density?bbox=1,2,3", None),
        ("/api/coverage?date=2026-13-40", "date"),
        ("/api/quota?a=lots", "a"),
        ("/api/quota?group=robots", "group"),
    ],
)
def test_bad_parameters_are_named(staffing_client, query: str, field: str | None) -> None:
    r = staffing_client.get(query)
    assert r.status_code == 400
    body = r.get_json()
    if field:
        assert body["field"] == field
        assert field in body["error"]
    else:
        assert "bbox" in body["error"]


def test_coverage_features_and_bbox(staffing_client) -> None:
    grids = staffing_client.get("/api/coverage/grids").get_json()
    assert len(grids["features"]) == len(GRIDS)
    statuses = {f["properties"]["code"]: f["properties"]["status"] for f in grids["features"]}
    assert statuses["350502002001-02"] == "no_head"
    segs = staffing_client.get("/api/coverage/segments?bbox=118.571,24.901,118.579,24.909")
    assert [f["properties"]["code"] for f in segs.get_json()["features"]] == ["S1"]


def test_quota_json_csv_xlsx(staffing_client) -> None:
    default = staffing_client.get("/api/quota").get_json()
    assert default["coefficients"] == {
        k: float(v) for k, v in DEFAULTS["QUOTA_COEFFICIENTS"].items()
    }
    tried = staffing_client.get("/api/quota?a=20&b=0&c=0").get_json()
    for r in tried["rows"]:
        assert r["required_exact"] == pytest.approx(20 * r["population"] / 10000, abs=0.006)
    r = staffing_client.get("/api/quota.csv?a=20&b=0&c=0&lang=en")
    assert r.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(r.data.decode("utf-8-sig"))))
    assert [int(x["Required staff"]) for x in rows] == [x["required"] for x in tried["rows"]]
    r = staffing_client.get("/api/quota.xlsx?lang=zh_CN")
    assert "attachment" in r.headers["Content-Disposition"]
    ws = load_workbook(io.BytesIO(r.data)).active
    values = list(ws.iter_rows(values_only=True))
    assert values[0][0] == "社区代码"
    assert [v[1] for v in values[1 : 1 + len(default["rows"])]] == [
        x["name"] for x in default["rows"]
    ]


def test_pages_render_and_escape(staffing_client) -> None:
    for url in ("/dashboard", "/coverage", "/density", "/quota", "/density?level=grid"):
        r = staffing_client.get(url)
        assert r.status_code == 200, url
        html = r.data.decode()
        assert "三巷</script>" not in html and "二社区<b>" not in html, url
        assert "cdn" not in html.lower(), url
    html = staffing_client.get("/dashboard").data.decode()
    assert "网格化管理概览" in html and "/static/vendor/chart.js/chart.umd.js" in html
    assert "二社区&lt;b&gt;" in html
    en = staffing_client.get("/dashboard?lang=en").data.decode()
    assert "Grid management at a glance" in en
    # community-level staff asked per grid in the form: the page falls back to communities
    r = staffing_client.get("/density?level=grid&group=community_workers&lang=en")
    assert r.status_code == 200 and b"shown by community" in r.data
    # a page for a bad parameter answers 400 with the parameter named
    r = staffing_client.get("/density?scheme=magic")
    assert r.status_code == 400 and b"scheme" in r.data


def test_pages_on_an_empty_database(fresh_engine, make_app) -> None:
    client = make_app(fresh_engine).test_client()
    for url in ("/dashboard", "/coverage", "/density", "/density?level=grid", "/quota"):
        assert client.get(url).status_code == 200, url
    d = client.get("/api/dashboard").get_json()["district"]
    assert d["grids"] == 0 and d["staff"] == 0 and d["coverage_pct"] is None
    assert client.get("/api/quota.xlsx").status_code == 200
