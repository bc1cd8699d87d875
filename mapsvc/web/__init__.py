"""Web adapters: thin blueprints that parse the request, call a service or layer, respond."""

from __future__ import annotations

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from mapsvc.core.errors import ServiceError
from mapsvc.web.args import reject_nul


def _wants_json() -> bool:
    return request.path.startswith(("/api/", "/open311/", "/healthz")) or (
        request.accept_mimetypes.best == "application/json"
    )


def init_app(app: Flask) -> None:
    from mapsvc.web import (
        api,
        dashboard,
        exports,
        health,
        incidents,
        ogc,
        open311,
        pages,
        patrol,
        printing,
        screen,
    )

    for module in (
        pages,
        api,
        health,
        incidents,
        open311,
        patrol,
        dashboard,
        ogc,
        exports,
        printing,
        screen,
    ):
        app.register_blueprint(module.bp)
    app.before_request(reject_nul)

    @app.errorhandler(ServiceError)
    def _service_error(exc: ServiceError) -> ResponseReturnValue:
        return jsonify(exc.to_dict()), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> ResponseReturnValue:
        if exc.code == 413 and app.config.get("MAX_CONTENT_LENGTH"):
            # werkzeug's text names no size: say the limit, so the user can split the file
            limit_mb = app.config["MAX_CONTENT_LENGTH"] / 1024 / 1024
            exc.description = f"the upload is larger than the limit of {limit_mb:g} MB"
        if _wants_json():
            return jsonify({"error": exc.description, "status": exc.code}), exc.code
        return exc
