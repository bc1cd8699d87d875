"""/admin/users: an admin manages accounts and tokens in the browser.

Each action is one transaction through :mod:`mapsvc.services.accounts`; the expected state
is read back from ``app_user`` / ``api_token`` and ``audit_log`` with plain SQL. Refused
actions (a taken name, passwords that differ, an admin disabling or demoting themself, an
unknown account or token) answer with their reason and change nothing.
"""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from tests.fixtures.accounts import ADMIN
from tests.fixtures.audit import audit_rows, last_audit_id
from tests.fixtures.web import LiveServer

PASSWORD = "correct horse battery"


def _account(engine, username: str) -> dict | None:
    with engine.connect() as c:
        row = c.execute(
            sa.text(
                """SELECT u.role, u.active, u.password_hash, d.code AS district,
                          s.code AS staff
                   FROM app_user u LEFT JOIN district d ON d.id = u.district_id
                   LEFT JOIN staff s ON s.id = u.staff_id WHERE u.username = :u"""
            ),
            {"u": username},
        ).one_or_none()
    return None if row is None else dict(row._mapping)


def _snapshot(engine) -> list[tuple]:
    """Accounts and tokens (a token's last use, which any request records, left out)."""
    with engine.connect() as c:
        users = c.execute(sa.text("SELECT * FROM app_user ORDER BY id")).all()
        tokens = c.execute(
            sa.text(
                "SELECT id, user_id, name, token_hash, prefix, created_at, revoked_at "
                "FROM api_token ORDER BY id"
            )
        ).all()
    return [tuple(r) for r in users + tokens]


def _login(client, username: str, password: str) -> int:
    """Log in through the form (fetching its CSRF token); the status of the answer."""
    html = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    r = client.post("/login", data={"username": username, "password": password, "csrf_token": csrf})
    return r.status_code


def test_create_change_disable_reset_and_tokens(small, small_app, small_client) -> None:
    engine = small.engine
    since = last_audit_id(engine)
    r = small_client.post(
        "/admin/users",
        data={
            "username": "wang-chief",
            "password": PASSWORD,
            "password2": PASSWORD,
            "role": "chief",
            "district": "350502000000",
            "staff": "t-new_chief",
        },
    )
    assert r.status_code == 200, r.get_data(as_text=True)
    html = r.get_data(as_text=True)
    assert 'data-username="wang-chief"' in html and "李新长 (t-new_chief)" in html
    made = _account(engine, "wang-chief")
    assert made["role"] == "chief" and made["active"]
    assert made["district"] == "350502000000" and made["staff"] == "t-new_chief"
    assert PASSWORD not in made["password_hash"] and made["password_hash"].startswith("$argon2")
    inserts = [row for row in audit_rows(engine, since) if row["table_name"] == "app_user"]
    assert [(row["action"], row["username"], row["via"]) for row in inserts] == [
        ("insert", ADMIN, "token")
    ]

    # the new account logs in; the admin then changes its role and scope
    assert _login(small_app.test_client(token=None), "wang-chief", PASSWORD) == 302
    r = small_client.post(
        "/admin/users/wang-chief/update", data={"role": "grid_head", "district": "", "staff": ""}
    )
    assert r.status_code == 200
    assert _account(engine, "wang-chief") | {"password_hash": None} == {
        "role": "grid_head",
        "active": True,
        "password_hash": None,
        "district": None,
        "staff": None,
    }

    # a token made on the page is shown once and works; revoked, it stops working
    r = small_client.post("/admin/users/wang-chief/tokens", data={"name": "12345 热线"})
    token = re.search(r'<code id="new-token" data-user="wang-chief">([^<]+)</code>', r.text)
    assert token, r.text
    machine = small_app.test_client(token=token.group(1))
    assert machine.get("/api/coverage").status_code == 200
    with engine.connect() as c:
        token_id, name, stored = c.execute(
            sa.text(
                "SELECT t.id, t.name, t.token_hash FROM api_token t JOIN app_user u "
                "ON u.id = t.user_id WHERE u.username = 'wang-chief'"
            )
        ).one()
    assert name == "12345 热线" and token.group(1) not in stored
    assert small_client.get("/admin/users").text.count('id="new-token"') == 0  # only once
    r = small_client.post(f"/admin/users/wang-chief/tokens/{token_id}/revoke")
    assert r.status_code == 200 and 'class="token revoked"' in r.text
    assert machine.get("/api/coverage").status_code == 401

    # disabled: no login; reset password and enabled: the new password logs in
    assert (
        small_client.post("/admin/users/wang-chief/active", data={"active": "0"}).status_code == 200
    )
    assert _account(engine, "wang-chief")["active"] is False
    assert _login(small_app.test_client(token=None), "wang-chief", PASSWORD) == 401
    new = "another long password"
    r = small_client.post(
        "/admin/users/wang-chief/password", data={"password": new, "password2": new}
    )
    assert r.status_code == 200
    assert (
        small_client.post("/admin/users/wang-chief/active", data={"active": "1"}).status_code == 200
    )
    assert _login(small_app.test_client(token=None), "wang-chief", PASSWORD) == 401
    assert _login(small_app.test_client(token=None), "wang-chief", new) == 302


