"""``mapsvc audit``: export the audit trail as CSV or JSON lines, with the page's filters."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mapsvc.commands.common import open_engine, progress, settings


@click.command("audit")
@click.option("--user", help="A user name, or an account id (all digits).")
@click.option("--table", help="Only this table's rows (e.g. incident).")
@click.option("--record", help="Only this record (its primary key, e.g. 42).")
@click.option(
    "--action", type=click.Choice(["insert", "update", "delete", "truncate"]), help="Only this."
)
@click.option("--from", "date_from", metavar="YYYY-MM-DD", help="From this day (included).")
@click.option("--to", "date_to", metavar="YYYY-MM-DD", help="Up to this day (included).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl"]),
    default="csv",
    show_default=True,
    help="CSV (UTF-8 with a byte order mark) or JSON lines.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write to this file (default: standard output).",
)
def audit_cmd(
    user: str | None,
    table: str | None,
    record: str | None,
    action: str | None,
    date_from: str | None,
    date_to: str | None,
    fmt: str,
    output: Path | None,
) -> None:
    """Export the audit trail (who wrote what, when, from where), oldest first.

    Days are the district's (TIMEZONE). Rows are streamed, so exports of any size run in
    little memory; a progress bar on the command line counts them.
    """
    from mapsvc.core.errors import ValidationError
    from mapsvc.services import audit

    config = settings()
    try:
        f = audit.AuditFilter.from_params(
            {
                "user": user,
                "table": table,
                "record": record,
                "action": action,
                "date_from": date_from,
                "date_to": date_to,
            }
        )
    except ValidationError as exc:
        raise click.ClickException(exc.message) from None
    engine = open_engine(config)
    lines = audit.csv_lines if fmt == "csv" else audit.jsonl_lines
    out = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
    try:
        # one snapshot: the progress total counts exactly the rows written out
        with (
            engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn,
            conn.begin(),
        ):
            total = audit.count(conn, f, tz=config.tz)
            rows = audit.export_rows(conn, f, tz=config.tz)
            with progress(rows, total=total, desc="audit rows", unit="row") as bar:
                for line in lines(bar):
                    out.write(line)
    finally:
        if output:
            out.close()
    if output:
        click.echo(f"{total:,} audit rows written to {output}", err=True)


COMMANDS = [audit_cmd]
