"""Blueprint ``incidents``: the incidents JSON API, the heatmap and choropleth pages.

Thin adapters: parse the request, call :mod:`mapsvc.services.incidents` or the layers of
:mod:`layers.heatmap`, respond. Services raise :class:`~mapsvc.core.errors.ServiceError`
(400 / 404 / 409 with the field or the allowed transitions named); the app maps them to
JSON.

The pages' HTML is in ``templates/incidents/`` (the filter form of all three pages is
``_filters.html``); where a map opens comes from :mod:`mapsvc.services.areas`.
"""

from __future__ import annotations

import json
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from layers import get_layer
from layers.base import add_legend
from layers.basemap import Basemap, basemap_for, bbox_to_wgs84, collection_to_crs, parse_crs
from layers.heatmap import (
    BINS_LAYERS,
    HeatmapScript,
    code_label,
    filter_choices,
    fit_bounds,
    focus_marker,
    hexbins_to_crs,
    incident_focus,
    labels,
    parse_bins,
    points_to_crs,
    scale_title,
)
from mapsvc.core.errors import NotFound, ServiceError, ValidationError
from mapsvc.core.values import parse_bbox
from mapsvc.models import SEVERITIES
from mapsvc.services import incident_list
from mapsvc.services import incidents as svc
from mapsvc.services.accounts import handled_by
from mapsvc.services.areas import district_extent
from mapsvc.services.categories import category_names
from mapsvc.services.permissions import (
    check_district,
    check_incident_read,
    check_transition,
    incident_district,
)
from mapsvc.web.api import geojson_response
from mapsvc.web.args import int_arg, json_object
from mapsvc.web.auth import current_principal, current_scope
from mapsvc.web.context import get_session, get_settings
from mapsvc.web.i18n import current_locale
from mapsvc.web.render import (
    ATTRIBUTION,
    add_html,
    attachment,
    base_map,
    folium_page,
    leaflet_bounds,
    local_basemap,
    nav_html,
)

bp = Blueprint("incidents", __name__)

#: query parameters that are incident filters (``class`` is an alias of ``severity``)
FILTER_PARAMS = (*svc.FILTER_KEYS, "class")


def _filters() -> dict[str, Any]:
    f = {k: request.args[k] for k in FILTER_PARAMS if request.args.get(k) not in (None, "")}
    f.pop("bbox", None)
    f["tz"] = get_settings().timezone  # the clock dates without an offset are read on
    f["scope"] = current_scope()  # from the account, never from the request
    return f


def _page_filters(f: dict[str, Any]) -> dict[str, Any]:
    """The request's filters as the page's script sends them back (no server clock, no
    scope: the server sets that again on every request)."""
    return {k: v for k, v in f.items() if k not in ("tz", "scope")}


# --------------------------------------------------------------------------- JSON API


def _handler(data: dict[str, Any]) -> str:
    """Who an intake or a transition is recorded against: the logged-in account (and its
    staff member). A typed ``actor`` is refused rather than silently replaced, so a client
    written for the old API learns that the field is gone."""
    if data.get("actor") not in (None, ""):
        raise ValidationError(
            "actor is no longer accepted: the handler is the logged-in account",
            field="actor",
        )
    label = handled_by(get_session(), current_principal().user_id)
    if label is None:  # the guard lets no anonymous write through; this names it if it did
        raise ValidationError("a handler account is required", field="actor")
    return label


@bp.post("/api/incidents")
def create_api() -> ResponseReturnValue:
    """Create an incident (routed on arrival); 201 with the stored incident.

    The intake is recorded against the logged-in account.
    """
    session = get_session()
    data = json_object()
    inc = svc.create_incident(session, data, actor=_handler(data), settings=get_settings())
    out = svc.incident_dict(inc)
    session.commit()
    return jsonify(out), 201, {"Location": url_for("incidents.get_api", incident_id=inc.id)}


@bp.get("/api/incidents")
def list_api() -> Response:
    """Incidents with filters: category, class/severity, state, date_from, date_to, grid,
    community, subdistrict, chief, bbox, overdue, to_confirm; limit/offset."""
    return jsonify(
        svc.list_incidents(
            get_session(),
            _filters(),
            bbox=parse_bbox(request.args.get("bbox")),
            limit=int_arg("limit", 100, min_value=1),
            offset=int_arg("offset", 0, min_value=0),
        )
    )


@bp.get("/api/incidents/<incident_id>")
def get_api(incident_id: str) -> Response:
    session = get_session()
    inc = svc.get_incident(session, incident_id)
    check_incident_read(session, current_principal(), current_scope(), inc)
    return jsonify({**svc.incident_dict(inc), "events": svc.events(session, inc.id)})


