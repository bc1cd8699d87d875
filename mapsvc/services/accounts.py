"""Accounts: create, authenticate (with a lockout kept in the database), change passwords,
disable, and the API tokens of machine clients.

No Flask here: the web (``mapsvc.web.auth``) and the CLI (``mapsvc users``) both call these
functions with a session; they own no transaction (the caller commits). Passwords are
hashed with argon2 (``argon2.PasswordHasher``); tokens are random, shown once, and stored as
their SHA-256 only, which is enough for a 256-bit random secret and fast to look up.

The lockout lives on the account row (failed count and ``locked_until``), so it holds
across processes and workers; the web's rate limit comes on top of it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session

from mapsvc.config import Settings
from mapsvc.core.errors import Conflict, NotFound, Unauthorized, ValidationError
from mapsvc.models import ACCOUNT_ROLES, ApiToken, AppUser, District, Staff
from mapsvc.services.fields import text
from mapsvc.services.permissions import Principal

#: shortest password accepted
MIN_PASSWORD = 8
#: the visible start of every token, so a leaked one is recognisable in logs and scanners
TOKEN_PREFIX = "msv_"
#: characters of a token kept in clear for display ("msv_AbCd1234…")
SHOWN_PREFIX = 12

_hasher = PasswordHasher()
#: verified against when the username is unknown, so the answer takes as long either way
_DUMMY_HASH = _hasher.hash("not a password of anyone")


class AccountLocked(Unauthorized):
    """Too many failed logins: the account is locked until ``locked_until``."""


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def hash_token(token: str) -> str:
    """The SHA-256 (hex) a token is stored and looked up as."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _username(value: Any) -> str:
    name = text(value, "username", AppUser.username, required=True)
    assert name is not None
    name = name.strip()
    if any(ch.isspace() and ch != " " or not ch.isprintable() for ch in name):
        raise ValidationError(
            "username may not contain control characters or line breaks", field="username"
        )
    return name


def _password(value: Any) -> str:
    if not isinstance(value, str) or len(value) < MIN_PASSWORD:
        raise ValidationError(
            f"password must have at least {MIN_PASSWORD} characters", field="password"
        )
    if len(value) > 1024:
        raise ValidationError("password is longer than 1024 characters", field="password")
    return value


def _role(value: Any) -> str:
    if value not in ACCOUNT_ROLES:
        raise ValidationError(
            f"role must be one of {', '.join(ACCOUNT_ROLES)}; got {value!r}", field="role"
        )
    return str(value)


def _district_id(session: Session, value: Any) -> int | None:
    """A district by code or id (None: city-wide)."""
    if value in (None, ""):
        return None
    found = session.scalar(sa.select(District.id).where(District.code == str(value)))
    if found is None and str(value).isdigit():
        found = session.scalar(sa.select(District.id).where(District.id == int(value)))
    if found is None:
        raise NotFound(f"district {str(value)[:40]!r} does not exist", field="district")
    return found


def _staff_id(session: Session, value: Any) -> int | None:
    """A staff member of the roster by code or id."""
    if value in (None, ""):
        return None
    found = session.scalar(sa.select(Staff.id).where(Staff.code == str(value)))
    if found is None and str(value).isdigit():
        found = session.scalar(sa.select(Staff.id).where(Staff.id == int(value)))
    if found is None:
        raise NotFound(f"staff {str(value)[:40]!r} does not exist in the roster", field="staff")
    return found


def get_user(session: Session, username: str) -> AppUser:
    """The account named ``username`` or :class:`NotFound`."""
    user = session.scalar(sa.select(AppUser).where(AppUser.username == username))
    if user is None:
        raise NotFound(f"account {username!r} does not exist", field="username")
    return user


