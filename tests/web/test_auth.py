"""Logins over HTTP: the form, CSRF, the lockout, the rate limit, tokens, cookies, the
public map's data without staff names, the session secret."""

from __future__ import annotations

import os
import re
import stat

import pytest
import sqlalchemy as sa

from tests.fixtures.accounts import ADMIN, ADMIN_PASSWORD, make_account

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _csrf(client, path: str = "/login") -> str:
    found = CSRF.search(client.get(path).get_data(as_text=True))
    assert found, f"no csrf_token on {path}"
    return found.group(1)


def _login(client, username: str = ADMIN, password: str = ADMIN_PASSWORD, **extra):
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": _csrf(client), **extra},
    )


@pytest.fixture
def fresh_app(small, make_app):
    return make_app(small.engine)


def test_login_opens_a_session_and_logout_ends_it(fresh_app) -> None:
    c = fresh_app.test_client(token=None)
    assert c.get("/incidents/list").status_code == 302
    r = _login(c, next="/incidents/list")
    assert r.status_code == 302 and r.headers["Location"] == "/incidents/list"
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain HTTP
    page = c.get("/incidents/list")
    assert page.status_code == 200 and ADMIN in page.get_data(as_text=True)
    token = _csrf(c, "/incidents/list")
    r = c.post("/logout", data={"csrf_token": token})
    assert r.status_code == 302
    assert c.get("/incidents/list").status_code == 302


def test_session_cookie_is_secure_over_https(fresh_app) -> None:
    c = fresh_app.test_client(token=None)
    token = CSRF.search(c.get("/login", base_url="https://localhost").get_data(as_text=True)).group(
        1
    )
    r = c.post(
        "/login",
        base_url="https://localhost",
        headers={"Referer": "https://localhost/login"},  # checked over HTTPS
        data={"username": ADMIN, "password": ADMIN_PASSWORD, "csrf_token": token},
    )
    assert r.status_code == 302 and "Secure" in r.headers["Set-Cookie"]


def test_next_is_a_path_of_this_site_only(fresh_app) -> None:
    c = fresh_app.test_client(token=None)
    r = _login(c, next="https://evil.example/")
    assert r.headers["Location"] == "/"
    c2 = fresh_app.test_client(token=None)
    assert _login(c2, next="//evil.example/x").headers["Location"] == "/"


def test_wrong_password_is_refused_with_one_message(fresh_app) -> None:
    c = fresh_app.test_client(token=None)
    for name, pw in ((ADMIN, "wrong-password"), ("nobody-at-all", "whatever-pw")):
        r = _login(c, name, pw)
        assert r.status_code == 401
        assert "用户名或密码错误" in r.get_data(as_text=True)


def test_csrf_refused_on_a_form_post_and_a_cookie_json_write(fresh_app, small) -> None:
    c = fresh_app.test_client(token=None)
    r = c.post("/login", data={"username": ADMIN, "password": ADMIN_PASSWORD})
    assert r.status_code == 400 and "CSRF" in r.get_data(as_text=True)
    assert c.get("/incidents/list").status_code == 302  # not logged in
    assert _login(c).status_code == 302
    lon, lat = 118.582, 24.905
    body = {"category": "garbage", "lon": lon, "lat": lat}

    def count() -> int:
        with small.engine.connect() as conn:
            return conn.scalar(sa.text("SELECT count(*) FROM incident"))

    from mapsvc.db import session_scope
    from mapsvc.services.categories import ensure_categories

    with session_scope(small.engine) as s:
        ensure_categories(s)
    before = count()
    r = c.post("/api/incidents", json=body)  # the session cookie, no token
    assert r.status_code == 400 and r.get_json()["field"] == "csrf_token"
    assert count() == before
    token = _csrf(c, "/incidents/list")
    r = c.post("/api/incidents", json=body, headers={"X-CSRFToken": token})
    assert r.status_code == 201, r.get_json()
    assert count() == before + 1
    # a Bearer token needs none: a browser never sends that header by itself
    assert fresh_app.test_client().post("/api/incidents", json=body).status_code == 201


