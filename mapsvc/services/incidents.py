"""Incidents: intake, the closed loop (state machine with an audit trail), lists and figures.

The closed loop of the seed districts is "one intake, immediate response, handling by class,
joint action, closure within a time limit, evaluation": received → dispatched → in hand →
verified → closed, with *returned* (a unit sends a wrongly dispatched case back, or the
check fails) and *reopened* (a closed case comes back). Only the transitions in
:data:`TRANSITIONS` are allowed; anything else is a :class:`Conflict` (409) that lists the
allowed ones, so a client can recover without reading the source. Every transition writes an
``incident_event`` row (actor, time, note).

No Flask here: time limits and routing distances arrive as arguments (the web layer passes
the caller's :class:`mapsvc.config.Settings`; its defaults when none are given).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from mapsvc.config import Settings
from mapsvc.core.errors import Conflict, NotFound, ValidationError
from mapsvc.core.scope import ReadScope
from mapsvc.core.values import BBox, check_lonlat
from mapsvc.models import (
    EXTERNAL_ID_UNIQUE,
    SEVERITIES,
    SOURCES,
    STATES,
    AlleySegment,
    Community,
    Grid,
    Incident,
    IncidentCategory,
    IncidentEvent,
    Staff,
    Subdistrict,
)
from mapsvc.services.chinacrs import points_to_wgs84
from mapsvc.services.fields import BIGINT_MAX, BIGINT_MIN, number, record_id, text
from mapsvc.services.geo import is_lonlat_crs
from mapsvc.services.geocode import geocode
from mapsvc.services.integrity import constraint_errors
from mapsvc.services.routing import OPEN_STATES, route_incidents

#: allowed transitions of the closed loop (state -> states it may go to)
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "received": ("dispatched",),
    "dispatched": ("in_hand", "returned"),
    "in_hand": ("verified", "returned"),
    "verified": ("closed", "returned"),
    "returned": ("dispatched",),
    "closed": ("reopened",),
    "reopened": ("dispatched",),
}
assert set(TRANSITIONS) == set(STATES)

FILTER_KEYS = (
    "category",
    "severity",
    "state",
    "date_from",
    "date_to",
    "grid",
    "community",
    "subdistrict",
    "chief",
    "bbox",
    "overdue",
    "to_confirm",
)


def time_limits(settings: Settings | None = None) -> dict[str, float]:
    """Per-class time limits in hours (``settings.incident_time_limit_hours``)."""
    limits = (settings or Settings()).incident_time_limit_hours
    return {k: float(v) for k, v in dict(limits).items()}


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --------------------------------------------------------------------------- parsing helpers


def parse_time(value: Any, field: str, tz: ZoneInfo | None = None) -> dt.datetime | None:
    """ISO 8601 date or date-time -> aware datetime.

    Values without an offset are the district's local time (``tz``, the caller's
    ``settings.tz``; the default zone when None),
    as people write them and as ``mapsvc incidents import`` reads them: a date filter
    ``2026-11-01`` starts at midnight in Beijing, not eight hours later at UTC midnight.
    """
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        t = value
    else:
        try:
            t = dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(
                f"{field} must be an ISO 8601 date or date-time; got {str(value)[:40]!r}",
                field=field,
            ) from None
    return t if t.tzinfo else t.replace(tzinfo=tz or Settings().tz)


# --------------------------------------------------------------------------- intake


def incident_dict(inc: Incident, session: Session | None = None) -> dict[str, Any]:
    """JSON-ready view of an incident (coordinates in WGS84)."""
    from geoalchemy2.shape import to_shape

    p = to_shape(inc.geom) if inc.geom is not None else None
    out = {
        "id": inc.id,
        "external_id": inc.external_id,
        "source": inc.source,
        "category": inc.category,
        "severity": inc.severity,
        "state": inc.state,
        "description": inc.description,
        "address": inc.address,
        "lon": p.x if p else None,
        "lat": p.y if p else None,
        "reported_at": inc.reported_at.isoformat() if inc.reported_at else None,
        "due_at": inc.due_at.isoformat() if inc.due_at else None,
        "closed_at": inc.closed_at.isoformat() if inc.closed_at else None,
        "rating": inc.rating,
        "community_id": inc.community_id,
        "grid_id": inc.grid_id,
        "segment_id": inc.segment_id,
        "chief_id": inc.chief_id,
        "grid_head_id": inc.grid_head_id,
        "segment_distance_m": inc.segment_distance_m,
        "location_to_confirm": inc.location_to_confirm,
        # "coordinates", or the geocoder's precision class for an address-only intake
        "located_by": inc.located_by,
        # past due and still open, or closed after its due time
        "overdue": bool(
            inc.due_at is not None
            and (
                (inc.state != "closed" and inc.due_at < now())
                or (inc.closed_at is not None and inc.closed_at > inc.due_at)
            )
        ),
        "allowed_transitions": list(TRANSITIONS.get(inc.state, ())),
    }
    if getattr(inc, "geocoded", None) is not None:
        out["geocoded"] = inc.geocoded.to_dict()
    return out


def create_incident(
    session: Session,
    data: dict[str, Any],
    *,
    actor: str | None = None,
    settings: Settings | None = None,
    address_field: str = "address",
    lon_field: str = "lon",
    lat_field: str = "lat",
) -> Incident:
    """Validate ``data``, store the incident, route it and record the intake event.

    ``data`` keys: ``category`` (required), ``lon``/``lat`` (required unless ``address``
    is given), ``crs`` (EPSG code, ``gcj02`` or ``bd09``; default WGS84), ``severity``
    (default: the category's), ``source``, ``description``, ``address``, ``reported_at``
    (default now; not in the future), ``external_id``. Raises :class:`ValidationError`
    naming the field.

    With neither ``lon`` nor ``lat`` but an ``address`` (the hotline often has nothing
    else), the point comes from the offline geocoder (:mod:`mapsvc.services.geocode`):
    ``located_by`` records the precision class, routing flags the incident
    ``location_to_confirm``, the intake event's note says what matched, and the result is
    kept on the returned object as ``inc.geocoded`` for the caller's response. An address
    that matches nothing raises a :class:`ValidationError` on ``address_field`` (the name
    the caller's request used) before anything is stored; ``lon_field`` and ``lat_field``
    likewise name the coordinates in errors (Open311 calls them ``long`` and ``lat``).
    """
    settings = settings or Settings()
    if not isinstance(data, dict):
        raise ValidationError("the request body must be a JSON object", field="body")
    code = data.get("category")
    if not code:
        raise ValidationError("category is required", field="category")
    cat = session.get(IncidentCategory, str(code))
    if cat is None:
        raise ValidationError(f"unknown category {code!r}", field="category")
    severity = data.get("severity") or cat.default_severity or "ordinary"
    if severity not in SEVERITIES:
        raise ValidationError(
            f"severity must be one of {', '.join(SEVERITIES)}; got {severity!r}",
            field="severity",
        )
    source = data.get("source") or "hotline"
    if source not in SOURCES:
        raise ValidationError(
            f"source must be one of {', '.join(SOURCES)}; got {source!r}", field="source"
        )
    address = text(data.get("address"), address_field, Incident.address)
    geocoded = None
    if all(data.get(k) in (None, "") for k in ("lon", "lat")) and address:
        geocoded = geocode(session, address, field=address_field)
        x, y, crs = [geocoded.lon], [geocoded.lat], "EPSG:4326"  # the gazetteer's CRS
    else:
        lon, lat = number(data.get("lon"), lon_field), number(data.get("lat"), lat_field)
        crs = data.get("crs") or "EPSG:4326"
        try:
            lonlat_input = is_lonlat_crs(crs)
            if lonlat_input:  # degrees are checked as given, before any conversion
                check_lonlat(lon, lat, "the request", fields=(lon_field, lat_field))
            x, y = points_to_wgs84([lon], [lat], crs)
        except ValidationError:
            raise
        except Exception:  # noqa: BLE001 - pyproj raises several types for bad CRS names
            raise ValidationError(f"unknown crs {crs!r}", field="crs") from None
        if not lonlat_input:  # metres of a projected CRS, beyond the area it covers
            check_lonlat(
                float(x[0]), float(y[0]), f"the request converted from {crs}", ("lon", "lat")
            )
    reported = parse_time(data.get("reported_at"), "reported_at", settings.tz) or now()
    if reported > now() + dt.timedelta(minutes=5):
        raise ValidationError("reported_at is in the future", field="reported_at")
    due = parse_time(data.get("due_at"), "due_at", settings.tz) or reported + dt.timedelta(
        hours=time_limits(settings)[severity]
    )
    ext = text(data.get("external_id"), "external_id", Incident.external_id)
    description = text(data.get("description"), "description", Incident.description)
    actor = text(actor, "actor", IncidentEvent.actor)
    note = text(data.get("note"), "note", IncidentEvent.note)
    duplicate = Conflict(f"external_id {ext!r} already exists", field="external_id")
    if ext is not None and session.scalar(
        sa.select(Incident.id).where(Incident.external_id == ext)
    ):
        raise duplicate
    inc = Incident(
        external_id=ext,
        source=source,
        category=cat.code,
        severity=severity,
        state="received",
        description=description,
        address=address,
        geom=f"SRID=4326;POINT({float(x[0])!r} {float(y[0])!r})",
        source_crs=str(crs),
        located_by=geocoded.precision if geocoded else "coordinates",
        reported_at=reported,
        due_at=due,
    )
    # the check above answers most duplicates; one created meanwhile by a concurrent
    # request is refused by the unique constraint, and answered the same way
    with constraint_errors(session, {EXTERNAL_ID_UNIQUE: duplicate}):
        session.add(inc)
        session.flush()
    route_incidents(
        session,
        [inc.id],
        segment_max_m=float(settings.incident_segment_max_m),
        boundary_confirm_m=float(settings.incident_boundary_confirm_m),
    )
    session.add(
        IncidentEvent(
            incident_id=inc.id,
            from_state=None,
            to_state="received",
            actor=actor or source,
            at=reported,
            note="; ".join(
                n
                for n in (
                    geocoded
                    and f"located from the address ({geocoded.precision}: {geocoded.matched})",
                    note,
                )
                if n
            )
            or None,
        )
    )
    session.flush()
    session.refresh(inc)
    inc.geocoded = geocoded  # not a column: how this request's address was located
    return inc


def get_incident(session: Session, incident_id: Any, *, for_update: bool = False) -> Incident:
    """The incident or :class:`NotFound` (also for ids that are not integers).

    ``for_update`` locks its row (``SELECT ... FOR UPDATE``) until the transaction ends
    and reads it afresh, so a change decided on its state (a transition, a rating) cannot
    interleave with another one: the second waits and then sees the first's result.
    """
    iid = record_id(incident_id)
    if iid is None:
        raise NotFound(f"incident {str(incident_id)[:40]!r} does not exist")
    if for_update:
        inc = session.get(Incident, iid, with_for_update=True, populate_existing=True)
    else:
        inc = session.get(Incident, iid)
    if inc is None:
        raise NotFound(f"incident {iid} does not exist")
    return inc


def events(session: Session, incident_id: int) -> list[dict[str, Any]]:
    rows = session.scalars(
        sa.select(IncidentEvent)
        .where(IncidentEvent.incident_id == incident_id)
        .order_by(IncidentEvent.at, IncidentEvent.id)
    ).all()
    return [
        {
            "from_state": e.from_state,
            "to_state": e.to_state,
            "actor": e.actor,
            "at": e.at.isoformat(),
            "note": e.note,
        }
        for e in rows
    ]


# --------------------------------------------------------------------------- the closed loop


def transition(
    session: Session,
    incident_id: Any,
    to_state: str,
    *,
    actor: str,
    note: str | None = None,
    at: dt.datetime | None = None,
) -> Incident:
    """Move an incident to ``to_state`` if the loop allows it; record the event.

    Raises :class:`Conflict` (409) listing the allowed transitions otherwise.
    """
    actor = text(actor, "actor", IncidentEvent.actor, required=True)
    note = text(note, "note", IncidentEvent.note)
    if to_state not in STATES:
        raise ValidationError(
            f"state must be one of {', '.join(STATES)}; got {to_state!r}", field="state"
        )
    inc = get_incident(session, incident_id, for_update=True)
    allowed = TRANSITIONS[inc.state]
    if to_state not in allowed:
        raise Conflict(
            f"incident {inc.id} is {inc.state}; it cannot go to {to_state}",
            state=inc.state,
            allowed=list(allowed),
        )
    at = at or now()
    session.add(
        IncidentEvent(
            incident_id=inc.id,
            from_state=inc.state,
            to_state=to_state,
            actor=actor,
            at=at,
            note=note,
        )
    )
    inc.state = to_state
    if to_state == "closed":
        inc.closed_at = at
    elif to_state == "reopened":
        inc.closed_at = None
        inc.rating = None
    session.flush()
    return inc


def rate(session: Session, incident_id: Any, rating: Any) -> Incident:
    """Record the satisfaction rating (1-5); only a closed incident can be rated.

    The rule holds under concurrency: the rating and every transition lock the incident's
    row, so a rating racing a reopen either comes first (and the reopen clears it) or
    comes second and is refused (409); ``ck_incident_rated_closed`` is the last word.
    """
    inc = get_incident(session, incident_id, for_update=True)
    if isinstance(rating, bool) or not isinstance(rating, int | str):
        raise ValidationError("rating must be an integer from 1 to 5", field="rating")
    try:
        value = int(rating)
    except ValueError:
        raise ValidationError("rating must be an integer from 1 to 5", field="rating") from None
    if not 1 <= value <= 5:
        raise ValidationError("rating must be an integer from 1 to 5", field="rating")
    if inc.state != "closed":
        raise Conflict(
            f"incident {inc.id} is {inc.state}; only closed incidents can be rated",
            state=inc.state,
            allowed=list(TRANSITIONS[inc.state]),
        )
    inc.rating = value
    session.flush()
    return inc


# --------------------------------------------------------------------------- lists


def _id_list(value: Any, field: str) -> list[int] | None:
    if value in (None, "", []):
        return None
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    try:
        return [int(v) for v in items]
    except (TypeError, ValueError):
        raise ValidationError(
            f"{field} must be an id or a comma list of ids", field=field
        ) from None


def _str_list(value: Any, field: str, allowed: tuple[str, ...] | None = None) -> list[str] | None:
    if value in (None, "", []):
        return None
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    items = [str(v).strip() for v in items if str(v).strip()]
    if allowed:
        bad = [v for v in items if v not in allowed]
        if bad:
            raise ValidationError(
                f"{field} must be among {', '.join(allowed)}; got {', '.join(bad)}", field=field
            )
    return items


#: the id filters: (field of :class:`IncidentFilter` and of the request, model, noun)
ID_FILTERS: tuple[tuple[str, type, str], ...] = (
    ("grid", Grid, "grid"),
    ("community", Community, "community"),
    ("subdistrict", Subdistrict, "subdistrict"),
    ("chief", Staff, "staff"),
    ("segment", AlleySegment, "segment"),
)


def _array(values: tuple[Any, ...], item_type: sa.types.TypeEngine) -> sa.BindParameter:
    """``values`` as one bound PostgreSQL array.

    One parameter for any number of values (``col = ANY(:values)``), where ``IN`` would
    bind one parameter per value: the statement's text stays the same for every filter,
    so PostgreSQL can keep one prepared statement for it.
    """
    return sa.bindparam(None, list(values), type_=ARRAY(item_type))


def _in_bigint(values: tuple[int, ...]) -> tuple[int, ...]:
    """The ids a bigint column can hold: larger ones name nothing (binding them as
    ``bigint[]`` would be a PostgreSQL error instead)."""
    return tuple(v for v in values if BIGINT_MIN <= v <= BIGINT_MAX)


#: constants of the incident conditions below, written into the SQL text rather than
#: bound: the planner then knows them even in a statement psycopg has prepared
_CLOSED = sa.literal_column("'closed'", sa.String)
_SRID = sa.literal_column("4326", sa.Integer)


def is_open(t: sa.FromClause) -> sa.ColumnElement[bool]:
    """The incidents of ``t`` (``incident`` or a relation of its columns) not closed."""
    return t.c.state != _CLOSED


def is_overdue(t: sa.FromClause, at: sa.ColumnElement[Any] | None = None) -> sa.ColumnElement[bool]:
    """Still open and past the time limit at ``at`` (default the database's ``now()``)."""
    return is_open(t) & (t.c.due_at < (sa.func.now() if at is None else at))


def is_to_confirm(t: sa.FromClause) -> sa.ColumnElement[bool]:
    """Open, and a planner must confirm where it is (see :mod:`mapsvc.services.routing`)."""
    return t.c.location_to_confirm & is_open(t)


@dataclass(frozen=True)
class IncidentFilter:
    """The incident filters of the list, the JSON API, the heatmap layers and the figures.

    One parsed value instead of an SQL string handed from module to module: each caller
    asks for :meth:`clauses` over its own relation (``incident``, an alias of it, or the
    replayed history of :func:`_incidents_as_of`) and composes them with SQLAlchemy Core,
    so a filter means the same incidents everywhere and every value a request brings
    reaches PostgreSQL as a bound parameter, never as SQL text.

    Build one with :func:`incident_filter` (from request-style values, checking ids) or
    directly (values already typed; an empty tuple or None means "no condition").

    Attributes
    ----------
    category, severity, state : tuple of str
        Any of these codes; ``state`` already has ``open`` expanded to the open states.
    reported_from : datetime, optional
        Reported at or after.
    reported_to : datetime, optional
        Reported at or before, or strictly before when ``reported_to_exclusive`` (a bare
        date ``2026-03-01`` is the whole day: before midnight that ends it).
    grid, community, subdistrict, chief, segment : tuple of int
        Any of these ids (a subdistrict through its communities).
    bbox : tuple of 4 floats, optional
        WGS84 ``(minx, miny, maxx, maxy)`` the point lies in (or on the edge of).
    overdue, to_confirm : bool
        Only open incidents past their time limit / whose place a planner must confirm.
    scope : ReadScope, optional
        What the reading account may see (:func:`mapsvc.services.permissions.read_scope`):
        its district's incidents, or a field account's own; None reads everything.
    """

    category: tuple[str, ...] = ()
    severity: tuple[str, ...] = ()
    state: tuple[str, ...] = ()
    reported_from: dt.datetime | None = None
    reported_to: dt.datetime | None = None
    reported_to_exclusive: bool = False
    grid: tuple[int, ...] = ()
    community: tuple[int, ...] = ()
    subdistrict: tuple[int, ...] = ()
    chief: tuple[int, ...] = ()
    segment: tuple[int, ...] = ()
    bbox: BBox | None = None
    overdue: bool = False
    to_confirm: bool = False
    scope: ReadScope | None = None

    @classmethod
    def parse(cls, filters: Mapping[str, Any] | None) -> IncidentFilter:
        """Filters from request-style values (strings, comma lists), checked.

        Keys: category, severity (``class`` is an alias), state (``open`` stands for every
        open state), date_from, date_to (ISO dates or date-times; without an offset in the
        district's time), grid, community, subdistrict, chief, segment (an id or a comma
        list), bbox (a tuple), overdue, to_confirm (``1``/``true``/``yes``/``on``). Other
        keys are ignored. A malformed value is a :class:`ValidationError` naming the key.
        ``tz`` (a zone name or ``ZoneInfo``, the caller's ``settings.tz``) is the clock that
        dates without an offset are read on; the default zone when absent.
        """
        f = dict(filters or {})
        tz = f.get("tz")
        tz = ZoneInfo(tz) if isinstance(tz, str) else tz
        if "class" in f and not f.get("severity"):
            f["severity"] = f.pop("class")
        # checked in this order, so the first malformed value named is the same each time
        category = _str_list(f.get("category"), "category") or []
        severity = _str_list(f.get("severity"), "severity", SEVERITIES) or []
        state = _str_list(f.get("state"), "state", (*STATES, "open")) or []
        if "open" in state:
            state = sorted(set(state) - {"open"} | set(OPEN_STATES))
        date_from = parse_time(f.get("date_from"), "date_from", tz)
        date_to = parse_time(f.get("date_to"), "date_to", tz)
        # a bare date includes that whole day: up to the midnight that ends it
        whole_day = isinstance(f.get("date_to"), str) and len(f["date_to"].strip()) == 10
        if date_to is not None and whole_day:
            date_to += dt.timedelta(days=1)
        ids = {
            key: tuple(_id_list(f.get(key), key) or ())
            for key in ("grid", "community", "chief", "segment", "subdistrict")
        }
        bbox = f.get("bbox")
        return cls(
            category=tuple(category),
            severity=tuple(severity),
            state=tuple(state),
            reported_from=date_from,
            reported_to=date_to,
            reported_to_exclusive=date_to is not None and whole_day,
            **ids,
            bbox=None if bbox is None else tuple(float(v) for v in bbox),
            overdue=truthy(f.get("overdue")),
            to_confirm=truthy(f.get("to_confirm")),
            scope=f.get("scope"),
        )

    def check_ids(self, session: Session) -> IncidentFilter:
        """``self``, or :class:`NotFound` naming the filter and the ids that name nothing.

        An unknown id would just match no incident, and a chief opening a mistyped link
        would see an empty map or list with no hint why.
        """
        for field, model, noun in ID_FILTERS:
            ids = getattr(self, field)
            if not ids:
                continue
            found = set(
                session.scalars(
                    sa.select(model.id).where(
                        model.id == sa.any_(_array(_in_bigint(ids), sa.BigInteger))
                    )
                )
            )
            if missing := [i for i in ids if i not in found]:
                raise NotFound(
                    f"{field}: {noun} {', '.join(map(str, missing))} does not exist", field=field
                )
        return self

    def clauses(self, t: sa.FromClause) -> list[sa.ColumnElement[bool]]:
        """The conditions over ``t`` (any relation with the ``incident`` columns), to AND.

        Empty when nothing is filtered: a caller may take a different plan for that (the
        heatmap splits an unfiltered district into stripes PostgreSQL bins in parallel).
        """
        c = t.c
        out: list[sa.ColumnElement[bool]] = []
        for col, values in (
            (c.category, self.category),
            (c.severity, self.severity),
            (c.state, self.state),
        ):
            if values:
                out.append(col == sa.any_(_array(values, sa.String)))
        if self.reported_from is not None:
            out.append(c.reported_at >= self.reported_from)
        if self.reported_to is not None:
            out.append(
                c.reported_at < self.reported_to
                if self.reported_to_exclusive
                else c.reported_at <= self.reported_to
            )
        for col, ids in (
            (c.grid_id, self.grid),
            (c.community_id, self.community),
            (c.chief_id, self.chief),
            (c.segment_id, self.segment),
        ):
            if ids:
                out.append(col == sa.any_(_array(_in_bigint(ids), sa.BigInteger)))
        if self.subdistrict:
            in_subdistricts = Community.subdistrict_id == sa.any_(
                _array(_in_bigint(self.subdistrict), sa.BigInteger)
            )
            out.append(c.community_id.in_(sa.select(Community.id).where(in_subdistricts)))
        if self.bbox is not None:
            x0, y0, x1, y1 = self.bbox
            # ST_Intersects, not a bare && (index boxes are float4: ~1 m off at the edges)
            out.append(
                sa.func.ST_Intersects(c.geom, sa.func.ST_MakeEnvelope(x0, y0, x1, y1, _SRID))
            )
        if self.overdue:
            out.append(is_overdue(t))
        if self.to_confirm:
            out.append(is_to_confirm(t))
        if self.scope is not None:
            out.extend(scope_clauses(t, self.scope))
        return out


def scope_clauses(t: sa.FromClause, scope: ReadScope) -> list[sa.ColumnElement[bool]]:
    """The incidents of ``t`` an account with ``scope`` may read (none for everything).

    A district account reads the incidents routed into its district's communities (one
    that fell outside every community belongs to no district); a field account those
    routed to its posts, as :meth:`~mapsvc.services.permissions.ReadScope.owns_incident`
    decides for one incident.
    """
    c = t.c
    out: list[sa.ColumnElement[bool]] = []
    if scope.district_id is not None:
        in_district = sa.select(Community.id).join(
            Subdistrict, Subdistrict.id == Community.subdistrict_id
        )
        out.append(
            c.community_id.in_(in_district.where(Subdistrict.district_id == scope.district_id))
        )
    if scope.own:
        own: list[sa.ColumnElement[bool]] = []
        if scope.staff_id is not None:
            own.append(c.chief_id == scope.staff_id)
        for col, ids in ((c.segment_id, scope.segments), (c.grid_id, scope.grids)):
            if ids:
                own.append(col == sa.any_(_array(ids, sa.BigInteger)))
        out.append(sa.or_(*own) if own else sa.false())
    return out


def incident_filter(
    filters: Mapping[str, Any] | IncidentFilter | None, session: Session | None = None
) -> IncidentFilter:
    """The :class:`IncidentFilter` of ``filters``; with a ``session``, ids are checked.

    Every service and layer that takes incident filters goes through here, so the list,
    the API, the heatmap and the figures validate and mean them the same way: malformed
    values are a :class:`ValidationError`, and (with a session) ids that name nothing a
    :class:`NotFound` naming the filter and the ids.
    """
    f = filters if isinstance(filters, IncidentFilter) else IncidentFilter.parse(filters)
    return f.check_ids(session) if session is not None else f


def truthy(v: Any) -> bool:
    """Whether a yes/no filter (``overdue``, ``to_confirm``) is on: ``1``, ``true``,
    ``yes``, ``on`` (a checked box) or True; anything else, missing included, is off."""
    return v is True or str(v).lower() in ("1", "true", "yes", "on")


#: the ``incident`` table, as the lists and figures read it
_INCIDENT: sa.Table = Incident.__table__


def list_incidents(
    session: Session,
    filters: Mapping[str, Any] | IncidentFilter | None = None,
    *,
    limit: int = 100,
    offset: int = 0,
    bbox: BBox | None = None,
) -> dict[str, Any]:
    """Incidents matching ``filters`` (see :func:`incident_filter`), newest first, with a total."""
    f = incident_filter(filters, session)
    if bbox is not None:
        f = replace(f, bbox=tuple(float(v) for v in bbox))
    where = f.clauses(_INCIDENT)
    limit = max(1, min(int(limit), 1000))
    total = session.scalar(sa.select(sa.func.count()).select_from(_INCIDENT).where(*where))
    ids = session.scalars(
        sa.select(_INCIDENT.c.id)
        .where(*where)
        .order_by(_INCIDENT.c.reported_at.desc(), _INCIDENT.c.id.desc())
        .limit(limit)
        .offset(max(0, int(offset)))
    ).all()
    by_id = {i.id: i for i in session.scalars(sa.select(Incident).where(Incident.id.in_(ids)))}
    return {
        "total": total,
        "limit": limit,
        "offset": offset,
        "items": [incident_dict(by_id[i]) for i in ids],
    }


def overdue(
    session: Session, limit: int = 1000, scope: ReadScope | None = None
) -> list[dict[str, Any]]:
    """Open incidents past their due time, most overdue first (those ``scope`` reads)."""
    where = scope_clauses(_INCIDENT, scope) if scope is not None else []
    rows = session.scalars(
        sa.select(Incident)
        .where(is_overdue(_INCIDENT), *where)
        .order_by(Incident.due_at)
        .limit(limit)
    ).all()
    return [incident_dict(i) for i in rows]


def to_confirm(
    session: Session, limit: int = 1000, scope: ReadScope | None = None
) -> list[dict[str, Any]]:
    """Open incidents whose location a planner must confirm (near a boundary / no grid),
    of those ``scope`` reads."""
    where = scope_clauses(_INCIDENT, scope) if scope is not None else []
    rows = session.scalars(
        sa.select(Incident)
        .where(is_to_confirm(_INCIDENT), *where)
        .order_by(Incident.reported_at.desc())
        .limit(limit)
    ).all()
    return [incident_dict(i) for i in rows]


# --------------------------------------------------------------------------- figures


def _figures(i: sa.FromClause, at: sa.ColumnElement[Any]) -> list[sa.ColumnElement[Any]]:
    """One definition of each closure figure over the incidents ``i``, reused by every
    grouping; "overdue" is measured at ``at``."""
    closed = i.c.state == _CLOSED
    n_closed = sa.func.count().filter(closed)
    hours = sa.extract("epoch", i.c.closed_at - i.c.reported_at) / sa.literal_column("3600.0")
    on_time = sa.func.count().filter(closed & (i.c.closed_at <= i.c.due_at))
    return [
        sa.func.count().label("count"),
        sa.func.count().filter(is_open(i)).label("open"),
        n_closed.label("closed"),
        sa.func.count().filter(is_overdue(i, at)).label("overdue"),
        sa.func.percentile_cont(sa.literal_column("0.5"))
        .within_group(hours)
        .filter(closed)
        .label("median_hours_to_close"),
        (
            sa.literal_column("100.0") * on_time / sa.func.nullif(n_closed, sa.literal_column("0"))
        ).label("on_time_pct"),
        sa.func.avg(i.c.rating).label("mean_rating"),
    ]


#: the columns of a replayed ``incident`` (:func:`_incidents_as_of`)
_AS_OF_COLUMNS = (
    "id",
    "category",
    "severity",
    "grid_id",
    "community_id",
    "chief_id",
    "segment_id",
    "geom",
    "reported_at",
    "due_at",
    "location_to_confirm",
    "state",
    "closed_at",
    "rating",
)


def _incidents_as_of(
    session: Session, as_of: dt.datetime | None
) -> tuple[sa.FromClause, sa.ColumnElement[dt.datetime]]:
    """The relation the figures read, and the moment they are taken at: incidents as
    they stood.

    ``None`` is now: the ``incident`` table itself. A past moment replays the closed loop's
    history (``incident_event``): only incidents reported by then, each in the state of its
    last transition by then, closed at that transition's time, and "overdue" measured
    against that moment. Ratings (which keep no date) count for incidents closed by then.

    The replay is one pass over the history (about 0.4 s for 500,000 events) kept in a
    temporary table for the rest of the transaction, so the dashboard's five figures
    queries share it instead of replaying five times. It has the columns of
    :data:`_AS_OF_COLUMNS`, so :meth:`IncidentFilter.clauses` apply to it as to
    ``incident``.
    """
    if as_of is None:
        return _INCIDENT, sa.literal(now(), _INCIDENT.c.reported_at.type)
    as_of = as_of if as_of.tzinfo else as_of.replace(tzinfo=dt.UTC)
    name = f"incident_as_of_{int(as_of.timestamp())}"
    # an imported incident's one event already says "closed" at reported_at: it counts
    # from its closed_at. Rows without any history (written directly) fall back to closed_at.
    effective = """CASE WHEN e.from_state IS NULL AND e.to_state = 'closed'
                        THEN coalesce(inc.closed_at, e.at) ELSE e.at END"""
    session.execute(
        sa.text(
            f"""CREATE TEMP TABLE IF NOT EXISTS {name} ON COMMIT DROP AS
            WITH last AS (
                SELECT DISTINCT ON (e.incident_id) e.incident_id, e.to_state,
                    {effective} AS eff_at
                FROM incident_event e JOIN incident inc ON inc.id = e.incident_id
                WHERE {effective} <= :f_now
                ORDER BY e.incident_id, eff_at DESC, e.id DESC)
            SELECT inc.id, inc.category, inc.severity, inc.grid_id, inc.community_id,
                inc.chief_id, inc.segment_id, inc.geom, inc.reported_at, inc.due_at,
                inc.location_to_confirm, s.state,
                CASE WHEN last.to_state = 'closed' THEN last.eff_at
                     WHEN last.to_state IS NULL AND s.state = 'closed' THEN inc.closed_at
                END AS closed_at,
                CASE WHEN s.state = 'closed' THEN inc.rating END AS rating
            FROM incident inc LEFT JOIN last ON last.incident_id = inc.id
            CROSS JOIN LATERAL (SELECT coalesce(last.to_state,
                CASE WHEN inc.closed_at <= :f_now THEN 'closed' ELSE 'received' END) AS state) s
            WHERE inc.reported_at <= :f_now"""
        ),
        {"f_now": as_of},
    )
    replay = sa.table(name, *(sa.column(c, _INCIDENT.c[c].type) for c in _AS_OF_COLUMNS))
    return replay, sa.literal(as_of, _INCIDENT.c.reported_at.type)


def _units(by: str, i: sa.FromClause) -> tuple[sa.FromClause, sa.FromClause, Any]:
    """The incidents ``i`` joined to the unit ``by`` names (``u``), and its population."""
    if by == "grid":
        u = Grid.__table__.alias("u")
        return i.join(u, u.c.id == i.c.grid_id), u, u.c.population
    if by == "community":
        u = Community.__table__.alias("u")
        return i.join(u, u.c.id == i.c.community_id), u, u.c.population
    if by == "subdistrict":
        c = Community.__table__.alias("c")
        u = Subdistrict.__table__.alias("u")
        joined = i.join(c, c.c.id == i.c.community_id).join(u, u.c.id == c.c.subdistrict_id)
        population = (
            sa.select(sa.func.sum(Community.population))
            .where(Community.subdistrict_id == u.c.id)
            .scalar_subquery()
        )
        return joined, u, population
    u = Staff.__table__.alias("u")  # chiefs have no residents
    return i.join(u, u.c.id == i.c.chief_id), u, sa.null().cast(sa.BigInteger)


#: what ``by`` may group the figures by
UNITS = ("grid", "community", "subdistrict", "chief")


def figures(
    session: Session,
    by: str = "grid",
    filters: Mapping[str, Any] | IncidentFilter | None = None,
    as_of: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """Counts, per 1,000 residents, median hours to close and on-time closure % per unit.

    ``by`` is grid, community, subdistrict or chief (chiefs have no residents, so their
    ``per_1000`` is None). ``filters`` as in :func:`incident_filter`; ``as_of`` a past
    moment to replay the figures at (default now).
    """
    if by not in UNITS:
        raise ValidationError(f"by must be one of {', '.join(UNITS)}; got {by!r}", field="by")
    f = incident_filter(filters)
    i, at = _incidents_as_of(session, as_of)
    joined, u, population = _units(by, i)
    n = sa.func.count()
    rows = session.execute(
        sa.select(
            u.c.id.label("id"),
            u.c.code,
            u.c.name,
            population.label("population"),
            *_figures(i, at),
        )
        .select_from(joined)
        .where(*f.clauses(i))
        .group_by(u.c.id)
        .order_by(n.desc())
    ).mappings()
    out = []
    for r in rows:
        d = dict(r)
        popn = d.get("population")
        d["per_1000"] = round(1000.0 * d["count"] / popn, 3) if popn else None
        for k in ("median_hours_to_close", "on_time_pct", "mean_rating"):
            d[k] = None if d[k] is None else round(float(d[k]), 2)
        out.append(d)
    return out


def district_figures(
    session: Session,
    filters: Mapping[str, Any] | IncidentFilter | None = None,
    as_of: dt.datetime | None = None,
) -> dict[str, Any]:
    """District-wide closure figures (for the dashboard) and incidents per month.

    ``as_of``: a past moment to replay the figures at (see :func:`_incidents_as_of`).

    Keys: total, open, closed, overdue, to_confirm, on_time_pct, median_hours_to_close,
    mean_rating, per_1000, by_month (list of ``{month: 'YYYY-MM', count}``), by_severity.
    """
    f = incident_filter(filters)
    i, at = _incidents_as_of(session, as_of)
    where = f.clauses(i)
    r = (
        session.execute(
            sa.select(
                *_figures(i, at), sa.func.count().filter(is_to_confirm(i)).label("to_confirm")
            )
            .select_from(i)
            .where(*where)
        )
        .mappings()
        .one()
    )
    out = {k: r[k] for k in ("count", "open", "closed", "overdue", "to_confirm")}
    out["total"] = out.pop("count")
    for k in ("median_hours_to_close", "on_time_pct", "mean_rating"):
        out[k] = None if r[k] is None else round(float(r[k]), 2)
    population = session.scalar(sa.select(sa.func.sum(Community.population))) or 0
    out["per_1000"] = round(1000.0 * out["total"] / population, 3) if population else None
    month = sa.func.to_char(
        sa.func.date_trunc(sa.literal_column("'month'"), i.c.reported_at),
        sa.literal_column("'YYYY-MM'"),
    )
    out["by_month"] = [
        {"month": m, "count": c}
        for m, c in session.execute(
            sa.select(month, sa.func.count()).where(*where).group_by(month).order_by(month)
        )
    ]
    out["by_severity"] = {
        s: c
        for s, c in session.execute(
            sa.select(i.c.severity, sa.func.count()).where(*where).group_by(i.c.severity)
        )
    }
    return out
