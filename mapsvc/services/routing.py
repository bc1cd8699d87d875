"""Route incidents to their community, grid, nearest alley segment, chief and grid head.

Runs entirely in PostGIS as set-based statements, so routing a million imported incidents
costs one pass rather than a million round trips. Distances are measured in metres in the
district's UTM zone (chosen by pyproj), never in degrees.

An incident is flagged ``location_to_confirm`` when it lies outside every grid or within
``boundary_confirm_m`` of its grid's boundary: there the responsible grid is uncertain and
a planner must confirm it.

How it stays fast (measured in ``bench/bench_incident_import.py``)
------------------------------------------------------------------
* Each grid is cut once, in the metric CRS, into its *core* (the grid shrunk by the margin)
  and its *band* (the rest), both split with ``ST_Subdivide`` into small pieces and
  transformed back to WGS84. One index probe on those pieces then answers both "which grid"
  and "near its boundary?" for a point, with a point-in-polygon test on a polygon of at most
  a few dozen vertices, and without transforming the point.
* The nearest segment is a KNN (``<->``) probe in the metric CRS limited by ``ST_DWithin``.
* The same SELECT (:func:`routed_sql`) serves the UPDATE of existing incidents
  (:func:`route_incidents`) and the bulk import, which inserts already-routed rows from a
  staging table (no second write of a million rows).
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
_PIECE_VERTICES = 32


def _conn(db: Session | Connection) -> Connection:
    return db.connection() if isinstance(db, Session) else db


def prepare_routing(
    db: Session | Connection, *, segment_max_m: float = 30.0, boundary_confirm_m: float = 15.0
) -> int:
    """Build the temporary lookup tables of this transaction; return the metric SRID.

    ``_route_piece``: grid pieces (WGS84) with grid, community, head and ``core`` (False in
    the boundary band). ``_route_seg``: segments in the metric CRS with their chief.
    Dropped at commit (or by :func:`drop_routing`).
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
    margin = float(boundary_confirm_m)
    conn.execute(
        sa.text(
            f"""CREATE TEMP TABLE _route_piece ON COMMIT DROP AS
            WITH g AS (
              SELECT g.id, g.community_id, h.staff_id AS head_id,
                     ST_Transform(g.geom, {srid}) AS gm
              FROM grid g LEFT JOIN ({head_sql}) h ON h.target_id = g.id
            ), parts AS (
              SELECT id, community_id, head_id, gm,
                     CASE WHEN {margin} > 0 THEN ST_Buffer(gm, -{margin}) ELSE gm END AS core
              FROM g
            ), split AS (
              SELECT id, community_id, head_id, TRUE AS core, core AS geom FROM parts
              WHERE NOT ST_IsEmpty(core)
              UNION ALL
              SELECT id, community_id, head_id, FALSE, ST_Difference(gm, core) FROM parts
              WHERE {margin} > 0
            )
            SELECT id, community_id, head_id, core,
                   ST_Transform(ST_Subdivide(geom, {_PIECE_VERTICES}), 4326) AS geom
            FROM split WHERE NOT ST_IsEmpty(geom)"""
        )
    )
    conn.execute(
        sa.text(
            f"""CREATE TEMP TABLE _route_seg ON COMMIT DROP AS
            SELECT s.id, ST_Transform(s.geom, {srid}) AS gm, c.staff_id AS chief_id
            FROM alley_segment s LEFT JOIN ({chief_sql}) c ON c.target_id = s.id"""
        )
    )
    conn.execute(sa.text("CREATE INDEX ON _route_piece USING gist (geom)"))
    conn.execute(sa.text("CREATE INDEX ON _route_seg USING gist (gm)"))
    conn.execute(sa.text("ANALYZE _route_piece; ANALYZE _route_seg"))
    return srid


def drop_routing(db: Session | Connection) -> None:
    _conn(db).execute(sa.text("DROP TABLE IF EXISTS _route_piece, _route_seg"))


def routed_sql(source: str, srid: int, where_sql: str = "TRUE") -> str:
    """SELECT ``t.id`` and :data:`ROUTED_COLUMNS` for the points of ``source`` (alias ``t``).

    ``source`` is a table or subquery with ``id`` and a WGS84 point ``geom``; the lookup
    tables of :func:`prepare_routing` must exist. Bind parameters: ``:segmax`` (metres).
    """
    return f"""
        SELECT t.id, g.id AS grid_id, COALESCE(g.community_id, c.id) AS community_id,
               g.head_id AS grid_head_id, s.id AS segment_id, s.chief_id,
               s.d AS segment_distance_m, (g.id IS NULL OR NOT g.core) AS location_to_confirm
        FROM {source} t
        LEFT JOIN LATERAL (
          SELECT rp.id, rp.community_id, rp.head_id, rp.core FROM _route_piece rp
          WHERE ST_Intersects(rp.geom, t.geom) ORDER BY rp.core DESC, rp.id LIMIT 1
        ) g ON TRUE
        LEFT JOIN LATERAL (
          SELECT cm.id FROM community cm
          WHERE g.id IS NULL AND ST_Intersects(cm.geom, t.geom) ORDER BY cm.id LIMIT 1
        ) c ON TRUE
        LEFT JOIN LATERAL (
          SELECT rs.id, rs.chief_id, ST_Distance(rs.gm, tp.p) AS d
          FROM (SELECT ST_Transform(t.geom, {srid}) AS p) tp, _route_seg rs
          WHERE ST_DWithin(rs.gm, tp.p, :segmax) ORDER BY rs.gm <-> tp.p, rs.id LIMIT 1
        ) s ON TRUE
        WHERE {where_sql}"""


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
    srid = prepare_routing(conn, segment_max_m=segment_max_m, boundary_confirm_m=boundary_confirm_m)
    sets = ", ".join(f"{c} = r.{c}" for c in ROUTED_COLUMNS)
    source = f"(SELECT i.id, i.geom FROM incident i WHERE {where_sql})"
    result = conn.execute(
        sa.text(
            f"UPDATE incident u SET {sets} FROM ({routed_sql(source, srid)}) r WHERE u.id = r.id"
        ),
        {"segmax": segment_max_m, **(params or {})},
    )
    drop_routing(conn)
    return result.rowcount


def reroute_open(db: Session | Connection, **kwargs: float) -> int:
    """Re-route every open incident (after grids or assignments change)."""
    return route_incidents(
        db, "i.state = ANY(:open_states)", {"open_states": list(OPEN_STATES)}, **kwargs
    )
