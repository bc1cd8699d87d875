"""Security headers on every response, the policy enforced in Chromium, and absolute URLs
from configuration rather than the request's Host header."""

from __future__ import annotations

import pytest

from tests.fixtures.web import LiveServer


def _csp(response) -> dict[str, list[str]]:
    policy = response.headers["Content-Security-Policy"]
    directives = {}
    for part in policy.split(";"):
        name, *values = part.split()
        assert name not in directives, f"{name} twice in {policy}"
        directives[name] = values
    return directives


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/dashboard",
        "/api/grids",
        "/api/dashboard",
        "/healthz",
        "/open311/v2/discovery.xml",
        "/static/vendor.json",
        "/no/such/page",
        "/api/grids?bbox=nonsense",
    ],
)
def test_every_response_carries_the_headers(client, path: str) -> None:
    r = client.get(path)
    assert r.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    csp = _csp(r)
    assert csp["default-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'self'"]
    assert csp["object-src"] == ["'none'"]
    # only the service itself (and inline code / data: images folium needs), nothing else
    allowed = {"'self'", "'unsafe-inline'", "'none'", "data:", "blob:"}
    assert {v for values in csp.values() for v in values} <= allowed, csp
    assert "'unsafe-eval'" not in r.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    ("basemap", "key", "origins"),
    [
        ("osm", "", ["https://tile.openstreetmap.org"]),
        ("tianditu", "abc", ["https://*.tianditu.gov.cn"]),
        ("amap", "", ["https://*.is.autonavi.com"]),
    ],
)
def test_a_configured_base_map_may_load_its_tiles_and_nothing_else(
    fresh_engine, make_app, basemap: str, key: str, origins: list[str]
) -> None:
    app = make_app(fresh_engine, BASEMAP=basemap, TIANDITU_KEY=key, SKIP_SCHEMA=True)
    csp = _csp(app.test_client().get("/healthz"))
    assert csp["img-src"] == ["'self'", "data:", "blob:", *origins]
    assert csp["script-src"] == ["'self'", "'unsafe-inline'"]
    assert csp["connect-src"] == ["'self'"]


def test_discovery_urls_come_from_public_url_not_the_host_header(fresh_engine, make_app) -> None:
    public = "https://grid.example.gov.cn/map"
    app = make_app(fresh_engine, PUBLIC_URL=public + "/", SKIP_SCHEMA=True)
    client = app.test_client()
    for host in ("127.0.0.1:5000", "attacker.example"):
        d = client.get("/open311/v2/discovery.json", headers={"Host": host}).get_json()
        assert d["endpoints"][0]["url"] == f"{public}/open311/v2"
    xml = client.get("/open311/v2/discovery.xml", headers={"Host": "attacker.example"}).text
    assert f"{public}/open311/v2" in xml and "attacker" not in xml


def test_without_public_url_the_configured_address_is_used(fresh_engine, make_app) -> None:
    app = make_app(fresh_engine, HOST="10.1.2.3", PORT=8123, SKIP_SCHEMA=True)
    d = (
        app.test_client()
        .get("/open311/v2/discovery.json", headers={"Host": "attacker.example"})
        .get_json()
    )
    assert d["endpoints"][0]["url"] == "http://10.1.2.3:8123/open311/v2"


@pytest.mark.browser
@pytest.mark.parametrize("path", ["/", "/dashboard", "/incidents/map", "/coverage"])
def test_chromium_enforces_the_policy_and_the_pages_still_work(live_server, page, path) -> None:
    """The pages draw without a single CSP report, and the policy is in force: a fetch to
    another origin (another port on this machine) is refused by the browser itself."""
    violations = []
    page.expose_function("reportViolation", lambda d: violations.append(d))
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation',"
        " e => window.reportViolation(e.violatedDirective + ' ' + e.blockedURI));"
    )
    response = page.goto(live_server.url + path, wait_until="networkidle")
    assert response.status == 200
    assert "Content-Security-Policy" in response.headers or (
        "content-security-policy" in response.headers
    )
    assert violations == [] and page.errors == [], (violations, page.errors)

    other = LiveServer(live_server.server.app)  # same app, another origin
    try:
        refused = page.evaluate(
            "url => fetch(url).then(() => 'fetched', e => 'refused: ' + e.message)",
            f"http://localhost:{other.port}/healthz",
        )
    finally:
        other.stop()
    assert refused.startswith("refused"), refused
    page.wait_for_timeout(100)
    assert any(v.startswith("connect-src") for v in violations), violations
