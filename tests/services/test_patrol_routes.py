"""Patrol routes on hand-made graphs whose optimum is known by reasoning or brute force."""

from __future__ import annotations

import itertools

import gpxpy
import networkx as nx
import pytest

from mapsvc.core.errors import ValidationError
from mapsvc.services import patrol_routes
from tests.fixtures.patrol import add_chief, add_segments, lengths, lonlat
from tests.services import patrol_routes_reference as reference

#  D(0,50) ---- C(100,50)
#    |      /      |
#  A(0,0) ---- B(100,0)
RECT = {
    "AB": [(0, 0), (100, 0)],
    "BC": [(100, 0), (100, 50)],
    "CD": [(100, 50), (0, 50)],
    "DA": [(0, 50), (0, 0)],
    "AC": [(0, 0), (100, 50)],
}


def _check_walk(res: patrol_routes.PostmanResult, required: list[int]) -> None:
    """Closed, contiguous, and every required segment walked."""
    coords = res.coordinates()
    assert coords[0] == pytest.approx(coords[-1], abs=1e-9)
    walked = {int(res.graph.seg_ids[e]) for e, _f, _r in res.steps}
    assert set(required) <= walked
    g = res.graph
    prev_end = None
    for e, fwd, _r in res.steps:
        a, b = (g.u[e], g.v[e]) if fwd else (g.v[e], g.u[e])
        if prev_end is not None:
            assert a == prev_end
        prev_end = b
    assert prev_end == res.start_node
    assert res.total_m == pytest.approx(sum(g.length[e] for e, _f, _r in res.steps))


def test_rectangle_with_diagonal_duplicates_the_diagonal(session):
    ids = add_segments(session, RECT)
    L = lengths(session, ids)
    graph = patrol_routes.StreetGraph.load(session)
    res = patrol_routes.solve(graph, list(ids.values()))
    # A and C are the only odd junctions; the diagonal (112 m) is their shortest link
    assert res.total_m == pytest.approx(sum(L.values()) + L["AC"], abs=0.01)
    assert res.exact and res.ratio == pytest.approx(1.0)
    assert res.required_m == pytest.approx(sum(L.values()), abs=0.01)
    assert res.connector_m == pytest.approx(L["AC"], abs=0.01)
    _check_walk(res, list(ids.values()))


def test_tree_walks_every_edge_twice(session):
    ids = add_segments(
        session,
        {"O1": [(0, 0), (100, 0)], "O2": [(0, 0), (0, 200)], "O3": [(0, 0), (-300, 0)]},
    )
    L = lengths(session, ids)
    res = patrol_routes.solve(patrol_routes.StreetGraph.load(session), list(ids.values()))
    assert res.total_m == pytest.approx(2 * sum(L.values()), abs=0.01)
    _check_walk(res, list(ids.values()))


def test_open_path_closes_through_a_shorter_street(session):
    ids = add_segments(session, RECT)
    L = lengths(session, ids)
    req = [ids["AB"], ids["BC"], ids["CD"]]
    res = patrol_routes.solve(patrol_routes.StreetGraph.load(session), req)
    # D back to A: the non-required DA (50 m) beats walking back (250 m)
    assert res.total_m == pytest.approx(L["AB"] + L["BC"] + L["CD"] + L["DA"], abs=0.01)
    assert res.exact
    _check_walk(res, req)


def _brute_force_optimum(edges: list[tuple[str, str, float]], required: list[int]) -> float:
    """Independent optimum for a connected required set: networkx Dijkstra + all pairings."""
    g = nx.Graph()
    for a, b, w in edges:
        if not g.has_edge(a, b) or g[a][b]["weight"] > w:
            g.add_edge(a, b, weight=w)
    deg: dict[str, int] = {}
    for i in required:
        a, b, _w = edges[i]
        deg[a] = deg.get(a, 0) + 1
        deg[b] = deg.get(b, 0) + 1
    odd = sorted(n for n, d in deg.items() if d % 2)
    dist = dict(nx.all_pairs_dijkstra_path_length(g))

    def best(rest: tuple[str, ...]) -> float:
        if not rest:
            return 0.0
        first, others = rest[0], rest[1:]
        return min(dist[first][o] + best(tuple(x for x in others if x != o)) for o in others)

    return sum(edges[i][2] for i in required) + best(tuple(odd))


