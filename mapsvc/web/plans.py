"""Blueprint ``plans``: the planner's workbench, a thin view over :mod:`mapsvc.services.plans`.

Pages: ``/plans`` (the plans, a new draft) and ``/plans/<id>`` (the map of the plan's
grids coloured by workload, the problems drawn where they are, the comparison with the
current grids side by side, and the editing tools).

JSON, under ``/api/plans``: ``GET``/``POST`` the list; ``GET /<id>`` (summary, grids with
workload as GeoJSON, and the current grids'), ``/<id>/validate``, ``/<id>/compare``,
``/<id>/export?format=&crs=``; writes (``boundaries.edit``, in the planner's district):
``PUT /<id>/grids/<code>``, ``POST /<id>/grids/<code>/split|merge|reassign``,
``POST /<id>/import``, ``/<id>/publish``, ``/<id>/discard``. Every edit carries the
version it was made on; an older one is a 409 naming who changed the grid.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from flask import Blueprint, jsonify, render_template, request, send_file
from flask.typing import ResponseReturnValue

from mapsvc.core.errors import ServiceError, ValidationError
from mapsvc.core.labels import PLAN_STATUS_LABELS
from mapsvc.core.values import parse_date
from mapsvc.services import plans
from mapsvc.services.permissions import check_communities_edit, check_plan_edit
from mapsvc.web.args import json_object
from mapsvc.web.auth import current_principal
from mapsvc.web.context import get_session, get_settings
from mapsvc.web.i18n import current_locale
from mapsvc.web.render import nav_html

bp = Blueprint("plans", __name__)


def _target() -> tuple[int, int]:
    def number(name: str, default: int) -> int:
        raw = request.args.get(name)
        if raw in (None, ""):
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ValidationError(f"{name}: {raw!r} is not a whole number", field=name) from None
        if value <= 0:
            raise ValidationError(f"{name}: must be above 0", field=name)
        return value

    low, high = number("min", plans.DEFAULT_TARGET[0]), number("max", plans.DEFAULT_TARGET[1])
    if low > high:
        raise ValidationError(f"min {low} is above max {high}", field="min")
    return low, high


def _features(rows: list[dict[str, Any]]) -> dict[str, Any]:
    features = []
    for r in rows:
        props = {k: v for k, v in r.items() if k != "geometry"}
        features.append(
            {"type": "Feature", "geometry": json.loads(r["geometry"]), "properties": props}
        )
    return {"type": "FeatureCollection", "features": features}


def _author() -> str:
    return current_principal().username or "?"


def _editable(plan_id: int) -> None:
    check_plan_edit(get_session(), current_principal(), plan_id)


# ----------------------------------------------------------------------- pages


@bp.get("/plans")
def plans_page() -> ResponseReturnValue:
    session = get_session()
    from mapsvc.models import Community

    communities = session.query(Community.code, Community.name).order_by(Community.code).all()
    return render_template(
        "plans/list.html",
        plans=plans.list_plans(session),
        communities=communities,
        can_edit=current_principal().can("boundaries.edit"),
        status_labels=PLAN_STATUS_LABELS,
        locale=current_locale(),
        nav=nav_html("plans.plans_page"),
    )


@bp.get("/plans/<int:plan_id>")
def plan_page(plan_id: int) -> ResponseReturnValue:
    session = get_session()
    plan = plans.get_plan(session, plan_id)
    return render_template(
        "plans/plan.html",
        plan=plans.plan_summary(session, plan),
        target=_target(),
        can_edit=current_principal().can("boundaries.edit") and plan.status == "draft",
        status_labels=PLAN_STATUS_LABELS,
        locale=current_locale(),
        nav=nav_html("plans.plans_page"),
    )


# ----------------------------------------------------------------------- reads


@bp.get("/api/plans")
def list_api() -> ResponseReturnValue:
    return jsonify({"plans": plans.list_plans(get_session())})


@bp.get("/api/plans/<int:plan_id>")
def plan_api(plan_id: int) -> ResponseReturnValue:
    session = get_session()
    plan = plans.get_plan(session, plan_id)
    summary = plans.plan_summary(session, plan)
    target = _target()
    day = parse_date(request.args.get("date")) or get_settings().today()
    settings = get_settings()
    grids = plans.workload(
        session, plan_id, day=day, target=target, geometry=True, settings=settings
    )
    community_ids = [c.id for c in plans.plan_communities(session, plan_id)]
    current = plans.workload(
        session,
        community_ids=community_ids,
        day=day,
        target=target,
        geometry=True,
        settings=settings,
    )
    outline = plans.communities_geojson(session, community_ids)
    return jsonify(
        {
            "plan": summary,
            "target": list(target),
            "grids": _features(grids),
            "current": _features(current),
            "communities": outline,
        }
    )


@bp.get("/api/plans/<int:plan_id>/validate")
def validate_api(plan_id: int) -> ResponseReturnValue:
    return jsonify(plans.validate_plan(get_session(), plan_id, target=_target()))


@bp.get("/api/plans/<int:plan_id>/compare")
def compare_api(plan_id: int) -> ResponseReturnValue:
    return jsonify(plans.compare_plan(get_session(), plan_id, target=_target()))


@bp.get("/api/plans/<int:plan_id>/export")
def export_api(plan_id: int) -> ResponseReturnValue:
    fmt = request.args.get("format", "gpkg")
    datum = request.args.get("crs", "wgs84")
    tmp = Path(tempfile.mkdtemp(prefix="mapsvc-plan-"))
    try:
        path = plans.export_plan(get_session(), plan_id, fmt, tmp, datum=datum)
        data = path.read_bytes()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    from io import BytesIO

    from mapsvc.services.exports import FORMATS

    return send_file(
        BytesIO(data),
        mimetype=FORMATS[fmt].media_type,
        as_attachment=True,
        download_name=path.name,
    )


# ----------------------------------------------------------------------- writes


@bp.post("/api/plans")
def create_api() -> ResponseReturnValue:
    body = json_object()
    codes = _codes(body)
    session = get_session()
    check_communities_edit(session, current_principal(), codes)
    plan = plans.create_plan(
        session, name=body.get("name"), community_codes=codes, author=_author()
    )
    summary = plans.plan_summary(session, plan)
    session.commit()
    return jsonify(summary), 201


@bp.post("/api/plans/auto")
def auto_api() -> ResponseReturnValue:
    body = json_object()
    codes = _codes(body)
    session = get_session()
    check_communities_edit(session, current_principal(), codes)

    def whole(name: str, default: int | None) -> int | None:
        v = body.get(name, default)
        if v in (None, ""):
            return default
        try:
            n = int(v)
        except (TypeError, ValueError):
            raise ValidationError(f"{name}: {v!r} is not a whole number", field=name) from None
        if n <= 0:
            raise ValidationError(f"{name}: must be above 0", field=name)
        return n

    low, high = whole("min", plans.DEFAULT_TARGET[0]), whole("max", plans.DEFAULT_TARGET[1])
    if low > high:
        raise ValidationError(f"min {low} is above max {high}", field="min")
    lock = body.get("lock") or []
    if isinstance(lock, str):
        lock = [c.strip() for c in lock.split(",") if c.strip()]
    if not isinstance(lock, list) or not all(isinstance(c, str) for c in lock):
        raise ValidationError("lock: a list of grid codes", field="lock")
    plan, reports = plans.auto_plan(
        session,
        codes,
        author=_author(),
        name=body.get("name") or None,
        grids=whole("grids", None),
        target=(low, high),
        lock=lock,
        from_current=bool(body.get("from_current")),
        seed=whole("seed", None) or 0,
    )
    summary = plans.plan_summary(session, plan)
    session.commit()
    return jsonify({**summary, "partition": reports}), 201


def _codes(body: dict[str, Any]) -> list[str]:
    codes = body.get("communities")
    if isinstance(codes, str):
        codes = [c.strip() for c in codes.split(",") if c.strip()]
    if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
        raise ValidationError("communities: send a list of community codes", field="communities")
    return codes


def _versions(body: dict[str, Any]) -> dict[str, int]:
    versions = body.get("versions")
    if not isinstance(versions, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in versions.values()
    ):
        raise ValidationError(
            "versions: send {grid code: the version you edited} for each grid", field="versions"
        )
    return versions


def _version(body: dict[str, Any]) -> int | None:
    v = body.get("version")
    if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
        raise ValidationError("version: a whole number", field="version")
    return v


@bp.put("/api/plans/<int:plan_id>/grids/<code>")
def update_grid_api(plan_id: int, code: str) -> ResponseReturnValue:
    _editable(plan_id)
    body = json_object()
    geometry = body.get("geometry")
    session = get_session()
    grid = plans.update_grid(
        session,
        plan_id,
        code,
        version=_version(body),
        author=_author(),
        geometry=None
        if geometry is None
        else plans.parse_geometry(geometry, "geometry", ("Polygon", "MultiPolygon")),
        name=body.get("name"),
        households=body.get("households"),
        population=body.get("population"),
    )
    session.commit()
    return jsonify(grid)


@bp.post("/api/plans/<int:plan_id>/grids/<code>/split")
def split_api(plan_id: int, code: str) -> ResponseReturnValue:
    _editable(plan_id)
    body = json_object()
    session = get_session()
    grids = plans.split_grid(
        session,
        plan_id,
        code,
        plans.parse_geometry(body.get("line"), "line", ("LineString",)),
        version=_version(body),
        new_code=body.get("new_code"),
        author=_author(),
    )
    session.commit()
    return jsonify({"grids": grids})


@bp.post("/api/plans/<int:plan_id>/grids/<code>/merge")
def merge_api(plan_id: int, code: str) -> ResponseReturnValue:
    _editable(plan_id)
    body = json_object()
    other = body.get("other")
    if not isinstance(other, str) or not other:
        raise ValidationError("other: the code of the neighbouring grid", field="other")
    session = get_session()
    grid = plans.merge_grids(
        session, plan_id, code, other, versions=_versions(body), author=_author()
    )
    session.commit()
    return jsonify({"grid": grid, "removed": other})


@bp.post("/api/plans/<int:plan_id>/grids/<code>/reassign")
def reassign_api(plan_id: int, code: str) -> ResponseReturnValue:
    _editable(plan_id)
    body = json_object()
    receiver = body.get("receiver")
    if not isinstance(receiver, str) or not receiver:
        raise ValidationError(
            "receiver: the code of the grid that takes the block", field="receiver"
        )
    session = get_session()
    grids = plans.reassign_block(
        session,
        plan_id,
        code,
        receiver,
        plans.parse_geometry(body.get("block"), "block", ("Polygon", "MultiPolygon")),
        versions=_versions(body),
        author=_author(),
    )
    session.commit()
    return jsonify({"grids": grids})


@bp.post("/api/plans/<int:plan_id>/import")
def import_api(plan_id: int) -> ResponseReturnValue:
    _editable(plan_id)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationError("send the plan file as the multipart field 'file'", field="file")
    name = Path(upload.filename).name
    tmp = Path(tempfile.mkdtemp(prefix="mapsvc-plan-"))
    try:
        path = tmp / name
        upload.save(path)
        session = get_session()
        report = plans.import_plan_file(
            session, plan_id, path, author=_author(), crs=request.form.get("crs") or None
        )
    except ServiceError as exc:
        # the message names the file the planner sent, not the server's temporary copy
        exc.message = exc.message.replace(str(path), name)
        exc.args = (exc.message,)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    session.commit()
    return jsonify(report)


@bp.post("/api/plans/<int:plan_id>/publish")
def publish_api(plan_id: int) -> ResponseReturnValue:
    _editable(plan_id)
    body = json_object() if (request.data or request.form) else {}
    day = parse_date(body.get("day")) or get_settings().today()
    session = get_session()
    report = plans.publish(session, plan_id, day=day, author=_author(), target=_target())
    session.commit()
    return jsonify(report)


@bp.post("/api/plans/<int:plan_id>/discard")
def discard_api(plan_id: int) -> ResponseReturnValue:
    _editable(plan_id)
    session = get_session()
    plans.discard_plan(session, plan_id)
    session.commit()
    return jsonify({"plan": plan_id, "status": "discarded"})
