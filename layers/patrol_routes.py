"""Patrol layers: chiefs' daily routes (日巡查) and what was patrolled today / this week.

``patrol_routes`` draws, for one chief or every chief of a grid, the assigned segments
highlighted, the route with direction arrows (leaflet-textpath, vendored) and order numbers
along it, and the start point. ``patrolled`` colours every assigned segment by whether it
was patrolled on the day, earlier in the week, or not at all.

Both follow :class:`layers.base.MapLayer`: ``query`` needs only a session, ``draw`` only the
data. Text from data (names) is escaped before it reaches a tooltip.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from layers.base import LegendItem, MapLayer, esc
from layers.registry import register
from mapsvc.config import Settings
from mapsvc.core.i18n import N_, catalogue, translator
from mapsvc.core.values import BBox

if TYPE_CHECKING:
    import folium
    from sqlalchemy.orm import Session

#: route colours kept apart from the patrolled-state colours (green / yellow / red)
ROUTE_COLOURS = ["#2b5cd6", "#8e44ad", "#00838f", "#c51b8a", "#5d4037", "#3949ab", "#636363"]
ASSIGNED_COLOUR = "#fdae6b"
OSM_CREDIT = "© OpenStreetMap contributors"
#: at most this many order numbers per route (long routes get every n-th step labelled)
MAX_LABELS = 60

#: message ids (English) of the layers' labels, by the key the drawing code uses
T = {
    "routes": N_("Patrol routes"),
    "assigned": N_("Assigned segments"),
    "route": N_("Patrol route (arrows show direction)"),
    "start": N_("Start"),
    "chief": N_("Chief"),
    "total": N_("Total (m)"),
    "minutes": N_("Walking (min)"),
    "step": N_("Step"),
    "segment": N_("Segment"),
    "patrolled": N_("Patrol status"),
    "today": N_("Patrolled today"),
    "week": N_("Patrolled this week"),
    "none": N_("Not patrolled this week"),
}


def _t(locale: str) -> dict[str, str]:
    """The labels of :data:`T` in ``locale``, and the kinds of route step.

    A step's kind (required / connector) has its own Chinese, apart from the other uses
    of "required" (staff required in a grid), hence the context.
    """
    _ = translator(locale)
    pgettext = catalogue(locale).pgettext
    return {
        **{k: _(msgid) for k, msgid in T.items()},
        "kind_required": pgettext("route step", "required"),
        "kind_connector": pgettext("route step", "connector"),
    }


def _segments_fc(session: Session, ids: list[int], extra: dict[int, dict] | None = None) -> dict:
    if not ids:
        return {"type": "FeatureCollection", "features": []}
    rows = session.execute(
        sa.text(
            "SELECT id, code, name, source, length_m, ST_AsGeoJSON(geom, 7) "
            "FROM alley_segment WHERE id = ANY(:ids) ORDER BY id"
        ),
        {"ids": ids},
    ).all()
    import json

    feats = []
    for r in rows:
        props = {"segment_id": r[0], "code": r[1], "name": r[2], "source": r[3]}
        props["length_m"] = round(float(r[4]), 1)
        props.update((extra or {}).get(r[0], {}))
        feats.append({"type": "Feature", "geometry": json.loads(r[5]), "properties": props})
    return {"type": "FeatureCollection", "features": feats}


def routes_to_crs(data: dict, crs: str) -> dict:
    """The routes layer's data with every coordinate in ``crs`` (in place).

    For base map tiles in another datum: on Amap's GCJ-02 tiles WGS84 lines sit 300-500 m
    off their streets, so the route, its steps, its start point and the assigned segments
    move with the tiles.
    """
    if crs == "wgs84":
        return data
    import numpy as np
    import shapely

    from layers.basemap import collection_to_crs
    from mapsvc.services.chinacrs import geometry_from_wgs84

    def moved(coords: list) -> list:
        pts = geometry_from_wgs84(shapely.points(np.asarray(coords, dtype=float)), crs)
        return np.round(shapely.get_coordinates(pts), 6).tolist()

    for r in data["routes"]:
        collection_to_crs(r, crs)
        if r.get("coordinates"):
            r["coordinates"] = moved(r["coordinates"])
        if r.get("start"):
            r["start"]["coordinates"] = moved([r["start"]["coordinates"]])[0]
    collection_to_crs(data["assigned"], crs)
    return data


def map_bounds(routes: dict, state: dict) -> list[list[float]] | None:
    """Leaflet bounds the patrol page opens on: the routes, else the day's segments.

    ``routes`` is the ``patrol_routes`` layer's data, ``state`` the ``patrolled``
    layer's. A chief's (or a grid's) map fits his routes; with no route to draw it fits the
    segments whose patrol state is shown, and None (the default view) when there are none.
    """
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


@register
class PatrolRoutesLayer(MapLayer):
    name = "patrol_routes"
    title_msgid = T["routes"]

    def query(
        self,
        session: Session,
        bbox: BBox | None = None,
        chief: int | None = None,
        grid: str | None = None,
        day: dt.date | None = None,
        start: tuple[float, float] | None = None,
        speed_kmh: float = 4.5,
        **filters: Any,
    ) -> dict:
        """Routes of one chief (``chief``) or of every chief holding segments in ``grid``."""
        from mapsvc.core.errors import NotFound, ServiceError
        from mapsvc.services import patrol_routes

        if chief is not None:
            from mapsvc.models import Staff

            st = session.get(Staff, chief)
            if st is None:
                raise NotFound(f"staff {chief} does not exist", field="chief")
            chiefs = [(chief, st.name, 0)]
        elif grid is not None:
            chiefs = patrol_routes.chiefs(session, grid, day)
        else:
            chiefs = []
        routes = []
        assigned: dict[int, dict] = {}
        graph = patrol_routes.graph_for(session) if chiefs else None
        errors = []
        for i, (staff_id, name, _n) in enumerate(chiefs):
            try:
                res = patrol_routes.route_for_chief(
                    session, staff_id, graph=graph, start=start if chief else None, day=day
                )
            except ServiceError as exc:  # shown on the map page; other chiefs still drawn
                errors.append({"staff_id": staff_id, "chief": name, "error": exc.message})
                continue
            fc = res.to_geojson(speed_kmh, staff_id=staff_id, chief=name)
            fc["coordinates"] = res.coordinates()
            fc["colour"] = ROUTE_COLOURS[i % len(ROUTE_COLOURS)]
            routes.append(fc)
            for s in res.required_segments:
                assigned[s] = {"chief": name, "staff_id": staff_id}
        segs = _segments_fc(session, sorted(assigned), assigned)
        osm = any(f["properties"]["source"] == "osm" for f in segs["features"])
        return {
            "routes": routes,
            "assigned": segs,
            "errors": errors,
            "attribution": OSM_CREDIT if osm else None,
        }

    def draw(self, data: dict, locale: str = "zh_CN", **options: Any) -> folium.FeatureGroup:
        import folium
        from folium.plugins import PolyLineTextPath

        t = _t(locale)
        fg = folium.FeatureGroup(name=self.title(locale), show=True)
        feats = []
        for f in data["assigned"]["features"]:
            p = f["properties"]
            feats.append(
                {
                    **f,
                    "properties": {
                        "segment": esc(p.get("name") or p.get("code")),
                        "chief": esc(p.get("chief")),
                        "length": p.get("length_m"),
                    },
                }
            )
        if feats:
            folium.GeoJson(
                {"type": "FeatureCollection", "features": feats},
                name=t["assigned"],
                style_function=lambda _f: {"color": ASSIGNED_COLOUR, "weight": 9, "opacity": 0.8},
                tooltip=folium.GeoJsonTooltip(
                    fields=["segment", "chief", "length"],
                    aliases=[t["segment"], t["chief"], "m"],
                ),
            ).add_to(fg)
        # many routes on one map: fewer order numbers each, so the map stays readable
        max_labels = max(10, MAX_LABELS // max(1, len(data["routes"])))
        for r in data["routes"]:
            coords = [(lat, lon) for lon, lat in r["coordinates"]]
            props = r["properties"]
            tip = (
                f"{esc(t['chief'])}: {esc(props.get('chief'))}<br>"
                f"{esc(t['total'])}: {props['total_m']:.0f}<br>"
                f"{esc(t['minutes'])}: {props['walking_minutes']:.0f}"
            )
            line = folium.PolyLine(coords, color=r["colour"], weight=3, opacity=0.9, tooltip=tip)
            line.add_to(fg)
            PolyLineTextPath(
                line,
                "    ►    ",
                repeat=True,
                offset=4,
                attributes={"fill": r["colour"], "font-size": "12"},
            ).add_to(fg)
            steps = r["features"]
            every = max(1, -(-len(steps) // max_labels))
            for f in steps[::every]:
                cs = f["geometry"]["coordinates"]
                mid = cs[len(cs) // 2]
                seq = f["properties"]["seq"]
                folium.Marker(
                    (mid[1], mid[0]),
                    icon=folium.DivIcon(
                        html=(
                            f'<div style="font:bold 10px sans-serif;color:#fff;'
                            f"background:{r['colour']};border-radius:8px;padding:0 3px;"
                            f'display:inline-block">{int(seq)}</div>'
                        ),
                        icon_size=(24, 14),
                        icon_anchor=(12, 7),
                    ),
                    tooltip=f"{esc(t['step'])} {int(seq)}: {esc(f['properties'].get('name'))} "
                    f"({esc(t['kind_' + f['properties']['kind']])})",
                ).add_to(fg)
            lon, lat = r["start"]["coordinates"]
            folium.CircleMarker(
                (lat, lon),
                radius=8,
                color="#000",
                weight=2,
                fill=True,
                fill_color=r["colour"],
                fill_opacity=1,
                tooltip=f"{esc(t['start'])}: {esc(props.get('chief'))}",
            ).add_to(fg)
        return fg

    def legend(self, data: dict, locale: str = "zh_CN") -> list[LegendItem]:
        t = _t(locale)
        items = [LegendItem(ASSIGNED_COLOUR, t["assigned"])]
        routes = data["routes"]
        if len(routes) > len(ROUTE_COLOURS):  # colours repeat: one entry, names in tooltips
            return [*items, LegendItem(ROUTE_COLOURS[0], f"{t['route']} ({len(routes)})")]
        for r in routes:
            items.append(
                LegendItem(r["colour"], f"{t['route']}: {r['properties'].get('chief') or ''}")
            )
        return items


@register
class PatrolledLayer(MapLayer):
    name = "patrolled"
    title_msgid = T["patrolled"]

    COLOURS = {"today": "#1a9850", "week": "#fee08b", "none": "#d73027"}

    def query(
        self,
        session: Session,
        bbox: BBox | None = None,
        day: dt.date | None = None,
        settings: Settings | None = None,
        **filters: Any,
    ) -> dict:
        """Assigned segments with their state: patrolled on ``day``, earlier that week, or not.

        ``settings`` (the caller's) give the district's "today" and the patrol thresholds.
        """
        from mapsvc.services import patrol

        settings = settings or Settings()
        day = day or settings.today()
        today = patrol.district_compliance(session, day, settings=settings)
        week = patrol.week_summary(session, day, settings=settings)
        done_today = {s for c in today["chiefs"] for s in c["patrolled_ids"]}
        done_week = {s for c in week["chiefs"] for s in c["patrolled_ids"]}
        extra: dict[int, dict] = {}
        from mapsvc.services.assignments import holders

        q = holders("alley_chief", "segment", day).subquery()
        owners = dict(session.execute(sa.select(q.c.target_id, q.c.staff_id)).all())
        names = {c["staff_id"]: c["name"] for c in today["chiefs"]}
        ids = sorted(owners)
        if bbox is not None:
            ids = list(
                session.scalars(
                    sa.text(
                        "SELECT id FROM alley_segment WHERE id = ANY(:ids) AND "
                        "geom && ST_MakeEnvelope(:a, :b, :c, :d, 4326)"
                    ),
                    {"ids": ids, "a": bbox[0], "b": bbox[1], "c": bbox[2], "d": bbox[3]},
                )
            )
        for s in ids:
            state = "today" if s in done_today else ("week" if s in done_week else "none")
            extra[s] = {"state": state, "chief": names.get(owners[s]), "staff_id": owners[s]}
        fc = _segments_fc(session, ids, extra)
        osm = any(f["properties"]["source"] == "osm" for f in fc["features"])
        grids = patrol.grid_shares(session, set(owners), {"today": done_today, "week": done_week})
        return {
            "segments": fc,
            "grids": grids,
            "today": {k: v for k, v in today.items() if k != "chiefs"},
            "week": {k: v for k, v in week.items() if k != "chiefs"},
            "chiefs_today": today["chiefs"],
            "chiefs_week": week["chiefs"],
            "attribution": OSM_CREDIT if osm else None,
        }

    def draw(self, data: dict, locale: str = "zh_CN", **options: Any) -> folium.FeatureGroup:
        import folium

        t = _t(locale)
        colours = self.COLOURS
        feats = [
            {
                **f,
                "properties": {
                    "segment": esc(f["properties"].get("name") or f["properties"].get("code")),
                    "chief": esc(f["properties"].get("chief")),
                    "state": esc(t[f["properties"]["state"]]),
                    "colour": colours[f["properties"]["state"]],
                },
            }
            for f in data["segments"]["features"]
        ]
        fg = folium.FeatureGroup(name=self.title(locale), show=True)
        tiles = options.get("tiles")
        if tiles is not None and data["segments"]["features"]:
            # from vector tiles: the page carries only each segment's state
            from layers.basemap import tiled_segments

            states = {
                f["properties"]["segment_id"]: f["properties"]["state"]
                for f in data["segments"]["features"]
            }
            labels = {
                "segment": t["segment"],
                "chief": t["chief"],
                "state": t["patrolled"],
                "states": {k: t[k] for k in colours},
            }
            tiled_segments(tiles, states, colours, labels).add_to(fg)
        elif feats:
            folium.GeoJson(
                {"type": "FeatureCollection", "features": feats},
                style_function=lambda f: {
                    "color": f["properties"]["colour"],
                    "weight": 5,
                    "opacity": 0.9,
                },
                tooltip=folium.GeoJsonTooltip(
                    fields=["segment", "chief", "state"],
                    aliases=[t["segment"], t["chief"], t["patrolled"]],
                ),
            ).add_to(fg)
        return fg

    def legend(self, data: dict, locale: str = "zh_CN") -> list[LegendItem]:
        t = _t(locale)
        return [LegendItem(c, t[k]) for k, c in self.COLOURS.items()]
