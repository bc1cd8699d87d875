"""Boundaries from a list of centre points: cells built inside their parents.

Official lists of subdistricts and communities often give a centre point, or nothing,
rather than a polygon (the statistical division codes with Amap's centre points, for
one). A service still needs polygons to route incidents and count staff per km², so each
unit gets the Voronoi cell of its point inside its parent, the method the demo uses. Units
without a point get a seed placed inside their parent as far as possible from the other
seeds. Everything made up is listed in the report as generated, for the planner to redraw
later; the cells then go through the same checks and the same one-transaction write as a
polygon file (:func:`mapsvc.services.boundaries.import_frame`).

Cells are built in the parent's UTM zone (metres, so "nearest point" means nearest on the
ground), and a boundary shared by two cells is computed once, so it stays shared after
the conversion back to WGS84.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from mapsvc.core.errors import ValidationError
from mapsvc.services.boundaries import (
    LEVELS,
    FieldNames,
    ImportRejected,
    ImportReport,
    Problem,
    import_frame,
    point_columns,
)
from mapsvc.services.chinacrs import points_to_wgs84
from mapsvc.services.geo import check_crs, first_out_of_range, utm_epsg

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

#: the columns of the statistical division list as published without a header
#: (``Vonng/adcode``: code, parent, name, level, rank, ..., longitude, latitude, ...)
ADCODE_COLUMNS = (
    "code",
    "parent",
    "name",
    "level",
    "rank",
    "adcode",
    "post_code",
    "area_code",
    "ur_code",
    "municipality",
    "virtual",
    "dummy",
    "longitude",
    "latitude",
    "center_wkb_hex",
    "province",
    "city",
    "county",
    "town",
    "village",
)
#: the rank of each level in that list (3 county, 4 subdistrict or town, 5 community)
ADCODE_RANK = {"subdistricts": "4", "communities": "5"}
#: the levels that can be built from points (a district outline is always published)
POINT_LEVELS = tuple(ADCODE_RANK)
#: the longest parent edge cells are cut along, in degrees (about 30 m)
MAX_EDGE_DEG = 0.0003
#: candidate seed positions tried per parent, at least (more for parents with many units)
CANDIDATES = 4000


@dataclass
class PointRow:
    """One unit of the list: its 1-based line in the file, code, name, parent and point."""

    line: int
    code: str
    name: str
    parent: str | None
    lon: float | None
    lat: float | None


def _is_adcode_list(first: list[str]) -> bool:
    return len(first) == len(ADCODE_COLUMNS) and re.fullmatch(r"\d{12}", first[0]) is not None


def read_points(path: Path, level: str) -> list[PointRow]:
    """The units of a point list: a CSV with a header (code, name, parent_code, and
    longitude/latitude columns, which may be empty), or the statistical division list as
    published (no header, the rows of ``level``'s rank kept)."""
    if path.suffix.lower() not in (".csv", ".txt"):
        raise ValidationError(
            f"{path}: --from-points reads a CSV list (code, name, parent_code, longitude, "
            "latitude)",
            field="file",
        )
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f))
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    if not rows:
        raise ValidationError(f"{path}: the file is empty")
    if _is_adcode_list(rows[0]):
        header, body, first_line = list(ADCODE_COLUMNS), rows, 1
        rank = ADCODE_RANK[level]
        body_lines = [(n, r) for n, r in enumerate(body, first_line) if len(r) > 4 and r[4] == rank]
        parent_col = "parent"
    else:
        header, body_lines = rows[0], list(enumerate(rows[1:], 2))
        parent_col = next((c for c in ("parent_code", "parent") if c in header), None)
    cols = point_columns(header)
    missing = [c for c in ("code", "name") if c not in header]
    if cols is None or missing:
        need = ", ".join([*missing, *([] if cols else ["longitude", "latitude"])])
        raise ValidationError(
            f"{path}: a point list needs the columns {need}; it has: {', '.join(header)}",
            field="file",
        )
    at = {c: header.index(c) for c in header}

    def cell(r: list[str], col: str | None) -> str | None:
        if col is None or at[col] >= len(r):
            return None
        return r[at[col]].strip() or None

    out, problems = [], []
    for line, r in body_lines:
        code, name = cell(r, "code"), cell(r, "name")
        lon_s, lat_s = cell(r, cols[0]), cell(r, cols[1])
        try:
            lon = float(lon_s) if lon_s else None
            lat = float(lat_s) if lat_s else None
        except ValueError:
            problems.append(f"line {line}: longitude/latitude {lon_s!r}, {lat_s!r} is not a number")
            continue
        if (lon is None) != (lat is None):
            problems.append(f"line {line}: only one of longitude and latitude is given")
            continue
        if not code or not name:
            problems.append(f"line {line}: no {'code' if not code else 'name'}")
            continue
        out.append(PointRow(line, code, name, cell(r, parent_col), lon, lat))
    if problems:
        raise ValidationError(f"{path}: " + "; ".join(problems[:20]), problems=problems)
    if not out:
        raise ValidationError(f"{path}: no {level} in the list")
    return out


