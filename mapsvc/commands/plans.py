"""CLI commands: ``mapsvc plan create|list|show|validate|diff|publish|export|import|auto``."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mapsvc.commands.common import (
    cli_actor,
    dry_run_option,
    one_transaction,
    open_engine,
    settings,
)
from mapsvc.core.errors import ServiceError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


@click.group("plan")
def plan_group() -> None:
    """Plans of grids: draft, check, compare and publish new grids for communities."""


def _run(fn: Callable[[Any], Any], *, dry_run: bool = False) -> Any:
    """``fn(session)`` in one transaction; a service error is one line on stderr."""
    engine = open_engine()
    try:
        with one_transaction(engine, dry_run) as session:
            return fn(session)
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        engine.dispose()


def _target(low: int, high: int) -> tuple[int, int]:
    if not 0 < low <= high:
        raise click.BadParameter(f"need 0 < min ≤ max, got {low} and {high}", param_hint="--min")
    return low, high


target_options = [
    click.option(
        "--min", "low", default=300, show_default=True, help="Households per grid, at least."
    ),
    click.option(
        "--max", "high", default=500, show_default=True, help="Households per grid, at most."
    ),
]


def with_target(fn: Callable) -> Callable:
    for option in reversed(target_options):
        fn = option(fn)
    return fn


@plan_group.command("create")
@click.option("--name", required=True, help="The plan's name.")
@click.option(
    "--community",
    "communities",
    multiple=True,
    required=True,
    help="Community code (repeat for several).",
)
@click.option(
    "--from-file",
    "file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Start from the grids of a file instead of the current grids.",
)
@click.option(
    "--crs", default=None, help="CRS of the file when it does not say (EPSG:4490, gcj02 …)."
)
@dry_run_option
def create_cmd(
    name: str, communities: tuple[str, ...], file: Path | None, crs: str | None, dry_run: bool
) -> None:
    """A new draft: a copy of the communities' current grids, or the grids of a file."""
    from mapsvc.services import plans

    def work(session: Session) -> Any:
        grids = plans.read_plan_file(file, crs=crs) if file else None
        plan = plans.create_plan(
            session,
            name=name,
            community_codes=list(communities),
            grids=grids,
            source="file" if file else "current",
            author=cli_actor().username,
        )
        return plans.plan_summary(session, plan)

    s = _run(work, dry_run=dry_run)
    click.echo(
        f"plan {s['id']} {s['name']!r}: {s['grids']} grids in {', '.join(c['code'] for c in s['communities'])}"
    )
    if dry_run:
        click.echo("dry run: nothing written")


@plan_group.command("list")
def list_cmd() -> None:
    """Every plan, newest first."""
    from mapsvc.services import plans

    rows = _run(plans.list_plans)
    if not rows:
        click.echo("no plans")
    for p in rows:
        communities = ",".join(c["code"] for c in p["communities"])
        published = f" on {p['published_on']}" if p["published_on"] else ""
        click.echo(
            f"{p['id']:>4}  {p['status']}{published}  {p['grids']:>3} grids  {communities}  {p['name']}  ({p['author']})"
        )


@plan_group.command("show")
@click.argument("plan_id", type=int)
@with_target
@click.option("--json", "as_json", is_flag=True, help="Print the grids as JSON.")
def show_cmd(plan_id: int, low: int, high: int, as_json: bool) -> None:
    """A plan's grids with their workload next to the household target."""
    from mapsvc.services import plans

    target = _target(low, high)

    def work(session: Session) -> Any:
        return plans.plan_summary(session, plans.get_plan(session, plan_id)), plans.workload(
            session, plan_id, target=target, settings=settings()
        )

    summary, rows = _run(work)
    if as_json:
        click.echo(
            json.dumps({"plan": summary, "grids": rows}, ensure_ascii=False, indent=1, default=str)
        )
        return
    click.echo(
        f"plan {summary['id']} {summary['name']!r} ({summary['status']}), target {low}-{high} households"
    )
    click.echo(
        f"{'grid':<14}{'households':>11}{'population':>11}{'streets m':>10}{'incid./mo':>10}{'staff':>6}  status"
    )
    for r in rows:
        off = f" ({r['off_by']:+d})" if r["off_by"] else ""
        click.echo(
            f"{r['code']:<14}{r['households']:>11}{r['population']:>11}{r['segment_m']:>10.0f}"
            f"{r['incidents_per_month']:>10.1f}{r['staff']:>6}  {r['status']}{off}"
        )


