"""Vector tiles (Mapbox Vector Tile) of the district's tables: the tile layers.

Each layer (:class:`~layers.tile_base.TileLayer`, registered with ``@register_tile``)
gives the rows of its MVT layers for a tile; the statement around them is the base
class's. The attributes they carry are those of the JSON API for the same table
(``layers.boundaries``), and the filters mean the same: ``date`` (posts as of that day),
``community`` (a community code), ``district`` (a district code) and the incident
filters of :func:`mapsvc.services.incidents.incident_filter`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from layers.registry import register_tile
from layers.tile_base import Tile, TileLayer, envelope, meets, mvt_geom
from mapsvc.core.errors import BadRequest
from mapsvc.core.i18n import N_

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: the zoom from which incidents are single points; below it they are counted per cell
INCIDENT_POINT_ZOOM = 15
#: incidents' count cells: the tile is cut into this many cells each way (16 px at 256 px)
INCIDENT_CELLS = 16


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
    ).where(meets(D.geom, tile))
    if f.get("district") is not None:
        stmt = stmt.where(D.id.in_(f["district"]))
    return stmt


def subdistrict_rows(tile: Tile, f: dict[str, Any]) -> sa.Select:
    from mapsvc.models import Subdistrict as S

    stmt = sa.select(S.id, S.code, S.name, mvt_geom(_merc(S.geom), tile)).where(meets(S.geom, tile))
    if f.get("district") is not None:
        stmt = stmt.where(S.district_id.in_(f["district"]))
    return stmt


def community_rows(tile: Tile, f: dict[str, Any]) -> sa.Select:
    from mapsvc.models import Community as C
    from mapsvc.models import Grid, Subdistrict

    grids = (
        sa.select(sa.func.count(Grid.id))
        .where(Grid.community_id == C.id, Grid.on())
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
        .where(meets(C.geom, tile), _in_district(C.id, f.get("district")))
    )
    if f.get("community"):
        stmt = stmt.where(C.code == f["community"])
    return stmt


def community_label_rows(tile: Tile, f: dict[str, Any]) -> sa.Select:
    """One point per community (inside it) carrying the name: where its label goes."""
    from mapsvc.models import Community as C

    point = sa.func.ST_PointOnSurface(C.geom)
    return sa.select(C.id, C.code, C.name, mvt_geom(_merc(point), tile)).where(
        meets(point, tile), _in_district(C.id, f.get("district"))
    )


def grid_label_rows(tile: Tile, f: dict[str, Any]) -> sa.Select:
    """One point per grid (inside it) with its name, or its code when it has none."""
    from mapsvc.models import Grid as G

    point = sa.func.ST_PointOnSurface(G.geom)
    return sa.select(
        G.id, G.code, sa.func.coalesce(G.name, G.code).label("name"), mvt_geom(_merc(point), tile)
    ).where(meets(point, tile), _in_district(G.community_id, f.get("district")), G.on(f.get("day")))


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
        .where(
            meets(G.geom, tile),
            _in_district(G.community_id, f.get("district")),
            G.on(f.get("day")),
        )
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
    ).where(meets(S.geom, tile))


def street_rows(tile: Tile, f: dict[str, Any]) -> sa.Select:
    """Streets for the base map: the alley segments' lines with name and kind only."""
    from mapsvc.models import AlleySegment as S

    return sa.select(S.id, S.name, S.highway, mvt_geom(_merc(S.geom), tile)).where(
        meets(S.geom, tile)
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
        .where(meets(SC.geom, tile), _in_district(SC.community_id, f.get("district")))
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

    def band(self, z: int) -> Hashable:
        return z >= INCIDENT_POINT_ZOOM

    def parts(self, tile: Tile, filters: dict[str, Any]) -> dict[str, sa.Select]:
        from mapsvc.models import Incident

        i = Incident.__table__.alias("i")
        where = filters["where"].clauses(i) if filters.get("where") else []
        env = envelope(tile)
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
        cell = (sa.func.ST_XMax(env) - sa.func.ST_XMin(env)) / INCIDENT_CELLS
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

    def band(self, z: int) -> Hashable:
        return (z >= 12, z >= 13, z >= 14, z >= 15)

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
