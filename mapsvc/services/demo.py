"""The demo district (鲤城区 Licheng, Quanzhou), built deterministically from a seed.

Real data: the district outline, the subdistricts (街道) and communities (社区) with their
names and 2016 statistical codes, and the centre points Amap publishes for about half of
the communities, all from Vonng/adcode (CC BY 4.0) in ``data/boundaries``. These are GCJ-02
and are converted to WGS84 with :mod:`mapsvc.services.chinacrs` before anything else.

Everything else is generated, because no open source publishes it:

* community polygons: Voronoi cells around the real community points, with points placed
  for the communities that have none (well spaced inside the part of the district nearest
  their subdistrict's known communities), clipped to the district. A subdistrict is the
  union of its communities, so the three levels tile the district exactly;
* population, households and enterprises from the community's area and its urban-rural
  class (``ur_code`` 111 main urban area is dense, 112 fringe less so);
* grids of roughly 300-500 households: k-means on points sampled in the community, Voronoi
  cells of the centres clipped by the community polygon (so grids tile it by construction);
* a street network (jittered lattice, named 路/街/巷, split at junctions), chiefs with
  contiguous sets of segments, staff in every role, a year of incidents clustered in
  hotspots, service centres and a few days of patrol tracks.

All geometry is generated in the district's UTM zone (metres) and converted to WGS84 once,
vertex by vertex, so shared boundaries stay shared. Rows are written with COPY in one
transaction; the whole demo with 100,000 incidents loads in well under a minute.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
import shapely.ops
import sqlalchemy as sa
from shapely.geometry import LineString, MultiPoint, MultiPolygon, Point, Polygon, shape
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from mapsvc.config import PROJECT_ROOT, Settings, from_environment
from mapsvc.services.categories import DEFAULT_CATEGORIES, ensure_categories
from mapsvc.services.chinacrs import geometry_to_wgs84, points_to_wgs84

LOCAL_TZ = Settings().tz
DATA_DIR = PROJECT_ROOT / "data" / "boundaries"
DISTRICT_CODE = "350502000000"
ADCODE_CSV = DATA_DIR / f"{DISTRICT_CODE[:6]}.csv"
FENCE_GEOJSON = DATA_DIR / f"{DISTRICT_CODE[:6]}-fence.geojson"
SOURCE_CRS = "gcj02"
GENERATED_CRS = "EPSG:4326"
ATTRIBUTION = "Vonng/adcode, CC BY 4.0"

#: Vonng/adcode CSV columns (the files have no header row)
ADCODE_COLUMNS = (
    "code parent name level rank adcode post_code area_code ur_code municipality virtual dummy "
    "longitude latitude center_wkb_hex province city county town village"
).split()

#: tables the demo fills, in dependency order (also the order of the summary)
DEMO_TABLES = (
    "district",
    "subdistrict",
    "community",
    "grid",
    "alley_segment",
    "staff",
    "assignment",
    "incident_category",
    "incident",
    "incident_event",
    "patrol_track",
    "patrol_visit",
    "service_centre",
)

HOUSEHOLDS_PER_GRID = 400
STREET_SPACING_M = 190.0
#: generated polygon edges are split to at most this length: PostGIS geography measures an
#: edge along the great circle, the planar clip puts vertices on the straight line; on
#: short edges the two agree to well under a square metre per community
MAX_EDGE_M = 25.0
SNAP_M = 0.001
#: communities denser than this (people per km²) get the old city's close alleys
DENSE_PER_KM2 = 18000


# --------------------------------------------------------------------------- source data


@dataclass
class AdminUnit:
    """One row of the Vonng/adcode CSV (rank 3 district, 4 subdistrict, 5 community)."""

    code: str
    parent: str
    name: str
    rank: int
    ur_code: str | None
    dummy: bool
    lon: float | None  # GCJ-02 as published
    lat: float | None


def read_units(path: Path = ADCODE_CSV) -> list[AdminUnit]:
    """Read a Vonng/adcode CSV (no header; columns in :data:`ADCODE_COLUMNS`)."""
    units = []
    with open(path, encoding="utf-8", newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh), start=1):
            if len(row) != len(ADCODE_COLUMNS):
                raise ValueError(
                    f"{path}:{lineno}: expected {len(ADCODE_COLUMNS)} columns, got {len(row)}"
                )
            r = dict(zip(ADCODE_COLUMNS, row, strict=True))
            units.append(
                AdminUnit(
                    code=r["code"],
                    parent=r["parent"],
                    name=r["name"],
                    rank=int(r["rank"]),
                    ur_code=r["ur_code"] or None,
                    dummy=r["dummy"] == "t",
                    lon=float(r["longitude"]) if r["longitude"] else None,
                    lat=float(r["latitude"]) if r["latitude"] else None,
                )
            )
    return units


def read_outline(path: Path = FENCE_GEOJSON) -> MultiPolygon:
    """The district outline converted from GCJ-02 to WGS84."""
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    geom = shape(data.get("geometry", data) if data.get("type") == "Feature" else data)
    geom = geometry_to_wgs84(geom, SOURCE_CRS)
    return _as_multi(geom)


def community_display_name(name: str) -> str:
    """'金山社区居委会' -> '金山社区': the community, not its committee (村委会 kept as is)."""
    return name[: -len("居委会")] if name.endswith("社区居委会") else name


# --------------------------------------------------------------------------- geometry helpers


class _Metric:
    """An affine local frame in metres around the district centre (for generating only).

    Generation needs metre-like coordinates (street spacing, hotspot radii, k-means), and
    the tiling needs every clip to survive the conversion back to WGS84 exactly: an
    intersection vertex computed on a straight edge must stay on that edge. A UTM
    projection bends straight edges by millimetres, which over a district adds up to
    square metres of gaps; an affine map keeps lines straight, so grids still tile their
    community after conversion. The scale factors are the geodesic metres per degree at
    the centre (pyproj.Geod); nothing reported is measured in this frame.
    """

    def __init__(self, lon: float, lat: float):
        from pyproj import Geod

        geod = Geod(ellps="WGS84")
        self.lon0, self.lat0 = lon, lat
        self.kx = geod.inv(lon - 0.005, lat, lon + 0.005, lat)[2] / 0.01
        self.ky = geod.inv(lon, lat - 0.005, lon, lat + 0.005)[2] / 0.01

    def xy(self, lon, lat) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
        return (np.asarray(lon) - self.lon0) * self.kx, (np.asarray(lat) - self.lat0) * self.ky

    def lonlat(self, x, y) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
        return np.asarray(x) / self.kx + self.lon0, np.asarray(y) / self.ky + self.lat0

    def to_m(self, geom):  # noqa: ANN001, ANN201
        return shapely.transform(geom, lambda c: np.column_stack(self.xy(c[:, 0], c[:, 1])))

    def to_ll(self, geom):  # noqa: ANN001, ANN201
        return shapely.transform(geom, lambda c: np.column_stack(self.lonlat(c[:, 0], c[:, 1])))

    def area_km2(self, geom) -> float:  # noqa: ANN001
        """Geodesic area of a frame geometry (pyproj.Geod on its WGS84 form)."""
        from pyproj import Geod

        return abs(Geod(ellps="WGS84").geometry_area_perimeter(self.to_ll(geom))[0]) / 1e6


def _as_multi(geom) -> MultiPolygon:  # noqa: ANN001
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


def _dense(geom, warp: _Warp | None = None):  # noqa: ANN001, ANN202
    """Edges split to at most MAX_EDGE_M, optionally warped, vertices snapped to 1 mm.

    Two neighbouring Voronoi cells split their shared edge from opposite ends, which puts
    the new vertices 1e-10 m apart; unions of such cells then carry hairline spikes that
    turn invalid in WGS84. Snapping to a millimetre makes shared edges identical again.
    """
    g = shapely.segmentize(geom, MAX_EDGE_M)
    if warp is not None:
        g = shapely.transform(g, warp)
    return shapely.set_precision(g, SNAP_M)


class _Warp:
    """A smooth one-to-one displacement of the plane, so Voronoi edges meander a little.

    Real community and grid boundaries follow streets, walls and streams, not straight
    lines. Moving every vertex of a tiling by the same smooth field keeps it a tiling
    (shared vertices move together) as long as the field folds nothing: its slope here is
    below 0.4, so the map stays one-to-one.
    """

    def __init__(self, rng: np.random.Generator, amplitude_m: float, wavelength_m: float):
        self.amp = amplitude_m
        self.k = 2 * math.pi / wavelength_m
        self.phase = rng.uniform(0, 2 * math.pi, 4)

    def __call__(self, c: np.ndarray) -> np.ndarray:
        x, y = c[:, 0], c[:, 1]
        k, p = self.k, self.phase
        dx = self.amp * (np.sin(k * y + p[0]) + 0.5 * np.sin(1.7 * k * (x + y) + p[1])) / 1.5
        dy = self.amp * (np.sin(k * x + p[2]) + 0.5 * np.sin(1.7 * k * (x - y) + p[3])) / 1.5
        return np.column_stack([x + dx, y + dy])


def _sample_in(poly, n: int, rng: np.random.Generator) -> np.ndarray:  # noqa: ANN001
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


def _voronoi_cells(points: np.ndarray, extent) -> list:  # noqa: ANN001
    """Voronoi cell of each point, in the order of ``points``."""
    cells = shapely.voronoi_polygons(MultiPoint(points), extend_to=extent, ordered=True)
    return list(cells.geoms)


def _kmeans(points: np.ndarray, k: int, rng: np.random.Generator, iters: int = 25) -> np.ndarray:
    """Plain Lloyd k-means with k-means++ seeding (small inputs; no sklearn needed)."""
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


def _split_int(total: int, weights: np.ndarray) -> np.ndarray:
    """Integers proportional to ``weights`` that sum exactly to ``total`` (largest remainder)."""
    w = np.asarray(weights, dtype=float)
    raw = total * w / w.sum()
    out = np.floor(raw).astype(int)
    rest = total - out.sum()
    if rest > 0:
        out[np.argsort(-(raw - out), kind="stable")[:rest]] += 1
    return out


# --------------------------------------------------------------------------- the plan


@dataclass
class _Area:
    code: str
    name: str
    geom: object  # metric polygon(s)
    parent: str | None = None
    point: np.ndarray | None = None
    population: int = 0
    households: int = 0
    enterprises: int = 0
    ur_code: str | None = None


def _place_points(
    district, units: list[AdminUnit], metric: _Metric, rng: np.random.Generator
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

    def far_point(region, taken: np.ndarray, n: int = 600, edge_weight: float = 1.2) -> np.ndarray:  # noqa: ANN001
        cand = _sample_in(region, n, rng)
        d = np.min(np.hypot(*(cand[:, None, :] - taken[None]).transpose(2, 0, 1)), axis=1)
        if edge_weight:
            edge = shapely.distance(region.boundary, shapely.points(cand))
            d = np.minimum(d, edge_weight * edge)
        return cand[np.argmax(d)]

    by_sub: dict[str, list[AdminUnit]] = defaultdict(list)
    for u in comms:
        by_sub[u.parent].append(u)
    seeds: dict[str, np.ndarray] = {}
    for sub, members in sorted(by_sub.items()):
        if not any(u.code in pts for u in members):
            taken = np.array(list(pts.values()) + list(seeds.values()))
            seeds[sub] = far_point(inner.buffer(-300), taken, 3000, edge_weight=0.0)
    codes = list(pts) + [f"seed:{s}" for s in seeds]
    sub_of = {u.code: u.parent for u in comms} | {f"seed:{s}": s for s in seeds}
    arr = np.array(list(pts.values()) + list(seeds.values()))
    cells = _voronoi_cells(arr, district.envelope.buffer(5000))
    territory: dict[str, list] = defaultdict(list)
    for code, cell in zip(codes, cells, strict=True):
        territory[sub_of[code]].append(cell)
    for sub, members in sorted(by_sub.items()):
        region = shapely.union_all(territory[sub]).intersection(district)
        region_in = region.buffer(-40) if region.buffer(-40).area > 0 else region
        for u in members:
            if u.code in pts:
                continue
            if sub in seeds and not any(m.code in pts for m in members):
                pts[u.code] = seeds[sub]
                continue
            pts[u.code] = far_point(region_in, np.array(list(pts.values())))
    return pts


def _density(ur: str | None, rng: np.random.Generator) -> float:
    """People per km²: the old city (111) is very dense, the fringe (112) much less."""
    if ur == "111":
        return float(rng.lognormal(math.log(17000), 0.3))
    if ur == "112":
        return float(rng.lognormal(math.log(4500), 0.35))
    return float(rng.lognormal(math.log(3000), 0.4))


def _plan_areas(units: list[AdminUnit], district, metric: _Metric, rng: np.random.Generator):  # noqa: ANN001, ANN202
    """Community, subdistrict and grid polygons (metric) with their figures."""
    pts = _place_points(district, units, metric, rng)
    comm_units = sorted((u for u in units if u.rank == 5), key=lambda u: u.code)
    arr = np.array([pts[u.code] for u in comm_units])
    cells = _voronoi_cells(arr, district.envelope.buffer(5000))
    community_warp = _Warp(rng, 35.0, 700.0)
    grid_warp = _Warp(rng, 12.0, 260.0)
    communities: list[_Area] = []
    for u, cell, p in zip(comm_units, cells, arr, strict=True):
        geom = _as_multi(_dense(cell, community_warp).intersection(district))
        area_km2 = metric.area_km2(geom)
        if u.dummy:  # 开发区虚拟居委会: an industrial zone, few residents, many firms
            pop = int(rng.integers(600, 1500))
            ent = int(rng.integers(180, 420))
        else:
            pop = int(np.clip(_density(u.ur_code, rng) * area_km2, 1500, 11000))
            per_k = 18 if u.ur_code == "111" else 8
            ent = int(pop / 1000 * per_k * rng.uniform(0.6, 1.5)) + int(rng.integers(5, 40))
        hh = int(round(pop / rng.uniform(2.55, 3.05)))
        communities.append(
            _Area(
                code=u.code,
                name=community_display_name(u.name),
                geom=geom,
                parent=u.parent,
                point=p,
                population=pop,
                households=hh,
                enterprises=ent,
                ur_code=u.ur_code,
            )
        )
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
            _Area(code=u.code, name=u.name, geom=_as_multi(shapely.union_all(members)), point=point)
        )
    grids: list[_Area] = []
    for c in communities:
        n = max(1, int(round(c.households / HOUSEHOLDS_PER_GRID)))
        if n == 1:
            parts = [c.geom]
        else:
            sample = _sample_in(c.geom, 80 * n, rng)
            centres = _kmeans(sample, n, rng)
            gcells = _voronoi_cells(centres, c.geom.envelope.buffer(1000))
            parts = [_as_multi(_dense(gc, grid_warp).intersection(c.geom)) for gc in gcells]
            parts = [p for p in parts if not p.is_empty]
        parts.sort(key=lambda g: (-round(g.centroid.y / 60.0), g.centroid.x))
        hh = _split_int(c.households, rng.uniform(0.85, 1.15, len(parts)))
        pop = _split_int(c.population, hh + 1e-9)
        for i, (g, h, p) in enumerate(zip(parts, hh, pop, strict=True), start=1):
            grids.append(
                _Area(
                    code=f"{c.code}-{i:02d}",
                    name=f"{c.name}第{i}网格",
                    geom=g,
                    parent=c.code,
                    population=int(p),
                    households=int(h),
                )
            )
    return subdistricts, communities, grids


# --------------------------------------------------------------------------- names

_SURNAMES = list("陈林黄王李张吴蔡郑许洪苏庄施杨刘曾柯谢周叶何郭傅卢骆潘戴余赵")
_SURNAME_W = np.array([12, 11, 9, 6, 5, 5, 5, 5, 4, 4, 4, 3, 3, 3, 3, 3, 3, 2, 2, 2] + [1.5] * 10)
_GIVEN = list(
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玲建国志文辉鹏斌婷雪慧晓燕红海龙金福荣春梅兰泉清源宏毅晨宇欣怡佳俊豪雅琳"
)
_STREET_A = list(
    "东西南北中新金银玉花桂梅竹莲兴华和平安福寿康宁泰源清文武胜庆聚宝义仁德通承后井塔桥池溪涂象奎甲聚云鹤凤"
)
_STREET_B = list("山峰湖江门井桥亭坊园林田塘浦洲头兴华安宁福寿德源泉霞光明阳春新美丰盛昌隆榕荔")


class _Names:
    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        combos = [a + b for a in _STREET_A for b in _STREET_B if a != b]
        self.street_stems = [combos[i] for i in rng.permutation(len(combos))]
        self.used: set[str] = set()
        self.sw = _SURNAME_W / _SURNAME_W.sum()

    def person(self) -> str:
        s = _SURNAMES[self.rng.choice(len(_SURNAMES), p=self.sw)]
        k = 1 if self.rng.random() < 0.25 else 2
        return s + "".join(_GIVEN[i] for i in self.rng.integers(0, len(_GIVEN), k))

    def street(self, kind: str) -> str:
        suffix = {"road": "路", "street": "街", "lane": "巷"}[kind]
        while self.street_stems:
            name = self.street_stems.pop() + suffix
            if name not in self.used:
                self.used.add(name)
                return name
        n = len(self.used)
        self.used.add(f"第{n}{suffix}")
        return f"第{n}{suffix}"


# --------------------------------------------------------------------------- streets


def _plan_streets(
    district,  # noqa: ANN001
    rng: np.random.Generator,
    names: _Names,
    dense=None,  # noqa: ANN001
) -> list[tuple[str, str, LineString]]:
    """A jittered, slightly rotated street lattice clipped to the district.

    The lattice has a fine pitch (half of :data:`STREET_SPACING_M`). Every other line is a
    through line: every 5th of those a road (路), every 5th offset by 2 a street (街), the
    rest lanes (巷) named in short stretches; some blocks are missing (dead ends,
    superblocks). The lines in between exist only inside ``dense`` (the old city), where
    the alleys are twice as close. Lattice edges are merged through nodes where a street
    simply continues, so each segment runs from junction to junction (or to the district
    edge). Returns ``(name, kind, metric LineString)``.
    """
    f = STREET_SPACING_M / 2
    cx, cy = district.centroid.x, district.centroid.y
    minx, miny, maxx, maxy = district.bounds
    radius = math.hypot(maxx - minx, maxy - miny) / 2 + 2 * f
    n = 2 * (int(radius / f) + 1) + 1
    theta = math.radians(8.0)
    ct, st = math.cos(theta), math.sin(theta)
    u = -f * (n // 2) + f * np.arange(n)
    uu, vv = np.meshgrid(u, u, indexing="ij")
    uu = uu + rng.uniform(-0.2 * f, 0.2 * f, uu.shape)
    vv = vv + rng.uniform(-0.2 * f, 0.2 * f, vv.shape)
    nx_ = cx + uu * ct - vv * st
    ny_ = cy + uu * st + vv * ct

    def kind_of(line: int) -> str:
        if line % 2:
            return "lane"
        c = line // 2
        return "road" if c % 5 == 0 else "street" if c % 5 == 2 else "lane"

    stretch_len = {}
    offsets = {}
    for d in ("h", "v"):
        for line in range(n):
            k = kind_of(line)
            stretch_len[d, line] = {"road": 80, "street": 24}.get(k) or int(rng.integers(5, 11))
            offsets[d, line] = int(rng.integers(0, stretch_len[d, line]))
    drop_p = {"road": 0.0, "street": 0.04, "lane": 0.14}
    if dense is not None and not dense.is_empty:
        shapely.prepare(dense)
    else:
        dense = None
    near = shapely.contains_xy(district.envelope.buffer(4 * f), nx_, ny_)
    dropped: dict[tuple, bool] = {}
    edges = []  # (key, kind, a_node, b_node, LineString)
    for d in ("h", "v"):
        for line in range(n):
            k = kind_of(line)
            for pos in range(n - 1):
                a, b = (
                    ((pos, line), (pos + 1, line)) if d == "h" else ((line, pos), (line, pos + 1))
                )
                if not (near[a] or near[b]):
                    continue
                pa = (nx_[a], ny_[a])
                pb = (nx_[b], ny_[b])
                if line % 2:  # in-between alley: old city only
                    mx, my = (pa[0] + pb[0]) / 2, (pa[1] + pb[1]) / 2
                    if (
                        dense is None
                        or not shapely.contains_xy(dense, mx, my)
                        or rng.random() < 0.2
                    ):
                        continue
                else:  # through line: blocks (two fine edges) go or stay together
                    block = (d, line, pos // 2)
                    if block not in dropped:
                        dropped[block] = bool(rng.random() < drop_p[k])
                    if dropped[block]:
                        continue
                if k == "lane":  # alleys bend a little
                    mx, my = (pa[0] + pb[0]) / 2, (pa[1] + pb[1]) / 2
                    j = rng.normal(0, 4.0, 2)
                    coords = [pa, (mx + j[0], my + j[1]), pb]
                else:
                    coords = [pa, pb]
                key = (d, line, (pos + offsets[d, line]) // stretch_len[d, line])
                edges.append((key, k, a, b, LineString(coords)))
    shapely.prepare(district)
    geoms = np.array([e[4] for e in edges], dtype=object)
    inside = shapely.contains(district, geoms)
    touches = shapely.intersects(district, geoms)
    kept = []
    for e, ins, tch in zip(edges, inside, touches, strict=True):
        if ins:
            kept.append(e)
        elif tch:
            clipped = e[4].intersection(district)
            pieces = [g for g in shapely.get_parts(clipped) if g.geom_type == "LineString"]
            pieces = [g for g in pieces if g.length > 20.0]
            for g in pieces:
                a = e[2] if Point(nx_[e[2]], ny_[e[2]]).distance(g) < 1e-6 else None
                b = e[3] if Point(nx_[e[3]], ny_[e[3]]).distance(g) < 1e-6 else None
                kept.append((e[0], e[1], a, b, g))
    # merge chains through degree-2 nodes where the same named stretch continues
    node_edges: dict[tuple, list[int]] = defaultdict(list)
    for i, e in enumerate(kept):
        for nd in (e[2], e[3]):
            if nd is not None:
                node_edges[nd].append(i)
    parent = list(range(len(kept)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for ids in node_edges.values():
        if len(ids) == 2 and kept[ids[0]][0] == kept[ids[1]][0]:
            parent[find(ids[0])] = find(ids[1])
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(kept)):
        groups[find(i)].append(i)
    key_names: dict[tuple, str] = {}
    out = []
    for ids in sorted(groups.values(), key=lambda g: min(g)):
        key, kind = kept[ids[0]][0], kept[ids[0]][1]
        if key not in key_names:
            key_names[key] = names.street(kind)
        merged = shapely.line_merge(shapely.union_all([kept[i][4] for i in ids]))
        for g in shapely.get_parts(merged):
            out.append((key_names[key], kind, g))
    return out


def _chief_clusters(segments: list[LineString], rng: np.random.Generator) -> list[list[int]]:
    """Contiguous groups of 5-30 segments (one chief each), grown breadth-first."""
    ends: dict[tuple, list[int]] = defaultdict(list)
    for i, g in enumerate(segments):
        c = g.coords
        for p in (c[0], c[-1]):
            ends[(round(p[0], 1), round(p[1], 1))].append(i)
    nbrs: list[set[int]] = [set() for _ in segments]
    for ids in ends.values():
        for i in ids:
            nbrs[i].update(j for j in ids if j != i)
    owner = [-1] * len(segments)
    clusters: list[list[int]] = []
    for start in rng.permutation(len(segments)):
        if owner[start] != -1:
            continue
        target = int(rng.integers(8, 21))
        cl, queue = [], [int(start)]
        owner[start] = len(clusters)
        while queue and len(cl) < target:
            i = queue.pop(0)
            cl.append(i)
            for j in sorted(nbrs[i]):
                if owner[j] == -1 and len(cl) + len(queue) < target:
                    owner[j] = len(clusters)
                    queue.append(j)
        for i in queue:  # not taken after all
            owner[i] = -1
        clusters.append(cl)
    # fold clusters smaller than 5 into a neighbour with room
    for ci, cl in enumerate(clusters):
        if 0 < len(cl) < 5:
            cand = sorted({owner[j] for i in cl for j in nbrs[i]} - {ci})
            cand = [c for c in cand if len(clusters[c]) + len(cl) <= 30]
            if cand:
                dest = min(cand, key=lambda c: len(clusters[c]))
                for i in cl:
                    owner[i] = dest
                clusters[dest].extend(cl)
                clusters[ci] = []
    return [sorted(c) for c in clusters if c]


# --------------------------------------------------------------------------- database writing


def _copy(conn: Connection, table: str, columns: list[str], rows) -> int:  # noqa: ANN001
    """COPY rows into ``table`` inside the caller's transaction; return the row count."""
    raw = conn.connection.driver_connection
    n = 0
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:
        for r in rows:
            cp.write_row(r)
            n += 1
    return n


