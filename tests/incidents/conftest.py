"""A hand-built small district on ``fresh_engine`` for the incident tests.

Everything is laid out in metres in UTM zone 50N (where Quanzhou is) and converted to WGS84
with pyproj, so the tests can place points at exact distances from grid boundaries and
segments::

    y=600 +-----------------+-----------------+
          | A2 (community A) |                 |
          |   seg2 (x=250)   |  B1 (community B)|
    y=300 +-----------------+   seg3 y=450,     |
          | A1  seg1 y=150   |   no chief        |
    y=0   +-----------------+-----------------+
          x=0              x=500             x=1000
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pytest
import shapely
import sqlalchemy as sa
from pyproj import Transformer
from shapely.geometry import LineString, MultiPolygon, box

from mapsvc.db import session_scope
from mapsvc.services.assignments import assign

ORIGIN = (118.575, 24.905)  # lon/lat of the local origin (in Licheng)
UTM = "EPSG:32650"
_to_m = Transformer.from_crs("EPSG:4326", UTM, always_xy=True)
_to_ll = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
X0, Y0 = _to_m.transform(*ORIGIN)

CATEGORIES = [
    ("road", "道路破损", "Damaged road", "ordinary"),
    ("litter", "垃圾堆放", "Litter", "minor"),
    ("noise", "噪声扰民", "Noise", "minor"),
    ("fire_risk", "消防隐患", "Fire risk", "major"),
]


def ll(x: float, y: float) -> tuple[float, float]:
    """Local metres -> (lon, lat) WGS84."""
    return _to_ll.transform(X0 + x, Y0 + y)


def wgs(geom):  # noqa: ANN001, ANN201
    def fn(xy):  # noqa: ANN001, ANN202
        lon, lat = _to_ll.transform(X0 + xy[:, 0], Y0 + xy[:, 1])
        return np.column_stack([lon, lat])

    return shapely.transform(geom, fn)


@dataclass
class District:
    engine: object
    grid: dict[str, int] = field(default_factory=dict)
    community: dict[str, int] = field(default_factory=dict)
    segment: dict[str, int] = field(default_factory=dict)
    staff: dict[str, int] = field(default_factory=dict)
    subdistrict: int = 0


def build_district(engine) -> District:  # noqa: ANN001
    d = District(engine=engine)
    polys = {
        "A": box(0, 0, 500, 600),
        "B": box(500, 0, 1000, 600),
        "A1": box(0, 0, 500, 300),
        "A2": box(0, 300, 500, 600),
        "B1": box(500, 0, 1000, 600),
    }
    wkt = {k: MultiPolygon([wgs(v)]).wkt for k, v in polys.items()}
    lines = {
        "seg1": LineString([(50, 150), (450, 150)]),
        "seg2": LineString([(250, 350), (250, 550)]),
        "seg3": LineString([(600, 450), (900, 450)]),
    }
    with session_scope(engine) as s:
        c = s.connection()
        c.execute(
            sa.text(
                "INSERT INTO district (code, name, geom) VALUES "
                "('350502', '测试区', ST_GeomFromText(:g, 4326))"
            ),
            {"g": MultiPolygon([wgs(box(0, 0, 1000, 600))]).wkt},
        )
        d.subdistrict = c.scalar(
            sa.text(
                "INSERT INTO subdistrict (code, name, district_id, geom) SELECT "
                "'350502001', '测试街道', id, geom FROM district RETURNING id"
            )
        )
        for name, pop in (("A", 4000), ("B", 6000)):
            d.community[name] = c.scalar(
                sa.text(
                    "INSERT INTO community (code, name, subdistrict_id, geom, population, "
                    "households, enterprises) VALUES (:code, :name, :sd, "
                    "ST_GeomFromText(:g, 4326), :pop, :pop / 3, 10) RETURNING id"
                ),
                {
                    "code": f"35050200100{len(d.community) + 1}",
                    "name": f"社区{name}",
                    "sd": d.subdistrict,
                    "g": wkt[name],
                    "pop": pop,
                },
            )
        for name, pop in (("A1", 2000), ("A2", 2000), ("B1", 6000)):
            d.grid[name] = c.scalar(
                sa.text(
                    "INSERT INTO grid (code, name, community_id, geom, population, households) "
                    "VALUES (:code, :name, :cm, ST_GeomFromText(:g, 4326), :pop, :pop / 3) "
                    "RETURNING id"
                ),
                {
                    "code": f"G-{name}",
                    "name": f"网格{name}",
                    "cm": d.community[name[0]],
                    "g": wkt[name],
                    "pop": pop,
                },
            )
        for name, line in lines.items():
            d.segment[name] = c.scalar(
                sa.text(
                    "INSERT INTO alley_segment (code, name, geom, source) VALUES "
                    "(:code, :name, ST_GeomFromText(:g, 4326), 'test') RETURNING id"
                ),
                {"code": name, "name": f"{name}巷", "g": wgs(line).wkt},
            )
        for name, role in (
            ("chief1", "alley_chief"),
            ("chief2", "alley_chief"),
            ("headA1", "grid_head"),
            ("headA2", "grid_head"),
            ("headB1", "grid_head"),
        ):
            d.staff[name] = c.scalar(
                sa.text("INSERT INTO staff (code, name, role) VALUES (:n, :n, :r) RETURNING id"),
                {"n": name, "r": role},
            )
        c.execute(
            sa.text(
                "INSERT INTO incident_category (code, name_zh, name_en, default_severity) "
                "VALUES (:code, :zh, :en, :sev)"
            ),
            [dict(zip(("code", "zh", "en", "sev"), row, strict=True)) for row in CATEGORIES],
        )
        start = dt.date(2020, 1, 1)
        assign(s, d.staff["chief1"], "alley_chief", segment_id=d.segment["seg1"], valid_from=start)
        assign(s, d.staff["chief2"], "alley_chief", segment_id=d.segment["seg2"], valid_from=start)
        for g in ("A1", "A2", "B1"):
            assign(s, d.staff[f"head{g}"], "grid_head", grid_id=d.grid[g], valid_from=start)
    return d


@pytest.fixture
def district(fresh_engine) -> District:  # noqa: ANN001
    return build_district(fresh_engine)


def add_random_incidents(d: District, n: int, seed: int = 7) -> None:
    """``n`` incidents at random places (a few outside the grids), categories, classes,
    states and dates over the last year, inserted in SQL and routed as the import does."""
    import numpy as np

    from mapsvc.models import SEVERITIES, STATES
    from mapsvc.services.routing import route_incidents

    rng = np.random.default_rng(seed)
    xs, ys = rng.uniform(-50, 1050, n), rng.uniform(-30, 630, n)
    lon, lat = _to_ll.transform(X0 + xs, Y0 + ys)
    now = dt.datetime.now(dt.UTC)
    rows = []
    for k in range(n):
        reported = now - dt.timedelta(hours=float(rng.uniform(1, 365 * 24)))
        state = str(rng.choice(STATES))
        rows.append(
            {
                "cat": CATEGORIES[int(rng.integers(0, len(CATEGORIES)))][0],
                "sev": str(rng.choice(SEVERITIES)),
                "state": state,
                "lon": float(lon[k]),
                "lat": float(lat[k]),
                "rep": reported,
                "due": reported + dt.timedelta(hours=72),
                "closed": reported + dt.timedelta(hours=float(rng.uniform(1, 200)))
                if state == "closed"
                else None,
            }
        )
    with session_scope(d.engine) as s:
        s.connection().execute(
            sa.text(
                "INSERT INTO incident (source, category, severity, state, geom, reported_at, "
                "due_at, closed_at, location_to_confirm) VALUES ('hotline', :cat, :sev, :state, "
                "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :rep, :due, :closed, false)"
            ),
            rows,
        )
        route_incidents(s)


@pytest.fixture
def populated(district) -> District:  # noqa: ANN001
    add_random_incidents(district, 600)
    return district


def zoom_and_wait(page, zoom_by: int) -> int:  # noqa: ANN001
    """Zoom the page's map by ``zoom_by`` and wait until the heatmap drawn is the answer
    for the new zoom (not merely "not loading": under load the refetch may not have
    started yet). Returns the new zoom."""
    target = page.evaluate(
        # the target is computed first: during the zoom animation getZoom() is still the old one
        "z => { const m = Object.values(window).find(v => v instanceof L.Map);"
        " const t = Math.min(m.getMaxZoom(), Math.max(m.getMinZoom(), m.getZoom() + z));"
        " m.setZoom(t); return t; }",
        zoom_by,
    )
    page.wait_for_function(
        "z => { const d = document.querySelector('.folium-map').dataset;"
        " return d.heatLoading === '0' && Number(d.heatZoom) === z; }",
        arg=target,
    )
    return target


def run_cli(engine, *args: str):  # noqa: ANN001, ANN201 - click Result
    """Run ``mapsvc ARGS...`` in-process against ``engine``'s database (DATABASE_URL)."""
    from click.testing import CliRunner

    from mapsvc.cli import main

    url = engine.url.render_as_string(hide_password=False)
    return CliRunner().invoke(main, list(args), env={"DATABASE_URL": url}, catch_exceptions=False)


def write_csv(path, header: list[str], rows: list[list[str]]):  # noqa: ANN001, ANN201 - Path
    """Write ``rows`` under ``header`` as UTF-8 with a BOM (as hotline exports come); return path."""
    import csv

    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path
