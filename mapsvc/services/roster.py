"""The staff roster (花名册): people, their roles and their posts, kept with their history.

A district's roster arrives as a spreadsheet: one row per person and post, with the grid
or segment codes the post covers and the dates it runs. :func:`import_roster` reads such
a file (CSV or XLSX, column names mapped like the incident import's), checks every row
first and then writes everything in the caller's one transaction: a person is found by
their staff code (made when new, their name, phone and role updated when known), and
each post goes through :func:`mapsvc.services.assignments.assign`, which ends the
previous holder's term the day before instead of deleting it. Ending a post
(:func:`end_staff`) sets its last day, so coverage and the dashboard of any past date
still show who was there.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from mapsvc.core.errors import Conflict, NotFound, ValidationError
from mapsvc.models import AlleySegment, Assignment, Grid, Staff
from mapsvc.models.staffing import ROLES
from mapsvc.services.assignments import assign, end_assignment, valid_on
from mapsvc.services.fields import text

#: what a roster's role column may say, in Chinese or as the service's code
ROLE_NAMES: dict[str, str] = {
    **{r: r for r in ROLES},
    "网格长": "grid_head",
    "网格员": "grid_member",
    "专职网格员": "grid_member",
    "街巷长": "alley_chief",
    "街长": "alley_chief",
    "巷长": "alley_chief",
    "副街巷长": "deputy_chief",
    "社区工作者": "community_worker",
    "下沉人员": "dispatched",
}
#: the roster's columns: key -> (column names looked for by default, required)
COLUMNS: dict[str, tuple[tuple[str, ...], bool]] = {
    "code": (("code", "staff_code", "编号", "工号"), True),
    "name": (("name", "姓名"), True),
    "role": (("role", "职务", "岗位", "角色"), True),
    "phone": (("phone", "电话", "联系电话", "手机"), False),
    "grids": (("grids", "grid", "网格", "网格编码"), False),
    "segments": (("segments", "segment", "街巷", "街巷编码"), False),
    "valid_from": (("from", "valid_from", "起始日期", "任职日期"), False),
    "valid_to": (("to", "valid_to", "终止日期", "离任日期"), False),
}
#: a cell that lists several codes separates them with one of these
SEPARATORS = (";", "；", "、", "|", " ")
#: the biggest roster read (rows): a district has a few thousand people
MAX_ROWS = 50_000


@dataclass
class RosterReport:
    """What an import did (or, for a dry run, would do)."""

    rows: int = 0
    added: int = 0
    updated: int = 0
    posts: int = 0
    ended: int = 0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _table(path: Path, data: bytes) -> list[list[str]]:
    """The sheet's cells as text (the first sheet of an XLSX); ``path`` names the file."""
    if path.suffix.lower() == ".xlsx":
        from openpyxl import load_workbook

        try:
            book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except Exception as exc:  # noqa: BLE001 - openpyxl raises many types for a bad file
            raise ValidationError(f"{path}: not a readable XLSX workbook ({exc})") from None
        sheet = book.worksheets[0]
        out = []
        for row in sheet.iter_rows(values_only=True):
            cells = []
            for v in row:
                if isinstance(v, dt.datetime):
                    v = v.date()
                if isinstance(v, float) and v.is_integer():
                    v = int(v)
                cells.append("" if v is None else str(v).strip())
            out.append(cells)
        book.close()
        return out
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    if "\x00" in content:
        line = content.count("\n", 0, content.index("\x00")) + 1
        raise ValidationError(f"{path}: line {line} contains a NUL character")
    try:
        return [[c.strip() for c in r] for r in csv.reader(io.StringIO(content))]
    except csv.Error as exc:
        raise ValidationError(f"{path}: cannot be read as CSV ({exc})") from None


def _columns(header: list[str], mapping: dict[str, str], path: Path) -> dict[str, int]:
    """Where each roster key is in the header (the mapping's name, else a usual one)."""
    unknown = sorted(set(mapping) - set(COLUMNS))
    if unknown:
        raise ValidationError(
            f"unknown roster key(s) {', '.join(unknown)}; keys: {', '.join(COLUMNS)}",
            field="map",
        )
    where: dict[str, int] = {}
    for key, (names, required) in COLUMNS.items():
        wanted = (mapping[key],) if key in mapping else names
        found = next((header.index(n) for n in wanted if n in header), None)
        if found is None and (required or key in mapping):
            raise ValidationError(
                f"{path}: no column {' / '.join(wanted)} for the {key}; the file has: "
                f"{', '.join(header)}",
                field=key,
            )
        if found is not None:
            where[key] = found
    if "grids" not in where and "segments" not in where:
        raise ValidationError(
            f"{path}: a roster needs a grid or a segment column; the file has: {', '.join(header)}",
            field="grids",
        )
    return where