def create_user(
    session: Session,
    username: str,
    password: str | None,
    role: str,
    *,
    district: Any = None,
    staff: Any = None,
) -> AppUser:
    """A new account; ``password`` None makes one that can only use API tokens.

    ``district`` and ``staff`` are a district's and a staff member's code or id.
    """
    name = _username(username)
    if session.scalar(sa.select(AppUser.id).where(AppUser.username == name)):
        raise Conflict(f"account {name!r} already exists", field="username")
    user = AppUser(
        username=name,
        password_hash=_hasher.hash(_password(password)) if password is not None else None,
        role=_role(role),
        district_id=_district_id(session, district),
        staff_id=_staff_id(session, staff),
        active=True,
        failed_logins=0,
    )
    session.add(user)
    session.flush()
    return user


def authenticate(
    session: Session, username: Any, password: Any, settings: Settings | None = None
) -> AppUser:
    """The account whose password this is, or :class:`Unauthorized`.

    A wrong password counts against the account; at ``settings.login_max_failures`` in a
    row it is locked for ``login_lock_minutes`` (:class:`AccountLocked`, also while the
    lock holds, even with the right password). The count is written to the session before
    raising: **the caller commits in both cases**, or the lockout never happens.
    The message does not tell an unknown name from a wrong password.
    """
    settings = settings or Settings()
    wrong = Unauthorized("wrong username or password", field="password")
    if not isinstance(username, str) or not isinstance(password, str) or not password:
        raise wrong
    user = session.scalar(
        sa.select(AppUser).where(AppUser.username == username.strip()).with_for_update()
    )
    if user is None or not user.active or user.password_hash is None:
        try:
            _hasher.verify(_DUMMY_HASH, password)
        except VerificationError:
            pass
        raise wrong
    at = now()
    if user.locked_until is not None and user.locked_until > at:
        raise AccountLocked(
            f"account {user.username!r} is locked after repeated failed logins; "
            f"try again after {user.locked_until.astimezone(settings.tz):%H:%M}",
            field="username",
            locked_until=user.locked_until.isoformat(),
        )
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        user.failed_logins = (user.failed_logins or 0) + 1
        if user.failed_logins >= int(settings.login_max_failures):
            user.locked_until = at + dt.timedelta(minutes=float(settings.login_lock_minutes))
            user.failed_logins = 0
        session.flush()
        raise wrong from None
    user.failed_logins = 0
    user.locked_until = None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    session.flush()
    return user


def set_password(session: Session, username: str, password: str) -> AppUser:
    """Set (change or reset) the password; it also lifts a lockout."""
    user = get_user(session, username)
    user.password_hash = _hasher.hash(_password(password))
    user.failed_logins = 0
    user.locked_until = None
    session.flush()
    return user


def change_password(session: Session, user_id: int, old: str, new: str) -> AppUser:
    """A user's own change: the old password must be right (no lockout bookkeeping)."""
    user = session.get(AppUser, user_id)
    if user is None or user.password_hash is None:
        raise NotFound("this account has no password to change", field="password")
    try:
        _hasher.verify(user.password_hash, old or "")
    except (VerificationError, InvalidHashError):
        raise ValidationError("the current password is wrong", field="old_password") from None
    return set_password(session, user.username, new)


def set_active(
    session: Session, username: str, active: bool, *, by_user_id: int | None = None
) -> AppUser:
    """Disable (or enable again) an account; a disabled one can neither log in nor use
    its tokens, and its open sessions end at their next request.

    ``by_user_id`` is the account doing it: nobody disables their own account, which
    would leave a service whose only admin locked themself out.
    """
    user = get_user(session, username)
    if not active and by_user_id is not None and user.id == by_user_id:
        raise Conflict("you cannot disable your own account", field="username")
    user.active = active
    session.flush()
    return user


_UNCHANGED: Any = object()


