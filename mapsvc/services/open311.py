"""Open311 GeoReport v2 (http://wiki.open311.org/GeoReport_v2): the logic behind
``/open311/v2/``. Incident categories are the services; incidents are the requests.

Everything here returns plain lists and dicts shaped as the specification's JSON; the web
layer renders them as JSON or XML. Requests are created through
:func:`mapsvc.services.incidents.create_incident`, so an Open311 request is validated,
routed and recorded exactly like any other intake. Each created request also gets a token
(stored as the incident's ``external_id``) for ``tokens/{token}``.

A request may come with ``address_string`` and no ``lat``/``long`` (the spec allows
either): the address is then located by the offline geocoder
(:mod:`mapsvc.services.geocode`), the request is flagged ``location_to_confirm``, and both
the POST answer's ``service_notice`` and ``GET requests`` say how it was located
(``located_by`` is ``coordinates`` or the geocoder's precision class).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from mapsvc.config import Settings
from mapsvc.core.errors import Forbidden, NotFound, ValidationError
from mapsvc.core.i18n import translator
from mapsvc.core.labels import code_label
from mapsvc.models import SEVERITIES, AppUser, Incident, IncidentCategory
from mapsvc.services import accounts
from mapsvc.services import incidents as svc
from mapsvc.services.fields import record_id

SPEC = "http://wiki.open311.org/GeoReport_v2"
#: at most this many requests in one GET requests answer (newest first)
MAX_REQUESTS = 1000
DEFAULT_DAYS = 90
TOKEN_PREFIX = "o311-"
#: how a geocoder precision class reads in a notice (zh, en)
PRECISION_NAMES = {
    "intersection": ("交叉口", "intersection"),
    "landmark": ("标志物", "landmark"),
    "street": ("街巷", "street"),
    "grid": ("网格", "grid"),
    "community": ("社区", "community"),
}


def _en(locale: str) -> bool:
    return locale.startswith("en")


def _w3c(t: dt.datetime | None) -> str | None:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if t else None


def discovery(base_url: str, contact: str = "") -> dict[str, Any]:
    """The discovery document: one production endpoint in JSON and XML."""
    return {
        "changeset": "2026-11-24T00:00:00Z",
        "contact": contact or "12345 hotline / grid management centre",
        "key_service": "API keys are issued by the district grid management centre",
        "endpoints": [
            {
                "specification": SPEC,
                "url": base_url.rstrip("/"),
                "changeset": "2026-11-24T00:00:00Z",
                "type": "production",
                "formats": ["application/json", "text/xml"],
            }
        ],
    }


def services(session: Session, locale: str = "zh_CN") -> list[dict[str, Any]]:
    """Every incident category as an Open311 service (all have attributes: metadata)."""
    rows = session.scalars(sa.select(IncidentCategory).order_by(IncidentCategory.code)).all()
    en = _en(locale)
    return [
        {
            "service_code": c.code,
            "service_name": c.name_en if en else c.name_zh,
            "description": f"{c.name_zh} / {c.name_en}",
            "metadata": True,
            "type": "realtime",
            "keywords": ", ".join(k for k in (c.code, c.name_zh, c.name_en) if k),
            "group": c.group or "",
        }
        for c in rows
    ]


def _class_name(severity: str, en: bool) -> str:
    """A severity class as Open311 names it: the catalogue's label of the class
    (:mod:`mapsvc.core.labels`), in Chinese, or in English in lower case like the class
    codes ("minor"), as Open311 clients have always read it."""
    if en:
        return code_label(severity, translator("en")).lower()
    return code_label(severity, translator("zh_CN"))


def service_definition(session: Session, code: str, locale: str = "zh_CN") -> dict[str, Any]:
    """The service's attributes: its severity class (defaults to the category's)."""
    cat = session.get(IncidentCategory, code)
    if cat is None:
        raise NotFound(f"service_code {code!r} does not exist", field="service_code")
    en = _en(locale)
    return {
        "service_code": cat.code,
        "attributes": [
            {
                "variable": True,
                "code": "severity",
                "datatype": "singlevaluelist",
                "required": False,
                "datatype_description": (
                    f"Severity class; default {cat.default_severity}"
                    if en
                    else f"事件等级，默认 {_class_name(cat.default_severity, en)}"
                ),
                "order": 1,
                "description": "Severity class" if en else "事件等级",
                "values": [{"key": s, "name": _class_name(s, en)} for s in SEVERITIES],
            },
            {
                "variable": True,
                "code": "address_detail",
                "datatype": "string",
                "required": False,
                "datatype_description": "",
                "order": 2,
                "description": "Building, door or landmark" if en else "门牌号或标志物",
            },
        ],
    }


def check_api_key(session: Session, api_key: Any) -> AppUser:
    """The account whose API token ``api_key`` is (the spec's key is one of our tokens)."""
    if not api_key:
        raise Forbidden("api_key is required to create requests", field="api_key")
    user = accounts.resolve_token(session, str(api_key))
    if user is None:
        raise Forbidden("api_key is not valid (unknown, revoked or disabled)", field="api_key")
    return user


def create_request(
    session: Session,
    form: dict[str, Any],
    *,
    settings: Settings | None = None,
) -> list[dict[str, Any]]:
    """POST requests: validate, create and route the incident; ``[{service_request_id,
    token, service_notice}]``. Attributes arrive as ``attribute[code]`` form fields.

    ``api_key`` must be an API token (``mapsvc users token``); the intake is recorded
    against its account (a 12345 hotline system's, say).
    """
    client = check_api_key(session, form.get("api_key"))
    code = form.get("service_code")
    if not code:
        raise ValidationError("service_code is required", field="service_code")
    if session.get(IncidentCategory, str(code)) is None:
        raise NotFound(f"service_code {code!r} does not exist", field="service_code")
    no_point = form.get("lat") in (None, "") and form.get("long") in (None, "")
    if no_point and not str(form.get("address_string") or "").strip():
        raise ValidationError("lat and long, or address_string, are required", field="lat")
    severity = form.get("attribute[severity]") or None
    detail = form.get("attribute[address_detail]") or ""
    address = " ".join(p for p in (form.get("address_string") or "", detail) if p) or None
    token = TOKEN_PREFIX + uuid.uuid4().hex
    inc = svc.create_incident(
        session,
        {
            "category": code,
            "lon": form.get("long"),
            "lat": form.get("lat"),
            "severity": severity,
            "source": "resident",
            "description": form.get("description"),
            "address": address,
            "external_id": token,
        },
        actor=accounts.handled_by(session, client.id) or "open311",
        settings=settings,
        address_field="address_string",
        lon_field="long",
    )
    hours = svc.time_limits(settings)[inc.severity]
    notice = f"expected within {hours:g} hours"
    if inc.geocoded is not None:
        notice += (
            f"; located from the address ({inc.geocoded.precision}: {inc.geocoded.matched}),"
            " location to be confirmed"
        )
    return [
        {
            "service_request_id": str(inc.id),
            "token": token,
            "service_notice": notice,
            "account_id": None,
            "located_by": inc.geocoded.precision if inc.geocoded else "coordinates",
        }
    ]


def _location_notice(inc: Incident, en: bool) -> str:
    """Says that a request was located from its address (and by what), else empty."""
    precision = inc.located_by
    if precision == "coordinates":
        return ""
    zh_name, en_name = PRECISION_NAMES.get(precision, (precision, precision))
    if en:
        return f"located from the address ({en_name}); location to be confirmed"
    return f"位置由地址推定（{zh_name}），待核实"


def _request_dict(
    inc: Incident, names: dict[str, str], agency: dict, updated: dict, en: bool = False
) -> dict:
    from geoalchemy2.shape import to_shape

    p = to_shape(inc.geom)
    return {
        "service_request_id": str(inc.id),
        "status": "closed" if inc.state == "closed" else "open",
        "status_notes": inc.state,
        "service_name": names.get(inc.category, inc.category),
        "service_code": inc.category,
        "description": inc.description or "",
        "agency_responsible": agency.get(inc.id, ""),
        "service_notice": _location_notice(inc, en),
        "requested_datetime": _w3c(inc.reported_at),
        "updated_datetime": _w3c(updated.get(inc.id) or inc.reported_at),
        "expected_datetime": _w3c(inc.due_at),
        "address": inc.address or "",
        "address_id": "",
        "zipcode": "",
        "lat": round(p.y, 7),
        "long": round(p.x, 7),
        "media_url": "",
        "located_by": inc.located_by,
        "location_to_confirm": bool(inc.location_to_confirm),
    }


def _render(session: Session, rows: list[Incident], locale: str) -> list[dict[str, Any]]:
    if not rows:
        return []
    en = _en(locale)
    ids = [i.id for i in rows]
    names = {
        c: (e if en else z)
        for c, z, e in session.execute(
            sa.text("SELECT code, name_zh, name_en FROM incident_category")
        )
    }
    agency = dict(
        session.execute(
            sa.text(
                """SELECT i.id, concat_ws(' / ', cm.name, g.code) FROM incident i
                LEFT JOIN grid g ON g.id = i.grid_id
                LEFT JOIN community cm ON cm.id = i.community_id
                WHERE i.id = ANY(:ids)"""
            ),
            {"ids": ids},
        ).all()
    )
    updated = dict(
        session.execute(
            sa.text(
                "SELECT incident_id, max(at) FROM incident_event "
                "WHERE incident_id = ANY(:ids) GROUP BY incident_id"
            ),
            {"ids": ids},
        ).all()
    )
    return [_request_dict(i, names, agency, updated, en) for i in rows]


def _w3c_param(value: str | None, field: str) -> dt.datetime | None:
    return svc.parse_time(value, field)


def list_requests(
    session: Session, params: dict[str, Any], locale: str = "zh_CN"
) -> list[dict[str, Any]]:
    """GET requests with the spec's filters; without ids or dates, the last 90 days."""
    q = sa.select(Incident)
    ids = params.get("service_request_id")
    if ids:
        wanted = [record_id(v) for v in str(ids).split(",") if v.strip()]
        if None in wanted:
            raise ValidationError(
                "service_request_id must be ids separated by commas", field="service_request_id"
            )
        q = q.where(Incident.id.in_(wanted))
    else:
        if params.get("service_code"):
            q = q.where(Incident.category.in_(str(params["service_code"]).split(",")))
        start = _w3c_param(params.get("start_date"), "start_date")
        end = _w3c_param(params.get("end_date"), "end_date")
        if start and end and end < start:
            raise ValidationError("end_date is before start_date", field="end_date")
        if start is None and end is None:
            start = svc.now() - dt.timedelta(days=DEFAULT_DAYS)
        if start is not None:
            q = q.where(Incident.reported_at >= start)
        if end is not None:
            q = q.where(Incident.reported_at <= end)
        status = params.get("status")
        if status:
            wanted_status = {s.strip().lower() for s in str(status).split(",")}
            bad = wanted_status - {"open", "closed"}
            if bad:
                raise ValidationError(
                    f"status must be open or closed; got {', '.join(sorted(bad))}", field="status"
                )
            if wanted_status == {"open"}:
                q = q.where(Incident.state != "closed")
            elif wanted_status == {"closed"}:
                q = q.where(Incident.state == "closed")
    rows = session.scalars(
        q.order_by(Incident.reported_at.desc(), Incident.id.desc()).limit(MAX_REQUESTS)
    ).all()
    return _render(session, list(rows), locale)


def get_request(session: Session, request_id: str, locale: str = "zh_CN") -> list[dict[str, Any]]:
    """GET requests/{id}: a one-element array, as in the specification's example."""
    inc = svc.get_incident(session, request_id)
    return _render(session, [inc], locale)


def token_lookup(session: Session, token: str) -> list[dict[str, Any]]:
    """GET tokens/{token}: ``[{service_request_id, token}]``."""
    inc_id = session.scalar(sa.select(Incident.id).where(Incident.external_id == token))
    if inc_id is None or not token.startswith(TOKEN_PREFIX):
        raise NotFound(f"token {token!r} does not exist", field="token")
    return [{"service_request_id": str(inc_id), "token": token}]
