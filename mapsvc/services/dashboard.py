"""The leadership dashboard's figures, gathered from the services that own each concept.

Nothing is computed twice here: staff and areas come from :mod:`mapsvc.services.density`,
coverage from :mod:`mapsvc.services.coverage`, quotas from :mod:`mapsvc.services.quota`,
incident figures from :func:`mapsvc.services.incidents.district_figures` / ``figures`` and
patrol compliance from :func:`mapsvc.services.patrol.district_compliance`; ``sources`` names
them in the JSON so a reader knows where each figure comes from. A figure that cannot be
computed (no incidents, nothing assigned) is ``None`` and the page shows "—".
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from mapsvc.config import Settings
from mapsvc.services import coverage as coverage_svc
from mapsvc.services import density as density_svc
from mapsvc.services import incidents as incidents_svc
from mapsvc.services import patrol as patrol_svc
from mapsvc.services import quota as quota_svc
from mapsvc.services.result_cache import ResultCache, write_state

#: where the figures the staffing services do not own come from (shown in the JSON)
SOURCES = {
    "incidents": "mapsvc.services.incidents.district_figures",
    "incidents_by_unit": "mapsvc.services.incidents.figures",
    "patrol": "mapsvc.services.patrol.district_compliance",
}


def latest_patrol_day(session: Session, day: dt.date) -> dt.date:
    """The last day up to ``day`` with any patrol track (``day`` itself when none).

    Tracks are uploaded after the walk, so "today" usually has none yet; leadership wants
    the latest complete figure rather than a 0 % that only means "not uploaded yet".
    """
    import sqlalchemy as sa

    from mapsvc.models import PatrolTrack

    last = session.scalar(sa.select(sa.func.max(PatrolTrack.day)).where(PatrolTrack.day <= day))
    return last or day


def _patrol_pct(patrol: dict | None) -> float | None:
    """Share of assigned segments patrolled, in %, from ``district_compliance``'s result.

    Accepts ``share_patrolled`` or ``share`` (a fraction 0..1), whichever the patrol service
    returns; None when nothing is assigned or patrol is not available.
    """
    if not patrol:
        return None
    share = patrol.get("share_patrolled", patrol.get("share"))
    return None if share is None else round(100.0 * share, 1)


def patrol_figures(
    session: Session, day: dt.date, settings: Settings | None = None
) -> dict[str, Any]:
    """Patrol compliance of the latest patrolled day up to ``day`` (None when unavailable).

    Kept apart from :func:`overview` because it is the slowest figure (it intersects every
    chief's segments with the day's tracks): the dashboard page loads it afterwards.
    """
    patrol = patrol_svc.district_compliance(
        session, latest_patrol_day(session, day), settings=settings
    )
    return {
        "source": SOURCES["patrol"],
        "patrol_compliance_pct": _patrol_pct(patrol),
        "patrol_day": patrol.get("day") if patrol else None,
        "patrol": patrol,
    }


def _sum_rows(rows: list[dict], keys: tuple[str, ...]) -> dict[str, float]:
    return {k: sum((r.get(k) or 0) for r in rows) for k in keys}


def incidents_as_of(day: dt.date, settings: Settings | None = None) -> dt.datetime | None:
    """The moment incident figures are replayed at for ``day``: None (now) for today or
    later, else the end of that day in the district's time zone, so a past dashboard shows
    the loop as it stood that evening rather than today's states."""
    settings = settings or Settings()
    if day >= settings.today():  # the same "today" as the pages' default date
        return None
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), settings.tz)


# --------------------------------------------------------------------------- the cache

#: how many different dashboards (database, day, arguments) are kept
CACHE_ENTRIES = 32
#: the dashboards of this process (each web worker has its own)
CACHE = ResultCache(CACHE_ENTRIES)


