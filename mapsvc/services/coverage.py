"""Staffing coverage on a date: which grids and alley segments have their posts filled.

A grid is

* ``no_head`` when nobody holds its grid-head post on the day,
* ``understaffed`` when it has a head but fewer grid members than ``GRID_MEMBERS_REQUIRED``
  (the head is not counted as one of the members even if also listed as one),
* ``staffed`` otherwise.

An alley segment is ``chief`` when an alley chief holds it on the day, else ``no_chief``.

Who holds which post always comes from :mod:`mapsvc.services.assignments` (``holders`` and
``valid_on``), so any past date works and the rules about single-holder posts live in one
place. ``multiple_heads`` flags a grid with two heads in force on the day; the database
refuses that state since its exclusion constraint on posts (``ex_assignment_grid_post``),
so the flag stays False and remains only as a check in the figures.

Segments are placed in the grid (and community) that holds their midpoint: a segment that
straddles a boundary is counted once, where most people would look for it.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from mapsvc.core.values import BBox
from mapsvc.models import (
    AlleySegment,
    Assignment,
    Community,
    Grid,
    Staff,
    Subdistrict,
    grid_on_sql,
)
from mapsvc.services.assignments import holders, segment_posts, valid_on

GRID_STATUSES = ("no_head", "understaffed", "staffed")
SEGMENT_STATUSES = ("no_chief", "chief")


def segment_places(day: dt.date | None = None) -> sa.Subquery:
    """``segment_id, grid_id, community_id``: the grid/community holding each midpoint.

    The grids are those valid on ``day`` (the current ones when None). Falls back to the
    community when the midpoint lies in no grid (grids not drawn yet).
    """
    grids_then = grid_on_sql("g", None if day is None else ":place_day")
    text = sa.text(
        f"""SELECT s.id AS segment_id, g.id AS grid_id,
                      COALESCE(g.community_id, c.id) AS community_id
               FROM alley_segment s
               LEFT JOIN LATERAL (
                 SELECT g.id, g.community_id FROM grid g
                 WHERE ST_Intersects(g.geom, ST_LineInterpolatePoint(s.geom, 0.5))
                   AND {grids_then}
                 ORDER BY g.id LIMIT 1) g ON TRUE
               LEFT JOIN LATERAL (
                 SELECT c.id FROM community c
                 WHERE g.id IS NULL AND ST_Intersects(c.geom, ST_LineInterpolatePoint(s.geom, 0.5))
                 ORDER BY c.id LIMIT 1) c ON TRUE"""
    )
    if day is not None:
        text = text.bindparams(sa.bindparam("place_day", day, type_=sa.Date))
    return text.columns(
        sa.column("segment_id", sa.Integer),
        sa.column("grid_id", sa.Integer),
        sa.column("community_id", sa.Integer),
    ).subquery("segplace")


#: metres per degree of latitude, to turn a display tolerance in metres into degrees
M_PER_DEGREE = 111_320.0


def geojson_expr(geom: Any, precision: int = 6, simplify_m: float = 0.0) -> sa.ColumnElement:
    """``ST_AsGeoJSON`` of ``geom`` for drawing, optionally generalised by ``simplify_m``.

    Generalisation is for display only (it drops the collinear vertices that densified
    edges carry, shrinking pages several-fold); nothing is ever measured on its result, and
    topology is preserved so neighbouring grids still meet.
    """
    if simplify_m > 0:
        geom = sa.func.ST_SimplifyPreserveTopology(geom, simplify_m / M_PER_DEGREE)
    return sa.func.ST_AsGeoJSON(geom, precision)


def bbox_filter(geom: Any, bbox: BBox | None) -> sa.ColumnElement[bool]:
    """SQL condition: ``geom`` intersects the WGS84 ``bbox`` (always true without one)."""
    if bbox is None:
        return sa.true()
    return sa.func.ST_Intersects(geom, sa.func.ST_MakeEnvelope(*bbox, 4326))


def grid_status(
    session: Session,
    day: dt.date,
    *,
    members_required: int = 2,
    bbox: BBox | None = None,
    geometry: bool = False,
    precision: int = 6,
    simplify_m: float = 0.0,
) -> list[dict[str, Any]]:
    """One row per grid with its head, member count and status on ``day``.

    Parameters
    ----------
    session : Session
        Caller's session (read only).
    day : date
        The date the posts are taken from (history is kept, so past dates work).
    members_required : int
        Members a headed grid needs to count as fully staffed (config GRID_MEMBERS_REQUIRED).
    bbox : tuple, optional
        Only grids intersecting this WGS84 box.
    geometry : bool
        Include ``geometry`` (GeoJSON text) for maps, with ``precision`` decimals
        (6 ≈ 0.1 m; map pages use 5 ≈ 1 m to stay light), generalised by ``simplify_m``
        metres for display (see :func:`geojson_expr`).
    """
    head = holders("grid_head", "grid", day).subquery("head")
    heads_n = (
        sa.select(
            Assignment.grid_id.label("grid_id"),
            sa.func.count(sa.distinct(Assignment.staff_id)).label("n"),
        )
        .where(Assignment.role == "grid_head", Assignment.grid_id.is_not(None), valid_on(day))
        .group_by(Assignment.grid_id)
        .subquery("heads_n")
    )
    mem = holders("grid_member", "grid", day).subquery("mem")
    member_staff = aliased(Staff)
    members = (
        sa.select(
            mem.c.target_id.label("grid_id"),
            sa.func.count(sa.distinct(mem.c.staff_id)).label("n"),
            sa.func.array_agg(sa.distinct(member_staff.name)).label("names"),
        )
        .select_from(mem)
        .join(member_staff, member_staff.id == mem.c.staff_id)
        .outerjoin(
            head, sa.and_(head.c.target_id == mem.c.target_id, head.c.staff_id == mem.c.staff_id)
        )
        .where(head.c.staff_id.is_(None))
        .group_by(mem.c.target_id)
        .subquery("members")
    )
    head_staff = aliased(Staff)
    cols = [
        Grid.id,
        Grid.code,
        Grid.name,
        Grid.population,
        Grid.area_km2,
        Grid.community_id,
        Community.name.label("community_name"),
        Community.subdistrict_id,
        Subdistrict.name.label("subdistrict_name"),
        head.c.staff_id.label("head_id"),
        head_staff.name.label("head_name"),
        sa.func.coalesce(heads_n.c.n, 0).label("heads"),
        sa.func.coalesce(members.c.n, 0).label("members"),
        members.c.names.label("member_names"),
    ]
    if geometry:
        cols.append(geojson_expr(Grid.geom, precision, simplify_m).label("geometry"))
    q = (
        sa.select(*cols)
        .join(Community, Community.id == Grid.community_id)
        .outerjoin(Subdistrict, Subdistrict.id == Community.subdistrict_id)
        .outerjoin(head, head.c.target_id == Grid.id)
        .outerjoin(head_staff, head_staff.id == head.c.staff_id)
        .outerjoin(heads_n, heads_n.c.grid_id == Grid.id)
        .outerjoin(members, members.c.grid_id == Grid.id)
        .where(Grid.on(day), bbox_filter(Grid.geom, bbox))
        .order_by(Grid.code)
    )
    out = []
    for r in session.execute(q).mappings():
        d = dict(r)
        if d["head_id"] is None:
            d["status"] = "no_head"
        elif d["members"] < members_required:
            d["status"] = "understaffed"
        else:
            d["status"] = "staffed"
        d["multiple_heads"] = d["heads"] > 1
        d["member_names"] = sorted(d["member_names"] or [])
        d["members_required"] = members_required
        out.append(d)
    return out


def segment_status(
    session: Session,
    day: dt.date,
    *,
    bbox: BBox | None = None,
    geometry: bool = False,
    precision: int = 6,
) -> list[dict[str, Any]]:
    """One row per alley segment with its chief / deputy on ``day`` and its grid/community."""
    posts = segment_posts(day)
    place = segment_places(day)
    cols = [
        AlleySegment.id,
        AlleySegment.code,
        AlleySegment.name,
        AlleySegment.length_m,
        place.c.grid_id,
        place.c.community_id,
        Community.name.label("community_name"),
        Community.subdistrict_id,
        posts.chief_id,
        posts.chief_name,
        posts.deputy_name,
    ]
    if geometry:
        cols.append(sa.func.ST_AsGeoJSON(AlleySegment.geom, precision).label("geometry"))
    q = (
        posts.join(
            sa.select(*cols)
            .join(place, place.c.segment_id == AlleySegment.id)
            .outerjoin(Community, Community.id == place.c.community_id),
            AlleySegment.id,
        )
        .where(bbox_filter(AlleySegment.geom, bbox))
        .order_by(AlleySegment.code)
    )
    out = []
    for r in session.execute(q).mappings():
        d = dict(r)
        d["status"] = "chief" if d["chief_id"] is not None else "no_chief"
        out.append(d)
    return out


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def _rollup(grids: list[dict], segments: list[dict]) -> dict[str, Any]:
    g = {s: sum(1 for x in grids if x["status"] == s) for s in GRID_STATUSES}
    n_seg = len(segments)
    with_chief = sum(1 for x in segments if x["status"] == "chief")
    return {
        "grids": len(grids),
        **{f"grids_{s}": n for s, n in g.items()},
        "grids_multiple_heads": sum(1 for x in grids if x["multiple_heads"]),
        "grids_headed_pct": _pct(len(grids) - g["no_head"], len(grids)),
        "grids_staffed_pct": _pct(g["staffed"], len(grids)),
        "segments": n_seg,
        "segments_chief": with_chief,
        "segments_no_chief": n_seg - with_chief,
        "segments_chief_pct": _pct(with_chief, n_seg),
        "segments_no_chief_length_m": round(
            sum(x["length_m"] or 0 for x in segments if x["status"] == "no_chief"), 1
        ),
    }


def coverage_report(session: Session, day: dt.date, *, members_required: int = 2) -> dict[str, Any]:
    """District summary, rollups per community and subdistrict, and the uncovered lists.

    Returns
    -------
    dict
        ``date``, ``members_required``, ``summary`` (district-wide rollup),
        ``communities`` and ``subdistricts`` (rollup rows with id, code and name),
        ``uncovered`` with ``grids`` (no head or understaffed), ``segments`` (no chief),
        ``multiple_heads`` and their counts.
    """
    grids = grid_status(session, day, members_required=members_required)
    segments = segment_status(session, day)
    by_comm_g: dict[int, list] = defaultdict(list)
    by_comm_s: dict[int | None, list] = defaultdict(list)
    for g in grids:
        by_comm_g[g["community_id"]].append(g)
    for s in segments:
        by_comm_s[s["community_id"]].append(s)
    communities = []
    comm_rows = session.execute(
        sa.select(
            Community.id,
            Community.code,
            Community.name,
            Community.subdistrict_id,
            Subdistrict.name.label("subdistrict_name"),
        )
        .outerjoin(Subdistrict, Subdistrict.id == Community.subdistrict_id)
        .order_by(Community.code)
    ).mappings()
    sub_g: dict[int | None, list] = defaultdict(list)
    sub_s: dict[int | None, list] = defaultdict(list)
    for c in comm_rows:
        cg, cs = by_comm_g.get(c["id"], []), by_comm_s.get(c["id"], [])
        communities.append({**dict(c), **_rollup(cg, cs)})
        sub_g[c["subdistrict_id"]].extend(cg)
        sub_s[c["subdistrict_id"]].extend(cs)
    subdistricts = [
        {**dict(s), **_rollup(sub_g.get(s["id"], []), sub_s.get(s["id"], []))}
        for s in session.execute(
            sa.select(Subdistrict.id, Subdistrict.code, Subdistrict.name).order_by(Subdistrict.code)
        ).mappings()
    ]

    def brief(x: dict, keys: tuple[str, ...]) -> dict:
        return {k: x[k] for k in keys}

    grid_keys = ("id", "code", "name", "community_name", "status", "head_name", "heads", "members")
    seg_keys = ("id", "code", "name", "community_name", "length_m", "deputy_name")
    uncovered_grids = [brief(g, grid_keys) for g in grids if g["status"] != "staffed"]
    uncovered_segments = [brief(s, seg_keys) for s in segments if s["status"] == "no_chief"]
    multiple = [brief(g, grid_keys) for g in grids if g["multiple_heads"]]
    return {
        "date": day.isoformat(),
        "members_required": members_required,
        "summary": _rollup(grids, segments),
        "subdistricts": subdistricts,
        "communities": communities,
        "uncovered": {
            "grids": uncovered_grids,
            "grids_count": len(uncovered_grids),
            "segments": uncovered_segments,
            "segments_count": len(uncovered_segments),
            "multiple_heads": multiple,
            "multiple_heads_count": len(multiple),
        },
    }
