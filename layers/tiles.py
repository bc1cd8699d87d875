"""Vector tiles (Mapbox Vector Tile) of the district's tables, made by PostGIS.

A tile is one SQL statement: each MVT layer of it is ``ST_AsMVT`` over the rows whose
geometry meets the tile (``ST_TileEnvelope``, Web Mercator), clipped and quantised by
``ST_AsMVTGeom``; a tile with several layers (the base map) concatenates them in the same
statement, which is what the MVT format allows. Python only builds the statement and
hands the bytes on, so a tile costs what PostGIS needs for it.

Tile layers are a plugin family of their own (:class:`TileLayer`, registered with
:func:`layers.registry.register_tile`): the attributes they carry are those of the JSON
API for the same table (``layers.boundaries``), and the filters mean the same: ``date``
(posts as of that day), ``community`` (a community code), ``district`` (a district code)
and the incident filters of :func:`mapsvc.services.incidents.incident_filter`.

The features of a tile are those whose geometry intersects the tile's own square, the
same test as the JSON API's ``bbox``; their geometry is clipped to the square plus a
buffer (:data:`BUFFER`) so lines and outlines run on across tile edges.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from layers.registry import register_tile
from mapsvc.core.errors import BadRequest
from mapsvc.core.i18n import N_, translator

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: tile coordinate extent and the buffer around it (MVT units, PostGIS's defaults)
EXTENT = 4096
BUFFER = 64
#: the deepest zoom served; beyond it a map overzooms the z=MAX_ZOOM tiles
MAX_ZOOM = 20
#: half the width of the Web Mercator square (metres)
MERCATOR_HALF = 20037508.342789244
#: the zoom from which incidents are single points; below it they are counted per cell
INCIDENT_POINT_ZOOM = 15
#: incidents' count cells: the tile is cut into this many cells each way (16 px at 256 px)
INCIDENT_CELLS = 16


@dataclass(frozen=True)
class Tile:
    """A tile address ``z/x/y`` (XYZ scheme, y down from the north, as Leaflet asks)."""

    z: int
    x: int
    y: int

    def bounds(self) -> tuple[float, float, float, float]:
        """WGS84 ``(west, south, east, north)`` of the tile's square."""
        import math

        n = 2**self.z

        def lat(y: int) -> float:
            return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * y / n))))

        return (self.x / n * 360 - 180, lat(self.y + 1), (self.x + 1) / n * 360 - 180, lat(self.y))

    def width_m(self) -> float:
        """The tile's width in Web Mercator metres."""
        return 2 * MERCATOR_HALF / 2**self.z


def _int(text: str | int, name: str) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        raise BadRequest(
            f"tile {name} must be a whole number; got {str(text)[:40]!r}", field=name
        ) from None


def parse_tile(z: str | int, x: str | int, y: str | int) -> Tile:
    """A tile address from the URL's parts, or a :class:`BadRequest` naming the part.

    ``z`` runs from 0 to :data:`MAX_ZOOM`; ``x`` and ``y`` from 0 to ``2**z - 1``.
    """
    zi = _int(z, "z")
    if not 0 <= zi <= MAX_ZOOM:
        raise BadRequest(f"tile z must be between 0 and {MAX_ZOOM}; got {zi}", field="z")
    top = 2**zi - 1
    xi, yi = _int(x, "x"), _int(y, "y")
    for name, value in (("x", xi), ("y", yi)):
        if not 0 <= value <= top:
            raise BadRequest(
                f"tile {name} must be between 0 and {top} at zoom {zi}; got {value}", field=name
            )
    return Tile(zi, xi, yi)


def _envelope(tile: Tile) -> sa.ColumnElement[Any]:
    """The tile's square in Web Mercator (bound parameters, one plan for every tile)."""
    return sa.func.ST_TileEnvelope(
        sa.bindparam("tz", tile.z, sa.Integer),
        sa.bindparam("tx", tile.x, sa.Integer),
        sa.bindparam("ty", tile.y, sa.Integer),
    )


def _meets(geom: Any, tile: Tile) -> sa.ColumnElement[bool]:
    """``geom`` (WGS84) intersects the tile: the index test, then the exact one."""
    square = sa.func.ST_Transform(_envelope(tile), 4326)
    return sa.and_(geom.op("&&")(square), sa.func.ST_Intersects(geom, square))


