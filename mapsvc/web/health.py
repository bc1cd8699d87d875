"""/healthz: ok (200) or not (503), for load balancers and monitors.

It says nothing about the connection (no URL, no error text, no versions): anyone who can
reach the service can ask. ``mapsvc db status`` tells the operator the details.
"""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from mapsvc.db import DatabaseError, check_connection
from mapsvc.web.context import get_engine
from mapsvc.web.outage import RETRY_AFTER_S

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    try:
        check_connection(get_engine())
    except DatabaseError:
        return jsonify({"status": "unavailable"}), 503, {"Retry-After": str(RETRY_AFTER_S)}
    return jsonify({"status": "ok"})
