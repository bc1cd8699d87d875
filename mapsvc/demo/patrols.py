"""Stage: patrol tracks (日巡查) and weekly visits (周走访).

Tracks: yesterday most chiefs (about 85 %) walked their morning round, and eight of them
have a track on each of the last five days, so the dashboard's patrol compliance shows a
plausible district figure while a few chiefs have a week of history. Visits: eight weeks
of them by chiefs (to their segments) and grid members (to their grid); about one person
in ten mostly skips, so compliance figures have something to show.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
from shapely.geometry import LineString
from sqlalchemy.engine import Connection

from mapsvc.demo.areas import AreaPlan
from mapsvc.demo.geometry import Metric, sample_in
from mapsvc.demo.source import GENERATED_CRS
from mapsvc.demo.staff import StaffPlan
from mapsvc.demo.write import copy_rows

#: chiefs with a track on each of the last :data:`WEEK_DAYS` days
WEEK_CHIEFS = 8
WEEK_DAYS = 5
#: share of chiefs who walked their round yesterday
WALKED_YESTERDAY = 0.85
#: weeks of visits before today
VISIT_WEEKS = 8
#: GPS noise of a fix, metres (standard deviation per axis)
GPS_NOISE_M = 4.0


def walk(segs: list[LineString]) -> list[tuple[float, float]]:
    """Coordinates of a walk that covers every segment of a connected group once or twice.

    An Euler circuit of the group made Eulerian by doubling some segments (networkx), so
    the walk is what a chief does on a round: every alley, back along dead ends.
    """
    import networkx as nx

    g = nx.MultiGraph()
    key = {}
    for i, s in enumerate(segs):
        a = (round(s.coords[0][0], 1), round(s.coords[0][1], 1))
        b = (round(s.coords[-1][0], 1), round(s.coords[-1][1], 1))
        g.add_edge(a, b, idx=i)
        key[i] = (a, b)
    comp = max(nx.connected_components(g), key=len)
    g = g.subgraph(comp).copy()
    if not nx.is_eulerian(g):
        g = nx.eulerize(g)
    start = min(g.nodes)
    coords: list[tuple[float, float]] = []
    for u, v, k in nx.eulerian_circuit(g, source=start, keys=True):
        data = g.get_edge_data(u, v, k)
        idx = data.get("idx")
        if idx is None:  # a doubled edge: walk an original between the same nodes
            idx = next(d["idx"] for d in g.get_edge_data(u, v).values() if "idx" in d)
        c = list(segs[idx].coords)
        if key[idx][0] != u:
            c = c[::-1]
        coords.extend(c if not coords else c[1:])
    return coords


def write_tracks(
    conn: Connection,
    rng: np.random.Generator,
    now: dt.datetime,
    tz: ZoneInfo,
    metric: Metric,
    segments_m: list[LineString],
    staff: StaffPlan,
) -> int:
    """Morning rounds as LINESTRINGM (M is Unix time in seconds); returns the track count.

    A round starts between 08:00 and 09:30 on the district's clock (``tz``).
    """
    chiefs = staff.chiefs
    if not chiefs:
        return 0
    pick = set(rng.choice(len(chiefs), size=min(WEEK_CHIEFS, len(chiefs)), replace=False).tolist())
    walked_yesterday = rng.random(len(chiefs)) < WALKED_YESTERDAY
    today = now.astimezone(tz).date()
    rows = []
    for ci, (sid, cl) in enumerate(chiefs):
        if ci in pick:
            days = range(1, WEEK_DAYS + 1)
        else:
            days = range(1, 2) if walked_yesterday[ci] else range(0)
        if not days:
            continue
        route = LineString(walk([segments_m[i] for i in cl]))
        for back in days:
            day = today - dt.timedelta(days=back)
            t0 = dt.datetime.combine(day, dt.time(8, 0), tz).timestamp() + rng.uniform(0, 5400)
            fixes = _round(route, t0, rng)
            rows.append(_track_row(len(rows) + 1, sid, day, fixes, metric))
    return copy_rows(
        conn,
        "patrol_track",
        [
            "id",
            "staff_id",
            "day",
            "geom",
            "started_at",
            "ended_at",
            "source_crs",
            "points_total",
            "points_dropped",
        ],
        rows,
    )


def _round(route: LineString, t0: float, rng: np.random.Generator) -> np.ndarray:
    """GPS fixes ``(x, y, t)`` of one walk along ``route`` starting at Unix time ``t0``.

    The chief walks at 3.8-5.2 km/h with a fix every 5-10 s and stops two to five times
    for one to seven minutes to talk to residents (a fix every 10 s while standing).
    """
    speed = rng.uniform(3.8, 5.2) / 3.6
    stops = sorted(rng.uniform(0, route.length, int(rng.integers(2, 6))))
    stop_len = list(rng.uniform(60, 420, len(stops)))
    t, d, out = t0, 0.0, []
    while d <= route.length:
        p = route.interpolate(d)
        out.append((p.x + rng.normal(0, GPS_NOISE_M), p.y + rng.normal(0, GPS_NOISE_M), t))
        dt_s = rng.uniform(5, 10)
        t += dt_s
        if stops and d >= stops[0]:
            stay = stop_len.pop(0)
            stops.pop(0)
            for _ in range(int(stay // 10)):
                out.append((p.x + rng.normal(0, GPS_NOISE_M), p.y + rng.normal(0, GPS_NOISE_M), t))
                t += 10
        d += speed * dt_s
    return np.array(out)


def _track_row(tid: int, sid: int, day: dt.date, fixes: np.ndarray, metric: Metric) -> tuple:
    """A patrol_track row: the fixes as EWKT LINESTRING M, whole seconds as M."""
    lon, lat = metric.lonlat(fixes[:, 0], fixes[:, 1])
    text = ", ".join(
        f"{a:.7f} {b:.7f} {int(m)}" for a, b, m in zip(lon, lat, fixes[:, 2], strict=True)
    )
    return (
        tid,
        sid,
        day,
        f"SRID=4326;LINESTRING M ({text})",
        dt.datetime.fromtimestamp(int(fixes[0, 2]), dt.UTC),
        dt.datetime.fromtimestamp(int(fixes[-1, 2]), dt.UTC),
        GENERATED_CRS,
        len(fixes),
        0,
    )


VISIT_NOTES = (
    "走访沿街商户",
    "走访独居老人",
    "检查消防通道",
    "宣传垃圾分类",
    "排查安全隐患",
    "走访出租屋",
    "了解居民诉求",
)


def write_visits(
    conn: Connection,
    rng: np.random.Generator,
    now: dt.datetime,
    tz: ZoneInfo,
    metric: Metric,
    segments_m: list[LineString],
    areas: AreaPlan,
    staff: StaffPlan,
) -> int:
    """Weekly visits over the last eight weeks; returns how many were written.

    Chiefs visit one to three of their segments a week, grid members (current posts) their
    grid; each visit is a point within a few metres of what was visited.
    """
    today = now.astimezone(tz).date()
    rows = []

    def weeks() -> list[dt.date]:
        """The days one person visited: most weeks, or for one in ten only a quarter."""
        keen = rng.random() > 0.1
        out = []
        for w in range(1, VISIT_WEEKS + 1):
            if keen or rng.random() < 0.25:
                out.append(today - dt.timedelta(days=7 * w - int(rng.integers(0, 7))))
        return out

    def near(x: float, y: float) -> str:
        lon, lat = metric.lonlat(x + rng.normal(0, 8.0), y + rng.normal(0, 8.0))
        return f"SRID=4326;POINT({float(lon):.7f} {float(lat):.7f})"

    def note() -> str:
        return VISIT_NOTES[int(rng.integers(len(VISIT_NOTES)))]

    for sid, cl in staff.chiefs:
        for day in weeks():
            for i in rng.choice(cl, size=min(len(cl), int(rng.integers(1, 4))), replace=False):
                p = segments_m[int(i)].interpolate(rng.random(), normalized=True)
                rows.append((sid, day, int(i) + 1, None, None, note(), near(p.x, p.y)))
    by_code = {g.code: g for g in areas.grids}
    for a in staff.assignments:
        if a.role != "grid_member" or a.until is not None:
            continue
        g = by_code[a.target]
        for day in weeks():
            p = sample_in(g.geom, 1, rng)[0]
            rows.append(
                (a.staff, day, None, areas.grid_ids[g.code], None, note(), near(p[0], p[1]))
            )
    return copy_rows(
        conn,
        "patrol_visit",
        ["staff_id", "day", "segment_id", "grid_id", "place", "note", "geom"],
        rows,
    )
