"""The registries of map layers and of vector-tile layers: name -> the one instance.

Layer modules register themselves with ``@register`` (:class:`~layers.base.MapLayer`, a
folium layer with its query) or ``@register_tile`` (:class:`~layers.tile_base.TileLayer`, a
vector tile made by PostGIS); ``layers/__init__.py`` imports each layer module once (one
line per module), so importing anything from :mod:`layers` fills the registries before
:func:`get_layer` or :func:`get_tile_layer` is asked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from layers.base import MapLayer

if TYPE_CHECKING:
    from layers.tile_base import TileLayer

REGISTRY: dict[str, MapLayer] = {}
TILE_REGISTRY: dict[str, TileLayer] = {}

_T = TypeVar("_T")


def _add(registry: dict, cls: type[_T]) -> type[_T]:
    name = getattr(cls, "name", "")
    if not name:
        raise ValueError(f"{cls.__name__} has no name")
    if name in registry:
        raise ValueError(f"layer {name!r} registered twice")
    registry[name] = cls()
    return cls


def register(cls: type[MapLayer]) -> type[MapLayer]:
    """Class decorator: instantiate and register a map layer under ``cls.name``."""
    return _add(REGISTRY, cls)


def register_tile(cls: type[TileLayer]) -> type[TileLayer]:
    """Class decorator: instantiate and register a tile layer under ``cls.name``."""
    return _add(TILE_REGISTRY, cls)


def get_layer(name: str) -> MapLayer:
    """The registered layer called ``name``; a KeyError lists the known names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown layer {name!r}; known: {', '.join(sorted(REGISTRY))}") from None


def get_tile_layer(name: str) -> TileLayer:
    """The tile layer called ``name``; a :class:`NotFound` lists the known names."""
    from mapsvc.core.errors import NotFound

    try:
        return TILE_REGISTRY[name]
    except KeyError:
        raise NotFound(
            f"no tile layer {name[:40]!r}; known: {', '.join(sorted(TILE_REGISTRY))}",
            field="layer",
        ) from None
