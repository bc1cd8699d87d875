"""Map layers: one module each, one interface (:class:`layers.base.MapLayer`), one registry.

A new layer is a new module that defines a ``MapLayer`` subclass decorated with
``@register`` (:mod:`layers.registry`) plus one import line below.
"""

from __future__ import annotations

from layers import (
    boundaries,  # district, communities, grids, alley segments: the coverage map
    coverage,  # grids and segments by staffing on a date
    density,  # staff per km², quota shortfall
    heatmap,  # incident heatmap and incidents per 1,000 residents
    patrol_routes,  # each chief's patrol route
    tiles,  # vector tiles of the same tables, and the offline base map's
)
from layers.base import MapLayer
from layers.registry import (
    REGISTRY,
    TILE_REGISTRY,
    get_layer,
    get_tile_layer,
    register,
    register_tile,
)

__all__ = [
    "REGISTRY",
    "TILE_REGISTRY",
    "MapLayer",
    "boundaries",
    "coverage",
    "density",
    "get_layer",
    "get_tile_layer",
    "heatmap",
    "patrol_routes",
    "register",
    "register_tile",
    "tiles",
]
