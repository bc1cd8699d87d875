"""Values users type, parsed once: a bounding box, a date.

The same parser serves a request parameter, a CLI option and a JSON field, so a bad value
gets the same message everywhere: a :class:`~mapsvc.core.errors.BadRequest` naming the
field and what was given.
"""

from __future__ import annotations

import datetime as dt

from mapsvc.core.errors import BadRequest

#: ``(minx, miny, maxx, maxy)`` in WGS84 degrees (longitude, latitude)
BBox = tuple[float, float, float, float]


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
