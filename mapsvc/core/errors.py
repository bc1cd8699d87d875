"""The one error root of the service, raised by services and layers alike.

Each error carries a message that names what is wrong and where (field, row, feature),
because the people who see it fix their data from it. The web maps :attr:`status` to the
HTTP status and :meth:`to_dict` to the JSON body; the CLI prints the message as one line.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """Root of every expected, explained failure (bad input, unknown id, wrong state)."""

    status = 400

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.message, **self.details}


class ValidationError(ServiceError):
    """Bad input (malformed values, wrong CRS, bad geometry...) -> 400."""

    status = 400


class BadRequest(ValidationError, ValueError):
    """A bad parameter value (bbox, date, filter); ``field`` names the parameter.

    Also a ``ValueError``, so code that parses values can catch it with the other parse
    errors of Python's own parsers.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        if field:
            super().__init__(message, field=field)
        else:
            super().__init__(message)
        self.field = field


class Unauthorized(ServiceError):
    """A request that needs a login (or an API token) and has none -> 401."""

    status = 401


class Forbidden(ServiceError):
    """An authenticated request for something its account may not do -> 403.

    The message names what is refused (the permission, or the incident, track or district
    outside the account's scope), so the person can ask for the right account.
    """

    status = 403


class NotFound(ServiceError):
    """An id that names nothing (incident, staff, grid...) -> 404."""

    status = 404


class Conflict(ServiceError):
    """A request that is valid but not allowed in the current state -> 409."""

    status = 409


__all__ = [
    "BadRequest",
    "Conflict",
    "Forbidden",
    "NotFound",
    "ServiceError",
    "Unauthorized",
    "ValidationError",
]
