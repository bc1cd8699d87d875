"""The geometry of grid plans: the rules a community's grids must keep, their metrics, and
the edits a planner makes (split, merge, move a block, snap).

Pure functions over shapely geometries in WGS84 lon/lat; everything is measured in the
community's UTM zone (:func:`mapsvc.services.geo.utm_epsg`), so tolerances are in metres
and square metres, never degrees. :mod:`mapsvc.services.plans` applies them to the plans
stored in the database.

Two choices run through the module:

- **Validation reports, edits refuse.** :func:`validate` never repairs a grid silently:
  a bow-tie is reported with shapely's reason and point, and only then made valid so the
  other rules can still be checked. An edit that would leave a broken grid raises a
  :class:`~mapsvc.core.errors.ValidationError` saying why, before anything is changed.
- **Edits keep the vertices they do not touch.** Boolean operations run in metres on the
  vertices as drawn (no rounding to a grid), so a neighbour that was not edited still
  matches the edited grid's border exactly and areas add up to the square centimetre.
  Pieces and holes at or below the tolerance that an operation leaves along a border
  (reprojected coordinates a hair apart) are removed.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

from mapsvc.core.errors import ValidationError
from mapsvc.services.geo import utm_epsg

#: square metres at or below which a gap, an overlap or a part outside is drawing noise
TOLERANCE_M2 = 1.0

#: metres two polygons must share for them to be neighbours: touching at a corner (or
#: along a few centimetres, where two corners were digitised a hair apart) is not an edge
EDGE_M = 0.5

#: metres each side of a border within which two outlines count as the same line, so
#: coordinates a hair apart (reprojected, rounded by a file format) still share a border
HAIR_M = 0.05

#: the order problems are listed in, within each severity: the ones that make the other
#: checks meaningless first
KIND_ORDER = (
    "invalid",
    "empty",
    "duplicate_code",
    "outside",
    "overlap",
    "gap",
    "noncontiguous",
    "households_low",
    "households_high",
)


@dataclass(frozen=True)
class DraftGrid:
    """One grid of a draft: its code, lon/lat polygon and figures."""

    code: str
    geom: BaseGeometry
    households: int = 0
    population: int = 0


@dataclass(frozen=True)
class Problem:
    """One broken rule: which grids, where (lon/lat), how large (m²), said in words.

    ``where`` is always a geometry the map can show: the offending piece (the overlap, the
    gap, the part outside, the detached part), the point shapely names for an invalid
    grid, or the grid itself for a duplicate code or households out of range (an empty
    geometry only for an empty grid). ``size_m2`` is None where no area is meant.
    """

    kind: str
    severity: str
    grids: tuple[str, ...]
    where: BaseGeometry
    size_m2: float | None
    message: str


# --------------------------------------------------------------------------- metres


@lru_cache(maxsize=16)
def _transformers(epsg: int) -> tuple[Transformer, Transformer]:
    """lon/lat -> ``epsg`` and back (built once per zone: validate measures every grid)."""
    return (
        Transformer.from_crs(4326, epsg, always_xy=True),
        Transformer.from_crs(epsg, 4326, always_xy=True),
    )


def _apply(t: Transformer, xy: Any) -> Any:
    x, y = t.transform(xy[:, 0], xy[:, 1])
    return np.column_stack([x, y])


class Metric:
    """Forward and back between lon/lat and the UTM zone of one place.

    Parameters
    ----------
    near : BaseGeometry
        lon/lat geometry whose centroid picks the zone (the community, for everything
        that compares grids, so all of them are measured in the same metres).
    """

    def __init__(self, near: BaseGeometry) -> None:
        c = near.centroid if near is not None and not near.is_empty else shapely.Point(0, 0)
        # rounded to 0.1° so that the zone lookup (slow: a query of pyproj's database) is
        # made once per neighbourhood, not once per grid; zones are 6° wide, and near a
        # zone's edge either zone measures a community to well under 0.1 %
        self.epsg = utm_epsg(round(c.x, 1), round(c.y, 1))
        self._to, self._back = _transformers(self.epsg)

    def to(self, g: BaseGeometry) -> BaseGeometry:
        """``g`` (lon/lat) in metres, as it is (an invalid shape stays invalid)."""
        return shapely.transform(g, lambda xy: _apply(self._to, xy))

    def back(self, g: BaseGeometry) -> BaseGeometry:
        """``g`` (metres) in lon/lat, made valid if the projection broke a hair-thin spot."""
        out = shapely.transform(g, lambda xy: _apply(self._back, xy))
        return out if out.is_valid else shapely.make_valid(out)

    def near(self, g: BaseGeometry) -> str:
        """'near lon, lat' of a metric geometry, for messages."""
        if g.is_empty:
            return "(nowhere)"
        p = self.back(g.representative_point())
        return f"near {p.x:.5f}, {p.y:.5f}"


def _polygons(g: BaseGeometry) -> list[BaseGeometry]:
    """The polygons of any geometry (a collection's lines and points dropped)."""
    if g is None or g.is_empty:
        return []
    return [p for p in shapely.get_parts(g) if p.geom_type == "Polygon" and p.area > 0]


def _pieces(g: BaseGeometry, min_area: float) -> list[BaseGeometry]:
    """The polygons of ``g`` larger than ``min_area`` (m²), largest first, then west to
    east so the order never depends on GEOS's."""
    parts = [p for p in _polygons(g) if p.area > min_area]
    return sorted(parts, key=lambda p: (-round(p.area, 3), p.bounds))


def _polygonal(g: BaseGeometry) -> BaseGeometry:
    """The polygonal part of ``g``, valid: a Polygon, a MultiPolygon or an empty Polygon."""
    if not g.is_valid:
        g = shapely.make_valid(g)
    parts = _polygons(g)
    if not parts:
        return shapely.Polygon()
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


def _tidy(g: BaseGeometry, tolerance_m2: float = TOLERANCE_M2) -> BaseGeometry:
    """The result of an edit: valid, polygonal, without the pieces and holes at or below
    the tolerance that cutting along a border a hair away leaves behind."""
    parts = []
    for p in _pieces(_polygonal(g), tolerance_m2):
        holes = [r for r in p.interiors if shapely.Polygon(r).area > tolerance_m2]
        parts.append(shapely.Polygon(p.exterior, holes))
    if not parts:
        return shapely.Polygon()
    return _polygonal(parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts))


