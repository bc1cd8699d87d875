"""Heatmap page filters: community, grid and chief reach the layers; unknown ids; Chromium."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from layers import get_layer
from layers.heatmap import filter_choices, fit_bounds
from mapsvc.config import Settings
from mapsvc.db import session_scope
from mapsvc.services.assignments import end_assignment
from tests.fixtures.incidents import layout_count, zoom_and_wait
from tests.fixtures.web import LiveServer, wait_until

WAIT_LOADED = "document.querySelector('.folium-map').dataset.heatLoading === '0'"


def _count(s, where: str, **params) -> int:
    return int(s.scalar(sa.text(f"SELECT count(*) FROM incident WHERE {where}"), params))


def test_place_and_chief_filters_count_like_sql(populated) -> None:
    d = populated
    heat = get_layer("heatmap")
    overdue = get_layer("overdue_incidents")
    with session_scope(d.engine) as s:
        cases = [
            ({"chief": d.staff["chief1"]}, "chief_id = :v", d.staff["chief1"]),
            ({"chief": str(d.staff["chief2"])}, "chief_id = :v", d.staff["chief2"]),
            ({"grid": d.grid["A2"]}, "grid_id = :v", d.grid["A2"]),
            ({"community": d.community["B"]}, "community_id = :v", d.community["B"]),
        ]
        for f, where, v in cases:
            expected = _count(s, where, v=v)
            assert expected > 0, f  # the district routes incidents to both chiefs and grids
            assert expected == layout_count(d, f), f  # and where the test put them
            for zoom in (12, 16):
                data = heat.query(s, None, zoom=zoom, **f)
                assert data["total"] == sum(p[2] for p in data["points"]) == expected, f
            od = overdue.query(s, None, **f)
            assert len(od["features"]) == _count(
                s, f"{where} AND state <> 'closed' AND due_at < now()", v=v
            )
        # two chiefs together: the union, as a comma list
        both = heat.query(s, None, zoom=14, chief=f"{d.staff['chief1']},{d.staff['chief2']}")
        two = [d.staff["chief1"], d.staff["chief2"]]
        assert both["total"] == _count(s, "chief_id = ANY(:v)", v=two)
        assert both["total"] == layout_count(d, {"chief": f"{two[0]},{two[1]}"})
        # a chief's map is fitted to his incidents: every one of them lies inside
        (south, west), (north, east) = fit_bounds(s, {"chief": d.staff["chief1"]})
        inside = _count(
            s,
            "chief_id = :v AND ST_Intersects(geom, ST_MakeEnvelope(:w, :so, :e, :n, 4326))",
            v=d.staff["chief1"],
            w=west,
            so=south,
            e=east,
            n=north,
        )
        assert inside == _count(s, "chief_id = :v", v=d.staff["chief1"])
        assert east - west < 0.02  # not the district: the chief's segment and around it
        assert fit_bounds(s, {"chief": d.staff["headA1"]}) is None  # no incidents: None


def test_filter_choices_are_todays_chiefs_and_grids_by_community(populated) -> None:
    d = populated
    with session_scope(d.engine) as s:
        c = filter_choices(s)
        assert c["chiefs"] == sorted([(d.staff["chief1"], "chief1"), (d.staff["chief2"], "chief2")])
        assert [cid for cid, _n in c["communities"]] == [d.community["A"], d.community["B"]]
        groups = {cid: [g[1] for g in grids] for cid, _name, grids in c["grids"]}
        assert groups == {d.community["A"]: ["G-A1", "G-A2"], d.community["B"]: ["G-B1"]}
        # chief2's post ended yesterday: he is no longer offered
        aid = s.scalar(
            sa.text("SELECT id FROM assignment WHERE staff_id = :s"), {"s": d.staff["chief2"]}
        )
        end_assignment(s, aid, Settings().today() - dt.timedelta(days=1))
        s.flush()
        assert [i for i, _n in filter_choices(s)["chiefs"]] == [d.staff["chief1"]]


def test_unknown_or_malformed_ids_are_400_or_404(populated, make_app) -> None:
    client = make_app(populated.engine).test_client()
    for url in ("/incidents/map?chief=987654", "/api/heatmap?chief=987654&zoom=12"):
        r = client.get(url)
        assert r.status_code == 404, url
        body = r.get_json()
        assert body["field"] == "chief" and "987654" in body["error"], body
    r = client.get(f"/incidents/map?grid={populated.grid['A1']},876543")
    assert r.status_code == 404 and "876543" in r.get_json()["error"]
    assert "A1" not in r.get_json()["error"]  # only the missing one is named
    r = client.get("/incidents/choropleth?community=765432")
    assert r.status_code == 404 and r.get_json()["field"] == "community"
    r = client.get("/incidents/map?chief=abc")
    assert r.status_code == 400 and r.get_json()["field"] == "chief"
    r = client.get("/api/heatmap?zoom=12&subdistrict=x1")
    assert r.status_code == 400 and "subdistrict" in r.get_json()["error"]
    ok = client.get(f"/incidents/map?chief={populated.staff['chief1']}")
    assert ok.status_code == 200


def test_form_lists_places_and_chiefs(populated, make_app) -> None:
    d = populated
    client = make_app(d.engine).test_client()
    html = client.get(f"/incidents/map?lang=en&chief={d.staff['chief2']}").get_data(as_text=True)
    assert '<select name="community">' in html and '<select name="chief">' in html
    assert f'<optgroup label="社区A" data-community="{d.community["A"]}">' in html
    assert f'<option value="{d.staff["chief2"]}" selected>chief2</option>' in html
    assert f'<option value="{d.grid["B1"]}">G-B1 网格B1</option>' in html
    zh = client.get("/incidents/map?lang=zh_CN").get_data(as_text=True)
    assert "社区" in zh and "街巷长" in zh


def _shown_total(page) -> int:
    text = page.inner_text(".mapsvc-heat-total")
    return int(text.split()[0].replace(",", ""))


def test_choosing_a_chief_in_chromium(populated, make_app, page) -> None:
    d = populated
    server = LiveServer(make_app(d.engine))
    try:
        page.goto(f"{server.url}/incidents/map?lang=en")
        wait_until(page, WAIT_LOADED)
        everyone = _shown_total(page)
        assert everyone == 600
        # community B limits the grid list to B's grids; a grid of A is unselected
        page.select_option("select[name=grid]", str(d.grid["A1"]))
        page.select_option("select[name=community]", str(d.community["B"]))
        assert page.eval_on_selector("select[name=grid]", "e => e.value") == ""
        visible = page.eval_on_selector_all(
            "select[name=grid] optgroup:not([hidden]) option", "os => os.map(o => o.value)"
        )
        assert visible == [str(d.grid["B1"])]
        page.select_option("select[name=community]", "")
        # choose chief1 and apply: the total shown is his, as counted in SQL
        page.select_option("select[name=chief]", str(d.staff["chief1"]))
        with page.expect_navigation():
            page.click("#incident-filters button[type=submit]")
        wait_until(page, WAIT_LOADED)
        assert f"chief={d.staff['chief1']}" in page.url
        with session_scope(d.engine) as s:
            his = _count(s, "chief_id = :v", v=d.staff["chief1"])
        assert 0 < his < everyone
        assert his == layout_count(d, {"chief": d.staff["chief1"]})
        assert _shown_total(page) == his
        assert int(page.eval_on_selector(".folium-map", "e => e.dataset.heatTotal")) == his
        # the filter stays on every refresh: zoom out, still only his incidents
        zoom_and_wait(page, -2)
        assert _shown_total(page) == his
        assert page.eval_on_selector("select[name=chief]", "e => e.value") == str(d.staff["chief1"])
        assert page.errors == []
    finally:
        server.stop()
