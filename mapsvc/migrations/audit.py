"""The audit trail in the database itself: the SQL that migrations use to keep it.

Every write to a table of the service leaves rows in ``audit_log`` written by PostgreSQL
triggers, so no write path (a view, a command, the demo, an import, ``psql``) can forget
them and they commit or roll back with the write. Who wrote is read from transaction-local
settings (``mapsvc.user_id``, ``mapsvc.username``, ``mapsvc.address``, ``mapsvc.via``) that
:func:`mapsvc.services.audit.set_actor` sets; without them the row names the database
session's user and client address with ``via = 'sql'``.

The triggers are statement-level with transition tables: one ``INSERT ... SELECT`` per
statement, so a ``COPY`` of 100,000 incidents costs one more set-based insert, not 100,000
trigger calls. ``audit_log`` itself only takes rows from these triggers: direct inserts,
updates, deletes and TRUNCATE are refused.

A migration that creates a table calls :func:`attach_audit` for it (and
:func:`detach_audit` in its downgrade); ``tests/test_audit_triggers.py`` fails for any model
table without the triggers.
"""

from __future__ import annotations

from typing import Any

#: the trigger function of every audited table; its name is what the coverage check reads
AUDIT_FUNCTION = "audit_record"

#: (trigger name suffix, the trigger's clause): three row-change triggers (a trigger with
#: transition tables may have one event only) and one for TRUNCATE
AUDIT_TRIGGERS: tuple[tuple[str, str], ...] = (
    ("insert", "AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows"),
    ("update", "AFTER UPDATE ON {table} REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"),
    ("delete", "AFTER DELETE ON {table} REFERENCING OLD TABLE AS old_rows"),
    ("truncate", "AFTER TRUNCATE ON {table}"),
)

#: the table, the trigger function and audit_log's own guards (run with
#: :func:`execute_script`: the functions' ``format`` patterns hold ``%``)
CREATE_SQL = r"""
CREATE TABLE audit_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    transaction_id bigint NOT NULL DEFAULT txid_current(),
    user_id bigint,
    username text,
    address inet,
    via text NOT NULL,
    table_name text NOT NULL,
    record_id text,
    action text NOT NULL
        CONSTRAINT ck_audit_log_action CHECK (action IN ('insert', 'update', 'delete', 'truncate')),
    before jsonb,
    after jsonb
);
CREATE INDEX ix_audit_log_record ON audit_log (table_name, record_id);
CREATE INDEX ix_audit_log_at ON audit_log USING brin (at);
COMMENT ON TABLE audit_log IS
    'Every write to the service''s tables, written by the audit_record triggers; append-only';

CREATE FUNCTION audit_record() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    who_via text := nullif(current_setting('mapsvc.via', true), '');
    who_id bigint;
    who_name text;
    who_address inet;
    stamp timestamptz := clock_timestamp();
    xact bigint := txid_current();
    key_sql text;
    cols_sql text;
    old_sql text;
    new_sql text;
BEGIN
    IF who_via IS NULL THEN
        -- no actor set (psql, a script): the database session is who and where
        who_via := 'sql';
        who_name := session_user;
        who_address := inet_client_addr();
    ELSE
        who_id := nullif(current_setting('mapsvc.user_id', true), '')::bigint;
        who_name := nullif(current_setting('mapsvc.username', true), '');
        who_address := nullif(current_setting('mapsvc.address', true), '')::inet;
    END IF;

    IF TG_OP = 'TRUNCATE' THEN
        INSERT INTO audit_log (at, transaction_id, user_id, username, address, via,
                               table_name, record_id, action)
        VALUES (stamp, xact, who_id, who_name, who_address, who_via,
                TG_TABLE_NAME, NULL, 'truncate');
        RETURN NULL;
    END IF;

    -- the row's primary key as text (several key columns joined with commas)
    SELECT coalesce('concat_ws('','', ' || string_agg(format('r.%I', a.attname), ', '
                                                       ORDER BY k.ord) || ')', 'NULL::text')
    INTO key_sql
    FROM pg_index i
    CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
    WHERE i.indrelid = TG_RELID AND i.indisprimary;
    key_sql := coalesce(key_sql, 'NULL::text');

    -- the row's columns; geometries as GeoJSON (with their SRID) made by ST_AsGeoJSON
    -- directly: to_jsonb's own cast of a geometry costs about a millisecond a row
    SELECT string_agg(
               CASE WHEN t.typname IN ('geometry', 'geography')
                    THEN format('ST_AsGeoJSON(r.%I, 15, 2)::jsonb AS %I', a.attname, a.attname)
                    ELSE format('r.%I', a.attname) END,
               ', ' ORDER BY a.attnum)
    INTO cols_sql
    FROM pg_attribute a
    JOIN pg_type t ON t.oid = a.atttypid
    WHERE a.attrelid = TG_RELID AND a.attnum > 0 AND NOT a.attisdropped;

    old_sql := format('SELECT %s AS k, to_jsonb(y) AS j FROM old_rows r '
                      'CROSS JOIN LATERAL (SELECT %s) AS y', key_sql, cols_sql);
    new_sql := format('SELECT %s AS k, to_jsonb(y) AS j FROM new_rows r '
                      'CROSS JOIN LATERAL (SELECT %s) AS y', key_sql, cols_sql);

    IF TG_OP = 'INSERT' THEN
        EXECUTE 'INSERT INTO audit_log (at, transaction_id, user_id, username, address, via, '
                'table_name, record_id, action, before, after) '
                'SELECT $1, $2, $3, $4, $5, $6, $7, n.k, ''insert'', NULL, n.j FROM ('
                || new_sql || ') AS n'
        USING stamp, xact, who_id, who_name, who_address, who_via, TG_TABLE_NAME;
    ELSIF TG_OP = 'DELETE' THEN
        EXECUTE 'INSERT INTO audit_log (at, transaction_id, user_id, username, address, via, '
                'table_name, record_id, action, before, after) '
                'SELECT $1, $2, $3, $4, $5, $6, $7, o.k, ''delete'', o.j, NULL FROM ('
                || old_sql || ') AS o'
        USING stamp, xact, who_id, who_name, who_address, who_via, TG_TABLE_NAME;
    ELSE
        -- old and new rows paired by their key; a row whose key changed appears twice
        -- (its old values, then its new ones), so nothing written goes unrecorded
        EXECUTE 'INSERT INTO audit_log (at, transaction_id, user_id, username, address, via, '
                'table_name, record_id, action, before, after) '
                'SELECT $1, $2, $3, $4, $5, $6, $7, coalesce(n.k, o.k), ''update'', o.j, n.j '
                'FROM (' || old_sql || ') AS o FULL JOIN (' || new_sql || ') AS n ON n.k = o.k'
        USING stamp, xact, who_id, who_name, who_address, who_via, TG_TABLE_NAME;
    END IF;
    RETURN NULL;
END
$$;

-- audit_log is written by audit_record only, and never changed afterwards
CREATE FUNCTION audit_log_refuse() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF pg_trigger_depth() > 1 THEN
            RETURN NULL;  -- the audit triggers' own insert
        END IF;
        RAISE EXCEPTION 'audit_log is written by the audit triggers only: INSERT refused'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'write to the service''s tables; their triggers record it';
    END IF;
    RAISE EXCEPTION USING MESSAGE = 'audit_log cannot be changed: ' || TG_OP || ' refused',
              ERRCODE = 'insufficient_privilege',
              HINT = 'the audit trail is append-only';
END
$$;

CREATE TRIGGER audit_log_insert BEFORE INSERT ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse();
CREATE TRIGGER audit_log_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse();
CREATE TRIGGER audit_log_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse();
"""

