"""Fixtures of the demo generator's tests: the session's ``demo_engine``, read only.

The invariants are measured in PostGIS on the demo the whole test session uses (seed
20261124, ``TEST_DEMO_INCIDENTS`` incidents); tests that load a demo of their own use
``fresh_engine`` / ``make_database``.
"""

from __future__ import annotations

import csv

import pytest
import sqlalchemy as sa

from mapsvc.config import PROJECT_ROOT

DATA = PROJECT_ROOT / "data" / "boundaries"


@pytest.fixture(scope="module")
def csv_rows() -> list[list[str]]:
    with open(DATA / "350502.csv", encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))


@pytest.fixture(scope="module")
def conn(demo_engine):  # noqa: ANN001, ANN201
    with demo_engine.connect() as c:
        yield c


def q(conn, sql: str, **params):  # noqa: ANN001, ANN201
    return conn.execute(sa.text(sql), params)
