"""Translations with Flask-Babel: Chinese (zh_CN) first, English available.

Message ids are English; the zh_CN catalogue is the default locale. Catalogues are compiled
from ``.po`` on start-up when the ``.mo`` is missing or older, so a fresh clone needs no
extra build step. ``?lang=en`` (remembered in a cookie) or Accept-Language switches.

Each catalogue folder under ``translations/`` is named as Babel names the locale, because
that name is what gettext looks for: Babel (>= 2.12, which Flask-Babel 4 requires) parses
``zh_CN`` as ``zh_Hans_CN``, so the Chinese catalogue lives in ``zh_Hans_CN/``. The
setting and the ``?lang=`` values stay ``zh_CN``; Flask-Babel and the layers
(:func:`layers.base.catalogue`) both turn them into a Babel ``Locale`` before the lookup.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, request

TRANSLATIONS = Path(__file__).resolve().parent / "translations"


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
    ``zh``, ``zh-CN`` and Babel's own spelling ``zh_Hans_CN`` (what :func:`current_locale`
    answers, and what the pages put into their export links) all mean ``zh_CN``.
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


def select_locale() -> str:
    from flask import current_app

    langs = current_app.config["LANGUAGES"]
    asked = supported_language(request.args.get("lang"), langs) or supported_language(
        request.cookies.get("lang"), langs
    )
    if asked:
        return asked
    return request.accept_languages.best_match(langs) or current_app.config["BABEL_DEFAULT_LOCALE"]


def current_locale() -> str:
    from flask_babel import get_locale

    loc = get_locale()
    return str(loc) if loc else "zh_CN"


def init_app(app: Flask) -> None:
    from flask_babel import Babel

    compile_catalogues()
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    Babel(app, locale_selector=select_locale)

    @app.after_request
    def _remember_lang(resp):  # noqa: ANN001, ANN202
        lang = request.args.get("lang")
        if supported_language(lang, app.config["LANGUAGES"]):
            resp.set_cookie("lang", lang, max_age=365 * 24 * 3600, samesite="Lax")
        return resp
