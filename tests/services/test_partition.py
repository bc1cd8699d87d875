"""Automatic grids: the partition's invariants on generated blocks and on the Georgia
counties, its options (locked grids, the current grids, keep-whole groups), infeasible
requests, and the plan it makes from the demo's blocks on PostGIS."""

from __future__ import annotations

import geopandas as gpd
import libpysal
import networkx as nx
import pytest
import shapely
from shapely.geometry import box
from sqlalchemy.orm import Session

from mapsvc.core.errors import ValidationError
from mapsvc.services import plans
from mapsvc.services.partition import Unit, contiguous, partition, unit_graph
from mapsvc.services.units_gen import generate_units

COMMUNITY = box(113.93, 22.53, 113.94, 22.54)  # about 1.03 km x 1.11 km


@pytest.fixture(scope="module")
def blocks() -> list[Unit]:
    return generate_units(COMMUNITY, n=300, households=4000, seed=3, groups=4)


def _grids(assignment: dict[str, int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for u, d in assignment.items():
        out.setdefault(d, []).append(u)
    return out


def test_generated_blocks_tile_the_community(blocks) -> None:
    assert sum(u.households for u in blocks) == 4000
    union = shapely.union_all([u.geom for u in blocks])
    # blocks are cut in metres and taken back to lon/lat: edges differ by millimetres
    assert union.symmetric_difference(COMMUNITY).area / COMMUNITY.area < 5e-5
    assert sum(1 for u in blocks if u.group) >= 6  # pairs kept whole


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_block_in_one_contiguous_grid_within_bounds(blocks, seed) -> None:
    g = unit_graph(blocks)
    r = partition(blocks, seed=seed, graph=g)
    assert set(r.assignment) == {u.id for u in blocks}  # every unit exactly once
    assert len(r.households) == 10  # 4000 households / 400, the middle of 300-500
    assert all(300 <= h <= 500 for h in r.households), r.households
    assert contiguous(g, r.assignment)
    hh = {u.id: u.households for u in blocks}
    assert [
        sum(hh[u] for u in us) for _d, us in sorted(_grids(r.assignment).items())
    ] == r.households
    groups: dict[str, set[int]] = {}
    for u in blocks:
        if u.group:
            groups.setdefault(u.group, set()).add(r.assignment[u.id])
    assert all(len(v) == 1 for v in groups.values()), groups
    assert min(r.polsby_popper) > 0.2


def test_locked_grids_stay_and_the_current_grids_move_little(blocks) -> None:
    g = unit_graph(blocks)
    first = partition(blocks, seed=0, graph=g)
    locked = {u: d for u, d in first.assignment.items() if d in (0, 1)}
    second = partition(blocks, seed=5, graph=g, locked=locked)
    for u, d in locked.items():
        assert second.assignment[u] == d
    assert contiguous(g, second.assignment) and all(300 <= h <= 500 for h in second.households)
    # from the current grids: the moved share is reported, and below a fresh start's
    changed = partition(
        blocks, seed=7, graph=g, min_households=300, max_households=480, current=first.assignment
    )
    fresh = partition(blocks, seed=7, graph=g, min_households=300, max_households=480)
    assert changed.moved_share is not None and fresh.moved_share is None
    mapped = partition(
        blocks,
        seed=7,
        graph=g,
        min_households=300,
        max_households=480,
        current={u: 0 for u in first.assignment},
    )
    assert mapped.moved_share is not None
    assert all(300 <= h <= 480 for h in changed.households)
    assert changed.moved_share < 0.25, changed.moved_share


def test_georgia_counties_within_ten_percent() -> None:
    frame = gpd.read_file(libpysal.examples.get_path("G_utm.shp"))
    units = [
        Unit(str(i), geom, int(p))
        for i, (geom, p) in enumerate(zip(frame.geometry, frame.TotPop90, strict=True))
    ]
    total = sum(u.households for u in units)
    ideal = total / 10
    g = unit_graph(units, crs="EPSG:32617")
    assert nx.is_connected(g) and g.number_of_nodes() == 159
    r = partition(
        units,
        grids=10,
        min_households=int(ideal * 0.9) + 1,
        max_households=int(ideal * 1.1),
        crs="EPSG:32617",
        graph=g,
    )
    assert max(abs(h - ideal) / ideal for h in r.households) <= 0.10
    assert contiguous(g, r.assignment) and len(set(r.assignment.values())) == 10


def test_infeasible_requests_name_the_community_and_why(blocks) -> None:
    with pytest.raises(
        ValidationError, match=r"community 东一: 4,000 households cannot fill 3 grids of 300-500"
    ):
        partition(blocks, grids=3, community="东一")
    with pytest.raises(ValidationError, match="alone has .* households, more than the maximum 20"):
        partition(blocks, min_households=10, max_households=20, community="东一")
    apart = [Unit("a", box(0, 0, 0.001, 0.001), 400), Unit("b", box(0.01, 0, 0.011, 0.001), 400)]
    with pytest.raises(ValidationError, match="community 西二: the units are in 2 separate pieces"):
        partition(apart, community="西二")
    with pytest.raises(ValidationError, match="cannot be split into grids of 450-460"):
        partition(blocks[:30], min_households=450, max_households=460, community="北三")


def test_a_plan_from_the_demo_blocks_is_valid(demo_engine) -> None:
    with Session(demo_engine) as s:
        code = s.execute(
            plans.sa.text(
                "SELECT c.code FROM community c JOIN planning_unit u ON u.community_id = c.id GROUP BY c.code ORDER BY sum(u.households) DESC LIMIT 1"
            )
        ).scalar()
        plan, (report,) = plans.auto_plan(s, [code], author="t", seed=1)
        check = plans.validate_plan(s, plan.id, target=(300, 500))
        lock = s.execute(
            plans.sa.text(
                "SELECT min(g.code) FROM grid g JOIN community c ON c.id = g.community_id WHERE c.code = :c AND g.valid_to IS NULL"
            ),
            {"c": code},
        ).scalar()
        kept, (kept_report,) = plans.auto_plan(
            s, [code], author="t", seed=1, lock=[lock], from_current=True, target=(250, 700)
        )
        kept_check = plans.validate_plan(s, kept.id, target=(250, 700))
        same = s.execute(
            plans.sa.text(
                "SELECT ST_Equals(p.geom, g.geom) FROM plan_grid p JOIN grid g ON g.code = p.code AND g.valid_to IS NULL WHERE p.plan_id = :p AND p.code = :c"
            ),
            {"p": kept.id, "c": lock},
        ).scalar()
        s.rollback()
    assert check["ok"], check["errors"][:3]
    assert not check["warnings"]  # every grid within 300-500
    assert all(300 <= h <= 500 for h in report["households"])
    assert kept_check["ok"], kept_check["errors"][:3]
    assert same is True and lock in kept_report["kept"]
    assert kept_report["moved_share"] is not None