def overview(
    session: Session,
    day: dt.date | None = None,
    *,
    members_required: int = 2,
    quota_coef: dict[str, float] | None = None,
    quota_group: str = quota_svc.DEFAULT_GROUP,
    include_patrol: bool = True,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Everything the dashboard shows for ``day``, as plain JSON-able data.

    ``settings`` (the caller's; the defaults when None) give the district's clock and the
    patrol thresholds.

    The figures take one to two seconds to gather over a real district, and leadership
    screens ask for the same ones again and again, so a result is kept and reused for the
    same database, day and arguments while no transaction has written in the database
    since (:func:`~mapsvc.services.result_cache.write_state`). Writes invalidate at once, in every process, because a
    dispatcher who closes an incident expects to see it closed. Without writes it is
    recomputed after ``settings.dashboard_cache_seconds``, because some figures move with
    the clock alone (overdue incidents, "today"); see :class:`~mapsvc.services.result_cache.ResultCache`. Each caller
    gets its own copy.

    Returns
    -------
    dict
        ``date``; ``district`` (the headline figures); ``subdistricts`` and ``communities``
        (table rows: population, area, grids, staff, staff per km², coverage %, quota gap,
        open incidents when available); ``charts`` (``staff_per_km2_by_community``,
        ``incidents_by_month``, ``staff_by_group``); ``sources`` (the functions used for
        incident and patrol figures). With ``include_patrol=False`` the patrol figures are
        None and ``patrol_deferred`` is True: the page fetches :func:`patrol_figures`.
    """
    settings = settings or Settings()
    day = day or settings.today()
    arguments = (day, members_required, quota_coef, quota_group, include_patrol, settings)
    ttl = float(settings.dashboard_cache_seconds)
    state = write_state(session) if ttl > 0 else None
    if state is None:
        return _figures(session, *arguments)
    coef = None if quota_coef is None else tuple(sorted(quota_coef.items()))
    key = (
        session.get_bind().url.render_as_string(hide_password=True),
        day,
        members_required,
        coef,
        quota_group,
        include_patrol,
        repr(settings),
    )
    computed: list[bool] = []

    def compute() -> dict[str, Any]:
        computed.append(True)
        return _figures(session, *arguments)

    figures = CACHE.get(key, state, ttl, compute)
    if computed:
        # computing may itself write (a day's patrol coverage kept in the database, in a
        # transaction of its own), which moves the write state: kept under the old state
        # the figures would never be found again, so they are computed once more under
        # the new one (the coverage is then read, not written)
        after = write_state(session)
        if after is not None and after != state:
            figures = CACHE.get(key, after, ttl, compute)
    return copy.deepcopy(figures)


def _figures(
    session: Session,
    day: dt.date,
    members_required: int,
    quota_coef: dict[str, float] | None,
    quota_group: str,
    include_patrol: bool,
    settings: Settings,
) -> dict[str, Any]:
    """The figures of :func:`overview`, gathered from the services (no cache)."""
    cov = coverage_svc.coverage_report(session, day, members_required=members_required)
    dens = {
        lvl: density_svc.density(session, lvl, day)
        for lvl in ("district", "subdistrict", "community")
    }
    quota = quota_svc.quota_table(session, day, quota_coef, quota_group)

    as_of = incidents_as_of(day, settings)
    incidents = incidents_svc.district_figures(session, as_of=as_of)
    if not incidents["total"]:
        incidents = None  # no incidents recorded: "—" rather than 0 % on time
    patrol = patrol_figures(session, day, settings) if include_patrol else None
    open_by = {
        lvl: {r["id"]: r["open"] for r in incidents_svc.figures(session, by=lvl, as_of=as_of)}
        for lvl in ("subdistrict", "community")
    }

    d_rows = dens["district"]
    tot = _sum_rows(d_rows, ("area_km2", "population", "staff", "centres"))
    area = tot["area_km2"]
    if not d_rows:  # boundaries loaded without a district polygon: fall back to communities
        tot = _sum_rows(dens["community"], ("area_km2", "population", "staff", "centres"))
        area = tot["area_km2"]
    s = cov["summary"]
    district = {
        "name": "、".join(r["name"] for r in d_rows) or None,
        "code": ",".join(r["code"] for r in d_rows) or None,
        "population": int(tot["population"]),
        "area_km2": round(area, 2),
        "subdistricts": len(dens["subdistrict"]),
        "communities": len(dens["community"]),
        "grids": s["grids"],
        "segments": s["segments"],
        "staff": int(tot["staff"]),
        "staff_per_km2": round(tot["staff"] / area, 1) if area else None,
        "staff_per_10k": density_svc.per_10k(tot["staff"], tot["population"], 1),
        "centres": int(tot["centres"]),
        "centres_per_km2": round(tot["centres"] / area, 2) if area else None,
        "coverage_pct": s["grids_headed_pct"],
        "grids_staffed_pct": s["grids_staffed_pct"],
        "segments_chief_pct": s["segments_chief_pct"],
        "uncovered_grids": cov["uncovered"]["grids_count"],
        "uncovered_segments": cov["uncovered"]["segments_count"],
        "quota_group": quota["group"],
        "quota_required": quota["totals"]["required"],
        "quota_shortfall": quota["totals"]["shortfall"],
        "open_incidents": incidents["open"] if incidents else None,
        "closed_incidents": incidents["closed"] if incidents else None,
        "on_time_pct": incidents["on_time_pct"] if incidents else None,
        "patrol_compliance_pct": patrol["patrol_compliance_pct"] if patrol else None,
        "patrol_day": patrol["patrol_day"] if patrol else None,
        "patrol_deferred": not include_patrol,
    }

    cov_sub = {r["id"]: r for r in cov["subdistricts"]}
    cov_com = {r["id"]: r for r in cov["communities"]}
    gap = {r["id"]: r for r in quota["rows"]}

    def row(d: dict, c: dict, lvl: str) -> dict[str, Any]:
        return {
            "id": d["id"],
            "code": d["code"],
            "name": d["name"],
            "parent_name": d.get("parent_name"),
            "population": d["population"],
            "area_km2": round(d["area_km2"], 3),
            "grids": c.get("grids", 0),
            "staff": d["staff"],
            "staff_per_km2": d["staff_per_km2"],
            "coverage_pct": c.get("grids_headed_pct"),
            "grids_staffed_pct": c.get("grids_staffed_pct"),
            "segments_chief_pct": c.get("segments_chief_pct"),
            "open_incidents": open_by[lvl].get(d["id"], 0),
        }

    subdistricts = [row(d, cov_sub.get(d["id"], {}), "subdistrict") for d in dens["subdistrict"]]
    communities = []
    for d in dens["community"]:
        r = row(d, cov_com.get(d["id"], {}), "community")
        q = gap.get(d["id"])
        r["quota_required"] = q["required"] if q else None
        r["quota_gap"] = q["gap"] if q else None
        communities.append(r)

    by_density = sorted(
        (c for c in communities if c["staff_per_km2"] is not None),
        key=lambda c: c["staff_per_km2"],
        reverse=True,
    )
    charts = {
        "staff_per_km2_by_community": {
            "labels": [c["name"] for c in by_density],
            "values": [c["staff_per_km2"] for c in by_density],
            "district": district["staff_per_km2"],
        },
        "staff_by_group": {
            "labels": list(density_svc.ROLE_GROUPS),
            "values": [int(sum(r[g] for r in d_rows)) for g in density_svc.ROLE_GROUPS],
        },
        "incidents_by_month": {
            "labels": [m["month"] for m in incidents["by_month"]] if incidents else [],
            "values": [m["count"] for m in incidents["by_month"]] if incidents else [],
        },
    }
    return {
        "date": day.isoformat(),
        "district": district,
        "subdistricts": subdistricts,
        "communities": communities,
        "charts": charts,
        "incidents": incidents,
        "patrol": patrol["patrol"] if patrol else None,
        "sources": SOURCES,
    }
