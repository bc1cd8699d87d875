"""Stage: a year of incidents (事件) in hotspots, with their closed-loop history.

75 % come from 30 hotspots (gaussian blobs of 60-250 m around dense communities and
street corners, each with its own mix of categories: markets have vendors, old lanes
clutter and fire lanes), 25 % are spread by population. Most are moved onto the nearest
street (where they are seen). Times follow a day rhythm; the time to close is log-normal
around a third of the class's time limit, so most close on time, a few run late and the
recent ones are still open. Every step an incident has taken is an ``incident_event``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import shapely
import sqlalchemy as sa
from shapely.geometry import MultiPolygon
from sqlalchemy.engine import Connection

from mapsvc.core.progress import Progress, no_progress
from mapsvc.demo.areas import Area, AreaPlan
from mapsvc.demo.geometry import Metric, sample_in
from mapsvc.demo.source import GENERATED_CRS
from mapsvc.demo.streets import Street
from mapsvc.demo.write import copy_rows, ewkb
from mapsvc.models import SEVERITIES
from mapsvc.services.categories import DEFAULT_CATEGORIES

HOTSPOTS = 30
#: share of incidents in the hotspots (the rest follows the grids' population)
HOT_SHARE = 0.75

#: relative frequency of each category in the demo (hotline and patrol experience)
CATEGORY_WEIGHT = {
    "street_vending": 14, "clutter": 12, "illegal_building": 4, "sanitation": 12, "garbage": 9,
    "illegal_parking": 11, "illegal_ads": 6, "greenery": 3, "street_light": 5, "road_damage": 5,
    "manhole_cover": 2, "water_supply": 3, "drainage": 3, "noise": 7, "neighbour_dispute": 4,
    "elderly_care": 2, "safety_hazard": 3, "fire_lane": 2, "gas_leak": 0.3,
}  # fmt: skip

TEMPLATES = {
    "street_vending": "{addr}有流动摊贩占道经营，影响行人通行。",
    "clutter": "{addr}门口堆放杂物，占用公共通道。",
    "illegal_building": "{addr}疑似在屋顶加盖违章建筑。",
    "sanitation": "{addr}路面垃圾较多，需要清扫。",
    "garbage": "{addr}垃圾桶已满，多日未清运。",
    "illegal_parking": "{addr}车辆乱停乱放，堵塞巷口。",
    "illegal_ads": "{addr}墙面被乱贴小广告。",
    "greenery": "{addr}行道树枝被折断，绿化带受损。",
    "street_light": "{addr}路灯不亮，夜间出行不便。",
    "road_damage": "{addr}路面坑洼破损。",
    "manhole_cover": "{addr}井盖缺失，存在安全隐患。",
    "water_supply": "{addr}一带停水或水压不足。",
    "drainage": "{addr}下水道堵塞，雨后积水。",
    "noise": "{addr}夜间噪音扰民。",
    "neighbour_dispute": "{addr}住户因漏水发生邻里纠纷，请求调解。",
    "elderly_care": "{addr}独居老人需要上门帮扶。",
    "safety_hazard": "{addr}电线私拉乱接，存在安全隐患。",
    "fire_lane": "{addr}消防通道被杂物和车辆堵塞。",
    "gas_leak": "{addr}闻到燃气味，疑似泄漏。",
}


COLUMNS = (
    "id",
    "external_id",
    "source",
    "category",
    "severity",
    "state",
    "description",
    "address",
    "geom",
    "source_crs",
    "reported_at",
    "due_at",
    "closed_at",
    "rating",
    "location_to_confirm",
)


@dataclass
class _Life:
    """Class, source, times and outcome of every incident (arrays of length n)."""

    severity: np.ndarray  # index into SEVERITIES
    source: np.ndarray
    reported: np.ndarray  # Unix seconds
    due: np.ndarray
    to_close: np.ndarray  # seconds from report to closing (planned, also while open)
    closed: np.ndarray
    state: np.ndarray
    rating: np.ndarray
    rated: np.ndarray


def write_incidents(
    conn: Connection,
    rng: np.random.Generator,
    n: int,
    now: dt.datetime,
    metric: Metric,
    areas: AreaPlan,
    streets: list[Street],
    time_limits_h: Mapping[str, float],
    tz: ZoneInfo,
    progress: Progress = no_progress,
) -> int:
    """A year of ``n`` incidents before ``now``; returns how many were written.

    ``time_limits_h`` is the time limit (限时办结) of each severity class in hours; ``tz``
    the district's clock, on which incidents follow a day rhythm and hotline numbers carry
    the year.
    """
    if n <= 0:
        return 0
    cats = [c.code for c in DEFAULT_CATEGORIES]
    base_w = np.array([CATEGORY_WEIGHT.get(c, 1.0) for c in cats])
    default_sev = np.array([SEVERITIES.index(c.default_severity) for c in DEFAULT_CATEGORIES])
    limit_h = np.array([float(time_limits_h[s]) for s in SEVERITIES])

    xs, ys, cat = _locations(rng, n, areas, base_w)
    xs, ys, street_names = _onto_streets(rng, xs, ys, areas.district, streets)
    lon, lat = metric.lonlat(xs, ys)
    life = _life(rng, cat, default_sev, limit_h, now, tz)
    wkb = ewkb(shapely.points(lon, lat))
    rows = _rows(
        life, np.array(cats, dtype=object)[cat], street_names, wkb, now.astimezone(tz).year
    )
    with progress(rows, total=n, desc="incidents", unit="row") as bar:
        return copy_rows(conn, "incident", COLUMNS, bar)


def _hotspots(
    rng: np.random.Generator, communities: list[Area], base_w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Centres, radii, weights and category mixes of the hotspots, in dense communities."""
    dens = np.array([cm.population / max(cm.geom.area, 1.0) for cm in communities])
    hot_comm = rng.choice(len(communities), size=HOTSPOTS, p=dens / dens.sum())
    centres = np.vstack([sample_in(communities[i].geom, 1, rng) for i in hot_comm])
    sigma = rng.uniform(60, 250, HOTSPOTS)
    hot_w = rng.dirichlet(np.full(HOTSPOTS, 1.5))
    hot_cat = base_w[None, :] * rng.gamma(1.5, 1.0, (HOTSPOTS, len(base_w)))
    hot_cat /= hot_cat.sum(axis=1, keepdims=True)
    return centres, sigma, hot_w, hot_cat


