"""The rules, metrics and edits of grid plans on crafted geometries (no database).

A 500 m community square near Shenzhen, drawn in its UTM zone (EPSG:32649, through a
transformer of the test's own) and taken to lon/lat, so every defect's size is known in
square metres from the drawing, independently of the module's measuring.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box

from mapsvc.core.errors import ValidationError
from mapsvc.services.plan_geometry import (
    DraftGrid,
    compare,
    fill_gaps,
    households_share,
    merge,
    metrics,
    polsby_popper,
    reassign,
    snap,
    split,
    validate,
)

ORIGIN = (113.93, 22.53)
_to_m = Transformer.from_crs(4326, 32649, always_xy=True)
_to_ll = Transformer.from_crs(32649, 4326, always_xy=True)
X0, Y0 = _to_m.transform(*ORIGIN)


def ll(geom):
    """A drawing in metres from the community's south-west corner, in lon/lat."""

    def fn(xy):
        lon, lat = _to_ll.transform(X0 + xy[:, 0], Y0 + xy[:, 1])
        return np.column_stack([lon, lat])

    return shapely.transform(geom, fn)


def metres(geom):
    """A lon/lat geometry back in the drawing's metres."""

    def fn(xy):
        x, y = _to_m.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x - X0, y - Y0])

    return shapely.transform(geom, fn)


def area(geom) -> float:
    return metres(geom).area


COMMUNITY = ll(box(0, 0, 500, 500))
CELLS = {
    "001": box(0, 0, 250, 250),
    "002": box(250, 0, 500, 250),
    "003": box(0, 250, 250, 500),
    "004": box(250, 250, 500, 500),
}


def tiling(**changes) -> list[DraftGrid]:
    """The clean 2x2 tiling, 250 m squares, 400 households each; ``changes`` replace grids
    (None drops one)."""
    cells = dict(CELLS)
    cells.update(changes)
    return [DraftGrid(code, ll(g), households=400) for code, g in cells.items() if g is not None]


def replaced(grids: list[DraftGrid], **geoms) -> list[DraftGrid]:
    """``grids`` with the lon/lat geometries of some codes replaced (None drops one)."""
    out = [g for g in grids if g.code not in geoms]
    return out + [DraftGrid(c, g, households=400) for c, g in geoms.items() if g is not None]


def kinds(problems) -> list[str]:
    return [p.kind for p in problems]


def lonlat_in(message: str) -> Point:
    """The 'near lon, lat' of a message, as a point in metres."""
    import re

    lon, lat = re.search(r"near (\d+\.\d+), (\d+\.\d+)", message).groups()
    return metres(Point(float(lon), float(lat)))


# --------------------------------------------------------------------------- validate


def test_a_clean_tiling_has_no_problem() -> None:
    assert validate("C1", COMMUNITY, tiling()) == []


def test_a_clean_irregular_tiling_has_no_problem() -> None:
    # a zigzag border and an enclave: nothing axis-aligned for the checks to lean on
    zig = Polygon([(0, 0), (500, 0), (500, 180), (330, 260), (170, 200), (0, 310)])
    north = box(0, 0, 500, 500).difference(zig)
    enclave = Polygon([(200, 350), (260, 330), (280, 400), (220, 420)])
    grids = [
        DraftGrid("S", ll(zig), households=400),
        DraftGrid("N", ll(north.difference(enclave)), households=400),
        DraftGrid("E", ll(enclave), households=400),
    ]
    assert validate("C1", COMMUNITY, grids) == []


def test_an_overlap_is_located_sized_and_said() -> None:
    problems = validate("C1", COMMUNITY, tiling(**{"001": box(0, 0, 270, 250)}))
    (p,) = problems
    crafted = box(250, 0, 270, 250)
    assert p.kind == "overlap" and p.grids == ("001", "002") and p.severity == "error"
    assert p.size_m2 == pytest.approx(crafted.area, rel=0.01)
    assert metres(p.where).symmetric_difference(crafted).area < 0.01 * crafted.area
    assert "grids 001 and 002 overlap by 5,000 m²" in p.message
    assert crafted.buffer(1).contains(lonlat_in(p.message))


