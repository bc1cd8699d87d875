"""Grids valid over a range of days, and plans of grids.

* ``grid.valid_from`` / ``grid.valid_to`` (inclusive, NULL open): publishing a plan ends
  grids instead of deleting them, so past dates still show the grids they had. The unique
  code becomes "one grid per code on any one day" (``ex_grid_code``).
* ``plan``, ``plan_community``, ``plan_grid``: drafts of grids (see
  :mod:`mapsvc.models.plans`), with the audit triggers.

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

from mapsvc.migrations.audit import attach_audit, detach_audit

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

GRID_DAYS = "daterange(COALESCE(valid_from, '-infinity'::date), valid_to + 1)"
AREA = "ST_Area(geography(geom)) / 1000000.0"


def upgrade() -> None:
    op.add_column("grid", sa.Column("valid_from", sa.Date(), nullable=True))
    op.add_column("grid", sa.Column("valid_to", sa.Date(), nullable=True))
    op.create_check_constraint(
        "ck_grid_dates",
        "grid",
        "valid_to IS NULL OR valid_from IS NULL OR valid_to >= valid_from - 1",
    )
    op.drop_constraint("grid_code_key", "grid", type_="unique")
    op.execute(
        f"ALTER TABLE grid ADD CONSTRAINT ex_grid_code EXCLUDE USING gist "
        f"(code WITH =, ({GRID_DAYS}) WITH &&)"
    )

    op.create_table(
        "plan",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=12), server_default="draft", nullable=False),
        sa.Column("source", sa.String(length=12), nullable=False),
        sa.Column("author", sa.String(length=100), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("published_on", sa.Date(), nullable=True),
        sa.Column("report", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.CheckConstraint("status IN ('draft', 'published', 'discarded')", name="ck_plan_status"),
        sa.CheckConstraint("source IN ('current', 'file', 'auto')", name="ck_plan_source"),
        sa.CheckConstraint(
            "(status = 'published') = (published_on IS NOT NULL)", name="ck_plan_published"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "plan_community",
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["plan_id"], ["plan.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["community_id"], ["community.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("plan_id", "community_id"),
    )
    op.create_index(
        "ix_plan_community_community_id", "plan_community", ["community_id"], unique=False
    )
    op.create_geospatial_table(
        "plan_grid",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=True),
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
        sa.Column("area_km2", sa.Float(), sa.Computed(AREA, persisted=True), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("households >= 0 AND population >= 0", name="ck_plan_grid_figures"),
        sa.ForeignKeyConstraint(["plan_id"], ["plan.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["community_id"], ["community.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("plan_id", "code", name="uq_plan_grid_code"),
    )
    op.create_geospatial_index(
        "idx_plan_grid_geom", "plan_grid", ["geom"], unique=False, postgresql_using="gist"
    )
    op.create_index("ix_plan_grid_plan_id", "plan_grid", ["plan_id"], unique=False)
    op.create_index("ix_plan_grid_community_id", "plan_grid", ["community_id"], unique=False)
    for table in ("plan", "plan_community", "plan_grid"):
        attach_audit(op, table)


def downgrade() -> None:
    for table in ("plan_grid", "plan_community", "plan"):
        detach_audit(op, table)
    op.drop_index("ix_plan_grid_community_id", table_name="plan_grid")
    op.drop_index("ix_plan_grid_plan_id", table_name="plan_grid")
    op.drop_geospatial_index(
        "idx_plan_grid_geom", table_name="plan_grid", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("plan_grid")
    op.drop_index("ix_plan_community_community_id", table_name="plan_community")
    op.drop_table("plan_community")
    op.drop_table("plan")
    # retired grids would break the unique code: only the current ones are kept
    op.execute("DELETE FROM grid WHERE valid_to IS NOT NULL")
    op.execute("ALTER TABLE grid DROP CONSTRAINT ex_grid_code")
    op.create_unique_constraint("grid_code_key", "grid", ["code"])
    op.drop_constraint("ck_grid_dates", "grid", type_="check")
    op.drop_column("grid", "valid_to")
    op.drop_column("grid", "valid_from")
