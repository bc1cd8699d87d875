"""incidents feature tables: incident_event (audit trail of the closed loop), and the
incident's Web Mercator position (generated columns + index) for fast heatmap binning.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incident_event",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("incident_id", sa.BigInteger(), nullable=False),
        sa.Column("from_state", sa.String(length=12), nullable=True),
        sa.Column("to_state", sa.String(length=12), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["incident_id"], ["incident.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_incident_event_incident_at", "incident_event", ["incident_id", "at"], unique=False
    )

    # heatmap bins are screen-space (Web Mercator) cells: a stored position and a plain
    # btree lets PostGIS aggregate a district of a million incidents from the index alone
    for col, fn in (("x_m", "ST_X"), ("y_m", "ST_Y")):
        op.add_column(
            "incident",
            sa.Column(
                col,
                sa.Float(precision=53),
                sa.Computed(f"{fn}(ST_Transform(geom, 3857))", persisted=True),
                nullable=True,
            ),
        )
    op.create_index("ix_incident_xy", "incident", ["x_m", "y_m"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_incident_xy", table_name="incident")
    op.drop_column("incident", "y_m")
    op.drop_column("incident", "x_m")
    op.drop_index("ix_incident_event_incident_at", table_name="incident_event")
    op.drop_table("incident_event")
