"""``mapsvc incidents import|reroute|overdue|to-confirm`` and ``mapsvc geocode``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mapsvc.config import Settings


@click.group("incidents")
def incidents_group() -> None:
    """Incidents: bulk import, re-routing, overdue and to-confirm lists."""


@incidents_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--crs",
    default="EPSG:4326",
    show_default=True,
    help="Coordinates of the file: EPSG:4326, EPSG:4490, gcj02 or bd09.",
)
@click.option(
    "--map",
    "map_spec",
    help="Column names and date format, e.g. 'id=case_no,lat=y,lon=x,opened=受理时间,"
    "date_format=%Y/%m/%d %H:%M'. Keys: id lat lon category opened closed due status "
    "severity description address date_format timezone.",
)
@click.option(
    "--mapping",
    "mapping_file",
    type=click.Path(exists=True, dir_okay=False),
    help="A mapping file (JSON object or key=value lines) with the same keys as --map.",
)
@click.option(
    "--skip-bad",
    "skip_bad",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Import the good rows and write the bad ones, with reasons, to this CSV file.",
)
@click.option("--encoding", default="utf-8-sig", show_default=True)
@click.option(
    "--source",
    type=click.Choice(["hotline", "patrol", "resident"]),
    default="hotline",
    show_default=True,
    help="Where the incidents came from.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Run every check and the routing and print the summary; write nothing.",
)
def import_cmd(
    file: Path,
    crs: str,
    map_spec: str | None,
    mapping_file: str | None,
    skip_bad: Path | None,
    encoding: str,
    source: str,
    dry_run: bool,
) -> None:
    """Import incidents from FILE.csv, routing each to grid, segment and chief.

    By default a file with any bad row imports nothing and the bad rows are listed (row
    number, column, reason).
    """
    from mapsvc.commands.common import one_transaction, open_engine, progress
    from mapsvc.core.errors import ServiceError, ValidationError
    from mapsvc.services.incident_import import (
        ColumnMapping,
        ImportRejected,
        import_csv,
        write_bad_rows,
    )

    config = Settings.from_environment()
    try:
        mapping = ColumnMapping.from_options(map_spec, mapping_file)
    except ValidationError as exc:
        raise click.ClickException(exc.message) from None
    engine = open_engine(config)
    try:
        with one_transaction(engine, dry_run) as session:
            result = import_csv(
                session.connection(),
                file,
                crs=crs,
                mapping=mapping,
                skip_bad=skip_bad is not None,
                settings=config,
                encoding=encoding,
                source=source,
                progress=progress,
            )
    except ImportRejected as exc:
        r = exc.result
        for b in r.bad[:50]:
            click.echo(f"row {b['row']}: {b['column']}: {b['reason']} ({b['value']!r})", err=True)
        if len(r.bad) > 50:
            click.echo(f"... and {len(r.bad) - 50} more problems", err=True)
        raise click.ClickException(
            f"{r.bad_rows} of {r.rows} rows are bad; nothing was imported "
            "(use --skip-bad FILE to import the good rows)"
        ) from None
    except ServiceError as exc:  # a bad file, or an id stored meanwhile (a Conflict)
        raise click.ClickException(exc.message) from None
    if skip_bad is not None and result.bad:
        n = write_bad_rows(skip_bad, file, result.bad, encoding=encoding)
        click.echo(f"{n} bad rows written with their reasons to {skip_bad}")
    secs = result.seconds.get("total", 0.0) or 1e-9
    verb = "checked (dry run)" if dry_run else "imported"
    click.echo(
        f"{verb} {result.imported} of {result.rows} rows in {secs:.1f} s "
        f"({result.imported / secs:,.0f} rows/s); bad rows: {result.bad_rows}; "
        f"on an alley segment: {result.routed_to_segment}; "
        f"location to confirm: {result.to_confirm}"
    )
    if result.located_by:
        from mapsvc.services.geocode import PRECISIONS

        classes = ", ".join(
            f"{p} {result.located_by[p]}" for p in PRECISIONS if p in result.located_by
        )
        click.echo(
            f"located by address: {sum(result.located_by.values())} ({classes}); "
            "each is flagged location to confirm"
        )
    for point in result.fallback_points:
        click.echo(
            f"fallback point {point['lon']:.6f},{point['lat']:.6f} (WGS84): {point['rows']} rows "
            "share it exactly, so it is the source's stand-in for no location; they are "
            "flagged location to confirm (MAPSVC_INCIDENT_FALLBACK_ROWS sets how many make one)"
        )
    if dry_run:
        click.echo("dry run: nothing written")


@incidents_group.command("reroute")
def reroute_cmd() -> None:
    """Re-route every open incident (after grids, segments or assignments change)."""
    from mapsvc.commands.common import open_engine, progress
    from mapsvc.services.routing import reroute_open

    config = Settings.from_environment()
    engine = open_engine(config)
    with progress(total=1, desc="reroute", unit="step") as bar, engine.begin() as conn:
        n = reroute_open(
            conn,
            segment_max_m=float(config.incident_segment_max_m),
            boundary_confirm_m=float(config.incident_boundary_confirm_m),
        )
        bar.update(1)
    click.echo(f"re-routed {n} open incidents")


def _print_list(items: list[dict], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(items, ensure_ascii=False, indent=1))
        return
    for i in items:
        click.echo(
            f"{i['id']}\t{i['external_id'] or ''}\t{i['category']}\t{i['severity']}\t"
            f"{i['state']}\tdue {i['due_at']}\tgrid {i['grid_id']}\tchief {i['chief_id']}"
        )
    click.echo(f"{len(items)} incidents")


@incidents_group.command("overdue")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--limit", default=1000, show_default=True)
def overdue_cmd(as_json: bool, limit: int) -> None:
    """List open incidents past their class's time limit, most overdue first."""
    from mapsvc.commands.common import open_engine
    from mapsvc.db import session_scope
    from mapsvc.services.incidents import overdue

    with session_scope(open_engine()) as s:
        _print_list(overdue(s, limit), as_json)


