"""Who holds which post on a given day: the one place that reads and writes ``assignment``.

Assignments carry ``valid_from`` / ``valid_to`` (both inclusive; ``valid_to`` NULL means
open-ended) so history is kept: ending a post sets ``valid_to`` rather than deleting a row,
and every map or figure can be computed "as of" any past date.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.orm import Session, aliased

from mapsvc.config import Settings
from mapsvc.core.errors import NotFound, ValidationError
from mapsvc.models import Assignment, Staff

#: roles held by one person at a time on a target; others (grid members...) may be many
SINGLE_HOLDER_ROLES = {"grid_head", "alley_chief", "deputy_chief"}
TARGET_ROLES = {
    "grid": {"grid_head", "grid_member"},
    "segment": {"alley_chief", "deputy_chief"},
    "community": {"community_worker", "dispatched", "grid_head", "grid_member"},
}


def valid_on(day: dt.date | None = None) -> sa.ColumnElement[bool]:
    """SQL condition: the assignment is in force on ``day`` (default today)."""
    day = day or Settings().today()
    return sa.and_(
        Assignment.valid_from <= day,
        sa.or_(Assignment.valid_to.is_(None), Assignment.valid_to >= day),
    )


def holders(role: str, target: str, day: dt.date | None = None) -> sa.Select:
    """``SELECT target_id, staff_id`` for ``role`` on ``target`` ('grid'|'segment'|'community').

    For single-holder roles at most one row per target is returned (the latest start).
    """
    col = {
        "grid": Assignment.grid_id,
        "segment": Assignment.segment_id,
        "community": Assignment.community_id,
    }[target]
    q = sa.select(col.label("target_id"), Assignment.staff_id).where(
        Assignment.role == role, col.is_not(None), valid_on(day)
    )
    if role in SINGLE_HOLDER_ROLES:
        q = q.ext(distinct_on(col)).order_by(
            col, Assignment.valid_from.desc(), Assignment.id.desc()
        )
    return q


@dataclass(frozen=True)
class SegmentPosts:
    """The chief and deputy chief of alley segments on one day, ready to join.

    The one join of a segment with its two posts, for every map and table that shows
    them (the segments layer, the coverage tables). Select its columns (``chief_id``,
    ``chief_name``, ``deputy_id``, ``deputy_name``; NULL for a post nobody holds) and add
    the joins with :meth:`join`. Who holds a post is :func:`holders`' answer, as
    everywhere.

    Why joins and not one subquery to join: the same rows as a subquery (the two posts
    full-joined) ran as fast when planned for its bounding box, but psycopg prepares a
    statement after five runs, and PostgreSQL's generic plan of it took about a second
    for a street-level map view (30 times the plain joins', measured on the demo).
    """

    chief: sa.Subquery
    deputy: sa.Subquery
    chief_staff: Any
    deputy_staff: Any

    @property
    def chief_id(self) -> sa.ColumnElement[int]:
        return self.chief.c.staff_id.label("chief_id")

    @property
    def chief_name(self) -> sa.ColumnElement[str]:
        return self.chief_staff.name.label("chief_name")

    @property
    def deputy_id(self) -> sa.ColumnElement[int]:
        return self.deputy.c.staff_id.label("deputy_id")

    @property
    def deputy_name(self) -> sa.ColumnElement[str]:
        return self.deputy_staff.name.label("deputy_name")

    def join(self, stmt: sa.Select, segment_id: sa.ColumnElement[int]) -> sa.Select:
        """``stmt`` outer-joined to the posts of the segment ``segment_id``: a segment
        with no chief or no deputy keeps its row."""
        return (
            stmt.outerjoin(self.chief, self.chief.c.target_id == segment_id)
            .outerjoin(self.chief_staff, self.chief_staff.id == self.chief.c.staff_id)
            .outerjoin(self.deputy, self.deputy.c.target_id == segment_id)
            .outerjoin(self.deputy_staff, self.deputy_staff.id == self.deputy.c.staff_id)
        )


def segment_posts(day: dt.date | None = None) -> SegmentPosts:
    """The chief and deputy chief posts of alley segments on ``day`` (default today)."""
    return SegmentPosts(
        chief=holders("alley_chief", "segment", day).subquery("chief"),
        deputy=holders("deputy_chief", "segment", day).subquery("deputy"),
        chief_staff=aliased(Staff, name="chief_staff"),
        deputy_staff=aliased(Staff, name="deputy_staff"),
    )


def assign(
    session: Session,
    staff_id: int,
    role: str,
    *,
    grid_id: int | None = None,
    segment_id: int | None = None,
    community_id: int | None = None,
    valid_from: dt.date | None = None,
) -> Assignment:
    """Give ``staff_id`` a post from ``valid_from`` (default today).

    For single-holder roles the current holder's assignment ends the day before, so the
    history shows who held the post when. The caller owns the transaction.
    """
    targets = {"grid": grid_id, "segment": segment_id, "community": community_id}
    given = {k: v for k, v in targets.items() if v is not None}
    if len(given) != 1:
        raise ValidationError(
            "an assignment needs exactly one of grid_id, segment_id, community_id"
        )
    ((target, target_id),) = given.items()
    if role not in TARGET_ROLES[target]:
        raise ValidationError(
            f"role {role!r} cannot be assigned to a {target}",
            field="role",
            allowed=sorted(TARGET_ROLES[target]),
        )
    if session.get(Staff, staff_id) is None:
        raise NotFound(f"staff {staff_id} does not exist", field="staff_id")
    start = valid_from or Settings().today()
    if role in SINGLE_HOLDER_ROLES:
        col = getattr(Assignment, f"{target}_id")
        current = session.scalars(
            sa.select(Assignment).where(Assignment.role == role, col == target_id, valid_on(start))
        ).all()
        for a in current:
            if a.staff_id == staff_id:
                return a
            a.valid_to = max(a.valid_from, start - dt.timedelta(days=1))
    a = Assignment(staff_id=staff_id, role=role, valid_from=start, **{f"{target}_id": target_id})
    session.add(a)
    session.flush()
    return a


def end_assignment(session: Session, assignment_id: int, last_day: dt.date | None = None) -> None:
    """End an assignment on ``last_day`` (inclusive; default yesterday)."""
    a = session.get(Assignment, assignment_id)
    if a is None:
        raise NotFound(f"assignment {assignment_id} does not exist")
    a.valid_to = last_day or (Settings().today() - dt.timedelta(days=1))
