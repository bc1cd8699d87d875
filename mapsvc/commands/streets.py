"""CLI: ``mapsvc streets import|assign`` and ``mapsvc patrol route|routes|upload|compliance``."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click

from mapsvc.commands.common import (
    dry_run_option,
    one_transaction,
    open_engine,
    progress,
    settings,
)
from mapsvc.core.errors import ServiceError
from mapsvc.db import session_scope


def _fail(exc: ServiceError) -> click.ClickException:
    return click.ClickException(exc.message)


@click.group("streets")
def streets_group() -> None:
    """Street network: OpenStreetMap import and chief assignments."""


@streets_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--bbox", default=None, help="minx,miny,maxx,maxy (WGS84) to clip the extract.")
@dry_run_option
def import_command(file: str, bbox: str | None, dry_run: bool) -> None:
    """Load walkable streets from FILE.osm.pbf into alley_segment (re-import keeps ids)."""
    from mapsvc.core.errors import BadRequest
    from mapsvc.core.values import parse_bbox
    from mapsvc.services import streets

    try:
        box = parse_bbox(bbox)
    except BadRequest as exc:
        raise click.BadParameter(str(exc), param_hint="--bbox") from None
    engine = open_engine()
    try:
        with one_transaction(engine, dry_run) as session:
            s = streets.import_osm(session, file, box, progress=progress)
    except ServiceError as exc:
        raise _fail(exc) from None
    click.echo(
        f"{s['file']}: {s['ways']} ways -> {s['segments']} segments "
        f"({s['inserted']} new, {s['updated']} updated, {s['removed']} removed), "
        f"{s['length_m'] / 1000:.1f} km"
    )
    if s["stale_kept_assigned"]:
        click.echo(
            f"kept {len(s['stale_kept_assigned'])} segments missing from the file because "
            f"they carry assignments: {', '.join(s['stale_kept_assigned'][:10])}"
        )
    click.echo(f"Street data {s['attribution']} (ODbL)")
    if dry_run:
        click.echo("dry run: nothing written")


@streets_group.command("assign")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@dry_run_option
def assign_command(file: str, dry_run: bool) -> None:
    """Assign segments from a CSV with columns segment,staff[,role][,valid_from]."""
    from mapsvc.services import streets

    engine = open_engine()
    try:
        with one_transaction(engine, dry_run) as session:
            out = streets.assign_csv(session, Path(file).read_bytes())
    except ServiceError as exc:
        raise _fail(exc) from None
    click.echo(f"assigned {out['assigned']} segments")
    if dry_run:
        click.echo("dry run: nothing written")


@click.group("patrol")
def patrol_group() -> None:
    """Patrol routes (rural postman), GPS tracks and compliance."""


def _speed() -> float:
    return float(settings().walking_speed_kmh)


def _start(text: str | None) -> tuple[float, float] | None:
    if not text:
        return None
    try:
        lon, lat = (float(x) for x in text.split(","))
    except ValueError:
        raise click.BadParameter("use lon,lat", param_hint="--start") from None
    return lon, lat


@patrol_group.command("route")
@click.option("--chief", type=int, required=True, help="Staff id of the alley chief.")
@click.option("--start", default=None, help="Office as lon,lat (default: on their segments).")
@click.option("--gpx", "gpx_path", type=click.Path(dir_okay=False), help="Write the route as GPX.")
@click.option("--geojson", "geojson_path", type=click.Path(dir_okay=False), help="Write GeoJSON.")
def route_command(
    chief: int, start: str | None, gpx_path: str | None, geojson_path: str | None
) -> None:
    """The shortest closed patrol walk over a chief's segments."""
    from mapsvc.models import Staff
    from mapsvc.services import patrol_routes

    engine = open_engine()
    speed = _speed()
    try:
        with session_scope(engine) as session:
            res = patrol_routes.route_for_chief(session, chief, start=_start(start))
            staff = session.get(Staff, chief)
    except ServiceError as exc:
        raise _fail(exc) from None
    s = res.summary(speed)
    click.echo(
        f"chief {chief} ({staff.name}): {s['segments']} segments in {s['components']} piece(s); "
        f"route {s['total_m']:.0f} m (required {s['required_m']:.0f} m, connector "
        f"{s['connector_m']:.0f} m), lower bound {s['lower_bound_m']:.0f} m, ratio "
        f"{s['ratio']:.3f}, {s['walking_minutes']:.0f} min at {speed} km/h [{s['method']}]"
    )
    if s["unreachable_segments"]:
        click.echo(
            f"warning: {len(s['unreachable_segments'])} assigned segments cannot be reached on "
            f"the street network and are not in the route: {s['unreachable_segments'][:10]}"
        )
    if gpx_path:
        Path(gpx_path).write_text(
            res.to_gpx(f"Patrol {staff.name}", speed, settings=settings()), encoding="utf-8"
        )
        click.echo(f"GPX written to {gpx_path}")
    if geojson_path:
        Path(geojson_path).write_text(
            json.dumps(res.to_geojson(speed, staff_id=chief), ensure_ascii=False), encoding="utf-8"
        )
        click.echo(f"GeoJSON written to {geojson_path}")
    if res.attribution():
        click.echo(f"Street data {res.attribution()}")


