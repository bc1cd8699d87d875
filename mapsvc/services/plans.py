"""Plans of grids: drafted, edited, checked, compared and published.

A plan (:class:`mapsvc.models.Plan`) is a named draft of the grids of one or more
communities. It starts as a copy of the current grids, from a file, or from the automatic
partition (:mod:`mapsvc.services.partition`), and is edited grid by grid. Nothing a
planner does to a draft touches the live grids: only :func:`publish` does, in one
transaction that ends the communities' grids (``valid_to``), adds the plan's
(``valid_from``) and re-links what hangs on grids (staff posts, open incidents), so every
past date keeps showing the grids, posts and figures it had.

The geometry rules (valid, inside, no overlap or gap, contiguous) and the metrics are
:mod:`mapsvc.services.plan_geometry`'s, applied here per community.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shapely
import sqlalchemy as sa
from shapely.geometry.base import BaseGeometry
from sqlalchemy.orm import Session

from mapsvc.config import Settings
from mapsvc.core.errors import Conflict, NotFound, ValidationError
from mapsvc.models import (
    Assignment,
    Community,
    Grid,
    Plan,
    PlanCommunity,
    PlanGrid,
    Staff,
    grid_on_sql,
)
from mapsvc.services import boundaries, chinacrs, exports, fields, plan_geometry
from mapsvc.services.geo import geometry_lonlat_problem
from mapsvc.services.integrity import constraint_errors
from mapsvc.services.routing import OPEN_STATES

#: the households a grid is meant to hold (the seed cities' rule: 300 to 500)
DEFAULT_TARGET = (300, 500)
#: incidents per month are averaged over this many days before the day asked about
INCIDENT_WINDOW_DAYS = 365


@dataclass(frozen=True)
class GridDraft:
    """A grid to put into a plan: from a file, from the partition, from an edit.

    ``community`` is the community's code; None lets :func:`create_plan` take the plan's
    community holding most of the grid. ``households``/``population`` None are estimated
    from the current grids it overlaps (by area share).
    """

    code: str
    geom: BaseGeometry
    community: str | None = None
    name: str | None = None
    households: int | None = None
    population: int | None = None


# --------------------------------------------------------------------------- reading


def get_plan(session: Session, plan_id: int, *, for_update: bool = False) -> Plan:
    """The plan ``plan_id`` or a :class:`NotFound` naming it."""
    plan = session.get(Plan, plan_id, with_for_update=for_update, populate_existing=for_update)
    if plan is None:
        raise NotFound(f"plan {plan_id} does not exist", field="plan")
    return plan


def _draft(plan: Plan) -> None:
    if plan.status != "draft":
        raise Conflict(
            f"plan {plan.id} ({plan.name}) is {plan.status}; only a draft can change",
            field="plan",
        )


def plan_communities(session: Session, plan_id: int) -> list[Community]:
    """The communities a plan redraws, by code."""
    return list(
        session.scalars(
            sa.select(Community)
            .join(PlanCommunity, PlanCommunity.community_id == Community.id)
            .where(PlanCommunity.plan_id == plan_id)
            .order_by(Community.code)
        )
    )


def plan_summary(session: Session, plan: Plan) -> dict[str, Any]:
    """A plan as the list and its page show it (no geometry)."""
    communities = plan_communities(session, plan.id)
    grids = session.scalar(
        sa.select(sa.func.count()).select_from(PlanGrid).where(PlanGrid.plan_id == plan.id)
    )
    return {
        "id": plan.id,
        "name": plan.name,
        "status": plan.status,
        "source": plan.source,
        "author": plan.author,
        "created_at": plan.created_at.isoformat() if plan.created_at else None,
        "published_on": plan.published_on.isoformat() if plan.published_on else None,
        "communities": [{"code": c.code, "name": c.name} for c in communities],
        "grids": int(grids or 0),
    }


def list_plans(session: Session) -> list[dict[str, Any]]:
    """Every plan, newest first."""
    plans = session.scalars(sa.select(Plan).order_by(Plan.id.desc())).all()
    return [plan_summary(session, p) for p in plans]


def _rows_to_drafts(rows: Any) -> list[plan_geometry.DraftGrid]:
    return [
        plan_geometry.DraftGrid(
            code=r.code,
            geom=shapely.from_wkb(bytes(r.wkb)),
            households=int(r.households or 0),
            population=int(r.population or 0),
        )
        for r in rows
    ]


def plan_drafts(session: Session, plan_id: int) -> dict[str, list[plan_geometry.DraftGrid]]:
    """The plan's grids per community code, as geometry-module drafts."""
    rows = session.execute(
        sa.text(
            """SELECT c.code AS community, g.code, ST_AsBinary(g.geom) AS wkb,
                      g.households, g.population
               FROM plan_grid g JOIN community c ON c.id = g.community_id
               WHERE g.plan_id = :p ORDER BY c.code, g.code"""
        ),
        {"p": plan_id},
    ).all()
    out: dict[str, list[plan_geometry.DraftGrid]] = {}
    for r in rows:
        out.setdefault(r.community, []).extend(_rows_to_drafts([r]))
    return out


def current_drafts(
    session: Session, community_ids: list[int], day: dt.date | None = None
) -> dict[str, list[plan_geometry.DraftGrid]]:
    """The grids of the communities valid on ``day`` (current by default), per community."""
    rows = session.execute(
        sa.select(
            Community.code.label("community"),
            Grid.code,
            sa.func.ST_AsBinary(Grid.geom).label("wkb"),
            Grid.households,
            Grid.population,
        )
        .join(Community, Community.id == Grid.community_id)
        .where(Grid.community_id.in_(community_ids), Grid.on(day))
        .order_by(Community.code, Grid.code)
    ).all()
    out: dict[str, list[plan_geometry.DraftGrid]] = {}
    for r in rows:
        out.setdefault(r.community, []).extend(_rows_to_drafts([r]))
    return out


def community_shapes(session: Session, communities: list[Community]) -> dict[str, BaseGeometry]:
    """Each community's polygon (lon/lat shapely), by code."""
    rows = session.execute(
        sa.select(Community.code, sa.func.ST_AsBinary(Community.geom)).where(
            Community.id.in_([c.id for c in communities])
        )
    ).all()
    return {code: shapely.from_wkb(bytes(wkb)) for code, wkb in rows}


# --------------------------------------------------------------------------- workload


