"""Base maps (config ``BASEMAP``: local | osm | tianditu | amap | none) and their datum.

The service's pages work with no internet, so the default is ``local``: a light base map
drawn in the browser from the district's own data (streets with their names, community
and grid outlines with labels, service centres), served as vector tiles by the service
itself (``/tiles/basemap/...``, :mod:`layers.tiles`) and painted by protomaps-leaflet
(``static/js/basemap.js``). Nothing leaves the machine. The raster choices add their
provider's tiles on top of that, shown first, with the local map one click away in the
layer switch; ``none`` draws the overlays alone.

Tianditu (天地图) serves CGCS2000 tiles, which agree with our WGS84 data to centimetres, so
nothing is shifted. Amap (高德) tiles are drawn in GCJ-02, hundreds of metres off WGS84 in
China. Drawing WGS84 overlays on them would put every grid in the wrong street, so with
``amap`` the pages ask for their data in GCJ-02 (the API's ``crs=gcj02``, converted by
:mod:`mapsvc.services.chinacrs`, the one place for that formula) and say so in the credit
line. This module holds the list of base maps and the conversion of a FeatureCollection
or a bounding box between WGS84 and the display datum.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mapsvc.config import Settings
from mapsvc.core.errors import BadRequest
from mapsvc.core.i18n import DEFAULT_LOCALE, translator
from mapsvc.core.values import BBox
from mapsvc.services.chinacrs import display_crs

if TYPE_CHECKING:
    import folium

log = logging.getLogger(__name__)


@dataclass
class TileSpec:
    url: str
    name: str
    attribution: str
    subdomains: str = "abc"
    overlay: bool = False
    max_zoom: int = 19


@dataclass
class Basemap:
    """What a page needs to know about its base map."""

    name: str
    #: datum the overlays must be drawn in so that they sit on the tiles
    crs: str = "wgs84"
    tiles: list[TileSpec] = field(default_factory=list)
    #: credit line parts (in the page's language; shown in Leaflet's attribution control)
    attribution: list[str] = field(default_factory=list)
    #: whether the local base map (the district's own data, in WGS84) is offered
    local: bool = True
    #: its name in the layer switch
    local_name: str = ""


@dataclass
class LocalBaseMap:
    """Where a page finds the local base map: its tile URL and the script that paints it."""

    tiles: str
    script: str
    library: str
    max_zoom: int = 20


@dataclass(frozen=True)
class TiledOverlay:
    """Where a page finds a tile layer for a large overlay: its tile URL and scripts.

    The web floor fills it (it knows the URLs); a layer's ``draw`` paints from it instead
    of embedding every feature as GeoJSON, so the page no longer grows with the network.
    """

    tiles: str
    script: str
    library: str


TIANDITU = (
    "https://t{s}.tianditu.gov.cn/%s_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
    "&LAYER=%s&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles"
    "&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}&tk=%s"
)


def local_only(locale: str = DEFAULT_LOCALE) -> Basemap:
    """The local base map alone (the district's own data, offline, WGS84)."""
    return Basemap("local", local_name=translator(locale)("District base map"))


def basemap_for(settings: Settings, locale: str = DEFAULT_LOCALE) -> Basemap:
    """The base map of ``settings`` (``basemap``, ``tianditu_key``).

    An unknown name or Tianditu without a key falls back to ``none`` with a warning in
    the log, because a map page must still open when the tile setting is wrong. Tile
    names (in the layer control) and the datum note are in ``locale``; the providers'
    credits stay as the providers write them.
    """
    _ = translator(locale)
    local = _("District base map")
    choice = str(settings.basemap or "none").lower()
    if choice == "local":
        return local_only(locale)
    if choice == "osm":
        return Basemap(
            "osm",
            local_name=local,
            tiles=[
                TileSpec(
                    "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
                    "OpenStreetMap",
                    "© OpenStreetMap contributors",
                    subdomains="",
                )
            ],
            attribution=["© OpenStreetMap contributors"],
        )
    if choice == "tianditu":
        key = str(settings.tianditu_key or "")
        if not key:
            log.warning("BASEMAP=tianditu needs TIANDITU_KEY; showing the local base map")
            return local_only(locale)
        credit = "© 天地图 Tianditu (GS(2024)0650号)"
        return Basemap(
            "tianditu",
            local_name=local,
            tiles=[
                TileSpec(
                    TIANDITU % ("vec", "vec", key), _("Tianditu"), credit, "01234567", max_zoom=18
                ),
                TileSpec(
                    TIANDITU % ("cva", "cva", key), _("Tianditu labels"), "", "01234567", True, 18
                ),
            ],
            attribution=[credit],
        )
    if choice == "amap":
        # the overlays are shifted to GCJ-02 for these tiles; the local map is WGS84
        return Basemap(
            "amap",
            crs="gcj02",
            local=False,
            tiles=[
                TileSpec(
                    "https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1"
                    "&style=8&x={x}&y={y}&z={z}",
                    _("Amap"),
                    "© 高德 AutoNavi",
                    subdomains="1234",
                    max_zoom=18,
                )
            ],
            attribution=[
                "© 高德 AutoNavi",
                _("Overlays converted from WGS84 to GCJ-02 to match the base map"),
            ],
        )
    if choice != "none":
        log.warning(
            "unknown BASEMAP %r (local|osm|tianditu|amap|none); showing the local base map",
            choice,
        )
        return local_only(locale)
    return Basemap("none", local=False)


def add_tiles(m: folium.Map, basemap: Basemap, local: LocalBaseMap | None = None) -> None:
    """Add the base map's layers to a folium map: the raster tiles (shown first) and the
    local vector base map (shown when there are no raster tiles), both in the layer switch.
    """
    import folium

    if basemap.local and local is not None:
        _local_layer(basemap, local, show=not basemap.tiles).add_to(m)
    for t in basemap.tiles:
        folium.TileLayer(
            tiles=t.url,
            name=t.name,
            attr=t.attribution or t.name,
            subdomains=t.subdomains or "abc",
            overlay=t.overlay,
            control=not t.overlay,
            max_zoom=t.max_zoom,
        ).add_to(m)


def parse_crs(text: str | None) -> str:
    """The ``crs`` request parameter as 'wgs84' (default), 'gcj02' or 'bd09'.

    The spellings are :func:`mapsvc.services.chinacrs.display_crs`'s, the same an import
    accepts; this only turns its refusal into a 400 naming the parameter.
    """
    try:
        return display_crs(text)
    except ValueError as exc:
        raise BadRequest(str(exc), field="crs") from None


def bbox_to_wgs84(bbox: BBox | None, crs: str) -> BBox | None:
    """A bbox given in the display datum -> WGS84 (corners converted exactly).

    The GCJ-02 offset changes by millimetres over a district, so converting the corners
    is enough for a viewport filter.
    """
    if bbox is None or crs == "wgs84":
        return bbox
    import numpy as np

    from mapsvc.services.chinacrs import points_to_wgs84

    lon, lat = points_to_wgs84(np.array([bbox[0], bbox[2]]), np.array([bbox[1], bbox[3]]), crs)
    return (float(lon[0]), float(lat[0]), float(lon[1]), float(lat[1]))


def collection_to_crs(fc: dict, crs: str) -> dict:
    """A WGS84 FeatureCollection with every geometry converted to ``crs`` (in place)."""
    if crs == "wgs84" or not fc.get("features"):
        return fc
    import numpy as np
    import shapely

    from mapsvc.services.chinacrs import geometry_from_wgs84

    geoms = np.array([shapely.geometry.shape(f["geometry"]) for f in fc["features"]])
    # 6 decimals (~0.1 m), like the WGS84 output; the transform leaves 15
    moved = shapely.transform(geometry_from_wgs84(geoms, crs), lambda c: np.round(c, 6))
    for f, g in zip(fc["features"], moved, strict=True):
        f["geometry"] = shapely.geometry.mapping(g)
    return fc


def _local_layer(basemap: Basemap, local: LocalBaseMap, show: bool) -> folium.map.Layer:
    """The local base map as a folium base layer (a radio button in the layer switch)."""
    from folium.elements import JSCSSMixin
    from folium.map import Layer
    from folium.template import Template

    class LocalBase(JSCSSMixin, Layer):
        _template = Template(
            """
            {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = mapsvcBasemap.layer({{ this.options|tojson }});
            {% endmacro %}
            """
        )
        default_js = [("protomaps_leaflet", local.library), ("mapsvc_basemap_js", local.script)]

        def __init__(self) -> None:
            super().__init__(name=basemap.local_name, overlay=False, control=True, show=show)
            self._name = "LocalBase"
            self.options = {"url": local.tiles, "maxZoom": local.max_zoom}

    return LocalBase()


def tiled_segments(
    source: TiledOverlay,
    states: dict[int, str],
    colours: dict[str, str],
    labels: dict[str, Any],
) -> folium.map.Layer:
    """Segments painted from vector tiles: ``states`` (segment id to a key of ``colours``)
    is all the page carries, a few bytes per segment instead of its whole line."""
    from folium.elements import JSCSSMixin
    from folium.map import Layer
    from folium.template import Template

    class TiledSegments(JSCSSMixin, Layer):
        _template = Template(
            """
            {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = mapsvcTiled.segments({{ this.options|tojson }});
            {{ this.get_name() }}.addTo({{ this._parent.get_name() }});
            {% endmacro %}
            """
        )
        default_js = [("protomaps_leaflet", source.library), ("mapsvc_tiled_js", source.script)]

        def __init__(self) -> None:
            super().__init__(name=None, overlay=True, control=False, show=True)
            self._name = "TiledSegments"
            self.options = {
                "url": source.tiles,
                "states": {str(k): v for k, v in states.items()},
                "colours": colours,
                "labels": labels,
            }

    return TiledSegments()
