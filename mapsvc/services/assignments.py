"""Who holds which post on a given day: the one place that reads and writes ``assignment``.

Assignments carry ``valid_from`` / ``valid_to`` (both inclusive; ``valid_to`` NULL means
open-ended) so history is kept: ending a post sets ``valid_to`` rather than deleting a row,
and every map or figure can be computed "as of" any past date. A post replaced on the day
it began is kept as withdrawn (``valid_to = valid_from - 1``: in force on no day).

Concurrent changes of one post are serialised by a row lock on the post's target (the
segment, grid or community), and the database refuses two holders of a single-holder post
on one day (``ex_assignment_*_post``) as the last word: a request that still collides is a
409, never two chiefs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.orm import Session, aliased

from mapsvc.config import Settings
from mapsvc.core.errors import Conflict, NotFound, ValidationError
from mapsvc.models import SINGLE_HOLDER_ROLES, AlleySegment, Assignment, Community, Grid, Staff
from mapsvc.services.integrity import constraint_errors

#: the table of each kind of target, locked while one of its posts changes
TARGET_MODELS = {"grid": Grid, "segment": AlleySegment, "community": Community}
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

    For single-holder roles the current holder's assignment ends the day before (or is
    withdrawn, when it began that same day), so the history shows who held the post
    when; giving the post to its current holder again changes nothing. The target's row
    is locked (``SELECT ... FOR UPDATE``) until the caller's transaction ends, so two
    requests for one post run one after the other. The caller owns the transaction.

    Raises
    ------
    ValidationError
        No single target, or a role the target cannot have.
    NotFound
        The staff member or the target does not exist.
    Conflict
        Another holder's assignment already covers a day from ``valid_from`` on (a
        later appointment), so the post would have two holders.
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
    model = TARGET_MODELS[target]
    locked = session.scalar(sa.select(model.id).where(model.id == target_id).with_for_update())
    if locked is None:
        raise NotFound(f"{target} {target_id} does not exist", field=f"{target}_id")
    start = valid_from or Settings().today()
    col = getattr(Assignment, f"{target}_id")
    if role in SINGLE_HOLDER_ROLES:
        current = session.scalars(
            sa.select(Assignment)
            .where(Assignment.role == role, col == target_id, valid_on(start))
            .order_by(Assignment.valid_from, Assignment.id)
            .execution_options(populate_existing=True)
        ).all()
        for a in current:
            if a.staff_id == staff_id:
                return a
        for a in current:
            a.valid_to = start - dt.timedelta(days=1)
        later = session.scalars(
            sa.select(Assignment)
            .where(Assignment.role == role, col == target_id, Assignment.valid_from > start)
            .order_by(Assignment.valid_from, Assignment.id)
            .limit(1)
        ).first()
        if later is not None:
            raise Conflict(
                f"{role} of {target} {target_id} is already given to staff {later.staff_id} "
                f"from {later.valid_from.isoformat()}; end that assignment first",
                field="valid_from",
                assignment_id=later.id,
            )
    a = Assignment(staff_id=staff_id, role=role, valid_from=start, **{f"{target}_id": target_id})
    busy = Conflict(
        f"{role} of {target} {target_id} has another holder on a day from "
        f"{start.isoformat()} on; try again",
        field=f"{target}_id",
    )
    with constraint_errors(session, {f"ex_assignment_{target}_post": busy}):
        session.add(a)
        session.flush()
    return a


#: one row of :func:`assign_segments`: segment id, staff id, role, first day (None: today)
SegmentPost = tuple[int, int, str, "dt.date | None"]


def assign_segments(session: Session, rows: list[SegmentPost], today: dt.date | None = None) -> int:
    """Give many segments their chief or deputy at once, as :func:`assign` would row by row.

    A CSV of a district's 5,000 segments took 29-54 s through :func:`assign` (six
    statements a row); here the rows go to PostgreSQL as arrays, and each step (lock the
    segments, read the holders in force on each row's day, find later appointments, end
    the holders, insert the new posts) is one statement for all of them. Rows naming a
    (segment, role) a second time are applied after the first, in their order, through
    :func:`assign`, so a file that gives a post twice means what it says.

    The same refusals as :func:`assign`: a later appointment of another holder is a
    :class:`Conflict` naming it, and the database's one-holder constraint has the last
    word. Returns the number of rows applied (a post given to its holder again counts and
    changes nothing).
    """
    if not rows:
        return 0
    for _seg, _staff, role, _day in rows:
        if role not in TARGET_ROLES["segment"]:
            raise ValidationError(f"role {role!r} cannot be assigned to a segment", field="role")
    start = today or Settings().today()
    once: list[SegmentPost] = []  # the first row of each (segment, role)
    again: list[SegmentPost] = []
    seen: set[tuple[int, str]] = set()
    for row in rows:
        key = (row[0], row[2])
        (again if key in seen else once).append(row)
        seen.add(key)
    session.flush()
    conn = session.connection()
    conn.execute(
        sa.text(
            "SELECT id FROM alley_segment WHERE id = ANY(CAST(:s AS bigint[])) "
            "ORDER BY id FOR UPDATE"
        ),
        {"s": sorted({r[0] for r in rows})},
    )
    given = {
        "i": list(range(len(once))),
        "seg": [r[0] for r in once],
        "staff": [r[1] for r in once],
        "role": [r[2] for r in once],
        "day": [r[3] or start for r in once],
    }
    t = (
        "unnest(CAST(:i AS int[]), CAST(:seg AS bigint[]), CAST(:staff AS bigint[]), "
        "CAST(:role AS text[]), CAST(:day AS date[])) AS t(i, seg, staff, role, day)"
    )
    held = conn.execute(
        sa.text(
            f"SELECT t.i, a.id, a.staff_id FROM {t} JOIN assignment a ON a.segment_id = t.seg "
            "AND a.role = t.role AND a.valid_from <= t.day "
            "AND (a.valid_to IS NULL OR a.valid_to >= t.day)"
        ),
        given,
    ).all()
    unchanged = {i for i, _a, holder in held if holder == given["staff"][i]}
    todo = [i for i in given["i"] if i not in unchanged]
    if todo:
        chosen = {k: [v[i] for i in todo] for k, v in given.items()}
        later = conn.execute(
            sa.text(
                f"SELECT t.seg, t.role, a.id, a.staff_id, a.valid_from FROM {t} "
                "JOIN assignment a ON a.segment_id = t.seg AND a.role = t.role "
                "AND a.valid_from > t.day ORDER BY t.i, a.valid_from, a.id LIMIT 1"
            ),
            chosen,
        ).first()
        if later is not None:
            seg, role, aid, holder, day = later
            raise Conflict(
                f"{role} of segment {seg} is already given to staff {holder} "
                f"from {day.isoformat()}; end that assignment first",
                field="valid_from",
                assignment_id=aid,
            )
        busy = Conflict(
            "a segment of the file has another holder on a day from its row's valid_from on; "
            "try again",
            field="segment_id",
        )
        with constraint_errors(session, {"ex_assignment_segment_post": busy}):
            conn.execute(
                sa.text(
                    f"UPDATE assignment a SET valid_to = t.day - 1 FROM {t} "
                    "WHERE a.segment_id = t.seg AND a.role = t.role AND a.valid_from <= t.day "
                    "AND (a.valid_to IS NULL OR a.valid_to >= t.day)"
                ),
                chosen,
            )
            conn.execute(
                sa.text(
                    "INSERT INTO assignment (staff_id, role, segment_id, valid_from) "
                    f"SELECT t.staff, t.role, t.seg, t.day FROM {t} ORDER BY t.i"
                ),
                chosen,
            )
    session.expire_all()  # the ORM's copies of these assignments are stale now
    for seg, staff, role, day in again:
        assign(session, staff, role, segment_id=seg, valid_from=day or start)
    return len(rows)


def end_assignment(session: Session, assignment_id: int, last_day: dt.date | None = None) -> None:
    """End an assignment on ``last_day`` (inclusive; default yesterday).

    The day before it began withdraws it (in force on no day); earlier is a
    :class:`ValidationError`, since such a range means nothing.
    """
    a = session.get(Assignment, assignment_id, with_for_update=True, populate_existing=True)
    if a is None:
        raise NotFound(f"assignment {assignment_id} does not exist")
    last = last_day or (Settings().today() - dt.timedelta(days=1))
    if last < a.valid_from - dt.timedelta(days=1):
        raise ValidationError(
            f"assignment {assignment_id} began on {a.valid_from.isoformat()}; it cannot end "
            f"on {last.isoformat()}",
            field="last_day",
        )
    a.valid_to = last
