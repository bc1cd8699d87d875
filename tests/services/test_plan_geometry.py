"""The rules, metrics and edits of grid plans on crafted geometries (no database).

A 500 m community square near Shenzhen, drawn in its UTM zone and taken to lon/lat, so every
defect's size is known in square metres from the drawing.
"""

from __future__ import annotations

import math

import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import LineString, Polygon, box

from mapsvc.core.errors import ValidationError
from mapsvc.services.plan_geometry import (
    DraftGrid,
    compare,
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
    import numpy as np

    def fn(xy):
        lon, lat = _to_ll.transform(X0 + xy[:, 0], Y0 + xy[:, 1])
        return np.column_stack([lon, lat])

    return shapely.transform(geom, fn)


def metres(geom):
    import numpy as np

    def fn(xy):
        x, y = _to_m.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x - X0, y - Y0])

    return shapely.transform(geom, fn)


COMMUNITY = ll(box(0, 0, 500, 500))


def tiling(**changes) -> list[DraftGrid]:
    """The clean 2x2 tiling, 250 m squares, 400 households each; ``changes`` replace grids."""
    cells = {
        "001": box(0, 0, 250, 250),
        "002": box(250, 0, 500, 250),
        "003": box(0, 250, 250, 500),
        "004": box(250, 250, 500, 500),
    }
    cells.update(changes)
    return [DraftGrid(code, ll(g), households=400) for code, g in cells.items() if g is not None]


def kinds(problems) -> list[str]:
    return [p.kind for p in problems]


def test_a_clean_tiling_has_no_problem() -> None:
    assert validate("C1", COMMUNITY, tiling()) == []


def test_an_overlap_is_located_and_sized() -> None:
    problems = validate("C1", COMMUNITY, tiling(**{"001": box(0, 0, 270, 250)}))
    (p,) = problems
    assert p.kind == "overlap" and p.grids == ("001", "002") and p.severity == "error"
    assert p.size_m2 == pytest.approx(20 * 250, rel=0.01)
    assert p.where.intersects(ll(shapely.Point(260, 100)))
    assert "001 and 002 overlap by 5,000 m²" in p.message


def test_a_gap_an_uncovered_hole_and_an_enclave() -> None:
    gap = validate("C1", COMMUNITY, tiling(**{"001": box(0, 0, 240, 250)}))
    assert kinds(gap) == ["gap"] and gap[0].size_m2 == pytest.approx(10 * 250, rel=0.01)
    assert "C1" in gap[0].message and set(gap[0].grids) == {"001", "002", "003"}
    holed = Polygon(box(0, 0, 250, 250).exterior, [box(100, 100, 150, 150).exterior.coords])
    hole = validate("C1", COMMUNITY, tiling(**{"001": holed}))
    assert kinds(hole) == ["gap"] and hole[0].size_m2 == pytest.approx(2500, rel=0.01)
    # the hole filled by a grid of its own is fine
    enclave = tiling(**{"001": holed, "005": box(100, 100, 150, 150)})
    assert validate("C1", COMMUNITY, enclave) == []


def test_a_bow_tie_is_invalid_with_its_point() -> None:
    bow = Polygon([(0, 0), (250, 250), (250, 0), (0, 250), (0, 0)])
    problems = validate("C1", COMMUNITY, tiling(**{"001": bow}))
    invalid = [p for p in problems if p.kind == "invalid"]
    assert len(invalid) == 1 and "Self-intersection" in invalid[0].message
    assert metres(invalid[0].where).distance(shapely.Point(125, 125)) < 0.5


def test_outside_noncontiguous_and_duplicate_codes() -> None:
    out = validate("C1", COMMUNITY, tiling(**{"002": box(250, 0, 530, 250)}))
    assert kinds(out) == ["outside"] and out[0].size_m2 == pytest.approx(30 * 250, rel=0.01)
    apart = shapely.MultiPolygon([box(0, 0, 250, 250), box(400, 400, 450, 450)])
    broken = tiling(
        **{"001": apart, "004": box(250, 250, 500, 500).difference(box(400, 400, 450, 450))}
    )
    problems = validate("C1", COMMUNITY, broken)
    assert kinds(problems) == ["noncontiguous"] and problems[0].size_m2 == pytest.approx(
        2500, rel=0.01
    )
    dup = tiling() + [DraftGrid("001", ll(box(0, 0, 1, 1)), households=400)]
    assert "duplicate_code" in kinds(validate("C1", COMMUNITY, dup))


