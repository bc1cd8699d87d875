"""Layers as files: GeoPackage, GeoJSON, zipped Shapefile and CSV, in WGS84, CGCS2000 or GCJ-02.

Every published layer (:data:`mapsvc.services.features.LAYERS`: the boundaries, the alley
segments with their chiefs, service centres, incidents) is written by :func:`export_layer`,
one function for every format and datum, so a planner's GeoPackage, a leader's CSV and the
OGC API all carry the same columns. Files are written with pyogrio in batches read from
a server-side cursor, so a district's million incidents never sit in memory at once; the
caller gets a path in a directory it owns (and removes).

Datums: ``wgs84`` is the stored geometry (EPSG:4326). ``cgcs2000`` is labelled EPSG:4490
with the coordinates unchanged: the two datums differ by centimetres, less than the
data's own accuracy. ``gcj02`` is shifted by :mod:`mapsvc.services.chinacrs`; GCJ-02 has
no EPSG code, so such a file is labelled EPSG:4326 and its name says ``gcj02``.

Times are written as ISO 8601 text in the district's time zone (``settings.tz``), the
same in every format: Shapefiles have no date-time type and CSV has no types at all.
"""

from __future__ import annotations

import datetime as dt
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mapsvc.config import Settings
from mapsvc.core.errors import ValidationError
from mapsvc.models import Incident
from mapsvc.services import chinacrs
from mapsvc.services.features import bbox_condition, layer, read_batches
from mapsvc.services.incidents import incident_filter


@dataclass(frozen=True)
class ExportFormat:
    """A file format: GDAL driver, file suffix, media type, driver options."""

    driver: str
    suffix: str
    media_type: str
    layer_options: tuple[tuple[str, str], ...] = ()


FORMATS: dict[str, ExportFormat] = {
    "gpkg": ExportFormat("GPKG", ".gpkg", "application/geopackage+sqlite3"),
    "geojson": ExportFormat("GeoJSON", ".geojson", "application/geo+json"),
    # a .cpg next to the .dbf says UTF-8, so GIS programs read Chinese names right
    "shp": ExportFormat("ESRI Shapefile", ".shp.zip", "application/zip", (("ENCODING", "UTF-8"),)),
    # geometry as WKT; a BOM so that spreadsheet programs take the file as UTF-8
    "csv": ExportFormat("CSV", ".csv", "text/csv", (("GEOMETRY", "AS_WKT"), ("WRITE_BOM", "YES"))),
}

#: the datums a file can be written in, and the EPSG code it is labelled with
DATUMS: dict[str, int] = {"wgs84": 4326, "cgcs2000": 4490, "gcj02": 4326}
#: spellings of the datums a request may use
_DATUM_ALIASES = {"4326": "wgs84", "epsg:4326": "wgs84", "4490": "cgcs2000",
                  "epsg:4490": "cgcs2000", "gcj-02": "gcj02"}  # fmt: skip

#: rows fetched and written per batch
BATCH = 5000
#: Shapefile field names are at most 10 characters
_DBF_NAME_LENGTH = 10


def export_datum(text: str | None) -> str:
    """The datum named by a request (``wgs84`` by default), or a :class:`ValidationError`."""
    value = (text or "wgs84").strip().lower()
    value = _DATUM_ALIASES.get(value, value)
    if value not in DATUMS:
        raise ValidationError(f"crs {text!r} is not one of {', '.join(DATUMS)}")
    return value


def export_format(text: str) -> ExportFormat:
    """The format ``text`` names, or a :class:`ValidationError` naming the known ones."""
    try:
        return FORMATS[text]
    except KeyError:
        raise ValidationError(f"format {text!r} is not one of {', '.join(FORMATS)}") from None


def shapefile_names(names: list[str]) -> dict[str, str]:
    """Each column's Shapefile field name: cut to 10 characters, kept unique."""
    out: dict[str, str] = {}
    for name in names:
        short, n = name[:_DBF_NAME_LENGTH], 1
        while short in out.values():
            suffix = f"_{n}"
            short, n = name[: _DBF_NAME_LENGTH - len(suffix)] + suffix, n + 1
        out[name] = short
    return out


def file_name(layer_name: str, fmt: str, datum: str) -> str:
    """The download's name, e.g. ``grids-gcj02.shp.zip``."""
    return f"{layer_name}-{datum}{FORMATS[fmt].suffix}"


