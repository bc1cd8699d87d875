"""Route incidents to their community, grid, nearest alley segment, chief and grid head.

Runs entirely in PostGIS as one set-based statement, so routing a million imported incidents
costs one pass rather than a million round trips. Distances are measured in metres in the
district's UTM zone (chosen by pyproj), never in degrees.

An incident is flagged ``location_to_confirm`` when it lies outside every grid or within
``boundary_confirm_m`` of its grid's boundary: there the responsible grid is uncertain and
a planner must confirm it.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from mapsvc.services.assignments import holders
from mapsvc.services.geo import metric_epsg_for_data

OPEN_STATES = ("received", "dispatched", "in_hand", "verified", "returned", "reopened")


def _conn(db: Session | Connection) -> Connection:
    return db.connection() if isinstance(db, Session) else db


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
    srid = metric_epsg_for_data(conn)
    chiefs = holders("alley_chief", "segment").subquery()
    heads = holders("grid_head", "grid").subquery()
    chief_sql, head_sql = (
        str(q.select().compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        for q in (chiefs, heads)
    )
    conn.execute(sa.text("DROP TABLE IF EXISTS _route_grid, _route_seg"))
    conn.execute(
        sa.text(
            f"""CREATE TEMP TABLE _route_grid ON COMMIT DROP AS
            SELECT g.id, g.community_id, ST_Transform(g.geom, {srid}) AS gm,
                   ST_Boundary(ST_Transform(g.geom, {srid})) AS bd, h.staff_id AS head_id
            FROM grid g LEFT JOIN ({head_sql}) h ON h.target_id = g.id"""
        )
    )
    conn.execute(
        sa.text(
            f"""CREATE TEMP TABLE _route_seg ON COMMIT DROP AS
            SELECT s.id, ST_Transform(s.geom, {srid}) AS gm, c.staff_id AS chief_id
            FROM alley_segment s LEFT JOIN ({chief_sql}) c ON c.target_id = s.id"""
        )
    )
    conn.execute(sa.text("CREATE INDEX ON _route_grid USING gist (gm)"))
    conn.execute(sa.text("CREATE INDEX ON _route_seg USING gist (gm)"))
    conn.execute(sa.text("ANALYZE _route_grid; ANALYZE _route_seg"))
    result = conn.execute(
        sa.text(
            f"""
            WITH t AS (
              SELECT i.id, ST_Transform(i.geom, {srid}) AS p, i.geom FROM incident i
              WHERE {where_sql}
            ), r AS (
              SELECT t.id, g.id AS grid_id,
                     COALESCE(g.community_id, c.id) AS community_id, g.head_id,
                     s.id AS segment_id, s.chief_id, s.d AS seg_d,
                     (g.id IS NULL OR ST_DWithin(g.bd, t.p, :margin)) AS confirm
              FROM t
              LEFT JOIN LATERAL (
                SELECT rg.id, rg.community_id, rg.head_id, rg.bd FROM _route_grid rg
                WHERE ST_Intersects(rg.gm, t.p) ORDER BY rg.id LIMIT 1
              ) g ON TRUE
              LEFT JOIN LATERAL (
                SELECT cm.id FROM community cm
                WHERE g.id IS NULL AND ST_Intersects(cm.geom, t.geom) LIMIT 1
              ) c ON TRUE
              LEFT JOIN LATERAL (
                SELECT rs.id, rs.chief_id, ST_Distance(rs.gm, t.p) AS d FROM _route_seg rs
                WHERE ST_DWithin(rs.gm, t.p, :segmax) ORDER BY rs.gm <-> t.p LIMIT 1
              ) s ON TRUE
            )
            UPDATE incident i SET grid_id = r.grid_id, community_id = r.community_id,
                   grid_head_id = r.head_id, segment_id = r.segment_id, chief_id = r.chief_id,
                   segment_distance_m = r.seg_d, location_to_confirm = r.confirm
            FROM r WHERE i.id = r.id
            """
        ),
        {"margin": boundary_confirm_m, "segmax": segment_max_m, **(params or {})},
    )
    conn.execute(sa.text("DROP TABLE IF EXISTS _route_grid, _route_seg"))
    return result.rowcount


def reroute_open(db: Session | Connection, **kwargs: float) -> int:
    """Re-route every open incident (after grids or assignments change)."""
    return route_incidents(
        db, "i.state = ANY(:open_states)", {"open_states": list(OPEN_STATES)}, **kwargs
    )
