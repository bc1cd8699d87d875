"""The shared incident filter (:class:`mapsvc.services.incidents.IncidentFilter`).

Parsing of request-style values; its SQLAlchemy Core clauses counted against PostGIS next
to hand-written SQL with the same meaning (the oracle below is written here, not taken
from the code under test); every caller (list, JSON API, heatmap, figures) meaning the
same incidents; unknown ids; and hostile values that must stay bound parameters.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import urllib.parse

import pytest
import sqlalchemy as sa

from layers import get_layer
from mapsvc.config import Settings
from mapsvc.core.errors import NotFound, ValidationError
from mapsvc.db import session_scope
from mapsvc.models import Incident
from mapsvc.services import incident_list
from mapsvc.services import incidents as svc
from mapsvc.services.incidents import IncidentFilter, incident_filter
from mapsvc.services.routing import OPEN_STATES
from tests.fixtures.incidents import ll

#: the default district clock the layout is drawn on
LOCAL_TZ = Settings().tz
HOSTILE = "'; DROP TABLE incident; --"
#: more text that would break SQL pasted into a statement: quotes, a comment, a colon
#: parameter, a percent sign (psycopg's own placeholder character), a backslash
NASTY = ("a'b", 'c"d', "x' OR '1'='1", ":f_category", "%(x)s %s", "back\\slash", "--")

INCIDENT = Incident.__table__


def _count(s, f: IncidentFilter) -> int:
    return int(
        s.scalar(sa.select(sa.func.count()).select_from(INCIDENT).where(*f.clauses(INCIDENT)))
    )


def _sql(s, where: str, **params) -> int:
    """The oracle: a count written by hand in SQL."""
    return int(s.scalar(sa.text(f"SELECT count(*) FROM incident WHERE {where}"), params))


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), LOCAL_TZ)


# --------------------------------------------------------------------------- parsing


def test_parse_request_values() -> None:
    assert IncidentFilter.parse({}) == IncidentFilter() == incident_filter(None)
    assert IncidentFilter().clauses(INCIDENT) == []  # nothing to filter: no condition
    f = IncidentFilter.parse(
        {"class": "minor, major", "category": "road,litter", "grid": "3, 4", "chief": 7}
    )
    assert f.severity == ("minor", "major") and f.category == ("road", "litter")
    assert f.grid == (3, 4) and f.chief == (7,)
    # severity wins over its alias; "open" stands for every open state
    assert IncidentFilter.parse({"severity": "grave", "class": "minor"}).severity == ("grave",)
    f = IncidentFilter.parse({"state": "open,closed"})
    assert set(f.state) == {*OPEN_STATES, "closed"} and "open" not in f.state
    # a bare date_to is that whole day in the district: strictly before the next midnight
    f = IncidentFilter.parse({"date_from": "2026-03-01", "date_to": "2026-03-01"})
    assert f.reported_from == _midnight(dt.date(2026, 3, 1))
    assert f.reported_to == _midnight(dt.date(2026, 3, 2)) and f.reported_to_exclusive
    f = IncidentFilter.parse({"date_to": "2026-03-01T10:30:00+08:00"})
    assert f.reported_to == dt.datetime(2026, 3, 1, 2, 30, tzinfo=dt.UTC)
    assert not f.reported_to_exclusive  # a moment: up to and including it
    f = IncidentFilter.parse({"overdue": "yes", "to_confirm": "0", "bbox": ("1", 2, 3, 4)})
    assert f.overdue and not f.to_confirm and f.bbox == (1.0, 2.0, 3.0, 4.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.overdue = False  # a value: callers cannot change what another caller holds
    # an IncidentFilter passes through as it is
    assert incident_filter(f) is f


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"severity": "huge"}, "severity"),
        ({"class": "huge"}, "severity"),
        ({"state": "lost"}, "state"),
        ({"state": HOSTILE}, "state"),
        ({"date_from": "yesterday"}, "date_from"),
        ({"date_to": HOSTILE}, "date_to"),
        ({"grid": "1,x"}, "grid"),
        ({"chief": HOSTILE}, "chief"),
        ({"subdistrict": "x1"}, "subdistrict"),
        ({"segment": "1.5"}, "segment"),
        # checked in a fixed order: the first malformed value is the one named
        ({"grid": "x", "severity": "huge", "date_from": "never"}, "severity"),
    ],
)
def test_malformed_values_name_the_filter(filters: dict, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        IncidentFilter.parse(filters)
    assert err.value.details["field"] == field


# --------------------------------------------------------------------------- against PostGIS


def test_clauses_count_like_hand_written_sql(populated) -> None:
    d = populated
    (x0, y0), (x1, y1) = ll(0, 0), ll(500, 300)
    with session_scope(d.engine) as s:
        # a real reported time to test the inclusive end of a date-time date_to
        t = s.scalar(sa.text("SELECT reported_at FROM incident ORDER BY id LIMIT 1 OFFSET 300"))
        day = (dt.datetime.now(LOCAL_TZ) - dt.timedelta(days=100)).date()
        cases = [
            ({"category": "litter,noise"}, "category IN ('litter', 'noise')", {}),
            ({"class": "minor"}, "severity = 'minor'", {}),
            ({"state": "open"}, "state <> 'closed'", {}),
            ({"state": "closed,returned"}, "state IN ('closed', 'returned')", {}),
            ({"date_from": day.isoformat()}, "reported_at >= :a", {"a": _midnight(day)}),
            (
                {"date_to": day.isoformat()},
                "reported_at < :b",
                {"b": _midnight(day + dt.timedelta(days=1))},
            ),
            ({"date_to": t.isoformat()}, "reported_at <= :t", {"t": t}),
            (
                {"grid": f"{d.grid['A1']},{d.grid['A2']}"},
                "grid_id IN (:a, :b)",
                {"a": d.grid["A1"], "b": d.grid["A2"]},
            ),
            ({"community": d.community["B"]}, "community_id = :v", {"v": d.community["B"]}),
            ({"subdistrict": d.subdistrict}, "community_id IS NOT NULL", {}),
            ({"chief": d.staff["chief1"]}, "chief_id = :v", {"v": d.staff["chief1"]}),
            ({"segment": d.segment["seg3"]}, "segment_id = :v", {"v": d.segment["seg3"]}),
            (
                {"bbox": (x0, y0, x1, y1)},
                "ST_Intersects(geom, ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326))",
                {"x0": x0, "y0": y0, "x1": x1, "y1": y1},
            ),
            ({"overdue": "1"}, "state <> 'closed' AND due_at < now()", {}),
            ({"to_confirm": "true"}, "location_to_confirm AND state <> 'closed'", {}),
            (
                {"state": "open", "grid": d.grid["A1"], "class": "minor,ordinary"},
                "state <> 'closed' AND grid_id = :g AND severity IN ('minor', 'ordinary')",
                {"g": d.grid["A1"]},
            ),
        ]
        for filters, where, params in cases:
            expected = _sql(s, where, **params)
            assert 0 < expected < 600, (filters, expected)  # each case really filters
            assert _count(s, incident_filter(filters, s)) == expected, filters


def test_every_caller_means_the_same_incidents(populated) -> None:
    """The list, its CSV, the JSON API's list, the heatmap, the overdue layer and the
    figures all take the one filter: the same filters give the same totals."""
    d = populated
    heat, hexes = get_layer("heatmap"), get_layer("incident_hexbins")
    for filters in (
        {},
        {"state": "open", "class": "minor,major"},
        {"chief": d.staff["chief1"]},
        {"subdistrict": d.subdistrict, "category": "road"},
        {"overdue": "1"},
    ):
        with session_scope(d.engine) as s:
            n = _count(s, incident_filter(filters))
            assert n > 0, filters
            assert incident_list.count(s, filters) == n
            assert incident_list.page(s, filters, limit=5)["total"] == n
            csv_rows = "".join(incident_list.csv_lines(s, filters)).count("\r\n") - 1
            assert csv_rows == n
            assert svc.list_incidents(s, filters, limit=1)["total"] == n
            assert heat.query(s, None, zoom=15, **filters)["total"] == n
            assert hexes.query(s, None, zoom=15, **filters)["total"] == n
            assert svc.district_figures(s, filters)["total"] == n
            in_a_community = s.scalar(
                sa.select(sa.func.count()).where(
                    INCIDENT.c.community_id.is_not(None),
                    *incident_filter(filters).clauses(INCIDENT),
                )
            )
            by_community = svc.figures(s, "community", filters)
            assert sum(u["count"] for u in by_community) == in_a_community
            overdue = {**filters, "overdue": "1"}
            assert len(get_layer("overdue_incidents").query(s, None, **filters)["features"]) == (
                _count(s, incident_filter(overdue))
            )


def test_clauses_apply_to_the_replayed_history(populated) -> None:
    """The figures of a past moment read a replay of ``incident`` (a temporary table):
    the same filter applies to it."""
    d = populated
    with session_scope(d.engine) as s:
        as_of = dt.datetime.now(dt.UTC) - dt.timedelta(days=60)
        filters = {"grid": d.grid["A1"], "class": "minor,grave"}
        got = svc.district_figures(s, filters, as_of=as_of)["total"]
        expected = _sql(
            s,
            "grid_id = :g AND severity IN ('minor', 'grave') AND reported_at <= :t",
            g=d.grid["A1"],
            t=as_of,
        )
        assert 0 < got == expected
        by_grid = {u["id"]: u["count"] for u in svc.figures(s, "grid", filters, as_of=as_of)}
        assert by_grid == {d.grid["A1"]: expected}


def test_unknown_ids_are_not_found_naming_only_them(populated) -> None:
    d = populated
    huge = 10**20  # beyond bigint: it names nothing (and must not be a database error)
    with session_scope(d.engine) as s:
        with pytest.raises(NotFound) as err:
            incident_filter({"grid": f"{d.grid['A1']},424242"}, s)
        assert str(err.value) == "grid: grid 424242 does not exist"
        assert err.value.details == {"field": "grid"}
        for field, noun in (("community", "community"), ("chief", "staff")):
            with pytest.raises(NotFound, match=f"^{field}: {noun} {huge} does not exist$"):
                incident_filter({field: str(huge)}, s)
        with pytest.raises(NotFound, match="subdistrict: subdistrict 31337 does not exist"):
            incident_filter({"subdistrict": 31337}, s)
        with pytest.raises(NotFound, match="segment: segment 31337 does not exist"):
            incident_filter({"segment": 31337}, s)
        # without a session nothing is looked up: such ids just match no incident
        assert _count(s, incident_filter({"chief": huge})) == 0
        assert _count(s, incident_filter({"grid": f"{huge},{d.grid['A1']}"})) == _sql(
            s, "grid_id = :g", g=d.grid["A1"]
        )


# --------------------------------------------------------------------------- hostile values


@pytest.fixture
def statements(populated):
    """Every statement sent to PostgreSQL during the test, with its parameters."""
    sent: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        sent.append((statement, parameters))

    sa.event.listen(populated.engine, "before_cursor_execute", record)
    yield sent
    sa.event.remove(populated.engine, "before_cursor_execute", record)


def test_hostile_values_are_bound_parameters(populated, statements) -> None:
    """Text from a request reaches PostgreSQL only as a parameter: no error, no effect,
    and it never appears in a statement's SQL."""
    d = populated
    values = ",".join((HOSTILE, *NASTY))
    f = {"category": values}
    with session_scope(d.engine) as s:
        s.execute(
            sa.text(
                "INSERT INTO incident_category (code, name_zh, name_en, default_severity) "
                "VALUES (:c, :c, :c, 'minor')"
            ),
            {"c": "a'b"},
        )
        lon, lat = ll(200, 160)
        svc.create_incident(s, {"category": "a'b", "lon": lon, "lat": lat}, actor="t")
    statements.clear()
    with session_scope(d.engine) as s:
        assert _count(s, incident_filter(f, s)) == 1  # the one whose code has a quote
        assert incident_list.page(s, f)["total"] == 1
        # the heading and the one row
        assert "".join(incident_list.csv_lines(s, f)).count("\r\n") == 2
        assert svc.list_incidents(s, f)["total"] == 1
        assert get_layer("heatmap").query(s, None, zoom=14, **f)["total"] == 1
        assert get_layer("incident_hexbins").query(s, None, zoom=14, **f)["total"] == 1
        grids = get_layer("incident_choropleth").query(s, None, **f)["features"]
        assert sum(g["properties"]["count"] for g in grids) == 1
        assert svc.district_figures(s, f)["total"] == 1
        assert _count(s, incident_filter({"category": HOSTILE})) == 0
    sql = "\n".join(statement for statement, _p in statements)
    for value in (HOSTILE, *NASTY[:-1]):
        assert value not in sql, value
    assert HOSTILE in repr([p for _s, p in statements])  # it went as a parameter
    with session_scope(d.engine) as s:
        assert _sql(s, "TRUE") == 601  # nothing dropped, nothing changed


