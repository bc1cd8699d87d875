"""Faults survived, on real PostgreSQL servers and real processes.

* Who may connect to the embedded cluster: only with a password, only the service role
  for the app (no superuser), nobody else on the machine at all.
* A cluster made by an older version (``trust``, the app as ``postgres``) is secured in
  place at its next start, with its data.
* The database restarting under a running server: 503 with ``Retry-After`` while it is
  down, never a 500, and everything answers again by itself when it is back; ``db stop``
  then ``db start`` keeps the port (old sockets in TIME_WAIT included).
* ``kill -9`` of an import mid-way leaves nothing behind.
* ``db backup`` / ``db restore``: a round trip gives identical tables.

The tests that stop and start a server use their own throw-away clusters, never the
session's cluster the other tests share.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mapsvc.config import Settings
from mapsvc.db import (
    SERVICE_ROLE,
    SUPERUSER,
    EmbeddedPostgres,
    _pg_bin,
    ensure_schema,
    make_engine,
    resolve_url,
    table_rows,
)
from tests.fixtures.incidents import ll, write_csv
from tests.fixtures.web import build_small_district

PSQL = str(_pg_bin() / "psql")
AS_ROOT = os.geteuid() == 0


def _env(var_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a ``mapsvc`` process on the cluster under ``var_dir``."""
    env = {
        k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("MAPSVC_")
    }
    return {**env, "MAPSVC_VAR_DIR": str(var_dir), **extra}


def _mapsvc(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mapsvc.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def checksums(engine: Engine) -> dict[str, tuple[int, str]]:
    """(rows, md5 over the sorted rows' text) of every table that no extension owns."""
    with engine.connect() as conn:
        return {
            name: tuple(
                conn.execute(
                    sa.text(
                        "SELECT count(*), md5(coalesce(string_agg(h, '' ORDER BY h), '')) "
                        f"FROM (SELECT md5(t::text) AS h FROM {name} t) s"
                    )
                ).one()
            )
            for name in table_rows(conn)
        }


def _owners(engine: Engine) -> dict[str, str]:
    """Owner of every table, view and sequence in ``public`` that no extension owns."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
                "AND c.relkind IN ('r', 'p', 'v', 'm', 'S') AND c.oid NOT IN (SELECT objid "
                "FROM pg_depend WHERE deptype = 'e' AND classid = 'pg_class'::regclass)"
            )
        ).all()
    return dict(rows)


def _hba(pg: EmbeddedPostgres) -> list[list[str]]:
    """The rules of the cluster's pg_hba.conf, comments left out."""
    text = (pg.datadir / "pg_hba.conf").read_text()
    return [line.split() for line in text.splitlines() if line.strip() and line[0] != "#"]


# --------------------------------------------------------------------------- who gets in


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory) -> Iterator[EmbeddedPostgres]:
    """A throw-away embedded cluster that also listens on 127.0.0.1 (with passwords), with
    the app's database made the way ``mapsvc`` makes it (``resolve_url``)."""
    var = tmp_path_factory.mktemp("faults") / "var"
    pg = EmbeddedPostgres(var, listen_tcp=True)
    pg.start(durable=False)
    settings = Settings(var_dir=str(var), db_listen_tcp=True)
    engine = make_engine(resolve_url(settings))
    ensure_schema(engine)
    build_small_district(engine)
    engine.dispose()
    yield pg
    pg.destroy()


def test_the_app_connects_as_a_service_role_that_is_no_superuser(own_cluster) -> None:
    pg = own_cluster
    engine = make_engine(resolve_url(Settings(var_dir=str(pg.var_dir), db_listen_tcp=True)))
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT current_user")) == SERVICE_ROLE
        flags = conn.execute(
            sa.text(
                "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls "
                "FROM pg_roles WHERE rolname = current_user"
            )
        ).one()
        assert not any(flags), flags
        assert (
            conn.scalar(
                sa.text(
                    "SELECT pg_get_userbyid(datdba) FROM pg_database "
                    "WHERE datname = current_database()"
                )
            )
            == SERVICE_ROLE
        )
        # what let an intruder run shell commands as the demo's user
        with pytest.raises(sa.exc.ProgrammingError, match="must be superuser"):
            conn.exec_driver_sql("COPY (SELECT 1) TO PROGRAM 'id'")
        conn.rollback()
        with pytest.raises(
            sa.exc.ProgrammingError, match="permission denied for function pg_read_file"
        ):
            conn.exec_driver_sql("SELECT pg_read_file('/etc/passwd')")
        conn.rollback()
        # WAL sized for a small server; durability left to the server's defaults
        assert conn.scalar(sa.text("SHOW max_wal_size")) == "1GB"
        assert conn.scalar(sa.text("SHOW wal_keep_size")) == "0"
    owners = _owners(engine)
    assert {"district", "incident", "alembic_version"} <= set(owners)
    assert set(owners.values()) == {SERVICE_ROLE}, owners
    engine.dispose()


