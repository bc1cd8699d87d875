"""Stage patrols: tracks and weekly visits of the session's demo."""

from __future__ import annotations

from tests.demo.conftest import q


def test_patrol_tracks(conn) -> None:  # noqa: ANN001
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


def test_weekly_visits(conn) -> None:  # noqa: ANN001
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
