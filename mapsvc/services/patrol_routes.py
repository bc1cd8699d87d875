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

The odd junctions are fixed by a minimum T-join: the cheapest set of streets whose
walking makes every junction even. Its cost equals a minimum perfect matching of the odd
junctions on shortest-path distances, and pymatching's sparse blossom solves exactly that
problem on the street graph itself, without the all-pairs distances a complete matching
needs. Dead-end trees are settled before it (their part is forced). A chief's beat takes
about 0.1-0.2 ms end to end and the whole Shenzhen extract's 1,314 odd junctions about
10 ms (rustworkx's blossom on the complete graph takes 20 s there; bench/bench_postman.py
compares with pgr_chinesePostman). The matcher is built once per street graph and reused
for every chief.

The graph is built once from *all* segments of ``alley_segment`` (OSM imports and the demo
alike): nodes are segment endpoints snapped together within ``snap_m`` metres (in the local
UTM zone), edge weights the generated geodesic ``length_m``. No Flask here.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from mapsvc.config import Settings
from mapsvc.core.errors import NotFound, ValidationError

if TYPE_CHECKING:
    import pymatching
    from scipy.sparse import csr_matrix

#: endpoints closer than this (metres) are the same junction
SNAP_M = 0.5
#: time budget (s) of the exact integer programme for required sets in several pieces
MILP_SECONDS = 10.0
#: skip the integer programme when the required set has more junctions than this
MILP_MAX_NODES = 400
OSM_CREDIT = "© OpenStreetMap contributors"


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
    _csr: csr_matrix | None = None
    _best: dict | None = None
    _labels: np.ndarray | None = None
    _matcher: pymatching.Matching | None = None
    _forest: tuple[list[int], list[int], list[int]] | None = None
    _ends: tuple[list[int], list[int]] | None = None

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
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components
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
        # snap endpoints within snap_m: a junction is a connected piece of the graph of
        # close pairs (scipy labels pieces in the order of their first endpoint, which
        # then stands for the junction)
        pairs = cKDTree(xy).query_pairs(snap_m, output_type="ndarray")
        close = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(2 * n,) * 2)
        _k, node_of = connected_components(close, directed=False)
        _labels, first = np.unique(node_of, return_index=True)
        node_lonlat = ends[first]
        node_xy = xy[first]
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

    def ends(self) -> tuple[list[int], list[int]]:
        """(u, v) as plain lists: per-edge loops over a beat run 5x faster than on numpy."""
        if self._ends is None:
            self._ends = (self.u.tolist(), self.v.tolist())
        return self._ends

    def csr(self) -> csr_matrix:
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

    def dijkstra(
        self, sources: list[int] | np.ndarray, min_only: bool = False, limit: float = np.inf
    ) -> tuple[np.ndarray, ...]:
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

    def dead_ends(self) -> tuple[list[int], list[int], list[int]]:
        """The dead-end trees hanging off the network, found once per graph.

        Repeatedly removing junctions with a single street (dead ends, then what becomes a
        dead end) leaves the network's core. Returns per junction the removal rank (-1 for
        core junctions), the neighbour it hung from and the edge to it. A rank is always
        smaller than its parent's, so parities can be pushed leaf-first towards the core.
        """
        if self._forest is None:
            self.csr()
            n = self.n_nodes
            nbrs: list[dict[int, int]] = [{} for _ in range(n)]
            for (a, b), e in self._best.items():
                nbrs[a][b] = e
                nbrs[b][a] = e
            rank = np.full(n, -1, dtype=np.int64)
            parent = np.full(n, -1, dtype=np.int64)
            edge = np.full(n, -1, dtype=np.int64)
            stack = [x for x in range(n) if len(nbrs[x]) == 1]
            r = 0
            while stack:
                x = stack.pop()
                if len(nbrs[x]) != 1:
                    continue
                ((y, e),) = nbrs[x].items()
                rank[x], parent[x], edge[x] = r, y, e
                r += 1
                del nbrs[y][x]
                nbrs[x].clear()
                if len(nbrs[y]) == 1:
                    stack.append(y)
            self._forest = (rank.tolist(), parent.tolist(), edge.tolist())
        return self._forest

    def matcher(self) -> pymatching.Matching:
        """pymatching's matcher over the network's core (built once, reused for every chief).

        One matching edge per junction pair (the shortest parallel segment), weighted by
        its geodesic length in metres; pymatching keeps 2**24 weight levels, so rounding
        stays below a millimetre per street. Dead-end trees are left out: their part of a
        T-join is forced (see :meth:`t_join`), and without them sparse blossom runs 40
        times faster on a whole district.
        """
        if self._matcher is None:
            import pymatching
            from scipy.sparse import csc_matrix

            rank = self.dead_ends()[0]
            core = [(ab, e) for ab, e in self._best.items() if rank[ab[0]] < 0 and rank[ab[1]] < 0]
            m = len(core)
            pairs = np.array([ab for ab, _e in core], dtype=np.int64).reshape(m, 2)
            edges = np.array([e for _ab, e in core], dtype=np.int64)
            incidence = csc_matrix(
                (np.ones(2 * m, dtype=np.uint8), (pairs.ravel(), np.repeat(np.arange(m), 2))),
                shape=(self.n_nodes, m),
            )
            self._matcher = pymatching.Matching.from_check_matrix(
                incidence, weights=self.length[edges] if m else 1.0
            )
        return self._matcher

    def t_join(self, terminals: list[int]) -> tuple[list[int], float]:
        """Minimum T-join of ``terminals``: (edge indices, total metres).

        The cheapest set of streets whose walking flips exactly the ``terminals`` to even
        degree. With non-negative lengths it costs the same as a minimum perfect matching
        of the terminals on shortest-path distances, which is what the postman needs.

        On a dead-end tree the choice is forced: the street from a junction to its parent
        is in every T-join exactly when an odd number of terminals lie beyond it. Those
        streets are taken leaf-first; the remaining terminals, all on the core, go to
        pymatching's sparse blossom.
        """
        import heapq

        if not len(terminals):
            return [], 0.0
        rank, parent, edge = self.dead_ends()
        odd = set()
        heap: list[tuple[int, int]] = []
        for t in terminals:
            t = int(t)
            odd ^= {t}
            if rank[t] >= 0:
                heap.append((rank[t], t))
        heapq.heapify(heap)
        edges: list[int] = []
        done: set[int] = set()
        while heap:
            _r, x = heapq.heappop(heap)
            if x in done:
                continue
            done.add(x)
            if x in odd:
                odd.discard(x)
                edges.append(edge[x])
                y = parent[x]
                odd ^= {y}
                if rank[y] >= 0 and y not in done:
                    heapq.heappush(heap, (rank[y], y))
        if odd:
            syndrome = np.zeros(self.n_nodes, dtype=np.uint8)
            syndrome[list(odd)] = 1
            if self.matcher().num_edges == 0:
                raise ValidationError(
                    "some junctions to pair cannot reach each other on the streets"
                )
            try:
                pairs = self.matcher().decode_to_edges_array(syndrome)
            except ValueError as exc:  # an odd number of terminals on some connected part
                raise ValidationError(
                    "some junctions to pair cannot reach each other on the streets"
                ) from exc
            best = self._best
            edges.extend(best[(a, b) if a < b else (b, a)] for a, b in pairs.tolist())
        return edges, float(self.length[edges].sum()) if edges else 0.0


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

    def to_gpx(
        self,
        name: str,
        speed_kmh: float,
        start_time: dt.datetime | None = None,
        settings: Settings | None = None,
    ) -> str:
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
        settings = settings or Settings()
        t0 = start_time or dt.datetime.combine(settings.today(), dt.time(8, 0), settings.tz)
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
    """Connected pieces of the junctions of ``edges`` (plus ``extra_nodes``), sorted lists.

    The solver's one union-find. A chief's few dozen streets take this dict union-find
    (tens of microseconds); thousands go to scipy, whose fixed cost of ~0.1 ms is then
    far below the Python loop's. scipy's ``DisjointSet`` (and networkx's ``UnionFind``)
    give the same pieces but took 3-5 times as long as the loop below on a beat, which
    would make every route slower: the loop is kept for the small case on purpose.
    """
    if len(edges) > 300:
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        eu, ev = graph.u[edges], graph.v[edges]
        nodes = np.unique(np.concatenate([eu, ev, np.asarray(extra_nodes, dtype=np.int64)]))
        k = len(nodes)
        ij = (np.searchsorted(nodes, eu), np.searchsorted(nodes, ev))
        _n, label = connected_components(coo_matrix((np.ones(len(eu)), ij), shape=(k, k)))
        order = np.argsort(label, kind="stable")
        groups = np.split(nodes[order], np.flatnonzero(np.diff(label[order])) + 1)
        return sorted((g.tolist() for g in groups), key=lambda c: c[0])
    ul, vl = graph.ends()
    parent = {n: n for n in extra_nodes}
    for e in edges:
        a, b = ul[e], vl[e]
        parent.setdefault(a, a)
        parent.setdefault(b, b)
        while parent[a] != a:  # find with path halving
            parent[a] = a = parent[parent[a]]
        while parent[b] != b:
            parent[b] = b = parent[parent[b]]
        if a != b:
            parent[b] = a
    groups_d: dict[int, list[int]] = {}
    for n in sorted(parent):
        r = n
        while parent[r] != r:
            r = parent[r]
        groups_d.setdefault(r, []).append(n)
    return sorted(groups_d.values(), key=lambda c: c[0])


