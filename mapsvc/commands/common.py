"""What the CLI's commands share: opening the configured database, the progress bar.

The engine of a command names the command's author to the audit trail in every
transaction it begins (:func:`cli_actor`: the operating system's user, ``via = "cli"``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from mapsvc.config import Settings
from mapsvc.core.actor import Actor
from mapsvc.db import DatabaseError, check_connection, ensure_schema, make_engine, resolve_url

if TYPE_CHECKING:
    from tqdm import tqdm


#: the ``--dry-run`` option of the import commands
dry_run_option = click.option(
    "--dry-run",
    is_flag=True,
    help="Run every check and print the summary; write nothing.",
)


@contextmanager
def one_transaction(engine: Engine, dry_run: bool = False) -> Iterator[Session]:
    """The command's one transaction: committed at the end, or rolled back for a dry run
    (and on any error), so a dry run makes exactly the checks a real run makes."""
    session = Session(bind=engine, expire_on_commit=False)
    try:
        yield session
        if dry_run:
            session.rollback()
        else:
            session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def settings() -> Settings:
    """The settings of a command: the defaults with the environment's overrides."""
    return Settings.from_environment()


def cli_actor() -> Actor:
    """The author of a command's writes: the operating system's user running it.

    Read from the process's user id (not from ``$USER``, which anyone can set); a user id
    without a name in the password database is recorded as the number.
    """
    import os
    import pwd

    uid = os.geteuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    return Actor(username=name, via="cli")


def open_engine(settings: Settings | None = None) -> Engine:
    """Engine for the configured database (starting the embedded one), schema at head.

    Database problems become one clear line (click.ClickException), not a traceback.
    Writes through it are recorded in the audit trail as the command's (:func:`cli_actor`).
    """
    from mapsvc.services.audit import set_actor

    settings = settings or Settings.from_environment()
    try:
        engine = make_engine(resolve_url(settings))
        actor = cli_actor()

        @event.listens_for(engine, "begin")
        def _name_the_actor(conn: Connection) -> None:
            """Every transaction of the command records its author."""
            set_actor(conn, actor)

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
