"""Chinese web-map coordinates: GCJ-02 ("Mars") and BD-09, to and from WGS84.

pyproj has no definition for these; they are a published closed-form offset (GCJ-02) and a
further rotation (BD-09). The forward GCJ-02 transform is the widely published one; its
inverse has no closed form, so :func:`gcj02_to_wgs84` iterates the forward transform to a
fixed point (converges to well under a millimetre in a few steps, not the 1-2 m of the
one-step approximation).

Everything is vectorised over numpy arrays so a million incidents convert in well under a
second. Points outside mainland China are left unchanged, as the offset is defined only
inside China.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, TypeVar

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

A = 6378245.0  # Krasovsky 1940 semi-major axis used by the GCJ-02 formula
EE = 0.00669342162296594323
X_PI = np.pi * 3000.0 / 180.0

ChinaCRS = Literal["gcj02", "bd09"]
CHINA_CRS: tuple[str, ...] = ("gcj02", "bd09")
#: datums a page or API client may ask for (see :func:`display_crs`)
DisplayCRS = Literal["wgs84", "gcj02", "bd09"]
DISPLAY_CRS: tuple[str, ...] = ("wgs84", *CHINA_CRS)

#: longitudes and latitudes after a shift: arrays (0-d for scalar input)
LonLat = tuple[np.ndarray, np.ndarray]
#: a datum shift ``(lon, lat) -> (lon, lat)`` taking scalars or arrays
Shift = Callable[[ArrayLike, ArrayLike], LonLat]
#: one shapely geometry, or a numpy array of them: the transforms keep the shape
Geoms = TypeVar("Geoms", "BaseGeometry", np.ndarray)


def _in_china(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    return (lon >= 72.004) & (lon <= 137.8347) & (lat >= 0.8293) & (lat <= 55.8271)


def _delta(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = lon - 105.0, lat - 35.0
    sx6, sx2 = np.sin(6.0 * x * np.pi), np.sin(2.0 * x * np.pi)
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    dlat += (20.0 * sx6 + 20.0 * sx2) * 2.0 / 3.0
    dlat += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    dlon += (20.0 * sx6 + 20.0 * sx2) * 2.0 / 3.0
    dlon += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    dlon += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    radlat = lat / 180.0 * np.pi
    magic = 1 - EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((A * (1 - EE)) / (magic * sqrtmagic) * np.pi)
    dlon = (dlon * 180.0) / (A / sqrtmagic * np.cos(radlat) * np.pi)
    inside = _in_china(lon, lat)
    return np.where(inside, dlon, 0.0), np.where(inside, dlat, 0.0)


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> LonLat:
    """Forward transform WGS84 -> GCJ-02 (scalars or numpy arrays)."""
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    dlon, dlat = _delta(lon, lat)
    return lon + dlon, lat + dlat


def _fixed_point_inverse(
    forward: Shift,
    x: np.ndarray,
    y: np.ndarray,
    guess_x: np.ndarray,
    guess_y: np.ndarray,
    tol_deg: float,
    max_iter: int,
) -> LonLat:
    """Solve ``forward(u, v) == (x, y)`` for ``(u, v)``, starting from the guess.

    Both Chinese offsets are small and smooth, so ``forward(u) - u`` hardly changes over
    the offset itself: stepping back by the current error, ``u <- u - (forward(u) - x)``,
    is a contraction and reaches ``tol_deg`` (1e-10 degrees is about 0.01 mm) in a few
    steps. The one loop behind every inverse here (GCJ-02 and BD-09), vectorised.
    """
    u, v = guess_x, guess_y
    for _ in range(max_iter):
        fu, fv = forward(u, v)
        eu, ev = fu - x, fv - y
        u, v = u - eu, v - ev
        if np.all(np.abs(eu) < tol_deg) and np.all(np.abs(ev) < tol_deg):
            break
    return u, v


def gcj02_to_wgs84(
    lon: ArrayLike, lat: ArrayLike, tol_deg: float = 1e-10, max_iter: int = 30
) -> LonLat:
    """Inverse GCJ-02 -> WGS84 by fixed-point iteration of the forward transform."""
    glon, glat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    return _fixed_point_inverse(wgs84_to_gcj02, glon, glat, glon, glat, tol_deg, max_iter)


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> LonLat:
    x, y = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def bd09_to_gcj02(
    lon: ArrayLike, lat: ArrayLike, tol_deg: float = 1e-10, max_iter: int = 30
) -> LonLat:
    """Inverse BD-09 -> GCJ-02: the published one-step formula refined by iteration."""
    blon, blat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    x, y = blon - 0.0065, blat - 0.006
    z = np.sqrt(x * x + y * y) - 0.00002 * np.sin(y * X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * X_PI)
    return _fixed_point_inverse(
        gcj02_to_bd09, blon, blat, z * np.cos(theta), z * np.sin(theta), tol_deg, max_iter
    )


def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> LonLat:
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> LonLat:
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


TO_WGS84: dict[str, Shift] = {"gcj02": gcj02_to_wgs84, "bd09": bd09_to_wgs84}
FROM_WGS84: dict[str, Shift] = {"gcj02": wgs84_to_gcj02, "bd09": wgs84_to_bd09}


def normalize_crs_name(crs: str | None) -> str | None:
    """'GCJ-02', 'gcj02', 'GCJ02', 'mars' -> 'gcj02'; 'BD-09', 'bd09ll', 'baidu' -> 'bd09'.

    The one reader of the Chinese datum names (imports, tracks, the API's ``crs``). Any
    other text is returned stripped but unchanged, for pyproj or the caller to judge.
    ``bd09ll`` is Baidu's own name for its longitude/latitude; ``bd09mc`` (Baidu's
    Mercator metres) is a different thing and is not turned into ``bd09``.
    """
    if crs is None:
        return None
    key = crs.strip().lower().replace("-", "").replace("_", "")
    if key in ("gcj02", "mars"):
        return "gcj02"
    if key in ("bd09", "bd09ll", "baidu"):
        return "bd09"
    return crs.strip()


def display_crs(text: str | None) -> DisplayCRS:
    """The datum a client asks for its coordinates in: 'wgs84', 'gcj02' or 'bd09'.

    Empty means WGS84, the stored datum; 'WGS-84' and 'EPSG:4326' are WGS84 too, and the
    Chinese names are read by :func:`normalize_crs_name`, so an import and a map page
    accept the same spellings. Anything else (a projected CRS, ``bd09mc``) is refused:
    the pages can only be drawn in longitude/latitude.

    Raises
    ------
    ValueError
        Naming the accepted values and quoting (the start of) what was given.
    """
    name = normalize_crs_name(text) or "wgs84"
    if name in CHINA_CRS:
        return name  # type: ignore[return-value]
    if name.lower().replace("-", "").replace("_", "") in ("wgs84", "epsg:4326"):
        return "wgs84"
    raise ValueError(f"crs must be one of {', '.join(DISPLAY_CRS)}; got {str(text)[:40]!r}")


def _coords_fn(fn: Shift) -> Callable[[np.ndarray], np.ndarray]:
    """``fn`` as shapely.transform wants it: one (n, 2) coordinate array in, one out."""

    def apply(coords: np.ndarray) -> np.ndarray:
        lon, lat = fn(coords[:, 0], coords[:, 1])
        return np.column_stack([lon, lat])

    return apply


def geometry_to_wgs84(geoms: Geoms, crs: str) -> Geoms:
    """Convert shapely geometries in ``crs`` ('gcj02' or 'bd09') to WGS84."""
    import shapely

    return shapely.transform(geoms, _coords_fn(TO_WGS84[normalize_crs_name(crs)]))


def geometry_from_wgs84(geoms: Geoms, crs: str) -> Geoms:
    """Convert shapely WGS84 geometries to ``crs`` ('gcj02' or 'bd09') for export."""
    import shapely

    return shapely.transform(geoms, _coords_fn(FROM_WGS84[normalize_crs_name(crs)]))


def points_to_wgs84(lon: ArrayLike, lat: ArrayLike, crs: str | None) -> LonLat:
    """Longitude/latitude arrays in any accepted CRS -> WGS84 arrays.

    ``crs`` is 'gcj02', 'bd09', an EPSG/pyproj string, or None (WGS84). CGCS2000
    (EPSG:4490) is accepted as-is: it differs from WGS84 by centimetres.
    """
    name = normalize_crs_name(crs)
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    if name in TO_WGS84:
        return TO_WGS84[name](lon, lat)
    if name is None or name.upper() in ("EPSG:4326", "EPSG:4490", "WGS84", "CGCS2000"):
        return lon, lat
    from pyproj import Transformer

    tr = Transformer.from_crs(name, "EPSG:4326", always_xy=True)
    return tr.transform(lon, lat)
