"""The incident list a chief works through: one page of rows with a total, and the CSV.

The heatmap shows where incidents are; a street or alley chief, a grid head or a leader
also needs to go through them one by one: newest first, with the class, the state, the
time limit, where it is and whose it is, and to move each along the closed loop. This
module answers the rows; the page (``/incidents/list``) and its CSV
(``/incidents/list.csv``) only render them.

The filters are :func:`mapsvc.services.incidents.incident_filter`'s, so the list, the JSON
API and the heatmap always mean the same incidents; ids that name nothing are its
:class:`~mapsvc.core.errors.NotFound`. A page is one query (the incident joined to
its category, grid and chief) plus one count, both on the indexed ``incident`` columns.

Times are shown in the district's local time (``Settings.tz``):
that is the clock the hotline and the chiefs read.

No Flask here: the caller passes the locale.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from mapsvc.config import Settings
from mapsvc.core.i18n import N_, translator
from mapsvc.core.labels import code_label
from mapsvc.models import SEVERITIES, STATES, Community, Grid, Incident, IncidentCategory, Staff
from mapsvc.services.incidents import TRANSITIONS, IncidentFilter, incident_filter, is_overdue

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

#: the date-time format of the page and the CSV (in the district's time)
_TIME_FORMAT = "YYYY-MM-DD HH24:MI"


@lru_cache(maxsize=1)
def _aliases() -> tuple[sa.Alias, ...]:
    """The incident and the tables a row names (one set, built once: an alias is only a
    name in a statement, and building its column collection costs time on every page)."""
    return (
        Incident.__table__.alias("i"),
        IncidentCategory.__table__.alias("c"),
        Grid.__table__.alias("g"),
        Community.__table__.alias("cm"),
        Staff.__table__.alias("s"),
    )


def _select(f: IncidentFilter, page: tuple[int, int] | None, tz: str) -> sa.Select:
    """The rows of the incidents ``f`` matches, newest first, each with the names it shows.

    ``page`` is ``(limit, offset)``, or None for every row (the CSV). A page runs the
    filter, the order and the offset on the narrow ``incident`` index columns first (a
    materialised CTE of ids), so a deep page sorts ids, not descriptions and joined names.
    """
    i, c, g, cm, s = _aliases()
    order = (i.c.reported_at.desc(), i.c.id.desc())
    if page is None:
        source, where = i, f.clauses(i)
    else:
        limit, offset = page
        ids = (
            sa.select(i.c.id)
            .where(*f.clauses(i))
            .order_by(*order)
            .limit(limit)
            .offset(offset)
            .cte("page")
            .prefix_with("MATERIALIZED")
        )
        source, where = ids.join(i, i.c.id == ids.c.id), []

    def local(col: sa.ColumnElement[Any], name: str) -> sa.Label:
        return sa.func.to_char(sa.func.timezone(tz, col), _TIME_FORMAT).label(name)

    late = (i.c.state == "closed") & (i.c.closed_at > i.c.due_at)
    return (
        sa.select(
            i.c.id,
            i.c.category,
            c.c.name_zh.label("category_zh"),
            c.c.name_en.label("category_en"),
            i.c.severity,
            i.c.state,
            i.c.address,
            i.c.description,
            local(i.c.reported_at, "reported"),
            local(i.c.due_at, "due"),
            local(i.c.closed_at, "closed"),
            i.c.location_to_confirm,
            i.c.grid_id,
            g.c.code.label("grid_code"),
            i.c.community_id,
            cm.c.name.label("community_name"),
            i.c.chief_id,
            s.c.name.label("chief_name"),
            sa.case((is_overdue(i), "open"), (late, "late")).label("overdue"),
            sa.func.ST_X(i.c.geom).label("lon"),
            sa.func.ST_Y(i.c.geom).label("lat"),
        )
        .select_from(
            source.outerjoin(c, c.c.code == i.c.category)
            .outerjoin(g, g.c.id == i.c.grid_id)
            .outerjoin(cm, cm.c.id == i.c.community_id)
            .outerjoin(s, s.c.id == i.c.chief_id)
        )
        .where(*where)
        .order_by(*order)
    )


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


def count(session: Session, filters: Mapping[str, Any] | IncidentFilter) -> int:
    """How many incidents match ``filters`` (unknown grid/community/chief ids: NotFound)."""
    return _count(session, incident_filter(filters, session))


def _count(session: Session, f: IncidentFilter) -> int:
    i = Incident.__table__
    return int(session.scalar(sa.select(sa.func.count()).select_from(i).where(*f.clauses(i))))


def page(
    session: Session,
    filters: Mapping[str, Any] | IncidentFilter,
    *,
    limit: int = PAGE_SIZE,
    offset: int = 0,
    locale: str = "zh_CN",
    settings: Settings | None = None,
) -> dict[str, Any]:
    """One page of the filtered incidents, newest first, with the total.

    Parameters
    ----------
    session : Session
    filters : dict
        As :func:`mapsvc.services.incidents.incident_filter` takes them (``class`` is an alias
        of ``severity``); unknown ids raise :class:`~mapsvc.core.errors.NotFound`,
        malformed values :class:`~mapsvc.core.errors.ValidationError`.
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
    f = incident_filter(filters, session)
    limit = max(1, min(int(limit), MAX_PAGE_SIZE))
    offset = max(0, int(offset))
    total = _count(session, f)
    tz = (settings or Settings()).tz.key  # times are shown on the district's clock
    rows = session.execute(_select(f, (limit, offset), tz)).all()
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


def spreadsheet_cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet shows as text, never runs as a formula.

    Descriptions and addresses come from the public (hotline, Open311): one starting with
    ``=``, ``+``, ``-`` or ``@`` would be a formula in Excel, so it gets a leading ``'``.
    """
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def csv_lines(
    session: Session,
    filters: Mapping[str, Any] | IncidentFilter,
    locale: str = "zh_CN",
    settings: Settings | None = None,
) -> Iterator[str]:
    """The CSV of every incident matching ``filters``, newest first, as text chunks.

    Streams: rows are fetched in batches of :data:`CSV_BATCH` through a server-side
    cursor and written as they come, so the whole demo (100,000 incidents) is exported
    without holding it in memory and with no row limit. The first chunk starts with a
    UTF-8 byte order mark (encoded as UTF-8, Excel then opens the Chinese text correctly)
    and the translated headings. The filters are checked before the first chunk, so an
    unknown id is a :class:`~mapsvc.core.errors.NotFound`, not a broken download.
    """
    f = incident_filter(filters, session)
    _ = translator(locale)
    head = io.StringIO()
    csv.writer(head, lineterminator="\r\n").writerow([_(h) for _k, h in CSV_COLUMNS])

    def generate() -> Iterator[str]:
        yield "\ufeff" + head.getvalue()
        # a server-side cursor on the session's connection: rows arrive CSV_BATCH at a time
        conn = session.connection().execution_options(stream_results=True, max_row_buffer=CSV_BATCH)
        result = conn.execute(_select(f, None, (settings or Settings()).tz.key))
        for batch in result.partitions(CSV_BATCH):
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\r\n")
            for r in batch:
                row = _row(r, locale)
                w.writerow([spreadsheet_cell(row[k]) for k, _h in CSV_COLUMNS])
            yield buf.getvalue()

    return generate()
