"""Staff (人员) and their posts: who holds which grid, segment or community, and when."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKey,
    String,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ExcludeConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mapsvc.models.base import Base

#: staff roles; ``dispatched`` staff carry a ``dispatched_kind`` too
ROLES = (
    "community_worker",
    "grid_head",
    "grid_member",
    "alley_chief",
    "deputy_chief",
    "dispatched",
)
#: roles one person holds at a time on a target (others, grid members..., may be many)
SINGLE_HOLDER_ROLES = ("alley_chief", "deputy_chief", "grid_head")
DISPATCHED_KINDS = ("police", "city_management", "doctor", "mediator", "lawyer", "fire", "other")


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


def _one_holder(target: str) -> ExcludeConstraint:
    """At most one holder of a single-holder post on ``target`` on any day.

    The validity range is ``[valid_from, valid_to]`` with both days inclusive, written
    half-open as ``daterange(valid_from, valid_to + 1)``: a NULL ``valid_to`` is an
    open end, and a post withdrawn the day it would have started (``valid_to =
    valid_from - 1``) is an empty range that overlaps nothing.
    """
    return ExcludeConstraint(
        (text(target), "="),
        (text("role"), "="),
        (text("daterange(valid_from, valid_to + 1)"), "&&"),
        name=f"ex_assignment_{target.removesuffix('_id')}_post",
        using="gist",
        where=text(f"{target} IS NOT NULL AND role IN {SINGLE_HOLDER_ROLES!r}"),
    )


class Assignment(Base):
    """Staff ↔ grid / segment / community with a role and a validity interval (history kept).

    ``valid_from`` and ``valid_to`` are both inclusive; ``valid_to`` NULL is open-ended,
    and ``valid_to = valid_from - 1`` marks a post withdrawn before it began (replaced the
    same day). The database itself refuses two holders of one single-holder post on one
    day (the ``ex_assignment_*_post`` constraints, which need ``btree_gist``).
    """

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
        CheckConstraint(
            "valid_to IS NULL OR valid_to >= valid_from - 1", name="ck_assignment_dates"
        ),
        CheckConstraint(f"role IN {ROLES!r}", name="ck_assignment_role"),
        _one_holder("segment_id"),
        _one_holder("grid_id"),
        _one_holder("community_id"),
    )
