"""Shared fixtures: a real PostGIS (the embedded cluster, or MAPSVC_TEST_DATABASE_URL's
server), the Flask ``app`` / ``client`` / ``runner``, a live server and headless Chromium.

Nothing is mocked and nothing skips: if PostGIS or Chromium is missing the run fails.

Databases
---------
* ``demo_engine`` (session): the demo district loaded once (fewer incidents than the real
  demo, same generator). Read-only: tests must not change it.
* ``fresh_engine`` (function): an empty database at the latest schema, cloned from a
  template in ~0.2 s, dropped afterwards. Use it for anything that writes.

Hand-built layouts
------------------
The small districts that tests in several folders share live in plain modules under
``tests/fixtures/`` (``incidents``, ``patrol``, ``staffing``, ``web``, ``demo``, ``audit``), registered
below through ``pytest_plugins``; their helpers are imported from there.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from mapsvc.chromium import CHROMIUM, launch
from mapsvc.config import PROJECT_ROOT
from mapsvc.db import EmbeddedPostgres, ensure_schema, make_engine, normalize_url

# the fixture modules import each other: have pytest rewrite their asserts before the first
pytest.register_assert_rewrite("tests.fixtures")

from tests.fixtures.accounts import (  # noqa: E402
    ADMIN,
    ADMIN_PASSWORD,
    AccountClient,
    install_test_admin,
)
from tests.fixtures.web import LiveServer  # noqa: E402

#: the fixtures of the hand-built layouts, shared by tests in several folders; pytest reads
#: ``pytest_plugins`` in the root conftest only
pytest_plugins = [
    "tests.fixtures.accounts",
    "tests.fixtures.audit",
    "tests.fixtures.demo",
    "tests.fixtures.incidents",
    "tests.fixtures.patrol",
    "tests.fixtures.staffing",
    "tests.fixtures.web",
]

TEST_DEMO_INCIDENTS = 6000
TEST_DEMO_SEED = 20261124
_counter = itertools.count()


def demo_arguments(seed: int = TEST_DEMO_SEED, incidents: int = TEST_DEMO_INCIDENTS) -> dict:
    """``load_demo``'s arguments for the tests: the configured limits and time zone."""
    from mapsvc.config import Settings
    from mapsvc.demo import arguments_from_settings

    return arguments_from_settings(Settings.from_environment(), seed=seed, incidents=incidents)


# --------------------------------------------------------------------------- databases


@pytest.fixture(scope="session")
def server_url() -> Iterator[URL]:
    """URL of the maintenance database on the test server, as a user who may create
    databases (the embedded cluster's superuser; the tests' apps use it too).

    The embedded cluster is stopped at the end of the run when the run started it; one
    that ran before (``make demo`` in another terminal) is left running.
    """
    ext = os.environ.get("MAPSVC_TEST_DATABASE_URL")
    if ext:
        yield normalize_url(ext)
        return
    pg = EmbeddedPostgres(PROJECT_ROOT / "var")
    was_running = pg.running()
    pg.start(durable=False)
    yield pg.admin_url("postgres")
    if not was_running:
        pg.stop()


def _admin(server_url: URL) -> Engine:
    return sa.create_engine(server_url, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def make_database(server_url: URL):
    """Factory: ``make_database(template=None) -> URL`` of a new database; all dropped at end."""
    admin = _admin(server_url)
    created: list[str] = []

    def make(template: str | None = None) -> URL:
        name = f"mapsvc_t{os.getpid()}_{next(_counter)}"
        with admin.connect() as conn:
            tmpl = f' TEMPLATE "{template}"' if template else ""
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"{tmpl}')
        created.append(name)
        return server_url.set(database=name)

    yield make
    with admin.connect() as conn:
        for name in created:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(scope="session")
def template_db(make_database) -> str:
    """A database at the latest schema with the test admin (``tests.fixtures.accounts``),
    used as the template of ``fresh_engine``."""
    url = make_database()
    engine = make_engine(url)
    ensure_schema(engine)
    install_test_admin(engine)
    engine.dispose()
    return url.database


@pytest.fixture
def fresh_engine(make_database, template_db) -> Iterator[Engine]:
    engine = make_engine(make_database(template=template_db))
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def demo_engine(make_database, template_db) -> Iterator[Engine]:
    from mapsvc.demo import load_demo

    engine = make_engine(make_database(template=template_db))
    load_demo(engine, **demo_arguments())
    install_test_admin(engine)  # the load replaced every account with the demo's
    yield engine
    engine.dispose()


# --------------------------------------------------------------------------- Flask


@pytest.fixture(scope="session")
def app(demo_engine: Engine):
    from mapsvc import create_app

    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": demo_engine.url.render_as_string(hide_password=False),
        }
    )
    app.test_client_class = AccountClient
    return app


@pytest.fixture
def client(app):
    """The demo app's test client, authenticated as the test admin (Bearer token)."""
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def make_app():
    """Factory for an app on another database (e.g. ``fresh_engine``)."""
    from mapsvc import create_app

    def make(engine: Engine, **extra):
        app = create_app(
            {
                "TESTING": True,
                "DATABASE_URL": engine.url.render_as_string(hide_password=False),
                **extra,
            }
        )
        app.test_client_class = AccountClient  # test_client() is the admin, token=None not
        return app

    return make


@pytest.fixture(scope="session")
def live_server(app) -> Iterator[LiveServer]:
    server = LiveServer(app)
    yield server
    server.stop()


# --------------------------------------------------------------------------- browser


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright; fails (never skips) when it is missing."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


class PageErrors(list):
    """Console errors, page errors and blocked external requests seen by a page."""


@pytest.fixture(scope="session")
def admin_browser_state(browser, make_database, template_db) -> dict:
    """The browser state (session cookie) of the test admin, logged in once through the
    real login form of an app on a copy of the template; valid on every test app, which
    share the secret key in ``var/`` and the admin's row."""
    from mapsvc import create_app

    url = make_database(template=template_db)
    app = create_app({"TESTING": True, "DATABASE_URL": url.render_as_string(hide_password=False)})
    server = LiveServer(app)
    context = browser.new_context()
    try:
        pg = context.new_page()
        pg.goto(f"{server.url}/login")
        pg.fill("#username", ADMIN)
        pg.fill("#password", ADMIN_PASSWORD)
        pg.click("#login-submit")
        pg.wait_for_url(f"{server.url}/")
        return context.storage_state()
    finally:
        context.close()
        server.stop()
        app.extensions["mapsvc.engine"].dispose()


@pytest.fixture
def page(browser, admin_browser_state):
    """A new page, logged in as the test admin, that blocks every non-localhost request and
    records errors.

    ``page.errors`` lists console errors, uncaught exceptions and blocked requests.
    """
    yield from _page(browser, admin_browser_state)


@pytest.fixture
def anon_page(browser):
    """Like ``page``, without a login."""
    yield from _page(browser, None)


def _page(browser, state: dict | None):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, storage_state=state)
    pg = context.new_page()
    errors = PageErrors()

    def route(r):
        url = r.request.url
        if url.startswith(("http://127.0.0.1", "http://localhost", "data:", "blob:")):
            return r.continue_()
        errors.append(f"blocked external request: {url}")
        return r.abort()

    pg.route("**/*", route)
    pg.on(
        "console",
        lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
    )
    pg.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    pg.errors = errors
    yield pg
    context.close()