def update_user(
    session: Session,
    username: str,
    *,
    role: Any = _UNCHANGED,
    district: Any = _UNCHANGED,
    staff: Any = _UNCHANGED,
    by_user_id: int | None = None,
) -> AppUser:
    """Change an account's role, district scope or linked staff member.

    ``district`` and ``staff`` are a code or an id; None or "" clears them (a city-level
    account; an account that is nobody in the roster). ``by_user_id`` is the account
    doing it: an admin does not take the admin role from themself, for the same reason
    :func:`set_active` refuses to disable oneself.
    """
    user = get_user(session, username)
    if role is not _UNCHANGED:
        new_role = _role(role)
        if by_user_id is not None and user.id == by_user_id and new_role != user.role:
            raise Conflict("you cannot change your own role", field="role")
        user.role = new_role
    if district is not _UNCHANGED:
        user.district_id = _district_id(session, district or None)
    if staff is not _UNCHANGED:
        user.staff_id = _staff_id(session, staff or None)
    session.flush()
    return user


def list_users(session: Session) -> list[dict[str, Any]]:
    """Every account with its role, scope and state, by username."""
    rows = session.execute(
        sa.select(AppUser, District.code, Staff.code, Staff.name)
        .outerjoin(District, District.id == AppUser.district_id)
        .outerjoin(Staff, Staff.id == AppUser.staff_id)
        .order_by(AppUser.username)
    ).all()
    at = now()
    return [
        {
            "id": u.id,
            "username": u.username,
            "role": u.role,
            "district": code,
            "staff_id": u.staff_id,
            "staff_code": staff_code,
            "staff_name": staff,
            "active": u.active,
            "locked": bool(u.locked_until and u.locked_until > at),
            "created_at": u.created_at.isoformat() if u.created_at else None,
        }
        for u, code, staff_code, staff in rows
    ]


def principal(user: AppUser | sa.Row) -> Principal:
    """What the permission checks need to know of an account (an :class:`AppUser`, or a
    row with its ``id``, ``username``, ``role``, ``district_id`` and ``staff_id``)."""
    return Principal(
        user_id=user.id,
        username=user.username,
        role=user.role,
        district_id=user.district_id,
        staff_id=user.staff_id,
    )


def handled_by(session: Session, user_id: int | None) -> str | None:
    """How an account appears as an incident's handler: the staff member's name and the
    username (``李新长 (demo-chief)``), or the username alone; at most 100 characters."""
    if user_id is None:
        return None
    row = session.execute(
        sa.select(AppUser.username, Staff.name)
        .outerjoin(Staff, Staff.id == AppUser.staff_id)
        .where(AppUser.id == user_id)
    ).one_or_none()
    if row is None:
        return None
    username, staff = row
    label = f"{staff} ({username})" if staff else username
    return label[:100]


# --------------------------------------------------------------------------- tokens


def create_token(
    session: Session, username: str, name: str = "api", *, secret: str | None = None
) -> tuple[str, ApiToken]:
    """A new token for ``username``: ``(token, row)``. The token is not stored; show it
    once. ``secret`` is a token made elsewhere (the demo derives its own); default random.
    """
    user = get_user(session, username)
    label = text(name, "name", ApiToken.name) or "api"
    token = secret or TOKEN_PREFIX + secrets.token_urlsafe(32)
    if not token.startswith(TOKEN_PREFIX) or len(token) < 32:
        raise ValidationError(f"a token starts with {TOKEN_PREFIX} and is long", field="token")
    row = ApiToken(
        user_id=user.id, name=label, token_hash=hash_token(token), prefix=token[:SHOWN_PREFIX]
    )
    session.add(row)
    session.flush()
    return token, row


def list_tokens(session: Session, username: str) -> list[dict[str, Any]]:
    """The tokens of an account (revoked ones too), newest first, without their secret."""
    user = get_user(session, username)
    rows = session.scalars(
        sa.select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())
    )
    return [
        {
            "id": t.id,
            "name": t.name,
            "prefix": t.prefix,
            "created_at": t.created_at.isoformat() if t.created_at else None,
            "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
            "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
        }
        for t in rows
    ]


