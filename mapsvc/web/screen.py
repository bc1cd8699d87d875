"""``/screen``: the leadership big screen (领导驾驶舱), full screen at 1920×1080.

A frame only: ``static/js/screen.js`` fills it from the JSON APIs the other pages use
(``/api/incidents/stats`` for the headline figures, the monthly trend and the community
and grid rankings; ``/api/incidents?state=open`` for the live pins) and polls them again
every :attr:`~mapsvc.config.Settings.screen_refresh_s` seconds.
"""

from __future__ import annotations

from flask import Blueprint, render_template, url_for

from mapsvc.web.context import get_settings
from mapsvc.web.i18n import current_locale

bp = Blueprint("screen", __name__)


@bp.get("/screen")
def screen_page() -> str:
    """The big screen; figures and pins are fetched (and refreshed) by its script."""
    return render_template(
        "screen.html",
        locale=current_locale(),
        refresh_s=get_settings().screen_refresh_s,
        timezone=get_settings().timezone,
        stats_url=url_for("incidents.stats_api"),
        incidents_url=url_for("incidents.list_api"),
    )