DROP_SQL = """
DROP TABLE IF EXISTS audit_log;
DROP FUNCTION IF EXISTS audit_log_refuse();
DROP FUNCTION IF EXISTS audit_record();
"""


def execute_script(op: Any, sql: str) -> None:
    """Run several statements of plain SQL in the migration's transaction.

    Sent by the driver as they are (no bind parameters), so ``%`` in PL/pgSQL ``format``
    patterns is not taken for a placeholder.
    """
    op.get_bind().connection.driver_connection.execute(sql)


def trigger_name(table: str, event: str) -> str:
    """The name of ``table``'s audit trigger for ``event`` (insert/update/delete/truncate)."""
    return f"audit_{table}_{event}"


def attach_sql(table: str) -> list[str]:
    """The statements that make ``table`` record its writes in ``audit_log``."""
    return [
        f"CREATE TRIGGER {trigger_name(table, event)} {clause.format(table=table)} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {AUDIT_FUNCTION}()"
        for event, clause in AUDIT_TRIGGERS
    ]


def detach_sql(table: str) -> list[str]:
    """The statements that remove ``table``'s audit triggers (for a downgrade)."""
    return [
        f"DROP TRIGGER IF EXISTS {trigger_name(table, event)} ON {table}"
        for event, _clause in AUDIT_TRIGGERS
    ]


def attach_audit(op: Any, table: str) -> None:
    """Record every write to ``table`` (call in the migration that creates it).

    Parameters
    ----------
    op : alembic.op
        The migration's operations object.
    table : str
        A table of the service (not ``audit_log``).
    """
    for statement in attach_sql(table):
        op.execute(statement)


def detach_audit(op: Any, table: str) -> None:
    """Stop recording writes to ``table`` (the downgrade of :func:`attach_audit`)."""
    for statement in detach_sql(table):
        op.execute(statement)
