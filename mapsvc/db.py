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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.orm import Session

from mapsvc.config import Settings
from mapsvc.core.progress import Progress, no_progress

#: server options of a cluster that keeps its data through a power cut (set on the command
#: line, so they win over any postgresql.conf)
DURABLE_OPTIONS = "-c fsync=on -c synchronous_commit=on -c full_page_writes=on"
#: the same for throw-away databases (tests, benchmarks): a crash may lose or corrupt them
DISPOSABLE_OPTIONS = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"

PG_BIN_CANDIDATES = ["/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin"]

#: the embedded cluster's superuser: creates databases and extensions, nothing else
SUPERUSER = "postgres"
#: the role the app and the CLI connect as: owns the app's database and its tables, is no
#: superuser (so no ``COPY ... FROM PROGRAM``, no reading files of the server)
SERVICE_ROLE = "mapsvc"
#: where the settings written by mapsvc start in ``postgresql.conf``; everything after this
#: line is rewritten at each start, so a cluster made by an older version gets them too
CONF_MARKER = "# mapsvc embedded cluster"
#: sized for a small server: WAL stays near 1 GB at most, checkpoints spread over 5 minutes
SERVER_SETTINGS = {
    "shared_buffers": "512MB",
    "work_mem": "64MB",
    "maintenance_work_mem": "512MB",
    "max_connections": "100",
    "max_wal_size": "1GB",
    "min_wal_size": "80MB",
    "wal_keep_size": "0",
    "wal_compression": "on",
    "checkpoint_timeout": "5min",
    "checkpoint_completion_target": "0.9",
    "password_encryption": "scram-sha-256",
}
#: longest path of a Unix socket the kernel accepts (``sun_path`` less its NUL)
MAX_SOCKET_PATH = 107


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


def _port_free(port: int) -> bool:
    """Whether PostgreSQL could listen on 127.0.0.1:``port``.

    The probe sets SO_REUSEADDR as PostgreSQL does, so sockets of a server stopped a moment
    ago (TIME_WAIT) do not count as taken; only a listening socket does.
    """
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (mode 0600 from the start)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


