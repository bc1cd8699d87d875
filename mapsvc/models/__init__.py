"""GeoAlchemy2 models, one module per domain area; this package re-exports every table.

Importing it registers every table on ``Base.metadata`` (Alembic reads it). Code imports
models from here (``from mapsvc.models import Incident``), not from the area modules.
"""

from mapsvc.models.accounts import ACCOUNT_ROLES, ApiToken, AppUser
from mapsvc.models.areas import (
    GRID_DAYS,
    Community,
    District,
    Grid,
    ServiceCentre,
    Subdistrict,
    grid_on_sql,
)
from mapsvc.models.audit import AUDIT_ACTIONS, AuditEntry
from mapsvc.models.base import AREA_KM2, LENGTH_M, Base
from mapsvc.models.incidents import (
    EXTERNAL_ID_UNIQUE,
    SEVERITIES,
    SOURCES,
    STATES,
    Incident,
    IncidentCategory,
    IncidentEvent,
)
from mapsvc.models.patrol import DERIVED_TABLES, PatrolCoverage, PatrolTrack, PatrolVisit
from mapsvc.models.plans import (
    PLAN_SOURCES,
    PLAN_STATUSES,
    Plan,
    PlanCommunity,
    PlanGrid,
    PlanningUnit,
)
from mapsvc.models.staffing import DISPATCHED_KINDS, ROLES, SINGLE_HOLDER_ROLES, Assignment, Staff
from mapsvc.models.streets import AlleySegment


def table_names() -> tuple[str, ...]:
    """Names of every table the models define, each after the tables it references.

    This is the one list of the service's tables (what the demo clears, fills, counts and
    moves the id sequences of; what the migrations must create). It comes from the models'
    metadata, so a new model is in it without anyone editing a list; tables that are not
    models (``alembic_version``, PostGIS's ``spatial_ref_sys``) are not.
    """
    return tuple(t.name for t in Base.metadata.sorted_tables)


def audited_tables() -> tuple[str, ...]:
    """The tables whose every write is recorded in ``audit_log``: all but the trail itself.

    The migrations attach the audit triggers to these (``mapsvc.migrations.audit``), and a
    test checks that each of them has them.
    """
    return tuple(t for t in table_names() if t != AuditEntry.__tablename__)


__all__ = [
    "ACCOUNT_ROLES",
    "PLAN_SOURCES",
    "PLAN_STATUSES",
    "Plan",
    "PlanCommunity",
    "PlanGrid",
    "PlanningUnit",
    "AREA_KM2",
    "GRID_DAYS",
    "AUDIT_ACTIONS",
    "DISPATCHED_KINDS",
    "LENGTH_M",
    "ROLES",
    "SINGLE_HOLDER_ROLES",
    "SEVERITIES",
    "SOURCES",
    "EXTERNAL_ID_UNIQUE",
    "STATES",
    "AlleySegment",
    "ApiToken",
    "AppUser",
    "Assignment",
    "AuditEntry",
    "Base",
    "Community",
    "District",
    "Grid",
    "Incident",
    "IncidentCategory",
    "IncidentEvent",
    "DERIVED_TABLES",
    "PatrolCoverage",
    "PatrolTrack",
    "PatrolVisit",
    "ServiceCentre",
    "Staff",
    "Subdistrict",
    "audited_tables",
    "grid_on_sql",
    "table_names",
]
