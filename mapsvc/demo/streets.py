"""Stage: the alley segments (街巷段), a jittered street lattice named 路 / 街 / 巷.

The lattice has a fine pitch (half of :data:`STREET_SPACING_M`), slightly rotated and
jittered. Every other line is a through line: every 5th of those a road (路), every 5th
offset by 2 a street (街), the rest lanes (巷) named in short stretches; some blocks are
missing (dead ends, superblocks). The lines in between exist only in the old city, where
the alleys are twice as close. Lattice edges are merged through nodes where a street
simply continues, so each segment runs from junction to junction (or to the district
edge).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import NamedTuple

import numpy as np
import shapely
from shapely.geometry import LineString, MultiPolygon, Point
from shapely.geometry.base import BaseGeometry
from sqlalchemy.engine import Connection

from mapsvc.demo.areas import Area
from mapsvc.demo.geometry import Metric
from mapsvc.demo.names import Names
from mapsvc.demo.write import copy_rows, ewkb

STREET_SPACING_M = 190.0
#: communities denser than this (people per km²) get the old city's close alleys
DENSE_PER_KM2 = 18000
#: OpenStreetMap ``highway`` value stored for each kind of street
HIGHWAY = {"road": "primary", "street": "tertiary", "lane": "living_street"}


class Street(NamedTuple):
    """A planned alley segment; its row id is its position in the plan + 1."""

    name: str
    kind: str  # road | street | lane
    geom: LineString  # metric


def old_city(communities: list[Area], metric: Metric) -> BaseGeometry:
    """The union of the communities dense enough for the old city's close alleys."""
    return shapely.union_all(
        [cm.geom for cm in communities if cm.population / metric.area_km2(cm.geom) > DENSE_PER_KM2]
    )


def plan_streets(
    district: MultiPolygon,
    rng: np.random.Generator,
    names: Names,
    dense: BaseGeometry | None = None,
) -> list[Street]:
    """A jittered, slightly rotated street lattice clipped to the district.

    ``dense`` is the old city (see :func:`old_city`), where the in-between alleys exist.
    """
    f = STREET_SPACING_M / 2
    n, nx_, ny_ = _lattice(district, f, rng)
    stretch_len, offsets = _stretches(n, rng)
    if dense is not None and not dense.is_empty:
        shapely.prepare(dense)
    else:
        dense = None
    edges = _lattice_edges(district, nx_, ny_, f, stretch_len, offsets, dense, rng)
    kept = _clip(district, edges, nx_, ny_)
    return _merge_stretches(kept, names)


def _kind_of(line: int) -> str:
    """road, street or lane for lattice line number ``line``."""
    if line % 2:
        return "lane"
    c = line // 2
    return "road" if c % 5 == 0 else "street" if c % 5 == 2 else "lane"


def _lattice(
    district: MultiPolygon, f: float, rng: np.random.Generator
) -> tuple[int, np.ndarray, np.ndarray]:
    """Nodes of an n x n lattice of pitch ``f`` over the district, jittered, rotated 8°."""
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
    return n, cx + uu * ct - vv * st, cy + uu * st + vv * ct


def _stretches(n: int, rng: np.random.Generator) -> tuple[dict, dict]:
    """How many edges one name covers on each line, and where its first stretch starts.

    Roads keep a name for 80 edges and streets for 24; lanes are named in stretches of 5-10.
    """
    stretch_len = {}
    offsets = {}
    for d in ("h", "v"):
        for line in range(n):
            k = _kind_of(line)
            stretch_len[d, line] = {"road": 80, "street": 24}.get(k) or int(rng.integers(5, 11))
            offsets[d, line] = int(rng.integers(0, stretch_len[d, line]))
    return stretch_len, offsets


def _lattice_edges(
    district: MultiPolygon,
    nx_: np.ndarray,
    ny_: np.ndarray,
    f: float,
    stretch_len: dict,
    offsets: dict,
    dense: BaseGeometry | None,
    rng: np.random.Generator,
) -> list[tuple]:
    """The lattice edges that exist, as ``(stretch key, kind, node a, node b, LineString)``.

    A through line loses whole blocks (two fine edges) at a time; in-between alleys exist
    only in ``dense``; lanes bend a little in their middle.
    """
    n = nx_.shape[0]
    drop_p = {"road": 0.0, "street": 0.04, "lane": 0.14}
    near = shapely.contains_xy(district.envelope.buffer(4 * f), nx_, ny_)
    dropped: dict[tuple, bool] = {}
    edges = []
    for d in ("h", "v"):
        for line in range(n):
            k = _kind_of(line)
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
    return edges


def _clip(
    district: MultiPolygon, edges: list[tuple], nx_: np.ndarray, ny_: np.ndarray
) -> list[tuple]:
    """Edges inside the district, and the pieces longer than 20 m of those crossing its edge.

    A clipped piece keeps the lattice node it still ends on (``None`` where it was cut), so
    it is merged only through real junctions.
    """
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
    return kept


def _merge_stretches(kept: list[tuple], names: Names) -> list[Street]:
    """Chains of edges merged through degree-2 nodes where the same named stretch continues."""
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
            out.append(Street(key_names[key], kind, g))
    return out


def write_segments(conn: Connection, streets: list[Street], metric: Metric) -> None:
    """The alley_segment rows, coded ``demo:<id>``."""
    seg_ll = ewkb([metric.to_ll(s.geom) for s in streets])
    copy_rows(
        conn,
        "alley_segment",
        ["id", "code", "name", "geom", "highway", "source"],
        [
            (i, f"demo:{i}", s.name, wkb, HIGHWAY[s.kind], "demo")
            for i, (s, wkb) in enumerate(zip(streets, seg_ll, strict=True), start=1)
        ],
    )
