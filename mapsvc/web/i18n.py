"""Page languages with Flask-Babel: Chinese (zh_CN) first, English available.

``?lang=en`` (remembered in a cookie) or Accept-Language switches. The catalogues and the
language-name matching are the ground floor's (:mod:`mapsvc.core.i18n`), shared with the
layers, so a page and the layers it draws speak the same language.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, request

from mapsvc.core.i18n import TRANSLATIONS, compile_catalogues, supported_language


def select_locale() -> str:
    """The request's language: ``?lang=``, then the cookie, then Accept-Language."""
    langs = current_app.extensions["mapsvc.settings"].languages
    asked = supported_language(request.args.get("lang"), langs) or supported_language(
        request.cookies.get("lang"), langs
    )
    if asked:
        return asked
    return (
        request.accept_languages.best_match(langs)
        or current_app.extensions["mapsvc.settings"].babel_default_locale
    )


def current_locale() -> str:
    """The locale Flask-Babel chose for this request (Babel's spelling, e.g. zh_Hans_CN)."""
    from flask_babel import get_locale

    loc = get_locale()
    return str(loc) if loc else "zh_CN"


def init_app(app: Flask) -> None:
    """Compile stale catalogues, start Flask-Babel, and remember ``?lang=`` in a cookie."""
    from flask_babel import Babel

    compile_catalogues()
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    Babel(app, locale_selector=select_locale)

    @app.after_request
    def _remember_lang(resp: Response) -> Response:
        lang = request.args.get("lang")
        if supported_language(lang, app.extensions["mapsvc.settings"].languages):
            resp.set_cookie("lang", lang, max_age=365 * 24 * 3600, samesite="Lax")
        return resp