def _transition(incident_id: str) -> Response:
    session = get_session()
    data = json_object()
    state = data.get("state") or data.get("to")
    if not state:
        raise ValidationError("state is required", field="state")
    actor = _handler(data)
    check_transition(
        session,
        current_principal(),
        svc.get_incident(session, incident_id),
        str(state),
        get_settings().today(),
    )
    inc = svc.transition(session, incident_id, str(state), actor=actor, note=data.get("note"))
    out = {**svc.incident_dict(inc), "events": svc.events(session, inc.id)}
    session.commit()
    return jsonify(out)


@bp.post("/api/incidents/<incident_id>/transitions")
def transition_api(incident_id: str) -> Response:
    """Change state: ``{"state": ..., "note": ...}`` as the logged-in account; 409 lists the
    allowed ones, 403 when the incident or the state is outside the account's scope."""
    return _transition(incident_id)


@bp.patch("/api/incidents/<incident_id>")
def patch_api(incident_id: str) -> Response:
    """Same as POST .../transitions (``{"state": ...}``)."""
    return _transition(incident_id)


@bp.post("/api/incidents/<incident_id>/rating")
def rating_api(incident_id: str) -> Response:
    """Satisfaction rating 1-5 of a closed incident."""
    session = get_session()
    data = json_object()
    if "rating" not in data:
        raise ValidationError("rating is required", field="rating")
    found = svc.get_incident(session, incident_id)
    check_district(current_principal(), [incident_district(session, found)], f"incident {found.id}")
    inc = svc.rate(session, incident_id, data["rating"])
    out = svc.incident_dict(inc)
    session.commit()
    return jsonify(out)


@bp.get("/api/incidents/stats")
def stats_api() -> Response:
    """District figures and per-unit figures (``by=grid|community|subdistrict|chief``)."""
    session = get_session()
    by = request.args.get("by", "grid")
    f = _filters()
    return jsonify(
        {
            "district": svc.district_figures(session, f),
            "by": by,
            "units": svc.figures(session, by, f),
        }
    )


@bp.get("/api/incidents/to-confirm")
def to_confirm_api() -> Response:
    items = svc.to_confirm(get_session(), int_arg("limit", 1000, min_value=1), current_scope())
    return jsonify({"total": len(items), "items": items})


@bp.get("/api/incidents/overdue")
def overdue_api() -> Response:
    items = svc.overdue(get_session(), int_arg("limit", 1000, min_value=1), current_scope())
    return jsonify({"total": len(items), "items": items})


@bp.get("/api/heatmap")
def heatmap_api() -> Response:
    """Binned counts ``[lon, lat, n]`` for ``bbox`` and ``zoom`` with incident filters.

    ``bins=hex``: hexagons instead (``cells``: ``[i, j, n]`` of the ``ST_HexagonGrid`` cells
    from ``origin``, with ``hex_size``; the page builds the outlines), with the same
    ``total``, ``max``, ``scale_max`` and ``classes``; gzipped when the client accepts it.

    ``crs=gcj02|bd09`` (for base maps in those datums): bbox given and points answered in it.
    """
    crs = parse_crs(request.args.get("crs"))
    bins = parse_bins(request.args.get("bins"))
    data = get_layer(BINS_LAYERS[bins]).query(
        get_session(),
        bbox_to_wgs84(parse_bbox(request.args.get("bbox")), crs),
        zoom=request.args.get("zoom"),
        **_filters(),
    )
    if bins == "hex":  # gzip: about four to one on cell indices
        resp = geojson_response(hexbins_to_crs(data, crs))
        resp.mimetype = "application/json"  # not GeoJSON: cell indices and counts
        return resp
    return current_app.response_class(
        json.dumps(points_to_crs(data, crs), separators=(",", ":")),
        mimetype="application/json",
    )


@bp.get("/api/incidents/choropleth")
def choropleth_api() -> Response:
    """Grids with incidents per 1,000 residents and their class (GeoJSON)."""
    crs = parse_crs(request.args.get("crs"))
    data = get_layer("incident_choropleth").query(
        get_session(), bbox_to_wgs84(parse_bbox(request.args.get("bbox")), crs), **_filters()
    )
    return jsonify(collection_to_crs(data, crs))


# --------------------------------------------------------------------------- pages


def _credits(basemap: Basemap) -> str:
    return " | ".join([ATTRIBUTION, *basemap.attribution])


