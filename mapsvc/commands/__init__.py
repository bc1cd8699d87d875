"""Click commands of the ``mapsvc`` CLI, one module per feature area.

Each module exposes ``COMMANDS``, a list of click commands or groups; :data:`COMMANDS` here
gathers them for ``mapsvc`` (:mod:`mapsvc.cli`) and ``flask --app mapsvc``. What they
share (opening the database, the progress bar) is in :mod:`mapsvc.commands.common`; the
progress factory is also ``mapsvc.commands.progress``, the name services are told to expect.
"""

from __future__ import annotations

import click

from mapsvc.commands import (
    audit,
    boundaries,
    db,
    demo,
    incidents,
    plans,
    roster,
    serve,
    staffing,
    streets,
    users,
)

__all__ = ["COMMANDS"]

COMMANDS: list[click.Command] = [
    command
    for module in (
        db,
        serve,
        demo,
        boundaries,
        incidents,
        streets,
        staffing,
        roster,
        plans,
        users,
        audit,
    )
    for command in module.COMMANDS
]