def _selection(
    conn: Connection, layer_name: str, filters: Mapping[str, Any] | None, bbox: Any
) -> sa.Select:
    lyr = layer(layer_name)
    table = lyr.select()
    where = []
    if bbox is not None:
        where.append(bbox_condition(table, bbox))
    if layer_name == "incidents":
        from sqlalchemy.orm import Session

        with Session(bind=conn) as session:  # ids that name nothing are a NotFound
            f = incident_filter(filters or {}, session)
        chosen = Incident.__table__
        where.append(table.c.id.in_(sa.select(chosen.c.id).where(*f.clauses(chosen))))
    return sa.select(table).where(*where).order_by(table.c.id).subquery(layer_name)


def _frame(
    rows: list[Mapping[str, Any]], columns: list[str], datum: str, settings: Settings
) -> Any:
    import geopandas as gpd
    import shapely

    data = {c: [r[c] for r in rows] for c in columns}
    for c, values in data.items():
        if any(isinstance(v, dt.datetime) for v in values):
            data[c] = [None if v is None else settings.local(v).isoformat() for v in values]
    geoms = shapely.from_wkb([bytes(r["geom"]) for r in rows]) if rows else []
    if datum == "gcj02" and len(geoms):
        geoms = chinacrs.geometry_from_wgs84(geoms, "gcj02")
    return gpd.GeoDataFrame(data, geometry=list(geoms), crs=f"EPSG:{DATUMS[datum]}")


def export_layer(
    conn: Connection,
    layer_name: str,
    fmt: str,
    directory: Path,
    *,
    datum: str = "wgs84",
    filters: Mapping[str, Any] | None = None,
    bbox: Any = None,
    settings: Settings | None = None,
) -> Path:
    """Write layer ``layer_name`` as ``fmt`` in ``datum`` into ``directory``; its path.

    Parameters
    ----------
    conn
        A connection; the layer is read in one statement (one snapshot).
    fmt
        ``gpkg``, ``geojson``, ``shp`` (a zip of .shp, .shx, .dbf, .prj, .cpg) or ``csv``.
    datum
        ``wgs84``, ``cgcs2000`` or ``gcj02`` (see the module's note).
    filters
        For incidents, the list's and the heatmap's filters
        (:func:`mapsvc.services.incidents.incident_filter`); ids that name nothing are a
        :class:`~mapsvc.core.errors.NotFound`.
    bbox
        A WGS84 ``(minx, miny, maxx, maxy)`` the features meet.
    """
    settings = settings or Settings()
    export_format(fmt)  # an unknown format is refused before anything is read
    datum = export_datum(datum)
    lyr = layer(layer_name)
    columns = ["id", *lyr.property_names()]
    frames = (
        _frame(rows, columns, datum, settings)
        for rows in read_batches(conn, _selection(conn, layer_name, filters, bbox), BATCH)
    )
    return write_frames(
        frames,
        layer_name,
        fmt,
        directory,
        datum=datum,
        geometry_type=lyr.geometry_type,
        empty=lambda: _frame([], columns, datum, settings),
    )


def write_frames(
    frames: Iterable[Any],
    layer_name: str,
    fmt: str,
    directory: Path,
    *,
    datum: str,
    geometry_type: str,
    empty: Callable[[], Any],
) -> Path:
    """Write GeoDataFrames (already in ``datum``) as one file of ``fmt``; its path.

    Shapefile field names are cut to 10 characters (kept unique) and the parts zipped
    with their .prj and .cpg; ``empty`` makes the frame written when there are none.
    """
    import pyogrio

    spec = export_format(fmt)
    stem = f"{layer_name}-{datum}"
    target = directory / (f"{stem}.shp" if fmt == "shp" else f"{stem}{spec.suffix}")
    options = dict(spec.layer_options)
    written = False
    for frame in frames:
        if fmt == "shp":
            frame = frame.rename(
                columns=shapefile_names([c for c in frame.columns if c != "geometry"])
            )
        pyogrio.write_dataframe(
            frame, target, layer=layer_name, driver=spec.driver, append=written,
            geometry_type=geometry_type, promote_to_multi=False, **options,
        )  # fmt: skip
        written = True
    if not written:
        frame = empty()
        if fmt == "shp":
            frame = frame.rename(
                columns=shapefile_names([c for c in frame.columns if c != "geometry"])
            )
        pyogrio.write_dataframe(
            frame, target, layer=layer_name, driver=spec.driver,
            geometry_type=geometry_type, **options,
        )  # fmt: skip
    if fmt != "shp":
        return target
    archive = directory / file_name(layer_name, fmt, datum)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for part in sorted(directory.glob(f"{stem}.*")):
            if part != archive:
                zf.write(part, part.name)
    return archive
