"""``mapsvc db start|stop|status|reset|upgrade``: the embedded cluster and the schema."""

from __future__ import annotations

import click

from mapsvc.config import from_environment
from mapsvc.db import DatabaseError, EmbeddedPostgres, drop_database, make_engine, resolve_url


def _embedded(config: dict) -> EmbeddedPostgres:
    if config.get("DATABASE_URL"):
        raise click.ClickException(
            "DATABASE_URL is set: the server is external, mapsvc does not start or stop it"
        )
    return EmbeddedPostgres(config["VAR_DIR"])


@click.group("db")
def db_group() -> None:
    """Manage the database (embedded cluster under var/pg unless DATABASE_URL is set)."""


@db_group.command("start")
def start() -> None:
    """Start the embedded PostgreSQL and bring the schema to the latest migration."""
    from mapsvc.commands.common import open_engine

    config = from_environment()
    _embedded(config)
    engine = open_engine(config)
    click.echo(f"database ready: {engine.url.render_as_string(hide_password=True)}")


@db_group.command("stop")
def stop() -> None:
    """Stop the embedded PostgreSQL."""
    pg = _embedded(from_environment())
    try:
        pg.stop()
    except DatabaseError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("database stopped")


@db_group.command("status")
def status() -> None:
    """Say whether the database runs, and where."""
    from mapsvc.db import check_connection

    config = from_environment()
    if config.get("DATABASE_URL"):
        try:
            v = check_connection(make_engine(config["DATABASE_URL"]))
        except DatabaseError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"external database up: PostgreSQL {v['postgresql']}, PostGIS {v['postgis']}")
        return
    pg = EmbeddedPostgres(config["VAR_DIR"])
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

    config = from_environment()
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