def mvt_geom(geom_3857: Any, tile: Tile) -> sa.ColumnElement[Any]:
    """``ST_AsMVTGeom`` of a Web Mercator geometry for ``tile``, labelled ``geom``."""
    return sa.func.ST_AsMVTGeom(geom_3857, _envelope(tile), EXTENT, BUFFER, True).label("geom")


def as_mvt(rows: sa.Select, layer: str) -> sa.ScalarSelect[bytes]:
    """``ST_AsMVT`` of ``rows`` (a ``geom`` column from :func:`mvt_geom`, an integer
    ``id``, attributes) as MVT layer ``layer``; features clipped away are left out."""
    t = rows.subquery("t")
    return (
        sa.select(
            sa.func.coalesce(
                sa.func.ST_AsMVT(sa.literal_column("t"), layer, EXTENT, "geom", "id"),
                sa.literal(b"", sa.LargeBinary),
            )
        )
        .select_from(t)
        .where(t.c.geom.is_not(None))
        .scalar_subquery()
    )


class TileLayer(ABC):
    """A vector-tile layer: the rows of its MVT layer(s) for one tile.

    Subclasses give :meth:`parts` (MVT layer name -> the rows of that layer); the
    statement, TileJSON description and request handling are shared here.
    """

    #: registry key and URL slug (``/tiles/<name>/{z}/{x}/{y}.mvt``)
    name: str = ""
    #: title (an English message id, translated for TileJSON)
    title_msgid: str = ""
    #: zooms the layer is served at
    minzoom: int = 0
    maxzoom: int = MAX_ZOOM
    #: MVT layer name -> attribute name -> type, as TileJSON's ``vector_layers`` lists
    fields: dict[str, dict[str, str]] = {}

    def title(self, locale: str) -> str:
        """The layer's title in ``locale``."""
        return translator(locale)(self.title_msgid)

    @abstractmethod
    def parts(self, tile: Tile, filters: dict[str, Any]) -> dict[str, sa.Select]:
        """MVT layer name -> rows (see :func:`as_mvt`) of ``tile`` with ``filters``."""

    def check(self, session: Session, filters: dict[str, Any]) -> dict[str, Any]:
        """``filters`` parsed and checked (a named 400/404); the layer's own keys only."""
        return {}

    def statement(self, tile: Tile, filters: dict[str, Any]) -> sa.Select:
        """The one statement that answers the tile's bytes."""
        parts = [as_mvt(rows, layer) for layer, rows in self.parts(tile, filters).items()]
        body = parts[0]
        for part in parts[1:]:
            body = body.op("||", return_type=sa.LargeBinary)(part)
        return sa.select(body)

    def tile(self, session: Session, tile: Tile, **filters: Any) -> bytes:
        """The tile's MVT bytes (empty when no feature meets it)."""
        checked = self.check(session, filters)
        if not self.minzoom <= tile.z <= self.maxzoom:
            return b""
        return bytes(session.scalar(self.statement(tile, checked)) or b"")

    def tilejson(self, tiles_url: str, locale: str, bounds: list[float] | None) -> dict:
        """The layer's TileJSON 3.0.0 document (``tiles_url`` has ``{z}/{x}/{y}``)."""
        doc: dict[str, Any] = {
            "tilejson": "3.0.0",
            "name": self.name,
            "description": self.title(locale),
            "scheme": "xyz",
            "tiles": [tiles_url],
            "minzoom": self.minzoom,
            "maxzoom": self.maxzoom,
            "vector_layers": [
                {"id": layer, "fields": fields, "minzoom": self.minzoom, "maxzoom": self.maxzoom}
                for layer, fields in self.fields.items()
            ],
        }
        if bounds:
            doc["bounds"] = bounds
            doc["center"] = [(bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2, 14]
        return doc


# --------------------------------------------------------------------------- filters


def _day(filters: dict[str, Any]) -> dt.date | None:
    from mapsvc.core.values import parse_date

    raw = filters.get("date")
    return parse_date(raw) if raw else None


def _district_ids(session: Session, code: str | None) -> list[int] | None:
    """Ids of the district ``code`` (None: no filter); an unknown code is a 404."""
    if not code:
        return None
    from mapsvc.core.errors import NotFound
    from mapsvc.models import District

    ids = list(session.scalars(sa.select(District.id).where(District.code == code)))
    if not ids:
        raise NotFound(f"district: no district has the code {code!r}", field="district")
    return ids


def _community_code(session: Session, code: str | None) -> str | None:
    if not code:
        return None
    from mapsvc.core.errors import NotFound
    from mapsvc.models import Community

    if session.scalar(sa.select(Community.id).where(Community.code == code)) is None:
        raise NotFound(f"community: no community has the code {code!r}", field="community")
    return code


def _in_district(community_id: Any, ids: list[int] | None) -> sa.ColumnElement[bool]:
    """``community_id`` lies in one of the districts ``ids`` (through its subdistrict)."""
    if ids is None:
        return sa.true()
    from mapsvc.models import Community, Subdistrict

    return community_id.in_(
        sa.select(Community.id)
        .join(Subdistrict, Subdistrict.id == Community.subdistrict_id)
        .where(Subdistrict.district_id.in_(ids))
    )


class _AreaTiles(TileLayer):
    """Filters of the boundary layers: ``district`` (code) and ``date``."""

    def check(self, session: Session, filters: dict[str, Any]) -> dict[str, Any]:
        return {
            "district": _district_ids(session, filters.get("district")),
            "day": _day(filters),
            "community": _community_code(session, filters.get("community")),
        }


def _num(col: Any, digits: int) -> sa.ColumnElement[float]:
    """A float attribute rounded like the JSON API's (MVT keeps numerics as text)."""
    return sa.cast(sa.func.round(sa.cast(col, sa.Numeric), digits), sa.Float).label(col.key)


def _merc(geom: Any) -> Any:
    return sa.func.ST_Transform(geom, 3857)


# --------------------------------------------------------------------------- rows


def district_rows(tile: Tile, f: dict[str, Any]) -> sa.Select:
    from mapsvc.models import District as D

    stmt = sa.select(
        D.id,
        D.code,
        D.name,
        _num(D.area_km2, 6),
        mvt_geom(_merc(D.geom), tile),
    ).where(_meets(D.geom, tile))
    if f.get("district") is not None:
        stmt = stmt.where(D.id.in_(f["district"]))
    return stmt


def subdistrict_rows(tile: Tile, f: dict[str, Any]) -> sa.Select:
    from mapsvc.models import Subdistrict as S

    stmt = sa.select(S.id, S.code, S.name, mvt_geom(_merc(S.geom), tile)).where(
        _meets(S.geom, tile)
    )
    if f.get("district") is not None:
        stmt = stmt.where(S.district_id.in_(f["district"]))
    return stmt


def community_rows(tile: Tile, f: dict[str, Any]) -> sa.Select:
    from mapsvc.models import Community as C
    from mapsvc.models import Grid, Subdistrict

    grids = (
        sa.select(sa.func.count(Grid.id))
        .where(Grid.community_id == C.id)
        .correlate(C)
        .scalar_subquery()
    )
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
            mvt_geom(_merc(C.geom), tile),
        )
        .outerjoin(Subdistrict, Subdistrict.id == C.subdistrict_id)
        .where(_meets(C.geom, tile), _in_district(C.id, f.get("district")))
    )
    if f.get("community"):
        stmt = stmt.where(C.code == f["community"])
    return stmt