def test_repeated_failures_lock_the_account(small, make_app) -> None:
    app = make_app(small.engine, LOGIN_MAX_FAILURES=3, LOGIN_LOCK_MINUTES=10)
    name, _token = make_account(small.engine, "dispatcher")
    c = app.test_client(token=None)
    for _ in range(3):
        assert _login(c, name, "not-the-password").status_code == 401
    r = _login(c, name, ADMIN_PASSWORD)  # the right password, but locked now
    assert r.status_code == 401 and "锁定" in r.get_data(as_text=True)
    with small.engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT failed_logins, locked_until > now() + interval '9 minutes' "
                "FROM app_user WHERE username = :u"
            ),
            {"u": name},
        ).one()
    assert tuple(row) == (0, True)
    # another process (a second app on the same database) sees the same lock
    other = make_app(small.engine).test_client(token=None)
    assert "锁定" in _login(other, name, ADMIN_PASSWORD).get_data(as_text=True)


def test_login_attempts_are_rate_limited(small, make_app) -> None:
    app = make_app(small.engine, LOGIN_RATE_LIMIT="3 per minute")
    c = app.test_client(token=None)
    codes = [_login(c, ADMIN, "wrong-password").status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]


def test_tokens_work_and_stop_when_revoked(fresh_app, small) -> None:
    from mapsvc.db import session_scope
    from mapsvc.services import accounts

    name, token = make_account(small.engine, "leader")
    c = fresh_app.test_client(token=token)
    assert c.get("/api/incidents").status_code == 200
    with session_scope(small.engine) as s:
        listed = accounts.list_tokens(s, name)
        assert listed[0]["last_used_at"] is not None
        accounts.revoke_token(s, name, listed[0]["id"])
    r = c.get("/api/incidents")
    assert r.status_code == 401 and "not valid" in r.get_json()["error"]
    # a disabled account's tokens stop too
    name2, token2 = make_account(small.engine, "leader")
    with session_scope(small.engine) as s:
        accounts.set_active(s, name2, False)
    assert fresh_app.test_client(token=token2).get("/api/incidents").status_code == 401


def test_password_change_on_the_account_page(fresh_app, small) -> None:
    name, _token = make_account(small.engine, "planner")
    c = fresh_app.test_client(token=None)
    assert _login(c, name, ADMIN_PASSWORD).status_code == 302
    token = _csrf(c, "/account")
    r = c.post(
        "/account",
        data={
            "csrf_token": token,
            "old_password": ADMIN_PASSWORD,
            "new_password": "a-new-password-1",
            "new_password2": "a-new-password-1",
        },
    )
    assert r.status_code == 200 and "密码已修改" in r.get_data(as_text=True)
    assert c.get("/account").status_code == 200  # this session goes on
    other = fresh_app.test_client(token=None)
    assert _login(other, name, ADMIN_PASSWORD).status_code == 401
    assert _login(other, name, "a-new-password-1").status_code == 302


def test_the_public_map_data_has_no_staff_names(fresh_app, small) -> None:
    anon = fresh_app.test_client(token=None)
    staff = fresh_app.test_client()
    for layer, key in (("segments", "chief_name"), ("grids", "head_name")):
        public = anon.get(f"/api/{layer}?date=2025-07-01").get_json()["features"]
        full = staff.get(f"/api/{layer}?date=2025-07-01").get_json()["features"]
        names = {f["properties"][key] for f in full} - {None}
        assert names and names <= {"李新长", "赵巷长", "孙网格长"}
        shown = {f["properties"][key] for f in public}
        assert shown == {"已配备", None}  # assigned or not, but nobody named
    text = anon.get("/api/segments").get_data(as_text=True)
    assert "13800000000" not in text and "李新长" not in text


def test_secret_key_is_made_once_and_kept_private(tmp_path, small) -> None:
    from mapsvc import create_app

    def make():
        return create_app(
            {
                "TESTING": True,
                "VAR_DIR": str(tmp_path),
                "DATABASE_URL": small.engine.url.render_as_string(hide_password=False),
            }
        )

    first = make()
    path = tmp_path / "secret_key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert first.config["SECRET_KEY"] == path.read_text().strip()
    assert len(first.config["SECRET_KEY"]) >= 40
    assert make().config["SECRET_KEY"] == first.config["SECRET_KEY"]
    first.extensions["mapsvc.engine"].dispose()


def test_field_staff_land_on_my_work_after_login(fresh_app) -> None:
    from tests.fixtures.accounts import make_account

    for role, home in (("chief", "/me"), ("grid_member", "/me"), ("planner", "/")):
        name, _token = make_account(fresh_app.extensions["mapsvc.engine"], role)
        c = fresh_app.test_client(token=None)
        r = _login(c, username=name)
        assert r.status_code == 302 and r.headers["Location"] == home, role
        r = _login(fresh_app.test_client(token=None), username=name, next="/incidents/list")
        assert r.headers["Location"] == "/incidents/list"
