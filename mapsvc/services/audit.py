"""The audit trail: naming who writes, and reading back what was written.

PostgreSQL records every write itself (triggers of :mod:`mapsvc.migrations.audit`, in the
writing transaction). What it cannot know is the person: :func:`set_actor` tells it, in
transaction-local settings, before the first write of a transaction (the web does this for
each request's transaction, the CLI for each command's). Without it a row names the
database user with ``via = 'sql'``.

Reading is :func:`page` (newest first, a page at a time, for ``/admin/audit``) and
:func:`export_rows` (every matching row, streamed, for ``mapsvc audit``), both with the
filters of :class:`AuditFilter`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import ipaddress
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from mapsvc.core.actor import Actor
from mapsvc.core.errors import ValidationError
from mapsvc.core.values import parse_date
from mapsvc.models import AUDIT_ACTIONS, AuditEntry, audited_tables
from mapsvc.services.incident_list import spreadsheet_cell

#: rows on one page of the trail, and the most a caller may ask for
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
#: longest filter value taken (a record id or user name longer than this is a typo)
MAX_FILTER_LENGTH = 200
#: columns of an export, in order (CSV header, JSON keys)
EXPORT_COLUMNS = (
    "id",
    "at",
    "transaction_id",
    "user_id",
    "username",
    "address",
    "via",
    "table_name",
    "record_id",
    "action",
    "before",
    "after",
)
#: text values longer than this are cut on the page (the export keeps them whole)
SHOWN_TEXT_MAX = 500


def author_columns(
    user_id: Any, username: Any, address: Any, via: Any
) -> list[sa.ColumnElement[str]]:
    """Columns that name the author of the writes of the transaction they are selected in.

    The transaction-local settings the audit triggers read (``mapsvc.user_id``,
    ``mapsvc.username``, ``mapsvc.address``, ``mapsvc.via``); each argument is a SQL
    expression of text. :func:`set_actor` selects them from bound values; a statement
    that looks the author up can select them from its row and so name the author in the
    same round trip (:func:`mapsvc.services.accounts.token_principal`).
    """
    values = {"user_id": user_id, "username": username, "address": address, "via": via}
    return [
        sa.func.set_config(f"mapsvc.{name}", value, sa.true()).label(f"author_{name}")
        for name, value in values.items()
    ]


_SET_ACTOR = sa.select(
    *author_columns(
        *(sa.bindparam(k, type_=sa.Text) for k in ("user_id", "username", "address", "via"))
    )
)


def author_address(text: str | None) -> str:
    """``text`` as PostgreSQL ``inet`` takes it, or '' when it is not an IP address.

    A request's address comes from the server (a unix socket gives none), never from the
    user: an unusable one is recorded as unknown rather than failing the write.
    """
    if not text:
        return ""
    try:
        return str(ipaddress.ip_address(text.split("%", 1)[0].strip()))
    except ValueError:
        return ""


def set_actor(db: Session | Connection, actor: Actor) -> None:
    """Name ``actor`` as the author of the writes of ``db``'s current transaction.

    The settings are transaction-local (``set_config(..., true)``): they end with the
    transaction, so a pooled connection never carries one request's person into the next.

    Parameters
    ----------
    db : Session or Connection
        Where the writes happen; the statement runs in its transaction (beginning it).
    actor : Actor
        Who is acting. ``via`` is always recorded; an ``address`` that is not an IP address
        is recorded as unknown.
    """
    db.execute(
        _SET_ACTOR,
        {
            "user_id": "" if actor.user_id is None else str(int(actor.user_id)),
            "username": actor.username or "",
            "address": author_address(actor.address),
            "via": actor.via or "anonymous",
        },
    )


# --------------------------------------------------------------------------- filters


def _text_filter(params: Mapping[str, Any], name: str) -> str | None:
    raw = params.get(name)
    if raw is None:
        return None
    value = str(raw).strip()
    if not value:
        return None
    if len(value) > MAX_FILTER_LENGTH:
        raise ValidationError(
            f"{name} is too long: {len(value)} characters, at most {MAX_FILTER_LENGTH}",
            field=name,
        )
    return value


@dataclass(frozen=True)
class AuditFilter:
    """Which rows of the trail to show or export; every field optional.

    ``user`` is a user name, or an account id when it is all digits; ``date_from`` and
    ``date_to`` are days in the district's clock, both included.
    """

    user: str | None = None
    table: str | None = None
    record: str | None = None
    action: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> AuditFilter:
        """The filter of request parameters or CLI options (strings); a bad one is a
        ValidationError naming it (an unknown table lists the audited ones)."""
        table = _text_filter(params, "table")
        if table is not None and table not in audited_tables():
            raise ValidationError(
                f"table {table!r} is not an audited table; one of: {', '.join(audited_tables())}",
                field="table",
            )
        action = _text_filter(params, "action")
        if action is not None and action not in AUDIT_ACTIONS:
            raise ValidationError(
                f"action {action!r} is not one of {', '.join(AUDIT_ACTIONS)}", field="action"
            )
        date_from = parse_date(params.get("date_from"), "date_from")
        date_to = parse_date(params.get("date_to"), "date_to")
        if date_from and date_to and date_to < date_from:
            raise ValidationError(
                f"date_to ({date_to}) is before date_from ({date_from})", field="date_to"
            )
        return cls(
            user=_text_filter(params, "user"),
            table=table,
            record=_text_filter(params, "record"),
            action=action,
            date_from=date_from,
            date_to=date_to,
        )

    def params(self) -> dict[str, str]:
        """The filter as query parameters (the inverse of :meth:`from_params`)."""
        return {
            k: v.isoformat() if isinstance(v, dt.date) else v
            for k, v in (
                ("user", self.user),
                ("table", self.table),
                ("record", self.record),
                ("action", self.action),
                ("date_from", self.date_from),
                ("date_to", self.date_to),
            )
            if v is not None
        }


def _conditions(f: AuditFilter, tz: ZoneInfo) -> list[sa.ColumnElement[bool]]:
    a = AuditEntry.__table__.c
    where: list[sa.ColumnElement[bool]] = []
    if f.user is not None:
        by_name = a.username == f.user
        where.append(sa.or_(by_name, a.user_id == int(f.user)) if f.user.isdigit() else by_name)
    if f.table is not None:
        where.append(a.table_name == f.table)
    if f.record is not None:
        where.append(a.record_id == f.record)
    if f.action is not None:
        where.append(a.action == f.action)
    if f.date_from is not None:
        where.append(a.at >= dt.datetime.combine(f.date_from, dt.time(0), tz))
    if f.date_to is not None:
        end = f.date_to + dt.timedelta(days=1)
        where.append(a.at < dt.datetime.combine(end, dt.time(0), tz))
    return where


# --------------------------------------------------------------------------- the page


@dataclass(frozen=True)
class Change:
    """One field of a written row as the page shows it."""

    field: str
    before: str | None
    after: str | None
    changed: bool


@dataclass
class AuditPage:
    """One page of the trail, newest first, and where the neighbouring pages start.

    ``older`` is the ``before`` cursor of the next (older) page, ``newer`` the ``after``
    cursor of the previous (newer) one; None where there is no such page.
    """

    items: list[dict[str, Any]] = field(default_factory=list)
    older: int | None = None
    newer: int | None = None


def shown(value: Any) -> str | None:
    """A stored JSON value as text for a person: GeoJSON summarised, long text cut."""
    if value is None:
        return None
    if isinstance(value, dict) and "type" in value and "coordinates" in value:
        return f"{value['type']} ({_vertices(value['coordinates'])} points)"
    if isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= SHOWN_TEXT_MAX else text[:SHOWN_TEXT_MAX] + "…"


def _vertices(coords: Any) -> int:
    if isinstance(coords, list) and coords and isinstance(coords[0], (int, float)):
        return 1
    return sum(_vertices(c) for c in coords) if isinstance(coords, list) else 0


def changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[Change]:
    """The fields of a written row, each with its shown value before and after.

    Fields are in the row's order (an update's changed ones flagged); an insert has no
    before and a delete no after, so all their fields count as changed.
    """
    names = list(after or {}) + [k for k in (before or {}) if k not in (after or {})]
    out = []
    for name in names:
        old = None if before is None else before.get(name)
        new = None if after is None else after.get(name)
        out.append(
            Change(
                name,
                shown(old),
                shown(new),
                changed=before is None or after is None or old != new,
            )
        )
    return out


def _item(row: sa.Row, tz: ZoneInfo) -> dict[str, Any]:
    fields = changes(row.before, row.after)
    return {
        "id": row.id,
        "at": row.at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"),
        "transaction_id": row.transaction_id,
        "user_id": row.user_id,
        "username": row.username,
        "address": None if row.address is None else str(row.address),
        "via": row.via,
        "table_name": row.table_name,
        "record_id": row.record_id,
        "action": row.action,
        "changed": [c for c in fields if c.changed],
        "unchanged": [c for c in fields if not c.changed],
    }


def page(
    db: Session | Connection,
    f: AuditFilter,
    *,
    tz: ZoneInfo,
    limit: int = PAGE_SIZE,
    before: int | None = None,
    after: int | None = None,
) -> AuditPage:
    """One page of the rows ``f`` matches, newest first.

    Pages are cut by id (keyset), not by offset, so paging through millions of rows costs
    the same at the thousandth page as at the first, and rows written meanwhile do not
    shift the page being read.

    Parameters
    ----------
    db : Session or Connection
    f : AuditFilter
    tz : ZoneInfo
        The district's clock: what the dates of ``f`` mean and how times are shown.
    limit : int
        Rows per page, cut to :data:`MAX_PAGE_SIZE`.
    before, after : int, optional
        Show the rows older than id ``before`` (the next page), or the newest page of
        those newer than id ``after`` (the previous page); the newest rows when neither.
    """
    a = AuditEntry.__table__.c
    limit = max(1, min(int(limit), MAX_PAGE_SIZE))
    where = _conditions(f, tz)
    q = sa.select(AuditEntry.__table__).where(*where)
    if after is not None:
        rows = list(db.execute(q.where(a.id > after).order_by(a.id.asc()).limit(limit)))
        rows.reverse()
    else:
        if before is not None:
            q = q.where(a.id < before)
        rows = list(db.execute(q.order_by(a.id.desc()).limit(limit)))
    if not rows:
        return AuditPage()

    def exists(cond: sa.ColumnElement[bool]) -> bool:
        return bool(db.scalar(sa.select(sa.exists().where(*where, cond))))

    newest, oldest = rows[0].id, rows[-1].id
    return AuditPage(
        items=[_item(r, tz) for r in rows],
        older=oldest if exists(a.id < oldest) else None,
        newer=newest if exists(a.id > newest) else None,
    )


# --------------------------------------------------------------------------- export


def count(db: Session | Connection, f: AuditFilter, *, tz: ZoneInfo) -> int:
    """How many rows ``f`` matches (an export's progress total)."""
    q = sa.select(sa.func.count()).select_from(AuditEntry.__table__).where(*_conditions(f, tz))
    return int(db.scalar(q) or 0)


def export_rows(
    conn: Connection, f: AuditFilter, *, tz: ZoneInfo, batch: int = 2000
) -> Iterator[dict[str, Any]]:
    """Every row ``f`` matches, oldest first, as plain values (see :data:`EXPORT_COLUMNS`).

    Streamed through a server-side cursor ``batch`` rows at a time, so an export of
    millions of rows holds one batch in memory. Times are ISO 8601 in the district's clock.
    """
    a = AuditEntry.__table__.c
    q = sa.select(*(a[c] for c in EXPORT_COLUMNS)).where(*_conditions(f, tz)).order_by(a.id)
    result = conn.execution_options(stream_results=True, yield_per=batch).execute(q)
    for row in result:
        item = row._asdict()
        item["at"] = row.at.astimezone(tz).isoformat()
        item["address"] = None if row.address is None else str(row.address)
        yield item


def jsonl_lines(rows: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """Rows as JSON lines (one object per line; before/after as objects)."""
    for r in rows:
        yield json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n"


def csv_lines(rows: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """Rows as CSV lines (UTF-8 byte order mark first, for spreadsheets) under a header.

    ``before``/``after`` are JSON text; a text cell a spreadsheet would run as a formula
    (a user name starting with ``=``) is written as text, as in the incident list's CSV.
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")

    def flush() -> str:
        text = buf.getvalue()
        buf.seek(0)
        buf.truncate()
        return text

    w.writerow(EXPORT_COLUMNS)
    yield "\ufeff" + flush()
    for r in rows:
        w.writerow([_csv_cell(c, r[c]) for c in EXPORT_COLUMNS])
        yield flush()


def _csv_cell(column: str, value: Any) -> Any:
    if value is None:
        return ""
    if column in ("before", "after"):
        return json.dumps(value, ensure_ascii=False)
    return spreadsheet_cell(value)
