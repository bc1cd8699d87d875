"""/healthz on a live database and on one that went away; bad DATABASE_URL errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import sqlalchemy as sa

from mapsvc.config import PROJECT_ROOT


def closed_port() -> int:
    """A localhost port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_healthz_says_ok_and_nothing_else(small_client, small) -> None:
    """/healthz is public: it says ok, and neither versions nor where the database is."""
    resp = small_client.get("/healthz")
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ok"}
    with small.engine.connect() as conn:
        pg = conn.scalar(sa.text("SELECT current_setting('server_version')"))
    text = resp.get_data(as_text=True)
    assert pg not in text and small.engine.url.database not in text


def test_healthz_is_503_when_the_database_is_gone(make_database, template_db, make_app) -> None:
    """Drop the app's database under it: /healthz must say so with 503, not crash."""
    from mapsvc.db import drop_database, make_engine

    url = make_database(template=template_db)
    engine = make_engine(url)
    app = make_app(engine)
    client = app.test_client(token=None)  # a load balancer's probe: anonymous
    assert client.get("/healthz").status_code == 200
    engine.dispose()
    with app.app_context():
        from mapsvc.web.context import get_engine

        get_engine().dispose()
    drop_database(url)
    resp = client.get("/healthz")
    assert resp.status_code == 503
    assert resp.headers["Retry-After"].isdigit()
    # it says "not ok" and nothing about the connection (no URL, no database, no error)
    assert resp.get_json() == {"status": "unavailable"}
    text = resp.get_data(as_text=True)
    assert url.database not in text and "postgres" not in text and "127.0.0.1" not in text
    # and it keeps answering (no cached "ok", no crash)
    assert client.get("/healthz").status_code == 503


def test_pages_and_apis_answer_503_while_the_database_is_away(
    make_database, template_db, make_app
) -> None:
    """The app's database goes away under it: the APIs answer a short JSON 503 and the
    pages a short HTML one (Chinese first, English on request), both with Retry-After,
    naming nothing about the connection."""
    from mapsvc.db import drop_database, make_engine

    url = make_database(template=template_db)
    engine = make_engine(url)
    app = make_app(engine)
    client = app.test_client()
    assert client.get("/api/communities").status_code == 200
    engine.dispose()
    with app.app_context():
        from mapsvc.web.context import get_engine

        get_engine().dispose()
    drop_database(url)
    resp = client.get("/api/communities")
    assert resp.status_code == 503 and int(resp.headers["Retry-After"]) > 0
    body = resp.get_json()
    assert body["status"] == 503 and "数据库" in body["error"]
    page = client.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 503 and page.headers["Retry-After"] == resp.headers["Retry-After"]
    assert page.mimetype == "text/html" and "服务暂时不可用" in page.get_data(as_text=True)
    english = client.get("/?lang=en", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert "Service unavailable" in english and "database is unavailable" in english
    for text in (resp.get_data(as_text=True), page.get_data(as_text=True), english):
        assert url.database not in text and "Traceback" not in text and "psycopg" not in text


def test_create_app_with_unreachable_database_names_the_host() -> None:
    from mapsvc import create_app
    from mapsvc.db import DatabaseError

    port = closed_port()
    with pytest.raises(DatabaseError) as err:
        create_app({"TESTING": True, "DATABASE_URL": f"postgresql://u:secret@127.0.0.1:{port}/x"})
    msg = str(err.value)
    assert "127.0.0.1" in msg and str(port) in msg
    assert "\n" not in msg and "secret" not in msg


def test_db_status_with_closed_port_is_one_line_and_non_zero() -> None:
    port = closed_port()
    env = {**os.environ, "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/mapsvc"}
    res = subprocess.run(
        [sys.executable, "-m", "mapsvc.cli", "db", "status"],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=60,
    )
    assert res.returncode != 0
    out = (res.stdout + res.stderr).strip()
    assert "Traceback" not in out
    assert len(out.splitlines()) == 1, out
    assert f"127.0.0.1:{port}" in out
