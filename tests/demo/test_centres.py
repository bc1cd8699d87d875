"""Stage service centres of the session's demo."""

from __future__ import annotations

from tests.fixtures.demo import q


def test_service_centres(conn) -> None:
    n_comm = q(conn, "SELECT count(*) FROM community").scalar()
    rows = q(
        conn,
        """SELECT sc.name, ST_Covers(c.geom, sc.geom) AS ok FROM service_centre sc
           JOIN community c ON c.id = sc.community_id""",
    ).all()
    assert len(rows) > n_comm
    assert all(r.ok for r in rows)
    assert q(conn, "SELECT count(DISTINCT community_id) FROM service_centre").scalar() == n_comm


def test_one_centre_per_community_subdistrict_and_the_district(conn) -> None:
    """README: 90 service centres, one per community, one per subdistrict, one for the
    district: each named after its area, communities' centres inside their community."""
    total = q(conn, "SELECT count(*) FROM service_centre").scalar()
    counts = q(
        conn,
        """SELECT
             (SELECT count(*) FROM community c WHERE (SELECT count(*) FROM service_centre sc
                WHERE sc.name = c.name || '党群服务中心' AND sc.community_id = c.id) = 1),
             (SELECT count(*) FROM subdistrict s WHERE (SELECT count(*) FROM service_centre sc
                WHERE sc.name = s.name || '党群服务中心' AND ST_Covers(s.geom, sc.geom)) = 1),
             (SELECT count(*) FROM district d WHERE (SELECT count(*) FROM service_centre sc
                WHERE sc.name = d.name || '党群服务中心' AND ST_Covers(d.geom, sc.geom)) = 1),
             (SELECT count(*) FROM community), (SELECT count(*) FROM subdistrict),
             (SELECT count(*) FROM district)""",
    ).one()
    communities, subdistricts, districts = counts[3:]
    assert tuple(counts[:3]) == (communities, subdistricts, districts) == (80, 9, 1)
    assert total == communities + subdistricts + districts == 90
