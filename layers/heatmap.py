"""Incident heatmap, incidents-per-1,000-residents choropleth, and overdue incidents.

``heatmap`` (query half): PostGIS aggregates the incidents in the requested bbox into
square cells of a fixed size *on screen* (:data:`CELL_PX` pixels at the requested zoom),
with the shared incident filters (:class:`mapsvc.services.incidents.IncidentFilter`:
category, class, state, dates...). A heatmap cell is a display aggregate, so cells are laid
out in Web Mercator units, which are screen pixels at every zoom; nothing is measured with
them.
Each incident's Web Mercator position is a stored, indexed column (migration 0002), so a
district-wide view of a million incidents is binned from the index alone. The answer is
compact (``[lon, lat, count]`` per non-empty cell), well under 200 KB for any view.

The colour scale tops out at a high percentile of the non-empty cells' counts
(:data:`SCALE_PERCENTILE`, answered as ``scale_max`` next to ``max``), not at the fullest
cell: one station or market would otherwise leave the rest of a district view one pale
colour. Fuller cells are clipped to the full colour. The legend's classes
(:func:`scale_classes`) say in incidents per cell what each colour stands for.

``heatmap`` (draw half): folium's ``HeatMap`` (leaflet.heat, served locally) with the cell
centres weighted by ``count / scale_max`` (at most 1); ``static/js/heatmap.js`` refetches
on pan and zoom and rewrites the legend's classes for the new view.

``incident_hexbins`` (``/api/heatmap?bins=hex``, the page's "Draw as" toggle): the same
counts in the hexagons of PostGIS ``ST_HexagonGrid`` in EPSG:3857, of the square cell's
area on screen, answered as integer cell indices with counts (the page builds each
outline from them in EPSG:3857) and drawn filled in the colour of their class on the same
percentile scale.

``incident_choropleth``: incidents per 1,000 residents by grid, classed with mapclassify
(Fisher-Jenks natural breaks, or quantiles when few grids), drawn as a GeoJSON layer.

``overdue_incidents``: open incidents past their class's time limit, as red circles.
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from layers.base import LegendItem, MapLayer, esc
from layers.registry import register
from mapsvc.core.errors import BadRequest
from mapsvc.core.i18n import N_, translator
from mapsvc.core.labels import CODE_LABELS
from mapsvc.core.values import BBox
from mapsvc.services.result_cache import ResultCache, database_key, write_state

if TYPE_CHECKING:
    import folium
    import numpy as np
    from folium.plugins import HeatMap
    from sqlalchemy.orm import Session

    from mapsvc.services.incidents import IncidentFilter

#: cell edge in screen pixels
CELL_PX = 12
#: leaflet.heat blob radius and blur in pixels (see IncidentHeatmap.draw)
HEAT_RADIUS_PX, HEAT_BLUR_PX = 10, 10
#: Web Mercator units per pixel at zoom 0 (256-pixel tiles)
MERC_PX0 = 2 * math.pi * 6378137.0 / 256
R = 6378137.0
MAX_LAT = 85.05112878
#: a map fitted to a few incidents (:func:`fit_bounds`) spans at least this many pixels
#: at this zoom, so a single incident is shown with its streets around it
MIN_FIT_PX, MAX_FIT_ZOOM = 400, 16
#: heat colours (leaflet.heat gradient) and choropleth classes (ColorBrewer YlOrRd)
GRADIENT = {0.2: "#ffffb2", 0.4: "#fecc5c", 0.6: "#fd8d3c", 0.8: "#f03b20", 1.0: "#bd0026"}
CLASS_COLOURS = ("#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026")
NO_DATA_COLOUR = "#d9d9d9"
OVERDUE_COLOUR = "#3f007d"  # purple: apart from the heat colours

#: the colour scale tops out at this percentile of the non-empty cells' counts: dividing
#: by the single fullest cell left a district view one flat colour with a dot of red
SCALE_PERCENTILE = 97

#: message ids of the heatmap layers' labels (English; translated through the catalogues)
MESSAGES = (
    N_("Incident heatmap"),
    N_("Incidents per cell"),
    N_("Incidents per hexagon"),
    N_("same area as"),
    N_("Incident hexagons"),
    N_("or more"),
    N_("Incidents per 1,000 residents"),
    N_("Overdue incidents"),
    N_("incidents"),
    N_("Grid"),
    N_("Population"),
    N_("per 1,000 residents"),
    N_("No residents"),
    N_("Category"),
    N_("Class"),
    N_("State"),
    N_("Reported"),
    N_("Due"),
    N_("overdue by"),
    N_("hours"),
    N_("fewer"),
    N_("more"),
    N_("cells of"),
    N_("pixels"),
)


def scale_top(counts: list[int], percentile: float = SCALE_PERCENTILE) -> int:
    """The count that gets the full colour: ``percentile`` of ``counts`` (nearest rank).

    Why a percentile: a few very full cells (a market, a station) would otherwise squeeze
    every other cell into the palest colour. The top few percent of cells are clipped to
    the full colour instead, and the rest spread over the scale. At least 1.
    """
    if not counts:
        return 1
    ordered = sorted(counts)
    rank = max(1, math.ceil(percentile / 100.0 * len(ordered)))
    return max(1, int(ordered[rank - 1]))


def scale_classes(top: int) -> list[tuple[str, int, int | None]]:
    """Colour classes of the scale ``(0, top]``: ``[(colour, lo, hi)]`` in incidents per cell.

    Class ``k`` of :data:`CLASS_COLOURS` holds counts ``n`` with ``k/5 < n/top <= (k+1)/5``,
    the same colours the heat gradient (:data:`GRADIENT`) has at those weights, so the
    legend, the hexagons and the heat blobs agree; the last class is open (``hi`` None:
    ``top`` or more, clipped). Classes with no whole count in them are left out.
    """
    k_n = len(CLASS_COLOURS)
    out: list[tuple[str, int, int | None]] = []
    lo = 1
    for k, colour in enumerate(CLASS_COLOURS):
        hi = math.floor(top * (k + 1) / k_n + 1e-9)
        if k == k_n - 1:
            out.append((colour, lo, None))
        elif hi >= lo:
            out.append((colour, lo, hi))
            lo = hi + 1
    return out


def class_colour(n: int, top: int) -> str:
    """Colour of a cell of ``n`` incidents on the scale topped at ``top`` (see above)."""
    for colour, _lo, hi in scale_classes(top):
        if hi is None or n <= hi:
            return colour
    return CLASS_COLOURS[-1]


def scale_legend(top: int, locale: str = "zh_CN") -> list[LegendItem]:
    """Legend rows: each colour with the incidents per cell it stands for."""
    t = labels(locale)
    items = []
    for colour, lo, hi in scale_classes(top):
        if hi is None:
            text = f"{lo} {t['or more']}"
        else:
            text = str(lo) if lo == hi else f"{lo}–{hi}"
        items.append(LegendItem(colour, text))
    return items


def scale_title(locale: str = "zh_CN", bins: str = "square") -> str:
    """Legend title of the heat and hexagon scales: what a colour counts."""
    t = labels(locale)
    if bins == "hex":
        return (
            f"{t['Incidents per hexagon']} ({t['same area as']} {CELL_PX}×{CELL_PX} {t['pixels']})"
        )
    return f"{t['Incidents per cell']} ({CELL_PX}×{CELL_PX} {t['pixels']})"


def code_label(code: str, t: dict[str, str]) -> str:
    """Translated label of a class or state code (``in_hand`` -> "In hand" -> 处置中).

    ``t`` is :func:`labels`; the codes' message ids are :mod:`mapsvc.core.labels`'.
    """
    msgid = CODE_LABELS.get(code)
    return t.get(msgid, code) if msgid is not None else code


@lru_cache(maxsize=4)
def labels(locale: str = "zh_CN") -> dict[str, str]:
    """The layers' UI strings in ``locale`` (message id -> text), no request needed.

    :data:`MESSAGES` and the class and state labels (:mod:`mapsvc.core.labels`), read
    through :func:`mapsvc.core.i18n.translator`, the catalogues the pages use.
    """
    _ = translator(locale)
    return {m: _(m) for m in (*MESSAGES, *CODE_LABELS.values())}


def cell_size(zoom: float) -> float:
    """Edge of a heatmap cell in Web Mercator units at ``zoom`` (CELL_PX screen pixels)."""
    return MERC_PX0 / (2.0 ** float(zoom)) * CELL_PX


def from_mercator(x: float, y: float) -> tuple[float, float]:
    """Web Mercator metres -> (lon, lat) in degrees."""
    return math.degrees(x / R), math.degrees(2 * math.atan(math.exp(y / R)) - math.pi / 2)


def to_mercator(lon: float, lat: float) -> tuple[float, float]:
    lat = max(-MAX_LAT, min(MAX_LAT, lat))
    return R * math.radians(lon), R * math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))


def points_to_crs(data: dict, crs: str) -> dict:
    """Heatmap answer with its ``[lon, lat, n]`` cell centres moved to ``crs`` (in place).

    For base maps drawn in GCJ-02 or BD-09 (see :mod:`layers.basemap`); WGS84 is returned
    as it is.
    """
    if crs == "wgs84" or not data.get("points"):
        return data
    import numpy as np

    from mapsvc.services.chinacrs import FROM_WGS84

    arr = np.asarray(data["points"], dtype=float)
    lon, lat = FROM_WGS84[crs](arr[:, 0], arr[:, 1])
    data["points"] = [
        [round(float(x), 5), round(float(y), 5), int(n)]
        for x, y, n in zip(lon, lat, arr[:, 2], strict=True)
    ]
    return data


def parse_zoom(value: Any) -> float:
    if value in (None, ""):
        return 13.0
    try:
        z = float(value)
    except (TypeError, ValueError):
        raise BadRequest(f"zoom must be a number from 0 to 22; got {str(value)[:20]!r}") from None
    if not 0 <= z <= 22:
        raise BadRequest(f"zoom must be a number from 0 to 22; got {z}")
    return z


@lru_cache(maxsize=1)
def _incidents() -> sa.Alias:
    """``incident i``: the relation the layers' queries read.

    One alias for every query: building an alias's column collection costs about a
    millisecond per request, and an alias is only a name for the table in a statement.
    """
    from mapsvc.models import Incident

    return Incident.__table__.alias("i")


def _filters(filters: dict[str, Any], session: Session | None = None) -> IncidentFilter:
    """The shared incident filters (an ``IncidentFilter``; the layers' bbox is their own
    argument, not a filter); with a session, unknown ids are a 404."""
    from mapsvc.core.errors import ValidationError
    from mapsvc.services.incidents import incident_filter

    try:
        return incident_filter({k: v for k, v in filters.items() if k != "bbox"}, session)
    except ValidationError as exc:
        raise BadRequest(exc.message, field=exc.details.get("field")) from None


def filter_choices(session: Session, day: dt.date | None = None) -> dict[str, list]:
    """What the map pages' filter form offers: communities, grids by community, chiefs.

    ``communities``: ``[(id, name)]``; ``grids``: ``[(community id, community name,
    [(id, code, name)])]`` (one ``<optgroup>`` each); ``chiefs``: ``[(staff id, name)]`` of
    the staff holding an alley-chief post on ``day`` (default today), from the assignments
    service, so a chief finds himself in the list the day he takes the post.
    """
    from mapsvc.services.patrol_routes import chiefs

    communities = [
        (int(i), n or c)
        for i, c, n in session.execute(
            sa.text("SELECT id, code, name FROM community ORDER BY name, code")
        )
    ]
    by_comm: dict[int | None, list[tuple[int, str, str]]] = {}
    for gid, code, name, cid in session.execute(
        sa.text(
            "SELECT id, code, name, community_id FROM grid WHERE valid_to IS NULL ORDER BY code, id"
        )
    ):
        by_comm.setdefault(cid, []).append((int(gid), code or "", name or ""))
    grids = [(cid, cname, by_comm[cid]) for cid, cname in communities if cid in by_comm]
    if None in by_comm:
        grids.append((None, "", by_comm[None]))
    people = sorted(
        ((int(sid), name or str(sid)) for sid, name, _n in chiefs(session, None, day)),
        key=lambda c: (c[1], c[0]),
    )
    return {"communities": communities, "grids": grids, "chiefs": people}


def fit_bounds(session: Session, filters: dict[str, Any]) -> list[list[float]] | None:
    """Leaflet bounds of the incidents matching ``filters`` (None when there are none).

    A chief opening the map with his own filter should see his incidents, not the whole
    district. The extent is taken from the indexed Web Mercator columns and grown to at
    least :data:`MIN_FIT_PX` pixels at zoom :data:`MAX_FIT_ZOOM`, so one incident does
    not zoom the map to the street level.
    """
    i = _incidents()
    row = session.execute(
        sa.select(
            sa.func.min(i.c.x_m), sa.func.min(i.c.y_m), sa.func.max(i.c.x_m), sa.func.max(i.c.y_m)
        ).where(*_filters(filters, session).clauses(i))
    ).one()
    if row[0] is None:
        return None
    return _grown_bounds(*(float(v) for v in row))


def incident_focus(session: Session, incident_id: int) -> dict[str, Any] | None:
    """One incident to centre the map on: ``{id, lon, lat, category, state, bounds}``.

    The incident list's "show on the map" opens the heatmap on that incident with its
    streets around it (the same minimum extent as :func:`fit_bounds`), the other incidents
    still drawn for context. None when there is no such incident.
    """
    row = session.execute(
        sa.text(
            "SELECT i.id, i.x_m, i.y_m, ST_X(i.geom), ST_Y(i.geom), i.category, i.state, "
            "c.name_zh, c.name_en "
            "FROM incident i LEFT JOIN incident_category c ON c.code = i.category "
            "WHERE i.id = :id"
        ),
        {"id": incident_id},
    ).one_or_none()
    if row is None:
        return None
    x, y = float(row[1]), float(row[2])
    return {
        "id": int(row[0]),
        "lon": float(row[3]),
        "lat": float(row[4]),
        "category": row[5],
        "state": row[6],
        "category_zh": row[7],
        "category_en": row[8],
        "bounds": _grown_bounds(x, y, x, y),
    }


def focus_marker(
    focus: dict[str, Any], locale: str = "zh_CN", crs: str = "wgs84"
) -> folium.FeatureGroup:
    """The drawing half of :func:`incident_focus`: a ring around the incident, labelled.

    The label (id, category and state in ``locale``) stays open, so the incident the list
    pointed to is found at a glance among the heat. ``crs``: the base map's datum
    (``gcj02`` / ``bd09`` move the ring with the tiles, like the other layers).
    """
    import folium

    lon, lat = focus["lon"], focus["lat"]
    if crs != "wgs84":
        from mapsvc.services.chinacrs import FROM_WGS84

        xs, ys = FROM_WGS84[crs]([lon], [lat])
        lon, lat = round(float(xs[0]), 6), round(float(ys[0]), 6)  # as collection_to_crs
    t = labels(locale)
    name = focus["category_en"] if locale.startswith("en") else focus["category_zh"]
    text = f"#{focus['id']} · {name or focus['category']} · {code_label(focus['state'], t)}"
    return folium.CircleMarker(
        [lat, lon],
        radius=14,
        color="#1f3a5f",
        weight=3,
        fill=False,
        tooltip=folium.Tooltip(esc(text), permanent=True),
    )


def _grown_bounds(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    """Leaflet bounds of a Web Mercator extent grown to :data:`MIN_FIT_PX` pixels at zoom
    :data:`MAX_FIT_ZOOM`."""
    least = MIN_FIT_PX * MERC_PX0 / 2.0**MAX_FIT_ZOOM
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    hx, hy = max(x1 - x0, least) / 2, max(y1 - y0, least) / 2
    (w, s), (e, n) = from_mercator(cx - hx, cy - hy), from_mercator(cx + hx, cy + hy)
    return [[s, w], [n, e]]


def _bin_rows(
    session: Session,
    bbox: BBox | None,
    filters: dict,
    keys: Mapping[str, str] | Callable[[float, float, float, float], Mapping[str, str]],
) -> list:
    """``(key..., count)`` of the filtered incidents in ``bbox``, grouped by ``keys``.

    ``keys`` names SQL expressions of ``i.x_m`` / ``i.y_m`` (Web Mercator, indexed), e.g.
    ``{"cx": "floor(i.x_m / 76.4)", ...}``, or is a function of the binned extent (Web
    Mercator ``x0, y0, x1, y1``) that returns them. Without a bbox the incidents' extent
    is used.
    """
    i = _incidents()
    where = _filters(filters, session).clauses(i)
    if bbox is not None:
        x0, y0 = to_mercator(bbox[0], bbox[1])
        x1, y1 = to_mercator(bbox[2], bbox[3])
    else:
        ext = session.execute(
            sa.select(
                sa.func.min(i.c.x_m),
                sa.func.max(i.c.x_m),
                sa.func.min(i.c.y_m),
                sa.func.max(i.c.y_m),
            )
        ).one()
        if ext[0] is None:
            return []
        x0, x1, y0, y1 = ext
    if callable(keys):
        keys = keys(x0, y0, x1, y1)
    # Two stripes, each aggregated on its own: PostgreSQL runs them in parallel (its
    # estimate of the number of cells is far too high for it to parallelise one GROUP BY);
    # the outer GROUP BY adds up a cell that straddles the split.
    split = (x0 + x1) / 2
    # (with filters, the planner's own choice - often another index - measured faster)
    stripes = [(x0, split), (split, x1)] if not where and x0 < split < x1 else [(x0, x1)]

    # The bounds and the keys' cell sizes are written into the SQL (floats computed here,
    # never request text): with bind parameters psycopg prepares a statement run five
    # times, and the generic plan PostgreSQL then picks for unknown bounds was measured
    # 40 % slower. The filters' values (from the request) are bound parameters.
    def number(v: float) -> sa.ColumnElement[float]:
        return sa.literal_column(repr(float(v)), sa.Float)

    columns = [sa.literal_column(sql).label(name) for name, sql in keys.items()]
    by_position = [sa.literal_column(str(k + 1)) for k in range(len(columns))]
    parts = []
    for k, (lo, hi) in enumerate(stripes):
        last = k == len(stripes) - 1
        parts.append(
            sa.select(*columns, sa.func.count().label("n"))
            .select_from(i)
            .where(
                i.c.x_m >= number(lo),
                i.c.x_m <= number(hi) if last else i.c.x_m < number(hi),
                i.c.y_m.between(number(y0), number(y1)),
                *where,
            )
            .group_by(*by_position)
        )
    cells = sa.union_all(*parts).subquery("s")
    cell_keys = [cells.c[name] for name in keys]
    return session.execute(sa.select(*cell_keys, sa.func.sum(cells.c.n)).group_by(*cell_keys)).all()


@register
class IncidentHeatmap(MapLayer):
    name = "heatmap"
    title_msgid = N_("Incident heatmap")

    def query(self, session: Session, bbox: BBox | None = None, **filters: Any) -> dict:
        """Counts per screen cell: ``{zoom, cell_px, total, max, scale_max, classes,
        points: [[lon, lat, n]]}``.

        ``scale_max`` is the count drawn in full colour (:func:`scale_top`); ``classes``
        the legend's ``[colour, lo, hi]`` (:func:`scale_classes`), so the page's script
        only shows them. ``filters``: ``zoom`` plus those of
        :func:`mapsvc.services.incidents.incident_filter`. Without a bbox the whole
        district is binned.
        """
        zoom = parse_zoom(filters.pop("zoom", None))
        filters.pop("bins", None)
        return _kept(session, self.name, bbox, zoom, filters, self._query)

    def _query(self, session: Session, bbox: BBox | None, zoom: float, filters: dict) -> dict:
        cell = cell_size(zoom)
        c = repr(float(cell))
        rows = _bin_rows(
            session, bbox, filters, {"cx": f"floor(i.x_m / {c})", "cy": f"floor(i.y_m / {c})"}
        )
        points = []
        for cx, cy, n in rows:
            lon, lat = from_mercator((cx + 0.5) * cell, (cy + 0.5) * cell)
            points.append([round(lon, 5), round(lat, 5), int(n)])  # 5 decimals: ~1 m
        return _binned(zoom, points, [p[2] for p in points])

    def draw(self, data: dict, locale: str = "zh_CN", **options: Any) -> HeatMap:
        from folium.plugins import HeatMap

        top = max(1, data.get("scale_max") or 1)
        return HeatMap(
            # cells above the scale's top are clipped to the full colour
            [[p[1], p[0], min(1.0, p[2] / top)] for p in data.get("points", [])],
            name=self.title(locale),
            min_opacity=0.15,
            max_zoom=1,  # cells are already per zoom: no extra fading when zoomed out
            # a blob of about half a cell blurred over the next one: a cell's colour is its
            # own count (as the legend says) with only the tails of its neighbours added;
            # wider blobs pile the district's many small counts up into one flat orange
            radius=options.get("radius", HEAT_RADIUS_PX),
            blur=options.get("blur", HEAT_BLUR_PX),
            gradient=GRADIENT,
        )

    def legend(self, data: dict, locale: str = "zh_CN") -> list[LegendItem]:
        """Incidents per cell for each colour (title: :func:`scale_title`)."""
        return scale_legend(max(1, data.get("scale_max") or 1), locale)


#: hexagon edge in screen pixels: the area of a :data:`CELL_PX` square, so counts per
#: hexagon and per square cell read on the same scale
HEX_EDGE_PX = CELL_PX * math.sqrt(2 / (3 * math.sqrt(3)))
SQRT3 = math.sqrt(3)


#: ``bins=`` of the heatmap API and page -> the layer that draws them
BINS_LAYERS = {"square": "heatmap", "hex": "incident_hexbins"}


def parse_bins(value: Any) -> str:
    """``square`` (heat blobs over square cells, the default) or ``hex`` (hexagons)."""
    if value in (None, ""):
        return "square"
    if value not in BINS_LAYERS:
        raise BadRequest(
            f"bins must be one of {', '.join(BINS_LAYERS)}; got {str(value)[:20]!r}",
            field="bins",
        )
    return str(value)


def hex_size(zoom: float) -> float:
    """Edge (= circumradius) of a hexagon in Web Mercator units at ``zoom``."""
    return MERC_PX0 / (2.0 ** float(zoom)) * HEX_EDGE_PX


def hex_of_brick(cx: np.ndarray, cy: np.ndarray, left: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``ST_HexagonGrid`` cell ``(i, j)`` of a point, from its brick and side.

    ``ST_HexagonGrid(size, ...)`` lays flat-topped hexagons out in columns ``i`` at
    ``x = 1.5 size i`` and rows ``j`` at ``y = sqrt(3) size (j + i mod 2 / 2)`` (odd columns
    half a row up). Cut the plane into bricks of ``1.5 size`` by ``sqrt(3) size / 2``:
    brick ``(cx, cy)`` holds parts of two hexagons only, column ``cx``'s on the left and
    column ``cx + 1``'s on the right, split by one slanted edge. With ``fx, fy`` the
    point's place in its brick (0..1), that edge is ``3 fx + fy = 2`` when column ``cx``'s
    centre line is the brick's bottom (``cx + cy`` even) and ``3 fx - fy = 1`` when it is
    the top; ``left`` is whether the point is on column ``cx``'s side of it (SQL tests the
    one edge of the brick's parity, see :class:`IncidentHexbins`). The hexagon's centre
    line is brick row ``cy`` or ``cy + 1``, whichever has the parity of ``i``, so
    ``j = floor((cy + 1 - i mod 2) / 2)``.

    SQL computes the brick and the side per point (a few multiplications and floors,
    packed into one integer grouping key), and this maps the few thousand groups to cells
    at once (numpy arrays in, arrays out; plain ints work too): a million points are never
    joined to hexagon polygons. (Joining ``ST_HexagonGrid`` to the points with
    ``ST_Contains`` is exact too, and is what the tests compare with, but with no spatial
    index in EPSG:3857 it took 10.8 s for the demo's 6,000 incidents.)
    """
    i = cx + 1 - left
    return i, (cy + 1 - i % 2) // 2


