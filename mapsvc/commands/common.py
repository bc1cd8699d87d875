"""What the CLI's commands share: opening the configured database, the progress bar."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import click
from sqlalchemy.engine import Engine

from mapsvc.config import Settings
from mapsvc.db import DatabaseError, check_connection, ensure_schema, make_engine, resolve_url

if TYPE_CHECKING:
    from tqdm import tqdm


def settings() -> Settings:
    """The settings of a command: the defaults with the environment's overrides."""
    return Settings.from_environment()


def open_engine(settings: Settings | None = None) -> Engine:
    """Engine for the configured database (starting the embedded one), schema at head.

    Database problems become one clear line (click.ClickException), not a traceback.
    """
    settings = settings or Settings.from_environment()
    try:
        engine = make_engine(resolve_url(settings))
        ensure_schema(engine)
        check_connection(engine)
    except DatabaseError as exc:
        raise click.ClickException(str(exc)) from None
    return engine


def progress(
    iterable: Iterable[Any] | None = None,
    total: float | None = None,
    desc: str = "",
    unit: str = "it",
) -> tqdm:
    """A tqdm progress bar on stderr (shared so every long command looks the same)."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, dynamic_ncols=True, leave=True)
