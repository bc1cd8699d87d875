"""Values users type, parsed once: a bounding box, a date, a longitude/latitude.

The same parser serves a request parameter, a CLI option and a JSON field, so a bad value
gets the same message everywhere: a :class:`~mapsvc.core.errors.BadRequest` naming the
field and what was given.
"""

from __future__ import annotations

import datetime as dt

from mapsvc.core.errors import BadRequest

#: ``(minx, miny, maxx, maxy)`` in WGS84 degrees (longitude, latitude)
BBox = tuple[float, float, float, float]

#: the ranges of longitude and latitude in degrees
LON_RANGE = (-180.0, 180.0)
LAT_RANGE = (-90.0, 90.0)


def lonlat_problem(lon: float, lat: float) -> str | None:
    """What is wrong with a longitude/latitude pair in degrees, or None when nothing is.

    The one wording of a coordinate out of range, for every import path and the API:
    ``latitude 500 out of range -90..90``. NaN is out of every range.
    """
    for what, value, (low, high) in (("longitude", lon, LON_RANGE), ("latitude", lat, LAT_RANGE)):
        if not low <= value <= high:
            return f"{what} {value:g} out of range {low:g}..{high:g}"
    return None


def check_lonlat(lon: float, lat: float, where: str, fields: tuple[str, str] | None = None) -> None:
    """Raise a :class:`BadRequest` when ``lon``/``lat`` is out of range.

    ``where`` names the place in the input (``feature 3``, ``point 12``, ``the request``),
    so the message reads ``latitude 500 out of range -90..90 in feature 3``; ``fields``
    (the request's names of longitude and latitude) gives the error the one at fault.
    """
    problem = lonlat_problem(lon, lat)
    if problem is not None:
        field = None if fields is None else fields[problem.startswith("latitude")]
        raise BadRequest(f"{problem} in {where}", field=field)


def parse_bbox(text: str | None) -> BBox | None:
    """Parse ``minx,miny,maxx,maxy`` (WGS84 degrees) or return None when empty."""
    if not text:
        return None
    parts = text.split(",")
    if len(parts) != 4:
        raise BadRequest(f"bbox must be minx,miny,maxx,maxy; got {text[:80]!r}", field="bbox")
    try:
        minx, miny, maxx, maxy = (float(p) for p in parts)
    except ValueError:
        raise BadRequest(f"bbox values must be numbers; got {text[:80]!r}", field="bbox") from None
    if not (
        -180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= 90 and -90 <= maxy <= 90
    ):
        raise BadRequest(
            f"bbox is outside WGS84 longitude/latitude ranges: {text[:80]!r}", field="bbox"
        )
    if minx >= maxx or miny >= maxy:
        raise BadRequest(f"bbox min must be below max: {text[:80]!r}", field="bbox")
    return (minx, miny, maxx, maxy)


def parse_date(
    value: str | dt.date | None, field: str = "date", default: dt.date | None = None
) -> dt.date | None:
    """Parse ``YYYY-MM-DD`` (a date passes through); ``default`` when empty.

    The one date parser of request parameters, CLI options and JSON bodies: a bad value is a
    BadRequest naming the field.
    """
    if value is None or value == "":
        return default
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise BadRequest(
            f"{field} must be a date like 2026-01-31; got {str(value)[:40]!r}",
            field=field,
        ) from None
