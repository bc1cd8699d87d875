"""The authorization matrix: every endpoint of the URL map x every role x anonymous.

:data:`MATRIX` below is the one table of who may call what, written out here by hand (not
read from ``mapsvc.web.auth.POLICY``), so a change to the policy shows up as a failing cell.
Each request is made over HTTP on a small district; writes send a body the view rejects
after the guard (an empty object), so nothing is written and the guard alone is seen. An
endpoint of the app without a row here (or in the policy table) fails the test.
"""

from __future__ import annotations

import re

import pytest
from flask import Flask

from mapsvc.models import ACCOUNT_ROLES

ROLES = ACCOUNT_ROLES
ANON = "anonymous"
EVERYONE = frozenset({ANON, *ROLES})
LOGGED_IN = frozenset(ROLES)
READERS = frozenset(
    {"admin", "planner", "leader", "dispatcher", "chief", "grid_head", "grid_member"}
)
REPORTERS = frozenset({"admin", "dispatcher", "chief", "grid_head", "grid_member", "steward"})
HANDLERS = frozenset({"admin", "dispatcher", "chief", "grid_head", "grid_member"})
RATERS = frozenset({"admin", "dispatcher"})
WALKERS = frozenset({"admin", "chief", "grid_head", "grid_member", "steward"})
PLANNERS = frozenset({"admin", "planner"})

#: endpoint -> who may call it
MATRIX: dict[str, frozenset[str]] = {
    "static": EVERYONE,
    "pages.index": EVERYONE,
    "api.district": EVERYONE,
    "api.communities": EVERYONE,
    "api.grids": EVERYONE,
    "api.segments": EVERYONE,
    "health.healthz": EVERYONE,
    "open311.discovery": EVERYONE,
    "open311.services": EVERYONE,
    "open311.service_definition": EVERYONE,
    "open311.list_requests": EVERYONE,
    "open311.get_request": EVERYONE,
    "open311.token": EVERYONE,
    "open311.create_request": EVERYONE,
    "auth.login": EVERYONE,
    "auth.logout": EVERYONE,
    "auth.account": LOGGED_IN,
    "dashboard.api_coverage": READERS,
    "dashboard.api_coverage_features": READERS,
    "dashboard.api_dashboard": READERS,
    "dashboard.api_dashboard_part": READERS,
    "dashboard.api_dashboard_patrol": READERS,
    "dashboard.api_density": READERS,
    "dashboard.api_quota": READERS,
    "dashboard.api_quota_csv": READERS,
    "dashboard.api_quota_xlsx": READERS,
    "dashboard.coverage_page": READERS,
    "dashboard.dashboard_page": READERS,
    "dashboard.density_page": READERS,
    "dashboard.quota_page": READERS,
    "incidents.choropleth_api": READERS,
    "incidents.choropleth_page": READERS,
    "incidents.get_api": READERS,
    "incidents.item_page": READERS,
    "incidents.heatmap_api": READERS,
    "incidents.heatmap_page": READERS,
    "incidents.list_api": READERS,
    "incidents.list_csv": READERS,
    "incidents.list_page": READERS,
    "incidents.overdue_api": READERS,
    "incidents.stats_api": READERS,
    "incidents.to_confirm_api": READERS,
    "patrol.chiefs_api": READERS,
    "patrol.compliance_api": READERS,
    "patrol.grids_api": READERS,
    "patrol.patrol_page": READERS,
    "patrol.my_page": READERS,
    "patrol.route_api": READERS,
    "patrol.route_gpx": READERS,
    "patrol.routes_api": READERS,
    "patrol.segment_grids_api": READERS,
    "patrol.tracks_api": READERS,
    "patrol.week_api": READERS,
    "incidents.create_api": REPORTERS,
    "incidents.transition_api": HANDLERS,
    "incidents.transition_form": HANDLERS,
    "incidents.patch_api": HANDLERS,
    "incidents.rating_api": RATERS,
    "patrol.upload_track_api": WALKERS,
    "patrol.visit_api": WALKERS,
    "patrol.segment_chief_api": PLANNERS,
    "patrol.segments_assign_csv": PLANNERS,
    "admin.audit_page": frozenset({"admin"}),
    "roster.list_api": READERS,
    "roster.add_api": PLANNERS,
    "roster.import_api": PLANNERS,
    "roster.end_api": PLANNERS,
    "plans.plans_page": READERS,
    "plans.plan_page": READERS,
    "plans.list_api": READERS,
    "plans.plan_api": READERS,
    "plans.validate_api": READERS,
    "plans.compare_api": READERS,
    "plans.export_api": READERS,
    "plans.create_api": PLANNERS,
    "plans.auto_api": PLANNERS,
    "plans.update_grid_api": PLANNERS,
    "plans.split_api": PLANNERS,
    "plans.merge_api": PLANNERS,
    "plans.reassign_api": PLANNERS,
    "plans.import_api": PLANNERS,
    "plans.publish_api": PLANNERS,
    "plans.discard_api": PLANNERS,
    "admin.users_page": frozenset({"admin"}),
    "admin.create_user": frozenset({"admin"}),
    "admin.update_user": frozenset({"admin"}),
    "admin.set_active": frozenset({"admin"}),
    "admin.reset_password": frozenset({"admin"}),
    "admin.create_token": frozenset({"admin"}),
    "admin.revoke_token": frozenset({"admin"}),
    "tiles.tile": EVERYONE,
    "tiles.tilejson": EVERYONE,
    "ogc.landing_page": READERS,
    "ogc.openapi": READERS,
    "ogc.conformance": READERS,
    "ogc.collections": READERS,
    "ogc.queryables": READERS,
    "ogc.items": READERS,
    "ogc.item": READERS,
    "exports.download": READERS,
    "exports.index": READERS,
    "printing.print_view": READERS,
    "screen.screen_page": READERS,
}

