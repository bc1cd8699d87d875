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
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import shapely
import sqlalchemy as sa
from pyproj import Transformer
from shapely.geometry import LineString, MultiPolygon, Point, box

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


#: the areas and streets as drawn, in local metres (community, grid and segment names)
POLYS = {
    "A": box(0, 0, 500, 600),
    "B": box(500, 0, 1000, 600),
    "A1": box(0, 0, 500, 300),
    "A2": box(0, 300, 500, 600),
    "B1": box(500, 0, 1000, 600),
}
LINES = {
    "seg1": LineString([(50, 150), (450, 150)]),
    "seg2": LineString([(250, 350), (250, 550)]),
    "seg3": LineString([(600, 450), (900, 450)]),
}
#: each segment's chief (seg3 has none)
CHIEF_OF = {"seg1": "chief1", "seg2": "chief2"}
#: the district's clock: the default TIMEZONE, which the tests run with
DISTRICT_TZ = ZoneInfo("Asia/Shanghai")


@dataclass
class District:
    engine: object
    grid: dict[str, int] = field(default_factory=dict)
    community: dict[str, int] = field(default_factory=dict)
    segment: dict[str, int] = field(default_factory=dict)
    staff: dict[str, int] = field(default_factory=dict)
    subdistrict: int = 0
    #: what :func:`add_random_incidents` created, as it created it
    incidents: list[dict] = field(default_factory=list)


def build_district(engine) -> District:  # noqa: ANN001
    d = District(engine=engine)
    polys, lines = POLYS, LINES
    wkt = {k: MultiPolygon([wgs(v)]).wkt for k, v in polys.items()}
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


def add_random_incidents(d: District, n: int, seed: int = 7) -> list[dict]:
    """``n`` incidents at random places (a few outside the grids), categories, classes,
    states and dates over the last year, inserted in SQL and routed as the import does.

    Returns them (also appended to ``d.incidents``) with their local position ``x, y`` in
    metres, so tests can count what a filter must select from the layout alone."""
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
    made = [{**r, "x": float(x), "y": float(y)} for r, x, y in zip(rows, xs, ys, strict=True)]
    d.incidents.extend(made)
    return made


def _where_drawn(x: float, y: float, reach_m: float = 30.0) -> dict[str, str | None]:
    """Community, grid and nearest segment (within ``reach_m``) of a point, by the drawing."""
    p = Point(x, y)
    inside = [name for name, poly in POLYS.items() if poly.covers(p)]
    near = min(LINES, key=lambda name: LINES[name].distance(p))
    return {
        "community": next((c for c in inside if len(c) == 1), None),
        "grid": next((g for g in sorted(inside) if len(g) == 2), None),
        "segment": near if LINES[near].distance(p) <= reach_m else None,
    }


def _local_day(text: str, end: bool = False) -> dt.datetime:
    """Start of a bare date in the district's clock (of the day after, for an end)."""
    day = dt.date.fromisoformat(text) + dt.timedelta(days=1 if end else 0)
    return dt.datetime.combine(day, dt.time(0), DISTRICT_TZ)


def layout_count(d: District, filters: dict | None = None, bbox=None) -> int:  # noqa: ANN001
    """How many of ``d.incidents`` the list/heatmap ``filters`` select, worked out from what
    the test drew and created (never from the service's SQL): category, severity/class,
    state (``open`` = not closed), bare ``date_from``/``date_to`` days in the district's
    clock, grid/community/chief ids (one or a comma list) and a lon/lat ``bbox``."""
    f = dict(filters or {})
    if "class" in f:
        f["severity"] = f.pop("class")

    def chosen(key: str) -> set[str] | None:
        """The values asked for under ``key`` (ids as their names), None when not asked."""
        v = f.get(key)
        if v in (None, ""):
            return None
        asked = {str(x).strip() for x in str(v).split(",")}
        ids = {"grid": d.grid, "community": d.community, "chief": d.staff}.get(key)
        return asked if ids is None else {n for n, i in ids.items() if str(i) in asked}

    start = _local_day(f["date_from"]) if f.get("date_from") else None
    end = _local_day(f["date_to"], end=True) if f.get("date_to") else None
    n = 0
    for r in d.incidents:
        where = _where_drawn(r["x"], r["y"])
        values = {
            "category": r["cat"],
            "severity": r["sev"],
            "grid": where["grid"],
            "community": where["community"],
            "chief": CHIEF_OF.get(where["segment"]),
        }
        if any((c := chosen(k)) is not None and v not in c for k, v in values.items()):
            continue
        states = chosen("state")
        if states is not None and r["state"] not in states:
            if "open" not in states or r["state"] == "closed":
                continue
        if (start is not None and r["rep"] < start) or (end is not None and r["rep"] >= end):
            continue
        if bbox is not None and not (
            bbox[0] <= r["lon"] <= bbox[2] and bbox[1] <= r["lat"] <= bbox[3]
        ):
            continue
        n += 1
    return n


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