def revoke_token(session: Session, username: str, token_id: int) -> ApiToken:
    """Revoke one of ``username``'s tokens by id; it stops working at once."""
    user = get_user(session, username)
    row = session.get(ApiToken, token_id)
    if row is None or row.user_id != user.id:
        raise NotFound(f"account {username!r} has no token {token_id}", field="token")
    if row.revoked_at is None:
        row.revoked_at = now()
    session.flush()
    return row


#: ``session.info`` key: :func:`resolve_token` recorded a token's use (a write to commit)
TOKEN_TOUCHED = "mapsvc.token_touched"


def _token_lookup(author: bool) -> sa.Select:
    """The statement that finds the active account of a token hash (``:token_hash``),
    with the columns a :class:`Principal` and the last-use stamp need; with ``author``
    also the columns that name the account the author of the transaction
    (:func:`mapsvc.services.audit.author_columns`, address ``:author_address``)."""
    from mapsvc.services.audit import author_columns

    stmt = (
        sa.select(
            ApiToken.id.label("token_id"),
            ApiToken.last_used_at,
            AppUser.id,
            AppUser.username,
            AppUser.role,
            AppUser.district_id,
            AppUser.staff_id,
        )
        .join(AppUser, AppUser.id == ApiToken.user_id)
        .where(
            ApiToken.token_hash == sa.bindparam("token_hash"),
            ApiToken.revoked_at.is_(None),
            AppUser.active.is_(True),
        )
    )
    if author:
        stmt = stmt.add_columns(
            *author_columns(
                sa.cast(AppUser.id, sa.Text),
                AppUser.username,
                sa.bindparam("author_address", type_=sa.Text),
                sa.literal("token", sa.Text),
            )
        )
    return stmt


#: the two lookups, built once (building the statement cost more than running it)
_TOKEN_LOOKUPS: dict[bool, sa.Select] = {}


def _token_row(session: Session, token: str | None, address: str | None = None) -> Any:
    """The row of :func:`_token_lookup` for ``token`` (None: unknown, revoked, disabled);
    ``address`` not None names the account the author, from that address.

    Records the token's last use (at most once a minute, to spare the writes).
    """
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    author = address is not None
    stmt = _TOKEN_LOOKUPS.get(author)
    if stmt is None:
        stmt = _TOKEN_LOOKUPS[author] = _token_lookup(author)
    params = {"token_hash": hash_token(token)}
    if author:
        from mapsvc.services.audit import author_address

        params["author_address"] = author_address(address)
    # on the session's connection: plain columns, nothing for the ORM to load
    conn = session.connection()
    row = conn.execute(stmt, params).one_or_none()
    if row is None:
        return None
    at = now()
    if row.last_used_at is None or at - row.last_used_at > dt.timedelta(minutes=1):
        conn.execute(sa.update(ApiToken).where(ApiToken.id == row.token_id).values(last_used_at=at))
        session.info[TOKEN_TOUCHED] = True
    return row


def resolve_token(session: Session, token: str | None) -> AppUser | None:
    """The active account a token belongs to, or None (unknown, revoked or disabled).

    Records the token's last use (at most once a minute, to spare the writes).
    """
    row = _token_row(session, token)
    return None if row is None else session.get(AppUser, row.id)


def token_principal(
    session: Session, token: str | None, *, author_address: str | None = None
) -> Principal | None:
    """The :class:`Principal` of a token's active account, or None (unknown, revoked or
    disabled); what a request's guard needs, in one statement without loading entities.

    With ``author_address`` (the request's client address) the same statement names the
    account the author of the session's transaction (``via`` "token", as
    :func:`mapsvc.services.audit.set_actor` would), so identifying a request and naming
    its author cost one round trip. Records the token's last use like
    :func:`resolve_token`.
    """
    row = _token_row(session, token, author_address)
    return None if row is None else principal(row)
