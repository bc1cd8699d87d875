"""The geometry of grid plans: the rules a community's grids must keep, their metrics, and
the edits a planner makes (split, merge, move a block, snap).

Pure functions over shapely geometries in WGS84 lon/lat; everything is measured in the
community's UTM zone (:func:`mapsvc.services.geo.utm_epsg`), so tolerances are in metres
and square metres, never degrees. :mod:`mapsvc.services.plans` applies them to the plans
stored in the database.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

import shapely
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

from mapsvc.core.errors import ValidationError
from mapsvc.services.geo import utm_epsg

#: square metres below which a gap, an overlap or a part outside is floating-point noise
TOLERANCE_M2 = 1.0


@dataclass(frozen=True)
class DraftGrid:
    """One grid of a draft: its code, lon/lat polygon and figures."""

    code: str
    geom: BaseGeometry
    households: int = 0
    population: int = 0


@dataclass(frozen=True)
class Problem:
    """One broken rule: which grids, where (lon/lat), how large (m²), said in words."""

    kind: str
    severity: str
    grids: tuple[str, ...]
    where: BaseGeometry | None
    size_m2: float | None
    message: str


class Metric:
    """Forward and back between lon/lat and the metric CRS of one place."""

    def __init__(self, near: BaseGeometry) -> None:
        c = near.centroid if not near.is_empty else shapely.Point(0, 0)
        epsg = utm_epsg(c.x, c.y)
        self._to = Transformer.from_crs(4326, epsg, always_xy=True)
        self._back = Transformer.from_crs(epsg, 4326, always_xy=True)

    def to(self, g: BaseGeometry) -> BaseGeometry:
        return shapely.transform(g, lambda xy: _apply(self._to, xy))

    def back(self, g: BaseGeometry) -> BaseGeometry:
        out = shapely.transform(g, lambda xy: _apply(self._back, xy))
        return out if out.is_valid else shapely.make_valid(out)


def _apply(t: Transformer, xy: Any) -> Any:
    import numpy as np

    x, y = t.transform(xy[:, 0], xy[:, 1])
    return np.column_stack([x, y])


def _at(g: BaseGeometry, m: Metric) -> str:
    """'near lon, lat' of a metric geometry, for messages."""
    p = m.back(g.representative_point() if not g.is_empty else g)
    return f"near {p.x:.5f}, {p.y:.5f}"


def _polygons(g: BaseGeometry) -> list[BaseGeometry]:
    return [p for p in shapely.get_parts(g) if p.geom_type == "Polygon" and p.area > 0]


def _pieces(g: BaseGeometry, min_area: float) -> list[BaseGeometry]:
    """The polygon pieces of ``g`` above ``min_area`` (m²)."""
    if g.is_empty:
        return []
    return [p for p in _polygons(g) if p.area > min_area]


# --------------------------------------------------------------------------- rules


def validate(
    community_code: str,
    community_geom: BaseGeometry,
    grids: list[DraftGrid],
    *,
    tolerance_m2: float = TOLERANCE_M2,
    households: tuple[int, int] = (300, 500),
) -> list[Problem]:
    """Every rule a community's grids must keep, each broken one located and sized.

    Errors: a grid invalid (a bow-tie, with shapely's reason and point) or empty, a part
    outside the community, two grids overlapping, a gap (the community minus the grids;
    a hole in a grid no other grid fills is one), a grid in parts that do not share an
    edge, a code used twice. Warnings: households outside ``households``. Anything at or
    below ``tolerance_m2`` is not reported. Errors come first, in a fixed order.
    """
    m = Metric(community_geom)
    community = m.to(community_geom)
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    shapes: list[tuple[str, BaseGeometry]] = []
    for g in grids:
        seen[g.code] = seen.get(g.code, 0) + 1
        if g.geom is None or g.geom.is_empty:
            problems.append(
                Problem("empty", "error", (g.code,), None, None, f"grid {g.code} has no area")
            )
            continue
        geom = m.to(g.geom)
        if not geom.is_valid:
            reason = shapely.is_valid_reason(geom)
            point = _reason_point(reason, m)
            problems.append(
                Problem(
                    "invalid", "error", (g.code,), point if point is not None else g.geom, None,
                    f"grid {g.code} is not a valid polygon: {_reason_text(reason, m)}",
                )
            )  # fmt: skip
            geom = shapely.make_valid(geom)
        shapes.append((g.code, geom))
    for code, n in sorted(seen.items()):
        if n > 1:
            problems.append(
                Problem(
                    "duplicate_code",
                    "error",
                    (code,),
                    None,
                    None,
                    f"grid code {code} is used by {n} grids",
                )
            )
    for code, geom in shapes:
        outside = geom.difference(community)
        for piece in _pieces(outside, tolerance_m2):
            problems.append(
                Problem(
                    "outside", "error", (code,), m.back(piece), piece.area,
                    f"grid {code} reaches {piece.area:,.0f} m² outside community "
                    f"{community_code} {_at(piece, m)}",
                )
            )  # fmt: skip
        parts = _pieces(geom, tolerance_m2)
        if len(parts) > 1 and not _edge_connected(parts):
            detached = sorted(parts, key=lambda p: -p.area)[1:]
            where = shapely.union_all(detached)
            problems.append(
                Problem(
                    "noncontiguous", "error", (code,), m.back(where), where.area,
                    f"grid {code} is in {len(parts)} separate parts; {where.area:,.0f} m² lie "
                    f"apart from the main part {_at(where, m)}",
                )
            )  # fmt: skip
    tree = shapely.STRtree([g for _, g in shapes])
    for i, j in sorted(
        {
            tuple(sorted(p))
            for p in zip(*tree.query([g for _, g in shapes], predicate="intersects"), strict=True)
            if p[0] != p[1]
        }
    ):
        (a, ga), (b, gb) = shapes[i], shapes[j]
        inter = ga.intersection(gb)
        for piece in _pieces(inter, tolerance_m2):
            problems.append(
                Problem(
                    "overlap", "error", tuple(sorted((a, b))), m.back(piece), piece.area,
                    f"grids {a} and {b} overlap by {piece.area:,.0f} m² {_at(piece, m)}",
                )
            )  # fmt: skip
    covered = shapely.union_all([g for _, g in shapes]) if shapes else shapely.Polygon()
    gap = community.difference(covered)
    for piece in _pieces(gap, tolerance_m2):
        near = tuple(sorted(code for code, g in shapes if shared_length(g, piece) > 0.5))
        problems.append(
            Problem(
                "gap", "error", near, m.back(piece), piece.area,
                f"{piece.area:,.0f} m² of community {community_code} belong to no grid "
                f"{_at(piece, m)}" + (f" (next to {', '.join(near)})" if near else ""),
            )
        )  # fmt: skip
    low, high = households
    for g in grids:
        if g.households < low or g.households > high:
            over = g.households > high
            problems.append(
                Problem(
                    "households_high" if over else "households_low", "warning", (g.code,), None, None,
                    f"grid {g.code} has {g.households} households, "
                    f"{'above' if over else 'below'} the target {low}-{high}",
                )
            )  # fmt: skip
    order = {"error": 0, "warning": 1}
    return sorted(problems, key=lambda p: (order[p.severity], p.kind, p.grids, p.message))


def shared_length(a: BaseGeometry, b: BaseGeometry, eps: float = 0.05) -> float:
    """Metres of border two metric polygons share, robust to coordinates a hair apart:
    the strip where both, grown by ``eps``, meet is about ``2 eps`` wide along the border
    (at a single touching point it is ``eps`` long or less)."""
    return a.buffer(eps).intersection(b.buffer(eps)).area / (2 * eps)


def _edge_connected(parts: list[BaseGeometry]) -> bool:
    """Whether polygon parts form one piece through shared edges (not single points)."""
    import networkx as nx

    graph = nx.Graph()
    graph.add_nodes_from(range(len(parts)))
    for i in range(len(parts)):
        for j in range(i + 1, len(parts)):
            if shared_length(parts[i], parts[j]) > 0.5:
                graph.add_edge(i, j)
    return nx.is_connected(graph)


def _reason_point(reason: str, m: Metric) -> BaseGeometry | None:
    """The lon/lat point of shapely's 'Self-intersection[x y]' reason."""
    import re

    found = re.search(r"\[([-\d.e+]+) ([-\d.e+]+)\]", reason)
    if not found:
        return None
    return m.back(shapely.Point(float(found.group(1)), float(found.group(2))))


def _reason_text(reason: str, m: Metric) -> str:
    """shapely's reason with its point in lon/lat (the metric coordinates mean nothing)."""
    point = _reason_point(reason, m)
    head = reason.split("[", 1)[0].strip() or reason
    return f"{head} at {point.x:.6f}, {point.y:.6f}" if point is not None else head


# --------------------------------------------------------------------------- metrics


def polsby_popper(geom_lonlat: BaseGeometry) -> float:
    """Compactness 4πA/P² measured in metres: 1 for a disc, π/4 for a square."""
    g = Metric(geom_lonlat).to(geom_lonlat)
    return 4 * math.pi * g.area / g.length**2 if g.length > 0 else 0.0


def metrics(
    community_geom: BaseGeometry,
    grids: list[DraftGrid],
    *,
    households: tuple[int, int] = (300, 500),
) -> dict[str, Any]:
    """The figures planners compare: count, households min/median/max, the share within
    the target, compactness (Polsby-Popper) mean and minimum, and the cut length (metres
    of border between grids)."""
    m = Metric(community_geom)
    hh = [g.households for g in grids]
    pp = [polsby_popper(g.geom) for g in grids if g.geom is not None and not g.geom.is_empty]
    low, high = households
    metric = [m.to(g.geom) for g in grids if g.geom is not None and not g.geom.is_empty]
    if metric:
        union = shapely.union_all(metric)
        cut = max(0.0, (sum(g.length for g in metric) - union.length) / 2)
    else:
        cut = 0.0
    return {
        "count": len(grids),
        "households_min": min(hh) if hh else None,
        "households_median": statistics.median(hh) if hh else None,
        "households_max": max(hh) if hh else None,
        "within_target_share": round(sum(low <= h <= high for h in hh) / len(hh), 3)
        if hh
        else None,
        "compactness_mean": round(statistics.fmean(pp), 3) if pp else None,
        "compactness_min": round(min(pp), 3) if pp else None,
        "cut_length_m": round(cut, 1),
    }


def _differs(a: BaseGeometry, b: BaseGeometry, m: Metric, tolerance_m2: float) -> bool:
    return m.to(a).symmetric_difference(m.to(b)).area > tolerance_m2


def compare(
    community_geom: BaseGeometry,
    current: list[DraftGrid],
    plan: list[DraftGrid],
    *,
    households: tuple[int, int] = (300, 500),
    tolerance_m2: float = TOLERANCE_M2,
) -> dict[str, Any]:
    """Current against plan: both metrics, the plan grids new or redrawn (``changed``)
    and the current codes the plan drops (``removed``)."""
    m = Metric(community_geom)
    now = {g.code: g for g in current}
    changed = [
        g.code
        for g in plan
        if g.code not in now or _differs(now[g.code].geom, g.geom, m, tolerance_m2)
    ]
    codes = {g.code for g in plan}
    return {
        "current": metrics(community_geom, current, households=households),
        "plan": metrics(community_geom, plan, households=households),
        "changed": sorted(changed),
        "removed": sorted(c for c in now if c not in codes),
    }


# --------------------------------------------------------------------------- edits


def split(geom: BaseGeometry, line: BaseGeometry) -> list[BaseGeometry]:
    """The parts of a grid cut by a drawn line that crosses it from side to side."""
    from shapely.ops import split as cut

    m = Metric(geom)
    g, ln = m.to(geom), m.to(line)
    if not ln.intersects(g):
        raise ValidationError("the line does not cross the grid", field="line")
    parts = []
    for poly in _polygons(g):
        parts.extend(p for p in shapely.get_parts(cut(poly, ln)) if p.area > TOLERANCE_M2)
    if len(parts) < 2:
        raise ValidationError(
            "the line does not cut the grid in two: draw it across, from outside to outside",
            field="line",
        )
    return [m.back(p) for p in parts]


def merge(a: BaseGeometry, b: BaseGeometry) -> BaseGeometry:
    """Two neighbouring grids as one; they must share an edge, not only a point."""
    m = Metric(a)
    ga, gb = m.to(a), m.to(b)
    if shared_length(ga, gb) < 0.5:
        raise ValidationError(
            "the grids are not neighbours: they share no border (at most a point)",
            field="other",
        )
    return m.back(_clean(shapely.union_all([ga, gb])))


def reassign(
    donor: BaseGeometry, receiver: BaseGeometry, block: BaseGeometry
) -> tuple[BaseGeometry, BaseGeometry]:
    """Move the part of ``block`` inside ``donor`` to ``receiver``: (new donor, new receiver).

    The part must touch the receiver along an edge, and the donor must stay one piece
    with some area left.
    """
    m = Metric(donor)
    d, r, b = m.to(donor), m.to(receiver), m.to(block)
    part = d.intersection(b)
    if part.area <= TOLERANCE_M2:
        raise ValidationError("the block does not cover any of the giving grid", field="block")
    if shared_length(part, r) < 0.5:
        raise ValidationError(
            "the block does not touch the grid that should take it", field="block"
        )
    rest = _clean(d.difference(part))
    if rest.area <= TOLERANCE_M2:
        raise ValidationError("the block takes the whole giving grid: merge instead", field="block")
    pieces = _pieces(rest, TOLERANCE_M2)
    if len(pieces) > 1 and not _edge_connected(pieces):
        raise ValidationError(
            "the giving grid would fall into separate parts; draw the block differently",
            field="block",
        )
    return m.back(rest), m.back(_clean(shapely.union_all([r, part])))


def snap(
    geom: BaseGeometry,
    community_geom: BaseGeometry,
    neighbours: list[BaseGeometry],
    *,
    tolerance_m: float = 2.0,
) -> BaseGeometry:
    """A drawn shape fitted to its place: vertices within ``tolerance_m`` of the community
    border or a neighbour's edge moved onto it, then clipped to the community, with the
    neighbours cut out, so no sliver of overlap or gap is left."""
    m = Metric(community_geom)
    g = m.to(geom)
    if not g.is_valid:
        g = shapely.make_valid(g)
    community = m.to(community_geom)
    others = [m.to(n) for n in neighbours if n is not None and not n.is_empty]
    reference = shapely.union_all([community.boundary, *[o.boundary for o in others]])
    g = shapely.snap(g, reference, tolerance_m)
    if not g.is_valid:
        g = shapely.make_valid(g)
    g = g.intersection(community)
    if others:
        g = g.difference(shapely.union_all(others))
    g = _clean(g)
    if g.area <= TOLERANCE_M2:
        raise ValidationError(
            "the shape lies outside the community or under its neighbours", field="geometry"
        )
    return m.back(g)


#: metres: edits are rounded to this grid, which removes the zero-width spikes and
#: slivers that cutting along a neighbour's (reprojected) edge leaves
PRECISION_M = 0.001


def _clean(g: BaseGeometry) -> BaseGeometry:
    """Polygonal parts only, on a millimetre grid, slivers under the tolerance dropped,
    valid."""
    if not g.is_valid:
        g = shapely.make_valid(g)
    g = shapely.set_precision(g, PRECISION_M)
    parts = _pieces(g, TOLERANCE_M2)
    if not parts:
        return shapely.Polygon()
    out = shapely.MultiPolygon(parts) if len(parts) > 1 else parts[0]
    return out if out.is_valid else shapely.make_valid(out)


def households_share(new_geom: BaseGeometry, old_grids: list[DraftGrid]) -> tuple[int, int]:
    """Households and population of a drawn grid, from the old grids it overlaps, each in
    proportion to the share of its area that falls inside (residents spread evenly)."""
    if not old_grids or new_geom is None or new_geom.is_empty:
        return 0, 0
    m = Metric(new_geom)
    g = m.to(new_geom)
    households = population = 0.0
    for old in old_grids:
        o = m.to(old.geom)
        if o.area <= 0 or not o.intersects(g):
            continue
        share = o.intersection(g).area / o.area
        households += old.households * share
        population += old.population * share
    return round(households), round(population)


def fill_gaps(
    community_geom: BaseGeometry,
    grids: list[BaseGeometry],
    *,
    fixed: list[BaseGeometry] | None = None,
) -> list[BaseGeometry]:
    """Grids made of units (blocks), grown to tile their community: each piece of the
    community no grid covers (streets between blocks, squares) goes to the grid it shares
    most border with, or the nearest one; what reaches outside is cut off. ``fixed``
    grids (kept as they are) hold their part and take nothing."""
    if not grids:
        return []
    m = Metric(community_geom)
    community = m.to(community_geom)
    held = [m.to(g) for g in fixed or []]
    if held:
        community = community.difference(shapely.union_all(held))
    shapes = [m.to(g).intersection(community) for g in grids]
    covered = shapely.union_all(shapes)
    for piece in _pieces(community.difference(covered), 0.0):
        shared = [shared_length(s, piece) for s in shapes]
        best = max(range(len(shapes)), key=lambda i: (shared[i], -shapes[i].distance(piece)))
        if shared[best] <= 0:
            best = min(range(len(shapes)), key=lambda i: shapes[i].distance(piece))
        shapes[best] = shapely.union_all([shapes[best], piece])
    return [m.back(_clean(s)) for s in shapes]
