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
import math

from flask import Blueprint, Response, request
from flask_babel import get_locale
from flask_babel import gettext as _

from layers import get_layer
from layers.basemap import bbox_to_wgs84, collection_to_crs, parse_crs
from layers.boundaries import parse_zoom
from mapsvc.core.values import parse_bbox, parse_date
from mapsvc.services.permissions import strip_staff
from mapsvc.services.result_cache import ResultCache, database_key, write_state
from mapsvc.web.auth import current_principal
from mapsvc.web.context import get_session, get_settings

bp = Blueprint("api", __name__, url_prefix="/api")

#: responses smaller than this are not worth compressing
GZIP_MIN_BYTES = 1024


def geojson_response(data: dict) -> Response:
    """Compact UTF-8 JSON, gzip-compressed when the client accepts it."""
    gz = "gzip" in request.headers.get("Accept-Encoding", "")
    return _bytes_response(*_geojson_body(data, gz))


#: layer answers as sent (body, compressed or not), kept while nothing is written
RESPONSES = ResultCache(64)


def _layer_response(name: str) -> Response:
    """The layer's GeoJSON for the request, kept while the database is unchanged.

    Every map page asks for the same grids and segments on each load and pan, and
    building, serialising and compressing a district's segments cost more CPU than
    anything else a busy server did. The bytes sent are kept under everything that shapes
    them (the query string, the day, whether names may be shown, the language, gzip) and the database's
    write state (:mod:`mapsvc.services.result_cache`): any committed write makes the next
    answer afresh.
    """
    crs = parse_crs(request.args.get("crs"))
    bbox = bbox_to_wgs84(parse_bbox(request.args.get("bbox")), crs)
    zoom = parse_zoom(request.args.get("zoom"))
    day = parse_date(request.args.get("date")) or get_settings().today()
    contacts = current_principal().can("contacts")
    gz = "gzip" in request.headers.get("Accept-Encoding", "")
    session = get_session()

    def build() -> tuple[bytes, str | None]:
        data = get_layer(name).query(
            session, bbox, zoom=zoom, day=day, community=request.args.get("community") or None
        )
        if not contacts:  # the public map: no staff names
            data = strip_staff(data, _("assigned"))
        return _geojson_body(collection_to_crs(data, crs), gz)

    state = write_state(session)
    if state is None:
        body, encoding = build()
    else:
        locale = str(get_locale())  # "assigned" is written in the request's language
        key = (database_key(session), name, request.query_string, day, contacts, gz, locale)
        body, encoding = RESPONSES.get(key, state, math.inf, build)
    return _bytes_response(body, encoding)


def _geojson_body(data: dict, gz: bool) -> tuple[bytes, str | None]:
    """Compact UTF-8 JSON, gzip-compressed when ``gz`` and worth it: (body, encoding)."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    if gz and len(body) >= GZIP_MIN_BYTES:
        return gzip.compress(body, compresslevel=5), "gzip"
    return body, None


def _bytes_response(body: bytes, encoding: str | None) -> Response:
    resp = Response(body, mimetype="application/geo+json")
    resp.vary.add("Accept-Encoding")
    if encoding:
        resp.headers["Content-Encoding"] = encoding
    return resp


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