class EmbeddedPostgres:
    """A private PostgreSQL cluster under ``var_dir/pg``, owned by this checkout.

    Nobody but the cluster's owner gets in: the server listens on a Unix socket inside its
    data directory (mode 0700, so another OS user cannot even reach the socket) and on
    127.0.0.1 only when ``listen_tcp`` asks for it (and not for the superuser); every
    connection needs a password (scram-sha-256, no ``trust``, no replication). Two roles: the superuser ``postgres``
    creates databases and extensions, the service role ``mapsvc`` (no superuser) owns the
    app's database and tables and is the one the app connects as. Their random passwords
    are in ``var_dir/pg-<role>.password`` (mode 0600, owned by whoever runs mapsvc).

    A cluster made by an older version (``trust``, the app connecting as ``postgres``) is
    brought to this state at its next start, data kept (:meth:`start`,
    :meth:`create_database`).

    When the ``postgres`` system user cannot reach ``var/`` (a clone under a private home
    folder), the cluster lives in ``/var/tmp/mapsvc-<uid>-<hash>`` and ``var/pg`` is a
    symlink to it; the password files stay in ``var/``.
    """

    def __init__(self, var_dir: str | os.PathLike[str], listen_tcp: bool = False) -> None:
        self.var_dir = Path(var_dir).resolve()
        self.link = self.var_dir / "pg"
        self.as_root = os.geteuid() == 0
        self.listen_tcp = listen_tcp

    # -- paths
    @property
    def datadir(self) -> Path:
        return self.link.resolve() if self.link.is_symlink() else self.link

    @property
    def socket_dir(self) -> Path:
        """The folder of the server's Unix socket: the data directory (mode 0700)."""
        return self.datadir

    @property
    def port_file(self) -> Path:
        return self.datadir / "mapsvc.port"

    @property
    def logfile(self) -> Path:
        return self.datadir / "server.log"

    @property
    def port(self) -> int:
        return int(self.port_file.read_text().strip())

    def password_file(self, role: str) -> Path:
        """Where the password of ``role`` is kept (mode 0600)."""
        return self.var_dir / f"pg-{role}.password"

    def password(self, role: str) -> str:
        try:
            return self.password_file(role).read_text().strip()
        except FileNotFoundError:
            raise DatabaseError(
                f"{self.password_file(role)} is missing: run `mapsvc db start` to make it"
            ) from None

    def url(self, dbname: str) -> URL:
        """URL of database ``dbname`` as the service role, over the private socket."""
        return self._url(SERVICE_ROLE, dbname)

    def admin_url(self, dbname: str = "postgres") -> URL:
        """URL of database ``dbname`` as the superuser: for creating and dropping databases
        and extensions, never for the app's own work."""
        return self._url(SUPERUSER, dbname)

    def _url(self, role: str, dbname: str) -> URL:
        return URL.create(
            "postgresql+psycopg",
            username=role,
            password=self.password(role),
            database=dbname,
            query={"host": str(self.socket_dir), "port": str(self.port)},
        )

    # -- process helpers
    def _run(
        self, args: list[str | Path], check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a server program as the cluster's owner (``postgres`` when we are root)."""
        cmd = [str(a) for a in args]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        res = subprocess.run(cmd, capture_output=True, text=True, input=stdin)
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

    def _give_to_server(self, path: Path) -> None:
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def initialized(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def init(self) -> None:
        """Create the cluster (initdb) and its two roles, if it does not exist yet.

        initdb's own pg_hba.conf admits nobody over TCP and only the owner's OS account on
        the socket (peer); :meth:`start` replaces it by password authentication before
        the server ever runs.
        """
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
        self._give_to_server(target)
        os.chmod(target, 0o700)
        self._run(
            [
                _pg_bin() / "initdb",
                "-D",
                target,
                "-U",
                SUPERUSER,
                "--auth-local=peer",
                "--auth-host=reject",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ]
        )
        self._write_port(_free_port())
        self._set_passwords()

    def _write_port(self, port: int) -> None:
        self.port_file.write_text(str(port))
        self._give_to_server(self.port_file)

    def _configure(self) -> None:
        """Write mapsvc's server settings and pg_hba.conf (each start, old clusters too)."""
        socket_path = self.socket_dir / f".s.PGSQL.{self.port}"
        if len(str(socket_path)) > MAX_SOCKET_PATH:
            raise DatabaseError(
                f"the database socket path {socket_path} is longer than the "
                f"{MAX_SOCKET_PATH} characters Linux allows: set MAPSVC_VAR_DIR to a shorter path"
            )
        os.chmod(self.datadir, 0o700)
        conf = self.datadir / "postgresql.conf"
        text = conf.read_text()
        if CONF_MARKER in text:
            text = text[: text.index(CONF_MARKER)]
        settings = {
            **SERVER_SETTINGS,
            "listen_addresses": "'127.0.0.1'" if self.listen_tcp else "''",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "unix_socket_permissions": "0700",
        }
        block = "".join(f"{k} = {v}\n" for k, v in settings.items())
        conf.write_text(f"{text.rstrip()}\n\n{CONF_MARKER} (rewritten at each start)\n{block}")
        hba = [
            "# written by mapsvc at each start: a password (scram-sha-256) for every",
            "# connection, on the private socket; no trust, no replication",
            "local   all   all                  scram-sha-256",
        ]
        if self.listen_tcp:
            # the superuser only ever comes in through the private socket
            hba.append(f"host    all   {SUPERUSER}   127.0.0.1/32   reject")
            hba.append("host    all   all   127.0.0.1/32   scram-sha-256")
        (self.datadir / "pg_hba.conf").write_text("\n".join(hba) + "\n")
        for name in ("postgresql.conf", "pg_hba.conf"):
            self._give_to_server(self.datadir / name)

    def _set_passwords(self) -> None:
        """Give both roles their passwords (new random ones where no file keeps one).

        Runs the server in single-user mode on the stopped cluster: no connection and no
        authentication are involved, so this works on an old ``trust`` cluster and on one
        whose password files were lost alike. The passwords reach the server on its
        standard input, never on a command line.
        """
        import secrets

        passwords = {}
        for role in (SUPERUSER, SERVICE_ROLE):
            path = self.password_file(role)
            if path.exists():
                passwords[role] = path.read_text().strip()
            else:
                passwords[role] = secrets.token_urlsafe(24)
                _write_private(path, passwords[role] + "\n")
        svc = SERVICE_ROLE
        sql = [
            "SET password_encryption = 'scram-sha-256';",
            f"ALTER ROLE {SUPERUSER} PASSWORD '{passwords[SUPERUSER]}';",
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
            f"'{svc}') THEN CREATE ROLE {svc}; END IF; END $$;",
            f"ALTER ROLE {svc} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
            f"NOBYPASSRLS PASSWORD '{passwords[svc]}';",
        ]
        res = self._run(
            [_pg_bin() / "postgres", "--single", "-D", self.datadir, "postgres"],
            check=False,
            stdin="\n".join(sql) + "\n",
        )
        out = f"{res.stdout}\n{res.stderr}"
        if res.returncode != 0 or "ERROR:" in out or "FATAL:" in out:
            problem = next(
                (line for line in out.splitlines() if "ERROR:" in line or "FATAL:" in line),
                out.strip()[-300:],
            )
            raise DatabaseError(f"cannot set the database passwords: {problem.strip()}")

    def _secured(self) -> bool:
        """Whether both roles have their password files (else :meth:`_set_passwords`)."""
        return all(self.password_file(r).exists() for r in (SUPERUSER, SERVICE_ROLE))

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
        When the server already runs it is used as it is, unless it is an older version's
        cluster without passwords (stopped and secured first) or a durable server is asked
        for and the running one is not (restarted durable).

        The port is kept from one start to the next (connections, and the socket's name,
        depend on it); only when TCP is asked for and another program listens on it is a
        new one chosen.
        """
        self.init()
        if self.running():
            if self._secured() and (not durable or self._durable()):
                return
            self._stop()  # an older version's cluster, or a disposable one asked to keep data
        pidfile = self.datadir / "postmaster.pid"
        if pidfile.exists():  # left by a crash: pg_ctl status said nothing runs
            pidfile.unlink()
        if self.listen_tcp and not _port_free(self.port):
            self._write_port(_free_port())
        self._configure()
        if not self._secured():
            self._set_passwords()
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

    def _durable(self) -> bool:
        """Whether the running server keeps its data through a power cut.

        A server a benchmark or the tests started with :data:`DISPOSABLE_OPTIONS` runs on
        the same data directory as the demo's; the demo must not go on using it as it is.
        """
        engine = sa.create_engine(self.admin_url("postgres"), poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                return all(
                    conn.scalar(sa.text(f"SHOW {name}")) == "on"
                    for name in ("fsync", "synchronous_commit", "full_page_writes")
                )
        finally:
            engine.dispose()

    def _stop(self) -> None:
        self._run([_pg_bin() / "pg_ctl", "stop", "-w", "-m", "fast", "-D", self.datadir])

    def stop(self) -> None:
        if self.running():
            self._stop()

    def destroy(self) -> None:
        self.stop()
        target = self.datadir
        moved = self.link.is_symlink()  # the cluster lives in /var/tmp/mapsvc-<uid>-<hash>
        if moved:
            self.link.unlink()
        shutil.rmtree(target, ignore_errors=True)
        if moved and target.parent.name.startswith("mapsvc-"):
            shutil.rmtree(target.parent, ignore_errors=True)
        for role in (SUPERUSER, SERVICE_ROLE):
            self.password_file(role).unlink(missing_ok=True)

    # -- databases
    def create_database(self, dbname: str) -> URL:
        """Make ``dbname`` the service role's database, ready for the migrations.

        Created when missing, with the extensions the superuser alone may create
        (PostGIS, pgRouting when installed). An existing database (an older version's,
        owned by ``postgres``) is handed over: the database and every table, view,
        sequence, type and function in it that no extension owns pass to the service role.
        Returns the service role's URL of it.
        """
        created = create_database(self.admin_url(dbname), owner=SERVICE_ROLE)
        admin = sa.create_engine(self.admin_url(dbname), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                if not created:
                    conn.exec_driver_sql(f'ALTER DATABASE "{dbname}" OWNER TO {SERVICE_ROLE}')
                for ext in ("postgis", "pgrouting"):
                    available = conn.scalar(
                        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = :e"),
                        {"e": ext},
                    )
                    if available:
                        conn.exec_driver_sql(f"CREATE EXTENSION IF NOT EXISTS {ext}")
                if not created:
                    hand_over(conn, SERVICE_ROLE)
        finally:
            admin.dispose()
        return self.url(dbname)


#: objects in the app's schemas that do not belong to an extension, with the ALTER
#: command that changes their owner
_OWNED_OBJECTS = """
WITH me AS (SELECT oid FROM pg_roles WHERE rolname = :role),
ext AS (SELECT classid, objid FROM pg_depend WHERE deptype = 'e'),
app_ns AS (
    SELECT oid, nspname FROM pg_namespace
    WHERE nspname NOT IN ('pg_catalog', 'information_schema')
      AND nspname NOT LIKE 'pg\\_toast%' AND nspname NOT LIKE 'pg\\_temp%'
)
SELECT 'SCHEMA', quote_ident(n.nspname) FROM app_ns n JOIN pg_namespace s ON s.oid = n.oid
WHERE s.nspowner NOT IN ((SELECT oid FROM me), 'pg_database_owner'::regrole)
  AND (s.oid) NOT IN (SELECT objid FROM ext WHERE classid = 'pg_namespace'::regclass)
UNION ALL
SELECT CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                      WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
       c.oid::regclass::text
FROM pg_class c JOIN app_ns n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND c.relowner <> (SELECT oid FROM me)
  AND c.oid NOT IN (SELECT objid FROM ext WHERE classid = 'pg_class'::regclass)
  -- sequences of serial and identity columns follow their table
  AND NOT (c.relkind = 'S' AND EXISTS (
      SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
      AND d.objid = c.oid AND d.deptype IN ('a', 'i')))
UNION ALL
SELECT 'TYPE', t.oid::regtype::text
FROM pg_type t JOIN app_ns n ON n.oid = t.typnamespace
WHERE t.typtype IN ('e', 'd', 'r', 'c') AND t.typowner <> (SELECT oid FROM me)
  AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
  AND t.oid NOT IN (SELECT objid FROM ext WHERE classid = 'pg_type'::regclass)
UNION ALL
SELECT 'ROUTINE', p.oid::regprocedure::text
FROM pg_proc p JOIN app_ns n ON n.oid = p.pronamespace
WHERE p.proowner <> (SELECT oid FROM me)
  AND p.oid NOT IN (SELECT objid FROM ext WHERE classid = 'pg_proc'::regclass)
"""


def hand_over(conn: sa.Connection, role: str) -> int:
    """Make ``role`` the owner of every object of the connected database that no extension
    owns (run as a superuser); returns how many changed owner.

    ``REASSIGN OWNED BY postgres`` cannot be used: the bootstrap superuser's objects
    include the system's own.
    """
    rows = conn.execute(sa.text(_OWNED_OBJECTS), {"role": role}).all()
    for kind, name in rows:
        conn.exec_driver_sql(f"ALTER {kind} {name} OWNER TO {role}")
    return len(rows)


# --------------------------------------------------------------------------- URLs and engines


def normalize_url(url: str | URL) -> URL:
    """Use the psycopg 3 driver whatever spelling of PostgreSQL URL was given."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        u = u.set(drivername="postgresql+psycopg")
    return u


def embedded(settings: Settings) -> EmbeddedPostgres:
    """The embedded cluster ``settings`` describe (whether or not it runs)."""
    return EmbeddedPostgres(settings.var_dir, listen_tcp=settings.db_listen_tcp)


def resolve_url(settings: Settings) -> URL:
    """The URL the app and the CLI connect with.

    With ``DATABASE_URL`` that URL; else the embedded cluster is started (secured first
    when an older version made it) and the URL is the service role's, on the app's
    database (created when missing).
    """
    if settings.database_url:
        return normalize_url(settings.database_url)
    pg = embedded(settings)
    pg.start()
    return pg.create_database(settings.db_name)


def admin_url(settings: Settings) -> URL:
    """The URL for creating and dropping the app's database: ``DATABASE_URL`` itself, or
    the embedded cluster's superuser (the cluster is started)."""
    if settings.database_url:
        return normalize_url(settings.database_url)
    pg = embedded(settings)
    pg.start()
    return pg.admin_url(settings.db_name)


def create_database(url: URL, owner: str | None = None) -> bool:
    """Create the database named in ``url`` if missing; True when it was created.

    ``url``'s user needs the right to create databases (a superuser's URL for the embedded
    cluster: :meth:`EmbeddedPostgres.admin_url`); ``owner`` becomes the new database's owner.
    """
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.scalar(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": url.database}
            )
            if not exists:
                owned = f' OWNER "{owner}"' if owner else ""
                conn.exec_driver_sql(f'CREATE DATABASE "{url.database}"{owned}')
                return True
            return False
    finally:
        admin.dispose()


def drop_database(url: URL) -> None:
    """Drop the database named in ``url`` (connected to as ``url``'s user, who must own it
    or be a superuser), closing its connections."""
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
    finally:
        admin.dispose()


#: seconds a new connection may take before it counts as failed (an outage answers quickly)
CONNECT_TIMEOUT_S = 10


def make_engine(url: URL | str) -> Engine:
    """An engine whose pool checks each connection before use (``pool_pre_ping``), so the
    app reconnects by itself after the database restarts."""
    return sa.create_engine(
        normalize_url(url),
        pool_pre_ping=True,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
    )


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


# --------------------------------------------------------------------------- backups


def libpq_env(url: URL) -> dict[str, str]:
    """The environment that points libpq's tools (pg_dump, psql) at ``url``.

    The password travels in the environment of the child, never on its command line
    (which every user can read in ``ps``).
    """
    host = url.host or url.query.get("host")
    port = url.port or url.query.get("port")
    env = {"PGDATABASE": str(url.database), "PGCONNECT_TIMEOUT": str(CONNECT_TIMEOUT_S)}
    for key, value in (
        ("PGHOST", host),
        ("PGPORT", port),
        ("PGUSER", url.username),
        ("PGPASSWORD", url.password),
    ):
        if value:
            env[key] = str(value if not isinstance(value, tuple) else value[0])
    return {**os.environ, **env}


def table_rows(conn: sa.Connection) -> dict[str, int]:
    """Rows of every table of the connected database that no extension owns, by name."""
    names = conn.scalars(
        sa.text(
            "SELECT c.oid::regclass::text FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', "
            "'information_schema') AND n.nspname NOT LIKE 'pg\\_%' AND c.oid NOT IN "
            "(SELECT objid FROM pg_depend WHERE deptype = 'e' "
            "AND classid = 'pg_class'::regclass) ORDER BY 1"
        )
    ).all()
    return {name: conn.scalar(sa.text(f"SELECT count(*) FROM {name}")) for name in names}


def backup_database(url: URL, file: Path, progress: Progress = no_progress) -> None:
    """Write database ``url`` to ``file`` in pg_dump's custom format (compressed; read
    back with :func:`restore_database`).

    The dump is one consistent snapshot; it is written next to ``file`` first and moved
    into place when complete, so an interrupted backup never leaves a truncated file
    under the expected name.
    """
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            # pg_dump also writes the rows of extensions' configuration tables
            tables = len(table_rows(conn)) + conn.scalar(
                sa.text("SELECT count(*) FROM pg_extension, unnest(extconfig)")
            )
    except sa.exc.OperationalError as exc:
        raise DatabaseError(f"cannot reach database {url.database}: {_reason(exc)}") from None
    finally:
        engine.dispose()
    partial = file.with_name(file.name + ".partial")
    cmd = [_pg_bin() / "pg_dump", "--format=custom", "--verbose", f"--file={partial}"]
    with progress(total=tables, desc=f"backing up {url.database}", unit="table") as bar:
        _run_tool(cmd, url, lambda line: "dumping contents of table" in line and bar.update(1))
    os.replace(partial, file)


def archive_contents(file: Path) -> list[str]:
    """The table of contents of a custom-format dump (``pg_restore --list``)."""
    res = subprocess.run(
        [str(_pg_bin() / "pg_restore"), "--list", str(file)], capture_output=True, text=True
    )
    if res.returncode != 0:
        reason = (res.stderr.strip().splitlines() or ["unreadable"])[-1]
        raise DatabaseError(f"{file} is not a backup made by `mapsvc db backup`: {reason}")
    return res.stdout.splitlines()


def restore_database(
    url: URL,
    file: Path,
    admin: URL | None = None,
    force: bool = False,
    progress: Progress = no_progress,
) -> dict[str, int]:
    """Restore ``file`` (from :func:`backup_database`) into database ``url``, in one
    transaction; returns the rows of each table afterwards.

    A database whose tables hold rows is refused unless ``force``: its contents would be
    replaced. The objects are created as ``url``'s user, so on the embedded cluster the
    service role owns them; the extensions the dump needs are created first through
    ``admin`` (the superuser) when given, and their own entries (and the rows of their
    tables, such as PostGIS's ``spatial_ref_sys``) are left out of the restore.
    """
    toc = archive_contents(file)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            held = {t: n for t, n in table_rows(conn).items() if n and t != "alembic_version"}
    except sa.exc.OperationalError as exc:
        raise DatabaseError(f"cannot reach database {url.database}: {_reason(exc)}") from None
    finally:
        engine.dispose()
    if held and not force:
        sample = ", ".join(f"{t}: {n} rows" for t, n in list(held.items())[:3])
        raise DatabaseError(
            f"database {url.database} is not empty ({len(held)} tables hold rows; {sample}); "
            "restoring replaces all of it: add --force to do that"
        )
    extensions = [line.split()[5] for line in toc if _toc_kind(line) == "EXTENSION"]
    ext_engine = sa.create_engine(admin or url, isolation_level="AUTOCOMMIT")
    try:
        with ext_engine.connect() as conn:
            for ext in extensions:
                conn.exec_driver_sql(f'CREATE EXTENSION IF NOT EXISTS "{ext}"')
            ext_tables = set(
                conn.scalars(
                    sa.text(
                        "SELECT c.relname FROM pg_depend d JOIN pg_class c ON c.oid = d.objid "
                        "WHERE d.deptype = 'e' AND d.classid = 'pg_class'::regclass"
                    )
                )
            )
    except sa.exc.DBAPIError as exc:
        raise DatabaseError(
            f"cannot create the extensions {', '.join(extensions)} in {url.database}: "
            f"{_reason(exc)}"
        ) from None
    finally:
        ext_engine.dispose()
    keep = [line for line in toc if not _extension_entry(line, ext_tables)]
    listing = file.with_name(f".{file.name}.{os.getpid()}.list")
    listing.write_text("\n".join(keep) + "\n")
    items = sum(1 for line in keep if line and not line.startswith(";"))
    cmd = [
        _pg_bin() / "pg_restore",
        "--clean",
        "--if-exists",
        "--no-owner",
        "--no-privileges",
        "--single-transaction",
        "--exit-on-error",
        "--verbose",
        f"--use-list={listing}",
        f"--dbname={url.database}",
        file,
    ]
    try:
        with progress(total=items, desc=f"restoring {url.database}", unit="item") as bar:
            _run_tool(cmd, url, lambda line: line.startswith(_RESTORE_STEPS) and bar.update(1))
    finally:
        listing.unlink(missing_ok=True)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return table_rows(conn)
    finally:
        engine.dispose()


#: what pg_restore --verbose says as it does an entry of the list
_RESTORE_STEPS = ("pg_restore: creating", "pg_restore: processing data")


def _toc_kind(line: str) -> str:
    """The kind of a ``pg_restore --list`` entry (``TABLE DATA``, ``EXTENSION``...)."""
    if not line or line.startswith(";"):
        return ""
    parts = line.split(";", 1)[1].split()
    # "ID; TABLEOID OID KIND NAMESPACE TAG OWNER", KIND of one or two words
    words = parts[2:]
    for two in ("TABLE DATA", "SEQUENCE SET", "MATERIALIZED VIEW", "FK CONSTRAINT"):
        if " ".join(words[:2]) == two:
            return two
    return words[0] if words else ""


def _extension_entry(line: str, ext_tables: set[str]) -> bool:
    """Whether a dump entry belongs to an extension (or to the ``public`` schema itself),
    which the restore leaves to the superuser and the extension scripts."""
    kind = _toc_kind(line)
    words = line.split(";", 1)[1].split() if kind else []
    if kind == "EXTENSION":
        return True
    if kind == "COMMENT" and words[4:5] in (["EXTENSION"], ["SCHEMA"]):
        return True
    if kind == "SCHEMA" and words[4:5] == ["public"]:
        return True
    return kind == "TABLE DATA" and len(words) > 5 and words[5] in ext_tables


def _run_tool(cmd: list[str | Path], url: URL, on_line: Callable[[str], object]) -> None:
    """Run pg_dump or pg_restore against ``url``, feeding each line it writes to
    ``on_line``; a failure becomes a DatabaseError with the tool's last error line."""
    proc = subprocess.Popen(
        [str(c) for c in cmd],
        env=libpq_env(url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    errors = []
    assert proc.stderr is not None
    for line in proc.stderr:
        on_line(line.strip())
        if "error:" in line:
            errors.append(line.strip())
    if proc.wait() != 0:
        tool = Path(str(cmd[0])).name
        raise DatabaseError(
            f"{tool} failed: {errors[-1] if errors else 'exit ' + str(proc.returncode)}"
        )


def _reason(exc: sa.exc.DBAPIError) -> str:
    return (str(exc.orig).strip().splitlines() or ["?"])[0] if exc.orig else str(exc)


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
