"""Races against the real database: threads released together (a barrier), each with its
own session, through the services. Each race ends with one winner and a history that
holds together; the database's constraints hold even where Python checked first."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from mapsvc.config import Settings
from mapsvc.core.errors import Conflict
from mapsvc.services.assignments import assign
from mapsvc.services.incidents import create_incident, rate, transition
from tests.fixtures.incidents import ll

THREADS = 20


def race(engine: sa.Engine, work: Callable[[Session, int], Any], n: int = THREADS) -> list[Any]:
    """Run ``work(session, i)`` in ``n`` threads released at once, each committing its own
    session; return each thread's result or the exception it raised."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        with Session(engine) as s:
            barrier.wait()
            try:
                results[i] = work(s, i)
                s.commit()
            except Exception as exc:  # noqa: BLE001 - the outcome is what is tested
                s.rollback()
                results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a thread is stuck (a lock never released)"
    return results


def _new_staff(engine: sa.Engine, n: int) -> list[int]:
    with engine.begin() as c:
        return [
            c.scalar(
                sa.text(
                    "INSERT INTO staff (code, name, role) VALUES (:c, :c, 'alley_chief') "
                    "RETURNING id"
                ),
                {"c": f"racer{i}"},
            )
            for i in range(n)
        ]


def _posts(engine: sa.Engine, segment_id: int) -> list[sa.Row]:
    with engine.connect() as c:
        return c.execute(
            sa.text(
                "SELECT id, staff_id, valid_from, valid_to FROM assignment "
                "WHERE segment_id = :s AND role = 'alley_chief' ORDER BY valid_from, id"
            ),
            {"s": segment_id},
        ).all()


def _check_history(posts: list[sa.Row], today: dt.date) -> None:
    """No two posts in force on one day; exactly one holder today."""
    days: Counter[dt.date] = Counter()
    for p in posts:
        end = p.valid_to or today
        assert p.valid_to is None or p.valid_to >= p.valid_from - dt.timedelta(days=1)
        day = p.valid_from
        while day <= min(end, today):
            days[day] += 1
            day += dt.timedelta(days=1)
    assert max(days.values()) == 1, [d for d, k in days.items() if k > 1][:5]
    current = [p for p in posts if p.valid_from <= today and (p.valid_to or today) >= today]
    assert len(current) == 1


def test_twenty_chiefs_for_one_segment_leave_one(district) -> None:
    seg = district.segment["seg1"]
    racers = _new_staff(district.engine, THREADS)
    today = Settings().today()
    before = _posts(district.engine, seg)
    results = race(
        district.engine, lambda s, i: assign(s, racers[i], "alley_chief", segment_id=seg).id
    )
    assert not [r for r in results if isinstance(r, Exception) and not isinstance(r, Conflict)]
    won = [r for r in results if isinstance(r, int)]
    posts = _posts(district.engine, seg)
    # every winner wrote one post; the old chief's ended yesterday
    assert len(posts) == len(before) + len(won) and len(won) >= 1
    old = next(p for p in posts if p.id == before[0].id)
    assert old.valid_to == today - dt.timedelta(days=1)
    _check_history(posts, today)
    # the others of today were withdrawn the day they began (in force on no day)
    today_posts = [p for p in posts if p.valid_from == today]
    assert sum(p.valid_to is None for p in today_posts) == 1
    assert all(p.valid_to == today - dt.timedelta(days=1) for p in today_posts if p.valid_to)


def test_the_same_chief_twenty_times_is_one_post(district) -> None:
    seg = district.segment["seg1"]
    (racer,) = _new_staff(district.engine, 1)
    results = race(district.engine, lambda s, i: assign(s, racer, "alley_chief", segment_id=seg).id)
    assert all(isinstance(r, int) for r in results), results
    assert len(set(results)) == 1
    posts = _posts(district.engine, seg)
    assert [p.staff_id for p in posts if p.valid_to is None] == [racer]
    assert sum(p.staff_id == racer for p in posts) == 1
    _check_history(posts, Settings().today())


