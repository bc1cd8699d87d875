"""Incidents (事件) and their closed loop: categories, incidents, the history of each step.

``incident_event`` is the audit trail of the closed loop: one row per state change (and one
for the intake itself, with ``from_state`` NULL), so "who did what when" is never lost and
time-to-close figures can be recomputed from events, not only from ``incident.closed_at``.
"""

from __future__ import annotations

import datetime as dt

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Computed,
    DateTime,
    Float,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from mapsvc.models.base import Base

#: incident severity classes: 小微 minor, 一般 ordinary, 较大 major, 重大 grave
SEVERITIES = ("minor", "ordinary", "major", "grave")
#: closed-loop states
STATES = ("received", "dispatched", "in_hand", "verified", "closed", "returned", "reopened")
SOURCES = ("hotline", "patrol", "resident")
#: the unique constraint of ``incident.external_id`` (PostgreSQL's name for it), which
#: decides between concurrent intakes of one external id
EXTERNAL_ID_UNIQUE = "incident_external_id_key"


class IncidentCategory(Base):
    """Incident category; also the Open311 ``service``."""

    __tablename__ = "incident_category"
    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100))
    group: Mapped[str | None] = mapped_column(String(60))
    default_severity: Mapped[str] = mapped_column(String(10), default="ordinary")


class Incident(Base):
    """事件: a point with a source, category, severity class and a closed-loop state."""

    __tablename__ = "incident"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(String(20), default="hotline")
    category: Mapped[str] = mapped_column(ForeignKey("incident_category.code"), index=True)
    severity: Mapped[str] = mapped_column(String(10), default="ordinary")
    state: Mapped[str] = mapped_column(String(12), default="received", index=True)
    #: the caller's words; sized so one request cannot make every list heavy
    description: Mapped[str | None] = mapped_column(String(5000))
    address: Mapped[str | None] = mapped_column(String(300))
    geom = mapped_column(Geometry("POINT", srid=4326, spatial_index=True), nullable=False)
    source_crs: Mapped[str | None] = mapped_column(String(40))
    #: "coordinates", or the geocoder's precision class for a point found from the address
    located_by: Mapped[str] = mapped_column(String(16), server_default="coordinates")
    reported_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    due_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    rating: Mapped[int | None] = mapped_column(SmallInteger)
    # routing results (see mapsvc.services.routing)
    community_id: Mapped[int | None] = mapped_column(
        ForeignKey("community.id", ondelete="SET NULL"), index=True
    )
    grid_id: Mapped[int | None] = mapped_column(
        ForeignKey("grid.id", ondelete="SET NULL"), index=True
    )
    segment_id: Mapped[int | None] = mapped_column(
        ForeignKey("alley_segment.id", ondelete="SET NULL"), index=True
    )
    chief_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff.id", ondelete="SET NULL"), index=True
    )
    grid_head_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    segment_distance_m: Mapped[float | None] = mapped_column(Float)
    location_to_confirm: Mapped[bool] = mapped_column(default=False)
    #: Web Mercator position (generated, so nothing can forget to set it), indexed together
    #: in ix_incident_xy: the heatmap layer bins a district-wide view of a million incidents
    #: from that index alone (index-only scan)
    x_m: Mapped[float] = mapped_column(
        Float(precision=53), Computed("ST_X(ST_Transform(geom, 3857))")
    )
    y_m: Mapped[float] = mapped_column(
        Float(precision=53), Computed("ST_Y(ST_Transform(geom, 3857))")
    )
    __table_args__ = (
        Index("ix_incident_xy", "x_m", "y_m"),
        CheckConstraint(f"severity IN {SEVERITIES!r}", name="ck_incident_severity"),
        CheckConstraint(f"state IN {STATES!r}", name="ck_incident_state"),
        CheckConstraint("rating IS NULL OR rating BETWEEN 1 AND 5", name="ck_incident_rating"),
        # the rating judges a closure: a reopen clears it, an open incident cannot have one
        CheckConstraint("rating IS NULL OR state = 'closed'", name="ck_incident_rated_closed"),
    )


class IncidentEvent(Base):
    """One transition of an incident's state, with actor, time and note."""

    __tablename__ = "incident_event"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("incident.id", ondelete="CASCADE"), nullable=False
    )
    from_state: Mapped[str | None] = mapped_column(String(12))
    to_state: Mapped[str] = mapped_column(String(12))
    actor: Mapped[str] = mapped_column(String(100))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    note: Mapped[str | None] = mapped_column(String(2000))
    __table_args__ = (Index("ix_incident_event_incident_at", "incident_id", "at"),)