def _codes(cell: str) -> list[str]:
    for sep in SEPARATORS[:-1]:
        cell = cell.replace(sep, " ")
    return [c for c in cell.split() if c]


def _day(cell: str, what: str, problems: list[str], where: str) -> dt.date | None:
    if not cell:
        return None
    try:
        return dt.date.fromisoformat(cell[:10].replace("/", "-"))
    except ValueError:
        problems.append(f"{where}: {what} {cell!r} is not a date (YYYY-MM-DD)")
        return None


def import_roster(
    session: Session,
    path: str | Path,
    *,
    data: bytes | None = None,
    mapping: dict[str, str] | None = None,
    today: dt.date | None = None,
    check_target: Callable[[str, int], None] | None = None,
) -> RosterReport:
    """Read a roster file and write its people and posts in the caller's transaction.

    Parameters
    ----------
    path : str or Path
        The file, or only its name (CSV or ``.xlsx``) when ``data`` holds its bytes (an
        upload).
    mapping : dict, optional
        Roster key -> column name, for files whose columns have other names
        (keys: :data:`COLUMNS`).
    today : date, optional
        The default first day of a post without one (the district's today).
    check_target : callable, optional
        ``check_target(kind, id)`` for every grid (``"grid"``) and segment (``"segment"``)
        given a post, before anything is written; it refuses one by raising (the
        caller's scope check: a planner edits their own district).

    Raises
    ------
    ValidationError
        Any bad row: every problem is listed (row, column, value, why) and nothing is
        written; the caller rolls back.
    """
    path = Path(path)
    if data is None:
        if not path.exists():
            raise ValidationError(f"{path}: no such file")
        data = path.read_bytes()
    table = _table(path, data)
    if not table or not any(table[0]):
        raise ValidationError(f"{path}: the file is empty")
    if len(table) - 1 > MAX_ROWS:
        raise ValidationError(f"{path}: more than {MAX_ROWS:,} rows")
    header = table[0]
    col = _columns(header, mapping or {}, path)
    grid_ids = dict(session.execute(sa.select(Grid.code, Grid.id).where(Grid.on())).all())
    segment_ids = dict(session.execute(sa.select(AlleySegment.code, AlleySegment.id)).all())
    report = RosterReport()
    planned: list[dict[str, Any]] = []
    for n, row in enumerate(table[1:], start=2):
        if not any(row):
            continue
        report.rows += 1
        cell = {k: (row[i] if i < len(row) else "") for k, i in col.items()}
        where = f"row {n}"
        before = len(report.problems)
        role = ROLE_NAMES.get(cell["role"])
        if role is None:
            report.problems.append(
                f"{where}: {header[col['role']]}: unknown role {cell['role']!r} "
                f"(known: {', '.join(sorted(ROLE_NAMES))})"
            )
        for key, model_col in (("code", Staff.code), ("name", Staff.name), ("phone", Staff.phone)):
            try:
                text(
                    cell.get(key) or None,
                    header[col[key]] if key in col else key,
                    model_col,
                    required=key != "phone",
                )
            except ValidationError as exc:
                report.problems.append(f"{where}: {exc.message}")
        targets: list[tuple[str, int]] = []
        for key, ids, kind in (("grids", grid_ids, "grid"), ("segments", segment_ids, "segment")):
            for code in _codes(cell.get(key, "")):
                if code not in ids:
                    report.problems.append(f"{where}: {header[col[key]]}: unknown {kind} {code!r}")
                else:
                    targets.append((kind, ids[code]))
        if role is not None and targets:
            for kind, _id in targets:
                allowed = {
                    "grid": ("grid_head", "grid_member"),
                    "segment": ("alley_chief", "deputy_chief"),
                }[kind]
                if role not in allowed:
                    report.problems.append(f"{where}: a {cell['role']} ({role}) holds no {kind}")
                    break
        start = _day(cell.get("valid_from", ""), "from", report.problems, where)
        end = _day(cell.get("valid_to", ""), "to", report.problems, where)
        if start and end and end < start:
            report.problems.append(f"{where}: to {end} is before from {start}")
        if len(report.problems) == before:
            planned.append(
                {**cell, "role": role, "targets": targets, "start": start, "end": end, "row": n}
            )
    if report.problems:
        raise ValidationError(
            f"{path}: {len(report.problems)} problem(s); nothing was written:\n  "
            + "\n  ".join(report.problems[:50]),
            problems=report.problems,
        )
    if check_target is not None:
        for kind, target_id in sorted({t for p in planned for t in p["targets"]}):
            check_target(kind, target_id)
    people = {
        s.code: s
        for s in session.scalars(
            sa.select(Staff).where(Staff.code.in_([p["code"] for p in planned]))
        )
    }
    for p in planned:
        person = people.get(p["code"])
        if person is None:
            person = Staff(
                code=p["code"], name=p["name"], role=p["role"], phone=p.get("phone") or None
            )
            session.add(person)
            session.flush()
            people[p["code"]] = person
            report.added += 1
        elif (person.name, person.role, person.phone) != (
            p["name"],
            p["role"],
            p.get("phone") or person.phone,
        ):
            person.name, person.role = p["name"], p["role"]
            person.phone = p.get("phone") or person.phone
            report.updated += 1
        for kind, target_id in sorted(p["targets"], key=lambda t: (t[0], t[1])):
            a = assign(
                session,
                person.id,
                p["role"],
                valid_from=p["start"] or today,
                **{f"{kind}_id": target_id},
            )
            report.posts += 1
            if p["end"] is not None:
                end_assignment(session, a.id, p["end"])
                report.ended += 1
    session.flush()
    return report


