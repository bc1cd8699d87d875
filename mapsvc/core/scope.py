"""What an account reads, as a value: its district, or a field account's own posts.

Made by :func:`mapsvc.services.permissions.read_scope` from the account; applied by every
incident read (:func:`mapsvc.services.incidents.scope_clauses`). A value of its own, with
no imports from the services, so the services that apply it and the one that makes it
do not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class RoutedRecord(Protocol):
    """A record routed to posts (an incident): its chief, segment and grid."""

    chief_id: int | None
    segment_id: int | None
    grid_id: int | None


@dataclass(frozen=True)
class ReadScope:
    """The records an account reads (hashable: part of the keys of kept answers).

    Attributes
    ----------
    district_id : int, optional
        Only the incidents routed into this district; None is city-wide.
    own : bool
        A field account: only the incidents of its own posts (below) and its own tracks.
    staff_id : int, optional
        The field account's staff member: incidents naming it as chief are its own.
    segments, grids : tuple of int
        The segments (a chief's) or grids (a grid head's or member's) it holds today.
    """

    district_id: int | None = None
    own: bool = False
    staff_id: int | None = None
    segments: tuple[int, ...] = ()
    grids: tuple[int, ...] = ()

    @property
    def everything(self) -> bool:
        return self.district_id is None and not self.own

    def owns_incident(self, incident: RoutedRecord) -> bool:
        """Whether ``incident`` is routed to this field account's posts (or names it)."""
        return (
            (self.staff_id is not None and incident.chief_id == self.staff_id)
            or (incident.segment_id is not None and incident.segment_id in self.segments)
            or (incident.grid_id is not None and incident.grid_id in self.grids)
        )