def shared_length(a: BaseGeometry, b: BaseGeometry, eps: float = HAIR_M) -> float:
    """Metres of border two metric polygons share, robust to coordinates a hair apart.

    The length of each one's outline that runs within ``eps`` of the other, averaged
    over the two: a border digitised twice, up to ``eps`` apart, counts in full, and a
    corner touching counts about ``2 eps`` (the two edges that meet there).
    """
    return _near_length(a.boundary, b.buffer(eps), b.boundary, a.buffer(eps))


def _near_length(
    outline_a: BaseGeometry, grown_b: BaseGeometry, outline_b: BaseGeometry, grown_a: BaseGeometry
) -> float:
    return float(
        (outline_a.intersection(grown_b).length + outline_b.intersection(grown_a).length) / 2
    )


class _Outlines:
    """Each polygon's outline and its outline grown by ``HAIR_M``, made once, for the
    pairwise border lengths of many polygons."""

    def __init__(self, polys: list[BaseGeometry]) -> None:
        self.outline = [p.boundary for p in polys]
        self.grown = [p.buffer(HAIR_M) for p in polys]
        self.tree = shapely.STRtree(self.grown)

    def pairs(self) -> list[tuple[int, int]]:
        found = self.tree.query(self.grown, predicate="intersects")
        return sorted({(int(i), int(j)) for i, j in zip(*found, strict=True) if i < j})

    def shared(self, i: int, j: int) -> float:
        return _near_length(self.outline[i], self.grown[j], self.outline[j], self.grown[i])


