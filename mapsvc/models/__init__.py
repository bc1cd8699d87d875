"""GeoAlchemy2 models, one module per domain area; this package re-exports every table.

Importing it registers every table on ``Base.metadata`` (Alembic reads it). Code imports
models from here (``from mapsvc.models import Incident``), not from the area modules.
"""

from mapsvc.models.areas import Community, District, Grid, ServiceCentre, Subdistrict
from mapsvc.models.base import AREA_KM2, LENGTH_M, Base
from mapsvc.models.incidents import (
    SEVERITIES,
    SOURCES,
    STATES,
    Incident,
    IncidentCategory,
    IncidentEvent,
)
from mapsvc.models.patrol import PatrolTrack, PatrolVisit
from mapsvc.models.staffing import DISPATCHED_KINDS, ROLES, Assignment, Staff
from mapsvc.models.streets import AlleySegment

__all__ = [
    "AREA_KM2",
    "DISPATCHED_KINDS",
    "LENGTH_M",
    "ROLES",
    "SEVERITIES",
    "SOURCES",
    "STATES",
    "AlleySegment",
    "Assignment",
    "Base",
    "Community",
    "District",
    "Grid",
    "Incident",
    "IncidentCategory",
    "IncidentEvent",
    "PatrolTrack",
    "PatrolVisit",
    "ServiceCentre",
    "Staff",
    "Subdistrict",
]
