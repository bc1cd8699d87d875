"""/healthz: database and PostGIS versions; 503 when the database is down."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from mapsvc.config import VERSION as __version__
from mapsvc.db import DatabaseError, check_connection
from mapsvc.web.context import get_engine

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    try:
        versions = check_connection(get_engine())
    except DatabaseError as exc:
        return jsonify({"status": "error", "database": str(exc), "version": __version__}), 503
    return jsonify({"status": "ok", "version": __version__, **versions})
