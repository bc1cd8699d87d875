"""Checks of single request fields (text, numbers) shared by the services.

Why one place: a JSON body can hold any type where text is expected, and a text longer
than its column made PostgreSQL refuse the insert (a 500). Each check raises a
:class:`~mapsvc.core.errors.ValidationError` naming the field, and text lengths come
from the model's own column, so the limit is written once.
"""

from __future__ import annotations

import math
from typing import Any

from mapsvc.core.errors import ValidationError


def text(value: Any, field: str, column: Any = None, *, required: bool = False) -> str | None:
    """``value`` as text for ``column`` (a model attribute such as ``Incident.address``).

    Numbers are accepted and written as text (an external id may arrive as 12345); lists,
    objects and booleans are a 400. Longer than the column's ``String(n)`` is a 400 that
    gives both lengths, rather than a silent cut. Empty is None, or a 400 when
    ``required``.

    Parameters
    ----------
    value : Any
        The raw value from a JSON body, form or CSV row.
    field : str
        Its name in the request, for the error.
    column : InstrumentedAttribute, optional
        The column it is stored in; its length bounds the text.
    required : bool
        Whether a missing or blank value is an error.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValidationError(f"{field} is required", field=field)
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValidationError(f"{field} must be text; got {type(value).__name__}", field=field)
    s = value if isinstance(value, str) else str(value)
    length = getattr(getattr(column, "type", None), "length", None)
    if length is not None and len(s) > length:
        raise ValidationError(
            f"{field} is too long: {len(s)} characters, at most {length}", field=field
        )
    return s


def number(value: Any, field: str) -> float:
    """``value`` as a finite float; missing, non-numeric, NaN or infinite is a 400."""
    if value is None or value == "":
        raise ValidationError(f"{field} is required", field=field)
    if isinstance(value, bool):
        raise ValidationError(f"{field} must be a number; got {value!r}", field=field)
    try:
        f = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValidationError(
            f"{field} must be a number; got {str(value)[:40]!r}", field=field
        ) from None
    if not math.isfinite(f):
        raise ValidationError(f"{field} must be a finite number", field=field)
    return f


#: the integers the database can hold (PostgreSQL bigint), ids included
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1


def record_id(value: Any) -> int | None:
    """``value`` as a row id, or None when it cannot be one (not an integer, or beyond
    bigint): callers answer "does not exist" for it instead of sending it to a query."""
    if isinstance(value, bool):
        return None
    try:
        n = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return n if BIGINT_MIN <= n <= BIGINT_MAX else None
