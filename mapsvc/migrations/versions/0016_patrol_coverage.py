"""patrol_coverage: each day's segment coverage kept in the database, across restarts.

See :class:`mapsvc.models.PatrolCoverage`: rows are keyed by a fingerprint of the day's
tracks and the streets, so they are never stale; a restarted server reads them instead of
buffering and intersecting a week of tracks again.

Revision ID: 0016
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from mapsvc.migrations.audit import attach_audit, detach_audit

revision = "0016"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "patrol_coverage",
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.Column("coverage", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "made_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_patrol_coverage_day", "patrol_coverage", ["day"], unique=False)
    attach_audit(op, "patrol_coverage")


def downgrade() -> None:
    detach_audit(op, "patrol_coverage")
    op.drop_index("ix_patrol_coverage_day", table_name="patrol_coverage")
    op.drop_table("patrol_coverage")