def _status(households: int, target: tuple[int, int]) -> tuple[str, int]:
    """Under, within or over the target, and by how many households."""
    low, high = target
    if households < low:
        return "under", households - low
    if households > high:
        return "over", households - high
    return "within", 0


def workload(
    session: Session,
    plan_id: int | None = None,
    *,
    community_ids: list[int] | None = None,
    day: dt.date | None = None,
    target: tuple[int, int] = DEFAULT_TARGET,
    geometry: bool = False,
    settings: Settings | None = None,
) -> list[dict[str, Any]]:
    """Each grid's load next to the target: a plan's grids, or the current grids.

    Households and population are the grid's own; segment length is the length of alley
    segments inside it; incidents per month are those reported inside it over the
    :data:`INCIDENT_WINDOW_DAYS` before ``day``; staff are the grid heads and members on
    ``day`` (for a plan's grid: of the current grids it would receive at publishing, by
    largest overlap, as :func:`publish` re-links them). ``status`` is under / within /
    over the target and ``off_by`` the households by which.
    """
    settings = settings or Settings()
    day = day or settings.today()
    since = dt.datetime.combine(
        day - dt.timedelta(days=INCIDENT_WINDOW_DAYS), dt.time(), settings.tz
    )
    until = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), settings.tz)
    if plan_id is not None:
        source = "SELECT id, code, name, community_id, geom, households, population, version, updated_by FROM plan_grid WHERE plan_id = :plan"
        staff = """(SELECT count(DISTINCT a.staff_id) FROM assignment a
                     JOIN successor s ON s.old_id = a.grid_id
                    WHERE s.new_id = g.id AND a.role IN ('grid_head', 'grid_member')
                      AND a.valid_from <= :day AND (a.valid_to IS NULL OR a.valid_to >= :day))"""
        successor = f"WITH successor AS ({SUCCESSOR_SQL}) "
    else:
        source = (
            "SELECT id, code, name, community_id, geom, households, population, "
            "NULL::int AS version, NULL::text AS updated_by FROM grid "
            "WHERE community_id = ANY(:communities) AND " + grid_on_sql("grid", ":day")
        )
        staff = """(SELECT count(DISTINCT a.staff_id) FROM assignment a
                    WHERE a.grid_id = g.id AND a.role IN ('grid_head', 'grid_member')
                      AND a.valid_from <= :day AND (a.valid_to IS NULL OR a.valid_to >= :day))"""
        successor = ""
    geom_col = ", ST_AsGeoJSON(g.geom, 6) AS geometry" if geometry else ""
    rows = session.execute(
        sa.text(
            f"""{successor}SELECT g.id, g.code, g.name, c.code AS community, g.households,
                   g.population, g.version, g.updated_by,
                   ST_Area(geography(g.geom)) / 1e6 AS area_km2,
                   (SELECT COALESCE(sum(ST_Length(geography(ST_Intersection(s.geom, g.geom)))), 0)
                      FROM alley_segment s WHERE ST_Intersects(s.geom, g.geom)) AS segment_m,
                   (SELECT count(*) FROM incident i WHERE ST_Intersects(i.geom, g.geom)
                      AND i.reported_at >= :since AND i.reported_at < :until) AS incidents,
                   {staff} AS staff{geom_col}
              FROM ({source}) g JOIN community c ON c.id = g.community_id
             ORDER BY c.code, g.code"""
        ),
        {
            "plan": plan_id,
            "communities": community_ids or [],
            "day": day,
            "since": since,
            "until": until,
        },
    ).mappings()
    months = INCIDENT_WINDOW_DAYS / (365.25 / 12)
    out = []
    for r in rows:
        d = dict(r)
        d["segment_m"] = round(float(d["segment_m"]), 1)
        d["area_km2"] = round(float(d["area_km2"]), 4)
        d["incidents_per_month"] = round(d.pop("incidents") / months, 2)
        d["households_per_staff"] = round(d["households"] / d["staff"], 1) if d["staff"] else None
        d["status"], d["off_by"] = _status(int(d["households"] or 0), target)
        out.append(d)
    return out


#: each current grid of the plan's communities and the plan grid that overlaps it most
#: (where its staff go at publishing); ``:plan`` bound
SUCCESSOR_SQL = """
    SELECT DISTINCT ON (o.id) o.id AS old_id, n.id AS new_id,
           ST_Area(geography(ST_Intersection(o.geom, n.geom))) AS shared_m2
      FROM grid o
      JOIN plan_community pc ON pc.community_id = o.community_id AND pc.plan_id = :plan
      JOIN plan_grid n ON n.plan_id = :plan AND ST_Intersects(o.geom, n.geom)
     WHERE o.valid_to IS NULL
     ORDER BY o.id, shared_m2 DESC, n.code"""


# --------------------------------------------------------------------------- creating


def _communities_by_code(session: Session, codes: list[str]) -> list[Community]:
    if not codes:
        raise ValidationError("a plan needs at least one community", field="communities")
    found = {
        c.code: c for c in session.scalars(sa.select(Community).where(Community.code.in_(codes)))
    }
    missing = [c for c in codes if c not in found]
    if missing:
        raise NotFound(f"community {', '.join(missing)} does not exist", field="communities")
    return [found[c] for c in dict.fromkeys(codes)]


def create_plan(
    session: Session,
    *,
    name: str,
    community_codes: list[str],
    grids: list[GridDraft] | None = None,
    source: str = "current",
    author: str,
) -> Plan:
    """A new draft for ``community_codes``: a copy of their current grids when ``grids``
    is None, else those grids (from a file or the partition).

    Grids without a community go to the plan's community that holds most of them; a
    grid mostly outside every plan community is a :class:`ValidationError` naming it.
    Figures missing from a draft grid are estimated from the current grids it overlaps.
    """
    name = fields.text(name, "name", Plan.name, required=True)
    communities = _communities_by_code(session, community_codes)
    plan = Plan(name=name, source=source, author=author, status="draft")
    session.add(plan)
    session.flush()
    session.add_all(PlanCommunity(plan_id=plan.id, community_id=c.id) for c in communities)
    session.flush()
    if grids is None:
        session.execute(
            sa.text(
                """INSERT INTO plan_grid (plan_id, community_id, code, name, geom, households,
                                          population, updated_by)
                   SELECT :p, g.community_id, g.code, g.name, g.geom, g.households,
                          g.population, :a
                     FROM grid g WHERE g.valid_to IS NULL AND g.community_id = ANY(:c)"""
            ),
            {"p": plan.id, "a": author, "c": [c.id for c in communities]},
        )
    else:
        _insert_drafts(session, plan, communities, grids, author)
    return plan


