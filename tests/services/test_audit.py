"""The audit trail through the services: who is named, what the rows hold before and after,
the filters and pages of :mod:`mapsvc.services.audit`, and the streamed export.

Writes go through the services and plain SQL on the hand-built district of
``tests/fixtures/incidents.py``; the expected rows are what the test wrote, read back from
the tables themselves.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

from mapsvc.config import Settings
from mapsvc.core.actor import Actor
from mapsvc.core.errors import ValidationError
from mapsvc.db import session_scope
from mapsvc.services import audit
from mapsvc.services.audit import AuditFilter, set_actor
from mapsvc.services.incident_import import import_csv
from mapsvc.services.incidents import create_incident, transition
from tests.fixtures.audit import audit_rows, last_audit_id
from tests.fixtures.incidents import ll, write_csv

ALICE = Actor(user_id=7, username="alice", address="10.1.2.3", via="session")
TZ = Settings().tz


def _who(row: dict) -> tuple:
    return (row["user_id"], row["username"], row["address"], row["via"])


def _who_of(actor: Actor) -> tuple:
    return (actor.user_id, actor.username, actor.address, actor.via)


def test_a_grid_added_changed_and_deleted(district) -> None:
    d = district
    since = last_audit_id(d.engine)
    with session_scope(d.engine) as s:
        set_actor(s, ALICE)
        gid = s.scalar(
            sa.text(
                "INSERT INTO grid (code, name, community_id, geom, population, households) "
                "SELECT 'G-new', '新网格', community_id, geom, 10, 3 FROM grid WHERE id = :a "
                "RETURNING id"
            ),
            {"a": d.grid["A1"]},
        )
        area = s.scalar(sa.text("SELECT area_km2 FROM grid WHERE id = :g"), {"g": gid})
        # the recorded GeoJSON is the stored geometry exactly (SRID and every digit)
        same_geometry = s.scalar(
            sa.text(
                "SELECT ST_AsEWKB(ST_GeomFromGeoJSON(a.after -> 'geom')) = ST_AsEWKB(g.geom) "
                "FROM audit_log a JOIN grid g ON a.record_id = g.id::text "
                "WHERE a.table_name = 'grid' AND a.action = 'insert' AND g.id = :g"
            ),
            {"g": gid},
        )
        s.execute(
            sa.text("UPDATE grid SET name = '改名网格', population = 11 WHERE id = :g"), {"g": gid}
        )
        s.execute(sa.text("DELETE FROM grid WHERE id = :g"), {"g": gid})
        xact = s.scalar(sa.text("SELECT txid_current()"))
    rows = audit_rows(d.engine, since)
    assert [(r["table_name"], r["action"], r["record_id"]) for r in rows] == [
        ("grid", "insert", str(gid)),
        ("grid", "update", str(gid)),
        ("grid", "delete", str(gid)),
    ]
    assert {_who(r) for r in rows} == {_who_of(ALICE)}
    assert {r["transaction_id"] for r in rows} == {xact}  # the write's own transaction
    added, changed, deleted = rows
    assert added["before"] is None
    assert (added["after"]["code"], added["after"]["name"]) == ("G-new", "新网格")
    assert added["after"]["area_km2"] == area  # the generated column, as stored
    assert added["after"]["geom"]["type"] == "MultiPolygon" and same_geometry is True
    assert changed["before"] == added["after"]
    diff = {k for k in changed["after"] if changed["after"][k] != changed["before"][k]}
    assert diff == {"name", "population"}
    assert (changed["after"]["name"], changed["after"]["population"]) == ("改名网格", 11)
    assert deleted["before"] == changed["after"] and deleted["after"] is None
    # the page shows the changed fields first, flagged; the rest folded
    with d.engine.connect() as c:
        item = audit.page(c, AuditFilter(table="grid", record=str(gid)), tz=TZ)
    shown = {i["action"]: i for i in item.items}
    assert [c.field for c in shown["update"]["changed"]] == ["name", "population"]
    assert [(c.before, c.after) for c in shown["update"]["changed"]] == [
        ("新网格", "改名网格"),
        ("10", "11"),
    ]
    assert "code" in {c.field for c in shown["update"]["unchanged"]}
    geom = next(c for c in shown["insert"]["changed"] if c.field == "geom")
    assert geom.before is None and geom.after == "MultiPolygon (5 points)"


def test_an_incident_transition_through_the_service(district) -> None:
    d = district
    lon, lat = ll(200, 150)
    with session_scope(d.engine) as s:
        set_actor(s, ALICE)
        inc = create_incident(
            s, {"category": "road", "lon": lon, "lat": lat, "description": "路面坑洼"}, actor="甲"
        )
        iid = inc.id
    since = last_audit_id(d.engine)
    dispatcher = Actor(user_id=9, username="dispatcher", address="::1", via="token")
    with session_scope(d.engine) as s:
        set_actor(s, dispatcher)
        transition(s, iid, "dispatched", actor="dispatcher", note="派城管")
    rows = audit_rows(d.engine, since)
    assert {_who(r) for r in rows} == {_who_of(dispatcher)}
    assert len({r["transaction_id"] for r in rows}) == 1
    moved = [r for r in rows if r["table_name"] == "incident"]
    assert [(r["action"], r["record_id"]) for r in moved] == [("update", str(iid))]
    assert (moved[0]["before"]["state"], moved[0]["after"]["state"]) == ("received", "dispatched")
    events = [r for r in rows if r["table_name"] == "incident_event"]
    with d.engine.connect() as c:
        ev = c.execute(
            sa.text(
                "SELECT id, to_state, note FROM incident_event WHERE incident_id = :i "
                "ORDER BY id DESC LIMIT 1"
            ),
            {"i": iid},
        ).one()
    assert [(r["action"], r["record_id"]) for r in events] == [("insert", str(ev.id))]
    assert (events[0]["after"]["to_state"], events[0]["after"]["note"]) == (ev.to_state, ev.note)
    assert {r["table_name"] for r in rows} == {"incident", "incident_event"}


def test_a_bulk_import_records_every_row(district, tmp_path) -> None:
    d = district
    n = 300
    t = dt.datetime(2026, 3, 1, 9, 30)
    rows = []
    for k in range(n):
        lon, lat = ll(20 + (k * 37) % 960, 20 + (k * 53) % 560)
        rows.append([f"H{k:04d}", f"{lat:.8f}", f"{lon:.8f}", "litter", t.isoformat()])
    f = write_csv(tmp_path / "hotline.csv", ["id", "lat", "lon", "category", "opened"], rows)
    since = last_audit_id(d.engine)
    importer = Actor(username="importer", via="cli")
    with d.engine.begin() as conn:
        set_actor(conn, importer)
        result = import_csv(conn, f)
    assert result.imported == n
    written = audit_rows(d.engine, since)
    assert {_who(r) for r in written} == {_who_of(importer)}
    by_table: dict[str, list[dict]] = {}
    for r in written:
        by_table.setdefault(r["table_name"], []).append(r)
    assert set(by_table) == {"incident", "incident_event"}
    with d.engine.connect() as c:
        stored = {
            str(r.id): r
            for r in c.execute(sa.text("SELECT id, external_id, grid_id, chief_id FROM incident"))
        }
        events = set(map(str, c.scalars(sa.text("SELECT id FROM incident_event"))))
    incidents = by_table["incident"]
    assert {r["action"] for r in incidents} == {"insert"}
    assert sorted(r["record_id"] for r in incidents) == sorted(stored)
    # each row as stored, routing included
    for r in incidents:
        s = stored[r["record_id"]]
        assert (r["after"]["external_id"], r["after"]["grid_id"], r["after"]["chief_id"]) == (
            s.external_id,
            s.grid_id,
            s.chief_id,
        )
    assert {r["after"]["external_id"] for r in incidents} == {row[0] for row in rows}
    assert sorted(r["record_id"] for r in by_table["incident_event"]) == sorted(events)


def test_filters_pages_and_their_errors(district) -> None:
    d = district
    bob = Actor(user_id=12, username="bob", via="session")
    for actor, code in ((ALICE, "c1"), (bob, "c2"), (ALICE, "c3")):
        with session_scope(d.engine) as s:
            set_actor(s, actor)
            s.execute(
                sa.text("INSERT INTO staff (code, name, role) VALUES (:c, :c, 'grid_member')"),
                {"c": code},
            )
            s.execute(sa.text("UPDATE staff SET phone = '1' WHERE code = :c"), {"c": code})
    with d.engine.connect() as c:
        everything = audit_rows(d.engine)

        def ids(f: AuditFilter, **kw) -> list[int]:
            return [i["id"] for i in audit.page(c, f, tz=TZ, **kw).items]

        newest_first = sorted((r["id"] for r in everything), reverse=True)
        assert ids(AuditFilter(), limit=500) == newest_first
        alice = [r["id"] for r in reversed(everything) if r["username"] == "alice"]
        assert len(alice) == 4
        assert ids(AuditFilter(user="alice")) == alice
        assert ids(AuditFilter(user="12")) == [
            r["id"] for r in reversed(everything) if r["user_id"] == 12
        ]
        staff_c2 = [
            r["id"]
            for r in reversed(everything)
            if r["table_name"] == "staff" and (r["after"] or {}).get("code") == "c2"
        ]
        record = next(r["record_id"] for r in everything if r["id"] == staff_c2[0])
        assert ids(AuditFilter(table="staff", record=record)) == staff_c2
        assert ids(AuditFilter(table="staff", action="update")) == [
            r["id"]
            for r in reversed(everything)
            if r["table_name"] == "staff" and r["action"] == "update"
        ]
        today = dt.datetime.now(TZ).date()
        assert ids(AuditFilter(date_from=today, date_to=today), limit=500) == newest_first
        assert ids(AuditFilter(date_to=today - dt.timedelta(days=1))) == []
        # pages of 2 walk the whole trail, older and newer
        seen, cursor = [], None
        while True:
            p = audit.page(c, AuditFilter(user="alice"), tz=TZ, limit=2, before=cursor)
            seen += [i["id"] for i in p.items]
            if p.older is None:
                break
            cursor = p.older
        assert seen == alice
        back = audit.page(c, AuditFilter(user="alice"), tz=TZ, limit=2, after=alice[2])
        assert [i["id"] for i in back.items] == alice[:2] and back.newer is None
        assert back.older == alice[1]
        assert audit.page(c, AuditFilter(user="nobody"), tz=TZ).items == []
    for params, field, text in (
        ({"table": "passwords"}, "table", "not an audited table"),
        ({"action": "drop"}, "action", "not one of insert"),
        ({"date_from": "2026-13-01"}, "date_from", "must be a date"),
        ({"date_from": "2026-02-02", "date_to": "2026-02-01"}, "date_to", "is before"),
        ({"record": "x" * 201}, "record", "too long"),
    ):
        with pytest.raises(ValidationError, match=text) as info:
            AuditFilter.from_params(params)
        assert info.value.details["field"] == field
    f = AuditFilter.from_params({"user": " alice ", "table": "staff", "date_to": "2026-02-01"})
    assert f.params() == {"user": "alice", "table": "staff", "date_to": "2026-02-01"}


def test_export_streams_every_matching_row_as_csv_and_json_lines(district) -> None:
    d = district
    hostile = '=HYPERLINK("http://x")'
    with session_scope(d.engine) as s:
        set_actor(s, Actor(username=hostile, via="session"))
        s.execute(sa.text("UPDATE staff SET phone = '138' WHERE code = 'chief1'"))
    expected = audit_rows(d.engine, table="staff")
    with d.engine.connect() as c:
        f = AuditFilter(table="staff")
        assert audit.count(c, f, tz=TZ) == len(expected)
        exported = list(audit.export_rows(c, f, tz=TZ, batch=2))
        lines = list(audit.jsonl_lines(exported))
        csv_text = "".join(audit.csv_lines(exported))
    assert [r["id"] for r in exported] == [r["id"] for r in expected]
    decoded = [json.loads(line) for line in lines]
    assert [(r["before"], r["after"], r["username"]) for r in decoded] == [
        (r["before"], r["after"], r["username"]) for r in expected
    ]
    assert all(
        dt.datetime.fromisoformat(r["at"]) == e["at"]
        for r, e in zip(decoded, expected, strict=True)
    )
    import csv
    import io

    assert csv_text.startswith("\ufeff")
    table = list(csv.DictReader(io.StringIO(csv_text.lstrip("\ufeff"))))
    assert list(table[0]) == list(audit.EXPORT_COLUMNS)
    assert [json.loads(r["after"]) for r in table] == [r["after"] for r in expected]
    assert table[-1]["username"] == "'" + hostile  # shown as text by a spreadsheet
