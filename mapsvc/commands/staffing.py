"""``mapsvc staffing coverage|density|quota``: the staffing figures from the command line.

Each command prints a short table (or JSON with ``--json``); ``quota`` also writes the
CSV / XLSX exports planners send on. All take ``--date`` so past dates work.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click
from sqlalchemy.orm import Session

from mapsvc.commands.common import open_engine, settings


def _day(value: str | None) -> dt.date:
    from mapsvc.core.errors import BadRequest
    from mapsvc.core.values import parse_date

    try:
        return parse_date(value, "--date", settings().today())
    except BadRequest as exc:
        raise click.BadParameter(str(exc), param_hint="--date") from None


def _fmt(v: object) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.2f}"
    return str(v)


def _table(rows: list[dict], cols: list[tuple[str, str]]) -> None:
    """Print ``rows`` as an aligned text table with ``(key, header)`` columns."""
    cells = [[h for _, h in cols]] + [[_fmt(r.get(k)) for k, _ in cols] for r in rows]
    widths = [max(_width(row[i]) for row in cells) for i in range(len(cols))]
    for n, row in enumerate(cells):
        click.echo(
            "  ".join(_pad(c, w, i == 0) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        )
        if n == 0:
            click.echo("  ".join("-" * w for w in widths))


def _width(text: str) -> int:
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int, left: bool) -> str:
    fill = " " * (width - _width(text))
    return text + fill if left else fill + text


@click.group("staffing")
def staffing() -> None:
    """Coverage, density and quotas of grid and alley staff."""


@staffing.command("coverage")
@click.option("--date", "date_", help="Posts as of this day (YYYY-MM-DD; default today).")
@click.option("--list", "list_all", is_flag=True, help="List every uncovered grid and segment.")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
def coverage_cmd(date_: str | None, list_all: bool, as_json: bool) -> None:
    """Grids without a head or with too few members, alley segments without a chief."""
    from mapsvc.services.coverage import coverage_report

    day = _day(date_)
    cfg = settings()
    engine = open_engine(cfg)
    with Session(engine) as s:
        rep = coverage_report(s, day, members_required=int(cfg.grid_members_required))
    if as_json:
        click.echo(json.dumps(rep, ensure_ascii=False, indent=1))
        return
    sm, un = rep["summary"], rep["uncovered"]
    click.echo(f"Coverage on {rep['date']} (grid members required: {rep['members_required']})")
    click.echo(
        f"  grids {sm['grids']}: no head {sm['grids_no_head']}, too few members "
        f"{sm['grids_understaffed']}, fully staffed {sm['grids_staffed']} "
        f"(headed {_fmt(sm['grids_headed_pct'])} %, several heads {sm['grids_multiple_heads']})"
    )
    click.echo(
        f"  alley segments {sm['segments']}: without a chief {sm['segments_no_chief']} "
        f"({_fmt(sm['segments_no_chief_length_m'])} m)"
    )
    click.echo("")
    _table(
        rep["subdistricts"],
        [
            ("name", "subdistrict"),
            ("grids", "grids"),
            ("grids_no_head", "no head"),
            ("grids_understaffed", "short"),
            ("grids_headed_pct", "headed %"),
            ("segments", "segments"),
            ("segments_no_chief", "no chief"),
        ],
    )
    limit = None if list_all else 10
    for title, key, fmt in (
        ("Uncovered grids", "grids", lambda g: f"{g['code']} {g['community_name']}: {g['status']}"),
        ("Segments without a chief", "segments", lambda x: f"{x['code']} {x['name'] or ''}"),
        ("Grids with several heads", "multiple_heads", lambda g: f"{g['code']} ({g['heads']})"),
    ):
        items = un[key]
        if not items:
            continue
        click.echo(f"\n{title}: {len(items)}")
        for it in items[:limit]:
            click.echo(f"  {fmt(it)}")
        if limit and len(items) > limit:
            click.echo(f"  ... {len(items) - limit} more (--list shows all)")


@staffing.command("density")
@click.option(
    "--level",
    type=click.Choice(["grid", "community", "subdistrict", "district"]),
    default="subdistrict",
    show_default=True,
)
@click.option("--date", "date_", help="Posts as of this day (YYYY-MM-DD; default today).")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def density_cmd(level: str, date_: str | None, as_json: bool) -> None:
    """Staff per km² (all and per role group) and service centres per km²."""
    from mapsvc.services.density import density

    day = _day(date_)
    engine = open_engine()
    with Session(engine) as s:
        rows = density(s, level, day)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    click.echo(f"Staff density by {level} on {day.isoformat()}")
    cols = [
        ("name", level),
        ("area_km2", "km²"),
        ("staff", "staff"),
        ("staff_per_km2", "staff/km²"),
        ("grid_staff_per_km2", "grid/km²"),
        ("alley_chiefs_per_km2", "alley/km²"),
        ("centres_per_km2", "centres/km²"),
    ]
    if level != "grid":
        cols[5:5] = [
            ("community_workers_per_km2", "workers/km²"),
            ("dispatched_per_km2", "dispatched/km²"),
        ]
    _table(rows, cols)


@staffing.command("quota")
@click.option("--date", "date_", help="Posts as of this day (YYYY-MM-DD; default today).")
@click.option(
    "--group",
    type=click.Choice(["all", "community_workers", "grid_staff", "alley_chiefs", "dispatched"]),
    default=None,
    help="Staff counted against the quota (default: MAPSVC_QUOTA_GROUP or community workers).",
)
@click.option("-a", "a", type=float, help="Coefficient per 10,000 residents.")
@click.option("-b", "b", type=float, help="Coefficient per km².")
@click.option("-c", "c", type=float, help="Coefficient per 100 enterprises.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write CSV here.")
@click.option("--xlsx", "xlsx_path", type=click.Path(dir_okay=False), help="Write XLSX here.")
@click.option("--lang", default="zh_CN", show_default=True, help="Export headers: zh_CN or en.")
def quota_cmd(
    date_: str | None,
    group: str | None,
    a: float | None,
    b: float | None,
    c: float | None,
    csv_path: str | None,
    xlsx_path: str | None,
    lang: str,
) -> None:
    """Required staff per community (a×pop/10000 + b×km² + c×enterprises/100) vs actual."""
    from mapsvc.core.errors import ValidationError
    from mapsvc.services import quota as q

    day = _day(date_)
    cfg = settings()
    try:
        coef = q.coefficients(cfg, {"a": a, "b": b, "c": c})
    except ValidationError as exc:
        raise click.BadParameter(exc.message) from None
    group = group or str(cfg.quota_group or q.DEFAULT_GROUP)
    engine = open_engine(cfg)
    with Session(engine) as s:
        table = q.quota_table(s, day, coef, group)
    if csv_path:
        Path(csv_path).write_text(q.to_csv(table, lang), encoding="utf-8-sig")
        click.echo(f"wrote {csv_path}", err=True)
    if xlsx_path:
        Path(xlsx_path).write_bytes(q.to_xlsx(table, lang))
        click.echo(f"wrote {xlsx_path}", err=True)
    t = table["totals"]
    click.echo(
        f"Quota on {table['date']} for {group}: required = {coef['a']:g}×pop/10000 + "
        f"{coef['b']:g}×km² + {coef['c']:g}×enterprises/100"
    )
    short = sorted((r for r in table["rows"] if r["gap"] < 0), key=lambda r: r["gap"])
    _table(
        short[:20],
        [
            ("name", "community"),
            ("subdistrict_name", "subdistrict"),
            ("required", "required"),
            ("actual", "actual"),
            ("gap", "gap"),
        ],
    )
    if len(short) > 20:
        click.echo(f"... {len(short) - 20} more communities short")
    click.echo(
        f"\nrequired {t['required']}, actual {t['actual']}: shortfall {t['shortfall']} in "
        f"{t['communities_short']} communities, surplus {t['surplus']} in "
        f"{t['communities_surplus']}"
    )


COMMANDS: list = [staffing]
