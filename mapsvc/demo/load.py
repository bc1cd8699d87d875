"""``load_demo``: the demo built as a list of named stages, in one transaction.

Each stage is a small function of the :class:`DemoBuild` it shares with the others: it
reads what earlier stages planned (areas, streets, staff), plans its own part and writes
it. Every stage that draws random numbers has its own stream (``[seed, k]``), so the same
seed gives the same demo, and changing one stage leaves the others' data as it was.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import shapely
import sqlalchemy as sa
from shapely.geometry import LineString
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from mapsvc.config import Settings
from mapsvc.core.progress import Progress, no_progress
from mapsvc.demo.accounts import demo_password, write_accounts
from mapsvc.demo.areas import AreaPlan, plan_areas, write_boundaries, write_grids
from mapsvc.demo.centres import write_centres
from mapsvc.demo.geometry import Metric, as_multi, dense
from mapsvc.demo.incidents import write_incident_events, write_incidents
from mapsvc.demo.names import Names
from mapsvc.demo.patrols import write_tracks, write_visits
from mapsvc.demo.source import read_outline, read_units
from mapsvc.demo.staff import StaffPlan, plan_staff, write_staff
from mapsvc.demo.streets import Street, old_city, plan_streets, write_segments
from mapsvc.demo.summary import summarize
from mapsvc.demo.write import reset_sequences
from mapsvc.models import table_names
from mapsvc.services.categories import ensure_categories
from mapsvc.services.routing import route_incidents

#: tables a demo load leaves as they are: a district's edited category names survive it
#: (:func:`~mapsvc.services.categories.ensure_categories` only adds missing ones), and the
#: audit trail, which cannot be emptied (it records the load's TRUNCATE and its rows)
KEPT_TABLES = frozenset({"incident_category", "audit_log"})


@dataclass
class DemoBuild:
    """The inputs of one demo load, and what its stages have planned so far.

    The planned fields are set by the stage that makes them (see :data:`STAGES`); reading
    one before that stage ran is an AttributeError naming it.
    """

    session: Session
    seed: int
    incidents: int
    time_limits_h: Mapping[str, float]
    tz: ZoneInfo
    now: dt.datetime
    progress: Progress
    password: str = ""
    metric: Metric = field(init=False)
    areas: AreaPlan = field(init=False)
    names: Names = field(init=False)
    streets: list[Street] = field(init=False)
    staff: StaffPlan = field(init=False)
    logins: dict[str, Any] = field(init=False)

    @property
    def conn(self) -> Connection:
        """The connection of the load's transaction (for COPY and set-based SQL)."""
        return self.session.connection()

    @property
    def segments_m(self) -> list[LineString]:
        """The planned alley segments in the metric frame; segment id = position + 1."""
        return [s.geom for s in self.streets]

    def rng(self, stream: int | None = None) -> np.random.Generator:
        """The random stream of one stage: ``seed`` itself for the areas, ``[seed, k]`` else."""
        return np.random.default_rng(self.seed if stream is None else [self.seed, stream])


@dataclass(frozen=True)
class Stage:
    """One named step of the demo load."""

    name: str
    run: Callable[[DemoBuild], None]


def _plan_areas(b: DemoBuild) -> None:
    """Read the real data and plan communities, subdistricts and grids (no database yet)."""
    units = read_units()
    outline_ll = read_outline()
    c = outline_ll.centroid
    b.metric = Metric(c.x, c.y)
    # the stored outline is this densified one too, so that district, subdistricts and
    # communities share every boundary vertex (same area; edges split, not moved)
    district_m = as_multi(dense(b.metric.to_m(outline_ll)))
    b.areas = plan_areas(units, district_m, b.metric, b.rng())


def _clear(b: DemoBuild) -> None:
    """Empty every table but :data:`KEPT_TABLES`; make sure the categories exist."""
    cleared = [t for t in table_names() if t not in KEPT_TABLES]
    b.conn.execute(sa.text(f"TRUNCATE {', '.join(cleared)} RESTART IDENTITY CASCADE"))
    ensure_categories(b.session)


def _boundaries(b: DemoBuild) -> None:
    write_boundaries(b.conn, b.areas, b.metric)


def _grids(b: DemoBuild) -> None:
    write_grids(b.conn, b.areas, b.metric)


def _streets(b: DemoBuild) -> None:
    b.names = Names(b.rng(1))
    b.streets = plan_streets(
        b.areas.district, b.rng(2), b.names, old_city(b.areas.communities, b.metric)
    )
    write_segments(b.conn, b.streets, b.metric)


def _staff(b: DemoBuild) -> None:
    b.staff = plan_staff(b.rng(3), b.names, b.areas, b.segments_m, b.now.date())
    write_staff(b.conn, b.staff, b.areas)


def _centres(b: DemoBuild) -> None:
    write_centres(b.conn, b.areas, b.metric)


def _incidents(b: DemoBuild) -> None:
    write_incidents(
        b.conn,
        b.rng(4),
        b.incidents,
        b.now,
        b.metric,
        b.areas,
        b.streets,
        b.time_limits_h,
        b.tz,
        b.progress,
    )
    write_incident_events(b.conn, b.now)


def _routing(b: DemoBuild) -> None:
    """Route the incidents to grid, segment, chief and grid head, as live ones are."""
    if b.incidents > 0:
        route_incidents(b.session)


def _tracks(b: DemoBuild) -> None:
    write_tracks(b.conn, b.rng(5), b.now, b.tz, b.metric, b.segments_m, b.staff)


def _visits(b: DemoBuild) -> None:
    write_visits(b.conn, b.rng(6), b.now, b.tz, b.metric, b.segments_m, b.areas, b.staff)


