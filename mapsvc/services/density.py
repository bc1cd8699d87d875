"""Staff per km² (and service centres per km²) by grid, community, subdistrict and district.

Staff are counted where their posts are on the day, taken from
:func:`mapsvc.services.assignments.holders` (so any past date works):

* grid posts (grid head, grid members) in their grid and its community,
* alley posts (chief, deputy) in the grid / community holding the segment's midpoint
  (:func:`mapsvc.services.coverage.segment_places`),
* community posts (community workers, dispatched professionals) in their community only:
  they serve the whole community, so they have no grid. Asking for those groups at grid
  level is refused with a clear message rather than showing a map of zeros.

A person with several posts in one area counts once in "all staff" and once in each group
they hold a post of. Areas are the generated geodesic ``area_km2`` columns (PostGIS
``geography``), never degrees.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from mapsvc.config import Settings
from mapsvc.core.errors import ValidationError
from mapsvc.core.values import BBox
from mapsvc.models import Community, District, Grid, ServiceCentre, Subdistrict
from mapsvc.services.assignments import TARGET_ROLES, holders
from mapsvc.services.coverage import bbox_filter, geojson_expr, segment_places

#: role groups shown on the density map (assignment roles in each)
ROLE_GROUPS: dict[str, tuple[str, ...]] = {
    "community_workers": ("community_worker",),
    "grid_staff": ("grid_head", "grid_member"),
    "alley_chiefs": ("alley_chief", "deputy_chief"),
    "dispatched": ("dispatched",),
}
GROUPS = ("all", *ROLE_GROUPS)
#: what a density map can show: staff (all or a group) or service centres
MEASURES = (*GROUPS, "centres")
LEVELS = ("grid", "community", "subdistrict", "district")
#: groups whose posts are held at community level and so have no grid
COMMUNITY_ONLY_GROUPS = ("community_workers", "dispatched")
SCHEMES = ("natural_breaks", "quantiles", "equal_interval")


def posts_on(day: dt.date) -> sa.Subquery:
    """``staff_id, role, grid_id, community_id`` of every post held on ``day``."""
    place = segment_places(day)
    parts = []
    for target, roles in TARGET_ROLES.items():
        for role in sorted(roles):
            h = holders(role, target, day).subquery()
            lit = sa.literal(role, sa.String).label("role")
            if target == "grid":
                q = sa.select(
                    h.c.staff_id, lit, h.c.target_id.label("grid_id"), Grid.community_id
                ).join(Grid, Grid.id == h.c.target_id)
            elif target == "segment":
                q = sa.select(h.c.staff_id, lit, place.c.grid_id, place.c.community_id).join(
                    place, place.c.segment_id == h.c.target_id
                )
            else:
                q = sa.select(
                    h.c.staff_id,
                    lit,
                    sa.null().cast(sa.Integer).label("grid_id"),
                    h.c.target_id.label("community_id"),
                )
            parts.append(q)
    return sa.union_all(*parts).subquery("posts")


def check_level_group(level: str, group: str = "all") -> None:
    """Refuse unknown levels/groups and community-only groups at grid level."""
    if level not in LEVELS:
        raise ValidationError(
            f"level must be one of {', '.join(LEVELS)}; got {level!r}", field="level"
        )
    if group not in MEASURES:
        raise ValidationError(
            f"group must be one of {', '.join(MEASURES)}; got {group!r}", field="group"
        )
    if level == "grid" and group in COMMUNITY_ONLY_GROUPS:
        raise ValidationError(
            f"group {group!r} is posted to communities, not grids; "
            "choose level community, subdistrict or district",
            field="group",
        )


def density(
    session: Session,
    level: str = "community",
    day: dt.date | None = None,
    *,
    bbox: BBox | None = None,
    geometry: bool = False,
    precision: int = 6,
    simplify_m: float = 0.0,
) -> list[dict[str, Any]]:
    """Staff counts and per-km² values of every area at ``level`` on ``day``.

    Each row has ``id, code, name, parent_name, area_km2, population``, ``staff`` and
    ``staff_per_km2`` (all groups), ``<group>`` and ``<group>_per_km2`` for every role
    group, ``staff_per_10k`` (per 10,000 residents) and ``centres`` /
    ``centres_per_km2`` (service centres lying in the area); ``geometry`` (GeoJSON dict
    text) when asked.
    """
    check_level_group(level)
    day = day or Settings().today()
    posts = posts_on(day)
    if level == "grid":
        key, table = posts.c.grid_id, Grid
        src = posts
    elif level == "community":
        key, table = posts.c.community_id, Community
        src = posts
    elif level == "subdistrict":
        key, table = Community.subdistrict_id, Subdistrict
        src = posts.join(Community, Community.id == posts.c.community_id)
    else:
        key, table = Subdistrict.district_id, District
        src = posts.join(Community, Community.id == posts.c.community_id).join(
            Subdistrict, Subdistrict.id == Community.subdistrict_id
        )
    staff_count = sa.func.count(sa.distinct(posts.c.staff_id))
    counts = (
        sa.select(
            key.label("area_id"),
            staff_count.label("staff"),
            *[
                staff_count.filter(posts.c.role.in_(roles)).label(g)
                for g, roles in ROLE_GROUPS.items()
            ],
        )
        .select_from(src)
        .where(key.is_not(None))
        .group_by(key)
        .subquery("counts")
    )
    if level in ("grid", "community"):
        population = table.population
    elif level == "subdistrict":
        population = (
            sa.select(sa.func.coalesce(sa.func.sum(Community.population), 0))
            .where(Community.subdistrict_id == Subdistrict.id)
            .scalar_subquery()
        )
    else:
        population = (
            sa.select(sa.func.coalesce(sa.func.sum(Community.population), 0))
            .join(Subdistrict, Subdistrict.id == Community.subdistrict_id)
            .where(Subdistrict.district_id == District.id)
            .scalar_subquery()
        )
    centres = (
        sa.select(sa.func.count())
        .select_from(ServiceCentre)
        .where(sa.func.ST_Intersects(table.geom, ServiceCentre.geom))
        .scalar_subquery()
    )
    parent = {
        "grid": (Community, Grid.community_id),
        "community": (Subdistrict, Community.subdistrict_id),
        "subdistrict": (District, Subdistrict.district_id),
        "district": (None, None),
    }[level]
    cols = [
        table.id,
        table.code,
        table.name,
        table.area_km2,
        population.label("population"),
        centres.label("centres"),
        sa.func.coalesce(counts.c.staff, 0).label("staff"),
        *[sa.func.coalesce(counts.c[g], 0).label(g) for g in ROLE_GROUPS],
    ]
    if parent[0] is not None:
        parent_alias = aliased(parent[0])
        cols.append(parent_alias.name.label("parent_name"))
    if geometry:
        cols.append(geojson_expr(table.geom, precision, simplify_m).label("geometry"))
    q = sa.select(*cols).outerjoin(counts, counts.c.area_id == table.id)
    if parent[0] is not None:
        q = q.outerjoin(parent_alias, parent_alias.id == parent[1])
    q = q.where(bbox_filter(table.geom, bbox))
    if table is Grid:
        q = q.where(Grid.on(day))
    q = q.order_by(table.code)
    out = []
    for r in session.execute(q).mappings():
        d = dict(r)
        d.setdefault("parent_name", None)
        area = d["area_km2"] or 0.0
        for g in ("staff", *ROLE_GROUPS, "centres"):
            d[f"{g}_per_km2"] = round(d[g] / area, 3) if area > 0 else None
        pop = d["population"] or 0
        d["population"] = int(pop)
        d["staff_per_10k"] = per_10k(d["staff"], pop, 2)
        out.append(d)
    return out


def per_10k(staff: float, population: float, digits: int) -> float | None:
    """Staff per 10,000 residents, rounded to ``digits``; None with no residents."""
    return round(10000.0 * staff / population, digits) if population else None


def value_key(group: str) -> str:
    """Name of the per-km² field of ``group`` in :func:`density` rows."""
    return "staff_per_km2" if group == "all" else f"{group}_per_km2"  # also "centres"


def classify(values: list[float | None], scheme: str = "natural_breaks", k: int = 5) -> dict:
    """Classes for a choropleth with mapclassify: natural breaks, quantiles or equal interval.

    ``k`` is lowered to the number of distinct values when there are fewer (mapclassify
    cannot make more classes than values). Missing values get class ``None``.

    Returns
    -------
    dict
        ``scheme``, ``k`` (classes actually made), ``bins`` (upper bounds), ``min`` and
        ``classes`` (class index per input value).
    """
    if scheme not in SCHEMES:
        raise ValidationError(
            f"scheme must be one of {', '.join(SCHEMES)}; got {scheme!r}", field="scheme"
        )
    if not isinstance(k, int) or not 2 <= k <= 9:
        raise ValidationError(f"k must be an integer from 2 to 9; got {k!r}", field="k")
    known = [float(v) for v in values if v is not None]
    if not known:
        return {"scheme": scheme, "k": 0, "bins": [], "min": None, "classes": [None] * len(values)}
    distinct = sorted(set(known))
    if len(distinct) == 1:
        bins = [distinct[0]]
        yb = [0] * len(known)
    else:
        import mapclassify
        import numpy as np

        kk = min(k, len(distinct))
        y = np.asarray(known)
        if scheme == "natural_breaks":
            # k-means based: seed it so the same data always gives the same map
            state = np.random.get_state()
            np.random.seed(0)
            try:
                c = mapclassify.NaturalBreaks(y, k=kk, initial=10)
            finally:
                np.random.set_state(state)
        elif scheme == "quantiles":
            c = mapclassify.Quantiles(y, k=kk)
        else:
            c = mapclassify.EqualInterval(y, k=kk)
        bins = [float(b) for b in c.bins]
        yb = [int(v) for v in c.yb]
    it = iter(yb)
    classes = [None if v is None else next(it) for v in values]
    return {
        "scheme": scheme,
        "k": len(bins),
        "bins": [round(b, 3) for b in bins],
        "min": round(min(known), 3),
        "classes": classes,
    }
