"""Staff density choropleth (staff or service centres per km²) and the staffing quota map.

The query half calls :func:`mapsvc.services.density.density` for the chosen level and
classifies the values with mapclassify (natural breaks, quantiles or equal interval, picked
by the user); the drawing half colours the areas by class, with a legend of class ranges
and the values in escaped tooltips. :class:`QuotaLayer` maps each community's shortfall or
surplus against :func:`mapsvc.services.quota.quota_table`.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from layers.base import LegendItem, MapLayer, esc
from layers.coverage import slim
from layers.registry import register
from mapsvc.config import Settings
from mapsvc.core.i18n import N_, catalogue, translator
from mapsvc.core.values import BBox

if TYPE_CHECKING:
    import folium
    from sqlalchemy.orm import Session

#: ColorBrewer YlOrRd, light to dark; k classes take k evenly spread colours
PALETTE = [
    "#ffffcc",
    "#ffeda0",
    "#fed976",
    "#feb24c",
    "#fd8d3c",
    "#fc4e2a",
    "#e31a1c",
    "#bd0026",
    "#800026",
]
NO_DATA = "#cccccc"

#: message ids (English) of the staff groups, levels and classification schemes, by the
#: key the query and the page forms use; translate them with :func:`t`
GROUP_LABELS = {
    "all": N_("All staff"),
    "community_workers": N_("Community workers"),
    "grid_staff": N_("Grid heads and members"),
    "alley_chiefs": N_("Alley chiefs"),
    "dispatched": N_("Dispatched professionals"),
    "centres": N_("Service centres"),
}
LEVEL_LABELS = {
    "grid": N_("Grid"),
    "community": N_("Community"),
    "subdistrict": N_("Subdistrict"),
    "district": N_("District"),
}
SCHEME_LABELS = {
    "natural_breaks": N_("Natural breaks"),
    "quantiles": N_("Quantiles"),
    "equal_interval": N_("Equal interval"),
}


def t(msgid: str, locale: str) -> str:
    """``msgid`` (a value of the label tables above) in ``locale``, from the catalogues."""
    return translator(locale)(msgid)


def unit(group: str, locale: str) -> str:
    """Unit of a density value: staff or service centres per km² (two words in Chinese)."""
    cat = catalogue(locale)
    if group == "centres":
        return cat.pgettext("service centres", "per km²")
    return cat.pgettext("staff", "per km²")


def palette(k: int) -> list[str]:
    """``k`` colours spread over :data:`PALETTE`, light to dark."""
    if k <= 1:
        return [PALETTE[4]][:k] or []
    return [PALETTE[round(i * (len(PALETTE) - 1) / (k - 1))] for i in range(k)]


def _fmt(v: float | None, nd: int = 1) -> str:
    return "—" if v is None else f"{v:,.{nd}f}"


@register
class DensityLayer(MapLayer):
    name = "density"
    title_msgid = N_("Staff density")

    def query(
        self,
        session: Session,
        bbox: BBox | None = None,
        *,
        level: str = "community",
        group: str = "all",
        scheme: str = "natural_breaks",
        k: int = 5,
        day: dt.date | None = None,
        settings: Settings | None = None,
        precision: int = 6,
        simplify_m: float = 0.0,
        **filters: Any,
    ) -> dict:
        """Areas at ``level`` with counts, per-km² values, class and the class bins."""
        from mapsvc.services.density import check_level_group, classify, density, value_key

        check_level_group(level, group)
        day = day or (settings or Settings()).today()
        rows = density(
            session,
            level,
            day,
            bbox=bbox,
            geometry=True,
            precision=precision,
            simplify_m=simplify_m,
        )
        key = value_key(group)
        cls = classify([r[key] for r in rows], scheme, k)
        features = []
        for r, c in zip(rows, cls["classes"], strict=True):
            props = {kk: v for kk, v in r.items() if kk != "geometry"}
            props["value"] = r[key]
            props["class"] = c
            features.append(
                {
                    "type": "Feature",
                    "id": r["id"],
                    "geometry": json.loads(r["geometry"]),
                    "properties": props,
                }
            )
        centres = []
        if group == "centres":
            import sqlalchemy as sa

            from mapsvc.models import ServiceCentre
            from mapsvc.services.coverage import bbox_filter

            q = sa.select(
                ServiceCentre.name,
                sa.func.ST_X(ServiceCentre.geom),
                sa.func.ST_Y(ServiceCentre.geom),
            ).order_by(ServiceCentre.id)
            q = q.where(bbox_filter(ServiceCentre.geom, bbox))
            centres = [{"name": n, "lon": x, "lat": y} for n, x, y in session.execute(q)]
        return {
            "type": "FeatureCollection",
            "features": features,
            "centres": centres,
            "date": day.isoformat(),
            "level": level,
            "group": group,
            "value_key": key,
            "classification": {kk: v for kk, v in cls.items() if kk != "classes"},
        }

    def tip(self, p: dict, data: dict, locale: str) -> str:
        # labels are looked up outside the f-strings, where the message extractor sees them
        _ = translator(locale)
        label = {
            "in": _("In"),
            "staff": _("Staff"),
            "area": _("Area (km²)"),
            "population": _("Population"),
            "per_10k": _("per 10,000 residents"),
            "centres": catalogue(locale).pgettext("count", "Service centres"),
        }
        lab = {k: esc(v) for k, v in label.items()}
        group = data["group"]
        lines = [f"<b>{esc(p['name'])}</b> ({esc(p['code'])})"]
        if p.get("parent_name"):
            lines.append(f"{lab['in']}: {esc(p['parent_name'])}")
        lines.append(
            f"<b>{esc(_(GROUP_LABELS[group]))}: {_fmt(p['value'])} {esc(unit(group, locale))}</b>"
        )
        lines.append(f"{lab['staff']}: {int(p['staff'])} · {lab['area']}: {_fmt(p['area_km2'], 3)}")
        for g in ("community_workers", "grid_staff", "alley_chiefs", "dispatched"):
            if data["level"] == "grid" and g in ("community_workers", "dispatched"):
                continue
            lines.append(f"{esc(_(GROUP_LABELS[g]))}: {int(p[g])}")
        lines.append(
            f"{lab['population']}: {int(p['population']):,} · "
            f"{lab['per_10k']}: {_fmt(p['staff_per_10k'])}"
        )
        lines.append(
            f"{lab['centres']}: {int(p['centres'])} ({_fmt(p['centres_per_km2'], 2)} / km²)"
        )
        return "<br>".join(lines)

    def draw(self, data: dict, locale: str = "zh_CN", **options: Any) -> folium.FeatureGroup:
        """A GeoJson choropleth coloured by class, values in tooltips."""
        import folium

        colours = palette(data["classification"]["k"])
        for f in data["features"]:
            c = f["properties"]["class"]
            f["properties"]["fill"] = NO_DATA if c is None else colours[c]
        group = folium.FeatureGroup(name=self.title(locale), show=True)
        if data["features"]:  # folium refuses tooltips on empty data
            folium.GeoJson(
                slim(data, lambda p: self.tip(p, data, locale)),
                name=self.name,
                style_function=lambda f: {
                    "fillColor": f["properties"]["fill"],
                    "color": "#555",
                    "weight": 1,
                    "fillOpacity": 0.75,
                },
                highlight_function=lambda f: {"weight": 3, "color": "#000"},
                tooltip=folium.GeoJsonTooltip(fields=["tip"], labels=False, sticky=True),
            ).add_to(group)
        for c in data.get("centres", []):
            folium.CircleMarker(
                location=(c["lat"], c["lon"]),
                radius=5,
                color="#1f3a5f",
                weight=2,
                fill=True,
                fill_color="#ffffff",
                fill_opacity=1,
                tooltip=esc(c["name"]),
            ).add_to(group)
        return group

    def legend(self, data: dict, locale: str = "zh_CN") -> list[LegendItem]:
        cls = data["classification"]
        colours = palette(cls["k"])
        items = []
        lower = cls["min"]
        for colour, upper in zip(colours, cls["bins"], strict=True):
            items.append(LegendItem(colour, f"{_fmt(lower)} – {_fmt(upper)}"))
            lower = upper
        return items

    def legend_title(self, data: dict, locale: str) -> str:
        group = data["group"]
        return (
            f"{t(GROUP_LABELS[group], locale)} ({unit(group, locale)}) · "
            f"{t(SCHEME_LABELS[data['classification']['scheme']], locale)}"
        )


QUOTA_COLOURS = {
    "shortfall_big": "#b2182b",
    "shortfall": "#ef8a62",
    "balanced": "#f7f7f7",
    "surplus": "#67a9cf",
    "surplus_big": "#2166ac",
}
QUOTA_LABELS = {
    "shortfall_big": N_("Shortfall ≥ 5"),
    "shortfall": N_("Shortfall 1–4"),
    "balanced": N_("Balanced"),
    "surplus": N_("Surplus 1–4"),
    "surplus_big": N_("Surplus ≥ 5"),
}


def quota_band(gap: int) -> str:
    """Colour band of a community's gap (actual − required)."""
    if gap <= -5:
        return "shortfall_big"
    if gap < 0:
        return "shortfall"
    if gap == 0:
        return "balanced"
    return "surplus" if gap < 5 else "surplus_big"


