"""Generated units (blocks) for a community, for the demo and the benchmarks.

A real district imports its blocks or building groups (``mapsvc import units``); the demo
has none, so its communities are cut into Voronoi blocks around jittered points, each with
households drawn from a seeded random stream (denser in the middle, as old city centres
are), and a few neighbouring pairs marked to be kept whole (an estate, a school).
"""

from __future__ import annotations

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

from mapsvc.services.geo import utm_epsg
from mapsvc.services.partition import Unit


def generate_units(
    community: BaseGeometry,
    *,
    n: int,
    households: int,
    seed: int = 0,
    prefix: str = "u",
    groups: int = 0,
) -> list[Unit]:
    """About ``n`` blocks tiling ``community`` (lon/lat) holding ``households`` in all.

    Blocks are the Voronoi cells of jittered lattice points clipped to the community (so
    neighbours share exact borders); each holds households in proportion to a lognormal
    weight times a centre-heavy density. ``groups`` neighbouring pairs get a group name
    (kept whole by the partition). Population is 2.8 per household, rounded.
    """
    rng = np.random.default_rng(seed)
    c = community.centroid
    epsg = utm_epsg(c.x, c.y)
    to_m = Transformer.from_crs(4326, epsg, always_xy=True)
    to_ll = Transformer.from_crs(epsg, 4326, always_xy=True)

    def fwd(xy: np.ndarray) -> np.ndarray:
        return np.column_stack(to_m.transform(xy[:, 0], xy[:, 1]))

    def back(xy: np.ndarray) -> np.ndarray:
        return np.column_stack(to_ll.transform(xy[:, 0], xy[:, 1]))

    area = shapely.transform(community, fwd)
    minx, miny, maxx, maxy = area.bounds
    step = np.sqrt(area.area / max(n, 1))
    xs = np.arange(minx + step / 2, maxx, step)
    ys = np.arange(miny + step / 2, maxy, step)
    gx, gy = np.meshgrid(xs, ys)
    pts = np.column_stack([gx.ravel(), gy.ravel()]) + rng.uniform(-0.35, 0.35, (gx.size, 2)) * step
    inside = shapely.contains_xy(area, pts[:, 0], pts[:, 1])
    pts = pts[inside]
    if len(pts) < 2:
        pts = np.array([[area.centroid.x, area.centroid.y]])
    cells = shapely.voronoi_polygons(shapely.MultiPoint(pts), extend_to=area.envelope.buffer(step))
    blocks = []
    for cell in shapely.get_parts(cells):
        piece = cell.intersection(area)
        for part in shapely.get_parts(piece):
            if part.geom_type == "Polygon" and part.area > 1.0:
                blocks.append(part)
    blocks.sort(key=lambda b: (round(b.centroid.y, 1), round(b.centroid.x, 1)))
    centre = np.array([area.centroid.x, area.centroid.y])
    reach = max(maxx - minx, maxy - miny) / 2
    d = np.array([np.hypot(*(np.array([b.centroid.x, b.centroid.y]) - centre)) for b in blocks])
    weight = rng.lognormal(0.0, 0.5, len(blocks)) * (1.5 - d / (reach * 1.2)).clip(0.3)
    weight *= np.array([b.area for b in blocks])
    share = weight / weight.sum()
    hh = np.floor(share * households).astype(int)
    for i in np.argsort(-(share * households - hh))[: households - int(hh.sum())]:
        hh[i] += 1
    group_of: dict[int, str] = {}
    if groups:
        tree = shapely.STRtree(blocks)
        for gi, i in enumerate(
            rng.choice(len(blocks), size=min(groups, len(blocks)), replace=False)
        ):
            if i in group_of:
                continue
            near = [j for j in tree.query(blocks[i].buffer(0.05), predicate="intersects")
                    if j != i and j not in group_of and blocks[i].buffer(0.05).intersection(blocks[j]).area > 1]  # fmt: skip
            if near:
                name = f"{prefix}-estate-{gi + 1}"
                group_of[int(i)] = group_of[int(near[0])] = name
    return [
        Unit(
            id=f"{prefix}{k + 1:05d}",
            geom=shapely.transform(b, back),
            households=int(hh[k]),
            population=int(round(hh[k] * 2.8)),
            group=group_of.get(k),
        )
        for k, b in enumerate(blocks)
    ]
