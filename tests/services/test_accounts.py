"""Accounts without Flask: creation, hashes in the table, authentication with the lockout,
tokens, the permission table."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from mapsvc.config import Settings
from mapsvc.core.errors import Conflict, NotFound, Unauthorized, ValidationError
from mapsvc.db import session_scope
from mapsvc.services import accounts
from mapsvc.services.permissions import NOBODY, ROLE_PERMISSIONS, Principal


def test_passwords_are_argon2_hashes_not_clear_text(fresh_engine) -> None:
    with session_scope(fresh_engine) as s:
        accounts.create_user(s, "wang", "a-secret-password", "planner")
    with fresh_engine.connect() as c:
        stored = c.scalar(sa.text("SELECT password_hash FROM app_user WHERE username = 'wang'"))
        dump = " ".join(str(v) for row in c.execute(sa.text("SELECT * FROM app_user")) for v in row)
    assert stored.startswith("$argon2id$")
    assert "a-secret-password" not in dump


def test_bad_accounts_are_refused_naming_the_field(fresh_engine) -> None:
    with session_scope(fresh_engine) as s:
        accounts.create_user(s, "li", "long-enough-1", "leader")
    cases = [
        (("li", "long-enough-1", "leader"), {}, Conflict, "already exists"),
        (("zhao", "short", "leader"), {}, ValidationError, "at least 8"),
        (("zhao", "long-enough-1", "king"), {}, ValidationError, "role must be one of"),
        (("a\nb", "long-enough-1", "leader"), {}, ValidationError, "line breaks"),
        (("zhao", "long-enough-1", "chief"), {"staff": "nobody"}, NotFound, "roster"),
        (("zhao", "long-enough-1", "planner"), {"district": "999"}, NotFound, "district"),
    ]
    for args, scope, kind, words in cases:
        with pytest.raises(kind, match=words), session_scope(fresh_engine) as s:
            accounts.create_user(s, *args, **scope)
    with fresh_engine.connect() as c:
        assert (
            c.scalar(sa.text("SELECT count(*) FROM app_user WHERE username <> 'test-admin'")) == 1
        )


def test_lockout_after_repeated_failures_and_its_end(fresh_engine) -> None:
    settings = Settings(login_max_failures=3, login_lock_minutes=5)
    with session_scope(fresh_engine) as s:
        accounts.create_user(s, "zhang", "right-password", "dispatcher")
    for _ in range(3):
        with session_scope(fresh_engine) as s:
            with pytest.raises(Unauthorized, match="wrong username or password"):
                accounts.authenticate(s, "zhang", "wrong-password", settings)
            s.commit()
    with session_scope(fresh_engine) as s, pytest.raises(accounts.AccountLocked, match="locked"):
        accounts.authenticate(s, "zhang", "right-password", settings)
    with fresh_engine.begin() as c:  # the lock runs out
        c.execute(
            sa.text("UPDATE app_user SET locked_until = :t WHERE username = 'zhang'"),
            {"t": dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)},
        )
    with session_scope(fresh_engine) as s:
        assert accounts.authenticate(s, "zhang", "right-password", settings).username == "zhang"
    # an admin's reset lifts a lock at once
    for _ in range(3):
        with session_scope(fresh_engine) as s:
            with pytest.raises(Unauthorized):
                accounts.authenticate(s, "zhang", "nope-nope-nope", settings)
            s.commit()
    with session_scope(fresh_engine) as s:
        accounts.set_password(s, "zhang", "another-password")
    with session_scope(fresh_engine) as s:
        assert accounts.authenticate(s, "zhang", "another-password", settings)


def test_disabled_accounts_and_token_only_accounts_cannot_log_in(fresh_engine) -> None:
    with session_scope(fresh_engine) as s:
        accounts.create_user(s, "qian", "right-password", "leader")
        accounts.create_user(s, "hotline", None, "public")
        accounts.set_active(s, "qian", False)
    for name, pw in (("qian", "right-password"), ("hotline", "")):
        with session_scope(fresh_engine) as s, pytest.raises(Unauthorized):
            accounts.authenticate(s, name, pw)


def test_tokens_are_stored_hashed_resolve_and_revoke(fresh_engine) -> None:
    with session_scope(fresh_engine) as s:
        accounts.create_user(s, "gis", None, "leader")
        token, row = accounts.create_token(s, "gis", "QGIS")
        tid = row.id
    assert token.startswith("msv_") and len(token) > 40
    with fresh_engine.connect() as c:
        stored = c.execute(
            sa.text("SELECT token_hash, prefix FROM api_token WHERE id = :i"), {"i": tid}
        ).one()
    assert stored.token_hash == accounts.hash_token(token) and token not in stored.token_hash
    assert token.startswith(stored.prefix) and len(stored.prefix) < len(token) // 3
    with session_scope(fresh_engine) as s:
        assert accounts.resolve_token(s, token).username == "gis"
        assert accounts.resolve_token(s, token + "x") is None
        assert accounts.resolve_token(s, "not-a-token") is None
        accounts.revoke_token(s, "gis", tid)
    with session_scope(fresh_engine) as s:
        assert accounts.resolve_token(s, token) is None
        assert accounts.list_tokens(s, "gis")[0]["revoked_at"] is not None
        with pytest.raises(NotFound):
            accounts.revoke_token(s, "test-admin", tid)  # not theirs


def test_the_role_table() -> None:
    assert ROLE_PERMISSIONS["admin"] >= set().union(*ROLE_PERMISSIONS.values())
    assert NOBODY.permissions == {"public"}
    assert not Principal(user_id=1, username="x", role="public").can("read")
    steward = Principal(user_id=1, username="s", role="steward")
    assert steward.can("incidents.create") and not steward.can("contacts")
    with pytest.raises(KeyError):
        steward.can("fly")
    with pytest.raises(Unauthorized):
        NOBODY.require("read")