def test_a_triangular_overlap_is_sized() -> None:
    # 003 reaches into 004 with a triangle of 30 x 60 / 2 = 900 m²
    reach = Polygon([(0, 250), (250, 250), (280, 310), (250, 370), (250, 500), (0, 500)])
    crafted = reach.intersection(CELLS["004"])
    (p,) = validate("C1", COMMUNITY, tiling(**{"003": reach}))
    assert p.kind == "overlap" and p.grids == ("003", "004")
    assert p.size_m2 == pytest.approx(crafted.area, rel=0.01)
    assert metres(p.where).intersects(crafted.centroid)


def test_a_gap_is_located_sized_and_names_its_neighbours() -> None:
    (gap,) = validate("C1", COMMUNITY, tiling(**{"001": box(0, 0, 240, 250)}))
    crafted = box(240, 0, 250, 250)
    assert gap.kind == "gap" and gap.size_m2 == pytest.approx(crafted.area, rel=0.01)
    assert metres(gap.where).intersects(crafted.centroid)
    assert "C1" in gap.message and set(gap.grids) == {"001", "002", "003"}
    assert crafted.buffer(1).contains(lonlat_in(gap.message))


def test_two_gaps_are_two_problems() -> None:
    grids = tiling(**{"001": box(0, 0, 240, 250), "004": box(260, 250, 500, 500)})
    gaps = validate("C1", COMMUNITY, grids)
    assert kinds(gaps) == ["gap", "gap"]
    assert sorted(p.size_m2 for p in gaps) == pytest.approx([2500, 2500], rel=0.01)


def test_an_uncovered_hole_is_a_gap_and_a_filled_one_is_an_enclave() -> None:
    hole = box(100, 100, 150, 150)
    holed = Polygon(CELLS["001"].exterior, [hole.exterior.coords])
    (p,) = validate("C1", COMMUNITY, tiling(**{"001": holed}))
    assert p.kind == "gap" and p.grids == ("001",)
    assert p.size_m2 == pytest.approx(hole.area, rel=0.01)
    assert metres(p.where).intersects(hole.centroid) and "hole" in p.message
    # the hole filled by a grid of its own is fine
    enclave = tiling(**{"001": holed, "005": hole})
    assert validate("C1", COMMUNITY, enclave) == []


def test_a_bow_tie_is_invalid_with_its_point_and_not_repaired() -> None:
    bow = ll(Polygon([(0, 0), (250, 250), (250, 0), (0, 250), (0, 0)]))
    grids = replaced(tiling(), **{"001": bow})
    problems = validate("C1", COMMUNITY, grids)
    invalid = [p for p in problems if p.kind == "invalid"]
    assert len(invalid) == 1 and problems[0] == invalid[0]  # first of all
    assert "Self-intersection" in invalid[0].message and "001" in invalid[0].message
    assert metres(invalid[0].where).distance(Point(125, 125)) < 0.5
    assert grids[-1].geom.equals(bow) and not grids[-1].geom.is_valid


def test_a_grid_that_is_no_polygon_or_empty() -> None:
    grids = replaced(tiling(), **{"001": ll(LineString([(0, 0), (250, 250)]))})
    invalid = [p for p in validate("C1", COMMUNITY, grids) if p.kind == "invalid"]
    assert len(invalid) == 1 and "LineString" in invalid[0].message
    grids = replaced(tiling(), **{"001": Polygon()})
    found = validate("C1", COMMUNITY, grids)
    assert kinds(found)[0] == "empty" and found[0].grids == ("001",)


def test_a_part_outside_is_located_and_sized() -> None:
    out = validate("C1", COMMUNITY, tiling(**{"002": box(250, 0, 530, 250)}))
    crafted = box(500, 0, 530, 250)
    assert kinds(out) == ["outside"] and out[0].size_m2 == pytest.approx(crafted.area, rel=0.01)
    assert metres(out[0].where).intersects(crafted.centroid)
    assert "C1" in out[0].message and "002" in out[0].message


