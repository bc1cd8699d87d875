"""Invariants the database keeps by itself: one holder per post, ratings only when closed,
sized free text.

* At most one current holder of a single-holder post (grid head, alley chief, deputy
  chief) per target and day: an exclusion constraint (``btree_gist``) over the validity
  range ``[valid_from, valid_to]`` (both days inclusive, ``valid_to`` NULL open-ended),
  one per target column. A post withdrawn on the day it would have started is stored
  with ``valid_to = valid_from - 1`` (an empty range), so ``ck_assignment_dates`` allows
  that one day less.
* A rating only on a closed incident (``ck_incident_rated_closed``).
* Free text has a size: ``incident.description`` 5,000 characters, ``incident_event.note``
  and ``patrol_visit.note`` 2,000.

Rows that break the new rules are repaired deterministically, the way the service itself
would have written them, and each repair is logged (logger ``alembic.runtime.migration``):

* overlapping holders of one post: ordered by ``valid_from`` then id, each assignment
  ends the day before the next one starts (the later start wins, as the service has
  always shown it); one that started the same day as the next is withdrawn;
* a rating on an incident that is not closed is cleared (a reopen clears the rating).

Text longer than its new size is not cut: the migration stops with a message naming the
rows, so nobody's words are lost without being asked.

Revision ID: 0008
Revises: 0007
"""

import logging

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

#: roles one person holds at a time on a target (see mapsvc.services.assignments)
SINGLE_HOLDER_ROLES = ("alley_chief", "deputy_chief", "grid_head")
TARGETS = ("segment_id", "grid_id", "community_id")
#: (table, column, new size)
TEXT_SIZES = (
    ("incident", "description", 5000),
    ("incident_event", "note", 2000),
    ("patrol_visit", "note", 2000),
)


def _repair_overlapping_posts(conn: sa.Connection) -> None:
    for target in TARGETS:
        rows = conn.execute(
            sa.text(
                f"""WITH ordered AS (
                    SELECT id, valid_from, valid_to,
                           lead(valid_from) OVER (
                               PARTITION BY {target}, role ORDER BY valid_from, id
                           ) AS next_from
                    FROM assignment
                    WHERE {target} IS NOT NULL AND role IN :roles
                )
                UPDATE assignment a SET valid_to = o.next_from - 1
                FROM ordered o
                WHERE a.id = o.id AND o.next_from IS NOT NULL
                  AND (o.valid_to IS NULL OR o.valid_to >= o.next_from)
                RETURNING a.id, a.{target}, a.role, o.valid_to AS old_to, a.valid_to"""
            ).bindparams(sa.bindparam("roles", expanding=True)),
            {"roles": list(SINGLE_HOLDER_ROLES)},
        ).all()
        for r in rows:
            log.warning(
                "assignment %s (%s of %s %s) overlapped the next holder: valid_to %s -> %s",
                r.id,
                r.role,
                target.removesuffix("_id"),
                r[1],
                r.old_to or "open",
                r.valid_to,
            )


def upgrade() -> None:
    conn = op.get_bind()
    too_long = []
    for table, column, size in TEXT_SIZES:
        ids = conn.scalars(
            sa.text(
                f"SELECT id FROM {table} WHERE char_length({column}) > :n ORDER BY id LIMIT 20"
            ),
            {"n": size},
        ).all()
        if ids:
            too_long.append(f"{table}.{column} longer than {size} characters in ids {ids}")
    if too_long:
        raise RuntimeError(
            "cannot size the text columns; shorten these rows first: " + "; ".join(too_long)
        )
    for table, column, size in TEXT_SIZES:
        op.alter_column(table, column, type_=sa.String(size), existing_type=sa.Text())

    cleared = conn.execute(
        sa.text(
            "UPDATE incident SET rating = NULL WHERE rating IS NOT NULL AND state <> 'closed' "
            "RETURNING id, state"
        )
    ).all()
    for r in cleared:
        log.warning("incident %s is %s: its rating was cleared", r.id, r.state)
    op.create_check_constraint(
        "ck_incident_rated_closed", "incident", "rating IS NULL OR state = 'closed'"
    )

    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.drop_constraint("ck_assignment_dates", "assignment", type_="check")
    op.create_check_constraint(
        "ck_assignment_dates", "assignment", "valid_to IS NULL OR valid_to >= valid_from - 1"
    )
    _repair_overlapping_posts(conn)
    roles = ", ".join(f"'{r}'" for r in SINGLE_HOLDER_ROLES)
    for target in TARGETS:
        name = f"ex_assignment_{target.removesuffix('_id')}_post"
        op.execute(
            f"ALTER TABLE assignment ADD CONSTRAINT {name} EXCLUDE USING gist "
            f"({target} WITH =, role WITH =, daterange(valid_from, valid_to + 1) WITH &&) "
            f"WHERE ({target} IS NOT NULL AND role IN ({roles}))"
        )


def downgrade() -> None:
    for target in TARGETS:
        op.drop_constraint(f"ex_assignment_{target.removesuffix('_id')}_post", "assignment")
    # withdrawn posts (an empty range) cannot be written under the older rule: drop them
    op.execute("DELETE FROM assignment WHERE valid_to < valid_from")
    op.drop_constraint("ck_assignment_dates", "assignment", type_="check")
    op.create_check_constraint(
        "ck_assignment_dates", "assignment", "valid_to IS NULL OR valid_to >= valid_from"
    )
    op.drop_constraint("ck_incident_rated_closed", "incident", type_="check")
    for table, column, size in TEXT_SIZES:
        op.alter_column(table, column, type_=sa.Text(), existing_type=sa.String(size))
