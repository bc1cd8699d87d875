"""Request-argument parsing shared by the blueprints: one place, one wording of errors."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from flask import request

from mapsvc.core.errors import ValidationError
from mapsvc.core.values import parse_date
from mapsvc.services.fields import BIGINT_MAX, BIGINT_MIN


def int_arg(
    name: str,
    default: int | None = None,
    *,
    required: bool = False,
    value: object = None,
    min_value: int = BIGINT_MIN,
) -> int | None:
    """An integer from ``value`` (a JSON/form field) or the query string.

    Missing: ``default``, or a 400 naming the parameter when ``required``. Below
    ``min_value`` (a negative ``limit`` or ``offset``) is a 400 too.
    """
    raw = value if value is not None else request.args.get(name)
    if raw is None or raw == "":
        if required:
            raise ValidationError(f"parameter {name} is required", field=name)
        return default
    try:
        n = int(raw)
    except (TypeError, ValueError):
        raise ValidationError(
            f"{name} must be an integer; got {str(raw)[:40]!r}", field=name
        ) from None
    if not BIGINT_MIN <= n <= BIGINT_MAX:  # a 400 here, not an overflow inside a query
        raise ValidationError(f"{name} is out of range; got {str(raw)[:40]!r}", field=name)
    if n < min_value:
        raise ValidationError(f"{name} must be at least {min_value}; got {n}", field=name)
    return n


def date_arg(name: str = "date") -> dt.date:
    """A ``YYYY-MM-DD`` query (or form) parameter; today in the district when absent."""
    from mapsvc.web.context import get_settings

    raw = request.args.get(name) or (request.form.get(name) if request.form else None)
    return parse_date(raw, name, get_settings().today())


def json_object() -> dict[str, Any]:
    """The request's JSON object (or its form fields), or a 400 saying what is wrong.

    Every view that takes a body reads it here, so an array, a number or broken JSON gets
    the same named 400 everywhere instead of failing on the first ``body.get``.
    """
    if not request.data and not request.form:
        raise ValidationError("the request body must be a JSON object", field="body")
    if request.form and not request.is_json:
        return request.form.to_dict()
    try:
        data = json.loads(request.get_data(as_text=True))
    except ValueError as exc:
        raise ValidationError(f"malformed JSON: {exc}", field="body") from None
    if not isinstance(data, dict):
        raise ValidationError("the request body must be a JSON object", field="body")
    return data


def _nul_field(value: Any, where: str) -> str | None:
    """Where in ``value`` (a parsed JSON document) a string holds a NUL character."""
    if isinstance(value, str):
        return where if "\x00" in value else None
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        if isinstance(key, str) and "\x00" in key:
            return f"{where}.{key!r}" if where else repr(key)
        sub = f"{where}[{key}]" if isinstance(key, int) else (f"{where}.{key}" if where else key)
        found = _nul_field(item, sub)
        if found:
            return found
    return None


def reject_nul() -> None:
    """``before_request``: a NUL character in a parameter or JSON field is a 400, and so
    is a JSON body nested too deeply to parse.

    Why in one place: PostgreSQL text cannot hold NUL, so such a value reaching any query
    failed there as a 500; the check names the parameter instead. Uploaded files are not
    looked at (their readers report their own faults).
    """
    for key, value in (request.view_args or {}).items():
        if isinstance(value, str) and "\x00" in value:
            raise ValidationError(f"{key} in the path contains a NUL character", field=key)
    for source in (request.args, request.form):
        for key, value in source.items(multi=True):
            if "\x00" in key or "\x00" in value:
                raise ValidationError(
                    f"parameter {key!r} contains a NUL character", field=key.replace("\x00", "")
                )
    if request.is_json:
        try:
            data = request.get_json(silent=True)
        except RecursionError:  # json.loads gives up on deep nesting with this, not ValueError
            raise ValidationError("the JSON body is nested too deeply", field="body") from None
        try:
            field = _nul_field(data, "")
        except RecursionError:
            raise ValidationError("the JSON body is nested too deeply", field="body") from None
        if field is not None:
            raise ValidationError(f"field {field} contains a NUL character", field=field)


def wants_json() -> bool:
    """Whether the request is for JSON (an API path, or JSON asked for) rather than a page."""
    return request.path.startswith(("/api/", "/open311/", "/healthz", "/tiles/", "/ogc/")) or (
        request.accept_mimetypes.best == "application/json"
    )