@pytest.mark.parametrize(
    "detached",
    [box(400, 400, 450, 450), box(250, 250, 300, 300)],  # apart; touching 001 at a corner
    ids=["apart", "corner"],
)
def test_a_grid_in_parts_is_noncontiguous(detached) -> None:
    broken = tiling(
        **{
            "001": MultiPolygon([CELLS["001"], detached]),
            "004": CELLS["004"].difference(detached),
        }
    )
    (p,) = validate("C1", COMMUNITY, broken)
    assert p.kind == "noncontiguous" and p.grids == ("001",)
    assert p.size_m2 == pytest.approx(detached.area, rel=0.01)
    assert metres(p.where).intersects(detached.centroid)
    assert not metres(p.where).intersects(Point(125, 125))  # the main part is not blamed


def test_a_duplicate_code_is_found_and_located() -> None:
    grids = tiling(**{"004": None}) + [DraftGrid("003", ll(CELLS["004"]), households=400)]
    (p,) = validate("C1", COMMUNITY, grids)
    assert p.kind == "duplicate_code" and p.grids == ("003",) and "2 grids" in p.message
    assert metres(p.where).intersects(CELLS["004"].centroid)
    assert metres(p.where).intersects(CELLS["003"].centroid)


@pytest.mark.parametrize(
    "changes",
    [
        {"001": box(0, 0, 250.002, 250)},  # 0.5 m² of overlap
        {"001": box(0, 0, 249.998, 250)},  # 0.5 m² of gap
        {"002": box(250, 0, 500.002, 250)},  # 0.5 m² outside
        {
            "001": Polygon(CELLS["001"].exterior, [box(100, 100, 100.5, 101).exterior.coords])
        },  # a 0.5 m² hole
        {
            "001": MultiPolygon([CELLS["001"], box(400, 400, 400.5, 401)])
        },  # a 0.5 m² detached part (and overlap)
    ],
    ids=["overlap", "gap", "outside", "hole", "detached"],
)
def test_below_the_tolerance_nothing_is_reported(changes) -> None:
    (crafted,) = changes.values()
    assert abs(crafted.area - 62500) == pytest.approx(0.5, abs=1e-6)
    assert validate("C1", COMMUNITY, tiling(**changes)) == []
    # and the same defect a little larger is: the tolerance is the only reason
    assert validate("C1", COMMUNITY, tiling(**changes), tolerance_m2=0.1) != []


def test_households_out_of_range_are_warnings_after_the_errors() -> None:
    grids = tiling(**{"001": box(0, 0, 260, 250)})
    grids[0] = DraftGrid("001", grids[0].geom, households=120)
    grids[1] = DraftGrid("002", grids[1].geom, households=640)
    problems = validate("C1", COMMUNITY, grids)
    assert kinds(problems) == ["overlap", "households_low", "households_high"]
    assert [p.severity for p in problems] == ["error", "warning", "warning"]
    assert "120" in problems[1].message and "640" in problems[2].message
    assert metres(problems[2].where).intersects(CELLS["002"].centroid)


def test_the_order_of_problems_does_not_depend_on_the_input_order() -> None:
    holed = Polygon(box(0, 0, 240, 250).exterior, [box(100, 100, 150, 150).exterior.coords])
    grids = tiling(**{"001": holed, "004": box(250, 250, 530, 510)})
    grids.append(DraftGrid("002", ll(box(0, 0, 1, 1)), households=10))
    expected = validate("C1", COMMUNITY, grids)
    assert len(expected) >= 6
    severities = [p.severity for p in expected]
    assert severities == sorted(severities, key=lambda s: s != "error")
    rng = random.Random(7)
    for _ in range(5):
        shuffled = grids[:]
        rng.shuffle(shuffled)
        got = validate("C1", COMMUNITY, shuffled)
        assert [(p.kind, p.grids, p.message) for p in got] == [
            (p.kind, p.grids, p.message) for p in expected
        ]


# --------------------------------------------------------------------------- metrics


def test_metrics_of_a_known_tiling() -> None:
    m = metrics(COMMUNITY, tiling())
    assert m["count"] == 4 and m["households_median"] == 400 and m["within_target_share"] == 1
    assert m["compactness_mean"] == pytest.approx(math.pi / 4, abs=1e-3)
    assert m["compactness_min"] == pytest.approx(math.pi / 4, abs=1e-3)
    assert m["cut_length_m"] == pytest.approx(1000, rel=1e-3)  # two 500 m lines
    assert polsby_popper(ll(box(0, 0, 100, 400))) == pytest.approx(
        4 * math.pi * 40000 / 1000**2, rel=1e-3
    )
    disc = ll(Point(250, 250).buffer(200, quad_segs=64))
    assert polsby_popper(disc) == pytest.approx(1, abs=1e-3)


