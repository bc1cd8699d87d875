"""Stage: the district, its subdistricts (街道), communities (社区) and grids (网格).

Community polygons are Voronoi cells around the real community points (placed points for
the communities that have none), gently warped and clipped to the district; a subdistrict
is the union of its communities, so the three levels tile the district exactly. Grids of
about :data:`HOUSEHOLDS_PER_GRID` households are Voronoi cells of k-means centres clipped by
their community, so they tile it by construction. Population, households and enterprises
come from each community's area and urban-rural class (``ur_code`` 111 main urban area is
dense, 112 fringe less so).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import shapely
import shapely.ops
from shapely.geometry import MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry
from sqlalchemy.engine import Connection

from mapsvc.demo.geometry import (
    Metric,
    Warp,
    as_multi,
    dense,
    kmeans,
    sample_in,
    split_int,
    voronoi_cells,
)
from mapsvc.demo.source import (
    GENERATED_CRS,
    SOURCE_CRS,
    AdminUnit,
    community_display_name,
)
from mapsvc.demo.write import copy_rows, ewkb
from mapsvc.services.chinacrs import points_to_wgs84

HOUSEHOLDS_PER_GRID = 400


@dataclass
class Area:
    """A planned subdistrict, community or grid (geometry in the metric frame)."""

    code: str
    name: str
    geom: MultiPolygon  # metric
    parent: str | None = None
    point: np.ndarray | None = None
    population: int = 0
    households: int = 0
    enterprises: int = 0
    ur_code: str | None = None


@dataclass
class AreaPlan:
    """The planned administrative areas; each row's id is its position in its list + 1."""

    district_unit: AdminUnit
    district: MultiPolygon  # metric, densified like the communities' shared edges
    subdistricts: list[Area]
    communities: list[Area]
    grids: list[Area]

    @cached_property
    def subdistrict_ids(self) -> dict[str, int]:
        return {s.code: i for i, s in enumerate(self.subdistricts, start=1)}

    @cached_property
    def community_ids(self) -> dict[str, int]:
        return {c.code: i for i, c in enumerate(self.communities, start=1)}

    @cached_property
    def grid_ids(self) -> dict[str, int]:
        return {g.code: i for i, g in enumerate(self.grids, start=1)}


# --------------------------------------------------------------------------- community points


