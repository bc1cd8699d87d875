"""Plans: named drafts of grids for one or more communities, edited, checked and published.

A plan never touches the live ``grid`` table until it is published
(:func:`mapsvc.services.plans.publish`), which ends the communities' grids and adds the
plan's in one transaction. Each plan grid carries a version so two planners editing the
same grid cannot overwrite each other unseen.
"""

from __future__ import annotations

import datetime as dt

from geoalchemy2 import Geometry
from sqlalchemy import (
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from mapsvc.models.base import Base, area_column

#: a plan's life: edited while a draft; published once; a discarded draft is kept for the record
PLAN_STATUSES = ("draft", "published", "discarded")
#: where a plan's first grids came from
PLAN_SOURCES = ("current", "file", "auto")


class Plan(Base):
    """规划方案: a named draft of grids."""

    __tablename__ = "plan"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(12), server_default="draft")
    source: Mapped[str] = mapped_column(String(12))
    author: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    published_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    published_on: Mapped[dt.date | None] = mapped_column(Date)
    #: what publishing did (grids ended and added, posts and incidents re-linked)
    report = mapped_column(JSONB)
    __table_args__ = (
        CheckConstraint(f"status IN {PLAN_STATUSES!r}", name="ck_plan_status"),
        CheckConstraint(f"source IN {PLAN_SOURCES!r}", name="ck_plan_source"),
        CheckConstraint(
            "(status = 'published') = (published_on IS NOT NULL)", name="ck_plan_published"
        ),
    )


class PlanCommunity(Base):
    """The communities a plan redraws: publishing replaces all their grids."""

    __tablename__ = "plan_community"
    plan_id: Mapped[int] = mapped_column(
        ForeignKey("plan.id", ondelete="CASCADE"), primary_key=True
    )
    community_id: Mapped[int] = mapped_column(
        ForeignKey("community.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class PlanGrid(Base):
    """One grid of a plan, with the version that guards concurrent edits."""

    __tablename__ = "plan_grid"
    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plan.id", ondelete="CASCADE"), index=True)
    community_id: Mapped[int] = mapped_column(
        ForeignKey("community.id", ondelete="CASCADE"), index=True
    )
    code: Mapped[str] = mapped_column(String(20))
    name: Mapped[str | None] = mapped_column(String(100))
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=True), nullable=False)
    households: Mapped[int] = mapped_column(Integer, server_default="0")
    population: Mapped[int] = mapped_column(Integer, server_default="0")
    area_km2: Mapped[float] = area_column()
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    __table_args__ = (
        UniqueConstraint("plan_id", "code", name="uq_plan_grid_code"),
        CheckConstraint("households >= 0 AND population >= 0", name="ck_plan_grid_figures"),
    )


class PlanningUnit(Base):
    """规划单元: a block or building group, the piece automatic grids are made of.

    Imported from a file (``mapsvc import units``) or, in the demo, generated. Units with
    the same ``group_code`` (an estate, a school) stay in one grid.
    """

    __tablename__ = "planning_unit"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40))
    community_id: Mapped[int] = mapped_column(
        ForeignKey("community.id", ondelete="CASCADE"), index=True
    )
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=True), nullable=False)
    households: Mapped[int] = mapped_column(Integer, server_default="0")
    population: Mapped[int] = mapped_column(Integer, server_default="0")
    group_code: Mapped[str | None] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(40), server_default="file")
    area_km2: Mapped[float] = area_column()
    __table_args__ = (
        UniqueConstraint("community_id", "code", name="uq_planning_unit_code"),
        CheckConstraint("households >= 0 AND population >= 0", name="ck_planning_unit_figures"),
    )
