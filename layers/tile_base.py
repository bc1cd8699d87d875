"""The interface of vector-tile layers (Mapbox Vector Tile), made by PostGIS.

A tile is one SQL statement: each MVT layer of it is ``ST_AsMVT`` over the rows whose
geometry meets the tile (``ST_TileEnvelope``, Web Mercator), clipped and quantised by
``ST_AsMVTGeom``; a tile with several layers (the base map) concatenates them in the same
statement, which is what the MVT format allows. Python only builds the statement and
hands the bytes on, so a tile costs what PostGIS needs for it.

Tile layers are a plugin family of their own (:class:`TileLayer`, registered with
:func:`layers.registry.register_tile`; the layers themselves are in :mod:`layers.tiles`).

The features of a tile are those whose geometry intersects the tile's own square, the
same test as the JSON API's ``bbox``; their geometry is clipped to the square plus a
buffer (:data:`BUFFER`) so lines and outlines run on across tile edges.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from mapsvc.core.errors import BadRequest
from mapsvc.core.i18n import translator

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

#: tile coordinate extent and the buffer around it (MVT units, PostGIS's defaults)
EXTENT = 4096
BUFFER = 64
#: the deepest zoom served; beyond it a map overzooms the z=MAX_ZOOM tiles
MAX_ZOOM = 20
#: statements kept per tile layer (one per zoom band and set of filters)
STATEMENT_CACHE = 256


def _frozen(value: Any) -> Hashable:
    """``value`` (checked filters: dicts, lists, dates, frozen dataclasses) as a dict key."""
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, list | tuple | set):
        return tuple(_frozen(v) for v in value)
    return value


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


def envelope(tile: Tile) -> sa.ColumnElement[Any]:
    """The tile's square in Web Mercator: bound parameters ``tz``, ``tx``, ``ty``, so one
    statement (built and compiled once) serves every tile; :meth:`TileLayer.params`."""
    return sa.func.ST_TileEnvelope(
        sa.bindparam("tz", tile.z, sa.Integer),
        sa.bindparam("tx", tile.x, sa.Integer),
        sa.bindparam("ty", tile.y, sa.Integer),
    )


def meets(geom: Any, tile: Tile) -> sa.ColumnElement[bool]:
    """``geom`` (WGS84) intersects the tile: the index test, then the exact one."""
    square = sa.func.ST_Transform(envelope(tile), 4326)
    return sa.and_(geom.op("&&")(square), sa.func.ST_Intersects(geom, square))


def mvt_geom(geom_3857: Any, tile: Tile) -> sa.ColumnElement[Any]:
    """``ST_AsMVTGeom`` of a Web Mercator geometry for ``tile``, labelled ``geom``."""
    return sa.func.ST_AsMVTGeom(geom_3857, envelope(tile), EXTENT, BUFFER, True).label("geom")


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


@contextmanager
def _unprepared(conn: Connection) -> Iterator[None]:
    """While the block runs, statements on ``conn`` are not prepared server-side.

    psycopg prepares a statement once it has run five times on a connection; PostgreSQL
    may then answer it with a generic plan, blind to the tile's bounds. Unprepared, each
    run is planned for its own parameters (as ``plan_cache_mode = force_custom_plan``
    would make it). With another driver, that setting is made for the transaction.
    """
    driver = conn.connection.dbapi_connection
    if not hasattr(driver, "prepare_threshold"):
        conn.execute(sa.text("SET LOCAL plan_cache_mode = force_custom_plan"))
        yield
        return
    threshold = driver.prepare_threshold
    driver.prepare_threshold = None
    try:
        yield
    finally:
        driver.prepare_threshold = threshold


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

    def band(self, z: int) -> Hashable:
        """What of :meth:`parts` depends on the zoom (which MVT layers, points or counts):
        tiles of one band share one statement."""
        return None

    def statement(self, tile: Tile, filters: dict[str, Any]) -> sa.Select:
        """The one statement that answers the tile's bytes, given :meth:`params`.

        Built once per band and filters and kept: building and compiling the SQLAlchemy
        constructs of a tile costs more than many tiles take in PostGIS.
        """
        cache: dict[Hashable, sa.Select] = self.__dict__.setdefault("_statements", {})
        key = (self.band(tile.z), _frozen(filters))
        stmt = cache.get(key)
        if stmt is None:
            parts = [as_mvt(rows, layer) for layer, rows in self.parts(tile, filters).items()]
            body = parts[0]
            for part in parts[1:]:
                body = body.op("||", return_type=sa.LargeBinary)(part)
            stmt = sa.select(body)
            if len(cache) >= STATEMENT_CACHE:
                cache.clear()
            cache[key] = stmt
        return stmt

    @staticmethod
    def params(tile: Tile) -> dict[str, int]:
        """The bound parameters of :meth:`statement` for ``tile``."""
        return {"tz": tile.z, "tx": tile.x, "ty": tile.y}

    def tile(self, session: Session, tile: Tile, **filters: Any) -> bytes:
        """The tile's MVT bytes (empty when no feature meets it).

        Planned for this tile's own square every time: the generic plan PostgreSQL picks
        for a statement prepared after five runs ignores how small a tile is and was
        measured three times slower. So psycopg is told not to prepare the statement
        (:func:`_unprepared`): an unprepared statement is planned with its parameters'
        values, and saying so costs no round trip (``SET LOCAL plan_cache_mode`` did).
        Run on the session's connection (Core, not the ORM: there is no entity to load).
        """
        checked = self.check(session, filters)
        if not self.minzoom <= tile.z <= self.maxzoom:
            return b""
        conn = session.connection()
        with _unprepared(conn):
            body = conn.execute(self.statement(tile, checked), self.params(tile)).scalar()
        return bytes(body or b"")

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
