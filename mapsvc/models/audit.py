"""The audit trail (``audit_log``): who changed which row of which table, when, from where.

Rows are written by PostgreSQL triggers (:mod:`mapsvc.migrations.audit`), never by the
service's code, and cannot be changed afterwards; the model is here for reading them and so
that the table is one of :func:`mapsvc.models.table_names`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Identity, Index, Text, func
from sqlalchemy.dialects.postgresql import INET, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from mapsvc.models.base import Base

#: what a row records: a row inserted, updated or deleted, or a whole table truncated
AUDIT_ACTIONS = ("insert", "update", "delete", "truncate")


class AuditEntry(Base):
    """One written row (or one TRUNCATE), with its values before and after and its author.

    ``via`` is how the author was known (``session``, ``token``, ``cli``, ``anonymous``, or
    ``sql`` for a write made with no actor set, when ``username`` is the database user).
    ``record_id`` is the row's primary key as text; ``before``/``after`` the whole row as
    JSON (geometries as GeoJSON), NULL where there is none (an insert has no before).
    """

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp()
    )
    #: the writing transaction (rows of one request or command share it)
    transaction_id: Mapped[int] = mapped_column(BigInteger, server_default=func.txid_current())
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    username: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(INET)
    via: Mapped[str] = mapped_column(Text)
    table_name: Mapped[str] = mapped_column(Text)
    record_id: Mapped[str | None] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    __table_args__ = (
        CheckConstraint(f"action IN {AUDIT_ACTIONS!r}", name="ck_audit_log_action"),
        Index("ix_audit_log_record", "table_name", "record_id"),
        Index("ix_audit_log_at", "at", postgresql_using="brin"),
    )