def _seeds(parent_m: BaseGeometry, fixed: np.ndarray, n_new: int) -> np.ndarray:
    """``n_new`` positions inside ``parent_m`` (metres), each as far as possible from the
    seeds already there (greedy farthest-point sampling over a lattice of candidates)."""
    import shapely

    if n_new == 0:
        return np.empty((0, 2))
    minx, miny, maxx, maxy = parent_m.bounds
    count = max(CANDIDATES, 40 * (n_new + len(fixed)))
    step = max(((maxx - minx) * (maxy - miny) / count) ** 0.5, 1e-3)
    xs, ys = np.meshgrid(
        np.arange(minx + step / 2, maxx, step), np.arange(miny + step / 2, maxy, step)
    )
    xs, ys = xs.ravel(), ys.ravel()
    inside = shapely.contains_xy(parent_m, xs, ys)
    cand = np.column_stack([xs[inside], ys[inside]])
    if len(cand) < n_new:  # a sliver of a parent: points on its surface instead
        cand = (
            np.array([parent_m.representative_point().coords[0]] * n_new)
            + np.arange(n_new)[:, None] * 1e-3
        )
    if len(fixed):
        d = np.min(np.linalg.norm(cand[:, None, :] - fixed[None, :, :], axis=2), axis=1)
    else:  # first seed: the candidate deepest inside
        d = shapely.distance(shapely.points(cand), parent_m.boundary)
    chosen = []
    for _ in range(n_new):
        k = int(np.argmax(d))
        chosen.append(cand[k])
        d = np.minimum(d, np.linalg.norm(cand - cand[k], axis=1))
        d[k] = -1.0
    return np.array(chosen)


def _cells(
    parent_ll: BaseGeometry, seeds_given: np.ndarray, n_new: int
) -> tuple[list[BaseGeometry], np.ndarray]:
    """The cells of a parent's units, in WGS84, in the order of the seeds given followed by
    the ``n_new`` placed ones; and the placed seeds (WGS84)."""
    import shapely
    from pyproj import Transformer

    c = parent_ll.representative_point()
    epsg = utm_epsg(c.x, c.y)
    fwd = Transformer.from_crs(4326, epsg, always_xy=True)
    back = Transformer.from_crs(epsg, 4326, always_xy=True)
    # straight edges in degrees are curves in metres: cut long ones, so that a cell vertex
    # made on an edge in metres is still on it (to a millimetre) back in degrees
    dense = shapely.segmentize(parent_ll, MAX_EDGE_DEG)
    parent_m = shapely.transform(dense, lambda a: np.column_stack(fwd.transform(a[:, 0], a[:, 1])))
    given_m = (
        np.column_stack(fwd.transform(seeds_given[:, 0], seeds_given[:, 1]))
        if len(seeds_given)
        else np.empty((0, 2))
    )
    new_m = _seeds(parent_m, given_m, n_new)
    all_m = np.vstack([given_m, new_m])
    if len(all_m) == 1:
        cells = [parent_ll]
    else:
        vor = shapely.voronoi_polygons(shapely.multipoints(all_m), extend_to=parent_m, ordered=True)
        parts = shapely.get_parts(vor)
        cells_m = shapely.intersection(parts, parent_m)
        cells = [
            shapely.transform(g, lambda a: np.column_stack(back.transform(a[:, 0], a[:, 1])))
            for g in cells_m
        ]
    new_ll = np.column_stack(back.transform(new_m[:, 0], new_m[:, 1])) if len(new_m) else new_m
    return cells, new_ll