def test_grid_network_matches_brute_force(session):
    # a 4 x 3 lattice of 80 m x 60 m blocks; required: a connected irregular subset
    spec = {}
    for i, j in itertools.product(range(4), range(3)):
        if i < 3:
            spec[f"h{i}{j}"] = [(80 * i, 60 * j), (80 * (i + 1), 60 * j)]
        if j < 2:
            spec[f"v{i}{j}"] = [(80 * i, 60 * j), (80 * i, 60 * (j + 1))]
    ids = add_segments(session, spec)
    L = lengths(session, ids)
    names = sorted(spec)
    req_names = ["h00", "h10", "h20", "v30", "v10", "h11", "v11", "h01", "v01", "h12", "v21"]
    edges = []
    for n in names:
        (x0, y0), (x1, y1) = spec[n]
        edges.append((f"{x0},{y0}", f"{x1},{y1}", L[n]))
    expected = _brute_force_optimum(edges, [names.index(n) for n in req_names])
    res = patrol_routes.solve(patrol_routes.StreetGraph.load(session), [ids[n] for n in req_names])
    assert res.exact
    assert res.total_m == pytest.approx(expected, abs=0.01)
    _check_walk(res, [ids[n] for n in req_names])


def test_disconnected_pieces_on_a_line_go_there_and_back(session):
    ids = add_segments(
        session,
        {"a": [(0, 0), (100, 0)], "gap": [(100, 0), (150, 0)], "b": [(150, 0), (250, 0)]},
    )
    L = lengths(session, ids)
    graph = patrol_routes.StreetGraph.load(session)
    req = [ids["a"], ids["b"]]
    # the heuristic alone, with its combinatorial bound
    heur = patrol_routes.solve(graph, req, milp_seconds=0)
    # the only closed walk: there and back along the whole line
    assert heur.total_m == pytest.approx(2 * sum(L.values()), abs=0.01)
    assert not heur.exact and heur.components == 2
    # bound = required + matching(odd ends: a's ends, b's ends) = 2 * (a + b)
    assert heur.lower_bound_m == pytest.approx(2 * (L["a"] + L["b"]), abs=0.01)
    _check_walk(heur, req)
    # the integer programme proves the optimum
    res = patrol_routes.solve(graph, req)
    assert res.exact and res.total_m == pytest.approx(2 * sum(L.values()), abs=0.01)
    assert res.lower_bound_m == pytest.approx(res.total_m)
    _check_walk(res, req)


def test_pieces_where_the_heuristic_is_not_optimal(session):
    # A comb: required teeth hang off a spine that is not required. Frederickson's MST +
    # matching walks the spine twice and adds matching paths; the optimum (found by the
    # integer programme, checked here against a hand count) walks the spine twice only.
    spec = {f"s{i}": [(100 * i, 0), (100 * (i + 1), 0)] for i in range(4)}
    spec |= {f"t{i}": [(100 * i, 0), (100 * i, 60)] for i in range(5)}
    ids = add_segments(session, spec)
    L = lengths(session, ids)
    teeth = [ids[f"t{i}"] for i in range(5)]
    graph = patrol_routes.StreetGraph.load(session)
    res = patrol_routes.solve(graph, teeth)
    spine = sum(L[f"s{i}"] for i in range(4))
    # every tooth up and down, the spine there and back
    assert res.total_m == pytest.approx(2 * sum(L[f"t{i}"] for i in range(5)) + 2 * spine, abs=0.01)
    assert res.exact
    heur = patrol_routes.solve(graph, teeth, milp_seconds=0)
    assert heur.total_m >= res.total_m - 0.01
    assert heur.lower_bound_m <= res.total_m + 0.01


def test_two_blocks_joined_by_a_lane(session):
    sq = 60.0
    spec = {}
    for k, x0 in (("l", 0.0), ("r", sq + 30.0)):
        spec[f"{k}1"] = [(x0, 0), (x0 + sq, 0)]
        spec[f"{k}2"] = [(x0 + sq, 0), (x0 + sq, sq)]
        spec[f"{k}3"] = [(x0 + sq, sq), (x0, sq)]
        spec[f"{k}4"] = [(x0, sq), (x0, 0)]
    spec["lane"] = [(sq, 0), (sq + 30.0, 0)]
    ids = add_segments(session, spec)
    L = lengths(session, ids)
    req = [i for n, i in ids.items() if n != "lane"]
    res = patrol_routes.solve(patrol_routes.StreetGraph.load(session), req)
    blocks = sum(v for n, v in L.items() if n != "lane")
    assert res.total_m == pytest.approx(blocks + 2 * L["lane"], abs=0.01)
    assert res.exact and res.lower_bound_m == pytest.approx(res.total_m)
    heur = patrol_routes.solve(patrol_routes.StreetGraph.load(session), req, milp_seconds=0)
    assert heur.lower_bound_m == pytest.approx(blocks + L["lane"], abs=0.01)
    _check_walk(res, req)


