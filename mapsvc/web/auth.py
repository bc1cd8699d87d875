"""Logins, tokens and the guard of every endpoint.

* Who is asking: a session cookie (Flask-Login, after ``/login``) or an API token
  (``Authorization: Bearer TOKEN``). :func:`_identify` runs before every view and sets
  ``g.principal`` (:class:`~mapsvc.services.permissions.Principal`, for the permission
  checks) and ``g.actor`` (:class:`~mapsvc.core.actor.Actor`, for the audit trail).
* What they may call: :data:`POLICY` maps **every** endpoint of the URL map to the
  permission it needs; an endpoint without a row is refused to everybody (and the matrix
  test in ``tests/web/test_auth_matrix.py`` fails), so a new view cannot be open by
  accident. Pages answer an anonymous visitor with a redirect to ``/login?next=...``;
  JSON answers 401; an account without the permission gets 403.
* Cookie-authenticated writes and every form need a CSRF token (Flask-WTF); requests
  with a Bearer token are exempt (a browser never adds that header by itself), and so is
  the Open311 POST, which the spec authenticates with its ``api_key`` field.
* Repeated logins from one address are slowed by Flask-Limiter (in memory, per process);
  the account lockout in the database (:func:`mapsvc.services.accounts.authenticate`)
  holds across processes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask import session as cookie_session
from flask.sessions import SecureCookieSessionInterface
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf.csrf import CSRFError, CSRFProtect

from mapsvc.core.actor import Actor
from mapsvc.core.errors import Forbidden, ServiceError, Unauthorized
from mapsvc.core.secrets import stored_secret
from mapsvc.models import AppUser
from mapsvc.services import accounts
from mapsvc.services.permissions import NOBODY, Principal, ReadScope, read_scope
from mapsvc.web.args import wants_json
from mapsvc.web.context import get_session, get_settings, identifying, use_actor
from mapsvc.web.i18n import current_locale

bp = Blueprint("auth", __name__)

#: endpoint -> the permission it needs. Every endpoint of the app must have a row; the
#: integrator adds the rows of new blueprints here (never in the views themselves).
POLICY: dict[str, str] = {
    # open to everybody: the public map and its data (staff names stripped), Open311
    "static": "public",
    "pages.index": "public",
    "api.district": "public",
    "api.communities": "public",
    "api.grids": "public",
    "api.segments": "public",
    "health.healthz": "public",
    "open311.discovery": "public",
    "open311.services": "public",
    "open311.service_definition": "public",
    "open311.list_requests": "public",
    "open311.get_request": "public",
    "open311.token": "public",
    # the spec's POST needs an api_key, which the view checks (an API token)
    "open311.create_request": "public",
    "auth.login": "public",
    "auth.logout": "public",
    "auth.account": "login",
    # staff reads
    "dashboard.api_coverage": "read",
    "dashboard.api_coverage_features": "read",
    "dashboard.api_dashboard": "read",
    "dashboard.api_dashboard_part": "read",
    "dashboard.api_dashboard_patrol": "read",
    "dashboard.api_density": "read",
    "dashboard.api_quota": "read",
    "dashboard.api_quota_csv": "read",
    "dashboard.api_quota_xlsx": "read",
    "dashboard.coverage_page": "read",
    "dashboard.dashboard_page": "read",
    "dashboard.density_page": "read",
    "dashboard.quota_page": "read",
    "incidents.choropleth_api": "read",
    "incidents.choropleth_page": "read",
    "incidents.get_api": "read",
    "incidents.item_page": "read",
    "incidents.heatmap_api": "read",
    "incidents.heatmap_page": "read",
    "incidents.list_api": "read",
    "incidents.list_csv": "read",
    "incidents.list_page": "read",
    "incidents.overdue_api": "read",
    "incidents.stats_api": "read",
    "incidents.to_confirm_api": "read",
    "patrol.chiefs_api": "read",
    "patrol.compliance_api": "read",
    "patrol.grids_api": "read",
    "patrol.patrol_page": "read",
    "patrol.my_page": "read",
    "patrol.route_api": "read",
    "patrol.route_gpx": "read",
    "patrol.routes_api": "read",
    "patrol.segment_grids_api": "read",
    "patrol.tracks_api": "read",
    "patrol.week_api": "read",
    # writes (the views add the scope checks of mapsvc.services.permissions)
    "incidents.create_api": "incidents.create",
    "incidents.transition_api": "incidents.transition",
    "incidents.transition_form": "incidents.transition",
    "incidents.patch_api": "incidents.transition",
    "incidents.rating_api": "incidents.rate",
    "patrol.upload_track_api": "patrol.record",
    "patrol.visit_api": "patrol.record",
    "patrol.segment_chief_api": "assignments.edit",
    "patrol.segments_assign_csv": "assignments.edit",
    # the planner's workbench: everyone with "read" sees plans; planners edit
    "plans.plans_page": "read",
    "plans.plan_page": "read",
    "plans.list_api": "read",
    "plans.plan_api": "read",
    "plans.validate_api": "read",
    "plans.compare_api": "read",
    "plans.export_api": "read",
    "plans.create_api": "boundaries.edit",
    "plans.auto_api": "boundaries.edit",
    "plans.update_grid_api": "boundaries.edit",
    "plans.split_api": "boundaries.edit",
    "plans.merge_api": "boundaries.edit",
    "plans.reassign_api": "boundaries.edit",
    "plans.import_api": "boundaries.edit",
    "plans.publish_api": "boundaries.edit",
    "plans.discard_api": "boundaries.edit",
    # administration
    "admin.audit_page": "audit.read",
    "roster.list_api": "read",
    "roster.add_api": "assignments.edit",
    "roster.import_api": "assignments.edit",
    "roster.end_api": "assignments.edit",
    "admin.users_page": "users.manage",
    "admin.create_user": "users.manage",
    "admin.update_user": "users.manage",
    "admin.set_active": "users.manage",
    "admin.reset_password": "users.manage",
    "admin.create_token": "users.manage",
    "admin.revoke_token": "users.manage",
    # vector tiles: the view refuses the staff layers to visitors without "read"
    "tiles.tile": "public",
    "tiles.tilejson": "public",
    # OGC API Features, downloads, print and the big screen: staff reads
    "ogc.landing_page": "read",
    "ogc.openapi": "read",
    "ogc.conformance": "read",
    "ogc.collections": "read",
    "ogc.queryables": "read",
    "ogc.items": "read",
    "ogc.item": "read",
    "exports.download": "read",
    "exports.index": "read",
    "printing.print_view": "read",
    "screen.screen_page": "read",
}

#: endpoints with a rate limit (``limiter.limit`` in :func:`init_app`); the limiter looks
#: at no other request, so a new limit needs its endpoint here
RATE_LIMITED = frozenset({"auth.login"})
#: writes that authenticate by a field of their own instead of a cookie (no CSRF token)
CSRF_EXEMPT = frozenset({"open311.create_request"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

csrf = CSRFProtect()
login_manager = LoginManager()


class LoginUser(UserMixin):
    """The logged-in account as Flask-Login holds it for one request."""

    def __init__(self, user: AppUser) -> None:
        self.principal = accounts.principal(user)
        self.id = session_id(user)

    def get_id(self) -> str:
        return self.id


def session_id(user: AppUser) -> str:
    """What the session cookie names an account by: its username and a stamp of its
    password hash, so a password change or reset ends the sessions opened before it."""
    stamp = hashlib.sha256((user.password_hash or "").encode()).hexdigest()[:16]
    return f"{user.username}\x1f{stamp}"


@login_manager.user_loader
def _load_user(value: str) -> LoginUser | None:
    username, _sep, stamp = value.partition("\x1f")
    user = get_session().query(AppUser).filter_by(username=username).one_or_none()
    if user is None or not user.active or session_id(user) != value:
        return None
    return LoginUser(user)


class AutoSecureSessionInterface(SecureCookieSessionInterface):
    """Session cookies marked Secure when the request came over HTTPS (setting
    ``session_cookie_secure`` "auto"), or always / never when it is true / false."""

    def get_cookie_secure(self, app: Flask) -> bool:
        setting = app.extensions["mapsvc.settings"].session_cookie_secure
        if isinstance(setting, bool):
            return setting
        if str(setting).lower() in ("true", "1", "yes"):
            return True
        if str(setting).lower() in ("false", "0", "no"):
            return False
        return bool(request and request.is_secure)


def bearer_token() -> str | None:
    """The token of an ``Authorization: Bearer`` header, if the request has one."""
    header = request.headers.get("Authorization", "")
    scheme, _sep, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _identify() -> None:
    """Set ``g.principal`` and ``g.actor`` from the token or the session cookie."""
    address = request.remote_addr
    token = bearer_token()
    if token is not None:
        # one statement finds the account and names it the author of the transaction
        principal = accounts.token_principal(get_session(), token, author_address=address)
        if principal is None:
            raise Unauthorized("the API token is not valid (unknown, revoked or disabled)")
        g.principal = principal
        use_actor(Actor(principal.user_id, principal.username, address, "token"), named=True)
        if get_session().info.pop(accounts.TOKEN_TOUCHED, False):
            get_session().commit()  # the token's last use, recorded against its owner
        g.via_token = True
        return
    g.via_token = False
    if current_user.is_authenticated:
        g.principal = current_user.principal
        use_actor(Actor(g.principal.user_id, g.principal.username, address, "session"))
    else:
        g.principal = NOBODY
        use_actor(Actor(address=address))


def current_principal() -> Principal:
    """The principal of the current request (anonymous outside a request's guard)."""
    return g.get("principal", NOBODY)


def current_scope() -> ReadScope:
    """What the current request's account reads (its district's, or a field account's
    own posts and tracks), found once per request; every scoped read asks here."""
    scope = g.get("read_scope")
    if scope is None:
        scope = g.read_scope = read_scope(
            get_session(), current_principal(), get_settings().today()
        )
    return scope


def may_open(endpoint: str) -> bool:
    """Whether the current request's account may call ``endpoint`` (for the nav's links)."""
    permission = POLICY.get(endpoint)
    return permission is not None and current_principal().can(permission)


def _guard() -> ResponseReturnValue | None:
    """``before_request``: identify, check the endpoint's permission, then (for a write
    the request may make) the CSRF token."""
    with identifying():
        _identify()
    if request.url_rule is None:  # 404 / 405: nothing to guard
        return None
    endpoint = request.endpoint or ""
    permission = POLICY.get(endpoint)
    principal = current_principal()
    if permission is None:
        raise Forbidden(
            f"endpoint {endpoint} has no access rule; it is closed to everybody",
            permission=None,
        )
    if principal.can(permission):
        if (
            request.method in WRITE_METHODS
            and not g.via_token
            and endpoint not in CSRF_EXEMPT
            and current_app.config.get("WTF_CSRF_ENABLED", True)
        ):
            csrf.protect()
        return None
    if not principal.authenticated and not wants_json():
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    if not principal.authenticated:
        principal.require(permission)  # raises the 401
    if not wants_json():
        message = _("Your account may not open this page.")
        return render_template("auth/forbidden.html", message=message, **_frame()), 403
    principal.require(permission)
    return None


def _frame() -> dict[str, Any]:
    """What the auth templates' frame needs (the nav bar is ``nav_html`` in Jinja, from
    :mod:`mapsvc.web.render`, which itself asks this module what to link)."""
    return {"locale": current_locale()}


#: roles whose home after the login is 我的 (/me), their own day's work
HOME_ON_ME = frozenset({"chief", "grid_head", "grid_member"})


def _home(role: str) -> str:
    """Where a login without ``next`` lands: 我的 for field staff, else the map."""
    if role in HOME_ON_ME and "patrol.my_page" in current_app.view_functions:
        return url_for("patrol.my_page")
    return url_for("pages.index")


def _safe_next(target: str | None) -> str:
    """Where to go after the login: a path of this site only (no open redirect)."""
    if not target:
        return url_for("pages.index")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("pages.index")
    return target


def _login_limit() -> str:
    return str(get_settings().login_rate_limit)


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """The login form; a POST checks the password (with the lockout) and opens a session."""
    error, status = None, 200
    next_url = request.values.get("next") or ""
    if request.method == "POST":
        session = get_session()
        try:
            user = accounts.authenticate(
                session, request.form.get("username"), request.form.get("password"), get_settings()
            )
        except ServiceError as exc:
            session.commit()  # the failed count and the lock
            if isinstance(exc, accounts.AccountLocked):
                error = _("This account is locked after repeated failed logins; try again later.")
            else:
                error = _("Wrong username or password.")
            status = exc.status
        else:
            session.commit()
            cookie_session.permanent = True
            login_user(LoginUser(user))
            return redirect(_safe_next(next_url) if next_url else _home(user.role))
    return (
        render_template(
            "auth/login.html",
            error=error,
            next_url=next_url,
            username=request.form.get("username", "") if request.method == "POST" else "",
            **_frame(),
        ),
        status,
    )


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """End the session (a POST with the CSRF token, so no other site can log one out)."""
    logout_user()
    return redirect(url_for("auth.login"))


@bp.route("/account", methods=["GET", "POST"])
def account() -> ResponseReturnValue:
    """One's own account: role and scope, and the password change."""
    principal = current_principal()
    message, error, status = None, None, 200
    if request.method == "POST":
        if g.via_token:
            raise Forbidden("the password is changed in a browser session, not with a token")
        session = get_session()
        new = request.form.get("new_password") or ""
        try:
            if new != (request.form.get("new_password2") or ""):
                raise ServiceError(_("The two new passwords differ."), field="new_password2")
            user = accounts.change_password(
                session, int(principal.user_id or 0), request.form.get("old_password") or "", new
            )
        except ServiceError as exc:
            session.rollback()
            error, status = exc.message, exc.status
        else:
            session.commit()
            login_user(LoginUser(user))  # the new stamp keeps this session, ends others
            message = _("Password changed.")
    return (
        render_template(
            "auth/account.html",
            principal=principal,
            message=message,
            error=error,
            **_frame(),
        ),
        status,
    )


def init_app(app: Flask) -> None:
    """Secret key, cookies, Flask-Login, CSRF, the login rate limit and the guard."""
    from werkzeug.middleware.proxy_fix import ProxyFix

    settings = app.extensions["mapsvc.settings"]
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = (
            settings.secret_key or stored_secret(f"{settings.var_dir}/secret_key", nbytes=48)[0]
        )
    app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["PERMANENT_SESSION_LIFETIME"] = dt.timedelta(hours=float(settings.session_hours))
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False  # checked in the guard, after identifying
    app.config["WTF_CSRF_TIME_LIMIT"] = None  # valid as long as the session
    app.session_interface = AutoSecureSessionInterface()
    if settings.proxy_fix:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]
    login_manager.init_app(app)
    login_manager.session_protection = "basic"
    csrf.init_app(app)
    # one limiter per app (its counts in this process's memory), limiting the login POST
    limiter = Limiter(get_remote_address, app=app, storage_uri="memory://", default_limits=[])
    # spare every request the limiter's lookups but those of an endpoint it limits
    limiter.request_filter(lambda: request.endpoint not in RATE_LIMITED)
    app.extensions["mapsvc.limiter"] = limiter
    app.register_blueprint(bp)
    # the limit is checked by the wrapper, so this app's login view is the wrapped one
    app.view_functions["auth.login"] = limiter.limit(_login_limit, methods=["POST"])(login)
    app.before_request(_guard)

    @app.context_processor
    def _account() -> dict[str, Any]:
        return {"principal": current_principal()}

    @app.errorhandler(CSRFError)
    def _csrf_error(exc: CSRFError) -> ResponseReturnValue:
        message = f"CSRF check failed: {exc.description} (send the form's csrf_token)"
        if wants_json():
            return jsonify({"error": message, "field": "csrf_token"}), 400
        return render_template("auth/forbidden.html", message=message, **_frame()), 400

    @app.errorhandler(429)
    def _too_many(exc: Any) -> ResponseReturnValue:
        message = _("Too many login attempts; wait a minute and try again.")
        if wants_json():
            return jsonify({"error": message, "status": 429}), 429
        return render_template("auth/forbidden.html", message=message, **_frame()), 429
