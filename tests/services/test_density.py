"""Density against areas computed here with pyproj's geodesic and counts taken from the spec."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import pytest
from pyproj import Geod
from sqlalchemy.orm import Session

from mapsvc.core.errors import ValidationError
from mapsvc.services.density import ROLE_GROUPS, classify, density
from tests.fixtures.staffing import (
    CENTRES,
    COMMUNITIES,
    DISTRICT,
    GRIDS,
    SEGMENTS,
    STAFF,
    SUBDISTRICTS,
    TODAY,
)

GEOD = Geod(ellps="WGS84")
SINGLE = {"grid_head", "alley_chief", "deputy_chief"}


def geodesic_km2(poly) -> float:
    area, _ = GEOD.geometry_area_perimeter(poly)
    return abs(area) / 1e6


def expected_posts(day: dt.date) -> list[tuple[str, str, str | None, str]]:
    """(staff, role, grid code, community code) held on ``day``, straight from the spec."""
    offset = (day - TODAY).days
    held: dict[tuple[str, str, str], list[tuple[int, str]]] = defaultdict(list)
    for code, _name, _role, _kind, posts in STAFF:
        for role, kind, target, start, end in posts:
            if start <= offset and (end is None or offset <= end):
                held[(role, kind, target)].append((start, code))
    grid_comm = {g[0]: g[1] for g in GRIDS}
    grid_poly = {g[0]: g[2] for g in GRIDS}
    out = []
    for (role, kind, target), who in held.items():
        if role in SINGLE:  # one holder: the latest start
            who = [max(who)]
        for _start, staff in who:
            if kind == "grid":
                out.append((staff, role, target, grid_comm[target]))
            elif kind == "segment":
                line = next(s[2] for s in SEGMENTS if s[0] == target)
                mid = line.interpolate(0.5, normalized=True)
                grid = next(c for c, p in grid_poly.items() if p.intersects(mid))
                out.append((staff, role, grid, grid_comm[grid]))
            else:
                out.append((staff, role, None, target))
    return out


def expected_counts(level: str, day: dt.date) -> dict[str, dict[str, int]]:
    comm_sub = {c[0]: c[2] for c in COMMUNITIES}
    sets: dict[str, dict[str, set]] = defaultdict(lambda: defaultdict(set))
    for staff, role, grid, comm in expected_posts(day):
        key = {
            "grid": grid,
            "community": comm,
            "subdistrict": comm_sub[comm],
            "district": DISTRICT[0],
        }[level]
        if key is None:
            continue
        sets[key]["staff"].add(staff)
        for g, roles in ROLE_GROUPS.items():
            if role in roles:
                sets[key][g].add(staff)
    return {k: {g: len(v[g]) for g in ("staff", *ROLE_GROUPS)} for k, v in sets.items()}


POPULATION = {
    "grid": {g[0]: g[3] for g in GRIDS},
    "community": {c[0]: c[4] for c in COMMUNITIES},
    "subdistrict": {
        sub[0]: sum(c[4] for c in COMMUNITIES if c[2] == sub[0]) for sub in SUBDISTRICTS
    },
    "district": {DISTRICT[0]: sum(c[4] for c in COMMUNITIES)},
}
POLYS = {
    "grid": {g[0]: g[2] for g in GRIDS},
    "community": {c[0]: c[3] for c in COMMUNITIES},
    "subdistrict": {s[0]: s[2] for s in SUBDISTRICTS},
    "district": {DISTRICT[0]: DISTRICT[2]},
}


@pytest.mark.parametrize("level", ["grid", "community", "subdistrict", "district"])
def test_density_matches_geodesic_areas(staffing_db, level: str) -> None:
    with Session(staffing_db.engine) as s:
        rows = {r["code"]: r for r in density(s, level, TODAY)}
    counts = expected_counts(level, TODAY)
    assert set(rows) == set(POLYS[level])
    for code, poly in POLYS[level].items():
        r = rows[code]
        km2 = geodesic_km2(poly)
        assert r["area_km2"] == pytest.approx(km2, rel=1e-5)
        exp = counts.get(code, {})
        for g in ("staff", *ROLE_GROUPS):
            assert r[g] == exp.get(g, 0), (code, g)
            per = "staff_per_km2" if g == "staff" else f"{g}_per_km2"
            assert r[per] == pytest.approx(exp.get(g, 0) / km2, rel=1e-3, abs=1e-3)
        centres = sum(1 for c in CENTRES if poly.intersects(c[2]))
        assert r["centres"] == centres
        assert r["centres_per_km2"] == pytest.approx(centres / km2, rel=1e-3, abs=1e-3)
        pop = POPULATION[level][code]
        assert r["population"] == pop
        assert r["staff_per_10k"] == pytest.approx(1e4 * exp.get("staff", 0) / pop, abs=0.005)


def test_staff_per_10k_residents_by_hand(staffing_db) -> None:
    """Per 10,000 residents, with the spec's people counted by hand (not by a helper)."""
    # 一社区 (12,000 people): h1 m1 m2 (grid -01), m3 m4 (-02; h2's post has ended), chief c1
    # and deputy d1 of S1, workers w1 w2 = 9. 二社区 (8,000): h4 (who replaced h3),
    # m5 m6, h5, police p1 = 5. 三社区 (15,000): h6 m7, h7 (head, member and chief: once),
    # m8 m9, c3, w3 = 7 (the doctor starts in ten days). The district: 21 of 35,000.
    with Session(staffing_db.engine) as s:
        com = {r["code"]: r["staff_per_10k"] for r in density(s, "community", TODAY)}
        sub = {r["code"]: r["staff_per_10k"] for r in density(s, "subdistrict", TODAY)}
        (dist,) = density(s, "district", TODAY)
    assert com == {"350502001001": 7.5, "350502001002": 6.25, "350502002001": 4.67}
    assert sub == {"350502001": 7.0, "350502002": 4.67}
    assert dist["staff"] == 21 and dist["population"] == 35000
    assert dist["staff_per_10k"] == 6.0


