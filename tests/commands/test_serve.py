"""What `make demo` runs: `mapsvc serve` on its own embedded cluster, first and second run;
gunicorn and its signals (Ctrl-C, SIGTERM, SIGHUP each stop the database serve started), a
busy port, and what `make demo` itself prints."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mapsvc.config import PROJECT_ROOT
from mapsvc.db import EmbeddedPostgres
from tests.fixtures.accounts import ADMIN_TOKEN


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    """The environment without the caller's database and settings (nor make's own)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")
        and not k.startswith("MAPSVC_")
    }
    env.update(extra)
    return env


def _serve(var_dir: Path, port: int, *args: str, **extra: str) -> subprocess.Popen:
    env = _env(MAPSVC_VAR_DIR=str(var_dir), MAPSVC_PORT=str(port), MAPSVC_DEMO_INCIDENTS="300")
    env.update(extra)
    return subprocess.Popen(
        [sys.executable, "-m", "mapsvc.cli", "serve", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _db_status(var_dir: Path) -> tuple[int, str]:
    """``mapsvc db status`` on ``var_dir``: (exit code, what it said)."""
    res = subprocess.run(
        [sys.executable, "-m", "mapsvc.cli", "db", "status"],
        env=_env(MAPSVC_VAR_DIR=str(var_dir)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    return res.returncode, res.stdout + res.stderr


def _wait_healthy(proc: subprocess.Popen, port: int, seconds: float) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited early:\n{proc.stdout.read()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                return json.loads(r.read())
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise AssertionError(f"not healthy after {seconds}s:\n{proc.stdout.read()}")


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    return out


def test_serve_loads_demo_once_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    port = _free_port()
    pg = EmbeddedPostgres(var_dir)
    try:
        proc = _serve(var_dir, port)
        health = _wait_healthy(proc, port, 300)
        assert health == {"status": "ok"}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as r:
            page = r.read().decode()
        assert "leaflet" in page.lower()
        out = _stop(proc)
        assert "loading the demo" in out
        assert proc.returncode == 0, out
        assert not pg.running(), "Ctrl-C must stop the embedded database"

        # second run: quick, keeps the data (no demo load)
        t0 = time.monotonic()
        proc = _serve(var_dir, port)
        _wait_healthy(proc, port, 120)
        second = time.monotonic() - t0
        out = _stop(proc)
        assert "loading the demo" not in out
        assert second < 30, f"second start took {second:.1f}s"
        assert not pg.running()
    finally:
        pg.destroy()


def test_serve_no_demo_leaves_an_empty_database_empty(fresh_engine) -> None:
    """``mapsvc serve --no-demo`` on an empty database (DATABASE_URL): it serves at once
    and loads nothing (without the option, the demo would be loaded before serving)."""
    import sqlalchemy as sa

    port = _free_port()
    env = {
        k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("MAPSVC_")
    }
    env.update(
        DATABASE_URL=fresh_engine.url.render_as_string(hide_password=False),
        MAPSVC_DEMO_INCIDENTS="300",  # so that a wrongly loaded demo is quick to see
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "mapsvc.cli", "serve", "--no-demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        health = _wait_healthy(proc, port, 120)
        assert health["status"] == "ok"
        with fresh_engine.connect() as c:
            rows = {
                t: c.scalar(sa.text(f"SELECT count(*) FROM {t}"))
                for t in ("district", "community", "grid", "incident")
            }
        assert rows == dict.fromkeys(rows, 0)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/communities", timeout=30) as r:
            assert json.loads(r.read())["features"] == []
    finally:
        out = _stop(proc)
    assert "loading the demo" not in out
    assert proc.returncode == 0, out


# --------------------------------------------------------------------------- signals


@pytest.fixture(scope="module")
def stopped_cluster(tmp_path_factory) -> Iterator[Path]:
    """A var dir with an initialised embedded cluster at the latest schema, stopped."""
    var_dir = tmp_path_factory.mktemp("serve") / "var"
    pg = EmbeddedPostgres(var_dir)
    pg.start(durable=False)
    pg.stop()
    yield var_dir
    pg.destroy()


def _as_admin(url: str) -> urllib.request.Request:
    """A request for ``url`` with the test admin's token (the demo database holds it)."""
    return urllib.request.Request(url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})


def _headers(port: int, path: str = "/") -> dict[str, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
        return dict(r.headers)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_each_stop_signal_stops_the_server_and_the_database_it_started(
    stopped_cluster: Path, sig: signal.Signals
) -> None:
    var_dir = stopped_cluster
    port = _free_port()
    proc = _serve(var_dir, port, "--no-demo")
    try:
        _wait_healthy(proc, port, 120)
        assert _db_status(var_dir)[0] == 0
        headers = _headers(port)
        # gunicorn, not the development server, and no software name in Server
        assert headers["Server"] == "mapsvc", headers
        assert "Werkzeug" not in str(headers) and "gunicorn" not in str(headers)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "serving on" in out and "Traceback" not in out, out
    code, status = _db_status(var_dir)
    assert code == 3 and "stopped" in status, status
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)


@pytest.mark.parametrize("how", ["already running", "--keep-db"])
def test_a_database_serve_did_not_start_or_must_keep_stays_running(
    stopped_cluster: Path, how: str
) -> None:
    var_dir = stopped_cluster
    pg = EmbeddedPostgres(var_dir)
    if how == "already running":
        pg.start(durable=False)
    port = _free_port()
    proc = _serve(var_dir, port, "--no-demo", *(["--keep-db"] if how == "--keep-db" else []))
    try:
        _wait_healthy(proc, port, 120)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        assert "stopping the embedded database" not in out
        code, status = _db_status(var_dir)
        assert code == 0 and "running" in status, status
    finally:
        if proc.poll() is None:
            proc.kill()
        pg.stop()


def test_running_requests_finish_when_the_server_stops(demo_engine) -> None:
    """SIGTERM while requests are being answered: every one still gets its 200, then the
    server exits 0 (graceful stop, not dropped connections)."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mapsvc.cli", "serve", "--no-demo", "--port", str(port)],
        env=_env(
            DATABASE_URL=demo_engine.url.render_as_string(hide_password=False),
            MAPSVC_DASHBOARD_CACHE_SECONDS="0",  # each request does the full work
            MAPSVC_SERVER_WORKERS="1",
            MAPSVC_SERVER_THREADS="2",
            # long enough for the queued requests on a busy machine
            MAPSVC_SERVER_GRACEFUL_TIMEOUT="120",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_healthy(proc, port, 120)
        url = f"http://127.0.0.1:{port}/api/dashboard"
        with ThreadPoolExecutor(4) as pool:
            t0 = time.monotonic()
            answers = [
                pool.submit(urllib.request.urlopen, _as_admin(url), timeout=180) for _ in range(4)
            ]
            time.sleep(0.3)  # the requests are in the server (two at work, two queued)
            proc.send_signal(signal.SIGTERM)
            statuses = [a.result().status for a in answers]
            took = time.monotonic() - t0
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert statuses == [200] * 4
    assert took > 0.3, "the requests were answered before the signal: nothing was tested"
    assert proc.returncode == 0, out


# --------------------------------------------------------------------------- busy port, make


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_a_busy_port_is_one_line_before_anything_starts(tmp_path: Path, busy_port: int) -> None:
    var_dir = tmp_path / "var"
    proc = _serve(var_dir, busy_port)
    out, _ = proc.communicate(timeout=60)
    lines = out.strip().splitlines()
    assert proc.returncode == 1
    assert len(lines) == 1, out
    assert f"port {busy_port}" in lines[0] and "already in use" in lines[0]
    assert "make demo PORT=" in lines[0] and "mapsvc serve --port" in lines[0]
    suggested = int(lines[0].split("make demo PORT=")[1].split()[0])
    with socket.socket() as s:  # the port it suggests is free
        s.bind(("127.0.0.1", suggested))
    # nothing was started: no database cluster was even created
    assert not (var_dir / "pg").exists()


def _make(*args: str, **extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        ["make", "--no-print-directory", *args],
        cwd=PROJECT_ROOT,
        env=_env(**extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )


def test_make_demo_on_a_busy_port_says_so_first(tmp_path: Path, busy_port: int) -> None:
    proc = _make("demo", f"PORT={busy_port}", MAPSVC_VAR_DIR=str(tmp_path / "var"))
    out, _ = proc.communicate(timeout=300)
    lines = out.strip().splitlines()
    assert proc.returncode != 0
    assert "already in use" in lines[0] and "make demo PORT=" in lines[0], out
    assert "serving on" not in out and "loading the demo" not in out
    assert not (tmp_path / "var" / "pg").exists()


def test_make_demo_ends_quietly_on_ctrl_c(demo_engine) -> None:
    """Ctrl-C at the terminal signals the whole foreground group (make, serve, workers):
    serve stops and exits 0, and make prints no "Interrupt" or "Error" line."""
    port = _free_port()
    proc = _make(
        "demo",
        f"PORT={port}",
        DATABASE_URL=demo_engine.url.render_as_string(hide_password=False),
    )
    try:
        _wait_healthy(proc, port, 300)
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "serving on" in out, out
    assert "Interrupt" not in out and "Error" not in out and "make:" not in out, out
    assert "Traceback" not in out, out


def test_concurrent_first_requests_in_a_new_worker_all_succeed(demo_engine) -> None:
    """Everything a request imports is loaded before the workers fork: sixteen first
    requests at once, on pages and APIs that use pyproj, folium, geopandas and the layers,
    all answer 200 (pyproj's half-imported ``pyproj.database`` used to answer 500)."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mapsvc.cli", "serve", "--no-demo", "--port", str(port)],
        env=_env(
            DATABASE_URL=demo_engine.url.render_as_string(hide_password=False),
            MAPSVC_SERVER_WORKERS="1",
            MAPSVC_SERVER_THREADS="16",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    paths = [
        "/",
        "/coverage",
        "/density",
        "/incidents/map",
        "/patrol",
        "/api/grids?crs=gcj02",
        "/api/segments",
        "/api/heatmap",
        "/api/density",
        "/api/coverage",
        "/api/quota",
        "/incidents/list",
        "/open311/v2/services.json",
        "/api/communities?crs=bd09",
        "/api/district",
        "/dashboard",
    ]
    try:
        # the port answers as soon as the worker runs; no request has been served before
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "serve did not start"
                time.sleep(0.2)

        def status(path: str) -> int:
            try:
                url = f"http://127.0.0.1:{port}{path}"
                with urllib.request.urlopen(_as_admin(url), timeout=180) as r:
                    return r.status
            except urllib.error.HTTPError as exc:
                return exc.code

        with ThreadPoolExecutor(len(paths)) as pool:
            statuses = dict(zip(paths, pool.map(status, paths), strict=True))
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert statuses == dict.fromkeys(paths, 200), out
    assert "partially initialized" not in out and "Traceback" not in out, out


def test_dev_runs_werkzeug_without_a_version_banner(fresh_engine) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mapsvc.cli", "serve", "--dev", "--no-demo", "--port", str(port)],
        env=_env(DATABASE_URL=fresh_engine.url.render_as_string(hide_password=False)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_healthy(proc, port, 120)
        headers = _headers(port, "/healthz")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert headers["Server"] == "mapsvc", headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "development server" in out  # Werkzeug's own warning: it is the dev server
    assert proc.returncode == 0, out