def import_from_points(
    session: Session,
    level: str,
    path: str | Path,
    *,
    crs: str | None = None,
    tolerance_m: float = 5.0,
) -> ImportReport:
    """Build ``level``'s polygons from the point list at ``path`` and import them.

    Parameters
    ----------
    session : Session
        The caller's transaction; nothing is written when anything is rejected.
    level : str
        'subdistricts' or 'communities'.
    crs : str
        The CRS of the points: a CSV does not say ('gcj02' for Amap's points, EPSG:4326 …).
    tolerance_m : float
        As for a polygon file (cells are cut from the parent, so they fit it).

    Each unit's parent is its ``parent_code`` (or the published list's parent) when given,
    else the parent its point lies in. A point outside its parent is not used: the unit
    gets a placed seed like one without a point, and the report says so.
    """
    import geopandas as gpd
    import shapely

    if level not in POINT_LEVELS:
        raise ValidationError(
            f"--from-points builds {' and '.join(POINT_LEVELS)}; not {level}", field="level"
        )
    path = Path(path)
    if not path.exists():
        raise ValidationError(f"{path}: no such file")
    if not crs:
        raise ValidationError(
            f"{path}: a CSV does not say which CRS its points are in; pass --crs "
            "(gcj02 for Amap's points, EPSG:4326, EPSG:4490, bd09)",
            field="crs",
        )
    crs_name = check_crs(crs, "--crs")
    units = read_points(path, level)
    table, parent_table, _fk = LEVELS[level]
    assert parent_table is not None
    parents = {
        code: shapely.from_wkb(bytes(wkb))
        for code, wkb in session.execute(
            sa.text(f"SELECT code, ST_AsBinary(geom) FROM {parent_table} ORDER BY code")
        )
    }
    if not parents:
        raise ValidationError(
            f"there is no {parent_table} yet: import the {parent_table} level first"
        )
    has = np.array([u.lon is not None for u in units])
    lon = np.array([u.lon if u.lon is not None else 0.0 for u in units])
    lat = np.array([u.lat if u.lat is not None else 0.0 for u in units])
    if has.any():
        bad = first_out_of_range(lon[has], lat[has])
        if bad is not None:
            u = [x for x, h in zip(units, has, strict=True) if h][bad[0]]
            raise ValidationError(f"{path}: line {u.line} (code {u.code}): {bad[1]}")
        lon[has], lat[has] = points_to_wgs84(lon[has], lat[has], crs_name)

    problems: list[Problem] = []
    by_parent: dict[str, list[int]] = {}
    moved: list[str] = []
    for i, u in enumerate(units):
        parent = u.parent
        if parent is not None and parent not in parents:
            problems.append(Problem(u.line, u.code, f"unknown {parent_table} code {parent!r}"))
            continue
        if parent is None:
            if not has[i]:
                problems.append(Problem(u.line, u.code, f"neither a point nor a {parent_table}"))
                continue
            pt = shapely.Point(lon[i], lat[i])
            parent = next((c for c, g in parents.items() if g.covers(pt)), None)
            if parent is None:
                problems.append(
                    Problem(u.line, u.code, f"its point lies outside every {parent_table}")
                )
                continue
        elif has[i] and not parents[parent].covers(shapely.Point(lon[i], lat[i])):
            has[i] = False
            moved.append(f"{u.code} {u.name}")
        by_parent.setdefault(parent, []).append(i)
    if problems:
        raise ImportRejected(str(path), problems)

    codes, names, parent_codes, geoms = [], [], [], []
    placed: list[str] = []
    for parent, members in sorted(by_parent.items()):
        given = [i for i in members if has[i]]
        new = [i for i in members if not has[i]]
        cells, _new_ll = _cells(
            parents[parent], np.column_stack([lon[given], lat[given]]), len(new)
        )
        for i, cell in zip([*given, *new], cells, strict=True):
            codes.append(units[i].code)
            names.append(units[i].name)
            parent_codes.append(parent)
            geoms.append(cell)
        placed += [f"{units[i].code} {units[i].name}" for i in new]
    generated = [
        f"{len(codes)} {level} are Voronoi cells of their points inside their {parent_table}, "
        f"not surveyed boundaries: redraw them when the real ones are known"
    ]
    if placed:
        generated.append(
            f"{len(placed)} had no usable point; their seeds were placed inside their "
            f"{parent_table}, as far as possible from the others: "
            + ", ".join(placed[:30])
            + (f", … and {len(placed) - 30} more" if len(placed) > 30 else "")
        )
    if moved:
        generated.append(
            f"{len(moved)} point(s) lay outside their {parent_table} and were not used: "
            + ", ".join(moved[:30])
        )
    frame = gpd.GeoDataFrame(
        {"code": codes, "name": names, "parent_code": parent_codes},
        geometry=geoms,
        crs="EPSG:4326",
    )
    report = import_frame(
        session,
        level,
        frame,
        "EPSG:4326",
        path,
        fields=FieldNames(parent="parent_code"),
        tolerance_m=tolerance_m,
        generated=generated,
    )
    report.source_crs = f"points in {crs_name}, cells generated"
    return report