def _filter_form(view: str) -> dict[str, Any]:
    """What ``templates/incidents/_filters.html`` shows on ``view`` (heatmap, choropleth,
    list): the choices, the values in the URL, and what a new filter keeps.

    Grids are grouped by community (heatmap.js shows the chosen community's group only);
    chiefs are the staff holding an alley-chief post today
    (:func:`layers.heatmap.filter_choices`); class and state codes are labelled in the
    page's language by the heatmap layer's :func:`~layers.heatmap.code_label`.
    """
    session = get_session()
    locale = current_locale()
    en = locale.startswith("en")
    t = labels(locale)
    f = _filters()
    choices = filter_choices(session)
    lang = {"lang": request.args["lang"]} if request.args.get("lang") else {}
    hidden = dict(lang)
    if view == "list" and request.args.get("limit"):
        hidden["limit"] = request.args["limit"]  # the page size survives a new filter
    return {
        "view": view,
        "current": {k: f.get(k) for k in FILTER_PARAMS},
        "categories": [
            (code, (en and name_en) or name_zh or code)
            for code, (name_zh, name_en) in sorted(category_names(session).items())
        ],
        "severities": [(s, code_label(s, t)) for s in SEVERITIES],
        "states": [(s, code_label(s, t)) for s in svc.TRANSITIONS],
        "communities": [(str(i), n) for i, n in choices["communities"]],
        "grids": choices["grids"],
        "chiefs": [(str(i), n) for i, n in choices["chiefs"]],
        "bins": parse_bins(request.args.get("bins")),
        "checked": {k: svc.truthy(f.get(k)) for k in ("overdue", "to_confirm")},
        "hidden": hidden,
        # the link to the other view keeps the filters and the language
        "query": {**_page_filters(f), **lang},
    }


@bp.get("/incidents/map")
def heatmap_page() -> str:
    """Heatmap of incidents (refreshed on pan/zoom by static/js/heatmap.js) + overdue ones."""
    import folium

    session = get_session()
    locale = current_locale()
    f = _filters()
    basemap = basemap_for(get_settings(), locale)
    # a chief's (grid's, community's) own map opens on his incidents, not the district
    place = any(f.get(k) for k in ("chief", "grid", "community", "subdistrict"))
    # ?incident=ID (the list's "show on the map") opens on that incident, marked
    focus_id = int_arg("incident", min_value=1)
    focus = incident_focus(session, focus_id) if focus_id is not None else None
    if focus_id is not None and focus is None:
        raise NotFound(f"incident {focus_id} does not exist", field="incident")
    if focus_id is not None:  # its place is shown only to who may read it
        check_incident_read(
            session, current_principal(), current_scope(), svc.get_incident(session, focus_id)
        )
    bounds = (
        (focus and focus["bounds"])
        or (place and fit_bounds(session, f))
        or leaflet_bounds(district_extent(session))
    )
    m = base_map(bounds, basemap)
    bins = parse_bins(request.args.get("bins"))
    heat_layer = get_layer(BINS_LAYERS[bins])
    overdue_layer = get_layer("overdue_incidents")
    bbox = (bounds[0][1], bounds[0][0], bounds[1][1], bounds[1][0]) if bounds else None
    heat = heat_layer.query(session, bbox, zoom=13, **f)
    heat = (hexbins_to_crs if bins == "hex" else points_to_crs)(heat, basemap.crs)
    overdue = collection_to_crs(overdue_layer.query(session, bbox, **f), basemap.crs)
    heat_fl = heat_layer.draw(heat, locale)
    heat_fl.add_to(m)
    overdue_layer.draw(overdue, locale).add_to(m)
    if focus:
        focus_marker(focus, locale, basemap.crs).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    scale_rows = heat_layer.legend(heat, locale)
    HeatmapScript(
        heat_fl,
        {
            "api": url_for("incidents.heatmap_api"),
            "filters": {**_page_filters(f), "crs": basemap.crs, "bins": bins},
            "bins": bins,
            "attribution": _credits(basemap),
            "total_label": _("incidents in view"),
            # heatmap.js rewrites these first legend rows after every refresh
            "legend_rows": len(scale_rows),
            "or_more": labels(locale)["or more"],
        },
    ).add_to(m)
    add_legend(m, scale_title(locale, bins), scale_rows + overdue_layer.legend(overdue, locale))
    add_html(m, render_template("incidents/_filters.html", form=_filter_form("heatmap")))
    return folium_page(m, active="incidents.heatmap_page", title=_("Incident heatmap"))