def _insert_drafts(
    session: Session,
    plan: Plan,
    communities: list[Community],
    grids: list[GridDraft],
    author: str,
) -> None:
    by_code = {c.code: c for c in communities}
    shapes = community_shapes(session, communities)
    olds = current_drafts(session, [c.id for c in communities])
    seen: set[str] = set()
    for n, g in enumerate(grids, start=1):
        where = f"grid #{n} (code {g.code})"
        try:
            code = fields.text(g.code, "code", PlanGrid.code, required=True)
            name = fields.text(g.name, "name", PlanGrid.name)
        except ValidationError as exc:
            raise ValidationError(f"grid #{n}: {exc.message}", field="code") from None
        if code in seen:
            raise ValidationError(f"{where}: the code appears twice", field="code")
        seen.add(code)
        geom = _multipolygon(g.geom, where)
        community = g.community or _holding_community(geom, shapes, where)
        if community not in by_code:
            raise ValidationError(
                f"{where}: community {community} is not one of the plan's ({', '.join(by_code)})",
                field="community",
            )
        households, population = g.households, g.population
        if households is None or population is None:
            est_h, est_p = plan_geometry.households_share(geom, olds.get(community, []))
            households = est_h if households is None else households
            population = est_p if population is None else population
        session.add(
            PlanGrid(
                plan_id=plan.id,
                community_id=by_code[community].id,
                code=code,
                name=name,
                geom=f"SRID=4326;{geom.wkt}",
                households=int(households),
                population=int(population),
                updated_by=author,
            )
        )
    session.flush()


def _multipolygon(geom: BaseGeometry | None, where: str) -> shapely.MultiPolygon:
    if geom is None or geom.is_empty:
        raise ValidationError(f"{where}: no geometry", field="geometry")
    if geom.geom_type == "Polygon":
        return shapely.MultiPolygon([geom])
    if geom.geom_type == "MultiPolygon":
        return geom
    raise ValidationError(f"{where}: a grid is a polygon, not a {geom.geom_type}", field="geometry")


def _holding_community(geom: BaseGeometry, shapes: dict[str, BaseGeometry], where: str) -> str:
    best, share = None, 0.0
    for code, shape in shapes.items():
        inside = geom.intersection(shape).area / geom.area if geom.area else 0.0
        if inside > share:
            best, share = code, inside
    if best is None or share < 0.5:
        raise ValidationError(
            f"{where}: lies mostly outside the plan's communities ({', '.join(shapes)})",
            field="geometry",
        )
    return best


# --------------------------------------------------------------------------- checking


def _problem_json(p: plan_geometry.Problem, community: str) -> dict[str, Any]:
    return {
        "kind": p.kind,
        "severity": p.severity,
        "community": community,
        "grids": list(p.grids),
        "size_m2": None if p.size_m2 is None else round(p.size_m2, 1),
        "message": p.message,
        "where": shapely.geometry.mapping(p.where) if p.where is not None else None,
    }


def validate_plan(
    session: Session, plan_id: int, *, target: tuple[int, int] = DEFAULT_TARGET
) -> dict[str, Any]:
    """Every rule checked on every community of the plan; each problem located.

    Returns ``{"ok": bool, "errors": [...], "warnings": [...]}``; each problem has its
    kind, community, grids, size (m²), message and ``where`` (GeoJSON geometry).
    """
    get_plan(session, plan_id)
    communities = plan_communities(session, plan_id)
    shapes = community_shapes(session, communities)
    drafts = plan_drafts(session, plan_id)
    errors: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    for c in communities:
        for p in plan_geometry.validate(
            c.code, shapes[c.code], drafts.get(c.code, []), households=target
        ):
            (errors if p.severity == "error" else warnings).append(_problem_json(p, c.code))
    return {"ok": not errors, "errors": errors, "warnings": warnings}


def compare_plan(
    session: Session, plan_id: int, *, target: tuple[int, int] = DEFAULT_TARGET
) -> dict[str, Any]:
    """Current grids against the plan's, per community and for the whole plan.

    Returns ``{"communities": {code: {"current": metrics, "plan": metrics, "changed":
    [...], "removed": [...]}}, "current": metrics, "plan": metrics, "changed": [...],
    "removed": [...]}`` (see :func:`mapsvc.services.plan_geometry.metrics`).
    """
    get_plan(session, plan_id)
    communities = plan_communities(session, plan_id)
    shapes = community_shapes(session, communities)
    plan = plan_drafts(session, plan_id)
    current = current_drafts(session, [c.id for c in communities])
    per = {}
    for c in communities:
        per[c.code] = plan_geometry.compare(
            shapes[c.code], current.get(c.code, []), plan.get(c.code, []), households=target
        )
    union = shapely.union_all(list(shapes.values())) if shapes else shapely.Polygon()
    all_current = [g for c in communities for g in current.get(c.code, [])]
    all_plan = [g for c in communities for g in plan.get(c.code, [])]
    return {
        "communities": per,
        "current": plan_geometry.metrics(union, all_current, households=target),
        "plan": plan_geometry.metrics(union, all_plan, households=target),
        "changed": sorted(code for v in per.values() for code in v["changed"]),
        "removed": sorted(code for v in per.values() for code in v["removed"]),
    }


# --------------------------------------------------------------------------- editing


