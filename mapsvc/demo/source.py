"""The real data the demo starts from: Vonng/adcode's rows and outline of 鲤城区 (CC BY 4.0).

The files in ``data/boundaries`` are GCJ-02 as Amap publishes them; everything read here is
converted to WGS84 with :mod:`mapsvc.services.chinacrs` before anything else uses it.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from shapely.geometry import MultiPolygon, shape

from mapsvc.config import PROJECT_ROOT
from mapsvc.demo.geometry import as_multi
from mapsvc.services.chinacrs import geometry_to_wgs84

DATA_DIR = PROJECT_ROOT / "data" / "boundaries"
DISTRICT_CODE = "350502000000"
ADCODE_CSV = DATA_DIR / f"{DISTRICT_CODE[:6]}.csv"
FENCE_GEOJSON = DATA_DIR / f"{DISTRICT_CODE[:6]}-fence.geojson"
#: the coordinates of the source files, recorded on the real boundaries
SOURCE_CRS = "gcj02"
#: recorded on what the demo makes up (grids, incidents, tracks)
GENERATED_CRS = "EPSG:4326"
ATTRIBUTION = "Vonng/adcode, CC BY 4.0"

#: Vonng/adcode CSV columns (the files have no header row)
ADCODE_COLUMNS = (
    "code parent name level rank adcode post_code area_code ur_code municipality virtual dummy "
    "longitude latitude center_wkb_hex province city county town village"
).split()


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
    return as_multi(geom)


def community_display_name(name: str) -> str:
    """'金山社区居委会' -> '金山社区': the community, not its committee (村委会 kept as is)."""
    return name[: -len("居委会")] if name.endswith("社区居委会") else name