def _components(parts: list[BaseGeometry]) -> list[list[int]]:
    """Indexes of ``parts`` grouped into the pieces they form through shared edges
    (a shared point does not join), the largest piece (by area) first."""
    outlines = _Outlines(parts)
    parent = list(range(len(parts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in outlines.pairs():
        if outlines.shared(i, j) > EDGE_M:
            parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(parts)):
        groups.setdefault(root(i), []).append(i)
    return sorted(groups.values(), key=lambda g: (-sum(parts[i].area for i in g), min(g)))


_REASON_POINT = re.compile(r"\[\s*([-+\d.eE]+)\s+([-+\d.eE]+)\s*\]")


def _invalid(geom: BaseGeometry) -> tuple[str, BaseGeometry | None]:
    """shapely's reason a lon/lat geometry is invalid, without its coordinates, and the
    point it names (lon/lat) if any."""
    reason = shapely.is_valid_reason(geom)
    found = _REASON_POINT.search(reason)
    head = reason.split("[", 1)[0].strip() or reason
    if not found:
        return head, None
    return head, shapely.Point(float(found.group(1)), float(found.group(2)))


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

    Parameters
    ----------
    community_code : str
        Named in the messages.
    community_geom : BaseGeometry
        The community, lon/lat; its centroid picks the metric CRS.
    grids : list of DraftGrid
        The grids that should tile it.
    tolerance_m2 : float
        An overlap, gap or part outside at or below this many m² is drawing noise and
        not reported (each piece is judged on its own).
    households : (int, int)
        Target range; a grid outside it is a warning, not an error, because the figures
        are often estimates while the plan is drafted.

    Returns
    -------
    list of Problem
        Errors: a grid invalid (a bow-tie, with shapely's reason and point) or empty or
        not a polygon, a code used twice, a part outside the community, two grids
        overlapping, a gap (the community minus the grids; a hole in a grid no other
        grid fills is one, while a hole an enclaved grid fills is fine), a grid in parts
        that do not share an edge. Warnings: households outside ``households``. Errors
        first, then by kind (:data:`KIND_ORDER`), grids and size: the same input always
        gives the same list.
    """
    m = Metric(community_geom)
    community = _polygonal(m.to(community_geom))
    problems: list[Problem] = []
    by_code: dict[str, list[BaseGeometry]] = {}
    shapes: list[tuple[str, BaseGeometry]] = []
    for g in grids:
        geom = g.geom
        by_code.setdefault(g.code, []).append(geom)
        if geom is None or geom.is_empty:
            problems.append(
                Problem("empty", "error", (g.code,), shapely.Polygon(), None,
                        f"grid {g.code} has no geometry")
            )  # fmt: skip
            continue
        if geom.geom_type not in ("Polygon", "MultiPolygon"):
            problems.append(
                Problem("invalid", "error", (g.code,), geom, None,
                        f"grid {g.code} is a {geom.geom_type}, not a polygon "
                        f"{m.near(m.to(geom))}")
            )  # fmt: skip
            continue
        if not geom.is_valid:
            reason, point = _invalid(geom)
            at = f" at {point.x:.6f}, {point.y:.6f}" if point is not None else ""
            problems.append(
                Problem("invalid", "error", (g.code,), point if point is not None else geom,
                        None, f"grid {g.code} is not a valid polygon: {reason}{at}")
            )  # fmt: skip
            metric = _polygonal(m.to(shapely.make_valid(geom)))
            if metric.is_empty:
                continue  # collapsed to a line or a point: nothing else to check
        else:
            metric = _polygonal(m.to(geom))
        if metric.area <= tolerance_m2:
            problems.append(
                Problem("empty", "error", (g.code,), geom, metric.area,
                        f"grid {g.code} has no area ({metric.area:,.1f} m²) {m.near(metric)}")
            )  # fmt: skip
            continue
        shapes.append((g.code, metric))

    for code, geoms in sorted(by_code.items()):
        if len(geoms) > 1:
            drawn = [x for x in geoms if x is not None and not x.is_empty]
            where = shapely.GeometryCollection(drawn) if drawn else shapely.Polygon()
            problems.append(
                Problem("duplicate_code", "error", (code,), where, None,
                        f"grid code {code} is used by {len(geoms)} grids of community "
                        f"{community_code}")
            )  # fmt: skip

    for code, geom in shapes:
        for piece in _pieces(geom.difference(community), tolerance_m2):
            problems.append(
                Problem("outside", "error", (code,), m.back(piece), piece.area,
                        f"grid {code} reaches {piece.area:,.0f} m² outside community "
                        f"{community_code} {m.near(piece)}")
            )  # fmt: skip
        parts = _pieces(geom, tolerance_m2)
        groups = _components(parts) if len(parts) > 1 else []
        if len(groups) > 1:
            detached = shapely.union_all([parts[i] for grp in groups[1:] for i in grp])
            problems.append(
                Problem("noncontiguous", "error", (code,), m.back(detached), detached.area,
                        f"grid {code} is in {len(groups)} separate parts; {detached.area:,.0f} "
                        f"m² lie apart from its main part {m.near(detached)}")
            )  # fmt: skip

    metric_geoms = [g for _, g in shapes]
    tree = shapely.STRtree(metric_geoms)
    pairs = sorted(
        {
            (min(int(i), int(j)), max(int(i), int(j)))
            for i, j in zip(*tree.query(metric_geoms, predicate="intersects"), strict=True)
            if i != j
        }
    )
    for i, j in pairs:
        (a, ga), (b, gb) = shapes[i], shapes[j]
        a, b = sorted((a, b))
        for piece in _pieces(ga.intersection(gb), tolerance_m2):
            problems.append(
                Problem("overlap", "error", (a, b), m.back(piece), piece.area,
                        f"grids {a} and {b} overlap by {piece.area:,.0f} m² {m.near(piece)}")
            )  # fmt: skip

    covered = shapely.union_all(metric_geoms) if shapes else shapely.Polygon()
    gaps = _pieces(community.difference(covered), tolerance_m2)
    if gaps:
        outlines = _Outlines(metric_geoms)
    for piece in gaps:
        grown_piece, outline_piece = piece.buffer(HAIR_M), piece.boundary
        near = sorted(
            {
                shapes[int(k)][0]
                for k in outlines.tree.query(grown_piece, predicate="intersects")
                if _near_length(
                    outlines.outline[int(k)], grown_piece, outline_piece, outlines.grown[int(k)]
                )
                > EDGE_M
            }
        )
        # a piece enclosed by one grid's outline is a hole in that grid nobody fills
        inside = sorted(
            code
            for code, g in shapes
            if any(shapely.Polygon(p.exterior).contains(piece) for p in _polygons(g))
        )
        if inside:
            what = (
                f"a hole of {piece.area:,.0f} m² in grid {', '.join(inside)} is filled by no grid"
            )
        else:
            what = f"{piece.area:,.0f} m² of community {community_code} belong to no grid"
        problems.append(
            Problem("gap", "error", tuple(inside or near), m.back(piece), piece.area,
                    f"{what} {m.near(piece)}"
                    + (f" (next to {', '.join(near)})" if near and not inside else ""))
        )  # fmt: skip

    low, high = households
    for g in grids:
        if g.households < low or g.households > high:
            over = g.households > high
            problems.append(
                Problem("households_high" if over else "households_low", "warning", (g.code,),
                        g.geom if g.geom is not None else shapely.Polygon(), None,
                        f"grid {g.code} has {g.households} households, "
                        f"{'above' if over else 'below'} the target {low}-{high}")
            )  # fmt: skip

    severity = {"error": 0, "warning": 1}
    return sorted(
        problems,
        key=lambda p: (
            severity[p.severity],
            KIND_ORDER.index(p.kind),
            p.grids,
            -(p.size_m2 or 0.0),
            p.message,
        ),
    )


# --------------------------------------------------------------------------- metrics


def _compactness(g: BaseGeometry) -> float:
    """4πA/P² of a metric polygon (holes count in the perimeter: a ring is not compact)."""
    return 4 * math.pi * g.area / g.length**2 if g.length > 0 else 0.0


def polsby_popper(geom_lonlat: BaseGeometry) -> float:
    """Compactness 4πA/P² measured in metres: 1 for a disc, π/4 for a square.

    Measured in the geometry's own UTM zone; degrees would stretch it by the cosine of
    the latitude and make an east-west rectangle look more compact than it is.
    """
    m = Metric(geom_lonlat)
    return _compactness(_polygonal(m.to(geom_lonlat)))


def cut_length(grids_m: list[BaseGeometry]) -> float:
    """Metres of border between metric grids: the sum, over neighbouring pairs, of the
    border each pair shares (:func:`shared_length`).

    On a clean tiling this is (sum of the grid perimeters - the community perimeter) / 2;
    measured pair by pair it stays right where that formula does not: a gap or a part
    outside (whose edges are nobody's border), and borders digitised twice a hair apart
    (where the union's outline picks up a zigzag of slivers).
    """
    outlines = _Outlines([g for g in grids_m if not g.is_empty])
    return sum(outlines.shared(i, j) for i, j in outlines.pairs())


def metrics(
    community_geom: BaseGeometry,
    grids: list[DraftGrid],
    *,
    households: tuple[int, int] = (300, 500),
) -> dict[str, Any]:
    """The figures planners compare two drafts by.

    Returns
    -------
    dict
        ``count``; ``households_min``/``_median``/``_max``; ``within_target_share``
        (0..1, grids whose households lie in ``households``); ``compactness_mean`` and
        ``compactness_min`` (Polsby-Popper, see :func:`polsby_popper`); ``cut_length_m``
        (metres of border between grids, see :func:`cut_length`: fewer metres of border
        for the same number of grids means simpler patrol boundaries). All measured in
        the community's UTM zone; None where there are no grids.
    """
    m = Metric(community_geom)
    hh = [g.households for g in grids]
    metric = [_polygonal(m.to(g.geom)) for g in grids if g.geom is not None and not g.geom.is_empty]
    metric = [g for g in metric if not g.is_empty]
    pp = [_compactness(g) for g in metric]
    low, high = households
    return {
        "count": len(grids),
        "households_min": min(hh) if hh else None,
        "households_median": statistics.median(hh) if hh else None,
        "households_max": max(hh) if hh else None,
        "within_target_share": (
            round(sum(low <= h <= high for h in hh) / len(hh), 3) if hh else None
        ),
        "compactness_mean": round(statistics.fmean(pp), 3) if pp else None,
        "compactness_min": round(min(pp), 3) if pp else None,
        "cut_length_m": round(cut_length(metric), 1) if metric else 0.0,
    }


def _differs(a: BaseGeometry, b: BaseGeometry, m: Metric, tolerance_m2: float) -> bool:
    if a is None or b is None or a.is_empty or b.is_empty:
        return (a is None or a.is_empty) != (b is None or b.is_empty)
    ga, gb = _polygonal(m.to(a)), _polygonal(m.to(b))
    return bool(ga.symmetric_difference(gb).area > tolerance_m2)


def compare(
    community_geom: BaseGeometry,
    current: list[DraftGrid],
    plan: list[DraftGrid],
    *,
    households: tuple[int, int] = (300, 500),
    tolerance_m2: float = TOLERANCE_M2,
) -> dict[str, Any]:
    """Current grids against a plan's.

    Returns
    -------
    dict
        ``{"current": metrics, "plan": metrics, "changed": [...], "removed": [...]}``:
        ``changed`` the plan's codes that are new or whose shape differs from the current
        grid of that code by more than ``tolerance_m2`` (a redraw that only moved
        vertices a hair is not a change); ``removed`` the current codes the plan drops.
        Both sorted.
    """
    m = Metric(community_geom)
    now = {g.code: g for g in current}
    changed = {
        g.code
        for g in plan
        if g.code not in now or _differs(now[g.code].geom, g.geom, m, tolerance_m2)
    }
    codes = {g.code for g in plan}
    return {
        "current": metrics(community_geom, current, households=households),
        "plan": metrics(community_geom, plan, households=households),
        "changed": sorted(changed),
        "removed": sorted(c for c in now if c not in codes),
    }


# --------------------------------------------------------------------------- edits


def _valid_grid(geom: BaseGeometry, m: Metric, what: str) -> BaseGeometry:
    """``geom`` in metres, or a ValidationError if it is not a valid polygon (an edit
    builds on the grid as it is; validate() is where a broken one is reported)."""
    if geom is None or geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
        kind = "nothing" if geom is None or geom.is_empty else f"a {geom.geom_type}"
        raise ValidationError(f"{what} is {kind}, not a polygon", field="geometry")
    if not geom.is_valid:
        reason, point = _invalid(geom)
        at = f" at {point.x:.6f}, {point.y:.6f}" if point is not None else ""
        raise ValidationError(
            f"{what} is not a valid polygon ({reason}{at}); fix it first", field="geometry"
        )
    return _polygonal(m.to(geom))


def split(geom: BaseGeometry, line: BaseGeometry) -> list[BaseGeometry]:
    """The parts of a grid cut by a drawn line that crosses it from side to side.

    A line that zigzags may cut more than two parts. A sliver at or below the tolerance
    (where the line clips a corner) joins the part it shares most border with, so the
    parts' areas add up to the grid's. Refused, with the reason: a line that misses the
    grid, or ends inside it.
    """
    from shapely.ops import split as cut

    m = Metric(geom)
    g = _valid_grid(geom, m, "the grid")
    if line is None or line.geom_type not in ("LineString", "MultiLineString") or line.is_empty:
        raise ValidationError("the cut must be a line", field="line")
    ln = m.to(line)
    if not ln.intersects(g):
        raise ValidationError(
            f"the line does not cross the grid: it passes {ln.distance(g):,.0f} m away",
            field="line",
        )
    out: list[BaseGeometry] = []
    was_cut = False
    for poly in _polygons(g):
        got = _polygons(cut(poly, ln))
        big = [p for p in got if p.area > TOLERANCE_M2]
        was_cut = was_cut or len(big) > 1
        for sliver in (p for p in got if p.area <= TOLERANCE_M2):
            if big:
                k = max(range(len(big)), key=lambda i: shared_length(big[i], sliver))
                big[k] = _tidy(shapely.union_all([big[k], sliver]))
        out.extend(big)
    if not was_cut:
        inside = [
            p for p in shapely.get_parts(shapely.boundary(ln)) if g.buffer(-HAIR_M).contains(p)
        ]
        where = f": it ends inside the grid {m.near(inside[0])}" if inside else ""
        raise ValidationError(
            f"the line does not cut the grid in two{where}; draw it across, from outside "
            "to outside",
            field="line",
        )
    return [m.back(p) for p in out]


def merge(a: BaseGeometry, b: BaseGeometry) -> BaseGeometry:
    """Two neighbouring grids as one; they must share an edge, not only a point, so the
    merged grid is one piece."""
    m = Metric(shapely.union_all([a, b]))
    ga, gb = _valid_grid(a, m, "the first grid"), _valid_grid(b, m, "the second grid")
    shared = shared_length(ga, gb)
    if shared < EDGE_M:
        gap = ga.distance(gb)
        how = f"they are {gap:,.1f} m apart" if gap > HAIR_M else "they touch at a point only"
        raise ValidationError(
            f"the grids are not neighbours: {how} {m.near(gb)}; merge grids that share a border",
            field="other",
        )
    whole = _tidy(shapely.union_all([ga, gb]))
    if len(_polygons(whole)) > 1:
        # the shared border was digitised twice a hair apart: close the hair-wide strip
        # between them (kept within the two grids' hull, so nothing pokes out at its ends)
        strip = ga.buffer(HAIR_M).intersection(gb.buffer(HAIR_M))
        strip = strip.intersection(shapely.union_all([ga, gb]).convex_hull)
        whole = _tidy(shapely.union_all([ga, gb, strip]))
    return m.back(whole)


def reassign(
    donor: BaseGeometry, receiver: BaseGeometry, block: BaseGeometry
) -> tuple[BaseGeometry, BaseGeometry]:
    """Move the part of ``block`` inside ``donor`` to ``receiver``.

    Returns
    -------
    (new donor, new receiver)
        lon/lat; their areas add up to the two grids' before.

    Raises
    ------
    ValidationError
        The block covers none of the donor, the moved part does not reach the receiver
        along an edge (or part of it does not, which would leave the receiver in
        pieces), it takes the whole donor (merge instead), or the donor would fall into
        separate parts.
    """
    m = Metric(shapely.union_all([donor, receiver]))
    d = _valid_grid(donor, m, "the giving grid")
    r = _valid_grid(receiver, m, "the receiving grid")
    b = _polygonal(m.to(block))
    if b.is_empty:
        raise ValidationError("the block is not a polygon", field="block")
    part = _tidy(d.intersection(b))
    if part.is_empty:
        raise ValidationError("the block does not cover any of the giving grid", field="block")
    rest = _tidy(d.difference(part))
    if rest.is_empty:
        raise ValidationError("the block takes the whole giving grid: merge instead", field="block")
    pieces = _polygons(part)
    groups = _components([r, *pieces])
    apart = [pieces[i - 1] for grp in groups if 0 not in grp for i in grp]
    if len(apart) == len(pieces):
        raise ValidationError(
            f"the block does not touch the grid that should take it {m.near(part)}",
            field="block",
        )
    if apart:
        lost = shapely.union_all(apart)
        raise ValidationError(
            f"{lost.area:,.0f} m² of the block do not touch the grid that should take it "
            f"{m.near(lost)}; draw the block up to that grid",
            field="block",
        )
    rest_parts = _polygons(rest)
    if len(rest_parts) > 1 and len(_components(rest_parts)) > 1:
        raise ValidationError(
            f"the giving grid would fall into {len(_components(rest_parts))} separate parts "
            f"{m.near(part)}; draw the block differently",
            field="block",
        )
    return m.back(rest), m.back(_tidy(shapely.union_all([r, part])))


def _onto(g: BaseGeometry, reference: BaseGeometry, tolerance_m: float) -> BaseGeometry:
    """``g`` with each vertex within ``tolerance_m`` of the ``reference`` lines moved to
    the nearest point on them (shapely.snap only moves vertices onto the reference's
    vertices, not onto the middle of its edges)."""
    coords = shapely.get_coordinates(g)
    if not len(coords) or reference.is_empty:
        return g
    points = shapely.points(coords)
    dist = shapely.distance(points, reference)
    move = (dist > 0) & (dist <= tolerance_m)
    if not move.any():
        return g
    ends = shapely.get_coordinates(shapely.shortest_line(points[move], reference))
    coords = coords.copy()
    coords[move] = ends[1::2]
    return shapely.set_coordinates(g, coords)


def snap(
    geom: BaseGeometry,
    community_geom: BaseGeometry,
    neighbours: list[BaseGeometry],
    *,
    tolerance_m: float = 2.0,
) -> BaseGeometry:
    """A drawn shape fitted to its place, so no sliver of overlap or gap is left.

    Vertices within ``tolerance_m`` of the community border or of a neighbour's edge move
    onto it (to the other's vertex where one is that close, shapely.snap in metres, else
    to the nearest point of the edge); then the shape is clipped to the community and the
    neighbours are cut out of it. A shape drawn past a border is cut back; a shape
    stopping short of it by less than ``tolerance_m`` is drawn out to it.

    Raises
    ------
    ValidationError
        The drawn shape is not a valid polygon (a bow-tie: redraw it, it is not guessed
        at), or nothing of it is left inside the community and outside the neighbours.
    """
    m = Metric(community_geom)
    g = _valid_grid(geom, m, "the drawn shape")
    community = _polygonal(m.to(community_geom))
    others = [_polygonal(m.to(n)) for n in neighbours if n is not None and not n.is_empty]
    others = [o for o in others if not o.is_empty]
    reference = shapely.union_all([community.boundary, *[o.boundary for o in others]])
    g = shapely.snap(g, reference, tolerance_m)
    g = _polygonal(_onto(g, reference, tolerance_m))
    g = g.intersection(community)
    if others:
        g = g.difference(shapely.union_all(others))
    g = _tidy(g)
    if g.is_empty:
        raise ValidationError(
            "the shape lies outside the community or under its neighbours", field="geometry"
        )
    return m.back(g)


def households_share(new_geom: BaseGeometry, old_grids: list[DraftGrid]) -> tuple[int, int]:
    """Households and population of a drawn grid, from the old grids it overlaps, each in
    proportion to the share of its area that falls inside.

    Residents are taken as spread evenly over each old grid: the best guess a planner has
    before counting, and it keeps the total: grids that tile the old ones share out
    exactly the old figures (up to rounding).
    """
    if not old_grids or new_geom is None or new_geom.is_empty:
        return 0, 0
    m = Metric(new_geom)
    g = _polygonal(m.to(new_geom))
    if g.is_empty:
        return 0, 0
    households = population = 0.0
    frame = shapely.box(*new_geom.bounds)
    for old in old_grids:
        if (
            old.geom is None
            or old.geom.is_empty
            or not frame.intersects(shapely.box(*old.geom.bounds))
        ):
            continue  # measured only where the frames meet: a community has dozens of grids
        o = _polygonal(m.to(old.geom))
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
    grids (kept as they are) hold their part and take nothing.

    The vertices of the grids are kept as they are (see :func:`_tidy`), so grids that
    met exactly still meet exactly, and each grid keeps the pieces it was given.
    """
    if not grids:
        return []
    m = Metric(community_geom)
    community = _polygonal(m.to(community_geom))
    held = [_polygonal(m.to(g)) for g in fixed or []]
    if held:
        community = _polygonal(community.difference(shapely.union_all(held)))
    shapes = [_polygonal(_polygonal(m.to(g)).intersection(community)) for g in grids]
    covered = shapely.union_all(shapes)
    for piece in _pieces(community.difference(covered), 0.0):
        shared = [shared_length(s, piece) if not s.is_empty else 0.0 for s in shapes]
        best = max(range(len(shapes)), key=lambda i: (shared[i], -shapes[i].distance(piece)))
        if shared[best] <= EDGE_M:
            best = min(range(len(shapes)), key=lambda i: shapes[i].distance(piece))
        shapes[best] = shapely.union_all([shapes[best], piece])
    return [m.back(_tidy(s)) for s in shapes]
