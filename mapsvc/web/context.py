"""What a view takes from its app: the settings, the one engine, the request's session.

One engine per app, made when the app is created; one session per request, made on first
use and closed on teardown (rolled back when the request failed). Every transaction the
engine begins during a request names the request's author to the audit trail
(:func:`request_actor`), whichever session or connection it runs on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, current_app, g, has_request_context, request
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from mapsvc.config import Settings
from mapsvc.core.actor import ANONYMOUS, Actor
from mapsvc.db import check_connection, ensure_schema, make_engine, resolve_url
from mapsvc.services.audit import set_actor


def init_app(app: Flask) -> None:
    """Create the app's single engine (from its settings) and a per-request session."""
    url = resolve_url(app.extensions["mapsvc.settings"])
    engine = make_engine(url)
    if not app.config.get("SKIP_SCHEMA"):
        ensure_schema(engine)
        check_connection(engine)
    app.extensions["mapsvc.engine"] = engine
    event.listen(engine, "begin", _name_the_actor)
    app.extensions["mapsvc.sessionmaker"] = sessionmaker(bind=engine, expire_on_commit=False)

    @app.teardown_appcontext
    def _close_session(exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            if exc is not None:
                session.rollback()
            session.close()


def request_actor() -> Actor:
    """Who makes the current request: ``g.actor`` (set by the login code), else anonymous.

    The request's client address is filled in when the actor carries none.
    """
    actor = g.get("actor") or ANONYMOUS
    if actor.address is None:
        actor = dataclasses.replace(actor, address=request.remote_addr)
    return actor


def use_actor(actor: Actor, *, named: bool = False) -> None:
    """Make ``actor`` the author of the request (``g.actor``), from now on.

    The login code calls this once it knows who is asking. Transactions begun later name
    ``actor`` by themselves; one the request has already begun (the session that looked
    the account up) is told here, so its writes are not recorded as anonymous - unless
    ``named``: the statement that looked the account up named it already, in that
    transaction (:func:`mapsvc.services.accounts.token_principal`).
    """
    g.actor = actor
    g.pop(_PENDING, None)
    if named:
        return
    session = g.get("db_session")
    if session is not None and session.in_transaction():
        set_actor(session, request_actor())


def _name_the_actor(conn: Connection) -> None:
    """Engine ``begin`` event: a transaction begun for a request records its author.

    Not while the guard is identifying the request (:func:`identifying`): its
    :func:`use_actor` names the author in the session's open transaction, so the lookup of
    the account costs no extra round trip to name an anonymous author first.
    """
    if has_request_context() and not g.get(_PENDING):
        set_actor(conn, request_actor())


_PENDING = "mapsvc_actor_pending"


@contextmanager
def identifying() -> Iterator[None]:
    """While the guard looks the account up: transactions begun wait for :func:`use_actor`
    to name their author; if it never does (a bad token), the anonymous actor is named
    when the block ends, so no transaction of the request is left unnamed."""
    g.setdefault(_PENDING, True)
    try:
        yield
    finally:
        if g.pop(_PENDING, False):
            session = g.get("db_session")
            if session is not None and session.in_transaction():
                set_actor(session, request_actor())


def get_settings() -> Settings:
    """The app's settings (from ``app.config``, so ``create_app(test_config)`` governs)."""
    return current_app.extensions["mapsvc.settings"]


def get_engine() -> Engine:
    """The app's engine."""
    return current_app.extensions["mapsvc.engine"]


def get_session() -> Session:
    """The request's session (created on first use, closed on teardown)."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["mapsvc.sessionmaker"]()
    return g.db_session
