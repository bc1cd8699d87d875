"""The minimum T-join cost computed the slow, textbook way, with networkx only.

The patrol solver fixes odd junctions with a sparse-blossom T-join on the street graph
(:meth:`mapsvc.services.patrol_routes.StreetGraph.t_join`). Its optimality is checked here
against the classical construction, which shares no code with it: a networkx graph built
from a plain edge list, Dijkstra shortest-path distances between the terminals, the
complete graph on the terminals weighted by those distances, and networkx's
``min_weight_matching``. The cost of a minimum T-join equals the weight of that minimum
perfect matching.

It is slow on purpose (quadratic graph, cubic blossom in pure Python): about 0.2 s for 60
terminals and 6 s for 160 on the shared machine. Used by
``tests/services/test_patrol_routes.py`` and ``bench/bench_postman.py``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import TYPE_CHECKING

import networkx as nx

if TYPE_CHECKING:
    from mapsvc.services.patrol_routes import StreetGraph


def street_edges(graph: StreetGraph) -> list[tuple[int, int, float]]:
    """A street graph's raw edge list ``(junction, junction, metres)``, one per segment.

    Only the graph's data is read (its endpoint arrays and lengths), none of its methods.
    """
    return [
        (int(a), int(b), float(w))
        for a, b, w in zip(graph.u.tolist(), graph.v.tolist(), graph.length.tolist(), strict=True)
    ]


def network(edges: Iterable[tuple[Hashable, Hashable, float]]) -> nx.Graph:
    """The networkx graph of an edge list ``(node, node, weight)``.

    Parallel edges keep the lightest and self-loops are dropped: neither of the others
    can be part of a minimum T-join.
    """
    g = nx.Graph()
    for a, b, w in edges:
        if a != b and (not g.has_edge(a, b) or g[a][b]["weight"] > w):
            g.add_edge(a, b, weight=float(w))
    return g


def t_join_cost(
    edges: Iterable[tuple[Hashable, Hashable, float]] | nx.Graph, terminals: Iterable[Hashable]
) -> float:
    """Cost of a minimum T-join of ``terminals`` on the undirected graph of ``edges``.

    Parameters
    ----------
    edges : iterable of (node, node, weight), or a graph from :func:`network`
        The network (a prebuilt graph saves rebuilding a city's for every beat).
    terminals : iterable of nodes
        The junctions of odd degree to be paired; an even number of them.

    Returns
    -------
    float
        The sum of shortest-path distances over a minimum-weight perfect matching of the
        terminals.

    Raises
    ------
    ValueError
        For an odd number of terminals, or terminals that cannot reach each other.
    """
    g = edges if isinstance(edges, nx.Graph) else network(edges)
    ts = list(dict.fromkeys(terminals))
    if len(ts) % 2:
        raise ValueError(f"{len(ts)} terminals: an odd number cannot be paired")
    if not ts:
        return 0.0
    complete = nx.Graph()
    for i, t in enumerate(ts):
        dist = nx.single_source_dijkstra_path_length(g, t, weight="weight")
        for u in ts[i + 1 :]:
            if u not in dist:
                raise ValueError(f"terminals {t} and {u} cannot reach each other")
            complete.add_edge(t, u, weight=dist[u])
    matching = nx.min_weight_matching(complete, weight="weight")
    if 2 * len(matching) != len(ts):
        raise ValueError("no perfect matching of the terminals")
    return float(sum(complete[a][b]["weight"] for a, b in matching))
