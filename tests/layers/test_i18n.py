"""The layers translate through the project's catalogues, in both languages.

* Every message id the layers hand to the translator is found with Babel's own extractor
  (the keywords ``layers.base`` documents: ``_``, ``N_``, ``pgettext``) and must have a
  Chinese text in the catalogue Flask-Babel serves.
* Layers drawn from the demo district in zh_CN show no English label, and in English no
  Chinese one: the visible text (layer names, tooltips, legends) is collected from the
  drawn folium layers, the data's own text (names, codes) is taken out, and what is left
  is checked for Latin letters or Chinese characters.
* The pages still switch language: default Chinese, ``?lang=en`` and its cookie, ``?lang=zh``
  and Accept-Language, with Flask-Babel reading the same catalogue folder as the layers.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Iterator
from pathlib import Path

import folium
import pytest
from babel import Locale
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from sqlalchemy.orm import Session

from layers import get_layer
from layers.base import legend_html
from mapsvc.config import Settings
from mapsvc.core.i18n import TRANSLATIONS, catalogue, translator

ROOT = Path(__file__).resolve().parents[2]
LAYERS_DIR = ROOT / "layers"
#: where text is shown without Flask: the layers, services that write files (quota export)
#: and the shared vocabulary (mapsvc/core: severity and state labels)
MESSAGE_DIRS = (LAYERS_DIR, ROOT / "mapsvc" / "services", ROOT / "mapsvc" / "core")
#: the gettext keywords the layers use (layers.base: translator, N_, catalogue().pgettext)
KEYWORDS = {"_": None, "N_": None, "pgettext": ((1, "c"), 2)}
CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
LATIN = re.compile(r"[A-Za-z]")


def _layer_messages() -> set[tuple[str | None, str]]:
    """(context, message id) of every literal the layers pass to a gettext keyword."""
    found = set()
    for folder in MESSAGE_DIRS:
        for _file, _line, msgid, _comments, context in extract_from_dir(
            str(folder), method_map=[("**.py", "python")], keywords=KEYWORDS
        ):
            assert isinstance(msgid, str) and msgid, f"{_file}:{_line}: not a plain message id"
            found.add((context, msgid))
    return found


def _files_with_messages() -> set[str]:
    return {
        f
        for folder in MESSAGE_DIRS
        for f, *_rest in extract_from_dir(
            str(folder), method_map=[("**.py", "python")], keywords=KEYWORDS
        )
    }


# --------------------------------------------------------------------------- catalogues


def test_catalogue_folders_are_named_as_babel_looks_them_up() -> None:
    """One folder per language, under the name gettext is asked for: no alias copies."""
    folders = sorted(p.name for p in TRANSLATIONS.iterdir() if p.is_dir())
    for name in folders:
        assert str(Locale.parse(name)) == name, (
            f"translations/{name} is never found: Babel looks for {Locale.parse(name)}"
        )
    languages = [Locale.parse(name).language for name in folders]
    assert sorted(languages) == ["en", "zh"], folders
    # the configured locale (zh_CN) is the one folder Babel turns it into
    assert str(Locale.parse("zh_CN")) in folders


def test_every_layer_message_has_a_chinese_translation() -> None:
    messages = _layer_messages()
    # the extractor sees every module that shows text (a broken keyword would find none)
    shown = {"basemap.py", "boundaries.py", "coverage.py", "density.py", "heatmap.py"}
    assert shown | {"patrol_routes.py", "quota.py", "labels.py"} <= _files_with_messages()
    with (TRANSLATIONS / "zh_Hans_CN/LC_MESSAGES/messages.po").open("rb") as fh:
        po = read_po(fh)
    zh, en = catalogue("zh_CN"), catalogue("en")
    missing, same, no_chinese, lost_fields, english_chinese = [], [], [], [], []
    for context, msgid in sorted(messages, key=lambda m: (m[1], m[0] or "")):
        entry = po.get(msgid, context=context)
        if entry is None or not entry.string:
            missing.append((context, msgid))
            continue
        text = zh.pgettext(context, msgid) if context else zh.gettext(msgid)
        assert text == entry.string  # the compiled catalogue is the .po
        if LATIN.search(msgid) and text == msgid:
            same.append(msgid)
        if LATIN.search(msgid) and not CJK.search(text):
            no_chinese.append((msgid, text))
        if set(re.findall(r"\{\w+\}", msgid)) != set(re.findall(r"\{\w+\}", text)):
            lost_fields.append((msgid, text))
        shown_en = en.pgettext(context, msgid) if context else en.gettext(msgid)
        if CJK.search(shown_en):
            english_chinese.append((msgid, shown_en))
    assert missing == [], f"no zh_CN translation in messages.po for {missing}"
    assert same == [], f"zh_CN text equals the English id: {same}"
    assert no_chinese == [], f"zh_CN text without Chinese: {no_chinese}"
    assert lost_fields == [], f"format fields differ: {lost_fields}"
    assert english_chinese == [], f"English shows Chinese: {english_chinese}"


def test_one_english_id_with_two_chinese_texts_uses_contexts() -> None:
    """Same English, different Chinese: "per km²" of staff (人) and of centres (个)."""
    _ = translator("zh_CN")
    staff = catalogue("zh_CN").pgettext("staff", "per km²")
    centres = catalogue("zh_CN").pgettext("service centres", "per km²")
    assert staff != centres and staff.startswith("人") and centres.startswith("个")
    assert catalogue("en").pgettext("staff", "per km²") == "per km²"
    # every spelling of a locale a caller may hold reads the same catalogue
    for loc in ("zh_CN", "zh", "zh_Hans_CN", "zh-CN"):
        assert translator(loc)("Staffing coverage") == _("Staffing coverage") != "Staffing coverage"
    for loc in ("en", "en_US", "en-GB"):
        assert translator(loc)("Staffing coverage") == "Staffing coverage"


def test_heatmap_class_and_state_codes_are_translated() -> None:
    """Codes become message ids at run time (``code_label``): each must reach Chinese."""
    from layers.heatmap import code_label, labels
    from mapsvc.models import SEVERITIES
    from mapsvc.services.incidents import TRANSITIONS

    zh, en = labels("zh_CN"), labels("en")
    for code in (*SEVERITIES, *TRANSITIONS):
        assert CJK.search(code_label(code, zh)), code
        assert not CJK.search(code_label(code, en)) and code_label(code, en) != code, code


# --------------------------------------------------------------------------- drawn layers


def _strings(value: object) -> Iterator[str]:
    """Every string inside ``value`` (the data's own text: names, codes, dates)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def _features(data: dict) -> int:
    """How many features the layer's data holds (in any of its FeatureCollections)."""
    n = len(data.get("features", []))
    return n + sum(_features(v) for v in data.values() if isinstance(v, dict))


def _visible_text(element: folium.Element, top: bool = True) -> list[str]:
    """The text a drawn layer shows: its name, the tooltips and their field labels.

    Only the returned layer's name is shown (in the layer control); layers nested in it
    keep internal names that Leaflet never displays.
    """
    out: list[str] = []
    if top:
        out.append(element.layer_name)
    if isinstance(element, folium.GeoJsonTooltip):
        data = element._parent.data
        for f in data["features"]:
            out += [str(f["properties"][k]) for k in element.fields]
        if element.labels:
            out += [str(a) for a in element.aliases or element.fields]
    elif isinstance(element, folium.Tooltip):
        out.append(element.text)
    for child in element._children.values():
        out += _visible_text(child, top=False)
    return out


def _leftover(texts: list[str], data: dict) -> str:
    """``texts`` as plain text, without the data's own strings (raw or escaped)."""
    text = "\n".join(texts)
    for s in sorted(set(_strings(data)), key=len, reverse=True):
        if len(s) > 1:
            text = text.replace(html.escape(s, quote=True), " ").replace(s, " ")
    text = html.unescape(re.sub(r"<[^>]+>", " ", text))
    return text


def _drawn(engine, locale: str) -> dict[str, tuple[list[str], dict]]:
    """Coverage, density (staff and centres) and quota layers drawn from the demo."""
    today = dt.date.today()
    out = {}
    with Session(engine) as s:
        cov = get_layer("coverage")
        data = cov.query(s, day=today, precision=5)
        group = cov.draw(data, locale)
        legend = legend_html(cov.title(locale), cov.legend(data, locale))
        out["coverage"] = (_visible_text(group) + [legend], data)
        dens = get_layer("density")
        for level, grp in (("community", "all"), ("grid", "grid_staff"), ("community", "centres")):
            data = dens.query(s, level=level, group=grp, day=today, precision=5)
            group = dens.draw(data, locale)
            legend = legend_html(dens.legend_title(data, locale), dens.legend(data, locale))
            out[f"density {level} {grp}"] = (_visible_text(group) + [legend], data)
        quota = get_layer("quota")
        data = quota.query(s, day=today, precision=5)
        group = quota.draw(data, locale)
        legend = legend_html(quota.title(locale), quota.legend(data, locale))
        out["quota"] = (_visible_text(group) + [legend], data)
    return out


def test_drawn_layers_speak_one_language(demo_engine) -> None:
    zh, en = _drawn(demo_engine, "zh_CN"), _drawn(demo_engine, "en")
    for name in zh:
        zh_texts, zh_data = zh[name]
        en_texts, en_data = en[name]
        # the demo data is there to be drawn: a tooltip for every area and line
        assert len(zh_texts) == len(en_texts) > _features(zh_data) > 0, name
        # zh_CN: no Latin letters once names and codes are out, but the unit km²
        zh_left = re.sub(r"\bkm²", " ", _leftover(zh_texts, zh_data))
        assert not LATIN.search(zh_left), (name, sorted(set(re.findall(r"[A-Za-z]\w*", zh_left))))
        assert CJK.search(zh_left), name
        # en: no Chinese character once names are out
        en_left = _leftover(en_texts, en_data)
        assert not CJK.search(en_left), (name, sorted(set(CJK.findall(en_left))))
        assert LATIN.search(en_left), name


def test_base_map_credit_follows_the_language() -> None:
    from layers.basemap import basemap_for

    zh = basemap_for(Settings(basemap="amap"), "zh_CN")
    en = basemap_for(Settings(basemap="amap"), "en")
    assert zh.crs == en.crs == "gcj02"
    # the provider's own credit is kept as written; our note on the datum is translated
    assert zh.attribution[0] == en.attribution[0] == "© 高德 AutoNavi"
    assert CJK.search(zh.attribution[1]) and "GCJ-02" in zh.attribution[1]
    assert not CJK.search(en.attribution[1]) and "GCJ-02" in en.attribution[1]
    assert CJK.search(zh.tiles[0].name) and not CJK.search(en.tiles[0].name)


# --------------------------------------------------------------------------- pages


def _title(page: str) -> str:
    m = re.search(r"<title>(.*?)</title>", page)
    assert m, "no <title>"
    return html.unescape(m.group(1))


def _coverage(client, query: str = "", **headers: str) -> str:
    r = client.get(f"/coverage{query}", headers=headers)
    assert r.status_code == 200
    return r.get_data(as_text=True)


@pytest.mark.parametrize("accept", [None, "de-DE,de;q=0.9"])
def test_pages_default_to_chinese(client, accept: str | None) -> None:
    page = _coverage(client, **({"Accept-Language": accept} if accept else {}))
    zh = translator("zh_CN")
    assert _title(page).startswith(zh("Staffing coverage") + " · ")
    # Flask-Babel's own strings (nav) come from the same catalogue folder as the layers'
    assert zh("Grid management map") in page and zh("Grid management map") != "Grid management map"
    # the layer's legend, drawn by the layer in the page's locale
    assert zh("Chief assigned") in page and "Chief assigned" not in page
    assert ">English</a>" in page and ">中文</a>" not in page


def test_lang_parameter_cookie_and_accept_language_switch(client) -> None:
    zh = translator("zh_CN")
    en_page = _coverage(client, "?lang=en")
    assert _title(en_page).startswith("Staffing coverage · ")
    assert "Chief assigned" in en_page and zh("Chief assigned") not in en_page
    assert ">中文</a>" in en_page and "lang=zh_CN" in en_page
    assert client.get_cookie("lang").value == "en"
    # the cookie keeps English without the parameter
    assert _title(_coverage(client)).startswith("Staffing coverage")
    # ?lang=zh (short form) switches back and is remembered too
    zh_page = _coverage(client, "?lang=zh")
    assert _title(zh_page).startswith(zh("Staffing coverage"))
    assert client.get_cookie("lang").value == "zh"
    assert _title(_coverage(client)).startswith(zh("Staffing coverage"))


def test_accept_language_english_without_cookie(app) -> None:
    fresh = app.test_client()
    page = _coverage(fresh, **{"Accept-Language": "en-US,en;q=0.9,zh;q=0.5"})
    assert _title(page).startswith("Staffing coverage")
    # an explicit parameter wins over the browser's preference, in every spelling of
    # Chinese: Babel's own (zh_Hans_CN) is what the pages' export links carry
    for lang in ("zh_CN", "zh-CN", "zh_Hans_CN"):
        page = _coverage(fresh, f"?lang={lang}", **{"Accept-Language": "en-US,en;q=0.9"})
        assert _title(page).startswith(translator("zh_CN")("Staffing coverage")), lang
    # an unknown language is ignored (not remembered): the browser's preference again
    fresh = app.test_client()
    page = _coverage(fresh, "?lang=fr", **{"Accept-Language": "en"})
    assert _title(page).startswith("Staffing coverage") and fresh.get_cookie("lang") is None
