"""Stage service centres of the session's demo."""

from __future__ import annotations

from tests.demo.conftest import q


def test_service_centres(conn) -> None:  # noqa: ANN001
    n_comm = q(conn, "SELECT count(*) FROM community").scalar()
    rows = q(
        conn,
        """SELECT sc.name, ST_Covers(c.geom, sc.geom) AS ok FROM service_centre sc
           JOIN community c ON c.id = sc.community_id""",
    ).all()
    assert len(rows) > n_comm
    assert all(r.ok for r in rows)
    assert q(conn, "SELECT count(DISTINCT community_id) FROM service_centre").scalar() == n_comm
