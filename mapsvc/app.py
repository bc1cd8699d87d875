"""The Flask application factory: configuration, one engine, translations, blueprints."""

from __future__ import annotations

from typing import Any

from flask import Flask

from mapsvc.config import PROJECT_ROOT, Settings, from_environment
from mapsvc.web import context, i18n, security
from mapsvc.web import init_app as init_web


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the web application.

    ``test_config`` overrides the environment (the tests pass their own DATABASE_URL).
    The CLI's commands are not attached here: :func:`mapsvc.create_app` does that for
    ``flask --app mapsvc``, so the commands can build an app without importing themselves.
    """
    app = Flask(
        "mapsvc",
        static_folder=str(PROJECT_ROOT / "static"),
        static_url_path="/static",
    )
    app.config.from_mapping(from_environment())
    if test_config:
        app.config.update(test_config)
    app.json.ensure_ascii = False  # Chinese names stay readable in JSON
    # the one settings object of this app, read by views through web.context.get_settings
    app.extensions["mapsvc.settings"] = Settings.from_mapping(app.config)

    i18n.init_app(app)
    context.init_app(app)
    init_web(app)
    security.init_app(app)
    return app