def test_every_connection_needs_a_password_and_the_files_are_private(own_cluster) -> None:
    pg = own_cluster
    assert _hba(pg) == [
        ["local", "all", "all", "scram-sha-256"],
        ["host", "all", SUPERUSER, "127.0.0.1/32", "reject"],
        ["host", "all", "all", "127.0.0.1/32", "scram-sha-256"],
    ]
    assert stat.S_IMODE(pg.datadir.stat().st_mode) == 0o700
    for role in (SUPERUSER, SERVICE_ROLE):
        st = pg.password_file(role).stat()
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.geteuid()
    assert pg.password(SUPERUSER) != pg.password(SERVICE_ROLE)
    assert len(pg.password(SERVICE_ROLE)) >= 24
    # no password, no entry: psql as the very user who runs the cluster's tools
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    for host, role in ((str(pg.socket_dir), SUPERUSER), ("127.0.0.1", SERVICE_ROLE)):
        res = subprocess.run(
            [PSQL, "-w", "-h", host, "-p", str(pg.port), "-U", role, "-c", "SELECT 1"],
            capture_output=True,
            text=True,
            env=env,
        )
        assert res.returncode != 0 and "no password supplied" in res.stderr, res.stderr
    # the superuser not over TCP at all, even with its password
    res = subprocess.run(
        [PSQL, "-w", "-h", "127.0.0.1", "-p", str(pg.port), "-U", SUPERUSER, "-c", "SELECT 1"],
        capture_output=True,
        text=True,
        env={**env, "PGPASSWORD": pg.password(SUPERUSER)},
    )
    assert res.returncode != 0 and "pg_hba.conf rejects connection" in res.stderr, res.stderr
    # a wrong password neither
    res = subprocess.run(
        [PSQL, "-w", "-h", "127.0.0.1", "-p", str(pg.port), "-U", SERVICE_ROLE, "-c", "SELECT 1"],
        capture_output=True,
        text=True,
        env={**env, "PGPASSWORD": "guess"},
    )
    assert res.returncode != 0 and "password authentication failed" in res.stderr


def test_an_unprivileged_os_user_cannot_connect(own_cluster) -> None:
    """As root (the CI), ``nobody`` tries psql on the socket and on 127.0.0.1 and fails:
    the socket's folder is closed to it, TCP refuses the superuser and wants the service
    role's password, which nobody cannot read.

    Not as root there is no other account to switch to; then what decides it is asserted
    instead: the socket's folder mode 0700 and the password files 0600 (checked in the
    test above too), so the test still fails loudly if either opens up.
    """
    pg = own_cluster
    assert stat.S_IMODE(pg.socket_dir.stat().st_mode) == 0o700
    if not AS_ROOT:
        for role in (SUPERUSER, SERVICE_ROLE):
            assert stat.S_IMODE(pg.password_file(role).stat().st_mode) == 0o600
        return
    for host, role, reason in (
        (str(pg.socket_dir), SUPERUSER, "Permission denied"),
        (str(pg.socket_dir), SERVICE_ROLE, "Permission denied"),
        ("127.0.0.1", SUPERUSER, "pg_hba.conf rejects connection"),
        ("127.0.0.1", SERVICE_ROLE, "no password supplied"),
    ):
        res = subprocess.run(
            ["runuser", "-u", "nobody", "--", PSQL, "-w", "-h", host, "-p", str(pg.port)]
            + ["-U", role, "-d", "mapsvc", "-c", "SELECT phone FROM staff"],
            capture_output=True,
            text=True,
            cwd="/",
        )
        assert res.returncode != 0 and reason in res.stderr, (host, res.stderr)
    res = subprocess.run(
        ["runuser", "-u", "nobody", "--", "cat", str(pg.password_file(SERVICE_ROLE))],
        capture_output=True,
        text=True,
        cwd="/",
    )
    assert res.returncode != 0 and "Permission denied" in res.stderr