def test_office_start_is_snapped_and_reached(session):
    ids = add_segments(session, RECT | {"spur": [(0, 0), (-40, 0)]})
    L = lengths(session, ids)
    office = lonlat(-40, 0.3)  # near the far end of the spur, not on the chief's streets
    req = [ids[n] for n in ("AB", "BC", "CD", "DA")]
    res = patrol_routes.solve(patrol_routes.StreetGraph.load(session), req, start=office)
    coords = res.coordinates()
    assert coords[0] == pytest.approx(lonlat(-40, 0), abs=1e-7)
    assert res.total_m == pytest.approx(
        sum(L[n] for n in ("AB", "BC", "CD", "DA")) + 2 * L["spur"], abs=0.01
    )
    _check_walk(res, req)


def test_gpx_parses_back(session):
    ids = add_segments(session, RECT)
    chief = add_chief(session, "王巷长", list(ids.values()))
    res = patrol_routes.route_for_chief(session, chief)
    text = res.to_gpx("巡查 王巷长", 4.5)
    gpx = gpxpy.parse(text)
    pts = gpx.tracks[0].segments[0].points
    coords = res.coordinates()
    assert len(pts) == len(coords)
    assert (pts[0].longitude, pts[0].latitude) == pytest.approx(coords[0], abs=1e-6)
    assert (pts[-1].longitude, pts[-1].latitude) == pytest.approx(coords[0], abs=1e-6)
    times = [p.time for p in pts]
    assert all(a <= b for a, b in itertools.pairwise(times))
    walk_s = (times[-1] - times[0]).total_seconds()
    assert walk_s == pytest.approx(res.total_m / (4.5 / 3.6), rel=0.01)
    assert gpx.length_2d() == pytest.approx(res.total_m, rel=0.01)
    assert gpx.tracks[0].name == "巡查 王巷长"


def test_geojson_is_ordered_with_sequence_numbers(session):
    ids = add_segments(session, RECT)
    res = patrol_routes.solve(patrol_routes.StreetGraph.load(session), list(ids.values()))
    fc = res.to_geojson(4.5)
    seqs = [f["properties"]["seq"] for f in fc["features"]]
    assert seqs == list(range(1, len(seqs) + 1))
    for a, b in itertools.pairwise(fc["features"]):
        assert a["geometry"]["coordinates"][-1] == pytest.approx(
            b["geometry"]["coordinates"][0], abs=1e-9
        )
    kinds = [f["properties"]["kind"] for f in fc["features"]]
    assert kinds.count("required") == len(ids)
    assert fc["properties"]["walking_minutes"] == pytest.approx(res.total_m / 4500 * 60, abs=0.1)


def test_unreachable_piece_is_reported(session):
    ids = add_segments(
        session,
        {
            "a": [(0, 0), (100, 0)],
            "b": [(100, 0), (100, 80)],
            "island": [(500, 500), (600, 500)],
        },
    )
    L = lengths(session, ids)
    graph = patrol_routes.StreetGraph.load(session)
    res = patrol_routes.solve(graph, list(ids.values()))
    # the walk covers the part of the network holding most of the beat, and says what not
    assert res.unreachable_segments == [ids["island"]]
    assert res.summary(4.5)["unreachable_segments"] == [ids["island"]]
    assert res.total_m == pytest.approx(2 * (L["a"] + L["b"]), abs=0.01)
    _check_walk(res, [ids["a"], ids["b"]])
    with pytest.raises(ValidationError, match="none of the assigned segments can be reached"):
        patrol_routes.solve(graph, [ids["a"]], start=lonlat(600, 500))


def _jittered_lattice(
    n: int, seed: int, detours: float = 0.0
) -> tuple[patrol_routes.StreetGraph, list[tuple], list[tuple[int, int]]]:
    """A street-like lattice (n x n junctions, 40-80 m blocks, some streets missing).

    With ``detours``, that share of the streets also get a bent alley between the same two
    junctions (a parallel segment, always the longer). Returns the street graph, the raw
    edge list ``(junction key, junction key, metres)`` as drawn here (independent of how
    the graph snaps and indexes junctions) and each graph node's lattice key ``(i, j)``.
    """
    import numpy as np
    import shapely
    from pyproj import Geod

    rng = np.random.default_rng(seed)
    x0, y0 = 118.58, 24.90
    pts = {
        (i, j): (
            x0 + (60 * i + rng.uniform(-20, 20)) / 101_000,
            y0 + (60 * j + rng.uniform(-20, 20)) / 111_000,
        )
        for i in range(n)
        for j in range(n)
    }
    lines, ends = [], []
    for i, j in pts:
        for di, dj in ((1, 0), (0, 1)):
            if (i + di, j + dj) in pts and rng.random() > 0.12:
                a, b = pts[(i, j)], pts[(i + di, j + dj)]
                lines.append(shapely.LineString([a, b]))
                ends.append(((i, j), (i + di, j + dj)))
                if rng.random() < detours:  # bent 10-25 m off the straight street
                    off = rng.uniform(10, 25) * rng.choice([-1, 1])
                    mid = (
                        (a[0] + b[0]) / 2 + dj * off / 101_000,
                        (a[1] + b[1]) / 2 + di * off / 111_000,
                    )
                    lines.append(shapely.LineString([a, mid, b]))
                    ends.append(((i, j), (i + di, j + dj)))
    geod = Geod(ellps="WGS84")
    lens = [geod.geometry_length(ln) for ln in lines]
    graph = patrol_routes.StreetGraph.from_segments(list(range(1, len(lines) + 1)), lines, lens)
    key_of = {xy: k for k, xy in pts.items()}
    node_key = [key_of[(float(x), float(y))] for x, y in graph.node_lonlat]
    raw = [(a, b, w) for (a, b), w in zip(ends, lens, strict=True)]
    return graph, raw, node_key


