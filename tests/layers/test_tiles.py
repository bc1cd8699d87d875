"""Tile layers through the query half alone: how PostgreSQL is asked for a tile."""

from __future__ import annotations

import math

import sqlalchemy as sa
from sqlalchemy.orm import Session

from layers import get_tile_layer
from layers.tile_base import Tile


def _tile_for(lon: float, lat: float, z: int) -> Tile:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return Tile(z, x, y)


def test_tiles_are_planned_for_their_own_square_however_often_asked(small) -> None:
    """psycopg prepares a statement run five times in a transaction, and PostgreSQL may
    then plan it once for every tile (three times slower, measured); many tiles in one
    transaction leave the tile statement unprepared, while a plain statement run as often
    is prepared (the driver's caching still works for everything else)."""
    layer = get_tile_layer("grids")
    with Session(small.engine) as session:
        driver = session.connection().connection.dbapi_connection
        bodies = []
        for k in range(12):
            tile = _tile_for(118.581 + k * 0.0015, 24.905, 16)
            bodies.append(layer.tile(session, tile))
            session.execute(sa.text("SELECT count(*) FROM grid WHERE id > :k"), {"k": k})
        assert all(bodies), "every tile has grids"
        assert driver.prepare_threshold == 5  # psycopg's default is back after each tile
        prepared = session.scalars(sa.text("SELECT statement FROM pg_prepared_statements")).all()
    assert not [p for p in prepared if "ST_AsMVT" in p], prepared
    assert any("FROM grid WHERE id" in p for p in prepared), prepared


def test_a_tile_is_the_same_bytes_as_its_statement_run_alone(small) -> None:
    """The bytes handed on are exactly those of the statement (no Python on them)."""
    layer = get_tile_layer("grids")
    tile = _tile_for(118.59, 24.905, 15)
    with Session(small.engine) as session:
        body = layer.tile(session, tile)
        checked = layer.check(session, {})
        alone = session.scalar(layer.statement(tile, checked), layer.params(tile))
    assert body and body == bytes(alone)
