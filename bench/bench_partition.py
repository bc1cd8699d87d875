"""Automatic grids against the libraries planners could use, side by side on the same input.

Inputs: (a) the Georgia counties (libpysal's ``G_utm.shp``, ``TotPop90``, 159 units, 10
regions, ±10 % of the ideal 647,822); (b) the demo's blocks for its most populous
community; (c) 2,000 generated blocks of one community into about 15 grids (300-500
households). Methods: ours (:func:`mapsvc.services.partition.partition`), spopt
MaxPHeuristic (floor 0.9 × ideal), spopt Skater (k regions), GerryChain 1.0
``recursive_tree_part`` (ε 0.10 on Georgia, the bounds' slack elsewhere) and pymetis
(contiguous, ufactor 100). Each is run on every seed and reports: max deviation from the
ideal, share of grids within bounds, mean and minimum Polsby-Popper, cut edges, median wall
time, and success (every grid within bounds and contiguous, k grids).

Usage: ``python bench/bench_partition.py [--quick] [--seeds N]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import networkx as nx
import numpy as np
import shapely

from mapsvc.services import partition as P
from mapsvc.services.units_gen import generate_units

warnings.filterwarnings("ignore")

#: spopt's default construction iterations (99); --quick uses 5 (minutes less, a worse
#: MaxP: the quick table understates it)
MAXP_ITERATIONS = 99


@dataclass
class Case:
    name: str
    units: list[P.Unit]
    crs: str
    k: int
    low: int
    high: int
    graph: nx.Graph
    metric: dict[str, shapely.Geometry]

    @property
    def ideal(self) -> float:
        return sum(u.households for u in self.units) / self.k


def _case(name: str, units: list[P.Unit], crs: str, k: int, low: int, high: int) -> Case:
    g = P.unit_graph(units, crs=crs)
    metric = dict(zip((u.id for u in units), P._metric(units, crs), strict=True))
    return Case(name, units, crs, k, low, high, g, metric)


def georgia() -> Case:
    import geopandas as gpd
    import libpysal

    frame = gpd.read_file(libpysal.examples.get_path("G_utm.shp"))
    units = [
        P.Unit(str(i), g, int(p))
        for i, (g, p) in enumerate(zip(frame.geometry, frame.TotPop90, strict=True))
    ]
    ideal = sum(u.households for u in units) / 10
    return _case(
        "(a) Georgia counties", units, "EPSG:32617", 10, int(ideal * 0.9) + 1, int(ideal * 1.1)
    )


def demo_blocks() -> Case:
    from mapsvc.demo.areas import plan_areas
    from mapsvc.demo.geometry import Metric, as_multi, dense
    from mapsvc.demo.source import read_outline, read_units

    outline = read_outline()
    c = outline.centroid
    metric = Metric(c.x, c.y)
    plan = plan_areas(
        read_units(), as_multi(dense(metric.to_m(outline))), metric, np.random.default_rng(20261124)
    )
    community = max(plan.communities, key=lambda a: a.households)
    units = generate_units(
        metric.to_ll(community.geom),
        n=max(20, community.households // 15),
        households=community.households,
        seed=1,
        groups=3,
    )
    k = P.choose_count(community.households, 300, 500)
    return _case(f"(b) demo blocks of {community.name}", units, "EPSG:4326", k, 300, 500)


def big_community() -> Case:
    units = generate_units(
        shapely.box(113.93, 22.53, 113.95, 22.55), n=2000, households=6000, seed=1
    )
    return _case("(c) 2,000 blocks", units, "EPSG:4326", 15, 300, 500)


# --------------------------------------------------------------------------- methods


def ours(case: Case, seed: int) -> dict[str, int]:
    return P.partition(
        case.units,
        grids=case.k,
        min_households=case.low,
        max_households=case.high,
        seed=seed,
        crs=case.crs,
        graph=case.graph,
    ).assignment


def _frame(case: Case) -> object:
    import geopandas as gpd

    return gpd.GeoDataFrame(
        {"id": [u.id for u in case.units], "households": [float(u.households) for u in case.units]},
        geometry=[case.metric[u.id] for u in case.units],
    )


def _weights(case: Case) -> object:
    from libpysal.weights import W

    index = {u.id: i for i, u in enumerate(case.units)}
    return W(
        {index[n]: [index[m] for m in case.graph[n]] for n in case.graph}, silence_warnings=True
    )


def maxp(case: Case, seed: int) -> dict[str, int]:
    from spopt.region import MaxPHeuristic

    np.random.seed(seed)
    model = MaxPHeuristic(
        _frame(case),
        _weights(case),
        ["households"],
        "households",
        0.9 * case.ideal,
        top_n=2,
        max_iterations_construction=MAXP_ITERATIONS,
        verbose=False,
    )
    model.solve()
    return {u.id: int(lab) for u, lab in zip(case.units, model.labels_, strict=True)}


def skater(case: Case, seed: int) -> dict[str, int]:
    from spopt.region import Skater

    np.random.seed(seed)
    model = Skater(
        _frame(case),
        _weights(case),
        ["households"],
        n_clusters=case.k,
        floor=1,
        trace=False,
        islands="increase",
    )
    model.solve()
    return {u.id: int(lab) for u, lab in zip(case.units, model.labels_, strict=True)}


def tree(case: Case, seed: int) -> dict[str, int]:
    from gerrychain import Graph
    from gerrychain.partition.initial_partition_generators import recursive_tree_part

    eps = (
        0.10
        if case.name.startswith("(a)")
        else min((case.high - case.ideal) / case.ideal, (case.ideal - case.low) / case.ideal)
    )
    g = Graph.from_networkx(case.graph)
    return {
        n: int(p)
        for n, p in recursive_tree_part(
            g, range(case.k), case.ideal, "households", eps, rng=seed
        ).items()
    }


def metis(case: Case, seed: int) -> dict[str, int]:
    import pymetis

    nodes = [u.id for u in case.units]
    index = {n: i for i, n in enumerate(nodes)}
    adjacency = [[index[m] for m in case.graph[n]] for n in nodes]
    opts = pymetis.Options(contig=1, ufactor=100, seed=seed)
    _cut, parts = pymetis.part_graph(
        case.k,
        adjacency=adjacency,
        vweights=[max(1, u.households) for u in case.units],
        options=opts,
    )
    return {n: int(p) for n, p in zip(nodes, parts, strict=True)}


METHODS: dict[str, Callable[[Case, int], dict[str, int]]] = {
    "ours": ours,
    "spopt MaxPHeuristic": maxp,
    "spopt Skater": skater,
    "GerryChain recursive_tree_part": tree,
    "pymetis contiguous": metis,
}


def measure(case: Case, assignment: dict[str, int]) -> dict[str, float]:
    parts: dict[int, list[str]] = {}
    for u, d in assignment.items():
        parts.setdefault(d, []).append(u)
    hh = {u.id: u.households for u in case.units}
    loads = [sum(hh[u] for u in us) for us in parts.values()]
    pp = [P.polsby_popper(shapely.union_all([case.metric[u] for u in us])) for us in parts.values()]
    within = [case.low <= h <= case.high for h in loads]
    ok = all(within) and len(parts) == case.k and P.contiguous(case.graph, assignment)
    return {
        "dev": max(abs(h - case.ideal) / case.ideal for h in loads),
        "within": sum(within) / len(within),
        "pp_mean": statistics.fmean(pp),
        "pp_min": min(pp),
        "cut": sum(1 for a, b in case.graph.edges if assignment[a] != assignment[b]),
        "ok": ok,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="3 seeds, no MaxP on 2,000 blocks")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument(
        "--methods",
        default=None,
        help="comma list of the methods to run (default all), e.g. 'ours' for our figures "
        "on many seeds when the baselines' are known",
    )
    args = ap.parse_args()
    chosen = set(args.methods.split(",")) if args.methods else set(METHODS)
    if unknown := chosen - set(METHODS):
        ap.error(f"unknown methods {sorted(unknown)}; known: {', '.join(METHODS)}")
    seeds = args.seeds or (3 if args.quick else 10)
    global MAXP_ITERATIONS
    if args.quick:
        MAXP_ITERATIONS = 5
    cases = [georgia(), demo_blocks(), big_community()]
    print(
        f"seeds per method: {seeds}; goals: every grid within bounds and contiguous on every seed; "
        "mean Polsby-Popper >= 0.387 on Georgia; 2,000 units into ~15 grids in <= 5 s\n"
    )
    for case in cases:
        print(
            f"{case.name}: {len(case.units)} units, {case.k} grids, bounds {case.low:,}-{case.high:,}, ideal {case.ideal:,.0f}"
        )
        print(
            f"  {'method':<32}{'max dev':>9}{'within':>8}{'PP mean':>9}{'PP min':>8}{'cut':>6}{'time s':>9}{'success':>9}"
        )
        for name, fn in METHODS.items():
            if name not in chosen:
                continue
            if args.quick and name == "spopt MaxPHeuristic" and len(case.units) > 1000:
                print(f"  {name:<32}{'(skipped in --quick: minutes on 2,000 units)':>60}")
                continue
            rows, times, failures = [], [], 0
            for seed in range(seeds):
                t = time.perf_counter()
                try:
                    assignment = fn(case, seed)
                except Exception as exc:  # noqa: BLE001 - a baseline failing is a result
                    failures += 1
                    last = str(exc).splitlines()[0][:60] if str(exc) else type(exc).__name__
                    times.append(time.perf_counter() - t)
                    continue
                times.append(time.perf_counter() - t)
                rows.append(measure(case, assignment))
            ok = sum(r["ok"] for r in rows)
            if not rows:
                print(f"  {name:<32}{'failed on every seed: ' + last:>60}")
                continue

            note = f" ({failures} raised)" if failures else ""
            print(
                f"  {name:<32}{max(r['dev'] for r in rows):>8.1%}{statistics.fmean(r['within'] for r in rows):>8.0%}"
                f"{statistics.fmean(r['pp_mean'] for r in rows):>9.3f}{min(r['pp_min'] for r in rows):>8.3f}"
                f"{statistics.median(r['cut'] for r in rows):>6.0f}{statistics.median(times):>9.2f}{ok:>5}/{seeds}{note}"
            )
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
