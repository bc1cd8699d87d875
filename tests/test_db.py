"""The database layer against real PostgreSQL servers: migrations, embedded cluster, errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import sqlalchemy as sa

from mapsvc.db import (
    DatabaseError,
    EmbeddedPostgres,
    check_connection,
    ensure_schema,
    make_engine,
)
from mapsvc.migrations import downgrade, upgrade
from mapsvc.models import Base, table_names

#: every model table (the one list, from the models' metadata)
CORE_TABLES = set(table_names())
#: the model tables with a geometry column, each of which needs a GiST index on it
GEOMETRY_TABLES = {
    t.name for t in Base.metadata.sorted_tables if any(c.name == "geom" for c in t.columns)
}


def _tables(engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def test_migrations_from_empty_database(make_database) -> None:
    engine = make_engine(make_database())
    assert _tables(engine) == set()
    ensure_schema(engine)
    tables = _tables(engine)
    assert CORE_TABLES <= tables
    # every model table exists after the migrations: models and migrations agree
    assert set(Base.metadata.tables) <= tables
    with engine.connect() as conn:
        exts = set(conn.scalars(sa.text("SELECT extname FROM pg_extension")))
        assert {"postgis", "pgrouting"} <= exts
        # GiST indexes on every geometry column of the core tables
        gist = set(
            conn.scalars(
                sa.text(
                    "SELECT tablename FROM pg_indexes WHERE schemaname='public' "
                    "AND indexdef LIKE '%USING gist (geom)%'"
                )
            )
        )
    assert {"district", "community", "grid", "alley_segment", "incident"} <= GEOMETRY_TABLES
    assert GEOMETRY_TABLES <= gist
    # down to nothing and up again
    downgrade(engine, "base")
    assert _tables(engine) - {"alembic_version", "spatial_ref_sys"} == set()
    upgrade(engine)
    assert CORE_TABLES <= _tables(engine)
    engine.dispose()


def test_areas_and_lengths_are_geodesic(fresh_engine) -> None:
    from pyproj import Geod
    from shapely import wkt

    square = "MULTIPOLYGON(((118.58 24.90,118.59 24.90,118.59 24.91,118.58 24.91,118.58 24.90)))"
    line = "LINESTRING(118.58 24.90,118.59 24.91)"
    with fresh_engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO district(code,name,geom) VALUES ('1','d',ST_GeomFromText(:g,4326))"
            ),
            {"g": square},
        )
        conn.execute(
            sa.text(
                "INSERT INTO alley_segment(code,name,geom,source) "
                "VALUES ('s1','x',ST_GeomFromText(:g,4326),'test')"
            ),
            {"g": line},
        )
        area = conn.scalar(sa.text("SELECT area_km2 FROM district"))
        length = conn.scalar(sa.text("SELECT length_m FROM alley_segment"))
    geod = Geod(ellps="WGS84")
    expected_area = abs(geod.geometry_area_perimeter(wkt.loads(square))[0]) / 1e6
    expected_len = geod.geometry_length(wkt.loads(line))
    assert area == pytest.approx(expected_area, rel=1e-4)
    assert length == pytest.approx(expected_len, rel=1e-4)
    # and clearly not degrees
    assert area > 1.0 and length > 1000


def test_grid_needs_a_community_and_codes_are_unique(fresh_engine) -> None:
    poly = "MULTIPOLYGON(((0 0,1 0,1 1,0 0)))"
    with pytest.raises(sa.exc.IntegrityError):
        with fresh_engine.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO grid(code,geom) VALUES ('g1',ST_GeomFromText(:g,4326))"),
                {"g": poly},
            )
    with pytest.raises(sa.exc.IntegrityError):
        with fresh_engine.begin() as conn:
            for _ in range(2):
                conn.execute(
                    sa.text(
                        "INSERT INTO community(code,name,geom) VALUES ('c1','c',ST_GeomFromText(:g,4326))"
                    ),
                    {"g": poly},
                )
    with fresh_engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM community")) == 0


def test_unreachable_server_is_one_clear_line() -> None:
    engine = make_engine("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(DatabaseError) as info:
        check_connection(engine)
    msg = str(info.value)
    assert "cannot reach database" in msg and "127.0.0.1:1" in msg
    assert "\n" not in msg


def test_server_without_postgis_is_reported(make_database) -> None:
    engine = make_engine(make_database())
    with pytest.raises(DatabaseError, match="no PostGIS"):
        check_connection(engine)
    engine.dispose()


def test_cli_with_bad_database_url_prints_one_line() -> None:
    env = {**os.environ, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    res = subprocess.run(
        [sys.executable, "-m", "mapsvc.cli", "db", "upgrade"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    assert "cannot reach database" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_embedded_cluster_lifecycle_and_stale_pid(tmp_path) -> None:
    """init, start, crash (SIGKILL leaves postmaster.pid behind), start again, stop."""
    pg = EmbeddedPostgres(tmp_path / "var")
    try:
        pg.start()
        assert pg.running()
        engine = make_engine(pg.admin_url("postgres"))
        with engine.connect() as conn:
            assert conn.scalar(sa.text("SELECT 1")) == 1
            # the service's own cluster keeps its data through a power cut
            for name in ("fsync", "synchronous_commit", "full_page_writes"):
                assert conn.scalar(sa.text(f"SHOW {name}")) == "on", name
        engine.dispose()
        pid = int((pg.datadir / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            import time

            time.sleep(0.1)
        assert (pg.datadir / "postmaster.pid").exists()  # stale
        pg.start()
        assert pg.running()
        engine = make_engine(pg.admin_url("postgres"))
        with engine.connect() as conn:
            assert conn.scalar(sa.text("SELECT 1")) == 1
        engine.dispose()
        pg.stop()
        assert not pg.running()
    finally:
        pg.destroy()


def test_db_start_reset_stop_commands_on_their_own_cluster(tmp_path) -> None:
    """``mapsvc db status|start|reset|stop`` on a cluster initdb'd under a throwaway
    MAPSVC_VAR_DIR (the test session's own cluster is left alone). In-process: each
    ``mapsvc`` start costs seconds on a busy machine, and the commands read only the
    environment."""
    from click.testing import CliRunner, Result

    from mapsvc.cli import main

    var = tmp_path / "var"
    env = {k: None for k in os.environ if k == "DATABASE_URL" or k.startswith("MAPSVC_")}
    env["MAPSVC_VAR_DIR"] = str(var)

    def run(*args: str, stdin: str | None = None) -> Result:
        return CliRunner().invoke(main, ["db", *args], env=env, input=stdin)

    def districts(engine) -> int:
        with engine.connect() as conn:
            return conn.scalar(sa.text("SELECT count(*) FROM district"))

    pg = EmbeddedPostgres(var)
    try:
        r = run("status")
        assert r.exit_code == 0 and "embedded database not initialised" in r.output
        r = run("start")
        assert r.exit_code == 0, r.output
        assert "database ready" in r.output and pg.running()
        engine = make_engine(pg.url("mapsvc"))
        assert CORE_TABLES <= _tables(engine)  # started at the latest schema
        r = run("status")
        assert r.exit_code == 0, r.output
        assert f"running on socket {pg.socket_dir}/.s.PGSQL.{pg.port} only (no TCP)" in r.output
        assert "mapsvc db stop" in r.output  # how to stop one left running
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO district (code, name, geom) VALUES ('1', 'd', "
                    "ST_GeomFromText('MULTIPOLYGON(((0 0,1 0,1 1,0 0)))', 4326))"
                )
            )
        # reset asks first: "no" keeps the data
        r = run("reset", stdin="n\n")
        assert r.exit_code == 1 and "Aborted" in r.output
        assert districts(engine) == 1
        r = run("reset", "--yes")
        assert r.exit_code == 0 and "database reset" in r.output, r.output
        assert districts(engine) == 0 and CORE_TABLES <= _tables(engine)  # empty, at head
        engine.dispose()
        r = run("stop")
        assert r.exit_code == 0 and "database stopped" in r.output
        assert not pg.running()
        with pytest.raises(DatabaseError, match="cannot reach database"):
            check_connection(engine)
        engine.dispose()
        r = run("status")
        assert r.exit_code == 3 and "embedded database stopped" in r.output
    finally:
        pg.destroy()


#: the revision 0008 (the invariants) follows
BEFORE_0008 = "0007"


def _before_0008_with_broken_rows(engine) -> dict[str, int]:
    """A database at the revision before 0008 holding what the older code let in: two
    chiefs of one segment at once, a same-day replacement, a reopened incident with a
    rating."""
    downgrade(engine, BEFORE_0008)
    ids: dict[str, int] = {}
    with engine.begin() as c:
        ids["seg"] = c.scalar(
            sa.text(
                "INSERT INTO alley_segment (code, geom, source) VALUES "
                "('m1', ST_GeomFromText('LINESTRING(118.58 24.90,118.59 24.90)', 4326), 't') "
                "RETURNING id"
            )
        )
        for who in ("a", "b", "c", "d"):
            ids[who] = c.scalar(
                sa.text(
                    "INSERT INTO staff (code, name, role) VALUES (:w, :w, 'alley_chief') "
                    "RETURNING id"
                ),
                {"w": who},
            )
        for key, who, start, end in (
            ("pa", "a", "2024-01-01", None),  # overlapped by b and c (the race's residue)
            ("pb", "b", "2024-06-01", None),
            ("pc", "c", "2024-06-01", "2024-06-01"),  # replaced the day it began, by d
            ("pd", "d", "2024-06-01", None),
        ):
            ids[key] = c.scalar(
                sa.text(
                    "INSERT INTO assignment (staff_id, role, segment_id, valid_from, valid_to) "
                    "VALUES (:s, 'alley_chief', :g, :f, :t) RETURNING id"
                ),
                {"s": ids[who], "g": ids["seg"], "f": start, "t": end},
            )
        c.execute(
            sa.text(
                "INSERT INTO incident_category (code, name_zh, name_en, default_severity) "
                "VALUES ('r', '路', 'road', 'minor')"
            )
        )
        ids["inc"] = c.scalar(
            sa.text(
                "INSERT INTO incident (source, category, severity, state, geom, reported_at, "
                "rating, location_to_confirm) VALUES ('hotline', 'r', 'minor', 'reopened', "
                "ST_SetSRID(ST_MakePoint(118.58, 24.9), 4326), now(), 4, false) RETURNING id"
            )
        )
    return ids


def test_migration_0008_repairs_overlapping_posts_and_stray_ratings(fresh_engine, caplog) -> None:
    ids = _before_0008_with_broken_rows(fresh_engine)
    with caplog.at_level("WARNING", logger="alembic.runtime.migration"):
        upgrade(fresh_engine)
    with fresh_engine.connect() as c:
        posts = {
            r.id: (str(r.valid_from), r.valid_to and str(r.valid_to))
            for r in c.execute(sa.text("SELECT id, valid_from, valid_to FROM assignment"))
        }
        rated = c.execute(
            sa.text("SELECT state, rating FROM incident WHERE id = :i"), {"i": ids["inc"]}
        ).one()
    # ordered by start then id, each post ends the day before the next one starts: a ends
    # before b, b and c (same start) are withdrawn, d (the last written) holds the post
    assert posts == {
        ids["pa"]: ("2024-01-01", "2024-05-31"),
        ids["pb"]: ("2024-06-01", "2024-05-31"),
        ids["pc"]: ("2024-06-01", "2024-05-31"),
        ids["pd"]: ("2024-06-01", None),
    }
    assert tuple(rated) == ("reopened", None)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert f"assignment {ids['pa']} (alley_chief of segment {ids['seg']})" in logged
    assert f"incident {ids['inc']} is reopened: its rating was cleared" in logged
    # and the database now holds the rule itself
    with pytest.raises(sa.exc.IntegrityError, match="ex_assignment_segment_post"):
        with fresh_engine.begin() as c:
            c.execute(
                sa.text(
                    "INSERT INTO assignment (staff_id, role, segment_id, valid_from) "
                    "VALUES (:s, 'alley_chief', :g, '2025-01-01')"
                ),
                {"s": ids["a"], "g": ids["seg"]},
            )


def test_migration_0008_stops_on_text_too_long_naming_the_rows(fresh_engine) -> None:
    ids = _before_0008_with_broken_rows(fresh_engine)
    with fresh_engine.begin() as c:
        c.execute(
            sa.text("UPDATE incident SET description = repeat('长', 5001) WHERE id = :i"),
            {"i": ids["inc"]},
        )
    with pytest.raises(RuntimeError) as info:
        upgrade(fresh_engine)
    assert f"incident.description longer than 5000 characters in ids [{ids['inc']}]" in str(
        info.value
    )
    with fresh_engine.connect() as c:  # nothing of 0008 was applied
        assert c.scalar(sa.text("SELECT version_num FROM alembic_version")) == BEFORE_0008
        assert c.scalar(sa.text("SELECT rating FROM incident")) == 4
    with fresh_engine.begin() as c:
        c.execute(sa.text("UPDATE incident SET description = left(description, 5000)"))
    upgrade(fresh_engine)


def _settings_of(pg: EmbeddedPostgres) -> dict[str, str]:
    engine = make_engine(pg.admin_url("postgres"))
    with engine.connect() as conn:
        shown = {
            name: conn.scalar(sa.text(f"SHOW {name}"))
            for name in ("fsync", "synchronous_commit", "full_page_writes")
        }
    engine.dispose()
    return shown


def test_a_disposable_server_is_restarted_durable(tmp_path) -> None:
    """A benchmark's fast server on the demo's directory must not stay the demo's."""
    pg = EmbeddedPostgres(tmp_path / "var")
    try:
        pg.start(durable=False)
        assert set(_settings_of(pg).values()) == {"off"}
        pg.start(durable=False)  # used as it is: a disposable one is enough for tests
        assert set(_settings_of(pg).values()) == {"off"}
        pg.start()
        assert set(_settings_of(pg).values()) == {"on"}
        pg.start(durable=False)  # a durable server is never made disposable under the demo
        assert set(_settings_of(pg).values()) == {"on"}
    finally:
        pg.destroy()