def _ewkb(geoms) -> list[str]:  # noqa: ANN001
    return list(
        shapely.to_wkb(
            shapely.set_srid(np.asarray(geoms, dtype=object), 4326), hex=True, include_srid=True
        )
    )


def _reset_sequences(conn: Connection, tables: list[str]) -> None:
    for t in tables:
        conn.execute(
            sa.text(
                f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), "
                f"COALESCE((SELECT max(id) FROM {t}), 0) + 1, false)"
            )
        )


# --------------------------------------------------------------------------- public API


def is_loaded(engine: Engine) -> bool:
    """True when a district exists (the demo or a planner's own data)."""
    with engine.connect() as conn:
        return bool(conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM district)")).scalar())


def load_demo(
    engine: Engine,
    seed: int,
    incidents: int,
    show_progress: bool = True,
    *,
    now: dt.datetime | None = None,
) -> dict:
    """Replace the database's content with the demo district; return a summary.

    One transaction: either the whole demo is there afterwards, or nothing changed. The
    same ``seed`` (and the same day) gives the same data and summary. Existing districts,
    staff, incidents etc. are removed first (the CLI only calls this with ``--force`` when
    data exists).

    Parameters
    ----------
    engine : Engine
        Target database at the latest schema.
    seed : int
        Seed of every random choice.
    incidents : int
        Number of incidents over the past year (the real demo uses 100,000).
    show_progress : bool
        Show progress bars on stderr.
    now : datetime, optional
        The demo's "now" (default: today 00:00 UTC, so a day's loads are identical).
    """
    if now is None:
        now = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    stages = ["boundaries", "grids", "streets", "staff", "incidents", "routing", "patrols"]
    bar = None
    if show_progress:
        from mapsvc.commands.common import progress

        bar = progress(total=len(stages), desc="demo", unit="step")

    def step(name: str) -> None:
        if bar is not None:
            bar.set_postfix_str(name)

    def done() -> None:
        if bar is not None:
            bar.update(1)

    rng = np.random.default_rng(seed)
    step("boundaries")
    units = read_units()
    district_unit = next(u for u in units if u.rank == 3)
    outline_ll = read_outline()
    c = outline_ll.centroid
    metric = _Metric(c.x, c.y)
    # the stored outline is this densified one too, so that district, subdistricts and
    # communities share every boundary vertex (same area; edges split, not moved)
    district_m = _as_multi(_dense(metric.to_m(outline_ll)))
    subdistricts, communities, grids = _plan_areas(units, district_m, metric, rng)
    done()

    with Session(bind=engine, expire_on_commit=False) as session, session.begin():
        conn = session.connection()
        conn.execute(
            sa.text(
                "TRUNCATE district, subdistrict, community, grid, alley_segment, staff, "
                "assignment, incident, patrol_track, service_centre RESTART IDENTITY CASCADE"
            )
        )
        ensure_categories(session)
        # --- boundaries
        _copy(
            conn,
            "district",
            ["id", "code", "name", "geom", "source_crs"],
            [
                (
                    1,
                    district_unit.code,
                    district_unit.name,
                    _ewkb([metric.to_ll(district_m)])[0],
                    SOURCE_CRS,
                )
            ],
        )
        sub_id = {s.code: i for i, s in enumerate(subdistricts, start=1)}
        _copy(
            conn,
            "subdistrict",
            ["id", "code", "name", "district_id", "geom", "source_crs"],
            [
                (sub_id[s.code], s.code, s.name, 1, g, SOURCE_CRS)
                for s, g in zip(
                    subdistricts, _ewkb([metric.to_ll(s.geom) for s in subdistricts]), strict=True
                )
            ],
        )
        comm_id = {cm.code: i for i, cm in enumerate(communities, start=1)}
        comm_ll = [metric.to_ll(cm.geom) for cm in communities]
        _copy(
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
                    comm_id[cm.code],
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
                for cm, g in zip(communities, _ewkb(comm_ll), strict=True)
            ],
        )
        step("grids")
        grid_id = {g.code: i for i, g in enumerate(grids, start=1)}
        _copy(
            conn,
            "grid",
            [
                "id",
                "code",
                "name",
                "community_id",
                "geom",
                "population",
                "households",
                "source_crs",
            ],
            [
                (
                    grid_id[g.code],
                    g.code,
                    g.name,
                    comm_id[g.parent],
                    wkb,
                    g.population,
                    g.households,
                    GENERATED_CRS,
                )
                for g, wkb in zip(grids, _ewkb([metric.to_ll(g.geom) for g in grids]), strict=True)
            ],
        )
        done()

        # --- streets
        step("streets")
        names = _Names(np.random.default_rng([seed, 1]))
        dense = shapely.union_all(
            [
                cm.geom
                for cm in communities
                if cm.population / metric.area_km2(cm.geom) > DENSE_PER_KM2
            ]
        )
        streets = _plan_streets(district_m, np.random.default_rng([seed, 2]), names, dense)
        seg_geoms_m = [g for _, _, g in streets]
        seg_ll = [metric.to_ll(g) for g in seg_geoms_m]
        _copy(
            conn,
            "alley_segment",
            ["id", "code", "name", "geom", "highway", "source"],
            [
                (
                    i,
                    f"demo:{i}",
                    name,
                    wkb,
                    {"road": "primary", "street": "tertiary", "lane": "living_street"}[kind],
                    "demo",
                )
                for i, ((name, kind, _), wkb) in enumerate(
                    zip(streets, _ewkb(seg_ll), strict=True), start=1
                )
            ],
        )
        done()

        # --- staff and assignments
        step("staff")
        staff_plan = _plan_staff(
            np.random.default_rng([seed, 3]), names, communities, grids, seg_geoms_m, now.date()
        )
        _copy(
            conn,
            "staff",
            ["id", "code", "name", "phone", "role", "dispatched_kind", "community_id"],
            [
                (
                    s["id"],
                    f"demo-{s['id']:05d}",
                    s["name"],
                    s["phone"],
                    s["role"],
                    s["kind"],
                    comm_id[s["community"]] if s["community"] else None,
                )
                for s in staff_plan["staff"]
            ],
        )
        target_ids = {"grid": grid_id, "community": comm_id}
        _copy(
            conn,
            "assignment",
            [
                "id",
                "staff_id",
                "role",
                "grid_id",
                "segment_id",
                "community_id",
                "valid_from",
                "valid_to",
            ],
            [
                (
                    i,
                    a["staff"],
                    a["role"],
                    target_ids["grid"][a["target"]] if a["kind"] == "grid" else None,
                    a["target"] if a["kind"] == "segment" else None,
                    target_ids["community"][a["target"]] if a["kind"] == "community" else None,
                    a["from"],
                    a["to"],
                )
                for i, a in enumerate(staff_plan["assignments"], start=1)
            ],
        )
        # service centres: one per community, one per subdistrict, one for the district
        centres = []
        for cm in communities:
            p = cm.geom.representative_point()
            centres.append((f"{cm.name}党群服务中心", comm_id[cm.code], p))
        comm_tree = shapely.STRtree([cm.geom for cm in communities])
        for s in subdistricts:
            p = (
                Point(s.point)
                if s.point is not None and s.geom.contains(Point(s.point))
                else s.geom.representative_point()
            )
            hit = comm_tree.query(p, predicate="intersects")
            centres.append(
                (
                    f"{s.name}党群服务中心",
                    comm_id[communities[int(hit[0])].code] if len(hit) else None,
                    p,
                )
            )
        dx, dy = metric.xy(*points_to_wgs84([district_unit.lon], [district_unit.lat], SOURCE_CRS))
        dp = Point(float(dx[0]), float(dy[0]))
        hit = comm_tree.query(dp, predicate="intersects")
        centres.append(
            (
                f"{district_unit.name}党群服务中心",
                comm_id[communities[int(hit[0])].code] if len(hit) else None,
                dp,
            )
        )
        _copy(
            conn,
            "service_centre",
            ["id", "name", "community_id", "geom"],
            [
                (i, name, cid, wkb)
                for i, ((name, cid, _), wkb) in enumerate(
                    zip(centres, _ewkb([metric.to_ll(p) for _, _, p in centres]), strict=True),
                    start=1,
                )
            ],
        )
        done()

        # --- incidents
        step("incidents")
        n_inc = _write_incidents(
            conn,
            np.random.default_rng([seed, 4]),
            incidents,
            now,
            metric,
            district_m,
            communities,
            grids,
            streets,
            show_progress,
        )
        _write_incident_events(conn, now)
        done()
        step("routing")
        from mapsvc.services.routing import route_incidents

        if n_inc:
            route_incidents(session)
        done()
        step("patrols")
        _write_patrols(conn, np.random.default_rng([seed, 5]), now, metric, seg_geoms_m, staff_plan)
        _write_visits(
            conn,
            np.random.default_rng([seed, 6]),
            now,
            metric,
            seg_geoms_m,
            grids,
            grid_id,
            staff_plan,
        )
        done()
        _reset_sequences(
            conn,
            [
                "district",
                "subdistrict",
                "community",
                "grid",
                "alley_segment",
                "staff",
                "assignment",
                "incident",
                "patrol_track",
                "service_centre",
            ],
        )
        summary = _summary(conn, seed)
    if bar is not None:
        bar.close()
    return summary


