"""Incidents: intake, the closed loop (state machine with an audit trail), lists and figures.

The closed loop of the seed districts is "one intake, immediate response, handling by class,
joint action, closure within a time limit, evaluation": received → dispatched → in hand →
verified → closed, with *returned* (a unit sends a wrongly dispatched case back, or the
check fails) and *reopened* (a closed case comes back). Only the transitions in
:data:`TRANSITIONS` are allowed; anything else is a :class:`Conflict` (409) that lists the
allowed ones, so a client can recover without reading the source. Every transition writes an
``incident_event`` row (actor, time, note).

No Flask here: time limits and routing distances arrive as arguments (the web layer passes
the app config; the defaults are :data:`mapsvc.config.DEFAULTS`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from layers.base import BBox
from mapsvc.config import DEFAULTS, LOCAL_TZ
from mapsvc.models import Incident, IncidentCategory
from mapsvc.models.core import SEVERITIES, SOURCES, STATES
from mapsvc.models.incidents import IncidentEvent
from mapsvc.services.chinacrs import points_to_wgs84
from mapsvc.services.errors import Conflict, NotFound, ValidationError
from mapsvc.services.fields import number, record_id, text
from mapsvc.services.geocode import geocode
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


def time_limits(config: dict | None = None) -> dict[str, float]:
    """Per-class time limits in hours (``INCIDENT_TIME_LIMIT_HOURS``)."""
    limits = (config or DEFAULTS).get("INCIDENT_TIME_LIMIT_HOURS") or DEFAULTS[
        "INCIDENT_TIME_LIMIT_HOURS"
    ]
    return {k: float(v) for k, v in dict(limits).items()}


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --------------------------------------------------------------------------- parsing helpers


def parse_time(value: Any, field: str) -> dt.datetime | None:
    """ISO 8601 date or date-time -> aware datetime.

    Values without an offset are the district's local time (:data:`mapsvc.config.LOCAL_TZ`),
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
    return t if t.tzinfo else t.replace(tzinfo=LOCAL_TZ)


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
    config: dict | None = None,
    address_field: str = "address",
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
    the caller's request used) before anything is stored.
    """
    config = config or DEFAULTS
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
        lon, lat = number(data.get("lon"), "lon"), number(data.get("lat"), "lat")
        if not (-180 <= lon <= 180):
            raise ValidationError("lon must be between -180 and 180", field="lon")
        if not (-90 <= lat <= 90):
            raise ValidationError("lat must be between -90 and 90", field="lat")
        crs = data.get("crs") or "EPSG:4326"
        try:
            x, y = points_to_wgs84([lon], [lat], crs)
        except Exception:  # noqa: BLE001 - pyproj raises several types for bad CRS names
            raise ValidationError(f"unknown crs {crs!r}", field="crs") from None
    reported = parse_time(data.get("reported_at"), "reported_at") or now()
    if reported > now() + dt.timedelta(minutes=5):
        raise ValidationError("reported_at is in the future", field="reported_at")
    due = parse_time(data.get("due_at"), "due_at") or reported + dt.timedelta(
        hours=time_limits(config)[severity]
    )
    ext = text(data.get("external_id"), "external_id", Incident.external_id)
    description = text(data.get("description"), "description", Incident.description)
    actor = text(actor, "actor", IncidentEvent.actor)
    note = text(data.get("note"), "note", IncidentEvent.note)
    if ext is not None and session.scalar(
        sa.select(Incident.id).where(Incident.external_id == ext)
    ):
        raise Conflict(f"external_id {ext!r} already exists", field="external_id")
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
    session.add(inc)
    session.flush()
    route_incidents(
        session,
        [inc.id],
        segment_max_m=float(config.get("INCIDENT_SEGMENT_MAX_M", 30.0)),
        boundary_confirm_m=float(config.get("INCIDENT_BOUNDARY_CONFIRM_M", 15.0)),
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


def get_incident(session: Session, incident_id: Any) -> Incident:
    """The incident or :class:`NotFound` (also for ids that are not integers)."""
    iid = record_id(incident_id)
    if iid is None:
        raise NotFound(f"incident {str(incident_id)[:40]!r} does not exist")
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
    inc = session.get(Incident, get_incident(session, incident_id).id, with_for_update=True)
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
    """Record the satisfaction rating (1-5); only a closed incident can be rated."""
    inc = get_incident(session, incident_id)
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


#: id filters of :func:`filter_sql` (its parameter names): (filter name, table, noun)
ID_FILTERS = {
    "f_grid": ("grid", "grid", "grid"),
    "f_community": ("community", "community", "community"),
    "f_sub": ("subdistrict", "subdistrict", "subdistrict"),
    "f_chief": ("chief", "staff", "staff"),
    "f_segment": ("segment", "alley_segment", "segment"),
}


def filter_sql(
    filters: dict[str, Any], alias: str = "i", session: Session | None = None
) -> tuple[str, dict[str, Any]]:
    """SQL condition over ``incident {alias}`` for the list/heatmap filters, with params.

    Shared by the list API, the heatmap layer and the figures, so a filter means the same
    everywhere. Keys: category, severity (``class`` is an alias), state, date_from, date_to,
    grid, community, subdistrict, chief (ids), bbox (tuple), overdue, to_confirm (bools).

    With a ``session``, an id that names nothing is a :class:`NotFound` naming the filter
    and the id: otherwise it would just match no incident, and a chief opening a mistyped
    link would see an empty map or list with no hint why.
    """
    where, params = _filter_sql(filters, alias)
    if session is not None:
        for key, (field, table, noun) in ID_FILTERS.items():
            if ids := params.get(key):
                found = set(
                    session.scalars(
                        sa.text(f"SELECT id FROM {table} WHERE id = ANY(:ids)"), {"ids": ids}
                    )
                )
                if missing := [i for i in ids if i not in found]:
                    raise NotFound(
                        f"{field}: {noun} {', '.join(map(str, missing))} does not exist",
                        field=field,
                    )
    return where, params


def _filter_sql(filters: dict[str, Any], alias: str) -> tuple[str, dict[str, Any]]:
    a = alias
    conds: list[str] = []
    params: dict[str, Any] = {}
    f = dict(filters)
    if "class" in f and not f.get("severity"):
        f["severity"] = f.pop("class")
    if v := _str_list(f.get("category"), "category"):
        conds.append(f"{a}.category = ANY(:f_category)")
        params["f_category"] = v
    if v := _str_list(f.get("severity"), "severity", SEVERITIES):
        conds.append(f"{a}.severity = ANY(:f_severity)")
        params["f_severity"] = v
    if v := _str_list(f.get("state"), "state", (*STATES, "open")):
        if "open" in v:
            v = sorted(set(v) - {"open"} | set(OPEN_STATES))
        conds.append(f"{a}.state = ANY(:f_state)")
        params["f_state"] = v
    if (t := parse_time(f.get("date_from"), "date_from")) is not None:
        conds.append(f"{a}.reported_at >= :f_from")
        params["f_from"] = t
    if (t := parse_time(f.get("date_to"), "date_to")) is not None:
        if isinstance(f.get("date_to"), str) and len(f["date_to"].strip()) == 10:
            t += dt.timedelta(days=1)  # a bare date includes that whole day
            conds.append(f"{a}.reported_at < :f_to")
        else:
            conds.append(f"{a}.reported_at <= :f_to")
        params["f_to"] = t
    for key, col in (
        ("grid", "grid_id"),
        ("community", "community_id"),
        ("chief", "chief_id"),
        ("segment", "segment_id"),
    ):
        if v := _id_list(f.get(key), key):
            conds.append(f"{a}.{col} = ANY(:f_{key})")
            params[f"f_{key}"] = v
    if v := _id_list(f.get("subdistrict"), "subdistrict"):
        conds.append(
            f"{a}.community_id IN (SELECT id FROM community WHERE subdistrict_id = ANY(:f_sub))"
        )
        params["f_sub"] = v
    if (bbox := f.get("bbox")) is not None:
        # ST_Intersects, not a bare && (index boxes are float4: ~1 m off at the edges)
        conds.append(f"ST_Intersects({a}.geom, ST_MakeEnvelope(:f_x0, :f_y0, :f_x1, :f_y1, 4326))")
        params.update(zip(("f_x0", "f_y0", "f_x1", "f_y1"), bbox, strict=True))
    if _truthy(f.get("overdue")):
        conds.append(f"{a}.state <> 'closed' AND {a}.due_at < now()")
    if _truthy(f.get("to_confirm")):
        conds.append(f"{a}.location_to_confirm AND {a}.state <> 'closed'")
    return (" AND ".join(conds) or "TRUE"), params


def _truthy(v: Any) -> bool:
    return v is True or str(v).lower() in ("1", "true", "yes", "on")


def list_incidents(
    session: Session,
    filters: dict[str, Any] | None = None,
    *,
    limit: int = 100,
    offset: int = 0,
    bbox: BBox | None = None,
) -> dict[str, Any]:
    """Incidents matching ``filters`` (see :func:`filter_sql`), newest first, with a total."""
    f = dict(filters or {})
    if bbox is not None:
        f["bbox"] = bbox
    where, params = filter_sql(f, session=session)
    limit = max(1, min(int(limit), 1000))
    total = session.scalar(sa.text(f"SELECT count(*) FROM incident i WHERE {where}"), params)
    ids = session.scalars(
        sa.text(
            f"SELECT i.id FROM incident i WHERE {where} "
            "ORDER BY i.reported_at DESC, i.id DESC LIMIT :lim OFFSET :off"
        ),
        {**params, "lim": limit, "off": max(0, int(offset))},
    ).all()
    by_id = {i.id: i for i in session.scalars(sa.select(Incident).where(Incident.id.in_(ids)))}
    return {
        "total": total,
        "limit": limit,
        "offset": offset,
        "items": [incident_dict(by_id[i]) for i in ids],
    }


def overdue(session: Session, limit: int = 1000) -> list[dict[str, Any]]:
    """Open incidents past their due time, most overdue first."""
    rows = session.scalars(
        sa.select(Incident)
        .where(Incident.state != "closed", Incident.due_at < sa.func.now())
        .order_by(Incident.due_at)
        .limit(limit)
    ).all()
    return [incident_dict(i) for i in rows]


def to_confirm(session: Session, limit: int = 1000) -> list[dict[str, Any]]:
    """Open incidents whose location a planner must confirm (near a boundary / no grid)."""
    rows = session.scalars(
        sa.select(Incident)
        .where(Incident.location_to_confirm.is_(True), Incident.state != "closed")
        .order_by(Incident.reported_at.desc())
        .limit(limit)
    ).all()
    return [incident_dict(i) for i in rows]


# --------------------------------------------------------------------------- figures

#: one definition of each closure figure, reused by every grouping
_FIGURES_SQL = """
    count(*) AS count,
    count(*) FILTER (WHERE i.state <> 'closed') AS open,
    count(*) FILTER (WHERE i.state = 'closed') AS closed,
    count(*) FILTER (WHERE i.state <> 'closed' AND i.due_at < :f_now) AS overdue,
    percentile_cont(0.5) WITHIN GROUP (
        ORDER BY extract(epoch FROM i.closed_at - i.reported_at) / 3600.0
    ) FILTER (WHERE i.state = 'closed') AS median_hours_to_close,
    100.0 * count(*) FILTER (WHERE i.state = 'closed' AND i.closed_at <= i.due_at)
        / NULLIF(count(*) FILTER (WHERE i.state = 'closed'), 0) AS on_time_pct,
    avg(i.rating) AS mean_rating
