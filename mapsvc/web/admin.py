"""Blueprint ``admin``: the audit trail page ``/admin/audit`` and the accounts page
``/admin/users`` (thin views).

The accounts page lists :func:`mapsvc.services.accounts.list_users` and each account's
tokens; its forms post to one endpoint per action (create, change role and scope,
disable / enable, reset the password, make and revoke tokens), each one transaction in
:mod:`mapsvc.services.accounts`, recorded by the audit trail like every write. A new
token is shown once, on the page the action answers with; it is not stored.

The audit page lists what :mod:`mapsvc.services.audit` reads from ``audit_log``, newest first, with
the filters of :class:`~mapsvc.services.audit.AuditFilter` in the query string and keyset
pages (``before`` / ``after``). Who may open it is decided by the central endpoint policy,
not here. The HTML is ``templates/admin/audit.html``.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from mapsvc.core.errors import ServiceError
from mapsvc.core.i18n import N_
from mapsvc.core.labels import ROLE_LABELS
from mapsvc.models import ACCOUNT_ROLES, AUDIT_ACTIONS, District, audited_tables
from mapsvc.services import accounts, audit
from mapsvc.web.args import int_arg
from mapsvc.web.auth import current_principal
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


# --------------------------------------------------------------------------- accounts


def _users_page(
    *, message: str | None = None, error: str | None = None, status: int = 200, **extra: object
) -> ResponseReturnValue:
    """The accounts page as it stands now, with the outcome of the action just made."""
    session = get_session()
    users = accounts.list_users(session)
    tokens = {u["username"]: accounts.list_tokens(session, u["username"]) for u in users}
    districts = session.execute(sa.select(District.code, District.name).order_by(District.code))
    return (
        render_template(
            "admin/users.html",
            users=users,
            tokens=tokens,
            roles=[(r, ROLE_LABELS[r]) for r in ACCOUNT_ROLES],
            role_labels=ROLE_LABELS,
            districts=districts.all(),
            me=current_principal().username,
            message=message,
            error=error,
            locale=current_locale(),
            nav=nav_html("admin.users_page"),
            **extra,
        ),
        status,
    )


def _act(done: Callable[[], str], shown: dict[str, str] | None = None) -> ResponseReturnValue:
    """Run one account action in its own transaction and show the page with its outcome:
    committed and the success message (and what ``done`` left in ``shown``, such as a
    new token), or rolled back and the error (its status)."""
    session = get_session()
    try:
        message = done()
    except ServiceError as exc:
        session.rollback()
        return _users_page(error=exc.message, status=exc.status)
    session.commit()
    return _users_page(message=message, **(shown or {}))


@bp.get("/users")
def users_page() -> ResponseReturnValue:
    """Every account with its role, district, staff member, state and tokens."""
    return _users_page()


@bp.post("/users")
def create_user() -> ResponseReturnValue:
    """A new account (the password is typed twice)."""
    f = request.form

    def done() -> str:
        if f.get("password", "") != f.get("password2", ""):
            raise ServiceError(_("The two passwords differ."), field="password2")
        user = accounts.create_user(
            get_session(),
            f.get("username", ""),
            f.get("password", ""),
            f.get("role", ""),
            district=f.get("district") or None,
            staff=f.get("staff") or None,
        )
        return _("Account %(name)s created.", name=user.username)

    return _act(done)


@bp.post("/users/<username>/update")
def update_user(username: str) -> ResponseReturnValue:
    """Change an account's role, district and staff member."""
    f = request.form

    def done() -> str:
        accounts.update_user(
            get_session(),
            username,
            role=f.get("role", ""),
            district=f.get("district", ""),
            staff=f.get("staff", ""),
            by_user_id=current_principal().user_id,
        )
        return _("Account %(name)s changed.", name=username)

    return _act(done)


@bp.post("/users/<username>/active")
def set_active(username: str) -> ResponseReturnValue:
    """Disable an account (``active=0``) or enable it again (``active=1``)."""
    value = request.form.get("active", "")

    def done() -> str:
        if value not in ("0", "1"):
            raise ServiceError(_("Say active=1 or active=0."), field="active")
        accounts.set_active(
            get_session(), username, value == "1", by_user_id=current_principal().user_id
        )
        if value == "1":
            return _("Account %(name)s enabled.", name=username)
        return _("Account %(name)s disabled.", name=username)

    return _act(done)


@bp.post("/users/<username>/password")
def reset_password(username: str) -> ResponseReturnValue:
    """Set a new password (typed twice); it also lifts a lockout."""
    f = request.form

    def done() -> str:
        if f.get("password", "") != f.get("password2", ""):
            raise ServiceError(_("The two passwords differ."), field="password2")
        accounts.set_password(get_session(), username, f.get("password", ""))
        return _("Password of %(name)s set.", name=username)

    return _act(done)


@bp.post("/users/<username>/tokens")
def create_token(username: str) -> ResponseReturnValue:
    """A new API token for the account, shown once on the page this answers with."""
    made: dict[str, str] = {}

    def done() -> str:
        made["new_token"], _row = accounts.create_token(
            get_session(), username, request.form.get("name", "") or "api"
        )
        made["token_user"] = username
        return _("New token for %(name)s (shown only now):", name=username)

    return _act(done, made)


@bp.post("/users/<username>/tokens/<int:token_id>/revoke")
def revoke_token(username: str, token_id: int) -> ResponseReturnValue:
    """Revoke one of the account's tokens; it stops working at once."""

    def done() -> str:
        accounts.revoke_token(get_session(), username, token_id)
        return _("Token %(id)s of %(name)s revoked.", id=token_id, name=username)

    return _act(done)
