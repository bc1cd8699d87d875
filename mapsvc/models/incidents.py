"""Tables of the incidents feature area (beyond those in :mod:`mapsvc.models.core`).

``incident_event`` is the audit trail of the closed loop: one row per state change (and one
for the intake itself, with ``from_state`` NULL), so "who did what when" is never lost and
time-to-close figures can be recomputed from events, not only from ``incident.closed_at``.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Column,
    Computed,
    DateTime,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from mapsvc.models.core import Base, Incident

#: Web Mercator position of each incident (generated, so nothing can forget to set it) and
#: a btree over it: the heatmap layer (layers/heatmap.py) bins a district-wide view of a
#: million incidents from this index alone (index-only scan). Declared here, on the core
#: table, because the heatmap is this feature area's concern; migration 0002 creates them.
for _col, _fn in (("x_m", "ST_X"), ("y_m", "ST_Y")):
    if _col not in Incident.__table__.c:
        Incident.__table__.append_column(
            Column(_col, Float(precision=53), Computed(f"{_fn}(ST_Transform(geom, 3857))"))
        )
if not any(ix.name == "ix_incident_xy" for ix in Incident.__table__.indexes):
    Index("ix_incident_xy", Incident.__table__.c.x_m, Incident.__table__.c.y_m)


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
    note: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (Index("ix_incident_event_incident_at", "incident_id", "at"),)


__all__ = ["IncidentEvent"]
