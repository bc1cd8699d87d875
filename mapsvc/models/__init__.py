"""GeoAlchemy2 models. ``core`` holds the shared tables; each feature area adds its own module.

Importing this package registers every table on ``Base.metadata`` (Alembic reads it).
"""

from mapsvc.models import incidents, staffing, streets  # noqa: F401,E402
from mapsvc.models.core import *  # noqa: F403
from mapsvc.models.core import Base

__all__ = ["Base", *[n for n in dir() if n[0].isupper() and n != "Base"]]
