"""Database access without Flask: URLs, engines, the schema, sessions and the embedded cluster.

The web's one engine per app and session per request live in :mod:`mapsvc.web.context`.

With no ``DATABASE_URL`` the service owns a private PostgreSQL + PostGIS cluster under
``var/pg`` (initdb + pg_ctl). PostgreSQL refuses to run as root, so when we are root the
server runs as the ``postgres`` system user. With ``DATABASE_URL`` that server is used.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.orm import Session

from mapsvc.config import Settings

#: server options of a cluster that keeps its data through a power cut (set on the command
#: line, so they win over any postgresql.conf)
DURABLE_OPTIONS = "-c fsync=on -c synchronous_commit=on -c full_page_writes=on"
#: the same for throw-away databases (tests, benchmarks): a crash may lose or corrupt them
DISPOSABLE_OPTIONS = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"

PG_BIN_CANDIDATES = ["/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin"]


class DatabaseError(RuntimeError):
    """A database problem explained in one line, shown to the user instead of a traceback."""


# --------------------------------------------------------------------------- embedded cluster


def _pg_bin() -> Path:
    for cand in PG_BIN_CANDIDATES:
        if (Path(cand) / "pg_ctl").exists():
            return Path(cand)
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    raise DatabaseError(
        "PostgreSQL server binaries not found; install them with: "
        "apt-get install -y postgresql-15 postgresql-15-postgis-3 postgresql-15-pgrouting"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedPostgres:
    """A private PostgreSQL cluster under ``var_dir/pg``, owned by this checkout.

    The data directory holds the socket too, so nothing outside ``var/`` is touched. When the
    ``postgres`` system user cannot reach ``var/`` (a clone under a private home folder), the
    cluster lives in ``/var/tmp/mapsvc-<uid>-<hash>`` and ``var/pg`` is a symlink to it.
    """

    def __init__(self, var_dir: str | os.PathLike[str]) -> None:
        self.var_dir = Path(var_dir).resolve()
        self.link = self.var_dir / "pg"
        self.as_root = os.geteuid() == 0

    # -- paths
    @property
    def datadir(self) -> Path:
        return self.link.resolve() if self.link.is_symlink() else self.link

    @property
    def port_file(self) -> Path:
        return self.datadir / "mapsvc.port"

    @property
    def logfile(self) -> Path:
        return self.datadir / "server.log"

    @property
    def port(self) -> int:
        return int(self.port_file.read_text().strip())

    def url(self, dbname: str) -> URL:
        return URL.create(
            "postgresql+psycopg",
            username="postgres",
            host="127.0.0.1",
            port=self.port,
            database=dbname,
        )

    # -- process helpers
    def _run(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(a) for a in args]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if check and res.returncode != 0:
            raise DatabaseError(f"{' '.join(cmd[:6])} failed: {(res.stderr or res.stdout).strip()}")
        return res

    def _postgres_can_reach(self, path: Path) -> bool:
        if not self.as_root:
            return True
        res = subprocess.run(
            ["runuser", "-u", "postgres", "--", "test", "-x", str(path)], capture_output=True
        )
        return res.returncode == 0

    def initialized(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def init(self) -> None:
        """Create the cluster (initdb) if it does not exist yet."""
        if self.initialized():
            return
        self.var_dir.mkdir(parents=True, exist_ok=True)
        if self.link.is_symlink() and not self.link.exists():
            self.link.unlink()
        target = self.link
        if not self._postgres_can_reach(self.var_dir):
            import hashlib

            digest = hashlib.sha1(str(self.var_dir).encode()).hexdigest()[:10]
            target = Path(f"/var/tmp/mapsvc-{os.getuid()}-{digest}/pg")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(target.parent, 0o755)
            if not self.link.exists():
                self.link.symlink_to(target)
        target.mkdir(parents=True, exist_ok=True)
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(target, pw.pw_uid, pw.pw_gid)
        os.chmod(target, 0o700)
        self._run(
            [
                _pg_bin() / "initdb",
                "-D",
                target,
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ]
        )
        port = _free_port()
        conf = target / "postgresql.conf"
        with conf.open("a") as fh:
            fh.write(
                "\n# mapsvc embedded cluster\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {port}\n"
                f"unix_socket_directories = '{target}'\n"
                "shared_buffers = 512MB\nwork_mem = 64MB\nmaintenance_work_mem = 512MB\n"
                "max_wal_size = 4GB\nmax_connections = 100\n"
            )
        self._write_port(port)

    def _write_port(self, port: int) -> None:
        self.port_file.write_text(str(port))
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(self.port_file, pw.pw_uid, pw.pw_gid)

    def running(self) -> bool:
        if not self.initialized():
            return False
        res = self._run([_pg_bin() / "pg_ctl", "status", "-D", self.datadir], check=False)
        return res.returncode == 0

    def start(self, durable: bool = True) -> None:
        """Start the server (initialising it first); a stale pid file does not block this.

        The server is durable (fsync, synchronous commit, full-page writes), whatever a
        ``postgresql.conf`` written by an older version says. Only the tests and the
        benchmarks, whose databases are thrown away, pass ``durable=False`` for speed.
        When the server already runs it is used as it is.
        """
        self.init()
        if self.running():
            return
        pidfile = self.datadir / "postmaster.pid"
        if pidfile.exists():  # left by a crash: pg_ctl status said nothing runs
            pidfile.unlink()
        # the port chosen at initdb may have been taken since; pick another if so
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", self.port))
        except OSError:
            port = _free_port()
            with (self.datadir / "postgresql.conf").open("a") as fh:
                fh.write(f"port = {port}\n")
            self._write_port(port)
        self._run(
            [
                _pg_bin() / "pg_ctl",
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                self.datadir,
                "-l",
                self.logfile,
                "-o",
                DURABLE_OPTIONS if durable else DISPOSABLE_OPTIONS,
            ]
        )

    def stop(self) -> None:
        if self.running():
            self._run([_pg_bin() / "pg_ctl", "stop", "-w", "-m", "fast", "-D", self.datadir])

    def destroy(self) -> None:
        self.stop()
        target = self.datadir
        if self.link.is_symlink():
            self.link.unlink()
        shutil.rmtree(target, ignore_errors=True)


# --------------------------------------------------------------------------- URLs and engines


def normalize_url(url: str | URL) -> URL:
    """Use the psycopg 3 driver whatever spelling of PostgreSQL URL was given."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        u = u.set(drivername="postgresql+psycopg")
    return u


