"""Stage streets: the alley segments of the session's demo."""

from __future__ import annotations

from tests.fixtures.demo import q, rounds_to


def test_segments_named_and_split_at_junctions(conn) -> None:
    n, km, bad_code, bad_name = q(
        conn,
        r"""SELECT count(*), sum(length_m) / 1000,
                   count(*) FILTER (WHERE code !~ '^demo:\d+$' OR source <> 'demo'),
                   count(*) FILTER (WHERE name !~ '(路|街|巷)$')
            FROM alley_segment""",
    ).one()
    print(f"{n} alley segments, {km:.1f} km")
    # README: ≈ 3,600 (580 km): 3,550 <= n < 3,650 and 575 <= km < 585
    assert rounds_to(n, 3600, 100), n
    assert rounds_to(km, 580, 10), km
    assert bad_code == 0 and bad_name == 0
    crossings = q(
        conn,
        """SELECT count(*) FROM alley_segment a JOIN alley_segment b
           ON a.id < b.id AND ST_Intersects(a.geom, b.geom)
           AND ST_Relate(a.geom, b.geom, 'T********')""",
    ).scalar()
    assert crossings == 0, "segments meet only at their end points (junctions)"
    outside = q(
        conn,
        "WITH d AS MATERIALIZED (SELECT ST_Buffer(geom::geography, 1)::geometry AS g "
        "FROM district) SELECT count(*) FROM alley_segment s, d WHERE NOT ST_Covers(d.g, s.geom)",
    ).scalar()
    assert outside == 0
