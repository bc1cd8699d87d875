"""incident.located_by: how an incident's point was found (coordinates or the geocoder).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "incident",
        sa.Column("located_by", sa.String(16), nullable=False, server_default="coordinates"),
    )


def downgrade() -> None:
    op.drop_column("incident", "located_by")