def place_points(
    district: MultiPolygon, units: list[AdminUnit], metric: Metric, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """A metric point for every community: real ones where published, placed ones otherwise.

    Placed points go, one at a time, to the candidate inside the subdistrict's provisional
    territory (the Voronoi cells of its known communities) that is farthest from every point
    so far and from the territory's edge: the cells come out evenly sized, as real
    communities of one subdistrict roughly are. A subdistrict with no known point at all
    (the 清濛 development zone) starts from the spot of the district farthest from every
    known point.
    """
    comms = sorted((u for u in units if u.rank == 5), key=lambda u: u.code)
    inner = district.buffer(-60)
    shapely.prepare(district)
    pts = _published_points(district, inner, comms, metric, rng)
    by_sub: dict[str, list[AdminUnit]] = defaultdict(list)
    for u in comms:
        by_sub[u.parent].append(u)
    seeds = _zone_seeds(inner, by_sub, pts, rng)
    territory = _territories(district, comms, pts, seeds)
    for sub, members in sorted(by_sub.items()):
        region = shapely.union_all(territory[sub]).intersection(district)
        region_in = region.buffer(-40) if region.buffer(-40).area > 0 else region
        for u in members:
            if u.code in pts:
                continue
            if sub in seeds and not any(m.code in pts for m in members):
                pts[u.code] = seeds[sub]
                continue
            pts[u.code] = _far_point(region_in, np.array(list(pts.values())), rng)
    return pts


def _published_points(
    district: MultiPolygon,
    inner: BaseGeometry,
    comms: list[AdminUnit],
    metric: Metric,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Published community points in the frame, moved inside the district and apart.

    A point just outside the (2016) outline goes to the nearest spot 60 m inside it; two
    communities that share a published point are moved 120 m apart.
    """
    pts: dict[str, np.ndarray] = {}
    known = [u for u in comms if u.lon is not None]
    lon, lat = points_to_wgs84([u.lon for u in known], [u.lat for u in known], SOURCE_CRS)
    xs, ys = metric.xy(lon, lat)
    for u, x, y in zip(known, xs, ys, strict=True):
        p = np.array([x, y])
        if not district.contains(Point(p)):
            q = shapely.ops.nearest_points(inner, Point(p))[0]
            p = np.array([q.x, q.y])
        while any(np.hypot(*(p - o)) < 30.0 for o in pts.values()):
            ang = rng.uniform(0, 2 * math.pi)  # two communities share a published point
            cand = p + 120.0 * np.array([math.cos(ang), math.sin(ang)])
            if district.contains(Point(cand)):
                p = cand
        pts[u.code] = p
    return pts


def _far_point(
    region: BaseGeometry,
    taken: np.ndarray,
    rng: np.random.Generator,
    n: int = 600,
    edge_weight: float = 1.2,
) -> np.ndarray:
    """The one of ``n`` random points of ``region`` farthest from ``taken`` and the edge."""
    cand = sample_in(region, n, rng)
    d = np.min(np.hypot(*(cand[:, None, :] - taken[None]).transpose(2, 0, 1)), axis=1)
    if edge_weight:
        edge = shapely.distance(region.boundary, shapely.points(cand))
        d = np.minimum(d, edge_weight * edge)
    return cand[np.argmax(d)]


def _zone_seeds(
    inner: BaseGeometry,
    by_sub: dict[str, list[AdminUnit]],
    pts: dict[str, np.ndarray],
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """A starting point for each subdistrict with no published community point."""
    seeds: dict[str, np.ndarray] = {}
    for sub, members in sorted(by_sub.items()):
        if not any(u.code in pts for u in members):
            taken = np.array(list(pts.values()) + list(seeds.values()))
            seeds[sub] = _far_point(inner.buffer(-300), taken, rng, 3000, edge_weight=0.0)
    return seeds


def _territories(
    district: MultiPolygon,
    comms: list[AdminUnit],
    pts: dict[str, np.ndarray],
    seeds: dict[str, np.ndarray],
) -> dict[str, list[Polygon]]:
    """Each subdistrict's provisional territory: the Voronoi cells of its known points."""
    codes = list(pts) + [f"seed:{s}" for s in seeds]
    sub_of = {u.code: u.parent for u in comms} | {f"seed:{s}": s for s in seeds}
    arr = np.array(list(pts.values()) + list(seeds.values()))
    cells = voronoi_cells(arr, district.envelope.buffer(5000))
    territory: dict[str, list[Polygon]] = defaultdict(list)
    for code, cell in zip(codes, cells, strict=True):
        territory[sub_of[code]].append(cell)
    return territory


# --------------------------------------------------------------------------- polygons and figures


def _density(ur: str | None, rng: np.random.Generator) -> float:
    """People per km²: the old city (111) is very dense, the fringe (112) much less."""
    if ur == "111":
        return float(rng.lognormal(math.log(17000), 0.3))
    if ur == "112":
        return float(rng.lognormal(math.log(4500), 0.35))
    return float(rng.lognormal(math.log(3000), 0.4))


def plan_areas(
    units: list[AdminUnit], district: MultiPolygon, metric: Metric, rng: np.random.Generator
) -> AreaPlan:
    """Community, subdistrict and grid polygons (metric) with their figures."""
    pts = place_points(district, units, metric, rng)
    comm_units = sorted((u for u in units if u.rank == 5), key=lambda u: u.code)
    arr = np.array([pts[u.code] for u in comm_units])
    cells = voronoi_cells(arr, district.envelope.buffer(5000))
    community_warp = Warp(rng, 35.0, 700.0)
    grid_warp = Warp(rng, 12.0, 260.0)
    communities = [
        _community(u, cell, p, district, metric, community_warp, rng)
        for u, cell, p in zip(comm_units, cells, arr, strict=True)
    ]
    subdistricts = _subdistricts(units, communities, metric)
    grids = [g for c in communities for g in _grids_of(c, grid_warp, rng)]
    return AreaPlan(
        district_unit=next(u for u in units if u.rank == 3),
        district=district,
        subdistricts=subdistricts,
        communities=communities,
        grids=grids,
    )


def _community(
    u: AdminUnit,
    cell: Polygon,
    point: np.ndarray,
    district: MultiPolygon,
    metric: Metric,
    warp: Warp,
    rng: np.random.Generator,
) -> Area:
    """One community: its warped Voronoi cell in the district, and figures from its area."""
    geom = as_multi(dense(cell, warp).intersection(district))
    area_km2 = metric.area_km2(geom)
    if u.dummy:  # 开发区虚拟居委会: an industrial zone, few residents, many firms
        pop = int(rng.integers(600, 1500))
        ent = int(rng.integers(180, 420))
    else:
        pop = int(np.clip(_density(u.ur_code, rng) * area_km2, 1500, 11000))
        per_k = 18 if u.ur_code == "111" else 8
        ent = int(pop / 1000 * per_k * rng.uniform(0.6, 1.5)) + int(rng.integers(5, 40))
    hh = int(round(pop / rng.uniform(2.55, 3.05)))
    return Area(
        code=u.code,
        name=community_display_name(u.name),
        geom=geom,
        parent=u.parent,
        point=point,
        population=pop,
        households=hh,
        enterprises=ent,
        ur_code=u.ur_code,
    )


def _subdistricts(units: list[AdminUnit], communities: list[Area], metric: Metric) -> list[Area]:
    """Each subdistrict as the union of its communities, with its published point."""
    subdistricts = []
    for u in sorted((u for u in units if u.rank == 4), key=lambda u: u.code):
        members = [c.geom for c in communities if c.parent == u.code]
        if not members:
            continue
        point = None
        if u.lon is not None:
            lon, lat = points_to_wgs84([u.lon], [u.lat], SOURCE_CRS)
            x, y = metric.xy(lon, lat)
            point = np.array([x[0], y[0]])
        subdistricts.append(
            Area(code=u.code, name=u.name, geom=as_multi(shapely.union_all(members)), point=point)
        )
    return subdistricts


def _grids_of(c: Area, warp: Warp, rng: np.random.Generator) -> list[Area]:
    """A community split into grids of about HOUSEHOLDS_PER_GRID, numbered north to south."""
    n = max(1, int(round(c.households / HOUSEHOLDS_PER_GRID)))
    if n == 1:
        parts = [c.geom]
    else:
        sample = sample_in(c.geom, 80 * n, rng)
        centres = kmeans(sample, n, rng)
        gcells = voronoi_cells(centres, c.geom.envelope.buffer(1000))
        parts = [as_multi(dense(gc, warp).intersection(c.geom)) for gc in gcells]
        parts = [p for p in parts if not p.is_empty]
    parts.sort(key=lambda g: (-round(g.centroid.y / 60.0), g.centroid.x))
    hh = split_int(c.households, rng.uniform(0.85, 1.15, len(parts)))
    pop = split_int(c.population, hh + 1e-9)
    return [
        Area(
            code=f"{c.code}-{i:02d}",
            name=f"{c.name}第{i}网格",
            geom=g,
            parent=c.code,
            population=int(p),
            households=int(h),
        )
        for i, (g, h, p) in enumerate(zip(parts, hh, pop, strict=True), start=1)
    ]


# --------------------------------------------------------------------------- writing


def write_boundaries(conn: Connection, plan: AreaPlan, metric: Metric) -> None:
    """The district, subdistrict and community rows (real boundaries: source CRS GCJ-02)."""
    unit = plan.district_unit
    copy_rows(
        conn,
        "district",
        ["id", "code", "name", "geom", "source_crs"],
        [(1, unit.code, unit.name, ewkb([metric.to_ll(plan.district)])[0], SOURCE_CRS)],
    )
    sub_id = plan.subdistrict_ids
    sub_ll = ewkb([metric.to_ll(s.geom) for s in plan.subdistricts])
    copy_rows(
        conn,
        "subdistrict",
        ["id", "code", "name", "district_id", "geom", "source_crs"],
        [
            (sub_id[s.code], s.code, s.name, 1, g, SOURCE_CRS)
            for s, g in zip(plan.subdistricts, sub_ll, strict=True)
        ],
    )
    comm_ll = ewkb([metric.to_ll(cm.geom) for cm in plan.communities])
    copy_rows(
        conn,
        "community",
        [
            "id",
            "code",
            "name",
            "subdistrict_id",
            "geom",
            "population",
            "households",
            "enterprises",
            "ur_code",
            "source_crs",
        ],
        [
            (
                plan.community_ids[cm.code],
                cm.code,
                cm.name,
                sub_id[cm.parent],
                g,
                cm.population,
                cm.households,
                cm.enterprises,
                cm.ur_code,
                SOURCE_CRS,
            )
            for cm, g in zip(plan.communities, comm_ll, strict=True)
        ],
    )


def write_grids(conn: Connection, plan: AreaPlan, metric: Metric) -> None:
    """The grid rows (generated: source CRS WGS84)."""
    grid_ll = ewkb([metric.to_ll(g.geom) for g in plan.grids])
    copy_rows(
        conn,
        "grid",
        ["id", "code", "name", "community_id", "geom", "population", "households", "source_crs"],
        [
            (
                plan.grid_ids[g.code],
                g.code,
                g.name,
                plan.community_ids[g.parent],
                wkb,
                g.population,
                g.households,
                GENERATED_CRS,
            )
            for g, wkb in zip(plan.grids, grid_ll, strict=True)
        ],
    )
