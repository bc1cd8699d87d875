"""The demo's accounts: one per role, the chief a real alley chief of the roster, the
password made up once (0600) and printed with the summary, the hotline's Open311 token."""

from __future__ import annotations

import os
import stat

import sqlalchemy as sa

from mapsvc.config import Settings
from mapsvc.demo import format_summary
from mapsvc.demo.accounts import DEMO_ACCOUNTS, HOTLINE_ACCOUNT, demo_password, hotline_token
from tests.conftest import TEST_DEMO_SEED, demo_arguments


def test_the_password_is_made_up_once_and_kept_private(tmp_path) -> None:
    settings = Settings(var_dir=str(tmp_path))
    password, made = demo_password(settings)
    assert made and len(password) >= 16
    assert stat.S_IMODE(os.stat(tmp_path / "demo_password").st_mode) == 0o600
    assert demo_password(settings) == (password, False)
    assert demo_password(Settings(var_dir=str(tmp_path), demo_password="given-pw")) == (
        "given-pw",
        False,
    )


def test_one_account_per_role_linked_to_the_roster(demo_engine) -> None:
    with demo_engine.connect() as c:
        rows = {
            r.username: r
            for r in c.execute(
                sa.text(
                    "SELECT u.username, u.role, u.staff_id, u.district_id, s.role AS staff_role "
                    "FROM app_user u LEFT JOIN staff s ON s.id = u.staff_id"
                )
            )
        }
        chief_segments = c.scalar(
            sa.text(
                "SELECT count(*) FROM assignment a JOIN app_user u ON u.staff_id = a.staff_id "
                "WHERE u.username = 'demo-chief' AND a.segment_id IS NOT NULL "
                "AND a.valid_to IS NULL"
            )
        )
    for username, role, post, _scoped in DEMO_ACCOUNTS:
        assert rows[username].role == role
        assert (rows[username].staff_role == post) if post else rows[username].staff_id is None
    assert chief_segments > 0
    assert rows["demo-planner"].district_id is not None
    assert rows["demo-leader"].district_id is None  # the city leader
    assert rows[HOTLINE_ACCOUNT].role == "public"


def test_demo_logins_work_and_the_summary_prints_them(demo_engine, make_app) -> None:
    import re

    password = demo_arguments()["password"]
    app = make_app(demo_engine)
    c = app.test_client(token=None)
    page = c.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = c.post("/login", data={"username": "demo-chief", "password": password, "csrf_token": csrf})
    assert r.status_code == 302
    assert c.get("/incidents/list").status_code == 200
    token = hotline_token(password, TEST_DEMO_SEED)
    # the hotline's Open311 api_key is a valid token of its machine account (checked in a
    # transaction rolled back: the demo database is shared read-only)
    from sqlalchemy.orm import Session

    from mapsvc.services.accounts import resolve_token

    with Session(demo_engine) as s:
        assert resolve_token(s, token).username == HOTLINE_ACCOUNT
        s.rollback()
    text = format_summary(
        {
            "district_name": "鲤城区",
            "district_code": "350502",
            "district_area_km2": 1.0,
            "seed": 1,
            "counts": {"app_user": 9},
            "logins": {"usernames": ["demo-admin"], "password": password, "hotline_token": token},
        }
    )
    assert password in text and token in text and "demo-admin" in text
