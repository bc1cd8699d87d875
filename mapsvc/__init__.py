"""mapsvc: the map service for grid management (网格化管理) and street and alley chiefs (街巷长制)."""

from __future__ import annotations

from typing import Any

from flask import Flask

from mapsvc.config import PROJECT_ROOT, from_environment

__version__ = "0.1.0"


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Application factory: config, one engine, translations, blueprints, CLI.

    ``test_config`` overrides the environment (the tests pass their own DATABASE_URL).
    """
    app = Flask(
        __name__,
        static_folder=str(PROJECT_ROOT / "static"),
        static_url_path="/static",
    )
    app.config.from_mapping(from_environment())
    if test_config:
        app.config.update(test_config)
    app.json.ensure_ascii = False  # Chinese names stay readable in JSON

    from mapsvc import db, i18n, web

    i18n.init_app(app)
    db.init_app(app)
    web.init_app(app)

    from mapsvc.cli import all_commands

    for command in all_commands():  # so `flask --app mapsvc <command>` works too
        app.cli.add_command(command)
    return app
