"""``mapsvc db start|stop|status|reset|upgrade|backup|restore``: the cluster and the schema."""

from __future__ import annotations

from pathlib import Path

import click
import sqlalchemy as sa

from mapsvc.config import Settings
from mapsvc.db import (
    DatabaseError,
    EmbeddedPostgres,
    admin_url,
    backup_database,
    drop_database,
    embedded,
    make_engine,
    resolve_url,
    restore_database,
)


def _embedded(settings: Settings) -> EmbeddedPostgres:
    if settings.database_url:
        raise click.ClickException(
            "DATABASE_URL is set: the server is external, mapsvc does not start or stop it"
        )
    return embedded(settings)


@click.group("db")
def db_group() -> None:
    """Manage the database (embedded cluster under var/pg unless DATABASE_URL is set)."""


@db_group.command("start")
def start() -> None:
    """Start the embedded PostgreSQL and bring the schema to the latest migration."""
    from mapsvc.commands.common import open_engine

    config = Settings.from_environment()
    _embedded(config)
    engine = open_engine(config)
    click.echo(f"database ready: {engine.url.render_as_string(hide_password=True)}")


@db_group.command("stop")
def stop() -> None:
    """Stop the embedded PostgreSQL."""
    pg = _embedded(Settings.from_environment())
    try:
        pg.stop()
    except DatabaseError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("database stopped")


def _listening(pg: EmbeddedPostgres) -> str:
    """Where a running embedded server accepts connections (asked of the server)."""
    try:
        engine = make_engine(pg.admin_url())
        try:
            with engine.connect() as conn:
                tcp = conn.scalar(sa.text("SHOW listen_addresses"))
        finally:
            engine.dispose()
    except (sa.exc.DBAPIError, DatabaseError):  # an older version's cluster, no passwords yet
        tcp = "127.0.0.1"
    where = f"socket {pg.socket_dir}/.s.PGSQL.{pg.port}"
    return f"{where} and {tcp}:{pg.port}" if tcp else f"{where} only (no TCP)"


@db_group.command("status")
def status() -> None:
    """Say whether the database runs, and where (exit status 3 when it is stopped)."""
    from mapsvc.db import check_connection

    config = Settings.from_environment()
    if config.database_url:
        try:
            v = check_connection(make_engine(config.database_url))
        except DatabaseError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"external database up: PostgreSQL {v['postgresql']}, PostGIS {v['postgis']}")
        return
    pg = embedded(config)
    if not pg.initialized():
        click.echo(f"embedded database not initialised ({pg.link})")
    elif pg.running():
        click.echo(
            f"embedded database running on {_listening(pg)} (data in {pg.datadir}); "
            "stop it with `mapsvc db stop`"
        )
    else:
        click.echo(f"embedded database stopped (data in {pg.datadir})")
        raise SystemExit(3)


@db_group.command("reset")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def reset(yes: bool) -> None:
    """Drop the database and recreate it empty at the latest schema."""
    from mapsvc.commands.common import open_engine

    config = Settings.from_environment()
    if not yes:
        click.confirm("Drop every table and all data?", abort=True)
    try:
        drop_database(admin_url(config))
    except DatabaseError as exc:
        raise click.ClickException(str(exc)) from None
    open_engine(config)
    click.echo("database reset")


@db_group.command("upgrade")
def upgrade() -> None:
    """Run the Alembic migrations to head."""
    from mapsvc.commands.common import open_engine

    open_engine()
    click.echo("schema at head")


@db_group.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, writable=True, path_type=Path))
def backup(file: Path) -> None:
    """Write the whole database to FILE (pg_dump's custom format; read by `db restore`)."""
    from mapsvc.commands.common import open_engine, progress

    config = Settings.from_environment()
    engine = open_engine(config)
    engine.dispose()
    try:
        backup_database(engine.url, file, progress=progress)
    except DatabaseError as exc:
        raise click.ClickException(str(exc)) from None
    size_mb = file.stat().st_size / 1024 / 1024
    click.echo(f"backed up database {engine.url.database} to {file} ({size_mb:.1f} MB)")


@db_group.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--force", is_flag=True, help="Replace a database that holds data (else it is refused)."
)
def restore(file: Path, force: bool) -> None:
    """Restore FILE (from `db backup`) into the database, all of it or nothing.

    A database that already holds rows is left alone unless --force is given.
    """
    from mapsvc.commands.common import open_engine, progress

    config = Settings.from_environment()
    try:
        url = resolve_url(config)
        admin = None if config.database_url else embedded(config).admin_url(config.db_name)
        rows = restore_database(url, file, admin=admin, force=force, progress=progress)
    except DatabaseError as exc:
        raise click.ClickException(str(exc)) from None
    open_engine(config).dispose()  # a backup of an older version: brought to the latest schema
    click.echo(
        f"restored {file} into database {url.database}: "
        f"{len(rows)} tables, {sum(rows.values())} rows"
    )


COMMANDS = [db_group]
