"""A small district built on ``fresh_engine`` for the staffing tests.

The data is declared once in :data:`SPEC` (areas, posts with validity offsets in days from
today) and inserted directly as rows, so edge cases that :func:`assignments.assign` would
prevent (two heads in force at once) can be created too. Tests derive their expectations
from the same spec, never from the code under test.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pytest
from geoalchemy2 import WKTElement
from shapely.geometry import LineString, MultiPolygon, Point, box

from mapsvc.config import Settings
from mapsvc.db import session_scope
from mapsvc.models import (
    AlleySegment,
    Assignment,
    Community,
    District,
    Grid,
    ServiceCentre,
    Staff,
    Subdistrict,
)

TODAY = Settings().today()  # the service's today (the district's clock)

# lon/lat boxes in Licheng, Quanzhou (about 1 km across each)
DISTRICT = ("350502", "测试区", box(118.570, 24.900, 118.610, 24.930))
SUBDISTRICTS = [
    ("350502001", "甲街道", box(118.570, 24.900, 118.590, 24.930)),
    ("350502002", "乙街道", box(118.590, 24.900, 118.610, 24.930)),
]
# code, name, subdistrict code, polygon, population, households, enterprises
COMMUNITIES = [
    (
        "350502001001",
        "一社区",
        "350502001",
        box(118.570, 24.900, 118.580, 24.930),
        12000,
        4100,
        350,
    ),
    (
        "350502001002",
        "二社区<b>",
        "350502001",
        box(118.580, 24.900, 118.590, 24.930),
        8000,
        2700,
        120,
    ),
    ("350502002001", "三社区", "350502002", box(118.590, 24.900, 118.610, 24.930), 15000, 5000, 40),
]
# code, community code, polygon, population
GRIDS = [
    ("350502001001-01", "350502001001", box(118.570, 24.900, 118.580, 24.915), 6000),
    ("350502001001-02", "350502001001", box(118.570, 24.915, 118.580, 24.930), 6000),
    ("350502001002-01", "350502001002", box(118.580, 24.900, 118.590, 24.912), 3000),
    ("350502001002-02", "350502001002", box(118.580, 24.912, 118.590, 24.930), 5000),
    ("350502002001-01", "350502002001", box(118.590, 24.900, 118.610, 24.910), 5000),
    ("350502002001-02", "350502002001", box(118.590, 24.910, 118.610, 24.920), 5000),
    ("350502002001-03", "350502002001", box(118.590, 24.920, 118.610, 24.930), 5000),
]
# code, name, line (midpoint decides the grid)
SEGMENTS = [
    ("S1", "一巷", LineString([(118.572, 24.905), (118.578, 24.905)])),
    ("S2", "二巷", LineString([(118.582, 24.905), (118.588, 24.905)])),
    ("S3", "三巷</script><b>x", LineString([(118.595, 24.915), (118.605, 24.915)])),
    ("S4", "四巷", LineString([(118.595, 24.925), (118.605, 24.925)])),
]
CENTRES = [
    ("一社区党群服务中心", "350502001001", Point(118.575, 24.920)),
    ("三社区党群服务中心", "350502002001", Point(118.600, 24.905)),
]
# staff code, name, role, dispatched kind, posts: (role, kind, target code, from, to) with
# from/to as day offsets from today (to None = open-ended)
STAFF = [
    ("h1", "张一", "grid_head", None, [("grid_head", "grid", "350502001001-01", -100, None)]),
    ("m1", "李一", "grid_member", None, [("grid_member", "grid", "350502001001-01", -100, None)]),
    ("m2", "王一", "grid_member", None, [("grid_member", "grid", "350502001001-01", -100, None)]),
    # head whose post ended yesterday
    ("h2", "张二", "grid_head", None, [("grid_head", "grid", "350502001001-02", -100, -1)]),
    ("m3", "李二", "grid_member", None, [("grid_member", "grid", "350502001001-02", -100, None)]),
    ("m4", "王二", "grid_member", None, [("grid_member", "grid", "350502001001-02", -100, None)]),
    # two heads in force at once
    ("h3", "张三", "grid_head", None, [("grid_head", "grid", "350502001002-01", -200, None)]),
    ("h4", "赵三", "grid_head", None, [("grid_head", "grid", "350502001002-01", -50, None)]),
    ("m5", "李三", "grid_member", None, [("grid_member", "grid", "350502001002-01", -100, None)]),
    ("m6", "王三", "grid_member", None, [("grid_member", "grid", "350502001002-01", -100, None)]),
    # a head with no members
    ("h5", "张四", "grid_head", None, [("grid_head", "grid", "350502001002-02", -100, None)]),
    # a head with one member
    ("h6", "张五", "grid_head", None, [("grid_head", "grid", "350502002001-01", -100, None)]),
    ("m7", "李五", "grid_member", None, [("grid_member", "grid", "350502002001-01", -100, None)]),
    # grid -02 of 三社区 has nobody; -03 has a head also listed as member, and two members
    (
        "h7",
        "张七",
        "grid_head",
        None,
        [
            ("grid_head", "grid", "350502002001-03", -100, None),
            ("grid_member", "grid", "350502002001-03", -100, None),
            ("alley_chief", "segment", "S4", -30, None),
        ],
    ),
    ("m8", "李七", "grid_member", None, [("grid_member", "grid", "350502002001-03", -100, None)]),
    ("m9", "王七", "grid_member", None, [("grid_member", "grid", "350502002001-03", -100, None)]),
    # alley chiefs: S1 chief + deputy, S2 chief ended yesterday, S3 chief, S4 (h7 above)
    ("c1", "陈一", "alley_chief", None, [("alley_chief", "segment", "S1", -100, None)]),
    ("d1", "周一", "deputy_chief", None, [("deputy_chief", "segment", "S1", -100, None)]),
    ("c2", "陈二", "alley_chief", None, [("alley_chief", "segment", "S2", -100, -1)]),
    ("c3", "陈三", "alley_chief", None, [("alley_chief", "segment", "S3", -100, None)]),
    # community workers and dispatched staff
    (
        "w1",
        "吴一",
        "community_worker",
        None,
        [("community_worker", "community", "350502001001", -400, None)],
    ),
    (
        "w2",
        "吴二",
        "community_worker",
        None,
        [("community_worker", "community", "350502001001", -400, None)],
    ),
    (
        "w3",
        "吴三",
        "community_worker",
        None,
        [("community_worker", "community", "350502002001", -400, None)],
    ),
    (
        "p1",
        "郑警官",
        "dispatched",
        "police",
        [("dispatched", "community", "350502001002", -60, None)],
    ),
    # starts in ten days: not counted today
    (
        "p2",
        "钱医生",
        "dispatched",
        "doctor",
        [("dispatched", "community", "350502002001", 10, None)],
    ),
]


@dataclass
class Built:
    engine: object
    ids: dict[str, dict[str, int]] = field(default_factory=dict)


def _mp(poly) -> WKTElement:  # noqa: ANN001
    return WKTElement(MultiPolygon([poly]).wkt, srid=4326)


def build(engine) -> Built:  # noqa: ANN001
    """Insert :data:`SPEC` into ``engine``'s database; return the ids by code."""
    built = Built(engine)
    ids = built.ids
    with session_scope(engine) as s:
        d = District(code=DISTRICT[0], name=DISTRICT[1], geom=_mp(DISTRICT[2]))
        s.add(d)
        s.flush()
        ids["district"] = {DISTRICT[0]: d.id}
        ids["subdistrict"] = {}
        for code, name, poly in SUBDISTRICTS:
            o = Subdistrict(code=code, name=name, district_id=d.id, geom=_mp(poly))
            s.add(o)
            s.flush()
            ids["subdistrict"][code] = o.id
        ids["community"] = {}
        for code, name, sub, poly, pop, hh, ent in COMMUNITIES:
            o = Community(
                code=code,
                name=name,
                subdistrict_id=ids["subdistrict"][sub],
                geom=_mp(poly),
                population=pop,
                households=hh,
                enterprises=ent,
            )
            s.add(o)
            s.flush()
            ids["community"][code] = o.id
        ids["grid"] = {}
        for code, comm, poly, pop in GRIDS:
            o = Grid(
                code=code,
                name=f"网格{code[-2:]}",
                community_id=ids["community"][comm],
                geom=_mp(poly),
                population=pop,
                households=pop // 3,
            )
            s.add(o)
            s.flush()
            ids["grid"][code] = o.id
        ids["segment"] = {}
        for code, name, line in SEGMENTS:
            o = AlleySegment(code=code, name=name, geom=WKTElement(line.wkt, srid=4326))
            s.add(o)
            s.flush()
            ids["segment"][code] = o.id
        for name, comm, pt in CENTRES:
            s.add(
                ServiceCentre(
                    name=name,
                    community_id=ids["community"][comm],
                    geom=WKTElement(pt.wkt, srid=4326),
                )
            )
        ids["staff"] = {}
        for code, name, role, kind, posts in STAFF:
            st = Staff(code=code, name=name, role=role, dispatched_kind=kind, phone="13800000000")
            s.add(st)
            s.flush()
            ids["staff"][code] = st.id
            for prole, target, tcode, start, end in posts:
                s.add(
                    Assignment(
                        staff_id=st.id,
                        role=prole,
                        valid_from=TODAY + dt.timedelta(days=start),
                        valid_to=None if end is None else TODAY + dt.timedelta(days=end),
                        **{f"{target}_id": ids[target][tcode]},
                    )
                )
    return built


