"""Stage: staff (人员) and their posts (assignments), with a little history.

Every grid gets a head and 2-3 members (a few deliberately short); every community 3-8
community workers and dispatched staff (police, city management, doctor, mediator; a
lawyer serves 2-3 communities); alley chiefs get contiguous groups of 5-30 segments and a
deputy for most groups; a few groups are deliberately left without a chief. About one
single-holder post in twenty changed hands during the last year, so the history is not
empty. Phone numbers are clearly fake (``138-0000-xxxx``).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import LineString
from sqlalchemy.engine import Connection

from mapsvc.demo.areas import Area, AreaPlan
from mapsvc.demo.names import Names
from mapsvc.demo.write import copy_rows

#: how far back the posts held since the start go
HISTORY_DAYS = 1000
#: share of single-holder posts (grid heads, alley chiefs) that changed hands in the year
CHANGED_HANDS = 0.05


@dataclass
class Person:
    """A staff row; ``id`` is its position in the plan + 1."""

    id: int
    name: str
    phone: str
    role: str
    dispatched_kind: str | None
    community: str | None  # community code


@dataclass
class Post:
    """An assignment of ``staff`` to a grid code, segment id or community code."""

    staff: int
    role: str
    target_kind: str  # grid | segment | community
    target: str | int
    since: dt.date
    until: dt.date | None = None


@dataclass
class StaffPlan:
    """The people, their posts, and which segments (plan positions) each chief walks."""

    staff: list[Person] = field(default_factory=list)
    assignments: list[Post] = field(default_factory=list)
    #: ``(staff id, [segment positions])`` of every alley chief
    chiefs: list[tuple[int, list[int]]] = field(default_factory=list)
    #: ids of the segments deliberately left without a chief
    no_chief: list[int] = field(default_factory=list)


class _Roster:
    """Adds people and posts to a :class:`StaffPlan` (ids in order of creation)."""

    def __init__(self, rng: np.random.Generator, names: Names, today: dt.date) -> None:
        self.rng = rng
        self.names = names
        self.today = today
        self.start = today - dt.timedelta(days=HISTORY_DAYS)
        self.plan = StaffPlan()

    def person(self, role: str, community: str | None, kind: str | None = None) -> int:
        sid = len(self.plan.staff) + 1
        phone = f"138-0000-{sid:04d}" if sid < 10000 else f"139-0000-{sid - 10000:04d}"
        self.plan.staff.append(Person(sid, self.names.person(), phone, role, kind, community))
        return sid

    def post(
        self,
        sid: int,
        role: str,
        kind: str,
        target: str | int,
        since: dt.date | None = None,
        until: dt.date | None = None,
    ) -> None:
        self.plan.assignments.append(Post(sid, role, kind, target, since or self.start, until))

    def post_with_history(
        self, role: str, community: str | None, kind: str, targets: list[str] | list[int]
    ) -> int:
        """Single-holder post; sometimes a predecessor held it until a recent change."""
        sid = self.person(role, community)
        if self.rng.random() < CHANGED_HANDS:
            old = self.person(role, community)
            change = self.today - dt.timedelta(days=int(self.rng.integers(20, 330)))
            for t in targets:
                self.post(old, role, kind, t, self.start, change - dt.timedelta(days=1))
                self.post(sid, role, kind, t, change)
        else:
            for t in targets:
                self.post(sid, role, kind, t)
        return sid


def plan_staff(
    rng: np.random.Generator,
    names: Names,
    areas: AreaPlan,
    segments_m: list[LineString],
    today: dt.date,
) -> StaffPlan:
    """People and their posts: grid staff, community staff, then alley chiefs."""
    roster = _Roster(rng, names, today)
    _grid_staff(roster, areas.grids)
    _community_staff(roster, areas.communities)
    _alley_chiefs(roster, areas.communities, segments_m)
    return roster.plan


def _grid_staff(roster: _Roster, grids: list[Area]) -> None:
    """A head and 2-3 members per grid; one grid in forty is short of members."""
    rng = roster.rng
    short_grids = set(rng.choice(len(grids), size=max(2, len(grids) // 40), replace=False).tolist())
    for gi, g in enumerate(grids):
        roster.post_with_history("grid_head", g.parent, "grid", [g.code])
        members = int(rng.integers(0, 2)) if gi in short_grids else int(rng.integers(2, 4))
        for _ in range(members):
            roster.post(roster.person("grid_member", g.parent), "grid_member", "grid", g.code)


def _community_staff(roster: _Roster, communities: list[Area]) -> None:
    """Community workers by population, four dispatched professionals, a shared lawyer."""
    lawyer = None
    lawyer_left = 0
    for cm in communities:
        for _ in range(int(np.clip(cm.population // 1200, 3, 8))):
            sid = roster.person("community_worker", cm.code)
            roster.post(sid, "community_worker", "community", cm.code)
        for kind in ("police", "city_management", "doctor", "mediator"):
            sid = roster.person("dispatched", cm.code, kind)
            roster.post(sid, "dispatched", "community", cm.code)
        if lawyer is None or lawyer_left == 0:
            lawyer = roster.person("dispatched", cm.code, "lawyer")
            lawyer_left = int(roster.rng.integers(2, 4))
        roster.post(lawyer, "dispatched", "community", cm.code)
        lawyer_left -= 1


def _alley_chiefs(roster: _Roster, communities: list[Area], segments_m: list[LineString]) -> None:
    """A chief (and mostly a deputy) for each contiguous group, a few groups left without."""
    rng = roster.rng
    clusters = chief_clusters(segments_m, rng)
    tree = shapely.STRtree([cm.geom for cm in communities])
    unmanned = set(
        rng.choice(len(clusters), size=max(3, len(clusters) // 60), replace=False).tolist()
    )
    for ci, cl in enumerate(clusters):
        seg_ids = [i + 1 for i in cl]  # alley_segment ids are positions + 1
        if ci in unmanned or len(cl) < 5:
            roster.plan.no_chief.extend(seg_ids)
            continue
        mid = segments_m[cl[0]].interpolate(0.5, normalized=True)
        hit = tree.query(mid, predicate="intersects")
        community = communities[int(hit[0])].code if len(hit) else None
        sid = roster.post_with_history("alley_chief", community, "segment", seg_ids)
        roster.plan.chiefs.append((sid, cl))
        if rng.random() < 0.9:
            dep = roster.person("deputy_chief", community)
            for t in seg_ids:
                roster.post(dep, "deputy_chief", "segment", t)


def chief_clusters(segments: list[LineString], rng: np.random.Generator) -> list[list[int]]:
    """Contiguous groups of 5-30 segments (one chief each), grown breadth-first."""
    nbrs = _neighbours(segments)
    owner = [-1] * len(segments)
    clusters: list[list[int]] = []
    for start in rng.permutation(len(segments)):
        if owner[start] != -1:
            continue
        target = int(rng.integers(8, 21))
        cl, queue = [], [int(start)]
        owner[start] = len(clusters)
        while queue and len(cl) < target:
            i = queue.pop(0)
            cl.append(i)
            for j in sorted(nbrs[i]):
                if owner[j] == -1 and len(cl) + len(queue) < target:
                    owner[j] = len(clusters)
                    queue.append(j)
        for i in queue:  # not taken after all
            owner[i] = -1
        clusters.append(cl)
    # fold clusters smaller than 5 into a neighbour with room
    for ci, cl in enumerate(clusters):
        if 0 < len(cl) < 5:
            cand = sorted({owner[j] for i in cl for j in nbrs[i]} - {ci})
            cand = [c for c in cand if len(clusters[c]) + len(cl) <= 30]
            if cand:
                dest = min(cand, key=lambda c: len(clusters[c]))
                for i in cl:
                    owner[i] = dest
                clusters[dest].extend(cl)
                clusters[ci] = []
    return [sorted(c) for c in clusters if c]


def _neighbours(segments: list[LineString]) -> list[set[int]]:
    """For each segment, the segments that share one of its end points (to 0.1 m)."""
    ends: dict[tuple, list[int]] = defaultdict(list)
    for i, g in enumerate(segments):
        c = g.coords
        for p in (c[0], c[-1]):
            ends[(round(p[0], 1), round(p[1], 1))].append(i)
    nbrs: list[set[int]] = [set() for _ in segments]
    for ids in ends.values():
        for i in ids:
            nbrs[i].update(j for j in ids if j != i)
    return nbrs


def write_staff(conn: Connection, plan: StaffPlan, areas: AreaPlan) -> None:
    """The staff and assignment rows (grid and community codes turned into their ids)."""
    comm_id = areas.community_ids
    copy_rows(
        conn,
        "staff",
        ["id", "code", "name", "phone", "role", "dispatched_kind", "community_id"],
        [
            (
                s.id,
                f"demo-{s.id:05d}",
                s.name,
                s.phone,
                s.role,
                s.dispatched_kind,
                comm_id[s.community] if s.community else None,
            )
            for s in plan.staff
        ],
    )
    copy_rows(
        conn,
        "assignment",
        [
            "id",
            "staff_id",
            "role",
            "grid_id",
            "segment_id",
            "community_id",
            "valid_from",
            "valid_to",
        ],
        [
            (
                i,
                a.staff,
                a.role,
                areas.grid_ids[a.target] if a.target_kind == "grid" else None,
                a.target if a.target_kind == "segment" else None,
                comm_id[a.target] if a.target_kind == "community" else None,
                a.since,
                a.until,
            )
            for i, a in enumerate(plan.assignments, start=1)
        ],
    )
