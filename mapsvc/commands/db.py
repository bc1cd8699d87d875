"""``mapsvc db start|stop|status|reset|upgrade``: the embedded cluster and the schema."""

from __future__ import annotations

import click

from mapsvc.config import Settings
from mapsvc.db import DatabaseError, EmbeddedPostgres, drop_database, make_engine, resolve_url


def _embedded(settings: Settings) -> EmbeddedPostgres:
    if settings.database_url:
        raise click.ClickException(
            "DATABASE_URL is set: the server is external, mapsvc does not start or stop it"
        )
    return EmbeddedPostgres(settings.var_dir)


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


@db_group.command("status")
def status() -> None:
    """Say whether the database runs, and where."""
    from mapsvc.db import check_connection

    config = Settings.from_environment()
    if config.database_url:
        try:
            v = check_connection(make_engine(config.database_url))
        except DatabaseError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"external database up: PostgreSQL {v['postgresql']}, PostGIS {v['postgis']}")
        return
    pg = EmbeddedPostgres(config.var_dir)
    if not pg.initialized():
        click.echo(f"embedded database not initialised ({pg.link})")
    elif pg.running():
        click.echo(f"embedded database running on 127.0.0.1:{pg.port} (data in {pg.datadir})")
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
        drop_database(resolve_url(config))
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


COMMANDS = [db_group]
