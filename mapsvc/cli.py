"""The ``mapsvc`` command (also ``flask --app mapsvc ...``).

Every command of :data:`mapsvc.commands.COMMANDS` is added to this group; Flask's own
(``run``, ``shell``, ``routes``) come with :class:`flask.cli.FlaskGroup`.
"""

from __future__ import annotations

import click
from flask.cli import FlaskGroup

from mapsvc.app import create_app
from mapsvc.commands import COMMANDS


@click.group(cls=FlaskGroup, create_app=create_app, add_version_option=False)
def main() -> None:
    """Map service for grid management (网格化管理) and street and alley chiefs (街巷长制)."""


for _cmd in COMMANDS:
    main.add_command(_cmd)


if __name__ == "__main__":
    main()
