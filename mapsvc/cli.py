"""The ``mapsvc`` command (also ``flask --app mapsvc ...``).

Each feature module in :mod:`mapsvc.commands` exposes ``COMMANDS``, a list of click commands
or groups; they are added both to this group and to ``app.cli``.
"""

from __future__ import annotations

import click
from flask.cli import FlaskGroup


def all_commands() -> list[click.Command]:
    from mapsvc.commands import boundaries, db, demo, incidents, serve, staffing, streets

    out: list[click.Command] = []
    for module in (db, serve, demo, boundaries, incidents, streets, staffing):
        out.extend(module.COMMANDS)
    return out


def _create_app():  # noqa: ANN202
    from mapsvc import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_version_option=False)
def main() -> None:
    """Map service for grid management (网格化管理) and street and alley chiefs (街巷长制)."""


for _cmd in all_commands():
    main.add_command(_cmd)


if __name__ == "__main__":
    main()
