"""Patrol routes: the rural postman problem on the alley network, in metres.

A chief's daily patrol (日巡查) is the shortest closed walk from a start point that walks
each of their assigned segments at least once and may use any other street as a connector.

* When the required segments (plus the start point) form one connected piece, the optimum
  is exact: the required length plus a minimum-weight perfect matching of the odd-degree
  junctions on shortest-path distances (metres, geodesic segment lengths). networkx's
  ``eulerize`` is not this: it ignores edge lengths.
* Otherwise the problem is NP-hard. We first build Frederickson's heuristic route (connect
  the pieces by a minimum spanning tree over shortest paths, match odd junctions, drop
  redundant connector copies) with the bound
  ``required + max(matching of the odd junctions, MST over the pieces)``; then an integer
  programme on the classic reduced graph (the required junctions, shortest-path
  connectors; connectivity by cutting planes, HiGHS through scipy) usually proves the
  optimum within milliseconds. When its time budget runs out, the heuristic route stays
  and the programme's proven bound is reported, so the user sees how far from optimal the
  route can at most be.
* Assigned streets on a part of the network the start cannot reach (an island in the
  data) are left out of the walk and reported, not silently dropped.

The matching is solved by rustworkx's compiled blossom algorithm. Real networks have more
than a thousand odd junctions per few km², where a complete graph is slow even there, so
above ``dense_limit`` odd junctions we match on a sparse candidate graph (each junction's
``k`` nearest others by walking distance), which in street networks loses nothing; if that
graph has no perfect matching we fall back to the complete one.

The graph is built once from *all* segments of ``alley_segment`` (OSM imports and the demo
alike): nodes are segment endpoints snapped together within ``snap_m`` metres (in the local
UTM zone), edge weights the generated geodesic ``length_m``. No Flask here.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from mapsvc.services.errors import NotFound, ValidationError

#: endpoints closer than this (metres) are the same junction
SNAP_M = 0.5
#: above this many odd junctions match on a sparse k-nearest candidate graph
DENSE_LIMIT = 600
SPARSE_K = 24
#: odd-junction count up to which matching searches start local (see _match_paths)
LOCAL_SEARCH_MAX = 64
#: time budget (s) of the exact integer programme for required sets in several pieces
MILP_SECONDS = 10.0
#: skip the integer programme when the required set has more junctions than this
MILP_MAX_NODES = 400
OSM_CREDIT = "© OpenStreetMap contributors"


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, a: int) -> int:
        p = self.parent
        root = a
        while p[root] != root:
            root = p[root]
        while p[a] != root:
            p[a], a = root, p[a]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


@dataclass
class StreetGraph:
    """The walkable network: one edge per segment, nodes at snapped endpoints."""

    seg_ids: np.ndarray  # edge index -> alley_segment.id
    u: np.ndarray  # edge index -> node index of the first coordinate
    v: np.ndarray  # edge index -> node index of the last coordinate
    length: np.ndarray  # metres (geodesic)
    geoms: list  # shapely LineStrings, WGS84
    names: list
    sources: list
    node_lonlat: np.ndarray
    node_xy: np.ndarray  # metres, local UTM
    epsg: int
    edge_of: dict[int, int] = field(default_factory=dict)  # segment id -> edge index
    _csr: Any = None
    _best: dict | None = None
    _labels: np.ndarray | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_segments(
        cls,
        seg_ids: list[int],
        geoms: list,
        lengths: list[float],
        names: list | None = None,
        sources: list | None = None,
        snap_m: float = SNAP_M,
    ) -> StreetGraph:
        """Build the graph from segment lines (WGS84) and their geodesic lengths in metres."""
        from pyproj import Transformer
        from scipy.spatial import cKDTree

        from mapsvc.services.geo import utm_epsg

        n = len(seg_ids)
        if n == 0:
            raise NotFound("there are no street segments; import streets first")
        ends = np.empty((2 * n, 2))
        for i, g in enumerate(geoms):
            cs = g.coords
            ends[2 * i] = cs[0][:2]
            ends[2 * i + 1] = cs[-1][:2]
        centre = ends.mean(axis=0)
        epsg = utm_epsg(round(float(centre[0]), 1), round(float(centre[1]), 1))
        tr = Transformer.from_crs(4326, epsg, always_xy=True)
        xy = np.column_stack(tr.transform(ends[:, 0], ends[:, 1]))
        # snap endpoints within snap_m (union-find over close pairs)
        uf = _UnionFind(2 * n)
        for a, b in cKDTree(xy).query_pairs(snap_m, output_type="ndarray"):
            uf.union(int(a), int(b))
        roots = np.array([uf.find(i) for i in range(2 * n)])
        uniq, node_of = np.unique(roots, return_inverse=True)
        node_lonlat = ends[uniq]
        node_xy = xy[uniq]
        g = cls(
            seg_ids=np.asarray(seg_ids, dtype=np.int64),
            u=node_of[0::2].astype(np.int64),
            v=node_of[1::2].astype(np.int64),
            length=np.asarray(lengths, dtype=float),
            geoms=list(geoms),
            names=list(names) if names is not None else [None] * n,
            sources=list(sources) if sources is not None else [None] * n,
            node_lonlat=node_lonlat,
            node_xy=node_xy,
            epsg=epsg,
        )
        g.edge_of = {int(s): i for i, s in enumerate(g.seg_ids)}
        return g

    @classmethod
    def load(cls, session: Session) -> StreetGraph:
        """Build the graph from every row of ``alley_segment``."""
        import shapely

        rows = session.execute(
            sa.text(
                "SELECT id, ST_AsBinary(geom), length_m, name, source FROM alley_segment "
                "ORDER BY id"
            )
        ).all()
        if not rows:
            raise NotFound("there are no street segments; import streets first")
        geoms = shapely.from_wkb([bytes(r[1]) for r in rows])
        return cls.from_segments(
            [r[0] for r in rows],
            list(geoms),
            [r[2] for r in rows],
            [r[3] for r in rows],
            [r[4] for r in rows],
        )

    @property
    def n_nodes(self) -> int:
        return len(self.node_lonlat)

    def csr(self):  # noqa: ANN201 - scipy sparse matrix
        """Symmetric adjacency (shortest parallel edge per pair; self-loops dropped)."""
        if self._csr is None:
            from scipy.sparse import csr_matrix

            best: dict[tuple[int, int], int] = {}
            for e in range(len(self.u)):
                a, b = int(self.u[e]), int(self.v[e])
                if a == b:
                    continue
                key = (a, b) if a < b else (b, a)
                old = best.get(key)
                if old is None or self.length[e] < self.length[old]:
                    best[key] = e
            self._best = best
            if best:
                keys = np.array(list(best.keys()))
                w = self.length[np.array(list(best.values()))]
                # zero-length edges would vanish from a sparse matrix: keep them tiny
                w = np.maximum(w, 1e-6)
                rows = np.concatenate([keys[:, 0], keys[:, 1]])
                cols = np.concatenate([keys[:, 1], keys[:, 0]])
                data = np.concatenate([w, w])
            else:
                rows = cols = np.array([], dtype=int)
                data = np.array([], dtype=float)
            self._csr = csr_matrix((data, (rows, cols)), shape=(self.n_nodes, self.n_nodes))
        return self._csr

    def component_labels(self) -> np.ndarray:
        """Connected-component label of every junction (streets that cannot be reached)."""
        if self._labels is None:
            from scipy.sparse.csgraph import connected_components

            self._labels = connected_components(self.csr(), directed=False)[1]
        return self._labels

    def best_edge(self, a: int, b: int) -> int:
        self.csr()
        return self._best[(a, b) if a < b else (b, a)]

    def nearest_node(self, lon: float, lat: float) -> tuple[int, float]:
        """Nearest junction to a WGS84 point and its distance in metres."""
        from pyproj import Transformer

        tr = Transformer.from_crs(4326, self.epsg, always_xy=True)
        x, y = tr.transform(lon, lat)
        d = np.hypot(self.node_xy[:, 0] - x, self.node_xy[:, 1] - y)
        i = int(np.argmin(d))
        return i, float(d[i])

    def dijkstra(  # noqa: ANN201
        self, sources: list[int] | np.ndarray, min_only: bool = False, limit: float = np.inf
    ):
        """scipy Dijkstra from ``sources`` (distances in metres, predecessors[, sources]).

        ``limit`` stops the search at that many metres (farther nodes get ``inf``), which
        keeps a small beat's search local in a large city.
        """
        from scipy.sparse.csgraph import dijkstra

        # the matrix is symmetric already: directed=True skips scipy's transpose per call
        return dijkstra(
            self.csr(),
            directed=True,
            indices=np.asarray(sources, dtype=np.int64),
            return_predecessors=True,
            min_only=min_only,
            limit=limit,
        )

    def path_edges(self, pred_row: np.ndarray, target: int) -> list[int]:
        """Edge indices of the shortest path ending at ``target`` (from the row's source)."""
        out = []
        b = target
        while pred_row[b] >= 0:
            a = int(pred_row[b])
            out.append(self.best_edge(a, b))
            b = a
        out.reverse()
        return out


# ---------------------------------------------------------------------------- matching


def min_weight_perfect_matching(
    dist: np.ndarray, dense_limit: int = DENSE_LIMIT, k: int = SPARSE_K
) -> tuple[list[tuple[int, int]], bool]:
    """Minimum-weight perfect matching on a symmetric distance matrix (metres).

    Returns the pairs (indices into ``dist``) and whether the complete graph was used
    (``True``: provably optimal; ``False``: sparse candidate graph of the ``k`` nearest).
    Weights are integers in millimetres for rustworkx's exact integer blossom algorithm.
    """
    import rustworkx as rx

    n = len(dist)
    if n == 0:
        return [], True
    if n % 2:
        raise ValueError("odd number of vertices to match")
    if not np.isfinite(dist).all():
        raise ValidationError("some junctions to pair cannot reach each other on the streets")
    mm = np.round(dist * 1000).astype(np.int64)
    big = int(mm.max()) + 1

    def solve(pairs_i: np.ndarray, pairs_j: np.ndarray) -> list[tuple[int, int]] | None:
        g = rx.PyGraph()
        g.add_nodes_from(range(n))
        w = big - mm[pairs_i, pairs_j]
        g.add_edges_from(list(zip(pairs_i.tolist(), pairs_j.tolist(), w.tolist(), strict=True)))
        m = rx.max_weight_matching(g, max_cardinality=True, weight_fn=int)
        if 2 * len(m) != n:
            return None
        return [(int(a), int(b)) for a, b in m]

    if n > dense_limit:
        kk = min(k, n - 1)
        nn = np.argpartition(dist + np.diag(np.full(n, np.inf)), kk - 1, axis=1)[:, :kk]
        i = np.repeat(np.arange(n), kk)
        j = nn.ravel()
        lo, hi = np.minimum(i, j), np.maximum(i, j)
        pairs = np.unique(np.column_stack([lo, hi]), axis=0)
        res = solve(pairs[:, 0], pairs[:, 1])
        if res is not None:
            return res, False
    iu = np.triu_indices(n, 1)
    res = solve(iu[0], iu[1])
    if res is None:  # pragma: no cover - a complete graph on an even set always has one
        raise ValidationError("no perfect matching of odd junctions exists")
    return res, True


# ---------------------------------------------------------------------------- result


@dataclass
class PostmanResult:
    """An ordered closed walk with its lengths and quality figures."""

    graph: StreetGraph
    steps: list[tuple[int, bool, bool]]  # (edge index, forward, first walk of a required edge)
    start_node: int
    required_m: float
    total_m: float
    lower_bound_m: float
    exact: bool
    components: int
    odd_nodes: int
    seconds: float
    method: str
    required_segments: list[int]
    #: assigned segments on a part of the network the start cannot reach (not in the walk)
    unreachable_segments: list[int] = field(default_factory=list)

    @property
    def connector_m(self) -> float:
        return self.total_m - self.required_m

    @property
    def ratio(self) -> float:
        """Route length over the lower bound (1.0 = proven optimal)."""
        return self.total_m / self.lower_bound_m if self.lower_bound_m > 0 else 1.0

    def walking_minutes(self, speed_kmh: float) -> float:
        return self.total_m / 1000.0 / speed_kmh * 60.0

    def coordinates(self) -> list[tuple[float, float]]:
        """The walk as one WGS84 coordinate list (closed)."""
        out: list[tuple[float, float]] = []
        for e, fwd, _req in self.steps:
            cs = list(self.graph.geoms[e].coords)
            if not fwd:
                cs.reverse()
            if out:
                cs = cs[1:]
            out.extend((float(c[0]), float(c[1])) for c in cs)
        if not out:
            lon, lat = self.graph.node_lonlat[self.start_node]
            out = [(float(lon), float(lat))]
        return out

    def summary(self, speed_kmh: float) -> dict[str, Any]:
        g = self.graph
        return {
            "total_m": round(self.total_m, 1),
            "required_m": round(self.required_m, 1),
            "connector_m": round(self.connector_m, 1),
            "lower_bound_m": round(self.lower_bound_m, 1),
            "ratio": round(self.ratio, 4),
            "exact": self.exact,
            "method": self.method,
            "components": self.components,
            "odd_junctions": self.odd_nodes,
            "steps": len(self.steps),
            "segments": len(self.required_segments),
            "unreachable_segments": self.unreachable_segments,
            "walking_speed_kmh": speed_kmh,
            "walking_minutes": round(self.walking_minutes(speed_kmh), 1),
            "solve_seconds": round(self.seconds, 3),
            "start": [float(x) for x in g.node_lonlat[self.start_node]],
        }

    def to_geojson(self, speed_kmh: float, **props: Any) -> dict[str, Any]:
        """FeatureCollection: one feature per step with its sequence number, in walk order."""
        g = self.graph
        feats = []
        cum = 0.0
        for seq, (e, fwd, req) in enumerate(self.steps, start=1):
            cs = [list(c[:2]) for c in g.geoms[e].coords]
            if not fwd:
                cs.reverse()
            cum += float(g.length[e])
            feats.append(
                {
                    "type": "Feature",
                    "geometry": {"type": "LineString", "coordinates": cs},
                    "properties": {
                        "seq": seq,
                        "segment_id": int(g.seg_ids[e]),
                        "name": g.names[e],
                        "kind": "required" if req else "connector",
                        "length_m": round(float(g.length[e]), 1),
                        "cumulative_m": round(cum, 1),
                    },
                }
            )
        lon, lat = g.node_lonlat[self.start_node]
        return {
            "type": "FeatureCollection",
            "features": feats,
            "properties": {**self.summary(speed_kmh), **props},
            "start": {"type": "Point", "coordinates": [float(lon), float(lat)]},
            "attribution": self.attribution(),
        }

    def attribution(self) -> str | None:
        used = {self.graph.sources[e] for e, _f, _r in self.steps}
        return OSM_CREDIT if "osm" in used else None

    def to_gpx(self, name: str, speed_kmh: float, start_time: dt.datetime | None = None) -> str:
        """GPX 1.1 with the walk as a track (and the start as a waypoint) for phone apps.

        Points carry times at walking speed from ``start_time`` so apps show the duration.
        """
        import gpxpy.gpx
        from pyproj import Geod

        gpx = gpxpy.gpx.GPX()
        gpx.creator = "mapsvc"
        gpx.name = name
        s = self.summary(speed_kmh)
        gpx.description = (
            f"{s['total_m']:.0f} m, {s['walking_minutes']:.0f} min at {speed_kmh} km/h; "
            f"required {s['required_m']:.0f} m, connector {s['connector_m']:.0f} m"
        )
        credit = self.attribution()
        if credit:
            gpx.copyright_author = "OpenStreetMap contributors"
            gpx.copyright_license = "https://opendatacommons.org/licenses/odbl/1-0/"
            gpx.description += f". Streets {credit}, ODbL"
        coords = self.coordinates()
        t0 = start_time or dt.datetime.combine(dt.date.today(), dt.time(8, 0), dt.UTC)
        geod = Geod(ellps="WGS84")
        trk = gpxpy.gpx.GPXTrack(name=name)
        seg = gpxpy.gpx.GPXTrackSegment()
        elapsed = 0.0
        prev = None
        mps = speed_kmh / 3.6
        for lon, lat in coords:
            if prev is not None:
                elapsed += geod.line_length([prev[0], lon], [prev[1], lat]) / mps
            seg.points.append(
                gpxpy.gpx.GPXTrackPoint(lat, lon, time=t0 + dt.timedelta(seconds=elapsed))
            )
            prev = (lon, lat)
        trk.segments.append(seg)
        gpx.tracks.append(trk)
        lon, lat = coords[0]
        gpx.waypoints.append(gpxpy.gpx.GPXWaypoint(lat, lon, name="start"))
        return gpx.to_xml(version="1.1")


# ---------------------------------------------------------------------------- solver


def _components(graph: StreetGraph, edges: list[int], extra_nodes: list[int]) -> list[list[int]]:
    nodes = sorted({int(graph.u[e]) for e in edges} | {int(graph.v[e]) for e in edges})
    nodes = sorted(set(nodes) | set(extra_nodes))
    idx = {n: i for i, n in enumerate(nodes)}
    uf = _UnionFind(len(nodes))
    for e in edges:
        uf.union(idx[int(graph.u[e])], idx[int(graph.v[e])])
    groups: dict[int, list[int]] = {}
    for n in nodes:
        groups.setdefault(uf.find(idx[n]), []).append(n)
    return sorted(groups.values(), key=lambda c: c[0])


def _odd(graph: StreetGraph, counts: dict[int, int]) -> list[int]:
    deg: dict[int, int] = {}
    for e, c in counts.items():
        a, b = int(graph.u[e]), int(graph.v[e])
        deg[a] = deg.get(a, 0) + c
        deg[b] = deg.get(b, 0) + c
    return sorted(n for n, d in deg.items() if d % 2)


def _match_paths(
    graph: StreetGraph,
    odd: list[int],
    dense_limit: int,
    limit: float = np.inf,
    first_radius: float | None = None,
) -> tuple[list[int], float, bool]:
    """Edges to duplicate so ``odd`` become even: (edges, their length, provably optimal).

    ``limit`` (metres) may bound the searches when no optimal pair can be farther apart:
    for a connected required set its own length bounds the cheapest fix (a T-join inside
    it), hence every pair of an optimal matching.

    Searches start local (``first_radius``) because in a city most odd junctions pair with
    a neighbour: pairs not reached within radius L get cost L, a lower bound on their true
    distance. If the optimal matching under those costs uses only reached pairs, it is
    optimal for the true distances too (its cost is exact and no matching can be cheaper);
    otherwise the radius grows and the matching is solved again.
    """
    if not odd:
        return [], 0.0, True
    # local searches pay off for a chief's beat; for big sets one full search is cheaper
    local = first_radius is not None and len(odd) <= LOCAL_SEARCH_MAX
    radius = min(first_radius, limit) if local else limit
    while True:
        dist, pred = graph.dijkstra(odd, limit=radius)
        sub = dist[:, odd]
        sub = np.minimum(sub, sub.T)
        far = ~np.isfinite(sub)
        final = radius >= limit
        if far.any():
            if not np.isfinite(radius):
                raise ValidationError(
                    "some junctions to pair cannot reach each other on the streets"
                )
            # final round: pairs beyond the safe limit are never optimal; else lower bound
            sub = np.where(far, 4.0 * radius + 1e6 if final else radius, sub)
        pairs, dense = min_weight_perfect_matching(sub, dense_limit=dense_limit)
        if final or not any(far[i, j] for i, j in pairs):
            break
        radius = min(limit, radius * 2.0)
    edges: list[int] = []
    cost = 0.0
    for i, j in pairs:
        if np.isfinite(dist[i, odd[j]]):
            edges.extend(graph.path_edges(pred[i], odd[j]))
        else:  # the search from i stopped early; the path is found from j's side
            edges.extend(graph.path_edges(pred[j], odd[i]))
        cost += float(sub[i, j])
    return edges, cost, dense


def _connected(graph: StreetGraph, counts: dict[int, int], important: set[int]) -> bool:
    nodes = set(important)
    for e, c in counts.items():
        if c:
            nodes.add(int(graph.u[e]))
            nodes.add(int(graph.v[e]))
    idx = {n: i for i, n in enumerate(nodes)}
    uf = _UnionFind(len(idx))
    for e, c in counts.items():
        if c:
            uf.union(idx[int(graph.u[e])], idx[int(graph.v[e])])
    roots = {uf.find(idx[n]) for n in important}
    return len(roots) <= 1


def _cleanup(
    graph: StreetGraph, counts: dict[int, int], required: set[int], important: set[int]
) -> None:
    """Drop redundant copies: any edge walked 3+ times loses two copies (parity kept);
    a connector walked exactly twice is dropped when the walk stays connected without it."""
    for e in list(counts):
        floor = 1 if e in required else 0
        while counts[e] - 2 >= max(floor, 1):
            counts[e] -= 2
    candidates = sorted(
        (e for e, c in counts.items() if c == 2 and e not in required),
        key=lambda e: -graph.length[e],
    )
    if len(candidates) > 3000:  # keep the cleanup linear-ish on huge instances
        candidates = candidates[:3000]
    for e in candidates:
        counts[e] = 0
        if not _connected(graph, counts, important):
            counts[e] = 2
    for e in [e for e, c in counts.items() if c == 0]:
        del counts[e]


def _euler(graph: StreetGraph, counts: dict[int, int], start: int) -> list[tuple[int, bool]]:
    """Hierholzer's algorithm on the multigraph ``counts``: [(edge, forward)] from ``start``."""
    adj: dict[int, list[tuple[int, int]]] = {}
    inst: list[int] = []
    for e, c in counts.items():
        a, b = int(graph.u[e]), int(graph.v[e])
        for _ in range(c):
            k = len(inst)
            inst.append(e)
            adj.setdefault(a, []).append((b, k))
            adj.setdefault(b, []).append((a, k))
    if not inst:
        return []
    used = [False] * len(inst)
    stack: list[tuple[int, int, int]] = [(start, -1, -1)]  # (node, instance, previous node)
    out: list[tuple[int, bool]] = []
    while stack:
        node, k, prev = stack[-1]
        nbrs = adj.get(node, [])
        while nbrs and used[nbrs[-1][1]]:
            nbrs.pop()
        if nbrs:
            nxt, kk = nbrs.pop()
            used[kk] = True
            stack.append((nxt, kk, node))
        else:
            stack.pop()
            if k >= 0:
                e = inst[k]
                out.append((e, int(graph.u[e]) == prev))
    out.reverse()
    if len(out) != len(inst):  # pragma: no cover - guarded by construction
        raise ValidationError("internal error: the walk is not connected")
    return out


def solve(
    graph: StreetGraph,
    required_segment_ids: list[int],
    start: tuple[float, float] | int | None = None,
    dense_limit: int = DENSE_LIMIT,
    milp_seconds: float = MILP_SECONDS,
) -> PostmanResult:
    """Shortest closed walk covering ``required_segment_ids`` (see module docstring).

    Parameters
    ----------
    graph : StreetGraph
        The whole network (connectors may use any street).
    required_segment_ids : list of int
        ``alley_segment.id`` values to walk at least once.
    start : (lon, lat), node index or None
        The chief's office (snapped to the nearest junction); None: the first endpoint of
        the lowest-id required segment, i.e. a point on their own streets.
    dense_limit : int
        Odd-junction count above which matching uses a sparse candidate graph.
    milp_seconds : float
        Time budget of the exact integer programme for sets in several pieces (0: skip it
        and keep the heuristic with its combinatorial lower bound).
    """
    t0 = time.perf_counter()
    missing = [s for s in required_segment_ids if s not in graph.edge_of]
    if missing:
        raise NotFound(f"segments not in the street network: {missing[:10]}", field="segments")
    req = sorted({graph.edge_of[s] for s in required_segment_ids})
    if not req:
        raise ValidationError("no segments to patrol: the chief has no assigned segments")
    labels = graph.component_labels()
    if start is None:
        # on the connected part of the network holding most of the chief's streets
        share: dict[int, float] = {}
        for e in req:
            lab = int(labels[graph.u[e]])
            share[lab] = share.get(lab, 0.0) + float(graph.length[e])
        main = max(share, key=lambda k: (share[k], -k))
        first = min((e for e in req if labels[graph.u[e]] == main), key=lambda e: graph.seg_ids[e])
        start_node = int(graph.u[first])
    elif isinstance(start, (int, np.integer)):
        start_node = int(start)
    else:
        start_node, _d = graph.nearest_node(float(start[0]), float(start[1]))
    # streets on another connected part of the network cannot be in the same walk
    unreachable = [e for e in req if labels[graph.u[e]] != labels[start_node]]
    if unreachable:
        req = [e for e in req if labels[graph.u[e]] == labels[start_node]]
        if not req:
            raise ValidationError(
                "none of the assigned segments can be reached from the start on the street "
                f"network (segments {[int(graph.seg_ids[e]) for e in unreachable][:10]})",
                field="start",
            )
    required_m = float(graph.length[req].sum())
    counts = dict.fromkeys(req, 1)
    comps = _components(graph, req, [start_node])
    odd_r = _odd(graph, counts)
    important = {n for c in comps for n in c}

    if len(comps) == 1:
        typical = float(np.median(graph.length[req]))
        extra, cost, dense = _match_paths(
            graph, odd_r, dense_limit, limit=required_m + 1.0, first_radius=6.0 * typical + 200.0
        )
        for e in extra:
            counts[e] = counts.get(e, 0) + 1
        exact = dense
        if dense:
            lower = required_m + cost
            method = "exact: min-weight matching (complete graph)"
        else:
            lower = required_m + _lower_matching(graph, odd_r, dense_limit)
            method = "matching on sparse candidate graph"
    else:
        # distances between pieces: multi-source Dijkstra from each piece
        p = len(comps)
        cd = np.full((p, p), np.inf)
        best_target = {}
        preds = []
        for i, comp in enumerate(comps):
            dist, pred, src = graph.dijkstra(comp, min_only=True)
            preds.append((pred, src))
            for j, other in enumerate(comps):
                if j == i:
                    continue
                dj = dist[other]
                k = int(np.argmin(dj))
                if dj[k] < cd[i, j]:
                    cd[i, j] = float(dj[k])
                    best_target[(i, j)] = other[k]
        if not np.isfinite(cd[~np.eye(p, dtype=bool)]).all():
            bad = [i for i in range(p) if not np.isfinite(np.delete(cd[i], i)).all()]
            segs = [int(graph.seg_ids[e]) for e in req if int(graph.u[e]) in comps[bad[0]]]
            raise ValidationError(
                "the assigned segments cannot all be reached from each other on the street "
                f"network (unreachable piece with segments {segs[:10]})",
                field="segments",
            )
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import minimum_spanning_tree

        sym = np.minimum(cd, cd.T)
        sym[np.eye(p, dtype=bool)] = 0
        mst = minimum_spanning_tree(csr_matrix(np.maximum(sym, 1e-6) * ~np.eye(p, dtype=bool)))
        mst_cost = 0.0
        for i, j in zip(*mst.nonzero(), strict=True):
            i, j = int(i), int(j)
            if cd[j, i] < cd[i, j]:
                i, j = j, i
            pred, _src = preds[i]
            for e in graph.path_edges(pred, best_target[(i, j)]):
                counts[e] = counts.get(e, 0) + 1
            mst_cost += float(cd[i, j])
        odd = _odd(graph, counts)
        extra, _cost, _dense = _match_paths(graph, odd, dense_limit)
        for e in extra:
            counts[e] = counts.get(e, 0) + 1
        _cleanup(graph, counts, set(req), important)
        lb_match = _lower_matching(graph, odd_r, dense_limit)
        lower = required_m + max(lb_match, mst_cost)
        exact = False
        method = "heuristic: MST over pieces + matching"
        heur_extra = sum(float(graph.length[e]) * c for e, c in counts.items()) - required_m
        if milp_seconds > 0 and heur_extra > lower - required_m + 0.01:
            out = _milp_rpp(graph, req, comps, heur_extra, milp_seconds)
            if out is not None:
                extra_x, obj, bound, optimal = out
                if extra_x is not None and obj < heur_extra - 0.01:
                    counts = dict.fromkeys(req, 1)
                    for e in extra_x:
                        counts[e] = counts.get(e, 0) + 1
                if bound is not None:
                    lower = max(lower, required_m + bound)
                if optimal and extra_x is not None:
                    method = "exact: integer programme on the reduced graph"
                    exact = True

    walk = _euler(graph, counts, start_node)
    seen: set[int] = set()
    steps = []
    total = 0.0
    reqset = set(req)
    for e, fwd in walk:
        first = e in reqset and e not in seen
        seen.add(e)
        steps.append((e, fwd, first))
        total += float(graph.length[e])
    if exact:
        lower = total
    return PostmanResult(
        graph=graph,
        steps=steps,
        start_node=start_node,
        required_m=required_m,
        total_m=total,
        lower_bound_m=min(lower, total),
        exact=exact,
        components=len(comps),
        odd_nodes=len(odd_r),
        seconds=time.perf_counter() - t0,
        method=method,
        required_segments=[int(graph.seg_ids[e]) for e in req],
        unreachable_segments=[int(graph.seg_ids[e]) for e in unreachable],
    )


def _milp_rpp(
    graph: StreetGraph,
    req: list[int],
    comps: list[list[int]],
    extra_ub: float,
    seconds: float,
) -> tuple[list[int] | None, float, float | None, bool] | None:
    """Exact rural postman by integer programming (HiGHS via scipy) on the reduced graph.

    The classic reduction: any optimal walk, between two consecutive visits to junctions of
    the required streets, follows a shortest path. So the programme needs only those
    junctions (and the start), with one candidate "connector" per pair at shortest-path
    distance, dropping pairs that pass through a third junction (they are two shorter
    connectors) and pairs longer than the heuristic's whole connector length.

    Model: connector copies ``z_ij`` (0-2: some optimal walk never uses one more than twice)
    and ``y_v`` so every degree is even; minimise their length. Connectivity is added
    lazily (cutting planes): while the walked edges fall apart, each part must be crossed at
    least twice, and the programme is solved again. Each round's optimum is a lower bound;
    the first connected one is optimal.

    Returns (connector edge indices, their length, proven lower bound, optimal?) or None
    when there are too many junctions to try.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_matrix, csr_matrix
    from scipy.sparse.csgraph import connected_components

    deadline = time.perf_counter() + seconds
    nodes = np.array(sorted({n for c in comps for n in c}))
    k = len(nodes)
    if k > MILP_MAX_NODES:
        return None
    dist, pred = graph.dijkstra(nodes, limit=extra_ub + 1.0)
    d = dist[:, nodes]
    d = np.minimum(d, d.T)
    ii, jj = np.triu_indices(k, 1)
    dij = d[ii, jj]
    keep = np.isfinite(dij) & (dij <= extra_ub + 1e-6)
    # drop pairs whose shortest path passes through another junction of the set
    dom = np.zeros(len(ii), dtype=bool)
    for t in range(k):
        alt = d[ii, t] + d[t, jj]
        dom |= (alt <= dij + 1e-6) & (t != ii) & (t != jj)
    keep &= ~dom
    ii, jj, dij = ii[keep], jj[keep], dij[keep]
    m = len(ii)
    pos = {int(n): i for i, n in enumerate(nodes)}
    ru = np.array([pos[int(graph.u[e])] for e in req])
    rv = np.array([pos[int(graph.v[e])] for e in req])
    rdeg = np.bincount(ru, minlength=k) + np.bincount(rv, minlength=k)
    rdeg = rdeg.astype(float)
    ks = np.arange(m)
    nv = m + k
    par = coo_matrix(
        (
            np.concatenate([np.ones(m), np.ones(m), -2.0 * np.ones(k)]),
            (np.concatenate([ii, jj, np.arange(k)]), np.concatenate([ks, ks, m + np.arange(k)])),
        ),
        shape=(k, nv),
    ).tocsr()
    cut_sets: list[np.ndarray] = []
    for comp in comps:  # every piece is entered and left
        inside = np.zeros(k, dtype=bool)
        inside[[pos[n] for n in comp]] = True
        cut_sets.append(inside)
    c = np.concatenate([dij, np.zeros(k)])
    bounds = Bounds(np.zeros(nv), np.concatenate([np.full(m, 2.0), np.full(k, np.inf)]))
    integrality = np.ones(nv)
    best_bound: float | None = None
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            return None, float("inf"), best_bound, False
        rows = np.zeros((len(cut_sets), nv))
        for r, inside in enumerate(cut_sets):
            rows[r, :m] = inside[ii] != inside[jj]
        res = milp(
            c,
            constraints=[
                LinearConstraint(par, -rdeg, -rdeg),
                LinearConstraint(csr_matrix(rows), 2.0, np.inf),
            ],
            integrality=integrality,
            bounds=bounds,
            options={"time_limit": float(left), "mip_rel_gap": 1e-9, "presolve": True},
        )
        bound = res.fun if res.status == 0 else getattr(res, "mip_dual_bound", None)
        if bound is not None and np.isfinite(bound):
            best_bound = max(best_bound or 0.0, float(bound))
        if res.x is None or res.status != 0:
            return None, float("inf"), best_bound, False
        z = np.round(res.x[:m]).astype(int)
        used = z > 0
        support = coo_matrix(
            (
                np.ones(int(used.sum()) + len(req)),
                (np.concatenate([ii[used], ru]), np.concatenate([jj[used], rv])),
            ),
            shape=(k, k),
        )
        _n, label = connected_components(support, directed=False)
        parts = np.unique(label)
        if len(parts) == 1:
            out: list[int] = []
            for q in np.nonzero(used)[0]:
                a, b = int(ii[q]), int(jj[q])
                if np.isfinite(dist[a, nodes[b]]):
                    path = graph.path_edges(pred[a], int(nodes[b]))
                else:
                    path = graph.path_edges(pred[b], int(nodes[a]))
                out.extend(path * int(z[q]))
            obj = float(sum(graph.length[e] for e in out))
            return out, obj, best_bound, True
        for part in parts:
            cut_sets.append(label == part)


def _lower_matching(graph: StreetGraph, odd: list[int], dense_limit: int) -> float:
    """A valid lower bound on the cost of fixing the odd junctions ``odd``.

    Any closed walk covering the required edges adds a set of edges that makes their odd
    degrees even (a T-join), which costs at least a minimum perfect matching of ``odd`` on
    shortest paths. Up to ``dense_limit`` junctions that matching is solved exactly on the
    complete graph; above it we use the cheaper bound "half the distance from each junction
    to its nearest other odd junction, summed" (every junction is paired with someone).
    """
    if not odd:
        return 0.0
    dist, _pred = graph.dijkstra(odd)
    sub = dist[:, odd]
    sub = np.minimum(sub, sub.T)
    if len(odd) > dense_limit:
        masked = sub + np.diag(np.full(len(odd), np.inf))
        return float(masked.min(axis=1).sum() / 2.0)
    pairs, _dense = min_weight_perfect_matching(sub, dense_limit=dense_limit)
    return float(sum(sub[i, j] for i, j in pairs))


# ---------------------------------------------------------------------------- chiefs


def chief_segments(session: Session, staff_id: int, day: dt.date | None = None) -> list[int]:
    """Segment ids a chief holds on ``day`` (role alley_chief), via the assignments service."""
    from mapsvc.services.assignments import holders

    q = holders("alley_chief", "segment", day).subquery()
    return list(
        session.scalars(
            sa.select(q.c.target_id).where(q.c.staff_id == staff_id).order_by(q.c.target_id)
        )
    )


def chiefs(session: Session, grid_code: str | None = None, day: dt.date | None = None) -> list:
    """(staff id, name, segment count) of chiefs holding segments (those crossing a grid)."""
    from mapsvc.services.assignments import holders

    q = holders("alley_chief", "segment", day).subquery()
    sql = sa.select(q.c.staff_id, sa.func.count()).group_by(q.c.staff_id).order_by(q.c.staff_id)
    if grid_code is not None:
        gid = session.scalar(sa.text("SELECT id FROM grid WHERE code = :c"), {"c": grid_code})
        if gid is None:
            raise NotFound(f"grid {grid_code!r} does not exist", field="grid")
        sql = sql.where(
            q.c.target_id.in_(
                sa.text(
                    "SELECT s.id FROM alley_segment s JOIN grid g ON ST_Intersects(s.geom, g.geom) "
                    "WHERE g.id = :gid"
                ).bindparams(gid=gid)
            )
        )
    from mapsvc.models import Staff

    rows = session.execute(sql).all()
    names = dict(
        session.execute(
            sa.select(Staff.id, Staff.name).where(Staff.id.in_([r[0] for r in rows]))
        ).all()
    )
    return [(r[0], names.get(r[0]), r[1]) for r in rows]


def route_for_chief(
    session: Session,
    staff_id: int,
    graph: StreetGraph | None = None,
    start: tuple[float, float] | None = None,
    day: dt.date | None = None,
) -> PostmanResult:
    """The patrol route of one chief (builds the network graph unless given one)."""
    from mapsvc.models import Staff

    if session.get(Staff, staff_id) is None:
        raise NotFound(f"staff {staff_id} does not exist", field="chief")
    segs = chief_segments(session, staff_id, day)
    if not segs:
        raise ValidationError(f"staff {staff_id} holds no alley segments as chief", field="chief")
    graph = graph or graph_for(session)
    return solve(graph, segs, start=start)


_GRAPH_CACHE: dict[str, tuple[tuple, StreetGraph]] = {}


def graph_for(session: Session) -> StreetGraph:
    """The network graph of the session's database, rebuilt only when segments changed.

    The cache key is a cheap signature (count, max id, total length) so a re-import or an
    edit of ``alley_segment`` is picked up on the next call.
    """
    bind = session.get_bind()
    key = bind.url.render_as_string(hide_password=True)
    sig = tuple(
        session.execute(
            sa.text("SELECT count(*), max(id), round(sum(length_m)::numeric, 3) FROM alley_segment")
        ).one()
    )
    hit = _GRAPH_CACHE.get(key)
    if hit is not None and hit[0] == sig:
        return hit[1]
    graph = StreetGraph.load(session)
    _GRAPH_CACHE[key] = (sig, graph)
    return graph