# --------------------------------------------------------------------------- old clusters


def _old_style_cluster(var: Path) -> EmbeddedPostgres:
    """A cluster as the previous version made it: initdb ``--auth=trust``, TCP and socket,
    ``max_wal_size = 4GB``, the app's tables owned by ``postgres``; left running."""
    pg = EmbeddedPostgres(var)
    target = pg.link
    target.mkdir(parents=True)
    os.chmod(var, 0o755)
    pg._give_to_server(target)
    os.chmod(target, 0o700)
    pg._run([_pg_bin() / "initdb", "-D", target, "-U", "postgres", "--auth=trust"])
    port = _free_port()
    with (target / "postgresql.conf").open("a") as fh:
        fh.write(
            "\n# mapsvc embedded cluster\nlisten_addresses = '127.0.0.1'\n"
            f"port = {port}\nunix_socket_directories = '{target}'\nmax_wal_size = 4GB\n"
        )
    pg._write_port(port)
    pg._run([_pg_bin() / "pg_ctl", "start", "-w", "-D", target, "-l", target / "server.log"])
    trust = sa.engine.URL.create(
        "postgresql+psycopg", username="postgres", host="127.0.0.1", port=port
    )
    admin = sa.create_engine(trust.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql('CREATE DATABASE "mapsvc"')
    admin.dispose()
    engine = make_engine(trust.set(database="mapsvc"))
    ensure_schema(engine)
    build_small_district(engine)
    engine.dispose()
    return pg


@pytest.fixture
def reachable_tmp() -> Iterator[Path]:
    """A temporary folder the ``postgres`` system user can enter (pytest's are root's own,
    mode 0700), as ``var/`` in a checkout usually is."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="mapsvc-test-", dir="/var/tmp"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_an_old_trust_cluster_is_secured_in_place_with_its_data(reachable_tmp) -> None:
    var = reachable_tmp / "var"
    old = _old_style_cluster(var)
    port = old.port
    trust = f"postgresql+psycopg://postgres@127.0.0.1:{port}/mapsvc"
    before = checksums(make_engine(trust))
    assert before["staff"][0] == 5 and before["alley_segment"][0] == 3
    try:
        # the next start (what `mapsvc serve` / `db start` do), the old server still running
        url = resolve_url(Settings(var_dir=str(var)))
        engine = make_engine(url)
        assert checksums(engine) == before  # no data lost or changed
        with engine.connect() as conn:
            assert conn.scalar(sa.text("SELECT current_user")) == SERVICE_ROLE
            assert conn.scalar(sa.text("SHOW max_wal_size")) == "1GB"
            assert conn.scalar(sa.text("SHOW listen_addresses")) == ""
        assert set(_owners(engine).values()) == {SERVICE_ROLE}
        ensure_schema(engine)  # the service role can run the migrations on its tables
        engine.dispose()
        assert _hba(old) == [["local", "all", "all", "scram-sha-256"]]  # no trust, no TCP
        assert (old.datadir / "postgresql.conf").read_text().count("max_wal_size = 4GB") == 0
        # the old way in is closed: no TCP, and the socket wants a password
        with pytest.raises(sa.exc.OperationalError):
            make_engine(trust).connect()
        socket_trust = sa.engine.URL.create(
            "postgresql+psycopg",
            username="postgres",
            database="mapsvc",
            query={"host": str(old.socket_dir), "port": str(port)},
        )
        with pytest.raises(sa.exc.OperationalError, match="no password supplied"):
            make_engine(socket_trust).connect()
        assert old.port == port
    finally:
        old.destroy()


# --------------------------------------------------------------------------- restarts


@pytest.fixture(scope="module")
def served(own_cluster) -> Iterator[tuple[subprocess.Popen, int]]:
    """``mapsvc serve --no-demo`` on the throw-away cluster (which it did not start, so
    it leaves it running when it ends)."""
    port = _free_port()
    env = _env(own_cluster.var_dir, MAPSVC_DB_LISTEN_TCP="true")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mapsvc.cli", "serve", "--no-demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    while _get(port, "/healthz")[0] != 200:
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "the server did not come up"
        time.sleep(0.3)
    yield proc, port
    proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def _get(port: int, path: str, accept: str = "application/json") -> tuple[int, dict, str]:
    """(status, headers, body) of GET ``path``; 0 when the web server itself is not up."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Accept": accept})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode()
    except OSError:
        return 0, {}, ""


