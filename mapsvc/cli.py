"""The ``mapsvc`` command (also ``flask --app mapsvc ...``).

Every command of :data:`mapsvc.commands.COMMANDS` is added to this group; Flask's own
(``run``, ``shell``, ``routes``) come with :class:`flask.cli.FlaskGroup`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from flask.cli import FlaskGroup

if TYPE_CHECKING:
    from flask import Flask

from mapsvc.commands import COMMANDS


def create_app() -> Flask:
    """The app, for Flask's own commands: imported only when one runs (the web half's
    imports took most of a second that every other command, e.g. ``patrol route``,
    waited for)."""
    from mapsvc.app import create_app as make

    return make()


@click.group(cls=FlaskGroup, create_app=create_app, add_version_option=False)
def main() -> None:
    """Map service for grid management (网格化管理) and street and alley chiefs (街巷长制)."""


for _cmd in COMMANDS:
    main.add_command(_cmd)


if __name__ == "__main__":
    main()