_ROLE_LABEL = {
    "community_worker": "社区工作者",
    "grid_head": "网格长",
    "grid_member": "网格员",
    "alley_chief": "街巷长",
    "deputy_chief": "副街巷长",
    "dispatched": "下沉人员",
}


def _plan_staff(
    rng: np.random.Generator,
    names: _Names,
    communities: list[_Area],
    grids: list[_Area],
    segments_m: list[LineString],
    today: dt.date,
) -> dict:
    """People and their posts (assignments), with a little history.

    Every grid gets a head and 2-3 members (a few deliberately short); every community
    3-8 community workers and dispatched staff (police, city management, doctor, mediator;
    a lawyer serves 2-3 communities); alley chiefs get contiguous groups of 5-30 segments
    and a deputy for most groups; a few groups are deliberately left without a chief. About
    one post in twenty changed hands during the last year, so the history is not empty.
    """
    staff: list[dict] = []
    assignments: list[dict] = []
    start = today - dt.timedelta(days=1000)

    def person(role: str, community: str | None, kind: str | None = None) -> int:
        sid = len(staff) + 1
        staff.append(
            {
                "id": sid,
                "name": names.person(),
                "phone": f"138-0000-{sid:04d}" if sid < 10000 else f"139-0000-{sid - 10000:04d}",
                "role": role,
                "kind": kind,
                "community": community,
            }
        )
        return sid

    def post(
        sid: int, role: str, kind: str, target, since: dt.date, until: dt.date | None = None
    ) -> None:  # noqa: ANN001
        assignments.append(
            {"staff": sid, "role": role, "kind": kind, "target": target, "from": since, "to": until}
        )

    def post_with_history(role: str, community: str, kind: str, targets: list) -> int:  # noqa: ANN001
        """Single-holder post; sometimes a predecessor held it until a recent change."""
        sid = person(role, community)
        if rng.random() < 0.05:
            old = person(role, community)
            change = today - dt.timedelta(days=int(rng.integers(20, 330)))
            for t in targets:
                post(old, role, kind, t, start, change - dt.timedelta(days=1))
                post(sid, role, kind, t, change)
        else:
            for t in targets:
                post(sid, role, kind, t, start)
        return sid

    short_grids = set(rng.choice(len(grids), size=max(2, len(grids) // 40), replace=False).tolist())
    for gi, g in enumerate(grids):
        post_with_history("grid_head", g.parent, "grid", [g.code])
        members = int(rng.integers(0, 2)) if gi in short_grids else int(rng.integers(2, 4))
        for _ in range(members):
            post(person("grid_member", g.parent), "grid_member", "grid", g.code, start)
    lawyer = None
    lawyer_left = 0
    for cm in communities:
        for _ in range(int(np.clip(cm.population // 1200, 3, 8))):
            post(
                person("community_worker", cm.code), "community_worker", "community", cm.code, start
            )
        for kind in ("police", "city_management", "doctor", "mediator"):
            post(person("dispatched", cm.code, kind), "dispatched", "community", cm.code, start)
        if lawyer is None or lawyer_left == 0:
            lawyer = person("dispatched", cm.code, "lawyer")
            lawyer_left = int(rng.integers(2, 4))
        post(lawyer, "dispatched", "community", cm.code, start)
        lawyer_left -= 1

    clusters = _chief_clusters(segments_m, rng)
    tree = shapely.STRtree([cm.geom for cm in communities])
    unmanned = set(
        rng.choice(len(clusters), size=max(3, len(clusters) // 60), replace=False).tolist()
    )
    chiefs: list[tuple[int, list[int]]] = []
    no_chief: list[int] = []
    for ci, cl in enumerate(clusters):
        seg_ids = [i + 1 for i in cl]  # alley_segment ids are positions + 1
        if ci in unmanned or len(cl) < 5:
            no_chief.extend(seg_ids)
            continue
        mid = segments_m[cl[0]].interpolate(0.5, normalized=True)
        hit = tree.query(mid, predicate="intersects")
        community = communities[int(hit[0])].code if len(hit) else None
        sid = post_with_history("alley_chief", community, "segment", seg_ids)
        chiefs.append((sid, cl))
        if rng.random() < 0.9:
            dep = person("deputy_chief", community)
            for t in seg_ids:
                post(dep, "deputy_chief", "segment", t, start)
    return {"staff": staff, "assignments": assignments, "chiefs": chiefs, "no_chief": no_chief}


# --------------------------------------------------------------------------- incidents

#: relative frequency of each category in the demo (hotline and patrol experience)
_CATEGORY_WEIGHT = {
    "street_vending": 14, "clutter": 12, "illegal_building": 4, "sanitation": 12, "garbage": 9,
    "illegal_parking": 11, "illegal_ads": 6, "greenery": 3, "street_light": 5, "road_damage": 5,
    "manhole_cover": 2, "water_supply": 3, "drainage": 3, "noise": 7, "neighbour_dispute": 4,
    "elderly_care": 2, "safety_hazard": 3, "fire_lane": 2, "gas_leak": 0.3,
}  # fmt: skip

_TEMPLATES = {
    "street_vending": "{addr}有流动摊贩占道经营，影响行人通行。",
    "clutter": "{addr}门口堆放杂物，占用公共通道。",
    "illegal_building": "{addr}疑似在屋顶加盖违章建筑。",
    "sanitation": "{addr}路面垃圾较多，需要清扫。",
    "garbage": "{addr}垃圾桶已满，多日未清运。",
    "illegal_parking": "{addr}车辆乱停乱放，堵塞巷口。",
    "illegal_ads": "{addr}墙面被乱贴小广告。",
    "greenery": "{addr}行道树枝被折断，绿化带受损。",
    "street_light": "{addr}路灯不亮，夜间出行不便。",
    "road_damage": "{addr}路面坑洼破损。",
    "manhole_cover": "{addr}井盖缺失，存在安全隐患。",
    "water_supply": "{addr}一带停水或水压不足。",
    "drainage": "{addr}下水道堵塞，雨后积水。",
    "noise": "{addr}夜间噪音扰民。",
    "neighbour_dispute": "{addr}住户因漏水发生邻里纠纷，请求调解。",
    "elderly_care": "{addr}独居老人需要上门帮扶。",
    "safety_hazard": "{addr}电线私拉乱接，存在安全隐患。",
    "fire_lane": "{addr}消防通道被杂物和车辆堵塞。",
    "gas_leak": "{addr}闻到燃气味，疑似泄漏。",
}


def _write_incidents(
    conn: Connection,
    rng: np.random.Generator,
    n: int,
    now: dt.datetime,
    metric: _Metric,
    district,  # noqa: ANN001
    communities: list[_Area],
    grids: list[_Area],
    streets: list[tuple[str, str, LineString]],
    show_progress: bool,
) -> int:
    """A year of incidents in hotspots around old streets and markets, with their life.

    75 % come from 30 hotspots (gaussian blobs of 60-250 m around dense communities and
    street corners, each with its own mix of categories: markets have vendors, old lanes
    clutter and fire lanes), 25 % are spread by population. Most are moved onto the
    nearest street (where they are seen). Times follow a day rhythm; the time to close is
    log-normal around a third of the class's time limit, so most close on time, a few run
    late and the recent ones are still open.
    """
    if n <= 0:
        return 0
    cats = [c.code for c in DEFAULT_CATEGORIES]
    base_w = np.array([_CATEGORY_WEIGHT.get(c, 1.0) for c in cats])
    sev_names = ["minor", "ordinary", "major", "grave"]
    default_sev = np.array([sev_names.index(c.default_severity) for c in DEFAULT_CATEGORIES])
    limits = from_environment()["INCIDENT_TIME_LIMIT_HOURS"]
    limit_h = np.array([float(limits[s]) for s in sev_names])

    # hotspots
    dens = np.array([cm.population / max(cm.geom.area, 1.0) for cm in communities])
    n_hot = 30
    hot_comm = rng.choice(len(communities), size=n_hot, p=dens / dens.sum())
    centres = np.vstack([_sample_in(communities[i].geom, 1, rng) for i in hot_comm])
    sigma = rng.uniform(60, 250, n_hot)
    hot_w = rng.dirichlet(np.full(n_hot, 1.5))
    hot_cat = base_w[None, :] * rng.gamma(1.5, 1.0, (n_hot, len(cats)))
    hot_cat /= hot_cat.sum(axis=1, keepdims=True)

    shapely.prepare(district)
    xs = np.empty(n)
    ys = np.empty(n)
    cat = np.empty(n, dtype=int)
    is_hot = rng.random(n) < 0.75
    idx_hot = np.flatnonzero(is_hot)
    which = rng.choice(n_hot, size=len(idx_hot), p=hot_w)
    todo = np.arange(len(idx_hot))
    while len(todo):
        h = which[todo]
        x = centres[h, 0] + rng.normal(0, 1, len(todo)) * sigma[h]
        y = centres[h, 1] + rng.normal(0, 1, len(todo)) * sigma[h]
        ok = shapely.contains_xy(district, x, y)
        xs[idx_hot[todo[ok]]] = x[ok]
        ys[idx_hot[todo[ok]]] = y[ok]
        todo = todo[~ok]
    cum = np.cumsum(hot_cat, axis=1)
    r = rng.random(len(idx_hot))
    cat[idx_hot] = np.minimum((cum[which] < r[:, None]).sum(axis=1), len(cats) - 1)
    # background, by grid population
    idx_bg = np.flatnonzero(~is_hot)
    gpop = np.array([g.population for g in grids], dtype=float) + 1.0
    gi = rng.choice(len(grids), size=len(idx_bg), p=gpop / gpop.sum())
    for g in np.unique(gi):
        sel = idx_bg[gi == g]
        pts = _sample_in(grids[g].geom, len(sel), rng)
        xs[sel], ys[sel] = pts[:, 0], pts[:, 1]
    cat[idx_bg] = rng.choice(len(cats), size=len(idx_bg), p=base_w / base_w.sum())

    # onto the nearest street, with a few metres of scatter
    seg_geoms = np.array([g for _, _, g in streets], dtype=object)
    tree = shapely.STRtree(seg_geoms)
    pts = shapely.points(xs, ys)
    nearest = tree.query_nearest(pts, return_distance=False, all_matches=False)[1]
    snap = rng.random(n) < 0.85
    lines = seg_geoms[nearest]
    on = shapely.line_interpolate_point(lines, shapely.line_locate_point(lines, pts))
    sx = shapely.get_x(on) + rng.normal(0, 4.0, n)
    sy = shapely.get_y(on) + rng.normal(0, 4.0, n)
    ok = snap & shapely.contains_xy(district, sx, sy)
    xs = np.where(ok, sx, xs)
    ys = np.where(ok, sy, ys)
    street_names = np.array([s[0] for s in streets], dtype=object)[nearest]
    lon, lat = metric.lonlat(xs, ys)

    # attributes
    sev = np.clip(
        default_sev[cat] + rng.choice([-1, 0, 1, 2], size=n, p=[0.15, 0.7, 0.12, 0.03]), 0, 3
    )
    src = rng.choice(["hotline", "patrol", "resident"], size=n, p=[0.45, 0.4, 0.15])
    now_ts = now.timestamp()
    local_midnight = dt.datetime.combine(
        now.astimezone(LOCAL_TZ).date(), dt.time(), LOCAL_TZ
    ).timestamp()
    days_ago = np.floor(rng.uniform(0, 365, n))
    hour_w = np.array(
        [1, 0.5, 0.3, 0.3, 0.4, 0.8, 2, 4, 7, 9, 9, 8, 6, 6, 8, 9, 9, 8, 7, 6, 5, 4, 3, 2], float
    )
    hour = rng.choice(24, size=n, p=hour_w / hour_w.sum())
    reported = local_midnight - days_ago * 86400 + hour * 3600 + rng.uniform(0, 3600, n)
    reported = np.where(reported >= now_ts, reported - 86400, reported)
    reported = np.where(reported >= now_ts, now_ts - rng.uniform(60, 3600, n), reported)
    limit_s = limit_h[sev] * 3600
    due = reported + limit_s
    to_close = limit_s * rng.lognormal(math.log(0.35), 0.75, n)
    slow = rng.random(n) < 0.03  # hard cases (disputes, illegal buildings) drag on
    to_close = np.where(slow, to_close * rng.uniform(4.0, 15.0, n), to_close)
    closed = reported + to_close < now_ts
    stuck = rng.random(n) < 0.004  # returned for rework and still open
    closed &= ~stuck
    frac = np.clip((now_ts - reported) / to_close, 0, 1)
    open_state = np.select(
        [frac < 0.1, frac < 0.4, frac < 0.85], ["received", "dispatched", "in_hand"], "verified"
    )
    state = np.where(closed, "closed", np.where(stuck, "returned", open_state))
    late = closed & (to_close > limit_s)
    rating = rng.choice([5, 4, 3, 2, 1], size=n, p=[0.55, 0.25, 0.1, 0.06, 0.04])
    rating = np.where(late, np.maximum(1, rating - rng.integers(0, 3, n)), rating)
    rated = closed & (rng.random(n) < 0.85)

    pts_ll = shapely.points(lon, lat)
    wkb = _ewkb(pts_ll)
    year = now.astimezone(LOCAL_TZ).year
    cats_arr = np.array(cats, dtype=object)

    def ts(x: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(float(x), dt.UTC)

    def rows():  # noqa: ANN202
        hot_no = 0
        for i in range(n):
            c = cats_arr[cat[i]]
            ext = None
            if src[i] == "hotline":
                hot_no += 1
                ext = f"12345-{year}{hot_no:07d}"
            addr = f"{street_names[i]}{1 + (i * 7919) % 180}号"
            yield (
                i + 1,
                ext,
                src[i],
                c,
                sev_names[sev[i]],
                state[i],
                _TEMPLATES[c].format(addr=addr),
                addr,
                wkb[i],
                GENERATED_CRS,
                ts(reported[i]),
                ts(due[i]),
                ts(reported[i] + to_close[i]) if closed[i] else None,
                int(rating[i]) if rated[i] else None,
                False,
            )

    it = rows()
    if show_progress:
        from mapsvc.commands.common import progress

        it = progress(it, total=n, desc="incidents", unit="row")
    return _copy(
        conn,
        "incident",
        [
            "id",
            "external_id",
            "source",
            "category",
            "severity",
            "state",
            "description",
            "address",
            "geom",
            "source_crs",
            "reported_at",
            "due_at",
            "closed_at",
            "rating",
            "location_to_confirm",
        ],
        it,
    )


def _write_incident_events(conn: Connection, now: dt.datetime) -> int:
    """The closed-loop history of every demo incident, set-based in PostGIS.

    One ``incident_event`` row per step an incident has taken (受理 received, 派遣
    dispatched, 处置 in hand, 核查 verified, then 结案 closed or 退回 returned), at fixed
    shares of the time from report to closing (or to now, while open), so time-to-close
    figures computed from events agree with ``incident.closed_at``.
    """
    result = conn.execute(
        sa.text(
            """
            WITH steps(rank, to_state, share, actor, note) AS (VALUES
              (0, 'received', 0.0, NULL, '受理'),
              (1, 'dispatched', 0.1, '区网格化服务管理中心', '派遣'),
              (2, 'in_hand', 0.4, '网格员', '处置'),
              (3, 'verified', 0.85, '网格长', '核查'),
              (4, 'closed', 1.0, '区网格化服务管理中心', '结案')),
            reached(state, rank) AS (VALUES ('received', 0), ('dispatched', 1),
              ('in_hand', 2), ('verified', 3), ('closed', 4), ('returned', 4))
            INSERT INTO incident_event (incident_id, from_state, to_state, actor, at, note)
            SELECT i.id,
                   lag(st.to_state) OVER (PARTITION BY i.id ORDER BY st.rank),
                   CASE WHEN st.rank = 4 THEN i.state ELSE st.to_state END,
                   COALESCE(st.actor, CASE i.source WHEN 'hotline' THEN '12345热线'
                            WHEN 'patrol' THEN '巡查上报' ELSE '居民上报' END),
                   i.reported_at + st.share * (COALESCE(i.closed_at, :now) - i.reported_at),
                   CASE WHEN st.rank = 4 AND i.state = 'returned' THEN '退回重办' ELSE st.note END
            FROM incident i
            JOIN reached r ON r.state = i.state
            JOIN steps st ON st.rank <= r.rank
            ORDER BY i.id, st.rank
            """
        ),
        {"now": now},
    )
    return result.rowcount


# --------------------------------------------------------------------------- patrol tracks


def _walk(segs: list[LineString]) -> list[tuple[float, float]]:
    """Coordinates of a walk that covers every segment of a connected group once or twice.

    An Euler circuit of the group made Eulerian by doubling some segments (networkx), so
    the walk is what a chief does on a round: every alley, back along dead ends.
    """
    import networkx as nx

    g = nx.MultiGraph()
    key = {}
    for i, s in enumerate(segs):
        a = (round(s.coords[0][0], 1), round(s.coords[0][1], 1))
        b = (round(s.coords[-1][0], 1), round(s.coords[-1][1], 1))
        g.add_edge(a, b, idx=i)
        key[i] = (a, b)
    comp = max(nx.connected_components(g), key=len)
    g = g.subgraph(comp).copy()
    if not nx.is_eulerian(g):
        g = nx.eulerize(g)
    start = min(g.nodes)
    coords: list[tuple[float, float]] = []
    for u, v, k in nx.eulerian_circuit(g, source=start, keys=True):
        data = g.get_edge_data(u, v, k)
        idx = data.get("idx")
        if idx is None:  # a doubled edge: walk an original between the same nodes
            idx = next(d["idx"] for d in g.get_edge_data(u, v).values() if "idx" in d)
        c = list(segs[idx].coords)
        if key[idx][0] != u:
            c = c[::-1]
        coords.extend(c if not coords else c[1:])
    return coords


def _write_patrols(
    conn: Connection,
    rng: np.random.Generator,
    now: dt.datetime,
    metric: _Metric,
    segments_m: list[LineString],
    staff_plan: dict,
) -> int:
    """Morning rounds as LINESTRINGM: yesterday most chiefs (about 85 %) walked their
    round, and eight of them have a track on each of the last five days.

    So the dashboard's patrol compliance shows a plausible district figure while a few
    chiefs have a week of history. M is Unix time in seconds. The chief walks the group's
    segments at 3.8-5.2 km/h with a fix every 5-10 s, stops a few times to talk to
    residents, and the fixes carry about 4 m of GPS noise.
    """
    chiefs = staff_plan["chiefs"]
    if not chiefs:
        return 0
    pick = set(rng.choice(len(chiefs), size=min(8, len(chiefs)), replace=False).tolist())
    walked_yesterday = rng.random(len(chiefs)) < 0.85
    today = now.astimezone(LOCAL_TZ).date()
    rows = []
    tid = 0
    for ci, (sid, cl) in enumerate(chiefs):
        days = range(1, 6) if ci in pick else (range(1, 2) if walked_yesterday[ci] else ())
        if not days:
            continue
        route = LineString(_walk([segments_m[i] for i in cl]))
        for back in days:
            day = today - dt.timedelta(days=back)
            t0 = dt.datetime.combine(day, dt.time(8, 0), LOCAL_TZ).timestamp() + rng.uniform(
                0, 5400
            )
            speed = rng.uniform(3.8, 5.2) / 3.6
            stops = sorted(rng.uniform(0, route.length, int(rng.integers(2, 6))))
            stop_len = list(rng.uniform(60, 420, len(stops)))
            t, d, out = t0, 0.0, []
            while d <= route.length:
                p = route.interpolate(d)
                out.append((p.x + rng.normal(0, 4.0), p.y + rng.normal(0, 4.0), t))
                dt_s = rng.uniform(5, 10)
                t += dt_s
                if stops and d >= stops[0]:
                    stay = stop_len.pop(0)
                    stops.pop(0)
                    for _ in range(int(stay // 10)):
                        out.append((p.x + rng.normal(0, 4.0), p.y + rng.normal(0, 4.0), t))
                        t += 10
                d += speed * dt_s
            arr = np.array(out)
            lon, lat = metric.lonlat(arr[:, 0], arr[:, 1])
            text = ", ".join(
                f"{a:.7f} {b:.7f} {int(m)}" for a, b, m in zip(lon, lat, arr[:, 2], strict=True)
            )
            tid += 1
            rows.append(
                (
                    tid,
                    sid,
                    day,
                    f"SRID=4326;LINESTRING M ({text})",
                    dt.datetime.fromtimestamp(int(arr[0, 2]), dt.UTC),
                    dt.datetime.fromtimestamp(int(arr[-1, 2]), dt.UTC),
                    GENERATED_CRS,
                    len(arr),
                    0,
                )
            )
    return _copy(
        conn,
        "patrol_track",
        [
            "id",
            "staff_id",
            "day",
            "geom",
            "started_at",
            "ended_at",
            "source_crs",
            "points_total",
            "points_dropped",
        ],
        rows,
    )


_VISIT_NOTES = (
    "走访沿街商户",
    "走访独居老人",
    "检查消防通道",
    "宣传垃圾分类",
    "排查安全隐患",
    "走访出租屋",
    "了解居民诉求",
)


def _write_visits(
    conn: Connection,
    rng: np.random.Generator,
    now: dt.datetime,
    metric: _Metric,
    segments_m: list[LineString],
    grids: list[_Area],
    grid_id: dict[str, int],
    staff_plan: dict,
) -> int:
    """Weekly visits (周走访) over the last eight weeks.

    Chiefs visit one to three of their segments a week, grid members their grid; about
    one person in ten skips most weeks, so compliance figures have something to show.
    """
    today = now.astimezone(LOCAL_TZ).date()
    rows = []

    def weeks() -> list[dt.date]:
        keen = rng.random() > 0.1
        out = []
        for w in range(1, 9):
            if keen or rng.random() < 0.25:
                out.append(today - dt.timedelta(days=7 * w - int(rng.integers(0, 7))))
        return out

    def near(x: float, y: float) -> str:
        lon, lat = metric.lonlat(x + rng.normal(0, 8.0), y + rng.normal(0, 8.0))
        return f"SRID=4326;POINT({float(lon):.7f} {float(lat):.7f})"

    for sid, cl in staff_plan["chiefs"]:
        for day in weeks():
            for i in rng.choice(cl, size=min(len(cl), int(rng.integers(1, 4))), replace=False):
                p = segments_m[int(i)].interpolate(rng.random(), normalized=True)
                note = _VISIT_NOTES[int(rng.integers(len(_VISIT_NOTES)))]
                rows.append((sid, day, int(i) + 1, None, None, note, near(p.x, p.y)))
    by_code = {g.code: g for g in grids}
    for a in staff_plan["assignments"]:
        if a["role"] != "grid_member" or a["to"] is not None:
            continue
        g = by_code[a["target"]]
        for day in weeks():
            p = _sample_in(g.geom, 1, rng)[0]
            note = _VISIT_NOTES[int(rng.integers(len(_VISIT_NOTES)))]
            rows.append((a["staff"], day, None, grid_id[g.code], None, note, near(p[0], p[1])))
    return _copy(
        conn,
        "patrol_visit",
        ["staff_id", "day", "segment_id", "grid_id", "place", "note", "geom"],
        rows,
    )


# --------------------------------------------------------------------------- summary


def _summary(conn: Connection, seed: int) -> dict:
    counts = {
        t: int(conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar()) for t in DEMO_TABLES
    }
    d = conn.execute(
        sa.text("SELECT code, name, area_km2 FROM district ORDER BY id LIMIT 1")
    ).first()
    no_chief = conn.execute(
        sa.text(
            "SELECT count(*) FROM alley_segment s WHERE NOT EXISTS (SELECT 1 FROM assignment a "
            "WHERE a.segment_id = s.id AND a.role = 'alley_chief' AND a.valid_to IS NULL)"
        )
    ).scalar()
    states = dict(
        conn.execute(sa.text("SELECT state, count(*) FROM incident GROUP BY state")).all()
    )
    return {
        "seed": seed,
        "district_code": d.code,
        "district_name": d.name,
        "district_area_km2": round(float(d.area_km2), 3),
        "counts": counts,
        "segments_without_chief": int(no_chief),
        "incidents_by_state": {k: int(v) for k, v in sorted(states.items())},
        "attribution": ATTRIBUTION,
    }


def format_summary(summary: dict) -> str:
    """The load summary as aligned text lines (for the CLI)."""
    lines = [
        f"{summary['district_name']} ({summary['district_code']}): "
        f"{summary['district_area_km2']:.2f} km² (geodesic), seed {summary['seed']}",
    ]
    width = max(len(t) for t in summary["counts"])
    for table, n in summary["counts"].items():
        lines.append(f"  {table:<{width}}  {n:>8,}")
    if summary.get("segments_without_chief") is not None:
        lines.append(f"  alley segments without a chief: {summary['segments_without_chief']}")
    if summary.get("incidents_by_state"):
        states = ", ".join(f"{k} {v:,}" for k, v in summary["incidents_by_state"].items())
        lines.append(f"  incidents by state: {states}")
    lines.append(f"Boundaries: {summary.get('attribution', ATTRIBUTION)}")
    return "\n".join(lines)
