"""mapsvc: the map service for grid management (网格化管理) and street and alley chiefs (街巷长制).

The package root is the top floor (see ``docs/ARCHITECTURE.md``): it only wires the web
application (:mod:`mapsvc.app`) to the CLI's commands (:mod:`mapsvc.commands`), so that
``flask --app mapsvc ...`` finds the same commands as ``mapsvc ...``. Importing a lower
floor (``mapsvc.services.incidents``, say) therefore loads neither Flask nor the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mapsvc.config import VERSION as __version__

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["__version__", "create_app"]


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """The web application with the CLI's commands on ``app.cli`` too.

    ``test_config`` overrides the environment (the tests pass their own DATABASE_URL).
    """
    from mapsvc.app import create_app as build_app
    from mapsvc.commands import COMMANDS

    app = build_app(test_config)
    for command in COMMANDS:
        app.cli.add_command(command)
    return app
