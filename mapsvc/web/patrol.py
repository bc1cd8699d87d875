"""Blueprint ``patrol``: patrol routes, GPX, tracks, compliance, visits, segment chiefs.

Thin adapters: parse the request, call :mod:`mapsvc.services.postman`,
:mod:`mapsvc.services.patrol`, :mod:`mapsvc.services.streets` or the patrol layers, respond.
"""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, Response, current_app, jsonify, request
from flask_babel import gettext as _

from layers import get_layer
from layers.base import LegendItem, add_legend, esc, parse_date
from mapsvc.db import get_session
from mapsvc.i18n import current_locale
from mapsvc.services import patrol, postman, streets
from mapsvc.services.errors import ValidationError
from mapsvc.web.args import date_arg, int_arg

bp = Blueprint("patrol", __name__)


def _lonlat(raw: str | None, name: str = "start") -> tuple[float, float] | None:
    if not raw:
        return None
    try:
        lon, lat = (float(x) for x in raw.split(","))
    except ValueError:
        raise ValidationError(f"{name} must be lon,lat; got {raw[:40]!r}", field=name) from None
    return lon, lat


def _speed() -> float:
    return float(current_app.config.get("WALKING_SPEED_KMH", 4.5))


def _thresholds() -> dict[str, float]:
    return {
        "cover_share": float(current_app.config.get("PATROL_COVER_SHARE", 0.8)),
        "buffer_m": float(current_app.config.get("PATROL_BUFFER_M", 20.0)),
    }


# ---------------------------------------------------------------------------- routes


@bp.get("/api/patrol/chiefs")
def chiefs_api():  # noqa: ANN201
    rows = postman.chiefs(get_session(), request.args.get("grid"), date_arg("day"))
    return jsonify([{"staff_id": s, "name": n, "segments": c} for s, n, c in rows])


@bp.get("/api/patrol/route")
def route_api():  # noqa: ANN201
    session = get_session()
    chief = int_arg("chief", required=True)
    res = postman.route_for_chief(
        session, chief, start=_lonlat(request.args.get("start")), day=date_arg("day")
    )
    return jsonify(res.to_geojson(_speed(), staff_id=chief))


@bp.get("/api/patrol/route.gpx")
def route_gpx():  # noqa: ANN201
    from mapsvc.models import Staff

    session = get_session()
    chief = int_arg("chief", required=True)
    res = postman.route_for_chief(
        session, chief, start=_lonlat(request.args.get("start")), day=date_arg("day")
    )
    staff = session.get(Staff, chief)
    name = f"{_('Patrol route')} {staff.name if staff else chief}"
    body = res.to_gpx(name, _speed())
    return Response(
        body,
        mimetype="application/gpx+xml",
        headers={"Content-Disposition": f'attachment; filename="patrol-{chief}.gpx"'},
    )


@bp.get("/api/patrol/routes")
def routes_api():  # noqa: ANN201
    grid = request.args.get("grid")
    if not grid:
        raise ValidationError("parameter grid is required", field="grid")
    data = get_layer("patrol_routes").query(
        get_session(), grid=grid, day=date_arg("day"), speed_kmh=_speed()
    )
    for r in data["routes"]:
        r.pop("coordinates", None)
    return jsonify(data)


# ---------------------------------------------------------------------------- tracks


@bp.post("/api/patrol/tracks")
def upload_track_api():  # noqa: ANN201
    """Upload a track: multipart ``file`` (GPX/JSON) or a JSON body, plus ``staff``."""
    session = get_session()
    fmt = request.values.get("format")
    if "file" in request.files:
        f = request.files["file"]
        payload: object = f.read()
        if fmt is None and f.filename and f.filename.lower().endswith((".json", ".geojson")):
            fmt = "json"
        staff = int_arg("staff", required=True, value=request.form.get("staff"))
    elif request.is_json:
        body = request.get_json(silent=True)
        if body is None:
            raise ValidationError("request body is not valid JSON", field="body")
        payload = body
        staff = int_arg(
            "staff", required=True, value=body.get("staff") if isinstance(body, dict) else None
        )
        fmt = fmt or "json"
    else:
        payload = request.get_data()
        staff = int_arg("staff", required=True)
    crs = request.values.get("crs") or (payload.get("crs") if isinstance(payload, dict) else None)
    day = parse_date(request.values.get("day"), "day")
    report = patrol.upload_track(session, staff, payload, fmt=fmt, crs=crs, day=day)
    session.commit()
    return jsonify(report), 201


@bp.get("/api/patrol/tracks")
def tracks_api():  # noqa: ANN201
    return jsonify(patrol.tracks_geojson(get_session(), date_arg("day"), int_arg("staff")))


# ---------------------------------------------------------------------------- compliance


@bp.get("/api/patrol/compliance")
def compliance_api():  # noqa: ANN201
    return jsonify(patrol.district_compliance(get_session(), date_arg("day"), **_thresholds()))


@bp.get("/api/patrol/week")
def week_api():  # noqa: ANN201
    return jsonify(patrol.week_summary(get_session(), date_arg("day"), **_thresholds()))


