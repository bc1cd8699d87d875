"""CLI commands: ``mapsvc staff import|add|list|end``, the roster (花名册)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from mapsvc.commands.common import dry_run_option, one_transaction, open_engine, settings
from mapsvc.core.errors import ServiceError


@click.group("staff")
def staff_group() -> None:
    """The staff roster: people, their roles and their posts (history kept)."""


def _mapping(spec: str | None) -> dict[str, str]:
    if not spec:
        return {}
    out = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise click.BadParameter(f"{part!r}: use key=column", param_hint="--map")
        out[key.strip()] = value.strip()
    return out


@staff_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--map",
    "map_spec",
    default=None,
    help="Column names, e.g. 'name=姓名,role=职务,grids=网格编码'. Keys: code name role phone "
    "grids segments valid_from valid_to.",
)
@dry_run_option
def import_cmd(file: Path, map_spec: str | None, dry_run: bool) -> None:
    """Import a roster (CSV or XLSX): people by staff code, their posts from their dates."""
    from mapsvc.services.roster import import_roster

    engine = open_engine()
    try:
        with one_transaction(engine, dry_run) as session:
            r = import_roster(session, file, mapping=_mapping(map_spec), today=settings().today())
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        engine.dispose()
    verb = "checked (dry run)" if dry_run else "imported"
    click.echo(
        f"{verb} {r.rows} rows: {r.added} people added, {r.updated} updated, "
        f"{r.posts} posts given, {r.ended} of them ended"
    )
    if dry_run:
        click.echo("dry run: nothing written")


@staff_group.command("add")
@click.argument("code")
@click.argument("name")
@click.option("--role", required=True, help="grid_head, grid_member, alley_chief, … or 网格长 …")
@click.option("--phone", default=None)
def add_cmd(code: str, name: str, role: str, phone: str | None) -> None:
    """Put a person on the roster (give posts with `streets assign` or `staff import`)."""
    from mapsvc.services.roster import add_staff

    engine = open_engine()
    try:
        with one_transaction(engine) as session:
            person = add_staff(session, code, name, role, phone=phone)
            click.echo(f"added {person.code} {person.name} ({person.role}), id {person.id}")
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        engine.dispose()


@staff_group.command("list")
@click.option("--day", default=None, help="Posts held on YYYY-MM-DD (default today).")
def list_cmd(day: str | None) -> None:
    """Everyone on the roster, with the posts held on the day."""
    from mapsvc.services.roster import list_staff

    on = dt.date.fromisoformat(day) if day else settings().today()
    engine = open_engine()
    try:
        with one_transaction(engine, dry_run=True) as session:
            people = list_staff(session, on)
    finally:
        engine.dispose()
    for p in people:
        posts = ", ".join(p["posts"]) or "-"
        click.echo(f"{p['code'] or p['id']}\t{p['name']}\t{p['role']}\t{p['phone'] or ''}\t{posts}")


@staff_group.command("end")
@click.argument("code")
@click.option("--last-day", default=None, help="Last day in post, YYYY-MM-DD (default yesterday).")
def end_cmd(code: str, last_day: str | None) -> None:
    """End every post of a person; the history stays."""
    from mapsvc.services.roster import end_staff

    last = (
        dt.date.fromisoformat(last_day) if last_day else settings().today() - dt.timedelta(days=1)
    )
    engine = open_engine()
    try:
        with one_transaction(engine) as session:
            n = end_staff(session, code, last)
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        engine.dispose()
    click.echo(f"ended {n} post(s) of {code} on {last.isoformat()}")


COMMANDS = [staff_group]
