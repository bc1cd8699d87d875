"""The incident list a chief works through: one page of rows with a total, and the CSV.

The heatmap shows where incidents are; a street or alley chief, a grid head or a leader
also needs to go through them one by one: newest first, with the class, the state, the
time limit, where it is and whose it is, and to move each along the closed loop. This
module answers the rows; the page (``/incidents/list``) and its CSV
(``/incidents/list.csv``) only render them.

The filters are :func:`mapsvc.services.incidents.filter_sql`'s, so the list, the JSON API
and the heatmap always mean the same incidents; ids that name nothing are its
:class:`~mapsvc.services.errors.NotFound`. A page is one query (the incident joined to
its category, grid and chief) plus one count, both on the indexed ``incident`` columns.

Times are shown in the district's local time (``Settings.tz``):
that is the clock the hotline and the chiefs read.

No Flask here: the caller passes the locale.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from mapsvc.config import Settings
from mapsvc.core.i18n import N_, translator
from mapsvc.core.labels import code_label
from mapsvc.models import SEVERITIES, STATES
from mapsvc.services.incidents import TRANSITIONS, filter_sql

#: rows per page when the request names no ``limit``
PAGE_SIZE = 50
#: the largest page (a bigger ``limit`` is cut to it): a page is read by a person
MAX_PAGE_SIZE = 500
#: CSV rows are fetched from the database in batches of this many (the export streams)
CSV_BATCH = 2000

#: the CSV's columns: (row key, English heading); the headings are translated
CSV_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", N_("No.")),
    ("category_name", N_("Category")),
    ("severity_label", N_("Class")),
    ("state_label", N_("State")),
    ("reported", N_("Reported")),
    ("due", N_("Due")),
    ("closed", N_("Closed at")),
    ("overdue_label", N_("Overdue")),
    ("to_confirm_label", N_("Location to confirm")),
    ("community_name", N_("Community")),
    ("grid_code", N_("Grid")),
    ("chief_name", N_("Chief")),
    ("address", N_("Address")),
    ("description", N_("Description")),
    ("lon", N_("Longitude (WGS84)")),
    ("lat", N_("Latitude (WGS84)")),
)

#: what the overdue column says: still open past the time limit, or closed after it
OVERDUE_LABELS = {"open": N_("Overdue"), "late": N_("Closed late")}
YES = N_("Yes")

#: the row's columns, from ``{source}``: the filtered incidents (the CSV) or one page's
#: ids (the page: the filter, the order and the offset run on the narrow ``incident``
#: index columns first, so a deep page sorts ids, not descriptions and joined names)
_SELECT = """
    {page}
    SELECT i.id, i.category, c.name_zh AS category_zh, c.name_en AS category_en,
        i.severity, i.state, i.address, i.description,
        to_char(i.reported_at AT TIME ZONE :tz, 'YYYY-MM-DD HH24:MI') AS reported,
        to_char(i.due_at AT TIME ZONE :tz, 'YYYY-MM-DD HH24:MI') AS due,
        to_char(i.closed_at AT TIME ZONE :tz, 'YYYY-MM-DD HH24:MI') AS closed,
        i.location_to_confirm, i.grid_id, g.code AS grid_code, i.community_id,
        cm.name AS community_name, i.chief_id, s.name AS chief_name,
        CASE WHEN i.state <> 'closed' AND i.due_at < now() THEN 'open'
             WHEN i.state = 'closed' AND i.closed_at > i.due_at THEN 'late' END AS overdue,
        ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat
    FROM {source}
    LEFT JOIN incident_category c ON c.code = i.category
    LEFT JOIN grid g ON g.id = i.grid_id
    LEFT JOIN community cm ON cm.id = i.community_id
    LEFT JOIN staff s ON s.id = i.chief_id
    WHERE {where}
    ORDER BY i.reported_at DESC, i.id DESC
