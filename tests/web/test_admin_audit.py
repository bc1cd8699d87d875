"""/admin/audit and the web's half of the audit trail: each request's transactions name the
request's author (``g.actor``, else anonymous with the client's address), the page filters
and pages the trail, and shows hostile text as text at desk and phone sizes.

Expected rows are read from the tables and ``audit_log`` with plain SQL, never from the
page's own service.
"""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from flask import g

from mapsvc.core.actor import Actor
from mapsvc.db import session_scope
from mapsvc.services.audit import set_actor
from mapsvc.web.context import get_session
from tests.fixtures.audit import audit_rows, last_audit_id
from tests.fixtures.incidents import ll
from tests.fixtures.web import LiveServer

ENTRY_IDS = re.compile(r'<li class="entry act-\w+" data-id="(\d+)"')
HOSTILE_USER = '<img src=x onerror="window.__pwned=1">'
HOSTILE_NAME = "<script>document.title='pwned'</script>"


def _ids(html: str) -> list[int]:
    return [int(i) for i in ENTRY_IDS.findall(html)]


def _trail_ids(engine, where: str = "true", **params) -> list[int]:
    """Ids of the audit rows matching ``where``, newest first (plain SQL)."""
    with engine.connect() as c:
        return list(
            c.scalars(sa.text(f"SELECT id FROM audit_log WHERE {where} ORDER BY id DESC"), params)
        )


# --------------------------------------------------------------------------- the request's author


def test_each_transaction_of_a_request_names_its_author(fresh_engine, make_app) -> None:
    """``g.actor`` is recorded, the client address filled in when the actor has none, and a
    second transaction in the same request is named too (the settings are per transaction)."""
    app = make_app(fresh_engine)
    since = last_audit_id(fresh_engine)
    alice = Actor(user_id=3, username="alice", via="session")
    with app.test_request_context("/", environ_base={"REMOTE_ADDR": "10.9.8.7"}):
        g.actor = alice
        s = get_session()
        s.execute(sa.text("INSERT INTO staff (code, name, role) VALUES ('a', 'A', 'grid_head')"))
        s.commit()
        s.execute(sa.text("UPDATE staff SET phone = '1' WHERE code = 'a'"))
        s.commit()
    with app.test_request_context("/", environ_base={"REMOTE_ADDR": "192.0.2.1"}):
        s = get_session()  # nobody logged in
        s.execute(sa.text("DELETE FROM staff WHERE code = 'a'"))
        s.commit()
    rows = audit_rows(fresh_engine, since)
    assert [(r["action"], r["user_id"], r["username"], r["address"], r["via"]) for r in rows] == [
        ("insert", 3, "alice", "10.9.8.7", "session"),
        ("update", 3, "alice", "10.9.8.7", "session"),
        ("delete", None, None, "192.0.2.1", "anonymous"),
    ]
    assert rows[0]["transaction_id"] != rows[1]["transaction_id"]
    # outside a request (a script using the app's engine) the database user is named
    with app.app_context():
        from mapsvc.web.context import get_engine

        with get_engine().begin() as c:
            c.execute(
                sa.text("INSERT INTO staff (code, name, role) VALUES ('b', 'B', 'grid_head')")
            )
    assert audit_rows(fresh_engine, rows[-1]["id"])[0]["via"] == "sql"


def test_an_actor_known_after_the_transaction_began_is_recorded(fresh_engine, make_app) -> None:
    """The login code looks the account up (beginning the request's transaction) before it
    knows the actor: ``use_actor`` names it to that transaction too."""
    from mapsvc.web.context import use_actor

    app = make_app(fresh_engine)
    since = last_audit_id(fresh_engine)
    with app.test_request_context("/", environ_base={"REMOTE_ADDR": "10.0.0.5"}):
        s = get_session()
        s.execute(sa.text("SELECT 1"))  # the lookup: the transaction is anonymous so far
        use_actor(Actor(user_id=8, username="carol", via="session"))
        s.execute(sa.text("INSERT INTO staff (code, name, role) VALUES ('c', 'C', 'grid_head')"))
        s.commit()
        s.execute(sa.text("UPDATE staff SET phone = '2' WHERE code = 'c'"))
        s.commit()
    rows = audit_rows(fresh_engine, since)
    assert [(r["action"], r["user_id"], r["username"], r["address"], r["via"]) for r in rows] == [
        ("insert", 8, "carol", "10.0.0.5", "session"),
        ("update", 8, "carol", "10.0.0.5", "session"),
    ]


