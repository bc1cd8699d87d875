"""Alembic environment: uses the engine handed over in ``config.attributes``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from alembic import context
from geoalchemy2 import alembic_helpers

from mapsvc.models import Base

if TYPE_CHECKING:
    from alembic.runtime.environment import NameFilterType
    from sqlalchemy.schema import SchemaItem

config = context.config
engine = config.attributes["engine"]

# PostGIS / pgRouting / tiger own tables that are not ours; never autogenerate drops for them.
OURS = set(Base.metadata.tables)


def include_object(
    obj: SchemaItem,
    name: str | None,
    type_: NameFilterType,
    reflected: bool,
    compare_to: SchemaItem | None,
) -> bool:
    if type_ == "table" and reflected and name not in OURS:
        return False
    return alembic_helpers.include_object(obj, name, type_, reflected, compare_to)


with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        include_object=include_object,
        process_revision_directives=alembic_helpers.writer,
        render_item=alembic_helpers.render_item,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
