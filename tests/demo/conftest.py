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


def rounds_to(value: float, figure: float, step: float) -> bool:
    """True when ``value`` rounds to ``figure`` at the README's precision ``step``.

    The README gives the demo's figures rounded ("≈ 3,600" is to the hundred): a test that
    checks ``rounds_to(n, 3600, 100)`` (3,550 <= n < 3,650) fails exactly when the README's
    figure would have to change.
    """
    return figure - step / 2 <= value < figure + step / 2
