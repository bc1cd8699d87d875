"""What the web answers while the database cannot be reached: 503 and ``Retry-After``."""

from __future__ import annotations

from flask import jsonify, render_template
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from mapsvc.web.args import wants_json

#: seconds a client is asked to wait before it tries again while the database is away
RETRY_AFTER_S = 5


def database_unavailable() -> ResponseReturnValue:
    """503 with ``Retry-After``: the database cannot be reached (stopped, restarting).

    Says nothing about the connection (no URL, no driver text): that goes to the log.
    The request's session is rolled back on teardown and the pool checks connections
    before use, so the next request after the database is back succeeds by itself.
    """
    message = _("The database is unavailable for a moment; please try again shortly.")
    headers = {"Retry-After": str(RETRY_AFTER_S)}
    if wants_json():
        return jsonify({"error": message, "status": 503}), 503, headers
    from mapsvc.web.i18n import current_locale

    page = render_template(
        "unavailable.html", message=message, locale=current_locale(), retry_after=RETRY_AFTER_S
    )
    return page, 503, headers