@pytest.mark.parametrize(
    ("url", "data", "status", "reason"),
    [
        (
            "/admin/users",
            {"username": ADMIN, "password": PASSWORD, "password2": PASSWORD, "role": "leader"},
            409,
            "already exists",
        ),
        (
            "/admin/users",
            {
                "username": "x-new",
                "password": PASSWORD,
                "password2": "other one!",
                "role": "leader",
            },
            400,
            "differ",
        ),
        (
            "/admin/users",
            {"username": "x-new", "password": "short", "password2": "short", "role": "leader"},
            400,
            "at least",
        ),
        (
            "/admin/users",
            {"username": "x-new", "password": PASSWORD, "password2": PASSWORD, "role": "emperor"},
            400,
            "role must be one of",
        ),
        (
            "/admin/users",
            {
                "username": "x-new",
                "password": PASSWORD,
                "password2": PASSWORD,
                "role": "leader",
                "district": "999999",
            },
            404,
            "district '999999'",
        ),
        (
            "/admin/users",
            {
                "username": "x-new",
                "password": PASSWORD,
                "password2": PASSWORD,
                "role": "chief",
                "staff": "nobody",
            },
            404,
            "staff 'nobody'",
        ),
        (f"/admin/users/{ADMIN}/active", {"active": "0"}, 409, "your own account"),
        (f"/admin/users/{ADMIN}/update", {"role": "leader"}, 409, "your own role"),
        ("/admin/users/nobody/active", {"active": "0"}, 404, "'nobody' does not exist"),
        ("/admin/users/nobody/tokens", {}, 404, "'nobody' does not exist"),
        (f"/admin/users/{ADMIN}/tokens/999999/revoke", {}, 404, "no token 999999"),
        (f"/admin/users/{ADMIN}/active", {"active": "maybe"}, 400, "active=1"),
    ],
    ids=lambda v: v if isinstance(v, str) and not v.startswith("/") else None,
)
def test_refused_actions_say_why_and_change_nothing(
    small, small_client, url, data, status, reason
) -> None:
    before = _snapshot(small.engine)
    r = small_client.post(url, data=data, headers={"Accept-Language": "en"})
    assert r.status_code == status
    error = re.search(r'<p class="audit-error" role="alert" id="users-error">([^<]*)</p>', r.text)
    assert error and reason in error.group(1).replace("&#39;", "'"), r.text[:2000]
    assert _snapshot(small.engine) == before


def test_the_page_needs_the_right_and_cookie_writes_need_csrf(small, small_app) -> None:
    from tests.fixtures.accounts import ADMIN_PASSWORD, make_account

    leader, token = make_account(small.engine, "leader")
    assert small_app.test_client(token=token).get("/admin/users").status_code == 403
    assert small_app.test_client(token=None).get("/admin/users").status_code in (302, 401)
    browser = small_app.test_client(token=None)
    assert _login(browser, ADMIN, ADMIN_PASSWORD) == 302
    before = _snapshot(small.engine)
    r = browser.post(f"/admin/users/{leader}/active", data={"active": "0"})
    assert r.status_code == 400 and "CSRF" in r.text
    assert _snapshot(small.engine) == before


@pytest.mark.browser
@pytest.mark.parametrize("size", [(1280, 900), (390, 844)], ids=["desk", "phone"])
def test_browser_creates_an_account_and_a_token(small, small_app, page, size) -> None:
    hostile = '<img src=x onerror="window.__pwned=1">'
    with small.engine.begin() as c:
        c.execute(sa.text("UPDATE staff SET name = :n WHERE code = 't-head'"), {"n": hostile})
    server = LiveServer(small_app)
    try:
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.set_viewport_size({"width": size[0], "height": size[1]})
        page.goto(f"{server.url}/admin/users?lang=zh_CN")
        assert page.title() == "账号"
        page.locator("#users-new > summary").click()
        form = page.locator("#create-form")
        form.locator('input[name="username"]').fill("li-gridhead")
        form.locator('input[name="password"]').fill(PASSWORD)
        form.locator('input[name="password2"]').fill(PASSWORD)
        form.locator('select[name="role"]').select_option("grid_head")
        form.locator('select[name="district"]').select_option("350502000000")
        form.locator('input[name="staff"]').fill("t-head")
        with page.expect_navigation():
            form.locator('button[type="submit"]').click()
        assert "li-gridhead" in page.locator("#users-message").inner_text()
        card = page.locator('li.user[data-username="li-gridhead"]')
        assert card.locator(".role").inner_text() == "网格长"
        assert hostile in card.locator(".staff").inner_text()  # shown as text
        card.locator(".user-tokens > summary").click()
        with page.expect_navigation():
            card.locator(".token-form button").click()
        token = page.locator("#new-token").inner_text()
        assert token.startswith("msv_")
        assert _account(small.engine, "li-gridhead")["staff"] == "t-head"
        assert page.evaluate("window.__pwned") is None and dialogs == []
        assert page.evaluate(
            "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )
        for right in page.locator("#users-list > li.user").evaluate_all(
            "els => els.map(e => e.getBoundingClientRect().right)"
        ):
            assert right <= size[0]
    finally:
        server.stop()
