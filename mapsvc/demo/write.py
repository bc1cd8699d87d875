"""Writing the demo's rows: COPY inside the caller's transaction, EWKB, id sequences.

The demo writes its own ids (positions in the plan, so stages can refer to each other's
rows before they exist), which is why the id sequences are moved past them at the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import shapely
import sqlalchemy as sa
from shapely.geometry.base import BaseGeometry
from sqlalchemy.engine import Connection

from mapsvc.models import Base


def copy_rows(conn: Connection, table: str, columns: Sequence[str], rows: Iterable) -> int:
    """COPY ``rows`` into ``table`` inside the caller's transaction; return the row count.

    COPY is about three times faster than SQLAlchemy's executemany for the demo's 100,000
    incidents (``bench/bench_demo_load.py``).
    """
    raw = conn.connection.driver_connection
    n = 0
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:
        for r in rows:
            cp.write_row(r)
            n += 1
    return n


def ewkb(geoms: Sequence[BaseGeometry] | np.ndarray) -> list[str]:
    """Hex EWKB (SRID 4326) of WGS84 geometries, as COPY takes them."""
    return list(
        shapely.to_wkb(
            shapely.set_srid(np.asarray(geoms, dtype=object), 4326), hex=True, include_srid=True
        )
    )


def reset_sequences(conn: Connection, tables: Iterable[str]) -> None:
    """Move each table's id sequence past its largest id, so later inserts do not collide.

    Tables without an autoincrement id (``incident_category`` is keyed by its code) have no
    sequence and are skipped.
    """
    for name in tables:
        column = Base.metadata.tables[name].autoincrement_column
        if column is None:
            continue
        conn.execute(
            sa.text(
                f"SELECT setval(pg_get_serial_sequence('{name}', '{column.name}'), "
                f"COALESCE((SELECT max({column.name}) FROM {name}), 0) + 1, false)"
            )
        )
