"""Automatic grids: a community's small units (blocks) split into contiguous, compact grids,
each within a household range.

The method, in three steps:

1. **Graph.** Units are adjacent where they share a border (its length in metres is the
   edge's weight); a shared border along a major street a planner marks as a preferred
   cut weighs less, so grids tend to end there. Units a planner keeps whole (an estate, a
   school) are contracted into one node first.
2. **Seed.** GerryChain's ``recursive_tree_part`` (random spanning trees, cut where both
   sides are balanced) gives a contiguous start. It often finds no cut within tight
   bounds, so it is asked for the bounds' slack and retried; when it still fails the seed
   is grown region by region from far-apart units. With ``current`` the current grids
   are the seed.
3. **Local search** (our own step; ``bench/bench_partition.py`` shows what it adds):
   boundary units move to a neighbouring grid, never breaking contiguity (a unit is moved
   only when it is not an articulation point of its grid), first to bring every grid
   within bounds, then to shorten the borders between grids (which raises Polsby-Popper
   compactness), with a cost per household moved away from its current grid when
   ``current`` is given.

Pure computation: shapely, networkx, pyproj; no database (:mod:`mapsvc.services.plans`
stores the result as a plan).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from mapsvc.core.errors import ValidationError
from mapsvc.core.progress import Progress, no_progress

#: metres two units' borders may be apart and still count as shared
TOUCH_M = 0.05
#: the weight of a shared border that lies along a preferred cut (a major street)
PREFERRED_CUT_WEIGHT = 0.2


@dataclass(frozen=True)
class Unit:
    """A block or building group: the smallest piece a grid is made of."""

    id: str
    geom: BaseGeometry
    households: int
    population: int = 0
    group: str | None = None


@dataclass(frozen=True)
class PartitionResult:
    """Each unit's grid (0..k-1) and the grids' figures."""

    assignment: dict[str, int]
    households: list[int]
    polsby_popper: list[float]
    cut_edges: int
    moved_share: float | None
    seconds: float


def _metric(units: list[Unit], crs: str) -> list[BaseGeometry]:
    """The units' geometries in metres (their UTM zone when given in lon/lat)."""
    from pyproj import CRS, Transformer

    geoms = [u.geom for u in units]
    source = CRS.from_user_input(crs)
    if not source.is_geographic:
        return geoms
    from mapsvc.services.geo import utm_epsg

    c = shapely.union_all([g.envelope for g in geoms]).centroid
    t = Transformer.from_crs(source, utm_epsg(c.x, c.y), always_xy=True)

    def fn(xy: np.ndarray) -> np.ndarray:
        x, y = t.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return [shapely.transform(g, fn) for g in geoms]


