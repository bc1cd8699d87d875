"""我的 (my work) for one staff member, on a hand-made layout with known answers."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Session

from mapsvc.config import Settings
from mapsvc.models import IncidentCategory
from mapsvc.services import mywork, patrol, patrol_routes
from mapsvc.services.incidents import create_incident
from tests.fixtures.patrol import DAY, add_chief, add_segments, lonlat
from tests.services.test_patrol_compliance import walk
from tests.services.test_patrol_routes import RECT

AT = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


def test_days_hours_drops_minutes_and_sign():
    assert mywork.days_hours(51.9 * 3600) == (2, 3)
    assert mywork.days_hours(-(2243.4 * 3600)) == (93, 11)
    assert mywork.days_hours(59 * 60) == (0, 0)


def _incident(s: Session, chief: int, due: dt.datetime | None, x: float) -> int:
    lon, lat = lonlat(x, 0)
    inc = create_incident(
        s, {"category": "litter", "lon": lon, "lat": lat, "reported_at": "2026-11-20T08:00:00Z"}
    )
    s.execute(
        sa.text("UPDATE incident SET chief_id = :c, due_at = :d WHERE id = :i"),
        {"c": chief, "d": due, "i": inc.id},
    )
    return inc.id


def test_open_incidents_overdue_first_with_days_and_hours(fresh_engine):
    with Session(bind=fresh_engine) as s:
        s.add(IncidentCategory(code="litter", name_zh="垃圾", name_en="Litter"))
        s.flush()
        chief = add_chief(s, "王巷长", [])
        other = add_chief(s, "林巷长", [])
        later = _incident(s, chief, AT + dt.timedelta(days=1, hours=5, minutes=30), 10)
        late = _incident(s, chief, AT - dt.timedelta(days=3, hours=2), 20)
        none = _incident(s, chief, None, 30)
        _incident(s, other, AT, 40)
        closed = _incident(s, chief, AT, 50)
        s.execute(
            sa.text("UPDATE incident SET state = 'closed', closed_at = :a WHERE id = :i"),
            {"a": AT, "i": closed},
        )
        rows = mywork.open_incidents(s, chief, AT)
        assert [r["id"] for r in rows] == [late, later, none]
        assert (rows[0]["overdue"], rows[0]["days"], rows[0]["hours"]) == (True, 3, 2)
        assert (rows[1]["overdue"], rows[1]["days"], rows[1]["hours"]) == (False, 1, 5)
        assert rows[2]["days"] is None and rows[0]["category_name"] == "垃圾"
        assert mywork.open_incidents(s, chief, AT, "en")[0]["category_name"] == "Litter"
        start = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
        assert mywork.handled(s, chief, start, start + dt.timedelta(days=1)) == 1


def test_street_order_next_street_and_glance(fresh_engine):
    settings = Settings()
    with Session(bind=fresh_engine) as s:
        ids = add_segments(s, RECT)
        chief = add_chief(s, "王巷长", list(ids.values()))
        s.commit()
        res = patrol_routes.route_for_chief(s, chief, day=DAY)
        order = mywork.street_order(res.to_geojson(4.5))
        walked = [f["properties"]["name"] for f in res.to_geojson(4.5)["features"]]
        # consecutive steps on one street are one item; every step's street appears in order
        assert [o["name"] for o in order] == [
            n for i, n in enumerate(walked) if i == 0 or walked[i - 1] != n
        ]
        total = res.to_geojson(4.5)["properties"]["total_m"]
        assert abs(sum(o["length_m"] for o in order) - total) < 1
        assert mywork.next_street(order, set()) == order[0]
        # walk AB: the AB street is done and the next street is another one
        patrol.upload_track(s, chief, walk(RECT["AB"]), settings=settings)
        patrol.log_visit(s, chief, DAY, place="shop", note="ok")
        g = mywork.glance(s, chief, DAY, settings)
        assert g["today"]["segments"] == len(ids)
        assert g["today"]["patrolled"] == 1 and g["patrolled_ids"] == [ids["AB"]]
        assert g["today"]["visits"] == 1 and g["week"]["visits"] == 1
        nxt = mywork.next_street(order, set(g["patrolled_ids"]))
        assert nxt is not None and not set(nxt["segment_ids"]) <= {ids["AB"]}
