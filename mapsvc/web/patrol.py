"""Blueprint ``patrol``: patrol routes, GPX, tracks, compliance, visits, segment chiefs.

Thin adapters: parse the request, call :mod:`mapsvc.services.patrol_routes`,
:mod:`mapsvc.services.patrol`, :mod:`mapsvc.services.streets` or the patrol layers, respond.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from layers import get_layer
from layers.base import LegendItem, add_legend
from layers.basemap import basemap_for, collection_to_crs
from layers.patrol_routes import map_bounds, routes_to_crs
from mapsvc.core.errors import ValidationError
from mapsvc.core.values import parse_date
from mapsvc.services import patrol, patrol_routes, streets
from mapsvc.services.fields import number, text
from mapsvc.services.permissions import (
    check_own_staff,
    check_own_track,
    check_segment_edit,
    check_segments_edit,
)
from mapsvc.web.args import date_arg, int_arg, json_object
from mapsvc.web.auth import current_principal, current_scope
from mapsvc.web.context import get_session, get_settings
from mapsvc.web.i18n import current_locale
from mapsvc.web.render import attachment

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
    return float(get_settings().walking_speed_kmh)


# ---------------------------------------------------------------------------- routes


@bp.get("/api/patrol/chiefs")
def chiefs_api() -> Response:
    rows = patrol_routes.chiefs(get_session(), request.args.get("grid"), date_arg("day"))
    return jsonify([{"staff_id": s, "name": n, "segments": c} for s, n, c in rows])


@bp.get("/api/patrol/route")
def route_api() -> Response:
    session = get_session()
    chief = int_arg("chief", required=True)
    res = patrol_routes.route_for_chief(
        session, chief, start=_lonlat(request.args.get("start")), day=date_arg("day")
    )
    return jsonify(res.to_geojson(_speed(), staff_id=chief))


@bp.get("/api/patrol/route.gpx")
def route_gpx() -> Response:
    from mapsvc.models import Staff

    session = get_session()
    chief = int_arg("chief", required=True)
    res = patrol_routes.route_for_chief(
        session, chief, start=_lonlat(request.args.get("start")), day=date_arg("day")
    )
    staff = session.get(Staff, chief)
    name = f"{_('Patrol route')} {staff.name if staff else chief}"
    body = res.to_gpx(name, _speed(), settings=get_settings())
    return attachment(body, f"patrol-{chief}.gpx", "application/gpx+xml")


@bp.get("/api/patrol/routes")
def routes_api() -> Response:
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
def upload_track_api() -> ResponseReturnValue:
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
    assert staff is not None
    check_own_staff(current_principal(), staff, "a patrol track")
    crs = request.values.get("crs")  # else the document's own (patrol.parse_json)
    day = parse_date(request.values.get("day"), "day")
    report = patrol.upload_track(
        session, staff, payload, fmt=fmt, crs=crs, day=day, settings=get_settings()
    )
    session.commit()
    return jsonify(report), 201


@bp.get("/api/patrol/tracks")
def tracks_api() -> Response:
    """A day's tracks (``staff``: one walker's); a field account reads only its own."""
    staff = check_own_track(current_principal(), current_scope(), int_arg("staff"))
    return jsonify(patrol.tracks_geojson(get_session(), date_arg("day"), staff))


# ---------------------------------------------------------------------------- compliance


@bp.get("/api/patrol/compliance")
def compliance_api() -> Response:
    return jsonify(
        patrol.district_compliance(get_session(), date_arg("day"), settings=get_settings())
    )


@bp.get("/api/patrol/week")
def week_api() -> Response:
    return jsonify(patrol.week_summary(get_session(), date_arg("day"), settings=get_settings()))


@bp.get("/api/patrol/grids")
def grids_api() -> Response:
    week = request.args.get("week") in ("1", "true", "yes")
    return jsonify(
        patrol.grid_compliance(get_session(), date_arg("day"), week=week, settings=get_settings())
    )


@bp.post("/api/patrol/visits")
def visit_api() -> ResponseReturnValue:
    body = json_object()
    session = get_session()
    day = parse_date(body.get("day"), "day", get_settings().today())
    lonlat = None
    if body.get("lon") is not None and body.get("lat") is not None:
        lonlat = (number(body["lon"], "lon"), number(body["lat"], "lat"))
    staff = int_arg("staff", required=True, value=body.get("staff"))
    assert staff is not None
    check_own_staff(current_principal(), staff, "a visit")
    out = patrol.log_visit(
        session,
        staff,
        day,
        segment_id=int_arg("segment_id", value=body.get("segment_id")),
        grid_id=int_arg("grid_id", value=body.get("grid_id")),
        place=body.get("place"),
        note=body.get("note"),
        lonlat=lonlat,
        crs=text(body.get("crs"), "crs"),
    )
    session.commit()
    return jsonify(out), 201


# ---------------------------------------------------------------------------- segments


@bp.route("/api/segments/<int:segment_id>/chief", methods=["PUT", "POST"])
def segment_chief_api(segment_id: int) -> ResponseReturnValue:
    body = json_object()
    if "staff" not in body:
        raise ValidationError("field staff is required", field="staff")
    day = parse_date(body.get("valid_from"), "valid_from")
    session = get_session()
    check_segment_edit(session, current_principal(), segment_id)
    out = streets.assign_segment(
        session, segment_id, body["staff"], body.get("role") or "alley_chief", day
    )
    session.commit()
    return jsonify(out), 200


@bp.get("/api/segments/<int:segment_id>/grids")
def segment_grids_api(segment_id: int) -> Response:
    grids = streets.segment_grids(get_session(), [segment_id])
    return jsonify({"segment_id": segment_id, "grids": grids.get(segment_id, [])})


@bp.post("/api/segments/assign")
def segments_assign_csv() -> ResponseReturnValue:
    if "file" in request.files:
        text: str | bytes = request.files["file"].read()
    else:
        text = request.get_data(as_text=True)
    session = get_session()
    principal = current_principal()
    out = streets.assign_csv(
        session, text, check_segments=lambda ids: check_segments_edit(session, principal, ids)
    )
    session.commit()
    return jsonify(out), 200


# ---------------------------------------------------------------------------- page


@bp.get("/patrol")
def patrol_page() -> str:
    """Map of a chief's route (``?chief=``) or a grid's chiefs (``?grid=``) and patrol state."""
    import folium

    from mapsvc.web.render import add_attribution, add_html, base_map, folium_page, tiled_overlay

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
    state = state_layer.query(session, day=day, settings=get_settings())
    basemap = basemap_for(get_settings(), locale)
    routes_to_crs(routes, basemap.crs)
    collection_to_crs(state["segments"], basemap.crs)
    bounds = map_bounds(routes, state)
    m = base_map(None, basemap)
    attribution = " | ".join(a for a in {routes.get("attribution"), state.get("attribution")} if a)
    if attribution:
        add_attribution(m, attribution)
    tiles = None
    if basemap.crs == "wgs84":
        tiles = tiled_overlay("segments", day=day.isoformat() if day else "")
    state_layer.draw(state, locale, tiles=tiles).add_to(m)
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
    add_html(
        m,
        render_template(
            "patrol/panel.html",
            chiefs=patrol_routes.chiefs(session, None, day),
            chief=chief,
            grid=grid,
            day=day,
            lang=request.args.get("lang"),
            routes=routes,
            state=state,
            week_by_chief={c["staff_id"]: c for c in state["chiefs_week"]},
        ),
    )
    return folium_page(m, active="patrol.patrol_page", title=_("Patrol"))


@bp.get("/me")
def my_page() -> str:
    """我的: the signed-in staff member's route, street order, open incidents and figures."""
    import folium
    from flask import url_for

    from layers.heatmap import code_label, labels
    from mapsvc.models import SEVERITIES
    from mapsvc.services import mywork
    from mapsvc.services.categories import category_names
    from mapsvc.services.incidents import now
    from mapsvc.web.render import add_attribution, add_html, base_map, folium_page

    session = get_session()
    settings = get_settings()
    locale = current_locale()
    day = date_arg("day")
    staff = current_principal().staff_id
    basemap = basemap_for(settings, locale)
    routes: dict = {"routes": [], "errors": []}
    order: list = []
    glance = None
    incidents: list = []
    if staff is not None:
        routes_layer = get_layer("patrol_routes")
        routes = routes_layer.query(session, chief=staff, day=day, speed_kmh=_speed())
        order = mywork.street_order(routes["routes"][0]) if routes["routes"] else []
        glance = mywork.glance(session, staff, day, settings)
        incidents = mywork.open_incidents(session, staff, now(), locale)
        routes_to_crs(routes, basemap.crs)
    bounds = map_bounds(routes, {"segments": {"features": []}})
    m = base_map(None, basemap)
    if routes.get("attribution"):
        add_attribution(m, routes["attribution"])
    if staff is not None:
        get_layer("patrol_routes").draw(routes, locale).add_to(m)
    pins = folium.FeatureGroup(name=_("My open incidents"))
    points = collection_to_crs(
        {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "properties": {},
                    "geometry": {"type": "Point", "coordinates": [i["lon"], i["lat"]]},
                }
                for i in incidents
            ],
        },
        basemap.crs,
    )
    for inc, pt in zip(incidents, points["features"], strict=True):
        inc["lon"], inc["lat"] = pt["geometry"]["coordinates"][:2]
        folium.CircleMarker(
            [inc["lat"], inc["lon"]],
            radius=7,
            color="#b00" if inc["overdue"] else "#e80",
            fill=True,
            fill_opacity=0.9,
            tooltip=f"#{int(inc['id'])}",
        ).add_to(pins)
    pins.add_to(m)
    if bounds:
        m.fit_bounds(bounds)
    elif incidents:
        m.fit_bounds([[i["lat"], i["lon"]] for i in incidents])
    add_html(
        m,
        render_template(
            "patrol/me.html",
            map_name=m.get_name(),
            staff=staff,
            order=order,
            next_street=mywork.next_street(order, set(glance["patrolled_ids"])) if glance else None,
            route=routes["routes"][0]["properties"] if routes["routes"] else None,
            errors=routes.get("errors", []),
            glance=glance,
            incidents=incidents,
            categories=[
                (code, en if locale.startswith("en") else zh)
                for code, (zh, en) in sorted(category_names(session).items())
            ],
            severities=[(s, code_label(s, labels(locale))) for s in SEVERITIES],
            config={
                "map": m.get_name(),
                "staff": staff,
                "crs": basemap.crs,
                "api": {
                    "incidents": url_for("incidents.create_api"),
                    "tracks": url_for("patrol.upload_track_api"),
                    "visits": url_for("patrol.visit_api"),
                },
                "text": {
                    "reported": _("Reported"),
                    "kept": _("Track kept on the phone; it is sent when the network returns"),
                    "sent": _("Track sent"),
                    "points": _("GPS points"),
                    "start": _("Start patrol"),
                    "stop": _("Stop patrol"),
                    "visited": _("Visit logged"),
                },
            },
        ),
    )
    return folium_page(m, active="patrol.my_page", title=_("My work"))