def add_staff(
    session: Session, code: str, name: str, role: str, *, phone: str | None = None
) -> Staff:
    """A new person on the roster (posts are given with the assignment commands)."""
    if role not in ROLE_NAMES:
        raise ValidationError(f"unknown role {role!r}; one of {', '.join(ROLES)}", field="role")
    code_ = text(code, "code", Staff.code, required=True)
    if session.scalar(sa.select(Staff.id).where(Staff.code == code_)) is not None:
        raise Conflict(f"staff {code_!r} is already on the roster", field="code")
    person = Staff(
        code=code_,
        name=text(name, "name", Staff.name, required=True),
        role=ROLE_NAMES[role],
        phone=text(phone, "phone", Staff.phone),
    )
    session.add(person)
    session.flush()
    return person


def list_staff(session: Session, day: dt.date | None = None) -> list[dict[str, Any]]:
    """Everyone on the roster with the posts they hold on ``day`` (default today)."""
    posts = (
        sa.select(
            Assignment.staff_id,
            sa.func.array_agg(
                sa.func.concat(Assignment.role, ":", sa.func.coalesce(Grid.code, AlleySegment.code))
            ).label("posts"),
        )
        .outerjoin(Grid, Grid.id == Assignment.grid_id)
        .outerjoin(AlleySegment, AlleySegment.id == Assignment.segment_id)
        .where(valid_on(day))
        .group_by(Assignment.staff_id)
        .subquery()
    )
    rows = session.execute(
        sa.select(Staff.id, Staff.code, Staff.name, Staff.role, Staff.phone, posts.c.posts)
        .outerjoin(posts, posts.c.staff_id == Staff.id)
        .order_by(Staff.code, Staff.id)
    ).all()
    return [
        {
            "id": r.id,
            "code": r.code,
            "name": r.name,
            "role": r.role,
            "phone": r.phone,
            "posts": sorted(r.posts or []),
        }
        for r in rows
    ]


def end_staff(session: Session, code: str, last_day: dt.date) -> int:
    """End every post of the person with ``code`` on ``last_day`` (inclusive); the
    number of posts ended. The person and their past posts stay."""
    person = session.scalar(sa.select(Staff).where(Staff.code == code))
    if person is None:
        raise NotFound(f"staff {code!r} is not on the roster", field="code")
    open_posts = session.execute(
        sa.select(Assignment.id, Assignment.valid_from).where(
            Assignment.staff_id == person.id,
            sa.or_(Assignment.valid_to.is_(None), Assignment.valid_to > last_day),
        )
    ).all()
    for aid, began in open_posts:  # one not begun by then is withdrawn
        end_assignment(session, aid, max(last_day, began - dt.timedelta(days=1)))
    return len(open_posts)