def community_label_rows(tile: Tile, f: dict[str, Any]) -> sa.Select:
    """One point per community (inside it) carrying the name: where its label goes."""
    from mapsvc.models import Community as C

    point = sa.func.ST_PointOnSurface(C.geom)
    return sa.select(C.id, C.code, C.name, mvt_geom(_merc(point), tile)).where(
        _meets(point, tile), _in_district(C.id, f.get("district"))
    )


def grid_label_rows(tile: Tile, f: dict[str, Any]) -> sa.Select:
    """One point per grid (inside it) with its name, or its code when it has none."""
    from mapsvc.models import Grid as G

    point = sa.func.ST_PointOnSurface(G.geom)
    return sa.select(
        G.id, G.code, sa.func.coalesce(G.name, G.code).label("name"), mvt_geom(_merc(point), tile)
    ).where(_meets(point, tile), _in_district(G.community_id, f.get("district")))


def grid_rows(tile: Tile, f: dict[str, Any]) -> sa.Select:
    from mapsvc.models import Community as C
    from mapsvc.models import Grid as G
    from mapsvc.models import Staff
    from mapsvc.services.assignments import holders

    head = holders("grid_head", "grid", f.get("day")).subquery()
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
            mvt_geom(_merc(G.geom), tile),
        )
        .join(C, C.id == G.community_id)
        .outerjoin(head, head.c.target_id == G.id)
        .outerjoin(Staff, Staff.id == head.c.staff_id)
        .where(_meets(G.geom, tile), _in_district(G.community_id, f.get("district")))
    )
    if f.get("community"):
        stmt = stmt.where(C.code == f["community"])
    return stmt