def test_an_http_write_is_recorded_with_the_requests_author(district, make_app, client_as) -> None:
    """A JSON write through the test client: the incident and its intake event are recorded
    with the account that logged in (a dispatcher's API token) and the client address."""
    app = make_app(district.engine)
    dispatcher = client_as("dispatcher", app)
    since = last_audit_id(district.engine)
    lon, lat = ll(200, 150)
    r = dispatcher.post("/api/incidents", json={"category": "road", "lon": lon, "lat": lat})
    assert r.status_code == 201, r.get_data(as_text=True)
    iid = r.get_json()["id"]
    rows = [
        x
        for x in audit_rows(district.engine, since)
        if x["table_name"] in ("incident", "incident_event")
    ]
    assert ("incident", str(iid), "insert") in [
        (x["table_name"], x["record_id"], x["action"]) for x in rows
    ]
    assert "incident_event" in {x["table_name"] for x in rows}
    with district.engine.connect() as c:
        uid = c.scalar(
            sa.text("SELECT id FROM app_user WHERE username = :u"), {"u": dispatcher.username}
        )
    assert {(x["user_id"], x["username"], x["via"], x["address"]) for x in rows} == {
        (uid, dispatcher.username, "token", "127.0.0.1")
    }


# --------------------------------------------------------------------------- the page


