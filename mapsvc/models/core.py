"""Core domain tables: administrative areas, grids, alley segments, staff, incidents, tracks.

Geometries are stored in WGS84 (EPSG:4326) with GiST indexes. Areas (km²) and lengths (m)
are generated columns computed on the spheroid through ``geography``, so there is exactly
one formula for them and it is never in degrees.
"""

from __future__ import annotations

import datetime as dt

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Computed,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

AREA_KM2 = "ST_Area(geography(geom)) / 1000000.0"
LENGTH_M = "ST_Length(geography(geom))"

#: staff roles; ``dispatched`` staff carry a ``dispatched_kind`` too
ROLES = (
    "community_worker",
    "grid_head",
    "grid_member",
    "alley_chief",
    "deputy_chief",
    "dispatched",
)
DISPATCHED_KINDS = ("police", "city_management", "doctor", "mediator", "lawyer", "fire", "other")
#: incident severity classes: 小微 minor, 一般 ordinary, 较大 major, 重大 grave
SEVERITIES = ("minor", "ordinary", "major", "grave")
#: closed-loop states
STATES = ("received", "dispatched", "in_hand", "verified", "closed", "returned", "reopened")
SOURCES = ("hotline", "patrol", "resident")


class Base(DeclarativeBase):
    pass


def _area() -> Mapped[float]:
    return mapped_column(Float, Computed(AREA_KM2, persisted=True))


class District(Base):
    """区 / county-level district."""

    __tablename__ = "district"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(12), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=True), nullable=False)
    source_crs: Mapped[str | None] = mapped_column(String(40))
    area_km2: Mapped[float] = _area()


class Subdistrict(Base):
    """街道 / town."""

    __tablename__ = "subdistrict"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(12), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    district_id: Mapped[int | None] = mapped_column(ForeignKey("district.id", ondelete="CASCADE"))
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=True), nullable=False)
    source_crs: Mapped[str | None] = mapped_column(String(40))
    area_km2: Mapped[float] = _area()
    district: Mapped[District | None] = relationship()


class Community(Base):
    """社区 / village committee: the unit that grids tile."""

    __tablename__ = "community"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(12), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    subdistrict_id: Mapped[int | None] = mapped_column(
        ForeignKey("subdistrict.id", ondelete="CASCADE"), index=True
    )
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=True), nullable=False)
    population: Mapped[int] = mapped_column(Integer, default=0)
    households: Mapped[int] = mapped_column(Integer, default=0)
    enterprises: Mapped[int] = mapped_column(Integer, default=0)
    ur_code: Mapped[str | None] = mapped_column(String(3))
    source_crs: Mapped[str | None] = mapped_column(String(40))
    area_km2: Mapped[float] = _area()
    subdistrict: Mapped[Subdistrict | None] = relationship()


class Grid(Base):
    """网格: a polygon inside exactly one community."""

    __tablename__ = "grid"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str | None] = mapped_column(String(100))
    community_id: Mapped[int] = mapped_column(
        ForeignKey("community.id", ondelete="CASCADE"), index=True, nullable=False
    )
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=True), nullable=False)
    population: Mapped[int] = mapped_column(Integer, default=0)
    households: Mapped[int] = mapped_column(Integer, default=0)
    source_crs: Mapped[str | None] = mapped_column(String(40))
    area_km2: Mapped[float] = _area()
    community: Mapped[Community] = relationship()


class AlleySegment(Base):
    """街巷段: a street or alley between two junctions (or a named stretch).

    ``code`` is the stable id: ``osm:<way id>:<piece>`` for OpenStreetMap imports, so a
    re-import keeps assignments.
    """

    __tablename__ = "alley_segment"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    geom = mapped_column(Geometry("LINESTRING", srid=4326, spatial_index=True), nullable=False)
    osm_way_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    piece: Mapped[int | None] = mapped_column(Integer)
    highway: Mapped[str | None] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(20), default="demo")
    length_m: Mapped[float] = mapped_column(Float, Computed(LENGTH_M, persisted=True))


class Staff(Base):
    """人员: anyone with a role in grid or alley work."""

    __tablename__ = "staff"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str | None] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(30))
    role: Mapped[str] = mapped_column(String(30), index=True)
    dispatched_kind: Mapped[str | None] = mapped_column(String(30))
    community_id: Mapped[int | None] = mapped_column(
        ForeignKey("community.id", ondelete="SET NULL"), index=True
    )
    __table_args__ = (CheckConstraint(f"role IN {ROLES!r}", name="ck_staff_role"),)


class Assignment(Base):
    """Staff ↔ grid / segment / community with a role and a validity interval (history kept)."""

    __tablename__ = "assignment"
    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(30))
    grid_id: Mapped[int | None] = mapped_column(
        ForeignKey("grid.id", ondelete="CASCADE"), index=True
    )
    segment_id: Mapped[int | None] = mapped_column(
        ForeignKey("alley_segment.id", ondelete="CASCADE"), index=True
    )
    community_id: Mapped[int | None] = mapped_column(
        ForeignKey("community.id", ondelete="CASCADE"), index=True
    )
    valid_from: Mapped[dt.date] = mapped_column(Date, server_default=func.current_date())
    valid_to: Mapped[dt.date | None] = mapped_column(Date)
    staff: Mapped[Staff] = relationship()
    __table_args__ = (
        CheckConstraint(
            "num_nonnulls(grid_id, segment_id, community_id) = 1", name="ck_assignment_target"
        ),
        CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="ck_assignment_dates"),
        CheckConstraint(f"role IN {ROLES!r}", name="ck_assignment_role"),
    )


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
    description: Mapped[str | None] = mapped_column(Text)
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
    __table_args__ = (
        CheckConstraint(f"severity IN {SEVERITIES!r}", name="ck_incident_severity"),
        CheckConstraint(f"state IN {STATES!r}", name="ck_incident_state"),
        CheckConstraint("rating IS NULL OR rating BETWEEN 1 AND 5", name="ck_incident_rating"),
    )


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
    length_m: Mapped[float] = mapped_column(Float, Computed(LENGTH_M, persisted=True))
    __table_args__ = (Index("ix_patrol_track_staff_day", "staff_id", "day"),)


class ServiceCentre(Base):
    """党群服务中心: a point."""

    __tablename__ = "service_centre"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    community_id: Mapped[int | None] = mapped_column(
        ForeignKey("community.id", ondelete="SET NULL"), index=True
    )
    geom = mapped_column(Geometry("POINT", srid=4326, spatial_index=True), nullable=False)
    __table_args__ = (UniqueConstraint("name", "community_id", name="uq_service_centre_name"),)
