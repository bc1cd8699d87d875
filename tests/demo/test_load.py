"""load_demo as a whole: same seed, same demo; the summary."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from mapsvc import demo
from tests.conftest import demo_arguments


def test_same_seed_same_demo(make_database, template_db) -> None:  # noqa: ANN001
    from mapsvc.db import make_engine

    engines = [make_engine(make_database(template=template_db)) for _ in range(3)]
    now = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    try:
        sums = [
            demo.load_demo(e, **demo_arguments(seed=s, incidents=500), now=now)
            for e, s in zip(engines, (11, 11, 12), strict=True)
        ]
        digest = (
            "SELECT md5(string_agg(code || ST_AsEWKB(geom)::text, ',' ORDER BY code)) FROM grid"
        )
        inc = "SELECT md5(string_agg(ST_AsEWKB(geom)::text || category || reported_at, ',' ORDER BY id)) FROM incident"
        d = []
        for e in engines:
            with e.connect() as c:
                d.append((c.execute(sa.text(digest)).scalar(), c.execute(sa.text(inc)).scalar()))
        assert sums[0] == sums[1]
        assert d[0] == d[1]
        assert d[0] != d[2]
        text = demo.format_summary(sums[0])
        assert "km²" in text and "Vonng/adcode, CC BY 4.0" in text
        assert all(f"{t}" in text for t in sums[0]["counts"])
    finally:
        for e in engines:
            e.dispose()
