"""Request-argument parsing shared by the blueprints: one place, one wording of errors."""

from __future__ import annotations

import datetime as dt

from flask import request

from layers.base import parse_date
from mapsvc.services.errors import ValidationError


def int_arg(
    name: str, default: int | None = None, *, required: bool = False, value: object = None
) -> int | None:
    """An integer from ``value`` (a JSON/form field) or the query string.

    Missing: ``default``, or a 400 naming the parameter when ``required``.
    """
    raw = value if value is not None else request.args.get(name)
    if raw is None or raw == "":
        if required:
            raise ValidationError(f"parameter {name} is required", field=name)
        return default
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ValidationError(
            f"{name} must be an integer; got {str(raw)[:40]!r}", field=name
        ) from None


def date_arg(name: str = "date") -> dt.date:
    """A ``YYYY-MM-DD`` query (or form) parameter; today when absent."""
    raw = request.args.get(name) or (request.form.get(name) if request.form else None)
    return parse_date(raw, name, dt.date.today())
