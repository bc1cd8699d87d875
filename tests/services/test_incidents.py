"""The closed loop: every allowed and every forbidden transition, events, rating, figures."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from mapsvc.core.errors import Conflict, NotFound, ValidationError
from mapsvc.db import session_scope
from mapsvc.models import STATES
from mapsvc.services import incidents as svc
from tests.fixtures.incidents import ll

#: how to reach each state from "received" through allowed transitions
PATH = {
    "received": [],
    "dispatched": ["dispatched"],
    "in_hand": ["dispatched", "in_hand"],
    "verified": ["dispatched", "in_hand", "verified"],
    "closed": ["dispatched", "in_hand", "verified", "closed"],
    "returned": ["dispatched", "returned"],
    "reopened": ["dispatched", "in_hand", "verified", "closed", "reopened"],
}
ALLOWED = {
    ("received", "dispatched"),
    ("dispatched", "in_hand"),
    ("dispatched", "returned"),
    ("in_hand", "verified"),
    ("in_hand", "returned"),
    ("verified", "closed"),
    ("verified", "returned"),
    ("returned", "dispatched"),
    ("closed", "reopened"),
    ("reopened", "dispatched"),
}


def _new(s, x: float = 100, y: float = 250, **extra) -> int:
    lon, lat = ll(x, y)
    return svc.create_incident(s, {"category": "road", "lon": lon, "lat": lat, **extra}).id


def _at(s, state: str) -> int:
    iid = _new(s)
    for st in PATH[state]:
        svc.transition(s, iid, st, actor="walker")
    return iid


def test_transition_table_matches_the_loop() -> None:
    assert {(a, b) for a, tos in svc.TRANSITIONS.items() for b in tos} == ALLOWED


@pytest.mark.parametrize("src", STATES)
@pytest.mark.parametrize("dst", STATES)
def test_every_transition(district, src: str, dst: str) -> None:
    with session_scope(district.engine) as s:
        iid = _at(s, src)
        assert svc.get_incident(s, iid).state == src
        n_events = len(svc.events(s, iid))
        if (src, dst) in ALLOWED:
            inc = svc.transition(s, iid, dst, actor="张三", note="ok")
            assert inc.state == dst
            ev = svc.events(s, iid)
            assert len(ev) == n_events + 1
            assert ev[-1]["from_state"] == src and ev[-1]["to_state"] == dst
            assert ev[-1]["actor"] == "张三" and ev[-1]["note"] == "ok"
        else:
            with pytest.raises(Conflict) as exc:
                svc.transition(s, iid, dst, actor="张三")
            assert exc.value.status == 409
            assert exc.value.details["allowed"] == [b for a, b in sorted(ALLOWED) if a == src] or (
                sorted(exc.value.details["allowed"]) == sorted(b for a, b in ALLOWED if a == src)
            )
            assert svc.get_incident(s, iid).state == src
            assert len(svc.events(s, iid)) == n_events


def test_closing_sets_closed_at_and_rating_rules(district) -> None:
    with session_scope(district.engine) as s:
        iid = _at(s, "verified")
        with pytest.raises(Conflict):
            svc.rate(s, iid, 4)
        svc.transition(s, iid, "closed", actor="a")
        inc = svc.get_incident(s, iid)
        assert inc.closed_at is not None
        for bad in (0, 6, "x", 2.5, None, True):
            with pytest.raises(ValidationError) as exc:
                svc.rate(s, iid, bad)
            assert exc.value.details["field"] == "rating"
        assert svc.rate(s, iid, 5).rating == 5
        svc.transition(s, iid, "reopened", actor="a")
        inc = svc.get_incident(s, iid)
        assert inc.closed_at is None and inc.rating is None


def test_bad_input_names_the_field_and_changes_nothing(district) -> None:
    lon, lat = ll(100, 100)
    cases = [
        ({"lon": lon, "lat": lat}, "category"),
        ({"category": "nope", "lon": lon, "lat": lat}, "category"),
        ({"category": "road", "lat": lat}, "lon"),
        ({"category": "road", "lon": "abc", "lat": lat}, "lon"),
        ({"category": "road", "lon": lon, "lat": 95}, "lat"),
        ({"category": "road", "lon": lon, "lat": lat, "severity": "huge"}, "severity"),
        ({"category": "road", "lon": lon, "lat": lat, "reported_at": "yesterday"}, "reported_at"),
        (
            {
                "category": "road",
                "lon": lon,
                "lat": lat,
                "reported_at": (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).isoformat(),
            },
            "reported_at",
        ),
    ]
    for data, fld in cases:
        with pytest.raises(ValidationError) as exc, session_scope(district.engine) as s:
            svc.create_incident(s, data)
        assert exc.value.details["field"] == fld, data
    with district.engine.connect() as c:
        assert c.scalar(sa.text("SELECT count(*) FROM incident")) == 0
    with session_scope(district.engine) as s:
        with pytest.raises(NotFound):
            svc.get_incident(s, 999999)
        with pytest.raises(ValidationError):
            svc.transition(s, _new(s), "dispatched", actor="")


def test_time_limits_overdue_and_figures(district) -> None:
    now = dt.datetime.now(dt.UTC)
    limits = svc.time_limits()
    with session_scope(district.engine) as s:
        # minor (24 h) reported 30 h ago and still open -> overdue
        late = _new(s, category="litter", reported_at=(now - dt.timedelta(hours=30)).isoformat())
        late_inc = svc.get_incident(s, late)
        assert late_inc.severity == "minor"
        assert late_inc.due_at == late_inc.reported_at + dt.timedelta(hours=limits["minor"])
        # ordinary (72 h) reported 10 h ago -> not overdue
        fresh = _new(s, reported_at=(now - dt.timedelta(hours=10)).isoformat())
        # two closed ones in grid A1: closed after 5 h (on time) and 100 h (late, 72 h limit)
        t0 = now - dt.timedelta(hours=200)
        on_time = _new(s, reported_at=t0.isoformat())
        late_closed = _new(s, reported_at=t0.isoformat())
        for iid, hours in ((on_time, 5), (late_closed, 100)):
            for st in PATH["verified"]:
                svc.transition(s, iid, st, actor="a", at=t0 + dt.timedelta(hours=1))
            svc.transition(s, iid, "closed", actor="a", at=t0 + dt.timedelta(hours=hours))
        # one in B1 (community B)
        _new(s, x=700, y=100, reported_at=(now - dt.timedelta(hours=1)).isoformat())
        over = [i["id"] for i in svc.overdue(s)]
        assert late in over and fresh not in over and on_time not in over
        by_grid = {r["code"]: r for r in svc.figures(s, "grid")}
        a1 = by_grid["G-A1"]
        assert a1["count"] == 4 and a1["closed"] == 2 and a1["open"] == 2
        assert a1["median_hours_to_close"] == pytest.approx((5 + 100) / 2, abs=0.01)
        assert a1["on_time_pct"] == pytest.approx(50.0)
        assert a1["per_1000"] == pytest.approx(4 / 2000 * 1000)
        by_comm = {r["code"]: r for r in svc.figures(s, "community")}
        assert sum(r["count"] for r in by_comm.values()) == 5
        sub = svc.figures(s, "subdistrict")
        assert sub[0]["count"] == 5 and sub[0]["per_1000"] == pytest.approx(5 / 10000 * 1000)
        d = svc.district_figures(s)
        assert d["open"] == 3 and d["closed"] == 2 and d["overdue"] == 1
        assert d["on_time_pct"] == pytest.approx(50.0)
        assert sum(m["count"] for m in d["by_month"]) == 5
        listed = svc.list_incidents(s, {"grid": district.grid["A1"], "state": "closed"})
        assert {i["id"] for i in listed["items"]} == {on_time, late_closed}
        listed = svc.list_incidents(s, {"severity": "minor"})
        assert [i["id"] for i in listed["items"]] == [late]


def test_figures_replay_a_past_moment(district) -> None:
    """``as_of`` replays the loop's history: states, closing times and overdue as they stood."""
    now = dt.datetime.now(dt.UTC)
    t0 = now - dt.timedelta(hours=200)

    def h(n: float) -> dt.datetime:
        return t0 + dt.timedelta(hours=n)

    with session_scope(district.engine) as s:
        quick = _new(s, reported_at=t0.isoformat())  # ordinary: due after 72 h
        slow = _new(s, reported_at=t0.isoformat())
        for iid, closed in ((quick, 5), (slow, 100)):
            for st in PATH["verified"]:
                svc.transition(s, iid, st, actor="a", at=h(1))
            svc.transition(s, iid, "closed", actor="a", at=h(closed))
        svc.rate(s, quick, 5)
        svc.rate(s, slow, 1)
        svc.transition(s, slow, "reopened", actor="a", at=h(150))
        _new(s, reported_at=(now - dt.timedelta(hours=1)).isoformat())

        def at(hours: float | None) -> dict:
            return svc.district_figures(s, as_of=None if hours is None else h(hours))

        before = at(-1)
        assert before["total"] == 0 and before["by_month"] == []
        d = at(50)  # quick closed on time, slow still being verified and not yet due
        assert (d["total"], d["open"], d["closed"], d["overdue"]) == (2, 1, 1, 0)
        assert d["on_time_pct"] == pytest.approx(100.0)
        assert d["median_hours_to_close"] == pytest.approx(5.0, abs=0.01)
        assert d["mean_rating"] == pytest.approx(5.0)
        d = at(120)  # slow closed too, late
        assert (d["open"], d["closed"], d["on_time_pct"]) == (0, 2, pytest.approx(50.0))
        assert d["median_hours_to_close"] == pytest.approx((5 + 100) / 2, abs=0.01)
        d = at(160)  # slow reopened, past its due time
        assert (d["total"], d["open"], d["closed"], d["overdue"]) == (2, 1, 1, 1)
        d = at(None)  # now: the new one counts as well
        assert (d["total"], d["open"], d["closed"], d["overdue"]) == (3, 2, 1, 1)
        by_grid = svc.figures(s, "grid", as_of=h(50))
        assert sum(r["count"] for r in by_grid) == 2
        assert sum(r["closed"] for r in by_grid) == 1
