"""Blueprint ``tiles``: vector tiles (``/tiles/<layer>/<z>/<x>/<y>.mvt``) and TileJSON.

Thin adapters over :mod:`layers.tiles`: parse the tile address and the filters (those of
the layer's JSON API: ``date``, ``district``, ``community``, and the incident filters),
ask the layer for the bytes PostGIS made, respond with an ETag (a hash of the body) so a
map that asks again gets a 304, and a short Cache-Control (``tile_cache_seconds``): the
data change as posts change hands, so browsers revalidate rather than keep tiles for days.
"""

from __future__ import annotations

import gzip
import hashlib
from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for

from layers import get_tile_layer
from layers.tile_base import parse_tile
from mapsvc.core.errors import Forbidden, Unauthorized
from mapsvc.services.areas import district_extent
from mapsvc.web.auth import current_principal, current_scope
from mapsvc.web.context import get_session, get_settings
from mapsvc.web.i18n import current_locale

bp = Blueprint("tiles", __name__, url_prefix="/tiles")

MVT_MIMETYPE = "application/vnd.mapbox-vector-tile"

#: layers anyone may read (the public map's base and outlines carry no staff and no
#: incidents); the others (segments and grids with their staff, incidents) need "read"
PUBLIC_TILE_LAYERS = frozenset({"basemap", "district", "subdistricts", "communities", "centres"})


def _readable(layer: str) -> None:
    """Refuse a staff layer to a visitor who may not read staff data (401, or 403)."""
    principal = current_principal()
    if layer in PUBLIC_TILE_LAYERS or principal.can("read"):
        return
    if principal.user_id is None:
        raise Unauthorized(f"the tile layer {layer!r} needs a login")
    raise Forbidden(f"this account may not read the tile layer {layer!r}")


#: the tile layers of records an account's read scope limits (its district's, its own)
SCOPED_TILE_LAYERS = frozenset({"incidents"})


def _filters(layer: str) -> dict[str, Any]:
    f: dict[str, Any] = {k: v for k, v in request.args.items() if v != "" and k != "lang"}
    f["tz"] = get_settings().timezone  # dates without an offset are read on the district's clock
    if layer in SCOPED_TILE_LAYERS:  # from the account, never from the request
        f["scope"] = current_scope()
    return f


def tile_response(body: bytes) -> Response:
    """``body`` as an MVT response: gzip when accepted, ETag, Cache-Control, 304."""
    resp = Response(body, mimetype=MVT_MIMETYPE)
    resp.vary.add("Accept-Encoding")
    if body and "gzip" in request.headers.get("Accept-Encoding", ""):
        # mtime=0: the same tile compresses to the same bytes, so its ETag holds
        resp.set_data(gzip.compress(body, compresslevel=5, mtime=0))
        resp.headers["Content-Encoding"] = "gzip"
    resp.set_etag(hashlib.blake2b(resp.get_data(), digest_size=16).hexdigest())
    resp.cache_control.private = True
    resp.cache_control.max_age = int(get_settings().tile_cache_seconds)
    return resp.make_conditional(request)


@bp.get("/<layer>/<z>/<x>/<y>.mvt")
def tile(layer: str, z: str, x: str, y: str) -> Response:
    """One tile of ``layer`` (404 naming an unknown layer; 400 naming a bad z, x or y)."""
    tile_layer = get_tile_layer(layer)
    _readable(layer)
    body = tile_layer.tile(get_session(), parse_tile(z, x, y), **_filters(layer))
    return tile_response(body)


@bp.get("/<layer>.json")
def tilejson(layer: str) -> Response:
    """The TileJSON document of ``layer``: its tile URL (with the request's filters),
    zooms, attributes and the district's bounds."""
    tile_layer = get_tile_layer(layer)
    _readable(layer)
    query = request.query_string.decode()
    url = url_for("tiles.tile", layer=layer, z=0, x=0, y=0, _external=True)
    url = url.replace("/0/0/0.mvt", "/{z}/{x}/{y}.mvt") + (f"?{query}" if query else "")
    extent = district_extent(get_session())
    bounds = [round(v, 6) for v in extent] if extent else None
    return jsonify(tile_layer.tilejson(url, current_locale(), bounds))
