"""``mapsvc users``: create, list, passwd, disable, token, tokens, revoke on a real database."""

from __future__ import annotations

import sqlalchemy as sa
from click.testing import CliRunner

from mapsvc.db import session_scope
from mapsvc.services import accounts


def _run(engine, *args: str, stdin: str | None = None):
    from mapsvc.cli import main

    url = engine.url.render_as_string(hide_password=False)
    return CliRunner().invoke(main, ["users", *args], env={"DATABASE_URL": url}, input=stdin)


def test_users_commands_end_to_end(fresh_engine) -> None:
    r = _run(
        fresh_engine,
        "create",
        "chen",
        "--role",
        "dispatcher",
        "--password-stdin",
        stdin="first-password\n",
    )
    assert r.exit_code == 0, r.output
    assert "created account chen (dispatcher)" in r.output
    assert "first-password" not in r.output
    r = _run(
        fresh_engine,
        "create",
        "chen",
        "--role",
        "leader",
        "--password-stdin",
        stdin="other-password\n",
    )
    assert r.exit_code == 1 and "already exists" in r.output
    # the prompt asks twice and hides the input
    r = _run(fresh_engine, "passwd", "chen", stdin="second-password\nsecond-password\n")
    assert r.exit_code == 0, r.output
    with session_scope(fresh_engine) as s:
        assert accounts.authenticate(s, "chen", "second-password").username == "chen"
    r = _run(fresh_engine, "list")
    assert "chen\tdispatcher\tcity-wide\tactive" in r.output
    r = _run(fresh_engine, "token", "chen", "--name", "hotline")
    assert r.exit_code == 0
    token = r.stdout.strip().splitlines()[0]
    with session_scope(fresh_engine) as s:
        assert accounts.resolve_token(s, token).username == "chen"
    r = _run(fresh_engine, "tokens", "chen")
    tid = r.output.split("\t")[0]
    assert f"{token[:12]}…" in r.output and "active" in r.output
    assert _run(fresh_engine, "revoke", "chen", tid).exit_code == 0
    with session_scope(fresh_engine) as s:
        assert accounts.resolve_token(s, token) is None
    assert _run(fresh_engine, "disable", "chen").exit_code == 0
    assert "chen\tdispatcher\tcity-wide\tdisabled" in _run(fresh_engine, "list").output
    r = _run(fresh_engine, "token", "nobody")
    assert r.exit_code == 1 and "does not exist" in r.output
    with fresh_engine.connect() as c:
        assert (
            c.scalar(
                sa.text(
                    "SELECT count(*) FROM api_token t JOIN app_user u "
                    "ON u.id = t.user_id WHERE u.username = 'chen'"
                )
            )
            == 1
        )


def test_create_refuses_a_short_password_and_changes_nothing(fresh_engine) -> None:
    r = _run(fresh_engine, "create", "lin", "--role", "chief", "--password-stdin", stdin="short\n")
    assert r.exit_code == 1 and "at least 8" in r.output
    with fresh_engine.connect() as c:
        assert c.scalar(sa.text("SELECT count(*) FROM app_user WHERE username = 'lin'")) == 0
