"""Map layers: one module each, one interface (:class:`layers.base.MapLayer`), one registry.

A new layer is a new module that defines a ``MapLayer`` subclass decorated with
``@register`` plus one import line at the bottom of this file.
"""

from __future__ import annotations

from layers.base import BadRequest, BBox, MapLayer, parse_bbox, parse_date

REGISTRY: dict[str, MapLayer] = {}


def register(cls: type[MapLayer]) -> type[MapLayer]:
    """Class decorator: instantiate and register a layer under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in REGISTRY:
        raise ValueError(f"layer {cls.name!r} registered twice")
    REGISTRY[cls.name] = cls()
    return cls


def get_layer(name: str) -> MapLayer:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown layer {name!r}; known: {', '.join(sorted(REGISTRY))}") from None


__all__ = [
    "REGISTRY",
    "BadRequest",
    "BBox",
    "MapLayer",
    "get_layer",
    "parse_bbox",
    "parse_date",
    "register",
]

# --- the registry: one line per layer module ------------------------------------------
from layers import boundaries  # communities, grids, segments (coverage map of issue 2)
from layers import heatmap  # incident heatmap + per-1000-residents choropleth (issue 3)
from layers import patrol_routes  # chiefs' patrol routes (issue 4)
from layers import coverage  # staffing coverage (issue 5)
from layers import density  # staff per km² (issue 5)
