"""The service's layers as plain feature tables: one definition for every reader outside.

OGC API Features (:mod:`mapsvc.services.ogc`) and the file exports
(:mod:`mapsvc.services.exports`) publish the same layers with the same columns; both read
them from here, so a GIS client and a downloaded GeoPackage always agree with each other
and with the database. A layer is a SQLAlchemy select with an integer ``id``, its
properties, and the stored WGS84 geometry as ``geom``; readers add their own conditions
(bbox, time, property equality, incident filters) on :meth:`FeatureLayer.select`'s
columns.

Alley segments carry the chief and deputy chief in post on the day asked for (today by
default), through :func:`mapsvc.services.assignments.segment_posts`, the one reading of
posts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mapsvc.core.errors import NotFound, ValidationError
from mapsvc.core.i18n import N_
from mapsvc.models import (
    AlleySegment,
    Community,
    District,
    Grid,
    Incident,
    IncidentCategory,
    ServiceCentre,
    Subdistrict,
)
from mapsvc.services.assignments import segment_posts


@dataclass(frozen=True)
class FeatureLayer:
    """One published layer.

    Attributes
    ----------
    name : str
        The layer's id in URLs (``/ogc/collections/<name>``, ``/export/<name>.gpkg``).
    title, description : str
        English; shown by OGC clients.
    geometry_type : str
        OGC simple-feature type of ``geom`` (``MultiPolygon``, ``LineString``, ``Point``).
    time_field : str or None
        The property ``datetime`` filters apply to.
    build : callable
        ``build(day)`` -> select of ``id``, the properties and ``geom``.
    """

    name: str
    title: str
    description: str
    geometry_type: str
    time_field: str | None
    build: Callable[[dt.date | None], sa.Select]

    def select(self, day: dt.date | None = None) -> sa.Subquery:
        """The layer as a subquery (``id``, properties, ``geom``) to filter and page."""
        return self.build(day).subquery(self.name)

    def property_names(self) -> list[str]:
        """The layer's property columns, in order (``id`` and ``geom`` excluded)."""
        return [c.name for c in self.build(None).selected_columns if c.name not in ("id", "geom")]


def _areas(model: Any, *extra: sa.ColumnElement) -> Callable[[dt.date | None], sa.Select]:
    def build(day: dt.date | None) -> sa.Select:
        stmt = sa.select(
            model.id,
            model.code,
            model.name,
            *extra,
            model.area_km2,
            model.geom,
        )
        # grids change when a plan is published: those of the day asked about
        return stmt.where(Grid.on(day)) if model is Grid else stmt

    return build


def _segments(day: dt.date | None) -> sa.Select:
    posts = segment_posts(day)
    stmt = sa.select(
        AlleySegment.id,
        AlleySegment.code,
        AlleySegment.name,
        AlleySegment.highway,
        AlleySegment.length_m,
        posts.chief_id,
        posts.chief_name,
        posts.deputy_id,
        posts.deputy_name,
        AlleySegment.geom,
    )
    return posts.join(stmt, AlleySegment.id)


def _service_centres(day: dt.date | None) -> sa.Select:
    return sa.select(
        ServiceCentre.id, ServiceCentre.name, ServiceCentre.community_id, ServiceCentre.geom
    )


def _incidents(day: dt.date | None) -> sa.Select:
    return sa.select(
        Incident.id,
        Incident.external_id,
        Incident.source,
        Incident.category,
        IncidentCategory.name_zh.label("category_name"),
        Incident.severity,
        Incident.state,
        Incident.address,
        Incident.reported_at,
        Incident.due_at,
        Incident.closed_at,
        Incident.community_id,
        Incident.grid_id,
        Incident.segment_id,
        Incident.chief_id,
        Incident.geom,
    ).join(IncidentCategory, IncidentCategory.code == Incident.category)


LAYERS: dict[str, FeatureLayer] = {
    layer.name: layer
    for layer in (
        FeatureLayer(
            "districts", N_("Districts"), "区: county-level districts", "MultiPolygon", None,
            _areas(District),
        ),
        FeatureLayer(
            "subdistricts", N_("Subdistricts"), "街道: subdistricts and towns", "MultiPolygon",
            None, _areas(Subdistrict, Subdistrict.district_id),
        ),
        FeatureLayer(
            "communities", N_("Communities"), "社区: communities with population and households",
            "MultiPolygon", None,
            _areas(
                Community, Community.subdistrict_id, Community.population,
                Community.households, Community.enterprises,
            ),
        ),
        FeatureLayer(
            "grids", N_("Grids"), "网格: the basic grids that tile each community",
            "MultiPolygon", None,
            _areas(Grid, Grid.community_id, Grid.population, Grid.households),
        ),
        FeatureLayer(
            "segments", N_("Alley segments"), "街巷段: streets and alleys with their chief and deputy",
            "LineString", None, _segments,
        ),
        FeatureLayer(
            "service_centres", N_("Service centres"), "党群服务中心: party and public service centres",
            "Point", None, _service_centres,
        ),
        FeatureLayer(
            "incidents", N_("Incidents"), "事件: incidents with category, class and state",
            "Point", "reported_at", _incidents,
        ),
    )
}  # fmt: skip


def layer(name: str) -> FeatureLayer:
    """The published layer ``name``, or :class:`NotFound` naming the known ones."""
    try:
        return LAYERS[name]
    except KeyError:
        raise NotFound(
            f"layer {name!r} does not exist; known layers: {', '.join(LAYERS)}"
        ) from None


def property_conditions(
    table: sa.Subquery, properties: Sequence[tuple[str, Any]]
) -> list[sa.ColumnElement[bool]]:
    """Equality conditions ``property = value`` on ``table``'s columns (values are text).

    The value is compared as text, so ``population=4000`` and ``name=金山社区`` both work
    whatever the column type; an unknown property is a :class:`ValidationError`.
    """
    where = []
    for name, value in properties:
        if name not in table.c or name == "geom":
            raise ValidationError(f"property {name!r} is not a property of {table.name}")
        where.append(sa.cast(table.c[name], sa.Text) == str(value))
    return where


def bbox_condition(table: sa.Subquery, bbox: Sequence[float]) -> sa.ColumnElement[bool]:
    """The feature's geometry meets the WGS84 box ``(minx, miny, maxx, maxy)``."""
    return sa.func.ST_Intersects(table.c.geom, sa.func.ST_MakeEnvelope(*map(float, bbox), 4326))


def read_batches(
    conn: Connection,
    stmt: sa.Select,
    batch_size: int = 5000,
) -> Iterator[list[Mapping[str, Any]]]:
    """Rows of ``stmt`` (its ``geom`` as WKB bytes) in batches, from a server-side cursor.

    A large layer is never held in memory whole: exports write each batch before the
    next is fetched.
    """
    cols = [c if c.name != "geom" else sa.func.ST_AsBinary(c).label("geom") for c in stmt.c]
    query = sa.select(*cols).select_from(stmt)
    result = conn.execution_options(stream_results=True, yield_per=batch_size).execute(query)
    for part in result.mappings().partitions(batch_size):
        yield list(part)
