"""OGC API Features over the service's layers: pygeoapi's API with a provider of ours.

pygeoapi (the OGC reference implementation) answers every OGC request: landing page,
conformance, collections, items with ``bbox``, ``datetime``, ``limit``/``offset`` and
property filters, single items, JSON and HTML, and the CRS part (``crs``, ``bbox-crs``).
Its configuration is generated here from :data:`mapsvc.services.features.LAYERS`, so the
collections cannot drift from the tables.

The provider (:class:`FeatureProvider`) is ours rather than pygeoapi's PostgreSQL one
because

- the app has one engine (psycopg 3); pygeoapi's provider opens its own psycopg2 engine;
- segments carry the chief in post today, a join through the assignments' history that
  a reflected table cannot express;
- GCJ-02 has no EPSG code, so pygeoapi's CRS code (pyproj) cannot transform to it: the
  provider shifts geometries itself when the request asked for :data:`GCJ02_URI` (see
  :func:`output_datum`), through :mod:`mapsvc.services.chinacrs`, the one place for it;
- an account reads the incidents of its scope only (its district's, or a field account's
  own: :func:`read_as`), as in every other incident read.

No Flask here: the web layer (``mapsvc/web/ogc.py``) hands pygeoapi's request objects in.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import functools
from collections.abc import Iterator
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mapsvc.config import Settings
from mapsvc.core.scope import ReadScope
from mapsvc.services import chinacrs
from mapsvc.services.features import LAYERS, bbox_condition, layer, property_conditions

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG4326 = "http://www.opengis.net/def/crs/EPSG/0/4326"
#: CGCS2000, China's geodetic datum (coordinates within centimetres of WGS84)
EPSG4490 = "http://www.opengis.net/def/crs/EPSG/0/4490"
EPSG3857 = "http://www.opengis.net/def/crs/EPSG/0/3857"
#: GCJ-02, the shifted datum of Chinese web maps; no authority defines a URI for it
GCJ02_URI = "urn:x-mapsvc:def:crs:GCJ-02"
#: every CRS a collection offers, the default (CRS84) first
CRS_LIST = [CRS84, EPSG4326, EPSG4490, EPSG3857, GCJ02_URI]

#: the engines providers read, by key (pygeoapi copies its configuration, an engine
#: cannot be copied, so the configuration names the engine by this key)
_ENGINES: dict[str, Engine] = {}
#: the datum the current request wants geometries in when pygeoapi cannot transform
_DATUM: contextvars.ContextVar[str | None] = contextvars.ContextVar("ogc_datum", default=None)
#: what the current request's account reads (:func:`read_as`); None reads everything
_SCOPE: contextvars.ContextVar[ReadScope | None] = contextvars.ContextVar("ogc_scope", default=None)


def register_engine(engine: Engine) -> str:
    """The key under which providers find ``engine`` (the app's one engine)."""
    key = f"engine-{id(engine)}"
    _ENGINES[key] = engine
    return key


@contextlib.contextmanager
def _bound(var: contextvars.ContextVar[Any], value: Any) -> Iterator[None]:
    """``var`` set to ``value`` within the block (the request's), as it was after."""
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)


def output_datum(datum: str | None) -> contextlib.AbstractContextManager[None]:
    """Within the block, providers shift output geometries to ``datum`` (``gcj02``)."""
    return _bound(_DATUM, datum)


def read_as(scope: ReadScope | None) -> contextlib.AbstractContextManager[None]:
    """Within the block, providers answer only the incidents ``scope`` reads."""
    return _bound(_SCOPE, scope)


def scope_conditions(layer_name: str, table: sa.FromClause) -> list[sa.ColumnElement[bool]]:
    """The conditions keeping ``table`` (a layer's select) within the request's scope:
    incidents only; the other layers hold no one's records."""
    scope = _SCOPE.get()
    if layer_name != "incidents" or scope is None or scope.everything:
        return []
    from mapsvc.models import Incident
    from mapsvc.services.incidents import scope_clauses

    chosen = Incident.__table__
    return [table.c.id.in_(sa.select(chosen.c.id).where(*scope_clauses(chosen, scope)))]