def segment_rows(tile: Tile, f: dict[str, Any]) -> sa.Select:
    from mapsvc.models import AlleySegment as S
    from mapsvc.services.assignments import segment_posts

    posts = segment_posts(f.get("day"))
    return posts.join(
        sa.select(
            S.id,
            S.code,
            S.name,
            S.highway,
            _num(S.length_m, 2),
            posts.chief_name,
            posts.deputy_name,
            mvt_geom(_merc(S.geom), tile),
        ),
        S.id,
    ).where(_meets(S.geom, tile))


def street_rows(tile: Tile, f: dict[str, Any]) -> sa.Select:
    """Streets for the base map: the alley segments' lines with name and kind only."""
    from mapsvc.models import AlleySegment as S

    return sa.select(S.id, S.name, S.highway, mvt_geom(_merc(S.geom), tile)).where(
        _meets(S.geom, tile)
    )


def centre_rows(tile: Tile, f: dict[str, Any]) -> sa.Select:
    from mapsvc.models import Community as C
    from mapsvc.models import ServiceCentre as SC

    return (
        sa.select(
            SC.id,
            SC.name,
            C.code.label("community_code"),
            C.name.label("community_name"),
            mvt_geom(_merc(SC.geom), tile),
        )
        .outerjoin(C, C.id == SC.community_id)
        .where(_meets(SC.geom, tile), _in_district(SC.community_id, f.get("district")))
    )


# --------------------------------------------------------------------------- layers

_AREA = {"id": "Number", "code": "String", "name": "String"}
_GRID_FIELDS = {
    **_AREA,
    "community_id": "Number",
    "community_code": "String",
    "community_name": "String",
    "households": "Number",
    "population": "Number",
    "area_km2": "Number",
    "head_name": "String",
}
_SEGMENT_FIELDS = {
    **_AREA,
    "highway": "String",
    "length_m": "Number",
    "chief_name": "String",
    "deputy_name": "String",
}
_COMMUNITY_FIELDS = {
    **_AREA,
    "subdistrict_name": "String",
    "population": "Number",
    "households": "Number",
    "enterprises": "Number",
    "area_km2": "Number",
    "grids": "Number",
}
_CENTRE_FIELDS = {
    "id": "Number",
    "name": "String",
    "community_code": "String",
    "community_name": "String",
}


@register_tile
class DistrictTiles(_AreaTiles):
    name = "district"
    title_msgid = N_("District")
    fields = {"district": {**_AREA, "area_km2": "Number"}}

    def parts(self, tile: Tile, filters: dict[str, Any]) -> dict[str, sa.Select]:
        return {"district": district_rows(tile, filters)}


@register_tile
class SubdistrictTiles(_AreaTiles):
    name = "subdistricts"
    title_msgid = N_("Subdistricts")
    fields = {"subdistricts": _AREA}

    def parts(self, tile: Tile, filters: dict[str, Any]) -> dict[str, sa.Select]:
        return {"subdistricts": subdistrict_rows(tile, filters)}


@register_tile
class CommunityTiles(_AreaTiles):
    name = "communities"
    title_msgid = N_("Communities")
    fields = {"communities": _COMMUNITY_FIELDS}

    def parts(self, tile: Tile, filters: dict[str, Any]) -> dict[str, sa.Select]:
        return {"communities": community_rows(tile, filters)}


@register_tile
class GridTiles(_AreaTiles):
    name = "grids"
    title_msgid = N_("Grids")
    fields = {"grids": _GRID_FIELDS}

    def parts(self, tile: Tile, filters: dict[str, Any]) -> dict[str, sa.Select]:
        return {"grids": grid_rows(tile, filters)}


@register_tile
class SegmentTiles(_AreaTiles):
    name = "segments"
    title_msgid = N_("Alley segments")
    fields = {"segments": _SEGMENT_FIELDS}

    def parts(self, tile: Tile, filters: dict[str, Any]) -> dict[str, sa.Select]:
        return {"segments": segment_rows(tile, filters)}