@patrol_group.command("routes")
@click.option("--grid", default=None, help="Grid code: every chief with segments in it.")
@click.option("--all", "all_", is_flag=True, help="Every chief of the district.")
def routes_command(grid: str | None, all_: bool) -> None:
    """Routes of many chiefs with a progress bar, then a summary table."""
    from mapsvc.services import patrol_routes

    if not grid and not all_:
        raise click.UsageError("give --grid CODE or --all")
    engine = open_engine()
    speed = _speed()
    out = []
    failed = []
    try:
        with session_scope(engine) as session:
            chiefs = patrol_routes.chiefs(session, None if all_ else grid)
            graph = patrol_routes.graph_for(session)
            for staff_id, name, _n in progress(chiefs, desc="routes", unit="chief"):
                try:
                    res = patrol_routes.route_for_chief(session, staff_id, graph=graph)
                except ServiceError as exc:  # one chief's problem does not stop the others
                    failed.append((staff_id, name, exc.message))
                    continue
                out.append((staff_id, name, res.summary(speed)))
    except ServiceError as exc:
        raise _fail(exc) from None
    if not out:
        click.echo("no chiefs with segments")
        return
    click.echo(
        f"{'chief':>6} {'name':<10} {'segs':>5} {'pieces':>6} {'total m':>9} "
        f"{'ratio':>6} {'min':>5}"
    )
    for staff_id, name, s in out:
        click.echo(
            f"{staff_id:>6} {str(name)[:10]:<10} {s['segments']:>5} {s['components']:>6} "
            f"{s['total_m']:>9.0f} {s['ratio']:>6.3f} {s['walking_minutes']:>5.0f}"
        )
    tot = sum(s["total_m"] for _i, _n, s in out)
    exact = sum(1 for _i, _n, s in out if s["exact"])
    click.echo(f"{len(out)} routes, {tot / 1000:.1f} km in all; {exact} proven optimal")
    cut_off = [(i, n, s["unreachable_segments"]) for i, n, s in out if s["unreachable_segments"]]
    for staff_id, name, segs in cut_off:
        click.echo(
            f"chief {staff_id} ({name}): {len(segs)} assigned segments unreachable on the "
            f"street network, left out: {segs[:10]}"
        )
    for staff_id, name, msg in failed:
        click.echo(f"chief {staff_id} ({name}): no route: {msg}", err=True)


@patrol_group.command("upload")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--staff", type=int, required=True, help="Staff id of the person who walked.")
@click.option("--crs", default=None, help="wgs84 (default), gcj02 or bd09.")
@click.option("--day", default=None, help="YYYY-MM-DD (default: date of the first fix, CST).")
def upload_command(file: str, staff: int, crs: str | None, day: str | None) -> None:
    """Store a GPS track (GPX or JSON) for a person."""
    from mapsvc.services import patrol

    fmt = "gpx" if file.lower().endswith(".gpx") else None
    engine = open_engine()
    try:
        with session_scope(engine) as session:
            r = patrol.upload_track(
                session,
                staff,
                Path(file).read_bytes(),
                fmt=fmt,
                crs=crs,
                day=dt.date.fromisoformat(day) if day else None,
                settings=settings(),
            )
    except ServiceError as exc:
        raise _fail(exc) from None
    click.echo(
        f"track {r['track_id']} for staff {staff} on {r['day']}: {r['points_kept']} of "
        f"{r['points_total']} points kept, {r['points_dropped']} dropped, {r['length_m']:.0f} m"
    )
    for d in r["dropped"][:20]:
        click.echo(f"  dropped point {d['index']}: {d['reason']} {d['speed_kmh'] or ''}")


@patrol_group.command("compliance")
@click.option("--day", default=None, help="YYYY-MM-DD (default today).")
@click.option("--week", is_flag=True, help="The week of the day instead of the day.")
def compliance_command(day: str | None, week: bool) -> None:
    """Share of assigned segments patrolled, per chief and district-wide."""
    from mapsvc.services import patrol

    cfg = settings()
    d = dt.date.fromisoformat(day) if day else cfg.today()
    engine = open_engine()
    with session_scope(engine) as session:
        r = (
            patrol.week_summary(session, d, settings=cfg)
            if week
            else patrol.district_compliance(session, d, settings=cfg)
        )
    label = f"week {r['week_start']}..{r['week_end']}" if week else r["day"]
    share = "-" if r["share"] is None else f"{100 * r['share']:.1f}%"
    click.echo(
        f"{label}: {r['segments_patrolled']}/{r['segments_assigned']} assigned segments "
        f"patrolled ({share})"
    )
    for c in r["chiefs"]:
        s = "-" if c["share"] is None else f"{100 * c['share']:.0f}%"
        extra = f"  visits {c['visits']}" if week else ""
        click.echo(
            f"  {c['staff_id']:>6} {str(c['name'])[:12]:<12} {c['patrolled']:>3}/"
            f"{c['segments']:<3} {s:>5}{extra}"
        )


COMMANDS = [streets_group, patrol_group]
