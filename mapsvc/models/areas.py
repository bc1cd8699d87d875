"""Administrative areas and what is drawn on them: district, subdistrict, community, grid,
service centre."""

from __future__ import annotations

import datetime as dt

from geoalchemy2 import Geometry
from sqlalchemy import (
    CheckConstraint,
    ColumnElement,
    Date,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    and_,
    or_,
    text,
)
from sqlalchemy.dialects.postgresql import ExcludeConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mapsvc.models.base import Base, area_column


class District(Base):
    """区 / county-level district."""

    __tablename__ = "district"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(12), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=True), nullable=False)
    source_crs: Mapped[str | None] = mapped_column(String(40))
    area_km2: Mapped[float] = area_column()


class Subdistrict(Base):
    """街道 / town."""

    __tablename__ = "subdistrict"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(12), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    district_id: Mapped[int | None] = mapped_column(ForeignKey("district.id", ondelete="CASCADE"))
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=True), nullable=False)
    source_crs: Mapped[str | None] = mapped_column(String(40))
    area_km2: Mapped[float] = area_column()
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
    area_km2: Mapped[float] = area_column()
    subdistrict: Mapped[Subdistrict | None] = relationship()


#: the days a grid row is valid on, as a range (``valid_from`` NULL: since always)
GRID_DAYS = "daterange(COALESCE(valid_from, '-infinity'::date), valid_to + 1)"


def grid_on_sql(alias: str = "grid", day: str | None = None) -> str:
    """SQL text: the rows of ``alias`` (the grid table) valid on the bound parameter
    ``day`` (e.g. ``":day"``); the current grids when ``day`` is None."""
    if day is None:
        return f"{alias}.valid_to IS NULL"
    return (
        f"({alias}.valid_from IS NULL OR {alias}.valid_from <= {day}) "
        f"AND ({alias}.valid_to IS NULL OR {alias}.valid_to >= {day})"
    )


class Grid(Base):
    """网格: a polygon inside exactly one community, valid over a range of days.

    Publishing a plan (:mod:`mapsvc.services.plans`) ends the old grids of its communities
    (``valid_to``, inclusive) and adds the new ones (``valid_from``), so the grids of any
    past date are still the ones that were valid then. ``valid_to`` NULL is the current
    grid; ``valid_from`` NULL is "since always" (grids imported before any plan). A code
    names one grid on any one day (the ``ex_grid_code`` exclusion constraint); a grid that
    a plan redraws may keep its code.
    """

    __tablename__ = "grid"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(20))
    name: Mapped[str | None] = mapped_column(String(100))
    community_id: Mapped[int] = mapped_column(
        ForeignKey("community.id", ondelete="CASCADE"), index=True, nullable=False
    )
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=True), nullable=False)
    population: Mapped[int] = mapped_column(Integer, default=0)
    households: Mapped[int] = mapped_column(Integer, default=0)
    source_crs: Mapped[str | None] = mapped_column(String(40))
    area_km2: Mapped[float] = area_column()
    valid_from: Mapped[dt.date | None] = mapped_column(Date)
    valid_to: Mapped[dt.date | None] = mapped_column(Date)
    community: Mapped[Community] = relationship()

    @classmethod
    def on(cls, day: dt.date | None = None) -> ColumnElement[bool]:
        """The grids valid on ``day``; the current ones when ``day`` is None."""
        if day is None:
            return cls.valid_to.is_(None)
        return and_(
            or_(cls.valid_from.is_(None), cls.valid_from <= day),
            or_(cls.valid_to.is_(None), cls.valid_to >= day),
        )

    __table_args__ = (
        CheckConstraint(
            "valid_to IS NULL OR valid_from IS NULL OR valid_to >= valid_from - 1",
            name="ck_grid_dates",
        ),
        ExcludeConstraint(
            (text("code"), "="),
            (text(GRID_DAYS), "&&"),
            name="ex_grid_code",
            using="gist",
        ),
    )


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