def _grid_for_update(session: Session, plan: Plan, code: str) -> PlanGrid:
    g = session.scalar(
        sa.select(PlanGrid)
        .where(PlanGrid.plan_id == plan.id, PlanGrid.code == code)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if g is None:
        raise NotFound(f"plan {plan.id} has no grid {code!r}", field="grid")
    return g


def _check_version(g: PlanGrid, version: int | None) -> None:
    """A save made against an older version of the grid is refused, naming who changed it."""
    if version is None:
        raise ValidationError(
            f"grid {g.code}: give the version you edited (it is now {g.version})",
            field="version",
        )
    if int(version) != g.version:
        when = g.updated_at.isoformat(timespec="seconds") if g.updated_at else "?"
        raise Conflict(
            f"grid {g.code} was changed by {g.updated_by} at {when} (version {g.version}; "
            f"you edited version {version}): reload it, your edit is not saved",
            field="version",
            version=g.version,
            updated_by=g.updated_by,
        )


def _shape_of(session: Session, g: PlanGrid) -> BaseGeometry:
    return shapely.from_wkb(
        bytes(
            session.scalar(sa.select(sa.func.ST_AsBinary(PlanGrid.geom)).where(PlanGrid.id == g.id))
        )
    )


def _save(
    g: PlanGrid, geom: BaseGeometry, author: str, *, households: int, population: int
) -> None:
    g.geom = f"SRID=4326;{_multipolygon(geom, f'grid {g.code}').wkt}"
    g.households = int(households)
    g.population = int(population)
    g.version = g.version + 1
    g.updated_by = author
    g.updated_at = sa.func.now()


def _neighbour_shapes(
    session: Session, plan: Plan, g: PlanGrid, exclude: set[str]
) -> list[BaseGeometry]:
    rows = session.execute(
        sa.select(sa.func.ST_AsBinary(PlanGrid.geom)).where(
            PlanGrid.plan_id == plan.id,
            PlanGrid.community_id == g.community_id,
            PlanGrid.code.not_in(exclude),
        )
    ).scalars()
    return [shapely.from_wkb(bytes(w)) for w in rows]


def _community_shape(session: Session, community_id: int) -> BaseGeometry:
    return shapely.from_wkb(
        bytes(
            session.scalar(
                sa.select(sa.func.ST_AsBinary(Community.geom)).where(Community.id == community_id)
            )
        )
    )


def _olds(session: Session, community_id: int) -> list[plan_geometry.DraftGrid]:
    return [g for v in current_drafts(session, [community_id]).values() for g in v]


def update_grid(
    session: Session,
    plan_id: int,
    code: str,
    *,
    version: int | None,
    author: str,
    geometry: BaseGeometry | None = None,
    name: str | None = None,
    households: int | None = None,
    population: int | None = None,
) -> dict[str, Any]:
    """Save one grid of a draft: a new shape (snapped to the community border and to its
    neighbours' edges, so no sliver is left), name or figures.

    ``version`` is the one the editor loaded; an older one is a :class:`Conflict` naming
    who changed the grid since, and nothing is saved. A new shape without figures gets
    them estimated from the current grids.
    """
    plan = get_plan(session, plan_id, for_update=True)
    _draft(plan)
    g = _grid_for_update(session, plan, code)
    _check_version(g, version)
    if name is not None:
        g.name = fields.text(name, "name", PlanGrid.name)
    geom = _shape_of(session, g)
    if geometry is not None:
        geom = plan_geometry.snap(
            _multipolygon(geometry, f"grid {code}"),
            _community_shape(session, g.community_id),
            _neighbour_shapes(session, plan, g, {code}),
        )
    if geometry is not None and (households is None or population is None):
        est_h, est_p = plan_geometry.households_share(geom, _olds(session, g.community_id))
        households = est_h if households is None else households
        population = est_p if population is None else population
    for what, value in (("households", households), ("population", population)):
        if value is not None and (not isinstance(value, int) or value < 0):
            raise ValidationError(f"grid {code}: {what} must be a whole number ≥ 0", field=what)
    _save(
        g,
        geom,
        author,
        households=g.households if households is None else households,
        population=g.population if population is None else population,
    )
    session.flush()
    return grid_json(session, g)


def grid_json(session: Session, g: PlanGrid) -> dict[str, Any]:
    """One plan grid as the editor gets it back."""
    session.refresh(g)
    return {
        "code": g.code,
        "name": g.name,
        "households": g.households,
        "population": g.population,
        "version": g.version,
        "updated_by": g.updated_by,
        "geometry": shapely.geometry.mapping(_shape_of(session, g)),
    }


def split_grid(
    session: Session,
    plan_id: int,
    code: str,
    line: BaseGeometry,
    *,
    version: int | None,
    new_code: str,
    author: str,
) -> list[dict[str, Any]]:
    """Split a grid along a drawn line: the larger part keeps the code, the other gets
    ``new_code``; households are shared by area."""
    plan = get_plan(session, plan_id, for_update=True)
    _draft(plan)
    g = _grid_for_update(session, plan, code)
    _check_version(g, version)
    new_code = fields.text(new_code, "new_code", PlanGrid.code, required=True)
    if session.scalar(
        sa.select(PlanGrid.id).where(PlanGrid.plan_id == plan.id, PlanGrid.code == new_code)
    ):
        raise Conflict(f"plan {plan.id} already has a grid {new_code!r}", field="new_code")
    parts = plan_geometry.split(_shape_of(session, g), line)
    if len(parts) != 2:
        raise ValidationError(
            f"grid {code}: the line cuts it into {len(parts)} parts; draw one line across it",
            field="line",
        )
    keep, other = sorted(parts, key=lambda p: -p.area)
    share = keep.area / (keep.area + other.area)
    kept_h = round(g.households * share)
    kept_p = round(g.population * share)
    new = PlanGrid(
        plan_id=plan.id,
        community_id=g.community_id,
        code=new_code,
        geom=f"SRID=4326;{_multipolygon(other, new_code).wkt}",
        households=g.households - kept_h,
        population=g.population - kept_p,
        updated_by=author,
    )
    _save(g, keep, author, households=kept_h, population=kept_p)
    session.add(new)
    session.flush()
    return [grid_json(session, g), grid_json(session, new)]


def merge_grids(
    session: Session,
    plan_id: int,
    code: str,
    other: str,
    *,
    versions: dict[str, int],
    author: str,
) -> dict[str, Any]:
    """Merge grid ``other`` into its neighbour ``code`` (they must share an edge)."""
    plan = get_plan(session, plan_id, for_update=True)
    _draft(plan)
    if code == other:
        raise ValidationError(f"grid {code} cannot be merged with itself", field="other")
    a, b = sorted(
        (_grid_for_update(session, plan, code), _grid_for_update(session, plan, other)),
        key=lambda x: x.code != code,
    )
    for g in (a, b):
        _check_version(g, versions.get(g.code))
    if a.community_id != b.community_id:
        raise ValidationError(
            f"grids {code} and {other} lie in different communities", field="other"
        )
    merged = plan_geometry.merge(_shape_of(session, a), _shape_of(session, b))
    _save(
        a,
        merged,
        author,
        households=a.households + b.households,
        population=a.population + b.population,
    )
    session.delete(b)
    session.flush()
    return grid_json(session, a)


def reassign_block(
    session: Session,
    plan_id: int,
    donor: str,
    receiver: str,
    block: BaseGeometry,
    *,
    versions: dict[str, int],
    author: str,
) -> list[dict[str, Any]]:
    """Move the part of ``block`` inside grid ``donor`` to its neighbour ``receiver``;
    households move with the area."""
    plan = get_plan(session, plan_id, for_update=True)
    _draft(plan)
    d = _grid_for_update(session, plan, donor)
    r = _grid_for_update(session, plan, receiver)
    for g in (d, r):
        _check_version(g, versions.get(g.code))
    before = _shape_of(session, d)
    new_d, new_r = plan_geometry.reassign(before, _shape_of(session, r), block)
    moved = 1.0 - (new_d.area / before.area if before.area else 1.0)
    moved_h, moved_p = round(d.households * moved), round(d.population * moved)
    _save(d, new_d, author, households=d.households - moved_h, population=d.population - moved_p)
    _save(r, new_r, author, households=r.households + moved_h, population=r.population + moved_p)
    session.flush()
    return [grid_json(session, d), grid_json(session, r)]


def discard_plan(session: Session, plan_id: int) -> None:
    """Set a draft aside (it stays on record)."""
    plan = get_plan(session, plan_id, for_update=True)
    _draft(plan)
    plan.status = "discarded"


# --------------------------------------------------------------------------- publishing


def publish(
    session: Session,
    plan_id: int,
    *,
    day: dt.date,
    author: str,
    target: tuple[int, int] = DEFAULT_TARGET,
) -> dict[str, Any]:
    """Make the plan's grids the live ones from ``day`` on, in the caller's transaction.

    The communities' current grids end the day before (``valid_to = day - 1``); the
    plan's start on ``day``. Grid heads and members on ``day`` or later move to the new
    grid that overlaps their old one most (a post ends the day before, a new one starts on
    ``day``; a second head for one new grid is not given the post and is named in the
    report); open incidents move to the new grid holding their point, with that grid's
    head. A plan with errors is refused (:class:`ValidationError` listing them).

    Returns the report: ``grids_ended``, ``grids_added``, ``heads`` (every grid head
    whose grid changed: old and new grid), ``members_moved``, ``posts_not_moved``,
    ``grids_without_head``, ``incidents_moved`` (id, from, to).
    """
    plan = get_plan(session, plan_id, for_update=True)
    _draft(plan)
    # the communities' grids are locked, so no other publish or import changes them meanwhile
    communities = plan_communities(session, plan_id)
    ids = [c.id for c in communities]
    session.execute(sa.select(Community.id).where(Community.id.in_(ids)).with_for_update()).all()
    check = validate_plan(session, plan_id, target=target)
    if not check["ok"]:
        shown = "\n".join(f"  {e['community']}: {e['message']}" for e in check["errors"][:30])
        raise ValidationError(
            f"plan {plan_id} ({plan.name}) has {len(check['errors'])} error(s); "
            f"nothing was published:\n{shown}",
            field="plan",
            errors=check["errors"],
        )
    started_before = session.scalar(
        sa.select(sa.func.max(Grid.valid_from)).where(
            Grid.community_id.in_(ids), Grid.valid_to.is_(None)
        )
    )
    if started_before is not None and started_before >= day:
        raise Conflict(
            f"the grids of these communities were published on {started_before.isoformat()}; "
            f"a plan can take effect after that day only, not on {day.isoformat()}",
            field="day",
        )
    successor = {
        r.old_id: r.new_id for r in session.execute(sa.text(SUCCESSOR_SQL), {"plan": plan_id}).all()
    }
    old = session.execute(
        sa.select(Grid.id, Grid.code, sa.func.ST_AsBinary(Grid.geom).label("wkb"))
        .where(Grid.community_id.in_(ids), Grid.valid_to.is_(None))
        .order_by(Grid.code)
    ).all()
    old_code = {r.id: r.code for r in old}
    old_shape = {r.id: shapely.from_wkb(bytes(r.wkb)) for r in old}
    last = day - dt.timedelta(days=1)
    session.execute(
        sa.update(Grid)
        .where(Grid.id.in_(list(old_code)))
        .values(valid_to=last)
        .execution_options(synchronize_session=False)
    )
    taken = Conflict(
        "a grid code of the plan is the code of a current grid of another community; "
        "rename it in the plan",
        field="code",
    )
    with constraint_errors(session, {"ex_grid_code": taken}):
        new_ids = _insert_new_grids(session, plan_id, day)
    plan_grid_code = dict(
        session.execute(
            sa.select(PlanGrid.id, PlanGrid.code).where(PlanGrid.plan_id == plan_id)
        ).all()
    )
    new_shape = {
        code: shapely.from_wkb(bytes(wkb))
        for code, wkb in session.execute(
            sa.select(PlanGrid.code, sa.func.ST_AsBinary(PlanGrid.geom)).where(
                PlanGrid.plan_id == plan_id
            )
        ).all()
    }
    moved_to = {gid: plan_grid_code[successor[gid]] for gid in old_code if gid in successor}
    report: dict[str, Any] = {
        "plan": plan_id,
        "day": day.isoformat(),
        "grids_ended": sorted(old_code.values()),
        "grids_added": sorted(new_ids),
        "heads": [],
        "members_moved": 0,
        "posts_not_moved": [],
        "grids_without_head": [],
        "incidents_moved": [],
    }
    posts = (
        session.execute(
            sa.select(Assignment)
            .where(
                Assignment.grid_id.in_(list(old_code)),
                Assignment.role.in_(("grid_head", "grid_member")),
                sa.or_(Assignment.valid_to.is_(None), Assignment.valid_to >= day),
            )
            .order_by(Assignment.role, Assignment.valid_from, Assignment.id)
            .with_for_update()
        )
        .scalars()
        .all()
    )
    names = dict(
        session.execute(
            sa.select(Staff.id, Staff.name).where(Staff.id.in_([p.staff_id for p in posts]))
        ).all()
    )
    headed: set[str] = set()
    # the head whose old grid gives the new one most of its area keeps the post
    heads = sorted(
        (p for p in posts if p.role == "grid_head"),
        key=lambda p: (
            -_shared(old_shape[p.grid_id], new_shape.get(moved_to.get(p.grid_id, ""), None))
        ),
    )
    members = [p for p in posts if p.role == "grid_member"]
    for p in [*heads, *members]:
        old_grid = old_code[p.grid_id]
        target_code = moved_to.get(p.grid_id)
        until = p.valid_to
        started = max(p.valid_from, day)
        if p.valid_from >= day:
            p.valid_to = p.valid_from - dt.timedelta(days=1)  # withdrawn before it began
        else:
            p.valid_to = last
        session.flush()
        person = {
            "staff_id": p.staff_id,
            "name": names.get(p.staff_id),
            "role": p.role,
            "from_grid": old_grid,
        }
        if target_code is None:
            report["posts_not_moved"].append(
                {**person, "reason": "no grid of the plan overlaps the old grid"}
            )
            continue
        if p.role == "grid_head" and target_code in headed:
            report["posts_not_moved"].append(
                {
                    **person,
                    "to_grid": target_code,
                    "reason": f"grid {target_code} already has a head",
                }
            )
            continue
        if p.role == "grid_head":
            headed.add(target_code)
        session.add(
            Assignment(
                staff_id=p.staff_id,
                role=p.role,
                grid_id=new_ids[target_code],
                valid_from=started,
                valid_to=until,
            )
        )
        if p.role == "grid_head":
            changed = not old_shape[p.grid_id].equals_exact(new_shape[target_code], 1e-9)
            if changed or old_grid != target_code:
                report["heads"].append({**person, "to_grid": target_code})
        else:
            report["members_moved"] += 1
    session.flush()
    report["grids_without_head"] = sorted(set(new_ids) - headed)
    moved = session.execute(
        sa.text(
            """WITH target AS (
                 SELECT i.id, i.grid_id AS old_id, n.id AS new_id
                   FROM incident i
                   LEFT JOIN LATERAL (
                     SELECT g.id FROM grid g
                      WHERE g.id = ANY(:new) AND ST_Intersects(g.geom, i.geom)
                      ORDER BY g.code LIMIT 1) n ON TRUE
                  WHERE i.grid_id = ANY(:old) AND i.state = ANY(:open))
               UPDATE incident i
                  SET grid_id = t.new_id,
                      grid_head_id = (SELECT a.staff_id FROM assignment a
                                       WHERE a.grid_id = t.new_id AND a.role = 'grid_head'
                                         AND a.valid_from <= :day
                                         AND (a.valid_to IS NULL OR a.valid_to >= :day)
                                       LIMIT 1)
                 FROM target t WHERE i.id = t.id
               RETURNING i.id, t.old_id, t.new_id"""
        ),
        {
            "new": list(new_ids.values()),
            "old": list(old_code),
            "open": list(OPEN_STATES),
            "day": day,
        },
    ).all()
    new_code = {v: k for k, v in new_ids.items()}
    # every open incident now points at a new grid; those whose grid is another (by code,
    # or the same code redrawn so the point's grid changed) are named
    report["incidents_relinked"] = len(moved)
    report["incidents_moved"] = sorted(
        (
            {"id": r.id, "from": old_code.get(r.old_id), "to": new_code.get(r.new_id)}
            for r in moved
            if old_code.get(r.old_id) != new_code.get(r.new_id)
        ),
        key=lambda m: m["id"],
    )
    plan.status = "published"
    plan.published_on = day
    plan.published_at = sa.func.now()
    plan.report = report
    session.flush()
    return report


def _shared(a: BaseGeometry, b: BaseGeometry | None) -> float:
    return 0.0 if b is None else a.intersection(b).area


# --------------------------------------------------------------------------- files

#: the columns a plan file carries (GeoPackage, GeoJSON, Shapefile: names ≤ 10 letters)
FILE_COLUMNS = ("code", "name", "community", "households", "population")


def export_plan(
    session: Session, plan_id: int, fmt: str, directory: Path, *, datum: str = "wgs84"
) -> Path:
    """Write the plan's grids as ``fmt`` (``gpkg``, ``geojson``, ``shp``) in ``datum``
    (``wgs84``, ``cgcs2000`` = EPSG:4490, ``gcj02``) into ``directory``; its path.

    The file has :data:`FILE_COLUMNS`, so it comes back through :func:`import_plan_file`
    unchanged (a test does that round trip for each format).
    """
    import geopandas as gpd

    plan = get_plan(session, plan_id)
    if fmt not in ("gpkg", "geojson", "shp"):
        raise ValidationError(f"format {fmt!r} is not one of gpkg, geojson, shp", field="format")
    datum = exports.export_datum(datum)
    rows = session.execute(
        sa.text(
            """SELECT g.code, g.name, c.code AS community, g.households, g.population,
                      ST_AsBinary(g.geom) AS wkb
                 FROM plan_grid g JOIN community c ON c.id = g.community_id
                WHERE g.plan_id = :p ORDER BY g.code"""
        ),
        {"p": plan.id},
    ).all()
    geoms = [shapely.from_wkb(bytes(r.wkb)) for r in rows]
    if datum == "gcj02" and geoms:
        geoms = list(chinacrs.geometry_from_wgs84(geoms, "gcj02"))
    frame = gpd.GeoDataFrame(
        {c: [getattr(r, c) for r in rows] for c in FILE_COLUMNS},
        geometry=geoms,
        crs=f"EPSG:{exports.DATUMS[datum]}",
    )
    return exports.write_frames(
        [frame] if rows else [],
        f"plan-{plan.id}",
        fmt,
        directory,
        datum=datum,
        geometry_type="MultiPolygon",
        empty=lambda: frame,
    )


def read_plan_file(path: str | Path, *, crs: str | None = None) -> list[GridDraft]:
    """The grids of a plan file (as :func:`export_plan` writes it, or edited in QGIS).

    ``code`` is required; ``community``, ``name``, ``households`` and ``population`` are
    read when present. A CRS the file does not state must be given (``crs``; ``gcj02``
    for files from Chinese web maps).
    """
    raw, source_crs = boundaries.read_features(path, crs)
    wgs = boundaries.to_wgs84(raw, source_crs)
    columns = {str(c).lower(): c for c in raw.columns if c != raw.geometry.name}
    if "code" not in columns:
        raise ValidationError(
            f"{path}: no field 'code' for the grid codes; the file has: "
            f"{', '.join(map(str, columns.values())) or 'no fields'}",
            field="code",
        )

    def value(i: int, name: str) -> Any:
        col = columns.get(name)
        v = None if col is None else raw[col].iloc[i]
        return None if v is None or (isinstance(v, float) and v != v) else v

    out = []
    for i in range(len(raw)):
        where = f"{path}: feature #{i}"
        figures = {}
        for name in ("households", "population"):
            v = value(i, name)
            if v is not None:
                try:
                    figures[name] = int(v)
                except (TypeError, ValueError):
                    raise ValidationError(f"{where}: {name} {v!r} is not a number") from None
        code = value(i, "code")
        out.append(
            GridDraft(
                code=None if code is None else boundaries.text_value(code),
                geom=wgs[i],
                community=None
                if value(i, "community") is None
                else boundaries.text_value(value(i, "community")),
                name=None if value(i, "name") is None else str(value(i, "name")),
                households=figures.get("households"),
                population=figures.get("population"),
            )
        )
    return out


def _same_shape(a: BaseGeometry, b: BaseGeometry) -> bool:
    """Equal to about a centimetre (a file's GCJ-02 round trip is not bit-exact)."""
    return a.equals_exact(b, 1e-7) or (
        a.symmetric_difference(b).area < 1e-12 and shapely.hausdorff_distance(a, b) < 1e-7
    )


def import_plan_file(
    session: Session,
    plan_id: int,
    path: str | Path,
    *,
    author: str,
    crs: str | None = None,
) -> dict[str, Any]:
    """Replace a draft's grids with those of a file; what changed against the plan.

    Grids are matched by code: ``added``, ``removed``, ``changed`` (shape or figures,
    each with what changed) and ``unchanged``. Changed grids get a new version, so an
    editor holding the old one is told. One transaction: a bad feature changes nothing.
    """
    plan = get_plan(session, plan_id, for_update=True)
    _draft(plan)
    drafts = read_plan_file(path, crs=crs)
    communities = plan_communities(session, plan.id)
    shapes = community_shapes(session, communities)
    by_code = {c.code: c for c in communities}
    olds: dict[str, list[plan_geometry.DraftGrid]] = {}
    existing = {
        g.code: g
        for g in session.scalars(
            sa.select(PlanGrid).where(PlanGrid.plan_id == plan.id).with_for_update()
        )
    }
    report: dict[str, Any] = {
        "plan": plan.id,
        "added": [],
        "removed": [],
        "changed": [],
        "unchanged": 0,
    }
    seen: set[str] = set()
    for n, d in enumerate(drafts):
        where = f"{path}: feature #{n} (code {d.code})"
        if not d.code:
            raise ValidationError(f"{path}: feature #{n}: no code")
        fields.text(d.code, "code", PlanGrid.code, required=True)
        if d.code in seen:
            raise ValidationError(f"{where}: the code appears twice", field="code")
        seen.add(d.code)
        geom = _multipolygon(d.geom, where)
        community = d.community or _holding_community(geom, shapes, where)
        if community not in by_code:
            raise ValidationError(
                f"{where}: community {community} is not one of the plan's ({', '.join(by_code)})"
            )
        old = existing.get(d.code)
        if d.households is None or d.population is None:
            if old is not None and _same_shape(_shape_of(session, old), geom):
                est = (old.households, old.population)
            else:
                if community not in olds:
                    olds[community] = _olds(session, by_code[community].id)
                est = plan_geometry.households_share(geom, olds[community])
        households = est[0] if d.households is None else d.households
        population = est[1] if d.population is None else d.population
        if old is None:
            session.add(
                PlanGrid(
                    plan_id=plan.id,
                    community_id=by_code[community].id,
                    code=d.code,
                    name=d.name,
                    geom=f"SRID=4326;{geom.wkt}",
                    households=households,
                    population=population,
                    updated_by=author,
                )
            )
            report["added"].append(d.code)
            continue
        what = []
        if not _same_shape(_shape_of(session, old), geom):
            what.append("shape")
        if (old.households, old.population) != (households, population):
            what.append("figures")
        if (old.name or None) != (d.name or None):
            what.append("name")
        if old.community_id != by_code[community].id:
            what.append("community")
        if not what:
            report["unchanged"] += 1
            continue
        old.community_id = by_code[community].id
        old.name = d.name
        _save(
            old,
            geom if "shape" in what else _shape_of(session, old),
            author,
            households=households,
            population=population,
        )
        report["changed"].append({"code": d.code, "what": what})
    for code in sorted(set(existing) - seen):
        session.delete(existing[code])
        report["removed"].append(code)
    session.flush()
    return report


def _insert_new_grids(session: Session, plan_id: int, day: dt.date) -> dict[str, int]:
    """The plan's grids added to the live grids from ``day``: code -> new grid id."""
    return dict(
        session.execute(
            sa.text(
                """INSERT INTO grid (code, name, community_id, geom, population, households,
                                     valid_from)
                   SELECT code, name, community_id, geom, population, households, :day
                     FROM plan_grid WHERE plan_id = :p ORDER BY code
                   RETURNING code, id"""
            ),
            {"p": plan_id, "day": day},
        ).all()
    )


def parse_geometry(value: Any, field: str, kinds: tuple[str, ...]) -> BaseGeometry:
    """A GeoJSON geometry object from a request, as shapely, or a :class:`ValidationError`
    naming the field and what was wrong (not an object, unreadable, another kind)."""
    if not isinstance(value, dict):
        raise ValidationError(f"{field}: send a GeoJSON geometry object", field=field)
    try:
        geom = shapely.geometry.shape(value)
    except Exception as exc:  # noqa: BLE001 - shapely raises several types for bad GeoJSON
        raise ValidationError(
            f"{field}: not a readable GeoJSON geometry ({exc})", field=field
        ) from None
    if geom.geom_type not in kinds:
        raise ValidationError(
            f"{field}: a {geom.geom_type} was sent; expected {' or '.join(kinds)}", field=field
        )
    if geom.is_empty:
        raise ValidationError(f"{field}: the geometry is empty", field=field)
    problem = geometry_lonlat_problem(geom)
    if problem:
        raise ValidationError(f"{field}: {problem}", field=field)
    return geom


def communities_geojson(session: Session, community_ids: list[int]) -> dict[str, Any]:
    """The outlines of the plan's communities (the editor snaps to them)."""
    rows = session.execute(
        sa.select(Community.code, Community.name, sa.func.ST_AsGeoJSON(Community.geom, 6))
        .where(Community.id.in_(community_ids))
        .order_by(Community.code)
    ).all()
    import json

    return {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": json.loads(g), "properties": {"code": c, "name": n}}
            for c, n, g in rows
        ],
    }


