"""Blueprint ``open311``: GeoReport v2 under ``/open311/v2/`` in JSON and XML.

Thin: parse the request, call :mod:`mapsvc.services.open311`, render. Errors use the
specification's shape (``[{"code": 400, "description": ...}]`` / ``<errors>``), in the
format the URL asked for.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import HTTPException

from mapsvc.core.actor import Actor
from mapsvc.core.errors import ServiceError
from mapsvc.services import open311
from mapsvc.web.bodies import too_large
from mapsvc.web.context import get_session, get_settings, use_actor
from mapsvc.web.i18n import current_locale
from mapsvc.web.urls import external_url

bp = Blueprint("open311", __name__, url_prefix="/open311/v2")

#: XML element name of the items of each list-valued key
XML_ITEMS = {
    "endpoints": "endpoint",
    "formats": "format",
    "attributes": "attribute",
    "values": "value",
}


def _xml_value(parent: ET.Element, key: str, value: Any) -> None:
    el = ET.SubElement(parent, key)
    if isinstance(value, dict):
        for k, v in value.items():
            _xml_value(el, k, v)
    elif isinstance(value, list):
        for v in value:
            _xml_value(el, XML_ITEMS.get(key, "item"), v)
    elif isinstance(value, bool):
        el.text = "true" if value else "false"
    elif value is not None:
        el.text = str(value)


def to_xml(root: str, data: Any, item: str | None = None) -> str:
    """Spec-shaped XML: a list becomes ``<root><item>...</item></root>``."""
    top = ET.Element(root)
    if isinstance(data, list):
        for d in data:
            _xml_value(top, item or "item", d)
    else:
        for k, v in data.items():
            _xml_value(top, k, v)
    return '<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(top, encoding="unicode")


def _respond(
    data: Any, fmt: str, root: str, item: str | None = None, status: int = 200
) -> Response:
    if fmt == "xml":
        return Response(to_xml(root, data, item), status, mimetype="text/xml")
    return Response(json.dumps(data, ensure_ascii=False), status, mimetype="application/json")


def _fmt() -> str:
    return (request.view_args or {}).get("fmt") or "json"


def _error(status: int, message: str) -> Response:
    return _respond([{"code": status, "description": message}], _fmt(), "errors", "error", status)


@bp.errorhandler(ServiceError)
def _service_error(exc: ServiceError) -> Response:
    return _error(exc.status, exc.message)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if exc.code == 413 and limit:
        return _error(413, too_large(limit))
    return _error(exc.code or 500, exc.description or exc.name)


FMT = "<any(json, xml):fmt>"


@bp.get(f"/discovery.{FMT}")
def discovery(fmt: str) -> Response:
    base = external_url("open311.discovery", fmt="json").rsplit("/", 1)[0]
    return _respond(open311.discovery(base), fmt, "discovery")


@bp.get(f"/services.{FMT}")
def services(fmt: str) -> Response:
    return _respond(open311.services(get_session(), current_locale()), fmt, "services", "service")


@bp.get(f"/services/<code>.{FMT}")
def service_definition(code: str, fmt: str) -> Response:
    data = open311.service_definition(get_session(), code, current_locale())
    return _respond(data, fmt, "service_definition")


@bp.get(f"/requests.{FMT}")
def list_requests(fmt: str) -> Response:
    data = open311.list_requests(get_session(), request.args.to_dict(), current_locale())
    return _respond(data, fmt, "service_requests", "request")


@bp.post(f"/requests.{FMT}")
def create_request(fmt: str) -> Response:
    """Plain form POST (``application/x-www-form-urlencoded``) as the spec says; JSON too."""
    if request.form:
        form = request.form.to_dict()
    else:
        form = request.get_json(silent=True)
        if not isinstance(form, dict):
            return _error(400, "send the request as form fields (or a JSON object)")
    session = get_session()
    # the intake is written by the account whose token the api_key is (the audit trail's
    # author), whatever else the request carries
    hotline = open311.check_api_key(session, form.get("api_key"))
    use_actor(Actor(hotline.id, hotline.username, request.remote_addr, "token"))
    data = open311.create_request(session, form, settings=get_settings())
    session.commit()
    return _respond(data, fmt, "service_requests", "request", status=201)


@bp.get(f"/requests/<request_id>.{FMT}")
def get_request(request_id: str, fmt: str) -> Response:
    data = open311.get_request(get_session(), request_id, current_locale())
    return _respond(data, fmt, "service_requests", "request")


@bp.get(f"/tokens/<token>.{FMT}")
def token(token: str, fmt: str) -> Response:
    return _respond(open311.token_lookup(get_session(), token), fmt, "service_requests", "request")