@bp.get("/api/patrol/grids")
def grids_api():  # noqa: ANN201
    week = request.args.get("week") in ("1", "true", "yes")
    return jsonify(patrol.grid_compliance(get_session(), date_arg("day"), week=week))


@bp.post("/api/patrol/visits")
def visit_api():  # noqa: ANN201
    body = request.get_json(silent=True) or request.form.to_dict()
    if not isinstance(body, dict):
        raise ValidationError("a visit is a JSON object", field="body")
    session = get_session()
    day = parse_date(body.get("day"), "day", dt.date.today())
    lonlat = None
    if body.get("lon") is not None and body.get("lat") is not None:
        lonlat = (float(body["lon"]), float(body["lat"]))
    out = patrol.log_visit(
        session,
        int_arg("staff", required=True, value=body.get("staff")),
        day,
        segment_id=int_arg("segment_id", value=body.get("segment_id")),
        grid_id=int_arg("grid_id", value=body.get("grid_id")),
        place=body.get("place"),
        note=body.get("note"),
        lonlat=lonlat,
        crs=body.get("crs"),
    )
    session.commit()
    return jsonify(out), 201


# ---------------------------------------------------------------------------- segments


@bp.route("/api/segments/<int:segment_id>/chief", methods=["PUT", "POST"])
def segment_chief_api(segment_id: int):  # noqa: ANN201
    body = request.get_json(silent=True) or request.form.to_dict()
    if "staff" not in body:
        raise ValidationError("field staff is required", field="staff")
    day = parse_date(body.get("valid_from"), "valid_from")
    session = get_session()
    out = streets.assign_segment(
        session, segment_id, body["staff"], body.get("role") or "alley_chief", day
    )
    session.commit()
    return jsonify(out), 200


@bp.get("/api/segments/<int:segment_id>/grids")
def segment_grids_api(segment_id: int):  # noqa: ANN201
    grids = streets.segment_grids(get_session(), [segment_id])
    return jsonify({"segment_id": segment_id, "grids": grids.get(segment_id, [])})


@bp.post("/api/segments/assign")
def segments_assign_csv():  # noqa: ANN201
    if "file" in request.files:
        text = request.files["file"].read().decode("utf-8-sig")
    else:
        text = request.get_data(as_text=True)
    session = get_session()
    out = streets.assign_csv(session, text)
    session.commit()
    return jsonify(out), 200


# ---------------------------------------------------------------------------- page


@bp.get("/patrol")
def patrol_page():  # noqa: ANN201
    """Map of a chief's route (``?chief=``) or a grid's chiefs (``?grid=``) and patrol state."""
    import folium

    from mapsvc.web.render import add_attribution, base_map, folium_page

    session = get_session()
    locale = current_locale()
    day = date_arg("day")
    chief = int_arg("chief")
    grid = request.args.get("grid") or None
    routes_layer = get_layer("patrol_routes")
    state_layer = get_layer("patrolled")
    routes = routes_layer.query(
        session,
        chief=chief,
        grid=grid,
        day=day,
        start=_lonlat(request.args.get("start")),
        speed_kmh=_speed(),
    )
    state = state_layer.query(session, day=day)
    bounds = _bounds(routes, state)
    m = base_map(None)
    attribution = " | ".join(a for a in {routes.get("attribution"), state.get("attribution")} if a)
    if attribution:
        add_attribution(m, attribution)
    state_layer.draw(state, locale).add_to(m)
    routes_layer.draw(routes, locale).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    if bounds:
        m.fit_bounds(bounds)
    add_legend(
        m,
        _("Patrol"),
        routes_layer.legend(routes, locale) + state_layer.legend(state, locale)
        or [LegendItem("#999", _("No data"))],
    )
    chiefs = postman.chiefs(session, None, day)
    m.get_root().html.add_child(
        folium.Element(_form_html(chiefs, chief, grid, day) + _table_html(routes, state))
    )
    return folium_page(m, active="patrol.patrol_page", title=_("Patrol"))


def _bounds(routes: dict, state: dict) -> list | None:
    xs: list[float] = []
    ys: list[float] = []
    for r in routes["routes"]:
        for lon, lat in r["coordinates"]:
            xs.append(lon)
            ys.append(lat)
    if not xs:
        for f in state["segments"]["features"]:
            for lon, lat in f["geometry"]["coordinates"]:
                xs.append(lon)
                ys.append(lat)
    if not xs:
        return None
    return [[min(ys), min(xs)], [max(ys), max(xs)]]


