"""Open311 GeoReport v2 through the ``georeport`` client (PyPI) against a live server, and
plain form POSTs with ``requests``."""

from __future__ import annotations

import datetime as dt

import pytest
import requests
from georeport import GeoReport

from tests.fixtures.accounts import make_account
from tests.fixtures.incidents import CATEGORIES, ll
from tests.fixtures.web import LiveServer


@pytest.fixture
def server(district, make_app):
    s = LiveServer(make_app(district.engine, PUBLIC_URL="https://311.example.cn"))
    # Open311's api_key is an API token: a hotline system's account
    s.api_key = make_account(district.engine, "public")[1]
    yield s
    s.stop()


def _post(server, **form):
    return requests.post(f"{server.url}/open311/v2/requests.json", data=form, timeout=10)


def _new(server, x: float, y: float, **extra) -> str:
    lon, lat = ll(x, y)
    r = _post(server, api_key=server.api_key, service_code="road", lat=lat, long=lon, **extra)
    assert r.status_code == 201, r.text
    body = r.json()
    assert len(body) == 1 and body[0]["token"].startswith("o311-")
    return body[0]["service_request_id"]


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_reads_through_georeport_client(server, district, fmt: str) -> None:
    rid = _new(server, 200, 170, description="路面坑洞", **{"attribute[severity]": "major"})
    other = _new(server, 700, 100)
    client = GeoReport(f"{server.url}/open311/v2", output_format=fmt)

    services = client.get_service_list()
    assert {s["service_code"] for s in services} == {c[0] for c in CATEGORIES}
    road = next(s for s in services if s["service_code"] == "road")
    assert road["service_name"] == "道路破损"
    definition = client.get_service_definition("road")
    attrs = definition["attributes"]
    if fmt == "xml":
        attrs = attrs["attribute"]
    codes = {a["code"] for a in attrs}
    assert codes == {"severity", "address_detail"}

    one = client.get_service_request(rid)
    assert one["service_request_id"] == rid and one["service_code"] == "road"
    assert one["status"] == "open" and one["description"] == "路面坑洞"
    lon, lat = ll(200, 170)
    assert float(one["lat"]) == pytest.approx(lat, abs=1e-6)
    assert float(one["long"]) == pytest.approx(lon, abs=1e-6)
    assert "G-A1" in one["agency_responsible"]

    both = client.get_service_requests(service_request_id=f"{rid},{other}")
    got = both if isinstance(both, list) else [both]
    assert {r["service_request_id"] for r in got} == {rid, other}
    today = dt.datetime.now(dt.UTC)
    ranged = client.get_service_requests(
        service_code="road",
        start_date=(today - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        end_date=(today + dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        status="open",
    )
    ranged = ranged if isinstance(ranged, list) else [ranged]
    assert {r["service_request_id"] for r in ranged} == {rid, other}


def test_status_filter_and_severity_attribute(server, district) -> None:
    from mapsvc.db import session_scope
    from mapsvc.services import incidents as svc

    rid = _new(server, 200, 170, **{"attribute[severity]": "grave"})
    open_id = _new(server, 100, 250)
    with session_scope(district.engine) as s:
        assert svc.get_incident(s, rid).severity == "grave"
        for st in ("dispatched", "in_hand", "verified", "closed"):
            svc.transition(s, rid, st, actor="t")
    client = GeoReport(f"{server.url}/open311/v2")
    closed = client.get_service_requests(status="closed")
    assert [r["service_request_id"] for r in closed] == [rid]
    assert closed[0]["status_notes"] == "closed"
    opened = client.get_service_requests(status="open")
    assert [r["service_request_id"] for r in opened] == [open_id]


def test_tokens_discovery_and_errors(server) -> None:
    lon, lat = ll(200, 170)
    r = _post(server, api_key=server.api_key, service_code="noise", lat=lat, long=lon)
    token = r.json()[0]["token"]
    t = requests.get(f"{server.url}/open311/v2/tokens/{token}.json", timeout=10).json()
    assert t == [{"service_request_id": r.json()[0]["service_request_id"], "token": token}]
    x = requests.get(f"{server.url}/open311/v2/tokens/{token}.xml", timeout=10)
    assert x.headers["content-type"].startswith("text/xml") and token in x.text
    d = requests.get(f"{server.url}/open311/v2/discovery.json", timeout=10).json()
    # built from the configured public address, not from the Host the client sent
    assert d["endpoints"][0]["url"] == "https://311.example.cn/open311/v2"
    assert "<discovery>" in requests.get(f"{server.url}/open311/v2/discovery.xml", timeout=10).text
    # errors in the spec's shape, nothing created
    bad = _post(server, api_key="wrong", service_code="noise", lat=lat, long=lon)
    assert bad.status_code == 403 and bad.json()[0]["code"] == 403
    bad = _post(server, service_code="noise", lat=lat, long=lon)
    assert bad.status_code == 403
    bad = _post(server, api_key=server.api_key, service_code="ufo", lat=lat, long=lon)
    assert bad.status_code == 404 and "ufo" in bad.json()[0]["description"]
    bad = _post(server, api_key=server.api_key, service_code="noise", lat="north", long=lon)
    assert bad.status_code == 400 and "lat" in bad.json()[0]["description"]
    bad = _post(server, api_key=server.api_key, service_code="noise", address_string="某街1号")
    assert bad.status_code == 400
    x = requests.get(f"{server.url}/open311/v2/requests/999999.xml", timeout=10)
    assert x.status_code == 404 and "<errors><error><code>404</code>" in x.text
    assert requests.get(f"{server.url}/open311/v2/services/ufo.json", timeout=10).status_code == 404
    assert requests.get(f"{server.url}/open311/v2/tokens/nope.json", timeout=10).status_code == 404
    huge = "99999999999999999999"  # beyond bigint: an unknown or malformed id, not a 500
    x = requests.get(f"{server.url}/open311/v2/requests/{huge}.json", timeout=10)
    assert x.status_code == 404
    r = requests.get(
        f"{server.url}/open311/v2/requests.json?service_request_id=1,{huge}", timeout=10
    )
    assert r.status_code == 400 and "service_request_id" in r.json()[0]["description"]
    r = requests.get(f"{server.url}/open311/v2/requests.json?status=lost", timeout=10)
    assert r.status_code == 400 and r.json()[0]["code"] == 400
    listed = requests.get(f"{server.url}/open311/v2/requests.json", timeout=10).json()
    assert len(listed) == 1


def test_demo_live_server_through_georeport(live_server, demo_engine) -> None:
    import sqlalchemy as sa

    client = GeoReport(f"{live_server.url}/open311/v2")
    with demo_engine.connect() as c:
        codes = set(c.scalars(sa.text("SELECT code FROM incident_category")))
        latest = c.execute(
            sa.text("SELECT id, category FROM incident ORDER BY reported_at DESC, id DESC LIMIT 1")
        ).one()
    assert {s["service_code"] for s in client.get_service_list()} == codes
    recent = client.get_service_requests()
    assert 0 < len(recent) <= 1000
    assert recent[0]["service_request_id"] == str(latest.id)
    one = client.get_service_request(str(latest.id))
    assert one["service_code"] == latest.category


@pytest.mark.parametrize(
    ("locale", "names", "default_text"),
    [
        ("zh_CN", ["小微", "一般", "较大", "重大"], "事件等级，默认 一般"),
        ("zh_Hans_CN", ["小微", "一般", "较大", "重大"], "事件等级，默认 一般"),
        ("en", ["minor", "ordinary", "major", "grave"], "Severity class; default ordinary"),
    ],
)
def test_severity_attribute_names_the_classes_as_the_pages_do(
    district,
    locale: str,
    names: list[str],
    default_text: str,
) -> None:
    """The class names of the service definition are the catalogue's (mapsvc.core.labels),
    the very text the heatmap legend and the incident list show; English keeps the lower
    case Open311 clients have read."""
    from sqlalchemy.orm import Session

    from layers.heatmap import code_label, labels
    from mapsvc.services import open311

    with Session(district.engine) as s:
        attrs = open311.service_definition(s, "road", locale)["attributes"]
    severity = next(a for a in attrs if a["code"] == "severity")
    assert [v["key"] for v in severity["values"]] == ["minor", "ordinary", "major", "grave"]
    assert [v["name"] for v in severity["values"]] == names
    assert severity["datatype_description"] == default_text
    assert severity["description"] == ("Severity class" if locale == "en" else "事件等级")
    shown = [code_label(k, labels(locale)) for k in ("minor", "ordinary", "major", "grave")]
    assert [n.lower() for n in shown] == names
