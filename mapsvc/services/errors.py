"""Domain errors raised by services and layers; the web layer maps them to HTTP statuses.

Each carries a message that names what is wrong and where (field, row, feature), because
the people who see it fix their data from it.
"""

from __future__ import annotations

from typing import Any

from layers.base import BadRequest


class ServiceError(Exception):
    status = 400

    def __init__(self, message: str, **details: Any):
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.message, **self.details}


class ValidationError(ServiceError):
    """Bad input (malformed values, wrong CRS, bad geometry...) -> 400/422."""

    status = 400


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    """A request that is valid but not allowed in the current state -> 409."""

    status = 409


__all__ = ["BadRequest", "Conflict", "NotFound", "ServiceError", "ValidationError"]