def resolve_url(settings: Settings) -> URL:
    """The database URL of ``settings``, starting the embedded cluster when none is set."""
    if settings.database_url:
        return normalize_url(settings.database_url)
    pg = EmbeddedPostgres(settings.var_dir)
    pg.start()
    url = pg.url(settings.db_name)
    create_database(url)
    return url


def create_database(url: URL) -> bool:
    """Create the database named in ``url`` if missing; True when it was created."""
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.scalar(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": url.database}
            )
            if not exists:
                conn.exec_driver_sql(f'CREATE DATABASE "{url.database}"')
                return True
            return False
    finally:
        admin.dispose()


def drop_database(url: URL) -> None:
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
    finally:
        admin.dispose()


def make_engine(url: URL | str) -> Engine:
    return sa.create_engine(normalize_url(url), pool_pre_ping=True, future=True)


def check_connection(engine: Engine) -> dict[str, str]:
    """Connect once and return server versions; raise DatabaseError with one clear line."""
    safe = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            pg = conn.scalar(sa.text("SHOW server_version"))
            try:
                postgis = conn.scalar(sa.text("SELECT postgis_lib_version()"))
            except sa.exc.DBAPIError:
                raise DatabaseError(
                    f"database {safe} has no PostGIS: run CREATE EXTENSION postgis "
                    "(package postgresql-15-postgis-3)"
                ) from None
    except sa.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseError(f"cannot reach database {safe}: {reason}") from None
    return {"postgresql": str(pg), "postgis": str(postgis)}


def ensure_schema(engine: Engine) -> None:
    """Create the extensions (when allowed) and run the Alembic migrations to head."""
    safe = engine.url.render_as_string(hide_password=True)
    try:
        with engine.begin() as conn:
            for ext in ("postgis", "pgrouting"):
                have = conn.scalar(
                    sa.text("SELECT 1 FROM pg_extension WHERE extname = :e"), {"e": ext}
                )
                if have:
                    continue
                available = conn.scalar(
                    sa.text("SELECT 1 FROM pg_available_extensions WHERE name = :e"), {"e": ext}
                )
                if available:
                    conn.exec_driver_sql(f"CREATE EXTENSION IF NOT EXISTS {ext}")
                elif ext == "postgis":
                    raise DatabaseError(
                        f"database {safe} has no PostGIS extension available "
                        "(install postgresql-15-postgis-3 on the server)"
                    )
    except sa.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseError(f"cannot reach database {safe}: {reason}") from None
    except sa.exc.ProgrammingError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseError(f"cannot create extensions in {safe}: {reason}") from None
    from mapsvc.migrations import upgrade

    upgrade(engine)


# --------------------------------------------------------------------------- sessions


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: commit on success, roll back everything on any error."""
    session = Session(bind=engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def wait_for(engine: Engine, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            check_connection(engine)
            return
        except DatabaseError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
