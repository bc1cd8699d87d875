"""A small hand-built district for the map server tests, and a live server on it.

Layout (WGS84; lon 118.580-118.600, lat 24.900-24.910, about 2 km x 1.1 km)::

    community A (west half)          community B (east half, a hostile name)
    +-----------+-----------+-----------+-----------+
    |  A-01     |  A-02     |  B-01     |  B-02     |
    |  --S1--   |       ---S3---        |   --S2--  |
    +-----------+-----------+-----------+-----------+

S1 has a chief (valid since 2024) who is replaced on 2025-06-01; S3 has a chief and a
deputy; S2 has nobody. A-01 has a grid head. Community B and grid B-02 carry names that
would run script if a page put them into HTML unescaped.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from geoalchemy2.shape import from_shape
from shapely.geometry import LineString, MultiPolygon, box
from sqlalchemy.engine import Engine

EVIL = "<img src=x onerror=alert(1)>"
EVIL_GRID = '<script>document.title="pwned"</script>'

WEST, EAST, SOUTH, NORTH = 118.580, 118.600, 24.900, 24.910
CUTS = [118.580, 118.585, 118.590, 118.595, 118.600]


@dataclass
class SmallDistrict:
    engine: Engine
    evil: str = EVIL
    evil_grid: str = EVIL_GRID
    grids: dict[str, object] = field(default_factory=dict)  # code -> shapely polygon
    segments: dict[str, object] = field(default_factory=dict)  # code -> shapely line
    communities: dict[str, object] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)


def _mp(poly) -> object:  # noqa: ANN001
    return from_shape(MultiPolygon([poly]), srid=4326)


def build_small_district(engine: Engine) -> SmallDistrict:
    """Insert the district above through the models and the assignments service."""
    from mapsvc.db import session_scope
    from mapsvc.models import AlleySegment, Community, District, Grid, Staff, Subdistrict
    from mapsvc.services.assignments import assign

    d = SmallDistrict(engine)
    d.communities = {
        "350502001001": box(CUTS[0], SOUTH, CUTS[2], NORTH),
        "350502001002": box(CUTS[2], SOUTH, CUTS[4], NORTH),
    }
    d.grids = {
        "350502001001-01": box(CUTS[0], SOUTH, CUTS[1], NORTH),
        "350502001001-02": box(CUTS[1], SOUTH, CUTS[2], NORTH),
        "350502001002-01": box(CUTS[2], SOUTH, CUTS[3], NORTH),
        "350502001002-02": box(CUTS[3], SOUTH, CUTS[4], NORTH),
    }
    d.segments = {
        "t:S1": LineString([(118.581, 24.905), (118.584, 24.905)]),
        "t:S2": LineString([(118.596, 24.903), (118.599, 24.903)]),
        "t:S3": LineString([(118.587, 24.907), (118.593, 24.907)]),
    }
    with session_scope(engine) as s:
        dist = District(code="350502000000", name="测试区", geom=_mp(box(WEST, SOUTH, EAST, NORTH)))
        s.add(dist)
        s.flush()
        sub = Subdistrict(code="350502001000", name="测试街道", district_id=dist.id, geom=dist.geom)
        s.add(sub)
        s.flush()
        names = {"350502001001": "金山社区", "350502001002": EVIL}
        comms = {}
        for code, poly in d.communities.items():
            c = Community(
                code=code,
                name=names[code],
                subdistrict_id=sub.id,
                geom=_mp(poly),
                population=4000,
                households=1500,
                enterprises=30,
            )
            s.add(c)
            comms[code] = c
        s.flush()
        for code, poly in d.grids.items():
            g = Grid(
                code=code,
                name=EVIL_GRID if code.endswith("002-02") else f"第{code[-2:]}网格",
                community_id=comms[code[:12]].id,
                geom=_mp(poly),
                households=400,
                population=1100,
            )
            s.add(g)
            s.flush()
            d.ids[code] = g.id
        for code, line in d.segments.items():
            seg = AlleySegment(code=code, name=f"测试巷{code[-1]}", geom=from_shape(line, 4326))
            s.add(seg)
            s.flush()
            d.ids[code] = seg.id
        people = {}
        for key, name, role in [
            ("old_chief", "王旧长", "alley_chief"),
            ("new_chief", "李新长", "alley_chief"),
            ("chief3", "赵巷长", "alley_chief"),
            ("deputy3", "钱副长", "deputy_chief"),
            ("head", "孙网格长", "grid_head"),
        ]:
            p = Staff(code=f"t-{key}", name=name, role=role, phone="13800000000")
            s.add(p)
            s.flush()
            people[key] = p.id
        since = dt.date(2024, 1, 1)
        assign(s, people["old_chief"], "alley_chief", segment_id=d.ids["t:S1"], valid_from=since)
        assign(
            s,
            people["new_chief"],
            "alley_chief",
            segment_id=d.ids["t:S1"],
            valid_from=dt.date(2025, 6, 1),
        )
        assign(s, people["chief3"], "alley_chief", segment_id=d.ids["t:S3"], valid_from=since)
        assign(s, people["deputy3"], "deputy_chief", segment_id=d.ids["t:S3"], valid_from=since)
        assign(s, people["head"], "grid_head", grid_id=d.ids["350502001001-01"], valid_from=since)
    return d


@pytest.fixture
def small(fresh_engine: Engine) -> SmallDistrict:
    """The small district on a fresh database."""
    return build_small_district(fresh_engine)


@pytest.fixture
def small_app(small: SmallDistrict, make_app):  # noqa: ANN001, ANN201
    return make_app(small.engine)


@pytest.fixture
def small_client(small_app):  # noqa: ANN001, ANN201
    return small_app.test_client()


class Live:
    """The app served by Werkzeug in a thread on a free localhost port."""

    def __init__(self, app) -> None:  # noqa: ANN001
        from werkzeug.serving import make_server

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.server = make_server("127.0.0.1", port, app, threaded=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{port}"


@pytest.fixture
def small_live(small_app) -> Iterator[Live]:  # noqa: ANN001
    live = Live(small_app)
    yield live
    live.server.shutdown()
