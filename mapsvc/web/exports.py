"""``/export/<layer>.<fmt>``: every layer as a file, with the page's filters; ``/export/``.

One view for every layer and format: it parses the request and hands it to
:func:`mapsvc.services.exports.export_layer`, which writes the file into a temporary
directory; the file is sent from disk and the directory removed when the response closes.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, render_template, request, send_file, url_for

from mapsvc.core.i18n import N_
from mapsvc.core.values import parse_bbox
from mapsvc.services import exports
from mapsvc.services.features import LAYERS, layer
from mapsvc.services.incidents import FILTER_KEYS
from mapsvc.web.auth import current_scope
from mapsvc.web.context import get_engine, get_settings
from mapsvc.web.i18n import current_locale
from mapsvc.web.render import nav_html

bp = Blueprint("exports", __name__, url_prefix="/export")

#: the datums offered on the downloads page, with their labels
DATUM_LABELS = {
    "wgs84": N_("WGS84 (GPS)"),
    "cgcs2000": N_("CGCS2000 (EPSG:4490)"),
    "gcj02": N_("GCJ-02 (Chinese web maps)"),
}
FORMAT_LABELS = {"gpkg": "GeoPackage", "geojson": "GeoJSON", "shp": "Shapefile (zip)", "csv": "CSV"}


def _incident_filters() -> dict[str, Any]:
    f = {k: request.args[k] for k in (*FILTER_KEYS, "class") if request.args.get(k)}
    f.pop("bbox", None)
    f["tz"] = get_settings().timezone
    # what the account reads: its district's incidents, or a field account's own
    f["scope"] = current_scope()
    return f


@bp.get("/<layer_name>.<fmt>")
def download(layer_name: str, fmt: str) -> Response:
    """The layer as a file: ``?crs=wgs84|cgcs2000|gcj02``, ``bbox``, incident filters."""
    layer(layer_name)
    spec = exports.export_format(fmt)
    datum = exports.export_datum(request.args.get("crs"))
    bbox = parse_bbox(request.args.get("bbox"))
    filters = _incident_filters() if layer_name == "incidents" else None
    directory = Path(tempfile.mkdtemp(prefix="mapsvc-export-"))
    try:
        with get_engine().connect() as conn:
            path = exports.export_layer(
                conn, layer_name, fmt, directory, datum=datum, filters=filters, bbox=bbox,
                settings=get_settings(),
            )  # fmt: skip
        response = send_file(
            path,
            mimetype=spec.media_type,
            as_attachment=True,
            download_name=exports.file_name(layer_name, fmt, datum),
        )
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    response.call_on_close(lambda: shutil.rmtree(directory, ignore_errors=True))
    return response


@bp.get("/")
def index() -> str:
    """Every layer in every format and datum; the page's filters go along to incidents."""
    carried = {k: v for k, v in request.args.items() if k in (*FILTER_KEYS, "class") and v}
    rows = []
    for name, lyr in LAYERS.items():
        extra = carried if name == "incidents" else {}
        links = [
            (
                datum,
                fmt,
                url_for(".download", layer_name=name, fmt=fmt, crs=datum, **extra),
            )
            for datum in exports.DATUMS
            for fmt in exports.FORMATS
        ]
        rows.append((name, lyr.title, links))
    return render_template(
        "exports/index.html",
        rows=rows,
        datums=DATUM_LABELS,
        formats=FORMAT_LABELS,
        filters=carried,
        locale=current_locale(),
        nav=nav_html("exports.index"),
        stylesheet="css/map.css",
    )