def _form_html(chiefs: list, chief: int | None, grid: str | None, day: dt.date) -> str:
    """Pick a chief, a grid or a day (a plain GET form: works without any script)."""
    opts = [f'<option value="">{esc(_("Chief"))}…</option>']
    for staff_id, name, n in chiefs[:2000]:
        sel = " selected" if staff_id == chief else ""
        opts.append(f'<option value="{int(staff_id)}"{sel}>{esc(name)} ({int(n)})</option>')
    lang = request.args.get("lang")
    hidden = f'<input type="hidden" name="lang" value="{esc(lang)}">' if lang else ""
    return (
        '<form class="mapsvc-patrol-form" method="get" style="position:absolute;top:44px;'
        "left:54px;z-index:1000;background:rgba(255,255,255,.95);padding:4px 6px;"
        'border-radius:4px;font:12px sans-serif;box-shadow:0 1px 4px #0005">'
        f'<select name="chief">{"".join(opts)}</select> '
        f'<input name="grid" size="16" placeholder="{esc(_("Grid code"))}" '
        f'value="{esc(grid or "")}"> '
        f'<input type="date" name="day" value="{day.isoformat()}"> {hidden}'
        f'<button type="submit">{esc(_("Show"))}</button></form>'
    )


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.0f}%"


def _table_html(routes: dict, state: dict) -> str:
    """A compact panel: route figures and per-chief patrol shares today and this week."""
    rows = []
    notes = [
        f"<div style='color:#b00'>{esc(e['chief'])}: {esc(e['error'])}</div>"
        for e in routes.get("errors", [])
    ]
    for r in routes["routes"]:
        p = r["properties"]
        if p.get("unreachable_segments"):
            notes.append(
                f"<div style='color:#b00'>{esc(p.get('chief'))}: "
                f"{len(p['unreachable_segments'])} {esc(_('segments cannot be reached'))}</div>"
            )
        rows.append(
            f"<tr><td>{esc(p.get('chief'))}</td><td>{p['total_m']:.0f}</td>"
            f"<td>{p['required_m']:.0f}</td><td>{p['connector_m']:.0f}</td>"
            f"<td>{p['ratio']:.3f}</td><td>{p['walking_minutes']:.0f}</td>"
            f'<td><a href="/api/patrol/route.gpx?chief={int(p["staff_id"])}">GPX</a></td></tr>'
        )
    route_tbl = ""
    if rows:
        route_tbl = (
            f"<b>{esc(_('Patrol route'))}</b><table class='mapsvc-tbl'><tr>"
            f"<th>{esc(_('Chief'))}</th><th>{esc(_('Total (m)'))}</th>"
            f"<th>{esc(_('Required (m)'))}</th><th>{esc(_('Connector (m)'))}</th>"
            f"<th>{esc(_('Ratio to lower bound'))}</th><th>{esc(_('Walking (min)'))}</th>"
            f"<th></th></tr>{''.join(rows)}</table>"
        )
    route_tbl += "".join(notes)
    week = {c["staff_id"]: c for c in state["chiefs_week"]}
    crow = []
    for c in state["chiefs_today"][:200]:
        w = week.get(c["staff_id"], {})
        crow.append(
            f"<tr><td><a href='?chief={int(c['staff_id'])}'>{esc(c['name'])}</a></td>"
            f"<td>{c['patrolled']}/{c['segments']} ({_pct(c['share'])})</td>"
            f"<td>{w.get('patrolled', 0)}/{w.get('segments', 0)} ({_pct(w.get('share'))})</td>"
            f"<td>{w.get('visits', 0)}</td></tr>"
        )
    grows = "".join(
        f"<tr><td><a href='?grid={esc(g['code'])}'>{esc(g['code'])}</a></td>"
        f"<td>{g['today']}/{g['segments']} ({_pct(g['today_share'])})</td>"
        f"<td>{g['week']}/{g['segments']} ({_pct(g['week_share'])})</td></tr>"
        for g in state.get("grids", [])[:500]
    )
    today, wk = state["today"], state["week"]
    return (
        '<div class="mapsvc-patrol-panel" style="position:absolute;top:120px;right:10px;'
        "z-index:1000;max-height:55%;max-width:55%;overflow:auto;background:rgba(255,255,255,.95);"
        'padding:6px 8px;border-radius:4px;font:12px sans-serif;box-shadow:0 1px 4px #0005">'
        f"<details open><summary>{esc(_('Patrol'))}</summary>"
        f"{route_tbl}<b>{esc(_('Patrolled'))}</b> {esc(today['day'])}: "
        f"{today['segments_patrolled']}/{today['segments_assigned']} ({_pct(today['share'])}); "
        f"{esc(_('this week'))}: {wk['segments_patrolled']}/{wk['segments_assigned']} "
        f"({_pct(wk['share'])}), {esc(_('visits'))}: {wk['visits']}"
        f"<table class='mapsvc-tbl'><tr><th>{esc(_('Chief'))}</th><th>{esc(_('Today'))}</th>"
        f"<th>{esc(_('This week'))}</th><th>{esc(_('Visits'))}</th></tr>{''.join(crow)}</table>"
        f"<details><summary>{esc(_('Grids'))}</summary><table class='mapsvc-tbl'><tr>"
        f"<th>{esc(_('Grid code'))}</th><th>{esc(_('Today'))}</th>"
        f"<th>{esc(_('This week'))}</th></tr>{grows}</table></details>"
        "</details></div><style>.mapsvc-tbl{border-collapse:collapse}.mapsvc-tbl td,.mapsvc-tbl th"
        "{border:1px solid #ccc;padding:1px 4px;text-align:right}</style>"
    )
