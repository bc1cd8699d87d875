"""Print: a map page's print layout as PDF and PNG, made on the live server in Chromium."""

from __future__ import annotations

import io
from urllib.parse import quote

import pytest
import requests
from pypdf import PdfReader

from tests.fixtures.accounts import ADMIN_TOKEN

#: the print service is for staff: the admin's token
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

PAPER_PT = {"A4": (595, 842), "A3": (842, 1191)}


@pytest.mark.parametrize(("paper", "orientation"), [("A4", "landscape"), ("A3", "portrait")])
def test_pdf_is_one_page_with_title_and_legend(small, small_live, paper, orientation):
    page = quote("/incidents/choropleth?lang=en&state=open", safe="")
    resp = requests.get(
        f"{small_live.url}/print?page={page}&paper={paper}&orientation={orientation}&format=pdf",
        headers=AUTH,
        timeout=120,
    )
    assert resp.status_code == 200, resp.text[:500]
    assert resp.headers["Content-Type"] == "application/pdf"
    pdf = PdfReader(io.BytesIO(resp.content))
    assert len(pdf.pages) == 1
    box = pdf.pages[0].mediabox
    w, h = PAPER_PT[paper]
    expected = (h, w) if orientation == "landscape" else (w, h)
    assert (round(float(box.width)), round(float(box.height))) == pytest.approx(expected, abs=2)
    text = pdf.pages[0].extract_text()
    # the title band (title, district, filters), the legend and the credits
    html = requests.get(
        f"{small_live.url}/incidents/choropleth?lang=en", headers=AUTH, timeout=60
    ).text
    title = html.split("<title>", 1)[1].split("</title>", 1)[0]
    assert title.strip() and title.strip() in text, (title, text[:400])
    assert "测试区" in text
    assert "state=open" in text
    assert "Incidents per km²" in text or "Incidents" in text
    assert "mapsvc" in text


def test_png_at_paper_size(small, small_live):
    page = quote("/?lang=en", safe="")
    resp = requests.get(
        f"{small_live.url}/print?page={page}&paper=A4&orientation=portrait&format=png",
        headers=AUTH,
        timeout=120,
    )
    assert resp.status_code == 200, resp.text[:500]
    assert resp.content[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    img = Image.open(io.BytesIO(resp.content))
    assert img.size == (round(210 * 96 / 25.4) * 2, round(297 * 96 / 25.4) * 2)


def test_print_layout_on_map_pages_and_bad_requests(small, small_client):
    html = small_client.get("/incidents/choropleth?state=open").get_data(as_text=True)
    assert 'class="mapsvc-print-band"' in html and 'class="mapsvc-north"' in html
    link = html.split('class="mapsvc-print-link" href="', 1)[1].split('"', 1)[0]
    assert link == "/print?page=/incidents/choropleth?state%3Dopen", link
    for query, field in [
        ("page=http://example.org/", "page"),
        ("page=//example.org/", "page"),
        ("page=/print", "page"),
        ("paper=A5", "paper"),
        ("orientation=sideways", "orientation"),
        ("format=gif", "format"),
    ]:
        resp = small_client.get(f"/print?{query}")
        assert resp.status_code == 400, query
        assert field in resp.json["error"], (query, resp.json)