@register
class QuotaLayer(MapLayer):
    name = "quota"
    title_msgid = N_("Staffing quota gap")

    def query(
        self,
        session: Session,
        bbox: BBox | None = None,
        *,
        day: dt.date | None = None,
        settings: Settings | None = None,
        coef: dict[str, float] | None = None,
        group: str = "community_workers",
        precision: int = 6,
        simplify_m: float = 0.0,
        **filters: Any,
    ) -> dict:
        """Communities (GeoJSON) with required, actual and gap from the quota table."""
        import sqlalchemy as sa

        from mapsvc.models import Community
        from mapsvc.services.quota import quota_table

        table = quota_table(session, day, coef, group)
        from mapsvc.services.coverage import bbox_filter, geojson_expr

        q = sa.select(Community.id, geojson_expr(Community.geom, precision, simplify_m)).where(
            bbox_filter(Community.geom, bbox)
        )
        geoms: dict[int, str] = dict(session.execute(q).all())
        features = [
            {
                "type": "Feature",
                "id": r["id"],
                "geometry": json.loads(geoms[r["id"]]),
                "properties": {**r, "band": quota_band(r["gap"])},
            }
            for r in table["rows"]
            if r["id"] in geoms
        ]
        return {
            "type": "FeatureCollection",
            "features": features,
            **{k: v for k, v in table.items() if k != "rows"},
        }

    def tip(self, p: dict, locale: str) -> str:
        # labels are looked up outside the f-strings, where the message extractor sees them;
        # the quota table's headings use shorter Chinese for Actual and Enterprises, the
        # tooltip keeps its longer forms through a context
        _ = translator(locale)
        pgettext = catalogue(locale).pgettext
        label = {
            "required": _("Required"),
            "actual": pgettext("quota tooltip", "Actual"),
            "population": _("Population"),
            "enterprises": pgettext("quota tooltip", "Enterprises"),
            "area": _("Area"),
        }
        lab = {k: esc(v) for k, v in label.items()}
        return "<br>".join(
            [
                f"<b>{esc(p['name'])}</b> ({esc(p['code'])})",
                f"{lab['required']}: {p['required']} ({p['required_exact']:.2f})",
                f"{lab['actual']}: {p['actual']}",
                f"<b>{esc(_(QUOTA_LABELS[p['band']]))}: {p['gap']:+d}</b>",
                f"{lab['population']}: {p['population']:,} · "
                f"{lab['enterprises']}: {p['enterprises']} · "
                f"{lab['area']}: {p['area_km2']:.3f} km²",
            ]
        )

    def draw(self, data: dict, locale: str = "zh_CN", **options: Any) -> folium.FeatureGroup:
        import folium

        group = folium.FeatureGroup(name=self.title(locale), show=True)
        if data["features"]:  # folium refuses tooltips on empty data
            folium.GeoJson(
                slim(data, lambda p: self.tip(p, locale)),
                name=self.name,
                style_function=lambda f: {
                    "fillColor": QUOTA_COLOURS[f["properties"]["band"]],
                    "color": "#555",
                    "weight": 1,
                    "fillOpacity": 0.75,
                },
                highlight_function=lambda f: {"weight": 3, "color": "#000"},
                tooltip=folium.GeoJsonTooltip(fields=["tip"], labels=False, sticky=True),
            ).add_to(group)
        return group

    def legend(self, data: dict, locale: str = "zh_CN") -> list[LegendItem]:
        return [LegendItem(c, t(QUOTA_LABELS[b], locale)) for b, c in QUOTA_COLOURS.items()]
