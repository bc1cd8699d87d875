"""Translation without Flask: the project's message catalogues, read through Babel.

Message ids are English; Chinese (zh_CN) is the default language. The pages translate
through Flask-Babel (:mod:`mapsvc.web.i18n`), the layers, services and CLI through
:func:`translator`; both read the same catalogues under ``mapsvc/translations``, so a page
and its layers never disagree.

Each catalogue folder is named as Babel names the locale, because that name is what gettext
looks for: Babel (>= 2.12, which Flask-Babel 4 requires) parses ``zh_CN`` as ``zh_Hans_CN``,
so the Chinese catalogue lives in ``zh_Hans_CN/``. The setting and the ``?lang=`` values
stay ``zh_CN``; both readers turn them into a Babel ``Locale`` before the lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from babel.support import NullTranslations

TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"

#: the language when none is asked for (Chinese first, like the pages)
DEFAULT_LOCALE = "zh_CN"


def N_(msgid: str) -> str:  # noqa: N802 - the gettext convention babel's extractor knows
    """Mark ``msgid`` for translation where it is defined; translate it where it is shown.

    Labels kept in module-level tables (legend keys, select options, layer titles) are
    defined before any locale is known. ``N_`` returns the English id unchanged and only
    makes the string visible to ``pybabel extract`` (and to the catalogue test), so every
    id the service shows is found in one pass over the code.
    """
    return msgid


def compile_catalogues() -> None:
    """Compile every ``translations/*/LC_MESSAGES/messages.po`` whose ``.mo`` is stale.

    The ``.mo`` files are generated (git-ignored), written next to their ``.po``.
    """
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    for po in TRANSLATIONS.glob("*/LC_MESSAGES/messages.po"):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        with po.open("rb") as fh:
            catalog = read_po(fh)
        with mo.open("wb") as fh:
            write_mo(fh, catalog)


def supported_language(asked: str | None, langs: list[str]) -> str | None:
    """The configured language that ``asked`` names, or None.

    Exactly (``zh_CN``, ``en``, any case, ``-`` or ``_``) or by its language subtag, so
    ``zh``, ``zh-CN`` and Babel's own spelling ``zh_Hans_CN`` (what Flask-Babel answers,
    and what the pages put into their export links) all mean ``zh_CN``.
    """
    if not asked:
        return None
    asked = asked.replace("-", "_").lower()
    for lang in langs:
        if lang.lower() == asked:
            return lang
    for lang in langs:
        if lang.split("_")[0].lower() == asked.split("_")[0]:
            return lang
    return None


def _catalogue_locale(locale: str | None) -> str:
    """The catalogue a locale reads: English for ``en*``, else Chinese (default).

    Callers pass whatever they have: ``zh_CN``, ``zh``, Flask-Babel's ``zh_Hans_CN``,
    ``en``, ``en_US``. The service speaks two languages, so anything not English is the
    default Chinese, as on the pages.
    """
    return "en" if (locale or "").lower().startswith("en") else DEFAULT_LOCALE


@lru_cache(maxsize=4)
def _load_catalogue(locale: str) -> NullTranslations:
    from babel import Locale
    from babel.support import Translations

    compile_catalogues()
    # the same lookup Flask-Babel makes: the Locale object's name (zh_CN -> zh_Hans_CN)
    return Translations.load(str(TRANSLATIONS), [Locale.parse(locale)])


def catalogue(locale: str | None = DEFAULT_LOCALE) -> NullTranslations:
    """The project's compiled message catalogue for ``locale``, read through Babel.

    Why not Flask-Babel: layers, services and the CLI run without a Flask app or request
    (tests, the CLI and the benchmarks call them with a ``locale`` argument), yet must say
    the same as the pages. Cached: one load per language and process. Use
    ``catalogue(locale).pgettext(context, msgid)`` where one English id needs two Chinese
    texts.
    """
    return _load_catalogue(_catalogue_locale(locale))


def translator(locale: str | None = DEFAULT_LOCALE) -> Callable[[str], str]:
    """``gettext`` of the project's catalogue for ``locale``: ``_ = translator(locale)``.

    Ids are written as literals in ``_("...")``, ``N_("...")`` or ``pgettext("ctx", "...")``
    calls outside f-strings, where ``pybabel extract`` (default keywords) and the catalogue
    test find them.
    """
    return catalogue(locale).gettext