def test_hostile_values_over_http(populated, make_app) -> None:
    d = populated
    client = make_app(d.engine).test_client()
    q = urllib.parse.urlencode({"category": HOSTILE})
    for url, total in (
        (f"/api/incidents?{q}", lambda b: b["total"]),
        (f"/api/heatmap?zoom=13&{q}", lambda b: b["total"]),
        (f"/api/heatmap?zoom=13&bins=hex&{q}", lambda b: b["total"]),
        (f"/api/incidents/stats?{q}", lambda b: b["district"]["total"]),
    ):
        r = client.get(url)
        assert r.status_code == 200, (url, r.get_json())
        assert total(r.get_json()) == 0, url
    for url in (f"/incidents/list?{q}", f"/incidents/map?{q}", f"/incidents/choropleth?{q}"):
        assert client.get(url).status_code == 200, url
    r = client.get(f"/incidents/list.csv?{q}")
    assert r.status_code == 200 and r.get_data(as_text=True).count("\r\n") == 1  # heading only
    # a value that must be one of a list is refused by name, not sent anywhere
    r = client.get("/api/incidents?" + urllib.parse.urlencode({"state": HOSTILE}))
    assert r.status_code == 400 and r.get_json()["field"] == "state"
    r = client.get("/api/incidents?" + urllib.parse.urlencode({"chief": HOSTILE}))
    assert r.status_code == 400 and r.get_json()["field"] == "chief"
    with session_scope(d.engine) as s:
        assert _sql(s, "TRUE") == 600
