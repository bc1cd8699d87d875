"""Boundary layers of the coverage map: district, communities, grids and alley segments.

Query half: one PostGIS statement per layer returning a GeoJSON FeatureCollection with the
geodesic ``area_km2`` / ``length_m`` from the generated columns, the names a tooltip needs
(community, grid head, alley chief and deputy through :mod:`mapsvc.services.assignments`),
filtered by a bounding box (``&&`` on the GiST index, then ``ST_Intersects``) and, when
the caller gives the map zoom, simplified to half a screen pixel so a district-wide view
does not ship centimetre detail nobody can see.

Drawing half: folium ``GeoJson`` layers whose tooltips are built from escaped text only
(folium's ``GeoJsonTooltip`` puts values into ``innerHTML`` unescaped, so the raw names are
never shown through it). The coverage page embeds the two small layers (district,
communities) and lets ``static/js/map.js`` fetch grids and segments for the visible area;
the same styles reach the browser through :func:`client_config`, so Python and JS draw alike.

Grids are coloured by community with a greedy colouring of the community adjacency graph
(neighbours never share a colour), computed over all communities so a grid keeps its colour
whatever bounding box it was fetched with.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from layers.base import LegendItem, MapLayer, esc, render_partial
from layers.registry import register
from mapsvc.core.errors import BadRequest
from mapsvc.core.i18n import N_, translator
from mapsvc.core.values import BBox

if TYPE_CHECKING:
    import folium
    from branca.element import MacroElement
    from folium.map import Layer

#: qualitative fill colours for grids (ColorBrewer Set3 without its red, which means
#: "no chief" on this map)
PALETTE = (
    "#8dd3c7",
    "#fdb462",
    "#bebada",
    "#80b1d3",
    "#b3de69",
    "#fccde5",
    "#ffed6f",
    "#bc80bd",
    "#ccebc5",
    "#d9c8a9",
)
STYLES: dict[str, dict[str, Any]] = {
    "district": {"color": "#102a43", "weight": 4, "fill": False, "opacity": 0.9},
    "community": {"color": "#0b2545", "weight": 2.5, "fill": False, "opacity": 0.95},
    "grid": {"color": "#ffffff", "weight": 1, "fillOpacity": 0.62, "opacity": 1},
    "grid_hover": {"color": "#102a43", "weight": 3, "fillOpacity": 0.8},
    "segment": {"color": "#66727f", "weight": 2, "opacity": 0.8},
    "segment_no_chief": {"color": "#d7191c", "weight": 4.5, "opacity": 0.95},
    "segment_hover": {"weight": 7, "opacity": 1},
    # zoomed out (below FAR_ZOOM) the street mesh would hide the grids: thin, light lines
    "segment_far": {"color": "#66727f", "weight": 1, "opacity": 0.5},
    "segment_no_chief_far": {"color": "#d7191c", "weight": 3, "opacity": 0.95},
}
#: zoom below which segments are drawn thin and community labels thinned out
FAR_ZOOM = 15
#: Leaflet panes (z-index) so grids fetched later still lie under the outlines and lines
PANES = {
    "mapsvc-grids": 410,
    "mapsvc-communities": 420,
    "mapsvc-district": 425,
    "mapsvc-segments": 430,
}
#: message ids (English; translated through the project's catalogues)
MESSAGES = (
    N_("District"),
    N_("Communities"),
    N_("Community"),
    N_("Subdistrict"),
    N_("Grids"),
    N_("Grid"),
    N_("Alley segments"),
    N_("Alley segment"),
    N_("Code"),
    N_("Chief"),
    N_("Deputy chief"),
    N_("Grid head"),
    N_("No chief assigned"),
    N_("No grid head"),
    N_("Area (km²)"),
    N_("Length (m)"),
    N_("Population"),
    N_("Households"),
    N_("Enterprises"),
    N_("Number of grids"),
    N_("District boundary"),
    N_("Community boundary"),
    N_("Grids (coloured by community)"),
    N_("Alley segment with a chief"),
    N_("Coverage map"),
    N_("Loading map data…"),
    N_("Could not load map data"),
    N_("Zoom in to see alley segments"),
    N_("{n} communities"),
    N_("{n} grids"),
    N_("{n} alley segments"),
    N_("{n} segments without a chief"),
)
#: below this zoom the page does not fetch alley segments (they would be a few pixels long)
SEGMENT_MIN_ZOOM = 12


# --------------------------------------------------------------------------- translation


def labels(locale: str = "zh_CN") -> dict[str, str]:
    """The layer's UI strings in ``locale`` (message id -> text), for Python and ``map.js``.

    Read through :func:`mapsvc.core.i18n.translator`, the catalogues the pages use.
    """
    _ = translator(locale)
    return {m: _(m) for m in MESSAGES}


# --------------------------------------------------------------------------- query helpers


def zoom_detail(zoom: float | None) -> tuple[float | None, int]:
    """Simplification tolerance (degrees) and GeoJSON decimals for a web-map zoom.

    Half a screen pixel at ``zoom`` (256-pixel tiles) is invisible, so simplifying to it
    and rounding coordinates to at most a fifth of a pixel loses nothing on screen. This is
    display detail only; no area or length is ever computed from it. ``None`` keeps full
    detail (6 decimals, ~0.1 m).
    """
    if zoom is None:
        return None, 6
    pixels_per_degree = 256 * 2**zoom / 360.0
    digits = min(7, max(3, math.ceil(math.log10(pixels_per_degree))))
    return 0.5 / pixels_per_degree, digits


def parse_zoom(text: str | None) -> float | None:
    """Validate a ``zoom`` request parameter (0-22) or return None when absent."""
    if text in (None, ""):
        return None
    try:
        zoom = float(text)
    except ValueError:
        raise BadRequest(f"zoom must be a number; got {text[:40]!r}") from None
    if not 0 <= zoom <= 22:
        raise BadRequest(f"zoom must be between 0 and 22; got {text[:40]!r}")
    return zoom


def _geojson(geom: Any, zoom: float | None) -> sa.ColumnElement[str]:
    tol, digits = zoom_detail(zoom)
    if tol is not None:
        geom = sa.func.ST_SimplifyPreserveTopology(geom, tol)
    return sa.func.ST_AsGeoJSON(geom, digits).label("geometry")


def _in_bbox(geom: Any, bbox: BBox | None) -> sa.ColumnElement[bool]:
    if bbox is None:
        return sa.true()
    env = sa.func.ST_MakeEnvelope(*bbox, 4326)
    return sa.and_(geom.op("&&")(env), sa.func.ST_Intersects(geom, env))


def _collection(session: Session, stmt: sa.Select) -> dict:
    """Run ``stmt`` (columns ``id``, ``code``, ``geometry`` and properties) -> FeatureCollection.

    PostgreSQL assembles the whole collection (``json_agg`` of ``json_build_object``), so
    Python parses one JSON document instead of building thousands of dicts row by row: the
    segments of a district come back in a third of the time.
    """
    from sqlalchemy.dialects.postgresql import JSON, aggregate_order_by

    t = stmt.subquery("t")
    props: list[Any] = []
    for col in t.c:
        if col.key != "geometry":
            props += [sa.literal(col.key), col]
    feature = sa.func.json_build_object(
        "type",
        "Feature",
        "id",
        t.c.id,
        "geometry",
        sa.cast(t.c.geometry, JSON),
        "properties",
        sa.func.json_build_object(*props),
    )
    features = sa.func.coalesce(
        sa.func.json_agg(aggregate_order_by(feature, t.c.code)), sa.text("'[]'::json")
    )
    doc = session.scalar(
        sa.select(sa.func.json_build_object("type", "FeatureCollection", "features", features))
    )
    return doc if isinstance(doc, dict) else json.loads(doc)


def _num(col: Any, digits: int, name: str | None = None) -> sa.ColumnElement[float]:
    """A float column rounded for JSON (areas to 1 m², lengths to 1 cm, points to 0.1 m)."""
    return sa.func.round(sa.cast(col, sa.Numeric), digits).label(name or col.key)


def community_colours(session: Session) -> dict[int, str]:
    """Community id -> fill colour such that neighbouring communities differ.

    Greedy colouring, largest degree first (Welsh-Powell), over the adjacency of all
    communities (shared boundary or overlap), ties broken by code so the result is stable;
    each community takes the least used colour its neighbours leave free. With more than
    ``len(PALETTE)`` neighbours (never seen in real districts) a colour may repeat.
    """
    from mapsvc.models import Community

    a, b = aliased(Community), aliased(Community)
    codes = dict(session.execute(sa.select(Community.id, Community.code)).all())
    pairs = session.execute(
        sa.select(a.id, b.id).where(
            a.id < b.id, a.geom.op("&&")(b.geom), sa.func.ST_Intersects(a.geom, b.geom)
        )
    ).all()
    neighbours: dict[int, set[int]] = {cid: set() for cid in codes}
    for x, y in pairs:
        neighbours[x].add(y)
        neighbours[y].add(x)
    order = sorted(codes, key=lambda c: (-len(neighbours[c]), codes[c]))
    colour_of: dict[int, int] = {}
    uses = [0] * len(PALETTE)
    for cid in order:
        taken = {colour_of[n] for n in neighbours[cid] if n in colour_of}
        free = [i for i in range(len(PALETTE)) if i not in taken]
        # the least used free colour, so the whole palette shows, not three colours
        i = min(free, key=lambda k: (uses[k], k)) if free else len(colour_of) % len(PALETTE)
        colour_of[cid] = i
        uses[i] += 1
    return {cid: PALETTE[i] for cid, i in colour_of.items()}


def _tip(title: str, code: str | None, lines: list[tuple[str, Any]], extra: str = "") -> str:
    """Tooltip HTML from data: every value escaped here, labels are ours (escaped too)."""
    head = f"<b>{esc(title)}</b>" + (f" <small>{esc(code)}</small>" if code else "")
    body = "".join(f"<br>{esc(label)}: {esc(value)}" for label, value in lines)
    return head + body + extra


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


class _Boundary(MapLayer):
    """Shared drawing for the boundary layers: a folium GeoJson with escaped tooltips."""

    style_key = ""

    def tooltip(self, props: dict, lab: dict[str, str]) -> str:
        raise NotImplementedError

    def style(self, props: dict) -> dict:
        return dict(STYLES[self.style_key])

    def draw(self, data: dict, locale: str = "zh_CN", **options: Any) -> folium.GeoJson:
        """A folium ``GeoJson`` of ``data``; options: ``pane``, ``show``, ``name``.

        Only the escaped tooltip HTML and the style travel to the page as properties of
        the drawn features, so a name can never reach the DOM unescaped.
        """
        import folium

        lab = labels(locale)
        features = []
        for f in data["features"]:
            p = f["properties"]
            features.append(
                {
                    "type": "Feature",
                    "id": f.get("id"),
                    "geometry": f["geometry"],
                    "properties": {
                        "tip": self.tooltip(p, lab),
                        "style": self.style(p),
                        # raw name for JS that sets it with textContent (labels);
                        # folium embeds data with |tojson, which escapes "<"
                        "name": p.get("name"),
                        **{k: p[k] for k in ("label_lon", "label_lat", "area_km2") if k in p},
                    },
                }
            )
        kwargs = {"pane": options["pane"]} if options.get("pane") else {}
        hover = STYLES.get(f"{self.style_key}_hover")
        return folium.GeoJson(
            {"type": "FeatureCollection", "features": features},
            name=options.get("name") or self.title(locale),
            show=options.get("show", True),
            style_function=lambda f: f["properties"]["style"],
            highlight_function=(lambda f: hover) if hover else None,
            # folium cannot build a tooltip for an empty collection
            tooltip=folium.GeoJsonTooltip(
                fields=["tip"], labels=False, sticky=True, class_name="mapsvc-tip"
            )
            if features
            else None,
            **kwargs,
        )


# --------------------------------------------------------------------------- layers


@register
class DistrictLayer(_Boundary):
    """The district outline(s), with geodesic area."""

    name = "district"
    title_msgid = N_("District")
    style_key = "district"

    def query(
        self, session: Session, bbox: BBox | None = None, *, zoom: float | None = None, **_: Any
    ) -> dict:
        """Districts intersecting ``bbox``: code, name, area_km2."""
        from mapsvc.models import District as D

        stmt = (
            sa.select(D.id, D.code, D.name, _num(D.area_km2, 6), _geojson(D.geom, zoom))
            .where(_in_bbox(D.geom, bbox))
            .order_by(D.code)
        )
        return _collection(session, stmt)

    def tooltip(self, p: dict, lab: dict[str, str]) -> str:
        return _tip(p["name"], p["code"], [(lab["Area (km²)"], _fmt(p["area_km2"], 2))])


@register
class CommunitiesLayer(_Boundary):
    """Community polygons with population, households, grid count and a label point."""

    name = "communities"
    title_msgid = N_("Communities")
    style_key = "community"

    def query(
        self, session: Session, bbox: BBox | None = None, *, zoom: float | None = None, **_: Any
    ) -> dict:
        """Communities intersecting ``bbox``, with their subdistrict and fill colour."""
        from mapsvc.models import Community as C
        from mapsvc.models import Grid, Subdistrict

        grids = (
            sa.select(sa.func.count(Grid.id))
            .where(Grid.community_id == C.id, Grid.on())
            .correlate(C)
            .scalar_subquery()
        )
        label = sa.func.ST_PointOnSurface(C.geom)
        stmt = (
            sa.select(
                C.id,
                C.code,
                C.name,
                Subdistrict.name.label("subdistrict_name"),
                C.population,
                C.households,
                C.enterprises,
                _num(C.area_km2, 6),
                grids.label("grids"),
                _num(sa.func.ST_X(label), 6, "label_lon"),
                _num(sa.func.ST_Y(label), 6, "label_lat"),
                _geojson(C.geom, zoom),
            )
            .outerjoin(Subdistrict, Subdistrict.id == C.subdistrict_id)
            .where(_in_bbox(C.geom, bbox))
            .order_by(C.code)
        )
        fc = _collection(session, stmt)
        colours = community_colours(session) if fc["features"] else {}
        for f in fc["features"]:
            f["properties"]["colour"] = colours.get(f["id"], PALETTE[0])
        return fc

    def tooltip(self, p: dict, lab: dict[str, str]) -> str:
        return _tip(
            p["name"],
            p["code"],
            [
                (lab["Subdistrict"], p.get("subdistrict_name") or "–"),
                (lab["Population"], _fmt(p["population"])),
                (lab["Households"], _fmt(p["households"])),
                (lab["Enterprises"], _fmt(p["enterprises"])),
                (lab["Number of grids"], _fmt(p["grids"])),
                (lab["Area (km²)"], _fmt(p["area_km2"], 2)),
            ],
        )


@register
class GridsLayer(_Boundary):
    """Basic grids with community, households, population, area and the grid head."""

    name = "grids"
    title_msgid = N_("Grids")
    style_key = "grid"

    def query(
        self,
        session: Session,
        bbox: BBox | None = None,
        *,
        zoom: float | None = None,
        day: dt.date | None = None,
        community: str | None = None,
        **_: Any,
    ) -> dict:
        """Grids intersecting ``bbox`` (optionally of one community code) on ``day``."""
        from mapsvc.models import Community as C
        from mapsvc.models import Grid as G
        from mapsvc.models import Staff
        from mapsvc.services.assignments import holders

        head = holders("grid_head", "grid", day).subquery()
        stmt = (
            sa.select(
                G.id,
                G.code,
                G.name,
                G.community_id,
                C.code.label("community_code"),
                C.name.label("community_name"),
                G.households,
                G.population,
                _num(G.area_km2, 6),
                Staff.name.label("head_name"),
                _geojson(G.geom, zoom),
            )
            .join(C, C.id == G.community_id)
            .outerjoin(head, head.c.target_id == G.id)
            .outerjoin(Staff, Staff.id == head.c.staff_id)
            .where(_in_bbox(G.geom, bbox), G.on(day))
            .order_by(G.code)
        )
        if community:
            stmt = stmt.where(C.code == community)
        fc = _collection(session, stmt)
        colours = community_colours(session) if fc["features"] else {}
        for f in fc["features"]:
            f["properties"]["colour"] = colours.get(f["properties"]["community_id"], PALETTE[0])
        return fc

    def style(self, p: dict) -> dict:
        return {**STYLES["grid"], "fillColor": p.get("colour") or PALETTE[0]}

    def tooltip(self, p: dict, lab: dict[str, str]) -> str:
        head = p.get("head_name")
        return _tip(
            p.get("name") or p["code"],
            p["code"],
            [
                (lab["Community"], p.get("community_name") or "–"),
                (lab["Households"], _fmt(p["households"])),
                (lab["Population"], _fmt(p["population"])),
                (lab["Area (km²)"], _fmt(p["area_km2"], 3)),
                (lab["Grid head"], head or lab["No grid head"]),
            ],
        )

    def legend(self, data: dict, locale: str = "zh_CN") -> list[LegendItem]:
        return legend_items(locale)


@register
class SegmentsLayer(_Boundary):
    """Alley segments with length and the chief and deputy in post on ``day``."""

    name = "segments"
    title_msgid = N_("Alley segments")
    style_key = "segment"

    def query(
        self,
        session: Session,
        bbox: BBox | None = None,
        *,
        zoom: float | None = None,
        day: dt.date | None = None,
        **_: Any,
    ) -> dict:
        """Segments intersecting ``bbox`` with ``chief_name`` / ``deputy_name`` (or null)."""
        from mapsvc.models import AlleySegment as S
        from mapsvc.services.assignments import segment_posts

        posts = segment_posts(day)
        stmt = (
            posts.join(
                sa.select(
                    S.id,
                    S.code,
                    S.name,
                    S.highway,
                    _num(S.length_m, 2),
                    posts.chief_name,
                    posts.deputy_name,
                    _geojson(S.geom, zoom),
                ),
                S.id,
            )
            .where(_in_bbox(S.geom, bbox))
            .order_by(S.code)
        )
        return _collection(session, stmt)

    def style(self, p: dict) -> dict:
        return dict(STYLES["segment" if p.get("chief_name") else "segment_no_chief"])

    def tooltip(self, p: dict, lab: dict[str, str]) -> str:
        chief = p.get("chief_name")
        missing = (
            "" if chief else f'<br><b style="color:#d7191c">{esc(lab["No chief assigned"])}</b>'
        )
        lines = [(lab["Length (m)"], _fmt(p["length_m"]))]
        if chief:
            lines.append((lab["Chief"], chief))
        lines.append((lab["Deputy chief"], p.get("deputy_name") or "–"))
        return _tip(p.get("name") or p["code"], p["code"], lines, missing)


# --------------------------------------------------------------------------- page helpers


def segment_counts(session: Session, day: dt.date | None = None) -> dict[str, int]:
    """Alley segments in the database and how many have no chief on ``day``.

    Whether a post is held is read through ``assignments.holders``, as everywhere.
    """
    from mapsvc.models import AlleySegment as S
    from mapsvc.services.assignments import holders

    chief = holders("alley_chief", "segment", day).subquery()
    total, without = session.execute(
        sa.select(
            sa.func.count(S.id), sa.func.count(S.id).filter(chief.c.staff_id.is_(None))
        ).outerjoin(chief, chief.c.target_id == S.id)
    ).one()
    return {"segments": int(total), "without_chief": int(without)}


def summary_html(district: dict, communities: dict, counts: dict[str, int], locale: str) -> str:
    """A small panel: district name and area, and what the map covers.

    The HTML is ``mapsvc/templates/layers/_summary.html`` (names escaped by autoescape);
    this gathers its figures. Empty when nothing is loaded: the page then says what to do.
    """
    if not district["features"] and not communities["features"]:
        return ""
    return render_partial(
        "layers/_summary.html",
        locale,
        districts=[
            (f["properties"]["name"], f["properties"]["area_km2"]) for f in district["features"]
        ],
        communities=len(communities["features"]),
        grids=sum(f["properties"]["grids"] or 0 for f in communities["features"]),
        segments=counts["segments"],
        without_chief=counts["without_chief"],
    )


def legend_items(locale: str = "zh_CN") -> list[LegendItem]:
    """Legend of the coverage map (all four layers)."""
    lab = labels(locale)
    swatch = "linear-gradient(90deg," + ",".join(PALETTE[:5]) + ")"
    return [
        LegendItem(STYLES["district"]["color"], lab["District boundary"]),
        LegendItem(STYLES["community"]["color"], lab["Community boundary"]),
        LegendItem(swatch, lab["Grids (coloured by community)"]),
        LegendItem(STYLES["segment"]["color"], lab["Alley segment with a chief"]),
        LegendItem(STYLES["segment_no_chief"]["color"], lab["No chief assigned"]),
    ]


def add_panes(m: folium.Map) -> None:
    """Create the panes that keep grids under outlines and segments on top."""
    import folium

    for name, z in PANES.items():
        folium.map.CustomPane(name, z_index=z, pointer_events=True).add_to(m)


def client_config(locale: str = "zh_CN") -> dict[str, Any]:
    """Styles, panes and translated labels for ``static/js/map.js`` (one source of truth)."""
    return {
        "styles": STYLES,
        "panes": {"grids": "mapsvc-grids", "segments": "mapsvc-segments"},
        "segmentMinZoom": SEGMENT_MIN_ZOOM,
        "farZoom": FAR_ZOOM,
        "labels": labels(locale),
    }


def viewport_loader(
    m: folium.Map,
    grids: folium.FeatureGroup,
    segments: folium.FeatureGroup,
    communities: Layer | None,
    config: dict[str, Any],
) -> MacroElement:
    """A folium element that makes ``static/js/map.js`` fill ``grids`` and ``segments``.

    ``grids`` and ``segments`` are empty ``FeatureGroup`` s already on ``m`` (so they sit
    in the layer control); the script fetches ``config["api"]`` URLs for the visible
    bounding box on load and after every move, and labels the embedded ``communities``
    layer. ``config`` goes into the page through ``|tojson`` (``<`` escaped).
    """
    from branca.element import MacroElement
    from folium.elements import JSCSSMixin
    from folium.template import Template

    class ViewportLoader(JSCSSMixin, MacroElement):
        _template = Template(
            """
            {% macro script(this, kwargs) %}
            mapsvcCoverage.init({{ this._parent.get_name() }}, {
                grids: {{ this.grids.get_name() }},
                segments: {{ this.segments.get_name() }},
                communities: {{ this.communities.get_name() if this.communities else "null" }},
                config: {{ this.config|tojson }}
            });
            {% endmacro %}
            """
        )
        default_js = [("mapsvc_map_js", config["assets"]["js"])]
        default_css = [("mapsvc_map_css", config["assets"]["css"])]

        def __init__(self) -> None:
            super().__init__()
            self._name = "ViewportLoader"
            self.grids, self.segments, self.communities = grids, segments, communities
            self.config = {k: v for k, v in config.items() if k != "assets"}

    loader = ViewportLoader()
    loader.add_to(m)
    return loader
