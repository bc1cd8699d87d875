"""Blueprint ``incidents``: the incidents JSON API, the heatmap and choropleth pages.

Thin adapters: parse the request, call :mod:`mapsvc.services.incidents` or the layers of
:mod:`layers.heatmap`, respond. Services raise :class:`~mapsvc.services.errors.ServiceError`
(400 / 404 / 409 with the field or the allowed transitions named); the app maps them to
JSON.
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
from flask_babel import gettext as _

from layers import get_layer
from layers.base import add_legend, esc
from layers.basemap import basemap_for, bbox_to_wgs84, collection_to_crs, parse_crs
from layers.heatmap import (
    BINS_LAYERS,
    code_label,
    filter_choices,
    fit_bounds,
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
from mapsvc.services.categories import category_names
from mapsvc.web.api import geojson_response
from mapsvc.web.args import int_arg, json_object
from mapsvc.web.context import get_session, get_settings
from mapsvc.web.i18n import current_locale
from mapsvc.web.render import ATTRIBUTION, base_map, nav_html

bp = Blueprint("incidents", __name__)

#: query parameters that are incident filters (``class`` is an alias of ``severity``)
FILTER_PARAMS = (*svc.FILTER_KEYS, "class")


def _filters() -> dict[str, Any]:
    f = {k: request.args[k] for k in FILTER_PARAMS if request.args.get(k) not in (None, "")}
    f.pop("bbox", None)
    return f


def _config() -> dict[str, Any]:
    return dict(current_app.config)


# --------------------------------------------------------------------------- JSON API


@bp.post("/api/incidents")
def create_api():  # noqa: ANN201
    """Create an incident (routed on arrival); 201 with the stored incident."""
    session = get_session()
    data = json_object()
    inc = svc.create_incident(session, data, actor=data.get("actor"), config=_config())
    out = svc.incident_dict(inc)
    session.commit()
    return jsonify(out), 201, {"Location": url_for("incidents.get_api", incident_id=inc.id)}


@bp.get("/api/incidents")
def list_api():  # noqa: ANN201
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
def get_api(incident_id: str):  # noqa: ANN201
    session = get_session()
    inc = svc.get_incident(session, incident_id)
    return jsonify({**svc.incident_dict(inc), "events": svc.events(session, inc.id)})


def _transition(incident_id: str):  # noqa: ANN202
    session = get_session()
    data = json_object()
    state = data.get("state") or data.get("to")
    if not state:
        raise ValidationError("state is required", field="state")
    inc = svc.transition(
        session, incident_id, str(state), actor=data.get("actor") or "", note=data.get("note")
    )
    out = {**svc.incident_dict(inc), "events": svc.events(session, inc.id)}
    session.commit()
    return jsonify(out)


@bp.post("/api/incidents/<incident_id>/transitions")
def transition_api(incident_id: str):  # noqa: ANN201
    """Change state: ``{"state": ..., "actor": ..., "note": ...}``; 409 lists allowed ones."""
    return _transition(incident_id)


@bp.patch("/api/incidents/<incident_id>")
def patch_api(incident_id: str):  # noqa: ANN201
    """Same as POST .../transitions (``{"state": ...}``)."""
    return _transition(incident_id)


@bp.post("/api/incidents/<incident_id>/rating")
def rating_api(incident_id: str):  # noqa: ANN201
    """Satisfaction rating 1-5 of a closed incident."""
    session = get_session()
    data = json_object()
    if "rating" not in data:
        raise ValidationError("rating is required", field="rating")
    inc = svc.rate(session, incident_id, data["rating"])
    out = svc.incident_dict(inc)
    session.commit()
    return jsonify(out)


@bp.get("/api/incidents/stats")
def stats_api():  # noqa: ANN201
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
def to_confirm_api():  # noqa: ANN201
    items = svc.to_confirm(get_session(), int_arg("limit", 1000, min_value=1))
    return jsonify({"total": len(items), "items": items})


@bp.get("/api/incidents/overdue")
def overdue_api():  # noqa: ANN201
    items = svc.overdue(get_session(), int_arg("limit", 1000, min_value=1))
    return jsonify({"total": len(items), "items": items})


@bp.get("/api/heatmap")
def heatmap_api():  # noqa: ANN201
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
def choropleth_api():  # noqa: ANN201
    """Grids with incidents per 1,000 residents and their class (GeoJSON)."""
    crs = parse_crs(request.args.get("crs"))
    data = get_layer("incident_choropleth").query(
        get_session(), bbox_to_wgs84(parse_bbox(request.args.get("bbox")), crs), **_filters()
    )
    return jsonify(collection_to_crs(data, crs))


# --------------------------------------------------------------------------- pages


def _district_bounds(session) -> list[list[float]] | None:  # noqa: ANN001
    import sqlalchemy as sa

    row = session.execute(
        sa.text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
            "(SELECT ST_Extent(geom)::geometry e FROM district) s"
        )
    ).first()
    if row is None or row[0] is None:
        row = session.execute(
            sa.text(
                "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
                "(SELECT ST_Extent(geom)::geometry e FROM incident) s"
            )
        ).first()
    if row is None or row[0] is None:
        return None
    return [[row[1], row[0]], [row[3], row[2]]]


def _credits(basemap) -> str:  # noqa: ANN001
    return " | ".join([ATTRIBUTION, *basemap.attribution])


def _filter_panel(view: str) -> str:
    """The filter form (category, class, state, community, grid, chief, dates; on the list
    page also "overdue only" and "location to confirm only") and the link to the other
    view (the list links to the heatmap). Grids are grouped by community (heatmap.js
    shows the chosen community's group only); chiefs are the staff holding an alley-chief post today
    (:func:`layers.heatmap.filter_choices`).
    """
    import sqlalchemy as sa

    locale = current_locale()
    en = locale.startswith("en")
    cats = get_session().execute(
        sa.text("SELECT code, name_zh, name_en FROM incident_category ORDER BY code")
    )
    f = _filters()

    def options(values: list[tuple[str, str]], selected: str | None) -> str:
        out = [f'<option value="">{esc(_("All"))}</option>']
        for v, label in values:
            sel = " selected" if v == selected else ""
            out.append(f'<option value="{esc(v)}"{sel}>{esc(label)}</option>')
        return "".join(out)

    cat_opts = options([(c, (en and e) or z or c) for c, z, e in cats], f.get("category"))
    t = labels(locale)
    sev_opts = options(
        [(s, code_label(s, t)) for s in SEVERITIES], f.get("severity") or f.get("class")
    )
    state_opts = options(
        [("open", _("Open"))] + [(s, code_label(s, t)) for s in svc.TRANSITIONS],
        f.get("state"),
    )
    bins = parse_bins(request.args.get("bins"))
    bins_opts = "".join(
        f'<option value="{v}"{" selected" if v == bins else ""}>{esc(label)}</option>'
        for v, label in (("square", _("Heat (square cells)")), ("hex", _("Hexagons")))
    )
    choices = filter_choices(get_session())
    comm_opts = options([(str(i), n) for i, n in choices["communities"]], f.get("community"))
    chief_opts = options([(str(i), n) for i, n in choices["chiefs"]], f.get("chief"))
    grid_opts = [f'<option value="">{esc(_("All"))}</option>']
    for cid, cname, grids in choices["grids"]:
        grid_opts.append(f'<optgroup label="{esc(cname)}" data-community="{esc(cid or "")}">')
        for gid, code, name in grids:
            sel = " selected" if str(gid) == f.get("grid") else ""
            label = f"{code} {name}" if name and name != code else code
            grid_opts.append(f'<option value="{gid}"{sel}>{esc(label)}</option>')
        grid_opts.append("</optgroup>")
    other = (
        ("incidents.choropleth_page", _("Per 1,000 residents by grid"))
        if view == "heatmap"
        else ("incidents.heatmap_page", _("Incident heatmap"))
    )
    lang = {"lang": request.args["lang"]} if request.args.get("lang") else {}
    # the list page lays the form out with its stylesheet; the maps float it over the map
    style = (
        'class="incident-filters"'
        if view == "list"
        else 'style="position:absolute;top:44px;left:56px;'
        "z-index:1000;background:rgba(255,255,255,.95);padding:8px;border-radius:4px;"
        'font:12px sans-serif;box-shadow:0 1px 4px rgba(0,0,0,.3);display:grid;gap:4px"'
    )
    checks = (
        "".join(
            f'<label><input type="checkbox" name="{k}" value="1"'
            f"{' checked' if svc._truthy(f.get(k)) else ''}> {esc(label)}</label>"
            for k, label in (
                ("overdue", _("Overdue only")),
                ("to_confirm", _("Location to confirm only")),
            )
        )
        if view == "list"
        else ""
    )
    hidden = dict(lang)
    if view == "list" and request.args.get("limit"):
        hidden["limit"] = request.args["limit"]  # the page size survives a new filter
    return (
        f'<form id="incident-filters" method="get" {style}>'
        f'<label>{esc(_("Category"))} <select name="category">{cat_opts}</select></label>'
        f'<label>{esc(_("Class"))} <select name="severity">{sev_opts}</select></label>'
        f'<label>{esc(_("State"))} <select name="state">{state_opts}</select></label>'
        f'<label>{esc(_("Community"))} <select name="community">{comm_opts}</select></label>'
        f'<label>{esc(_("Grid"))} <select name="grid" style="max-width:16em">'
        f"{''.join(grid_opts)}</select></label>"
        f'<label>{esc(_("Chief"))} <select name="chief">{chief_opts}</select></label>'
        + (
            f'<label>{esc(_("Draw as"))} <select name="bins">{bins_opts}</select></label>'
            if view == "heatmap"
            else ""
        )
        + f'<label>{esc(_("From"))} <input type="date" name="date_from" '
        f'value="{esc(f.get("date_from", ""))}"></label>'
        f'<label>{esc(_("To"))} <input type="date" name="date_to" '
        f'value="{esc(f.get("date_to", ""))}"></label>'
        + checks
        + "".join(
            f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">' for k, v in hidden.items()
        )
        + f'<button type="submit">{esc(_("Apply"))}</button>'
        f'<a href="{esc(url_for(other[0], **f, **lang))}">{esc(other[1])}</a></form>'
    )


@bp.get("/incidents/map")
def heatmap_page():  # noqa: ANN201
    """Heatmap of incidents (refreshed on pan/zoom by static/js/heatmap.js) + overdue ones."""
    import folium

    from layers.heatmap import HeatmapScript
    from mapsvc.web.render import folium_page

    session = get_session()
    locale = current_locale()
    f = _filters()
    basemap = basemap_for(current_app.config, locale)
    # a chief's (grid's, community's) own map opens on his incidents, not the district
    place = any(f.get(k) for k in ("chief", "grid", "community", "subdistrict"))
    # ?incident=ID (the list's "show on the map") opens on that incident, marked
    focus_id = int_arg("incident", min_value=1)
    focus = incident_focus(session, focus_id) if focus_id is not None else None
    if focus_id is not None and focus is None:
        raise NotFound(f"incident {focus_id} does not exist", field="incident")
    bounds = (
        (focus and focus["bounds"])
        or (place and fit_bounds(session, f))
        or _district_bounds(session)
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
        _focus_marker(focus, basemap.crs, locale).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    scale_rows = heat_layer.legend(heat, locale)
    HeatmapScript(
        heat_fl,
        {
            "api": url_for("incidents.heatmap_api"),
            "filters": {**f, "crs": basemap.crs, "bins": bins},
            "bins": bins,
            "attribution": _credits(basemap),
            "total_label": _("incidents in view"),
            # heatmap.js rewrites these first legend rows after every refresh
            "legend_rows": len(scale_rows),
            "or_more": labels(locale)["or more"],
        },
    ).add_to(m)
    add_legend(m, scale_title(locale, bins), scale_rows + overdue_layer.legend(overdue, locale))
    m.get_root().html.add_child(folium.Element(_filter_panel("heatmap")))
    return folium_page(m, active="incidents.heatmap_page", title=_("Incident heatmap"))


def _focus_marker(focus: dict[str, Any], crs: str, locale: str):  # noqa: ANN202
    """A ring around the incident the map was opened on, with its id, category and state."""
    import folium

    point = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [focus["lon"], focus["lat"]]},
                "properties": {},
            }
        ],
    }
    lon, lat = collection_to_crs(point, crs)["features"][0]["geometry"]["coordinates"]
    zh, en = category_names(get_session()).get(focus["category"], (None, None))
    category = (en if locale.startswith("en") else zh) or focus["category"]
    text = f"#{focus['id']} · {category} · {code_label(focus['state'], labels(locale))}"
    return folium.CircleMarker(
        [lat, lon],
        radius=14,
        color="#1f3a5f",
        weight=3,
        fill=False,
        tooltip=folium.Tooltip(esc(text), permanent=True),
    )


@bp.get("/incidents/choropleth")
def choropleth_page():  # noqa: ANN201
    """Incidents per 1,000 residents by grid (mapclassify classes)."""
    import folium

    from layers.heatmap import HeatmapScript
    from mapsvc.web.render import folium_page

    session = get_session()
    locale = current_locale()
    f = _filters()
    basemap = basemap_for(current_app.config, locale)
    m = base_map(_district_bounds(session), basemap)
    layer = get_layer("incident_choropleth")
    data = collection_to_crs(layer.query(session, None, **f), basemap.crs)
    layer.draw(data, locale).add_to(m)
    overdue_layer = get_layer("overdue_incidents")
    overdue = collection_to_crs(overdue_layer.query(session, None, **f), basemap.crs)
    overdue_layer.draw(overdue, locale, show=False).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    HeatmapScript(None, {"attribution": _credits(basemap)}).add_to(m)
    add_legend(m, layer.title(locale), layer.legend(data, locale))
    m.get_root().html.add_child(folium.Element(_filter_panel("choropleth")))
    return folium_page(m, active="incidents.heatmap_page", title=_("Incidents per 1,000 residents"))


# --------------------------------------------------------------------------- the list


def _list_args() -> tuple[dict[str, Any], int, int]:
    return (
        _filters(),
        int_arg("limit", incident_list.PAGE_SIZE, min_value=1),
        int_arg("offset", 0, min_value=0),
    )


@bp.get("/incidents/list")
def list_page():  # noqa: ANN201
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
        data = incident_list.page(get_session(), f, limit=limit, offset=offset, locale=locale)
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
            filters=_filter_panel("list"),
            nav=nav_html("incidents.list_page"),
            states={s: code_label(s, t) for s in svc.TRANSITIONS},
        ),
        status,
    )


@bp.get("/incidents/list.csv")
def list_csv():  # noqa: ANN201
    """Every incident matching the list's filters as CSV (UTF-8 with BOM), streamed."""
    f, _limit, _offset = _list_args()
    lines = incident_list.csv_lines(get_session(), f, current_locale())
    stamp = svc.now().astimezone(get_settings().tz).strftime("%Y%m%d-%H%M")
    return Response(
        stream_with_context(lines),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="incidents-{stamp}.csv"'},
    )
