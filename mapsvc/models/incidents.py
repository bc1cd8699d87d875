"""Tables of the incidents feature area (beyond those in :mod:`mapsvc.models.core`)."""

from __future__ import annotations

from mapsvc.models.core import Base  # noqa: F401
