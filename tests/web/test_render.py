"""Shared page pieces: file downloads, the nav bar, the legend partial."""

from __future__ import annotations

from urllib.parse import unquote

from werkzeug.http import parse_options_header

from layers.base import LegendItem, legend_html
from mapsvc.web.render import attachment, leaflet_bounds


def _disposition(resp) -> tuple[str, dict[str, str]]:
    return parse_options_header(resp.headers["Content-Disposition"])


def test_attachment_names_the_file() -> None:
    resp = attachment(b"a,b\r\n", "quota-2026-01-31.csv", "text/csv")
    assert resp.mimetype == "text/csv" and resp.get_data() == b"a,b\r\n"
    kind, options = _disposition(resp)
    assert kind == "attachment" and options == {"filename": "quota-2026-01-31.csv"}


def test_attachment_with_a_chinese_name_is_rfc_5987() -> None:
    name = "巡查路线 张三 (鲤城区).gpx"
    resp = attachment("<gpx/>", name, "application/gpx+xml")
    header = resp.headers["Content-Disposition"]
    assert header.isascii()
    # the UTF-8 name, percent-encoded, for browsers; an ASCII fallback for old clients
    star = header.split("filename*=", 1)[1]
    assert star.startswith("UTF-8''") and unquote(star[len("UTF-8''") :]) == name
    kind, options = _disposition(resp)
    assert kind == "attachment" and options["filename"] == name  # werkzeug reads filename*
    assert '; filename="  ().gpx"; ' in header  # what is left in ASCII, as send_file does


def test_attachment_streams_chunks() -> None:
    resp = attachment(iter(["\ufeffid\r\n", "1\r\n"]), "incidents.csv", "text/csv")
    assert resp.is_streamed and resp.get_data() == "\ufeffid\r\n1\r\n".encode()


def test_leaflet_bounds_swap_to_latitude_first() -> None:
    assert leaflet_bounds((118.5, 24.8, 118.7, 25.0)) == [[24.8, 118.5], [25.0, 118.7]]
    assert leaflet_bounds(None) is None


def test_legend_partial_escapes_and_keeps_one_div_per_row() -> None:
    hostile = '<img src=x onerror="alert(1)">{{ 7*7 }}'
    out = legend_html(hostile, [LegendItem("#f00", hostile), LegendItem("red;x:y", "b")])
    assert "<img" not in out and "49" not in out
    assert out.count("&lt;img src=x onerror=") == 2 and out.count("{{ 7*7 }}") == 2
    assert out.startswith('<div class="mapsvc-legend"')
    # heatmap.js replaces the rows: the title in <b>, then exactly one <div> per item
    assert out.count("<div>") == 2 and out.index("</b><div>") > 0


def test_nav_links_the_pages_and_switches_language(small_client) -> None:
    page = small_client.get("/?lang=en").get_data(as_text=True)
    nav = page[page.index('<nav class="mapsvc-nav"') : page.index("</nav>")]
    assert nav.index('href="/"') < nav.index('href="/incidents/map"')
    assert nav.index('href="/incidents/map"') < nav.index('href="/incidents/list"')
    assert "<b>Grid management map</b>" in nav
    # the current page is underlined; the switch keeps the page and names the language
    assert 'href="/" style="font-weight:bold;text-decoration:underline">Map</a>' in nav
    assert '<a href="/?lang=zh_CN">中文</a>' in nav