#: ST_Hexagon's vertices around its centre, in edge lengths (flat-topped, closed ring)
HEX_RING = (
    (-1.0, 0.0),
    (-0.5, -SQRT3 / 2),
    (0.5, -SQRT3 / 2),
    (1.0, 0.0),
    (0.5, SQRT3 / 2),
    (-0.5, SQRT3 / 2),
    (-1.0, 0.0),
)


def _rings_around(cx: np.ndarray, cy: np.ndarray, size: float, digits: int) -> list:
    """WGS84 rings ``[[lon, lat] * 7]`` of hexagons of ``size`` around Web Mercator centres."""
    import numpy as np

    off = np.asarray(HEX_RING) * size
    x = cx[:, None] + off[None, :, 0]
    y = cy[:, None] + off[None, :, 1]
    lon = np.degrees(x / R)
    lat = np.degrees(2 * np.arctan(np.exp(y / R)) - math.pi / 2)
    return np.round(np.stack([lon, lat], axis=-1), digits).tolist()


def hex_centres(ij: np.ndarray, size: float) -> tuple[np.ndarray, np.ndarray]:
    """Web Mercator centres ``(x, y)`` of the ``ST_HexagonGrid`` cells ``ij`` (n x 2)."""
    import numpy as np

    ij = np.asarray(ij, dtype=float).reshape(-1, 2)
    return 1.5 * size * ij[:, 0], SQRT3 * size * (ij[:, 1] + 0.5 * np.mod(ij[:, 0], 2))