def _locations(
    rng: np.random.Generator, n: int, areas: AreaPlan, base_w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Metric x, y and category index of each incident: hotspots first, then background."""
    centres, sigma, hot_w, hot_cat = _hotspots(rng, areas.communities, base_w)
    district = areas.district
    shapely.prepare(district)
    xs = np.empty(n)
    ys = np.empty(n)
    cat = np.empty(n, dtype=int)
    is_hot = rng.random(n) < HOT_SHARE
    idx_hot = np.flatnonzero(is_hot)
    which = rng.choice(HOTSPOTS, size=len(idx_hot), p=hot_w)
    todo = np.arange(len(idx_hot))
    while len(todo):  # draw again what fell outside the district
        h = which[todo]
        x = centres[h, 0] + rng.normal(0, 1, len(todo)) * sigma[h]
        y = centres[h, 1] + rng.normal(0, 1, len(todo)) * sigma[h]
        ok = shapely.contains_xy(district, x, y)
        xs[idx_hot[todo[ok]]] = x[ok]
        ys[idx_hot[todo[ok]]] = y[ok]
        todo = todo[~ok]
    cum = np.cumsum(hot_cat, axis=1)
    r = rng.random(len(idx_hot))
    cat[idx_hot] = np.minimum((cum[which] < r[:, None]).sum(axis=1), len(base_w) - 1)
    # background, by grid population
    grids = areas.grids
    idx_bg = np.flatnonzero(~is_hot)
    gpop = np.array([g.population for g in grids], dtype=float) + 1.0
    gi = rng.choice(len(grids), size=len(idx_bg), p=gpop / gpop.sum())
    for g in np.unique(gi):
        sel = idx_bg[gi == g]
        pts = sample_in(grids[g].geom, len(sel), rng)
        xs[sel], ys[sel] = pts[:, 0], pts[:, 1]
    cat[idx_bg] = rng.choice(len(base_w), size=len(idx_bg), p=base_w / base_w.sum())
    return xs, ys, cat


def _onto_streets(
    rng: np.random.Generator,
    xs: np.ndarray,
    ys: np.ndarray,
    district: MultiPolygon,
    streets: list[Street],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """85 % of the incidents moved onto the nearest street with a few metres of scatter.

    Returns the new x, y and the name of each incident's nearest street (its address).
    """
    n = len(xs)
    seg_geoms = np.array([s.geom for s in streets], dtype=object)
    tree = shapely.STRtree(seg_geoms)
    pts = shapely.points(xs, ys)
    nearest = tree.query_nearest(pts, return_distance=False, all_matches=False)[1]
    snap = rng.random(n) < 0.85
    lines = seg_geoms[nearest]
    on = shapely.line_interpolate_point(lines, shapely.line_locate_point(lines, pts))
    sx = shapely.get_x(on) + rng.normal(0, 4.0, n)
    sy = shapely.get_y(on) + rng.normal(0, 4.0, n)
    ok = snap & shapely.contains_xy(district, sx, sy)
    street_names = np.array([s.name for s in streets], dtype=object)[nearest]
    return np.where(ok, sx, xs), np.where(ok, sy, ys), street_names


def _life(
    rng: np.random.Generator,
    cat: np.ndarray,
    default_sev: np.ndarray,
    limit_h: np.ndarray,
    now: dt.datetime,
    tz: ZoneInfo,
) -> _Life:
    """Class, source, report time and closed-loop outcome of each incident.

    Reports follow the hours of a local day; the time to close is log-normal around 35 % of
    the class's time limit, 3 % are hard cases that drag on, 0.4 % were returned for rework.
    An incident still open at ``now`` is as far along the loop as its share of the planned
    time says.
    """
    n = len(cat)
    sev = np.clip(
        default_sev[cat] + rng.choice([-1, 0, 1, 2], size=n, p=[0.15, 0.7, 0.12, 0.03]), 0, 3
    )
    src = rng.choice(["hotline", "patrol", "resident"], size=n, p=[0.45, 0.4, 0.15])
    now_ts = now.timestamp()
    local_midnight = dt.datetime.combine(now.astimezone(tz).date(), dt.time(), tz).timestamp()
    days_ago = np.floor(rng.uniform(0, 365, n))
    hour_w = np.array(
        [1, 0.5, 0.3, 0.3, 0.4, 0.8, 2, 4, 7, 9, 9, 8, 6, 6, 8, 9, 9, 8, 7, 6, 5, 4, 3, 2], float
    )
    hour = rng.choice(24, size=n, p=hour_w / hour_w.sum())
    reported = local_midnight - days_ago * 86400 + hour * 3600 + rng.uniform(0, 3600, n)
    reported = np.where(reported >= now_ts, reported - 86400, reported)
    reported = np.where(reported >= now_ts, now_ts - rng.uniform(60, 3600, n), reported)
    limit_s = limit_h[sev] * 3600
    to_close = limit_s * rng.lognormal(math.log(0.35), 0.75, n)
    slow = rng.random(n) < 0.03  # hard cases (disputes, illegal buildings) drag on
    to_close = np.where(slow, to_close * rng.uniform(4.0, 15.0, n), to_close)
    closed = reported + to_close < now_ts
    stuck = rng.random(n) < 0.004  # returned for rework and still open
    closed &= ~stuck
    frac = np.clip((now_ts - reported) / to_close, 0, 1)
    open_state = np.select(
        [frac < 0.1, frac < 0.4, frac < 0.85], ["received", "dispatched", "in_hand"], "verified"
    )
    late = closed & (to_close > limit_s)
    rating = rng.choice([5, 4, 3, 2, 1], size=n, p=[0.55, 0.25, 0.1, 0.06, 0.04])
    rating = np.where(late, np.maximum(1, rating - rng.integers(0, 3, n)), rating)
    rated = closed & (rng.random(n) < 0.85)
    return _Life(
        severity=sev,
        source=src,
        reported=reported,
        due=reported + limit_s,
        to_close=to_close,
        closed=closed,
        state=np.where(closed, "closed", np.where(stuck, "returned", open_state)),
        rating=rating,
        rated=rated,
    )


def _rows(
    life: _Life, categories: np.ndarray, street_names: np.ndarray, wkb: list[str], year: int
) -> Iterator[tuple]:
    """The incident rows in :data:`COLUMNS` order; hotline ones numbered 12345-<year><n>."""

    def ts(x: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(float(x), dt.UTC)

    hot_no = 0
    for i in range(len(categories)):
        c = categories[i]
        ext = None
        if life.source[i] == "hotline":
            hot_no += 1
            ext = f"12345-{year}{hot_no:07d}"
        addr = f"{street_names[i]}{1 + (i * 7919) % 180}号"
        yield (
            i + 1,
            ext,
            life.source[i],
            c,
            SEVERITIES[life.severity[i]],
            life.state[i],
            TEMPLATES[c].format(addr=addr),
            addr,
            wkb[i],
            GENERATED_CRS,
            ts(life.reported[i]),
            ts(life.due[i]),
            ts(life.reported[i] + life.to_close[i]) if life.closed[i] else None,
            int(life.rating[i]) if life.rated[i] else None,
            False,
        )


def write_incident_events(conn: Connection, now: dt.datetime) -> int:
    """The closed-loop history of every demo incident, set-based in PostGIS.

    One ``incident_event`` row per step an incident has taken (受理 received, 派遣
    dispatched, 处置 in hand, 核查 verified, then 结案 closed or 退回 returned), at fixed
    shares of the time from report to closing (or to now, while open), so time-to-close
    figures computed from events agree with ``incident.closed_at``.
    """
    result = conn.execute(
        sa.text(
            """
            WITH steps(rank, to_state, share, actor, note) AS (VALUES
              (0, 'received', 0.0, NULL, '受理'),
              (1, 'dispatched', 0.1, '区网格化服务管理中心', '派遣'),
              (2, 'in_hand', 0.4, '网格员', '处置'),
              (3, 'verified', 0.85, '网格长', '核查'),
              (4, 'closed', 1.0, '区网格化服务管理中心', '结案')),
            reached(state, rank) AS (VALUES ('received', 0), ('dispatched', 1),
              ('in_hand', 2), ('verified', 3), ('closed', 4), ('returned', 4))
            INSERT INTO incident_event (incident_id, from_state, to_state, actor, at, note)
            SELECT i.id,
                   lag(st.to_state) OVER (PARTITION BY i.id ORDER BY st.rank),
                   CASE WHEN st.rank = 4 THEN i.state ELSE st.to_state END,
                   COALESCE(st.actor, CASE i.source WHEN 'hotline' THEN '12345热线'
                            WHEN 'patrol' THEN '巡查上报' ELSE '居民上报' END),
                   i.reported_at + st.share * (COALESCE(i.closed_at, :now) - i.reported_at),
                   CASE WHEN st.rank = 4 AND i.state = 'returned' THEN '退回重办' ELSE st.note END
            FROM incident i
            JOIN reached r ON r.state = i.state
            JOIN steps st ON st.rank <= r.rank
            ORDER BY i.id, st.rank
            """
        ),
        {"now": now},
    )
    return result.rowcount
