"""Blueprint ``roster``: the staff roster over JSON (a thin view over
:mod:`mapsvc.services.roster`).

* ``GET /api/staff?date=`` -- everyone with the posts held that day; phone numbers only
  for accounts allowed to see contacts;
* ``POST /api/staff`` -- ``{"code", "name", "role", "phone"}``: a person on the roster;
* ``POST /api/staff/import`` -- a roster file (multipart ``file``, CSV or XLSX; optional
  ``map`` as for the CLI, ``dry_run=1``): people and posts, one transaction, row-level
  errors; posts only on grids and segments the account may edit;
* ``POST /api/staff/<code>/end`` -- ``{"last_day": "YYYY-MM-DD"}`` (default yesterday):
  every post of that person ends; the history stays.
"""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from mapsvc.core.errors import ValidationError
from mapsvc.core.values import parse_date
from mapsvc.services import roster
from mapsvc.services.permissions import check_grid_edit, check_segment_edit
from mapsvc.web.auth import current_principal
from mapsvc.web.context import get_session, get_settings

bp = Blueprint("roster", __name__, url_prefix="/api/staff")


@bp.get("")
def list_api() -> ResponseReturnValue:
    day = parse_date(request.args.get("date")) or get_settings().today()
    people = roster.list_staff(get_session(), day)
    if not current_principal().can("contacts"):
        for p in people:
            p["phone"] = None
    return jsonify({"date": day.isoformat(), "staff": people})


@bp.post("")
def add_api() -> ResponseReturnValue:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValidationError("send a JSON object with code, name, role (and phone)", field="body")
    session = get_session()
    person = roster.add_staff(
        session, body.get("code"), body.get("name"), body.get("role"), phone=body.get("phone")
    )
    session.commit()
    return jsonify({"id": person.id, "code": person.code, "role": person.role}), 201


def _mapping(spec: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in (spec or "").split(","):
        if part.strip():
            key, sep, value = part.partition("=")
            if not sep:
                raise ValidationError(f"map: {part!r} is not key=column", field="map")
            out[key.strip()] = value.strip()
    return out


@bp.post("/import")
def import_api() -> ResponseReturnValue:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationError("send the roster as the multipart field 'file'", field="file")
    session = get_session()
    principal = current_principal()

    def check(kind: str, target_id: int) -> None:
        (check_grid_edit if kind == "grid" else check_segment_edit)(session, principal, target_id)

    report = roster.import_roster(
        session,
        upload.filename,
        data=upload.read(),
        mapping=_mapping(request.form.get("map")),
        today=get_settings().today(),
        check_target=check,
    )
    dry_run = request.args.get("dry_run") in ("1", "true") or request.form.get("dry_run") in (
        "1",
        "true",
    )
    if dry_run:
        session.rollback()
    else:
        session.commit()
    return jsonify({**report.as_dict(), "dry_run": dry_run})


@bp.post("/<code>/end")
def end_api(code: str) -> ResponseReturnValue:
    body = request.get_json(silent=True) or {}
    last = parse_date(body.get("last_day")) if isinstance(body, dict) else None
    last = last or get_settings().today() - dt.timedelta(days=1)
    session = get_session()
    n = roster.end_staff(session, code, last)
    session.commit()
    return jsonify({"code": code, "ended": n, "last_day": last.isoformat()})