def pygeoapi_config(settings: Settings, base_url: str, engine_key: str) -> dict[str, Any]:
    """pygeoapi's configuration for the collections at ``base_url`` (``.../ogc``)."""
    resources = {}
    for lyr in LAYERS.values():
        provider = {
            "type": "feature",
            "name": f"{__name__}.FeatureProvider",
            "data": engine_key,
            "table": lyr.name,
            "id_field": "id",
            "crs": list(CRS_LIST),
            "storage_crs": CRS84,
        }
        if lyr.time_field:
            provider["time_field"] = lyr.time_field
        resources[lyr.name] = {
            "type": "collection",
            "title": lyr.title,
            "description": lyr.description,
            "keywords": [lyr.name],
            "links": [],
            "extents": {
                # mainland China: the layers' own extent changes with every import
                "spatial": {"bbox": [73.0, 3.0, 136.0, 54.0], "crs": CRS84},
            },
            "providers": [provider],
        }
    return {
        "server": {
            "bind": {"host": settings.host, "port": settings.port},
            "url": base_url.rstrip("/"),
            "mimetype": "application/json; charset=UTF-8",
            "encoding": "utf-8",
            "languages": ["en-US", "zh-CN"],
            "pretty_print": False,
            "limits": {"default_items": 10, "max_items": 10000},
            "map": {"url": "", "attribution": ""},
        },
        "logging": {"level": "ERROR"},
        "metadata": {
            "identification": {
                "title": "mapsvc OGC API Features",
                "description": "Grids, alley segments and incidents of the district",
                "keywords": ["grid management", "网格化管理"],
                "keywords_type": "theme",
                "terms_of_service": "",
                "url": base_url,
            },
            "license": {"name": "internal", "url": base_url},
            "provider": {"name": "mapsvc", "url": base_url},
            "contact": {"name": "mapsvc", "position": "", "address": "", "city": "",
                        "stateorprovince": "", "postalcode": "", "country": "",
                        "phone": "", "fax": "", "email": "", "url": base_url,
                        "hours": "", "instructions": "", "role": "pointOfContact"},
        },
        "resources": resources,
    }  # fmt: skip


def _json_type(column: sa.ColumnElement) -> dict[str, str]:
    t = column.type
    if isinstance(t, sa.Integer):
        return {"type": "integer"}
    if isinstance(t, sa.Float | sa.Numeric):
        return {"type": "number"}
    if isinstance(t, sa.DateTime):
        return {"type": "string", "format": "date-time"}
    if isinstance(t, sa.Boolean):
        return {"type": "boolean"}
    return {"type": "string"}


def _time_range(value: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    """An OGC ``datetime`` (an instant, or ``a/b`` with ``..`` open ends) as a range."""

    def parse(text: str) -> dt.datetime | None:
        if text in ("", ".."):
            return None
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))

    if "/" in value:
        start, end = value.split("/", 1)
        return parse(start), parse(end)
    instant = parse(value)
    return instant, instant


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date | dt.datetime) else value