def test_the_database_refuses_two_heads_of_a_grid(district) -> None:
    """Rows written past the service (SQL, a bulk load) meet the same rule."""
    with pytest.raises(sa.exc.IntegrityError, match="ex_assignment_grid_post"):
        with district.engine.begin() as c:
            c.execute(
                sa.text(
                    "INSERT INTO assignment (staff_id, role, grid_id, valid_from) "
                    "VALUES (:s, 'grid_head', :g, '2024-05-01')"
                ),
                {"s": district.staff["headA2"], "g": district.grid["A1"]},
            )
    # grid members are many: no such rule for them
    with district.engine.begin() as c:
        for _ in range(2):
            c.execute(
                sa.text(
                    "INSERT INTO assignment (staff_id, role, grid_id, valid_from) "
                    "VALUES (:s, 'grid_member', :g, '2024-05-01')"
                ),
                {"s": district.staff["headA2"], "g": district.grid["A1"]},
            )


def test_a_later_appointment_is_a_named_conflict(district) -> None:
    seg = district.segment["seg2"]
    a, b = _new_staff(district.engine, 2)
    future = Settings().today() + dt.timedelta(days=30)
    with Session(district.engine) as s:
        assign(s, a, "alley_chief", segment_id=seg, valid_from=future)
        s.commit()
    before = _posts(district.engine, seg)
    with Session(district.engine) as s, pytest.raises(Conflict) as info:
        assign(s, b, "alley_chief", segment_id=seg)
    assert f"staff {a}" in info.value.message and future.isoformat() in info.value.message
    assert _posts(district.engine, seg) == before


def _incident(ext: str | None = None) -> dict[str, Any]:
    lon, lat = ll(200, 170)
    return {"category": "road", "lon": lon, "lat": lat, "external_id": ext}


def test_twenty_creates_of_one_external_id_make_one_incident(district) -> None:
    results = race(
        district.engine,
        lambda s, i: create_incident(s, _incident("12345-race"), actor="热线").id,
    )
    won = [r for r in results if isinstance(r, int)]
    lost = [r for r in results if not isinstance(r, int)]
    assert len(won) == 1
    assert len(lost) == THREADS - 1 and all(isinstance(r, Conflict) for r in lost), lost
    assert all(r.details["field"] == "external_id" and "12345-race" in r.message for r in lost)
    with district.engine.connect() as c:
        rows = c.execute(
            sa.text(
                "SELECT id, (SELECT count(*) FROM incident_event e WHERE e.incident_id = i.id) "
                "FROM incident i WHERE external_id = '12345-race'"
            )
        ).all()
    assert [tuple(r) for r in rows] == [(won[0], 1)]


def _closed_incident(engine: sa.Engine) -> int:
    with Session(engine) as s:
        inc = create_incident(s, _incident(), actor="热线")
        for st in ("dispatched", "in_hand", "verified", "closed"):
            transition(s, inc.id, st, actor="test")
        s.commit()
        return inc.id


def test_a_rating_racing_a_reopen_never_rates_an_open_incident(district) -> None:
    outcomes: Counter[str] = Counter()
    for _ in range(10):
        iid = _closed_incident(district.engine)
        results = race(
            district.engine,
            lambda s, i, iid=iid: (
                (rate(s, iid, 4) if i == 0 else transition(s, iid, "reopened", actor="复核")).state
            ),
            n=2,
        )
        rated, reopened = results
        assert reopened == "reopened", reopened
        with district.engine.connect() as c:
            state, rating = c.execute(
                sa.text("SELECT state, rating FROM incident WHERE id = :i"), {"i": iid}
            ).one()
            steps = c.scalars(
                sa.text("SELECT to_state FROM incident_event WHERE incident_id = :i ORDER BY id"),
                {"i": iid},
            ).all()
        assert (state, rating) == ("reopened", None)
        assert steps[-1] == "reopened" and steps.count("reopened") == 1
        # the rating came first (and the reopen cleared it) or second (and was refused)
        if isinstance(rated, Exception):
            assert isinstance(rated, Conflict) and "only closed incidents" in rated.message
            outcomes["refused"] += 1
        else:
            assert rated == "closed"
            outcomes["cleared"] += 1
    assert sum(outcomes.values()) == 10