def hexagon_rings(cells: list[tuple[int, int]], size: float, digits: int = 5) -> list:
    """WGS84 rings ``[[lon, lat] * 7]`` of the ``ST_HexagonGrid`` cells ``(i, j)`` of ``size``.

    The same polygons as PostGIS ``ST_Hexagon(size, i, j)`` in EPSG:3857, computed here
    with numpy for a few thousand cells at once (the tests compare them with PostGIS's).
    ``static/js/heatmap.js`` (``hexFeatures``) builds the same rings in the browser.
    """
    if not len(cells):
        return []
    cx, cy = hex_centres(cells, size)
    return _rings_around(cx, cy, size, digits)


def hex_cells(data: dict) -> list[tuple[int, int, int]]:
    """``[(i, j, n)]`` of a hexagon answer: its ``cells`` offsets plus its ``origin``."""
    i0, j0 = data.get("origin") or (0, 0)
    return [(i0 + di, j0 + dj, n) for di, dj, n in data.get("cells", [])]


def hexagon_outlines(data: dict, digits: int | None = None) -> list:
    """The rings of a hexagon answer's cells, in the answer's coordinates.

    WGS84 answers: the ``ST_Hexagon`` of each cell (:func:`hexagon_rings`). Answers moved
    to a Chinese datum (:func:`hexbins_to_crs`, with ``centres``): a hexagon of the same
    size in Web Mercator around each moved centre - the datum shift is smooth, so the
    moved outline is the outline of the moved centre to well under a pixel. This is what
    the first paint draws; ``static/js/heatmap.js`` builds the same outlines on refresh.
    """
    import numpy as np

    if not data.get("cells"):
        return []
    size = float(data["hex_size"])
    if digits is None:
        # 5 decimals (~1 m) is under a tenth of a pixel up to zoom 16; neighbours share
        # vertices computed alike, so they meet without slivers
        digits = 5 if data.get("zoom", 13) < 17 else 6
    if data.get("centres"):
        lonlat = np.asarray(data["centres"], dtype=float)
        lat = np.clip(lonlat[:, 1], -MAX_LAT, MAX_LAT)
        cx = R * np.radians(lonlat[:, 0])
        cy = R * np.log(np.tan(math.pi / 4 + np.radians(lat) / 2))
        return _rings_around(cx, cy, size, digits)
    return hexagon_rings([c[:2] for c in hex_cells(data)], size, digits)


