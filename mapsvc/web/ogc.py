"""``/ogc/``: OGC API Features, answered by pygeoapi over :mod:`mapsvc.services.ogc`.

pygeoapi's own Flask module reads a YAML file named by an environment variable when it is
imported; this blueprint instead builds pygeoapi's ``API`` from the configuration that
:func:`mapsvc.services.ogc.pygeoapi_config` generates (one per base URL the app is
reached at, since pygeoapi writes absolute links), and hands it each request, the way
pygeoapi's module does.

GCJ-02 (``crs`` or ``bbox-crs`` = :data:`~mapsvc.services.ogc.GCJ02_URI`) is the one part
pygeoapi cannot do: its CRS code goes through pyproj, which has no GCJ-02. Such a request
is passed to pygeoapi in CRS84 and the provider shifts the output; a GCJ-02 bbox is
shifted back to WGS84 first.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, make_response, request
from werkzeug.datastructures import ImmutableMultiDict

from mapsvc.services import ogc
from mapsvc.web.auth import current_scope
from mapsvc.web.context import get_engine, get_settings

bp = Blueprint("ogc", __name__, url_prefix="/ogc")


def _api() -> Any:
    """pygeoapi's API for the base URL of this request (built once per URL)."""
    from pygeoapi.api import API
    from pygeoapi.openapi import get_oas

    base_url = request.host_url.rstrip("/") + bp.url_prefix
    apis = current_app.extensions.setdefault("mapsvc.ogc", {})
    if base_url not in apis:
        config = ogc.pygeoapi_config(get_settings(), base_url, ogc.register_engine(get_engine()))
        apis[base_url] = API(config, get_oas(config, fail_on_invalid_collection=False))
    return apis[base_url]


def _execute(function: Any, *args: Any, skip_valid_check: bool = False) -> Response:
    from pygeoapi.api import APIRequest, apply_gzip

    api = _api()
    api_request = APIRequest.from_flask(request, api.locales)
    params = request.args.to_dict(flat=False)
    datum = None
    if request.args.get("crs") == ogc.GCJ02_URI:
        params["crs"], datum = [ogc.CRS84], "gcj02"
    if request.args.get("bbox-crs") == ogc.GCJ02_URI and request.args.get("bbox"):
        try:
            box = [float(v) for v in request.args["bbox"].split(",")]
        except ValueError:
            box = []
        if len(box) == 4:
            params["bbox"] = [",".join(map(str, ogc.gcj02_bbox_to_wgs84(box)))]
            params["bbox-crs"] = [ogc.CRS84]
    api_request._args = ImmutableMultiDict(params)
    if not skip_valid_check and not api_request.is_valid():
        headers, status, content = api.get_format_exception(api_request)
    else:
        with ogc.output_datum(datum), ogc.read_as(current_scope()):
            headers, status, content = function(api, api_request, *args)
        content = apply_gzip(headers, content)
    response = make_response(content, status)
    if headers:
        response.headers = headers
    if datum and status == 200:
        response.headers["Content-Crs"] = f"<{ogc.GCJ02_URI}>"
    return response


@bp.get("/")
def landing_page() -> Response:
    """The OGC API landing page."""
    import pygeoapi.api as core

    return _execute(core.landing_page)


@bp.get("/openapi")
def openapi() -> Response:
    """The OpenAPI document."""
    import pygeoapi.api as core

    return _execute(core.openapi_)


@bp.get("/conformance")
def conformance() -> Response:
    """The conformance classes."""
    import pygeoapi.api as core

    return _execute(core.conformance)


@bp.get("/collections")
@bp.get("/collections/<collection_id>")
def collections(collection_id: str | None = None) -> Response:
    """The collections, or one."""
    import pygeoapi.api as core

    return _execute(core.describe_collections, collection_id)


@bp.get("/collections/<collection_id>/queryables")
def queryables(collection_id: str) -> Response:
    """A collection's queryable properties."""
    import pygeoapi.api.itemtypes as itemtypes

    return _execute(itemtypes.get_collection_queryables, collection_id)


@bp.get("/collections/<collection_id>/items")
def items(collection_id: str) -> Response:
    """A collection's features (bbox, datetime, limit/offset, properties, crs)."""
    import pygeoapi.api.itemtypes as itemtypes

    return _execute(itemtypes.get_collection_items, collection_id, skip_valid_check=True)


@bp.get("/collections/<collection_id>/items/<item_id>")
def item(collection_id: str, item_id: str) -> Response:
    """One feature."""
    import pygeoapi.api.itemtypes as itemtypes

    return _execute(itemtypes.get_collection_item, collection_id, item_id)