def test_the_page_filters_and_pages_the_trail(client, demo_engine) -> None:
    """On the demo's trail (its load is recorded): table, action, record, user, dates; the
    newest first; keyset pages; bad filters a named 400 on the page."""
    r = client.get("/admin/audit?lang=zh_CN")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert "审计日志" in html and 'href="/static/css/admin_audit.css"' in html
    newest = _trail_ids(demo_engine)
    assert _ids(html) == newest[:50]
    # a table and an action
    html = client.get("/admin/audit?table=grid&action=insert&lang=en").get_data(as_text=True)
    grids = _trail_ids(demo_engine, "table_name = 'grid' AND action = 'insert'")
    assert _ids(html) == grids[:50] and len(grids) > 0
    assert "Added" in html
    # one record: its whole history, its fields shown
    with demo_engine.connect() as c:
        grid = c.execute(sa.text("SELECT id, code FROM grid ORDER BY id DESC LIMIT 1")).one()
    html = client.get(f"/admin/audit?table=grid&record={grid.id}").get_data(as_text=True)
    assert _ids(html) == _trail_ids(
        demo_engine, "table_name = 'grid' AND record_id = :r", r=str(grid.id)
    )
    assert f'<td class="v-after">{grid.code}</td>' in html
    # a user: the demo was loaded with no actor set, so the database user wrote it
    with demo_engine.connect() as c:
        user = c.scalar(sa.text("SELECT session_user::text"))
    html = client.get(f"/admin/audit?user={user}&table=incident&limit=20").get_data(as_text=True)
    assert (
        _ids(html)
        == _trail_ids(demo_engine, "username = :u AND table_name = 'incident'", u=user)[:20]
    )
    html = client.get("/admin/audit?user=nobody-at-all&lang=en").get_data(as_text=True)
    assert _ids(html) == [] and "Nothing recorded matches these filters." in html
    # today's rows (the demo was loaded today) and none before
    with demo_engine.connect() as c:
        today = c.scalar(
            sa.text("SELECT (max(at) AT TIME ZONE 'Asia/Shanghai')::date FROM audit_log")
        )
    html = client.get(f"/admin/audit?date_from={today}&date_to={today}").get_data(as_text=True)
    assert _ids(html) == newest[:50]
    html = client.get("/admin/audit?date_to=2000-01-01").get_data(as_text=True)
    assert _ids(html) == []
    # pages: "older" continues below the last id shown, "newer" comes back
    first = client.get("/admin/audit?table=incident&limit=5").get_data(as_text=True)
    older = re.search(r'id="audit-older" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    second = client.get(older).get_data(as_text=True)
    incidents = _trail_ids(demo_engine, "table_name = 'incident'")
    assert _ids(first) == incidents[:5] and _ids(second) == incidents[5:10]
    newer = re.search(r'id="audit-newer" href="([^"]+)"', second).group(1).replace("&amp;", "&")
    assert _ids(client.get(newer).get_data(as_text=True)) == incidents[:5]
    assert 'id="audit-newer"' not in first
    # bad filters: the reason on the page, with the form to fix it
    for query, message in (
        ("table=secrets", "table &#39;secrets&#39; is not an audited table"),
        ("date_from=yesterday", "date_from must be a date like 2026-01-31"),
        ("action=drop", "action &#39;drop&#39; is not one of insert"),
        ("before=abc", "before must be an integer"),
    ):
        r = client.get(f"/admin/audit?{query}&lang=en")
        assert r.status_code == 400, query
        body = r.get_data(as_text=True)
        assert message in body and 'id="audit-filters"' in body


# --------------------------------------------------------------------------- in Chromium


@pytest.fixture
def hostile_trail(small):
    """The small district (hostile community and grid names) and writes by a hostile user."""
    with session_scope(small.engine) as s:
        set_actor(s, Actor(user_id=5, username=HOSTILE_USER, address="203.0.113.9", via="session"))
        s.execute(
            sa.text("UPDATE community SET name = :n WHERE code = '350502001001'"),
            {"n": HOSTILE_NAME},
        )
    return small


@pytest.mark.browser
@pytest.mark.parametrize("size", [(1280, 900), (390, 844)], ids=["desk", "phone"])
def test_browser_shows_the_trail_escaped_at_desk_and_phone_size(
    hostile_trail, make_app, page, size
) -> None:
    server = LiveServer(make_app(hostile_trail.engine))
    try:
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.set_viewport_size({"width": size[0], "height": size[1]})
        page.goto(f"{server.url}/admin/audit?table=community&lang=zh_CN")
        entries = page.locator("#audit-list > li.entry")
        expected = _trail_ids(hostile_trail.engine, "table_name = 'community'")
        assert entries.evaluate_all("els => els.map(e => Number(e.dataset.id))") == expected
        # the rename by the hostile user: both names and the user shown as text
        changed = page.locator(f'li.entry[data-id="{expected[0]}"]')
        assert changed.get_attribute("data-action") == "update"
        row = changed.locator('tr.chg[data-field="name"]')
        assert row.locator(".v-before").inner_text() == "金山社区"
        assert row.locator(".v-after").inner_text() == HOSTILE_NAME
        assert HOSTILE_USER in changed.locator(".who").inner_text()
        assert "203.0.113.9" in changed.locator(".who").inner_text()
        with hostile_trail.engine.connect() as c:
            evil_id = c.scalar(
                sa.text("SELECT id FROM community WHERE name = :n"), {"n": hostile_trail.evil}
            )
        added = page.locator(f'li.entry[data-action="insert"][data-record="{evil_id}"]')
        assert added.locator('tr[data-field="name"] .v-after').inner_text() == hostile_trail.evil
        page.wait_for_timeout(200)
        assert page.locator("img[src='x']").count() == 0
        assert page.locator("#audit-list script").count() == 0
        assert page.title() == "审计日志"
        assert page.evaluate("window.__pwned") is None
        # fits: no sideways scrolling, the heading below the nav bar, the form usable
        assert page.evaluate(
            "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )
        nav = page.locator("nav.mapsvc-nav").bounding_box()
        head = page.locator("h1").bounding_box()
        assert head["y"] >= nav["y"] + nav["height"]
        for box in page.locator("#audit-list > li.entry").evaluate_all(
            "els => els.map(e => e.getBoundingClientRect().right)"
        ):
            assert box <= size[0]
        # filter by the hostile user through the form (the table stays chosen)
        page.fill('#audit-filters input[name="user"]', HOSTILE_USER)
        with page.expect_navigation():
            page.locator('#audit-filters button[type="submit"]').click()
        assert page.input_value('#audit-filters input[name="user"]') == HOSTILE_USER
        assert entries.evaluate_all("els => els.map(e => Number(e.dataset.id))") == _trail_ids(
            hostile_trail.engine, "username = :u AND table_name = 'community'", u=HOSTILE_USER
        )
        assert dialogs == []
        assert page.errors == []
    finally:
        server.stop()