@incidents_group.command("to-confirm")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--limit", default=1000, show_default=True)
def to_confirm_cmd(as_json: bool, limit: int) -> None:
    """List open incidents whose location a planner must confirm."""
    from mapsvc.commands.common import open_engine
    from mapsvc.db import session_scope
    from mapsvc.services.incidents import to_confirm

    with session_scope(open_engine()) as s:
        _print_list(to_confirm(s, limit), as_json)


@click.command("geocode")
@click.argument("addresses", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per address.")
def geocode_cmd(addresses: tuple[str, ...], as_json: bool) -> None:
    """Locate ADDRESS... with the offline geocoder, as the import and the API would.

    Prints the WGS84 point, the precision class (intersection, landmark, street, grid,
    community) and what matched, or why the address is refused. Exit code 1 when any
    address is refused, so scripts can check a hotline address before importing it.
    """
    from mapsvc.commands.common import open_engine
    from mapsvc.services.geocode import geocode_many

    engine = open_engine()
    with engine.connect() as conn:
        found = geocode_many(conn, addresses)
    refused = 0
    items = []
    for a in addresses:
        g = found[a]
        if isinstance(g, str):
            refused += 1
            items.append({"address": a, "error": g})
        else:
            items.append({"address": a, **g.to_dict()})
    if as_json:
        click.echo(json.dumps(items, ensure_ascii=False, indent=1))
    else:
        for i in items:
            if "error" in i:
                click.echo(f"{i['address']}\trefused: {i['error']}")
                continue
            extra = f"; house number {i['house_number']}" if i["house_number"] else ""
            if i["gap_m"]:
                extra += f"; streets {i['gap_m']} m apart"
            click.echo(
                f"{i['address']}\t{i['lon']:.7f},{i['lat']:.7f}\t{i['precision']}\t"
                f"matched {i['matched']}{extra}"
            )
    if refused:
        raise SystemExit(1)


COMMANDS: list = [incidents_group, geocode_cmd]
