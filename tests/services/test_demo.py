"""Invariants of the demo district (the session's ``demo_engine``), measured in PostGIS.

Expected counts, names and codes are read here from the shipped CSV with the csv module,
not from the loader; areas are geodesic (``geography``) in square metres.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from collections import defaultdict

import eviltransform
import networkx as nx
import numpy as np
import pytest
import shapely
import sqlalchemy as sa
from pyproj import Geod
from shapely.geometry import shape

from mapsvc.config import DEFAULTS, PROJECT_ROOT
from mapsvc.services import demo
from tests.conftest import TEST_DEMO_INCIDENTS

DATA = PROJECT_ROOT / "data" / "boundaries"
OFFICIAL_AREA_KM2 = 53.0  # Licheng's published area; the 2016 outline differs slightly


@pytest.fixture(scope="module")
def csv_rows() -> list[list[str]]:
    with open(DATA / "350502.csv", encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))


@pytest.fixture(scope="module")
def conn(demo_engine):  # noqa: ANN001, ANN201
    with demo_engine.connect() as c:
        yield c


def q(conn, sql: str, **params):  # noqa: ANN001, ANN201
    return conn.execute(sa.text(sql), params)


# --------------------------------------------------------------------------- boundaries


def test_grids_tile_each_community(conn) -> None:  # noqa: ANN001
    rows = q(
        conn,
        """
        WITH u AS (SELECT community_id, ST_Union(geom) AS g FROM grid GROUP BY community_id)
        SELECT c.code,
               ST_Area(ST_Difference(c.geom, u.g)::geography) AS gap,
               ST_Area(ST_Difference(u.g, c.geom)::geography) AS outside
        FROM community c JOIN u ON u.community_id = c.id
        """,
    ).all()
    overlaps = dict(
        q(
            conn,
            """
            SELECT c.code, COALESCE(sum(ST_Area(ST_Intersection(a.geom, b.geom)::geography)), 0)
            FROM community c
            JOIN grid a ON a.community_id = c.id
            JOIN grid b ON b.community_id = c.id AND a.id < b.id AND ST_Intersects(a.geom, b.geom)
            GROUP BY c.code
            """,
        ).all()
    )
    n_comm = q(conn, "SELECT count(*) FROM community").scalar()
    assert len(rows) == n_comm, "every community has grids"
    worst_gap = max(r.gap for r in rows)
    worst_out = max(r.outside for r in rows)
    worst_overlap = max(overlaps.values(), default=0.0)
    print(
        f"worst gap {worst_gap:.2e} m², outside {worst_out:.2e} m², overlap {worst_overlap:.2e} m²"
    )
    assert worst_gap < 1.0
    assert worst_out < 1.0
    assert worst_overlap < 1.0


def test_every_grid_in_exactly_one_community_by_geometry(conn) -> None:  # noqa: ANN001
    rows = q(
        conn,
        """
        SELECT g.code, g.community_id,
               array_agg(c.id) FILTER (
                 WHERE ST_Area(ST_Intersection(g.geom, c.geom)::geography) > 1.0) AS hits
        FROM grid g JOIN community c ON ST_Intersects(g.geom, c.geom)
        GROUP BY g.id
        """,
    ).all()
    assert rows
    for r in rows:
        assert r.hits == [r.community_id], f"grid {r.code} overlaps communities {r.hits}"


def test_communities_and_subdistricts_tile_the_district(conn) -> None:  # noqa: ANN001
    sym = q(
        conn,
        """SELECT ST_Area(ST_SymDifference(d.geom, (SELECT ST_Union(geom) FROM community))
                  ::geography) FROM district d""",
    ).scalar()
    overlap = q(
        conn,
        """SELECT COALESCE(sum(ST_Area(ST_Intersection(a.geom, b.geom)::geography)), 0)
           FROM community a JOIN community b ON a.id < b.id AND ST_Intersects(a.geom, b.geom)""",
    ).scalar()
    sub_diff = q(
        conn,
        """SELECT max(ST_Area(ST_SymDifference(s.geom, u.g)::geography)) FROM subdistrict s
           JOIN (SELECT subdistrict_id, ST_Union(geom) g FROM community GROUP BY 1) u
             ON u.subdistrict_id = s.id""",
    ).scalar()
    print(f"district vs communities {sym:.2e} m², overlaps {overlap:.2e} m², sub {sub_diff:.2e}")
    assert sym < 1.0
    assert overlap < 1.0
    assert sub_diff < 1.0


def test_real_names_and_codes(conn, csv_rows) -> None:  # noqa: ANN001
    comm_csv = {r[0]: (r[1], r[2]) for r in csv_rows if r[4] == "5"}
    sub_csv = {r[0]: r[2] for r in csv_rows if r[4] == "4"}
    db = {
        r.code: (r.sub, r.name)
        for r in q(
            conn,
            "SELECT c.code, s.code AS sub, c.name FROM community c "
            "JOIN subdistrict s ON s.id = c.subdistrict_id",
        )
    }
    assert set(db) == set(comm_csv)
    for code, (parent, name) in comm_csv.items():
        assert db[code][0] == parent
        # the community, not its committee: 金山社区居委会 -> 金山社区
        assert name.startswith(db[code][1]) and db[code][1]
    subs = dict(q(conn, "SELECT code, name FROM subdistrict").all())
    assert subs == {c: n for c, n in sub_csv.items() if c in {p for p, _ in comm_csv.values()}}
    d = q(conn, "SELECT code, name, source_crs FROM district").one()
    assert (d.code, d.name, d.source_crs) == ("350502000000", "鲤城区", "gcj02")


def test_district_area_and_conversion(conn) -> None:  # noqa: ANN001
    area = q(conn, "SELECT area_km2 FROM district").scalar()
    print(f"measured district area: {area:.2f} km² (official about {OFFICIAL_AREA_KM2} km²)")
    assert abs(area - OFFICIAL_AREA_KM2) / OFFICIAL_AREA_KM2 < 0.12
    # an independent conversion (eviltransform, exact inverse) and area (pyproj.Geod)
    with open(DATA / "350502-fence.geojson", encoding="utf-8") as fh:
        gcj = shape(json.load(fh))

    def conv(c: np.ndarray) -> np.ndarray:
        return np.array([eviltransform.gcj2wgs_exact(y, x)[::-1] for x, y in c])

    wgs = shapely.transform(gcj, conv)
    ref = abs(Geod(ellps="WGS84").geometry_area_perimeter(wgs)[0]) / 1e6
    assert area == pytest.approx(ref, abs=0.01)
    # stored in WGS84: a few hundred metres from the GCJ-02 outline, and on the reference
    hd = q(
        conn,
        "SELECT ST_HausdorffDistance(geom::geography::geometry, ST_GeomFromText(:w, 4326)) "
        "FROM district",
        w=wgs.wkt,
    ).scalar()
    assert hd < 1e-5  # degrees, ~1 m
    shift = q(
        conn,
        "SELECT ST_Distance(ST_Centroid(geom)::geography, "
        "ST_Centroid(ST_GeomFromText(:g, 4326))::geography) FROM district",
        g=gcj.wkt,
    ).scalar()
    assert 200 < shift < 900


def test_published_points_lie_in_their_community(conn, csv_rows) -> None:  # noqa: ANN001
    pts = [(r[0], float(r[12]), float(r[13])) for r in csv_rows if r[4] == "5" and r[12]]
    inside = 0
    for code, lon, lat in pts:
        wlat, wlon = eviltransform.gcj2wgs_exact(lat, lon)
        inside += q(
            conn,
            "SELECT ST_Covers(geom, ST_SetSRID(ST_MakePoint(:x, :y), 4326)) FROM community "
            "WHERE code = :c",
            x=wlon,
            y=wlat,
            c=code,
        ).scalar()
    print(f"{inside}/{len(pts)} published community points inside their polygon")
    assert inside >= 0.95 * len(pts)


def test_grid_codes_and_figures(conn) -> None:  # noqa: ANN001
    rows = q(
        conn,
        """SELECT g.code, c.code AS ccode, g.households, g.population FROM grid g
           JOIN community c ON c.id = g.community_id ORDER BY g.code""",
    ).all()
    per_comm = defaultdict(list)
    for r in rows:
        assert re.fullmatch(r"\d{12}-\d{2}", r.code), r.code
        assert r.code.startswith(r.ccode + "-")
        per_comm[r.ccode].append(r)
    for ccode, grids in per_comm.items():
        nums = sorted(int(g.code[-2:]) for g in grids)
        assert nums == list(range(1, len(grids) + 1)), ccode
    sums = q(
        conn,
        """SELECT c.code, c.households, c.population, sum(g.households) gh, sum(g.population) gp
           FROM community c JOIN grid g ON g.community_id = c.id GROUP BY c.id""",
    ).all()
    for s in sums:
        assert (s.gh, s.gp) == (s.households, s.population), s.code
    hh = np.array([r.households for r in rows])
    share = np.mean((hh >= 250) & (hh <= 550))
    print(f"grids: {len(hh)}, households median {np.median(hh):.0f}, in 250-550: {share:.0%}")
    assert share > 0.9
    assert 300 <= np.median(hh) <= 500


def test_population_plausible_for_an_old_city(conn) -> None:  # noqa: ANN001
    total = q(conn, "SELECT sum(population) FROM community").scalar()
    dens = dict(
        q(
            conn,
            "SELECT ur_code, sum(population) / sum(area_km2) FROM community GROUP BY ur_code",
        ).all()
    )
    print(f"population {total:,}, density by ur_code {dens}")
    assert 250_000 < total < 700_000
    assert dens["111"] > 2 * dens["112"]
    assert q(conn, "SELECT min(households), min(enterprises) FROM community").one()[0] > 0


# --------------------------------------------------------------------------- streets and staff


def test_segments_named_and_split_at_junctions(conn) -> None:  # noqa: ANN001
    n, bad_code, bad_name = q(
        conn,
        r"""SELECT count(*), count(*) FILTER (WHERE code !~ '^demo:\d+$' OR source <> 'demo'),
                   count(*) FILTER (WHERE name !~ '(路|街|巷)$')
            FROM alley_segment""",
    ).one()
    assert 1500 <= n <= 4000
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


def _current(conn, role: str, target: str) -> dict[int, list[int]]:  # noqa: ANN001
    out: dict[int, list[int]] = defaultdict(list)
    for staff_id, tid in q(
        conn,
        f"""SELECT staff_id, {target}_id FROM assignment WHERE role = :r AND {target}_id IS NOT NULL
            AND valid_from <= current_date AND (valid_to IS NULL OR valid_to >= current_date)""",
        r=role,
    ):
        out[staff_id].append(tid)
    return out


def test_chiefs_hold_contiguous_groups(conn) -> None:  # noqa: ANN001
    chiefs = _current(conn, "alley_chief", "segment")
    ends = {
        sid: (a, b)
        for sid, a, b in q(
            conn,
            """SELECT id, ST_AsText(ST_SnapToGrid(ST_StartPoint(geom), 1e-7)),
                      ST_AsText(ST_SnapToGrid(ST_EndPoint(geom), 1e-7)) FROM alley_segment""",
        )
    }
    assert len(chiefs) > 50
    held = [s for segs in chiefs.values() for s in segs]
    assert len(held) == len(set(held)), "one chief per segment"
    for staff_id, segs in chiefs.items():
        assert 5 <= len(segs) <= 30, (staff_id, len(segs))
        g = nx.Graph()
        for s in segs:
            g.add_edge(*ends[s])
        assert nx.is_connected(g), f"chief {staff_id}'s segments are not contiguous"
    without = len(ends) - len(held)
    print(f"{len(chiefs)} chiefs, {without} of {len(ends)} segments without a chief")
    assert 0 < without < 0.05 * len(ends)
    deputies = _current(conn, "deputy_chief", "segment")
    assert deputies and all(len(v) >= 5 for v in deputies.values())


def test_staff_in_every_role(conn) -> None:  # noqa: ANN001
    roles = dict(q(conn, "SELECT role, count(*) FROM staff GROUP BY role").all())
    for role in ("community_worker", "grid_head", "grid_member", "alley_chief", "deputy_chief"):
        assert roles.get(role, 0) > 0, role
    kinds = {
        k for (k,) in q(conn, "SELECT DISTINCT dispatched_kind FROM staff WHERE role='dispatched'")
    }
    assert {"police", "city_management", "doctor", "mediator", "lawyer"} <= kinds
    bad_phone = q(
        conn, r"SELECT count(*) FROM staff WHERE phone !~ '^1[3-9]\d-0000-\d{4}$'"
    ).scalar()
    assert bad_phone == 0
    assert q(conn, "SELECT count(DISTINCT phone) = count(*) FROM staff").scalar()
    heads = _current(conn, "grid_head", "grid")
    per_grid = defaultdict(int)
    for grids in heads.values():
        for g in grids:
            per_grid[g] += 1
    n_grids = q(conn, "SELECT count(*) FROM grid").scalar()
    assert len(per_grid) == n_grids and set(per_grid.values()) == {1}
    members = defaultdict(int)
    for grids in _current(conn, "grid_member", "grid").values():
        for g in grids:
            members[g] += 1
    short = sum(1 for g in range(1, n_grids + 1) if members.get(g, 0) < 2)
    print(f"{short} of {n_grids} grids have fewer than 2 members")
    assert 0 < short < 0.1 * n_grids
    history = q(conn, "SELECT count(*) FROM assignment WHERE valid_to < current_date").scalar()
    assert history > 0, "some posts changed hands (history kept)"
    assert q(conn, "SELECT max(valid_from) < current_date FROM assignment").scalar()


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


# --------------------------------------------------------------------------- incidents and tracks


def test_incidents(conn) -> None:  # noqa: ANN001
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
    assert r[8] >= 15
    limits = DEFAULTS["INCIDENT_TIME_LIMIT_HOURS"]
    for severity, hours in limits.items():
        bad = q(
            conn,
            "SELECT count(*) FROM incident WHERE severity = :s AND due_at <> reported_at + make_interval(hours => :h)",
            s=severity,
            h=hours,
        ).scalar()
        assert bad == 0, severity


def test_incident_history_matches_state(conn) -> None:  # noqa: ANN001
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


def test_incidents_cluster_in_hotspots(conn) -> None:  # noqa: ANN001
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


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_demo(make_database, template_db) -> None:  # noqa: ANN001
    from mapsvc.db import make_engine

    engines = [make_engine(make_database(template=template_db)) for _ in range(3)]
    now = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    try:
        sums = [
            demo.load_demo(e, seed=s, incidents=500, show_progress=False, now=now)
            for e, s in zip(engines, (11, 11, 12), strict=True)
        ]
        digest = (
            "SELECT md5(string_agg(code || ST_AsEWKB(geom)::text, ',' ORDER BY code)) FROM grid"
        )
        inc = "SELECT md5(string_agg(ST_AsEWKB(geom)::text || category || reported_at, ',' ORDER BY id)) FROM incident"
        d = []
        for e in engines:
            with e.connect() as c:
                d.append((c.execute(sa.text(digest)).scalar(), c.execute(sa.text(inc)).scalar()))
        assert sums[0] == sums[1]
        assert d[0] == d[1]
        assert d[0] != d[2]
        text = demo.format_summary(sums[0])
        assert "km²" in text and "Vonng/adcode, CC BY 4.0" in text
        assert all(f"{t}" in text for t in sums[0]["counts"])
    finally:
        for e in engines:
            e.dispose()
