"""The one interface every map layer implements, split into a query half and a drawing half.

* :meth:`MapLayer.query` takes a SQLAlchemy session, an optional bounding box and filters
  and returns plain data (a GeoJSON FeatureCollection dict, or a dict of aggregates). It
  runs without Flask and without folium, so it can be tested against PostGIS alone.
* :meth:`MapLayer.draw` turns that data into a folium layer (FeatureGroup / GeoJson /
  HeatMap ...) with its legend. It never touches the database.

Layers register themselves with :func:`layers.register`; the web views and the CLI look
them up by name, so a new layer is one new module plus one import line in
``layers/__init__.py``.
"""

from __future__ import annotations

import datetime as dt
import html
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from babel.support import NullTranslations
    from jinja2 import Environment

BBox = tuple[float, float, float, float]

#: the language of a layer when none is asked for (Chinese first, like the pages)
DEFAULT_LOCALE = "zh_CN"


# --------------------------------------------------------------------------- translation


def N_(msgid: str) -> str:  # noqa: N802 - the gettext convention babel's extractor knows
    """Mark ``msgid`` for translation where it is defined; translate it where it is shown.

    Labels kept in module-level tables (legend keys, select options, layer titles) are
    defined before any locale is known. ``N_`` returns the English id unchanged and only
    makes the string visible to ``pybabel extract`` (and to the catalogue test), so every
    id a layer shows is found in one pass over the code.
    """
    return msgid


def _catalogue_locale(locale: str | None) -> str:
    """The catalogue a layer locale reads: English for ``en*``, else Chinese (default).

    Layers are called with whatever the caller has: ``zh_CN``, ``zh``, Flask-Babel's
    ``zh_Hans_CN``, ``en``, ``en_US``. The service speaks two languages, so anything not
    English is the default Chinese, as on the pages.
    """
    return "en" if (locale or "").lower().startswith("en") else DEFAULT_LOCALE


@lru_cache(maxsize=4)
def _load_catalogue(locale: str) -> NullTranslations:
    from babel import Locale
    from babel.support import Translations

    from mapsvc.i18n import TRANSLATIONS, compile_catalogues

    compile_catalogues()
    # the same lookup Flask-Babel makes: the Locale object's name (zh_CN -> zh_Hans_CN)
    return Translations.load(str(TRANSLATIONS), [Locale.parse(locale)])


def catalogue(locale: str | None = DEFAULT_LOCALE) -> NullTranslations:
    """The project's compiled message catalogue for ``locale``, read through Babel.

    Why not Flask-Babel: layers run without a Flask app or request (tests, the CLI, the
    benchmarks call them with a ``locale`` argument), yet must say the same as the pages.
    This reads the very catalogues Flask-Babel serves (``mapsvc/translations``, compiled
    from ``.po`` when stale) under the name Flask-Babel looks them up, so a page and its
    layers never disagree. Cached: one load per language and process. Use
    ``catalogue(locale).pgettext(context, msgid)`` where one English id needs two Chinese
    texts.
    """
    return _load_catalogue(_catalogue_locale(locale))


def translator(locale: str | None = DEFAULT_LOCALE) -> Callable[[str], str]:
    """``gettext`` of the project's catalogue for ``locale``: ``_ = translator(locale)``.

    The one way a layer translates: message ids are English, the Chinese texts live in
    ``mapsvc/translations/zh_Hans_CN/LC_MESSAGES/messages.po`` (see :func:`catalogue`).
    Ids are written as literals in ``_("...")``, ``N_("...")`` or ``pgettext("ctx", "...")``
    calls outside f-strings, where ``pybabel extract`` (default keywords) and
    ``tests/layers/test_i18n.py`` find them.
    """
    return catalogue(locale).gettext


class BadRequest(ValueError):
    """Bad filter or bbox values; the message names the parameter and what is wrong."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def parse_bbox(text: str | None) -> BBox | None:
    """Parse ``minx,miny,maxx,maxy`` (WGS84 degrees) or return None when empty."""
    if not text:
        return None
    parts = text.split(",")
    if len(parts) != 4:
        raise BadRequest(f"bbox must be minx,miny,maxx,maxy; got {text[:80]!r}", field="bbox")
    try:
        minx, miny, maxx, maxy = (float(p) for p in parts)
    except ValueError:
        raise BadRequest(f"bbox values must be numbers; got {text[:80]!r}", field="bbox") from None
    if not (
        -180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= 90 and -90 <= maxy <= 90
    ):
        raise BadRequest(
            f"bbox is outside WGS84 longitude/latitude ranges: {text[:80]!r}", field="bbox"
        )
    if minx >= maxx or miny >= maxy:
        raise BadRequest(f"bbox min must be below max: {text[:80]!r}", field="bbox")
    return (minx, miny, maxx, maxy)


def parse_date(
    value: str | dt.date | None, field: str = "date", default: dt.date | None = None
) -> dt.date | None:
    """Parse ``YYYY-MM-DD`` (a date passes through); ``default`` when empty.

    The one date parser of request parameters, CLI options and JSON bodies: a bad value is a
    BadRequest naming the field.
    """
    if value is None or value == "":
        return default
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise BadRequest(
            f"{field} must be a date like 2026-01-31; got {str(value)[:40]!r}",
            field=field,
        ) from None


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

    def __init__(self, template: str | None = None, template_name: str | None = None) -> None:  # noqa: ANN001
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


def add_legend(m, title: str, items: list[LegendItem]) -> None:  # noqa: ANN001 - folium.Map
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
    def query(self, session, bbox: BBox | None = None, **filters: Any) -> dict:  # noqa: ANN001
        """Return features (GeoJSON dict) or aggregates for ``bbox`` and ``filters``."""

    @abstractmethod
    def draw(self, data: dict, locale: str = "zh_CN", **options: Any):  # noqa: ANN201
        """Return a folium layer (FeatureGroup, GeoJson, HeatMap...) for ``data``."""

    def legend(self, data: dict, locale: str = "zh_CN") -> list[LegendItem]:
        """Legend entries for ``data``; empty when the layer needs none."""
        return []
