"""Tables of the streets and patrol feature area (beyond those in :mod:`mapsvc.models.core`).

``patrol_visit`` records the weekly visits (周走访) chiefs and grid staff log: who visited
which segment or grid (or a free-text place) on which day, optionally where.
"""

from __future__ import annotations

import datetime as dt

from geoalchemy2 import Geometry
from sqlalchemy import CheckConstraint, Date, DateTime, ForeignKey, Index, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from mapsvc.models.core import Base


class PatrolVisit(Base):
    """A visit logged by a person on a day (周走访): to a segment, a grid, or a place."""

    __tablename__ = "patrol_visit"
    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    day: Mapped[dt.date] = mapped_column(Date, index=True)
    segment_id: Mapped[int | None] = mapped_column(
        ForeignKey("alley_segment.id", ondelete="SET NULL"), index=True
    )
    grid_id: Mapped[int | None] = mapped_column(
        ForeignKey("grid.id", ondelete="SET NULL"), index=True
    )
    place: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    geom = mapped_column(Geometry("POINT", srid=4326, spatial_index=True), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    __table_args__ = (
        CheckConstraint(
            "segment_id IS NOT NULL OR grid_id IS NOT NULL OR place IS NOT NULL",
            name="ck_patrol_visit_target",
        ),
        Index("ix_patrol_visit_staff_day", "staff_id", "day"),
    )
