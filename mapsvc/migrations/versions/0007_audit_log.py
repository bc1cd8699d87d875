"""audit_log and its triggers: every write to the service's tables is recorded by PostgreSQL.

The table, the trigger function and audit_log's guards are in :mod:`mapsvc.migrations.audit`;
the triggers go on every model table that exists at this revision. A later migration that
creates a table attaches them itself (``attach_audit(op, "new_table")``).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from mapsvc.migrations.audit import (
    CREATE_SQL,
    DROP_SQL,
    attach_audit,
    detach_audit,
    execute_script,
)

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _audited_tables() -> list[str]:
    """The model tables present now (the models may already know tables of later revisions)."""
    from mapsvc.models import audited_tables

    present = set(sa.inspect(op.get_bind()).get_table_names())
    return [t for t in audited_tables() if t in present]


def upgrade() -> None:
    execute_script(op, CREATE_SQL)
    for table in _audited_tables():
        attach_audit(op, table)


def downgrade() -> None:
    for table in _audited_tables():
        detach_audit(op, table)
    execute_script(op, DROP_SQL)
