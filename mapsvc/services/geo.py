"""Geographic helpers: a local metric CRS for an area, and the checks every import path
makes of the coordinates and CRS it is given.

Distances in PostGIS are computed either on ``geography`` (exact, slower) or in this local
CRS (scale error under 0.1 % inside a district, and index-friendly); never in degrees.

The checks (coordinates in range, a CRS named in a file that pyproj can read) live here
once, so a boundary file, a street file, an incident CSV, a patrol track and the JSON
APIs all answer the same broken input with the same words, naming where it is.
"""

from __future__ import annotations

import json
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mapsvc.core.errors import ValidationError
from mapsvc.core.values import LAT_RANGE, LON_RANGE, lonlat_problem


@lru_cache(maxsize=64)
def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS84 UTM zone pyproj picks for a point."""
    from pyproj.aoi import AreaOfInterest
    from pyproj.database import query_utm_crs_info

    infos = query_utm_crs_info(
        datum_name="WGS 84",
        area_of_interest=AreaOfInterest(lon, lat, lon, lat),
    )
    if not infos:
        raise ValueError(f"no UTM zone for {lon}, {lat}")
    return int(infos[0].code)


def metric_epsg_for_data(conn: Connection, table: str = "grid") -> int:
    """UTM zone of the centre of ``table``'s extent (falls back to the district)."""
    row = conn.execute(
        sa.text(
            f"SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(ST_Extent(geom)) c FROM {table}) s"
        )
    ).first()
    if row is None or row[0] is None:
        row = conn.execute(
            sa.text(
                "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(ST_Extent(geom)) c FROM district) s"
            )
        ).first()
    if row is None or row[0] is None:
        return 3857  # no data at all: any metric CRS will do, nothing will be measured
    return utm_epsg(round(row[0], 1), round(row[1], 1))


# --------------------------------------------------------------------------- checks of input


def out_of_range(lon: Any, lat: Any) -> Any:
    """Boolean numpy mask of the longitude/latitude pairs out of range (NaN included)."""
    import numpy as np

    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    return ~((lon >= LON_RANGE[0]) & (lon <= LON_RANGE[1])) | ~(
        (lat >= LAT_RANGE[0]) & (lat <= LAT_RANGE[1])
    )


def first_out_of_range(lon: Any, lat: Any) -> tuple[int, str] | None:
    """``(index, problem)`` of the first longitude/latitude pair out of range, or None.

    Vectorised over numpy arrays (a track of thousands of points, every vertex of a
    boundary file); the wording is :func:`mapsvc.core.values.lonlat_problem`'s.
    """
    import numpy as np

    bad = out_of_range(lon, lat)
    if not bad.any():
        return None
    i = int(np.argmax(bad))
    return i, str(lonlat_problem(float(np.asarray(lon)[i]), float(np.asarray(lat)[i])))


def geometry_lonlat_problem(geom: Any) -> str | None:
    """The first coordinate of a shapely geometry out of longitude/latitude range, or None.

    For files whose CRS is longitude/latitude (WGS84, CGCS2000, GCJ-02, BD-09): a
    latitude of 500 is a broken file, said so before any other check (reprojection,
    containment) turns it into a stranger message.
    """
    import shapely

    coords = shapely.get_coordinates(geom)
    found = first_out_of_range(coords[:, 0], coords[:, 1]) if len(coords) else None
    return None if found is None else found[1]


def is_lonlat_crs(name: str | None) -> bool:
    """Whether coordinates in ``name`` are longitude/latitude degrees (None is WGS84;
    GCJ-02 and BD-09 are degrees too). Raises pyproj's CRSError for an unknown name."""
    from mapsvc.services.chinacrs import CHINA_CRS, normalize_crs_name

    norm = normalize_crs_name(name)
    if norm is None or norm in CHINA_CRS or norm.upper() in ("EPSG:4326", "EPSG:4490"):
        return True
    from pyproj import CRS

    return bool(CRS.from_user_input(norm).is_geographic)