API = "/api/communities"


def _assert_unavailable(port: int) -> None:
    status, headers, body = _get(port, API)
    assert status == 503, (status, body)
    assert int(headers["Retry-After"]) > 0
    error = json.loads(body)
    assert error["status"] == 503 and error["error"]
    for secret in ("postgres", "mapsvc:", "socket", "127.0.0.1", "Traceback"):
        assert secret not in body, body
    status, headers, body = _get(port, "/", accept="text/html")
    assert status == 503 and "Retry-After" in headers
    assert "<html" in body and "Traceback" not in body
    assert _get(port, "/healthz")[:1] == (503,)


def test_database_restart_under_a_running_server(own_cluster, served) -> None:
    """Requests keep coming while the database stops and starts: each answers 200 or 503
    (never 500), and once it is back every request answers 200 by itself."""
    pg = own_cluster
    _proc, port = served
    assert _get(port, API)[0] == 200
    seen: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            seen.append(_get(port, API)[0])
            time.sleep(0.05)

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        pg.stop()
        time.sleep(1.0)
        _assert_unavailable(port)
        pg.start(durable=False)
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert set(seen) <= {200, 503}, sorted(set(seen))
    assert 503 in seen and 200 in seen
    # back: the pool drops its dead connections before use, no request fails
    after = [_get(port, API)[0] for _ in range(20)]
    assert after == [200] * 20
    assert _get(port, "/healthz")[0] == 200


def _closing_sockets_on(port: int) -> int:
    """Sockets of a stopped server still on 127.0.0.1:``port``: FIN_WAIT2 (its client has
    not closed yet) or TIME_WAIT (from /proc/net/tcp)."""
    local = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as fh:
        rows = [line.split() for line in fh]
    return sum(1 for r in rows if r[1] == local and r[3] in ("05", "06"))


def test_db_stop_then_start_keeps_the_port_and_the_server_recovers(own_cluster, served) -> None:
    pg = own_cluster
    _proc, port = served
    env = _env(pg.var_dir, MAPSVC_DB_LISTEN_TCP="true")
    db_port = pg.port
    # a TCP client (as a pool holds one) at stop time: the stopped server's end of it stays
    # on the port until the client closes, which made a probe without SO_REUSEADDR move it
    tcp = sa.create_engine(
        sa.engine.URL.create(
            "postgresql+psycopg",
            username=SERVICE_ROLE,
            password=pg.password(SERVICE_ROLE),
            host="127.0.0.1",
            port=db_port,
            database="mapsvc",
        )
    )
    conn = tcp.connect()
    assert conn.scalar(sa.text("SELECT count(*) FROM staff")) == 5
    res = _mapsvc(env, "db", "stop")
    assert res.returncode == 0 and "database stopped" in res.stdout, res.stderr
    assert _closing_sockets_on(db_port) >= 1
    _assert_unavailable(port)
    res = _mapsvc(env, "db", "status")
    assert res.returncode == 3 and "stopped" in res.stdout
    res = _mapsvc(env, "db", "start")
    assert res.returncode == 0 and "database ready" in res.stdout, res.stderr
    assert pg.port == db_port
    conn.invalidate()
    tcp.dispose()
    res = _mapsvc(env, "db", "status")
    assert res.returncode == 0 and f"127.0.0.1:{db_port}" in res.stdout, res.stdout
    assert [_get(port, API)[0] for _ in range(10)] == [200] * 10


# --------------------------------------------------------------------------- imports