"""
_PAGE = """WITH page AS MATERIALIZED (
        SELECT i.id FROM incident i WHERE {where}
        ORDER BY i.reported_at DESC, i.id DESC LIMIT :lim OFFSET :off)"""


def _select(where: str, paged: bool) -> str:
    if paged:
        page_sql = _PAGE.format(where=where)
        return _SELECT.format(page=page_sql, source="page JOIN incident i USING (id)", where="TRUE")
    return _SELECT.format(page="", source="incident i", where=where)


@lru_cache(maxsize=4)
def _texts(locale: str) -> dict[str, Any]:
    """Every label a row shows in ``locale``, looked up once, not once per row (an export
    of the demo is 100,000 rows)."""
    _ = translator(locale)
    return {
        "en": locale.startswith("en"),
        "state": {s: code_label(s, _) for s in STATES},
        "severity": {s: code_label(s, _) for s in SEVERITIES},
        "overdue": {k: _(v) for k, v in OVERDUE_LABELS.items()},
        "yes": _(YES),
    }


def _row(r: Any, locale: str) -> dict[str, Any]:
    """One incident as the page and the CSV show it (labels in ``locale``)."""
    tx = _texts(locale)
    states = tx["state"]
    return {
        "id": r.id,
        "category": r.category,
        "category_name": ((tx["en"] and r.category_en) or r.category_zh or r.category),
        "severity": r.severity,
        "severity_label": tx["severity"].get(r.severity, r.severity),
        "state": r.state,
        "state_label": states.get(r.state, r.state),
        "open": r.state != "closed",
        # the next states of the closed loop, as the API's ``allowed_transitions``
        "allowed": [(s, states[s]) for s in TRANSITIONS.get(r.state, ())],
        "reported": r.reported or "",
        "due": r.due or "",
        "closed": r.closed or "",
        "overdue": r.overdue,
        "overdue_label": tx["overdue"][r.overdue] if r.overdue else "",
        "location_to_confirm": bool(r.location_to_confirm),
        "to_confirm_label": tx["yes"] if r.location_to_confirm else "",
        "address": r.address or "",
        "description": r.description or "",
        "grid_id": r.grid_id,
        "grid_code": r.grid_code or "",
        "community_id": r.community_id,
        "community_name": r.community_name or "",
        "chief_id": r.chief_id,
        "chief_name": r.chief_name or "",
        "lon": round(float(r.lon), 7),
        "lat": round(float(r.lat), 7),
    }


def count(session: Session, filters: dict[str, Any]) -> int:
    """How many incidents match ``filters`` (unknown grid/community/chief ids: NotFound)."""
    where, params = filter_sql(filters, session=session)
    return int(session.scalar(sa.text(f"SELECT count(*) FROM incident i WHERE {where}"), params))


def page(
    session: Session,
    filters: dict[str, Any],
    *,
    limit: int = PAGE_SIZE,
    offset: int = 0,
    locale: str = "zh_CN",
) -> dict[str, Any]:
    """One page of the filtered incidents, newest first, with the total.

    Parameters
    ----------
    session : Session
    filters : dict
        As :func:`mapsvc.services.incidents.filter_sql` takes them (``class`` is an alias
        of ``severity``); unknown ids raise :class:`~mapsvc.services.errors.NotFound`,
        malformed values :class:`~mapsvc.services.errors.ValidationError`.
    limit, offset : int
        The page: ``limit`` is cut to :data:`MAX_PAGE_SIZE`.
    locale : str
        Language of the category, class and state labels.

    Returns
    -------
    dict
        ``total``, ``limit``, ``offset``, ``first`` and ``last`` (1-based positions of the
        page's rows, 0 when it is empty: the page says "1-50 of 846"), ``items`` (rows as
        :func:`_row` makes them) and ``prev_offset`` / ``next_offset`` (None at the ends).
    """
    where, params = filter_sql(filters, session=session)
    limit = max(1, min(int(limit), MAX_PAGE_SIZE))
    offset = max(0, int(offset))
    total = int(session.scalar(sa.text(f"SELECT count(*) FROM incident i WHERE {where}"), params))
    rows = session.execute(
        sa.text(_select(where, paged=True)),
        {**params, "lim": limit, "off": offset, "tz": Settings().tz.key},
    ).all()
    items = [_row(r, locale) for r in rows]
    return {
        "total": total,
        "limit": limit,
        "offset": offset,
        "first": offset + 1 if items else 0,
        "last": offset + len(items) if items else 0,
        "items": items,
        "prev_offset": max(0, offset - limit) if offset > 0 else None,
        "next_offset": offset + limit if offset + limit < total else None,
    }


def _cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet shows as text, never runs as a formula.

    Descriptions and addresses come from the public (hotline, Open311): one starting with
    ``=``, ``+``, ``-`` or ``@`` would be a formula in Excel, so it gets a leading ``'``.
    """
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def csv_lines(session: Session, filters: dict[str, Any], locale: str = "zh_CN") -> Iterator[str]:
    """The CSV of every incident matching ``filters``, newest first, as text chunks.

    Streams: rows are fetched in batches of :data:`CSV_BATCH` through a server-side
    cursor and written as they come, so the whole demo (100,000 incidents) is exported
    without holding it in memory and with no row limit. The first chunk starts with a
    UTF-8 byte order mark (encoded as UTF-8, Excel then opens the Chinese text correctly)
    and the translated headings. The filters are checked before the first chunk, so an
    unknown id is a :class:`~mapsvc.services.errors.NotFound`, not a broken download.
    """
    where, params = filter_sql(filters, session=session)
    _ = translator(locale)
    head = io.StringIO()
    csv.writer(head, lineterminator="\r\n").writerow([_(h) for _k, h in CSV_COLUMNS])

    def generate() -> Iterator[str]:
        yield "\ufeff" + head.getvalue()
        # a server-side cursor on the session's connection: rows arrive CSV_BATCH at a time
        conn = session.connection().execution_options(stream_results=True, max_row_buffer=CSV_BATCH)
        result = conn.execute(
            sa.text(_select(where, paged=False)), {**params, "tz": Settings().tz.key}
        )
        for batch in result.partitions(CSV_BATCH):
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\r\n")
            for r in batch:
                row = _row(r, locale)
                w.writerow([_cell(row[k]) for k, _h in CSV_COLUMNS])
            yield buf.getvalue()

    return generate()
