"""GeoAlchemy2 models. ``core`` holds the shared tables; each feature area adds its own module.

Importing this package registers every table on ``Base.metadata`` (Alembic reads it).
"""

from mapsvc.models import incidents, staffing, streets  # noqa: F401,E402
from mapsvc.models.core import *  # noqa: F403
from mapsvc.models.core import Base


def table_names() -> tuple[str, ...]:
    """Names of every table the models define, each after the tables it references.

    This is the one list of the service's tables (what the demo clears, fills, counts and
    moves the id sequences of; what the migrations must create). It comes from the models'
    metadata, so a new model is in it without anyone editing a list; tables that are not
    models (``alembic_version``, PostGIS's ``spatial_ref_sys``) are not.
    """
    return tuple(t.name for t in Base.metadata.sorted_tables)


__all__ = ["Base", "table_names", *[n for n in dir() if n[0].isupper() and n != "Base"]]
