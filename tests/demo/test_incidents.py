"""Stage incidents: the incidents and their history in the session's demo."""

from __future__ import annotations

import datetime as dt

import numpy as np

from mapsvc.config import DEFAULTS
from tests.conftest import TEST_DEMO_INCIDENTS
from tests.fixtures.demo import q, rounds_to


def test_incidents(conn) -> None:
    n = q(conn, "SELECT count(*) FROM incident").scalar()
    assert n == TEST_DEMO_INCIDENTS
    sev = dict(q(conn, "SELECT severity, count(*) FROM incident GROUP BY 1").all())
    assert max(sev, key=sev.get) == "minor" and set(sev) <= {"minor", "ordinary", "major", "grave"}
    states = dict(q(conn, "SELECT state, count(*) FROM incident GROUP BY 1").all())
    assert states["closed"] > 0.8 * n and sum(v for k, v in states.items() if k != "closed") > 0
    src = dict(q(conn, "SELECT source, count(*) FROM incident GROUP BY 1").all())
    assert set(src) == {"hotline", "patrol", "resident"}
    r = q(
        conn,
        """SELECT
             count(*) FILTER (WHERE state = 'closed' AND (closed_at IS NULL OR closed_at < reported_at)),
             count(*) FILTER (WHERE state <> 'closed' AND (closed_at IS NOT NULL OR rating IS NOT NULL)),
             count(*) FILTER (WHERE state <> 'closed' AND due_at < now()),
             count(*) FILTER (WHERE rating IS NOT NULL),
             min(reported_at), max(reported_at),
             count(*) FILTER (WHERE grid_id IS NULL),
             count(*) FILTER (WHERE segment_id IS NOT NULL),
             count(DISTINCT category)
           FROM incident""",
    ).one()
    assert r[0] == 0 and r[1] == 0
    assert r[2] > 0, "some open incidents are overdue"
    assert r[3] > 0.5 * n
    now = dt.datetime.now(dt.UTC)
    assert now - r[5] < dt.timedelta(days=2) and dt.timedelta(days=330) < now - r[
        4
    ] <= dt.timedelta(days=366)
    assert r[6] < 0.01 * n, "routed into a grid"
    assert r[7] > 0.7 * n, "most incidents are on a street"
    # every category of the catalogue occurs (the rarest, gas leaks, about 15 times here)
    assert r[8] == q(conn, "SELECT count(*) FROM incident_category").scalar()
    limits = DEFAULTS["INCIDENT_TIME_LIMIT_HOURS"]
    for severity, hours in limits.items():
        bad = q(
            conn,
            "SELECT count(*) FROM incident WHERE severity = :s AND due_at <> reported_at + make_interval(hours => :h)",
            s=severity,
            h=hours,
        ).scalar()
        assert bad == 0, severity


def test_incident_history_matches_state(conn) -> None:
    r = q(
        conn,
        """WITH last AS (
             SELECT DISTINCT ON (incident_id) incident_id, to_state, at FROM incident_event
             ORDER BY incident_id, at DESC, id DESC),
           first AS (
             SELECT DISTINCT ON (incident_id) incident_id, from_state, to_state, at
             FROM incident_event ORDER BY incident_id, at, id)
           SELECT count(*) FILTER (WHERE l.incident_id IS NULL),
                  count(*) FILTER (WHERE l.to_state <> i.state),
                  count(*) FILTER (WHERE i.state = 'closed' AND l.at <> i.closed_at),
                  count(*) FILTER (WHERE f.to_state <> 'received' OR f.from_state IS NOT NULL
                                   OR f.at <> i.reported_at)
           FROM incident i LEFT JOIN last l ON l.incident_id = i.id
           LEFT JOIN first f ON f.incident_id = i.id""",
    ).one()
    assert tuple(r) == (0, 0, 0, 0)


def test_incidents_cluster_in_hotspots(conn) -> None:
    dens = [
        d
        for (d,) in q(
            conn,
            """SELECT count(i.id) / g.area_km2 FROM grid g LEFT JOIN incident i ON i.grid_id = g.id
               GROUP BY g.id ORDER BY 1 DESC""",
        )
    ]
    top = np.mean(dens[: len(dens) // 10])
    median = np.median(dens)
    print(f"incidents/km²: top decile {top:.0f}, median {median:.0f}")
    assert top > 4 * median


def test_nineteen_categories(conn) -> None:
    """README: 19 categories (占道经营, 乱堆乱放, 井盖缺失, …), each with a class it usually gets."""
    names = dict(q(conn, "SELECT name_zh, default_severity FROM incident_category").all())
    assert len(names) == 19
    assert {"占道经营", "乱堆乱放", "井盖缺失"} <= set(names)
    assert set(names.values()) <= {"minor", "ordinary", "major", "grave"}


def test_about_five_events_per_incident(conn) -> None:
    """README: ≈ 500,000 incident events for 100,000 incidents (one per closed-loop step,
    most incidents closed): 4.5 <= events per incident < 5.5, whatever the incident count."""
    events, incidents = q(
        conn, "SELECT (SELECT count(*) FROM incident_event), (SELECT count(*) FROM incident)"
    ).one()
    assert rounds_to(events / incidents, 5, 1), events / incidents