def hexbins_to_crs(data: dict, crs: str) -> dict:
    """Hexagon answer for a base map in ``crs`` (in place): ``centres`` added.

    The cells stay the WGS84 grid's (their counts do not change); ``centres`` holds each
    cell's centre moved to GCJ-02 or BD-09 (``[lon, lat]``, 6 decimals, ~0.1 m), and the
    outline is drawn around it (:func:`hexagon_outlines`, ``hexFeatures`` in the page's
    script). WGS84 answers are returned as they are: the cell indices are enough.
    """
    if crs == "wgs84" or not data.get("cells"):
        return data
    import numpy as np

    from mapsvc.services.chinacrs import FROM_WGS84

    cells = hex_cells(data)
    cx, cy = hex_centres([c[:2] for c in cells], float(data["hex_size"]))
    lon = np.degrees(cx / R)
    lat = np.degrees(2 * np.arctan(np.exp(cy / R)) - math.pi / 2)
    lon, lat = FROM_WGS84[crs](lon, lat)
    data["centres"] = np.round(np.stack([lon, lat], axis=-1), 6).tolist()
    data["crs"] = crs
    return data


@register
class IncidentHexbins(MapLayer):
    """Incident counts in hexagons of a fixed size on screen, coloured on the heat scale.

    The same filters, bbox and zoom as :class:`IncidentHeatmap`; the cells are the
    hexagons of PostGIS ``ST_HexagonGrid`` in EPSG:3857 (:func:`hex_of_brick` says how
    points are counted into them, :func:`hexagon_rings` draws them) with the area of a
    square cell, and each is filled with the colour of its count (:func:`class_colour`),
    so unlike heat blobs a colour reads exactly off the legend.
    """

    name = "incident_hexbins"
    title_msgid = N_("Incident hexagons")

    def query(self, session: Session, bbox: BBox | None = None, **filters: Any) -> dict:
        """Counts per hexagon and the scale: ``{bins, zoom, cell_px, hex_edge_px, hex_size,
        origin, cells, total, max, scale_max, classes}``.

        ``cells`` is ``[[i - origin[0], j - origin[1], n]]`` (sorted by ``i, j``): the
        ``ST_HexagonGrid(hex_size, ...)`` cell ``(i, j)`` in EPSG:3857 and its incidents.
        Indices, not polygons: a polygon answer was ten times larger (340 KB of GeoJSON
        for a district view, 1.3 MB one zoom closer) and took a third of the time to build
        and serialise; the page builds each outline from its indices and ``hex_size``
        (:func:`hexagon_outlines`, ``hexFeatures`` in ``static/js/heatmap.js``).
        """
        zoom = parse_zoom(filters.pop("zoom", None))
        filters.pop("bins", None)
        return _kept(session, self.name, bbox, zoom, filters, self._query)

    def _query(self, session: Session, bbox: BBox | None, zoom: float, filters: dict) -> dict:
        import numpy as np

        size = hex_size(zoom)
        k1, k2 = 1.0 / (1.5 * size), 2.0 / (SQRT3 * size)
        pack: dict[str, int] = {}

        def brick_key(x0: float, y0: float, x1: float, y1: float) -> dict[str, str]:
            # one integer key per brick and side: ((cx - cx0) * rows + cy - cy0) * 2 + left.
            # Grouping a million points by one number instead of four columns was measured
            # 15-30 % faster; integer floors and testing only the edge of the brick's parity
            # (half the groups of testing both) another 10-20 %.
            pack["cx0"], pack["cy0"] = math.floor(x0 * k1), math.floor(y0 * k2)
            pack["rows"] = math.floor(y1 * k2) - pack["cy0"] + 1
            span = (math.floor(x1 * k1) - pack["cx0"] + 1) * pack["rows"] * 2
            if span > 2**52:  # beyond exact integers in float8 (and far beyond any view)
                raise BadRequest(
                    f"the view is too large for hexagons at zoom {zoom:g}: zoom out or "
                    "send a smaller bbox",
                    field="bbox",
                )
            # floors fit int4 at every zoom up to 22 (|x| < 2.1e7 m, size > 0.27 m)
            a, b = f"(i.x_m * {k1!r})", f"(i.y_m * {k2!r})"
            fa, fb = f"floor({a})::int", f"floor({b})::int"
            fx, fy = f"({a} - floor({a}))", f"({b} - floor({b}))"
            return {
                "k": f"({fa} - {pack['cx0']})::int8 * {2 * pack['rows']} "
                f"+ ({fb} - {pack['cy0']}) * 2 "
                f"+ CASE WHEN ({fa} + {fb}) & 1 = 0 THEN (3 * {fx} + {fy} < 2)::int "
                f"ELSE (3 * {fx} - {fy} < 1)::int END"
            }

        rows = _bin_rows(session, bbox, filters, brick_key)
        out = {"bins": "hex", "hex_edge_px": round(HEX_EDGE_PX, 2), "hex_size": size}
        if not rows:
            return {**out, **_binned(zoom, [], []), "origin": [0, 0], "cells": []}
        # plain tuples: numpy probing SQLAlchemy rows for array attributes took 0.4 s
        kn = np.array([(int(k), int(n)) for k, n in rows], dtype=np.int64)
        brick, left = np.divmod(kn[:, 0], 2)
        col, row = np.divmod(brick, pack["rows"])
        i, j = hex_of_brick(col + pack["cx0"], row + pack["cy0"], left)
        i0, j0 = int(i.min()), int(j.min())
        key = (i - i0) * (int(j.max()) - j0 + 1) + (j - j0)
        uniq, where = np.unique(key, return_inverse=True)
        counts = np.bincount(where.ravel(), weights=kn[:, 1]).astype(np.int64)
        di, dj = np.divmod(uniq, int(j.max()) - j0 + 1)
        cells = np.stack([di, dj, counts], axis=-1).tolist()
        binned = _binned(zoom, [], counts.tolist())
        binned.pop("points")
        return {**out, **binned, "origin": [i0, j0], "cells": cells}

    def features(self, data: dict) -> dict:
        """The answer as a GeoJSON FeatureCollection of hexagons (``n``, ``i``, ``j``)."""
        return {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "geometry": {"type": "Polygon", "coordinates": [ring]},
                    "properties": {"n": n, "i": i, "j": j},
                }
                for (i, j, n), ring in zip(hex_cells(data), hexagon_outlines(data), strict=True)
            ],
        }

    def draw(self, data: dict, locale: str = "zh_CN", **options: Any) -> folium.GeoJson:
        """The first paint: the outlines the page's script draws on refresh, filled."""
        import folium

        top = max(1, data.get("scale_max") or 1)
        fc = self.features(data)
        for f in fc["features"]:
            f["properties"]["fill"] = class_colour(f["properties"]["n"], top)
        return folium.GeoJson(
            fc,
            name=self.title(locale),
            style_function=lambda f: {
                "fillColor": f["properties"]["fill"],
                "color": f["properties"]["fill"],
                "weight": 0.5,
                "fillOpacity": 0.75,
            },
            # folium cannot build a tooltip for an empty collection (a filter matching
            # nothing in view)
            tooltip=folium.GeoJsonTooltip(
                fields=["n"], aliases=[labels(locale)["Incidents per hexagon"]], localize=True
            )
            if fc["features"]
            else None,
        )

    def legend(self, data: dict, locale: str = "zh_CN") -> list[LegendItem]:
        """Incidents per hexagon for each colour (the heat scale's classes)."""
        return scale_legend(max(1, data.get("scale_max") or 1), locale)


