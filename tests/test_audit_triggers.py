"""The audit trail's database half: every table of the service has the audit triggers, the
trail cannot be changed, and a write without a named actor still names the database user.

A model table added without ``attach_audit`` in its migration fails
:func:`test_every_table_of_the_service_has_the_audit_triggers`.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from mapsvc.db import session_scope
from mapsvc.migrations import downgrade, upgrade
from mapsvc.migrations.audit import AUDIT_FUNCTION, AUDIT_TRIGGERS, trigger_name
from mapsvc.models import audited_tables, table_names
from tests.fixtures.audit import audit_rows, last_audit_id

#: tables in the database that are not the service's own (PostGIS's, Alembic's)
FOREIGN_TABLES = {"spatial_ref_sys", "alembic_version"}

TRIGGERS = """
SELECT c.relname AS table_name, t.tgname AS name, p.proname AS function, t.tgenabled AS enabled,
       (t.tgtype & 1) = 1 AS per_row
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
JOIN pg_proc p ON p.oid = t.tgfoid
WHERE NOT t.tgisinternal
"""


def _public_tables(conn) -> set[str]:
    return set(
        conn.scalars(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).all()
    )


def test_every_table_of_the_service_has_the_audit_triggers(fresh_engine) -> None:
    """Each table (from the models, and any other table in the schema) has the four
    statement-level triggers of ``audit_record``, enabled; ``audit_log`` has none of them."""
    with fresh_engine.connect() as conn:
        triggers = conn.execute(sa.text(TRIGGERS)).all()
        tables = _public_tables(conn) - FOREIGN_TABLES - {"audit_log"}
    assert set(audited_tables()) == set(table_names()) - {"audit_log"}
    assert set(audited_tables()) <= tables  # the models' tables all exist
    audit = {(t.table_name, t.name) for t in triggers if t.function == AUDIT_FUNCTION}
    expected = {
        (table, trigger_name(table, event)) for table in tables for event, _ in AUDIT_TRIGGERS
    }
    assert expected - audit == set(), "tables without the audit triggers (attach_audit)"
    assert audit - expected == set()
    mine = [t for t in triggers if t.function == AUDIT_FUNCTION]
    assert all(t.enabled == "O" and not t.per_row for t in mine)


def test_the_trail_refuses_every_change_and_the_write_is_undone(fresh_engine) -> None:
    """UPDATE, DELETE, TRUNCATE and a hand-made INSERT on audit_log fail with a clear error,
    and the transaction they were in (with a real write before them) leaves nothing."""
    since = last_audit_id(fresh_engine)  # the template's own rows (the test admin) are older
    with session_scope(fresh_engine) as s:
        s.execute(
            sa.text(
                "INSERT INTO incident_category (code, name_zh, name_en, default_severity) "
                "VALUES ('x', '甲', 'X', 'minor')"
            )
        )
    before = audit_rows(fresh_engine, since)
    assert [(r["table_name"], r["record_id"], r["action"]) for r in before] == [
        ("incident_category", "x", "insert")
    ]
    attempts = {
        "UPDATE audit_log SET username = 'someone else'": "audit_log cannot be changed: UPDATE",
        "DELETE FROM audit_log": "audit_log cannot be changed: DELETE",
        "TRUNCATE audit_log": "audit_log cannot be changed: TRUNCATE",
        "INSERT INTO audit_log (via, table_name, action) VALUES ('sql', 'grid', 'insert')": (
            "audit_log is written by the audit triggers only: INSERT"
        ),
    }
    for sql, message in attempts.items():
        with pytest.raises(sa.exc.DBAPIError, match=message) as info:
            with session_scope(fresh_engine) as s:
                s.execute(sa.text("UPDATE incident_category SET name_en = 'Y' WHERE code = 'x'"))
                s.execute(sa.text(sql))
        assert info.value.orig.sqlstate == "42501", sql  # insufficient_privilege
        with fresh_engine.connect() as c:
            assert c.scalar(sa.text("SELECT name_en FROM incident_category")) == "X"
    # an UPDATE or DELETE that matches no row is refused just the same
    with pytest.raises(sa.exc.DBAPIError, match="cannot be changed: DELETE"):
        with fresh_engine.begin() as c:
            c.execute(sa.text("DELETE FROM audit_log WHERE id < 0"))
    assert audit_rows(fresh_engine, since) == before


def test_a_write_with_no_actor_names_the_database_user(fresh_engine) -> None:
    """psql or a script (no ``set_actor``): via 'sql', the session user and its address."""
    since = last_audit_id(fresh_engine)
    with fresh_engine.begin() as c:
        who = c.execute(
            sa.text("SELECT session_user::text AS name, host(inet_client_addr()) AS addr")
        ).one()
        c.execute(
            sa.text(
                "INSERT INTO staff (code, name, role) VALUES ('s1', '张三', 'grid_member'), "
                "('s2', '李四', 'grid_member')"
            )
        )
        c.execute(sa.text("DELETE FROM staff WHERE code = 's2'"))
    rows = audit_rows(fresh_engine, since)
    assert [(r["action"], r["table_name"]) for r in rows] == [
        ("insert", "staff"),
        ("insert", "staff"),
        ("delete", "staff"),
    ]
    assert {r["after"]["name"] for r in rows[:2]} == {"张三", "李四"}
    gone = next(r for r in rows[:2] if r["after"]["code"] == "s2")
    assert rows[2]["before"] == gone["after"] and rows[2]["record_id"] == gone["record_id"]
    assert {(r["via"], r["username"], r["address"], r["user_id"]) for r in rows} == {
        ("sql", who.name, who.addr, None)
    }


def test_a_rolled_back_write_leaves_no_audit_row(fresh_engine) -> None:
    since = last_audit_id(fresh_engine)
    with pytest.raises(sa.exc.IntegrityError):
        with fresh_engine.begin() as c:
            c.execute(
                sa.text("INSERT INTO staff (code, name, role) VALUES ('s1', 'a', 'grid_member')")
            )
            c.execute(
                sa.text("INSERT INTO staff (code, name, role) VALUES ('s1', 'b', 'grid_member')")
            )
    assert audit_rows(fresh_engine, since) == []


def test_truncate_is_recorded_per_table(fresh_engine) -> None:
    since = last_audit_id(fresh_engine)
    with fresh_engine.begin() as c:
        c.execute(sa.text("INSERT INTO staff (code, name, role) VALUES ('s1', 'a', 'grid_member')"))
        c.execute(sa.text("TRUNCATE staff CASCADE"))
    rows = audit_rows(fresh_engine, since)
    truncated = sorted(r["table_name"] for r in rows if r["action"] == "truncate")
    # CASCADE empties the tables that reference staff too, and each says so
    with fresh_engine.connect() as c:
        referencing = set(
            c.scalars(
                sa.text(
                    "SELECT DISTINCT conrelid::regclass::text FROM pg_constraint "
                    "WHERE contype = 'f' AND confrelid = 'staff'::regclass"
                )
            )
        )
    assert "staff" in truncated and referencing <= set(truncated)
    assert all(r["record_id"] is None and r["before"] is None for r in rows[1:])


def test_downgrade_removes_the_trail_and_upgrade_brings_it_back(make_database) -> None:
    from mapsvc.db import ensure_schema, make_engine

    engine = make_engine(make_database())
    try:
        ensure_schema(engine)
        downgrade(engine, "0006")  # the revision before the trail
        with engine.connect() as c:
            assert "audit_log" not in _public_tables(c)
            assert [t for t in c.execute(sa.text(TRIGGERS)) if t.function == AUDIT_FUNCTION] == []
            assert (
                c.scalar(sa.text("SELECT count(*) FROM pg_proc WHERE proname LIKE 'audit%'")) == 0
            )
        upgrade(engine)
        with engine.connect() as c:
            names = {t.name for t in c.execute(sa.text(TRIGGERS))}
        assert {trigger_name(t, e) for t in audited_tables() for e, _ in AUDIT_TRIGGERS} <= names
    finally:
        engine.dispose()
