"""Accounts (logins) and their API tokens.

An account has one role and a scope: a district (none = city-wide) and, for the people of
the roster, the staff member it belongs to, so "handled by" and "my own track" are the
account's staff member rather than typed text. Passwords are kept as argon2 hashes and
tokens as SHA-256 digests only; neither can be read back from the table.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    String,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from mapsvc.models.base import Base

#: account roles, from the most to the least powerful (mapsvc.services.permissions says
#: what each may do)
ACCOUNT_ROLES = (
    "admin",
    "planner",
    "leader",
    "dispatcher",
    "chief",
    "grid_head",
    "grid_member",
    "steward",
    "public",
)


class AppUser(Base):
    """A login: username, argon2 password hash, role and scope, lockout state."""

    __tablename__ = "app_user"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20))
    #: the district the role is scoped to; NULL = city-wide
    district_id: Mapped[int | None] = mapped_column(
        ForeignKey("district.id", ondelete="SET NULL"), index=True
    )
    #: the roster's staff member this account is (a chief logs in as themself)
    staff_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff.id", ondelete="SET NULL"), index=True
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    __table_args__ = (CheckConstraint(f"role IN {ACCOUNT_ROLES!r}", name="ck_app_user_role"),)


class ApiToken(Base):
    """A machine client's token: only its SHA-256 and a short prefix to tell it apart."""

    __tablename__ = "api_token"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
