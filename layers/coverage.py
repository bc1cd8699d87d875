"""Staffing coverage layer: grids by staffing status, alley segments by chief, on any date.

The query half wraps :mod:`mapsvc.services.coverage` (which reads posts through
``mapsvc.services.assignments``); the drawing half colours grids (no head / head but too
few members / fully staffed) and segments (chief / no chief), with escaped tooltips.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from layers.base import LegendItem, MapLayer, esc
from layers.registry import register
from mapsvc.config import Settings
from mapsvc.core.i18n import N_, translator
from mapsvc.core.values import BBox

if TYPE_CHECKING:
    import folium
    from sqlalchemy.orm import Session

GRID_COLOURS = {"no_head": "#d7301f", "understaffed": "#fdae61", "staffed": "#1a9850"}
SEGMENT_COLOURS = {"chief": "#2166ac", "no_chief": "#c51b7d"}

#: message ids (English) of the layer's labels, by the key the drawing code uses; the
#: status keys are also the legend entries
LABELS = {
    "no_head": N_("No grid head"),
    "understaffed": N_("Head, too few members"),
    "staffed": N_("Fully staffed"),
    "chief": N_("Chief assigned"),
    "no_chief": N_("No chief"),
    "grid": N_("Grid"),
    "community": N_("Community"),
    "head": N_("Grid head"),
    "members": N_("Grid members"),
    "required": N_("required"),
    "two_heads": N_("several grid heads at once"),
    "segment": N_("Alley segment"),
    "chief_label": N_("Chief"),
    "deputy": N_("Deputy"),
    "length": N_("Length (m)"),
    "none": N_("none"),
    # between the names of a grid's members
    "separator": N_(", "),
}


def labels(locale: str) -> dict[str, str]:
    """The layer's labels in ``locale`` by key, from the project's catalogues."""
    _ = translator(locale)
    return {k: _(msgid) for k, msgid in LABELS.items()}


def feature_collection(rows: list[dict], keep: tuple[str, ...]) -> dict:
    """GeoJSON FeatureCollection from rows carrying a ``geometry`` GeoJSON text."""
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": r["id"],
                "geometry": json.loads(r["geometry"]),
                "properties": {k: r.get(k) for k in keep},
            }
            for r in rows
        ],
    }


def slim(fc: dict, tip: Callable[[dict], str]) -> dict:
    """Features carrying only ``tip(properties)`` (escaped HTML) and the style keys.

    Drawing needs nothing else: raw data text never reaches the page (only its escaped
    form inside the tooltip), and the page stays light.
    """
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                # a short unique id: folium keys its style switch on it (else on ``tip``)
                "id": i,
                "geometry": f["geometry"],
                "properties": {
                    "tip": tip(f["properties"]),
                    **{k: f["properties"][k] for k in STYLE_KEYS if k in f["properties"]},
                },
            }
            for i, f in enumerate(fc["features"])
        ],
    }


STYLE_KEYS = ("status", "class", "fill", "band")

GRID_KEYS = (
    "id",
    "code",
    "name",
    "community_name",
    "subdistrict_name",
    "status",
    "head_name",
    "heads",
    "members",
    "members_required",
    "member_names",
    "multiple_heads",
    "area_km2",
)
SEGMENT_KEYS = (
    "id",
    "code",
    "name",
    "community_name",
    "status",
    "chief_name",
    "deputy_name",
    "length_m",
)


@register
class CoverageLayer(MapLayer):
    name = "coverage"
    title_msgid = N_("Staffing coverage")

    def query(
        self,
        session: Session,
        bbox: BBox | None = None,
        *,
        day: dt.date | None = None,
        settings: Settings | None = None,
        members_required: int = 2,
        precision: int = 6,
        simplify_m: float = 0.0,
        **filters: Any,
    ) -> dict:
        """Grids and segments (GeoJSON) with their staffing status on ``day``."""
        from mapsvc.services.coverage import grid_status, segment_status

        day = day or (settings or Settings()).today()
        grids = grid_status(
            session,
            day,
            members_required=members_required,
            bbox=bbox,
            geometry=True,
            precision=precision,
            simplify_m=simplify_m,
        )
        segments = segment_status(session, day, bbox=bbox, geometry=True, precision=precision)
        return {
            "date": day.isoformat(),
            "members_required": members_required,
            "grids": feature_collection(grids, GRID_KEYS),
            "segments": feature_collection(segments, SEGMENT_KEYS),
        }

    def grid_tip(self, p: dict, lab: dict[str, str]) -> str:
        lines = [
            f"<b>{esc(p['name'] or p['code'])}</b> ({esc(p['code'])})",
            f"{lab['community']}: {esc(p['community_name'])}",
            f"{lab['head']}: {esc(p['head_name'] or lab['none'])}",
            f"{lab['members']}: {int(p['members'])} / {lab['required']} "
            f"{int(p['members_required'])}",
        ]
        if p["member_names"]:
            lines.append(esc(lab["separator"].join(p["member_names"])))
        if p["multiple_heads"]:
            lines.append(f'<span style="color:#d7301f">⚠ {lab["two_heads"]}</span>')
        lines.append(f"<i>{esc(lab[p['status']])}</i>")
        return "<br>".join(lines)

    def draw(self, data: dict, locale: str = "zh_CN", **options: Any) -> folium.FeatureGroup:
        """A FeatureGroup with the grid polygons and segment lines, tooltips escaped."""
        import folium

        lab = labels(locale)
        group = folium.FeatureGroup(name=self.title(locale), show=True)
        # only the escaped tooltip and the status go into the page: raw data text never
        # reaches the HTML, and the page stays light
        grids = slim(data["grids"], lambda p: self.grid_tip(p, lab))
        if data["grids"]["features"]:  # folium refuses tooltips on empty data
            folium.GeoJson(
                grids,
                name="grids",
                style_function=lambda f: {
                    "fillColor": GRID_COLOURS[f["properties"]["status"]],
                    "color": "#444",
                    "weight": 1,
                    "fillOpacity": 0.55,
                },
                highlight_function=lambda f: {"weight": 3, "color": "#000"},
                tooltip=folium.GeoJsonTooltip(fields=["tip"], labels=False, sticky=True),
            ).add_to(group)
        # thousands of segments: short escaped fields and a field tooltip keep the page light
        segs = {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "id": i,
                    "geometry": f["geometry"],
                    "properties": {
                        "status": f["properties"]["status"],
                        "n": esc(f["properties"]["name"] or f["properties"]["code"]),
                        "c": esc(f["properties"]["chief_name"] or lab["none"]),
                        "d": esc(f["properties"]["deputy_name"] or lab["none"]),
                    },
                }
                for i, f in enumerate(data["segments"]["features"])
            ],
        }
        if segs["features"]:
            folium.GeoJson(
                segs,
                name="segments",
                style_function=lambda f: {
                    "color": SEGMENT_COLOURS[f["properties"]["status"]],
                    "weight": 5 if f["properties"]["status"] == "no_chief" else 1.5,
                    "opacity": 0.95 if f["properties"]["status"] == "no_chief" else 0.6,
                },
                tooltip=folium.GeoJsonTooltip(
                    fields=["n", "c", "d"],
                    aliases=[lab["segment"], lab["chief_label"], lab["deputy"]],
                    sticky=True,
                ),
            ).add_to(group)
        return group

    def legend(self, data: dict, locale: str = "zh_CN") -> list[LegendItem]:
        lab = labels(locale)
        return [LegendItem(c, lab[s]) for s, c in GRID_COLOURS.items()] + [
            LegendItem(c, lab[s]) for s, c in SEGMENT_COLOURS.items()
        ]
