"""Staffing quotas (员额): the staff each community should have, against what it has.

The formula is the one districts publish, "by community population, area and number of
enterprises"::

    required = a × population / 10,000 + b × area_km2 + c × enterprises / 100

with ``a, b, c`` from config ``QUOTA_COEFFICIENTS`` (overridable per request so planners can
try other weights). The exact value is kept and ``required`` is rounded up, because a
fraction of a person still has to be somebody. Actual staff are the counts of
:func:`mapsvc.services.density.density` at community level (one place for "who is posted
where on a date"), for all staff or one role group. The default group is community workers
(社区工作者), the post that quotas (员额) are set for in practice; config ``QUOTA_GROUP``
or a request parameter can choose all staff or another group.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from typing import Any

from sqlalchemy.orm import Session

from mapsvc.config import Settings
from mapsvc.core.errors import ValidationError
from mapsvc.core.i18n import N_, translator
from mapsvc.services.density import GROUPS, density

COEFFICIENT_NAMES = ("a", "b", "c")
DEFAULT_GROUP = "community_workers"

#: export columns: (key, English header); the Chinese headers are in the message catalogue
COLUMNS: list[tuple[str, str]] = [
    ("code", N_("Community code")),
    ("name", N_("Community")),
    ("subdistrict_name", N_("Subdistrict")),
    ("population", N_("Population")),
    ("area_km2", N_("Area (km²)")),
    ("enterprises", N_("Enterprises")),
    ("required_exact", N_("Required (formula)")),
    ("required", N_("Required staff")),
    ("actual", N_("Actual staff")),
    ("gap", N_("Surplus (+) / shortfall (−)")),
    ("status", N_("Status")),
]
#: the status column's words (English ids as written in an English export)
STATUS_LABELS = {
    "shortfall": N_("shortfall"),
    "surplus": N_("surplus"),
    "balanced": N_("balanced"),
}


def coefficients(
    settings: Settings | None, overrides: dict[str, Any] | None = None
) -> dict[str, float]:
    """Coefficients from ``settings.quota_coefficients`` with request overrides, checked."""
    base = dict((settings or Settings()).quota_coefficients)
    for k, v in (overrides or {}).items():
        if v is not None and v != "":
            base[k] = v
    out = {}
    for k in COEFFICIENT_NAMES:
        try:
            val = float(base.get(k, 0.0))
        except (TypeError, ValueError):
            raise ValidationError(
                f"quota coefficient {k} must be a number; got {str(base.get(k))[:40]!r}", field=k
            ) from None
        if not math.isfinite(val) or val < 0:
            raise ValidationError(
                f"quota coefficient {k} must be a finite number ≥ 0; got {val}", field=k
            )
        out[k] = val
    return out


def required_staff(
    population: float, area_km2: float, enterprises: float, coef: dict[str, float]
) -> float:
    """The quota formula (exact value, before rounding up)."""
    return (
        coef["a"] * (population or 0) / 10000.0
        + coef["b"] * (area_km2 or 0.0)
        + coef["c"] * (enterprises or 0) / 100.0
    )


def quota_table(
    session: Session,
    day: dt.date | None = None,
    coef: dict[str, float] | None = None,
    group: str = DEFAULT_GROUP,
) -> dict[str, Any]:
    """Required vs actual staff (of ``group``) per community, with totals.

    Returns
    -------
    dict
        ``date``, ``coefficients``, ``group``, ``rows`` (one per community: the columns of
        :data:`COLUMNS` plus ``id`` and ``geometry`` when asked) and ``totals``.
    """
    from mapsvc.models import Community

    if group not in GROUPS:
        raise ValidationError(
            f"group must be one of {', '.join(GROUPS)}; got {group!r}", field="group"
        )
    coef = coef or coefficients(None)
    day = day or Settings().today()
    actual = {r["id"]: r for r in density(session, "community", day)}
    enterprises = dict(session.query(Community.id, Community.enterprises).all())
    key = "staff" if group == "all" else group
    rows = []
    for cid, d in actual.items():
        exact = required_staff(d["population"], d["area_km2"], enterprises.get(cid) or 0, coef)
        required = math.ceil(round(exact, 6))
        have = int(d[key])
        gap = have - required
        rows.append(
            {
                "id": cid,
                "code": d["code"],
                "name": d["name"],
                "subdistrict_name": d["parent_name"],
                "population": d["population"],
                "area_km2": round(d["area_km2"], 4),
                "enterprises": int(enterprises.get(cid) or 0),
                "required_exact": round(exact, 2),
                "required": required,
                "actual": have,
                "gap": gap,
                "status": "shortfall" if gap < 0 else ("surplus" if gap > 0 else "balanced"),
            }
        )
    totals = {
        "communities": len(rows),
        "required": sum(r["required"] for r in rows),
        "actual": sum(r["actual"] for r in rows),
        "shortfall": sum(-r["gap"] for r in rows if r["gap"] < 0),
        "surplus": sum(r["gap"] for r in rows if r["gap"] > 0),
        "communities_short": sum(1 for r in rows if r["status"] == "shortfall"),
        "communities_surplus": sum(1 for r in rows if r["status"] == "surplus"),
    }
    return {
        "date": day.isoformat(),
        "coefficients": coef,
        "formula": "a × population / 10000 + b × area_km2 + c × enterprises / 100",
        "group": group,
        "rows": rows,
        "totals": totals,
    }


def _headers(locale: str) -> list[str]:
    _ = translator(locale)
    return [_(header) for _key, header in COLUMNS]


def _cells(row: dict[str, Any], locale: str) -> list[Any]:
    _ = translator(locale)
    return [_(STATUS_LABELS[row[key]]) if key == "status" else row[key] for key, _h in COLUMNS]


def to_csv(table: dict[str, Any], locale: str = "zh_CN") -> str:
    """The quota table as CSV text (write it with ``utf-8-sig`` so Excel reads Chinese)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(_headers(locale))
    for r in table["rows"]:
        w.writerow(_cells(r, locale))
    return buf.getvalue()


def to_xlsx(table: dict[str, Any], locale: str = "zh_CN") -> bytes:
    """The quota table as an XLSX workbook (openpyxl): header, rows, totals, formula note."""
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter

    _ = translator(locale)
    headers = _headers(locale)
    wb = Workbook()
    ws = wb.active
    ws.title = _("Quota")
    ws.append(headers)
    for cell in ws[1]:
        cell.font = Font(bold=True, color="FFFFFF")
        cell.fill = PatternFill("solid", fgColor="1F3A5F")
    red = PatternFill("solid", fgColor="FDE2E1")
    for r in table["rows"]:
        ws.append(_cells(r, locale))
        if r["gap"] < 0:
            ws.cell(row=ws.max_row, column=len(COLUMNS) - 1).fill = red
    t = table["totals"]
    ws.append(
        [
            _("Total"),
            *[None] * 6,
            t["required"],
            t["actual"],
            t["actual"] - t["required"],
            None,
        ]
    )
    for cell in ws[ws.max_row]:
        cell.font = Font(bold=True)
    c = table["coefficients"]
    ws.append([])
    ws.append(
        [
            _("Formula") + f": {c['a']} × population / 10000 + {c['b']} × area_km2 + "
            f"{c['c']} × enterprises / 100 ({table['date']})"
        ]
    )
    ws.freeze_panes = "A2"
    for i, header in enumerate(headers, start=1):
        ws.column_dimensions[get_column_letter(i)].width = max(10, len(header) + 4)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