def _check_t_join_against_reference(
    graph: patrol_routes.StreetGraph, raw: list[tuple], node_key: list, seed: int
) -> None:
    """Random terminal sets of the largest piece, from a pair to half its junctions: the
    T-join costs what networkx's complete-graph matching costs, and fixes exactly them."""
    import numpy as np

    labels = graph.component_labels()
    big = np.bincount(labels).argmax()
    rng = np.random.default_rng(seed)
    nodes = np.flatnonzero(labels == big)
    for size in (2, 10, 60, 2 * (len(nodes) // 4)):
        terminals = sorted(int(x) for x in rng.choice(nodes, size=size, replace=False))
        edges, cost = graph.t_join(terminals)
        expected = reference.t_join_cost(raw, [node_key[t] for t in terminals])
        assert cost == pytest.approx(expected, abs=0.01), size
        assert len(set(edges)) == len(edges)
        deg = np.zeros(graph.n_nodes, dtype=int)
        np.add.at(deg, graph.u[edges], 1)
        np.add.at(deg, graph.v[edges], 1)
        assert sorted(np.flatnonzero(deg % 2).tolist()) == terminals


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_t_join_equals_complete_graph_matching(seed):
    """The sparse-blossom T-join costs exactly the complete-graph matching and fixes parity."""
    _check_t_join_against_reference(*_jittered_lattice(18, seed), seed)


@pytest.mark.parametrize("seed", [4, 5])
def test_t_join_takes_the_shorter_of_parallel_streets(seed):
    """A bent alley beside a straight street joins the same junctions: only the shorter
    of the two may count (the reference keeps the lightest parallel edge itself)."""
    graph, raw, node_key = _jittered_lattice(12, seed, detours=0.3)
    assert len(raw) > len({(a, b) for a, b, _w in raw})  # there are parallel streets
    _check_t_join_against_reference(graph, raw, node_key, seed)


def test_reference_t_join_by_hand():
    """The reference itself on a path a-b-c-d of 1, 2 and 3 m (and a 9 m a-b alley)."""
    path = [("a", "b", 1.0), ("b", "c", 2.0), ("c", "d", 3.0), ("a", "b", 9.0)]
    assert reference.t_join_cost(path, ["a", "d"]) == 6.0
    assert reference.t_join_cost(path, ["a", "b", "c", "d"]) == 4.0  # a-b + c-d
    assert reference.t_join_cost(path, []) == 0.0
    with pytest.raises(ValueError, match="odd number"):
        reference.t_join_cost(path, ["a", "b", "c"])
    with pytest.raises(ValueError, match="cannot reach"):
        reference.t_join_cost([*path, ("x", "y", 1.0)], ["a", "x"])


def test_t_join_on_separate_parts_is_refused():
    """Two dead-end streets on separate parts cannot be paired, even with a core elsewhere."""
    import shapely

    def line(*pts):
        return shapely.LineString([(118.58 + x / 1e4, 24.90 + y / 1e4) for x, y in pts])

    lines = [line((0, 0), (10, 0)), line((200, 0), (210, 0))]
    lines += [line((400, 0), (410, 0)), line((410, 0), (410, 10)), line((410, 10), (400, 0))]
    graph = patrol_routes.StreetGraph.from_segments([1, 2, 3, 4, 5], lines, [100.0] * 5)
    with pytest.raises(ValidationError, match="cannot reach each other"):
        graph.t_join([int(graph.u[0]), int(graph.u[1])])
    assert graph.t_join([int(graph.u[2]), int(graph.u[3])]) == ([2], 100.0)


def test_unknown_segment_ids_are_named():
    import shapely

    from mapsvc.core.errors import NotFound

    line = shapely.LineString([(118.58, 24.90), (118.581, 24.90)])
    graph = patrol_routes.StreetGraph.from_segments([7], [line], [100.0])
    with pytest.raises(NotFound, match=r"not in the street network: \[8, 9\]"):
        patrol_routes.solve(graph, [7, 8, 9])
    assert patrol_routes.solve(graph, [7]).total_m == pytest.approx(200.0)
