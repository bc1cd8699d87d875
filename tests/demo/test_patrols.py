"""Stage patrols: tracks and weekly visits of the session's demo."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from mapsvc.config import Settings
from tests.fixtures.demo import q, rounds_to

#: chiefs with a round on each of the last five days (the rest walked yesterday only)
WEEK_CHIEFS = 8


def test_patrol_tracks(conn) -> None:
    rows = q(
        conn,
        """SELECT t.staff_id, GeometryType(t.geom) gt, ST_NPoints(t.geom) np, t.points_total,
                  t.length_m, extract(epoch FROM t.ended_at - t.started_at) secs,
                  (SELECT bool_and(ST_M(p.geom) > ST_M(q.geom)) FROM ST_DumpPoints(t.geom) p
                     JOIN ST_DumpPoints(t.geom) q ON p.path[1] = q.path[1] + 1) AS increasing,
                  (SELECT avg((ST_DWithin(p.geom::geography, s.u::geography, 20))::int)
                     FROM ST_DumpPoints(t.geom) p,
                     (SELECT ST_Union(sg.geom) u FROM assignment a JOIN alley_segment sg
                        ON sg.id = a.segment_id WHERE a.staff_id = t.staff_id) s) AS near
           FROM patrol_track t""",
    ).all()
    assert len(rows) >= 10
    assert len({r.staff_id for r in rows}) >= 3
    for r in rows:
        assert r.gt == "LINESTRINGM" and r.np == r.points_total and r.increasing
        speed_kmh = r.length_m / float(r.secs) * 3.6
        assert 1.5 < speed_kmh < 8, speed_kmh  # walking, GPS noise included
        assert r.near > 0.95


def test_weekly_visits(conn) -> None:
    r = q(
        conn,
        """SELECT count(*),
             count(*) FILTER (WHERE v.segment_id IS NOT NULL AND NOT EXISTS (
               SELECT 1 FROM assignment a WHERE a.staff_id = v.staff_id
               AND a.segment_id = v.segment_id)),
             count(*) FILTER (WHERE v.grid_id IS NOT NULL AND NOT EXISTS (
               SELECT 1 FROM assignment a WHERE a.staff_id = v.staff_id
               AND a.grid_id = v.grid_id)),
             count(*) FILTER (WHERE NOT ST_DWithin(v.geom::geography, COALESCE(
               (SELECT s.geom FROM alley_segment s WHERE s.id = v.segment_id),
               (SELECT g.geom FROM grid g WHERE g.id = v.grid_id))::geography, 60)),
             max(v.day) < current_date, min(v.day) >= current_date - 63
           FROM patrol_visit v""",
    ).one()
    assert r[0] > 1000
    assert tuple(r[1:]) == (0, 0, 0, True, True)
    # README: ≈ 11,000 (10,500 <= visits < 11,500, to the thousand)
    assert rounds_to(r[0], 11_000, 1000), r[0]


def test_about_one_visitor_in_ten_mostly_skips(conn) -> None:
    """Chiefs and grid members visit in most of the eight weeks; about one in ten skips
    most weeks (fewer than four), so weekly compliance has something to show."""
    weeks = dict(
        q(
            conn,
            """SELECT p.staff_id, count(DISTINCT v.day) FROM (
                 SELECT DISTINCT staff_id FROM assignment WHERE valid_to IS NULL
                   AND role IN ('alley_chief', 'grid_member')) p
               LEFT JOIN patrol_visit v ON v.staff_id = p.staff_id GROUP BY p.staff_id""",
        ).all()
    )
    assert max(weeks.values()) == 8
    share = sum(1 for n in weeks.values() if n < 4) / len(weeks)
    print(f"{len(weeks)} visitors, {share:.1%} visited in fewer than 4 of 8 weeks")
    assert 0.05 <= share <= 0.15


def test_tracks_yesterday_and_a_week_of_eight_chiefs(conn) -> None:
    """README: 243 tracks, yesterday's morning round of about 85 % of the chiefs and 8
    chiefs over each of the last 5 days, starting 08:00-09:30 on the district's clock."""
    chiefs = set(
        q(
            conn,
            "SELECT DISTINCT staff_id FROM assignment WHERE role = 'alley_chief' "
            "AND valid_to IS NULL",
        ).scalars()
    )
    by_day: dict[dt.date, set[int]] = defaultdict(set)
    rows = q(
        conn,
        "SELECT staff_id, day, (started_at AT TIME ZONE :tz)::time AS starts FROM patrol_track",
        tz=Settings().tz.key,
    ).all()
    for r in rows:
        assert r.staff_id not in by_day[r.day], "one round a chief a day"
        by_day[r.day].add(r.staff_id)
        assert dt.time(8, 0) <= r.starts <= dt.time(9, 30), r.starts
    last = max(by_day)
    assert Settings().today() - dt.timedelta(days=2) <= last < Settings().today()  # yesterday
    assert sorted(by_day) == [last - dt.timedelta(days=k) for k in range(4, -1, -1)]
    week = by_day[last - dt.timedelta(days=1)]
    assert len(week) == WEEK_CHIEFS
    assert all(by_day[d] == week for d in by_day if d != last)
    yesterday = by_day[last]
    assert week <= yesterday <= chiefs
    share = len(yesterday) / len(chiefs)
    print(f"{len(yesterday)} of {len(chiefs)} chiefs walked yesterday ({share:.1%})")
    assert 0.80 <= share <= 0.90
    assert len(rows) == len(yesterday) + WEEK_CHIEFS * 4 == 243
