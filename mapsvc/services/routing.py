"""Route incidents to their community, grid, nearest alley segment, chief and grid head.

Runs entirely in PostGIS as set-based statements, so routing a million imported incidents
costs a few joins rather than a million round trips. Every test is done in metres in the
district's UTM zone (chosen by pyproj), never in degrees.

An incident is flagged ``location_to_confirm`` when it lies outside every grid or within
``boundary_confirm_m`` of its grid's boundary: there the responsible grid is uncertain and
a planner must confirm it. One located from an address alone (``located_by`` other than
``coordinates``, see :mod:`mapsvc.services.geocode`) is always flagged.

How it stays fast (measured with ``bench/bench_incident_import.py``; 100,000 points on the
demo district's 396 grids and 3,009 segments)
----------------------------------------------------------------------------------------
* The points go to a temporary table with their metric position and a GiST index on it,
  and the joins run *grid-major*: for each grid, the points inside it. The grid polygon is
  then the same argument for many calls in a row, so PostGIS caches its prepared form and
  each point-in-polygon test is cheap: 0.11 s for 100,000 points, against 1.5 s for a
  per-point probe (``LATERAL ... LIMIT 1``) even on ``ST_Subdivide``-d pieces.
* "Near the boundary" is the point *not* inside the grid shrunk by the margin
  (``ST_Buffer(grid, -margin)``, computed once per grid in metres): another cached test.
* The nearest segment is a segment-major ``ST_DWithin`` join in metres, the closest
  candidate kept per point (``DISTINCT ON``).
* Lookups are built only for grids and segments near the points, so routing one new
  incident costs milliseconds, not a pass over the whole district.
* The same SELECT (:func:`routed`) serves the UPDATE of stored incidents
  (:func:`route_incidents`) and the bulk import, which inserts rows already routed.

Callers hand over *which* points to route as SQLAlchemy Core (a list of incident ids, a
SELECT of ids, or a SELECT of ``id, geom``), never as SQL text: the values stay bound
parameters and nothing a caller writes is pasted into these statements.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ClauseElement, Executable

from mapsvc.models import Incident
from mapsvc.services.assignments import holders
from mapsvc.services.geo import metric_epsg_for_data

OPEN_STATES = ("received", "dispatched", "in_hand", "verified", "returned", "reopened")
#: columns :func:`routed` returns besides ``id``
ROUTED_COLUMNS = (
    "grid_id",
    "community_id",
    "grid_head_id",
    "segment_id",
    "chief_id",
    "segment_distance_m",
    "location_to_confirm",
)
#: below this many points the planner probes the lookups per point; no point index needed
_INDEX_POINTS_FROM = 2000


#: points from which a bulk routing asks for a larger temporary-table buffer
_BULK_POINTS = 50_000


def _conn(db: Session | Connection) -> Connection:
    return db.connection() if isinstance(db, Session) else db


class CreateTempTable(Executable, ClauseElement):
    """``CREATE TEMP TABLE name ON COMMIT DROP AS query``, the query's parameters bound.

    A SQLAlchemy construct (the ``sqlalchemy.ext.compiler`` recipe) so a Core SELECT can
    fill a temporary table without being turned into text. SQLAlchemy 2.1's own
    ``CreateTableAs`` renders parameters as literals and has no ``ON COMMIT DROP``.
    """

    inherit_cache = False

    def __init__(self, name: str, query: sa.SelectBase) -> None:
        self.name = name
        self.query = query


@compiles(CreateTempTable)
def _compile_create_temp_table(element: CreateTempTable, compiler: Any, **kw: Any) -> str:
    # the query as a subquery under SELECT *: only an outermost SELECT's columns get
    # GeoAlchemy2's result conversion (ST_AsEWKB), and stored geometries must stay geometry
    rows = sa.select(sa.literal_column("*")).select_from(element.query.subquery("q"))
    name = compiler.preparer.quote(element.name)
    return f"CREATE TEMP TABLE {name} ON COMMIT DROP AS {compiler.process(rows, **kw)}"


def use_large_temp_buffers(db: Session | Connection, size: str = "1GB") -> bool:
    """Let this session keep its temporary tables in memory (``temp_buffers``).

    The default 8 MB makes the grid join of a million points read its temporary tables
    through the OS page by page (measured: 5.0 s, against 2.2 s with 512 MB). PostgreSQL
    accepts the setting only before the session's first temporary table, so this is tried
    in a savepoint and quietly skipped when too late. Memory is used only as needed.
    """
    conn = _conn(db)
    try:
        with conn.begin_nested():
            conn.execute(sa.text("SELECT set_config('temp_buffers', :v, true)"), {"v": size})
    except sa.exc.DBAPIError:
        return False
    return True


def prepare_routing(
    db: Session | Connection,
    points: sa.Select,
    *,
    segment_max_m: float = 30.0,
    boundary_confirm_m: float = 15.0,
) -> int:
    """Build this transaction's temporary routing tables; return the metric SRID.

    ``points`` is a Core SELECT of ``id`` and a WGS84 point ``geom`` (the points to route).
    Creates ``_route_pts`` (id, geom, metric ``p``), ``_route_grid`` (grid, community,
    head, metric polygon ``gm`` and its ``core`` shrunk by the margin) and ``_route_seg``
    (segment, chief, metric line), limited to the area around the points. Dropped at
    commit or by :func:`drop_routing`.
    """
    conn = _conn(db)
    srid = metric_epsg_for_data(conn)
    chiefs = holders("alley_chief", "segment").subquery()
    heads = holders("grid_head", "grid").subquery()
    chief_sql, head_sql = (
        str(q.select().compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        for q in (chiefs, heads)
    )
    drop_routing(conn)
    # the joins' cost estimates are huge (a polygon per point), which would trigger JIT
    # compilation costing more than the join itself (measured 0.23 s of 0.74 s); local
    # to this transaction
    conn.execute(sa.text("SELECT set_config('jit', 'off', true)"))
    margin, reach = float(boundary_confirm_m), float(segment_max_m) + 1.0
    s = points.subquery("s")
    conn.execute(
        CreateTempTable(
            "_route_pts",
            sa.select(s.c.id, s.c.geom, sa.func.ST_Transform(s.c.geom, srid).label("p")),
        )
    )
    n = conn.scalar(sa.text("SELECT count(*) FROM _route_pts"))
    if n >= _INDEX_POINTS_FROM:
        conn.execute(sa.text("CREATE INDEX ON _route_pts USING gist (p)"))
    conn.execute(sa.text("ANALYZE _route_pts"))
    # the area of the points, in WGS84, widened by the segment reach (in metres)
    area = (
        f"(SELECT ST_Transform(ST_SetSRID(ST_Expand(ST_Extent(p)::geometry, "
        f"{reach + margin}), {srid}), 4326) FROM _route_pts)"
    )
    conn.execute(
        sa.text(
            f"""CREATE TEMP TABLE _route_grid ON COMMIT DROP AS
            SELECT g.id, g.community_id, h.staff_id AS head_id, m.gm,
                   CASE WHEN {margin} > 0 THEN ST_Buffer(m.gm, -{margin}) ELSE m.gm END AS core
            FROM grid g CROSS JOIN LATERAL (SELECT ST_Transform(g.geom, {srid}) AS gm) m
            LEFT JOIN ({head_sql}) h ON h.target_id = g.id
            WHERE g.geom && {area} AND g.valid_to IS NULL"""
        )
    )
    conn.execute(
        sa.text(
            f"""CREATE TEMP TABLE _route_seg ON COMMIT DROP AS
            SELECT s.id, ST_Transform(s.geom, {srid}) AS gm, c.staff_id AS chief_id
            FROM alley_segment s LEFT JOIN ({chief_sql}) c ON c.target_id = s.id
            WHERE s.geom && {area}"""
        )
    )
    conn.execute(sa.text("CREATE INDEX ON _route_grid USING gist (gm)"))
    conn.execute(sa.text("CREATE INDEX ON _route_seg USING gist (gm)"))
    conn.execute(sa.text("ANALYZE _route_grid; ANALYZE _route_seg"))
    return srid


def drop_routing(db: Session | Connection) -> None:
    _conn(db).execute(sa.text("DROP TABLE IF EXISTS _route_pts, _route_grid, _route_seg"))


#: the SELECT of :func:`routed`
_ROUTED_SQL = """
        WITH gm AS (
          SELECT DISTINCT ON (t.id) t.id, g.id AS grid_id, g.community_id, g.head_id,
                 NOT ST_Intersects(g.core, t.p) AS near_edge
          FROM _route_grid g JOIN _route_pts t ON ST_Intersects(g.gm, t.p)
          ORDER BY t.id, g.id
        ), sm AS (
          SELECT DISTINCT ON (t.id) t.id, s.id AS segment_id, s.chief_id,
                 ST_Distance(s.gm, t.p) AS d
          FROM _route_seg s JOIN _route_pts t ON ST_DWithin(s.gm, t.p, :segmax)
          ORDER BY t.id, ST_Distance(s.gm, t.p), s.id
        )
        SELECT t.id, gm.grid_id,
               COALESCE(gm.community_id, (
                 SELECT cm.id FROM community cm WHERE ST_Intersects(cm.geom, t.geom)
                 ORDER BY cm.id LIMIT 1)) AS community_id,
               gm.head_id AS grid_head_id, sm.segment_id, sm.chief_id,
               sm.d AS segment_distance_m,
               COALESCE(gm.near_edge, TRUE) AS location_to_confirm
        FROM _route_pts t LEFT JOIN gm ON gm.id = t.id LEFT JOIN sm ON sm.id = t.id"""


def routed(segment_max_m: float = 30.0) -> sa.TextualSelect:
    """``id`` and :data:`ROUTED_COLUMNS` for every point of ``_route_pts``, as a Core SELECT.

    Needs the tables of :func:`prepare_routing`; ``segment_max_m`` (metres, bound) is the
    nearest-segment search radius. Points exactly on a shared grid edge belong to the
    lower grid id (deterministic). Literal SQL: it only reads this module's own temporary
    tables, and the planner's grid-major joins described above are written out as such.
    """
    incident = Incident.__table__
    return (
        sa.text(_ROUTED_SQL)
        .bindparams(segmax=float(segment_max_m))
        .columns(*(sa.column(c, incident.c[c].type) for c in ("id", *ROUTED_COLUMNS)))
    )


def route_incidents(
    db: Session | Connection,
    ids: Sequence[int] | sa.SelectBase | None = None,
    *,
    segment_max_m: float = 30.0,
    boundary_confirm_m: float = 15.0,
) -> int:
    """Route the incidents ``ids`` (default: every incident); return how many.

    Parameters
    ----------
    db : Session or Connection
        The caller's transaction; nothing is committed here.
    ids : sequence of int, or a Core SELECT of one id column, optional
        Which incidents: ``[incident.id]`` for a new one, ``select(incident.c.id).where(...)``
        for a set (see :func:`reroute_open`); None routes every incident.
    segment_max_m, boundary_confirm_m : float
        Nearest-segment search radius and grid-boundary margin, in metres.
    """
    conn = _conn(db)
    incident = Incident.__table__
    points = sa.select(incident.c.id, incident.c.geom)
    if ids is None:
        bulk = True
    elif isinstance(ids, sa.SelectBase):
        points = points.where(incident.c.id.in_(ids))
        n = conn.scalar(sa.select(sa.func.count()).select_from(ids.subquery()))
        bulk = n >= _BULK_POINTS
    else:
        ids = [int(i) for i in ids]
        points = points.where(
            incident.c.id == sa.any_(sa.bindparam(None, ids, type_=ARRAY(sa.BigInteger)))
        )
        bulk = len(ids) >= _BULK_POINTS
    if bulk:
        use_large_temp_buffers(conn)
    prepare_routing(
        conn, points, segment_max_m=segment_max_m, boundary_confirm_m=boundary_confirm_m
    )
    r = routed(segment_max_m).subquery("r")
    values: dict[str, Any] = {c: r.c[c] for c in ROUTED_COLUMNS}
    # a point located from an address alone stays to be confirmed whatever grid it is in
    values["location_to_confirm"] = r.c.location_to_confirm | (
        incident.c.located_by != sa.literal_column("'coordinates'")
    )
    result = conn.execute(sa.update(incident).values(values).where(incident.c.id == r.c.id))
    drop_routing(conn)
    return result.rowcount


def reroute_open(db: Session | Connection, **kwargs: float) -> int:
    """Re-route every open incident (after grids or assignments change)."""
    incident = Incident.__table__
    return route_incidents(
        db, sa.select(incident.c.id).where(incident.c.state.in_(OPEN_STATES)), **kwargs
    )
