"""Administrative areas and what is drawn on them: district, subdistrict, community, grid,
service centre."""

from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import (
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
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
    area_km2: Mapped[float] = area_column()
    community: Mapped[Community] = relationship()


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
