"""Blueprint ``admin``: the audit trail page ``/admin/audit`` (a thin view).

It lists what :mod:`mapsvc.services.audit` reads from ``audit_log``, newest first, with
the filters of :class:`~mapsvc.services.audit.AuditFilter` in the query string and keyset
pages (``before`` / ``after``). Who may open it is decided by the central endpoint policy,
not here. The HTML is ``templates/admin/audit.html``.
"""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue

from mapsvc.core.errors import ServiceError
from mapsvc.core.i18n import N_
from mapsvc.models import AUDIT_ACTIONS, audited_tables
from mapsvc.services import audit
from mapsvc.web.args import int_arg
from mapsvc.web.context import get_session, get_settings
from mapsvc.web.i18n import current_locale
from mapsvc.web.render import nav_html

bp = Blueprint("admin", __name__, url_prefix="/admin")

#: what each action is called on the page
ACTION_LABELS = {
    "insert": N_("Added"),
    "update": N_("Changed"),
    "delete": N_("Deleted"),
    "truncate": N_("Emptied (whole table)"),
}
#: how the author was known
VIA_LABELS = {
    "session": N_("login"),
    "token": N_("API token"),
    "cli": N_("command line"),
    "anonymous": N_("anonymous"),
    "sql": N_("database directly"),
}
#: the service's tables by what they hold (a table not listed shows its name)
TABLE_LABELS = {
    "district": N_("Districts"),
    "subdistrict": N_("Subdistricts"),
    "community": N_("Communities"),
    "grid": N_("Grids"),
    "service_centre": N_("Service centres"),
    "alley_segment": N_("Alley segments"),
    "staff": N_("Staff"),
    "assignment": N_("Assignments"),
    "incident_category": N_("Incident categories"),
    "incident": N_("Incidents"),
    "incident_event": N_("Incident steps"),
    "patrol_track": N_("Patrol tracks"),
    "patrol_visit": N_("Weekly visits"),
}
#: the parameters the page keeps in its links (the filters, the page size, the language)
KEPT_ARGS = ("user", "table", "record", "action", "date_from", "date_to", "limit", "lang")


@bp.get("/audit")
def audit_page() -> ResponseReturnValue:
    """The audit trail, newest first: filters (user, table, record, action, dates), pages.

    A bad filter (an unknown table in a bookmark, a malformed date) is shown on the page
    with status 400, next to the form to fix it.
    """
    settings = get_settings()
    error, status, data = None, 200, None
    try:
        f = audit.AuditFilter.from_params(request.args)
        data = audit.page(
            get_session(),
            f,
            tz=settings.tz,
            limit=int_arg("limit", audit.PAGE_SIZE, min_value=1),
            before=int_arg("before", min_value=1),
            after=int_arg("after", min_value=0),
        )
    except ServiceError as exc:
        error, status = exc.message, exc.status
    args = {k: request.args[k] for k in KEPT_ARGS if request.args.get(k)}
    return (
        render_template(
            "admin/audit.html",
            data=data,
            error=error,
            args=args,
            locale=current_locale(),
            nav=nav_html("admin.audit_page"),
            tables=[(t, TABLE_LABELS.get(t, t)) for t in sorted(audited_tables())],
            actions=[(a, ACTION_LABELS[a]) for a in AUDIT_ACTIONS],
            action_labels=ACTION_LABELS,
            via_labels=VIA_LABELS,
            table_labels=TABLE_LABELS,
            timezone=settings.timezone,
        ),
        status,
    )
