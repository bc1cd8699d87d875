"""streets feature tables: patrol_visit (weekly visits, 周走访).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_geospatial_table(
        "patrol_visit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=True),
        sa.Column("grid_id", sa.Integer(), nullable=True),
        sa.Column("place", sa.String(length=200), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "segment_id IS NOT NULL OR grid_id IS NOT NULL OR place IS NOT NULL",
            name="ck_patrol_visit_target",
        ),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["segment_id"], ["alley_segment.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["grid_id"], ["grid.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_geospatial_index(
        "idx_patrol_visit_geom", "patrol_visit", ["geom"], postgresql_using="gist"
    )
    op.create_index("ix_patrol_visit_staff_id", "patrol_visit", ["staff_id"])
    op.create_index("ix_patrol_visit_day", "patrol_visit", ["day"])
    op.create_index("ix_patrol_visit_segment_id", "patrol_visit", ["segment_id"])
    op.create_index("ix_patrol_visit_grid_id", "patrol_visit", ["grid_id"])
    op.create_index("ix_patrol_visit_staff_day", "patrol_visit", ["staff_id", "day"])


def downgrade() -> None:
    op.drop_table("patrol_visit")