def _print_problems(result: dict) -> None:
    for e in result["errors"]:
        click.echo(f"error: {e['community']}: {e['message']}")
    for w in result["warnings"]:
        click.echo(f"warning: {w['community']}: {w['message']}")


@plan_group.command("validate")
@click.argument("plan_id", type=int)
@with_target
def validate_cmd(plan_id: int, low: int, high: int) -> None:
    """Check every rule (valid, inside, no overlap or gap, contiguous); exit 1 on errors."""
    from mapsvc.services import plans

    result = _run(lambda s: plans.validate_plan(s, plan_id, target=_target(low, high)))
    _print_problems(result)
    click.echo(
        f"plan {plan_id}: {len(result['errors'])} error(s), {len(result['warnings'])} warning(s)"
    )
    if not result["ok"]:
        raise SystemExit(1)


def _metric_rows(current: dict, plan: dict) -> list[tuple[str, Any, Any]]:
    names = [
        ("grids", "count"),
        ("households min", "households_min"),
        ("households median", "households_median"),
        ("households max", "households_max"),
        ("share within target", "within_target_share"),
        ("compactness (Polsby-Popper) mean", "compactness_mean"),
        ("compactness min", "compactness_min"),
        ("cut length m", "cut_length_m"),
    ]
    return [(label, current.get(key), plan.get(key)) for label, key in names]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:,.0f}"
    return "-" if v is None else str(v)


@plan_group.command("diff")
@click.argument("plan_id", type=int)
@with_target
def diff_cmd(plan_id: int, low: int, high: int) -> None:
    """The plan against the current grids: metrics side by side, changed grids."""
    from mapsvc.services import plans

    d = _run(lambda s: plans.compare_plan(s, plan_id, target=_target(low, high)))
    click.echo(f"{'':<34}{'current':>12}{'plan':>12}")
    for label, a, b in _metric_rows(d["current"], d["plan"]):
        click.echo(f"{label:<34}{_fmt(a):>12}{_fmt(b):>12}")
    click.echo(f"changed or new: {', '.join(d['changed']) or 'none'}")
    click.echo(f"removed: {', '.join(d['removed']) or 'none'}")


@plan_group.command("publish")
@click.argument("plan_id", type=int)
@click.option(
    "--on",
    "day",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="First day of the new grids (default today).",
)
@with_target
@dry_run_option
def publish_cmd(plan_id: int, day: dt.datetime | None, low: int, high: int, dry_run: bool) -> None:
    """Make the plan's grids the live ones: old grids end, posts and open incidents move."""
    from mapsvc.services import plans

    first = day.date() if day else settings().today()
    r = _run(
        lambda s: plans.publish(
            s, plan_id, day=first, author=cli_actor().username, target=_target(low, high)
        ),
        dry_run=dry_run,
    )
    click.echo(
        f"plan {plan_id} {'checked (dry run)' if dry_run else 'published'} from {r['day']}: {len(r['grids_ended'])} grids ended, {len(r['grids_added'])} added"
    )
    for h in r["heads"]:
        click.echo(
            f"grid head {h['name']} (staff {h['staff_id']}): grid {h['from_grid']} -> {h['to_grid']}"
        )
    for p in r["posts_not_moved"]:
        click.echo(f"not moved: {p['role']} {p['name']} of grid {p['from_grid']}: {p['reason']}")
    if r["grids_without_head"]:
        click.echo(f"grids without a head: {', '.join(r['grids_without_head'])}")
    click.echo(
        f"{r['members_moved']} grid members moved; {r['incidents_relinked']} open incidents re-linked"
    )
    for m in r["incidents_moved"]:
        click.echo(f"incident {m['id']}: grid {m['from']} -> {m['to'] or 'none'}")
    if dry_run:
        click.echo("dry run: nothing written")


