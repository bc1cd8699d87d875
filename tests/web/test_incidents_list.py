"""The incident list (/incidents/list) and its CSV: the service on a hand-built district,
the page through Flask, and the page in headless Chromium (transitions in place).

The incidents are laid out by hand (the district of ``tests/fixtures/incidents.py``): their
places decide the grid and the chief they are routed to, their times the order and
"overdue", so every expected value below follows from the layout, not from the code under
test.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re

import pytest
import sqlalchemy as sa

from mapsvc.core.errors import NotFound, ValidationError
from mapsvc.db import session_scope
from mapsvc.models import STATES
from mapsvc.services import incident_list
from mapsvc.services.incidents import transition
from mapsvc.services.routing import route_incidents
from tests.fixtures.accounts import ADMIN
from tests.fixtures.incidents import add_random_incidents, ll
from tests.fixtures.web import LiveServer

NOW = dt.datetime.now(dt.UTC)
HOSTILE = '<img src=x onerror="window.__pwned = 1">'

#: name: (x, y local metres, category, class, state, reported, due, closed, description,
#: address). Places: (x, 150) is on seg1 in grid A1 (chief1); (250, 450) on seg2 in A2
#: (chief2); (700, 450) on seg3 in B1 (no chief).
LAYOUT = {
    "a": (200, 150, "road", "ordinary", "received", -1 / 24, 2, None, "路面坑洼", "中山路1号"),
    "d": (700, 450, "fire_risk", "major", "dispatched", -2 / 24, 1, None, "楼道堆物", None),
    "f": (120, 150, "litter", "minor", "received", -3, 1, None, "垃圾", None),
    "g": (380, 150, "litter", "minor", "received", -3, 1, None, HOSTILE, "=HYPERLINK(1)"),
    "b": (300, 150, "litter", "minor", "in_hand", -5, -2, None, "垃圾满溢", None),
    "c": (250, 450, "noise", "minor", "closed", -10, -7, -6, "夜间噪声", None),
    "e": (250, 350, "road", "grave", "closed", -20, -19, -19.5, "塌陷", None),
}
#: newest first; f and g share their reported time, so the later id (g) comes first
ORDER = ["a", "d", "g", "f", "b", "c", "e"]


def _add_layout(d) -> dict[str, int]:
    """Insert LAYOUT in the order written (ids ascending), route it; ``{name: id}``."""
    ids = {}
    with session_scope(d.engine) as s:
        for name, (x, y, cat, sev, state, rep, due, closed, desc, addr) in LAYOUT.items():
            lon, lat = ll(x, y)
            ids[name] = s.scalar(
                sa.text(
                    "INSERT INTO incident (source, category, severity, state, geom, "
                    "reported_at, due_at, closed_at, description, address, "
                    "location_to_confirm) VALUES ('hotline', :cat, :sev, :state, "
                    "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :rep, :due, :closed, "
                    ":desc, :addr, false) RETURNING id"
                ),
                {
                    "cat": cat,
                    "sev": sev,
                    "state": state,
                    "lon": lon,
                    "lat": lat,
                    "rep": NOW + dt.timedelta(days=rep),
                    "due": NOW + dt.timedelta(days=due),
                    "closed": None if closed is None else NOW + dt.timedelta(days=closed),
                    "desc": desc,
                    "addr": addr,
                },
            )
        route_incidents(s)
        # d is the one whose place a planner must confirm
        s.execute(sa.text("UPDATE incident SET location_to_confirm = (id = :d)"), {"d": ids["d"]})
    return ids


@pytest.fixture
def listed(district):
    district.ids = _add_layout(district)
    return district


def _page(d, filters: dict | None = None, **kw):
    with session_scope(d.engine) as s:
        return incident_list.page(s, filters or {}, **kw)


def _names(d, items: list[dict]) -> list[str]:
    by_id = {v: k for k, v in d.ids.items()}
    return [by_id[r["id"]] for r in items]


# --------------------------------------------------------------------------- the service


def test_layout_is_routed_as_drawn(listed) -> None:
    """The premise of the expected values below: places decide grid and chief."""
    d = listed
    with session_scope(d.engine) as s:
        got = {
            r.id: (r.grid_id, r.chief_id)
            for r in s.execute(sa.text("SELECT id, grid_id, chief_id FROM incident"))
        }
    c1, c2 = d.staff["chief1"], d.staff["chief2"]
    assert got[d.ids["a"]] == got[d.ids["b"]] == got[d.ids["g"]] == (d.grid["A1"], c1)
    assert got[d.ids["c"]] == (d.grid["A2"], c2)
    assert got[d.ids["d"]] == (d.grid["B1"], None)


def test_page_is_newest_first_with_filters(listed) -> None:
    d = listed
    everything = _page(d)
    assert everything["total"] == 7
    assert _names(d, everything["items"]) == ORDER
    cases = [
        ({"chief": d.staff["chief1"]}, ["a", "g", "f", "b"]),
        ({"chief": str(d.staff["chief2"])}, ["c", "e"]),
        ({"grid": d.grid["B1"]}, ["d"]),
        ({"community": d.community["A"]}, ["a", "g", "f", "b", "c", "e"]),
        ({"state": "open"}, ["a", "d", "g", "f", "b"]),
        ({"state": "closed"}, ["c", "e"]),
        ({"category": "litter"}, ["g", "f", "b"]),
        ({"class": "minor"}, ["g", "f", "b", "c"]),
        ({"severity": "grave,major"}, ["d", "e"]),
        ({"overdue": "1"}, ["b"]),  # open past its due time; c was closed late, not open
        ({"to_confirm": "true"}, ["d"]),
        ({"date_from": (NOW - dt.timedelta(days=4)).isoformat()}, ["a", "d", "g", "f"]),
        ({"date_to": (NOW - dt.timedelta(days=4)).isoformat()}, ["b", "c", "e"]),
        ({"chief": d.staff["chief1"], "state": "in_hand"}, ["b"]),
        ({"chief": d.staff["headA1"]}, []),  # a grid head holds no alley: none
    ]
    for filters, expected in cases:
        got = _page(d, filters)
        assert _names(d, got["items"]) == expected, filters
        assert got["total"] == len(expected), filters
        with session_scope(d.engine) as s:
            assert incident_list.count(s, filters) == len(expected), filters


def test_rows_say_what_a_chief_reads(listed) -> None:
    d = listed
    rows = {r["id"]: r for r in _page(d)["items"]}
    a, b, c, dd, e = (rows[d.ids[k]] for k in ("a", "b", "c", "d", "e"))
    assert (a["category_name"], a["severity_label"], a["state_label"]) == (
        "道路破损",
        "一般",
        "受理",
    )
    assert (a["grid_code"], a["chief_name"], a["address"]) == ("G-A1", "chief1", "中山路1号")
    assert a["overdue"] is None and a["allowed"] == [("dispatched", "派遣")]
    assert b["overdue"] == "open" and b["overdue_label"] == "超期"
    assert [s for s, _ in b["allowed"]] == ["verified", "returned"]
    assert c["overdue"] == "late" and c["overdue_label"] == "超期结案" and not c["open"]
    assert e["overdue"] is None  # closed within its time limit
    assert dd["location_to_confirm"] and dd["chief_name"] == "" and dd["grid_code"] == "G-B1"
    # local time (UTC+8): the reported clock a chief reads
    local = (NOW + dt.timedelta(days=-1 / 24)).astimezone(dt.timezone(dt.timedelta(hours=8)))
    assert a["reported"] == local.strftime("%Y-%m-%d %H:%M")
    en = {r["id"]: r for r in _page(d, locale="en")["items"]}[d.ids["a"]]
    assert (en["category_name"], en["severity_label"], en["state_label"]) == (
        "Damaged road",
        "Ordinary",
        "Received",
    )


def test_pages_cover_every_row_once_with_totals(populated) -> None:
    d = populated  # 600 random incidents
    with session_scope(d.engine) as s:
        chief = d.staff["chief1"]
        expected = list(
            s.scalars(
                sa.text(
                    "SELECT id FROM incident WHERE chief_id = :c ORDER BY reported_at DESC, id DESC"
                ),
                {"c": chief},
            )
        )
    assert len(expected) > 14  # three pages of 7 at least
    seen, offset, pages = [], 0, []
    while True:
        p = _page(d, {"chief": chief}, limit=7, offset=offset)
        assert p["total"] == len(expected)
        assert p["first"] == offset + 1 and p["last"] == offset + len(p["items"])
        pages.append(p)
        seen += [r["id"] for r in p["items"]]
        if p["next_offset"] is None:
            break
        assert p["next_offset"] == offset + 7
        offset = p["next_offset"]
    assert seen == expected  # in order, none twice, none missing
    assert pages[0]["prev_offset"] is None and pages[1]["prev_offset"] == 0
    assert pages[-1]["last"] == len(expected)
    # past the end: empty, and "0" positions; a huge limit is cut to the largest page
    past = _page(d, {"chief": chief}, offset=len(expected) + 10)
    assert past["items"] == [] and past["first"] == past["last"] == 0
    big = _page(d, limit=10_000)
    assert big["limit"] == incident_list.MAX_PAGE_SIZE == len(big["items"])
    assert big["total"] == 600


def test_unknown_ids_and_bad_values_are_named(listed) -> None:
    d = listed
    with pytest.raises(NotFound, match="chief: staff 999999 does not exist"):
        _page(d, {"chief": 999999})
    with pytest.raises(NotFound, match="grid: grid 424242 does not exist"):
        _page(d, {"grid": "424242"})
    with pytest.raises(ValidationError, match="date_from"):
        _page(d, {"date_from": "yesterday"})
    with pytest.raises(ValidationError, match="severity must be among"):
        _page(d, {"class": "huge"})
    with session_scope(d.engine) as s, pytest.raises(NotFound, match="community"):
        incident_list.csv_lines(s, {"community": 31337})  # before the first byte


def _csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_csv_has_every_matching_row_and_a_bom(listed) -> None:
    d = listed
    add_random_incidents(d, 2500)  # more than a page, and more than one fetch batch
    with session_scope(d.engine) as s:
        expected = list(
            s.scalars(sa.text("SELECT id FROM incident ORDER BY reported_at DESC, id DESC"))
        )
        text = "".join(incident_list.csv_lines(s, {}))
        chief_text = "".join(incident_list.csv_lines(s, {"chief": d.staff["chief2"]}, "en"))
        chief2 = list(
            s.scalars(
                sa.text(
                    "SELECT id FROM incident WHERE chief_id = :c ORDER BY reported_at DESC, id DESC"
                ),
                {"c": d.staff["chief2"]},
            )
        )
    assert len(expected) == 2507 > incident_list.CSV_BATCH
    assert text.startswith("\ufeff")
    rows = _csv_rows(text[1:])
    head = rows[0]
    assert head[:4] == ["编号", "类别", "等级", "状态"]
    assert [int(r[0]) for r in rows[1:]] == expected
    col = {h: i for i, h in enumerate(head)}
    by_id = {int(r[0]): r for r in rows[1:]}
    a, g, c = (by_id[d.ids[k]] for k in ("a", "g", "c"))
    assert a[col["类别"]] == "道路破损" and a[col["地址"]] == "中山路1号"
    assert a[col["网格"]] == "G-A1" and a[col["街巷长"]] == "chief1"
    assert c[col["超期"]] == "超期结案" and c[col["结案时间"]] != ""
    assert g[col["问题描述"]] == HOSTILE  # text as it was written
    assert g[col["地址"]] == "'=HYPERLINK(1)"  # never a spreadsheet formula
    lon, lat = ll(200, 150)
    assert abs(float(a[col["经度（WGS84）"]]) - lon) < 1e-6
    assert abs(float(a[col["纬度（WGS84）"]]) - lat) < 1e-6
    en = _csv_rows(chief_text[1:])
    assert en[0][:4] == ["No.", "Category", "Class", "State"]
    assert [int(r[0]) for r in en[1:]] == chief2


# --------------------------------------------------------------------------- through Flask


def test_page_and_csv_over_http(listed, make_app) -> None:
    d = listed
    client = make_app(d.engine).test_client()
    r = client.get(f"/incidents/list?lang=zh_CN&chief={d.staff['chief1']}&limit=3")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert "第 1–3 条，共 4 条" in html
    assert re.findall(r'<tr data-id="(\d+)"', html) == [str(d.ids[k]) for k in "agf"]
    # the next page keeps the filter and the page size
    nxt = re.search(r'rel="next" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert f"chief={d.staff['chief1']}" in nxt and "limit=3" in nxt and "offset=3" in nxt
    html2 = client.get(nxt).get_data(as_text=True)
    assert re.findall(r'<tr data-id="(\d+)"', html2) == [str(d.ids["b"])]
    assert "第 4–4 条，共 4 条" in html2
    # the hostile description is escaped by the template, never markup
    assert HOSTILE not in html and "&lt;img src=x onerror=" in html
    # each row links to the map opened on that incident, in the page's language
    link = f'href="/incidents/map?incident={d.ids["a"]}&amp;lang=zh_CN"'
    assert link in html
    shown = client.get(f"/incidents/map?incident={d.ids['a']}&lang=zh_CN")
    assert shown.status_code == 200
    text = shown.get_data(as_text=True)
    assert f"#{d.ids['a']} · " in text  # the ring's label: id, category, state
    fitted = re.search(
        r"fitBounds\(\s*\[\[([-\d.]+), ([-\d.]+)\], \[([-\d.]+), ([-\d.]+)\]\]", text
    )
    s, w, n, e = (float(v) for v in fitted.groups())
    with d.engine.connect() as c:
        lon, lat = c.execute(
            sa.text("SELECT ST_X(geom), ST_Y(geom) FROM incident WHERE id = :i"), {"i": d.ids["a"]}
        ).one()
    assert s < lat < n and w < lon < e  # centred on it, at street level (< 1 km across)
    assert (e - w) * 111_320 * math.cos(math.radians(lat)) < 1000
    assert client.get("/incidents/map?incident=987654").status_code == 404
    # the nav has the list, next to the incident map
    nav = client.get("/incidents/map?lang=zh_CN").get_data(as_text=True)
    assert nav.index('href="/incidents/map"') < nav.index('href="/incidents/list"')
    # unknown ids: the API's 404, named on the page; the CSV the same
    bad = client.get("/incidents/list?chief=999999&lang=en")
    assert bad.status_code == 404
    assert "chief: staff 999999 does not exist" in bad.get_data(as_text=True)
    assert client.get("/api/incidents?chief=999999").status_code == 404
    assert client.get("/incidents/list.csv?chief=999999").status_code == 404
    assert client.get("/incidents/list?offset=-1").status_code == 400
    assert client.get("/incidents/list?date_to=soon").status_code == 400
    # the CSV: same filters, all matching rows, UTF-8 with a BOM
    r = client.get(f"/incidents/list.csv?chief={d.staff['chief1']}&limit=1")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert "attachment" in r.headers["Content-Disposition"]
    body = r.get_data()
    assert body.startswith(b"\xef\xbb\xbf")
    rows = _csv_rows(body.decode("utf-8-sig"))
    assert [int(x[0]) for x in rows[1:]] == [d.ids[k] for k in "agfb"]  # not just one page


# --------------------------------------------------------------------------- in Chromium


@pytest.fixture
def server(listed, make_app):
    s = LiveServer(make_app(listed.engine))
    yield s
    s.stop()


def _state(d, name: str) -> str:
    with d.engine.connect() as c:
        return c.scalar(sa.text("SELECT state FROM incident WHERE id = :i"), {"i": d.ids[name]})


def _row(page, d, name: str):
    return page.locator(f'tr[data-id="{d.ids[name]}"]')


def test_browser_lists_and_moves_an_incident(listed, server, page) -> None:
    d = listed
    page.goto(f"{server.url}/incidents/list?lang=zh_CN")
    assert page.locator("#list-count").inner_text() == "第 1–7 条，共 7 条"
    ids = page.locator("#incident-table tbody tr").evaluate_all(
        "rows => rows.map(r => Number(r.dataset.id))"
    )
    assert ids == [d.ids[k] for k in ORDER]
    row = _row(page, d, "a")
    assert row.locator("[data-state-label]").inner_text() == "受理"
    # the handler is the logged-in account, named at the top of the list
    assert page.locator("#handler").inner_text() == f"经办人 {ADMIN}"
    row.locator("[data-note]").fill("已派城管中队")
    row.locator('button[data-to="dispatched"]').click()
    row.locator('[data-state-label]:text-is("派遣")').wait_for()
    assert _state(d, "a") == "dispatched"
    with d.engine.connect() as c:
        ev = c.execute(
            sa.text(
                "SELECT from_state, to_state, actor, note FROM incident_event "
                "WHERE incident_id = :i ORDER BY id DESC LIMIT 1"
            ),
            {"i": d.ids["a"]},
        ).one()
    assert tuple(ev) == ("received", "dispatched", ADMIN, "已派城管中队")
    # the row offers what the loop allows now, and no reload happened
    buttons = row.locator("[data-moves] button").evaluate_all(
        "bs => bs.map(b => b.dataset.to + ':' + b.textContent)"
    )
    assert buttons == ["in_hand:→ 处置中", "returned:→ 退回"]
    assert "已转为 派遣" in row.locator("[data-msg]").inner_text()
    # on to closed: the buttons go, the overdue-free row gets no badge
    for to, label in (("in_hand", "处置中"), ("verified", "核查"), ("closed", "结案")):
        row.locator(f'button[data-to="{to}"]').click()
        row.locator(f'[data-state-label]:text-is("{label}")').wait_for()
    assert _state(d, "a") == "closed"
    assert row.locator("[data-moves] button").count() == 0
    assert row.locator("[data-note]").count() == 0
    # after a reload the same account is still the handler
    page.reload()
    assert page.locator("#handler").inner_text() == f"经办人 {ADMIN}"
    assert _row(page, d, "a").locator("[data-state-label]").inner_text() == "结案"
    assert page.errors == []


def test_browser_shows_the_apis_refusal(listed, server, page) -> None:
    d = listed
    page.goto(f"{server.url}/incidents/list?lang=zh_CN&state=open")
    row = _row(page, d, "b")  # in hand: verified or returned offered
    # meanwhile someone else sends it back
    with session_scope(d.engine) as s:
        transition(s, d.ids["b"], "returned", actor="王五")
    page.wait_for_timeout(50)
    row.locator('button[data-to="verified"]').click()
    msg = row.locator("[data-msg]")
    msg.locator("text=cannot go to verified").wait_for()
    assert (
        msg.inner_text() == f"未变更： incident {d.ids['b']} is returned; it cannot go to verified"
    )
    assert "msg-error" in msg.get_attribute("class")
    assert _state(d, "b") == "returned"  # nothing changed
    # the row now shows the state the API reported, and what it allows from there
    assert row.locator("[data-state-label]").inner_text() == "退回"
    assert row.locator("[data-moves] button").evaluate_all("bs => bs.map(b => b.dataset.to)") == [
        "dispatched"
    ]
    # a 400 too: a state the loop does not know (a page edited in the browser)
    row.locator('button[data-to="dispatched"]').evaluate("b => b.setAttribute('data-to', 'gone')")
    row.locator('button[data-to="gone"]').click()
    msg.locator("text=state must be one of").wait_for()
    assert msg.inner_text() == (f"未变更： state must be one of {', '.join(STATES)}; got 'gone'")
    assert _state(d, "b") == "returned"
    assert row.locator('button[data-to="gone"]').is_enabled()  # free to try again
    # the browser itself logs each refused response; nothing else went wrong
    assert page.errors == [
        "console error: Failed to load resource: the server responded with a status of 409 "
        "(CONFLICT)",
        "console error: Failed to load resource: the server responded with a status of 400 "
        "(BAD REQUEST)",
    ]


def test_browser_shows_hostile_text_as_text(listed, server, page) -> None:
    d = listed
    page.goto(f"{server.url}/incidents/list?lang=zh_CN")
    row = _row(page, d, "g")
    assert row.locator(".desc").inner_text() == HOSTILE
    assert page.locator("#incident-table img").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert page.errors == []


def test_browser_english_and_filters_from_the_query(listed, server, page) -> None:
    d = listed
    page.goto(f"{server.url}/incidents/list?lang=en&overdue=1")
    heads = page.locator("#incident-table thead th").all_inner_texts()
    assert heads == [
        "No.",
        "Category",
        "Class",
        "State",
        "Reported",
        "Due",
        "Address / description",
        "Grid",
        "Chief",
        "Next step",
    ]
    assert page.locator("#list-count").inner_text() == "1–1 of 1"
    row = _row(page, d, "b")
    assert row.locator("[data-badge]").inner_text() == "Overdue"
    assert page.locator('input[name="overdue"]').is_checked()
    # the filter form of the map pages: choose chief2, apply, the URL can be bookmarked
    page.uncheck('input[name="overdue"]')
    page.select_option('select[name="chief"]', str(d.staff["chief2"]))
    page.click("#incident-filters button[type=submit]")
    page.wait_for_url(re.compile(rf"chief={d.staff['chief2']}"))
    assert "lang=en" in page.url
    ids = page.locator("#incident-table tbody tr").evaluate_all(
        "rows => rows.map(r => Number(r.dataset.id))"
    )
    assert ids == [d.ids["c"], d.ids["e"]]
    csv_href = page.locator("#list-csv").get_attribute("href")
    assert csv_href.startswith("/incidents/list.csv?") and f"chief={d.staff['chief2']}" in csv_href
    assert page.errors == []
