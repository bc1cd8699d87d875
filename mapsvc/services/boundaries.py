"""Import a planner's own boundaries: district, subdistricts, communities or grids.

Files: GeoJSON, GeoPackage, zipped Shapefile (anything GDAL reads through pyogrio). The
coordinates may be in any EPSG CRS (read from the file, or given), or in the Chinese web
datums GCJ-02 / BD-09, which pyproj cannot describe and :mod:`mapsvc.services.chinacrs`
converts explicitly. ``source_crs`` records what the data came in as.

An import is one transaction and all-or-nothing: every feature is checked first (empty or
invalid geometry, not a polygon, missing or duplicate code - within the file and against
the database -, unknown parent, outside its parent beyond a tolerance in metres, bad
numbers) and if any feature is rejected, nothing is written and every problem is reported
with the feature's index and code. Invalid geometry is repaired (``make_valid``) only when
the caller asks for it, and each repair is listed in the report.

Checks that need the database (parents, containment, areas, grid tiling) run in PostGIS on
a temporary table, measured on ``geography`` in square metres, never in degrees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from mapsvc.core.errors import ValidationError
from mapsvc.models import Community, District, Grid, Subdistrict
from mapsvc.services.chinacrs import CHINA_CRS, geometry_to_wgs84, normalize_crs_name
from mapsvc.services.geo import file_crs, geometry_lonlat_problem

if TYPE_CHECKING:
    from geopandas import GeoDataFrame
    from shapely import MultiPolygon
    from shapely.geometry.base import BaseGeometry

#: level -> (table, parent table, parent foreign key column)
LEVELS: dict[str, tuple[str, str | None, str | None]] = {
    "district": ("district", None, None),
    "subdistricts": ("subdistrict", "district", "district_id"),
    "communities": ("community", "subdistrict", "subdistrict_id"),
    "grids": ("grid", "community", "community_id"),
}
#: numeric fields each level stores
NUMBERS: dict[str, tuple[str, ...]] = {
    "district": (),
    "subdistricts": (),
    "communities": ("population", "households", "enterprises"),
    "grids": ("population", "households"),
}
#: the model of each level, whose columns size the code and the name
MODELS = {
    "district": District,
    "subdistricts": Subdistrict,
    "communities": Community,
    "grids": Grid,
}
CODE_LEN = {level: model.code.type.length for level, model in MODELS.items()}
NAME_LEN = {level: model.name.type.length for level, model in MODELS.items()}
SQM_REPORT = 1.0  # gaps/overlaps below one square metre are floating-point noise


@dataclass
class FieldNames:
    """Which attribute holds what; ``None`` means "the usual name, if the file has it"."""

    code: str = "code"
    name: str = "name"
    parent: str | None = None
    population: str | None = None
    households: str | None = None
    enterprises: str | None = None


@dataclass
class Problem:
    """One rejected feature: its 0-based index in the file, its code and what is wrong."""

    index: int
    code: str | None
    message: str

    def __str__(self) -> str:
        code = f" (code {self.code})" if self.code else ""
        return f"feature #{self.index}{code}: {self.message}"


@dataclass
class ImportReport:
    level: str
    file: str
    source_crs: str
    imported: int = 0
    #: (code, name, geodesic area km²) of every imported polygon, in file order
    areas: list[tuple[str, str, float]] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: grids only: (community code, gap m², overlap m²) where above 1 m²
    tiling: list[tuple[str, float, float]] = field(default_factory=list)
    #: what was made up rather than read (cells built from points, seeds placed)
    generated: list[str] = field(default_factory=list)
    #: checked only: the caller rolls the transaction back
    dry_run: bool = False

    @property
    def total_km2(self) -> float:
        return sum(a for _, _, a in self.areas)


class ImportRejected(ValidationError):
    """The file was not imported; ``problems`` lists every rejected feature."""

    def __init__(self, file: str, problems: list[Problem]) -> None:
        self.problems = problems
        shown = "\n".join(f"  {p}" for p in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(
            f"{file}: {len(problems)} feature(s) rejected, nothing imported:\n{shown}{more}",
            problems=[{"index": p.index, "code": p.code, "message": p.message} for p in problems],
        )


# --------------------------------------------------------------------------- reading

#: column names that hold a point's longitude and latitude, as lists and exports name them
LON_NAMES = ("longitude", "lon", "lng", "long", "x", "经度")
LAT_NAMES = ("latitude", "lat", "y", "纬度")


def point_columns(columns: list[str]) -> tuple[str, str] | None:
    """The (longitude, latitude) columns of a table, by their usual names, or None."""
    lower = {str(c).strip().lower(): c for c in columns}
    lon = next((lower[n] for n in LON_NAMES if n in lower), None)
    lat = next((lower[n] for n in LAT_NAMES if n in lower), None)
    return (lon, lat) if lon is not None and lat is not None else None


def read_features(
    path: str | Path, crs: str | None = None, encoding: str | None = None
) -> tuple[GeoDataFrame, str]:
    """Read ``path`` and return ``(GeoDataFrame as read, source_crs)``.

    ``crs`` overrides the file's CRS: an EPSG/pyproj string, or 'gcj02' / 'bd09'.
    ``encoding`` is for attribute text of Shapefiles without a ``.cpg`` (often GBK in
    China); GeoJSON and GeoPackage are always UTF-8.
    """
    import geopandas as gpd

    path = Path(path)
    if not path.exists():
        raise ValidationError(f"{path}: no such file")
    if not crs:  # the file's own CRS: one pyproj cannot read is an error, never WGS84
        file_crs(path)
    try:
        kw = {"encoding": encoding} if encoding else {}
        raw = gpd.read_file(path, engine="pyogrio", **kw)
    except Exception as exc:  # noqa: BLE001 - GDAL raises many types; all mean "unreadable"
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValidationError(
            f"{path}: cannot read it as GeoJSON, GeoPackage or zipped Shapefile ({msg})"
        ) from None
    from geopandas import GeoDataFrame

    if not isinstance(raw, GeoDataFrame) or "geometry" not in raw:
        hint = (
            "it has longitude/latitude columns: points, not polygons (a list of centre "
            "points imports with --from-points)"
            if point_columns(list(raw.columns)) is not None
            else "give polygons as GeoJSON, GeoPackage or zipped Shapefile"
        )
        raise ValidationError(f"{path}: the file is a table without geometry; {hint}")
    china = normalize_crs_name(crs) if crs else None
    if china in CHINA_CRS:
        if raw.crs is not None and not raw.crs.is_geographic:
            raise ValidationError(
                f"{path}: --crs {crs} needs longitude/latitude coordinates, but the file is "
                f"in the projected CRS {raw.crs.to_string()}"
            )
        source_crs = china
    elif crs:
        from pyproj import CRS
        from pyproj.exceptions import CRSError

        try:
            CRS.from_user_input(crs)
        except CRSError:
            raise ValidationError(
                f"unknown CRS {crs!r}: use EPSG:<code>, gcj02 or bd09", field="crs"
            ) from None
        raw = raw.set_crs(crs, allow_override=True)
        source_crs = crs.upper() if crs.lower().startswith("epsg:") else crs
    else:
        if raw.crs is None:
            raise ValidationError(
                f"{path}: the file does not say which CRS it is in; pass --crs "
                "(EPSG:4326, EPSG:4490, gcj02, bd09, ...)"
            )
        epsg = raw.crs.to_epsg()
        source_crs = f"EPSG:{epsg}" if epsg else raw.crs.to_string()[:40]
    return raw, source_crs


def to_wgs84(raw: GeoDataFrame, source_crs: str) -> np.ndarray:
    """Geometries of ``raw`` in WGS84 (array), converting GCJ-02/BD-09 explicitly."""
    import shapely

    geoms = np.asarray(raw.geometry.values, dtype=object)
    if source_crs in CHINA_CRS:
        ok = np.array([g is not None and not g.is_empty for g in geoms])
        out = geoms.copy()
        if ok.any():
            out[ok] = geometry_to_wgs84(shapely.force_2d(geoms[ok]), source_crs)
        return out
    if raw.crs is not None and raw.crs.to_epsg() in (4326, 4490):
        return shapely.force_2d(geoms) if len(geoms) else geoms  # CGCS2000 as-is (cm)
    return shapely.force_2d(np.asarray(raw.to_crs(4326).geometry.values, dtype=object))


# --------------------------------------------------------------------------- the import


def _field(
    raw: GeoDataFrame, wanted: str | None, default: str | None, what: str, path: Path
) -> str | None:
    """Column for ``what``: the one named (must exist), else ``default`` if present."""
    cols = [c for c in raw.columns if c != raw.geometry.name]
    if wanted is not None:
        if wanted not in cols:
            raise ValidationError(
                f"{path}: no field {wanted!r} for the {what}; the file has: {', '.join(cols)}",
                field=what,
            )
        return wanted
    return default if default in cols else None


def text_value(v: object) -> str | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    s = str(v).strip()
    return s or None


def import_boundaries(
    session: Session,
    level: str,
    path: str | Path,
    *,
    crs: str | None = None,
    encoding: str | None = None,
    fields: FieldNames | None = None,
    code: str | None = None,
    name: str | None = None,
    repair: bool = False,
    tolerance_m: float = 5.0,
    tiling: str = "warn",
) -> ImportReport:
    """Check every feature of ``path`` and, if all pass, insert them at ``level``.

    Parameters
    ----------
    session : Session
        The caller's transaction (nothing is committed here; on
        :class:`ImportRejected` the caller rolls back, and nothing was written anyway).
    level : str
        'district', 'subdistricts', 'communities' or 'grids'.
    crs : str, optional
        Overrides the file's CRS: 'EPSG:xxxx', 'gcj02' or 'bd09'.
    encoding : str, optional
        Text encoding of a Shapefile's attributes when it has no ``.cpg`` (e.g. 'gbk').
    fields : FieldNames
        Attribute names. Without a parent field (and no ``parent_code`` column) each
        feature's parent is the one it overlaps most, which suits files cut from the
        parent layer.
    code, name : str, optional
        The code and name of a file that holds one polygon and no attributes (a bare
        GeoJSON geometry, as outline services publish them); they override the file's
        fields.
    repair : bool
        Repair invalid geometry with ``make_valid`` (and report it) instead of rejecting.
    tolerance_m : float
        How far (metres) a feature may stick out of its parent: digitising slack.
    tiling : str
        Grids only: 'warn' reports gaps/overlaps between the grids of a community above
        1 m²; 'error' rejects the import for them.
    """

    if level not in LEVELS:
        raise ValidationError(f"unknown level {level!r}; one of {', '.join(LEVELS)}")
    path = Path(path)
    raw, source_crs = read_features(path, crs, encoding)
    fields = fields or FieldNames()
    attributes = [c for c in raw.columns if c != raw.geometry.name]
    if code is not None or name is not None:
        if code is None or (name is None and fields.name not in attributes):
            raise ValidationError(
                f"{path}: give both --code and --name for a file without those fields",
                field="code" if code is None else "name",
            )
        if len(raw) != 1:
            raise ValidationError(
                f"{path}: --code and --name name one polygon; the file has {len(raw)} "
                f"features (use --code-field/--name-field for files with attributes)",
                field="code",
            )
        raw = raw.assign(_code=[code], **({"_name": [name]} if name is not None else {}))
        fields = FieldNames(
            code="_code",
            name="_name" if name is not None else fields.name,
            parent=fields.parent,
            population=fields.population,
            households=fields.households,
            enterprises=fields.enterprises,
        )
    elif not attributes:
        raise ValidationError(
            f"{path}: the file has no attributes (a bare geometry, as outline services "
            "publish them): pass --code CODE --name NAME",
            field="code",
        )
    return import_frame(
        session,
        level,
        raw,
        source_crs,
        path,
        fields=fields,
        repair=repair,
        tolerance_m=tolerance_m,
        tiling=tiling,
    )


def import_frame(
    session: Session,
    level: str,
    raw: GeoDataFrame,
    source_crs: str,
    path: Path,
    *,
    fields: FieldNames,
    repair: bool = False,
    tolerance_m: float = 5.0,
    tiling: str = "warn",
    generated: list[str] | None = None,
) -> ImportReport:
    """Check and insert the features of ``raw`` (as read, coordinates in ``source_crs``);
    ``path`` names them in messages. See :func:`import_boundaries`, which reads a file
    into this, and :func:`import_from_points`, which builds the polygons first."""
    import shapely
    from shapely.validation import explain_validity

    if level not in LEVELS:
        raise ValidationError(f"unknown level {level!r}; one of {', '.join(LEVELS)}")
    if tiling not in ("warn", "error"):
        raise ValidationError("tiling must be 'warn' or 'error'")
    table, parent_table, fk = LEVELS[level]
    report = ImportReport(
        level=level, file=str(path), source_crs=source_crs, generated=list(generated or [])
    )
    if len(raw) == 0:
        raise ValidationError(f"{path}: the file has no features")
    code_col = _field(raw, fields.code, None, "code", path)
    name_col = _field(raw, fields.name, None, "name", path)
    parent_col = (
        _field(raw, fields.parent, "parent_code", "parent code", path) if parent_table else None
    )
    num_cols = {
        n: _field(raw, getattr(fields, n), n, n, path) for n in NUMBERS[level]
    }  # population / households / enterprises

    problems: list[Problem] = []
    src_geoms = np.asarray(raw.geometry.values, dtype=object)
    codes = [text_value(v) for v in raw[code_col]]
    col_values = {
        c: raw[c].tolist() for c in {name_col, parent_col, *num_cols.values()} if c is not None
    }
    seen: dict[str, int] = {}
    rows: list[dict] = []
    # 1. per-feature checks in the file's own coordinates (where the planner can find them)
    fixed = src_geoms.copy()
    geographic = source_crs in CHINA_CRS or (raw.crs is not None and raw.crs.is_geographic)
    for i, (g, code) in enumerate(zip(src_geoms, codes, strict=True)):
        bad = []
        if code is None:
            bad.append(f"no code in field {code_col!r}")
        elif len(code) > CODE_LEN[level]:
            bad.append(f"code longer than {CODE_LEN[level]} characters")
        elif code in seen:
            bad.append(f"duplicate code (also feature #{seen[code]})")
        else:
            seen[code] = i
        if g is None or g.is_empty:
            bad.append("empty geometry")
        elif g.geom_type not in ("Polygon", "MultiPolygon"):
            bad.append(f"geometry is a {g.geom_type}, expected Polygon or MultiPolygon")
        elif geographic and (off := geometry_lonlat_problem(g)) is not None:
            bad.append(f"{off} (coordinates in {source_crs})")
        elif not g.is_valid:
            why = explain_validity(g)
            if repair:
                fixed[i] = _polygonal(shapely.make_valid(g))
                if fixed[i].is_empty:
                    bad.append(f"invalid geometry ({why}) and nothing polygonal is left")
                else:
                    report.repairs.append(
                        f"feature #{i} (code {code}): repaired with make_valid: {why} "
                        f"(coordinates in {source_crs})"
                    )
            else:
                bad.append(
                    f"invalid geometry: {why} (coordinates in {source_crs}); "
                    "fix it or pass --repair"
                )
        name = text_value(col_values[name_col][i]) if name_col else None
        if not name:
            bad.append(f"no name in field {name_col!r}")
        elif len(name) > NAME_LEN[level]:
            bad.append(f"name in field {name_col!r} longer than {NAME_LEN[level]} characters")
        nums = {}
        for n, col in num_cols.items():
            v = col_values[col][i] if col else 0
            try:
                fv = float(v) if text_value(v) is not None else 0.0
                if fv < 0 or not fv.is_integer():
                    raise ValueError
                nums[n] = int(fv)
            except (TypeError, ValueError):
                bad.append(f"{n} {v!r} in field {col!r} is not a whole number ≥ 0")
        parent = text_value(col_values[parent_col][i]) if parent_col else None
        problems.extend(Problem(i, code, m) for m in bad)
        rows.append({"idx": i, "code": code, "name": name, "parent_code": parent, **nums})
    rejected = {p.index for p in problems}
    good = [r["idx"] for r in rows if r["idx"] not in rejected]
    wgs = np.empty(len(rows), dtype=object)
    if good:
        sub = raw.iloc[good].copy()
        sub = sub.set_geometry(list(fixed[good]), crs=raw.crs)
        wgs[good] = to_wgs84(sub, source_crs)
    for i in list(good):
        g = wgs[i]
        off = geometry_lonlat_problem(g)  # a projected file's metres beyond its CRS's area
        if off is not None:
            problems.append(Problem(i, codes[i], f"{off} after conversion from {source_crs}"))
            good.remove(i)
            continue
        if not g.is_valid:  # a reprojection can fold a hairline spike
            why = explain_validity(g)
            if not repair:
                problems.append(
                    Problem(
                        i,
                        codes[i],
                        f"invalid after conversion to WGS84: {why}; fix it or pass --repair",
                    )
                )
                good.remove(i)
                continue
            g = _polygonal(shapely.make_valid(g))
            report.repairs.append(
                f"feature #{i} (code {codes[i]}): repaired with make_valid after conversion "
                f"to WGS84: {why}"
            )
        wgs[i] = shapely.MultiPolygon(shapely.get_parts(_polygonal(g)))

    # 2. database checks on a temporary table
    conn = session.connection()
    conn.execute(sa.text("DROP TABLE IF EXISTS _import"))
    conn.execute(
        sa.text(
            """CREATE TEMP TABLE _import (idx int PRIMARY KEY, code text, name text,
               parent_code text, population int, households int, enterprises int,
               geom geometry(MultiPolygon, 4326)) ON COMMIT DROP"""
        )
    )
    if good:
        conn.execute(
            sa.text(
                """INSERT INTO _import VALUES (:idx, :code, :name, :parent_code, :population,
                   :households, :enterprises, ST_GeomFromWKB(decode(:wkb, 'hex'), 4326))"""
            ),
            [
                {
                    "population": None,
                    "households": None,
                    "enterprises": None,
                    **rows[i],
                    "wkb": shapely.to_wkb(wgs[i], hex=True),
                }
                for i in good
            ],
        )
    dup = conn.execute(
        sa.text(
            f"SELECT i.idx, i.code FROM _import i JOIN {table} t ON t.code = i.code"
            + (" AND t.valid_to IS NULL" if table == "grid" else "")
        )
    ).all()
    problems += [Problem(r.idx, r.code, f"code already exists in the {table} table") for r in dup]
    if parent_table:
        n_parents = conn.execute(sa.text(f"SELECT count(*) FROM {parent_table}")).scalar()
        if n_parents == 0:
            raise ValidationError(
                f"there is no {parent_table} yet: import the {parent_table} level first"
            )
        if parent_col:
            conn.execute(
                sa.text(
                    f"""ALTER TABLE _import ADD COLUMN parent_id int;
                    UPDATE _import i SET parent_id = p.id FROM {parent_table} p
                    WHERE p.code = i.parent_code"""
                )
            )
            for r in conn.execute(
                sa.text("SELECT idx, code, parent_code FROM _import WHERE parent_id IS NULL")
            ):
                msg = (
                    f"unknown {parent_table} code {r.parent_code!r} in field {parent_col!r}"
                    if r.parent_code
                    else f"no {parent_table} code in field {parent_col!r}"
                )
                problems.append(Problem(r.idx, r.code, msg))
        else:
            conn.execute(
                sa.text(
                    f"""ALTER TABLE _import ADD COLUMN parent_id int;
                    UPDATE _import i SET parent_id = (
                      SELECT p.id FROM {parent_table} p WHERE ST_Intersects(p.geom, i.geom)
                      ORDER BY ST_Area(ST_Intersection(p.geom, i.geom)) DESC, p.id LIMIT 1)"""
                )
            )
            for r in conn.execute(sa.text("SELECT idx, code FROM _import WHERE parent_id IS NULL")):
                problems.append(Problem(r.idx, r.code, f"lies outside every {parent_table}"))
        outside = conn.execute(
            sa.text(
                f"""SELECT i.idx, i.code, p.code AS pcode,
                       ST_Area(ST_Difference(i.geom, p.geom)::geography) AS out_m2,
                       ST_AsText(ST_PointOnSurface(ST_Difference(i.geom, p.geom))) AS at
                FROM _import i JOIN {parent_table} p ON p.id = i.parent_id
                WHERE NOT ST_Covers(ST_Buffer(p.geom::geography, :tol)::geometry, i.geom)
                ORDER BY i.idx"""
            ),
            {"tol": tolerance_m},
        ).all()
        for r in outside:
            problems.append(
                Problem(
                    r.idx,
                    r.code,
                    f"sticks out of its {parent_table} {r.pcode} by more than {tolerance_m:g} m "
                    f"({r.out_m2:,.0f} m² outside, e.g. near {r.at})",
                )
            )

    # 3. grids: do the grids of each community tile it?
    if level == "grids" and not problems:
        report.tiling = _tiling(conn)
        for ccode, gap, overlap in report.tiling:
            msg = (
                f"grids of community {ccode} do not tile it: gap {gap:,.1f} m², "
                f"overlap {overlap:,.1f} m²"
            )
            if tiling == "error":
                problems.append(Problem(-1, ccode, msg))
            else:
                report.warnings.append(msg)
    if problems:
        problems.sort(key=lambda p: (p.index, p.message))
        raise ImportRejected(str(path), problems)

    # 4. write
    cols = ["code", "name", "geom", "source_crs"]
    sel = ["i.code", "i.name", "i.geom", ":src"]
    if fk:
        cols.append(fk)
        sel.append("i.parent_id")
    for n in NUMBERS[level]:
        cols.append(n)
        sel.append(f"COALESCE(i.{n}, 0)")
    result = conn.execute(
        sa.text(
            f"""INSERT INTO {table} ({", ".join(cols)})
            SELECT {", ".join(sel)} FROM _import i ORDER BY i.idx
            RETURNING code, name, area_km2"""
        ),
        {"src": source_crs},
    ).all()
    by_code = {r.code: (r.code, r.name, float(r.area_km2)) for r in result}
    report.areas = [by_code[codes[i]] for i in good]
    report.imported = len(result)
    conn.execute(sa.text("DROP TABLE IF EXISTS _import"))
    return report


def _polygonal(g: BaseGeometry) -> MultiPolygon:
    """Only the polygonal parts of ``g`` (make_valid may leave lines or points)."""
    import shapely

    parts = [
        p
        for p in shapely.get_parts(shapely.get_parts(g))
        if p.geom_type == "Polygon" and not p.is_empty
    ]
    return shapely.MultiPolygon(parts) if parts else shapely.MultiPolygon()


def _tiling(conn: sa.Connection) -> list[tuple[str, float, float]]:
    """(community code, gap m², overlap m²) for communities whose grids (old and new
    together) leave a gap or overlap above 1 m²."""
    rows = conn.execute(
        sa.text(
            """
            WITH touched AS (SELECT DISTINCT parent_id AS cid FROM _import),
            g AS MATERIALIZED (
              SELECT row_number() OVER () AS k, cid, geom FROM (
                SELECT community_id AS cid, geom FROM grid
                WHERE valid_to IS NULL AND community_id IN (SELECT cid FROM touched)
                UNION ALL SELECT parent_id, geom FROM _import) x
            ),
            u AS (SELECT cid, ST_Union(geom) AS ug FROM g GROUP BY cid),
            o AS (
              SELECT a.cid, sum(ST_Area(ST_Intersection(a.geom, b.geom)::geography)) AS ov
              FROM g a JOIN g b ON a.cid = b.cid AND a.k < b.k AND ST_Intersects(a.geom, b.geom)
              GROUP BY a.cid
            )
            SELECT c.code, ST_Area(ST_Difference(c.geom, u.ug)::geography) AS gap,
                   COALESCE(o.ov, 0) AS overlap
            FROM u JOIN community c ON c.id = u.cid LEFT JOIN o ON o.cid = u.cid
            ORDER BY c.code
            """
        )
    ).all()
    return [
        (r.code, float(r.gap), float(r.overlap))
        for r in rows
        if r.gap > SQM_REPORT or r.overlap > SQM_REPORT
    ]


def format_report(report: ImportReport) -> str:
    """The import summary: each polygon's geodesic area, totals, repairs and warnings."""
    verb = "Checked (dry run: nothing written)" if report.dry_run else "Imported"
    lines = [
        f"{verb} {report.imported} polygon(s) into {report.level} from {report.file} "
        f"(source CRS {report.source_crs}, stored as WGS84):"
    ]
    w = max((len(c) for c, _, _ in report.areas), default=4)
    for code, name, area in report.areas:
        lines.append(f"  {code:<{w}}  {area:10.4f} km²  {name}")
    lines.append(f"  {'total':<{w}}  {report.total_km2:10.4f} km² (geodesic)")
    for r in report.repairs:
        lines.append(f"Repaired: {r}")
    for wmsg in report.warnings:
        lines.append(f"Warning: {wmsg}")
    for gmsg in report.generated:
        lines.append(f"Generated: {gmsg}")
    return "\n".join(lines)