def test_kill_9_during_an_import_leaves_nothing_behind(district, tmp_path) -> None:
    """``mapsvc incidents import`` of a large file, killed with SIGKILL while its
    transaction is writing: afterwards every table has exactly the rows it had."""
    engine = district.engine
    header = ["id", "lat", "lon", "category", "opened"]
    points = [ll(60 + (k * 37) % 880, 30 + (k * 53) % 540) for k in range(400_000)]
    rows = [
        [f"K{k}", f"{lat:.7f}", f"{lon:.7f}", "road", "2026-03-01 09:30"]
        for k, (lon, lat) in enumerate(points)
    ]
    f = write_csv(tmp_path / "big.csv", header, rows)
    with engine.connect() as conn:
        tables_before = set(sa.inspect(conn).get_table_names())
    before = checksums(engine)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAPSVC_")}
    env["DATABASE_URL"] = engine.url.render_as_string(hide_password=False)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mapsvc.cli", "incidents", "import", str(f), "--crs", "EPSG:4326"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    watch = sa.text(
        "SELECT pid FROM pg_stat_activity WHERE datname = :db AND backend_xid IS NOT NULL "
        "AND pid <> pg_backend_pid()"
    )
    deadline = time.monotonic() + 120
    writer = None
    try:
        while writer is None:
            assert proc.poll() is None, "the import ended before it could be killed"
            assert time.monotonic() < deadline, "the import never started writing"
            with engine.connect() as conn:
                writer = conn.scalar(watch, {"db": engine.url.database})
            time.sleep(0.1)
        time.sleep(0.5)  # well into its transaction
        assert proc.poll() is None, "the import ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    # the server notices the dead client and rolls its transaction back
    deadline = time.monotonic() + 120
    with engine.connect() as conn:
        while conn.scalar(
            sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": writer}
        ):
            assert time.monotonic() < deadline, "the killed import's backend lingers"
            time.sleep(0.2)
            conn.rollback()
        assert set(sa.inspect(conn).get_table_names()) == tables_before
    assert checksums(engine) == before


# --------------------------------------------------------------------------- backups


def test_backup_and_restore_round_trip_is_identical(demo_engine, make_database, tmp_path) -> None:
    """The demo district backed up and restored into an empty database: every table has
    the same rows (count and checksum); a second restore over it is refused without
    --force and changes nothing, with --force it gives the same tables again."""
    dump = tmp_path / "demo.dump"

    def cli(url: sa.engine.URL, *args: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAPSVC_")}
        env["DATABASE_URL"] = url.render_as_string(hide_password=False)
        return _mapsvc(env, "db", *args, timeout=300)

    res = cli(demo_engine.url, "backup", str(dump))
    assert res.returncode == 0, res.stderr
    assert f"to {dump}" in res.stdout and dump.stat().st_size > 100_000
    assert not dump.with_name(dump.name + ".partial").exists()
    original = checksums(demo_engine)
    assert original["incident"][0] > 1000 and original["alley_segment"][0] > 100

    target = make_engine(make_database())  # empty: no tables, no extensions
    res = cli(target.url, "restore", str(dump))
    assert res.returncode == 0, res.stderr
    assert f"{sum(n for n, _ in original.values())} rows" in res.stdout
    assert checksums(target) == original

    # not empty now: refused, named, and nothing changed
    with target.begin() as conn:
        conn.execute(
            sa.text(
                "DELETE FROM incident_event WHERE id IN "
                "(SELECT id FROM incident_event ORDER BY id LIMIT 3)"
            )
        )
    changed = checksums(target)
    res = cli(target.url, "restore", str(dump))
    assert res.returncode == 1 and "not empty" in res.stderr and "--force" in res.stderr
    assert checksums(target) == changed
    res = cli(target.url, "restore", "--force", str(dump))
    assert res.returncode == 0, res.stderr
    assert checksums(target) == original
    target.dispose()

    # a file that is no backup: one line, nothing changed
    bad = tmp_path / "bad.dump"
    bad.write_bytes(b"PGDMP not really")
    res = cli(target.url, "restore", "--force", str(bad))
    assert res.returncode == 1 and "is not a backup" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert checksums(target) == original


def test_backup_and_restore_on_the_embedded_cluster_as_the_service_role(own_cluster) -> None:
    """On the embedded cluster both run as the service role (no superuser): the restored
    copy in another database has the same tables, all owned by the service role."""
    pg = own_cluster
    env = _env(pg.var_dir, MAPSVC_DB_LISTEN_TCP="true")
    dump = pg.var_dir / "small.dump"
    res = _mapsvc(env, "db", "backup", str(dump))
    assert res.returncode == 0, res.stderr
    res = _mapsvc({**env, "MAPSVC_DB_NAME": "restored"}, "db", "restore", str(dump))
    assert res.returncode == 0, res.stderr
    original = make_engine(pg.url("mapsvc"))
    restored = make_engine(pg.url("restored"))
    assert checksums(restored) == checksums(original)
    assert set(_owners(restored).values()) == {SERVICE_ROLE}
    original.dispose()
    restored.dispose()
