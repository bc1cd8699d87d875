"""What a view takes from its app: the settings, the one engine, the request's session.

One engine per app, made when the app is created; one session per request, made on first
use and closed on teardown (rolled back when the request failed).
"""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from mapsvc.config import Settings
from mapsvc.db import check_connection, ensure_schema, make_engine, resolve_url


def init_app(app: Flask) -> None:
    """Create the app's single engine (from its settings) and a per-request session."""
    url = resolve_url(app.extensions["mapsvc.settings"])
    engine = make_engine(url)
    if not app.config.get("SKIP_SCHEMA"):
        ensure_schema(engine)
        check_connection(engine)
    app.extensions["mapsvc.engine"] = engine
    app.extensions["mapsvc.sessionmaker"] = sessionmaker(bind=engine, expire_on_commit=False)

    @app.teardown_appcontext
    def _close_session(exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            if exc is not None:
                session.rollback()
            session.close()


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
