"""Small hand-made street networks on ``fresh_engine``, laid out in metres.

Coordinates are given in metres east/north of a point in Quanzhou and converted to WGS84
through the local UTM zone, so the geodesic ``length_m`` PostGIS computes is the length we
drew (to well under a millimetre per metre of scale error).
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from pyproj import Transformer
from sqlalchemy.orm import Session

from mapsvc.models import Staff
from mapsvc.services.assignments import assign

ORIGIN = (118.58, 24.91)
_FWD = Transformer.from_crs(4326, 32650, always_xy=True)
_INV = Transformer.from_crs(32650, 4326, always_xy=True)
_X0, _Y0 = _FWD.transform(*ORIGIN)
DAY = dt.date(2026, 11, 23)  # a Monday


def lonlat(x: float, y: float) -> tuple[float, float]:
    """WGS84 of a point ``x`` m east and ``y`` m north of the origin."""
    return _INV.transform(_X0 + x, _Y0 + y)


def add_segments(session: Session, spec: dict[str, list[tuple[float, float]]]) -> dict[str, int]:
    """Insert one segment per name (polyline in metres); return name -> id."""
    ids = {}
    for name, pts in spec.items():
        wkt = "LINESTRING(" + ", ".join("{:.9f} {:.9f}".format(*lonlat(x, y)) for x, y in pts) + ")"
        ids[name] = session.execute(
            sa.text(
                "INSERT INTO alley_segment (code, name, geom, source) "
                "VALUES (:c, :n, ST_GeomFromText(:w, 4326), 'test') RETURNING id"
            ),
            {"c": f"test:{name}", "n": name, "w": wkt},
        ).scalar_one()
    return ids


def add_grids(
    session: Session, spec: dict[str, tuple[float, float, float, float]]
) -> dict[str, int]:
    """Insert one community covering the boxes and one grid per code (a box in metres,
    ``x0, y0, x1, y1``); return code -> grid id."""
    from shapely.geometry import MultiPolygon, box

    def wkt(b: tuple[float, float, float, float]) -> str:
        (x0, y0), (x1, y1) = lonlat(b[0], b[1]), lonlat(b[2], b[3])
        return MultiPolygon([box(x0, y0, x1, y1)]).wkt

    hull = tuple(f(v[i] for v in spec.values()) for i, f in enumerate((min, min, max, max)))
    community = session.execute(
        sa.text(
            "INSERT INTO community (code, name, geom, population, households, enterprises) "
            "VALUES ('350502001001', '测试社区', ST_GeomFromText(:g, 4326), 0, 0, 0) RETURNING id"
        ),
        {"g": wkt(hull)},
    ).scalar_one()
    return {
        code: session.execute(
            sa.text(
                "INSERT INTO grid (code, name, community_id, geom, population, households) "
                "VALUES (:c, :c, :cm, ST_GeomFromText(:g, 4326), 0, 0) RETURNING id"
            ),
            {"c": code, "cm": community, "g": wkt(b)},
        ).scalar_one()
        for code, b in spec.items()
    }


def lengths(session: Session, ids: dict[str, int]) -> dict[str, float]:
    rows = dict(
        session.execute(
            sa.text("SELECT id, length_m FROM alley_segment WHERE id = ANY(:i)"),
            {"i": list(ids.values())},
        ).all()
    )
    return {name: rows[i] for name, i in ids.items()}


def add_chief(session: Session, name: str, segment_ids: list[int], day: dt.date = DAY) -> int:
    st = Staff(name=name, role="alley_chief", code=f"chief-{name}"[:40])
    session.add(st)
    session.flush()
    for sid in segment_ids:
        assign(
            session, st.id, "alley_chief", segment_id=sid, valid_from=day - dt.timedelta(days=30)
        )
    return st.id


@pytest.fixture
def session(fresh_engine):  # noqa: ANN001, ANN201
    with Session(bind=fresh_engine, expire_on_commit=False) as s:
        yield s
        s.rollback()
