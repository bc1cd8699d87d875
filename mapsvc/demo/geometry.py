"""Geometry helpers of the demo generator: a metric frame, tidy overlays, sampling, tilings.

Everything is generated in a local frame in metres and converted to WGS84 once, vertex by
vertex, so that boundaries shared by two polygons stay shared after the conversion.
"""

from __future__ import annotations

import math
from typing import TypeVar

import numpy as np
import shapely
from numpy.typing import ArrayLike
from shapely.geometry import MultiPoint, MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

#: generated polygon edges are split to at most this length: PostGIS geography measures an
#: edge along the great circle, the planar clip puts vertices on the straight line; on
#: short edges the two agree to well under a square metre per community
MAX_EDGE_M = 25.0
SNAP_M = 0.001

#: a shapely geometry whose kind a coordinate-wise transform keeps
G = TypeVar("G", bound=BaseGeometry)


class Metric:
    """An affine local frame in metres around the district centre (for generating only).

    Generation needs metre-like coordinates (street spacing, hotspot radii, k-means), and
    the tiling needs every clip to survive the conversion back to WGS84 exactly: an
    intersection vertex computed on a straight edge must stay on that edge. A UTM
    projection bends straight edges by millimetres, which over a district adds up to
    square metres of gaps; an affine map keeps lines straight, so grids still tile their
    community after conversion. The scale factors are the geodesic metres per degree at
    the centre (pyproj.Geod); nothing reported is measured in this frame.
    """

    def __init__(self, lon: float, lat: float) -> None:
        from pyproj import Geod

        geod = Geod(ellps="WGS84")
        self.lon0, self.lat0 = lon, lat
        self.kx = geod.inv(lon - 0.005, lat, lon + 0.005, lat)[2] / 0.01
        self.ky = geod.inv(lon, lat - 0.005, lon, lat + 0.005)[2] / 0.01

    def xy(self, lon: ArrayLike, lat: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Frame coordinates (metres) of WGS84 longitudes and latitudes."""
        return (np.asarray(lon) - self.lon0) * self.kx, (np.asarray(lat) - self.lat0) * self.ky

    def lonlat(self, x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """WGS84 longitudes and latitudes of frame coordinates."""
        return np.asarray(x) / self.kx + self.lon0, np.asarray(y) / self.ky + self.lat0

    def to_m(self, geom: G) -> G:
        """A WGS84 geometry in the frame."""
        return shapely.transform(geom, lambda c: np.column_stack(self.xy(c[:, 0], c[:, 1])))

    def to_ll(self, geom: G) -> G:
        """A frame geometry in WGS84."""
        return shapely.transform(geom, lambda c: np.column_stack(self.lonlat(c[:, 0], c[:, 1])))

    def area_km2(self, geom: BaseGeometry) -> float:
        """Geodesic area of a frame geometry (pyproj.Geod on its WGS84 form)."""
        from pyproj import Geod

        return abs(Geod(ellps="WGS84").geometry_area_perimeter(self.to_ll(geom))[0]) / 1e6


def as_multi(geom: BaseGeometry) -> MultiPolygon:
    """Polygonal parts of ``geom`` as a MultiPolygon (line/point debris of overlays dropped)."""
    polys: list[Polygon] = []
    stack = [geom]
    while stack:
        g = stack.pop()
        if g.is_empty:
            continue
        if g.geom_type == "Polygon":
            polys.append(g)
        elif g.geom_type in ("MultiPolygon", "GeometryCollection"):
            stack.extend(reversed(list(g.geoms)))
    return MultiPolygon([p for p in polys if p.area > 0])


class Warp:
    """A smooth one-to-one displacement of the plane, so Voronoi edges meander a little.

    Real community and grid boundaries follow streets, walls and streams, not straight
    lines. Moving every vertex of a tiling by the same smooth field keeps it a tiling
    (shared vertices move together) as long as the field folds nothing: its slope here is
    below 0.4, so the map stays one-to-one.
    """

    def __init__(self, rng: np.random.Generator, amplitude_m: float, wavelength_m: float) -> None:
        self.amp = amplitude_m
        self.k = 2 * math.pi / wavelength_m
        self.phase = rng.uniform(0, 2 * math.pi, 4)

    def __call__(self, c: np.ndarray) -> np.ndarray:
        x, y = c[:, 0], c[:, 1]
        k, p = self.k, self.phase
        dx = self.amp * (np.sin(k * y + p[0]) + 0.5 * np.sin(1.7 * k * (x + y) + p[1])) / 1.5
        dy = self.amp * (np.sin(k * x + p[2]) + 0.5 * np.sin(1.7 * k * (x - y) + p[3])) / 1.5
        return np.column_stack([x + dx, y + dy])


def dense(geom: G, warp: Warp | None = None) -> G:
    """Edges split to at most MAX_EDGE_M, optionally warped, vertices snapped to 1 mm.

    Two neighbouring Voronoi cells split their shared edge from opposite ends, which puts
    the new vertices 1e-10 m apart; unions of such cells then carry hairline spikes that
    turn invalid in WGS84. Snapping to a millimetre makes shared edges identical again.
    """
    g = shapely.segmentize(geom, MAX_EDGE_M)
    if warp is not None:
        g = shapely.transform(g, warp)
    return shapely.set_precision(g, SNAP_M)


def sample_in(poly: BaseGeometry, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` uniform random points (x, y) inside ``poly`` by rejection from its bounds."""
    minx, miny, maxx, maxy = poly.bounds
    shapely.prepare(poly)
    out: list[np.ndarray] = []
    got = 0
    while got < n:
        k = max(64, 2 * (n - got))
        xs = rng.uniform(minx, maxx, k)
        ys = rng.uniform(miny, maxy, k)
        inside = shapely.contains_xy(poly, xs, ys)
        pts = np.column_stack([xs[inside], ys[inside]])
        out.append(pts)
        got += len(pts)
    return np.vstack(out)[:n]


def voronoi_cells(points: np.ndarray, extent: BaseGeometry) -> list[Polygon]:
    """Voronoi cell of each point, in the order of ``points``."""
    cells = shapely.voronoi_polygons(MultiPoint(points), extend_to=extent, ordered=True)
    return list(cells.geoms)


def kmeans(points: np.ndarray, k: int, rng: np.random.Generator, iters: int = 25) -> np.ndarray:
    """Plain Lloyd k-means with k-means++ seeding.

    The inputs are small (80 points per grid) and the demo must come out the same for a
    seed on every machine, so the few lines are kept here rather than depending on how a
    library seeds and stops.
    """
    centres = [points[rng.integers(len(points))]]
    for _ in range(1, k):
        d2 = np.min(((points[:, None, :] - np.array(centres)[None]) ** 2).sum(-1), axis=1)
        centres.append(points[rng.choice(len(points), p=d2 / d2.sum())])
    c = np.array(centres)
    for _ in range(iters):
        lab = np.argmin(((points[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
        new = np.array(
            [points[lab == j].mean(axis=0) if np.any(lab == j) else c[j] for j in range(k)]
        )
        if np.allclose(new, c):
            break
        c = new
    return c


def split_int(total: int, weights: np.ndarray) -> np.ndarray:
    """Integers proportional to ``weights`` that sum exactly to ``total`` (largest remainder)."""
    w = np.asarray(weights, dtype=float)
    raw = total * w / w.sum()
    out = np.floor(raw).astype(int)
    rest = total - out.sum()
    if rest > 0:
        out[np.argsort(-(raw - out), kind="stable")[:rest]] += 1
    return out