@pytest.fixture
def staffing_db(fresh_engine) -> Built:  # noqa: ANN001
    return build(fresh_engine)


@pytest.fixture
def staffing_app(staffing_db, make_app):  # noqa: ANN001, ANN201
    return make_app(staffing_db.engine)


@pytest.fixture
def staffing_client(staffing_app):  # noqa: ANN001, ANN201
    return staffing_app.test_client()


#: incidents per month offset (0 = this month) for the charts: (month offset, count, closed)
INCIDENTS = [(-2, 5, 5), (-1, 8, 6), (0, 3, 1)]


def add_incidents(engine) -> None:  # noqa: ANN001
    """A few incidents over three months (some closed in time, some late, some open)."""
    from mapsvc.models import Incident, IncidentCategory

    now = dt.datetime.now(dt.UTC).replace(day=10, hour=9, minute=0, second=0)
    with session_scope(engine) as s:
        s.add(IncidentCategory(code="litter", name_zh="垃圾", name_en="Litter"))
        s.flush()
        for offset, count, closed in INCIDENTS:
            month = now.month + offset
            year = now.year + (month - 1) // 12
            at = now.replace(year=year, month=(month - 1) % 12 + 1)
            for i in range(count):
                done = i < closed
                s.add(
                    Incident(
                        category="litter",
                        source="hotline",
                        severity="minor",
                        state="closed" if done else "received",
                        geom=WKTElement(Point(118.575 + i * 1e-4, 24.905).wkt, srid=4326),
                        reported_at=at,
                        due_at=at + dt.timedelta(hours=24),
                        closed_at=at + dt.timedelta(hours=10 if i % 2 == 0 else 30)
                        if done
                        else None,
                    )
                )


@pytest.fixture
def staffing_live(staffing_db, make_app):  # noqa: ANN001, ANN201
    """A live server on the staffing data plus a few incidents (for the charts)."""
    from tests.conftest import LiveServer

    add_incidents(staffing_db.engine)
    server = LiveServer(make_app(staffing_db.engine))
    yield server
    server.stop()
