"""The demo's accounts: one per role, the people among them linked to real demo staff, and
a machine account for a 12345 hotline system with its API token.

Every demo account has the one demo password (setting ``demo_password``; made up once and
kept in ``var/demo_password`` when empty, see :func:`demo_password`). The hotline's token
is derived from that password and the seed (HMAC-SHA256), so the same demo gives the same
summary, and nobody without the password can work it out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from mapsvc.config import Settings
from mapsvc.core.secrets import stored_secret
from mapsvc.services import accounts

#: (username, role, staff post the account is linked to, scoped to the district)
DEMO_ACCOUNTS: tuple[tuple[str, str, str | None, bool], ...] = (
    ("demo-admin", "admin", None, False),
    ("demo-planner", "planner", None, True),
    ("demo-leader", "leader", None, False),
    ("demo-dispatcher", "dispatcher", None, True),
    ("demo-chief", "chief", "alley_chief", True),
    ("demo-gridhead", "grid_head", "grid_head", True),
    ("demo-member", "grid_member", "grid_member", True),
    ("demo-steward", "steward", None, True),
)
#: the machine account of the 12345 hotline, which posts incidents through Open311
HOTLINE_ACCOUNT = "12345-hotline"


def demo_password(settings: Settings) -> tuple[str, bool]:
    """The demo accounts' password: ``settings.demo_password``, else the one kept in
    ``var_dir/demo_password`` (made up and stored, mode 0600, the first time).

    Returns ``(password, made_up)``; ``made_up`` is true when this call created it.
    """
    if settings.demo_password:
        return str(settings.demo_password), False
    return stored_secret(Path(settings.var_dir) / "demo_password", nbytes=12)


def hotline_token(password: str, seed: int) -> str:
    """The hotline's demo token, derived from the demo password and the seed."""
    digest = hmac.new(password.encode(), f"hotline:{seed}".encode(), hashlib.sha256).digest()
    return accounts.TOKEN_PREFIX + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _staff_with_post(session: Session, role: str, column: str) -> int | None:
    """The lowest staff id holding a current ``role`` post (a real chief of the roster)."""
    return session.scalar(
        sa.text(
            f"SELECT min(staff_id) FROM assignment WHERE role = :r AND {column} IS NOT NULL "
            "AND valid_to IS NULL"
        ),
        {"r": role},
    )


def write_accounts(session: Session, password: str, seed: int) -> dict[str, object]:
    """Create the demo accounts and the hotline token; what the summary shows of them."""
    district = session.scalar(sa.text("SELECT code FROM district ORDER BY id LIMIT 1"))
    columns = {"alley_chief": "segment_id", "grid_head": "grid_id", "grid_member": "grid_id"}
    names = []
    for username, role, post, scoped in DEMO_ACCOUNTS:
        staff = _staff_with_post(session, post, columns[post]) if post else None
        accounts.create_user(
            session,
            username,
            password,
            role,
            district=district if scoped else None,
            staff=staff,
        )
        names.append(username)
    accounts.create_user(session, HOTLINE_ACCOUNT, None, "public")
    token = hotline_token(password, seed)
    accounts.create_token(session, HOTLINE_ACCOUNT, "12345 hotline (Open311)", secret=token)
    return {"usernames": names, "password": password, "hotline_token": token}