def test_density_history_and_dispatched(staffing_db) -> None:
    later = TODAY + dt.timedelta(days=11)  # the doctor's post has started
    with Session(staffing_db.engine) as s:
        now = {r["code"]: r for r in density(s, "community", TODAY)}
        then = {r["code"]: r for r in density(s, "community", later)}
    assert then["350502002001"]["dispatched"] == now["350502002001"]["dispatched"] + 1
    assert (
        then["350502002001"]["staff"]
        == expected_counts("community", later)["350502002001"]["staff"]
    )


def test_density_refuses_community_groups_at_grid_level(staffing_db) -> None:
    from mapsvc.services.density import check_level_group

    with pytest.raises(ValidationError, match="community_workers.*communities"):
        check_level_group("grid", "community_workers")
    with pytest.raises(ValidationError, match="level must be one of"):
        check_level_group("province")
    check_level_group("community", "dispatched")


def test_classify_schemes() -> None:
    values = [float(v) for v in range(1, 11)]
    eq = classify(values, "equal_interval", 3)
    assert eq["bins"] == pytest.approx([1 + 9 * i / 3 for i in (1, 2, 3)], abs=1e-3)
    q = classify(values, "quantiles", 5)
    assert q["k"] == 5
    assert [q["classes"].count(i) for i in range(5)] == [2, 2, 2, 2, 2]
    clustered = [1.0, 1.1, 1.2, 10.0, 10.1, 50.0, 51.0, None]
    nb = classify(clustered, "natural_breaks", 3)
    assert nb["classes"][:7] == [0, 0, 0, 1, 1, 2, 2]
    assert nb["classes"][7] is None
    few = classify([2.0, 2.0, 3.0], "quantiles", 5)
    assert few["k"] <= 2
    with pytest.raises(ValidationError, match="scheme"):
        classify(values, "jenks-ish", 5)
    with pytest.raises(ValidationError, match="k must"):
        classify(values, "quantiles", 40)
    assert classify([], "quantiles", 5)["k"] == 0
