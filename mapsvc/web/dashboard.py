"""Leadership dashboard, coverage / density / quota map pages and their JSON (thin views).

Pages: ``/dashboard`` (endpoint ``dashboard_page``), ``/coverage``, ``/density``, ``/quota``.
JSON: ``/api/dashboard[/district|/subdistricts|/communities|/charts|/patrol]``, ``/api/coverage``
(+ ``/grids``, ``/segments`` GeoJSON), ``/api/density``, ``/api/quota`` (+ ``.csv``,
``.xlsx``). Every view takes ``?date=YYYY-MM-DD`` (default today).

Views only gather data and render: the dashboard is ``templates/dashboard.html``, the map
pages' side panels are ``templates/staffing/{coverage,density,quota}.html``.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, jsonify, render_template, request
from flask_babel import gettext as _

from layers import get_layer
from layers.base import add_legend, collection_bounds
from layers.offline import vendor_url
from mapsvc.core.errors import ValidationError
from mapsvc.core.values import parse_bbox
from mapsvc.services import coverage as coverage_svc
from mapsvc.services import dashboard as dashboard_svc
from mapsvc.services import quota as quota_svc
from mapsvc.web.args import date_arg, int_arg
from mapsvc.web.context import get_session, get_settings
from mapsvc.web.i18n import current_locale
from mapsvc.web.render import (
    ATTRIBUTION,
    add_attribution,
    add_html,
    attachment,
    base_map,
    folium_page,
    nav_html,
)

if TYPE_CHECKING:
    import folium

bp = Blueprint("dashboard", __name__)

#: decimals of coordinates embedded in map pages (5 ≈ 1 m: plenty on screen, half the bytes)
PAGE_PRECISION = 5
#: display generalisation of polygons on map pages, in metres (see services.coverage)
PAGE_SIMPLIFY_M = 1.0


# --------------------------------------------------------------------------- request parsing


def _day() -> dt.date:
    return date_arg("date")


def _members_required() -> int:
    return int(get_settings().grid_members_required)


def _coef() -> dict[str, float]:
    return quota_svc.coefficients(
        get_settings(), {k: request.args.get(k) for k in quota_svc.COEFFICIENT_NAMES}
    )


def _density_args() -> dict[str, Any]:
    return {
        "level": request.args.get("level", "community"),
        "group": request.args.get("group", "all"),
        "scheme": request.args.get("scheme", "natural_breaks"),
        "k": int_arg("k", 5),
        "day": _day(),
    }


def _quota_group() -> str:
    return request.args.get("group", str(get_settings().quota_group or quota_svc.DEFAULT_GROUP))


def _overview(include_patrol: bool = True) -> dict[str, Any]:
    return dashboard_svc.overview(
        get_session(),
        _day(),
        members_required=_members_required(),
        quota_coef=_coef(),
        quota_group=_quota_group(),
        include_patrol=include_patrol,
        settings=get_settings(),
    )


# --------------------------------------------------------------------------- JSON


@bp.get("/api/dashboard")
def api_dashboard() -> Response:
    return jsonify(_overview())


@bp.get("/api/dashboard/patrol")
def api_dashboard_patrol() -> Response:
    day = _day()
    return jsonify(
        {
            "date": day.isoformat(),
            **dashboard_svc.patrol_figures(get_session(), day, get_settings()),
        }
    )


@bp.get("/api/dashboard/<part>")
def api_dashboard_part(part: str) -> Response:
    data = _overview()
    if part not in ("district", "subdistricts", "communities", "charts", "sources"):
        raise ValidationError(
            f"unknown dashboard part {part!r}; use district, subdistricts, communities, "
            "charts or sources",
            field="part",
        )
    return jsonify({"date": data["date"], part: data[part]})


@bp.get("/api/coverage")
def api_coverage() -> Response:
    return jsonify(
        coverage_svc.coverage_report(get_session(), _day(), members_required=_members_required())
    )


@bp.get("/api/coverage/<kind>")
def api_coverage_features(kind: str) -> Response:
    if kind not in ("grids", "segments"):
        raise ValidationError(f"use /api/coverage/grids or /segments; got {kind!r}", field="kind")
    data = get_layer("coverage").query(
        get_session(),
        parse_bbox(request.args.get("bbox")),
        day=_day(),
        members_required=_members_required(),
    )
    return jsonify({**data[kind], "date": data["date"]})


@bp.get("/api/density")
def api_density() -> Response:
    return jsonify(
        get_layer("density").query(
            get_session(), parse_bbox(request.args.get("bbox")), **_density_args()
        )
    )


def _quota_table() -> dict[str, Any]:
    return quota_svc.quota_table(get_session(), _day(), _coef(), _quota_group())


@bp.get("/api/quota")
def api_quota() -> Response:
    return jsonify(_quota_table())


@bp.get("/api/quota.csv")
def api_quota_csv() -> Response:
    table = _quota_table()
    body = quota_svc.to_csv(table, current_locale()).encode("utf-8-sig")
    return attachment(body, f"quota-{table['date']}.csv", "text/csv")


@bp.get("/api/quota.xlsx")
def api_quota_xlsx() -> Response:
    table = _quota_table()
    return attachment(
        quota_svc.to_xlsx(table, current_locale()),
        f"quota-{table['date']}.xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )


# --------------------------------------------------------------------------- map pages


def _map(*collections: dict) -> folium.Map:
    """A map fitted to ``collections`` on the configured base map, when its tiles are in
    WGS84 like these layers (Amap's GCJ-02 tiles would put them off: the local one then)."""
    from layers.basemap import basemap_for, local_only

    basemap = basemap_for(get_settings(), current_locale())
    if basemap.crs != "wgs84":
        basemap = local_only(current_locale())
    return base_map(collection_bounds(*collections), basemap, zoom_start=14)


def _finish(
    m: folium.Map,
    layer_name: str,
    data: dict,
    legend_title: str,
    title: str,
    panel: str,
    **context: Any,
) -> str:
    """Draw the layer, its legend and the side panel (template ``panel``) and render the page.

    The panel is a Jinja template so data text is escaped by autoescape, and it is added as
    rendered HTML (:func:`mapsvc.web.render.add_html`), never compiled as a template again.
    """
    import folium

    layer = get_layer(layer_name)
    loc = current_locale()
    layer.draw(data, loc).add_to(m)
    folium.LayerControl(collapsed=True).add_to(m)
    add_legend(m, legend_title, layer.legend(data, loc))
    add_html(m, render_template(panel, **context))
    add_attribution(m, f"{_('Data')}: {ATTRIBUTION}")
    return folium_page(m, active="dashboard.dashboard_page", title=title)


@bp.get("/coverage")
def coverage_page() -> str:
    day = _day()
    session = get_session()
    data = get_layer("coverage").query(
        session,
        day=day,
        members_required=_members_required(),
        precision=PAGE_PRECISION,
        simplify_m=PAGE_SIMPLIFY_M,
    )
    rep = coverage_svc.coverage_report(session, day, members_required=_members_required())
    return _finish(
        _map(data["grids"], data["segments"]),
        "coverage",
        data,
        _("Staffing coverage"),
        f"{_('Staffing coverage')} · {day.isoformat()}",
        "staffing/coverage.html",
        day=day,
        s=rep["summary"],
        un=rep["uncovered"],
        subdistricts=rep["subdistricts"],
    )


def _options(labels: dict[str, Any], loc: str, skip: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(key, label in ``loc``) of one of the density layer's label tables, for selects."""
    from layers.density import t

    return [(k, t(v, loc)) for k, v in labels.items() if k not in skip]


@bp.get("/density")
def density_page() -> str:
    from layers.density import GROUP_LABELS, LEVEL_LABELS, SCHEME_LABELS, t
    from mapsvc.services.density import COMMUNITY_ONLY_GROUPS

    args = _density_args()
    loc = current_locale()
    shown_by_community = args["level"] == "grid" and args["group"] in COMMUNITY_ONLY_GROUPS
    if shown_by_community:
        # picked in the form: show the nearest meaningful map rather than an error page
        args["level"] = "community"
    layer = get_layer("density")
    data = layer.query(get_session(), precision=PAGE_PRECISION, simplify_m=PAGE_SIMPLIFY_M, **args)
    values = [f["properties"]["value"] for f in data["features"] if f["properties"]["value"]]
    top = sorted(data["features"], key=lambda f: f["properties"]["value"] or 0, reverse=True)[:5]
    return _finish(
        _map(data),
        "density",
        data,
        layer.legend_title(data, loc),
        f"{_('Staff density')} · {t(LEVEL_LABELS[args['level']], loc)}",
        "staffing/density.html",
        args=args,
        options={
            "level": _options(LEVEL_LABELS, loc),
            "group": _options(GROUP_LABELS, loc),
            "scheme": _options(SCHEME_LABELS, loc),
        },
        shown_by_community=shown_by_community,
        areas=len(data["features"]),
        max_value=max(values) if values else None,
        top=[(f["properties"]["name"], f["properties"]["value"]) for f in top],
    )


@bp.get("/quota")
def quota_page() -> str:
    from layers.density import GROUP_LABELS

    day = _day()
    coef = _coef()
    group = _quota_group()
    data = get_layer("quota").query(
        get_session(),
        day=day,
        coef=coef,
        group=group,
        precision=PAGE_PRECISION,
        simplify_m=PAGE_SIMPLIFY_M,
    )
    loc = current_locale()
    keep = {**{k: str(v) for k, v in coef.items()}, "group": group}
    return _finish(
        _map(data),
        "quota",
        data,
        _("Staffing quota"),
        _("Staffing quota"),
        "staffing/quota.html",
        day=day,
        group=group,
        groups=_options(GROUP_LABELS, loc, skip=("centres",)),
        coef={k: coef[k] for k in quota_svc.COEFFICIENT_NAMES},
        totals=data["totals"],
        query={**keep, "date": day.isoformat(), "lang": loc},
        rows=sorted((f["properties"] for f in data["features"]), key=lambda p: p["gap"]),
    )


# --------------------------------------------------------------------------- dashboard


@bp.get("/dashboard")
def dashboard_page() -> str:
    # the slow patrol figure is fetched by the page afterwards (/api/dashboard/patrol)
    data = _overview(include_patrol=False)
    loc = current_locale()

    from layers.density import GROUP_LABELS

    labels = {
        "staff_per_km2": _("Staff per km²"),
        "district_value": _("District average"),
        "incidents": _("Incidents"),
        "groups": dict(_options(GROUP_LABELS, loc)),
    }
    return render_template(
        "dashboard.html",
        data=data,
        d=data["district"],
        labels=labels,
        locale=loc,
        nav=nav_html("dashboard.dashboard_page"),
        chartjs=vendor_url("chartjs"),
    )
