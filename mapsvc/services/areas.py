"""Where the district is: the extent a map page opens on.

A page with nothing more specific to show (no chief, grid or incident asked for) opens on
the whole district. This is the one query for that extent; pages and benchmarks ask here
instead of each writing its own ``ST_Extent``.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

#: ``(minx, miny, maxx, maxy)`` in WGS84 degrees
Extent = tuple[float, float, float, float]


def district_extent(session: Session, *, or_incidents: bool = True) -> Extent | None:
    """The extent of the loaded district outline(s), ``(minx, miny, maxx, maxy)`` WGS84.

    Parameters
    ----------
    session
        Any SQLAlchemy session (or connection) on the service's database.
    or_incidents
        When no district is loaded, answer the extent of the incidents instead: a database
        that holds incidents imported before any boundary still opens on them rather than
        on a default place far away. ``False`` answers the district's extent only.

    Returns
    -------
    tuple or None
        The extent, or None when there is nothing to fit (empty database).

    Notes
    -----
    One statement: the incidents' extent is only computed when the district's is NULL
    (``COALESCE`` evaluates lazily), and both read the GiST-indexed ``geom`` columns.
    """
    fallback = "(SELECT ST_Extent(geom) FROM incident)" if or_incidents else "NULL::box2d"
    row = session.execute(
        sa.text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT COALESCE("
            f"(SELECT ST_Extent(geom) FROM district), {fallback})::geometry AS e) s"
        )
    ).first()
    if row is None or row[0] is None:
        return None
    return (float(row[0]), float(row[1]), float(row[2]), float(row[3]))


def district_names(session: Session) -> str:
    """The names of the districts in the database, joined (what a printed map is of)."""
    from mapsvc.models import District

    return "、".join(session.scalars(sa.select(District.name).order_by(District.id)))
