"""Leadership dashboard, coverage / density / quota map pages and their JSON (thin views).

Pages: ``/dashboard`` (endpoint ``dashboard_page``), ``/coverage``, ``/density``, ``/quota``.
JSON: ``/api/dashboard[/district|/subdistricts|/communities|/charts|/patrol]``, ``/api/coverage``
(+ ``/grids``, ``/segments`` GeoJSON), ``/api/density``, ``/api/quota`` (+ ``.csv``,
``.xlsx``). Every view takes ``?date=YYYY-MM-DD`` (default today).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template, request, url_for
from flask_babel import gettext as _

from layers import get_layer
from layers.base import add_legend, collection_bounds, esc, parse_bbox
from layers.offline import vendor_url
from mapsvc.db import get_session
from mapsvc.i18n import current_locale
from mapsvc.services import coverage as coverage_svc
from mapsvc.services import dashboard as dashboard_svc
from mapsvc.services import quota as quota_svc
from mapsvc.services.errors import ValidationError
from mapsvc.web.args import date_arg, int_arg
from mapsvc.web.render import ATTRIBUTION, add_attribution, base_map, folium_page, nav_html

bp = Blueprint("dashboard", __name__)

#: decimals of coordinates embedded in map pages (5 ≈ 1 m: plenty on screen, half the bytes)
PAGE_PRECISION = 5
#: display generalisation of polygons on map pages, in metres (see services.coverage)
PAGE_SIMPLIFY_M = 1.0


# --------------------------------------------------------------------------- request parsing


def _day() -> dt.date:
    return date_arg("date")


def _members_required() -> int:
    return int(current_app.config.get("GRID_MEMBERS_REQUIRED", 2))


def _coef() -> dict[str, float]:
    return quota_svc.coefficients(
        current_app.config, {k: request.args.get(k) for k in quota_svc.COEFFICIENT_NAMES}
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
    return request.args.get(
        "group", str(current_app.config.get("QUOTA_GROUP") or quota_svc.DEFAULT_GROUP)
    )


def _overview(include_patrol: bool = True) -> dict[str, Any]:
    return dashboard_svc.overview(
        get_session(),
        _day(),
        members_required=_members_required(),
        quota_coef=_coef(),
        quota_group=_quota_group(),
        include_patrol=include_patrol,
    )


# --------------------------------------------------------------------------- JSON


@bp.get("/api/dashboard")
def api_dashboard():  # noqa: ANN201
    return jsonify(_overview())


@bp.get("/api/dashboard/patrol")
def api_dashboard_patrol():  # noqa: ANN201
    day = _day()
    return jsonify({"date": day.isoformat(), **dashboard_svc.patrol_figures(get_session(), day)})


@bp.get("/api/dashboard/<part>")
def api_dashboard_part(part: str):  # noqa: ANN201
    data = _overview()
    if part not in ("district", "subdistricts", "communities", "charts", "sources"):
        raise ValidationError(
            f"unknown dashboard part {part!r}; use district, subdistricts, communities, "
            "charts or sources",
            field="part",
        )
    return jsonify({"date": data["date"], part: data[part]})


@bp.get("/api/coverage")
def api_coverage():  # noqa: ANN201
    return jsonify(
        coverage_svc.coverage_report(get_session(), _day(), members_required=_members_required())
    )


@bp.get("/api/coverage/<kind>")
def api_coverage_features(kind: str):  # noqa: ANN201
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
def api_density():  # noqa: ANN201
    return jsonify(
        get_layer("density").query(
            get_session(), parse_bbox(request.args.get("bbox")), **_density_args()
        )
    )


def _quota_table() -> dict[str, Any]:
    return quota_svc.quota_table(get_session(), _day(), _coef(), _quota_group())


@bp.get("/api/quota")
def api_quota():  # noqa: ANN201
    return jsonify(_quota_table())


@bp.get("/api/quota.csv")
def api_quota_csv():  # noqa: ANN201
    table = _quota_table()
    body = quota_svc.to_csv(table, current_locale()).encode("utf-8-sig")
    return Response(
        body,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="quota-{table["date"]}.csv"'},
    )


@bp.get("/api/quota.xlsx")
def api_quota_xlsx():  # noqa: ANN201
    table = _quota_table()
    return Response(
        quota_svc.to_xlsx(table, current_locale()),
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="quota-{table["date"]}.xlsx"'},
    )


# --------------------------------------------------------------------------- map pages


def _map(*collections: dict):  # noqa: ANN202 - folium.Map
    return base_map(collection_bounds(*collections), zoom_start=14)


def _panel(html: str) -> str:
    return (
        '<div class="staffing-panel" style="position:absolute;top:44px;right:10px;z-index:1000;'
        "width:300px;max-height:calc(100% - 90px);overflow:auto;background:rgba(255,255,255,.95);"
        "padding:10px 12px;border-radius:6px;font:13px/1.5 'Noto Sans CJK SC','Microsoft YaHei',"
        f'sans-serif;box-shadow:0 1px 6px rgba(0,0,0,.3)">{html}</div>'
    )


def _date_form(endpoint: str, day: dt.date, hidden: dict[str, str] | None = None) -> str:
    fields = "".join(
        f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">' for k, v in (hidden or {}).items()
    )
    return (
        f'<form method="get" action="{esc(url_for(endpoint))}" style="margin:0 0 8px">'
        f"{fields}<label>{esc(_('Date'))} "
        f'<input type="date" name="date" value="{day.isoformat()}"></label> '
        f'<button type="submit">{esc(_("Show"))}</button></form>'
    )


def _finish(m, layer_name: str, data: dict, legend_title: str, panel: str, title: str) -> str:  # noqa: ANN001
    layer = get_layer(layer_name)
    loc = current_locale()
    layer.draw(data, loc).add_to(m)
    add_legend(m, legend_title, layer.legend(data, loc))
    import branca.element

    m.get_root().html.add_child(branca.element.Element(_panel(panel)))
    add_attribution(m, f"{_('Data')}: {ATTRIBUTION}")
    return folium_page(m, active="dashboard.dashboard_page", title=title)


@bp.get("/coverage")
def coverage_page():  # noqa: ANN201
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
    s, un = rep["summary"], rep["uncovered"]
    status = {
        "no_head": _("No grid head"),
        "understaffed": _("Head, too few members"),
    }
    grid_items = "".join(
        f"<li>{esc(g['code'])} {esc(g['community_name'])}: {esc(status[g['status']])}"
        f" ({esc(_('members'))} {g['members']})</li>"
        for g in un["grids"]
    )
    seg_items = "".join(
        f"<li>{esc(x['name'] or x['code'])} · {esc(x['community_name'] or '')}</li>"
        for x in un["segments"]
    )
    panel = (
        f"<h3 style='margin:0 0 6px;font-size:16px'>{esc(_('Staffing coverage'))}</h3>"
        + _date_form("dashboard.coverage_page", day)
        + f"<div>{esc(_('Grids with a head'))}: <b>{s['grids_headed_pct'] or 0}%</b> · "
        f"{esc(_('fully staffed'))}: <b>{s['grids_staffed_pct'] or 0}%</b></div>"
        f"<div>{esc(_('Alley segments with a chief'))}: <b>{s['segments_chief_pct'] or 0}%</b>"
        "</div>"
        f"<h4 style='margin:8px 0 2px'>{esc(_('Uncovered grids'))}: "
        f"<span class='count-grids'>{un['grids_count']}</span></h4>"
        f"<ul style='margin:0;padding-left:18px'>{grid_items}</ul>"
        f"<h4 style='margin:8px 0 2px'>{esc(_('Alley segments without a chief'))}: "
        f"<span class='count-segments'>{un['segments_count']}</span></h4>"
        f"<ul style='margin:0;padding-left:18px'>{seg_items}</ul>"
    )
    rollup = "".join(
        f"<tr><td>{esc(r['name'])}</td><td>{r['grids']}</td><td>{r['grids_no_head']}</td>"
        f"<td>{r['grids_understaffed']}</td><td>{r['segments_no_chief']}</td></tr>"
        for r in rep["subdistricts"]
    )
    panel += (
        f"<h4 style='margin:8px 0 2px'>{esc(_('By subdistrict'))}</h4>"
        "<table class='rollup' style='width:100%;border-collapse:collapse;font-size:12px'>"
        f"<tr><th align=left>{esc(_('Subdistrict'))}</th><th>{esc(_('Grids'))}</th>"
        f"<th>{esc(_('No grid head'))}</th><th>{esc(_('Head, too few members'))}</th>"
        f"<th>{esc(_('No chief assigned'))}</th></tr>{rollup}</table>"
    )
    if un["multiple_heads_count"]:
        panel += (
            f"<h4 style='margin:8px 0 2px;color:#d7301f'>{esc(_('Grids with several heads'))}: "
            f"{un['multiple_heads_count']}</h4><ul style='margin:0;padding-left:18px'>"
            + "".join(f"<li>{esc(g['code'])}</li>" for g in un["multiple_heads"])
            + "</ul>"
        )
    m = _map(data["grids"], data["segments"])
    title = f"{_('Staffing coverage')} · {day.isoformat()}"
    return _finish(m, "coverage", data, _("Staffing coverage"), panel, title)


def _select(name: str, options: list[tuple[str, str]], current: str) -> str:
    opts = "".join(
        f'<option value="{esc(v)}"{" selected" if v == current else ""}>{esc(label)}</option>'
        for v, label in options
    )
    return f'<select name="{esc(name)}">{opts}</select>'


@bp.get("/density")
def density_page():  # noqa: ANN201
    from layers.density import GROUP_LABELS, LEVEL_LABELS, SCHEME_LABELS, t
    from mapsvc.services.density import COMMUNITY_ONLY_GROUPS

    args = _density_args()
    loc = current_locale()
    notice = ""
    if args["level"] == "grid" and args["group"] in COMMUNITY_ONLY_GROUPS:
        # picked in the form: show the nearest meaningful map rather than an error page
        args["level"] = "community"
        notice = (
            f"<p class='notice' style='color:#b35806;margin:6px 0 0'>"
            f"{esc(_('These staff are posted to communities, not grids: shown by community.'))}"
            "</p>"
        )
    layer = get_layer("density")
    data = layer.query(get_session(), precision=PAGE_PRECISION, simplify_m=PAGE_SIMPLIFY_M, **args)
    form = (
        f'<form method="get" action="{esc(url_for("dashboard.density_page"))}" '
        'style="display:grid;grid-template-columns:auto 1fr;gap:4px 8px;align-items:center">'
        f"<label>{esc(_('Level'))}</label>"
        + _select("level", [(k, t(v, loc)) for k, v in LEVEL_LABELS.items()], args["level"])
        + f"<label>{esc(_('Staff'))}</label>"
        + _select("group", [(k, t(v, loc)) for k, v in GROUP_LABELS.items()], args["group"])
        + f"<label>{esc(_('Classes'))}</label>"
        + _select("scheme", [(k, t(v, loc)) for k, v in SCHEME_LABELS.items()], args["scheme"])
        + f"<label>{esc(_('Number of classes'))}</label>"
        + f'<input type="number" name="k" min="2" max="9" value="{args["k"]}">'
        + f"<label>{esc(_('Date'))}</label>"
        + f'<input type="date" name="date" value="{args["day"].isoformat()}">'
        + f'<span></span><button type="submit">{esc(_("Show"))}</button></form>'
        + notice
    )
    values = [f["properties"]["value"] for f in data["features"] if f["properties"]["value"]]
    top = sorted(data["features"], key=lambda f: f["properties"]["value"] or 0, reverse=True)[:5]
    top_html = "".join(
        f"<li>{esc(f['properties']['name'])}: {f['properties']['value']:.1f}</li>" for f in top
    )
    panel = (
        f"<h3 style='margin:0 0 6px;font-size:16px'>{esc(_('Staff density'))}</h3>"
        + form
        + f"<div style='margin-top:8px'>{esc(_('Areas'))}: {len(data['features'])}"
        + (f" · {esc(_('max'))} {max(values):.1f}" if values else "")
        + f"</div><ol style='margin:4px 0 0;padding-left:20px'>{top_html}</ol>"
    )
    m = _map(data)
    title = f"{_('Staff density')} · {t(LEVEL_LABELS[args['level']], loc)}"
    return _finish(m, "density", data, layer.legend_title(data, loc), panel, title)


@bp.get("/quota")
def quota_page():  # noqa: ANN201
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
    tot = data["totals"]
    keep = {**{k: str(v) for k, v in coef.items()}, "group": group}
    q = {**keep, "date": day.isoformat(), "lang": current_locale()}
    rows = sorted(data["features"], key=lambda f: f["properties"]["gap"])
    table = "".join(
        f"<tr><td>{esc(f['properties']['name'])}</td><td>{f['properties']['required']}</td>"
        f"<td>{f['properties']['actual']}</td><td>{f['properties']['gap']:+d}</td></tr>"
        for f in rows
    )
    from layers.density import GROUP_LABELS, t

    loc = current_locale()
    groups = [(k, t(v, loc)) for k, v in GROUP_LABELS.items() if k != "centres"]
    form = (
        f'<form method="get" action="{esc(url_for("dashboard.quota_page"))}" '
        'style="display:grid;grid-template-columns:auto 1fr;gap:4px 8px;align-items:center;'
        'margin-bottom:8px">'
        f"<label>{esc(_('Staff'))}</label>"
        + _select("group", groups, group)
        + "".join(
            f'<label>{k}</label><input type="number" step="0.1" min="0" name="{k}" '
            f'value="{coef[k]:g}">'
            for k in quota_svc.COEFFICIENT_NAMES
        )
        + f"<label>{esc(_('Date'))}</label>"
        + f'<input type="date" name="date" value="{day.isoformat()}">'
        + f'<span></span><button type="submit">{esc(_("Show"))}</button></form>'
    )
    panel = (
        f"<h3 style='margin:0 0 6px;font-size:16px'>{esc(_('Staffing quota'))}</h3>"
        + form
        + f"<div>{esc(_('Formula'))}: a × {esc(_('population'))}/10000 + "
        f"b × km² + c × {esc(_('enterprises'))}/100</div>"
        f"<div>{esc(_('Required'))}: <b>{tot['required']}</b> · {esc(_('Actual'))}: "
        f"<b>{tot['actual']}</b> · {esc(_('Shortfall'))}: <b>{tot['shortfall']}</b></div>"
        f'<div><a href="{esc(url_for("dashboard.api_quota_csv", **q))}">CSV</a> · '
        f'<a href="{esc(url_for("dashboard.api_quota_xlsx", **q))}">Excel</a></div>'
        f"<table style='width:100%;border-collapse:collapse;margin-top:6px'><tr>"
        f"<th align=left>{esc(_('Community'))}</th><th>{esc(_('Required'))}</th>"
        f"<th>{esc(_('Actual'))}</th><th>±</th></tr>{table}</table>"
    )
    m = _map(data)
    return _finish(m, "quota", data, _("Staffing quota"), panel, _("Staffing quota"))


# --------------------------------------------------------------------------- dashboard


@bp.get("/dashboard")
def dashboard_page():  # noqa: ANN201
    # the slow patrol figure is fetched by the page afterwards (/api/dashboard/patrol)
    data = _overview(include_patrol=False)
    loc = current_locale()

    from layers.density import GROUP_LABELS, t

    labels = {
        "staff_per_km2": _("Staff per km²"),
        "district_value": _("District average"),
        "incidents": _("Incidents"),
        "groups": {k: t(v, loc) for k, v in GROUP_LABELS.items()},
    }
    return render_template(
        "dashboard.html",
        data=data,
        d=data["district"],
        labels=labels,
        locale=loc,
        nav=nav_html("dashboard.dashboard_page"),
        chartjs=vendor_url("chartjs"),
        lang_args={"lang": loc},
    )
