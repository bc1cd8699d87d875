"""The one interface every map layer implements, split into a query half and a drawing half.

* :meth:`MapLayer.query` takes a SQLAlchemy session, an optional bounding box and filters
  and returns plain data (a GeoJSON FeatureCollection dict, or a dict of aggregates). It
  runs without Flask and without folium, so it can be tested against PostGIS alone.
* :meth:`MapLayer.draw` turns that data into a folium layer (FeatureGroup / GeoJson /
  HeatMap ...) with its legend. It never touches the database.

Layers register themselves with :func:`layers.registry.register`; the web views and the CLI look
them up by name, so a new layer is one new module plus one import line in
``layers/__init__.py``.
"""

from __future__ import annotations

import html
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mapsvc.core.i18n import DEFAULT_LOCALE, translator
from mapsvc.core.values import BBox

if TYPE_CHECKING:
    import folium
    from branca.element import Element
    from folium.map import Layer
    from jinja2 import Environment
    from sqlalchemy.orm import Session


def collection_bounds(*collections: dict) -> list[list[float]] | None:
    """Leaflet bounds ``[[south, west], [north, east]]`` of FeatureCollections, or None."""
    import shapely

    geoms = [shapely.geometry.shape(f["geometry"]) for fc in collections for f in fc["features"]]
    if not geoms:
        return None
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    return [[float(miny), float(minx)], [float(maxy), float(maxx)]]


def esc(value: Any) -> str:
    """HTML-escape text that comes from data (names) before it goes into popups/tooltips."""
    return html.escape("" if value is None else str(value), quote=True)


def _keep_rendered_text_literal() -> None:
    """Stop branca from compiling rendered text as a Jinja template a second time.

    branca (under folium) adds every macro's rendered output to the page as
    ``Element(text)``, and ``Element.__init__`` compiles ``text`` as a template that is
    rendered again with the page, unsandboxed. Data inside that text (a community or chief
    named ``{{ 7*7 }}``, a GeoJSON property ``{{ cycler.__init__.__globals__.os... }}``)
    was therefore evaluated on the server: wrong text at best, code execution at worst.
    Every ``Element(str)`` in folium and branca passes text that is already rendered, so
    here such an element keeps its string as a value. Kept as a template: branca's own
    ``Div`` body, the one ``Element(str)`` that is a real template.
    """
    from branca.element import Element
    from jinja2 import Template

    if getattr(Element, "_mapsvc_literal", False):
        return
    real_templates = {
        "{% for name, element in this._children.items() %}{{element.render(**kwargs)}}{% endfor %}"
    }
    literal = Template("{{ this._template_str }}")  # autoescape off: the text as it is
    original_init = Element.__init__

    def __init__(
        self: Element, template: str | None = None, template_name: str | None = None
    ) -> None:
        original_init(self, None, template_name)
        if template is not None:
            self._template_str = template
            self._template = Template(template) if template in real_templates else literal

    Element.__init__ = __init__
    Element._mapsvc_literal = True


_keep_rendered_text_literal()


@dataclass
class LegendItem:
    """One legend row: a swatch (any CSS ``background``: a colour or a gradient) and text."""

    colour: str
    label: str


#: the service's Jinja templates (``mapsvc/templates``), a sibling of this package
TEMPLATES = Path(__file__).resolve().parents[1] / "mapsvc" / "templates"


@lru_cache(maxsize=1)
def _jinja() -> Environment:
    """The layers' Jinja environment, made once: the pages' templates, autoescape on.

    Layers run without Flask (tests, the CLI, benchmarks), so they cannot use the app's
    environment; this one loads the same folder, so a partial (the legend) is written once
    and looks the same wherever it is drawn. Autoescape is on for every template: data
    text (a community named ``<img onerror=...>``) is escaped, and text that looks like a
    template (``{{ 7*7 }}``) is a value here, never compiled.
    """
    from jinja2 import Environment as JinjaEnvironment
    from jinja2 import FileSystemLoader, StrictUndefined

    return JinjaEnvironment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
    )


def render_partial(name: str, locale: str | None = DEFAULT_LOCALE, **context: Any) -> str:
    """Render ``mapsvc/templates/<name>`` for a layer, without Flask.

    Parameters
    ----------
    name
        Template path under ``mapsvc/templates`` (layers' partials live in ``layers/``).
    locale
        The language of the template's own words: ``_`` in the template is
        :func:`translator` of ``locale``, the catalogue the pages use, so a partial drawn
        by a layer and one rendered by Flask say the same. Babel's Jinja extractor finds
        these ``_("...")`` calls like Flask-Babel's.
    **context
        The template's variables; data text among them is escaped on output.
    """
    return _jinja().get_template(name).render(_=translator(locale), **context)


def legend_html(title: str, items: list[LegendItem]) -> str:
    """A small fixed legend box, used by every layer's ``draw`` (``layers/_legend.html``).

    ``static/js/heatmap.js`` rewrites the first rows (``.mapsvc-legend > div``) when the
    view changes, so the box is the title in ``<b>`` followed by one ``<div>`` per row.
    """
    return render_partial("layers/_legend.html", title=title, items=items)


def add_legend(m: folium.Map, title: str, items: list[LegendItem]) -> None:
    """Attach a legend to a folium map (added as rendered text: never compiled again)."""
    import branca.element

    m.get_root().html.add_child(branca.element.Element(legend_html(title, items)))


class MapLayer(ABC):
    """Base class of all map layers (see module docstring)."""

    #: registry key and URL slug
    name: str = ""
    #: title shown in the layer control and legends: an English message id (``N_``)
    title_msgid: str = ""

    def title(self, locale: str = DEFAULT_LOCALE) -> str:
        """The layer's title in ``locale``, from the project's catalogue."""
        # gettext("") would answer the catalogue's header
        return translator(locale)(self.title_msgid) if self.title_msgid else ""

    @abstractmethod
    def query(self, session: Session, bbox: BBox | None = None, **filters: Any) -> dict:
        """Return features (GeoJSON dict) or aggregates for ``bbox`` and ``filters``."""

    @abstractmethod
    def draw(self, data: dict, locale: str = "zh_CN", **options: Any) -> Layer:
        """Return a folium layer (FeatureGroup, GeoJson, HeatMap...) for ``data``."""

    def legend(self, data: dict, locale: str = "zh_CN") -> list[LegendItem]:
        """Legend entries for ``data``; empty when the layer needs none."""
        return []