def test_metrics_households_and_the_cut_of_an_enclave() -> None:
    hole = box(100, 100, 150, 150)
    cells = dict(CELLS, **{"001": Polygon(CELLS["001"].exterior, [hole.exterior.coords])})
    cells["005"] = hole
    figures = {"001": 250, "002": 300, "003": 450, "004": 520, "005": 380}
    grids = [DraftGrid(c, ll(g), households=figures[c]) for c, g in cells.items()]
    m = metrics(COMMUNITY, grids)
    assert (m["households_min"], m["households_median"], m["households_max"]) == (250, 380, 520)
    assert m["within_target_share"] == pytest.approx(3 / 5, abs=1e-3)
    # the formula of a clean tiling, computed here on the drawing
    formula = (sum(g.length for g in cells.values()) - box(0, 0, 500, 500).length) / 2
    assert formula == pytest.approx(1200)
    assert m["cut_length_m"] == pytest.approx(formula, rel=1e-3)
    pp = [4 * math.pi * g.area / g.length**2 for g in cells.values()]
    assert m["compactness_mean"] == pytest.approx(sum(pp) / len(pp), abs=1e-3)
    assert m["compactness_min"] == pytest.approx(min(pp), abs=1e-3)


def test_the_cut_length_is_robust_to_borders_a_hair_apart() -> None:
    # 002 digitised 2 cm off its neighbour 001: the border is still 250 m long
    grids = tiling(**{"002": box(250.02, 0, 500, 250)})
    assert metrics(COMMUNITY, grids)["cut_length_m"] == pytest.approx(1000, abs=0.5)


def test_the_cut_length_counts_no_border_across_a_gap() -> None:
    # 001 stops 10 m short of 002, 003 of the top: the edges along the gaps are nobody's
    # border (the perimeter formula would count half of them)
    cells = dict(CELLS, **{"001": box(0, 0, 240, 250), "003": box(0, 250, 250, 495)})
    drawn = list(cells.values())
    borders = sum(
        drawn[i].boundary.intersection(drawn[j].boundary).length
        for i in range(len(drawn))
        for j in range(i + 1, len(drawn))
    )
    assert borders == pytest.approx(240 + 250 + 245)
    grids = [DraftGrid(c, ll(g), households=400) for c, g in cells.items()]
    assert metrics(COMMUNITY, grids)["cut_length_m"] == pytest.approx(borders, abs=0.5)


def test_compare_names_the_changed_new_and_removed_grids() -> None:
    plan = tiling(**{"001": box(0, 0, 250, 260), "003": box(0, 260, 250, 500), "004": None})
    plan.append(DraftGrid("007", ll(CELLS["004"]), households=300))
    plan[1] = DraftGrid("002", ll(box(250, 0, 500.001, 250)), households=999)  # a hair only
    c = compare(COMMUNITY, tiling(), plan)
    assert c["changed"] == ["001", "003", "007"] and c["removed"] == ["004"]
    assert c["current"] == metrics(COMMUNITY, tiling())
    assert c["plan"]["households_max"] == 999


# --------------------------------------------------------------------------- edits


def test_split_conserves_the_area_and_the_parts_validate() -> None:
    cell = ll(CELLS["001"])
    a, b = split(cell, ll(LineString([(100, -10), (100, 260)])))
    assert area(a) + area(b) == pytest.approx(CELLS["001"].area, abs=0.1)
    assert sorted([area(a), area(b)]) == pytest.approx([100 * 250, 150 * 250], abs=0.1)
    grids = replaced(tiling(), **{"001": None, "001a": a, "001b": b})
    assert validate("C1", COMMUNITY, grids) == []


