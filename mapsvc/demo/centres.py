"""Stage: service centres (党群服务中心), one per community, subdistrict and the district.

A community's centre is a point inside it; a subdistrict's stands at its published point
when that lies in the subdistrict, and the district's at the district's published point.
Each is linked to the community it stands in, so centres count in density per community.
"""

from __future__ import annotations

import shapely
from shapely.geometry import Point
from sqlalchemy.engine import Connection

from mapsvc.demo.areas import AreaPlan
from mapsvc.demo.geometry import Metric
from mapsvc.demo.source import SOURCE_CRS
from mapsvc.demo.write import copy_rows, ewkb
from mapsvc.services.chinacrs import points_to_wgs84


def plan_centres(areas: AreaPlan, metric: Metric) -> list[tuple[str, int | None, Point]]:
    """``(name, community id, metric point)`` of every centre, communities first."""
    comm_id = areas.community_ids
    communities = areas.communities
    centres = []
    for cm in communities:
        centres.append((f"{cm.name}党群服务中心", comm_id[cm.code], cm.geom.representative_point()))
    comm_tree = shapely.STRtree([cm.geom for cm in communities])

    def community_at(p: Point) -> int | None:
        hit = comm_tree.query(p, predicate="intersects")
        return comm_id[communities[int(hit[0])].code] if len(hit) else None

    for s in areas.subdistricts:
        p = (
            Point(s.point)
            if s.point is not None and s.geom.contains(Point(s.point))
            else s.geom.representative_point()
        )
        centres.append((f"{s.name}党群服务中心", community_at(p), p))
    unit = areas.district_unit
    dx, dy = metric.xy(*points_to_wgs84([unit.lon], [unit.lat], SOURCE_CRS))
    dp = Point(float(dx[0]), float(dy[0]))
    centres.append((f"{unit.name}党群服务中心", community_at(dp), dp))
    return centres


def write_centres(conn: Connection, areas: AreaPlan, metric: Metric) -> None:
    """The service_centre rows."""
    centres = plan_centres(areas, metric)
    points = ewkb([metric.to_ll(p) for _, _, p in centres])
    copy_rows(
        conn,
        "service_centre",
        ["id", "name", "community_id", "geom"],
        [
            (i, name, cid, wkb)
            for i, ((name, cid, _), wkb) in enumerate(zip(centres, points, strict=True), start=1)
        ],
    )