def unit_graph(
    units: list[Unit],
    *,
    crs: str = "EPSG:4326",
    preferred_cuts: Iterable[BaseGeometry] | None = None,
) -> nx.Graph:
    """The adjacency of units: an edge where two share a border (not just a point), with
    ``length`` (metres) and ``weight`` (the length, less along preferred cuts)."""
    metric = _metric(units, crs)
    graph = nx.Graph()
    for u, g in zip(units, metric, strict=True):
        graph.add_node(
            u.id,
            households=int(u.households),
            population=int(u.population),
            area=g.area,
            perimeter=g.length,
            x=g.centroid.x,
            y=g.centroid.y,
            group=u.group,
        )
    grown = shapely.buffer(np.array(metric, dtype=object), TOUCH_M)
    tree = shapely.STRtree(grown)
    left, right = tree.query(grown, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    if len(left):
        # the strip where both grown units meet is 2 x TOUCH_M wide along a shared border
        shared = shapely.area(shapely.intersection(grown[left], grown[right])) / (2 * TOUCH_M)
    else:
        shared = np.array([])
    cuts = None
    if preferred_cuts:
        cuts_m = _metric([Unit("", c, 0) for c in preferred_cuts], crs)
        cuts = shapely.buffer(shapely.union_all(cuts_m), 5.0)
    for i, j, length in zip(left, right, shared, strict=True):
        if length < 0.5:  # a corner, or a hair
            continue
        weight = float(length)
        if cuts is not None:
            border = metric[i].boundary.intersection(metric[j].buffer(TOUCH_M))
            if border.length > 0 and cuts.intersection(border).length >= 0.5 * border.length:
                weight *= PREFERRED_CUT_WEIGHT
        graph.add_edge(units[i].id, units[j].id, length=float(length), weight=weight)
    return graph


def polsby_popper(geom_metric: BaseGeometry) -> float:
    """4πA/P² of a geometry in metres."""
    return 4 * math.pi * geom_metric.area / geom_metric.length**2 if geom_metric.length else 0.0


# --------------------------------------------------------------------------- the method


def _contract(graph: nx.Graph) -> tuple[nx.Graph, dict[Hashable, list[str]]]:
    """Units of one keep-whole group as one node (the group's units must be connected)."""
    members: dict[Hashable, list[str]] = {}
    for n, data in graph.nodes(data=True):
        key = ("group", data["group"]) if data.get("group") else n
        members.setdefault(key, []).append(n)
    g = nx.Graph()
    of = {u: key for key, us in members.items() for u in us}
    for key, us in members.items():
        inner = sum(data["length"] for a, b, data in graph.subgraph(us).edges(data=True))
        g.add_node(
            key,
            households=sum(graph.nodes[u]["households"] for u in us),
            population=sum(graph.nodes[u]["population"] for u in us),
            area=sum(graph.nodes[u]["area"] for u in us),
            perimeter=sum(graph.nodes[u]["perimeter"] for u in us) - 2 * inner,
            x=float(np.mean([graph.nodes[u]["x"] for u in us])),
            y=float(np.mean([graph.nodes[u]["y"] for u in us])),
        )
    for a, b, data in graph.edges(data=True):
        ka, kb = of[a], of[b]
        if ka == kb:
            continue
        if g.has_edge(ka, kb):
            g[ka][kb]["weight"] += data["weight"]
            g[ka][kb]["length"] += data["length"]
        else:
            g.add_edge(ka, kb, weight=data["weight"], length=data["length"])
    return g, members


def choose_count(total: int, low: int, high: int, community: str = "") -> int:
    """The number of grids that can each hold ``low..high`` of ``total`` households,
    nearest to the middle of the range; a :class:`ValidationError` when none can."""
    fewest, most = math.ceil(total / high), math.floor(total / low) if low > 0 else total
    if fewest > most or total == 0:
        raise ValidationError(
            f"community {community}: {total:,} households cannot be split into grids of "
            f"{low}-{high} each (it would take at least {fewest} grids of at most {high}, "
            f"but {most} grids of at least {low} hold only {most * low:,})",
            field="grids",
        )
    return min(max(round(total / ((low + high) / 2)), fewest), most)


def _seed_tree(
    g: nx.Graph, k: int, low: int, high: int, rng: random.Random, attempts: int = 3
) -> dict[Hashable, int] | None:
    """GerryChain's recursive spanning-tree cut, or None when it finds no balanced cut."""
    import warnings
    from functools import partial

    from gerrychain import Graph
    from gerrychain.partition.initial_partition_generators import recursive_tree_part
    from gerrychain.tree import bipartition_tree

    total = sum(d["households"] for _, d in g.nodes(data=True))
    ideal = total / k
    epsilon = max(0.02, min((high - ideal) / ideal, (ideal - low) / ideal))
    graph = Graph.from_networkx(g)
    for _ in range(attempts):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                parts = recursive_tree_part(
                    graph,
                    range(k),
                    ideal,
                    "households",
                    epsilon,
                    bipartition_tree_fn=partial(bipartition_tree, max_attempts=500),
                    rng=rng.randrange(2**31),
                )
            return {n: int(p) for n, p in parts.items()}
        except Exception:  # noqa: BLE001 - GerryChain raises RuntimeError and its own kinds
            continue
    return None


def _seed_grow(g: nx.Graph, k: int, rng: random.Random) -> dict[Hashable, int]:
    """Regions grown together from ``k`` far-apart nodes, the lightest region first."""
    nodes = list(g.nodes)
    first = rng.choice(nodes)
    seeds = [first]
    dist = nx.single_source_shortest_path_length(g, first)
    while len(seeds) < k:
        far = max(nodes, key=lambda n: (dist.get(n, 0), str(n)))
        seeds.append(far)
        for n, d in nx.single_source_shortest_path_length(g, far).items():
            dist[n] = min(dist.get(n, d), d)
    assign = {s: i for i, s in enumerate(seeds)}
    load = [g.nodes[s]["households"] for s in seeds]
    frontier = [set(g[s]) - set(assign) for s in seeds]
    while len(assign) < len(nodes):
        order = sorted(range(k), key=lambda i: load[i])
        for i in order:
            frontier[i] = {n for n in frontier[i] if n not in assign}
            if frontier[i]:
                n = max(
                    frontier[i], key=lambda n: (sum(1 for m in g[n] if assign.get(m) == i), str(n))
                )
                assign[n] = i
                load[i] += g.nodes[n]["households"]
                frontier[i] |= set(g[n]) - set(assign)
                break
        else:  # nodes no region can reach: the graph is in pieces (checked before)
            break
    return assign


def _seed_kmeans(g: nx.Graph, k: int, rng: random.Random) -> dict[Hashable, int]:
    """Compact regions: household-weighted k-means of the units' centres, each region then
    made contiguous (stray pieces join the neighbour they share most border with)."""
    nodes = list(g.nodes)
    xy = np.array([[g.nodes[n]["x"], g.nodes[n]["y"]] for n in nodes])
    w = np.array([g.nodes[n]["households"] + 1.0 for n in nodes])
    gen = np.random.default_rng(rng.randrange(2**31))
    centres = [xy[gen.choice(len(nodes), p=w / w.sum())]]
    for _ in range(1, k):
        d2 = np.min([((xy - c) ** 2).sum(axis=1) for c in centres], axis=0) * w
        centres.append(xy[gen.choice(len(nodes), p=d2 / d2.sum())])
    c = np.array(centres)
    # balanced k-means: each centre's distances carry an offset, raised while the centre
    # holds more than its share of households and lowered while it holds less (a power
    # diagram), and the centres move to their regions' weighted means
    offset = np.zeros(k)
    ideal = w.sum() / k
    spread = float(((xy - xy.mean(axis=0)) ** 2).sum(axis=1).mean()) / k
    for it in range(40):
        d2 = ((xy[:, None, :] - c[None, :, :]) ** 2).sum(axis=2) + offset[None, :]
        label = np.argmin(d2, axis=1)
        load = np.bincount(label, weights=w, minlength=k)
        offset += 0.05 * spread * np.clip((load - ideal) / ideal, -1, 1)
        if it % 4 == 3:
            for i in range(k):
                inside = label == i
                if inside.any():
                    c[i] = (xy[inside] * w[inside, None]).sum(axis=0) / w[inside].sum()
    assign = {n: int(label[i]) for i, n in enumerate(nodes)}
    for _ in range(k * 3):
        stray = []
        for i in range(k):
            members = [n for n in nodes if assign[n] == i]
            if not members:
                continue
            parts = sorted(nx.connected_components(g.subgraph(members)), key=len, reverse=True)
            for part in parts[1:]:
                stray.extend(part)
        if not stray:
            break
        for n in stray:
            shared: dict[int, float] = {}
            for m, data in g[n].items():
                if assign[m] != assign[n]:
                    shared[assign[m]] = shared.get(assign[m], 0.0) + data["length"]
            if shared:
                assign[n] = max(shared, key=shared.get)
    return assign


class _Search:
    """The local search over one assignment (see the module's note, step 3)."""

    def __init__(
        self,
        g: nx.Graph,
        assign: dict[Hashable, int],
        k: int,
        low: int,
        high: int,
        fixed: set[Hashable],
        current: dict[Hashable, int] | None,
        move_cost: float,
        rng: random.Random,
    ) -> None:
        self.g, self.assign, self.k, self.low, self.high = g, assign, k, low, high
        self.fixed, self.current, self.move_cost, self.rng = fixed, current, move_cost, rng
        self.hh = {n: g.nodes[n]["households"] for n in g}
        self.load = [0] * k
        self.area = [0.0] * k
        self.perimeter = [0.0] * k
        self.members: list[set[Hashable]] = [set() for _ in range(k)]
        for n, d in assign.items():
            self.load[d] += self.hh[n]
            self.members[d].add(n)
            self.area[d] += g.nodes[n]["area"]
            self.perimeter[d] += g.nodes[n]["perimeter"]
        for a, b, data in g.edges(data=True):
            if assign[a] == assign[b]:
                self.perimeter[assign[a]] -= 2 * data["length"]
        self.ideal = sum(self.load) / k
        self.scale = sum(self.perimeter) / k
        self._cut_points: dict[int, set[Hashable]] = {}

    def violation(self, load: int) -> int:
        return max(0, load - self.high) + max(0, self.low - load)

    def score(self) -> float:
        """The grids' mean Polsby-Popper (from the tracked areas and perimeters)."""
        return sum(self._pp(a, p) for a, p in zip(self.area, self.perimeter, strict=True)) / self.k

    def cut_points(self, d: int) -> set[Hashable]:
        if d not in self._cut_points:
            sub = self.g.subgraph(self.members[d])
            self._cut_points[d] = set(nx.articulation_points(sub))
        return self._cut_points[d]

    def movable(self, n: Hashable) -> bool:
        d = self.assign[n]
        return n not in self.fixed and len(self.members[d]) > 1 and n not in self.cut_points(d)

    def _shared(self, n: Hashable, d: int, to: int) -> tuple[float, float, float, float]:
        l_from = l_to = w_from = w_to = 0.0
        for m, data in self.g[n].items():
            if self.assign[m] == d and m != n:
                l_from += data["length"]
                w_from += data["weight"]
            elif self.assign[m] == to:
                l_to += data["length"]
                w_to += data["weight"]
        return l_from, l_to, w_from, w_to

    @staticmethod
    def _pp(area: float, perimeter: float) -> float:
        return 4 * math.pi * area / perimeter**2 if perimeter > 0 else 0.0

    def gain(self, n: Hashable, to: int) -> float:
        """What moving ``n`` to grid ``to`` adds to the grids' summed Polsby-Popper, plus a
        small share for shorter (weighted) borders, less the cost of moved households."""
        d = self.assign[n]
        l_from, l_to, w_from, w_to = self._shared(n, d, to)
        a, p = self.g.nodes[n]["area"], self.g.nodes[n]["perimeter"]
        before = self._pp(self.area[d], self.perimeter[d]) + self._pp(
            self.area[to], self.perimeter[to]
        )
        after = self._pp(self.area[d] - a, self.perimeter[d] - p + 2 * l_from) + self._pp(
            self.area[to] + a, self.perimeter[to] + p - 2 * l_to
        )
        gain = after - before + 0.25 * (w_to - w_from) / self.scale
        if self.current is not None and n in self.current:
            was = self.current[n]
            gain -= self.move_cost * self.hh[n] / self.ideal * ((to != was) - (d != was))
        return gain

    def move(self, n: Hashable, to: int) -> None:
        d = self.assign[n]
        l_from, l_to, _w_from, _w_to = self._shared(n, d, to)
        a, p = self.g.nodes[n]["area"], self.g.nodes[n]["perimeter"]
        self.area[d] -= a
        self.area[to] += a
        self.perimeter[d] += 2 * l_from - p
        self.perimeter[to] += p - 2 * l_to
        self.assign[n] = to
        self.load[d] -= self.hh[n]
        self.load[to] += self.hh[n]
        self.members[d].discard(n)
        self.members[to].add(n)
        self._cut_points.pop(d, None)
        self._cut_points.pop(to, None)

    def boundary(self) -> list[tuple[Hashable, int]]:
        out = []
        for n, d in self.assign.items():
            for m in self.g[n]:
                t = self.assign[m]
                if t != d:
                    out.append((n, t))
        return out

    def _repairs(self) -> list[tuple[Hashable, int]]:
        """Moves out of and into the grids outside their bounds."""
        out = []
        for d, x in enumerate(self.load):
            if not self.violation(x):
                continue
            for n in self.members[d]:
                for m in self.g[n]:
                    t = self.assign[m]
                    if t != d:
                        out.append((n, t))
                        out.append((m, d))
        return out

    def balance(self, rounds: int) -> None:
        """Moves that lower the total bound violation (ties: the most compact). Where no
        move lowers it, a move that keeps it (a walk along the plateau, never moving a
        unit moved in the last few steps) lets the next one through."""
        recent: list[Hashable] = []
        for _ in range(rounds):
            if all(self.violation(x) == 0 for x in self.load):
                return
            best, best_key, level = None, None, []
            for n, t in self._repairs():
                d = self.assign[n]
                if d == t or n in recent:
                    continue
                before = self.violation(self.load[d]) + self.violation(self.load[t])
                after = self.violation(self.load[d] - self.hh[n]) + self.violation(
                    self.load[t] + self.hh[n]
                )
                if after > before or not self.movable(n):
                    continue
                if after == before:
                    level.append((n, t))
                    continue
                key = (after - before, -self.gain(n, t))
                if best_key is None or key < best_key:
                    best, best_key = (n, t), key
            if best is None and level:
                best = self.rng.choice(level)
            if best is None:
                return
            self.move(*best)
            recent = (recent + [best[0]])[-12:]

    def anneal(self, steps: int, deadline: float, t0: float = 0.01) -> dict[Hashable, int]:
        """Simulated annealing over boundary moves within bounds (contiguity kept): worse
        moves are taken with a chance that falls as it cools, so the search leaves the
        local optima the greedy moves stop in. Returns the best assignment seen."""
        best, best_score = dict(self.assign), self.score()
        candidates = self.boundary()
        for step in range(steps):
            if step % 200 == 0:
                if time.perf_counter() > deadline:
                    break
                candidates = self.boundary()
            if not candidates:
                break
            n, t = candidates[self.rng.randrange(len(candidates))]
            d = self.assign[n]
            if d == t or not any(self.assign[m] == t for m in self.g[n]):
                continue
            h = self.hh[n]
            if not (self.low <= self.load[d] - h and self.load[t] + h <= self.high):
                continue
            if not self.movable(n):
                continue
            gain = self.gain(n, t)
            temperature = t0 * (1 - step / steps) + 1e-9
            if gain > 0 or self.rng.random() < math.exp(gain / temperature):
                self.move(n, t)
                if step % 20 == 0 or gain > 0:
                    score = self.score()
                    if score > best_score + 1e-9:
                        best, best_score = dict(self.assign), score
        if self.score() > best_score:
            best = dict(self.assign)
        return best

    def compact(self, passes: int, deadline: float) -> None:
        """Moves within bounds that shorten the borders between grids."""
        for _ in range(passes):
            moved = 0
            candidates = self.boundary()
            self.rng.shuffle(candidates)
            for n, t in candidates:
                if time.perf_counter() > deadline:
                    return
                d = self.assign[n]
                if d == t or self.assign.get(n) != d:
                    continue
                h = self.hh[n]
                if not (self.low <= self.load[d] - h and self.load[t] + h <= self.high):
                    continue
                if self.gain(n, t) <= 1e-9 or not self.movable(n):
                    continue
                self.move(n, t)
                moved += 1
            if not moved:
                return


def partition(
    units: list[Unit],
    *,
    grids: int | None = None,
    min_households: int = 300,
    max_households: int = 500,
    locked: dict[str, int] | None = None,
    current: dict[str, int] | None = None,
    seed: int = 0,
    crs: str = "EPSG:4326",
    preferred_cuts: list[BaseGeometry] | None = None,
    community: str = "",
    progress: Progress = no_progress,
    move_cost: float = 2.0,
    time_limit_s: float = 30.0,
    restarts: int | None = None,
    restart_budget_s: float = 6.0,
    graph: nx.Graph | None = None,
) -> PartitionResult:
    """Split ``units`` into contiguous grids within ``[min_households, max_households]``.

    Parameters
    ----------
    grids
        How many grids; None takes the count nearest the middle of the range
        (:func:`choose_count`).
    locked
        Units of grids kept as they are (unit id -> grid index); those grids are not
        changed and the others are made from the remaining units.
    current
        The current grid of each unit: the search starts from it and pays ``move_cost``
        (border metres per household) for each household it moves; ``moved_share`` says
        how many did move.
    restarts, restart_budget_s
        Partitions tried from different seeds, the most compact kept (default: 10 for up
        to 300 units, 4 up to 1,000, else 2, so the result does not depend on the
        machine's speed); none is started after ``restart_budget_s`` seconds.
    graph
        The unit graph when already built (:func:`unit_graph`).

    Raises
    ------
    ValidationError
        Naming the community and why: no units, units that are not connected, a unit or
        keep-whole group above the maximum, a count of grids the households cannot fill.
    """
    started = time.perf_counter()
    rng = random.Random(seed)
    low, high = int(min_households), int(max_households)
    if not 0 < low <= high:
        raise ValidationError(f"need 0 < min ≤ max households, got {low} and {high}", field="min")
    if not units:
        raise ValidationError(f"community {community}: no units to make grids of", field="units")
    with progress(total=4, desc=f"grids of {community or 'the units'}", unit="step") as bar:
        full = (
            graph
            if graph is not None
            else unit_graph(units, crs=crs, preferred_cuts=preferred_cuts)
        )
        bar.update(1)
        locked = dict(locked or {})
        kept = sorted(set(locked.values()))
        free = full.subgraph([n for n in full if n not in locked]).copy()
        g, members = _contract(free)
        for key, us in members.items():
            if len(us) > 1 and not nx.is_connected(full.subgraph(us)):
                raise ValidationError(
                    f"community {community}: the units kept whole as {key[1]} do not touch "
                    "each other", field="group",
                )  # fmt: skip
        heavy = [(k, d["households"]) for k, d in g.nodes(data=True) if d["households"] > high]
        if heavy:
            key, h = max(heavy, key=lambda x: x[1])
            name = key[1] if isinstance(key, tuple) else key
            raise ValidationError(
                f"community {community}: {name} alone has {h} households, more than the "
                f"maximum {high} of one grid", field="max",
            )  # fmt: skip
        if g.number_of_nodes() and not nx.is_connected(g) and locked:
            # the kept grids cut the rest in pieces: each piece gets grids of its own
            return _by_piece(
                units, full, g, members, locked, kept, grids, low, high, current, seed, crs,
                community, move_cost, time_limit_s, restarts, restart_budget_s, started,
            )  # fmt: skip
        if g.number_of_nodes() and not nx.is_connected(g):
            pieces = sorted(nx.connected_components(g), key=len)
            raise ValidationError(
                f"community {community}: the units are in {len(pieces)} separate pieces "
                f"(e.g. {', '.join(map(str, list(pieces[0])[:5]))} touch no other unit); "
                "grids must be contiguous", field="units",
            )  # fmt: skip
        total = sum(d["households"] for _, d in g.nodes(data=True))
        if grids is None:
            k = choose_count(total, low, high, community)
        else:
            k = int(grids) - len(kept)
            if k < 1:
                raise ValidationError(
                    f"community {community}: {grids} grids leave none to make", field="grids"
                )
            if not (k * low <= total <= k * high):
                raise ValidationError(
                    f"community {community}: {total:,} households cannot fill {k} grids of "
                    f"{low}-{high} (they hold {k * low:,}-{k * high:,})", field="grids",
                )  # fmt: skip
        of = {u: key for key, us in members.items() for u in us}
        start: dict[Hashable, int] | None = None
        cur_nodes: dict[Hashable, int] | None = None
        if current:
            labels = sorted({current[u] for u in of if u in current})
            index = {lab: i for i, lab in enumerate(labels)}
            votes: dict[Hashable, dict[int, int]] = {}
            for u, key in of.items():
                if u in current:
                    votes.setdefault(key, {}).setdefault(index[current[u]], 0)
                    votes[key][index[current[u]]] += full.nodes[u]["households"] or 1
            cur_nodes = {key: max(v, key=v.get) for key, v in votes.items()}
            if len(labels) == k and len(cur_nodes) == g.number_of_nodes():
                start = dict(cur_nodes)
        bar.update(1)
        if start is None:
            cur_nodes = None  # other labels: a cost per moved household would mean nothing
        bar.update(1)
        deadline = started + time_limit_s
        best: _Search | None = None
        loads: list[int] = []
        n_nodes = g.number_of_nodes()
        tries = max(1, restarts or (10 if n_nodes <= 300 else 4 if n_nodes <= 1000 else 2))
        for attempt in range(3 * tries):
            # a few more tries while none has worked, the budget only once one has
            if best is not None and (
                attempt >= tries or time.perf_counter() > started + restart_budget_s
            ):
                break
            first = start if start is not None and attempt == 0 else None
            if first is None and attempt % 2 == 0:
                first = _seed_kmeans(g, k, rng)
                if len(set(first.values())) < k or not _connected_parts(g, first):
                    first = None
            if first is None:
                first = _seed_tree(g, k, low, high, rng) or _seed_grow(g, k, rng)
            search = _Search(g, dict(first), k, low, high, set(), cur_nodes, move_cost, rng)
            search.balance(rounds=20 * g.number_of_nodes())
            if any(search.violation(x) for x in search.load):
                loads = sorted(search.load)
                continue
            annealed = search.anneal(
                steps=min(40_000, max(5_000, 10 * g.number_of_nodes())),
                deadline=min(deadline, started + restart_budget_s),
            )
            search = _Search(g, annealed, k, low, high, set(), cur_nodes, move_cost, rng)
            search.compact(passes=50, deadline=deadline)
            if best is None or search.score() > best.score():
                best = search
            if start is not None and attempt == 0:
                break  # from the current grids: one careful run, not a new plan
        if best is None:
            raise ValidationError(
                f"community {community}: no contiguous split into {k} grids of {low}-{high} "
                f"households was found (grid loads {loads}): try other bounds or another "
                "number of grids", field="grids",
            )  # fmt: skip
        search = best
        bar.update(1)
    offset = len(kept)
    assignment: dict[str, int] = {}
    for key, d in search.assign.items():
        for u in members[key]:
            assignment[u] = d + offset
    for i, lab in enumerate(kept):
        for u, v in locked.items():
            if v == lab:
                assignment[u] = i
    return _result(units, full, assignment, current, crs, time.perf_counter() - started)


def _by_piece(
    units: list[Unit],
    full: nx.Graph,
    g: nx.Graph,
    members: dict[Hashable, list[str]],
    locked: dict[str, int],
    kept: list[int],
    grids: int | None,
    low: int,
    high: int,
    current: dict[str, int] | None,
    seed: int,
    crs: str,
    community: str,
    move_cost: float,
    time_limit_s: float,
    restarts: int | None,
    restart_budget_s: float,
    started: float,
) -> PartitionResult:
    """Partition each connected piece of the free units on its own (the locked grids
    separate them); a given count of grids is shared by households."""
    pieces = sorted(nx.connected_components(g), key=lambda c: sorted(map(str, c)))
    loads = [sum(g.nodes[n]["households"] for n in piece) for piece in pieces]
    counts: list[int | None]
    if grids is None:
        counts = [None] * len(pieces)
    else:
        free = int(grids) - len(kept)
        total = sum(loads)
        counts = [max(1, round(free * x / total)) for x in loads]
        while sum(counts) > free:
            counts[counts.index(max(counts))] -= 1
        while sum(counts) < free:
            counts[loads.index(max(loads))] += 1
    by_id = {u.id: u for u in units}
    assignment: dict[str, int] = {}
    for i, lab in enumerate(kept):
        for u, v in locked.items():
            if v == lab:
                assignment[u] = i
    offset = len(kept)
    for piece, count in zip(pieces, counts, strict=True):
        ids = [u for key in piece for u in members[key]]
        part = partition(
            [by_id[u] for u in ids], grids=count, min_households=low, max_households=high,
            current={u: current[u] for u in ids if u in current} if current else None,
            seed=seed, crs=crs, community=community, move_cost=move_cost,
            time_limit_s=time_limit_s, restarts=restarts, restart_budget_s=restart_budget_s,
            graph=full.subgraph(ids).copy(),
        )  # fmt: skip
        for u, d in part.assignment.items():
            assignment[u] = d + offset
        offset += max(part.assignment.values()) + 1
    return _result(units, full, assignment, current, crs, time.perf_counter() - started)


def _result(
    units: list[Unit],
    graph: nx.Graph,
    assignment: dict[str, int],
    current: dict[str, int] | None,
    crs: str,
    seconds: float,
) -> PartitionResult:
    k = max(assignment.values()) + 1
    metric = dict(zip((u.id for u in units), _metric(units, crs), strict=True))
    households = [0] * k
    parts: list[list[BaseGeometry]] = [[] for _ in range(k)]
    for u in units:
        households[assignment[u.id]] += int(u.households)
        parts[assignment[u.id]].append(metric[u.id])
    pp = [polsby_popper(shapely.union_all(p)) if p else 0.0 for p in parts]
    cut = sum(1 for a, b in graph.edges if assignment.get(a) != assignment.get(b))
    moved = None
    if current:
        # moved: households whose grid is not the one most of their current grid went to
        to: dict[int, dict[int, int]] = {}
        for u in units:
            if u.id in current:
                to.setdefault(current[u.id], {}).setdefault(assignment[u.id], 0)
                to[current[u.id]][assignment[u.id]] += int(u.households)
        stayed = sum(max(v.values()) for v in to.values())
        total = sum(sum(v.values()) for v in to.values())
        moved = round(1 - stayed / total, 4) if total else 0.0
    return PartitionResult(assignment, households, pp, cut, moved, round(seconds, 3))


def _connected_parts(graph: nx.Graph, assignment: dict[Hashable, int]) -> bool:
    by: dict[int, list[Hashable]] = {}
    for u, d in assignment.items():
        by.setdefault(d, []).append(u)
    return all(nx.is_connected(graph.subgraph(us)) for us in by.values())


def contiguous(graph: nx.Graph, assignment: dict[str, int]) -> bool:
    """Whether every grid of ``assignment`` is one connected piece of ``graph``."""
    by: dict[int, list[str]] = {}
    for u, d in assignment.items():
        by.setdefault(d, []).append(u)
    return all(nx.is_connected(graph.subgraph(us)) for us in by.values())


def as_frame(units: list[Unit]) -> Any:
    """The units as a GeoDataFrame (id, households, population, group, geometry)."""
    import geopandas as gpd

    return gpd.GeoDataFrame(
        {
            "id": [u.id for u in units],
            "households": [u.households for u in units],
            "population": [u.population for u in units],
            "group": [u.group for u in units],
        },
        geometry=[u.geom for u in units],
        crs="EPSG:4326",
    )
