"""Patrols on the ground: GPS tracks (日巡查) and weekly visits (周走访)."""

from __future__ import annotations

import datetime as dt

from geoalchemy2 import Geometry
from sqlalchemy import (
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from mapsvc.models.base import Base, length_column


class PatrolTrack(Base):
    """A GPS track of one person on one day; M values are Unix timestamps (seconds)."""

    __tablename__ = "patrol_track"
    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    day: Mapped[dt.date] = mapped_column(Date, index=True)
    geom = mapped_column(Geometry("LINESTRINGM", srid=4326, spatial_index=True), nullable=False)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    source_crs: Mapped[str | None] = mapped_column(String(40))
    points_total: Mapped[int] = mapped_column(Integer, default=0)
    points_dropped: Mapped[int] = mapped_column(Integer, default=0)
    length_m: Mapped[float] = length_column()
    __table_args__ = (Index("ix_patrol_track_staff_day", "staff_id", "day"),)


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
    note: Mapped[str | None] = mapped_column(String(2000))
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


#: tables that hold results kept for speed, not data: empty until something asks for them
DERIVED_TABLES = ("patrol_coverage",)


class PatrolCoverage(Base):
    """One day's segment coverage as computed from its tracks, kept across restarts.

    Computing which segments a day's tracks cover takes seconds (buffers, intersections);
    the patrol pages ask for every day of a week. The result is kept here under a key made
    of the day, the buffer, the segments asked about and a fingerprint of the day's tracks
    and of the streets (see :func:`mapsvc.services.patrol.segment_coverage`), so any new,
    changed or deleted track or street makes a new key: a kept row is never stale, and a
    restarted server reads it instead of computing again. ``coverage`` maps a segment id
    to ``[share, [staff ids]]``.
    """

    __tablename__ = "patrol_coverage"
    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, index=True)
    fingerprint: Mapped[str] = mapped_column(String(32))
    coverage = mapped_column(JSONB, nullable=False)
    made_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