def _plans(b: DemoBuild) -> None:
    """A draft plan for the community whose grids are furthest from the 300-500 household
    target, so the planner's workbench opens on real work."""
    from mapsvc.services.plans import create_plan

    code = b.conn.execute(
        sa.text(
            """SELECT c.code FROM community c JOIN grid g ON g.community_id = c.id
               GROUP BY c.code
               ORDER BY max(abs(g.households - LEAST(GREATEST(g.households, 300), 500))) DESC,
                        c.code
               LIMIT 1"""
        )
    ).scalar()
    if code is None:
        return
    create_plan(b.session, name="示例方案：网格调整", community_codes=[code], author="demo-planner")
    # blocks for automatic grids, in that community's subdistrict (a district imports its
    # own: mapsvc import units); about 15 households a block
    from mapsvc.services.units import write_units
    from mapsvc.services.units_gen import generate_units

    rows = b.conn.execute(
        sa.text(
            """SELECT c.id, c.code, c.households, ST_AsBinary(c.geom) AS wkb FROM community c
                WHERE c.subdistrict_id = (SELECT subdistrict_id FROM community WHERE code = :c)
                ORDER BY c.code"""
        ),
        {"c": code},
    ).all()
    for k, r in enumerate(rows):
        units = generate_units(
            shapely.from_wkb(bytes(r.wkb)),
            n=max(20, r.households // 15),
            households=int(r.households),
            seed=b.seed * 1000 + k,
            prefix=f"{r.code}-",
            groups=3,
        )
        write_units(b.session, r.id, units, "demo")


def _accounts(b: DemoBuild) -> None:
    """One account per role (the people linked to demo staff) and the hotline's token."""
    b.logins = write_accounts(b.session, b.password, b.seed)


def _sequences(b: DemoBuild) -> None:
    reset_sequences(b.conn, table_names())


#: the demo load, in order
STAGES: tuple[Stage, ...] = (
    Stage("plan areas", _plan_areas),
    Stage("clear", _clear),
    Stage("boundaries", _boundaries),
    Stage("grids", _grids),
    Stage("streets", _streets),
    Stage("staff", _staff),
    Stage("service centres", _centres),
    Stage("incidents", _incidents),
    Stage("routing", _routing),
    Stage("patrol tracks", _tracks),
    Stage("weekly visits", _visits),
    Stage("draft plan and blocks", _plans),
    Stage("accounts", _accounts),
    Stage("sequences", _sequences),
)


def load_demo(
    engine: Engine,
    *,
    seed: int,
    incidents: int,
    time_limits_h: Mapping[str, float],
    tz: ZoneInfo,
    password: str,
    progress: Progress = no_progress,
    now: dt.datetime | None = None,
) -> dict:
    """Replace the database's content with the demo district; return a summary.

    One transaction: either the whole demo is there afterwards, or nothing changed. The
    same ``seed`` (and the same ``now``) gives the same data and summary. Existing
    districts, staff, incidents etc. are removed first (the CLI only calls this with
    ``--force`` when data exists). The areas are planned before the tables are cleared,
    so a running service is locked out for the writing only.

    Parameters
    ----------
    engine : Engine
        Target database at the latest schema.
    seed : int
        Seed of every random choice.
    incidents : int
        Number of incidents over the past year (the real demo uses 100,000).
    time_limits_h : mapping
        Time limit (限时办结) of each severity class in hours (``INCIDENT_TIME_LIMIT_HOURS``):
        incidents are due that long after they were reported.
    tz : ZoneInfo
        The district's clock (``TIMEZONE``): which day "yesterday" is for the patrols, when
        a morning round starts, the hours incidents are reported at.
    progress : callable, optional
        Progress factory like :func:`mapsvc.core.progress.no_progress` (the default, which
        shows nothing); the CLI passes ``mapsvc.commands.common.progress``.
    password : str
        The password of every demo account (``demo_password``; see
        :func:`mapsvc.demo.accounts.demo_password`); the summary's ``logins`` show it.
    now : datetime, optional
        The demo's "now" (default: today 00:00 UTC, so a day's loads are identical).

    See Also
    --------
    arguments_from_settings : these arguments from the service's configuration.
    """
    if now is None:
        now = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    with (
        progress(total=len(STAGES), desc="demo", unit="stage") as bar,
        Session(bind=engine, expire_on_commit=False) as session,
        session.begin(),
    ):
        build = DemoBuild(session, seed, incidents, time_limits_h, tz, now, progress, password)
        for stage in STAGES:
            stage.run(build)
            bar.update(1)
        return {**summarize(build.conn, seed), "logins": build.logins}


def arguments_from_settings(
    settings: Settings, *, seed: int | None = None, incidents: int | None = None
) -> dict[str, Any]:
    """:func:`load_demo`'s keyword arguments from the service's settings.

    ``seed`` and ``incidents`` override ``settings.demo_seed`` and ``demo_incidents`` (the
    CLI's ``--seed`` and ``--incidents``); the time limits and the time zone always come
    from the settings, so the demo's incidents are due as live ones would be. The demo
    accounts' password is ``settings.demo_password`` or the one kept in the var folder.
    """
    return {
        "password": demo_password(settings)[0],
        "seed": int(settings.demo_seed) if seed is None else seed,
        "incidents": int(settings.demo_incidents) if incidents is None else incidents,
        "time_limits_h": {k: float(v) for k, v in settings.incident_time_limit_hours.items()},
        "tz": settings.tz,
    }


def is_loaded(engine: Engine) -> bool:
    """True when a district exists (the demo or a planner's own data)."""
    with engine.connect() as conn:
        return bool(conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM district)")).scalar())
