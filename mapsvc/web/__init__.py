"""Web adapters: thin blueprints that parse the request, call a service or layer, respond."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from mapsvc.core.errors import ServiceError
from mapsvc.web.args import reject_nul, wants_json
from mapsvc.web.outage import database_unavailable


def init_app(app: Flask) -> None:
    from mapsvc.web import (
        admin,
        api,
        auth,
        dashboard,
        exports,
        health,
        incidents,
        ogc,
        open311,
        pages,
        patrol,
        plans,
        printing,
        roster,
        screen,
        tiles,
    )
    from mapsvc.web.bodies import BoundedRequest, too_large

    app.request_class = BoundedRequest  # the upload limit holds for chunked bodies too
    blueprints = (pages, api, health, incidents, open311, patrol, dashboard, admin, tiles)
    for module in (*blueprints, ogc, exports, printing, screen, roster, plans):
        app.register_blueprint(module.bp)
    app.before_request(reject_nul)
    auth.init_app(app)  # after reject_nul: identify, the endpoint's permission, CSRF
    from mapsvc.web.render import nav_html

    app.jinja_env.globals["nav_html"] = nav_html  # the nav bar of templates without a view

    @app.errorhandler(ServiceError)
    def _service_error(exc: ServiceError) -> ResponseReturnValue:
        return jsonify(exc.to_dict()), exc.status

    @app.errorhandler(sa.exc.OperationalError)
    @app.errorhandler(sa.exc.InterfaceError)
    def _database_down(exc: sa.exc.DBAPIError) -> ResponseReturnValue:
        app.logger.warning("database unavailable: %s", str(exc.orig or exc).splitlines()[0])
        return database_unavailable()

    @app.errorhandler(sa.exc.DBAPIError)
    def _database_error(exc: sa.exc.DBAPIError) -> ResponseReturnValue:
        # any other driver error on a connection the pool found dead is the outage too
        if exc.connection_invalidated:
            return _database_down(exc)
        raise exc

    @app.errorhandler(sa.exc.PendingRollbackError)
    def _transaction_lost(exc: sa.exc.PendingRollbackError) -> ResponseReturnValue:
        # the request's transaction died with its connection (the database went away)
        app.logger.warning("database transaction lost: %s", str(exc).splitlines()[0])
        return database_unavailable()

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> ResponseReturnValue:
        if exc.code == 413 and app.config.get("MAX_CONTENT_LENGTH"):
            # werkzeug's text names no size: say the limit, so the user can split the file
            exc.description = too_large(app.config["MAX_CONTENT_LENGTH"])
        if wants_json():
            return jsonify({"error": exc.description, "status": exc.code}), exc.code
        return exc
