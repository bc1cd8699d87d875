"""Stage areas: district, subdistricts, communities and grids of the session's demo.

Expected counts, names and codes are read from the shipped CSV with the csv module, not
from the loader; areas are geodesic (``geography``) in square metres.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict

import eviltransform
import numpy as np
import pytest
import shapely
from pyproj import Geod
from shapely.geometry import shape

from tests.fixtures.demo import DATA, q, rounds_to

OFFICIAL_AREA_KM2 = 53.0  # Licheng's published area; the 2016 outline differs slightly


def test_grids_tile_each_community(conn) -> None:
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


def test_every_grid_in_exactly_one_community_by_geometry(conn) -> None:
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


def test_communities_and_subdistricts_tile_the_district(conn) -> None:
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


def test_real_names_and_codes(conn, csv_rows) -> None:
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


def test_district_area_and_conversion(conn) -> None:
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


def test_published_points_lie_in_their_community(conn, csv_rows) -> None:
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


def test_grid_codes_and_figures(conn) -> None:
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


def test_population_plausible_for_an_old_city(conn) -> None:
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


def test_readme_area_figures(conn) -> None:
    """README "What the demo shows": 80 / 9 communities, 394 grids, ≈ 440,000 people,
    160,000 households, 57.38 km²."""
    r = q(
        conn,
        """SELECT (SELECT count(*) FROM community) communities,
                  (SELECT count(*) FROM subdistrict) subdistricts,
                  (SELECT count(*) FROM grid) grids,
                  (SELECT sum(population) FROM community) population,
                  (SELECT sum(households) FROM community) households,
                  (SELECT area_km2 FROM district) area""",
    ).one()
    print(dict(r._mapping))
    assert (r.communities, r.subdistricts, r.grids) == (80, 9, 394)
    assert rounds_to(r.population, 440_000, 10_000), r.population
    assert rounds_to(r.households, 160_000, 10_000), r.households
    assert round(r.area, 2) == 57.38
