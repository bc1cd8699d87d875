"""The registry of map layers: name -> the one instance of its :class:`MapLayer` class.

Layer modules register themselves with ``@register``; ``layers/__init__.py`` imports each
layer module once (one line per layer), so importing anything from :mod:`layers` fills
the registry before :func:`get_layer` is asked.
"""

from __future__ import annotations

from layers.base import MapLayer

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
    """The registered layer called ``name``; a KeyError lists the known names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown layer {name!r}; known: {', '.join(sorted(REGISTRY))}") from None