#: binned answers of this process (each web worker has its own), see :func:`_kept`
BINS_CACHE = ResultCache(64)


def _kept(
    session: Session,
    layer: str,
    bbox: BBox | None,
    zoom: float,
    filters: dict[str, Any],
    compute: Callable[[Session, BBox | None, float, dict], dict],
) -> dict:
    """``compute(session, bbox, zoom, filters)``, or the answer kept for the same view.

    A district view over a million incidents takes a quarter of a second to bin, and the
    map pages ask for the same views again and again (every pan back, every user opening
    the page). A binned answer depends on the incidents (and, for ``subdistrict``, the
    communities) alone, so it is kept with the database's write state and used while no
    transaction has written since (:mod:`mapsvc.services.result_cache`): a new incident, a
    transition or an import is in the very next answer, in every process. ``overdue``
    moves with the clock, so those views are always computed. The filters are parsed (and
    their ids checked) first, so a bad one is the same error kept or not; they are part of
    the key as parsed, so ``class=`` and ``severity=`` views share an answer.

    A shallow copy is returned: callers replace the top-level values (``points``, a
    ``centres`` list), never change the kept lists in place.
    """
    parsed = _filters(filters, session)
    state = None if parsed.overdue else write_state(session)
    if state is None:
        return compute(session, bbox, zoom, filters)
    key = (
        database_key(session),
        layer,
        None if bbox is None else tuple(float(v) for v in bbox),
        float(zoom),
        parsed,
    )
    return dict(BINS_CACHE.get(key, state, math.inf, lambda: compute(session, bbox, zoom, filters)))