"""


def _incidents_as_of(session: Session, as_of: dt.datetime | None) -> tuple[str, dict[str, Any]]:
    """The relation the figures read as ``i``, and its params: incidents as they stood.

    ``None`` is now: the ``incident`` table itself. A past moment replays the closed loop's
    history (``incident_event``): only incidents reported by then, each in the state of its
    last transition by then, closed at that transition's time, and "overdue" measured
    against that moment. Ratings (which keep no date) count for incidents closed by then.

    The replay is one pass over the history (about 0.4 s for 500,000 events) kept in a
    temporary table for the rest of the transaction, so the dashboard's five figures
    queries share it instead of replaying five times.
    """
    if as_of is None:
        return "incident", {"f_now": now()}
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
    return name, {"f_now": as_of}


_GROUPS = {
    # by: (join to name the unit, key expression, name columns, population expression)
    "grid": ("JOIN grid u ON u.id = i.grid_id", "u.id", "u.code, u.name", "u.population"),
    "community": (
        "JOIN community u ON u.id = i.community_id",
        "u.id",
        "u.code, u.name",
        "u.population",
    ),
    "subdistrict": (
        "JOIN community c ON c.id = i.community_id JOIN subdistrict u ON u.id = c.subdistrict_id",
        "u.id",
        "u.code, u.name",
        "(SELECT sum(population) FROM community WHERE subdistrict_id = u.id)",
    ),
    "chief": ("JOIN staff u ON u.id = i.chief_id", "u.id", "u.code, u.name", "NULL::bigint"),
}


def figures(
    session: Session,
    by: str = "grid",
    filters: dict[str, Any] | None = None,
    as_of: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """Counts, per 1,000 residents, median hours to close and on-time closure % per unit.

    ``by`` is grid, community, subdistrict or chief (chiefs have no residents, so their
    ``per_1000`` is None). ``filters`` as in :func:`filter_sql`; ``as_of`` a past moment
    to replay the figures at (default now).
    """
    if by not in _GROUPS:
        raise ValidationError(f"by must be one of {', '.join(_GROUPS)}; got {by!r}", field="by")
    join, key, names, pop = _GROUPS[by]
    where, params = filter_sql(filters or {})
    src, src_params = _incidents_as_of(session, as_of)
    rows = session.execute(
        sa.text(
            f"""SELECT {key} AS id, {names}, {pop} AS population,
            {_FIGURES_SQL}
            FROM {src} i {join} WHERE {where}
            GROUP BY {key} ORDER BY count(*) DESC"""
        ),
        {**params, **src_params},
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
    session: Session, filters: dict[str, Any] | None = None, as_of: dt.datetime | None = None
) -> dict[str, Any]:
    """District-wide closure figures (for the dashboard) and incidents per month.

    ``as_of``: a past moment to replay the figures at (see :func:`_incidents_as_of`).

    Keys: total, open, closed, overdue, to_confirm, on_time_pct, median_hours_to_close,
    mean_rating, per_1000, by_month (list of ``{month: 'YYYY-MM', count}``), by_severity.
    """
    where, params = filter_sql(filters or {})
    src, src_params = _incidents_as_of(session, as_of)
    params = {**params, **src_params}
    r = (
        session.execute(
            sa.text(
                f"""SELECT {_FIGURES_SQL},
                count(*) FILTER (WHERE i.location_to_confirm AND i.state <> 'closed')
                    AS to_confirm
                FROM {src} i WHERE {where}"""
            ),
            params,
        )
        .mappings()
        .one()
    )
    out = {k: r[k] for k in ("count", "open", "closed", "overdue", "to_confirm")}
    out["total"] = out.pop("count")
    for k in ("median_hours_to_close", "on_time_pct", "mean_rating"):
        out[k] = None if r[k] is None else round(float(r[k]), 2)
    population = session.scalar(sa.text("SELECT sum(population) FROM community")) or 0
    out["per_1000"] = round(1000.0 * out["total"] / population, 3) if population else None
    out["by_month"] = [
        {"month": m, "count": c}
        for m, c in session.execute(
            sa.text(
                f"""SELECT to_char(date_trunc('month', i.reported_at), 'YYYY-MM') m, count(*)
                FROM {src} i WHERE {where} GROUP BY 1 ORDER BY 1"""
            ),
            params,
        )
    ]
    out["by_severity"] = {
        s: c
        for s, c in session.execute(
            sa.text(f"SELECT i.severity, count(*) FROM {src} i WHERE {where} GROUP BY 1"),
            params,
        )
    }
    return out
