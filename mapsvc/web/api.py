"""GeoJSON API of the boundary layers: /api/district, /api/communities, /api/grids, /api/segments.

Thin views: parse the query string, call the layer's query half, respond. Parameters:

* ``bbox=minx,miny,maxx,maxy`` -- only features intersecting it (400 with a message when
  malformed);
* ``zoom=<0-22>`` -- simplify to half a screen pixel at that zoom (the map page sends it);
* ``crs=wgs84|gcj02|bd09`` -- coordinates (bbox in, geometries out) in that datum, for
  Chinese web base maps;
* ``date=YYYY-MM-DD`` -- posts (grid head, chief, deputy) as of that day (default today);
* ``community=<code>`` -- grids of one community.

These are the public map's data: without a login (an account lacking the ``contacts``
permission) the names of grid heads, chiefs and deputies read "assigned" instead.

Responses are gzip-compressed when the client accepts it: GeoJSON compresses about five
to one, and the map page fetches it on every pan.
"""

from __future__ import annotations

import gzip
import json

from flask import Blueprint, Response, request
from flask_babel import gettext as _

from layers import get_layer
from layers.basemap import bbox_to_wgs84, collection_to_crs, parse_crs
from layers.boundaries import parse_zoom
from mapsvc.core.values import parse_bbox, parse_date
from mapsvc.services.permissions import strip_staff
from mapsvc.web.auth import current_principal
from mapsvc.web.context import get_session

bp = Blueprint("api", __name__, url_prefix="/api")

#: responses smaller than this are not worth compressing
GZIP_MIN_BYTES = 1024


def geojson_response(data: dict) -> Response:
    """Compact UTF-8 JSON, gzip-compressed when the client accepts it."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    resp = Response(body, mimetype="application/geo+json")
    resp.vary.add("Accept-Encoding")
    if len(body) >= GZIP_MIN_BYTES and "gzip" in request.headers.get("Accept-Encoding", ""):
        resp.set_data(gzip.compress(body, compresslevel=5))
        resp.headers["Content-Encoding"] = "gzip"
    return resp


def _layer_response(name: str) -> Response:
    crs = parse_crs(request.args.get("crs"))
    bbox = bbox_to_wgs84(parse_bbox(request.args.get("bbox")), crs)
    data = get_layer(name).query(
        get_session(),
        bbox,
        zoom=parse_zoom(request.args.get("zoom")),
        day=parse_date(request.args.get("date")),
        community=request.args.get("community") or None,
    )
    if not current_principal().can("contacts"):  # the public map: no staff names
        data = strip_staff(data, _("assigned"))
    return geojson_response(collection_to_crs(data, crs))


@bp.get("/district")
def district() -> Response:
    """The district outline(s) with geodesic area (km²)."""
    return _layer_response("district")


@bp.get("/communities")
def communities() -> Response:
    """Communities with population, households, grid count, area and fill colour."""
    return _layer_response("communities")


@bp.get("/grids")
def grids() -> Response:
    """Grids with community, households, area and the grid head on ``date``."""
    return _layer_response("grids")


@bp.get("/segments")
def segments() -> Response:
    """Alley segments with length (m) and the chief and deputy on ``date``."""
    return _layer_response("segments")