def test_the_database_refuses_a_rating_on_an_open_incident(district) -> None:
    with Session(district.engine) as s:
        iid = create_incident(s, _incident(), actor="热线").id
        s.commit()
    with pytest.raises(sa.exc.IntegrityError, match="ck_incident_rated_closed"):
        with district.engine.begin() as c:
            c.execute(sa.text("UPDATE incident SET rating = 5 WHERE id = :i"), {"i": iid})


def test_concurrent_imports_of_one_file_store_it_once(district, tmp_path) -> None:
    from mapsvc.services.incident_import import ImportRejected, import_csv

    lines = ["id,lat,lon,category,opened"]
    for k in range(3):
        lon, lat = ll(100 + 50 * k, 150)
        lines.append(f"imp-{k},{lat},{lon},road,2026-01-05T08:00:00+08:00")
    path = tmp_path / "twice.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    n = 4
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        with district.engine.connect() as conn:
            barrier.wait()
            try:
                with conn.begin():
                    results[i] = import_csv(conn, path).imported
            except Exception as exc:  # noqa: BLE001 - the outcome is what is tested
                results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results.count(3) == 1, results
    for r in results:
        if r == 3:
            continue
        # checked before the first committed: the id stored meanwhile; after: already imported
        assert isinstance(r, Conflict | ImportRejected), r
        if isinstance(r, Conflict):
            assert "stored meanwhile by another intake" in r.message and "imp-" in r.message
    with district.engine.connect() as c:
        assert (
            c.scalar(sa.text("SELECT count(*) FROM incident WHERE external_id LIKE 'imp-%'")) == 3
        )
        assert c.scalar(sa.text("SELECT count(*) FROM incident_event")) == 3


def test_an_id_stored_during_an_import_is_a_409_and_nothing_imported(district, tmp_path) -> None:
    """The interleaving made certain: another intake holds ``imp-1`` uncommitted while the
    import checks its ids (not seen yet) and inserts (waits for it); then it commits."""
    from mapsvc.services.incident_import import import_csv

    lines = ["id,lat,lon,category,opened"]
    for k in range(3):
        lon, lat = ll(100 + 50 * k, 150)
        lines.append(f"imp-{k},{lat},{lon},road,2026-01-05T08:00:00+08:00")
    path = tmp_path / "meanwhile.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    other = Session(district.engine)
    create_incident(other, _incident("imp-1"), actor="热线")  # flushed, not committed
    outcome: list[Any] = []

    def run() -> None:
        with district.engine.connect() as conn:
            try:
                with conn.begin():
                    outcome.append(import_csv(conn, path).imported)
            except Exception as exc:  # noqa: BLE001 - the outcome is what is tested
                outcome.append(exc)

    t = threading.Thread(target=run)
    t.start()
    with district.engine.connect() as c:  # wait until the import waits on imp-1's row
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            waiting = c.scalar(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE '%INSERT INTO incident%'"
                )
            )
            c.rollback()  # pg_stat_activity is a snapshot per transaction
            if waiting or not t.is_alive():
                break
            threading.Event().wait(0.05)
    assert waiting == 1, outcome
    other.commit()
    other.close()
    t.join(60)
    (err,) = outcome
    assert isinstance(err, Conflict), err
    assert err.message.startswith(
        "an id of the file was stored meanwhile by another intake "
        "(Key (external_id)=(imp-1) already exists.)"
    )
    with district.engine.connect() as c:
        assert c.scalars(sa.text("SELECT external_id FROM incident")).all() == ["imp-1"]


def test_ending_a_post_before_it_began_is_named(district) -> None:
    from mapsvc.core.errors import ValidationError
    from mapsvc.services.assignments import end_assignment

    with Session(district.engine) as s:
        (aid, began) = s.execute(
            sa.text(
                "SELECT id, valid_from FROM assignment WHERE segment_id = :s AND valid_to IS NULL"
            ),
            {"s": district.segment["seg1"]},
        ).one()
        with pytest.raises(ValidationError, match=f"began on {began.isoformat()}"):
            end_assignment(s, aid, began - dt.timedelta(days=2))
        end_assignment(s, aid, began - dt.timedelta(days=1))  # withdrawn: in force on no day
        s.commit()
    assert _posts(district.engine, district.segment["seg1"])[0].valid_to == began - dt.timedelta(
        days=1
    )
