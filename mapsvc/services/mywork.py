"""我的 (my work): what one chief, grid head or grid member has to do today.

Everything here is read from the same sources as the district pages (patrol routes,
compliance, incidents) for one staff member, so the phone and the district figures agree.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from mapsvc.config import Settings
from mapsvc.core.errors import ServiceError
from mapsvc.services import incidents, patrol
from mapsvc.services.permissions import (
    Principal,
    check_incident_read,
    check_transition,
    read_scope,
)


def days_hours(seconds: float) -> tuple[int, int]:
    """Whole days and remaining whole hours of a duration (its sign dropped).

    People read "2 天 3 小时", not "51.4 小时"; minutes are dropped, not rounded, so a
    deadline is never shown further away than it is.
    """
    total_h = int(abs(seconds) // 3600)
    return total_h // 24, total_h % 24


def street_order(route: dict[str, Any]) -> list[dict[str, Any]]:
    """The streets of a route in walking order: consecutive steps on one street merged.

    ``route`` is a route FeatureCollection (one feature per step, see
    :meth:`mapsvc.services.patrol_routes.PostmanResult.to_geojson`). Each item is
    ``{"seq", "name", "length_m", "segment_ids", "required"}``; ``required`` says whether
    the stretch walks an assigned segment (not only a connector).
    """
    out: list[dict[str, Any]] = []
    for f in route.get("features", []):
        p = f["properties"]
        name = p.get("name") or ""
        req = p.get("kind") == "required"
        if out and out[-1]["name"] == name:
            last = out[-1]
            last["length_m"] = round(last["length_m"] + float(p["length_m"]), 1)
            if p["segment_id"] not in last["segment_ids"]:
                last["segment_ids"].append(int(p["segment_id"]))
            last["required"] = last["required"] or req
        else:
            out.append(
                {
                    "seq": len(out) + 1,
                    "name": name,
                    "length_m": float(p["length_m"]),
                    "segment_ids": [int(p["segment_id"])],
                    "required": req,
                }
            )
    return out


def next_street(order: list[dict[str, Any]], done: set[int]) -> dict[str, Any] | None:
    """The first street in walking order with an assigned segment not yet patrolled."""
    for item in order:
        if item["required"] and not set(item["segment_ids"]) <= done:
            return item
    return None


def open_incidents(
    session: Session, staff_id: int, at: dt.datetime, locale: str = "zh_CN"
) -> list[dict[str, Any]]:
    """Open incidents routed to ``staff_id`` (as chief or grid head), overdue first.

    Sorted by deadline (the earliest first, which puts the overdue ones on top; those
    without a deadline last). ``overdue`` is past the deadline at ``at``; ``days`` and
    ``hours`` are how long overdue or how long left; ``category_name`` is in ``locale``.
    """
    name = "c.name_en" if locale.startswith("en") else "c.name_zh"
    rows = session.execute(
        sa.text(
            f"SELECT i.id, i.category, {name} AS category_name, i.severity, i.state, "
            "i.address, i.due_at, ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat "
            "FROM incident i LEFT JOIN incident_category c ON c.code = i.category "
            "WHERE i.state <> 'closed' AND (i.chief_id = :s OR i.grid_head_id = :s) "
            "ORDER BY i.due_at ASC NULLS LAST, i.id"
        ),
        {"s": staff_id},
    ).mappings()
    out = []
    for r in rows:
        item = dict(r)
        due = r["due_at"]
        if due is None:
            item.update(overdue=False, days=None, hours=None)
        else:
            delta = (due - at).total_seconds()
            item["overdue"] = delta < 0
            item["days"], item["hours"] = days_hours(delta)
            item["due_at"] = due.isoformat()
        out.append(item)
    return out


def handled(session: Session, staff_id: int, start: dt.datetime, end: dt.datetime) -> int:
    """Incidents routed to ``staff_id`` closed in ``[start, end)``."""
    return int(
        session.scalar(
            sa.text(
                "SELECT count(*) FROM incident WHERE (chief_id = :s OR grid_head_id = :s) "
                "AND closed_at >= :a AND closed_at < :b"
            ),
            {"s": staff_id, "a": start, "b": end},
        )
        or 0
    )


def glance(session: Session, staff_id: int, day: dt.date, settings: Settings) -> dict[str, Any]:
    """Today and this week for one staff member: patrolled share, visits, incidents handled.

    The shares are the district compliance figures' own rows for this chief, so the phone
    shows the number the district page shows. Returns ``{"today": {...}, "week": {...},
    "patrolled_ids": [...]}`` where each period has ``segments``, ``patrolled``, ``share``,
    ``visits`` and ``handled``.
    """
    tz = settings.tz
    today = patrol.district_compliance(session, day, settings=settings)
    week = patrol.week_summary(session, day, settings=settings)
    mine_t = next((c for c in today["chiefs"] if c["staff_id"] == staff_id), None)
    mine_w = next((c for c in week["chiefs"] if c["staff_id"] == staff_id), None)
    monday, sunday = patrol.week_of(day)

    def visits(a: dt.date, b: dt.date) -> int:
        return int(
            session.scalar(
                sa.text(
                    "SELECT count(*) FROM patrol_visit "
                    "WHERE staff_id = :s AND day BETWEEN :a AND :b"
                ),
                {"s": staff_id, "a": a, "b": b},
            )
            or 0
        )

    day_start = dt.datetime.combine(day, dt.time(), tz)
    week_start = dt.datetime.combine(monday, dt.time(), tz)
    tomorrow = day_start + dt.timedelta(days=1)

    def period(row: dict[str, Any] | None, visits: int, since: dt.datetime) -> dict[str, Any]:
        return {
            "segments": row["segments"] if row else 0,
            "patrolled": row["patrolled"] if row else 0,
            "share": row["share"] if row else None,
            "visits": visits,
            "handled": handled(session, staff_id, since, tomorrow),
        }

    return {
        "today": period(mine_t, visits(day, day), day_start),
        "week": period(mine_w, visits(monday, sunday), week_start),
        "patrolled_ids": mine_t["patrolled_ids"] if mine_t else [],
    }


def incident_item(
    session: Session,
    incident_id: Any,
    principal: Principal,
    today: dt.date,
    at: dt.datetime,
    locale: str = "zh_CN",
) -> dict[str, Any]:
    """One incident as an item: its fields, where it was routed (names), time left, history,
    and the transitions ``principal`` may make now.

    The actions are the closed loop's next states filtered by the same scope check the
    transition API applies (:func:`mapsvc.services.permissions.check_transition`), so a
    button is shown exactly when pressing it would be allowed.
    """
    inc = incidents.get_incident(session, incident_id)
    check_incident_read(session, principal, read_scope(session, principal, today), inc)
    out = incidents.incident_dict(inc)
    name = "name_en" if locale.startswith("en") else "name_zh"
    names = (
        session.execute(
            sa.text(
                f"SELECT (SELECT {name} FROM incident_category WHERE code = :cat) AS category_name, "
                "(SELECT code FROM grid WHERE id = :g) AS grid_code, "
                "(SELECT name FROM community WHERE id = :c) AS community_name, "
                "(SELECT name FROM alley_segment WHERE id = :s) AS segment_name, "
                "(SELECT ST_AsGeoJSON(geom, 6) FROM alley_segment WHERE id = :s) "
                "AS segment_geojson, "
                "(SELECT name FROM staff WHERE id = :ch) AS chief_name, "
                "(SELECT name FROM staff WHERE id = :gh) AS grid_head_name"
            ),
            {
                "cat": inc.category,
                "g": inc.grid_id,
                "c": inc.community_id,
                "s": inc.segment_id,
                "ch": inc.chief_id,
                "gh": inc.grid_head_id,
            },
        )
        .mappings()
        .one()
    )
    out.update(names)
    # the item's small map: the point and the segment it was routed to (WGS84 GeoJSON)
    out["segment_geojson"] = json.loads(names["segment_geojson"] or "null")
    if inc.due_at is not None and inc.state != "closed":
        out["days"], out["hours"] = days_hours((inc.due_at - at).total_seconds())
        out["late"] = inc.due_at < at
    else:
        out["days"] = out["hours"] = None
        out["late"] = False
    out["events"] = incidents.events(session, inc.id)
    actions = []
    for state in incidents.TRANSITIONS.get(inc.state, ()):
        try:
            check_transition(session, principal, inc, state, today)
        except ServiceError:
            continue
        actions.append(state)
    out["actions"] = actions
    return out