#: values for the URL variables of the rules
SAMPLES = {
    "incident_id": "1",
    "segment_id": 1,
    "kind": "grids",
    "part": "district",
    "fmt": "json",
    "code": "road",
    "request_id": "1",
    "token": "o311-none",
    "filename": "css/auth.css",
    "layer": "basemap",
    "z": "0",
    "x": "0",
    "y": "0",
    "collection_id": "grids",
    "item_id": "1",
    "layer_name": "grids",
    "username": "nobody-here",
    "token_id": "1",
    "plan_id": 1,
}


#: query arguments some endpoints get, so that the view answers without heavy work once the
#: guard let the request through (print: an unknown paper size is a 400 before Chromium)
QUERIES = {"printing.print_view": {"paper": "A9"}}


def _requests(app: Flask) -> list[tuple[str, str, str]]:
    """(endpoint, method, url) of one request per endpoint."""
    out = []
    with app.test_request_context():
        from flask import url_for

        for rule in app.url_map.iter_rules():
            methods = rule.methods - {"HEAD", "OPTIONS"}
            method = "GET" if "GET" in methods else sorted(methods)[0]
            args = {a: SAMPLES[a] for a in rule.arguments}
            url = url_for(rule.endpoint, **args, **QUERIES.get(rule.endpoint, {}))
            out.append((rule.endpoint, method, url))
    return sorted(out)


def refused_by_guard(resp) -> bool:
    """Whether the guard (not the view) refused: a 401 or 403 naming the permission, the
    redirect of a page to the login, or the refusal page."""
    if resp.status_code in (301, 302, 303):
        return re.search(r"/login\?next=", resp.headers.get("Location", "")) is not None
    if resp.status_code not in (401, 403):
        return False
    body = resp.get_json(silent=True)
    if isinstance(body, dict):
        return "permission" in body
    return 'id="refusal"' in resp.get_data(as_text=True)


@pytest.fixture(scope="module")
def matrix_clients(make_database, template_db):
    """An app on a small district and one client per role plus an anonymous one."""
    from mapsvc import create_app
    from mapsvc.db import make_engine
    from tests.fixtures.accounts import AccountClient, make_account
    from tests.fixtures.web import build_small_district

    engine = make_engine(make_database(template=template_db))
    build_small_district(engine)
    app = create_app(
        {"TESTING": True, "DATABASE_URL": engine.url.render_as_string(hide_password=False)}
    )
    app.test_client_class = AccountClient
    clients = {ANON: app.test_client(token=None)}
    for role in ROLES:
        clients[role] = app.test_client(token=make_account(engine, role)[1])
    yield app, clients
    engine.dispose()


def test_every_endpoint_has_a_row_here_and_in_the_policy(matrix_clients) -> None:
    from mapsvc.web.auth import POLICY

    app, _clients = matrix_clients
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert endpoints - set(MATRIX) == set(), "endpoints without a row in MATRIX"
    assert endpoints - set(POLICY) == set(), "endpoints without a row in auth.POLICY"
    assert set(MATRIX) - endpoints == set(), "rows for endpoints that no longer exist"


@pytest.mark.parametrize("who", [ANON, *ROLES])
def test_matrix(matrix_clients, who: str) -> None:
    app, clients = matrix_clients
    client = clients[who]
    wrong = []
    for endpoint, method, url in _requests(app):
        kwargs = {"json": {}} if method != "GET" else {}
        resp = client.open(url, method=method, **kwargs)
        allowed = who in MATRIX[endpoint]
        if resp.status_code >= 500 or refused_by_guard(resp) == allowed:
            wrong.append((endpoint, method, resp.status_code, "allow" if allowed else "deny"))
    assert wrong == []


def test_an_endpoint_without_a_row_is_closed_to_everybody(make_app, fresh_engine) -> None:
    app = make_app(fresh_engine)
    app.add_url_rule("/api/new-thing", "new_thing", lambda: {"ok": True})
    r = app.test_client().get("/api/new-thing")  # the admin
    assert r.status_code == 403 and "no access rule" in r.get_json()["error"]
    assert app.test_client(token=None).get("/api/new-thing").status_code == 403
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert endpoints - set(MATRIX) == {"new_thing"}  # and the matrix test would fail


def test_pages_redirect_to_the_login_and_apis_answer_401(anon_client) -> None:
    r = anon_client.get("/incidents/list?state=open")
    assert r.status_code == 302
    assert r.headers["Location"] == "/login?next=/incidents/list?state%3Dopen"
    r = anon_client.get("/api/incidents")
    assert r.status_code == 401 and r.get_json()["permission"] == "read"
    assert "log in" in r.get_json()["error"]
    r = anon_client.post("/api/incidents", json={"category": "road"})
    assert r.status_code == 401


def test_lacking_the_permission_is_403_naming_it(client_as) -> None:
    leader = client_as("leader")
    r = leader.post("/api/incidents", json={})
    assert r.status_code == 403
    assert r.get_json()["permission"] == "incidents.create"
    assert leader.username in r.get_json()["error"]
    steward = client_as("steward")
    r = steward.get("/dashboard")
    assert r.status_code == 403 and 'id="refusal"' in r.get_data(as_text=True)