@plan_group.command("export")
@click.argument("plan_id", type=int)
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["gpkg", "geojson", "shp"]),
    default=None,
    help="Default: from the output's suffix.",
)
@click.option(
    "--crs",
    "datum",
    default="wgs84",
    show_default=True,
    help="wgs84, cgcs2000 (EPSG:4490) or gcj02.",
)
def export_cmd(plan_id: int, output: Path, fmt: str | None, datum: str) -> None:
    """Write a plan's grids for QGIS (GeoPackage, GeoJSON or zipped Shapefile)."""
    import shutil
    import tempfile

    from mapsvc.services import plans

    name = output.name.lower()
    fmt = fmt or (
        "shp"
        if name.endswith(".zip")
        else "geojson"
        if name.endswith((".geojson", ".json"))
        else "gpkg"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = _run(lambda s: plans.export_plan(s, plan_id, fmt, Path(tmp), datum=datum))
        shutil.copyfile(path, output)
    click.echo(f"wrote {output} ({fmt}, {datum})")


@plan_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--plan", "plan_id", type=int, required=True, help="The draft to update.")
@click.option(
    "--crs", default=None, help="CRS of the file when it does not say (EPSG:4490, gcj02 …)."
)
@dry_run_option
def import_cmd(file: Path, plan_id: int, crs: str | None, dry_run: bool) -> None:
    """Bring a plan back from QGIS: its grids replace the draft's; prints what changed."""
    from mapsvc.services import plans

    r = _run(
        lambda s: plans.import_plan_file(s, plan_id, file, author=cli_actor().username, crs=crs),
        dry_run=dry_run,
    )
    click.echo(
        f"plan {plan_id}: {len(r['added'])} added, {len(r['removed'])} removed, {len(r['changed'])} changed, {r['unchanged']} unchanged"
    )
    for code in r["added"]:
        click.echo(f"added {code}")
    for code in r["removed"]:
        click.echo(f"removed {code}")
    for c in r["changed"]:
        click.echo(f"changed {c['code']}: {', '.join(c['what'])}")
    if dry_run:
        click.echo("dry run: nothing written")


@plan_group.command("auto")
@click.option(
    "--community",
    "communities",
    multiple=True,
    required=True,
    help="Community code (repeat for several).",
)
@click.option(
    "--grids",
    type=int,
    default=None,
    help="Number of grids (one community); default: what the bounds need.",
)
@with_target
@click.option("--lock", multiple=True, help="Code of a current grid to keep as it is (repeat).")
@click.option(
    "--from-current",
    is_flag=True,
    help="Start from the current grids and move as few households as possible.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--name", default=None, help="The plan's name.")
@dry_run_option
def auto_cmd(
    communities: tuple[str, ...],
    grids: int | None,
    low: int,
    high: int,
    lock: tuple[str, ...],
    from_current: bool,
    seed: int,
    name: str | None,
    dry_run: bool,
) -> None:
    """Automatic grids from the planning units: contiguous, compact, within the bounds."""
    from mapsvc.commands.common import progress
    from mapsvc.services import plans

    def work(session: Session) -> Any:
        plan, reports = plans.auto_plan(
            session, list(communities), author=cli_actor().username, name=name, grids=grids,
            target=_target(low, high), lock=list(lock), from_current=from_current, seed=seed,
            progress=progress,
        )  # fmt: skip
        return plans.plan_summary(session, plan), reports

    summary, reports = _run(work, dry_run=dry_run)
    for r in reports:
        moved = (
            ""
            if r["moved_share"] is None
            else f", {r['moved_share']:.1%} of households change grid"
        )
        click.echo(
            f"community {r['community']}: {r['grids']} grids, households {min(r['households'])}-"
            f"{max(r['households'])}, Polsby-Popper mean {r['polsby_popper_mean']:.3f} "
            f"(min {r['polsby_popper_min']:.3f}){moved}, {r['seconds']:.1f} s"
        )
    click.echo(
        f"plan {summary['id']} {summary['name']!r}: {summary['grids']} grids (draft; check it with: mapsvc plan validate {summary['id']})"
    )
    if dry_run:
        click.echo("dry run: nothing written")


COMMANDS = [plan_group]