def test_split_along_a_zigzag_in_three_and_a_clipped_corner_keeps_its_area() -> None:
    parts = split(ll(CELLS["001"]), ll(LineString([(80, -5), (80, 255), (170, 255), (170, -5)])))
    assert len(parts) == 3
    assert sum(area(p) for p in parts) == pytest.approx(CELLS["001"].area, abs=0.1)
    # the line also clips the top-right corner, a 1 m x 1 m / 2 triangle: too small to be
    # a grid, it stays with the part it was cut from, so no area is lost
    line = ll(LineString([(120, -10), (120, 260), (248, 251), (251, 248)]))
    corner = Polygon([(249, 250), (250, 250), (250, 249)])
    assert corner.area == pytest.approx(0.5)
    parts = split(ll(CELLS["001"]), line)
    assert len(parts) == 2
    assert sum(area(p) for p in parts) == pytest.approx(CELLS["001"].area, abs=0.1)
    assert any(metres(p).buffer(1e-6).contains(corner) for p in parts)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (LineString([(100, -10), (100, 100)]), "ends inside the grid"),
        (LineString([(300, -10), (300, 260)]), "does not cross the grid"),
    ],
    ids=["ends-inside", "misses"],
)
def test_split_refuses_a_line_that_does_not_cut(line, reason) -> None:
    with pytest.raises(ValidationError, match=reason):
        split(ll(CELLS["001"]), ll(line))


def test_split_refuses_a_line_that_cuts_no_part_of_a_grid_in_two_parts() -> None:
    two = ll(MultiPolygon([box(0, 0, 100, 100), box(150, 0, 250, 100)]))
    with pytest.raises(ValidationError, match="does not cut the grid in two"):
        split(two, ll(LineString([(50, -10), (50, 50)])))


def test_merge_conserves_the_area_and_validates() -> None:
    whole = merge(ll(CELLS["001"]), ll(CELLS["002"]))
    assert area(whole) == pytest.approx(2 * CELLS["001"].area, abs=0.1)
    assert whole.geom_type == "Polygon" and whole.is_valid
    grids = replaced(tiling(), **{"001": whole, "002": None})
    assert validate("C1", COMMUNITY, grids) == []


def test_merge_of_borders_a_hair_apart_leaves_no_sliver() -> None:
    whole = merge(ll(CELLS["001"]), ll(box(250.01, 0, 500, 250)))
    assert whole.geom_type == "Polygon" and len(whole.interiors) == 0


@pytest.mark.parametrize(
    ("b", "reason"),
    [
        (box(250, 250, 500, 500), "touch at a point only"),
        (box(300, 0, 500, 250), "are 50.0 m apart"),
    ],
    ids=["corner", "apart"],
)
def test_merge_refuses_grids_that_share_no_edge(b, reason) -> None:
    with pytest.raises(ValidationError, match=f"not neighbours: they {reason}"):
        merge(ll(CELLS["001"]), ll(b))


def test_reassign_conserves_the_area_and_validates() -> None:
    block = box(200, 0, 260, 100)  # reaches 10 m into the receiver: only the donor's part moves
    donor, receiver = reassign(ll(CELLS["001"]), ll(CELLS["002"]), ll(block))
    moved = block.intersection(CELLS["001"]).area
    assert area(donor) == pytest.approx(CELLS["001"].area - moved, abs=0.1)
    assert area(receiver) == pytest.approx(CELLS["002"].area + moved, abs=0.1)
    assert area(donor) + area(receiver) == pytest.approx(2 * CELLS["001"].area, abs=0.1)
    grids = replaced(tiling(), **{"001": donor, "002": receiver})
    assert validate("C1", COMMUNITY, grids) == []


@pytest.mark.parametrize(
    ("receiver", "block", "reason"),
    [
        ("002", box(10, 10, 50, 50), "does not touch the grid that should take it"),
        ("002", box(300, 10, 350, 50), "does not cover any of the giving grid"),
        ("002", box(-10, -10, 260, 260), "takes the whole giving grid"),
        ("003", box(100, -10, 150, 260), "would fall into 2 separate parts"),
        # an L: one arm touches 002, the other reaches into 001 alone; the donor stays whole
        ("002", Polygon([(240, 0), (250, 0), (250, 30), (240, 30)]).union(box(100, 0, 200, 20)),
         "do not touch the grid that should take it"),
    ],
    ids=["not-touching", "nothing-covered", "whole", "donor-in-parts", "receiver-in-parts"],
)  # fmt: skip
def test_reassign_refuses_with_a_reason(receiver, block, reason) -> None:
    with pytest.raises(ValidationError, match=reason):
        reassign(ll(CELLS["001"]), ll(CELLS[receiver]), ll(block))