# --------------------------------------------------------------------------- automatic


def auto_plan(
    session: Session,
    community_codes: list[str],
    *,
    author: str,
    name: str | None = None,
    grids: int | None = None,
    target: tuple[int, int] = DEFAULT_TARGET,
    lock: list[str] | None = None,
    from_current: bool = False,
    seed: int = 0,
    progress: Any = None,
) -> tuple[Plan, list[dict[str, Any]]]:
    """A draft made by :func:`mapsvc.services.partition.partition` from the communities'
    planning units: contiguous, compact grids within ``target`` households.

    ``lock`` names current grids kept exactly as they are (their units are left out);
    ``from_current`` starts from the current grids and moves as few households as it can
    (each grid that keeps most of a current grid's households keeps its code). ``grids``
    is the count per community (with one community) or None to choose it. Returns the
    plan and, per community, what the partition reports (households per grid,
    compactness, moved share, seconds).
    """
    from mapsvc.core.progress import no_progress
    from mapsvc.services import partition, units

    progress = progress or no_progress
    communities = _communities_by_code(session, community_codes)
    if grids is not None and len(communities) > 1:
        raise ValidationError("--grids is a count for one community; give one", field="grids")
    lock = list(lock or [])
    drafts: list[GridDraft] = []
    reports = []
    known = set(
        session.scalars(
            sa.select(Grid.code).where(
                Grid.community_id.in_([c.id for c in communities]), Grid.valid_to.is_(None)
            )
        )
    )
    unknown = sorted(set(lock) - known)
    if unknown:
        raise NotFound(
            f"no current grid {', '.join(unknown)} in {', '.join(c.code for c in communities)}",
            field="lock",
        )
    for c in communities:
        pieces = units.community_units(session, c.id)
        if not pieces:
            raise ValidationError(
                f"community {c.code} has no planning units: import them first "
                "(mapsvc import units FILE)",
                field="units",
            )
        current = session.execute(
            sa.select(Grid.code, sa.func.ST_AsBinary(Grid.geom))
            .where(Grid.community_id == c.id, Grid.valid_to.is_(None))
            .order_by(Grid.code)
        ).all()
        current_shapes = {code: shapely.from_wkb(bytes(w)) for code, w in current}
        # each unit's current grid: the one holding its inside point
        tree_codes = list(current_shapes)
        tree = shapely.STRtree([current_shapes[k] for k in tree_codes]) if tree_codes else None
        of: dict[str, str] = {}
        for u in pieces if tree is not None else []:
            hits = tree.query(u.geom.representative_point(), predicate="intersects")
            if len(hits):
                of[u.id] = tree_codes[int(hits[0])]
        kept_codes = [k for k in lock if k in current_shapes]
        locked = {u.id: kept_codes.index(of[u.id]) for u in pieces if of.get(u.id) in kept_codes}
        labels = sorted({of[u.id] for u in pieces if u.id in of})
        result = partition.partition(
            pieces,
            grids=grids,
            min_households=target[0],
            max_households=target[1],
            locked=locked,
            current={u.id: labels.index(of[u.id]) for u in pieces if u.id in of}
            if from_current
            else None,
            seed=seed,
            community=c.code,
            progress=progress,
        )
        # grids 0 .. len(kept)-1 are the kept ones; the others are new
        k = max(result.assignment.values()) + 1 - len(kept_codes)
        members: list[list[partition.Unit]] = [[] for _ in range(k)]
        for u in pieces:
            d = result.assignment[u.id] - len(kept_codes)
            if d >= 0:
                members[d].append(u)
        new_pp = result.polsby_popper[len(kept_codes) :]
        new_hh = result.households[len(kept_codes) :]
        outline = shapely.from_wkb(
            bytes(
                session.scalar(
                    sa.select(sa.func.ST_AsBinary(Community.geom)).where(Community.id == c.id)
                )
            )
        )
        filled = plan_geometry.fill_gaps(
            outline,
            [shapely.union_all([u.geom for u in us]) for us in members],
            fixed=[current_shapes[code] for code in kept_codes],
        )
        codes = _auto_codes(c.code, members, of, from_current, taken=set(lock))
        for code in kept_codes:
            drafts.append(GridDraft(code, current_shapes[code], community=c.code))
        for i, (us, geom) in enumerate(zip(members, filled, strict=True)):
            drafts.append(
                GridDraft(
                    codes[i],
                    geom,
                    community=c.code,
                    households=sum(u.households for u in us),
                    population=sum(u.population for u in us),
                )
            )
        reports.append(
            {
                "community": c.code,
                "grids": k + len(kept_codes),
                "kept": kept_codes,
                "households": new_hh,
                "polsby_popper_mean": round(sum(new_pp) / k, 3),
                "polsby_popper_min": round(min(new_pp), 3),
                "moved_share": result.moved_share,
                "seconds": result.seconds,
            }
        )
    plan = create_plan(
        session,
        name=name or f"自动网格 {', '.join(c.name for c in communities)}"[:100],
        community_codes=[c.code for c in communities],
        grids=drafts,
        source="auto",
        author=author,
    )
    return plan, reports


def _auto_codes(
    community: str,
    members: list[list[Any]],
    of: dict[str, str],
    from_current: bool,
    taken: set[str],
) -> list[str]:
    """Codes of automatic grids: with ``from_current``, a grid holding most households of a
    current grid keeps that grid's code; the others are numbered after the community."""
    codes: list[str | None] = [None] * len(members)
    if from_current:
        votes = []
        for i, us in enumerate(members):
            by: dict[str, int] = {}
            for u in us:
                if u.id in of:
                    by[of[u.id]] = by.get(of[u.id], 0) + u.households + 1
            votes.extend((n, i, code) for code, n in by.items())
        for _n, i, code in sorted(votes, reverse=True):
            if codes[i] is None and code not in taken:
                codes[i] = code
                taken.add(code)
    n = 0
    for i in range(len(codes)):
        while codes[i] is None:
            n += 1
            candidate = f"{community}-{n:02d}"
            if candidate not in taken:
                codes[i] = candidate
                taken.add(candidate)
    return [c for c in codes if c is not None]