def _odd(graph: StreetGraph, counts: dict[int, int]) -> list[int]:
    """Junctions of odd degree in the multigraph ``counts`` (edge index -> copies)."""
    ul, vl = graph.ends()
    odd: set[int] = set()
    for e, c in counts.items():
        if c % 2:
            odd ^= {ul[e]}
            odd ^= {vl[e]}
    return sorted(odd)


def _connected(graph: StreetGraph, counts: dict[int, int], important: set[int]) -> bool:
    """Whether the ``important`` junctions lie in one piece of the walked edges."""
    walked = [e for e, c in counts.items() if c]
    pieces = _components(graph, walked, sorted(important))
    return sum(1 for p in pieces if not important.isdisjoint(p)) <= 1


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


def _euler(graph: StreetGraph, counts: dict[int, int], start: int) -> tuple[np.ndarray, np.ndarray]:
    """Hierholzer's algorithm on the multigraph ``counts``: (edges, forward?) from ``start``.

    Plain lists and a greedy inner loop (follow unused streets until stuck, then back up)
    keep it under a microsecond per street walked.
    """
    ul, vl = graph.ends()
    adj: dict[int, list[tuple[int, int]]] = {}
    inst: list[int] = []  # instance -> edge
    for e, c in counts.items():
        a, b = ul[e], vl[e]
        for _ in range(c):
            k = len(inst)
            inst.append(e)
            adj.setdefault(a, []).append((b, k))
            adj.setdefault(b, []).append((a, k))
    used = bytearray(len(inst))
    node_stack = [start]
    inst_stack = [-1]
    out_k: list[int] = []
    out_from: list[int] = []
    while node_stack:
        nbrs = adj.get(node_stack[-1])
        while nbrs:
            y, k = nbrs.pop()
            if used[k]:
                continue
            used[k] = 1
            node_stack.append(y)
            inst_stack.append(k)
            nbrs = adj[y]
        node_stack.pop()
        k = inst_stack.pop()
        if k >= 0:
            out_k.append(k)
            out_from.append(node_stack[-1])
    if len(out_k) != len(inst):  # pragma: no cover - guarded by construction
        raise ValidationError("internal error: the walk is not connected")
    out_k.reverse()
    out_from.reverse()
    walk_e = np.array(inst, dtype=np.int64)[out_k]
    return walk_e, graph.u[walk_e] == np.array(out_from, dtype=np.int64)


