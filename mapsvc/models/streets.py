"""Alley segments (街巷段): the streets and alleys chiefs are assigned to."""

from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from mapsvc.models.base import Base, length_column


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
    length_m: Mapped[float] = length_column()
