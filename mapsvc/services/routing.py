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
* The same SELECT (:func:`routed_sql`) serves the UPDATE of stored incidents
  (:func:`route_incidents`) and the bulk import, which inserts rows already routed.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from mapsvc.services.assignments import holders
from mapsvc.services.geo import metric_epsg_for_data

OPEN_STATES = ("received", "dispatched", "in_hand", "verified", "returned", "reopened")
#: columns :func:`routed_sql` returns besides ``id``
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
    source_sql: str,
    params: dict | None = None,
    *,
    segment_max_m: float = 30.0,
    boundary_confirm_m: float = 15.0,
) -> int:
    """Build this transaction's temporary routing tables; return the metric SRID.

    ``source_sql`` is a SELECT of ``id`` and a WGS84 point ``geom`` (the points to route).
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
    conn.execute(
        sa.text(
            f"""CREATE TEMP TABLE _route_pts ON COMMIT DROP AS
            SELECT s.id, s.geom, ST_Transform(s.geom, {srid}) AS p FROM ({source_sql}) s"""
        ),
        params or {},
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
            WHERE g.geom && {area}"""
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


def routed_sql() -> str:
    """SELECT ``id`` and :data:`ROUTED_COLUMNS` for every point of ``_route_pts``.

    Needs the tables of :func:`prepare_routing`; bind parameter ``:segmax`` (metres).
    Points exactly on a shared grid edge belong to the lower grid id (deterministic).
    """
    return """
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


def route_incidents(
    db: Session | Connection,
    where_sql: str = "TRUE",
    params: dict | None = None,
    *,
    segment_max_m: float = 30.0,
    boundary_confirm_m: float = 15.0,
) -> int:
    """Route the incidents matching ``where_sql`` (SQL over alias ``i``); return how many.

    Parameters
    ----------
    db : Session or Connection
        The caller's transaction; nothing is committed here.
    where_sql : str
        Condition on ``incident i``, e.g. ``"i.id = ANY(:ids)"`` or ``"i.grid_id IS NULL"``.
    params : dict
        Bind parameters for ``where_sql``.
    segment_max_m, boundary_confirm_m : float
        Nearest-segment search radius and grid-boundary margin, in metres.
    """
    conn = _conn(db)
    if where_sql == "TRUE" or (
        conn.scalar(sa.text(f"SELECT count(*) FROM incident i WHERE {where_sql}"), params or {})
        >= _BULK_POINTS
    ):
        use_large_temp_buffers(conn)
    prepare_routing(
        conn,
        f"SELECT i.id, i.geom FROM incident i WHERE {where_sql}",
        params,
        segment_max_m=segment_max_m,
        boundary_confirm_m=boundary_confirm_m,
    )
    sets = ", ".join(f"{c} = r.{c}" for c in ROUTED_COLUMNS)
    # a point located from an address alone stays to be confirmed whatever grid it is in
    sets = sets.replace(
        "location_to_confirm = r.location_to_confirm",
        "location_to_confirm = r.location_to_confirm OR u.located_by <> 'coordinates'",
    )
    result = conn.execute(
        sa.text(f"UPDATE incident u SET {sets} FROM ({routed_sql()}) r WHERE u.id = r.id"),
        {"segmax": segment_max_m},
    )
    drop_routing(conn)
    return result.rowcount


def reroute_open(db: Session | Connection, **kwargs: float) -> int:
    """Re-route every open incident (after grids or assignments change)."""
    return route_incidents(
        db, "i.state = ANY(:open_states)", {"open_states": list(OPEN_STATES)}, **kwargs
    )