@register_tile
class CentreTiles(_AreaTiles):
    name = "centres"
    title_msgid = N_("Service centres")
    fields = {"centres": _CENTRE_FIELDS}

    def parts(self, tile: Tile, filters: dict[str, Any]) -> dict[str, sa.Select]:
        return {"centres": centre_rows(tile, filters)}


@register_tile
class IncidentTiles(TileLayer):
    """Incidents: each one a point from :data:`INCIDENT_POINT_ZOOM`, below that the
    count per cell (a tile cut into :data:`INCIDENT_CELLS` squares each way), a point at
    the cell's centre with ``n``. Both read the indexed Web Mercator columns."""

    name = "incidents"
    title_msgid = N_("Incidents")
    fields = {
        "incidents": {
            "id": "Number",
            "category": "String",
            "severity": "String",
            "state": "String",
            "n": "Number",
        }
    }

    def check(self, session: Session, filters: dict[str, Any]) -> dict[str, Any]:
        from mapsvc.core.errors import ValidationError
        from mapsvc.services.incidents import incident_filter

        try:
            return {"where": incident_filter(filters, session)}
        except ValidationError as exc:
            raise BadRequest(exc.message, field=exc.details.get("field")) from None

    def parts(self, tile: Tile, filters: dict[str, Any]) -> dict[str, sa.Select]:
        from mapsvc.models import Incident

        i = Incident.__table__.alias("i")
        where = filters["where"].clauses(i) if filters.get("where") else []
        env = _envelope(tile)
        inside = [
            i.c.x_m >= sa.func.ST_XMin(env),
            i.c.x_m < sa.func.ST_XMax(env),
            i.c.y_m > sa.func.ST_YMin(env),
            i.c.y_m <= sa.func.ST_YMax(env),
            *where,
        ]
        if tile.z >= INCIDENT_POINT_ZOOM:
            point = sa.func.ST_SetSRID(sa.func.ST_MakePoint(i.c.x_m, i.c.y_m), 3857)
            rows = sa.select(
                i.c.id,
                i.c.category,
                i.c.severity,
                i.c.state,
                sa.literal(1).label("n"),
                mvt_geom(point, tile),
            ).where(*inside)
            return {"incidents": rows}
        cell = sa.literal_column(repr(tile.width_m() / INCIDENT_CELLS), sa.Float)
        cx = sa.func.floor(i.c.x_m / cell).label("cx")
        cy = sa.func.floor(i.c.y_m / cell).label("cy")
        counts = sa.select(cx, cy, sa.func.count().label("n")).where(*inside).group_by(cx, cy)
        c = counts.subquery("c")
        centre = sa.func.ST_SetSRID(
            sa.func.ST_MakePoint((c.c.cx + 0.5) * cell, (c.c.cy + 0.5) * cell), 3857
        )
        rows = sa.select(
            sa.func.row_number().over().label("id"), c.c.n, mvt_geom(centre, tile)
        ).select_from(c)
        return {"incidents": rows}


@register_tile
class BaseMapTiles(_AreaTiles):
    """The offline base map: streets with names, community and grid outlines, label
    points for communities and grids, service centres. Drawn by ``static/js/basemap.js``
    (which asks for tiles up to z16 and draws those larger nearer in)."""

    name = "basemap"
    title_msgid = N_("District base map")
    fields = {
        "district": {**_AREA, "area_km2": "Number"},
        "communities": _COMMUNITY_FIELDS,
        "community_labels": _AREA,
        "grids": _GRID_FIELDS,
        "grid_labels": _AREA,
        "streets": {"id": "Number", "name": "String", "highway": "String"},
        "centres": _CENTRE_FIELDS,
    }

    def parts(self, tile: Tile, filters: dict[str, Any]) -> dict[str, sa.Select]:
        out = {
            "district": district_rows(tile, filters),
            "communities": community_rows(tile, filters),
            "community_labels": community_label_rows(tile, filters),
        }
        # grids and streets are too small to see below these zooms: the tile stays light
        if tile.z >= 13:
            out["grids"] = grid_rows(tile, filters)
        if tile.z >= 15:
            out["grid_labels"] = grid_label_rows(tile, filters)
        if tile.z >= 12:
            out["streets"] = street_rows(tile, filters)
        if tile.z >= 14:
            out["centres"] = centre_rows(tile, filters)
        return out
