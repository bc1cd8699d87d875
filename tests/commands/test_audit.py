"""``mapsvc audit`` on a real database, and the CLI's half of the trail: a command's writes
are recorded as the operating system's user with ``via = "cli"``."""

from __future__ import annotations

import csv
import io
import json
import os
import pwd

import sqlalchemy as sa

from tests.fixtures.audit import audit_rows, last_audit_id
from tests.fixtures.incidents import add_random_incidents, run_cli


def test_a_commands_writes_are_recorded_as_the_os_user(district) -> None:
    add_random_incidents(district, 40)
    since = last_audit_id(district.engine)
    r = run_cli(district.engine, "incidents", "reroute")
    assert r.exit_code == 0, r.output
    rows = audit_rows(district.engine, since)
    with district.engine.connect() as c:
        open_ids = set(
            map(str, c.scalars(sa.text("SELECT id FROM incident WHERE state <> 'closed'")))
        )
    assert {x["record_id"] for x in rows if x["table_name"] == "incident"} == open_ids
    me = pwd.getpwuid(os.geteuid()).pw_name
    assert {(x["via"], x["username"], x["user_id"], x["address"]) for x in rows} == {
        ("cli", me, None, None)
    }


def test_export_as_json_lines_to_a_file_and_csv_to_stdout(district, tmp_path) -> None:
    add_random_incidents(district, 30)
    run_cli(district.engine, "incidents", "reroute")
    out = tmp_path / "trail.jsonl"
    r = run_cli(
        district.engine, "audit", "--table", "incident", "--format", "jsonl", "-o", str(out)
    )
    assert r.exit_code == 0, r.output
    expected = audit_rows(district.engine, table="incident")
    assert f"{len(expected):,} audit rows written to {out}" in r.stderr
    assert "audit rows" in r.stderr and f"{len(expected)}/{len(expected)}" in r.stderr  # bar
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [x["id"] for x in lines] == [e["id"] for e in expected]  # oldest first
    assert [(x["action"], x["record_id"], x["before"], x["after"]) for x in lines] == [
        (e["action"], e["record_id"], e["before"], e["after"]) for e in expected
    ]
    # CSV on stdout, filtered by user and action; the bar goes to stderr only
    me = pwd.getpwuid(os.geteuid()).pw_name
    r = run_cli(district.engine, "audit", "--user", me, "--action", "update")
    assert r.exit_code == 0, r.output
    table = list(csv.DictReader(io.StringIO(r.stdout.lstrip("\ufeff"))))
    trail = audit_rows(district.engine)
    updates = [e for e in trail if e["action"] == "update" and e["username"] == me]
    assert updates and len(updates) < len(trail)  # the fixture's own writes are not mine
    assert [int(x["id"]) for x in table] == [e["id"] for e in updates]
    assert [json.loads(x["before"]) for x in table] == [e["before"] for e in updates]
    # the days are the district's: nothing before the district existed, everything today
    r = run_cli(district.engine, "audit", "--to", "2000-01-01", "--format", "jsonl")
    assert r.exit_code == 0 and r.stdout == ""


def test_bad_filters_are_one_line_and_export_nothing(district, tmp_path) -> None:
    out = tmp_path / "none.csv"
    for args, message in (
        (["--table", "secrets"], "table 'secrets' is not an audited table"),
        (["--from", "2026-02-30"], "date_from must be a date like 2026-01-31"),
        (["--from", "2026-02-02", "--to", "2026-02-01"], "date_to (2026-02-01) is before"),
    ):
        r = run_cli(district.engine, "audit", *args, "-o", str(out))
        assert r.exit_code == 1, args
        assert message in r.stderr and "Traceback" not in r.output
        assert not out.exists()