def solve(
    graph: StreetGraph,
    required_segment_ids: list[int],
    start: tuple[float, float] | int | None = None,
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
    milp_seconds : float
        Time budget of the exact integer programme for sets in several pieces (0: skip it
        and keep the heuristic with its combinatorial lower bound).
    """
    t0 = time.perf_counter()
    edge_of = graph.edge_of
    req_a = np.unique(
        np.fromiter((edge_of.get(s, -1) for s in required_segment_ids), dtype=np.int64)
    )
    if len(req_a) and req_a[0] < 0:
        missing = [s for s in required_segment_ids if s not in edge_of]
        raise NotFound(f"segments not in the street network: {missing[:10]}", field="segments")
    if not len(req_a):
        raise ValidationError("no segments to patrol: the chief has no assigned segments")
    labels = graph.component_labels()
    req_lab = labels[graph.u[req_a]]
    if start is None:
        # on the connected part of the network holding most of the chief's streets (ties:
        # the lowest label), from its lowest-id segment
        share = np.bincount(req_lab, weights=graph.length[req_a])
        on_main = req_a[req_lab == int(np.argmax(share))]
        start_node = int(graph.u[on_main[np.argmin(graph.seg_ids[on_main])]])
    elif isinstance(start, (int, np.integer)):
        start_node = int(start)
    else:
        start_node, _d = graph.nearest_node(float(start[0]), float(start[1]))
    # streets on another connected part of the network cannot be in the same walk
    reach = req_lab == labels[start_node]
    unreachable = req_a[~reach].tolist()
    req = req_a[reach].tolist()
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

    if len(comps) == 1:
        extra, cost = graph.t_join(odd_r)
        for e in extra:
            counts[e] = counts.get(e, 0) + 1
        exact = True
        lower = required_m + cost
        method = "exact: minimum T-join (sparse blossom)"
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
        extra, _cost = graph.t_join(odd)
        for e in extra:
            counts[e] = counts.get(e, 0) + 1
        _cleanup(graph, counts, set(req), {n for c in comps for n in c})
        # any closed walk over the required streets contains a T-join of their odd junctions
        lb_match = graph.t_join(odd_r)[1]
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

    walk_e, forward = _euler(graph, counts, start_node)
    total = float(graph.length[walk_e].sum())
    # a required segment's first walk is the one to patrol; later ones are connectors
    first = np.zeros(len(walk_e), dtype=bool)
    if len(walk_e):
        _u, at = np.unique(walk_e, return_index=True)
        first[at] = True
        first &= np.isin(walk_e, req_a[reach])
    steps = list(zip(walk_e.tolist(), forward.tolist(), first.tolist(), strict=True))
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
        required_segments=graph.seg_ids[req].tolist(),
        unreachable_segments=graph.seg_ids[unreachable].tolist(),
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
        gid = session.scalar(
            sa.text("SELECT id FROM grid WHERE code = :c AND valid_to IS NULL"), {"c": grid_code}
        )
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