def test_below_the_tolerance_nothing_is_reported_and_households_warn() -> None:
    tiny = tiling(**{"001": box(0, 0, 250.002, 250)})  # 0.5 m² of overlap
    assert validate("C1", COMMUNITY, tiny) == []
    grids = tiling()
    grids[0] = DraftGrid("001", grids[0].geom, households=120)
    (w,) = validate("C1", COMMUNITY, grids)
    assert w.kind == "households_low" and w.severity == "warning" and "120" in w.message


def test_metrics_of_a_known_tiling() -> None:
    m = metrics(COMMUNITY, tiling())
    assert m["count"] == 4 and m["households_median"] == 400 and m["within_target_share"] == 1
    assert m["compactness_mean"] == pytest.approx(math.pi / 4, abs=1e-3)
    assert m["cut_length_m"] == pytest.approx(1000, rel=1e-3)  # two 500 m lines
    assert polsby_popper(ll(box(0, 0, 100, 400))) == pytest.approx(
        4 * math.pi * 40000 / 1000**2, rel=1e-3
    )
    c = compare(
        COMMUNITY, tiling(), tiling(**{"001": box(0, 0, 250, 260), "003": box(0, 260, 250, 500)})
    )
    assert c["changed"] == ["001", "003"] and c["removed"] == []


def test_split_merge_reassign_and_snap_conserve_area() -> None:
    cell = ll(box(0, 0, 250, 250))
    a, b = split(cell, ll(LineString([(100, -10), (100, 260)])))
    assert metres(a).area + metres(b).area == pytest.approx(250 * 250, abs=0.1)
    with pytest.raises(ValidationError, match="does not cut the grid in two"):
        split(cell, ll(LineString([(100, -10), (100, 100)])))
    whole = merge(a, b)
    assert metres(whole).area == pytest.approx(250 * 250, abs=0.1)
    with pytest.raises(ValidationError, match="not neighbours"):
        merge(ll(box(0, 0, 10, 10)), ll(box(10, 10, 20, 20)))  # a corner only
    donor, receiver = reassign(
        ll(box(0, 0, 250, 250)), ll(box(250, 0, 500, 250)), ll(box(200, 0, 260, 100))
    )
    assert metres(donor).area == pytest.approx(250 * 250 - 50 * 100, abs=0.1)
    assert metres(receiver).area == pytest.approx(250 * 250 + 50 * 100, abs=0.1)
    assert (
        validate(
            "C1",
            COMMUNITY,
            [DraftGrid("001", donor, 400), DraftGrid("002", receiver, 400)] + tiling()[2:],
        )
        == []
    )
    with pytest.raises(ValidationError, match="does not touch"):
        reassign(ll(box(0, 0, 250, 250)), ll(box(250, 0, 500, 250)), ll(box(10, 10, 50, 50)))
    with pytest.raises(ValidationError, match="separate parts"):
        reassign(ll(box(0, 0, 250, 250)), ll(box(0, 250, 250, 500)), ll(box(100, -10, 150, 260)))
    # drawn 1.5 m past the border and 1.5 m into the neighbour: snapped, clipped, no sliver
    drawn = ll(box(-1.5, 0, 251.5, 250))
    fitted = snap(drawn, COMMUNITY, [ll(box(250, 0, 500, 250))])
    assert metres(fitted).area == pytest.approx(250 * 250, abs=1.0)
    assert validate("C1", COMMUNITY, [DraftGrid("001", fitted, 400)] + tiling()[1:]) == []


def test_households_by_area_share() -> None:
    old = tiling()
    assert households_share(ll(box(0, 0, 500, 250)), old) == (800, 0)
    assert households_share(ll(box(0, 0, 125, 250)), old) == (200, 0)
