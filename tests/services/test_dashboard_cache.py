"""The dashboard's cache: a repeat costs one query, any write (from any connection)
recomputes at once, the age limit recomputes without writes, and concurrent first requests
compute once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from mapsvc.config import Settings
from mapsvc.services import dashboard
from tests.fixtures.staffing import TODAY, add_incidents


class Statements:
    """Counts the SQL statements an engine runs (a listener on the real engine)."""

    def __init__(self, engine) -> None:
        self.count = 0
        self.lock = threading.Lock()
        sa.event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *args) -> None:
        with self.lock:
            self.count += 1

    def during(self, fn) -> tuple[object, int]:
        before = self.count
        value = fn()
        return value, self.count - before


@pytest.fixture
def counted(staffing_db):
    add_incidents(staffing_db.engine)
    dashboard.CACHE.clear()
    yield staffing_db.engine, Statements(staffing_db.engine)
    dashboard.CACHE.clear()


def _overview(engine, settings: Settings) -> dict:
    with Session(engine) as s:
        return dashboard.overview(s, TODAY, settings=settings)


def test_a_repeat_is_one_query_and_a_write_recomputes(counted) -> None:
    engine, statements = counted
    settings = Settings(dashboard_cache_seconds=60)
    first, n_first = statements.during(lambda: _overview(engine, settings))
    again, n_again = statements.during(lambda: _overview(engine, settings))
    assert n_first > 10 and n_again == 1  # the write-state query only
    assert again == first
    again["district"]["staff"] = -1  # each caller has its own copy
    assert _overview(engine, settings)["district"]["staff"] == first["district"]["staff"]

    # a write by another connection (as another worker or the CLI would)
    with engine.begin() as c:
        c.execute(sa.text("UPDATE community SET population = population + 1000"))
    after, n_after = statements.during(lambda: _overview(engine, settings))
    assert n_after > 10
    assert after["district"]["population"] == first["district"]["population"] + 1000 * len(
        first["communities"]
    )


def test_inside_a_writing_transaction_nothing_is_kept(counted) -> None:
    engine, statements = counted
    settings = Settings(dashboard_cache_seconds=60)
    with Session(engine) as s:
        s.execute(sa.text("UPDATE community SET population = population + 1"))
        inside = dashboard.overview(s, TODAY, settings=settings)
        s.rollback()
    outside, n = statements.during(lambda: _overview(engine, settings))
    assert n > 10, "figures of a rolled-back transaction were kept"
    assert outside["district"]["population"] == inside["district"]["population"] - len(
        inside["communities"]
    )


def test_the_age_limit_and_zero(counted) -> None:
    engine, statements = counted
    short = Settings(dashboard_cache_seconds=0.5)
    _overview(engine, short)
    assert statements.during(lambda: _overview(engine, short))[1] == 1
    time.sleep(0.6)
    assert statements.during(lambda: _overview(engine, short))[1] > 10  # old: recomputed
    off = Settings(dashboard_cache_seconds=0)
    _overview(engine, off)
    assert statements.during(lambda: _overview(engine, off))[1] > 10
    # other arguments are another dashboard
    assert statements.during(lambda: _overview(engine, Settings(dashboard_cache_seconds=60)))[1] > 1


def test_concurrent_first_requests_compute_once(counted, monkeypatch) -> None:
    """Six requests in one write state: one computes, five wait for it.

    The write state is the cluster's snapshot, which any writing transaction moves, in
    any database (autovacuum's analyze of the freshly loaded tables, for one). A round in
    which the six requests saw different states rightly computes more than once, so the
    round is repeated until all six saw one state, and that round must compute once.
    """
    engine, statements = counted
    settings = Settings(dashboard_cache_seconds=60)
    _overview(engine, settings)  # the first connection also runs the dialect's own queries
    dashboard.CACHE.clear()
    one, per_computation = statements.during(lambda: _overview(engine, settings))

    seen: list[str | None] = []
    computed: list[int] = []
    real_state, real_figures = dashboard.write_state, dashboard._figures

    def recording_state(session):
        state = real_state(session)
        seen.append(state)
        return state

    def recording_figures(*args, **kwargs):
        computed.append(1)
        return real_figures(*args, **kwargs)

    monkeypatch.setattr(dashboard, "write_state", recording_state)
    monkeypatch.setattr(dashboard, "_figures", recording_figures)
    for _ in range(10):
        dashboard.CACHE.clear()
        seen.clear()
        computed.clear()
        with ThreadPoolExecutor(6) as pool:
            results, n = statements.during(
                lambda: list(pool.map(lambda _: _overview(engine, settings), range(6)))
            )
        assert all(r == one for r in results)
        if len(set(seen)) == 1:
            break
    else:
        pytest.fail(f"the write state moved in every round: {sorted(set(seen))}")
    # a request that saw another state computes and looks again, so the count of looks
    # is checked only in the round where all six saw one state
    assert len(seen) == 7  # six requests, and the computing one's look after it
    assert len(computed) == 1
    assert n == per_computation + 5  # one computation, five waited (their write-state query)