def _binned(zoom: float, points: list, counts: list[int]) -> dict:
    """The heatmap answer around ``points``: totals, the colour scale and its classes."""
    top = scale_top(counts)
    return {
        "zoom": zoom,
        "cell_px": CELL_PX,
        "total": int(sum(counts)),
        "max": int(max(counts, default=0)),
        "scale_max": top,
        "classes": [list(c) for c in scale_classes(top)],
        "points": points,
    }


@register
class IncidentChoropleth(MapLayer):
    name = "incident_choropleth"
    title_msgid = N_("Incidents per 1,000 residents")

    def query(self, session: Session, bbox: BBox | None = None, **filters: Any) -> dict:
        """GeoJSON of grids with count, population, per_1000 and a class (0..k-1)."""
        from mapsvc.models import Grid

        i = _incidents()
        n = (
            sa.select(i.c.grid_id, sa.func.count().label("n"))
            .where(i.c.grid_id.is_not(None), *_filters(filters, session).clauses(i))
            .group_by(i.c.grid_id)
            .cte("n")
        )
        g = Grid.__table__.alias("g")
        query = (
            sa.select(
                g.c.id,
                g.c.code,
                g.c.name,
                g.c.population,
                sa.func.coalesce(n.c.n, 0).label("n"),
                sa.func.ST_AsGeoJSON(
                    sa.func.ST_SimplifyPreserveTopology(g.c.geom, 0.00002), 6
                ).label("gj"),
            )
            .select_from(g.outerjoin(n, n.c.grid_id == g.c.id))
            .where(g.c.valid_to.is_(None))
            .order_by(g.c.id)
        )
        if bbox is not None:  # the grids whose bounding box meets the view's
            query = query.where(g.c.geom.op("&&")(sa.func.ST_MakeEnvelope(*bbox, 4326)))
        rows = session.execute(query).all()
        import json

        rates = [1000.0 * r.n / r.population if r.population else None for r in rows]
        bins = classify([v for v in rates if v is not None])
        features = []
        for r, rate in zip(rows, rates, strict=True):
            cls = None if rate is None else _class_of(rate, bins)
            features.append(
                {
                    "type": "Feature",
                    "geometry": json.loads(r.gj),
                    "properties": {
                        "id": r.id,
                        "code": r.code,
                        "name": r.name,
                        "population": r.population,
                        "count": int(r.n),
                        "per_1000": None if rate is None else round(rate, 2),
                        "class": cls,
                    },
                }
            )
        return {"type": "FeatureCollection", "features": features, "bins": bins}

    def draw(self, data: dict, locale: str = "zh_CN", **options: Any) -> folium.GeoJson:
        import folium

        t = labels(locale)
        for f in data["features"]:
            p = f["properties"]
            rate = (
                f"{p['per_1000']} {esc(t['per 1,000 residents'])}"
                if p["per_1000"] is not None
                else esc(t["No residents"])
            )
            p["tip"] = (
                f"<b>{esc(t['Grid'])} {esc(p['name'] or p['code'])}</b> ({esc(p['code'])})<br>"
                f"{p['count']} {esc(t['incidents'])} · {esc(t['Population'])} "
                f"{esc(p['population'])}<br>{rate}"
            )
            p["fill"] = NO_DATA_COLOUR if p["class"] is None else CLASS_COLOURS[p["class"]]
        return folium.GeoJson(
            data,
            name=self.title(locale),
            style_function=lambda f: {
                "fillColor": f["properties"]["fill"],
                "color": "#555",
                "weight": 0.6,
                "fillOpacity": 0.75,
            },
            highlight_function=lambda f: {"weight": 2.5, "color": "#102a43"},
            # (none for an empty collection: no grids loaded yet)
            tooltip=folium.GeoJsonTooltip(fields=["tip"], labels=False)
            if data["features"]
            else None,
        )

    def legend(self, data: dict, locale: str = "zh_CN") -> list[LegendItem]:
        t = labels(locale)
        bins = data.get("bins") or []
        items, low = [], 0.0
        for k, upper in enumerate(bins):
            items.append(LegendItem(CLASS_COLOURS[k], f"{low:.1f} – {upper:.1f}"))
            low = upper
        items.append(LegendItem(NO_DATA_COLOUR, t["No residents"]))
        return items