@bp.get("/incidents/choropleth")
def choropleth_page() -> str:
    """Incidents per 1,000 residents by grid (mapclassify classes)."""
    import folium

    session = get_session()
    locale = current_locale()
    f = _filters()
    basemap = basemap_for(get_settings(), locale)
    m = base_map(leaflet_bounds(district_extent(session)), basemap)
    layer = get_layer("incident_choropleth")
    data = collection_to_crs(layer.query(session, None, **f), basemap.crs)
    layer.draw(data, locale).add_to(m)
    overdue_layer = get_layer("overdue_incidents")
    overdue = collection_to_crs(overdue_layer.query(session, None, **f), basemap.crs)
    overdue_layer.draw(overdue, locale, show=False).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    HeatmapScript(None, {"attribution": _credits(basemap)}).add_to(m)
    add_legend(m, layer.title(locale), layer.legend(data, locale))
    add_html(m, render_template("incidents/_filters.html", form=_filter_form("choropleth")))
    return folium_page(m, active="incidents.heatmap_page", title=_("Incidents per 1,000 residents"))


# --------------------------------------------------------------------------- the list


def _list_args() -> tuple[dict[str, Any], int, int]:
    return (
        _filters(),
        int_arg("limit", incident_list.PAGE_SIZE, min_value=1),
        int_arg("offset", 0, min_value=0),
    )


@bp.get("/incidents/list")
def list_page() -> ResponseReturnValue:
    """Incidents as a table to work through (filters as the map's, in the query string).

    Rows come from :func:`mapsvc.services.incident_list.page`; ``static/js/incidents_list.js``
    moves an incident along the closed loop through ``POST /api/incidents/<id>/transitions``
    and updates its row. A bad filter (an unknown chief id in a bookmark) is shown on the
    page, with the API's status (404 / 400), next to the form to fix it.
    """
    locale = current_locale()
    error, status, data = None, 200, None
    try:
        f, limit, offset = _list_args()
        data = incident_list.page(
            get_session(), f, limit=limit, offset=offset, locale=locale, settings=get_settings()
        )
    except ServiceError as exc:
        error, status = exc.message, exc.status
    args = {k: v for k, v in request.args.items() if k != "offset" and v != ""}
    t = labels(locale)
    return (
        render_template(
            "incidents/list.html",
            data=data,
            error=error,
            args=args,
            locale=locale,
            form=_filter_form("list"),
            nav=nav_html("incidents.list_page"),
            states={s: code_label(s, t) for s in svc.TRANSITIONS},
        ),
        status,
    )


@bp.get("/incidents/list.csv")
def list_csv() -> Response:
    """Every incident matching the list's filters as CSV (UTF-8 with BOM), streamed."""
    f, _limit, _offset = _list_args()
    lines = incident_list.csv_lines(get_session(), f, current_locale(), settings=get_settings())
    stamp = svc.now().astimezone(get_settings().tz).strftime("%Y%m%d-%H%M")
    return attachment(stream_with_context(lines), f"incidents-{stamp}.csv", "text/csv")


@bp.get("/incidents/<int:incident_id>")
def item_page(incident_id: int) -> ResponseReturnValue:
    """One incident as an item: fields, routing, time left, history and allowed actions."""
    from mapsvc.services import mywork

    locale = current_locale()
    settings = get_settings()
    item = mywork.incident_item(
        get_session(), incident_id, current_principal(), settings.today(), svc.now(), locale
    )
    t = labels(locale)
    return render_template(
        "incidents/item.html",
        item=item,
        locale=locale,
        nav=nav_html("incidents.list_page"),
        states={s: code_label(s, t) for s in svc.TRANSITIONS},
        severity=code_label(item["severity"], t),
        error=request.args.get("error"),
        basemap=local_basemap(),
    )


@bp.post("/incidents/<int:incident_id>/transition")
def transition_form(incident_id: int) -> ResponseReturnValue:
    """The item page's action buttons (a cookie form with CSRF): move the incident and go
    back to its page, with the refusal named on the page when the move is not allowed."""
    from flask import redirect

    session = get_session()
    state = request.form.get("state") or ""
    try:
        if not state:
            raise ValidationError("state is required", field="state")
        check_transition(
            session,
            current_principal(),
            svc.get_incident(session, incident_id),
            state,
            get_settings().today(),
        )
        svc.transition(
            session, incident_id, state, actor=_handler({}), note=request.form.get("note") or None
        )
        session.commit()
    except NotFound:
        raise
    except ServiceError as exc:
        session.rollback()
        return redirect(url_for("incidents.item_page", incident_id=incident_id, error=exc.message))
    return redirect(url_for("incidents.item_page", incident_id=incident_id))