@functools.cache
def _provider_class() -> type:
    """:class:`FeatureProvider`, built on first use: pygeoapi's base class imports click
    and its plugin machinery, which the service floor does not load until the web asks."""
    from pygeoapi.provider.base import BaseProvider, ProviderItemNotFoundError

    class FeatureProvider(BaseProvider):
        """A pygeoapi feature provider over one layer of :mod:`mapsvc.services.features`."""

        def __init__(self, provider_def: dict[str, Any]) -> None:
            super().__init__(provider_def)
            self.layer = layer(provider_def["table"])
            self.engine = _ENGINES[provider_def["data"]]
            self.id_field = "id"
            self.get_fields()

        def get_fields(self) -> dict[str, dict[str, str]]:
            """The layer's properties and their JSON types (pygeoapi's queryables)."""
            if not self._fields:
                columns = self.layer.build(None).selected_columns
                self._fields = {c.name: _json_type(c) for c in columns if c.name not in ("geom",)}
            return self._fields

        def _feature(self, row: Any, transform: Any, datum: str | None) -> dict[str, Any]:
            props = {k: _plain(v) for k, v in row.items() if k not in ("id", "geom", "wkb")}
            geometry = None
            if row.get("wkb") is not None:
                geom = shapely.from_wkb(row["wkb"])
                if datum:
                    geom = chinacrs.geometry_from_wgs84(geom, datum)
                if transform is not None:
                    geom = transform(geom)
                geometry = shapely.geometry.mapping(geom)
            return {"type": "Feature", "id": row["id"], "properties": props, "geometry": geometry}

        def _transform(self, crs_transform_spec: Any) -> Any:
            if crs_transform_spec is None:
                return None
            import pyproj
            from pygeoapi.util import get_transform_from_crs

            return get_transform_from_crs(
                pyproj.CRS.from_wkt(crs_transform_spec.source_crs_wkt),
                pyproj.CRS.from_wkt(crs_transform_spec.target_crs_wkt),
            )

        def _columns(self, table: sa.Subquery, select_properties: list[str], skip: bool) -> list:
            names = select_properties or [n for n in table.c.keys() if n not in ("id", "geom")]
            cols = [table.c.id, *(table.c[n] for n in names if n in table.c and n != "id")]
            if not skip:
                cols.append(sa.func.ST_AsBinary(table.c.geom).label("wkb"))
            return cols

        def query(
            self,
            offset: int = 0,
            limit: int = 10,
            resulttype: str = "results",
            bbox: list[float] | None = None,
            datetime_: str | None = None,
            properties: list[tuple[str, Any]] | None = None,
            sortby: list[dict[str, str]] | None = None,
            select_properties: list[str] | None = None,
            skip_geometry: bool = False,
            crs_transform_spec: Any = None,
            **kwargs: Any,
        ) -> dict[str, Any]:
            """Features of the layer matching the filters, a page of them, with the total."""
            table = self.layer.select()
            where = property_conditions(table, properties or [])
            where.extend(scope_conditions(self.layer.name, table))
            if bbox:
                where.append(bbox_condition(table, bbox))
            if datetime_ and self.layer.time_field:
                start, end = _time_range(datetime_)
                column = table.c[self.layer.time_field]
                if start is not None:
                    where.append(column >= start)
                if end is not None:
                    where.append(column <= end)
            order = []
            for key in sortby or []:
                col = table.c[key["property"]]
                order.append(col.desc() if key.get("order") == "-" else col.asc())
            order.append(table.c.id)
            with self.engine.connect() as conn:
                matched = conn.scalar(sa.select(sa.func.count()).select_from(table).where(*where))
                features: list[dict[str, Any]] = []
                if resulttype != "hits":
                    stmt = (
                        sa.select(*self._columns(table, select_properties or [], skip_geometry))
                        .where(*where)
                        .order_by(*order)
                        .offset(int(offset))
                        .limit(int(limit))
                    )
                    transform, datum = self._transform(crs_transform_spec), _DATUM.get()
                    features = [
                        self._feature(row, transform, datum)
                        for row in conn.execute(stmt).mappings()
                    ]
            return {
                "type": "FeatureCollection",
                "features": features,
                "numberMatched": matched,
                "numberReturned": len(features),
            }

        def get(self, identifier: Any, crs_transform_spec: Any = None, **kwargs: Any) -> dict:
            """One feature by id, or pygeoapi's not-found error."""
            table = self.layer.select()
            try:
                ident = int(identifier)
            except (TypeError, ValueError):
                raise ProviderItemNotFoundError(f"item {identifier!r} is not an id") from None
            scoped = scope_conditions(self.layer.name, table)
            with self.engine.connect() as conn:
                row = (
                    conn.execute(
                        sa.select(*self._columns(table, [], False)).where(
                            table.c.id == ident, *scoped
                        )
                    )
                    .mappings()
                    .first()
                )
            if row is None:
                raise ProviderItemNotFoundError(
                    f"{self.layer.name} item {identifier} does not exist"
                    + (" among those this account reads" if scoped else "")
                )
            return self._feature(row, self._transform(crs_transform_spec), _DATUM.get())

    return FeatureProvider


def __getattr__(name: str) -> Any:
    """``FeatureProvider`` (pygeoapi finds its provider by module and class name)."""
    if name == "FeatureProvider":
        return _provider_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def gcj02_bbox_to_wgs84(bbox: list[float]) -> list[float]:
    """A GCJ-02 box's corners in WGS84 (the shift is smooth over a district)."""
    lon, lat = chinacrs.gcj02_to_wgs84(np.array(bbox[0::2]), np.array(bbox[1::2]))
    return [float(lon[0]), float(lat[0]), float(lon[1]), float(lat[1])]


__all__ = [
    "CRS_LIST",
    "GCJ02_URI",
    "gcj02_bbox_to_wgs84",
    "output_datum",
    "pygeoapi_config",
    "register_engine",
]