def check_crs(name: str, where: str) -> str:
    """``name`` as the service spells a CRS ('EPSG:4490', 'gcj02'), or a ValidationError
    naming it and ``where`` it was found when pyproj does not know it.

    OGC's CRS84 (GeoJSON's longitude/latitude WGS84) is spelled EPSG:4326: the service
    always reads longitude first.
    """
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    from mapsvc.services.chinacrs import CHINA_CRS, normalize_crs_name

    china = normalize_crs_name(name)
    if china in CHINA_CRS:
        return str(china)
    try:
        crs = CRS.from_user_input(name)
    except CRSError:
        raise ValidationError(
            f"unknown CRS {name[:80]!r} in {where}: use EPSG:<code>, gcj02 or bd09", field="crs"
        ) from None
    authority = crs.to_authority()
    if authority is None:
        return name.strip()[:40]
    if authority == ("OGC", "CRS84"):
        return "EPSG:4326"
    return f"{authority[0]}:{authority[1]}"


def geojson_crs(member: Any, where: str) -> str | None:
    """The CRS a GeoJSON ``crs`` member names (checked by :func:`check_crs`), or None
    when there is none.

    Why here: GDAL, reading a GeoJSON whose ``crs`` it does not know (``EPSG::999999``),
    falls back to WGS84 without a word, and the file's coordinates are then stored as if
    they were longitude/latitude. Reading the member first makes that an error naming it.
    Accepts the 2008 GeoJSON forms ``{"type": "name", "properties": {"name": ...}}`` and
    ``{"type": "EPSG", "properties": {"code": ...}}``, and a plain string.
    """
    if member is None:
        return None
    name: Any = member
    if isinstance(member, dict):
        props = member.get("properties") if isinstance(member.get("properties"), dict) else {}
        kind = member.get("type")
        if kind == "name":
            name = props.get("name")
        elif kind == "EPSG" and props.get("code") is not None:
            name = f"EPSG:{props['code']}"
        elif kind == "link":
            raise ValidationError(
                f"{where} links to a CRS ({str(props.get('href'))[:80]!r}), which is not "
                "read; name it instead (EPSG:<code>)",
                field="crs",
            )
        else:
            name = None
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(
            f"{where} names no CRS: {json.dumps(member, ensure_ascii=False)[:80]}", field="crs"
        )
    return check_crs(name, where)


def file_crs(path: Path) -> str | None:
    """The CRS a boundary file names in its own words, checked; None when it names none.

    Read here, not left to GDAL, because GDAL takes an unknown CRS for WGS84 (GeoJSON) or
    for none at all (a Shapefile's ``.prj``), and either way the error would surface far
    from its cause. GeoJSON: the top-level ``crs`` member; Shapefile (``.shp`` or a
    ``.zip``): the ``.prj``. Other formats keep their CRS where GDAL reads it well.
    """
    suffix = path.suffix.lower()
    if suffix in (".geojson", ".json"):
        try:
            doc = json.loads(path.read_bytes())
        except (ValueError, RecursionError):
            return None  # GDAL's reader names what is broken
        if isinstance(doc, dict) and "crs" in doc:
            return geojson_crs(doc["crs"], f"the crs member of {path.name}")
        return None
    prj: str | None = None
    where = f"{path.with_suffix('.prj').name}"
    if suffix == ".shp" and path.with_suffix(".prj").exists():
        prj = path.with_suffix(".prj").read_text(errors="replace")
    elif suffix == ".zip" and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.lower().endswith(".prj")]
            if names:
                prj, where = z.read(names[0]).decode(errors="replace"), f"{names[0]} in {path.name}"
    if prj is None or not prj.strip():
        return None
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        crs = CRS.from_wkt(prj)
    except CRSError:
        raise ValidationError(
            f"unknown CRS in {where}: pyproj cannot read {prj.strip()[:80]!r}; "
            "fix the .prj or pass --crs",
            field="crs",
        ) from None
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.name[:40]