def test_snap_cuts_back_what_is_drawn_past_the_borders() -> None:
    # drawn 1.5 m past the community border and 1.5 m into the neighbour
    fitted = snap(ll(box(-1.5, 0, 251.5, 250)), COMMUNITY, [ll(CELLS["002"])])
    assert fitted.is_valid
    assert area(fitted) == pytest.approx(CELLS["001"].area, abs=0.1)
    grids = replaced(tiling(), **{"001": fitted})
    assert sum(area(g.geom) for g in grids) == pytest.approx(500 * 500, abs=0.1)
    assert validate("C1", COMMUNITY, grids) == []


def test_snap_draws_out_to_an_edge_a_vertex_stops_short_of() -> None:
    # vertices 1.2 m short of the neighbour's edge and 1 m inside the community's border,
    # both far from any vertex of theirs: a sliver gap without the snap
    drawn = Polygon([(0, 0), (250, 0), (248.8, 120), (250, 250), (0, 250), (1, 130)])
    assert validate("C1", COMMUNITY, replaced(tiling(), **{"001": ll(drawn)})) != []
    neighbours = [ll(CELLS[c]) for c in ("002", "003", "004")]
    fitted = snap(ll(drawn), COMMUNITY, neighbours)
    assert fitted.is_valid
    assert area(fitted) == pytest.approx(CELLS["001"].area, abs=0.1)
    grids = replaced(tiling(), **{"001": fitted})
    assert sum(area(g.geom) for g in grids) == pytest.approx(500 * 500, abs=0.1)
    assert validate("C1", COMMUNITY, grids) == []


def test_snap_leaves_what_is_beyond_the_tolerance() -> None:
    drawn = Polygon([(0, 0), (250, 0), (245, 120), (250, 250), (0, 250)])  # 5 m short
    fitted = snap(ll(drawn), COMMUNITY, [ll(CELLS["002"])])
    assert area(fitted) == pytest.approx(drawn.area, abs=0.1)


def test_snap_refuses_a_bow_tie_and_a_shape_under_its_neighbours() -> None:
    bow = ll(Polygon([(0, 0), (250, 250), (250, 0), (0, 250), (0, 0)]))
    with pytest.raises(ValidationError, match="not a valid polygon.*Self-intersection"):
        snap(bow, COMMUNITY, [])
    with pytest.raises(ValidationError, match="under its neighbours"):
        snap(ll(box(260, 10, 300, 50)), COMMUNITY, [ll(CELLS["002"])])


def test_households_by_area_share() -> None:
    old = [
        DraftGrid(c, ll(g), households=h, population=3 * h)
        for (c, g), h in zip(CELLS.items(), (400, 320, 480, 360), strict=True)
    ]
    assert households_share(ll(box(0, 0, 500, 250)), old) == (720, 2160)
    assert households_share(ll(box(0, 0, 125, 250)), old) == (200, 600)
    assert households_share(ll(box(600, 600, 700, 700)), old) == (0, 0)
    # new grids that tile the old ones share out the old totals
    halves = [box(0, 0, 500, 130), box(0, 130, 500, 500)]
    total = [households_share(ll(h), old) for h in halves]
    assert sum(t[0] for t in total) == pytest.approx(sum(g.households for g in old), abs=1)


def test_fill_gaps_gives_the_streets_to_the_blocks_beside_them() -> None:
    # four blocks with 10 m streets between them and a 5 m verge along the border
    blocks = [box(5, 5, 245, 245), box(255, 5, 495, 245), box(5, 255, 245, 495)]
    fixed = [CELLS["004"]]  # kept as it is: takes nothing
    grown = fill_gaps(COMMUNITY, [ll(b) for b in blocks], fixed=[ll(f) for f in fixed])
    assert len(grown) == 3
    grids = [DraftGrid(f"00{i}", g, households=400) for i, g in enumerate(grown, 1)]
    grids.append(DraftGrid("004", ll(CELLS["004"]), households=400))
    assert validate("C1", COMMUNITY, grids) == []
    assert sum(area(g.geom) for g in grids) == pytest.approx(500 * 500, abs=0.1)
    for block, g in zip(blocks, grown, strict=True):
        assert metres(g).buffer(1e-6).contains(block)
