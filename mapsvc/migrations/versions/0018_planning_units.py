"""planning_unit: the blocks automatic grids are made of (see
:class:`mapsvc.models.PlanningUnit`), with the audit triggers.

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

from mapsvc.migrations.audit import attach_audit, detach_audit

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_geospatial_table(
        "planning_unit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("households", sa.Integer(), server_default="0", nullable=False),
        sa.Column("population", sa.Integer(), server_default="0", nullable=False),
        sa.Column("group_code", sa.String(length=40), nullable=True),
        sa.Column("source", sa.String(length=40), server_default="file", nullable=False),
        sa.Column(
            "area_km2",
            sa.Float(),
            sa.Computed("ST_Area(geography(geom)) / 1000000.0", persisted=True),
            nullable=False,
        ),
        sa.CheckConstraint("households >= 0 AND population >= 0", name="ck_planning_unit_figures"),
        sa.ForeignKeyConstraint(["community_id"], ["community.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("community_id", "code", name="uq_planning_unit_code"),
    )
    op.create_geospatial_index(
        "idx_planning_unit_geom", "planning_unit", ["geom"], unique=False, postgresql_using="gist"
    )
    op.create_index(
        "ix_planning_unit_community_id", "planning_unit", ["community_id"], unique=False
    )
    attach_audit(op, "planning_unit")


def downgrade() -> None:
    detach_audit(op, "planning_unit")
    op.drop_index("ix_planning_unit_community_id", table_name="planning_unit")
    op.drop_geospatial_index(
        "idx_planning_unit_geom",
        table_name="planning_unit",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_geospatial_table("planning_unit")