def classify(values: list[float], k: int = len(CLASS_COLOURS)) -> list[float]:
    """Upper bounds of up to ``k`` classes (mapclassify Fisher-Jenks; quantiles if few)."""
    import mapclassify
    import numpy as np

    distinct = sorted(set(values))
    if not distinct:
        return []
    if len(distinct) <= k:
        return [float(v) for v in distinct]
    arr = np.asarray(values, dtype=float)
    try:
        with warnings.catch_warnings():  # "Numba not installed": fine for a few hundred grids
            warnings.simplefilter("ignore", UserWarning)
            c = mapclassify.FisherJenks(arr, k=k)
    except Exception:  # noqa: BLE001 - degenerate data: fall back to quantiles
        c = mapclassify.Quantiles(arr, k=k)
    return [float(b) for b in c.bins]


def _class_of(value: float, bins: list[float]) -> int:
    for k, upper in enumerate(bins):
        if value <= upper + 1e-9:
            return k
    return len(bins) - 1


@register
class OverdueIncidents(MapLayer):
    name = "overdue_incidents"
    title_msgid = N_("Overdue incidents")
    limit = 3000

    def query(self, session: Session, bbox: BBox | None = None, **filters: Any) -> dict:
        """Open incidents past due (most overdue first, at most :attr:`limit`), as GeoJSON."""
        filters = {k: v for k, v in filters.items() if k != "zoom"}
        from mapsvc.models import IncidentCategory

        i = _incidents()
        c = IncidentCategory.__table__.alias("c")
        where = _filters({**filters, "overdue": True}, session).clauses(i)
        if bbox is not None:  # bounding boxes meet: the points in the view
            where.append(i.c.geom.op("&&")(sa.func.ST_MakeEnvelope(*bbox, 4326)))
        hours_over = sa.extract("epoch", sa.func.now() - i.c.due_at) / 3600.0
        rows = session.execute(
            sa.select(
                i.c.id,
                i.c.category,
                c.c.name_zh,
                c.c.name_en,
                i.c.severity,
                i.c.state,
                i.c.reported_at,
                i.c.due_at,
                sa.func.ST_X(i.c.geom).label("lon"),
                sa.func.ST_Y(i.c.geom).label("lat"),
                hours_over.label("hours_over"),
            )
            .select_from(i.outerjoin(c, c.c.code == i.c.category))
            .where(*where)
            .order_by(i.c.due_at)
            .limit(self.limit)
        ).all()
        return {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [r.lon, r.lat]},
                    "properties": {
                        "id": r.id,
                        "category": r.category,
                        "category_zh": r.name_zh,
                        "category_en": r.name_en,
                        "severity": r.severity,
                        "state": r.state,
                        "reported_at": r.reported_at.isoformat(),
                        "due_at": r.due_at.isoformat(),
                        "hours_over": round(float(r.hours_over), 1),
                    },
                }
                for r in rows
            ],
        }

    def draw(self, data: dict, locale: str = "zh_CN", **options: Any) -> folium.FeatureGroup:
        import folium

        t = labels(locale)
        en = locale.startswith("en")
        group = folium.FeatureGroup(name=self.title(locale), show=options.get("show", True))
        for f in data["features"]:
            p = f["properties"]
            lon, lat = f["geometry"]["coordinates"]
            cat = (p["category_en"] if en else p["category_zh"]) or p["category"]
            tip = (
                f"<b>#{p['id']} {esc(cat)}</b><br>{esc(t['Class'])}: "
                f"{esc(code_label(p['severity'], t))} · "
                f"{esc(t['State'])}: {esc(code_label(p['state'], t))}<br>{esc(t['Due'])}: "
                f"{esc(p['due_at'][:16])}<br>{esc(t['overdue by'])} {p['hours_over']} "
                f"{esc(t['hours'])}"
            )
            folium.CircleMarker(
                [lat, lon],
                radius=3,
                color=OVERDUE_COLOUR,
                weight=0.5,
                fill=True,
                fill_opacity=0.7,
                tooltip=folium.Tooltip(tip, sticky=True),
            ).add_to(group)
        return group

    def legend(self, data: dict, locale: str = "zh_CN") -> list[LegendItem]:
        t = labels(locale)
        return [LegendItem(OVERDUE_COLOUR, f"{t['Overdue incidents']} ({len(data['features'])})")]


def _heatmap_script_class() -> type:
    """Build the folium element lazily (folium is imported only when a page is drawn)."""
    import json

    from branca.element import MacroElement
    from folium.elements import JSCSSMixin
    from jinja2 import Template

    class _HeatmapScript(JSCSSMixin, MacroElement):
        """Loads static/js/heatmap.js and hands it the map and the heat layer."""

        _template = Template(
            """{% macro script(this, kwargs) %}
            MapsvcHeatmap.init({{ this._parent.get_name() }},
                {{ this.heat_name }}, {{ this.options_json }});
            {% endmacro %}"""
        )
        default_js = [("mapsvc_heatmap", "/static/js/heatmap.js")]

        def __init__(self, heat: HeatMap | None, options: dict) -> None:
            super().__init__()
            self._name = "MapsvcHeatmap"
            self.heat_name = heat.get_name() if heat is not None else "null"
            self.options_json = json.dumps(options, ensure_ascii=False).replace("</", "<\\/")

    return _HeatmapScript


def HeatmapScript(heat: HeatMap | None, options: dict) -> folium.MacroElement:  # noqa: N802
    """Folium element that wires ``static/js/heatmap.js`` to the map and its heat layer."""
    return _heatmap_script_class()(heat, options)
